//! `bbstoreaccounts`: 0.13's account administration tool — arguments, messages
//! and exit codes as the real tool has them (store.md §2, §4.3, §7.1, §8, §9).
//!
//! Owns: argument parsing (`-c`, `-W`, `-m`, then POSIX order), the console
//! format (everything on stdout as `LEVEL:   text`, 0.13's `Logging`), the size
//! strings, the usage bars of `info`, and each command's messages. The store work
//! itself is in `account`, `housekeep` and `check`. Must not know: sockets.
//!
//! Where 0.13 crashes (a hard limit of 0 divides by zero in `info`) or prints a
//! stack trace (a busy lock), we print the same messages without the crash or
//! the stack frames. Where 0.13 exits with the account lock file left behind (a
//! fatal error after locking), we remove it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bb_format::storeinfo::StoreInfo;
use bb_raid::DiscSet;
use bb_raid::config::RaidConfig;

use crate::accounts::AccountDatabase;
use crate::check::{CheckOptions, check_account};
use crate::error::{Error, Result};
use crate::housekeep::{Housekept, housekeep};
use crate::objects::{
    NamedFile, ObjectRead, ObjectStore, ObjectWrite, RaidObjects, WalkItem, WriteLockGuard,
    account_root,
};
use crate::report::{Level, Reporter, fmt_account};
use bb_console::{Counts, Progress, Term};

/// 0.13's default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/boxbackup/bbstored.conf";

/// What the tool needs from bbstored.conf. Only these two keys are read (with
/// 0.13's config syntax), as 0.13's tool effectively does: it does not care
/// whether the daemon's listening address or certificates are usable.
#[derive(Debug, Clone)]
struct ServerConfig {
    raidfile_conf: PathBuf,
    account_database: PathBuf,
    /// Server.User: 0.13's tool runs as it too, so that what it writes belongs
    /// to the daemon's user.
    user: Option<String>,
}

impl ServerConfig {
    fn load(path: &Path) -> std::result::Result<ServerConfig, String> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: {e}"))?;
        let root = bb_raid::config::parse(&text, &file).map_err(|e| e.to_string())?;
        let raidfile_conf = root.key("RaidFileConf").map_or_else(
            || PathBuf::from("/etc/boxbackup/raidfile.conf"),
            |k| PathBuf::from(&k.value),
        );
        let account_database = root
            .key("AccountDatabase")
            .map(|k| PathBuf::from(&k.value))
            .ok_or_else(|| format!("{file}: the key AccountDatabase is required"))?;
        let user = root
            .block("Server")
            .and_then(|b| b.key("User"))
            .map(|k| k.value.trim().to_owned())
            .filter(|u| !u.is_empty());
        Ok(ServerConfig {
            raidfile_conf,
            account_database,
            user,
        })
    }
}

/// 0.13's usage text (printed on stdout, exit status 2).
pub const USAGE: &str = "Usage: bbstoreaccounts [-c config_file] action account_id [args]
Account ID is integer specified in hex

Commands (and arguments):
  create <account> <discnum> <softlimit> <hardlimit>
        Creates the specified account number (in hex with no 0x) on the
        specified raidfile disc set number (see raidfile.conf for valid
        set numbers) with the specified soft and hard limits (in blocks
        if suffixed with B, MB with M, GB with G)
  info [-m] <account>
        Prints information about the specified account including number
        of blocks used. The -m option enable machine-readable output.
  enabled <accounts> <yes|no>
        Sets the account as enabled or disabled for new logins.
  setlimit <accounts> <softlimit> <hardlimit>
        Changes the limits of the account as specified. Numbers are
        interpreted as for the 'create' command (suffixed with B, M or G)
  delete <account> [yes]
        Deletes the specified account. Prompts for confirmation unless
        the optional 'yes' parameter is provided.
  check <account> [fix] [quiet]
        Checks the specified account for errors. If the 'fix' option is
        provided, any errors discovered that can be fixed automatically
        will be fixed. If the 'quiet' option is provided, less output is
        produced.
  name <account> <new name>
        Changes the \"name\" of the account to the specified string.
        The name is purely cosmetic and intended to make it easier to
        identify your accounts.
  housekeep <account>
        Runs housekeeping immediately on the account. If it cannot be locked,
        bbstoreaccounts returns an error status code (1), otherwise success
        (0) even if any errors were fixed by housekeeping.
