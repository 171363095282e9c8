//! The store side of every protocol command (protocol.md §3.3), as typed methods
//! on an open [`Account`]: what each does to directories, objects, refcounts and
//! the store info counters (store.md §4.3, §7; formats.md §6.5).
//!
//! Owns: the command semantics, transport-free. Must not know: the wire (no
//! command or reply types, no stream framing). Streams come in as `Read` and go
//! out as `Read` ([`ObjectStream`]); when an operation fails part-way through an
//! incoming stream, the rest of it is left unread for the session to drain.
//!
//! # Invariants
//!
//! * **Counters follow the entries.** A file entry counts in *current* if neither
//!   Deleted nor OldVersion, in *old* if OldVersion, in *deleted* if Deleted (both
//!   if both), with its `size_in_blocks`; every flag or size change below moves
//!   its blocks and count accordingly, so the counters always equal what
//!   `bbstoreaccounts check` recounts. (0.13 is sloppier in places, e.g.
//!   UndeleteFile leaves the file counts alone; we keep them right.)
//! * **Re-read after a save.** Saving a directory may rewrite its ancestors (the
//!   size of its entry there, §7.3), so an operation never modifies a directory
//!   copy it read before saving another one; it reads it again.
//! * **Nothing half-done is visible.** An upload is written under its new ID and
//!   committed only after it verified and fitted under the hard limit; the
//!   directory is saved after the new object is committed, and a reverse-diffed
//!   old version is committed only after the directory that records the
//!   dependency. A failed upload leaves no object and no counter change (its ID
//!   stays used, as in 0.13).
//! * **Limits early.** An upload is refused with `StorageLimitExceeded` as soon as
//!   its declared size or the bytes received so far prove it cannot fit, before
//!   anything more is written (protocol.md §6.4).
//!
//! Memory: everything streams through small buffers, whatever the file size.
//! A diff upload is staged in an unlinked temporary file (`.difftemp`), then
//! combined with the old version into the new object and reverse-diffed into
//! the old version's replacement by bb-format's streaming transforms; a
//! download of an old version is rebuilt patch by patch through unlinked
//! `.recombinetemp.<n>` files (store.md §3.1) and sent from the last one. Only
//! one `u64` per block of the old version is held (the transforms' tables).

use std::io::{self, Read, Write};

use bb_format::EncodedName;
use bb_format::combine::stream as combine;
use bb_format::directory::{Directory, Entry, ListFilter};
use bb_format::read_at::ReadAt;
use bb_format::storeinfo::StoreInfo;
use tracing::{debug, warn};

use crate::ObjectId;
use crate::account::{Account, ObjectKind, ROOT_DIRECTORY_ID};
use crate::error::{Error, Result};
use crate::objects::{ObjectRead, ObjectSource, ObjectWrite, TempObject, TempPurpose};
use crate::verify::{VerifiedFile, verify_file};

/// Copy buffer for uploads.
const COPY_BUF: usize = 16 << 10;

/// MoveObject's flags (protocol.md §3.1 type 11).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveFlags {
    /// Move every entry with the object's name (all versions), not just the one.
    pub all_with_same_name: bool,
    /// A deleted entry may already have the target name.
    pub allow_over_deleted: bool,
}

impl MoveFlags {
    pub const MOVE_ALL_WITH_SAME_NAME: i32 = 1;
    pub const ALLOW_MOVE_OVER_DELETED_OBJECT: i32 = 2;

    /// From the wire's bitmask (other bits ignored).
    pub fn from_bits(bits: i32) -> MoveFlags {
        MoveFlags {
            all_with_same_name: bits & Self::MOVE_ALL_WITH_SAME_NAME != 0,
            allow_over_deleted: bits & Self::ALLOW_MOVE_OVER_DELETED_OBJECT != 0,
        }
    }
}

/// GetObjectName's answer: names leaf first, root excluded; all empty/0 when the
/// object was not found (not an error, protocol.md §3.3.7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectName {
    pub names: Vec<EncodedName>,
    pub modification_time: i64,
    pub attributes_hash: u64,
    pub flags: u16,
}

/// AccountUsage (type 41).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountUsage {
    pub blocks_used: i64,
    pub blocks_in_old_files: i64,
    pub blocks_in_deleted_files: i64,
    pub blocks_in_directories: i64,
    pub blocks_soft_limit: i64,
    pub blocks_hard_limit: i64,
    pub block_size: i32,
}

/// AccountUsage2 (type 45): every store info field plus the block size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUsage2 {
    pub info: StoreInfo,
    pub block_size: i32,
}

enum Source {
    Object(Box<dyn ObjectRead>),
    /// A rebuilt old version in an unlinked temporary file.
    Temp(Box<dyn TempObject>),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Object(o) => f.debug_tuple("Object").field(o).finish(),
            Source::Temp(t) => f.debug_tuple("Temp").field(t).finish(),
        }
    }
}

/// An outgoing stream of known length: byte ranges of a stored object (or of a
/// rebuilt one in a temporary file), sent in order. GetFile's stream order is
/// `[index_start, size)` then `[0, index_start)`.
#[derive(Debug)]
pub struct ObjectStream {
    source: Source,
    ranges: Vec<(u64, u64)>,
    /// Position within the concatenated ranges.
    pos: u64,
    len: u64,
}

