//! Fleet policies: built from rule files and Kibana exception exports, compiled with the
//! agent's own engine (`nightjar-rules`), signed as DSSE envelopes by the policy key and
//! kept in PostgreSQL (`policies`, one row per version, the envelope byte for byte).
//!
//! Versions only grow: publication takes the next version inside a transaction that locks
//! the table, so two admins (or replicas) publishing at once get two versions, never one.
//! Hosts get the newest version (`GET /v1/policy`); heartbeats tell them which it is.
//!
//! For the console and the JSON API: [`list`] pages through versions newest first,
//! [`PolicyVersion::to_json`] is the row as the API shows it.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use deadpool_postgres::{GenericClient, Pool};
use nightjar_proto::dsse::{Envelope, POLICY_PAYLOAD_TYPE, Signature, pae};
use nightjar_proto::verify::key_id;
use nightjar_rules::policy::Policy;
use serde_json::{Value, json};

use crate::db::DbError;
use crate::policy_key::PolicyKey;
use crate::time::rfc3339;

/// One published version, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyVersion {
    pub version: i64,
    pub published_at: SystemTime,
    /// Rule files the policy carries (the built-in rule not counted).
    pub rules: i32,
    /// Exception items it carries.
    pub exceptions: i32,
    /// Whether the built-in rule is on (`None`: a row stored without its summary).
    pub builtin: Option<bool>,
    /// Rule ids that block.
    pub block: Option<Value>,
    /// The signing key's id.
    pub key_id: Option<String>,
    /// Lowercase hex SHA-256 of the envelope as stored and served.
    pub sha256: String,
    pub envelope_bytes: i32,
}

impl PolicyVersion {
    pub fn to_json(&self) -> Value {
        json!({
            "version": self.version,
            "published_at": rfc3339(self.published_at),
            "rules": self.rules,
            "exceptions": self.exceptions,
            "builtin": self.builtin,
            "block": self.block,
            "key_id": self.key_id,
            "sha256": self.sha256,
            "envelope_bytes": self.envelope_bytes,
        })
    }
}

/// Published versions, newest first: up to `limit` below `before` (a version) when given.
/// Reads no envelope (the digest and size are computed by PostgreSQL).
pub async fn list(
    client: &impl GenericClient,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<PolicyVersion>, DbError> {
    let stmt = client
        .prepare_cached(
            "SELECT version, published_at, rules, exceptions, builtin, block, key_id,
                    encode(sha256(envelope), 'hex'), octet_length(envelope)
             FROM policies
             WHERE $1::bigint IS NULL OR version < $1
             ORDER BY version DESC LIMIT $2",
        )
        .await?;
    let rows = client.query(&stmt, &[&before, &limit]).await?;
    Ok(rows
        .iter()
        .map(|r| PolicyVersion {
            version: r.get(0),
            published_at: r.get(1),
            rules: r.get(2),
            exceptions: r.get(3),
            builtin: r.get(4),
            block: r.get(5),
            key_id: r.get(6),
            sha256: r.get(7),
            envelope_bytes: r.get(8),
        })
        .collect())
}

/// The newest version and its envelope, if any was published.
pub async fn latest(client: &impl GenericClient) -> Result<Option<(i64, Vec<u8>)>, DbError> {
    let stmt = client
        .prepare_cached("SELECT version, envelope FROM policies ORDER BY version DESC LIMIT 1")
        .await?;
    Ok(client
        .query_opt(&stmt, &[])
        .await?
        .map(|r| (r.get(0), r.get(1))))
}

/// The DSSE envelope of `policy`, signed by `key`.
pub fn sign(key: &PolicyKey, policy: &Policy) -> Vec<u8> {
    let payload = policy.to_payload();
    let sig = key.sign(&pae(POLICY_PAYLOAD_TYPE, &payload));
    let env = Envelope {
        payload: STANDARD.encode(&payload),
        payload_type: POLICY_PAYLOAD_TYPE.into(),
        signatures: vec![Signature {
            keyid: key_id(key.public_key()),
            sig: STANDARD.encode(sig),
        }],
    };
    // Strings and a vector of them always serialise.
    serde_json::to_vec(&env).unwrap_or_default()
}

/// Publishes `policy` (already compiled by the caller) under the next version: signs it,
/// stores it, returns the version. `exception_items` is the count the listing shows.
pub async fn publish(
    pool: &Pool,
    key: &PolicyKey,
    mut policy: Policy,
    exception_items: usize,
) -> Result<(i64, Vec<u8>), DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // Serialises publications (readers are not blocked): the next version is decided here.
    tx.batch_execute("LOCK TABLE policies IN SHARE ROW EXCLUSIVE MODE")
        .await?;
    let next: i64 = tx
        .query_one("SELECT COALESCE(max(version), 0) + 1 FROM policies", &[])
        .await?
        .get(0);
    let now = SystemTime::now();
    policy.version = next as u64;
    policy.published_at = rfc3339(now);
    let envelope = sign(key, &policy);
    let rules = i32::try_from(policy.rules.len()).unwrap_or(i32::MAX);
    let exceptions = i32::try_from(exception_items).unwrap_or(i32::MAX);
    let block = json!(policy.block);
    tx.execute(
        "INSERT INTO policies (version, published_at, rules, exceptions, envelope, builtin, \
         block, key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &next,
            &now,
            &rules,
            &exceptions,
            &envelope,
            &policy.builtin,
            &block,
            &key_id(key.public_key()),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok((next, envelope))
}
