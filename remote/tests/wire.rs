//! The connection against scripted servers that misbehave on purpose: stalls at
//! every stage, chunked reply streams (which 0.13's client cannot read),
//! payloads with surplus bytes, the fatal `Error(0,-1)`, an early reply in the
//! middle of an upload, keep-alive timing, and a reconnect after a lost
//! connection. Our bbstored and 0.13's are in bb-tests' suites.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bb_format::EncodedName;
use bb_format::directory::{Directory, Entry};
use bb_proto::message::{
    AccountUsage2, ErrorReply, IsAlive, LoginConfirmed, Success, Version, flags,
};
use bb_proto::pki::{KeyKind, TestPki, make_test_pki};
use bb_proto::stream::{StreamDecoder, decode_whole, encode_chunked, encode_stream};
use bb_proto::{Command, ErrorCode, IDENT, Reply, check_ident};
use bb_remote::{Config, Connection, Error, Session, StoreRead, StoreWrite, Timeouts};
use rustls::{ServerConnection, StreamOwned};

const ACCOUNT: u32 = 0x0123_4567;

fn pki(dir: &std::path::Path) -> TestPki {
    make_test_pki(dir, ACCOUNT, KeyKind::EcdsaP256).unwrap()
}

fn config(p: &TestPki, port: u16, t: Duration) -> Config {
    let tls = Config::tls_from_files(&p.client_cert, &p.client_key, &p.client_trusted_cas, false)
        .unwrap();
    let mut c = Config::new("127.0.0.1", ACCOUNT, tls);
    c.port = port;
    c.timeouts = Timeouts::all(t);
    c
}

/// The server's TLS files (TestPki itself is not Send).
#[derive(Clone)]
struct ServerFiles {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    cas: std::path::PathBuf,
}

/// The server end of one scripted connection.
struct Peer {
    tls: StreamOwned<ServerConnection, TcpStream>,
    buf: Vec<u8>,
}

impl Peer {
    fn accept(l: &TcpListener, p: &ServerFiles) -> Peer {
        let cfg = bb_proto::pki::server_config(&p.cert, &p.key, &p.cas, None).unwrap();
        let (sock, _) = l.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let conn = ServerConnection::new(cfg.config).unwrap();
        Peer {
            tls: StreamOwned::new(conn, sock),
            buf: Vec::new(),
        }
    }

    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 65536];
        match self.tls.read(&mut tmp) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    }

    fn send(&mut self, b: &[u8]) {
        self.tls.write_all(b).unwrap();
        self.tls.flush().unwrap();
    }

    fn reply(&mut self, r: impl Into<Reply>) {
        let b = r.into().to_bytes().unwrap();
        self.send(&b);
    }

    /// The next command; its stream (if any) read whole.
    fn command(&mut self) -> Option<(Command, Vec<u8>)> {
        let cmd = loop {
            match Command::decode(&self.buf).unwrap() {
                Some((c, used)) => {
                    self.buf.drain(..used);
                    break c;
                }
                None => {
                    if !self.fill() {
                        return None;
                    }
                }
            }
        };
        let mut data = Vec::new();
        if let Some(kind) = cmd.stream() {
            loop {
                match decode_whole(&self.buf, kind.decoder(u64::MAX)).unwrap() {
                    Some((d, used)) => {
                        self.buf.drain(..used);
                        data = d;
                        break;
                    }
                    None => assert!(self.fill(), "EOF in a command stream"),
                }
            }
        }
        Some((cmd, data))
    }

    /// Ident, Version, Login (answered with `marker`).
    fn hello(&mut self, marker: i64) {
        self.send(&IDENT);
        while check_ident(&self.buf).unwrap().is_none() {
            assert!(self.fill());
        }
        self.buf.drain(..32);
        let (c, _) = self.command().unwrap();
        assert!(matches!(c, Command::Version(_)));
        self.reply(Version { version: 1 });
        let (c, _) = self.command().unwrap();
        assert!(matches!(c, Command::Login(_)));
        self.reply(LoginConfirmed {
            client_store_marker: marker,
            blocks_used: 10,
            blocks_soft_limit: 100,
            blocks_hard_limit: 200,
        });
    }
}

fn serve(
    p: &TestPki,
    script: impl FnOnce(&TcpListener, &ServerFiles) + Send + 'static,
) -> (u16, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let p = ServerFiles {
        cert: p.server_cert.clone(),
        key: p.server_key.clone(),
        cas: p.server_trusted_cas.clone(),
    };
    let h = std::thread::spawn(move || script(&l, &p));
    (port, h)
}

