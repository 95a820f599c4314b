//! The reader against an in-memory ring and a simple detector: durability ordering, re-reads
//! after a crash, suppression and loss accounting.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use nightjar_proto::codec::{self, RECORD_VERSION};
use nightjar_proto::event::Event;
use nightjar_proto::{Args, ExecEvent, LossReport, LossSource, Record, Target};
use serde_json::{Map, Value, json};

use super::reader::{Detector, EventRing, Reader, RingFault, RingLoss};
use super::status::LiveStatus;
use super::suppress::RuleLimit;
use crate::sign::{HostKey, Sealer};
use crate::store::{RingSeen, Store};

/// Records in memory; positions are record indexes + 1.
#[derive(Clone, Default)]
struct MemRing {
    records: Vec<Vec<u8>>,
    read: usize,
    committed: usize,
    seen: RingSeen,
    lost_in_resync: u64,
    corrupt_at: Option<usize>,
}

impl EventRing for MemRing {
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, RingFault> {
        if self.read >= self.records.len() {
            return Ok(None);
        }
        self.read += 1;
        if self.corrupt_at == Some(self.read - 1) {
            self.lost_in_resync += 1;
            return Err(RingFault::Corrupt("bad length".into()));
        }
        Ok(Some((self.read as u64, &self.records[self.read - 1])))
    }
    fn commit(&mut self, end: u64) {
        self.committed = end as usize;
    }
    fn rewind(&mut self) {
        self.read = self.committed;
    }
    fn loss(&self) -> RingLoss {
        RingLoss {
            header: self.seen,
            lost_in_resync: self.lost_in_resync,
            resyncs: self.lost_in_resync,
            producer_alive: true,
        }
    }
}

/// One rule: `kcc` with `copy_cred_cache` in argv.
struct Kcc {
    max_signals: u32,
    observed: usize,
}

impl Detector for Kcc {
    fn limits(&self) -> Vec<RuleLimit> {
        vec![RuleLimit::new(
            "kcc",
            Duration::from_secs(300),
            self.max_signals,
        )]
    }
    fn rule_id(&self, _rule: usize) -> &str {
        "kcc"
    }
    fn evaluate(&self, ev: &Event<'_>, out: &mut Vec<usize>) {
        if let Some(ev) = ev.exec()
            && ev.process_name() == "kcc"
            && ev.target.args.iter().any(|a| a == "copy_cred_cache")
        {
            out.push(0);
        }
    }
    fn observe(&mut self, _ev: &Event<'_>) {
        self.observed += 1;
    }
    fn alert_uuid(&self, rule: usize, ev: &Event<'_>) -> String {
        let ev = ev.exec().expect("only execs match");
        format!("{rule}-{}-{}", ev.target.pid, ev.sensor_seq)
    }
    fn build_alert(
        &self,
        _rule: usize,
        ev: &Event<'_>,
        _time_ns: i64,
        suppressed: u64,
    ) -> Map<String, Value> {
        let ev = ev.exec().expect("only execs match");
        let v = json!({
            "kibana": {"alert": {"rule": {"rule_id": "kcc"}, "suppressed": suppressed}},
            "process": {"pid": ev.target.pid},
        });
        v.as_object().cloned().unwrap()
    }
}

fn exec(seq: u64, pid: u32, exe: &str, args: &[&str]) -> Vec<u8> {
    let (args, _) = Args::from_strs(args);
    let ev = ExecEvent {
        sensor_seq: seq,
        target: Target {
            pid,
            executable: Cow::Owned(exe.to_string()),
            args,
            ..Target::default()
        },
        ..ExecEvent::default()
    };
    codec::encode_to_vec(&Record::Exec(ev)).unwrap()
}

