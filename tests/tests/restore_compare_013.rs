//! bb-client's restore and compare against the real 0.13 bbstored serving the
//! fixture store that 0.13 wrote: a restore of the location gives back the
//! fixture source (contents, modes, owners, mtimes, xattrs, symlinks), one
//! connection or several; compare is clean on the unchanged source in every
//! mode; and after changes (contents with the mtime kept, a mode, an xattr, a
//! symlink target, a deleted and an added file) our compare names exactly
//! the differences the real 0.13 `bbackupquery compare` names, in its words
//! and order.

use std::path::{Path, PathBuf};

use bb_client::compare::{
    CompareEvent, CompareMode, CompareOptions, CompareReport, Level, compare_location,
};
use bb_client::restore::{RestoreOptions, restore, restore_parallel};
use bb_format::Keys;
use bb_proto::message::flags;
use bb_remote::{Config, Session, StoreRead};
use bb_tests::fixtures;
use bb_tests::{bb013, free_port, tree};

fn keys() -> Keys {
    Keys::from_file(&fixtures::keys_file()).unwrap()
}

fn config(port: u16) -> Config {
    fixtures::remote_config(port, true)
}

/// The fixture store served by 0.13's bbstored, and the fixture source.
struct Fixture {
    tmp: tempfile::TempDir,
    port: u16,
    src: PathBuf,
    _server: bb013::Daemon,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = fixtures::unpack_store("single", tmp.path(), port);
    fixtures::untar(&fixtures::pack().join("source.tar.gz"), tmp.path());
    let server = bb013::start_bbstored(
        &store.join("bbstored.conf"),
        port,
        &tmp.path().join("bbstored.log"),
    );
    let src = tmp.path().join("source");
    Fixture {
        tmp,
        port,
        src,
        _server: server,
    }
}

/// The ID of location `name` in the root.
fn location(s: &mut dyn StoreRead, keys: &Keys, name: &[u8]) -> i64 {
    let root = s
        .list_directory(flags::ROOT_DIRECTORY, flags::DIR, flags::DELETED, false)
        .unwrap();
    root.entries
        .iter()
        .find(|e| e.name.decrypt(keys).unwrap() == name)
        .expect("location in the root")
        .object_id
}

fn quiet() -> RestoreOptions {
    RestoreOptions {
        progress: false,
        ..RestoreOptions::default()
    }
}

#[test]
fn restore_gives_back_the_fixture_source() {
    let f = fixture();
    let k = keys();
    let mut s = Session::open(config(f.port)).unwrap();
    let loc = location(&mut s, &k, b"source");

    let one = f.tmp.path().join("restored-1");
    let r = restore(&mut s, &k, loc, &one, &quiet()).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.symlinks, 3);
    let diffs = tree::compare_trees(&f.src, &one);
    assert!(diffs.is_empty(), "{diffs:#?}");
    // Hard links come back as two files, as 0.13 restores them.
    let a = std::fs::metadata(one.join("hardlinks/first.txt")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&a), 1);

    // Two connections: the same tree.
    let port = f.port;
    let make = move || -> bb_client::Result<Box<dyn StoreRead + Send>> {
        Ok(Box::new(Session::open(config(port))?))
    };
    let two = f.tmp.path().join("restored-2");
    let r2 = restore_parallel(&make, &k, loc, &two, &quiet(), 2).unwrap();
    assert_eq!((r2.files, r2.bytes), (r.files, r.bytes));
    let diffs = tree::compare_trees(&f.src, &two);
    assert!(diffs.is_empty(), "{diffs:#?}");

    // -d: only the deleted items (0.13: just dir-to-delete/ and its files).
    let del = f.tmp.path().join("restored-d");
    let d = RestoreOptions {
        include_deleted: true,
        ..quiet()
    };
    restore(&mut s, &k, loc, &del, &d).unwrap();
    let got: Vec<String> = tree::walk(&del).into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        got,
        [
            "dir-to-delete",
            "dir-to-delete/keep-me-1.txt",
            "dir-to-delete/sub",
            "dir-to-delete/sub/keep-me-2.txt"
        ],
    );
    s.finish().unwrap();
}

