//! Our server config against our client config over 127.0.0.1, with 0.13's v1
//! fixture certificates and with certificates from `make_test_pki`; and the
//! verifier's refusals (expired, not yet valid, foreign CA, revoked, tampered, SHA-1,
//! wrong CN, wrong usage).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bb_proto::pki::{self, KeyKind, TrustedCas, Usage};
use common::{FIX, connect, ident, serve_once};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn fix(p: &str) -> PathBuf {
    Path::new(FIX).join("certs").join(p)
}

fn fixture_server() -> pki::ServerTls {
    pki::server_config(
        &fix("server/localhost-cert.pem"),
        &fix("server/localhost-key.pem"),
        &fix("server/clientCA.pem"),
        None,
    )
    .unwrap()
}

fn fixture_client(check_host_name: bool) -> Arc<rustls::ClientConfig> {
    pki::client_config(
        &fix("client/01234567-cert.pem"),
        &fix("client/01234567-key.pem"),
        &fix("client/serverCA.pem"),
        check_host_name,
    )
    .unwrap()
}

/// A client config limited to TLS 1.2, from the same public pieces.
fn tls12_client(cert: &Path, key: &Path, cas: &Path) -> Arc<rustls::ClientConfig> {
    let provider = pki::provider();
    let verifier = pki::BackupServerVerifier::new(
        TrustedCas::load(cas).unwrap(),
        provider.signature_verification_algorithms,
        false,
    );
    let ck = pki::load::certified_key(cert, key, &provider).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(ck))),
    )
}

#[test]
fn fixture_v1_certificates_tls13_and_tls12() {
    let server = fixture_server();
    let (port, h) = serve_once(server.config.clone());
    assert_eq!(
        connect(fixture_client(false), port, "127.0.0.1"),
        Ok(ident())
    );
    assert_eq!(h.join().unwrap(), Ok(0x01234567));

    let (port, h) = serve_once(server.config);
    let c = tls12_client(
        &fix("client/01234567-cert.pem"),
        &fix("client/01234567-key.pem"),
        &fix("client/serverCA.pem"),
    );
    assert_eq!(connect(c, port, "127.0.0.1"), Ok(ident()));
    assert_eq!(h.join().unwrap(), Ok(0x01234567));
}

#[test]
fn host_name_check_is_off_by_default_and_uses_cn_or_san() {
    // 0.13's server certificate: CN=localhost, no SAN.
    let server = fixture_server();
    let (port, h) = serve_once(server.config.clone());
    assert!(connect(fixture_client(false), port, "some.other.name").is_ok());
    assert!(h.join().unwrap().is_ok());
    let (port, h) = serve_once(server.config.clone());
    assert!(connect(fixture_client(true), port, "LOCALHOST").is_ok());
    assert!(h.join().unwrap().is_ok());
    let (port, h) = serve_once(server.config.clone());
    let e = connect(fixture_client(true), port, "127.0.0.1").unwrap_err();
    assert!(e.contains("NotValidForName"), "{e}");
    let _ = h.join().unwrap();

    // Ours: SAN localhost and 127.0.0.1.
    let d = tempfile::tempdir().unwrap();
    let p = pki::make_test_pki(d.path(), 0x2a, KeyKind::EcdsaP256).unwrap();
    let server = pki::server_config(&p.server_cert, &p.server_key, &p.server_trusted_cas, None)
        .unwrap()
        .config;
    let client =
        pki::client_config(&p.client_cert, &p.client_key, &p.client_trusted_cas, true).unwrap();
    for (host, ok) in [
        ("127.0.0.1", true),
        ("localhost", true),
        ("example.com", false),
    ] {
        let (port, h) = serve_once(server.clone());
        assert_eq!(connect(client.clone(), port, host).is_ok(), ok, "{host}");
        let r = h.join().unwrap();
        if ok {
            assert_eq!(r, Ok(0x2a));
        }
    }
}

