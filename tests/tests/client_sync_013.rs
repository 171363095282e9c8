//! Our sync engine (`bb_client::sync::run`, as a library call over a
//! `bb_remote::Session`) against the real 0.13 bbstored, judged by the real
//! 0.13 bbackupquery: after every round `compare -acQ` finds no difference;
//! diffs, renames (MoveObject), deletions, chmods and new xattrs go up as
//! 0.13's bbackupd would send them; old versions come back with `get -i`; and
//! 0.13's `bbstoreaccounts check` finds no error in the account.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bb_client::sync::{self, Event, Location, SyncOptions, SyncReport, SyncState};
use bb_format::{EncodedName, Keys};
use bb_proto::message::flags;
use bb_remote::{Config, Session, StoreRead};
use bb_tests::fixtures;
use bb_tests::{bb013, free_port, tree};

fn keys() -> Keys {
    Keys::from_file(&fixtures::keys_file()).unwrap()
}

fn config(port: u16) -> Config {
    fixtures::remote_config(port, false)
}

/// The settings of the pack's bbackupd.conf (snapshot mode), location "source".
fn options(src: &Path) -> SyncOptions {
    let mut o = SyncOptions::new(vec![Location::new("source", src)]);
    o.minimum_file_age = Duration::ZERO;
    o.max_upload_wait = Duration::ZERO;
    o.file_tracking_size_threshold = 65_535;
    o.diffing_upload_size_threshold = 8192;
    o.maximum_diffing_time = Some(Duration::from_secs(120));
    o
}

fn sync_round(port: u16, opts: &SyncOptions, data: &Path) -> (SyncReport, Vec<Event>) {
    let mut session = Session::open(config(port)).unwrap();
    let mut state = SyncState::load(data).unwrap();
    let mut ev = Vec::new();
    let r = sync::run(
        &mut session,
        &keys(),
        opts,
        &mut state,
        &mut ev,
        &AtomicBool::new(false),
    );
    state.save(data).unwrap();
    session.finish().unwrap();
    let r = r.unwrap_or_else(|e| panic!("sync: {e}\n{ev:#?}"));
    let errors: Vec<_> = ev
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::ReadError { .. } | Event::UploadError { .. } | Event::StoreFull
            )
        })
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    (r, ev)
}

fn compare_clean(client: &bb013::Client013, round: u32) {
    let (rc, out) = client.compare();
    assert_eq!(
        rc, 1,
        "round {round}: 0.13 compare -acQ found differences:\n{out}"
    );
}

/// The object IDs of every version of `name` in the store directory `dir`.
fn versions(s: &mut Session, dir: i64, name: &str) -> Vec<(i64, u16)> {
    let k = keys();
    let enc = EncodedName::encrypt(&k, name.as_bytes()).unwrap();
    let d = s
        .list_directory(dir, flags::INCLUDE_EVERYTHING, 0, false)
        .unwrap();
    d.entries
        .iter()
        .filter(|e| e.name == enc)
        .map(|e| (e.object_id, e.flags))
        .collect()
}

fn child(s: &mut Session, dir: i64, name: &str) -> i64 {
    let k = keys();
    let d = s
        .list_directory(dir, flags::DIR, flags::DELETED | flags::OLD_VERSION, false)
        .unwrap();
    d.entries
        .iter()
        .find(|e| e.name.decrypt(&k).unwrap() == name.as_bytes())
        .map(|e| e.object_id)
        .unwrap_or_else(|| panic!("no directory {name} in {dir:#x}"))
}

