//! The CLI's side: ask the running agent, or answer from the store when no agent runs.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nightjar_proto::trusted_dir::{Missing, trusted_owner};

use super::peer::peer_of;
use super::responder::{Backend, KeyInfo};
use super::{Reply, Request, Responder};
use crate::config::Config;
use crate::sign::HostKey;
use crate::state_dir::{SOCKET, STORE_DIR, StateDirError};
use crate::store::Store;

/// How long the CLI keeps retrying a connection the agent refused or dropped before any
/// answer (every slot taken, see the module docs): long enough to outlast a burst of other
/// clients, short enough that a wedged agent is reported promptly.
pub const CONNECT_PATIENCE: Duration = Duration::from_secs(3);

/// How long the CLI waits for sled's lock when it reads the store itself (an agent stopping,
/// another command finishing).
const STORE_OPEN_PATIENCE: Duration = Duration::from_secs(5);
/// How long the CLI waits for an agent that holds the store (see
/// `state_dir::AGENT_LOCK`) to answer on its socket: an agent opening a large store, or
/// waiting for a CLI reader to let go, takes a moment.
const AGENT_START_PATIENCE: Duration = Duration::from_secs(30);
/// How long the CLI waits for the next reply line (a verify of a large store takes a while).
const REPLY_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest reply line accepted (an alert payload is far smaller).
const MAX_REPLY_LINE: usize = 16 * 1024 * 1024;

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("control socket {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("control socket {path}: bad reply line: {reason}")]
    Protocol { path: PathBuf, reason: String },
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Agent(String),
    #[error("writing the output: {0}")]
    Output(std::io::Error),
    #[error("no agent answers and there is no alert store at {path} (the agent has not run yet)")]
    NoStore { path: PathBuf },
    #[error(
        "control socket {path}: answered by uid {uid}, not root: refusing to trust it (something \
         other than the agent is listening there)"
    )]
    Impostor { path: PathBuf, uid: u32 },
    #[error("{0}")]
    StateDir(#[from] StateDirError),
    #[error(
        "control socket {path}: the agent did not take the request within {} s (too many clients?); last: {last}",
        CONNECT_PATIENCE.as_secs()
    )]
    Busy { path: PathBuf, last: String },
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// The running agent answered over its control socket.
    Agent,
    /// No agent answered; the CLI read the store itself.
    Store,
}