fn ours(
    s: &mut dyn StoreRead,
    loc: i64,
    src: &Path,
    mode: CompareMode,
) -> (CompareReport, Vec<Vec<u8>>) {
    let o = CompareOptions {
        mode,
        store_path: b"/source".to_vec(),
        ..CompareOptions::default()
    };
    let mut ev: Vec<CompareEvent> = Vec::new();
    let r = compare_location(s, &keys(), loc, src, &o, &mut ev).unwrap();
    let lines = ev
        .iter()
        .flat_map(|e| e.lines())
        .filter(|(l, _)| *l == Level::Warning)
        .map(|(_, t)| [&b"WARNING: "[..], &t].concat())
        .collect();
    (r, lines)
}

/// 0.13's warnings for `command`, and its exit status (with -c: 1 same, 2 different).
fn theirs(client: &bb013::Client013, command: &str) -> (i32, Vec<Vec<u8>>) {
    let out = client.query(&[command]);
    let all = [out.stdout, out.stderr].concat();
    let lines = all
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"WARNING: "))
        .filter(|l| {
            !l.starts_with(b"WARNING: Failed to determine the time of the last")
                && !l.starts_with(b"WARNING: Quick compare used")
                // 0.13's stream code, when compare stops reading a file at
                // its first difference; not a compare message.
                && !l.starts_with(b"WARNING: Not all data was read from stream")
        })
        .map(|l| l.to_vec())
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

fn show(lines: &[Vec<u8>]) -> String {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn change(src: &Path) {
    // New contents, same size and mtime: only checksums can tell.
    let p = src.join("size-4097.bin");
    let md = std::fs::metadata(&p).unwrap();
    let mut data = std::fs::read(&p).unwrap();
    data[100] ^= 0xff;
    std::fs::write(&p, &data).unwrap();
    bb_client::localfs::set_mtime(&p, bb_client::localfs::mtime_of(&md)).unwrap();
    // New contents and mtime.
    std::fs::write(src.join("a/a.txt"), b"changed\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(src.join("text.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    xattr::set(src.join("xattrs/with-xattrs.txt"), "user.comment", b"other").unwrap();
    std::fs::remove_file(src.join("links/to-file")).unwrap();
    std::os::unix::fs::symlink("../other.txt", src.join("links/to-file")).unwrap();
    std::fs::remove_file(src.join("one.bin")).unwrap();
    std::fs::write(src.join("names/added.txt"), b"new").unwrap();
    std::fs::create_dir(src.join("new-dir")).unwrap();
}

#[test]
fn compare_names_what_013_names() {
    let f = fixture();
    let k = keys();
    let mut s = Session::open(config(f.port)).unwrap();
    let loc = location(&mut s, &k, b"source");
    let client = bb013::Client013::new(&f.tmp.path().join("client"), f.port, &f.src);

    for mode in [CompareMode::Md5, CompareMode::Quick, CompareMode::Full] {
        let (r, lines) = ours(&mut s, loc, &f.src, mode);
        assert!(lines.is_empty(), "{mode:?}:\n{}", show(&lines));
        assert_eq!(r.differences, 0);
        assert!(r.files > 270, "{r:?}");
    }

    change(&f.src);
    let (rc, full_013) = theirs(&client, "compare -ac");
    assert_eq!(rc, 2);
    assert!(full_013.len() >= 8, "{}", show(&full_013));
    for mode in [CompareMode::Full, CompareMode::Md5] {
        let (r, lines) = ours(&mut s, loc, &f.src, mode);
        assert_eq!(
            show(&lines),
            show(&full_013),
            "{mode:?} against 0.13's compare -ac"
        );
        assert_eq!(r.differences, full_013.len() as u64);
    }
    let (_, quick_013) = theirs(&client, "compare -acq");
    let (_, lines) = ours(&mut s, loc, &f.src, CompareMode::Quick);
    assert_eq!(
        show(&lines),
        show(&quick_013),
        "against 0.13's compare -acq"
    );
    s.finish().unwrap();
}
