//! The host signing key, DSSE envelopes and the alert hash chain.
//!
//! - [`key`]: the Ed25519 host key (generated on first start or provisioned by MDM) and the
//!   DSSE signature over an alert payload;
//! - [`chain`]: sealing an alert into the hash chain (`nightjar.{seq, prev, event_seq,
//!   host_id}`) and verifying a stored chain, naming the first bad seq;
//! - [`head`]: the chain head mark signed with the host key.

pub mod chain;
pub mod head;
pub mod key;

pub use chain::{
    ChainHead, SealedAlert, Sealer, Unsealed, Verifier, VerifyError, hex, payload_hash,
};
pub use head::{sign_head, verify_head_mark};
pub use key::{HostKey, KeyError, key_id};
