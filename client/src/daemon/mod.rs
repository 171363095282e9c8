//! bbackupd as a library: the loop that decides when to sync, and everything
//! around a run that 0.13's BackupDaemon does.
//!
//! **Modes.** Lazy (`AutomaticBackup = yes`): a run every
//! `UpdateStoreInterval` (plus up to 1/64 of it at random, as 0.13 does, so
//! that many clients do not hit the server in step), the first one at start.
//! Snapshot (`AutomaticBackup = no`): a run only when bbackupctl says `sync`
//! or `force-sync`. In both, a failed run is retried after `BackupErrorDelay`
//! (0.13's key, default 100 s) — in snapshot mode too, as 0.13 does.
//!
//! **A run** ([`Daemon::run_once`]): touch `last_sync_start`, tell bbackupctl
//! `start-sync`, NotifyScript `backup-start`, state Connected, the sync itself
//! (the [`Runner`]: a fresh connection, the engine, SyncState saved), then
//! `backup-error` / `read-error` / `store-full` / `backup-ok`, the statistics
//! line, `backup-finish`, `finish-sync`, `last_sync_finish`. The run is
//! skipped (and asked again later) when SyncAllowScript says so, unless
//! bbackupctl forced it.
//!
//! **Signals and commands.** SIGTERM/SIGINT and `terminate` set the stop flag
//! the engine watches: it finishes its current step, the state is saved, the
//! connection says Finished. SIGHUP and `reload` re-read the configuration
//! between runs (0.13 abandons a running sync to reload and then syncs at once
//! in lazy mode; we let the run finish and keep the schedule).
//!
//! **State across restarts.** Ours lives in DataDirectory ([`Runner`]).
//! `StoreObjectInfoFile` is accepted; we do not write 0.13's archive there, but
//! delete one that 0.13 left at the start of each run (as 0.13 itself does), so
//! that going back to 0.13 later never resumes from stale state.
//!
//! Must not know: how a sync works (the engine's), the configuration syntax
//! (config's), the wire protocol (bb-remote's).

pub mod command;
pub mod extlog;
pub mod logging;
pub mod options;
pub mod progress;
pub mod runner;
pub mod scripts;
pub mod setup;
pub mod status;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use command::{CommandSocket, Request, State, Summary};
use scripts::{Notifier, Notify};
use status::{DaemonState, StatusBoard};

/// What the loop needs of the configuration (taken from bbackupd.conf by the
/// [`Runner`]; tests make their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// For the scripts' argument and the reload.
    pub config_path: PathBuf,
    pub automatic_backup: bool,
    pub update_store_interval: Duration,
    pub minimum_file_age: Duration,
    pub max_upload_wait: Duration,
    /// `BackupErrorDelay` (0.13 key; default [`DEFAULT_BACKUP_ERROR_DELAY`]).
    pub backup_error_delay: Duration,
    pub notify_script: Option<String>,
    /// `NotifyAlways`: repeat the same event to the script.
    pub notify_always: bool,
    pub sync_allow_script: Option<String>,
    pub command_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub data_directory: PathBuf,
    pub store_object_info_file: Option<PathBuf>,
    /// Ours: where the status goes (`StatusFile`; none: not written).
    pub status_file: Option<PathBuf>,
    /// Ours: `MetricsListenAddress` (daemon mode only).
    pub metrics_listen_address: Option<std::net::SocketAddr>,
}

/// 0.13's `BackupErrorDelay` default [C]: after a failed run at 00:06:39 it
/// logged "next one starting at 00:08:19".
pub const DEFAULT_BACKUP_ERROR_DELAY: Duration = Duration::from_secs(100);

/// How long SyncAllowScript may take to say something (0.13: 30 s).
pub const SYNC_ALLOW_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished run reports (for the statistics line and the scripts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub files_uploaded: u64,
    /// Encoded bytes sent.
    pub bytes_uploaded: u64,
    pub dirs_created: u64,
    pub deleted: u64,
    pub moved: u64,
    /// Local files or directories that could not be read.
    pub read_errors: u64,
    /// The store refused an upload for lack of space.
    pub store_full: bool,
    /// Files seen changed but held back (MinimumFileAge / MaxUploadWait).
    pub pending_files: u64,
}

