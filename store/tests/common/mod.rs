//! Test kit: a temporary store (raidfile.conf, bbstored.conf, accounts.txt, discs)
//! usable by both our code and the real 0.13 `bbstoreaccounts`.
#![allow(dead_code)]

pub mod files;

use std::path::{Path, PathBuf};
use std::process::Command;

use bb_raid::DiscSet;
use bb_raid::config::RaidConfig;

pub const BBSTOREACCOUNTS: &str = "/usr/sbin/bbstoreaccounts";

pub fn have_013() -> bool {
    let ok = Path::new(BBSTOREACCOUNTS).exists();
    if !ok {
        eprintln!("skipping: {BBSTOREACCOUNTS} is not installed");
    }
    ok
}

pub struct TempStore {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub raid: bool,
    pub block_size: u64,
}

impl TempStore {
    pub fn new(raid: bool, block_size: u64) -> TempStore {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let discs: Vec<PathBuf> = if raid {
            (0..3).map(|i| root.join(format!("disc{i}"))).collect()
        } else {
            vec![root.join("disc0"); 3]
        };
        for d in &discs {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(
            root.join("raidfile.conf"),
            format!(
                "disc0\n{{\n\tSetNumber = 0\n\tBlockSize = {block_size}\n\tDir0 = {}\n\tDir1 = {}\n\tDir2 = {}\n}}\n",
                discs[0].display(),
                discs[1].display(),
                discs[2].display()
            ),
        )
        .unwrap();
        write_bbstored_conf(root);
        std::fs::write(root.join("accounts.txt"), "").unwrap();
        let root = root.to_path_buf();
        TempStore {
            dir,
            root,
            raid,
            block_size,
        }
    }

    /// An unpacked copy of a 0.13 fixture store (`@STORE@` replaced).
    pub fn from_fixture(tarball: &str, top: &str) -> TempStore {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::open(format!(
            "{}/../../shared/fixtures/bb013/{tarball}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        tar::Archive::new(flate2::read::GzDecoder::new(f))
            .unpack(dir.path())
            .unwrap();
        let root = dir.path().join(top);
        let conf = std::fs::read_to_string(root.join("raidfile.conf")).unwrap();
        std::fs::write(
            root.join("raidfile.conf"),
            conf.replace("@STORE@", &root.display().to_string()),
        )
        .unwrap();
        write_bbstored_conf(&root);
        let cfg = RaidConfig::load(&root.join("raidfile.conf")).unwrap();
        let set = cfg.set(0).unwrap();
        let (raid, block_size) = (set.is_raid(), set.block_size());
        TempStore {
            dir,
            root,
            raid,
            block_size,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn conf(&self) -> PathBuf {
        self.root().join("bbstored.conf")
    }

    pub fn accounts_txt(&self) -> PathBuf {
        self.root().join("accounts.txt")
    }

    pub fn discs(&self) -> DiscSet {
        RaidConfig::load(&self.root().join("raidfile.conf"))
            .unwrap()
            .set(0)
            .unwrap()
            .clone()
    }

    /// Runs the real `bbstoreaccounts -c bbstored.conf <args>`; (success, output).
    pub fn bbstoreaccounts(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(BBSTOREACCOUNTS)
            .arg("-c")
            .arg(self.conf())
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// `bbstoreaccounts check <id>` finds no error.
    pub fn assert_013_check_clean(&self, account: u32) {
        let (ok, out) = self.bbstoreaccounts(&["check", &format!("{account:x}")]);
        assert!(
            ok && out.contains("no errors found"),
            "0.13 check of {account:x} failed:\n{out}"
        );
    }

    /// A counter line of `bbstoreaccounts info`, e.g. "Used" -> blocks.
    pub fn info_013(&self, account: u32) -> String {
        let (ok, out) = self.bbstoreaccounts(&["info", &format!("{account:x}")]);
        assert!(ok, "{out}");
        out
    }
}

/// Parses `bbstoreaccounts info` into (label, first number) pairs.
pub fn info_field(info: &str, label: &str) -> i64 {
    for line in info.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(label).and_then(|r| r.strip_prefix(':')) {
            let rest = rest.trim();
            let num: String = rest
                .trim_start_matches("0x")
                .chars()
                .take_while(|c| c.is_ascii_hexdigit())
                .collect();
            if rest.starts_with("0x") {
                return i64::from_str_radix(&num, 16).unwrap();
            }
            let dec: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            return dec.parse().unwrap();
        }
    }
    panic!("no {label:?} in\n{info}");
}

fn write_bbstored_conf(root: &Path) {
    std::fs::write(
        root.join("bbstored.conf"),
        format!(
            "RaidFileConf = {r}/raidfile.conf\nAccountDatabase = {r}/accounts.txt\nTimeBetweenHousekeeping = 900\nServer\n{{\n\tPidFile = {r}/bbstored.pid\n\tListenAddresses = inet:127.0.0.1:1\n\tCertificateFile = {r}/x\n\tPrivateKeyFile = {r}/x\n\tTrustedCAsFile = {r}/x\n}}\n",
            r = root.display()
        ),
    )
    .unwrap();
}

/// Every file under `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}
