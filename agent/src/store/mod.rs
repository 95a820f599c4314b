//! Durable alert storage: signed envelopes in an append-only log, their index and the
//! store's marks in sled.
//!
//! - [`log`]: the envelope log (segments of [`record`]s), read with `pread`;
//! - [`index`]: the sled trees (uuid -> seq, and the meta marks), and the schema version;
//! - [`sync`]: durability on the medium (`fdatasync`, `F_FULLFSYNC`);
//! - [`recovery`]: what opening does with a damaged store (rebuild the index, quarantine);
//! - [`migrate`]: the version-1 store (envelopes in sled) into this one.
//!
//! # Durability
//!
//! [`Store::insert`] appends an alert to the log; [`Store::commit`] makes every alert
//! appended so far durable (one `fdatasync` for all of them: group commit) and only then
//! records it in the index. The caller releases the ring position of an event only after
//! the commit that covers its alerts returned, so an alert whose event is gone from the ring
//! is on the medium, power loss or not. The upload only ever offers durable alerts, so the
//! collector never holds an alert that a power loss could make this host seal differently.
//!
//! The index may lag the log after a crash (it is written after the log's sync); opening
//! then indexes the log's newer records. It never runs ahead of the log, so an alert it
//! knows is an alert the log holds.
//!
//! # Memory
//!
//! Reading alerts (list, export, verify, upload) reads the log into one chunk's buffers and
//! nothing else: the index is not touched, so sled's cache does not grow with what is read.
//! The agent's memory is therefore bounded whatever the number of alerts read (see
//! docs/operating.md, "Memory and disk", and `scripts/bench store`).

pub mod index;
pub mod log;
mod migrate;
pub mod record;
pub mod recovery;
pub mod sync;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use nightjar_proto::fleet::HeartbeatChainHead;
use nightjar_proto::trusted_dir::TrustedDir;
use serde::{Deserialize, Serialize};
use sled::transaction::{TransactionError, Transactional};

use crate::sign::{ChainHead, SealedAlert, Verifier, VerifyError};
use crate::upload::{Outbox, OutboxError};
use index::{Index, RESERVED_TREES};
use log::{Item, Log, LogError};
pub use recovery::{Recovery, RecoveryKind};

pub use index::{CACHE_CAPACITY_BYTES, SCHEMA_VERSION};

/// Alerts removed per transaction when pruning; pruning waits until this many are due, so
/// it runs now and then, not after every alert.
pub const PRUNE_BATCH: u64 = 256;

/// Why a store operation failed. A write error means the alert is not durable: the caller
/// must not release the ring position of its event.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("alert store {path}: {op}: {source}")]
    Sled {
        path: PathBuf,
        op: &'static str,
        source: sled::Error,
    },
    #[error("alert store {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error(
        "alert store {path}: alert sealed as seq {sealed} but the chain head is seq {head}; reseal it"
    )]
    StaleHead {
        path: PathBuf,
        sealed: u64,
        head: u64,
    },
    #[error("alert store {path}: corrupt {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("alert store {path}: refusing to open it: {reason}")]
    Untrusted { path: PathBuf, reason: String },
    #[error(
        "alert store {path}: format version {found}, but this agent knows versions up to {SCHEMA_VERSION}: \
         it was written by a newer agent; run that agent (or move the store aside to start a new one)"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("alert store {}: {source}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: LogError,
    },
}

/// What [`Store::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The alert is now in the store.
    Stored,
    /// An alert with this uuid was already stored (at this seq); nothing was written.
    Duplicate(u64),
}

/// Counters the running agent keeps across restarts, so `status` stays meaningful. They are
/// saved with the ring position they correspond to, so a restart neither loses nor repeats
/// a count (a power loss, which also loses the ring, may lose the last few).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub events_received: u64,
    pub events_dropped: u64,
    pub alerts_suppressed: u64,
    /// File (and other) events the sensor's filters left out: no loaded rule could match.
    pub events_filtered: u64,
    /// Execs the sensor stopped for a blocking rule.
    pub exec_blocked: u64,
    /// Execs a blocking rule could have stopped but that were let through because the
    /// sensor could not decide in time (fail open).
    pub block_failed_open: u64,
    /// Matches an exception excepted (no alert made).
    pub alerts_excepted: u64,
    /// The ring header's loss counters already added to `events_dropped`, and the ring
    /// generation they belong to (a new generation starts them from zero).
    pub ring: RingSeen,
}

