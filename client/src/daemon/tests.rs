//! The loop with a fake runner: when runs happen, what bbackupctl hears, what
//! the scripts are told.

use super::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Log {
    runs: Vec<Option<u64>>,
    reloads: u32,
}

struct Fake {
    settings: Settings,
    after_reload: Option<Settings>,
    log: Arc<Mutex<Log>>,
    /// Results of the next runs (default: a good run).
    results: Vec<Result<RunReport, RunError>>,
}

impl Runner for Fake {
    fn settings(&self) -> Settings {
        self.settings.clone()
    }
    fn reload(&mut self) -> Result<(), String> {
        self.log.lock().unwrap().reloads += 1;
        match self.after_reload.take() {
            Some(s) => {
                self.settings = s;
                Ok(())
            }
            None => Err("no new configuration".into()),
        }
    }
    fn sync(&mut self, max_rate: Option<u64>, _stop: &AtomicBool) -> Result<RunReport, RunError> {
        self.log.lock().unwrap().runs.push(max_rate);
        if self.results.is_empty() {
            Ok(RunReport::default())
        } else {
            self.results.remove(0)
        }
    }
}

fn settings(dir: &Path, auto: bool) -> Settings {
    Settings {
        config_path: dir.join("bbackupd.conf"),
        automatic_backup: auto,
        update_store_interval: Duration::from_secs(3600),
        minimum_file_age: Duration::ZERO,
        max_upload_wait: Duration::ZERO,
        backup_error_delay: DEFAULT_BACKUP_ERROR_DELAY,
        notify_script: None,
        notify_always: false,
        sync_allow_script: None,
        command_socket: Some(dir.join("sock")),
        pid_file: None,
        data_directory: dir.to_path_buf(),
        store_object_info_file: None,
        status_file: Some(dir.join("status.json")),
        metrics_listen_address: None,
    }
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p.display().to_string()
}

/// Reads from the socket until `want` has arrived; returns all read.
fn read_until(s: &mut UnixStream, want: &str) -> String {
    let mut got = String::new();
    let mut buf = [0u8; 256];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    while !got.contains(want) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "EOF before {want:?}; got {got:?}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    got
}

