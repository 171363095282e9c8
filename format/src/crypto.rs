//! CBC encryption exactly as 0.13 uses it (`formats.md` §1.3): every operation
//! starts from the stated IV, PKCS#7 padding where the format pads.
//!
//! CBC is written out here over the block ciphers rather than taken from a mode
//! crate so that the key schedules in [`Keys`] are shared by reference (a Blowfish
//! schedule is 4 KiB and slow to build) and so that AES decryption can run the
//! blocks in parallel before the XOR pass.

use aes::Aes256;
use blowfish::Blowfish;
use cipher::array::Array;
use cipher::{BlockCipherDecrypt, BlockCipherEncrypt};
use rand::RngCore;

use crate::error::{Error, Result};
use crate::keys::Keys;

/// Appends `data` PKCS#7-padded to a multiple of `block`.
fn pad(data: &[u8], block: usize) -> Vec<u8> {
    let n = block - data.len() % block;
    let mut v = Vec::with_capacity(data.len() + n);
    v.extend_from_slice(data);
    v.resize(data.len() + n, n as u8);
    v
}

/// Checks and strips PKCS#7 padding in place.
fn unpad(buf: &mut Vec<u8>, block: usize, what: &'static str) -> Result<()> {
    let n = *buf.last().ok_or(Error::Decrypt {
        what,
        detail: "empty ciphertext",
    })? as usize;
    if n == 0
        || n > block
        || n > buf.len()
        || !buf[buf.len() - n..].iter().all(|&b| b as usize == n)
    {
        return Err(Error::Decrypt {
            what,
            detail: "bad padding",
        });
    }
    buf.truncate(buf.len() - n);
    Ok(())
}

fn blowfish_cbc_encrypt_in_place(cipher: &Blowfish, iv: &[u8; 8], buf: &mut [u8]) {
    let (blocks, rest) = Array::slice_as_chunks_mut(buf);
    debug_assert!(rest.is_empty());
    let mut prev = Array::from(*iv);
    for block in blocks {
        for (b, p) in block.iter_mut().zip(prev.iter()) {
            *b ^= p;
        }
        cipher.encrypt_block(block);
        prev = *block;
    }
}

fn blowfish_cbc_decrypt_in_place(cipher: &Blowfish, iv: &[u8; 8], buf: &mut [u8]) {
    let (blocks, rest) = Array::slice_as_chunks_mut(buf);
    debug_assert!(rest.is_empty());
    let mut prev = Array::from(*iv);
    for block in blocks {
        let saved = *block;
        cipher.decrypt_block(block);
        for (b, p) in block.iter_mut().zip(prev.iter()) {
            *b ^= p;
        }
        prev = saved;
    }
}

/// Blowfish-CBC with PKCS#7 padding.
pub fn blowfish_encrypt(cipher: &Blowfish, iv: &[u8; 8], clear: &[u8]) -> Vec<u8> {
    let mut buf = pad(clear, 8);
    blowfish_cbc_encrypt_in_place(cipher, iv, &mut buf);
    buf
}

/// Blowfish-CBC with PKCS#7 padding; `what` names the structure in errors.
pub fn blowfish_decrypt(
    cipher: &Blowfish,
    iv: &[u8; 8],
    ciphertext: &[u8],
    what: &'static str,
) -> Result<Vec<u8>> {
    if ciphertext.is_empty() || ciphertext.len() % 8 != 0 {
        return Err(Error::Decrypt {
            what,
            detail: "ciphertext length is not a positive multiple of 8",
        });
    }
    let mut buf = ciphertext.to_vec();
    blowfish_cbc_decrypt_in_place(cipher, iv, &mut buf);
    unpad(&mut buf, 8, what)?;
    Ok(buf)
}

/// Blowfish-CBC without padding over exactly 24 bytes (block index entries).
pub fn blowfish_encrypt_24(cipher: &Blowfish, iv: &[u8; 8], clear: &[u8; 24]) -> [u8; 24] {
    let mut buf = *clear;
    blowfish_cbc_encrypt_in_place(cipher, iv, &mut buf);
    buf
}

/// Inverse of [`blowfish_encrypt_24`].
pub fn blowfish_decrypt_24(cipher: &Blowfish, iv: &[u8; 8], ciphertext: &[u8; 24]) -> [u8; 24] {
    let mut buf = *ciphertext;
    blowfish_cbc_decrypt_in_place(cipher, iv, &mut buf);
    buf
}

