//! The client's diff search (`formats.md` §5): given the decrypted block index of
//! the previous version and the new file, find which old blocks occur in the new
//! file and write the [`Recipe`] the encoder turns into a diff upload.
//!
//! Owns: choosing the sizes to search (§5.3), the rolling search (§5.4), its limits
//! and the recipe (§5.5). Must not know: keys, chunks, the encoder, the protocol
//! (the keep-alive is a callback), or where the new file lives (any `Read + Seek`).
//!
//! # Design
//!
//! The server accepts any structurally valid diff, but we follow the 0.13 client
//! step for step so that our uploads reuse the same blocks as its uploads would
//! (the golden test replays the C++ client's own match log). Three details of
//! 0.13 shape the code and must not be "simplified" away:
//!
//! * **Logical chunks.** 0.13 reads the file one block size at a time and
//!   handles a few things only once per read: the deadline and keep-alive
//!   checks, and skipping over a match recorded by an earlier pass at the
//!   position where the read starts. Which window offsets get tested therefore
//!   depends on where those reads start (multiples of the block size). We read
//!   the file in large buffers for speed, but walk it in the same logical chunks:
//!   chunk `j` (from 1) holds file bytes `[j*S, (j+1)*S)`, and the window starts
//!   it covers are `[(j-1)*S, (j-1)*S + bytes in chunk j)`.
//! * **Skips.** After a match the window jumps by the block size without
//!   testing; a jump that crosses the end of a chunk is finished at the start of
//!   the next one (the "roll-over"). Offsets already holding a match of this
//!   size or larger are never tested.
//! * **The end.** When a read comes back short, the final window (the last `S`
//!   bytes of the file) is tested once more, even if a skip was pending.
//!
//! The found-block limit is checked, as in 0.13, only after a test that did not
//! match. Hitting it or the deadline stops the search and keeps what was found
//! (0.13 does not throw its matches away in either case); [`DiffOutcome::stopped`]
//! says why, so a caller may still choose a full upload.
//!
//! # Speed
//!
//! The per-byte loop is a rolling-checksum update plus one bit test in an 8 KiB
//! bitmap of the non-empty buckets of the 65536-entry table; on a hit, one more
//! flat-table load compares the other half of the checksum with a one-entry
//! bucket. Everything else (bucket scan, the map of found blocks, MD5) happens
//! only for a window that may match. Reordering the 0.13 tests (it looks up the
//! found map before comparing weak checksums) is safe because every outcome is
//! decided the same way: see [`Pass::test`] and [`roll_to_candidate`]. The file
//! is read in 8 MiB buffers, so memory stays bounded whatever its size; per
//! matched block the cost is one MD5 of it, which bounds the speed of diffing a
//! mostly unchanged file.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use crate::checksum::RollingChecksum;
use crate::crypto;
use crate::error::{Error, Result};
use crate::index::{BlockClear, BlockIndex};
use crate::recipe::{Instruction, Recipe};

/// At most this many block sizes are searched (0.13's
/// `BACKUP_FILE_DIFF_MAX_BLOCK_SIZES`; a design note says 8, the code says 64).
pub const MAX_SIZES: usize = 64;
/// Only old blocks longer than this are searched for.
pub const MIN_SEARCH_SIZE: i32 = 128;
/// The search stops when more than this many times the old block count have
/// been found (`BACKUP_FILE_DIFF_MAX_BLOCK_FIND_MULTIPLE`).
pub const MAX_FIND_MULTIPLE: u64 = 4096;
/// 0.13 refuses (as a bad file) to search for a block size above this.
const MAX_SEARCH_SIZE: i64 = 524_288 + 1024 - 4;
/// Read buffer for the new file.
const READ_BUFFER: usize = 8 << 20;

/// Calls a function (in the client: send a protocol keep-alive) whenever
/// `every` has passed, checked once per chunk read, as 0.13's `KeepAliveTime`.
pub struct KeepAlive<'a> {
    /// `KeepAliveTime`.
    pub every: Duration,
    /// Sends the keep-alive.
    pub send: &'a mut dyn FnMut(),
}

impl std::fmt::Debug for KeepAlive<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepAlive")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// Time limits of a search.
#[derive(Debug, Default)]
pub struct DiffLimits<'a> {
    /// Stop searching (keeping what was found) once this instant has passed:
    /// start + `MaximumDiffingTime`.
    pub deadline: Option<Instant>,
    pub keep_alive: Option<KeepAlive<'a>>,
}

/// Why a search ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The deadline passed.
    Deadline,
    /// More than [`MAX_FIND_MULTIPLE`] × old block count matches were found.
    TooManyMatches,
}

/// What the search found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matches {
    /// New-file offset -> index of the old block found there. Matches may
    /// overlap; the recipe skips the overlapping ones.
    pub found: BTreeMap<u64, usize>,
    /// Set if the search ended early.
    pub stopped: Option<Stop>,
}

/// The result of [`diff`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffOutcome {
    /// What to encode: a diff against the old object, or a whole file if
    /// nothing matched (`other_file_id` 0).
    pub recipe: Recipe,
    /// Set if the search ended early; the recipe then uses what was found.
    pub stopped: Option<Stop>,
    /// Matches found, overlapping ones included.
    pub matches: usize,
}

