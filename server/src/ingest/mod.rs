//! Alert ingest: a batch parsed and verified ([`parse`]), decided against the host's chain
//! ([`chain`]) and committed in one transaction ([`store`]), its alert rows sent as one binary
//! `COPY` ([`copy`]).

pub mod chain;
pub mod copy;
pub mod parse;
pub mod store;
