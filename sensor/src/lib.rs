//! `nightjar-sensor`: captures process execs and copies them into the shared-memory ring.
//!
//! - [`capture`]: the live backends (Endpoint Security, eslogger, eBPF);
//! - [`replay`]: recorded events through the same path;
//! - [`gate`]: which events are published (never our own; files only where a rule looks);
//! - [`kept_policy`]: the blocking set follows the fleet policy the agent applied, live;
//! - [`publish`]: ExecEvent -> record codec -> ring, numbering and loss reporting.
//!
//! The configuration is `nightjar.toml`, parsed by [`nightjar_proto::config`] exactly as the
//! agent parses it.

pub mod block;
pub mod capture;
pub mod gate;
pub mod kept_policy;
pub mod publish;
pub mod replay;
