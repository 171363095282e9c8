//! bbstored as a library: `Server::new(config)` then `server.run(listeners)`,
//! so tests run a real server in-process on port 0 (STYLE rule 7).
//!
//! Owns what the server shares between sessions (store context, TLS config,
//! counters), TLS accept and the client-certificate account, SIGHUP reload
//! (configuration, accounts, certificates and CRL for new connections; running
//! sessions keep what they started with) and TERM shutdown through
//! [`Shutdown`]. Signals themselves are the binary's business.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bb_proto::pki::{self, CnRule, ServerTls};
use bb_raid::config::RaidConfig;
use tracing::{info, warn};

use super::config::{ConfigError, ServerConfig};
use super::connection::{self, Counters, End, Handler, IncomingStream, Limits, Response};
use super::metrics::{ErrorKind, HousekeepResult, ServerMetrics, SessionResult};
use super::runtime::{SessionCount, Shutdown, accept_loop};
use crate::accounts::AccountDatabase;
use crate::session::{Session, StoreContext};
use bb_proto::Command;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Raid(#[from] bb_raid::Error),
    #[error("accounts database: {0}")]
    Accounts(#[from] crate::Error),
    #[error("TLS: {0}")]
    Tls(#[from] pki::Error),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    User(#[from] crate::user::UserError),
}

/// The running server's shared state.
#[derive(Debug)]
pub struct Server {
    config: RwLock<Arc<ServerConfig>>,
    config_path: Option<PathBuf>,
    pub store: Arc<StoreContext>,
    tls: RwLock<ServerTls>,
    pub shutdown: Shutdown,
    pub sessions: Arc<SessionCount>,
    /// Protocol bytes in and out over all connections.
    pub counters: Counters,
    /// What the metrics listener reports (docs/operations.md).
    pub metrics: Arc<ServerMetrics>,
}

fn load_parts(c: &ServerConfig) -> Result<(RaidConfig, AccountDatabase, ServerTls), ServerError> {
    let raid = RaidConfig::load(&c.raidfile_conf)?;
    let accounts = AccountDatabase::load(&c.account_database)?;
    let tls = pki::server_config(
        &c.certificate_file,
        &c.private_key_file,
        &c.trusted_cas_file,
        c.crl_file.as_deref(),
    )?;
    Ok((raid, accounts, tls))
}

impl Server {
    /// A server for `config`; `config_path` is re-read on reload (None: keep).
    pub fn new(config: ServerConfig, config_path: Option<&Path>) -> Result<Server, ServerError> {
        let (raid, accounts, tls) = load_parts(&config)?;
        Ok(Server {
            config: RwLock::new(Arc::new(config)),
            config_path: config_path.map(Path::to_path_buf),
            store: Arc::new(StoreContext::new(accounts, raid)),
            tls: RwLock::new(tls),
            shutdown: Shutdown::new(),
            sessions: Arc::new(SessionCount::default()),
            counters: Counters::default(),
            metrics: Arc::new(ServerMetrics::default()),
        })
    }

    /// Loads `path` and makes a server of it.
    pub fn load(path: &Path) -> Result<Server, ServerError> {
        Server::new(ServerConfig::load(path)?, Some(path))
    }

    pub fn config(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// SIGHUP: re-reads the configuration, raidfile.conf, accounts.txt, the
    /// certificates and the CRL. All or nothing: on any error the old settings
    /// stay and the error is returned. Listen addresses are not changed.
    pub fn reload(&self) -> Result<(), ServerError> {
        let config = match &self.config_path {
            Some(p) => ServerConfig::load(p)?,
            None => (*self.config()).clone(),
        };
        let (raid, accounts, tls) = load_parts(&config)?;
        *self.store.raid.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(raid);
        *self
            .store
            .accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = accounts;
        *self.tls.write().unwrap_or_else(|p| p.into_inner()) = tls;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        info!("configuration reloaded");
        Ok(())
    }

    /// Binds the configured listen addresses.
    pub fn bind(&self) -> Result<Vec<TcpListener>, ServerError> {
        let c = self.config();
        let mut out = Vec::new();
        for addr in c.listen_addrs()? {
            out.push(
                TcpListener::bind(addr).map_err(|source| ServerError::Listen { addr, source })?,
            );
        }
        Ok(out)
    }

    /// Binds `MetricsListenAddress` if configured. A non-loopback address is
    /// allowed (the file says so explicitly: only IP literals are accepted)
    /// but warned about, since the metrics name accounts and have no
    /// authentication.
    pub fn bind_metrics(&self) -> Result<Option<TcpListener>, ServerError> {
        let Some(addr) = self.config().metrics_listen_address else {
            return Ok(None);
        };
        if !addr.ip().is_loopback() {
            warn!(
                "MetricsListenAddress {addr} is not a loopback address: anyone who can reach it \
                 can read the metrics (account numbers and usage) without authentication"
            );
        }
        let l = TcpListener::bind(addr).map_err(|source| ServerError::Listen { addr, source })?;
        Ok(Some(l))
    }

    /// Serves the metrics on `listener` in a thread of its own until
    /// shutdown. Whatever happens there (bad requests, slow clients, a bug
    /// while rendering) stays there: sessions never wait for it.
    pub fn serve_metrics(
        self: &Arc<Self>,
        listener: TcpListener,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        if let Ok(a) = listener.local_addr() {
            info!("serving metrics on http://{a}/metrics");
        }
        let me = self.clone();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                let (render, stop) = (me.clone(), me.shutdown.clone());
                bb_proto::metrics::serve(
                    listener,
                    bb_proto::metrics::ServeLimits::default(),
                    move || stop.is_triggered(),
                    move || super::metrics::render(&render),
                )
            })
    }

    /// Serves until [`Shutdown::trigger`], then waits for sessions to finish
    /// their command (the configured grace period).
    pub fn run(self: &Arc<Self>, listeners: Vec<TcpListener>) -> std::io::Result<()> {
        for l in &listeners {
            if let Ok(a) = l.local_addr() {
                info!("listening on {a}");
            }
        }
        let me = self.clone();
        let housekeeping = std::thread::Builder::new()
            .name("housekeeping".into())
            .spawn(move || me.housekeeping_loop())?;
        let r = self.run_sessions(listeners);
        self.store.housekeeping.request_release_all();
        let _ = housekeeping.join();
        r
    }

    /// Housekeeping of every account, every TimeBetweenHousekeeping (0.13's
    /// separate process, here a thread). An account whose lock a session holds
    /// is skipped; a session that wants the lock interrupts it (through
    /// `StoreContext::housekeeping`). Stops at shutdown.
    fn housekeeping_loop(&self) {
        let mut next = std::time::Instant::now() + self.config().time_between_housekeeping;
        while !self.shutdown.is_triggered() {
            if std::time::Instant::now() < next {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            self.housekeep_all();
            next = std::time::Instant::now()
                + self
                    .config()
                    .time_between_housekeeping
                    .max(Duration::from_secs(1));
        }
    }

    /// One housekeeping pass over all accounts.
    pub fn housekeep_all(&self) {
        let accounts: Vec<(u32, u32)> = {
            let mut db = self
                .store
                .accounts
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let _ = db.reload_if_changed();
            db.iter().collect()
        };
        let raid = self
            .store
            .raid
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let started = Instant::now();
        for (account, set) in accounts {
            if self.shutdown.is_triggered() {
                return;
            }
            let Ok(discs) = raid.set(set) else {
                self.metrics.housekept(HousekeepResult::Failed);
                warn!(
                    account = format_args!("{account:08x}"),
                    "housekeeping: no disc set {set}"
                );
                continue;
            };
            let flag = self.store.housekeeping.flag(account);
            let store = Box::new(crate::objects::RaidObjects::new(discs.clone(), account));
            let mut log = crate::report::TracingReporter;
            use crate::housekeep::Housekept;
            let r = crate::housekeep::housekeep(store, &flag, &mut log);
            self.metrics.housekept(match &r {
                Ok(Housekept::Finished(_)) => HousekeepResult::Finished,
                Ok(Housekept::Interrupted(_)) => HousekeepResult::Interrupted,
                Ok(Housekept::Busy) => HousekeepResult::Busy,
                Err(_) => HousekeepResult::Failed,
            });
            match r {
                Ok(r) => tracing::debug!(
                    account = format_args!("{account:08x}"),
                    "housekeeping: {r:?}"
                ),
                Err(e) => warn!(
                    account = format_args!("{account:08x}"),
                    "housekeeping failed: {e}"
                ),
            }
        }
        self.metrics.housekeeping_pass(started.elapsed());
    }

    fn run_sessions(self: &Arc<Self>, listeners: Vec<TcpListener>) -> std::io::Result<()> {
        let me = self.clone();
        let grace = self.config().shutdown_grace;
        accept_loop(
            listeners,
            self.shutdown.clone(),
            grace,
            self.sessions.clone(),
            move |stream, peer| me.serve_connection(stream, peer),
        )
    }

    fn limits(&self) -> Limits {
        let c = self.config();
        Limits {
            idle: nonzero(c.idle_timeout),
            operation: nonzero(c.operation_timeout),
            ..Limits::default()
        }
    }

    fn serve_connection(&self, stream: TcpStream, peer: SocketAddr) {
        self.metrics
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        let stream = Counted {
            sock: stream,
            metrics: self.metrics.clone(),
        };
        // 0.13 loses ~40 ms a round trip to Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let limits = self.limits();
        let _ = stream.set_read_timeout(Some(limits.operation));
        let _ = stream.set_write_timeout(Some(limits.operation));
        let tls = self
            .tls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .config
            .clone();
        let conn = match rustls::ServerConnection::new(tls) {
            Ok(c) => c,
            Err(e) => {
                self.metrics.error(ErrorKind::Internal);
                warn!(%peer, "TLS setup: {e}");
                return;
            }
        };
        let mut s = rustls::StreamOwned::new(conn, stream);
        // In slices, so that a client stuck in the handshake cannot hold up a
        // shutdown; rustls keeps a partial record across a timed-out read.
        let deadline = Instant::now() + limits.operation;
        while s.conn.is_handshaking() {
            if self.shutdown.is_triggered() {
                self.metrics.session_ended(SessionResult::Shutdown);
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.metrics.session_ended(SessionResult::TlsTimeout);
                info!(%peer, "TLS handshake timed out");
                return;
            }
            let _ = s.sock.set_read_timeout(Some(left.min(HANDSHAKE_POLL)));
            match s.conn.complete_io(&mut s.sock) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => {
                    self.metrics.session_ended(SessionResult::TlsFailed);
                    info!(%peer, "TLS handshake failed: {}", pki::tls_error_text(&e));
                    return;
                }
            }
        }
        let _ = s.sock.set_read_timeout(Some(limits.operation));
        let account = match pki::account_from_connection(&s.conn, CnRule::Strict) {
            Ok(a) => a,
            Err(e) => {
                // 0.13 closes before its ident.
                self.metrics
                    .session_ended(SessionResult::CertificateRefused);
                info!(%peer, "refused: {e}");
                return;
            }
        };
        let span = tracing::info_span!("session", account = format_args!("{account:08x}"), %peer);
        let _enter = span.enter();
        info!("connection");
        let counters = Counters::default();
        let mut handler = Served {
            session: Session::new(self.store.clone(), account),
            shutdown: &self.shutdown,
        };
        let mut t = TlsTransport(s);
        let end = connection::serve(&mut t, &mut handler, &limits, &counters);
        handler.session.finish();
        let (i, o) = (
            counters.bytes_in.load(Ordering::Relaxed),
            counters.bytes_out.load(Ordering::Relaxed),
        );
        self.counters.bytes_in.fetch_add(i, Ordering::Relaxed);
        self.counters.bytes_out.fetch_add(o, Ordering::Relaxed);
        self.metrics.session_ended(match &end {
            End::Finished => SessionResult::Finished,
            End::Shutdown => SessionResult::Shutdown,
            End::Closed => SessionResult::Closed,
            End::Idle(_) => SessionResult::IdleTimeout,
            End::Protocol(_) => SessionResult::ProtocolError,
            End::Io(_) => SessionResult::NetworkError,
        });
        match &end {
            End::Finished | End::Shutdown | End::Closed => {
                info!(IN = i, OUT = o, "session ended: {end}")
            }
            _ => warn!(IN = i, OUT = o, "session ended: {end}"),
        }
        // Courtesy close_notify; the protocol's own Finished already ended it.
        t.0.conn.send_close_notify();
        let _ = std::io::Write::flush(&mut t.0);
    }
}

/// How often a session in its TLS handshake looks at the shutdown flag.
const HANDSHAKE_POLL: Duration = Duration::from_millis(200);

fn nonzero(d: Duration) -> Duration {
    if d.is_zero() {
        Duration::from_secs(u64::from(u32::MAX))
    } else {
        d
    }
}

/// A session that also stops between commands when the server shuts down.
struct Served<'a> {
    session: Session,
    shutdown: &'a Shutdown,
}

