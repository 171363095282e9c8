//! Log output of bbackupd and bbackupctl: tracing events written the way 0.13
//! writes its console lines (`NOTICE:  Finished scan of local files`), so that
//! scripts that grep 0.13's log for `ERROR` or `File statistics` keep working.
//!
//! Levels: tracing's ERROR, WARN, INFO, DEBUG, TRACE print as 0.13's ERROR,
//! WARNING, NOTICE, INFO, TRACE. The protocol log of `ExtendedLogging`
//! (target [`PROTOCOL_TARGET`]) goes to `ExtendedLogFile` when there is one.
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

use super::options::{Level, Timestamps};

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
    let console = s.console.map(|level| {
        let filter =
            EnvFilter::try_from_env(s.env).unwrap_or_else(|_| EnvFilter::new(level.filter()));
        tracing_subscriber::fmt::layer()
            .event_format(fmt.clone())
            .with_writer(if s.stdout {
                BoxMakeWriter::new(std::io::stdout)
            } else {
                BoxMakeWriter::new(std::io::stderr)
            })
            .with_ansi(false)
            .with_filter(filter)
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
        .with(file)
        .with(protocol)
        .try_init();
}
