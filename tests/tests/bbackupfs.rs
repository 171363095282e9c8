//! bbackupfs on real FUSE mounts (/dev/fuse; the suite runs as root on CI):
//! the mount against its source after backups of the fixture source and of a
//! generated tree (`diff -r`, every path's lstat, symlink targets, xattrs,
//! `cp -a` and `rsync -aX` out of it), old versions and deleted files where
//! the README says, EROFS for every write, EIO while the server is gone and
//! reads again once it is back, and a mount of a store the real 0.13 wrote
//! through the real 0.13 bbstored.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bb_tests::bb013::{Client013, Daemon, start_bbstored, wait_for_port};
use bb_tests::fixtures::{self, ACCOUNT};
use bb_tests::free_port;
use bb_tests::mount::{Mount, diff_r, fuse_available, lstat_differences};
use bb_tests::ours::{OurServer, StoreDir, bin};
use bb_tests::tree::{GenTree, compare_trees};

/// Our bbackupd, one run.
fn backup(conf: &Path) {
    let out = Command::new(bin("bbackupd"))
        .arg("--once")
        .arg(conf)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "bbackupd --once: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The source: the fixture pack's round-1 tree (its FIFO removed: Box Backup
/// does not back FIFOs up, so `diff -r` would name it) and a generated tree.
fn make_source(dir: &Path) -> PathBuf {
    let src = dir.join("source");
    fixtures::gen_source("round1", &src.join("fixture"));
    let _ = fs::remove_file(src.join("fixture/special/fifo"));
    GenTree::create(&src.join("gen"), 7, 6, 12, 3 << 20);
    src
}

fn errno(r: std::io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

const EROFS: i32 = 30;
const EIO: i32 = 5;

#[test]
fn mount_matches_the_source_and_copies_out_exactly() {
    if !fuse_available("mount_matches_the_source") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), false);
    store.create_account(ACCOUNT, 1_000_000, 1_200_000);
    let _server = OurServer::start(&store.conf);
    let src = make_source(tmp.path());
    let c = Client013::new(&tmp.path().join("client"), store.port, &src);
    backup(&c.conf);
    let cache = tmp.path().join("cache");

    // The full layout.
    let m = Mount::start(
        &c.conf,
        &tmp.path().join("mnt"),
        &["--cache-dir", cache.to_str().unwrap()],
    );
    let mut top: Vec<String> = fs::read_dir(&m.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["current", "deleted", "versions"]);
    let cur = m.dir.join("current/source");
    assert_eq!(diff_r(&src, &cur), "", "diff -r source mount");
    let diffs = lstat_differences(&src, &cur);
    assert!(diffs.is_empty(), "lstat differences:\n{}", diffs.join("\n"));
    let ino_before = fs::symlink_metadata(cur.join("gen/d01/sub1/f002.txt"))
        .unwrap()
        .ino();

    // cp -a and rsync -aX rebuild the tree.
    let cp = tmp.path().join("cp");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&cur)
        .arg(&cp)
        .status()
        .unwrap();
    assert!(st.success());
    let diffs = lstat_differences(&src, &cp);
    assert!(diffs.is_empty(), "cp -a:\n{}", diffs.join("\n"));
    assert_eq!(compare_trees(&src, &cp), Vec::<String>::new());
    let rs = tmp.path().join("rsync");
    let st = Command::new("rsync")
        .arg("-aX")
        .arg(format!("{}/", cur.display()))
        .arg(&rs)
        .status()
        .unwrap();
    assert!(st.success());
    let diffs = lstat_differences(&src, &rs);
    assert!(diffs.is_empty(), "rsync -aX:\n{}", diffs.join("\n"));
    assert!(m.unmount().success());

    // A second mount of one location: the root is the location; inode
    // numbers are the same; the metadata comes from the disc cache.
    let m = Mount::start(
        &c.conf,
        &tmp.path().join("mnt2"),
        &[
            "--location",
            "source",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    );
    assert_eq!(diff_r(&src, &m.dir), "");
    let diffs = lstat_differences(&src, &m.dir);
    assert!(diffs.is_empty(), "--location mount:\n{}", diffs.join("\n"));
    assert_eq!(
        fs::symlink_metadata(m.dir.join("gen/d01/sub1/f002.txt"))
            .unwrap()
            .ino(),
        ino_before,
        "inode numbers are stable across mounts"
    );
    assert!(m.unmount().success());
    assert!(fs::read_dir(&cache).unwrap().count() == 1, "one cache file");
}

