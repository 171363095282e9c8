//! `delete` and `undelete` (read/write logins only, `-w`): the entry is found
//! as `get` finds it (by name, with a directory part, or `-i` by ID in the
//! current directory); a file is deleted or undeleted in its directory, a
//! directory as a whole. Failures are reported; like 0.13, they leave the
//! return code at 0.

use bb_format::directory::Entry;
use bb_proto::message::flags;

use super::QueryContext;
use super::parse::Opts;

const NEEDS_RW: &str =
    "This command requires a read-write connection. Please reconnect with the -w option.";

/// `undelete <name>`, `undelete -i <id>`.
pub fn undelete(ctx: &mut QueryContext, args: &[Vec<u8>], opts: &Opts) {
    if !ctx.read_write {
        ctx.console.error(NEEDS_RW);
        return;
    }
    if args.len() != 1 {
        ctx.console
            .error("Incorrect usage. undelete <name> or undelete -i <object-id>");
        return;
    }
    let Some(f) = ctx.find_file(
        &args[0],
        opts.has('i'),
        // 0.13 passes "exclude nothing" (0) as the must-have mask: everything.
        flags::EXCLUDE_NOTHING,
        flags::EXCLUDE_NOTHING,
    ) else {
        return;
    };
    let r = if f.flags & Entry::FILE != 0 {
        ctx.store.undelete_file(f.dir, f.id).map(|_| ())
    } else {
        ctx.store.undelete_directory(f.id)
    };
    if let Err(e) = r {
        ctx.console.error(format!("Failed to undelete object: {e}"));
    }
}

/// `delete <name>`, `delete -i <id>`.
pub fn delete(ctx: &mut QueryContext, args: &[Vec<u8>], opts: &Opts) {
    if !ctx.read_write {
        ctx.console.error(NEEDS_RW);
        return;
    }
    if args.len() != 1 {
        ctx.console.error("Incorrect usage. delete <name>");
        return;
    }
    let Some(f) = ctx.find_file(
        &args[0],
        opts.has('i'),
        flags::EXCLUDE_NOTHING,
        flags::OLD_VERSION | flags::DELETED,
    ) else {
        return;
    };
    let r = if f.flags & Entry::FILE != 0 {
        ctx.store.delete_file(f.dir, &f.encoded_name).map(|_| ())
    } else {
        ctx.store.delete_directory(f.id)
    };
    if let Err(e) = r {
        ctx.console.error(format!("Failed to delete object: {e}"));
    }
}
