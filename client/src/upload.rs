//! The bodies of StoreFile uploads: a [`Read`] that yields an encoded file
//! (`formats.md` §2.1: header, name, attributes, chunks, block index) while
//! worker threads compress, checksum and encrypt the blocks ahead of the
//! uploader.
//!
//! Owns: cutting a [`Recipe`] (a full upload, or a diff's new runs and reused
//! blocks) into pieces of up to [`EncoderOptions::batch_bytes`] of source,
//! handing the pieces to workers, putting their output back in file order,
//! bounding how far the workers run ahead, and noticing that the file changed
//! while it was read. The format itself (header, hint, chunks, index entries)
//! comes from bb-format, so the bytes are those of
//! [`bb_format::encode::FileEncoder`] up to the random IVs.
//!
//! Must not know: the store, the protocol, or why a file is uploaded (the sync
//! engine decides; it reads [`ParallelEncoder::changed_while_reading`]).
//!
//! # Memory
//!
//! At most `window` pieces are encoded or waiting (`2 × threads`, at most
//! [`MAX_WINDOW`]), each about `batch_bytes` of output, plus one source buffer
//! per worker and the piece being read by the uploader: with the defaults
//! (1 MiB pieces) under 11 MiB whatever the file size, plus 32 bytes of index
//! per block, which can only be written at the end.
//!
//! # A file that changes while it is read
//!
//! The header is written first and fixes N, the number of blocks, from the
//! size the file had when it was opened (or when the diff was made). So:
//! * a file that shrank is padded with zeros to the size it had: every block
//!   still matches its index entry, so the upload is a valid encoded file, but
//!   its content never existed on disc;
//! * a file that grew is cut at the size it had (the header's N is kept);
//! * a file rewritten in place gives a mixture of old and new blocks.
//!
//! In every case [`ParallelEncoder::changed_while_reading`] is true once the
//! reader has returned end of file (short reads are seen by the workers; size
//! and mtime are compared with the `fstat` taken at open just before the index
//! is written), and the engine must not record the upload as matching the
//! local file, so that the next run uploads it again. 0.13 instead fails the
//! upload (its encode stream throws when a read comes up short) [S].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use bb_format::Keys;
use bb_format::blocksize::RunLayout;
use bb_format::chunk::ChunkCodec;
use bb_format::encode::{FileMeta, Plan, new_iv_base};
use bb_format::index::{BlockClear, BlockIndex, IndexEntry, encrypt_entry};
use bb_format::recipe::{Instruction, Recipe};

use crate::error::{Error, Result};

/// Source bytes per piece by default. With 4 KiB blocks a piece is 256 blocks
/// (so per-piece costs are small next to the work); with 512 KiB blocks it is
/// two, which keeps memory low for the largest files.
pub const DEFAULT_BATCH_BYTES: u64 = 1 << 20;
/// Most pieces in flight (being encoded or waiting for the uploader).
pub const MAX_WINDOW: usize = 8;
/// Consecutive reused blocks of a diff handled as one piece.
const OLD_PER_PIECE: usize = 4096;

/// How an encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderOptions {
    /// Worker threads. 0 encodes in the thread that reads (like `FileEncoder`).
    /// Sources of one piece or less are always encoded that way: a thread
    /// costs more than a small file.
    pub threads: usize,
    /// Source bytes per piece of work (at least one block).
    pub batch_bytes: u64,
}

impl Default for EncoderOptions {
    /// One worker per core.
    fn default() -> Self {
        EncoderOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batch_bytes: DEFAULT_BATCH_BYTES,
        }
    }
}

impl EncoderOptions {
    /// `threads` workers, default piece size.
    pub fn with_threads(threads: usize) -> Self {
        EncoderOptions {
            threads,
            ..EncoderOptions::default()
        }
    }
}

/// Where the encoder reads source bytes: positional reads from any thread.
pub trait Source: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; 0 only at or past the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Whether the source is no longer what it was when the recipe was made,
    /// asked once after the last block was read. Short reads are noticed
    /// without it.
    fn changed(&self) -> io::Result<bool> {
        Ok(false)
    }
}

