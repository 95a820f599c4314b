//! Nightjar's shared contracts between the sensor and the agent.
//!
//! - [`event`]: the exec event model every capture backend produces;
//! - [`codec`]: its versioned ring record encoding (bincode 2, zero-copy decode);
//! - [`shm_ring`]: the lock-free single-producer single-consumer shared-memory ring;
//! - [`eslogger`] and [`ecs_json`]: decoders for recorded or piped JSON input, sharing
//!   [`ndjson`]'s error type and helpers;
//! - [`dsse`]: the signed alert envelope format;
//! - [`trusted_dir`]: root-only directories checked from `/` down, files opened relative to
//!   them (the agent's state directory and the ring's directory).

pub mod codec;
pub mod dsse;
pub mod ecs_json;
pub mod eslogger;
pub mod event;
pub mod ndjson;
pub mod shm_ring;
pub mod trusted_dir;

pub use codec::{LossReport, LossSource, Record};
pub use event::{Args, Caller, ExecEvent, OsType, Source, Target};
