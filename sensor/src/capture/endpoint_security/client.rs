//! The live Endpoint Security clients (macOS only).
//!
//! Two NOTIFY clients, process (exec, fork, exit) and file (create, close, rename, unlink,
//! only when a loaded rule reads file events), set up by [`super::setup`] through the
//! [`EsApi`] implementation below. Each handler runs on its client's serial queue, copies
//! what it needs out of the message into an event (borrowing the message only for the call),
//! and hands it to its [`NotifyHandler`]; both handlers write through one lock to the one
//! ring writer. The main thread keeps the clients alive.

use std::convert::Infallible;
use std::ffi::OsStr;
use std::iter::Empty;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use endpoint_sec::sys::{
    NewClientError, es_auth_result_t, es_event_type_t, es_mute_inversion_type_t,
    es_mute_path_type_t,
};
use endpoint_sec::{
    AuditToken, Client, Event, EventCreateDestinationFile, EventRenameDestinationFile, File,
    Message, Process, version,
};
use nightjar_proto::event::{
    EventKind, FileAction, QUARANTINE_XATTR, SetIdCall, is_launch_daemon_type,
};

use nightjar_rules::ecs::HostInfo;

use super::api::{AuthResult, EsApi, EsCallError, EsEvent, Inversion, MutePath};
use super::auth::{AuthFollow, AuthHandler, AuthStats, Handoff};
use super::fields::{EsAuditToken, EsExecFields, EsHeader, EsMessage, EsPath, EsProcessFields};
use super::handler::{NotifyHandler, Shared, Sink};
use super::setup::{self, OwnProcesses, parse_os_version};
use crate::capture::{CaptureError, Settings};
use crate::gate::Gate;
use crate::kept_policy::PolicyWatch;
use crate::publish::Publisher;

fn call_error(call: &'static str, err: impl std::fmt::Display) -> EsCallError {
    EsCallError {
        call,
        detail: err.to_string(),
    }
}

fn raw_events(events: &[EsEvent]) -> Vec<es_event_type_t> {
    events.iter().map(|e| es_event_type_t(e.raw())).collect()
}

impl EsApi for Client<'_> {
    type Message = Message;

    fn subscribe(&mut self, events: &[EsEvent]) -> Result<(), EsCallError> {
        Client::subscribe(self, &raw_events(events)).map_err(|e| call_error("es_subscribe", e))
    }

    fn unsubscribe(&mut self, events: &[EsEvent]) -> Result<(), EsCallError> {
        Client::unsubscribe(self, &raw_events(events)).map_err(|e| call_error("es_unsubscribe", e))
    }

    fn mute_process(&mut self, pid: u32) -> Result<(), EsCallError> {
        let pid = i32::try_from(pid).map_err(|e| call_error("audit_token_for_pid", e))?;
        let token = AuditToken::from_pid(pid)
            .map_err(|e| call_error("audit_token_for_pid", format!("kern_return {e}")))?;
        Client::mute_process(self, &token).map_err(|e| call_error("es_mute_process", e))
    }

    fn mute_path(&mut self, path: &Path, kind: MutePath) -> Result<(), EsCallError> {
        let ty = match kind {
            MutePath::Literal => es_mute_path_type_t::ES_MUTE_PATH_TYPE_LITERAL,
            MutePath::Prefix => es_mute_path_type_t::ES_MUTE_PATH_TYPE_PREFIX,
            MutePath::TargetLiteral => es_mute_path_type_t::ES_MUTE_PATH_TYPE_TARGET_LITERAL,
            MutePath::TargetPrefix => es_mute_path_type_t::ES_MUTE_PATH_TYPE_TARGET_PREFIX,
        };
        Client::mute_path(self, path.as_os_str(), ty).map_err(|e| call_error("es_mute_path", e))
    }

    fn invert_muting(&mut self, what: Inversion) -> Result<(), EsCallError> {
        let ty = match what {
            Inversion::Process => es_mute_inversion_type_t::ES_MUTE_INVERSION_TYPE_PROCESS,
            Inversion::Path => es_mute_inversion_type_t::ES_MUTE_INVERSION_TYPE_PATH,
            Inversion::TargetPath => es_mute_inversion_type_t::ES_MUTE_INVERSION_TYPE_TARGET_PATH,
        };
        Client::invert_muting(self, ty).map_err(|e| call_error("es_invert_muting", e))
    }

    fn unmute_all_target_paths(&mut self) -> Result<(), EsCallError> {
        Client::unmute_all_target_paths(self)
            .map_err(|e| call_error("es_unmute_all_target_paths", e))
    }

    fn respond_auth(
        &mut self,
        message: &Message,
        result: AuthResult,
        cache: bool,
    ) -> Result<(), EsCallError> {
        let r = match result {
            AuthResult::Allow => es_auth_result_t::ES_AUTH_RESULT_ALLOW,
            AuthResult::Deny => es_auth_result_t::ES_AUTH_RESULT_DENY,
        };
        Client::respond_auth_result(self, message, r, cache)
            .map_err(|e| call_error("es_respond_auth_result", e))
    }

    fn clear_cache(&mut self) -> Result<(), EsCallError> {
        Client::clear_cache(self).map_err(|e| call_error("es_clear_cache", e))
    }
}

