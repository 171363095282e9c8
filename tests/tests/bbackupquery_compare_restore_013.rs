//! Our bbackupquery's `compare` and `restore` (the shell wired to
//! bb-client's compare and restore and to bbackupd.conf) against the real
//! 0.13 bbstored holding what the real 0.13 bbackupd uploaded: the fixture
//! store, and a fresh backup of a generated tree by the real 0.13 bbackupd.
//!
//! Compare is judged against the real 0.13 bbackupquery on the same store,
//! source and configuration: the whole output at `-v` (every "Comparing
//! directory", difference, hint and summary line) and the exit code of
//! `-c` must be the same. Our default mode (block MD5s and attributes) and
//! our `-f` (full download) must both say what 0.13's default (full) says;
//! `-q` what 0.13's `-q` says. The configuration's excludes apply to `-a`
//! (and `-E` lifts them). Where the DataDirectory holds `last_sync_start`
//! (written by 0.13's bbackupd, or by our `record_sync_times`) both read it.
//!
//! Restore of a location gives a tree identical to the source (contents,
//! modes, owners, mtimes, xattrs, symlinks); its refusals say what 0.13's
//! say with 0.13's exit code; `restore -r` resumes and skips what the resume
//! file lists.
//!
//! Left out of the output comparison: the banner, 0.13's debugging noise,
//! and 0.13's "Not all data was read from stream" (its stream code, when a
//! full compare stops reading a file at the first difference).

use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bb_format::Keys;
use bb_proto::message::flags;
use bb_remote::{Config, Session, StoreRead};
use bb_tests::bb013::{self, Client013, Daemon};
use bb_tests::fixtures;
use bb_tests::{free_port, tree};

const OURS: &str = env!("CARGO_BIN_EXE_bbackupquery-rs");