/// Sends `request` to the running agent, or, when none answers at the control socket,
/// answers it from the store. Each item line goes to `sink`; an `{"error"}` line becomes
/// [`ClientError::Agent`].
///
/// The state directory is checked first (as the agent checks it), and the socket's listener
/// must be root: an answer from anyone else is refused ([`ClientError::Impostor`]).
pub fn ask(
    config: &Config,
    request: &Request,
    sink: &mut dyn FnMut(Reply) -> Result<(), ClientError>,
) -> Result<Connection, ClientError> {
    let state = match crate::state_dir::open(config, Missing::Fail) {
        Ok(dir) => dir,
        Err(e) if e.is_not_found() => {
            return Err(ClientError::NoStore {
                path: config.state_dir.join(STORE_DIR),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let socket = state.real_path().join(SOCKET);
    let shown = config.state_dir.join(SOCKET);
    let deadline = Instant::now() + CONNECT_PATIENCE;
    // An agent that holds the store while it starts gets this long to answer.
    let agent_deadline = Instant::now() + AGENT_START_PATIENCE;
    let mut pause = Duration::from_millis(10);
    loop {
        let retry = match UnixStream::connect(&socket) {
            Ok(stream) => {
                let peer = peer_of(&stream).map_err(|source| ClientError::Io {
                    path: shown.clone(),
                    op: "read the listener's credentials",
                    source,
                })?;
                if !trusted_owner(peer.uid) {
                    return Err(ClientError::Impostor {
                        path: shown,
                        uid: peer.uid,
                    });
                }
                match remote(&shown, stream, request, sink) {
                    Ok(()) => return Ok(Connection::Agent),
                    Err(Remote::Refused(_)) if Instant::now() < deadline => true,
                    Err(Remote::Refused(e)) => {
                        return Err(ClientError::Busy {
                            path: shown,
                            last: e.to_string(),
                        });
                    }
                    Err(Remote::Failed(e)) => return Err(e),
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
                // No answer: read the store, unless an agent holds it (starting up: wait
                // for its socket).
                match crate::state_dir::lock_for_reading(&state) {
                    Ok(Some(_reading)) => {
                        local(config, request, sink)?;
                        return Ok(Connection::Store);
                    }
                    Ok(None) if Instant::now() < agent_deadline => true,
                    Ok(None) => {
                        return Err(ClientError::Busy {
                            path: shown,
                            last: "the agent holds the store but does not answer".into(),
                        });
                    }
                    Err(source) => {
                        return Err(ClientError::Io {
                            path: config.state_dir.join(crate::state_dir::AGENT_LOCK),
                            op: "lock",
                            source,
                        });
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                if Instant::now() >= deadline {
                    return Err(ClientError::Busy {
                        path: shown,
                        last: e.to_string(),
                    });
                }
                true
            }
            Err(source) => {
                return Err(ClientError::Io {
                    path: shown,
                    op: "connect",
                    source,
                });
            }
        };
        if retry {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }
}

/// How an exchange with the agent ended short.
enum Remote {
    /// Closed before a single reply line: the agent had no slot for us. Safe to retry,
    /// nothing was delivered.
    Refused(ClientError),
    Failed(ClientError),
}

impl From<ClientError> for Remote {
    fn from(e: ClientError) -> Remote {
        Remote::Failed(e)
    }
}

fn remote(
    path: &Path,
    stream: UnixStream,
    request: &Request,
    sink: &mut dyn FnMut(Reply) -> Result<(), ClientError>,
) -> Result<(), Remote> {
    let io = |op| {
        let path = path.to_path_buf();
        move |source| ClientError::Io { path, op, source }
    };
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(io("set timeout"))?;
    let mut line = serde_json::to_vec(request).map_err(|e| ClientError::Protocol {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    line.push(b'\n');
    let mut lines = 0u64;
    let refused = |e: ClientError, lines: u64| {
        if lines == 0 {
            Remote::Refused(e)
        } else {
            Remote::Failed(e)
        }
    };
    if let Err(e) = (&stream).write_all(&line) {
        return Err(refused(io("send request")(e), 0));
    }
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = match (&mut reader)
            .take(MAX_REPLY_LINE as u64)
            .read_until(b'\n', &mut buf)
        {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Err(refused(io("read reply")(e), lines));
            }
            Err(e) => return Err(Remote::Failed(io("read reply")(e))),
        };
        if n == 0 {
            let e = ClientError::Protocol {
                path: path.to_path_buf(),
                reason: "the agent closed the connection before the end line".into(),
            };
            return Err(refused(e, lines));
        }
        lines += 1;
        if deliver(&buf, sink).map_err(|reason| ClientError::Protocol {
            path: path.to_path_buf(),
            reason,
        })?? {
            return Ok(());
        }
    }
}

/// Parses one reply line; `Ok(Ok(true))` at the end line.
fn deliver(
    line: &[u8],
    sink: &mut dyn FnMut(Reply) -> Result<(), ClientError>,
) -> Result<Result<bool, ClientError>, String> {
    let reply: Reply = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    Ok(match reply {
        Reply::End(_) => Ok(true),
        Reply::Error(message) => Err(ClientError::Agent(message)),
        item => sink(item).map(|()| false),
    })
}

fn local(
    config: &Config,
    request: &Request,
    sink: &mut dyn FnMut(Reply) -> Result<(), ClientError>,
) -> Result<(), ClientError> {
    let dir = config.state_dir.join(STORE_DIR);
    if !dir.exists() {
        return Err(ClientError::NoStore { path: dir });
    }
    let store = Store::open_waiting(&dir, STORE_OPEN_PATIENCE)?;
    let key = HostKey::load_existing(config)
        .map(|k| KeyInfo {
            key_id: k.key_id().to_string(),
            public_key: k.public_key().to_vec(),
        })
        .map_err(|e| e.to_string());
    let mut backend = Backend::new(store, key.clone(), None, config.upload_url().is_some());
    // At rest, `enrolled` is what the enrolment record says for this host and key.
    if let (Ok(id), Ok(key)) = (crate::config::host_id(config), &key)
        && let Some(settings) = crate::fleet::FleetSettings::from_config(config, &id)
    {
        let status = crate::fleet::FleetStatus {
            enrolled: crate::fleet::enrolment::recorded(&settings, &key.key_id).is_some(),
            ..Default::default()
        };
        backend = backend.with_fleet(std::sync::Arc::new(std::sync::Mutex::new(status)));
    }
    let mut responder = Responder::new(request.clone());
    let mut out = Vec::new();
    loop {
        out.clear();
        let finished = responder.fill(&backend, &mut out);
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let end = deliver(line, sink).map_err(|reason| ClientError::Protocol {
                path: config.state_dir.join(STORE_DIR),
                reason,
            })??;
            if end {
                return Ok(());
            }
        }
        if finished {
            return Ok(());
        }
    }
}
