//! The live Endpoint Security client (macOS only).
//!
//! The handler runs on Endpoint Security's serial queue for this client, one message at a
//! time. It copies everything it needs out of the message into an [`ExecEvent`] (borrowing
//! the message only for the duration of the call), encodes that straight into the ring and
//! returns: no lock, no blocking, no allocation once the scratch buffers have grown. The main
//! thread only keeps the client alive.

use std::cell::RefCell;
use std::convert::Infallible;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::panic::AssertUnwindSafe;
use std::time::{SystemTime, UNIX_EPOCH};

use endpoint_sec::sys::{NewClientError, es_event_type_t, es_mute_path_type_t};
use endpoint_sec::{AuditToken, Client, Event, Message, Process, version};
use nightjar_proto::eslogger::SeqGapDetector;
use nightjar_proto::{ExecEvent, LossSource};

use super::fields::{EsAuditToken, EsExecFields, EsProcessFields, EsScratch};
use crate::capture::{CaptureError, Settings};
use crate::publish::Publisher;

/// What the handler owns between messages.
struct HandlerState<'p> {
    publisher: &'p mut Publisher,
    scratch: EsScratch,
    seq: SeqGapDetector,
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

fn process_fields<'a>(p: &Process<'a>) -> EsProcessFields<'a> {
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
        executable: p.executable().path().as_bytes(),
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

fn handle(state: &RefCell<HandlerState<'_>>, message: &Message) {
    let Some(Event::NotifyExec(exec)) = message.event() else {
        return;
    };
    // ES calls the handler serially; a second borrow would mean re-entry, which it never
    // does. Should it happen, the message is skipped, never waited for, and the next
    // message's sequence numbers report it as lost.
    let Ok(mut state) = state.try_borrow_mut() else {
        return;
    };
    let state = &mut *state;
    let caller = message.process();
    let target = exec.target();
    let fields = EsExecFields {
        version: message.version(),
        time_ns: unix_ns(message.time()),
        seq_num: message.seq_num(),
        global_seq_num: message.global_seq_num(),
        process: process_fields(&caller),
        target: process_fields(&target),
        args: exec.args().map(OsStr::as_bytes),
        cwd: exec.cwd().map(|f| f.path().as_bytes()),
    };
    let (seq, global) = fields.seq_nums();
    let lost = state.seq.observe(
        nightjar_proto::eslogger::event_type::NOTIFY_EXEC,
        seq,
        global,
    );
    state
        .publisher
        .report_loss(LossSource::EndpointSecurityGap, None, lost);
    let ev: ExecEvent<'_> = fields.to_event(&mut state.scratch);
    state.publisher.publish(ev);
    state.publisher.flush();
}

/// Reads the running macOS version (`sw_vers`), which `endpoint-sec` needs to know which
/// calls and fields it may use.
fn set_runtime_version() -> Result<(), CaptureError> {
    let out = std::process::Command::new("/usr/bin/sw_vers")
        .arg("-productVersion")
        .output()
        .map_err(|e| CaptureError::EndpointSecurity(format!("cannot run sw_vers: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .trim()
        .split('.')
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    if major < 11 {
        return Err(CaptureError::EndpointSecurity(format!(
            "macOS {} is not supported (11 or later is needed)",
            text.trim()
        )));
    }
    version::set_runtime_version(major, minor, patch);
    Ok(())
}

fn explain(err: NewClientError) -> CaptureError {
    match err {
        NewClientError::NotEntitled => CaptureError::EndpointSecurity(
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
        other => CaptureError::EndpointSecurity(format!("cannot create a client: {other}")),
    }
}

/// Starts the client and delivers execs until the process is stopped.
pub fn run(publisher: &mut Publisher, _settings: &Settings) -> Result<Infallible, CaptureError> {
    set_runtime_version()?;
    let state = AssertUnwindSafe(RefCell::new(HandlerState {
        publisher,
        scratch: EsScratch::default(),
        seq: SeqGapDetector::new(),
    }));
    let mut client = Client::new(|_client: &mut Client<'_>, message: Message| {
        let state = &state;
        handle(&state.0, &message);
    })
    .map_err(explain)?;

    let own = AuditToken::from_pid(std::process::id() as i32).map_err(|e| {
        CaptureError::EndpointSecurity(format!("cannot get this process's audit token: {e}"))
    })?;
    client
        .mute_process(&own)
        .map_err(|e| CaptureError::EndpointSecurity(format!("cannot mute the sensor: {e}")))?;
    if let Some(agent) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("nightjar-agent")))
    {
        client
            .mute_path(
                agent.as_os_str(),
                es_mute_path_type_t::ES_MUTE_PATH_TYPE_LITERAL,
            )
            .map_err(|e| {
                CaptureError::EndpointSecurity(format!(
                    "cannot mute the agent {}: {e}",
                    agent.display()
                ))
            })?;
    }
    client
        .subscribe(&[es_event_type_t::ES_EVENT_TYPE_NOTIFY_EXEC])
        .map_err(|e| CaptureError::EndpointSecurity(format!("cannot subscribe to exec: {e}")))?;
    tracing::info!("Endpoint Security client subscribed to NOTIFY_EXEC");
    loop {
        std::thread::park();
    }
}