#[test]
fn old_versions_and_deleted_files_appear_with_their_content() {
    if !fuse_available("old_versions_and_deleted_files") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), false);
    store.create_account(ACCOUNT, 100_000, 120_000);
    let _server = OurServer::start(&store.conf);
    let src = tmp.path().join("source");
    fs::create_dir_all(src.join("dir/inner")).unwrap();
    let t0 = 1_700_000_000;
    let put = |rel: &str, data: &[u8], mode: u32, mtime: u64| {
        let p = src.join(rel);
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        bb_tests::tree::set_mtime(&p, mtime, 0);
    };
    put("a.txt", b"version one\n", 0o640, t0);
    put("b.txt", b"soon deleted\n", 0o600, t0 + 1);
    put(
        "dir/inner/c.txt",
        b"in a directory that goes\n",
        0o644,
        t0 + 2,
    );
    put("keep.txt", b"kept\n", 0o644, t0 + 3);
    let c = Client013::new(&tmp.path().join("client"), store.port, &src);
    backup(&c.conf);
    put("a.txt", b"version two, longer\n", 0o644, t0 + 100);
    fs::remove_file(src.join("b.txt")).unwrap();
    fs::remove_dir_all(src.join("dir")).unwrap();
    backup(&c.conf);

    let m = Mount::start(&c.conf, &tmp.path().join("mnt"), &["--no-disk-cache"]);
    let cur = m.dir.join("current/source");
    assert_eq!(diff_r(&src, &cur), "");
    assert!(!cur.join("b.txt").exists() && !cur.join("dir").exists());

    // Deleted files and directories, in their places, with content and modes.
    let del = m.dir.join("deleted/source");
    assert_eq!(fs::read(del.join("b.txt")).unwrap(), b"soon deleted\n");
    let md = fs::metadata(del.join("b.txt")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.mtime()), (0o600, (t0 + 1) as i64));
    assert_eq!(
        fs::read(del.join("dir/inner/c.txt")).unwrap(),
        b"in a directory that goes\n"
    );
    assert!(!del.join("a.txt").exists() && !del.join("keep.txt").exists());

    // Every version of a.txt, oldest first, each with its own content,
    // mode and mtime; deleted files have versions too.
    let va = m.dir.join("versions/source/a.txt");
    let mut names: Vec<String> = fs::read_dir(&va)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("2023-11-14T22-13-20Z_"), "{names:?}");
    assert!(names[1].starts_with("2023-11-14T22-15-00Z_"), "{names:?}");
    assert_eq!(fs::read(va.join(&names[0])).unwrap(), b"version one\n");
    assert_eq!(
        fs::read(va.join(&names[1])).unwrap(),
        b"version two, longer\n"
    );
    let m0 = fs::metadata(va.join(&names[0])).unwrap();
    assert_eq!(
        (m0.mode() & 0o7777, m0.mtime(), m0.len()),
        (0o640, t0 as i64, 12)
    );
    let vb = fs::read_dir(m.dir.join("versions/source/b.txt"))
        .unwrap()
        .count();
    assert_eq!(vb, 1, "b.txt has one version");
    assert!(m.dir.join("versions/source/dir/inner/c.txt").is_dir());
    assert!(m.unmount().success());
}

