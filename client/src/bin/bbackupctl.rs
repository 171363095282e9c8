//! bbackupctl: controls a running bbackupd through its CommandSocket.

use std::process::ExitCode;

use bb_client::config::BackupdConfig;
use bb_client::ctl;
use bb_client::daemon::logging::{self, LogSetup};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // 0.13 refused -h and --help; ours prints the generated help.
    if bb_format::clidoc::only_help(&args) {
        print!("{}", bb_format::clidoc::help(&bb_client::doc::BBACKUPCTL));
        return ExitCode::SUCCESS;
    }
    let opts = match ctl::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bbackupctl: {e}\n");
            print!("{}", ctl::USAGE);
            return ExitCode::from(2);
        }
    };
    logging::init(&LogSetup {
        console: Some(opts.level),
        timestamps: opts.timestamps,
        tag: opts.tag.clone(),
        env: "BBACKUPCTL_LOG",
        // 0.13 writes its messages to stdout.
        stdout: true,
        ..LogSetup::default()
    });
    tracing::debug!("Using configuration file {}", opts.config.display());
    let config = match BackupdConfig::load(&opts.config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("Invalid configuration file: {e}");
            return ExitCode::from(1);
        }
    };
    if opts.command == "status" {
        let code = ctl::status(
            config.command_socket.as_deref(),
            &config.status_file_path(),
            opts.json,
        )
        .code();
        return ExitCode::from(code);
    }
    let Some(socket) = config.command_socket else {
        tracing::error!(
            "Daemon isn't using a control socket, could not execute command.\nAdd a CommandSocket declaration to the bbackupd.conf file."
        );
        return ExitCode::from(1);
    };
    ExitCode::from(ctl::run(&socket, &opts.command).code())
}
