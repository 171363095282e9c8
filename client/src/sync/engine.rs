//! The walk of one run, following 0.13's `BackupDaemon::RunSyncNow`,
//! `BackupClientDirectoryRecord::SyncDirectory`/`UpdateItems`/`UploadFile` and
//! `BackupClientDeleteList`, step for step where the result on the store
//! depends on it.
//!
//! # Decisions and their invariants
//!
//! * **Always list.** 0.13 skips ListDirectory when a local MD5 of the
//!   directory's stat data is unchanged; we list every directory. With a
//!   listing in hand, 0.13's upload rule reduces to: a file is sent when it is
//!   not on the store or its mtime differs from the entry's, *and* its mtime
//!   is before the end of the sync window (now − MinimumFileAge; a year later
//!   when that is 0), or it has been pending longer than MaxUploadWait, or its
//!   mtime is more than MaxFileTimeInFuture ahead. The window's start only
//!   matters without a listing, so it does not appear here.
//! * **Deletions last.** Store entries with no local counterpart (deleted,
//!   excluded, or no longer a file/directory) are queued and deleted after
//!   the whole walk, so that a rename found later (MoveObject) can take the
//!   entry back off the queue (`StopFileDeletion`, `StopDirectoryDeletion`).
//! * **Renames.** A new name whose inode the previous run's map knows, whose
//!   object is still current on the store (GetObjectName) and whose old local
//!   path is gone, is moved (MoveObject, flags 3) instead of uploaded; a
//!   directory also gets its attributes refreshed. The new map is built during
//!   the run and replaces the old one only when the run succeeds.
//! * **What goes up never lies about its structure.** The encoder promises N
//!   blocks in the header; a file that shrinks while read fails the stream
//!   and the store keeps nothing. A file that changes otherwise (grows, is
//!   rewritten) gives a structurally valid file with the pre-read mtime; a
//!   stat after the upload notices it (size, mtime, ctime) and the file is
//!   marked to go up again next run whatever its mtime says.
//! * **Store full.** Nothing is uploaded, created, moved or re-attributed;
//!   the walk goes on (directories not on the store are not entered) and the
//!   queued deletions still happen, which is how space comes back.
//! * **Errors.** A local read error is an event and a counted error; the run
//!   goes on. A store error reply to one file is too. A lost connection ends
//!   the run (as 0.13's ConnectionException does); the caller retries later.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Cursor, Seek, SeekFrom};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bb_format::attributes::{CompareOptions, UnixAttributes};
use bb_format::diff::{DiffLimits, KeepAlive};
use bb_format::directory::Directory;
use bb_format::encode::{FileMeta, encode_file};
use bb_format::index::BlockIndex;
use bb_format::recipe::Recipe;
use bb_format::{BoxTime, EncodedName, Keys};
use bb_proto::ErrorCode;
use bb_proto::message::{MoveObject, flags};
use bb_remote::StoreWrite;
use tracing::{debug, info, warn};

use super::body::{Metered, file_body};
use super::state::{InodeMap, STATE_FILE, SyncState};
use super::{Event, Events, Filter, RunProgress, SyncError, SyncOptions, SyncReport, now_box_time};
use crate::localfs::{ctime_of, mtime_of, read_attributes};

const ROOT: i64 = flags::ROOT_DIRECTORY;
const MOVE_FLAGS: i32 =
    MoveObject::FLAGS_MOVE_ALL_WITH_SAME_NAME | MoveObject::FLAGS_ALLOW_MOVE_OVER_DELETED_OBJECT;
/// 0.13 adds 356 (sic) days to the window's end when MinimumFileAge is 0.
const ZERO_AGE_EXTENSION: BoxTime = 356 * 24 * 3600 * 1_000_000;

fn micros(d: Duration) -> BoxTime {
    BoxTime::try_from(d.as_micros()).unwrap_or(BoxTime::MAX)
}

fn format_err(what: impl Into<String>) -> impl FnOnce(bb_format::Error) -> SyncError {
    let what = what.into();
    move |source| SyncError::Format { what, source }
}

