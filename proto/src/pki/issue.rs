//! Issuing certificates: the part of `bbstored-certs` that 0.13 did with `openssl
//! genrsa`, `openssl req` and `openssl x509 -req`, in-process.
//!
//! Owns: RSA-2048 key generation (the `rsa` crate, because ring cannot generate RSA
//! keys), self-signed roots, signing PKCS#10 requests (our own parser; the request's
//! self-signature is checked like `openssl x509 -req` does), and loading a CA from a
//! 0.13 `bbstored-certs` directory (v1 root, PKCS#8 or PKCS#1 key).
//! Must not know about the tool's prompts or directory layout (see `certs`).
//!
//! What we issue differs from 0.13 on purpose (protocol.md §1.6 item 11, §6.8): v3
//! certificates, SHA-256, with CA:TRUE and keyCertSign/cRLSign on roots and
//! CA:FALSE plus clientAuth or serverAuth on leaves, so a client certificate can never
//! pass as a server's or a CA. 0.13 peers (OpenSSL 3, SSLSecurityLevel 2) accept them.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData,
    SerialNumber, SignatureAlgorithm,
};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::cert::{self, Cert};
use super::der::{self, Reader};
use super::error::{Error, Result};
use super::verify::verify_signed;

/// The kind of key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyKind {
    /// What 0.13's scripts make and what every 0.13 peer accepts. Slow-ish to
    /// generate (a few hundred ms).
    #[default]
    Rsa2048,
    /// Fast to generate; fine for tests between our own ends and accepted by OpenSSL 3.
    EcdsaP256,
}

/// A private key, with the PEM text written to disc (PKCS#8, as OpenSSL 3 writes).
pub struct GeneratedKey {
    pub key_pair: KeyPair,
    pub pem: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("GeneratedKey")
            .field("key_pair", &self.key_pair)
            .field("pem", &"[secret key elided]")
            .finish()
    }
}

fn certs_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Certs(format!("{what}: {e}"))
}

/// A fresh private key.
pub fn generate_key(kind: KeyKind) -> Result<GeneratedKey> {
    match kind {
        KeyKind::Rsa2048 => {
            let mut rng = rsa::rand_core::OsRng;
            let key = rsa::RsaPrivateKey::new(&mut rng, 2048)
                .map_err(|e| certs_err("RSA key generation", e))?;
            let der = key
                .to_pkcs8_der()
                .map_err(|e| certs_err("RSA key encoding", e))?;
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| certs_err("RSA key encoding", e))?
                .to_string();
            let key_pair = KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(der.as_bytes().to_vec()),
                &rcgen::PKCS_RSA_SHA256,
            )
            .map_err(|e| certs_err("RSA key", e))?;
            Ok(GeneratedKey { key_pair, pem })
        }
        KeyKind::EcdsaP256 => {
            let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .map_err(|e| certs_err("ECDSA key generation", e))?;
            let pem = key_pair.serialize_pem();
            Ok(GeneratedKey { key_pair, pem })
        }
    }
}

/// A signing key from a PEM file's contents: PKCS#8 (OpenSSL 3), PKCS#1 (older
/// OpenSSL's `genrsa`) or SEC1.
pub fn key_from_pem(pem: &[u8]) -> Result<KeyPair> {
    use rustls::pki_types::pem::PemObject;
    let key = PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| certs_err("no usable private key", format!("{e:?}")))?;
    let pkcs8: Vec<u8> = match key {
        PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        PrivateKeyDer::Pkcs1(k) => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            rsa::RsaPrivateKey::from_pkcs1_der(k.secret_pkcs1_der())
                .and_then(|k| k.to_pkcs8_der().map_err(Into::into))
                .map_err(|e| certs_err("PKCS#1 key", e))?
                .as_bytes()
                .to_vec()
        }
        _ => return Err(Error::Certs("unsupported private key type".into())),
    };
    let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8);
    // rcgen picks ECDSA/Ed25519 by itself; for RSA it must be told the hash.
    KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
        .or_else(|_| KeyPair::try_from(&pkcs8))
        .map_err(|e| certs_err("private key", e))
}

/// A CA able to sign: its certificate and its key.
#[derive(Debug)]
pub struct Ca {
    pub cert_der: CertificateDer<'static>,
    params: CertificateParams,
    key: KeyPair,
}

fn unix_time(secs: i64) -> Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| certs_err("time", e))
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and no leading zero byte to strip
    SerialNumber::from_slice(&bytes)
}

