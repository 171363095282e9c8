//! Compare: a store directory (a location) against the local tree, as
//! bbackupquery's `compare` does (`formats.md` §4.6), in three modes.
//!
//! Owns the walk over both trees, what is checked in each mode, and the exact
//! wording of 0.13's messages and summary ([`CompareEvent::lines`],
//! [`CompareReport::summary_lines`]); the query shell prints them with its log
//! prefixes (`WARNING: `, `INFO:    `). Must not know the shell, the
//! configuration, or how excludes are written (the caller passes a predicate).
//!
//! # Modes
//!
//! * [`CompareMode::Full`] (0.13's default): every file is downloaded
//!   (GetFile, decoded as it streams) and compared byte by byte; attributes
//!   (the directory entry's if it has any, else the file's embedded ones) are
//!   compared ignoring attr-mtime, and mtime for symlinks.
//! * [`CompareMode::Quick`] (0.13's `-q`): only the block index is fetched; each
//!   block's clear size and MD5 are checked against the local file read in the
//!   same sizes. File attributes are not checked (0.13 says so; the shell prints
//!   "Quick compare used -- file attributes are not checked.").
//! * [`CompareMode::Md5`] (ours, the new default): the block index check of
//!   Quick, plus the attributes, without downloading any file in the usual
//!   case. The block index carries no attributes (GetBlockIndexByID sends just
//!   the index) and only GetFile/GetObject carry the embedded ones, so:
//!   replacement attributes in the directory entry are used when present;
//!   otherwise the entry's attribute hash (`formats.md` §4.4: uid, gid, mode,
//!   xattrs and the name, keyed) is compared with the local one and the
//!   entry's modification time with the local mtime. Only when that check
//!   fails, or for symlinks (whose target the hash does not cover; their
//!   stream is a few hundred bytes), the head of the GetFile stream is read
//!   for the embedded attributes: the decoder reads the index, header, name
//!   and attributes and the rest is dropped (bb-remote reads a small rest
//!   away and abandons the connection for a large one, which the session
//!   reopens). The embedded attributes then decide, as in Full mode, and say
//!   what differs.
//!
//! # Order and counting (checked against 0.13)
//!
//! Per directory: "Comparing directory", the directory's own attributes (also
//! in Quick mode), the store's current files by name, then local files the
//! store lacks, then the store's directories by name (recursing), then local
//! directories the store lacks. A store entry whose local counterpart is
//! missing (or of the other kind) is "Remote file ... exists, but local file
//! ... does not." even for directories. Excludes: a store file whose local
//! file is excluded is skipped without counting; an excluded local-only file
//! counts as "files excluded"; an excluded directory (in the store or not)
//! counts as "dirs excluded" and is not entered. FIFOs, sockets and devices
//! are ignored, as bbackupd never uploads them.
//!
//! "Modified after the last sync" (checked against the real 0.13
//! bbackupquery, `tests/tests/bbackupquery_compare_restore_013.rs`): a
//! compared file's mtime (never in Quick mode), the followed mtime of what
//! the store lacks, the ctime of a directory whose own attributes differ.
//! A file with both attribute and content differences gets one hint line,
//! after the second, and both count as explained.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bb_format::attributes::{CompareOptions as AttrCompare, UnixAttributes};
use bb_format::decode::StreamDecoder;
use bb_format::directory::Entry;
use bb_format::index::BlockIndex;
use bb_format::{BoxTime, Keys};
use bb_proto::message::flags;
use bb_remote::StoreRead;

use crate::error::{Error, Result};
use crate::localfs;

/// How much of each file is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompareMode {
    /// Block index sizes and MD5s, plus attributes (ours; the default).
    #[default]
    Md5,
    /// Block index sizes and MD5s only (0.13's `-q`).
    Quick,
    /// Download and compare every byte, plus attributes (0.13's default).
    Full,
}

/// "Is this local path excluded?" (`true` for a directory in the second
/// argument); the location's exclude list.
pub type Excluded = dyn Fn(&Path, bool) -> bool + Send + Sync;

