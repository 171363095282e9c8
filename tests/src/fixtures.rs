//! The fixture pack `../shared/fixtures/bb013`: stores, certificates, keys and
//! configuration templates written by the real 0.13 (see its README.md).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The pack's directory (`BB013_FIXTURES` overrides the default beside the checkout).
pub fn pack() -> PathBuf {
    match std::env::var_os("BB013_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/bb013"),
    }
}

pub fn certs() -> PathBuf {
    pack().join("certs")
}

pub fn keys_file() -> PathBuf {
    pack().join("keys/01234567-FileEncKeys.raw")
}

/// The fixture account.
pub const ACCOUNT: u32 = 0x0123_4567;

/// Unpacks a `.tar.gz` of the pack into `into`, keeping modes, owners (as root)
/// and xattrs. GNU tar does this more faithfully than the tar crate (xattrs).
pub fn untar(tarball: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let mut cmd = Command::new("tar");
    cmd.args(["--xattrs", "--xattrs-include=user.*", "-xpzf"])
        .arg(tarball)
        .arg("-C")
        .arg(into);
    if crate::is_root() {
        cmd.args(["--numeric-owner", "--same-owner"]);
    }
    let st = cmd.status().expect("run tar");
    assert!(st.success(), "tar -xzf {} failed", tarball.display());
}

/// Placeholder values of the pack's templates (`@STORE@` and friends).
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    pub store: Option<PathBuf>,
    pub port: Option<u16>,
    pub client: Option<PathBuf>,
    pub source: Option<PathBuf>,
}

impl Placeholders {
    pub fn apply(&self, text: &str) -> String {
        let mut t = text
            .replace("@CERTS@", &certs().display().to_string())
            .replace("@KEYS@", &pack().join("keys").display().to_string());
        if let Some(s) = &self.store {
            t = t.replace("@STORE@", &s.display().to_string());
        }
        if let Some(p) = self.port {
            t = t.replace("@PORT@", &p.to_string());
        }
        if let Some(c) = &self.client {
            t = t.replace("@CLIENT@", &c.display().to_string());
        }
        if let Some(s) = &self.source {
            t = t.replace("@SOURCE@", &s.display().to_string());
        }
        t
    }

    /// Rewrites `file` in place with the placeholders replaced.
    pub fn apply_to(&self, file: &Path) {
        let text = std::fs::read_to_string(file).unwrap();
        std::fs::write(file, self.apply(&text)).unwrap();
    }
}

/// Unpacks `store-<layout>.tar.gz` into `dir` and fills in its raidfile.conf and
/// bbstored.conf for `port`. Returns the store directory (`dir/store-<layout>`).
pub fn unpack_store(layout: &str, dir: &Path, port: u16) -> PathBuf {
    untar(&pack().join(format!("store-{layout}.tar.gz")), dir);
    let store = dir.join(format!("store-{layout}"));
    let ph = Placeholders {
        store: Some(store.clone()),
        port: Some(port),
        ..Placeholders::default()
    };
    ph.apply_to(&store.join("raidfile.conf"));
    ph.apply_to(&store.join("bbstored.conf"));
    store
}

/// Runs the pack's `gen-source.py` (`round1`, `round2`, `round3`) on `dir`.
pub fn gen_source(step: &str, dir: &Path) {
    let st = Command::new("python3")
        .arg(pack().join("gen-source.py"))
        .arg(step)
        .arg(dir)
        .status()
        .expect("run python3 gen-source.py");
    assert!(
        st.success(),
        "gen-source.py {step} {} failed",
        dir.display()
    );
}

/// The fixture client (account 0x01234567, its certificate and the server CA)
/// as bb-remote connects to 127.0.0.1:`port`. Timeouts of 120 s: short enough
/// that a hang fails a test, long enough for a loaded machine.
pub fn remote_config(port: u16, read_only: bool) -> bb_remote::Config {
    let d = certs().join("client");
    let tls = bb_remote::Config::tls_from_files(
        &d.join("01234567-cert.pem"),
        &d.join("01234567-key.pem"),
        &d.join("serverCA.pem"),
        false,
    )
    .unwrap();
    let mut c = bb_remote::Config::new("127.0.0.1", ACCOUNT, tls);
    c.port = port;
    c.read_only = read_only;
    c.timeouts = bb_remote::Timeouts::all(std::time::Duration::from_secs(120));
    c
}
