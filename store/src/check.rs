//! The store checker, `bbstoreaccounts check <id> [fix] [quiet]` (store.md §9).
//!
//! Owns: reading every object on disc, checking each directory against what is
//! really there, re-attaching or dropping what nothing refers to, and rebuilding
//! the store info and the refcount database from what was found. Without `fix`
//! nothing is changed; with it, the caller holds the account's write lock.
//! Messages and the error count follow 0.13 so that `check`'s output and exit
//! status are the ones administrators know. Must not know: keys (the checker can
//! only verify structure, never MD5s or attributes, formats.md §2.8).
//!
//! # Phases (0.13's)
//!
//! 1. Objects: walk the account; spurious files are reported (and deleted with
//!    fix); each object must be a structurally valid file (not ID 1) or a
//!    directory whose header names its own ID; others are corrupt (deleted).
//! 2. Directories: normalise each (dependency links, flags), drop entries for
//!    missing objects, objects of the other type or objects already listed
//!    elsewhere; note directories whose header names another container; correct
//!    entry sizes to the object's usage; count files, directories, references.
//! 3. Root: recreate an empty root if it is missing.
//! 4. Unattached objects: patches are deleted (they cannot be rebuilt);
//!    complete files go back into the directory their header names, else into
//!    `lost+found<n>` in the root, as do unattached directories.
//! 5. Fix the container IDs of the directories noted in phase 2.
//! 6. A new store info from the counts (limits raised if errors were found, the
//!    client store marker kept only if none were), compared with the old one;
//!    the new refcounts compared with the old ones; both written with fix.
//!
//! Not done (yet): 0.13 re-RAIDs write files and rewrites RAID files with one
//! component missing in phase 1 (our `bb_raid::Checker` does that job), and
//! recreates a missing directory when unattached files name it (we put such
//! files in lost+found).

use std::collections::{BTreeMap, HashMap, HashSet};

use bb_format::directory::{Directory, Entry};
use bb_format::filename::EncodedName;
use bb_format::refcount::RefCountDatabase;
use bb_format::storeinfo::StoreInfo;
use bb_raid::DiscSet;

use crate::ObjectId;
use crate::account::ROOT_DIRECTORY_ID;
use crate::error::{Error, Result};
use crate::objects::{NamedFile, ObjectStore, WalkItem, account_root, object_path};
use crate::report::{Level, Reporter, fmt_account, fmt_id};
use crate::totals::Totals;
use crate::verify::verify_bytes;

/// `check`'s options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Repair (the caller holds the write lock).
    pub fix: bool,
    /// Fewer messages (no phase headings).
    pub quiet: bool,
}

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckOutcome {
    /// 0.13's error count; `bbstoreaccounts check` exits 1 when it is not 0.
    pub errors: u64,
    /// The ID of the lost+found directory created, if any.
    pub lost_and_found: Option<ObjectId>,
}

#[derive(Debug, Clone)]
struct Obj {
    container: ObjectId,
    usage: i64,
    is_dir: bool,
    /// Files: a patch (other file ID set).
    is_patch: bool,
    contained: bool,
    /// Files: the embedded name and header mtime (for re-attaching).
    name: Option<EncodedName>,
    mtime: i64,
}

struct Checker<'a> {
    store: &'a dyn ObjectStore,
    discs: Option<&'a DiscSet>,
    opts: CheckOptions,
    log: &'a mut dyn Reporter,
    errors: u64,
    objects: BTreeMap<ObjectId, Obj>,
    counts: Totals,
    new_refs: RefCountDatabase,
    wrong_container: Vec<(ObjectId, ObjectId)>,
    lost_and_found: Option<ObjectId>,
    root_name: String,
}

/// Checks (and with `opts.fix` repairs) the account stored in `store`. `discs`,
/// when the store is on a RaidFile disc set, lets fix remove spurious files
/// (which are not objects, so the object store cannot name them).
pub fn check_account(
    store: &dyn ObjectStore,
    discs: Option<&DiscSet>,
    opts: CheckOptions,
    log: &mut dyn Reporter,
) -> Result<CheckOutcome> {
    let mut c = Checker {
        store,
        discs,
        opts,
        log,
        errors: 0,
        objects: BTreeMap::new(),
        counts: Totals::default(),
        new_refs: RefCountDatabase::new(store.account_id()),
        wrong_container: Vec::new(),
        lost_and_found: None,
        root_name: account_root(store.account_id())
            .trim_end_matches('/')
            .to_string(),
    };
    c.run()?;
    Ok(CheckOutcome {
        errors: c.errors,
        lost_and_found: c.lost_and_found,
    })
}

