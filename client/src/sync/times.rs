//! The two time-stamp files 0.13's bbackupd keeps in its DataDirectory, for
//! the tools that read them: `last_sync_start` and `last_sync_finish`.
//!
//! Owns their names, their form and when a run records them. Must not know
//! who reads them (bbackupquery's `compare`, monitoring scripts).
//!
//! What 0.13 does (checked by running the real 0.13 bbackupd in snapshot mode
//! with `bbackupctl sync-and-wait` and looking into its DataDirectory): both
//! files are empty, mode 0600, opened `O_WRONLY|O_CREAT|O_TRUNC` to "touch"
//! them; only their mtimes carry anything. `last_sync_start` is touched when
//! a run begins (before connecting), `last_sync_finish` when it ends. The
//! only other files there are the inode map (`mnt_…`, replaced here by
//! [`super::STATE_FILE`]) and what the configuration puts there (PidFile,
//! CommandSocket, StoreObjectInfoFile). 0.13's bbackupquery `compare` takes
//! the mtime of `last_sync_start` less `MinimumFileAge` as the time after
//! which a changed local file may rightly differ from the store (files newer
//! than that were not yet due for upload); without the file it warns
//! "Failed to determine the time of the last synchronisation -- checks not
//! performed.".
//!
//! bbackupd's loop (`crate::daemon`) touches them as 0.13 does, around every
//! run, through [`touch_sync_time`]. The library's [`super::run_in_data_dir`]
//! differs on purpose (and the two should become one rule):
//! 0.13 touches both files after *every* run,
//! even one that failed before reaching the store (seen: the store down, the
//! run fails with "Connection refused", both mtimes move). Compare would then
//! count from a run that uploaded nothing and call differences "probably due
//! to file modifications after the last upload" that are really files never
//! uploaded. We record a run only when it completed ([`super::run`] returned
//! `Ok`, per-file errors allowed): callers call [`record_sync_times`] then,
//! with the time the run started. [`super::run_in_data_dir`] does it.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use bb_format::BoxTime;

use crate::localfs;

/// Touched with the start time of the last completed run.
pub const LAST_SYNC_START: &str = "last_sync_start";
/// Touched with the end time of the last completed run.
pub const LAST_SYNC_FINISH: &str = "last_sync_finish";

/// Records a completed run that started at `start` and ended at `finish`
/// (box_time) in `data_dir`, as 0.13 does: empty files, mode 0600, the
/// times as their mtimes. The start file is written first, so a reader that
/// sees a new finish time also sees the matching start.
pub fn record_sync_times(data_dir: &Path, start: BoxTime, finish: BoxTime) -> io::Result<()> {
    touch_sync_time(&data_dir.join(LAST_SYNC_START), start)?;
    touch_sync_time(&data_dir.join(LAST_SYNC_FINISH), finish)
}

/// Writes one of the two timestamp files as 0.13 does: empty, mode 0600,
/// mtime `t`. bbackupd's loop touches them around each run with this too.
pub fn touch_sync_time(path: &Path, t: BoxTime) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    localfs::set_mtime(path, t)
}

/// When the last recorded run started (the mtime of `last_sync_start`, which
/// 0.13's bbackupd writes too); `None` if there is no such file.
pub fn last_sync_start(data_dir: &Path) -> Option<BoxTime> {
    fs::metadata(data_dir.join(LAST_SYNC_START))
        .ok()
        .map(|md| localfs::mtime_of(&md))
}

/// When the last recorded run finished.
pub fn last_sync_finish(data_dir: &Path) -> Option<BoxTime> {
    fs::metadata(data_dir.join(LAST_SYNC_FINISH))
        .ok()
        .map(|md| localfs::mtime_of(&md))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn records_empty_0600_files_with_the_times() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(last_sync_start(d.path()), None);
        // An old file with content is truncated, as 0.13's O_TRUNC does.
        fs::write(d.path().join(LAST_SYNC_START), b"junk").unwrap();
        let (s, f) = (1_700_000_000_123_456, 1_700_000_005_654_321);
        record_sync_times(d.path(), s, f).unwrap();
        assert_eq!(last_sync_start(d.path()), Some(s));
        assert_eq!(last_sync_finish(d.path()), Some(f));
        for name in [LAST_SYNC_START, LAST_SYNC_FINISH] {
            let md = fs::metadata(d.path().join(name)).unwrap();
            assert_eq!(md.len(), 0, "{name}");
            if name == LAST_SYNC_FINISH {
                assert_eq!(md.permissions().mode() & 0o777, 0o600);
            }
        }
    }
}