fn connect(path: &Path) -> UnixStream {
    let t = Instant::now();
    loop {
        if let Ok(s) = UnixStream::connect(path) {
            return s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no socket");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn start(
    fake: Fake,
) -> (
    std::thread::JoinHandle<()>,
    Sender<Request>,
    Arc<AtomicBool>,
) {
    let mut d = Daemon::new(fake);
    d.listen().unwrap();
    let (tx, stop) = (d.requests(), d.stop_flag());
    let t = std::thread::spawn(move || d.run());
    (t, tx, stop)
}

#[test]
fn snapshot_mode_syncs_when_told_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let mut s = settings(dir.path(), false);
    s.notify_script = Some(script(
        dir.path(),
        "notify",
        &format!("echo $1 >> '{}'", events.display()),
    ));
    // Refuses, but force-sync skips it.
    s.sync_allow_script = Some(script(dir.path(), "allow", "echo 600"));
    let info = dir.path().join("bbackupd.state");
    std::fs::write(&info, b"0.13 state").unwrap();
    s.store_object_info_file = Some(info.clone());
    let log = Arc::new(Mutex::new(Log::default()));
    let mut after = s.clone();
    after.automatic_backup = true;
    after.update_store_interval = Duration::from_secs(7200);
    let fake = Fake {
        settings: s.clone(),
        after_reload: Some(after),
        log: log.clone(),
        results: vec![],
    };
    let (t, tx, _stop) = start(fake);
    let sock = dir.path().join("sock");
    // A client that connects before the loop has started is greeted with
    // state -1 (Initialising), as 0.13 does; wait for the idle daemon.
    let t0 = Instant::now();
    let mut c = loop {
        let mut c = connect(&sock);
        let greeting = read_until(&mut c, "ping\n");
        if !greeting.contains("state -1") {
            assert_eq!(greeting, "bbackupd: 0 3600 0 0\nstate 0\nping\n");
            break c;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "never idle");
        std::thread::sleep(Duration::from_millis(10));
    };
    // Nothing runs by itself in snapshot mode.
    std::thread::sleep(Duration::from_millis(300));
    assert!(log.lock().unwrap().runs.is_empty());
    // A plain sync is stopped by SyncAllowScript ...
    c.write_all(b"sync\n").unwrap();
    assert_eq!(read_until(&mut c, "ok\n"), "ok\n");
    std::thread::sleep(Duration::from_millis(500));
    assert!(log.lock().unwrap().runs.is_empty());
    // ... force-sync is not.
    c.write_all(b"force-sync\n").unwrap();
    let got = read_until(&mut c, "state 0\n");
    assert_eq!(got, "ok\nstart-sync\nstate 1\nfinish-sync\nstate 0\n");
    assert_eq!(log.lock().unwrap().runs.len(), 1);
    assert!(dir.path().join("last_sync_start").exists());
    assert!(dir.path().join("last_sync_finish").exists());
    assert!(!info.exists(), "0.13's state file is removed at a run");
    let ev = std::fs::read_to_string(&events).unwrap();
    assert_eq!(ev, "backup-start\nbackup-ok\nbackup-finish\n");

    // reload: new greeting for the next client.
    tx.send(Request::Reload).unwrap();
    let t0 = Instant::now();
    loop {
        let mut c2 = connect(&sock);
        let hello = read_until(&mut c2, "ping\n");
        if hello.starts_with("bbackupd: 1 7200 0 0\n") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{hello}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(log.lock().unwrap().reloads, 1);
    // Lazy now, but SyncAllowScript says wait: still only the one run.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(log.lock().unwrap().runs.len(), 1);

    c.write_all(b"terminate\n").unwrap();
    assert!(read_until(&mut c, "ok\n").contains("ok\n"));
    t.join().unwrap();
    assert!(!sock.exists());
}

#[test]
fn lazy_mode_syncs_by_itself_and_retries_after_errors() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let mut s = settings(dir.path(), true);
    s.update_store_interval = Duration::from_millis(300);
    s.backup_error_delay = Duration::from_millis(200);
    s.command_socket = None;
    s.notify_script = Some(script(
        dir.path(),
        "notify",
        &format!("echo $1 >> '{}'", events.display()),
    ));
    s.sync_allow_script = Some(script(dir.path(), "allow", "echo now 10"));
    let log = Arc::new(Mutex::new(Log::default()));
    let fake = Fake {
        settings: s,
        after_reload: None,
        log: log.clone(),
        results: vec![
            Err(RunError::Failed("connection refused".into())),
            Ok(RunReport {
                read_errors: 1,
                ..Default::default()
            }),
            Ok(RunReport::default()),
            Ok(RunReport::default()),
        ],
    };
    let (t, _tx, stop) = start(fake);
    let t0 = Instant::now();
    while log.lock().unwrap().runs.len() < 4 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{:?}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Three gaps: one error delay and two intervals at the least.
    assert!(
        t0.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t0.elapsed()
    );
    stop.store(true, Ordering::SeqCst);
    // Wake it: the loop also looks at the flag between waits.
    let _ = _tx.send(Request::Terminate);
    t.join().unwrap();
    assert_eq!(log.lock().unwrap().runs[0], Some(10 * 1024));
    let ev = std::fs::read_to_string(&events).unwrap();
    let ev: Vec<&str> = ev.lines().collect();
    assert_eq!(
        &ev[..11],
        &[
            "backup-start",
            "backup-error",
            "backup-finish",
            "backup-start",
            "read-error",
            "backup-finish",
            "backup-start",
            "backup-ok",
            "backup-finish",
            // The second good run in a row: backup-ok is not repeated.
            "backup-start",
            "backup-finish",
        ]
    );
}

#[test]
fn once_statuses() {
    assert_eq!(once_status(&Ok(RunReport::default())), 0);
    assert_eq!(once_status(&Err(RunError::Failed("x".into()))), 1);
    assert_eq!(once_status(&Err(RunError::Stopped)), 1);
    assert_eq!(once_status(&Err(RunError::StoreChanged("x".into()))), 3);
}

#[test]
fn pid_file_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("pid");
    {
        let _f = PidFile::create(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
    }
    assert!(!p.exists());
    assert!(jitter(Duration::from_secs(64)) < Duration::from_secs(1));
    assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
}