/// Loss counters read from a ring header (they outlive the agent, in shared memory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RingSeen {
    pub generation: u64,
    pub drops: u64,
    pub upstream_loss: u64,
}

/// One alert as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Alert {
        seq: u64,
        /// Alert time, Unix nanoseconds.
        time_ns: i64,
        envelope: Vec<u8>,
    },
    /// A record that does not check: `verify` fails there, `list` reports it.
    Damaged { seq: Option<u64>, reason: String },
}

/// How a store is opened (tests and benches shrink the segments).
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    pub segment_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_bytes: log::SEGMENT_BYTES,
        }
    }
}

/// The outcome of [`Store::verify`] when every check passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The seq of the last alert verified (the chain head).
    pub through: u64,
    /// Said when the newest alerts are not yet covered by the signed head mark (the agent
    /// stopped, or crashed, before marking them; it marks them when it starts).
    pub note: Option<String>,
}

/// The durable alert store. Cloning is cheap and clones share it, so the reader, uploader
/// and control threads each hold one.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// The index directory as configured (`state_dir/alerts.sled`): names the store in
    /// messages.
    path: PathBuf,
    index_dir: TrustedDir,
    index: Index,
    writer: Mutex<Writer>,
    chain_problem: Option<String>,
    recovery: Option<Recovery>,
}

