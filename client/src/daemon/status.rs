//! bbackupd's status for people and machines: a JSON file next to the other
//! state ([`StatusDoc`], written at every change of state and every
//! [`PROGRESS_INTERVAL`] during a run), the same facts as Prometheus text
//! ([`StatusBoard::render_metrics`]), and the human form `bbackupctl status`
//! prints ([`StatusDoc::human`]).
//!
//! The file is replaced atomically (written beside, then renamed), so a reader
//! never sees half of it. Readers must ignore fields they do not know; a
//! change that breaks readers bumps `format`. The format: docs/operations.md.
//!
//! Must not know: how a run works. The daemon loop tells the board what
//! happens; the runner's event logger feeds [`RunProgress`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::{RunError, RunReport};
use crate::sync::Event;

/// How often the file is rewritten while a run goes on.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// The `format` this code writes.
pub const FORMAT: u32 = 1;

/// What the daemon is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DaemonState {
    /// Between runs; the last one did not fail.
    Idle,
    /// A run is going on.
    Syncing,
    /// A run is due but SyncAllowScript said "not yet".
    Waiting,
    /// The last run failed; the next try is at `next_sync`.
    Error,
    /// No daemon runs (it terminated, or this was `bbackupd --once`).
    Stopped,
}

impl DaemonState {
    pub const ALL: [DaemonState; 5] = [
        DaemonState::Idle,
        DaemonState::Syncing,
        DaemonState::Waiting,
        DaemonState::Error,
        DaemonState::Stopped,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DaemonState::Idle => "idle",
            DaemonState::Syncing => "syncing",
            DaemonState::Waiting => "waiting",
            DaemonState::Error => "error",
            DaemonState::Stopped => "stopped",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncResult {
    /// Completed (there may have been read errors: see `read_errors`).
    Ok,
    /// Completed, but the store refused uploads for lack of space.
    StoreFull,
    /// The store is not the one backed up to before; nothing was changed.
    StoreChanged,
    /// Stopped by SIGTERM or `terminate`.
    Stopped,
    /// Failed (connection, store error, local state): see `error`.
    Error,
}

impl SyncResult {
    pub const ALL: [SyncResult; 5] = [
        SyncResult::Ok,
        SyncResult::StoreFull,
        SyncResult::StoreChanged,
        SyncResult::Stopped,
        SyncResult::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SyncResult::Ok => "ok",
            SyncResult::StoreFull => "store_full",
            SyncResult::StoreChanged => "store_changed",
            SyncResult::Stopped => "stopped",
            SyncResult::Error => "error",
        }
    }

    fn of(r: &Result<RunReport, RunError>) -> SyncResult {
        match r {
            Ok(rep) if rep.store_full => SyncResult::StoreFull,
            Ok(_) => SyncResult::Ok,
            Err(RunError::StoreChanged(_)) => SyncResult::StoreChanged,
            Err(RunError::Stopped) => SyncResult::Stopped,
            Err(RunError::Failed(_)) => SyncResult::Error,
        }
    }
}

/// The last finished run. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastSync {
    pub start: f64,
    pub end: f64,
    pub result: SyncResult,
    /// The error message for `error` and `store_changed`.
    #[serde(default)]
    pub error: Option<String>,
    pub files_uploaded: u64,
    /// Encoded bytes sent (files and patches).
    pub bytes_uploaded: u64,
    pub directories_created: u64,
    pub deleted: u64,
    pub moved: u64,
    pub read_errors: u64,
}

/// The run going on, so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentSync {
    pub start: f64,
    pub files_uploaded: u64,
    pub bytes_uploaded: u64,
    pub directories_created: u64,
}

/// Counts since this daemon started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Finished runs by result label.
    pub syncs: std::collections::BTreeMap<String, u64>,
    pub files_uploaded: u64,
    pub bytes_uploaded: u64,
}

