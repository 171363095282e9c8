//! Chunks: one clear block of file data, possibly zlib-compressed, encrypted
//! (`formats.md` §2.4). Owns the chunk header byte, the choice to compress, the
//! zlib stream and the cipher of the file data; the per-block functions here are
//! pure (bytes and keys in, bytes out) so that a pipeline can run them on
//! several blocks in parallel, one [`ChunkCodec`] per worker.
//!
//! Must not know where the block sits in a file or how blocks are sized: the
//! caller passes the index entry's [`BlockClear`] in and stores the one it gets
//! back.
//!
//! # Compression
//!
//! 0.13 writers compress every block of 256 bytes or more, even when zlib makes
//! it bigger; 0.13 readers only look at bit 0 of the header byte. We compress
//! when it pays: a block is stored compressed only if that makes the chunk
//! shorter by at least one cipher block. Trying zlib on incompressible data
//! costs more than encrypting it, so blocks of [`SAMPLE_MIN`] bytes or more
//! are first sampled and their byte entropy estimated (the way btrfs decides);
//! a block that looks random is not offered to zlib. The estimate only ever
//! costs compression ratio: every byte written decodes the same either way.
//! Its blind spot is a block whose bytes are evenly spread but repeat (random
//! data copied twice within one block): that block is stored uncompressed.
//!
//! # Decoding limits
//!
//! A zlib stream can inflate a thousandfold, so output is always bounded: by
//! the index entry's clear size when it is known, else by a caller's limit
//! (the header hint, see [`max_clear_for_hint`]), and never above
//! [`MAX_CLEAR_BLOCK`].

use libdeflater::{CompressionLvl, Compressor, DecompressionError, Decompressor};

pub mod lanes;

use crate::crypto;
use crate::error::{Error, Result};
use crate::index::BlockClear;
use crate::keys::Keys;

/// Header bit 0: the encrypted data is a zlib stream.
pub const CHUNK_COMPRESSED: u8 = 0x01;
/// Encoding 1 (header bits 1..7): Blowfish-CBC, 8-byte IV. Read only.
pub const ENCODING_BLOWFISH: u8 = 1;
/// Encoding 2 (header bits 1..7): AES-256-CBC, 16-byte IV. What we write.
pub const ENCODING_AES: u8 = 2;
/// Largest clear block a reader accepts (0.13 rejects larger ones in quick
/// compare; writers never make blocks over 512 KiB + 127).
pub const MAX_CLEAR_BLOCK: usize = 512 * 1024 + 1024;
/// zlib level used unless a codec is built with another one. Measured on
/// 4 KiB blocks of word text (`benches/codec.rs`, level_sweep), chunk size /
/// clear size and relative speed: level 1 0.2906 (1.00), 2 0.2895 (0.75),
/// 3 0.2868 (0.70), 4 0.2863 (0.64), 5 0.2859 (0.57), 6 0.2857 (0.52). Level 1
/// costs 1.7% more output than 0.13's level 6 at twice the speed, and zlib is
/// most of the cost of encoding text.
pub const DEFAULT_LEVEL: i32 = 1;
/// Blocks at least this long are sampled before zlib is tried; shorter ones
/// (tails and small files) are simply tried.
pub const SAMPLE_MIN: usize = 2048;

/// Largest possible chunk length for a clear block of at most `max_clear`
/// bytes: header, AES IV, the zlib worst case (stored blocks, 5 bytes per
/// 16 KiB plus 6 bytes of frame) rounded up to a cipher block, with room to
/// spare. Streaming decoders refuse index entries claiming more.
pub fn max_chunk_len(max_clear: usize) -> usize {
    max_clear + max_clear / 1024 + 64
}

/// The largest clear block a file with header hint `hint` can hold. 0.13 sizes
/// its decode buffer as `hint + 256 + 32` and fails on a block that reaches it;
/// the result is also capped at [`MAX_CLEAR_BLOCK`] so a hostile hint cannot
/// make a reader allocate without bound. A negative hint allows nothing.
pub fn max_clear_for_hint(hint: i32) -> usize {
    let limit = i64::from(hint) + 256 + 32 - 1;
    limit.clamp(0, MAX_CLEAR_BLOCK as i64) as usize
}

