//! Per-account object storage: the `ObjectStore` trait, and `RaidObjects`, its
//! implementation on a bb-raid disc set (store.md §3, §5, §6).
//!
//! Owns: where an account's objects and named files live and how they are read,
//! written (streamed, committed or discarded), deleted, listed and measured in
//! blocks, plus the account write lock. Must not know: what an object contains
//! (directories, files, store info are the `account` module's business).
//!
//! The trait is the seam for another backend (an object store); it is object-safe
//! and deliberately small. An in-memory fake lives in the tests.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use bb_format::read_at::ReadAt;
use bb_raid::fs::{Fs, FsFile, OpenMode, read_full_at, write_all_at};
use bb_raid::lock::{Locked, lock_path};
use bb_raid::{DiscSet, ListKind, Overwrite, RaidRead, RaidWrite};
use tracing::{debug, warn};

use crate::ObjectId;
use crate::error::{Error, Result};

/// The account's files that are not objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamedFile {
    /// The store info (a RaidFile, RAIDed like objects).
    Info,
    /// The reference count database: always a plain write file, never transformed,
    /// updated in place.
    RefCount,
    /// The refcount database being rebuilt (housekeeping, check), committed with
    /// [`ObjectStore::replace_named`].
    RefCountTemp,
}

impl NamedFile {
    /// The name in the account root (store.md §3.1).
    pub fn file_name(self) -> &'static str {
        match self {
            NamedFile::Info => "info",
            NamedFile::RefCount => "refcount.rdb",
            NamedFile::RefCountTemp => "refcount.rdbX",
        }
    }

    /// True for the plain (never RAIDed) files.
    pub fn is_plain(self) -> bool {
        !matches!(self, NamedFile::Info)
    }
}

/// An object being written. Dropping it without `commit` discards it.
pub trait ObjectWrite: Write + Send + fmt::Debug {
    /// Bytes written so far.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads back bytes already written (to verify an upload before commit).
    /// Call once writing is done.
    fn read_back_at(&mut self, buf: &mut [u8], offset: u64) -> Result<usize>;
    /// Makes the object visible under its ID (replacing any previous version).
    fn commit(self: Box<Self>) -> Result<()>;
    /// Throws the bytes away; the previous version, if any, stays.
    fn discard(self: Box<Self>) -> Result<()>;
}

/// An object open for reading.
pub trait ObjectRead: Read + Send + fmt::Debug {
    fn size(&self) -> u64;
    /// Reads at `offset`; short only at the end of the object.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<usize>;
}

/// What a temporary file is for; decides its name and disc (store.md §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempPurpose {
    /// Staging a diff upload that becomes object `new_id`:
    /// `<new object's name>.difftemp`, one disc on from the object's own.
    DiffUpload { new_id: ObjectId },
    /// Step `step` of rebuilding an old version for a download:
    /// `<account root>.recombinetemp.<step>`, `step + 16` discs on (0.13's
    /// numbering: the step writing the requested version is 0).
    Recombine { step: u32 },
}

/// A scratch file: written, then read back positionally; it has no name once
/// created (0.13 unlinks its temporaries right after opening them), so it goes
/// when dropped, also after a crash.
pub trait TempObject: Write + ReadAt + Send + fmt::Debug {}

/// An open object as a [`ReadAt`] source for bb-format's streaming transforms.
#[derive(Debug)]
pub struct ObjectSource(pub Box<dyn ObjectRead>);

impl ReadAt for ObjectSource {
    fn len(&self) -> u64 {
        self.0.size()
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset).map_err(io::Error::other)
    }
}

/// A scratch object in memory (the fake's temporaries; and the default for
/// stores that have no files of their own).
#[derive(Debug, Default)]
pub struct MemTemp(pub io::Cursor<Vec<u8>>);