fn run(mut cmd: Command, conf: &Path, opts: &[&str], commands: &[&str]) -> Output {
    cmd.current_dir(conf.parent().unwrap())
        .arg("-c")
        .arg(conf)
        .args(opts)
        .args(commands)
        .arg("quit")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ours(conf: &Path, opts: &[&str], commands: &[&str]) -> Output {
    run(Command::new(OURS), conf, opts, commands)
}

fn real(conf: &Path, opts: &[&str], commands: &[&str]) -> Output {
    run(bb013::command("bbackupquery"), conf, opts, commands)
}

fn filtered(out: &[u8]) -> String {
    const DROP: &[&str] = &[
        "NOTICE:  Box Backup Backup Query Tool",
        "(c) Ben Summers",
        "WARNING: Exception thrown",
        "WARNING: Network operation started with no timeout",
        "WARNING: Not all data was read from stream",
        "TRACE:",
    ];
    String::from_utf8_lossy(out)
        .split_inclusive('\n')
        .filter(|l| !DROP.iter().any(|d| l.starts_with(d)))
        .collect()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Our `ours_cmd` and 0.13's `real_cmd` at `-v`: the same output and exit
/// code, which must be `expect`. Returns our output.
fn same_compare(conf: &Path, ours_cmd: &str, real_cmd: &str, expect: i32) -> String {
    let o = ours(conf, &["-v"], &[ours_cmd]);
    let r = real(conf, &["-v"], &[real_cmd]);
    let (ot, rt) = (filtered(&o.stdout), filtered(&r.stdout));
    if ot != rt {
        let (ol, rl): (Vec<&str>, Vec<&str>) = (ot.lines().collect(), rt.lines().collect());
        let at = ol
            .iter()
            .zip(&rl)
            .position(|(a, b)| a != b)
            .unwrap_or(ol.len().min(rl.len()));
        panic!(
            "ours {ours_cmd:?} vs 0.13 {real_cmd:?}: output differs at line {at}:\n ours: {:?}\n 0.13: {:?}\n--- ours:\n{ot}\n--- 0.13:\n{rt}",
            ol.get(at),
            rl.get(at),
        );
    }
    assert_eq!(
        (o.status.code(), r.status.code()),
        (Some(expect), Some(expect)),
        "ours {ours_cmd:?} / 0.13 {real_cmd:?}: exit codes\n{ot}"
    );
    assert!(o.stderr.is_empty(), "ours wrote to stderr: {}", text(&o));
    ot
}

/// Our output and exit code equal 0.13's at the default level (for
/// messages of refused commands).
fn same_plain(conf: &Path, command: &str) -> String {
    let o = ours(conf, &[], &[command]);
    let r = real(conf, &[], &[command]);
    let (ot, rt) = (filtered(&o.stdout), filtered(&r.stdout));
    assert_eq!(ot, rt, "{command}");
    assert_eq!(
        o.status.code(),
        r.status.code(),
        "{command}: exit codes\n{ot}"
    );
    ot
}

/// Runs our bbackupquery and checks it succeeded (exit 0) without errors.
fn ours_ok(conf: &Path, commands: &[&str]) -> String {
    let o = ours(conf, &[], commands);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{commands:?}:\n{t}");
    assert!(
        !t.contains("ERROR") && !t.contains("WARNING"),
        "{commands:?}:\n{t}"
    );
    t
}

fn keys() -> Keys {
    Keys::from_file(&fixtures::keys_file()).unwrap()
}

fn config(port: u16) -> Config {
    fixtures::remote_config(port, true)
}

/// (relative path, object ID) of every current file under store directory
/// `dir` (names as bytes: the fixture has one that is not UTF-8).
fn file_ids(
    s: &mut dyn StoreRead,
    k: &Keys,
    dir: i64,
    prefix: &Path,
    out: &mut Vec<(PathBuf, i64)>,
) {
    let d = s
        .list_directory(
            dir,
            flags::INCLUDE_EVERYTHING,
            flags::DELETED | flags::OLD_VERSION,
            false,
        )
        .unwrap();
    for e in d.entries {
        let name = std::ffi::OsString::from_vec(e.name.decrypt(k).unwrap());
        let rel = prefix.join(name);
        if e.is_dir() {
            file_ids(s, k, e.object_id, &rel, out);
        } else {
            out.push((rel, e.object_id));
        }
    }
}

fn location_id(s: &mut dyn StoreRead, k: &Keys, name: &str) -> i64 {
    let root = s
        .list_directory(flags::ROOT_DIRECTORY, flags::DIR, flags::DELETED, false)
        .unwrap();
    root.entries
        .iter()
        .find(|e| e.name.decrypt(k).unwrap() == name.as_bytes())
        .expect("location in the root")
        .object_id
}

/// The fixture's changes of `restore_compare_013.rs`: contents with the
/// size and mtime kept (only checksums can tell), contents and mtime, a
/// mode, an xattr, a symlink target, a deleted file, an added file and
/// directory.
fn change_fixture_source(src: &Path) {
    let p = src.join("size-4097.bin");
    let md = fs::metadata(&p).unwrap();
    let mut data = fs::read(&p).unwrap();
    data[100] ^= 0xff;
    fs::write(&p, &data).unwrap();
    bb_client::localfs::set_mtime(&p, bb_client::localfs::mtime_of(&md)).unwrap();
    fs::write(src.join("a/a.txt"), b"changed\n").unwrap();
    fs::set_permissions(src.join("text.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    xattr::set(src.join("xattrs/with-xattrs.txt"), "user.comment", b"other").unwrap();
    fs::remove_file(src.join("links/to-file")).unwrap();
    std::os::unix::fs::symlink("../other.txt", src.join("links/to-file")).unwrap();
    fs::remove_file(src.join("one.bin")).unwrap();
    fs::write(src.join("names/added.txt"), b"new").unwrap();
    fs::create_dir(src.join("new-dir")).unwrap();
}

/// The fixture store served by 0.13's bbstored, the fixture source, and a
/// client configuration for both bbackupquerys.
struct Fixture {
    tmp: tempfile::TempDir,
    port: u16,
    src: PathBuf,
    client: Client013,
    _server: Daemon,
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
    let client = Client013::new(&tmp.path().join("client"), port, &src);
    Fixture {
        tmp,
        port,
        src,
        client,
        _server: server,
    }
}

#[test]
fn fixture_store_compare_and_restore_as_013() {
    let f = fixture();
    let conf = &f.client.conf;

    // Unchanged source, no last_sync_start yet: clean in every mode, with
    // 0.13's warning about the sync time, exit code 1.
    let out = same_compare(conf, "compare -ac", "compare -ac", 1);
    assert!(out.contains("Failed to determine the time of the last synchronisation"));
    assert!(
        out.contains("Differences: 0 (0 dirs excluded, 0 files excluded, 0 files not checked)")
    );
    same_compare(conf, "compare -acf", "compare -ac", 1);
    same_compare(conf, "compare -acq", "compare -acq", 1);
    same_compare(conf, "compare -cl source", "compare -cl source", 1);

    // Restore of the location: the fixture source, attributes and all.
    let r1 = f.tmp.path().join("restored-1");
    ours_ok(conf, &[&format!("restore source {}", r1.display())]);
    let d = tree::compare_trees(&f.src, &r1);
    assert!(d.is_empty(), "restore differs:\n{}", d.join("\n"));
    assert!(!bb_client::restore::resume_file_path(&r1).exists());
    // Refusals: 0.13's words and exit code (4).
    let out = same_plain(conf, &format!("restore source {}", r1.display()));
    assert!(out.contains("The target directory exists."), "{out}");
    let out = same_plain(
        conf,
        &format!("restore source {}", f.tmp.path().join("no/such").display()),
    );
    assert!(out.contains("create the parent first"), "{out}");

    // An interrupted restore: half the files done (listed in the resume
    // file), the rest missing. One done file is altered to see that resume
    // skips what the file lists.
    let r2 = f.tmp.path().join("restored-2");
    ours_ok(conf, &[&format!("restore source {}", r2.display())]);
    let k = keys();
    let mut s = Session::open(config(f.port)).unwrap();
    let loc = location_id(&mut s, &k, "source");
    let mut ids = Vec::new();
    file_ids(&mut s, &k, loc, Path::new(""), &mut ids);
    s.finish().unwrap();
    assert!(ids.len() > 270, "{}", ids.len());
    let mut resume = bb_client::restore::RESUME_MAGIC.to_vec();
    for (i, (rel, id)) in ids.iter().enumerate() {
        if i % 2 == 0 {
            resume.extend_from_slice(&id.to_le_bytes());
        } else {
            fs::remove_file(r2.join(rel)).unwrap();
        }
    }
    let altered = ids
        .iter()
        .step_by(2)
        .map(|(rel, _)| rel.clone())
        .find(|rel| rel.starts_with("many"))
        .unwrap();
    let md = fs::metadata(r2.join(&altered)).unwrap();
    fs::write(r2.join(&altered), b"left alone by resume").unwrap();
    bb_client::localfs::set_mtime(&r2.join(&altered), bb_client::localfs::mtime_of(&md)).unwrap();
    fs::write(bb_client::restore::resume_file_path(&r2), &resume).unwrap();
    // Without -r: 0.13's "Resume possible", from either program.
    let out = same_plain(conf, &format!("restore source {}", r2.display()));
    assert!(
        out.contains("Resume possible -- repeat command with -r flag"),
        "{out}"
    );
    ours_ok(conf, &[&format!("restore -r source {}", r2.display())]);
    let d = tree::compare_trees(&f.src, &r2);
    assert_eq!(d.len(), 1, "{}", d.join("\n"));
    assert!(
        d[0].starts_with(&format!("{}: content differs", altered.display())),
        "{}",
        d[0]
    );
    assert!(!bb_client::restore::resume_file_path(&r2).exists());

    // A last sync an hour ago (as our engine records it: 0.13's file), then
    // changes: both name the same differences in the same words, hints and
    // counts, exit code 2.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let now = bb_client::localfs::box_time(t.as_secs() as i64, 0);
    let hour = 3_600_000_000;
    bb_client::sync::record_sync_times(&f.client.dir, now - hour, now - hour).unwrap();
    change_fixture_source(&f.src);
    let out = same_compare(conf, "compare -ac", "compare -ac", 2);
    for words in [
        "has different contents to store file '/source/size-4097.bin'.",
        "has different attributes to store file '/source/text.txt'.",
        "has different attributes to store file '/source/xattrs/with-xattrs.txt'.",
        "has different attributes to store file '/source/links/to-file'.",
        "Remote file '/source/one.bin' exists, but local file",
        "exists, but remote file '/source/names/added.txt' does not.",
        "exists, but remote file '/source/new-dir' does not.",
        "(the file above was modified after the last sync time -- might be reason for difference)",
    ] {
        assert!(out.contains(words), "{words}:\n{out}");
    }
    assert!(!out.contains("Failed to determine"), "{out}");
    same_compare(conf, "compare -acf", "compare -ac", 2);
    same_compare(conf, "compare -acq", "compare -acq", 2);
    same_compare(conf, "compare -acA", "compare -acA", 2);
    // Relative local paths start at the directory bbackupquery runs in.
    same_compare(
        conf,
        "compare -cE source/a ../source/a",
        "compare -cE source/a ../source/a",
        2,
    );
}

#[test]
fn compare_a_applies_the_locations_excludes() {
    let f = fixture();
    let src = f.src.display().to_string();
    let text = fs::read_to_string(&f.client.conf).unwrap().replace(
        &format!("Path = {src}\n"),
        &format!(
            "Path = {src}\n\t\tExcludeDir = {src}/many\n\t\tExcludeFilesRegex = \\.bin$\n\
             \t\tAlwaysIncludeFile = {src}/one.bin\n\t\tExcludeFile = {src}/names/added.txt\n"
        ),
    );
    assert!(text.contains("ExcludeDir"), "{text}");
    let conf = f.client.dir.join("excludes.conf");
    fs::write(&conf, text).unwrap();
    fs::write(f.src.join("names/added.txt"), b"new, excluded").unwrap();
    fs::write(f.src.join("new.bin"), b"new, excluded").unwrap();
    fs::write(f.src.join("one.bin"), b"X").unwrap();
    let out = same_compare(&conf, "compare -ac", "compare -ac", 2);
    assert!(
        out.contains("Differences: 2 (1 dirs excluded, 2 files excluded, 0 files not checked)"),
        "{out}"
    );
    same_compare(&conf, "compare -acf", "compare -ac", 2);
    same_compare(&conf, "compare -cl source", "compare -cl source", 2);
    // -E: every local file counts.
    let out = same_compare(&conf, "compare -acE", "compare -acE", 2);
    assert!(out.contains("Differences: 4 (0 dirs excluded"), "{out}");
}

#[test]
fn a_fresh_013_backup_compares_and_restores_as_013() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = bb_tests::ours::StoreDir::create(&tmp.path().join("store"), port, false);
    bb013::create_fixture_account(&store.conf, "1G", "2G");
    let _server = bb013::start_bbstored(&store.conf, port, &tmp.path().join("bbstored.log"));
    let mut src = tree::GenTree::create(&tmp.path().join("source"), 11, 6, 15, 2 << 20);
    let mut client = Client013::new(&tmp.path().join("client"), port, &src.root);
    client.backup_round();
    let conf = client.conf.clone();
    // 0.13's bbackupd recorded its run; our compare reads it as 0.13's does.
    assert!(bb_client::sync::last_sync_start(&client.dir).is_some());

    let out = same_compare(&conf, "compare -ac", "compare -ac", 1);
    assert!(!out.contains("Failed to determine"), "{out}");
    same_compare(&conf, "compare -acf", "compare -ac", 1);

    let restored = tmp.path().join("restored");
    ours_ok(&conf, &[&format!("restore source {}", restored.display())]);
    let d = tree::compare_trees(&src.root, &restored);
    assert!(d.is_empty(), "restore differs:\n{}", d.join("\n"));

    // GenTree's changes (contents, deletions, additions, a chmod, a renamed
    // directory) and more: an xattr, a symlink retargeted, a directory mode.
    src.mutate();
    xattr::set(src.root.join("d01/sub1/f001.txt"), "user.new", b"changed").unwrap();
    fs::remove_file(src.root.join("links/to-dir")).unwrap();
    std::os::unix::fs::symlink("../d03", src.root.join("links/to-dir")).unwrap();
    fs::set_permissions(src.root.join("d04"), fs::Permissions::from_mode(0o700)).unwrap();
    let out = same_compare(&conf, "compare -ac", "compare -ac", 2);
    for words in [
        "has different attributes to store file '/source/d01/sub1/f001.txt'.",
        "has different attributes to store file '/source/links/to-dir'.",
        "Local directory",
        "exists, but remote file '/source/new-in-round-2' does not.",
        "Remote file '/source/d02' exists, but local file",
        "has different contents to store file '/source/big/big0.dat'.",
    ] {
        assert!(out.contains(words), "{words}:\n{out}");
    }
    same_compare(&conf, "compare -acf", "compare -ac", 2);
    same_compare(&conf, "compare -acq", "compare -acq", 2);

    // Backed up again by 0.13: clean again.
    client.backup_round();
    same_compare(&conf, "compare -ac", "compare -ac", 1);
}
