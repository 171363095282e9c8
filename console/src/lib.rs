//! What reaches the operator, shared by the client and the store binaries:
//! the system log destinations (syslog, journald) as a tracing layer, the
//! one-line progress display with the terminal it shares with log lines, and
//! the readiness notice to the service manager (`systemd`).
//!
//! A crate of its own because both ends need it and neither lower crate may
//! have it: bb-format has no IO, bb-proto is the sans-IO protocol. It is not a
//! grab-bag: only output for people, log daemons and the service manager
//! belongs here.
//!
//! Must not know Box Backup's configuration syntax or any binary's console
//! format; the binaries pass in what the configuration says.

pub mod error;
pub mod journald;
pub mod progress;
pub mod syslog;
pub mod system;
pub mod systemd;

pub use error::{Error, Result};
pub use progress::{Counts, Progress, Term};
pub use syslog::Facility;
pub use system::{Destination, SystemLog, SystemLogSetup, parse_destinations};
