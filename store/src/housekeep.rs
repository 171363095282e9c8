//! Housekeeping (store.md §8): bringing an account back under its soft limit by
//! deleting old and deleted file versions, removing empty deleted directories,
//! and rebuilding the reference counts and the store info's totals.
//!
//! Owns: the scan, the choice and order of deletions, patch-chain repair when a
//! version in a chain goes, empty-directory removal, and the deleted-directory
//! list of the store info (see "The deleted-directory list" below). Must not
//! know: timers, sockets or which process asks it to stop (the caller passes an
//! `AtomicBool`), or how objects are stored (everything goes through `Account`
//! and `ObjectStore`).
//!
//! # What it does, in 0.13's order
//!
//! 1. Take the write lock (busy: return [`Housekept::Busy`] at once; bbstored
//!    skips the account until the next round).
//! 2. Deletion target `T = max(0, blocks used - soft limit)` from the stored info.
//! 3. Scan every directory depth-first from the root, deleted ones included. Each
//!    entry adds one to a new refcount database (the root starts at 1). File
//!    entries flagged RemoveASAP that are old or deleted are deleted at once.
//!    Walking the file entries from last to first gives each its *version age*
//!    within its name (newest 0); every old or deleted entry becomes a candidate
//!    `(age, mark = 0, id)`. The scan also recounts every total of the info.
//! 4. Interrupted during the scan: the new refcounts are thrown away (we did not
//!    see every reference), the info is saved as it was, and we stop.
//! 5. **Unlike 0.13, the recounted totals are saved** (0.13 computes them and
//!    throws them away; only `check fix` corrected drifting counters). The lock
//!    is held for the whole run, so nothing can change under the recount. Each
//!    total that differs is reported.
//! 6. If `T > 0`: delete candidates by age descending, then mark ascending (always
//!    0), then object ID ascending, until the blocks freed reach `T` (checked
//!    after each deletion). Current versions are never deleted.
//! 7. Remove empty directories flagged Deleted in their parent, moving up while
//!    parents become empty (never the root).
//! 8. Save the info and commit the new refcount database, release the lock.
//!
//! # Deleting one version X (§8.2)
//!
//! The newest version of a file is complete; older ones may be patches, linked in
//! the directory by `depends_newer` / `depends_older`. Removing X must keep every
//! remaining version restorable:
//!
//! * X is the oldest patch: its newer neighbour forgets it.
//! * An older patch Y depends on X and X is complete: Y := combine(Y, X), now
//!   complete.
//! * X is in the middle (Y -> X -> N): Y := combine_patches(X, Y), now a patch
//!   against N; the links skip X.
//!
//! Y's new object is committed only after the directory that describes it is
//! saved, and X is deleted last, so a crash at any point leaves every version
//! that the directory lists readable (at worst Y is complete while the
//! directory still calls it a patch against N, which reads the same, or X stays
//! on disc unreferenced until the next `check fix`).
//!
//! # The deleted-directory list
//!
//! 0.13 saves a list of deleted directory IDs in the store info and never uses it
//! (store.md §11.1). We use it as the list of *deleted subtrees that may hold
//! empty directories to remove*: DeleteDirectory calls [`note_deleted_directory`]
//! with the directory it deleted, UndeleteDirectory calls
//! [`note_undeleted_directory`]. [`tidy_deleted_directories`] visits only the
//! listed subtrees and removes the empty deleted directories in them, bottom-up,
//! without scanning the whole account, so a server can run it cheaply (for
//! instance at the end of a session that deleted directories) between full
//! housekeeping runs; an ID leaves the list when its directory is gone or no
//! longer deleted. Full housekeeping prunes the list the same way. 0.13 reads and
//! rewrites the list without looking at it, so stores stay compatible both ways.
//!
//! # Stopping
//!
//! The caller's `AtomicBool` is checked before each directory scanned, each file
//! deleted and each empty directory examined (0.13 polls its message pipe every
//! 32 of those; a load of an atomic costs nothing, so we check every time).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use bb_format::combine::{combine, combine_patches};
use bb_format::directory::Directory;
use bb_format::refcount::RefCountDatabase;
use bb_format::storeinfo::StoreInfo;

