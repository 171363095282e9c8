//! Quick start (interim, until the daemons exist): encodes a directory into Box
//! Backup 0.13 objects exactly as a 0.13 client would upload them, lays them out
//! as a single-disc store account (`backup/00000001/oXX.rfw`, `info.rfw`,
//! `refcount.rdb.rfw`), then decodes that store back into a restore directory
//! and checks every file against the source: content, mode, owner, mtime,
//! xattrs and symlink targets.
//!
//!     cargo run --release -p bb-format --example quickstart -- [SOURCE] [OUT]
//!
//! SOURCE defaults to a small built-in sample written into OUT/sample; OUT
//! defaults to ./bb-quickstart. The keys file OUT/keys.raw is made once
//! (1024 random bytes, as bbackupd-config makes it) and reused.

use std::collections::BTreeMap;
use std::error::Error;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use bb_format::attributes::UnixAttributes;
use bb_format::decode::decode_file;
use bb_format::directory::{Directory, Entry};
use bb_format::encode::{FileMeta, encode_file};
use bb_format::recipe::Recipe;
use bb_format::refcount::RefCountDatabase;
use bb_format::storeinfo::StoreInfo;
use bb_format::{EncodedName, Keys, crypto};

type Res<T> = Result<T, Box<dyn Error>>;

const ACCOUNT: u32 = 1;
const BLOCK: u64 = 4096;

