//! Processes of the real Box Backup 0.13 (Debian's boxbackup-server and
//! boxbackup-client) and their configuration, for interop suites.
//!
//! Every 0.13 process gets the TCP_NODELAY shim (`../shared/tools/nodelay-shim.c`)
//! preloaded: without it each round trip on loopback idles ~40 ms in Nagle's
//! algorithm and the suites would take minutes. Our own binaries never get it.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::fixtures;

/// Path of a 0.13 binary. Panics with the install hint: interop suites must not
/// pass silently on a machine without 0.13 (`.ci/run` installs it).
pub fn bin(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{name} (Box Backup 0.13) not found: apt-get install -y boxbackup-server boxbackup-client"
    );
}

/// The compiled TCP_NODELAY shim, built once per machine into the temp dir.
pub fn nodelay_shim() -> PathBuf {
    let src = fixtures::pack().join("../../tools/nodelay-shim.c");
    let out = std::env::temp_dir().join("bb-tests-nodelay-shim.so");
    let fresh = match (std::fs::metadata(&out), std::fs::metadata(&src)) {
        (Ok(o), Ok(s)) => o.modified().ok() >= s.modified().ok(),
        _ => false,
    };
    if !fresh {
        // Build under a unique name and rename: concurrent tests may race here.
        // (Tests of one process race too: the thread is part of the name.)
        let tmp = out.with_extension(format!(
            "so.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let st = Command::new("gcc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&tmp)
            .arg(&src)
            .arg("-ldl")
            .status()
            .expect("run gcc for the nodelay shim");
        assert!(st.success(), "gcc {} failed", src.display());
        std::fs::rename(&tmp, &out).unwrap();
    }
    out
}

/// A command for a 0.13 binary with the shim preloaded.
pub fn command(name: &str) -> Command {
    let mut c = Command::new(bin(name));
    c.env("LD_PRELOAD", nodelay_shim());
    c
}

/// A child process that is stopped (TERM, then KILL) when dropped.
#[derive(Debug)]
pub struct Daemon {
    pub child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Daemon {
    pub fn spawn(mut cmd: Command, name: &str, log: &Path) -> Daemon {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Daemon {
            child,
            name: name.to_string(),
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: rustix::process::Signal) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid()) {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }

    /// SIGTERM, then waits up to `grace` before SIGKILL. Returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        self.signal(rustix::process::Signal::TERM);
        let t = Instant::now();
        while t.elapsed() < grace {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok();
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, d: &mut Daemon) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        assert!(d.is_running(), "{} exited early:\n{}", d.name, d.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} does not listen on {port}:\n{}", d.name, d.log_text());
}

/// Creates the fixture account 0x01234567 with 0.13's own `bbstoreaccounts`
/// (`soft`/`hard` in its syntax, e.g. "100M", "50B") on a store's bbstored.conf.
pub fn create_fixture_account(conf: &Path, soft: &str, hard: &str) {
    let out = command("bbstoreaccounts")
        .arg("-c")
        .arg(conf)
        .args(["create", "01234567", "0", soft, hard])
        .output()
        .unwrap();
    assert!(out.status.success(), "0.13 bbstoreaccounts create: {out:?}");
}

/// The real 0.13 bbstored in the foreground (`-F`) on `conf`, listening on `port`.
pub fn start_bbstored(conf: &Path, port: u16, log: &Path) -> Daemon {
    let mut cmd = command("bbstored");
    cmd.arg("-F").arg("-c").arg(conf);
    let mut d = Daemon::spawn(cmd, "bbstored (0.13)", log);
    wait_for_port(port, &mut d);
    d
}

/// A 0.13 client (bbackupd, bbackupctl, bbackupquery) for the fixture account
/// 0x01234567, its certificates and keys, backing up one location `source`.
#[derive(Debug)]
pub struct Client013 {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub source: PathBuf,
    round: u32,
}

impl Client013 {
    /// Writes `dir/bbackupd.conf` (the pack's snapshot-mode template) for a
    /// server on `port` and the location `source`.
    pub fn new(dir: &Path, port: u16, source: &Path) -> Client013 {
        std::fs::create_dir_all(dir).unwrap();
        let template =
            std::fs::read_to_string(fixtures::pack().join("conf/bbackupd.conf.in")).unwrap();
        let ph = fixtures::Placeholders {
            port: Some(port),
            client: Some(dir.to_path_buf()),
            source: Some(source.to_path_buf()),
            ..Default::default()
        };
        let conf = dir.join("bbackupd.conf");
        std::fs::write(&conf, ph.apply(&template)).unwrap();
        Client013 {
            dir: dir.to_path_buf(),
            conf,
            source: source.to_path_buf(),
            round: 0,
        }
    }

    /// A client for an existing `conf` (one written by 0.13's `bbackupd-config`,
    /// say) whose `DataDirectory` (with `CommandSocket` and `PidFile` in it) is
    /// `dir` and whose one location is `source`.
    pub fn from_conf(conf: &Path, dir: &Path, source: &Path) -> Client013 {
        Client013 {
            dir: dir.to_path_buf(),
            conf: conf.to_path_buf(),
            source: source.to_path_buf(),
            round: 0,
        }
    }

    /// One snapshot backup: bbackupd starts, `bbackupctl sync-and-wait`, bbackupd
    /// stops. Panics when the run logged an error. Returns bbackupd's log.
    pub fn backup_round(&mut self) -> String {
        self.round += 1;
        let log = self.dir.join(format!("bbackupd-round{}.log", self.round));
        let _ = std::fs::remove_file(self.dir.join("bbackupd.pid"));
        // A socket left by the previous round would let bbackupctl in too early.
        let _ = std::fs::remove_file(self.dir.join("bbackupd.sock"));
        let mut cmd = command("bbackupd");
        cmd.args(["-F", "-V", "-c"]).arg(&self.conf);
        let mut d = Daemon::spawn(cmd, "bbackupd (0.13)", &log);
        let sock = self.dir.join("bbackupd.sock");
        let t = Instant::now();
        while !sock.exists() {
            assert!(d.is_running(), "bbackupd exited early:\n{}", d.log_text());
            assert!(t.elapsed() < Duration::from_secs(30), "no command socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = command("bbackupctl")
            .args(["-q", "-c"])
            .arg(&self.conf)
            .arg("sync-and-wait")
            .output()
            .unwrap();
        d.stop(Duration::from_secs(30));
        let text = d.log_text();
        assert!(
            out.status.success(),
            "bbackupctl sync-and-wait: {}\n{}\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let bad: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("ERROR") || l.starts_with("FATAL"))
            .collect();
        assert!(
            bad.is_empty(),
            "bbackupd logged errors:\n{}",
            bad.join("\n")
        );
        assert!(text.contains("File statistics"), "no sync summary:\n{text}");
        text
    }

    /// Runs bbackupquery with `commands` then `quit`.
    pub fn query(&self, commands: &[&str]) -> Output {
        let mut cmd = command("bbackupquery");
        cmd.arg("-c").arg(&self.conf).args(commands).arg("quit");
        cmd.output().unwrap()
    }

    /// Like [`Client013::query`], with commands that need not be UTF-8.
    pub fn query_os(&self, commands: &[std::ffi::OsString]) -> Output {
        let mut cmd = command("bbackupquery");
        cmd.arg("-c").arg(&self.conf).args(commands).arg("quit");
        cmd.output().unwrap()
    }

    /// `compare -acQ`: 0.13's exit status (1 = no differences, 2 = differences,
    /// 3 = error) and its output.
    pub fn compare(&self) -> (i32, String) {
        let out = self.query(&["compare -acQ"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// `restore <location> <dest>`; panics on failure.
    pub fn restore(&self, location: &str, dest: &Path) {
        let cmd = format!("restore {location} {}", dest.display());
        let out = self.query(&[&cmd]);
        assert!(
            out.status.success() && dest.exists(),
            "{cmd}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Reads all of a child's stream into a string (for tools run with pipes).
pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}
