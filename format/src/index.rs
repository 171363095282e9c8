//! The block index (`formats.md` §2.3): a 28-byte header and one 32-byte entry per
//! block. Each entry holds the encoded size of the block's chunk (or, when <= 0, a
//! reference to a block of another file) and 24 bytes of Blowfish-CBC encrypting
//! the block's clear size, weak checksum and MD5 under a per-entry IV.
//!
//! The encrypted parts are kept as bytes: the server moves them between files
//! (combine, reverse diff) without the keys, and only clients decrypt them.

use crate::bytes::Reader;
use crate::crypto;
use crate::error::{Error, Result};
use crate::keys::Keys;

/// "bidx": the block index magic.
pub const INDEX_MAGIC_V1: u32 = 0x6269_6478;
/// "FBlk": the legacy (pre-0.06) block index magic, read only.
pub const INDEX_MAGIC_V0: u32 = 0x4642_6C6B;
/// Bytes in the index header.
pub const INDEX_HEADER_LEN: usize = 28;
/// Bytes in one index entry.
pub const INDEX_ENTRY_LEN: usize = 32;

/// What an entry's encrypted part says about its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockClear {
    /// Clear size of the block in bytes.
    pub size: u32,
    /// Weak rolling checksum (`formats.md` §5.1).
    pub weak: u32,
    /// MD5 of the clear block.
    pub md5: [u8; 16],
}

impl BlockClear {
    /// Describes a clear block.
    pub fn of(block: &[u8]) -> BlockClear {
        BlockClear {
            size: block.len() as u32,
            weak: crate::checksum::weak_checksum(block),
            md5: crypto::md5(block),
        }
    }

    fn to_bytes(self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&self.size.to_be_bytes());
        b[4..8].copy_from_slice(&self.weak.to_be_bytes());
        b[8..24].copy_from_slice(&self.md5);
        b
    }

    fn from_bytes(b: &[u8; 24]) -> BlockClear {
        BlockClear {
            size: u32::from_be_bytes(b[0..4].try_into().expect("4")),
            weak: u32::from_be_bytes(b[4..8].try_into().expect("4")),
            md5: b[8..24].try_into().expect("16"),
        }
    }
}

/// One block index entry as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// `> 0`: the chunk is in this file and is this many bytes long.
    /// `<= 0`: the block is block `-encoded_size` of the other file.
    pub encoded_size: i64,
    /// Blowfish-CBC of the [`BlockClear`], IV = `iv_base + position`.
    pub encrypted: [u8; 24],
}

impl IndexEntry {
    /// The chunk length if the block is stored in this file.
    pub fn stored_len(&self) -> Option<u64> {
        (self.encoded_size > 0).then_some(self.encoded_size as u64)
    }

    /// The other file's block number if this entry is a reference.
    pub fn reference(&self) -> Option<u64> {
        (self.encoded_size <= 0).then(|| self.encoded_size.unsigned_abs())
    }
}

/// A whole block index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockIndex {
    /// Read from a legacy "FBlk" index (IVs possibly in little-endian order).
    pub legacy_v0: bool,
    /// Non-zero iff some entry is a reference (`formats.md` §2.3, §6).
    pub other_file_id: i64,
    /// Base of the per-entry IVs; 0 for symlinks.
    pub iv_base: u64,
    pub entries: Vec<IndexEntry>,
}

/// The 8-byte IV of entry `position` (big-endian `iv_base + position`).
pub fn entry_iv(iv_base: u64, position: u64) -> [u8; 8] {
    iv_base.wrapping_add(position).to_be_bytes()
}

/// Encrypts the clear part of an entry for `position` in an index with `iv_base`.
pub fn encrypt_entry(keys: &Keys, iv_base: u64, position: u64, clear: &BlockClear) -> [u8; 24] {
    crypto::blowfish_encrypt_24(
        keys.block_index_cipher(),
        &entry_iv(iv_base, position),
        &clear.to_bytes(),
    )
}

impl BlockIndex {
    /// Total length of an index with `n` entries.
    pub fn encoded_len(n: usize) -> usize {
        INDEX_HEADER_LEN + INDEX_ENTRY_LEN * n
    }

    /// Reads the 28-byte header: (legacy, other file id, iv base, count).
    pub fn parse_header(buf: &[u8]) -> Result<(bool, i64, u64, i64)> {
        let mut r = Reader::new(buf, "block index header");
        let magic = r.u32_be()?;
        let legacy = match magic {
            INDEX_MAGIC_V1 => false,
            INDEX_MAGIC_V0 => true,
            found => {
                return Err(Error::BadMagic {
                    what: "block index",
                    found,
                });
            }
        };
        let other = r.i64_be()?;
        let iv_base = r.u64_be()?;
        let count = r.i64_be()?;
        if count < 0 {
            return Err(Error::corrupt(
                "block index",
                format!("negative block count {count}"),
            ));
        }
        Ok((legacy, other, iv_base, count))
    }

