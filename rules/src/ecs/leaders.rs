//! Session, group and entry leaders (`process.session_leader.*`, `process.group_leader.*`,
//! `process.entry_leader.*`), as Elastic Defend's Linux events describe them.
//!
//! The session and group leaders are named by the kernel (the POSIX session id and process
//! group id are their pids). The entry leader is the process through which the session
//! entered the host, with how it did (`entry_meta.type`): a process inherits its parent's
//! entry leader, except that the first process of a container, pid 1, and a session leader
//! started by sshd, a console login, a terminal or init start a new entry.

use super::Process;

/// `process.entry_leader.entry_meta.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryType {
    Init,
    Sshd,
    Ssm,
    Kubelet,
    Teleport,
    Terminal,
    Console,
    Container,
    Unknown,
}

impl EntryType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Init => "init",
            EntryType::Sshd => "sshd",
            EntryType::Ssm => "ssm",
            EntryType::Kubelet => "kubelet",
            EntryType::Teleport => "teleport",
            EntryType::Terminal => "terminal",
            EntryType::Console => "console",
            EntryType::Container => "container",
            EntryType::Unknown => "unknown",
        }
    }
}

/// A process's entry leader: which process instance, and how the session entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryLeader {
    pub pid: u32,
    pub start_time_ns: Option<i64>,
    pub kind: EntryType,
}

/// What deciding a process's entry leader needs to know about it.
#[derive(Debug, Clone, Copy)]
pub struct EntryFacts {
    pub pid: u32,
    pub start_time_ns: Option<i64>,
    /// The POSIX session id.
    pub sid: Option<u32>,
    pub container: Option<bool>,
    pub interactive: Option<bool>,
}

/// Terminal programs whose session-leading children entered through them.
const TERMINALS: [&str; 8] = [
    "gnome-terminal-server",
    "konsole",
    "xterm",
    "alacritty",
    "kitty",
    "tmux",
    "screen",
    "terminator",
];

/// The entry leader of a process with `facts`, whose parent (when known) is `parent`.
pub fn entry_leader(facts: EntryFacts, parent: Option<&dyn Process>) -> Option<EntryLeader> {
    let own = |kind| {
        Some(EntryLeader {
            pid: facts.pid,
            start_time_ns: facts.start_time_ns,
            kind,
        })
    };
    if facts.pid == 1 {
        return own(EntryType::Init);
    }
    if facts.container == Some(true) && parent.is_none_or(|p| p.container() != Some(true)) {
        return own(EntryType::Container);
    }
    if facts.sid == Some(facts.pid)
        && let Some(parent) = parent
    {
        let name = parent.name();
        let kind = match name {
            "sshd" => Some(EntryType::Sshd),
            "ssm-session-worker" | "ssm-session-logger" => Some(EntryType::Ssm),
            "teleport" => Some(EntryType::Teleport),
            "kubelet" => Some(EntryType::Kubelet),
            "login" | "agetty" | "getty" | "mingetty" => Some(EntryType::Console),
            n if TERMINALS.contains(&n) => Some(EntryType::Terminal),
            _ if parent.pid() == 1 => Some(EntryType::Init),
            _ if facts.interactive == Some(true) => Some(EntryType::Terminal),
            _ => None,
        };
        if let Some(kind) = kind {
            return own(kind);
        }
    }
    parent.and_then(|p| p.entry_leader())
}
