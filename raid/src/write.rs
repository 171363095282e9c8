//! Writing a RaidFile: write -> commit -> transform (store.md §6.4, §6.5).
//!
//! Owns: `RaidWrite` (the `.rfwX` temporary, its name lock, commit by rename, discard)
//! and `transform`, which turns a committed `.rfw` into stripe 1, stripe 2 and the
//! parity file byte-for-byte as 0.13 does.
//!
//! Must not know: what the bytes are. Ordering rules that make crashes safe are in the
//! crate essay (lib.rs); each step below says which rule it serves.

use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use crate::buffer::BlockWriter;
use crate::discset::{Component, DiscSet, EXT_COMPONENT_TEMP, check_name};
use crate::error::{Error, Result};
use crate::fs::{Fs, FsFile, OpenMode, read_full_at};
use crate::layout::{Layout, SizeRecord, xor_into};
use crate::lock::{Locked, lock_path};

/// Whether `RaidWrite::create` may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    Allow,
    Deny,
}

/// What `commit` did.
#[derive(Debug)]
pub struct Committed {
    /// True when the file is now stored as three components.
    pub transformed: bool,
    /// The transform failed; the file is committed and readable as a write file and
    /// has been queued for raidify.
    pub transform_error: Option<Error>,
}

/// A RaidFile being written. Dropping it without `commit` discards it.
#[derive(Debug)]
pub struct RaidWrite {
    discs: DiscSet,
    name: String,
    temp: PathBuf,
    w: Option<BlockWriter>,
}

pub(crate) fn parent(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new("."))
}

pub(crate) fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir)
        .map_err(|e| Error::io("fsync directory", dir, e))
}

pub(crate) fn remove_if_exists(fs: &dyn Fs, p: &Path) -> Result<bool> {
    match fs.remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("unlink", p, e)),
    }
}

impl RaidWrite {
    /// Opens `<name>.rfwX` on the start disc, takes the name lock (failing with
    /// `Locked` if another writer has it) and truncates it.
    pub fn create(discs: &DiscSet, name: &str, overwrite: Overwrite) -> Result<RaidWrite> {
        check_name(name)?;
        if overwrite == Overwrite::Deny && discs.exists(name)? {
            return Err(Error::AlreadyExists { name: name.into() });
        }
        let fs = discs.fs();
        let temp = discs.write_temp_path(name);
        let held = lock_path(&**fs, &temp, true, false)
            .map_err(|e| Error::io("open and lock", &temp, e))?
            .ok_or_else(|| Error::Locked { name: name.into() })?;
        // Checked again under the lock: another writer may have committed the name
        // between the first check and our lock.
        if overwrite == Overwrite::Deny && discs.exists(name)? {
            let _ = held.release_unlink(&**fs);
            return Err(Error::AlreadyExists { name: name.into() });
        }
        // Truncate only once the lock is ours: the previous holder's bytes were
        // discarded, or belong to a crashed writer.
        if let Err(e) = held.file.set_len(0) {
            let _ = held.release_unlink(&**fs);
            return Err(Error::io("truncate", &temp, e));
        }
        let w = BlockWriter::new(held.file, temp.clone(), discs.buffering()).inspect_err(|_| {
            let _ = remove_if_exists(&**fs, &temp);
        })?;
        debug!(set = discs.number(), name, "raidfile write opened");
        Ok(RaidWrite {
            discs: discs.clone(),
            name: name.into(),
            temp,
            w: Some(w),
        })
    }

    fn writer(&mut self) -> Result<&mut BlockWriter> {
        self.w.as_mut().ok_or_else(|| Error::Invalid {
            name: self.name.clone(),
            detail: "writer already closed".into(),
        })
    }

    /// Appends (or, after `seek_to`, overwrites) bytes.
    pub fn write_bytes(&mut self, data: &[u8]) -> Result<()> {
        self.writer()?.write(data)
    }

    /// Moves the write position; later writes may leave holes.
    pub fn seek_to(&mut self, pos: u64) -> Result<()> {
        self.writer()?.seek(pos)
    }