fn main() {
    if let Err(e) = run() {
        eprintln!("quickstart: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let out = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| PathBuf::from("bb-quickstart"));
    fs::create_dir_all(&out)?;
    let source = match args.first() {
        Some(s) => s.clone(),
        None => write_sample(&out.join("sample"))?,
    };
    let source = fs::canonicalize(&source).map_err(|e| format!("{}: {e}", source.display()))?;
    let keys = load_or_make_keys(&out.join("keys.raw"))?;

    let store = out.join("store");
    let restore = out.join("restore");
    for d in [&store, &restore] {
        if d.exists() {
            fs::remove_dir_all(d)?;
        }
    }
    let account = store.join(format!("backup/{ACCOUNT:08x}"));

    let t = Instant::now();
    let mut b = Backup {
        keys: &keys,
        account: account.clone(),
        next_id: 2,
        info: StoreInfo::new(ACCOUNT, 1 << 20, 2 << 20),
        refcounts: RefCountDatabase::new(ACCOUNT),
        bytes_in: 0,
        bytes_stored: 0,
        files: 0,
    };
    let location = source
        .file_name()
        .map(|n| n.as_encoded_bytes().to_vec())
        .unwrap_or(b"root".to_vec());
    let mut root = Directory::new(1, 1);
    let (loc_id, loc_size) = b.backup_dir(&source, 1)?;
    root.entries
        .push(dir_entry(&keys, &location, loc_id, loc_size)?);
    let root_size = b.write_object(1, &root.encode()?)?;
    b.info.blocks_in_directories += root_size;
    b.info.blocks_used += root_size;
    b.info.last_object_id_used = b.next_id - 1;
    b.refcounts.set(1, 1)?;
    write(&account.join("info.rfw"), &b.info.encode()?)?;
    write(&account.join("refcount.rdb.rfw"), &b.refcounts.encode())?;
    let backup_time = t.elapsed();

    let t = Instant::now();
    let r = Restore {
        keys: &keys,
        account: &account,
    };
    let root = Directory::parse(&fs::read(account.join("o01.rfw"))?)?;
    for e in &root.entries {
        let name = e.name.decrypt(&keys)?;
        r.restore_dir(
            e.object_id,
            &restore.join(Path::new(
                std::ffi::OsStr::from_encoded_bytes_unchecked_safe(&name),
            )),
        )?;
    }
    let restore_time = t.elapsed();

    let restored = restore.join(source.file_name().unwrap_or_default());
    let problems = verify(&source, &restored)?;
    let mb = |n: u64| n as f64 / 1e6;
    let rate = |n: u64, d: Duration| mb(n) / d.as_secs_f64().max(1e-9);
    println!("source:   {}", source.display());
    println!(
        "backup:   {} files, {:.1} MB -> {:.1} MB of encrypted objects in {:.2}s ({:.0} MB/s)",
        b.files,
        mb(b.bytes_in),
        mb(b.bytes_stored),
        backup_time.as_secs_f64(),
        rate(b.bytes_in, backup_time)
    );
    println!(
        "store:    {} (0.13 single-disc layout, account {ACCOUNT:08x}, {} objects)",
        store.display(),
        b.next_id - 1
    );
    println!(
        "restore:  {} in {:.2}s ({:.0} MB/s)",
        restored.display(),
        restore_time.as_secs_f64(),
        rate(b.bytes_in, restore_time)
    );
    if problems.is_empty() {
        println!("verify:   identical (content, modes, owners, mtimes, xattrs, symlinks)");
        println!();
        println!("Try next:");
        println!("  diff -r {} {}", source.display(), restored.display());
        println!("  ls -la {}", account.display());
        Ok(())
    } else {
        for p in &problems {
            println!("differs:  {p}");
        }
        Err(format!("{} differences", problems.len()).into())
    }
}

/// `OsStr::from_encoded_bytes_unchecked` is unsafe in general; on Unix any
/// bytes are a valid OsStr, which `OsStrExt::from_bytes` expresses safely.
trait FromBytes {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr;
}
impl FromBytes for std::ffi::OsStr {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

fn load_or_make_keys(path: &Path) -> Res<Keys> {
    if !path.exists() {
        let mut raw = vec![0u8; bb_format::keys::KEYS_FILE_LEN];
        crypto::random_bytes(&mut raw);
        write(path, &raw)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(Keys::from_file(path)?)
}

fn write(path: &Path, data: &[u8]) -> Res<()> {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p)?;
    }
    fs::write(path, data)?;
    Ok(())
}

fn box_time(secs: i64, nsec: i64) -> i64 {
    secs * 1_000_000 + nsec / 1000
}

/// The attributes 0.13 records for a path (lstat, xattrs read without
/// following symlinks); directories carry no times.
fn attributes_of(path: &Path, md: &fs::Metadata) -> Res<UnixAttributes> {
    let is_dir = md.is_dir();
    let mut xattrs = Vec::new();
    for name in xattr::list(path)? {
        let value = xattr::get(path, &name)?.unwrap_or_default();
        xattrs.push((name.as_encoded_bytes().to_vec(), value));
    }
    xattrs.sort();
    Ok(UnixAttributes {
        uid: md.uid(),
        gid: md.gid(),
        mtime: if is_dir {
            0
        } else {
            box_time(md.mtime(), md.mtime_nsec())
        },
        attr_mtime: if is_dir {
            0
        } else {
            box_time(md.ctime(), md.ctime_nsec())
        },
        user_flags: 0,
        generation: 0,
        mode: md.mode() as u16,
        symlink_target: if md.file_type().is_symlink() {
            Some(fs::read_link(path)?.as_os_str().as_encoded_bytes().to_vec())
        } else {
            None
        },
        xattrs,
    })
}

fn dir_entry(keys: &Keys, name: &[u8], id: i64, size: i64) -> Res<Entry> {
    Ok(Entry {
        mtime: 0,
        object_id: id,
        size_in_blocks: size,
        attributes_hash: 0,
        flags: Entry::DIR,
        name: EncodedName::encrypt(keys, name)?,
        attributes: Vec::new(),
        depends_newer: 0,
        depends_older: 0,
    })
}

struct Backup<'a> {
    keys: &'a Keys,
    account: PathBuf,
    next_id: i64,
    info: StoreInfo,
    refcounts: RefCountDatabase,
    bytes_in: u64,
    bytes_stored: u64,
    files: u64,
}

impl Backup<'_> {
    fn alloc(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// Writes an object where a single-disc 0.13 store keeps it (store.md §3.2)
    /// and returns its size in blocks.
    fn write_object(&mut self, id: i64, data: &[u8]) -> Res<i64> {
        let mut rest = id as u64 >> 8;
        let mut path = self.account.clone();
        while rest != 0 {
            path.push(format!("{:02x}", rest & 0xff));
            rest >>= 8;
        }
        path.push(format!("o{:02x}.rfw", id as u64 & 0xff));
        write(&path, data)?;
        self.bytes_stored += data.len() as u64;
        self.refcounts.set(id, 1)?;
        Ok((data.len() as u64).div_ceil(BLOCK) as i64)
    }

    /// Backs up one directory and everything below it; returns its object id
    /// and size in blocks.
    fn backup_dir(&mut self, path: &Path, container: i64) -> Res<(i64, i64)> {
        let id = self.alloc();
        let md = fs::symlink_metadata(path)?;
        let mut dir = Directory::new(id, container);
        dir.attributes = attributes_of(path, &md)?.encrypt(self.keys)?;
        dir.attributes_mod_time = box_time(md.ctime(), md.ctime_nsec());
        let mut names: BTreeMap<Vec<u8>, PathBuf> = BTreeMap::new();
        for e in fs::read_dir(path)? {
            let e = e?;
            names.insert(e.file_name().as_encoded_bytes().to_vec(), e.path());
        }
        for (name, child) in names {
            let md = fs::symlink_metadata(&child)?;
            let ft = md.file_type();
            if ft.is_dir() {
                let (cid, size) = self.backup_dir(&child, id)?;
                dir.entries.push(dir_entry(self.keys, &name, cid, size)?);
            } else if ft.is_file() || ft.is_symlink() {
                let attrs = attributes_of(&child, &md)?;
                let content = if ft.is_file() {
                    fs::read(&child)?
                } else {
                    Vec::new()
                };
                let meta = FileMeta {
                    container_id: id,
                    mtime: attrs.mtime,
                    name: EncodedName::encrypt(self.keys, &name)?,
                    attributes: attrs.encrypt(self.keys)?,
                    symlink: ft.is_symlink(),
                };
                let recipe = if ft.is_symlink() {
                    Recipe::default()
                } else {
                    Recipe::whole(content.len() as u64)
                };
                let object = encode_file(self.keys, &meta, &recipe, &content)?;
                let fid = self.alloc();
                let size = self.write_object(fid, &object)?;
                self.info.blocks_in_current_files += size;
                self.info.blocks_used += size;
                self.info.num_current_files += 1;
                self.bytes_in += content.len() as u64;
                self.files += 1;
                dir.entries.push(Entry {
                    mtime: attrs.mtime,
                    object_id: fid,
                    size_in_blocks: size,
                    attributes_hash: attrs.attribute_hash(self.keys, &name)?,
                    flags: Entry::FILE,
                    name: meta.name,
                    attributes: Vec::new(),
                    depends_newer: 0,
                    depends_older: 0,
                });
            }
            // FIFOs, sockets and devices are skipped, as 0.13 does.
        }
        let size = self.write_object(id, &dir.encode()?)?;
        self.info.blocks_in_directories += size;
        self.info.blocks_used += size;
        self.info.num_directories += 1;
        Ok((id, size))
    }
}

struct Restore<'a> {
    keys: &'a Keys,
    account: &'a Path,
}

