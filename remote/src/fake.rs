//! An in-memory store behind [`StoreRead`] and [`StoreWrite`], for testing
//! clients without a server. It follows 0.13's command semantics
//! (`protocol.md` §3.3) as far as a client can see them, and passes the same
//! conformance suite ([`crate::conformance`]) as a real session.
//!
//! Deliberate simplifications, none visible through the traits' results:
//! old versions are kept whole (not as reverse patches, so GetObject of an old
//! version returns a complete file); no dependency records; sizes are
//! `ceil(bytes / 4096)` blocks; nothing is ever removed (no housekeeping).
//! Errors a 0.13 server answers with the fatal `Error(0,-1)` (an ID of the
//! wrong type) are `DoesNotExist` here, as in our bbstored.
//!
//! Must not know: sockets, or bb-store's on-disc layout.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};

use bb_format::directory::{Directory, Entry, ListFilter};
use bb_format::index::BlockIndex;
use bb_format::layout::{FileLayout, to_stream_order};
use bb_format::{BoxTime, EncodedName};
use bb_proto::message::{AccountUsage2, MoveObject, flags};
use bb_proto::{ErrorCode, ErrorReply};

use crate::error::{Error, Result};
use crate::store::{ObjectNames, StoreRead, StoreWrite};

/// Block size the fake counts in (0.13's default raidfile.conf).
pub const FAKE_BLOCK_SIZE: i64 = 4096;

const ROOT: i64 = flags::ROOT_DIRECTORY;

#[derive(Debug, Clone)]
enum Object {
    Dir(Directory),
    /// A complete encoded file in file order.
    File(Vec<u8>),
}

/// See the module header.
#[derive(Debug, Clone)]
pub struct FakeStore {
    objects: BTreeMap<i64, Object>,
    last_id: i64,
    marker: i64,
    soft_limit: i64,
    hard_limit: i64,
    /// Write commands get SessionReadOnly, as after a read-only login.
    pub read_only: bool,
    pub account_name: Vec<u8>,
}

fn err(op: &'static str, code: ErrorCode) -> Error {
    Error::Store {
        op,
        reply: ErrorReply {
            error_type: ErrorReply::ERROR_TYPE,
            sub_type: code as i32,
        },
    }
}

fn blocks(len: usize) -> i64 {
    (len as i64 + FAKE_BLOCK_SIZE - 1) / FAKE_BLOCK_SIZE
}

fn has(e: &Entry, f: i16) -> bool {
    e.flags & (f as u16) != 0
}

impl Default for FakeStore {
    fn default() -> Self {
        FakeStore::new(1 << 40, 1 << 40)
    }
}

impl FakeStore {
    /// A new account: an empty root, marker 0, limits in blocks.
    pub fn new(soft_limit: i64, hard_limit: i64) -> FakeStore {
        let mut objects = BTreeMap::new();
        objects.insert(ROOT, Object::Dir(Directory::new(ROOT, ROOT)));
        FakeStore {
            objects,
            last_id: ROOT,
            marker: 0,
            soft_limit,
            hard_limit,
            read_only: false,
            account_name: Vec::new(),
        }
    }

    /// Changes the account's limits (as `bbstoreaccounts setlimit` would).
    pub fn set_limits(&mut self, soft_limit: i64, hard_limit: i64) {
        self.soft_limit = soft_limit;
        self.hard_limit = hard_limit;
    }

    fn object_blocks(o: &Object) -> i64 {
        match o {
            Object::Dir(d) => blocks(d.encode().map(|v| v.len()).unwrap_or(0)),
            Object::File(f) => blocks(f.len()),
        }
    }

    fn blocks_used(&self) -> i64 {
        self.objects.values().map(Self::object_blocks).sum()
    }

    fn dir(&self, op: &'static str, id: i64) -> Result<&Directory> {
        match self.objects.get(&id) {
            Some(Object::Dir(d)) => Ok(d),
            _ => Err(err(op, ErrorCode::DoesNotExist)),
        }
    }

    fn dir_mut(&mut self, op: &'static str, id: i64) -> Result<&mut Directory> {
        match self.objects.get_mut(&id) {
            Some(Object::Dir(d)) => Ok(d),
            _ => Err(err(op, ErrorCode::DoesNotExist)),
        }
    }