/// Diffs the new file (`new`, `new_len` bytes) against the previous version:
/// `old_index` as stored (object `old_id`) and its entries decrypted
/// (`old_blocks`, from [`BlockIndex::decrypt_all`]).
///
/// Errors: an index that refers to another file (0.13: "cannot diff an
/// incomplete file"), `old_blocks` not matching the index, a searched block size
/// 0.13 rejects, or reading the new file (including it being shorter than
/// `new_len`). A legacy v0 index is not diffed against: the result is a whole
/// file, as in 0.13.
pub fn diff<R: Read + Seek>(
    old_index: &BlockIndex,
    old_blocks: &[BlockClear],
    old_id: i64,
    new: &mut R,
    new_len: u64,
    limits: &mut DiffLimits<'_>,
) -> Result<DiffOutcome> {
    if old_index.legacy_v0 {
        return Ok(DiffOutcome {
            recipe: Recipe::whole(new_len),
            stopped: None,
            matches: 0,
        });
    }
    if old_index.other_file_id != 0 || old_index.has_references() {
        return Err(Error::corrupt(
            "diff",
            format!(
                "cannot diff an incomplete file: the index refers to object {:#x}",
                old_index.other_file_id
            ),
        ));
    }
    if old_blocks.len() != old_index.entries.len() {
        return Err(Error::corrupt(
            "diff",
            format!(
                "{} decrypted entries for an index of {}",
                old_blocks.len(),
                old_index.entries.len()
            ),
        ));
    }
    let m = search(old_blocks, new, new_len, limits)?;
    Ok(DiffOutcome {
        recipe: recipe_from_matches(old_blocks, &m.found, new_len, old_id),
        stopped: m.stopped,
        matches: m.found.len(),
    })
}

/// The block sizes to search, best first (§5.3): sizes over 128 bytes ranked by
/// the area they cover (size × count), larger first, equal areas keeping the
/// smaller size first; at most [`MAX_SIZES`]. The search runs them in reverse.
pub fn sizes_to_search(old: &[BlockClear]) -> Vec<u32> {
    let mut counts: BTreeMap<i32, u64> = BTreeMap::new();
    for b in old {
        // 0.13 holds the size in an int32: anything over 2^31 is negative there.
        let size = b.size as i32;
        if size > MIN_SEARCH_SIZE {
            *counts.entry(size).or_default() += 1;
        }
    }
    let mut ranked: Vec<(u64, u32)> = counts
        .into_iter()
        .map(|(size, n)| (n.saturating_mul(size as u64), size as u32))
        .collect();
    // Sizes come in increasing order and the sort is stable, so equal areas
    // keep the smaller size first, as 0.13's insertion with `>` does.
    ranked.sort_by_key(|&(area, _)| std::cmp::Reverse(area));
    ranked.truncate(MAX_SIZES);
    ranked.into_iter().map(|(_, s)| s).collect()
}

/// Runs the search of §5.4 over the new file and returns every match.
pub fn search<R: Read + Seek>(
    old: &[BlockClear],
    new: &mut R,
    new_len: u64,
    limits: &mut DiffLimits<'_>,
) -> Result<Matches> {
    let max_found = (old.len() as u64).saturating_mul(MAX_FIND_MULTIPLE);
    search_with(old, new, new_len, limits, max_found, READ_BUFFER)
}

/// [`search`] with the found-block limit and the read buffer size given, so
/// that tests can reach the limit and the buffer refills with small inputs.
fn search_with<R: Read + Seek>(
    old: &[BlockClear],
    new: &mut R,
    new_len: u64,
    limits: &mut DiffLimits<'_>,
    max_found: u64,
    read_buffer: usize,
) -> Result<Matches> {
    if u32::try_from(old.len()).is_err() {
        return Err(Error::corrupt(
            "diff",
            format!("{} old blocks are more than any file has", old.len()),
        ));
    }
    let sizes = sizes_to_search(old);
    if let Some(&big) = sizes.iter().max()
        && i64::from(big) > MAX_SEARCH_SIZE
    {
        return Err(Error::corrupt(
            "diff",
            format!("old block of {big} bytes is larger than any block 0.13 writes"),
        ));
    }
    let mut found = BTreeMap::new();
    let Some(&largest) = sizes.iter().filter(|&&s| u64::from(s) <= new_len).max() else {
        // Nothing to search for, or every block is longer than the file.
        return Ok(Matches {
            found,
            stopped: None,
        });
    };
    let mut table = Table::new();
    let mut window = Window::new(largest as usize, read_buffer, new_len);
    let mut clock = Clock::new(limits);
    for &size in sizes.iter().rev() {
        if u64::from(size) > new_len {
            continue;
        }
        table.fill(old, size);
        let mut pass = Pass {
            old,
            size: size as usize,
            s64: u64::from(size),
            len: new_len,
            table: &table,
            found: &mut found,
            max_found,
        };
        if let Some(stop) = pass.run(new, &mut window, &mut clock)? {
            return Ok(Matches {
                found,
                stopped: Some(stop),
            });
        }
    }
    Ok(Matches {
        found,
        stopped: None,
    })
}

/// Turns matches into a recipe (§5.5): gaps become `New` runs, each match not
/// overlapping the previous one an `Old` block, trailing bytes a last `New` run.
/// No matches give a whole-file recipe with other file ID 0.
fn recipe_from_matches(
    old: &[BlockClear],
    found: &BTreeMap<u64, usize>,
    new_len: u64,
    old_id: i64,
) -> Recipe {
    if found.is_empty() {
        return Recipe::whole(new_len);
    }
    let mut instructions = Vec::new();
    let mut loc = 0u64;
    for (&offset, &index) in found {
        if offset < loc {
            continue;
        }
        if offset > loc {
            instructions.push(Instruction::New {
                offset: loc,
                len: offset - loc,
            });
        }
        let clear = old[index];
        instructions.push(Instruction::Old {
            index: index as u64,
            clear,
        });
        loc = offset + u64::from(clear.size);
    }
    if loc < new_len {
        instructions.push(Instruction::New {
            offset: loc,
            len: new_len - loc,
        });
    }
    Recipe {
        other_file_id: old_id,
        instructions,
    }
}

/// The 65536-bucket table of the old blocks of one size, keyed by the `b` half
/// of the weak checksum, each bucket listing the highest old index first (0.13
/// pushes onto the front of a list in index order). Stored flat: `start[h]..
/// start[h+1]` is bucket `h` in `entries`.
///
/// Two summaries serve the hot loop: `nonempty`, a bitmap small enough to stay
/// in L1, and `quick`, which for a one-entry bucket holds that entry's `a`
/// half, so that a checksum which only shares the bucket is dismissed without
/// touching `start` and `entries` ([`MANY`] marks buckets with several entries).
struct Table {
    nonempty: Box<[u64; 1024]>,
    quick: Vec<u32>,
    start: Vec<u32>,
    entries: Vec<(u32, usize)>,
}

