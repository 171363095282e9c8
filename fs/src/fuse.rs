//! The FUSE side: fuser's requests to [`BoxFs`] calls and back, the errno map
//! applied ([`Error::errno`]), and EROFS for every request that would change
//! anything (the mount is also made `ro`, so the kernel refuses most of them
//! before they get here).
//!
//! Must not know: the store, caches.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::core::BoxFs;

/// How long the kernel may keep a file's attributes: a file inode stands for
/// one stored object, which never changes.
const FILE_TTL: Duration = Duration::from_secs(3600);

/// fuser's view of a mount.
#[allow(missing_debug_implementations)]
pub struct Fuse {
    pub fs: Arc<BoxFs>,
    /// Entry and directory attribute lifetime (the listing refresh time).
    pub ttl: Duration,
    /// Requests served, by kind (logged at unmount).
    pub ops: Ops,
}

/// Request counters.
#[derive(Debug, Default)]
pub struct Ops {
    counts: [std::sync::atomic::AtomicU64; OP_NAMES.len()],
}

const OP_NAMES: [&str; 12] = [
    "lookup",
    "getattr",
    "open",
    "read",
    "release",
    "opendir",
    "readdir",
    "readdirplus",
    "getxattr",
    "listxattr",
    "readlink",
    "other",
];

