//! The Nightjar agent: consumes exec events from the shared-memory ring, evaluates Elastic
//! detection rules on an ECS view of each event, stores alerts durably in sled, signs them
//! (DSSE, Ed25519, hash-chained) and uploads them; serves the analyst CLI over a Unix socket.
//!
//! Modules, by concern:
//! - [`process_table`]: the pid -> last-exec table the rule engine (`nightjar-rules`) reads
//!   parents from;
//! - [`host`]: this machine as the rule engine sees it (host id, account names);
//! - [`alert`]: the alert document built from a match;
//! - [`config`]: the TOML config and its defaults;
//! - [`state_dir`]: the checked, root-only state directory;
//! - [`store`], [`sign`]: durable alert storage, host key, DSSE signing and the hash chain;
//! - [`upload`]: delivery of signed alerts to the collector;
//! - [`fleet`]: enrolment, signed requests and heartbeats with the central server;
//! - [`policy`]: signed fleet policies: verified, compiled, kept and swapped in live;
//! - [`control`]: the control socket the CLI talks to;
//! - [`pipeline`]: the running agent (reader, uploader, control threads);
//! - [`cli`]: the command-line contract.

pub mod alert;
pub mod cli;
pub mod config;
pub mod control;
pub mod fleet;
pub mod host;
pub use nightjar_proto::managed_prefs;
pub mod pipeline;
pub mod policy;
pub mod process_table;
pub mod sign;
pub mod state_dir;
pub mod store;
pub mod upload;
