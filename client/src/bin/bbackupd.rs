//! bbackupd: the Box Backup client daemon (0.13-compatible command line, plus
//! `--once`).

use std::process::ExitCode;

use bb_client::daemon::logging::{self, LogSetup};
use bb_client::daemon::options::Level;
use bb_client::daemon::runner::SyncRunner;
use bb_client::daemon::{self, exit, options, setup};
use bb_console::{Destination, SystemLogSetup, Term};

fn main() -> ExitCode {
    let opts = match options::parse(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{}", bb_format::clidoc::help(&bb_client::doc::BBACKUPD));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let help = bb_format::clidoc::help(&bb_client::doc::BBACKUPD);
            eprintln!("bbackupd: {e}\n\n{help}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    // The configuration is checked before detaching, so that its errors reach
    // the console; the detached child reads it again.
    let runner = match SyncRunner::new(&opts.config, setup::load) {
        Ok(r) => r,
        Err(e) => {
            // The error names the file (and line) itself.
            eprintln!("bbackupd: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    if !opts.foreground {
        return match daemon::detach(opts.keep_console) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bbackupd: cannot start in the background: {e}");
                ExitCode::from(exit::FAILED)
            }
        };
    }
    let ext = runner.setup().clone();
    let mut runner = runner;
    // The logging keys; the file has just been read without error.
    let conf = bb_client::config::BackupdConfig::load(&opts.config).ok();
    let detached = std::env::var_os(logging::DETACHED_ENV).is_some();
    let default_to: &[Destination] = match (detached, opts.keep_console) {
        (false, _) => &[],
        (true, false) => &[Destination::Syslog],
        (true, true) => &[Destination::Syslog, Destination::Console],
    };
    let log_file_013 = conf.as_ref().and_then(|c| {
        let level = c.log_file_level.as_deref().map_or(Some(Level::Info), |l| {
            Level::by_name(&l.to_ascii_lowercase())
        });
        Some((
            c.log_file.as_deref()?,
            level.unwrap_or(Level::Info),
            c.log_file_overwrite,
        ))
    });
    // A run by hand shows its progress on the terminal, unless -q.
    let term = if opts.once {
        Term::for_progress(opts.level < Level::Notice)
    } else {
        None
    };
    runner.set_progress(term.clone());
    logging::init(&LogSetup {
        console: Some(opts.level),
        timestamps: opts.timestamps,
        tag: opts.tag.clone(),
        file: opts.log_file.as_deref().map(|p| (p, opts.file_level)),
        protocol_file: if ext.extended_logging {
            ext.extended_log_file.as_deref()
        } else {
            None
        },
        env: "BBACKUPD_LOG",
        // 0.13 writes its console log to stdout; --once keeps stdout clean.
        stdout: !opts.once,
        system: Some(
            SystemLogSetup {
                destinations: conf.as_ref().and_then(|c| c.log_to.clone()),
                facility: conf.as_ref().map(|c| c.syslog_facility).unwrap_or_default(),
                ident: "bbackupd".into(),
                ..SystemLogSetup::default()
            }
            .with_env_overrides(),
        ),
        default_to,
        log_file_013,
        term,
    });
    if opts.once {
        return ExitCode::from(daemon::once(runner));
    }
    match daemon::serve(runner) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("bbackupd: {e}");
            ExitCode::from(exit::FAILED)
        }
    }
}
