//! An open account: its object storage, store info and reference counts, with the
//! bookkeeping every store operation shares (store.md §3.3, §4, §5, §7).
//!
//! Owns: opening read-only or read-write (read-write holds the account write lock),
//! loading and saving the info (immediately or delayed, as 0.13 does) and the
//! refcounts (in memory, each change written in place), object ID allocation,
//! reading directory objects and rewriting them with the usage bookkeeping of
//! §7.3, and creating and deleting accounts (§7.1).
//!
//! Must not know: the protocol (no command or reply types) or the RaidFile layout
//! (everything goes through `ObjectStore`).

use std::collections::HashMap;
use std::io::Write;

use bb_format::directory::{DIR_MAGIC, Directory};
use bb_format::layout::{FILE_MAGIC_V0, FILE_MAGIC_V1};
use bb_format::refcount::{REFCOUNT_HEADER_LEN, RefCountDatabase};
use bb_format::storeinfo::StoreInfo;
use bb_raid::DiscSet;
use tracing::{debug, warn};

use crate::ObjectId;
use crate::accounts::AccountDatabase;
use crate::error::{Error, Result};
use crate::objects::{NamedFile, ObjectStore, RaidObjects, WriteLockGuard};

/// The root directory's object ID.
pub const ROOT_DIRECTORY_ID: ObjectId = 1;

/// How many IDs past "last used" may exist on disc (the info is saved lazily), and
/// how many existing IDs allocation skips before giving up (store.md §3.3).
pub const OBJECT_ID_SLACK: i64 = 192;

/// 0.13 saves the info at most every this many delayed changes.
pub const STORE_INFO_SAVE_DELAY: u32 = 96;

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadOnly,
    ReadWrite,
}

/// What kind of object the first four bytes say an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    File,
    Directory,
    Other,
}

impl ObjectKind {
    /// Judged by the magic (protocol.md §3.3: "file", legacy "FILE", or "DIR_").
    pub fn of_magic(magic: [u8; 4]) -> ObjectKind {
        match u32::from_be_bytes(magic) {
            FILE_MAGIC_V1 | FILE_MAGIC_V0 => ObjectKind::File,
            DIR_MAGIC => ObjectKind::Directory,
            _ => ObjectKind::Other,
        }
    }
}

/// An account opened on its object storage.
#[derive(Debug)]
pub struct Account {
    store: Box<dyn ObjectStore>,
    mode: Mode,
    info: StoreInfo,
    /// Loaded for read-write only (read-only sessions never need it).
    refcounts: Option<RefCountDatabase>,
    /// Delayed info changes not yet saved.
    unsaved_changes: u32,
    dirty: bool,
    /// Refcount slots written in place but not yet fsynced.
    refcounts_unsynced: bool,
    /// Directories changed but not yet written, when write-back is on.
    write_back: Option<WriteBack>,
    // Last: dropped after everything else, so nothing is written unlocked.
    lock: Option<Box<dyn WriteLockGuard>>,
}

fn load_info(store: &dyn ObjectStore) -> Result<StoreInfo> {
    let account = store.account_id();
    let bytes = store
        .read_named(NamedFile::Info)?
        .ok_or(Error::AccountNotFound { account })?;
    let info = StoreInfo::parse(&bytes).map_err(|e| {
        Error::corrupt(
            "load store info",
            format!("store info of account {account:#x}"),
            e,
        )
    })?;
    if info.account_id != account {
        warn!(
            account,
            in_file = info.account_id,
            "store info names another account"
        );
    }
    Ok(info)
}

fn load_refcounts(store: &dyn ObjectStore) -> Result<RefCountDatabase> {
    let account = store.account_id();
    let what = || format!("refcount database of account {account:#x}");
    let bytes = store
        .read_named(NamedFile::RefCount)?
        .ok_or_else(|| Error::Corrupt {
            op: "load refcounts",
            what: what(),
            source: bb_format::Error::corrupt("refcount database", "missing"),
        })?;
    RefCountDatabase::parse(&bytes).map_err(|e| Error::corrupt("load refcounts", what(), e))
}

