//! Our `bbstoreaccounts` and the real 0.13 one, side by side on the same stores:
//! same output, same exit codes, and stores that each other's checker accepts.
//! Skipped (with a message) where the Debian 0.13 binaries are not installed.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;

use bb_format::directory::Entry;
use bb_store::account::Account;
use bb_store::housekeep::{Housekept, note_deleted_directory, tidy_deleted_directories};
use bb_store::report::CollectReporter;
use bb_store::{Mode, RaidObjects};
use common::{BBSTOREACCOUNTS, TempStore, have_013, tree};

const OURS: &str = env!("CARGO_BIN_EXE_bbstoreaccounts");
const ACCOUNT: u32 = 0x0123_4567;

/// Runs a tool with `-c <store>/bbstored.conf args`; (exit code, stdout) with the
/// store's path replaced by `@STORE@`.
fn run(tool: &str, store: &TempStore, args: &[&str], stdin: &str) -> (i32, String) {
    let mut child = Command::new(tool)
        .arg("-c")
        .arg(store.conf())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout)
        .replace(&store.root().display().to_string(), "@STORE@");
    (out.status.code().unwrap_or(-1), text)
}

/// Both tools on two copies of a store; asserts identical output and status.
fn same(real: &TempStore, ours: &TempStore, args: &[&str], stdin: &str) -> (i32, String) {
    let r = run(BBSTOREACCOUNTS, real, args, stdin);
    let o = run(OURS, ours, args, stdin);
    assert_eq!(
        o, r,
        "bbstoreaccounts {args:?}: ours (left) vs 0.13 (right)"
    );
    r
}

fn unpack_damaged() -> TempStore {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/damaged-single.tar.gz");
    let f = std::fs::File::open(data).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(f))
        .unpack(dir.path())
        .unwrap();
    let root = dir.path().join("damaged");
    for name in ["raidfile.conf", "bbstored.conf"] {
        let p = root.join(name);
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, t.replace("@STORE@", &root.display().to_string())).unwrap();
    }
    TempStore {
        dir,
        root,
        raid: false,
        block_size: 4096,
    }
}

fn files_without_lock(store: &TempStore) -> Vec<String> {
    tree(store.root())
        .into_iter()
        .filter(|f| !f.ends_with("write.lock") && !f.ends_with(".conf"))
        .collect()
}

#[test]
fn fixture_info_and_check_print_what_0_13_prints() {
    if !have_013() {
        return;
    }
    let real = TempStore::from_fixture("store-single.tar.gz", "store-single");
    let ours = TempStore::from_fixture("store-single.tar.gz", "store-single");
    let (code, out) = same(&real, &ours, &["info", "1234567"], "");
    assert_eq!(code, 0);
    let expected = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/bb013/expected/single/info.txt"
    ))
    .unwrap();
    assert_eq!(out, expected);
    same(&real, &ours, &["-m", "info", "1234567"], "");
    assert_eq!(same(&real, &ours, &["check", "1234567"], "").0, 1);
    same(&real, &ours, &["check", "1234567", "quiet"], "");
    assert_eq!(same(&real, &ours, &["check", "1234567", "bogus"], "").0, 2);
    assert_eq!(same(&real, &ours, &["info", "2"], "").0, 1);
    assert_eq!(same(&real, &ours, &["frobnicate", "1"], "").0, 1);
    assert_eq!(same(&real, &ours, &["info"], "").0, 2);
    assert_eq!(same(&real, &ours, &["info", "-m", "1"], "").0, 2);
}

#[test]
fn account_commands_side_by_side() {
    if !have_013() {
        return;
    }
    for raid in [false, true] {
        let bs = if raid { 2048 } else { 4096 };
        let real = TempStore::new(raid, bs);
        let ours = TempStore::new(raid, bs);
        let steps: &[(&[&str], &str)] = &[
            (&["create", "1", "0", "10M", "20M"], ""),
            (&["create", "1", "0", "10M", "20M"], ""),
            (&["create", "2", "5", "10M", "20M"], ""),
            (&["create", "3", "0", "30M", "20M"], ""),
            (&["create", "4", "0", "20M", "20M"], ""),
            (&["create", "5", "0", "10X", "20M"], ""),
            (&["create", "6", "0", "abc", "20M"], ""),
            (&["create", "7", "0", "10M"], ""),
            (&["create", "a", "0", "0x100B", "010M"], ""),
            (&["setlimit", "1", "5M", "8M"], ""),
            (&["setlimit", "1", "9M", "8M"], ""),
            (&["setlimit", "1", "9M"], ""),
            (&["setlimit", "9", "1M", "2M"], ""),
            (&["name", "1", "hello world"], ""),
            (&["name", "1"], ""),
            (&["enabled", "1", "no"], ""),
            (&["enabled", "1", "maybe"], ""),
            (&["info", "1"], ""),
            (&["-m", "info", "1"], ""),
            (&["info", "4"], ""),
            (&["check", "1"], ""),
            (&["check", "4", "fix"], ""),
            (&["housekeep", "1"], ""),
            (&["delete", "4"], "no\n"),
            (&["delete", "4"], "yes\n"),
            (&["delete", "a", "yes"], ""),
            (&["delete", "9", "yes"], ""),
        ];
        for (args, stdin) in steps {
            same(&real, &ours, args, stdin);
            // Each tool reads what the other wrote.
            assert_eq!(
                run(BBSTOREACCOUNTS, &ours, &["info", "1"], ""),
                run(BBSTOREACCOUNTS, &real, &["info", "1"], ""),
                "after {args:?}"
            );
        }
        assert_eq!(files_without_lock(&ours), files_without_lock(&real));
        assert_eq!(
            std::fs::read(ours.accounts_txt()).unwrap(),
            std::fs::read(real.accounts_txt()).unwrap()
        );
        ours.assert_013_check_clean(1);
    }
}

