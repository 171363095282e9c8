//! The metrics listener: accepts on a `TcpListener` until told to stop and
//! answers each connection on its own short-lived thread.
//!
//! Nothing a client does can hold the daemon up or bring it down: a request
//! must arrive whole within [`ServeLimits::request_timeout`] (else 408) and
//! within [`super::http::MAX_HEAD`] bytes (else 431); the answer is written
//! with the same time limit; at most [`ServeLimits::max_connections`] are
//! answered at once (others get 503 and are closed); the render closure runs
//! under `catch_unwind` (a bug there is a 500, not a dead thread); and an
//! error of `accept` is logged and waited out, never returned, so the loop
//! only ends when `stop` says so.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::http::{self, Route};
use super::text::CONTENT_TYPE;

/// Bounds on the listener.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// The time a client has to send its request, and then to take the answer.
    pub request_timeout: Duration,
    /// Connections answered at once.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> ServeLimits {
        ServeLimits {
            request_timeout: Duration::from_secs(5),
            max_connections: 8,
        }
    }
}

/// How often the accept loop looks at `stop` while nobody connects.
const POLL: Duration = Duration::from_millis(50);

/// Serves `render()`'s text at `GET /metrics` until `stop()` is true; then
/// returns (connections being answered finish on their own threads).
pub fn serve<R, S>(listener: TcpListener, limits: ServeLimits, stop: S, render: R)
where
    R: Fn() -> String + Send + Sync + 'static,
    S: Fn() -> bool,
{
    let render = Arc::new(render);
    let active = Arc::new(AtomicUsize::new(0));
    if let Err(e) = listener.set_nonblocking(true) {
        warn!("metrics listener: {e}; not serving metrics");
        return;
    }
    while !stop() {
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(POLL);
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE and friends: wait for them to pass.
                warn!("metrics listener: accept: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        if active.fetch_add(1, Ordering::SeqCst) >= limits.max_connections {
            active.fetch_sub(1, Ordering::SeqCst);
            debug!(%peer, "metrics: too many connections");
            let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
            finish(
                stream,
                &http::error_response(503, "too many scrapes at once"),
                Duration::from_millis(200),
            );
            continue;
        }
        let (render, active2) = (render.clone(), active.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("metrics {peer}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                answer(stream, limits.request_timeout, &*render);
                active2.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::SeqCst);
            warn!("metrics: cannot start a thread: {e}");
        }
    }
}

/// Reads one request head and answers it.
fn answer(mut s: TcpStream, timeout: Duration, render: &(dyn Fn() -> String + Send + Sync)) {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let reply = loop {
        match http::parse_head(&buf) {
            Ok(Some((head, _))) => {
                break match http::route(&head) {
                    Route::Metrics { head_only } => {
                        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(render)) {
                            Ok(text) => {
                                http::response(200, CONTENT_TYPE, text.as_bytes(), head_only)
                            }
                            Err(_) => http::error_response(500, "rendering the metrics failed"),
                        }
                    }
                    Route::NotFound => http::error_response(404, "only /metrics is here"),
                    Route::MethodNotAllowed => http::error_response(405, "use GET"),
                };
            }
            Ok(None) => {}
            Err(e) => break http::error_response(e.status(), &e.to_string()),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break http::error_response(408, "the request did not arrive in time");
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break http::error_response(408, "the request did not arrive in time");
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    };
    let _ = s.set_write_timeout(Some(timeout));
    finish(s, &reply, Duration::from_millis(500));
}

/// Writes `reply`, ends our side, and reads what the client still sends for a
/// moment: closing with unread bytes (a POST body, the rest of a huge head)
/// makes the kernel send RST, which can destroy the answer in flight.
fn finish(mut s: TcpStream, reply: &[u8], linger: Duration) {
    if s.write_all(reply).is_err() {
        return;
    }
    let _ = s.flush();
    let _ = s.shutdown(Shutdown::Write);
    let end = Instant::now() + linger;
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    while drained < (1 << 20) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn start(
        render: impl Fn() -> String + Send + Sync + 'static,
    ) -> (
        std::net::SocketAddr,
        Arc<AtomicBool>,
        std::thread::JoinHandle<()>,
    ) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let limits = ServeLimits {
            request_timeout: Duration::from_millis(500),
            max_connections: 4,
        };
        let t =
            std::thread::spawn(move || serve(l, limits, move || s2.load(Ordering::SeqCst), render));
        (addr, stop, t)
    }

    fn ask(addr: std::net::SocketAddr, req: &[u8]) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.write_all(req);
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn answers_and_refuses() {
        let (addr, stop, t) = start(|| "x 1\n".to_string());
        let r = ask(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\nx 1\n"),
            "{r}"
        );
        assert!(r.contains("Content-Type: text/plain; version=0.0.4"), "{r}");
        let r = ask(
            addr,
            b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
        let r = ask(addr, b"\x00\x01garbage\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 100_000));
        let r = ask(addr, &huge);
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
        // A slow client: half a request, then nothing.
        let t0 = Instant::now();
        let r = ask(addr, b"GET /metr");
        assert!(r.starts_with("HTTP/1.1 408 "), "{r}");
        assert!(t0.elapsed() < Duration::from_secs(3));
        // Silent connections take slots but not the listener.
        let idle: Vec<TcpStream> = (0..6).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(100));
        drop(idle);
        std::thread::sleep(Duration::from_millis(600));
        let r = ask(addr, b"GET /metrics HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
    }

    #[test]
    fn a_panicking_render_is_a_500() {
        let (addr, stop, t) = start(|| panic!("render bug"));
        let r = ask(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 500 "), "{r}");
        let r = ask(addr, b"GET /other HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404 "), "{r}");
        stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
    }
}