    pub fn position(&self) -> u64 {
        self.w.as_ref().map_or(0, BlockWriter::position)
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.w.as_ref().map_or(0, BlockWriter::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Disc usage of the file as it stands, in blocks of this set.
    pub fn disc_usage_in_blocks(&self) -> u64 {
        self.discs.disc_usage_in_blocks(self.len())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads back bytes written so far, before commit (a server verifies an upload
    /// it has streamed to disc without keeping it in memory). Flushes the buffer
    /// first, so call it once writing is done. Short only at the end of the file.
    pub fn read_back_at(&mut self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let w = self.writer()?;
        w.flush()?;
        crate::fs::read_full_at(&*w.file, buf, offset)
            .map_err(|e| Error::io("read back", &w.path, e))
    }

    /// Makes the file visible: flush, fsync, rename `.rfwX` -> `.rfw` while still
    /// holding the lock, fsync the directory. Then, if `transform` and this is a RAID
    /// set, turns it into components (a failure there leaves it committed as a write
    /// file and queued for raidify).
    pub fn commit(mut self, transform: bool) -> Result<Committed> {
        let mut w = self.w.take().ok_or_else(|| Error::Invalid {
            name: self.name.clone(),
            detail: "writer already closed".into(),
        })?;
        let fs = self.discs.fs().clone();
        let target = self.discs.write_path(&self.name);
        if transform && self.discs.is_raid() {
            return self.commit_and_transform(w);
        }
        let before_rename = (|| -> Result<()> {
            w.finish()?;
            // Rule 1: nothing becomes visible before it is durable.
            w.sync()?;
            Ok(())
        })();
        if let Err(e) = before_rename {
            let _ = remove_if_exists(&*fs, &self.temp);
            return Err(e);
        }
        // Wait for any transform of an older `.rfw` of this name: it must not unlink
        // ours when it finishes (lock order: name lock, then write-file lock).
        let older = match lock_path(&*fs, &target, false, true) {
            Ok(l) => l,
            Err(e) => {
                let _ = remove_if_exists(&*fs, &self.temp);
                return Err(Error::io("lock", &target, e));
            }
        };
        if let Err(e) = fs.rename(&self.temp, &target) {
            let _ = remove_if_exists(&*fs, &self.temp);
            return Err(Error::io("rename", &self.temp, e));
        }
        drop(older);
        sync_dir(&*fs, parent(&target))?;
        debug!(set = self.discs.number(), name = %self.name, "raidfile committed");

        let mut out = Committed {
            transformed: false,
            transform_error: None,
        };
        if transform && self.discs.is_raid() {
            // Our open file is now the `.rfw` and still carries our lock: the transform
            // runs under it without a gap another process could use.
            let held = Locked {
                file: w.file,
                path: target,
            };
            match transform_locked(&self.discs, &self.name, held) {
                Ok(()) => out.transformed = true,
                Err(e) => {
                    warn!(set = self.discs.number(), name = %self.name, error = %e,
                        "transform failed; file stays a write file, queued for raidify");
                    self.discs.repair_queue().push(&self.name);
                    out.transform_error = Some(e);
                }
            }
        }
        Ok(out)
    }

    /// Commit and transform in one go, with the same steps and order as `commit`
    /// followed by `transform`, but overlapped: the write file's fsync runs while the
    /// components are produced from it (from the page cache) and synced, and the three
    /// components' fsyncs run in parallel. Only the renames are strictly sequential:
    /// `.rfwX` -> `.rfw` (the commit point) before any `.rfP` -> `.rf`, and those before
    /// the `.rfw` goes.
    fn commit_and_transform(self, mut w: BlockWriter) -> Result<Committed> {
        let fs = self.discs.fs().clone();
        let target = self.discs.write_path(&self.name);
        let discard = |e: Error| {
            let _ = remove_if_exists(&*fs, &self.temp);
            Err(e)
        };
        if let Err(e) = w.finish() {
            return discard(e);
        }
        // Any transform of an older `.rfw` must finish first: it uses the `.rfP` names,
        // and must not unlink our `.rfw` when it ends.
        let older = match lock_path(&*fs, &target, false, true) {
            Ok(l) => l,
            Err(e) => return discard(Error::io("lock", &target, e)),
        };
        let size = w.len();
        let (synced, produced) = std::thread::scope(|s| {
            let sync = s.spawn(|| w.sync());
            let produced = produce_components(&self.discs, &self.name, &*w.file, &self.temp, size);
            let synced = sync.join().unwrap_or_else(|_| {
                Err(Error::Invalid {
                    name: self.name.clone(),
                    detail: "the sync thread panicked".into(),
                })
            });
            (synced, produced)
        });
        if let Err(e) = synced {
            remove_temps(&self.discs, &self.name);
            return discard(e);
        }
        // Rule 1 holds for the write file: commit it.
        if let Err(e) = fs.rename(&self.temp, &target) {
            remove_temps(&self.discs, &self.name);
            return discard(Error::io("rename", &self.temp, e));
        }
        drop(older);
        if let Err(e) = sync_dir(&*fs, parent(&target)) {
            // Committed, but whether the rename is durable is unknown: say so, and
            // leave the transform to raidify.
            remove_temps(&self.discs, &self.name);
            self.discs.repair_queue().push(&self.name);
            return Err(e);
        }
        debug!(set = self.discs.number(), name = %self.name, "raidfile committed");
        let held = Locked {
            file: w.file,
            path: target,
        };
        let installed = produced
            .and_then(|()| install_components(&self.discs, &self.name))
            .and_then(|()| retire_write_file(&self.discs, &held));
        match installed {
            Ok(()) => Ok(Committed {
                transformed: true,
                transform_error: None,
            }),
            Err(e) => {
                if fs.stat(&held.path).is_ok() {
                    remove_components(&self.discs, &self.name);
                }
                warn!(set = self.discs.number(), name = %self.name, error = %e,
                    "transform failed; file stays a write file, queued for raidify");
                self.discs.repair_queue().push(&self.name);
                Ok(Committed {
                    transformed: false,
                    transform_error: Some(e),
                })
            }
        }
    }

    /// Throws the written bytes away: unlink `.rfwX` (while locked), then close.
    pub fn discard(mut self) -> Result<()> {
        self.discard_inner()
    }

    fn discard_inner(&mut self) -> Result<()> {
        if let Some(w) = self.w.take() {
            let fs = self.discs.fs().clone();
            remove_if_exists(&*fs, &self.temp)?;
            drop(w);
        }
        Ok(())
    }
}

impl Drop for RaidWrite {
    fn drop(&mut self) {
        if self.w.is_some() {
            if let Err(e) = self.discard_inner() {
                warn!(name = %self.name, error = %e, "discarding unfinished raidfile write failed");
            }
        }
    }
}

impl Write for RaidWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_bytes(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        // Durability comes with commit; a flush only empties our buffer.
        Ok(self.writer()?.flush()?)
    }
}

impl Seek for RaidWrite {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let cur = self.position();
        let len = self.len();
        let to = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => cur.checked_add_signed(d),
            SeekFrom::End(d) => len.checked_add_signed(d),
        };
        let to =
            to.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?;
        self.seek_to(to)?;
        Ok(to)
    }
}

/// What `transform` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transformed {
    /// The write file is now three components.
    Done,
    /// There was no write file (already transformed, or deleted).
    NothingToDo,
    /// Another writer or transform holds the name; it will finish the job.
    Busy,
    /// Non-RAID set: write files are the final form.
    NonRaidSet,
}

