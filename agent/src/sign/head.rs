//! The signed chain head mark: the host key's statement "my chain ends at seq N, whose
//! payload hashes to H".
//!
//! The store keeps the chain head beside the alerts, so whoever can rewrite the store could
//! drop its newest alerts and move the head back, and `verify` would find a shorter, intact
//! chain. A head mark signed with the host key closes that for anyone without the key: the
//! store's last alert must be the one the mark names. The agent signs a new mark each time it
//! makes alerts durable (one signature per group commit), and offers it to the fleet server
//! (`status` carries it; the heartbeat sends it), which compares it with what it received.
//!
//! A DSSE envelope like the alerts' (payloadType [`HEAD_PAYLOAD_TYPE`]), so anyone holding
//! the host's public key (`keys show`) can check it with any DSSE verifier. What it cannot
//! show on the host alone: that the store was not replaced by an older copy of itself. An
//! older copy holds an older mark that is just as valid; only a record kept elsewhere (the
//! server's, from heartbeats and uploads) reveals the rollback.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use nightjar_proto::dsse::{Envelope, HEAD_PAYLOAD_TYPE, pae};
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use super::chain::{ChainHead, hex};
use super::key::{HostKey, key_id};

/// What a head mark says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadMark {
    pub host_id: String,
    pub seq: u64,
    /// Lowercase hex SHA-256 of alert `seq`'s payload.
    pub hash: String,
    /// When the mark was signed, Unix seconds.
    pub signed_at: u64,
}

impl HeadMark {
    /// Whether the mark names exactly `head`.
    pub fn names(&self, head: &ChainHead) -> bool {
        self.seq == head.seq && self.hash == hex(&head.hash)
    }
}

/// Signs a mark for `head` of `host_id`'s chain; returns the envelope's JSON bytes.
pub fn sign_head(key: &HostKey, host_id: &str, head: &ChainHead, signed_at: u64) -> Vec<u8> {
    let mark = HeadMark {
        host_id: host_id.to_string(),
        seq: head.seq,
        hash: hex(&head.hash),
        signed_at,
    };
    // Serialising these plain fields cannot fail.
    let payload = serde_json::to_vec(&mark).unwrap_or_default();
    let env = key.sign(HEAD_PAYLOAD_TYPE, &payload, &mut Vec::new());
    serde_json::to_vec(&env).unwrap_or_default()
}

/// Checks a mark's envelope against the host's raw Ed25519 public key and returns what it
/// says; the error says what is wrong.
pub fn verify_head_mark(public_key: &[u8], envelope: &[u8]) -> Result<HeadMark, String> {
    let env: Envelope = serde_json::from_slice(envelope)
        .map_err(|e| format!("the head mark is not a DSSE envelope: {e}"))?;
    if env.payload_type != HEAD_PAYLOAD_TYPE {
        return Err(format!(
            "the head mark's payloadType is {:?}",
            env.payload_type
        ));
    }
    let want = key_id(public_key);
    let sig = env
        .signatures
        .iter()
        .find(|s| s.keyid == want)
        .ok_or_else(|| format!("the head mark is not signed by the host key {want}"))?;
    let payload = STANDARD
        .decode(&env.payload)
        .map_err(|e| format!("the head mark's payload is not base64: {e}"))?;
    let sig = STANDARD
        .decode(&sig.sig)
        .map_err(|e| format!("the head mark's signature is not base64: {e}"))?;
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&pae(&env.payload_type, &payload), &sig)
        .map_err(|_| "the head mark's signature does not verify".to_string())?;
    serde_json::from_slice(&payload).map_err(|e| format!("the head mark's payload: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_verifies_with_its_key_only_and_names_its_head() {
        let tmp = tempfile::tempdir().unwrap();
        let key = HostKey::create(&tmp.path().join("k")).unwrap();
        let other = HostKey::create(&tmp.path().join("o")).unwrap();
        let head = ChainHead {
            seq: 7,
            hash: [3; 32],
        };
        let env = sign_head(&key, "h-1", &head, 1_800_000_000);
        let mark = verify_head_mark(key.public_key(), &env).unwrap();
        assert_eq!(mark.host_id, "h-1");
        assert!(mark.names(&head));
        assert!(!mark.names(&ChainHead { seq: 6, ..head }));
        assert!(verify_head_mark(other.public_key(), &env).is_err());
        // A payload edited to name an earlier seq no longer verifies.
        let mut e: Envelope = serde_json::from_slice(&env).unwrap();
        let forged = serde_json::to_vec(&HeadMark { seq: 6, ..mark }).unwrap();
        e.payload = STANDARD.encode(forged);
        let err = verify_head_mark(key.public_key(), &serde_json::to_vec(&e).unwrap()).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");
    }
}
