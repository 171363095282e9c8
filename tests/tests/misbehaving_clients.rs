//! Clients that break the rules, against our bbstored in-process (issue 4):
//! malformed frames, missing and mistyped object ids, commands out of phase,
//! stream/object confusion, connections dropped in the middle of an upload or
//! of a reply, a second writer, refused certificates, idle and stalled
//! clients, and uploads over the hard limit.
//!
//! After every case a well-behaved client logs in read/write, lists the root,
//! uploads a file and fetches it back ([`healthy`]): one bad session must
//! never hurt the next (protocol.md §4.7 rule 3). Where a session should go
//! on after an error reply, the same session then answers GetIsAlive.
//!
//! Stores are RAID (three discs), so that a stray `.rfw`/`.rfwX` (an object
//! written but never committed or transformed) shows up in a walk of the discs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bb_proto::message::{
    AccountUsage2, CreateDirectory, DeleteDirectory, GetAccountUsage2, GetBlockIndexById, GetFile,
    GetIsAlive, GetObject, ListDirectory, Login, Version, flags,
};
use bb_proto::pki::{KeyKind, TestPki, make_test_pki};
use bb_proto::{Command, ErrorCode, ErrorReply, IDENT, Reply};
use bb_tests::fixtures::ACCOUNT;
use bb_tests::ours::{OurServer, StoreDir};
use bb_tests::raw::{ClientCerts, RawClient};
use bb_tests::{bb013, free_port};

const ROOT: i64 = 1;
/// Long enough for any answer on a loaded 2-core machine, short enough to fail fast.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

/// A store with the fixture account and our server on it. The write-lock
/// retry is shortened (0.13: 4 x 1 s) so that a lock a dying session still
/// holds for a moment does not cost seconds.
fn setup(tmp: &Path, soft: i64, hard: i64) -> (StoreDir, OurServer) {
    let store = StoreDir::create(&tmp.join("store"), free_port(), true);
    store.create_account(ACCOUNT, soft, hard);
    let server = start(&store, 20, Duration::from_millis(50));
    (store, server)
}

fn start(store: &StoreDir, lock_retries: u32, lock_retry_delay: Duration) -> OurServer {
    OurServer::start_with(&store.conf, |s| {
        let ctx = std::sync::Arc::get_mut(&mut s.store).expect("store context not shared yet");
        ctx.lock_retries = lock_retries;
        ctx.lock_retry_delay = lock_retry_delay;
    })
}

fn fixture() -> ClientCerts {
    ClientCerts::fixture()
}

fn code(r: &Reply) -> Option<ErrorCode> {
    r.as_error().and_then(ErrorReply::code)
}

fn expect_code(r: &Reply, want: ErrorCode, what: &str) {
    assert_eq!(code(r), Some(want), "{what}: {r:?}");
}

fn expect_fatal(r: &Reply, what: &str) {
    assert!(
        matches!(r, Reply::Error(e) if e.is_fatal()),
        "{what}: expected Error(0,-1), got {r:?}"
    );
}

fn success_id(r: &Reply, what: &str) -> i64 {
    match r {
        Reply::Success(s) => s.object_id,
        other => panic!("{what}: {other:?}"),
    }
}

/// Deterministic incompressible bytes (xorshift64*).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A well-behaved client: logs in read/write at once (no stale lock), lists
/// the root, uploads a small file and gets it back intact.
fn healthy(port: u16, certs: &ClientCerts) {
    let t = Instant::now();
    let mut c = RawClient::open(port, certs, ACCOUNT, false)
        .unwrap_or_else(|e| panic!("a well-behaved client cannot log in: {e}"));
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "read/write login took {:?}",
        t.elapsed()
    );
    let (r, listing) = c.list(ROOT).unwrap();
    success_id(&r, "ListDirectory(root)");
    assert!(listing.is_some());
    let n = NEXT_NAME.fetch_add(1, Ordering::Relaxed);
    let content = format!("health check {n}\n").repeat(50);
    let r = c
        .upload_file(ROOT, &format!("health-{n}"), content.as_bytes())
        .unwrap();
    let id = success_id(&r, "StoreFile");
    let (r, data) = c.get_file(ROOT, id).unwrap();
    success_id(&r, "GetFile");
    let file = bb_format::decode::decode_file(&c.keys, &data.unwrap()).unwrap();
    assert_eq!(file.content, content.as_bytes());
    c.finish().unwrap();
}

/// Files under the discs that are objects written but not committed or
/// transformed: partial uploads.
fn strays(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                // The refcount database is a plain `.rfw` file by design (0.13 too).
                let stray = (name.ends_with(".rfw") && name != "refcount.rdb.rfw")
                    || name.ends_with(".rfwX")
                    || name.contains("tmp");
                if stray {
                    out.push(p);
                }
            }
        }
    }
    out
}

fn no_strays(store: &StoreDir, what: &str) {
    let s = strays(&store.dir);
    assert!(s.is_empty(), "{what}: partial objects left on disc: {s:?}");
}

/// Every store-info counter, seen by a read-only session.
fn usage(port: u16) -> AccountUsage2 {
    let mut c = RawClient::open(port, &fixture(), ACCOUNT, true).unwrap();
    let r = c.call(&GetAccountUsage2 {}.into(), None).unwrap().0;
    c.finish().unwrap();
    match r {
        Reply::AccountUsage2(u) => u,
        other => panic!("GetAccountUsage2: {other:?}"),
    }
}

