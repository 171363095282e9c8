//! The bbackupd and bbackupctl binaries on a real bbackupd.conf (the pack's
//! snapshot-mode template) against our bbstored: `--once` and its exit
//! statuses, a daemon driven by bbackupctl, NotifyScript, SIGHUP, SIGTERM
//! removing the PidFile.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bb_tests::bb013::{Client013, Daemon};
use bb_tests::fixtures::ACCOUNT;
use bb_tests::free_port;
use bb_tests::ours::{OurServer, StoreDir, bin};

fn source(dir: &Path) -> PathBuf {
    let s = dir.join("source");
    std::fs::create_dir_all(&s).unwrap();
    for i in 0..3 {
        std::fs::write(
            s.join(format!("f{i}")),
            vec![b'a' + i as u8; 1000 * (i + 1)],
        )
        .unwrap();
    }
    s
}

fn ctl(conf: &Path, command: &str) -> std::process::Output {
    Command::new(bin("bbackupctl"))
        .args(["-q", "-c"])
        .arg(conf)
        .arg(command)
        .output()
        .unwrap()
}

#[test]
fn once_exit_statuses() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), false);
    store.create_account(ACCOUNT, 100_000, 120_000);
    let server = OurServer::start(&store.conf);
    let src = source(tmp.path());
    let c = Client013::new(&tmp.path().join("client"), store.port, &src);
    let once = |conf: &Path| {
        Command::new(bin("bbackupd"))
            .arg("--once")
            .arg(conf)
            .output()
            .unwrap()
    };
    let out = once(&c.conf);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(c.dir.join("last_sync_finish").exists());
    // A configuration error.
    let bad = tmp.path().join("bad.conf");
    std::fs::write(&bad, "StoreHostname = x\n").unwrap();
    assert_eq!(once(&bad).status.code(), Some(2));
    // The server is gone: the run fails.
    drop(server);
    let out = once(&c.conf);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!out.stderr.is_empty());
    // Another store on the same port: the client refuses to touch it.
    let store2 = StoreDir::create(&tmp.path().join("store2"), store.port, false);
    store2.create_account(ACCOUNT, 100_000, 120_000);
    let _server2 = OurServer::start(&store2.conf);
    let out = once(&c.conf);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[test]
fn daemon_with_bbackupctl_notify_script_hup_and_term() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), false);
    store.create_account(ACCOUNT, 100_000, 120_000);
    let _server = OurServer::start(&store.conf);
    let src = source(tmp.path());
    let c = Client013::new(&tmp.path().join("client"), store.port, &src);
    let events = tmp.path().join("events");
    let notify = tmp.path().join("notify.sh");
    std::fs::write(
        &notify,
        format!("#!/bin/sh\necho $1 >> '{}'\n", events.display()),
    )
    .unwrap();
    std::fs::set_permissions(&notify, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(&c.conf).unwrap();
    std::fs::write(
        &c.conf,
        text.replace(
            "# NotifyScript: none for the fixtures (events are only logged)",
            &format!("NotifyScript = {}", notify.display()),
        ),
    )
    .unwrap();

    // As a Type=notify unit runs it: READY=1 once the CommandSocket listens.
    let notify_path = tmp.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut cmd = Command::new(bin("bbackupd"));
    cmd.args(["-F", "-V"])
        .arg(&c.conf)
        .env("NOTIFY_SOCKET", &notify_path);
    let mut d = Daemon::spawn(cmd, "bbackupd (ours)", &tmp.path().join("bbackupd.log"));
    let pid = c.dir.join("bbackupd.pid");
    let sock = c.dir.join("bbackupd.sock");
    let mut buf = [0u8; 64];
    let n = notify.recv(&mut buf).expect("READY=1 within 30 s");
    assert_eq!(&buf[..n], b"READY=1");
    assert!(pid.exists() && sock.exists(), "ready before it listened");
    let out = ctl(&c.conf, "sync-and-wait");
    assert!(out.status.success(), "{out:?}\n{}", d.log_text());
    let out = Command::new(bin("bbackupctl"))
        .args(["-c"])
        .arg(&c.conf)
        .arg("status")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("state Idle"),
        "{out:?}"
    );
    let ev = std::fs::read_to_string(&events).unwrap();
    assert_eq!(ev, "backup-start\nbackup-ok\nbackup-finish\n");
    assert!(d.log_text().contains("File statistics"), "{}", d.log_text());

    // SIGHUP: reloads (the log says so) and keeps serving.
    d.signal(rustix::process::Signal::HUP);
    let t = Instant::now();
    while !d.log_text().contains("Reloading configuration file") {
        assert!(t.elapsed() < Duration::from_secs(30), "{}", d.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ctl(&c.conf, "sync-and-wait").status.success());

    // SIGTERM: stops (telling systemd), PidFile and socket gone.
    let st = d.stop(Duration::from_secs(30)).expect("stopped by TERM");
    assert!(st.success(), "{st:?}\n{}", d.log_text());
    let n = notify.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(!pid.exists());
    assert!(!sock.exists());
    assert!(!ctl(&c.conf, "status").status.success());
}