/// Transforms a committed write file into RAID components ("raidify"), e.g. one left
/// behind by a crash between commit and transform.
pub fn transform(discs: &DiscSet, name: &str) -> Result<Transformed> {
    check_name(name)?;
    if !discs.is_raid() {
        return Ok(Transformed::NonRaidSet);
    }
    let fs = discs.fs().clone();
    let temp = discs.write_temp_path(name);
    // The name lock keeps delete and rebuild away; don't wait for a live writer.
    let Some(name_lock) =
        lock_path(&*fs, &temp, true, false).map_err(|e| Error::io("lock", &temp, e))?
    else {
        return Ok(Transformed::Busy);
    };
    let target = discs.write_path(name);
    let result = match lock_path(&*fs, &target, false, false) {
        Ok(Some(held)) => transform_locked(discs, name, held).map(|()| Transformed::Done),
        Ok(None) => {
            if fs.stat(&target).is_ok() {
                Ok(Transformed::Busy)
            } else {
                Ok(Transformed::NothingToDo)
            }
        }
        Err(e) => Err(Error::io("lock", &target, e)),
    };
    name_lock
        .release_unlink(&*fs)
        .map_err(|e| Error::io("unlock", &temp, e))?;
    result
}

fn temp_paths(discs: &DiscSet, name: &str) -> [PathBuf; 3] {
    Component::ALL.map(|c| discs.component_path_ext(name, c, EXT_COMPONENT_TEMP))
}

