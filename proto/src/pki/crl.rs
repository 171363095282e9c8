//! Certificate revocation lists for the server's client CA (protocol.md §6.9; 0.13 has
//! nothing of the kind).
//!
//! Owns: reading a CRL file (PEM with one or more `X509 CRL` blocks, or one DER CRL),
//! checking each CRL's signature against the trusted CA that issued it, and a shared,
//! reloadable revoked-serial set. Must not know about TLS connections: the verifier
//! asks [`Crl::is_revoked`] during each handshake, so a [`Crl::reload`] (on SIGHUP)
//! takes effect for the next handshake while running sessions carry on.
//!
//! A CRL past its nextUpdate is still used (with a warning in the log): refusing every
//! client because nobody re-issued the CRL would stop all backups, and the stale list
//! still names every certificate it named before.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::CertificateRevocationListDer;
use rustls::pki_types::pem::PemObject;

use super::cert;
use super::der::{self, DerError, Reader};
use super::error::{Error, Result};
use super::verify::{TrustedCas, verify_signed};

/// One verified CRL, reduced to what the check needs.
#[derive(Debug, Clone)]
struct ParsedCrl {
    issuer: Vec<u8>,
    serials: HashSet<Vec<u8>>,
}

/// A reloadable CRL file, shared by clones (the verifier holds one, the signal
/// handler another).
#[derive(Clone)]
pub struct Crl {
    inner: Arc<CrlInner>,
}

struct CrlInner {
    path: PathBuf,
    cas: TrustedCas,
    algs: WebPkiSupportedAlgorithms,
    lists: RwLock<Arc<Vec<ParsedCrl>>>,
}

impl fmt::Debug for Crl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crl")
            .field("path", &self.inner.path)
            .field("revoked", &self.revoked_count())
            .finish()
    }
}

impl Crl {
    /// Reads and verifies `path`. Every CRL in it must be signed by one of `cas`.
    pub fn load(path: &Path, cas: TrustedCas, algs: WebPkiSupportedAlgorithms) -> Result<Crl> {
        let lists = read_file(path, &cas, &algs)?;
        Ok(Crl {
            inner: Arc::new(CrlInner {
                path: path.to_path_buf(),
                cas,
                algs,
                lists: RwLock::new(Arc::new(lists)),
            }),
        })
    }

