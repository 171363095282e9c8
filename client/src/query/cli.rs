//! The bbackupquery program: 0.13's command-line options, the configuration,
//! the login, the commands given as arguments (each one command, e.g.
//! `bbackupquery "ls -R" quit`), then standard input ([`super::shell`]).
//!
//! Options as 0.13 (`getopt`, stopping at the first command): `-w` read/write,
//! `-c file`, `-E` no line editing, `-o file` / `-O level` log file, `-q` `-v`
//! `-Q` `-V` `-W level` console verbosity, `-T` `-U` time stamps, `-t tag`,
//! `-P` PID, and `-l file`, `-L file`, `-N`, which are accepted but do
//! nothing here (0.13's protocol trace and source-file log filter).
//!
//! Exit codes as 0.13: the last command's return code (0; 1/2/3 after
//! `compare -c`; 4 after a failed command), 1 for a bad option, an unusable
//! configuration or a failed connection, 2 for a bad `-O` level.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use std::sync::Arc;

use bb_remote::{Session, StoreRead};

use crate::config::BackupdConfig;

use super::console::{ConsoleStyle, Stamp};
use super::{CompareSettings, Console, Level, QueryContext, shell};

/// Where 0.13 looks for its configuration without `-c`.
pub const DEFAULT_CONFIG: &str = crate::config::DEFAULT_CONFIG;

const USAGE: &str = "Usage: bbackupquery [options] [command]...

Options:
  -w         Read/write mode, allow changes to store
  -E         Disable interactive command editing, may fix entering intl chars
  -c <file>  Use the specified configuration file. If -c is omitted, the last
             argument is the configuration file, or else the default 
             [/etc/boxbackup/bbackupd.conf]
  -o <file>  Write logging output to specified file as well as console
  -O <level> Set file verbosity to error/warning/notice/info/trace/everything
  -l <file>  Write protocol debugging logs to specified file
  -L <file>  Filter out log messages except from specified file, can repeat
             (for example, -L lib/common/Logging.cpp)
  -N         Truncate log file at startup and on backup start
  -P         Show process ID (PID) in console output
  -q         Run more quietly, reduce verbosity level by one, can repeat
  -Q         Run at minimum verbosity, log nothing to console and system
  -t <tag>   Tag console output with specified marker
  -T         Timestamp console output
  -U         Timestamp console output with microseconds
  -v         Run more verbosely, increase verbosity level by one, can repeat
  -V         Run at maximum verbosity, log everything to console and system
  -W <level> Set verbosity to error/warning/notice/info/trace/everything

Parameters: as many commands as you like. If commands are multiple words,
remember to enclose the command in quotes. Remember to use the quit command
unless you want to end up in interactive mode.
";

/// Parsed command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub read_write: bool,
    pub config: PathBuf,
    pub editing: bool,
    pub level: Level,
    pub style: ConsoleStyle,
    pub log_file: Option<PathBuf>,
    pub log_file_level: Option<Level>,
    pub truncate_log: bool,
    pub commands: Vec<Vec<u8>>,
}

/// Why the options were refused: the message(s) for the console, the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    /// `getopt`'s complaint on stderr, if any.
    pub stderr: Option<String>,
    /// (level, message) lines for the console.
    pub messages: Vec<(Level, String)>,
    pub show_usage: bool,
    pub exit: i32,
}

fn opt_error(
    stderr: Option<String>,
    msg: Vec<(Level, String)>,
    usage: bool,
    exit: i32,
) -> OptionError {
    OptionError {
        stderr,
        messages: msg,
        show_usage: usage,
        exit,
    }
}