/// Lowers the soft limit so that housekeeping has to delete, on two copies of
/// the fixture made consistent by 0.13's `check fix`.
fn housekeeping_pair(soft: &str) -> (TempStore, TempStore) {
    let mk = || {
        let s = TempStore::from_fixture("store-single.tar.gz", "store-single");
        s.bbstoreaccounts(&["check", "1234567", "fix"]);
        let (ok, out) = s.bbstoreaccounts(&["setlimit", "1234567", soft, "10240B"]);
        assert!(ok, "{out}");
        s
    };
    (mk(), mk())
}

#[test]
fn housekeeping_deletes_what_0_13_deletes() {
    if !have_013() {
        return;
    }
    // 100B: everything old or deleted goes, then the emptied deleted directories;
    // 770B (13 blocks over): 0x5 (11 blocks), then 0x4 reaches the target.
    for soft in ["100B", "770B"] {
        let (real, ours) = housekeeping_pair(soft);
        let (code, out) = same(&real, &ours, &["housekeep", "1234567"], "");
        assert_eq!(code, 0);
        assert!(
            out.contains("Housekeeping removed old file 0x5 from dir 0x2"),
            "{out}"
        );
        assert_eq!(files_without_lock(&ours), files_without_lock(&real));
        // Directories, refcounts and the remaining objects are byte-identical.
        let acct = |s: &TempStore| s.root().join("disc0/backup/01234567");
        for f in files_without_lock(&real) {
            if f.ends_with(".rfw") && !f.ends_with("info.rfw") {
                assert_eq!(
                    std::fs::read(real.root().join(&f)).unwrap(),
                    std::fs::read(ours.root().join(&f)).unwrap(),
                    "{f}"
                );
            }
        }
        assert!(acct(&ours).join("o01.rfw").exists());
        assert_eq!(
            run(BBSTOREACCOUNTS, &ours, &["info", "1234567"], ""),
            run(BBSTOREACCOUNTS, &real, &["info", "1234567"], "")
        );
        ours.assert_013_check_clean(ACCOUNT);
    }
}

#[test]
fn damaged_store_is_reported_like_0_13_and_fixed_for_both_checkers() {
    if !have_013() {
        return;
    }
    let real = unpack_damaged();
    let ours = unpack_damaged();
    let (code, out) = same(&real, &ours, &["check", "1234567"], "");
    assert_eq!(code, 1);
    for damage in [
        "Spurious file backup/01234567/junk found",
        "references object 0xa which does not exist",
        "entry for 0x18 has wrong size 5, should be 1",
        "Directory ID 0x11c has wrong container ID.",
        "Object 0x125 is unattached.",
        "BlocksUsed changed from 168 to 68",
        "NumDirectories changed from 7 to 14",
    ] {
        assert!(out.contains(damage), "{damage:?} not in\n{out}");
    }
    // Nothing changed without fix.
    assert_eq!(files_without_lock(&ours), files_without_lock(&real));
    let (code, out) = run(OURS, &ours, &["check", "1234567", "fix"], "");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Writing modified directory to disk: 0x2"),
        "{out}"
    );
    ours.assert_013_check_clean(ACCOUNT);
    let (code, out) = run(OURS, &ours, &["check", "1234567"], "");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no errors found"), "{out}");
    assert!(!ours.root().join("disc0/backup/01234567/junk.rfw").exists());
}

