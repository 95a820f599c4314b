//! The signed chain head mark: the host key's statement "my chain ends at seq N, whose
//! payload hashes to H".
//!
//! The store keeps the chain head beside the alerts, so whoever can rewrite the store could
//! drop its newest alerts and move the head back, and `verify` would find a shorter, intact
//! chain. A head mark signed with the host key closes that for anyone without the key: the
//! store's last alert must be the one the mark names. The agent signs a new mark each time it
//! makes alerts durable (one signature per group commit), keeps it in the store, and shows
//! it in `status` (`chain_head`), which is what the heartbeat sends to the fleet server.
//!
//! The mark is the fleet protocol's [`HeartbeatChainHead`]: `{seq, hash, signature}`, the
//! signature standard base64 of Ed25519 by the host key over
//! [`chain_head_signing_bytes`]`(host_id, seq, hash)`, so anyone holding the host's public key
//! (`keys show`) can check it. What it cannot show on the host alone: that the store was not
//! replaced by an older copy of itself. An older copy holds an older mark that is just as
//! valid; only a record kept elsewhere (the server's, from heartbeats and uploads) reveals the
//! rollback.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use nightjar_proto::fleet::{HeartbeatChainHead, chain_head_signing_bytes};
use nightjar_proto::verify::AlertKey;

use super::chain::{ChainHead, hex};
use super::key::HostKey;

/// Signs a mark for `head` of `host_id`'s chain.
pub fn sign_head(key: &HostKey, host_id: &str, head: &ChainHead) -> HeartbeatChainHead {
    let hash = hex(&head.hash);
    let sig = key.sign(&chain_head_signing_bytes(host_id, head.seq, &hash));
    HeartbeatChainHead {
        seq: head.seq,
        hash,
        signature: Some(STANDARD.encode(sig)),
    }
}

/// Checks that `mark` is signed by the host key (raw Ed25519 `public_key`) for `host_id`.
pub fn verify_head_mark(
    public_key: &[u8],
    host_id: &str,
    mark: &HeartbeatChainHead,
) -> Result<(), String> {
    let key = AlertKey::from_raw(public_key).map_err(|e| format!("host public key: {e}"))?;
    let sig = mark
        .signature
        .as_deref()
        .ok_or("the head mark carries no signature")?;
    key.verify_base64(
        &chain_head_signing_bytes(host_id, mark.seq, &mark.hash),
        sig,
    )
    .map_err(|e| format!("the head mark's signature does not verify: {e}"))
}

/// Whether `mark` names exactly `head`.
pub fn names(mark: &HeartbeatChainHead, head: &ChainHead) -> bool {
    mark.seq == head.seq && mark.hash == hex(&head.hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_verifies_with_its_key_and_host_only_and_names_its_head() {
        let tmp = tempfile::tempdir().unwrap();
        let key = HostKey::create(&tmp.path().join("k")).unwrap();
        let other = HostKey::create(&tmp.path().join("o")).unwrap();
        let head = ChainHead {
            seq: 7,
            hash: [3; 32],
        };
        let mark = sign_head(&key, "h-1", &head);
        verify_head_mark(key.public_key(), "h-1", &mark).unwrap();
        assert!(names(&mark, &head));
        assert!(!names(&mark, &ChainHead { seq: 6, ..head }));
        assert!(verify_head_mark(other.public_key(), "h-1", &mark).is_err());
        assert!(verify_head_mark(key.public_key(), "h-2", &mark).is_err());
        // A mark moved back to an earlier seq no longer verifies.
        let forged = HeartbeatChainHead {
            seq: 6,
            ..mark.clone()
        };
        let err = verify_head_mark(key.public_key(), "h-1", &forged).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");
    }
}
