//! Recovery: rebuilding lost components, the queue of files readers found degraded,
//! and the slow background checker that walks the whole disc set (the "recovery and
//! raidify daemons" 0.13 never had, store.md §11.4).
//!
//! Owns: `rebuild` (one name: transform a leftover `.rfw`, or regenerate the one lost
//! component from the other two and put it in place), `check_file` (read everything,
//! recompute the parity, compare), `RepairQueue`, and `Checker`, which repairs queued
//! names first and otherwise walks every file at a configured byte rate.
//!
//! Must not know: which files matter to the store. The store tells the checker where
//! to walk and which names must stay write files (0.13 edits `refcount.rdb.rfw` in
//! place, so it must never be transformed).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::buffer::BlockWriter;
use crate::discset::{Component, DiscSet, EXT_COMPONENT_REBUILD, EXT_WRITE_TEMP, check_name};
use crate::error::{Error, Result};
use crate::fs::OpenMode;
use crate::lock::lock_path;
use crate::ops::ListKind;
use crate::read::{Degraded, RaidRead, Representation};
use crate::write::{
    Source, parent, remove_if_exists, sync_dir, transform_locked, write_components,
};

/// Names that readers found degraded, oldest first, each at most once.
#[derive(Debug, Clone, Default)]
pub struct RepairQueue {
    inner: Arc<Mutex<(VecDeque<String>, HashSet<String>)>>,
}

impl RepairQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<String>, HashSet<String>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn push(&self, name: &str) {
        let mut q = self.lock();
        if q.1.insert(name.to_string()) {
            q.0.push_back(name.to_string());
        }
    }
    pub fn pop(&self) -> Option<String> {
        let mut q = self.lock();
        let n = q.0.pop_front()?;
        q.1.remove(&n);
        Some(n)
    }
    pub fn len(&self) -> usize {
        self.lock().0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn names(&self) -> Vec<String> {
        self.lock().0.iter().cloned().collect()
    }
}

/// What `rebuild` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuilt {
    /// All components present and consistent.
    Healthy,
    /// The lost component was regenerated.
    Component(Component),
    /// A leftover write file was transformed (raidify).
    Transformed,
    /// A writer or another repair holds the name; try later.
    Busy,
    /// Nothing of that name exists (deleted meanwhile).
    NotFound,
    /// Non-RAID set: nothing to rebuild.
    NonRaidSet,
}

struct ReaderSource<'a>(&'a mut RaidRead);

impl Source for ReaderSource<'_> {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.0.read_at(buf, offset)
    }
}

/// Repairs one name: transforms a leftover `.rfw`, or regenerates a missing,
/// truncated or unreadable component byte-identical from the other two.
pub fn rebuild(discs: &DiscSet, name: &str) -> Result<Rebuilt> {
    check_name(name)?;
    if !discs.is_raid() {
        return Ok(Rebuilt::NonRaidSet);
    }
    let fs = discs.fs().clone();
    let temp = discs.write_temp_path(name);
    let Some(name_lock) =
        lock_path(&*fs, &temp, true, false).map_err(|e| Error::io("lock", &temp, e))?
    else {
        return Ok(Rebuilt::Busy);
    };
    let result = rebuild_locked(discs, name);
    name_lock
        .release_unlink(&*fs)
        .map_err(|e| Error::io("unlock", &temp, e))?;
    result
}

