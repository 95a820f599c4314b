//! The rule engine, process table and alert builder as the reader's [`Detector`].

use std::time::{Duration, Instant};

use nightjar_proto::ExecEvent;
use nightjar_rules::RuleSet;
use nightjar_rules::ecs::{EcsEvent, HostInfo};
use nightjar_rules::engine::{Detection, Engine, Limits, NoTermStore, TermStore};
use serde_json::{Map, Value};

use super::reader::Detector;
use super::status::RuleState;
use crate::alert::{
    ThresholdResult, alert_uuid, build_alert, build_group_alerts, build_new_terms_alert,
    build_threshold_alert, group_id, group_uuids,
};
use crate::process_table::ProcessTable;

/// pids remembered for `process.parent.*`.
const PROCESS_TABLE_SLOTS: usize = 16_384;

/// Loaded rules over a process table, for one host.
pub struct RuleDetector {
    engine: Engine,
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
    pub fn new(rules: RuleSet, host: HostInfo) -> RuleDetector {
        Self::with_state(rules, host, Limits::default(), Box::new(NoTermStore))
    }

    /// With bounds on stateful rules' state and a store for new_terms history.
    pub fn with_state(
        rules: RuleSet,
        host: HostInfo,
        limits: Limits,
        mut terms: Box<dyn TermStore + Send>,
    ) -> RuleDetector {
        let mut engine = Engine::new(rules, limits);
        engine.load_terms(terms.as_mut());
        RuleDetector {
            engine,
            table: ProcessTable::new(PROCESS_TABLE_SLOTS),
            host,
            terms,
            last_event: None,
        }
    }

    fn rule_id(&self, rule: usize) -> &str {
        &self.engine.rules().rules()[rule].rule_id
    }
}

impl Detector for RuleDetector {
    fn limits(&self) -> Vec<(Duration, u32)> {
        self.engine
            .rules()
            .rules()
            .iter()
            .map(|r| (r.interval, r.max_signals))
            .collect()
    }

    fn evaluate(&self, ev: &ExecEvent<'_>, out: &mut Vec<usize>) {
        let ecs = EcsEvent::new(ev, &self.table, &self.host);
        self.engine.rules().evaluate(&ecs, out);
    }

    fn detect(&mut self, ev: &ExecEvent<'_>, out: &mut Vec<Detection>) {
        let ecs = EcsEvent::new(ev, &self.table, &self.host);
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

    fn observe(&mut self, ev: &ExecEvent<'_>) {
        self.table.observe(ev);
    }

    fn alert_uuid(&self, rule: usize, ev: &ExecEvent<'_>) -> String {
        alert_uuid(&self.host.id, self.rule_id(rule), ev)
    }

    fn build_alert(
        &self,
        rule: usize,
        ev: &ExecEvent<'_>,
        time_ns: i64,
        suppressed: u64,
    ) -> Map<String, Value> {
        let ecs = EcsEvent::new(ev, &self.table, &self.host);
        build_alert(
            &self.engine.rules().rules()[rule],
            &ecs,
            &self.host.id,
            time_ns,
            suppressed,
        )
    }

    fn group_uuids(&self, d: &Detection, ev: Option<&ExecEvent<'_>>) -> Vec<String> {
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
        ev: Option<&ExecEvent<'_>>,
        time_ns: i64,
        suppressed: u64,
    ) -> Vec<Map<String, Value>> {
        let meta = &self.engine.rules().rules()[d.rule()];
        match (d, ev) {
            (Detection::Correlated { events, .. }, _) => {
                build_group_alerts(meta, events, &self.host, time_ns, suppressed)
            }
            (Detection::NewTerms { terms, .. }, Some(ev)) => {
                let ecs = EcsEvent::new(ev, &self.table, &self.host);
                vec![build_new_terms_alert(
                    meta,
                    &ecs,
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
                let ecs = EcsEvent::new(ev, &self.table, &self.host);
                vec![build_threshold_alert(
                    meta,
                    &ecs,
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
