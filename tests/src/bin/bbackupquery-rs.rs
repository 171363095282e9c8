//! Our bbackupquery under the name `bbackupquery-rs`, built with this package so
//! that the suites here can run the binary (`CARGO_BIN_EXE_bbackupquery-rs`):
//! Cargo only builds a package's own binaries for its integration tests. Same
//! entry point as `client/src/bin/bbackupquery.rs`.

fn main() {
    let code = bb_client::query::cli::main(std::env::args_os().skip(1).collect());
    std::process::exit(code);
}
