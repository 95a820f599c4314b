//! `nightjar-sensor`: captures process execs and copies them into the shared-memory ring.
//!
//! - [`capture`]: the live backends (Endpoint Security, eslogger, eBPF);
//! - [`replay`]: recorded events through the same path;
//! - [`publish`]: ExecEvent -> record codec -> ring, numbering and loss reporting;
//! - [`config`]: the sensor's keys of the shared `nightjar.toml`.

pub mod capture;
pub mod config;
pub mod publish;
pub mod replay;
pub mod text;