/// Why a run did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The store is not the one we backed up to (swapped, rolled back): the
    /// engine touched nothing.
    #[error("the store has changed: {0}")]
    StoreChanged(String),
    /// Stopped by SIGTERM / `terminate`.
    #[error("stopped")]
    Stopped,
    /// Anything else: connection, store error, local state.
    #[error("{0}")]
    Failed(String),
}

/// One sync run, and the configuration behind it.
pub trait Runner {
    /// The current settings.
    fn settings(&self) -> Settings;
    /// Reads the configuration file again. On error the old one stays.
    fn reload(&mut self) -> Result<(), String>;
    /// Connects, syncs every location, saves the sync state, disconnects.
    /// `max_rate` (bytes/s) overrides MaxUploadRate for this run.
    fn sync(&mut self, max_rate: Option<u64>, stop: &AtomicBool) -> Result<RunReport, RunError>;
    /// Where to count a run's progress as it goes (for the status file);
    /// runners that cannot tell ignore it.
    fn watch(&mut self, _progress: Arc<status::RunProgress>) {}
}

/// See the module header.
pub struct Daemon<R: Runner> {
    runner: R,
    settings: Settings,
    socket: Option<CommandSocket>,
    requests: Receiver<Request>,
    tx: Sender<Request>,
    stop: Arc<AtomicBool>,
    notifier: Notifier,
    status: Arc<StatusBoard>,
}

impl<R: Runner> std::fmt::Debug for Daemon<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("settings", &self.settings)
            .finish()
    }
}

/// The longest single wait; the loop looks at its schedule at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

fn summary(s: &Settings) -> Summary {
    Summary {
        automatic_backup: s.automatic_backup,
        update_store_interval: s.update_store_interval.as_secs(),
        minimum_file_age: s.minimum_file_age.as_secs(),
        max_upload_wait: s.max_upload_wait.as_secs(),
    }
}