fn set_ref(db: &mut RefCountDatabase, id: ObjectId, count: u32) -> Result<()> {
    db.set(id, count).map_err(|source| Error::Format {
        op: "check: refcount",
        source,
    })
}

impl Checker<'_> {
    fn info(&mut self, m: String) {
        self.log.report(Level::Info, &m);
    }
    fn error(&mut self, m: String) {
        self.errors += 1;
        self.log.report(Level::Error, &m);
    }
    fn phase(&mut self, m: &str) {
        if !self.opts.quiet {
            self.log.report(Level::Info, m);
        }
    }
    fn fixing(&self) -> &'static str {
        if self.opts.fix { ", deleting" } else { "" }
    }

    /// The RaidFile directory and leaf of an object, as 0.13 prints them.
    fn object_file(&self, id: ObjectId) -> String {
        format!("{}/{}", self.root_name, object_path(id))
    }

    fn run(&mut self) -> Result<()> {
        let account = fmt_account(self.store.account_id());
        if self.opts.fix && !self.opts.quiet {
            self.info("Will fix errors encountered during checking.".into());
        }
        self.phase(&format!("Checking store account ID {account}..."));
        self.phase("Phase 1, check objects...");
        self.check_objects()?;
        set_ref(&mut self.new_refs, ROOT_DIRECTORY_ID, 1)?;
        self.phase("Phase 2, check directories...");
        self.check_directories()?;
        self.phase("Phase 3, check root...");
        self.check_root()?;
        let old_refs = self
            .store
            .read_named(NamedFile::RefCount)?
            .and_then(|b| RefCountDatabase::parse(&b).ok());
        self.phase("Phase 4, fix unattached objects...");
        self.check_unattached()?;
        self.phase("Phase 5, fix unrecovered inconsistencies...");
        self.fix_containers()?;
        self.phase("Phase 6, regenerate store info...");
        self.write_new_info()?;
        match &old_refs {
            Some(old) => self.compare_refs(old),
            None => {
                self.errors += 1;
                self.log.report(
                    Level::Warning,
                    "Reference count database was missing or corrupted, cannot check it for errors.",
                );
            }
        }
        if self.opts.fix {
            self.store
                .write_named(NamedFile::RefCountTemp, &self.new_refs.encode())?;
            self.store
                .replace_named(NamedFile::RefCountTemp, NamedFile::RefCount)?;
        }
        if self.errors > 0 {
            self.log.report(
                Level::Warning,
                &format!(
                    "Finished checking store account ID {account}: {} errors found",
                    self.errors
                ),
            );
            if self.opts.fix {
                self.log.report(
                    Level::Warning,
                    "You should now use bbackupquery on the client machine to examine the store.",
                );
                if self.lost_and_found.is_some() {
                    self.log.report(
                        Level::Warning,
                        "A lost+found directory was created in the account root.\nThis contains files and directories which could not be matched to existing directories.\nbbackupd will delete this directory in a few days time.",
                    );
                }
            } else {
                self.log.report(
                    Level::Warning,
                    "No changes to the store account have been made.",
                );
                self.log.report(
                    Level::Warning,
                    "Run again with fix option to fix these errors",
                );
            }
        } else {
            self.log.report(
                Level::Notice,
                &format!("Finished checking store account ID {account}: no errors found"),
            );
        }
        Ok(())
    }

    fn read_whole(&self, id: ObjectId) -> Result<(Vec<u8>, i64)> {
        let mut r = self.store.open_object(id)?;
        let size = r.size();
        let len = usize::try_from(size).map_err(|_| Error::Invalid {
            op: "check: read object",
            detail: format!("object {id:#x} is too large ({size} bytes)"),
        })?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len).map_err(|_| Error::Invalid {
            op: "check: read object",
            detail: format!("object {id:#x} is too large ({size} bytes)"),
        })?;
        buf.resize(len, 0);
        let n = r.read_at(&mut buf, 0)?;
        buf.truncate(n);
        let usage = i64::try_from(self.store.usage_in_blocks(size)).unwrap_or(i64::MAX);
        Ok((buf, usage))
    }

    fn check_objects(&mut self) -> Result<()> {
        let mut ids = Vec::new();
        let mut spurious = Vec::new();
        let mut bad_dirs = Vec::new();
        self.store.walk(&mut |item| {
            match item {
                WalkItem::Object(id) => ids.push(id),
                WalkItem::Named(_) => {}
                WalkItem::Other(p) if p == "refcount.db" => {}
                WalkItem::Other(p) => spurious.push(p),
                WalkItem::BadDir(d) => bad_dirs.push(d),
            }
            Ok(())
        })?;
        ids.sort_unstable();
        let max_dir = ids.iter().map(|id| id & !0xff).max().unwrap_or(0);
        for d in bad_dirs {
            let what = if self.opts.fix {
                "deleting"
            } else {
                "delete manually"
            };
            self.error(format!(
                "Spurious or invalid directory {}/{d} found, {what}",
                self.root_name
            ));
        }
        self.log.report(
            Level::Trace,
            &format!("Max dir starting ID is {}", fmt_id(max_dir)),
        );
        for p in spurious {
            self.error(format!(
                "Spurious file {}/{p} found{}",
                self.root_name,
                self.fixing()
            ));
            if self.opts.fix {
                self.delete_spurious(&p)?;
            }
        }
        let total = ids.len() as u64;
        let mut read = 0u64;
        for (n, id) in ids.into_iter().enumerate() {
            self.log.progress("objects", n as u64, total, read);
            let obj = match self.read_whole(id) {
                Ok((bytes, usage)) => {
                    read += bytes.len() as u64;
                    self.classify(id, &bytes, usage)
                }
                Err(e) if e.kind().is_none() => None,
                Err(e) => return Err(e),
            };
            match obj {
                Some(o) => {
                    self.counts.used += o.usage;
                    if o.is_dir {
                        self.counts.dirs += o.usage;
                    }
                    self.objects.insert(id, o);
                }
                None => {
                    self.error(format!(
                        "Corrupted file {} found{}",
                        self.object_file(id),
                        self.fixing()
                    ));
                    if self.opts.fix {
                        self.store.delete_object(id)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A spurious file is not an object: it can only be removed through the
    /// object store when it has an object-like name; 0.13 deletes the RaidFile.
    fn delete_spurious(&mut self, path: &str) -> Result<()> {
        // Objects under non-canonical names ("00/o05") and stray names are
        // reported; removing them needs the raw RaidFile name, which only the
        // RaidFile store has.
        if let Some(discs) = self.discs {
            let name = format!("{}/{path}", self.root_name);
            match discs.delete(&name) {
                Ok(()) | Err(bb_raid::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(Error::Raid {
                        op: "check: delete spurious file",
                        name,
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }

    fn classify(&mut self, id: ObjectId, bytes: &[u8], usage: i64) -> Option<Obj> {
        if bytes.len() < 4 {
            return None;
        }
        let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if magic == bb_format::directory::DIR_MAGIC {
            let dir = Directory::parse(bytes).ok()?;
            if dir.object_id != id {
                self.log.report(
                    Level::Error,
                    &format!(
                        "Directory ID {} thinks it should be {}",
                        fmt_id(id),
                        fmt_id(dir.object_id)
                    ),
                );
                return None;
            }
            return Some(Obj {
                container: dir.container_id,
                usage,
                is_dir: true,
                is_patch: false,
                contained: false,
                name: None,
                mtime: 0,
            });
        }
        if id == ROOT_DIRECTORY_ID {
            self.log
                .report(Level::Error, "Have file as root directory. This is bad.");
            return None;
        }
        let v = verify_bytes(bytes).ok()?;
        Some(Obj {
            container: v.header.container_id,
            usage,
            is_dir: false,
            is_patch: v.other_file_id != 0,
            contained: false,
            name: Some(v.name),
            mtime: v.header.mtime,
        })
    }

    fn check_directories(&mut self) -> Result<()> {
        let dir_ids: Vec<ObjectId> = self
            .objects
            .iter()
            .filter(|(_, o)| o.is_dir)
            .map(|(&id, _)| id)
            .collect();
        let total = dir_ids.len() as u64;
        let mut read = 0u64;
        for (n, d) in dir_ids.into_iter().enumerate() {
            self.log.progress("directories", n as u64, total, read);
            let (bytes, _) = self.read_whole(d)?;
            read += bytes.len() as u64;
            let Ok(mut dir) = Directory::parse(&bytes) else {
                continue;
            };
            let modified = self.check_directory(&mut dir)?;
            if modified {
                if check_and_fix(&mut dir, &mut *self.log) {
                    self.error(format!(
                        "Directory ID {} was still bad after all checks",
                        fmt_id(d)
                    ));
                } else {
                    self.info(format!("Directory ID {} was OK after fixing", fmt_id(d)));
                }
            }
            self.count_entries(&dir)?;
            if modified && self.opts.fix {
                self.log.report(
                    Level::Warning,
                    &format!("Writing modified directory to disk: {}", fmt_id(d)),
                );
                self.write_dir(&dir)?;
            }
        }
        Ok(())
    }

    fn write_dir(&mut self, dir: &Directory) -> Result<i64> {
        let bytes = dir.encode().map_err(|source| Error::Format {
            op: "check: write directory",
            source,
        })?;
        let mut w = self.store.create_object(dir.object_id, true)?;
        std::io::Write::write_all(&mut w, &bytes).map_err(|e| Error::Stream {
            op: "check: write directory",
            source: e,
        })?;
        w.commit()?;
        let usage = i64::try_from(self.store.usage_in_blocks(bytes.len() as u64)).unwrap_or(0);
        if let Some(o) = self.objects.get_mut(&dir.object_id) {
            let delta = usage - o.usage;
            o.usage = usage;
            self.counts.used += delta;
            self.counts.dirs += delta;
        }
        Ok(usage)
    }

    /// One directory of phase 2; true if it changed.
    fn check_directory(&mut self, dir: &mut Directory) -> Result<bool> {
        let d = dir.object_id;
        let mut modified = false;
        loop {
            if check_and_fix(dir, &mut *self.log) {
                let fixed = if self.opts.fix { ", fixed" } else { "" };
                self.error(format!(
                    "Directory ID {} had invalid entries{fixed}",
                    fmt_id(d)
                ));
                modified = true;
            }
            let mut bad = Vec::new();
            let mut seen_here = HashSet::new();
            for i in 0..dir.entries.len() {
                let e = &dir.entries[i];
                let id = e.object_id;
                let Some(o) = self.objects.get(&id).cloned() else {
                    self.error(format!(
                        "Directory ID {} references object {} which does not exist.",
                        fmt_id(d),
                        fmt_id(id)
                    ));
                    bad.push(id);
                    continue;
                };
                if o.is_dir != e.is_dir() {
                    self.error(format!(
                        "Directory ID {} references object {} which has a different type than expected.",
                        fmt_id(d),
                        fmt_id(id)
                    ));
                    bad.push(id);
                    continue;
                }
                if o.contained || !seen_here.insert(id) {
                    self.error(format!(
                        "Directory ID {} references object {} which is already contained.",
                        fmt_id(d),
                        fmt_id(id)
                    ));
                    bad.push(id);
                    continue;
                }
                if o.container != d {
                    if o.is_dir {
                        self.error(format!(
                            "Directory ID {} has wrong container ID.",
                            fmt_id(id)
                        ));
                        self.wrong_container.push((id, d));
                    } else {
                        self.info(format!(
                            "File ID {} has different container ID, probably moved",
                            fmt_id(id)
                        ));
                    }
                }
                let size = dir.entries[i].size_in_blocks;
                if size != o.usage {
                    self.error(format!(
                        "Directory {} entry for {} has wrong size {size}, should be {}",
                        fmt_id(d),
                        fmt_id(id),
                        o.usage
                    ));
                    dir.entries[i].size_in_blocks = o.usage;
                    modified = true;
                }
            }
            if bad.is_empty() {
                break;
            }
            for id in bad {
                self.error(format!(
                    "Removing directory entry {} from directory {}",
                    fmt_id(id),
                    fmt_id(d)
                ));
                if let Some(p) = dir.entries.iter().position(|e| e.object_id == id) {
                    dir.entries.remove(p);
                }
            }
            modified = true;
        }
        Ok(modified)
    }

    fn count_entries(&mut self, dir: &Directory) -> Result<()> {
        for e in &dir.entries {
            if let Some(o) = self.objects.get_mut(&e.object_id) {
                o.contained = true;
            }
            let c = self.new_refs.get(e.object_id).saturating_add(1);
            set_ref(&mut self.new_refs, e.object_id, c)?;
            if e.is_file() {
                self.counts.count_file(e);
            }
        }
        Ok(())
    }

    fn check_root(&mut self) -> Result<()> {
        if self
            .objects
            .get(&ROOT_DIRECTORY_ID)
            .is_some_and(|o| o.is_dir)
        {
            return Ok(());
        }
        self.error("Root directory doesn't exist".into());
        let usage = if self.opts.fix {
            let root = Directory::new(ROOT_DIRECTORY_ID, ROOT_DIRECTORY_ID);
            let bytes = root.encode().map_err(|source| Error::Format {
                op: "check: create root",
                source,
            })?;
            let mut w = self.store.create_object(ROOT_DIRECTORY_ID, true)?;
            std::io::Write::write_all(&mut w, &bytes).map_err(|e| Error::Stream {
                op: "check: create root",
                source: e,
            })?;
            w.commit()?;
            i64::try_from(self.store.usage_in_blocks(bytes.len() as u64)).unwrap_or(0)
        } else {
            0
        };
        self.record_new_directory(ROOT_DIRECTORY_ID, usage);
        Ok(())
    }

    /// Counts a directory that check made (the root, lost+found), held in the root.
    fn record_new_directory(&mut self, id: ObjectId, usage: i64) {
        self.counts.used += usage;
        self.counts.dirs += usage;
        self.objects.insert(
            id,
            Obj {
                container: ROOT_DIRECTORY_ID,
                usage,
                is_dir: true,
                is_patch: false,
                contained: true,
                name: None,
                mtime: 0,
            },
        );
    }

    fn check_unattached(&mut self) -> Result<()> {
        let root = ROOT_DIRECTORY_ID;
        if let Some(o) = self.objects.get_mut(&root) {
            o.contained = true;
        }
        let unattached: Vec<ObjectId> = self
            .objects
            .iter()
            .filter(|(_, o)| !o.contained)
            .map(|(&id, _)| id)
            .collect();
        let mut serial = 0u32;
        for id in unattached {
            let o = self.objects[&id].clone();
            self.error(format!("Object {} is unattached.", fmt_id(id)));
            if !o.is_dir && o.is_patch {
                self.error(format!(
                    "File ID {} is unattached, and is a patch. Deleting, cannot reliably recover.",
                    fmt_id(id)
                ));
                if self.opts.fix {
                    self.store.delete_object(id)?;
                }
                self.counts.used -= o.usage;
                self.objects.remove(&id);
                continue;
            }
            if !self.opts.fix {
                // 0.13 attaches (and so counts) unattached objects only when fixing.
                continue;
            }
            let target = if !o.is_dir
                && self
                    .objects
                    .get(&o.container)
                    .is_some_and(|c| c.is_dir && c.contained)
            {
                o.container
            } else {
                self.lost_and_found()?
            };
            let (name, mtime, size, flags) = if o.is_dir {
                let clear = format!("dir{serial:08x}");
                serial += 1;
                let name =
                    EncodedName::clear(clear.as_bytes()).map_err(|source| Error::Format {
                        op: "check: lost directory name",
                        source,
                    })?;
                (name, 100, 0, Entry::DIR)
            } else {
                let Some(name) = o.name.clone() else { continue };
                (name, o.mtime, o.usage, Entry::FILE)
            };
            let entry = Entry {
                mtime,
                object_id: id,
                size_in_blocks: size,
                // 0.13's quirk: the attribute hash of a re-attached entry is its mtime.
                attributes_hash: mtime as u64,
                flags,
                name,
                attributes: Vec::new(),
                depends_newer: 0,
                depends_older: 0,
            };
            if !o.is_dir {
                self.counts.count_file(&entry);
            }
            let c = self.new_refs.get(id).saturating_add(1);
            set_ref(&mut self.new_refs, id, c)?;
            if let Some(x) = self.objects.get_mut(&id) {
                x.contained = true;
            }
            if self.opts.fix {
                let (bytes, _) = self.read_whole(target)?;
                let mut dir = Directory::parse(&bytes).map_err(|e| {
                    Error::corrupt("check: insert object", format!("directory {target:#x}"), e)
                })?;
                let pos = dir
                    .entries
                    .iter()
                    .position(|e| e.object_id > id)
                    .unwrap_or(dir.entries.len());
                dir.entries.insert(pos, entry);
                self.write_dir(&dir)?;
                if o.is_dir && o.container != target {
                    self.wrong_container.push((id, target));
                }
            }
        }
        Ok(())
    }

    /// lost+found in the root, created on first use.
    fn lost_and_found(&mut self) -> Result<ObjectId> {
        if let Some(id) = self.lost_and_found {
            return Ok(id);
        }
        let id = self.objects.keys().next_back().copied().unwrap_or(1) + 1;
        let mut n = 0;
        let root_bytes = self.read_whole(ROOT_DIRECTORY_ID).ok().map(|b| b.0);
        let root = root_bytes
            .as_deref()
            .and_then(|b| Directory::parse(b).ok())
            .unwrap_or_else(|| Directory::new(ROOT_DIRECTORY_ID, ROOT_DIRECTORY_ID));
        let name = loop {
            let name =
                EncodedName::clear(format!("lost+found{n}").as_bytes()).map_err(|source| {
                    Error::Format {
                        op: "check: lost+found",
                        source,
                    }
                })?;
            if !root.entries.iter().any(|e| e.name == name) {
                break name;
            }
            n += 1;
        };
        self.log.report(
            Level::Warning,
            &format!("Lost and found dir has name lost+found{n}"),
        );
        let usage = if self.opts.fix {
            let dir = Directory::new(id, ROOT_DIRECTORY_ID);
            let bytes = dir.encode().map_err(|source| Error::Format {
                op: "check: lost+found",
                source,
            })?;
            let mut w = self.store.create_object(id, false)?;
            std::io::Write::write_all(&mut w, &bytes).map_err(|e| Error::Stream {
                op: "check: lost+found",
                source: e,
            })?;
            w.commit()?;
            let usage = i64::try_from(self.store.usage_in_blocks(bytes.len() as u64)).unwrap_or(0);
            let mut root = root;
            root.entries.push(Entry {
                mtime: 0,
                object_id: id,
                // 0.13 writes 0 here, which its next check reports as wrong.
                size_in_blocks: usage,
                attributes_hash: 0,
                flags: Entry::DIR,
                name,
                attributes: Vec::new(),
                depends_newer: 0,
                depends_older: 0,
            });
            self.write_dir(&root)?;
            i64::try_from(self.store.usage_in_blocks(bytes.len() as u64)).unwrap_or(0)
        } else {
            0
        };
        self.record_new_directory(id, usage);
        let c = self.new_refs.get(id).saturating_add(1);
        set_ref(&mut self.new_refs, id, c)?;
        self.lost_and_found = Some(id);
        Ok(id)
    }

    fn fix_containers(&mut self) -> Result<()> {
        if !self.opts.fix {
            return Ok(());
        }
        for (id, container) in std::mem::take(&mut self.wrong_container) {
            let (bytes, _) = self.read_whole(id)?;
            let mut dir = Directory::parse(&bytes).map_err(|e| {
                Error::corrupt("check: fix container", format!("directory {id:#x}"), e)
            })?;
            dir.container_id = container;
            self.write_dir(&dir)?;
        }
        Ok(())
    }

    fn write_new_info(&mut self) -> Result<()> {
        let n_dirs = self.objects.values().filter(|o| o.is_dir).count() as i64;
        self.counts.n_dirs = n_dirs;
        let c = self.counts;
        self.info(format!(
            "Current files: {}, old files: {}, deleted files: {}, directories: {}",
            c.n_current, c.n_old, c.n_deleted, c.n_dirs
        ));
        let old = self
            .store
            .read_named(NamedFile::Info)?
            .and_then(|b| StoreInfo::parse(&b).ok());
        let old = match old {
            Some(o) => o,
            None => {
                self.errors += 1;
                self.log.report(
                    Level::Warning,
                    "Load of existing store info failed, regenerating.",
                );
                let mut i = StoreInfo::new(self.store.account_id(), 0, 0);
                i.blocks_soft_limit = 0;
                i
            }
        };
        let mut new = old.clone();
        c.apply_to(&mut new);
        // 0.13 leaves lost+found's ID out; counting it keeps the next check quiet.
        new.last_object_id_used = self.objects.keys().next_back().copied().unwrap_or(1);
        if self.errors == 0 {
            self.info(format!(
                "No major errors found, preserving old ClientStoreMarker: {}",
                old.client_store_marker
            ));
        } else {
            new.client_store_marker = 0;
            let min_soft = c.used * 11 / 10 + 1024;
            let min_hard = min_soft * 11 / 10 + 1024;
            if new.blocks_soft_limit < min_soft {
                new.blocks_soft_limit = min_soft;
                self.log.report(
                    Level::Warning,
                    "Soft limit for account changed to ensure housekeeping doesn't delete files on next run.",
                );
            }
            if new.blocks_hard_limit < min_hard {
                new.blocks_hard_limit = min_hard;
                self.log.report(
                    Level::Warning,
                    "Hard limit for account changed to ensure housekeeping doesn't delete files on next run.",
                );
            }
        }
        self.report_info_changes(&old, &new);
        if self.opts.fix {
            let bytes = new.encode().map_err(|source| Error::Format {
                op: "check: write store info",
                source,
            })?;
            self.store.write_named(NamedFile::Info, &bytes)?;
            self.log
                .report(Level::Info, "New store info file written successfully.");
        }
        Ok(())
    }

    fn report_info_changes(&mut self, old: &StoreInfo, new: &StoreInfo) {
        let fields: [(&str, i64, i64); 13] = [
            (
                "AccountID",
                i64::from(old.account_id),
                i64::from(new.account_id),
            ),
            ("AccountName", 0, 0),
            ("BlocksUsed", old.blocks_used, new.blocks_used),
            (
                "BlocksInCurrentFiles",
                old.blocks_in_current_files,
                new.blocks_in_current_files,
            ),
            (
                "BlocksInOldFiles",
                old.blocks_in_old_files,
                new.blocks_in_old_files,
            ),
            (
                "BlocksInDeletedFiles",
                old.blocks_in_deleted_files,
                new.blocks_in_deleted_files,
            ),
            (
                "BlocksInDirectories",
                old.blocks_in_directories,
                new.blocks_in_directories,
            ),
            (
                "BlocksSoftLimit",
                old.blocks_soft_limit,
                new.blocks_soft_limit,
            ),
            (
                "BlocksHardLimit",
                old.blocks_hard_limit,
                new.blocks_hard_limit,
            ),
            (
                "NumCurrentFiles",
                old.num_current_files,
                new.num_current_files,
            ),
            ("NumOldFiles", old.num_old_files, new.num_old_files),
            (
                "NumDeletedFiles",
                old.num_deleted_files,
                new.num_deleted_files,
            ),
            ("NumDirectories", old.num_directories, new.num_directories),
        ];
        for (name, a, b) in fields {
            if a != b {
                self.error(format!("{name} changed from {a} to {b}"));
            }
        }
        if old.last_object_id_used != new.last_object_id_used {
            self.log.report(
                Level::Notice,
                &format!(
                    "LastObjectIDUsed changed from {} to {}",
                    old.last_object_id_used, new.last_object_id_used
                ),
            );
        }
    }

    fn compare_refs(&mut self, old: &RefCountDatabase) {
        let n = self.new_refs.highest_id().max(old.highest_id());
        for id in 1..=n {
            if Some(id) == self.lost_and_found {
                continue;
            }
            let (a, b) = (old.get(id), self.new_refs.get(id));
            if a != b {
                // A warning in 0.13's words, but counted as an error.
                self.errors += 1;
                self.log.report(
                    Level::Warning,
                    &format!(
                        "Reference count of object {} changed from {a} to {b}",
                        fmt_id(id)
                    ),
                );
            }
        }
    }
}

/// 0.13's `BackupStoreDirectory::CheckAndFix`: repairs the dependency links and
/// the OldVersion flags of a directory; true if anything changed.
pub fn check_and_fix(dir: &mut Directory, log: &mut dyn Reporter) -> bool {
    let mut changed = false;
    // Entries that are a patch against an entry that is not there cannot be read.
    loop {
        let ids: HashSet<ObjectId> = dir.entries.iter().map(|e| e.object_id).collect();
        let Some(p) = dir
            .entries
            .iter()
            .position(|e| e.depends_newer != 0 && !ids.contains(&e.depends_newer))
        else {
            break;
        };
        let e = dir.entries.remove(p);
        log.report(
            Level::Trace,
            &format!(
                "Entry id {} removed because depends on newer version {} which doesn't exist",
                fmt_id(e.object_id),
                fmt_id(e.depends_newer)
            ),
        );
        changed = true;
    }
    let index: HashMap<ObjectId, usize> = dir
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.object_id, i))
        .collect();
    for i in 0..dir.entries.len() {
        let (id, newer) = (dir.entries[i].object_id, dir.entries[i].depends_newer);
        if newer != 0 {
            if let Some(&n) = index.get(&newer) {
                if dir.entries[n].depends_older != id {
                    log.report(
                        Level::Trace,
                        &format!(
                            "Entry id {} was marked as depended on by {}, correcting DependsOlder to {}",
                            fmt_id(newer),
                            fmt_id(id),
                            fmt_id(id)
                        ),
                    );
                    dir.entries[n].depends_older = id;
                    changed = true;
                }
            }
        }
        let older = dir.entries[i].depends_older;
        if older != 0 && !index.contains_key(&older) {
            log.report(
                Level::Trace,
                &format!(
                    "Entry id {} was marked as depended on by {}, which doesn't exist, dependency info cleared",
                    fmt_id(id),
                    fmt_id(older)
                ),
            );
            dir.entries[i].depends_older = 0;
            changed = true;
        }
        let e = &mut dir.entries[i];
        if e.is_file() && e.is_dir() {
            log.report(
                Level::Trace,
                &format!(
                    "Entry {}: File flag and dir flag both set",
                    fmt_id(e.object_id)
                ),
            );
            e.remove_flags(Entry::FILE);
            changed = true;
        }
    }
    // Duplicate IDs: the last one wins.
    let mut seen = HashSet::new();
    let mut keep = vec![true; dir.entries.len()];
    for i in (0..dir.entries.len()).rev() {
        if !seen.insert(dir.entries[i].object_id) {
            log.report(
                Level::Trace,
                &format!(
                    "Entry {}: Remove because ID already seen",
                    fmt_id(dir.entries[i].object_id)
                ),
            );
            keep[i] = false;
            changed = true;
        }
    }
    let mut k = keep.into_iter();
    dir.entries.retain(|_| k.next().unwrap_or(true));
    // The newest entry of each name is the current one; earlier ones are old.
    let mut names = HashSet::new();
    for i in (0..dir.entries.len()).rev() {
        let e = &mut dir.entries[i];
        if !e.is_file() {
            continue;
        }
        if names.insert(e.name.as_bytes().to_vec()) {
            if e.is_old_version() {
                log.report(
                    Level::Trace,
                    &format!("Entry {}: Old flag unset", fmt_id(e.object_id)),
                );
                e.remove_flags(Entry::OLD_VERSION);
                changed = true;
            }
        } else if !e.is_old_version() && !e.is_deleted() {
            log.report(
                Level::Trace,
                &format!("Entry {}: Set old flag", fmt_id(e.object_id)),
            );
            e.add_flags(Entry::OLD_VERSION);
            changed = true;
        }
    }
    changed
}
