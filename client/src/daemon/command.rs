//! The CommandSocket: 0.13's line protocol on a unix socket, for bbackupctl
//! (ours or 0.13's).
//!
//! On connect the daemon sends `bbackupd: <AutomaticBackup 0|1>
//! <UpdateStoreInterval> <MinimumFileAge> <MaxUploadWait>` (seconds), `state
//! <n>` and `ping`. The client sends `sync`, `force-sync`, `reload` or
//! `terminate` (answered `ok`), anything else (answered `error`), or `quit` / an
//! empty line (the daemon closes). While connected the client hears `state <n>`
//! on every change, and `start-sync` / `finish-sync` around every run.
//! [C]: seen between the real 0.13 bbackupd and bbackupctl.
//!
//! Unlike 0.13 (one client at a time, polled between files), every client gets
//! a thread, so a second bbackupctl is not turned away while a `wait-for-end`
//! waits; and a sync asked for during a run is not dropped but runs next (0.13
//! logs "Ignoring request to sync while already syncing", which leaves
//! `sync-and-wait` waiting for a run that never comes).
//!
//! Like 0.13, only processes of our own user may talk to us (SO_PEERCRED).
//!
//! Must not know: what a sync does; it hands [`Request`]s to the daemon loop.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, error, info, warn};

/// What a client asked the daemon loop to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `sync` (SyncAllowScript decides) or `force-sync` (it is skipped).
    Sync {
        force: bool,
    },
    Reload,
    Terminate,
}

/// 0.13's daemon states, as numbered on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum State {
    Initialising = -1,
    Idle = 0,
    Connected = 1,
    Error = 2,
    StorageLimitExceeded = 3,
}

impl State {
    /// The names 0.13's bbackupctl prints for `status` ("state Idle").
    pub fn name(n: i32) -> &'static str {
        match n {
            -1 => "Initialising",
            0 => "Idle",
            1 => "Connected",
            2 => "Error",
            3 => "StorageLimitExceeded",
            _ => "unknown",
        }
    }
}

/// The configuration summary of the greeting line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub automatic_backup: bool,
    pub update_store_interval: u64,
    pub minimum_file_age: u64,
    pub max_upload_wait: u64,
}

impl Summary {
    pub fn line(&self) -> String {
        format!(
            "bbackupd: {} {} {} {}",
            u8::from(self.automatic_backup),
            self.update_store_interval,
            self.minimum_file_age,
            self.max_upload_wait
        )
    }
}

struct Client {
    id: u64,
    out: Mutex<UnixStream>,
}

struct Shared {
    state: AtomicI32,
    summary: Mutex<Summary>,
    clients: Mutex<Vec<Arc<Client>>>,
    next_id: AtomicU64,
    closing: AtomicBool,
    requests: Mutex<Sender<Request>>,
    /// Set at `terminate`, so that a running sync stops at its next step.
    stop: Arc<AtomicBool>,
}

/// A listening command socket. Dropping it stops listening and removes the
/// socket file.
pub struct CommandSocket {
    shared: Arc<Shared>,
    path: PathBuf,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for CommandSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSocket")
            .field("path", &self.path)
            .finish()
    }
}

/// How long a write to a client may take before we give up on it (0.13: "a
/// very short timeout, it's overlapped anyway").
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the accept loop looks at the closing flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);

impl CommandSocket {
    /// Listens on `path` (a stale socket file there is replaced). Requests go
    /// to `requests`; `terminate` also sets `stop`.
    pub fn listen(
        path: &Path,
        summary: Summary,
        requests: Sender<Request>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<CommandSocket> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
                std::fs::remove_file(path)?;
            }
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            state: AtomicI32::new(State::Initialising as i32),
            summary: Mutex::new(summary),
            clients: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            closing: AtomicBool::new(false),
            requests: Mutex::new(requests),
            stop,
        });
        let s2 = shared.clone();
        let accept = std::thread::Builder::new()
            .name("command socket".into())
            .spawn(move || accept_loop(listener, s2))?;
        Ok(CommandSocket {
            shared,
            path: path.to_path_buf(),
            accept: Some(accept),
        })
    }

    pub fn state(&self) -> i32 {
        self.shared.state.load(Ordering::SeqCst)
    }

    /// Records the new state and tells every client (`state <n>`), if it changed.
    pub fn set_state(&self, s: State) {
        let old = self.shared.state.swap(s as i32, Ordering::SeqCst);
        if old != s as i32 {
            self.broadcast(&format!("state {}", s as i32));
        }
    }

    /// After a reload: the greeting of later clients.
    pub fn set_summary(&self, s: Summary) {
        *lock(&self.shared.summary) = s;
    }

    /// Sends `line` to every client; a client that cannot take it is dropped.
    pub fn broadcast(&self, line: &str) {
        broadcast(&self.shared, line);
    }

    /// How many clients are connected.
    pub fn clients(&self) -> usize {
        lock(&self.shared.clients).len()
    }
}