";

/// 0.13 refuses a soft limit above this percentage of the hard limit with a warning.
const MAX_SOFT_LIMIT_PERCENT: i64 = 97;
/// Tries (one second apart) to take an account's lock for a modifying command.
const LOCK_TRIES: u32 = 8;

/// The console: 0.13's log lines and plain output, on one stream.
#[derive(Clone)]
pub struct Console {
    out: Arc<Mutex<dyn Write + Send>>,
    /// Most verbose level shown (`-W`); 0.13's default shows everything.
    filter: Level,
    /// `check`'s progress line, on a terminal unless `quiet` (shared by clones).
    progress: Option<Arc<Mutex<Progress>>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("filter", &self.filter)
            .finish()
    }
}

impl Console {
    pub fn new(out: Arc<Mutex<dyn Write + Send>>) -> Console {
        Console {
            out,
            filter: Level::Trace,
            progress: None,
        }
    }

    /// This console with a progress line on `term` (none: no line).
    fn with_progress(mut self, term: Option<Term>) -> Console {
        self.progress = term.map(|t| Arc::new(Mutex::new(Progress::new(Some(t)))));
        self
    }

    /// Wipes the progress line for good.
    fn progress_done(&self) {
        if let Some(p) = &self.progress {
            p.lock().unwrap_or_else(|p| p.into_inner()).finish();
        }
    }

    /// Plain output (info lines, the usage text). EPIPE and the like are ignored:
    /// a tool stays quiet when its reader goes away.
    pub fn print(&self, text: &str) {
        let write = || {
            let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        };
        // Around the progress line, so that a message never lands inside it.
        let progress = self
            .progress
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(|p| p.into_inner()));
        match progress.as_ref().and_then(|p| p.term()) {
            Some(term) => term.suspend(write),
            None => write(),
        }
    }

    pub fn log(&self, level: Level, message: &str) {
        if level <= self.filter {
            self.print(&format!("{}{message}\n", level.console_prefix()));
        }
    }
}

impl Reporter for Console {
    fn report(&mut self, level: Level, message: &str) {
        self.log(level, message);
    }

    fn progress(&mut self, what: &'static str, done: u64, total: u64, bytes: u64) {
        if let Some(p) = &self.progress {
            p.lock().unwrap_or_else(|p| p.into_inner()).update(&Counts {
                verb: "Checking",
                noun: what,
                items: done,
                items_total: Some(total),
                bytes,
                ..Counts::default()
            });
        }
    }
}

/// The object store of the tool: the account's `RaidObjects`, with 0.13's
/// named-lock messages around the write lock and its retries.
#[derive(Debug, Clone)]
struct TracedStore {
    inner: RaidObjects,
    lock_path: PathBuf,
    console: Console,
    tries: u32,
    /// Shared with the guards it hands out, see `TracedGuard::silent`.
    silent: Arc<AtomicBool>,
}

struct TracedGuard {
    _inner: Box<dyn WriteLockGuard>,
    console: Console,
    path: PathBuf,
    /// Set when 0.13 would have exited without releasing (a fatal error after
    /// locking): we still remove the lock, but print nothing.
    silent: Arc<AtomicBool>,
}

impl std::fmt::Debug for TracedGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedGuard")
            .field("path", &self.path)
            .finish()
    }
}

impl WriteLockGuard for TracedGuard {}

impl Drop for TracedGuard {
    fn drop(&mut self) {
        // The inner guard unlinks the file when it drops, right after this line.
        if self.silent.load(Ordering::Relaxed) {
            return;
        }
        self.console.log(
            Level::Trace,
            &format!("Released lock and deleted lockfile {}", self.path.display()),
        );
    }
}

