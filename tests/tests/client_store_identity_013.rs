//! Issue 5, "Done when", fourth point, with the real binaries: our `bbackupd
//! --once` backing up to the real 0.13 bbstored, judged by the real 0.13
//! bbackupquery.
//!
//! - A store rolled back behind the client (the store directory put back to a
//!   copy taken between two backups) or swapped for another one (a new account
//!   with the same number): bbackupd stops with exit status 3 and a message that
//!   says what it found, and the store is exactly as it was (0.13's `ls -R`
//!   listing of every entry, deleted and old ones included, is unchanged).
//! - The server killed (SIGKILL, its whole process group) in the middle of an
//!   upload and started again: the failed run exits 1, the next one completes,
//!   and 0.13's `compare -acQ` finds no difference.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bb_tests::bb013::{self, Client013, Daemon};
use bb_tests::ours::StoreDir;
use bb_tests::{free_port, ours, tree};

fn once(conf: &Path) -> Output {
    Command::new(ours::bin("bbackupd"))
        .arg("--once")
        .arg(conf)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn backup(conf: &Path) {
    let out = once(conf);
    assert_eq!(
        out.status.code(),
        Some(0),
        "bbackupd --once:\n{}",
        text(&out)
    );
}

/// The real 0.13 bbstored in its own process group, so that a kill reaches
/// the child that serves the connection too.
fn start_server(conf: &Path, port: u16, log: &Path) -> Daemon {
    let mut cmd = bb013::command("bbstored");
    cmd.arg("-F").arg("-c").arg(conf).process_group(0);
    let mut d = Daemon::spawn(cmd, "bbstored (0.13)", log);
    bb013::wait_for_port(port, &mut d);
    d
}

fn kill_group(d: &mut Daemon) {
    if let Some(pid) = rustix::process::Pid::from_raw(d.pid()) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = d.child.wait();
}

/// Every entry of the account as 0.13 lists it (deleted and old versions, IDs,
/// flags, sizes): what must not change when the client refuses a store.
fn listing(c: &Client013) -> String {
    let out = c.query(&["ls -R -o -d -s"]);
    assert!(out.status.success(), "0.13 ls: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Bytes in the files under `dir`, tolerating files that come and go.
fn bytes_under(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

fn setup(tmp: &Path) -> (StoreDir, PathBuf, Client013) {
    let port = free_port();
    let store = StoreDir::create(&tmp.join("store"), port, false);
    bb013::create_fixture_account(&store.conf, "1G", "2G");
    let src = tmp.join("source");
    tree::GenTree::create(&src, 7, 6, 8, 3 << 20);
    let client = Client013::new(&tmp.join("client"), port, &src);
    (store, src, client)
}

#[test]
fn rolled_back_or_swapped_store_stops_bbackupd_and_is_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, src, client) = setup(tmp.path());
    let log = tmp.path().join("bbstored.log");
    let mut server = start_server(&store.conf, store.port, &log);
    backup(&client.conf);

    // Keep a copy of the store as it is after the first backup.
    server.stop(Duration::from_secs(10));
    let snapshot = tmp.path().join("snapshot");
    copy_dir(&store.dir, &snapshot);
    let mut server = start_server(&store.conf, store.port, &log);

    // Changes that the second backup records: a new file, a deleted one.
    let victim = tree::walk(&src)
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p.is_file())
        .unwrap();
    std::fs::remove_file(&victim).unwrap();
    std::fs::write(src.join("added-after-snapshot"), b"new").unwrap();
    backup(&client.conf);
    assert_eq!(client.compare().0, 1, "{}", client.compare().1);

    // Roll the store back to the snapshot.
    server.stop(Duration::from_secs(10));
    std::fs::remove_dir_all(&store.dir).unwrap();
    std::fs::rename(&snapshot, &store.dir).unwrap();
    let mut server = start_server(&store.conf, store.port, &log);
    let before = listing(&client);
    std::fs::write(src.join("added-after-rollback"), b"new").unwrap();
    let out = once(&client.conf);
    assert_eq!(out.status.code(), Some(3), "rolled back:\n{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("not the one") || msg.contains("rolled back"),
        "the message says what happened:\n{msg}"
    );
    assert_eq!(
        listing(&client),
        before,
        "the rolled-back store was changed"
    );

    // Swap: a new, empty account with the same number on another store.
    server.stop(Duration::from_secs(10));
    std::fs::remove_dir_all(&store.dir).unwrap();
    let store2 = StoreDir::create(&store.dir, store.port, false);
    bb013::create_fixture_account(&store2.conf, "1G", "2G");
    let _server = start_server(&store2.conf, store2.port, &log);
    let before = listing(&client);
    let out = once(&client.conf);
    assert_eq!(out.status.code(), Some(3), "swapped:\n{}", text(&out));
    assert_eq!(listing(&client), before, "the swapped-in store was changed");
}

#[test]
fn server_killed_mid_upload_then_next_sync_completes_and_compares_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, src, client) = setup(tmp.path());
    let log = tmp.path().join("bbstored.log");
    let mut server = start_server(&store.conf, store.port, &log);
    backup(&client.conf);

    // A big incompressible file: its upload takes long enough to be cut.
    let mut rng = tree::Rng::new(42);
    let big = src.join("big.bin");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&big).unwrap();
        for _ in 0..160 {
            f.write_all(&rng.bytes(1 << 20)).unwrap();
        }
    }
    let mut child = Command::new(ours::bin("bbackupd"))
        .arg("--once")
        .arg(&client.conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server once part of the file has arrived (0.13 writes an
    // upload into a temporary file in the account's directory first).
    let t = Instant::now();
    loop {
        let arrived = bytes_under(&store.dir);
        if arrived > 24 << 20 {
            break;
        }
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "the upload finished before it could be cut"
        );
        assert!(t.elapsed() < Duration::from_secs(120), "no upload seen");
        std::thread::sleep(Duration::from_millis(5));
    }
    kill_group(&mut server);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "cut run:\n{}", text(&out));

    let _server = start_server(&store.conf, store.port, &log);
    backup(&client.conf);
    let (rc, out) = client.compare();
    assert_eq!(rc, 1, "0.13 compare after the restart:\n{out}");
}