fn rebuild_locked(discs: &DiscSet, name: &str) -> Result<Rebuilt> {
    let fs = discs.fs().clone();
    // With the name lock held no writer can commit; a `.rfw` here is either being
    // transformed right now by the writer that committed it (busy) or left over.
    let wpath = discs.write_path(name);
    match lock_path(&*fs, &wpath, false, false).map_err(|e| Error::io("lock", &wpath, e))? {
        Some(held) => {
            transform_locked(discs, name, held)?;
            return Ok(Rebuilt::Transformed);
        }
        None if fs.stat(&wpath).is_ok() => return Ok(Rebuilt::Busy),
        None => {}
    }
    let mut r = match RaidRead::open(discs, name) {
        Ok(r) => r,
        Err(Error::NotFound { .. }) => return Ok(Rebuilt::NotFound),
        Err(e) => return Err(e),
    };
    if r.representation() == Representation::WriteFile {
        return Ok(Rebuilt::Busy);
    }
    let Some(Degraded { component, .. }) = r.degraded() else {
        return Ok(Rebuilt::Healthy);
    };
    let tmp = discs.component_path_ext(name, component, EXT_COMPONENT_REBUILD);
    let dst = discs.component_path(name, component);
    remove_if_exists(&*fs, &tmp)?;
    let mut produce = || -> Result<()> {
        let f = fs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(|e| Error::io("create", &tmp, e))?;
        let mut w = BlockWriter::new(f, tmp.clone(), discs.buffering())?;
        let size = r.size();
        let mut ws: [Option<&mut BlockWriter>; 3] = [None, None, None];
        ws[component.index()] = Some(&mut w);
        write_components(&mut ReaderSource(&mut r), size, discs.block_size(), ws)?;
        w.finish()?;
        w.sync()?;
        drop(w);
        fs.rename(&tmp, &dst)
            .map_err(|e| Error::io("rename", &tmp, e))?;
        sync_dir(&*fs, parent(&dst))
    };
    if let Err(e) = produce() {
        let _ = fs.remove_file(&tmp);
        return Err(e);
    }
    // The proof: it opens whole now.
    let again = RaidRead::open(discs, name)?;
    if let Some(d) = again.degraded() {
        return Err(Error::Damaged {
            name: name.into(),
            detail: format!("still degraded after rebuilding {component:?}: {d:?}"),
        });
    }
    info!(
        set = discs.number(),
        name,
        ?component,
        "rebuilt RaidFile component"
    );
    Ok(Rebuilt::Component(component))
}

/// What a full check of one file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Everything read and the parity matches the stripes.
    Good,
    /// Something was wrong and has been repaired.
    Repaired(Rebuilt),
    /// The parity's bytes did not match the stripes; the parity was rewritten from them.
    ParityRewritten,
    /// A writer or repair holds the name.
    Busy,
    /// Gone (deleted meanwhile).
    NotFound,
    /// A write file left for later (not transformed: excluded, or a non-RAID set).
    WriteFile,
}

/// Reads all of `name`, recomputes its parity and compares; repairs what it can.
pub fn check_file(discs: &DiscSet, name: &str, raidify: bool) -> Result<Checked> {
    let mut r = match RaidRead::open(discs, name) {
        Ok(r) => r,
        Err(Error::NotFound { .. }) => return Ok(Checked::NotFound),
        Err(e) => return Err(e),
    };
    if r.representation() == Representation::WriteFile {
        if !raidify || !discs.is_raid() {
            return Ok(Checked::WriteFile);
        }
        drop(r);
        return match rebuild(discs, name)? {
            Rebuilt::Busy => Ok(Checked::Busy),
            Rebuilt::NotFound => Ok(Checked::NotFound),
            other => Ok(Checked::Repaired(other)),
        };
    }
    if !r.is_degraded() {
        // Regenerate the parity from the stripes and compare it with the one on disc.
        let mismatch = parity_differs(discs, name, &mut r)?;
        if !mismatch && !r.is_degraded() {
            return Ok(Checked::Good);
        }
        if mismatch && !r.is_degraded() {
            warn!(
                set = discs.number(),
                name, "parity does not match the stripes; rewriting it"
            );
            rewrite_parity(discs, name)?;
            return Ok(Checked::ParityRewritten);
        }
    }
    drop(r);
    match rebuild(discs, name)? {
        Rebuilt::Busy => Ok(Checked::Busy),
        Rebuilt::NotFound => Ok(Checked::NotFound),
        other => Ok(Checked::Repaired(other)),
    }
}

/// A write-only "file" that compares everything written to it with a reference file
/// (the parity on disc), so the check regenerates the parity through exactly the code
/// that wrote it, without writing anything.
#[derive(Debug)]
struct CompareFile {
    reference: Box<dyn crate::fs::FsFile>,
    written_len: std::sync::atomic::AtomicU64,
    mismatch: Arc<AtomicBool>,
}