impl ObjectStore for TracedStore {
    fn account_id(&self) -> u32 {
        self.inner.account_id()
    }
    fn block_size(&self) -> u64 {
        self.inner.block_size()
    }
    fn usage_in_blocks(&self, size: u64) -> u64 {
        self.inner.usage_in_blocks(size)
    }
    fn create_object(&self, id: i64, replace: bool) -> Result<Box<dyn ObjectWrite>> {
        self.inner.create_object(id, replace)
    }
    fn create_temp(
        &self,
        purpose: crate::objects::TempPurpose,
    ) -> Result<Box<dyn crate::objects::TempObject>> {
        self.inner.create_temp(purpose)
    }
    fn open_object(&self, id: i64) -> Result<Box<dyn ObjectRead>> {
        self.inner.open_object(id)
    }
    fn object_exists(&self, id: i64) -> Result<bool> {
        self.inner.object_exists(id)
    }
    fn delete_object(&self, id: i64) -> Result<()> {
        self.inner.delete_object(id)
    }
    fn read_named(&self, file: NamedFile) -> Result<Option<Vec<u8>>> {
        self.inner.read_named(file)
    }
    fn write_named(&self, file: NamedFile, data: &[u8]) -> Result<()> {
        self.inner.write_named(file, data)
    }
    fn patch_named(&self, file: NamedFile, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.patch_named(file, offset, data)
    }
    fn sync_named(&self, file: NamedFile) -> Result<()> {
        self.inner.sync_named(file)
    }
    fn replace_named(&self, from: NamedFile, to: NamedFile) -> Result<()> {
        self.inner.replace_named(from, to)
    }
    fn delete_named(&self, file: NamedFile) -> Result<bool> {
        self.inner.delete_named(file)
    }
    fn walk(&self, visit: &mut dyn FnMut(WalkItem) -> Result<()>) -> Result<()> {
        self.inner.walk(visit)
    }
    fn lock_for_writing(&self) -> Result<Box<dyn WriteLockGuard>> {
        let p = self.lock_path.display().to_string();
        let mut left = self.tries;
        loop {
            self.console.log(
                Level::Trace,
                &format!("Trying to create lockfile {p} without special flags"),
            );
            self.console.log(
                Level::Trace,
                &format!("Trying to lock lockfile {p} using flock()"),
            );
            match self.inner.lock_for_writing() {
                Ok(g) => {
                    self.console
                        .log(Level::Trace, &format!("Successfully locked lockfile {p}"));
                    return Ok(Box::new(TracedGuard {
                        _inner: g,
                        console: self.console.clone(),
                        path: self.lock_path.clone(),
                        silent: self.silent.clone(),
                    }));
                }
                Err(Error::CannotLockStoreForWriting { account }) => {
                    self.console.log(
                        Level::Notice,
                        &format!(
                            "Failed to lock lockfile with flock(): {p}: already locked by another process"
                        ),
                    );
                    left -= 1;
                    if left == 0 {
                        return Err(Error::CannotLockStoreForWriting { account });
                    }
                    if self.tries > 1 {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    fn account_exists(&self) -> Result<bool> {
        self.inner.account_exists()
    }
    fn create_account_storage(&self) -> Result<()> {
        self.inner.create_account_storage()
    }
    fn destroy_account_storage(&self) -> Result<()> {
        self.inner.destroy_account_storage()
    }
}

/// Why a command stops early: an exit status, its messages already printed.
struct Exit(i32);

type Cmd<T> = std::result::Result<T, Exit>;

struct Tool {
    console: Console,
    config: ServerConfig,
    raid: RaidConfig,
    machine: bool,
}

/// `sscanf(s, "%x")` into an int32: blanks, a sign, an optional `0x`, then hex
/// digits (wrapping like the C library); `None` if no digit.
fn scan_hex(s: &str) -> Option<u32> {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let t2 = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .filter(|r| r.bytes().next().is_some_and(|b| b.is_ascii_hexdigit()))
        .unwrap_or(t);
    let digits: Vec<u32> = t2.chars().map_while(|c| c.to_digit(16)).collect();
    if digits.is_empty() {
        return None;
    }
    let v = digits
        .iter()
        .fold(0u64, |a, &d| a.wrapping_mul(16).wrapping_add(u64::from(d)));
    let v = if neg { v.wrapping_neg() } else { v };
    Some(v as u32)
}

/// `sscanf(s, "%d")`.
fn scan_dec(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    let v: i64 = digits.parse::<i64>().ok()? as i32 as i64;
    Some(if neg { -v } else { v })
}

/// C `strtol(s, &end, 0)`: the value (saturated like glibc's) and the rest.
fn strtol(s: &str) -> Option<(i64, &str)> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let hex_body = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .filter(|r| r.bytes().next().is_some_and(|b| b.is_ascii_hexdigit()));
    let (radix, body) = match hex_body {
        Some(r) => (16, r),
        None if t.starts_with('0') => (8, t),
        None => (10, t),
    };
    let n = body.chars().take_while(|c| c.is_digit(radix)).count();
    if n == 0 {
        return None;
    }
    let mut v: i128 = 0;
    for c in body[..n].chars() {
        v = (v * i128::from(radix) + i128::from(c.to_digit(radix).unwrap_or(0))).min(1 << 70);
    }
    let v = if neg { -v } else { v };
    let v = v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    Some((v, &body[n..]))
}

/// 0.13's `HumanReadableSize`: two decimals and B, kB, MB or GB.
pub fn human_readable_size(bytes: i64) -> String {
    let mut v = bytes as f64;
    let mut units = " B";
    for u in ["kB", "MB", "GB"] {
        if v > 1024.0 {
            v /= 1024.0;
            units = u;
        }
    }
    format!("{v:.2} {units}")
}

/// 0.13's `FormatUsageBar`. A zero maximum (0.13 divides by zero and dies) shows 0%.
pub fn format_usage_bar(blocks: i64, bytes: i64, max: i64, machine: bool) -> String {
    let pct = if max == 0 {
        0
    } else {
        bytes.wrapping_mul(100) / max
    };
    if machine {
        return format!("{} kB, {pct}%", bytes >> 10);
    }
    let stars = if max == 0 {
        0
    } else {
        (bytes.wrapping_mul(16) / max) as i32 as u32
    };
    let stars = stars.min(16) as usize;
    let bar = format!("{}{}", "*".repeat(stars), " ".repeat(16 - stars));
    format!(
        "{blocks:>10} blocks, {:>10}, {pct:>3}% |{bar}|",
        human_readable_size(bytes)
    )
}

/// 0.13's `FormatUsageLineStart`.
pub fn format_usage_line_start(name: &str, machine: bool) -> String {
    if machine {
        format!("{name}: ")
    } else {
        format!("{name:>20}: ")
    }
}

/// The `info` text of an account (0.13's `PrintAccountInfo`).
pub fn format_info(info: &StoreInfo, block_size: i64, machine: bool) -> String {
    let line =
        |name: &str, value: String| format!("{}{value}\n", format_usage_line_start(name, machine));
    let hard = info.blocks_hard_limit;
    let bar = |blocks: i64| {
        format_usage_bar(
            blocks,
            blocks.wrapping_mul(block_size),
            hard.wrapping_mul(block_size),
            machine,
        )
    };
    let mut s = String::new();
    s += &line("Account ID", fmt_account(info.account_id));
    s += &line(
        "Account Name",
        String::from_utf8_lossy(&info.account_name).into_owned(),
    );
    s += &line(
        "Last object ID",
        format!("0x{:x}", info.last_object_id_used),
    );
    s += &line("Used", bar(info.blocks_used));
    s += &line("Current files", bar(info.blocks_in_current_files));
    s += &line("Old files", bar(info.blocks_in_old_files));
    s += &line("Deleted files", bar(info.blocks_in_deleted_files));
    s += &line("Directories", bar(info.blocks_in_directories));
    s += &line("Soft limit", bar(info.blocks_soft_limit));
    s += &line("Hard limit", bar(info.blocks_hard_limit));
    s += &line("Client store marker", info.client_store_marker.to_string());
    s += &line("Current Files", info.num_current_files.to_string());
    s += &line("Old Files", info.num_old_files.to_string());
    s += &line("Deleted Files", info.num_deleted_files.to_string());
    s += &line("Directories", info.num_directories.to_string());
    s += &line(
        "Enabled",
        if info.account_enabled { "yes" } else { "no" }.to_string(),
    );
    s
}

/// Runs `bbstoreaccounts` with `args` (without the program name); returns the
/// exit status. `stdin` answers `delete`'s question; `stderr` gets getopt's
/// complaints (as 0.13's getopt prints them).
pub fn run(
    args: &[String],
    console: Console,
    stdin: &mut dyn BufRead,
    stderr: &mut dyn Write,
) -> i32 {
    let mut console = console;
    let mut config_path = PathBuf::from(DEFAULT_CONFIG);
    let mut machine = false;
    let mut i = 0;
    // getopt("c:W:m"), stopping at the first non-option as 0.13's does.
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a.len() < 2 {
            break;
        }
        for (pos, c) in a[1..].char_indices() {
            match c {
                'm' => machine = true,
                'c' | 'W' => {
                    let rest = &a[1 + pos + c.len_utf8()..];
                    let value = if !rest.is_empty() {
                        rest.to_string()
                    } else if let Some(v) = args.get(i + 1) {
                        i += 1;
                        v.clone()
                    } else {
                        let _ = writeln!(stderr, "option requires an argument -- {c}");
                        console.print(USAGE);
                        return 2;
                    };
                    if c == 'c' {
                        config_path = PathBuf::from(value);
                    } else {
                        match level_named(&value) {
                            Some(l) => console.filter = l,
                            None => {
                                console
                                    .log(Level::Fatal, &format!("Invalid logging level: {value}"));
                                return 2;
                            }
                        }
                    }
                    break;
                }
                other => {
                    let _ = writeln!(stderr, "unknown option -- {other}");
                    console.print(USAGE);
                    return 2;
                }
            }
        }
        i += 1;
    }
    let args = &args[i..];

    let config = match ServerConfig::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            console.log(
                Level::Error,
                &format!("Invalid configuration file {}:{e}", config_path.display()),
            );
            return 1;
        }
    };
    if let Some(user) = &config.user {
        if let Err(e) = crate::user::switch_to(user) {
            console.log(Level::Error, &e.to_string());
            return 1;
        }
    }
    let raid = match RaidConfig::load(&config.raidfile_conf) {
        Ok(r) => r,
        Err(e) => {
            console.log(Level::Fatal, &e.to_string());
            return 1;
        }
    };
    if args.len() < 2 {
        console.print(USAGE);
        return 2;
    }
    let Some(id) = scan_hex(&args[1]) else {
        console.print(USAGE);
        return 2;
    };
    let tool = Tool {
        console,
        config,
        raid,
        machine,
    };
    let r = match args[0].as_str() {
        "create" => tool.create(id, args),
        "info" => tool.info(id),
        "enabled" => tool.enabled(id, args),
        "setlimit" => tool.setlimit(id, args),
        "name" => tool.name(id, args),
        "delete" => tool.delete(id, args, stdin),
        "check" => tool.check(id, args),
        "housekeep" => tool.housekeep(id),
        other => {
            tool.console
                .log(Level::Error, &format!("Unknown command '{other}'."));
            Err(Exit(1))
        }
    };
    match r {
        Ok(code) => code,
        Err(Exit(code)) => code,
    }
}

fn level_named(s: &str) -> Option<Level> {
    Some(match s.to_ascii_lowercase().as_str() {
        "fatal" | "nothing" => Level::Fatal,
        "error" => Level::Error,
        "warning" => Level::Warning,
        "notice" => Level::Notice,
        "info" => Level::Info,
        "trace" | "everything" => Level::Trace,
        _ => return None,
    })
}

impl Tool {
    fn fatal(&self, e: &dyn std::fmt::Display) -> Exit {
        self.console.log(Level::Fatal, &e.to_string());
        Exit(1)
    }