/// Handshakes a client using `cert`/`key` with `server`; returns the server's verdict.
fn try_client(
    server: &Arc<rustls::ServerConfig>,
    p: &pki::TestPki,
    cert: &Path,
    key: &Path,
) -> common::ServerResult {
    let client = pki::client_config(cert, key, &p.client_trusted_cas, false).unwrap();
    let (port, h) = serve_once(server.clone());
    let c = connect(client, port, "127.0.0.1");
    let s = h.join().unwrap();
    assert_eq!(c.is_ok(), s.is_ok(), "client {c:?} server {s:?}");
    s
}

#[test]
fn server_refuses_expired_early_foreign_revoked_and_bad_cn() {
    let d = tempfile::tempdir().unwrap();
    let p = pki::make_test_pki(d.path(), 0x1234, KeyKind::EcdsaP256).unwrap();
    let crl_path = d.path().join("client.crl");
    p.write_crl(&crl_path, &[]).unwrap();
    let tls = pki::server_config(
        &p.server_cert,
        &p.server_key,
        &p.server_trusted_cas,
        Some(&crl_path),
    )
    .unwrap();
    let server = tls.config.clone();
    assert_eq!(
        try_client(&server, &p, &p.client_cert, &p.client_key),
        Ok(0x1234)
    );

    let (c, k) = p.issue_client("BACKUP-77", -10 * 86400, -86400).unwrap();
    let e = try_client(&server, &p, &c, &k).unwrap_err();
    assert!(e.contains("Expired"), "{e}");

    let (c, k) = p.issue_client("BACKUP-77", 3600, 10 * 86400).unwrap();
    let e = try_client(&server, &p, &c, &k).unwrap_err();
    assert!(e.contains("NotValidYet"), "{e}");

    let d2 = tempfile::tempdir().unwrap();
    let other = pki::make_test_pki(d2.path(), 0x1234, KeyKind::EcdsaP256).unwrap();
    // Every bbstored-certs CA is called "Backup system client root": the name
    // matches, the signature does not.
    let e = try_client(&server, &p, &other.client_cert, &other.client_key).unwrap_err();
    assert!(e.contains("BadSignature"), "{e}");
    let e = check(
        &p.server_trusted_cas,
        &pki::load::certificates(&other.client_cert).unwrap()[0],
        Usage::Client,
    )
    .unwrap_err();
    assert!(e.contains("another CA of the same name"), "{e}");

    // Handshake fine, account refused (0.13 closes before its ident).
    let (c, k) = p.issue_client("BACKUP-0x2a", 0, 86400).unwrap();
    let client = pki::client_config(&c, &k, &p.client_trusted_cas, false).unwrap();
    let (port, h) = serve_once(server.clone());
    assert!(connect(client, port, "127.0.0.1").is_err());
    let e = h.join().unwrap().unwrap_err();
    assert!(e.contains("invalid client common name"), "{e}");

    // Revocation takes effect on reload, for new handshakes; a revoked serial in a
    // CRL does not touch other certificates.
    let (c, k) = p.issue_client("BACKUP-99", 0, 86400).unwrap();
    let serial: u64 = c
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches("serial")
        .trim_end_matches("-cert.pem")
        .parse()
        .unwrap();
    assert_eq!(try_client(&server, &p, &c, &k), Ok(0x99));
    p.write_crl(&crl_path, &[serial]).unwrap();
    assert_eq!(
        try_client(&server, &p, &c, &k),
        Ok(0x99),
        "not reloaded yet"
    );
    let crl = tls.crl.as_ref().unwrap();
    assert_eq!(crl.reload().unwrap(), 1);
    let e = try_client(&server, &p, &c, &k).unwrap_err();
    assert!(e.contains("Revoked"), "{e}");
    assert_eq!(
        try_client(&server, &p, &p.client_cert, &p.client_key),
        Ok(0x1234)
    );

    // A CRL signed by another CA is refused, and the old list stays in force.
    other.write_crl(&crl_path, &[]).unwrap();
    let e = crl.reload().unwrap_err().to_string();
    assert!(e.contains("bad signature"), "{e}");
    assert!(try_client(&server, &p, &c, &k).is_err());
    // DER works too.
    p.write_crl(&crl_path, &[]).unwrap();
    let pem = std::fs::read(&crl_path).unwrap();
    let der = rustls::pki_types::CertificateRevocationListDer::from_pem_slice(&pem).unwrap();
    std::fs::write(&crl_path, der.as_ref()).unwrap();
    assert_eq!(crl.reload().unwrap(), 0);
    assert_eq!(try_client(&server, &p, &c, &k), Ok(0x99));
}

