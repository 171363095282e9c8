//! Where housekeeping and the store checker send their messages.
//!
//! Owns: the message levels of 0.13's logger and the `Reporter` seam. The text of
//! each message is 0.13's, word for word, because `bbstoreaccounts` prints it as
//! 0.13 does and administrators' scripts grep for it; a daemon passes
//! [`TracingReporter`] instead. Must not know: where the text ends up.

/// 0.13's log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Fatal,
    Error,
    Warning,
    Notice,
    Info,
    Trace,
}

impl Level {
    /// The prefix 0.13 writes on the console, padded to 9 columns ("NOTICE:  ").
    pub fn console_prefix(self) -> &'static str {
        match self {
            Level::Fatal => "FATAL:   ",
            Level::Error => "ERROR:   ",
            Level::Warning => "WARNING: ",
            Level::Notice => "NOTICE:  ",
            Level::Info => "INFO:    ",
            Level::Trace => "TRACE:   ",
        }
    }
}

/// Receives messages.
pub trait Reporter {
    fn report(&mut self, level: Level, message: &str);

    /// How far a long pass has got: `done` of `total` `what` ("objects",
    /// "directories"), `bytes` read so far. For a progress line on a terminal;
    /// most reporters ignore it.
    fn progress(&mut self, _what: &'static str, _done: u64, _total: u64, _bytes: u64) {}
}

/// Forwards to `tracing` (bbstored).
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingReporter;

impl Reporter for TracingReporter {
    fn report(&mut self, level: Level, message: &str) {
        match level {
            Level::Fatal | Level::Error => tracing::error!("{message}"),
            Level::Warning => tracing::warn!("{message}"),
            Level::Notice | Level::Info => tracing::info!("{message}"),
            Level::Trace => tracing::debug!("{message}"),
        }
    }
}

/// Keeps every message (tests).
#[derive(Debug, Default, Clone)]
pub struct CollectReporter {
    pub lines: Vec<(Level, String)>,
}

impl CollectReporter {
    /// The messages as 0.13 would print them on the console.
    pub fn console_text(&self) -> String {
        self.lines
            .iter()
            .map(|(l, m)| format!("{}{m}\n", l.console_prefix()))
            .collect()
    }
}

impl Reporter for CollectReporter {
    fn report(&mut self, level: Level, message: &str) {
        self.lines.push((level, message.to_string()));
    }
}

/// `BOX_FORMAT_ACCOUNT`: `0x` and 8 lowercase hex digits.
pub fn fmt_account(account: u32) -> String {
    format!("0x{account:08x}")
}

/// `BOX_FORMAT_OBJECTID`: `0x` and lowercase hex without padding; C++'s
/// `std::showbase` leaves the prefix off zero, so 0 is "0".
pub fn fmt_id(id: i64) -> String {
    if id == 0 {
        "0".to_string()
    } else {
        format!("0x{id:x}")
    }
}