    fn accounts(&self) -> Cmd<AccountDatabase> {
        AccountDatabase::load_or_empty(&self.config.account_database).map_err(|e| self.fatal(&e))
    }

    fn disc_set(&self, number: i64) -> Cmd<DiscSet> {
        u32::try_from(number)
            .ok()
            .and_then(|n| self.raid.set(n).ok())
            .cloned()
            .ok_or_else(|| {
                self.console
                    .log(Level::Fatal, &format!("Disc set {number} does not exist."));
                Exit(1)
            })
    }

    /// 0.13's `SizeStringToBlocks`.
    fn size_to_blocks(&self, s: &str, block_size: u64) -> Cmd<i64> {
        let Some((n, rest)) = strtol(s).filter(|(n, _)| *n != i64::MIN && *n != i64::MAX) else {
            self.console
                .log(Level::Fatal, &format!("'{s}' is not a valid number."));
            return Err(Exit(1));
        };
        let bs = block_size as i64;
        match rest.bytes().next() {
            Some(b'M' | b'm') => Ok(n.wrapping_mul(1 << 20) / bs),
            Some(b'G' | b'g') => Ok(n.wrapping_mul(1 << 30) / bs),
            Some(b'B' | b'b') => Ok(n),
            _ => {
                self.console.log(
                    Level::Fatal,
                    &format!(
                        "{s} has an invalid units specifier (use B for blocks, M for MB, G for GB, eg 2GB)"
                    ),
                );
                Err(Exit(1))
            }
        }
    }

