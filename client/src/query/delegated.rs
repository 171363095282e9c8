//! `compare` and `restore` as commands: option and argument checks, finding
//! the store directory (and the location for `compare -a`/`-l`), the
//! messages before and after, and the return codes. The work itself is the
//! library's: [`crate::compare::compare_location`], [`crate::restore`].
//!
//! `compare -c` sets the exit code 0.13 gives when `quit` follows:
//! 1 no differences, 2 differences, 3 files that could not be checked.
//!
//! Compare modes: ours checks each file's block MD5s and its attributes
//! without downloading it ([`CompareMode::Md5`], the default); `-q` is 0.13's
//! quick compare (MD5s only); `-f` (a letter 0.13's compare does not take) is
//! 0.13's default, every file downloaded and compared byte for byte.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bb_format::BoxTime;
use bb_proto::message::flags;
use bb_remote::StoreRead;

use super::parse::{Opts, object_id};
use super::{Console, Level, QueryContext, return_code};
use crate::compare::{
    self, CompareEvent, CompareMode, CompareOptions, CompareReport, CompareSink, Excluded,
    compare_location,
};
use crate::error::Error;
use crate::restore::{RestoreOptions, RestoreReport, restore as restore_one, restore_parallel};

/// Connections a restore uses when it can open them.
const RESTORE_CONNECTIONS: usize = 2;

/// Prints compare's events as they come, with 0.13's level prefixes.
struct Sink<'a>(&'a mut Console);

fn level(l: compare::Level) -> Level {
    match l {
        compare::Level::Info => Level::Info,
        compare::Level::Warning => Level::Warning,
        compare::Level::Error => Level::Error,
    }
}

impl CompareSink for Sink<'_> {
    fn event(&mut self, e: CompareEvent) {
        for (l, text) in e.lines() {
            self.0.log(level(l), &text);
        }
    }

    fn progress(&mut self, files: u64, bytes: u64) {
        self.0.progress(&bb_console::Counts {
            verb: "Comparing",
            noun: "files",
            items: files,
            bytes,
            ..bb_console::Counts::default()
        });
    }
}

/// A local path argument: as typed while the shell's local directory is
/// still the process's (0.13 names it so in its messages: it `chdir`s on
/// `lcd`), else joined to the `lcd` directory.
fn local_arg(ctx: &QueryContext, arg: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let typed = Path::new(std::ffi::OsStr::from_bytes(arg));
    let cwd = std::env::current_dir().ok();
    if typed.is_relative() && cwd.as_deref() == Some(ctx.local_dir.as_path()) {
        typed.to_path_buf()
    } else {
        ctx.local_path(arg)
    }
}

/// When the last sync started (0.13: the mtime of `last_sync_start` in the
/// data directory), less MinimumFileAge: files changed after it were not yet
/// due for upload and may rightly differ. `None` (with 0.13's warning) when
/// it is not known.
fn latest_upload_time(ctx: &mut QueryContext) -> Option<BoxTime> {
    let start = ctx
        .compare
        .data_directory
        .as_deref()
        .and_then(crate::sync::last_sync_start);
    match start {
        Some(t) => Some(t - ctx.compare.minimum_file_age.as_micros() as BoxTime),
        None => {
            ctx.console.warning(
                "Failed to determine the time of the last synchronisation -- checks not performed.",
            );
            None
        }
    }
}

