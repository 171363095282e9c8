//! X.509 certificates as Box Backup deployments have them: version 1 (no extensions)
//! from 0.13's `bbstored-certs`, or version 3 from ours.
//!
//! Owns: parsing one certificate into the byte ranges a verifier needs (the signed
//! TBS bytes, algorithm identifiers, names, validity, public key) and the few
//! extensions that change a verdict. Must not know about trust, time or TLS.
//!
//! rustls's own parser (webpki) refuses v1 certificates, which is why this exists;
//! see protocol.md §1.6.

use super::der::{self, DerError, Reader, Tlv};
use super::error::{Error, Result};

/// Contents (without the SEQUENCE header) of well-known AlgorithmIdentifiers and
/// OIDs, as they appear in DER.
pub(crate) mod oid {
    pub const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    pub const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    pub const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    pub const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
    pub const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
    pub const SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
    pub const AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];
    pub const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    pub const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
    pub const EKU_ANY: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
    pub const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    /// Signature algorithms too weak to accept, with the name the error gives.
    pub const WEAK_SIGNATURES: &[(&[u8], &str)] = &[
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05],
            "SHA-1",
        ),
        (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01], "SHA-1"),
        (&[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03], "SHA-1"),
        (&[0x2b, 0x0e, 0x03, 0x02, 0x1d], "SHA-1"),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04],
            "MD5",
        ),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x02],
            "MD2",
        ),
    ];
}

/// One parsed certificate, borrowing from its DER.
#[derive(Debug, Clone)]
pub(crate) struct Cert<'a> {
    /// The TBSCertificate TLV: the bytes the issuer signed.
    pub tbs: &'a [u8],
    /// Contents of the outer signatureAlgorithm SEQUENCE.
    pub sig_alg: &'a [u8],
    pub signature: &'a [u8],
    /// 1 or 3 (2 is accepted and treated like 3).
    pub version: u8,
    /// Contents of the serialNumber INTEGER (DER, so equal numbers are equal bytes).
    pub serial: &'a [u8],
    /// The issuer and subject Name TLVs, compared as bytes when building a path.
    pub issuer: &'a [u8],
    pub subject: &'a [u8],
    pub not_before: i64,
    pub not_after: i64,
    /// The whole SubjectPublicKeyInfo TLV.
    pub spki: &'a [u8],
    /// Contents of the SPKI's AlgorithmIdentifier SEQUENCE.
    pub spki_alg: &'a [u8],
    /// The subjectPublicKey BIT STRING's bytes (e.g. an RSAPublicKey).
    pub spki_key: &'a [u8],
    /// basicConstraints cA, if the extension is there.
    pub ca: Option<bool>,
    /// basicConstraints pathLenConstraint.
    pub path_len: Option<u32>,
    /// keyUsage keyCertSign / cRLSign bits, if the extension is there.
    pub key_usage: Option<u16>,
    /// extKeyUsage purposes (OID contents), if the extension is there.
    pub ext_key_usage: Option<Vec<&'a [u8]>>,
    /// subjectAltName dNSName and iPAddress entries.
    pub san_dns: Vec<&'a [u8]>,
    pub san_ip: Vec<&'a [u8]>,
    pub has_san: bool,
}

fn malformed(what: &'static str) -> impl Fn(DerError) -> Error {
    move |e| Error::Malformed {
        what,
        detail: e.0.to_string(),
    }
}

/// keyUsage bits as numbered in RFC 5280 (bit 0 = digitalSignature is the MSB of the
/// first byte); we keep them as a u16 with bit n = 1 << n.
pub(crate) const KU_KEY_CERT_SIGN: u16 = 1 << 5;
pub(crate) const KU_CRL_SIGN: u16 = 1 << 6;

