//! The real [`Runner`]: per run a fresh [`Session`] (so a server that was
//! restarted since the last run is simply connected to again), the engine over
//! it, the [`SyncState`] loaded from and saved to DataDirectory around it, and
//! the engine's events turned into log lines and the counts the scripts need.
//!
//! Must not know: the configuration syntax; a [`Setup`] is made from it by the
//! caller (and again at every reload, through the `load` function).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bb_format::Keys;
use bb_remote::{Session, StoreWrite};
use tracing::{debug, info, warn};

use super::extlog::Logged;
use super::progress::BackupProgress;
use super::status::RunProgress as StatusCounts;
use super::{RunError, RunReport, Runner, Settings};
use crate::sync::{self, Event, Events, SyncError, SyncOptions, SyncState};

/// Everything a run needs, made from bbackupd.conf.
#[derive(Debug, Clone)]
pub struct Setup {
    pub settings: Settings,
    pub remote: bb_remote::Config,
    pub keys: Keys,
    pub options: SyncOptions,
    /// ExtendedLogging: every protocol command in the log.
    pub extended_logging: bool,
    /// ExtendedLogFile: where those lines go (else the main log).
    pub extended_log_file: Option<PathBuf>,
    /// LogAllFileAccess: every file looked at, uploaded, skipped.
    pub log_all_file_access: bool,
}

type Loader = Box<dyn Fn(&Path) -> Result<Setup, String> + Send>;

/// See the module header.
pub struct SyncRunner {
    setup: Setup,
    load: Loader,
    /// The status file's live counts, when the daemon watches runs.
    status: Option<Arc<StatusCounts>>,
    /// The terminal for a progress line (a run by hand), if any.
    progress: Option<bb_console::Term>,
}

impl std::fmt::Debug for SyncRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncRunner")
            .field("settings", &self.setup.settings)
            .finish()
    }
}

impl SyncRunner {
    /// Loads `config` with `load` (used again at every reload).
    pub fn new(
        config: &Path,
        load: impl Fn(&Path) -> Result<Setup, String> + Send + 'static,
    ) -> Result<SyncRunner, String> {
        let setup = load(config)?;
        Ok(SyncRunner {
            setup,
            load: Box::new(load),
            status: None,
            progress: None,
        })
    }

    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    /// Draw each run's progress on `term` (see [`super::progress`]).
    pub fn set_progress(&mut self, term: Option<bb_console::Term>) {
        self.progress = term;
    }
}

/// Logs the engine's events (0.13's wording where it has one) and counts what
/// the daemon reports.
#[derive(Debug, Default)]
struct Logger {
    /// The status file's live counts.
    status: Option<Arc<StatusCounts>>,
    log_all: bool,
    read_errors: u64,
    store_full: bool,
    progress: Option<BackupProgress>,
}

impl Events for Logger {
    fn progress(&mut self, p: &sync::RunProgress) {
        if let Some(b) = &mut self.progress {
            b.show(p);
        }
    }

    fn event(&mut self, e: Event) {
        if let Some(p) = &self.status {
            p.count(&e);
        }
        let all = self.log_all;
        match e {
            Event::ReadError { path, error } => {
                self.read_errors += 1;
                warn!("Error reading file: {}: {error}", path.display());
            }
            Event::UploadError { path, error } => {
                warn!("Failed to upload file: {}: {error}", path.display())
            }
            Event::ChangedWhileReading { path } => {
                warn!(
                    "File changed while it was read, sent again next time: {}",
                    path.display()
                )
            }
            Event::StoreFull => {
                self.store_full = true;
                warn!("Exceeded storage limits on server -- not uploading changes to files");
            }
            Event::LocationCreated { name, id } => {
                info!("Created location {name} on the store (ID {id:#x})")
            }
            Event::LocationUnavailable { name, path, error } => warn!(
                "Location {name}: cannot read {}: {error}; left alone",
                path.display()
            ),
            Event::FileUploaded {
                path,
                id,
                bytes,
                diff_from,
            } if all => match diff_from {
                Some(d) => info!(
                    "Uploaded patch to file: {} (ID {id:#x}, from {d:#x}): uploaded size = {bytes}",
                    path.display()
                ),
                None => info!(
                    "Uploaded file: {} (ID {id:#x}): uploaded size = {bytes}",
                    path.display()
                ),
            },
            Event::AttributesChanged { path } if all => {
                info!("Uploading new file attributes: {}", path.display())
            }
            Event::DirectoryCreated { path, id } if all => {
                info!("Created directory: {} (ID {id:#x})", path.display())
            }
            Event::Moved { path, id } if all => {
                info!("Moved on the store: {} (ID {id:#x})", path.display())
            }
            Event::FileDeleted { path, .. } if all => {
                info!("Deleted file: {}", path.display())
            }
            Event::DirectoryDeleted { path, id } if all => {
                info!("Deleted directory: {} (ID {id:#x})", path.display())
            }
            Event::FileExcluded { path } if all => {
                debug!("Skipping excluded file: {}", path.display())
            }
            Event::DirExcluded { path } if all => {
                debug!("Skipping excluded directory: {}", path.display())
            }
            Event::MountPointSkipped { path } => warn!(
                "Ignored directory: {}: is a mount point; create a new location if you want to back it up",
                path.display()
            ),
            Event::UnsupportedFileType { path } => {
                warn!("Ignoring file of unknown type: {}", path.display())
            }
            Event::FileModifiedInFuture { path } => warn!(
                "Some files have modification times excessively in the future. Check clock synchronisation. Example file: {}",
                path.display()
            ),
            other => debug!("{other:?}"),
        }
    }
}

