//! Apple Endpoint Security: an in-process ES client subscribed to `NOTIFY_EXEC`.
//!
//! [`fields`] maps what an ES exec message carries to an [`ExecEvent`], honouring which
//! fields exist in which message version; it is plain Rust, tested on every platform with
//! realistic messages. [`client`] (macOS only) fills it from live messages.
//!
//! [`ExecEvent`]: nightjar_proto::ExecEvent

#[cfg(target_os = "macos")]
pub mod client;
pub mod fields;