    /// Re-reads the file. On any error the previous lists stay in force and the error
    /// is returned, so a half-written file never lets a revoked client back in.
    /// Returns the number of revoked serials now in force.
    pub fn reload(&self) -> Result<usize> {
        let lists = read_file(&self.inner.path, &self.inner.cas, &self.inner.algs)?;
        let n = lists.iter().map(|l| l.serials.len()).sum();
        // A poisoned lock only means a panicking writer; the Arc inside is whole.
        let mut guard = self.inner.lists.write().unwrap_or_else(|p| p.into_inner());
        *guard = Arc::new(lists);
        tracing::info!(path = %self.inner.path.display(), revoked = n, "CRL reloaded");
        Ok(n)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Number of revoked serials in force.
    pub fn revoked_count(&self) -> usize {
        self.current().iter().map(|l| l.serials.len()).sum()
    }

    fn current(&self) -> Arc<Vec<ParsedCrl>> {
        self.inner
            .lists
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Is the certificate with this issuer Name (DER) and serial (INTEGER contents)
    /// listed by a CRL from that issuer?
    pub(crate) fn is_revoked(&self, issuer: &[u8], serial: &[u8]) -> bool {
        self.current()
            .iter()
            .any(|l| l.issuer == issuer && l.serials.contains(serial))
    }
}

fn read_file(
    path: &Path,
    cas: &TrustedCas,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<Vec<ParsedCrl>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read CRL file", path, e))?;
    let bad = |detail: String| Error::BadFile {
        path: path.to_path_buf(),
        detail,
    };
    let ders: Vec<Vec<u8>> = if bytes.first() == Some(&der::SEQUENCE) {
        vec![bytes]
    } else {
        CertificateRevocationListDer::pem_slice_iter(&bytes)
            .map(|r| r.map(|d| d.as_ref().to_vec()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(format!("bad PEM: {e:?}")))?
    };
    if ders.is_empty() {
        return Err(bad("no CRL in the file".into()));
    }
    let mut out = Vec::new();
    for d in &ders {
        out.push(parse_and_verify(d, cas, algs, now()).map_err(|e| bad(e.to_string()))?);
    }
    Ok(out)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses one DER CRL (RFC 5280 §5.1) and checks its signature against the CA named
/// as its issuer.
fn parse_and_verify(
    input: &[u8],
    cas: &TrustedCas,
    algs: &WebPkiSupportedAlgorithms,
    now: i64,
) -> Result<ParsedCrl> {
    let m = |e: DerError| Error::Malformed {
        what: "CRL",
        detail: e.0.to_string(),
    };
    let outer = der::single(input, der::SEQUENCE, "CRL is not a SEQUENCE").map_err(m)?;
    let mut r = Reader::new(outer.value);
    let tbs = r
        .expect(der::SEQUENCE, "tbsCertList not a SEQUENCE")
        .map_err(m)?;
    let sig_alg = r
        .expect(der::SEQUENCE, "signatureAlgorithm not a SEQUENCE")
        .map_err(m)?;
    let sig = r
        .expect(der::BIT_STRING, "signature not a BIT STRING")
        .map_err(m)?;
    r.finish("trailing fields in CRL").map_err(m)?;
    let signature = der::bit_string_bytes(&sig).map_err(m)?;

    let mut t = Reader::new(tbs.value);
    t.optional(der::INTEGER).map_err(m)?; // version (v2) or absent (v1)
    let inner_alg = t
        .expect(der::SEQUENCE, "signature not a SEQUENCE")
        .map_err(m)?;
    if inner_alg.value != sig_alg.value {
        return Err(m(DerError("inner and outer signature algorithms differ")));
    }
    let issuer = t.expect(der::SEQUENCE, "issuer not a Name").map_err(m)?;
    let _this_update = der::time(&t.any().map_err(m)?).map_err(m)?;
    let mut next_update = None;
    if matches!(
        t.peek_tag(),
        Some(der::UTC_TIME) | Some(der::GENERALIZED_TIME)
    ) {
        next_update = Some(der::time(&t.any().map_err(m)?).map_err(m)?);
    }
    let mut serials = HashSet::new();
    if let Some(revoked) = t.optional(der::SEQUENCE).map_err(m)? {
        let mut rr = Reader::new(revoked.value);
        while !rr.is_empty() {
            let entry = rr
                .expect(der::SEQUENCE, "revoked entry not a SEQUENCE")
                .map_err(m)?;
            let mut e = Reader::new(entry.value);
            let serial = e
                .expect(der::INTEGER, "revoked serial not an INTEGER")
                .map_err(m)?;
            serials.insert(serial.value.to_vec());
        }
    }
    // crlExtensions [0]: nothing in them changes which serials are revoked for us.
    t.optional(0xa0).map_err(m)?;
    t.finish("trailing fields in tbsCertList").map_err(m)?;

    let issuer_text = cert::name_text(issuer.raw);
    if let Some(hash) = cert::weak_hash(sig_alg.value) {
        return Err(Error::WeakHash {
            subject: format!("CRL of {issuer_text}"),
            hash,
        });
    }
    let mut why = format!("CRL issuer '{issuer_text}' is not a trusted CA");
    let mut ok = false;
    for ca in cas.parsed() {
        if ca.subject != issuer.raw {
            continue;
        }
        if ca
            .key_usage
            .is_some_and(|ku| ku & super::cert::KU_CRL_SIGN == 0)
        {
            why = format!("CA '{issuer_text}' may not sign CRLs (keyUsage)");
            continue;
        }
        match verify_signed(
            algs.all,
            ca.spki_alg,
            ca.spki_key,
            sig_alg.value,
            tbs.raw,
            signature,
        ) {
            Ok(()) => {
                ok = true;
                break;
            }
            Err(e) => why = format!("CRL of '{issuer_text}': {e}"),
        }
    }
    if !ok {
        return Err(Error::Untrusted {
            subject: format!("CRL of {issuer_text}"),
            detail: why,
        });
    }
    if let Some(next) = next_update
        && next < now
    {
        tracing::warn!(issuer = %issuer_text, "CRL is past its nextUpdate; using it anyway");
    }
    Ok(ParsedCrl {
        issuer: issuer.raw.to_vec(),
        serials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let cas = TrustedCas::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/bb013/certs/server/clientCA.pem"
        )))
        .unwrap();
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x03, 0x30, 0x01, 0x00],
            &[0x30, 0x00],
        ] {
            assert!(parse_and_verify(input, &cas, &algs, 0).is_err());
        }
    }
}
