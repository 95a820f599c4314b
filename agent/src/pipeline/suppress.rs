//! `max_signals` per rule per `interval`: matches beyond the cap are counted, not stored, and
//! the count is reported in the next alert of that rule (`kibana.alert` suppression field).

use std::time::{Duration, Instant};

/// One rule's cap and its current window.
#[derive(Debug, Clone)]
struct Window {
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
    /// `limits[i]` = (interval, max_signals) of rule `i`.
    pub fn new(limits: impl IntoIterator<Item = (Duration, u32)>) -> Suppressor {
        Suppressor {
            windows: limits
                .into_iter()
                .map(|(interval, max_signals)| Window {
                    interval,
                    max_signals,
                    started: None,
                    alerts: 0,
                    unreported: 0,
                })
                .collect(),
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
        let mut s = Suppressor::new([(minute, 2), (minute, 0)]);
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
        let mut s = Suppressor::new([(Duration::from_secs(60), 1)]);
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
}
