//! Reading 0.13's key and certificate files: `CertificateFile` (PEM chain, leaf
//! first), `PrivateKeyFile` (PEM, unencrypted; PKCS#8 from OpenSSL 3, PKCS#1 from
//! older OpenSSL, SEC1 for EC keys) and `TrustedCAsFile` (PEM).
//!
//! Owns: turning those files into rustls values, and pairing a certificate with its
//! key without rustls's consistency check (which parses with webpki and so refuses
//! v1 certificates, rustls issue #2364). Our own check compares the key's public half
//! with the certificate's SubjectPublicKeyInfo instead.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::cert::Cert;
use super::error::{Error, Result};

/// Every certificate in a PEM file (a DER file holding one certificate also works).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read certificate file", path, e))?;
    let bad = |detail: String| Error::BadFile {
        path: path.to_path_buf(),
        detail,
    };
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateDer::from(bytes)]);
    }
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("bad PEM: {e:?}")))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read private key file", path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        detail: format!("no usable private key (unencrypted PEM expected): {e:?}"),
    })
}

/// The certificate chain of `cert_file` with the key of `key_file`, ready for a
/// resolver. Fails if the key is not the certificate's.
pub fn certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>> {
    let chain = certificates(cert_file)?;
    let key = private_key(key_file)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| Error::BadFile {
            path: key_file.to_path_buf(),
            detail: format!("unusable private key: {e}"),
        })?;
    let leaf = Cert::parse(&chain[0]).map_err(|e| Error::BadFile {
        path: cert_file.to_path_buf(),
        detail: e.to_string(),
    })?;
    if let Some(spki) = signing_key.public_key()
        && spki.as_ref() != leaf.spki
    {
        return Err(Error::BadFile {
            path: key_file.to_path_buf(),
            detail: format!(
                "private key does not match the certificate in {}",
                cert_file.display()
            ),
        });
    }
    Ok(Arc::new(CertifiedKey::new(chain, signing_key)))
}