impl<'a> Cert<'a> {
    pub fn parse(input: &'a [u8]) -> Result<Cert<'a>> {
        Self::parse_inner(input).map_err(malformed("certificate"))
    }

    fn parse_inner(input: &'a [u8]) -> der::DerResult<Cert<'a>> {
        let outer = der::single(input, der::SEQUENCE, "certificate is not a SEQUENCE")?;
        let mut r = Reader::new(outer.value);
        let tbs = r.expect(der::SEQUENCE, "TBSCertificate is not a SEQUENCE")?;
        let sig_alg = r.expect(der::SEQUENCE, "signatureAlgorithm is not a SEQUENCE")?;
        let sig = r.expect(der::BIT_STRING, "signature is not a BIT STRING")?;
        r.finish("trailing fields after the signature")?;

        let mut t = Reader::new(tbs.value);
        let version = match t.optional(0xa0)? {
            None => 1,
            Some(v) => {
                let int = der::single(v.value, der::INTEGER, "version is not an INTEGER")?;
                match int.value {
                    [1] => 2,
                    [2] => 3,
                    // v1 must be encoded by leaving the field out (DEFAULT).
                    _ => return Err(DerError("unknown certificate version")),
                }
            }
        };
        let serial = t.expect(der::INTEGER, "serialNumber is not an INTEGER")?;
        if serial.value.is_empty() {
            return Err(DerError("empty serialNumber"));
        }
        let inner_alg = t.expect(der::SEQUENCE, "signature is not a SEQUENCE")?;
        if inner_alg.value != sig_alg.value {
            return Err(DerError("inner and outer signature algorithms differ"));
        }
        let issuer = t.expect(der::SEQUENCE, "issuer is not a Name")?;
        let validity = t.expect(der::SEQUENCE, "validity is not a SEQUENCE")?;
        let mut v = Reader::new(validity.value);
        let not_before = der::time(&v.any()?)?;
        let not_after = der::time(&v.any()?)?;
        v.finish("trailing fields in validity")?;
        let subject = t.expect(der::SEQUENCE, "subject is not a Name")?;
        let spki = t.expect(der::SEQUENCE, "subjectPublicKeyInfo is not a SEQUENCE")?;
        let (spki_alg, spki_key) = split_spki(&spki)?;

        let mut cert = Cert {
            tbs: tbs.raw,
            sig_alg: sig_alg.value,
            signature: der::bit_string_bytes(&sig)?,
            version,
            serial: serial.value,
            issuer: issuer.raw,
            subject: subject.raw,
            not_before,
            not_after,
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
        // issuerUniqueID [1] and subjectUniqueID [2]: allowed, ignored.
        t.optional(0x81)?;
        t.optional(0x82)?;
        if let Some(exts) = t.optional(0xa3)? {
            if version == 1 {
                return Err(DerError("extensions in a v1 certificate"));
            }
            let seq = der::single(exts.value, der::SEQUENCE, "extensions not a SEQUENCE")?;
            cert.read_extensions(seq.value)?;
        }
        t.finish("trailing fields in TBSCertificate")?;
        Ok(cert)
    }

    fn read_extensions(&mut self, input: &'a [u8]) -> der::DerResult<()> {
        let mut r = Reader::new(input);
        let mut seen: Vec<&[u8]> = Vec::new();
        while !r.is_empty() {
            let ext = r.expect(der::SEQUENCE, "extension is not a SEQUENCE")?;
            let mut e = Reader::new(ext.value);
            let id = e.expect(der::OID, "extension id is not an OID")?.value;
            let critical = match e.optional(der::BOOLEAN)? {
                Some(b) => b.value == [0xff],
                None => false,
            };
            let value = e.expect(der::OCTET_STRING, "extension value not an OCTET STRING")?;
            e.finish("trailing fields in extension")?;
            if seen.contains(&id) {
                return Err(DerError("duplicate extension"));
            }
            seen.push(id);
            match id {
                oid::BASIC_CONSTRAINTS => {
                    let seq = der::single(value.value, der::SEQUENCE, "bad basicConstraints")?;
                    let mut b = Reader::new(seq.value);
                    self.ca =
                        Some(matches!(b.optional(der::BOOLEAN)?, Some(t) if t.value == [0xff]));
                    if let Some(n) = b.optional(der::INTEGER)? {
                        self.path_len = Some(small_uint(n.value)?);
                    }
                    b.finish("trailing fields in basicConstraints")?;
                }
                oid::KEY_USAGE => {
                    let bits = der::single(value.value, der::BIT_STRING, "bad keyUsage")?;
                    let bytes = bits.value.get(1..).unwrap_or(&[]);
                    let mut ku = 0u16;
                    for (i, &b) in bytes.iter().take(2).enumerate() {
                        for bit in 0..8 {
                            if b & (0x80 >> bit) != 0 {
                                ku |= 1 << (i * 8 + bit);
                            }
                        }
                    }
                    self.key_usage = Some(ku);
                }
                oid::EXT_KEY_USAGE => {
                    let seq = der::single(value.value, der::SEQUENCE, "bad extKeyUsage")?;
                    let mut k = Reader::new(seq.value);
                    let mut purposes = Vec::new();
                    while !k.is_empty() {
                        purposes.push(k.expect(der::OID, "extKeyUsage entry not an OID")?.value);
                    }
                    self.ext_key_usage = Some(purposes);
                }
                oid::SUBJECT_ALT_NAME => {
                    self.has_san = true;
                    let seq = der::single(value.value, der::SEQUENCE, "bad subjectAltName")?;
                    let mut s = Reader::new(seq.value);
                    while !s.is_empty() {
                        let name = s.any()?;
                        match name.tag {
                            0x82 => self.san_dns.push(name.value),
                            0x87 => self.san_ip.push(name.value),
                            _ => {}
                        }
                    }
                }
                oid::SUBJECT_KEY_ID | oid::AUTHORITY_KEY_ID => {}
                _ if critical => return Err(DerError("unsupported critical extension")),
                _ => {}
            }
        }
        Ok(())
    }

    /// The first commonName of the subject, as 0.13 takes it (X509_NAME_get_text_by_NID).
    pub fn common_name(&self) -> Option<String> {
        name_attributes(self.subject)
            .ok()?
            .into_iter()
            .find(|(id, _, _)| *id == oid::COMMON_NAME)
            .map(|(_, tag, v)| string_value(tag, v))
    }

    /// The subject as text for messages: `CN=BACKUP-1234, O=...`.
    pub fn subject_text(&self) -> String {
        name_text(self.subject)
    }

    pub fn is_self_issued(&self) -> bool {
        self.issuer == self.subject
    }

    /// The RSA modulus length in bits, if this is an RSA key.
    pub fn rsa_bits(&self) -> Option<usize> {
        let mut r = Reader::new(self.spki_alg);
        if r.expect(der::OID, "").ok()?.value != oid::RSA_ENCRYPTION {
            return None;
        }
        let key = der::single(self.spki_key, der::SEQUENCE, "").ok()?;
        let n = Reader::new(key.value).expect(der::INTEGER, "").ok()?.value;
        let n = match n.iter().position(|&b| b != 0) {
            Some(i) => &n[i..],
            None => return Some(0),
        };
        Some(n.len() * 8 - n[0].leading_zeros() as usize)
    }

    /// The name of the weak hash this certificate is signed with, if any.
    pub fn weak_hash(&self) -> Option<&'static str> {
        weak_hash(self.sig_alg)
    }
}

/// The weak hash named by an AlgorithmIdentifier's contents, if it is one.
pub(crate) fn weak_hash(alg: &[u8]) -> Option<&'static str> {
    let id = Reader::new(alg).expect(der::OID, "").ok()?.value;
    oid::WEAK_SIGNATURES
        .iter()
        .find(|(o, _)| *o == id)
        .map(|(_, name)| *name)
}

/// (algorithm contents, key bytes) of a SubjectPublicKeyInfo TLV.
pub(crate) fn split_spki<'a>(spki: &Tlv<'a>) -> der::DerResult<(&'a [u8], &'a [u8])> {
    let mut s = Reader::new(spki.value);
    let alg = s.expect(der::SEQUENCE, "SPKI algorithm is not a SEQUENCE")?;
    let key = s.expect(der::BIT_STRING, "SPKI key is not a BIT STRING")?;
    s.finish("trailing fields in SPKI")?;
    Ok((alg.value, der::bit_string_bytes(&key)?))
}

