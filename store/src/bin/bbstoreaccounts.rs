//! bbstoreaccounts: Box Backup's account administration tool, as 0.13 has it
//! (arguments, messages on stdout, exit codes); the logic is in
//! `bb_store::accounts_tool`.

use std::sync::{Arc, Mutex};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // 0.13 had no --help (it printed its usage and failed); ours prints the
    // generated help and succeeds. Anything else keeps 0.13's behaviour.
    if bb_format::clidoc::only_help(&args) {
        print!(
            "{}",
            bb_format::clidoc::help(&bb_store::doc::BBSTOREACCOUNTS)
        );
        std::process::exit(0);
    }
    let console = bb_store::accounts_tool::Console::new(Arc::new(Mutex::new(std::io::stdout())));
    let code = bb_store::accounts_tool::run(
        &args,
        console,
        &mut std::io::stdin().lock(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