/// AES-256-CBC with PKCS#7 padding, appended to `out`.
pub fn aes_encrypt_into(cipher: &Aes256, iv: &[u8; 16], clear: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let n = 16 - clear.len() % 16;
    out.extend_from_slice(clear);
    out.resize(start + clear.len() + n, n as u8);
    let buf = &mut out[start..];
    let (blocks, rest) = Array::slice_as_chunks_mut(buf);
    debug_assert!(rest.is_empty());
    let mut prev = Array::from(*iv);
    for block in blocks {
        for (b, p) in block.iter_mut().zip(prev.iter()) {
            *b ^= p;
        }
        cipher.encrypt_block(block);
        prev = *block;
    }
}

/// AES-256-CBC with PKCS#7 padding. The blocks are decrypted in one parallel
/// pass, then chained with a XOR pass.
pub fn aes_decrypt_into(
    cipher: &Aes256,
    iv: &[u8; 16],
    ciphertext: &[u8],
    out: &mut Vec<u8>,
    what: &'static str,
) -> Result<()> {
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(Error::Decrypt {
            what,
            detail: "ciphertext length is not a positive multiple of 16",
        });
    }
    out.clear();
    out.extend_from_slice(ciphertext);
    let (blocks, _) = Array::slice_as_chunks_mut(&mut out[..]);
    cipher.decrypt_blocks(blocks);
    for (i, block) in blocks.iter_mut().enumerate() {
        let prev: &[u8] = if i == 0 {
            iv
        } else {
            &ciphertext[(i - 1) * 16..i * 16]
        };
        for (b, p) in block.iter_mut().zip(prev) {
            *b ^= p;
        }
    }
    unpad(out, 16, what)
}

/// Fills `buf` with random bytes from the operating system's generator
/// (0.13 uses OpenSSL's `RAND_bytes` for every random IV).
pub fn random_bytes(buf: &mut [u8]) {
    rand::rng().fill_bytes(buf);
}

/// A random 64-bit value (block index IV bases).
pub fn random_u64() -> u64 {
    rand::rng().next_u64()
}

/// MD5 of `data`.
pub fn md5(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

impl Keys {
    /// The attributes cipher (also the legacy Blowfish file-data cipher).
    pub fn attributes_cipher(&self) -> &Blowfish {
        &self.attributes
    }
    /// The filename cipher.
    pub fn filename_cipher(&self) -> &Blowfish {
        &self.filename
    }
    /// The block index entry cipher.
    pub fn block_index_cipher(&self) -> &Blowfish {
        &self.block_index
    }
    /// The AES-256 file data cipher.
    pub fn file_data_cipher(&self) -> &Aes256 {
        &self.file_data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::hex;

    /// formats.md §2.4: "hello world\n", uncompressed, IV 00..0f.
    #[test]
    fn aes_chunk_vector() {
        let k = Keys::test_vector();
        let iv: [u8; 16] = std::array::from_fn(|i| i as u8);
        let mut out = Vec::new();
        aes_encrypt_into(k.file_data_cipher(), &iv, b"hello world\n", &mut out);
        assert_eq!(hex(&out), "19ba897ae9590d9d8b036cb75372c091");
        let mut back = Vec::new();
        aes_decrypt_into(k.file_data_cipher(), &iv, &out, &mut back, "t").unwrap();
        assert_eq!(back, b"hello world\n");
    }

    #[test]
    fn padding_errors_are_values() {
        let k = Keys::test_vector();
        let iv = [0u8; 16];
        let mut out = Vec::new();
        assert!(aes_decrypt_into(k.file_data_cipher(), &iv, &[0u8; 15], &mut out, "t").is_err());
        assert!(blowfish_decrypt(k.filename_cipher(), &[0; 8], &[], "t").is_err());
        // Random ciphertext almost never has valid padding; never panics either way.
        for n in [8usize, 16, 64] {
            let _ = blowfish_decrypt(k.filename_cipher(), &[0; 8], &vec![0x5a; n], "t");
        }
    }

    #[test]
    fn md5_known() {
        assert_eq!(
            hex(&md5(b"hello world\n")),
            "6f5902ac237024bdd0c176cb93063dc4"
        );
    }
}