/// What [`compare_location`] checks.
#[derive(Clone, Default)]
pub struct CompareOptions {
    pub mode: CompareMode,
    /// `-A`: attributes are not compared.
    pub ignore_attributes: bool,
    /// The location's excludes; `None` with `-E` or when there are none.
    pub excluded: Option<Arc<Excluded>>,
    /// The store path of the directory compared, for messages: `/source`.
    pub store_path: Vec<u8>,
    /// When the last sync started; differences in files changed since then
    /// are counted as "probably due to file modifications after the last
    /// upload". `None`: not known (0.13 then warns "Failed to determine the
    /// time of the last synchronisation -- checks not performed.").
    pub last_sync_time: Option<BoxTime>,
}

impl std::fmt::Debug for CompareOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompareOptions")
            .field("mode", &self.mode)
            .field("ignore_attributes", &self.ignore_attributes)
            .field("excluded", &self.excluded.is_some())
            .field("store_path", &String::from_utf8_lossy(&self.store_path))
            .field("last_sync_time", &self.last_sync_time)
            .finish()
    }
}

/// The log level 0.13 prints a line at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// What kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DifferenceKind {
    /// In the store, not (or not as this kind) on the disc.
    LocalMissing,
    /// On the disc, not in the store.
    StoreMissing,
    /// A file's contents differ.
    Contents,
    /// A file's attributes differ.
    Attributes,
    /// A directory's own attributes differ.
    DirAttributes,
}

/// One difference, named by both paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub kind: DifferenceKind,
    pub local: PathBuf,
    /// The store path (`/source/a/b.txt`), clear bytes.
    pub store: Vec<u8>,
    /// The local file changed after the last sync started (0.13's test:
    /// the mtime for files and for what the store lacks, the ctime for a
    /// directory's own attributes; never for a file in Quick mode).
    pub modified_after_last_sync: bool,
    /// The store entry carries replacement attributes (0.13 says "the file
    /// above has had new attributes applied").
    pub new_attributes_applied: bool,
    /// The hint line goes after this one: 0.13 prints one hint after the
    /// last difference of a file (attributes, then contents), whatever the
    /// count says.
    pub hint: bool,
    /// Ours: what differs (attribute fields), for verbose output.
    pub detail: Option<String>,
}

/// What compare reports, in order, to the [`CompareSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareEvent {
    /// A directory is being compared.
    Directory {
        local: PathBuf,
    },
    Difference(Difference),
    /// The store directory has no attributes (not a difference).
    StoreDirMissingAttributes {
        local: PathBuf,
        store: Vec<u8>,
    },
    /// A file could not be checked: the download or the local read failed.
    NotChecked {
        local: PathBuf,
        store: Vec<u8>,
        download: bool,
        error: String,
    },
    /// A local directory could not be read.
    LocalDirAccessFailed {
        local: PathBuf,
        error: String,
    },
}