fn der(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

fn check(cas: &Path, leaf: &[u8], usage: Usage) -> Result<(), String> {
    let cas = TrustedCas::load(cas).unwrap();
    let algs = pki::provider().signature_verification_algorithms;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    pki::verify_chain(&cas, None, &algs, leaf, &[], usage, now).map_err(|e| e.to_string())
}

#[test]
fn verifier_on_v1_v3_tampered_and_misused_certificates() {
    let client_ca = fix("server/clientCA.pem");
    let server_ca = fix("client/serverCA.pem");
    let v1_client = der(&fix("client/01234567-cert.pem"));
    let v1_server = der(&fix("server/localhost-cert.pem"));
    assert_eq!(check(&client_ca, &v1_client, Usage::Client), Ok(()));
    assert_eq!(check(&server_ca, &v1_server, Usage::Server), Ok(()));
    // The two roots are separate: each leaf fails under the other CA.
    let e = check(&server_ca, &v1_client, Usage::Client).unwrap_err();
    assert!(e.contains("is not a trusted CA"), "{e}");
    // A CA certificate is not a peer certificate... v1 roots have no cA flag, but
    // are self-signed, so they fail as unknown issuer unless trusted; fine either way.
    assert!(check(&server_ca, &der(&fix("server/clientCA.pem")), Usage::Client).is_err());

    // Tamper: one bit of the signature, one bit of the signed subject.
    let mut bad = v1_client.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let e = check(&client_ca, &bad, Usage::Client).unwrap_err();
    assert!(e.contains("bad signature"), "{e}");
    let mut bad = v1_client.to_vec();
    let pos = bad.windows(6).position(|w| w == b"BACKUP").unwrap();
    bad[pos + 7] ^= 1;
    let e = check(&client_ca, &bad, Usage::Client).unwrap_err();
    assert!(e.contains("bad signature"), "{e}");

    // v3 with EKUs: a client certificate cannot serve as a server's and vice versa.
    let d = tempfile::tempdir().unwrap();
    let p = pki::make_test_pki(d.path(), 7, KeyKind::EcdsaP256).unwrap();
    let c = der(&p.client_cert);
    let s = der(&p.server_cert);
    assert_eq!(check(&p.server_trusted_cas, &c, Usage::Client), Ok(()));
    assert_eq!(check(&p.client_trusted_cas, &s, Usage::Server), Ok(()));
    let e = check(&p.server_trusted_cas, &c, Usage::Server).unwrap_err();
    assert!(e.contains("extendedKeyUsage"), "{e}");
    // A CA certificate (cA=TRUE) presented as a leaf.
    let e = check(
        &p.server_trusted_cas,
        &der(&p.server_trusted_cas),
        Usage::Client,
    )
    .unwrap_err();
    assert!(e.contains("CA certificate"), "{e}");
}

fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A leaf signed with SHA-1 by one of 0.13's fixture roots, as 0.13's scripts
/// signed until 2019: (key, cert) in `d`, CN `cn`.
fn sha1_leaf(d: &Path, cn: &str, entity: &str) -> (PathBuf, PathBuf) {
    let p = |n: &str| d.join(n).to_str().unwrap().to_string();
    openssl(&["genrsa", "-out", &p("k.pem"), "2048"]);
    openssl(&[
        "req",
        "-new",
        "-sha1",
        "-key",
        &p("k.pem"),
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
        fix(&format!("ca/roots/{entity}CA.pem")).to_str().unwrap(),
        "-CAkey",
        fix(&format!("ca/keys/{entity}RootKey.pem"))
            .to_str()
            .unwrap(),
        "-set_serial",
        "77",
        "-days",
        "10",
        "-out",
        &p("cert.pem"),
    ]);
    (d.join("k.pem"), d.join("cert.pem"))
}

/// A server config that presents `cert` unchecked (as a 0.13 bbstored with an
/// old certificate would), from the same public pieces.
fn unchecked_server(cert: &Path, key: &Path) -> Arc<rustls::ServerConfig> {
    let provider = pki::provider();
    let verifier = pki::BackupClientVerifier::new(
        TrustedCas::load(&fix("server/clientCA.pem")).unwrap(),
        None,
        provider.signature_verification_algorithms,
    );
    let ck = pki::load::certified_key(cert, key, &provider).unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(ck))),
    )
}

