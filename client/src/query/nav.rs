//! Store paths as 0.13 resolves them (`FindDirectoryObjectID`, `FindFileID`)
//! and the commands that move around: `cd`, `pwd`, `lcd`.
//!
//! A store path is split at `/`; a leading `/` starts at the root, otherwise
//! at the current directory; empty parts and `.` are skipped, `..` goes up
//! (and stays at the root). Each other part is looked up among the
//! directories of the listing (old versions and deleted directories only when
//! asked), first match in the directory's order. Names are compared after
//! decrypting them with the keys.

use bb_format::EncodedName;
use bb_proto::message::flags;

use super::QueryContext;
use super::parse::{Opts, object_id};

/// The stack of (name, ID) from the root down.
pub type Stack = Vec<(Vec<u8>, i64)>;

/// A file (or directory) found by [`find_file`].
#[derive(Debug, Clone)]
pub struct Found {
    pub dir: i64,
    pub id: i64,
    pub flags: u16,
    /// The entry's name, decrypted.
    pub name: Vec<u8>,
    pub encoded_name: EncodedName,
}

/// `ListDirectory`'s exclude mask for the `-o` / `-d` flags.
pub fn exclude_flags(allow_old: bool, allow_deleted: bool) -> i16 {
    let mut x = flags::EXCLUDE_NOTHING;
    if !allow_old {
        x |= flags::OLD_VERSION;
    }
    if !allow_deleted {
        x |= flags::DELETED;
    }
    x
}

impl QueryContext {
    pub(crate) fn current_dir(&self) -> i64 {
        self.stack
            .last()
            .map(|(_, id)| *id)
            .unwrap_or(flags::ROOT_DIRECTORY)
    }

    /// `/` or `/a/b` (names as typed at `cd`).
    pub(crate) fn current_dir_name(&self) -> Vec<u8> {
        if self.stack.is_empty() {
            return b"/".to_vec();
        }
        let mut r = Vec::new();
        for (n, _) in &self.stack {
            r.push(b'/');
            r.extend_from_slice(n);
        }
        r
    }

    /// Decrypted name of an encoded one, or 0.13's placeholder.
    pub(crate) fn clear_name(&self, n: &EncodedName) -> Vec<u8> {
        n.decrypt(&self.keys)
            .unwrap_or_else(|_| b"<decrypt failed>".to_vec())
    }

    /// Logs a failed store operation and sets the command-error code.
    pub(crate) fn store_failed(&mut self, what: &str, e: &bb_remote::Error) {
        self.fail(format!("{what}: {e}"));
    }

