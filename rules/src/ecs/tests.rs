use super::*;
use std::borrow::Cow;

/// One known process.
struct One(u32, &'static str, Args<'static>, String);

impl Process for One {
    fn pid(&self) -> u32 {
        self.0
    }
    fn executable(&self) -> &str {
        self.1
    }
    fn name(&self) -> &str {
        nightjar_proto::event::basename(self.1)
    }
    fn args(&self) -> &Args<'_> {
        &self.2
    }
    fn command_line(&self) -> &str {
        &self.3
    }
    fn signing_id(&self) -> Option<&str> {
        None
    }
    fn team_id(&self) -> Option<&str> {
        None
    }
    fn cs_flags(&self) -> Option<u32> {
        None
    }
}

impl Processes for One {
    fn get(&self, pid: u32) -> Option<&dyn Process> {
        (pid == self.0).then_some(self as &dyn Process)
    }
}

#[test]
fn parent_comes_from_the_lookup_else_from_the_fork_child() {
    let host = HostInfo::new("h", "id");
    let mut ev = ExecEvent::default();
    ev.target.pid = 10;
    ev.target.ppid = Some(5);
    ev.target.executable = Cow::Borrowed("/usr/bin/kcc");
    ev.caller.pid = Some(10);
    ev.caller.ppid = Some(5);
    ev.caller.executable = Some(Cow::Borrowed("/bin/zsh"));
    ev.caller.cs_flags = Some(CS_VALID | CS_SIGNED);
    {
        let v = EcsEvent::new(&ev, &NoProcesses, &host);
        assert!(matches!(v.value(Field::ParentName), Value::Str("zsh")));
        assert!(matches!(
            v.value(Field::ParentSignatureTrusted),
            Value::Bool(true)
        ));
        assert!(matches!(v.value(Field::ParentArgs), Value::Missing));
    }
    let table = One(
        5,
        "/bin/bash",
        Args::from_strs(["bash", "-c", "kcc"]).0,
        "bash -c kcc".into(),
    );
    let v = EcsEvent::new(&ev, &table, &host);
    assert!(matches!(v.value(Field::ParentName), Value::Str("bash")));
    assert!(matches!(
        v.value(Field::ParentCommandLine),
        Value::Str("bash -c kcc")
    ));
    assert!(matches!(
        v.value(Field::ParentSignatureExists),
        Value::Missing
    ));
    let doc = v.document();
    assert_eq!(doc["process"]["parent"]["name"], "bash");
    assert_eq!(doc["event"]["category"], serde_json::json!(["process"]));
    assert!(doc["process"].get("args").is_none());
}

/// A process table of whole records, for the views of non-exec events.
#[derive(Default)]
struct Procs(Vec<Rec>);

struct Rec {
    pid: u32,
    start: i64,
    ppid: u32,
    exe: &'static str,
    args: Args<'static>,
    line: String,
    sid: u32,
    tty: bool,
    container: bool,
    entry: Option<EntryLeader>,
}

impl Rec {
    fn new(pid: u32, ppid: u32, exe: &'static str, args: &[&str]) -> Rec {
        Rec {
            pid,
            start: i64::from(pid) * 1000,
            ppid,
            exe,
            args: Args::from_strs(args).0,
            line: args.join(" "),
            sid: pid,
            tty: false,
            container: false,
            entry: None,
        }
    }
}

impl Process for Rec {
    fn pid(&self) -> u32 {
        self.pid
    }
    fn executable(&self) -> &str {
        self.exe
    }
    fn name(&self) -> &str {
        nightjar_proto::event::basename(self.exe)
    }
    fn args(&self) -> &Args<'_> {
        &self.args
    }
    fn command_line(&self) -> &str {
        &self.line
    }
    fn signing_id(&self) -> Option<&str> {
        None
    }
    fn team_id(&self) -> Option<&str> {
        None
    }
    fn cs_flags(&self) -> Option<u32> {
        None
    }
    fn start_time_ns(&self) -> Option<i64> {
        Some(self.start)
    }
    fn ppid(&self) -> Option<u32> {
        Some(self.ppid)
    }
    fn ids(&self) -> Ids {
        Ids {
            uid: Some(1000),
            euid: Some(0),
            gid: Some(100),
            egid: Some(0),
        }
    }
    fn interactive(&self) -> Option<bool> {
        Some(self.tty)
    }
    fn session_leader_pid(&self) -> Option<u32> {
        Some(self.sid)
    }
    fn container(&self) -> Option<bool> {
        Some(self.container)
    }
    fn entry_leader(&self) -> Option<EntryLeader> {
        self.entry
    }
}