fn quote(p: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(p.len() + 2);
    v.push(b'\'');
    v.extend_from_slice(p);
    v.push(b'\'');
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

impl CompareEvent {
    /// 0.13's lines for this event (without the level prefix), raw bytes as
    /// 0.13 prints names.
    pub fn lines(&self) -> Vec<(Level, Vec<u8>)> {
        use DifferenceKind::*;
        match self {
            CompareEvent::Directory { local } => vec![(
                Level::Info,
                cat(&[b"Comparing directory: ", local.as_os_str().as_bytes()]),
            )],
            CompareEvent::Difference(d) => {
                let l = quote(d.local.as_os_str().as_bytes());
                let s = quote(&d.store);
                let line = match d.kind {
                    LocalMissing => cat(&[
                        b"Remote file ",
                        &s,
                        b" exists, but local file ",
                        &l,
                        b" does not.",
                    ]),
                    StoreMissing => cat(&[
                        b"Local file ",
                        &l,
                        b" exists, but remote file ",
                        &s,
                        b" does not.",
                    ]),
                    Contents => cat(&[
                        b"Local file ",
                        &l,
                        b" has different contents to store file ",
                        &s,
                        b".",
                    ]),
                    Attributes => cat(&[
                        b"Local file ",
                        &l,
                        b" has different attributes to store file ",
                        &s,
                        b".",
                    ]),
                    DirAttributes => cat(&[
                        b"Local directory ",
                        &l,
                        b" has different attributes to store directory ",
                        &s,
                        b".",
                    ]),
                };
                let mut out = vec![(Level::Warning, line)];
                if !d.hint {
                } else if d.modified_after_last_sync && d.kind == DirAttributes {
                    out.push((
                        Level::Info,
                        b"(the directory above was modified after the last sync time -- might \
                          be reason for difference)"
                            .to_vec(),
                    ));
                } else if d.modified_after_last_sync && d.kind != LocalMissing {
                    out.push((
                        Level::Info,
                        b"(the file above was modified after the last sync time -- might be \
                          reason for difference)"
                            .to_vec(),
                    ));
                } else if d.new_attributes_applied && matches!(d.kind, Attributes | Contents) {
                    // 0.13's message ends in a newline of its own.
                    out.push((
                        Level::Info,
                        b"(the file above has had new attributes applied)\n".to_vec(),
                    ));
                }
                out
            }
            CompareEvent::StoreDirMissingAttributes { store, .. } => vec![(
                Level::Warning,
                cat(&[
                    b"Store directory ",
                    &quote(store),
                    b" doesn't have attributes.",
                ]),
            )],
            CompareEvent::NotChecked {
                local,
                store,
                download,
                error,
            } => {
                let line = if *download {
                    cat(&[
                        b"Failed to download remote file ",
                        &quote(store),
                        b": ",
                        error.as_bytes(),
                    ])
                } else {
                    cat(&[
                        b"Failed to read local file ",
                        &quote(local.as_os_str().as_bytes()),
                        b": ",
                        error.as_bytes(),
                    ])
                };
                vec![(Level::Error, line)]
            }
            CompareEvent::LocalDirAccessFailed { local, error } => vec![(
                Level::Warning,
                cat(&[
                    b"Failed to access local directory ",
                    &quote(local.as_os_str().as_bytes()),
                    b": ",
                    error.as_bytes(),
                ]),
            )],
        }
    }
}

/// Receives every event as it happens (the shell prints them at once).
pub trait CompareSink {
    fn event(&mut self, e: CompareEvent);
    /// After each file: files compared and their local bytes so far (for a
    /// progress line; most sinks ignore it).
    fn progress(&mut self, _files: u64, _bytes: u64) {}
}

impl CompareSink for Vec<CompareEvent> {
    fn event(&mut self, e: CompareEvent) {
        self.push(e);
    }
}

/// The counts of 0.13's summary, and ours besides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompareReport {
    pub differences: u64,
    pub explained_by_mod_time: u64,
    pub excluded_dirs: u64,
    pub excluded_files: u64,
    /// 0.13's "files not checked": downloads or local reads that failed.
    pub not_checked: u64,
    /// Ours: files and directories compared.
    pub files: u64,
    pub dirs: u64,
}

impl CompareReport {
    /// Adds another location's counts (`compare -a` prints one summary).
    pub fn add(&mut self, o: &CompareReport) {
        self.differences += o.differences;
        self.explained_by_mod_time += o.explained_by_mod_time;
        self.excluded_dirs += o.excluded_dirs;
        self.excluded_files += o.excluded_files;
        self.not_checked += o.not_checked;
        self.files += o.files;
        self.dirs += o.dirs;
    }

    /// 0.13's two summary lines (printed at INFO level).
    pub fn summary_lines(&self) -> [String; 2] {
        [
            format!(
                "[ {} (of {}) differences probably due to file modifications after the last \
                 upload ]",
                self.explained_by_mod_time, self.differences
            ),
            format!(
                "Differences: {} ({} dirs excluded, {} files excluded, {} files not checked)",
                self.differences, self.excluded_dirs, self.excluded_files, self.not_checked
            ),
        ]
    }
}

/// Compares store directory `store_dir` with the local directory `local`.
/// Errors are those that stop the whole comparison (a directory listing that
/// fails); a file that cannot be fetched or read is counted as not checked.
pub fn compare_location(
    store: &mut dyn StoreRead,
    keys: &Keys,
    store_dir: i64,
    local: &Path,
    opts: &CompareOptions,
    out: &mut dyn CompareSink,
) -> Result<CompareReport> {
    let mut c = Comparer {
        store,
        keys,
        opts,
        out,
        report: CompareReport::default(),
        bytes_seen: 0,
    };
    c.dir(store_dir, local, &opts.store_path)?;
    Ok(c.report)
}

/// What is on the disc under one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Symlink,
    Dir,
    Other,
}

fn kind_of(md: &Metadata) -> Kind {
    let t = md.file_type();
    if t.is_dir() {
        Kind::Dir
    } else if t.is_file() {
        Kind::File
    } else if t.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    }
}

fn seconds(t: BoxTime) -> i64 {
    t.div_euclid(1_000_000)
}