impl Write for MemTemp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ReadAt for MemTemp {
    fn len(&self) -> u64 {
        ReadAt::len(&self.0)
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
}

impl TempObject for MemTemp {}

/// Held while the account is open for writing; dropping it releases the lock.
pub trait WriteLockGuard: Send + fmt::Debug {}

/// One thing found by [`ObjectStore::walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkItem {
    /// An object file at its canonical place.
    Object(ObjectId),
    /// One of the named files in the account root.
    Named(NamedFile),
    /// Any other file (RaidFile name relative to the account root), e.g. `refcount.db`,
    /// `xx/o5` or `01/o00` under a non-canonical directory. The checker decides.
    Other(String),
    /// A subdirectory whose name is not two lowercase hex digits (not descended).
    BadDir(String),
}

/// An account's object storage.
pub trait ObjectStore: Send + Sync + fmt::Debug {
    fn account_id(&self) -> u32;
    /// Block size of the account's disc set (AccountUsage's `BlockSize`).
    fn block_size(&self) -> u64;
    /// Blocks used on disc by an object of `size` bytes (store.md §6.8).
    fn usage_in_blocks(&self, size: u64) -> u64;

    /// Starts writing object `id`. With `replace` false, an existing object is an
    /// error (new IDs); with true, commit replaces it (directory rewrites, reverse
    /// diffs).
    fn create_object(&self, id: ObjectId, replace: bool) -> Result<Box<dyn ObjectWrite>>;
    /// Opens object `id`; `DoesNotExist` if there is none.
    fn open_object(&self, id: ObjectId) -> Result<Box<dyn ObjectRead>>;
    fn object_exists(&self, id: ObjectId) -> Result<bool>;
    /// Deletes object `id`; `DoesNotExist` if there was none.
    fn delete_object(&self, id: ObjectId) -> Result<()>;

    /// Creates a temporary file for `purpose` (diff staging, rebuilding old
    /// versions), so large files need not be held in memory. Required, so
    /// that a wrapper cannot silently fall back to memory.
    fn create_temp(&self, purpose: TempPurpose) -> Result<Box<dyn TempObject>>;

    /// The whole named file, `None` if it does not exist.
    fn read_named(&self, file: NamedFile) -> Result<Option<Vec<u8>>>;
    /// Replaces the named file atomically.
    fn write_named(&self, file: NamedFile, data: &[u8]) -> Result<()>;
    /// Writes `data` at `offset` in place (plain named files only; extends with
    /// zeros). The file must exist.
    fn patch_named(&self, file: NamedFile, offset: u64, data: &[u8]) -> Result<()>;
    /// Makes earlier `patch_named` writes to a plain named file durable (they are
    /// not synced one by one; see docs/store.md "Durability").
    fn sync_named(&self, file: NamedFile) -> Result<()>;
    /// Renames `from` over `to` (commits a rebuilt refcount database).
    fn replace_named(&self, from: NamedFile, to: NamedFile) -> Result<()>;
    /// Deletes the named file; false if it did not exist.
    fn delete_named(&self, file: NamedFile) -> Result<bool>;

    /// Visits everything on disc in the account (for the checker).
    fn walk(&self, visit: &mut dyn FnMut(WalkItem) -> Result<()>) -> Result<()>;

    /// Takes the account write lock without waiting (store.md §3.4);
    /// `CannotLockStoreForWriting` if someone else holds it.
    fn lock_for_writing(&self) -> Result<Box<dyn WriteLockGuard>>;

    /// True if the account's storage exists.
    fn account_exists(&self) -> Result<bool>;
    /// Creates the account's (empty) storage; an error if it exists.
    fn create_account_storage(&self) -> Result<()>;
    /// Removes the account's storage and everything in it.
    fn destroy_account_storage(&self) -> Result<()>;
}

/// `backup/<8 lowercase hex digits>/` (store.md §3.1).
pub fn account_root(account: u32) -> String {
    format!("backup/{account:08x}/")
}

/// The path of object `id` under the account root (store.md §3.2): directory
/// bytes least significant first, then `o` + the lowest byte.
pub fn object_path(id: ObjectId) -> String {
    let id = id as u64;
    let mut s = String::new();
    let mut rest = id >> 8;
    while rest != 0 {
        s.push_str(&format!("{:02x}/", rest & 0xff));
        rest >>= 8;
    }
    s.push_str(&format!("o{:02x}", id & 0xff));
    s
}

