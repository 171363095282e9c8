//! Operations on names and directories of a disc set: existence, size, revision,
//! delete, directories and listings across discs (store.md §6.4, §6.6, §6.7).
//!
//! Must not know: file contents (only `size` opens the file, to cross-check the
//! components like a reader does).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use tracing::debug;

use crate::discset::{Component, DiscSet, EXT_COMPONENT, EXT_WRITE, check_name};
use crate::error::{Error, Result};
use crate::lock::lock_path;
use crate::read::RaidRead;
use crate::write::{parent, remove_if_exists, sync_dir};

/// How a name is stored on the discs, judged from which files exist (0.13's
/// `RaidFileUtil::RaidFileExists`; the contents are not examined).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existence {
    NoFile,
    /// A `.rfw` write file.
    NonRaid,
    /// All three components.
    AsRaid,
    /// Two of three components: readable in degraded mode.
    AsRaidWithMissingReadable,
    /// One component only.
    AsRaidWithMissingNotRecoverable,
}

/// What to list in a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// RaidFile names (files ending in `.rf` or `.rfw`, extension removed).
    Files,
    /// Subdirectories.
    Dirs,
}

/// A directory listing across all discs of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Sorted names.
    pub names: Vec<String>,
    /// False when some file has too few components on the discs to be read.
    pub all_readable: bool,
}

fn stat_opt(discs: &DiscSet, p: &Path) -> Result<Option<crate::fs::Meta>> {
    match discs.fs().stat(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("stat", p, e)),
    }
}

impl DiscSet {
    /// Which representation of `name` exists.
    pub fn existence(&self, name: &str) -> Result<Existence> {
        Ok(self.existence_and_revision(name)?.0)
    }

    fn existence_and_revision(&self, name: &str) -> Result<(Existence, i64)> {
        check_name(name)?;
        if let Some(m) = stat_opt(self, &self.write_path(name))? {
            // 0.13 on Linux: mtime plus size, as mtimes were coarse when it was written.
            return Ok((Existence::NonRaid, m.mtime_us + m.len as i64));
        }
        if !self.is_raid() {
            return Ok((Existence::NoFile, 0));
        }
        let (mut count, mut newest, mut sizes) = (0, 0i64, 0i64);
        for c in Component::ALL {
            if let Some(m) = stat_opt(self, &self.component_path(name, c))? {
                count += 1;
                newest = newest.max(m.mtime_us);
                sizes += m.len as i64;
            }
        }
        let e = match count {
            3 => Existence::AsRaid,
            2 => Existence::AsRaidWithMissingReadable,
            1 => Existence::AsRaidWithMissingNotRecoverable,
            _ => Existence::NoFile,
        };
        Ok((e, newest + sizes))
    }

