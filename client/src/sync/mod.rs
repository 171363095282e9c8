//! The bbackupd engine: one sync run of the configured locations against an
//! open read/write store (`protocol.md` §4.2 "bbackupd, one sync run", §4.3,
//! §4.6; `formats.md` §2.5, §4.4–4.5, §5; `store.md` §10).
//!
//! Owns: the walk over local directories, the decisions 0.13's bbackupd makes
//! (what to upload, diff, move, re-attribute, delete; the sync window), the
//! inode map used to turn renames into MoveObject, the deletions queued to the
//! end of the run, the store-full mode, and the client state kept between runs
//! ([`SyncState`]) including the check that the store is still the one this
//! client backed up to (issue 5).
//!
//! Must not know: how the connection is made or kept (the caller passes a
//! `StoreWrite`; a [`bb_remote::Session`] reconnects), the config file syntax
//! (the caller builds [`SyncOptions`]), exclusion syntax ([`Filter`]), or what
//! happens with [`Event`]s (logs, NotifyScript: the daemon's business).
//!
//! # How a run goes
//!
//! 1. Ask the store for its usage (one round trip): marker, last object ID,
//!    blocks used and the hard limit.
//! 2. Check the store's identity against [`SyncState`] *before* anything is
//!    written: the client store marker, the location directories' IDs, that the
//!    store's last object ID has not gone below what this client saw, and that
//!    the newest file this client uploaded is still there. A mismatch is
//!    [`SyncError::StoreChanged`] and nothing is touched. On the first run the
//!    marker is set (as 0.13 does when it has no cached state).
//! 3. List the root (directories only), create missing location directories.
//! 4. Walk each location as 0.13's `BackupClientDirectoryRecord::SyncDirectory`
//!    does, listing every store directory (0.13 skips the listing when a local
//!    "state checksum" is unchanged; we always list, which makes the sync
//!    window's start irrelevant: see `engine.rs`).
//! 5. Perform the queued deletions (also when the store is full), then record
//!    the new inode map and identity in the state.
//!
//! The caller saves the state after every run, failed or not: a run leaves it
//! consistent (the inode map is only replaced after a successful run).

mod body;
mod engine;
mod state;
mod times;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bb_format::{BoxTime, Keys};
use bb_remote::StoreWrite;

pub use body::file_body;
pub use state::{STATE_FILE, SyncState};
pub use times::{
    LAST_SYNC_FINISH, LAST_SYNC_START, last_sync_finish, last_sync_start, record_sync_times,
    touch_sync_time,
};

/// What the engine asks of exclusions: the one trait, owned by
/// [`crate::exclude`] ([`crate::exclude::Excludes`] implements it; tests may
/// use closures through [`FnFilter`]). Re-exported so engine users need not
/// know where it lives.
pub use crate::exclude::Filter;

/// Excludes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFilter;

impl Filter for NoFilter {
    fn exclude_file(&self, _: &Path) -> bool {
        false
    }
    fn exclude_dir(&self, _: &Path) -> bool {
        false
    }
}

/// A filter made of two closures (files, directories).
pub struct FnFilter<F, D>(pub F, pub D);

impl<F, D> std::fmt::Debug for FnFilter<F, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnFilter")
    }
}

impl<F, D> Filter for FnFilter<F, D>
where
    F: Fn(&Path) -> bool + Send + Sync,
    D: Fn(&Path) -> bool + Send + Sync,
{
    fn exclude_file(&self, p: &Path) -> bool {
        (self.0)(p)
    }
    fn exclude_dir(&self, p: &Path) -> bool {
        (self.1)(p)
    }
}

/// One backup location: a directory in the store's root named `name`, holding
/// the tree under the local `path`.
#[derive(Clone)]
pub struct Location {
    pub name: String,
    pub path: PathBuf,
    pub filter: Arc<dyn Filter>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Location {
    /// A location without exclusions.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Location {
        Location {
            name: name.into(),
            path: path.into(),
            filter: Arc::new(NoFilter),
        }
    }
}