/// Compares store directory `store_path` with `local` into `total`.
fn compare_dirs(
    ctx: &mut QueryContext,
    store_path: &[u8],
    local: &Path,
    opts: &CompareOptions,
    total: &mut CompareReport,
) {
    let dir = match ctx.find_directory(store_path, false, false) {
        Ok(Some((id, _))) => id,
        Ok(None) => {
            // 0.13's NotifyRemoteFileMissing for the top directory.
            let mut m =
                format!("Local file '{}' exists, but remote file '", local.display()).into_bytes();
            m.extend_from_slice(store_path);
            m.extend_from_slice(b"' does not.");
            ctx.console.warning(m);
            total.differences += 1;
            let changed = opts.last_sync_time.is_some_and(|t| {
                std::fs::metadata(local).is_ok_and(|md| crate::localfs::ctime_of(&md) > t)
            });
            if changed {
                total.explained_by_mod_time += 1;
                ctx.console.info(
                    "(the file above was modified after the last sync time -- might be reason for difference)",
                );
            }
            return;
        }
        Err(e) => {
            ctx.console.error(format!("Failed to find directory: {e}"));
            total.not_checked += 1;
            return;
        }
    };
    let opts = CompareOptions {
        store_path: store_path.to_vec(),
        ..opts.clone()
    };
    let QueryContext {
        store,
        keys,
        console,
        ..
    } = ctx;
    match compare_location(store.as_read(), keys, dir, local, &opts, &mut Sink(console)) {
        Ok(r) => total.add(&r),
        Err(e) => {
            console.error(format!("Failed to compare: {e}"));
            total.not_checked += 1;
        }
    }
}

/// `compare -a`, `compare -l <location>`, `compare -E <store-dir> <local-dir>`.
pub fn compare(ctx: &mut QueryContext, args: &[Vec<u8>], o: &Opts) {
    let latest = latest_upload_time(ctx);
    let mode = match (o.has('q'), o.has('f')) {
        (true, true) => {
            ctx.console
                .error("Quick (-q) and full (-f) compare cannot be used together.");
            return;
        }
        (true, false) => CompareMode::Quick,
        (false, true) => CompareMode::Full,
        (false, false) => CompareMode::Md5,
    };
    let ignore_excludes = o.has('E');
    let opts = CompareOptions {
        mode,
        ignore_attributes: o.has('A'),
        excluded: None,
        store_path: Vec::new(),
        last_sync_time: latest,
    };
    if mode == CompareMode::Quick {
        ctx.console
            .warning("Quick compare used -- file attributes are not checked.");
    }
    // A location's excludes apply unless -E says otherwise.
    let with_excludes = |excluded: Option<Arc<Excluded>>| CompareOptions {
        excluded: if ignore_excludes { None } else { excluded },
        ..opts.clone()
    };
    let mut total = CompareReport::default();
    let (a, l) = (o.has('a'), o.has('l'));
    if !l && a && args.is_empty() {
        let locations = ctx.compare.locations.clone();
        for loc in &locations {
            let store_path = format!("/{}", loc.name);
            let opts = with_excludes(loc.compare_excluded());
            compare_dirs(ctx, store_path.as_bytes(), &loc.path, &opts, &mut total);
        }
    } else if l && !a && args.len() == 1 {
        let found = ctx
            .compare
            .locations
            .iter()
            .find(|loc| loc.name.as_bytes() == args[0].as_slice())
            .cloned();
        match found {
            Some(loc) => {
                let store_path = format!("/{}", loc.name);
                let opts = with_excludes(loc.compare_excluded());
                compare_dirs(ctx, store_path.as_bytes(), &loc.path, &opts, &mut total);
            }
            None => {
                let mut m = b"Location ".to_vec();
                m.extend_from_slice(&args[0]);
                m.extend_from_slice(b" does not exist.");
                ctx.console.error(m);
            }
        }
    } else if !l && !a && args.len() == 2 {
        if !ignore_excludes {
            ctx.console.error(
                "Cannot use excludes on directory to directory comparison -- use -E flag to \
                 specify ignored excludes.",
            );
            return;
        }
        let local = local_arg(ctx, &args[1]);
        compare_dirs(ctx, &args[0], &local, &opts, &mut total);
    } else {
        ctx.console.error(
            "Incorrect usage.\ncompare -a\n or compare -l <location-name>\n or compare \
             <store-dir-name> <local-dir-name>",
        );
        return;
    }
    ctx.console.progress_done();
    let [explained, summary] = total.summary_lines();
    if !o.has('Q') {
        ctx.console.info(explained);
    }
    ctx.console.info(summary);
    if o.has('c') {
        ctx.set_return_code(if total.not_checked != 0 {
            return_code::COMPARE_ERROR
        } else if total.differences != 0 {
            return_code::COMPARE_DIFFERENT
        } else {
            return_code::COMPARE_SAME
        });
    }
}

