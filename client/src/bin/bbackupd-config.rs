//! bbackupd-config: writes a client's keys, certificate request, notify script
//! and bbackupd.conf. The logic lives in `bb_client::bbackupd_config`.

fn main() {
    let mut args = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(a) => {
                eprintln!(
                    "bbackupd-config: argument is not UTF-8: {}",
                    a.to_string_lossy()
                );
                std::process::exit(1);
            }
        }
    }
    // 0.13 had no --help (it printed its usage and failed); ours prints the
    // generated help and succeeds.
    if bb_format::clidoc::only_help(&args) {
        print!(
            "{}",
            bb_format::clidoc::help(&bb_client::doc::BBACKUPD_CONFIG)
        );
        std::process::exit(0);
    }
    let env = bb_client::bbackupd_config::Env::from_system();
    let code = bb_client::bbackupd_config::bbackupd_config(
        &args,
        &env,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    std::process::exit(code);
}