/// Names the attribute fields that differ (ours, for the detail).
fn attribute_detail(store: &UnixAttributes, local: &UnixAttributes, times: bool) -> String {
    let mut d = Vec::new();
    if (store.uid, store.gid) != (local.uid, local.gid) {
        d.push(format!(
            "owner {}:{} in the store, {}:{} here",
            store.uid, store.gid, local.uid, local.gid
        ));
    }
    if store.mode != local.mode {
        d.push(format!(
            "mode {:o} in the store, {:o} here",
            store.mode, local.mode
        ));
    }
    if times && seconds(store.mtime) != seconds(local.mtime) {
        d.push(format!(
            "mtime {} in the store, {} here",
            store.mtime, local.mtime
        ));
    }
    if store.symlink_target != local.symlink_target {
        d.push("symlink target".into());
    }
    if store.xattrs != local.xattrs {
        d.push("extended attributes".into());
    }
    if store.user_flags != local.user_flags {
        d.push("flags".into());
    }
    d.join(", ")
}

struct Comparer<'a> {
    store: &'a mut dyn StoreRead,
    keys: &'a Keys,
    opts: &'a CompareOptions,
    out: &'a mut dyn CompareSink,
    report: CompareReport,
    /// Local bytes of the files compared, for [`CompareSink::progress`].
    bytes_seen: u64,
}

/// The result of checking one file's contents.
enum Check {
    Same,
    Different,
}

