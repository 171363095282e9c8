//! The transforms of [`crate::combine`] with bounded memory: inputs are read
//! through [`ReadAt`] and the output goes to a `Write`, so a server can combine
//! a 1 GiB file in a few hundred KiB.
//!
//! Owns: [`SourceLayout`] (the §2.8 structural check over positional reads) and
//! the streaming [`combine`], [`reverse_diff`], [`combine_patches`],
//! [`apply_patch`] and [`rebuild`]. Must not know: where the bytes live (the
//! caller wraps its objects and temporary files in `ReadAt`), keys.
//!
//! # Design
//!
//! Every output is in file order: the prefix (header, name, attributes) of one
//! input, the chunks, then the index. The index comes last, so each transform
//! first decides everything from the inputs' indexes, then copies chunks, then
//! writes the index; nothing needs seeking back in the output. An input's index
//! is read again (in batches of [`INDEX_BATCH`] entries) on each pass instead
//! of being kept, and the only per-block memory is one `u64` (or, for
//! [`combine_patches`], two) per block of the input that is referred into,
//! which is at most a quarter of that input's index size. Chunk bytes go
//! through one [`COPY_BUF`] buffer, and runs of chunks that are contiguous in
//! their source are copied as one range.
//!
//! Outputs are byte-identical to the in-memory functions of
//! [`crate::combine`] (the property tests compare them), and an input is
//! rejected here exactly when it is rejected there. On an error, part of the
//! output may have been written; the caller throws it away.
//!
//! Errors reading an input or writing the output are [`Error::Io`]; everything
//! else means the inputs are malformed or do not fit together.

use std::io::{self, Write};

use super::check_reference;
use crate::error::{Error, Result};
use crate::filename::{EncodedName, MAX_ENCODED_LEN};
use crate::index::{BlockIndex, INDEX_ENTRY_LEN, INDEX_HEADER_LEN, IndexEntry};
use crate::layout::{FILE_HEADER_LEN, FileHeader};
use crate::read_at::{ReadAt, read_exact_at};

/// Bytes of chunk data moved per read.
pub const COPY_BUF: usize = 64 << 10;
/// Index entries read (or written) per batch.
pub const INDEX_BATCH: usize = 1024;

/// Wraps a source's I/O error with what was being read.
fn io_err(what: &'static str) -> impl Fn(io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// A structurally verified encoded file read through [`ReadAt`]: the same
/// checks as [`crate::layout::FileLayout::parse`] (formats.md §2.8), keeping
/// only the positions and the index header, not the entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLayout {
    pub header: FileHeader,
    /// The embedded encoded name.
    pub name: EncodedName,
    /// Offset of the first chunk (end of the attributes MemBlock).
    pub data_start: u64,
    /// Offset of the block index.
    pub index_start: u64,
    /// Length of the whole file.
    pub size: u64,
    /// Number of blocks (header and index agree).
    pub num_blocks: u64,
    /// The index's other-file ID: non-zero iff some entry is a reference.
    pub other_file_id: i64,
    /// The index's IV base.
    pub iv_base: u64,
}

