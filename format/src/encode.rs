//! Encoding a file (`formats.md` §2.1–2.6): header, embedded name, attributes,
//! one chunk per new block, and the block index, in file order.
//!
//! Owns the walk over a [`Recipe`]: new runs are read from the source and split
//! per §2.5, old blocks become reference entries whose checksums are
//! re-encrypted for their new position, and the header's block count and hint
//! are computed from the recipe before the first byte is written (the header
//! comes first, the index last, so a streaming encoder must know N up front).
//!
//! Must not know how the recipe was found (the diff search), how attributes are
//! built or encrypted (the caller passes the encrypted blob), or where the bytes
//! go. Two front ends share one core: [`encode_file`] for contents already in
//! memory and [`FileEncoder`], a `Read` that yields the encoded file while
//! holding a few blocks of source and their chunks at a time (plus 32 bytes of
//! index per block, which can only be written at the end). Blocks are taken
//! eight at a time because MD5 and CBC are serial within a block: several
//! blocks side by side keep a core busy (`chunk::lanes`).
//!
//! A source that ends before the recipe does is [`Error::SourceChanged`]: the
//! header already promised N blocks, and a shorter file cannot keep that
//! promise. A source that is longer than the recipe is not noticed; the recipe
//! is the snapshot being encoded.

use std::borrow::Borrow;
use std::io::{self, Read};

use crate::BoxTime;
use crate::blocksize::{HINT_EXTRA, RunLayout};
use crate::bytes::put_mem_block;
use crate::chunk::ChunkCodec;
use crate::chunk::lanes::LANES;
use crate::crypto;
use crate::error::{Error, Result};
use crate::filename::EncodedName;
use crate::index::{BlockIndex, IndexEntry, encrypt_entry};
use crate::keys::Keys;
use crate::layout::{FILE_HEADER_LEN, FileHeader};
use crate::recipe::{Instruction, Recipe};

/// What an encoded file says about itself besides its blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Object ID of the directory the file is uploaded into.
    pub container_id: i64,
    /// Local modification time.
    pub mtime: BoxTime,
    /// The encoded leaf name.
    pub name: EncodedName,
    /// The encrypted attribute blob, embedded as it is (the MemBlock length is
    /// added here).
    pub attributes: Vec<u8>,
    /// A symlink: no data, IV base 0 (`formats.md` §2.6).
    pub symlink: bool,
}

/// The header and index facts a recipe determines before the first byte is
/// written. Public so that other front ends (the client's parallel encoder)
/// write the same header and index as [`FileEncoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// N, in the header and the index.
    pub num_blocks: u64,
    /// The header's max-block hint (§2.2).
    pub hint: i32,
    /// The index's other-file ID: the recipe's, or 0 when nothing is reused.
    pub other_file_id: i64,
}

impl Plan {
    /// Checks `recipe` and computes N, the hint and the other-file ID.
    pub fn new(recipe: &Recipe, symlink: bool) -> Result<Plan> {
        plan(recipe, symlink)
    }

    /// The file header for `meta` under this plan.
    pub fn header(&self, meta: &FileMeta) -> FileHeader {
        FileHeader {
            legacy_v0: false,
            num_blocks: self.num_blocks as i64,
            container_id: meta.container_id,
            mtime: meta.mtime,
            max_block_clear_size: self.hint,
            options: 0,
        }
    }

    /// Appends everything before the first chunk: header, embedded name and
    /// attributes MemBlock.
    pub fn encode_prefix(&self, meta: &FileMeta, out: &mut Vec<u8>) -> Result<()> {
        self.header(meta).encode_into(out);
        out.extend_from_slice(meta.name.as_bytes());
        put_mem_block(out, &meta.attributes)
    }
}

/// A fresh IV base for the index of a new encoded file: random, 0 for a
/// symlink (§2.6).
pub fn new_iv_base(symlink: bool) -> u64 {
    if symlink { 0 } else { crypto::random_u64() }
}

fn bad_recipe(detail: impl Into<String>) -> Error {
    Error::Unencodable {
        what: "recipe",
        detail: detail.into(),
    }
}

