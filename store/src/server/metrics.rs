//! bbstored's Prometheus metrics: the counters the server keeps while it
//! runs ([`ServerMetrics`], shared by the accept loop, the sessions and the
//! housekeeping thread through [`super::Server`]), and the text of a scrape
//! ([`render`]), served by `bb_proto::metrics` on `MetricsListenAddress`.
//!
//! Counters are plain relaxed atomics: a scrape may see one counter a moment
//! ahead of another, which Prometheus tolerates; nothing on the session path
//! waits for a lock because of metrics. Per-account usage is read from each
//! account's store info at scrape time (one small RaidFile read per account;
//! never the account lock), so it is what bbstoreaccounts info would print,
//! up to the info saves a running session still delays (store.md,
//! "Durability").
//!
//! Every series and its meaning: docs/operations.md. Must not know HTTP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bb_format::storeinfo::StoreInfo;
use bb_proto::metrics::{Exposition, Kind};

use super::daemon::Server;
use crate::objects::{NamedFile, ObjectStore, RaidObjects};

/// How a connection ended, as counted in `bbstored_sessions_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionResult {
    /// The client sent Finished.
    Finished,
    /// The client closed the connection without Finished.
    Closed,
    /// The server was shutting down.
    Shutdown,
    /// The client sent nothing for IdleTimeout.
    IdleTimeout,
    /// Malformed data, wrong phase, stream confusion: 0.13 closes too.
    ProtocolError,
    /// A read or write failed or timed out inside a command.
    NetworkError,
    /// The TLS handshake failed (not TLS, bad certificate chain, ...).
    TlsFailed,
    /// The TLS handshake took longer than OperationTimeout.
    TlsTimeout,
    /// A valid certificate whose common name is not `BACKUP-<account>`.
    CertificateRefused,
}

impl SessionResult {
    const ALL: [SessionResult; 9] = [
        SessionResult::Finished,
        SessionResult::Closed,
        SessionResult::Shutdown,
        SessionResult::IdleTimeout,
        SessionResult::ProtocolError,
        SessionResult::NetworkError,
        SessionResult::TlsFailed,
        SessionResult::TlsTimeout,
        SessionResult::CertificateRefused,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SessionResult::Finished => "finished",
            SessionResult::Closed => "closed",
            SessionResult::Shutdown => "shutdown",
            SessionResult::IdleTimeout => "idle_timeout",
            SessionResult::ProtocolError => "protocol_error",
            SessionResult::NetworkError => "network_error",
            SessionResult::TlsFailed => "tls_failed",
            SessionResult::TlsTimeout => "tls_timeout",
            SessionResult::CertificateRefused => "certificate_refused",
        }
    }

    /// Which `bbstored_errors_total{kind}` the result also counts as.
    fn error_kind(self) -> Option<ErrorKind> {
        match self {
            SessionResult::Finished
            | SessionResult::Closed
            | SessionResult::Shutdown
            | SessionResult::IdleTimeout => None,
            SessionResult::ProtocolError => Some(ErrorKind::Protocol),
            SessionResult::NetworkError => Some(ErrorKind::Network),
            SessionResult::TlsFailed | SessionResult::TlsTimeout => Some(ErrorKind::Tls),
            SessionResult::CertificateRefused => Some(ErrorKind::Certificate),
        }
    }
}

/// `bbstored_errors_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Protocol,
    Network,
    Tls,
    Certificate,
    /// Housekeeping of an account failed (not: skipped because busy).
    Housekeeping,
    /// The server could not set a connection up (TLS state, thread).
    Internal,
}

impl ErrorKind {
    const ALL: [ErrorKind; 6] = [
        ErrorKind::Protocol,
        ErrorKind::Network,
        ErrorKind::Tls,
        ErrorKind::Certificate,
        ErrorKind::Housekeeping,
        ErrorKind::Internal,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Protocol => "protocol",
            ErrorKind::Network => "network",
            ErrorKind::Tls => "tls",
            ErrorKind::Certificate => "certificate",
            ErrorKind::Housekeeping => "housekeeping",
            ErrorKind::Internal => "internal",
        }
    }
}

/// What housekeeping did with one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HousekeepResult {
    Finished,
    /// A client wanted the account's lock.
    Interrupted,
    /// A session held the lock: skipped this round.
    Busy,
    Failed,
}