/// 0.13's option parsing (`getopt` with `wc:l:o:O:E` and the logging options).
pub fn parse_options(args: &[OsString]) -> Result<Options, OptionError> {
    let mut o = Options {
        read_write: false,
        config: PathBuf::from(DEFAULT_CONFIG),
        editing: true,
        level: Level::Notice,
        style: ConsoleStyle::default(),
        log_file: None,
        log_file_level: None,
        truncate_log: false,
        commands: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        if a == b"--" {
            i += 1;
            break;
        }
        if a.len() < 2 || a[0] != b'-' {
            break;
        }
        let mut j = 1;
        while j < a.len() {
            let c = a[j];
            j += 1;
            let takes_arg = matches!(c, b'c' | b'l' | b'o' | b'O' | b'L' | b't' | b'W');
            let value: Option<Vec<u8>> = if takes_arg {
                if j < a.len() {
                    let v = a[j..].to_vec();
                    j = a.len();
                    Some(v)
                } else if i + 1 < args.len() {
                    i += 1;
                    Some(args[i].as_bytes().to_vec())
                } else {
                    return Err(opt_error(
                        Some(format!("option requires an argument -- {}", c as char)),
                        vec![(
                            Level::Fatal,
                            format!("Missing argument for option '{}'", c as char),
                        )],
                        true,
                        1,
                    ));
                }
            } else {
                None
            };
            let text = || String::from_utf8_lossy(value.as_deref().unwrap_or(b"")).into_owned();
            match c {
                b'w' => o.read_write = true,
                b'E' => o.editing = false,
                b'c' => {
                    o.config = PathBuf::from(OsString::from_vec(value.clone().unwrap_or_default()))
                }
                b'l' | b'L' => {}
                b'N' => o.truncate_log = true,
                b'o' => {
                    o.log_file = Some(PathBuf::from(OsString::from_vec(
                        value.clone().unwrap_or_default(),
                    )));
                    o.log_file_level.get_or_insert(Level::Everything);
                }
                b'O' => match Level::from_name(&text()) {
                    Some(l) => o.log_file_level = Some(l),
                    None => {
                        return Err(opt_error(
                            None,
                            vec![(Level::Fatal, "Invalid logging level".into())],
                            false,
                            2,
                        ));
                    }
                },
                b'P' => o.style.show_pid = true,
                b'q' => match o.level.quieter() {
                    Some(l) => o.level = l,
                    None => {
                        return Err(opt_error(
                            None,
                            vec![(
                                Level::Fatal,
                                "Too many '-q': Cannot reduce logging level any more".into(),
                            )],
                            true,
                            1,
                        ));
                    }
                },
                b'Q' => o.level = Level::Nothing,
                b'v' => o.level = o.level.louder(),
                b'V' => o.level = Level::Everything,
                b't' => o.style.tag = Some(text()),
                b'T' => o.style.stamp = Stamp::Seconds,
                b'U' => o.style.stamp = Stamp::Millis,
                b'W' => match Level::from_name(&text()) {
                    Some(l) => o.level = l,
                    None => {
                        return Err(opt_error(
                            None,
                            vec![
                                (Level::Error, format!("Unknown verbosity level: {}", text())),
                                (Level::Fatal, format!("Invalid logging level: {}", text())),
                            ],
                            true,
                            1,
                        ));
                    }
                },
                other => {
                    return Err(opt_error(
                        Some(format!("unknown option -- {}", other as char)),
                        vec![(
                            Level::Fatal,
                            format!("Unknown option on command line: '{}'", other as char),
                        )],
                        true,
                        1,
                    ));
                }
            }
        }
        i += 1;
    }
    o.commands = args[i..].iter().map(|a| a.as_bytes().to_vec()).collect();
    Ok(o)
}

fn open_log(o: &Options) -> Option<std::fs::File> {
    let p = o.log_file.as_ref()?;
    let mut oo = std::fs::OpenOptions::new();
    oo.create(true);
    if o.truncate_log {
        oo.write(true).truncate(true);
    } else {
        oo.append(true);
    }
    oo.open(p).ok()
}

/// The program. `args` without the program name; returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let o = match parse_options(&args) {
        Ok(o) => o,
        Err(e) => {
            if let Some(s) = &e.stderr {
                eprintln!("{s}");
            }
            // Messages about the options are shown at the default level.
            let mut c = Console::new(super::console::stdout(), Level::Notice);
            for (l, m) in &e.messages {
                c.log(*l, m.as_bytes());
            }
            if e.show_usage {
                c.print(USAGE.as_bytes());
            }
            c.flush();
            return e.exit;
        }
    };
    // Long commands (compare, restore) show progress on a terminal, unless -q.
    let mut console = Console::new(super::console::stdout(), o.level)
        .with_style(o.style.clone())
        .with_progress(bb_console::Term::for_progress(o.level < Level::Notice));
    if let (Some(f), Some(l)) = (open_log(&o), o.log_file_level) {
        console = console.with_file(f, l);
    }
    console.notice(format!(
        "Box Backup Backup Query Tool v{} (Rust, compatible with 0.13)",
        env!("CARGO_PKG_VERSION")
    ));
    console.info(format!("Using configuration file {}", o.config.display()));
    let code = match start(&o, console) {
        Ok(c) => c,
        Err(mut c) => {
            c.flush();
            1
        }
    };
    let _ = std::io::stdout().flush();
    code
}

