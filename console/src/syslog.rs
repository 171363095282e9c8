//! The syslog datagram, as glibc's `syslog(3)` sends it to `/dev/log` for
//! Box Backup 0.13 (RFC 3164 style): `<PRI>ident[pid]: NOTICE: text`.
//!
//! 0.13, captured on its /dev/log [C]: every tool logs with facility `daemon`
//! (the bbackupd man page says local5; the binaries say `<29>` = daemon.notice),
//! severities notice (its NOTICE), info (INFO), debug (TRACE), warning, err and
//! crit (FATAL); the text of NOTICE, WARNING, ERROR and FATAL lines starts with
//! the level word and one space, INFO and TRACE lines have none; a message with
//! newlines is sent whole in one datagram.
//!
//! We leave out the timestamp glibc puts after `<PRI>`: it is local time,
//! which needs the zone database, and a local syslog daemon (rsyslog,
//! syslog-ng, journald's /dev/log) stamps the reception time when there is
//! none, which on a local socket is the same moment.
//!
//! Pure: bytes out, no socket (that is [`crate::system`]'s).

use tracing::Level;

use crate::error::{Error, Result};

/// A syslog facility (RFC 5424 table 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(u8);

impl Facility {
    /// 0.13's facility for every tool [C].
    pub const DAEMON: Facility = Facility(3);

    /// The names `SyslogFacility` takes, as syslog.conf spells them.
    const NAMES: [(&'static str, u8); 20] = [
        ("kern", 0),
        ("user", 1),
        ("mail", 2),
        ("daemon", 3),
        ("auth", 4),
        ("syslog", 5),
        ("lpr", 6),
        ("news", 7),
        ("uucp", 8),
        ("cron", 9),
        ("authpriv", 10),
        ("ftp", 11),
        ("local0", 16),
        ("local1", 17),
        ("local2", 18),
        ("local3", 19),
        ("local4", 20),
        ("local5", 21),
        ("local6", 22),
        ("local7", 23),
    ];

    /// A facility by its syslog.conf name, any case.
    pub fn by_name(name: &str) -> Result<Facility> {
        let n = name.trim().to_ascii_lowercase();
        Facility::NAMES
            .iter()
            .find(|(k, _)| *k == n)
            .map(|&(_, code)| Facility(code))
            .ok_or_else(|| Error::Facility(name.to_string()))
    }

    pub fn code(self) -> u8 {
        self.0
    }
}

impl Default for Facility {
    fn default() -> Facility {
        Facility::DAEMON
    }
}

/// The syslog severity of a tracing level, mapped through 0.13's levels
/// (tracing INFO is 0.13's NOTICE, DEBUG its INFO, TRACE its TRACE).
pub fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 5,
        Level::DEBUG => 6,
        _ => 7,
    }
}

/// The level word 0.13 puts before the text in the system log.
pub fn level_prefix(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR: ",
        Level::WARN => "WARNING: ",
        Level::INFO => "NOTICE: ",
        _ => "",
    }
}

/// The largest datagram we send. A local socket takes far more, but syslog
/// daemons cut lines at 8 KiB or less anyway (rsyslog's default is 8 KiB).
pub const MAX_DATAGRAM: usize = 8192;

/// One datagram: `<PRI>ident[pid]: text`, cut at [`MAX_DATAGRAM`] (on a
/// character boundary, ending in "...") so that a huge message still arrives.
pub fn datagram(facility: Facility, severity: u8, ident: &str, pid: u32, text: &str) -> Vec<u8> {
    let pri = u16::from(facility.0) * 8 + u16::from(severity & 7);
    let mut out = format!("<{pri}>{ident}[{pid}]: ");
    let room = MAX_DATAGRAM.saturating_sub(out.len());
    if text.len() <= room {
        out.push_str(text);
    } else {
        let mut end = room.saturating_sub(3);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&text[..end]);
        out.push_str("...");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_013s_datagram() {
        // 0.13's bbstored on /dev/log: b"<29>Nov 25 05:32:55 bbstored[22215]: NOTICE: Starting daemon, ..."
        let d = datagram(
            Facility::DAEMON,
            severity(&Level::INFO),
            "bbstored",
            22215,
            &format!("{}Starting daemon", level_prefix(&Level::INFO)),
        );
        assert_eq!(d, b"<29>bbstored[22215]: NOTICE: Starting daemon");
        // bbackupctl's TRACE line: <31>, no level word.
        let d = datagram(Facility::DAEMON, severity(&Level::TRACE), "x", 1, "t");
        assert_eq!(d, b"<31>x[1]: t");
        assert_eq!(severity(&Level::WARN), 4);
        assert_eq!(severity(&Level::ERROR), 3);
        assert_eq!(severity(&Level::DEBUG), 6);
    }

    #[test]
    fn facilities_by_name() {
        assert_eq!(Facility::by_name("Daemon").unwrap(), Facility::DAEMON);
        assert_eq!(Facility::by_name("local5").unwrap().code(), 21);
        assert!(Facility::by_name("local8").is_err());
        let d = datagram(Facility::by_name("local5").unwrap(), 5, "b", 2, "m");
        assert_eq!(d, b"<173>b[2]: m");
    }

    #[test]
    fn cuts_huge_messages_on_a_char_boundary() {
        let text = "é".repeat(MAX_DATAGRAM);
        let d = datagram(Facility::DAEMON, 5, "b", 2, &text);
        assert!(d.len() <= MAX_DATAGRAM);
        let s = String::from_utf8(d).unwrap();
        assert!(s.ends_with("..."));
    }
}