    fn check_limits(&self, soft: i64, hard: i64) -> Cmd<()> {
        if soft > hard {
            self.console
                .log(Level::Fatal, "Soft limit must be less than the hard limit.");
            return Err(Exit(1));
        }
        let max = hard.wrapping_mul(MAX_SOFT_LIMIT_PERCENT) / 100;
        if soft > max {
            self.console.log(
                Level::Warning,
                &format!(
                    "We recommend setting the soft limit below {MAX_SOFT_LIMIT_PERCENT}% of the hard limit, or {} in this case.",
                    human_readable_size(max)
                ),
            );
        }
        Ok(())
    }

    /// 0.13's `OpenAccount`: the account's store, or the two error lines.
    fn open(&self, id: u32, purpose: &str, tries: u32) -> Cmd<TracedStore> {
        let db = self.accounts()?;
        let Some(set) = db.get(id) else {
            self.console.log(
                Level::Error,
                &format!("Account {} does not exist.", fmt_account(id)),
            );
            self.console.log(
                Level::Error,
                &format!("Failed to open account {} {purpose}.", fmt_account(id)),
            );
            return Err(Exit(1));
        };
        let discs = self.disc_set(i64::from(set))?;
        let lock_path = discs.disc_dir(0).join(account_root(id)).join("write.lock");
        Ok(TracedStore {
            inner: RaidObjects::new(discs, id),
            lock_path,
            console: self.console.clone(),
            tries,
            silent: Arc::default(),
        })
    }