impl Ca {
    /// A new self-signed root `CN=<common_name>`, valid from now for `days` days.
    pub fn new_root(common_name: &str, key: KeyPair, days: i64) -> Result<Ca> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let t = now();
        params.not_before = unix_time(t)?;
        params.not_after = unix_time(t + days * 86400)?;
        params.serial_number = Some(random_serial());
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params
            .self_signed(&key)
            .map_err(|e| certs_err("self-signing the root", e))?;
        Ok(Ca {
            cert_der: cert.der().clone(),
            params,
            key,
        })
    }

    /// A CA from an existing certificate (v1 from 0.13's tool, or v3 from ours) and
    /// its key. The issuer name we write must come out byte-identical to the CA's
    /// subject; [`Ca::sign`] checks that on every certificate.
    pub fn from_parts(cert_der: CertificateDer<'static>, key: KeyPair) -> Result<Ca> {
        let c = Cert::parse(&cert_der)?;
        if key.subject_public_key_info() != c.spki {
            return Err(Error::Certs(
                "the CA key does not belong to the CA certificate".into(),
            ));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = dn_from_der(c.subject)?;
        params.key_identifier_method = match subject_key_id(&cert_der) {
            Some(ski) => KeyIdMethod::PreSpecified(ski),
            None => KeyIdMethod::Sha256,
        };
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ok(Ca {
            cert_der,
            params,
            key,
        })
    }

    pub fn pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert_der)
    }

    pub fn key(&self) -> &KeyPair {
        &self.key
    }

    /// A CRL signed by this CA (DER).
    pub fn signed_crl(&self, params: rcgen::CertificateRevocationListParams) -> Result<Vec<u8>> {
        let issuer = Issuer::from_params(&self.params, &self.key);
        let crl = params
            .signed_by(&issuer)
            .map_err(|e| certs_err("signing the CRL", e))?;
        Ok(crl.der().to_vec())
    }

    /// Signs a leaf certificate for `subject` with `public_key`.
    pub fn sign(&self, leaf: &LeafSpec, public_key: &impl PublicKeyData) -> Result<Vec<u8>> {
        let mut params = CertificateParams::default();
        params.distinguished_name = leaf.subject.clone();
        params.not_before = unix_time(leaf.not_before)?;
        params.not_after = unix_time(leaf.not_after)?;
        params.serial_number = Some(SerialNumber::from_slice(&leaf.serial));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![match leaf.usage {
            super::verify::Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
            super::verify::Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        }];
        params.subject_alt_names = leaf.subject_alt_names.clone();
        // An authority key id only where the CA has a subject key id to match
        // (0.13's v1 roots have none).
        params.use_authority_key_identifier_extension = matches!(
            self.params.key_identifier_method,
            KeyIdMethod::PreSpecified(_)
        ) || self.params.is_ca != IsCa::NoCa;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params
            .signed_by(public_key, &issuer)
            .map_err(|e| certs_err("signing", e))?;
        let der = cert.der().to_vec();
        let (ours, ca) = (Cert::parse(&der)?, Cert::parse(&self.cert_der)?);
        if ours.issuer != ca.subject {
            return Err(Error::Certs(format!(
                "cannot reproduce the CA's name '{}' exactly; certificates signed with it \
                 would not verify",
                ca.subject_text()
            )));
        }
        Ok(der)
    }
}

/// What goes into a leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub subject: DistinguishedName,
    pub serial: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub usage: super::verify::Usage,
    pub subject_alt_names: Vec<rcgen::SanType>,
}

impl LeafSpec {
    /// `CN=<cn>`, valid from now for `days` days.
    pub fn new(cn: &str, usage: super::verify::Usage, serial: &[u8], days: i64) -> LeafSpec {
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, cn);
        let t = now();
        LeafSpec {
            subject,
            serial: serial.to_vec(),
            not_before: t,
            not_after: t + days * 86400,
            usage,
            subject_alt_names: Vec::new(),
        }
    }
}

/// The subjectAltName for a server called `name`: an IP address or a DNS name, or
/// none if it is neither.
pub fn server_san(name: &str) -> Vec<rcgen::SanType> {
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return vec![rcgen::SanType::IpAddress(ip)];
    }
    match rcgen::string::Ia5String::try_from(name) {
        Ok(s) if !name.is_empty() => vec![rcgen::SanType::DnsName(s)],
        _ => Vec::new(),
    }
}

pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// The subjectKeyIdentifier of a certificate, if it has one.
fn subject_key_id(cert_der: &[u8]) -> Option<Vec<u8>> {
    // Walk to the extensions by hand: Cert skips the SKI's value.
    let outer = der::single(cert_der, der::SEQUENCE, "").ok()?;
    let tbs = Reader::new(outer.value).expect(der::SEQUENCE, "").ok()?;
    let mut t = Reader::new(tbs.value);
    while let Ok(tlv) = t.any() {
        if tlv.tag != 0xa3 {
            continue;
        }
        let seq = der::single(tlv.value, der::SEQUENCE, "").ok()?;
        let mut exts = Reader::new(seq.value);
        while let Ok(ext) = exts.expect(der::SEQUENCE, "") {
            let mut e = Reader::new(ext.value);
            let id = e.expect(der::OID, "").ok()?.value;
            e.optional(der::BOOLEAN).ok()?;
            let v = e.expect(der::OCTET_STRING, "").ok()?;
            if id == cert::oid::SUBJECT_KEY_ID {
                return Some(
                    der::single(v.value, der::OCTET_STRING, "")
                        .ok()?
                        .value
                        .to_vec(),
                );
            }
        }
    }
    None
}

/// OID contents → arcs.
fn oid_arcs(content: &[u8]) -> Option<Vec<u64>> {
    let mut arcs = Vec::new();
    let mut v: u64 = 0;
    for (i, &b) in content.iter().enumerate() {
        v = v.checked_mul(128)? | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            v = 0;
        } else if i == content.len() - 1 {
            return None;
        }
    }
    (!arcs.is_empty()).then_some(arcs)
}

