//! bb-tests: the test kit and the end-to-end and interop suites. Not published.
//!
//! The kit owns what several suites need: the fixture pack written by the real
//! Box Backup 0.13 (`fixtures`), processes of the real 0.13 binaries and their
//! configuration (`bb013`), generated source trees that change between backup
//! rounds, a comparison of two trees by content and attributes (`tree`), and a
//! raw protocol client that can also misbehave (`raw`).
//!
//! It must not know how our own server or client work inside: suites drive them
//! through their public entry points, exactly as they drive 0.13.

pub mod bb013;
pub mod docs;
pub mod fixtures;
pub mod metrics;
pub mod mount;
pub mod ours;
pub mod raw;
pub mod tree;

/// A free TCP port on 127.0.0.1 (bound once and released; good enough for tests
/// that start a server right after, since the kernel does not hand it out again
/// at once).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Whether this process runs as root (owners, setuid bits and FUSE need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