/// The settings of a run (bbackupd.conf's names in the docs).
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub locations: Vec<Location>,
    /// `MinimumFileAge`: files modified more recently wait for a later run.
    pub minimum_file_age: Duration,
    /// `MaxUploadWait`: a file that keeps changing is uploaded anyway after
    /// waiting this long.
    pub max_upload_wait: Duration,
    /// `MaxFileTimeInFuture`: a file whose mtime is further ahead than this is
    /// uploaded whatever the window says.
    pub max_file_time_in_future: Duration,
    /// `FileTrackingSizeThreshold`: files at least this big go in the inode map
    /// (renames of smaller files are uploads); directories always do.
    pub file_tracking_size_threshold: u64,
    /// `DiffingUploadSizeThreshold`: changed files at least this big are sent
    /// as a diff against the previous version.
    pub diffing_upload_size_threshold: u64,
    /// `MaximumDiffingTime`: per file; `None` means no limit.
    pub maximum_diffing_time: Option<Duration>,
    /// `MaxUploadRate` in bytes per second.
    pub max_upload_rate: Option<u64>,
    /// `DeleteRedundantLocationsAfter`: a directory in the store root that no
    /// configured location names is deleted this long after a run first found
    /// it; zero: never.
    pub delete_redundant_locations_after: Duration,
    /// The time of the run (box_time); `None`: the clock. For tests.
    pub now: Option<BoxTime>,
}

impl SyncOptions {
    /// `locations` with the values `bbackupd-config` writes (MinimumFileAge
    /// 6 h, MaxUploadWait 24 h, FileTrackingSizeThreshold 65536,
    /// DiffingUploadSizeThreshold 8192, MaximumDiffingTime 120 s) and 0.13's
    /// default MaxFileTimeInFuture (2 days).
    pub fn new(locations: Vec<Location>) -> SyncOptions {
        SyncOptions {
            locations,
            minimum_file_age: Duration::from_secs(21_600),
            max_upload_wait: Duration::from_secs(86_400),
            max_file_time_in_future: Duration::from_secs(172_800),
            file_tracking_size_threshold: 65_536,
            diffing_upload_size_threshold: 8192,
            maximum_diffing_time: Some(Duration::from_secs(120)),
            max_upload_rate: None,
            delete_redundant_locations_after: Duration::from_secs(172_800),
            now: None,
        }
    }
}

/// What happened during a run, for logs and NotifyScript. Paths are local.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A file or directory could not be read; it is skipped this run and the
    /// run's result says there were errors (0.13's "read errors").
    ReadError {
        path: PathBuf,
        error: String,
    },
    /// The store refused an upload or a directory for another reason than a
    /// full store; skipped this run.
    UploadError {
        path: PathBuf,
        error: String,
    },
    /// A file changed while it was read: what went up is a mix, and it is sent
    /// again on the next run.
    ChangedWhileReading {
        path: PathBuf,
    },
    /// The store is over its hard limit: nothing more is uploaded this run.
    StoreFull,
    /// A location directory was made in the store root.
    LocationCreated {
        name: String,
        id: i64,
    },
    /// A location's local directory cannot be read: it is left alone.
    LocationUnavailable {
        name: String,
        path: PathBuf,
        error: String,
    },
    FileUploaded {
        path: PathBuf,
        id: i64,
        /// Bytes sent (the encoded file or patch).
        bytes: u64,
        /// Sent as a diff against this object.
        diff_from: Option<i64>,
    },
    AttributesChanged {
        path: PathBuf,
    },
    DirectoryCreated {
        path: PathBuf,
        id: i64,
    },
    /// A rename found through the inode map: MoveObject instead of an upload.
    Moved {
        path: PathBuf,
        id: i64,
    },
    FileDeleted {
        dir: i64,
        path: PathBuf,
    },
    DirectoryDeleted {
        id: i64,
        path: PathBuf,
    },
    FileExcluded {
        path: PathBuf,
    },
    DirExcluded {
        path: PathBuf,
    },
    /// A directory on another filesystem is not entered.
    MountPointSkipped {
        path: PathBuf,
    },
    /// A device node (counted as an error, as 0.13 does). Sockets and FIFOs
    /// are skipped silently.
    UnsupportedFileType {
        path: PathBuf,
    },
    /// A file's mtime is further in the future than MaxFileTimeInFuture.
    FileModifiedInFuture {
        path: PathBuf,
    },
}

