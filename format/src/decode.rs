//! Decoding a complete encoded file (`formats.md` §2.6, §2.7, §4.6) into its
//! header, embedded name, encrypted attribute blob and clear content, checking
//! every block's clear size and MD5 against the block index.
//!
//! Owns the order of work: index entries decrypted per block, chunks decoded in
//! index order, the header hint turned into a bound on every block, and the
//! legacy v0 retry with the byte-reversed entry IV (§2.3). [`decode_file`]
//! takes a whole file in either order; [`StreamDecoder`] reads stream order
//! (what GetFile sends: index first) from a `Read`, a few chunks at a time.
//! Blocks are checked eight at a time so their MD5s are computed side by side
//! (`chunk::lanes`); nothing unchecked is ever handed out.
//!
//! Must not know how attributes decrypt or what they say. In particular the rule
//! "a symlink has no data; attributes saying symlink with N != 0 is corrupt"
//! (§2.6) is the caller's to check, with the attributes module, on the raw blob
//! exposed here. Patches (files whose entries refer to another file) are not
//! decoded here: the server combines them first (§6.4), so meeting one is an
//! error.

use std::borrow::Borrow;
use std::io::{self, Read};

use crate::chunk::lanes::LANES;
use crate::chunk::{ChunkCodec, check_block, check_blocks, max_chunk_len, max_clear_for_hint};
use crate::error::{Error, Result};
use crate::filename::EncodedName;
use crate::index::{BlockClear, BlockIndex, INDEX_ENTRY_LEN, INDEX_HEADER_LEN, IndexEntry};
use crate::keys::Keys;
use crate::layout::{FILE_HEADER_LEN, FileHeader, FileLayout, Order, detect_order, to_file_order};

/// Largest attribute blob [`StreamDecoder`] accepts. 0.13 sets no limit, but
/// real attributes are a few hundred bytes plus the extended attributes, which
/// Linux filesystems cap at 64 KiB per value and (except XFS) a block or so per
/// file; a stream claiming more is treated as corrupt rather than buffered.
pub const MAX_STREAM_ATTRIBUTES: usize = 16 << 20;

/// Everything a complete encoded file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedFile {
    pub header: FileHeader,
    /// The embedded name as uploaded (not updated by renames).
    pub name: EncodedName,
    /// The encrypted attribute blob, as embedded (without the MemBlock length).
    pub attributes: Vec<u8>,
    /// The clear content, every block checked.
    pub content: Vec<u8>,
}

fn incomplete(other_file_id: i64) -> Error {
    Error::corrupt(
        "encoded file",
        format!(
            "refers to blocks of object {other_file_id:#x}: a patch, which must be combined with \
             its newer version before it can be decoded"
        ),
    )
}

/// What decoding one file's blocks needs besides the keys and the blocks.
struct BlockDecoder {
    codec: ChunkCodec,
    /// The bound the header hint sets on every clear block.
    max_clear: usize,
}