/// The engine's error as the daemon sees it.
fn run_error(e: SyncError) -> RunError {
    match e {
        SyncError::StoreChanged { .. } => RunError::StoreChanged(e.to_string()),
        SyncError::Stopped => RunError::Stopped,
        other => RunError::Failed(other.to_string()),
    }
}

fn state_dir(s: &Settings) -> PathBuf {
    s.data_directory.clone()
}

impl Runner for SyncRunner {
    fn settings(&self) -> Settings {
        self.setup.settings.clone()
    }

    fn reload(&mut self) -> Result<(), String> {
        self.setup = (self.load)(&self.setup.settings.config_path)?;
        Ok(())
    }

    fn sync(&mut self, max_rate: Option<u64>, stop: &AtomicBool) -> Result<RunReport, RunError> {
        let setup = &self.setup;
        let dir = state_dir(&setup.settings);
        // Held for the whole run: a second bbackupd (a `--once` beside the
        // daemon, or two daemons on one config) would otherwise work from the
        // same state and overwrite each other's.
        let _lock = lock_data_directory(&dir)?;
        let mut state = SyncState::load(&dir).map_err(run_error)?;
        let mut opts = setup.options.clone();
        if max_rate.is_some() {
            opts.max_upload_rate = max_rate;
        }
        info!("Opening connection to server '{}'...", setup.remote.host);
        let mut session =
            Session::open(setup.remote.clone()).map_err(|e| RunError::Failed(e.to_string()))?;
        let mut events = Logger {
            status: self.status.clone(),
            log_all: setup.log_all_file_access,
            progress: self
                .progress
                .clone()
                .map(|t| BackupProgress::start(Some(t), &setup.options.locations)),
            ..Logger::default()
        };
        let r = {
            let mut logged;
            let store: &mut dyn StoreWrite = if setup.extended_logging {
                logged = Logged {
                    inner: &mut session,
                };
                &mut logged
            } else {
                &mut session
            };
            sync::run(store, &setup.keys, &opts, &mut state, &mut events, stop)
        };
        if let Some(p) = &mut events.progress {
            p.finish();
        }
        // The engine leaves the state consistent after any run (its contract);
        // a store that changed is the exception: nothing was learnt from it.
        if !matches!(r, Err(SyncError::StoreChanged { .. }))
            && let Err(e) = state.save(&dir)
        {
            warn!("{e}");
            if r.is_ok() {
                let _ = session.finish();
                return Err(run_error(e));
            }
        }
        if let Err(e) = session.finish() {
            debug!("closing the connection: {e}");
        }
        let rep = r.map_err(run_error)?;
        Ok(RunReport {
            files_uploaded: rep.files_uploaded,
            bytes_uploaded: rep.bytes_uploaded,
            dirs_created: rep.directories_created,
            deleted: rep.deleted,
            moved: rep.moved,
            read_errors: rep.errors.max(events.read_errors),
            store_full: rep.store_full || events.store_full,
            pending_files: state.pending.len() as u64,
        })
    }

    fn watch(&mut self, status: Arc<StatusCounts>) {
        self.status = Some(status);
    }
}

/// The lock file in DataDirectory that one run at a time holds.
pub const RUN_LOCK: &str = "bb-sync.lock";

/// Takes the run lock of `dir` (an exclusive `flock`, released when the file
/// is closed, also when the process dies), or says who holds it.
fn lock_data_directory(dir: &Path) -> Result<std::fs::File, RunError> {
    let path = dir.join(RUN_LOCK);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| RunError::Failed(format!("{}: {e}", path.display())))?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(RunError::Failed(format!(
            "another bbackupd is backing up with the data directory {} (it holds {RUN_LOCK}); \
             not starting a second run beside it",
            dir.display()
        ))),
        Err(e) => Err(RunError::Failed(format!("locking {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn one_run_at_a_time_per_data_directory() {
        let d = tempfile::tempdir().unwrap();
        let first = lock_data_directory(d.path()).unwrap();
        match lock_data_directory(d.path()) {
            Err(RunError::Failed(m)) => assert!(m.contains("another bbackupd"), "{m}"),
            other => panic!("second lock: {other:?}"),
        }
        drop(first);
        lock_data_directory(d.path()).unwrap();
    }
}
