//! Our own bbstored, in-process (STYLE rule 7), on stores made for a test.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use bb_raid::DiscSet;
use bb_store::accounts::AccountDatabase;
use bb_store::server::Server;

use crate::fixtures;

/// A store directory with raidfile.conf, accounts.txt and a bbstored.conf that
/// uses the fixture certificates (so the fixture client, account 0x01234567,
/// can log in) on 127.0.0.1:`port`.
#[derive(Debug, Clone)]
pub struct StoreDir {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub port: u16,
}

impl StoreDir {
    /// An empty store: `raid` chooses three discs (RAID) or one.
    pub fn create(dir: &Path, port: u16, raid: bool) -> StoreDir {
        let discs: Vec<PathBuf> = if raid {
            (0..3).map(|i| dir.join(format!("disc{i}"))).collect()
        } else {
            vec![dir.join("disc0"); 3]
        };
        for d in &discs {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(
            dir.join("raidfile.conf"),
            format!(
                "disc0\n{{\n\tSetNumber = 0\n\tBlockSize = 4096\n\tDir0 = {}\n\tDir1 = {}\n\tDir2 = {}\n}}\n",
                discs[0].display(),
                discs[1].display(),
                discs[2].display()
            ),
        )
        .unwrap();
        std::fs::write(dir.join("accounts.txt"), "").unwrap();
        StoreDir::with_config(dir, port)
    }

    /// A bbstored.conf from the pack's template for an existing store dir
    /// (raidfile.conf and accounts.txt inside `dir`).
    pub fn with_config(dir: &Path, port: u16) -> StoreDir {
        let template =
            std::fs::read_to_string(fixtures::pack().join("conf/bbstored.conf.in")).unwrap();
        let ph = fixtures::Placeholders {
            store: Some(dir.to_path_buf()),
            port: Some(port),
            ..Default::default()
        };
        let conf = dir.join("bbstored.conf");
        std::fs::write(&conf, ph.apply(&template)).unwrap();
        StoreDir {
            dir: dir.to_path_buf(),
            conf,
            port,
        }
    }

    /// Adds `MetricsListenAddress = 127.0.0.1:<port>` to the Server block.
    pub fn enable_metrics(&self, port: u16) {
        let text = std::fs::read_to_string(&self.conf).unwrap();
        let text = text.replacen(
            "Server\n{\n",
            &format!("Server\n{{\n\tMetricsListenAddress = 127.0.0.1:{port}\n"),
            1,
        );
        assert!(
            text.contains("MetricsListenAddress"),
            "no Server block in {text}"
        );
        std::fs::write(&self.conf, text).unwrap();
    }

    pub fn discs(&self) -> DiscSet {
        let raid = bb_raid::config::RaidConfig::load(&self.dir.join("raidfile.conf")).unwrap();
        raid.set(0).unwrap().clone()
    }

    /// Creates `account` with limits in blocks, as bbstoreaccounts create does.
    pub fn create_account(&self, account: u32, soft: i64, hard: i64) {
        let mut db = AccountDatabase::load(self.dir.join("accounts.txt")).unwrap();
        bb_store::account::create_account(&mut db, &self.discs(), account, soft, hard).unwrap();
    }

    /// The account's store info as saved.
    pub fn info(&self, account: u32) -> bb_format::storeinfo::StoreInfo {
        let store = bb_store::RaidObjects::new(self.discs(), account);
        let a = bb_store::Account::open(Box::new(store), bb_store::Mode::ReadOnly).unwrap();
        a.info().clone()
    }
}

/// Our bbstored running in this process on a store's bbstored.conf.
#[derive(Debug)]
pub struct OurServer {
    pub server: Arc<Server>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    /// The metrics listener's thread, when the config has MetricsListenAddress.
    metrics: Option<JoinHandle<()>>,
}

impl OurServer {
    pub fn start(conf: &Path) -> OurServer {
        OurServer::start_with(conf, |_| {})
    }

    /// Like [`OurServer::start`], letting `tweak` change the server before it
    /// runs (its store context is not shared yet: `Arc::get_mut` works on it).
    pub fn start_with(conf: &Path, tweak: impl FnOnce(&mut Server)) -> OurServer {
        let mut server = Server::load(conf).unwrap_or_else(|e| panic!("bbstored: {e}"));
        tweak(&mut server);
        let server = Arc::new(server);
        let listeners = server.bind().unwrap();
        let metrics = server
            .bind_metrics()
            .unwrap()
            .map(|l| server.serve_metrics(l).unwrap());
        let s2 = server.clone();
        let thread = std::thread::spawn(move || s2.run(listeners));
        OurServer {
            server,
            thread: Some(thread),
            metrics,
        }
    }

    /// Stops accepting and waits for the sessions to finish.
    pub fn stop(&mut self) {
        self.server.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
        if let Some(t) = self.metrics.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for OurServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Our binary `name` (bbackupd, bbackupctl, bbackupquery, ...), built once per
/// test process. Cargo builds a package's binaries only for that package's own
/// tests, and bb-client's tests may not see our server (bb-store is not below
/// bb-client), so the client suites here build them with cargo.
pub fn bin(name: &str) -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // Without the variables cargo sets for a test run (LD_LIBRARY_PATH and
        // friends), which would otherwise make this build start from scratch.
        let mut cmd = std::process::Command::new(cargo);
        cmd.env_clear();
        for k in [
            "PATH",
            "HOME",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "CARGO_TARGET_DIR",
            "TMPDIR",
        ] {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        let st = cmd
            .args([
                "build",
                "-q",
                "-p",
                "bb-client",
                "-p",
                "bb-fs",
                "-p",
                "bb-store",
                "--bins",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(
            st.success(),
            "cargo build -p bb-client -p bb-fs -p bb-store --bins failed"
        );
    });
    // target/debug/deps/<test binary> -> target/debug/<name>
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(p.exists(), "{} not built", p.display());
    p
}