impl BlockDecoder {
    /// Decodes block `i` of `index` (its chunk is `chunk`, its decrypted entry
    /// `expect`) and appends its clear bytes to `out`. Returns the entry the
    /// block must still be checked against (size and MD5; see [`verify`], which
    /// hashes several blocks at once), or `None` when it has been checked
    /// already: a legacy v0 entry may have been encrypted with either IV byte
    /// order, which only the decoded block tells (§2.3), so it is checked here.
    fn decode_deferred(
        &mut self,
        keys: &Keys,
        index: &BlockIndex,
        i: usize,
        expect: BlockClear,
        chunk: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<BlockClear>> {
        let start = out.len();
        if !index.legacy_v0 {
            if expect.size as usize > self.max_clear {
                return Err(Error::BlockCheck {
                    block: i as u64,
                    detail: format!(
                        "index says {} clear bytes; the header hint allows at most {}",
                        expect.size, self.max_clear
                    ),
                });
            }
            // Bounded by the entry's size: a stream inflating to more stops there.
            self.codec
                .decode_unchecked(keys, chunk, expect.size as usize, i as u64, out)?;
            return Ok(Some(expect));
        }
        self.codec
            .decode_unchecked(keys, chunk, self.max_clear, i as u64, out)?;
        if check_block(&out[start..], &expect, i as u64).is_ok() {
            return Ok(None);
        }
        let reversed = index.decrypt_entry_legacy(keys, i)?;
        check_block(&out[start..], &reversed, i as u64)?;
        Ok(None)
    }
}

/// Checks the blocks decoded by [`BlockDecoder::decode_deferred`] into `clear`: block
/// `first + k` ends at `ends[k]` and must match `expects[k]` (legacy blocks,
/// already checked, have `None`).
fn verify(
    clear: &[u8],
    ends: &[usize],
    expects: &[Option<BlockClear>],
    first: usize,
) -> Result<()> {
    let mut blocks = Vec::with_capacity(ends.len());
    let mut wanted = Vec::with_capacity(ends.len());
    let mut start = 0;
    for (&end, e) in ends.iter().zip(expects) {
        if let Some(e) = e {
            blocks.push(&clear[start..end]);
            wanted.push(*e);
        }
        start = end;
    }
    if wanted.len() == ends.len() {
        return check_blocks(&blocks, &wanted, first as u64);
    }
    // A file is legacy or not, so batches are never mixed; keep the block
    // numbers right anyway.
    let mut start = 0;
    for (j, (&end, e)) in ends.iter().zip(expects).enumerate() {
        if let Some(e) = e {
            check_block(&clear[start..end], e, (first + j) as u64)?;
        }
        start = end;
    }
    Ok(())
}

/// Decodes a complete encoded file in file or stream order.
pub fn decode_file(keys: &Keys, encoded: &[u8]) -> Result<DecodedFile> {
    let reordered;
    let file = match detect_order(encoded)? {
        Order::File => encoded,
        Order::Stream => {
            reordered = to_file_order(encoded)?;
            &reordered[..]
        }
    };
    let layout = FileLayout::parse(file)?;
    if !layout.is_complete() {
        return Err(incomplete(layout.index.other_file_id));
    }
    let mut blocks = BlockDecoder {
        codec: ChunkCodec::new(),
        max_clear: max_clear_for_hint(layout.header.max_block_clear_size),
    };
    let clears = layout.index.decrypt_all(keys)?;
    // Reserve what the index claims, within reason: text inflates about
    // fourfold, and a hostile index must not reserve much more than its chunks
    // can deliver; a file beyond the cap grows the vector as it goes.
    let claimed: u64 = clears.iter().map(|c| u64::from(c.size)).sum();
    let data_len = (layout.index_start - layout.data_start) as u64;
    let mut content = Vec::with_capacity(claimed.min(data_len.saturating_mul(16)) as usize);
    let n = clears.len();
    let mut ends = Vec::with_capacity(LANES);
    let mut expects = Vec::with_capacity(LANES);
    let mut first = 0;
    while first < n {
        let batch_start = content.len();
        ends.clear();
        expects.clear();
        for (i, &expect) in clears.iter().enumerate().skip(first).take(LANES) {
            let chunk = layout
                .chunk(i)
                .ok_or_else(|| incomplete(layout.index.other_file_id))?;
            let e = blocks.decode_deferred(keys, &layout.index, i, expect, chunk, &mut content)?;
            ends.push(content.len() - batch_start);
            expects.push(e);
        }
        verify(&content[batch_start..], &ends, &expects, first)?;
        first += ends.len();
    }
    Ok(DecodedFile {
        header: layout.header,
        name: layout.name.clone(),
        attributes: layout.attributes.to_vec(),
        content,
    })
}

/// Decodes a stream-order encoded file (index first, as GetFile sends it) from
/// a `Read`, holding one chunk and a batch of up to eight clear blocks at a
/// time (at most about 4 MiB; eight so that their MD5s are computed side by
/// side), plus the index, 32 bytes per block.
///
/// The header, name and attributes are read by [`StreamDecoder::new`]; the
/// clear content then comes from [`StreamDecoder::next_block`] or `Read`.
/// After the last block the source must be at its end. Format errors come out
/// of `read` as `io::Error`s of kind `InvalidData` wrapping the [`Error`].
pub struct StreamDecoder<K, R> {
    keys: K,
    source: R,
    /// Bytes consumed from `source`, for error offsets.
    consumed: u64,
    header: FileHeader,
    name: EncodedName,
    attributes: Vec<u8>,
    index: BlockIndex,
    max_chunk: usize,
    next: usize,
    at_end: bool,
    blocks: BlockDecoder,
    chunk: Vec<u8>,
    /// Clear bytes of the current batch of up to LANES blocks.
    batch: Vec<u8>,
    /// End of each block of the batch in `batch`.
    ends: Vec<usize>,
    /// Blocks of the batch handed out so far.
    served: usize,
    /// What `read` has not yet copied out of the current block.
    unread: std::ops::Range<usize>,
    /// An error ended decoding; the source's position is no longer known.
    failed: bool,
}

impl<K, R> std::fmt::Debug for StreamDecoder<K, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDecoder")
            .field("header", &self.header)
            .field("next_block", &self.next)
            .finish_non_exhaustive()
    }
}