impl Restore<'_> {
    fn object(&self, id: i64) -> Res<Vec<u8>> {
        let mut rest = id as u64 >> 8;
        let mut path = self.account.to_path_buf();
        while rest != 0 {
            path.push(format!("{:02x}", rest & 0xff));
            rest >>= 8;
        }
        path.push(format!("o{:02x}.rfw", id as u64 & 0xff));
        Ok(fs::read(path)?)
    }

    fn restore_dir(&self, id: i64, to: &Path) -> Res<()> {
        let dir = Directory::parse(&self.object(id)?)?;
        fs::create_dir_all(to)?;
        for e in &dir.entries {
            let name = e.name.decrypt(self.keys)?;
            let child = to.join(std::ffi::OsStr::from_encoded_bytes_unchecked_safe(&name));
            if e.is_dir() {
                self.restore_dir(e.object_id, &child)?;
            } else {
                let file = decode_file(self.keys, &self.object(e.object_id)?)?;
                let attrs = UnixAttributes::decrypt(self.keys, &file.attributes)?
                    .ok_or("file has no attributes")?;
                match &attrs.symlink_target {
                    Some(t) => symlink(
                        std::ffi::OsStr::from_encoded_bytes_unchecked_safe(t),
                        &child,
                    )?,
                    None => fs::write(&child, &file.content)?,
                }
                apply(&child, &attrs)?;
            }
        }
        if let Some(attrs) = UnixAttributes::decrypt(self.keys, &dir.attributes)? {
            apply(to, &attrs)?;
        }
        Ok(())
    }
}