impl ObjectStream {
    fn new(source: Source, ranges: Vec<(u64, u64)>) -> ObjectStream {
        let len = ranges.iter().map(|(a, b)| b - a).sum();
        ObjectStream {
            source,
            ranges,
            pos: 0,
            len,
        }
    }

    /// Total bytes the stream yields (the fixed-size stream's length).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the whole stream (tests, small objects).
    pub fn into_vec(mut self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.read_to_end(&mut v).map_err(|e| Error::Stream {
            op: "read object stream",
            source: e,
        })?;
        Ok(v)
    }
}

impl Read for ObjectStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut skip = self.pos;
        for &(a, b) in &self.ranges {
            let n = b - a;
            if skip >= n {
                skip -= n;
                continue;
            }
            let at = a + skip;
            let want = ((b - at) as usize).min(buf.len());
            let got = match &mut self.source {
                Source::Temp(t) => t.read_at(&mut buf[..want], at)?,
                Source::Object(o) => o.read_at(&mut buf[..want], at).map_err(io::Error::other)?,
            };
            if got == 0 && want > 0 {
                // The object shrank under us; never yield fewer bytes silently.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "object ended before its recorded size",
                ));
            }
            self.pos += got as u64;
            return Ok(got);
        }
        Ok(0)
    }
}

/// A file entry's contribution to the counters: (current, old, deleted) flags.
fn counts_as(e: &Entry) -> (bool, bool, bool) {
    if !e.is_file() {
        return (false, false, false);
    }
    let (old, del) = (e.is_old_version(), e.is_deleted());
    (!old && !del, old, del)
}

/// Applies `sign` times the entry's contribution to the counters.
fn account_entry(info: &mut StoreInfo, e: &Entry, sign: i64) {
    let (cur, old, del) = counts_as(e);
    let s = e.size_in_blocks * sign;
    if cur {
        info.blocks_in_current_files += s;
        info.num_current_files += sign;
    }
    if old {
        info.blocks_in_old_files += s;
        info.num_old_files += sign;
    }
    if del {
        info.blocks_in_deleted_files += s;
        info.num_deleted_files += sign;
    }
}

/// Changes an entry with `change`, moving its counter contribution.
fn change_entry(info: &mut StoreInfo, e: &mut Entry, change: impl FnOnce(&mut Entry)) {
    account_entry(info, e, -1);
    change(e);
    account_entry(info, e, 1);
}

fn stream_err(op: &'static str) -> impl Fn(io::Error) -> Error {
    move |source| Error::Stream { op, source }
}

fn limit_err(op: &'static str, info: &StoreInfo, adding: i64) -> Error {
    Error::StorageLimitExceeded {
        op,
        used: info.blocks_used,
        adding,
        hard: info.blocks_hard_limit,
    }
}

/// Maps a streaming transform's error: a failure to read or write is the
/// store's own (no protocol error), anything else means the file does not fit
/// together and is answered `FileDoesNotVerify`.
fn transform_err(op: &'static str, id: ObjectId) -> impl Fn(bb_format::Error) -> Error {
    move |e| match e {
        e @ bb_format::Error::Io { .. } => Error::Format { op, source: e },
        source => Error::FileDoesNotVerify { op, id, source },
    }
}

/// Reads a temporary file for `verify_file`.
fn temp_read_at<'a>(
    t: &'a mut dyn TempObject,
    what: &'static str,
) -> impl FnMut(&mut [u8], u64) -> Result<usize> + 'a {
    move |b, off| {
        t.read_at(b, off)
            .map_err(|e| Error::io("read temporary", what, e))
    }
}