impl<K: Borrow<Keys>, R: Read> StreamDecoder<K, R> {
    /// Reads the index, header, name and attributes from `source`.
    pub fn new(keys: K, mut source: R) -> Result<Self> {
        let mut consumed = 0u64;
        let mut head = [0u8; INDEX_HEADER_LEN];
        read_full(&mut source, &mut head, &mut consumed, "block index header")?;
        let (legacy_v0, other_file_id, iv_base, count) = BlockIndex::parse_header(&head)?;
        if other_file_id != 0 {
            return Err(incomplete(other_file_id));
        }
        // The count is not trusted for an allocation: entries are kept as they
        // arrive, so memory grows only with bytes actually sent.
        let mut entries = Vec::with_capacity((count as u64).min(1 << 12) as usize);
        let mut e = [0u8; INDEX_ENTRY_LEN];
        for _ in 0..count {
            read_full(&mut source, &mut e, &mut consumed, "block index entry")?;
            let entry = IndexEntry {
                encoded_size: i64::from_be_bytes(e[..8].try_into().expect("8 bytes")),
                encrypted: e[8..].try_into().expect("24 bytes"),
            };
            if entry.encoded_size <= 0 {
                return Err(incomplete(other_file_id));
            }
            entries.push(entry);
        }
        let index = BlockIndex {
            legacy_v0,
            other_file_id,
            iv_base,
            entries,
        };

        let mut h = [0u8; FILE_HEADER_LEN];
        read_full(&mut source, &mut h, &mut consumed, "file header")?;
        let header = FileHeader::parse(&h)?;
        if header.legacy_v0 != legacy_v0 {
            return Err(Error::corrupt(
                "encoded file",
                "header and index versions differ",
            ));
        }
        if header.num_blocks != count {
            return Err(Error::corrupt(
                "encoded file",
                "header and index block counts differ",
            ));
        }

        let mut name = [0u8; 2];
        read_full(&mut source, &mut name, &mut consumed, "filename")?;
        let total = (u16::from_le_bytes(name) >> 2) as usize;
        let mut name = name.to_vec();
        name.resize(total.max(2), 0);
        read_full(&mut source, &mut name[2..], &mut consumed, "filename")?;
        let name = EncodedName::from_bytes(&name)?;

        let mut len = [0u8; 4];
        read_full(&mut source, &mut len, &mut consumed, "file attributes")?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_STREAM_ATTRIBUTES {
            return Err(Error::corrupt(
                "file attributes",
                format!("{len} bytes, over the {MAX_STREAM_ATTRIBUTES}-byte limit"),
            ));
        }
        // Grown as the bytes arrive, so a false length costs only what is sent.
        let mut attributes = Vec::with_capacity(len.min(64 << 10));
        let got = (&mut source)
            .take(len as u64)
            .read_to_end(&mut attributes)
            .map_err(|source| Error::Io {
                what: "reading an encoded file",
                source,
            })?;
        if got != len {
            return Err(Error::Truncated {
                what: "file attributes",
                offset: consumed as usize,
                need: len,
                have: got,
            });
        }
        consumed += len as u64;

        let max_clear = max_clear_for_hint(header.max_block_clear_size);
        Ok(StreamDecoder {
            keys,
            source,
            consumed,
            header,
            name,
            attributes,
            index,
            max_chunk: max_chunk_len(max_clear),
            next: 0,
            at_end: false,
            blocks: BlockDecoder {
                codec: ChunkCodec::new(),
                max_clear,
            },
            chunk: Vec::new(),
            batch: Vec::new(),
            ends: Vec::new(),
            served: 0,
            unread: 0..0,
            failed: false,
        })
    }

