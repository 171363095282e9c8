//! raidfile-config: writes raidfile.conf, with 0.13's arguments and output.
//! The logic lives in `bb_raid::config::raidfile_config`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // 0.13 had no --help (it printed its usage and failed); ours prints the
    // generated help and succeeds. Anything else keeps 0.13's behaviour.
    if bb_format::clidoc::only_help(&args) {
        print!(
            "{}",
            bb_format::clidoc::help(&bb_store::doc::RAIDFILE_CONFIG)
        );
        std::process::exit(0);
    }
    let is_root = rustix_free_is_root();
    let code = bb_raid::config::raidfile_config(
        &args,
        is_root,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}

/// The effective user is root when the files it creates are owned by uid 0; reading
/// /proc/self's owner gives the same answer as geteuid() without unsafe code.
fn rustix_free_is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