/// Bytes in memory (tests, and contents already read).
impl Source for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = offset.min(self.len() as u64) as usize;
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// A local regular file opened for upload, with the size and mtime it had at
/// open (what the recipe of a full upload is made from).
#[derive(Debug)]
pub struct LocalFile {
    file: File,
    path: PathBuf,
    len: u64,
    mtime: (i64, i64),
}

impl LocalFile {
    /// Opens `path` and takes its size and mtime from the open file.
    pub fn open(path: &Path) -> Result<LocalFile> {
        let file = File::open(path).map_err(|e| Error::local("opening", path, e))?;
        let md = file
            .metadata()
            .map_err(|e| Error::local("reading the metadata of", path, e))?;
        if !md.is_file() {
            return Err(Error::local(
                "uploading",
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        Ok(LocalFile {
            file,
            path: path.to_owned(),
            len: md.len(),
            mtime: (md.mtime(), md.mtime_nsec()),
        })
    }

    /// Size at open.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, for reading it through the same descriptor (the diff
    /// search reads it before the encoder does: `Read for &File`).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Source for LocalFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn changed(&self) -> io::Result<bool> {
        let md = self.file.metadata()?;
        Ok(md.len() != self.len || (md.mtime(), md.mtime_nsec()) != self.mtime)
    }
}

/// One unit of work: consecutive blocks of one new run, or consecutive reused
/// blocks, whose index entries start at `first_entry`.
#[derive(Debug)]
struct Piece {
    seq: u64,
    first_entry: u64,
    work: Work,
}

#[derive(Debug)]
enum Work {
    New {
        /// Source offset of the first block.
        offset: u64,
        layout: RunLayout,
        first_block: u64,
        count: u64,
    },
    Old(Vec<(u64, BlockClear)>),
}

/// Walks a recipe piece by piece, in file order.
#[derive(Debug)]
struct Cursor {
    instructions: Vec<Instruction>,
    next_instruction: usize,
    /// Run being cut: (run offset, layout, next block).
    run: Option<(u64, RunLayout, u64)>,
    batch_bytes: u64,
    seq: u64,
    entries: u64,
}

impl Cursor {
    fn next(&mut self) -> Option<Piece> {
        loop {
            if let Some((run_offset, layout, next)) = &mut self.run {
                if *next < layout.count {
                    let per = (self.batch_bytes / layout.size).max(1);
                    let count = (layout.count - *next).min(per);
                    let work = Work::New {
                        offset: *run_offset + *next * layout.size,
                        layout: *layout,
                        first_block: *next,
                        count,
                    };
                    *next += count;
                    return Some(self.emit(work, count));
                }
                self.run = None;
            }
            let ins = self.instructions.get(self.next_instruction)?;
            match *ins {
                Instruction::New { offset, len } => {
                    self.next_instruction += 1;
                    self.run = Some((offset, RunLayout::for_len(len), 0));
                }
                Instruction::Old { .. } => {
                    let olds: Vec<(u64, BlockClear)> = self.instructions[self.next_instruction..]
                        .iter()
                        .map_while(|i| match *i {
                            Instruction::Old { index, clear } => Some((index, clear)),
                            Instruction::New { .. } => None,
                        })
                        .take(OLD_PER_PIECE)
                        .collect();
                    self.next_instruction += olds.len();
                    let n = olds.len() as u64;
                    return Some(self.emit(Work::Old(olds), n));
                }
            }
        }
    }

    fn emit(&mut self, work: Work, blocks: u64) -> Piece {
        let piece = Piece {
            seq: self.seq,
            first_entry: self.entries,
            work,
        };
        self.seq += 1;
        self.entries += blocks;
        piece
    }
}

/// A piece's chunks (back to back) and its index entries.
#[derive(Debug)]
struct Encoded {
    bytes: Vec<u8>,
    entries: Vec<IndexEntry>,
}

/// What encoding a piece needs besides the piece.
struct Ctx<'a> {
    keys: &'a Keys,
    source: &'a dyn Source,
    iv_base: u64,
    changed: &'a AtomicBool,
}

/// Per-thread scratch.
struct Scratch {
    codec: ChunkCodec,
    source: Vec<u8>,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            codec: ChunkCodec::new(),
            source: Vec::new(),
        }
    }
}