    /// Reads an index from the front of `buf`; returns it and the bytes used.
    /// The entry count is checked against the bytes present before anything is
    /// allocated, so a hostile count cannot exhaust memory.
    pub fn parse_prefix(buf: &[u8]) -> Result<(BlockIndex, usize)> {
        let (legacy_v0, other_file_id, iv_base, count) = BlockIndex::parse_header(buf)?;
        let avail = (buf.len() - INDEX_HEADER_LEN) / INDEX_ENTRY_LEN;
        if count as u64 > avail as u64 {
            return Err(Error::Truncated {
                what: "block index",
                offset: INDEX_HEADER_LEN,
                need: (count as u64)
                    .saturating_mul(INDEX_ENTRY_LEN as u64)
                    .min(usize::MAX as u64) as usize,
                have: buf.len() - INDEX_HEADER_LEN,
            });
        }
        let count = count as usize;
        let mut r = Reader::new(&buf[INDEX_HEADER_LEN..], "block index entry");
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let encoded_size = r.i64_be()?;
            let encrypted = r.array::<24>()?;
            entries.push(IndexEntry {
                encoded_size,
                encrypted,
            });
        }
        Ok((
            BlockIndex {
                legacy_v0,
                other_file_id,
                iv_base,
                entries,
            },
            BlockIndex::encoded_len(count),
        ))
    }

    /// Reads an index that must fill `buf` exactly.
    pub fn parse(buf: &[u8]) -> Result<BlockIndex> {
        let (index, used) = BlockIndex::parse_prefix(buf)?;
        if used != buf.len() {
            return Err(Error::corrupt(
                "block index",
                format!("{} bytes after the last entry", buf.len() - used),
            ));
        }
        Ok(index)
    }

    /// Appends the index in the current ("bidx") format.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(BlockIndex::encoded_len(self.entries.len()));
        out.extend_from_slice(&INDEX_MAGIC_V1.to_be_bytes());
        out.extend_from_slice(&self.other_file_id.to_be_bytes());
        out.extend_from_slice(&self.iv_base.to_be_bytes());
        out.extend_from_slice(&(self.entries.len() as i64).to_be_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.encoded_size.to_be_bytes());
            out.extend_from_slice(&e.encrypted);
        }
    }

    /// The index as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }

    /// True if any entry refers to another file's block.
    pub fn has_references(&self) -> bool {
        self.entries.iter().any(|e| e.encoded_size <= 0)
    }

    /// Decrypts entry `position` with the big-endian IV (the only order of v1
    /// indexes). For legacy v0 indexes see [`BlockIndex::decrypt_entry_legacy`].
    pub fn decrypt_entry(&self, keys: &Keys, position: usize) -> Result<BlockClear> {
        let e = self
            .entries
            .get(position)
            .ok_or_else(|| Error::corrupt("block index", format!("no entry {position}")))?;
        let iv = entry_iv(self.iv_base, position as u64);
        Ok(BlockClear::from_bytes(&crypto::blowfish_decrypt_24(
            keys.block_index_cipher(),
            &iv,
            &e.encrypted,
        )))
    }

    /// Decrypts entry `position` of a legacy v0 index with the byte-reversed
    /// (little-endian) IV; a v0 reader tries this when the big-endian result does
    /// not match the decoded chunk.
    pub fn decrypt_entry_legacy(&self, keys: &Keys, position: usize) -> Result<BlockClear> {
        let e = self
            .entries
            .get(position)
            .ok_or_else(|| Error::corrupt("block index", format!("no entry {position}")))?;
        let mut iv = entry_iv(self.iv_base, position as u64);
        iv.reverse();
        Ok(BlockClear::from_bytes(&crypto::blowfish_decrypt_24(
            keys.block_index_cipher(),
            &iv,
            &e.encrypted,
        )))
    }

    /// Decrypts every entry.
    pub fn decrypt_all(&self, keys: &Keys) -> Result<Vec<BlockClear>> {
        (0..self.entries.len())
            .map(|i| self.decrypt_entry(keys, i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::hex;

    /// formats.md §2.3 worked example.
    #[test]
    fn entry_vector() {
        let k = Keys::test_vector();
        let clear = BlockClear::of(b"hello world\n");
        assert_eq!(
            hex(&clear.to_bytes()),
            "0000000c1e6604666f5902ac237024bdd0c176cb93063dc4"
        );
        let base = 0x0123456789abcdef;
        assert_eq!(
            hex(&encrypt_entry(&k, base, 0, &clear)),
            "a49eae0f8bdf2b40cc9f9b649080496b8afa17be0b38f005"
        );
        assert_eq!(
            hex(&encrypt_entry(&k, base, 1, &clear)),
            "0a3d4bd2452fd438e1c3152e282524a4e4b099e00802ff5e"
        );
        let idx = BlockIndex {
            legacy_v0: false,
            other_file_id: 0,
            iv_base: base,
            entries: vec![IndexEntry {
                encoded_size: 33,
                encrypted: encrypt_entry(&k, base, 0, &clear),
            }],
        };
        let bytes = idx.to_bytes();
        assert_eq!(BlockIndex::parse(&bytes).unwrap(), idx);
        assert_eq!(idx.decrypt_entry(&k, 0).unwrap(), clear);
    }

    #[test]
    fn hostile_count_is_an_error_not_an_allocation() {
        let mut b = Vec::new();
        b.extend_from_slice(&INDEX_MAGIC_V1.to_be_bytes());
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&0u64.to_be_bytes());
        b.extend_from_slice(&i64::MAX.to_be_bytes());
        assert!(matches!(
            BlockIndex::parse(&b),
            Err(Error::Truncated { .. })
        ));
        b[20..28].copy_from_slice(&(-1i64).to_be_bytes());
        assert!(BlockIndex::parse(&b).is_err());
    }
}
