//! bb-remote's conformance suite (`bb_remote::conformance`, which the in-memory
//! fake also passes) against both real servers: our bbstored in-process and the
//! real 0.13 bbstored, each on a fresh account; then the hard limit, a
//! read-only login, and what only a real server can show (our early reply
//! during an upload, 0.13's fatal `Error(0,-1)` and a reconnect after it, a
//! reconnect after our server restarts).

use std::path::Path;
use std::time::Duration;

use bb_format::Keys;
use bb_proto::ErrorCode;
use bb_proto::message::flags;
use bb_remote::{Config, Session, StoreRead, StoreWrite, conformance};
use bb_tests::fixtures::{self, ACCOUNT};
use bb_tests::ours::{OurServer, StoreDir};
use bb_tests::{bb013, free_port};

/// The fixture keys (the files the suite uploads are encrypted with them).
fn keys() -> Keys {
    Keys::from_file(&fixtures::keys_file()).unwrap()
}

fn config(port: u16, read_only: bool) -> Config {
    fixtures::remote_config(port, read_only)
}

fn ours(tmp: &Path, soft: i64, hard: i64) -> (StoreDir, OurServer) {
    let store = StoreDir::create(&tmp.join("store"), free_port(), true);
    store.create_account(ACCOUNT, soft, hard);
    let server = OurServer::start(&store.conf);
    (store, server)
}

/// A fresh single-disc store with the fixture account, made by 0.13's
/// bbstoreaccounts, and 0.13's bbstored on it.
fn theirs(tmp: &Path, soft: &str, hard: &str) -> (u16, bb013::Daemon) {
    let port = free_port();
    let store = bb_tests::ours::StoreDir::create(&tmp.join("store"), port, false);
    let conf = store.conf;
    bb013::create_fixture_account(&conf, soft, hard);
    let d = bb013::start_bbstored(&conf, port, &tmp.join("bbstored.log"));
    (port, d)
}

#[test]
fn our_bbstored_passes_the_conformance_suite() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _server) = ours(tmp.path(), 20_000, 40_000);
    let keys = keys();
    let mut s = Session::open(config(store.port, false)).unwrap();
    conformance::run(&mut s, &keys);
    assert_eq!(s.connects(), 1, "no reconnect was needed");
    s.finish().unwrap();
    let mut ro = Session::open(config(store.port, true)).unwrap();
    conformance::read_only(&mut ro, &keys);
    ro.finish().unwrap();
}

#[test]
fn bbstored_013_passes_the_conformance_suite() {
    let tmp = tempfile::tempdir().unwrap();
    let (port, _d) = theirs(tmp.path(), "80M", "160M");
    let keys = keys();
    let mut s = Session::open(config(port, false)).unwrap();
    conformance::run(&mut s, &keys);
    assert_eq!(s.connects(), 1);

    // 0.13 answers a file ID where a directory belongs with the fatal
    // Error(0,-1) and closes (§3.2): the connection counts as gone, and the
    // session's next call logs in again.
    let root = s
        .list_directory(1, flags::INCLUDE_EVERYTHING, flags::EXCLUDE_NOTHING, false)
        .unwrap();
    let dir_a = root.entries[0].object_id;
    let file = s
        .list_directory(dir_a, flags::FILE, 0, false)
        .unwrap()
        .entries[0]
        .object_id;
    let e = s
        .list_directory(file, flags::INCLUDE_EVERYTHING, 0, false)
        .unwrap_err();
    assert!(e.is_connection_lost() && e.code().is_none(), "{e}");
    assert!(!s.is_connected());
    s.list_directory(1, flags::INCLUDE_EVERYTHING, 0, false)
        .unwrap();
    assert_eq!(s.connects(), 2);
    s.finish().unwrap();

    let mut ro = Session::open(config(port, true)).unwrap();
    conformance::read_only(&mut ro, &keys);
    ro.finish().unwrap();
}

#[test]
fn hard_limit_on_both_servers() {
    let keys = keys();
    let tmp = tempfile::tempdir().unwrap();
    let (store, server) = ours(&tmp.path().join("ours"), 40, 50);
    let mut s = Session::open(config(store.port, false)).unwrap();
    conformance::hard_limit(&mut s, &keys);
    s.finish().unwrap();

    // Ours refuses early: a big upload stops long before its end. What the
    // client still sends is what the network holds in flight when the reply
    // comes (docs/protocol.md "Hard limit early").
    let big = conformance::noise(32 << 20, 9);
    let kit = conformance::Kit { keys: &keys };
    let encoded = kit.encode(1, "too big", &big);
    let before = server
        .server
        .counters
        .bytes_in
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut s = Session::open(config(store.port, false)).unwrap();
    let e = s
        .store_file(
            1,
            &kit.name("too big"),
            1,
            0,
            0,
            &mut std::io::Cursor::new(&encoded),
        )
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::StorageLimitExceeded), "{e}");
    s.finish().unwrap();
    assert!(server.server.sessions.wait_idle(Duration::from_secs(10)));
    let got = server
        .server
        .counters
        .bytes_in
        .load(std::sync::atomic::Ordering::Relaxed)
        - before;
    eprintln!(
        "early reply: {} bytes encoded, the server received {got}",
        encoded.len()
    );
    assert!(
        got < encoded.len() as u64 / 2,
        "the upload went on after the early reply: {got} of {}",
        encoded.len()
    );

    // 0.13 answers only after the whole upload; the session goes on all the same.
    let (port, _d) = theirs(&tmp.path().join("theirs"), "40B", "50B");
    let mut s = Session::open(config(port, false)).unwrap();
    conformance::hard_limit(&mut s, &keys);
    s.finish().unwrap();
}

#[test]
fn a_session_logs_in_again_after_our_server_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, mut server) = ours(tmp.path(), 1000, 2000);
    let mut s = Session::open(config(store.port, false)).unwrap();
    s.set_client_store_marker(99).unwrap();
    server.stop();
    let mut server = OurServer::start(&store.conf);
    let e = s.usage().unwrap_err();
    assert!(e.is_connection_lost(), "{e}");
    let u = s.usage().unwrap();
    assert_eq!((u.client_store_marker, s.connects()), (99, 2));
    assert_eq!(s.login().client_store_marker, 99);
    s.finish().unwrap();
    server.stop();
}
