//! bbackupquery: 0.13's store query shell, command for command and byte for
//! byte where scripts read its output (`ls` in every flag combination, `pwd`,
//! `usage`, `help`, the error messages) and with 0.13's exit codes.
//!
//! - [`QueryContext`]: the open store, the keys, the current store directory
//!   (a stack of names and IDs, as 0.13 keeps it), the local directory, the
//!   return code; [`QueryContext::do_command`] runs one command line.
//! - [`parse`]: 0.13's command syntax; [`console`]: output and log lines;
//!   [`nav`] (paths, `cd`, `pwd`, `lcd`), [`list`] (`ls`), [`fetch`] (`get`,
//!   `getobject`), [`edit`] (`delete`, `undelete`), [`info`] (`usage`,
//!   `help`), [`delegated`] (`compare`, `restore`, which call
//!   [`crate::compare`] and [`crate::restore`]); [`shell`] reads commands
//!   (line editing at a terminal); [`cli`] is the program: options, the
//!   configuration ([`crate::config::BackupdConfig`]), connect, run.
//!
//! 0.13 differences on purpose: `sh <command>` runs the command (0.13 crashes
//! with a segmentation fault); protocol errors are reported as errors of the
//! command (0.13 leaves some to kill the program); no 0.13 debugging noise
//! ("Exception thrown", "Network operation started with no timeout");
//! `compare` checks block MD5s and attributes by default and downloads
//! everything only with `-f` (0.13's default); `restore` draws a progress
//! line on a terminal instead of 0.13's dots on standard output, and uses
//! two connections when it can open a second one.
//!
//! Must not know: the store's disc layout; it talks to the store only through
//! bb-remote's traits.

pub mod cli;
pub mod console;
pub mod delegated;
pub mod edit;
pub mod fetch;
pub mod help_text;
pub mod info;
pub mod list;
pub mod nav;
pub mod parse;
pub mod shell;
pub mod sort;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bb_format::Keys;
use bb_remote::{StoreRead, StoreWrite};

use crate::config::{BackupdConfig, LocationConfig};

pub use console::{Console, Level};
use parse::{Cmd, Lookup, Opts, Parsed};

/// 0.13's return codes (`BackupQueries::ReturnCode`).
pub mod return_code {
    pub const OK: i32 = 0;
    pub const COMPARE_SAME: i32 = 1;
    pub const COMPARE_DIFFERENT: i32 = 2;
    pub const COMPARE_ERROR: i32 = 3;
    pub const COMMAND_ERROR: i32 = 4;
}

/// A store bbackupquery can use: read access for everything, write access
/// for `delete`/`undelete` (a read-only login refuses those on the server as
/// well). `as_read` hands the same store to functions that take
/// `&mut dyn StoreRead`.
pub trait QueryStore: StoreWrite {
    fn as_read(&mut self) -> &mut dyn StoreRead;
}

impl<T: StoreWrite> QueryStore for T {
    fn as_read(&mut self) -> &mut dyn StoreRead {
        self
    }
}

/// What `compare -a`/`-l` needs from bbackupd.conf.
#[derive(Debug, Clone, Default)]
pub struct CompareSettings {
    /// `BackupLocations`, with their excludes.
    pub locations: Vec<LocationConfig>,
    /// `DataDirectory` (holds `last_sync_start`, see
    /// [`crate::sync::last_sync_start`]).
    pub data_directory: Option<PathBuf>,
    pub minimum_file_age: Duration,
}

impl CompareSettings {
    /// The settings of a bbackupd.conf.
    pub fn from_config(c: &BackupdConfig) -> CompareSettings {
        CompareSettings {
            locations: c.locations.clone(),
            data_directory: Some(c.data_directory.clone()),
            minimum_file_age: c.minimum_file_age,
        }
    }
}

/// Opens one more read-only connection to the same store, for `restore`
/// over two connections ([`crate::restore::restore_parallel`]).
pub type Connector = dyn Fn() -> crate::Result<Box<dyn StoreRead + Send>> + Send + Sync;

/// The shell's state. See the module header.
pub struct QueryContext {
    pub(crate) store: Box<dyn QueryStore>,
    pub(crate) keys: Keys,
    pub(crate) read_write: bool,
    pub(crate) console: Console,
    /// Current store directory: (name as typed, ID) from the root down.
    pub(crate) stack: Vec<(Vec<u8>, i64)>,
    /// Where relative local paths start (`lcd`); the process keeps its own.
    pub(crate) local_dir: PathBuf,
    pub(crate) compare: CompareSettings,
    /// More connections for `restore`; `None`: the shell's one only.
    pub(crate) connector: Option<Arc<Connector>>,
    return_code: i32,
    quit: bool,
}

impl std::fmt::Debug for QueryContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryContext")
            .field("read_write", &self.read_write)
            .field("stack", &self.stack)
            .field("local_dir", &self.local_dir)
            .field("return_code", &self.return_code)
            .finish_non_exhaustive()
    }
}

