//! The progress line: one line on a terminal's stderr, redrawn in place with
//! `\r` and erase-to-end-of-line, at most [`INTERVAL`] apart, wiped when the
//! operation ends.
//!
//! A [`Term`] is the terminal shared by the progress line and everything else
//! that prints there: log lines go through [`Term::log_writer`] and other
//! output through [`Term::suspend`], which wipe the line first and draw it
//! again after, so a log line never lands in the middle of a progress line.
//!
//! Progress is for people: a tool draws it only when stderr is a terminal and
//! it was not asked to be quiet ([`Term::for_progress`]); otherwise there is
//! no [`Term`] and output is byte for byte what it is without this module.
//!
//! Own code rather than `indicatif`: we need one plain line and the log
//! interplay above; indicatif's bars, styles and its own draw thread and
//! terminal probing (console crate) are much more than that, and its
//! `suspend` would still need wiring into tracing the same way.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shortest time between two draws (four a second).
pub const INTERVAL: Duration = Duration::from_millis(250);

/// Rate and time left are shown once this much time has passed (before, they
/// would be noise).
const SETTLE: Duration = Duration::from_millis(200);

struct State {
    out: Box<dyn Write + Send>,
    /// The progress line on screen, if any.
    line: Option<String>,
}

/// See the module header. Cloning shares the terminal.
#[derive(Clone)]
pub struct Term {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Term").finish_non_exhaustive()
    }
}

impl Term {
    /// A terminal writing to `out` (stderr, or a buffer in tests).
    pub fn new(out: Box<dyn Write + Send>) -> Term {
        Term {
            state: Arc::new(Mutex::new(State { out, line: None })),
        }
    }

    /// stderr, if progress is wanted: stderr is a terminal and not `quiet`.
    pub fn for_progress(quiet: bool) -> Option<Term> {
        (!quiet && io::stderr().is_terminal()).then(|| Term::new(Box::new(io::stderr())))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Draws `line` in place of the current progress line.
    pub fn draw(&self, line: &str) {
        let mut s = self.lock();
        let _ = write!(s.out, "\r{line}\x1b[K");
        let _ = s.out.flush();
        s.line = Some(line.to_string());
    }

    /// Wipes the progress line for good (until the next [`Term::draw`]).
    pub fn clear(&self) {
        let mut s = self.lock();
        if s.line.take().is_some() {
            let _ = write!(s.out, "\r\x1b[K");
            let _ = s.out.flush();
        }
    }

    /// Runs `f` (which prints to the same terminal) with the progress line
    /// wiped, then draws it again.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        let mut s = self.lock();
        let line = s.line.clone();
        if line.is_some() {
            let _ = write!(s.out, "\r\x1b[K");
            let _ = s.out.flush();
        }
        let r = f();
        if let Some(l) = line {
            let _ = write!(s.out, "\r{l}\x1b[K");
            let _ = s.out.flush();
        }
        r
    }

    /// Writes `bytes` to this terminal's own stream, around the progress line.
    pub fn write_through(&self, bytes: &[u8]) {
        let mut s = self.lock();
        let line = s.line.clone();
        if line.is_some() {
            let _ = s.out.write_all(b"\r\x1b[K");
        }
        let _ = s.out.write_all(bytes);
        if let Some(l) = line {
            let _ = write!(s.out, "\r{l}\x1b[K");
        }
        let _ = s.out.flush();
    }

    /// A tracing `MakeWriter` for log lines: to this terminal's stream, or to
    /// stdout when `stdout` (both on the same screen).
    pub fn log_writer(&self, stdout: bool) -> LogWriter {
        LogWriter {
            term: self.clone(),
            stdout,
        }
    }
}

/// See [`Term::log_writer`].
#[derive(Debug, Clone)]
pub struct LogWriter {
    term: Term,
    stdout: bool,
}

/// One log event's bytes, written around the progress line when dropped.
#[derive(Debug)]
pub struct EventWriter {
    term: Term,
    stdout: bool,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if self.stdout {
            let buf = std::mem::take(&mut self.buf);
            self.term.suspend(|| {
                let mut o = io::stdout().lock();
                let _ = o.write_all(&buf);
                let _ = o.flush();
            });
        } else {
            self.term.write_through(&self.buf);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = EventWriter;
    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            term: self.term.clone(),
            stdout: self.stdout,
            buf: Vec::new(),
        }
    }
}

/// Where an operation is: what the line shows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// "Restoring", "Comparing", "Uploading", ...
    pub verb: &'static str,
    /// "files", "objects", ...
    pub noun: &'static str,
    pub items: u64,
    pub items_total: Option<u64>,
    /// Bytes moved so far (the rate is of these).
    pub bytes: u64,
    pub bytes_total: Option<u64>,
    /// How much of the work is done, 0..=1, when the caller measures it in
    /// another unit than bytes (e.g. store blocks); else bytes or items.
    pub fraction: Option<f64>,
    /// Files and bytes sent on (a backup's uploads), shown after the rest.
    pub sent: Option<(u64, u64)>,
}

