//! Blocking on macOS: what the AUTH_EXEC client does with each message, whatever delivers it.
//!
//! The AUTH client is its own Endpoint Security client (delivery is serial per client: a
//! backlog of notifications must never delay an answer), subscribed to `AUTH_EXEC` only while
//! a blocking rule is loaded. For every message, in the handler itself, in bounded time (the
//! compiled matcher on what the message carries: no I/O, no lock, no logging):
//!
//! 1. An [`AllowGuard`] is armed first: whatever happens next (an early return, a panic), the
//!    message is answered ALLOW, uncached, and counted as failed open. A message left
//!    unanswered past its deadline gets the client killed.
//! 2. The time left before the deadline is checked: under [`DEADLINE_MARGIN`], ALLOW
//!    uncached at once (fail open, counted).
//! 3. Targets Nightjar never blocks (its own binaries, launchd and the platform's critical
//!    daemons) are allowed, cached.
//! 4. The rules are evaluated on the exec; a blocking rule that matches (and no exception of
//!    it) denies, never cached. A match that is uncertain because argv was cut is allowed
//!    and counted as failed open: blocking is never conservative.
//! 5. Otherwise ALLOW, cached only when no blocking rule could match this target with other
//!    arguments (the cache key is caller and target executable), and only while the cache
//!    was cleared successfully since the rules were loaded ([`AuthHandler::clear_cache`]:
//!    Endpoint Security may throttle it; answers stay uncached until a retry succeeds).
//! 6. The blocking set follows the kept fleet policy live ([`AuthFollow`], on the client
//!    owner's tick): the handler's rules are swapped under the lock it decides under (every
//!    message is decided wholly by the old set or the new), answers are uncached from the
//!    swap until `clear_cache()` succeeds (retried on every tick: it can throttle), and
//!    AUTH_EXEC is subscribed while the set is non-empty, unsubscribed when it empties.
//! 7. A denied exec produces no NOTIFY_EXEC: the handler hands its record (flagged blocked)
//!    to the ring's one writer through a bounded queue ([`Handoff`]); a full queue counts the
//!    record as lost (`blocked_unrecorded`), never waits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nightjar_proto::event::{EnvFilter, Event, FLAG_BLOCKED};
use nightjar_rules::RuleSet;
use nightjar_rules::ecs::{EcsEvent, HostInfo, NoProcesses};
use nightjar_rules::matcher::block::is_protected_image;

use super::api::{AuthResult, EsApi, EsEvent, MutePath};
use super::fields::{EsExecFields, EsScratch};
use super::setup::OwnProcesses;
use crate::block::Blocking;

/// Below this much time before the deadline, the answer is ALLOW at once.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(500);
/// Blocked records waiting for the ring writer.
pub const HANDOFF_SLOTS: usize = 256;
/// Targets never blocked, muted as AUTH_EXEC targets on the AUTH client.
pub const PROTECTED_TARGETS: [&str; 3] = [
    "/sbin/launchd",
    "/usr/libexec/endpointsecurityd",
    "/System/Library/CoreServices/loginwindow.app/Contents/MacOS/loginwindow",
];

/// What the AUTH client counted, shared with the thread that reports it.
#[derive(Debug, Default)]
pub struct AuthStats {
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    /// Answered ALLOW without deciding (deadline too close, a panic, an uncertain match, a
    /// failed answer).
    pub failed_open: AtomicU64,
    /// Denied execs whose record could not be handed to the ring writer.
    pub blocked_unrecorded: AtomicU64,
}

/// The blocked records' way to the ring writer.
pub struct Handoff {
    tx: SyncSender<Event<'static>>,
}

impl Handoff {
    /// A queue of [`HANDOFF_SLOTS`] records and its receiving end (the ring writer's).
    pub fn new() -> (Handoff, Receiver<Event<'static>>) {
        let (tx, rx) = sync_channel(HANDOFF_SLOTS);
        (Handoff { tx }, rx)
    }
}

/// The decision for one AUTH_EXEC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow {
        cache: bool,
    },
    Deny {
        rule: usize,
    },
    /// Allowed without a decision; counted.
    FailOpen,
}

/// Answers a message ALLOW (uncached) when dropped unanswered: the answer of last resort,
/// counted as failed open.
pub struct AllowGuard<'a, A: EsApi> {
    api: &'a mut A,
    message: &'a A::Message,
    stats: &'a AuthStats,
    answered: bool,
}

impl<'a, A: EsApi> AllowGuard<'a, A> {
    pub fn new(api: &'a mut A, message: &'a A::Message, stats: &'a AuthStats) -> Self {
        AllowGuard {
            api,
            message,
            stats,
            answered: false,
        }
    }