/// Checks a recipe and computes N, the hint and the other-file ID.
fn plan(recipe: &Recipe, symlink: bool) -> Result<Plan> {
    let mut num_blocks: u64 = 0;
    let mut largest: u64 = 0;
    let mut end: u64 = 0;
    for ins in &recipe.instructions {
        match *ins {
            Instruction::New { offset, len } => {
                // The source is read front to back, once.
                if offset < end {
                    return Err(bad_recipe(format!(
                        "new run at {offset} starts before the previous one ends at {end}"
                    )));
                }
                end = offset
                    .checked_add(len)
                    .ok_or_else(|| bad_recipe("new run ends beyond 2^64"))?;
                let layout = RunLayout::for_len(len);
                num_blocks += layout.count;
                largest = largest.max(layout.hint_size());
            }
            Instruction::Old { index, clear } => {
                if i64::try_from(index).is_err() {
                    return Err(bad_recipe(format!(
                        "old block {index} cannot be referenced"
                    )));
                }
                num_blocks += 1;
                largest = largest.max(u64::from(clear.size));
            }
        }
    }
    if symlink && num_blocks != 0 {
        return Err(bad_recipe("a symlink has no data"));
    }
    let other_file_id = if recipe.has_references() {
        if recipe.other_file_id == 0 {
            return Err(bad_recipe("old blocks without an other-file ID"));
        }
        recipe.other_file_id
    } else {
        0
    };
    if i64::try_from(num_blocks).is_err() {
        return Err(bad_recipe(format!("{num_blocks} blocks")));
    }
    // §2.2: largest clear block that can occur, + 128; 128 when there is none.
    let hint = i32::try_from(largest)
        .ok()
        .and_then(|l| l.checked_add(HINT_EXTRA))
        .ok_or_else(|| {
            bad_recipe(format!(
                "a {largest}-byte block is too large for the header"
            ))
        })?;
    Ok(Plan {
        num_blocks,
        hint,
        other_file_id,
    })
}

/// Where the core gets the bytes of new blocks: requests come in increasing,
/// non-overlapping order.
trait BlockSource {
    fn block(&mut self, offset: u64, len: usize) -> Result<&[u8]>;
}

struct SliceSource<'a>(&'a [u8]);

impl BlockSource for SliceSource<'_> {
    fn block(&mut self, offset: u64, len: usize) -> Result<&[u8]> {
        usize::try_from(offset)
            .ok()
            .and_then(|o| self.0.get(o..o.checked_add(len)?))
            .ok_or_else(|| Error::SourceChanged {
                detail: format!(
                    "recipe reads {len} bytes at {offset}; the source has {} bytes",
                    self.0.len()
                ),
            })
    }
}

struct ReadSource<R> {
    inner: R,
    /// Bytes consumed from `inner`.
    pos: u64,
    buf: Vec<u8>,
}

impl<R: Read> ReadSource<R> {
    fn shrank(&self, wanted: u64) -> Error {
        Error::SourceChanged {
            detail: format!(
                "source ended at {} bytes; the recipe reads up to {wanted}",
                self.pos
            ),
        }
    }
}

impl<R: Read> BlockSource for ReadSource<R> {
    fn block(&mut self, offset: u64, len: usize) -> Result<&[u8]> {
        // Bytes covered by old blocks are read and dropped: the source is a
        // plain sequential stream.
        let skip = offset
            .checked_sub(self.pos)
            .ok_or_else(|| Error::Unencodable {
                what: "recipe",
                detail: format!("reads offset {offset} after offset {}", self.pos),
            })?;
        if skip > 0 {
            let skipped =
                io::copy(&mut (&mut self.inner).take(skip), &mut io::sink()).map_err(|source| {
                    Error::Io {
                        what: "reading the source",
                        source,
                    }
                })?;
            self.pos += skipped;
            if skipped != skip {
                return Err(self.shrank(offset));
            }
        }
        self.buf.resize(len, 0);
        let mut filled = 0;
        while filled < len {
            match self.inner.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    self.pos += filled as u64;
                    return Err(self.shrank(offset + len as u64));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Io {
                        what: "reading the source",
                        source,
                    });
                }
            }
        }
        self.pos += len as u64;
        Ok(&self.buf)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Prefix,
    Blocks,
    Index,
    Done,
}

/// A new run being cut into blocks.
#[derive(Debug, Clone, Copy)]
struct Run {
    offset: u64,
    layout: RunLayout,
    next: u64,
}

/// The encoder's state between pieces of output.
struct Core {
    meta: FileMeta,
    recipe: Recipe,
    plan: Plan,
    iv_base: u64,
    stage: Stage,
    next_instruction: usize,
    run: Option<Run>,
    entries: Vec<IndexEntry>,
    codec: ChunkCodec,
}

