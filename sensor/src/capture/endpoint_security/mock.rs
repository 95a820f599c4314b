//! A recording [`EsApi`] for tests: every call is kept in order, and any call can be made to
//! fail.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::api::{AuthResult, EsApi, EsCallError, EsEvent, Inversion, MutePath};

/// One call made on the mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Subscribe(Vec<EsEvent>),
    Unsubscribe(Vec<EsEvent>),
    MuteProcess(u32),
    MutePath(PathBuf, MutePath),
    Invert(Inversion),
    UnmuteAllTargetPaths,
    Respond {
        message: u64,
        result: AuthResult,
        cache: bool,
    },
    ClearCache,
}

/// Records calls; the calls named in `fail` return an error (and are recorded).
#[derive(Debug, Default)]
pub struct RecordingEs {
    pub calls: Vec<Call>,
    pub fail: HashSet<&'static str>,
}

impl RecordingEs {
    pub fn failing(calls: &[&'static str]) -> RecordingEs {
        RecordingEs {
            calls: Vec::new(),
            fail: calls.iter().copied().collect(),
        }
    }

    fn record(&mut self, name: &'static str, call: Call) -> Result<(), EsCallError> {
        self.calls.push(call);
        if self.fail.contains(name) {
            Err(EsCallError {
                call: name,
                detail: "ES_RETURN_ERROR (mock)".into(),
            })
        } else {
            Ok(())
        }
    }

    /// The AUTH answers given, in order.
    pub fn responses(&self) -> Vec<(u64, AuthResult, bool)> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                Call::Respond {
                    message,
                    result,
                    cache,
                } => Some((*message, *result, *cache)),
                _ => None,
            })
            .collect()
    }
}

impl EsApi for RecordingEs {
    /// A message is its number.
    type Message = u64;

    fn subscribe(&mut self, events: &[EsEvent]) -> Result<(), EsCallError> {
        self.record("subscribe", Call::Subscribe(events.to_vec()))
    }
    fn unsubscribe(&mut self, events: &[EsEvent]) -> Result<(), EsCallError> {
        self.record("unsubscribe", Call::Unsubscribe(events.to_vec()))
    }
    fn mute_process(&mut self, pid: u32) -> Result<(), EsCallError> {
        self.record("mute_process", Call::MuteProcess(pid))
    }
    fn mute_path(&mut self, path: &Path, kind: MutePath) -> Result<(), EsCallError> {
        self.record("mute_path", Call::MutePath(path.to_path_buf(), kind))
    }
    fn invert_muting(&mut self, what: Inversion) -> Result<(), EsCallError> {
        self.record("invert_muting", Call::Invert(what))
    }
    fn unmute_all_target_paths(&mut self) -> Result<(), EsCallError> {
        self.record("unmute_all_target_paths", Call::UnmuteAllTargetPaths)
    }
    fn respond_auth(
        &mut self,
        message: &u64,
        result: AuthResult,
        cache: bool,
    ) -> Result<(), EsCallError> {
        self.record(
            "respond_auth",
            Call::Respond {
                message: *message,
                result,
                cache,
            },
        )
    }
    fn clear_cache(&mut self) -> Result<(), EsCallError> {
        self.record("clear_cache", Call::ClearCache)
    }
}
