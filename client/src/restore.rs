//! Restore: a store directory (a location, or any directory below one) back
//! into a new local directory, as 0.13's `bbackupquery restore [-drif]` does.
//!
//! Owns the walk over the store's directories, the recreation of files,
//! symlinks and directories with their attributes, the resume file, and the
//! progress display. Must not know the shell's wording for results (the query
//! command prints them from [`crate::Error`]'s `Restore*` variants and
//! [`RestoreReport`]), nor how a store connection is made.
//!
//! # How a restore runs
//!
//! 1. The target is checked as 0.13 checks it: its parent must exist; the
//!    target itself must not, unless a resume file is beside it
//!    (`<target>.boxbackupresume`, 0.13's name and place) and `resume` is set.
//! 2. All directories are listed first (one ListDirectory each) and created
//!    with mode 0700; the list of files that results is the plan. Listing
//!    first costs one round trip per directory, which a restore pays anyway,
//!    and gives the progress display its totals and the parallel restore its
//!    work list.
//! 3. Files are fetched with GetFile and decoded as they stream in
//!    ([`StreamDecoder`]): nothing is held whole in memory. A directory entry's
//!    own attributes (SetReplacementFileAttributes) win over the ones embedded
//!    in the file, as in 0.13. Symlinks are made from the target in their
//!    attributes. Hard links were stored by 0.13 as independent files and
//!    nothing in the store ties them together, so they come back as separate
//!    files, exactly as 0.13 restores them.
//! 4. Directory attributes are applied last, deepest first, so a read-only
//!    directory can still be filled. (Directory attributes carry no times.)
//!
//! # Resume
//!
//! The resume file records the IDs of the objects restored completely.
//! Object IDs are unique in an account, so one set of IDs is enough, whatever
//! the order files were restored in (the parallel restore finishes them out
//! of order). Ours starts with [`RESUME_MAGIC`] and then appends one
//! little-endian i64 per finished file. A resume file that 0.13 wrote (its
//! per-level format: count, IDs, next level ID, name, next level...) is read
//! too: its IDs are finished files and finished directory subtrees, and the
//! in-progress levels are simply walked again. A file restored half-way is
//! not in the set and is written again from the start.
//!
//! # Errors
//!
//! Without `force` the first error stops the restore and leaves the resume
//! file; with it (0.13's `-f`) the error is recorded in the report and the
//! restore goes on with the next object.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

use bb_format::Keys;
use bb_format::attributes::UnixAttributes;
use bb_format::decode::StreamDecoder;
use bb_format::directory::Entry;
use bb_proto::message::flags;
use bb_remote::StoreRead;

use crate::error::{Error, Result};
use crate::localfs::{self, ApplyOptions};

/// First bytes of our resume file; anything else is read as 0.13's format.
pub const RESUME_MAGIC: &[u8; 16] = b"bb-rs-resume-v1\n";

/// Suffix 0.13 appends to the target path to name the resume file.
pub const RESUME_SUFFIX: &str = ".boxbackupresume";

/// How often the resume file is flushed, in restored bytes (0.13 saves its
/// resume information every 128 KiB written).
const RESUME_FLUSH_BYTES: u64 = 128 * 1024;

/// What [`restore`] does besides fetching the current tree.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// `-d`: restore the deleted entries (and only those), as 0.13 does.
    pub include_deleted: bool,
    /// `-r`: continue an interrupted restore into the existing target.
    pub resume: bool,
    /// `-f`: record errors and carry on with the next object.
    pub force: bool,
    /// Owners are set when running as root (0.13), see [`ApplyOptions`].
    pub apply: ApplyOptions,
    /// Draw a progress line on stderr (the default when stderr is a terminal).
    pub progress: bool,
}

