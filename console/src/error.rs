//! Errors of this crate: a configuration value it does not know.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `LogTo` names something that is not a destination.
    #[error("unknown log destination '{0}' (expected console, stderr, syslog or journald)")]
    Destination(String),
    /// `SyslogFacility` names something that is not a facility.
    #[error("unknown syslog facility '{0}' (expected daemon, user, local0 ... local7, ...)")]
    Facility(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