/// What the reader thread changes; readers take it briefly.
struct Writer {
    log: Log,
    /// The last alert appended (durable or not).
    head: ChainHead,
    /// The last alert made durable.
    durable: ChainHead,
    /// Appended, not yet durable nor indexed: (uuid, seq).
    pending: Vec<(String, u64)>,
    pending_by_uuid: HashMap<String, u64>,
    /// Where the head mark was last signed (to re-sign only when it moved).
    marked: Option<ChainHead>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// The log directory of the store whose index is `dir`: `alerts.sled` -> `alerts.log`.
pub fn log_dir_of(dir: &Path) -> PathBuf {
    dir.with_extension("log")
}

impl Store {
    /// Opens the store, retrying for up to `patience` while sled's lock is held: sled 0.34
    /// allows one process per database, and the agent starting or stopping, or another CLI
    /// command, may hold it for a moment.
    pub fn open_waiting(dir: &Path, patience: std::time::Duration) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match Store::open(dir) {
                Err(e) if recovery::is_busy(&e) && std::time::Instant::now() < deadline => {
                    tracing::debug!("{e}; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// Opens (or creates, 0700) the store whose index is `dir` and whose log is beside it
    /// ([`log_dir_of`]), with the default options.
    ///
    /// `dir`, its log and every directory above them must pass the state directory's checks,
    /// and every entry of the index must be one sled could have made (see
    /// [`crate::state_dir::check_store_entries`]): sled opens its files by path and would
    /// follow a planted link. A damaged index is rebuilt from the log; a log damaged beyond
    /// that is quarantined and a new store continues the chain ([`recovery`]).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, StoreOptions::default())
    }

    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        recovery::open(dir, options)
    }

    fn from_parts(
        path: PathBuf,
        index_dir: TrustedDir,
        index: Index,
        log: Log,
        head: ChainHead,
        chain_problem: Option<String>,
        recovery: Option<Recovery>,
    ) -> Store {
        Store {
            inner: Arc::new(Inner {
                path,
                index_dir,
                index,
                writer: Mutex::new(Writer {
                    log,
                    head,
                    durable: head,
                    pending: Vec::new(),
                    pending_by_uuid: HashMap::new(),
                    marked: None,
                }),
                chain_problem,
                recovery,
            }),
        }
    }

    /// Where the index lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The chain-head mismatch found at open, if any (`status` shows it).
    pub fn chain_problem(&self) -> Option<&str> {
        self.inner.chain_problem.as_deref()
    }

    /// What opening had to repair, when it was loud enough to report (`status` shows it).
    pub fn recovery(&self) -> Option<&Recovery> {
        self.inner.recovery.as_ref()
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock leaves the writer as it was before the call that
        // panicked (appends either completed or were rolled back): keep using it.
        self.inner
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sled_err(&self, op: &'static str) -> impl FnOnce(sled::Error) -> StoreError + '_ {
        move |source| StoreError::Sled {
            path: self.inner.path.clone(),
            op,
            source,
        }
    }

    fn log_err(&self) -> impl FnOnce(LogError) -> StoreError + '_ {
        move |source| StoreError::Log {
            path: self.inner.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: String) -> StoreError {
        StoreError::Corrupt {
            path: self.inner.path.clone(),
            what,
        }
    }

    /// The chain head: the last stored alert's seq and payload hash (durable or not yet).
    pub fn head(&self) -> Result<ChainHead, StoreError> {
        Ok(self.writer().head)
    }

    /// The last alert made durable.
    pub fn durable_head(&self) -> ChainHead {
        self.writer().durable
    }

    /// The seq of the alert with this uuid, if stored.
    pub fn seq_of(&self, uuid: &str) -> Result<Option<u64>, StoreError> {
        let w = self.writer();
        if let Some(&seq) = w.pending_by_uuid.get(uuid) {
            return Ok(Some(seq));
        }
        let found = self
            .inner
            .index
            .uuids
            .get(uuid.as_bytes())
            .map_err(self.sled_err("read uuid index"))?;
        let Some(bytes) = found else {
            return Ok(None);
        };
        let seq = seq_from(&bytes).ok_or_else(|| self.corrupt(format!("uuid index of {uuid}")))?;
        // The index never runs ahead of the log (see the module docs); an entry that does
        // would hide an alert that is not there, so it is not believed.
        Ok((seq <= w.head.seq).then_some(seq))
    }

    /// Appends one alert to the log without making it durable: [`Store::commit`] for that,
    /// once for every alert appended since (group commit). Refused unless it is sealed as
    /// the next seq; a uuid already stored is [`Inserted::Duplicate`].
    pub fn insert(&self, alert: &SealedAlert) -> Result<Inserted, StoreError> {
        if let Some(seq) = self.seq_of(&alert.uuid)? {
            return Ok(Inserted::Duplicate(seq));
        }
        let mut w = self.writer();
        if alert.seq != w.head.seq + 1 {
            return Err(StoreError::StaleHead {
                path: self.inner.path.clone(),
                sealed: alert.seq,
                head: w.head.seq,
            });
        }
        let fields = record::Fields {
            seq: alert.seq,
            time_ns: alert.time_ns,
            hash: alert.payload_hash,
            uuid: &alert.uuid,
            envelope: &alert.envelope,
        };
        if let Err(e) = w.log.append(&fields) {
            return Err(self.log_err()(e));
        }
        w.head = ChainHead {
            seq: alert.seq,
            hash: alert.payload_hash,
        };
        w.pending.push((alert.uuid.clone(), alert.seq));
        w.pending_by_uuid.insert(alert.uuid.clone(), alert.seq);
        Ok(Inserted::Stored)
    }

    /// Makes every alert appended so far durable (one sync of the log for all of them) and
    /// records them in the index. On failure nothing appended since the last commit is kept
    /// (the log is cut back: after a failed sync its data cannot be trusted to reach the
    /// medium), and the caller reads their events again.
    pub fn commit(&self) -> Result<(), StoreError> {
        self.commit_inner(None::<fn(&ChainHead) -> HeartbeatChainHead>)
    }

    /// [`Store::commit`], and signs the head mark with `mark` when the head moved since the
    /// last mark (the agent passes its host key's [`crate::sign::sign_head`]).
    pub fn commit_marked(
        &self,
        mark: impl FnOnce(&ChainHead) -> HeartbeatChainHead,
    ) -> Result<(), StoreError> {
        self.commit_inner(Some(mark))
    }

    fn commit_inner(
        &self,
        mark: Option<impl FnOnce(&ChainHead) -> HeartbeatChainHead>,
    ) -> Result<(), StoreError> {
        let mut w = self.writer();
        let head = w.head;
        let needs_mark = mark.is_some() && w.marked != Some(head) && !self.mark_names(&head);
        if w.pending.is_empty() && !needs_mark {
            return Ok(());
        }
        let synced = match w.log.sync() {
            Ok(p) => p,
            Err(e) => {
                self.roll_back(&mut w);
                return Err(self.log_err()(e));
            }
        };
        w.durable = head;
        let mark_bytes = match mark {
            Some(sign) if needs_mark => {
                let m = sign(&head);
                serde_json::to_vec(&m).ok()
            }
            _ => None,
        };
        let result = self
            .inner
            .index
            .commit(&w.pending, &head, synced, mark_bytes.as_deref());
        match result {
            Ok(()) => {
                w.pending.clear();
                w.pending_by_uuid.clear();
                if mark_bytes.is_some() {
                    w.marked = Some(head);
                }
                Ok(())
            }
            // The alerts are durable in the log; the index entries are retried with the next
            // commit (and opening indexes the log's newer records anyway).
            Err(TransactionError::Storage(source)) => Err(StoreError::Sled {
                path: self.inner.path.clone(),
                op: "index durable alerts",
                source,
            }),
            Err(TransactionError::Abort(())) => Err(self.corrupt("index transaction".into())),
        }
    }

    fn mark_names(&self, head: &ChainHead) -> bool {
        self.head_mark()
            .ok()
            .flatten()
            .is_some_and(|m| crate::sign::head::names(&m, head))
    }

    fn roll_back(&self, w: &mut Writer) {
        if let Err(e) = w.log.roll_back() {
            tracing::error!(store = %self.inner.path.display(), "cannot roll the log back: {e}");
        }
        w.head = w.durable;
        w.pending.clear();
        w.pending_by_uuid.clear();
    }

    /// [`Store::commit`], then writes sled's own state (counters, cursor) to the operating
    /// system, so that it survives the agent being killed (`kill -9`).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.commit()?;
        self.inner
            .index
            .db
            .flush()
            .map_err(self.sled_err("flush the index"))?;
        Ok(())
    }

    /// [`Store::insert`] then [`Store::flush`]: once this returns `Ok`, the alert survives
    /// `kill -9` and power loss.
    pub fn append(&self, alert: &SealedAlert) -> Result<Inserted, StoreError> {
        let done = self.insert(alert)?;
        if done == Inserted::Stored {
            self.flush()?;
        }
        Ok(done)
    }

    /// Makes the index's own files durable (`fdatasync` of each, `fsync` of its directory):
    /// before anything relies on a mark only the index holds (retention's, a recovery's).
    pub fn sync_index(&self) -> Result<(), StoreError> {
        self.inner
            .index
            .db
            .flush()
            .map_err(self.sled_err("flush the index"))?;
        recovery::sync_tree(&self.inner.index_dir).map_err(|source| StoreError::Io {
            path: self.inner.path.clone(),
            op: "sync the index",
            source,
        })
    }

    /// Up to `max` alerts with seq >= `from` (damaged records included as such), in order.
    pub fn read(&self, from: u64, max: usize) -> Result<Vec<Stored>, StoreError> {
        let from = from.max(self.pruned()?.seq + 1);
        let mut out = Vec::new();
        let w = self.writer();
        w.log
            .read_from(from, max, true, |item| {
                out.push(match item {
                    Item::Record {
                        seq,
                        time_ns,
                        envelope,
                        ..
                    } => Stored::Alert {
                        seq,
                        time_ns,
                        envelope,
                    },
                    Item::Damaged { seq, reason } => Stored::Damaged { seq, reason },
                });
                true
            })
            .map_err(self.log_err())?;
        Ok(out)
    }

    /// Up to `max` intact alerts with seq >= `from`, in seq order (damaged ones left out).
    pub fn range(&self, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .read(from, max)?
            .into_iter()
            .filter_map(|s| match s {
                Stored::Alert { seq, envelope, .. } => Some((seq, envelope)),
                Stored::Damaged { seq, reason } => {
                    tracing::warn!(seq, "alert store: skipping a damaged record: {reason}");
                    None
                }
            })
            .collect())
    }

    /// The envelope stored under `seq` (None when absent, pruned or damaged).
    pub fn envelope(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(seq)?.and_then(|s| match s {
            Stored::Alert { envelope, .. } => Some(envelope),
            Stored::Damaged { .. } => None,
        }))
    }