/// The counters that an upload which never completed must not move.
/// `last_object_id_used` is left out: like 0.13 we allocate the id before the
/// data arrives and do not hand it back.
fn same_usage(a: &AccountUsage2, b: &AccountUsage2, what: &str) {
    let pick = |u: &AccountUsage2| {
        (
            u.blocks_used,
            u.blocks_in_current_files,
            u.blocks_in_old_files,
            u.blocks_in_deleted_files,
            u.blocks_in_directories,
            u.num_current_files,
            u.num_old_files,
            u.num_deleted_files,
            u.num_directories,
        )
    };
    assert_eq!(pick(a), pick(b), "{what}: counters moved");
}

fn wait_sessions_end(server: &OurServer) {
    assert!(
        server.server.sessions.wait_idle(CLOSE_WAIT),
        "a session did not end"
    );
}

fn object(size: u32, kind: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&size.to_be_bytes());
    v.extend_from_slice(&kind.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn encoded(cmd: &Command) -> Vec<u8> {
    cmd.to_bytes().unwrap()
}

#[derive(Clone, Copy, Debug)]
enum At {
    /// Straight after the TLS handshake, before the idents.
    Tls,
    /// After the idents (Version phase).
    Ident,
    /// Logged in read/write.
    Commands,
}

fn client_at(port: u16, at: At) -> RawClient {
    match at {
        At::Tls => RawClient::connect(port, &fixture()).unwrap(),
        At::Ident => {
            let mut c = RawClient::connect(port, &fixture()).unwrap();
            c.hello().unwrap();
            c
        }
        At::Commands => RawClient::open(port, &fixture(), ACCOUNT, false).unwrap(),
    }
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, server) = setup(tmp.path(), 1000, 2000);
    let port = store.port;
    healthy(port, &fixture());

    let mut wrong_ident = IDENT.to_vec();
    wrong_ident[12] ^= 0x20;
    // GetFile's body is two int64s; DeleteFile's is an int64 and a filename.
    let get_file = encoded(
        &GetFile {
            in_directory: 1,
            object_id: 2,
        }
        .into(),
    );
    let mut short = get_file[..get_file.len() - 3].to_vec();
    short[3] -= 3;
    let mut long = get_file.clone();
    long.extend_from_slice(&[0, 0, 0, 0]);
    long[3] += 4;
    let delete_file = {
        let c = RawClient::connect(port, &fixture()).unwrap();
        let name = c.name("victim").unwrap();
        c.close_tls();
        encoded(
            &bb_proto::message::DeleteFile {
                in_directory: 1,
                filename: name,
            }
            .into(),
        )
    };
    let filename_at = 8 + 8;
    let with_name_header = |h: [u8; 2]| {
        let mut v = delete_file.clone();
        v[filename_at] = h[0];
        v[filename_at + 1] = h[1];
        v
    };
    // The header is a little-endian u16: length << 2 | encoding (§2.4).
    let (h0, h1) = (delete_file[filename_at], delete_file[filename_at + 1]);
    let name_too_long = with_name_header([0xFE, 0xFF]);
    let name_encoding_0 = with_name_header([h0 & !3, h1]);
    let name_encoding_3 = with_name_header([h0 | 3, h1]);
    let name_len_1 = with_name_header([0x06, 0x00]);

    let cases: Vec<(&str, At, Vec<u8>)> = vec![
        ("truncated ident", At::Tls, IDENT[..17].to_vec()),
        ("wrong ident", At::Tls, wrong_ident),
        ("garbage for an ident", At::Tls, noise(300, 1)),
        ("object size < 8", At::Ident, object(4, 1, &[])),
        ("object size > 16384", At::Commands, object(16385, 42, &[])),
        ("unknown type number", At::Commands, object(8, 7, &[])),
        (
            "unknown type 1000",
            At::Ident,
            object(12, 1000, &[0, 0, 0, 1]),
        ),
        (
            "stream header for a command",
            At::Commands,
            object(16, 0xFFFF_FFFF, &[0; 8]),
        ),
        ("short body", At::Commands, short),
        ("long body", At::Commands, long),
        (
            "filename longer than its object",
            At::Commands,
            name_too_long,
        ),
        ("filename encoding 0", At::Commands, name_encoding_0),
        ("filename encoding 3", At::Commands, name_encoding_3),
        ("filename length < 2", At::Commands, name_len_1),
        ("garbage", At::Commands, noise(5000, 2)),
    ];
    for (what, at, bytes) in cases {
        let mut c = client_at(port, at);
        c.send_raw(&bytes).unwrap();
        if matches!(at, At::Tls) && what == "truncated ident" {
            // Nothing more comes: the server waits out its operation timeout
            // at most; the clean close from us ends it at once.
            c.close_tls();
        } else {
            assert!(
                c.closed_by_server(CLOSE_WAIT),
                "{what}: the server kept the connection open"
            );
        }
        wait_sessions_end(&server);
        healthy(port, &fixture());
    }

    // A reply type sent as a command: 0.13 answers the fatal error, then closes.
    for at in [At::Ident, At::Commands] {
        let mut c = client_at(port, at);
        c.send_raw(&object(16, 5, &[0; 8])).unwrap();
        expect_fatal(&c.read_reply().unwrap(), "Success sent as a command");
        assert!(c.closed_by_server(CLOSE_WAIT));
        healthy(port, &fixture());
    }
    no_strays(&store, "after malformed frames");
}