fn stream(n: u64) -> Vec<Vec<u8>> {
    (1..=n)
        .map(|i| {
            if i % 4 == 0 {
                exec(
                    i,
                    700 + i as u32,
                    "/usr/bin/kcc",
                    &["kcc", "copy_cred_cache"],
                )
            } else {
                exec(i, 700 + i as u32, "/usr/bin/kcc", &["kcc", "list"])
            }
        })
        .collect()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    store: Store,
    key_path: std::path::PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let key_path = tmp.path().join("host.key");
        HostKey::create(&key_path).unwrap();
        let store = Store::open(&tmp.path().join("db")).unwrap();
        Fixture {
            _tmp: tmp,
            store,
            key_path,
        }
    }

    fn reader(&self, ring: MemRing, max_signals: u32) -> (Reader<MemRing, Kcc>, Arc<LiveStatus>) {
        let status = Arc::new(LiveStatus::resume(self.store.counters().unwrap()));
        let sealer = Sealer::new(HostKey::load(&self.key_path).unwrap(), "host-a".into());
        let detector = Kcc {
            max_signals,
            observed: 0,
        };
        let reader = Reader::new(
            ring,
            detector,
            self.store.clone(),
            sealer,
            Arc::clone(&status),
            None,
        )
        .unwrap();
        (reader, status)
    }

    fn verify(&self) -> u64 {
        let key = HostKey::load(&self.key_path).unwrap();
        self.store
            .verify(key.public_key())
            .unwrap()
            .unwrap()
            .through
    }
}

#[test]
fn matches_become_verified_alerts_and_the_ring_is_released_after_the_flush() {
    let fx = Fixture::new();
    let ring = MemRing {
        records: stream(40),
        ..MemRing::default()
    };
    let (mut reader, status) = fx.reader(ring, 0);
    assert_eq!(reader.drain(usize::MAX).unwrap(), 40);
    assert_eq!(
        reader.ring_mut().committed,
        0,
        "nothing released before a checkpoint"
    );
    assert_eq!(
        fx.store.head().unwrap().seq,
        10,
        "alerts are durable before release"
    );
    reader.checkpoint().unwrap();
    assert_eq!(reader.ring_mut().committed, 40);
    assert_eq!(fx.verify(), 10);
    assert_eq!(status.counters().events_received, 40);
    assert_eq!(fx.store.counters().unwrap().events_received, 40);
}

/// A reader over 4,000 events (one in four a match: 1,000 alerts) keeping 100 alerts.
fn retaining_reader(fx: &Fixture, uploaded_only: bool) -> Reader<MemRing, Kcc> {
    let ring = MemRing {
        records: stream(4000),
        ..MemRing::default()
    };
    let (mut reader, _status) = fx.reader(ring, 0);
    reader.set_retention(super::reader::Retention {
        retain: 100,
        uploaded_only,
    });
    reader
}

#[test]
fn retention_runs_at_checkpoints_and_keeps_the_newest_alerts() {
    let fx = Fixture::new();
    let mut reader = retaining_reader(&fx, false);
    assert_eq!(reader.drain(usize::MAX).unwrap(), 4000);
    assert_eq!(
        fx.store.pruned().unwrap().seq,
        0,
        "nothing before a checkpoint"
    );
    reader.checkpoint().unwrap();
    assert_eq!(
        fx.store.pruned().unwrap().seq,
        super::reader::PRUNE_STEP,
        "one bounded step per checkpoint"
    );
    assert!(reader.pruning());
    // Further checkpoints go on with nothing new to commit, a step each, until caught up.
    let mut checkpoints = 1;
    while reader.pruning() {
        reader.checkpoint().unwrap();
        checkpoints += 1;
        assert!(checkpoints < 100, "the pass ends");
    }
    assert_eq!(
        checkpoints as u64,
        900_u64.div_ceil(super::reader::PRUNE_STEP)
    );
    assert_eq!(fx.store.head().unwrap().seq, 1000);
    assert_eq!(fx.store.pruned().unwrap().seq, 900);
    assert_eq!(fx.store.range(0, 2000).unwrap().len(), 100);
    assert_eq!(fx.verify(), 1000);
}

#[test]
fn retention_with_upload_on_keeps_what_the_collector_has_not_accepted() {
    let fx = Fixture::new();
    let mut reader = retaining_reader(&fx, true);
    reader.drain(usize::MAX).unwrap();
    reader.checkpoint().unwrap();
    assert_eq!(fx.store.pruned().unwrap().seq, 0, "nothing uploaded yet");
    assert_eq!(fx.store.range(0, 2000).unwrap().len(), 1000);
}

