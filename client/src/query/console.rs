//! bbackupquery's output: command output and 0.13-style log lines
//! (`ERROR:   ...`, `NOTICE:  ...`) on one stream, in the order they happen,
//! as 0.13 writes both to stdout; optionally a copy of the log lines in a file
//! (`-o`, `-O`) in 0.13's file format (`2024-01-02 03:04:05 [NOTICE]  ...`).
//!
//! Owns the verbosity levels and their command-line names, console prefixes
//! (`-T`/`-U` time, `-t` tag, `-P` PID) and the time formats of listings
//! (`BoxTimeToISO8601String`). Messages are bytes: store names need not be UTF-8.
//!
//! Must not know: what the commands do.

use std::fs::File;
use std::io::{self, Write};

use bb_format::BoxTime;

/// 0.13's log levels, least to most verbose.
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
    /// `-W`/`-O` names (`Logging::GetNamedLevel`).
    pub fn from_name(name: &str) -> Option<Level> {
        Some(match name {
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

    fn name(self) -> &'static str {
        match self {
            Level::Nothing => "NOTHING",
            Level::Fatal => "FATAL",
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Notice => "NOTICE",
            Level::Info => "INFO",
            Level::Trace => "TRACE",
            Level::Everything => "EVERYTHING",
        }
    }

    /// One step quieter (`-q`); `None` below Nothing.
    pub fn quieter(self) -> Option<Level> {
        Some(match self {
            Level::Nothing => return None,
            Level::Fatal => Level::Nothing,
            Level::Error => Level::Fatal,
            Level::Warning => Level::Error,
            Level::Notice => Level::Warning,
            Level::Info => Level::Notice,
            Level::Trace => Level::Info,
            Level::Everything => Level::Trace,
        })
    }

    /// One step more verbose (`-v`); stays at Everything.
    pub fn louder(self) -> Level {
        match self {
            Level::Nothing => Level::Fatal,
            Level::Fatal => Level::Error,
            Level::Error => Level::Warning,
            Level::Warning => Level::Notice,
            Level::Notice => Level::Info,
            Level::Info => Level::Trace,
            Level::Trace | Level::Everything => Level::Everything,
        }
    }
}

/// Console time stamps (`-T`, `-U`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stamp {
    #[default]
    None,
    Seconds,
    Millis,
}

/// How log lines look on the console.
#[derive(Debug, Clone, Default)]
pub struct ConsoleStyle {
    pub stamp: Stamp,
    pub tag: Option<String>,
    pub show_pid: bool,
}

/// The output stream plus the log settings. See the module header.
pub struct Console {
    out: Box<dyn Write>,
    level: Level,
    style: ConsoleStyle,
    file: Option<(File, Level)>,
    /// The terminal for progress lines (stderr on a terminal, not -q).
    term: Option<bb_console::Term>,
    /// The progress line being shown, if any.
    line: Option<bb_console::Progress>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("level", &self.level)
            .field("style", &self.style)
            .finish_non_exhaustive()
    }
}

impl Console {
    pub fn new(out: Box<dyn Write>, level: Level) -> Console {
        Console {
            out,
            level,
            style: ConsoleStyle::default(),
            file: None,
            term: None,
            line: None,
        }
    }

    /// Draw progress lines on `term` (see [`Console::progress`]).
    pub fn with_progress(mut self, term: Option<bb_console::Term>) -> Console {
        self.term = term;
        self
    }

    /// Whether long commands should show their progress.
    pub fn progress_on(&self) -> bool {
        self.term.is_some()
    }

    /// Shows `c` on the progress line (nothing without a terminal).
    pub fn progress(&mut self, c: &bb_console::Counts) {
        let Some(term) = &self.term else { return };
        // What is buffered for stdout goes out before the line is drawn.
        let _ = self.out.flush();
        self.line
            .get_or_insert_with(|| bb_console::Progress::new(Some(term.clone())))
            .update(c);
    }

    /// Wipes the progress line.
    pub fn progress_done(&mut self) {
        self.line = None;
    }

    pub fn with_style(mut self, style: ConsoleStyle) -> Console {
        self.style = style;
        self
    }

    /// Also writes log lines up to `level` to `file`.
    pub fn with_file(mut self, file: File, level: Level) -> Console {
        self.file = Some((file, level));
        self
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// Command output (0.13's printf / cout), whatever the level. Write errors
    /// (a closed pipe) are ignored, as printf ignores them.
    pub fn print(&mut self, bytes: &[u8]) {
        match (&self.line, &self.term) {
            (Some(_), Some(term)) => {
                let out = &mut self.out;
                term.suspend(|| {
                    let _ = out.write_all(bytes);
                    let _ = out.flush();
                });
            }
            _ => {
                let _ = self.out.write_all(bytes);
            }
        }
    }

    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }

