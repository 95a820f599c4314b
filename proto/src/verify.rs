//! Verification of signed alerts: the DSSE envelope, its Ed25519 signature over the PAE, and
//! the alert's place in its host's hash chain (`nightjar.{seq, prev, host_id}`).
//!
//! One implementation for every side that checks alerts: the agent's `verify`, the central
//! server's ingest and its `verify`, and the end-to-end tests. Two entry points:
//!
//! - [`ChainVerifier`] walks a stored chain in seq order and names the first bad seq;
//! - [`AlertKey::verify_batch`] checks many envelopes of one host at once (Ed25519 batch
//!   verification with the key's terms folded into one, [`batch`]: several times the
//!   single-signature rate) and, when the batch fails, checks them one by one to name the
//!   first bad envelope.
//!
//! Ed25519 verification uses `ed25519-dalek` and its curve (signing stays with `ring` in the
//! agent): `ring` has no batch verification, and the server's ingest rate is bound by
//! signature checks.
//! A batch accepts every signature single verification accepts; it can also accept a
//! signature crafted with small-order components, which only the holder of the host key can
//! make and which gains that holder nothing (the payload bytes are what is stored and chained).
//! Single verification ([`AlertKey::verify`]) is the reference; re-verification uses it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::Value;

use crate::dsse::{ALERT_PAYLOAD_TYPE, Envelope, pae_into};

#[cfg(feature = "crypto")]
mod batch;

/// SHA-256 of `bytes` (`ring`'s; without the `crypto` feature, the pure-Rust `sha2` the
/// sensor links: `ring` builds C for its target, which the macOS type-check cannot).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    #[cfg(feature = "crypto")]
    {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }
    #[cfg(not(feature = "crypto"))]
    {
        use sha2::Digest as _;
        sha2::Sha256::digest(bytes).into()
    }
}

/// SHA-256 of an alert payload: the link `nightjar.prev` of the next alert holds.
pub fn payload_hash(payload: &[u8]) -> [u8; 32] {
    sha256(payload)
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

/// Parses 64 lowercase or uppercase hex digits into 32 bytes.
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The DSSE key id of a raw Ed25519 public key: lowercase hex SHA-256 of its 32 bytes.
pub fn key_id(public_key: &[u8]) -> String {
    hex(&sha256(public_key))
}

/// The last alert of a chain: its seq (0 = no alert yet) and its payload's SHA-256.
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

    /// Fixed-width encoding for stores: seq (big-endian) then hash.
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

/// Why an envelope was not opened ([`AlertKey::open_verified`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not signed by the pinned policy key {key_id}: {reason}")]
    Signature { key_id: String, reason: String },
    #[error("not a policy: {0}")]
    Malformed(String),
}

/// Why one envelope does not verify. The `Display` text is what reports and HTTP answers say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is not DSSE JSON: {0}")]
    NotDsse(String),
    #[error("payloadType is {found:?}, expected {expected:?}")]
    PayloadType { found: String, expected: String },
    #[error("payload is not base64: {0}")]
    PayloadEncoding(String),
    #[error("no signature by key {0}")]
    NoSignature(String),
    #[error("signature is not base64 of 64 bytes: {0}")]
    SignatureEncoding(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("payload: {0}")]
    Payload(String),
}

impl EnvelopeError {
    /// A stable short code for counters and machine-readable answers.
    pub fn code(&self) -> &'static str {
        match self {
            EnvelopeError::NotDsse(_) => "bad_json",
            EnvelopeError::PayloadType { .. } => "bad_payload_type",
            EnvelopeError::PayloadEncoding(_) | EnvelopeError::SignatureEncoding(_) => "bad_base64",
            EnvelopeError::NoSignature(_) => "bad_keyid",
            EnvelopeError::BadSignature => "bad_signature",
            EnvelopeError::Payload(_) => "bad_payload",
        }
    }
}