/// In [`Table::quick`]: the bucket has more than one entry.
const MANY: u32 = 1 << 16;

impl Table {
    fn new() -> Table {
        Table {
            nonempty: Box::new([0; 1024]),
            quick: vec![0; 65536],
            start: vec![0; 65537],
            entries: Vec::new(),
        }
    }

    /// Fills the table with the blocks of `size`; `old` has at most
    /// `u32::MAX` entries.
    fn fill(&mut self, old: &[BlockClear], size: u32) {
        self.nonempty.fill(0);
        self.start.fill(0);
        self.entries.clear();
        for b in old.iter().filter(|b| b.size == size) {
            self.start[(b.weak >> 16) as usize + 1] += 1;
        }
        for h in 0..65536 {
            self.start[h + 1] += self.start[h];
        }
        self.entries.resize(self.start[65536] as usize, (0, 0));
        // Fill each bucket from its end, in increasing index order, so that
        // it reads highest index first.
        let mut next: Vec<u32> = self.start[1..].to_vec();
        for (i, b) in old.iter().enumerate().filter(|(_, b)| b.size == size) {
            let h = (b.weak >> 16) as usize;
            next[h] -= 1;
            self.entries[next[h] as usize] = (b.weak, i);
            self.nonempty[h >> 6] |= 1 << (h & 63);
            self.quick[h] = if self.start[h + 1] - self.start[h] > 1 {
                MANY
            } else {
                b.weak & 0xffff
            };
        }
    }

    #[inline]
    fn bucket(&self, h: u16) -> &[(u32, usize)] {
        let h = h as usize;
        &self.entries[self.start[h] as usize..self.start[h + 1] as usize]
    }
}

/// The part of the new file in memory: `buf[..filled]` holds file bytes from
/// `start`. Refilled from the reader in large pieces; bytes before the current
/// window are dropped.
struct Window {
    buf: Vec<u8>,
    start: u64,
    filled: usize,
    /// File bytes consumed from the reader so far in this pass.
    read_to: u64,
}

impl Window {
    fn new(max_size: usize, read_buffer: usize, len: u64) -> Window {
        // A chunk's windows and bytes span at most two block sizes, and never
        // more than the file.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        Window {
            buf: vec![0; read_buffer.max(2 * max_size).min(len)],
            start: 0,
            filled: 0,
            read_to: 0,
        }
    }

    fn rewind<R: Read + Seek>(&mut self, r: &mut R) -> Result<()> {
        r.seek(SeekFrom::Start(0)).map_err(|source| Error::Io {
            what: "diff: rewinding the new file",
            source,
        })?;
        self.start = 0;
        self.filled = 0;
        self.read_to = 0;
        Ok(())
    }

    /// Makes file bytes `[keep, upto)` present (`upto <= len`).
    fn ensure<R: Read>(&mut self, r: &mut R, keep: u64, upto: u64, len: u64) -> Result<()> {
        if upto <= self.start + self.filled as u64 {
            return Ok(());
        }
        // Drop what lies before `keep`, then fill the buffer as far as the file goes.
        let drop = (keep - self.start) as usize;
        self.buf.copy_within(drop..self.filled, 0);
        self.filled -= drop;
        self.start = keep;
        let want = ((self.buf.len() - self.filled) as u64).min(len - self.read_to) as usize;
        let target = self.filled + want;
        while self.filled < target {
            match r.read(&mut self.buf[self.filled..target]) {
                Ok(0) => {
                    return Err(Error::Io {
                        what: "diff: reading the new file",
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("file ended at {} bytes, expected {len}", self.read_to),
                        ),
                    });
                }
                Ok(n) => {
                    self.filled += n;
                    self.read_to += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Io {
                        what: "diff: reading the new file",
                        source,
                    });
                }
            }
        }
        debug_assert!(upto <= self.start + self.filled as u64);
        Ok(())
    }

    /// Index in `buf` of file offset `pos` (which must be present).
    #[inline]
    fn at(&self, pos: u64) -> usize {
        (pos - self.start) as usize
    }
}

/// Deadline and keep-alive bookkeeping, ticked once per chunk read.
struct Clock<'l, 'a> {
    limits: &'l mut DiffLimits<'a>,
    last_keep_alive: Instant,
}

impl<'l, 'a> Clock<'l, 'a> {
    fn new(limits: &'l mut DiffLimits<'a>) -> Self {
        Clock {
            limits,
            last_keep_alive: Instant::now(),
        }
    }

    /// True if the deadline has passed; sends a keep-alive when one is due.
    fn tick(&mut self) -> bool {
        if self.limits.deadline.is_none() && self.limits.keep_alive.is_none() {
            return false;
        }
        let now = Instant::now();
        if self.limits.deadline.is_some_and(|d| now >= d) {
            return true;
        }
        if let Some(k) = &mut self.limits.keep_alive
            && now.duration_since(self.last_keep_alive) >= k.every
        {
            (k.send)();
            self.last_keep_alive = now;
        }
        false
    }
}

/// What a test at one offset decided.
enum Tested {
    /// An old block matches here (recorded in the found map).
    Match,
    /// Nothing here; carry on.
    NoMatch,
    /// Too many matches: stop the search.
    Abort,
}

/// One pass of the search, for one block size.
struct Pass<'p> {
    old: &'p [BlockClear],
    size: usize,
    s64: u64,
    len: u64,
    table: &'p Table,
    found: &'p mut BTreeMap<u64, usize>,
    max_found: u64,
}