/// The status file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusDoc {
    pub format: u32,
    pub pid: u32,
    pub version: String,
    /// When this daemon started (Unix seconds).
    pub started: f64,
    /// When this document was written.
    pub updated: f64,
    pub automatic_backup: bool,
    pub state: DaemonState,
    #[serde(default)]
    pub last_sync: Option<LastSync>,
    #[serde(default)]
    pub current_sync: Option<CurrentSync>,
    /// Files seen changed but held back by MinimumFileAge / MaxUploadWait
    /// after the last run (what the daemon knows of work still to do; the
    /// size of changes made since is only known by the next scan).
    #[serde(default)]
    pub pending_files: Option<u64>,
    /// When the next run is due (none in snapshot mode unless retrying).
    #[serde(default)]
    pub next_sync: Option<f64>,
    #[serde(default)]
    pub totals: Totals,
}

pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The upper bound of a status file we read (it is a few hundred bytes).
const MAX_FILE: u64 = 1 << 20;

impl StatusDoc {
    /// Reads a status file.
    pub fn load(path: &Path) -> Result<StatusDoc, String> {
        use std::io::Read;
        let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut text = String::new();
        f.take(MAX_FILE)
            .read_to_string(&mut text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// What `bbackupctl status` prints; `fmt` writes a Unix time.
    pub fn human(&self, fmt: &dyn Fn(f64) -> String) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "bbackupd {} (pid {}), status written {}",
            self.version,
            self.pid,
            fmt(self.updated)
        );
        let _ = writeln!(o, "  state:        {}", self.state.label());
        if let Some(c) = &self.current_sync {
            let _ = writeln!(
                o,
                "  this sync:    started {}; so far {} files, {} bytes uploaded, {} directories created",
                fmt(c.start),
                c.files_uploaded,
                c.bytes_uploaded,
                c.directories_created
            );
        }
        match &self.last_sync {
            Some(l) => {
                let _ = writeln!(
                    o,
                    "  last sync:    {} to {} ({:.1} s)",
                    fmt(l.start),
                    fmt(l.end),
                    (l.end - l.start).max(0.0)
                );
                let _ = match &l.error {
                    Some(e) => writeln!(o, "  last result:  {}: {e}", l.result.label()),
                    None => writeln!(o, "  last result:  {}", l.result.label()),
                };
                let _ = writeln!(
                    o,
                    "  uploaded:     {} files, {} bytes; {} directories created, {} deleted, {} moved, {} read errors",
                    l.files_uploaded,
                    l.bytes_uploaded,
                    l.directories_created,
                    l.deleted,
                    l.moved,
                    l.read_errors
                );
            }
            None => o.push_str("  last sync:    none yet\n"),
        }
        if let Some(p) = self.pending_files {
            let _ = writeln!(
                o,
                "  pending:      {p} files held back by MinimumFileAge / MaxUploadWait"
            );
        }
        let _ = match self.next_sync {
            Some(t) => writeln!(o, "  next sync:    {}", fmt(t)),
            None if self.state == DaemonState::Stopped => {
                writeln!(o, "  next sync:    none (the daemon is not running)")
            }
            None => writeln!(
                o,
                "  next sync:    when bbackupctl sync asks (snapshot mode)"
            ),
        };
        o
    }
}

/// Counts of the run going on, fed by the runner's event logger.
#[derive(Debug, Default)]
pub struct RunProgress {
    files_uploaded: AtomicU64,
    bytes_uploaded: AtomicU64,
    directories_created: AtomicU64,
}