/// Decodes an envelope and its payload bytes, without checking any signature.
pub fn open_envelope(bytes: &[u8]) -> Result<(Envelope, Vec<u8>), EnvelopeError> {
    let env: Envelope =
        serde_json::from_slice(bytes).map_err(|e| EnvelopeError::NotDsse(e.to_string()))?;
    let payload = STANDARD
        .decode(&env.payload)
        .map_err(|e| EnvelopeError::PayloadEncoding(e.to_string()))?;
    Ok((env, payload))
}

/// Where an alert says it sits: `nightjar.{seq, prev, host_id}` of its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    pub seq: u64,
    pub prev: [u8; 32],
    pub host_id: String,
}

#[derive(serde::Deserialize)]
struct LinkDoc<'a> {
    #[serde(borrow)]
    nightjar: Option<LinkFields<'a>>,
}

/// The `nightjar` object of a payload as read, before its link is checked: a reader that
/// wants other fields of the payload too deserializes this inside its own document type and
/// calls [`LinkFields::into_link`], so the payload is parsed once and the link rules stay here.
#[derive(Debug, serde::Deserialize)]
pub struct LinkFields<'a> {
    seq: Option<Value>,
    #[serde(borrow)]
    prev: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    host_id: Option<std::borrow::Cow<'a, str>>,
}

impl LinkFields<'_> {
    /// The link, or what is missing or malformed. `None` (no `nightjar` object) is an error.
    pub fn into_link(fields: Option<Self>) -> Result<ChainLink, EnvelopeError> {
        let bad = |m: String| EnvelopeError::Payload(m);
        let nj = fields.ok_or_else(|| bad("no nightjar object".into()))?;
        let seq = nj
            .seq
            .as_ref()
            .and_then(Value::as_u64)
            .filter(|s| *s > 0 && *s <= i64::MAX as u64)
            .ok_or_else(|| bad("nightjar.seq is not a positive integer".into()))?;
        let prev = nj
            .prev
            .as_deref()
            .and_then(parse_hex32)
            .ok_or_else(|| bad(format!("seq {seq}: nightjar.prev is not 64 hex digits")))?;
        let host_id = nj
            .host_id
            .ok_or_else(|| bad(format!("seq {seq}: nightjar.host_id is missing")))?
            .into_owned();
        Ok(ChainLink { seq, prev, host_id })
    }
}

impl ChainLink {
    /// Reads the link straight from payload bytes, skipping the rest of the document (no
    /// tree of the whole alert is built).
    pub fn parse(payload: &[u8]) -> Result<ChainLink, EnvelopeError> {
        let doc: LinkDoc = serde_json::from_slice(payload)
            .map_err(|e| EnvelopeError::Payload(format!("not JSON: {e}")))?;
        LinkFields::into_link(doc.nightjar)
    }

    /// Reads the link out of a parsed payload.
    pub fn from_payload(doc: &Value) -> Result<ChainLink, EnvelopeError> {
        let bad = |m: String| EnvelopeError::Payload(m);
        let nj = doc
            .get("nightjar")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("no nightjar object".into()))?;
        let seq = nj
            .get("seq")
            .and_then(Value::as_u64)
            .filter(|s| *s > 0 && *s <= i64::MAX as u64)
            .ok_or_else(|| bad("nightjar.seq is not a positive integer".into()))?;
        let prev = nj
            .get("prev")
            .and_then(Value::as_str)
            .and_then(parse_hex32)
            .ok_or_else(|| bad(format!("seq {seq}: nightjar.prev is not 64 hex digits")))?;
        let host_id = nj
            .get("host_id")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("seq {seq}: nightjar.host_id is missing")))?
            .to_string();
        Ok(ChainLink { seq, prev, host_id })
    }
}

/// An envelope decoded and its signature found, ready for the signature check (an alert's,
/// or any other document opened with [`AlertKey::open_typed`]).
#[derive(Debug, Clone)]
pub struct SignedAlert {
    /// The payload bytes (what the chain hashes).
    pub payload: Vec<u8>,
    /// The PAE the signature covers.
    pae: Vec<u8>,
    signature: Signature,
}

