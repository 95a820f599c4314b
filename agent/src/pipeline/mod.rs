//! The running agent: ring reader, rule evaluation, durable alerting, uploader and control threads.
//!
//! - [`agent`]: start-up, shutdown and the `mio` event loop of `nightjar-agent run`;
//! - [`reader`]: ring -> decode -> rules -> alert -> chain -> sign -> sled -> release;
//! - `ring`: the shared-memory consumer as the reader's ring;
//! - [`detect`]: the rule set, process table and alert builder as the reader's detector;
//! - [`swap`]: the rule set the reader runs, and how a new policy's reaches it;
//! - [`suppress`]: `max_signals` per rule per interval;
//! - [`status`]: the live counters `status` reports.

pub mod agent;
pub mod detect;
pub mod reader;
mod ring;
pub mod status;
pub mod suppress;
pub mod swap;
pub mod terms;

#[cfg(test)]
mod tests;
