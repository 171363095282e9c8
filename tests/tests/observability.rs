//! Issue 7, observability, end to end on 127.0.0.1 with real processes and
//! the real `curl`: our bbstored's metrics during and after backups, bad HTTP
//! requests that must not hurt it; bbackupd's status file, `bbackupctl
//! status` (human and JSON) after `--once` and from a running daemon, and the
//! daemon's metrics. Every scrape passes the kit's strict exposition check.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bb_tests::bb013::{Client013, Daemon, wait_for_port};
use bb_tests::fixtures::ACCOUNT;
use bb_tests::free_port;
use bb_tests::metrics::{Scrape, curl, scrape};
use bb_tests::ours::{OurServer, StoreDir, bin};

/// Incompressible files (so that what goes over the wire is at least their size).
fn source(dir: &Path, sizes: &[usize]) -> (PathBuf, u64) {
    let s = bb_tests::tree::incompressible_files(dir, sizes);
    (s, sizes.iter().sum::<usize>() as u64)
}

fn once(conf: &Path) -> Output {
    Command::new(bin("bbackupd"))
        .arg("--once")
        .arg(conf)
        .output()
        .unwrap()
}

fn ctl(conf: &Path, args: &[&str]) -> Output {
    Command::new(bin("bbackupctl"))
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .unwrap()
}

