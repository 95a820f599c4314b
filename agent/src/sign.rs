//! The host signing key, DSSE envelopes and the alert hash chain.