fn small_uint(v: &[u8]) -> der::DerResult<u32> {
    if v.is_empty() || v.len() > 4 || v[0] & 0x80 != 0 {
        return Err(DerError("integer out of range"));
    }
    Ok(v.iter().fold(0u32, |a, &b| (a << 8) | b as u32))
}

/// (OID contents, string tag, string bytes) of every attribute of a Name TLV, in
/// order (multi-valued RDNs flattened).
/// One attribute of a Name: (OID contents, string tag, string bytes).
pub(crate) type NameAttribute<'a> = (&'a [u8], u8, &'a [u8]);

pub(crate) fn name_attributes(name: &[u8]) -> der::DerResult<Vec<NameAttribute<'_>>> {
    let seq = der::single(name, der::SEQUENCE, "Name is not a SEQUENCE")?;
    let mut out = Vec::new();
    let mut rdns = Reader::new(seq.value);
    while !rdns.is_empty() {
        let set = rdns.expect(der::SET, "RDN is not a SET")?;
        let mut atvs = Reader::new(set.value);
        while !atvs.is_empty() {
            let atv = atvs.expect(der::SEQUENCE, "attribute is not a SEQUENCE")?;
            let mut a = Reader::new(atv.value);
            let id = a.expect(der::OID, "attribute type is not an OID")?.value;
            let v = a.any()?;
            a.finish("trailing fields in attribute")?;
            out.push((id, v.tag, v.value));
        }
    }
    Ok(out)
}