    /// Gives the answer; a failed DENY is counted as failed open (Endpoint Security then
    /// applies its default when the deadline passes).
    pub fn answer(mut self, result: AuthResult, cache: bool) {
        self.answered = true;
        if self.api.respond_auth(self.message, result, cache).is_err() {
            self.stats.failed_open.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<A: EsApi> Drop for AllowGuard<'_, A> {
    fn drop(&mut self) {
        if !self.answered {
            self.stats.failed_open.fetch_add(1, Ordering::Relaxed);
            let _ = self
                .api
                .respond_auth(self.message, AuthResult::Allow, false);
        }
    }
}

/// The state of the AUTH client's handler.
pub struct AuthHandler {
    /// `None` only while no rule blocks (then `blocking` is empty).
    rules: Option<Arc<RuleSet>>,
    blocking: Vec<usize>,
    host: HostInfo,
    env: EnvFilter,
    own: Vec<String>,
    scratch: EsScratch,
    /// The cache was cleared since the rules were loaded: ALLOW may be cached. Shared with
    /// the owner's [`AuthFollow`], which clears the cache outside the handler's lock.
    cache_cleared: Arc<AtomicBool>,
    stats: Arc<AuthStats>,
    handoff: Handoff,
}

impl AuthHandler {
    pub fn new(
        rules: Option<Arc<RuleSet>>,
        blocking: Vec<usize>,
        host: HostInfo,
        own: &OwnProcesses,
        stats: Arc<AuthStats>,
        handoff: Handoff,
    ) -> AuthHandler {
        AuthHandler {
            rules,
            blocking,
            host,
            env: EnvFilter::default(),
            own: own
                .executables
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            scratch: EsScratch::default(),
            cache_cleared: Arc::new(AtomicBool::new(false)),
            stats,
            handoff,
        }
    }

    pub fn stats(&self) -> &Arc<AuthStats> {
        &self.stats
    }

    /// Whether some rule blocks.
    pub fn is_blocking(&self) -> bool {
        !self.blocking.is_empty()
    }

    /// Replaces the blocking set; ALLOW is not cached again until the cache is cleared.
    pub fn set_rules(&mut self, block: &Blocking) {
        self.cache_cleared.store(false, Ordering::Relaxed);
        self.rules = block.rules.clone();
        self.blocking = block.indices.clone();
    }

    /// Clears Endpoint Security's AUTH cache (after subscribing, and on every rule change);
    /// until it succeeds, answers are not cached.
    pub fn clear_cache<A: EsApi>(&self, api: &mut A) -> bool {
        let ok = api.clear_cache().is_ok();
        self.cache_cleared.store(ok, Ordering::Relaxed);
        ok
    }

    /// Mutes Nightjar's own binaries and the protected targets as AUTH_EXEC targets, then
    /// subscribes and clears the cache.
    pub fn setup<A: EsApi>(
        &self,
        api: &mut A,
        own: &OwnProcesses,
    ) -> Result<(), super::api::EsCallError> {
        mute_targets(api, own)?;
        api.subscribe(&[EsEvent::AuthExec])?;
        self.clear_cache(api);
        Ok(())
    }

    /// Decides on one exec; for a denied one, also its record (flagged blocked). Only the
    /// blocking rules are evaluated (they read only what the message carries: see
    /// `nightjar_rules::matcher::block`), so the decision takes no lock and does no I/O.
    pub fn decide<'a, I, E>(
        &mut self,
        msg: EsExecFields<'a, I, E>,
    ) -> (Decision, Option<Event<'static>>)
    where
        I: Iterator<Item = &'a [u8]>,
        E: Iterator<Item = &'a [u8]>,
    {
        let AuthHandler {
            rules,
            blocking,
            host,
            env,
            own,
            scratch,
            ..
        } = self;
        let Some(rules) = rules else {
            return (Decision::Allow { cache: false }, None);
        };
        let mut ev = msg.to_event_with(scratch, env);
        let exe: &str = &ev.target.executable;
        if own.iter().any(|o| o == exe)
            || PROTECTED_TARGETS.contains(&exe)
            || is_protected_image(exe)
        {
            return (Decision::Allow { cache: true }, None);
        }
        let mut denied = None;
        let mut uncertain = false;
        {
            let view = EcsEvent::new(&ev, &NoProcesses, host);
            for &i in blocking.iter() {
                match rules.outcome(i, &view) {
                    Some(true) => {
                        denied = Some(i);
                        break;
                    }
                    Some(false) => {}
                    None => uncertain = true,
                }
            }
            if denied.is_none() {
                if uncertain {
                    return (Decision::FailOpen, None);
                }
                let cacheable = !blocking.iter().any(|&i| rules.could_match_target(i, &view));
                return (Decision::Allow { cache: cacheable }, None);
            }
        }
        ev.flags |= FLAG_BLOCKED;
        let rule = denied.unwrap_or_default();
        (Decision::Deny { rule }, Some(Event::Exec(ev).into_owned()))
    }

    /// Handles one AUTH_EXEC message: answers it (always, see the module), and hands a
    /// denied exec's record to the ring writer. `time_left` is the time before the
    /// message's deadline (`None`: unknown, answered at once).
    pub fn handle<'a, A, I, E>(
        &mut self,
        api: &mut A,
        message: &A::Message,
        time_left: Option<Duration>,
        msg: EsExecFields<'a, I, E>,
    ) -> Decision
    where
        A: EsApi,
        I: Iterator<Item = &'a [u8]>,
        E: Iterator<Item = &'a [u8]>,
    {
        let stats = Arc::clone(&self.stats);
        let guard = AllowGuard::new(api, message, &stats);
        if time_left.is_none_or(|t| t < DEADLINE_MARGIN) {
            stats.failed_open.fetch_add(1, Ordering::Relaxed);
            guard.answer(AuthResult::Allow, false);
            return Decision::FailOpen;
        }
        let (decision, record) = self.decide(msg);
        match decision {
            Decision::Allow { cache } => {
                stats.allowed.fetch_add(1, Ordering::Relaxed);
                let cache = cache && self.cache_cleared.load(Ordering::Relaxed);
                guard.answer(AuthResult::Allow, cache);
            }
            Decision::FailOpen => {
                stats.failed_open.fetch_add(1, Ordering::Relaxed);
                guard.answer(AuthResult::Allow, false);
            }
            Decision::Deny { .. } => {
                guard.answer(AuthResult::Deny, false);
                stats.denied.fetch_add(1, Ordering::Relaxed);
                // The record of the exec that never ran: the only one there will be.
                if let Some(ev) = record
                    && let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                        self.handoff.tx.try_send(ev)
                {
                    stats.blocked_unrecorded.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        decision
    }
}

/// Mutes Nightjar's own binaries and the protected targets as AUTH_EXEC targets.
fn mute_targets<A: EsApi>(api: &mut A, own: &OwnProcesses) -> Result<(), super::api::EsCallError> {
    own.mute(api)?;
    for path in own.executables.iter().map(|p| p.as_path()).chain(
        PROTECTED_TARGETS
            .iter()
            .map(std::path::Path::new)
            .filter(|p| p.exists() || cfg!(test)),
    ) {
        api.mute_path(path, MutePath::TargetLiteral)?;
    }
    Ok(())
}

/// The AUTH client's subscription and cache as the blocking set changes: the owner's side
/// (never the handler's), on its tick.
pub struct AuthFollow {
    cache_cleared: Arc<AtomicBool>,
    muted: bool,
    subscribed: bool,
    /// The set changed and the cache has not been cleared since.
    clear_pending: bool,
}

impl AuthFollow {
    pub fn new(handler: &AuthHandler) -> AuthFollow {
        AuthFollow {
            cache_cleared: Arc::clone(&handler.cache_cleared),
            muted: false,
            subscribed: false,
            clear_pending: false,
        }
    }

    /// Whether AUTH_EXEC is subscribed.
    pub fn subscribed(&self) -> bool {
        self.subscribed
    }

    /// Puts `block` in force: the handler's set swapped under its lock, then AUTH_EXEC
    /// subscribed (targets muted first) when the set is non-empty or unsubscribed when it is
    /// empty, then the cache cleared. An error leaves the new set in the handler (answers stay
    /// uncached) and is the caller's to log; the next change tries again.
    pub fn apply<A: EsApi>(
        &mut self,
        api: &mut A,
        handler: &Mutex<AuthHandler>,
        own: &OwnProcesses,
        block: &Blocking,
    ) -> Result<(), super::api::EsCallError> {
        handler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_rules(block);
        self.clear_pending = true;
        if block.is_empty() {
            if self.subscribed {
                api.unsubscribe(&[EsEvent::AuthExec])?;
                self.subscribed = false;
            }
        } else {
            if !self.muted {
                mute_targets(api, own)?;
                self.muted = true;
            }
            if !self.subscribed {
                api.subscribe(&[EsEvent::AuthExec])?;
                self.subscribed = true;
            }
        }
        self.retry_clear(api);
        Ok(())
    }

    /// Clears the cache when a change still waits for it (Endpoint Security may throttle
    /// `clear_cache`: called again on every tick until it succeeds). True when none waits.
    pub fn retry_clear<A: EsApi>(&mut self, api: &mut A) -> bool {
        if self.clear_pending && api.clear_cache().is_ok() {
            self.clear_pending = false;
            self.cache_cleared.store(true, Ordering::Relaxed);
        }
        !self.clear_pending
    }
}