/// Raw bytes to the metrics port; the whole answer.
fn raw(port: u16, bytes: &[u8]) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = c.write_all(bytes);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Scrapes until `ok` holds (sessions end on their own threads a moment
/// after the client has gone).
fn scrape_until(port: u16, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let t = Instant::now();
    loop {
        let s = scrape(port);
        if ok(&s) {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "never {what}: {s:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `bbstoreaccounts info` (ours), as name -> first number of the line:
/// blocks for the usage lines, counts for the others.
fn accounts_info(conf: &Path) -> Vec<(String, i64)> {
    let out = Command::new(bin("bbstoreaccounts"))
        .arg("-c")
        .arg(conf)
        .args(["info", &format!("{ACCOUNT:08x}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let n = v.split_whitespace().next()?.parse().ok()?;
            Some((k.trim().to_string(), n))
        })
        .collect()
}

#[test]
fn bbstored_metrics_follow_backups_and_survive_bad_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), false);
    store.create_account(ACCOUNT, 100_000, 120_000);
    let mport = free_port();
    store.enable_metrics(mport);
    let mut cmd = Command::new(bin("bbstored"));
    cmd.arg("-F").arg(&store.conf);
    let mut d = Daemon::spawn(cmd, "bbstored (ours)", &tmp.path().join("bbstored.log"));
    wait_for_port(mport, &mut d);
    wait_for_port(store.port, &mut d);

    let (src, size) = source(tmp.path(), &[200_000, 70_000, 5_000]);
    let c = Client013::new(&tmp.path().join("client"), store.port, &src);
    let out = once(&c.conf);
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", d.log_text());

    let s = scrape_until(mport, "a finished session", |s| {
        s.value("bbstored_sessions_total", &[("result", "finished")]) >= 1.0
            && s.value("bbstored_connections_active", &[]) == 0.0
    });
    // The wait for the port was a connection too.
    assert!(s.value("bbstored_connections_accepted_total", &[]) >= 2.0);
    let bytes_in = s.value("bbstored_received_bytes_total", &[]);
    assert!(bytes_in > size as f64, "{bytes_in} <= {size}");
    assert!(s.value("bbstored_protocol_received_bytes_total", &[]) > size as f64);
    assert!(s.value("bbstored_sent_bytes_total", &[]) > 0.0);
    assert!(s.value("bbstored_start_time_seconds", &[]) > 1.6e9);
    assert_eq!(s.value("bbstored_accounts", &[]), 1.0);
    assert_eq!(s.value("bbstored_housekeeping_runs_total", &[]), 0.0);
    for name in [
        "bbstored_errors_total",
        "bbstored_housekeeping_accounts_total",
        "bbstored_housekeeping_last_run_timestamp_seconds",
        "bbstored_housekeeping_last_run_duration_seconds",
    ] {
        assert!(s.types.contains_key(name), "{name} missing");
    }

    // Account usage: what bbstoreaccounts info says.
    let info = accounts_info(&store.conf);
    let first = |k: &str| {
        info.iter()
            .find(|(n, _)| n == k)
            .unwrap_or_else(|| panic!("{k} in {info:?}"))
            .1 as f64
    };
    let acc = format!("0x{ACCOUNT:08x}");
    let a = [("account", acc.as_str())];
    for (series, line) in [
        ("bbstored_account_blocks_used", "Used"),
        ("bbstored_account_blocks_current", "Current files"),
        ("bbstored_account_blocks_old", "Old files"),
        ("bbstored_account_blocks_deleted", "Deleted files"),
        ("bbstored_account_blocks_directories", "Directories"),
        ("bbstored_account_blocks_soft_limit", "Soft limit"),
        ("bbstored_account_blocks_hard_limit", "Hard limit"),
        ("bbstored_account_files_current", "Current Files"),
    ] {
        assert_eq!(s.value(series, &a), first(line), "{series}");
    }
    assert_eq!(s.value("bbstored_account_blocks_soft_limit", &a), 100_000.0);
    assert!(s.value("bbstored_account_blocks_used", &a) > 0.0);
    assert_eq!(s.value("bbstored_account_files_current", &a), 3.0);
    assert_eq!(s.value("bbstored_account_enabled", &a), 1.0);
    assert_eq!(s.value("bbstored_account_block_size_bytes", &a), 4096.0);

    // Not TLS on the protocol port: a TLS failure.
    let _ = raw(store.port, b"GET / HTTP/1.0\r\n\r\n");
    scrape_until(mport, "a TLS failure counted", |s| {
        s.value("bbstored_sessions_total", &[("result", "tls_failed")]) >= 1.0
            && s.value("bbstored_errors_total", &[("kind", "tls")]) >= 1.0
    });

    // Bad HTTP: each gets its error status, nothing else happens.
    let url = format!("http://127.0.0.1:{mport}/metrics");
    let slow = {
        let mut t = TcpStream::connect(("127.0.0.1", mport)).unwrap();
        t.write_all(b"GET /metr").unwrap();
        t
    };
    let r = raw(mport, b"\x16\x03\x01\x00\x05garbage\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    let r = raw(mport, &vec![b'x'; 100_000]);
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    let huge = format!("X-Huge: {}", "a".repeat(20_000));
    assert_eq!(curl(&url, &["-H", &huge]).status, 431);
    let post = curl(&url, &["-X", "POST", "-d", "hello=1"]);
    assert_eq!(post.status, 405, "{post:?}");
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(curl(&format!("http://127.0.0.1:{mport}/"), &[]).status, 404);
    assert_eq!(curl(&url, &["--http1.0"]).status, 200);
    let head = curl(&url, &["-I"]);
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    // A scrape while the slow client still holds its connection.
    scrape(mport);
    drop(slow);

    // The server still serves backups, and counts them.
    std::fs::write(src.join("new"), b"a new file").unwrap();
    let out = once(&c.conf);
    assert_eq!(out.status.code(), Some(0), "{out:?}\n{}", d.log_text());
    let s = scrape_until(mport, "two finished sessions", |s| {
        s.value("bbstored_sessions_total", &[("result", "finished")]) >= 2.0
    });
    assert_eq!(s.value("bbstored_account_files_current", &a), 4.0);
    assert!(s.value("bbstored_received_bytes_total", &[]) > bytes_in);
    assert!(d.is_running());
    let st = d.stop(Duration::from_secs(30)).expect("stopped by TERM");
    assert!(st.success(), "{st:?}\n{}", d.log_text());
    assert!(TcpStream::connect(("127.0.0.1", mport)).is_err());
}

#[test]
fn bbstored_housekeeping_shows_in_the_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), false);
    store.create_account(ACCOUNT, 100_000, 120_000);
    let mport = free_port();
    store.enable_metrics(mport);
    let text = std::fs::read_to_string(&store.conf).unwrap();
    std::fs::write(
        &store.conf,
        text.replace(
            "TimeBetweenHousekeeping = 900",
            "TimeBetweenHousekeeping = 1",
        ),
    )
    .unwrap();
    let _server = OurServer::start(&store.conf);
    let s = scrape_until(mport, "a housekeeping pass", |s| {
        s.value("bbstored_housekeeping_runs_total", &[]) >= 1.0
    });
    assert_eq!(
        s.value(
            "bbstored_housekeeping_accounts_total",
            &[("result", "finished")]
        ),
        s.value("bbstored_housekeeping_runs_total", &[])
    );
    assert!(s.value("bbstored_housekeeping_last_run_timestamp_seconds", &[]) > 1.6e9);
    assert!(s.value("bbstored_housekeeping_last_run_duration_seconds", &[]) >= 0.0);
}