impl RunProgress {
    /// Counts what an engine event adds.
    pub fn count(&self, e: &Event) {
        match e {
            Event::FileUploaded { bytes, .. } => {
                self.files_uploaded.fetch_add(1, Ordering::Relaxed);
                self.bytes_uploaded.fetch_add(*bytes, Ordering::Relaxed);
            }
            Event::DirectoryCreated { .. } => {
                self.directories_created.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    fn reset(&self) {
        for a in [
            &self.files_uploaded,
            &self.bytes_uploaded,
            &self.directories_created,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }
}

/// The daemon's status, shared by the loop, the progress ticker and the
/// metrics listener; writes the file on every change.
#[derive(Debug)]
pub struct StatusBoard {
    path: Option<PathBuf>,
    doc: Mutex<StatusDoc>,
    progress: Arc<RunProgress>,
    warned: AtomicBool,
}

impl StatusBoard {
    /// A board writing to `path` (none: keep it in memory only). The last
    /// run recorded there by an earlier daemon is kept.
    pub fn new(path: Option<PathBuf>, automatic_backup: bool) -> StatusBoard {
        let now = unix(SystemTime::now());
        let last_sync = path
            .as_deref()
            .and_then(|p| StatusDoc::load(p).ok())
            .and_then(|d| d.last_sync);
        StatusBoard {
            path,
            doc: Mutex::new(StatusDoc {
                format: FORMAT,
                pid: std::process::id(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                started: now,
                updated: now,
                automatic_backup,
                state: DaemonState::Idle,
                last_sync,
                current_sync: None,
                pending_files: None,
                next_sync: None,
                totals: Totals::default(),
            }),
            progress: Arc::new(RunProgress::default()),
            warned: AtomicBool::new(false),
        }
    }

    pub fn progress(&self) -> Arc<RunProgress> {
        self.progress.clone()
    }

    /// The status now, live counts included.
    pub fn snapshot(&self) -> StatusDoc {
        let mut d = self.doc.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(c) = &mut d.current_sync {
            let p = &self.progress;
            c.files_uploaded = p.files_uploaded.load(Ordering::Relaxed);
            c.bytes_uploaded = p.bytes_uploaded.load(Ordering::Relaxed);
            c.directories_created = p.directories_created.load(Ordering::Relaxed);
        }
        d
    }

    /// Changes the status with `f` and writes the file.
    pub fn update(&self, f: impl FnOnce(&mut StatusDoc)) {
        f(&mut self.doc.lock().unwrap_or_else(|p| p.into_inner()));
        self.write();
    }

    /// Writes the file (also what the progress ticker calls).
    pub fn write(&self) {
        let Some(path) = &self.path else { return };
        let mut d = self.snapshot();
        d.updated = unix(SystemTime::now());
        let r = serde_json::to_vec_pretty(&d)
            .map_err(std::io::Error::other)
            .and_then(|mut bytes| {
                bytes.push(b'\n');
                let tmp = path.with_extension("json.tmp");
                std::fs::write(&tmp, &bytes)?;
                std::fs::rename(&tmp, path)
            });
        match r {
            Ok(()) => {
                self.warned.store(false, Ordering::Relaxed);
            }
            // Once per streak of failures: a full disc must not flood the log.
            Err(e) if !self.warned.swap(true, Ordering::Relaxed) => {
                warn!("Failed to write the status file {}: {e}", path.display())
            }
            Err(e) => debug!("status file {}: {e}", path.display()),
        }
    }

    /// A run begins.
    pub fn run_started(&self) {
        self.progress.reset();
        self.update(|d| {
            d.state = DaemonState::Syncing;
            d.current_sync = Some(CurrentSync {
                start: unix(SystemTime::now()),
                files_uploaded: 0,
                bytes_uploaded: 0,
                directories_created: 0,
            });
        });
    }

    /// A run ended with `r`.
    pub fn run_finished(&self, r: &Result<RunReport, RunError>) {
        let end = unix(SystemTime::now());
        let result = SyncResult::of(r);
        let rep = r.as_ref().cloned().unwrap_or_default();
        // A failed run's counts are what the events saw before it failed.
        let p = &self.progress;
        let (files, bytes, dirs) = match r {
            Ok(_) => (rep.files_uploaded, rep.bytes_uploaded, rep.dirs_created),
            Err(_) => (
                p.files_uploaded.load(Ordering::Relaxed),
                p.bytes_uploaded.load(Ordering::Relaxed),
                p.directories_created.load(Ordering::Relaxed),
            ),
        };
        self.update(|d| {
            let start = d.current_sync.take().map_or(end, |c| c.start);
            d.last_sync = Some(LastSync {
                start,
                end,
                result,
                error: r.as_ref().err().map(|e| e.to_string()),
                files_uploaded: files,
                bytes_uploaded: bytes,
                directories_created: dirs,
                deleted: rep.deleted,
                moved: rep.moved,
                read_errors: rep.read_errors,
            });
            if let Ok(rep) = r {
                d.pending_files = Some(rep.pending_files);
            }
            *d.totals
                .syncs
                .entry(result.label().to_string())
                .or_default() += 1;
            d.totals.files_uploaded += files;
            d.totals.bytes_uploaded += bytes;
            d.state = match result {
                SyncResult::Ok | SyncResult::StoreFull | SyncResult::Stopped => DaemonState::Idle,
                SyncResult::StoreChanged | SyncResult::Error => DaemonState::Error,
            };
        });
    }

    /// Between runs: `state` until `next` (Unix time; none = on request).
    pub fn between_runs(&self, state: DaemonState, next: Option<f64>, automatic: bool) {
        let changed = {
            let d = self.doc.lock().unwrap_or_else(|p| p.into_inner());
            d.state != state || d.next_sync != next || d.automatic_backup != automatic
        };
        if changed {
            self.update(|d| {
                d.state = state;
                d.next_sync = next;
                d.automatic_backup = automatic;
            });
        }
    }

    /// The daemon (or `--once`) ends.
    pub fn stopped(&self) {
        self.update(|d| {
            d.state = DaemonState::Stopped;
            d.next_sync = None;
            d.current_sync = None;
        });
    }

    /// The same facts as Prometheus text (series: docs/operations.md).
    pub fn render_metrics(&self) -> String {
        use bb_proto::metrics::{Exposition, Kind};
        let d = self.snapshot();
        let mut e = Exposition::new();
        e.single(
            "bbackupd_start_time_seconds",
            Kind::Gauge,
            "When this bbackupd started, in Unix time.",
            d.started,
        );
        e.family(
            "bbackupd_state",
            Kind::Gauge,
            "1 for the state the daemon is in: idle, syncing, waiting, error, stopped.",
        );
        for s in DaemonState::ALL {
            e.sample(&[("state", s.label())], d.state == s);
        }
        e.single(
            "bbackupd_automatic_backup",
            Kind::Gauge,
            "1 in lazy mode (AutomaticBackup = yes), 0 in snapshot mode.",
            d.automatic_backup,
        );
        let last = d.last_sync.as_ref();
        e.family(
            "bbackupd_last_sync_result",
            Kind::Gauge,
            "1 for how the last finished sync ended (all 0 before the first).",
        );
        for r in SyncResult::ALL {
            e.sample(
                &[("result", r.label())],
                last.is_some_and(|l| l.result == r),
            );
        }
        let lf = |f: fn(&LastSync) -> f64| last.map_or(0.0, f);
        for (name, help, f) in [
            (
                "bbackupd_last_sync_start_timestamp_seconds",
                "When the last finished sync started, Unix time (0: none yet).",
                (|l| l.start) as fn(&LastSync) -> f64,
            ),
            (
                "bbackupd_last_sync_end_timestamp_seconds",
                "When the last finished sync ended, Unix time (0: none yet).",
                |l| l.end,
            ),
            (
                "bbackupd_last_sync_duration_seconds",
                "How long the last finished sync took.",
                |l| (l.end - l.start).max(0.0),
            ),
        ] {
            e.single(name, Kind::Gauge, help, lf(f));
        }
        let lu = |f: fn(&LastSync) -> u64| last.map_or(0, f);
        for (name, help, f) in [
            (
                "bbackupd_last_sync_files_uploaded",
                "Files uploaded by the last finished sync.",
                (|l| l.files_uploaded) as fn(&LastSync) -> u64,
            ),
            (
                "bbackupd_last_sync_uploaded_bytes",
                "Encoded bytes uploaded by the last finished sync.",
                |l| l.bytes_uploaded,
            ),
            (
                "bbackupd_last_sync_read_errors",
                "Local files or directories the last finished sync could not read.",
                |l| l.read_errors,
            ),
        ] {
            e.single(name, Kind::Gauge, help, lu(f));
        }
        e.single(
            "bbackupd_pending_files",
            Kind::Gauge,
            "Files held back by MinimumFileAge / MaxUploadWait after the last sync.",
            d.pending_files.unwrap_or(0),
        );
        e.single(
            "bbackupd_next_sync_timestamp_seconds",
            Kind::Gauge,
            "When the next sync is due, Unix time (0: on request only).",
            d.next_sync.unwrap_or(0.0),
        );
        e.single(
            "bbackupd_syncing",
            Kind::Gauge,
            "1 while a sync runs.",
            d.current_sync.is_some(),
        );
        let cur = d.current_sync.as_ref();
        e.family(
            "bbackupd_syncs_total",
            Kind::Counter,
            "Finished syncs since the daemon started, by result.",
        );
        for r in SyncResult::ALL {
            e.sample(
                &[("result", r.label())],
                d.totals.syncs.get(r.label()).copied().unwrap_or(0),
            );
        }
        e.single(
            "bbackupd_files_uploaded_total",
            Kind::Counter,
            "Files uploaded since the daemon started (the running sync included).",
            d.totals.files_uploaded + cur.map_or(0, |c| c.files_uploaded),
        );
        e.single(
            "bbackupd_uploaded_bytes_total",
            Kind::Counter,
            "Encoded bytes uploaded since the daemon started (the running sync included).",
            d.totals.bytes_uploaded + cur.map_or(0, |c| c.bytes_uploaded),
        );
        e.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_and_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let b = StatusBoard::new(Some(path.clone()), true);
        b.between_runs(DaemonState::Idle, Some(1e9), true);
        assert_eq!(StatusDoc::load(&path).unwrap().state, DaemonState::Idle);
        b.run_started();
        b.progress().count(&Event::FileUploaded {
            path: "/x".into(),
            id: 9,
            bytes: 100,
            diff_from: None,
        });
        b.write();
        let d = StatusDoc::load(&path).unwrap();
        assert_eq!(d.state, DaemonState::Syncing);
        assert_eq!(d.current_sync.as_ref().unwrap().bytes_uploaded, 100);
        assert!(
            b.render_metrics()
                .contains("bbackupd_uploaded_bytes_total 100\n")
        );
        b.run_finished(&Ok(RunReport {
            files_uploaded: 1,
            bytes_uploaded: 100,
            pending_files: 2,
            ..RunReport::default()
        }));
        b.run_started();
        b.run_finished(&Err(RunError::Failed("connection refused".into())));
        let d = StatusDoc::load(&path).unwrap();
        assert_eq!(d.state, DaemonState::Error);
        let l = d.last_sync.as_ref().unwrap();
        assert_eq!(
            (l.result, l.error.as_deref()),
            (SyncResult::Error, Some("connection refused"))
        );
        assert_eq!(d.pending_files, Some(2));
        assert_eq!(d.totals.syncs.get("ok"), Some(&1));
        assert_eq!(d.totals.files_uploaded, 1);
        let text = d.human(&|t| format!("{t:.0}"));
        assert!(
            text.contains("last result:  error: connection refused"),
            "{text}"
        );
        assert!(text.contains("pending:      2 files"), "{text}");
        let m = b.render_metrics();
        assert!(m.contains("bbackupd_state{state=\"error\"} 1\n"), "{m}");
        assert!(
            m.contains("bbackupd_syncs_total{result=\"error\"} 1\n"),
            "{m}"
        );
        b.stopped();
        // A new daemon keeps the last run; unknown fields are ignored.
        let b2 = StatusBoard::new(Some(path.clone()), false);
        assert_eq!(b2.snapshot().last_sync, d.last_sync);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        v["future_field"] = serde_json::json!([1, 2]);
        std::fs::write(&path, v.to_string()).unwrap();
        assert_eq!(StatusDoc::load(&path).unwrap().state, DaemonState::Stopped);
        std::fs::write(&path, "{").unwrap();
        assert!(StatusDoc::load(&path).is_err());
    }
}