impl Core {
    fn new(meta: FileMeta, recipe: Recipe) -> Result<Core> {
        let plan = plan(&recipe, meta.symlink)?;
        let iv_base = new_iv_base(meta.symlink);
        Ok(Core {
            meta,
            recipe,
            plan,
            iv_base,
            stage: Stage::Prefix,
            next_instruction: 0,
            run: None,
            entries: Vec::with_capacity(plan.num_blocks.min(1 << 16) as usize),
            codec: ChunkCodec::new(),
        })
    }

    fn header(&self) -> FileHeader {
        self.plan.header(&self.meta)
    }

    fn push_entry(&mut self, keys: &Keys, encoded_size: i64, clear: &crate::index::BlockClear) {
        let position = self.entries.len() as u64;
        self.entries.push(IndexEntry {
            encoded_size,
            encrypted: encrypt_entry(keys, self.iv_base, position, clear),
        });
    }

    /// Appends the next piece of the file (the prefix, a few chunks, or the index)
    /// to `out`. Returns false once everything has been written.
    fn step(&mut self, keys: &Keys, src: &mut dyn BlockSource, out: &mut Vec<u8>) -> Result<bool> {
        match self.stage {
            Stage::Prefix => {
                self.plan.encode_prefix(&self.meta, out)?;
                self.stage = Stage::Blocks;
                Ok(true)
            }
            Stage::Blocks => loop {
                if let Some(run) = &mut self.run {
                    if run.next < run.layout.count {
                        // Up to LANES consecutive blocks of the run, which are
                        // contiguous in the source, encoded side by side.
                        let first = run.next;
                        let count = (run.layout.count - first).min(LANES as u64);
                        let offset = run.offset + first * run.layout.size;
                        let layout = run.layout;
                        run.next += count;
                        let lens = (first..first + count).map(|b| layout.block_len(b) as usize);
                        let total = lens.clone().sum();
                        let data = src.block(offset, total)?;
                        let mut blocks = Vec::with_capacity(count as usize);
                        let mut at = 0;
                        for len in lens {
                            blocks.push(&data[at..at + len]);
                            at += len;
                        }
                        let done = self.codec.encode_many(keys, &blocks, out);
                        for chunk in done {
                            self.push_entry(keys, chunk.len as i64, &chunk.clear);
                        }
                        return Ok(true);
                    }
                    self.run = None;
                }
                let Some(ins) = self.recipe.instructions.get(self.next_instruction) else {
                    self.stage = Stage::Index;
                    return Ok(true);
                };
                self.next_instruction += 1;
                match *ins {
                    Instruction::New { offset, len } => {
                        self.run = Some(Run {
                            offset,
                            layout: RunLayout::for_len(len),
                            next: 0,
                        });
                    }
                    Instruction::Old { index, clear } => {
                        // plan() checked that -index fits.
                        self.push_entry(keys, -(index as i64), &clear);
                    }
                }
            },
            Stage::Index => {
                if self.entries.len() as u64 != self.plan.num_blocks {
                    return Err(Error::Unencodable {
                        what: "encoded file",
                        detail: format!(
                            "wrote {} blocks, header says {}",
                            self.entries.len(),
                            self.plan.num_blocks
                        ),
                    });
                }
                let index = BlockIndex {
                    legacy_v0: false,
                    other_file_id: self.plan.other_file_id,
                    iv_base: self.iv_base,
                    entries: std::mem::take(&mut self.entries),
                };
                index.encode_into(out);
                self.stage = Stage::Done;
                Ok(true)
            }
            Stage::Done => Ok(false),
        }
    }
}

/// Encodes a file whose source bytes are all in memory. `recipe` says which
/// bytes of `source` become new blocks and which old blocks are reused; a
/// full upload is `Recipe::whole(source.len())`.
pub fn encode_file(
    keys: &Keys,
    meta: &FileMeta,
    recipe: &Recipe,
    source: &[u8],
) -> Result<Vec<u8>> {
    let mut core = Core::new(meta.clone(), recipe.clone())?;
    let new_bytes: u64 = recipe
        .instructions
        .iter()
        .map(|i| match i {
            Instruction::New { len, .. } => *len,
            Instruction::Old { .. } => 0,
        })
        .sum();
    let estimate = FILE_HEADER_LEN
        + meta.name.as_bytes().len()
        + 4
        + meta.attributes.len()
        + (new_bytes as usize).min(source.len())
        + core.plan.num_blocks as usize * (33 + 32)
        + 28;
    let mut out = Vec::with_capacity(estimate);
    let mut src = SliceSource(source);
    while core.step(keys, &mut src, &mut out)? {}
    Ok(out)
}