    /// The account lock of a modifying command (8 tries, then 0.13's exception text).
    fn lock(&self, store: &TracedStore) -> Cmd<Box<dyn WriteLockGuard>> {
        match store.lock_for_writing() {
            Ok(g) => Ok(g),
            Err(Error::CannotLockStoreForWriting { account }) => {
                let what = format!(
                    "Failed to get exclusive lock on account {}",
                    fmt_account(account)
                );
                self.console.log(
                    Level::Warning,
                    &format!(
                        "Exception thrown: BackupStoreException(CouldNotLockStoreAccount) ({what}) at lib/backupstore/BackupStoreAccounts.cpp:206"
                    ),
                );
                self.console.log(
                    Level::Fatal,
                    &format!("CouldNotLockStoreAccount: {what}: {what}"),
                );
                Err(Exit(1))
            }
            Err(e) => Err(self.fatal(&e)),
        }
    }

    fn load_info(&self, store: &dyn ObjectStore) -> Cmd<StoreInfo> {
        let bytes = store
            .read_named(NamedFile::Info)
            .map_err(|e| self.fatal(&e))?
            .ok_or_else(|| {
                self.fatal(&"RaidFileDoesntExist: the store info file does not exist")
            })?;
        StoreInfo::parse(&bytes).map_err(|e| self.fatal(&e))
    }

    fn save_info(&self, store: &dyn ObjectStore, info: &StoreInfo) -> Cmd<()> {
        let bytes = info.encode().map_err(|e| self.fatal(&e))?;
        store
            .write_named(NamedFile::Info, &bytes)
            .map_err(|e| self.fatal(&e))
    }

