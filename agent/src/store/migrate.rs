//! Version 1 of the store (no `schema` key; envelopes in sled's `alerts` tree, alert times
//! in `time`) into version 2: every envelope is copied, in seq order, into the log, the log
//! is made durable, and only then are the old trees dropped and the version written. A
//! migration interrupted part-way leaves `meta/migrating`; the next open clears the log and
//! starts it again from the untouched old trees.
//!
//! The head, upload cursor, counters, pruned mark and uuid index carry over as they are.
//! Version-1 stores have no signed head mark: `meta/migrated_from` says so until the agent
//! signs its first one (so that `verify` does not take the missing mark for a removed one).

use std::path::Path;

use nightjar_proto::trusted_dir::TrustedDir;

use super::StoreError;
use super::index::{self, Index};
use super::log::Log;
use super::record::{Fields, hash_of_envelope};

/// Whether `index` is a version-1 store with alerts to migrate.
pub(super) fn is_v1(index: &Index) -> sled::Result<bool> {
    if index.meta.contains_key(index::SCHEMA)? {
        return Ok(false);
    }
    let has = index
        .db
        .tree_names()
        .iter()
        .any(|n| n.as_ref() == b"alerts");
    Ok(has && !index.db.open_tree("alerts")?.is_empty())
}

/// Removes the segments an interrupted migration left.
pub(super) fn clear_log(dir: &TrustedDir) -> std::io::Result<()> {
    for name in dir.entries()? {
        if let Some(name) = name.to_str()
            && name.ends_with(".log")
        {
            dir.remove_file(name)?;
        }
    }
    super::sync::sync_dir(&dir.fd())
}

pub(super) fn run(dir: &Path, index: &Index, log: &mut Log) -> Result<(), StoreError> {
    let sled_err = |op: &'static str| {
        let path = dir.to_path_buf();
        move |source| StoreError::Sled { path, op, source }
    };
    let corrupt = |what: String| StoreError::Corrupt {
        path: dir.to_path_buf(),
        what,
    };
    index
        .meta
        .insert(index::MIGRATING, &[1u8][..])
        .map_err(sled_err("start the migration"))?;
    index.db.flush().map_err(sled_err("flush"))?;
    let alerts = index
        .db
        .open_tree("alerts")
        .map_err(sled_err("open tree"))?;
    let times = index.db.open_tree("time").map_err(sled_err("open tree"))?;
    let mut moved = 0u64;
    for item in alerts.iter() {
        let (k, envelope) = item.map_err(sled_err("read alerts"))?;
        let seq = u64::from_be_bytes(
            k.as_ref()
                .try_into()
                .map_err(|_| corrupt("version-1 alert key".into()))?,
        );
        let time_ns = times
            .get(k)
            .map_err(sled_err("read alert time"))?
            .and_then(|t| t.as_ref().try_into().ok().map(i64::from_be_bytes))
            .unwrap_or(0);
        let (hash, uuid) = match hash_of_envelope(&envelope) {
            Some(hash) => (hash, uuid_of(&envelope).unwrap_or_default()),
            // Kept as it is: `verify` names it, as it would have in version 1.
            None => ([0; 32], String::new()),
        };
        log.append(&Fields {
            seq,
            time_ns,
            hash,
            uuid: &uuid,
            envelope: &envelope,
        })
        .map_err(|source| StoreError::Log {
            path: dir.to_path_buf(),
            source,
        })?;
        moved += 1;
    }
    let synced = log.sync().map_err(|source| StoreError::Log {
        path: dir.to_path_buf(),
        source,
    })?;
    drop(alerts);
    drop(times);
    index
        .meta
        .insert(index::SYNCED, &synced.to_bytes()[..])
        .map_err(sled_err("write meta"))?;
    index
        .meta
        .insert(index::MIGRATED, &[1u8][..])
        .map_err(sled_err("write meta"))?;
    index
        .meta
        .insert(
            index::SCHEMA,
            &u64::from(index::SCHEMA_VERSION).to_be_bytes(),
        )
        .map_err(sled_err("write the schema"))?;
    for tree in ["alerts", "time"] {
        index
            .db
            .drop_tree(tree)
            .map_err(sled_err("drop a version-1 tree"))?;
    }
    index
        .meta
        .remove(index::MIGRATING)
        .map_err(sled_err("finish the migration"))?;
    index.db.flush().map_err(sled_err("flush"))?;
    tracing::info!(
        store = %dir.display(),
        alerts = moved,
        "migrated the alert store from version 1 to {}",
        index::SCHEMA_VERSION
    );
    Ok(())
}

fn uuid_of(envelope: &[u8]) -> Option<String> {
    let (_, payload) = crate::sign::chain::open_envelope(envelope).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    doc.pointer("/kibana/alert/uuid")?
        .as_str()
        .map(str::to_owned)
}