impl Handler for Served<'_> {
    fn handle(&mut self, command: Command, stream: Option<&mut dyn IncomingStream>) -> Response {
        self.session.handle(command, stream)
    }
    fn stopping(&self) -> bool {
        self.shutdown.is_triggered()
    }
    fn idle(&mut self) {
        self.session.idle();
    }
}

/// A client socket that counts the bytes through it for the metrics, as they
/// pass (so a long upload shows up while it runs, TLS records included).
struct Counted {
    sock: TcpStream,
    metrics: Arc<ServerMetrics>,
}

impl std::ops::Deref for Counted {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        &self.sock
    }
}

impl std::io::Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.sock.read(buf)?;
        self.metrics
            .network_bytes_in
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.sock.write(buf)?;
        self.metrics
            .network_bytes_out
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.sock.flush()
    }
}

struct TlsTransport(rustls::StreamOwned<rustls::ServerConnection, Counted>);

impl std::io::Read for TlsTransport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf) {
            // A peer that drops TCP without close_notify: plain EOF to us.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            r => r,
        }
    }
}

impl std::io::Write for TlsTransport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl connection::Transport for TlsTransport {
    fn set_read_timeout(&mut self, d: Option<Duration>) -> std::io::Result<()> {
        self.0.sock.set_read_timeout(d)
    }
    fn set_write_timeout(&mut self, d: Option<Duration>) -> std::io::Result<()> {
        self.0.sock.set_write_timeout(d)
    }
}

