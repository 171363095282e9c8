//! bbackupquery: Box Backup 0.13's store query shell (see `bb_client::query`).

fn main() {
    let code = bb_client::query::cli::main(std::env::args_os().skip(1).collect());
    std::process::exit(code);
}
