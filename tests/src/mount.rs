//! bbackupfs mounts for the suites: start one in the foreground on a
//! bbackupd.conf, wait until it is mounted, unmount it on drop; and the
//! strict comparison of a source tree with a mounted one (every path's
//! lstat, symlink target and xattrs).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ours::bin;

/// Whether mount tests can run: /dev/fuse exists. Where it does not, they
/// skip, unless `BB_REQUIRE_FUSE` is set (as `scripts/test.sh` sets it), when
/// they fail.
pub fn fuse_available(test: &str) -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    assert!(
        std::env::var_os("BB_REQUIRE_FUSE").is_none(),
        "{test}: /dev/fuse is missing and BB_REQUIRE_FUSE is set"
    );
    eprintln!("{test}: skipped, /dev/fuse is missing");
    false
}

pub use bb_fs::mount::is_mounted;

/// A running `bbackupfs -f`.
#[derive(Debug)]
pub struct Mount {
    pub dir: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

impl Mount {
    /// Mounts the account of `conf` on `dir` (created) with `extra` options.
    pub fn start(conf: &Path, dir: &Path, extra: &[&str]) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.with_extension("log");
        let mut child = Command::new(bin("bbackupfs"))
            .arg("-f")
            .arg("-c")
            .arg(conf)
            .args(extra)
            .arg(dir)
            .env("BBACKUPFS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start bbackupfs");
        let t = Instant::now();
        while !is_mounted(dir) {
            if let Some(st) = child.try_wait().unwrap() {
                panic!(
                    "bbackupfs exited ({st}) before mounting:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "bbackupfs did not mount"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Mount {
            dir: dir.to_path_buf(),
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// What bbackupfs logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Unmounts with `fusermount3 -u` and waits for the process to exit.
    pub fn unmount(mut self) -> std::process::ExitStatus {
        self.stop().expect("bbackupfs still running")
    }

    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let t = Instant::now();
        let mut unmounted = false;
        loop {
            // The kernel may still hold a file of the mount closed a moment
            // ago (EBUSY): try again for a while.
            if !unmounted {
                unmounted = Command::new("fusermount3")
                    .arg("-u")
                    .arg(&self.dir)
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
            }
            if let Some(st) = child.try_wait().unwrap() {
                return Some(st);
            }
            if t.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                let _ = Command::new("fusermount3")
                    .args(["-u", "-z"])
                    .arg(&self.dir)
                    .status();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the comparison looks at for one path.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    /// Files and symlinks only: 0.13 keeps no directory size or mtime.
    size: Option<u64>,
    mtime_us: Option<i64>,
    target: Option<PathBuf>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn seen(p: &Path) -> Seen {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_file() {
        "file"
    } else {
        "other"
    };
    let xattrs = if ft.is_symlink() {
        BTreeMap::new()
    } else {
        xattr::list(p)
            .unwrap()
            .filter(|n| n.to_string_lossy().starts_with("user."))
            .map(|n| {
                let v = xattr::get(p, &n).unwrap().unwrap_or_default();
                (n.to_string_lossy().into_owned(), v)
            })
            .collect()
    };
    Seen {
        kind,
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        size: (!ft.is_dir()).then_some(m.size()),
        mtime_us: (!ft.is_dir()).then(|| m.mtime() * 1_000_000 + m.mtime_nsec() / 1000),
        target: ft.is_symlink().then(|| std::fs::read_link(p).unwrap()),
        xattrs,
    }
}

/// Every relative path under `root` (not following symlinks), sorted.
pub fn paths(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(root.join(&rel))
            .unwrap_or_else(|e| panic!("readdir {}: {e}", root.join(&rel).display()))
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let r = rel.join(n);
            if std::fs::symlink_metadata(root.join(&r)).unwrap().is_dir() {
                stack.push(r.clone());
            }
            out.push(r);
        }
    }
    out.sort();
    out
}

/// Differences between `src` and `mnt`: paths on one side only, and for
/// every path the type, mode, uid, gid, size and mtime (files and
/// symlinks), symlink target and user xattrs. Sockets and FIFOs in `src` are
/// not backed up by Box Backup and are left out.
pub fn lstat_differences(src: &Path, mnt: &Path) -> Vec<String> {
    let mut diffs = Vec::new();
    let a: Vec<PathBuf> = paths(src)
        .into_iter()
        .filter(|p| {
            let ft = std::fs::symlink_metadata(src.join(p)).unwrap().file_type();
            ft.is_dir() || ft.is_file() || ft.is_symlink()
        })
        .collect();
    let b = paths(mnt);
    let (sa, sb): (std::collections::BTreeSet<_>, std::collections::BTreeSet<_>) =
        (a.iter().collect(), b.iter().collect());
    for p in sa.difference(&sb) {
        diffs.push(format!("only in source: {}", p.display()));
    }
    for p in sb.difference(&sa) {
        diffs.push(format!("only in mount: {}", p.display()));
    }
    for p in sa.intersection(&sb) {
        let (x, y) = (seen(&src.join(p)), seen(&mnt.join(p)));
        if x != y {
            diffs.push(format!("{}: source {x:?}, mount {y:?}", p.display()));
        }
    }
    diffs
}

/// `diff -r a b`: its output ("" when the trees have the same content).
pub fn diff_r(a: &Path, b: &Path) -> String {
    let out = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}
