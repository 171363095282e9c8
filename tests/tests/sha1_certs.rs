//! Old 0.13 installations have certificates signed with SHA-1 (0.13's scripts
//! used `openssl ... -sha1` until 2019), which rustls refuses. Our tools must say
//! so plainly, with the commands that re-issue the certificate, instead of a bare
//! TLS alert:
//!
//! - at load time, for our own certificate: bbstored, bbackupd, bbackupquery
//!   and bbackupfs exit with an error naming the file;
//! - in the handshake, for the peer's: our bbackupquery against a 0.13 bbstored
//!   presenting a SHA-1 certificate, and our bbstored refusing a 0.13
//!   bbackupquery presenting one (both 0.13 ends at `SSLSecurityLevel = 0`, the
//!   only level at which OpenSSL 3 still uses such a certificate).
//!
//! The certificates are signed with `openssl x509 -req -sha1` by the fixture
//! pack's 0.13 CA (Debian 12's OpenSSL 3.0 signs with SHA-1 without further
//! options; only verification is refused).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bb_tests::bb013::{self, Client013};
use bb_tests::ours::StoreDir;
use bb_tests::{fixtures, free_port, ours};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

/// (key, cert) signed with SHA-1 by the pack's `entity` ("client"/"server") root.
fn sha1_leaf(d: &Path, cn: &str, entity: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(d).unwrap();
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    let ca = fixtures::certs().join("ca");
    openssl(&["genrsa", "-out", &p("key.pem"), "2048"]);
    openssl(&[
        "req",
        "-new",
        "-sha1",
        "-key",
        &p("key.pem"),
        "-subj",
        &format!("/CN={cn}"),
        "-out",
        &p("csr.pem"),
    ]);
    openssl(&[
        "x509",
        "-req",
        "-sha1",
        "-in",
        &p("csr.pem"),
        "-CA",
        ca.join(format!("roots/{entity}CA.pem")).to_str().unwrap(),
        "-CAkey",
        ca.join(format!("keys/{entity}RootKey.pem"))
            .to_str()
            .unwrap(),
        "-set_serial",
        "4242",
        "-days",
        "30",
        "-out",
        &p("cert.pem"),
    ]);
    (d.join("key.pem"), d.join("cert.pem"))
}

