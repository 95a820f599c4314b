//! File events: creation, modification, rename and deletion.

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
}

impl FileAction {
    /// ECS `event.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileAction::Creation => "creation",
            FileAction::Modification => "modification",
            FileAction::Rename => "rename",
            FileAction::Deletion => "deletion",
        }
    }

    /// ECS `event.type` (one value).
    pub fn event_type(self) -> &'static str {
        match self {
            FileAction::Creation => "creation",
            FileAction::Modification | FileAction::Rename => "change",
            FileAction::Deletion => "deletion",
        }
    }
}

/// A process created, modified, renamed or deleted a file.
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
        if (self.action == FileAction::Rename) != self.original_path.is_some() {
            return Err(BoundsError::RenameShape);
        }
        Ok(())
    }

    pub fn string_bytes(&self) -> usize {
        self.process.string_bytes() + self.path.len() + opt_len(&self.original_path)
    }

    pub fn into_owned(self) -> FileEvent<'static> {
        FileEvent {
            meta: self.meta,
            process: self.process.into_owned(),
            action: self.action,
            path: own(self.path),
            original_path: own_opt(self.original_path),
        }
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
