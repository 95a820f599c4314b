//! The CLI's side: ask the running agent, or answer from the store when no agent runs.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::responder::{Backend, KeyInfo};
use super::{Reply, Request, Responder};
use crate::config::Config;
use crate::sign::HostKey;
use crate::store::Store;

/// How long the CLI waits for sled's lock when it reads the store itself (an agent stopping,
/// another command finishing).
const STORE_OPEN_PATIENCE: Duration = Duration::from_secs(5);
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
pub fn ask(
    config: &Config,
    request: &Request,
    sink: &mut dyn FnMut(Reply) -> Result<(), ClientError>,
) -> Result<Connection, ClientError> {
    let socket = config.control_socket();
    match UnixStream::connect(&socket) {
        Ok(stream) => {
            remote(&socket, stream, request, sink)?;
            Ok(Connection::Agent)
        }
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            local(config, request, sink)?;
            Ok(Connection::Store)
        }
        Err(source) => Err(ClientError::Io {
            path: socket,
            op: "connect",
            source,
        }),
    }
}

fn remote(
    path: &Path,
    stream: UnixStream,
    request: &Request,
    sink: &mut dyn FnMut(Reply) -> Result<(), ClientError>,
) -> Result<(), ClientError> {
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
    (&stream).write_all(&line).map_err(io("send request"))?;
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_REPLY_LINE as u64)
            .read_until(b'\n', &mut buf)
            .map_err(io("read reply"))?;
        if n == 0 {
            return Err(ClientError::Protocol {
                path: path.to_path_buf(),
                reason: "the agent closed the connection before the end line".into(),
            });
        }
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
    let dir = config.store_dir();
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
                path: config.store_dir(),
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