#[test]
fn events_read_again_after_a_crash_store_no_duplicate() {
    let fx = Fixture::new();
    let ring = MemRing {
        records: stream(40),
        ..MemRing::default()
    };
    let (mut first, _) = fx.reader(ring, 0);
    first.drain(20).unwrap();
    first.checkpoint().unwrap();
    first.drain(usize::MAX).unwrap();
    // The agent dies here: alerts of records 21..40 are stored, their position is not.
    let mut ring = first.ring_mut().clone();
    drop(first);
    ring.rewind();
    assert_eq!(ring.read, 20);
    let (mut second, status) = fx.reader(ring, 0);
    second.drain(usize::MAX).unwrap();
    second.checkpoint().unwrap();
    assert_eq!(fx.store.head().unwrap().seq, 10);
    assert_eq!(fx.verify(), 10);
    assert_eq!(
        status.counters().events_received,
        40,
        "counters resume from the checkpoint, not from what was read after it"
    );
}

#[test]
fn matches_over_max_signals_are_counted_as_suppressed() {
    let fx = Fixture::new();
    let ring = MemRing {
        records: stream(40),
        ..MemRing::default()
    };
    let (mut reader, status) = fx.reader(ring, 3);
    reader.drain(usize::MAX).unwrap();
    reader.checkpoint().unwrap();
    assert_eq!(fx.store.head().unwrap().seq, 3);
    assert_eq!(status.counters().alerts_suppressed, 7);
    assert_eq!(fx.store.counters().unwrap().alerts_suppressed, 7);
}

#[test]
fn ring_loss_corruption_and_bad_records_count_as_dropped_once() {
    let fx = Fixture::new();
    let mut records = stream(8);
    let mut bad = exec(9, 1, "/bin/x", &["x"]);
    bad[2] = RECORD_VERSION + 1;
    records.push(bad);
    let loss = LossReport {
        source: LossSource::EsloggerGap,
        kind: None,
        count: 2,
        time_ns: 0,
    };
    records.push(codec::encode_to_vec(&Record::Loss(loss)).unwrap());
    let ring = MemRing {
        records,
        seen: RingSeen {
            generation: 7,
            drops: 5,
            upstream_loss: 2,
        },
        corrupt_at: Some(3),
        ..MemRing::default()
    };
    let (mut reader, status) = fx.reader(ring, 0);
    reader.drain(usize::MAX).unwrap();
    reader.checkpoint().unwrap();
    // 5 drops + 2 upstream (the Loss record is informational) + 1 resync + 1 bad record.
    assert_eq!(status.counters().events_dropped, 9);
    assert_eq!(status.ring_generation(), 7);
    let ring = reader.ring_mut().clone();
    drop(reader);

    // An agent restart sees the same header counters (and a new consumer's resync count):
    // nothing is counted twice.
    let restarted = MemRing {
        lost_in_resync: 0,
        ..ring.clone()
    };
    let (mut again, status) = fx.reader(restarted, 0);
    again.checkpoint().unwrap();
    assert_eq!(status.counters().events_dropped, 9);
    drop(again);

    // A restarted sensor keeps the header counters under a new generation.
    let reattached = MemRing {
        seen: RingSeen {
            generation: 8,
            drops: 6,
            upstream_loss: 2,
        },
        ..MemRing::default()
    };
    let (mut next, status) = fx.reader(reattached, 0);
    next.checkpoint().unwrap();
    assert_eq!(status.counters().events_dropped, 10);
    assert_eq!(status.ring_generation(), 8);
    drop(next);

    // A rebuilt ring starts its counters from zero.
    let rebuilt = MemRing {
        seen: RingSeen {
            generation: 9,
            drops: 1,
            ..RingSeen::default()
        },
        ..MemRing::default()
    };
    let (mut last, status) = fx.reader(rebuilt, 0);
    last.checkpoint().unwrap();
    assert_eq!(status.counters().events_dropped, 11);
}