/// The object ID of a canonical object path, `None` for anything else.
pub fn parse_object_path(path: &str) -> Option<ObjectId> {
    let mut parts: Vec<&str> = path.split('/').collect();
    let leaf = parts.pop()?.strip_prefix('o')?;
    let hex2 = |s: &str| -> Option<u64> {
        (s.len() == 2
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
    };
    let mut id = hex2(leaf)?;
    if parts.len() > 7 {
        return None;
    }
    for (i, p) in parts.iter().enumerate() {
        id |= hex2(p)? << (8 * (i + 1));
    }
    let id = id as i64;
    // Only the canonical spelling (no leading zero directory) names an object.
    (id > 0 && object_path(id) == path).then_some(id)
}

/// Objects on a bb-raid disc set.
#[derive(Debug, Clone)]
pub struct RaidObjects {
    discs: DiscSet,
    account: u32,
    root: String,
    /// Object directories known to exist (saves a stat per disc per new object).
    known_dirs: Arc<Mutex<HashSet<String>>>,
}

impl RaidObjects {
    pub fn new(discs: DiscSet, account: u32) -> RaidObjects {
        RaidObjects {
            discs,
            account,
            root: account_root(account),
            known_dirs: Arc::default(),
        }
    }

    pub fn discs(&self) -> &DiscSet {
        &self.discs
    }

    /// The RaidFile name of object `id`.
    pub fn object_name(&self, id: ObjectId) -> String {
        format!("{}{}", self.root, object_path(id))
    }

    /// The RaidFile name of a named file.
    pub fn named_name(&self, file: NamedFile) -> String {
        format!("{}{}", self.root, file.file_name())
    }

    /// Where a plain named file lives. The temporary refcount goes next to the
    /// final one (store.md §5: 0.13 hashes its own name and renames across discs).
    fn plain_path(&self, file: NamedFile) -> std::path::PathBuf {
        let main = self.discs.write_path(&self.named_name(NamedFile::RefCount));
        match file {
            NamedFile::RefCountTemp => main.with_file_name("refcount.rdbX.rfw"),
            _ => main,
        }
    }

    fn check_id(op: &'static str, id: ObjectId) -> Result<()> {
        if id <= 0 {
            return Err(Error::Invalid {
                op,
                detail: format!("object ID {id} is not positive"),
            });
        }
        Ok(())
    }

    fn ensure_dir(&self, name: &str) -> Result<()> {
        let Some((dir, _)) = name.rsplit_once('/') else {
            return Ok(());
        };
        if dir.len() < self.root.len() {
            return Ok(());
        }
        {
            let known = self.known_dirs.lock().unwrap_or_else(|p| p.into_inner());
            if known.contains(dir) {
                return Ok(());
            }
        }
        if !self
            .discs
            .dir_exists(dir)
            .map_err(|e| Error::raid("check directory", dir, e))?
        {
            match self.discs.create_dir(dir, true) {
                Ok(()) => {}
                // Another session created it in between.
                Err(e) if self.discs.dir_exists(dir).unwrap_or(false) => {
                    debug!(dir, error = %e, "directory appeared while creating it")
                }
                Err(e) => return Err(Error::raid("create directory", dir, e)),
            }
        }
        self.known_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir.to_string());
        Ok(())
    }

    fn walk_dir(&self, rel: &str, visit: &mut dyn FnMut(WalkItem) -> Result<()>) -> Result<()> {
        let full = format!("{}{rel}", self.root);
        let full = full.trim_end_matches('/');
        let files = self
            .discs
            .list_dir(full, ListKind::Files)
            .map_err(|e| Error::raid("list", full, e))?;
        for f in files.names {
            let path = format!("{rel}{f}");
            let item = if rel.is_empty() {
                match f.as_str() {
                    "info" => WalkItem::Named(NamedFile::Info),
                    "refcount.rdb" => WalkItem::Named(NamedFile::RefCount),
                    "refcount.rdbX" => WalkItem::Named(NamedFile::RefCountTemp),
                    _ => parse_object_path(&path).map_or(WalkItem::Other(path), WalkItem::Object),
                }
            } else {
                parse_object_path(&path).map_or(WalkItem::Other(path), WalkItem::Object)
            };
            visit(item)?;
        }
        let dirs = self
            .discs
            .list_dir(full, ListKind::Dirs)
            .map_err(|e| Error::raid("list", full, e))?;
        for d in dirs.names {
            let ok = d.len() == 2
                && d.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if ok && rel.len() < 3 * 7 {
                self.walk_dir(&format!("{rel}{d}/"), visit)?;
            } else {
                visit(WalkItem::BadDir(format!("{rel}{d}")))?;
            }
        }
        Ok(())
    }

    fn fs(&self) -> &dyn Fs {
        &**self.discs.fs()
    }
}

