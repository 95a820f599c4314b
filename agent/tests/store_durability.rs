//! The alert store: dedup by uuid, chain head and signed head mark checks, durability
//! across a crash, retention, the version-1 migration and newer-version refusal, and what
//! opening does with a damaged index or log.

use std::path::{Path, PathBuf};
use std::process::Command;

use nightjar_agent::sign::{ChainHead, HostKey, SealedAlert, Sealer, Unsealed};
use nightjar_agent::store::{
    Counters, Inserted, RecoveryKind, Store, StoreError, StoreOptions, Stored,
};
use serde_json::Map;

mod sled_support;
use sled_support::open_raw;

const CRASH_CHILD_ENV: &str = "NIGHTJAR_STORE_CRASH_CHILD";

fn sealer(dir: &Path) -> Sealer {
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

/// Opens the store at `db` and stores alerts 1..=`n` in it, committed once at the end with
/// a head mark, as the agent does.
fn store_with(db: &Path, sealer: &mut Sealer, n: u64) -> Store {
    store_with_options(db, sealer, n, StoreOptions::default())
}

fn store_with_options(db: &Path, sealer: &mut Sealer, n: u64, options: StoreOptions) -> Store {
    let store = Store::open_with(db, options).unwrap();
    for i in 1..=n {
        let a = seal_next(&store, sealer, i);
        assert_eq!(store.insert(&a).unwrap(), Inserted::Stored);
    }
    store.commit_marked(|h| sealer.mark(h)).unwrap();
    store.flush().unwrap();
    store
}

fn verified(store: &Store, sealer: &Sealer) -> u64 {
    match store.verify(sealer.key().public_key()).unwrap() {
        Ok(v) => v.through,
        Err(e) => panic!("verify failed: {e}"),
    }
}

fn verify_err(store: &Store, sealer: &Sealer) -> nightjar_agent::sign::VerifyError {
    match store.verify(sealer.key().public_key()).unwrap() {
        Ok(v) => panic!("verify passed through {}: {:?}", v.through, v.note),
        Err(e) => e,
    }
}

mod log_support;
use log_support::{cut_record, records, segments};

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
        store.commit_marked(|h| sealer.mark(h)).unwrap();
    }
    let store = Store::open(&db).unwrap();
    assert_eq!(store.chain_problem(), None);
    assert_eq!(store.head().unwrap().seq, 3);
    assert_eq!(store.seq_of("uuid-3").unwrap(), Some(3));
    assert_eq!(store.seq_of("uuid-9").unwrap(), None);
    assert_eq!(store.time_of(2).unwrap(), Some(1_700_000_000_000_000_002));
    assert_eq!(store.range(2, 10).unwrap().len(), 2);
    assert_eq!(
        verified(&store, &sealer),
        3,
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
fn group_commit_stores_every_alert_with_one_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let store = store_with(&tmp.path().join("db"), &mut sealer, 64);
    assert_eq!(store.durable_head().seq, 64);
    assert_eq!(verified(&store, &sealer), 64);
}

#[test]
fn only_durable_alerts_are_offered_for_upload() {
    use nightjar_agent::upload::Outbox;
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let store = store_with(&tmp.path().join("db"), &mut sealer, 2);
    store.insert(&seal_next(&store, &mut sealer, 3)).unwrap();
    assert_eq!(store.head().unwrap().seq, 3);
    assert_eq!(
        store.pending(10).unwrap().len(),
        2,
        "seq 3 is not durable yet"
    );
    store.commit().unwrap();
    assert_eq!(store.pending(10).unwrap().len(), 3);
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
    drop(store_with(&db, &mut sealer, 3));
    cut_record(&db, 3);
    let store = Store::open(&db).unwrap();
    let problem = store.chain_problem().unwrap();
    assert!(problem.contains("seq 3"), "{problem}");
    assert_eq!(verify_err(&store, &sealer).seq, 3);
}

/// Tail truncation by someone without the host key: the newest alerts removed and the
/// index's head moved back to match. The chain alone looks intact; the signed head mark
/// names the removed alert.
#[test]
fn a_truncated_tail_with_the_head_moved_back_fails_against_the_signed_mark() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let db = tmp.path().join("db");
    let head_at_3 = {
        let store = store_with(&db, &mut sealer, 3);
        let h3 = store.head().unwrap();
        for n in 4..=5 {
            store.insert(&seal_next(&store, &mut sealer, n)).unwrap();
        }
        store.commit_marked(|h| sealer.mark(h)).unwrap();
        store.flush().unwrap();
        h3
    };
    cut_record(&db, 5);
    cut_record(&db, 4);
    {
        let raw = open_raw(&db);
        let meta = raw.open_tree("meta").unwrap();
        meta.insert("head", &head_at_3.to_bytes()[..]).unwrap();
        raw.flush().unwrap();
    }
    let store = Store::open(&db).unwrap();
    assert_eq!(store.chain_problem(), None, "head and log agree");
    let err = verify_err(&store, &sealer);
    assert_eq!(err.seq, 4, "{err}");
    assert!(err.reason.contains("signed head mark names seq 5"), "{err}");
}