/// Replaces every `from` line prefix's value in a config file.
fn set(path: &Path, key: &str, value: &str) {
    let s = std::fs::read_to_string(path).unwrap();
    let mut found = false;
    let out: Vec<String> = s
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with(&format!("{key} =")) {
                found = true;
                let indent = &l[..l.len() - t.len()];
                format!("{indent}{key} = {value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(found, "no {key} in {}", path.display());
    std::fs::write(path, out.join("\n") + "\n").unwrap();
}

fn assert_explains(msg: &str, want: &[String]) {
    for w in want {
        assert!(msg.contains(w.as_str()), "{w:?} is not in:\n{msg}");
    }
    assert!(!msg.contains("Other("), "rustls's Debug leaked:\n{msg}");
}

#[test]
fn our_tools_refuse_their_own_sha1_certificate_when_loading() {
    let tmp = tempfile::tempdir().unwrap();
    let (skey, scert) = sha1_leaf(&tmp.path().join("server"), "localhost", "server");
    let (ckey, ccert) = sha1_leaf(&tmp.path().join("client"), "BACKUP-1234567", "client");

    // bbstored.
    let port = free_port();
    let store = StoreDir::create(&tmp.path().join("store"), port, false);
    set(&store.conf, "CertificateFile", scert.to_str().unwrap());
    set(&store.conf, "PrivateKeyFile", skey.to_str().unwrap());
    let out = Command::new(ours::bin("bbstored"))
        .arg("-F")
        .arg(&store.conf)
        .output()
        .unwrap();
    assert!(!out.status.success(), "bbstored started:\n{}", text(&out));
    assert_explains(
        &text(&out),
        &[
            format!(
                "{}: certificate 'CN=localhost' is signed with SHA-1",
                scert.display()
            ),
            format!(
                "openssl req -new -sha256 -key {} -subj /CN=localhost -out localhost-csr.pem",
                skey.display()
            ),
            "bbstored-certs CERTS-DIR sign-server localhost-csr.pem".into(),
            format!(
                "cp CERTS-DIR/servers/localhost-cert.pem {}",
                scert.display()
            ),
        ],
    );

    // The client tools, on one bbackupd.conf.
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let client = Client013::new(&tmp.path().join("c"), port, &src);
    set(&client.conf, "CertificateFile", ccert.to_str().unwrap());
    set(&client.conf, "PrivateKeyFile", ckey.to_str().unwrap());
    let want = [
        format!(
            "{}: certificate 'CN=BACKUP-1234567' is signed with SHA-1",
            ccert.display()
        ),
        format!(
            "openssl req -new -sha256 -key {} -subj /CN=BACKUP-1234567 -out 1234567-csr.pem",
            ckey.display()
        ),
        "bbstored-certs CERTS-DIR sign 1234567-csr.pem".into(),
        format!("cp CERTS-DIR/clients/1234567-cert.pem {}", ccert.display()),
    ];
    let runs: [(&str, Vec<std::ffi::OsString>); 3] = [
        (
            "bbackupd",
            vec!["--once".into(), client.conf.clone().into()],
        ),
        (
            "bbackupquery",
            vec![
                "-c".into(),
                client.conf.clone().into(),
                "ls".into(),
                "quit".into(),
            ],
        ),
        (
            "bbackupfs",
            vec![
                "-c".into(),
                client.conf.clone().into(),
                tmp.path().join("mnt").into(),
            ],
        ),
    ];
    std::fs::create_dir_all(tmp.path().join("mnt")).unwrap();
    for (tool, args) in runs {
        let out = Command::new(ours::bin(tool)).args(&args).output().unwrap();
        assert!(!out.status.success(), "{tool} succeeded:\n{}", text(&out));
        let msg = text(&out);
        assert_explains(&msg, &want);
    }
}

#[test]
fn our_client_names_a_013_servers_sha1_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let (skey, scert) = sha1_leaf(&tmp.path().join("server"), "localhost", "server");
    let port = free_port();
    let store = StoreDir::create(&tmp.path().join("store"), port, false);
    bb013::create_fixture_account(&store.conf, "10M", "20M");
    set(&store.conf, "CertificateFile", scert.to_str().unwrap());
    set(&store.conf, "PrivateKeyFile", skey.to_str().unwrap());
    set(&store.conf, "SSLSecurityLevel", "0");
    let _server = bb013::start_bbstored(&store.conf, port, &tmp.path().join("bbstored.log"));

    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let client = Client013::new(&tmp.path().join("c"), port, &src);
    let out = Command::new(ours::bin("bbackupquery"))
        .arg("-c")
        .arg(&client.conf)
        .args(["ls", "quit"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert_explains(
        &text(&out),
        &[
            "the server's certificate 'CN=localhost' is signed with SHA-1, which is no \
             longer accepted"
                .into(),
            "-key <its PrivateKeyFile> -subj /CN=localhost -out localhost-csr.pem".into(),
            "bbstored-certs CERTS-DIR sign-server localhost-csr.pem".into(),
        ],
    );
}

#[test]
fn our_server_names_a_013_clients_sha1_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let (ckey, ccert) = sha1_leaf(&tmp.path().join("client"), "BACKUP-01234567", "client");
    let port = free_port();
    let store = StoreDir::create(&tmp.path().join("store"), port, false);
    store.create_account(0x0123_4567, 1000, 2000);
    let log = tmp.path().join("bbstored.log");
    let mut cmd = Command::new(ours::bin("bbstored"));
    cmd.arg("-F").arg(&store.conf);
    let mut server = bb013::Daemon::spawn(cmd, "bbstored (ours)", &log);
    bb013::wait_for_port(port, &mut server);

    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let client = Client013::new(&tmp.path().join("c"), port, &src);
    set(&client.conf, "CertificateFile", ccert.to_str().unwrap());
    set(&client.conf, "PrivateKeyFile", ckey.to_str().unwrap());
    set(&client.conf, "SSLSecurityLevel", "0");
    let out = client.query(&["ls"]);
    assert!(!out.status.success(), "0.13 logged in:\n{}", text(&out));
    // The server logs the refusal as it happens; give it a moment.
    let t = std::time::Instant::now();
    while !server.log_text().contains("TLS handshake failed")
        && t.elapsed() < std::time::Duration::from_secs(10)
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.stop(std::time::Duration::from_secs(10));
    assert_explains(
        &server.log_text(),
        &[
            "TLS handshake failed: invalid peer certificate: the client's certificate \
             'CN=BACKUP-01234567' is signed with SHA-1, which is no longer accepted"
                .into(),
            "-subj /CN=BACKUP-01234567 -out 01234567-csr.pem".into(),
            "bbstored-certs CERTS-DIR sign 01234567-csr.pem".into(),
        ],
    );
}
