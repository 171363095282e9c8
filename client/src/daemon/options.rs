//! bbackupd's command line, as 0.13 reads it: `bbackupd [options] [config file]`,
//! plus our `--once`.
//!
//! 0.13 forks into the background unless -F or -D; we re-run ourselves detached
//! instead (no fork in a threaded process). The log options map onto 0.13's
//! levels (see [`Level`]); the options that only tune 0.13's logger (-L, -N, -P,
//! -K) are accepted and ignored so that existing init scripts keep working.

use std::path::PathBuf;

/// Where bbackupd looks without -c or a positional argument (0.13's default).
pub const DEFAULT_CONFIG: &str = "/etc/boxbackup/bbackupd.conf";

/// 0.13's log levels, quietest first. `Nothing` logs nothing at all (-Q).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Nothing,
    Fatal,
    Error,
    Warning,
    Notice,
    Info,
    Trace,
    Everything,
}

impl Level {
    const ALL: [Level; 8] = [
        Level::Nothing,
        Level::Fatal,
        Level::Error,
        Level::Warning,
        Level::Notice,
        Level::Info,
        Level::Trace,
        Level::Everything,
    ];

    /// -W's names.
    pub fn by_name(s: &str) -> Option<Level> {
        Some(match s {
            "nothing" => Level::Nothing,
            "fatal" => Level::Fatal,
            "error" => Level::Error,
            "warning" => Level::Warning,
            "notice" => Level::Notice,
            "info" => Level::Info,
            "trace" => Level::Trace,
            "everything" => Level::Everything,
            _ => return None,
        })
    }

    /// One step quieter (-q) or louder (-v), stopping at the ends.
    pub fn step(self, louder: bool) -> Level {
        let i = Level::ALL.iter().position(|l| *l == self).unwrap_or(4);
        let j = if louder {
            (i + 1).min(Level::ALL.len() - 1)
        } else {
            i.saturating_sub(1)
        };
        Level::ALL[j]
    }

