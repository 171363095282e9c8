//! Our TLS ends against the real Box Backup 0.13 (Debian's bbstored and
//! bbackupquery, OpenSSL 3, SSLSecurityLevel 2), on 127.0.0.1, and certificates
//! made by our bbstored-certs used by the real 0.13 on both ends.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bb_proto::pki::{self, CnRule};
use common::bb013::{Bbstored, bbackupquery};
use common::{FIX, connect, ident, serve_once};

fn fixture_certs() -> PathBuf {
    Path::new(FIX).join("certs")
}

fn client_for(certs: &Path) -> Arc<rustls::ClientConfig> {
    pki::client_config(
        &certs.join("client/01234567-cert.pem"),
        &certs.join("client/01234567-key.pem"),
        &certs.join("client/serverCA.pem"),
        false,
    )
    .unwrap()
}

fn server_for(certs: &Path, crl: Option<&Path>) -> pki::ServerTls {
    pki::server_config(
        &certs.join("server/localhost-cert.pem"),
        &certs.join("server/localhost-key.pem"),
        &certs.join("server/clientCA.pem"),
        crl,
    )
    .unwrap()
}

#[test]
fn our_client_reads_the_ident_of_real_bbstored() {
    let server = Bbstored::start(&fixture_certs());
    let got = connect(client_for(&fixture_certs()), server.port, "127.0.0.1");
    assert_eq!(got, Ok(ident()), "log: {}", server.log_text());
}

/// The real bbackupquery connects to our server config: after the handshake the
/// server reads the account from the CN and receives 0.13's ident.
fn real_client_against_our_server(certs: &Path, server: &pki::ServerTls) -> Result<u32, String> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = server.config.clone();
    let h = std::thread::spawn(move || -> Result<u32, String> {
        let (mut sock, _) = listener.accept().map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut conn = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
        }
        let account =
            pki::account_from_connection(&conn, CnRule::Strict).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(&ident()).map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        let mut theirs = [0u8; 32];
        tls.read_exact(&mut theirs).map_err(|e| e.to_string())?;
        if theirs != ident() {
            return Err(format!("ident {theirs:?}"));
        }
        Ok(account)
    });
    let scratch = tempfile::tempdir().unwrap();
    // bbackupquery fails after the ident (we send no Version reply); that is fine.
    let (_code, out) = bbackupquery(port, scratch.path(), certs, &["list", "quit"]);
    let r = h.join().unwrap();
    if r.is_err() {
        eprintln!("bbackupquery said: {out}");
    }
    r
}

#[test]
fn real_bbackupquery_completes_the_handshake_with_our_server() {
    let certs = fixture_certs();
    assert_eq!(
        real_client_against_our_server(&certs, &server_for(&certs, None)),
        Ok(0x01234567)
    );
}

