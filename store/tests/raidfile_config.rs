//! `raidfile-config` against the real 0.13 script (/usr/sbin/raidfile-config from
//! boxbackup-server): same arguments in the same temporary paths must give the same
//! file, the same standard output, the same exit status and the same error message
//! (ours is prefixed `raidfile-config: ` where Perl appends `at ... line N.`).

use std::path::Path;
use std::process::Command;

const REAL: &str = "/usr/sbin/raidfile-config";

struct Run {
    code: Option<i32>,
    stdout: String,
    message: String,
    file: Option<Vec<u8>>,
}

fn run(prog: &str, base: &Path, args: &[String]) -> Run {
    let out = Command::new(prog).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let message = match err.strip_prefix("raidfile-config: ") {
        Some(m) => m.trim_end().to_string(),
        None => err
            .split(" at /usr/sbin/raidfile-config line")
            .next()
            .unwrap_or("")
            .trim_end()
            .to_string(),
    };
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        message,
        file: std::fs::read(base.join("conf/raidfile.conf")).ok(),
    }
}

fn case(setup: impl Fn(&Path), args: impl Fn(&Path) -> Vec<String>) {
    let mut runs = Vec::new();
    // Same absolute paths for both programs, so messages can be compared.
    let base = tempfile::tempdir().unwrap();
    for prog in [REAL, env!("CARGO_BIN_EXE_raidfile-config")] {
        let b = base.path();
        for e in std::fs::read_dir(b).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap()
            } else {
                std::fs::remove_file(&p).unwrap()
            }
        }
        setup(b);
        runs.push(run(prog, b, &args(b)));
    }
    let (real, ours) = (&runs[0], &runs[1]);
    let a = args(base.path());
    assert_eq!(ours.code, real.code, "exit status for {a:?}");
    assert_eq!(ours.stdout, real.stdout, "stdout for {a:?}");
    assert_eq!(ours.message, real.message, "message for {a:?}");
    assert_eq!(ours.file, real.file, "file for {a:?}");
}

fn dirs(b: &Path) {
    for d in ["a", "b", "c"] {
        std::fs::create_dir(b.join(d)).unwrap();
    }
}

fn s(b: &Path, rel: &str) -> String {
    b.join(rel).display().to_string()
}

#[test]
fn same_as_0_13() {
    if !Path::new(REAL).exists() {
        eprintln!("SKIPPED: {REAL} not installed (Debian package boxbackup-server)");
        return;
    }
    case(dirs, |b| {
        vec![s(b, "conf"), "4096".into(), s(b, "a"), s(b, "b"), s(b, "c")]
    });
    case(dirs, |b| vec![s(b, "conf"), "2048".into(), s(b, "a")]);
    case(
        |b| {
            dirs(b);
            std::fs::create_dir(b.join("conf")).unwrap();
            std::fs::write(b.join("conf/raidfile.conf"), "old").unwrap();
        },
        |b| vec![s(b, "conf"), "4096".into(), s(b, "a")],
    );
    case(dirs, |b| vec![s(b, "conf"), "4095".into(), s(b, "a")]);
    case(dirs, |b| vec![s(b, "conf"), "abc".into(), s(b, "a")]);
    case(dirs, |b| vec![s(b, "conf"), "1e3".into(), s(b, "a")]);
    case(dirs, |b| {
        vec![s(b, "conf"), "4096".into(), s(b, "a"), s(b, "a"), s(b, "b")]
    });
    case(dirs, |b| vec![s(b, "conf"), "4096".into(), s(b, "missing")]);
    case(dirs, |b| vec![s(b, "conf"), "4096".into(), "a".into()]);
    case(dirs, |b| vec![s(b, "conf"), "4096".into()]);
    case(dirs, |b| {
        vec![s(b, "no/such/conf"), "4096".into(), s(b, "a")]
    });
    case(
        |b| {
            dirs(b);
            std::fs::write(b.join("file"), "").unwrap();
        },
        |b| vec![s(b, "conf"), "4096".into(), s(b, "file")],
    );
}