/// A streaming encoder: reads the source front to back and yields the encoded
/// file in file order through [`Read`], one piece (prefix, chunks, index) at a
/// time. A piece of chunks holds up to eight blocks (encoded side by side), so
/// at most about 4 MiB of source and of output are held at once.
///
/// Errors of the format layer come out of `read` as `io::Error`s wrapping the
/// [`Error`] (use `get_ref()` and downcast to see it); errors reading the
/// source come out as they were. After an error the encoder keeps failing.
pub struct FileEncoder<K, R> {
    keys: K,
    core: Core,
    source: ReadSource<R>,
    pending: Vec<u8>,
    pos: usize,
    failed: bool,
}

impl<K, R> std::fmt::Debug for FileEncoder<K, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileEncoder")
            .field("stage", &self.core.stage)
            .field("blocks_done", &self.core.entries.len())
            .field("num_blocks", &self.core.plan.num_blocks)
            .finish_non_exhaustive()
    }
}

impl<K: Borrow<Keys>, R: Read> FileEncoder<K, R> {
    /// Prepares to encode `recipe` over `source`, whose bytes are read in order
    /// (`source` must start at offset 0 of the file). Fails at once on a recipe
    /// that cannot be encoded.
    pub fn new(keys: K, meta: FileMeta, recipe: Recipe, source: R) -> Result<Self> {
        Ok(FileEncoder {
            keys,
            core: Core::new(meta, recipe)?,
            source: ReadSource {
                inner: source,
                pos: 0,
                buf: Vec::new(),
            },
            pending: Vec::new(),
            pos: 0,
            failed: false,
        })
    }

    /// The header that is (or will be) written first.
    pub fn header(&self) -> FileHeader {
        self.core.header()
    }

    /// Appends the next piece of the encoded file to `out`; returns false when
    /// the file is complete. The allocation-free way to drive the encoder.
    pub fn next_piece(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        if self.failed {
            return Err(Error::Unencodable {
                what: "encoded file",
                detail: "the encoder failed earlier".into(),
            });
        }
        let r = self.core.step(self.keys.borrow(), &mut self.source, out);
        self.failed = r.is_err();
        r
    }
}

fn into_io(e: Error) -> io::Error {
    match e {
        Error::Io { source, .. } => source,
        other => io::Error::other(other),
    }
}