#[test]
fn writes_get_erofs_and_a_lost_server_gives_eio_then_reads_again() {
    if !fuse_available("writes_get_erofs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), false);
    store.create_account(ACCOUNT, 1_000_000, 1_200_000);
    // Our bbstored as a process of its own, so that it can really die (with
    // every connection at once) and come back.
    let start = |n: u32| {
        let mut cmd = Command::new(bin("bbstored"));
        cmd.arg("-F").arg("-c").arg(&store.conf);
        let mut d = Daemon::spawn(
            cmd,
            "bbstored",
            &tmp.path().join(format!("bbstored{n}.log")),
        );
        wait_for_port(store.port, &mut d);
        d
    };
    let mut server = start(1);
    let src = tmp.path().join("source");
    fs::create_dir_all(src.join("d")).unwrap();
    let big: Vec<u8> = bb_tests::tree::Rng::new(3).bytes(80 << 20);
    fs::write(src.join("big.dat"), &big).unwrap();
    fs::write(src.join("d/small.txt"), b"small\n").unwrap();
    // In a directory that nothing lists before the server goes away.
    fs::create_dir_all(src.join("e")).unwrap();
    fs::write(
        src.join("e/late.txt"),
        b"read only after the server is back\n",
    )
    .unwrap();
    let c = Client013::new(&tmp.path().join("client"), store.port, &src);
    backup(&c.conf);

    let m = Mount::start(
        &c.conf,
        &tmp.path().join("mnt"),
        &["--no-disk-cache", "-o", "timeout=10"],
    );
    let root = m.dir.join("current/source");
    assert_eq!(fs::read(root.join("d/small.txt")).unwrap(), b"small\n");

    // Every kind of write.
    assert_eq!(
        errno(fs::write(root.join("new"), b"x")),
        Some(EROFS),
        "create"
    );
    assert_eq!(
        errno(
            fs::OpenOptions::new()
                .write(true)
                .open(root.join("d/small.txt"))
        ),
        Some(EROFS),
        "open for writing"
    );
    assert_eq!(errno(fs::create_dir(root.join("nd"))), Some(EROFS), "mkdir");
    assert_eq!(
        errno(fs::remove_file(root.join("d/small.txt"))),
        Some(EROFS),
        "unlink"
    );
    assert_eq!(errno(fs::remove_dir(root.join("d"))), Some(EROFS), "rmdir");
    assert_eq!(
        errno(fs::rename(root.join("d/small.txt"), root.join("d/x"))),
        Some(EROFS),
        "rename"
    );
    assert_eq!(
        errno(std::os::unix::fs::symlink("x", root.join("l"))),
        Some(EROFS),
        "symlink"
    );
    assert_eq!(
        errno(fs::hard_link(root.join("d/small.txt"), root.join("h"))),
        Some(EROFS),
        "link"
    );
    assert_eq!(
        errno(fs::set_permissions(
            root.join("d/small.txt"),
            std::os::unix::fs::PermissionsExt::from_mode(0o777)
        )),
        Some(EROFS),
        "chmod"
    );
    assert_eq!(
        errno(xattr::set(root.join("d/small.txt"), "user.x", b"1")),
        Some(EROFS),
        "setxattr"
    );
    assert_eq!(
        errno(xattr::remove(root.join("d/small.txt"), "user.x")),
        Some(EROFS),
        "removexattr"
    );

    // Reading a large file while the server goes away: the read that needs
    // the lost stream fails with EIO, promptly; so does a file not yet read.
    let mut f = fs::File::open(root.join("big.dat")).unwrap();
    let mut head = vec![0u8; 1 << 20];
    f.read_exact(&mut head).unwrap();
    assert!(head == big[..1 << 20]);
    server.signal(rustix::process::Signal::KILL);
    server.stop(Duration::from_secs(10));
    let t = Instant::now();
    f.seek(SeekFrom::Start(70 << 20)).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    assert_eq!(
        errno(f.read_exact(&mut buf)),
        Some(EIO),
        "read past the readahead"
    );
    assert_eq!(
        errno(fs::read(root.join("e/late.txt"))),
        Some(EIO),
        "a file not fetched yet\n{}",
        m.log_text()
    );
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "EIO took {:?}",
        t.elapsed()
    );

    // The server is back: the same handle reads again, and so does the rest.
    let _server = start(2);
    f.seek(SeekFrom::Start(70 << 20)).unwrap();
    f.read_exact(&mut buf).unwrap();
    assert!(buf == big[70 << 20..71 << 20], "content after reconnecting");
    assert_eq!(
        fs::read(root.join("e/late.txt")).unwrap(),
        b"read only after the server is back\n"
    );
    let all = fs::read(root.join("big.dat")).unwrap();
    assert!(all == big, "the whole large file");
    drop(f);
    let log = m.log_text();
    assert!(m.unmount().success());
    assert!(
        log.contains("object 0x"),
        "EIO is logged with the object:\n{log}"
    );
}

#[test]
fn mounts_a_store_written_by_013_through_the_013_bbstored() {
    if !fuse_available("mounts_a_store_written_by_013") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    // The pack's store, with the three rounds the real 0.13 bbackupd wrote
    // (old versions and deleted files among them), and the source as of the
    // last round. Its FIFO was never backed up.
    let store = fixtures::unpack_store("single", &tmp.path().join("store"), port);
    fixtures::untar(&fixtures::pack().join("source.tar.gz"), tmp.path());
    let src = tmp.path().join("source");
    let _ = fs::remove_file(src.join("special/fifo"));
    let _server = start_bbstored(
        &store.join("bbstored.conf"),
        port,
        &tmp.path().join("bbstored.log"),
    );
    let c = Client013::new(&tmp.path().join("client"), port, &src);
    let m = Mount::start(
        &c.conf,
        &tmp.path().join("mnt"),
        &["--location", "source", "--no-disk-cache"],
    );
    assert_eq!(diff_r(&src, &m.dir), "");
    let diffs = lstat_differences(&src, &m.dir);
    assert!(diffs.is_empty(), "lstat differences:\n{}", diffs.join("\n"));
    assert!(m.unmount().success());
}