impl Pass<'_> {
    /// Size of the match recorded at `pos` by this or an earlier pass, or 0.
    #[inline]
    fn goodness(&self, pos: u64) -> u64 {
        self.found
            .get(&pos)
            .map_or(0, |&i| u64::from(self.old[i].size))
    }

    /// Tests the window at `pos` whose bucket is non-empty. 0.13 does: if no
    /// match of this size or larger is recorded here, look for an entry with the
    /// same 32-bit checksum, then for the first entry with the window's MD5;
    /// after a test without a match, stop if too many blocks were found. We
    /// compare checksums before looking in the found map (it is far cheaper);
    /// the found map is still consulted before anything that depends on it.
    fn test(
        &mut self,
        window: &[u8],
        ck: &RollingChecksum,
        pos: u64,
        final_window: bool,
    ) -> Tested {
        let bucket = self.table.bucket(ck.component2());
        let weak = ck.value();
        let too_many = self.found.len() as u64 > self.max_found;
        if !bucket.iter().any(|&(w, _)| w == weak) {
            // A failed test, if 0.13 would have tested here at all.
            if too_many && !final_window && self.goodness(pos) < self.s64 {
                return Tested::Abort;
            }
            return Tested::NoMatch;
        }
        if self.goodness(pos) >= self.s64 {
            return Tested::NoMatch;
        }
        let md5 = crypto::md5(window);
        // 0.13 compares the MD5 with every entry of the bucket, whatever its
        // weak checksum.
        if let Some(&(_, index)) = bucket.iter().find(|&&(_, i)| self.old[i].md5 == md5) {
            self.found.insert(pos, index);
            return Tested::Match;
        }
        if too_many && !final_window {
            return Tested::Abort;
        }
        Tested::NoMatch
    }

    /// Slides the window over the whole file, chunk by chunk as 0.13 reads it.
    fn run<R: Read + Seek>(
        &mut self,
        r: &mut R,
        w: &mut Window,
        clock: &mut Clock<'_, '_>,
    ) -> Result<Option<Stop>> {
        let s = self.s64;
        w.rewind(r)?;
        w.ensure(r, 0, s, self.len)?;
        let mut ck = RollingChecksum::new(&w.buf[..self.size]);
        // Start of the current window, and bytes of a skip still to do.
        let mut p = 0u64;
        let mut rollover = 0u64;
        let mut chunk = 1u64;
        loop {
            if clock.tick() {
                return Ok(Some(Stop::Deadline));
            }
            let chunk_start = chunk * s;
            let n = s.min(self.len - chunk_start.min(self.len));
            // Window starts covered by this chunk: [p, end).
            let end = chunk_start - s + n;
            w.ensure(r, p, chunk_start + n, self.len)?;
            debug_assert_eq!(p, chunk_start - s);

            if rollover > 0 && p < end {
                let step = rollover.min(end - p);
                self.advance(w, &mut ck, &mut p, step);
                rollover -= step;
            }
            if rollover == 0 {
                let here = self.goodness(p);
                if here >= s {
                    // Skip over a block found by an earlier (larger) pass.
                    let step = here.min(end - p);
                    self.advance(w, &mut ck, &mut p, step);
                    rollover = here - step;
                }
            }
            if rollover == 0 {
                match self.scan(w, &mut ck, &mut p, end) {
                    Scan::Done => {}
                    Scan::Skip(rest) => rollover = rest,
                    Scan::Abort => return Ok(Some(Stop::TooManyMatches)),
                }
            }
            if n != s {
                // Short read: test the final window once, then this size is done.
                debug_assert_eq!(p, self.len - s);
                let h = ck.component2();
                if (self.table.nonempty[(h >> 6) as usize] >> (h & 63)) & 1 != 0 {
                    let i = w.at(p);
                    let _ = self.test(&w.buf[i..i + self.size], &ck, p, true);
                }
                return Ok(None);
            }
            chunk += 1;
        }
    }

    /// Tests and rolls the window from `p` up to `end`, stopping after a match
    /// (which skips ahead by the block size; what is left of that skip beyond
    /// `end` is returned).
    fn scan(&mut self, w: &Window, ck: &mut RollingChecksum, p: &mut u64, end: u64) -> Scan {
        let size = self.size;
        while *p < end {
            let from = w.at(*p);
            let to = w.at(end);
            let every_hit = self.found.len() as u64 > self.max_found;
            let Some(k) = roll_to_candidate(
                ck,
                &w.buf[from..to],
                &w.buf[from + size..to + size],
                size,
                self.table,
                every_hit,
            ) else {
                *p = end;
                return Scan::Done;
            };
            *p += k as u64;
            let i = w.at(*p);
            match self.test(&w.buf[i..i + size], ck, *p, false) {
                Tested::Match => {
                    let step = self.s64.min(end - *p);
                    self.advance(w, ck, p, step);
                    return Scan::Skip(self.s64 - step);
                }
                Tested::Abort => return Scan::Abort,
                Tested::NoMatch => {
                    ck.roll(w.buf[i], w.buf[i + size], size);
                    *p += 1;
                }
            }
        }
        Scan::Done
    }

    /// Moves the window `step` bytes forward without testing.
    fn advance(&self, w: &Window, ck: &mut RollingChecksum, p: &mut u64, step: u64) {
        if step == 0 {
            return;
        }
        let i = w.at(*p);
        let step = step as usize;
        // Summing a window afresh costs about half as much per byte as
        // rolling, so a skip of half a block or more is cheaper summed afresh.
        if step >= self.size / 2 {
            *ck = RollingChecksum::new(&w.buf[i + step..i + step + self.size]);
        } else {
            for k in i..i + step {
                ck.roll(w.buf[k], w.buf[k + self.size], self.size);
            }
        }
        *p += step as u64;
    }
}

enum Scan {
    /// Reached the end of the chunk.
    Done,
    /// Matched; this many bytes of the skip remain for the next chunk.
    Skip(u64),
    /// Too many matches.
    Abort,
}