impl Processes for Procs {
    fn get(&self, pid: u32) -> Option<&dyn Process> {
        self.0
            .iter()
            .find(|r| r.pid == pid)
            .map(|r| r as &dyn Process)
    }
}

fn fake_hash(host: &str, pid: u32, start: i64) -> [u8; 24] {
    let mut out = [b'A'; 24];
    let s = format!("{host}:{pid}:{start}");
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = if b.is_ascii_alphanumeric() { b } else { b'_' };
    }
    out
}

fn str_of(v: Value<'_>) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.to_owned()),
        Value::Entity(e) => Some(e.as_str().to_owned()),
        Value::Missing => None,
        other => Some(format!("{other:?}")),
    }
}

#[test]
fn a_file_event_shows_its_process_from_the_lookup_and_its_paths() {
    use nightjar_proto::event::{Actor, Event, FileAction, FileEvent};
    let host = HostInfo::new("h", "host-1").with_entity_ids(fake_hash);
    let mut sh = Rec::new(40, 1, "/bin/bash", &["bash"]);
    sh.tty = true;
    let mv = Rec::new(
        41,
        40,
        "/usr/bin/mv",
        &["mv", "/tmp/x.plist", "/etc/cron.d/x"],
    );
    let procs = Procs(vec![sh, mv]);
    let ev = Event::File(FileEvent {
        process: Actor {
            pid: 41,
            start_time_ns: Some(41_000),
            ppid: Some(40),
            ..Actor::default()
        },
        action: FileAction::Rename,
        path: Cow::Borrowed("/etc/cron.d/x"),
        original_path: Some(Cow::Borrowed("/tmp/x.plist")),
        ..FileEvent::default()
    });
    let v = EcsEvent::of(&ev, &procs, &host);
    assert_eq!(v.shape(), Shape::FileRename);
    assert_eq!(
        str_of(v.value(Field::EventCategory)).as_deref(),
        Some("file")
    );
    assert_eq!(str_of(v.value(Field::EventType)).as_deref(), Some("change"));
    assert_eq!(
        str_of(v.value(Field::EventAction)).as_deref(),
        Some("rename")
    );
    assert_eq!(
        str_of(v.value(Field::FilePath)).as_deref(),
        Some("/etc/cron.d/x")
    );
    assert_eq!(str_of(v.value(Field::FileName)).as_deref(), Some("x"));
    assert_eq!(str_of(v.value(Field::FileExtension)), None);
    assert_eq!(
        str_of(v.value(Field::FileDirectory)).as_deref(),
        Some("/etc/cron.d")
    );
    assert_eq!(
        str_of(v.value(Field::FileOriginalName)).as_deref(),
        Some("x.plist")
    );
    assert_eq!(
        str_of(v.value(Field::FileOriginalExtension)).as_deref(),
        Some("plist")
    );
    assert_eq!(
        str_of(v.value(Field::Name)).as_deref(),
        Some("mv"),
        "image from the lookup"
    );
    assert!(matches!(v.value(Field::ArgsCount), Value::Long(3)));
    assert_eq!(str_of(v.value(Field::ParentName)).as_deref(), Some("bash"));
    assert!(matches!(
        v.value(Field::ParentInteractive),
        Value::Bool(true)
    ));
    assert_eq!(
        str_of(v.value(Field::EntityId)).as_deref(),
        Some("host_1_41_41000AAAAAAAAA")
    );
    assert_eq!(
        str_of(v.value(Field::ParentEntityId)).as_deref(),
        Some("host_1_40_40000AAAAAAAAA")
    );
    let doc = v.document();
    assert_eq!(doc["file"]["Ext"]["original"]["path"], "/tmp/x.plist");
    assert_eq!(doc["event"]["category"], serde_json::json!(["file"]));

    // Another instance of pid 41 (a different start time) is not this process.
    let other = Event::File(FileEvent {
        process: Actor {
            pid: 41,
            start_time_ns: Some(99),
            ..Actor::default()
        },
        path: Cow::Borrowed("/tmp/y"),
        ..FileEvent::default()
    });
    let v = EcsEvent::of(&other, &procs, &host);
    assert_eq!(str_of(v.value(Field::Name)), None);
    assert!(matches!(v.value(Field::FileOriginalPath), Value::Missing));
}

