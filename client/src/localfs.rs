//! The local side of attributes: what 0.13 records of a path (`formats.md` §4.2,
//! read with `lstat` and `llistxattr`/`lgetxattr`, never following a symlink),
//! and how a restore puts them back (§4.2, last paragraph).
//!
//! Owns: box_time conversions of local times, reading [`UnixAttributes`] from a
//! path, applying them to a restored path.
//!
//! Must not know: the store, the keys or the wire; callers encrypt and hash.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use bb_format::BoxTime;
use bb_format::attributes::UnixAttributes;
use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};

/// A local time (seconds and nanoseconds since the epoch) as box_time
/// (microseconds since the epoch).
pub fn box_time(secs: i64, nsec: i64) -> BoxTime {
    secs.saturating_mul(1_000_000).saturating_add(nsec / 1000)
}

/// The modification time of `md` as box_time.
pub fn mtime_of(md: &Metadata) -> BoxTime {
    box_time(md.mtime(), md.mtime_nsec())
}

/// The attribute modification time (ctime) of `md` as box_time.
pub fn ctime_of(md: &Metadata) -> BoxTime {
    box_time(md.ctime(), md.ctime_nsec())
}

/// The attributes 0.13 records for `path`, whose `lstat` is `md`: directories
/// carry no times; a symlink carries its target; xattrs are read without
/// following symlinks and sorted by name. A filesystem without xattr support
/// gives none rather than an error.
pub fn read_attributes(path: &Path, md: &Metadata) -> io::Result<UnixAttributes> {
    let is_dir = md.is_dir();
    Ok(UnixAttributes {
        uid: md.uid(),
        gid: md.gid(),
        mtime: if is_dir { 0 } else { mtime_of(md) },
        attr_mtime: if is_dir { 0 } else { ctime_of(md) },
        user_flags: 0,
        generation: 0,
        // The low 16 bits hold the type and permission bits (§4.2).
        mode: (md.mode() & 0xffff) as u16,
        symlink_target: if md.file_type().is_symlink() {
            Some(fs::read_link(path)?.as_os_str().as_bytes().to_vec())
        } else {
            None
        },
        xattrs: read_xattrs(path)?,
    })
}

/// The extended attributes of `path` (not following a symlink), sorted by name.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        // An attribute removed between list and get is simply not there.
        if let Some(value) = xattr::get(path, &name)? {
            out.push((name.as_bytes().to_vec(), value));
        }
    }
    out.sort();
    Ok(out)
}

fn unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error())
}

/// What [`apply_attributes`] may do besides permissions, xattrs and times.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Set owner and group (0.13 does so only when running as root).
    pub set_owner: bool,
}

impl ApplyOptions {
    /// Owners are set when this process runs as root, as 0.13 does.
    pub fn as_013() -> ApplyOptions {
        ApplyOptions {
            set_owner: rustix::process::geteuid().is_root(),
        }
    }
}

/// Puts `a` back on the restored `path`: owner (if asked), xattrs, permission
/// bits (`mode & 07777`, not on symlinks), and the modification time (access
/// time := modification time, as 0.13 does) of files and symlinks. Directory
/// times are left to the caller, which must set them after filling the
/// directory.
pub fn apply_attributes(path: &Path, a: &UnixAttributes, how: ApplyOptions) -> io::Result<()> {
    if how.set_owner {
        std::os::unix::fs::lchown(path, Some(a.uid), Some(a.gid))?;
    }
    for (name, value) in &a.xattrs {
        match xattr::set(path, OsStr::from_bytes(name), value) {
            Err(e) if unsupported(&e) => break,
            r => r?,
        }
    }
    if !a.is_symlink() {
        fs::set_permissions(path, fs::Permissions::from_mode(u32::from(a.mode & 0o7777)))?;
    }
    if !a.is_dir() {
        set_mtime(path, a.mtime)?;
    }
    Ok(())
}

/// Sets access and modification time of `path` (not following a symlink).
pub fn set_mtime(path: &Path, t: BoxTime) -> io::Result<()> {
    let ts = Timespec {
        tv_sec: t.div_euclid(1_000_000),
        tv_nsec: (t.rem_euclid(1_000_000) * 1000) as _,
    };
    let times = Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_applies_file_symlink_and_xattrs() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        fs::write(&f, b"hello").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        let xattrs_work = xattr::set(&f, "user.test", b"v1").is_ok();
        set_mtime(&f, 1_577_934_245_123_456).unwrap();
        let md = fs::symlink_metadata(&f).unwrap();
        let a = read_attributes(&f, &md).unwrap();
        assert_eq!(a.mode, 0o100640);
        assert_eq!(a.mtime, 1_577_934_245_123_456);
        if xattrs_work {
            assert_eq!(a.xattrs, vec![(b"user.test".to_vec(), b"v1".to_vec())]);
        }

        let g = dir.path().join("g");
        fs::write(&g, b"").unwrap();
        apply_attributes(&g, &a, ApplyOptions::default()).unwrap();
        let b = read_attributes(&g, &fs::symlink_metadata(&g).unwrap()).unwrap();
        assert_eq!((b.mode, b.mtime, &b.xattrs), (a.mode, a.mtime, &a.xattrs));

        let l = dir.path().join("l");
        std::os::unix::fs::symlink("/", &l).unwrap();
        let la = read_attributes(&l, &fs::symlink_metadata(&l).unwrap()).unwrap();
        assert!(la.is_symlink());
        assert_eq!(la.symlink_target.as_deref(), Some(&b"/"[..]));

        let d = dir.path().join("d");
        fs::create_dir(&d).unwrap();
        let da = read_attributes(&d, &fs::symlink_metadata(&d).unwrap()).unwrap();
        assert_eq!((da.mtime, da.attr_mtime), (0, 0));
        assert!(da.is_dir());
    }

    #[test]
    fn box_time_of_negative_and_large_times() {
        assert_eq!(box_time(1, 500), 1_000_000);
        assert_eq!(box_time(-1, 0), -1_000_000);
        assert_eq!(box_time(i64::MAX, 0), i64::MAX);
    }
}
