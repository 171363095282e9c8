//! bbstored-certs: the certificate authority tool, with 0.13's arguments, layout,
//! prompts and exit statuses. The logic lives in `bb_proto::pki::certs`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // 0.13 had no --help (it printed its usage and failed); ours prints the
    // generated help and succeeds. Anything else keeps 0.13's behaviour.
    if bb_format::clidoc::only_help(&args) {
        print!(
            "{}",
            bb_format::clidoc::help(&bb_store::doc::BBSTORED_CERTS)
        );
        std::process::exit(0);
    }
    let code = bb_proto::pki::certs::bbstored_certs(
        &args,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
