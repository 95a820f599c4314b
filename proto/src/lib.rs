//! Nightjar's shared contracts between the sensor and the agent.
//!
//! - [`event`]: the exec event model every capture backend produces;
//! - [`codec`]: its versioned ring record encoding (bincode 2, zero-copy decode);
//! - [`shm_ring`]: the lock-free single-producer single-consumer shared-memory ring;
//! - [`eslogger`] and [`ecs_json`]: decoders for recorded or piped JSON input, sharing
//!   [`ndjson`]'s error type and helpers;
//! - [`dsse`]: the signed alert envelope format;
//! - [`fleet`]: the agent-server protocol (signed request bytes, enrolment, heartbeat);
//! - [`verify`] (feature `verify`, implied by `crypto`): the one verification of signed alerts and their chain;
//! - [`config`]: `nightjar.toml`, the one schema both binaries read, and [`managed_prefs`]:
//!   the MDM settings both apply over it on macOS;
//! - [`text`]: platform bytes as text without allocating;
//! - [`trusted_dir`]: root-only directories checked from `/` down, files opened relative to
//!   them (the agent's state directory and the ring's directory);
//! - [`filter`]: which file events some loaded rule can match;
//! - [`identity`] (feature `crypto`): `process.entity_id`.

pub mod codec;
pub mod config;
pub mod dsse;
pub mod ecs_json;
pub mod eslogger;
pub mod event;
pub mod filter;
pub mod fleet;
#[cfg(feature = "crypto")]
pub mod identity;
pub mod managed_prefs;
pub mod ndjson;
pub mod shm_ring;
pub mod terminal;
pub mod text;
pub mod trusted_dir;
#[cfg(feature = "verify")]
pub mod verify;

pub use codec::{LossReport, LossSource, Record};
pub use event::{Args, Caller, ExecEvent, OsType, Source, Target};