fn run_certs(args: &[&str], answer: &str) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = pki::certs::bbstored_certs(&args, &mut answer.as_bytes(), &mut out, &mut err);
    (
        code,
        String::from_utf8_lossy(&out).into(),
        String::from_utf8_lossy(&err).into(),
    )
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA made by our bbstored-certs, signing requests made the way 0.13's
/// bbackupd-config and bbstored-config make them (openssl genrsa + req): the real
/// bbstored and bbackupquery work with the result, and so do our ends; and a CRL
/// for the client certificate makes our server refuse it.
#[test]
fn certificates_from_our_bbstored_certs_work_with_real_013() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let ca = dir.join("ca");
    let ca_s = ca.to_str().unwrap();
    let (code, out, err) = run_certs(&[ca_s, "init"], "");
    assert_eq!((code, out.as_str()), (0, "\n\n\n\n"), "{err}");

    // Client and server requests as 0.13's config scripts make them.
    for (name, cn) in [("01234567", "BACKUP-01234567"), ("localhost", "localhost")] {
        openssl(dir, &["genrsa", "-out", &format!("{name}-key.pem"), "2048"]);
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-sha256",
                "-key",
                &format!("{name}-key.pem"),
                "-subj",
                &format!("/CN={cn}"),
                "-out",
                &format!("{name}-csr.pem"),
            ],
        );
    }
    let csr = dir.join("01234567-csr.pem");
    let (code, out, err) = run_certs(&[ca_s, "sign", csr.to_str().unwrap()], "yes\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Certificate signed."), "{out}");
    let csr = dir.join("localhost-csr.pem");
    let (code, out, err) = run_certs(&[ca_s, "sign-server", csr.to_str().unwrap()], "yes\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("on the server."), "{out}");

    // Lay the files out as bbstored.conf / bbackupd.conf expect them.
    let certs = dir.join("certs");
    for sub in ["server", "client"] {
        std::fs::create_dir_all(certs.join(sub)).unwrap();
    }
    let cp = |from: PathBuf, to: &str| std::fs::copy(from, certs.join(to)).unwrap();
    cp(
        ca.join("servers/localhost-cert.pem"),
        "server/localhost-cert.pem",
    );
    cp(dir.join("localhost-key.pem"), "server/localhost-key.pem");
    cp(ca.join("roots/clientCA.pem"), "server/clientCA.pem");
    cp(
        ca.join("clients/01234567-cert.pem"),
        "client/01234567-cert.pem",
    );
    cp(dir.join("01234567-key.pem"), "client/01234567-key.pem");
    cp(ca.join("roots/serverCA.pem"), "client/serverCA.pem");

    // OpenSSL agrees with the chains and purposes.
    openssl(
        &certs,
        &[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            "server/clientCA.pem",
            "client/01234567-cert.pem",
        ],
    );
    openssl(
        &certs,
        &[
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            "client/serverCA.pem",
            "server/localhost-cert.pem",
        ],
    );

    // Real 0.13 on both ends.
    let server = Bbstored::start(&certs);
    let (code, out) = server.bbackupquery(&certs, &["list", "quit"]);
    assert_eq!(code, 0, "{out}\nserver log: {}", server.log_text());
    assert!(out.contains("00000002 -d---- source"), "{out}");
    // Our client against the real server, with these certificates.
    assert_eq!(
        connect(client_for(&certs), server.port, "127.0.0.1"),
        Ok(ident())
    );
    drop(server);

    // Our server with the real client, then our client, then revoked.
    let crl_path = dir.join("client.crl");
    // A CRL made with openssl from our CA directory (as an admin would).
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(
        dir.join("crl.cnf"),
        format!(
            "[ca]\ndefault_ca=c\n[c]\ndatabase={d}/index.txt\ncertificate={ca_s}/roots/clientCA.pem\n\
             private_key={ca_s}/keys/clientRootKey.pem\ndefault_md=sha256\ndefault_crl_days=30\n",
            d = dir.display()
        ),
    )
    .unwrap();
    openssl(
        dir,
        &["ca", "-config", "crl.cnf", "-gencrl", "-out", "client.crl"],
    );
    let tls = server_for(&certs, Some(&crl_path));
    assert_eq!(real_client_against_our_server(&certs, &tls), Ok(0x01234567));
    let (port, h) = serve_once(tls.config.clone());
    assert_eq!(connect(client_for(&certs), port, "127.0.0.1"), Ok(ident()));
    assert_eq!(h.join().unwrap(), Ok(0x01234567));

    openssl(
        dir,
        &[
            "ca",
            "-config",
            "crl.cnf",
            "-revoke",
            "certs/client/01234567-cert.pem",
        ],
    );
    openssl(
        dir,
        &["ca", "-config", "crl.cnf", "-gencrl", "-out", "client.crl"],
    );
    assert_eq!(tls.crl.as_ref().unwrap().reload().unwrap(), 1);
    let e = real_client_against_our_server(&certs, &tls).unwrap_err();
    assert!(e.contains("Revoked"), "{e}");
    let (port, h) = serve_once(tls.config.clone());
    assert!(connect(client_for(&certs), port, "127.0.0.1").is_err());
    assert!(h.join().unwrap().unwrap_err().contains("Revoked"));
}

/// Our bbstored-certs signs with 0.13's own CA directory (v1 root, key made by
/// `openssl genrsa`), and the real bbstored accepts the result.
#[test]
fn our_bbstored_certs_signs_with_a_013_ca_directory() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let ca = dir.join("ca");
    let ok = std::process::Command::new("cp")
        .arg("-r")
        .arg(fixture_certs().join("ca"))
        .arg(&ca)
        .status()
        .unwrap();
    assert!(ok.success());
    let _ = std::process::Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(&ca)
        .status();
    openssl(dir, &["genrsa", "-out", "01234567-key.pem", "2048"]);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "01234567-key.pem",
            "-subj",
            "/CN=BACKUP-01234567",
            "-out",
            "01234567-csr.pem",
        ],
    );
    let csr = dir.join("01234567-csr.pem");
    let (code, _out, err) = run_certs(
        &[ca.to_str().unwrap(), "sign", csr.to_str().unwrap()],
        "yes\n",
    );
    assert_eq!(code, 0, "{err}");
    // The serial file counts on from 0.13's "01".
    assert_eq!(
        std::fs::read_to_string(ca.join("roots/clientCA.srl")).unwrap(),
        "02\n"
    );

    let certs = dir.join("certs");
    let ok = std::process::Command::new("cp")
        .arg("-r")
        .arg(fixture_certs())
        .arg(&certs)
        .status()
        .unwrap();
    assert!(ok.success());
    let _ = std::process::Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(&certs)
        .status();
    std::fs::copy(
        ca.join("clients/01234567-cert.pem"),
        certs.join("client/01234567-cert.pem"),
    )
    .unwrap();
    std::fs::copy(
        dir.join("01234567-key.pem"),
        certs.join("client/01234567-key.pem"),
    )
    .unwrap();

    let server = Bbstored::start(&fixture_certs());
    let (code, out) = server.bbackupquery(&certs, &["list", "quit"]);
    assert_eq!(code, 0, "{out}\nserver log: {}", server.log_text());
    assert_eq!(
        connect(client_for(&certs), server.port, "127.0.0.1"),
        Ok(ident())
    );
}
