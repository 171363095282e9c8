//! `bbackupfs`: mounts a Box Backup store read-only (see `bbackupfs --help`).

fn main() -> std::process::ExitCode {
    bb_fs::mount::main()
}
