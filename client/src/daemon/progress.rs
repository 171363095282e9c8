//! The progress line of a backup run by hand (`bbackupd --once` on a
//! terminal): files and bytes looked at, files and bytes sent, the rate, and
//! the time left once the total is known.
//!
//! The engine scans and uploads directory by directory, as 0.13 does, so it
//! never knows the whole size. A counting walk of the locations (with their
//! excludes, same filesystem only, like the engine's) runs beside it on its own
//! thread and gives the totals when it is done; until then the line has no
//! time left. The walk only stats: on a first backup it finishes long before
//! the uploads do, and on later runs the page cache it warms is the engine's.
//!
//! Must not know the terminal drawing (bb-console's) or the engine's insides
//! (it sees [`RunProgress`] only).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bb_console::{Counts, Progress, Term};

use crate::sync::{Location, RunProgress};

/// See the module header. Dropping it stops the counting walk.
#[derive(Debug)]
pub struct BackupProgress {
    line: Progress,
    totals: Arc<Mutex<Option<(u64, u64)>>>,
    stop: Arc<AtomicBool>,
}

impl BackupProgress {
    /// Starts the counting walk over `locations` (only if `term` is some).
    pub fn start(term: Option<Term>, locations: &[Location]) -> BackupProgress {
        let totals = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        if term.is_some() {
            let locs: Vec<Location> = locations.to_vec();
            let (t, s) = (totals.clone(), stop.clone());
            let _ = std::thread::Builder::new()
                .name("count".into())
                .spawn(move || {
                    let mut n = (0, 0);
                    for l in &locs {
                        if let Ok(md) = std::fs::symlink_metadata(&l.path) {
                            count(l, &l.path, md.dev(), &mut n, &s);
                        }
                    }
                    if !s.load(Ordering::Relaxed) {
                        *t.lock().unwrap_or_else(|p| p.into_inner()) = Some(n);
                    }
                });
        }
        BackupProgress {
            line: Progress::new(term),
            totals,
            stop,
        }
    }

    pub fn show(&mut self, p: &RunProgress) {
        if !self.line.is_on() {
            return;
        }
        let totals = *self.totals.lock().unwrap_or_else(|p| p.into_inner());
        self.line.update(&Counts {
            verb: "Backing up",
            noun: "files",
            items: p.files_seen,
            items_total: totals.map(|t| t.0.max(p.files_seen)),
            bytes: p.bytes_seen,
            bytes_total: totals.map(|t| t.1.max(p.bytes_seen)),
            fraction: None,
            sent: Some((p.files_uploaded, p.bytes_uploaded)),
        });
    }

    pub fn finish(&mut self) {
        self.line.finish();
    }
}

impl Drop for BackupProgress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Files and bytes under `dir`, as the engine would see them.
fn count(loc: &Location, dir: &Path, dev: u64, n: &mut (u64, u64), stop: &AtomicBool) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for ent in rd.flatten() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let p = ent.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let ft = md.file_type();
        if ft.is_dir() {
            if md.dev() == dev && !loc.filter.exclude_dir(&p) {
                count(loc, &p, dev, n, stop);
            }
        } else if (ft.is_file() || ft.is_symlink()) && !loc.filter.exclude_file(&p) {
            n.0 += 1;
            n.1 += md.len();
        }
    }
}