#[test]
fn missing_and_mistyped_ids_get_error_replies_and_the_session_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _server) = setup(tmp.path(), 1000, 2000);
    let port = store.port;
    let mut c = RawClient::open(port, &fixture(), ACCOUNT, false).unwrap();
    let file_id = success_id(
        &c.upload_file(ROOT, "a file", b"some content").unwrap(),
        "upload",
    );
    let attrs = bb_format::attributes::encrypt(&c.keys, &[0u8; 8]);
    let dir_cmd = CreateDirectory {
        containing_directory_id: ROOT,
        attributes_mod_time: 0,
        directory_name: c.name("a dir").unwrap(),
    };
    let dir_id = success_id(
        &c.call(&dir_cmd.into(), Some(&attrs)).unwrap().0,
        "CreateDirectory",
    );
    let missing = 0x7777_i64;
    let list = |id: i64| -> Command {
        ListDirectory {
            object_id: id,
            flags_must_be_set: flags::INCLUDE_EVERYTHING,
            flags_not_to_be_set: flags::EXCLUDE_NOTHING,
            send_attributes: false,
        }
        .into()
    };
    use ErrorCode::*;
    let cases: Vec<(&str, Command, ErrorCode)> = vec![
        ("ListDirectory(missing)", list(missing), DoesNotExist),
        ("ListDirectory(0)", list(0), DoesNotExist),
        ("ListDirectory(-1)", list(-1), DoesNotExist),
        ("ListDirectory(a file)", list(file_id), DoesNotExist),
        (
            "GetFile(missing)",
            GetFile {
                in_directory: ROOT,
                object_id: missing,
            }
            .into(),
            DoesNotExist,
        ),
        (
            "GetFile(in a missing directory)",
            GetFile {
                in_directory: missing,
                object_id: file_id,
            }
            .into(),
            DoesNotExist,
        ),
        (
            "GetFile(in a file)",
            GetFile {
                in_directory: file_id,
                object_id: file_id,
            }
            .into(),
            DoesNotExist,
        ),
        (
            "GetFile(a directory)",
            GetFile {
                in_directory: ROOT,
                object_id: dir_id,
            }
            .into(),
            FileDoesNotVerify,
        ),
        (
            "GetFile(not in that directory)",
            GetFile {
                in_directory: dir_id,
                object_id: file_id,
            }
            .into(),
            DoesNotExistInDirectory,
        ),
        (
            "GetObject(missing)",
            GetObject { object_id: missing }.into(),
            DoesNotExist,
        ),
        (
            "GetObject(0)",
            GetObject { object_id: 0 }.into(),
            DoesNotExist,
        ),
        (
            "GetBlockIndexByID(missing)",
            GetBlockIndexById { object_id: missing }.into(),
            DoesNotExist,
        ),
        (
            "GetBlockIndexByID(a directory)",
            GetBlockIndexById { object_id: dir_id }.into(),
            DoesNotExist,
        ),
        (
            "DeleteDirectory(missing)",
            DeleteDirectory { object_id: missing }.into(),
            DoesNotExist,
        ),
        (
            "DeleteDirectory(a file)",
            DeleteDirectory { object_id: file_id }.into(),
            DoesNotExist,
        ),
        (
            "DeleteDirectory(root)",
            DeleteDirectory { object_id: ROOT }.into(),
            CannotDeleteRoot,
        ),
    ];
    for (what, cmd, want) in cases {
        let (r, data) = c.call(&cmd, None).unwrap();
        expect_code(&r, want, what);
        assert!(data.is_none());
        assert!(c.is_alive().unwrap(), "{what}: session out of step");
    }
    // The right ids still work in the same session.
    success_id(&c.list(dir_id).unwrap().0, "ListDirectory(dir)");
    success_id(&c.get_file(ROOT, file_id).unwrap().0, "GetFile");
    c.finish().unwrap();
    healthy(port, &fixture());
}

#[test]
fn commands_out_of_phase_get_error_2_and_the_session_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _server) = setup(tmp.path(), 1000, 2000);
    let port = store.port;
    let login: Command = Login {
        client_id: ACCOUNT as i32,
        flags: 0,
    }
    .into();
    let version: Command = Version { version: 1 }.into();
    let alive: Command = GetIsAlive {}.into();
    let phase = ErrorCode::NotInRightProtocolPhase;

    // Before Version.
    let mut c = client_at(port, At::Ident);
    expect_code(
        &c.call(&login, None).unwrap().0,
        phase,
        "Login before Version",
    );
    expect_code(
        &c.call(&alive, None).unwrap().0,
        phase,
        "GetIsAlive before Version",
    );
    expect_code(
        &c.call(&Version { version: 2 }.into(), None).unwrap().0,
        ErrorCode::WrongVersion,
        "Version(2)",
    );
    assert!(matches!(
        c.call(&version, None).unwrap().0,
        Reply::Version(_)
    ));
    // Version twice.
    expect_code(&c.call(&version, None).unwrap().0, phase, "Version twice");
    // Before Login, with a command stream that must be drained.
    let store_file = c.store_file_command(ROOT, "early").unwrap();
    let data = c.encode_file(ROOT, "early", b"too early").unwrap();
    expect_code(
        &c.call(&store_file, Some(&data)).unwrap().0,
        phase,
        "StoreFile before Login",
    );
    expect_code(
        &c.call(&alive, None).unwrap().0,
        phase,
        "GetIsAlive before Login",
    );
    assert!(matches!(
        c.call(&login, None).unwrap().0,
        Reply::LoginConfirmed(_)
    ));
    // Login twice, Version after Login.
    expect_code(&c.call(&login, None).unwrap().0, phase, "Login twice");
    expect_code(
        &c.call(&version, None).unwrap().0,
        phase,
        "Version after Login",
    );
    assert!(c.is_alive().unwrap());
    c.finish().unwrap();

    // A write in a read-only session.
    let mut c = RawClient::open(port, &fixture(), ACCOUNT, true).unwrap();
    let r = c.upload_file(ROOT, "read-only", b"nope").unwrap();
    expect_code(&r, ErrorCode::SessionReadOnly, "StoreFile read-only");
    assert!(c.is_alive().unwrap());
    c.finish().unwrap();
    healthy(port, &fixture());
    no_strays(&store, "after out-of-phase commands");
}