impl<K: Borrow<Keys>, R: Read> Read for FileEncoder<K, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.pos);
                buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            self.pending.clear();
            self.pos = 0;
            let mut pending = std::mem::take(&mut self.pending);
            let more = self.next_piece(&mut pending);
            self.pending = pending;
            if !more.map_err(into_io)? {
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::BlockClear;
    use crate::layout::FileLayout;

    fn meta(keys: &Keys) -> FileMeta {
        FileMeta {
            container_id: 2,
            mtime: 0x0005_9b1f_7228_d580,
            name: EncodedName::encrypt(keys, b"hello.txt").unwrap(),
            attributes: vec![2, 1, 2, 3, 4, 5, 6, 7, 8],
            symlink: false,
        }
    }

    #[test]
    fn small_file_matches_the_real_one() {
        let k = Keys::test_vector();
        let f = encode_file(&k, &meta(&k), &Recipe::whole(12), b"hello world\n").unwrap();
        let l = FileLayout::parse(&f).unwrap();
        // §2.2: a 12-byte file gets hint 4224, like the real object of §8.
        assert_eq!(l.header.max_block_clear_size, 4224);
        assert_eq!(l.header.num_blocks, 1);
        assert_eq!(l.chunk(0).unwrap().len(), 33);
        assert_eq!(
            l.index.decrypt_entry(&k, 0).unwrap(),
            BlockClear::of(b"hello world\n")
        );
        assert!(l.is_complete());
    }

    #[test]
    fn empty_file_and_symlink() {
        let k = Keys::test_vector();
        let f = encode_file(&k, &meta(&k), &Recipe::whole(0), b"").unwrap();
        let l = FileLayout::parse(&f).unwrap();
        assert_eq!(
            (l.header.num_blocks, l.header.max_block_clear_size),
            (0, 128)
        );
        let mut m = meta(&k);
        m.symlink = true;
        let f = encode_file(&k, &m, &Recipe::whole(0), b"").unwrap();
        let l = FileLayout::parse(&f).unwrap();
        assert_eq!(
            (l.header.num_blocks, l.header.max_block_clear_size),
            (0, 128)
        );
        assert_eq!((l.index.iv_base, l.index.other_file_id), (0, 0));
        assert!(encode_file(&k, &m, &Recipe::whole(1), b"x").is_err());
    }

    #[test]
    fn recipe_with_old_blocks() {
        let k = Keys::test_vector();
        let src: Vec<u8> = (0..20000u32).map(|i| (i * 7 % 251) as u8).collect();
        let old = BlockClear::of(&[1u8; 6000]);
        let recipe = Recipe {
            other_file_id: 77,
            instructions: vec![
                Instruction::New {
                    offset: 0,
                    len: 4700,
                },
                Instruction::Old {
                    index: 3,
                    clear: old,
                },
                Instruction::Old {
                    index: 4,
                    clear: old,
                },
                Instruction::New {
                    offset: 16700,
                    len: 100,
                },
            ],
        };
        for f in [encode_file(&k, &meta(&k), &recipe, &src).unwrap(), {
            let mut v = Vec::new();
            FileEncoder::new(&k, meta(&k), recipe.clone(), &src[..])
                .unwrap()
                .read_to_end(&mut v)
                .unwrap();
            v
        }] {
            let l = FileLayout::parse(&f).unwrap();
            assert_eq!(l.header.num_blocks, 5);
            // max(4096 nominal, 6000 old, 100) + 128.
            assert_eq!(l.header.max_block_clear_size, 6128);
            assert_eq!(l.index.other_file_id, 77);
            let sizes: Vec<i64> = l.index.entries.iter().map(|e| e.encoded_size).collect();
            assert_eq!((sizes[2], sizes[3]), (-3, -4));
            let clears = l.index.decrypt_all(&k).unwrap();
            assert_eq!(clears[0], BlockClear::of(&src[..4096]));
            assert_eq!(clears[1], BlockClear::of(&src[4096..4700]));
            assert_eq!((clears[2], clears[3]), (old, old));
            assert_eq!(clears[4], BlockClear::of(&src[16700..16800]));
        }
    }

    #[test]
    fn bad_recipes() {
        let k = Keys::test_vector();
        let old = BlockClear::of(b"x");
        let cases = [
            Recipe {
                other_file_id: 0,
                instructions: vec![Instruction::Old {
                    index: 0,
                    clear: old,
                }],
            },
            Recipe {
                other_file_id: 0,
                instructions: vec![
                    Instruction::New {
                        offset: 10,
                        len: 10,
                    },
                    Instruction::New {
                        offset: 15,
                        len: 10,
                    },
                ],
            },
            Recipe {
                other_file_id: 0,
                instructions: vec![Instruction::New {
                    offset: u64::MAX,
                    len: 10,
                }],
            },
            Recipe {
                other_file_id: 5,
                instructions: vec![Instruction::Old {
                    index: u64::MAX,
                    clear: old,
                }],
            },
            Recipe {
                other_file_id: 5,
                instructions: vec![Instruction::Old {
                    index: 0,
                    clear: BlockClear {
                        size: u32::MAX,
                        ..old
                    },
                }],
            },
        ];
        for r in cases {
            assert!(
                encode_file(&k, &meta(&k), &r, &[0u8; 100]).is_err(),
                "{r:?}"
            );
            assert!(FileEncoder::new(&k, meta(&k), r, &[0u8; 100][..]).is_err());
        }
    }

    #[test]
    fn source_that_shrank() {
        let k = Keys::test_vector();
        let e = encode_file(&k, &meta(&k), &Recipe::whole(5000), &[0u8; 4999]).unwrap_err();
        assert!(matches!(e, Error::SourceChanged { .. }));
        let recipe = Recipe {
            other_file_id: 0,
            instructions: vec![Instruction::New {
                offset: 6000,
                len: 10,
            }],
        };
        for len in [4999, 6005] {
            let src = vec![0u8; len];
            let mut enc = FileEncoder::new(&k, meta(&k), recipe.clone(), &src[..]).unwrap();
            let err = enc.read_to_end(&mut Vec::new()).unwrap_err();
            let inner = err.get_ref().and_then(|e| e.downcast_ref::<Error>());
            assert!(matches!(inner, Some(Error::SourceChanged { .. })), "{err}");
            // It keeps failing rather than producing a half file.
            assert!(enc.read(&mut [0u8; 10]).is_err());
        }
    }

    #[test]
    fn source_errors_pass_through() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::PermissionDenied, "nope"))
            }
        }
        let k = Keys::test_vector();
        let mut enc = FileEncoder::new(&k, meta(&k), Recipe::whole(10), Failing).unwrap();
        let err = enc.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }
}
