//! The server's skeleton: accept loop, one thread per session, shutdown.
//!
//! One process, sessions as threads (protocol.md §6.7): a signal never reaches a
//! session abruptly. `Shutdown` is the only way to stop: the accept loop polls
//! it between `poll(2)` timeouts, stops accepting, and waits for running
//! sessions for the grace period; sessions look at it between commands. What a
//! session does with its socket is the `serve` function's business.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A shared stop flag. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks the server to stop accepting and wind down its sessions.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// Counts running sessions so that shutdown can wait for them.
#[derive(Debug, Default)]
pub struct SessionCount {
    n: Mutex<usize>,
    zero: Condvar,
    peak: AtomicUsize,
}

impl SessionCount {
    fn enter(self: &Arc<Self>) -> SessionGuard {
        let mut n = self.n.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        self.peak.fetch_max(*n, Ordering::Relaxed);
        SessionGuard(self.clone())
    }

    pub fn running(&self) -> usize {
        *self.n.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most sessions that ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Waits until no session runs, at most `limit`. True if none runs.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut n = self.n.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            n = self
                .zero
                .wait_timeout(n, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

struct SessionGuard(Arc<SessionCount>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut n = self.0.n.lock().unwrap_or_else(|p| p.into_inner());
        *n -= 1;
        if *n == 0 {
            self.0.zero.notify_all();
        }
    }
}

/// How often the accept loop looks at the shutdown flag.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Accepts connections on `listeners` until `shutdown`, running `serve` for
/// each on its own thread; then waits up to `grace` for sessions to end.
/// Returns the session counter (tests read its peak).
pub fn accept_loop<F>(
    listeners: Vec<TcpListener>,
    shutdown: Shutdown,
    grace: Duration,
    sessions: Arc<SessionCount>,
    serve: F,
) -> std::io::Result<()>
where
    F: Fn(TcpStream, SocketAddr) + Send + Sync + 'static,
{
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let serve = Arc::new(serve);
    for l in &listeners {
        l.set_nonblocking(true)?;
    }
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: POLL_INTERVAL.as_nanos() as i64,
    };
    while !shutdown.is_triggered() {
        let mut fds: Vec<PollFd<'_>> = listeners
            .iter()
            .map(|l| PollFd::new(l, PollFlags::IN))
            .collect();
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        for l in &listeners {
            loop {
                match l.accept() {
                    Ok((stream, peer)) => {
                        // Accepted sockets inherit O_NONBLOCK on some systems: undo it.
                        let _ = stream.set_nonblocking(false);
                        let guard = sessions.enter();
                        let serve = serve.clone();
                        let spawned = std::thread::Builder::new()
                            .name(format!("session {peer}"))
                            .stack_size(1024 * 1024)
                            .spawn(move || {
                                let _guard = guard;
                                serve(stream, peer);
                            });
                        if let Err(e) = spawned {
                            tracing::error!(%peer, "cannot start a session thread: {e}");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // ECONNABORTED, EMFILE...: log and go on; never stop serving.
                        tracing::warn!("accept: {e}");
                        std::thread::sleep(Duration::from_millis(10));
                        break;
                    }
                }
            }
        }
    }
    drop(listeners);
    if !sessions.wait_idle(grace) {
        tracing::warn!(
            "{} sessions still running after the {grace:?} grace period",
            sessions.running()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn serves_until_shutdown_then_waits_for_sessions() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let sessions = Arc::new(SessionCount::default());
        let (s2, c2) = (shutdown.clone(), sessions.clone());
        let t = std::thread::spawn(move || {
            accept_loop(vec![l], s2, Duration::from_secs(5), c2, |mut s, _| {
                let mut b = [0u8; 4];
                if s.read_exact(&mut b).is_ok() {
                    std::thread::sleep(Duration::from_millis(300));
                    let _ = s.write_all(&b);
                }
            })
        });
        let mut conns: Vec<TcpStream> =
            (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for c in &mut conns {
            c.write_all(b"ping").unwrap();
        }
        std::thread::sleep(Duration::from_millis(150));
        shutdown.trigger();
        // In-flight sessions finish and answer although shutdown began.
        for c in &mut conns {
            let mut b = [0u8; 4];
            c.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"ping");
        }
        t.join().unwrap().unwrap();
        assert_eq!(sessions.running(), 0);
        assert_eq!(sessions.peak(), 20);
        // No longer accepting.
        assert!(TcpStream::connect(addr).is_err());
    }
}
