//! Errors of the TLS/PKI layer. File errors name the file; certificate errors name
//! the certificate by its subject where it could be read.

use std::io;
use std::path::PathBuf;

/// What went wrong loading keys and certificates, verifying a peer or issuing a
/// certificate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A PEM/DER file holds nothing usable (no certificate, no key, bad encoding).
    #[error("{path}: {detail}")]
    BadFile { path: PathBuf, detail: String },

    /// A certificate, CRL or request could not be parsed.
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },

    /// A certificate is signed with SHA-1 (or MD5). Box Backup's scripts did that until
    /// 2019; OpenSSL 3 refuses them too.
    #[error(
        "certificate '{subject}' is signed with {hash}, which is too weak; re-issue it \
         with this project's bbstored-certs (SHA-256)"
    )]
    WeakHash { subject: String, hash: &'static str },

    /// Our own `CertificateFile` is signed with SHA-1 (or MD5): refused when the
    /// config is loaded rather than by the peer in a handshake, where all either end
    /// could say is an alert's name. `howto` holds the commands that re-issue it.
    #[error(
        "{path}: certificate '{subject}' is signed with {hash}, which is no longer \
         accepted (rustls, like OpenSSL 3 at SSLSecurityLevel 2, refuses it); re-issue \
         it, keeping its key, with:\n{howto}"
    )]
    WeakCertificateFile {
        path: PathBuf,
        subject: String,
        hash: &'static str,
        howto: String,
    },

    /// The peer presented a certificate signed with SHA-1 (or MD5). `peer` is
    /// "server" or "client".
    #[error(
        "the {peer}'s certificate '{subject}' is signed with {hash}, which is no longer \
         accepted; re-issue it for the {peer}, keeping its key, with:\n{howto}"
    )]
    WeakPeerCertificate {
        peer: &'static str,
        subject: String,
        hash: &'static str,
        howto: String,
    },

    /// An RSA key shorter than 2048 bits.
    #[error("certificate '{subject}' has a {bits}-bit RSA key; at least 2048 bits are needed")]
    WeakKey { subject: String, bits: usize },

    /// A certificate or CRL does not verify (chain, signature, validity, revocation).
    #[error("certificate '{subject}': {detail}")]
    Untrusted { subject: String, detail: String },

    /// The client certificate's common name does not name an account.
    #[error("invalid client common name {cn:?} (expected BACKUP-<account number in hex>)")]
    BadCommonName { cn: String },

    /// The peer presented no certificate (cannot happen after a completed handshake
    /// with our server config, which requires one).
    #[error("the peer presented no certificate")]
    NoPeerCertificate,

    /// rustls refused a configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),

    /// Issuing a certificate failed (bbstored-certs).
    #[error("{0}")]
    Certs(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
