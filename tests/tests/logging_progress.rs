//! Log destinations and progress lines of the real binaries: bbstored and
//! `bbackupd --once` logging to syslog / journald sockets the test binds
//! (through BB_SYSLOG_SOCKET / BB_JOURNALD_SOCKET), a missing socket falling
//! back to stderr, and the progress line under a pseudo-terminal
//! (`script -qfec`), absent when piped or with -q.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bb_tests::bb013::Client013;
use bb_tests::fixtures::ACCOUNT;
use bb_tests::free_port;
use bb_tests::ours::{OurServer, StoreDir, bin};

fn listen(path: &Path) -> UnixDatagram {
    let s = UnixDatagram::bind(path).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// Datagrams until `done` says so or 20 s pass.
fn receive(s: &UnixDatagram, done: impl Fn(&[Vec<u8>]) -> bool) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let t = Instant::now();
    let mut buf = vec![0; 70_000];
    while !done(&got) && t.elapsed() < Duration::from_secs(20) {
        if let Ok(n) = s.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
    }
    got
}

fn with_root_keys(conf: &Path, keys: &str) {
    let text = std::fs::read_to_string(conf).unwrap();
    std::fs::write(conf, format!("{keys}{text}")).unwrap();
}

fn field(d: &[u8], key: &str) -> Option<String> {
    bb_console::journald::parse(d)?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
}

