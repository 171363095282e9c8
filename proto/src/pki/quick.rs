//! A complete PKI in a directory in one call, for tests and quick starts: the two
//! roots, a server certificate and a client certificate for one account, laid out
//! like the files 0.13's bbstored and bbackupd are configured with.
//!
//! For tests and trying things out only: keys are written unencrypted (as 0.13 does)
//! and nothing asks for confirmation. Use `bbstored-certs` for real deployments.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::issue::{self, Ca, KeyKind, LeafSpec};
use super::verify::Usage;

/// Paths of a [`make_test_pki`] directory.
///
/// ```text
/// <dir>/ca/roots/{client,server}CA.pem   <dir>/ca/keys/{client,server}RootKey.pem
/// <dir>/server/{localhost-cert.pem, localhost-key.pem, clientCA.pem}
/// <dir>/client/{XXXXXXXX-cert.pem, XXXXXXXX-key.pem, serverCA.pem}
/// ```
#[derive(Debug)]
pub struct TestPki {
    pub dir: PathBuf,
    /// bbstored's CertificateFile / PrivateKeyFile / TrustedCAsFile.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub server_trusted_cas: PathBuf,
    /// bbackupd's CertificateFile / PrivateKeyFile / TrustedCAsFile.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub client_trusted_cas: PathBuf,
    pub account: u32,
    kind: KeyKind,
    client_ca: Ca,
    next_serial: std::cell::Cell<u64>,
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io("write", path, e))
}

fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| Error::io("create directory", path, e))
}

/// Makes a fresh client CA, server CA, server certificate (`CN=localhost`, SAN
/// localhost and 127.0.0.1) and client certificate (`CN=BACKUP-XXXXXXXX`) in `dir`.
/// With [`KeyKind::EcdsaP256`] this takes milliseconds; with RSA about a second.
pub fn make_test_pki(dir: &Path, account: u32, kind: KeyKind) -> Result<TestPki> {
    for sub in ["ca/roots", "ca/keys", "server", "client"] {
        mkdir(&dir.join(sub))?;
    }
    let mut cas = Vec::new();
    for entity in ["client", "server"] {
        let key = issue::generate_key(kind)?;
        write(&dir.join(format!("ca/keys/{entity}RootKey.pem")), &key.pem)?;
        let ca = Ca::new_root(&format!("Backup system {entity} root"), key.key_pair, 3650)?;
        write(&dir.join(format!("ca/roots/{entity}CA.pem")), &ca.pem())?;
        cas.push(ca);
    }
    let server_ca = cas.pop().ok_or(Error::Certs("no CA".into()))?;
    let client_ca = cas.pop().ok_or(Error::Certs("no CA".into()))?;
    write(&dir.join("server/clientCA.pem"), &client_ca.pem())?;
    write(&dir.join("client/serverCA.pem"), &server_ca.pem())?;

    let key = issue::generate_key(kind)?;
    let mut spec = LeafSpec::new("localhost", Usage::Server, &[1], 3650);
    spec.subject_alt_names = issue::server_san("localhost");
    spec.subject_alt_names
        .extend(issue::server_san("127.0.0.1"));
    let der = server_ca.sign(&spec, &key.key_pair)?;
    write(
        &dir.join("server/localhost-cert.pem"),
        &issue::pem_encode("CERTIFICATE", &der),
    )?;
    write(&dir.join("server/localhost-key.pem"), &key.pem)?;

    let pki = TestPki {
        dir: dir.to_path_buf(),
        server_cert: dir.join("server/localhost-cert.pem"),
        server_key: dir.join("server/localhost-key.pem"),
        server_trusted_cas: dir.join("server/clientCA.pem"),
        client_cert: dir.join(format!("client/{account:08X}-cert.pem")),
        client_key: dir.join(format!("client/{account:08X}-key.pem")),
        client_trusted_cas: dir.join("client/serverCA.pem"),
        account,
        kind,
        client_ca,
        next_serial: std::cell::Cell::new(2),
    };
    let (cert, key) = pki.issue_client(&format!("BACKUP-{account:08X}"), 0, 3650 * 86400)?;
    std::fs::rename(&cert, &pki.client_cert).map_err(|e| Error::io("rename", &cert, e))?;
    std::fs::rename(&key, &pki.client_key).map_err(|e| Error::io("rename", &key, e))?;
    Ok(pki)
}

impl TestPki {
    /// Another client certificate from the same client CA, with common name `cn`,
    /// valid from now + `from_secs` to now + `to_secs` (negative for the past).
    /// Returns (certificate, key) paths in `<dir>/client/`; each call gets a new
    /// serial (the one inside the certificate is in the file name).
    pub fn issue_client(
        &self,
        cn: &str,
        from_secs: i64,
        to_secs: i64,
    ) -> Result<(PathBuf, PathBuf)> {
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        let key = issue::generate_key(self.kind)?;
        let mut spec = LeafSpec::new(cn, Usage::Client, &serial.to_be_bytes(), 0);
        let now = issue::now();
        spec.not_before = now + from_secs;
        spec.not_after = now + to_secs;
        // Leading zero bytes are not DER; keep one byte at least.
        let bytes = serial.to_be_bytes();
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(7);
        spec.serial = bytes[first..].to_vec();
        if spec.serial[0] & 0x80 != 0 {
            spec.serial.insert(0, 0);
        }
        let der = self.client_ca.sign(&spec, &key.key_pair)?;
        let cert = self.dir.join(format!("client/serial{serial}-cert.pem"));
        let key_path = self.dir.join(format!("client/serial{serial}-key.pem"));
        write(&cert, &issue::pem_encode("CERTIFICATE", &der))?;
        write(&key_path, &key.pem)?;
        Ok((cert, key_path))
    }

    /// Writes a CRL from the client CA revoking the given serials (as numbers) to
    /// `path`, PEM.
    pub fn write_crl(&self, path: &Path, serials: &[u64]) -> Result<()> {
        let now = issue::now();
        let revoked = serials
            .iter()
            .map(|&s| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(&{
                    let b = s.to_be_bytes();
                    let first = b.iter().position(|&x| x != 0).unwrap_or(7);
                    let mut v = b[first..].to_vec();
                    if v[0] & 0x80 != 0 {
                        v.insert(0, 0);
                    }
                    v
                }),
                revocation_time: time::OffsetDateTime::from_unix_timestamp(now)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect();
        let params = rcgen::CertificateRevocationListParams {
            this_update: time::OffsetDateTime::from_unix_timestamp(now)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            next_update: time::OffsetDateTime::from_unix_timestamp(now + 30 * 86400)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            crl_number: rcgen::SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = self
            .client_ca
            .signed_crl(params)
            .map_err(|e| Error::Certs(format!("CRL: {e}")))?;
        write(path, &issue::pem_encode("X509 CRL", &crl))
    }
}
