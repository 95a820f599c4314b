//! The rule engine, process table and alert builder as the reader's [`Detector`].

use std::sync::Arc;
use std::time::Instant;

use nightjar_proto::event::Event;
use nightjar_rules::ecs::{EcsEvent, HostInfo};
use nightjar_rules::engine::{Detection, Engine, Limits, NoTermStore, TermStore};
use serde_json::{Map, Value};

use super::reader::Detector;
use super::status::RuleState;
use super::suppress::RuleLimit;
use super::swap::{ActiveRules, RulesSlot};
use crate::alert::{
    MatchKind, ThresholdResult, alert_uuid, build_alert, build_group_alerts, build_new_terms_alert,
    build_threshold_alert, group_id, group_uuids,
};
use crate::process_table::ProcessTable;

/// pids remembered for `process.parent.*`.
const PROCESS_TABLE_SLOTS: usize = 16_384;

/// Loaded rules over a process table, for one host; the rules follow the slot's
/// publications between batches.
///
/// The stateful rules' state (partial sequences, samples, threshold counts) belongs to one
/// rule set: a new set starts it afresh. new_terms history is saved first and loaded again,
/// so it carries over for the rules that stay.
pub struct RuleDetector {
    active: Arc<ActiveRules>,
    slot: Arc<RulesSlot>,
    /// The slot epoch `active` was taken at.
    epoch: u64,
    engine: Engine,
    limits: Limits,
    table: ProcessTable,
    host: HostInfo,
    terms: Box<dyn TermStore + Send>,
    /// When the latest event was handled, to carry the rules' clock (event time) forward
    /// while no event comes.
    last_event: Option<Instant>,
}

impl RuleDetector {
    /// `host` names the machine in alerts and seeds every alert uuid. No new_terms history
    /// is kept across runs (see [`RuleDetector::with_state`]).
    pub fn new(slot: Arc<RulesSlot>, host: HostInfo) -> RuleDetector {
        Self::with_state(slot, host, Limits::default(), Box::new(NoTermStore))
    }

    /// With bounds on stateful rules' state and a store for new_terms history.
    pub fn with_state(
        slot: Arc<RulesSlot>,
        host: HostInfo,
        limits: Limits,
        mut terms: Box<dyn TermStore + Send>,
    ) -> RuleDetector {
        let (epoch, active) = slot.latest();
        let mut engine = Engine::new(Arc::clone(&active.rules), limits);
        engine.load_terms(terms.as_mut());
        RuleDetector {
            active,
            slot,
            epoch,
            engine,
            limits,
            table: ProcessTable::new(PROCESS_TABLE_SLOTS),
            host,
            terms,
            last_event: None,
        }
    }

    fn ecs<'a>(&'a self, ev: &'a Event<'a>) -> EcsEvent<'a> {
        EcsEvent::of(ev, &self.table, &self.host)
    }
}

impl Detector for RuleDetector {
    fn limits(&self) -> Vec<RuleLimit> {
        self.active
            .rules
            .rules()
            .iter()
            .map(|r| RuleLimit::new(r.rule_id.clone(), r.interval, r.max_signals))
            .collect()
    }

    fn update(&mut self) -> bool {
        if self.slot.epoch() == self.epoch {
            return false;
        }
        let (epoch, active) = self.slot.latest();
        self.epoch = epoch;
        self.active = active;
        self.engine.save_terms(self.terms.as_mut());
        self.engine = Engine::new(Arc::clone(&self.active.rules), self.limits);
        self.engine.load_terms(self.terms.as_mut());
        true
    }

    fn evaluate(&self, ev: &Event<'_>, out: &mut Vec<usize>) {
        self.active.rules.evaluate(&self.ecs(ev), out);
    }

    fn detect(&mut self, ev: &Event<'_>, out: &mut Vec<Detection>) {
        let ecs = EcsEvent::of(ev, &self.table, &self.host);
        self.engine.on_event(&ecs, out);
        if self.engine.is_stateful() {
            self.last_event = Some(Instant::now());
        }
    }

    fn advance(&mut self, _now_ns: i64, out: &mut Vec<Detection>) {
        // The rules run on event time: it moves on by the wall time that passed since the
        // latest event (replayed events keep their own times).
        let (Some(at), Some(watermark)) = (self.last_event, self.engine.watermark()) else {
            return;
        };
        let since = i64::try_from(at.elapsed().as_nanos()).unwrap_or(i64::MAX);
        self.engine.advance(watermark.saturating_add(since), out);
    }