impl Ops {
    fn count(&self, name: &str) {
        let k = OP_NAMES
            .iter()
            .position(|n| *n == name)
            .unwrap_or(OP_NAMES.len() - 1);
        self.counts[k].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn summary(&self) -> String {
        OP_NAMES
            .iter()
            .zip(&self.counts)
            .map(|(n, c)| format!("{n} {}", c.load(std::sync::atomic::Ordering::Relaxed)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Fuse {
    fn ttl(&self, a: &FileAttr) -> Duration {
        if a.kind == fuser::FileType::Directory {
            self.ttl
        } else {
            FILE_TTL
        }
    }
}

const ENODATA: Errno = Errno::NO_XATTR;
const ERANGE: Errno = Errno::ERANGE;
const EROFS: Errno = Errno::EROFS;

fn xattr_reply(reply: ReplyXattr, data: &[u8], size: u32) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if (size as usize) < data.len() {
        reply.error(ERANGE);
    } else {
        reply.data(data);
    }
}

impl Filesystem for Fuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn destroy(&mut self) {
        let s = self.fs.stats();
        tracing::info!(
            "unmounted: {} listings, {} whole files and {} file heads fetched, {} metadata records from disc, {} small files fetched again for reading",
            s.listings_fetched
                .load(std::sync::atomic::Ordering::Relaxed),
            s.files_fetched.load(std::sync::atomic::Ordering::Relaxed),
            s.heads_fetched.load(std::sync::atomic::Ordering::Relaxed),
            s.disk_hits.load(std::sync::atomic::Ordering::Relaxed),
            s.refetched.load(std::sync::atomic::Ordering::Relaxed),
        );
        tracing::info!("requests: {}", self.ops.summary());
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.ops.count("lookup");
        match self.fs.lookup(parent.0, name.as_bytes()) {
            Ok((_, a)) => reply.entry(&self.ttl(&a), &a, Generation(0)),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.ops.count("getattr");
        match self.fs.getattr(ino.0) {
            Ok(a) => reply.attr(&self.ttl(&a), &a),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.ops.count("readlink");
        match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.ops.count("open");
        if flags.acc_mode() != OpenAccMode::O_RDONLY
            || flags.0 & (libc_o_trunc() | libc_o_creat()) != 0
        {
            return reply.error(EROFS);
        }
        // No handles: ENOSYS tells the kernel to open files without asking
        // from now on (no OPEN, no RELEASE), keeping their pages cached,
        // which is right since a file inode's content never changes.
        reply.error(Errno::ENOSYS);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.ops.count("read");
        match self.fs.read(ino.0, offset, size as usize) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.ops.count("release");
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.ops.count("opendir");
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(EROFS);
        }
        match self.fs.getattr(ino.0) {
            Ok(a) if a.kind == fuser::FileType::Directory => {
                reply.opened(FileHandle(0), FopenFlags::empty())
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.ops.count("readdir");
        match self.fs.readdir(ino.0, offset, 256, false) {
            Ok(list) => {
                for (next, child, name, kind, _) in list {
                    if reply.add(INodeNo(child), next, kind, OsStr::from_bytes(&name)) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e.errno()),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.ops.count("readdirplus");
        // About as many entries as one reply buffer takes; an entry that does
        // not fit is given back to the kernel as forgotten.
        match self.fs.readdir(ino.0, offset, 128, true) {
            Ok(list) => {
                let mut full = false;
                for (next, child, name, kind, attr) in list {
                    let counted = attr.is_some();
                    if full {
                        if counted {
                            self.fs.forget(child, 1);
                        }
                        continue;
                    }
                    let a = attr.unwrap_or_else(|| dot_attr(child, kind));
                    let ttl = self.ttl(&a);
                    if reply.add(
                        INodeNo(child),
                        next,
                        OsStr::from_bytes(&name),
                        &ttl,
                        &a,
                        Generation(0),
                    ) {
                        full = true;
                        if counted {
                            self.fs.forget(child, 1);
                        }
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e.errno()),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.usage() {
            Ok((bsize, used, limit)) => {
                let total = limit.max(used);
                reply.statfs(
                    total,
                    total - used,
                    0,
                    0,
                    0,
                    bsize as u32,
                    255,
                    bsize as u32,
                );
            }
            Err(e) => reply.error(e.errno()),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.ops.count("getxattr");
        match self.fs.xattrs(ino.0) {
            Ok(x) => match x.iter().find(|(n, _)| n == name.as_bytes()) {
                Some((_, v)) => xattr_reply(reply, v, size),
                None => reply.error(ENODATA),
            },
            Err(e) => reply.error(e.errno()),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.ops.count("listxattr");
        match self.fs.xattrs(ino.0) {
            Ok(x) => {
                let mut names = Vec::new();
                for (n, _) in &x {
                    names.extend_from_slice(n);
                    names.push(0);
                }
                xattr_reply(reply, &names, size);
            }
            Err(e) => reply.error(e.errno()),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if mask.contains(AccessFlags::W_OK) {
            return reply.error(EROFS);
        }
        match self.fs.getattr(ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e.errno()),
        }
    }

    // Everything that would change the store: read-only.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _r: u32,
        reply: ReplyEntry,
    ) {
        reply.error(EROFS);
    }

    fn mkdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, reply: ReplyEntry) {
        reply.error(EROFS);
    }

    fn unlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(EROFS);
    }

    fn rmdir(&self, _req: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(EROFS);
    }

    fn symlink(&self, _req: &Request, _p: INodeNo, _n: &OsStr, _t: &Path, reply: ReplyEntry) {
        reply.error(EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _np: INodeNo,
        _nn: &OsStr,
        _f: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(EROFS);
    }

    fn link(&self, _req: &Request, _i: INodeNo, _np: INodeNo, _nn: &OsStr, reply: ReplyEntry) {
        reply.error(EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _wf: WriteFlags,
        _flags: OpenFlags,
        _lo: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _m: u32,
        _u: u32,
        _f: i32,
        reply: ReplyCreate,
    ) {
        reply.error(EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _i: INodeNo,
        _fh: FileHandle,
        _o: u64,
        _l: u64,
        _m: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(EROFS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(EROFS);
    }
}

fn libc_o_trunc() -> i32 {
    0o1000
}

fn libc_o_creat() -> i32 {
    0o100
}

/// Attributes for `.` and `..` in a readdirplus reply (the kernel skips
/// those entries; only the type matters).
fn dot_attr(ino: u64, kind: fuser::FileType) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind,
        perm: 0o555,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}
