//! bbstored's command line, as 0.13 reads it: `bbstored [options] [config file]`.
//!
//! 0.13 forks into the background unless -F or -D; we do the same by
//! re-running ourselves detached (no fork in a threaded process). Log options
//! map onto a tracing level.

use std::path::PathBuf;

use super::config::DEFAULT_CONFIG;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config: PathBuf,
    /// -F or -D: stay in the foreground.
    pub foreground: bool,
    /// -D: 0.13's single-client debugging mode; here the same as -F.
    pub debug: bool,
    /// Verbosity: 0 = errors ... 5 = everything; 0.13's default is notice (2).
    pub verbosity: i32,
    /// -o <file>: also log to this file.
    pub log_file: Option<PathBuf>,
    /// -O: the verbosity of the -o file (0..=5, default 5: everything).
    pub log_file_verbosity: i32,
    /// -T / -U: timestamps on console lines.
    pub timestamps: bool,
    /// -t <tag>
    pub tag: Option<String>,
}

/// `Err(message)` for a bad command line; `Ok(None)` for -h or --help. The
/// options are documented in `crate::doc::BBSTORED` (a test keeps the two
/// in step).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, String> {
    let mut o = Options {
        config: PathBuf::from(DEFAULT_CONFIG),
        foreground: false,
        debug: false,
        verbosity: 2,
        log_file: None,
        log_file_verbosity: 5,
        timestamps: false,
        tag: None,
    };
    let mut config: Option<PathBuf> = None;
    let mut it = args.into_iter().peekable();
    let mut positional = Vec::new();
    while let Some(a) = it.next() {
        if a == "--help" {
            return Ok(None);
        }
        if !a.starts_with('-') || a == "-" {
            positional.push(a);
            continue;
        }
        let mut chars = a[1..].chars();
        while let Some(c) = chars.next() {
            // Options with a value take the rest of this word or the next word.
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
                'D' => {
                    o.debug = true;
                    o.foreground = true;
                }
                'F' => o.foreground = true,
                'k' | 'K' | 'P' | 'N' => {}
                'o' => o.log_file = Some(PathBuf::from(value()?)),
                'O' => o.log_file_verbosity = verbosity_named(&value()?)?,
                'L' => {
                    value()?;
                }
                'q' => o.verbosity -= 1,
                'Q' => o.verbosity = 0,
                'v' => o.verbosity += 1,
                'V' => o.verbosity = 5,
                'W' => o.verbosity = verbosity_named(&value()?)?,
                't' => o.tag = Some(value()?),
                'T' | 'U' => o.timestamps = true,
                'h' => return Ok(None),
                _ => return Err(format!("Unknown option on command line: '{c}'")),
            }
        }
    }
    match (config, positional.len()) {
        (Some(c), 0) => o.config = c,
        (None, 0) => {}
        (None, 1) => o.config = PathBuf::from(&positional[0]),
        _ => return Err(format!("unexpected arguments: {}", positional.join(" "))),
    }
    o.verbosity = o.verbosity.clamp(0, 5);
    Ok(Some(o))
}

/// 0.13's level names (`-W`, `-O`) as verbosity 0..=5.
fn verbosity_named(v: &str) -> Result<i32, String> {
    Ok(match v {
        "error" => 0,
        "warning" => 1,
        "notice" => 2,
        "info" => 3,
        "trace" => 4,
        "everything" => 5,
        _ => return Err(format!("unknown verbosity level '{v}'")),
    })
}

/// The tracing filter for a verbosity (0.13's notice is our info).
fn filter_for(verbosity: i32) -> &'static str {
    match verbosity {
        0 => "error",
        1 => "warn",
        2 | 3 => "info",
        4 => "debug",
        _ => "trace",
    }
}

impl Options {
    /// The filter of the `-o` log file (`-O`; everything by default, as 0.13).
    pub fn file_filter(&self) -> &'static str {
        filter_for(self.log_file_verbosity)
    }

    /// The tracing filter for this verbosity (0.13's notice is our info).
    pub fn filter(&self) -> &'static str {
        match self.verbosity {
            0 => "error",
            1 => "warn",
            2 | 3 => "info",
            4 => "debug",
            _ => "trace",
        }
    }
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
        assert!(o.foreground);
        assert_eq!(o.config, PathBuf::from("/x/b.conf"));
        let o = p(&["/y/b.conf"]).unwrap().unwrap();
        assert_eq!(o.config, PathBuf::from("/y/b.conf"));
        assert!(!o.foreground);
        let o = p(&[]).unwrap().unwrap();
        assert_eq!(o.config, PathBuf::from(DEFAULT_CONFIG));
        let o = p(&["-Fvv", "-c/z"]).unwrap().unwrap();
        assert_eq!((o.verbosity, o.config.clone()), (4, PathBuf::from("/z")));
        assert_eq!(p(&["-W", "error"]).unwrap().unwrap().verbosity, 0);
        assert!(p(&["-h"]).unwrap().is_none());
        assert!(p(&["-x"]).unwrap_err().contains("'x'"));
        assert!(p(&["-c"]).is_err());
        assert!(p(&["a", "b"]).is_err());
    }
}
