//! Durable alert storage in sled: alerts by seq, index by uuid, chain head and upload cursor.
//!
//! Trees:
//! - `alerts`: seq (big-endian u64) -> DSSE envelope JSON, exactly as signed and uploaded;
//! - `uuid`: alert uuid -> seq, so an alert re-derived from a replayed event is recognised;
//! - `time`: seq -> alert time (big-endian i64 ns), for `alerts list --since`;
//! - `meta`: `head` (chain head seq + payload hash), `upload_cursor` (last seq the collector
//!   accepted), `counters` (event and suppression counters carried across restarts),
//!   `pruned` (seq and payload hash of the last alert removed by retention, see
//!   [`Store::prune`]).
//!
//! One alert is one sled transaction over all four trees, so the chain head never names an
//! alert that is not there; [`Store::append`] then flushes, and only after that may the
//! caller release the ring position of the event behind it. sled allows one process per
//! database: while the agent runs, the CLI goes through the control socket.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sled::Tree;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use crate::sign::chain::open_envelope;
use crate::sign::{ChainHead, SealedAlert, Verifier, VerifyError, payload_hash};
use crate::upload::{Outbox, OutboxError};

/// sled's page cache bound: keeps the running agent well under its memory budget.
pub const CACHE_CAPACITY_BYTES: u64 = 8 * 1024 * 1024;

const HEAD: &[u8] = b"head";
const UPLOAD_CURSOR: &[u8] = b"upload_cursor";
const COUNTERS: &[u8] = b"counters";
const PRUNED: &[u8] = b"pruned";

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
/// a count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub events_received: u64,
    pub events_dropped: u64,
    pub alerts_suppressed: u64,
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