/// Fills `buf` from `offset`; a source that ends early leaves zeros and
/// reports the change.
fn read_full(ctx: &Ctx<'_>, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match ctx
            .source
            .read_at(&mut buf[filled..], offset + filled as u64)
        {
            Ok(0) => {
                // The header already promised these blocks: pad, and let the
                // engine upload the file again next time.
                buf[filled..].fill(0);
                ctx.changed.store(true, Ordering::Relaxed);
                return Ok(());
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn encode_piece(
    ctx: &Ctx<'_>,
    scratch: &mut Scratch,
    piece: &Piece,
    mut out: Vec<u8>,
) -> io::Result<Encoded> {
    out.clear();
    let position = |i: usize| piece.first_entry + i as u64;
    match &piece.work {
        Work::New {
            offset,
            layout,
            first_block,
            count,
        } => {
            let lens: Vec<usize> = (*first_block..first_block + count)
                .map(|b| layout.block_len(b) as usize)
                .collect();
            let total: usize = lens.iter().sum();
            scratch.source.resize(total, 0);
            read_full(ctx, &mut scratch.source, *offset)?;
            let mut blocks = Vec::with_capacity(lens.len());
            let mut at = 0;
            for len in lens {
                blocks.push(&scratch.source[at..at + len]);
                at += len;
            }
            let chunks = scratch.codec.encode_many(ctx.keys, &blocks, &mut out);
            let entries = chunks
                .iter()
                .enumerate()
                .map(|(i, c)| IndexEntry {
                    encoded_size: c.len as i64,
                    encrypted: encrypt_entry(ctx.keys, ctx.iv_base, position(i), &c.clear),
                })
                .collect();
            Ok(Encoded {
                bytes: out,
                entries,
            })
        }
        Work::Old(olds) => {
            let entries = olds
                .iter()
                .enumerate()
                .map(|(i, (index, clear))| IndexEntry {
                    // Plan::new checked that every index fits an i64.
                    encoded_size: -(*index as i64),
                    encrypted: encrypt_entry(ctx.keys, ctx.iv_base, position(i), clear),
                })
                .collect();
            Ok(Encoded {
                bytes: out,
                entries,
            })
        }
    }
}

/// What the workers and the reader share, under one lock.
struct State {
    cursor: Cursor,
    /// Pieces handed out (next seq to claim is `cursor.seq`).
    delivered: u64,
    window: u64,
    done: BTreeMap<u64, io::Result<Encoded>>,
    /// Output buffers to reuse.
    spare: Vec<Vec<u8>>,
    /// The cursor has no more pieces.
    exhausted: bool,
    /// Pieces claimed but not yet in `done`.
    working: usize,
    /// The reader is gone (or failed): workers stop.
    stop: bool,
    /// A worker died (panicked): the reader must not wait for it.
    worker_lost: bool,
}

struct Shared {
    keys: Arc<Keys>,
    source: Arc<dyn Source>,
    iv_base: u64,
    changed: AtomicBool,
    state: Mutex<State>,
    /// Signalled when a worker may claim more (or must stop).
    work: Condvar,
    /// Signalled when a piece is done (or a worker died).
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A worker that panicked while holding the lock leaves consistent
        // state behind (it only ever inserts whole results); `worker_lost`
        // tells the reader.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            keys: &self.keys,
            source: &*self.source,
            iv_base: self.iv_base,
            changed: &self.changed,
        }
    }
}

/// Marks the pool as broken if a worker unwinds, so the reader fails instead
/// of waiting forever.
struct LostGuard<'a>(&'a Shared);

impl Drop for LostGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut st = self.0.lock();
            st.worker_lost = true;
            st.stop = true;
            drop(st);
            self.0.ready.notify_all();
            self.0.work.notify_all();
        }
    }
}

