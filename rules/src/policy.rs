//! The fleet policy: what a host runs — rule files, whether the built-in rule is on,
//! exception lists, the `block` list and rule-to-list links — as the server signs it
//! (the payload of a DSSE envelope of type [`PAYLOAD_TYPE`]).
//!
//! The server builds a policy and compiles it with [`Policy::sources`] and [`RuleSet::build`]
//! before signing; the agent does the same after verifying the signature, so both decide
//! with the same engine whether a policy can run. A policy arrives over the network and is
//! untrusted until its signature verifies, and bounded even after: sizes and counts are
//! checked before anything is compiled.

use serde::{Deserialize, Serialize};

use crate::set::{Identity, SourceText, Sources};
use crate::{MAX_RULE_FILE_BYTES, RuleSet};

pub use nightjar_proto::dsse::POLICY_PAYLOAD_TYPE as PAYLOAD_TYPE;

/// The document format this engine reads; a policy of another format is refused (an older
/// agent must not half-understand a newer server's policy).
pub const FORMAT: u32 = 1;
/// Largest policy payload (every Elastic macOS and Linux rule is about 2 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 32 << 20;
/// Most rule files in a policy.
pub const MAX_RULE_FILES: usize = 10_000;
/// Most exception files in a policy.
pub const MAX_EXCEPTION_FILES: usize = 1_000;
/// Longest file name in a policy.
pub const MAX_NAME_BYTES: usize = 1024;
/// Where the agent keeps the envelope of the policy it runs, in its state directory.
pub const KEPT_FILE: &str = "policy.dsse.json";
/// Largest kept envelope read back (base64 of the largest payload, with room).
pub const MAX_ENVELOPE_BYTES: u64 = 48 << 20;

/// One file of a policy: its name (the path the publisher gave) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub name: String,
    pub text: String,
}

/// An exception list tied to a rule by the policy (besides the rules' own
/// `exceptions_list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub rule_id: String,
    pub list_id: String,
}

/// The signed document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub format: u32,
    /// Grows with every publication; a host refuses any version not above its own.
    pub version: u64,
    /// RFC 3339, UTC.
    pub published_at: String,
    /// The built-in seed rule.
    pub builtin: bool,
    pub rules: Vec<PolicyFile>,
    pub exceptions: Vec<PolicyFile>,
    /// Rule ids that block (prevention).
    #[serde(default)]
    pub block: Vec<String>,
    #[serde(default)]
    pub links: Vec<Link>,
    /// Fleet-wide new_terms rules (whose fields do not include `host.id`) run on each
    /// host's own history; otherwise they are unsupported. Left out of the JSON when false,
    /// so policies without it read (and hash) as before.
    #[serde(default, skip_serializing_if = "is_false")]
    pub new_terms_per_host: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why bytes are not a policy this engine can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy is {0} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("the policy is not valid JSON of a policy: {0}")]
    Json(String),
    #[error("policy format {0} is not the one this agent reads ({FORMAT}): upgrade the agent")]
    Format(u32),
    #[error("policy version 0: versions start at 1")]
    ZeroVersion,
    #[error("{0}")]
    Bounds(String),
}

impl Policy {
    /// Reads a payload, checking its bounds (not its rules: see [`Policy::compile`]).
    pub fn from_payload(bytes: &[u8]) -> Result<Policy, PolicyError> {
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(PolicyError::TooLarge(bytes.len()));
        }
        let policy: Policy =
            serde_json::from_slice(bytes).map_err(|e| PolicyError::Json(e.to_string()))?;
        policy.check()?;
        Ok(policy)
    }

    /// The payload bytes (what the server signs).
    pub fn to_payload(&self) -> Vec<u8> {
        // A struct of strings, numbers and vectors always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Checks the format, the version and every bound.
    pub fn check(&self) -> Result<(), PolicyError> {
        if self.format != FORMAT {
            return Err(PolicyError::Format(self.format));
        }
        if self.version == 0 {
            return Err(PolicyError::ZeroVersion);
        }
        let bounds = |m: String| Err(PolicyError::Bounds(m));
        if self.rules.len() > MAX_RULE_FILES {
            return bounds(format!(
                "{} rule files, over the limit of {MAX_RULE_FILES}",
                self.rules.len()
            ));
        }
        if self.exceptions.len() > MAX_EXCEPTION_FILES {
            return bounds(format!(
                "{} exception files, over the limit of {MAX_EXCEPTION_FILES}",
                self.exceptions.len()
            ));
        }
        for f in self.rules.iter().chain(&self.exceptions) {
            if f.name.is_empty()
                || f.name.len() > MAX_NAME_BYTES
                || f.name.chars().any(char::is_control)
            {
                return bounds(format!(
                    "file name {:?} is empty, over {MAX_NAME_BYTES} bytes or holds control \
                     characters",
                    f.name.chars().take(80).collect::<String>()
                ));
            }
        }
        for f in &self.rules {
            if f.text.len() as u64 > MAX_RULE_FILE_BYTES {
                return bounds(format!(
                    "rule file {} is {} bytes, over the {MAX_RULE_FILE_BYTES}-byte limit",
                    f.name,
                    f.text.len()
                ));
            }
        }
        Ok(())
    }

    /// The policy as rule-set sources; every file is named `{prefix}{name}` in messages.
    pub fn sources(&self, prefix: &str, max_signals: Option<u32>) -> Sources {
        let texts = |files: &[PolicyFile]| {
            files
                .iter()
                .map(|f| SourceText {
                    name: format!("{prefix}{}", f.name),
                    text: f.text.clone(),
                })
                .collect()
        };
        Sources {
            builtin: self.builtin,
            rules: texts(&self.rules),
            exceptions: texts(&self.exceptions),
            block: self.block.clone(),
            links: self
                .links
                .iter()
                .map(|l| (l.rule_id.clone(), l.list_id.clone()))
                .collect(),
            max_signals,
            identity: Identity::Policy,
            block_platform: None,
            new_terms_per_host: self.new_terms_per_host,
        }
    }

    /// Compiles the policy with `prefix` naming its files; `Err` lists every problem
    /// (`file:line:col: message`), so a policy runs only when all of it compiles.
    pub fn compile(
        &self,
        prefix: &str,
        max_signals: Option<u32>,
    ) -> Result<(RuleSet, crate::LoadReport), Vec<String>> {
        let (set, report) = RuleSet::build(self.sources(prefix, max_signals));
        let problems: Vec<String> = report.problems().iter().map(|s| s.to_string()).collect();
        if problems.is_empty() {
            Ok((set, report))
        } else {
            Err(problems)
        }
    }
}