/// Up to 1/64 of `interval`, at random (0.13's
/// SYNC_PERIOD_RANDOM_EXTRA_TIME_SHIFT_BY).
fn jitter(interval: Duration) -> Duration {
    let span = interval.as_micros() as u64 / 64;
    if span == 0 {
        return Duration::ZERO;
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos() as u64;
    // splitmix64: a spread of values from a weak seed is all we need.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Duration::from_micros((z ^ (z >> 31)) % span)
}

/// Writes the timestamp file `name` (`last_sync_start` / `last_sync_finish`)
/// with the current time, through the sync module's one writer of them.
fn touch(dir: &Path, name: &str) {
    let p = dir.join(name);
    if let Err(e) = crate::sync::touch_sync_time(&p, crate::sync::now_box_time()) {
        error!("Failed to write to timestamp file: {}: {e}", p.display());
    }
}

/// `at` on the wall clock, in Unix seconds (for the status).
fn wall(at: Instant) -> f64 {
    let now = Instant::now();
    let now_wall = status::unix(std::time::SystemTime::now());
    if at >= now {
        now_wall + (at - now).as_secs_f64()
    } else {
        now_wall - (now - at).as_secs_f64()
    }
}

/// How a wait ended.
enum Woken {
    Timeout,
    Sync {
        force: bool,
    },
    /// Reload or terminate: look at the flags again.
    Other,
}

impl<R: Runner> Daemon<R> {
    /// A daemon over `runner`; the command socket is opened by [`Daemon::listen`].
    pub fn new(mut runner: R) -> Daemon<R> {
        let (tx, requests) = mpsc::channel();
        let settings = runner.settings();
        let status = Arc::new(StatusBoard::new(
            settings.status_file.clone(),
            settings.automatic_backup,
        ));
        runner.watch(status.progress());
        Daemon {
            settings,
            status,
            runner,
            socket: None,
            requests,
            tx,
            stop: Arc::new(AtomicBool::new(false)),
            notifier: Notifier::default(),
        }
    }

    /// Where signal handlers send their requests.
    pub fn requests(&self) -> Sender<Request> {
        self.tx.clone()
    }

    /// The flag that stops a running sync and the loop.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The status (file, metrics) this daemon keeps.
    pub fn status(&self) -> Arc<StatusBoard> {
        self.status.clone()
    }

    /// Opens the CommandSocket if one is configured.
    pub fn listen(&mut self) -> std::io::Result<()> {
        self.socket = None;
        if let Some(path) = &self.settings.command_socket {
            let s = CommandSocket::listen(
                path,
                summary(&self.settings),
                self.tx.clone(),
                self.stop.clone(),
            )
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            self.socket = Some(s);
        }
        Ok(())
    }

    fn set_state(&self, s: State) {
        if let Some(c) = &self.socket {
            c.set_state(s);
        }
    }

    fn broadcast(&self, line: &str) {
        if let Some(c) = &self.socket {
            c.broadcast(line);
        }
    }

    fn notify(&mut self, e: Notify) {
        self.notifier.notify(
            e,
            self.settings.notify_script.as_deref(),
            self.settings.notify_always,
            &self.settings.config_path,
        );
    }

    fn reload(&mut self) {
        info!(
            "Reloading configuration file: {}",
            self.settings.config_path.display()
        );
        match self.runner.reload() {
            Ok(()) => {
                let new = self.runner.settings();
                if new.command_socket != self.settings.command_socket {
                    warn!("CommandSocket changed: takes effect at the next start");
                }
                self.settings = Settings {
                    command_socket: self.settings.command_socket.clone(),
                    pid_file: self.settings.pid_file.clone(),
                    status_file: self.settings.status_file.clone(),
                    metrics_listen_address: self.settings.metrics_listen_address,
                    ..new
                };
                if let Some(c) = &self.socket {
                    c.set_summary(summary(&self.settings));
                }
            }
            Err(e) => error!("reload refused, old configuration kept: {e}"),
        }
    }

    /// Waits up to `d` for a request.
    fn wait(&mut self, d: Duration, reload: &mut bool) -> Woken {
        match self.requests.recv_timeout(d) {
            Ok(Request::Sync { force }) => Woken::Sync { force },
            Ok(Request::Reload) => {
                *reload = true;
                Woken::Other
            }
            Ok(Request::Terminate) => {
                self.stop.store(true, Ordering::SeqCst);
                Woken::Other
            }
            Err(RecvTimeoutError::Timeout) => Woken::Timeout,
            // We hold a sender ourselves; this cannot happen, but stopping is the
            // safe answer.
            Err(RecvTimeoutError::Disconnected) => {
                self.stop.store(true, Ordering::SeqCst);
                Woken::Other
            }
        }
    }

    /// The daemon loop, until stopped. See the module header.
    pub fn run(&mut self) {
        let mut next_sync = Instant::now();
        let mut retry_after_error = false;
        let mut reload = false;
        self.set_state(State::Idle);
        loop {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            if std::mem::take(&mut reload) {
                self.reload();
            }
            let auto = self.settings.automatic_backup;
            let now = Instant::now();
            let mut delay = next_sync.saturating_duration_since(now);
            if retry_after_error {
                debug!("Last backup was not successful, next one in {delay:?}");
            } else if auto {
                debug!("Automatic backups are enabled, next one in {delay:?}");
            } else {
                debug!("No automatic backups, waiting for bbackupctl snapshot command");
                delay = MAX_SLEEP;
            }
            self.status.between_runs(
                if retry_after_error {
                    DaemonState::Error
                } else {
                    DaemonState::Idle
                },
                (retry_after_error || auto).then(|| wall(next_sync)),
                auto,
            );
            let mut asked: Option<bool> = None;
            if !delay.is_zero() {
                match self.wait(delay.min(MAX_SLEEP), &mut reload) {
                    Woken::Timeout => {}
                    Woken::Sync { force } => asked = Some(force),
                    Woken::Other => continue,
                }
            }
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let forced = asked == Some(true);
            if asked.is_some() {
                debug!("Starting a backup immediately due to bbackupctl sync command");
            } else if Instant::now() < next_sync {
                continue;
            } else if retry_after_error {
                debug!("Last backup was not successful, next one starting now");
            } else if !auto {
                continue;
            } else {
                debug!("Automatic backups are enabled, next one starting now");
            }
            let mut max_rate = None;
            if forced {
                debug!("Skipping SyncAllowScript due to bbackupctl force-sync command");
            } else {
                let a = scripts::sync_allowed(
                    self.settings.sync_allow_script.as_deref(),
                    &self.settings.config_path,
                    SYNC_ALLOW_TIMEOUT,
                );
                if let Some(w) = a.wait {
                    next_sync = Instant::now() + w;
                    self.status
                        .between_runs(DaemonState::Waiting, Some(wall(next_sync)), auto);
                    info!(
                        "Impending backup stopped by SyncAllowScript, next attempt in {} seconds",
                        w.as_secs()
                    );
                    continue;
                }
                max_rate = a.max_rate;
            }
            let started = Instant::now();
            match self.run_once(max_rate) {
                Ok(_) => {
                    retry_after_error = false;
                    let i = self.settings.update_store_interval;
                    next_sync = started + i + jitter(i);
                }
                Err(RunError::Stopped) => {}
                Err(_) => {
                    retry_after_error = true;
                    next_sync = Instant::now()
                        + self.settings.backup_error_delay
                        + jitter(self.settings.update_store_interval);
                }
            }
        }
        self.status.stopped();
        info!("Terminating daemon");
    }

    /// One run with everything around it (see the module header).
    pub fn run_once(&mut self, max_rate: Option<u64>) -> Result<RunReport, RunError> {
        let data = self.settings.data_directory.clone();
        touch(&data, crate::sync::LAST_SYNC_START);
        self.broadcast("start-sync");
        self.notify(Notify::BackupStart);
        self.set_state(State::Connected);
        info!("Beginning scan of local files");
        if let Some(f) = &self.settings.store_object_info_file {
            match std::fs::remove_file(f) {
                Ok(()) => info!(
                    "Removed 0.13's StoreObjectInfoFile {} (our state is in DataDirectory)",
                    f.display()
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!("Failed to delete StoreObjectInfoFile {}: {e}", f.display()),
            }
        }
        self.status.run_started();
        let (done, ticks) = mpsc::channel::<()>();
        let board = self.status.clone();
        let r = std::thread::scope(|s| {
            // The file follows the run's progress; the ticker ends with it.
            s.spawn(move || {
                while let Err(RecvTimeoutError::Timeout) =
                    ticks.recv_timeout(status::PROGRESS_INTERVAL)
                {
                    board.write();
                }
            });
            let r = self.runner.sync(max_rate, &self.stop);
            drop(done);
            r
        });
        self.status.run_finished(&r);
        let report = r.as_ref().cloned().unwrap_or_default();
        let end_state = match &r {
            Ok(rep) => {
                if rep.read_errors > 0 {
                    self.notify(Notify::ReadError);
                }
                if rep.store_full {
                    self.notify(Notify::StoreFull);
                } else if rep.read_errors == 0 {
                    self.notify(Notify::BackupOk);
                }
                if rep.store_full {
                    State::StorageLimitExceeded
                } else {
                    State::Idle
                }
            }
            Err(RunError::Stopped) => {
                info!("Backup run stopped by a shutdown request");
                State::Idle
            }
            Err(e @ RunError::StoreChanged(_)) => {
                error!(
                    "Backup run refused: {e}. Nothing on the store was changed; check the configuration (StoreHostname, AccountNumber) or remove the sync state in DataDirectory to back up to this store anew"
                );
                self.notify(Notify::BackupError);
                State::Error
            }
            Err(e) => {
                error!("Exception caught ({e}), reset state and waiting to retry...");
                self.notify(Notify::BackupError);
                State::Error
            }
        };
        info!("Finished scan of local files");
        info!(
            "File statistics: total file size uploaded {}, {} files uploaded, {} dirs created, {} deleted, {} moved, {} read errors",
            report.bytes_uploaded,
            report.files_uploaded,
            report.dirs_created,
            report.deleted,
            report.moved,
            report.read_errors
        );
        self.notify(Notify::BackupFinish);
        self.broadcast("finish-sync");
        touch(&data, crate::sync::LAST_SYNC_FINISH);
        self.set_state(end_state);
        r
    }
}

/// Writes the PidFile; removes it when dropped.
#[derive(Debug)]
pub struct PidFile(PathBuf);

impl PidFile {
    pub fn create(path: &Path) -> std::io::Result<PidFile> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// 0.13 forks into the background unless -F/-D. Forking a process that may
/// hold threads is unsound, so we start ourselves again with -F in a new
/// process group and return (bbstored does the same). With `keep_console`
/// (-k) the child keeps our stdout/stderr.
pub fn detach(keep_console: bool) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let exe = std::env::current_exe()?;
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    args.insert(0, "-F".into());
    let mut cmd = std::process::Command::new(exe);
    cmd.args(&args)
        .env(logging::DETACHED_ENV, "1")
        .stdin(Stdio::null())
        .process_group(0);
    if !keep_console {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    cmd.spawn()?;
    Ok(())
}

/// Exit statuses of `bbackupd --once` (fixed by the client design).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const CONFIG: u8 = 2;
    pub const STORE_CHANGED: u8 = 3;
}

/// The exit status for the outcome of a `--once` run.
pub fn once_status(r: &Result<RunReport, RunError>) -> u8 {
    match r {
        Ok(_) => exit::OK,
        Err(RunError::StoreChanged(_)) => exit::STORE_CHANGED,
        Err(_) => exit::FAILED,
    }
}

#[cfg(test)]
mod tests;

/// The daemon's work after the command line: PidFile, CommandSocket, signals
/// (SIGHUP reload, SIGTERM/SIGINT stop), the loop until stopped.
pub fn serve<R: Runner>(runner: R) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut d = Daemon::new(runner);
    info!(
        "Starting daemon, version: {} (Rust)",
        env!("CARGO_PKG_VERSION")
    );
    info!(
        "Using configuration file: {}",
        d.settings.config_path.display()
    );
    let _pid = match &d.settings.pid_file {
        Some(p) => Some(PidFile::create(p)?),
        None => None,
    };
    d.listen()?;
    let metrics = match d.settings.metrics_listen_address {
        Some(addr) => Some(serve_metrics(addr, &d)?),
        None => None,
    };
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    let handle = signals.handle();
    let (tx, stop) = (d.requests(), d.stop_flag());
    let signal_thread = std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == SIGHUP {
                let _ = tx.send(Request::Reload);
            } else {
                stop.store(true, Ordering::SeqCst);
                let _ = tx.send(Request::Terminate);
                break;
            }
        }
    });
    // A Type=notify unit (contrib/systemd/bbackupd.service) waits for this:
    // the PidFile, the CommandSocket and the metrics port are all up.
    bb_console::systemd::notify("READY=1");
    d.run();
    bb_console::systemd::notify("STOPPING=1");
    handle.close();
    let _ = signal_thread.join();
    if let Some(t) = metrics {
        let _ = t.join();
    }
    // The socket goes before the PidFile: whoever waits for the PidFile to go
    // finds nothing left behind.
    drop(d);
    Ok(())
}

