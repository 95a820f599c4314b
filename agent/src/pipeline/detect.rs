//! The rule engine, process table and alert builder as the reader's [`Detector`].

use std::sync::Arc;

use nightjar_proto::event::Event;
use serde_json::{Map, Value};

use super::reader::Detector;
use super::suppress::RuleLimit;
use super::swap::{ActiveRules, RulesSlot};
use crate::alert::{MatchKind, alert_uuid, build_alert};
use crate::process_table::ProcessTable;
use nightjar_rules::ecs::{EcsEvent, HostInfo};

/// pids remembered for `process.parent.*`.
const PROCESS_TABLE_SLOTS: usize = 16_384;

/// Loaded rules over a process table, for one host; the rules follow the slot's
/// publications between batches.
pub struct RuleDetector {
    active: Arc<ActiveRules>,
    slot: Arc<RulesSlot>,
    /// The slot epoch `active` was taken at.
    epoch: u64,
    table: ProcessTable,
    host: HostInfo,
}

impl RuleDetector {
    /// `host` names the machine in alerts and seeds every alert uuid.
    pub fn new(slot: Arc<RulesSlot>, host: HostInfo) -> RuleDetector {
        let (epoch, active) = slot.latest();
        RuleDetector {
            active,
            slot,
            epoch,
            table: ProcessTable::new(PROCESS_TABLE_SLOTS),
            host,
        }
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
        true
    }

    fn evaluate(&self, ev: &Event<'_>, out: &mut Vec<usize>) {
        let ecs = EcsEvent::of(ev, &self.table, &self.host);
        self.active.rules.evaluate(&ecs, out);
    }

    fn excepted(&self, rule: usize, ev: &Event<'_>, now_ns: i64) -> bool {
        let ecs = EcsEvent::of(ev, &self.table, &self.host);
        match self.active.rules.excepted(rule, &ecs, now_ns) {
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
        let ecs = EcsEvent::of(ev, &self.table, &self.host);
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
}