#[test]
fn recover_rewinds_to_the_checkpoint() {
    let fx = Fixture::new();
    let ring = MemRing {
        records: stream(12),
        ..MemRing::default()
    };
    let (mut reader, status) = fx.reader(ring, 0);
    reader.drain(4).unwrap();
    reader.checkpoint().unwrap();
    reader.drain(4).unwrap();
    assert_eq!(status.counters().events_received, 8);
    reader.recover();
    assert_eq!(status.counters().events_received, 4);
    reader.drain(usize::MAX).unwrap();
    reader.checkpoint().unwrap();
    assert_eq!(status.counters().events_received, 12);
    assert_eq!(fx.verify(), 3);
}

/// An exec of `name` at `t_ms` (ms after a fixed time), capture order `seq`.
fn timed_exec(seq: u64, t_ms: i64, pid: u32, name: &str) -> Vec<u8> {
    let ev = ExecEvent {
        sensor_seq: seq,
        time_ns: 1_700_000_000_000_000_000 + t_ms * 1_000_000,
        target: Target {
            pid,
            ppid: Some(1),
            euid: Some(501),
            executable: Cow::Owned(format!("/usr/bin/{name}")),
            args: Args::from_strs([name]).0,
            ..Target::default()
        },
        ..ExecEvent::default()
    };
    codec::encode_to_vec(&Record::Exec(ev)).unwrap()
}

fn rule_detector(toml: &str, window_ms: u64) -> super::detect::RuleDetector {
    let (set, report) = nightjar_rules::RuleSet::from_texts(&[("t.toml", toml)], None);
    assert_eq!(report.ok(), 1, "{report:?}");
    let limits = nightjar_rules::engine::Limits {
        reorder_window: Duration::from_millis(window_ms),
        ..Default::default()
    };
    let slot = std::sync::Arc::new(super::swap::RulesSlot::new(super::swap::ActiveRules {
        rules: std::sync::Arc::new(set),
        policy_version: 0,
    }));
    super::detect::RuleDetector::with_state(
        slot,
        nightjar_rules::ecs::HostInfo::new("mac-1", "host-a"),
        limits,
        Box::new(nightjar_rules::engine::NoTermStore),
    )
}

/// Every stored alert's payload, in seq order.
fn payloads(store: &Store) -> Vec<Value> {
    use base64::Engine as _;
    store
        .read(1, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|s| match s {
            crate::store::Stored::Alert { envelope, .. } => {
                let env: nightjar_proto::dsse::Envelope =
                    serde_json::from_slice(&envelope).unwrap();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&env.payload)
                    .unwrap();
                serde_json::from_slice(&bytes).unwrap()
            }
            other => panic!("{other:?}"),
        })
        .collect()
}

const SEQUENCE_RULE: &str = "[rule]\nrule_id = \"seq-1\"\nname = \"Shell then curl\"\nseverity = \"medium\"\nrisk_score = 47\ntype = \"eql\"\nquery = '''\nsequence by user.id with maxspan=1m [process where process.name == \"sh\"] [process where process.name == \"curl\"]\n'''\n";

#[test]
fn a_sequence_match_is_stored_as_signed_chained_building_blocks_and_a_shell() {
    let fx = Fixture::new();
    let status = Arc::new(LiveStatus::resume(fx.store.counters().unwrap()));
    let sealer = Sealer::new(HostKey::load(&fx.key_path).unwrap(), "host-a".into());
    let ring = MemRing {
        records: vec![
            timed_exec(1, 0, 10, "sh"),
            timed_exec(2, 100, 11, "ls"),
            timed_exec(3, 200, 12, "curl"),
        ],
        ..MemRing::default()
    };
    let mut reader = Reader::new(
        ring,
        rule_detector(SEQUENCE_RULE, 0),
        fx.store.clone(),
        sealer,
        Arc::clone(&status),
        None,
    )
    .unwrap();
    assert_eq!(reader.drain(usize::MAX).unwrap(), 3);
    reader.advance(0).unwrap();
    reader.checkpoint().unwrap();
    let p = payloads(&fx.store);
    assert_eq!(p.len(), 3, "two building blocks and a shell");
    let group = &p[0]["kibana"]["alert"]["group"]["id"];
    assert!(group.is_string());
    assert_eq!(p[0]["process"]["name"], "sh");
    assert_eq!(p[1]["process"]["name"], "curl");
    assert_eq!(p[1]["kibana"]["alert"]["group"]["index"], 1);
    assert_eq!(p[2]["kibana"]["alert"]["group"]["id"], *group);
    assert!(p[2]["kibana"]["alert"].get("building_block_type").is_none());
    assert_eq!(p[2]["nightjar"]["event_seq"], 3);
    assert_eq!(fx.verify(), 3, "signed and chained like every alert");
}

