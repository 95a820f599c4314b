//! The store's index and bookkeeping in sled: which alert uuid has which seq, and the
//! store's own marks. Everything here can be rebuilt from the envelope log except the marks
//! that say what happened to it (retention's pruned mark, recoveries), and those are written
//! durably before anything relies on them.
//!
//! Trees:
//! - `uuid`: alert uuid -> seq (big-endian u64), so an alert re-derived from an event read
//!   again is recognised;
//! - `meta`: [`SCHEMA`] (the store format, see [`SCHEMA_VERSION`]), [`HEAD`] (seq and payload
//!   hash of the last alert made durable), [`SYNCED`] (the log position that was durable with
//!   it), [`HEAD_MARK`] (the head signed by the host key), [`UPLOAD_CURSOR`] and
//!   [`UPLOADED_HEAD`] (seq and payload hash of the last alert the collector accepted), [`COUNTERS`],
//!   [`PRUNED`] (the last alert retention removed, or the last alert of a quarantined store
//!   this one continues), [`RECOVERIES`] (what recovery did to this store, newest last).
//!
//! Other parts of the agent keep small keyed state of their own in trees of this database
//! ([`super::Store::aux_tree`]); the names above are the store's.

use std::path::Path;

use sled::Tree;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::log::Position;
use crate::sign::ChainHead;

/// The store format this agent writes: 2 = envelopes in the log, the index in sled. 1 (no
/// `schema` key) kept envelopes in sled's `alerts` tree; it is migrated on open. A store of a
/// higher version is refused: an older agent cannot know what it would break.
pub const SCHEMA_VERSION: u32 = 2;

pub const SCHEMA: &[u8] = b"schema";
pub const HEAD: &[u8] = b"head";
pub const SYNCED: &[u8] = b"synced";
pub const HEAD_MARK: &[u8] = b"head_mark";
pub const UPLOAD_CURSOR: &[u8] = b"upload_cursor";
/// Seq and payload hash of the alert at the upload cursor: where a store that replaces a
/// damaged one continues, so that its chain extends what the collector holds.
pub const UPLOADED_HEAD: &[u8] = b"uploaded_head";
pub const COUNTERS: &[u8] = b"counters";
pub const PRUNED: &[u8] = b"pruned";
pub const RECOVERIES: &[u8] = b"recoveries";
/// Set while a version-1 store is migrated; present at open = redo the migration.
pub const MIGRATING: &[u8] = b"migrating";
/// Set when the store was migrated from version 1 and has no head mark yet.
pub const MIGRATED: &[u8] = b"migrated_from";

/// How long opening waits for sled's lock to be released before calling the store busy.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The trees, names reserved for the store.
pub const RESERVED_TREES: &[&str] = &["uuid", "meta", "alerts", "time"];

/// sled's page cache bound: keeps the running agent well under its memory budget.
pub const CACHE_CAPACITY_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct Index {
    pub db: sled::Db,
    pub uuids: Tree,
    pub meta: Tree,
}

impl Index {
    /// Opens the database at `path`. sled writes in the background only when asked: the
    /// store flushes it at its own pace (no flusher thread waking the agent twice a second).
    /// Opens (or creates) the index. sled's lock on its directory outlives a dropped `Db` by
    /// a moment: its I/O pool drops the last handle after the flush it waited for has
    /// returned. A store reopened in the same process right after it was closed (a restart
    /// of the pipeline, recovery, the tests) waits that moment out; another process holding
    /// the store is still refused, after [`LOCK_WAIT`].
    pub fn open(path: &Path) -> sled::Result<Index> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_CAPACITY_BYTES)
            .flush_every_ms(None);
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other?,
            }
        };
        Ok(Index {
            uuids: db.open_tree("uuid")?,
            meta: db.open_tree("meta")?,
            db,
        })
    }

    pub fn get_u64(&self, key: &[u8]) -> sled::Result<Option<Option<u64>>> {
        Ok(self
            .meta
            .get(key)?
            .map(|b| b.as_ref().try_into().ok().map(u64::from_be_bytes)))
    }

    pub fn head(&self, key: &[u8]) -> sled::Result<Option<Option<ChainHead>>> {
        Ok(self.meta.get(key)?.map(|b| ChainHead::from_bytes(&b)))
    }

    /// Records alerts made durable: their uuids, the new head, the log position synced with
    /// them and (when given) the head mark, in one transaction.
    pub fn commit(
        &self,
        uuids: &[(String, u64)],
        head: &ChainHead,
        synced: Position,
        mark: Option<&[u8]>,
    ) -> Result<(), TransactionError<()>> {
        let head_bytes = head.to_bytes();
        let synced_bytes = synced.to_bytes();
        (&self.uuids, &self.meta).transaction(|(u, m)| {
            for (uuid, seq) in uuids {
                u.insert(uuid.as_bytes(), &seq.to_be_bytes())?;
            }
            m.insert(HEAD, &head_bytes[..])?;
            m.insert(SYNCED, &synced_bytes[..])?;
            if let Some(mark) = mark {
                m.insert(HEAD_MARK, mark)?;
                m.remove(MIGRATED)?;
            }
            Ok::<_, ConflictableTransactionError<()>>(())
        })
    }
}
