//! bbackupd's daemon loop and bbackupctl, end to end on 127.0.0.1: our daemon
//! (in-process, the real runner: bb-remote sessions and the engine) against
//! our bbstored; bbackupctl ours and 0.13's against our daemon, ours against
//! 0.13's bbackupd; a server restart between runs; lazy mode.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bb_client::ctl::{self, Outcome};
use bb_client::daemon::command::Request;
use bb_client::daemon::runner::{Setup, SyncRunner};
use bb_client::daemon::{DEFAULT_BACKUP_ERROR_DELAY, Daemon, Settings};
use bb_client::sync::{Location, SyncOptions};
use bb_format::Keys;
use bb_proto::message::flags;
use bb_remote::{Config, Session, StoreRead};
use bb_tests::fixtures::{self, ACCOUNT};
use bb_tests::ours::{OurServer, StoreDir};
use bb_tests::{bb013, free_port};

fn remote(port: u16) -> Config {
    fixtures::remote_config(port, false)
}

/// A client directory `dir` (DataDirectory, socket, bbackupd.conf from the
/// pack's template so that 0.13's bbackupctl can read it) backing up `source`.
fn setup(dir: &Path, port: u16, source: &Path, auto: bool) -> Setup {
    let c = bb013::Client013::new(dir, port, source);
    let mut options = SyncOptions::new(vec![Location::new("source", source)]);
    options.minimum_file_age = Duration::ZERO;
    options.max_upload_wait = Duration::ZERO;
    Setup {
        settings: Settings {
            config_path: c.conf.clone(),
            automatic_backup: auto,
            update_store_interval: Duration::from_secs(if auto { 1 } else { 0 }),
            minimum_file_age: Duration::ZERO,
            max_upload_wait: Duration::ZERO,
            backup_error_delay: DEFAULT_BACKUP_ERROR_DELAY,
            notify_script: None,
            notify_always: false,
            sync_allow_script: None,
            command_socket: Some(dir.join("bbackupd.sock")),
            pid_file: None,
            data_directory: dir.to_path_buf(),
            store_object_info_file: None,
            status_file: Some(dir.join("bbackupd-status.json")),
            metrics_listen_address: None,
        },
        remote: remote(port),
        keys: Keys::from_file(&fixtures::keys_file()).unwrap(),
        options,
        extended_logging: true,
        extended_log_file: None,
        log_all_file_access: true,
    }
}

fn source(dir: &Path, files: usize) -> PathBuf {
    let s = dir.join("source");
    std::fs::create_dir_all(s.join("sub")).unwrap();
    for i in 0..files {
        std::fs::write(
            s.join(format!("f{i}")),
            format!("file {i}\n").repeat(100 * i + 1),
        )
        .unwrap();
    }
    std::fs::write(s.join("sub/inner"), b"inner").unwrap();
    s
}

/// Names are encrypted; counting entries is enough to see what went up.
fn store_entries(port: u16) -> usize {
    let mut s = Session::open(remote(port)).unwrap();
    let root = s
        .list_directory(
            flags::ROOT_DIRECTORY,
            flags::DIR,
            flags::EXCLUDE_NOTHING,
            false,
        )
        .unwrap();
    let mut n = 0;
    for loc in &root.entries {
        let d = s
            .list_directory(
                loc.object_id,
                flags::INCLUDE_EVERYTHING,
                flags::DELETED | flags::OLD_VERSION,
                false,
            )
            .unwrap();
        n += d.entries.len();
    }
    s.finish().unwrap();
    n
}

struct Running {
    thread: Option<std::thread::JoinHandle<()>>,
    requests: std::sync::mpsc::Sender<Request>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    socket: PathBuf,
}

impl Running {
    fn start(setup: Setup) -> Running {
        let socket = setup.settings.command_socket.clone().unwrap();
        let shared = Arc::new(Mutex::new(Some(setup)));
        let runner = SyncRunner::new(Path::new("unused"), move |_| {
            shared
                .lock()
                .unwrap()
                .clone()
                .ok_or_else(|| "gone".to_string())
        })
        .unwrap();
        let mut d = Daemon::new(runner);
        d.listen().unwrap();
        let (requests, stop) = (d.requests(), d.stop_flag());
        let thread = std::thread::spawn(move || d.run());
        Running {
            thread: Some(thread),
            requests,
            stop,
            socket,
        }
    }

    fn ctl(&self, command: &str) -> Outcome {
        ctl::run(&self.socket, command)
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.requests.send(Request::Terminate);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ours(tmp: &Path) -> (StoreDir, OurServer) {
    let store = StoreDir::create(&tmp.join("store"), free_port(), false);
    store.create_account(ACCOUNT, 100_000, 120_000);
    let server = OurServer::start(&store.conf);
    (store, server)
}

#[test]
fn snapshot_mode_with_our_and_013s_bbackupctl_and_a_server_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, mut server) = ours(tmp.path());
    let src = source(tmp.path(), 5);
    let client = tmp.path().join("client");
    let mut d = Running::start(setup(&client, store.port, &src, false));

