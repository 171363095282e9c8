//! Log output of bbackupd and bbackupctl: tracing events written the way 0.13
//! writes its console lines (`NOTICE:  Finished scan of local files`), so that
//! scripts that grep 0.13's log for `ERROR` or `File statistics` keep working.
//!
//! Levels: tracing's ERROR, WARN, INFO, DEBUG, TRACE print as 0.13's ERROR,
//! WARNING, NOTICE, INFO, TRACE. The protocol log of `ExtendedLogging`
//! (target [`PROTOCOL_TARGET`]) goes to `ExtendedLogFile` when there is one.
//!
//! Besides the console: bbackupd.conf's `LogTo` sends the log to syslog or
//! journald (see [`bb_console::system`]); its `LogFile` writes 0.13's log
//! file format (`2026-11-25 05:34:32 [NOTICE]  text`) at `LogFileLevel`
//! (default INFO, as 0.13). While a progress line is on the terminal, console
//! lines go through its [`Term`] so that they never land inside it.
//!
//! Libraries only emit; the binaries install this.

use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use tracing::{Event, Level as TLevel, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use bb_console::{Destination, SystemLogSetup, Term};

use super::options::{Level, Timestamps};

/// The environment variable a detached bbackupd finds set (see
/// [`super::detach`]): its default log destination is syslog, as 0.13's.
pub const DETACHED_ENV: &str = "BB_DETACHED";

/// The tracing target of ExtendedLogging's lines (one per protocol command).
pub const PROTOCOL_TARGET: &str = "bbackupd::protocol";

/// Formats events as 0.13 does: level word padded to 9 columns, then the
/// message and its fields.
#[derive(Debug, Clone, Default)]
pub struct BoxFormat {
    pub timestamps: Option<Timestamps>,
    pub tag: Option<String>,
}

pub fn level_word(l: &TLevel) -> &'static str {
    match *l {
        TLevel::ERROR => "ERROR:   ",
        TLevel::WARN => "WARNING: ",
        TLevel::INFO => "NOTICE:  ",
        TLevel::DEBUG => "INFO:    ",
        _ => "TRACE:   ",
    }
}

impl<S, N> FormatEvent<S, N> for BoxFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if let Some(ts) = self.timestamps {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let s = now.as_secs() % 86400;
            write!(w, "{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)?;
            if ts == Timestamps::Micros {
                write!(w, ".{:06}", now.subsec_micros())?;
            }
            write!(w, " ")?;
        }
        if let Some(t) = &self.tag {
            write!(w, "[{t}] ")?;
        }
        write!(w, "{}", level_word(event.metadata().level()))?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Where log lines go.
#[derive(Debug, Clone, Default)]
pub struct LogSetup<'a> {
    /// Console verbosity; `None`: no console output (a detached daemon).
    pub console: Option<Level>,
    pub timestamps: Option<Timestamps>,
    pub tag: Option<String>,
    /// -o: a file and its level.
    pub file: Option<(&'a Path, Level)>,
    /// ExtendedLogFile: the protocol lines only.
    pub protocol_file: Option<&'a Path>,
    /// The environment variable that overrides the console filter.
    pub env: &'a str,
    /// Console lines to stdout (0.13 writes them there) instead of stderr.
    pub stdout: bool,
    /// The system log (`LogTo`, `SyslogFacility`); `None`: console only.
    pub system: Option<SystemLogSetup>,
    /// Where the log goes without `LogTo`; empty: the console. (A detached
    /// bbackupd: syslog, and the console too with -k, as 0.13.)
    pub default_to: &'a [Destination],
    /// bbackupd.conf's `LogFile`, at `LogFileLevel`, truncated first if
    /// `LogFileOverwrite`.
    pub log_file_013: Option<(&'a Path, Level, bool)>,
    /// The terminal a progress line is drawn on: console lines go through it.
    pub term: Option<Term>,
}

/// 0.13's log file lines: `YYYY-MM-DD HH:MM:SS [LEVEL]   text`, the level in
/// brackets padded to 10 columns [C]. The time is local when the zone can be
/// read safely, else UTC.
#[derive(Debug, Clone, Default)]
pub struct FileFormat;

fn file_level_word(l: &TLevel) -> &'static str {
    match *l {
        TLevel::ERROR => "[ERROR]   ",
        TLevel::WARN => "[WARNING] ",
        TLevel::INFO => "[NOTICE]  ",
        TLevel::DEBUG => "[INFO]    ",
        _ => "[TRACE]   ",
    }
}

impl<S, N> FormatEvent<S, N> for FileFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let t =
            time::OffsetDateTime::now_local().unwrap_or_else(|_| time::OffsetDateTime::now_utc());
        write!(
            w,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            file_level_word(event.metadata().level())
        )?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

fn open_append(p: &Path) -> std::io::Result<Mutex<std::fs::File>> {
    Ok(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)?,
    ))
}

