//! File events: creation, modification, rename and deletion; on macOS also opens, the removal
//! of a file's quarantine attribute, and launch agents or daemons added.

use std::borrow::Cow;

use bincode::{BorrowDecode, Encode};

use super::{
    Actor, BoundsError, EventMeta, MAX_PATH_BYTES, TRUNC_FILE_PATH, basename, bound_cow, bound_opt,
    check, opt_len, own, own_opt,
};

/// What happened to the file (`event.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Encode, BorrowDecode)]
#[repr(u8)]
pub enum FileAction {
    /// A new file (`event.type: creation`).
    #[default]
    Creation = 1,
    /// A file closed after it was written, or a write (`event.type: change`).
    Modification = 2,
    /// Moved or renamed; `original_path` is where it was (`event.type: change`).
    Rename = 3,
    /// Unlinked (`event.type: deletion`).
    Deletion = 4,
    /// Opened (`event.type: access`; macOS `NOTIFY_OPEN`, only the paths rules select).
    Open = 5,
    /// The quarantine extended attribute (`com.apple.quarantine`) was deleted
    /// (`event.type: change`; macOS `NOTIFY_DELETEEXTATTR`).
    ExtendedAttributesDelete = 6,
    /// A launch agent or daemon was added; `path` is its property list, `launch_executable`
    /// the program it runs (`event.type: creation`; macOS 13+ `NOTIFY_BTM_LAUNCH_ITEM_ADD`).
    LaunchDaemon = 7,
}

impl FileAction {
    /// ECS `event.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileAction::Creation => "creation",
            FileAction::Modification => "modification",
            FileAction::Rename => "rename",
            FileAction::Deletion => "deletion",
            FileAction::Open => "open",
            FileAction::ExtendedAttributesDelete => "extended_attributes_delete",
            FileAction::LaunchDaemon => "launch_daemon",
        }
    }

    /// ECS `event.type` (one value).
    pub fn event_type(self) -> &'static str {
        match self {
            FileAction::Creation | FileAction::LaunchDaemon => "creation",
            FileAction::Modification
            | FileAction::Rename
            | FileAction::ExtendedAttributesDelete => "change",
            FileAction::Deletion => "deletion",
            FileAction::Open => "access",
        }
    }
}

/// A process created, modified, renamed, deleted or opened a file, removed its quarantine, or
/// added a launch item.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, BorrowDecode)]
pub struct FileEvent<'a> {
    pub meta: EventMeta,
    /// The process that did it.
    pub process: Actor<'a>,
    pub action: FileAction,
    /// The file's path (for a rename: where it is now).
    pub path: Cow<'a, str>,
    /// A rename's original path; absent for every other action.
    pub original_path: Option<Cow<'a, str>>,
    /// The program a launch agent or daemon runs (`Persistence.executable`), when Endpoint
    /// Security names it; absent for every other action.
    pub launch_executable: Option<Cow<'a, str>>,
}

impl<'a> FileEvent<'a> {
    /// `file.name`.
    pub fn name(&self) -> &str {
        basename(&self.path)
    }

    pub fn enforce_bounds(&mut self) {
        let mut flags = self.process.enforce_bounds();
        if bound_cow(&mut self.path, MAX_PATH_BYTES)
            | bound_opt(&mut self.original_path, MAX_PATH_BYTES)
            | bound_opt(&mut self.launch_executable, MAX_PATH_BYTES)
        {
            flags |= TRUNC_FILE_PATH;
        }
        self.meta.flags |= flags;
    }

    pub fn validate(&self) -> Result<(), BoundsError> {
        self.process.validate()?;
        check("file.path", Some(&self.path), MAX_PATH_BYTES)?;
        check(
            "file.Ext.original.path",
            self.original_path.as_ref(),
            MAX_PATH_BYTES,
        )?;
        check(
            "Persistence.executable",
            self.launch_executable.as_ref(),
            MAX_PATH_BYTES,
        )?;
        if (self.action == FileAction::Rename) != self.original_path.is_some() {
            return Err(BoundsError::RenameShape);
        }
        if self.action != FileAction::LaunchDaemon && self.launch_executable.is_some() {
            return Err(BoundsError::LaunchShape);
        }
        Ok(())
    }

    pub fn string_bytes(&self) -> usize {
        self.process.string_bytes()
            + self.path.len()
            + opt_len(&self.original_path)
            + opt_len(&self.launch_executable)
    }

    pub fn into_owned(self) -> FileEvent<'static> {
        FileEvent {
            meta: self.meta,
            process: self.process.into_owned(),
            action: self.action,
            path: own(self.path),
            original_path: own_opt(self.original_path),
            launch_executable: own_opt(self.launch_executable),
        }
    }
}

/// The extended attribute whose deletion is published ([`FileAction::ExtendedAttributesDelete`]):
/// Gatekeeper's quarantine mark, the attribute Elastic's rule on this action is about. Other
/// attributes change all the time (Finder, Spotlight) and are not published.
pub const QUARANTINE_XATTR: &str = "com.apple.quarantine";

/// Whether an `es_btm_item_type_t` is a launch agent (3) or daemon (4): the items published
/// as [`FileAction::LaunchDaemon`] (user items, apps and login items are not launchd jobs).
pub fn is_launch_daemon_type(item_type: u32) -> bool {
    matches!(item_type, 3 | 4)
}

