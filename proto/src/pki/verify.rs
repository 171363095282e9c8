//! Certificate verification for both ends: the chain check OpenSSL does for Box Backup
//! 0.13 (protocol.md §1.2, §1.6 item 5), done by hand because rustls's webpki refuses
//! the v1 certificates every 0.13 deployment has.
//!
//! Owns: the trusted-CA set (one PEM file, never the system store), path building
//! (leaf, at most two intermediates, a trusted CA), signature checks through the
//! crypto provider's verification algorithms, validity periods, SHA-1 refusal,
//! revocation through a [`Crl`], and the rustls verifier traits on top
//! ([`BackupClientVerifier`] for the server, [`BackupServerVerifier`] for the client).
//! Must not know about accounts, sockets or the Box Backup protocol.
//!
//! Rules, and why:
//! * Names are matched as DER bytes. Both 0.13 and our tool copy the CA subject into
//!   the issuer field verbatim, so canonicalisation (as OpenSSL does) buys nothing.
//! * A trusted CA is trusted as it is: v1 without basicConstraints is fine (0.13's
//!   roots), but its validity period is checked, as OpenSSL does.
//! * Intermediates must be v3 with cA=TRUE; stock deployments have none.
//! * If a certificate has extKeyUsage it must allow the use (clientAuth for a client,
//!   serverAuth for a server); v1 certificates have none and pass.
//! * SHA-1/MD5 signatures and RSA keys under 2048 bits are refused with errors that
//!   say so, matching 0.13 at SSLSecurityLevel >= 1.
//! * Validity is checked to the second, with no leeway, like OpenSSL.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, SignatureVerificationAlgorithm, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};

use super::cert::{self, Cert};
use super::crl::Crl;
use super::error::{Error, Result};
use super::load;

/// Which end the certificate being verified belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A backup client (bbackupd, bbackupquery) presenting `BACKUP-<hex>`.
    Client,
    /// A store server.
    Server,
}

/// The CAs from one `TrustedCAsFile`.
#[derive(Clone)]
pub struct TrustedCas {
    certs: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for TrustedCas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .certs
            .iter()
            .map(|c| Cert::parse(c).map(|c| c.subject_text()).unwrap_or_default())
            .collect();
        f.debug_struct("TrustedCas")
            .field("subjects", &names)
            .finish()
    }
}

impl TrustedCas {
    /// Reads every certificate of a PEM file (0.13's `TrustedCAsFile`).
    pub fn load(path: &Path) -> Result<TrustedCas> {
        Self::from_der(load::certificates(path)?).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// From DER certificates; each must parse and use an acceptable hash and key.
    pub fn from_der(certs: Vec<CertificateDer<'static>>) -> Result<TrustedCas> {
        if certs.is_empty() {
            return Err(Error::Malformed {
                what: "trusted CA list",
                detail: "no certificate".into(),
            });
        }
        for c in &certs {
            let parsed = Cert::parse(c)?;
            check_strength(&parsed)?;
        }
        Ok(TrustedCas { certs })
    }

    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    pub(crate) fn parsed(&self) -> impl Iterator<Item = Cert<'_>> {
        // Parsed successfully in from_der, so filter_map drops nothing.
        self.certs.iter().filter_map(|c| Cert::parse(c).ok())
    }
}

/// Refuses weak hashes and short RSA keys, naming the certificate.
fn check_strength(c: &Cert<'_>) -> Result<()> {
    // A self-signed root's own signature is never checked (it is trusted as a
    // whole), so a SHA-1 root is no weakness by itself; OpenSSL agrees.
    if let Some(hash) = c.weak_hash()
        && !c.is_self_issued()
    {
        return Err(Error::WeakHash {
            subject: c.subject_text(),
            hash,
        });
    }
    if let Some(bits) = c.rsa_bits()
        && bits < 2048
    {
        return Err(Error::WeakKey {
            subject: c.subject_text(),
            bits,
        });
    }
    Ok(())
}

/// The refusal of a peer's SHA-1 (or MD5) signed certificate, with the commands
/// that re-issue it.
fn weak_peer(c: &Cert<'_>, hash: &'static str, usage: Usage) -> Error {
    Error::WeakPeerCertificate {
        peer: match usage {
            Usage::Client => "client",
            Usage::Server => "server",
        },
        subject: c.subject_text(),
        hash,
        howto: super::reissue::commands(usage, c.common_name().as_deref(), None, None),
    }
}