    /// The record stored under `seq`, damaged or not.
    pub fn get(&self, seq: u64) -> Result<Option<Stored>, StoreError> {
        if seq == 0 || seq <= self.pruned()?.seq {
            return Ok(None);
        }
        let w = self.writer();
        let item = w.log.get(seq).map_err(self.log_err())?;
        Ok(item.map(|item| match item {
            Item::Record {
                seq,
                time_ns,
                envelope,
                ..
            } => Stored::Alert {
                seq,
                time_ns,
                envelope,
            },
            Item::Damaged { seq, reason } => Stored::Damaged { seq, reason },
        }))
    }

    /// The alert time recorded for `seq`, Unix nanoseconds.
    pub fn time_of(&self, seq: u64) -> Result<Option<i64>, StoreError> {
        Ok(self.get(seq)?.and_then(|s| match s {
            Stored::Alert { time_ns, .. } => Some(time_ns),
            Stored::Damaged { .. } => None,
        }))
    }

    /// The last seq the collector accepted (0 = none).
    pub fn upload_cursor(&self) -> Result<u64, StoreError> {
        match self
            .inner
            .index
            .get_u64(index::UPLOAD_CURSOR)
            .map_err(self.sled_err("read upload cursor"))?
        {
            None => Ok(0),
            Some(Some(seq)) => Ok(seq),
            Some(None) => Err(self.corrupt("upload cursor".into())),
        }
    }

