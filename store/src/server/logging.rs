//! Log output of the server binaries: tracing to the console at 0.13's
//! verbosity flags, and to syslog or journald as bbstored.conf's `LogTo`
//! says. Libraries only emit; this installs the subscriber.
//!
//! Without `LogTo`, a foreground bbstored logs to the console only (0.13 also
//! copies it to syslog; we keep test runs out of the system log) and a
//! detached one to syslog, as 0.13 does.

use bb_console::{Destination, SystemLogSetup};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use super::options::Options;

/// The environment variable the detached child finds set (see
/// [`super::daemon`]'s detach): its default destination is syslog.
pub const DETACHED_ENV: &str = "BB_DETACHED";

fn filter(opts: &Options) -> EnvFilter {
    EnvFilter::try_from_env("BBSTORED_LOG").unwrap_or_else(|_| EnvFilter::new(opts.filter()))
}

/// Installs the subscriber. `system` carries `LogTo`, `SyslogFacility` and
/// the socket overrides; `detached` picks the default destination.
pub fn init(opts: &Options, system: &SystemLogSetup, detached: bool) {
    let default: &[Destination] = if detached {
        &[Destination::Syslog]
    } else {
        &[Destination::Console]
    };
    let r = system.resolve(default);
    let console: Option<Box<dyn Layer<Registry> + Send + Sync>> = r.console.then(|| {
        let l = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_target(false);
        if opts.timestamps {
            l.with_filter(filter(opts)).boxed()
        } else {
            l.without_time().with_filter(filter(opts)).boxed()
        }
    });
    let sys = r.system.map(|s| s.with_filter(filter(opts)));
    // -o: appended to, with times, at -O's level (a file that cannot be
    // opened is said once on the other destinations, not a failed start).
    let mut file_error = None;
    let file = opts.log_file.as_ref().and_then(|path| {
        match std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            Ok(f) => Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::sync::Mutex::new(f))
                    .with_ansi(false)
                    .with_target(false)
                    .with_filter(EnvFilter::new(opts.file_filter())),
            ),
            Err(e) => {
                file_error = Some(format!("cannot log to {}: {e}", path.display()));
                None
            }
        }
    });
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(sys)
        .with(file)
        .try_init();
    if let Some(w) = r.warning {
        tracing::warn!("{w}");
    }
    if let Some(w) = file_error {
        tracing::warn!("{w}");
    }
}