fn not_found_or(op: &'static str, id: ObjectId, name: &str, e: bb_raid::Error) -> Error {
    match e {
        bb_raid::Error::NotFound { .. } => Error::DoesNotExist { op, id },
        e => Error::raid(op, name, e),
    }
}

#[derive(Debug)]
struct RaidObjectWrite {
    w: Option<RaidWrite>,
}

impl Write for RaidObjectWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.w {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("object writer already closed")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.w {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl RaidObjectWrite {
    fn take(&mut self) -> Result<RaidWrite> {
        self.w.take().ok_or_else(|| Error::Invalid {
            op: "object write",
            detail: "writer already closed".into(),
        })
    }
}

impl ObjectWrite for RaidObjectWrite {
    fn len(&self) -> u64 {
        self.w.as_ref().map_or(0, RaidWrite::len)
    }

    fn read_back_at(&mut self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let w = self.w.as_mut().ok_or_else(|| Error::Invalid {
            op: "object read back",
            detail: "writer already closed".into(),
        })?;
        let name = w.name().to_string();
        w.read_back_at(buf, offset)
            .map_err(|e| Error::raid("read back", name, e))
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let w = self.take()?;
        let name = w.name().to_string();
        let c = w
            .commit(true)
            .map_err(|e| Error::raid("commit", &name, e))?;
        if let Some(e) = c.transform_error {
            // Committed and readable as a write file; raidify (or check fix) redoes it.
            warn!(name, error = %e, "object committed but not transformed to RAID");
        }
        Ok(())
    }

    fn discard(mut self: Box<Self>) -> Result<()> {
        let w = self.take()?;
        let name = w.name().to_string();
        w.discard().map_err(|e| Error::raid("discard", name, e))
    }
}

#[derive(Debug)]
struct RaidObjectRead {
    r: RaidRead,
    id: ObjectId,
}

impl Read for RaidObjectRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.r.read(buf)
    }
}

impl ObjectRead for RaidObjectRead {
    fn size(&self) -> u64 {
        self.r.size()
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let n = self
                .r
                .read_at(&mut buf[done..], offset + done as u64)
                .map_err(|e| not_found_or("read object", self.id, self.r.name(), e))?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }
}

/// Bytes a temporary file buffers before writing them out.
const TEMP_BUFFER: usize = 64 << 10;

/// A plain file on one of the discs, unlinked as soon as it was created.
struct RaidTemp {
    file: Box<dyn FsFile>,
    path: std::path::PathBuf,
    buf: Vec<u8>,
    /// Bytes already in the file (the buffer follows them).
    flushed: u64,
}

impl fmt::Debug for RaidTemp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaidTemp")
            .field("path", &self.path)
            .field("len", &self.len())
            .finish()
    }
}