impl SourceLayout {
    /// Parses and verifies the file `src` holds. A read failure is
    /// [`Error::Io`]; any other error means the file is malformed.
    pub fn parse<R: ReadAt + ?Sized>(src: &mut R) -> Result<SourceLayout> {
        let size = src.len();
        let read = io_err("encoded file: reading");
        let corrupt = |detail: String| Error::corrupt("encoded file", detail);
        // Enough for the header, the longest name and the attribute length word.
        let front_len = size.min((FILE_HEADER_LEN + MAX_ENCODED_LEN + 4) as u64) as usize;
        let mut front = vec![0u8; front_len];
        read_exact_at(src, &mut front, 0).map_err(&read)?;
        let header = FileHeader::parse(&front)?;
        let (name, name_len) = EncodedName::parse(&front[FILE_HEADER_LEN..])?;
        let at = FILE_HEADER_LEN + name_len;
        let Some(len_word) = front.get(at..at + 4) else {
            return Err(Error::Truncated {
                what: "file attributes",
                offset: 0,
                need: 4,
                have: front.len().saturating_sub(at),
            });
        };
        // Big-endian MemBlock length (formats.md §2.1).
        let attr_len = u32::from_be_bytes([len_word[0], len_word[1], len_word[2], len_word[3]]);
        let data_start = (at + 4) as u64 + u64::from(attr_len);
        if data_start > size {
            return Err(Error::Truncated {
                what: "file attributes",
                offset: 4,
                need: attr_len as usize,
                have: (size - (at + 4) as u64) as usize,
            });
        }
        drop(front);

        let n = header.num_blocks as u64;
        let index_len = n
            .checked_mul(INDEX_ENTRY_LEN as u64)
            .and_then(|x| x.checked_add(INDEX_HEADER_LEN as u64))
            .filter(|&x| x <= size)
            .ok_or_else(|| corrupt(format!("{n} blocks cannot fit in {size} bytes")))?;
        let index_start = size - index_len;
        if index_start < data_start {
            return Err(corrupt("block index overlaps the attributes".into()));
        }
        let mut ih = [0u8; INDEX_HEADER_LEN];
        read_exact_at(src, &mut ih, index_start).map_err(&read)?;
        let (legacy, other_file_id, iv_base, count) = BlockIndex::parse_header(&ih)?;
        if count as u64 != n {
            return Err(corrupt("header and index block counts differ".into()));
        }
        if legacy != header.legacy_v0 {
            return Err(corrupt("header and index versions differ".into()));
        }
        let layout = SourceLayout {
            header,
            name,
            data_start,
            index_start,
            size,
            num_blocks: n,
            other_file_id,
            iv_base,
        };
        let mut pos = data_start;
        let mut has_refs = false;
        let mut entries = layout.entries();
        while let Some(e) = entries.next(src)? {
            match e.stored_len() {
                Some(len) => {
                    pos = pos
                        .checked_add(len)
                        .filter(|&end| end <= index_start)
                        .ok_or_else(|| corrupt("chunk sizes overrun the block index".into()))?;
                }
                None => has_refs = true,
            }
        }
        if pos != index_start {
            return Err(corrupt(format!(
                "{} bytes between the last chunk and the index",
                index_start - pos
            )));
        }
        if (other_file_id != 0) != has_refs {
            return Err(corrupt(
                "other-file ID is set iff an entry refers to another file: violated".into(),
            ));
        }
        Ok(layout)
    }

    /// True if every block is stored here (no references).
    pub fn is_complete(&self) -> bool {
        self.other_file_id == 0
    }