/// Refuses our own certificate (the leaf of `CertificateFile`) when it is signed
/// with SHA-1 or MD5, naming the file and giving the commands that re-issue it
/// with the key of `key_file`. Every peer would refuse it in the handshake, where
/// neither end could say more than an alert's name.
pub(crate) fn check_own_certificate(cert_file: &Path, key_file: &Path, usage: Usage) -> Result<()> {
    let chain = load::certificates(cert_file)?;
    let leaf = Cert::parse(&chain[0]).map_err(|e| Error::BadFile {
        path: cert_file.to_path_buf(),
        detail: e.to_string(),
    })?;
    if let Some(hash) = leaf.weak_hash() {
        return Err(Error::WeakCertificateFile {
            path: cert_file.to_path_buf(),
            subject: leaf.subject_text(),
            hash,
            howto: super::reissue::commands(
                usage,
                leaf.common_name().as_deref(),
                Some(key_file),
                Some(cert_file),
            ),
        });
    }
    Ok(())
}

/// The text to print for a rustls error: our verifier's refusal as we wrote it
/// (rustls shows `CertificateError::Other` with `Debug`, quotes and escaped
/// newlines), else rustls's own message. Also looks inside an `io::Error` from
/// `complete_io` and friends.
pub fn tls_error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let rustls_error = e.downcast_ref::<rustls::Error>().or_else(|| {
        e.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    });
    if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(other)))) =
        rustls_error
        && let Some(refusal) = other.downcast_ref::<PkiRefusal>()
    {
        return format!("invalid peer certificate: {}", refusal.0);
    }
    match rustls_error {
        Some(r) => r.to_string(),
        None => e.to_string(),
    }
}

/// Checks `signature` over `message` by the key (`spki_alg`, `spki_key`) with the one
/// of `algs` that matches both the signature algorithm and the key type.
pub(crate) fn verify_signed(
    algs: &[&dyn SignatureVerificationAlgorithm],
    spki_alg: &[u8],
    spki_key: &[u8],
    sig_alg: &[u8],
    message: &[u8],
    signature: &[u8],
) -> std::result::Result<(), &'static str> {
    let mut matched = false;
    for alg in algs {
        if alg.signature_alg_id().as_ref() != sig_alg
            || alg.public_key_alg_id().as_ref() != spki_alg
        {
            continue;
        }
        matched = true;
        if alg.verify_signature(spki_key, message, signature).is_ok() {
            return Ok(());
        }
    }
    if matched {
        Err("bad signature")
    } else {
        Err("unsupported signature algorithm or key type")
    }
}

fn untrusted(c: &Cert<'_>, detail: impl Into<String>) -> Error {
    Error::Untrusted {
        subject: c.subject_text(),
        detail: detail.into(),
    }
}

fn check_time(c: &Cert<'_>, now: i64) -> Result<()> {
    if now < c.not_before {
        return Err(untrusted(c, "certificate is not yet valid"));
    }
    if now > c.not_after {
        return Err(untrusted(c, "certificate has expired"));
    }
    Ok(())
}

fn check_usage(c: &Cert<'_>, usage: Usage) -> Result<()> {
    let Some(ekus) = &c.ext_key_usage else {
        return Ok(());
    };
    let want = match usage {
        Usage::Client => cert::oid::EKU_CLIENT_AUTH,
        Usage::Server => cert::oid::EKU_SERVER_AUTH,
    };
    if ekus.iter().any(|e| *e == want || *e == cert::oid::EKU_ANY) {
        Ok(())
    } else {
        Err(untrusted(
            c,
            format!("extendedKeyUsage does not allow use as a {usage:?} certificate"),
        ))
    }
}

/// A CA certificate may sign certificates (keyUsage, if present, allows it).
fn may_sign_certs(c: &Cert<'_>) -> bool {
    c.key_usage
        .is_none_or(|ku| ku & cert::KU_KEY_CERT_SIGN != 0)
}

