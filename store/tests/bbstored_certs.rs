//! `bbstored-certs` against the real 0.13 script (/usr/bin/bbstored-certs from
//! boxbackup-server): same arguments and answers in the same temporary paths must
//! give the same standard output, exit status, error message (ours is prefixed
//! `bbstored-certs: ` where Perl appends `at ... line N.`) and the same files.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const REAL: &str = "/usr/bin/bbstored-certs";
const FIX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/bb013/certs"
);

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    message: String,
    /// (relative path, mode) of every file and directory under the base.
    files: Vec<(String, u32)>,
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, u32)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let p = e.unwrap().path();
        let m = std::fs::metadata(&p).unwrap();
        let rel = p.strip_prefix(base).unwrap().to_string_lossy().to_string();
        if !rel.starts_with("input") {
            // Serial files must count alike; other contents differ (keys, dates).
            let rel = if rel.ends_with(".srl") {
                format!("{rel}={}", std::fs::read_to_string(&p).unwrap().trim())
            } else {
                rel
            };
            out.push((rel, m.permissions().mode() & 0o7777));
        }
        if m.is_dir() {
            walk(base, &p, out);
        }
    }
}

fn run(prog: &str, base: &Path, args: &[String], stdin: &str) -> Run {
    let mut child = Command::new(prog)
        .args(args)
        .current_dir(base)
        .env_remove("OPENSSL_CONF")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let message = match err.strip_prefix("bbstored-certs: ") {
        Some(m) => m.trim_end().to_string(),
        // Perl's die message is the last line; openssl's chatter comes before it.
        None => err
            .lines()
            .find(|l| l.contains(" at /usr/bin/bbstored-certs line"))
            .map(|l| {
                l.split(" at /usr/bin/bbstored-certs line")
                    .next()
                    .unwrap_or("")
            })
            .unwrap_or("")
            .to_string(),
    };
    let mut files = Vec::new();
    walk(base, base, &mut files);
    files.sort();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        message,
        files,
    }
}

fn clear(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() == "input" {
            continue;
        }
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap()
        } else {
            std::fs::remove_file(&p).unwrap()
        }
    }
}

fn copy_ca(base: &Path) {
    let ok = Command::new("cp")
        .arg("-r")
        .arg(format!("{FIX}/ca"))
        .arg(base.join("ca"))
        .status()
        .unwrap();
    assert!(ok.success());
    Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(base.join("ca"))
        .status()
        .unwrap();
}

/// Requests made once per test run, as bbackupd-config / openssl req make them.
fn inputs(base: &Path) -> PathBuf {
    let input = base.join("input");
    std::fs::create_dir_all(&input).unwrap();
    let sh = |cmd: &str| {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(&input)
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
    };
    sh("openssl genrsa -out k.pem 2048");
    for (file, cn) in [
        ("1234-csr.pem", "BACKUP-1234"),
        ("1235-csr.pem", "BACKUP-1234"),
        ("12-csr.pem", "foo"),
        ("srv-csr.pem", "my.server"),
        ("bad-csr.pem", "my_server"),
    ] {
        sh(&format!(
            "openssl req -new -key k.pem -subj /CN={cn} -out {file}"
        ));
    }
    input
}

fn case(base: &Path, setup: impl Fn(&Path), args: &[&str], stdin: &str) -> (Run, Run) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut runs = Vec::new();
    for prog in [REAL, env!("CARGO_BIN_EXE_bbstored-certs")] {
        clear(base);
        setup(base);
        runs.push(run(prog, base, &args, stdin));
    }
    let ours = runs.pop().unwrap();
    let real = runs.pop().unwrap();
    assert_eq!(ours.code, real.code, "exit status for {args:?}");
    assert_eq!(ours.stdout, real.stdout, "stdout for {args:?}");
    assert_eq!(ours.message, real.message, "message for {args:?}");
    assert_eq!(ours.files, real.files, "files for {args:?}");
    (real, ours)
}

#[test]
fn same_behaviour_as_013() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path();
    inputs(base);
    let none = |_: &Path| {};
    let with_ca = |b: &Path| copy_ca(b);
    let with_csr = |name: &'static str| {
        move |b: &Path| {
            copy_ca(b);
            std::fs::copy(b.join("input").join(name), b.join(name)).unwrap();
        }
    };

    case(base, none, &[], "");
    case(base, none, &["ca"], "");
    case(base, none, &["nodir", "sign", "x"], "");
    case(base, none, &["nodir", "frob"], "");
    case(base, with_ca, &["ca", "frob"], "");
    case(base, with_ca, &["ca", "init"], "");
    let (real, _) = case(base, none, &["ca", "init"], "");
    assert_eq!(real.code, Some(0));
    case(base, with_ca, &["ca", "sign"], "");
    case(base, with_ca, &["ca", "sign", "nonexist-csr.pem"], "");
    case(
        base,
        with_csr("12-csr.pem"),
        &["ca", "sign", "12-csr.pem"],
        "",
    );
    case(
        base,
        with_csr("1235-csr.pem"),
        &["ca", "sign", "1235-csr.pem"],
        "",
    );
    case(
        base,
        with_csr("1234-csr.pem"),
        &["ca", "sign", "1234-csr.pem"],
        "no\n",
    );
    case(
        base,
        with_csr("1234-csr.pem"),
        &["ca", "sign", "1234-csr.pem"],
        "",
    );
    let (real, _) = case(
        base,
        with_csr("1234-csr.pem"),
        &["ca", "sign", "1234-csr.pem"],
        "YES\n",
    );
    assert!(real.stdout.contains("Certificate signed."));
    let (real, _) = case(
        base,
        with_csr("1234-csr.pem"),
        &["ca", "sign", "./1234-csr.pem"],
        "yes\n",
    );
    assert!(real.stdout.contains("Certificate signed."));
    case(
        base,
        with_csr("bad-csr.pem"),
        &["ca", "sign-server", "bad-csr.pem"],
        "yes\n",
    );
    case(
        base,
        with_csr("srv-csr.pem"),
        &["ca", "sign-server", "srv-csr.pem"],
        "nope\n",
    );
    let (real, _) = case(
        base,
        with_csr("srv-csr.pem"),
        &["ca", "sign-server", "srv-csr.pem"],
        "yes\n",
    );
    assert!(real.stdout.contains("on the server."));
}