/// What encoding one block produced: the facts its index entry records, and
/// the length of its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedChunk {
    pub clear: BlockClear,
    pub len: usize,
}

/// Reusable state for encoding and decoding chunks: the zlib compressor and
/// decompressor (libdeflate allocates sizable tables for each) and scratch
/// buffers. One per thread; not shared.
pub struct ChunkCodec {
    compressor: Compressor,
    decompressor: Decompressor,
    level: i32,
    /// Decrypted bytes of the block being decoded.
    scratch: Vec<u8>,
    /// `BITS_TABLE[c]` = c * log2(c), for the entropy estimate.
    bits_table: Box<[f32]>,
}

impl std::fmt::Debug for ChunkCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCodec")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Default for ChunkCodec {
    fn default() -> Self {
        ChunkCodec::new()
    }
}

/// Bytes taken from each sampled position.
const SAMPLE_SPAN: usize = 32;
/// Most sampled positions per block (so at most 4 KiB are looked at).
const SAMPLE_MAX_SPANS: usize = 128;
/// How far below 8 bits per byte (after correcting for the sample's bias) a
/// sample's entropy must be for the block to be offered to zlib. Uniform random
/// bytes sit at 8 bits; order-0 coding alone saves about 6% at 7.5 bits. Text is
/// near 4.5, base64 near 6.
const ENTROPY_MARGIN_BITS: f32 = 0.5;

impl ChunkCodec {
    /// A codec compressing at [`DEFAULT_LEVEL`].
    pub fn new() -> ChunkCodec {
        ChunkCodec::with_level(DEFAULT_LEVEL).expect("default level is valid")
    }

    /// A codec compressing at zlib `level` (libdeflate accepts 0..=12; 0 stores).
    pub fn with_level(level: i32) -> Result<ChunkCodec> {
        let lvl = CompressionLvl::new(level).map_err(|_| Error::Unencodable {
            what: "chunk",
            detail: format!("zlib level {level} is outside 0..=12"),
        })?;
        let max_sample = SAMPLE_SPAN * SAMPLE_MAX_SPANS;
        let bits_table = (0..=max_sample)
            .map(|c| {
                if c == 0 {
                    0.0
                } else {
                    c as f32 * (c as f32).log2()
                }
            })
            .collect();
        Ok(ChunkCodec {
            compressor: Compressor::new(lvl),
            decompressor: Decompressor::new(),
            level,
            scratch: Vec::new(),
            bits_table,
        })
    }

    /// The zlib level in use.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Encodes `clear` as one AES chunk with a random IV, appended to `out`.
    /// Returns what the block index entry must say about the block.
    pub fn encode(&mut self, keys: &Keys, clear: &[u8], out: &mut Vec<u8>) -> BlockClear {
        let mut iv = [0u8; 16];
        crypto::random_bytes(&mut iv);
        self.encode_with_iv(keys, clear, &iv, out)
    }

    /// [`ChunkCodec::encode`] with a chosen IV, for test vectors. Real chunks must
    /// use a fresh random IV each.
    pub fn encode_with_iv(
        &mut self,
        keys: &Keys,
        clear: &[u8],
        iv: &[u8; 16],
        out: &mut Vec<u8>,
    ) -> BlockClear {
        let info = BlockClear {
            size: clear.len() as u32,
            weak: lanes::weak_checksum(clear),
            md5: crypto::md5(clear),
        };
        let chain = self.place(clear, iv, out);
        lanes::cbc_encrypt_chains(keys.file_data_cipher(), out, &[chain]);
        info
    }

