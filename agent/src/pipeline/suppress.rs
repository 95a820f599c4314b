//! `max_signals` per rule per `interval`: matches beyond the cap are counted, not stored, and
//! the count is reported in the next alert of that rule (`kibana.alert` suppression field).

use std::time::{Duration, Instant};

/// One rule's cap, as the detector states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLimit {
    pub rule_id: String,
    pub interval: Duration,
    /// 0 = no cap.
    pub max_signals: u32,
}

impl RuleLimit {
    pub fn new(rule_id: impl Into<String>, interval: Duration, max_signals: u32) -> RuleLimit {
        RuleLimit {
            rule_id: rule_id.into(),
            interval,
            max_signals,
        }
    }
}

/// One rule's cap and its current window.
#[derive(Debug, Clone)]
struct Window {
    rule_id: String,
    interval: Duration,
    /// 0 = no cap.
    max_signals: u32,
    started: Option<Instant>,
    alerts: u32,
    /// Matches suppressed since this rule's last stored alert.
    unreported: u64,
}

/// What to do with one match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Store an alert; it reports this many matches suppressed before it.
    Alert { suppressed_before: u64 },
    /// Over the cap: count it, store nothing.
    Suppress,
}

/// The caps of every rule, indexed like the rule set.
#[derive(Debug, Clone, Default)]
pub struct Suppressor {
    windows: Vec<Window>,
}

impl Suppressor {
    /// `limits[i]` is the cap of rule `i`.
    pub fn new(limits: impl IntoIterator<Item = RuleLimit>) -> Suppressor {
        Suppressor {
            windows: limits
                .into_iter()
                .map(|l| Window {
                    rule_id: l.rule_id,
                    interval: l.interval,
                    max_signals: l.max_signals,
                    started: None,
                    alerts: 0,
                    unreported: 0,
                })
                .collect(),
        }
    }

    /// The rules changed (a new policy): caps follow the new rules, and a rule kept across
    /// the change keeps its window and its unreported count, so swapping rules neither
    /// resets a cap (letting a flood through) nor loses a suppressed count.
    pub fn rebuild(&mut self, limits: impl IntoIterator<Item = RuleLimit>) {
        let mut old = std::mem::take(&mut self.windows);
        *self = Suppressor::new(limits);
        for w in &mut self.windows {
            if let Some(i) = old.iter().position(|o| o.rule_id == w.rule_id) {
                let o = old.swap_remove(i);
                w.started = o.started;
                w.alerts = o.alerts;
                w.unreported = o.unreported;
            }
        }
    }

    /// Decides about one match of `rule` at `now`. An `Alert` verdict takes a slot in the
    /// window; call [`Suppressor::stored`] once the alert is durable, or
    /// [`Suppressor::unstored`] when storing it failed.
    pub fn judge(&mut self, rule: usize, now: Instant) -> Verdict {
        let Some(w) = self.windows.get_mut(rule) else {
            return Verdict::Alert {
                suppressed_before: 0,
            };
        };
        if w.max_signals == 0 {
            return Verdict::Alert {
                suppressed_before: w.unreported,
            };
        }
        let expired = w
            .started
            .is_none_or(|s| now.saturating_duration_since(s) >= w.interval);
        if expired {
            w.started = Some(now);
            w.alerts = 0;
        }
        if w.alerts >= w.max_signals {
            w.unreported += 1;
            return Verdict::Suppress;
        }
        w.alerts += 1;
        Verdict::Alert {
            suppressed_before: w.unreported,
        }
    }

    /// The alert of `rule` is stored: the suppressed count it carried is reported.
    pub fn stored(&mut self, rule: usize, reported: u64) {
        if let Some(w) = self.windows.get_mut(rule) {
            w.unreported = w.unreported.saturating_sub(reported);
        }
    }

    /// Storing the alert of `rule` failed: give its slot back (the event will be re-read).
    pub fn unstored(&mut self, rule: usize) {
        if let Some(w) = self.windows.get_mut(rule) {
            w.alerts = w.alerts.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_suppresses_and_the_next_alert_reports_the_count() {
        let minute = Duration::from_secs(60);
        let mut s = Suppressor::new([
            RuleLimit::new("a", minute, 2),
            RuleLimit::new("b", minute, 0),
        ]);
        let t0 = Instant::now();
        assert_eq!(
            s.judge(0, t0),
            Verdict::Alert {
                suppressed_before: 0
            }
        );
        s.stored(0, 0);
        assert_eq!(
            s.judge(0, t0),
            Verdict::Alert {
                suppressed_before: 0
            }
        );
        s.stored(0, 0);
        assert_eq!(s.judge(0, t0), Verdict::Suppress);
        assert_eq!(s.judge(0, t0 + Duration::from_secs(59)), Verdict::Suppress);
        for _ in 0..5 {
            assert_eq!(
                s.judge(1, t0),
                Verdict::Alert {
                    suppressed_before: 0
                }
            );
        }
        let later = t0 + minute;
        assert_eq!(
            s.judge(0, later),
            Verdict::Alert {
                suppressed_before: 2
            }
        );
        s.stored(0, 2);
        assert_eq!(
            s.judge(0, later),
            Verdict::Alert {
                suppressed_before: 0
            }
        );
    }

    #[test]
    fn a_failed_store_gives_the_slot_back() {
        let mut s = Suppressor::new([RuleLimit::new("a", Duration::from_secs(60), 1)]);
        let t0 = Instant::now();
        assert_eq!(
            s.judge(0, t0),
            Verdict::Alert {
                suppressed_before: 0
            }
        );
        s.unstored(0);
        assert_eq!(
            s.judge(0, t0),
            Verdict::Alert {
                suppressed_before: 0
            }
        );
        s.stored(0, 0);
        assert_eq!(s.judge(0, t0), Verdict::Suppress);
    }

    #[test]
    fn a_rebuild_keeps_the_windows_of_rules_that_stay() {
        let minute = Duration::from_secs(60);
        let mut s = Suppressor::new([
            RuleLimit::new("a", minute, 1),
            RuleLimit::new("b", minute, 1),
        ]);
        let t0 = Instant::now();
        assert!(matches!(s.judge(0, t0), Verdict::Alert { .. }));
        s.stored(0, 0);
        assert_eq!(s.judge(0, t0), Verdict::Suppress);
        // `a` moves to index 1, `c` is new, `b` is gone.
        s.rebuild([
            RuleLimit::new("c", minute, 1),
            RuleLimit::new("a", minute, 1),
        ]);
        assert!(matches!(s.judge(0, t0), Verdict::Alert { .. }));
        assert_eq!(s.judge(1, t0), Verdict::Suppress);
        assert_eq!(
            s.judge(1, t0 + minute),
            Verdict::Alert {
                suppressed_before: 2
            }
        );
    }
}