use crate::ObjectId;
use crate::account::{Account, ROOT_DIRECTORY_ID};
use crate::error::{Error, Result};
use crate::objects::ObjectStore;
use crate::report::{Level, Reporter, fmt_account, fmt_id};
use crate::totals::Totals;

/// How a housekeeping run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Housekept {
    /// The write lock was held by someone else; nothing was done.
    Busy,
    /// Stopped on request; what was done before is saved and consistent.
    Interrupted(HousekeepStats),
    /// Ran to the end.
    Finished(HousekeepStats),
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HousekeepStats {
    pub files_deleted: u64,
    pub dirs_deleted: u64,
    /// Blocks used before minus after (directory rewrites and combined patches
    /// included).
    pub blocks_freed: i64,
    /// Inconsistencies found (refcounts, directory sizes, missing entries).
    pub errors: u64,
    /// Totals of the info that the recount corrected.
    pub totals_corrected: u64,
}

/// A deletion candidate; the derived order is 0.13's deletion order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    /// Version age, negated so that the oldest sorts first.
    neg_age: i64,
    /// Mark number: only ever 0 (marks are not stored).
    mark: i64,
    id: ObjectId,
    dir: ObjectId,
    deleted: bool,
}

struct Run<'a> {
    account: Account,
    interrupt: &'a AtomicBool,
    log: &'a mut dyn Reporter,
    new_refs: RefCountDatabase,
    candidates: BTreeSet<Candidate>,
    empty_dirs: Vec<ObjectId>,
    totals: Totals,
    stats: HousekeepStats,
}

/// Runs housekeeping on the account whose storage is `store` (the timer of
/// bbstored and `bbstoreaccounts housekeep` call this). Setting `interrupt` makes
/// it stop at the next check point (a client wants the account's lock).
pub fn housekeep(
    store: Box<dyn ObjectStore>,
    interrupt: &AtomicBool,
    log: &mut dyn Reporter,
) -> Result<Housekept> {
    let account_id = store.account_id();
    log.report(
        Level::Trace,
        &format!(
            "Starting housekeeping on account {}",
            fmt_account(account_id)
        ),
    );
    let (account, old_refs) = match Account::open_for_rebuild(store) {
        Ok(a) => a,
        Err(Error::CannotLockStoreForWriting { .. }) => return Ok(Housekept::Busy),
        Err(e) => return Err(e),
    };
    let mut new_refs = RefCountDatabase::new(account_id);
    set_count(&mut new_refs, ROOT_DIRECTORY_ID, 1)?;
    let mut run = Run {
        account,
        interrupt,
        log,
        new_refs,
        candidates: BTreeSet::new(),
        empty_dirs: Vec::new(),
        totals: Totals::default(),
        stats: HousekeepStats::default(),
    };
    let result = run.run(old_refs.ok());
    // Releases the lock before the last message, as 0.13 does.
    drop(run);
    if matches!(result, Ok(Housekept::Finished(_))) {
        log.report(
            Level::Trace,
            &format!(
                "Finished housekeeping on account {}",
                fmt_account(account_id)
            ),
        );
    }
    result
}

fn set_count(db: &mut RefCountDatabase, id: ObjectId, count: u32) -> Result<()> {
    db.set(id, count).map_err(|source| Error::Format {
        op: "housekeeping: refcount",
        source,
    })
}