/// Binds `addr` and serves the daemon's status as Prometheus text on it
/// until the daemon stops. A non-loopback address is allowed (it can only be
/// an IP literal, so it was meant) but warned about: there is no
/// authentication.
pub fn serve_metrics<R: Runner>(
    addr: std::net::SocketAddr,
    d: &Daemon<R>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    if !addr.ip().is_loopback() {
        warn!(
            "MetricsListenAddress {addr} is not a loopback address: anyone who can reach it can \
             read the backup status without authentication"
        );
    }
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("MetricsListenAddress {addr}: {e}")))?;
    info!("Serving metrics on http://{addr}/metrics");
    let (board, stop) = (d.status(), d.stop_flag());
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            bb_proto::metrics::serve(
                l,
                bb_proto::metrics::ServeLimits::default(),
                move || stop.load(Ordering::SeqCst),
                move || board.render_metrics(),
            )
        })
}

/// `bbackupd --once`: one run in the foreground (no SyncAllowScript: asking
/// for one run is forcing it), SIGTERM/SIGINT stop it cleanly. Returns the
/// exit status ([`exit`]).
pub fn once<R: Runner>(runner: R) -> u8 {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut d = Daemon::new(runner);
    let stop = d.stop_flag();
    for sig in [SIGTERM, SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            warn!("cannot catch signal {sig}: {e}");
        }
    }
    let r = d.run_once(None);
    d.status.stopped();
    if let Err(e) = &r {
        eprintln!("bbackupd: {e}");
    }
    once_status(&r)
}
