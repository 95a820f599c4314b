//! Shared helpers for the end-to-end tests: locating the built binaries, temporary state,
//! child-process control, generated input streams, a verifying alert collector, a file system
//! that forgets what was not synced (crash states), a staged privilege escalation, running the
//! sensor and agent side by side, `/proc` sampling, the sustained-load driver, a private
//! PostgreSQL cluster, the central server under test, and signed fleet policies with a
//! stand-in server that offers forged and older ones.

pub mod agent_cli;
pub mod collector;
pub mod crashfs;
pub mod escalation;
pub mod fleet;
pub mod harness;
pub mod load;
pub mod pipeline;
pub mod policy;
pub mod postgres;
pub mod procstat;
pub mod read_memory;
pub mod streams;
