//! Answers control requests from the store, the host key and the live counters, in bounded
//! chunks so a large store never has to fit one reply buffer.

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::{KeyReport, Reply, Request, StatusReport, VerifyOutcome};
use crate::fleet::FleetStatus;
use crate::pipeline::status::LiveStatus;
use crate::policy::PolicyStatus;
use crate::sign::chain::open_envelope;
use crate::store::{ChainCheck, Store, StoreError, Stored};

/// Alerts read from the store per chunk of a list or export reply.
const ALERTS_PER_CHUNK: usize = 64;
/// Alerts verified per chunk of a verify reply.
const VERIFY_PER_CHUNK: usize = 256;

/// The host's public key as `keys show` and `verify` need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub key_id: String,
    pub public_key: Vec<u8>,
}

/// What requests are answered from.
#[derive(Debug, Clone)]
pub struct Backend {
    store: Store,
    /// The host key, or why it is not available.
    key: Result<KeyInfo, String>,
    /// The running agent's counters; `None` when the CLI reads the store at rest.
    live: Option<Arc<LiveStatus>>,
    upload_enabled: bool,
    /// The fleet side's status; `None` without `[fleet]`.
    fleet: Option<Arc<Mutex<FleetStatus>>>,
    /// The policy side's status; `None` without `[fleet] policy_public_key`.
    policy: Option<Arc<Mutex<PolicyStatus>>>,
}

impl Backend {
    /// `live` is the running agent's counters; `None` when the CLI reads a store at rest.
    pub fn new(
        store: Store,
        key: Result<KeyInfo, String>,
        live: Option<Arc<LiveStatus>>,
        upload_enabled: bool,
    ) -> Backend {
        Backend {
            store,
            key,
            live,
            upload_enabled,
            fleet: None,
            policy: None,
        }
    }

    /// With the policy side's status (the agent has `[fleet] policy_public_key`).
    pub fn with_policy(mut self, policy: Arc<Mutex<PolicyStatus>>) -> Backend {
        self.policy = Some(policy);
        self
    }

    /// With the fleet side's status (the agent has `[fleet]`).
    pub fn with_fleet(mut self, fleet: Arc<Mutex<FleetStatus>>) -> Backend {
        self.fleet = Some(fleet);
        self
    }

    /// The store's chain head (what a heartbeat reports).
    pub fn chain_head(&self) -> Result<crate::sign::ChainHead, StoreError> {
        self.store.head()
    }

    /// The `status` report.
    pub fn status(&self) -> Result<StatusReport, StoreError> {
        let head = self.store.head()?;
        let pending = self.store.pending_upload()?;
        let (counters, connected, generation, resyncs, upload, stalled) = match &self.live {
            Some(live) => (
                live.counters(),
                live.sensor_connected(),
                Some(live.ring_generation()),
                Some(live.ring_resyncs()),
                live.upload(),
                live.stalled(),
            ),
            None => (
                self.store.counters()?,
                false,
                None,
                None,
                Default::default(),
                None,
            ),
        };
        let rules = self.live.as_ref().map(|l| l.rule_state());
        let fleet = self
            .fleet
            .as_ref()
            .map(|f| f.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default();
        let policy = self
            .policy
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default();
        let excepted_by_rule = self
            .live
            .as_ref()
            .map(|l| l.excepted_by_rule())
            .unwrap_or_default();
        Ok(StatusReport {
            alerts_excepted: counters.alerts_excepted,
            alerts_excepted_by_rule: excepted_by_rule,
            policy_version: policy.version,
            policy_applied_at: policy.applied_at,
            policy_error: policy.error,
            policy_fetch_error: policy.fetch_error,
            chain_head: self.store.head_mark()?,
            store_recovery: self.store.recovery().map(|r| r.summary()),
            enrolled: fleet.enrolled,
            last_heartbeat_ok: fleet.last_heartbeat_ok,
            last_heartbeat_error: fleet.last_heartbeat_error,
            enrol_error: fleet.enrol_error,
            events_received: counters.events_received,
            events_dropped: counters.events_dropped,
            alerts_stored: head.seq,
            alerts_suppressed: counters.alerts_suppressed,
            events_filtered: counters.events_filtered,
            exec_blocked: counters.exec_blocked,
            block_failed_open: counters.block_failed_open,
            alerts_pending_upload: pending,
            sensor_connected: connected,
            last_upload_ok: upload.last_upload_ok,
            last_upload_error: upload.last_upload_error,
            agent_running: self.live.is_some(),
            chain_ok: self.store.chain_problem().is_none(),
            chain_error: self.store.chain_problem().map(str::to_string),
            ring_generation: generation,
            ring_resyncs: resyncs,
            upload_enabled: self.upload_enabled,
            upload_blocked_batch: upload.blocked_batch,
            alerting_stalled: stalled,
            rules_state_evicted: rules.map(|r| r.evicted),
            rules_state_held: rules.map(|r| r.held),
            rules_state_bytes: rules.map(|r| r.bytes),
            rules_events_late: rules.map(|r| r.late),
            rules_learning: rules.map(|r| r.learning),
        })
    }
}

enum State {
    Start(Request),
    List {
        next: u64,
        since_ns: Option<i64>,
        rule: Option<String>,
        unreadable: Option<String>,
    },
    Export {
        next: u64,
    },
    Verify {
        next: u64,
        check: Box<ChainCheck>,
    },
    Done,
}

/// The reply to one request, produced chunk by chunk.
pub struct Responder {
    state: State,
}

impl Responder {
    /// Nothing is read until [`Responder::fill`] asks for the first chunk.
    pub fn new(request: Request) -> Responder {
        Responder {
            state: State::Start(request),
        }
    }

