//! `compare` and `restore` as commands: option and argument checks, finding
//! the store directory (and the location for `compare -a`/`-l`), the
//! messages before and after, and the return codes. The work itself is the
//! library's ([`super::delegate`]: `compare_location`, `restore`).
//!
//! `compare -c` sets the exit code 0.13 gives when `quit` follows:
//! 1 no differences, 2 differences, 3 files that could not be checked.

use std::path::{Path, PathBuf};

use bb_format::BoxTime;
use bb_proto::message::flags;

use super::delegate::compare::{CompareOptions, CompareReport, CompareSink, compare_location};
use super::delegate::restore::{RestoreOptions, RestoreOutcome, restore as restore_dir};
use super::parse::{Opts, object_id};
use super::{Console, Level, QueryContext, return_code};

struct Sink<'a>(&'a mut Console);

impl CompareSink for Sink<'_> {
    fn line(&mut self, level: Level, text: &[u8]) {
        self.0.log(level, text);
    }
}

fn now() -> BoxTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as BoxTime)
        .unwrap_or(0)
}

/// When the last sync started (its file in the data directory), less
/// MinimumFileAge: files changed after it may rightly differ.
fn latest_upload_time(ctx: &mut QueryContext) -> BoxTime {
    let stamp = ctx
        .compare
        .data_directory
        .as_ref()
        .and_then(|d| std::fs::metadata(d.join("last_sync_start")).ok());
    match stamp {
        Some(md) => {
            crate::localfs::mtime_of(&md) - ctx.compare.minimum_file_age.as_micros() as BoxTime
        }
        None => {
            ctx.console.warning(
                "Failed to determine the time of the last synchronisation -- checks not performed.",
            );
            now()
        }
    }
}

fn add(total: &mut CompareReport, r: &CompareReport) {
    total.differences += r.differences;
    total.differences_explained_by_mod_time += r.differences_explained_by_mod_time;
    total.excluded_dirs += r.excluded_dirs;
    total.excluded_files += r.excluded_files;
    total.unchecked_files += r.unchecked_files;
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
            let changed = std::fs::metadata(local)
                .is_ok_and(|md| crate::localfs::ctime_of(&md) > opts.latest_file_upload_time);
            if changed {
                total.differences_explained_by_mod_time += 1;
                ctx.console.info(
                    "(the file above was modified after the last sync time -- might be reason for difference)",
                );
            }
            return;
        }
        Err(e) => {
            ctx.console.error(format!("Failed to find directory: {e}"));
            total.unchecked_files += 1;
            return;
        }
    };
    let QueryContext {
        store,
        keys,
        console,
        ..
    } = ctx;
    match compare_location(store.as_read(), keys, dir, local, opts, &mut Sink(console)) {
        Ok(r) => add(total, &r),
        Err(e) => {
            console.error(format!("Failed to compare: {e}"));
            total.unchecked_files += 1;
        }
    }
}

/// `compare -a`, `compare -l <location>`, `compare -E <store-dir> <local-dir>`.
pub fn compare(ctx: &mut QueryContext, args: &[Vec<u8>], o: &Opts) {
    let latest = latest_upload_time(ctx);
    let opts = CompareOptions {
        quick: o.has('q'),
        ignore_attributes: o.has('A'),
        ignore_excludes: o.has('E'),
        quiet: o.has('Q'),
        latest_file_upload_time: latest,
    };
    if opts.quick {
        ctx.console
            .warning("Quick compare used -- file attributes are not checked.");
    }
    let mut total = CompareReport::default();
    let (a, l) = (o.has('a'), o.has('l'));
    if !l && a && args.is_empty() {
        let locations = ctx.compare.locations.clone();
        for (name, path) in &locations {
            let store_path = format!("/{name}");
            compare_dirs(ctx, store_path.as_bytes(), path, &opts, &mut total);
        }
    } else if l && !a && args.len() == 1 {
        let found = ctx
            .compare
            .locations
            .iter()
            .find(|(n, _)| n.as_bytes() == args[0].as_slice())
            .cloned();
        match found {
            Some((name, path)) => {
                let store_path = format!("/{name}");
                compare_dirs(ctx, store_path.as_bytes(), &path, &opts, &mut total);
            }
            None => {
                let mut m = b"Location ".to_vec();
                m.extend_from_slice(&args[0]);
                m.extend_from_slice(b" does not exist.");
                ctx.console.error(m);
            }
        }
    } else if !l && !a && args.len() == 2 {
        if !opts.ignore_excludes {
            ctx.console.error(
                "Cannot use excludes on directory to directory comparison -- use -E flag to \
                 specify ignored excludes.",
            );
            return;
        }
        let local: PathBuf = ctx.local_path(&args[1]);
        compare_dirs(ctx, &args[0], &local, &opts, &mut total);
    } else {
        ctx.console.error(
            "Incorrect usage.\ncompare -a\n or compare -l <location-name>\n or compare \
             <store-dir-name> <local-dir-name>",
        );
        return;
    }
    if !opts.quiet {
        ctx.console.info(format!(
            "[ {} (of {}) differences probably due to file modifications after the last upload ]",
            total.differences_explained_by_mod_time, total.differences
        ));
    }
    ctx.console.info(format!(
        "Differences: {} ({} dirs excluded, {} files excluded, {} files not checked)",
        total.differences, total.excluded_dirs, total.excluded_files, total.unchecked_files
    ));
    if o.has('c') {
        ctx.set_return_code(if total.unchecked_files != 0 {
            return_code::COMPARE_ERROR
        } else if total.differences != 0 {
            return_code::COMPARE_DIFFERENT
        } else {
            return_code::COMPARE_SAME
        });
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
    let local = ctx.local_path(args.get(1).unwrap_or(&args[0]));
    let opts = RestoreOptions {
        deleted,
        resume: o.has('r'),
        force: o.has('f'),
    };
    let r = restore_dir(ctx.store.as_read(), &ctx.keys, dir, &local, &opts);
    match r {
        Err(e) => ctx.fail(format!("Failed to restore: {e}")),
        Ok(rep) => match rep.outcome {
            RestoreOutcome::Complete => ctx.console.info("Restore complete."),
            RestoreOutcome::CompleteWithErrors => ctx
                .console
                .warning("Restore complete, but some files could not be restored."),
            RestoreOutcome::ResumePossible => {
                ctx.fail("Resume possible -- repeat command with -r flag to resume.")
            }
            RestoreOutcome::TargetExists => ctx.fail(
                "The target directory exists. You cannot restore over an existing directory.",
            ),
            RestoreOutcome::TargetPathNotFound => ctx.fail(
                "The target directory path does not exist.\nTo restore to a directory whose \
                 parent does not exist, create the parent first.",
            ),
        },
    }
}
