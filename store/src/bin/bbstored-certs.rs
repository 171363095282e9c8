//! bbstored-certs: the certificate authority tool, with 0.13's arguments, layout,
//! prompts and exit statuses. The logic lives in `bb_proto::pki::certs`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = bb_proto::pki::certs::bbstored_certs(
        &args,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