    /// True if any representation of `name` exists.
    pub fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.existence(name)? != Existence::NoFile)
    }

    /// A revision ID for cache validation (store.md §6.7), `None` if no file exists.
    /// It changes when the file is rewritten, and may change when it is transformed.
    pub fn revision(&self, name: &str) -> Result<Option<i64>> {
        let (e, rev) = self.existence_and_revision(name)?;
        Ok((e != Existence::NoFile).then_some(rev))
    }

    /// The file's size in bytes (opens it, so damaged components are noticed).
    pub fn size(&self, name: &str) -> Result<u64> {
        Ok(RaidRead::open(self, name)?.size())
    }

    /// Opens `name` for reading.
    pub fn open(&self, name: &str) -> Result<RaidRead> {
        RaidRead::open(self, name)
    }

    /// Deletes every representation of `name` (the `.rfw` and the `.rf` on each disc),
    /// waiting for any writer, transform or rebuild of the name to finish first.
    /// `NotFound` if nothing was there.
    ///
    /// Not atomic: a crash in the middle may leave some components, which then read as
    /// damaged or (with two left) as the old content; whoever deletes (housekeeping)
    /// deletes again. Components go first so that a crash can never leave the old
    /// components readable without the newer `.rfw` that superseded them.
    pub fn delete(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let fs = self.fs().clone();
        let temp = self.write_temp_path(name);
        let name_lock = lock_path(&*fs, &temp, true, true)
            .map_err(|e| Error::io("lock", &temp, e))?
            .ok_or_else(|| Error::Locked { name: name.into() })?;
        let wpath = self.write_path(name);
        let result = (|| {
            let wlock =
                lock_path(&*fs, &wpath, false, true).map_err(|e| Error::io("lock", &wpath, e))?;
            let mut removed = false;
            if self.is_raid() {
                for d in 0..self.dirs().len() {
                    let mut s = std::ffi::OsString::from(name);
                    s.push(EXT_COMPONENT);
                    let p = self.disc_dir(d).join(s);
                    removed |= remove_if_exists(&*fs, &p)?;
                }
            }
            removed |= remove_if_exists(&*fs, &wpath)?;
            drop(wlock);
            if !removed {
                return Err(Error::NotFound { name: name.into() });
            }
            for d in 0..self.dirs().len() {
                let p = self.disc_dir(d).join(name);
                sync_dir(&*fs, parent(&p))?;
            }
            debug!(set = self.number(), name, "raidfile deleted");
            Ok(())
        })();
        name_lock
            .release_unlink(&*fs)
            .map_err(|e| Error::io("unlock", &temp, e))?;
        result
    }

    /// True if the directory exists on every disc; false if on none; an error if on
    /// some only, or if a file stands in its place.
    pub fn dir_exists(&self, dir: &str) -> Result<bool> {
        check_name(dir)?;
        let mut n = 0;
        for d in self.dirs() {
            let p = d.join(dir);
            match stat_opt(self, &p)? {
                Some(m) if m.is_dir => n += 1,
                Some(_) => {
                    return Err(Error::Directory {
                        dir: dir.into(),
                        detail: format!("{} is not a directory", p.display()),
                    });
                }
                None => {}
            }
        }
        if n == 0 {
            Ok(false)
        } else if n == self.dirs().len() {
            Ok(true)
        } else {
            Err(Error::Directory {
                dir: dir.into(),
                detail: format!("exists on {n} of {} discs", self.dirs().len()),
            })
        }
    }

    /// Creates `dir` on every disc (mode 0777 before umask). With `recursive`, missing
    /// parents are created too and existing ones are fine; without, the directory must
    /// not exist anywhere yet.
    pub fn create_dir(&self, dir: &str, recursive: bool) -> Result<()> {
        check_name(dir)?;
        let fs = self.fs().clone();
        if recursive {
            let mut acc = String::new();
            for part in dir.split('/') {
                if !acc.is_empty() {
                    acc.push('/');
                }
                acc.push_str(part);
                if !self.dir_exists(&acc)? {
                    self.create_dir(&acc, false)?;
                }
            }
            return Ok(());
        }
        for d in self.dirs() {
            let p = d.join(dir);
            fs.create_dir(&p).map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    Error::Directory {
                        dir: dir.into(),
                        detail: format!("{} already exists", p.display()),
                    }
                } else {
                    Error::io("mkdir", &p, e)
                }
            })?;
            sync_dir(&*fs, parent(&p))?;
        }
        Ok(())
    }

    /// Lists `dir` across all discs (0.13's `ReadDirectoryContents`): the union of the
    /// discs' entries; a file counts once per component and a `.rfw` as present on
    /// every disc.
    pub fn list_dir(&self, dir: &str, kind: ListKind) -> Result<Listing> {
        let fs = self.fs().clone();
        let ndiscs = self.dirs().len();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for d in self.dirs() {
            let p = if dir.is_empty() {
                d.clone()
            } else {
                d.join(dir)
            };
            let entries = fs
                .read_dir(&p)
                .map_err(|e| Error::io("read directory", &p, e))?;
            for e in entries {
                let Some(n) = e.name.to_str() else { continue };
                match kind {
                    ListKind::Files if e.is_file => {
                        if let Some(base) = n.strip_suffix(EXT_WRITE) {
                            *counts.entry(base.into()).or_default() += ndiscs;
                        } else if let Some(base) = n.strip_suffix(EXT_COMPONENT) {
                            *counts.entry(base.into()).or_default() += 1;
                        }
                    }
                    ListKind::Dirs if e.is_dir => *counts.entry(n.into()).or_default() += 1,
                    _ => {}
                }
            }
        }
        let all_readable = counts.values().all(|&c| c + 1 >= ndiscs);
        Ok(Listing {
            names: counts.into_keys().collect(),
            all_readable,
        })
    }
}