    /// `FindDirectoryObjectID`: the directory's ID and the stack leading to
    /// it, `Ok(None)` when a part is not found.
    pub(crate) fn find_directory(
        &mut self,
        path: &[u8],
        allow_old: bool,
        allow_deleted: bool,
    ) -> bb_remote::Result<Option<(i64, Stack)>> {
        let mut stack: Stack = if path.first() == Some(&b'/') {
            Vec::new()
        } else {
            self.stack.clone()
        };
        let exclude = exclude_flags(allow_old, allow_deleted);
        for part in path.split(|&c| c == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    stack.pop();
                }
                _ => {
                    let dir = stack
                        .last()
                        .map(|(_, id)| *id)
                        .unwrap_or(flags::ROOT_DIRECTORY);
                    let listing =
                        self.store
                            .as_read()
                            .list_directory(dir, flags::DIR, exclude, true)?;
                    let keys = &self.keys;
                    let found = listing
                        .entries
                        .iter()
                        .find(|e| e.name.decrypt(keys).is_ok_and(|n| n.as_slice() == part));
                    match found {
                        Some(e) => stack.push((part.to_vec(), e.object_id)),
                        None => return Ok(None),
                    }
                }
            }
        }
        let id = stack
            .last()
            .map(|(_, id)| *id)
            .unwrap_or(flags::ROOT_DIRECTORY);
        Ok(Some((id, stack)))
    }

    /// `FindFileID`: by name (which may have a directory part) or, with
    /// `by_id`, by hex ID in the current directory, among the entries that
    /// pass `include`/`exclude`. Reports 0.13's messages and returns `None`
    /// when nothing is found (the return code is left alone, as in 0.13).
    pub(crate) fn find_file(
        &mut self,
        arg: &[u8],
        by_id: bool,
        include: i16,
        exclude: i16,
    ) -> Option<Found> {
        let mut dir = self.current_dir();
        let mut name: &[u8] = arg;
        if !by_id && let Some(slash) = arg.iter().rposition(|&c| c == b'/') {
            let dir_name = &arg[..slash];
            name = &arg[slash + 1..];
            match self.find_directory(dir_name, false, false) {
                Ok(Some((id, _))) => dir = id,
                Ok(None) => {
                    let mut m = b"Directory '".to_vec();
                    m.extend_from_slice(dir_name);
                    m.extend_from_slice(b"' not found.");
                    self.console.error(m);
                    return None;
                }
                Err(e) => {
                    self.store_failed("Failed to find directory", &e);
                    return None;
                }
            }
        }
        let listing = match self
            .store
            .as_read()
            .list_directory(dir, include, exclude, true)
        {
            Ok(l) => l,
            Err(e) => {
                self.store_failed("Failed to list directory", &e);
                return None;
            }
        };
        let entry = if by_id {
            let Some(id) = object_id(arg) else {
                let mut m = b"Not a valid object ID (specified in hex): ".to_vec();
                m.extend_from_slice(arg);
                self.console.error(m);
                return None;
            };
            match listing.entries.iter().find(|e| e.object_id == id) {
                Some(e) => e,
                None => {
                    self.console.error(format!(
                        "File ID {id:#x} not found in current directory on store.\n\
                         (You can only access files by ID from the current directory.)"
                    ));
                    return None;
                }
            }
        } else {
            let keys = &self.keys;
            match listing
                .entries
                .iter()
                .find(|e| e.name.decrypt(keys).is_ok_and(|n| n.as_slice() == name))
            {
                Some(e) => e,
                None => {
                    let mut m = b"Filename '".to_vec();
                    m.extend_from_slice(arg);
                    m.extend_from_slice(
                        b"' not found in current directory on store.\n\
                          (Subdirectories in path not searched.)",
                    );
                    self.console.error(m);
                    return None;
                }
            }
        };
        Some(Found {
            dir,
            id: entry.object_id,
            flags: entry.flags,
            name: self.clear_name(&entry.name),
            encoded_name: entry.name.clone(),
        })
    }
}

/// `pwd`.
pub fn pwd(ctx: &mut QueryContext) {
    let mut m = ctx.current_dir_name();
    m.extend_from_slice(format!(" ({:#x})", ctx.current_dir()).as_bytes());
    ctx.console.notice(m);
}

/// `cd [-o] [-d] <directory>`.
pub fn cd(ctx: &mut QueryContext, args: &[Vec<u8>], opts: &Opts) {
    if args.len() != 1 || args[0].is_empty() {
        ctx.fail("Incorrect usage. cd [-o] [-d] <directory>");
        return;
    }
    match ctx.find_directory(&args[0], opts.has('o'), opts.has('d')) {
        Ok(Some((_, stack))) => ctx.stack = stack,
        Ok(None) => {
            let mut m = b"Directory '".to_vec();
            m.extend_from_slice(&args[0]);
            m.extend_from_slice(b"' not found.");
            ctx.fail(m);
        }
        Err(e) => ctx.store_failed("Failed to find directory", &e),
    }
}

/// `lcd <local-directory>`: changes the directory relative local paths start
/// from (the shell's own, not the process's).
pub fn lcd(ctx: &mut QueryContext, args: &[Vec<u8>]) {
    if args.len() != 1 || args[0].is_empty() {
        ctx.fail("Incorrect usage. lcd <local-directory>");
        return;
    }
    let target = ctx.local_path(&args[0]);
    let arg = String::from_utf8_lossy(&args[0]).into_owned();
    let resolved = std::fs::canonicalize(&target).and_then(|p| {
        if std::fs::metadata(&p)?.is_dir() {
            Ok(p)
        } else {
            Err(std::io::Error::from(std::io::ErrorKind::NotADirectory))
        }
    });
    match resolved {
        Ok(p) => {
            ctx.console
                .info(format!("Local current directory is now '{}'.", p.display()));
            ctx.local_dir = p;
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            ctx.fail(format!("Directory '{arg}' does not exist."));
        }
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            ctx.fail(format!(
                "Failed to change to directory '{arg}': {} ({errno})",
                strerror(&e)
            ));
        }
    }
}

/// The C library's wording of an OS error ("Permission denied"), without the
/// "(os error N)" that Rust appends.
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
