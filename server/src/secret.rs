//! Bearer secrets (enrolment tokens, admin tokens, console sessions): generated from the
//! system random source, shown once, stored only as their SHA-256.
//!
//! Each secret carries 256 random bits, so a fast hash protects it at rest as well as a slow
//! password hash would: there is no dictionary to try. A prefix names the kind of secret, so
//! one pasted in the wrong place is recognised (and secret scanners can find a leaked one).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

/// Enrolment tokens: `nje_` + 43 base64url characters.
pub const ENROLL_PREFIX: &str = "nje_";
/// Admin tokens: `nja_` + 43 base64url characters.
pub const ADMIN_PREFIX: &str = "nja_";
/// Console session cookies.
pub const SESSION_PREFIX: &str = "njs_";

/// A fresh random secret with `prefix`.
pub fn generate(prefix: &str) -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes)?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// What is stored for a secret.
pub fn hash(secret: &str) -> Vec<u8> {
    nightjar_proto::verify::sha256(secret.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hashed() {
        let a = generate(ENROLL_PREFIX).unwrap();
        let b = generate(ENROLL_PREFIX).unwrap();
        assert!(a.starts_with("nje_") && a.len() == 47, "{a}");
        assert_ne!(a, b);
        assert_eq!(hash(&a).len(), 32);
        assert_ne!(hash(&a), hash(&b));
    }
}