#[test]
fn bbackupd_status_after_once_and_from_a_daemon_with_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), false);
    store.create_account(ACCOUNT, 100_000, 120_000);
    let _server = OurServer::start(&store.conf);
    let (src, _) = source(tmp.path(), &[30_000, 1_000, 10]);
    let c = Client013::new(&tmp.path().join("client"), store.port, &src);
    let mport = free_port();
    let text = std::fs::read_to_string(&c.conf).unwrap();
    std::fs::write(
        &c.conf,
        format!("MetricsListenAddress = 127.0.0.1:{mport}\n{text}"),
    )
    .unwrap();

    // Before any run: no status; the daemon is not there either.
    let out = ctl(&c.conf, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    let out = once(&c.conf);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(c.dir.join("bbackupd-status.json").exists());
    // No daemon: 0.13's exit status, but the last run is shown.
    let out = ctl(&c.conf, &["status"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    for want in [
        "state:        stopped",
        "last result:  ok",
        "uploaded:     3 files, ",
        "pending:      0 files",
        "next sync:    none (the daemon is not running)",
    ] {
        assert!(stdout.contains(want), "{want:?} not in {stdout}");
    }
    let out = ctl(&c.conf, &["--json", "status"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], 1);
    assert_eq!(v["state"], "stopped");
    assert_eq!(v["last_sync"]["result"], "ok");
    assert_eq!(v["last_sync"]["files_uploaded"], 3);
    assert!(v["last_sync"]["bytes_uploaded"].as_u64().unwrap() > 31_000);
    assert!(v["last_sync"]["end"].as_f64() >= v["last_sync"]["start"].as_f64());

    // The daemon, snapshot mode, with its metrics port.
    let mut cmd = Command::new(bin("bbackupd"));
    cmd.arg("-F").arg(&c.conf);
    let mut d = Daemon::spawn(cmd, "bbackupd (ours)", &tmp.path().join("bbackupd.log"));
    wait_for_port(mport, &mut d);
    let sock = c.dir.join("bbackupd.sock");
    let t = Instant::now();
    while !sock.exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "{}", d.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = scrape(mport);
    assert_eq!(s.value("bbackupd_state", &[("state", "idle")]), 1.0);
    assert_eq!(s.value("bbackupd_automatic_backup", &[]), 0.0);
    assert_eq!(s.value("bbackupd_next_sync_timestamp_seconds", &[]), 0.0);
    // The --once run is remembered as the last one.
    assert_eq!(
        s.value("bbackupd_last_sync_result", &[("result", "ok")]),
        1.0
    );
    assert_eq!(s.value("bbackupd_syncs_total", &[("result", "ok")]), 0.0);

    std::fs::write(src.join("new"), vec![7u8; 5000]).unwrap();
    let out = ctl(&c.conf, &["-q", "sync-and-wait"]);
    assert!(out.status.success(), "{out:?}\n{}", d.log_text());
    let s = scrape(mport);
    assert_eq!(s.value("bbackupd_syncs_total", &[("result", "ok")]), 1.0);
    assert_eq!(s.value("bbackupd_last_sync_files_uploaded", &[]), 1.0);
    assert_eq!(s.value("bbackupd_files_uploaded_total", &[]), 1.0);
    assert!(s.value("bbackupd_last_sync_uploaded_bytes", &[]) > 0.0);
    assert_eq!(
        s.value("bbackupd_uploaded_bytes_total", &[]),
        s.value("bbackupd_last_sync_uploaded_bytes", &[])
    );
    assert!(
        s.value("bbackupd_last_sync_end_timestamp_seconds", &[])
            >= s.value("bbackupd_last_sync_start_timestamp_seconds", &[])
    );
    assert_eq!(s.value("bbackupd_pending_files", &[]), 0.0);
    assert_eq!(s.value("bbackupd_syncing", &[]), 0.0);

    let out = ctl(&c.conf, &["status"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for want in [
        "state Idle",
        "state:        idle",
        "last result:  ok",
        "uploaded:     1 files, ",
        "next sync:    when bbackupctl sync asks",
    ] {
        assert!(stdout.contains(want), "{want:?} not in {stdout}");
    }

    // Bad requests do not disturb the daemon.
    let url = format!("http://127.0.0.1:{mport}/metrics");
    assert_eq!(curl(&url, &["-X", "POST", "-d", "x"]).status, 405);
    let r = raw(mport, b"garbage\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
    assert!(ctl(&c.conf, &["-q", "sync-and-wait"]).status.success());
    let s = scrape(mport);
    assert_eq!(s.value("bbackupd_syncs_total", &[("result", "ok")]), 2.0);

    let st = d.stop(Duration::from_secs(30)).expect("stopped by TERM");
    assert!(st.success(), "{st:?}\n{}", d.log_text());
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.dir.join("bbackupd-status.json")).unwrap())
            .unwrap();
    assert_eq!(v["state"], "stopped");
    assert_eq!(v["totals"]["syncs"]["ok"], 2);
}