    /// The file header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// The embedded encoded name.
    pub fn name(&self) -> &EncodedName {
        &self.name
    }

    /// The encrypted attribute blob (without the MemBlock length). The caller
    /// decodes it, and must treat "symlink attributes with blocks" as corrupt.
    pub fn attributes(&self) -> &[u8] {
        &self.attributes
    }

    /// The block index.
    pub fn index(&self) -> &BlockIndex {
        &self.index
    }

    /// Decodes the next block and returns its clear bytes (checked against the
    /// index), or `None` after the last block once the source has ended. Use
    /// this or `Read`, not both: a block returned here is not read again.
    pub fn next_block(&mut self) -> Result<Option<&[u8]>> {
        Ok(self.next_range()?.map(|r| &self.batch[r]))
    }

    /// The range of the next block in `batch`, decoding a new batch if needed.
    fn next_range(&mut self) -> Result<Option<std::ops::Range<usize>>> {
        if self.served == self.ends.len() {
            if self.failed {
                return Err(Error::corrupt("encoded file", "decoding failed earlier"));
            }
            match self.fill_batch() {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => {
                    self.failed = true;
                    self.ends.clear();
                    self.served = 0;
                    return Err(e);
                }
            }
        }
        let start = if self.served == 0 {
            0
        } else {
            self.ends[self.served - 1]
        };
        let end = self.ends[self.served];
        self.served += 1;
        Ok(Some(start..end))
    }

    /// Reads and decodes up to LANES chunks and checks them together; false
    /// when there are no blocks left (and the source has ended).
    fn fill_batch(&mut self) -> Result<bool> {
        let n = self.index.entries.len();
        if self.next == n {
            if !self.at_end {
                self.expect_end()?;
                self.at_end = true;
            }
            return Ok(false);
        }
        self.batch.clear();
        self.ends.clear();
        self.served = 0;
        let first = self.next;
        let mut expects = Vec::with_capacity(LANES);
        for i in first..(first + LANES).min(n) {
            // new() refused entries <= 0.
            let len = self.index.entries[i].encoded_size as u64;
            if len > self.max_chunk as u64 {
                return Err(Error::corrupt(
                    "encoded file",
                    format!(
                        "block {i}: chunk of {len} bytes, over the {} the header hint allows",
                        self.max_chunk
                    ),
                ));
            }
            self.chunk.resize(len as usize, 0);
            read_full(
                &mut self.source,
                &mut self.chunk,
                &mut self.consumed,
                "file data chunk",
            )?;
            let expect = self.index.decrypt_entry(self.keys.borrow(), i)?;
            let e = self.blocks.decode_deferred(
                self.keys.borrow(),
                &self.index,
                i,
                expect,
                &self.chunk,
                &mut self.batch,
            )?;
            self.ends.push(self.batch.len());
            expects.push(e);
        }
        // A batch that fails is not handed out, in part or whole (the caller
        // clears it).
        verify(&self.batch, &self.ends, &expects, first)?;
        self.next = first + self.ends.len();
        Ok(true)
    }

