//! The Nightjar agent: consumes exec events from the shared-memory ring, evaluates Elastic
//! detection rules on an ECS view of each event, stores alerts durably in sled, signs them
//! (DSSE, Ed25519, hash-chained) and uploads them; serves the analyst CLI over a Unix socket.
//!
//! Modules, by concern:
//! - [`ecs`], [`process_table`]: the ECS view of an event and the pid -> last-exec table;
//! - [`rules`]: loading Elastic TOML rules, KQL and EQL parsers, the compiled matcher;
//! - [`alert`]: the alert document built from a match;
//! - [`config`]: the TOML config and its defaults;
//! - [`state_dir`]: the checked, root-only state directory;
//! - [`store`], [`sign`]: durable alert storage, host key, DSSE signing and the hash chain;
//! - [`upload`]: delivery of signed alerts to the collector;
//! - [`fleet`]: enrolment, signed requests and heartbeats with the central server;
//! - [`control`]: the control socket the CLI talks to;
//! - [`pipeline`]: the running agent (reader, uploader, control threads);
//! - [`cli`]: the command-line contract.

pub mod alert;
pub mod cli;
pub mod config;
pub mod control;
pub mod ecs;
pub mod fleet;
pub mod managed_prefs;
pub mod pipeline;
pub mod process_table;
pub mod rules;
pub mod sign;
pub mod state_dir;
pub mod store;
pub mod upload;