impl RaidTemp {
    fn write_out(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            write_all_at(&*self.file, &self.buf, self.flushed)?;
            self.flushed += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

impl Write for RaidTemp {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > TEMP_BUFFER {
            self.write_out()?;
            if data.len() >= TEMP_BUFFER {
                write_all_at(&*self.file, data, self.flushed)?;
                self.flushed += data.len() as u64;
                return Ok(data.len());
            }
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(TEMP_BUFFER);
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.write_out()
    }
}

impl ReadAt for RaidTemp {
    fn len(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.write_out()?;
        read_full_at(&*self.file, buf, offset)
    }
}

impl TempObject for RaidTemp {}

/// The account's `write.lock`, released by unlink + close.
struct RaidWriteLock {
    held: Option<Locked>,
    fs: Arc<dyn Fs>,
}

impl fmt::Debug for RaidWriteLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaidWriteLock")
            .field("path", &self.held.as_ref().map(|h| h.path()))
            .finish()
    }
}

impl WriteLockGuard for RaidWriteLock {}

impl Drop for RaidWriteLock {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            let path = held.path().to_path_buf();
            if let Err(e) = held.release_unlink(&*self.fs) {
                warn!(path = %path.display(), error = %e, "releasing the account write lock");
            }
        }
    }
}

impl ObjectStore for RaidObjects {
    fn account_id(&self) -> u32 {
        self.account
    }

    fn block_size(&self) -> u64 {
        self.discs.block_size()
    }

    fn usage_in_blocks(&self, size: u64) -> u64 {
        self.discs.disc_usage_in_blocks(size)
    }

    fn create_object(&self, id: ObjectId, replace: bool) -> Result<Box<dyn ObjectWrite>> {
        Self::check_id("create object", id)?;
        let name = self.object_name(id);
        self.ensure_dir(&name)?;
        let overwrite = if replace {
            Overwrite::Allow
        } else {
            Overwrite::Deny
        };
        let w = RaidWrite::create(&self.discs, &name, overwrite)
            .map_err(|e| Error::raid("create object", &name, e))?;
        Ok(Box::new(RaidObjectWrite { w: Some(w) }))
    }

    fn open_object(&self, id: ObjectId) -> Result<Box<dyn ObjectRead>> {
        if id <= 0 {
            return Err(Error::DoesNotExist {
                op: "open object",
                id,
            });
        }
        let name = self.object_name(id);
        let r = RaidRead::open(&self.discs, &name)
            .map_err(|e| not_found_or("open object", id, &name, e))?;
        Ok(Box::new(RaidObjectRead { r, id }))
    }

    fn object_exists(&self, id: ObjectId) -> Result<bool> {
        if id <= 0 {
            return Ok(false);
        }
        let name = self.object_name(id);
        self.discs
            .exists(&name)
            .map_err(|e| Error::raid("check object", name, e))
    }

    fn delete_object(&self, id: ObjectId) -> Result<()> {
        if id <= 0 {
            return Err(Error::DoesNotExist {
                op: "delete object",
                id,
            });
        }
        let name = self.object_name(id);
        self.discs
            .delete(&name)
            .map_err(|e| not_found_or("delete object", id, &name, e))
    }