    fn create(&self, id: u32, args: &[String]) -> Cmd<i32> {
        let disc = args.get(2).and_then(|a| scan_dec(a));
        let (Some(disc), true) = (disc, args.len() >= 5) else {
            self.console.log(
                Level::Error,
                "create requires raid file disc number, soft and hard limits.",
            );
            return Err(Exit(1));
        };
        let discs = self.disc_set(disc)?;
        // 0.13 keeps create's limits in 32-bit variables.
        let soft = self.size_to_blocks(&args[3], discs.block_size())? as i32 as i64;
        let hard = self.size_to_blocks(&args[4], discs.block_size())? as i32 as i64;
        self.check_limits(soft, hard)?;
        let mut db = self.accounts()?;
        if db.contains(id) {
            self.console.log(
                Level::Error,
                &format!("Account {} already exists.", fmt_account(id)),
            );
            return Err(Exit(1));
        }
        crate::account::create_account(&mut db, &discs, id, soft, hard)
            .map_err(|e| self.fatal(&e))?;
        self.console.log(
            Level::Notice,
            &format!("Account {} created.", fmt_account(id)),
        );
        Ok(0)
    }

    fn info(&self, id: u32) -> Cmd<i32> {
        let store = self.open(id, "to display info", 1)?;
        let info = self.load_info(&store)?;
        let text = format_info(&info, store.block_size() as i64, self.machine);
        self.console.print(&text);
        Ok(0)
    }

    fn enabled(&self, id: u32, args: &[String]) -> Cmd<i32> {
        let enabled = match args.get(2).map(String::as_str) {
            Some("yes") if args.len() == 3 => true,
            Some("no") if args.len() == 3 => false,
            _ => {
                self.console.print(USAGE);
                return Err(Exit(2));
            }
        };
        let store = self.open(id, "to change enabled flag", LOCK_TRIES)?;
        let _lock = self.lock(&store)?;
        let mut info = self.load_info(&store)?;
        info.account_enabled = enabled;
        self.save_info(&store, &info)?;
        Ok(0)
    }

    fn setlimit(&self, id: u32, args: &[String]) -> Cmd<i32> {
        if args.len() < 4 {
            self.console
                .log(Level::Error, "setlimit requires soft and hard limits.");
            return Err(Exit(1));
        }
        let store = self.open(id, "to change limits", LOCK_TRIES)?;
        let _lock = self.lock(&store)?;
        let mut info = self.load_info(&store)?;
        let limits = (|| {
            let soft = self.size_to_blocks(&args[2], store.block_size())?;
            let hard = self.size_to_blocks(&args[3], store.block_size())?;
            self.check_limits(soft, hard)?;
            Ok((soft, hard))
        })();
        let (soft, hard) = limits.inspect_err(|_| store.silent.store(true, Ordering::Relaxed))?;
        info.blocks_soft_limit = soft;
        info.blocks_hard_limit = hard;
        self.save_info(&store, &info)?;
        self.console.log(
            Level::Notice,
            &format!(
                "Limits on account {} changed to {soft} soft, {hard} hard.",
                fmt_account(id)
            ),
        );
        Ok(0)
    }

    fn name(&self, id: u32, args: &[String]) -> Cmd<i32> {
        if args.len() != 3 {
            self.console
                .log(Level::Error, "name command requires a new name.");
            return Err(Exit(1));
        }
        let store = self.open(id, "to change name", LOCK_TRIES)?;
        let _lock = self.lock(&store)?;
        let mut info = self.load_info(&store)?;
        info.account_name = args[2].as_bytes().to_vec();
        self.save_info(&store, &info)?;
        self.console.log(
            Level::Notice,
            &format!("Account {} name changed to {}", fmt_account(id), args[2]),
        );
        Ok(0)
    }