/// The durable alert store. Cloning is cheap and clones share the database, so the reader,
/// uploader and control threads each hold one.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    alerts: Tree,
    index: Tree,
    times: Tree,
    meta: Tree,
    chain_problem: Option<String>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens the store, retrying for up to `patience` while sled's lock is held: sled 0.34
    /// allows one process per database, and the agent starting or stopping, or another CLI
    /// command, may hold it for a moment.
    pub fn open_waiting(dir: &Path, patience: std::time::Duration) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            match Store::open(dir) {
                Err(e @ StoreError::Sled { .. }) if std::time::Instant::now() < deadline => {
                    tracing::debug!("{e}; retrying");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// Opens (or creates, 0700) the database at `dir` and checks that the chain head matches
    /// the last stored alert; a mismatch is logged as an error and kept for `status`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        crate::sign::private_dir(dir).map_err(|e| StoreError::Io {
            path: dir.to_path_buf(),
            op: "prepare directory",
            source: std::io::Error::other(e.to_string()),
        })?;
        let sled_err = |op| {
            let path = dir.to_path_buf();
            move |source| StoreError::Sled { path, op, source }
        };
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_CAPACITY_BYTES)
            .flush_every_ms(Some(500))
            .open()
            .map_err(sled_err("open"))?;
        let tree = |name: &str| db.open_tree(name).map_err(sled_err("open tree"));
        let mut store = Store {
            path: dir.to_path_buf(),
            alerts: tree("alerts")?,
            index: tree("uuid")?,
            times: tree("time")?,
            meta: tree("meta")?,
            db,
            chain_problem: None,
        };
        store.chain_problem = store.check_head()?;
        if let Some(problem) = &store.chain_problem {
            tracing::error!(store = %dir.display(), "alert chain head mismatch: {problem}");
        }
        Ok(store)
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The chain-head mismatch found at open, if any (`status` shows it).
    pub fn chain_problem(&self) -> Option<&str> {
        self.chain_problem.as_deref()
    }

    fn sled_err(&self, op: &'static str) -> impl FnOnce(sled::Error) -> StoreError + '_ {
        move |source| StoreError::Sled {
            path: self.path.clone(),
            op,
            source,
        }
    }

    fn corrupt(&self, what: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what,
        }
    }

    /// The chain head: the last stored alert's seq and payload hash.
    pub fn head(&self) -> Result<ChainHead, StoreError> {
        self.meta_chain_head(HEAD, "read chain head", "chain head")
    }

    /// A (seq, hash) pair kept in the meta tree under `key`; genesis when absent. `op` names
    /// the read in a sled error, `what` the value when it is malformed.
    fn meta_chain_head(
        &self,
        key: &[u8],
        op: &'static str,
        what: &str,
    ) -> Result<ChainHead, StoreError> {
        let read = self.meta.get(key).map_err(self.sled_err(op))?;
        match read {
            None => Ok(ChainHead::GENESIS),
            Some(b) => ChainHead::from_bytes(&b)
                .ok_or_else(|| self.corrupt(format!("{what} ({} bytes)", b.len()))),
        }
    }

    fn check_head(&self) -> Result<Option<String>, StoreError> {
        let head = self.head()?;
        let last = self
            .alerts
            .last()
            .map_err(self.sled_err("read last alert"))?;
        let Some((key, envelope)) = last else {
            return Ok((head.seq != 0)
                .then(|| format!("chain head is seq {} but no alert is stored", head.seq)));
        };
        let seq = seq_from_key(&key).ok_or_else(|| self.corrupt("alert key".into()))?;
        if seq != head.seq {
            return Ok(Some(format!(
                "chain head is seq {} but the last stored alert is seq {seq}",
                head.seq
            )));
        }
        Ok(match open_envelope(&envelope) {
            Err(reason) => Some(format!("last alert (seq {seq}): {reason}")),
            Ok((_, payload)) if payload_hash(&payload) != head.hash => Some(format!(
                "last alert (seq {seq}) does not hash to the chain head"
            )),
            Ok(_) => None,
        })
    }

    /// The seq of the alert with this uuid, if stored.
    pub fn seq_of(&self, uuid: &str) -> Result<Option<u64>, StoreError> {
        let v = self
            .index
            .get(uuid.as_bytes())
            .map_err(self.sled_err("read uuid index"))?;
        v.map(|b| seq_from_key(&b).ok_or_else(|| self.corrupt(format!("uuid index of {uuid}"))))
            .transpose()
    }

    /// Writes one alert (envelope, uuid index, time, chain head) in one transaction, without
    /// flushing: [`Store::append`] for one alert, or several inserts then [`Store::flush`]
    /// (group commit).
    pub fn insert(&self, alert: &SealedAlert) -> Result<Inserted, StoreError> {
        let key = alert.seq.to_be_bytes();
        let new_head = ChainHead {
            seq: alert.seq,
            hash: alert.payload_hash,
        }
        .to_bytes();
        let result = (&self.alerts, &self.index, &self.times, &self.meta).transaction(
            |(alerts, index, times, meta)| {
                if let Some(seq) = index.get(alert.uuid.as_bytes())? {
                    return Ok(Inserted::Duplicate(seq_from_key(&seq).unwrap_or(0)));
                }
                let head = match meta.get(HEAD)? {
                    None => ChainHead::GENESIS,
                    Some(b) => ChainHead::from_bytes(&b).ok_or_else(|| {
                        ConflictableTransactionError::Abort(self.corrupt("chain head".into()))
                    })?,
                };
                if alert.seq != head.seq + 1 {
                    return Err(ConflictableTransactionError::Abort(StoreError::StaleHead {
                        path: self.path.clone(),
                        sealed: alert.seq,
                        head: head.seq,
                    }));
                }
                alerts.insert(&key, alert.envelope.as_slice())?;
                index.insert(alert.uuid.as_bytes(), &key)?;
                times.insert(&key, &alert.time_ns.to_be_bytes())?;
                meta.insert(HEAD, &new_head[..])?;
                Ok(Inserted::Stored)
            },
        );
        match result {
            Ok(done) => Ok(done),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(source)) => Err(StoreError::Sled {
                path: self.path.clone(),
                op: "write alert",
                source,
            }),
        }
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(self.sled_err("flush"))?;
        Ok(())
    }

    /// [`Store::insert`] then [`Store::flush`]: once this returns `Ok`, the alert survives
    /// `kill -9` and power loss (as far as the file system keeps its promises).
    pub fn append(&self, alert: &SealedAlert) -> Result<Inserted, StoreError> {
        let done = self.insert(alert)?;
        if done == Inserted::Stored {
            self.flush()?;
        }
        Ok(done)
    }

    /// The envelope stored under `seq`.
    pub fn envelope(&self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .alerts
            .get(seq.to_be_bytes())
            .map_err(self.sled_err("read alert"))?
            .map(|v| v.to_vec()))
    }

    /// Up to `max` alerts with seq >= `from`, in seq order.
    pub fn range(&self, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.alerts.range(from.to_be_bytes()..).take(max) {
            let (k, v) = item.map_err(self.sled_err("read alerts"))?;
            let seq = seq_from_key(&k).ok_or_else(|| self.corrupt("alert key".into()))?;
            out.push((seq, v.to_vec()));
        }
        Ok(out)
    }

    /// The alert time recorded for `seq`, Unix nanoseconds.
    pub fn time_of(&self, seq: u64) -> Result<Option<i64>, StoreError> {
        let v = self
            .times
            .get(seq.to_be_bytes())
            .map_err(self.sled_err("read alert time"))?;
        Ok(v.and_then(|b| b.as_ref().try_into().ok().map(i64::from_be_bytes)))
    }

    /// The last seq the collector accepted (0 = none).
    pub fn upload_cursor(&self) -> Result<u64, StoreError> {
        let v = self
            .meta
            .get(UPLOAD_CURSOR)
            .map_err(self.sled_err("read upload cursor"))?;
        match v {
            None => Ok(0),
            Some(b) => seq_from_key(&b).ok_or_else(|| self.corrupt("upload cursor".into())),
        }
    }

    /// Records that the collector accepted every alert up to `seq` (never moves backwards).
    pub fn set_upload_cursor(&self, seq: u64) -> Result<(), StoreError> {
        let current = self.upload_cursor()?;
        if seq <= current {
            return Ok(());
        }
        self.meta
            .insert(UPLOAD_CURSOR, &seq.to_be_bytes())
            .map_err(self.sled_err("write upload cursor"))?;
        self.flush()
    }

    /// Alerts stored but not yet accepted by the collector.
    pub fn pending_upload(&self) -> Result<u64, StoreError> {
        Ok(self.head()?.seq.saturating_sub(self.upload_cursor()?))
    }

    /// The counters saved by the last run (zeros for a new store).
    pub fn counters(&self) -> Result<Counters, StoreError> {
        let v = self
            .meta
            .get(COUNTERS)
            .map_err(self.sled_err("read counters"))?;
        match v {
            None => Ok(Counters::default()),
            Some(b) => {
                serde_json::from_slice(&b).map_err(|e| self.corrupt(format!("counters: {e}")))
            }
        }
    }

    /// Saves the counters; they reach disk with the next flush (sled's own within 500 ms).
    pub fn save_counters(&self, counters: &Counters) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec(counters).map_err(|e| self.corrupt(format!("counters: {e}")))?;
        self.meta
            .insert(COUNTERS, bytes)
            .map_err(self.sled_err("write counters"))?;
        Ok(())
    }
}

