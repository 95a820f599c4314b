//! The alert hash chain: each alert names its place (`nightjar.seq`, from 1, no gaps) and the
//! SHA-256 of the previous alert's payload (`nightjar.prev`), so a deleted, reordered or
//! edited alert breaks the chain at a seq that verification can name. Verification itself is
//! `nightjar_proto::verify`, shared with the server and the tests.

pub use nightjar_proto::verify::{
    ChainHead, ChainVerifier as Verifier, VerifyError, hex, open_envelope, payload_hash,
};
use serde_json::{Map, Value};

use super::key::HostKey;

/// An alert document before it takes its place in the chain.
#[derive(Debug, Clone)]
pub struct Unsealed {
    /// The alert without its `nightjar` object.
    pub alert: Map<String, Value>,
    /// `kibana.alert.uuid`: deterministic, so a replayed event is recognised.
    pub uuid: String,
    /// Alert time, Unix nanoseconds (indexed for `alerts list --since`).
    pub time_ns: i64,
    /// The sensor_seq of the event that matched.
    pub event_seq: u64,
}

/// An alert signed and chained, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedAlert {
    pub seq: u64,
    pub uuid: String,
    pub time_ns: i64,
    /// SHA-256 of the payload: the chain head once this alert is stored.
    pub payload_hash: [u8; 32],
    /// The DSSE envelope JSON, as stored and uploaded.
    pub envelope: Vec<u8>,
}

/// Puts alerts in the chain and signs them with the host key.
#[derive(Debug)]
pub struct Sealer {
    key: HostKey,
    host_id: String,
    pae_buf: Vec<u8>,
    /// Recorded as `nightjar.recovered_from` in the next alert sealed (a store that
    /// continues a quarantined one names it in its first alert).
    next_note: Option<Value>,
}

impl Sealer {
    /// Alerts sealed here carry `host_id` in `nightjar.host_id` and are signed with `key`.
    pub fn new(key: HostKey, host_id: String) -> Sealer {
        Sealer {
            key,
            host_id,
            pae_buf: Vec::new(),
            next_note: None,
        }
    }

    /// The host id alerts are sealed for.
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// Has the next alert sealed carry `note` as `nightjar.recovered_from`.
    pub fn note_next(&mut self, note: Value) {
        self.next_note = Some(note);
    }

    /// The head mark for `head`, signed with the host key (see [`super::head`]).
    pub fn mark(&self, head: &ChainHead) -> nightjar_proto::fleet::HeartbeatChainHead {
        super::head::sign_head(&self.key, &self.host_id, head)
    }

    /// The signing key (its public half verifies what this sealer produced).
    pub fn key(&self) -> &HostKey {
        &self.key
    }