impl Account {
    /// Every entry whose flags pass the filter, with their indices.
    fn find_name(dir: &Directory, filter: ListFilter, name: &EncodedName) -> Vec<usize> {
        dir.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| filter.matches(e.flags) && e.name == *name)
            .map(|(i, _)| i)
            .collect()
    }

    /// SetClientStoreMarker (6): stores the marker and saves the info now.
    pub fn set_client_store_marker(&mut self, marker: i64) -> Result<()> {
        self.require_write("SetClientStoreMarker")?;
        self.info_mut()?.client_store_marker = marker;
        self.save_info()
    }

    /// GetAccountUsage (40).
    pub fn account_usage(&self) -> AccountUsage {
        let i = self.info();
        AccountUsage {
            blocks_used: i.blocks_used,
            blocks_in_old_files: i.blocks_in_old_files,
            blocks_in_deleted_files: i.blocks_in_deleted_files,
            blocks_in_directories: i.blocks_in_directories,
            blocks_soft_limit: i.blocks_soft_limit,
            blocks_hard_limit: i.blocks_hard_limit,
            block_size: i32::try_from(self.block_size()).unwrap_or(i32::MAX),
        }
    }

    /// GetAccountUsage2 (44).
    pub fn account_usage2(&self) -> AccountUsage2 {
        AccountUsage2 {
            info: self.info().clone(),
            block_size: i32::try_from(self.block_size()).unwrap_or(i32::MAX),
        }
    }

    /// GetObject (10): the raw stored object, byte for byte.
    pub fn get_object(&self, id: ObjectId) -> Result<ObjectStream> {
        const OP: &str = "GetObject";
        if !self.object_may_exist(id)? {
            return Err(Error::DoesNotExist { op: OP, id });
        }
        let r = self.store().open_object(id).map_err(|e| match e {
            Error::DoesNotExist { id, .. } => Error::DoesNotExist { op: OP, id },
            e => e,
        })?;
        let size = r.size();
        Ok(ObjectStream::new(Source::Object(r), vec![(0, size)]))
    }

    /// ListDirectory (21): the directory with only the entries passing the
    /// filter, the header attributes only if asked, never dependency records.
    pub fn list_directory(
        &self,
        id: ObjectId,
        flags_must_be_set: i16,
        flags_not_to_be_set: i16,
        send_attributes: bool,
    ) -> Result<Vec<u8>> {
        let dir = self.read_directory("ListDirectory", id)?;
        dir.encode_listing(
            ListFilter::new(flags_must_be_set, flags_not_to_be_set),
            send_attributes,
        )
        .map_err(|source| Error::Format {
            op: "ListDirectory",
            source,
        })
    }

    /// CreateDirectory (20) / CreateDirectory2 (46, `modification_time` != 0).
    pub fn create_directory(
        &mut self,
        parent: ObjectId,
        name: &EncodedName,
        attributes: &[u8],
        attributes_mod_time: i64,
        modification_time: i64,
    ) -> Result<ObjectId> {
        const OP: &str = "CreateDirectory";
        self.require_write(OP)?;
        if self.info().blocks_used > self.info().blocks_hard_limit {
            return Err(limit_err(OP, self.info(), 0));
        }
        let dir = self.read_directory(OP, parent)?;
        let current = ListFilter::new(
            ListFilter::INCLUDE_EVERYTHING,
            (Entry::DELETED | Entry::OLD_VERSION) as i16,
        );
        if let Some(&i) = Self::find_name(&dir, current, name).first() {
            return Err(Error::DirectoryAlreadyExists {
                op: OP,
                dir: parent,
                existing: dir.entries[i].object_id,
            });
        }
        let id = self.allocate_object_id()?;
        let mut new_dir = Directory::new(id, parent);
        new_dir.attributes = attributes.to_vec();
        new_dir.attributes_mod_time = attributes_mod_time;
        let (w, usage) = self.write_directory_uncommitted(&new_dir, false)?;
        if self.info().blocks_used + usage > self.info().blocks_hard_limit {
            let e = limit_err(OP, self.info(), usage);
            w.discard()?;
            return Err(e);
        }
        w.commit()?;
        {
            let info = self.info_mut()?;
            info.blocks_used += usage;
            info.blocks_in_directories += usage;
            info.num_directories += 1;
        }
        let mut parent_dir = dir;
        parent_dir.entries.push(Entry {
            mtime: modification_time,
            object_id: id,
            size_in_blocks: usage,
            attributes_hash: 0,
            flags: Entry::DIR,
            name: name.clone(),
            attributes: Vec::new(),
            depends_newer: 0,
            depends_older: 0,
        });
        if let Err(e) = self.save_directory(&parent_dir) {
            // Back out: the new directory must not exist without its entry.
            if let Err(e2) = self.store().delete_object(id) {
                warn!(id, error = %e2, "removing a directory whose entry could not be saved");
            }
            let info = self.info_mut()?;
            info.blocks_used -= usage;
            info.blocks_in_directories -= usage;
            info.num_directories -= 1;
            return Err(e);
        }
        self.set_refcount(id, 1)?;
        // Accounting only (recomputable); durable at session end (docs/store.md).
        self.save_info_delayed()?;
        debug!(id, parent, "directory created");
        Ok(id)
    }

    /// ChangeDirAttributes (22).
    pub fn change_dir_attributes(
        &mut self,
        id: ObjectId,
        attributes: &[u8],
        attributes_mod_time: i64,
    ) -> Result<()> {
        const OP: &str = "ChangeDirAttributes";
        self.require_write(OP)?;
        let mut dir = self.read_directory(OP, id)?;
        dir.attributes = attributes.to_vec();
        dir.attributes_mod_time = attributes_mod_time;
        self.save_directory(&dir)
    }

    /// DeleteDirectory (23): Deleted on everything in the subtree and on the
    /// directory's own entry.
    pub fn delete_directory(&mut self, id: ObjectId) -> Result<()> {
        self.delete_or_undelete_directory(id, false)
    }

    /// UndeleteDirectory (24): the reverse; clears Deleted on every deleted entry
    /// in the subtree (also those deleted one by one before, as 0.13 does).
    pub fn undelete_directory(&mut self, id: ObjectId) -> Result<()> {
        self.delete_or_undelete_directory(id, true)
    }

    fn delete_or_undelete_directory(&mut self, id: ObjectId, undelete: bool) -> Result<()> {
        let op = if undelete {
            "UndeleteDirectory"
        } else {
            "DeleteDirectory"
        };
        self.require_write(op)?;
        if id == ROOT_DIRECTORY_ID {
            return Err(Error::CannotDeleteRoot { op });
        }
        let parent = self.read_directory(op, id)?.container_id;
        self.flag_subtree(op, id, undelete)?;
        match self.read_directory(op, parent) {
            Ok(mut p) => {
                let mut changed = false;
                if let Some(e) = p.entry_by_id_mut(id) {
                    if e.is_deleted() == undelete {
                        if undelete {
                            e.remove_flags(Entry::DELETED);
                        } else {
                            e.add_flags(Entry::DELETED);
                        }
                        changed = true;
                    }
                }
                if changed {
                    self.save_directory(&p)?;
                }
            }
            Err(e) => warn!(id, parent, error = %e, "directory's container cannot be loaded"),
        }
        // The deleted-directory list tells housekeeping where empty deleted
        // directories may be, without a full scan (docs/store.md).
        let info = self.info_mut()?;
        if undelete {
            crate::housekeep::note_undeleted_directory(info, id);
        } else {
            crate::housekeep::note_deleted_directory(info, id);
        }
        self.save_info_delayed()
    }

    /// Depth first over the subtree of `id` (iterative, so no deep recursion),
    /// flagging every entry's Deleted as `undelete` asks.
    fn flag_subtree(&mut self, op: &'static str, id: ObjectId, undelete: bool) -> Result<()> {
        // (directory, children already pushed?)
        let mut stack = vec![(id, false)];
        let mut seen = std::collections::HashSet::new();
        while let Some((d, expanded)) = stack.pop() {
            if !expanded {
                if !seen.insert(d) {
                    warn!(id = d, "directory reached twice (container cycle); skipped");
                    continue;
                }
                let dir = self.read_directory(op, d)?;
                stack.push((d, true));
                for e in dir.entries.iter().rev() {
                    // Delete recurses into live directories, undelete into deleted ones.
                    if e.is_dir() && e.is_deleted() == undelete {
                        stack.push((e.object_id, false));
                    }
                }
                continue;
            }
            // Children done: re-read (their saves may have touched this one).
            let mut dir = self.read_directory(op, d)?;
            let mut changed = false;
            let mut info = self.info().clone();
            for e in &mut dir.entries {
                if e.is_deleted() == undelete {
                    change_entry(&mut info, e, |e| {
                        if undelete {
                            e.remove_flags(Entry::DELETED)
                        } else {
                            e.add_flags(Entry::DELETED)
                        }
                    });
                    changed = true;
                }
            }
            if changed {
                *self.info_mut()? = info;
                self.save_directory(&dir)?;
            }
        }
        Ok(())
    }

    /// MoveObject (11).
    pub fn move_object(
        &mut self,
        id: ObjectId,
        from: ObjectId,
        to: ObjectId,
        flags: MoveFlags,
        new_name: &EncodedName,
    ) -> Result<()> {
        const OP: &str = "MoveObject";
        self.require_write(OP)?;
        let exclude = if flags.allow_over_deleted {
            Entry::DELETED as i16
        } else {
            0
        };
        let target_filter = ListFilter::new(ListFilter::INCLUDE_EVERYTHING, exclude);
        let from_dir = self.read_directory(OP, from)?;
        let Some(found) = from_dir.entry_by_id(id) else {
            return Err(Error::DoesNotExistInDirectory {
                op: OP,
                id,
                dir: from,
            });
        };
        let old_name = found.name.clone();
        let moving = |e: &Entry| {
            if flags.all_with_same_name {
                e.name == old_name
            } else {
                e.object_id == id
            }
        };
        if from == to {
            let mut dir = from_dir;
            if !Self::find_name(&dir, target_filter, new_name).is_empty() {
                return Err(Error::TargetNameExists { op: OP, dir: to });
            }
            for e in dir.entries.iter_mut().filter(|e| moving(e)) {
                e.name = new_name.clone();
            }
            return self.save_directory(&dir);
        }
        let copies: Vec<Entry> = from_dir
            .entries
            .iter()
            .filter(|e| moving(e))
            .cloned()
            .collect();
        let mut to_dir = self.read_directory(OP, to)?;
        if !Self::find_name(&to_dir, target_filter, new_name).is_empty() {
            return Err(Error::TargetNameExists { op: OP, dir: to });
        }
        let added = copies.len();
        for mut e in copies.iter().cloned() {
            e.name = new_name.clone();
            to_dir.entries.push(e);
        }
        self.save_directory(&to_dir)?;
        // Re-read: saving `to` may have rewritten `from` (an ancestor of it).
        let removed = self.read_directory(OP, from).and_then(|mut f| {
            let ids: std::collections::HashSet<ObjectId> =
                copies.iter().map(|e| e.object_id).collect();
            f.entries.retain(|e| !ids.contains(&e.object_id));
            self.save_directory(&f)
        });
        if let Err(e) = removed {
            // Undo the addition so the objects are not in two places.
            if let Ok(mut t) = self.read_directory(OP, to) {
                let n = t.entries.len();
                t.entries.truncate(n.saturating_sub(added));
                if let Err(e2) = self.save_directory(&t) {
                    warn!(to, error = %e2, "undoing a half-done move");
                }
            }
            return Err(e);
        }
        for e in copies.iter().filter(|e| e.is_dir()) {
            let mut sub = self.read_directory(OP, e.object_id)?;
            sub.container_id = to;
            self.save_directory(&sub)?;
        }
        Ok(())
    }

    /// GetObjectName (12): walks up from `dir` naming `id` (0 = the directory
    /// itself). Not found anywhere gives the empty answer.
    pub fn get_object_name(&self, id: ObjectId, dir: ObjectId) -> Result<ObjectName> {
        const OP: &str = "GetObjectName";
        let mut out = ObjectName::default();
        let (mut obj, mut d) = (id, dir);
        let mut first = true;
        // Bounded: a container cycle would make 0.13 loop forever.
        for _ in 0..4096 {
            if !self.object_may_exist(d)? {
                return Ok(ObjectName::default());
            }
            let directory = match self.read_directory(OP, d) {
                Ok(x) => x,
                Err(Error::DoesNotExist { .. } | Error::NotADirectory { .. }) => {
                    return Ok(ObjectName::default());
                }
                Err(e) => return Err(e),
            };
            if obj != 0 {
                let Some(e) = directory.entry_by_id(obj) else {
                    return Ok(ObjectName::default());
                };
                if first {
                    out.modification_time = e.mtime;
                    out.attributes_hash = e.attributes_hash;
                    first = false;
                }
                if out.flags == 0 {
                    out.flags = e.flags;
                }
                out.names.push(e.name.clone());
            }
            obj = d;
            d = directory.container_id;
            if obj == 0 || obj == ROOT_DIRECTORY_ID {
                return Ok(out);
            }
        }
        warn!(id, dir, "container chain does not reach the root");
        Ok(ObjectName::default())
    }

    /// StoreFile (30). Streams `data` into the new object (a diff is staged in a
    /// temporary file and combined with `diff_from_id` streaming). `declared_len` is the stream's announced size, if
    /// fixed: it lets an oversized upload be refused before any byte is written.
    /// On error the rest of `data` is unread.
    #[allow(clippy::too_many_arguments)]
    pub fn store_file(
        &mut self,
        dir_id: ObjectId,
        modification_time: i64,
        attributes_hash: u64,
        diff_from_id: ObjectId,
        name: &EncodedName,
        data: &mut dyn Read,
        declared_len: Option<u64>,
    ) -> Result<ObjectId> {
        const OP: &str = "StoreFile";
        self.require_write(OP)?;
        if diff_from_id != 0
            && !(self.object_may_exist(diff_from_id)?
                && self.object_kind(OP, diff_from_id)? == ObjectKind::File)
        {
            return Err(Error::DiffFromFileDoesNotExist {
                op: OP,
                id: diff_from_id,
            });
        }
        let dir = self.read_directory(OP, dir_id)?;
        if diff_from_id != 0 {
            // 0.13 kills the session here; a typed error is kinder.
            match dir.entry_by_id(diff_from_id) {
                Some(e) if e.is_file() => {}
                _ => {
                    return Err(Error::DiffFromFileDoesNotExist {
                        op: OP,
                        id: diff_from_id,
                    });
                }
            }
            return self.store_diff(
                dir,
                modification_time,
                attributes_hash,
                diff_from_id,
                name,
                data,
                declared_len,
            );
        }
        let hard = self.info().blocks_hard_limit;
        let used = self.info().blocks_used;
        let fits = |acc: &Account, len: u64| used + acc.usage_in_blocks(len) <= hard;
        // A non-empty object uses at least one block; refuse before allocating.
        if !fits(self, declared_len.unwrap_or(1).max(1)) {
            let adding = self.usage_in_blocks(declared_len.unwrap_or(1).max(1));
            return Err(limit_err(OP, self.info(), adding));
        }
        let id = self.allocate_object_id()?;
        let mut w = self.store().create_object(id, false)?;
        let mut buf = vec![0u8; COPY_BUF];
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    w.discard()?;
                    return Err(stream_err(OP)(e));
                }
            };
            let total = w.len() + n as u64;
            if !fits(self, total) {
                let adding = self.usage_in_blocks(total);
                w.discard()?;
                debug!(id, total, "upload refused: over the hard limit");
                return Err(limit_err(OP, self.info(), adding));
            }
            if let Err(e) = w.write_all(&buf[..n]) {
                w.discard()?;
                return Err(stream_err(OP)(e));
            }
        }
        drop(buf);
        let size = w.len();
        let verdict = verify_file(&mut |b, off| w.read_back_at(b, off), size)?;
        let _verified: VerifiedFile = match verdict {
            Ok(v) => v,
            Err(source) => {
                w.discard()?;
                return Err(Error::FileDoesNotVerify { op: OP, id, source });
            }
        };
        let usage = self.usage_in_blocks(size);
        w.commit()?;
        let mut dir = dir;
        let mut info = self.info().clone();
        Self::mark_same_name_old(&mut info, &mut dir, name);
        let entry = Entry {
            mtime: modification_time,
            object_id: id,
            size_in_blocks: usage,
            attributes_hash,
            flags: Entry::FILE,
            name: name.clone(),
            attributes: Vec::new(),
            depends_newer: 0,
            depends_older: 0,
        };
        account_entry(&mut info, &entry, 1);
        dir.entries.push(entry);
        info.blocks_used += usage;
        self.finish_upload(id, &dir, info, None)
    }

    /// Every entry of `name` not yet OldVersion becomes OldVersion (any type, as
    /// 0.13 does), moving file blocks to the old counters.
    fn mark_same_name_old(info: &mut StoreInfo, dir: &mut Directory, name: &EncodedName) {
        for e in dir
            .entries
            .iter_mut()
            .filter(|e| !e.is_old_version() && e.name == *name)
        {
            change_entry(info, e, |e| e.add_flags(Entry::OLD_VERSION));
        }
    }

    /// Saves the directory (deleting the new object if that fails), then commits
    /// the rewritten old version, the counters and the refcount.
    fn finish_upload(
        &mut self,
        id: ObjectId,
        dir: &Directory,
        info: StoreInfo,
        reversed_old: Option<Box<dyn ObjectWrite>>,
    ) -> Result<ObjectId> {
        // The directory's own size change is added by save_directory on top.
        let before = self.info().clone();
        *self.info_mut()? = info;
        if let Err(e) = self.save_directory(dir) {
            *self.info_mut()? = before;
            if let Err(e2) = self.store().delete_object(id) {
                warn!(id, error = %e2, "removing an upload whose directory could not be saved");
            }
            if let Some(w) = reversed_old {
                if let Err(e2) = w.discard() {
                    warn!(id, error = %e2, "discarding the reverse diff of a failed upload");
                }
            }
            return Err(e);
        }
        if let Some(w) = reversed_old {
            // After the directory: a crash in between leaves the old version complete,
            // which readers handle (the dependency is only an optimisation for them
            // until this commit lands). Failing here leaves the same state. The
            // directory must be on disc first: a buffered one would leave, after
            // a crash, an old version that is a patch against an unrecorded file.
            self.flush_directories()?;
            w.commit()?;
        }
        self.set_refcount(id, 1)?;
        // Accounting only (recomputable); durable at session end (docs/store.md).
        self.save_info_delayed()?;
        debug!(id, dir = dir.object_id, "file stored");
        Ok(id)
    }

    /// Copies the incoming diff into a temporary file, refusing it as soon as
    /// `cannot_fit` says its length so far proves it cannot fit.
    fn stage_upload(
        &self,
        temp: &mut dyn TempObject,
        data: &mut dyn Read,
        cannot_fit: &dyn Fn(&Account, u64) -> Option<Error>,
    ) -> Result<()> {
        const OP: &str = "StoreFile";
        let mut buf = vec![0u8; COPY_BUF];
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(stream_err(OP)(e)),
            };
            if let Some(e) = cannot_fit(self, temp.len() + n as u64) {
                return Err(e);
            }
            temp.write_all(&buf[..n])
                .map_err(|e| Error::io("write temporary", ".difftemp", e))?;
        }
        temp.flush()
            .map_err(|e| Error::io("write temporary", ".difftemp", e))
    }

    #[allow(clippy::too_many_arguments)]
    fn store_diff(
        &mut self,
        mut dir: Directory,
        modification_time: i64,
        attributes_hash: u64,
        diff_from_id: ObjectId,
        name: &EncodedName,
        data: &mut dyn Read,
        declared_len: Option<u64>,
    ) -> Result<ObjectId> {
        const OP: &str = "StoreFile";
        let hard = self.info().blocks_hard_limit;
        let used = self.info().blocks_used;
        let mut old = ObjectSource(self.store().open_object(diff_from_id).map_err(
            |e| match e {
                Error::DoesNotExist { id, .. } => Error::DoesNotExist { op: OP, id },
                e => e,
            },
        )?);
        let old_usage = self.usage_in_blocks(old.len());
        // The new file holds every byte of the patch but its references, so it is
        // at least as large; the old version shrinks at most to nothing. So
        // used + usage(patch) - usage(old) > hard proves the upload cannot fit.
        let cannot_fit = |acc: &Account, len: u64| {
            let adding = acc.usage_in_blocks(len) - old_usage;
            (used + adding > hard).then(|| limit_err(OP, acc.info(), adding))
        };
        if let Some(e) = declared_len.and_then(|n| cannot_fit(self, n)) {
            return Err(e);
        }
        let id = self.allocate_object_id()?;
        // Staged on disc, as 0.13 does: the transforms read it several times.
        let mut diff = self
            .store()
            .create_temp(TempPurpose::DiffUpload { new_id: id })?;
        self.stage_upload(&mut *diff, data, &cannot_fit)?;
        let size = diff.len();
        let verified = verify_file(&mut temp_read_at(&mut *diff, ".difftemp"), size)?
            .map_err(|source| Error::FileDoesNotVerify { op: OP, id, source })?;
        let not_verify = transform_err(OP, id);

        let mut new = self.store().create_object(id, false)?;
        let new_len = match combine::combine(&mut *diff, &mut old, &mut new) {
            Ok(n) => n,
            Err(e) => {
                new.discard()?;
                return Err(not_verify(e));
            }
        };
        // A verified diff shares blocks with the old version exactly when it has
        // references; only then is the old version rewritten.
        let reversed = if verified.is_complete() {
            None
        } else {
            let mut w = self.store().create_object(diff_from_id, true)?;
            match combine::reverse_diff(&mut *diff, &mut old, diff_from_id, &mut w) {
                Ok((len, true)) => Some((w, len)),
                Ok((_, false)) => {
                    w.discard()?;
                    None
                }
                Err(e) => {
                    w.discard()?;
                    new.discard()?;
                    return Err(not_verify(e));
                }
            }
        };
        drop(diff);
        drop(old);
        let shared = reversed.is_some();
        let new_usage = self.usage_in_blocks(new_len);
        let rev_usage = match &reversed {
            Some((_, len)) => self.usage_in_blocks(*len),
            None => old_usage,
        };
        if used + new_usage - (old_usage - rev_usage) > hard {
            new.discard()?;
            if let Some((w, _)) = reversed {
                w.discard()?;
            }
            return Err(limit_err(
                OP,
                self.info(),
                new_usage - (old_usage - rev_usage),
            ));
        }
        new.commit()?;

        let mut info = self.info().clone();
        let old_i = dir
            .entries
            .iter()
            .position(|e| e.object_id == diff_from_id)
            .ok_or(Error::DiffFromFileDoesNotExist {
                op: OP,
                id: diff_from_id,
            })?;
        let old_size = dir.entries[old_i].size_in_blocks;
        change_entry(&mut info, &mut dir.entries[old_i], |e| {
            e.size_in_blocks = rev_usage;
            if shared {
                e.depends_newer = id;
            }
        });
        Self::mark_same_name_old(&mut info, &mut dir, name);
        let entry = Entry {
            mtime: modification_time,
            object_id: id,
            size_in_blocks: new_usage,
            attributes_hash,
            flags: Entry::FILE,
            name: name.clone(),
            attributes: Vec::new(),
            depends_newer: 0,
            depends_older: if shared { diff_from_id } else { 0 },
        };
        account_entry(&mut info, &entry, 1);
        dir.entries.push(entry);
        info.blocks_used += new_usage + (rev_usage - old_size);
        self.finish_upload(id, &dir, info, reversed.map(|(w, _)| w))
    }

    /// Looks up a file entry for GetFile and returns its stream-order bytes.
    /// GetFile (31): the file `id` of directory `dir_id` in stream order (index
    /// first), rebuilt from the newest version if it is stored as a reverse patch.
    pub fn get_file(&self, dir_id: ObjectId, id: ObjectId) -> Result<ObjectStream> {
        const OP: &str = "GetFile";
        if !self.object_may_exist(id)? {
            return Err(Error::DoesNotExist { op: OP, id });
        }
        if !self.object_may_exist(dir_id)? {
            return Err(Error::DoesNotExist { op: OP, id: dir_id });
        }
        let dir = self.read_directory(OP, dir_id)?;
        let Some(entry) = dir.entry_by_id(id) else {
            return Err(Error::DoesNotExistInDirectory {
                op: OP,
                id,
                dir: dir_id,
            });
        };
        if entry.depends_newer == 0 {
            return self.file_stream(OP, id);
        }
        // Follow the chain to the newest (complete) version.
        let mut chain = vec![id];
        let mut cur = entry;
        while cur.depends_newer != 0 {
            let next = cur.depends_newer;
            if chain.contains(&next) || chain.len() > dir.entries.len() {
                return Err(Error::PatchConsistency {
                    op: OP,
                    id,
                    detail: format!("dependency cycle at {next:#x}"),
                });
            }
            cur = dir
                .entry_by_id(next)
                .ok_or_else(|| Error::PatchConsistency {
                    op: OP,
                    id,
                    detail: format!("newer version {next:#x} is not in directory {dir_id:#x}"),
                })?;
            chain.push(next);
        }
        let newest = chain.pop().unwrap_or(id);
        let open = |oid: ObjectId| {
            self.store()
                .open_object(oid)
                .map(ObjectSource)
                .map_err(|e| match e {
                    Error::DoesNotExist { .. } => Error::PatchConsistency {
                        op: OP,
                        id,
                        detail: format!("object {oid:#x} of the chain is missing"),
                    },
                    e => e,
                })
        };
        let not_verify = transform_err(OP, id);
        let mut newest = open(newest)?;
        // Patches newest first (chain is oldest .. next-to-newest), each applied
        // to the previous result in a fresh temporary; the previous one goes
        // when replaced. 0.13 numbers the steps down to 0 for the last.
        let mut current: Option<Box<dyn TempObject>> = None;
        for (step, &p) in chain.iter().enumerate().rev() {
            let mut patch = open(p)?;
            let mut out = self.store().create_temp(TempPurpose::Recombine {
                step: u32::try_from(step).unwrap_or(u32::MAX),
            })?;
            match current.as_mut() {
                Some(c) => combine::apply_patch(&mut patch, &mut **c, &mut out),
                None => combine::apply_patch(&mut patch, &mut newest, &mut out),
            }
            .map_err(&not_verify)?;
            current = Some(out);
        }
        let Some(mut rebuilt) = current else {
            // Not reached: a DependsNewer link puts at least one patch in the chain.
            return self.file_stream(OP, id);
        };
        let size = rebuilt.len();
        let v = verify_file(&mut temp_read_at(&mut *rebuilt, ".recombinetemp"), size)?
            .map_err(|source| Error::FileDoesNotVerify { op: OP, id, source })?;
        Ok(ObjectStream::new(
            Source::Temp(rebuilt),
            vec![(v.index_start, size), (0, v.index_start)],
        ))
    }

    /// A stored complete file, verified, as a stream-order stream.
    fn file_stream(&self, op: &'static str, id: ObjectId) -> Result<ObjectStream> {
        let (r, v) = self.open_verified_file(op, id)?;
        if !v.is_complete() {
            return Err(Error::FileDoesNotVerify {
                op,
                id,
                source: bb_format::Error::corrupt(
                    "encoded file",
                    "stored as a patch but its entry records no newer version",
                ),
            });
        }
        Ok(ObjectStream::new(
            Source::Object(r),
            vec![(v.index_start, v.size), (0, v.index_start)],
        ))
    }

    /// Opens object `id` and checks it is a structurally valid file.
    fn open_verified_file(
        &self,
        op: &'static str,
        id: ObjectId,
    ) -> Result<(Box<dyn ObjectRead>, VerifiedFile)> {
        let mut r = self.store().open_object(id).map_err(|e| match e {
            Error::DoesNotExist { id, .. } => Error::DoesNotExist { op, id },
            e => e,
        })?;
        let size = r.size();
        let v = verify_file(&mut |b, off| r.read_at(b, off), size)?
            .map_err(|source| Error::FileDoesNotVerify { op, id, source })?;
        Ok((r, v))
    }

    /// GetBlockIndexByID (34): the block index of object `id`.
    pub fn get_block_index_by_id(&self, id: ObjectId) -> Result<ObjectStream> {
        const OP: &str = "GetBlockIndexByID";
        if self.object_kind(OP, id)? != ObjectKind::File {
            return Err(Error::NotAFile { op: OP, id });
        }
        let (r, v) = self.open_verified_file(OP, id)?;
        Ok(ObjectStream::new(
            Source::Object(r),
            vec![(v.index_start, v.size)],
        ))
    }

    /// GetBlockIndexByName (35): the highest-ID file entry of that name (any
    /// state) and its block index; `None` if there is none.
    pub fn get_block_index_by_name(
        &self,
        dir_id: ObjectId,
        name: &EncodedName,
    ) -> Result<Option<(ObjectId, ObjectStream)>> {
        const OP: &str = "GetBlockIndexByName";
        let dir = self.read_directory(OP, dir_id)?;
        let Some(id) = dir
            .entries
            .iter()
            .filter(|e| e.is_file() && e.name == *name)
            .map(|e| e.object_id)
            .max()
        else {
            return Ok(None);
        };
        let (r, v) = self.open_verified_file(OP, id)?;
        Ok(Some((
            id,
            ObjectStream::new(Source::Object(r), vec![(v.index_start, v.size)]),
        )))
    }

    /// SetReplacementFileAttributes (32): attributes and hash of the first current
    /// file entry of that name; `DoesNotExist` if there is none.
    pub fn set_replacement_file_attributes(
        &mut self,
        dir_id: ObjectId,
        attributes_hash: u64,
        name: &EncodedName,
        attributes: &[u8],
    ) -> Result<ObjectId> {
        const OP: &str = "SetReplacementFileAttributes";
        self.require_write(OP)?;
        let mut dir = self.read_directory(OP, dir_id)?;
        let filter = ListFilter::new(
            Entry::FILE as i16,
            (Entry::DELETED | Entry::OLD_VERSION) as i16,
        );
        let Some(&i) = Self::find_name(&dir, filter, name).first() else {
            return Err(Error::DoesNotExist { op: OP, id: 0 });
        };
        let e = &mut dir.entries[i];
        e.attributes = attributes.to_vec();
        e.attributes_hash = attributes_hash;
        let id = e.object_id;
        self.save_directory(&dir)?;
        Ok(id)
    }

    /// DeleteFile (33): Deleted on every undeleted file entry of that name (old
    /// versions too). Returns the current version's ID, or 0 if none was found.
    pub fn delete_file(&mut self, dir_id: ObjectId, name: &EncodedName) -> Result<ObjectId> {
        const OP: &str = "DeleteFile";
        self.require_write(OP)?;
        let mut dir = self.read_directory(OP, dir_id)?;
        let filter = ListFilter::new(Entry::FILE as i16, Entry::DELETED as i16);
        let hits = Self::find_name(&dir, filter, name);
        if hits.is_empty() {
            return Ok(0);
        }
        let mut info = self.info().clone();
        let mut found = 0;
        for i in hits {
            let e = &mut dir.entries[i];
            if !e.is_old_version() {
                found = e.object_id;
            }
            change_entry(&mut info, e, |e| e.add_flags(Entry::DELETED));
        }
        let before = self.info().clone();
        *self.info_mut()? = info;
        if let Err(e) = self.save_directory(&dir) {
            *self.info_mut()? = before;
            return Err(e);
        }
        self.save_info_delayed()?;
        Ok(found)
    }

    /// UndeleteFile (36): clears Deleted on the deleted file entry `id`. Returns
    /// `id` if it is not an old version, else 0; 0 if no such entry.
    pub fn undelete_file(&mut self, dir_id: ObjectId, id: ObjectId) -> Result<ObjectId> {
        const OP: &str = "UndeleteFile";
        self.require_write(OP)?;
        let mut dir = self.read_directory(OP, dir_id)?;
        let filter = ListFilter::new((Entry::FILE | Entry::DELETED) as i16, 0);
        let mut info = self.info().clone();
        let mut changed = false;
        let mut result = 0;
        for e in dir
            .entries
            .iter_mut()
            .filter(|e| filter.matches(e.flags) && e.object_id == id)
        {
            change_entry(&mut info, e, |e| e.remove_flags(Entry::DELETED));
            changed = true;
            if !e.is_old_version() {
                result = id;
            }
        }
        if changed {
            let before = self.info().clone();
            *self.info_mut()? = info;
            if let Err(e) = self.save_directory(&dir) {
                *self.info_mut()? = before;
                return Err(e);
            }
            self.save_info_delayed()?;
        }
        Ok(result)
    }
}