impl Drop for CommandSocket {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for c in lock(&self.shared.clients).drain(..) {
            let _ = lock(&c.out).shutdown(std::net::Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn broadcast(shared: &Shared, line: &str) {
    let clients: Vec<Arc<Client>> = lock(&shared.clients).clone();
    for c in clients {
        if let Err(e) = send(&c, line) {
            info!("Failed to write to command socket: {e}");
            drop_client(shared, c.id);
        }
    }
}

fn send(c: &Client, line: &str) -> std::io::Result<()> {
    let mut s = lock(&c.out);
    s.write_all(format!("{line}\n").as_bytes())
}

fn drop_client(shared: &Shared, id: u64) {
    let mut clients = lock(&shared.clients);
    if let Some(i) = clients.iter().position(|c| c.id == id) {
        let c = clients.remove(i);
        let _ = lock(&c.out).shutdown(std::net::Shutdown::Both);
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    while !shared.closing.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let s2 = shared.clone();
                if let Err(e) = std::thread::Builder::new()
                    .name("command client".into())
                    .spawn(move || serve(stream, s2))
                {
                    error!("command socket: cannot start a client thread: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
            }
            Err(e) => {
                warn!("command socket: accept: {e}");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

/// Whether the peer runs as our user.
fn same_user(stream: &UnixStream) -> bool {
    match rustix::net::sockopt::socket_peercred(stream) {
        Ok(cred) => cred.uid == rustix::process::getuid(),
        Err(_) => false,
    }
}

fn serve(stream: UnixStream, shared: Arc<Shared>) {
    if !same_user(&stream) {
        error!(
            "Incoming command connection from peer had different user ID than this process, or security check could not be completed."
        );
        return;
    }
    // accept() on a non-blocking listener may hand out a non-blocking stream.
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let Ok(out) = stream.try_clone() else {
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let client = Arc::new(Client {
        id,
        out: Mutex::new(out),
    });
    debug!("Connection from command socket");
    {
        // Greeting and registration under the client list's lock, so that no
        // state change falls between the `state` line and the first broadcast.
        let mut clients = lock(&shared.clients);
        let hello = format!(
            "{}\nstate {}\nping",
            lock(&shared.summary).line(),
            shared.state.load(Ordering::SeqCst)
        );
        if send(&client, &hello).is_err() {
            return;
        }
        clients.push(client.clone());
    }
    let mut lines = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let command = line.trim_end_matches(['\n', '\r']);
        debug!("Receiving command '{command}' over command socket");
        let request = match command {
            "quit" | "" => break,
            "sync" => Some(Request::Sync { force: false }),
            "force-sync" => Some(Request::Sync { force: true }),
            "reload" => Some(Request::Reload),
            "terminate" => {
                shared.stop.store(true, Ordering::SeqCst);
                Some(Request::Terminate)
            }
            _ => None,
        };
        // The answer first, so that `ok` comes before the `start-sync` it causes.
        if send(&client, if request.is_some() { "ok" } else { "error" }).is_err() {
            break;
        }
        if let Some(r) = request {
            let _ = lock(&shared.requests).send(r);
        }
    }
    debug!("Closing command connection");
    drop_client(&shared, id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::mpsc;

    fn read_until(s: &mut UnixStream, want: &str) -> String {
        let mut got = String::new();
        let mut buf = [0u8; 256];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        while !got.contains(want) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "EOF before {want:?}; got {got:?}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        got
    }

    #[test]
    fn speaks_013s_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        // A stale socket file from a crashed daemon is replaced.
        drop(UnixListener::bind(&path).unwrap());
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let summary = Summary {
            automatic_backup: false,
            update_store_interval: 3600,
            minimum_file_age: 21600,
            max_upload_wait: 86400,
        };
        let cs = CommandSocket::listen(&path, summary, tx, stop.clone()).unwrap();
        cs.set_state(State::Idle);
        let mut c = UnixStream::connect(&path).unwrap();
        let hello = read_until(&mut c, "ping\n");
        assert_eq!(hello, "bbackupd: 0 3600 21600 86400\nstate 0\nping\n");
        c.write_all(b"force-sync\n").unwrap();
        assert_eq!(read_until(&mut c, "\n"), "ok\n");
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Request::Sync { force: true }
        );
        cs.broadcast("start-sync");
        cs.set_state(State::Connected);
        cs.set_state(State::Connected);
        cs.broadcast("finish-sync");
        assert_eq!(
            read_until(&mut c, "finish-sync\n"),
            "start-sync\nstate 1\nfinish-sync\n"
        );
        c.write_all(b"bogus\nsync\nreload\n").unwrap();
        assert_eq!(read_until(&mut c, "ok\nok\n"), "error\nok\nok\n");
        assert_eq!(rx.recv().unwrap(), Request::Sync { force: false });
        assert_eq!(rx.recv().unwrap(), Request::Reload);
        // A second client at the same time.
        let mut c2 = UnixStream::connect(&path).unwrap();
        assert!(read_until(&mut c2, "ping\n").contains("state 1\n"));
        c2.write_all(b"terminate\n").unwrap();
        assert_eq!(read_until(&mut c2, "\n"), "ok\n");
        assert_eq!(rx.recv().unwrap(), Request::Terminate);
        assert!(stop.load(Ordering::SeqCst));
        // quit closes the connection.
        c.write_all(b"quit\n").unwrap();
        let mut rest = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        drop(cs);
        assert!(!path.exists());
        assert!(UnixStream::connect(&path).is_err());
    }
}
