//! Running the real Box Backup 0.13 (Debian's boxbackup-server/-client) on the
//! fixture store, on 127.0.0.1, for interop tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::FIX;

fn fill(template: &Path, out: &Path, subs: &[(&str, &str)]) {
    let mut text = std::fs::read_to_string(template).unwrap();
    for (k, v) in subs {
        text = text.replace(k, v);
    }
    std::fs::write(out, text).unwrap();
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real bbstored in the foreground on a copy of store-single, using the
/// certificates under `certs` (fixture layout: server/localhost-{cert,key}.pem,
/// server/clientCA.pem). Killed (by PID) when dropped.
pub struct Bbstored {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Bbstored {
    pub fn start(certs: &Path) -> Bbstored {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("tar")
            .arg("-xzf")
            .arg(Path::new(FIX).join("store-single.tar.gz"))
            .arg("-C")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(ok.success());
        let store = dir.path().join("store-single");
        let port = free_port();
        let subs = [
            ("@STORE@", store.to_str().unwrap()),
            ("@CERTS@", certs.to_str().unwrap()),
            ("@PORT@", &port.to_string()),
        ];
        for f in ["raidfile.conf", "bbstored.conf"] {
            fill(&store.join(f), &store.join(f), &subs);
        }
        let log = dir.path().join("bbstored.log");
        let logf = std::fs::File::create(&log).unwrap();
        let child = Command::new("/usr/sbin/bbstored")
            .arg("-F")
            .arg("-c")
            .arg(store.join("bbstored.conf"))
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .expect("run /usr/sbin/bbstored (Debian package boxbackup-server)");
        let s = Bbstored {
            child,
            port,
            dir,
            log,
        };
        // Ready when its log says it listens (a probe connection would be a failed
        // TLS login in the log).
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("bbstored did not start: {}", s.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs the real bbackupquery with the fixture client config, certificates
    /// under `certs` (client/01234567-{cert,key}.pem, client/serverCA.pem), with
    /// `commands`; returns (exit status, stdout+stderr).
    pub fn bbackupquery(&self, certs: &Path, commands: &[&str]) -> (i32, String) {
        bbackupquery(self.port, self.dir.path(), certs, commands)
    }
}

pub fn bbackupquery(port: u16, scratch: &Path, certs: &Path, commands: &[&str]) -> (i32, String) {
    let client = scratch.join("client");
    std::fs::create_dir_all(&client).unwrap();
    let conf = client.join("bbackupd.conf");
    fill(
        &Path::new(FIX).join("conf/bbackupd.conf.in"),
        &conf,
        &[
            ("@CERTS@", certs.to_str().unwrap()),
            ("@KEYS@", &format!("{FIX}/keys")),
            ("@PORT@", &port.to_string()),
            ("@CLIENT@", client.to_str().unwrap()),
            ("@SOURCE@", "/nonexistent"),
        ],
    );
    let out = Command::new("timeout")
        .arg("60")
        .arg("/usr/sbin/bbackupquery")
        .arg("-c")
        .arg(&conf)
        .args(commands)
        .stdin(Stdio::null())
        .output()
        .expect("run /usr/sbin/bbackupquery (Debian package boxbackup-client)");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

impl Drop for Bbstored {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