/// The hot loop: rolls the checksum over `leaving[k]` / `entering[k]` until
/// the window is a candidate for [`Pass::test`], returning that `k` (the window
/// not yet rolled past it), or `None` after rolling over all of them.
///
/// A candidate is a window whose bucket is non-empty, except that a window
/// whose one-entry bucket holds a different 32-bit checksum is passed over
/// unless `every_hit`: testing it could only fail, and a failed test matters
/// only once too many blocks were found.
#[inline]
fn roll_to_candidate(
    ck: &mut RollingChecksum,
    leaving: &[u8],
    entering: &[u8],
    size: usize,
    table: &Table,
    every_hit: bool,
) -> Option<usize> {
    // Work on a copy: through the `&mut` the compiler would store the state on
    // every byte and reload it, putting memory latency in the critical path.
    let mut c = *ck;
    let nonempty = &*table.nonempty;
    let quick = &table.quick[..65536];
    for (k, (&out, &inn)) in leaving.iter().zip(entering).enumerate() {
        let h = c.component2();
        if (nonempty[(h >> 6) as usize] >> (h & 63)) & 1 != 0 {
            let q = quick[h as usize];
            if every_hit || q == MANY || q == c.value() & 0xffff {
                *ck = c;
                return Some(k);
            }
        }
        c.roll(out, inn, size);
    }
    *ck = c;
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocksize::RunLayout;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, RngCore, SeedableRng};
    use std::io::Cursor;

    /// The old blocks of `data` as 0.13 would split a full upload of it.
    fn blocks_of(data: &[u8]) -> Vec<BlockClear> {
        let l = RunLayout::for_len(data.len() as u64);
        let mut out = Vec::new();
        let mut at = 0usize;
        for i in 0..l.count {
            let n = l.block_len(i) as usize;
            out.push(BlockClear::of(&data[at..at + n]));
            at += n;
        }
        out
    }

    /// The old blocks of `data` cut at the given sizes (the rest is ignored).
    fn blocks_cut(data: &[u8], sizes: &[usize]) -> Vec<BlockClear> {
        let mut at = 0;
        sizes
            .iter()
            .map(|&n| {
                let b = BlockClear::of(&data[at..at + n]);
                at += n;
                b
            })
            .collect()
    }

    fn run_diff(old_blocks: &[BlockClear], new: &[u8]) -> DiffOutcome {
        let index = fake_index(old_blocks.len());
        diff(
            &index,
            old_blocks,
            0x42,
            &mut Cursor::new(new),
            new.len() as u64,
            &mut DiffLimits::default(),
        )
        .unwrap()
    }

    /// A complete index of `n` entries (the encrypted parts do not matter here).
    fn fake_index(n: usize) -> BlockIndex {
        BlockIndex {
            legacy_v0: false,
            other_file_id: 0,
            iv_base: 7,
            entries: vec![
                crate::index::IndexEntry {
                    encoded_size: 10,
                    encrypted: [0; 24],
                };
                n
            ],
        }
    }

    /// What the encoder and a later decode would make of a recipe: the new file.
    fn apply(recipe: &Recipe, old: &[u8], old_blocks: &[BlockClear], new: &[u8]) -> Vec<u8> {
        let mut starts = Vec::with_capacity(old_blocks.len());
        let mut at = 0usize;
        for b in old_blocks {
            starts.push(at);
            at += b.size as usize;
        }
        let mut out = Vec::new();
        for i in &recipe.instructions {
            match *i {
                Instruction::New { offset, len } => {
                    assert!(len > 0, "empty New run");
                    assert_eq!(offset as usize, out.len(), "New run out of place");
                    out.extend_from_slice(&new[offset as usize..(offset + len) as usize]);
                }
                Instruction::Old { index, clear } => {
                    let index = index as usize;
                    assert_eq!(clear, old_blocks[index]);
                    let s = starts[index];
                    out.extend_from_slice(&old[s..s + clear.size as usize]);
                }
            }
        }
        out
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Overwrite { at: usize, bytes: Vec<u8> },
        Insert { at: usize, bytes: Vec<u8> },
        Delete { at: usize, len: usize },
        Append(Vec<u8>),
    }

    fn edit_strategy() -> impl Strategy<Value = Edit> {
        let bytes = proptest::collection::vec(any::<u8>(), 1..300);
        prop_oneof![
            (any::<usize>(), bytes.clone()).prop_map(|(at, bytes)| Edit::Overwrite { at, bytes }),
            (any::<usize>(), bytes.clone()).prop_map(|(at, bytes)| Edit::Insert { at, bytes }),
            (any::<usize>(), 1usize..5000).prop_map(|(at, len)| Edit::Delete { at, len }),
            bytes.prop_map(Edit::Append),
        ]
    }

    fn apply_edit(data: &mut Vec<u8>, e: &Edit) {
        match e {
            Edit::Overwrite { at, bytes } => {
                if data.is_empty() {
                    return;
                }
                let at = at % data.len();
                let end = (at + bytes.len()).min(data.len());
                data[at..end].copy_from_slice(&bytes[..end - at]);
            }
            Edit::Insert { at, bytes } => {
                let at = at % (data.len() + 1);
                data.splice(at..at, bytes.iter().copied());
            }
            Edit::Delete { at, len } => {
                if data.is_empty() {
                    return;
                }
                let at = at % data.len();
                let end = (at + len).min(data.len());
                data.drain(at..end);
            }
            Edit::Append(bytes) => data.extend_from_slice(bytes),
        }
    }

    fn random_bytes(rng: &mut StdRng, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        rng.fill_bytes(&mut v);
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Applying the recipe reproduces the new file, whatever the edits.
        #[test]
        fn recipe_rebuilds_new_file(
            seed in any::<u64>(),
            old_len in 0usize..70_000,
            edits in proptest::collection::vec(edit_strategy(), 0..6),
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let old = random_bytes(&mut rng, old_len);
            let mut new = old.clone();
            for e in &edits {
                apply_edit(&mut new, e);
            }
            let blocks = blocks_of(&old);
            let out = run_diff(&blocks, &new);
            prop_assert_eq!(out.stopped, None);
            prop_assert_eq!(apply(&out.recipe, &old, &blocks, &new), new.clone());
            if out.recipe.has_references() {
                prop_assert_eq!(out.recipe.other_file_id, 0x42);
            } else {
                prop_assert_eq!(&out.recipe, &Recipe::whole(new.len() as u64));
            }
        }

        /// The buffered search finds exactly what a line-by-line transcription of
        /// 0.13's search finds, on inputs made to exercise overlapping matches,
        /// several sizes, skips across chunk ends, buffer refills and the limit.
        #[test]
        fn search_equals_reference(
            seed in any::<u64>(),
            buffer in 0usize..3000,
            max_found in prop_oneof![Just(u64::MAX), 0u64..20],
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            // Old file cut into blocks of a few sizes (some too small to search).
            let palette = [100usize, 129, 130, 200, 257, 300];
            let mut sizes = Vec::new();
            for _ in 0..rng.random_range(1..20) {
                sizes.push(palette[rng.random_range(0..palette.len())]);
            }
            // Low-entropy data makes weak-checksum collisions and repeats common.
            let alphabet = rng.random_range(1u8..=255);
            let old: Vec<u8> = (0..sizes.iter().sum::<usize>())
                .map(|_| rng.random_range(0..=alphabet))
                .collect();
            let mut starts = vec![0];
            for s in &sizes {
                starts.push(starts.last().unwrap() + s);
            }
            let blocks = blocks_cut(&old, &sizes);
            // New file: old blocks, shifted pieces and noise.
            let mut new = Vec::new();
            for _ in 0..rng.random_range(0..30) {
                match rng.random_range(0..4) {
                    0 | 1 => {
                        let b = rng.random_range(0..sizes.len());
                        new.extend_from_slice(&old[starts[b]..starts[b + 1]]);
                    }
                    2 => {
                        let a = rng.random_range(0..old.len());
                        let e = rng.random_range(a..=old.len().min(a + 700));
                        new.extend_from_slice(&old[a..e]);
                    }
                    _ => {
                        let n = rng.random_range(0..200);
                        new.extend((0..n).map(|_| rng.random_range(0..=alphabet)));
                    }
                }
            }
            let mut limits = DiffLimits::default();
            let got = search_with(
                &blocks, &mut Cursor::new(&new), new.len() as u64, &mut limits, max_found, buffer,
            ).unwrap();
            let (want, aborted) = reference_search(&blocks, &new, max_found);
            prop_assert_eq!(&got.found, &want);
            prop_assert_eq!(got.stopped == Some(Stop::TooManyMatches), aborted);
        }
    }

    /// 0.13's `SearchForMatchingBlocks`, transcribed statement by statement
    /// (two buffers of one block size, `goto refresh` as a labelled block), as
    /// the oracle for the buffered search.
    fn reference_search(
        old: &[BlockClear],
        new: &[u8],
        max_found: u64,
    ) -> (BTreeMap<u64, usize>, bool) {
        let sizes = sizes_to_search(old);
        let mut found: BTreeMap<u64, usize> = BTreeMap::new();
        let mut goodness: BTreeMap<u64, usize> = BTreeMap::new();
        let mut abort = false;
        for &size in sizes.iter().rev() {
            let s = size as usize;
            let mut table: Vec<Vec<usize>> = vec![Vec::new(); 65536];
            for (i, b) in old.iter().enumerate() {
                if b.size == size {
                    table[(b.weak >> 16) as usize].insert(0, i);
                }
            }
            let mut file = Cursor::new(new);
            let mut beginnings = vec![0u8; s];
            if read_full(&mut file, &mut beginnings) != s {
                continue;
            }
            let mut endings = vec![0u8; s];
            let mut offset = 0usize;
            let mut rolling = RollingChecksum::new(&beginnings);
            let mut file_block = 0u64;
            let mut file_offset = 0u64;
            let mut roll_over = 0usize;
            let second_stage = |rolling: &RollingChecksum,
                                beginnings: &[u8],
                                endings: &[u8],
                                offset: usize,
                                file_block: u64,
                                found: &mut BTreeMap<u64, usize>|
             -> bool {
                let list = &table[rolling.component2() as usize];
                if !list.iter().any(|&i| old[i].weak == rolling.value()) {
                    return false;
                }
                let mut w = beginnings[offset..].to_vec();
                w.extend_from_slice(&endings[..offset]);
                let md5 = crypto::md5(&w);
                for &i in list {
                    if old[i].md5 == md5 {
                        found.insert(file_block * s as u64 + offset as u64, i);
                        return true;
                    }
                }
                false
            };
            'chunks: loop {
                let bytes_in_endings = read_full(&mut file, &mut endings);
                'refresh: {
                    if roll_over > 0 && offset < bytes_in_endings {
                        let this_roll = roll_over.min(bytes_in_endings - offset);
                        for k in 0..this_roll {
                            rolling.roll(beginnings[offset + k], endings[offset + k], s);
                        }
                        offset += this_roll;
                        file_offset += this_roll as u64;
                        roll_over -= this_roll;
                        if roll_over > 0 {
                            break 'refresh;
                        }
                    }
                    let tmp = goodness.get(&file_offset).copied().unwrap_or(0);
                    if tmp >= s {
                        roll_over = tmp;
                        let this_roll = roll_over.min(bytes_in_endings - offset);
                        for k in 0..this_roll {
                            rolling.roll(beginnings[offset + k], endings[offset + k], s);
                        }
                        offset += this_roll;
                        file_offset += this_roll as u64;
                        roll_over -= this_roll;
                        if roll_over > 0 {
                            break 'refresh;
                        }
                    }
                    while offset < bytes_in_endings {
                        let hash = rolling.component2() as usize;
                        if !table[hash].is_empty()
                            && goodness.get(&file_offset).copied().unwrap_or(0) < s
                        {
                            if second_stage(
                                &rolling,
                                &beginnings,
                                &endings,
                                offset,
                                file_block,
                                &mut found,
                            ) {
                                goodness.insert(file_offset, s);
                                let mut skip = s;
                                let this_roll = skip.min(bytes_in_endings - offset);
                                for k in 0..this_roll {
                                    rolling.roll(beginnings[offset + k], endings[offset + k], s);
                                }
                                offset += this_roll;
                                file_offset += this_roll as u64;
                                skip -= this_roll;
                                roll_over = skip;
                                break;
                            }
                            if found.len() as u64 > max_found {
                                abort = true;
                                break;
                            }
                        }
                        rolling.roll(beginnings[offset], endings[offset], s);
                        offset += 1;
                        file_offset += 1;
                    }
                    if abort {
                        break 'chunks;
                    }
                }
                if bytes_in_endings != s {
                    let hash = rolling.component2() as usize;
                    if !table[hash].is_empty()
                        && goodness.get(&file_offset).copied().unwrap_or(0) < s
                        && second_stage(
                            &rolling,
                            &beginnings,
                            &endings,
                            offset,
                            file_block,
                            &mut found,
                        )
                    {
                        goodness.insert(file_offset, s);
                    }
                    break;
                }
                std::mem::swap(&mut beginnings, &mut endings);
                offset = 0;
                file_block += 1;
            }
            if abort {
                break;
            }
        }
        (found, abort)
    }

    fn read_full(r: &mut Cursor<&[u8]>, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            match r.read(&mut buf[n..]).unwrap() {
                0 => break,
                k => n += k,
            }
        }
        n
    }

    #[test]
    fn sizes_ranked_by_area() {
        let b = |size: u32| BlockClear {
            size,
            weak: 0,
            md5: [0; 16],
        };
        // 4096 × 3 = 12288; 6144 × 2 = 12288 (tie: smaller first); 200 × 1; 128 never.
        let old = [
            b(6144),
            b(4096),
            b(128),
            b(4096),
            b(200),
            b(6144),
            b(4096),
            b(128),
        ];
        assert_eq!(sizes_to_search(&old), vec![4096, 6144, 200]);
        // At most 64 sizes, the smallest areas dropped.
        let many: Vec<BlockClear> = (129..300).map(b).collect();
        let s = sizes_to_search(&many);
        assert_eq!(s.len(), MAX_SIZES);
        assert_eq!(s[0], 299);
        assert_eq!(*s.last().unwrap(), 236);
        // Sizes that are negative as 0.13's int32 are not searched.
        assert!(sizes_to_search(&[b(0x8000_0000)]).is_empty());
        assert!(sizes_to_search(&[]).is_empty());
    }

    #[test]
    fn small_edit_reuses_blocks() {
        let mut rng = StdRng::seed_from_u64(1);
        let old = random_bytes(&mut rng, 65536);
        let blocks = blocks_of(&old);
        assert_eq!(blocks.len(), 16);
        let mut new = old.clone();
        new[30_000] ^= 0xff;
        let out = run_diff(&blocks, &new);
        let reused = out
            .recipe
            .instructions
            .iter()
            .filter(|i| matches!(i, Instruction::Old { .. }))
            .count();
        assert_eq!(reused, 15);
        assert_eq!(apply(&out.recipe, &old, &blocks, &new), new);
        assert_eq!(
            out.recipe.instructions[7],
            Instruction::New {
                offset: 7 * 4096,
                len: 4096
            }
        );

        // An insertion shifts everything after it; the blocks are still found.
        let mut new = old.clone();
        new.splice(10_000..10_000, *b"inserted");
        let out = run_diff(&blocks, &new);
        let reused = out
            .recipe
            .instructions
            .iter()
            .filter(|i| matches!(i, Instruction::Old { .. }))
            .count();
        assert_eq!(reused, 15);
        assert_eq!(apply(&out.recipe, &old, &blocks, &new), new);
    }

    #[test]
    fn unrelated_file_is_a_whole_upload() {
        let mut rng = StdRng::seed_from_u64(2);
        let old = random_bytes(&mut rng, 20_000);
        let new = random_bytes(&mut rng, 30_000);
        let out = run_diff(&blocks_of(&old), &new);
        assert_eq!(out.recipe, Recipe::whole(30_000));
        assert_eq!(out.recipe.other_file_id, 0);
        assert_eq!(out.matches, 0);
        // A new file shorter than every block, and an empty one.
        assert_eq!(
            run_diff(&blocks_of(&old), b"short").recipe,
            Recipe::whole(5)
        );
        assert_eq!(run_diff(&blocks_of(&old), b"").recipe, Recipe::whole(0));
        // An empty old file.
        assert_eq!(run_diff(&[], &new).recipe, Recipe::whole(30_000));
    }

    #[test]
    fn identical_file_is_all_references() {
        let mut rng = StdRng::seed_from_u64(3);
        let old = random_bytes(&mut rng, 4096 * 5 + 1000);
        let blocks = blocks_of(&old);
        let out = run_diff(&blocks, &old);
        let want: Vec<Instruction> = blocks
            .iter()
            .enumerate()
            .map(|(i, &clear)| Instruction::Old {
                index: i as u64,
                clear,
            })
            .collect();
        assert_eq!(out.recipe.instructions, want);
        assert_eq!(out.recipe.other_file_id, 0x42);
    }

    #[test]
    fn refuses_incomplete_and_mismatched_indexes() {
        let blocks = blocks_of(&[1u8; 5000]);
        let mut index = fake_index(blocks.len());
        index.entries[1].encoded_size = 0;
        index.other_file_id = 9;
        let r = diff(
            &index,
            &blocks,
            1,
            &mut Cursor::new(&[1u8; 5000][..]),
            5000,
            &mut DiffLimits::default(),
        );
        assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
        // Other ID alone, and references alone.
        let mut index = fake_index(blocks.len());
        index.other_file_id = 9;
        assert!(
            diff(
                &index,
                &blocks,
                1,
                &mut Cursor::new(&[][..]),
                0,
                &mut DiffLimits::default()
            )
            .is_err()
        );
        let mut index = fake_index(blocks.len());
        index.entries[0].encoded_size = -1;
        assert!(
            diff(
                &index,
                &blocks,
                1,
                &mut Cursor::new(&[][..]),
                0,
                &mut DiffLimits::default()
            )
            .is_err()
        );
        // Decrypted entries that do not belong to the index.
        let index = fake_index(blocks.len() + 1);
        assert!(
            diff(
                &index,
                &blocks,
                1,
                &mut Cursor::new(&[][..]),
                0,
                &mut DiffLimits::default()
            )
            .is_err()
        );
        // A legacy index is not diffed against: whole upload.
        let mut index = fake_index(blocks.len());
        index.legacy_v0 = true;
        let out = diff(
            &index,
            &blocks,
            1,
            &mut Cursor::new(&[1u8; 5000][..]),
            5000,
            &mut DiffLimits::default(),
        )
        .unwrap();
        assert_eq!(out.recipe, Recipe::whole(5000));
    }

    #[test]
    fn oversized_blocks_and_short_files_are_errors() {
        let big = BlockClear {
            size: 524_288 + 1024,
            weak: 0,
            md5: [0; 16],
        };
        let r = search(
            &[big],
            &mut Cursor::new(&[][..]),
            0,
            &mut DiffLimits::default(),
        );
        assert!(r.is_err());
        // The largest block 0.13 writes (512 KiB + 127) is fine.
        let ok = BlockClear {
            size: 524_288 + 127,
            ..big
        };
        assert!(
            search(
                &[ok],
                &mut Cursor::new(&[][..]),
                0,
                &mut DiffLimits::default()
            )
            .is_ok()
        );
        // The file is shorter than promised.
        let blocks = blocks_of(&[5u8; 9000]);
        let r = search(
            &blocks,
            &mut Cursor::new(&[5u8; 9000][..]),
            20_000,
            &mut DiffLimits::default(),
        );
        assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
    }

    #[test]
    fn deadline_stops_and_keeps_matches() {
        let mut rng = StdRng::seed_from_u64(4);
        let old = random_bytes(&mut rng, 40_000);
        let blocks = blocks_of(&old);
        let mut limits = DiffLimits {
            deadline: Some(Instant::now()),
            keep_alive: None,
        };
        let out = diff(
            &fake_index(blocks.len()),
            &blocks,
            5,
            &mut Cursor::new(&old),
            old.len() as u64,
            &mut limits,
        )
        .unwrap();
        assert_eq!(out.stopped, Some(Stop::Deadline));
        assert_eq!(out.recipe, Recipe::whole(40_000));
    }

    #[test]
    fn keep_alive_is_called_between_chunks() {
        let mut rng = StdRng::seed_from_u64(5);
        let old = random_bytes(&mut rng, 40_000);
        let blocks = blocks_of(&old);
        let mut calls = 0;
        let mut send = || calls += 1;
        let mut limits = DiffLimits {
            deadline: None,
            keep_alive: Some(KeepAlive {
                every: Duration::ZERO,
                send: &mut send,
            }),
        };
        let new = random_bytes(&mut rng, 40_000);
        search(&blocks, &mut Cursor::new(&new), 40_000, &mut limits).unwrap();
        // One tick per chunk read, after the first block-sized read: the 4096
        // pass reads 9 more chunks (the last one short), the 3136 pass
        // (the last old block) 12.
        assert_eq!(calls, 9 + 12);
    }

    #[test]
    fn too_many_matches_stops_after_a_failed_test() {
        // One searchable old block of zeros; a new file of zeros matches it at
        // every block, far beyond 4096 × 1, but 0.13 only checks the limit after
        // a test that fails, which the noise at the end provides.
        let zeros = [0u8; 129];
        let blocks = vec![BlockClear::of(&zeros)];
        let mut new = vec![0u8; 129 * 4100];
        let mut rng = StdRng::seed_from_u64(6);
        new.extend(random_bytes(&mut rng, 1 << 20));
        let m = search(
            &blocks,
            &mut Cursor::new(&new),
            new.len() as u64,
            &mut DiffLimits::default(),
        )
        .unwrap();
        assert_eq!(m.stopped, Some(Stop::TooManyMatches));
        assert_eq!(m.found.len(), 4100);
        // Without the noise there is no failed test, so no stop.
        new.truncate(129 * 4100);
        let m = search(
            &blocks,
            &mut Cursor::new(&new),
            new.len() as u64,
            &mut DiffLimits::default(),
        )
        .unwrap();
        assert_eq!(m.stopped, None);
        assert_eq!(m.found.len(), 4100);
    }

    #[test]
    fn larger_match_replaces_smaller_at_same_offset() {
        // Old: a 200-byte block whose first 150 bytes are also a 150-byte block.
        let mut rng = StdRng::seed_from_u64(7);
        let data = random_bytes(&mut rng, 200);
        // 150 × 2 = 300 > 200 × 1: the 150 size is searched first, then 200.
        let blocks = vec![
            BlockClear::of(&data[..150]),
            BlockClear::of(&data[..150]),
            BlockClear::of(&data),
        ];
        let m = search(
            &blocks,
            &mut Cursor::new(&data),
            200,
            &mut DiffLimits::default(),
        )
        .unwrap();
        // The later duplicate wins the MD5 scan; then the 200 block replaces it.
        assert_eq!(m.found, BTreeMap::from([(0, 2)]));
        let m = search(
            &blocks[..2],
            &mut Cursor::new(&data),
            200,
            &mut DiffLimits::default(),
        )
        .unwrap();
        assert_eq!(m.found, BTreeMap::from([(0, 1)]));
    }
}