#[test]
fn stream_confusion_is_fatal_for_its_connection_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, server) = setup(tmp.path(), 1000, 2000);
    let port = store.port;
    let mut c = client_at(port, At::Commands);
    let attrs = bb_format::attributes::encrypt(&c.keys, &[0u8; 8]);
    let mkdir = |c: &RawClient, n: &str| -> Vec<u8> {
        encoded(
            &CreateDirectory {
                containing_directory_id: ROOT,
                attributes_mod_time: 0,
                directory_name: c.name(n).unwrap(),
            }
            .into(),
        )
    };

    // A chunked attribute stream (0.13: fatal, close).
    let mut out = mkdir(&c, "chunked");
    bb_proto::stream::encode_chunked(&attrs, &mut out);
    c.send_raw(&out).unwrap();
    expect_fatal(&c.read_reply().unwrap(), "chunked attributes");
    assert!(c.closed_by_server(CLOSE_WAIT));
    healthy(port, &fixture());

    // An object where the attribute stream was expected.
    let mut c = client_at(port, At::Commands);
    let mut out = mkdir(&c, "object");
    out.extend_from_slice(&encoded(&GetIsAlive {}.into()));
    c.send_raw(&out).unwrap();
    expect_fatal(&c.read_reply().unwrap(), "object for attributes");
    assert!(c.closed_by_server(CLOSE_WAIT));
    healthy(port, &fixture());

    // An object where the file stream was expected.
    let mut c = client_at(port, At::Commands);
    let mut out = encoded(&c.store_file_command(ROOT, "object").unwrap());
    out.extend_from_slice(&encoded(&GetIsAlive {}.into()));
    c.send_raw(&out).unwrap();
    expect_fatal(&c.read_reply().unwrap(), "object for a file");
    assert!(c.closed_by_server(CLOSE_WAIT));
    healthy(port, &fixture());

    // A reserved chunk header (254) in the middle of an upload.
    let mut c = client_at(port, At::Commands);
    let file = c.encode_file(ROOT, "reserved", &noise(100_000, 3)).unwrap();
    let mut out = encoded(&c.store_file_command(ROOT, "reserved").unwrap());
    let mut enc = bb_proto::stream::ChunkedEncoder::begin(&mut out);
    enc.push(&file[..50_000], &mut out);
    out.push(254);
    out.extend_from_slice(&[0u8; 1000]);
    c.send_raw(&out).unwrap();
    expect_fatal(&c.read_reply().unwrap(), "chunk header 254");
    assert!(c.closed_by_server(CLOSE_WAIT));
    healthy(port, &fixture());

    // An attribute stream over the 1 MiB cap, announced in its header.
    let mut c = client_at(port, At::Commands);
    let mut out = mkdir(&c, "huge attributes");
    out.extend_from_slice(&RawClient::sized_header(64 << 20));
    c.send_raw(&out).unwrap();
    expect_fatal(&c.read_reply().unwrap(), "64 MiB of attributes");
    assert!(c.closed_by_server(CLOSE_WAIT));

    wait_sessions_end(&server);
    healthy(port, &fixture());
    no_strays(&store, "after stream confusion");
}

/// Starts an upload of `content` and sends about `part` bytes of its stream.
fn partial_upload(port: u16, name: &str, content: &[u8], part: usize) -> RawClient {
    let mut c = client_at(port, At::Commands);
    let file = c.encode_file(ROOT, name, content).unwrap();
    let mut out = encoded(&c.store_file_command(ROOT, name).unwrap());
    let mut enc = bb_proto::stream::ChunkedEncoder::begin(&mut out);
    enc.push(&file[..part], &mut out);
    c.send_raw(&out).unwrap();
    // Let the server write some of it to disc.
    std::thread::sleep(Duration::from_millis(200));
    c
}

