//! Nightjar's central server: hosts enrol, upload their signed alert chains and report their
//! health; every alert is verified against the host's pinned key and chain, and every gap,
//! fork, rollback, bad signature or silence is recorded as an integrity event.
//!
//! - [`config`] reads `server.toml`;
//! - [`db`] holds the pool, versioned migrations, alert partitions (PostgreSQL is the only store);
//! - [`http`] serves routes, TLS, host signatures, admin auth, the JSON API;
//! - [`ingest`] parses, verifies and commits upload batches; [`heartbeats`] records
//!   heartbeats, those that arrive together in one transaction;
//! - [`hosts`], [`alerts`], [`integrity`] hold the fleet's data as the CLI and API read it;
//! - [`policy`] builds, signs, stores and lists fleet policies (compiled with the agent's
//!   own rule engine before they are signed);
//! - [`secret`] makes tokens, [`policy_key`] keeps the policy signing key, [`time`] formats times;
//! - [`console`] serves the analyst console (embedded page, sessions, security headers);
//! - [`export`] writes Elasticsearch `_bulk` NDJSON;
//! - [`cli`] is the command line.

pub mod alerts;
pub mod cli;
pub mod config;
pub mod console;
pub mod db;
pub mod export;
pub mod heartbeats;
pub mod hosts;
pub mod http;
pub mod ingest;
pub mod integrity;
pub mod policy;
pub mod policy_key;
pub mod secret;
pub mod time;