    fn create_temp(&self, purpose: TempPurpose) -> Result<Box<dyn TempObject>> {
        let (name, offset) = match purpose {
            TempPurpose::DiffUpload { new_id } => {
                let object = self.object_name(new_id);
                self.ensure_dir(&object)?;
                (format!("{object}.difftemp"), 1)
            }
            TempPurpose::Recombine { step } => (
                format!("{}.recombinetemp.{step}", self.root),
                step as usize + 16,
            ),
        };
        // 0.13's DiscSetPathToFileSystemPath: the write file's disc plus an offset.
        let disc = self.discs.start_disc(&name) + offset;
        let path = self.discs.disc_dir(disc).join(&name);
        let fs = self.fs();
        let file = match fs.open(&path, OpenMode::CreateNew) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left by a crash between create and unlink, or another session's
                // in the instant before it unlinks its own; either way nobody
                // needs the name.
                warn!(path = %path.display(), "removing a stale temporary file");
                fs.remove_file(&path)
                    .map_err(|e| Error::io("unlink stale temporary", &path, e))?;
                fs.open(&path, OpenMode::CreateNew)
                    .map_err(|e| Error::io("create temporary", &path, e))?
            }
            Err(e) => return Err(Error::io("create temporary", &path, e)),
        };
        match fs.remove_file(&path) {
            Ok(()) => {}
            // Another session took the name for a moment (see above): ours is
            // unlinked all the same.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("unlink temporary", &path, e)),
        }
        Ok(Box::new(RaidTemp {
            file,
            path,
            buf: Vec::new(),
            flushed: 0,
        }))
    }

    fn read_named(&self, file: NamedFile) -> Result<Option<Vec<u8>>> {
        if file.is_plain() {
            let path = self.plain_path(file);
            let f = match self.fs().open(&path, OpenMode::Read) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io("open", path, e)),
            };
            let len = f.stat().map_err(|e| Error::io("stat", &path, e))?.len;
            let len = usize::try_from(len).map_err(|_| Error::Invalid {
                op: "read named file",
                detail: format!("{} is too large", path.display()),
            })?;
            let mut buf = Vec::new();
            buf.try_reserve_exact(len).map_err(|_| Error::Invalid {
                op: "read named file",
                detail: format!("{} is too large ({len} bytes)", path.display()),
            })?;
            buf.resize(len, 0);
            let n = read_full_at(&*f, &mut buf, 0).map_err(|e| Error::io("read", &path, e))?;
            buf.truncate(n);
            return Ok(Some(buf));
        }
        let name = self.named_name(file);
        match RaidRead::open(&self.discs, &name) {
            Ok(mut r) => r
                .read_all()
                .map(Some)
                .map_err(|e| Error::raid("read", name, e)),
            Err(bb_raid::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::raid("open", name, e)),
        }
    }

    fn write_named(&self, file: NamedFile, data: &[u8]) -> Result<()> {
        if file == NamedFile::RefCountTemp {
            // Not a RaidWrite: it must sit next to refcount.rdb for the rename.
            let path = self.plain_path(file);
            let tmp = path.with_file_name("refcount.rdbX.rfwX");
            let fs = self.fs();
            let result = (|| {
                let f = fs
                    .open(&tmp, OpenMode::CreateRw)
                    .map_err(|e| Error::io("create", &tmp, e))?;
                f.set_len(0).map_err(|e| Error::io("truncate", &tmp, e))?;
                write_all_at(&*f, data, 0).map_err(|e| Error::io("write", &tmp, e))?;
                f.sync().map_err(|e| Error::io("fsync", &tmp, e))?;
                fs.rename(&tmp, &path)
                    .map_err(|e| Error::io("rename", &path, e))
            })();
            if result.is_err() {
                let _ = fs.remove_file(&tmp);
            }
            return result;
        }
        let name = self.named_name(file);
        let mut w = RaidWrite::create(&self.discs, &name, Overwrite::Allow)
            .map_err(|e| Error::raid("create", &name, e))?;
        w.write_bytes(data)
            .map_err(|e| Error::raid("write", &name, e))?;
        // The refcount database is never RAIDed: 0.13 updates it in place.
        let c = w
            .commit(!file.is_plain())
            .map_err(|e| Error::raid("commit", &name, e))?;
        if let Some(e) = c.transform_error {
            warn!(name, error = %e, "committed but not transformed to RAID");
        }
        Ok(())
    }

    fn patch_named(&self, file: NamedFile, offset: u64, data: &[u8]) -> Result<()> {
        if !file.is_plain() {
            return Err(Error::Invalid {
                op: "patch named file",
                detail: format!(
                    "{} is a RaidFile and cannot be changed in place",
                    file.file_name()
                ),
            });
        }
        let path = self.plain_path(file);
        let fs = self.fs();
        match fs.stat(&path) {
            Ok(_) => {}
            Err(e) => return Err(Error::io("stat", path, e)),
        }
        let f = fs
            .open(&path, OpenMode::CreateRw)
            .map_err(|e| Error::io("open", &path, e))?;
        // No fsync here: a refcount slot changes on every stored object, and its
        // loss in a crash is repaired by recounting. `sync_named` makes them durable.
        write_all_at(&*f, data, offset).map_err(|e| Error::io("write", &path, e))
    }

    fn sync_named(&self, file: NamedFile) -> Result<()> {
        if !file.is_plain() {
            // RaidFiles are synced by their commit.
            return Ok(());
        }
        let path = self.plain_path(file);
        let f = match self.fs().open(&path, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        f.sync().map_err(|e| Error::io("fsync", &path, e))
    }

    fn replace_named(&self, from: NamedFile, to: NamedFile) -> Result<()> {
        if !(from.is_plain() && to.is_plain()) {
            return Err(Error::Invalid {
                op: "replace named file",
                detail: "only the plain refcount files can be renamed".into(),
            });
        }
        let (a, b) = (self.plain_path(from), self.plain_path(to));
        self.fs()
            .rename(&a, &b)
            .map_err(|e| Error::io("rename", a, e))?;
        if let Some(dir) = b.parent() {
            self.fs()
                .sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))?;
        }
        Ok(())
    }

    fn delete_named(&self, file: NamedFile) -> Result<bool> {
        if file.is_plain() {
            let path = self.plain_path(file);
            return match self.fs().remove_file(&path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(Error::io("unlink", path, e)),
            };
        }
        let name = self.named_name(file);
        match self.discs.delete(&name) {
            Ok(()) => Ok(true),
            Err(bb_raid::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::raid("delete", name, e)),
        }
    }

    fn walk(&self, visit: &mut dyn FnMut(WalkItem) -> Result<()>) -> Result<()> {
        self.walk_dir("", visit)
    }

    fn lock_for_writing(&self) -> Result<Box<dyn WriteLockGuard>> {
        // Only in the first directory of the set, and not a RaidFile (store.md §3.4).
        let path = self.discs.disc_dir(0).join(&self.root).join("write.lock");
        let fs = self.discs.fs().clone();
        match lock_path(&*fs, &path, true, false) {
            Ok(Some(held)) => Ok(Box::new(RaidWriteLock {
                held: Some(held),
                fs,
            })),
            Ok(None) => Err(Error::CannotLockStoreForWriting {
                account: self.account,
            }),
            Err(e) => Err(Error::io("lock", path, e)),
        }
    }

    fn account_exists(&self) -> Result<bool> {
        let root = self.root.trim_end_matches('/');
        self.discs
            .dir_exists(root)
            .map_err(|e| Error::raid("check account directory", root, e))
    }

    fn create_account_storage(&self) -> Result<()> {
        let root = self.root.trim_end_matches('/');
        if self.account_exists()? {
            return Err(Error::AccountExists {
                account: self.account,
                detail: format!("{root} exists on the discs"),
            });
        }
        self.discs
            .create_dir(root, true)
            .map_err(|e| Error::raid("create account directory", root, e))
    }

    fn destroy_account_storage(&self) -> Result<()> {
        let root = self.root.trim_end_matches('/');
        // 0.13 runs `rm -rf` on the account directory of every disc.
        for d in self.discs.dirs() {
            let p = d.join(root);
            match std::fs::remove_dir_all(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", p, e)),
            }
        }
        self.known_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_of_the_spec() {
        // store.md §3.2.
        for (id, p) in [
            (0x1, "o01"),
            (0xff, "off"),
            (0x100, "01/o00"),
            (0x1234, "12/o34"),
            (0x123456, "34/12/o56"),
            (0x10000, "00/01/o00"),
        ] {
            assert_eq!(object_path(id), p);
            assert_eq!(parse_object_path(p), Some(id));
        }
        for bad in ["o1", "oFF", "00/o05", "x/o01", "o001", "01/o0g", "", "info"] {
            assert_eq!(parse_object_path(bad), None, "{bad}");
        }
        assert_eq!(account_root(10), "backup/0000000a/");
    }
}