fn token(t: &AuditToken) -> EsAuditToken {
    EsAuditToken {
        auid: t.auid(),
        euid: t.euid(),
        egid: t.egid(),
        ruid: t.ruid(),
        rgid: t.rgid(),
        pid: t.pid() as u32,
        asid: t.asid() as u32,
        pidversion: t.pidversion() as u32,
    }
}

fn unix_ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

pub(super) fn process_fields<'a>(p: &Process<'a>) -> EsProcessFields<'a> {
    let exe = p.executable();
    EsProcessFields {
        audit_token: token(&p.audit_token()),
        ppid: p.ppid() as u32,
        original_ppid: p.original_ppid() as u32,
        group_id: p.group_id() as u32,
        session_id: p.session_id() as u32,
        codesigning_flags: p.codesigning_flags(),
        is_platform_binary: p.is_platform_binary(),
        cdhash: p.cdhash(),
        signing_id: p.signing_id().as_bytes(),
        team_id: p.team_id().as_bytes(),
        executable: exe.path().as_bytes(),
        executable_truncated: exe.path_truncated(),
        tty: p.tty().map(|f| f.path().as_bytes()),
        start_time: p.start_time().map(|t| {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            (
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                i64::from(d.subsec_micros()),
            )
        }),
        parent_audit_token: p.parent_audit_token().map(|t| token(&t)),
        responsible_audit_token: p.responsible_audit_token().map(|t| token(&t)),
    }
}

pub(super) fn header(message: &Message) -> EsHeader {
    EsHeader {
        event_type: message.event_type().0,
        version: message.version(),
        time_ns: unix_ns(message.time()),
        seq_num: message.seq_num(),
        global_seq_num: message.global_seq_num(),
    }
}

fn file_path<'a>(f: &File<'a>) -> EsPath<'a> {
    EsPath::File {
        path: f.path().as_bytes(),
        truncated: f.path_truncated(),
    }
}

/// A message without argv or environment.
type Plain<'a> = EsMessage<'a, Empty<&'a [u8]>, Empty<&'a [u8]>>;

