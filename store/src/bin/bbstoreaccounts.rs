//! bbstoreaccounts: Box Backup's account administration tool, as 0.13 has it
//! (arguments, messages on stdout, exit codes); the logic is in
//! `bb_store::accounts_tool`.

use std::sync::{Arc, Mutex};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let console = bb_store::accounts_tool::Console::new(Arc::new(Mutex::new(std::io::stdout())));
    let code = bb_store::accounts_tool::run(
        &args,
        console,
        &mut std::io::stdin().lock(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