pub(super) fn run(
    store: &mut dyn StoreWrite,
    keys: &Keys,
    opts: &SyncOptions,
    state: &mut SyncState,
    events: &mut dyn Events,
    stop: &AtomicBool,
) -> Result<SyncReport, SyncError> {
    let now = opts.now.unwrap_or_else(now_box_time);
    let usage = store.usage()?;
    let marker = store.client_store_marker()?;
    let root =
        store.list_directory(ROOT, flags::DIR, flags::DELETED | flags::OLD_VERSION, false)?;
    let mut root_names: HashMap<Vec<u8>, i64> = HashMap::new();
    for e in &root.entries {
        match e.name.decrypt(keys) {
            Ok(n) => {
                root_names.insert(n, e.object_id);
            }
            Err(err) => warn!(id = e.object_id, %err, "undecryptable name in the store root"),
        }
    }

    check_identity(
        store,
        state,
        opts,
        usage.last_object_id_used,
        marker,
        &root_names,
    )?;

    // From here on the store may be written to.
    if state.marker == 0 {
        // 0.13 sets the marker when it has no cached state: the time, as box_time.
        let m = if now == 0 { 1 } else { now };
        store.set_client_store_marker(m)?;
        state.marker = m;
        info!(marker = m, "set the client store marker");
    }
    state.highest_object_id = state.highest_object_id.max(usage.last_object_id_used);

    let min_age = micros(opts.minimum_file_age);
    let mut period_end = now.saturating_sub(min_age);
    let unextended_end = period_end;
    if min_age == 0 {
        period_end = period_end.saturating_add(ZERO_AGE_EXTENSION);
    }
    let mut e = Engine {
        store,
        keys,
        opts,
        events,
        stop,
        report: SyncReport::default(),
        store_full: false,
        period_end,
        upload_after: now.saturating_add(micros(opts.max_file_time_in_future)),
        max_upload_wait: micros(opts.max_upload_wait),
        old_inodes: std::mem::take(&mut state.inodes),
        new_inodes: BTreeMap::new(),
        old_pending: std::mem::take(&mut state.pending),
        new_pending: HashMap::new(),
        old_dirty: std::mem::take(&mut state.dirty),
        new_dirty: HashSet::new(),
        deletes: DeleteList::default(),
        newest_seen: None,
        highest_created: 0,
        logged_future: false,
        bytes_seen: 0,
        locations: opts
            .locations
            .iter()
            .map(|l| (l.name.as_bytes().to_vec(), l.path.clone()))
            .collect(),
    };
    if usage.blocks_used >= usage.blocks_hard_limit {
        e.set_store_full();
    }

    let mut new_locations = BTreeMap::new();
    let walked = e.walk(&root_names, &mut new_locations);
    let walked = walked.and_then(|()| e.perform_deletions());
    let mut unused_deadline = state.unused_roots_delete_after;
    let walked = walked.and_then(|()| {
        unused_deadline = e.delete_unused_roots(&root_names, unused_deadline, now)?;
        Ok(())
    });

    // Identity facts hold whether or not the run got to the end.
    state.highest_object_id = state.highest_object_id.max(e.highest_created);
    match walked {
        Ok(()) => {
            state.locations = new_locations;
            state.inodes = e.new_inodes;
            state.pending = e.new_pending;
            state.dirty = e.new_dirty;
            state.last_sync_time = unextended_end;
            state.unused_roots_delete_after = unused_deadline;
            // Every file matched or sent in a complete run is current on the
            // store, and stays so until this client's next run (housekeeping
            // only removes old and deleted versions).
            state.newest_file = e.newest_seen;
            Ok(e.report)
        }
        Err(err) => {
            state.locations.extend(new_locations);
            state.inodes = e.old_inodes;
            state.pending = e.old_pending;
            state.dirty = e.old_dirty;
            state.dirty.extend(e.new_dirty);
            if let Some(n) = e.newest_seen {
                state.newest_file = Some(n);
            } else if e.report.deleted > 0 {
                state.newest_file = None;
            }
            Err(err)
        }
    }
}

