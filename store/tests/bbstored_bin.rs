//! The bbstored binary and its signals, with the real 0.13 bbackupquery as the
//! client: SIGHUP reloads without dropping a session (and a broken config is
//! refused, old settings kept), SIGPIPE does nothing, SIGTERM closes an idle
//! session at once, exits 0 and removes the pid file.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn pack() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/bb013")
}

fn fill(template: &str, store: &Path, port: u16, client: &Path) -> String {
    template
        .replace("@STORE@", &store.display().to_string())
        .replace("@CERTS@", &pack().join("certs").display().to_string())
        .replace("@KEYS@", &pack().join("keys").display().to_string())
        .replace("@PORT@", &port.to_string())
        .replace("@CLIENT@", &client.display().to_string())
        .replace("@SOURCE@", &client.join("src").display().to_string())
}

struct Setup {
    _tmp: tempfile::TempDir,
    conf: PathBuf,
    client_conf: PathBuf,
    pid_file: PathBuf,
    port: u16,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let client = tmp.path().join("client");
    std::fs::create_dir_all(store.join("disc0")).unwrap();
    std::fs::create_dir_all(client.join("src")).unwrap();
    let d = store.join("disc0");
    std::fs::write(
        store.join("raidfile.conf"),
        format!(
            "disc0\n{{\n\tSetNumber = 0\n\tBlockSize = 4096\n\tDir0 = {0}\n\tDir1 = {0}\n\tDir2 = {0}\n}}\n",
            d.display()
        ),
    )
    .unwrap();
    std::fs::write(store.join("accounts.txt"), "").unwrap();
    let mut db = bb_store::AccountDatabase::load(store.join("accounts.txt")).unwrap();
    let discs = bb_raid::DiscSet::single(0, 4096, &d).unwrap();
    bb_store::account::create_account(&mut db, &discs, 0x0123_4567, 1000, 2000).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = store.join("bbstored.conf");
    let t = std::fs::read_to_string(pack().join("conf/bbstored.conf.in")).unwrap();
    std::fs::write(&conf, fill(&t, &store, port, &client)).unwrap();
    let client_conf = client.join("bbackupd.conf");
    let t = std::fs::read_to_string(pack().join("conf/bbackupd.conf.in")).unwrap();
    std::fs::write(&client_conf, fill(&t, &store, port, &client)).unwrap();
    Setup {
        pid_file: store.join("bbstored.pid"),
        _tmp: tmp,
        conf,
        client_conf,
        port,
    }
}

fn start(s: &Setup) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_bbstored"))
        .args(["-F", "-c"])
        .arg(&s.conf)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", s.port)).is_err() || !s.pid_file.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "bbstored did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

fn query_ok(s: &Setup) {
    let out = Command::new("/usr/sbin/bbackupquery")
        .args(["-q", "-c"])
        .arg(&s.client_conf)
        .args(["usage", "quit"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bbackupquery usage: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn alive(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}

#[test]
fn signals_reload_keep_sessions_and_terminate_cleanly() {
    use rustix::process::Signal;
    let s = setup();
    let mut server = start(&s);
    query_ok(&s);

    // SIGPIPE is ignored.
    signal(&server, Signal::PIPE);
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(&mut server));
    query_ok(&s);

    // An interactive session stays up across SIGHUP.
    let mut q = Command::new("/usr/sbin/bbackupquery")
        .args(["-q", "-c"])
        .arg(&s.client_conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut qin = q.stdin.take().unwrap();
    qin.write_all(b"usage\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    signal(&server, Signal::HUP);
    std::thread::sleep(Duration::from_millis(300));
    qin.write_all(b"usage\nquit\n").unwrap();
    drop(qin);
    let out = q.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches("Soft limit").count(), 2, "{text}");
    assert!(alive(&mut server));

    // A broken config on SIGHUP is refused; the old settings stay.
    let good = std::fs::read_to_string(&s.conf).unwrap();
    std::fs::write(&s.conf, format!("{good}Bogus = 1\n")).unwrap();
    signal(&server, Signal::HUP);
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(&mut server));
    query_ok(&s);
    std::fs::write(&s.conf, good).unwrap();

    // SIGTERM with an idle session connected: exits 0 promptly.
    let mut idle = Command::new("/usr/sbin/bbackupquery")
        .args(["-q", "-c"])
        .arg(&s.client_conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let t = Instant::now();
    signal(&server, Signal::TERM);
    let status = loop {
        if let Some(st) = server.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "bbstored did not stop on TERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(!s.pid_file.exists(), "pid file left behind");
    let _ = idle.kill();
    let _ = idle.wait();
}

/// Under systemd (Type=notify), bbstored says READY=1 on $NOTIFY_SOCKET once
/// it listens: the port answers by the time the datagram arrives.
#[test]
fn notifies_systemd_when_listening() {
    let s = setup();
    let sock_dir = tempfile::tempdir().unwrap();
    let path = sock_dir.path().join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bbstored"))
        .args(["-F", "-c"])
        .arg(&s.conf)
        .env("NOTIFY_SOCKET", &path)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf);
    let connected = TcpStream::connect(("127.0.0.1", s.port)).is_ok();
    signal(&child, rustix::process::Signal::TERM);
    let _ = child.wait();
    let n = n.expect("READY=1 within 20 s");
    assert_eq!(&buf[..n], b"READY=1");
    assert!(connected, "READY=1 came before the port listened");
}

/// Waits for READY=1, which comes once the signal handlers are in place:
/// TERM is then a clean stop (the port alone is bound a moment earlier).
/// Other notices (an earlier server's STOPPING=1) are passed over.
fn wait_ready(sock: &std::os::unix::net::UnixDatagram) {
    let mut buf = [0u8; 64];
    loop {
        let n = sock.recv(&mut buf).expect("READY=1 within 20 s");
        if &buf[..n] == b"READY=1" {
            return;
        }
    }
}

/// `-o FILE` (0.13's): the log goes to the file too, appended to, at `-O`'s
/// level; the console keeps its own.
#[test]
fn log_file_option_writes_the_log_there() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify");
    let ready = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    ready
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // bbstored -F with `args` then `-c CONF`, up until READY=1, then TERM:
    // its stderr.
    let run = |args: &[&std::ffi::OsStr]| -> String {
        let child = Command::new(env!("CARGO_BIN_EXE_bbstored"))
            .arg("-F")
            .args(args)
            .arg("-c")
            .arg(&s.conf)
            .env("NOTIFY_SOCKET", &notify)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_ready(&ready);
        signal(&child, rustix::process::Signal::TERM);
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let log = dir.path().join("bbstored.log");
    std::fs::write(&log, "an earlier line\n").unwrap();
    let console = run(&[
        "-q".as_ref(),
        "-o".as_ref(),
        log.as_os_str(),
        "-O".as_ref(),
        "notice".as_ref(),
    ]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("an earlier line\n"), "{text}");
    assert!(text.contains("starting bbstored"), "{text}");
    assert!(text.contains("terminated"), "{text}");
    assert!(!text.contains('\x1b'), "{text}");
    // -q leaves notices off the console, not out of the file.
    assert!(!console.contains("starting bbstored"), "{console}");

    // A file that cannot be opened is a warning, not a failed start.
    let console = run(&["-o".as_ref(), "/nonexistent/dir/log".as_ref()]);
    assert!(
        console.contains("cannot log to /nonexistent/dir/log"),
        "{console}"
    );
}