impl Store {
    /// The last alert removed by retention (seq and payload hash), or genesis when none was.
    pub fn pruned(&self) -> Result<ChainHead, StoreError> {
        self.meta_chain_head(PRUNED, "read the pruned mark", "pruned mark")
    }

    /// Retention: removes the oldest alerts so that about `retain` stay, in batches of
    /// [`PRUNE_BATCH`]. With `uploaded_only`, only alerts the collector has accepted (at or
    /// below the upload cursor) are removed, so an alert that exists nowhere else is never
    /// lost to retention. The seq and payload hash of the last removed alert are kept, and
    /// `verify` checks the chain from there. Returns how many alerts were removed.
    ///
    /// Why at all: sled 0.34 keeps in memory the location of every page it has written, and
    /// each alert adds about one page, so an agent that kept every alert would grow without
    /// bound in memory as on disk.
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
    /// removal, removes the oldest of them, at most `max`, in one transaction (not flushed:
    /// the caller's next flush makes it durable, and until then a crash only brings the
    /// removed alerts back). Returns how many were removed. The agent's reader calls this at
    /// each checkpoint with a small `max`, so that no single step holds up the events behind it.
    pub fn prune_step(
        &self,
        retain: u64,
        uploaded_only: bool,
        min_due: u64,
        max: u64,
    ) -> Result<u64, StoreError> {
        let head = self.head()?;
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
        for item in self
            .alerts
            .range((pruned.seq + 1).to_be_bytes()..=last.to_be_bytes())
        {
            let (k, envelope) = item.map_err(self.sled_err("read alerts to prune"))?;
            let seq = seq_from_key(&k).ok_or_else(|| self.corrupt("alert key".into()))?;
            let (_, payload) = open_envelope(&envelope)
                .map_err(|r| self.corrupt(format!("alert {seq} (pruning): {r}")))?;
            if seq == last {
                last_hash = Some(payload_hash(&payload));
            }
            uuids.push((seq, alert_uuid_of(&payload)));
        }
        let Some(hash) = last_hash else {
            return Err(self.corrupt(format!("alert {last} is missing (pruning)")));
        };
        let mark = ChainHead { seq: last, hash }.to_bytes();
        let done = (&self.alerts, &self.index, &self.times, &self.meta).transaction(
            |(alerts, index, times, meta)| {
                for (seq, uuid) in &uuids {
                    let key = seq.to_be_bytes();
                    alerts.remove(&key)?;
                    times.remove(&key)?;
                    if let Some(uuid) = uuid {
                        index.remove(uuid.as_bytes())?;
                    }
                }
                meta.insert(PRUNED, &mark[..])?;
                Ok(())
            },
        );
        done.map_err(|e: TransactionError<StoreError>| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(source) => StoreError::Sled {
                path: self.path.clone(),
                op: "prune alerts",
                source,
            },
        })?;
        Ok(uuids.len() as u64)
    }

    /// A chain verifier for this store: it starts after the last alert retention removed.
    pub fn verifier(&self, public_key: &[u8]) -> Result<Verifier, StoreError> {
        Ok(Verifier::resume_after(public_key, &self.pruned()?))
    }

    /// Checks every stored signature against `public_key` and the whole chain, up to the
    /// chain head, starting after the last alert retention removed. The inner error names
    /// the first bad seq.
    pub fn verify(&self, public_key: &[u8]) -> Result<Result<u64, VerifyError>, StoreError> {
        let head = self.head()?;
        let mut verifier = self.verifier(public_key)?;
        for item in self.alerts.iter() {
            let (k, v) = item.map_err(self.sled_err("read alerts"))?;
            let seq = seq_from_key(&k).ok_or_else(|| self.corrupt("alert key".into()))?;
            if let Err(e) = verifier.check(seq, &v) {
                return Ok(Err(e));
            }
        }
        Ok(verifier.finish(&head))
    }
}

/// `kibana.alert.uuid` of an alert payload.
fn alert_uuid_of(payload: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(payload).ok()?;
    doc.pointer("/kibana/alert/uuid")?
        .as_str()
        .map(str::to_owned)
}

fn seq_from_key(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

impl Outbox for Store {
    fn pending(&self, max: usize) -> Result<Vec<(u64, Vec<u8>)>, OutboxError> {
        let cursor = self
            .upload_cursor()
            .map_err(|e| OutboxError::with_source("reading the upload cursor", e))?;
        self.range(cursor + 1, max)
            .map_err(|e| OutboxError::with_source(format!("reading alerts after seq {cursor}"), e))
    }

    fn mark_sent(&self, through_seq: u64) -> Result<(), OutboxError> {
        self.set_upload_cursor(through_seq).map_err(|e| {
            OutboxError::with_source(format!("moving the upload cursor to seq {through_seq}"), e)
        })
    }
}
