//! The built-in seed rule: Elastic's "Kerberos Cached Credentials Dumping", version 107 (KQL).
//!
//! Elastic's TOML does not carry the version (it lives in their version lock), so it is set here.

use crate::loader::{FileError, Loaded, load_text};

/// Where the rule's TOML came from, as reports show it.
pub const SOURCE: &str = "<builtin>/credential_access_kerberosdump_kcc.toml";
/// The rule's TOML, a copy of Elastic's v107 file.
pub const TOML: &str = include_str!("../builtin/credential_access_kerberosdump_kcc.toml");
/// The version of the rule [`TOML`] holds.
pub const VERSION: u32 = 107;
/// Its rule_id.
pub const RULE_ID: &str = "ad88231f-e2ab-491c-8fc6-64746da26cfe";

/// Loads the seed rule.
pub fn load() -> Result<Loaded, FileError> {
    let mut loaded = load_text(SOURCE, TOML)?;
    match &mut loaded {
        Loaded::Rule { meta, .. } | Loaded::Unsupported(meta, _) => {
            meta.version.get_or_insert(VERSION);
        }
    }
    Ok(loaded)
}
