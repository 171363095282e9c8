//! Source trees for backup suites: a deterministic generated tree that changes
//! between rounds, and a comparison of two trees by content and attributes.
//!
//! The comparison checks what a Box Backup 0.13 restore brings back: regular
//! files (content, mode, uid, gid, mtime to the microsecond, user xattrs),
//! symlinks (target, uid, gid) and directories (mode, uid, gid, xattrs). It
//! leaves out, on purpose, what 0.13 does not keep: hard links come back as
//! separate files, symlink and directory mtimes are not restored, and FIFOs,
//! sockets and device nodes are not backed up at all.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// splitmix64: the same generator as the fixture pack's gen-source.py.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Incompressible bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }

    /// Compressible text: lines of words drawn from a small vocabulary.
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: [&str; 16] = [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "box",
            "backup", "store", "raid", "file", "data", "diff", "block",
        ];
        let mut v = Vec::with_capacity(len + 64);
        let mut line = 0u64;
        while v.len() < len {
            v.extend_from_slice(format!("{line:06} ").as_bytes());
            for _ in 0..10 {
                v.extend_from_slice(WORDS[self.below(16) as usize].as_bytes());
                v.push(b' ');
            }
            v.push(b'\n');
            line += 1;
        }
        v.truncate(len);
        v
    }
}

/// A fixed point in the past for generated mtimes (2024-01-01), whole microseconds.
const BASE_MTIME: u64 = 1_704_067_200;

/// Sets a file's mtime (and atime) without following symlinks.
pub fn set_mtime(path: &Path, secs: u64, micros: u32) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let t = Timespec {
        tv_sec: secs as i64,
        tv_nsec: i64::from(micros) * 1000,
    };
    utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