#[test]
fn a_fork_shows_the_child_running_its_parents_image() {
    use nightjar_proto::event::{Actor, Event, ForkEvent};
    let host = HostInfo::new("h", "host-1");
    let procs = Procs(vec![Rec::new(40, 1, "/bin/bash", &["bash", "-i"])]);
    let ev = Event::Fork(ForkEvent {
        parent: Actor {
            pid: 40,
            start_time_ns: Some(40_000),
            ..Actor::default()
        },
        child_pid: 50,
        child_start_time_ns: Some(50_000),
        ..ForkEvent::default()
    });
    let v = EcsEvent::of(&ev, &procs, &host);
    assert!(matches!(v.value(Field::Pid), Value::Long(50)));
    assert_eq!(str_of(v.value(Field::Name)).as_deref(), Some("bash"));
    assert!(matches!(v.value(Field::ParentPid), Value::Long(40)));
    assert_eq!(str_of(v.value(Field::EventAction)).as_deref(), Some("fork"));
    assert!(
        matches!(v.value(Field::EntityId), Value::Missing),
        "no hasher, no ids"
    );
}

#[test]
fn linux_session_fields_and_entry_leaders() {
    let host = HostInfo::new("h", "host-1").with_entity_ids(fake_hash);
    let mut sshd = Rec::new(900, 1, "/usr/sbin/sshd", &["sshd: bob"]);
    sshd.sid = 900;
    let procs = Procs(vec![sshd]);
    let mut ev = ExecEvent {
        os: OsType::Linux,
        source: nightjar_proto::Source::Ebpf,
        ..ExecEvent::default()
    };
    ev.target.pid = 910;
    ev.target.ppid = Some(900);
    ev.target.start_time_ns = Some(910_000);
    ev.target.session_leader_pid = Some(910);
    ev.target.group_leader_pid = Some(910);
    ev.target.tty = Some(Cow::Borrowed("pts/1"));
    ev.target.container = Some(false);
    ev.target.executable = Cow::Borrowed("/bin/bash");
    ev.target.uid = Some(1000);
    ev.target.euid = Some(0);
    let v = EcsEvent::new(&ev, &procs, &host);
    assert_eq!(
        str_of(v.value(Field::EntryMetaType)).as_deref(),
        Some("sshd")
    );
    assert!(matches!(v.value(Field::EntryLeaderPid), Value::Long(910)));
    assert_eq!(
        str_of(v.value(Field::SessionLeaderName)).as_deref(),
        Some("bash")
    );
    assert!(matches!(v.value(Field::Interactive), Value::Bool(true)));
    assert!(matches!(v.value(Field::RealUserId), Value::Id(1000)));
    assert!(matches!(v.value(Field::ProcessUserId), Value::Id(0)));
    assert_eq!(
        str_of(v.value(Field::EntryLeaderEntityId)),
        str_of(v.value(Field::EntityId)),
        "it leads its own entry"
    );

    // A child of that shell inherits the entry; in a container, the first process leads.
    let shell = Rec {
        entry: Some(EntryLeader {
            pid: 910,
            start_time_ns: Some(910_000),
            kind: EntryType::Sshd,
        }),
        ..Rec::new(910, 900, "/bin/bash", &["-bash"])
    };
    let procs = Procs(vec![shell]);
    let mut child = ev.clone();
    child.target.pid = 911;
    child.target.ppid = Some(910);
    child.target.session_leader_pid = Some(910);
    let v = EcsEvent::new(&child, &procs, &host);
    assert!(matches!(v.value(Field::EntryLeaderPid), Value::Long(910)));
    assert_eq!(
        str_of(v.value(Field::EntryLeaderName)).as_deref(),
        Some("bash")
    );
    child.target.container = Some(true);
    let v = EcsEvent::new(&child, &procs, &host);
    assert_eq!(
        str_of(v.value(Field::EntryMetaType)).as_deref(),
        Some("container")
    );
}

