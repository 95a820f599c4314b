//! DSSE (Dead Simple Signing Envelope) types and the PAE encoding alerts are signed over.