impl Default for RestoreOptions {
    fn default() -> RestoreOptions {
        RestoreOptions {
            include_deleted: false,
            resume: false,
            force: false,
            apply: ApplyOptions::as_013(),
            progress: io::stderr().is_terminal(),
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Regular files written.
    pub files: u64,
    /// Symlinks made.
    pub symlinks: u64,
    /// Directories restored (the target included).
    pub dirs: u64,
    /// Clear bytes written.
    pub bytes: u64,
    /// Files skipped because the resume file says they were done.
    pub already_done: u64,
    /// True if a resume file was picked up.
    pub resumed: bool,
    /// Errors passed over because of `force`, one line each.
    pub errors: Vec<String>,
}

/// Restores store directory `store_dir` into the new local directory `local`.
pub fn restore(
    store: &mut dyn StoreRead,
    keys: &Keys,
    store_dir: i64,
    local: &Path,
    opts: &RestoreOptions,
) -> Result<RestoreReport> {
    let mut job = Job::start(local, opts)?;
    let plan = walk(store, keys, store_dir, local, opts, &mut job)?;
    let mut progress = Progress::new(opts.progress, &plan);
    for f in &plan.files {
        if job.done.contains(&f.id) {
            job.report.already_done += 1;
            progress.file_done(f.blocks, 0);
            continue;
        }
        let r = restore_file(store, keys, f, opts.apply, job.report.resumed);
        progress.file_done(f.blocks, r.as_ref().map_or(0, |d| d.bytes));
        job.finished(f, r)?;
    }
    progress.finish();
    job.complete(&plan, opts)
}

/// A store connection for [`restore_parallel`]'s workers.
pub type MakeStore<'a> = dyn Fn() -> Result<Box<dyn StoreRead + Send>> + Sync + 'a;

/// [`restore`] with `workers` connections (at least one), each fetching and
/// decoding whole files: decryption, decompression and MD5 of one file run
/// while another is on the wire. The directory walk uses the first
/// connection; `make_store` is called once per worker.
pub fn restore_parallel(
    make_store: &MakeStore<'_>,
    keys: &Keys,
    store_dir: i64,
    local: &Path,
    opts: &RestoreOptions,
    workers: usize,
) -> Result<RestoreReport> {
    let mut job = Job::start(local, opts)?;
    let mut first = make_store()?;
    let plan = walk(first.as_mut(), keys, store_dir, local, opts, &mut job)?;
    let mut progress = Progress::new(opts.progress, &plan);
    let todo: Vec<&PlanFile> = plan
        .files
        .iter()
        .filter(|f| {
            let done = job.done.contains(&f.id);
            if done {
                job.report.already_done += 1;
                progress.file_done(f.blocks, 0);
            }
            !done
        })
        .collect();
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first = Mutex::new(Some(first));
    let resuming = job.report.resumed;
    let (tx, rx) = mpsc::channel::<(usize, Result<Restored>)>();
    let workers = workers.clamp(1, todo.len().max(1));
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..workers {
            let tx = tx.clone();
            let (todo, next, stop, first) = (&todo, &next, &stop, &first);
            s.spawn(move || {
                let taken = first.lock().map(|mut g| g.take()).unwrap_or(None);
                let mut store = match taken.map_or_else(make_store, Ok) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send((usize::MAX, Err(e)));
                        return;
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = todo.get(i) else { break };
                    let r = restore_file(store.as_mut(), keys, f, opts.apply, resuming);
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut result = Ok(());
        let mut handled = 0usize;
        for (i, r) in rx {
            if result.is_err() {
                continue;
            }
            let step = match todo.get(i) {
                Some(f) => {
                    handled += 1;
                    progress.file_done(f.blocks, r.as_ref().map_or(0, |d| d.bytes));
                    job.finished(f, r)
                }
                // A worker that could not connect.
                None => match r {
                    Ok(_) => Ok(()),
                    Err(e) => job.failed(e),
                },
            };
            if let Err(e) = step {
                stop.store(true, Ordering::Relaxed);
                result = Err(e);
            }
        }
        if result.is_ok() && handled < todo.len() {
            job.flush_resume()?;
            result = Err(Error::StoreData {
                what: "restore".into(),
                detail: format!(
                    "{} files were not restored: no worker could connect",
                    todo.len() - handled
                ),
            });
        }
        result
    })?;
    progress.finish();
    job.complete(&plan, opts)
}

/// One file to fetch.
#[derive(Debug, Clone)]
struct PlanFile {
    dir: i64,
    id: i64,
    path: PathBuf,
    /// The entry's replacement attributes (encrypted), usually empty.
    entry_attributes: Vec<u8>,
    /// Store size, for the progress estimate.
    blocks: u64,
}

/// One directory whose attributes are applied at the end.
#[derive(Debug, Clone)]
struct PlanDir {
    path: PathBuf,
    attributes: Option<UnixAttributes>,
}

#[derive(Debug, Default)]
struct Plan {
    /// In walk order (parents before children).
    dirs: Vec<PlanDir>,
    files: Vec<PlanFile>,
}

/// What one file's restore produced.
#[derive(Debug, Clone, Copy)]
struct Restored {
    bytes: u64,
    symlink: bool,
}

/// The state of one restore: the target, the resume set and file, the report.
struct Job {
    resume_path: PathBuf,
    resume_file: Option<BufWriter<fs::File>>,
    unflushed: u64,
    done: HashSet<i64>,
    force: bool,
    report: RestoreReport,
}

fn local_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |e| Error::local(op, path, e)
}

/// `<target>.boxbackupresume`, beside the target as 0.13 puts it.
pub fn resume_file_path(local: &Path) -> PathBuf {
    let mut bytes = local.as_os_str().as_bytes().to_vec();
    while bytes.len() > 1 && bytes.last() == Some(&b'/') {
        bytes.pop();
    }
    bytes.extend_from_slice(RESUME_SUFFIX.as_bytes());
    PathBuf::from(OsString::from_vec(bytes))
}

impl Job {
    fn start(local: &Path, opts: &RestoreOptions) -> Result<Job> {
        let resume_path = resume_file_path(local);
        let target = fs::symlink_metadata(local);
        let target_is_dir = target.as_ref().is_ok_and(|m| m.is_dir());
        let mut done = HashSet::new();
        let mut resumed = false;
        if target_is_dir && resume_path.is_file() {
            if !opts.resume {
                return Err(Error::RestoreResumePossible {
                    path: local.to_path_buf(),
                });
            }
            let bytes = fs::read(&resume_path).map_err(local_err("read", &resume_path))?;
            done = parse_resume(&bytes).ok_or_else(|| Error::RestoreTargetExists {
                path: local.to_path_buf(),
            })?;
            resumed = true;
        } else if target.is_ok() {
            return Err(Error::RestoreTargetExists {
                path: local.to_path_buf(),
            });
        }
        if !resumed {
            let parent = match local.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            if !fs::metadata(parent).is_ok_and(|m| m.is_dir()) {
                return Err(Error::RestoreParentMissing {
                    parent: parent.to_path_buf(),
                });
            }
        }
        // Our format is an append-only log: a resumed 0.13 file is rewritten
        // in it, with what it said.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&resume_path)
            .map_err(local_err("create", &resume_path))?;
        let mut head = RESUME_MAGIC.to_vec();
        let mut ids: Vec<i64> = done.iter().copied().collect();
        ids.sort_unstable();
        for id in ids {
            head.extend_from_slice(&id.to_le_bytes());
        }
        f.write_all(&head)
            .and_then(|()| f.flush())
            .map_err(local_err("write", &resume_path))?;
        Ok(Job {
            resume_path,
            resume_file: Some(BufWriter::new(f)),
            unflushed: 0,
            done,
            force: opts.force,
            report: RestoreReport {
                resumed,
                ..RestoreReport::default()
            },
        })
    }

    /// Records the outcome of one file: counts it and logs it as done, or
    /// stops (without `force`) or records the error.
    fn finished(&mut self, f: &PlanFile, r: Result<Restored>) -> Result<()> {
        match r {
            Ok(d) => {
                if d.symlink {
                    self.report.symlinks += 1;
                } else {
                    self.report.files += 1;
                }
                self.report.bytes += d.bytes;
                self.done.insert(f.id);
                if let Some(w) = self.resume_file.as_mut() {
                    w.write_all(&f.id.to_le_bytes())
                        .map_err(local_err("write", &self.resume_path))?;
                }
                self.unflushed += d.bytes.max(1);
                if self.unflushed >= RESUME_FLUSH_BYTES {
                    self.flush_resume()?;
                }
                Ok(())
            }
            Err(e) => self.failed(e),
        }
    }

    fn failed(&mut self, e: Error) -> Result<()> {
        if self.force {
            tracing::warn!("restore: {e}");
            self.report.errors.push(e.to_string());
            Ok(())
        } else {
            self.flush_resume()?;
            Err(e)
        }
    }

    fn flush_resume(&mut self) -> Result<()> {
        self.unflushed = 0;
        if let Some(w) = self.resume_file.as_mut() {
            w.flush().map_err(local_err("write", &self.resume_path))?;
        }
        Ok(())
    }

    /// Directory attributes, deepest first; then the resume file goes.
    fn complete(mut self, plan: &Plan, opts: &RestoreOptions) -> Result<RestoreReport> {
        for d in plan.dirs.iter().rev() {
            if let Some(a) = &d.attributes {
                let r = localfs::apply_attributes(&d.path, a, opts.apply)
                    .map_err(|e| Error::local("set attributes of", &d.path, e));
                if let Err(e) = r {
                    self.failed(e)?;
                }
            }
        }
        self.report.dirs = plan.dirs.len() as u64;
        self.resume_file = None;
        // After errors passed over with `force`, the resume file stays, so
        // that `-r` can fetch what failed.
        if self.report.errors.is_empty() {
            let _ = fs::remove_file(&self.resume_path);
        }
        Ok(self.report)
    }
}

/// The IDs a resume file lists as done: ours, or 0.13's nested levels.
fn parse_resume(bytes: &[u8]) -> Option<HashSet<i64>> {
    let mut done = HashSet::new();
    if let Some(rest) = bytes.strip_prefix(&RESUME_MAGIC[..]) {
        // A torn last record is ignored: that file is simply done again.
        for c in rest.chunks_exact(8) {
            done.insert(i64::from_le_bytes(c.try_into().ok()?));
        }
        return Some(done);
    }
    // 0.13 (host order, little-endian on the machines it ran on): per level
    // i64 count, count x i64 ID, i64 next level ID (0: none), and for a next
    // level i32 name length, the name, then that level.
    let mut r = bytes;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (a, b) = r.split_at_checked(n)?;
        r = b;
        Some(a)
    };
    loop {
        let count = i64::from_le_bytes(take(8)?.try_into().ok()?);
        if count < 0 {
            return None;
        }
        for _ in 0..count {
            done.insert(i64::from_le_bytes(take(8)?.try_into().ok()?));
        }
        let next = i64::from_le_bytes(take(8)?.try_into().ok()?);
        if next == 0 {
            return Some(done);
        }
        let len = i32::from_le_bytes(take(4)?.try_into().ok()?);
        take(usize::try_from(len).ok()?)?;
    }
}

/// A store name as one local path component, refusing anything that would
/// leave the directory (`/`, `.`, `..`) or that a path cannot hold (NUL).
fn local_name(keys: &Keys, e: &Entry, dir: i64) -> Result<OsString> {
    let name = e
        .name
        .decrypt(keys)
        .map_err(|err| Error::format(format!("name of object {:#x}", e.object_id), err))?;
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(Error::StoreData {
            what: format!("object {:#x} in directory {dir:#x}", e.object_id),
            detail: format!(
                "name {:?} is not a single path component",
                String::from_utf8_lossy(&name)
            ),
        });
    }
    Ok(OsString::from_vec(name))
}