/// The whole chain check, as OpenSSL does it for 0.13 with verify depth 2.
/// Returns nothing on success; the error says which certificate failed and why.
pub fn verify_chain(
    cas: &TrustedCas,
    crl: Option<&Crl>,
    algs: &WebPkiSupportedAlgorithms,
    end_entity: &[u8],
    intermediates: &[CertificateDer<'_>],
    usage: Usage,
    now: i64,
) -> Result<()> {
    let leaf = Cert::parse(end_entity)?;
    if let Some(hash) = leaf.weak_hash() {
        return Err(weak_peer(&leaf, hash, usage));
    }
    check_strength(&leaf)?;
    check_time(&leaf, now)?;
    check_usage(&leaf, usage)?;
    if leaf.ca == Some(true) {
        return Err(untrusted(
            &leaf,
            "a CA certificate cannot be used by a peer",
        ));
    }
    let inter: Vec<Cert<'_>> = intermediates
        .iter()
        .filter_map(|c| Cert::parse(c).ok())
        .collect();

    let mut current = leaf;
    // leaf + at most 2 intermediates, then the trusted CA (OpenSSL verify depth 2).
    for depth in 0..=2usize {
        if let Some(crl) = crl
            && crl.is_revoked(current.issuer, current.serial)
        {
            return Err(untrusted(&current, "certificate has been revoked"));
        }
        let mut last_err = None;
        for ca in cas.parsed() {
            if ca.subject != current.issuer {
                continue;
            }
            match verify_signed(
                algs.all,
                ca.spki_alg,
                ca.spki_key,
                current.sig_alg,
                current.tbs,
                current.signature,
            ) {
                Ok(()) => {
                    if !may_sign_certs(&ca) || ca.ca == Some(false) {
                        last_err = Some(untrusted(&ca, "trusted certificate is not a CA"));
                        continue;
                    }
                    check_time(&ca, now)?;
                    return Ok(());
                }
                Err(e) => {
                    last_err = Some(untrusted(
                        &current,
                        format!(
                            "{e} with the key of trusted CA '{}' (issued by another CA of \
                             the same name?)",
                            ca.subject_text()
                        ),
                    ))
                }
            }
        }
        if depth == 2 {
            return Err(last_err.unwrap_or_else(|| {
                untrusted(&current, "certificate chain too long (verify depth 2)")
            }));
        }
        let next = inter.iter().find(|i| {
            i.subject == current.issuer
                && i.subject != current.subject
                && verify_signed(
                    algs.all,
                    i.spki_alg,
                    i.spki_key,
                    current.sig_alg,
                    current.tbs,
                    current.signature,
                )
                .is_ok()
        });
        let Some(next) = next else {
            return Err(last_err.unwrap_or_else(|| {
                untrusted(
                    &current,
                    format!(
                        "issuer '{}' is not a trusted CA",
                        cert::name_text(current.issuer)
                    ),
                )
            }));
        };
        if next.version < 3 || next.ca != Some(true) || !may_sign_certs(next) {
            return Err(untrusted(next, "intermediate certificate is not a v3 CA"));
        }
        if let Some(limit) = next.path_len
            && (depth as u32) > limit
        {
            return Err(untrusted(next, "path length constraint exceeded"));
        }
        check_strength(next)?;
        check_time(next, now)?;
        current = next.clone();
    }
    // The loop returns on every path at depth 2.
    Err(untrusted(&current, "certificate chain too long"))
}

/// Checks a TLS handshake signature against the leaf's own key, without webpki.
pub(crate) fn verify_handshake(
    algs: &WebPkiSupportedAlgorithms,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
    // RFC 8446 §4.2.3: no PKCS#1 v1.5 and no SHA-1 in TLS 1.3 handshake signatures.
    if tls13
        && matches!(
            dss.scheme,
            SignatureScheme::RSA_PKCS1_SHA1
                | SignatureScheme::ECDSA_SHA1_Legacy
                | SignatureScheme::RSA_PKCS1_SHA256
                | SignatureScheme::RSA_PKCS1_SHA384
                | SignatureScheme::RSA_PKCS1_SHA512
        )
    {
        return Err(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme.into());
    }
    let candidates = algs
        .mapping
        .iter()
        .find(|(s, _)| *s == dss.scheme)
        .map(|(_, a)| *a)
        .ok_or(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
    // TLS 1.3 names exactly one algorithm per scheme; 1.2 may need several tries.
    let candidates = if tls13 {
        &candidates[..1.min(candidates.len())]
    } else {
        candidates
    };
    let leaf = Cert::parse(cert).map_err(|_| CertificateError::BadEncoding)?;
    for alg in candidates {
        if alg.public_key_alg_id().as_ref() != leaf.spki_alg {
            continue;
        }
        if alg
            .verify_signature(leaf.spki_key, message, dss.signature())
            .is_ok()
        {
            return Ok(HandshakeSignatureValid::assertion());
        }
        return Err(CertificateError::BadSignature.into());
    }
    Err(CertificateError::BadSignature.into())
}

/// Turns our error into the rustls error the handshake reports (and the alert it
/// sends). The full message goes to the log: rustls's alerts carry no text.
fn to_rustls(e: Error) -> rustls::Error {
    tracing::info!(error = %e, "peer certificate refused");
    let reason = match &e {
        Error::Untrusted { detail, .. } if detail.contains("expired") => CertificateError::Expired,
        Error::Untrusted { detail, .. } if detail.contains("not yet valid") => {
            CertificateError::NotValidYet
        }
        Error::Untrusted { detail, .. } if detail.contains("revoked") => CertificateError::Revoked,
        Error::Untrusted { detail, .. } if detail.contains("signature") => {
            CertificateError::BadSignature
        }
        Error::Untrusted { detail, .. } if detail.contains("not a trusted CA") => {
            CertificateError::UnknownIssuer
        }
        Error::Malformed { .. } => CertificateError::BadEncoding,
        _ => CertificateError::Other(OtherError(Arc::new(PkiRefusal(e.to_string())))),
    };
    reason.into()
}

/// Our refusal text, carried inside `rustls::CertificateError::Other`.
#[derive(Debug)]
struct PkiRefusal(String);

impl fmt::Display for PkiRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PkiRefusal {}

/// The server's verifier of client certificates: requires one, chained to the
/// `TrustedCAsFile` (the client CA), not revoked. Account numbers are read from the
/// CN after the handshake ([`super::account_from_connection`]).
#[derive(Debug)]
pub struct BackupClientVerifier {
    cas: TrustedCas,
    crl: Option<Crl>,
    algs: WebPkiSupportedAlgorithms,
}

impl BackupClientVerifier {
    pub fn new(cas: TrustedCas, crl: Option<Crl>, algs: WebPkiSupportedAlgorithms) -> Self {
        BackupClientVerifier { cas, crl, algs }
    }
}

impl ClientCertVerifier for BackupClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // 0.13 sends no CA names either (protocol.md §1.2); OpenSSL and rustls
        // clients with one certificate send it regardless.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        verify_chain(
            &self.cas,
            self.crl.as_ref(),
            &self.algs,
            end_entity,
            intermediates,
            Usage::Client,
            now.as_secs() as i64,
        )
        .map_err(to_rustls)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake(&self.algs, message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake(&self.algs, message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The client's verifier of the server certificate: chained to the server CA file.
/// Like 0.13, no host name check unless `check_host_name` is set; then the name the
/// connection was made to must match a subjectAltName entry, or the CN when the
/// certificate has no subjectAltName (0.13's certificates never do).
#[derive(Debug)]
pub struct BackupServerVerifier {
    cas: TrustedCas,
    algs: WebPkiSupportedAlgorithms,
    check_host_name: bool,
}

impl BackupServerVerifier {
    pub fn new(cas: TrustedCas, algs: WebPkiSupportedAlgorithms, check_host_name: bool) -> Self {
        BackupServerVerifier {
            cas,
            algs,
            check_host_name,
        }
    }
}

/// Does the certificate name `server_name`? DNS names compare case-insensitively,
/// with a `*.` wildcard allowed in the first label only.
pub(crate) fn host_name_matches(c: &Cert<'_>, server_name: &ServerName<'_>) -> bool {
    let dns_match = |pattern: &[u8], host: &str| -> bool {
        let Ok(pattern) = std::str::from_utf8(pattern) else {
            return false;
        };
        let host = host.trim_end_matches('.');
        let pattern = pattern.trim_end_matches('.');
        if let Some(suffix) = pattern.strip_prefix("*.") {
            match host.split_once('.') {
                Some((first, rest)) => !first.is_empty() && rest.eq_ignore_ascii_case(suffix),
                None => false,
            }
        } else {
            pattern.eq_ignore_ascii_case(host)
        }
    };
    match server_name {
        ServerName::DnsName(dns) => {
            if c.has_san {
                c.san_dns.iter().any(|p| dns_match(p, dns.as_ref()))
            } else {
                c.common_name()
                    .is_some_and(|cn| dns_match(cn.as_bytes(), dns.as_ref()))
            }
        }
        ServerName::IpAddress(ip) => {
            let std_ip: std::net::IpAddr = (*ip).into();
            let octets = match std_ip {
                std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
                std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            if c.has_san {
                c.san_ip.contains(&octets.as_slice())
            } else {
                c.common_name()
                    .and_then(|cn| cn.parse::<std::net::IpAddr>().ok())
                    .is_some_and(|a| a == std_ip)
            }
        }
        _ => false,
    }
}

impl ServerCertVerifier for BackupServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        verify_chain(
            &self.cas,
            None,
            &self.algs,
            end_entity,
            intermediates,
            Usage::Server,
            now.as_secs() as i64,
        )
        .map_err(to_rustls)?;
        if self.check_host_name {
            let leaf = Cert::parse(end_entity).map_err(|_| CertificateError::BadEncoding)?;
            if !host_name_matches(&leaf, server_name) {
                tracing::info!(
                    subject = %leaf.subject_text(),
                    server = ?server_name,
                    "server certificate does not name the host"
                );
                return Err(CertificateError::NotValidForName.into());
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake(&self.algs, message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake(&self.algs, message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
