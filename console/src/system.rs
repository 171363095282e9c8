//! The system log as a tracing layer: each event becomes one datagram to
//! syslog (`/dev/log`) or journald (`/run/systemd/journal/socket`).
//!
//! Owns the destination choice (`LogTo`), the socket and what happens when it
//! is not there: [`SystemLogSetup::resolve`] connects at start-up, and a socket
//! that cannot be reached turns into console output and one warning, so a
//! daemon never dies or waits for want of a log. A send that fails later (the
//! log daemon restarted) reconnects once and otherwise drops the line; sends
//! time out after [`SEND_TIMEOUT`] so a stalled log daemon stalls us at most
//! that long per line.
//!
//! The socket paths are fields, not constants reached from inside, so tests
//! point them at their own sockets: binaries fill them from
//! [`SYSLOG_SOCKET_ENV`] / [`JOURNALD_SOCKET_ENV`] in `main`.
//!
//! Must not know the binaries' console format or their levels' names beyond
//! tracing's.

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::error::{Error, Result};
use crate::journald;
use crate::syslog::{self, Facility};

/// Where syslog listens.
pub const SYSLOG_SOCKET: &str = "/dev/log";
/// Where journald listens for its native protocol.
pub const JOURNALD_SOCKET: &str = "/run/systemd/journal/socket";
/// Environment variables the binaries read in `main` to point the system log
/// elsewhere (tests do; nothing else should need to).
pub const SYSLOG_SOCKET_ENV: &str = "BB_SYSLOG_SOCKET";
pub const JOURNALD_SOCKET_ENV: &str = "BB_JOURNALD_SOCKET";

/// The longest wait for one datagram.
pub const SEND_TIMEOUT: Duration = Duration::from_millis(500);

/// One `LogTo` destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The tool's console stream (`console` or `stderr`; bbackupd -F writes
    /// its console lines to stdout, as 0.13 does).
    Console,
    Syslog,
    Journald,
}

/// Parses a `LogTo` value: one or more of `console` (or `stderr`), `syslog`,
/// `journald`, separated by commas or spaces; `none` for no log at all.
pub fn parse_destinations(v: &str) -> Result<Vec<Destination>> {
    let mut out = Vec::new();
    for w in v
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
    {
        let d = match w.to_ascii_lowercase().as_str() {
            "console" | "stderr" => Destination::Console,
            "syslog" => Destination::Syslog,
            "journald" | "journal" => Destination::Journald,
            "none" => continue,
            _ => return Err(Error::Destination(w.to_string())),
        };
        if !out.contains(&d) {
            out.push(d);
        }
    }
    if out.is_empty() && !v.split_whitespace().any(|w| w.eq_ignore_ascii_case("none")) {
        return Err(Error::Destination(v.to_string()));
    }
    Ok(out)
}

/// Which system log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemKind {
    Syslog,
    Journald,
}

/// What a binary knows about its log destinations before installing them.
#[derive(Debug, Clone, Default)]
pub struct SystemLogSetup {
    /// `LogTo`; `None`: not configured (the caller's default applies).
    pub destinations: Option<Vec<Destination>>,
    /// `SyslogFacility` (default daemon, as 0.13).
    pub facility: Facility,
    /// SYSLOG_IDENTIFIER / the syslog tag: the program name.
    pub ident: String,
    /// Overrides of [`SYSLOG_SOCKET`] and [`JOURNALD_SOCKET`] (tests).
    pub syslog_socket: Option<PathBuf>,
    pub journald_socket: Option<PathBuf>,
}

/// The outcome of [`SystemLogSetup::resolve`].
#[derive(Debug)]
pub struct Resolved {
    /// Write log lines to the console.
    pub console: bool,
    /// The system log layer, if one was asked for and could be reached.
    pub system: Option<SystemLog>,
    /// Say this once (on the console) when the system log could not be reached.
    pub warning: Option<String>,
}

impl SystemLogSetup {
    /// Reads the socket overrides from the environment (for `main` only).
    pub fn with_env_overrides(mut self) -> SystemLogSetup {
        self.syslog_socket = std::env::var_os(SYSLOG_SOCKET_ENV).map(PathBuf::from);
        self.journald_socket = std::env::var_os(JOURNALD_SOCKET_ENV).map(PathBuf::from);
        self
    }

    /// Decides where lines go. `default` applies when `LogTo` is not set.
    /// Syslog and journald both asked for: journald wins (it keeps the
    /// structure; it forwards to syslog itself where configured).
    pub fn resolve(&self, default: &[Destination]) -> Resolved {
        let want = self.destinations.as_deref().unwrap_or(default);
        let mut console = want.contains(&Destination::Console);
        let kind = if want.contains(&Destination::Journald) {
            Some(SystemKind::Journald)
        } else if want.contains(&Destination::Syslog) {
            Some(SystemKind::Syslog)
        } else {
            None
        };
        let mut warning = None;
        let system = kind.and_then(|kind| {
            let path = match kind {
                SystemKind::Syslog => self.syslog_socket.as_deref(),
                SystemKind::Journald => self.journald_socket.as_deref(),
            }
            .unwrap_or(Path::new(match kind {
                SystemKind::Syslog => SYSLOG_SOCKET,
                SystemKind::Journald => JOURNALD_SOCKET,
            }));
            match SystemLog::connect(kind, path, &self.ident, self.facility) {
                Ok(l) => Some(l),
                Err(e) => {
                    console = true;
                    warning = Some(format!(
                        "cannot log to {} ({}: {e}); logging to the console instead",
                        match kind {
                            SystemKind::Syslog => "syslog",
                            SystemKind::Journald => "journald",
                        },
                        path.display()
                    ));
                    None
                }
            }
        });
        Resolved {
            console,
            system,
            warning,
        }
    }
}