fn worker(shared: Arc<Shared>) {
    let _guard = LostGuard(&shared);
    let mut scratch = Scratch::new();
    let ctx = shared.ctx();
    loop {
        let (piece, out) = {
            let mut st = shared.lock();
            loop {
                if st.stop || st.exhausted {
                    return;
                }
                if st.cursor.seq < st.delivered + st.window {
                    break;
                }
                st = shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            match st.cursor.next() {
                Some(p) => {
                    st.working += 1;
                    let out = st.spare.pop().unwrap_or_default();
                    (p, out)
                }
                None => {
                    st.exhausted = true;
                    drop(st);
                    shared.ready.notify_all();
                    shared.work.notify_all();
                    return;
                }
            }
        };
        let result = encode_piece(&ctx, &mut scratch, &piece, out);
        let mut st = shared.lock();
        st.working -= 1;
        st.done.insert(piece.seq, result);
        drop(st);
        shared.ready.notify_all();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Prefix,
    Blocks,
    Index,
    Done,
}

/// An encoded file as a [`Read`], encoded by worker threads ahead of the
/// reader. See the module documentation for memory and changing files.
///
/// Errors reading the source come out of `read` as they were; after an error
/// the encoder keeps failing. Dropping it stops and joins the workers.
pub struct ParallelEncoder {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Scratch for encoding in the reader's thread (no workers).
    inline: Option<Scratch>,
    meta: FileMeta,
    plan: Plan,
    stage: Stage,
    entries: Vec<IndexEntry>,
    pending: Vec<u8>,
    pos: usize,
    failed: bool,
}

impl std::fmt::Debug for ParallelEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelEncoder")
            .field("stage", &self.stage)
            .field("workers", &self.workers.len())
            .field("blocks_done", &self.entries.len())
            .field("num_blocks", &self.plan.num_blocks)
            .finish_non_exhaustive()
    }
}

impl ParallelEncoder {
    /// A full upload of the local file at `path` (its size at open fixes the
    /// blocks).
    pub fn open(
        keys: Arc<Keys>,
        path: &Path,
        meta: FileMeta,
        opts: EncoderOptions,
    ) -> Result<ParallelEncoder> {
        let file = LocalFile::open(path)?;
        let recipe = Recipe::whole(file.len());
        ParallelEncoder::new(keys, meta, recipe, Arc::new(file), opts)
            .map_err(|e| Error::format(path.display().to_string(), e))
    }

    /// Encodes `recipe` (a full upload or a diff's) over `source`, whose
    /// offsets are those the recipe names. Fails at once on a recipe that
    /// cannot be encoded.
    pub fn new(
        keys: Arc<Keys>,
        meta: FileMeta,
        recipe: Recipe,
        source: Arc<dyn Source>,
        opts: EncoderOptions,
    ) -> Result<ParallelEncoder, bb_format::Error> {
        let plan = Plan::new(&recipe, meta.symlink)?;
        let batch_bytes = opts.batch_bytes.max(1);
        let new_bytes: u64 = recipe
            .instructions
            .iter()
            .map(|i| match i {
                Instruction::New { len, .. } => *len,
                Instruction::Old { .. } => 0,
            })
            .sum();
        // Workers only when there is more than one piece of new data to share.
        let threads = if new_bytes > batch_bytes {
            opts.threads
                .min(new_bytes.div_ceil(batch_bytes).min(64) as usize)
        } else {
            0
        };
        let window = (2 * threads).clamp(1, MAX_WINDOW) as u64;
        let shared = Arc::new(Shared {
            keys,
            source,
            iv_base: new_iv_base(meta.symlink),
            changed: AtomicBool::new(false),
            state: Mutex::new(State {
                cursor: Cursor {
                    instructions: recipe.instructions,
                    next_instruction: 0,
                    run: None,
                    batch_bytes,
                    seq: 0,
                    entries: 0,
                },
                delivered: 0,
                window,
                done: BTreeMap::new(),
                spare: Vec::new(),
                exhausted: false,
                working: 0,
                stop: false,
                worker_lost: false,
            }),
            work: Condvar::new(),
            ready: Condvar::new(),
        });
        let mut enc = ParallelEncoder {
            shared: shared.clone(),
            workers: Vec::with_capacity(threads),
            inline: None,
            meta,
            plan,
            stage: Stage::Prefix,
            entries: Vec::with_capacity(plan.num_blocks.min(1 << 16) as usize),
            pending: Vec::new(),
            pos: 0,
            failed: false,
        };
        for i in 0..threads {
            let s = shared.clone();
            match std::thread::Builder::new()
                .name(format!("encode-{i}"))
                .spawn(move || worker(s))
            {
                Ok(h) => enc.workers.push(h),
                // Fewer workers (or none: the reader encodes) still work.
                Err(e) => {
                    tracing::warn!("cannot start an encoder thread: {e}");
                    break;
                }
            }
        }
        if enc.workers.is_empty() {
            enc.inline = Some(Scratch::new());
        }
        Ok(enc)
    }

