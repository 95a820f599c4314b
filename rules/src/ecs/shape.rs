//! The shapes events come in: the kind, and for file and credential events the action. A
//! shape fixes `event.category`, `event.type` and `event.action`, and which fields can be
//! present, so the matcher compiles every rule once per shape with those folded away.

use nightjar_proto::event::{CredChange, Event, FileAction};

use super::Field;

/// One event shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    Exec,
    Fork,
    Exit,
    FileCreation,
    FileModification,
    FileRename,
    FileDeletion,
    /// macOS only (Endpoint Security, eslogger): no Linux source produces these three.
    FileOpen,
    FileExtendedAttributesDelete,
    FileLaunchDaemon,
    /// A process's user ids changed (Elastic Defend's Linux `uid_change`).
    UidChange,
    /// A process's group ids changed (`gid_change`).
    GidChange,
    /// A process made a new session (`session_id_change`).
    SessionIdChange,
}

impl Shape {
    /// Every shape, in discriminant order.
    pub const ALL: [Shape; 13] = [
        Shape::Exec,
        Shape::Fork,
        Shape::Exit,
        Shape::FileCreation,
        Shape::FileModification,
        Shape::FileRename,
        Shape::FileDeletion,
        Shape::FileOpen,
        Shape::FileExtendedAttributesDelete,
        Shape::FileLaunchDaemon,
        Shape::UidChange,
        Shape::GidChange,
        Shape::SessionIdChange,
    ];

    /// The file shapes every platform's sources produce (creation, modification, rename,
    /// deletion): the ones the sensor's path filter for changes is derived from.
    pub fn is_file_change(self) -> bool {
        matches!(
            self,
            Shape::FileCreation | Shape::FileModification | Shape::FileRename | Shape::FileDeletion
        )
    }

    pub const COUNT: usize = Shape::ALL.len();

    pub fn of(ev: &Event<'_>) -> Shape {
        match ev {
            Event::Exec(_) => Shape::Exec,
            Event::Fork(_) => Shape::Fork,
            Event::Exit(_) => Shape::Exit,
            Event::File(f) => match f.action {
                FileAction::Creation => Shape::FileCreation,
                FileAction::Modification => Shape::FileModification,
                FileAction::Rename => Shape::FileRename,
                FileAction::Deletion => Shape::FileDeletion,
                FileAction::Open => Shape::FileOpen,
                FileAction::ExtendedAttributesDelete => Shape::FileExtendedAttributesDelete,
                FileAction::LaunchDaemon => Shape::FileLaunchDaemon,
            },
            Event::Cred(c) => match c.change {
                CredChange::Uid => Shape::UidChange,
                CredChange::Gid => Shape::GidChange,
                CredChange::SessionId => Shape::SessionIdChange,
            },
        }
    }

    /// `event.category`.
    pub fn category(self) -> &'static str {
        match self {
            Shape::Exec
            | Shape::Fork
            | Shape::Exit
            | Shape::UidChange
            | Shape::GidChange
            | Shape::SessionIdChange => "process",
            _ => "file",
        }
    }

    /// `event.type` (Elastic Defend's, one value).
    pub fn event_type(self) -> &'static str {
        match self {
            Shape::Exec | Shape::Fork => "start",
            Shape::Exit => "end",
            Shape::FileCreation | Shape::FileLaunchDaemon => "creation",
            Shape::FileModification | Shape::FileRename | Shape::FileExtendedAttributesDelete => {
                "change"
            }
            Shape::FileDeletion => "deletion",
            Shape::FileOpen => "access",
            Shape::UidChange | Shape::GidChange | Shape::SessionIdChange => "change",
        }
    }

    /// `event.action`.
    pub fn action(self) -> &'static str {
        match self {
            Shape::Exec => "exec",
            Shape::Fork => "fork",
            Shape::Exit => "end",
            Shape::FileCreation => "creation",
            Shape::FileModification => "modification",
            Shape::FileRename => "rename",
            Shape::FileDeletion => "deletion",
            Shape::FileOpen => "open",
            Shape::FileExtendedAttributesDelete => "extended_attributes_delete",
            Shape::FileLaunchDaemon => "launch_daemon",
            Shape::UidChange => CredChange::Uid.as_str(),
            Shape::GidChange => CredChange::Gid.as_str(),
            Shape::SessionIdChange => CredChange::SessionId.as_str(),
        }
    }

    /// What the view reads for a rule's `event.category` words: the kinds of event.
    pub fn is_file(self) -> bool {
        self.category() == "file"
    }

    /// Whether events of this shape can carry `field` at all; a test on a field a shape never
    /// carries is decided when the rule is compiled for that shape.
    pub fn can_carry(self, field: Field) -> bool {
        use Field::*;
        match field {
            FilePath | FileName | FileExtension | FileDirectory => self.is_file(),
            FileOriginalPath | FileOriginalName | FileOriginalExtension => {
                self == Shape::FileRename
            }
            PersistenceName | PersistencePath | PersistenceExecutable => {
                self == Shape::FileLaunchDaemon
            }
            ExitCode => self == Shape::Exit,
            EnvVars => self == Shape::Exec,
            _ => true,
        }
    }
}