impl SignedAlert {
    /// SHA-256 of the payload.
    pub fn payload_hash(&self) -> [u8; 32] {
        payload_hash(&self.payload)
    }

    /// The payload's chain link, without building the whole document.
    pub fn link(&self) -> Result<ChainLink, EnvelopeError> {
        ChainLink::parse(&self.payload)
    }

    /// Parses the payload JSON and its chain link.
    pub fn parse(&self) -> Result<(Value, ChainLink), EnvelopeError> {
        let doc: Value = serde_json::from_slice(&self.payload)
            .map_err(|e| EnvelopeError::Payload(format!("not JSON: {e}")))?;
        let link = ChainLink::from_payload(&doc)?;
        Ok((doc, link))
    }
}

/// A host's Ed25519 public key, as alerts are verified against it.
#[derive(Debug, Clone)]
pub struct AlertKey {
    key: VerifyingKey,
    key_id: String,
}

/// Why raw bytes are not a usable host public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("an Ed25519 public key is 32 bytes, got {0}")]
    Length(usize),
    #[error("not a valid Ed25519 point")]
    Invalid,
    #[error("a small-order (weak) Ed25519 key is refused")]
    Weak,
}

impl AlertKey {
    /// A key from its raw 32 bytes; invalid and small-order keys are refused (a weak key would
    /// let its holder make signatures that verify over many messages).
    pub fn from_raw(raw: &[u8]) -> Result<AlertKey, KeyError> {
        let bytes: &[u8; 32] = raw.try_into().map_err(|_| KeyError::Length(raw.len()))?;
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::Invalid)?;
        if key.is_weak() {
            return Err(KeyError::Weak);
        }
        Ok(AlertKey {
            key,
            key_id: key_id(bytes),
        })
    }

    /// From standard base64 of the raw 32 bytes (as `keys show` and enrolment carry it).
    pub fn from_base64(text: &str) -> Result<AlertKey, KeyError> {
        let raw = STANDARD.decode(text).map_err(|_| KeyError::Invalid)?;
        AlertKey::from_raw(&raw)
    }

    /// Lowercase hex SHA-256 of the raw key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The raw 32 bytes.
    pub fn raw(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Decodes an alert envelope and finds this key's signature (no signature check yet).
    pub fn open(&self, bytes: &[u8]) -> Result<SignedAlert, EnvelopeError> {
        self.open_typed(bytes, ALERT_PAYLOAD_TYPE)
    }

    /// Decodes an envelope that must be of `payload_type` (an alert, a fleet policy) and
    /// finds this key's signature (no signature check yet): the same opening for every
    /// signed document, so none is checked by a second, drifting implementation.
    pub fn open_typed(
        &self,
        bytes: &[u8],
        payload_type: &str,
    ) -> Result<SignedAlert, EnvelopeError> {
        let (env, payload) = open_envelope(bytes)?;
        if env.payload_type != payload_type {
            return Err(EnvelopeError::PayloadType {
                found: env.payload_type,
                expected: payload_type.to_owned(),
            });
        }
        let sig = env
            .signatures
            .iter()
            .find(|s| s.keyid == self.key_id)
            .ok_or_else(|| EnvelopeError::NoSignature(self.key_id.clone()))?;
        let sig = STANDARD
            .decode(&sig.sig)
            .map_err(|e| EnvelopeError::SignatureEncoding(e.to_string()))?;
        let signature = Signature::from_slice(&sig)
            .map_err(|_| EnvelopeError::SignatureEncoding(format!("{} bytes", sig.len())))?;
        let mut pae = Vec::with_capacity(env.payload_type.len() + payload.len() + 32);
        pae_into(&env.payload_type, &payload, &mut pae);
        Ok(SignedAlert {
            payload,
            pae,
            signature,
        })
    }

    /// Checks one signature.
    pub fn verify(&self, alert: &SignedAlert) -> Result<(), EnvelopeError> {
        self.verify_message(&alert.pae, &alert.signature)
    }

    /// The payload of an envelope of `payload_type` signed by this key, the signature
    /// checked: how a fleet policy is opened, by the agent (from the server or its state
    /// directory) and by the sensor (the kept copy) alike.
    pub fn open_verified(&self, bytes: &[u8], payload_type: &str) -> Result<Vec<u8>, OpenError> {
        let signature = |e: EnvelopeError| OpenError::Signature {
            key_id: self.key_id().to_owned(),
            reason: e.to_string(),
        };
        let signed = self.open_typed(bytes, payload_type).map_err(|e| match e {
            EnvelopeError::NoSignature(_)
            | EnvelopeError::BadSignature
            | EnvelopeError::SignatureEncoding(_) => signature(e),
            other => OpenError::Malformed(other.to_string()),
        })?;
        self.verify(&signed).map_err(signature)?;
        Ok(signed.payload)
    }

    /// Checks an Ed25519 signature over arbitrary bytes (request and enrolment signatures).
    pub fn verify_message(
        &self,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), EnvelopeError> {
        use ed25519_dalek::Verifier as _;
        self.key
            .verify(message, signature)
            .map_err(|_| EnvelopeError::BadSignature)
    }

    /// Checks standard base64 of a 64-byte signature over `message`.
    pub fn verify_base64(&self, message: &[u8], signature_b64: &str) -> Result<(), EnvelopeError> {
        let raw = STANDARD
            .decode(signature_b64)
            .map_err(|e| EnvelopeError::SignatureEncoding(e.to_string()))?;
        let sig = Signature::from_slice(&raw)
            .map_err(|_| EnvelopeError::SignatureEncoding(format!("{} bytes", raw.len())))?;
        self.verify_message(message, &sig)
    }

    /// Checks every signature of a batch; `Err(i)` names the first alert that fails alone.
    #[cfg(feature = "crypto")]
    ///
    /// One batch equation for the lot; only when it fails are the alerts checked one by one,
    /// so an honest batch costs one batch verification.
    pub fn verify_batch<A: std::borrow::Borrow<SignedAlert>>(
        &self,
        alerts: &[A],
    ) -> Result<(), usize> {
        if alerts.is_empty() {
            return Ok(());
        }
        let items: Vec<(&[u8], &Signature)> = alerts
            .iter()
            .map(|a| (a.borrow().pae.as_slice(), &a.borrow().signature))
            .collect();
        if batch::verify_same_key(&self.key, &items) {
            return Ok(());
        }
        match alerts.iter().position(|a| self.verify(a.borrow()).is_err()) {
            Some(i) => Err(i),
            // Every signature verifies alone yet the batch equation failed: impossible for
            // honest signatures; refuse rather than accept what the batch did not.
            None => Err(0),
        }
    }
}

