//! bbstored: the Box Backup store server (0.13-compatible).

use std::process::ExitCode;

use bb_format::clidoc;
use bb_store::doc::BBSTORED;
use bb_store::server::options;

fn main() -> ExitCode {
    let opts = match options::parse(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{}", clidoc::help(&BBSTORED));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bbstored: {e}\n\n{}", clidoc::help(&BBSTORED));
            return ExitCode::from(2);
        }
    };
    // The log destinations come from the configuration; a configuration
    // that does not load is reported by `daemon::main` below.
    let config = bb_store::server::config::ServerConfig::load(&opts.config).ok();
    let system = bb_console::SystemLogSetup {
        destinations: config.as_ref().and_then(|c| c.log_to.clone()),
        facility: config.map(|c| c.syslog_facility).unwrap_or_default(),
        ident: "bbstored".into(),
        ..Default::default()
    }
    .with_env_overrides();
    let detached = std::env::var_os(bb_store::server::logging::DETACHED_ENV).is_some();
    bb_store::server::logging::init(&opts, &system, detached);
    match bb_store::server::daemon::main(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("bbstored: {e}");
            ExitCode::FAILURE
        }
    }
}