/// Alerts stored after the last mark (the agent stopped before marking them) verify, with a
/// note; the next mark covers them.
#[test]
fn alerts_after_the_last_mark_verify_with_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let store = store_with(&tmp.path().join("db"), &mut sealer, 2);
    store.insert(&seal_next(&store, &mut sealer, 3)).unwrap();
    store.commit().unwrap();
    let v = store.verify(sealer.key().public_key()).unwrap().unwrap();
    assert_eq!(v.through, 3);
    assert!(v.note.unwrap().contains("alerts 3..=3"));
    store.commit_marked(|h| sealer.mark(h)).unwrap();
    let v = store.verify(sealer.key().public_key()).unwrap().unwrap();
    assert_eq!(v.note, None);
    assert_eq!(store.head_mark().unwrap().unwrap().seq, 3);
}

/// Runs in a child process: stores alerts one by one, printing each seq once it is durable,
/// then dies without any cleanup.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let mut sealer = sealer(&dir);
    let store = Store::open(&dir.join("db")).unwrap();
    for n in 1..=20 {
        store.append(&seal_next(&store, &mut sealer, n)).unwrap();
        store.commit_marked(|h| sealer.mark(h)).unwrap();
        println!("durable {n}");
    }
    // Appended, never committed: must not come back as stored.
    store.insert(&seal_next(&store, &mut sealer, 21)).unwrap();
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
    // Seq 21 was written to the operating system (a kill, not a power loss): the log
    // holds it whole, so it is kept and indexed; what matters is that 1..=20 are there.
    assert!(store.head().unwrap().seq >= acknowledged);
    assert!(verified(&store, &sealer) >= 20);
}

#[test]
fn retention_removes_only_uploaded_alerts_and_verify_starts_after_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let db = tmp.path().join("db");
    // Small segments, so that retention also gives whole segment files back.
    let options = StoreOptions {
        segment_bytes: 64 * 1024,
    };
    let store = store_with_options(&db, &mut sealer, 1000, options);
    let segments_before = segments(&db).len();
    assert!(segments_before > 5, "{segments_before}");
    store.set_upload_cursor(600).unwrap();

    // Upload on: the 900 beyond the newest 100 are due, but only the 600 accepted may go.
    assert_eq!(store.prune(100, true).unwrap(), 600);
    assert_eq!(store.pruned().unwrap().seq, 600);
    assert_eq!(store.envelope(600).unwrap(), None);
    assert!(store.envelope(601).unwrap().is_some());
    assert_eq!(store.seq_of("uuid-1").unwrap(), None, "its uuid goes too");
    assert_eq!(store.seq_of("uuid-601").unwrap(), Some(601));
    assert_eq!(store.time_of(600).unwrap(), None);
    assert_eq!(verified(&store, &sealer), 1000);
    assert!(
        segments(&db).len() < segments_before,
        "segments were removed"
    );
    // Fewer than a batch due: nothing happens.
    assert_eq!(store.prune(100, true).unwrap(), 0);
    // Upload off: everything beyond the newest 100 goes.
    assert_eq!(store.prune(100, false).unwrap(), 300);
    assert_eq!(store.range(0, 2000).unwrap().len(), 100);
    assert_eq!(store.head().unwrap().seq, 1000);
    drop(store);

    // The mark survives a reopen; a chain broken after it is still named.
    let store = Store::open_with(&db, options).unwrap();
    assert_eq!(store.chain_problem(), None);
    assert_eq!(verified(&store, &sealer), 1000);
    let mut sealer2 = sealer;
    let next = seal_next(&store, &mut sealer2, 1001);
    store.append(&next).unwrap();
    store.commit_marked(|h| sealer2.mark(h)).unwrap();
    assert_eq!(verified(&store, &sealer2), 1001);
}