    /// Checks that nothing follows the last chunk.
    fn expect_end(&mut self) -> Result<()> {
        let mut byte = [0u8; 1];
        loop {
            match self.source.read(&mut byte) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    return Err(Error::corrupt(
                        "encoded file",
                        format!("bytes after the last chunk at offset {}", self.consumed),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Io {
                        what: "reading an encoded file",
                        source,
                    });
                }
            }
        }
    }
}

impl<K: Borrow<Keys>, R: Read> Read for StreamDecoder<K, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.unread.is_empty() {
            match self.next_range() {
                Ok(Some(r)) => self.unread = r,
                Ok(None) => return Ok(0),
                Err(Error::Io { source, .. }) => return Err(source),
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
        let n = buf.len().min(self.unread.len());
        buf[..n].copy_from_slice(&self.batch[self.unread.start..self.unread.start + n]);
        self.unread.start += n;
        Ok(n)
    }
}

/// Fills `buf` from `source`; an early end is [`Error::Truncated`].
fn read_full<R: Read>(
    source: &mut R,
    buf: &mut [u8],
    consumed: &mut u64,
    what: &'static str,
) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(Error::Truncated {
                    what,
                    offset: (*consumed + filled as u64) as usize,
                    need: buf.len() - filled,
                    have: 0,
                });
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Io {
                    what: "reading an encoded file",
                    source,
                });
            }
        }
    }
    *consumed += filled as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto;
    use crate::encode::{FileEncoder, FileMeta, encode_file};
    use crate::index::{BlockClear, encrypt_entry};
    use crate::layout::{FileLayout, to_stream_order};
    use crate::recipe::{Instruction, Recipe};
    use crate::test_util::hello_object;
    use proptest::prelude::*;

    fn stream_decode(k: &Keys, stream: &[u8]) -> Result<DecodedFile> {
        let mut d = StreamDecoder::new(k, stream)?;
        let mut content = Vec::new();
        while let Some(b) = d.next_block()? {
            content.extend_from_slice(b);
        }
        Ok(DecodedFile {
            header: d.header,
            name: d.name,
            attributes: d.attributes,
            content,
        })
    }

    #[test]
    fn real_object() {
        let k = Keys::test_vector();
        let f = hello_object();
        let d = decode_file(&k, &f).unwrap();
        assert_eq!(d.content, b"hello world\n");
        assert_eq!(d.name.decrypt(&k).unwrap(), b"hello.txt");
        assert_eq!(d.attributes.len(), 97);
        assert_eq!(d.header.mtime, 0x0005_9b1f_7228_d580);
        let s = to_stream_order(&FileLayout::parse(&f).unwrap());
        assert_eq!(decode_file(&k, &s).unwrap(), d);
        assert_eq!(stream_decode(&k, &s).unwrap(), d);
        let mut via_read = Vec::new();
        StreamDecoder::new(&k, &s[..])
            .unwrap()
            .read_to_end(&mut via_read)
            .unwrap();
        assert_eq!(via_read, b"hello world\n");
    }

    #[test]
    fn wrong_keys_and_flipped_bytes() {
        let k = Keys::test_vector();
        let f = hello_object();
        let other = Keys::from_bytes(&[0x33; 1024]).unwrap();
        assert!(decode_file(&other, &f).is_err());
        // Every byte of the chunk and of the index entry's encrypted part.
        let l = FileLayout::parse(&f).unwrap();
        let chunk = l.chunks[0].clone().unwrap();
        for i in chunk.chain(f.len() - 24..f.len()) {
            let mut g = f.clone();
            g[i] ^= 0x10;
            assert!(decode_file(&k, &g).is_err(), "flip at {i}");
        }
        // Trailing bytes after a stream are refused.
        let mut s = to_stream_order(&l);
        s.push(0);
        assert!(stream_decode(&k, &s).is_err());
    }

    /// Blocks before a bad one are handed out; the bad one and everything
    /// after it are errors.
    #[test]
    fn stream_stops_at_the_bad_block() {
        let k = Keys::test_vector();
        let m = sample_meta(&k, 1, false);
        let data = content(0, 20 * 4096, 5);
        let f = encode_file(&k, &m, &Recipe::whole(data.len() as u64), &data).unwrap();
        let l = FileLayout::parse(&f).unwrap();
        let mut g = f.clone();
        let bad = l.chunks[9].clone().unwrap();
        g[bad.start + 40] ^= 1;
        let s = to_stream_order(&FileLayout::parse(&g).unwrap());
        let mut d = StreamDecoder::new(&k, &s[..]).unwrap();
        for b in 0..8 {
            assert_eq!(
                d.next_block().unwrap().unwrap(),
                &data[b * 4096..(b + 1) * 4096]
            );
        }
        assert!(matches!(
            d.next_block(),
            Err(Error::BlockCheck { block: 9, .. })
        ));
        assert!(d.next_block().is_err());
        assert!(matches!(
            decode_file(&k, &g),
            Err(Error::BlockCheck { block: 9, .. })
        ));
    }

    #[test]
    fn patches_are_refused() {
        let k = Keys::test_vector();
        let m = FileMeta {
            container_id: 3,
            mtime: 1,
            name: EncodedName::encrypt(&k, b"p").unwrap(),
            attributes: Vec::new(),
            symlink: false,
        };
        let recipe = Recipe {
            other_file_id: 9,
            instructions: vec![
                Instruction::New { offset: 0, len: 10 },
                Instruction::Old {
                    index: 0,
                    clear: BlockClear::of(b"abc"),
                },
            ],
        };
        let f = encode_file(&k, &m, &recipe, &[5u8; 10]).unwrap();
        assert!(decode_file(&k, &f).is_err());
        let s = to_stream_order(&FileLayout::parse(&f).unwrap());
        assert!(StreamDecoder::new(&k, &s[..]).is_err());
    }

    /// The hint bounds every block: an entry claiming more than hint + 287
    /// bytes is refused even when the chunk holds that many.
    #[test]
    fn hint_bounds_blocks() {
        let k = Keys::test_vector();
        let m = FileMeta {
            container_id: 3,
            mtime: 1,
            name: EncodedName::encrypt(&k, b"h").unwrap(),
            attributes: Vec::new(),
            symlink: false,
        };
        let f = encode_file(&k, &m, &Recipe::whole(4200), &[b'a'; 4200]).unwrap();
        assert_eq!(decode_file(&k, &f).unwrap().content.len(), 4200);
        let mut g = f.clone();
        // Hint 4328 -> 3900: the 4200-byte block is over 3900 + 287.
        g[28..32].copy_from_slice(&3900i32.to_be_bytes());
        assert!(matches!(decode_file(&k, &g), Err(Error::BlockCheck { .. })));
        let s = to_stream_order(&FileLayout::parse(&g).unwrap());
        assert!(stream_decode(&k, &s).is_err());
    }

    /// A legacy v0 file ("FILE"/"FBlk") whose entries were encrypted with the
    /// little-endian IV, and Blowfish chunks: decoded through the retry.
    #[test]
    fn legacy_v0() {
        let k = Keys::test_vector();
        let blocks: [&[u8]; 2] = [b"legacy block one", b"and the second, longer, legacy block"];
        let iv_base = 0x1122_3344_5566_7788u64;
        let mut data = Vec::new();
        let mut entries = Vec::new();
        for (i, b) in blocks.iter().enumerate() {
            let iv8 = [i as u8; 8];
            let mut chunk = vec![0x02];
            chunk.extend_from_slice(&iv8);
            chunk.extend_from_slice(&crypto::blowfish_encrypt(k.attributes_cipher(), &iv8, b));
            // Entry 0 with the byte-reversed IV, entry 1 with the big-endian one.
            let enc = if i == 0 {
                let iv = u64::from_be_bytes(crate::index::entry_iv(iv_base, 0)).swap_bytes();
                encrypt_entry(&k, iv, 0, &BlockClear::of(b))
            } else {
                encrypt_entry(&k, iv_base, 1, &BlockClear::of(b))
            };
            entries.push(IndexEntry {
                encoded_size: chunk.len() as i64,
                encrypted: enc,
            });
            data.extend_from_slice(&chunk);
        }
        let mut f = Vec::new();
        f.extend_from_slice(&crate::layout::FILE_MAGIC_V0.to_be_bytes());
        f.extend_from_slice(&2i64.to_be_bytes());
        f.extend_from_slice(&7i64.to_be_bytes());
        f.extend_from_slice(&99i64.to_be_bytes());
        f.extend_from_slice(&4224i32.to_be_bytes());
        f.extend_from_slice(&0i32.to_be_bytes());
        f.extend_from_slice(EncodedName::encrypt(&k, b"old").unwrap().as_bytes());
        f.extend_from_slice(&0u32.to_be_bytes());
        f.extend_from_slice(&data);
        f.extend_from_slice(&crate::index::INDEX_MAGIC_V0.to_be_bytes());
        f.extend_from_slice(&0i64.to_be_bytes());
        f.extend_from_slice(&iv_base.to_be_bytes());
        f.extend_from_slice(&2i64.to_be_bytes());
        for e in &entries {
            f.extend_from_slice(&e.encoded_size.to_be_bytes());
            f.extend_from_slice(&e.encrypted);
        }
        let d = decode_file(&k, &f).unwrap();
        assert!(d.header.legacy_v0);
        assert_eq!(d.content, [blocks[0], blocks[1]].concat());
        let s = to_stream_order(&FileLayout::parse(&f).unwrap());
        assert_eq!(stream_decode(&k, &s).unwrap(), d);
        // A block matching neither IV order is still an error.
        let mut g = f.clone();
        let at = g.len() - 1;
        g[at] ^= 1;
        assert!(decode_file(&k, &g).is_err());
    }

    #[test]
    fn hostile_stream_headers() {
        let k = Keys::test_vector();
        // A huge count with no entries behind it: an error, not an allocation.
        let mut s = Vec::new();
        s.extend_from_slice(&crate::index::INDEX_MAGIC_V1.to_be_bytes());
        s.extend_from_slice(&0i64.to_be_bytes());
        s.extend_from_slice(&0u64.to_be_bytes());
        s.extend_from_slice(&(i64::MAX).to_be_bytes());
        assert!(StreamDecoder::new(&k, &s[..]).is_err());
        // Attributes claiming 4 GiB.
        let f = hello_object();
        let l = FileLayout::parse(&f).unwrap();
        let mut g = to_stream_order(&l);
        let at = 28 + 32 + 36 + l.name.as_bytes().len();
        g[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(StreamDecoder::new(&k, &g[..]).is_err());
    }

    fn sample_meta(k: &Keys, seed: u8, symlink: bool) -> FileMeta {
        FileMeta {
            container_id: i64::from(seed) * 1000 + 2,
            mtime: 1_577_934_245_123_456 + i64::from(seed),
            name: EncodedName::encrypt(k, &[b'n', seed]).unwrap(),
            attributes: vec![seed; usize::from(seed) % 100],
            symlink,
        }
    }

    /// Contents of `len` bytes: random, text-like or runs, by `kind`.
    fn content(kind: u8, len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        let mut next = move || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        (0..len)
            .map(|i| match kind % 3 {
                0 => next() as u8,
                1 => b"abcd efgh\n"[(next() % 10) as usize],
                _ => (i / 1000) as u8,
            })
            .collect()
    }

    fn lengths() -> impl Strategy<Value = usize> {
        prop_oneof![
            0usize..600,
            (0usize..3).prop_flat_map(|k| {
                let base = [128usize, 256, 4096][k];
                (base - 3..base + 4).boxed()
            }),
            4090usize..4230,
            8190usize..8450,
            0usize..300_000,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn round_trip(len in lengths(), kind in any::<u8>(), seed in any::<u64>(), m in any::<u8>()) {
            let k = Keys::test_vector();
            let data = content(kind, len, seed);
            let meta = sample_meta(&k, m, false);
            let f = encode_file(&k, &meta, &Recipe::whole(len as u64), &data).unwrap();
            let d = decode_file(&k, &f).unwrap();
            prop_assert_eq!(&d.content, &data);
            prop_assert_eq!(&d.name, &meta.name);
            prop_assert_eq!(&d.attributes, &meta.attributes);
            prop_assert_eq!(d.header.container_id, meta.container_id);
            prop_assert_eq!(d.header.mtime, meta.mtime);
            prop_assert_eq!(d.header.options, 0);
            let l = crate::blocksize::RunLayout::for_len(len as u64);
            prop_assert_eq!(d.header.num_blocks as u64, l.count);
            prop_assert_eq!(d.header.max_block_clear_size as u64, l.hint_size() + 128);

            // The streaming encoder's output decodes to the same, and so does the
            // streaming decoder over stream order.
            let mut streamed = Vec::new();
            FileEncoder::new(&k, meta.clone(), Recipe::whole(len as u64), &data[..])
                .unwrap()
                .read_to_end(&mut streamed)
                .unwrap();
            let layout = FileLayout::parse(&streamed).unwrap();
            let stream = to_stream_order(&layout);
            prop_assert_eq!(&decode_file(&k, &streamed).unwrap(), &d);
            prop_assert_eq!(&decode_file(&k, &stream).unwrap(), &d);
            prop_assert_eq!(&stream_decode(&k, &stream).unwrap(), &d);
            let mut via_read = Vec::new();
            // A reader handing out a few bytes at a time.
            let mut dec = StreamDecoder::new(&k, Trickle(&stream[..], 7)).unwrap();
            dec.read_to_end(&mut via_read).unwrap();
            prop_assert_eq!(via_read, data);
        }

        #[test]
        fn symlinks_have_no_data(m in any::<u8>()) {
            let k = Keys::test_vector();
            let meta = sample_meta(&k, m, true);
            let f = encode_file(&k, &meta, &Recipe::whole(0), &[]).unwrap();
            let d = decode_file(&k, &f).unwrap();
            prop_assert!(d.content.is_empty());
            prop_assert_eq!(d.header.max_block_clear_size, 128);
            let l = FileLayout::parse(&f).unwrap();
            prop_assert_eq!(l.index.iv_base, 0);
        }

        #[test]
        fn corruption_never_panics(len in 0usize..20_000, seed in any::<u64>(),
                                   flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
                                   cut in any::<Option<usize>>()) {
            let k = Keys::test_vector();
            let data = content(seed as u8, len, seed);
            let meta = sample_meta(&k, seed as u8, false);
            let f = encode_file(&k, &meta, &Recipe::whole(len as u64), &data).unwrap();
            let stream = to_stream_order(&FileLayout::parse(&f).unwrap());
            for orig in [f, stream] {
                let mut g = orig.clone();
                for (at, x) in &flips {
                    let at = at % g.len();
                    g[at] ^= x;
                }
                if let Some(c) = cut {
                    g.truncate(c % (g.len() + 1));
                }
                // Flips in the (unchecked) attribute blob or name may still decode;
                // anything else must be an error, and nothing may panic.
                if let Ok(d) = decode_file(&k, &g) {
                    prop_assert_eq!(&d.content, &data);
                }
                if let Ok(d) = stream_decode(&k, &g) {
                    prop_assert_eq!(&d.content, &data);
                }
            }
        }
    }

    /// Hands out at most `.1` bytes per read.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
}