impl crate::fs::FsFile for CompareFile {
    fn read_at(&self, _buf: &mut [u8], _offset: u64) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<usize> {
        let mut theirs = vec![0u8; buf.len()];
        let n = crate::fs::read_full_at(&*self.reference, &mut theirs, offset)?;
        if n != buf.len() || theirs != buf {
            self.mismatch.store(true, Ordering::Relaxed);
        }
        self.written_len
            .fetch_max(offset + buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.written_len.store(len, Ordering::Relaxed);
        Ok(())
    }
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn stat(&self) -> std::io::Result<crate::fs::Meta> {
        let mut m = self.reference.stat()?;
        m.len = self.written_len.load(Ordering::Relaxed);
        Ok(m)
    }
    fn try_lock(&self) -> std::io::Result<bool> {
        Ok(true)
    }
    fn lock(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// True if the parity on disc differs from the one the stripes give.
fn parity_differs(discs: &DiscSet, name: &str, r: &mut RaidRead) -> Result<bool> {
    let path = discs.component_path(name, Component::Parity);
    let reference = discs
        .fs()
        .open(&path, OpenMode::Read)
        .map_err(|e| Error::io("open", &path, e))?;
    let reference_len = reference
        .stat()
        .map_err(|e| Error::io("stat", &path, e))?
        .len;
    let mismatch = Arc::new(AtomicBool::new(false));
    let cmp = CompareFile {
        reference,
        written_len: Default::default(),
        mismatch: mismatch.clone(),
    };
    let mut w = BlockWriter::new(Box::new(cmp), path.clone(), discs.buffering())?;
    let size = r.size();
    write_components(
        &mut ReaderSource(r),
        size,
        discs.block_size(),
        [None, None, Some(&mut w)],
    )?;
    let len = w.finish()?;
    Ok(mismatch.load(Ordering::Relaxed) || len != reference_len)
}

/// Replaces the parity file with one regenerated from the stripes.
fn rewrite_parity(discs: &DiscSet, name: &str) -> Result<()> {
    let fs = discs.fs().clone();
    let temp = discs.write_temp_path(name);
    let Some(name_lock) =
        lock_path(&*fs, &temp, true, false).map_err(|e| Error::io("lock", &temp, e))?
    else {
        return Ok(());
    };
    let result = (|| {
        // Moving the parity aside turns the file into "parity missing", which the
        // rebuild path then regenerates from the stripes.
        let p = discs.component_path(name, Component::Parity);
        let aside = discs.unreadable_path(name, Component::Parity);
        if let Some(d) = aside.parent() {
            let _ = fs.create_dir(d);
        }
        fs.rename(&p, &aside)
            .map_err(|e| Error::io("rename", &p, e))?;
        rebuild_locked(discs, name).map(|_| ())
    })();
    name_lock
        .release_unlink(&*fs)
        .map_err(|e| Error::io("unlock", &temp, e))?;
    result
}

/// Settings of the background checker.
#[derive(Clone)]
pub struct CheckerConfig {
    /// Directories to walk (RaidFile names of directories, e.g. `"backup"`).
    pub roots: Vec<String>,
    /// Bytes of file data to check per second (the pace of the walk; queued repairs
    /// are not paced).
    pub bytes_per_second: u64,
    /// Transform write files found on a RAID set.
    pub raidify: bool,
    /// Names that must stay write files (never transformed).
    pub keep_as_write_file: Arc<dyn Fn(&str) -> bool + Send + Sync>,
}

impl std::fmt::Debug for CheckerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckerConfig")
            .field("roots", &self.roots)
            .field("bytes_per_second", &self.bytes_per_second)
            .field("raidify", &self.raidify)
            .finish_non_exhaustive()
    }
}

impl Default for CheckerConfig {
    fn default() -> Self {
        CheckerConfig {
            roots: vec![String::new()],
            bytes_per_second: 16 << 20,
            raidify: true,
            keep_as_write_file: Arc::new(|_| false),
        }
    }
}

/// One unit of the checker's work.
#[derive(Debug)]
pub struct Step {
    pub name: String,
    /// True when it came from the repair queue.
    pub queued: bool,
    pub result: Result<Checked>,
}

/// Walks every file of a disc set, repairing what it finds; queued names first.
#[derive(Debug)]
pub struct Checker {
    discs: DiscSet,
    config: CheckerConfig,
    dirs: Vec<String>,
    files: Vec<String>,
    started: Instant,
    bytes: u64,
    passes: u64,
}

impl Checker {
    pub fn new(discs: DiscSet, config: CheckerConfig) -> Checker {
        Checker {
            discs,
            dirs: Vec::new(),
            files: Vec::new(),
            config,
            started: Instant::now(),
            bytes: 0,
            passes: 0,
        }
    }

    /// Completed walks of the whole set.
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// Pulls the next name from the walk, refilling it from the roots when a pass
    /// ends. `None` when the set has no files at all.
    fn next_walk_name(&mut self) -> Result<Option<String>> {
        for _ in 0..2 {
            while self.files.is_empty() {
                let Some(dir) = self.dirs.pop() else { break };
                if !dir.is_empty() && !self.discs.dir_exists(&dir).unwrap_or(false) {
                    continue;
                }
                let files = self.discs.list_dir(&dir, ListKind::Files)?;
                let subdirs = self.discs.list_dir(&dir, ListKind::Dirs)?;
                let join = |n: &str| {
                    if dir.is_empty() {
                        n.to_string()
                    } else {
                        format!("{dir}/{n}")
                    }
                };
                self.sweep_temps(&dir)?;
                // Reverse so pop() visits in name order.
                self.files.extend(files.names.iter().rev().map(|n| join(n)));
                self.dirs.extend(
                    subdirs
                        .names
                        .iter()
                        .rev()
                        .filter(|n| !n.starts_with('.'))
                        .map(|n| join(n)),
                );
            }
            if let Some(f) = self.files.pop() {
                return Ok(Some(f));
            }
            if self.dirs.is_empty() {
                if self.started.elapsed() > Duration::ZERO && self.bytes > 0 {
                    self.passes += 1;
                }
                self.dirs = self.config.roots.iter().rev().cloned().collect();
            }
        }
        Ok(None)
    }

