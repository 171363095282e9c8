//! bbstored-config: 0.13's server setup script, with its arguments, checks,
//! messages and files; the logic is in `bb_store::config_tool`.

fn main() {
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(a) => args.push(a),
            Err(a) => {
                eprintln!("bbstored-config: argument {a:?} is not UTF-8");
                std::process::exit(1);
            }
        }
    }
    // 0.13 had no --help (it printed its usage and failed); ours prints the
    // generated help and succeeds.
    if bb_format::clidoc::only_help(&args) {
        print!(
            "{}",
            bb_format::clidoc::help(&bb_store::doc::BBSTORED_CONFIG)
        );
        std::process::exit(0);
    }
    let ctx = bb_store::config_tool::Context::from_system();
    let code = bb_store::config_tool::run(
        &args,
        &ctx,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