/// Where events go.
pub trait Events {
    fn event(&mut self, e: Event);
    /// After each local file looked at: how far the run is (for a progress
    /// display; most listeners ignore it).
    fn progress(&mut self, _p: &RunProgress) {}
}

/// How far a run is, counted since its start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunProgress {
    pub files_seen: u64,
    /// Local sizes of the files seen.
    pub bytes_seen: u64,
    pub files_uploaded: u64,
    /// Encoded bytes sent.
    pub bytes_uploaded: u64,
}

impl Events for Vec<Event> {
    fn event(&mut self, e: Event) {
        self.push(e);
    }
}

/// Drops every event.
#[derive(Debug, Default)]
pub struct NoEvents;

impl Events for NoEvents {
    fn event(&mut self, _: Event) {}
}

/// Counters of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub files_uploaded: u64,
    /// Encoded bytes sent in StoreFile streams.
    pub bytes_uploaded: u64,
    /// Uploads that went as a diff.
    pub diffs: u64,
    pub attributes_changed: u64,
    pub directories_created: u64,
    /// DeleteFile and DeleteDirectory sent.
    pub deleted: u64,
    /// MoveObject sent (renames).
    pub moved: u64,
    /// Read errors, refused uploads, unsupported files: the run "had errors".
    pub errors: u64,
    pub files_seen: u64,
    pub directories_seen: u64,
    /// The store was full during the run (at login, or an upload was refused).
    pub store_full: bool,
}

/// Why a run failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The store is not the one this client backed up to (swapped, rolled
    /// back, or written by another client): nothing was changed.
    #[error(
        "the store is not the one this client backed up to last time: {reason}; if this is intended, remove {} to start over",
        state_file.display()
    )]
    StoreChanged { reason: String, state_file: PathBuf },

    /// The store or the connection failed; the run stopped there.
    #[error(transparent)]
    Remote(#[from] bb_remote::Error),

    /// Bytes from the store did not decode.
    #[error("{what}: {source}")]
    Format {
        what: String,
        #[source]
        source: bb_format::Error,
    },

    /// The stop flag was raised; queued deletions were not done.
    #[error("the run was stopped")]
    Stopped,

    /// The state file could not be read or written.
    #[error("client state {}: {detail}", path.display())]
    State { path: PathBuf, detail: String },
}

/// One sync run over an open read/write store; see the module header.
pub fn run(
    store: &mut dyn StoreWrite,
    keys: &Keys,
    opts: &SyncOptions,
    state: &mut SyncState,
    events: &mut dyn Events,
    stop: &AtomicBool,
) -> Result<SyncReport, SyncError> {
    engine::run(store, keys, opts, state, events, stop)
}

/// One run as bbackupd makes it with its DataDirectory: the state is loaded
/// from `data_dir`, [`run`], the state saved (after a failed run too, as the
/// module header asks), and a completed run recorded in `last_sync_start` /
/// `last_sync_finish` for bbackupquery's `compare` ([`record_sync_times`]).
/// A failure to write those two files is logged, not a failed run (0.13
/// does the same).
pub fn run_in_data_dir(
    store: &mut dyn StoreWrite,
    keys: &Keys,
    opts: &SyncOptions,
    data_dir: &Path,
    events: &mut dyn Events,
    stop: &AtomicBool,
) -> Result<SyncReport, SyncError> {
    let start = opts.now.unwrap_or_else(now_box_time);
    let mut state = SyncState::load(data_dir)?;
    let result = run(store, keys, opts, &mut state, events, stop);
    let saved = state.save(data_dir);
    let report = result?;
    saved?;
    let finish = now_box_time().max(start);
    if let Err(e) = record_sync_times(data_dir, start, finish) {
        tracing::error!(
            "failed to record the sync times in {}: {e}",
            data_dir.display()
        );
    }
    Ok(report)
}

/// The current time as box_time.
pub(crate) fn now_box_time() -> BoxTime {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    crate::localfs::box_time(d.as_secs() as i64, i64::from(d.subsec_nanos()))
}