#[test]
fn sha1_client_certificate_refused_at_load_and_in_the_handshake() {
    let d = tempfile::tempdir().unwrap();
    let (key, cert) = sha1_leaf(d.path(), "BACKUP-1", "client");
    let e = check(&fix("server/clientCA.pem"), &der(&cert), Usage::Client).unwrap_err();
    assert!(
        e.contains("the client's certificate 'CN=BACKUP-1' is signed with SHA-1"),
        "{e}"
    );

    // Loading our own: refused, naming the file, with the commands.
    let e = pki::client_config(&cert, &key, &fix("client/serverCA.pem"), false)
        .unwrap_err()
        .to_string();
    let want = [
        format!(
            "{}: certificate 'CN=BACKUP-1' is signed with SHA-1",
            cert.display()
        ),
        format!(
            "openssl req -new -sha256 -key {} -subj /CN=BACKUP-1 -out 1-csr.pem",
            key.display()
        ),
        "bbstored-certs CERTS-DIR sign 1-csr.pem".to_string(),
        format!("cp CERTS-DIR/clients/1-cert.pem {}", cert.display()),
    ];
    for w in &want {
        assert!(e.contains(w.as_str()), "{w:?} not in:\n{e}");
    }

    // Presented anyway (a 0.13 client): the server says why, in plain text.
    let client = tls12_client(&cert, &key, &fix("client/serverCA.pem"));
    let (port, h) = serve_once(fixture_server().config);
    assert!(connect(client, port, "127.0.0.1").is_err());
    let e = h.join().unwrap().unwrap_err();
    assert!(
        e.starts_with(
            "invalid peer certificate: the client's certificate 'CN=BACKUP-1' is signed \
             with SHA-1, which is no longer accepted"
        ) && e.contains("bbstored-certs CERTS-DIR sign 1-csr.pem")
            && !e.contains("Other("),
        "{e}"
    );
}

#[test]
fn sha1_server_certificate_refused_at_load_and_in_the_handshake() {
    let d = tempfile::tempdir().unwrap();
    let (key, cert) = sha1_leaf(d.path(), "localhost", "server");
    let e = pki::server_config(&cert, &key, &fix("server/clientCA.pem"), None)
        .unwrap_err()
        .to_string();
    for w in [
        format!(
            "{}: certificate 'CN=localhost' is signed with SHA-1",
            cert.display()
        ),
        "bbstored-certs CERTS-DIR sign-server localhost-csr.pem".to_string(),
        format!("cp CERTS-DIR/servers/localhost-cert.pem {}", cert.display()),
    ] {
        assert!(e.contains(w.as_str()), "{w:?} not in:\n{e}");
    }

    // Presented anyway (a 0.13 bbstored): the client says why, in plain text.
    let (port, h) = serve_once(unchecked_server(&cert, &key));
    let e = connect(fixture_client(false), port, "127.0.0.1").unwrap_err();
    let _ = h.join();
    assert!(
        e.starts_with(
            "invalid peer certificate: the server's certificate 'CN=localhost' is signed \
             with SHA-1, which is no longer accepted"
        ) && e.contains("-key <its PrivateKeyFile> -subj /CN=localhost")
            && e.contains("sign-server localhost-csr.pem"),
        "{e}"
    );
}

#[test]
fn sha1_self_signed_root_is_accepted_as_openssl_does() {
    // OpenSSL never checks a trusted root's own signature (`openssl verify
    // -auth_level 2` passes a SHA-1 self-signed root and refuses a SHA-1 leaf), so
    // an old root stays usable: only what it signed must be re-issued.
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-sha1",
        "-keyout",
        &p("ca-key.pem"),
        "-out",
        &p("ca.pem"),
        "-subj",
        "/CN=Old root",
        "-days",
        "10",
    ]);
    TrustedCas::load(&d.path().join("ca.pem")).unwrap();
}

