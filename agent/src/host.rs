//! This machine as the rule engine sees it: hostname, host id, and user names from the local
//! account database.

use nightjar_rules::ecs::HostInfo;

/// `hostname` and `id`, naming uids from the local account database (`getpwuid_r`) and
/// giving processes their entity ids.
pub fn with_accounts(hostname: impl Into<String>, id: impl Into<String>) -> HostInfo {
    HostInfo::new(hostname, id)
        .with_user_lookup(lookup_user)
        .with_entity_ids(nightjar_proto::identity::entity_id)
}

/// This machine: its hostname, and its id from `/etc/machine-id` (systemd, D-Bus), else the
/// hostname. The agent passes the configured `host_id` instead; `scan` uses this.
pub fn local() -> HostInfo {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned());
    let id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| {
            let id = std::fs::read_to_string(p).ok()?;
            let id = id.trim();
            (!id.is_empty()).then(|| id.to_owned())
        })
        .unwrap_or_else(|| hostname.clone());
    with_accounts(hostname, id)
}

/// The account name of `uid`.
pub fn lookup_user(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}