impl Comparer<'_> {
    fn excluded(&self, p: &Path, dir: bool) -> bool {
        self.opts.excluded.as_ref().is_some_and(|f| f(p, dir))
    }

    /// 0.13's "modified after the last sync": the mtime of `md`, or its
    /// ctime (`attr_time`).
    fn changed_since_sync(&self, md: Option<&Metadata>, attr_time: bool) -> bool {
        match (self.opts.last_sync_time, md) {
            (Some(t), Some(md)) if attr_time => localfs::ctime_of(md) > t,
            (Some(t), Some(md)) => localfs::mtime_of(md) > t,
            _ => false,
        }
    }

    /// Counts and reports one difference; `hint`: 0.13's hint line follows
    /// it (see [`Difference::hint`]).
    #[allow(clippy::too_many_arguments)]
    fn difference(
        &mut self,
        kind: DifferenceKind,
        local: PathBuf,
        store: Vec<u8>,
        md: Option<&Metadata>,
        entry_attrs: bool,
        hint: bool,
        detail: Option<String>,
    ) {
        let modified = match kind {
            // 0.13's quick compare of a file does not look at its times.
            DifferenceKind::Contents | DifferenceKind::Attributes => {
                self.opts.mode != CompareMode::Quick && self.changed_since_sync(md, false)
            }
            // 0.13 stat()s what the store lacks (a symlink's target).
            DifferenceKind::StoreMissing => {
                let followed = fs::metadata(&local).ok();
                self.changed_since_sync(followed.as_ref(), false)
            }
            DifferenceKind::DirAttributes => {
                let followed = fs::metadata(&local).ok();
                self.changed_since_sync(followed.as_ref(), true)
            }
            DifferenceKind::LocalMissing => false,
        };
        self.report.differences += 1;
        if modified {
            self.report.explained_by_mod_time += 1;
        }
        self.out.event(CompareEvent::Difference(Difference {
            kind,
            local,
            store,
            modified_after_last_sync: modified,
            new_attributes_applied: entry_attrs,
            hint,
            detail,
        }));
    }

    fn dir(&mut self, id: i64, local: &Path, store_path: &[u8]) -> Result<()> {
        self.report.dirs += 1;
        self.out.event(CompareEvent::Directory {
            local: local.to_path_buf(),
        });
        let listing = self.store.list_directory(
            id,
            flags::INCLUDE_EVERYTHING,
            flags::OLD_VERSION | flags::DELETED,
            true,
        )?;

        let mut here: BTreeMap<Vec<u8>, (Kind, Metadata)> = BTreeMap::new();
        let read = fs::read_dir(local).and_then(|rd| {
            for e in rd {
                let e = e?;
                let md = fs::symlink_metadata(e.path())?;
                here.insert(e.file_name().into_vec(), (kind_of(&md), md));
            }
            Ok(())
        });
        if let Err(e) = read {
            self.report.not_checked += 1;
            self.out.event(CompareEvent::LocalDirAccessFailed {
                local: local.to_path_buf(),
                error: e.to_string(),
            });
            return Ok(());
        }

        if !self.opts.ignore_attributes {
            self.dir_attributes(&listing.attributes, id, local, store_path)?;
        }

        let mut files: BTreeMap<Vec<u8>, &Entry> = BTreeMap::new();
        let mut dirs: BTreeMap<Vec<u8>, &Entry> = BTreeMap::new();
        for e in &listing.entries {
            let name = e
                .name
                .decrypt(self.keys)
                .map_err(|err| Error::format(format!("name of object {:#x}", e.object_id), err))?;
            if e.is_dir() {
                dirs.insert(name, e);
            } else if e.is_file() {
                files.insert(name, e);
            }
        }
        let sub = |name: &[u8]| -> (PathBuf, Vec<u8>) {
            (
                local.join(OsString::from_vec(name.to_vec())),
                cat(&[store_path, b"/", name]),
            )
        };

        for (name, e) in &files {
            let (lp, sp) = sub(name);
            match here.get(name) {
                Some((k @ (Kind::File | Kind::Symlink), md)) => {
                    if !self.excluded(&lp, false) {
                        self.file(id, e, name, &lp, sp, *k, md);
                    }
                }
                _ => self.difference(
                    DifferenceKind::LocalMissing,
                    lp,
                    sp,
                    None,
                    false,
                    true,
                    None,
                ),
            }
        }
        for (name, (k, md)) in &here {
            if !matches!(k, Kind::File | Kind::Symlink) || files.contains_key(name) {
                continue;
            }
            let (lp, sp) = sub(name);
            if self.excluded(&lp, false) {
                self.report.excluded_files += 1;
            } else {
                self.difference(
                    DifferenceKind::StoreMissing,
                    lp,
                    sp,
                    Some(md),
                    false,
                    true,
                    None,
                );
            }
        }
        for (name, e) in &dirs {
            let (lp, sp) = sub(name);
            match here.get(name) {
                Some((Kind::Dir, _)) => {
                    if self.excluded(&lp, true) {
                        self.report.excluded_dirs += 1;
                    } else {
                        self.dir(e.object_id, &lp, &sp)?;
                    }
                }
                _ => self.difference(
                    DifferenceKind::LocalMissing,
                    lp,
                    sp,
                    None,
                    false,
                    true,
                    None,
                ),
            }
        }
        for (name, (k, md)) in &here {
            if *k != Kind::Dir || dirs.contains_key(name) {
                continue;
            }
            let (lp, sp) = sub(name);
            if self.excluded(&lp, true) {
                self.report.excluded_dirs += 1;
            } else {
                self.difference(
                    DifferenceKind::StoreMissing,
                    lp,
                    sp,
                    Some(md),
                    false,
                    true,
                    None,
                );
            }
        }
        Ok(())
    }

    /// A directory's own attributes, both times ignored.
    fn dir_attributes(
        &mut self,
        blob: &[u8],
        id: i64,
        local: &Path,
        store_path: &[u8],
    ) -> Result<()> {
        let store = UnixAttributes::decrypt(self.keys, blob)
            .map_err(|e| Error::format(format!("attributes of directory {id:#x}"), e))?;
        let Some(store) = store else {
            self.out.event(CompareEvent::StoreDirMissingAttributes {
                local: local.to_path_buf(),
                store: store_path.to_vec(),
            });
            return Ok(());
        };
        let mine = fs::symlink_metadata(local)
            .and_then(|md| localfs::read_attributes(local, &md))
            .map_err(|e| Error::local("read attributes of", local, e))?;
        let how = AttrCompare {
            ignore_mtime: true,
            ignore_attr_mtime: true,
        };
        if !store.compare(&mine, how) {
            let detail = attribute_detail(&store, &mine, false);
            self.difference(
                DifferenceKind::DirAttributes,
                local.to_path_buf(),
                store_path.to_vec(),
                None,
                false,
                true,
                Some(detail),
            );
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn file(
        &mut self,
        dir: i64,
        e: &Entry,
        leaf: &[u8],
        local: &Path,
        store_path: Vec<u8>,
        kind: Kind,
        md: &Metadata,
    ) {
        self.report.files += 1;
        self.bytes_seen += md.len();
        self.out.progress(self.report.files, self.bytes_seen);
        let r = match self.opts.mode {
            CompareMode::Full => self.file_full(dir, e, local, kind),
            CompareMode::Quick | CompareMode::Md5 => self.file_index(dir, e, leaf, local, kind, md),
        };
        match r {
            Ok((attrs, contents)) => {
                let contents_differ = matches!(contents, Check::Different);
                if let Some(detail) = attrs {
                    self.difference(
                        DifferenceKind::Attributes,
                        local.to_path_buf(),
                        store_path.clone(),
                        Some(md),
                        e.has_attributes(),
                        !contents_differ,
                        Some(detail),
                    );
                }
                if contents_differ {
                    self.difference(
                        DifferenceKind::Contents,
                        local.to_path_buf(),
                        store_path,
                        Some(md),
                        e.has_attributes(),
                        true,
                        None,
                    );
                }
            }
            Err(err) => {
                self.report.not_checked += 1;
                let download = !matches!(err, Error::Local { .. });
                self.out.event(CompareEvent::NotChecked {
                    local: local.to_path_buf(),
                    store: store_path,
                    download,
                    error: err.to_string(),
                });
            }
        }
    }

    /// Full mode: download, attributes, every byte.
    fn file_full(
        &mut self,
        dir: i64,
        e: &Entry,
        local: &Path,
        kind: Kind,
    ) -> Result<(Option<String>, Check)> {
        let what = || format!("file {:#x}", e.object_id);
        let keys = self.keys;
        let ignore_attributes = self.opts.ignore_attributes;
        let reader = self.store.open_file(dir, e.object_id)?;
        let mut dec = StreamDecoder::new(keys, reader).map_err(|x| Error::format(what(), x))?;
        let blob = if e.has_attributes() {
            e.attributes.clone()
        } else {
            dec.attributes().to_vec()
        };
        let store_attrs = decrypt(keys, &blob, e.object_id)?;
        let store_symlink = store_attrs.as_ref().is_some_and(|a| a.is_symlink());
        let attrs = if ignore_attributes {
            None
        } else {
            check_attributes(store_attrs.as_ref(), &local_attributes(local)?)
        };
        let contents = if store_symlink || kind == Kind::Symlink {
            // Drain the (empty) stream; the target is an attribute.
            while dec
                .next_block()
                .map_err(|x| Error::format(what(), x))?
                .is_some()
            {}
            if store_symlink == (kind == Kind::Symlink) {
                Check::Same
            } else {
                Check::Different
            }
        } else {
            let mut f = open_local(local)?;
            let mut buf = Vec::new();
            let mut same = true;
            while let Some(block) = dec.next_block().map_err(|x| Error::format(what(), x))? {
                if same {
                    buf.resize(block.len(), 0);
                    same = read_exactly(&mut f, &mut buf, local)? && buf == block;
                }
            }
            if same && at_end(&mut f, local)? {
                Check::Same
            } else {
                Check::Different
            }
        };
        Ok((attrs, contents))
    }

    /// Quick and Md5 modes: the block index against the local file, and in
    /// Md5 mode the attributes (see the module header).
    fn file_index(
        &mut self,
        dir: i64,
        e: &Entry,
        leaf: &[u8],
        local: &Path,
        kind: Kind,
        md: &Metadata,
    ) -> Result<(Option<String>, Check)> {
        let mut index: Option<BlockIndex> = None;
        let mut store_attrs: Option<Option<UnixAttributes>> = None;
        let mut attrs = None;
        if self.opts.mode == CompareMode::Md5 && !self.opts.ignore_attributes {
            let mine = local_attributes(local)?;
            if e.has_attributes() {
                store_attrs = Some(decrypt(self.keys, &e.attributes, e.object_id)?);
            } else if kind == Kind::Symlink || !self.hash_matches(e, leaf, &mine, md)? {
                let (a, idx) = self.embedded(dir, e.object_id)?;
                store_attrs = Some(a);
                index = Some(idx);
            }
            if let Some(a) = &store_attrs {
                attrs = check_attributes(a.as_ref(), &mine);
            }
        }
        let index = match index {
            Some(i) => i,
            None => self.store.get_block_index_by_id(e.object_id)?,
        };
        // A symlink's index has no blocks and IV base 0 (formats.md §2.6).
        let store_symlink = match &store_attrs {
            Some(Some(a)) => a.is_symlink(),
            _ => index.entries.is_empty() && index.iv_base == 0,
        };
        let contents = if kind == Kind::Symlink || store_symlink {
            if (kind == Kind::Symlink) == store_symlink || index.entries.is_empty() {
                Check::Same
            } else {
                Check::Different
            }
        } else {
            self.blocks_match(&index, e.object_id, local)?
        };
        Ok((attrs, contents))
    }

    /// The attribute hash and modification time of the entry against the
    /// local file: equal means uid, gid, mode, xattrs and mtime agree.
    fn hash_matches(
        &self,
        e: &Entry,
        leaf: &[u8],
        mine: &UnixAttributes,
        md: &Metadata,
    ) -> Result<bool> {
        let hash = mine
            .attribute_hash(self.keys, leaf)
            .map_err(|x| Error::format("local attributes", x))?;
        Ok(hash == e.attributes_hash && seconds(e.mtime) == seconds(localfs::mtime_of(md)))
    }

    /// The embedded attributes and the index, from the head of the GetFile
    /// stream; the rest is not read.
    fn embedded(&mut self, dir: i64, id: i64) -> Result<(Option<UnixAttributes>, BlockIndex)> {
        let keys = self.keys;
        let reader = self.store.open_file(dir, id)?;
        let dec = StreamDecoder::new(keys, reader)
            .map_err(|x| Error::format(format!("file {id:#x}"), x))?;
        let blob = dec.attributes().to_vec();
        let index = dec.index().clone();
        drop(dec);
        Ok((decrypt(keys, &blob, id)?, index))
    }

    /// Each block's clear size and MD5 against the local file read in the same
    /// sizes, and no bytes left over.
    fn blocks_match(&self, index: &BlockIndex, id: i64, local: &Path) -> Result<Check> {
        if index.other_file_id != 0 {
            return Err(Error::StoreData {
                what: format!("file {id:#x}"),
                detail: "the current version is a patch".into(),
            });
        }
        let clears = index
            .decrypt_all(self.keys)
            .map_err(|x| Error::format(format!("block index of {id:#x}"), x))?;
        let mut f = open_local(local)?;
        let mut buf = Vec::new();
        for c in clears {
            // 0.13's quick compare refuses blocks over 512 KiB + 1024.
            if c.size > 512 * 1024 + 1024 {
                return Ok(Check::Different);
            }
            buf.resize(c.size as usize, 0);
            if !read_exactly(&mut f, &mut buf, local)? || bb_format::crypto::md5(&buf) != c.md5 {
                return Ok(Check::Different);
            }
        }
        Ok(if at_end(&mut f, local)? {
            Check::Same
        } else {
            Check::Different
        })
    }
}

fn local_attributes(local: &Path) -> Result<UnixAttributes> {
    fs::symlink_metadata(local)
        .and_then(|md| localfs::read_attributes(local, &md))
        .map_err(|e| Error::local("read attributes of", local, e))
}

/// `Some(detail)` if the store's attributes differ from the local ones
/// (attr-mtime ignored, and mtime for symlinks, as 0.13 compares).
fn check_attributes(store: Option<&UnixAttributes>, local: &UnixAttributes) -> Option<String> {
    let Some(store) = store else {
        return Some("no attributes in the store".into());
    };
    let symlink = store.is_symlink() || local.is_symlink();
    let how = AttrCompare {
        ignore_mtime: symlink,
        ignore_attr_mtime: true,
    };
    (!store.compare(local, how)).then(|| attribute_detail(store, local, !symlink))
}

fn decrypt(keys: &Keys, blob: &[u8], id: i64) -> Result<Option<UnixAttributes>> {
    UnixAttributes::decrypt(keys, blob)
        .map_err(|e| Error::format(format!("attributes of file {id:#x}"), e))
}

fn open_local(p: &Path) -> Result<BufReader<fs::File>> {
    fs::File::open(p)
        .map(|f| BufReader::with_capacity(256 * 1024, f))
        .map_err(|e| Error::local("open", p, e))
}

/// Fills `buf`; false if the file ends first.
fn read_exactly(f: &mut impl Read, buf: &mut [u8], p: &Path) -> Result<bool> {
    match f.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Error::local("read", p, e)),
    }
}

fn at_end(f: &mut impl Read, p: &Path) -> Result<bool> {
    let mut b = [0u8; 1];
    loop {
        match f.read(&mut b) {
            Ok(n) => return Ok(n == 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::local("read", p, e)),
        }
    }
}

#[cfg(test)]
mod tests;
