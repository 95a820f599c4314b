//! The machine events come from, and its user names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Distinct uids remembered; past this the cache starts over (a hostile stream cannot grow it).
const USER_CACHE_MAX: usize = 4096;

/// Resolves a uid to its account name (the agent passes the local account database).
pub type UserLookup = fn(u32) -> Option<String>;

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
}

impl HostInfo {
    pub fn new(hostname: impl Into<String>, id: impl Into<String>) -> Self {
        HostInfo {
            hostname: hostname.into(),
            id: id.into(),
            users: Mutex::default(),
            lookup: None,
        }
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