    fn writable(&self, op: &'static str) -> Result<()> {
        if self.read_only {
            Err(err(op, ErrorCode::SessionReadOnly))
        } else {
            Ok(())
        }
    }

    fn new_id(&mut self) -> i64 {
        self.last_id += 1;
        self.last_id
    }

    fn file_layout<'a>(op: &'static str, bytes: &'a [u8]) -> Result<FileLayout<'a>> {
        FileLayout::parse(bytes).map_err(|_| err(op, ErrorCode::FileDoesNotVerify))
    }

    fn file_stream(&self, directory: i64, id: i64) -> Result<Vec<u8>> {
        let op = "GetFile";
        if !self.objects.contains_key(&id) {
            return Err(err(op, ErrorCode::DoesNotExist));
        }
        let d = self.dir(op, directory)?;
        if d.entry_by_id(id).is_none() {
            return Err(err(op, ErrorCode::DoesNotExistInDirectory));
        }
        match self.objects.get(&id) {
            Some(Object::File(f)) => Ok(to_stream_order(&Self::file_layout(op, f)?)),
            _ => Err(err(op, ErrorCode::FileDoesNotVerify)),
        }
    }

    fn index_of(op: &'static str, o: Option<&Object>) -> Result<BlockIndex> {
        match o {
            Some(Object::File(f)) => Ok(Self::file_layout(op, f)?.index),
            _ => Err(err(op, ErrorCode::DoesNotExist)),
        }
    }

    fn create_dir(
        &mut self,
        op: &'static str,
        parent: i64,
        name: &EncodedName,
        attributes_mod_time: BoxTime,
        modification_time: BoxTime,
        attributes: &[u8],
    ) -> Result<i64> {
        self.writable(op)?;
        if self.blocks_used() > self.hard_limit {
            return Err(err(op, ErrorCode::StorageLimitExceeded));
        }
        let current = ListFilter::new(-1, flags::DELETED | flags::OLD_VERSION);
        if self
            .dir(op, parent)?
            .entries_matching(current)
            .any(|e| &e.name == name)
        {
            return Err(err(op, ErrorCode::DirectoryAlreadyExists));
        }
        let id = self.new_id();
        let mut d = Directory::new(id, parent);
        d.attributes = attributes.to_vec();
        d.attributes_mod_time = attributes_mod_time;
        let obj = Object::Dir(d);
        let size = Self::object_blocks(&obj);
        if self.blocks_used() + size > self.hard_limit {
            return Err(err(op, ErrorCode::StorageLimitExceeded));
        }
        self.objects.insert(id, obj);
        self.dir_mut(op, parent)?.entries.push(Entry {
            mtime: modification_time,
            object_id: id,
            size_in_blocks: size,
            attributes_hash: 0,
            flags: Entry::DIR,
            name: name.clone(),
            attributes: Vec::new(),
            depends_newer: 0,
            depends_older: 0,
        });
        Ok(id)
    }

    /// Sets or clears `Deleted` below directory `id` (§3.3.11), depth first.
    fn mark_tree(&mut self, op: &'static str, id: i64, delete: bool, depth: usize) -> Result<()> {
        // A cycle made by MoveObject must not recurse for ever.
        if depth > self.objects.len() {
            return Ok(());
        }
        let subdirs: Vec<i64> = self
            .dir(op, id)?
            .entries
            .iter()
            .filter(|e| has(e, flags::DIR) && has(e, flags::DELETED) != delete)
            .map(|e| e.object_id)
            .collect();
        for s in subdirs {
            if matches!(self.objects.get(&s), Some(Object::Dir(_))) {
                self.mark_tree(op, s, delete, depth + 1)?;
            }
        }
        for e in &mut self.dir_mut(op, id)?.entries {
            if delete {
                e.add_flags(Entry::DELETED);
            } else {
                e.remove_flags(Entry::DELETED);
            }
        }
        Ok(())
    }

    fn delete_or_undelete_dir(&mut self, op: &'static str, id: i64, delete: bool) -> Result<()> {
        self.writable(op)?;
        if id == ROOT {
            return Err(err(op, ErrorCode::CannotDeleteRoot));
        }
        let parent = self.dir(op, id)?.container_id;
        self.mark_tree(op, id, delete, 0)?;
        if let Ok(p) = self.dir_mut(op, parent)
            && let Some(e) = p.entry_by_id_mut(id)
        {
            if delete {
                e.add_flags(Entry::DELETED);
            } else {
                e.remove_flags(Entry::DELETED);
            }
        }
        Ok(())
    }
}