fn write(path: &Path, data: &[u8], mode: u32, mtime: u64, rng: &mut Rng) {
    fs::write(path, data).unwrap();
    if crate::is_root() {
        // Owners before the mode: chown clears setuid.
        let id = 1000 + rng.below(3) as u32;
        std::os::unix::fs::chown(path, Some(id), Some(id + 100)).unwrap();
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    set_mtime(path, mtime, rng.below(1_000_000) as u32);
}

/// A generated source tree: many small files in nested directories, a few
/// multi-megabyte files (so that 0.13 clients send diffs when they change),
/// symlinks (to a file, to a directory, dangling), xattrs, varied modes and owners.
#[derive(Debug)]
pub struct GenTree {
    pub root: PathBuf,
    pub big_files: Vec<PathBuf>,
    rng: Rng,
    round: u64,
}

impl GenTree {
    /// Creates the round-1 tree under `root` (which must not exist). `big` is the
    /// size of the largest multi-megabyte file; there are three, of big, big/2
    /// and big/3 bytes.
    pub fn create(
        root: &Path,
        seed: u64,
        dirs: usize,
        files_per_dir: usize,
        big: usize,
    ) -> GenTree {
        fs::create_dir_all(root).unwrap();
        let mut rng = Rng::new(seed);
        let mut big_files = Vec::new();
        for d in 0..dirs {
            let dir = root.join(format!("d{:02}/sub{}", d, d % 3));
            fs::create_dir_all(&dir).unwrap();
            for f in 0..files_per_dir {
                let len = rng.below(20_000) as usize;
                let data = if f % 3 == 0 {
                    rng.bytes(len)
                } else {
                    rng.text(len)
                };
                let mode = [0o644, 0o600, 0o755, 0o640][f % 4];
                let p = dir.join(format!(
                    "f{f:03}.{}",
                    if f % 3 == 0 { "bin" } else { "txt" }
                ));
                write(
                    &p,
                    &data,
                    mode,
                    BASE_MTIME + rng.below(10_000_000),
                    &mut rng,
                );
                if f % 7 == 0 {
                    xattr::set(&p, "user.tag", format!("file {d}/{f}").as_bytes()).unwrap();
                }
            }
        }
        let bigdir = root.join("big");
        fs::create_dir_all(&bigdir).unwrap();
        for (i, size) in [big, big / 2, big / 3].into_iter().enumerate() {
            let p = bigdir.join(format!("big{i}.dat"));
            // Half text, half random: compresses somewhat, like real data.
            let mut data = rng.text(size / 2);
            data.extend_from_slice(&rng.bytes(size - size / 2));
            write(&p, &data, 0o644, BASE_MTIME + i as u64, &mut rng);
            big_files.push(p);
        }
        let links = root.join("links");
        fs::create_dir_all(&links).unwrap();
        std::os::unix::fs::symlink("../big/big0.dat", links.join("to-file")).unwrap();
        std::os::unix::fs::symlink("../d00", links.join("to-dir")).unwrap();
        std::os::unix::fs::symlink("../no/such/thing", links.join("dangling")).unwrap();
        xattr::set(root.join("d00"), "user.dir", b"a directory attribute").unwrap();
        fs::write(root.join("empty"), b"").unwrap();
        set_mtime(&root.join("empty"), BASE_MTIME, 0);
        GenTree {
            root: root.to_path_buf(),
            big_files,
            rng,
            round: 1,
        }
    }

    /// Changes the tree for the next round: about 1% of every big file is
    /// rewritten in a few places and a little is appended (so a diff is sent),
    /// some small files change, are deleted or added, one file gets new
    /// attributes only, and one directory is renamed (inode tracking moves it).
    pub fn mutate(&mut self) {
        self.round += 1;
        let round = self.round;
        let rng = &mut self.rng;
        for (i, p) in self.big_files.iter().enumerate() {
            let mut data = fs::read(p).unwrap();
            let len = data.len();
            for _ in 0..4 {
                let n = (len / 400).max(1);
                let at = rng.below((len - n).max(1) as u64) as usize;
                let patch = rng.bytes(n);
                data[at..at + n].copy_from_slice(&patch);
            }
            data.extend_from_slice(&rng.text(10_000));
            fs::write(p, &data).unwrap();
            set_mtime(p, BASE_MTIME + 1_000 * round + i as u64, 0);
        }
        let mut changed = 0;
        for entry in walk(&self.root) {
            let p = &entry.0;
            let md = fs::symlink_metadata(p).unwrap();
            if !md.is_file() || self.big_files.contains(p) || md.len() == 0 {
                continue;
            }
            match rng.below(40) {
                0 => {
                    fs::remove_file(p).unwrap();
                }
                1 | 2 => {
                    let len = rng.below(20_000) as usize;
                    let data = rng.text(len);
                    let mode = md.mode() & 0o7777;
                    write(p, &data, mode, BASE_MTIME + 20_000_000 + round, rng);
                    changed += 1;
                }
                3 => {
                    // Attributes only.
                    let mode = if md.mode() & 0o077 == 0 { 0o644 } else { 0o600 };
                    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
                }
                _ => {}
            }
        }
        assert!(changed > 0, "mutation changed no small file");
        let newdir = self.root.join(format!("new-in-round-{round}"));
        fs::create_dir_all(&newdir).unwrap();
        for f in 0..5 {
            let len = rng.below(5000) as usize;
            let data = rng.text(len);
            write(
                &newdir.join(format!("n{f}.txt")),
                &data,
                0o644,
                BASE_MTIME + round,
                rng,
            );
        }
        let from = self.root.join(format!("d{:02}", round));
        if from.exists() {
            fs::rename(&from, self.root.join(format!("renamed-d{:02}", round))).unwrap();
        }
    }
}

/// Every path under `root` (not `root` itself), sorted, with its relative path.
pub fn walk(root: &Path) -> Vec<(PathBuf, String)> {
    fn rec(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let is_dir = fs::symlink_metadata(&p).unwrap().is_dir();
            out.push((p.clone(), rel));
            if is_dir {
                rec(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    rec(root, root, &mut out);
    out
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    if let Ok(names) = xattr::list(p) {
        for n in names {
            let n = n.to_string_lossy().into_owned();
            if !n.starts_with("user.") {
                continue;
            }
            if let Ok(Some(v)) = xattr::get(p, &n) {
                m.insert(n, v);
            }
        }
    }
    m
}

fn mtime_micros(md: &fs::Metadata) -> u128 {
    md.modified()
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros()
}

/// Differences between two trees in what a 0.13 restore keeps (see the module
/// docs). Empty means identical. Ownership is compared only when running as root.
pub fn compare_trees(a: &Path, b: &Path) -> Vec<String> {
    let keep = |root: &Path| -> BTreeMap<String, PathBuf> {
        walk(root)
            .into_iter()
            .filter(|(p, _)| {
                let ft = fs::symlink_metadata(p).unwrap().file_type();
                ft.is_file() || ft.is_dir() || ft.is_symlink()
            })
            .map(|(p, r)| (r, p))
            .collect()
    };
    let (ma, mb) = (keep(a), keep(b));
    let mut diffs = Vec::new();
    for r in ma.keys().filter(|r| !mb.contains_key(*r)) {
        diffs.push(format!("{r}: only in {}", a.display()));
    }
    for r in mb.keys().filter(|r| !ma.contains_key(*r)) {
        diffs.push(format!("{r}: only in {}", b.display()));
    }
    let root = crate::is_root();
    for (r, pa) in &ma {
        let Some(pb) = mb.get(r) else { continue };
        let (x, y) = (
            fs::symlink_metadata(pa).unwrap(),
            fs::symlink_metadata(pb).unwrap(),
        );
        if x.file_type() != y.file_type() {
            diffs.push(format!(
                "{r}: type {:?} vs {:?}",
                x.file_type(),
                y.file_type()
            ));
            continue;
        }
        if root && (x.uid(), x.gid()) != (y.uid(), y.gid()) {
            diffs.push(format!(
                "{r}: owner {}:{} vs {}:{}",
                x.uid(),
                x.gid(),
                y.uid(),
                y.gid()
            ));
        }
        if x.file_type().is_symlink() {
            let (ta, tb) = (fs::read_link(pa).unwrap(), fs::read_link(pb).unwrap());
            if ta != tb {
                diffs.push(format!("{r}: symlink {} vs {}", ta.display(), tb.display()));
            }
            continue;
        }
        if x.mode() & 0o7777 != y.mode() & 0o7777 {
            diffs.push(format!(
                "{r}: mode {:o} vs {:o}",
                x.mode() & 0o7777,
                y.mode() & 0o7777
            ));
        }
        if xattrs(pa) != xattrs(pb) {
            diffs.push(format!("{r}: xattrs {:?} vs {:?}", xattrs(pa), xattrs(pb)));
        }
        if x.is_file() {
            if mtime_micros(&x) != mtime_micros(&y) {
                diffs.push(format!(
                    "{r}: mtime {} vs {}",
                    mtime_micros(&x),
                    mtime_micros(&y)
                ));
            }
            if x.len() != y.len() || fs::read(pa).unwrap() != fs::read(pb).unwrap() {
                diffs.push(format!(
                    "{r}: content differs ({} vs {} bytes)",
                    x.len(),
                    y.len()
                ));
            }
        }
    }
    diffs
}

/// `dir/source` with files `f0`, `f1`, ... of `sizes` bytes of xorshift noise
/// (incompressible, the same bytes every time): uploads of a known size.
pub fn incompressible_files(dir: &Path, sizes: &[usize]) -> PathBuf {
    let s = dir.join("source");
    fs::create_dir_all(&s).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for (i, n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..*n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        fs::write(s.join(format!("f{i}")), data).unwrap();
    }
    s
}