fn a_directory() -> Vec<u8> {
    let mut d = Directory::new(1, 1);
    d.entries.push(Entry {
        mtime: 5,
        object_id: 2,
        size_in_blocks: 1,
        attributes_hash: 0,
        flags: Entry::DIR,
        name: EncodedName::clear(b"src").unwrap(),
        attributes: Vec::new(),
        depends_newer: 0,
        depends_older: 0,
    });
    d.encode_for_listing(false).unwrap()
}

fn list(c: &mut dyn StoreWrite) -> Result<Directory, Error> {
    c.list_directory(1, flags::INCLUDE_EVERYTHING, flags::EXCLUDE_NOTHING, false)
}

#[test]
fn a_server_that_never_answers_times_out() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pki(tmp.path());
    // Accepts TCP and then says nothing: the TLS handshake waits in vain.
    let (port, h) = serve(&p, |l, _| {
        let (_s, _) = l.accept().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
    });
    let t = Instant::now();
    let e = Connection::open(&config(&p, port, Duration::from_millis(400))).unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    h.join().unwrap();

    // Completes TLS, then never sends its ident.
    let (port, h) = serve(&p, |l, p| {
        let mut peer = Peer::accept(l, p);
        peer.fill();
        std::thread::sleep(Duration::from_millis(1500));
    });
    let t = Instant::now();
    let e = Connection::open(&config(&p, port, Duration::from_millis(400))).unwrap_err();
    assert!(matches!(e, Error::Timeout { op: "ident", .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
    h.join().unwrap();
}

#[test]
fn a_server_that_stalls_on_a_command_times_out_and_the_connection_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pki(tmp.path());
    let (port, h) = serve(&p, |l, p| {
        let mut peer = Peer::accept(l, p);
        peer.hello(0);
        let _ = peer.command();
        std::thread::sleep(Duration::from_millis(1500));
    });
    let mut c = Connection::open(&config(&p, port, Duration::from_millis(400))).unwrap();
    let t = Instant::now();
    let e = list(&mut c).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Timeout {
                op: "ListDirectory",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.is_connection_lost());
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(c.is_broken());
    assert!(matches!(list(&mut c), Err(Error::NotConnected { .. })));
    drop(c);
    h.join().unwrap();
}

#[test]
fn reply_streams_are_read_to_the_end_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pki(tmp.path());
    let dir = a_directory();
    let (port, h) = serve(&p, move |l, p| {
        let mut peer = Peer::accept(l, p);
        peer.hello(42);
        // 1: a chunked listing (0.13's client would misread what follows).
        peer.command().unwrap();
        let mut out = Reply::from(Success { object_id: 1 }).to_bytes().unwrap();
        encode_chunked(&dir, &mut out);
        peer.send(&out);
        // 2: a listing with three bytes too many.
        peer.command().unwrap();
        let mut out = Reply::from(Success { object_id: 1 }).to_bytes().unwrap();
        let mut long = dir.clone();
        long.extend_from_slice(&[1, 2, 3]);
        encode_stream(&long, &mut out);
        peer.send(&out);
        // 3: still in step.
        assert!(matches!(peer.command().unwrap().0, Command::GetIsAlive(_)));
        peer.reply(IsAlive {});
        // 4: the fatal error.
        peer.command().unwrap();
        peer.reply(ErrorReply::FATAL);
    });
    let mut c = Connection::open(&config(&p, port, Duration::from_secs(10))).unwrap();
    assert_eq!(c.login().client_store_marker, 42);
    assert_eq!(c.client_store_marker().unwrap(), 42);
    let d = list(&mut c).unwrap();
    assert_eq!(d.entries.len(), 1);
    let e = list(&mut c).unwrap_err();
    assert!(matches!(e, Error::Payload { .. }), "{e}");
    assert!(!e.is_connection_lost() && !c.is_broken());
    c.is_alive().unwrap();
    let e = list(&mut c).unwrap_err();
    assert!(e.is_connection_lost() && c.is_broken(), "{e}");
    assert_eq!(e.code(), None);
    h.join().unwrap();
}

