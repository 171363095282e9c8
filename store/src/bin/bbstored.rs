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
    bb_store::server::logging::init(&opts);
    match bb_store::server::daemon::main(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("bbstored: {e}");
            ExitCode::FAILURE
        }
    }
}
