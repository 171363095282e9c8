//! Log output of the server binaries: tracing to stderr, at 0.13's verbosity
//! flags. Libraries only emit; this installs the subscriber.

use super::options::Options;

pub fn init(opts: &Options) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BBSTORED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(opts.filter()));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let _ = if opts.timestamps {
        b.try_init()
    } else {
        b.without_time().try_init()
    };
}