    /// Records that the collector accepted every alert up to `seq` (never moves backwards).
    pub fn set_upload_cursor(&self, seq: u64) -> Result<(), StoreError> {
        let current = self.upload_cursor()?;
        if seq <= current {
            return Ok(());
        }
        // The accepted alert's hash goes with the cursor: if this store is ever damaged, its
        // successor continues the chain from what the collector holds (see `recovery`).
        if let Some(hash) = self
            .envelope(seq)?
            .as_deref()
            .and_then(record::hash_of_envelope)
        {
            self.inner
                .index
                .meta
                .insert(
                    index::UPLOADED_HEAD,
                    &ChainHead { seq, hash }.to_bytes()[..],
                )
                .map_err(self.sled_err("write the uploaded head"))?;
        }
        self.inner
            .index
            .meta
            .insert(index::UPLOAD_CURSOR, &seq.to_be_bytes())
            .map_err(self.sled_err("write upload cursor"))?;
        self.inner
            .index
            .db
            .flush()
            .map_err(self.sled_err("flush the index"))?;
        Ok(())
    }

    /// Alerts stored but not yet accepted by the collector.
    pub fn pending_upload(&self) -> Result<u64, StoreError> {
        Ok(self.head()?.seq.saturating_sub(self.upload_cursor()?))
    }

    /// The counters saved by the last run (zeros for a new store).
    pub fn counters(&self) -> Result<Counters, StoreError> {
        let v = self
            .inner
            .index
            .meta
            .get(index::COUNTERS)
            .map_err(self.sled_err("read counters"))?;
        match v {
            None => Ok(Counters::default()),
            Some(b) => {
                serde_json::from_slice(&b).map_err(|e| self.corrupt(format!("counters: {e}")))
            }
        }
    }

    /// Saves the counters; they reach the operating system with the next [`Store::flush`].
    pub fn save_counters(&self, counters: &Counters) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec(counters).map_err(|e| self.corrupt(format!("counters: {e}")))?;
        self.inner
            .index
            .meta
            .insert(index::COUNTERS, bytes)
            .map_err(self.sled_err("write counters"))?;
        Ok(())
    }

    /// The last head mark signed with the host key (see [`crate::sign::head`]).
    pub fn head_mark(&self) -> Result<Option<HeartbeatChainHead>, StoreError> {
        let v = self
            .inner
            .index
            .meta
            .get(index::HEAD_MARK)
            .map_err(self.sled_err("read the head mark"))?;
        v.map(|b| serde_json::from_slice(&b).map_err(|e| self.corrupt(format!("head mark: {e}"))))
            .transpose()
    }