fn final_paths(discs: &DiscSet, name: &str) -> [PathBuf; 3] {
    Component::ALL.map(|c| discs.component_path(name, c))
}

/// Runs `f` on each item on its own thread (the items are on different discs, so
/// their fsyncs proceed in parallel instead of one after another).
fn each_in_parallel<T: Sync>(items: &[T], f: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|it| s.spawn(|| f(it))).collect();
        let mut first = Ok(());
        for h in handles {
            let r = h.join().unwrap_or_else(|_| {
                Err(Error::Invalid {
                    name: String::new(),
                    detail: "a sync thread panicked".into(),
                })
            });
            if first.is_ok() {
                first = r;
            }
        }
        first
    })
}

/// Writes the three `.rfP` files from `src` and makes them durable. The caller holds
/// the write-file lock (or the `.rfwX` lock with the older `.rfw` locked), so nobody
/// else uses these names.
fn produce_components(
    discs: &DiscSet,
    name: &str,
    src: &dyn FsFile,
    src_path: &Path,
    size: u64,
) -> Result<()> {
    let fs = discs.fs().clone();
    let temps = temp_paths(discs, name);
    // Leftovers of a transform that crashed.
    for t in &temps {
        remove_if_exists(&*fs, t)?;
    }
    let mut ws = Vec::with_capacity(3);
    for t in &temps {
        let f = fs
            .open(t, OpenMode::CreateNew)
            .map_err(|e| Error::io("create", t, e))?;
        ws.push(BlockWriter::new(f, t.clone(), discs.buffering())?);
    }
    let [w1, w2, wp] = ws.as_mut_slice() else {
        return Err(Error::Invalid {
            name: name.into(),
            detail: "internal: three writers".into(),
        });
    };
    let mut source = FileSource {
        file: src,
        path: src_path,
    };
    write_components(
        &mut source,
        size,
        discs.block_size(),
        [Some(w1), Some(w2), Some(wp)],
    )?;
    for w in ws.iter_mut() {
        w.finish()?;
    }
    // Rule 1 again: components are durable before they replace anything.
    each_in_parallel(&ws, BlockWriter::sync)
}

/// Renames the `.rfP` files over the `.rf` names and makes the renames durable.
fn install_components(discs: &DiscSet, name: &str) -> Result<()> {
    let fs = discs.fs().clone();
    let finals = final_paths(discs, name);
    for (t, f) in temp_paths(discs, name).iter().zip(&finals) {
        fs.rename(t, f).map_err(|e| Error::io("rename", t, e))?;
    }
    each_in_parallel(&finals, |f| sync_dir(&*fs, parent(f)))
}

/// Before the commit point only our temporaries may go: the `.rf` files are still the
/// previous version's.
fn remove_temps(discs: &DiscSet, name: &str) {
    let fs = discs.fs();
    for p in temp_paths(discs, name).iter() {
        let _ = fs.remove_file(p);
    }
}

/// After a failed transform: 0.13 does the same. The write file remains and is the
/// readable copy; half a set of new components mixed with old ones must not survive.
fn remove_components(discs: &DiscSet, name: &str) {
    let fs = discs.fs();
    for p in temp_paths(discs, name)
        .iter()
        .chain(&final_paths(discs, name))
    {
        let _ = fs.remove_file(p);
    }
}

/// Rule 2: the write file goes only after its components are durable, and only if it
/// is still the file we read.
fn retire_write_file(discs: &DiscSet, held: &Locked) -> Result<()> {
    let fs = discs.fs().clone();
    if held
        .still_at(&*fs, &held.path)
        .map_err(|e| Error::io("stat", &held.path, e))?
    {
        fs.remove_file(&held.path)
            .map_err(|e| Error::io("unlink", &held.path, e))?;
        sync_dir(&*fs, parent(&held.path))?;
    }
    Ok(())
}

/// Transform with the `.rfw` already locked by the caller.
pub(crate) fn transform_locked(discs: &DiscSet, name: &str, held: Locked) -> Result<()> {
    let size = held
        .file
        .stat()
        .map_err(|e| Error::io("stat", &held.path, e))?
        .len;
    let made = produce_components(discs, name, &*held.file, &held.path, size)
        .and_then(|()| install_components(discs, name));
    if let Err(e) = made {
        remove_components(discs, name);
        return Err(e);
    }
    retire_write_file(discs, &held)?;
    debug!(set = discs.number(), name, size, "raidfile transformed");
    Ok(())
}