    /// Adds `nightjar.{seq, prev, event_seq, host_id}` after `head` (keeping what the alert's
    /// `nightjar` object already holds), serialises and signs.
    pub fn seal(
        &mut self,
        head: &ChainHead,
        unsealed: Unsealed,
    ) -> Result<SealedAlert, serde_json::Error> {
        let Unsealed {
            mut alert,
            uuid,
            time_ns,
            event_seq,
        } = unsealed;
        let seq = head.seq + 1;
        // What the agent already put there (`policy_version`, `action`) stays, after the
        // chain fields.
        let mut nightjar = Map::new();
        let earlier = match alert.remove("nightjar") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        nightjar.insert("seq".into(), seq.into());
        nightjar.insert("prev".into(), hex(&head.hash).into());
        nightjar.insert("event_seq".into(), event_seq.into());
        nightjar.insert("host_id".into(), self.host_id.clone().into());
        for (k, v) in earlier {
            nightjar.entry(k).or_insert(v);
        }
        if let Some(note) = self.next_note.take() {
            nightjar.insert("recovered_from".into(), note);
        }
        alert.insert("nightjar".into(), Value::Object(nightjar));
        let payload = serde_json::to_vec(&alert)?;
        let envelope = self.key.sign_alert(&payload, &mut self.pae_buf);
        Ok(SealedAlert {
            seq,
            uuid,
            time_ns,
            payload_hash: payload_hash(&payload),
            envelope: serde_json::to_vec(&envelope)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> (tempfile::TempDir, Sealer) {
        let tmp = tempfile::tempdir().unwrap();
        let key = HostKey::create(&tmp.path().join("k")).unwrap();
        (tmp, Sealer::new(key, "host-1".into()))
    }

    fn unsealed(n: u64) -> Unsealed {
        let mut alert = Map::new();
        alert.insert("@timestamp".into(), "2026-11-20T09:00:00Z".into());
        alert.insert("n".into(), n.into());
        Unsealed {
            alert,
            uuid: format!("u-{n}"),
            time_ns: n as i64,
            event_seq: n * 10,
        }
    }

    fn chain(sealer: &mut Sealer, n: u64) -> (Vec<SealedAlert>, ChainHead) {
        let mut head = ChainHead::GENESIS;
        let mut out = Vec::new();
        for i in 1..=n {
            let s = sealer.seal(&head, unsealed(i)).unwrap();
            head = ChainHead {
                seq: s.seq,
                hash: s.payload_hash,
            };
            out.push(s);
        }
        (out, head)
    }

    fn verify(key: &[u8], alerts: &[(u64, Vec<u8>)], head: &ChainHead) -> Result<u64, VerifyError> {
        let mut v = Verifier::new(key);
        for (seq, env) in alerts {
            v.check(*seq, env)?;
        }
        v.finish(head)
    }

    #[test]
    fn first_alert_links_to_zeros_and_each_next_to_its_predecessor() {
        let (_t, mut s) = sealer();
        let (alerts, _) = chain(&mut s, 2);
        let (_, p1) = open_envelope(&alerts[0].envelope).unwrap();
        let (_, p2) = open_envelope(&alerts[1].envelope).unwrap();
        let d1: Value = serde_json::from_slice(&p1).unwrap();
        let d2: Value = serde_json::from_slice(&p2).unwrap();
        assert_eq!(d1["nightjar"]["seq"], 1);
        assert_eq!(d1["nightjar"]["prev"], "0".repeat(64));
        assert_eq!(d1["nightjar"]["event_seq"], 10);
        assert_eq!(d1["nightjar"]["host_id"], "host-1");
        assert_eq!(d2["nightjar"]["seq"], 2);
        assert_eq!(d2["nightjar"]["prev"], hex(&payload_hash(&p1)));
    }

    #[test]
    fn the_alerts_own_nightjar_fields_are_kept_and_the_chain_added() {
        let (_t, mut s) = sealer();
        let mut u = unsealed(1);
        u.alert.insert(
            "nightjar".into(),
            serde_json::json!({"action": "blocked", "match": "exact"}),
        );
        let sealed = s.seal(&ChainHead::GENESIS, u).unwrap();
        let (_, p) = open_envelope(&sealed.envelope).unwrap();
        let d: Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(d["nightjar"]["action"], "blocked");
        assert_eq!(d["nightjar"]["match"], "exact");
        assert_eq!(d["nightjar"]["seq"], 1);
        assert_eq!(d["nightjar"]["host_id"], "host-1");
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (_t, mut s) = sealer();
        let (alerts, head) = chain(&mut s, 5);
        let stored: Vec<_> = alerts.iter().map(|a| (a.seq, a.envelope.clone())).collect();
        assert_eq!(verify(s.key().public_key(), &stored, &head), Ok(5));
        assert_eq!(
            verify(s.key().public_key(), &[], &ChainHead::GENESIS),
            Ok(0)
        );
    }

    #[test]
    fn tampering_deletion_and_reordering_name_the_seq() {
        let (_t, mut s) = sealer();
        let (alerts, head) = chain(&mut s, 5);
        let key = s.key().public_key().to_vec();
        let stored: Vec<_> = alerts.iter().map(|a| (a.seq, a.envelope.clone())).collect();

        let mut tampered = stored.clone();
        let env = &mut tampered[2].1;
        let at = env.iter().position(|&b| b == b'"').unwrap() + 15;
        env[at] = if env[at] == b'A' { b'B' } else { b'A' };
        assert_eq!(verify(&key, &tampered, &head).unwrap_err().seq, 3);

        let mut deleted = stored.clone();
        deleted.remove(3);
        assert_eq!(verify(&key, &deleted, &head).unwrap_err().seq, 4);

        let mut last_gone = stored.clone();
        last_gone.pop();
        assert_eq!(verify(&key, &last_gone, &head).unwrap_err().seq, 5);

        let mut swapped = stored.clone();
        let (a, b) = (swapped[1].1.clone(), swapped[2].1.clone());
        swapped[1].1 = b;
        swapped[2].1 = a;
        assert_eq!(verify(&key, &swapped, &head).unwrap_err().seq, 2);
    }

    #[test]
    fn another_key_does_not_verify() {
        let (_t, mut s) = sealer();
        let (alerts, head) = chain(&mut s, 1);
        let stored = vec![(1, alerts[0].envelope.clone())];
        let tmp = tempfile::tempdir().unwrap();
        let other = HostKey::create(&tmp.path().join("other")).unwrap();
        let err = verify(other.public_key(), &stored, &head).unwrap_err();
        assert_eq!(err.seq, 1);
        assert!(err.reason.contains("no signature"), "{err}");
    }
}
