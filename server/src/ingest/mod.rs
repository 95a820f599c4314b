//! Alert ingest: a batch parsed and verified ([`parse`]), decided against the host's chain
//! ([`chain`]) and committed in one transaction ([`store`]).

pub mod chain;
pub mod parse;
pub mod store;
