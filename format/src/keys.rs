//! The client's 1024-byte keys file, split into the keys 0.13 uses
//! (`formats.md` §1.2), with the cipher key schedules computed once.
//!
//! Quirk kept on purpose: legacy Blowfish file data is decrypted with the
//! *attributes* key (bytes 64..120), because that is what 0.13 passes; bytes
//! 128..184 are never used.

use aes::Aes256;
use blowfish::Blowfish;
use cipher::KeyInit;

use crate::error::{Error, Result};

/// Length of a keys file; only the first 1024 bytes are read.
pub const KEYS_FILE_LEN: usize = 1024;

/// The key material of one account, with ready cipher instances.
///
/// Pass it in to every function that needs a key; there is no global key state,
/// so one process can hold several accounts' keys.
#[derive(Clone)]
pub struct Keys {
    raw: Box<[u8; KEYS_FILE_LEN]>,
    pub(crate) filename: Blowfish,
    pub(crate) attributes: Blowfish,
    pub(crate) block_index: Blowfish,
    pub(crate) file_data: Aes256,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material never appears in logs.
        f.write_str("Keys { .. }")
    }
}

impl Keys {
    /// Reads the keys from the contents of a keys file (at least 1024 bytes; any
    /// excess is ignored, as 0.13 does).
    pub fn from_bytes(bytes: &[u8]) -> Result<Keys> {
        if bytes.len() < KEYS_FILE_LEN {
            return Err(Error::KeysFileTooShort(bytes.len()));
        }
        let mut raw = Box::new([0u8; KEYS_FILE_LEN]);
        raw.copy_from_slice(&bytes[..KEYS_FILE_LEN]);
        let bf = |range: std::ops::Range<usize>| {
            Blowfish::new_from_slice(&raw[range]).expect("56-byte Blowfish key is valid")
        };
        Ok(Keys {
            filename: bf(0..56),
            attributes: bf(64..120),
            block_index: bf(192..248),
            file_data: Aes256::new_from_slice(&raw[384..416])
                .expect("32-byte AES-256 key is valid"),
            raw,
        })
    }

    /// Reads a keys file from disc.
    pub fn from_file(path: &std::path::Path) -> Result<Keys> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            what: "reading keys file",
            source,
        })?;
        Keys::from_bytes(&bytes)
    }

    /// The fixed IV used for every filename (bytes 56..64).
    pub fn filename_iv(&self) -> [u8; 8] {
        self.raw[56..64].try_into().expect("8 bytes")
    }

    /// The 128-byte secret mixed into attribute hashes (bytes 256..384).
    pub fn attribute_hash_secret(&self) -> &[u8] {
        &self.raw[256..384]
    }

    /// The whole 1024 bytes, e.g. to write a keys file.
    pub fn raw(&self) -> &[u8; KEYS_FILE_LEN] {
        &self.raw
    }

    /// The test-vector keys of `formats.md` §1.4: byte *i* is `i & 0xff`.
    pub fn test_vector() -> Keys {
        let bytes: Vec<u8> = (0..KEYS_FILE_LEN).map(|i| i as u8).collect();
        Keys::from_bytes(&bytes).expect("1024 bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_file_is_an_error() {
        assert!(matches!(
            Keys::from_bytes(&[0u8; 1023]),
            Err(Error::KeysFileTooShort(1023))
        ));
    }

    #[test]
    fn test_vector_split() {
        let k = Keys::test_vector();
        assert_eq!(
            k.filename_iv(),
            [0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f]
        );
        assert_eq!(&k.attribute_hash_secret()[..4], &[0, 1, 2, 3]);
        assert_eq!(format!("{k:?}"), "Keys { .. }");
    }
}