/// Installs the subscriber (once per process; later calls do nothing). A log
/// file that cannot be opened is reported on stderr and left out.
pub fn init(s: &LogSetup<'_>) {
    let fmt = BoxFormat {
        timestamps: s.timestamps,
        tag: s.tag.clone(),
    };
    let default: &[Destination] = if s.default_to.is_empty() {
        &[Destination::Console]
    } else {
        s.default_to
    };
    let resolved = s.system.as_ref().map(|sys| sys.resolve(default));
    let to_console = resolved.as_ref().is_none_or(|r| r.console);
    let level_filter = |level: Level| {
        EnvFilter::try_from_env(s.env).unwrap_or_else(|_| EnvFilter::new(level.filter()))
    };
    let console = s.console.filter(|_| to_console).map(|level| {
        tracing_subscriber::fmt::layer()
            .event_format(fmt.clone())
            .with_writer(match (&s.term, s.stdout) {
                (Some(t), stdout) => BoxMakeWriter::new(t.log_writer(stdout)),
                (None, true) => BoxMakeWriter::new(std::io::stdout),
                (None, false) => BoxMakeWriter::new(std::io::stderr),
            })
            .with_ansi(false)
            .with_filter(level_filter(level))
    });
    let (system, warning) = match resolved {
        Some(r) => (r.system, r.warning),
        None => (None, None),
    };
    // The system log takes the console's verbosity (0.13: -q and -v apply to
    // both); a detached daemon has no console level of its own, so NOTICE.
    let system = system.map(|l| l.with_filter(level_filter(s.console.unwrap_or(Level::Notice))));
    let file_013 = s.log_file_013.and_then(|(path, level, overwrite)| {
        let f = if overwrite {
            std::fs::File::create(path).map(Mutex::new)
        } else {
            open_append(path)
        };
        match f {
            Ok(f) => Some(
                tracing_subscriber::fmt::layer()
                    .event_format(FileFormat)
                    .with_writer(f)
                    .with_ansi(false)
                    .with_filter(EnvFilter::new(level.filter())),
            ),
            Err(e) => {
                eprintln!("cannot open LogFile {}: {e}", path.display());
                None
            }
        }
    });
    let file = s.file.and_then(|(path, level)| match open_append(path) {
        Ok(f) => Some(
            tracing_subscriber::fmt::layer()
                .event_format(BoxFormat {
                    timestamps: Some(Timestamps::Seconds),
                    tag: s.tag.clone(),
                })
                .with_writer(f)
                .with_ansi(false)
                .with_filter(EnvFilter::new(level.filter())),
        ),
        Err(e) => {
            eprintln!("cannot open log file {}: {e}", path.display());
            None
        }
    });
    let protocol = s.protocol_file.and_then(|path| match open_append(path) {
        Ok(f) => Some(
            tracing_subscriber::fmt::layer()
                .event_format(BoxFormat {
                    timestamps: Some(Timestamps::Micros),
                    tag: None,
                })
                .with_writer(f)
                .with_ansi(false)
                .with_filter(Targets::new().with_target(PROTOCOL_TARGET, TLevel::TRACE)),
        ),
        Err(e) => {
            eprintln!("cannot open ExtendedLogFile {}: {e}", path.display());
            None
        }
    });
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(system)
        .with(file)
        .with(file_013)
        .with(protocol)
        .try_init();
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
}