/// Maps one live message and hands it to `h`.
fn dispatch<S: Sink>(h: &mut NotifyHandler<S>, message: &Message) {
    let hdr = header(message);
    let process = process_fields(&message.process());
    let file = |action, path, original| Plain::File {
        header: hdr,
        process: process.clone(),
        action,
        path,
        original,
    };
    let set_id = |call| Plain::SetId {
        header: hdr,
        process: process.clone(),
        call,
    };
    match message.event() {
        Some(Event::NotifyExec(exec)) => h.handle(EsMessage::Exec(exec_fields(message, &exec))),
        Some(Event::NotifyFork(fork)) => h.handle(Plain::Fork {
            header: hdr,
            process: process.clone(),
            child: process_fields(&fork.child()),
        }),
        Some(Event::NotifyExit(exit)) => h.handle(Plain::Exit {
            header: hdr,
            process: process.clone(),
            stat: exit.stat(),
        }),
        Some(Event::NotifyCreate(create)) => match create.destination() {
            Some(EventCreateDestinationFile::ExistingFile { file: f, .. }) => {
                h.handle(file(FileAction::Creation, file_path(&f), None))
            }
            Some(EventCreateDestinationFile::NewPath {
                directory,
                filename,
                ..
            }) => h.handle(file(
                FileAction::Creation,
                EsPath::New {
                    dir: directory.path().as_bytes(),
                    dir_truncated: directory.path_truncated(),
                    name: filename.as_bytes(),
                },
                None,
            )),
            _ => h.skip(hdr, Some(EventKind::File)),
        },
        Some(Event::NotifyClose(close)) if close.modified() => h.handle(file(
            FileAction::Modification,
            file_path(&close.target()),
            None,
        )),
        Some(Event::NotifyRename(rename)) => {
            let source = file_path(&rename.source());
            match rename.destination() {
                Some(EventRenameDestinationFile::ExistingFile { file: f, .. }) => {
                    h.handle(file(FileAction::Rename, file_path(&f), Some(source)))
                }
                Some(EventRenameDestinationFile::NewPath {
                    directory,
                    filename,
                    ..
                }) => h.handle(file(
                    FileAction::Rename,
                    EsPath::New {
                        dir: directory.path().as_bytes(),
                        dir_truncated: directory.path_truncated(),
                        name: filename.as_bytes(),
                    },
                    Some(source),
                )),
                _ => h.skip(hdr, Some(EventKind::File)),
            }
        }
        Some(Event::NotifyUnlink(unlink)) => h.handle(file(
            FileAction::Deletion,
            file_path(&unlink.target()),
            None,
        )),
        Some(Event::NotifyOpen(open)) => {
            h.handle(file(FileAction::Open, file_path(&open.file()), None))
        }
        Some(Event::NotifyDeleteExtAttr(del))
            if del.extattr().as_bytes() == QUARANTINE_XATTR.as_bytes() =>
        {
            h.handle(file(
                FileAction::ExtendedAttributesDelete,
                file_path(&del.target()),
                None,
            ))
        }
        Some(Event::NotifyBtmLaunchItemAdd(add))
            if is_launch_daemon_type(add.item().item_type().0) =>
        {
            let item = add.item();
            let actor = add
                .instigator()
                .map_or_else(|| process.clone(), |p| process_fields(&p));
            h.handle(Plain::LaunchItem {
                header: hdr,
                process: actor,
                item_url: item.item_url().as_bytes(),
                app_url: item.app_url().as_bytes(),
                executable: add.executable_path().as_bytes(),
            })
        }
        Some(Event::NotifySetuid(e)) => h.handle(set_id(SetIdCall::Setuid(e.uid()))),
        Some(Event::NotifySeteuid(e)) => h.handle(set_id(SetIdCall::Seteuid(e.euid()))),
        Some(Event::NotifySetreuid(e)) => h.handle(set_id(SetIdCall::Setreuid {
            ruid: e.ruid(),
            euid: e.euid(),
        })),
        Some(Event::NotifySetgid(e)) => h.handle(set_id(SetIdCall::Setgid(e.gid()))),
        Some(Event::NotifySetegid(e)) => h.handle(set_id(SetIdCall::Setegid(e.egid()))),
        // endpoint-sec names setregid's real group id `ruid`.
        Some(Event::NotifySetregid(e)) => h.handle(set_id(SetIdCall::Setregid {
            rgid: e.ruid(),
            egid: e.egid(),
        })),
        // A close that modified nothing, another extended attribute, a login item or app, or
        // a type this client did not ask for.
        _ => h.skip(hdr, None),
    }
}

