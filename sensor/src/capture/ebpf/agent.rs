//! Finding the agent's processes so the probe can mute them. The agent may start before or
//! after the sensor and may restart, so /proc is searched every few seconds (never per
//! event); every process running the agent's executable name counts.

use std::path::Path;
use std::time::{Duration, Instant};

/// The agent's executable name.
pub const AGENT_EXE: &str = "nightjar-agent";
/// How often /proc is searched.
const RESCAN: Duration = Duration::from_secs(3);

/// What changed since the last look.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentChange {
    /// Pids to unmute (their agent is gone).
    pub gone: Vec<u32>,
    /// Pids to mute.
    pub found: Vec<u32>,
}

/// Tracks the agent's pids.
#[derive(Debug)]
pub struct AgentWatch {
    pids: Vec<u32>,
    next_check: Instant,
}

impl Default for AgentWatch {
    fn default() -> Self {
        AgentWatch {
            pids: Vec::new(),
            next_check: Instant::now(),
        }
    }
}

fn is_agent(pid: &str) -> bool {
    std::fs::read_link(Path::new("/proc").join(pid).join("exe"))
        .ok()
        .and_then(|exe| exe.file_name().map(|n| n == AGENT_EXE))
        .unwrap_or(false)
}

fn find_agents() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()) && is_agent(name))
        .filter_map(|name| name.parse().ok())
        .collect()
}

impl AgentWatch {
    /// Looks again if it is time to; returns what to mute and unmute.
    pub fn refresh(&mut self) -> AgentChange {
        let now = Instant::now();
        if now < self.next_check {
            return AgentChange::default();
        }
        self.next_check = now + RESCAN;
        let current = find_agents();
        let change = AgentChange {
            gone: self
                .pids
                .iter()
                .copied()
                .filter(|p| !current.contains(p))
                .collect(),
            found: current
                .iter()
                .copied()
                .filter(|p| !self.pids.contains(p))
                .collect(),
        };
        self.pids = current;
        change
    }
}