    /// When this store continues a quarantined one and has no alert of its own yet: what
    /// the next alert must record in `nightjar.recovered_from` (the last verified seq and
    /// hash of the old store, and why it was set aside).
    pub fn continuation(&self) -> Option<serde_json::Value> {
        let r = self.inner.recovery.as_ref()?;
        let after = r.continued_after.as_ref()?;
        (self.writer().head.seq == after.seq).then(|| r.note())
    }

    /// A tree of the store's database for other parts of the agent to keep small keyed
    /// state in (a rule's first-seen history, say), under a name of their own. It shares the
    /// store's lifetime and flushes, not its alert bookkeeping.
    pub fn aux_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        if RESERVED_TREES.contains(&name) {
            return Err(self.corrupt(format!("tree name {name:?} is the store's own")));
        }
        self.inner
            .index
            .db
            .open_tree(name)
            .map_err(self.sled_err("open tree"))
    }
}

impl Store {
    /// The last alert removed by retention (seq and payload hash), or, in a store that
    /// continues a quarantined one, the old store's last verified alert; genesis when
    /// neither.
    pub fn pruned(&self) -> Result<ChainHead, StoreError> {
        match self
            .inner
            .index
            .head(index::PRUNED)
            .map_err(self.sled_err("read the pruned mark"))?
        {
            None => Ok(ChainHead::GENESIS),
            Some(Some(h)) => Ok(h),
            Some(None) => Err(self.corrupt("pruned mark".into())),
        }
    }

    /// Retention: removes the oldest alerts so that about `retain` stay, in batches of
    /// [`PRUNE_BATCH`]. With `uploaded_only`, only alerts the collector has accepted (at or
    /// below the upload cursor) are removed, so an alert that exists nowhere else is never
    /// lost to retention. The seq and payload hash of the last removed alert are kept, and
    /// `verify` checks the chain from there. Returns how many alerts were removed.
    pub fn prune(&self, retain: u64, uploaded_only: bool) -> Result<u64, StoreError> {
        let mut removed = self.prune_step(retain, uploaded_only, PRUNE_BATCH, PRUNE_BATCH)?;
        if removed > 0 {
            loop {
                let n = self.prune_step(retain, uploaded_only, 1, PRUNE_BATCH)?;
                removed += n;
                if n < PRUNE_BATCH {
                    break;
                }
            }
            self.flush()?;
        }
        Ok(removed)
    }

    /// One bounded step of [`Store::prune`]: when at least `min_due` alerts are due for
    /// removal, removes the oldest of them, at most `max`: their uuids leave the index and
    /// the pruned mark moves past them, in one transaction. Whole log segments below the
    /// mark are then deleted, once the mark is durable. Returns how many alerts were
    /// removed. The agent's reader calls this at each checkpoint with a small `max`, so that
    /// no single step holds up the events behind it.
    pub fn prune_step(
        &self,
        retain: u64,
        uploaded_only: bool,
        min_due: u64,
        max: u64,
    ) -> Result<u64, StoreError> {
        let head = self.durable_head();
        let mut through = head.seq.saturating_sub(retain);
        if uploaded_only {
            through = through.min(self.upload_cursor()?);
        }
        let pruned = self.pruned()?;
        if through < pruned.seq + min_due.max(1) || max == 0 {
            return Ok(0);
        }
        let last = through.min(pruned.seq + max);
        let mut uuids = Vec::new();
        let mut last_hash = None;
        {
            let w = self.writer();
            w.log
                .read_from(pruned.seq + 1, usize::MAX, false, |item| match item {
                    Item::Record {
                        seq, hash, uuid, ..
                    } if seq <= last => {
                        if seq == last {
                            last_hash = Some(hash);
                        }
                        uuids.push(uuid);
                        seq < last
                    }
                    Item::Record { .. } => false,
                    Item::Damaged { .. } => true,
                })
                .map_err(self.log_err())?;
        }
        let Some(hash) = last_hash else {
            return Err(self.corrupt(format!("alert {last} is missing (pruning)")));
        };
        let removed = uuids.len() as u64;
        let mark = ChainHead { seq: last, hash }.to_bytes();
        let done = (&self.inner.index.uuids, &self.inner.index.meta).transaction(|(u, m)| {
            for uuid in &uuids {
                u.remove(uuid.as_bytes())?;
            }
            m.insert(index::PRUNED, &mark[..])?;
            Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
        });
        done.map_err(|e| match e {
            TransactionError::Abort(()) => self.corrupt("prune transaction".into()),
            TransactionError::Storage(source) => StoreError::Sled {
                path: self.inner.path.clone(),
                op: "prune alerts",
                source,
            },
        })?;
        if self
            .writer()
            .log
            .first_seq()
            .is_some_and(|first| first <= last)
        {
            self.release_segments(last)?;
        }
        Ok(removed)
    }