    fn excepted(&self, rule: usize, ev: &Event<'_>, now_ns: i64) -> bool {
        match self.active.rules.excepted(rule, &self.ecs(ev), now_ns) {
            Some(item) => {
                tracing::debug!(
                    rule_id = %self.rule_id(rule),
                    item,
                    event_seq = ev.meta().sensor_seq,
                    "match excepted"
                );
                true
            }
            None => false,
        }
    }

    fn detection_excepted(&self, d: &Detection, ev: Option<&Event<'_>>, now_ns: i64) -> bool {
        let ecs = ev.map(|ev| self.ecs(ev));
        match self.engine.excepted(d, ecs.as_ref(), &self.host, now_ns) {
            Some(item) => {
                tracing::debug!(rule_id = %self.rule_id(d.rule()), item, "detection excepted");
                true
            }
            None => false,
        }
    }

    fn rule_id(&self, rule: usize) -> &str {
        self.active
            .rules
            .rules()
            .get(rule)
            .map_or("", |r| r.rule_id.as_str())
    }

    fn policy_version(&self) -> u64 {
        self.active.policy_version
    }

    fn observe(&mut self, ev: &Event<'_>) {
        self.table.observe_event(ev);
    }

    fn alert_uuid(&self, rule: usize, ev: &Event<'_>) -> String {
        alert_uuid(&self.host.id, self.rule_id(rule), ev)
    }

    fn build_alert(
        &self,
        rule: usize,
        ev: &Event<'_>,
        time_ns: i64,
        suppressed: u64,
    ) -> Map<String, Value> {
        let ecs = self.ecs(ev);
        let how = if self.active.rules.is_certain(rule, &ecs) {
            MatchKind::Exact
        } else {
            MatchKind::ArgvTruncated
        };
        build_alert(
            &self.active.rules.rules()[rule],
            ev,
            &ecs,
            &self.host.id,
            time_ns,
            suppressed,
            how,
        )
    }

    fn group_uuids(&self, d: &Detection, ev: Option<&Event<'_>>) -> Vec<String> {
        let rule_id = self.rule_id(d.rule());
        match d {
            Detection::Correlated { events, .. } => {
                let group = group_id(&self.host.id, rule_id, events);
                group_uuids(&self.host.id, rule_id, &group, events.len())
            }
            Detection::NewTerms { .. } | Detection::Threshold { .. } => ev
                .map(|ev| vec![alert_uuid(&self.host.id, rule_id, ev)])
                .unwrap_or_default(),
            Detection::Event { .. } => Vec::new(),
        }
    }

    fn group_alerts(
        &self,
        d: &Detection,
        ev: Option<&Event<'_>>,
        time_ns: i64,
        suppressed: u64,
    ) -> Vec<Map<String, Value>> {
        let meta = &self.active.rules.rules()[d.rule()];
        match (d, ev) {
            (Detection::Correlated { events, .. }, _) => {
                build_group_alerts(meta, events, &self.host, time_ns, suppressed)
            }
            (Detection::NewTerms { terms, .. }, Some(ev)) => {
                vec![build_new_terms_alert(
                    meta,
                    ev,
                    &self.ecs(ev),
                    &self.host.id,
                    time_ns,
                    suppressed,
                    terms,
                )]
            }
            (
                Detection::Threshold {
                    group,
                    count,
                    cardinality,
                    ..
                },
                Some(ev),
            ) => {
                vec![build_threshold_alert(
                    meta,
                    ev,
                    &self.ecs(ev),
                    &self.host.id,
                    time_ns,
                    suppressed,
                    ThresholdResult {
                        group,
                        count: *count,
                        cardinality: *cardinality,
                    },
                )]
            }
            _ => Vec::new(),
        }
    }

    fn open_history(&mut self, store: &crate::store::Store) {
        match super::terms::SledTerms::open(store) {
            Ok(mut terms) => {
                self.engine.load_terms(&mut terms);
                self.terms = Box::new(terms);
            }
            Err(e) => {
                tracing::warn!("new_terms history unavailable (kept in memory this run): {e}")
            }
        }
    }

    fn persist(&mut self) {
        self.engine.save_terms(self.terms.as_mut());
    }

    fn rule_state(&self) -> Option<RuleState> {
        if !self.engine.is_stateful() {
            return None;
        }
        let s = self.engine.stats();
        Some(RuleState {
            evicted: s.evicted,
            held: s.held,
            bytes: s.bytes,
            late: s.late,
            learning: s.learning,
        })
    }
}