#[test]
fn a_match_completed_by_time_passing_is_stored_at_the_next_advance() {
    // b arrives before a (in capture order); the reorder window puts them back in time
    // order, and the match is made when the window has passed on the clock.
    let fx = Fixture::new();
    let status = Arc::new(LiveStatus::resume(fx.store.counters().unwrap()));
    let sealer = Sealer::new(HostKey::load(&fx.key_path).unwrap(), "host-a".into());
    let ring = MemRing {
        records: vec![
            timed_exec(1, 1_000, 12, "curl"),
            timed_exec(2, 500, 10, "sh"),
        ],
        ..MemRing::default()
    };
    let mut reader = Reader::new(
        ring,
        rule_detector(SEQUENCE_RULE, 300),
        fx.store.clone(),
        sealer,
        Arc::clone(&status),
        None,
    )
    .unwrap();
    reader.drain(usize::MAX).unwrap();
    reader.checkpoint().unwrap();
    assert!(payloads(&fx.store).is_empty(), "still within the window");
    std::thread::sleep(Duration::from_millis(400));
    reader.advance(0).unwrap();
    reader.checkpoint().unwrap();
    let p = payloads(&fx.store);
    assert_eq!(p.len(), 3);
    assert_eq!(p[0]["process"]["name"], "sh");
    assert_eq!(status.rule_state().late, 0);
}

#[test]
fn new_terms_history_survives_a_restart_in_the_store() {
    const DAY: i64 = 86_400_000;
    let toml = "[rule]\nrule_id = \"nt-1\"\nname = \"New executable\"\nseverity = \"low\"\nrisk_score = 21\ntype = \"new_terms\"\nlanguage = \"kuery\"\nquery = '''\nevent.category:process\n'''\n[rule.new_terms]\nfield = \"new_terms_fields\"\nvalue = [\"host.id\", \"process.executable\"]\n[[rule.new_terms.history_window_start]]\nfield = \"history_window_start\"\nvalue = \"now-1d\"\n";
    let fx = Fixture::new();
    let run = |records: Vec<Vec<u8>>| {
        let status = Arc::new(LiveStatus::resume(fx.store.counters().unwrap()));
        let sealer = Sealer::new(HostKey::load(&fx.key_path).unwrap(), "host-a".into());
        let mut detector = rule_detector(toml, 0);
        detector.open_history(&fx.store);
        let ring = MemRing {
            records,
            ..MemRing::default()
        };
        let mut reader =
            Reader::new(ring, detector, fx.store.clone(), sealer, status, None).unwrap();
        reader.drain(usize::MAX).unwrap();
        reader.advance(0).unwrap();
        reader.checkpoint().unwrap();
    };
    // Learning a day: nothing.
    run(vec![
        timed_exec(1, 0, 10, "sh"),
        timed_exec(2, DAY / 2, 11, "ls"),
    ]);
    assert!(payloads(&fx.store).is_empty());
    // After a restart: `ls` was seen within the day, `nc` never.
    run(vec![
        timed_exec(3, DAY + 1, 12, "ls"),
        timed_exec(4, DAY + 2, 13, "nc"),
    ]);
    let p = payloads(&fx.store);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["process"]["executable"], "/usr/bin/nc");
    assert_eq!(
        p[0]["kibana"]["alert"]["new_terms"],
        json!(["host-a", "/usr/bin/nc"])
    );
    // And once more: `nc` is known now.
    run(vec![timed_exec(5, DAY + 3, 14, "nc")]);
    assert_eq!(payloads(&fx.store).len(), 1);
}

