//! The seam under every file operation of the RaidFile layer.
//!
//! Owns: the `Fs` / `FsFile` traits, the real implementation on the host filesystem
//! (`RealFs`: positional reads and writes, `preadv`, `flock`, `fsync` of files and
//! directories, `st_blksize`), and small helpers that loop over short reads and writes.
//!
//! Must not know: RaidFile names, stripes or parity. Everything above this module
//! goes through these traits, so a test can put `FaultFs` underneath and fail a
//! write, run out of space or "crash" at any step (STYLE.md rule 6).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSliceMut};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write, create if missing (mode 0666 before umask), never truncate:
    /// truncation happens only after the lock is held.
    CreateRw,
    /// Read and write, create, fail if the name exists (`O_EXCL`).
    CreateNew,
}

/// What `stat` tells us about a file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub len: u64,
    pub is_dir: bool,
    pub is_file: bool,
    /// Modification time in microseconds since the epoch (0.13's revision ID unit).
    pub mtime_us: i64,
    pub dev: u64,
    pub ino: u64,
    /// The filesystem's preferred I/O size for this file (`st_blksize`).
    pub blksize: u64,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: std::ffi::OsString,
    pub is_dir: bool,
    pub is_file: bool,
}

/// Filesystem operations on paths.
pub trait Fs: Send + Sync + fmt::Debug {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>>;
    /// `rename(2)`: atomic replacement of `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// `mkdir(2)` with mode 0777 before umask, like 0.13.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// `stat(2)` (follows symbolic links).
    fn stat(&self, path: &Path) -> io::Result<Meta>;
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// `fsync(2)` on a directory, making renames, creations and unlinks in it durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// An open file. Positional I/O only: nothing shares a file offset, so a reader can
/// be used from `&self` and the fault layer can tell exactly what was written where.
pub trait FsFile: Send + Sync + fmt::Debug {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Scatter read (`preadv`). The default reads each buffer in turn.
    fn read_vectored_at(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> io::Result<usize> {
        let mut done = 0usize;
        for b in bufs.iter_mut() {
            let n = read_full_at(self, b, offset + done as u64)?;
            done += n;
            if n < b.len() {
                break;
            }
        }
        Ok(done)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// The first offset at or after `offset` that is not in a hole (`SEEK_DATA`), or
    /// `None` if only holes follow. The default knows no holes.
    fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        Ok(Some(offset))
    }
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fsync(2)`.
    fn sync(&self) -> io::Result<()>;
    fn stat(&self) -> io::Result<Meta>;
    /// Exclusive `flock`, non-blocking: `Ok(false)` when another open file holds it.
    fn try_lock(&self) -> io::Result<bool>;
    /// Exclusive `flock`, waiting for it.
    fn lock(&self) -> io::Result<()>;
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
pub fn read_full_at<F: FsFile + ?Sized>(f: &F, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Writes all of `buf` at `offset`, looping over short writes.
pub fn write_all_at<F: FsFile + ?Sized>(f: &F, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match f.write_at(&buf[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The host filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

impl RealFs {
    /// A shareable handle, as `DiscSet` keeps it.
    pub fn shared() -> std::sync::Arc<dyn Fs> {
        std::sync::Arc::new(RealFs)
    }
}

fn meta_of(m: &std::fs::Metadata) -> Meta {
    Meta {
        len: m.len(),
        is_dir: m.is_dir(),
        is_file: m.is_file(),
        mtime_us: m.mtime() * 1_000_000 + m.mtime_nsec() / 1000,
        dev: m.dev(),
        ino: m.ino(),
        blksize: m.blksize(),
    }
}

impl Fs for RealFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let mut o = OpenOptions::new();
        match mode {
            OpenMode::Read => o.read(true),
            OpenMode::CreateRw => o.read(true).write(true).create(true),
            OpenMode::CreateNew => o.read(true).write(true).create_new(true),
        };
        Ok(Box::new(RealFile {
            file: o.open(path)?,
            path: path.to_path_buf(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }
    fn stat(&self, path: &Path) -> io::Result<Meta> {
        std::fs::metadata(path).map(|m| meta_of(&m))
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(path)? {
            let e = e?;
            let t = e.file_type()?;
            out.push(DirEntry {
                name: e.file_name(),
                is_dir: t.is_dir(),
                is_file: t.is_file(),
            });
        }
        Ok(out)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}

/// A file of `RealFs`.
#[derive(Debug)]
pub struct RealFile {
    file: File,
    path: PathBuf,
}

impl FsFile for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
    fn read_vectored_at(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> io::Result<usize> {
        // One system call per stripe run instead of one per block: this is what keeps
        // striped reads close to a plain read (0.13 uses readv for the same reason).
        loop {
            match rustix::io::preadv(&self.file, bufs, offset) {
                Ok(n) => return Ok(n),
                Err(e) if e == rustix::io::Errno::INTR => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.file.write_at(buf, offset)
    }
    fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        // Lets the transform skip the holes of sparse write files instead of reading
        // gigabytes of zeros. The shared file offset this moves is never used: all
        // other I/O is positional.
        match rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Data(offset)) {
            Ok(at) => Ok(Some(at)),
            Err(e) if e == rustix::io::Errno::NXIO => Ok(None),
            // Filesystems without SEEK_DATA: treat everything as data.
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOTSUP => {
                Ok(Some(offset))
            }
            Err(e) => Err(e.into()),
        }
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }
    fn stat(&self) -> io::Result<Meta> {
        self.file.metadata().map(|m| meta_of(&m))
    }
    fn try_lock(&self) -> io::Result<bool> {
        // flock locks belong to the open file description, so two opens of one file
        // conflict even inside one process, and a 0.13 process that flocks the same
        // `.rfwX` is excluded too (it uses flock on Linux).
        match rustix::fs::flock(
            &self.file,
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        ) {
            Ok(()) => Ok(true),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
            Err(e) => Err(io::Error::from(e)),
        }
        .map_err(|e| io::Error::new(e.kind(), format!("flock {}: {e}", self.path.display())))
    }
    fn lock(&self) -> io::Result<()> {
        loop {
            match rustix::fs::flock(&self.file, rustix::fs::FlockOperation::LockExclusive) {
                Ok(()) => return Ok(()),
                Err(e) if e == rustix::io::Errno::INTR => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