impl StoreRead for FakeStore {
    fn list_directory(
        &mut self,
        id: i64,
        must_be_set: i16,
        not_to_be_set: i16,
        send_attributes: bool,
    ) -> Result<Directory> {
        let d = self.dir("ListDirectory", id)?;
        let filter = ListFilter::new(must_be_set, not_to_be_set);
        Ok(Directory {
            object_id: d.object_id,
            container_id: d.container_id,
            attributes_mod_time: d.attributes_mod_time,
            options: 0,
            attributes: if send_attributes {
                d.attributes.clone()
            } else {
                Vec::new()
            },
            entries: d
                .entries_matching(filter)
                .map(|e| Entry {
                    depends_newer: 0,
                    depends_older: 0,
                    ..e.clone()
                })
                .collect(),
        })
    }

    fn get_object_name(&mut self, object_id: i64, dir: i64) -> Result<Option<ObjectNames>> {
        let (mut obj, mut dir) = (object_id, dir);
        let mut names = Vec::new();
        let (mut first, mut mtime, mut hash, mut fl) = (true, 0, 0, 0i16);
        for _ in 0..=self.objects.len() {
            let Some(Object::Dir(d)) = self.objects.get(&dir) else {
                return Ok(None);
            };
            if obj != 0 {
                let Some(e) = d.entry_by_id(obj) else {
                    return Ok(None);
                };
                if first {
                    (mtime, hash, first) = (e.mtime, e.attributes_hash, false);
                }
                if fl == 0 {
                    fl = e.flags as i16;
                }
                names.push(e.name.clone());
            }
            (obj, dir) = (dir, d.container_id);
            if obj == 0 || obj == ROOT {
                break;
            }
        }
        if names.is_empty() {
            return Ok(None);
        }
        Ok(Some(ObjectNames {
            names,
            modification_time: mtime,
            attributes_hash: hash,
            flags: fl,
        }))
    }

    fn get_object(&mut self, id: i64, out: &mut dyn Write) -> Result<u64> {
        let op = "GetObject";
        let bytes = match self.objects.get(&id) {
            Some(Object::Dir(d)) => d.encode().map_err(|source| Error::Payload { op, source })?,
            Some(Object::File(f)) => f.clone(),
            None => return Err(err(op, ErrorCode::DoesNotExist)),
        };
        out.write_all(&bytes)
            .map_err(|source| Error::Sink { op, source })?;
        Ok(bytes.len() as u64)
    }

    fn get_file(&mut self, directory: i64, id: i64, out: &mut dyn Write) -> Result<u64> {
        let s = self.file_stream(directory, id)?;
        out.write_all(&s).map_err(|source| Error::Sink {
            op: "GetFile",
            source,
        })?;
        Ok(s.len() as u64)
    }

    fn open_file(&mut self, directory: i64, id: i64) -> Result<Box<dyn Read + '_>> {
        Ok(Box::new(Cursor::new(self.file_stream(directory, id)?)))
    }

    fn get_block_index_by_id(&mut self, id: i64) -> Result<BlockIndex> {
        Self::index_of("GetBlockIndexByID", self.objects.get(&id))
    }

    fn get_block_index_by_name(
        &mut self,
        directory: i64,
        name: &EncodedName,
    ) -> Result<Option<(i64, BlockIndex)>> {
        let op = "GetBlockIndexByName";
        let newest = self
            .dir(op, directory)?
            .entries
            .iter()
            .filter(|e| has(e, flags::FILE) && &e.name == name)
            .map(|e| e.object_id)
            .max();
        match newest {
            None => Ok(None),
            Some(id) => Ok(Some((id, Self::index_of(op, self.objects.get(&id))?))),
        }
    }

    fn usage(&mut self) -> Result<AccountUsage2> {
        let mut u = AccountUsage2 {
            account_name: self.account_name.clone(),
            account_enabled: true,
            client_store_marker: self.marker,
            block_size: FAKE_BLOCK_SIZE as i32,
            last_object_id_used: self.last_id,
            blocks_used: self.blocks_used(),
            blocks_in_current_files: 0,
            blocks_in_old_files: 0,
            blocks_in_deleted_files: 0,
            blocks_in_directories: 0,
            blocks_soft_limit: self.soft_limit,
            blocks_hard_limit: self.hard_limit,
            num_current_files: 0,
            num_old_files: 0,
            num_deleted_files: 0,
            num_directories: 0,
        };
        for o in self.objects.values() {
            let Object::Dir(d) = o else { continue };
            u.num_directories += 1;
            u.blocks_in_directories += Self::object_blocks(o);
            for e in d.entries.iter().filter(|e| has(e, flags::FILE)) {
                let b = e.size_in_blocks;
                if has(e, flags::DELETED) {
                    u.num_deleted_files += 1;
                    u.blocks_in_deleted_files += b;
                } else if has(e, flags::OLD_VERSION) {
                    u.num_old_files += 1;
                    u.blocks_in_old_files += b;
                } else {
                    u.num_current_files += 1;
                    u.blocks_in_current_files += b;
                }
            }
        }
        Ok(u)
    }

    fn client_store_marker(&mut self) -> Result<i64> {
        Ok(self.marker)
    }
}