/// Two rule sets over the same events: every kcc exec matches `{p}-name`, the copy ones also
/// `{p}-copy`.
fn kcc_rules(prefix: &str) -> nightjar_rules::RuleSet {
    let rule = |id: &str, query: &str| {
        format!(
            "[rule]\nrule_id = \"{prefix}-{id}\"\nname = \"{id}\"\nseverity = \"low\"\n\
             risk_score = 21\ntype = \"query\"\nlanguage = \"kuery\"\nquery = '{query}'\n"
        )
    };
    let (name, copy) = (
        rule("name", "process.name:kcc"),
        rule("copy", "process.args:copy_cred_cache"),
    );
    let (set, report) =
        nightjar_rules::RuleSet::from_texts(&[("name.toml", &name), ("copy.toml", &copy)], Some(0));
    assert_eq!(report.ok(), 2, "{report:?}");
    set
}

/// A policy published while the reader drains is taken between two batches only: every
/// event's alerts come from one rule set and name its policy version, and once the new set
/// is taken the old one never comes back.
#[test]
fn a_new_rule_set_is_taken_between_two_batches_never_within_one() {
    use super::detect::RuleDetector;
    use super::swap::{ActiveRules, RulesSlot};

    let fx = Fixture::new();
    let slot = Arc::new(RulesSlot::new(ActiveRules {
        rules: Arc::new(kcc_rules("old")),
        policy_version: 0,
    }));
    let detector = RuleDetector::new(
        Arc::clone(&slot),
        nightjar_rules::ecs::HostInfo::new("h", "host-a"),
    );
    let status = Arc::new(LiveStatus::resume(fx.store.counters().unwrap()));
    let sealer = Sealer::new(HostKey::load(&fx.key_path).unwrap(), "host-a".into());
    let ring = MemRing {
        records: stream(400),
        ..MemRing::default()
    };
    let mut reader = Reader::new(
        ring,
        detector,
        fx.store.clone(),
        sealer,
        Arc::clone(&status),
        None,
    )
    .unwrap();
    let publisher = {
        let slot = Arc::clone(&slot);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            slot.publish(ActiveRules {
                rules: Arc::new(kcc_rules("new")),
                policy_version: 7,
            });
        })
    };
    let mut total = 0;
    while total < 400 {
        total += reader.drain(8).unwrap();
        if total == 200 {
            // Whatever the thread's timing, the new set is there by the second half.
            publisher.join().unwrap();
            assert!(slot.epoch() > 0);
            break;
        }
    }
    while total < 400 {
        total += reader.drain(8).unwrap();
    }
    reader.checkpoint().unwrap();

    let mut per_event: std::collections::BTreeMap<u64, Vec<(String, u64)>> = Default::default();
    for (_, env) in fx.store.range(1, 10_000).unwrap() {
        let (_, payload) = crate::sign::chain::open_envelope(&env).unwrap();
        let doc: Value = serde_json::from_slice(&payload).unwrap();
        per_event
            .entry(doc["nightjar"]["event_seq"].as_u64().unwrap())
            .or_default()
            .push((
                doc["kibana"]["alert"]["rule"]["rule_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                doc["nightjar"]["policy_version"].as_u64().unwrap(),
            ));
    }
    assert_eq!(per_event.len(), 400, "every kcc exec alerted");
    let mut switched = false;
    for (seq, alerts) in &per_event {
        let version = alerts[0].1;
        let prefix = if version == 7 { "new-" } else { "old-" };
        assert!(
            alerts
                .iter()
                .all(|(id, v)| *v == version && id.starts_with(prefix)),
            "event {seq} alerted under two rule sets: {alerts:?}"
        );
        assert_eq!(alerts.len(), if seq % 4 == 0 { 2 } else { 1 }, "{seq}");
        assert!(
            !(switched && version == 0),
            "event {seq} went back to the old set"
        );
        switched |= version == 7;
    }
    assert!(switched);
    assert_eq!(per_event[&400][0].1, 7);
}
