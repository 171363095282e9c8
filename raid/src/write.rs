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

/// Transform with the `.rfw` already locked by the caller.
pub(crate) fn transform_locked(discs: &DiscSet, name: &str, held: Locked) -> Result<()> {
    let fs = discs.fs().clone();
    let size = held
        .file
        .stat()
        .map_err(|e| Error::io("stat", &held.path, e))?
        .len;
    let temps: Vec<PathBuf> = Component::ALL
        .iter()
        .map(|&c| discs.component_path_ext(name, c, EXT_COMPONENT_TEMP))
        .collect();
    let finals: Vec<PathBuf> = Component::ALL
        .iter()
        .map(|&c| discs.component_path(name, c))
        .collect();

    let produce = || -> Result<()> {
        // Leftovers of a transform that crashed: nobody else can be producing these
        // while we hold the write-file lock.
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
        let mut src = FileSource {
            file: &*held.file,
            path: &held.path,
        };
        write_components(
            &mut src,
            size,
            discs.block_size(),
            [Some(w1), Some(w2), Some(wp)],
        )?;
        // Rule 1 again: components are durable before they replace anything.
        for w in ws.iter_mut() {
            w.finish()?;
            w.sync()?;
        }
        drop(ws);
        for (t, f) in temps.iter().zip(&finals) {
            fs.rename(t, f).map_err(|e| Error::io("rename", t, e))?;
        }
        for f in &finals {
            sync_dir(&*fs, parent(f))?;
        }
        Ok(())
    };
    if let Err(e) = produce() {
        // 0.13 does the same: the write file remains and is the readable copy; half a
        // set of new components mixed with old ones must not survive it.
        for p in temps.iter().chain(&finals) {
            let _ = fs.remove_file(p);
        }
        return Err(e);
    }
    // Rule 2: the write file goes only after its components are durable, and only if
    // it is still the file we read.
    if held
        .still_at(&*fs, &held.path)
        .map_err(|e| Error::io("stat", &held.path, e))?
    {
        fs.remove_file(&held.path)
            .map_err(|e| Error::io("unlink", &held.path, e))?;
        sync_dir(&*fs, parent(&held.path))?;
    }
    debug!(set = discs.number(), name, size, "raidfile transformed");
    Ok(())
}

/// Bytes of the source read per step of the transform.
const TRANSFORM_CHUNK: u64 = 2 << 20;

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