#[test]
fn deleted_directory_list_is_tidied_and_0_13_still_reads_the_info() {
    if !have_013() {
        return;
    }
    let s = TempStore::from_fixture("store-single.tar.gz", "store-single");
    s.bbstoreaccounts(&["check", "1234567", "fix"]);
    let store = || Box::new(RaidObjects::new(s.discs(), ACCOUNT));
    // Delete the empty directory special/ (0x16) as DeleteDirectory would, and
    // list it together with dir-to-delete/ (0x10, deleted but not empty).
    {
        let mut a = Account::open(store(), Mode::ReadWrite).unwrap();
        let mut src = a.read_directory("test", 2).unwrap();
        src.entry_by_id_mut(0x16).unwrap().add_flags(Entry::DELETED);
        a.save_directory(&src).unwrap();
        note_deleted_directory(a.info_mut().unwrap(), 0x16);
        note_deleted_directory(a.info_mut().unwrap(), 0x10);
        note_deleted_directory(a.info_mut().unwrap(), 0x10);
        a.save_info().unwrap();
        a.close().unwrap();
    }
    // 0.13 reads (and ignores) the list.
    s.assert_013_check_clean(ACCOUNT);
    let dirs_before = common::info_field(&s.info_013(ACCOUNT), "Directories");
    let mut log = CollectReporter::default();
    let r = tidy_deleted_directories(store(), &AtomicBool::new(false), &mut log).unwrap();
    let Housekept::Finished(stats) = r else {
        panic!("{r:?}")
    };
    assert_eq!(stats.dirs_deleted, 1, "{}", log.console_text());
    assert!(
        log.console_text()
            .contains("Housekeeping removing empty deleted dir 0x16")
    );
    let a = Account::open(store(), Mode::ReadOnly).unwrap();
    assert_eq!(a.info().deleted_directories, vec![0x10]);
    assert!(!a.store().object_exists(0x16).unwrap());
    // "Directories" is first the blocks line: special/ used one block.
    assert_eq!(
        common::info_field(&s.info_013(ACCOUNT), "Directories"),
        dirs_before - 1
    );
    s.assert_013_check_clean(ACCOUNT);
    // Full housekeeping (0.13's tool) keeps our list; ours prunes it once 0x10 goes.
    let (ok, out) = s.bbstoreaccounts(&["setlimit", "1234567", "100B", "10240B"]);
    assert!(ok, "{out}");
    let (code, out) = run(OURS, &s, &["housekeep", "1234567"], "");
    assert_eq!(code, 0, "{out}");
    let a = Account::open(store(), Mode::ReadOnly).unwrap();
    assert!(a.info().deleted_directories.is_empty());
    s.assert_013_check_clean(ACCOUNT);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Deleting versions in the middle and at the newest end of a patch chain
/// (0x5 -> 0x122 -> 0x123 of big-5MiB.txt) keeps the remaining version
/// restorable: RemoveASAP forces the order that age never gives.
#[test]
fn patch_chain_repair_keeps_old_versions_restorable() {
    if !have_013() {
        return;
    }
    let s = TempStore::from_fixture("store-single.tar.gz", "store-single");
    s.bbstoreaccounts(&["check", "1234567", "fix"]);
    let store = || Box::new(RaidObjects::new(s.discs(), ACCOUNT));
    {
        let mut a = Account::open(store(), Mode::ReadWrite).unwrap();
        let mut src = a.read_directory("test", 2).unwrap();
        src.entry_by_id_mut(0x122)
            .unwrap()
            .add_flags(Entry::REMOVE_ASAP);
        src.entry_by_id_mut(0x123)
            .unwrap()
            .add_flags(Entry::REMOVE_ASAP | Entry::DELETED);
        a.save_directory(&src).unwrap();
        let info = a.info_mut().unwrap();
        info.num_current_files -= 1;
        info.num_deleted_files += 1;
        info.blocks_in_current_files -= 374;
        info.blocks_in_deleted_files += 374;
        a.save_info().unwrap();
        a.close().unwrap();
    }
    let mut log = CollectReporter::default();
    let r = bb_store::housekeep::housekeep(store(), &AtomicBool::new(false), &mut log).unwrap();
    assert!(matches!(r, Housekept::Finished(_)), "{r:?}");
    let a = Account::open(store(), Mode::ReadOnly).unwrap();
    assert!(!a.store().object_exists(0x122).unwrap());
    assert!(!a.store().object_exists(0x123).unwrap());
    let e5 = a
        .read_directory("test", 2)
        .unwrap()
        .entry_by_id(5)
        .unwrap()
        .clone();
    assert_eq!((e5.depends_newer, e5.depends_older), (0, 0));
    let keys = bb_format::keys::Keys::from_file(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/bb013/keys/01234567-FileEncKeys.raw"
    )))
    .unwrap();
    let bytes = a.read_object("test", 5).unwrap();
    assert_eq!(e5.size_in_blocks, a.usage_in_blocks(bytes.len() as u64));
    let clear = bb_format::decode::decode_file(&keys, &bytes)
        .unwrap()
        .content;
    // expected/single/versions.txt: round 1 of big-5MiB.txt.
    assert_eq!(
        hex(&bb_format::crypto::md5(&clear)),
        "c9b5b126a739985eee8a7d42d61bbeb1"
    );
    // 0.13 accepts the rewritten objects and sizes. (Its only complaint: with
    // the current version gone, 0x5 is the newest entry of its name and should
    // not be flagged old, which this contrived RemoveASAP scenario causes.)
    let (_, out) = s.bbstoreaccounts(&["check", "1234567"]);
    assert!(out.contains("Entry 0x5: Old flag unset"), "{out}");
    for bad in [
        "Corrupted",
        "wrong size",
        "does not exist",
        "Reference count",
        "BlocksUsed",
    ] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
    s.bbstoreaccounts(&["check", "1234567", "fix"]);
    s.assert_013_check_clean(ACCOUNT);
}