/// Issue 5: refuse to touch a store that is not the one of last time.
fn check_identity(
    store: &mut dyn StoreWrite,
    state: &SyncState,
    opts: &SyncOptions,
    last_object_id: i64,
    marker: i64,
    root_names: &HashMap<Vec<u8>, i64>,
) -> Result<(), SyncError> {
    if state.marker == 0 {
        return Ok(());
    }
    let changed = |reason: String| {
        Err(SyncError::StoreChanged {
            reason,
            state_file: state
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(format!("<DataDirectory>/{STATE_FILE}"))),
        })
    };
    if marker != state.marker {
        return changed(format!(
            "its client store marker is {marker:#x}, not {:#x} as this client set it \
             (another client writing to the account, a repair by bbstoreaccounts check, \
             or another store)",
            state.marker
        ));
    }
    if last_object_id < state.highest_object_id {
        return changed(format!(
            "its last object ID is {last_object_id:#x}, below {:#x} that this client \
             has seen (restored from an older copy?)",
            state.highest_object_id
        ));
    }
    for loc in &opts.locations {
        if let Some(&id) = state.locations.get(&loc.name) {
            match root_names.get(loc.name.as_bytes()) {
                Some(&found) if found == id => {}
                Some(&found) => {
                    return changed(format!(
                        "location '{}' is directory {found:#x} there, not {id:#x}",
                        loc.name
                    ));
                }
                None => {
                    return changed(format!(
                        "location directory '{}' ({id:#x}) is not in its root",
                        loc.name
                    ));
                }
            }
        }
    }
    if let Some((id, dir)) = state.newest_file {
        match store.get_object_name(id, dir) {
            Ok(Some(on)) if on.flags & flags::FILE != 0 => {}
            Ok(_) => {
                return changed(format!(
                    "file {id:#x} in directory {dir:#x}, current after this client's last \
                     run, is not there"
                ));
            }
            Err(e) if e.code() == Some(ErrorCode::DoesNotExist) => {
                return changed(format!(
                    "directory {dir:#x}, which held file {id:#x} after this client's last \
                     run, is not there"
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// 0.13's `BackupClientDeleteList`: deletions wait for the end of the run, and
/// a rename found later cancels one (even before it was queued).
#[derive(Debug, Default)]
struct DeleteList {
    files: Vec<(i64, EncodedName, PathBuf)>,
    no_delete_files: HashSet<(i64, EncodedName)>,
    dirs: Vec<(i64, PathBuf)>,
    no_delete_dirs: HashSet<i64>,
}

impl DeleteList {
    fn add_file(&mut self, dir: i64, name: EncodedName, local: PathBuf) {
        if !self.no_delete_files.remove(&(dir, name.clone())) {
            self.files.push((dir, name, local));
        }
    }
    fn stop_file(&mut self, dir: i64, name: EncodedName) {
        let before = self.files.len();
        self.files.retain(|(d, n, _)| !(*d == dir && *n == name));
        if self.files.len() == before {
            self.no_delete_files.insert((dir, name));
        }
    }
    fn add_dir(&mut self, id: i64, local: PathBuf) {
        if !self.no_delete_dirs.remove(&id) {
            self.dirs.push((id, local));
        }
    }
    fn stop_dir(&mut self, id: i64) {
        let before = self.dirs.len();
        self.dirs.retain(|(d, _)| *d != id);
        if self.dirs.len() == before {
            self.no_delete_dirs.insert(id);
        }
    }
}

/// A store entry as far as the decisions need it.
#[derive(Debug, Clone, Copy)]
struct Known {
    id: i64,
    mtime: BoxTime,
    hash: u64,
}

/// A location being walked.
struct Loc<'l> {
    name: &'l str,
    filter: &'l dyn Filter,
}

struct Engine<'a> {
    store: &'a mut dyn StoreWrite,
    keys: &'a Keys,
    opts: &'a SyncOptions,
    events: &'a mut dyn Events,
    stop: &'a AtomicBool,
    report: SyncReport,
    store_full: bool,
    period_end: BoxTime,
    upload_after: BoxTime,
    max_upload_wait: BoxTime,
    old_inodes: BTreeMap<String, InodeMap>,
    new_inodes: BTreeMap<String, InodeMap>,
    old_pending: HashMap<(i64, Vec<u8>), BoxTime>,
    new_pending: HashMap<(i64, Vec<u8>), BoxTime>,
    old_dirty: HashSet<(i64, Vec<u8>)>,
    new_dirty: HashSet<(i64, Vec<u8>)>,
    deletes: DeleteList,
    /// The highest-numbered current file seen or sent: (ID, directory).
    newest_seen: Option<(i64, i64)>,
    highest_created: i64,
    logged_future: bool,
    /// Local bytes of the files seen, for [`Events::progress`].
    bytes_seen: u64,
    /// Location names (bytes) and local paths, to turn store names into paths.
    locations: Vec<(Vec<u8>, PathBuf)>,
}

/// What the scan of a local directory keeps of an entry.
struct Local {
    name: OsString,
    md: Metadata,
}

impl Engine<'_> {
    fn set_store_full(&mut self) {
        if !self.store_full {
            self.store_full = true;
            self.report.store_full = true;
            self.events.event(Event::StoreFull);
        }
    }

    fn check_stop(&self) -> Result<(), SyncError> {
        if self.stop.load(Ordering::Relaxed) {
            Err(SyncError::Stopped)
        } else {
            Ok(())
        }
    }

    fn keep_alive(&mut self) -> Result<(), SyncError> {
        self.store.keep_alive_if_due()?;
        Ok(())
    }

    fn read_error(&mut self, path: &Path, error: impl std::fmt::Display) {
        self.report.errors += 1;
        self.events.event(Event::ReadError {
            path: path.to_path_buf(),
            error: error.to_string(),
        });
    }

    /// An error reply from the store to one item: the run goes on, unless the
    /// connection is gone.
    fn store_error(&mut self, path: &Path, e: bb_remote::Error) -> Result<(), SyncError> {
        if e.is_connection_lost() {
            return Err(e.into());
        }
        if e.code() == Some(ErrorCode::StorageLimitExceeded) {
            self.set_store_full();
            return Ok(());
        }
        self.report.errors += 1;
        self.events.event(Event::UploadError {
            path: path.to_path_buf(),
            error: e.to_string(),
        });
        Ok(())
    }

    fn saw_file(&mut self, id: i64, dir: i64) {
        if self.newest_seen.is_none_or(|(n, _)| id > n) {
            self.newest_seen = Some((id, dir));
        }
    }

    fn created(&mut self, id: i64) {
        self.highest_created = self.highest_created.max(id);
    }

    fn walk(
        &mut self,
        root_names: &HashMap<Vec<u8>, i64>,
        new_locations: &mut BTreeMap<String, i64>,
    ) -> Result<(), SyncError> {
        let opts = self.opts;
        for l in &opts.locations {
            self.check_stop()?;
            let loc = Loc {
                name: &l.name,
                filter: &*l.filter,
            };
            // The location itself may be a symlink to the directory to back up.
            let md = match fs::metadata(&l.path) {
                Ok(md) if md.is_dir() => md,
                Ok(_) => {
                    self.location_unavailable(l.name.clone(), &l.path, "not a directory");
                    continue;
                }
                Err(e) => {
                    self.location_unavailable(l.name.clone(), &l.path, e);
                    continue;
                }
            };
            let (id, just_created) = match root_names.get(l.name.as_bytes()) {
                Some(&id) => (id, false),
                None if self.store_full => continue,
                None => {
                    let attrs = match read_attributes(&l.path, &md) {
                        Ok(a) => a,
                        Err(e) => {
                            self.location_unavailable(l.name.clone(), &l.path, e);
                            continue;
                        }
                    };
                    let blob = attrs.encrypt(self.keys).map_err(format_err("attributes"))?;
                    let name = EncodedName::encrypt(self.keys, l.name.as_bytes())
                        .map_err(format_err("location name"))?;
                    match self
                        .store
                        .create_directory(ROOT, &name, ctime_of(&md), &blob)
                    {
                        Ok(id) => {
                            self.created(id);
                            self.events.event(Event::LocationCreated {
                                name: l.name.clone(),
                                id,
                            });
                            (id, true)
                        }
                        Err(e) => {
                            self.store_error(&l.path, e)?;
                            continue;
                        }
                    }
                }
            };
            new_locations.insert(l.name.clone(), id);
            self.sync_dir(&loc, &l.path, &md, id, ROOT, just_created)?;
        }
        Ok(())
    }

    fn location_unavailable(&mut self, name: String, path: &Path, e: impl std::fmt::Display) {
        self.report.errors += 1;
        self.events.event(Event::LocationUnavailable {
            name,
            path: path.to_path_buf(),
            error: e.to_string(),
        });
    }

    /// Reads a local directory as 0.13's `SyncDirectoryEntry` sorts it out:
    /// files and symlinks, directories on the same filesystem, nothing else.
    fn scan(
        &mut self,
        loc: &Loc<'_>,
        path: &Path,
        md: &Metadata,
    ) -> Option<(Vec<Local>, Vec<Local>)> {
        let rd = match fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => {
                self.read_error(path, e);
                return None;
            }
        };
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        for ent in rd {
            let ent = match ent {
                Ok(ent) => ent,
                Err(e) => {
                    self.read_error(path, e);
                    break;
                }
            };
            let name = ent.file_name();
            let p = path.join(&name);
            let emd = match fs::symlink_metadata(&p) {
                Ok(m) => m,
                Err(e) => {
                    if !loc.filter.exclude_file(&p) && !loc.filter.exclude_dir(&p) {
                        self.read_error(&p, e);
                    }
                    continue;
                }
            };
            let ft = emd.file_type();
            if ft.is_dir() {
                if emd.dev() != md.dev() {
                    if !loc.filter.exclude_dir(&p) {
                        self.events.event(Event::MountPointSkipped { path: p });
                    }
                    continue;
                }
                if loc.filter.exclude_dir(&p) {
                    self.events.event(Event::DirExcluded { path: p });
                    continue;
                }
                dirs.push(Local { name, md: emd });
            } else if ft.is_file() || ft.is_symlink() {
                if loc.filter.exclude_file(&p) {
                    self.events.event(Event::FileExcluded { path: p });
                    continue;
                }
                if mtime_of(&emd) > self.upload_after && !self.logged_future {
                    self.logged_future = true;
                    self.events
                        .event(Event::FileModifiedInFuture { path: p.clone() });
                }
                files.push(Local { name, md: emd });
            } else if ft.is_socket() || ft.is_fifo() {
                // 0.13 skips these without a word (Debian bug 479145).
            } else if loc.filter.exclude_file(&p) {
                self.events.event(Event::FileExcluded { path: p });
            } else {
                self.report.errors += 1;
                self.events.event(Event::UnsupportedFileType { path: p });
            }
        }
        // readdir order is the filesystem's; sorting makes runs repeatable.
        files.sort_by(|a, b| a.name.cmp(&b.name));
        dirs.sort_by(|a, b| a.name.cmp(&b.name));
        Some((files, dirs))
    }

    fn sync_dir(
        &mut self,
        loc: &Loc<'_>,
        path: &Path,
        md: &Metadata,
        dir_id: i64,
        parent_id: i64,
        just_created: bool,
    ) -> Result<(), SyncError> {
        self.check_stop()?;
        self.keep_alive()?;
        self.report.directories_seen += 1;
        // Directories are always tracked, so that a renamed one is moved.
        self.new_inodes
            .entry(loc.name.to_string())
            .or_default()
            .insert(md.ino(), (dir_id, parent_id));

        let Some((files, dirs)) = self.scan(loc, path, md) else {
            return Ok(());
        };

        let listing = if just_created {
            Directory::new(dir_id, parent_id)
        } else {
            self.store.list_directory(
                dir_id,
                flags::INCLUDE_EVERYTHING,
                flags::DELETED | flags::OLD_VERSION,
                true,
            )?
        };

        if !just_created && !self.store_full {
            self.update_dir_attributes(path, md, dir_id, &listing)?;
        }

        // Names are compared in the clear, as 0.13 does: a store repaired by
        // check may hold the same name in another encoding.
        let mut by_name: HashMap<Vec<u8>, usize> = HashMap::with_capacity(listing.entries.len());
        let mut clear_names: Vec<Option<Vec<u8>>> = Vec::with_capacity(listing.entries.len());
        for (i, e) in listing.entries.iter().enumerate() {
            match e.name.decrypt(self.keys) {
                Ok(n) => {
                    by_name.insert(n.clone(), i);
                    clear_names.push(Some(n));
                }
                Err(err) => {
                    warn!(id = e.object_id, dir = dir_id, %err, "undecryptable name: will delete");
                    clear_names.push(None);
                }
            }
        }
        let mut left_over = vec![true; listing.entries.len()];

        for f in files {
            self.check_stop()?;
            self.keep_alive()?;
            self.bytes_seen += f.md.len();
            self.sync_file(loc, path, dir_id, f, &listing, &by_name, &mut left_over)?;
            self.events.progress(&RunProgress {
                files_seen: self.report.files_seen,
                bytes_seen: self.bytes_seen,
                files_uploaded: self.report.files_uploaded,
                bytes_uploaded: self.report.bytes_uploaded,
            });
        }

        // Resolve every sub-directory before entering any, so that this
        // listing can be dropped before the recursion.
        let mut subdirs = Vec::with_capacity(dirs.len());
        for d in dirs {
            self.check_stop()?;
            self.keep_alive()?;
            let dpath = path.join(&d.name);
            let leaf = d.name.as_bytes();
            let enc = EncodedName::encrypt(self.keys, leaf).map_err(format_err("name"))?;
            let mut sub = None;
            if let Some(&i) = by_name.get(leaf) {
                let e = &listing.entries[i];
                left_over[i] = false;
                if e.is_dir() {
                    sub = Some((e.object_id, false));
                } else {
                    // A file where the directory now is: delete it now.
                    match self.store.delete_file(dir_id, &e.name) {
                        Ok(_) => {
                            self.report.deleted += 1;
                            self.events.event(Event::FileDeleted {
                                dir: dir_id,
                                path: dpath.clone(),
                            });
                        }
                        Err(err) => self.store_error(&dpath, err)?,
                    }
                }
            }
            if sub.is_none() && !self.store_full {
                sub = self.create_remote_dir(loc, dir_id, &dpath, &enc, &d.md)?;
            }
            if let Some((id, jc)) = sub {
                subdirs.push((dpath, d.md, id, jc));
            }
        }

        for (i, e) in listing.entries.iter().enumerate() {
            if !left_over[i] {
                continue;
            }
            let local = match &clear_names[i] {
                Some(n) => path.join(OsString::from_vec(n.clone())),
                None => path.join("<corrupt filename>"),
            };
            if e.is_file() {
                self.deletes.add_file(dir_id, e.name.clone(), local);
            } else if e.is_dir() {
                self.deletes.add_dir(e.object_id, local);
            }
        }
        drop(listing);
        drop(by_name);
        drop(clear_names);

        for (dpath, dmd, id, jc) in subdirs {
            self.sync_dir(loc, &dpath, &dmd, id, dir_id, jc)?;
        }
        Ok(())
    }

    /// 0.13's `UpdateAttributes`: compare ignoring both times; send the
    /// directory's attributes (times zeroed) with its ctime when they differ.
    fn update_dir_attributes(
        &mut self,
        path: &Path,
        md: &Metadata,
        dir_id: i64,
        listing: &Directory,
    ) -> Result<(), SyncError> {
        let attrs = match read_attributes(path, md) {
            Ok(a) => a,
            Err(e) => {
                self.read_error(path, e);
                return Ok(());
            }
        };
        let same = UnixAttributes::decrypt(self.keys, &listing.attributes)
            .ok()
            .flatten()
            .is_some_and(|s| {
                attrs.compare(
                    &s,
                    CompareOptions {
                        ignore_mtime: true,
                        ignore_attr_mtime: true,
                    },
                )
            });
        if !same {
            let blob = attrs.encrypt(self.keys).map_err(format_err("attributes"))?;
            if let Err(e) = self
                .store
                .change_dir_attributes(dir_id, ctime_of(md), &blob)
            {
                self.store_error(path, e)?;
            } else {
                self.report.attributes_changed += 1;
                self.events.event(Event::AttributesChanged {
                    path: path.to_path_buf(),
                });
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn sync_file(
        &mut self,
        loc: &Loc<'_>,
        dir_path: &Path,
        dir_id: i64,
        f: Local,
        listing: &Directory,
        by_name: &HashMap<Vec<u8>, usize>,
        left_over: &mut [bool],
    ) -> Result<(), SyncError> {
        self.report.files_seen += 1;
        let path = dir_path.join(&f.name);
        let leaf = f.name.as_bytes();
        let md = &f.md;
        let attrs = match read_attributes(&path, md) {
            Ok(a) => a,
            Err(e) => {
                self.read_error(&path, e);
                return Ok(());
            }
        };
        let hash = attrs
            .attribute_hash(self.keys, leaf)
            .map_err(format_err("attribute hash"))?;
        let mod_time = mtime_of(md);
        let enc = EncodedName::encrypt(self.keys, leaf).map_err(format_err("name"))?;

        let mut en = None;
        if let Some(&i) = by_name.get(leaf) {
            let e = &listing.entries[i];
            left_over[i] = false;
            if e.is_file() {
                en = Some(Known {
                    id: e.object_id,
                    mtime: e.mtime,
                    hash: e.attributes_hash,
                });
            } else {
                // 0.13's RemoveDirectoryInPlaceOfFile: at once, not queued.
                match self.store.delete_directory(e.object_id) {
                    Ok(()) => {
                        self.report.deleted += 1;
                        self.events.event(Event::DirectoryDeleted {
                            id: e.object_id,
                            path: path.clone(),
                        });
                    }
                    Err(err) => self.store_error(&path, err)?,
                }
            }
        }
        if en.is_none() && !self.store_full {
            en = self.try_rename_file(loc, dir_id, &path, &enc, md.ino())?;
        }
        let mut latest = en.map_or(0, |k| k.id);

        let key = (dir_id, leaf.to_vec());
        let first_seen = self.old_pending.get(&key).copied().unwrap_or(0);
        let dirty = self.old_dirty.contains(&key);
        let mut do_upload = false;
        if en.is_none_or(|k| k.mtime != mod_time) || dirty {
            // In the window; or pending for longer than MaxUploadWait; or
            // madly in the future.
            do_upload = mod_time < self.period_end
                || (first_seen != 0
                    && self.period_end > first_seen
                    && self.period_end - first_seen > self.max_upload_wait)
                || mod_time > self.upload_after;
        }
        let mut uploaded = false;
        if do_upload {
            if self.store_full {
                if dirty {
                    self.new_dirty.insert(key.clone());
                }
            } else {
                match self.upload_file(dir_id, &path, &enc, md, &attrs, hash, en.is_some())? {
                    Some(id) => {
                        latest = id;
                        uploaded = true;
                    }
                    None if dirty => {
                        self.new_dirty.insert(key.clone());
                    }
                    None => {}
                }
            }
        } else if let Some(k) = en
            && k.hash != hash
            && !self.store_full
        {
            // Only the attributes changed: the full attributes (with times) and
            // the new hash go into the directory entry.
            let blob = attrs.encrypt(self.keys).map_err(format_err("attributes"))?;
            match self
                .store
                .set_replacement_file_attributes(dir_id, &enc, hash, &blob)
            {
                Ok(_) => {
                    self.report.attributes_changed += 1;
                    self.events
                        .event(Event::AttributesChanged { path: path.clone() });
                }
                Err(e) => self.store_error(&path, e)?,
            }
        }

        // The MaxUploadWait clock (0.13's mpPendingEntries).
        if !uploaded && first_seen != 0 {
            self.new_pending.insert(key, first_seen);
        } else if mod_time >= self.period_end && first_seen == 0 {
            self.new_pending.insert(key, self.period_end);
        }

        if latest != 0 && (uploaded || en.is_some()) {
            self.saw_file(latest, dir_id);
        }
        if md.len() >= self.opts.file_tracking_size_threshold {
            let ino = md.ino();
            if latest == 0
                && let Some(&(obj, d)) = self.old_inodes.get(loc.name).and_then(|m| m.get(&ino))
                && d == dir_id
            {
                latest = obj;
            }
            if latest != 0 {
                self.new_inodes
                    .entry(loc.name.to_string())
                    .or_default()
                    .insert(ino, (latest, dir_id));
            }
        }
        Ok(())
    }

    /// The local path of a store object from GetObjectName's names (leaf
    /// first; the last is the location directory's).
    fn local_path_of(&self, names: &[EncodedName]) -> Option<PathBuf> {
        let mut clear = Vec::with_capacity(names.len());
        for n in names.iter().rev() {
            clear.push(n.decrypt(self.keys).ok()?);
        }
        let (top, rest) = clear.split_first()?;
        let (_, base) = self.locations.iter().find(|(n, _)| n == top)?;
        let mut p = base.clone();
        for c in rest {
            p.push(OsString::from_vec(c.clone()));
        }
        Some(p)
    }

    /// Looks up the old map for `ino`: the object, its directory and its old
    /// local path, if the object is still current on the store, of the
    /// wanted kind, and gone from its old local place.
    fn rename_source(
        &mut self,
        loc: &Loc<'_>,
        ino: u64,
        want_dir: bool,
    ) -> Result<Option<(i64, i64, bb_remote::ObjectNames)>, SyncError> {
        let Some(&(obj, indir)) = self.old_inodes.get(loc.name).and_then(|m| m.get(&ino)) else {
            return Ok(None);
        };
        // Location directories stay where the configuration puts them.
        if indir == ROOT {
            return Ok(None);
        }
        let on = match self.store.get_object_name(obj, indir) {
            Ok(Some(on)) => on,
            Ok(None) => return Ok(None),
            Err(e) if e.is_connection_lost() => return Err(e.into()),
            Err(e) => {
                debug!(obj, indir, %e, "GetObjectName for a rename");
                return Ok(None);
            }
        };
        let is_dir = on.flags & flags::DIR != 0;
        let current = on.flags & (flags::DELETED | flags::OLD_VERSION) == 0;
        if is_dir != want_dir || !current {
            return Ok(None);
        }
        let Some(old) = self.local_path_of(&on.names) else {
            return Ok(None);
        };
        // As 0.13: only a name that is gone locally (stat says ENOENT).
        match fs::metadata(&old) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some((obj, indir, on))),
            _ => Ok(None),
        }
    }

    fn try_rename_file(
        &mut self,
        loc: &Loc<'_>,
        dir_id: i64,
        path: &Path,
        enc: &EncodedName,
        ino: u64,
    ) -> Result<Option<Known>, SyncError> {
        let Some((obj, indir, on)) = self.rename_source(loc, ino, false)? else {
            return Ok(None);
        };
        if let Err(e) = self.store.move_object(obj, indir, dir_id, enc, MOVE_FLAGS) {
            self.store_error(path, e)?;
            return Ok(None);
        }
        if let Some(old_leaf) = on.names.first() {
            self.deletes.stop_file(indir, old_leaf.clone());
        }
        self.report.moved += 1;
        self.events.event(Event::Moved {
            path: path.to_path_buf(),
            id: obj,
        });
        Ok(Some(Known {
            id: obj,
            mtime: on.modification_time,
            hash: on.attributes_hash,
        }))
    }

    /// 0.13's `CreateRemoteDir`: a move if the inode map knows the directory,
    /// else CreateDirectory. `None`: not on the store (full, or an error).
    fn create_remote_dir(
        &mut self,
        loc: &Loc<'_>,
        parent: i64,
        path: &Path,
        enc: &EncodedName,
        md: &Metadata,
    ) -> Result<Option<(i64, bool)>, SyncError> {
        let attrs = match read_attributes(path, md) {
            Ok(a) => a,
            Err(e) => {
                self.read_error(path, e);
                return Ok(None);
            }
        };
        let blob = attrs.encrypt(self.keys).map_err(format_err("attributes"))?;
        let ctime = ctime_of(md);
        if let Some((obj, indir, _)) = self.rename_source(loc, md.ino(), true)? {
            let moved = self
                .store
                .move_object(obj, indir, parent, enc, MOVE_FLAGS)
                .and_then(|()| self.store.change_dir_attributes(obj, ctime, &blob));
            match moved {
                Ok(()) => {
                    self.deletes.stop_dir(obj);
                    self.report.moved += 1;
                    self.events.event(Event::Moved {
                        path: path.to_path_buf(),
                        id: obj,
                    });
                    return Ok(Some((obj, false)));
                }
                Err(e) => {
                    self.store_error(path, e)?;
                    return Ok(None);
                }
            }
        }
        match self.store.create_directory(parent, enc, ctime, &blob) {
            Ok(id) => {
                self.created(id);
                self.report.directories_created += 1;
                self.events.event(Event::DirectoryCreated {
                    path: path.to_path_buf(),
                    id,
                });
                Ok(Some((id, true)))
            }
            Err(e) => {
                self.store_error(path, e)?;
                Ok(None)
            }
        }
    }

    /// 0.13's `UploadFile`: a diff when the file is big enough and a previous
    /// version may be there, else the whole file. `None`: not uploaded (the
    /// reason was reported).
    #[allow(clippy::too_many_arguments)]
    fn upload_file(
        &mut self,
        dir_id: i64,
        path: &Path,
        enc: &EncodedName,
        md: &Metadata,
        attrs: &UnixAttributes,
        hash: u64,
        has_previous: bool,
    ) -> Result<Option<i64>, SyncError> {
        let mod_time = mtime_of(md);
        let blob = attrs.encrypt(self.keys).map_err(format_err("attributes"))?;
        let meta = FileMeta {
            container_id: dir_id,
            mtime: mod_time,
            name: enc.clone(),
            attributes: blob,
            symlink: attrs.is_symlink(),
        };
        if attrs.is_symlink() {
            // The target lives in the attributes; the file has no blocks.
            let bytes = encode_file(self.keys, &meta, &Recipe::whole(0), &[])
                .map_err(format_err("symlink"))?;
            let mut body = Metered::new(Cursor::new(bytes), None);
            let r = self
                .store
                .store_file(dir_id, enc, mod_time, hash, 0, &mut body);
            return self.finish_upload(r, path, dir_id, body.count, 0, None);
        }

        // O_NOFOLLOW: the path was a file at the scan; if a symlink took its
        // place since, it is not followed. O_NONBLOCK: nor does a FIFO block us.
        let mut file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(
                (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
            )
            .open(path)
        {
            Ok(f) => f,
            Err(e) => {
                self.read_error(path, e);
                return Ok(None);
            }
        };
        let before = match file.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                self.read_error(path, "no longer a regular file");
                return Ok(None);
            }
            Err(e) => {
                self.read_error(path, e);
                return Ok(None);
            }
        };
        let size = before.len();
        let mut recipe = Recipe::whole(size);
        let mut diff_from = 0;
        if has_previous && size >= self.opts.diffing_upload_size_threshold {
            match self.store.get_block_index_by_name(dir_id, enc) {
                Ok(Some((old_id, index))) => {
                    if let Some(r) = self.diff(&index, old_id, &mut file, size, path)?
                        && r.other_file_id != 0
                    {
                        recipe = r;
                        diff_from = old_id;
                    }
                    if let Err(e) = file.seek(SeekFrom::Start(0)) {
                        self.read_error(path, e);
                        return Ok(None);
                    }
                }
                Ok(None) => {}
                Err(e) if e.is_connection_lost() => return Err(e.into()),
                Err(e) => debug!(%e, "no block index: whole upload"),
            }
        }
        let check = file.try_clone().ok();
        let body = match file_body(self.keys, file, meta, recipe) {
            Ok(b) => b,
            Err(e) => {
                self.report.errors += 1;
                self.events.event(Event::UploadError {
                    path: path.to_path_buf(),
                    error: e.to_string(),
                });
                return Ok(None);
            }
        };
        let mut body = Metered::new(body, self.opts.max_upload_rate);
        let r = self
            .store
            .store_file(dir_id, enc, mod_time, hash, diff_from, &mut body);
        let sent = body.count;
        drop(body);
        let changed = check.and_then(|f| f.metadata().ok()).map(|after| {
            after.len() != size
                || mtime_of(&after) != mtime_of(&before)
                || ctime_of(&after) != ctime_of(&before)
                || mtime_of(&before) != mod_time
        });
        self.finish_upload(r, path, dir_id, sent, diff_from, changed)
    }

    fn finish_upload(
        &mut self,
        r: bb_remote::Result<i64>,
        path: &Path,
        dir_id: i64,
        sent: u64,
        diff_from: i64,
        changed: Option<bool>,
    ) -> Result<Option<i64>, SyncError> {
        match r {
            Ok(id) => {
                self.created(id);
                self.report.files_uploaded += 1;
                self.report.bytes_uploaded += sent;
                if diff_from != 0 {
                    self.report.diffs += 1;
                }
                self.events.event(Event::FileUploaded {
                    path: path.to_path_buf(),
                    id,
                    bytes: sent,
                    diff_from: (diff_from != 0).then_some(diff_from),
                });
                if changed == Some(true) {
                    let leaf = path
                        .file_name()
                        .map(|n| n.as_bytes().to_vec())
                        .unwrap_or_default();
                    self.new_dirty.insert((dir_id, leaf));
                    self.events.event(Event::ChangedWhileReading {
                        path: path.to_path_buf(),
                    });
                }
                Ok(Some(id))
            }
            // The local file failed while being encoded (shrank, I/O error):
            // the stream was cut short and the store kept nothing.
            Err(bb_remote::Error::Source { source, .. }) => {
                self.read_error(path, source);
                Ok(None)
            }
            Err(e) => {
                self.store_error(path, e)?;
                Ok(None)
            }
        }
    }

    /// Runs the diff search with MaximumDiffingTime and keep-alives. `None`:
    /// upload the whole file (the old index is unusable).
    fn diff(
        &mut self,
        index: &BlockIndex,
        old_id: i64,
        file: &mut File,
        size: u64,
        path: &Path,
    ) -> Result<Option<Recipe>, SyncError> {
        let blocks = match index.decrypt_all(self.keys) {
            Ok(b) => b,
            Err(e) => {
                warn!(old_id, %e, "cannot decrypt the old block index: whole upload");
                return Ok(None);
            }
        };
        let deadline = self.opts.maximum_diffing_time.map(|d| Instant::now() + d);
        let store = &mut *self.store;
        let mut lost = None;
        let mut send = || {
            if lost.is_none()
                && let Err(e) = store.keep_alive_if_due()
            {
                lost = Some(e);
            }
        };
        let mut limits = DiffLimits {
            deadline,
            keep_alive: Some(KeepAlive {
                // The store decides whether the keep-alive interval has passed.
                every: Duration::from_secs(1),
                send: &mut send,
            }),
        };
        let out = bb_format::diff::diff(index, &blocks, old_id, file, size, &mut limits);
        if let Some(e) = lost {
            return Err(e.into());
        }
        match out {
            Ok(o) => {
                if let Some(s) = o.stopped {
                    debug!(?s, path = %path.display(), "diff stopped early");
                }
                Ok(Some(o.recipe))
            }
            Err(e) => {
                debug!(%e, path = %path.display(), "diff failed: whole upload");
                Ok(None)
            }
        }
    }

    /// The queued deletions, files first, as 0.13's `PerformDeletions`.
    /// `DeleteRedundantLocationsAfter`, as 0.13: the directories of the store
    /// root that no configured location names (a location taken out of
    /// bbackupd.conf) are deleted `deadline` after a run first found some;
    /// deleted like any directory, so they stay restorable until housekeeping
    /// needs the space. Returns the deadline to keep (0: nothing unused).
    fn delete_unused_roots(
        &mut self,
        root_names: &HashMap<Vec<u8>, i64>,
        deadline: BoxTime,
        now: BoxTime,
    ) -> Result<BoxTime, SyncError> {
        let mut unused: Vec<(Vec<u8>, i64)> = root_names
            .iter()
            .filter(|(n, _)| !self.locations.iter().any(|(l, _)| l == *n))
            .map(|(n, id)| (n.clone(), *id))
            .collect();
        if unused.is_empty() {
            debug!("Not deleting unused entries - none in list");
            return Ok(0);
        }
        unused.sort_unstable();
        for (n, _) in &unused {
            debug!("Unused location in root: {}", String::from_utf8_lossy(n));
        }
        let delay = self.opts.delete_redundant_locations_after;
        if delay.is_zero() {
            info!(
                "{} redundant locations in root directory found, but will not delete because DeleteRedundantLocationsAfter = 0",
                unused.len()
            );
            return Ok(0);
        }
        if deadline == 0 {
            info!(
                "{} redundant locations in root directory found, will delete from store after {} seconds.",
                unused.len(),
                delay.as_secs()
            );
            return Ok(now.saturating_add(micros(delay)));
        }
        if now < deadline {
            debug!(
                "Not deleting unused entries - too early ({} seconds left)",
                (deadline - now) / 1_000_000
            );
            return Ok(deadline);
        }
        info!("Deleting unused locations from store root...");
        for (name, id) in unused {
            self.check_stop()?;
            self.keep_alive()?;
            let shown = String::from_utf8_lossy(&name).into_owned();
            match self.store.delete_directory(id) {
                Ok(()) => {
                    self.report.deleted += 1;
                    info!("Deleted unused location {shown} ({id:#x}) from the store root");
                }
                Err(e) => self.store_error(Path::new(&shown), e)?,
            }
        }
        Ok(0)
    }

    fn perform_deletions(&mut self) -> Result<(), SyncError> {
        self.check_stop()?;
        let list = std::mem::take(&mut self.deletes);
        for (dir, name, local) in list.files {
            self.keep_alive()?;
            match self.store.delete_file(dir, &name) {
                Ok(_) => {
                    self.report.deleted += 1;
                    self.events.event(Event::FileDeleted { dir, path: local });
                }
                Err(e) => self.store_error(&local, e)?,
            }
        }
        for (id, local) in list.dirs {
            self.keep_alive()?;
            match self.store.delete_directory(id) {
                Ok(()) => {
                    self.report.deleted += 1;
                    self.events
                        .event(Event::DirectoryDeleted { id, path: local });
                }
                Err(e) => self.store_error(&local, e)?,
            }
        }
        Ok(())
    }
}
