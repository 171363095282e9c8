//! `bbstored-config` against the real 0.13 script (/usr/sbin/bbstored-config from
//! boxbackup-server): the same arguments in the same temporary paths must give the
//! same standard output (but for the bbstored path in the closing text), exit
//! status, error message (ours is prefixed `bbstored-config: ` where Perl appends
//! `at ... line N.`), the same files with the same modes, and byte-identical
//! bbstored.conf. Then the request we made is signed by our bbstored-certs and by
//! 0.13's, and the result loads into our server's TLS setup.
//!
//! Runs as root, as the script expects (it chowns a raid directory to `nobody`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bb_store::server::config::ServerConfig;

const REAL: &str = "/usr/sbin/bbstored-config";
const REAL_CERTS: &str = "/usr/bin/bbstored-certs";
const OURS: &str = env!("CARGO_BIN_EXE_bbstored-config");
const OUR_CERTS: &str = env!("CARGO_BIN_EXE_bbstored-certs");
const CA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/bb013/certs/ca"
);

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    message: String,
    /// (relative path, mode, contents unless a key or request) under the base.
    files: Vec<(String, u32, Option<String>)>,
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, u32, Option<String>)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = std::fs::metadata(&p).unwrap();
        let rel = p.strip_prefix(base).unwrap().to_string_lossy().to_string();
        if rel == "input" {
            continue;
        }
        let contents =
            (m.is_file() && !rel.ends_with(".pem")).then(|| std::fs::read_to_string(&p).unwrap());
        out.push((rel, m.permissions().mode() & 0o7777, contents));
        if m.is_dir() {
            walk(base, &p, out);
        }
    }
}

fn run(prog: &str, base: &Path, args: &[&str]) -> Run {
    let out = Command::new(prog)
        .args(args)
        .current_dir(base)
        .env_remove("OPENSSL_CONF")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let message = if out.status.success() {
        String::new()
    } else {
        // Perl's die message is the last line (openssl's chatter may come before it).
        let last = err.lines().rev().find(|l| !l.is_empty()).unwrap_or("");
        let last = last.strip_prefix("bbstored-config: ").unwrap_or(last);
        last.split(" at /usr/sbin/bbstored-config line")
            .next()
            .unwrap()
            .to_string()
    };
    let mut files = Vec::new();
    walk(base, base, &mut files);
    files.sort();
    let our_bbstored = Path::new(OURS).parent().unwrap().join("bbstored");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout)
            .replace(&*our_bbstored.to_string_lossy(), "/usr/local/sbin/bbstored"),
        message,
        files,
    }
}