impl Run<'_> {
    fn stop_requested(&self) -> bool {
        self.interrupt.load(Ordering::Relaxed)
    }

    fn account_fmt(&self) -> String {
        fmt_account(self.account.account_id())
    }

    fn run(&mut self, old_refs: Option<RefCountDatabase>) -> Result<Housekept> {
        let info = self.account.info().clone();
        let target = (info.blocks_used - info.blocks_soft_limit).max(0);

        if !self.scan(ROOT_DIRECTORY_ID)? {
            // 0.13 reports and saves what the RemoveASAP deletions changed; the
            // recount is incomplete and the new refcounts unusable.
            let freed = info.blocks_used - self.account.info().blocks_used;
            self.stats.blocks_freed = freed;
            self.log.report(
                Level::Info,
                &format!(
                    "Housekeeping on account {} removed {} blocks ({} files, {} dirs) and the directory scan was interrupted",
                    self.account_fmt(),
                    freed,
                    self.stats.files_deleted,
                    self.stats.dirs_deleted
                ),
            );
            self.account.save_info()?;
            return Ok(Housekept::Interrupted(self.stats.clone()));
        }

        // Save the recount (our change from 0.13, see the module docs).
        self.apply_recount()?;
        self.account.save_info()?;

        match &old_refs {
            Some(old) => self.report_refcount_changes(old),
            None => {
                self.log.report(
                    Level::Warning,
                    "Reference count database was missing or corrupted during housekeeping, cannot check it for errors.",
                );
                self.stats.errors += 1;
            }
        }

        let used_before = self.account.info().blocks_used;
        let mut interrupted = self.delete_files(target, used_before)?;
        if !interrupted {
            interrupted = self.delete_empty_directories()?;
        }
        let freed = used_before - self.account.info().blocks_used;
        self.stats.blocks_freed = freed;
        if self.stats.files_deleted > 0 || self.stats.dirs_deleted > 0 {
            self.log.report(
                Level::Info,
                &format!(
                    "Housekeeping on account {} removed {} blocks ({} files, {} dirs){}",
                    self.account_fmt(),
                    freed,
                    self.stats.files_deleted,
                    self.stats.dirs_deleted,
                    if interrupted {
                        " and was interrupted"
                    } else {
                        ""
                    }
                ),
            );
        }
        if !interrupted {
            self.prune_deleted_directory_list()?;
        }
        clamp_totals(self.account.info_mut()?);
        self.account.save_info()?;
        let new_refs = std::mem::replace(&mut self.new_refs, RefCountDatabase::new(0));
        self.account.replace_refcounts(new_refs)?;
        Ok(if interrupted {
            Housekept::Interrupted(self.stats.clone())
        } else {
            Housekept::Finished(self.stats.clone())
        })
    }

    /// Loads a directory and its usage in blocks.
    fn load_dir(&self, id: ObjectId) -> Result<(Directory, i64)> {
        load_dir(&self.account, id)
    }

    /// Scans one directory and, recursively, everything under it. False if
    /// interrupted.
    fn scan(&mut self, id: ObjectId) -> Result<bool> {
        if self.stop_requested() {
            return Ok(false);
        }
        let (mut dir, _) = self.load_dir(id)?;
        for e in &dir.entries {
            let c = self.new_refs.get(e.object_id).saturating_add(1);
            set_count(&mut self.new_refs, e.object_id, c)?;
        }
        // RemoveASAP: never set by 0.13 clients, handled as 0.13 does.
        while let Some(x) = dir
            .entries
            .iter()
            .find(|e| e.is_file() && e.is_remove_asap() && !e.is_current())
            .map(|e| e.object_id)
        {
            self.delete_file(id, x, &mut dir)?;
        }
        // Measured after any RemoveASAP rewrite, so the recount is exact.
        let usage = usage_of(&self.account, id)?;
        self.totals.used += usage;
        self.totals.dirs += usage;
        self.totals.n_dirs += 1;
        if dir.entries.is_empty() {
            self.empty_dirs.push(id);
        }
        let mut ages: std::collections::HashMap<&[u8], i64> = std::collections::HashMap::new();
        for e in dir.entries.iter().rev().filter(|e| e.is_file()) {
            let size = e.size_in_blocks;
            self.totals.used += size;
            self.totals.count_file(e);
            let age = ages
                .entry(e.name.as_bytes())
                .and_modify(|a| *a += 1)
                .or_insert(0);
            if !e.is_current() {
                self.candidates.insert(Candidate {
                    neg_age: -*age,
                    mark: 0,
                    id: e.object_id,
                    dir: id,
                    deleted: e.is_deleted(),
                });
            }
        }
        let subdirs: Vec<ObjectId> = dir
            .entries
            .iter()
            .filter(|e| e.is_dir())
            .map(|e| e.object_id)
            .collect();
        for sub in subdirs {
            if !self.scan(sub)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn apply_recount(&mut self) -> Result<()> {
        let t = self.totals;
        let was = Totals::of_info(self.account.info()).named();
        let fields = was
            .iter()
            .zip(t.named())
            .map(|(&(name, was), (_, now))| (name, was, now));
        for (name, was, now) in fields {
            if was != now {
                self.log.report(
                    Level::Notice,
                    &format!("Housekeeping corrected {name} from {was} to {now}"),
                );
                self.stats.totals_corrected += 1;
            }
        }
        t.apply_to(self.account.info_mut()?);
        Ok(())
    }

    fn report_refcount_changes(&mut self, old: &RefCountDatabase) {
        let n = self.new_refs.highest_id().max(old.highest_id());
        for id in 1..=n {
            let (was, now) = (old.get(id), self.new_refs.get(id));
            if was != now {
                self.log.report(
                    Level::Error,
                    &format!(
                        "Reference count of object {} changed from {was} to {now}",
                        fmt_id(id)
                    ),
                );
                self.stats.errors += 1;
            }
        }
    }

    /// Step 6. True if interrupted.
    fn delete_files(&mut self, target: i64, used_before: i64) -> Result<bool> {
        if target <= 0 {
            return Ok(false);
        }
        let candidates: Vec<Candidate> = self.candidates.iter().copied().collect();
        for c in candidates {
            if self.stop_requested() {
                return Ok(true);
            }
            let (mut dir, _) = self.load_dir(c.dir)?;
            let reason = if c.deleted { "deleted" } else { "old" };
            let refs = self.delete_file(c.dir, c.id, &mut dir)?;
            if refs == 0 {
                self.log.report(
                    Level::Info,
                    &format!(
                        "Housekeeping removed {reason} file {} from dir {}",
                        fmt_id(c.id),
                        fmt_id(c.dir)
                    ),
                );
            } else {
                self.log.report(
                    Level::Trace,
                    &format!(
                        "Housekeeping preserved {reason} file {} in dir {} with {refs} references",
                        fmt_id(c.id),
                        fmt_id(c.dir)
                    ),
                );
            }
            if used_before - self.account.info().blocks_used >= target {
                break;
            }
        }
        Ok(false)
    }

    /// Deletes file entry `x` of directory `dir_id` (loaded as `dir`), repairing
    /// its patch chain (§8.2). Returns the references left (0: object deleted).
    fn delete_file(&mut self, dir_id: ObjectId, x: ObjectId, dir: &mut Directory) -> Result<u32> {
        let refs = self.new_refs.get(x);
        let Some(pos) = dir.entries.iter().position(|e| e.object_id == x) else {
            self.log.report(
                Level::Error,
                &format!(
                    "Housekeeping on account {} found error: object {} not found in dir {}, indicates logic error/corruption? Run bbstoreaccounts check <accid> fix",
                    self.account_fmt(),
                    fmt_id(x),
                    fmt_id(dir_id)
                ),
            );
            self.stats.errors += 1;
            return Ok(refs);
        };
        let entry = dir.entries[pos].clone();
        if entry.is_current() {
            // Changed since the scan.
            return Ok(refs);
        }
        if refs > 1 {
            // Others still refer to the object: only this entry goes (0.13 forgot
            // to save the directory here; we do).
            dir.entries.remove(pos);
            self.account.save_directory(dir)?;
            let info = self.account.info_mut()?;
            if entry.is_deleted() {
                info.num_deleted_files -= 1;
            }
            if entry.is_old_version() {
                info.num_old_files -= 1;
            }
            set_count(&mut self.new_refs, x, refs - 1)?;
            return Ok(refs - 1);
        }

        let bad_chain = |detail: &str| Error::PatchConsistency {
            op: "housekeeping: delete file",
            id: x,
            detail: format!("{detail} (PatchChainInfoBadInDirectory in directory {dir_id:#x})"),
        };
        let find =
            |dir: &Directory, id: ObjectId| dir.entries.iter().position(|e| e.object_id == id);
        let mut rewritten: Option<(ObjectId, Vec<u8>)> = None;
        if entry.depends_newer != 0 && entry.depends_older == 0 {
            let n = find(dir, entry.depends_newer)
                .filter(|&n| dir.entries[n].depends_older == x)
                .ok_or_else(|| bad_chain("its newer version does not point back"))?;
            dir.entries[n].depends_older = 0;
        } else if entry.depends_older != 0 {
            let y = find(dir, entry.depends_older)
                .filter(|&y| dir.entries[y].depends_newer == x)
                .ok_or_else(|| bad_chain("its older version does not point back"))?;
            let y_id = dir.entries[y].object_id;
            let x_bytes = self.account.read_object("housekeeping: read file", x)?;
            let y_bytes = self.account.read_object("housekeeping: read patch", y_id)?;
            let combine_err = |source| Error::Corrupt {
                op: "housekeeping: combine",
                what: format!("objects {x:#x} and {y_id:#x}"),
                source,
            };
            let (new_y, still_patch) = if entry.depends_newer == 0 {
                (combine(&y_bytes, &x_bytes).map_err(combine_err)?, false)
            } else {
                let n = find(dir, entry.depends_newer)
                    .filter(|&n| dir.entries[n].depends_older == x)
                    .ok_or_else(|| bad_chain("its newer version does not point back"))?;
                let (bytes, refers) = combine_patches(&x_bytes, &y_bytes).map_err(combine_err)?;
                dir.entries[n].depends_older = if refers { y_id } else { 0 };
                (bytes, refers)
            };
            let ye = &mut dir.entries[y];
            ye.depends_newer = if still_patch { entry.depends_newer } else { 0 };
            let new_size = self.account.usage_in_blocks(new_y.len() as u64);
            let delta = new_size - ye.size_in_blocks;
            ye.size_in_blocks = new_size;
            let (old, deleted, current) = (ye.is_old_version(), ye.is_deleted(), ye.is_current());
            let info = self.account.info_mut()?;
            info.blocks_used += delta;
            if old {
                info.blocks_in_old_files += delta;
            }
            if deleted {
                info.blocks_in_deleted_files += delta;
            }
            if current {
                info.blocks_in_current_files += delta;
            }
            rewritten = Some((y_id, new_y));
        }

        dir.entries.remove(pos);
        self.account.save_directory(dir)?;
        if let Some((y_id, bytes)) = rewritten {
            // After the directory: see "Deleting one version" in the module docs.
            let mut w = self.account.store().create_object(y_id, true)?;
            std::io::Write::write_all(&mut w, &bytes).map_err(|e| Error::Stream {
                op: "housekeeping: write combined file",
                source: e,
            })?;
            w.commit()?;
        }
        set_count(&mut self.new_refs, x, 0)?;
        self.log.report(
            Level::Trace,
            &format!("Removing unreferenced object {}", fmt_id(x)),
        );
        self.account.store().delete_object(x)?;
        self.stats.files_deleted += 1;
        let size = entry.size_in_blocks;
        let info = self.account.info_mut()?;
        info.blocks_used -= size;
        if entry.is_deleted() {
            info.blocks_in_deleted_files -= size;
            info.num_deleted_files -= 1;
        }
        if entry.is_old_version() {
            info.blocks_in_old_files -= size;
            info.num_old_files -= 1;
        }
        if dir.entries.is_empty() {
            self.empty_dirs.push(dir_id);
        }
        Ok(0)
    }

    /// Step 7. True if interrupted.
    fn delete_empty_directories(&mut self) -> Result<bool> {
        while !self.empty_dirs.is_empty() {
            let list = std::mem::take(&mut self.empty_dirs);
            let mut next = Vec::new();
            for id in list {
                if self.stop_requested() {
                    return Ok(true);
                }
                if id == ROOT_DIRECTORY_ID {
                    continue;
                }
                let refs = &mut self.new_refs;
                let outcome = delete_empty_directory(&mut self.account, id, &mut |id| {
                    let c = refs.get(id).saturating_sub(1);
                    set_count(refs, id, c)?;
                    Ok(c)
                })?;
                self.report_dir_outcome(id, outcome, &mut next);
            }
            self.empty_dirs = next;
        }
        Ok(false)
    }

    fn report_dir_outcome(&mut self, id: ObjectId, outcome: DirOutcome, next: &mut Vec<ObjectId>) {
        match outcome {
            DirOutcome::Kept => {}
            DirOutcome::Spared { refs, parent_empty } => {
                self.log.report(
                    Level::Trace,
                    &format!(
                        "Housekeeping spared empty deleted dir {} due to {refs} remaining references",
                        fmt_id(id)
                    ),
                );
                next.extend(parent_empty);
            }
            DirOutcome::Removed { parent_empty } => {
                self.log.report(
                    Level::Info,
                    &format!("Housekeeping removing empty deleted dir {}", fmt_id(id)),
                );
                self.stats.dirs_deleted += 1;
                next.extend(parent_empty);
            }
        }
    }

    fn prune_deleted_directory_list(&mut self) -> Result<()> {
        let list = self.account.info().deleted_directories.clone();
        let mut keep = Vec::with_capacity(list.len());
        for id in list {
            if still_deleted(&self.account, id)? {
                keep.push(id);
            }
        }
        if keep != self.account.info().deleted_directories {
            self.account.info_mut()?.deleted_directories = keep;
        }
        Ok(())
    }
}

/// What happened to an empty-directory candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirOutcome {
    /// Not empty, not deleted, or gone already.
    Kept,
    /// Its entry was removed but other references keep the object.
    Spared {
        refs: u32,
        parent_empty: Option<ObjectId>,
    },
    /// Entry and object removed.
    Removed { parent_empty: Option<ObjectId> },
}