/// Restores what 0.13 restores: owner (as root), permissions, xattrs, and the
/// mtime of files (symlinks keep the time of their creation, as in 0.13).
fn apply(path: &Path, a: &UnixAttributes) -> Res<()> {
    let is_root = fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if is_root {
        lchown(path, Some(a.uid), Some(a.gid))?;
    }
    for (name, value) in &a.xattrs {
        xattr::set(
            path,
            std::ffi::OsStr::from_encoded_bytes_unchecked_safe(name),
            value,
        )?;
    }
    if a.symlink_target.is_none() {
        fs::set_permissions(path, fs::Permissions::from_mode(u32::from(a.mode & 0o7777)))?;
        if !a.is_dir() {
            let t = UNIX_EPOCH + Duration::from_micros(a.mtime.max(0) as u64);
            fs::File::options()
                .write(true)
                .open(path)
                .or_else(|_| fs::File::open(path))?
                .set_modified(t)?;
        }
    }
    Ok(())
}

/// Compares two trees as `compare -a` would; returns the differences.
fn verify(a: &Path, b: &Path) -> Res<Vec<String>> {
    let mut out = Vec::new();
    let (ma, mb) = (fs::symlink_metadata(a)?, fs::symlink_metadata(b)?);
    let (aa, ab) = (attributes_of(a, &ma)?, attributes_of(b, &mb)?);
    let same = aa.uid == ab.uid
        && aa.gid == ab.gid
        && aa.mode == ab.mode
        && aa.xattrs == ab.xattrs
        && aa.symlink_target == ab.symlink_target
        && (ma.is_dir() || ma.file_type().is_symlink() || aa.mtime == ab.mtime);
    if !same {
        out.push(format!("{}: attributes", a.display()));
    }
    if ma.is_file() && fs::read(a)? != fs::read(b)? {
        out.push(format!("{}: content", a.display()));
    }
    if ma.is_dir() {
        for e in fs::read_dir(a)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() || ft.is_file() || ft.is_symlink() {
                let other = b.join(e.file_name());
                if fs::symlink_metadata(&other).is_err() {
                    out.push(format!("{}: missing from the restore", e.path().display()));
                } else {
                    out.extend(verify(&e.path(), &other)?);
                }
            }
        }
    }
    Ok(out)
}

/// A small tree with the things backups get wrong: nesting, an empty file, a
/// multi-block compressible file, random data, a symlink, an xattr, odd modes.
fn write_sample(dir: &Path) -> Res<PathBuf> {
    if dir.exists() {
        return Ok(dir.to_path_buf());
    }
    fs::create_dir_all(dir.join("docs/deeper"))?;
    fs::write(dir.join("empty.txt"), b"")?;
    let text: String = (0..20000)
        .map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog\n"))
        .collect();
    fs::write(dir.join("docs/text.txt"), text)?;
    let mut random = vec![0u8; 300_000];
    crypto::random_bytes(&mut random);
    fs::write(dir.join("docs/deeper/random.bin"), random)?;
    fs::write(
        dir.join("docs/deeper/script.sh"),
        b"#!/bin/sh\necho hello\n",
    )?;
    fs::set_permissions(
        dir.join("docs/deeper/script.sh"),
        fs::Permissions::from_mode(0o750),
    )?;
    symlink("docs/text.txt", dir.join("link-to-text"))?;
    let _ = xattr::set(
        dir.join("docs/text.txt"),
        "user.note",
        b"kept with the file",
    );
    Ok(dir.to_path_buf())
}