/// Directory write-back (docs/store.md, "Durability"): a session that stores
/// many files in one directory would otherwise rewrite the whole directory
/// object once per file, O(n^2) bytes for n files. Changed directories stay in
/// memory, in the order first changed, with the usage (in blocks) that the
/// counters already hold for them, until [`Account::flush_directories`]: at
/// every store info save (so at most `STORE_INFO_SAVE_DELAY` changes behind), at
/// session end, and before any change whose safety after a crash depends on a
/// directory being on disc first (moves, reverse diffs, recursive deletes).
#[derive(Debug, Default)]
struct WriteBack {
    order: Vec<ObjectId>,
    dirs: HashMap<ObjectId, (Directory, i64)>,
}

impl Account {
    /// Opens the account. Read-write takes the write lock first
    /// (`CannotLockStoreForWriting` if busy) and loads the refcount database too.
    /// A disabled account opens; the caller decides (`info().account_enabled`).
    pub fn open(store: Box<dyn ObjectStore>, mode: Mode) -> Result<Account> {
        let lock = match mode {
            Mode::ReadWrite => Some(store.lock_for_writing()?),
            Mode::ReadOnly => None,
        };
        let info = load_info(&*store)?;
        let refcounts = match mode {
            Mode::ReadWrite => Some(load_refcounts(&*store)?),
            Mode::ReadOnly => None,
        };
        debug!(account = store.account_id(), ?mode, "account opened");
        Ok(Account {
            store,
            mode,
            info,
            refcounts,
            unsaved_changes: 0,
            dirty: false,
            refcounts_unsynced: false,
            write_back: None,
            lock,
        })
    }

    /// Opens read-write for housekeeping and `check fix`, which rebuild the refcount
    /// database from the directories: a missing or corrupt one must not stop them,
    /// so its load result is returned beside the account (whose `refcounts()` is
    /// then `None` until `replace_refcounts`). Added for the housekeeping module.
    pub fn open_for_rebuild(
        store: Box<dyn ObjectStore>,
    ) -> Result<(Account, Result<RefCountDatabase>)> {
        let lock = Some(store.lock_for_writing()?);
        let info = load_info(&*store)?;
        let old_refcounts = load_refcounts(&*store);
        debug!(account = store.account_id(), "account opened for rebuild");
        let account = Account {
            store,
            mode: Mode::ReadWrite,
            info,
            refcounts: None,
            unsaved_changes: 0,
            dirty: false,
            refcounts_unsynced: false,
            write_back: None,
            lock,
        };
        Ok((account, old_refcounts))
    }

    pub fn store(&self) -> &dyn ObjectStore {
        &*self.store
    }

