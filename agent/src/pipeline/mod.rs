//! The running agent: ring reader, rule evaluation, durable alerting, uploader and control threads.
//!
//! - [`reader`]: ring -> decode -> rules -> alert -> chain -> sign -> sled -> release;
//! - [`suppress`]: `max_signals` per rule per interval;
//! - [`status`]: the live counters `status` reports.

pub mod reader;
pub mod status;
pub mod suppress;

#[cfg(test)]
mod tests;