fn decrypt_attributes(keys: &Keys, blob: &[u8], what: &str) -> Result<Option<UnixAttributes>> {
    UnixAttributes::decrypt(keys, blob).map_err(|e| Error::format(what, e))
}

/// Lists every directory below `store_dir` (the entries a restore wants),
/// creates them locally, and returns the plan.
fn walk(
    store: &mut dyn StoreRead,
    keys: &Keys,
    store_dir: i64,
    local: &Path,
    opts: &RestoreOptions,
    job: &mut Job,
) -> Result<Plan> {
    // 0.13: -d lists only deleted entries; never old versions.
    let (must, must_not) = if opts.include_deleted {
        (flags::DELETED, flags::OLD_VERSION)
    } else {
        (
            flags::INCLUDE_EVERYTHING,
            flags::OLD_VERSION | flags::DELETED,
        )
    };
    let mut plan = Plan::default();
    let mut stack = vec![(store_dir, local.to_path_buf())];
    while let Some((id, path)) = stack.pop() {
        if let Err(e) = make_dir(&path) {
            job.failed(e)?;
            continue;
        }
        let listing = match store.list_directory(id, must, must_not, true) {
            Ok(d) => d,
            Err(e) => {
                job.failed(e.into())?;
                continue;
            }
        };
        let attributes =
            match decrypt_attributes(keys, &listing.attributes, &format!("directory {id:#x}")) {
                Ok(a) => a,
                Err(e) => {
                    job.failed(e)?;
                    None
                }
            };
        plan.dirs.push(PlanDir {
            path: path.clone(),
            attributes,
        });
        let mut subdirs = Vec::new();
        for e in &listing.entries {
            let name = match local_name(keys, e, id) {
                Ok(n) => n,
                Err(err) => {
                    job.failed(err)?;
                    continue;
                }
            };
            if e.is_file() {
                plan.files.push(PlanFile {
                    dir: id,
                    id: e.object_id,
                    path: path.join(&name),
                    entry_attributes: e.attributes.clone(),
                    blocks: e.size_in_blocks.max(0) as u64,
                });
            } else if e.is_dir() && !job.done.contains(&e.object_id) {
                // A directory 0.13's resume file lists as done is complete.
                subdirs.push((e.object_id, path.join(&name)));
            }
        }
        // Popped in store order, files of a directory before its subdirectories.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(plan)
}

/// Creates a directory for restoring into (0700 until its attributes are
/// applied); one that is there already (a resumed restore) is used, a file in
/// its way is removed, as 0.13 does.
fn make_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => fs::remove_file(path).map_err(local_err("remove", path))?,
        Err(_) => {}
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(local_err("create directory", path))
}