    pub fn account_id(&self) -> u32 {
        self.store.account_id()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// True while this account holds the write lock (read-write).
    pub fn holds_write_lock(&self) -> bool {
        self.lock.is_some()
    }

    pub fn is_read_only(&self) -> bool {
        self.mode == Mode::ReadOnly
    }

    /// Fails with `ReadOnly` unless open read-write.
    pub fn require_write(&self, op: &'static str) -> Result<()> {
        if self.mode == Mode::ReadWrite {
            Ok(())
        } else {
            Err(Error::ReadOnly {
                op,
                account: self.account_id(),
            })
        }
    }

    pub fn block_size(&self) -> u64 {
        self.store.block_size()
    }

    /// Blocks an object of `size` bytes uses.
    pub fn usage_in_blocks(&self, size: u64) -> i64 {
        i64::try_from(self.store.usage_in_blocks(size)).unwrap_or(i64::MAX)
    }

    pub fn info(&self) -> &StoreInfo {
        &self.info
    }

    /// The info for changing; marks it unsaved. Read-write only.
    pub fn info_mut(&mut self) -> Result<&mut StoreInfo> {
        self.require_write("change store info")?;
        self.dirty = true;
        Ok(&mut self.info)
    }

    /// Saves the info now (and makes refcount changes durable first, so a durable
    /// info never runs ahead of the refcounts it was computed with).
    pub fn save_info(&mut self) -> Result<()> {
        self.require_write("save store info")?;
        self.flush_directories()?;
        self.sync_refcounts()?;
        let bytes = self.info.encode().map_err(|source| Error::Format {
            op: "save store info",
            source,
        })?;
        self.store.write_named(NamedFile::Info, &bytes)?;
        self.dirty = false;
        self.unsaved_changes = 0;
        Ok(())
    }

    /// Saves the info only every `STORE_INFO_SAVE_DELAY` calls (0.13's delayed
    /// save after ID allocation and undelete); `close` saves the rest.
    pub fn save_info_delayed(&mut self) -> Result<()> {
        self.require_write("save store info")?;
        self.dirty = true;
        self.unsaved_changes += 1;
        if self.unsaved_changes >= STORE_INFO_SAVE_DELAY {
            self.save_info()?;
        }
        Ok(())
    }

    /// Fsyncs the refcount database if slots were changed since the last sync.
    pub fn sync_refcounts(&mut self) -> Result<()> {
        if self.refcounts_unsynced {
            self.store.sync_named(NamedFile::RefCount)?;
            self.refcounts_unsynced = false;
        }
        Ok(())
    }

    /// Re-reads the info from disc (a read-only session sees a writer's changes).
    /// Unsaved changes of a read-write account are saved first.
    pub fn reload_info(&mut self) -> Result<()> {
        if self.dirty {
            self.save_info()?;
        }
        self.info = load_info(&*self.store)?;
        Ok(())
    }

    /// The refcount database (read-write accounts only).
    pub fn refcounts(&self) -> Option<&RefCountDatabase> {
        self.refcounts.as_ref()
    }

    /// The reference count of `id` (0 when unknown or read-only).
    pub fn refcount(&self, id: ObjectId) -> u32 {
        self.refcounts.as_ref().map_or(0, |r| r.get(id))
    }

    /// Sets a reference count, in memory and in place in the file (as 0.13 does).
    pub fn set_refcount(&mut self, id: ObjectId, count: u32) -> Result<()> {
        self.require_write("set refcount")?;
        let Some(rc) = self.refcounts.as_mut() else {
            return Err(Error::Invalid {
                op: "set refcount",
                detail: "refcount database not loaded".into(),
            });
        };
        rc.set(id, count).map_err(|source| Error::Format {
            op: "set refcount",
            source,
        })?;
        let offset = REFCOUNT_HEADER_LEN as u64 + 4 * (id as u64 - 1);
        self.refcounts_unsynced = true;
        self.store
            .patch_named(NamedFile::RefCount, offset, &count.to_be_bytes())
    }

    /// Replaces the refcount database (in memory and on disc, atomically).
    pub fn replace_refcounts(&mut self, db: RefCountDatabase) -> Result<()> {
        self.require_write("replace refcounts")?;
        self.store.write_named(NamedFile::RefCount, &db.encode())?;
        self.refcounts = Some(db);
        Ok(())
    }

    /// ObjectExists of protocol.md §3.3: positive, at most last used + 192, and on
    /// disc.
    pub fn object_may_exist(&self, id: ObjectId) -> Result<bool> {
        if id <= 0
            || id
                > self
                    .info
                    .last_object_id_used
                    .saturating_add(OBJECT_ID_SLACK)
        {
            return Ok(false);
        }
        self.store.object_exists(id)
    }

    /// The kind of object `id` by its magic; `DoesNotExist` if it is not there.
    pub fn object_kind(&self, op: &'static str, id: ObjectId) -> Result<ObjectKind> {
        let mut r = self.store.open_object(id).map_err(|e| rename_op(e, op))?;
        let mut m = [0u8; 4];
        let n = r.read_at(&mut m, 0)?;
        Ok(if n == 4 {
            ObjectKind::of_magic(m)
        } else {
            ObjectKind::Other
        })
    }

    /// Allocates a new object ID: last used + 1, skipping IDs whose object exists
    /// (up to 192 tries); the info save is delayed as in 0.13.
    pub fn allocate_object_id(&mut self) -> Result<ObjectId> {
        self.require_write("allocate object ID")?;
        for _ in 0..OBJECT_ID_SLACK {
            let id = self
                .info
                .last_object_id_used
                .checked_add(1)
                .ok_or_else(|| Error::Invalid {
                    op: "allocate object ID",
                    detail: "object IDs exhausted".into(),
                })?;
            self.info.last_object_id_used = id;
            self.dirty = true;
            if !self.store.object_exists(id)? {
                self.save_info_delayed()?;
                return Ok(id);
            }
            debug!(id, "skipping existing object ID");
        }
        self.save_info()?;
        Err(Error::Invalid {
            op: "allocate object ID",
            detail: format!(
                "{OBJECT_ID_SLACK} consecutive IDs up to {:#x} exist already",
                self.info.last_object_id_used
            ),
        })
    }

    /// Reads object `id` whole (directories; small objects). `DoesNotExist` if absent.
    pub fn read_object(&self, op: &'static str, id: ObjectId) -> Result<Vec<u8>> {
        let mut r = self.store.open_object(id).map_err(|e| rename_op(e, op))?;
        let size = r.size();
        let len = usize::try_from(size).map_err(|_| Error::Invalid {
            op,
            detail: format!("object {id:#x} is too large to load ({size} bytes)"),
        })?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len).map_err(|_| Error::Invalid {
            op,
            detail: format!("object {id:#x} is too large to load ({size} bytes)"),
        })?;
        buf.resize(len, 0);
        let n = r.read_at(&mut buf, 0)?;
        if n != len {
            return Err(Error::Invalid {
                op,
                detail: format!("object {id:#x} ended after {n} of {len} bytes"),
            });
        }
        Ok(buf)
    }

