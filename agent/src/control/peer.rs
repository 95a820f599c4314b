//! Who is at the other end of the control socket (`SO_PEERCRED` on Linux, `getpeereid` and
//! `LOCAL_PEERPID` on macOS): the CLI accepts answers only from root, and the agent serves
//! only root and bounds the connections one process may hold.

use std::io;
use std::os::fd::AsFd;

/// The peer's effective uid and, where the platform says, its pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<i32>,
}

/// The credentials of the process at the other end of the Unix stream socket `fd`: for the
/// server side of a connection, whoever connected; for the client side, whoever listened.
#[cfg(target_os = "linux")]
pub fn peer_of(fd: &impl AsFd) -> io::Result<Peer> {
    let cred = nix::sys::socket::getsockopt(fd, nix::sys::socket::sockopt::PeerCredentials)?;
    Ok(Peer {
        uid: cred.uid(),
        pid: Some(cred.pid()),
    })
}

/// The credentials of the process at the other end of the Unix stream socket `fd`.
#[cfg(target_os = "macos")]
pub fn peer_of(fd: &impl AsFd) -> io::Result<Peer> {
    let (uid, _) = nix::unistd::getpeereid(fd)?;
    let pid = nix::sys::socket::getsockopt(fd, nix::sys::socket::sockopt::LocalPeerPid).ok();
    Ok(Peer {
        uid: uid.as_raw(),
        pid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_pair_names_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let peer = peer_of(&a).unwrap();
        assert_eq!(peer.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(peer.pid, Some(std::process::id() as i32));
    }
}