#[test]
fn our_engine_backs_up_to_bbstored_013_and_013_tools_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = bb_tests::ours::StoreDir::create(&tmp.path().join("store"), port, false);
    bb013::create_fixture_account(&store.conf, "1G", "2G");
    let _server = bb013::start_bbstored(&store.conf, port, &tmp.path().join("bbstored.log"));

    let mut src = tree::GenTree::create(&tmp.path().join("source"), 7, 8, 20, 4 << 20);
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let client = bb013::Client013::new(&tmp.path().join("client"), port, &src.root);
    let opts = options(&src.root);

    // Round 1: everything is new.
    let (r, ev) = sync_round(port, &opts, &data);
    assert!(r.files_uploaded > 150, "{r:?}");
    assert_eq!(r.diffs, 0);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::LocationCreated { .. })),
        "{r:?}"
    );
    compare_clean(&client, 1);
    let big0_v1 = fs::read(&src.big_files[0]).unwrap();

    // Round 2: GenTree's changes (edits in the middle of the big files and
    // appends, small files changed, deleted and added, a chmod, a directory
    // renamed) plus a big file renamed, new xattrs, a directory chmod.
    src.mutate();
    let renamed = src.root.join("big/big1-renamed.dat");
    fs::rename(&src.big_files[1], &renamed).unwrap();
    src.big_files[1] = renamed;
    xattr::set(src.root.join("d01/sub1/f001.txt"), "user.new", b"round 2").unwrap();
    xattr::set(src.root.join("d04"), "user.dirnew", b"dir attr").unwrap();
    fs::set_permissions(src.root.join("d05"), fs::Permissions::from_mode(0o700)).unwrap();
    let (r, ev) = sync_round(port, &opts, &data);
    assert!(r.diffs >= 2, "{r:?}\n{ev:#?}");
    // The renamed directory (d02) and the renamed big file.
    assert!(r.moved >= 2, "{r:?}\n{ev:#?}");
    assert!(r.deleted >= 1, "{r:?}");
    assert!(r.attributes_changed >= 3, "{r:?}");
    // Diffs: far less than the big files' sizes.
    assert!(
        r.bytes_uploaded < 3 << 20,
        "{} bytes sent in round 2",
        r.bytes_uploaded
    );
    compare_clean(&client, 2);

    // Round 3: more of the same.
    src.mutate();
    let (r, _) = sync_round(port, &opts, &data);
    assert!(r.diffs >= 2, "{r:?}");
    compare_clean(&client, 3);

    // Nothing changed: nothing sent.
    let (r, _) = sync_round(port, &opts, &data);
    assert_eq!(
        (r.files_uploaded, r.deleted, r.moved, r.attributes_changed),
        (0, 0, 0, 0),
        "{r:?}"
    );

    // 0.13's get -i brings back round 1's big0.dat (an old version, stored by
    // the server as a reverse diff against the newer one).
    let mut s = Session::open(config(port)).unwrap();
    let loc = child(&mut s, 1, "source");
    let big = child(&mut s, loc, "big");
    let v = versions(&mut s, big, "big0.dat");
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(v[0].1 & (flags::OLD_VERSION as u16) != 0);
    s.finish().unwrap();
    let dest = tmp.path().join("big0-v1");
    let out = client.query(&[
        "cd source/big",
        &format!("get -i {:x} {}", v[0].0, dest.display()),
    ]);
    assert!(
        out.status.success(),
        "get -i: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fs::read(&dest).unwrap() == big0_v1,
        "get -i gave other bytes"
    );

    // 0.13's restore of the whole location is identical to the source.
    let restored = tmp.path().join("restored");
    client.restore("source", &restored);
    let d = tree::compare_trees(&src.root, &restored);
    assert!(d.is_empty(), "restore differs:\n{}", d.join("\n"));

    // The control: compare does see a change that was not backed up.
    fs::write(src.root.join("d00/sub0/f000.bin"), b"not backed up").unwrap();
    let (rc, out) = client.compare();
    assert_eq!(rc, 2, "0.13 compare missed a difference:\n{out}");

    // 0.13's check finds nothing wrong in what we wrote.
    let out = bb013::command("bbstoreaccounts")
        .arg("-c")
        .arg(&store.conf)
        .args(["check", "01234567"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && !text.contains("ERROR"), "{text}");
}