impl StoreWrite for FakeStore {
    fn set_client_store_marker(&mut self, marker: i64) -> Result<()> {
        self.writable("SetClientStoreMarker")?;
        self.marker = marker;
        Ok(())
    }

    fn create_directory(
        &mut self,
        parent: i64,
        name: &EncodedName,
        attributes_mod_time: BoxTime,
        attributes: &[u8],
    ) -> Result<i64> {
        let op = "CreateDirectory";
        self.create_dir(op, parent, name, attributes_mod_time, 0, attributes)
    }

    fn create_directory2(
        &mut self,
        parent: i64,
        name: &EncodedName,
        attributes_mod_time: BoxTime,
        modification_time: BoxTime,
        attributes: &[u8],
    ) -> Result<i64> {
        let op = "CreateDirectory2";
        self.create_dir(
            op,
            parent,
            name,
            attributes_mod_time,
            modification_time,
            attributes,
        )
    }

    fn change_dir_attributes(
        &mut self,
        id: i64,
        attributes_mod_time: BoxTime,
        attributes: &[u8],
    ) -> Result<()> {
        let op = "ChangeDirAttributes";
        self.writable(op)?;
        let d = self.dir_mut(op, id)?;
        d.attributes = attributes.to_vec();
        d.attributes_mod_time = attributes_mod_time;
        Ok(())
    }

    fn store_file(
        &mut self,
        directory: i64,
        name: &EncodedName,
        modification_time: BoxTime,
        attributes_hash: u64,
        diff_from: i64,
        data: &mut dyn Read,
    ) -> Result<i64> {
        let op = "StoreFile";
        self.writable(op)?;
        let mut upload = Vec::new();
        data.read_to_end(&mut upload)
            .map_err(|source| Error::Source { op, source })?;
        if diff_from != 0 && !matches!(self.objects.get(&diff_from), Some(Object::File(_))) {
            return Err(err(op, ErrorCode::DiffFromFileDoesNotExist));
        }
        let in_dir = self.dir(op, directory)?.entry_by_id(diff_from).is_some();
        let id = self.new_id();
        let file = if diff_from != 0 {
            if !in_dir {
                return Err(err(op, ErrorCode::DiffFromFileDoesNotExist));
            }
            let Some(Object::File(old)) = self.objects.get(&diff_from) else {
                return Err(err(op, ErrorCode::DiffFromFileDoesNotExist));
            };
            Self::file_layout(op, &upload)?;
            bb_format::combine::combine(&upload, old)
                .map_err(|_| err(op, ErrorCode::FileDoesNotVerify))?
        } else {
            if !Self::file_layout(op, &upload)?.is_complete() {
                return Err(err(op, ErrorCode::FileDoesNotVerify));
            }
            upload
        };
        let size = blocks(file.len());
        if self.blocks_used() + size > self.hard_limit {
            return Err(err(op, ErrorCode::StorageLimitExceeded));
        }
        self.objects.insert(id, Object::File(file));
        let d = self.dir_mut(op, directory)?;
        for e in d.entries.iter_mut().filter(|e| &e.name == name) {
            e.add_flags(Entry::OLD_VERSION);
        }
        d.entries.push(Entry {
            mtime: modification_time,
            object_id: id,
            size_in_blocks: size,
            attributes_hash,
            flags: Entry::FILE,
            name: name.clone(),
            attributes: Vec::new(),
            depends_newer: 0,
            depends_older: 0,
        });
        Ok(id)
    }

