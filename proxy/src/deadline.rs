//! A deadline for the whole exchange with a backend (`timeouts.total`, route `total_timeout`).
//!
//! pingora bounds each read and each write (`timeouts.read`, `.write`), never the exchange: a
//! backend that sends a byte every few seconds holds the request for ever, and no hook runs
//! between two of its bytes. So the deadline is a timer armed when the connection is made: at
//! the deadline it shuts the socket down, which ends the read or write pingora is waiting on at
//! once, in any phase (request, response head, body). The gate then answers `504` if nothing
//! was sent yet, or cuts the client's response if it had started.
//!
//! The timer is disarmed before pingora can hand the connection to another request: at the end
//! of the response body, on a response without one, on an upgrade, and when the request ends.
//! The socket is only shut down if it is still connected to the same backend address.

use std::net::SocketAddr;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::socket::{Shutdown, SockaddrStorage, getpeername, shutdown};
use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorType};

/// The error the exchange ends with once the deadline passed: an upstream timeout (`504`),
/// never retried.
pub fn expired() -> Box<Error> {
    let mut e = Error::explain(ErrorType::ReadTimedout, "upstream deadline").into_up();
    e.set_retry(false);
    e
}

/// Bounds each of `peer`'s own timeouts by the time left, so that a connect or a read started
/// just before the deadline cannot outlast it by much even without the timer.
pub fn clamp(peer: &mut HttpPeer, left: Duration) {
    let o = &mut peer.options;
    for t in [
        &mut o.connection_timeout,
        &mut o.total_connection_timeout,
        &mut o.read_timeout,
        &mut o.write_timeout,
    ] {
        *t = Some(t.map_or(left, |d| d.min(left)));
    }
}

#[derive(Debug, Default)]
struct Armed {
    /// The socket and the backend it was connected to; `None` once disarmed or fired.
    socket: Mutex<Option<(RawFd, SocketAddr)>>,
    fired: AtomicBool,
}

impl Armed {
    fn fire(&self) {
        let mut socket = self.socket.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((fd, peer)) = socket.take() {
            self.fired.store(true, Ordering::SeqCst);
            // Under the lock, so a disarm cannot hand the socket on in between.
            if connected_to(fd, peer) {
                let _ = shutdown(fd, Shutdown::Both);
            }
        }
    }
}

/// Whether `fd` is still a socket connected to `peer` (not a number reused since).
fn connected_to(fd: RawFd, peer: SocketAddr) -> bool {
    let Ok(addr) = getpeername::<SockaddrStorage>(fd) else {
        return false;
    };
    let seen = addr
        .as_sockaddr_in()
        .map(|a| SocketAddr::from(*a))
        .or_else(|| addr.as_sockaddr_in6().map(|a| SocketAddr::from(*a)));
    seen == Some(peer)
}

/// A timer that cuts one upstream connection at the deadline; disarmed when dropped.
#[derive(Debug)]
pub struct Cut {
    armed: Arc<Armed>,
    timer: tokio::task::JoinHandle<()>,
}

impl Cut {
    /// Arms the timer for the socket `fd`, connected to `peer`, to fire `at`.
    pub fn arm(fd: RawFd, peer: SocketAddr, at: Instant) -> Cut {
        let armed = Arc::new(Armed {
            socket: Mutex::new(Some((fd, peer))),
            fired: AtomicBool::new(false),
        });
        let timer = tokio::spawn({
            let armed = armed.clone();
            async move {
                tokio::time::sleep_until(at.into()).await;
                armed.fire();
            }
        });
        Cut { armed, timer }
    }

    /// The connection is done with (or handed over to a tunnel): never cut it.
    pub fn disarm(&self) {
        self.timer.abort();
        self.armed
            .socket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Whether the deadline cut the connection.
    pub fn fired(&self) -> bool {
        self.armed.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        self.disarm();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::os::unix::io::AsRawFd;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn the_timer_ends_a_pending_read_and_a_disarmed_one_never_fires() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (_server, _) = listener.accept().await.unwrap();
        let start = Instant::now();
        let cut = Cut::arm(client.as_raw_fd(), addr, start + Duration::from_millis(100));
        let mut buf = [0u8; 8];
        // The server never writes: only the cut can end this read.
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("the cut ends the read")
            .unwrap_or(0);
        assert_eq!(n, 0);
        assert!(cut.fired());

        let mut other = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let cut = Cut::arm(
            other.as_raw_fd(),
            addr,
            Instant::now() + Duration::from_millis(50),
        );
        cut.disarm();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!cut.fired());
        tokio::io::AsyncWriteExt::write_all(&mut server, b"ok")
            .await
            .unwrap();
        assert_eq!(other.read(&mut buf).await.unwrap(), 2);

        // Another backend address: a reused descriptor number is never shut down.
        let wrong = SocketAddr::from(([127, 0, 0, 1], 1));
        let cut = Cut::arm(other.as_raw_fd(), wrong, Instant::now());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(cut.fired());
        tokio::io::AsyncWriteExt::write_all(&mut server, b"ok")
            .await
            .unwrap();
        assert_eq!(other.read(&mut buf).await.unwrap(), 2);
    }
}