/// The first place a stored chain fails to verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alert seq {seq}: {reason}")]
pub struct VerifyError {
    pub seq: u64,
    pub reason: String,
}

/// Checks a stored chain alert by alert, in seq order: every signature by the host key and
/// every link.
#[derive(Debug)]
pub struct ChainVerifier {
    key: Result<AlertKey, KeyError>,
    host_id: Option<String>,
    expected: u64,
    prev: [u8; 32],
}

impl ChainVerifier {
    /// Verifies against this raw Ed25519 public key, from seq 1.
    pub fn new(public_key: &[u8]) -> ChainVerifier {
        ChainVerifier {
            key: AlertKey::from_raw(public_key),
            host_id: None,
            expected: 1,
            prev: [0; 32],
        }
    }

    /// Verifies a chain whose alerts up to `after` were removed (retention, or a server's
    /// partial range): the first alert checked is `after.seq + 1`, linked to `after.hash`.
    pub fn resume_after(public_key: &[u8], after: &ChainHead) -> ChainVerifier {
        ChainVerifier {
            expected: after.seq + 1,
            prev: after.hash,
            ..ChainVerifier::new(public_key)
        }
    }

    /// Every alert must carry this `nightjar.host_id` (else the first alert's is taken).
    pub fn expect_host(mut self, host_id: &str) -> ChainVerifier {
        self.host_id = Some(host_id.to_string());
        self
    }

