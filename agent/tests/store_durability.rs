//! The alert store: dedup by uuid, chain head checks, and durability across a crash.

use std::process::Command;

use nightjar_agent::sign::{ChainHead, HostKey, SealedAlert, Sealer, Unsealed};
use nightjar_agent::store::{Counters, Inserted, Store, StoreError};
use serde_json::Map;

mod sled_support;
use sled_support::open_raw;

const CRASH_CHILD_ENV: &str = "NIGHTJAR_STORE_CRASH_CHILD";

fn sealer(dir: &std::path::Path) -> Sealer {
    let key_path = dir.join("host.key");
    let key = if key_path.exists() {
        HostKey::load(&key_path).unwrap()
    } else {
        HostKey::create(&key_path).unwrap()
    };
    Sealer::new(key, "host-test".into())
}

fn unsealed(n: u64) -> Unsealed {
    let mut alert = Map::new();
    alert.insert("event".into(), serde_json::json!({"kind": "signal"}));
    alert.insert("n".into(), n.into());
    alert.insert(
        "kibana".into(),
        serde_json::json!({"alert": {"uuid": format!("uuid-{n}")}}),
    );
    Unsealed {
        alert,
        uuid: format!("uuid-{n}"),
        time_ns: 1_700_000_000_000_000_000 + n as i64,
        event_seq: n,
    }
}

fn seal_next(store: &Store, sealer: &mut Sealer, n: u64) -> SealedAlert {
    sealer.seal(&store.head().unwrap(), unsealed(n)).unwrap()
}

/// Opens the store at `db` and stores alerts 1..=`n` in it, flushed once at the end.
fn store_with(db: &std::path::Path, sealer: &mut Sealer, n: u64) -> Store {
    let store = Store::open(db).unwrap();
    for i in 1..=n {
        let a = seal_next(&store, sealer, i);
        assert_eq!(store.insert(&a).unwrap(), Inserted::Stored);
    }
    store.flush().unwrap();
    store
}

#[test]
fn alerts_survive_reopen_and_duplicates_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let db = tmp.path().join("db");
    {
        let store = Store::open(&db).unwrap();
        for n in 1..=3 {
            let a = seal_next(&store, &mut sealer, n);
            assert_eq!(store.append(&a).unwrap(), Inserted::Stored);
        }
        let again = seal_next(&store, &mut sealer, 2);
        assert_eq!(store.append(&again).unwrap(), Inserted::Duplicate(2));
        assert_eq!(store.head().unwrap().seq, 3);
    }
    let store = Store::open(&db).unwrap();
    assert_eq!(store.chain_problem(), None);
    assert_eq!(store.head().unwrap().seq, 3);
    assert_eq!(store.seq_of("uuid-3").unwrap(), Some(3));
    assert_eq!(store.seq_of("uuid-9").unwrap(), None);
    assert_eq!(store.time_of(2).unwrap(), Some(1_700_000_000_000_000_002));
    assert_eq!(store.range(2, 10).unwrap().len(), 2);
    assert_eq!(
        store.verify(sealer.key().public_key()).unwrap(),
        Ok(3),
        "chain must verify after reopen"
    );
}

#[test]
fn an_alert_sealed_against_an_old_head_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let store = Store::open(&tmp.path().join("db")).unwrap();
    let stale = sealer.seal(&ChainHead::GENESIS, unsealed(1)).unwrap();
    let fresh = sealer.seal(&ChainHead::GENESIS, unsealed(2)).unwrap();
    store.append(&fresh).unwrap();
    assert!(matches!(
        store.append(&stale),
        Err(StoreError::StaleHead {
            sealed: 1,
            head: 1,
            ..
        })
    ));
}

#[test]
fn group_commit_stores_every_alert_with_one_flush() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let store = store_with(&tmp.path().join("db"), &mut sealer, 64);
    assert_eq!(store.verify(sealer.key().public_key()).unwrap(), Ok(64));
}

#[test]
fn upload_cursor_and_counters_persist() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let db = tmp.path().join("db");
    {
        let store = Store::open(&db).unwrap();
        for n in 1..=4 {
            store.append(&seal_next(&store, &mut sealer, n)).unwrap();
        }
        store.set_upload_cursor(3).unwrap();
        store.set_upload_cursor(1).unwrap();
        let c = Counters {
            events_received: 10,
            events_dropped: 2,
            alerts_suppressed: 1,
            ..Counters::default()
        };
        store.save_counters(&c).unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(&db).unwrap();
    assert_eq!(store.upload_cursor().unwrap(), 3);
    assert_eq!(store.pending_upload().unwrap(), 1);
    assert_eq!(store.counters().unwrap().events_received, 10);
}