    /// Encodes several blocks, each with its own random IV, appending their
    /// chunks to `out` back to back in order. Same output as calling
    /// [`ChunkCodec::encode`] on each, but MD5 and encryption run on up to
    /// [`lanes::LANES`] blocks side by side, which is several times faster on
    /// one core.
    pub fn encode_many(
        &mut self,
        keys: &Keys,
        blocks: &[&[u8]],
        out: &mut Vec<u8>,
    ) -> Vec<EncodedChunk> {
        let mut md5s = vec![[0u8; 16]; blocks.len()];
        lanes::md5_many(blocks, &mut md5s);
        let mut chains = Vec::with_capacity(blocks.len());
        let mut result = Vec::with_capacity(blocks.len());
        for (block, md5) in blocks.iter().zip(md5s) {
            let mut iv = [0u8; 16];
            crypto::random_bytes(&mut iv);
            let start = out.len();
            chains.push(self.place(block, &iv, out));
            result.push(EncodedChunk {
                clear: BlockClear {
                    size: block.len() as u32,
                    weak: lanes::weak_checksum(block),
                    md5,
                },
                len: out.len() - start,
            });
        }
        lanes::cbc_encrypt_chains(keys.file_data_cipher(), out, &chains);
        result
    }

    /// Appends a chunk's header byte, `iv` and clear body (compressed if that
    /// pays, PKCS#7-padded) to `out`, ready to be encrypted in place.
    fn place(&mut self, clear: &[u8], iv: &[u8; 16], out: &mut Vec<u8>) -> lanes::Chain {
        let header_at = out.len();
        out.push(ENCODING_AES << 1);
        out.extend_from_slice(iv);
        let body = out.len();
        // PKCS#7 always pads to the next whole block, so the ciphertext of n
        // bytes is (n / 16 + 1) * 16 long: only zlib output under (len / 16) * 16
        // bytes saves anything. libdeflate gives up once its output would not
        // fit, so the limit also cuts the work on data that does not shrink.
        let limit = clear.len() / 16 * 16;
        let mut compressed = false;
        if limit >= 16 && !(clear.len() >= SAMPLE_MIN && self.looks_incompressible(clear)) {
            out.resize(body + limit - 1, 0);
            match self.compressor.zlib_compress(clear, &mut out[body..]) {
                Ok(n) => {
                    out.truncate(body + n);
                    compressed = true;
                }
                Err(_) => out.truncate(body),
            }
        }
        if !compressed {
            out.extend_from_slice(clear);
        }
        out[header_at] |= u8::from(compressed) * CHUNK_COMPRESSED;
        let pad = 16 - (out.len() - body) % 16;
        out.resize(out.len() + pad, pad as u8);
        lanes::Chain {
            start: body,
            len: out.len() - body,
        }
    }

    /// Estimates the byte entropy of a sample of `block` (spans of 32 bytes spread
    /// evenly over it) and says whether it is too high for zlib to gain anything.
    fn looks_incompressible(&self, block: &[u8]) -> bool {
        let spans = (block.len() / 256).clamp(1, SAMPLE_MAX_SPANS);
        let stride = block.len() / spans;
        let mut hist = [0u32; 256];
        let mut n = 0usize;
        for s in 0..spans {
            let start = s * stride;
            let end = (start + SAMPLE_SPAN).min(block.len());
            for &b in &block[start..end] {
                hist[b as usize] += 1;
            }
            n += end - start;
        }
        // H = log2(n) - (1/n) * sum(c * log2(c)).
        let sum: f32 = hist.iter().map(|&c| self.bits_table[c as usize]).sum();
        let n_f = n as f32;
        let entropy = n_f.log2() - sum / n_f;
        // The plug-in estimate from n samples of 256 equally likely values is
        // low by about 255 / (2 n ln 2) bits (0.72 bits for a 256-byte sample).
        let bias = 255.0 / (2.0 * n_f * std::f32::consts::LN_2);
        entropy >= 8.0 - bias - ENTROPY_MARGIN_BITS
    }