#[test]
fn connections_dropped_mid_upload_or_mid_reply_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), true);
    store.create_account(ACCOUNT, 10_000, 20_000);
    // 0.13's lock retry (4 x 1 s): a stale lock would show as a slow login.
    let server = start(&store, 4, Duration::from_secs(1));
    let port = store.port;
    healthy(port, &fixture());
    let before = usage(port);
    let content = noise(3 << 20, 4);

    // TCP close without close_notify, then a clean TLS close, mid-stream.
    let c = partial_upload(port, "dropped", &content, 1 << 20);
    c.abort();
    wait_sessions_end(&server);
    no_strays(&store, "TCP dropped mid-upload");
    healthy(port, &fixture());

    let c = partial_upload(port, "closed", &content, 1 << 20);
    c.close_tls();
    wait_sessions_end(&server);
    no_strays(&store, "TLS closed mid-upload");
    healthy(port, &fixture());

    // A sized stream that ends early (the client dies after the header).
    let mut c = client_at(port, At::Commands);
    let mut out = encoded(&c.store_file_command(ROOT, "sized").unwrap());
    out.extend_from_slice(&RawClient::sized_header(1 << 20));
    out.extend_from_slice(&content[..1000]);
    c.send_raw(&out).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.abort();
    wait_sessions_end(&server);
    no_strays(&store, "sized stream cut short");
    healthy(port, &fixture());

    // The health checks added one small file each; nothing else changed.
    let after = usage(port);
    let mut expected = before.clone();
    let h = after.num_current_files - before.num_current_files;
    assert_eq!(h, 3, "three health-check files: {after:?}");
    expected.num_current_files += h;
    expected.blocks_used += after.blocks_in_current_files - before.blocks_in_current_files;
    expected.blocks_in_current_files = after.blocks_in_current_files;
    expected.blocks_in_directories = after.blocks_in_directories;
    expected.blocks_used += after.blocks_in_directories - before.blocks_in_directories;
    same_usage(&expected, &after, "dropped uploads");
    assert!(
        after.blocks_in_current_files - before.blocks_in_current_files <= 3 * 2,
        "a partial upload was counted: {before:?} -> {after:?}"
    );

    // A client that asks for a big file and goes away before reading it, and
    // one that reads a little of it first.
    let mut c = client_at(port, At::Commands);
    let big = success_id(&c.upload_file(ROOT, "big", &content).unwrap(), "upload big");
    c.finish().unwrap();
    for read_some in [false, true] {
        let mut c = client_at(port, At::Commands);
        c.send_command(
            &GetFile {
                in_directory: ROOT,
                object_id: big,
            }
            .into(),
            None,
        )
        .unwrap();
        if read_some {
            success_id(&c.read_reply().unwrap(), "GetFile reply");
        }
        c.abort();
        wait_sessions_end(&server);
        healthy(port, &fixture());
    }
    no_strays(&store, "after dropped readers");
}

#[test]
fn a_second_writer_is_refused_while_readers_work() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), true);
    store.create_account(ACCOUNT, 1000, 2000);
    let retries = 3;
    let delay = Duration::from_millis(200);
    let _server = start(&store, retries, delay);
    let port = store.port;
    let mut writer = RawClient::open(port, &fixture(), ACCOUNT, false).unwrap();
    let id = success_id(
        &writer.upload_file(ROOT, "shared", b"hello").unwrap(),
        "upload",
    );

    let mut second = RawClient::start(port, &fixture()).unwrap();
    let t = Instant::now();
    let r = second.login(ACCOUNT, false).unwrap();
    let took = t.elapsed();
    expect_code(&r, ErrorCode::CannotLockStoreForWriting, "second writer");
    // 0.13 retries the lock before refusing (its 4 x 1 s, here 3 x 200 ms).
    assert!(
        took >= delay * retries,
        "refused after {took:?}, without retrying"
    );
    assert!(took < Duration::from_secs(5), "refused after {took:?}");
    // The refused session is still in the Login phase; it can log in read-only.
    assert!(matches!(
        second.login(ACCOUNT, true).unwrap(),
        Reply::LoginConfirmed(_)
    ));
    let (r, data) = second.get_file(ROOT, id).unwrap();
    success_id(&r, "reader GetFile");
    let f = bb_format::decode::decode_file(&second.keys, &data.unwrap()).unwrap();
    assert_eq!(f.content, b"hello");

    // A read-only session alongside the writer, while the writer keeps writing.
    let mut reader = RawClient::open(port, &fixture(), ACCOUNT, true).unwrap();
    success_id(&reader.list(ROOT).unwrap().0, "reader ListDirectory");
    success_id(
        &writer.upload_file(ROOT, "more", b"more").unwrap(),
        "upload",
    );
    success_id(&reader.list(ROOT).unwrap().0, "reader ListDirectory");
    reader.finish().unwrap();
    second.finish().unwrap();
    writer.finish().unwrap();
    healthy(port, &fixture());
}

/// Rewrites a `Key = value` line of bbstored.conf, or adds the key: at the top
/// (root keys) or at the start of the Server block.
fn set_conf_key(store: &StoreDir, key: &str, value: &str, in_server_block: bool) {
    let text = std::fs::read_to_string(&store.conf).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if let Some(l) = lines.iter_mut().find(|l| {
        l.trim_start().starts_with(&format!("{key} "))
            || l.trim_start().starts_with(&format!("{key}="))
    }) {
        let indent: String = l.chars().take_while(|c| c.is_whitespace()).collect();
        *l = format!("{indent}{key} = {value}");
    } else if in_server_block {
        let at = lines.iter().position(|l| l.trim() == "{").unwrap() + 1;
        lines.insert(at, format!("\t{key} = {value}"));
    } else {
        lines.insert(0, format!("{key} = {value}"));
    }
    std::fs::write(&store.conf, lines.join("\n") + "\n").unwrap();
}