    /// The plan (N, hint, other-file ID) the header and index follow.
    pub fn plan(&self) -> Plan {
        self.plan
    }

    /// Worker threads running (0: encoding in the reader's thread).
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// True if the source changed while it was encoded (see the module
    /// documentation). Final once `read` has returned 0.
    pub fn changed_while_reading(&self) -> bool {
        self.shared.changed.load(Ordering::Relaxed)
    }

    /// The next piece's output, in order; None when all blocks are done.
    fn next_encoded(&mut self) -> io::Result<Option<Encoded>> {
        let spare = std::mem::take(&mut self.pending);
        if let Some(scratch) = &mut self.inline {
            let piece = self.shared.lock().cursor.next();
            return match piece {
                Some(p) => encode_piece(&self.shared.ctx(), scratch, &p, spare).map(Some),
                None => Ok(None),
            };
        }
        let mut st = self.shared.lock();
        if st.spare.len() < MAX_WINDOW {
            st.spare.push(spare);
        }
        loop {
            let want = st.delivered;
            if let Some(r) = st.done.remove(&want) {
                st.delivered += 1;
                drop(st);
                self.shared.work.notify_all();
                return r.map(Some);
            }
            if st.worker_lost {
                return Err(io::Error::other("an encoder thread died"));
            }
            if st.exhausted && st.working == 0 && st.done.is_empty() {
                return Ok(None);
            }
            st = self
                .shared
                .ready
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Fills `pending` with the next part of the file; false at the end.
    fn step(&mut self) -> io::Result<bool> {
        match self.stage {
            Stage::Prefix => {
                self.pending.clear();
                self.plan
                    .encode_prefix(&self.meta, &mut self.pending)
                    .map_err(io::Error::other)?;
                self.stage = Stage::Blocks;
                Ok(true)
            }
            Stage::Blocks => {
                match self.next_encoded()? {
                    Some(e) => {
                        self.entries.extend_from_slice(&e.entries);
                        self.pending = e.bytes;
                    }
                    None => self.stage = Stage::Index,
                }
                Ok(true)
            }
            Stage::Index => {
                if self.entries.len() as u64 != self.plan.num_blocks {
                    return Err(io::Error::other(format!(
                        "encoded {} blocks, the header says {}",
                        self.entries.len(),
                        self.plan.num_blocks
                    )));
                }
                if self.shared.source.changed()? {
                    self.shared.changed.store(true, Ordering::Relaxed);
                }
                self.pending.clear();
                BlockIndex {
                    legacy_v0: false,
                    other_file_id: self.plan.other_file_id,
                    iv_base: self.shared.iv_base,
                    entries: std::mem::take(&mut self.entries),
                }
                .encode_into(&mut self.pending);
                self.stage = Stage::Done;
                Ok(true)
            }
            Stage::Done => Ok(false),
        }
    }

    fn stop_workers(&mut self) {
        if self.workers.is_empty() {
            return;
        }
        self.shared.lock().stop = true;
        self.shared.work.notify_all();
        for h in self.workers.drain(..) {
            // A worker that panicked has already said so through LostGuard.
            let _ = h.join();
        }
    }
}

impl Read for ParallelEncoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("the encoder failed earlier"));
        }
        loop {
            if self.pos < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.pos);
                buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            self.pos = 0;
            match self.step() {
                Ok(true) => {}
                Ok(false) => {
                    self.pending.clear();
                    self.stop_workers();
                    return Ok(0);
                }
                Err(e) => {
                    self.failed = true;
                    self.pending.clear();
                    self.stop_workers();
                    return Err(e);
                }
            }
        }
    }
}

