//! Ed25519 batch verification of many signatures by one key.
//!
//! The batch equation is ed25519-dalek's (`verify_batch`): with random 128-bit coefficients
//! `zᵢ`, `hᵢ = SHA-512(Rᵢ ‖ A ‖ Mᵢ)` and every `sᵢ` canonical,
//!
//! ```text
//! [−Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ [zᵢhᵢ]A = 0
//! ```
//!
//! ed25519-dalek takes one key per signature and so multiplies `A` once per signature: a
//! multiscalar multiplication of 2n + 1 points. A host's upload batch is signed by one key, so
//! its n key terms fold into one, `[Σ zᵢhᵢ]A`: n + 2 points, most of the work of a batch
//! gone. Everything else is unchanged: a signature that verifies alone satisfies the equation
//! for any coefficients, and one that does not fails it except with negligible probability
//! (or, as with ed25519-dalek, when its only defect is a small-order component, which only
//! the key's holder can add — see the module documentation of [`super`]).
//!
//! The coefficients come from the operating system's random generator, drawn after the
//! signatures are fixed, so no signer can anticipate them.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity as _, VartimeMultiscalarMul as _};
use ed25519_dalek::{Signature, VerifyingKey};
use ring::rand::SecureRandom as _;
use sha2::{Digest as _, Sha512};

/// Whether every `(message, signature)` verifies under `key` (true for none). False also when
/// a signature is malformed (a non-canonical `s`, an `R` that is no curve point) or the
/// system's random generator fails; the caller then checks the signatures one by one.
pub(super) fn verify_same_key(key: &VerifyingKey, items: &[(&[u8], &Signature)]) -> bool {
    if items.is_empty() {
        return true;
    }
    let mut random = vec![0u8; 16 * items.len()];
    if ring::rand::SystemRandom::new().fill(&mut random).is_err() {
        return false;
    }
    let a = key.as_bytes();
    let mut b_coefficient = Scalar::ZERO;
    let mut a_coefficient = Scalar::ZERO;
    let mut scalars = Vec::with_capacity(items.len() + 2);
    let mut points = Vec::with_capacity(items.len() + 2);
    scalars.push(Scalar::ZERO); // replaced by −Σ zᵢsᵢ below
    points.push(ED25519_BASEPOINT_POINT);
    for ((message, signature), z) in items.iter().zip(random.chunks_exact(16)) {
        let r_bytes = signature.r_bytes();
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes()))
        else {
            return false;
        };
        let Some(r) = CompressedEdwardsY(*r_bytes).decompress() else {
            return false;
        };
        let hram: [u8; 64] = Sha512::new()
            .chain_update(r_bytes)
            .chain_update(a)
            .chain_update(message)
            .finalize()
            .into();
        let h = Scalar::from_bytes_mod_order_wide(&hram);
        let mut z_bytes = [0u8; 32];
        z_bytes[..16].copy_from_slice(z);
        let z = Scalar::from_bytes_mod_order(z_bytes);
        b_coefficient += z * s;
        a_coefficient += z * h;
        scalars.push(z);
        points.push(r);
    }
    scalars[0] = -b_coefficient;
    scalars.push(a_coefficient);
    points.push(key.to_edwards());
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair as _};

    fn keypair() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn signed(key: &Ed25519KeyPair, n: usize) -> (Vec<Vec<u8>>, Vec<Signature>) {
        let messages: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("message {i}").into_bytes())
            .collect();
        let sigs = messages
            .iter()
            .map(|m| Signature::from_slice(key.sign(m).as_ref()).unwrap())
            .collect();
        (messages, sigs)
    }

    fn check(key: &VerifyingKey, messages: &[Vec<u8>], sigs: &[Signature]) -> bool {
        let items: Vec<(&[u8], &Signature)> =
            messages.iter().map(|m| m.as_slice()).zip(sigs).collect();
        verify_same_key(key, &items)
    }

    #[test]
    fn agrees_with_single_verification_on_good_and_bad_batches() {
        let key = keypair();
        let vk = VerifyingKey::from_bytes(key.public_key().as_ref().try_into().unwrap()).unwrap();
        for n in [1, 2, 7, 100, 300] {
            let (mut messages, mut sigs) = signed(&key, n);
            assert!(check(&vk, &messages, &sigs), "an honest batch of {n}");
            // Another message under a signature, another signature, another key.
            messages[n / 2].push(b'!');
            assert!(!check(&vk, &messages, &sigs), "an edited message in {n}");
            messages[n / 2].pop();
            let mut bytes = sigs[n - 1].to_bytes();
            bytes[40] ^= 1;
            sigs[n - 1] = Signature::from_bytes(&bytes);
            assert!(!check(&vk, &messages, &sigs), "an edited signature in {n}");
            let other = keypair();
            let ok =
                VerifyingKey::from_bytes(other.public_key().as_ref().try_into().unwrap()).unwrap();
            let (messages, sigs) = signed(&key, n);
            assert!(!check(&ok, &messages, &sigs), "another key, {n}");
        }
        assert!(verify_same_key(&vk, &[]));
    }

    #[test]
    fn malformed_signatures_fail_the_batch() {
        let key = keypair();
        let vk = VerifyingKey::from_bytes(key.public_key().as_ref().try_into().unwrap()).unwrap();
        let (messages, mut sigs) = signed(&key, 3);
        // s = l (the group order) is not canonical.
        let mut bytes = sigs[1].to_bytes();
        let l: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        bytes[32..].copy_from_slice(&l);
        sigs[1] = Signature::from_bytes(&bytes);
        assert!(!check(&vk, &messages, &sigs));
        // An R that is no curve point.
        let (messages, mut sigs) = signed(&key, 3);
        let not_a_point = (2u8..)
            .map(|y| {
                let mut r = [0u8; 32];
                r[0] = y;
                r
            })
            .find(|r| CompressedEdwardsY(*r).decompress().is_none())
            .unwrap();
        let mut bytes = sigs[2].to_bytes();
        bytes[..32].copy_from_slice(&not_a_point);
        sigs[2] = Signature::from_bytes(&bytes);
        assert!(!check(&vk, &messages, &sigs));
    }
}