/// A Name (DER) as rcgen's DistinguishedName, keeping each value's string type so
/// rcgen writes the same bytes back. Fails on names rcgen cannot reproduce
/// (repeated attribute types, unusual string types).
pub(crate) fn dn_from_der(name: &[u8]) -> Result<DistinguishedName> {
    let attrs = cert::name_attributes(name).map_err(|e| Error::Malformed {
        what: "name",
        detail: e.0.to_string(),
    })?;
    let mut dn = DistinguishedName::new();
    let mut seen = Vec::new();
    for (id, tag, v) in attrs {
        let unsupported = || Error::Certs(format!("unsupported name '{}'", cert::name_text(name)));
        let arcs = oid_arcs(id).ok_or_else(unsupported)?;
        let ty = DnType::from_oid(&arcs);
        if seen.contains(&ty) {
            return Err(unsupported());
        }
        seen.push(ty.clone());
        let text = || std::str::from_utf8(v).map_err(|_| unsupported());
        let value = match tag {
            0x0c => DnValue::Utf8String(text()?.to_string()),
            0x13 => DnValue::PrintableString(text()?.try_into().map_err(|_| unsupported())?),
            0x16 => DnValue::Ia5String(text()?.try_into().map_err(|_| unsupported())?),
            0x14 => DnValue::TeletexString(text()?.try_into().map_err(|_| unsupported())?),
            0x1e => DnValue::BmpString(
                rcgen::string::BmpString::from_utf16be(v.to_vec()).map_err(|_| unsupported())?,
            ),
            _ => return Err(unsupported()),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

/// A PKCS#10 certificate request, read and its self-signature checked.
#[derive(Debug)]
pub struct Csr {
    /// The subject Name, DER.
    pub subject: Vec<u8>,
    /// The first commonName of the subject.
    pub common_name: Option<String>,
    key: CsrKey,
}

/// The request's public key in the form rcgen writes into a certificate.
#[derive(Debug)]
struct CsrKey {
    key: Vec<u8>,
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for CsrKey {
    fn der_bytes(&self) -> &[u8] {
        &self.key
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

impl Csr {
    /// Reads a PEM (`CERTIFICATE REQUEST`) or DER request and verifies that it is
    /// signed by its own key, as `openssl x509 -req` does.
    pub fn parse(input: &[u8]) -> Result<Csr> {
        use rustls::pki_types::CertificateSigningRequestDer;
        use rustls::pki_types::pem::PemObject;
        let der: Vec<u8> = if input.first() == Some(&der::SEQUENCE) {
            input.to_vec()
        } else {
            CertificateSigningRequestDer::from_pem_slice(input)
                .map_err(|e| Error::Malformed {
                    what: "certificate request",
                    detail: format!("{e:?}"),
                })?
                .as_ref()
                .to_vec()
        };
        let m = |e: der::DerError| Error::Malformed {
            what: "certificate request",
            detail: e.0.to_string(),
        };
        let outer = der::single(&der, der::SEQUENCE, "request is not a SEQUENCE").map_err(m)?;
        let mut r = Reader::new(outer.value);
        let info = r
            .expect(der::SEQUENCE, "requestInfo not a SEQUENCE")
            .map_err(m)?;
        let sig_alg = r
            .expect(der::SEQUENCE, "signatureAlgorithm not a SEQUENCE")
            .map_err(m)?;
        let sig = r
            .expect(der::BIT_STRING, "signature not a BIT STRING")
            .map_err(m)?;
        r.finish("trailing fields in request").map_err(m)?;
        let mut i = Reader::new(info.value);
        let version = i
            .expect(der::INTEGER, "version not an INTEGER")
            .map_err(m)?;
        if version.value != [0] {
            return Err(m(der::DerError("unknown request version")));
        }
        let subject = i.expect(der::SEQUENCE, "subject not a Name").map_err(m)?;
        let spki = i
            .expect(der::SEQUENCE, "subjectPKInfo not a SEQUENCE")
            .map_err(m)?;
        let (spki_alg, spki_key) = cert::split_spki(&spki).map_err(m)?;

        if let Some(hash) = cert::weak_hash(sig_alg.value) {
            return Err(Error::Certs(format!(
                "the certificate request is signed with {hash}; make a new one with SHA-256"
            )));
        }
        let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        verify_signed(
            algs.all,
            spki_alg,
            spki_key,
            sig_alg.value,
            info.raw,
            der::bit_string_bytes(&sig).map_err(m)?,
        )
        .map_err(|e| Error::Certs(format!("certificate request self-signature: {e}")))?;

        let alg = [
            &rcgen::PKCS_RSA_SHA256,
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ]
        .into_iter()
        .find(|a| {
            // rcgen writes the key's AlgorithmIdentifier from the signature
            // algorithm; pick the one that writes the request's.
            let probe = CsrKey {
                key: Vec::new(),
                alg: a,
            };
            let spki = probe.subject_public_key_info();
            der::single(&spki, der::SEQUENCE, "")
                .ok()
                .and_then(|t| Reader::new(t.value).expect(der::SEQUENCE, "").ok())
                .is_some_and(|a| a.value == spki_alg)
        })
        .ok_or_else(|| Error::Certs("unsupported key type in the certificate request".into()))?;
        let probe = Cert {
            tbs: &[],
            sig_alg: &[],
            signature: &[],
            version: 1,
            serial: &[1],
            issuer: subject.raw,
            subject: subject.raw,
            not_before: 0,
            not_after: 0,
            spki: spki.raw,
            spki_alg,
            spki_key,
            ca: None,
            path_len: None,
            key_usage: None,
            ext_key_usage: None,
            san_dns: Vec::new(),
            san_ip: Vec::new(),
            has_san: false,
        };
        if let Some(bits) = probe.rsa_bits()
            && bits < 2048
        {
            return Err(Error::Certs(format!(
                "the certificate request has a {bits}-bit RSA key; at least 2048 bits are needed"
            )));
        }
        Ok(Csr {
            subject: subject.raw.to_vec(),
            common_name: probe.common_name(),
            key: CsrKey {
                key: spki_key.to_vec(),
                alg,
            },
        })
    }

    /// The request's key, for [`Ca::sign`].
    pub fn public_key(&self) -> &impl PublicKeyData {
        &self.key
    }

    /// The subject as rcgen will write it.
    pub fn subject_dn(&self) -> Result<DistinguishedName> {
        dn_from_der(&self.subject)
    }
}

/// A certificate request for `CN=<cn>` signed by `key` (what `openssl req -new` makes;
/// for bbstored-certs' root CSR files and for tests).
pub fn make_csr(cn: &str, key: &KeyPair) -> Result<String> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .serialize_request(key)
        .and_then(|r| r.pem())
        .map_err(|e| certs_err("certificate request", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(i.as_bytes()), o);
        }
    }

    #[test]
    fn oid_arcs_decode() {
        assert_eq!(oid_arcs(&[0x55, 0x04, 0x03]), Some(vec![2, 5, 4, 3]));
        assert_eq!(
            oid_arcs(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]),
            Some(vec![1, 2, 840, 113549, 1, 1, 11])
        );
        assert_eq!(oid_arcs(&[0x86]), None);
    }

    #[test]
    fn reads_013_csr_and_refuses_a_tampered_one() {
        let pem = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/bb013/certs/client/01234567-csr.pem"
        ))
        .unwrap();
        let csr = Csr::parse(&pem).unwrap();
        assert_eq!(csr.common_name.as_deref(), Some("BACKUP-01234567"));
        use rustls::pki_types::CertificateSigningRequestDer;
        use rustls::pki_types::pem::PemObject;
        let mut der = CertificateSigningRequestDer::from_pem_slice(&pem)
            .unwrap()
            .as_ref()
            .to_vec();
        // Flip a bit in the subject CN: the self-signature must no longer verify.
        let pos = der.windows(6).position(|w| w == b"BACKUP").unwrap();
        der[pos] ^= 1;
        let e = Csr::parse(&der).unwrap_err().to_string();
        assert!(e.contains("self-signature"), "{e}");
    }
}
