//! Apple Endpoint Security: in-process ES clients for the NOTIFY events (exec, fork, exit,
//! file) and, with a blocking rule loaded, `AUTH_EXEC`.
//!
//! Everything but the calls into Apple's library is plain Rust, tested on every platform:
//! [`fields`] maps what a message carries to an event, honouring which fields exist in which
//! message version; [`setup`] decides what each client subscribes to and mutes; [`handler`]
//! is what a NOTIFY client does with each message (gaps, gate, mapping, panics). They reach
//! Endpoint Security through the [`api::EsApi`] seam, implemented on macOS by [`client`] and
//! in tests by a recording mock.

pub mod api;
pub mod auth;
#[cfg(target_os = "macos")]
pub mod client;
pub mod fields;
#[cfg(test)]
mod file_action_tests;
pub mod handler;
#[cfg(test)]
pub mod mock;
pub mod setup;
#[cfg(test)]
mod tests;