/// The path of a launch item's property list from Background Task Management's `item_url`:
/// a `file://` URL (percent-encoded), or a URL relative to the app's `app_url` for an item
/// inside an app bundle (`Contents/Library/LaunchDaemons/x.plist`). `None` when neither
/// gives an absolute path. Launch items are rare: the copy costs nothing that matters.
pub fn launch_item_path(item_url: &str, app_url: Option<&str>) -> Option<String> {
    fn local(url: &str) -> Option<String> {
        let rest = url.strip_prefix("file://").unwrap_or(url);
        // `file://localhost/x` names the local host.
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        rest.starts_with('/').then(|| percent_decode(rest))
    }
    if let Some(path) = local(item_url) {
        return Some(path);
    }
    if item_url.contains("://") {
        return None;
    }
    let mut base = local(app_url?)?;
    if !base.ends_with('/') {
        base.push('/');
    }
    base.push_str(&percent_decode(item_url.trim_start_matches("./")));
    Some(base)
}

/// `%XX` escapes decoded; a malformed escape is kept as it is, bytes that are not UTF-8 become
/// U+FFFD.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// `file.extension`: what follows the last `.` of the name, when the name has a dot that is
/// neither its first nor its last character (`.bashrc` has none, `a.tar.gz` has `gz`).
pub fn extension(name: &str) -> Option<&str> {
    let dot = name.rfind('.')?;
    (dot > 0 && dot + 1 < name.len()).then(|| &name[dot + 1..])
}

/// `file.directory`: the path without its last component (`/` for a file at the root).
pub fn directory(path: &str) -> Option<&str> {
    let slash = path.rfind('/')?;
    Some(if slash == 0 { "/" } else { &path[..slash] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_extensions_and_directories() {
        assert_eq!(extension("a.tar.gz"), Some("gz"));
        assert_eq!(extension(".bashrc"), None);
        assert_eq!(extension("x."), None);
        assert_eq!(extension("plain"), None);
        assert_eq!(directory("/etc/passwd"), Some("/etc"));
        assert_eq!(directory("/x"), Some("/"));
        assert_eq!(directory("x"), None);
    }

    #[test]
    fn rename_needs_its_original_path_and_nothing_else_has_one() {
        let mut ev = FileEvent {
            action: FileAction::Rename,
            path: Cow::Borrowed("/b"),
            ..FileEvent::default()
        };
        assert!(ev.validate().is_err());
        ev.original_path = Some(Cow::Borrowed("/a"));
        assert!(ev.validate().is_ok());
        ev.action = FileAction::Deletion;
        assert!(ev.validate().is_err());
    }

    #[test]
    fn launch_item_urls_become_paths() {
        assert_eq!(
            launch_item_path("file:///Library/LaunchDaemons/com.x.plist", None).as_deref(),
            Some("/Library/LaunchDaemons/com.x.plist")
        );
        assert_eq!(
            launch_item_path(
                "file:///Users/bob/Library/LaunchAgents/.hidden%20agent%E2%80%8B.plist",
                None
            )
            .as_deref(),
            Some("/Users/bob/Library/LaunchAgents/.hidden agent\u{200b}.plist")
        );
        assert_eq!(
            launch_item_path(
                "Contents/Library/LaunchDaemons/com.vendor.helper.plist",
                Some("file:///Applications/Vendor%20App.app/")
            )
            .as_deref(),
            Some(
                "/Applications/Vendor App.app/Contents/Library/LaunchDaemons/com.vendor.helper.plist"
            )
        );
        assert_eq!(
            launch_item_path("file://localhost/Library/LaunchAgents/a.plist", None).as_deref(),
            Some("/Library/LaunchAgents/a.plist")
        );
        assert_eq!(
            launch_item_path("%zz/x", Some("file:///A.app")).as_deref(),
            Some("/A.app/%zz/x")
        );
        assert_eq!(
            launch_item_path("%ff.plist", Some("/A.app")).as_deref(),
            Some("/A.app/\u{fffd}.plist")
        );
        assert_eq!(
            launch_item_path("https://evil/x.plist", Some("file:///A.app")),
            None
        );
        assert_eq!(launch_item_path("relative.plist", None), None);
        assert_eq!(launch_item_path("", None), None);
        assert_eq!(launch_item_path("file://%", None), None);
        assert_eq!(launch_item_path("/x%", None).as_deref(), Some("/x%"));
        assert_eq!(launch_item_path("/x%4", None).as_deref(), Some("/x%4"));
        assert_eq!(launch_item_path("/x%41", None).as_deref(), Some("/xA"));
    }

    #[test]
    fn only_a_launch_item_names_a_program() {
        let mut ev = FileEvent {
            action: FileAction::LaunchDaemon,
            path: Cow::Borrowed("/Library/LaunchDaemons/com.x.plist"),
            launch_executable: Some(Cow::Borrowed("/Users/Shared/.x")),
            ..FileEvent::default()
        };
        assert!(ev.validate().is_ok());
        ev.action = FileAction::Open;
        assert!(ev.validate().is_err());
        ev.launch_executable = None;
        assert!(ev.validate().is_ok());
    }

    #[test]
    fn long_paths_are_cut_and_flagged() {
        let mut ev = FileEvent {
            path: Cow::Owned("p".repeat(MAX_PATH_BYTES + 10)),
            ..FileEvent::default()
        };
        ev.enforce_bounds();
        assert_eq!(ev.path.len(), MAX_PATH_BYTES);
        assert_eq!(ev.meta.flags & TRUNC_FILE_PATH, TRUNC_FILE_PATH);
        assert!(ev.validate().is_ok());
    }
}
