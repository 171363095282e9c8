//! bbackupd: the Box Backup client daemon (0.13-compatible command line, plus
//! `--once`).

use std::process::ExitCode;

use bb_client::daemon::logging::{self, LogSetup};
use bb_client::daemon::runner::SyncRunner;
use bb_client::daemon::{self, exit, options, setup};

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
    let ext = runner.setup();
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
