//! bbackupquery: Box Backup 0.13's store query shell (see `bb_client::query`).

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // 0.13 refused -h and --help as unknown options; ours prints the generated
    // help. In-shell `help` keeps 0.13's texts.
    if let [a] = args.as_slice()
        && (a == "--help" || a == "-h")
    {
        print!("{}", bb_format::clidoc::help(&bb_client::doc::BBACKUPQUERY));
        std::process::exit(0);
    }
    let code = bb_client::query::cli::main(args);
    std::process::exit(code);
}