/// §8.3: removes directory `id` if it is empty and flagged Deleted in its parent.
/// `drop_ref` removes one reference and returns those left.
fn delete_empty_directory(
    account: &mut Account,
    id: ObjectId,
    drop_ref: &mut dyn FnMut(ObjectId) -> Result<u32>,
) -> Result<DirOutcome> {
    if !account.store().object_exists(id)? {
        return Ok(DirOutcome::Kept);
    }
    let (dir, usage) = load_dir(account, id)?;
    if !dir.entries.is_empty() || dir.container_id == id {
        return Ok(DirOutcome::Kept);
    }
    let (mut parent, _) = load_dir(account, dir.container_id)?;
    let Some(pos) = parent
        .entries
        .iter()
        .position(|e| e.object_id == id && e.is_deleted())
    else {
        return Ok(DirOutcome::Kept);
    };
    parent.entries.remove(pos);
    let parent_empty = parent.entries.is_empty().then_some(parent.object_id);
    account.save_directory(&parent)?;
    let refs = drop_ref(id)?;
    if refs > 0 {
        return Ok(DirOutcome::Spared { refs, parent_empty });
    }
    account.store().delete_object(id)?;
    let info = account.info_mut()?;
    info.blocks_used -= usage;
    info.blocks_in_directories -= usage;
    info.num_directories -= 1;
    info.deleted_directories.retain(|&d| d != id);
    Ok(DirOutcome::Removed { parent_empty })
}