    /// "Loading a directory" (protocol.md §3.3): `DoesNotExist` if absent,
    /// `NotADirectory` if it is something else, `Corrupt` if it does not parse.
    pub fn read_directory(&self, op: &'static str, id: ObjectId) -> Result<Directory> {
        if id <= 0 {
            return Err(Error::DoesNotExist { op, id });
        }
        if let Some((dir, _)) = self.write_back.as_ref().and_then(|wb| wb.dirs.get(&id)) {
            return Ok(dir.clone());
        }
        let bytes = self.read_object(op, id)?;
        if bytes.len() < 4
            || ObjectKind::of_magic([bytes[0], bytes[1], bytes[2], bytes[3]])
                != ObjectKind::Directory
        {
            return Err(Error::NotADirectory { op, id });
        }
        let dir = Directory::parse(&bytes)
            .map_err(|e| Error::corrupt(op, format!("directory {id:#x}"), e))?;
        if dir.object_id != id {
            warn!(
                id,
                in_object = dir.object_id,
                "directory object names another ID"
            );
        }
        Ok(dir)
    }

    /// Writes a directory object without committing it and without bookkeeping
    /// (a new directory: the caller checks the limit, commits and accounts for it).
    /// Returns the writer and the object's usage in blocks.
    pub fn write_directory_uncommitted(
        &mut self,
        dir: &Directory,
        replace: bool,
    ) -> Result<(Box<dyn crate::objects::ObjectWrite>, i64)> {
        self.require_write("write directory")?;
        let bytes = dir.encode().map_err(|source| Error::Format {
            op: "write directory",
            source,
        })?;
        let mut w = self.store.create_object(dir.object_id, replace)?;
        w.write_all(&bytes).map_err(|e| Error::Stream {
            op: "write directory",
            source: e,
        })?;
        let usage = self.usage_in_blocks(w.len());
        Ok((w, usage))
    }

    /// Rewrites an existing directory with 0.13's bookkeeping (store.md §7.3): the
    /// change in its usage goes into blocks used and blocks in directories, and its
    /// entry in the parent gets the new size, which rewrites the parent in turn.
    /// The info is marked unsaved, not saved.
    pub fn save_directory(&mut self, dir: &Directory) -> Result<()> {
        self.require_write("save directory")?;
        let mut current = None::<Directory>;
        // Bounded: a container cycle (possible after a careless move) cannot loop.
        for _ in 0..4096 {
            let d = current.as_ref().unwrap_or(dir);
            let id = d.object_id;
            let buffered = self
                .write_back
                .as_ref()
                .and_then(|wb| wb.dirs.get(&id))
                .map(|(_, usage)| *usage);
            let old_usage = match buffered {
                Some(usage) => usage,
                None => match self.store.open_object(id) {
                    Ok(r) => self.usage_in_blocks(r.size()),
                    Err(Error::DoesNotExist { .. }) => 0,
                    Err(e) => return Err(e),
                },
            };
            let new_usage = if self.write_back.is_some() {
                let len = d
                    .encode()
                    .map_err(|source| Error::Format {
                        op: "save directory",
                        source,
                    })?
                    .len();
                let usage = self.usage_in_blocks(len as u64);
                if let Some(wb) = self.write_back.as_mut() {
                    if wb.dirs.insert(id, (d.clone(), usage)).is_none() {
                        wb.order.push(id);
                    }
                }
                usage
            } else {
                let (w, usage) = self.write_directory_uncommitted(d, true)?;
                w.commit()?;
                usage
            };
            let delta = new_usage - old_usage;
            self.info.blocks_used += delta;
            self.info.blocks_in_directories += delta;
            self.dirty = true;
            let parent_id = d.container_id;
            if id == ROOT_DIRECTORY_ID || parent_id == id || parent_id <= 0 {
                return Ok(());
            }
            let mut parent = match self.read_directory("save directory: parent", parent_id) {
                Ok(p) => p,
                Err(e) => {
                    warn!(id, parent_id, error = %e, "cannot update the directory's size in its parent");
                    return Ok(());
                }
            };
            match parent.entry_by_id_mut(id) {
                Some(e) if e.size_in_blocks != new_usage => e.size_in_blocks = new_usage,
                Some(_) => return Ok(()),
                None => {
                    warn!(id, parent_id, "directory has no entry in its container");
                    return Ok(());
                }
            }
            current = Some(parent);
        }
        Err(Error::Invalid {
            op: "save directory",
            detail: format!(
                "container chain of {:#x} does not reach the root",
                dir.object_id
            ),
        })
    }

