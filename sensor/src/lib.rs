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

use std::path::Path;

use nightjar_proto::shm_ring::{Producer, RingError};

/// Opens (creating if needed) the ring the agent reads, and its directory (0700).
pub fn open_ring(path: &Path, capacity: u64) -> Result<Producer, RingError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        // An existing directory is left as it is; Producer::open reports what is wrong.
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
    Producer::open(path, capacity)
}
