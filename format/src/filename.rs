//! Filenames as the store sees them (`formats.md` §3): a little-endian 16-bit
//! header (encoding in bits 0..1, total length in bits 2..15) and a body that is
//! either the clear name or its Blowfish-CBC encryption under a fixed IV.
//!
//! Because the IV is fixed, equal names encrypt to equal bytes; the server compares
//! names only by the bytes of the whole encoded form.

use crate::bytes::Reader;
use crate::crypto;
use crate::error::{Error, Result};
use crate::keys::Keys;

/// Encoding 1: the body is the clear name (only names the server invents).
pub const ENCODING_CLEAR: u8 = 1;
/// Encoding 2: the body is Blowfish-CBC of the name.
pub const ENCODING_BLOWFISH: u8 = 2;
/// Largest encoded form the 14-bit length field can describe.
pub const MAX_ENCODED_LEN: usize = 0x3fff;

/// An encoded filename: header and body, exactly as stored.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EncodedName(Vec<u8>);

impl std::fmt::Debug for EncodedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Encrypted bytes only; clear names never appear in logs.
        write!(f, "EncodedName(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

fn with_header(encoding: u8, body: &[u8]) -> Result<EncodedName> {
    let total = body.len() + 2;
    if total > MAX_ENCODED_LEN {
        return Err(Error::Unencodable {
            what: "filename",
            detail: format!("encoded name of {total} bytes exceeds {MAX_ENCODED_LEN}"),
        });
    }
    let header = ((total as u16) << 2) | encoding as u16;
    let mut v = Vec::with_capacity(total);
    v.extend_from_slice(&header.to_le_bytes());
    v.extend_from_slice(body);
    Ok(EncodedName(v))
}

impl EncodedName {
    /// Encrypts a clear name (any bytes) the way the 0.13 client does.
    pub fn encrypt(keys: &Keys, clear: &[u8]) -> Result<EncodedName> {
        let body = crypto::blowfish_encrypt(keys.filename_cipher(), &keys.filename_iv(), clear);
        with_header(ENCODING_BLOWFISH, &body)
    }

    /// A clear-encoded name, as the store checker invents for `lost+found0`.
    pub fn clear(name: &[u8]) -> Result<EncodedName> {
        with_header(ENCODING_CLEAR, name)
    }

    /// Reads one encoded name from the front of `buf`; returns it and the bytes used.
    pub fn parse(buf: &[u8]) -> Result<(EncodedName, usize)> {
        let mut r = Reader::new(buf, "filename");
        let header = r.u16_le()?;
        let encoding = (header & 3) as u8;
        let total = (header >> 2) as usize;
        if encoding != ENCODING_CLEAR && encoding != ENCODING_BLOWFISH {
            return Err(Error::corrupt(
                "filename",
                format!("unknown encoding {encoding}"),
            ));
        }
        if total < 2 {
            return Err(Error::corrupt(
                "filename",
                format!("length field {total} < 2"),
            ));
        }
        r.take(total - 2)?;
        Ok((EncodedName(buf[..total].to_vec()), total))
    }

    /// Wraps bytes known to be a whole encoded name (checked).
    pub fn from_bytes(bytes: &[u8]) -> Result<EncodedName> {
        let (name, used) = EncodedName::parse(bytes)?;
        if used != bytes.len() {
            return Err(Error::corrupt(
                "filename",
                "length field disagrees with byte count",
            ));
        }
        Ok(name)
    }

    /// The whole encoded form (header + body).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The encoding number (1 clear, 2 Blowfish).
    pub fn encoding(&self) -> u8 {
        self.0[0] & 3
    }

    /// Decodes to the clear name bytes. A clear-encoded name is returned as it is.
    pub fn decrypt(&self, keys: &Keys) -> Result<Vec<u8>> {
        let body = &self.0[2..];
        match self.encoding() {
            ENCODING_CLEAR => Ok(body.to_vec()),
            _ => crypto::blowfish_decrypt(
                keys.filename_cipher(),
                &keys.filename_iv(),
                body,
                "filename",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::hex;

    /// formats.md §3 examples.
    #[test]
    fn spec_vectors() {
        let k = Keys::test_vector();
        for (clear, enc) in [
            (&b"src"[..], "2a004b3a2d420e842dcb"),
            (b"sub", "2a00a4a47f1ce6b87515"),
            (b"", "2a003a43d9c036e4ad01"),
            (b"hello.txt", "4a00e1457017b169022135d057bca97e58a6"),
        ] {
            let e = EncodedName::encrypt(&k, clear).unwrap();
            assert_eq!(hex(e.as_bytes()), enc);
            assert_eq!(e.decrypt(&k).unwrap(), clear);
            let (p, used) = EncodedName::parse(e.as_bytes()).unwrap();
            assert_eq!((p, used), (e.clone(), e.as_bytes().len()));
        }
    }

    #[test]
    fn limits_and_bad_input() {
        let k = Keys::test_vector();
        assert!(EncodedName::encrypt(&k, &vec![b'a'; 16376]).is_err());
        assert!(EncodedName::encrypt(&k, &vec![b'a'; 16375]).is_ok());
        assert!(EncodedName::parse(&[0x28, 0x00]).is_err()); // encoding 0
        assert!(EncodedName::parse(&[0x2a, 0x00, 1, 2]).is_err()); // truncated body
        assert!(EncodedName::parse(&[0x02, 0x00]).is_err()); // length 0
        let c = EncodedName::clear(b"lost+found0").unwrap();
        assert_eq!(c.decrypt(&k).unwrap(), b"lost+found0");
    }
}