/// Fetches, decodes and writes one file or symlink, then applies its
/// attributes.
fn restore_file(
    store: &mut dyn StoreRead,
    keys: &Keys,
    f: &PlanFile,
    apply: ApplyOptions,
    resuming: bool,
) -> Result<Restored> {
    let what = || format!("file {:#x} ({})", f.id, f.path.display());
    // A leftover of an interrupted run is replaced. A fresh restore writes
    // into directories it made itself, so it saves the lstat per file.
    if resuming {
        match fs::symlink_metadata(&f.path) {
            Ok(m) if m.is_dir() => {
                fs::remove_dir_all(&f.path).map_err(local_err("remove", &f.path))?
            }
            Ok(_) => fs::remove_file(&f.path).map_err(local_err("remove", &f.path))?,
            Err(_) => {}
        }
    }
    let reader = store.open_file(f.dir, f.id)?;
    let mut dec = StreamDecoder::new(keys, reader).map_err(|e| Error::format(what(), e))?;
    let blob = if f.entry_attributes.is_empty() {
        dec.attributes()
    } else {
        &f.entry_attributes[..]
    };
    let attrs = decrypt_attributes(keys, blob, &what())?;
    if let Some(a) = attrs.as_ref().filter(|a| a.is_symlink()) {
        if !dec.index().entries.is_empty() {
            return Err(Error::StoreData {
                what: what(),
                detail: "attributes say symlink, but the file has data".into(),
            });
        }
        // Read the (empty) rest so the connection stays in step.
        dec.next_block().map_err(|e| Error::format(what(), e))?;
        drop(dec);
        let target = OsStr::from_bytes(a.symlink_target.as_deref().unwrap_or_default());
        std::os::unix::fs::symlink(target, &f.path).map_err(local_err("symlink", &f.path))?;
        localfs::apply_attributes(&f.path, a, apply)
            .map_err(|e| Error::local("set attributes of", &f.path, e))?;
        return Ok(Restored {
            bytes: 0,
            symlink: true,
        });
    }
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&f.path)
        .map_err(local_err("create", &f.path))?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let mut bytes = 0u64;
    while let Some(block) = dec.next_block().map_err(|e| Error::format(what(), e))? {
        out.write_all(block).map_err(local_err("write", &f.path))?;
        bytes += block.len() as u64;
    }
    drop(dec);
    let file = out
        .into_inner()
        .map_err(|e| Error::local("write", &f.path, e.into_error()))?;
    drop(file);
    if let Some(a) = &attrs {
        localfs::apply_attributes(&f.path, a, apply)
            .map_err(|e| Error::local("set attributes of", &f.path, e))?;
    }
    Ok(Restored {
        bytes,
        symlink: false,
    })
}

