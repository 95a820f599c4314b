//! The machine events come from, and its user names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Distinct uids remembered; past this the cache starts over (a hostile stream cannot grow it).
const USER_CACHE_MAX: usize = 4096;

/// Resolves a uid to its account name (the agent passes the local account database).
pub type UserLookup = fn(u32) -> Option<String>;

/// `process.entity_id` of a process instance on a host: base64 of SHA-256 over (host id, pid,
/// start time) truncated to 16 bytes. The rule engine does no cryptography of its own: the
/// agent passes the digest (`nightjar_proto::identity::entity_id`).
pub type EntityHasher = fn(host_id: &str, pid: u32, start_time_ns: i64) -> [u8; 24];

/// A process entity id: 24 ASCII characters (standard base64 of 16 bytes), held inline.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntityId([u8; 24]);

impl EntityId {
    /// Wraps a hasher's output; `None` unless it is printable ASCII.
    pub fn new(bytes: [u8; 24]) -> Option<EntityId> {
        bytes
            .iter()
            .all(|b| b.is_ascii_graphic())
            .then_some(EntityId(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Checked ASCII at construction.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for EntityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The machine the events come from (`host.*`), plus a cache of user names (`user.name`).
///
/// Names come from [`HostInfo::set_user_name`] and, when one is given, from the lookup
/// function; without one, a uid nobody named has no `user.name`. The rule engine does no
/// I/O of its own: whoever runs it decides whether a name may be looked up (the agent does;
/// the sensor, answering Endpoint Security within a deadline, does not).
#[derive(Debug, Default)]
pub struct HostInfo {
    pub hostname: String,
    pub id: String,
    users: Mutex<HashMap<u32, Option<Arc<str>>>>,
    lookup: Option<UserLookup>,
    hasher: Option<EntityHasher>,
}

impl HostInfo {
    pub fn new(hostname: impl Into<String>, id: impl Into<String>) -> Self {
        HostInfo {
            hostname: hostname.into(),
            id: id.into(),
            users: Mutex::default(),
            lookup: None,
            hasher: None,
        }
    }

    /// Gives events entity ids (`process.entity_id` and the like), computed with `hasher`.
    pub fn with_entity_ids(mut self, hasher: EntityHasher) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// The entity id of process `pid` started at `start_time_ns` on this host; `None`
    /// without a hasher.
    pub fn entity_id(&self, pid: u32, start_time_ns: i64) -> Option<EntityId> {
        EntityId::new((self.hasher?)(&self.id, pid, start_time_ns))
    }

    /// Names uids nobody named with `lookup` (cached).
    pub fn with_user_lookup(mut self, lookup: UserLookup) -> Self {
        self.lookup = Some(lookup);
        self
    }

    /// Fixes the name of a uid (for input recorded on another machine, and tests).
    pub fn set_user_name(&self, uid: u32, name: Option<&str>) {
        if let Ok(mut users) = self.users.lock() {
            users.insert(uid, name.map(Arc::from));
        }
    }

    /// `user.name` of a uid: a name set, else the lookup's answer, cached.
    pub fn user_name(&self, uid: u32) -> Option<Arc<str>> {
        let mut users = self.users.lock().ok()?;
        if let Some(hit) = users.get(&uid) {
            return hit.clone();
        }
        let lookup = self.lookup?;
        if users.len() >= USER_CACHE_MAX {
            users.clear();
        }
        let name = lookup(uid).map(Arc::from);
        users.insert(uid, name.clone());
        name
    }
}
