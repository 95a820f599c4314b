//! The alert hash chain: each alert names its place (`nightjar.seq`, from 1, no gaps) and the
//! SHA-256 of the previous alert's payload (`nightjar.prev`), so a deleted, reordered or
//! edited alert breaks the chain at a seq that verification can name.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use nightjar_proto::dsse::{ALERT_PAYLOAD_TYPE, Envelope, pae_into};
use ring::signature::{ED25519, UnparsedPublicKey};
use serde_json::{Map, Value};

use super::key::HostKey;

/// The last alert of the chain: its seq (0 = no alert yet) and its payload's SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: [u8; 32],
}

impl ChainHead {
    /// The head of an empty chain: the first alert's `prev` is 64 zeros.
    pub const GENESIS: ChainHead = ChainHead {
        seq: 0,
        hash: [0; 32],
    };

    /// Fixed-width encoding for the store: seq (big-endian) then hash.
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..].copy_from_slice(&self.hash);
        out
    }

    /// Reads [`ChainHead::to_bytes`]; `None` when the length is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Option<ChainHead> {
        let seq = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let hash = bytes.get(8..)?.try_into().ok()?;
        Some(ChainHead { seq, hash })
    }
}

/// SHA-256 of an alert payload, the link `nightjar.prev` of the next alert holds.
pub fn payload_hash(payload: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, payload);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

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
}

impl Sealer {
    /// Alerts sealed here carry `host_id` in `nightjar.host_id` and are signed with `key`.
    pub fn new(key: HostKey, host_id: String) -> Sealer {
        Sealer {
            key,
            host_id,
            pae_buf: Vec::new(),
        }
    }

    /// The signing key (its public half verifies what this sealer produced).
    pub fn key(&self) -> &HostKey {
        &self.key
    }

    /// Adds `nightjar.{seq, prev, event_seq, host_id}` after `head`, serialises and signs.
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
        let mut nightjar = Map::new();
        nightjar.insert("seq".into(), seq.into());
        nightjar.insert("prev".into(), hex(&head.hash).into());
        nightjar.insert("event_seq".into(), event_seq.into());
        nightjar.insert("host_id".into(), self.host_id.clone().into());
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

/// The first place a stored chain fails to verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alert seq {seq}: {reason}")]
pub struct VerifyError {
    pub seq: u64,
    pub reason: String,
}

/// Decodes a stored envelope and its payload bytes.
pub fn open_envelope(bytes: &[u8]) -> Result<(Envelope, Vec<u8>), String> {
    let env: Envelope =
        serde_json::from_slice(bytes).map_err(|e| format!("envelope is not DSSE JSON: {e}"))?;
    let payload = STANDARD
        .decode(&env.payload)
        .map_err(|e| format!("payload is not base64: {e}"))?;
    Ok((env, payload))
}

/// Checks a chain alert by alert, in seq order: every signature by the host key and every link.
#[derive(Debug)]
pub struct Verifier {
    public_key: Vec<u8>,
    key_id: String,
    host_id: Option<String>,
    expected: u64,
    prev: [u8; 32],
    pae_buf: Vec<u8>,
}

impl Verifier {
    /// Verifies against this raw Ed25519 public key.
    pub fn new(public_key: &[u8]) -> Verifier {
        Verifier {
            public_key: public_key.to_vec(),
            key_id: super::key_id(public_key),
            host_id: None,
            expected: 1,
            prev: [0; 32],
            pae_buf: Vec::new(),
        }
    }

    /// Verifies a chain whose alerts up to `after` were removed by retention: the first
    /// alert checked is `after.seq + 1`, and it must link to `after.hash`.
    pub fn resume_after(public_key: &[u8], after: &ChainHead) -> Verifier {
        Verifier {
            expected: after.seq + 1,
            prev: after.hash,
            ..Verifier::new(public_key)
        }
    }

    /// Checks the alert stored under `seq`; alerts must come in ascending key order.
    pub fn check(&mut self, seq: u64, envelope: &[u8]) -> Result<(), VerifyError> {
        let fail = |seq, reason: String| VerifyError { seq, reason };
        if seq != self.expected {
            return Err(fail(
                self.expected,
                format!("missing (the next stored alert is seq {seq})"),
            ));
        }
        let (env, payload) = open_envelope(envelope).map_err(|r| fail(seq, r))?;
        if env.payload_type != ALERT_PAYLOAD_TYPE {
            return Err(fail(seq, format!("payloadType is {:?}", env.payload_type)));
        }
        let sig = env
            .signatures
            .iter()
            .find(|s| s.keyid == self.key_id)
            .ok_or_else(|| fail(seq, format!("no signature by key {}", self.key_id)))?;
        let sig = STANDARD
            .decode(&sig.sig)
            .map_err(|e| fail(seq, format!("signature is not base64: {e}")))?;
        pae_into(&env.payload_type, &payload, &mut self.pae_buf);
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(&self.pae_buf, &sig)
            .map_err(|_| fail(seq, "signature does not verify".into()))?;
        let doc: Value = serde_json::from_slice(&payload)
            .map_err(|e| fail(seq, format!("payload is not JSON: {e}")))?;
        let nj = doc
            .get("nightjar")
            .and_then(Value::as_object)
            .ok_or_else(|| fail(seq, "payload has no nightjar object".into()))?;
        match nj.get("seq").and_then(Value::as_u64) {
            Some(s) if s == seq => {}
            other => {
                return Err(fail(
                    seq,
                    format!("nightjar.seq is {other:?}, stored under seq {seq} (reordered?)"),
                ));
            }
        }
        let want = hex(&self.prev);
        match nj.get("prev").and_then(Value::as_str) {
            Some(p) if p == want => {}
            other => {
                return Err(fail(
                    seq,
                    format!("nightjar.prev is {other:?}, the previous alert hashes to {want}"),
                ));
            }
        }
        let host = nj.get("host_id").and_then(Value::as_str);
        match (&self.host_id, host) {
            (_, None) => return Err(fail(seq, "nightjar.host_id is missing".into())),
            (None, Some(h)) => self.host_id = Some(h.to_string()),
            (Some(first), Some(h)) if first != h => {
                return Err(fail(
                    seq,
                    format!("nightjar.host_id {h:?} differs from the chain's {first:?}"),
                ));
            }
            _ => {}
        }
        self.prev = payload_hash(&payload);
        self.expected += 1;
        Ok(())
    }

    /// Ends the walk: the stored chain head must be the last alert seen. Returns the number
    /// of alerts verified.
    pub fn finish(self, head: &ChainHead) -> Result<u64, VerifyError> {
        let last = self.expected - 1;
        if head.seq > last {
            return Err(VerifyError {
                seq: last + 1,
                reason: format!("missing (the chain head is seq {})", head.seq),
            });
        }
        if head.seq < last {
            return Err(VerifyError {
                seq: head.seq + 1,
                reason: format!("stored beyond the chain head (seq {})", head.seq),
            });
        }
        if head.hash != self.prev {
            return Err(VerifyError {
                seq: last,
                reason: "payload does not match the chain head's hash".into(),
            });
        }
        Ok(last)
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
        let err = verify(&[7u8; 32], &stored, &head).unwrap_err();
        assert_eq!(err.seq, 1);
        assert!(err.reason.contains("no signature"), "{err}");
    }

    #[test]
    fn head_encoding_round_trips() {
        let h = ChainHead {
            seq: 42,
            hash: [9; 32],
        };
        assert_eq!(ChainHead::from_bytes(&h.to_bytes()), Some(h));
        assert_eq!(ChainHead::from_bytes(&[1, 2, 3]), None);
    }
}
