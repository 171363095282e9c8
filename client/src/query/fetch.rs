//! `get` (a file decoded, with its attributes, under its own name or a given
//! one; `-i` by ID for old and deleted versions) and `getobject` (an object's
//! stored bytes, undecoded), with 0.13's checks and messages: the local file
//! must not exist, and a failed fetch leaves nothing behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use bb_format::Keys;
use bb_format::attributes::UnixAttributes;
use bb_format::decode::StreamDecoder;
use bb_proto::ErrorCode;
use bb_proto::message::flags;
use bb_remote::StoreRead;

use super::QueryContext;
use super::parse::{Opts, object_id};
use crate::localfs::{ApplyOptions, apply_attributes};

/// Whether 0.13 would refuse to write to `p`: it exists, or cannot be
/// checked (`stat() == 0 || errno != ENOENT`).
fn exists_or_unknown(p: &Path) -> bool {
    match std::fs::metadata(p) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// `get <remote> [<local>]`, `get -i <id> <local>`.
pub fn get(ctx: &mut QueryContext, args: &[Vec<u8>], opts: &Opts) {
    let by_id = opts.has('i');
    if args.is_empty() || (by_id && args.len() != 2) || args.len() > 2 {
        ctx.console.error(
            "Incorrect usage.\nget <remote-filename> [<local-filename>] or\n\
             get -i <object-id> <local-filename>",
        );
        return;
    }
    let exclude = if by_id {
        flags::EXCLUDE_NOTHING
    } else {
        flags::OLD_VERSION | flags::DELETED
    };
    let Some(found) = ctx.find_file(&args[0], by_id, flags::FILE, exclude) else {
        return;
    };
    let local_name = if args.len() == 2 {
        args[1].clone()
    } else {
        found.name.clone()
    };
    let local = ctx.local_path(&local_name);
    if exists_or_unknown(&local) {
        let mut m = b"The local file ".to_vec();
        m.extend_from_slice(&local_name);
        m.extend_from_slice(b" already exists, will not overwrite it.");
        ctx.fail(m);
        return;
    }
    match fetch_file(ctx.store.as_read(), &ctx.keys, found.dir, found.id, &local) {
        Ok(()) => ctx
            .console
            .info(format!("Object ID {:#x} fetched successfully.", found.id)),
        Err(e) => {
            let _ = std::fs::remove_file(&local);
            ctx.console.error(format!("Failed to fetch file: {e}"));
        }
    }
}

/// Downloads file `id` of directory `dir` and writes it, decoded, to `local`
/// (which must not exist): a symlink if its attributes say so, else a file;
/// then its attributes (owner only as root, as 0.13).
pub fn fetch_file(
    store: &mut dyn StoreRead,
    keys: &Keys,
    dir: i64,
    id: i64,
    local: &Path,
) -> crate::Result<()> {
    let what = || format!("object {id:#x}");
    let reader = store.open_file(dir, id)?;
    let mut dec = StreamDecoder::new(keys, reader).map_err(|e| crate::Error::format(what(), e))?;
    let attrs = UnixAttributes::decrypt(keys, dec.attributes())
        .map_err(|e| crate::Error::format(what(), e))?;
    let symlink = attrs.as_ref().and_then(|a| {
        a.is_symlink()
            .then(|| a.symlink_target.clone().unwrap_or_default())
    });
    if let Some(target) = symlink {
        while dec
            .next_block()
            .map_err(|e| crate::Error::format(what(), e))?
            .is_some()
        {}
        use std::os::unix::ffi::OsStrExt;
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), local)
            .map_err(|e| crate::Error::local("symlink", local, e))?;
    } else {
        let mut f: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(local)
            .map_err(|e| crate::Error::local("create", local, e))?;
        while let Some(block) = dec
            .next_block()
            .map_err(|e| crate::Error::format(what(), e))?
        {
            f.write_all(block)
                .map_err(|e| crate::Error::local("write", local, e))?;
        }
        f.sync_all()
            .map_err(|e| crate::Error::local("write", local, e))?;
    }
    drop(dec);
    if let Some(a) = attrs {
        apply_attributes(local, &a, ApplyOptions::as_013())
            .map_err(|e| crate::Error::local("set attributes of", local, e))?;
    }
    Ok(())
}

/// `getobject <id> <local>`.
pub fn getobject(ctx: &mut QueryContext, args: &[Vec<u8>]) {
    if args.len() != 2 {
        ctx.console
            .error("Incorrect usage. getobject <object-id> <local-filename>");
        return;
    }
    let Some(id) = object_id(&args[0]) else {
        let mut m = b"Not a valid object ID (specified in hex): ".to_vec();
        m.extend_from_slice(&args[0]);
        ctx.console.error(m);
        return;
    };
    let local = ctx.local_path(&args[1]);
    if exists_or_unknown(&local) {
        // 0.13's message, unbalanced quote and all.
        let mut m = b"The local file '".to_vec();
        m.extend_from_slice(&args[1]);
        m.extend_from_slice(b" already exists.");
        ctx.console.error(m);
        return;
    }
    let mut f = match OpenOptions::new().write(true).create_new(true).open(&local) {
        Ok(f) => f,
        Err(e) => {
            ctx.console.error(format!(
                "Failed to open file: {}: {e}",
                String::from_utf8_lossy(&args[1])
            ));
            return;
        }
    };
    let r = ctx.store.as_read().get_object(id, &mut f);
    drop(f);
    match r {
        Ok(_) => ctx
            .console
            .info(format!("Object ID {id:#x} fetched successfully.")),
        Err(e) => {
            let _ = std::fs::remove_file(&local);
            if e.code() == Some(ErrorCode::DoesNotExist) {
                ctx.console
                    .error(format!("Object ID {id:#x} does not exist on store."));
            } else {
                ctx.console.error("Error occured fetching object.");
            }
        }
    }
}