    /// A log line at `level` (the message may span lines, as 0.13's do).
    pub fn log(&mut self, level: Level, msg: &[u8]) {
        if level <= self.level && level != Level::Nothing {
            let mut line = Vec::with_capacity(msg.len() + 24);
            match self.style.stamp {
                Stamp::None => {}
                Stamp::Seconds => {
                    line.extend_from_slice(format_clock(now(), false).as_bytes());
                    line.push(b' ');
                }
                Stamp::Millis => {
                    line.extend_from_slice(format_clock(now(), true).as_bytes());
                    line.push(b' ');
                }
            }
            match (&self.style.tag, self.style.show_pid) {
                (Some(t), true) => {
                    line.extend_from_slice(format!("[{t} {}] ", std::process::id()).as_bytes())
                }
                (Some(t), false) => line.extend_from_slice(format!("[{t}] ").as_bytes()),
                (None, true) => {
                    line.extend_from_slice(format!("[{}] ", std::process::id()).as_bytes())
                }
                (None, false) => {}
            }
            line.extend_from_slice(format!("{:<9}", format!("{}:", level.name())).as_bytes());
            line.extend_from_slice(msg);
            line.push(b'\n');
            self.print(&line);
        }
        if let Some((f, file_level)) = &mut self.file
            && level <= *file_level
            && level != Level::Nothing
        {
            let mut line = format!(
                "{} {:<10}",
                format_iso(now(), true, ' '),
                format!("[{}]", level.name())
            )
            .into_bytes();
            line.extend_from_slice(msg);
            line.push(b'\n');
            let _ = f.write_all(&line);
        }
    }

    pub fn error(&mut self, msg: impl AsRef<[u8]>) {
        self.log(Level::Error, msg.as_ref());
    }

    pub fn warning(&mut self, msg: impl AsRef<[u8]>) {
        self.log(Level::Warning, msg.as_ref());
    }

    pub fn notice(&mut self, msg: impl AsRef<[u8]>) {
        self.log(Level::Notice, msg.as_ref());
    }

    pub fn info(&mut self, msg: impl AsRef<[u8]>) {
        self.log(Level::Info, msg.as_ref());
    }

    pub fn fatal(&mut self, msg: impl AsRef<[u8]>) {
        self.log(Level::Fatal, msg.as_ref());
    }
}

/// A `Write` that forwards to stdout, for [`Console::new`].
pub fn stdout() -> Box<dyn Write> {
    Box::new(io::BufWriter::new(io::stdout()))
}

fn now() -> BoxTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as BoxTime)
        .unwrap_or(0)
}

/// The date and time of `t` in UTC or (if `local`, and the offset can be
/// found) local time.
fn civil(t: BoxTime, local: bool) -> time::OffsetDateTime {
    let secs = t.div_euclid(1_000_000);
    let utc =
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    if local {
        match time::UtcOffset::local_offset_at(utc) {
            Ok(off) => utc.to_offset(off),
            Err(_) => utc,
        }
    } else {
        utc
    }
}

/// 0.13's `BoxTimeToISO8601String`: `YYYY-MM-DDTHH:MM:SS` (with `sep` in
/// place of the `T`), whole seconds, UTC or local time.
pub fn format_iso(t: BoxTime, local: bool, sep: char) -> String {
    let d = civil(t, local);
    format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// Console time stamp: local `HH:MM:SS`, with `.mmm` for `-U` (what 0.13
/// prints for "microseconds").
fn format_clock(t: BoxTime, millis: bool) -> String {
    let d = civil(t, true);
    let mut s = format!("{:02}:{:02}:{:02}", d.hour(), d.minute(), d.second());
    if millis {
        s.push_str(&format!(".{:03}", t.rem_euclid(1_000_000) / 1000));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A `Write` whose bytes the test can read afterwards.
    #[derive(Clone, Default)]
    pub struct Shared(pub Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn prefixes_and_levels_as_013() {
        let buf = Shared::default();
        let mut c = Console::new(Box::new(buf.clone()), Level::Notice);
        c.error("Directory 'x' not found on store.");
        c.warning("w");
        c.notice("/ (0x1)");
        c.info("hidden");
        c.print(b"raw\n");
        let style = ConsoleStyle {
            tag: Some("tg".into()),
            ..Default::default()
        };
        let mut c = Console::new(Box::new(buf.clone()), Level::Error).with_style(style);
        c.error("e");
        c.warning("hidden");
        assert_eq!(
            String::from_utf8(buf.0.lock().unwrap().clone()).unwrap(),
            "ERROR:   Directory 'x' not found on store.\nWARNING: w\nNOTICE:  / (0x1)\nraw\n[tg] ERROR:   e\n"
        );
    }

    #[test]
    fn iso_times() {
        assert_eq!(format_iso(0, false, 'T'), "1970-01-01T00:00:00");
        // source/a/b/c/c.txt in the fixture listing.
        assert_eq!(
            format_iso(1_614_895_567_999_999, false, 'T'),
            "2021-03-04T22:06:07"
        );
    }

    #[test]
    fn level_steps() {
        assert_eq!(Level::Notice.quieter(), Some(Level::Warning));
        assert_eq!(Level::Nothing.quieter(), None);
        assert_eq!(Level::Error.louder(), Level::Warning);
        assert_eq!(Level::from_name("trace"), Some(Level::Trace));
        assert_eq!(Level::from_name("bogus"), None);
    }
}
