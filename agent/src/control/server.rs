//! The agent's side of the control socket: one `mio` loop on its own thread.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::peer::peer_of;
use super::responder::Backend;
use super::{
    MAX_CLIENTS, MAX_CLIENTS_PER_PROCESS, MAX_REQUEST_BYTES, REQUEST_TIMEOUT, Request, Responder,
    STALL_TIMEOUT,
};
use nightjar_proto::trusted_dir::trusted_owner;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CLIENT: usize = 2;

/// Why the control socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("control socket {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("control socket {path}: another agent is answering there")]
    InUse { path: PathBuf },
}

/// The running control socket; [`ControlServer::stop`] ends it and removes the socket file.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Binds `path` (0600) and serves requests from `backend` on a new thread.
    pub fn start(path: &Path, backend: Backend) -> Result<ControlServer, ServerError> {
        let io = |op| {
            let path = path.to_path_buf();
            move |source| ServerError::Io { path, op, source }
        };
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServerError::InUse {
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(io("remove stale socket"))?;
        }
        let mut listener = UnixListener::bind(path).map_err(io("bind"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io("chmod"))?;
        let poll = Poll::new().map_err(io("create poll"))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(io("register"))?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(io("create waker"))?);
        let stop = Arc::new(AtomicBool::new(false));
        let mut lp = Loop {
            poll,
            listener,
            backend,
            clients: HashMap::new(),
            next_token: FIRST_CLIENT,
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("control".into())
            .spawn(move || lp.run())
            .map_err(io("spawn thread"))?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            waker,
            thread: Some(thread),
        })
    }

    /// Stops serving, waits for the thread and removes the socket file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            tracing::warn!("control socket: cannot wake the control thread: {e}");
        }
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("control thread panicked");
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), "cannot remove control socket: {e}");
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}

struct Client {
    stream: UnixStream,
    /// The connecting process, when the platform names it: bounds its slots.
    pid: Option<i32>,
    request: Vec<u8>,
    reply: Option<Responder>,
    out: Vec<u8>,
    sent: usize,
    finished: bool,
    deadline: Instant,
    /// When the client last sent or read anything (its accept time at first).
    progress: Instant,
}

impl Client {
    /// Whether the client still owes its request line.
    fn waiting_for_request(&self) -> bool {
        self.reply.is_none() && !self.finished
    }
}

struct Loop {
    poll: Poll,
    listener: UnixListener,
    backend: Backend,
    clients: HashMap<Token, Client>,
    next_token: usize,
    stop: Arc<AtomicBool>,
}

impl Loop {
    fn run(&mut self) {
        let mut events = Events::with_capacity(64);
        while !self.stop.load(Ordering::Acquire) {
            let timeout = self
                .clients
                .values()
                .map(|c| c.deadline.saturating_duration_since(Instant::now()))
                .min()
                .unwrap_or(Duration::from_secs(60));
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!("control socket: poll failed, stopping: {e}");
                return;
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    token => self.drive(token),
                }
            }
            let now = Instant::now();
            let expired: Vec<Token> = self
                .clients
                .iter()
                .filter(|(_, c)| c.deadline <= now)
                .map(|(t, _)| *t)
                .collect();
            for token in expired {
                tracing::debug!("control socket: client timed out");
                self.close(token);
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let peer = match peer_of(&stream) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!(
                                "control socket: cannot tell who connected ({e}); closing"
                            );
                            continue;
                        }
                    };
                    if !trusted_owner(peer.uid) {
                        tracing::warn!(
                            uid = peer.uid,
                            pid = peer.pid,
                            "control socket: refusing a client that is not root"
                        );
                        continue;
                    }
                    if peer.pid.is_some()
                        && self.clients.values().filter(|c| c.pid == peer.pid).count()
                            >= MAX_CLIENTS_PER_PROCESS
                    {
                        tracing::debug!(
                            pid = peer.pid,
                            "control socket: process already holds {MAX_CLIENTS_PER_PROCESS} connections; refusing one more"
                        );
                        continue;
                    }
                    if self.clients.len() >= MAX_CLIENTS {
                        self.evict_one();
                    }
                    let token = Token(self.next_token);
                    self.next_token = self.next_token.wrapping_add(1).max(FIRST_CLIENT);
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
                        tracing::warn!("control socket: cannot register a client: {e}");
                        continue;
                    }
                    let now = Instant::now();
                    self.clients.insert(
                        token,
                        Client {
                            stream,
                            pid: peer.pid,
                            progress: now,
                            request: Vec::new(),
                            reply: None,
                            out: Vec::new(),
                            sent: 0,
                            finished: false,
                            deadline: now + REQUEST_TIMEOUT,
                        },
                    );
                    self.drive(token);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!("control socket: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Makes room for a new client when every slot is taken: drops the client that has been
    /// waiting longest without sending its request, else the one that has gone longest
    /// without reading. A CLI sends its request as soon as it connects and reads as fast as
    /// it can, so it is never the one dropped while idle or stalled connections exist.
    fn evict_one(&mut self) {
        let victim = self
            .clients
            .iter()
            .min_by_key(|(_, c)| (!c.waiting_for_request(), c.progress))
            .map(|(t, _)| *t);
        if let Some(token) = victim {
            tracing::warn!(
                "control socket: {MAX_CLIENTS} clients connected; dropping the least active"
            );
            self.close(token);
        }
    }

    fn drive(&mut self, token: Token) {
        let Some(client) = self.clients.get_mut(&token) else {
            return;
        };
        let keep = serve(client, &self.backend).unwrap_or_else(|e| {
            tracing::debug!("control socket: client dropped: {e}");
            false
        });
        if !keep {
            self.close(token);
        }
    }

    fn close(&mut self, token: Token) {
        if let Some(mut c) = self.clients.remove(&token)
            && let Err(e) = self.poll.registry().deregister(&mut c.stream)
        {
            tracing::debug!("control socket: deregister: {e}");
        }
    }
}

/// Moves one client as far as it can go without blocking; `Ok(false)` = close it.
fn serve(c: &mut Client, backend: &Backend) -> std::io::Result<bool> {
    if c.reply.is_none() && !c.finished {
        let mut buf = [0u8; 1024];
        loop {
            match c.stream.read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    c.progress = Instant::now();
                    c.request.extend_from_slice(&buf[..n]);
                    if let Some(end) = memchr::memchr(b'\n', &c.request) {
                        let line = &c.request[..end];
                        match serde_json::from_slice::<Request>(line) {
                            Ok(req) => c.reply = Some(Responder::new(req)),
                            Err(e) => {
                                Responder::refuse(&mut c.out, format!("bad request: {e}"));
                                c.finished = true;
                            }
                        }
                        c.deadline = Instant::now() + STALL_TIMEOUT;
                        break;
                    }
                    if c.request.len() > MAX_REQUEST_BYTES {
                        Responder::refuse(
                            &mut c.out,
                            format!("request is over {MAX_REQUEST_BYTES} bytes"),
                        );
                        c.finished = true;
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    loop {
        while c.sent < c.out.len() {
            match c.stream.write(&c.out[c.sent..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    c.sent += n;
                    c.progress = Instant::now();
                    c.deadline = c.progress + STALL_TIMEOUT;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        c.out.clear();
        c.sent = 0;
        if c.finished {
            return Ok(false);
        }
        match c.reply.as_mut() {
            Some(r) => c.finished = r.fill(backend, &mut c.out),
            None => return Ok(true),
        }
    }
}
