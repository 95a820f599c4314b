//! Opening a store, and what opening does when the store is damaged, so that a damaged
//! store never ends alerting:
//!
//! - **the index does not open** (sled refuses its files, or panics reading them, or its
//!   marks are garbage): the index directory is moved aside
//!   (`alerts.sled.quarantine-<unix time>`) and rebuilt from the log. No alert is lost and
//!   the chain goes on unbroken; only counters and the upload cursor start again (the
//!   collector takes re-sent alerts as re-deliveries). Reported as
//!   [`RecoveryKind::IndexRebuilt`].
//! - **the log is damaged** where records were durable, and nothing after the damage checks:
//!   the whole store (log and index) is moved to `alerts.quarantine-<unix time>/` and a new
//!   store starts whose chain continues after the last intact alert found (its seq and
//!   hash become the new store's starting mark, so `verify` of the new store starts there),
//!   and whose first alert names it in `nightjar.recovered_from`. When the collector had
//!   already accepted alerts past the damage, the chain continues after the last one it
//!   accepted instead (its seq and hash are kept with the upload cursor), so the new chain
//!   extends the collector's rather than forking it. Alerts after the damage stay in the
//!   quarantined copy. Reported as [`RecoveryKind::Quarantined`].
//! - **records that do not check** between intact ones are skipped as holes: the store
//!   stays, `verify` names the seqs, and [`RecoveryKind::Damaged`] is reported.
//! - **a torn tail** (power loss while writing alerts that were never reported durable) is
//!   cut off quietly: logged, kept in the store's history, not reported as damage.
//!
//! Every recovery is kept in the index (`meta/recoveries`, the newest 16) and the latest
//! loud one is what `status` shows as `store_recovery` (and the heartbeat carries).

use std::path::{Path, PathBuf};

use nightjar_proto::trusted_dir::{Missing, TrustError, TrustedDir};
use serde::{Deserialize, Serialize};

use super::index::{self, Index, SCHEMA_VERSION};
use super::log::{Finding, Log, LogError, Position};
use super::{Store, StoreError, StoreOptions, log_dir_of, migrate};
use crate::sign::{ChainHead, hex};

/// Recoveries kept in the index.
const KEPT: usize = 16;

/// What a recovery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryKind {
    IndexRebuilt,
    Quarantined,
    Damaged,
    TornTail,
}

/// Where a new store's chain picks up after a quarantined one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinuedAfter {
    pub seq: u64,
    /// Lowercase hex SHA-256 of that alert's payload.
    pub hash: String,
}

/// One recovery, as kept in the index and shown in `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// RFC 3339.
    pub at: String,
    pub kind: RecoveryKind,
    /// What was found.
    pub detail: String,
    /// Where the damaged part was moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continued_after: Option<ContinuedAfter>,
}

impl Recovery {
    fn new(kind: RecoveryKind, detail: String) -> Recovery {
        Recovery {
            at: crate::alert::rfc3339(crate::pipeline::status::now_ns()),
            kind,
            detail,
            quarantined_to: None,
            continued_after: None,
        }
    }

    /// Whether `status` should show it (everything but a quietly cut torn tail).
    pub fn is_loud(&self) -> bool {
        self.kind != RecoveryKind::TornTail
    }

    /// One sentence for `status` and the log.
    pub fn summary(&self) -> String {
        let what = match self.kind {
            RecoveryKind::IndexRebuilt => "alert index damaged; rebuilt from the alert log",
            RecoveryKind::Quarantined => {
                "alert store damaged; quarantined, a new store continues the chain"
            }
            RecoveryKind::Damaged => "alert records damaged; skipped (verify names them)",
            RecoveryKind::TornTail => {
                "an incomplete alert record at the end of the log was cut off"
            }
        };
        let mut s = format!("{} at {}: {}", what, self.at, self.detail);
        if let Some(q) = &self.quarantined_to {
            s.push_str(&format!("; damaged copy kept in {q}"));
        }
        if let Some(c) = &self.continued_after {
            s.push_str(&format!(
                "; the new chain continues after seq {} (hash {})",
                c.seq, c.hash
            ));
        }
        s
    }