    /// Turns directory write-back on or off (off writes what is buffered).
    /// Sessions turn it on; housekeeping and check, which delete objects, do not.
    pub fn set_directory_write_back(&mut self, on: bool) -> Result<()> {
        if on {
            self.require_write("directory write-back")?;
            self.write_back.get_or_insert_with(WriteBack::default);
        } else {
            self.flush_directories()?;
            self.write_back = None;
        }
        Ok(())
    }

    /// Writes every buffered directory, in the order first changed (so a crash
    /// midway leaves what write-through would have left at some earlier point
    /// of the same sequence of changes, for a single directory at a time).
    pub fn flush_directories(&mut self) -> Result<()> {
        let Some(wb) = self.write_back.as_mut() else {
            return Ok(());
        };
        if wb.order.is_empty() {
            return Ok(());
        }
        let order = std::mem::take(&mut wb.order);
        let mut dirs = std::mem::take(&mut wb.dirs);
        for (n, id) in order.iter().enumerate() {
            let Some((dir, usage)) = dirs.remove(id) else {
                continue;
            };
            let written = self
                .write_directory_uncommitted(&dir, true)
                .and_then(|(w, written)| w.commit().map(|()| written));
            match written {
                Ok(written) if written != usage => {
                    // Cannot happen (same bytes, same layout); the counters would
                    // drift, so say so for check to find.
                    warn!(
                        id,
                        usage, written, "written directory uses other blocks than counted"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    // Keep what is not written yet, this one first, for a retry.
                    if let Some(wb) = self.write_back.as_mut() {
                        wb.order = order[n..].to_vec();
                        wb.dirs.insert(*id, (dir, usage));
                        wb.dirs.extend(dirs);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Saves unsaved info and releases the lock.
    pub fn close(mut self) -> Result<()> {
        self.flush_directories()?;
        if self.mode == Mode::ReadWrite && self.dirty {
            self.save_info()?;
        }
        if self.mode == Mode::ReadWrite {
            self.sync_refcounts()?;
        }
        Ok(())
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        if let Err(e) = self.flush_directories() {
            warn!(account = self.account_id(), error = %e, "writing changed directories on close");
        }
        if self.mode == Mode::ReadWrite && self.dirty {
            if let Err(e) = self.save_info() {
                warn!(account = self.account_id(), error = %e, "saving the store info on close");
            }
        }
        if self.mode == Mode::ReadWrite
            && let Err(e) = self.sync_refcounts()
        {
            warn!(account = self.account_id(), error = %e, "syncing refcounts on close");
        }
    }
}

/// Makes "does not exist" errors name the caller's operation.
fn rename_op(e: Error, op: &'static str) -> Error {
    match e {
        Error::DoesNotExist { id, .. } => Error::DoesNotExist { op, id },
        e => e,
    }
}

/// Creates an account's storage exactly as 0.13's `BackupStoreAccounts::Create`
/// does (store.md §7.1): the account directory, `info` (last ID 1, the limits),
/// the empty root directory `o01` (ID 1, container 1) counted in blocks used and
/// in directories with one directory, and the refcount database with count(1) = 1.
pub fn create_account_storage(
    store: &dyn ObjectStore,
    soft_limit: i64,
    hard_limit: i64,
) -> Result<()> {
    let account = store.account_id();
    if soft_limit > hard_limit || soft_limit < 0 {
        return Err(Error::Invalid {
            op: "create account",
            detail: format!(
                "soft limit {soft_limit} must be between 0 and the hard limit {hard_limit}"
            ),
        });
    }
    store.create_account_storage()?;
    let mut info = StoreInfo::new(account, soft_limit, hard_limit);
    let enc = |info: &StoreInfo| {
        info.encode().map_err(|source| Error::Format {
            op: "create account",
            source,
        })
    };
    store.write_named(NamedFile::Info, &enc(&info)?)?;
    let root = Directory::new(ROOT_DIRECTORY_ID, ROOT_DIRECTORY_ID);
    let bytes = root.encode().map_err(|source| Error::Format {
        op: "create account",
        source,
    })?;
    let mut w = store.create_object(ROOT_DIRECTORY_ID, false)?;
    w.write_all(&bytes).map_err(|e| Error::Stream {
        op: "create account",
        source: e,
    })?;
    let usage = i64::try_from(store.usage_in_blocks(w.len())).unwrap_or(i64::MAX);
    w.commit()?;
    info.blocks_used += usage;
    info.blocks_in_directories += usage;
    info.num_directories = 1;
    store.write_named(NamedFile::Info, &enc(&info)?)?;
    let mut rc = RefCountDatabase::new(account);
    rc.set(ROOT_DIRECTORY_ID, 1)
        .map_err(|source| Error::Format {
            op: "create account",
            source,
        })?;
    store.write_named(NamedFile::RefCount, &rc.encode())?;
    debug!(account, "account storage created");
    Ok(())
}

/// `bbstoreaccounts create`: adds the account to accounts.txt and creates its
/// storage on `discs` (which must be disc set `discs.number()`).
pub fn create_account(
    db: &mut AccountDatabase,
    discs: &DiscSet,
    account: u32,
    soft_limit: i64,
    hard_limit: i64,
) -> Result<()> {
    if db.contains(account) {
        return Err(Error::AccountExists {
            account,
            detail: format!("already in {}", db.path().display()),
        });
    }
    let store = RaidObjects::new(discs.clone(), account);
    create_account_storage(&store, soft_limit, hard_limit)?;
    db.add(account, discs.number())?;
    db.save()
}

/// `bbstoreaccounts delete`: takes the write lock, removes the account's storage
/// from every disc (0.13: `rm -rf`) and its line from accounts.txt.
pub fn delete_account(db: &mut AccountDatabase, discs: &DiscSet, account: u32) -> Result<()> {
    if !db.contains(account) {
        return Err(Error::AccountNotFound { account });
    }
    let store = RaidObjects::new(discs.clone(), account);
    let lock = store.lock_for_writing()?;
    store.destroy_account_storage()?;
    drop(lock);
    db.remove(account)?;
    db.save()
}

/// Parses a limit as `bbstoreaccounts` does (store.md §4.3): a C `strtol` number
/// (base auto) followed by `M` (MiB), `G` (GiB) or `B` (blocks), converted to
/// blocks of `block_size` with integer division.
pub fn parse_limit(s: &str, block_size: u64) -> Result<i64> {
    let bad = || Error::Invalid {
        op: "parse limit",
        detail: format!("invalid size {s:?}: a number followed by B, M or G"),
    };
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, t) = if let Some(r) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, r)
    } else if t.len() > 1 && t.starts_with('0') && t.as_bytes()[1].is_ascii_digit() {
        (8, &t[1..])
    } else {
        (10, t)
    };
    let digits = t
        .bytes()
        .take_while(|b| (*b as char).is_digit(radix))
        .count();
    if digits == 0 {
        return Err(bad());
    }
    let n = i64::from_str_radix(&t[..digits], radix).map_err(|_| bad())?;
    if neg || n <= 0 {
        return Err(bad());
    }
    let bs = i64::try_from(block_size).map_err(|_| bad())?;
    let mul = |m: i64| n.checked_mul(m).map(|b| b / bs).ok_or_else(bad);
    match &t[digits..] {
        "B" | "b" => Ok(n),
        "M" | "m" => mul(1 << 20),
        "G" | "g" => mul(1 << 30),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit("10M", 2048).unwrap(), 5120);
        assert_eq!(parse_limit("20M", 2048).unwrap(), 10240);
        assert_eq!(parse_limit("2G", 4096).unwrap(), 524288);
        assert_eq!(parse_limit("5000B", 4096).unwrap(), 5000);
        assert_eq!(parse_limit("010B", 4096).unwrap(), 8);
        // As with strtol, the B of "0x10B" is a hex digit, leaving no unit.
        assert!(parse_limit("0x10B", 4096).is_err());
        for bad in ["", "M", "10", "10K", "-1M", "0B", "x"] {
            assert!(parse_limit(bad, 4096).is_err(), "{bad}");
        }
    }
}