    /// The tracing filter directive for this level: 0.13's NOTICE is tracing's
    /// INFO, its INFO our DEBUG, its TRACE and EVERYTHING our TRACE.
    pub fn filter(self) -> &'static str {
        match self {
            Level::Nothing => "off",
            Level::Fatal | Level::Error => "error",
            Level::Warning => "warn",
            Level::Notice => "info",
            Level::Info => "debug",
            Level::Trace | Level::Everything => "trace",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config: PathBuf,
    /// -F or -D: stay in the foreground.
    pub foreground: bool,
    /// -k: a detached daemon keeps writing its log to this console.
    pub keep_console: bool,
    /// Console verbosity (0.13's default is NOTICE).
    pub level: Level,
    /// -o <file>: also log to this file, at `file_level`.
    pub log_file: Option<PathBuf>,
    /// -O <level>; 0.13 logs everything to the -o file unless told.
    pub file_level: Level,
    /// -T / -U: timestamps (-U with microseconds) on console lines.
    pub timestamps: Option<Timestamps>,
    /// -t <tag>: a marker on every console line.
    pub tag: Option<String>,
    /// Ours: one sync run in the foreground, then exit (see [`super::exit`]).
    pub once: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamps {
    Seconds,
    Micros,
}

/// `Err(message)` for a bad command line; `Ok(None)` for -h / --help. The
/// options are documented in `crate::doc::BBACKUPD` (a test keeps the two in
/// step).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
    let mut o = Options {
        config: PathBuf::from(DEFAULT_CONFIG),
        foreground: false,
        keep_console: false,
        level: Level::Notice,
        log_file: None,
        file_level: Level::Everything,
        timestamps: None,
        tag: None,
        once: false,
    };
    let mut config: Option<PathBuf> = None;
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--once" => {
                o.once = true;
                continue;
            }
            "--help" => return Ok(None),
            "--" => {
                positional.extend(it.by_ref());
                break;
            }
            _ => {}
        }
        if !a.starts_with('-') || a == "-" {
            positional.push(a);
            continue;
        }
        if a.starts_with("--") {
            return Err(format!("Unknown option on command line: '{a}'"));
        }
        let mut chars = a[1..].chars();
        while let Some(c) = chars.next() {
            // An option with a value takes the rest of this word or the next word.
            let mut value = || -> Result<String, String> {
                let rest: String = chars.by_ref().collect();
                if !rest.is_empty() {
                    return Ok(rest);
                }
                it.next()
                    .ok_or_else(|| format!("option -{c} needs a value"))
            };
            match c {
                'c' => config = Some(PathBuf::from(value()?)),
                'D' | 'F' => o.foreground = true,
                'k' => o.keep_console = true,
                'K' | 'N' | 'P' => {}
                'L' => {
                    value()?;
                }
                'o' => o.log_file = Some(PathBuf::from(value()?)),
                'O' => {
                    let v = value()?;
                    o.file_level =
                        Level::by_name(&v).ok_or(format!("unknown verbosity level '{v}'"))?;
                }
                'q' => o.level = o.level.step(false),
                'Q' => o.level = Level::Nothing,
                'v' => o.level = o.level.step(true),
                'V' => o.level = Level::Everything,
                'W' => {
                    let v = value()?;
                    o.level = Level::by_name(&v).ok_or(format!("unknown verbosity level '{v}'"))?;
                }
                't' => o.tag = Some(value()?),
                'T' => o.timestamps = Some(Timestamps::Seconds),
                'U' => o.timestamps = Some(Timestamps::Micros),
                'h' => return Ok(None),
                _ => return Err(format!("Unknown option on command line: '{c}'")),
            }
        }
    }
    match (config, positional.len()) {
        (Some(c), 0) => o.config = c,
        (None, 0) => {}
        // 0.13: "the last argument is the configuration file".
        (None, _) => o.config = PathBuf::from(positional.last().cloned().unwrap_or_default()),
        (Some(_), _) => return Err(format!("unexpected arguments: {}", positional.join(" "))),
    }
    if o.once {
        o.foreground = true;
    }
    Ok(Some(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<Option<Options>, String> {
        parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn reads_013_command_lines() {
        let o = p(&["-F", "-c", "/x/b.conf"]).unwrap().unwrap();
        assert!(o.foreground && !o.once);
        assert_eq!(o.config, PathBuf::from("/x/b.conf"));
        let o = p(&["/y/b.conf"]).unwrap().unwrap();
        assert_eq!(o.config, PathBuf::from("/y/b.conf"));
        assert!(!o.foreground);
        let o = p(&[]).unwrap().unwrap();
        assert_eq!(o.config, PathBuf::from(DEFAULT_CONFIG));
        let o = p(&["-Fvv", "-c/z"]).unwrap().unwrap();
        assert_eq!(
            (o.level, o.config.clone()),
            (Level::Trace, PathBuf::from("/z"))
        );
        assert_eq!(p(&["-qq"]).unwrap().unwrap().level, Level::Error);
        assert_eq!(p(&["-W", "error"]).unwrap().unwrap().level, Level::Error);
        assert_eq!(p(&["-Q"]).unwrap().unwrap().level.filter(), "off");
        let o = p(&["-k", "-T", "-t", "x", "-o", "/l", "-O", "info"])
            .unwrap()
            .unwrap();
        assert!(o.keep_console);
        assert_eq!(o.timestamps, Some(Timestamps::Seconds));
        assert_eq!(o.tag.as_deref(), Some("x"));
        assert_eq!(o.log_file, Some(PathBuf::from("/l")));
        assert_eq!(o.file_level, Level::Info);
        assert!(p(&["-h"]).unwrap().is_none());
        assert!(p(&["--help"]).unwrap().is_none());
        assert!(p(&["-x"]).unwrap_err().contains("'x'"));
        assert!(p(&["-c"]).is_err());
        assert!(p(&["-c", "a", "b"]).is_err());
        assert!(p(&["-W", "loud"]).is_err());
    }

    #[test]
    fn once_runs_in_the_foreground() {
        let o = p(&["--once", "/c.conf"]).unwrap().unwrap();
        assert!(o.once && o.foreground);
        assert_eq!(o.config, PathBuf::from("/c.conf"));
        assert!(p(&["--twice"]).is_err());
    }
}
