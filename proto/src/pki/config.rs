//! rustls configurations for the two ends, built from 0.13's config keys
//! (`CertificateFile`, `PrivateKeyFile`, `TrustedCAsFile`) plus our CRL file.
//!
//! Owns: protocol versions (TLS 1.2 and 1.3; rustls has nothing older, so 0.13 builds
//! on OpenSSL < 1.1 cannot connect, protocol.md §1.6), the crypto provider (ring),
//! and wiring our verifiers and unchecked certified keys into rustls.
//! Must not know about sockets: callers wrap their own streams.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::sign::SingleCertAndKey;
use rustls::{ClientConfig, ServerConfig};

use super::crl::Crl;
use super::error::{Error, Result};
use super::load;
use super::verify::{self, BackupClientVerifier, BackupServerVerifier, TrustedCas, Usage};

/// The crypto provider both ends use: ring's, with rustls's default suites (ECDHE +
/// AEAD; all inside 0.13's cipher list).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The server end: its rustls config and, when a CRL file was given, the handle that
/// reloads it (on SIGHUP).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub crl: Option<Crl>,
}

/// bbstored's TLS: present `cert_file`/`key_file`, require a client certificate
/// chained to `trusted_cas_file` (the client CA) and not revoked by `crl_file`.
/// Read the account number afterwards with [`super::account_from_connection`].
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    trusted_cas_file: &Path,
    crl_file: Option<&Path>,
) -> Result<ServerTls> {
    let provider = provider();
    let cas = TrustedCas::load(trusted_cas_file)?;
    let algs = provider.signature_verification_algorithms;
    let crl = crl_file
        .map(|p| Crl::load(p, cas.clone(), algs))
        .transpose()?;
    let verifier = BackupClientVerifier::new(cas, crl.clone(), algs);
    verify::check_own_certificate(cert_file, key_file, Usage::Server)?;
    let key = load::certified_key(cert_file, key_file, &provider)?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
    Ok(ServerTls {
        config: Arc::new(config),
        crl,
    })
}

/// bbackupd's TLS: present `cert_file`/`key_file`, accept a server certificate chained
/// to `trusted_cas_file` (the server CA). Like 0.13, the server's name is not checked
/// unless `check_host_name` is set (then a subjectAltName, or the CN when there is
/// none, must match the name given to [`server_name`]).
pub fn client_config(
    cert_file: &Path,
    key_file: &Path,
    trusted_cas_file: &Path,
    check_host_name: bool,
) -> Result<Arc<ClientConfig>> {
    let provider = provider();
    let cas = TrustedCas::load(trusted_cas_file)?;
    let verifier = BackupServerVerifier::new(
        cas,
        provider.signature_verification_algorithms,
        check_host_name,
    );
    verify::check_own_certificate(cert_file, key_file, Usage::Client)?;
    let key = load::certified_key(cert_file, key_file, &provider)?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
    // No session resumption: 0.13's bbstored verifies client certificates but
    // sets no session ID context, so OpenSSL answers a resumption attempt (the
    // second connection made with one config) with an internal-error alert.
    // 0.13's own client never resumes.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// The `ServerName` for 0.13's `StoreHostname`: an IP address as such (no SNI is
/// sent), otherwise a DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_string()).map_err(|e| Error::Malformed {
        what: "host name",
        detail: format!("{host:?}: {e}"),
    })
}