fn usage_of(account: &Account, id: ObjectId) -> Result<i64> {
    let size = account.store().open_object(id)?.size();
    Ok(account.usage_in_blocks(size))
}

fn load_dir(account: &Account, id: ObjectId) -> Result<(Directory, i64)> {
    let dir = account.read_directory("housekeeping: load directory", id)?;
    let usage = usage_of(account, id)?;
    Ok((dir, usage))
}

/// True if directory `id` exists and its entry in its parent is flagged Deleted.
fn still_deleted(account: &Account, id: ObjectId) -> Result<bool> {
    if id == ROOT_DIRECTORY_ID || !account.store().object_exists(id)? {
        return Ok(false);
    }
    let dir = match account.read_directory("housekeeping: deleted list", id) {
        Ok(d) => d,
        Err(Error::DoesNotExist { .. } | Error::NotADirectory { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    let parent = match account.read_directory("housekeeping: deleted list", dir.container_id) {
        Ok(p) => p,
        Err(Error::DoesNotExist { .. } | Error::NotADirectory { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(parent
        .entries
        .iter()
        .any(|e| e.object_id == id && e.is_dir() && e.is_deleted()))
}

/// Clamps totals that deletions drove below zero (counters that were wrong
/// before the run; 0.13 clamps its deltas the same way).
fn clamp_totals(info: &mut StoreInfo) {
    for v in [
        &mut info.blocks_used,
        &mut info.blocks_in_current_files,
        &mut info.blocks_in_old_files,
        &mut info.blocks_in_deleted_files,
        &mut info.blocks_in_directories,
        &mut info.num_current_files,
        &mut info.num_old_files,
        &mut info.num_deleted_files,
        &mut info.num_directories,
    ] {
        *v = (*v).max(0);
    }
}

/// For DeleteDirectory: records that directory `id` was deleted, so that
/// [`tidy_deleted_directories`] visits it. The caller saves the info.
pub fn note_deleted_directory(info: &mut StoreInfo, id: ObjectId) {
    if id != ROOT_DIRECTORY_ID && !info.deleted_directories.contains(&id) {
        info.deleted_directories.push(id);
    }
}

/// For UndeleteDirectory: the directory is live again. The caller saves the info.
pub fn note_undeleted_directory(info: &mut StoreInfo, id: ObjectId) {
    info.deleted_directories.retain(|&d| d != id);
}

/// The quick pass over the deleted-directory list (see the module docs): removes
/// empty deleted directories inside the listed subtrees, bottom-up, without a
/// full scan, and drops IDs that are gone or no longer deleted. Takes the write
/// lock (`Busy` if held). Refcounts are kept up to date in place; nothing is
/// recounted (full housekeeping does that). If the refcount database cannot be
/// loaded, nothing is done (full housekeeping rebuilds it).
pub fn tidy_deleted_directories(
    store: Box<dyn ObjectStore>,
    interrupt: &AtomicBool,
    log: &mut dyn Reporter,
) -> Result<Housekept> {
    let (mut account, refs) = match Account::open_for_rebuild(store) {
        Ok(a) => a,
        Err(Error::CannotLockStoreForWriting { .. }) => return Ok(Housekept::Busy),
        Err(e) => return Err(e),
    };
    let mut stats = HousekeepStats::default();
    let Ok(refs) = refs else {
        return Ok(Housekept::Finished(stats));
    };
    account.replace_refcounts(refs)?;
    let used_before = account.info().blocks_used;
    let list = account.info().deleted_directories.clone();
    let mut interrupted = false;
    for top in list {
        if interrupt.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        if !still_deleted(&account, top)? {
            note_undeleted_directory(account.info_mut()?, top);
            continue;
        }
        // Post-order: children before parents, so a chain of empty deleted
        // directories goes in one pass.
        let mut order = Vec::new();
        let mut stack = vec![(top, false)];
        let mut seen = BTreeSet::new();
        while let Some((id, expanded)) = stack.pop() {
            if expanded {
                order.push(id);
                continue;
            }
            if !seen.insert(id) {
                continue; // a cycle in a damaged store
            }
            stack.push((id, true));
            let (dir, _) = load_dir(&account, id)?;
            for e in dir.entries.iter().filter(|e| e.is_dir() && e.is_deleted()) {
                stack.push((e.object_id, false));
            }
        }
        for id in order {
            if interrupt.load(Ordering::Relaxed) {
                interrupted = true;
                break;
            }
            let remaining = account.refcount(id).saturating_sub(1);
            let outcome = delete_empty_directory(&mut account, id, &mut |_| Ok(remaining))?;
            match outcome {
                DirOutcome::Kept => {}
                DirOutcome::Spared { .. } => account.set_refcount(id, remaining)?,
                DirOutcome::Removed { .. } => {
                    account.set_refcount(id, 0)?;
                    stats.dirs_deleted += 1;
                    log.report(
                        Level::Info,
                        &format!("Housekeeping removing empty deleted dir {}", fmt_id(id)),
                    );
                }
            }
        }
        if interrupted {
            break;
        }
    }
    stats.blocks_freed = used_before - account.info().blocks_used;
    clamp_totals(account.info_mut()?);
    account.save_info()?;
    account.close()?;
    Ok(if interrupted {
        Housekept::Interrupted(stats)
    } else {
        Housekept::Finished(stats)
    })
}