    /// Decodes `chunk` and appends its clear bytes to `out`, then checks them
    /// against the index entry `expect` (clear size and MD5). `block` is the
    /// entry's number, for errors. On error `out` is left as it was.
    pub fn decode(
        &mut self,
        keys: &Keys,
        chunk: &[u8],
        expect: &BlockClear,
        block: u64,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let size = expect.size as usize;
        if size > MAX_CLEAR_BLOCK {
            return Err(Error::BlockCheck {
                block,
                detail: format!(
                    "index says {size} clear bytes, over the {MAX_CLEAR_BLOCK}-byte maximum"
                ),
            });
        }
        let start = out.len();
        self.decode_unchecked(keys, chunk, size, block, out)?;
        if let Err(e) = check_block(&out[start..], expect, block) {
            out.truncate(start);
            return Err(e);
        }
        Ok(())
    }

    /// Decodes `chunk` and appends its clear bytes to `out` without checking them
    /// against an index entry; at most `max_clear` bytes are produced (more is an
    /// error). For legacy files whose entry cannot be trusted until the clear
    /// bytes are known (`formats.md` §2.3). On error `out` is left as it was.
    pub fn decode_unchecked(
        &mut self,
        keys: &Keys,
        chunk: &[u8],
        max_clear: usize,
        block: u64,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let max_clear = max_clear.min(MAX_CLEAR_BLOCK);
        let (&header, rest) = chunk.split_first().ok_or(Error::Truncated {
            what: "file data chunk",
            offset: 0,
            need: 1,
            have: 0,
        })?;
        let compressed = header & CHUNK_COMPRESSED != 0;
        match header >> 1 {
            ENCODING_AES => {
                let (iv, ct) = split_iv::<16>(rest)?;
                crypto::aes_decrypt_into(
                    keys.file_data_cipher(),
                    &iv,
                    ct,
                    &mut self.scratch,
                    "file data chunk",
                )?;
            }
            ENCODING_BLOWFISH => {
                // The 0.13 quirk (formats.md §1.2): legacy file data is keyed with
                // the attributes key.
                let (iv, ct) = split_iv::<8>(rest)?;
                self.scratch =
                    crypto::blowfish_decrypt(keys.attributes_cipher(), &iv, ct, "file data chunk")?;
            }
            other => {
                return Err(Error::corrupt(
                    "file data chunk",
                    format!("block {block}: unknown encoding {other} (header byte {header:#04x})"),
                ));
            }
        }
        if !compressed {
            if self.scratch.len() > max_clear {
                return Err(Error::BlockCheck {
                    block,
                    detail: format!(
                        "{} clear bytes, more than the {max_clear} allowed",
                        self.scratch.len()
                    ),
                });
            }
            out.extend_from_slice(&self.scratch);
            return Ok(());
        }
        let start = out.len();
        out.resize(start + max_clear, 0);
        match self
            .decompressor
            .zlib_decompress(&self.scratch, &mut out[start..])
        {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(Error::BlockCheck {
                    block,
                    detail: match e {
                        DecompressionError::InsufficientSpace => {
                            format!("inflates to more than the {max_clear} bytes allowed")
                        }
                        DecompressionError::BadData => "not a valid zlib stream".to_string(),
                    },
                })
            }
        }
    }
}

/// Splits an IV of `N` bytes off the front of `rest`.
fn split_iv<const N: usize>(rest: &[u8]) -> Result<([u8; N], &[u8])> {
    if rest.len() < N {
        return Err(Error::Truncated {
            what: "file data chunk IV",
            offset: 1,
            need: N,
            have: rest.len(),
        });
    }
    let (iv, ct) = rest.split_at(N);
    Ok((iv.try_into().expect("N bytes"), ct))
}

/// Checks decoded clear bytes against their index entry: size, then MD5.
pub fn check_block(clear: &[u8], expect: &BlockClear, block: u64) -> Result<()> {
    if clear.len() != expect.size as usize {
        return Err(Error::BlockCheck {
            block,
            detail: format!("decoded {} bytes, index says {}", clear.len(), expect.size),
        });
    }
    if crypto::md5(clear) != expect.md5 {
        return Err(Error::BlockCheck {
            block,
            detail: "MD5 of the decoded block differs from the index".to_string(),
        });
    }
    Ok(())
}