/// The serial of a certificate from `TestPki::issue_client` (in its file name).
fn serial_of(cert: &Path) -> u64 {
    let name = cert.file_name().unwrap().to_string_lossy();
    name.strip_prefix("serial")
        .and_then(|n| n.strip_suffix("-cert.pem"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no serial in {name}"))
}

fn refused(port: u16, certs: &ClientCerts, what: &str) {
    if let Ok(mut c) = RawClient::start(port, certs) {
        // TLS 1.3 finishes the client's side of the handshake before the
        // server has looked at the certificate: the refusal shows here.
        let r = c.login(ACCOUNT, true);
        panic!("{what}: accepted (login: {r:?})");
    }
}

#[test]
fn refused_certificates_and_accounts() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), true);
    store.create_account(ACCOUNT, 1000, 2000);
    let disabled = 0x0000_0002_u32;
    store.create_account(disabled, 1000, 2000);
    {
        let objs = bb_store::RaidObjects::new(store.discs(), disabled);
        let mut a = bb_store::Account::open(Box::new(objs), bb_store::Mode::ReadWrite).unwrap();
        a.info_mut().unwrap().account_enabled = false;
        a.save_info().unwrap();
        a.close().unwrap();
    }
    let pki: TestPki = make_test_pki(&tmp.path().join("pki"), ACCOUNT, KeyKind::EcdsaP256).unwrap();
    let foreign = make_test_pki(&tmp.path().join("foreign"), ACCOUNT, KeyKind::EcdsaP256).unwrap();
    let day = 86_400;
    let (revoked_cert, revoked_key) = pki.issue_client("BACKUP-01234567", -60, day).unwrap();
    let (later_cert, later_key) = pki.issue_client("BACKUP-01234567", -60, day).unwrap();
    let (revoked_serial, later_serial) = (serial_of(&revoked_cert), serial_of(&later_cert));
    let crl = tmp.path().join("clients.crl");
    pki.write_crl(&crl, &[revoked_serial]).unwrap();
    set_conf_key(
        &store,
        "CertificateFile",
        &pki.server_cert.display().to_string(),
        true,
    );
    set_conf_key(
        &store,
        "PrivateKeyFile",
        &pki.server_key.display().to_string(),
        true,
    );
    set_conf_key(
        &store,
        "TrustedCAsFile",
        &pki.server_trusted_cas.display().to_string(),
        true,
    );
    set_conf_key(&store, "CRLFile", &crl.display().to_string(), true);
    let server = start(&store, 20, Duration::from_millis(50));
    let port = store.port;
    let good = ClientCerts::of_test_pki(&pki);
    healthy(port, &good);

    let issue = |cn: &str, from: i64, to: i64| {
        let (c, k) = pki.issue_client(cn, from, to).unwrap();
        good.with_cert(c, k)
    };
    let cases = [
        ("expired", issue("BACKUP-01234567", -2 * day, -day)),
        ("not yet valid", issue("BACKUP-01234567", day, 2 * day)),
        (
            "revoked",
            good.with_cert(revoked_cert.clone(), revoked_key.clone()),
        ),
        (
            "another CA",
            good.with_cert(foreign.client_cert.clone(), foreign.client_key.clone()),
        ),
        ("CN not BACKUP-<hex>", issue("localhost", -60, day)),
        ("CN BACKUP-<not hex>", issue("BACKUP-0123456G", -60, day)),
        ("CN without account", issue("BACKUP-", -60, day)),
    ];
    for (what, certs) in &cases {
        refused(port, certs, what);
        healthy(port, &good);
    }

    // Certificates that are fine for accounts the store refuses.
    let unknown = issue("BACKUP-00000099", -60, day);
    let mut c = RawClient::start(port, &unknown).unwrap();
    expect_code(
        &c.login(0x99, false).unwrap(),
        ErrorCode::BadLogin,
        "unknown account",
    );
    // Another account than the certificate's.
    expect_code(
        &c.login(ACCOUNT, true).unwrap(),
        ErrorCode::BadLogin,
        "someone else's account",
    );
    c.finish().unwrap();
    let off = issue("BACKUP-00000002", -60, day);
    let mut c = RawClient::start(port, &off).unwrap();
    expect_code(
        &c.login(disabled, false).unwrap(),
        ErrorCode::DisabledAccount,
        "disabled account",
    );
    c.finish().unwrap();
    healthy(port, &good);

    // Revoked after start: refused after a reload; a session already running
    // with that certificate goes on.
    let later = good.with_cert(later_cert, later_key);
    let mut running = RawClient::open(port, &later, ACCOUNT, false).unwrap();
    pki.write_crl(&crl, &[revoked_serial, later_serial])
        .unwrap();
    RawClient::open(port, &later, ACCOUNT, true)
        .expect("the CRL is read at start and on reload only")
        .finish()
        .unwrap();
    server.server.reload().unwrap();
    refused(port, &later, "revoked, after reload");
    success_id(
        &running
            .upload_file(ROOT, "in flight", b"still here")
            .unwrap(),
        "in-flight session after reload",
    );
    running.finish().unwrap();
    healthy(port, &good);
}