#[test]
fn truncated_argv_has_its_true_count_and_says_so() {
    let host = HostInfo::new("h", "id");
    let mut argv = vec!["kcc".to_owned()];
    argv.extend(std::iter::repeat_n("--cache=x".to_owned(), 3000));
    argv.push("copy_cred_cache".into());
    let mut ev = ExecEvent::default();
    ev.target.executable = Cow::Borrowed("/usr/bin/kcc");
    ev.target.args = Args::from_strs(&argv).0;
    let v = EcsEvent::new(&ev, &NoProcesses, &host);
    assert!(matches!(v.value(Field::ArgsCount), Value::Long(3002)));
    assert!(matches!(v.value(Field::ArgsTruncated), Value::Bool(true)));
    ev.target.args = Args::from_strs(["kcc", "list"]).0;
    let v = EcsEvent::new(&ev, &NoProcesses, &host);
    assert!(matches!(v.value(Field::ArgsTruncated), Value::Bool(false)));
}

#[test]
fn a_credential_change_shows_the_new_ids_and_a_new_session_its_leader() {
    use nightjar_proto::event::{Actor, CredChange, CredEvent, CredIds, Event};
    let host = HostInfo::new("h", "host-1").with_entity_ids(fake_hash);
    let sh = Rec::new(40, 1, "/bin/bash", &["bash"]);
    let py = Rec::new(41, 40, "/tmp/py/python3", &["python3", "x.py"]);
    let procs = Procs(vec![sh, py]);
    let process = Actor {
        pid: 41,
        start_time_ns: Some(41_000),
        ppid: Some(40),
        uid: Some(0),
        euid: Some(0),
        gid: Some(1000),
        egid: Some(1000),
        ..Actor::default()
    };
    let before = CredIds {
        uid: Some(1000),
        euid: Some(1000),
        gid: Some(1000),
        egid: Some(1000),
        sid: Some(40),
        ..CredIds::default()
    };
    let uid = Event::Cred(CredEvent {
        process: process.clone(),
        change: CredChange::Uid,
        before,
        after: CredIds {
            uid: Some(0),
            euid: Some(0),
            ..before
        },
        ..CredEvent::default()
    });
    let v = EcsEvent::of(&uid, &procs, &host);
    assert_eq!(v.shape(), Shape::UidChange);
    assert_eq!(
        str_of(v.value(Field::EventCategory)).as_deref(),
        Some("process")
    );
    assert_eq!(str_of(v.value(Field::EventType)).as_deref(), Some("change"));
    assert_eq!(
        str_of(v.value(Field::EventAction)).as_deref(),
        Some("uid_change")
    );
    assert!(matches!(v.value(Field::UserId), Value::Id(0)));
    assert!(matches!(v.value(Field::ProcessUserId), Value::Id(0)));
    assert!(matches!(v.value(Field::RealUserId), Value::Id(0)));
    assert!(matches!(v.value(Field::GroupId), Value::Id(1000)));
    assert_eq!(
        str_of(v.value(Field::Name)).as_deref(),
        Some("python3"),
        "image from the lookup"
    );
    assert!(matches!(
        v.value(Field::CommandLine),
        Value::Joined(a) if a.iter().collect::<Vec<_>>() == ["python3", "x.py"]
    ));
    assert_eq!(
        str_of(v.value(Field::EntityId)).as_deref(),
        Some("host_1_41_41000AAAAAAAAA"),
        "the exec's entity"
    );
    assert_eq!(str_of(v.value(Field::ParentName)).as_deref(), Some("bash"));
    assert!(matches!(v.value(Field::SessionLeaderPid), Value::Long(40)));
    let doc = v.document();
    assert_eq!(doc["event"]["action"], "uid_change");
    assert_eq!(doc["user"]["id"], "0");

    let sid = Event::Cred(CredEvent {
        process: Actor {
            uid: Some(1000),
            euid: Some(1000),
            ..process
        },
        change: CredChange::SessionId,
        after: CredIds {
            sid: Some(41),
            ..before
        },
        before: CredIds {
            sid: None,
            ..before
        },
        ..CredEvent::default()
    });
    let v = EcsEvent::of(&sid, &procs, &host);
    assert_eq!(
        str_of(v.value(Field::EventAction)).as_deref(),
        Some("session_id_change")
    );
    assert!(matches!(v.value(Field::UserId), Value::Id(1000)));
    assert!(matches!(v.value(Field::SessionLeaderPid), Value::Long(41)));
    assert_eq!(
        str_of(v.value(Field::SessionLeaderEntityId)).as_deref(),
        Some("host_1_41_41000AAAAAAAAA"),
        "it leads its own session"
    );
}