/// Reads the running macOS version (`sysctlbyname("kern.osproductversion")`), which
/// `endpoint-sec` needs to know which calls and fields it may use.
fn set_runtime_version() -> Result<(), CaptureError> {
    let mut buf = [0u8; 64];
    let mut len = buf.len();
    // SAFETY: the name is NUL-terminated, `buf` is writable for `len` bytes and `len` is its
    // size; no new value is set.
    let rc = unsafe {
        libc::sysctlbyname(
            c"kern.osproductversion".as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(CaptureError::EndpointSecurity(format!(
            "cannot read kern.osproductversion: {}",
            std::io::Error::last_os_error()
        )));
    }
    let text = String::from_utf8_lossy(&buf[..len.min(buf.len())]);
    let text = text.trim_end_matches('\0');
    let Some((major, minor, patch)) = parse_os_version(text) else {
        return Err(CaptureError::EndpointSecurity(format!(
            "cannot parse the macOS version {text:?}"
        )));
    };
    if major < 13 {
        return Err(CaptureError::EndpointSecurity(format!(
            "macOS {text} is not supported (13 or later is needed)"
        )));
    }
    version::set_runtime_version(major, minor, patch);
    Ok(())
}

pub(super) fn explain(err: NewClientError) -> CaptureError {
    match err {
        NewClientError::NotEntitled => CaptureError::NotEntitled(
            "this binary lacks the com.apple.developer.endpoint-security.client entitlement \
             (ES_NEW_CLIENT_RESULT_ERR_NOT_ENTITLED); install the signed build, or use \
             --source eslogger"
                .into(),
        ),
        NewClientError::NotPermitted => CaptureError::EndpointSecurity(
            "Full Disk Access (TCC) has not been granted to nightjar-sensor \
             (ES_NEW_CLIENT_RESULT_ERR_NOT_PERMITTED); grant it in System Settings > Privacy & \
             Security > Full Disk Access, or through the MDM PPPC profile"
                .into(),
        ),
        NewClientError::NotPrivileged => CaptureError::Privileges(
            "Endpoint Security clients must run as root (ES_NEW_CLIENT_RESULT_ERR_NOT_PRIVILEGED)"
                .into(),
        ),
        NewClientError::TooManyClients => CaptureError::EndpointSecurity(
            "the system has too many Endpoint Security clients \
             (ES_NEW_CLIENT_RESULT_ERR_TOO_MANY_CLIENTS); another security agent may hold them, \
             or a previous nightjar-sensor has not exited"
                .into(),
        ),
        NewClientError::InvalidArgument => CaptureError::EndpointSecurity(
            "Endpoint Security refused the client's handler \
             (ES_NEW_CLIENT_RESULT_ERR_INVALID_ARGUMENT): a bug in nightjar-sensor, please report"
                .into(),
        ),
        NewClientError::Internal => CaptureError::EndpointSecurity(
            "Endpoint Security failed internally (ES_NEW_CLIENT_RESULT_ERR_INTERNAL); see the \
             system log (`log show --predicate 'subsystem == \"com.apple.endpointsecurity\"'`) \
             and retry"
                .into(),
        ),
        other => CaptureError::EndpointSecurity(format!(
            "cannot create a client ({other}); see the system log"
        )),
    }
}

fn setup_error(err: EsCallError) -> CaptureError {
    CaptureError::EndpointSecurity(format!("setting up a client: {err}"))
}

fn exec_fields<'m>(
    message: &'m Message,
    exec: &'m endpoint_sec::EventExec<'m>,
) -> EsExecFields<'m, impl Iterator<Item = &'m [u8]> + 'm, impl Iterator<Item = &'m [u8]> + 'm> {
    let hdr = header(message);
    let cwd = exec.cwd();
    EsExecFields {
        version: hdr.version,
        time_ns: hdr.time_ns,
        seq_num: hdr.seq_num,
        global_seq_num: hdr.global_seq_num,
        process: process_fields(&message.process()),
        target: process_fields(&exec.target()),
        args: exec.args().map(OsStr::as_bytes),
        env: exec.envs().map(OsStr::as_bytes),
        cwd: cwd.as_ref().map(|f| f.path().as_bytes()),
        cwd_truncated: cwd.as_ref().is_some_and(File::path_truncated),
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; gethostname NUL-terminates within it or
    // fails.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Answers one AUTH_EXEC message (see [`AuthHandler::handle`]).
fn on_auth(h: &mut AuthHandler, client: &mut Client<'_>, message: &Message) {
    let Some(Event::AuthExec(exec)) = message.event() else {
        // Not ours to decide: allowed, uncached, at once.
        let _ = client.respond_auth_result(message, es_auth_result_t::ES_AUTH_RESULT_ALLOW, false);
        return;
    };
    let time_left = message
        .deadline()
        .ok()
        .map(|d| d.saturating_duration_since(std::time::Instant::now()));
    h.handle(client, message, time_left, exec_fields(message, &exec));
}

/// Starts the clients and delivers events until the process is stopped.
pub fn run(
    publisher: &mut Publisher,
    settings: &Settings,
    mut watch: Option<&mut PolicyWatch>,
) -> Result<Infallible, CaptureError> {
    set_runtime_version()?;
    let current_exe = std::env::current_exe().ok();
    let own = OwnProcesses::find(std::process::id(), current_exe.as_deref());
    let ring = Mutex::new(publisher);
    let gate =
        Gate::new(settings.files.clone(), own.pids.clone()).with_opens(settings.opens.clone());

    let process_state = Mutex::new(NotifyHandler::new(
        Shared(&ring),
        gate.clone(),
        settings.env.clone(),
    ));
    let mut process_client = Client::new(|_client: &mut Client<'_>, message: Message| {
        let mut h = process_state.lock().unwrap_or_else(PoisonError::into_inner);
        dispatch(&mut h, &message);
    })
    .map_err(explain)?;
    let extras = setup::process_extras(settings.quarantine, settings.launch_items);
    setup::process_client(&mut process_client, &own, &extras).map_err(setup_error)?;
    tracing::info!(
        ?extras,
        "Endpoint Security process client subscribed to exec, fork and exit"
    );

    let file_state = Mutex::new(NotifyHandler::new(
        Shared(&ring),
        gate.clone(),
        settings.env.clone(),
    ));
    let _file_client = if gate.wants_files() {
        let mut client = Client::new(|_client: &mut Client<'_>, message: Message| {
            let mut h = file_state.lock().unwrap_or_else(PoisonError::into_inner);
            dispatch(&mut h, &message);
        })
        .map_err(explain)?;
        let selection =
            setup::file_client(&mut client, &own, &settings.files).map_err(setup_error)?;
        tracing::info!(?selection, "Endpoint Security file client subscribed");
        Some(client)
    } else {
        tracing::info!("no loaded rule reads file events: no file client");
        None
    };

    let open_state = Mutex::new(NotifyHandler::new(
        Shared(&ring),
        gate.clone(),
        settings.env.clone(),
    ));
    let _open_client = if settings.opens.is_none() {
        None
    } else {
        let mut client = Client::new(|_client: &mut Client<'_>, message: Message| {
            let mut h = open_state.lock().unwrap_or_else(PoisonError::into_inner);
            dispatch(&mut h, &message);
        })
        .map_err(explain)?;
        let selection =
            setup::open_client(&mut client, &own, &settings.opens).map_err(setup_error)?;
        tracing::info!(?selection, "Endpoint Security open client subscribed");
        Some(client)
    };

    // Blocking: a further client, for AUTH_EXEC only, while a blocking rule is loaded. It is
    // made when the first blocking set is (at start, or when a kept policy brings one), and
    // follows the kept policy from then on (subscribed only while the set is non-empty).
    let stats = Arc::new(AuthStats::default());
    let (handoff, blocked) = Handoff::new();
    let auth_state = Mutex::new(AuthHandler::new(
        None,
        Vec::new(),
        HostInfo::new(hostname(), ""),
        &own,
        Arc::clone(&stats),
        handoff,
    ));
    let mut follow = AuthFollow::new(&auth_state.lock().unwrap_or_else(PoisonError::into_inner));
    let mut auth_client: Option<Client<'_>> = None;
    let mut change = Some(settings.block.clone());
    let mut at_start = true;

    // The ring's one writer takes the blocked records the AUTH handler hands over, and
    // reports what blocking let through.
    let (mut failed_reported, mut unrecorded_reported) = (0u64, 0u64);
    loop {
        if let Some(block) = change.take()
            && (auth_client.is_some() || !block.is_empty())
        {
            if auth_client.is_none() {
                auth_client = Some(
                    Client::new(|client: &mut Client<'_>, message: Message| {
                        let mut h = auth_state.lock().unwrap_or_else(PoisonError::into_inner);
                        on_auth(&mut h, client, &message);
                    })
                    .map_err(explain)?,
                );
            }
            if let Some(client) = auth_client.as_mut() {
                match follow.apply(client, &auth_state, &own, &block) {
                    Ok(()) if follow.subscribed() => tracing::info!(
                        rules = block.indices.len(),
                        "Endpoint Security AUTH_EXEC client subscribed: blocking rules are enforced"
                    ),
                    Ok(()) => tracing::info!("no blocking rule: AUTH_EXEC unsubscribed"),
                    // At start a client that cannot be set up is fatal, as before; later the
                    // running capture goes on, the new set in the handler, and says why.
                    Err(err) if at_start => return Err(setup_error(err)),
                    Err(err) => {
                        tracing::error!("the new blocking set is not fully in force: {err}")
                    }
                }
            }
        }
        if let Some(client) = auth_client.as_mut() {
            follow.retry_clear(client);
        }
        let got = blocked.recv_timeout(std::time::Duration::from_secs(1));
        let idle = got.is_err();
        let mut writer = Shared(&ring);
        if let Ok(ev) = got {
            writer.publish(ev);
        }
        let failed = stats.failed_open.load(Ordering::Relaxed);
        let unrecorded = stats.blocked_unrecorded.load(Ordering::Relaxed);
        if failed != failed_reported || unrecorded != unrecorded_reported {
            writer
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .report_block(failed - failed_reported, unrecorded - unrecorded_reported);
            (failed_reported, unrecorded_reported) = (failed, unrecorded);
        }
        writer.flush();
        at_start = false;
        if let Some(w) = watch.as_deref_mut() {
            change = w.poll();
        } else if auth_client.is_none() && idle {
            // Nothing will ever be handed over, nor any policy followed: sleep instead of
            // polling.
            std::thread::park();
        }
    }
}