    /// What the first alert of a store that continues a quarantined one records in
    /// `nightjar.recovered_from`.
    pub fn note(&self) -> serde_json::Value {
        serde_json::json!({
            "seq": self.continued_after.as_ref().map(|c| c.seq),
            "hash": self.continued_after.as_ref().map(|c| c.hash.clone()),
            "at": self.at,
            "reason": self.detail,
            "quarantined_to": self.quarantined_to,
        })
    }
}

/// Whether `e` only says that another process holds the store (sled allows one).
pub fn is_busy(e: &StoreError) -> bool {
    matches!(e, StoreError::Sled { source: sled::Error::Io(io), .. }
        if io.to_string().contains("could not acquire lock"))
}

/// `fdatasync` of every regular file of sled's directory (and of `blobs/`), then `fsync` of
/// the directories: sled's own flush stops short of the medium.
pub fn sync_tree(dir: &TrustedDir) -> std::io::Result<()> {
    for name in dir.entries()? {
        let Some(name) = name.to_str() else { continue };
        let Some(st) = dir.stat(name)? else { continue };
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let sub = dir
                .private_subdir(name, Missing::Fail)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            sync_tree(&sub)?;
        } else if st.st_mode & libc::S_IFMT == libc::S_IFREG {
            let f = dir.open_file(name, nix::fcntl::OFlag::O_RDONLY, 0)?;
            super::sync::sync_data(&f)?;
        }
    }
    super::sync::sync_dir(&dir.fd())
}

fn trusted(path: &Path, e: TrustError) -> StoreError {
    match e {
        TrustError::Io { path, op, source } => StoreError::Io { path, op, source },
        e => StoreError::Untrusted {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    }
}

fn checked_index_dir(dir: &Path) -> Result<TrustedDir, StoreError> {
    let d = TrustedDir::open(dir, Missing::Create).map_err(|e| trusted(dir, e))?;
    // sled creates `blobs/` with the process's umask; made here, it is 0700.
    d.private_subdir("blobs", Missing::Create)
        .map_err(|e| trusted(dir, e))?;
    crate::state_dir::check_store_entries(&d).map_err(|reason| StoreError::Untrusted {
        path: dir.to_path_buf(),
        reason,
    })?;
    Ok(d)
}

/// Opens sled; `Err(Ok(e))` for an error that is no damage (busy, permission), `Err(Err(why))`
/// for a damaged index.
fn try_index(dir: &TrustedDir) -> Result<Index, Result<sled::Error, String>> {
    let path = dir.real_path().to_path_buf();
    let opened = std::panic::catch_unwind(move || Index::open(&path));
    let index = match opened {
        Ok(Ok(index)) => index,
        Ok(Err(sled::Error::Io(e)))
            if e.to_string().contains("could not acquire lock")
                || e.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            return Err(Ok(sled::Error::Io(e)));
        }
        Ok(Err(e)) => return Err(Err(format!("sled refused it: {e}"))),
        Err(_) => return Err(Err("sled panicked reading it".into())),
    };
    // Marks that do not parse are damage too.
    for key in [index::HEAD, index::PRUNED] {
        match index.head(key) {
            Ok(None | Some(Some(_))) => {}
            Ok(Some(None)) => {
                return Err(Err(format!(
                    "its {} mark is garbage",
                    String::from_utf8_lossy(key)
                )));
            }
            Err(e) => return Err(Err(format!("reading it: {e}"))),
        }
    }
    match index.get_u64(index::SCHEMA) {
        Ok(None | Some(Some(_))) => Ok(index),
        Ok(Some(None)) => Err(Err("its schema version is garbage".into())),
        Err(e) => Err(Err(format!("reading it: {e}"))),
    }
}

/// A free name `<base>-<unix time>` (then `-2`, `-3`, ...) in `dir` for a quarantined copy.
fn quarantine_name(dir: &TrustedDir, base: &str) -> std::io::Result<String> {
    let secs = crate::pipeline::status::now_ns() / 1_000_000_000;
    for n in 1.. {
        let name = if n == 1 {
            format!("{base}-{secs}")
        } else {
            format!("{base}-{secs}-{n}")
        };
        if dir.stat(&name)?.is_none() {
            return Ok(name);
        }
    }
    unreachable!("some name is free")
}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, op, source }
}

