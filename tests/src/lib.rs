//! Shared helpers for the end-to-end tests: locating the built binaries, temporary state,
//! child-process control, generated input streams, a verifying alert collector, a file system
//! that forgets what was not synced (crash states), running the
//! sensor and agent side by side, `/proc` sampling, the sustained-load driver, a private
//! PostgreSQL cluster and the central server under test.

pub mod agent_cli;
pub mod collector;
pub mod crashfs;
pub mod fleet;
pub mod harness;
pub mod load;
pub mod pipeline;
pub mod postgres;
pub mod procstat;
pub mod read_memory;
pub mod streams;