/// The binary's work: load, bind, pid file, signals, serve until TERM.
pub fn main(opts: &super::options::Options) -> Result<(), ServerError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    if !opts.foreground {
        return detach();
    }
    let server = Arc::new(Server::load(&opts.config)?);
    info!(config = %opts.config.display(), "starting bbstored {}", env!("CARGO_PKG_VERSION"));
    let listeners = server.bind()?;
    let metrics = server.bind_metrics()?;
    let config = server.config();
    if let Some(pid) = &config.pid_file {
        std::fs::write(pid, format!("{}\n", std::process::id()))
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", pid.display())))?;
    }
    // As 0.13: ports and pid file as root, then the store as `User`. Before any
    // thread starts, so that the switch covers the whole process.
    if let Some(user) = &config.user {
        let who = crate::user::switch_to(user)?;
        info!("running as user {} (uid {})", who.name, who.uid);
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    let handle = signals.handle();
    // Listening, pid file written, signals caught: a service manager may go on.
    // A Type=notify unit (contrib/systemd/bbstored.service) waits for this.
    bb_console::systemd::notify("READY=1");
    let s2 = server.clone();
    let signal_thread = std::thread::spawn(move || {
        for sig in signals.forever() {
            match sig {
                SIGHUP => {
                    if let Err(e) = s2.reload() {
                        warn!("reload refused, old settings kept: {e}");
                    }
                }
                _ => {
                    info!("terminating: no new connections; running sessions finish their command");
                    bb_console::systemd::notify("STOPPING=1");
                    s2.shutdown.trigger();
                    break;
                }
            }
        }
    });
    let metrics_thread = match metrics {
        Some(l) => Some(server.serve_metrics(l)?),
        None => None,
    };
    let r = server.run(listeners);
    if let Some(t) = metrics_thread {
        let _ = t.join();
    }
    handle.close();
    let _ = signal_thread.join();
    if let Some(pid) = &config.pid_file {
        let _ = std::fs::remove_file(pid);
    }
    info!("terminated");
    r.map_err(ServerError::Io)
}

/// 0.13 forks into the background unless -F/-D. Forking a process that may
/// hold threads is unsound, so we start ourselves again with -F in a new
/// session and return.
fn detach() -> Result<(), ServerError> {
    let exe = std::env::current_exe()?;
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    args.insert(0, "-F".into());
    std::process::Command::new(exe)
        .args(&args)
        .env(super::logging::DETACHED_ENV, "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()?;
    Ok(())
}