    fn delete(&self, id: u32, args: &[String], stdin: &mut dyn BufRead) -> Cmd<i32> {
        let ask = args.get(2).map(String::as_str) != Some("yes");
        let store = self.open(id, "for deletion", LOCK_TRIES)?;
        let lock = self.lock(&store)?;
        if ask {
            self.console.log(
                Level::Warning,
                &format!(
                    "Really delete account {}? (type 'yes' to confirm)",
                    fmt_account(id)
                ),
            );
            let mut line = String::new();
            let ok = stdin.read_line(&mut line).is_ok() && line == "yes\n";
            if !ok {
                self.console.log(Level::Notice, "Deletion cancelled.");
                return Ok(0);
            }
        }
        let mut db = self.accounts()?;
        db.remove(id).map_err(|e| self.fatal(&e))?;
        db.save().map_err(|e| self.fatal(&e))?;
        drop(lock);
        let mut dirs: Vec<&Path> = Vec::new();
        for d in store.inner.discs().dirs() {
            if !dirs.contains(&d.as_path()) {
                dirs.push(d);
            }
        }
        let mut code = 0;
        for d in dirs {
            let p = d.join(account_root(id));
            self.console.log(
                Level::Notice,
                &format!("Deleting store directory {}...", p.display()),
            );
            match std::fs::remove_dir_all(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => {
                    self.console.log(
                        Level::Error,
                        &format!(
                            "Failed to delete files in {}, delete them manually.",
                            p.display()
                        ),
                    );
                    code = 1;
                }
            }
        }
        Ok(code)
    }

    fn check(&self, id: u32, args: &[String]) -> Cmd<i32> {
        let mut opts = CheckOptions::default();
        for a in &args[2..] {
            match a.as_str() {
                "fix" => opts.fix = true,
                "quiet" => opts.quiet = true,
                other => {
                    self.console
                        .log(Level::Error, &format!("Unknown option {other}."));
                    return Err(Exit(2));
                }
            }
        }
        let store = self.open(id, "for checking", LOCK_TRIES)?;
        let lock = if opts.fix {
            Some(self.lock(&store)?)
        } else {
            None
        };
        let mut console = self
            .console
            .clone()
            .with_progress(Term::for_progress(opts.quiet));
        let outcome = check_account(&store, Some(store.inner.discs()), opts, &mut console);
        console.progress_done();
        let outcome = outcome.map_err(|e| self.fatal(&e))?;
        drop(lock);
        Ok(if outcome.errors > 0 { 1 } else { 0 })
    }

    fn housekeep(&self, id: u32) -> Cmd<i32> {
        let store = self.open(id, "for housekeeping", 1)?;
        let mut console = self.console.clone();
        let stop = AtomicBool::new(false);
        match housekeep(Box::new(store), &stop, &mut console) {
            Ok(Housekept::Busy) => {
                self.console.log(
                    Level::Error,
                    &format!(
                        "Failed to lock account {} for housekeeping: perhaps a client is still connected?",
                        fmt_account(id)
                    ),
                );
                Ok(1)
            }
            Ok(_) => {
                self.console.log(
                    Level::Trace,
                    &format!("Finished housekeeping on account {}", fmt_account(id)),
                );
                Ok(0)
            }
            Err(e) => Err(self.fatal(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_bars_as_0_13_prints_them() {
        // expected/single/info.txt of the fixture pack.
        assert_eq!(
            format_usage_bar(783, 783 * 4096, 10240 * 4096, false),
            "       783 blocks,    3.06 MB,   7% |*               |"
        );
        assert_eq!(
            format_usage_bar(0, 0, 10240 * 4096, false),
            "         0 blocks,    0.00  B,   0% |                |"
        );
        assert_eq!(
            format_usage_bar(8192, 8192 * 4096, 10240 * 4096, true),
            "32768 kB, 80%"
        );
        assert_eq!(human_readable_size(4966), "4.85 kB");
    }

    #[test]
    fn c_number_parsing() {
        assert_eq!(scan_hex("1234567"), Some(0x1234567));
        assert_eq!(scan_hex("0x1"), Some(1));
        assert_eq!(scan_hex("zz"), None);
        assert_eq!(strtol("10M"), Some((10, "M")));
        assert_eq!(strtol("0x10B"), Some((0x10b, "")));
        assert_eq!(strtol("010B"), Some((8, "B")));
        assert_eq!(strtol("abc"), None);
        assert_eq!(scan_dec("x"), None);
    }
}