impl Counts {
    fn fraction_done(&self) -> Option<f64> {
        self.fraction
            .or_else(|| {
                self.bytes_total
                    .filter(|&t| t > 0)
                    .map(|t| self.bytes as f64 / t as f64)
            })
            .or_else(|| {
                self.items_total
                    .filter(|&t| t > 0)
                    .map(|t| self.items as f64 / t as f64)
            })
    }
}

/// The line for `c` after `elapsed`.
pub fn render(c: &Counts, elapsed: Duration) -> String {
    let mut s = format!("{} {}", c.verb, c.items);
    if let Some(t) = c.items_total {
        s.push_str(&format!("/{t}"));
    }
    s.push_str(&format!(" {}, {}", c.noun, human(c.bytes as f64)));
    if let Some(t) = c.bytes_total {
        s.push_str(&format!(" of {}", human(t as f64)));
    }
    if elapsed >= SETTLE {
        let secs = elapsed.as_secs_f64();
        s.push_str(&format!(", {}/s", human(c.bytes as f64 / secs)));
        if let Some(f) = c.fraction_done().filter(|f| *f > 0.0 && *f < 1.0) {
            s.push_str(&format!(", {} left", clock(secs * (1.0 - f) / f)));
        }
    }
    if let Some((n, b)) = c.sent {
        s.push_str(&format!("; {n} sent ({})", human(b as f64)));
    }
    s
}

/// A size in binary units, one decimal.
pub fn human(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A duration as m:ss or h:mm:ss.
pub fn clock(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// One operation's progress line (see the module header). Off when made
/// without a [`Term`]; wiped when finished or dropped.
#[derive(Debug)]
pub struct Progress {
    term: Option<Term>,
    start: Instant,
    last: Option<Instant>,
}

impl Progress {
    pub fn new(term: Option<Term>) -> Progress {
        Progress {
            term,
            start: Instant::now(),
            last: None,
        }
    }

    pub fn off() -> Progress {
        Progress::new(None)
    }

    pub fn is_on(&self) -> bool {
        self.term.is_some()
    }

    /// The terminal, for output that must go around the line.
    pub fn term(&self) -> Option<&Term> {
        self.term.as_ref()
    }

    /// Shows `c`: the first call draws at once, later ones at most every
    /// [`INTERVAL`].
    pub fn update(&mut self, c: &Counts) {
        self.update_at(c, Instant::now());
    }

    /// [`Progress::update`] at a given moment (tests).
    pub fn update_at(&mut self, c: &Counts, now: Instant) {
        let Some(term) = &self.term else { return };
        if self
            .last
            .is_some_and(|l| now.saturating_duration_since(l) < INTERVAL)
        {
            return;
        }
        self.last = Some(now);
        term.draw(&render(c, now.saturating_duration_since(self.start)));
    }

    /// Wipes the line.
    pub fn finish(&mut self) {
        if let Some(t) = &self.term {
            t.clear();
        }
        self.last = None;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn renders_rate_and_time_left() {
        let c = Counts {
            verb: "Restoring",
            noun: "files",
            items: 3,
            items_total: Some(10),
            bytes: 2 * 1024 * 1024,
            bytes_total: Some(8 * 1024 * 1024),
            fraction: None,
            sent: None,
        };
        assert_eq!(
            render(&c, Duration::from_secs(2)),
            "Restoring 3/10 files, 2.0 MiB of 8.0 MiB, 1.0 MiB/s, 0:06 left"
        );
        // Too early for a rate.
        assert_eq!(
            render(&c, Duration::from_millis(10)),
            "Restoring 3/10 files, 2.0 MiB of 8.0 MiB"
        );
        // No totals: no time left.
        let c = Counts {
            items_total: None,
            bytes_total: None,
            ..c
        };
        assert_eq!(
            render(&c, Duration::from_secs(1)),
            "Restoring 3 files, 2.0 MiB, 2.0 MiB/s"
        );
        let c = Counts {
            sent: Some((2, 1536)),
            ..c
        };
        assert_eq!(
            render(&c, Duration::from_millis(1)),
            "Restoring 3 files, 2.0 MiB; 2 sent (1.5 KiB)"
        );
        assert_eq!(clock(3725.0), "1:02:05");
    }

    #[test]
    fn throttles_and_wipes_itself() {
        let buf = Buf::default();
        let term = Term::new(Box::new(buf.clone()));
        let mut p = Progress::new(Some(term.clone()));
        let c = Counts {
            verb: "Checking",
            noun: "objects",
            ..Counts::default()
        };
        let t0 = Instant::now();
        p.update_at(&c, t0);
        p.update_at(&c, t0 + Duration::from_millis(100));
        p.update_at(&c, t0 + Duration::from_millis(300));
        assert_eq!(buf.text().matches('\r').count(), 2);
        // A log line wipes the line, then it comes back.
        {
            let mut w = tracing_subscriber::fmt::MakeWriter::make_writer(&term.log_writer(false));
            w.write_all(b"NOTICE:  hello\n").unwrap();
        }
        assert!(
            buf.text()
                .ends_with("\r\x1b[KNOTICE:  hello\n\rChecking 0 objects, 0 B, 0 B/s\x1b[K")
        );
        drop(p);
        assert!(buf.text().ends_with("\r\x1b[K"));
        // Off: nothing at all.
        let mut q = Progress::off();
        q.update(&c);
        q.finish();
    }
}