#[test]
fn an_early_reply_stops_the_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pki(tmp.path());
    let (port, h) = serve(&p, |l, p| {
        let mut peer = Peer::accept(l, p);
        peer.hello(0);
        // Read the command and 100 KB of its stream, refuse, drain.
        let cmd = loop {
            if let Some((c, used)) = Command::decode(&peer.buf).unwrap() {
                peer.buf.drain(..used);
                break c;
            }
            assert!(peer.fill());
        };
        assert!(matches!(cmd, Command::StoreFile(_)));
        let mut dec = StreamDecoder::new();
        let mut got = 0u64;
        let mut refused = false;
        loop {
            let step = dec.decode(&peer.buf).unwrap();
            got += step.data.len() as u64;
            let (used, end) = (step.used, step.end);
            peer.buf.drain(..used);
            if got > 100_000 && !refused {
                peer.reply(ErrorReply {
                    error_type: 1000,
                    sub_type: ErrorCode::StorageLimitExceeded as i32,
                });
                refused = true;
            }
            if end {
                break;
            }
            if used == 0 {
                assert!(peer.fill(), "EOF before the stream ended");
            }
        }
        assert!(refused);
        // The stream ended early; the session goes on.
        assert!(matches!(peer.command().unwrap().0, Command::GetIsAlive(_)));
        peer.reply(IsAlive {});
        peer.command().unwrap();
        peer.reply(bb_proto::message::Finished {});
        eprintln!("server received {got} stream bytes");
        assert!(got < 16 << 20, "{got} bytes sent after the early reply");
    });
    let mut c = Connection::open(&config(&p, port, Duration::from_secs(10))).unwrap();
    let data = vec![7u8; 64 << 20];
    let name = EncodedName::clear(b"big").unwrap();
    let e = c
        .store_file(1, &name, 0, 0, 0, &mut std::io::Cursor::new(data))
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::StorageLimitExceeded), "{e}");
    c.is_alive().unwrap();
    c.finish().unwrap();
    h.join().unwrap();
}

#[test]
fn keep_alive_only_when_due() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pki(tmp.path());
    let (port, h) = serve(&p, |l, p| {
        let mut peer = Peer::accept(l, p);
        peer.hello(0);
        let mut alive = 0;
        while let Some((c, _)) = peer.command() {
            match c {
                Command::GetIsAlive(_) => {
                    alive += 1;
                    peer.reply(IsAlive {});
                }
                Command::Finished(_) => {
                    peer.reply(bb_proto::message::Finished {});
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(alive, 1);
    });
    let mut cfg = config(&p, port, Duration::from_secs(10));
    cfg.keep_alive = Some(Duration::from_millis(300));
    let mut c = Connection::open(&cfg).unwrap();
    assert!(!c.keep_alive_if_due().unwrap());
    std::thread::sleep(Duration::from_millis(350));
    assert!(c.keep_alive_if_due().unwrap());
    assert!(
        !c.keep_alive_if_due().unwrap(),
        "the exchange restarts the clock"
    );
    drop(c); // sends Finished
    h.join().unwrap();
}

#[test]
fn a_session_logs_in_again_after_a_lost_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pki(tmp.path());
    let usage = Arc::new(AccountUsage2 {
        account_name: b"test".to_vec(),
        account_enabled: true,
        client_store_marker: 7,
        block_size: 4096,
        last_object_id_used: 1,
        blocks_used: 2,
        blocks_in_current_files: 0,
        blocks_in_old_files: 0,
        blocks_in_deleted_files: 0,
        blocks_in_directories: 2,
        blocks_soft_limit: 100,
        blocks_hard_limit: 200,
        num_current_files: 0,
        num_old_files: 0,
        num_deleted_files: 0,
        num_directories: 1,
    });
    let u2 = usage.clone();
    let (port, h) = serve(&p, move |l, p| {
        // First connection: drop it at the first command.
        let mut peer = Peer::accept(l, p);
        peer.hello(5);
        peer.command().unwrap();
        drop(peer);
        // Second: a marker changed meanwhile.
        let mut peer = Peer::accept(l, p);
        peer.hello(7);
        assert!(matches!(
            peer.command().unwrap().0,
            Command::GetAccountUsage2(_)
        ));
        peer.reply((*u2).clone());
        assert!(matches!(peer.command().unwrap().0, Command::Finished(_)));
        peer.reply(bb_proto::message::Finished {});
    });
    let mut s = Session::open(config(&p, port, Duration::from_secs(10))).unwrap();
    assert_eq!(s.login().client_store_marker, 5);
    let e = s.usage().unwrap_err();
    assert!(e.is_connection_lost(), "{e}");
    assert!(!s.is_connected());
    // The caller retries: the session reconnects first.
    assert_eq!(s.usage().unwrap(), *usage);
    assert_eq!((s.connects(), s.login().client_store_marker), (2, 7));
    s.finish().unwrap();
    h.join().unwrap();
}