/// The layer: see the module header.
#[derive(Debug)]
pub struct SystemLog {
    kind: SystemKind,
    path: PathBuf,
    ident: String,
    facility: Facility,
    pid: u32,
    socket: Mutex<UnixDatagram>,
}

fn connect(path: &Path) -> std::io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.connect(path)?;
    s.set_write_timeout(Some(SEND_TIMEOUT))?;
    Ok(s)
}

impl SystemLog {
    /// Connects to the socket at `path` (it must exist and listen).
    pub fn connect(
        kind: SystemKind,
        path: &Path,
        ident: &str,
        facility: Facility,
    ) -> std::io::Result<SystemLog> {
        Ok(SystemLog {
            kind,
            path: path.to_path_buf(),
            ident: ident.to_string(),
            facility,
            pid: std::process::id(),
            socket: Mutex::new(connect(path)?),
        })
    }

    /// The datagram for one event.
    fn encode(&self, event: &Event<'_>) -> Vec<u8> {
        let meta = event.metadata();
        let mut text = Text::default();
        event.record(&mut text);
        let severity = syslog::severity(meta.level());
        match self.kind {
            SystemKind::Syslog => syslog::datagram(
                self.facility,
                severity,
                &self.ident,
                self.pid,
                &format!("{}{}", syslog::level_prefix(meta.level()), text.0),
            ),
            SystemKind::Journald => {
                let mut d = Vec::with_capacity(text.0.len() + 128);
                journald::push_field(&mut d, "MESSAGE", journald::message(&text.0).as_bytes());
                journald::push_field(&mut d, "PRIORITY", severity.to_string().as_bytes());
                journald::push_field(&mut d, "SYSLOG_IDENTIFIER", self.ident.as_bytes());
                journald::push_field(
                    &mut d,
                    "SYSLOG_FACILITY",
                    self.facility.code().to_string().as_bytes(),
                );
                journald::push_field(&mut d, "SYSLOG_PID", self.pid.to_string().as_bytes());
                if let Some(f) = meta.file() {
                    journald::push_field(&mut d, "CODE_FILE", f.as_bytes());
                }
                if let Some(l) = meta.line() {
                    journald::push_field(&mut d, "CODE_LINE", l.to_string().as_bytes());
                }
                journald::push_field(&mut d, "TARGET", meta.target().as_bytes());
                d
            }
        }
    }

    fn send(&self, d: &[u8]) {
        let mut s = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        if s.send(d).is_ok() {
            return;
        }
        // The log daemon may have restarted (a new socket at the same path).
        if let Ok(fresh) = connect(&self.path) {
            *s = fresh;
            let _ = s.send(d);
        }
    }
}

impl<S: Subscriber> Layer<S> for SystemLog {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let d = self.encode(event);
        self.send(&d);
    }
}

/// An event's text: the message, then `key=value` for other fields (as
/// tracing-subscriber's console format writes them).
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn destinations() {
        use Destination::*;
        assert_eq!(parse_destinations("syslog").unwrap(), vec![Syslog]);
        assert_eq!(
            parse_destinations("stderr, journald").unwrap(),
            vec![Console, Journald]
        );
        assert_eq!(
            parse_destinations("Console syslog").unwrap(),
            vec![Console, Syslog]
        );
        assert_eq!(parse_destinations("none").unwrap(), vec![]);
        assert!(parse_destinations("file").is_err());
        assert!(parse_destinations("").is_err());
    }

    #[test]
    fn missing_socket_falls_back_to_the_console_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let setup = SystemLogSetup {
            destinations: Some(vec![Destination::Syslog]),
            ident: "t".into(),
            syslog_socket: Some(dir.path().join("nothing")),
            ..SystemLogSetup::default()
        };
        let r = setup.resolve(&[]);
        assert!(r.console && r.system.is_none());
        assert!(r.warning.unwrap().contains("nothing"));
    }

    #[test]
    fn events_arrive_as_datagrams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for kind in [SystemKind::Syslog, SystemKind::Journald] {
            let layer = SystemLog::connect(kind, &path, "bbtest", Facility::DAEMON).unwrap();
            let sub = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(sub, || {
                tracing::warn!(id = 7, "two\nlines");
            });
            let mut buf = vec![0; 70000];
            let n = rx.recv(&mut buf).unwrap();
            let d = &buf[..n];
            match kind {
                SystemKind::Syslog => {
                    let want = format!(
                        "<28>bbtest[{}]: WARNING: two\nlines id=7",
                        std::process::id()
                    );
                    assert_eq!(String::from_utf8_lossy(d), want);
                }
                SystemKind::Journald => {
                    let f = journald::parse(d).unwrap();
                    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                    assert_eq!(get("MESSAGE").unwrap(), b"two\nlines id=7");
                    assert_eq!(get("PRIORITY").unwrap(), b"4");
                    assert_eq!(get("SYSLOG_IDENTIFIER").unwrap(), b"bbtest");
                    assert!(get("CODE_LINE").is_some());
                }
            }
        }
    }
}