    /// Removes temporaries that crashed writers left: `.rfwX` whose lock is free.
    fn sweep_temps(&self, dir: &str) -> Result<()> {
        let fs = self.discs.fs().clone();
        for d in 0..self.discs.dirs().len() {
            let p = if dir.is_empty() {
                self.discs.disc_dir(d).to_path_buf()
            } else {
                self.discs.disc_dir(d).join(dir)
            };
            let Ok(entries) = fs.read_dir(&p) else {
                continue;
            };
            for e in entries {
                let Some(n) = e.name.to_str() else { continue };
                if !e.is_file || !n.ends_with(EXT_WRITE_TEMP) {
                    continue;
                }
                let path = p.join(n);
                if let Ok(Some(l)) = lock_path(&*fs, &path, false, false) {
                    warn!(path = %path.display(), "removing write temporary left by a crashed writer");
                    let _ = l.release_unlink(&*fs);
                }
            }
        }
        Ok(())
    }

    /// Does one unit of work: the oldest queued name, else the next file of the walk.
    /// `None` when there is nothing at all to check.
    pub fn step(&mut self) -> Option<Step> {
        let (name, queued) = match self.discs.repair_queue().pop() {
            Some(n) => (n, true),
            None => match self.next_walk_name() {
                Ok(Some(n)) => (n, false),
                Ok(None) => return None,
                Err(e) => {
                    return Some(Step {
                        name: String::new(),
                        queued: false,
                        result: Err(e),
                    });
                }
            },
        };
        let raidify = self.config.raidify && !(self.config.keep_as_write_file)(&name);
        // Pace the walk by the bytes it reads (queued repairs are not paced). Sizes
        // from stat: opening the file here would queue a damaged one a second time.
        let size = if queued { 0 } else { self.stat_size(&name) };
        let result = if queued {
            rebuild(&self.discs, &name).map(|r| match r {
                Rebuilt::Busy => Checked::Busy,
                Rebuilt::NotFound => Checked::NotFound,
                Rebuilt::Healthy => Checked::Good,
                other => Checked::Repaired(other),
            })
        } else {
            check_file(&self.discs, &name, raidify)
        };
        if let Ok(Checked::Busy) = result {
            // Come back to it after the holder is done.
            if queued {
                self.discs.repair_queue().push(&name);
            }
        }
        if !queued {
            self.bytes += size;
        }
        Some(Step {
            name,
            queued,
            result,
        })
    }

    /// The bytes a check of `name` reads: its write file, or its two stripes.
    fn stat_size(&self, name: &str) -> u64 {
        let fs = self.discs.fs();
        if let Ok(m) = fs.stat(&self.discs.write_path(name)) {
            return m.len;
        }
        [Component::Stripe1, Component::Stripe2]
            .iter()
            .filter_map(|&c| fs.stat(&self.discs.component_path(name, c)).ok())
            .map(|m| m.len)
            .sum()
    }

    /// How long to wait before the next walk step to stay within the byte rate.
    pub fn pause(&self) -> Duration {
        let rate = self.config.bytes_per_second.max(1);
        let due = Duration::from_secs_f64(self.bytes as f64 / rate as f64);
        due.saturating_sub(self.started.elapsed())
    }

    /// Runs until `shutdown` is set: queued repairs at once, the walk at its pace.
    pub fn run(&mut self, shutdown: &AtomicBool) {
        while !shutdown.load(Ordering::Relaxed) {
            let pause = if self.discs.repair_queue().is_empty() {
                self.pause()
            } else {
                Duration::ZERO
            };
            if !pause.is_zero() {
                std::thread::sleep(pause.min(Duration::from_millis(100)));
                continue;
            }
            match self.step() {
                Some(s) => {
                    if let Err(e) = &s.result {
                        warn!(name = %s.name, error = %e, "RaidFile check failed");
                    }
                }
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}