    /// Deletes the log segments wholly at or below `through`, once the pruned mark that
    /// covers them is durable (so a crash never leaves a mark behind deleted alerts).
    fn release_segments(&self, through: u64) -> Result<(), StoreError> {
        let mut w = self.writer();
        // Only worth a sync when a whole segment is below the mark.
        if !w.log_has_segment_below(through) {
            return Ok(());
        }
        drop(w);
        self.sync_index()?;
        w = self.writer();
        let n = w.log.remove_through(through).map_err(self.log_err())?;
        if n > 0 {
            tracing::debug!(segments = n, through, "retention: log segments removed");
        }
        Ok(())
    }

    /// A chain verifier for this store: it starts after the last alert retention removed.
    pub fn verifier(&self, public_key: &[u8]) -> Result<Verifier, StoreError> {
        Ok(Verifier::resume_after(public_key, &self.pruned()?))
    }

    /// Checks every stored signature against `public_key`, the whole chain up to the chain
    /// head (starting after the last alert retention removed), and the signed head mark.
    /// The inner error names the first bad seq.
    pub fn verify(&self, public_key: &[u8]) -> Result<Result<Verified, VerifyError>, StoreError> {
        let mut check = ChainCheck::new(self, public_key)?;
        let mut next = 1;
        loop {
            let chunk = self.read(next, 256)?;
            for item in &chunk {
                if let Err(e) = check.check(item) {
                    return Ok(Err(e));
                }
            }
            match next_after(&chunk) {
                Some(n) => next = n,
                None => break,
            }
        }
        Ok(check.finish(&self.head()?))
    }
}

impl Writer {
    fn log_has_segment_below(&self, through: u64) -> bool {
        self.log.first_seq().is_some_and(|f| f <= through) && self.log.segments_below(through)
    }
}

/// The verification walk over a store's alerts: the chain ([`Verifier`]) and the signed
/// head mark. One walk for `verify` at rest and through the agent.
pub struct ChainCheck {
    chain: Verifier,
    public_key: Vec<u8>,
    mark: Option<HeartbeatChainHead>,
    /// Where the chain starts (genesis, or the last alert retention removed).
    start: ChainHead,
    /// The payload hash of the alert the mark names, once walked past.
    marked_hash: Option<[u8; 32]>,
    /// `nightjar.host_id` of the first alert checked: the mark is signed for it.
    host: Option<String>,
    migrated_unmarked: bool,
}

impl ChainCheck {
    pub fn new(store: &Store, public_key: &[u8]) -> Result<ChainCheck, StoreError> {
        let migrated_unmarked = store
            .inner
            .index
            .meta
            .get(index::MIGRATED)
            .map_err(store.sled_err("read meta"))?
            .is_some();
        let start = store.pruned()?;
        Ok(ChainCheck {
            chain: Verifier::resume_after(public_key, &start),
            public_key: public_key.to_vec(),
            mark: store.head_mark()?,
            start,
            marked_hash: None,
            host: None,
            migrated_unmarked,
        })
    }

    /// Checks the next item read from the store.
    pub fn check(&mut self, item: &Stored) -> Result<(), VerifyError> {
        match item {
            Stored::Alert { seq, envelope, .. } => {
                self.chain.check(*seq, envelope)?;
                if self.host.is_none() {
                    self.host = crate::sign::chain::open_envelope(envelope)
                        .ok()
                        .and_then(|(_, p)| serde_json::from_slice::<serde_json::Value>(&p).ok())
                        .and_then(|d| d["nightjar"]["host_id"].as_str().map(str::to_owned));
                }
                if self.mark.as_ref().is_some_and(|m| m.seq == *seq) {
                    self.marked_hash = Some(self.chain.head().hash);
                }
                Ok(())
            }
            Stored::Damaged { seq, reason } => {
                let at = seq.unwrap_or(self.chain.head().seq + 1);
                Err(VerifyError {
                    seq: at,
                    reason: reason.clone(),
                })
            }
        }
    }