impl Drop for ParallelEncoder {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bb_format::EncodedName;
    use bb_format::decode::{StreamDecoder, decode_file};
    use bb_format::encode::FileEncoder;
    use bb_format::layout::{FileLayout, to_stream_order};
    use proptest::prelude::*;
    use std::sync::atomic::AtomicU64;

    fn keys() -> Arc<Keys> {
        Arc::new(Keys::test_vector())
    }

    fn meta(k: &Keys) -> FileMeta {
        FileMeta {
            container_id: 7,
            mtime: 0x0005_9b1f_7228_d580,
            name: EncodedName::encrypt(k, b"data.bin").unwrap(),
            attributes: vec![2, 9, 8, 7, 6, 5, 4, 3, 2],
            symlink: false,
        }
    }

    /// Text-like runs and random runs, so that both chunk kinds occur.
    fn content(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (v.len() / 20000) % 2 == 0 {
                v.extend_from_slice(
                    format!("line {} of the text {}\n", v.len(), x % 97).as_bytes(),
                );
            } else {
                v.extend_from_slice(&x.to_le_bytes());
            }
        }
        v.truncate(len);
        v
    }

    fn opts(threads: usize, batch_bytes: u64) -> EncoderOptions {
        EncoderOptions {
            threads,
            batch_bytes,
        }
    }

    fn parallel(
        k: &Arc<Keys>,
        recipe: &Recipe,
        src: Arc<dyn Source>,
        o: EncoderOptions,
    ) -> (Vec<u8>, bool) {
        let mut enc = ParallelEncoder::new(k.clone(), meta(k), recipe.clone(), src, o).unwrap();
        let mut out = Vec::new();
        enc.read_to_end(&mut out).unwrap();
        (out, enc.changed_while_reading())
    }

    fn serial(k: &Keys, recipe: &Recipe, src: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        FileEncoder::new(k, meta(k), recipe.clone(), src)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// Same header, name, attributes, chunk lengths and block checksums as
    /// FileEncoder's output (only the random IVs differ).
    fn assert_same_structure(k: &Keys, ours: &[u8], theirs: &[u8]) {
        let a = FileLayout::parse(ours).unwrap();
        let b = FileLayout::parse(theirs).unwrap();
        assert_eq!(a.header, b.header);
        assert_eq!(a.name, b.name);
        assert_eq!(a.attributes, b.attributes);
        assert_eq!(a.index.other_file_id, b.index.other_file_id);
        let sizes = |l: &FileLayout<'_>| -> Vec<i64> {
            l.index.entries.iter().map(|e| e.encoded_size).collect()
        };
        assert_eq!(sizes(&a), sizes(&b));
        assert_eq!(
            a.index.decrypt_all(k).unwrap(),
            b.index.decrypt_all(k).unwrap()
        );
        assert_eq!(ours.len(), theirs.len());
    }

    fn assert_decodes_to(k: &Keys, encoded: &[u8], src: &[u8]) {
        assert_eq!(decode_file(k, encoded).unwrap().content, src);
        let stream = to_stream_order(&FileLayout::parse(encoded).unwrap());
        let mut clear = Vec::new();
        StreamDecoder::new(k, &stream[..])
            .unwrap()
            .read_to_end(&mut clear)
            .unwrap();
        assert_eq!(clear, src);
    }

    #[test]
    fn sizes_around_block_boundaries() {
        let k = keys();
        for len in [
            0,
            1,
            127,
            128,
            4095,
            4096,
            4097,
            4096 + 127,
            4096 + 128,
            3 * 4096 + 50,
            200_000,
            16 << 20,
            (16 << 20) + 1,
        ] {
            let src = content(len, len as u64 + 1);
            let recipe = Recipe::whole(len as u64);
            let expected = serial(&k, &recipe, &src);
            for o in [opts(0, DEFAULT_BATCH_BYTES), opts(2, 64 << 10), opts(3, 1)] {
                let (out, changed) = parallel(&k, &recipe, Arc::new(src.clone()), o);
                assert!(!changed);
                assert_same_structure(&k, &out, &expected);
                assert_decodes_to(&k, &out, &src);
            }
        }
    }

    #[test]
    fn diff_recipe_matches_file_encoder() {
        let k = keys();
        let src = content(300_000, 5);
        let old = BlockClear::of(&[3u8; 6000]);
        let mut instructions = vec![Instruction::New {
            offset: 0,
            len: 50_000,
        }];
        for i in 0..5000 {
            instructions.push(Instruction::Old {
                index: i,
                clear: old,
            });
        }
        instructions.push(Instruction::New {
            offset: 80_000,
            len: 100_000,
        });
        instructions.push(Instruction::Old {
            index: 9,
            clear: old,
        });
        instructions.push(Instruction::New {
            offset: 299_990,
            len: 10,
        });
        let recipe = Recipe {
            other_file_id: 0x55,
            instructions,
        };
        let expected = serial(&k, &recipe, &src);
        for o in [opts(0, 1 << 20), opts(2, 8192)] {
            let (out, changed) = parallel(&k, &recipe, Arc::new(src.clone()), o);
            assert!(!changed);
            assert_same_structure(&k, &out, &expected);
        }
    }

    /// The diff path: the search reads the file through the LocalFile's
    /// descriptor, the encoder encodes its recipe; combined with the old
    /// object the upload decodes to the new content.
    #[test]
    fn diff_of_a_local_file() {
        let k = keys();
        let old = content(2 << 20, 21);
        let old_obj =
            bb_format::encode::encode_file(&k, &meta(&k), &Recipe::whole(old.len() as u64), &old)
                .unwrap();
        let mut new = old.clone();
        new.splice(700_000..700_000, b"inserted bytes".iter().copied());
        new[1_500_000..1_500_100].fill(b'x');
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &new).unwrap();

        let local = LocalFile::open(&path).unwrap();
        let index = FileLayout::parse(&old_obj).unwrap().index;
        let blocks = index.decrypt_all(&k).unwrap();
        let outcome = bb_format::diff::diff(
            &index,
            &blocks,
            0x99,
            &mut local.file(),
            local.len(),
            &mut Default::default(),
        )
        .unwrap();
        assert!(outcome.recipe.has_references());
        let len = local.len();
        let mut enc = ParallelEncoder::new(
            k.clone(),
            meta(&k),
            outcome.recipe,
            Arc::new(local),
            // Small pieces, so that the few new blocks still go to workers.
            opts(2, 4096),
        )
        .unwrap();
        assert!(enc.threads() > 0);
        let mut patch = Vec::new();
        enc.read_to_end(&mut patch).unwrap();
        assert!(!enc.changed_while_reading());
        // Far smaller than the file: most blocks are references.
        assert!(patch.len() < len as usize / 10, "{} bytes", patch.len());
        let whole = bb_format::combine::combine(&patch, &old_obj).unwrap();
        assert_decodes_to(&k, &whole, &new);
    }

    #[test]
    fn shrunk_source_is_padded_and_flagged() {
        let k = keys();
        let src = content(100_000, 9);
        let recipe = Recipe::whole(150_000);
        for o in [opts(0, 1 << 20), opts(2, 16384)] {
            let (out, changed) = parallel(&k, &recipe, Arc::new(src.clone()), o);
            assert!(changed);
            let mut padded = src.clone();
            padded.resize(150_000, 0);
            assert!(FileLayout::parse(&out).unwrap().is_complete());
            assert_decodes_to(&k, &out, &padded);
        }
    }

    #[test]
    fn local_file_that_grows_keeps_its_size_at_open_and_is_flagged() {
        let k = keys();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let src = content(3 << 20, 11);
        std::fs::write(&path, &src).unwrap();
        let m = meta(&k);

        let mut enc = ParallelEncoder::open(k.clone(), &path, m.clone(), opts(2, 1 << 20)).unwrap();
        assert_eq!(enc.threads(), 2);
        let mut out = Vec::new();
        enc.read_to_end(&mut out).unwrap();
        assert!(!enc.changed_while_reading());
        assert_decodes_to(&k, &out, &src);

        let mut enc = ParallelEncoder::open(k.clone(), &path, m, opts(2, 1 << 20)).unwrap();
        let mut head = [0u8; 100];
        enc.read_exact(&mut head).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"more").unwrap();
        let mut out = head.to_vec();
        enc.read_to_end(&mut out).unwrap();
        assert!(enc.changed_while_reading());
        assert_decodes_to(&k, &out, &src);
    }

    #[test]
    fn open_refuses_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let k = keys();
        let e = ParallelEncoder::open(k.clone(), dir.path(), meta(&k), opts(2, 1 << 20));
        assert!(matches!(e, Err(Error::Local { .. })));
    }

    struct Failing {
        after: u64,
    }

    impl Source for Failing {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            if offset >= self.after {
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, "nope"));
            }
            buf.fill(1);
            Ok(buf.len().min((self.after - offset) as usize))
        }
    }

    #[test]
    fn read_errors_pass_through_and_stick() {
        let k = keys();
        for o in [opts(0, 1 << 20), opts(2, 8192)] {
            let mut enc = ParallelEncoder::new(
                k.clone(),
                meta(&k),
                Recipe::whole(1 << 20),
                Arc::new(Failing { after: 500_000 }),
                o,
            )
            .unwrap();
            let err = enc.read_to_end(&mut Vec::new()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
            assert!(enc.read(&mut [0u8; 10]).is_err());
        }
    }

    /// Records the furthest byte read.
    struct Watched {
        data: Vec<u8>,
        furthest: AtomicU64,
    }

    impl Source for Watched {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let n = self.data.read_at(buf, offset)?;
            self.furthest
                .fetch_max(offset + n as u64, Ordering::Relaxed);
            Ok(n)
        }
    }

    #[test]
    fn workers_stay_within_the_window_and_stop_on_drop() {
        let k = keys();
        let batch = 64 << 10;
        let src = Arc::new(Watched {
            data: content(8 << 20, 3),
            furthest: AtomicU64::new(0),
        });
        let mut enc = ParallelEncoder::new(
            k.clone(),
            meta(&k),
            Recipe::whole(8 << 20),
            src.clone(),
            opts(2, batch),
        )
        .unwrap();
        // The prefix and a little of the first piece.
        enc.read_exact(&mut [0u8; 200]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        // Window of 4 pieces plus the one being read.
        let furthest = src.furthest.load(Ordering::Relaxed);
        assert!(furthest > 0);
        assert!(furthest <= 5 * batch, "read ahead to {furthest}");
        drop(enc);
        // Nothing is still reading after the drop joined the workers.
        let after = src.furthest.load(Ordering::Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(src.furthest.load(Ordering::Relaxed), after);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn any_size_and_split(len in 0usize..300_000, seed: u64, threads in 0usize..4,
                              batch in 1u64..70_000) {
            let k = keys();
            let src = content(len, seed);
            let recipe = Recipe::whole(len as u64);
            let (out, changed) = parallel(&k, &recipe, Arc::new(src.clone()), opts(threads, batch));
            prop_assert!(!changed);
            assert_same_structure(&k, &out, &serial(&k, &recipe, &src));
            prop_assert_eq!(decode_file(&k, &out).unwrap().content, src);
        }
    }
}