impl QueryContext {
    /// A shell at the store's root. `read_write` is whether the login was
    /// read/write (`-w`); `local_dir` is the starting local directory.
    pub fn new(
        store: Box<dyn QueryStore>,
        keys: Keys,
        read_write: bool,
        console: Console,
        local_dir: PathBuf,
    ) -> QueryContext {
        QueryContext {
            store,
            keys,
            read_write,
            console,
            stack: Vec::new(),
            local_dir,
            compare: CompareSettings::default(),
            connector: None,
            return_code: return_code::OK,
            quit: false,
        }
    }

    pub fn with_compare_settings(mut self, c: CompareSettings) -> QueryContext {
        self.compare = c;
        self
    }

    /// Lets `restore` open more connections with `c` (it falls back to the
    /// shell's connection when `c` fails).
    pub fn with_connector(mut self, c: Arc<Connector>) -> QueryContext {
        self.connector = Some(c);
        self
    }

    /// The exit code 0.13 would give now.
    pub fn return_code(&self) -> i32 {
        self.return_code
    }

    /// True after `quit`/`exit`.
    pub fn stopped(&self) -> bool {
        self.quit
    }

    pub fn console(&mut self) -> &mut Console {
        &mut self.console
    }

    /// The store, e.g. to close it politely.
    pub fn into_store(self) -> Box<dyn QueryStore> {
        self.store
    }

    pub(crate) fn set_return_code(&mut self, rc: i32) {
        self.return_code = rc;
    }

    /// Logs an error and sets the command-error return code.
    pub(crate) fn fail(&mut self, msg: impl AsRef<[u8]>) {
        self.console.error(msg);
        self.return_code = return_code::COMMAND_ERROR;
    }

    /// A local path as the user gave it, relative to the `lcd` directory.
    pub(crate) fn local_path(&self, arg: &[u8]) -> PathBuf {
        let p = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(arg));
        self.local_dir.join(p)
    }

    /// Runs one command line as 0.13's `DoCommand` does.
    pub fn do_command(&mut self, line: &[u8]) {
        let parsed = Parsed::new(line);
        let (name, letters, cmd) = match parsed.command() {
            Lookup::Blank => return,
            Lookup::Found(n, l, c) => (n, l, c),
            Lookup::Unknown => {
                let mut m = b"Parse failed: unknown command '".to_vec();
                m.extend_from_slice(&parsed.words[0]);
                m.extend_from_slice(b"' or failed to convert encoding of arguments");
                self.console.error(m);
                return;
            }
        };
        if cmd == Cmd::Sh && parsed.words.len() == 2 {
            self.run_shell(&parsed.words[1]);
            return;
        }
        let opts = match Opts::check(&parsed.options, letters) {
            Ok(o) => o,
            Err(c) => {
                self.console.error(format!(
                    "Invalid option '{}' for command {name}",
                    char::from(c)
                ));
                return;
            }
        };
        if cmd != Cmd::Quit {
            self.return_code = return_code::OK;
        }
        let args = parsed.args();
        match cmd {
            Cmd::Quit => self.quit = true,
            Cmd::List => list::command(self, args, &opts),
            Cmd::Pwd => nav::pwd(self),
            Cmd::Cd => nav::cd(self, args, &opts),
            Cmd::Lcd => nav::lcd(self, args),
            Cmd::Sh => self
                .console
                .error("The command to run must be specified as an argument."),
            Cmd::GetObject => fetch::getobject(self, args),
            Cmd::Get => fetch::get(self, args, &opts),
            Cmd::Compare => delegated::compare(self, args, &opts),
            Cmd::Restore => delegated::restore(self, args, &opts),
            Cmd::Help => info::help(self, args),
            Cmd::Usage => info::usage(self, &opts),
            Cmd::Undelete => edit::undelete(self, args, &opts),
            Cmd::Delete => edit::delete(self, args, &opts),
        }
        self.console.flush();
    }

    /// `sh <command>`: through `/bin/sh -c` in the local directory; a
    /// non-zero status is a warning and a command error (0.13's intent).
    fn run_shell(&mut self, command: &[u8]) {
        use std::os::unix::ffi::OsStrExt;
        self.console.flush();
        let status = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(std::ffi::OsStr::from_bytes(command))
            .current_dir(&self.local_dir)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                // system()'s value: the wait status.
                let code = s.code().map(|c| c << 8).unwrap_or(0)
                    | std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0);
                self.console
                    .warning(format!("System command returned error code {code}"));
                self.return_code = return_code::COMMAND_ERROR;
            }
            Err(e) => {
                self.console
                    .warning(format!("System command returned error code -1 ({e})"));
                self.return_code = return_code::COMMAND_ERROR;
            }
        }
    }
}