/// Checks decoded blocks against their index entries, like [`check_block`] on
/// each (`clear[i]` is block `first_block + i`), but hashing up to
/// [`lanes::LANES`] equal-sized blocks at a time. The error names the first
/// block that fails.
pub fn check_blocks(clear: &[&[u8]], expect: &[BlockClear], first_block: u64) -> Result<()> {
    debug_assert_eq!(clear.len(), expect.len());
    for (i, (c, e)) in clear.iter().zip(expect).enumerate() {
        if c.len() != e.size as usize {
            return check_block(c, e, first_block + i as u64);
        }
    }
    let mut md5s = vec![[0u8; 16]; clear.len()];
    lanes::md5_many(clear, &mut md5s);
    match md5s.iter().zip(expect).position(|(m, e)| *m != e.md5) {
        None => Ok(()),
        Some(i) => Err(Error::BlockCheck {
            block: first_block + i as u64,
            detail: "MD5 of the decoded block differs from the index".to_string(),
        }),
    }
}

/// One-shot [`ChunkCodec::encode`] with a fresh codec (convenient, but a loop
/// should keep a codec).
pub fn encode_chunk(keys: &Keys, clear: &[u8], out: &mut Vec<u8>) -> BlockClear {
    ChunkCodec::new().encode(keys, clear, out)
}