/// Restores with two connections when a second one opens, else on the
/// shell's own. The first extra connection is opened here, before the
/// restore starts, so a store that refuses it costs nothing: the restore
/// has not yet touched the target (a failed start would leave a resume file
/// behind and the fallback would find "Resume possible").
fn run_restore(
    ctx: &mut QueryContext,
    dir: i64,
    local: &Path,
    opts: &RestoreOptions,
) -> crate::Result<RestoreReport> {
    let extra = ctx.connector.clone().and_then(|c| match c() {
        Ok(first) => Some((c, first)),
        Err(e) => {
            tracing::info!("restore on one connection: a second did not open: {e}");
            None
        }
    });
    match extra {
        Some((connect, first)) => {
            let first = Mutex::new(Some(first));
            let make = move || -> crate::Result<Box<dyn StoreRead + Send>> {
                match first.lock().ok().and_then(|mut g| g.take()) {
                    Some(s) => Ok(s),
                    None => connect(),
                }
            };
            restore_parallel(&make, &ctx.keys, dir, local, opts, RESTORE_CONNECTIONS)
        }
        None => restore_one(ctx.store.as_read(), &ctx.keys, dir, local, opts),
    }
}

/// `restore [-drif] <directory> [<local>]`.
pub fn restore(ctx: &mut QueryContext, args: &[Vec<u8>], o: &Opts) {
    if args.is_empty() || args.len() > 2 {
        ctx.console
            .error("Incorrect usage. restore [-drif] <remote-name> [<local-name>]");
        return;
    }
    let deleted = o.has('d');
    let dir = if o.has('i') {
        match object_id(&args[0]) {
            Some(id) => id,
            None => {
                let mut m = b"Not a valid object ID (specified in hex): ".to_vec();
                m.extend_from_slice(&args[0]);
                ctx.console.error(m);
                return;
            }
        }
    } else {
        match ctx.find_directory(&args[0], false, deleted) {
            Ok(Some((id, _))) => id,
            Ok(None) => 0,
            Err(e) => {
                ctx.store_failed("Failed to restore", &e);
                return;
            }
        }
    };
    if dir == 0 {
        let mut m = b"Directory '".to_vec();
        m.extend_from_slice(&args[0]);
        m.extend_from_slice(b"' not found on server");
        ctx.console.error(m);
        return;
    }
    if dir == flags::ROOT_DIRECTORY {
        ctx.console
            .error("Cannot restore the root directory -- restore locations individually.");
        return;
    }
    let local = local_arg(ctx, args.get(1).unwrap_or(&args[0]));
    let opts = RestoreOptions {
        include_deleted: deleted,
        resume: o.has('r'),
        force: o.has('f'),
        progress: ctx.console.progress_on(),
        ..RestoreOptions::default()
    };
    ctx.console.flush();
    match run_restore(ctx, dir, &local, &opts) {
        Ok(rep) if rep.errors.is_empty() => ctx.console.info("Restore complete."),
        Ok(rep) => {
            for e in &rep.errors {
                ctx.console.error(e);
            }
            ctx.console
                .warning("Restore complete, but some files could not be restored.");
        }
        Err(Error::RestoreResumePossible { .. }) => {
            ctx.fail("Resume possible -- repeat command with -r flag to resume.")
        }
        Err(Error::RestoreTargetExists { .. }) => {
            ctx.fail("The target directory exists. You cannot restore over an existing directory.")
        }
        Err(e @ Error::RestoreParentMissing { .. }) => {
            // 0.13 says both.
            ctx.console.error(e.to_string());
            ctx.fail(
                "The target directory path does not exist.\nTo restore to a directory whose \
                 parent does not exist, create the parent first.",
            );
        }
        Err(e) => ctx.fail(format!("Failed to restore: {e}")),
    }
}