    /// Checks the alert stored under `seq`; alerts must come in ascending seq order.
    pub fn check(&mut self, seq: u64, envelope: &[u8]) -> Result<(), VerifyError> {
        let fail = |seq, reason: String| VerifyError { seq, reason };
        if seq != self.expected {
            return Err(fail(
                self.expected,
                format!("missing (the next stored alert is seq {seq})"),
            ));
        }
        let key = self
            .key
            .as_ref()
            .map_err(|e| fail(seq, format!("host public key: {e}")))?;
        let alert = key.open(envelope).map_err(|e| fail(seq, e.to_string()))?;
        key.verify(&alert).map_err(|e| fail(seq, e.to_string()))?;
        let link = alert.link().map_err(|e| fail(seq, e.to_string()))?;
        if link.seq != seq {
            return Err(fail(
                seq,
                format!(
                    "nightjar.seq is {}, stored under seq {seq} (reordered?)",
                    link.seq
                ),
            ));
        }
        if link.prev != self.prev {
            return Err(fail(
                seq,
                format!(
                    "nightjar.prev is {}, the previous alert hashes to {}",
                    hex(&link.prev),
                    hex(&self.prev)
                ),
            ));
        }
        match &self.host_id {
            None => self.host_id = Some(link.host_id),
            Some(first) if *first != link.host_id => {
                return Err(fail(
                    seq,
                    format!(
                        "nightjar.host_id {:?} differs from the chain's {first:?}",
                        link.host_id
                    ),
                ));
            }
            Some(_) => {}
        }
        self.prev = alert.payload_hash();
        self.expected += 1;
        Ok(())
    }

    /// The head after the alerts checked so far.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.expected - 1,
            hash: self.prev,
        }
    }

    /// Ends the walk: the stored chain head must be the last alert seen. Returns the number
    /// of the last alert verified.
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

#[cfg(all(test, feature = "crypto"))]
mod tests {
    use super::*;
    use crate::dsse::{Signature as DsseSignature, pae};
    use ring::signature::{Ed25519KeyPair, KeyPair as _};