#[test]
fn verify_names_a_removed_alert_right_after_the_pruned_mark() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let db = tmp.path().join("db");
    {
        let store = store_with(&db, &mut sealer, 400);
        assert_eq!(store.prune(100, false).unwrap(), 300);
    }
    cut_record(&db, 301);
    let store = Store::open(&db).unwrap();
    let err = verify_err(&store, &sealer);
    assert_eq!(err.seq, 301, "{err:?}");
}

/// A flipped byte inside one stored alert: the store still opens and takes new alerts;
/// reading names the record, `verify` fails at its seq.
#[test]
fn a_flipped_byte_in_the_log_is_named_and_the_store_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let db = tmp.path().join("db");
    drop(store_with(&db, &mut sealer, 10));
    let seg = &segments(&db)[0];
    let (_, at, len) = records(seg)[4];
    let mut bytes = std::fs::read(seg).unwrap();
    bytes[at + len - 20] ^= 0x01;
    std::fs::write(seg, bytes).unwrap();
    let store = Store::open(&db).unwrap();
    assert!(matches!(
        store.get(5).unwrap(),
        Some(Stored::Damaged { seq: Some(5), .. })
    ));
    let err = verify_err(&store, &sealer);
    assert_eq!(err.seq, 5);
    assert!(err.reason.contains("does not check"), "{err}");
    store.append(&seal_next(&store, &mut sealer, 11)).unwrap();
    assert_eq!(store.head().unwrap().seq, 11);
}

/// What a power loss leaves at the end of the log: bytes of a record that was never made
/// durable. Cut off at open, quietly; everything durable is there.
#[test]
fn a_torn_tail_is_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let db = tmp.path().join("db");
    drop(store_with(&db, &mut sealer, 5));
    let seg = segments(&db)[0].clone();
    let (_, at, len) = records(&seg)[4];
    let whole = std::fs::read(&seg).unwrap();
    // A sixth record begun: the header and half the body of a copy of the fifth.
    let mut torn = whole.clone();
    torn.extend_from_slice(&whole[at..at + len / 2]);
    std::fs::write(&seg, &torn).unwrap();
    let store = Store::open(&db).unwrap();
    assert_eq!(store.chain_problem(), None);
    assert!(
        store.recovery().is_none(),
        "a torn tail is no damage to report"
    );
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        whole,
        "the torn bytes were cut"
    );
    assert_eq!(verified(&store, &sealer), 5);
}

/// sled refuses its files: the index is moved aside and rebuilt from the log, no alert lost,
/// the chain unbroken, and the recovery reported.
#[test]
fn a_damaged_index_is_rebuilt_from_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let db = tmp.path().join("db");
    drop(store_with(&db, &mut sealer, 30));
    let sled_db = db.join("db");
    let mut bytes = std::fs::read(&sled_db).unwrap();
    for b in bytes.iter_mut().take(4096) {
        *b = 0xa5;
    }
    std::fs::write(&sled_db, bytes).unwrap();
    let store = Store::open(&db).unwrap();
    let r = store.recovery().expect("the rebuild is reported");
    assert_eq!(r.kind, RecoveryKind::IndexRebuilt, "{}", r.summary());
    assert!(
        r.quarantined_to
            .as_deref()
            .unwrap()
            .contains("db.quarantine-")
    );
    assert_eq!(store.head().unwrap().seq, 30);
    assert_eq!(store.seq_of("uuid-17").unwrap(), Some(17));
    // The mark went with the old index; the agent marks the head again when it starts.
    store.commit_marked(|h| sealer.mark(h)).unwrap();
    assert_eq!(verified(&store, &sealer), 30);
    store.append(&seal_next(&store, &mut sealer, 31)).unwrap();
    drop(store);
    let store = Store::open(&db).unwrap();
    assert_eq!(store.head().unwrap().seq, 31);
    assert_eq!(
        store.recovery().map(|r| r.kind),
        Some(RecoveryKind::IndexRebuilt),
        "still reported after a restart"
    );
}