    // Snapshot mode: nothing happens by itself.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(store_entries(store.port), 0);
    assert_eq!(d.ctl("status"), Outcome::Done);
    // 0.13's wait-for-sync refuses in snapshot mode; so does ours.
    assert_eq!(d.ctl("wait-for-sync"), Outcome::Failed);
    assert_eq!(d.ctl("bogus"), Outcome::Failed);

    assert_eq!(d.ctl("sync-and-wait"), Outcome::Done);
    // 5 files and the directory `sub`.
    assert_eq!(store_entries(store.port), 6);
    assert!(client.join("last_sync_start").exists());
    assert!(client.join("last_sync_finish").exists());

    // 0.13's bbackupctl speaks to our daemon.
    std::fs::write(src.join("new"), b"new file").unwrap();
    let conf = client.join("bbackupd.conf");
    let out = bb013::command("bbackupctl")
        .arg("-c")
        .arg(&conf)
        .arg("sync-and-wait")
        .output()
        .unwrap();
    assert!(out.status.success(), "0.13 bbackupctl: {out:?}");
    assert_eq!(store_entries(store.port), 7);
    let out = bb013::command("bbackupctl")
        .arg("-c")
        .arg(&conf)
        .arg("status")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("state Idle"),
        "{out:?}"
    );

    // The server goes away and comes back: the next run connects again.
    server.stop();
    drop(server);
    let server = OurServer::start(&store.conf);
    std::fs::write(src.join("after-restart"), b"x").unwrap();
    assert_eq!(d.ctl("sync-and-wait"), Outcome::Done);
    assert_eq!(store_entries(store.port), 8);

    // A run that fails (server down) is reported and the daemon stays up.
    drop(server);
    std::fs::write(src.join("while-down"), b"y").unwrap();
    assert_eq!(d.ctl("sync-and-wait"), Outcome::Done);
    assert_eq!(d.ctl("status"), Outcome::Done);
    let server = OurServer::start(&store.conf);
    assert_eq!(d.ctl("force-sync"), Outcome::Done);
    let t = Instant::now();
    while store_entries(store.port) < 9 {
        assert!(t.elapsed() < Duration::from_secs(30), "no retry");
        std::thread::sleep(Duration::from_millis(100));
    }

    assert_eq!(d.ctl("terminate"), Outcome::Done);
    d.stop();
    assert!(!client.join("bbackupd.sock").exists());
    drop(server);
}

#[test]
fn lazy_mode_syncs_by_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _server) = ours(tmp.path());
    let src = source(tmp.path(), 2);
    let client = tmp.path().join("client");
    let _d = Running::start(setup(&client, store.port, &src, true));
    let t = Instant::now();
    while store_entries(store.port) < 3 {
        assert!(t.elapsed() < Duration::from_secs(30), "no first run");
        std::thread::sleep(Duration::from_millis(100));
    }
    // UpdateStoreInterval is 1 s: a new file goes up without being asked for.
    std::fs::write(src.join("later"), b"later").unwrap();
    while store_entries(store.port) < 4 {
        assert!(t.elapsed() < Duration::from_secs(30), "no second run");
        std::thread::sleep(Duration::from_millis(100));
    }
    // wait-for-end works in lazy mode.
    assert_eq!(
        ctl::run(&client.join("bbackupd.sock"), "wait-for-end"),
        Outcome::Done
    );
}

#[test]
fn our_bbackupctl_drives_013s_bbackupd() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _server) = ours(tmp.path());
    let src = source(tmp.path(), 3);
    let c = bb013::Client013::new(&tmp.path().join("client"), store.port, &src);
    let mut cmd = bb013::command("bbackupd");
    cmd.args(["-F", "-c"]).arg(&c.conf);
    let mut d = bb013::Daemon::spawn(cmd, "bbackupd (0.13)", &tmp.path().join("bbackupd.log"));
    let sock = c.dir.join("bbackupd.sock");
    let t = Instant::now();
    while !sock.exists() {
        assert!(d.is_running(), "{}", d.log_text());
        assert!(t.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ctl::run(&sock, "status"), Outcome::Done);
    assert_eq!(ctl::run(&sock, "sync-and-wait"), Outcome::Done);
    assert_eq!(store_entries(store.port), 4, "{}", d.log_text());
    assert_eq!(ctl::run(&sock, "bogus"), Outcome::Failed);
    assert_eq!(ctl::run(&sock, "terminate"), Outcome::Done);
    let t = Instant::now();
    while d.is_running() {
        assert!(t.elapsed() < Duration::from_secs(30), "0.13 did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}