    fn set_replacement_file_attributes(
        &mut self,
        directory: i64,
        name: &EncodedName,
        attributes_hash: u64,
        attributes: &[u8],
    ) -> Result<i64> {
        let op = "SetReplacementFileAttributes";
        self.writable(op)?;
        let filter = ListFilter::new(flags::FILE, flags::DELETED | flags::OLD_VERSION);
        let d = self.dir_mut(op, directory)?;
        let e = d
            .entries
            .iter_mut()
            .find(|e| filter.matches(e.flags) && &e.name == name)
            .ok_or_else(|| err(op, ErrorCode::DoesNotExist))?;
        e.attributes = attributes.to_vec();
        e.attributes_hash = attributes_hash;
        Ok(e.object_id)
    }

    fn delete_file(&mut self, directory: i64, name: &EncodedName) -> Result<i64> {
        let op = "DeleteFile";
        self.writable(op)?;
        let filter = ListFilter::new(flags::FILE, flags::DELETED);
        let mut current = 0;
        for e in &mut self.dir_mut(op, directory)?.entries {
            if filter.matches(e.flags) && &e.name == name {
                e.add_flags(Entry::DELETED);
                if !e.is_old_version() {
                    current = e.object_id;
                }
            }
        }
        Ok(current)
    }

    fn undelete_file(&mut self, directory: i64, id: i64) -> Result<i64> {
        let op = "UndeleteFile";
        self.writable(op)?;
        let d = self.dir_mut(op, directory)?;
        match d.entry_by_id_mut(id) {
            Some(e) if e.is_file() && e.is_deleted() => {
                e.remove_flags(Entry::DELETED);
                Ok(if e.is_old_version() { 0 } else { id })
            }
            _ => Ok(0),
        }
    }

    fn delete_directory(&mut self, id: i64) -> Result<()> {
        self.delete_or_undelete_dir("DeleteDirectory", id, true)
    }

    fn undelete_directory(&mut self, id: i64) -> Result<()> {
        self.delete_or_undelete_dir("UndeleteDirectory", id, false)
    }

    fn move_object(
        &mut self,
        id: i64,
        from: i64,
        to: i64,
        new_name: &EncodedName,
        move_flags: i32,
    ) -> Result<()> {
        let op = "MoveObject";
        self.writable(op)?;
        let exclude = if move_flags & MoveObject::FLAGS_ALLOW_MOVE_OVER_DELETED_OBJECT != 0 {
            flags::DELETED
        } else {
            0
        };
        let all = move_flags & MoveObject::FLAGS_MOVE_ALL_WITH_SAME_NAME != 0;
        let target = ListFilter::new(-1, exclude);
        let src = self.dir(op, from)?;
        let old_name = src
            .entry_by_id(id)
            .ok_or_else(|| err(op, ErrorCode::DoesNotExistInDirectory))?
            .name
            .clone();
        let moving = |e: &Entry| {
            if all {
                e.name == old_name
            } else {
                e.object_id == id
            }
        };
        let taken = |d: &Directory| d.entries_matching(target).any(|e| &e.name == new_name);
        if from == to {
            if taken(src) {
                return Err(err(op, ErrorCode::TargetNameExists));
            }
            for e in &mut self.dir_mut(op, from)?.entries {
                if moving(e) {
                    e.name = new_name.clone();
                }
            }
            return Ok(());
        }
        let copies: Vec<Entry> = src.entries.iter().filter(|e| moving(e)).cloned().collect();
        if taken(self.dir(op, to)?) {
            return Err(err(op, ErrorCode::TargetNameExists));
        }
        let dst = self.dir_mut(op, to)?;
        for c in &copies {
            dst.entries.push(Entry {
                name: new_name.clone(),
                ..c.clone()
            });
        }
        self.dir_mut(op, from)?.entries.retain(|e| !moving(e));
        for c in copies.iter().filter(|c| c.is_dir()) {
            if let Ok(d) = self.dir_mut(op, c.object_id) {
                d.container_id = to;
            }
        }
        Ok(())
    }
}