#[test]
fn a_removed_last_alert_is_reported_at_open_and_by_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let db = tmp.path().join("db");
    {
        let store = Store::open(&db).unwrap();
        for n in 1..=3 {
            store.append(&seal_next(&store, &mut sealer, n)).unwrap();
        }
    }
    {
        let raw = open_raw(&db);
        raw.open_tree("alerts")
            .unwrap()
            .remove(3u64.to_be_bytes())
            .unwrap();
        raw.flush().unwrap();
    }
    let store = Store::open(&db).unwrap();
    let problem = store.chain_problem().unwrap();
    assert!(problem.contains("seq 3"), "{problem}");
    let err = store
        .verify(sealer.key().public_key())
        .unwrap()
        .unwrap_err();
    assert_eq!(err.seq, 3);
}

/// Runs in a child process: stores alerts one by one, printing each seq once it is durable,
/// then dies without any cleanup.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let mut sealer = sealer(&dir);
    let store = Store::open(&dir.join("db")).unwrap();
    for n in 1..=20 {
        store.append(&seal_next(&store, &mut sealer, n)).unwrap();
        println!("durable {n}");
    }
    std::process::abort();
}

#[test]
fn every_acknowledged_alert_survives_an_abort() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_ENV, tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child must die by abort");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let acknowledged = stdout.matches("durable ").count() as u64;
    assert_eq!(acknowledged, 20, "{stdout}");
    let sealer = sealer(tmp.path());
    let store = Store::open(&tmp.path().join("db")).unwrap();
    assert_eq!(store.chain_problem(), None);
    assert_eq!(store.head().unwrap().seq, acknowledged);
    assert_eq!(store.verify(sealer.key().public_key()).unwrap(), Ok(20));
}

#[test]
fn retention_removes_only_uploaded_alerts_and_verify_starts_after_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let db = tmp.path().join("db");
    let public_key = sealer.key().public_key().to_vec();
    let store = store_with(&db, &mut sealer, 1000);
    store.set_upload_cursor(600).unwrap();

    // Upload on: the 900 beyond the newest 100 are due, but only the 600 accepted may go.
    assert_eq!(store.prune(100, true).unwrap(), 600);
    assert_eq!(store.pruned().unwrap().seq, 600);
    assert_eq!(store.envelope(600).unwrap(), None);
    assert!(store.envelope(601).unwrap().is_some());
    assert_eq!(store.seq_of("uuid-1").unwrap(), None, "its uuid goes too");
    assert_eq!(store.seq_of("uuid-601").unwrap(), Some(601));
    assert_eq!(store.time_of(600).unwrap(), None);
    assert_eq!(store.verify(&public_key).unwrap(), Ok(1000));
    // Fewer than a batch due: nothing happens.
    assert_eq!(store.prune(100, true).unwrap(), 0);
    // Upload off: everything beyond the newest 100 goes.
    assert_eq!(store.prune(100, false).unwrap(), 300);
    assert_eq!(store.range(0, 2000).unwrap().len(), 100);
    assert_eq!(store.head().unwrap().seq, 1000);
    drop(store);

    // The mark survives a reopen; a chain broken after it is still named.
    let store = Store::open(&db).unwrap();
    assert_eq!(store.chain_problem(), None);
    assert_eq!(store.verify(&public_key).unwrap(), Ok(1000));
    let mut sealer2 = sealer;
    let next = seal_next(&store, &mut sealer2, 1001);
    store.append(&next).unwrap();
    assert_eq!(store.verify(&public_key).unwrap(), Ok(1001));
}

#[test]
fn verify_names_a_removed_alert_right_after_the_pruned_mark() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let db = tmp.path().join("db");
    let public_key = sealer.key().public_key().to_vec();
    {
        let store = store_with(&db, &mut sealer, 400);
        assert_eq!(store.prune(100, false).unwrap(), 300);
    }
    // Remove the first alert after the mark behind the store's back.
    let db_handle = open_raw(&db);
    let alerts = db_handle.open_tree("alerts").unwrap();
    alerts.remove(301u64.to_be_bytes()).unwrap();
    db_handle.flush().unwrap();
    drop(alerts);
    drop(db_handle);
    let store = Store::open(&db).unwrap();
    let err = store.verify(&public_key).unwrap().unwrap_err();
    assert_eq!(err.seq, 301, "{err:?}");
}