/// The directory holding `dir` (the state directory), checked.
fn parent_of(dir: &Path) -> Result<(TrustedDir, String), StoreError> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str()))
    else {
        return Err(StoreError::Untrusted {
            path: dir.to_path_buf(),
            reason: "the store must be a named directory inside the state directory".into(),
        });
    };
    let p = TrustedDir::open(parent, Missing::Create).map_err(|e| trusted(parent, e))?;
    Ok((p, name.to_string()))
}

pub(super) fn open(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
    let (state, index_name) = parent_of(dir)?;
    let log_path = log_dir_of(dir);
    let log_name = log_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("alerts.log")
        .to_string();
    let creating = state.stat(&index_name).ok().flatten().is_none()
        || state.stat(&log_name).ok().flatten().is_none();
    let mut index_dir = checked_index_dir(dir)?;
    let log_dir =
        TrustedDir::open(&log_path, Missing::Create).map_err(|e| trusted(&log_path, e))?;
    if creating {
        super::sync::sync_dir(&state.fd()).map_err(io_err(state.path(), "sync"))?;
    }

    let mut recoveries: Vec<Recovery> = Vec::new();
    let log_has_segments = log_dir
        .entries()
        .map_err(io_err(&log_path, "list"))?
        .iter()
        .any(|n| n.to_str().is_some_and(|n| n.ends_with(".log")));
    let opened = try_index(&index_dir).and_then(|index| {
        // sled may also "recover" from damage by dropping what it cannot read: an index
        // without its schema beside a log that holds alerts has lost its contents.
        match index.get_u64(index::SCHEMA) {
            Ok(None)
                if log_has_segments
                    && !migrate::is_v1(&index).unwrap_or(false)
                    && !index.meta.contains_key(index::MIGRATING).unwrap_or(false) =>
            {
                Err(Err(
                    "it had lost its contents (no schema version) while the log holds alerts"
                        .to_string(),
                ))
            }
            _ => Ok(index),
        }
    });
    let index = match opened {
        Ok(index) => index,
        Err(Ok(e)) => {
            return Err(StoreError::Sled {
                path: dir.to_path_buf(),
                op: "open",
                source: e,
            });
        }
        Err(Err(why)) => {
            let moved = quarantine_name(&state, &format!("{index_name}.quarantine"))
                .map_err(io_err(dir, "name the quarantined index"))?;
            drop(index_dir);
            state
                .rename(&index_name, &moved)
                .map_err(io_err(dir, "quarantine the damaged index"))?;
            tracing::error!(
                store = %dir.display(),
                moved_to = %moved,
                "alert index damaged ({why}); rebuilding it from the alert log"
            );
            index_dir = checked_index_dir(dir)?;
            let mut r = Recovery::new(RecoveryKind::IndexRebuilt, why);
            r.quarantined_to = Some(state.display_name(&moved).display().to_string());
            recoveries.push(r);
            Index::open(index_dir.real_path()).map_err(|source| StoreError::Sled {
                path: dir.to_path_buf(),
                op: "create a new index",
                source,
            })?
        }
    };
    let sled_err = |op: &'static str| {
        let path = dir.to_path_buf();
        move |source| StoreError::Sled { path, op, source }
    };
    if let Some(Some(found)) = index
        .get_u64(index::SCHEMA)
        .map_err(sled_err("read the schema"))?
    {
        let found = u32::try_from(found).unwrap_or(u32::MAX);
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: dir.to_path_buf(),
                found,
            });
        }
    }
    let migrating = index
        .meta
        .contains_key(index::MIGRATING)
        .map_err(sled_err("read meta"))?;
    let v1 = migrate::is_v1(&index).map_err(sled_err("read the alerts tree"))?;
    if migrating {
        migrate::clear_log(&log_dir)
            .map_err(io_err(&log_path, "clear an interrupted migration"))?;
    }

    let durable = index
        .meta
        .get(index::SYNCED)
        .map_err(sled_err("read meta"))?
        .and_then(|b| Position::from_bytes(&b));
    let (mut log, findings) = match Log::open(log_dir, durable, options.segment_bytes) {
        Ok(opened) => opened,
        Err(LogError::Damaged {
            path,
            at,
            last_intact,
        }) => {
            return quarantine_all(
                dir,
                &state,
                &index_name,
                &log_name,
                index,
                index_dir,
                options,
                format!("{}: damaged at offset {at}", path.display()),
                last_intact,
                recoveries,
            );
        }
        Err(source) => {
            return Err(StoreError::Log {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    if v1 || migrating {
        migrate::run(dir, &index, &mut log)?;
    }
    let schema_bytes = u64::from(SCHEMA_VERSION).to_be_bytes();
    let schema_known = index
        .meta
        .get(index::SCHEMA)
        .map_err(sled_err("read the schema"))?
        .is_some_and(|v| v.as_ref() == schema_bytes);
    if !schema_known {
        index
            .meta
            .insert(index::SCHEMA, &schema_bytes)
            .map_err(sled_err("write the schema"))?;
    }
    for f in &findings {
        match f {
            Finding::TornTail { .. } => {
                tracing::warn!(store = %dir.display(), "{f}");
                recoveries.push(Recovery::new(RecoveryKind::TornTail, f.to_string()));
            }
            Finding::Hole { .. } => {
                tracing::error!(store = %dir.display(), "{f}");
                recoveries.push(Recovery::new(RecoveryKind::Damaged, f.to_string()));
            }
        }
    }
    finish(dir, index_dir, index, log, recoveries, !schema_known)
}

/// Reconciles the index with the log and builds the store. `index_changed`: opening wrote
/// to the index (the schema), so it is made durable before use.
fn finish(
    dir: &Path,
    index_dir: TrustedDir,
    index: Index,
    mut log: Log,
    recoveries: Vec<Recovery>,
    index_changed: bool,
) -> Result<Store, StoreError> {
    let sled_err = |op: &'static str| {
        let path = dir.to_path_buf();
        move |source| StoreError::Sled { path, op, source }
    };
    let indexed = index
        .head(index::HEAD)
        .map_err(sled_err("read the chain head"))?
        .flatten()
        .unwrap_or(ChainHead::GENESIS);
    let pruned = index
        .head(index::PRUNED)
        .map_err(sled_err("read the pruned mark"))?
        .flatten()
        .unwrap_or(ChainHead::GENESIS);
    let last = log.last().map(|(seq, hash)| ChainHead { seq, hash });
    let mut head = indexed;
    let mut chain_problem = None;
    match last {
        Some(l) if l.seq > indexed.seq => {
            // Durable in the log, not (yet) in the index: index them now.
            let mut uuids = Vec::new();
            log.read_from(indexed.seq + 1, usize::MAX, false, |item| {
                if let super::log::Item::Record { seq, uuid, .. } = item {
                    uuids.push((uuid, seq));
                }
                true
            })
            .map_err(|source| StoreError::Log {
                path: dir.to_path_buf(),
                source,
            })?;
            index
                .commit(&uuids, &l, log.synced(), None)
                .map_err(|e| StoreError::Corrupt {
                    path: dir.to_path_buf(),
                    what: format!("indexing the log's newer alerts: {e:?}"),
                })?;
            tracing::info!(
                store = %dir.display(),
                from = indexed.seq + 1,
                through = l.seq,
                "indexed alerts the log held beyond the index"
            );
            head = l;
        }
        Some(l) if l.seq < indexed.seq => {
            chain_problem = Some(format!(
                "chain head is seq {} but the last stored alert is seq {}",
                indexed.seq, l.seq
            ));
        }
        Some(l) if l.hash != indexed.hash => {
            chain_problem = Some(format!(
                "last alert (seq {}) does not hash to the chain head",
                l.seq
            ));
        }
        Some(_) => {}
        None if indexed.seq > pruned.seq => {
            chain_problem = Some(format!(
                "chain head is seq {} but no alert is stored",
                indexed.seq
            ));
        }
        None => {}
    }
    // The uuid entries of the newest alerts, whatever the index says it holds: a power
    // loss may leave sled with its head written and some of these entries not (it is not
    // made durable with every commit), and an event read again after the crash must find
    // its alert, not make a second one.
    let repaired = reindex_tail(&index, &log, head.seq).map_err(|source| StoreError::Log {
        path: dir.to_path_buf(),
        source,
    })?;
    if repaired > 0 {
        tracing::warn!(
            store = %dir.display(),
            repaired,
            "re-indexed alert uuids the index had lost"
        );
    }
    // Segments wholly below the pruned mark are left by a crash between the mark and their
    // removal.
    if log.first_seq().is_some_and(|f| f <= pruned.seq) {
        log.remove_through(pruned.seq)
            .map_err(|source| StoreError::Log {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    if let Some(problem) = &chain_problem {
        tracing::error!(store = %dir.display(), "alert chain head mismatch: {problem}");
    }
    let mut history: Vec<Recovery> = match index.meta.get(index::RECOVERIES) {
        Ok(Some(b)) => serde_json::from_slice(&b).unwrap_or_default(),
        _ => Vec::new(),
    };
    // Something to make durable: a recovery to record, the schema written, alerts
    // indexed. An ordinary open (the CLI's, every few seconds under a script) writes nothing.
    let changed = index_changed || !recoveries.is_empty() || head != indexed || repaired > 0;
    history.extend(recoveries);
    if history.len() > KEPT {
        history.drain(..history.len() - KEPT);
    }
    if changed {
        if let Ok(bytes) = serde_json::to_vec(&history) {
            index
                .meta
                .insert(index::RECOVERIES, bytes)
                .map_err(sled_err("record the recovery"))?;
        }
        index.db.flush().map_err(sled_err("flush the index"))?;
        sync_tree(&index_dir).map_err(io_err(dir, "sync the index"))?;
    }
    let loud = history.iter().rev().find(|r| r.is_loud()).cloned();
    Ok(Store::from_parts(
        dir.to_path_buf(),
        index_dir,
        index,
        log,
        head,
        chain_problem,
        loud,
    ))
}

/// How many of the newest alerts [`reindex_tail`] checks: more than the events not yet
/// released from the ring at a crash could have made (the reader releases ring space at
/// least every 4,096 records, and an alert is stored only while its event is unreleased).
const REINDEX_TAIL: u64 = 8_192;

/// Puts back the uuid entries of the newest [`REINDEX_TAIL`] alerts (at or below `head`)
/// that the index lacks. Returns how many it put back.
fn reindex_tail(index: &Index, log: &Log, head: u64) -> Result<u64, LogError> {
    let from = head.saturating_sub(REINDEX_TAIL - 1).max(1);
    let mut missing = Vec::new();
    let mut failed = None;
    log.read_from(from, usize::MAX, false, |item| {
        if let super::log::Item::Record { seq, uuid, .. } = item
            && seq <= head
            && !uuid.is_empty()
        {
            match index.uuids.get(uuid.as_bytes()) {
                Ok(Some(v)) if v.as_ref() == seq.to_be_bytes() => {}
                Ok(_) => missing.push((uuid, seq)),
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            }
        }
        true
    })?;
    if let Some(e) = failed {
        return Err(LogError::Io {
            path: std::path::PathBuf::from("uuid index"),
            op: "read",
            source: std::io::Error::other(e.to_string()),
        });
    }
    for (uuid, seq) in &missing {
        index
            .uuids
            .insert(uuid.as_bytes(), &seq.to_be_bytes())
            .map_err(|e| LogError::Io {
                path: std::path::PathBuf::from("uuid index"),
                op: "write",
                source: std::io::Error::other(e.to_string()),
            })?;
    }
    Ok(missing.len() as u64)
}

/// Moves the whole store aside and starts a new one continuing the chain after
/// `last_intact` (or after retention's mark, when the log held nothing intact), or after the
/// last alert the collector accepted when that is further on.
#[allow(clippy::too_many_arguments)]
fn quarantine_all(
    dir: &Path,
    state: &TrustedDir,
    index_name: &str,
    log_name: &str,
    old_index: Index,
    old_index_dir: TrustedDir,
    options: StoreOptions,
    why: String,
    last_intact: Option<(u64, [u8; 32])>,
    mut recoveries: Vec<Recovery>,
) -> Result<Store, StoreError> {
    let indexed = old_index.head(index::HEAD).ok().flatten().flatten();
    let pruned = old_index.head(index::PRUNED).ok().flatten().flatten();
    let uploaded = old_index
        .head(index::UPLOADED_HEAD)
        .ok()
        .flatten()
        .flatten();
    let intact = match last_intact {
        Some((seq, hash)) => ChainHead { seq, hash },
        // Nothing intact after the start of the log: the chain picks up after the last
        // alert retention removed, if any.
        None => pruned.unwrap_or(ChainHead::GENESIS),
    };
    // The collector may hold alerts past the damage: a chain restarting below its head
    // would fork there, and the collector refuses everything after a fork, so every alert
    // from now on would stay on this host. Continue after what it accepted instead.
    let (after, why) = match uploaded {
        Some(up) if up.seq > intact.seq => {
            let why = format!(
                "{why}; intact through seq {}, the collector had accepted through seq {}: \
                 the new chain continues from there",
                intact.seq, up.seq
            );
            (up, why)
        }
        _ => (intact, why),
    };
    drop(old_index);
    drop(old_index_dir);
    let qname =
        quarantine_name(state, "alerts.quarantine").map_err(io_err(dir, "name the quarantine"))?;
    let q = state
        .subdir(&qname, Missing::Create)
        .map_err(|e| trusted(dir, e))?;
    for name in [index_name, log_name] {
        nix::fcntl::renameat(state.fd(), name, q.fd(), name)
            .map_err(|e| io_err(dir, "quarantine the damaged store")(e.into()))?;
    }
    super::sync::sync_dir(&state.fd()).map_err(io_err(dir, "sync"))?;
    let moved_to = state.display_name(&qname).display().to_string();
    tracing::error!(
        store = %dir.display(),
        moved_to,
        continues_after = after.seq,
        indexed_head = indexed.map(|h| h.seq),
        "alert store damaged ({why}); quarantined, a new store continues the chain"
    );
    let mut r = Recovery::new(RecoveryKind::Quarantined, why);
    r.quarantined_to = Some(moved_to);
    r.continued_after = Some(ContinuedAfter {
        seq: after.seq,
        hash: hex(&after.hash),
    });
    recoveries.push(r);
    let index_dir = checked_index_dir(dir)?;
    let index = Index::open(index_dir.real_path()).map_err(|source| StoreError::Sled {
        path: dir.to_path_buf(),
        op: "create a new index",
        source,
    })?;
    let start = after.to_bytes();
    let sled_err = |op: &'static str| {
        let path = dir.to_path_buf();
        move |source| StoreError::Sled { path, op, source }
    };
    index
        .meta
        .insert(index::PRUNED, &start[..])
        .map_err(sled_err("write the starting mark"))?;
    index
        .meta
        .insert(index::HEAD, &start[..])
        .map_err(sled_err("write the starting mark"))?;
    index
        .meta
        .insert(index::SCHEMA, &u64::from(SCHEMA_VERSION).to_be_bytes())
        .map_err(sled_err("write the schema"))?;
    if uploaded.is_some_and(|up| up.seq >= after.seq) {
        // Nothing at or below the starting mark is the new store's to send.
        index
            .meta
            .insert(index::UPLOAD_CURSOR, &after.seq.to_be_bytes())
            .map_err(sled_err("write the upload cursor"))?;
        index
            .meta
            .insert(index::UPLOADED_HEAD, &start[..])
            .map_err(sled_err("write the uploaded head"))?;
    }
    let log_path: PathBuf = log_dir_of(dir);
    let log_dir =
        TrustedDir::open(&log_path, Missing::Create).map_err(|e| trusted(&log_path, e))?;
    let (log, _) =
        Log::open(log_dir, None, options.segment_bytes).map_err(|source| StoreError::Log {
            path: dir.to_path_buf(),
            source,
        })?;
    finish(dir, index_dir, index, log, recoveries, true)
}