/// The progress line (bb-console's): files, bytes, rate, time left. The time
/// left is estimated from the store sizes of the files done and to do (the
/// clear sizes are not known before the files arrive).
struct Progress {
    line: bb_console::Progress,
    files_total: u64,
    blocks_total: u64,
    files: u64,
    blocks: u64,
    bytes: u64,
}

impl Progress {
    fn new(on: bool, plan: &Plan) -> Progress {
        Progress {
            line: bb_console::Progress::new(
                on.then(|| bb_console::Term::new(Box::new(io::stderr()))),
            ),
            files_total: plan.files.len() as u64,
            blocks_total: plan.files.iter().map(|f| f.blocks).sum(),
            files: 0,
            blocks: 0,
            bytes: 0,
        }
    }

    fn file_done(&mut self, blocks: u64, bytes: u64) {
        self.files += 1;
        self.blocks += blocks;
        self.bytes += bytes;
        if self.line.is_on() {
            let fraction =
                (self.blocks_total > 0).then(|| self.blocks as f64 / self.blocks_total as f64);
            self.line.update(&bb_console::Counts {
                verb: "Restoring",
                noun: "files",
                items: self.files,
                items_total: Some(self.files_total),
                bytes: self.bytes,
                bytes_total: None,
                fraction,
                sent: None,
            });
        }
    }

    fn finish(&mut self) {
        self.line.finish();
    }
}

#[cfg(test)]
mod tests;