/// Durable records lost with nothing intact after them: the store is quarantined, a new one
/// continues the chain after the last intact alert, and its first alert names it.
#[test]
fn a_log_damaged_where_it_was_durable_is_quarantined_and_the_chain_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let db = tmp.path().join("db");
    drop(store_with(&db, &mut sealer, 20));
    let seg = segments(&db)[0].clone();
    let (_, at, _) = records(&seg)[12];
    let mut bytes = std::fs::read(&seg).unwrap();
    for b in &mut bytes[at..] {
        *b = 0;
    }
    std::fs::write(&seg, bytes).unwrap();
    let store = Store::open(&db).unwrap();
    let r = store
        .recovery()
        .expect("the quarantine is reported")
        .clone();
    assert_eq!(r.kind, RecoveryKind::Quarantined, "{}", r.summary());
    let after = r.continued_after.clone().unwrap();
    assert_eq!(after.seq, 12, "the last intact alert before the damage");
    assert!(
        Path::new(r.quarantined_to.as_deref().unwrap())
            .join("db.log")
            .exists()
    );
    assert_eq!(store.head().unwrap().seq, 12);
    let note = store
        .continuation()
        .expect("the next alert names the old chain");
    sealer.note_next(note);
    let first = seal_next(&store, &mut sealer, 13);
    assert_eq!(first.seq, 13);
    store.append(&first).unwrap();
    store.commit_marked(|h| sealer.mark(h)).unwrap();
    assert_eq!(store.continuation(), None);
    assert_eq!(verified(&store, &sealer), 13);
    let env = store.envelope(13).unwrap().unwrap();
    let (_, payload) = nightjar_agent::sign::chain::open_envelope(&env).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(doc["nightjar"]["recovered_from"]["seq"], 12);
    assert_eq!(doc["nightjar"]["recovered_from"]["hash"], after.hash);
    assert_eq!(doc["nightjar"]["prev"], after.hash);
}

/// A store written by version 1 (envelopes in sled) is migrated on open; a store of a newer
/// version than this agent knows is refused, naming the version.
#[test]
fn a_version_1_store_is_migrated_and_a_newer_one_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let db = tmp.path().join("db");
    std::fs::create_dir(&db).unwrap();
    {
        let raw = open_raw(&db);
        let alerts = raw.open_tree("alerts").unwrap();
        let uuids = raw.open_tree("uuid").unwrap();
        let times = raw.open_tree("time").unwrap();
        let meta = raw.open_tree("meta").unwrap();
        let mut head = ChainHead::GENESIS;
        for n in 1..=25 {
            let a = sealer.seal(&head, unsealed(n)).unwrap();
            alerts.insert(n.to_be_bytes(), a.envelope.clone()).unwrap();
            uuids.insert(a.uuid.as_bytes(), &n.to_be_bytes()).unwrap();
            times
                .insert(n.to_be_bytes(), &a.time_ns.to_be_bytes())
                .unwrap();
            head = ChainHead {
                seq: a.seq,
                hash: a.payload_hash,
            };
        }
        meta.insert("head", &head.to_bytes()[..]).unwrap();
        meta.insert("upload_cursor", &7u64.to_be_bytes()).unwrap();
        raw.flush().unwrap();
    }
    let store = Store::open(&db).unwrap();
    assert_eq!(store.chain_problem(), None);
    assert_eq!(store.head().unwrap().seq, 25);
    assert_eq!(store.upload_cursor().unwrap(), 7);
    assert_eq!(store.seq_of("uuid-25").unwrap(), Some(25));
    assert_eq!(store.time_of(3).unwrap(), Some(1_700_000_000_000_000_003));
    let v = store.verify(sealer.key().public_key()).unwrap().unwrap();
    assert_eq!(v.through, 25);
    assert!(v.note.is_some(), "no mark yet, said so");
    store.commit_marked(|h| sealer.mark(h)).unwrap();
    assert_eq!(
        store
            .verify(sealer.key().public_key())
            .unwrap()
            .unwrap()
            .note,
        None
    );
    drop(store);
    {
        let raw = open_raw(&db);
        assert!(!raw.tree_names().iter().any(|n| n.as_ref() == b"alerts"));
        let meta = raw.open_tree("meta").unwrap();
        meta.insert("schema", &3u64.to_be_bytes()).unwrap();
        raw.flush().unwrap();
    }
    let err = Store::open(&db).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer agent"), "{err}");
}

/// Reading does not grow what the process keeps: the index is not touched, envelopes are
/// read into one chunk's buffers.
#[test]
fn alerts_can_be_read_in_order_in_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealer = sealer(tmp.path());
    let options = StoreOptions {
        segment_bytes: 32 * 1024,
    };
    let store = store_with_options(&tmp.path().join("db"), &mut sealer, 500, options);
    let mut next = 1;
    let mut seen = Vec::new();
    loop {
        let chunk = store.read(next, 64).unwrap();
        match nightjar_agent::store::next_after(&chunk) {
            Some(n) => next = n,
            None => break,
        }
        for s in chunk {
            if let Stored::Alert { seq, .. } = s {
                seen.push(seq);
            }
        }
    }
    assert_eq!(seen, (1..=500).collect::<Vec<_>>());
    assert!(store.envelope(333).unwrap().is_some());
}
