//! DSSE (Dead Simple Signing Envelope) types and the PAE encoding alerts are signed over.
//!
//! Shared by the agent (which signs), the collector and any offline verifier, so every side
//! agrees byte for byte on what a signature covers. The envelope carries the payload and the
//! signatures as standard (padded) base64 strings, exactly as they travel; decoding them is
//! left to the side that holds a base64 implementation and a verifier.

use serde::{Deserialize, Serialize};

/// The `payloadType` of a Nightjar alert.
pub const ALERT_PAYLOAD_TYPE: &str = "application/vnd.nightjar.alert+json";

/// The `payloadType` of a fleet policy (signed by the server's policy key).
pub const POLICY_PAYLOAD_TYPE: &str = "application/vnd.nightjar.policy+json";

/// One signature over the PAE of an envelope's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Lowercase hex SHA-256 of the signer's raw 32-byte Ed25519 public key.
    pub keyid: String,
    /// Standard base64 of the signature bytes.
    pub sig: String,
}

/// A DSSE envelope: `{"payload", "payloadType", "signatures": [{"keyid", "sig"}]}`.
///
/// Field order is the serialisation order, so an envelope re-serialised with `serde_json`
/// gives the same bytes the signer wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Standard base64 of the payload bytes.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

/// The pre-authentication encoding a DSSE signature covers:
/// `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`, lengths in ASCII decimal.
///
/// Signing the PAE rather than the payload binds the payload type, so a signature cannot be
/// replayed over the same bytes presented as another type.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    pae_into(payload_type, payload, &mut out);
    out
}

/// [`pae`] into a caller's buffer (cleared first), so a signer can reuse one allocation.
pub fn pae_into(payload_type: &str, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_specification_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn pae_of_empty_values_keeps_every_separator() {
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn envelope_serialises_with_dsse_field_names_in_order() {
        let env = Envelope {
            payload: "aGk=".into(),
            payload_type: ALERT_PAYLOAD_TYPE.into(),
            signatures: vec![Signature {
                keyid: "ab".into(),
                sig: "c2ln".into(),
            }],
        };
        let text = serde_json::to_string(&env).unwrap();
        assert_eq!(
            text,
            r#"{"payload":"aGk=","payloadType":"application/vnd.nightjar.alert+json","signatures":[{"keyid":"ab","sig":"c2ln"}]}"#
        );
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn envelope_with_unknown_fields_is_refused() {
        let text = r#"{"payload":"","payloadType":"x","signatures":[],"extra":1}"#;
        assert!(serde_json::from_str::<Envelope>(text).is_err());
    }
}
