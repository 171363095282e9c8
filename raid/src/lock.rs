//! Exclusive locks on Linux, where 0.13's `O_EXLOCK` does not exist (store.md §11.7).
//!
//! Owns: taking an exclusive `flock` on a path so that the lock really belongs to the
//! file now at that path. Two kinds are used by the RaidFile layer:
//!
//! * the *name lock*: `flock` on `<name>.rfwX`, held by a writer for its whole life
//!   (0.13 writers take the same lock, so they exclude each other with ours), and by
//!   delete, rebuild and raidify while they change a name's files;
//! * the *write-file lock*: `flock` on `<name>.rfw`, held while a transform turns it
//!   into components and by a committing writer before it renames over an older
//!   `.rfw`, so a transform never unlinks a `.rfw` newer than the one it read.
//!
//! Lock order: name lock, then write-file lock. Nobody waits for a name lock while
//! holding a write-file lock, so there is no cycle.
//!
//! A lock file that is released by unlinking it may be unlinked between another
//! process's `open` and its `flock`; that process then holds a lock on a file nobody
//! can find. So after locking we check that the path still names the locked inode and
//! start over if not (the usual lock-file dance).

use std::io;
use std::path::{Path, PathBuf};

use crate::fs::{Fs, FsFile, OpenMode};

/// A held lock (also used by bb-store for the account's `write.lock`); the file stays open (and locked) until this is dropped.
#[derive(Debug)]
pub struct Locked {
    pub(crate) file: Box<dyn FsFile>,
    pub(crate) path: PathBuf,
}

/// Locks `path`, creating it if `create`. Returns `Ok(None)` when it is busy (and
/// `blocking` is false) or, without `create`, when it does not exist.
pub fn lock_path(
    fs: &dyn Fs,
    path: &Path,
    create: bool,
    blocking: bool,
) -> io::Result<Option<Locked>> {
    // Bounded: every retry means another holder released by unlinking in between.
    for _ in 0..1000 {
        let mode = if create {
            OpenMode::CreateRw
        } else {
            OpenMode::Read
        };
        let file = match fs.open(path, mode) {
            Ok(f) => f,
            Err(e) if !create && e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if blocking {
            file.lock()?;
        } else if !file.try_lock()? {
            return Ok(None);
        }
        let held = file.stat()?;
        match fs.stat(path) {
            Ok(now) if now.dev == held.dev && now.ino == held.ino => {
                return Ok(Some(Locked {
                    file,
                    path: path.to_path_buf(),
                }));
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if create {
                    continue;
                }
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{}: lock kept moving",
        path.display()
    )))
}

impl Locked {
    /// The locked path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True if `path` still names the locked file.
    pub fn still_at(&self, fs: &dyn Fs, path: &Path) -> io::Result<bool> {
        let held = self.file.stat()?;
        match fs.stat(path) {
            Ok(now) => Ok(now.dev == held.dev && now.ino == held.ino),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Releases a pure lock file: unlink while still holding it, then close.
    pub fn release_unlink(self, fs: &dyn Fs) -> io::Result<()> {
        if self.still_at(fs, &self.path)? {
            match fs.remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        drop(self.file);
        Ok(())
    }
}