fn clear(base: &Path) {
    for e in std::fs::read_dir(base).unwrap() {
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

fn mode(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

fn uid_of(user: &str) -> u32 {
    let passwd = std::fs::read(Path::new("/etc/passwd")).unwrap();
    bb_store::config_tool::passwd_uid(&passwd, user).unwrap()
}

/// etc/raidfile.conf over d0 (with a `backup` directory owned by nobody, 0700),
/// d1 and d2 (0777), as raidfile-config writes it.
fn raid_setup(base: &Path) {
    std::fs::create_dir(base.join("etc")).unwrap();
    for d in ["d0", "d1", "d2"] {
        std::fs::create_dir(base.join(d)).unwrap();
        mode(&base.join(d), 0o777);
    }
    mode(&base.join("d0"), 0o755);
    let backup = base.join("d0/backup");
    std::fs::create_dir(&backup).unwrap();
    mode(&backup, 0o700);
    std::os::unix::fs::chown(&backup, Some(uid_of("nobody")), None).unwrap();
    let dir = |d: &str| base.join(d).display().to_string();
    std::fs::write(
        base.join("etc/raidfile.conf"),
        format!(
            "\ndisc0\n{{\n\tSetNumber = 0\n\tBlockSize = 8192\n\tDir0 = {}\n\tDir1 = {}\n\tDir2 = {}\n}}\n\n",
            dir("d0"),
            dir("d1"),
            dir("d2")
        ),
    )
    .unwrap();
}

/// Runs the real script and ours after the same `setup` and checks they agree.
fn case(base: &Path, setup: impl Fn(&Path, &str), args: &[&str]) -> (Run, Run) {
    let mut runs = Vec::new();
    for prog in [REAL, OURS] {
        clear(base);
        setup(base, prog);
        runs.push(run(prog, base, args));
    }
    let ours = runs.pop().unwrap();
    let real = runs.pop().unwrap();
    assert_eq!(ours.code, real.code, "exit status for {args:?}");
    assert_eq!(ours.stdout, real.stdout, "stdout for {args:?}");
    assert_eq!(ours.message, real.message, "message for {args:?}");
    assert_eq!(ours.files, real.files, "files for {args:?}");
    (real, ours)
}

fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Signs `csr` as a server certificate with a copy of 0.13's fixture CA using
/// `certs_tool`; returns the certificate's path.
fn sign_server(base: &Path, certs_tool: &str, csr: &str) -> PathBuf {
    let ca = base.join("ca");
    let _ = std::fs::remove_dir_all(&ca);
    let ok = Command::new("cp")
        .arg("-r")
        .arg(CA)
        .arg(&ca)
        .status()
        .unwrap();
    assert!(ok.success());
    let ok = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&ca)
        .status()
        .unwrap();
    assert!(ok.success());
    let mut child = Command::new(certs_tool)
        .args(["ca", "sign-server", csr])
        .current_dir(base)
        .env_remove("OPENSSL_CONF")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"yes\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("Certificate signed."),
        "{certs_tool}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ca.join("servers/localhost-cert.pem")
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn same_behaviour_as_013() {
    if !is_root() {
        // The script's permission checks need a directory owned by another user.
        panic!("this test must run as root (as bbstored-config itself expects)");
    }
    let d = tempfile::tempdir().unwrap();
    let base = d.path();
    let none = |_: &Path, _: &str| {};
    let raid = |b: &Path, _: &str| raid_setup(b);

    case(base, none, &[]);
    case(base, none, &["etc", "localhost"]);
    case(base, raid, &["etc", "nosuchhost.invalid", "nobody"]);
    case(base, none, &["etc", "localhost", "nobody"]);
    case(
        base,
        raid,
        &["etc", "localhost", "nobody", "/nonexistent/r.conf"],
    );
    case(base, raid, &["etc", "localhost", "root"]);
    case(base, raid, &["etc", "localhost", "no-such-user-bbcfg"]);
    // daemon owns nothing here and d0/backup is 0700 to nobody.
    let (real, _) = case(base, raid, &["etc", "localhost", "daemon"]);
    assert!(
        real.stdout
            .contains("daemon doesn't appear to have the necessary")
    );
    // A directory that is not there, and one in a comment line, are checked too.
    let missing = |b: &Path, _: &str| {
        raid_setup(b);
        let p = b.join("etc/raidfile.conf");
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            p,
            format!(
                "# Dir9 = {}\n{t}\tDir2 = /nonexistent\n",
                b.join("d1").display()
            ),
        )
        .unwrap();
    };
    let (real, _) = case(base, missing, &["etc", "localhost", "nobody"]);
    assert_eq!(real.code, Some(1));
    assert!(
        real.stdout
            .contains("Checking permissions on /nonexistent\n")
    );
    // mkdir without -p: Perl dies with ENOENT.
    let (real, _) = case(
        base,
        raid,
        &["a/b", "localhost", "nobody", "etc/raidfile.conf"],
    );
    assert_eq!(real.code, Some(2));
    case(
        base,
        raid,
        &["new", "localhost", "nobody", "etc/raidfile.conf"],
    );
    // A second run keeps the key, request and accounts; the config is rewritten.
    let twice = |b: &Path, prog: &str| {
        raid_setup(b);
        assert_eq!(run(prog, b, &["etc", "localhost", "nobody"]).code, Some(0));
        std::fs::write(b.join("etc/bbstored.conf"), "edited").unwrap();
    };
    case(base, twice, &["etc", "localhost", "nobody"]);

    // A key that is already there is used for the request.
    let input = base.join("input");
    std::fs::create_dir(&input).unwrap();
    openssl(&["genrsa", "-out", "k.pem", "2048"], &input);
    let with_key = |b: &Path, _: &str| {
        raid_setup(b);
        std::fs::create_dir(b.join("etc/bbstored")).unwrap();
        std::fs::copy(
            b.join("input/k.pem"),
            b.join("etc/bbstored/localhost-key.pem"),
        )
        .unwrap();
    };
    case(base, with_key, &["etc", "localhost", "nobody"]);
    let key_pub = openssl(&["pkey", "-in", "input/k.pem", "-pubout"], base);
    let csr_pub = openssl(
        &[
            "req",
            "-in",
            "etc/bbstored/localhost-csr.pem",
            "-noout",
            "-pubkey",
        ],
        base,
    );
    assert_eq!(key_pub, csr_pub);

    // The full run, ours last so its files stay for the checks below.
    let (real, ours) = case(base, raid, &["etc", "localhost", "nobody"]);
    assert_eq!(real.code, Some(0));
    assert!(
        ours.stdout
            .contains("Generating private key...\n\n\nWriting")
    );
    let conf = ServerConfig::load(&base.join("etc/bbstored.conf")).unwrap();
    assert_eq!(conf.user.as_deref(), Some("nobody"));
    assert_eq!(conf.listen_addresses, vec![("localhost".to_string(), 2201)]);
    assert_eq!(conf.raidfile_conf, PathBuf::from("etc/raidfile.conf"));
    assert_eq!(conf.ssl_security_level, Some(2));

    let text = openssl(
        &[
            "req",
            "-in",
            "etc/bbstored/localhost-csr.pem",
            "-noout",
            "-verify",
            "-text",
        ],
        base,
    );
    assert!(text.contains("Subject: CN = localhost"), "{text}");
    assert!(text.contains("sha256WithRSAEncryption"), "{text}");
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    let key_pub = openssl(
        &["pkey", "-in", "etc/bbstored/localhost-key.pem", "-pubout"],
        base,
    );

    let provider = bb_proto::pki::config::provider();
    let key = base.join("etc/bbstored/localhost-key.pem");
    for tool in [OUR_CERTS, REAL_CERTS] {
        let cert = sign_server(base, tool, "etc/bbstored/localhost-csr.pem");
        let cert_s = cert.to_str().unwrap();
        let cert_pub = openssl(&["x509", "-in", cert_s, "-noout", "-pubkey"], base);
        assert_eq!(cert_pub, key_pub, "{tool}");
        // What bbstored will do with the files at start-up.
        bb_proto::pki::load::certified_key(&cert, &key, &provider)
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
    }
}
