//! The rule engine, process table and alert builder as the reader's [`Detector`].

use std::time::Duration;

use nightjar_proto::event::Event;
use serde_json::{Map, Value};

use super::reader::Detector;
use crate::alert::{MatchKind, alert_uuid, build_alert};
use crate::process_table::ProcessTable;
use nightjar_rules::RuleSet;
use nightjar_rules::ecs::{EcsEvent, HostInfo};

/// pids remembered for `process.parent.*`.
const PROCESS_TABLE_SLOTS: usize = 16_384;

/// Loaded rules over a process table, for one host.
pub struct RuleDetector {
    rules: RuleSet,
    table: ProcessTable,
    host: HostInfo,
}

impl RuleDetector {
    /// `host` names the machine in alerts and seeds every alert uuid.
    pub fn new(rules: RuleSet, host: HostInfo) -> RuleDetector {
        RuleDetector {
            rules,
            table: ProcessTable::new(PROCESS_TABLE_SLOTS),
            host,
        }
    }
}

impl Detector for RuleDetector {
    fn limits(&self) -> Vec<(Duration, u32)> {
        self.rules
            .rules()
            .iter()
            .map(|r| (r.interval, r.max_signals))
            .collect()
    }

    fn evaluate(&self, ev: &Event<'_>, out: &mut Vec<usize>) {
        let ecs = EcsEvent::of(ev, &self.table, &self.host);
        self.rules.evaluate(&ecs, out);
    }

    fn observe(&mut self, ev: &Event<'_>) {
        self.table.observe_event(ev);
    }

    fn alert_uuid(&self, rule: usize, ev: &Event<'_>) -> String {
        alert_uuid(&self.host.id, &self.rules.rules()[rule].rule_id, ev)
    }

    fn build_alert(
        &self,
        rule: usize,
        ev: &Event<'_>,
        time_ns: i64,
        suppressed: u64,
    ) -> Map<String, Value> {
        let ecs = EcsEvent::of(ev, &self.table, &self.host);
        let how = if self.rules.is_certain(rule, &ecs) {
            MatchKind::Exact
        } else {
            MatchKind::ArgvTruncated
        };
        build_alert(
            &self.rules.rules()[rule],
            ev,
            &ecs,
            &self.host.id,
            time_ns,
            suppressed,
            how,
        )
    }
}