    /// A reply that is only the error line (a malformed request).
    pub fn refuse(out: &mut Vec<u8>, message: String) {
        push(out, &Reply::Error(message));
    }

    /// Appends the next reply lines to `out`; returns true once the final line is written.
    pub fn fill(&mut self, backend: &Backend, out: &mut Vec<u8>) -> bool {
        match self.step(backend, out) {
            Ok(true) => {
                push(out, &Reply::End(true));
                self.state = State::Done;
                true
            }
            Ok(false) => matches!(self.state, State::Done),
            Err(message) => {
                push(out, &Reply::Error(message));
                self.state = State::Done;
                true
            }
        }
    }

    /// One chunk; `Ok(true)` when the reply is complete and only the end line is missing.
    fn step(&mut self, b: &Backend, out: &mut Vec<u8>) -> Result<bool, String> {
        let store_err = |e: StoreError| e.to_string();
        match &mut self.state {
            State::Done => Ok(false),
            State::Start(request) => match request.clone() {
                Request::Status => {
                    push(
                        out,
                        &Reply::Status(Box::new(b.status().map_err(store_err)?)),
                    );
                    Ok(true)
                }
                Request::KeysShow => {
                    let key = b.key.as_ref().map_err(Clone::clone)?;
                    push(
                        out,
                        &Reply::Key(KeyReport {
                            key_id: key.key_id.clone(),
                            public_key: STANDARD.encode(&key.public_key),
                            algorithm: "ed25519".into(),
                        }),
                    );
                    Ok(true)
                }
                Request::AlertsShow { uuid } => {
                    let seq = b
                        .store
                        .seq_of(&uuid)
                        .map_err(store_err)?
                        .ok_or_else(|| format!("no alert with uuid {uuid}"))?;
                    let env = b
                        .store
                        .envelope(seq)
                        .map_err(store_err)?
                        .ok_or_else(|| format!("alert seq {seq} (uuid {uuid}) is missing"))?;
                    let payload =
                        payload_json(&env).map_err(|r| format!("alert seq {seq}: {r}"))?;
                    push(out, &Reply::Alert(payload));
                    Ok(true)
                }
                Request::AlertsList { since_ns, rule } => {
                    self.state = State::List {
                        next: 1,
                        since_ns,
                        rule,
                        unreadable: None,
                    };
                    Ok(false)
                }
                Request::AlertsExport => {
                    self.state = State::Export { next: 1 };
                    Ok(false)
                }
                Request::Verify => {
                    let key = b.key.as_ref().map_err(Clone::clone)?;
                    self.state = State::Verify {
                        next: 1,
                        check: Box::new(
                            ChainCheck::new(&b.store, &key.public_key).map_err(store_err)?,
                        ),
                    };
                    Ok(false)
                }
            },
            State::List {
                next,
                since_ns,
                rule,
                unreadable,
            } => {
                let chunk = b.store.read(*next, ALERTS_PER_CHUNK).map_err(store_err)?;
                let Some(resume) = resume_after(&chunk) else {
                    return match unreadable.take() {
                        Some(why) => Err(format!("{why}; run `nightjar-agent verify`")),
                        None => Ok(true),
                    };
                };
                for item in chunk {
                    let (seq, time_ns, env) = match item {
                        Stored::Alert {
                            seq,
                            time_ns,
                            envelope,
                        } => (seq, time_ns, envelope),
                        Stored::Damaged { seq, reason } => {
                            unreadable.get_or_insert(match seq {
                                Some(seq) => format!("alert seq {seq} is unreadable: {reason}"),
                                None => format!("a stored record is unreadable: {reason}"),
                            });
                            continue;
                        }
                    };
                    if since_ns.is_some_and(|since| time_ns < since) {
                        continue;
                    }
                    match payload_json(&env) {
                        Ok(doc) => {
                            if rule.as_deref().is_none_or(|r| {
                                lookup(&doc, "kibana.alert.rule.rule_id") == Some(&Value::from(r))
                            }) {
                                push(out, &Reply::Alert(doc));
                            }
                        }
                        Err(r) => {
                            unreadable.get_or_insert(format!("alert seq {seq} is unreadable: {r}"));
                        }
                    }
                }
                *next = resume;
                Ok(false)
            }
            State::Export { next } => {
                let chunk = b.store.read(*next, ALERTS_PER_CHUNK).map_err(store_err)?;
                let Some(resume) = resume_after(&chunk) else {
                    return Ok(true);
                };
                for item in chunk {
                    match item {
                        Stored::Alert { seq, envelope, .. } => {
                            let (envelope, _) = open_envelope(&envelope)
                                .map_err(|r| format!("alert seq {seq}: {r}"))?;
                            push(out, &Reply::Envelope(envelope));
                        }
                        Stored::Damaged { seq, reason } => {
                            return Err(format!(
                                "alert seq {}: {reason}; run `nightjar-agent verify`",
                                seq.map_or_else(|| "?".into(), |s| s.to_string())
                            ));
                        }
                    }
                }
                *next = resume;
                Ok(false)
            }
            State::Verify { next, check } => {
                let chunk = b.store.read(*next, VERIFY_PER_CHUNK).map_err(store_err)?;
                let resume = resume_after(&chunk);
                for item in &chunk {
                    if let Err(e) = check.check(item) {
                        push(out, &Reply::Verify(outcome(Err(e))));
                        return Ok(true);
                    }
                }
                match resume {
                    Some(resume) => {
                        *next = resume;
                        Ok(false)
                    }
                    None => {
                        let head = b.store.head().map_err(store_err)?;
                        let State::Verify { check, .. } =
                            std::mem::replace(&mut self.state, State::Done)
                        else {
                            return Ok(false);
                        };
                        push(out, &Reply::Verify(outcome(check.finish(&head))));
                        Ok(true)
                    }
                }
            }
        }
    }
}

/// Where the next chunk starts after `chunk`: after the last record it named. `None` when
/// it named none (the end).
fn resume_after(chunk: &[Stored]) -> Option<u64> {
    crate::store::next_after(chunk)
}

fn outcome(result: Result<crate::store::Verified, crate::sign::VerifyError>) -> VerifyOutcome {
    match result {
        Ok(v) => VerifyOutcome {
            ok: true,
            alerts: Some(v.through),
            seq: None,
            reason: v.note,
        },
        Err(e) => VerifyOutcome {
            ok: false,
            alerts: None,
            seq: Some(e.seq),
            reason: Some(e.reason),
        },
    }
}

fn payload_json(envelope: &[u8]) -> Result<Value, String> {
    let (_, payload) = open_envelope(envelope).map_err(|e| e.to_string())?;
    serde_json::from_slice(&payload).map_err(|e| format!("payload is not JSON: {e}"))
}

/// A dotted ECS field in an alert document, whether stored nested (`{"kibana":{"alert":…}}`)
/// or with dotted keys (`{"kibana.alert.rule.rule_id":…}`).
pub fn lookup<'v>(doc: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return Some(doc);
    }
    let map = doc.as_object()?;
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    path.match_indices('.').find_map(|(i, _)| {
        map.get(&path[..i])
            .and_then(|inner| lookup(inner, &path[i + 1..]))
    })
}

fn push(out: &mut Vec<u8>, reply: &Reply) {
    // Serialising these types cannot fail: every map key is a string.
    if serde_json::to_writer(&mut *out, reply).is_ok() {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_reads_nested_and_dotted_fields() {
        let nested = serde_json::json!({"kibana": {"alert": {"rule": {"rule_id": "r1"}}}});
        assert_eq!(
            lookup(&nested, "kibana.alert.rule.rule_id"),
            Some(&Value::from("r1"))
        );
        let dotted = serde_json::json!({"kibana.alert.rule.rule_id": "r2"});
        assert_eq!(
            lookup(&dotted, "kibana.alert.rule.rule_id"),
            Some(&Value::from("r2"))
        );
        let mixed = serde_json::json!({"kibana.alert": {"rule": {"rule_id": "r3"}}});
        assert_eq!(
            lookup(&mixed, "kibana.alert.rule.rule_id"),
            Some(&Value::from("r3"))
        );
        assert_eq!(lookup(&mixed, "kibana.alert.rule.name"), None);
    }
}