/// Connects and runs; `Err` carries the console after a fatal error.
fn start(o: &Options, mut console: Console) -> Result<i32, Console> {
    // Every failure before the login is exit code 1, as 0.13's: a missing
    // or invalid file, keys or TLS files that do not load.
    let conf = match BackupdConfig::load(&o.config) {
        Ok(c) => c,
        Err(e) => {
            console.fatal(format!("Invalid configuration file: {e}"));
            return Err(console);
        }
    };
    let keys = match conf.keys() {
        Ok(k) => k,
        Err(e) => {
            console.fatal(format!("Failed to load keys: {e}"));
            return Err(console);
        }
    };
    let rc = match conf.remote_config(!o.read_write) {
        Ok(c) => c,
        Err(e) => {
            console.fatal(format!("Failed to set up TLS: {e}"));
            return Err(console);
        }
    };
    console.info("Connecting to store...");
    console.info("Handshake with store...");
    console.info("Login to store...");
    let session = match Session::open(rc.clone()) {
        Ok(s) => s,
        Err(e) => {
            console.fatal(e.to_string());
            return Err(console);
        }
    };
    console.info("Login complete.");
    console.info("Type \"help\" for a list of commands.");
    let local = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    // restore's extra connections are read-only whatever -w says.
    let mut extra = rc;
    extra.read_only = true;
    let connect = move || -> crate::Result<Box<dyn StoreRead + Send>> {
        Ok(Box::new(Session::open(extra.clone())?))
    };
    let ctx = QueryContext::new(Box::new(session), keys, o.read_write, console, local)
        .with_compare_settings(CompareSettings::from_config(&conf))
        .with_connector(Arc::new(connect));
    let ctx = run(ctx, &o.commands, o.editing);
    Ok(finish(ctx))
}

/// The commands given as arguments, then standard input unless one of them
/// was `quit`.
pub fn run(mut ctx: QueryContext, commands: &[Vec<u8>], editing: bool) -> QueryContext {
    for c in commands {
        if ctx.stopped() {
            break;
        }
        ctx.do_command(c);
    }
    ctx.console().flush();
    if !ctx.stopped() {
        ctx = shell::run(ctx, editing);
    }
    ctx
}

/// Logs off (Finished) and returns the exit code.
pub fn finish(mut ctx: QueryContext) -> i32 {
    ctx.console().info("Logging off...");
    let rc = ctx.return_code();
    ctx.console().flush();
    let QueryContext { store, console, .. } = ctx;
    drop(store);
    let mut console = console;
    console.info("Session finished.");
    console.flush();
    rc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn options_stop_at_the_first_command() {
        let o = parse_options(&args(&["-q", "-wc", "/x.conf", "ls -R", "-q", "quit"])).unwrap();
        assert!(o.read_write);
        assert_eq!(o.config, PathBuf::from("/x.conf"));
        assert_eq!(o.level, Level::Warning);
        assert_eq!(
            o.commands,
            vec![b"ls -R".to_vec(), b"-q".to_vec(), b"quit".to_vec()]
        );
        let o = parse_options(&args(&["-W", "error", "-v", "-T", "-t", "tg"])).unwrap();
        assert_eq!(o.level, Level::Warning);
        assert_eq!(o.style.tag.as_deref(), Some("tg"));
        assert_eq!(o.style.stamp, Stamp::Seconds);
    }

    #[test]
    fn refusals_as_013() {
        let e = parse_options(&args(&["-h"])).unwrap_err();
        assert_eq!((e.exit, e.show_usage), (1, true));
        assert_eq!(e.stderr.as_deref(), Some("unknown option -- h"));
        let e = parse_options(&args(&["-qqqqq"])).unwrap_err();
        assert_eq!(e.exit, 1);
        assert!(parse_options(&args(&["-qqqq"])).is_ok());
        assert_eq!(parse_options(&args(&["-O", "x"])).unwrap_err().exit, 2);
        assert_eq!(parse_options(&args(&["-W", "x"])).unwrap_err().exit, 1);
        assert_eq!(parse_options(&args(&["-c"])).unwrap_err().exit, 1);
    }
}
