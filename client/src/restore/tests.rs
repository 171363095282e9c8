use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use bb_format::directory::Directory;
use bb_format::index::BlockIndex;
use bb_format::{BoxTime, EncodedName};
use bb_remote::fake::FakeStore;
use bb_remote::{ObjectNames, StoreWrite};

use super::*;
use crate::testutil::{upload_file, upload_tree};

fn keys() -> Keys {
    Keys::test_vector()
}

fn opts() -> RestoreOptions {
    RestoreOptions {
        progress: false,
        ..RestoreOptions::default()
    }
}

/// A source tree with what a restore must bring back.
fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir(&src).unwrap();
    let big: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(src.join("big.bin"), &big).unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("x.txt"), b"with xattrs").unwrap();
    let _ = xattr::set(src.join("x.txt"), "user.note", b"\x00\x01v");
    fs::set_permissions(src.join("x.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("../nowhere", src.join("link")).unwrap();
    fs::create_dir_all(src.join("a/b")).unwrap();
    fs::write(src.join("a/b/deep.txt"), b"deep").unwrap();
    fs::write(src.join("a/run.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("a/run.sh"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::create_dir(src.join("ro")).unwrap();
    fs::write(src.join("ro/inside"), b"in a read-only dir").unwrap();
    fs::set_permissions(src.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    let _ = xattr::set(src.join("a"), "user.dir", b"d");
    for (i, p) in [
        "big.bin",
        "empty",
        "x.txt",
        "a/b/deep.txt",
        "a/run.sh",
        "ro/inside",
    ]
    .iter()
    .enumerate()
    {
        localfs::set_mtime(
            &src.join(p),
            1_600_000_000_123_456 + i as BoxTime * 1_000_001,
        )
        .unwrap();
    }
    src
}

/// Path -> (type and content or target, mode, mtime of files, xattrs).
fn describe(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let a = localfs::read_attributes(&p, &md).unwrap();
            let what = if md.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if md.file_type().is_symlink() {
                format!("link {:?}", fs::read_link(&p).unwrap())
            } else {
                format!(
                    "file {:x?} mtime {}",
                    bb_format::crypto::md5(&fs::read(&p).unwrap()),
                    a.mtime
                )
            };
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                format!(
                    "{what} mode {:o} owner {}:{} xattrs {:?}",
                    md.mode(),
                    md.uid(),
                    md.gid(),
                    a.xattrs
                ),
            );
        }
    }
    out
}

fn backed_up(dir: &Path) -> (FakeStore, i64, PathBuf) {
    let src = source(dir);
    let mut store = FakeStore::new(1 << 20, 1 << 21);
    let id = upload_tree(&mut store, &keys(), 1, b"src", &src);
    (store, id, src)
}

#[test]
fn restores_files_symlinks_dirs_and_attributes() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, id, src) = backed_up(tmp.path());
    let dest = tmp.path().join("dest");
    let r = restore(&mut store, &keys(), id, &dest, &opts()).unwrap();
    assert_eq!(describe(&src), describe(&dest));
    assert_eq!((r.files, r.symlinks, r.dirs), (6, 1, 4));
    assert_eq!(r.bytes, 70_000 + 11 + 4 + 10 + 18);
    assert!(r.errors.is_empty() && !r.resumed);
    assert!(!resume_file_path(&dest).exists());
}

#[test]
fn parallel_restore_gives_the_same_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, id, src) = backed_up(tmp.path());
    let dest = tmp.path().join("dest");
    let make = || -> Result<Box<dyn StoreRead + Send>> { Ok(Box::new(store.clone())) };
    let r = restore_parallel(&make, &keys(), id, &dest, &opts(), 3).unwrap();
    assert_eq!(describe(&src), describe(&dest));
    assert_eq!(r.files + r.symlinks, 7);
}

#[test]
fn refuses_an_existing_target_and_a_missing_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, id, _src) = backed_up(tmp.path());
    let e = restore(&mut store, &keys(), id, tmp.path(), &opts()).unwrap_err();
    assert!(matches!(e, Error::RestoreTargetExists { .. }), "{e}");
    let e = restore(
        &mut store,
        &keys(),
        id,
        &tmp.path().join("no/dest"),
        &opts(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::RestoreParentMissing { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "Failed to restore: parent '{}' of target directory does not exist.",
            tmp.path().join("no").display()
        )
    );
}

/// A store that fails GetFile after `left` files.
struct Failing {
    inner: FakeStore,
    left: usize,
}

impl StoreRead for Failing {
    fn list_directory(&mut self, id: i64, m: i16, n: i16, a: bool) -> bb_remote::Result<Directory> {
        self.inner.list_directory(id, m, n, a)
    }
    fn get_object_name(&mut self, o: i64, d: i64) -> bb_remote::Result<Option<ObjectNames>> {
        self.inner.get_object_name(o, d)
    }
    fn get_object(&mut self, id: i64, out: &mut dyn Write) -> bb_remote::Result<u64> {
        self.inner.get_object(id, out)
    }
    fn get_file(&mut self, d: i64, id: i64, out: &mut dyn Write) -> bb_remote::Result<u64> {
        self.inner.get_file(d, id, out)
    }
    fn open_file(&mut self, d: i64, id: i64) -> bb_remote::Result<Box<dyn Read + '_>> {
        if self.left == 0 {
            return Err(bb_remote::Error::Io {
                op: "GetFile",
                source: io::Error::other("connection lost"),
            });
        }
        self.left -= 1;
        self.inner.open_file(d, id)
    }
    fn get_block_index_by_id(&mut self, id: i64) -> bb_remote::Result<BlockIndex> {
        self.inner.get_block_index_by_id(id)
    }
    fn get_block_index_by_name(
        &mut self,
        d: i64,
        n: &EncodedName,
    ) -> bb_remote::Result<Option<(i64, BlockIndex)>> {
        self.inner.get_block_index_by_name(d, n)
    }
    fn usage(&mut self) -> bb_remote::Result<bb_remote::store::AccountUsage2> {
        self.inner.usage()
    }
    fn client_store_marker(&mut self) -> bb_remote::Result<i64> {
        self.inner.client_store_marker()
    }
}