    fn keypair() -> Ed25519KeyPair {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn envelope(key: &Ed25519KeyPair, seq: u64, prev: &[u8; 32]) -> (Vec<u8>, [u8; 32]) {
        let payload = serde_json::json!({
            "n": seq,
            "nightjar": {"seq": seq, "prev": hex(prev), "event_seq": seq, "host_id": "h1"},
        })
        .to_string()
        .into_bytes();
        let sig = key.sign(&pae(ALERT_PAYLOAD_TYPE, &payload));
        let env = Envelope {
            payload: STANDARD.encode(&payload),
            payload_type: ALERT_PAYLOAD_TYPE.into(),
            signatures: vec![DsseSignature {
                keyid: key_id(key.public_key().as_ref()),
                sig: STANDARD.encode(sig.as_ref()),
            }],
        };
        (serde_json::to_vec(&env).unwrap(), payload_hash(&payload))
    }

    fn chain(key: &Ed25519KeyPair, n: u64) -> (Vec<Vec<u8>>, ChainHead) {
        let mut head = ChainHead::GENESIS;
        let mut out = Vec::new();
        for seq in 1..=n {
            let (env, hash) = envelope(key, seq, &head.hash);
            head = ChainHead { seq, hash };
            out.push(env);
        }
        (out, head)
    }

    fn walk(public: &[u8], envs: &[(u64, Vec<u8>)], head: &ChainHead) -> Result<u64, VerifyError> {
        let mut v = ChainVerifier::new(public);
        for (seq, env) in envs {
            v.check(*seq, env)?;
        }
        v.finish(head)
    }

    #[test]
    fn an_intact_chain_verifies_and_edits_name_the_seq() {
        let k = keypair();
        let (envs, head) = chain(&k, 5);
        let stored: Vec<_> = (1..).zip(envs.iter().cloned()).collect();
        let public = k.public_key().as_ref();
        assert_eq!(walk(public, &stored, &head), Ok(5));
        assert_eq!(walk(public, &[], &ChainHead::GENESIS), Ok(0));

        let mut deleted = stored.clone();
        deleted.remove(3);
        assert_eq!(walk(public, &deleted, &head).unwrap_err().seq, 4);

        let mut swapped = stored.clone();
        let (a, b) = (swapped[1].1.clone(), swapped[2].1.clone());
        swapped[1].1 = b;
        swapped[2].1 = a;
        assert_eq!(walk(public, &swapped, &head).unwrap_err().seq, 2);

        let other = keypair();
        let err = walk(other.public_key().as_ref(), &stored, &head).unwrap_err();
        assert!(err.reason.contains("no signature"), "{err}");
    }

    #[test]
    fn batch_verification_names_the_first_forged_envelope() {
        let k = keypair();
        let key = AlertKey::from_raw(k.public_key().as_ref()).unwrap();
        let (envs, _) = chain(&k, 8);
        let mut alerts: Vec<SignedAlert> = envs.iter().map(|e| key.open(e).unwrap()).collect();
        assert_eq!(key.verify_batch(&alerts), Ok(()));
        alerts[5].payload[0] ^= 1;
        alerts[5].pae = pae(ALERT_PAYLOAD_TYPE, &alerts[5].payload);
        assert_eq!(key.verify_batch(&alerts), Err(5));
        assert_eq!(key.verify(&alerts[5]), Err(EnvelopeError::BadSignature));
        assert_eq!(key.verify_batch::<SignedAlert>(&[]), Ok(()));
    }

    #[test]
    fn weak_and_malformed_keys_are_refused() {
        assert_eq!(
            AlertKey::from_raw(&[1u8; 31]).unwrap_err(),
            KeyError::Length(31)
        );
        // The identity point (0, 1) encodes as 1 followed by zeros: small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(AlertKey::from_raw(&identity).unwrap_err(), KeyError::Weak);
    }

    #[test]
    fn link_parse_agrees_with_the_tree_and_names_what_is_missing() {
        let doc = br#"{"a":[1,{"b":2}],"nightjar":{"seq":3,"prev":"0000000000000000000000000000000000000000000000000000000000000000","host_id":"h\u00e9"}}"#;
        let link = ChainLink::parse(doc).unwrap();
        let value: Value = serde_json::from_slice(doc).unwrap();
        assert_eq!(ChainLink::from_payload(&value).unwrap(), link);
        assert_eq!(link.host_id, "h\u{e9}");
        for (bad, want) in [
            (&br#"{"x":1}"#[..], "no nightjar"),
            (br#"{"nightjar":{"seq":0}}"#, "positive"),
            (br#"{"nightjar":{"seq":-1}}"#, "positive"),
            (br#"{"nightjar":{"seq":1,"prev":"zz"}}"#, "hex"),
            (br#"{"nightjar":{"seq":1,"prev":"0000000000000000000000000000000000000000000000000000000000000000"}}"#, "host_id"),
            (b"[1]", "not JSON"),
        ] {
            let e = ChainLink::parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn hex_round_trips() {
        let h = sha256(b"x");
        assert_eq!(parse_hex32(&hex(&h)), Some(h));
        assert_eq!(parse_hex32("zz"), None);
        assert_eq!(parse_hex32(&"g".repeat(64)), None);
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