#[test]
fn bbstored_logs_to_syslog_and_journald_and_survives_a_missing_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), false);
    let sock = tmp.path().join("log.sock");

    // syslog: 0.13's datagram, facility daemon.
    with_root_keys(&store.conf, "LogTo = syslog\n");
    let rx = listen(&sock);
    let mut child = Command::new(bin("bbstored"))
        .arg("-F")
        .arg(&store.conf)
        .env("BB_SYSLOG_SOCKET", &sock)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let got = receive(&rx, |g| {
        g.iter()
            .any(|d| String::from_utf8_lossy(d).contains("listening on"))
    });
    let pid = child.id();
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text: Vec<String> = got
        .iter()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .collect();
    let want = format!("<29>bbstored[{pid}]: NOTICE: starting bbstored");
    assert!(text.iter().any(|t| t.starts_with(&want)), "{text:?}");
    assert!(
        text.iter().any(|t| t.starts_with(&format!(
            "<29>bbstored[{pid}]: NOTICE: listening on 127.0.0.1:"
        ))),
        "{text:?}"
    );
    // Nothing on the console: the log went to syslog only.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(rx);
    std::fs::remove_file(&sock).unwrap();

    // journald: the native protocol.
    let text = std::fs::read_to_string(&store.conf).unwrap();
    std::fs::write(
        &store.conf,
        text.replace("LogTo = syslog", "LogTo = journald"),
    )
    .unwrap();
    let rx = listen(&sock);
    let mut child = Command::new(bin("bbstored"))
        .arg("-F")
        .arg(&store.conf)
        .env("BB_JOURNALD_SOCKET", &sock)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let got = receive(&rx, |g| {
        g.iter()
            .any(|d| field(d, "MESSAGE").is_some_and(|m| m.starts_with("listening on")))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let start = got
        .iter()
        .find(|d| field(d, "MESSAGE").is_some_and(|m| m.starts_with("starting bbstored")))
        .unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(field(start, "PRIORITY").as_deref(), Some("5"));
    assert_eq!(
        field(start, "SYSLOG_IDENTIFIER").as_deref(),
        Some("bbstored")
    );
    assert_eq!(field(start, "SYSLOG_FACILITY").as_deref(), Some("3"));
    drop(rx);
    std::fs::remove_file(&sock).unwrap();

    // No socket: one warning on stderr, and the server runs all the same.
    let mut child = Command::new(bin("bbstored"))
        .arg("-F")
        .arg(&store.conf)
        .env("BB_JOURNALD_SOCKET", &sock)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its stderr, read as it comes: the "listening on" line is written once
    // the signal handlers are in place (the port is bound a moment before).
    let stderr = child.stderr.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let s2 = seen.clone();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let mut s = s2.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let t = Instant::now();
    while !seen.lock().unwrap().contains("listening on") {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "bbstored did not start: {}",
            seen.lock().unwrap()
        );
        assert!(child.try_wait().unwrap().is_none(), "bbstored died");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGTERM: a clean stop, after which everything it logged is there.
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    let err = seen.lock().unwrap().clone();
    assert_eq!(err.matches("cannot log to journald").count(), 1, "{err}");
    assert!(err.contains("listening on"), "{err}");
}

/// Incompressible files: with MaxUploadRate the run takes about a second.
fn source(dir: &Path) -> PathBuf {
    bb_tests::tree::incompressible_files(dir, &[150_000; 8])
}

/// `cmd` under a pseudo-terminal; what the terminal showed.
fn on_a_terminal(cmd: &str) -> String {
    let out = Command::new("script")
        .args(["-qfec", cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bbackupd_once_logs_to_journald_and_shows_progress_on_a_terminal_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), false);
    store.create_account(ACCOUNT, 100_000, 120_000);
    let _server = OurServer::start(&store.conf);
    let src = source(tmp.path());
    let c = Client013::new(&tmp.path().join("client"), store.port, &src);

    // journald, a first run piped: no progress, and the log in the journal.
    with_root_keys(&c.conf, "LogTo = journald\nMaxUploadRate = 1000\n");
    let sock = tmp.path().join("journal.sock");
    let rx = listen(&sock);
    let out = Command::new(bin("bbackupd"))
        .arg("--once")
        .arg(&c.conf)
        .env("BB_JOURNALD_SOCKET", &sock)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = receive(&rx, |g| {
        g.iter()
            .any(|d| field(d, "MESSAGE").is_some_and(|m| m.contains("File statistics")))
    });
    let stats = got
        .iter()
        .find(|d| field(d, "MESSAGE").is_some_and(|m| m.contains("File statistics")))
        .unwrap_or_else(|| panic!("{got:?}"));
    assert_eq!(
        field(stats, "SYSLOG_IDENTIFIER").as_deref(),
        Some("bbackupd")
    );
    assert_eq!(field(stats, "PRIORITY").as_deref(), Some("5"));
    drop(rx);

    // A first backup by hand on a terminal (a fresh store and client).
    let first_run = |n: &str, quiet: &str| {
        let store = StoreDir::create(&tmp.path().join(format!("store-{n}")), free_port(), false);
        store.create_account(ACCOUNT, 100_000, 120_000);
        let server = OurServer::start(&store.conf);
        let c = Client013::new(&tmp.path().join(format!("client-{n}")), store.port, &src);
        with_root_keys(&c.conf, "MaxUploadRate = 1000\n");
        let shown = on_a_terminal(&format!(
            "{} {quiet} --once {}",
            bin("bbackupd").display(),
            c.conf.display()
        ));
        (shown, server, c)
    };
    let (shown, _server, c) = first_run("tty", "");
    assert!(shown.contains("\rBacking up "), "{shown:?}");
    assert!(shown.contains("/s"), "{shown:?}");
    assert!(shown.contains(" left"), "{shown:?}");
    assert!(shown.contains(" sent ("), "{shown:?}");
    // Wiped at the end: the last thing on the line is the erase.
    assert!(shown.contains("\r\x1b[K"), "{shown:?}");
    // -q: no progress.
    let (shown, ..) = first_run("quiet", "-q");
    assert!(!shown.contains("Backing up"), "{shown:?}");

    // bbackupquery compare and restore: on a terminal, not piped, not with -q.
    let query = |q: &str, cmd: &str| {
        format!(
            "{} {q} -c {} '{cmd}' quit",
            bin("bbackupquery").display(),
            c.conf.display()
        )
    };
    let shown = on_a_terminal(&query("", "compare -a"));
    assert!(shown.contains("\rComparing "), "{shown:?}");
    assert!(shown.ends_with("\r\x1b[K"), "{shown:?}");
    let shown = on_a_terminal(&query("-q", "compare -a"));
    assert!(!shown.contains("Comparing "), "{shown:?}");
    let piped = Command::new("sh")
        .args(["-c", &query("", "compare -a")])
        .output()
        .unwrap();
    let all = [piped.stdout.clone(), piped.stderr.clone()].concat();
    assert!(!String::from_utf8_lossy(&all).contains('\r'), "{piped:?}");
    let target = tmp.path().join("restored");
    let shown = on_a_terminal(&query("", &format!("restore source {}", target.display())));
    assert!(shown.contains("\rRestoring "), "{shown:?}");
    assert!(target.join("f7").exists(), "{shown:?}");

    // bbstoreaccounts check: on a terminal, not with `quiet`, not piped; the
    // messages are 0.13's either way.
    let check = |quiet: &str| {
        format!(
            "{} -c {} check {ACCOUNT:x} {quiet}",
            bin("bbstoreaccounts").display(),
            store.conf.display()
        )
    };
    let shown = on_a_terminal(&check(""));
    assert!(shown.contains("\rChecking "), "{shown:?}");
    assert!(shown.contains(" objects"), "{shown:?}");
    assert!(shown.contains(" directories"), "{shown:?}");
    assert!(shown.contains("\r\x1b[K"), "{shown:?}");
    let shown = on_a_terminal(&check("quiet"));
    assert!(!shown.contains("Checking "), "{shown:?}");
    let piped = Command::new("sh")
        .args(["-c", &check("")])
        .output()
        .unwrap();
    assert_eq!(piped.status.code(), Some(0), "{piped:?}");
    let all = [piped.stdout.clone(), piped.stderr.clone()].concat();
    assert!(!String::from_utf8_lossy(&all).contains('\r'), "{piped:?}");
}

/// A mount started in the background logs to syslog as well (its stderr is
/// gone once it is up): the "mounted" line arrives with bbackupfs' identifier.
#[test]
fn bbackupfs_in_the_background_logs_to_syslog() {
    if !bb_tests::mount::fuse_available("bbackupfs_in_the_background_logs_to_syslog") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), false);
    store.create_account(ACCOUNT, 100_000, 120_000);
    let _server = OurServer::start(&store.conf);
    let src = source(tmp.path());
    let c = Client013::new(&tmp.path().join("client"), store.port, &src);
    let out = Command::new(bin("bbackupd"))
        .arg("--once")
        .arg(&c.conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let sock = tmp.path().join("log.sock");
    let rx = listen(&sock);
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let out = Command::new(bin("bbackupfs"))
        .arg("-v")
        .arg("-c")
        .arg(&c.conf)
        .arg("--no-disk-cache")
        .arg(&mnt)
        .env("BB_SYSLOG_SOCKET", &sock)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let got = receive(&rx, |g| {
        g.iter()
            .any(|d| String::from_utf8_lossy(d).contains("mounted on"))
    });
    let _ = Command::new("fusermount3").arg("-u").arg(&mnt).status();
    let t = Instant::now();
    while bb_tests::mount::is_mounted(&mnt) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = got
        .iter()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .find(|d| d.contains("mounted on"))
        .unwrap_or_else(|| panic!("no 'mounted on' line in {got:?}"));
    // daemon.notice (tracing INFO is 0.13's NOTICE), the program's name, its pid.
    assert!(line.starts_with("<29>bbackupfs["), "{line}");
    assert!(!bb_tests::mount::is_mounted(&mnt));
}