/// One-shot [`ChunkCodec::decode`] with a fresh codec.
pub fn decode_chunk(
    keys: &Keys,
    chunk: &[u8],
    expect: &BlockClear,
    block: u64,
    out: &mut Vec<u8>,
) -> Result<()> {
    ChunkCodec::new().decode(keys, chunk, expect, block, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::hex;
    use proptest::prelude::*;

    fn splitmix(seed: u64, n: usize) -> Vec<u8> {
        let mut x = seed;
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            v.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        v.truncate(n);
        v
    }

    fn text(n: usize) -> Vec<u8> {
        let words = [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
        ];
        let r = splitmix(7, n);
        let mut s = Vec::new();
        let mut line = 0;
        while s.len() < n {
            s.extend_from_slice(format!("{line:07}").as_bytes());
            for k in 0..12 {
                s.push(b' ');
                s.extend_from_slice(words[(r[(line * 12 + k) % n.max(1)] & 7) as usize].as_bytes());
            }
            s.push(b'\n');
            line += 1;
        }
        s.truncate(n);
        s
    }

    /// formats.md §2.4: "hello world\n" with IV 00..0f.
    #[test]
    fn spec_vector() {
        let k = Keys::test_vector();
        let iv: [u8; 16] = std::array::from_fn(|i| i as u8);
        let mut out = Vec::new();
        let info = ChunkCodec::new().encode_with_iv(&k, b"hello world\n", &iv, &mut out);
        assert_eq!(
            hex(&out),
            "04000102030405060708090a0b0c0d0e0f19ba897ae9590d9d8b036cb75372c091"
        );
        assert_eq!(info, BlockClear::of(b"hello world\n"));
        let mut back = Vec::new();
        decode_chunk(&k, &out, &info, 0, &mut back).unwrap();
        assert_eq!(back, b"hello world\n");
    }

    /// The real chunk of formats.md §8 (random IV, uncompressed).
    #[test]
    fn real_chunk() {
        let k = Keys::test_vector();
        let chunk: Vec<u8> = (0..66)
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(
                    &"04916c02086fca925c1975e8166eb23f84920f0e34990ae95ed0d6e661c1a1ac9c"[i..i + 2],
                    16,
                )
                .unwrap()
            })
            .collect();
        let mut back = Vec::new();
        decode_chunk(&k, &chunk, &BlockClear::of(b"hello world\n"), 0, &mut back).unwrap();
        assert_eq!(back, b"hello world\n");
    }

    #[test]
    fn compresses_only_when_it_helps() {
        let k = Keys::test_vector();
        let mut c = ChunkCodec::new();
        let t = text(4096);
        let mut out = Vec::new();
        c.encode(&k, &t, &mut out);
        assert_eq!(out[0], 0x05);
        assert!(out.len() < 2048, "text chunk is {} bytes", out.len());

        let r = splitmix(1, 4096);
        out.clear();
        c.encode(&k, &r, &mut out);
        assert_eq!(out[0], 0x04);
        assert_eq!(out.len(), 1 + 16 + 4096 + 16);
        // Below the sampling size, random data is tried and refused by zlib.
        let r = splitmix(2, 1000);
        out.clear();
        c.encode(&k, &r, &mut out);
        assert_eq!(out[0], 0x04);
        // Tiny blocks are never compressed.
        out.clear();
        c.encode(&k, &[0u8; 15], &mut out);
        assert_eq!(out[0], 0x04);
        out.clear();
        c.encode(&k, &[0u8; 300], &mut out);
        assert_eq!(out[0], 0x05);
        assert_eq!(out.len(), 1 + 16 + 16);
    }

    #[test]
    fn entropy_estimate_separates_text_from_random() {
        let c = ChunkCodec::new();
        for n in [SAMPLE_MIN, 4096, 4200, 65536, 524_288] {
            assert!(c.looks_incompressible(&splitmix(n as u64, n)), "random {n}");
            assert!(!c.looks_incompressible(&text(n)), "text {n}");
            assert!(!c.looks_incompressible(&vec![0u8; n]), "zeros {n}");
        }
    }

    /// 0.13 writes 0x05 chunks of any zlib stream, including the default level
    /// 6 of real zlib: flate2 stands in for it.
    #[test]
    fn decodes_foreign_zlib_and_legacy_blowfish() {
        use std::io::Write;
        let k = Keys::test_vector();
        let clear = text(5000);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        z.write_all(&clear).unwrap();
        let z = z.finish().unwrap();
        let iv = [9u8; 16];
        let mut chunk = vec![0x05];
        chunk.extend_from_slice(&iv);
        crypto::aes_encrypt_into(k.file_data_cipher(), &iv, &z, &mut chunk);
        let mut back = Vec::new();
        let info = BlockClear::of(&clear);
        decode_chunk(&k, &chunk, &info, 0, &mut back).unwrap();
        assert_eq!(back, clear);

        // Encoding 1: Blowfish with the attributes key and an 8-byte IV.
        for compressed in [false, true] {
            let iv8 = [3u8; 8];
            let body = if compressed { &z[..] } else { &clear[..] };
            let mut chunk = vec![0x02 | u8::from(compressed)];
            chunk.extend_from_slice(&iv8);
            chunk.extend_from_slice(&crypto::blowfish_encrypt(k.attributes_cipher(), &iv8, body));
            let mut back = Vec::new();
            decode_chunk(&k, &chunk, &info, 0, &mut back).unwrap();
            assert_eq!(back, clear);
        }
    }

    #[test]
    fn bad_chunks_are_errors() {
        let k = Keys::test_vector();
        let mut c = ChunkCodec::new();
        let clear = text(4096);
        let mut chunk = Vec::new();
        let info = c.encode(&k, &clear, &mut chunk);
        let mut out = vec![1, 2, 3];
        // Wrong keys.
        let other = Keys::from_bytes(&[7u8; 1024]).unwrap();
        assert!(c.decode(&other, &chunk, &info, 0, &mut out).is_err());
        // Every flipped byte.
        for i in 0..chunk.len() {
            let mut bad = chunk.clone();
            bad[i] ^= 0x40;
            assert!(c.decode(&k, &bad, &info, 3, &mut out).is_err(), "flip {i}");
        }
        // Every truncation.
        for n in 0..chunk.len() {
            assert!(
                c.decode(&k, &chunk[..n], &info, 0, &mut out).is_err(),
                "len {n}"
            );
        }
        // Wrong expectations.
        let mut wrong = info;
        wrong.size -= 1;
        assert!(matches!(
            c.decode(&k, &chunk, &wrong, 5, &mut out),
            Err(Error::BlockCheck { block: 5, .. })
        ));
        let mut wrong = info;
        wrong.md5[0] ^= 1;
        assert!(matches!(
            c.decode(&k, &chunk, &wrong, 5, &mut out),
            Err(Error::BlockCheck { block: 5, .. })
        ));
        wrong.size = u32::MAX;
        assert!(c.decode(&k, &chunk, &wrong, 5, &mut out).is_err());
        assert_eq!(out, [1, 2, 3]);
    }

    /// A zlib bomb cannot make the decoder allocate beyond its limit.
    #[test]
    fn bomb_is_bounded() {
        use std::io::Write;
        let k = Keys::test_vector();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(9));
        z.write_all(&vec![0u8; 64 << 20]).unwrap();
        let z = z.finish().unwrap();
        let iv = [0u8; 16];
        let mut chunk = vec![0x05];
        chunk.extend_from_slice(&iv);
        crypto::aes_encrypt_into(k.file_data_cipher(), &iv, &z, &mut chunk);
        let mut c = ChunkCodec::new();
        let mut out = Vec::new();
        let r = c.decode_unchecked(&k, &chunk, usize::MAX, 0, &mut out);
        assert!(matches!(r, Err(Error::BlockCheck { .. })));
        assert!(out.capacity() <= MAX_CLEAR_BLOCK * 2);
        let info = BlockClear {
            size: 4096,
            weak: 0,
            md5: [0; 16],
        };
        assert!(c.decode(&k, &chunk, &info, 0, &mut out).is_err());
    }

    #[test]
    fn hint_limits() {
        assert_eq!(max_clear_for_hint(4224), 4224 + 287);
        assert_eq!(max_clear_for_hint(i32::MAX), MAX_CLEAR_BLOCK);
        assert_eq!(max_clear_for_hint(-1000), 0);
        assert!(max_chunk_len(MAX_CLEAR_BLOCK) > 1 + 16 + MAX_CLEAR_BLOCK + 16 + 200);
    }

    #[test]
    fn encode_many_matches_one_by_one() {
        let k = Keys::test_vector();
        let mut c = ChunkCodec::new();
        let t = text(40_000);
        let r = splitmix(9, 40_000);
        let mut blocks: Vec<&[u8]> = t.chunks(4096).collect();
        blocks.extend(r.chunks(4096));
        blocks.push(&[]);
        blocks.push(b"short");
        let mut out = Vec::new();
        let done = c.encode_many(&k, &blocks, &mut out);
        let mut pos = 0;
        let mut clears = Vec::new();
        let mut expects = Vec::new();
        for (b, e) in blocks.iter().zip(&done) {
            assert_eq!(e.clear, BlockClear::of(b));
            let chunk = &out[pos..pos + e.len];
            pos += e.len;
            let mut one = Vec::new();
            c.encode(&k, b, &mut one);
            assert_eq!((chunk[0], chunk.len()), (one[0], one.len()));
            let mut back = Vec::new();
            c.decode(&k, chunk, &e.clear, 0, &mut back).unwrap();
            assert_eq!(back, *b);
            clears.push(*b);
            expects.push(e.clear);
        }
        assert_eq!(pos, out.len());
        check_blocks(&clears, &expects, 10).unwrap();
        expects[12].md5[3] ^= 1;
        assert!(matches!(
            check_blocks(&clears, &expects, 10),
            Err(Error::BlockCheck { block: 22, .. })
        ));
        expects[3].size += 1;
        assert!(matches!(
            check_blocks(&clears, &expects, 10),
            Err(Error::BlockCheck { block: 13, .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..9000), zeros in 0usize..9000, level in 0i32..7) {
            let k = Keys::test_vector();
            let mut c = ChunkCodec::with_level(level).unwrap();
            let mut block = data;
            block.extend(std::iter::repeat_n(b'z', zeros));
            let mut chunk = Vec::new();
            let info = c.encode(&k, &block, &mut chunk);
            prop_assert_eq!(info, BlockClear::of(&block));
            prop_assert!(chunk.len() <= 1 + 16 + block.len() / 16 * 16 + 16);
            prop_assert!(chunk.len() <= max_chunk_len(block.len()));
            let mut back = Vec::new();
            c.decode(&k, &chunk, &info, 0, &mut back).unwrap();
            prop_assert_eq!(back, block);
        }
    }
}