    /// Ends the walk: the chain must end at `head`, and the head mark must be signed by the
    /// host key and name an alert of this chain (the head itself, or an earlier one when the
    /// newest alerts were not yet marked: said in [`Verified::note`]).
    pub fn finish(self, head: &ChainHead) -> Result<Verified, VerifyError> {
        let last = self.chain.head();
        let through = self.chain.finish(head)?;
        let fail = |seq: u64, reason: String| VerifyError { seq, reason };
        let Some(mark) = self.mark else {
            if head.seq == self.start.seq || self.migrated_unmarked {
                let note = (head.seq > self.start.seq).then(|| {
                    "no alert is covered by a signed head mark yet (a store from before head \
                     marks: the agent marks it when it starts)"
                        .to_string()
                });
                return Ok(Verified { through, note });
            }
            return Err(fail(
                head.seq,
                "the signed head mark is missing (it was removed from the store)".into(),
            ));
        };
        if mark.seq > head.seq {
            return Err(fail(
                head.seq + 1,
                format!(
                    "missing: the signed head mark names seq {} but the store ends at seq {} \
                     (alerts {}..={} were removed)",
                    mark.seq,
                    head.seq,
                    head.seq + 1,
                    mark.seq
                ),
            ));
        }
        let named = if mark.seq == self.start.seq {
            self.start.hash
        } else if let Some(hash) = self.marked_hash {
            hash
        } else {
            return Err(fail(
                mark.seq,
                format!(
                    "the signed head mark names seq {}, which is not among the alerts checked",
                    mark.seq
                ),
            ));
        };
        if mark.hash != crate::sign::hex(&named) {
            return Err(fail(
                mark.seq,
                "payload does not match the signed head mark (the alert was replaced)".into(),
            ));
        }
        // With no alert at all there is no host id to check the signature for, and nothing
        // a mark could protect.
        if let Some(host) = &self.host {
            crate::sign::verify_head_mark(&self.public_key, host, &mark)
                .map_err(|reason| fail(mark.seq, reason))?;
        }
        let note = (mark.seq < last.seq).then(|| {
            format!(
                "alerts {}..={} are not yet covered by the signed head mark (the agent stopped \
                 before marking them; it marks them when it starts)",
                mark.seq + 1,
                last.seq
            )
        });
        Ok(Verified { through, note })
    }
}

/// Where reading goes on after `chunk`: past the last record it named (a hole it reported
/// is not met again from there). `None` when it named none: the end.
pub fn next_after(chunk: &[Stored]) -> Option<u64> {
    chunk.iter().rev().find_map(|s| match s {
        Stored::Alert { seq, .. } | Stored::Damaged { seq: Some(seq), .. } => Some(seq + 1),
        Stored::Damaged { seq: None, .. } => None,
    })
}

fn seq_from(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

impl Outbox for Store {
    /// Only durable alerts are offered: the collector must never hold an alert that a power
    /// loss could make this host seal again differently.
    fn pending(&self, max: usize) -> Result<Vec<(u64, Vec<u8>)>, OutboxError> {
        let cursor = self
            .upload_cursor()
            .map_err(|e| OutboxError::with_source("reading the upload cursor", e))?;
        let durable = self.durable_head().seq;
        let mut out = self.range(cursor + 1, max).map_err(|e| {
            OutboxError::with_source(format!("reading alerts after seq {cursor}"), e)
        })?;
        out.retain(|(seq, _)| *seq <= durable);
        Ok(out)
    }

    fn mark_sent(&self, through_seq: u64) -> Result<(), OutboxError> {
        self.set_upload_cursor(through_seq).map_err(|e| {
            OutboxError::with_source(format!("moving the upload cursor to seq {through_seq}"), e)
        })
    }
}