/// Bytes of the source read per step of the transform. Bounded because every
/// session committing an object holds one (plus the stripes made from it); larger
/// steps only save system calls on a file the page cache already holds.
const TRANSFORM_CHUNK: u64 = 128 << 10;

/// Where the transform reads the file's bytes from: the `.rfw` (transform) or a
/// degraded reader (rebuild).
pub(crate) trait Source {
    /// Fills `buf` from `offset`; fewer bytes only at the end of the file.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<usize>;
    /// The first offset at or after `offset` that may hold data (`None`: only holes).
    fn next_data(&mut self, offset: u64) -> Result<Option<u64>> {
        Ok(Some(offset))
    }
}

pub(crate) struct FileSource<'a> {
    pub(crate) file: &'a dyn FsFile,
    pub(crate) path: &'a Path,
}

impl Source for FileSource<'_> {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<usize> {
        read_full_at(self.file, buf, offset).map_err(|e| Error::io("read", self.path, e))
    }
    fn next_data(&mut self, offset: u64) -> Result<Option<u64>> {
        self.file
            .next_data(offset)
            .map_err(|e| Error::io("seek data", self.path, e))
    }
}

/// Streams `size` bytes of `src` into the stripe 1, stripe 2 and parity writers
/// (any of them may be left out, e.g. when rebuilding only one).
pub(crate) fn write_components(
    src: &mut dyn Source,
    size: u64,
    block: u64,
    mut ws: [Option<&mut BlockWriter>; 3],
) -> Result<()> {
    let layout = Layout::of(size, block);
    let pair = 2 * block;
    let pairs_per_chunk = (TRANSFORM_CHUNK / pair).max(1);
    let chunk = pairs_per_chunk * pair;
    let mut buf = vec![0u8; chunk.min(size.div_ceil(pair) * pair) as usize];
    let mut parity = vec![0u8; block as usize];
    let b = block as usize;
    let mut off = 0u64;
    while off < size {
        let n = chunk.min(size - off);
        let last_chunk = off + n == size;
        if !last_chunk && src.next_data(off)?.is_none_or(|d| d >= off + n) {
            // A hole: all three components are zeros here too; keep them sparse.
            for w in ws.iter_mut().flatten() {
                w.skip(n / 2)?;
            }
            off += n;
            continue;
        }
        let got = src.read_at(&mut buf[..n as usize], off)?;
        if got as u64 != n {
            return Err(Error::Invalid {
                name: String::new(),
                detail: format!(
                    "source ended at {} of {size} bytes during transform",
                    off + got as u64
                ),
            });
        }
        let padded = n.div_ceil(pair) * pair;
        buf[n as usize..padded as usize].fill(0);
        let first_pair = off / pair;
        for (k, p) in buf[..padded as usize]
            .chunks_exact(pair as usize)
            .enumerate()
        {
            let global = first_pair + k as u64;
            let is_last = global + 1 == layout.pairs;
            let in_pair = if is_last { layout.last_pair_len } else { pair } as usize;
            // One call per block: unbuffered mode writes exactly what 0.13 writes;
            // buffered mode gathers them into whole st_blksize multiples.
            if let Some(w1) = ws[0].as_deref_mut() {
                w1.write(&p[..in_pair.min(b)])?;
            }
            if let Some(w2) = ws[1].as_deref_mut() {
                if in_pair > b {
                    w2.write(&p[b..in_pair])?;
                }
            }
            let Some(wp) = ws[2].as_deref_mut() else {
                continue;
            };
            parity.copy_from_slice(&p[..b]);
            xor_into(&mut parity, &p[b..]);
            if is_last {
                match layout.record {
                    SizeRecord::None => {
                        wp.write(&parity[..in_pair])?;
                        continue;
                    }
                    SizeRecord::XoredIn => xor_into(&mut parity[b - 8..], &size.to_be_bytes()),
                    SizeRecord::Appended => {}
                }
            }
            wp.write(&parity)?;
        }
        off += n;
    }
    if layout.record == SizeRecord::Appended {
        if let Some(wp) = ws[2].as_deref_mut() {
            wp.write(&size.to_be_bytes())?;
        }
    }
    Ok(())
}