    /// A reader of the index entries in order (pass the same source to each
    /// [`Entries::next`]).
    pub fn entries(&self) -> Entries {
        Entries {
            next_offset: self.index_start + INDEX_HEADER_LEN as u64,
            remaining: self.num_blocks,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// The start of each block's chunk, plus the index start at the end, so
    /// block `k` is `starts[k]..starts[k + 1]`. Only for complete files (every
    /// block stored, so the chunks are back to back).
    fn chunk_starts<R: ReadAt + ?Sized>(&self, src: &mut R) -> Result<Vec<u64>> {
        let mut starts = Vec::with_capacity(self.num_blocks as usize + 1);
        let mut pos = self.data_start;
        let mut entries = self.entries();
        while let Some(e) = entries.next(src)? {
            starts.push(pos);
            pos += e.stored_len().unwrap_or(0);
        }
        starts.push(pos);
        Ok(starts)
    }
}

/// Reads a file's index entries in order, a batch at a time. It does not hold
/// the source, so the caller can read chunks from it in between.
#[derive(Debug)]
pub struct Entries {
    next_offset: u64,
    remaining: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl Entries {
    /// The next entry, `None` after the last.
    pub fn next<R: ReadAt + ?Sized>(&mut self, src: &mut R) -> Result<Option<IndexEntry>> {
        if self.pos == self.buf.len() {
            if self.remaining == 0 {
                return Ok(None);
            }
            let k = self.remaining.min(INDEX_BATCH as u64) as usize;
            self.buf.resize(k * INDEX_ENTRY_LEN, 0);
            read_exact_at(src, &mut self.buf, self.next_offset)
                .map_err(io_err("block index: reading"))?;
            self.next_offset += (k * INDEX_ENTRY_LEN) as u64;
            self.remaining -= k as u64;
            self.pos = 0;
        }
        let e = &self.buf[self.pos..self.pos + INDEX_ENTRY_LEN];
        self.pos += INDEX_ENTRY_LEN;
        let mut size = [0u8; 8];
        size.copy_from_slice(&e[..8]);
        let mut encrypted = [0u8; 24];
        encrypted.copy_from_slice(&e[8..]);
        Ok(Some(IndexEntry {
            // Big-endian i64, then the 24 encrypted bytes (formats.md §2.3).
            encoded_size: i64::from_be_bytes(size),
            encrypted,
        }))
    }
}

/// The output: counts bytes and names write errors.
struct Sink<'w, W: Write + ?Sized> {
    out: &'w mut W,
    written: u64,
    what: &'static str,
}

impl<W: Write + ?Sized> Sink<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(io_err(self.what))?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Which input a chunk is copied from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    A,
    B,
}

/// Copies byte ranges of two sources to the output, merging ranges that follow
/// each other in the same source into one.
struct Copier {
    buf: Vec<u8>,
    pending: Option<(Src, u64, u64)>,
}

impl Copier {
    fn new() -> Copier {
        Copier {
            buf: Vec::new(),
            pending: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add<A, B, W>(
        &mut self,
        from: Src,
        start: u64,
        len: u64,
        a: &mut A,
        b: &mut B,
        out: &mut Sink<'_, W>,
    ) -> Result<()>
    where
        A: ReadAt + ?Sized,
        B: ReadAt + ?Sized,
        W: Write + ?Sized,
    {
        match &mut self.pending {
            Some((f, _, end)) if *f == from && *end == start => *end += len,
            _ => {
                self.flush(a, b, out)?;
                self.pending = Some((from, start, start + len));
            }
        }
        Ok(())
    }

    fn flush<A, B, W>(&mut self, a: &mut A, b: &mut B, out: &mut Sink<'_, W>) -> Result<()>
    where
        A: ReadAt + ?Sized,
        B: ReadAt + ?Sized,
        W: Write + ?Sized,
    {
        let Some((from, mut start, end)) = self.pending.take() else {
            return Ok(());
        };
        if self.buf.is_empty() {
            self.buf = vec![0u8; COPY_BUF];
        }
        while start < end {
            let n = ((end - start) as usize).min(COPY_BUF);
            let chunk = &mut self.buf[..n];
            match from {
                Src::A => read_exact_at(a, chunk, start),
                Src::B => read_exact_at(b, chunk, start),
            }
            .map_err(io_err("combine: reading a chunk"))?;
            out.write(chunk)?;
            start += n as u64;
        }
        Ok(())
    }
}

/// Writes an index header and then entries, a batch at a time.
struct IndexWriter {
    buf: Vec<u8>,
}

impl IndexWriter {
    fn start<W: Write + ?Sized>(
        out: &mut Sink<'_, W>,
        other_file_id: i64,
        iv_base: u64,
        count: u64,
    ) -> Result<IndexWriter> {
        let mut h = Vec::with_capacity(INDEX_HEADER_LEN);
        // All big-endian (formats.md §2.3); always the current "bidx" magic.
        h.extend_from_slice(&crate::index::INDEX_MAGIC_V1.to_be_bytes());
        h.extend_from_slice(&other_file_id.to_be_bytes());
        h.extend_from_slice(&iv_base.to_be_bytes());
        h.extend_from_slice(&(count as i64).to_be_bytes());
        out.write(&h)?;
        Ok(IndexWriter {
            buf: Vec::with_capacity(INDEX_BATCH * INDEX_ENTRY_LEN),
        })
    }

    fn push<W: Write + ?Sized>(
        &mut self,
        out: &mut Sink<'_, W>,
        encoded_size: i64,
        encrypted: &[u8; 24],
    ) -> Result<()> {
        self.buf.extend_from_slice(&encoded_size.to_be_bytes());
        self.buf.extend_from_slice(encrypted);
        if self.buf.len() >= INDEX_BATCH * INDEX_ENTRY_LEN {
            out.write(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish<W: Write + ?Sized>(self, out: &mut Sink<'_, W>) -> Result<()> {
        out.write(&self.buf)?;
        out.out.flush().map_err(io_err(out.what))
    }
}

/// A verified current-format input; `what` names it in errors. Read failures
/// stay [`Error::Io`].
fn parse<R: ReadAt + ?Sized>(src: &mut R, what: &'static str) -> Result<SourceLayout> {
    let layout = SourceLayout::parse(src).map_err(|e| match e {
        e @ Error::Io { .. } => e,
        e => Error::corrupt(what, e.to_string()),
    })?;
    if layout.header.legacy_v0 {
        return Err(Error::corrupt(what, "legacy (v0) files cannot be combined"));
    }
    Ok(layout)
}

fn require_complete(layout: &SourceLayout, what: &'static str) -> Result<()> {
    if !layout.is_complete() {
        return Err(Error::corrupt(
            what,
            format!(
                "not a complete file: it refers to object {:#x}",
                layout.other_file_id
            ),
        ));
    }
    Ok(())
}

fn require_patch(layout: &SourceLayout, what: &'static str) -> Result<()> {
    if layout.is_complete() {
        return Err(Error::corrupt(
            what,
            "not a patch: no entry refers to another file",
        ));
    }
    Ok(())
}

/// An empty source, for copiers with one input.
fn nothing() -> &'static [u8] {
    &[]
}

/// Streaming [`crate::combine::combine`]: writes the complete new file that
/// `diff` and the complete `old` file describe, and returns its length.
pub fn combine<D, O, W>(diff: &mut D, old: &mut O, out: &mut W) -> Result<u64>
where
    D: ReadAt + ?Sized,
    O: ReadAt + ?Sized,
    W: Write + ?Sized,
{
    let d = parse(diff, "combine: diff")?;
    let o = parse(old, "combine: old file")?;
    require_complete(&o, "combine: old file")?;
    combine_parsed(diff, &d, old, &o, out)
}

/// [`combine`] once both inputs are verified (`o` complete).
fn combine_parsed<D, O, W>(
    diff: &mut D,
    d: &SourceLayout,
    old: &mut O,
    o: &SourceLayout,
    out: &mut W,
) -> Result<u64>
where
    D: ReadAt + ?Sized,
    O: ReadAt + ?Sized,
    W: Write + ?Sized,
{
    const WHAT: &str = "combine: diff";
    let starts = o.chunk_starts(old)?;
    let n_old = o.num_blocks as usize;
    // Check every reference before writing anything.
    let mut entries = d.entries();
    let mut i = 0;
    while let Some(e) = entries.next(diff)? {
        if let Some(block) = e.reference() {
            check_reference(block, n_old, i, WHAT)?;
        }
        i += 1;
    }

    let mut sink = Sink {
        out,
        written: 0,
        what: "combine: writing the output",
    };
    let mut copy = Copier::new();
    copy.add(Src::A, 0, d.data_start, diff, old, &mut sink)?;
    let mut pos = d.data_start;
    let mut entries = d.entries();
    let mut i = 0;
    while let Some(e) = entries.next(diff)? {
        match e.reference() {
            None => {
                let len = e.encoded_size as u64;
                copy.add(Src::A, pos, len, diff, old, &mut sink)?;
                pos += len;
            }
            Some(block) => {
                let k = check_reference(block, n_old, i, WHAT)?;
                let (a, b) = (starts[k], starts[k + 1]);
                copy.add(Src::B, a, b - a, diff, old, &mut sink)?;
            }
        }
        i += 1;
    }
    copy.flush(diff, old, &mut sink)?;

    let mut index = IndexWriter::start(&mut sink, 0, d.iv_base, d.num_blocks)?;
    let mut entries = d.entries();
    let mut i = 0;
    while let Some(e) = entries.next(diff)? {
        let size = match e.reference() {
            None => e.encoded_size,
            Some(block) => {
                let k = check_reference(block, n_old, i, WHAT)?;
                (starts[k + 1] - starts[k]) as i64
            }
        };
        index.push(&mut sink, size, &e.encrypted)?;
        i += 1;
    }
    index.finish(&mut sink)?;
    Ok(sink.written)
}

/// Streaming [`crate::combine::reverse_diff`]: writes the complete `old` file
/// (object `old_object_id`) rewritten as a patch against the version `diff`
/// describes. Returns the output's length and whether any block is shared; if
/// none is, the output is `old` unchanged.
///
/// For a diff that verified, "shared" is exactly "the diff has references"
/// (other file ID non-zero), so a caller that only wants the patch when one is
/// needed can skip the call for a complete diff.
pub fn reverse_diff<D, O, W>(
    diff: &mut D,
    old: &mut O,
    old_object_id: i64,
    out: &mut W,
) -> Result<(u64, bool)>
where
    D: ReadAt + ?Sized,
    O: ReadAt + ?Sized,
    W: Write + ?Sized,
{
    let d = parse(diff, "reverse diff: diff")?;
    let o = parse(old, "reverse diff: old file")?;
    require_complete(&o, "reverse diff: old file")?;
    let n_old = o.num_blocks as usize;
    // For each old block, the last diff entry that refers to it.
    const NONE: u64 = u64::MAX;
    let mut used_by = vec![NONE; n_old];
    let mut entries = d.entries();
    let mut b = 0u64;
    while let Some(e) = entries.next(diff)? {
        if let Some(block) = e.reference() {
            used_by[check_reference(block, n_old, b as usize, "reverse diff: diff")?] = b;
        }
        b += 1;
    }
    let shared = used_by.iter().any(|&u| u != NONE);
    if shared && old_object_id == 0 {
        return Err(Error::corrupt(
            "reverse diff",
            "object ID 0 cannot be the other file of a patch",
        ));
    }

    let mut sink = Sink {
        out,
        written: 0,
        what: "reverse diff: writing the output",
    };
    let mut copy = Copier::new();
    let mut none = nothing();
    copy.add(Src::A, 0, o.data_start, old, &mut none, &mut sink)?;
    let mut pos = o.data_start;
    let mut entries = o.entries();
    let mut k = 0;
    while let Some(e) = entries.next(old)? {
        // The old file is complete: every entry has a chunk.
        let len = e.stored_len().unwrap_or(0);
        if used_by[k] == NONE {
            copy.add(Src::A, pos, len, old, &mut none, &mut sink)?;
        }
        pos += len;
        k += 1;
    }
    copy.flush(old, &mut none, &mut sink)?;

    let other = if shared { old_object_id } else { 0 };
    let mut index = IndexWriter::start(&mut sink, other, o.iv_base, o.num_blocks)?;
    let mut entries = o.entries();
    let mut k = 0;
    while let Some(e) = entries.next(old)? {
        let size = match used_by[k] {
            NONE => e.encoded_size,
            b => -(b as i64),
        };
        index.push(&mut sink, size, &e.encrypted)?;
        k += 1;
    }
    index.finish(&mut sink)?;
    Ok((sink.written, shared))
}

/// Streaming [`crate::combine::combine_patches`]: `x` refers to its newer
/// version N, `y` (older) refers to `x`; writes `y` rebased onto N. Returns the
/// output's length and whether it still refers to N.
pub fn combine_patches<X, Y, W>(x: &mut X, y: &mut Y, out: &mut W) -> Result<(u64, bool)>
where
    X: ReadAt + ?Sized,
    Y: ReadAt + ?Sized,
    W: Write + ?Sized,
{
    const WHAT: &str = "combine patches: older patch";
    let xl = parse(x, "combine patches: newer patch")?;
    let yl = parse(y, WHAT)?;
    require_patch(&xl, "combine patches: newer patch")?;
    require_patch(&yl, WHAT)?;
    let n_x = xl.num_blocks as usize;
    // Each X block: its encoded size, and where its chunk starts if stored.
    let mut x_size = Vec::with_capacity(n_x);
    let mut x_start = Vec::with_capacity(n_x);
    let mut pos = xl.data_start;
    let mut entries = xl.entries();
    while let Some(e) = entries.next(x)? {
        x_size.push(e.encoded_size);
        x_start.push(pos);
        pos += e.stored_len().unwrap_or(0);
    }
    let mut entries = yl.entries();
    let mut i = 0;
    let mut refers = false;
    while let Some(e) = entries.next(y)? {
        if let Some(block) = e.reference() {
            let k = check_reference(block, n_x, i, WHAT)?;
            refers |= x_size[k] <= 0;
        }
        i += 1;
    }

    let mut sink = Sink {
        out,
        written: 0,
        what: "combine patches: writing the output",
    };
    let mut copy = Copier::new();
    copy.add(Src::B, 0, yl.data_start, x, y, &mut sink)?;
    let mut pos = yl.data_start;
    let mut entries = yl.entries();
    while let Some(e) = entries.next(y)? {
        match e.reference() {
            None => {
                let len = e.encoded_size as u64;
                copy.add(Src::B, pos, len, x, y, &mut sink)?;
                pos += len;
            }
            Some(block) => {
                // Checked above.
                let k = block as usize;
                if x_size[k] > 0 {
                    copy.add(Src::A, x_start[k], x_size[k] as u64, x, y, &mut sink)?;
                }
            }
        }
    }
    copy.flush(x, y, &mut sink)?;

    let other = if refers { xl.other_file_id } else { 0 };
    let mut index = IndexWriter::start(&mut sink, other, yl.iv_base, yl.num_blocks)?;
    let mut entries = yl.entries();
    while let Some(e) = entries.next(y)? {
        let size = match e.reference() {
            None => e.encoded_size,
            Some(block) => x_size[block as usize],
        };
        index.push(&mut sink, size, &e.encrypted)?;
    }
    index.finish(&mut sink)?;
    Ok((sink.written, refers))
}

/// One step of a rebuild (§6.4): checks `patch` is a patch and `current` is
/// complete, then writes the complete version `patch` describes. Returns its
/// length.
pub fn apply_patch<P, C, W>(patch: &mut P, current: &mut C, out: &mut W) -> Result<u64>
where
    P: ReadAt + ?Sized,
    C: ReadAt + ?Sized,
    W: Write + ?Sized,
{
    let p = parse(patch, "rebuild: patch")?;
    require_patch(&p, "rebuild: patch")?;
    let c = parse(current, "combine: old file")?;
    require_complete(&c, "combine: old file")?;
    combine_parsed(patch, &p, current, &c, out)
}

/// Streaming [`crate::combine::rebuild`]: from the newest, complete version
/// and the patches newest first, writes the complete file the last patch
/// describes (or the newest version itself when there are none), and returns
/// its length.
///
/// Every step but the last goes into a fresh scratch object from `scratch`
/// (written, flushed, then read back through `ReadAt`); at most two exist at a
/// time, the previous one being dropped once the next is written. The last
/// step goes to `out`.
pub fn rebuild<N, P, I, S, W>(
    newest: &mut N,
    patches_newest_to_oldest: I,
    scratch: &mut dyn FnMut() -> io::Result<S>,
    out: &mut W,
) -> Result<u64>
where
    N: ReadAt + ?Sized,
    I: IntoIterator<Item = P>,
    P: ReadAt,
    S: ReadAt + Write,
    W: Write + ?Sized,
{
    let n = parse(newest, "rebuild: newest version")?;
    require_complete(&n, "rebuild: newest version")?;
    let mut patches = patches_newest_to_oldest.into_iter();
    let Some(mut this) = patches.next() else {
        let mut sink = Sink {
            out,
            written: 0,
            what: "rebuild: writing the output",
        };
        let mut copy = Copier::new();
        let mut none = nothing();
        copy.add(Src::A, 0, n.size, newest, &mut none, &mut sink)?;
        copy.flush(newest, &mut none, &mut sink)?;
        sink.out.flush().map_err(io_err(sink.what))?;
        return Ok(sink.written);
    };
    let mut current: Option<S> = None;
    loop {
        let Some(next_patch) = patches.next() else {
            return match current.as_mut() {
                Some(c) => apply_patch(&mut this, c, out),
                None => apply_patch(&mut this, newest, out),
            };
        };
        let mut next = scratch().map_err(io_err("rebuild: creating a scratch object"))?;
        match current.as_mut() {
            Some(c) => apply_patch(&mut this, c, &mut next)?,
            None => apply_patch(&mut this, newest, &mut next)?,
        };
        next.flush()
            .map_err(io_err("rebuild: writing a scratch object"))?;
        // Drops the previous scratch object.
        current = Some(next);
        this = next_patch;
    }
}
