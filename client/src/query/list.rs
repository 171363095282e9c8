//! `ls` / `list`: 0.13's listing, byte for byte.
//!
//! One line per entry: ID (`%08x`, not with `-I`), flags `fdXoR` + `a` when
//! the entry carries attributes (not with `-F`), times (`-T` UTC, `-t` local;
//! `*` when the entry's attributes give the same time, `~time` when not,
//! a space when it has none; `-a` compares the attribute change time
//! instead), the attribute hash (`-h`, `%016x` with no space after it, as
//! 0.13 prints it), the size in blocks (`-s`, `%05d`), the path below the
//! listed directory and the raw name bytes. Sorted by name with directories
//! first, unless `-i` (ID), `-S` (size), `-U` (unsorted), `-D` (directories
//! among the files), `-r` (reversed); with libstdc++'s unstable order for equal
//! keys ([`super::sort`]). `-R` recurses, `-o`/`-d` include old and deleted
//! entries.

use bb_format::directory::Entry;
use bb_format::filename::ENCODING_CLEAR;
use bb_proto::message::flags;

use super::QueryContext;
use super::console::format_iso;
use super::nav::exclude_flags;
use super::parse::Opts;
use super::sort::cxx_sort;

/// 0.13's `BACKUPSTOREDIRECTORY_ENTRY_FLAGS_DISPLAY_NAMES`.
const FLAG_LETTERS: &[u8; 5] = b"fdXoR";

/// `ls [options] [directory]`.
pub fn command(ctx: &mut QueryContext, args: &[Vec<u8>], opts: &Opts) {
    let mut dir = ctx.current_dir();
    if let Some(path) = args.first() {
        match ctx.find_directory(path, opts.has('o'), opts.has('d')) {
            Ok(Some((id, _))) => dir = id,
            Ok(None) => {
                let mut m = b"Directory '".to_vec();
                m.extend_from_slice(path);
                m.extend_from_slice(b"' not found on store.");
                ctx.fail(m);
                return;
            }
            Err(e) => {
                ctx.store_failed("Failed to list directory", &e);
                return;
            }
        }
    }
    list(ctx, dir, b"", opts, true);
}

fn list(ctx: &mut QueryContext, dir: i64, root: &[u8], opts: &Opts, first_level: bool) {
    let exclude = exclude_flags(opts.has('o'), opts.has('d'));
    let listing =
        match ctx
            .store
            .as_read()
            .list_directory(dir, flags::INCLUDE_EVERYTHING, exclude, true)
        {
            Ok(l) => l,
            Err(e) => {
                ctx.store_failed("Failed to list directory", &e);
                return;
            }
        };
    let names: Vec<Vec<u8>> = listing
        .entries
        .iter()
        .map(|e| ctx.clear_name(&e.name))
        .collect();
    let mut order: Vec<usize> = (0..listing.entries.len()).collect();
    sort(&mut order, &listing.entries, &names, opts);

    for i in order {
        let e = &listing.entries[i];
        let line = format_entry(ctx, e, &names[i], root, opts, first_level);
        ctx.console.print(&line);
        if e.flags & Entry::DIR != 0 && opts.has('R') {
            let mut sub = root.to_vec();
            if !first_level {
                sub.push(b'/');
            }
            sub.extend_from_slice(&names[i]);
            list(ctx, e.object_id, &sub, opts, false);
        }
    }
}

/// Orders `order` (indices into `entries`) as 0.13's `ls` does.
fn sort(order: &mut [usize], entries: &[Entry], names: &[Vec<u8>], opts: &Opts) {
    #[derive(Clone, Copy)]
    enum Key {
        Id,
        Size,
        Name,
    }
    let key = if opts.has('i') {
        Key::Id
    } else if opts.has('S') {
        Key::Size
    } else if opts.has('U') {
        return;
    } else {
        Key::Name
    };
    let dirs_first = !opts.has('D');
    let reverse = opts.has('r');
    cxx_sort(order, &mut |&a, &b| {
        let (ea, eb) = (&entries[a], &entries[b]);
        if dirs_first {
            let (da, db) = (ea.flags & Entry::DIR != 0, eb.flags & Entry::DIR != 0);
            if da && !db {
                return true;
            }
            if !da && db {
                return false;
            }
        }
        let less = match key {
            Key::Id => ea.object_id < eb.object_id,
            Key::Size => ea.size_in_blocks < eb.size_in_blocks,
            Key::Name => names[a] < names[b],
        };
        less != reverse
    });
}

fn format_entry(
    ctx: &QueryContext,
    e: &Entry,
    name: &[u8],
    root: &[u8],
    opts: &Opts,
    first_level: bool,
) -> Vec<u8> {
    let mut line = Vec::with_capacity(64 + name.len() + root.len());
    if !opts.has('I') {
        line.extend_from_slice(format!("{:08x} ", e.object_id as u64).as_bytes());
    }
    if !opts.has('F') {
        for (bit, letter) in FLAG_LETTERS.iter().enumerate() {
            line.push(if e.flags & (1 << bit) != 0 {
                *letter
            } else {
                b'-'
            });
        }
        line.push(if e.attributes.is_empty() { b'-' } else { b'a' });
        line.push(b' ');
        if (e.flags as i16) >> FLAG_LETTERS.len() != 0 {
            line.extend_from_slice(b"[ERROR: Entry has additional flags set] ");
        }
    }
    if opts.has('T') {
        line.extend_from_slice(time_string(ctx, e, false, opts.has('a')).as_bytes());
        line.push(b' ');
    }
    if opts.has('t') {
        line.extend_from_slice(time_string(ctx, e, true, opts.has('a')).as_bytes());
        line.push(b' ');
    }
    if opts.has('h') {
        line.extend_from_slice(format!("{:016x}", e.attributes_hash).as_bytes());
    }
    if opts.has('s') {
        line.extend_from_slice(format!("{:05} ", e.size_in_blocks).as_bytes());
    }
    if !first_level {
        line.extend_from_slice(root);
        line.push(b'/');
    }
    line.extend_from_slice(name);
    if e.name.encoding() == ENCODING_CLEAR {
        line.extend_from_slice(b" [FILENAME NOT ENCRYPTED]");
    }
    line.push(b'\n');
    line
}

/// 0.13's `GetTimeString`: the entry's time, then `*` if its attributes
/// carry the same time (the change time with `-a`), `~<time>` if another,
/// or a space if the entry has no attributes.
fn time_string(ctx: &QueryContext, e: &Entry, local: bool, attr_time: bool) -> String {
    let mut s = format_iso(e.mtime, local, 'T');
    if e.attributes.is_empty() {
        s.push(' ');
        return s;
    }
    match bb_format::attributes::UnixAttributes::decrypt(&ctx.keys, &e.attributes) {
        Ok(Some(a)) => {
            let t = if attr_time { a.attr_mtime } else { a.mtime };
            if t == e.mtime {
                s.push('*');
            } else {
                s.push('~');
                s.push_str(&format_iso(t, local, 'T'));
            }
        }
        // Undecodable attributes: 0.13 gives up on the listing; we say so
        // in the time column and go on.
        _ => s.push_str("~?"),
    }
    s
}