/// A directory string as text. BMPString is UCS-2; the others are taken as UTF-8
/// (Printable/IA5/Visible are ASCII subsets; T61 is in practice Latin-1 or ASCII).
pub(crate) fn string_value(tag: u8, v: &[u8]) -> String {
    match tag {
        0x1e => {
            let units: Vec<u16> = v
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(v).into_owned(),
    }
}

pub(crate) fn name_text(name: &[u8]) -> String {
    let Ok(attrs) = name_attributes(name) else {
        return "<unreadable name>".to_string();
    };
    let parts: Vec<String> = attrs
        .iter()
        .map(|(id, tag, v)| {
            let key = match *id {
                [0x55, 0x04, 0x03] => "CN".to_string(),
                [0x55, 0x04, 0x06] => "C".to_string(),
                [0x55, 0x04, 0x07] => "L".to_string(),
                [0x55, 0x04, 0x08] => "ST".to_string(),
                [0x55, 0x04, 0x0a] => "O".to_string(),
                [0x55, 0x04, 0x0b] => "OU".to_string(),
                _ => format!("OID{}", hex(id)),
            };
            format!("{key}={}", string_value(*tag, v))
        })
        .collect();
    parts.join(", ")
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIX: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/bb013/certs"
    );

    fn der_of(path: &str) -> Vec<u8> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        CertificateDer::from_pem_file(format!("{FIX}/{path}"))
            .unwrap()
            .to_vec()
    }

    #[test]
    fn reads_013_v1_certificates() {
        let ca = der_of("ca/roots/clientCA.pem");
        let ca = Cert::parse(&ca).unwrap();
        assert_eq!(ca.version, 1);
        assert!(ca.is_self_issued());
        assert_eq!(
            ca.common_name().as_deref(),
            Some("Backup system client root")
        );
        assert_eq!(ca.rsa_bits(), Some(2048));
        assert_eq!(ca.weak_hash(), None);
        assert_eq!(ca.ca, None);

        let leaf = der_of("client/01234567-cert.pem");
        let leaf = Cert::parse(&leaf).unwrap();
        assert_eq!(leaf.version, 1);
        assert_eq!(leaf.serial, [1]);
        assert_eq!(leaf.issuer, ca.subject);
        assert_eq!(leaf.subject_text(), "CN=BACKUP-01234567");
        assert_eq!(leaf.not_after - leaf.not_before, 5000 * 86400);
    }

    #[test]
    fn truncations_and_bit_flips_never_panic() {
        let good = der_of("server/localhost-cert.pem");
        for n in 0..good.len() {
            assert!(Cert::parse(&good[..n]).is_err());
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x55;
            let _ = Cert::parse(&bad).map(|c| (c.common_name(), c.rsa_bits()));
        }
    }
}