#[test]
fn idle_and_stalled_clients_are_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), true);
    store.create_account(ACCOUNT, 1000, 2000);
    set_conf_key(&store, "IdleTimeout", "1", false);
    set_conf_key(&store, "OperationTimeout", "1", false);
    let server = start(&store, 20, Duration::from_millis(50));
    let port = store.port;
    healthy(port, &fixture());
    let before = usage(port);

    // Idle after login.
    let mut c = client_at(port, At::Commands);
    let t = Instant::now();
    assert!(
        c.closed_by_server(Duration::from_secs(5)),
        "idle client kept"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    // Idle before the ident: the operation timeout.
    let mut c = client_at(port, At::Tls);
    assert!(
        c.closed_by_server(Duration::from_secs(5)),
        "silent client kept"
    );
    // No TLS at all: the handshake is bounded by the operation timeout.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let t = Instant::now();
    let mut b = [0u8; 16];
    assert!(
        matches!(std::io::Read::read(&mut plain, &mut b), Ok(0))
            && t.elapsed() < Duration::from_secs(4),
        "a client that never starts TLS was kept {:?}",
        t.elapsed()
    );
    // Half a command, then nothing.
    let mut c = client_at(port, At::Commands);
    c.send_raw(&encoded(&GetIsAlive {}.into())[..5]).unwrap();
    assert!(
        c.closed_by_server(Duration::from_secs(5)),
        "half a command kept"
    );

    // A stalled upload.
    let c = partial_upload(port, "stalled", &noise(1 << 20, 5), 300_000);
    let mut c = c;
    let t = Instant::now();
    assert!(
        c.closed_by_server(Duration::from_secs(5)),
        "stalled upload kept"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    wait_sessions_end(&server);
    no_strays(&store, "stalled upload");
    let after = usage(port);
    same_usage(&before, &after, "stalled upload");
    healthy(port, &fixture());
}

/// Stream data bytes a session received, from the server's byte counters
/// (protocol bytes after TLS, added up when a session ends).
fn bytes_in(server: &OurServer) -> u64 {
    server
        .server
        .counters
        .bytes_in
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn hard_limit_refuses_uploads_early() {
    let tmp = tempfile::tempdir().unwrap();
    // 50 blocks of 4 KiB: 200 KiB.
    let (store, server) = setup(tmp.path(), 40, 50);
    let port = store.port;
    healthy(port, &fixture());
    let before = usage(port);
    let content = noise(8 << 20, 6);
    let hard_bytes = 50 * 4096;
    let mut report = Vec::new();

    // (a) A careful client: chunked, watching for the early reply. What it
    // sends past the limit is what the network holds in flight: with the
    // kernel's own loopback buffers several MB, with a small send buffer
    // little more than the limit. A bigger file here, so that "early" shows.
    let big_content = noise(24 << 20, 11);
    let cmd = c_cmd(port, "too big");
    let big = RawClient::connect(port, &fixture())
        .unwrap()
        .encode_file(ROOT, "too big", &big_content)
        .unwrap();
    for sndbuf in [None, Some(64 * 1024)] {
        wait_sessions_end(&server);
        let in0 = bytes_in(&server);
        let mut c = client_at(port, At::Commands);
        if let Some(n) = sndbuf {
            c.set_send_buffer(n).unwrap();
        }
        let (r, sent) = c.upload_watching(&cmd, &big, 16 * 1024).unwrap();
        expect_code(&r, ErrorCode::StorageLimitExceeded, "careful client");
        assert!(
            c.is_alive().unwrap(),
            "session goes on after the early reply"
        );
        c.finish().unwrap();
        wait_sessions_end(&server);
        let got = bytes_in(&server) - in0;
        report.push(format!(
            "careful client, send buffer {}: file {} bytes, stream sent {sent}, server received {got} (session total)",
            sndbuf.map_or("default".to_string(), |n| n.to_string()),
            big.len()
        ));
        let bound = match sndbuf {
            None => big.len() as u64 / 2,
            Some(_) => 4 << 20,
        };
        assert!(
            sent < bound,
            "the careful client sent {sent} of {} bytes before seeing the reply",
            big.len()
        );
        no_strays(&store, "careful client");
    }
    let file = RawClient::connect(port, &fixture())
        .unwrap()
        .encode_file(ROOT, "too big", &content)
        .unwrap();

    // (b) A 0.13-like client: everything, then read.
    let in0 = bytes_in(&server);
    let mut c = client_at(port, At::Commands);
    let t = Instant::now();
    let r = c.upload_file(ROOT, "too big", &content).unwrap();
    expect_code(&r, ErrorCode::StorageLimitExceeded, "0.13-like client");
    assert!(c.is_alive().unwrap(), "session goes on after the drain");
    c.finish().unwrap();
    wait_sessions_end(&server);
    let got = bytes_in(&server) - in0;
    report.push(format!(
        "0.13-like client: file {} bytes, server received {got} (all, drained without writing), {:?}",
        file.len(),
        t.elapsed()
    ));
    assert!(got >= file.len() as u64);
    no_strays(&store, "0.13-like client");

    // (b2) The same, looked at in the middle: once the reply is out, the
    // partial object is gone and the rest only drains.
    let mut c = client_at(port, At::Commands);
    let mut out = encoded(&cmd);
    let mut enc = bb_proto::stream::ChunkedEncoder::begin(&mut out);
    enc.push(&file[..1 << 20], &mut out);
    c.send_raw(&out).unwrap();
    let deadline = Instant::now() + CLOSE_WAIT;
    let early = loop {
        if let Some(r) = c.poll_reply().unwrap() {
            break r;
        }
        assert!(Instant::now() < deadline, "no early reply");
        std::thread::sleep(Duration::from_millis(10));
    };
    expect_code(&early, ErrorCode::StorageLimitExceeded, "early reply");
    no_strays(&store, "while draining");
    out.clear();
    enc.push(&file[1 << 20..], &mut out);
    enc.finish(&mut out);
    c.send_raw(&out).unwrap();
    no_strays(&store, "after draining");
    assert!(c.is_alive().unwrap());
    c.finish().unwrap();
    wait_sessions_end(&server);

    // (c) A sized stream declared over the limit: refused from its header.
    let in0 = bytes_in(&server);
    let mut c = client_at(port, At::Commands);
    let mut out = encoded(&cmd);
    out.extend_from_slice(&RawClient::sized_header(file.len() as u32));
    c.send_raw(&out).unwrap();
    c.set_timeout(Duration::from_secs(5)).unwrap();
    let r = c.read_reply().expect("the reply comes before any data");
    expect_code(&r, ErrorCode::StorageLimitExceeded, "sized over the limit");
    // The announced bytes still have to follow; the server discards them.
    c.send_raw(&file).unwrap();
    assert!(c.is_alive().unwrap());
    c.finish().unwrap();
    wait_sessions_end(&server);
    let got = bytes_in(&server) - in0;
    report.push(format!(
        "sized stream over the limit: reply before any data; then {got} bytes drained"
    ));

    // (d) Just under the limit still fits; the next one does not.
    let mut c = client_at(port, At::Commands);
    let used = usage_of(&mut c);
    let room = (50 - used.blocks_used) as usize * 4096;
    let fits = noise(room / 2, 7);
    success_id(
        &c.upload_file(ROOT, "fits", &fits).unwrap(),
        "under the limit",
    );
    let r = c.upload_file(ROOT, "fits too", &noise(room, 8)).unwrap();
    expect_code(&r, ErrorCode::StorageLimitExceeded, "over the limit");
    c.finish().unwrap();

    let after = usage(port);
    assert!(after.blocks_used <= 50, "{after:?}");
    assert_eq!(after.num_current_files, before.num_current_files + 1);
    no_strays(&store, "hard limit");
    eprintln!("hard limit {hard_bytes} bytes:\n  {}", report.join("\n  "));
}

/// The StoreFile command for `name` in the root (names are encrypted with
/// the fixture keys, so any client's copy is the same).
fn c_cmd(port: u16, name: &str) -> Command {
    let c = RawClient::connect(port, &fixture()).unwrap();
    let cmd = c.store_file_command(ROOT, name).unwrap();
    c.close_tls();
    cmd
}

fn usage_of(c: &mut RawClient) -> AccountUsage2 {
    match c.call(&GetAccountUsage2 {}.into(), None).unwrap().0 {
        Reply::AccountUsage2(u) => u,
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_013_meets_the_hard_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreDir::create(&tmp.path().join("store"), free_port(), true);
    // 100 blocks of 4 KiB; the tree below needs about 2.5 MiB.
    store.create_account(ACCOUNT, 80, 100);
    let server = start(&store, 20, Duration::from_millis(50));
    let src = tmp.path().join("source");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..5 {
        std::fs::write(src.join(format!("small-{i}")), format!("small file {i}\n")).unwrap();
    }
    std::fs::write(src.join("sub/big-1"), noise(1 << 20, 9)).unwrap();
    std::fs::write(src.join("sub/big-2"), noise(3 << 19, 10)).unwrap();
    let mut client = bb013::Client013::new(&tmp.path().join("client"), store.port, &src);
    let in0 = bytes_in(&server);
    let log = client.backup_round();
    wait_sessions_end(&server);
    let got = bytes_in(&server) - in0;
    eprintln!("0.13 bbackupd against the hard limit: server received {got} bytes");
    for l in log
        .lines()
        .filter(|l| l.contains("full") || l.contains("Limit"))
    {
        eprintln!("  bbackupd: {l}");
    }
    // 0.13 takes the error as "store full": it skips the files still to
    // upload, finishes the scan and ends the session normally.
    assert!(
        log.contains("StorageLimitExceeded") && log.contains("Skipped file: server is full"),
        "no store-full handling in bbackupd's log:\n{log}"
    );
    assert!(
        got < 3 << 20,
        "0.13 went on uploading after the store was full: {got} bytes"
    );
    no_strays(&store, "0.13 client at the hard limit");
    let out = bb013::command("bbstoreaccounts")
        .arg("-c")
        .arg(&store.conf)
        .args(["check", "01234567"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && !text.contains("ERROR"),
        "0.13 check:\n{text}"
    );
    let u = usage(store.port);
    assert!(u.blocks_used <= 100, "{u:?}");
    // The store is full: a read/write session still works, and so does reading.
    let mut c = RawClient::open(store.port, &fixture(), ACCOUNT, false).unwrap();
    success_id(&c.list(ROOT).unwrap().0, "ListDirectory after the 0.13 run");
    c.finish().unwrap();
}

#[test]
fn idle_clients_do_not_hold_up_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, mut server) = setup(tmp.path(), 1000, 2000);
    let port = store.port;
    // One idle after login (holding the write lock), one idle before its ident.
    let mut idle = client_at(port, At::Commands);
    let mut silent = client_at(port, At::Ident);
    // And one that never starts TLS.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    server.stop();
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "shutdown waited {took:?} for idle clients"
    );
    assert!(idle.closed_by_server(CLOSE_WAIT));
    assert!(silent.closed_by_server(CLOSE_WAIT));
    plain.set_read_timeout(Some(CLOSE_WAIT)).unwrap();
    let mut b = [0u8; 16];
    assert!(
        match std::io::Read::read(&mut plain, &mut b) {
            Ok(n) => n == 0,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        },
        "the plain TCP client was not closed"
    );
    // The lock went with the session.
    let objs = bb_store::RaidObjects::new(store.discs(), ACCOUNT);
    bb_store::Account::open(Box::new(objs), bb_store::Mode::ReadWrite)
        .expect("write lock released at shutdown")
        .close()
        .unwrap();
}