#[test]
fn an_interrupted_restore_resumes_with_r() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, id, src) = backed_up(tmp.path());
    let dest = tmp.path().join("dest");
    let mut failing = Failing {
        inner: store,
        left: 3,
    };
    restore(&mut failing, &keys(), id, &dest, &opts()).unwrap_err();
    assert!(resume_file_path(&dest).is_file());
    let e = restore(&mut failing.inner, &keys(), id, &dest, &opts()).unwrap_err();
    assert!(matches!(e, Error::RestoreResumePossible { .. }), "{e}");
    let resume = RestoreOptions {
        resume: true,
        ..opts()
    };
    let r = restore(&mut failing.inner, &keys(), id, &dest, &resume).unwrap();
    assert!(r.resumed);
    assert_eq!(r.already_done, 3);
    assert_eq!(r.files + r.symlinks, 4);
    assert_eq!(describe(&src), describe(&dest));
    assert!(!resume_file_path(&dest).exists());
}

#[test]
fn force_carries_on_after_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, id, _src) = backed_up(tmp.path());
    let mut failing = Failing {
        inner: store,
        left: 2,
    };
    let force = RestoreOptions {
        force: true,
        ..opts()
    };
    let dest = tmp.path().join("dest");
    let r = restore(&mut failing, &keys(), id, &dest, &force).unwrap();
    assert_eq!(r.files + r.symlinks, 2);
    assert_eq!(r.errors.len(), 5, "{:?}", r.errors);
    assert!(resume_file_path(&dest).is_file(), "kept for -r");
}

#[test]
fn reads_013_resume_files() {
    // Level 0: done {5, 7}, then level "a" (0x10): done {0x11}, no next.
    let mut b = Vec::new();
    b.extend_from_slice(&2i64.to_le_bytes());
    b.extend_from_slice(&5i64.to_le_bytes());
    b.extend_from_slice(&7i64.to_le_bytes());
    b.extend_from_slice(&0x10i64.to_le_bytes());
    b.extend_from_slice(&1i32.to_le_bytes());
    b.extend_from_slice(b"a");
    b.extend_from_slice(&1i64.to_le_bytes());
    b.extend_from_slice(&0x11i64.to_le_bytes());
    b.extend_from_slice(&0i64.to_le_bytes());
    let got = parse_resume(&b).unwrap();
    assert_eq!(got, HashSet::from([5, 7, 0x11]));
    assert!(parse_resume(&b[..b.len() - 1]).is_none());
    assert!(parse_resume(&(-1i64).to_le_bytes()).is_none());
    // Ours, with a torn last record.
    let mut o = RESUME_MAGIC.to_vec();
    o.extend_from_slice(&9i64.to_le_bytes());
    o.extend_from_slice(&[1, 2, 3]);
    assert_eq!(parse_resume(&o).unwrap(), HashSet::from([9]));
}

#[test]
fn entry_attributes_win_and_deleted_entries_need_d() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("s");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"file").unwrap();
    fs::write(src.join("gone"), b"deleted").unwrap();
    let k = keys();
    let mut store = FakeStore::new(1 << 20, 1 << 21);
    let id = upload_tree(&mut store, &k, 1, b"s", &src);
    // An attribute-only change, as bbackupd sends it.
    let p = src.join("f");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o604)).unwrap();
    let a = localfs::read_attributes(&p, &fs::symlink_metadata(&p).unwrap()).unwrap();
    let name = EncodedName::encrypt(&k, b"f").unwrap();
    store
        .set_replacement_file_attributes(
            id,
            &name,
            a.attribute_hash(&k, b"f").unwrap(),
            &a.encrypt(&k).unwrap(),
        )
        .unwrap();
    store
        .delete_file(id, &EncodedName::encrypt(&k, b"gone").unwrap())
        .unwrap();
    let dest = tmp.path().join("d");
    restore(&mut store, &k, id, &dest, &opts()).unwrap();
    assert_eq!(
        fs::metadata(dest.join("f")).unwrap().permissions().mode() & 0o7777,
        0o604
    );
    assert!(!dest.join("gone").exists());
    let deleted = RestoreOptions {
        include_deleted: true,
        ..opts()
    };
    let dest = tmp.path().join("d2");
    restore(&mut store, &k, id, &dest, &deleted).unwrap();
    assert_eq!(fs::read(dest.join("gone")).unwrap(), b"deleted");
    assert!(!dest.join("f").exists());
}

#[test]
fn refuses_names_that_leave_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let k = keys();
    let src = tmp.path().join("s");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("ok"), b"ok").unwrap();
    let mut store = FakeStore::new(1 << 20, 1 << 21);
    let id = upload_tree(&mut store, &k, 1, b"s", &src);
    upload_file(&mut store, &k, id, b"../escape", &src.join("ok"));
    let e = restore(&mut store, &k, id, &tmp.path().join("d"), &opts()).unwrap_err();
    assert!(matches!(e, Error::StoreData { .. }), "{e}");
    assert!(!tmp.path().join("escape").exists());
    let force = RestoreOptions {
        force: true,
        ..opts()
    };
    let r = restore(&mut store, &k, id, &tmp.path().join("d2"), &force).unwrap();
    assert_eq!((r.files, r.errors.len()), (1, 1));
}