impl HousekeepResult {
    const ALL: [HousekeepResult; 4] = [
        HousekeepResult::Finished,
        HousekeepResult::Interrupted,
        HousekeepResult::Busy,
        HousekeepResult::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            HousekeepResult::Finished => "finished",
            HousekeepResult::Interrupted => "interrupted",
            HousekeepResult::Busy => "busy",
            HousekeepResult::Failed => "failed",
        }
    }
}

/// The server's counters (see the module header).
#[derive(Debug)]
pub struct ServerMetrics {
    started: SystemTime,
    pub connections_accepted: AtomicU64,
    /// Bytes read from and written to client sockets (TLS records included).
    pub network_bytes_in: AtomicU64,
    pub network_bytes_out: AtomicU64,
    sessions: [AtomicU64; SessionResult::ALL.len()],
    errors: [AtomicU64; ErrorKind::ALL.len()],
    housekeeping_runs: AtomicU64,
    housekeeping_accounts: [AtomicU64; HousekeepResult::ALL.len()],
    /// Unix time of the end of the last pass (0: none yet).
    housekeeping_last_end: AtomicU64,
    housekeeping_last_micros: AtomicU64,
}

impl Default for ServerMetrics {
    fn default() -> ServerMetrics {
        ServerMetrics {
            started: SystemTime::now(),
            connections_accepted: AtomicU64::new(0),
            network_bytes_in: AtomicU64::new(0),
            network_bytes_out: AtomicU64::new(0),
            sessions: Default::default(),
            errors: Default::default(),
            housekeeping_runs: AtomicU64::new(0),
            housekeeping_accounts: Default::default(),
            housekeeping_last_end: AtomicU64::new(0),
            housekeeping_last_micros: AtomicU64::new(0),
        }
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl ServerMetrics {
    pub fn session_ended(&self, r: SessionResult) {
        self.sessions[r as usize].fetch_add(1, Ordering::Relaxed);
        if let Some(k) = r.error_kind() {
            self.error(k);
        }
    }

    pub fn error(&self, k: ErrorKind) {
        self.errors[k as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn sessions(&self, r: SessionResult) -> u64 {
        self.sessions[r as usize].load(Ordering::Relaxed)
    }

    pub fn housekept(&self, r: HousekeepResult) {
        self.housekeeping_accounts[r as usize].fetch_add(1, Ordering::Relaxed);
        if r == HousekeepResult::Failed {
            self.error(ErrorKind::Housekeeping);
        }
    }

    /// A housekeeping pass over all accounts ended after `took`.
    pub fn housekeeping_pass(&self, took: std::time::Duration) {
        self.housekeeping_runs.fetch_add(1, Ordering::Relaxed);
        self.housekeeping_last_micros
            .store(took.as_micros() as u64, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.housekeeping_last_end.store(now, Ordering::Relaxed);
    }
}

/// One account's store info, read without its lock.
fn account_info(server: &Server, account: u32, set: u32) -> Option<(StoreInfo, u64)> {
    let raid = server
        .store
        .raid
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let discs = raid.set(set).ok()?;
    let store = RaidObjects::new(discs.clone(), account);
    let bytes = store.read_named(NamedFile::Info).ok()??;
    let info = StoreInfo::parse(&bytes).ok()?;
    Some((info, store.block_size()))
}

/// The text of one scrape.
pub fn render(server: &Server) -> String {
    let m = &server.metrics;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut e = Exposition::new();
    e.single(
        "bbstored_start_time_seconds",
        Kind::Gauge,
        "When this bbstored started, in Unix time.",
        unix(m.started),
    );
    e.single(
        "bbstored_connections_accepted_total",
        Kind::Counter,
        "TCP connections accepted on the ListenAddresses.",
        get(&m.connections_accepted),
    );
    e.single(
        "bbstored_connections_active",
        Kind::Gauge,
        "Connections being served now (TLS handshake or session).",
        server.sessions.running(),
    );
    e.family(
        "bbstored_sessions_total",
        Kind::Counter,
        "Connections ended, by how they ended.",
    );
    for r in SessionResult::ALL {
        e.sample(&[("result", r.label())], m.sessions(r));
    }
    e.family(
        "bbstored_errors_total",
        Kind::Counter,
        "Errors, by kind: protocol, network, tls, certificate, housekeeping, internal.",
    );
    for k in ErrorKind::ALL {
        e.sample(&[("kind", k.label())], get(&m.errors[k as usize]));
    }
    e.single(
        "bbstored_received_bytes_total",
        Kind::Counter,
        "Bytes received from clients on the network, TLS included.",
        get(&m.network_bytes_in),
    );
    e.single(
        "bbstored_sent_bytes_total",
        Kind::Counter,
        "Bytes sent to clients on the network, TLS included.",
        get(&m.network_bytes_out),
    );
    e.single(
        "bbstored_protocol_received_bytes_total",
        Kind::Counter,
        "Box Backup protocol bytes received (inside TLS), counted when a session ends.",
        get(&server.counters.bytes_in),
    );
    e.single(
        "bbstored_protocol_sent_bytes_total",
        Kind::Counter,
        "Box Backup protocol bytes sent (inside TLS), counted when a session ends.",
        get(&server.counters.bytes_out),
    );
    e.single(
        "bbstored_housekeeping_runs_total",
        Kind::Counter,
        "Housekeeping passes over all accounts completed.",
        get(&m.housekeeping_runs),
    );
    e.family(
        "bbstored_housekeeping_accounts_total",
        Kind::Counter,
        "Accounts housekept, by result (busy: a session held the lock).",
    );
    for r in HousekeepResult::ALL {
        e.sample(
            &[("result", r.label())],
            get(&m.housekeeping_accounts[r as usize]),
        );
    }
    e.single(
        "bbstored_housekeeping_last_run_timestamp_seconds",
        Kind::Gauge,
        "When the last housekeeping pass ended, in Unix time (0: none yet).",
        get(&m.housekeeping_last_end),
    );
    e.single(
        "bbstored_housekeeping_last_run_duration_seconds",
        Kind::Gauge,
        "How long the last housekeeping pass took.",
        get(&m.housekeeping_last_micros) as f64 / 1e6,
    );

    let accounts: Vec<(u32, u32)> = server
        .store
        .accounts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .collect();
    let infos: Vec<(String, StoreInfo, u64)> = accounts
        .iter()
        .filter_map(|&(a, set)| {
            account_info(server, a, set).map(|(i, bs)| (format!("0x{a:08x}"), i, bs))
        })
        .collect();
    e.single(
        "bbstored_accounts",
        Kind::Gauge,
        "Accounts in accounts.txt.",
        accounts.len(),
    );
    type Field = fn(&StoreInfo) -> i64;
    let per_account: [(&str, &str, Field); 12] = [
        (
            "bbstored_account_blocks_used",
            "Blocks used by the account.",
            |i| i.blocks_used,
        ),
        (
            "bbstored_account_blocks_soft_limit",
            "The account's soft limit in blocks.",
            |i| i.blocks_soft_limit,
        ),
        (
            "bbstored_account_blocks_hard_limit",
            "The account's hard limit in blocks.",
            |i| i.blocks_hard_limit,
        ),
        (
            "bbstored_account_blocks_current",
            "Blocks in current files.",
            |i| i.blocks_in_current_files,
        ),
        (
            "bbstored_account_blocks_old",
            "Blocks in old versions of files.",
            |i| i.blocks_in_old_files,
        ),
        (
            "bbstored_account_blocks_deleted",
            "Blocks in deleted files.",
            |i| i.blocks_in_deleted_files,
        ),
        (
            "bbstored_account_blocks_directories",
            "Blocks in directories.",
            |i| i.blocks_in_directories,
        ),
        ("bbstored_account_files_current", "Current files.", |i| {
            i.num_current_files
        }),
        (
            "bbstored_account_files_old",
            "Old versions of files.",
            |i| i.num_old_files,
        ),
        ("bbstored_account_files_deleted", "Deleted files.", |i| {
            i.num_deleted_files
        }),
        ("bbstored_account_directories", "Directories.", |i| {
            i.num_directories
        }),
        (
            "bbstored_account_enabled",
            "1 if the account may log in.",
            |i| i64::from(i.account_enabled),
        ),
    ];
    for (name, help, f) in per_account {
        e.family(name, Kind::Gauge, help);
        for (label, info, _) in &infos {
            e.sample(&[("account", label)], f(info));
        }
    }
    e.family(
        "bbstored_account_block_size_bytes",
        Kind::Gauge,
        "Block size of the account's disc set (blocks times this is bytes).",
    );
    for (label, _, bs) in &infos {
        e.sample(&[("account", label)], *bs);
    }
    e.finish()
}