#[test]
fn intermediates_up_to_two_v3_cas() {
    // root (0.13's v1 client CA) -> inter1 -> inter2 -> leaf, made with openssl.
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    std::fs::write(
        p("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n",
    )
    .unwrap();
    let root = fix("ca/roots/clientCA.pem").to_str().unwrap().to_string();
    let root_key = fix("ca/keys/clientRootKey.pem")
        .to_str()
        .unwrap()
        .to_string();
    let mut issuer = (root, root_key);
    for (i, name) in ["inter1", "inter2", "leaf"].iter().enumerate() {
        let cn = if *name == "leaf" {
            "/CN=BACKUP-5".to_string()
        } else {
            format!("/CN={name}")
        };
        openssl(&["genrsa", "-out", &p(&format!("{name}.key")), "2048"]);
        openssl(&[
            "req",
            "-new",
            "-key",
            &p(&format!("{name}.key")),
            "-subj",
            &cn,
            "-out",
            &p(&format!("{name}.csr")),
        ]);
        let serial = format!("{}", 100 + i);
        let csr = p(&format!("{name}.csr"));
        let mut args = vec![
            "x509",
            "-req",
            "-sha256",
            "-in",
            &csr,
            "-CA",
            &issuer.0,
            "-CAkey",
            &issuer.1,
            "-set_serial",
            &serial,
            "-days",
            "10",
        ];
        let out = p(&format!("{name}.pem"));
        let ext = p("ca.ext");
        if *name != "leaf" {
            args.extend(["-extfile", &ext]);
        }
        args.extend(["-out", &out]);
        openssl(&args);
        issuer = (p(&format!("{name}.pem")), p(&format!("{name}.key")));
    }
    let cas = TrustedCas::load(&fix("server/clientCA.pem")).unwrap();
    let algs = pki::provider().signature_verification_algorithms;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let leaf = der(&d.path().join("leaf.pem"));
    let i1 = der(&d.path().join("inter1.pem"));
    let i2 = der(&d.path().join("inter2.pem"));
    pki::verify_chain(
        &cas,
        None,
        &algs,
        &leaf,
        &[i2.clone(), i1.clone()],
        Usage::Client,
        now,
    )
    .unwrap();
    // Order does not matter; a missing link does.
    pki::verify_chain(
        &cas,
        None,
        &algs,
        &leaf,
        &[i1.clone(), i2.clone()],
        Usage::Client,
        now,
    )
    .unwrap();
    assert!(
        pki::verify_chain(
            &cas,
            None,
            &algs,
            &leaf,
            std::slice::from_ref(&i2),
            Usage::Client,
            now
        )
        .is_err()
    );
    assert!(pki::verify_chain(&cas, None, &algs, &leaf, &[], Usage::Client, now).is_err());

    // And through a handshake, the client sending leaf + intermediates.
    let chain = format!(
        "{}{}{}",
        std::fs::read_to_string(p("leaf.pem")).unwrap(),
        std::fs::read_to_string(p("inter2.pem")).unwrap(),
        std::fs::read_to_string(p("inter1.pem")).unwrap()
    );
    std::fs::write(p("chain.pem"), chain).unwrap();
    let client = pki::client_config(
        &d.path().join("chain.pem"),
        &d.path().join("leaf.key"),
        &fix("client/serverCA.pem"),
        false,
    )
    .unwrap();
    let (port, h) = serve_once(fixture_server().config);
    assert_eq!(connect(client, port, "127.0.0.1"), Ok(ident()));
    assert_eq!(h.join().unwrap(), Ok(5));
    let _ = PrivateKeyDer::from_pem_file(d.path().join("leaf.key")).unwrap();
}

#[test]
fn key_must_match_certificate() {
    let e = pki::server_config(
        &fix("server/localhost-cert.pem"),
        &fix("client/01234567-key.pem"),
        &fix("server/clientCA.pem"),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("does not match"), "{e}");
    let e = pki::server_config(
        &fix("server/localhost-cert.pem"),
        &fix("server/localhost-key.pem"),
        Path::new("/nonexistent/ca.pem"),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
}
