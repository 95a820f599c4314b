//! Opening a store's sled database behind the `Store`'s back, to tamper with it in tests.

use std::path::Path;
use std::time::{Duration, Instant};

/// Opens the sled database at `dir`, retrying for up to 5 s while its lock is held: a `Store`
/// dropped a moment ago may still hold it from sled's background threads, which finish their
/// last write after the handle is gone.
pub fn open_raw(dir: &Path) -> sled::Db {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match sled::open(dir) {
            Ok(db) => return db,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }
}
