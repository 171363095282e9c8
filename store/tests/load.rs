//! Load test (issue 4, performance): many concurrent sessions against the real
//! `bbstored` binary on loopback, each logged in to its own account with its own
//! client certificate, uploading encoded files and reading them back.
//!
//! Asserts correctness only (every session logs in, every upload is accepted,
//! every file comes back and decodes to what was sent, all sessions were open at
//! the same time). It prints throughput and the server's peak RSS (VmHWM) for
//! `docs/benchmarks.md`; speed is not asserted because the machine is shared.
//!
//! The server runs as a separate process so that its RSS is its own. By default
//! it is this build's `bbstored`; `BB_LOAD_BBSTORED` names another binary (the
//! release build, for the figures), `BB_LOAD_SESSIONS` changes the count.
//!
//! The client here is deliberately minimal (TLS, ident, Version, Login,
//! StoreFile, GetFile, Finished): just enough protocol to drive the server.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bb_format::Keys;
use bb_format::encode::{FileMeta, encode_file};
use bb_format::recipe::Recipe;
use bb_proto::message::{Finished, GetFile, Login, StoreFile, Version};
use bb_proto::pki::{KeyKind, make_test_pki};
use bb_proto::{Command, IDENT, Reply, StreamDecoder, check_ident};
use common::TempStore;

const ROOT: i64 = 1;

/// A TLS connection speaking just enough of the protocol.
struct Client {
    s: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

type Res<T> = Result<T, String>;

impl Client {
    fn connect(port: u16, tls: Arc<rustls::ClientConfig>) -> Res<Client> {
        let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(|e| e.to_string())?;
        let name = bb_proto::pki::server_name("127.0.0.1").map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(tls, name).map_err(|e| e.to_string())?;
        let mut c = Client {
            s: rustls::StreamOwned::new(conn, sock),
            buf: Vec::new(),
        };
        c.write(&IDENT)?;
        loop {
            match check_ident(&c.buf).map_err(|e| format!("ident: {e}"))? {
                Some(n) => {
                    c.buf.drain(..n);
                    return Ok(c);
                }
                None => c.fill()?,
            }
        }
    }

    fn write(&mut self, b: &[u8]) -> Res<()> {
        self.s.write_all(b).map_err(|e| format!("send: {e}"))?;
        self.s.flush().map_err(|e| format!("send: {e}"))
    }

    fn fill(&mut self) -> Res<()> {
        let mut tmp = [0u8; 64 * 1024];
        let n = self.s.read(&mut tmp).map_err(|e| format!("receive: {e}"))?;
        if n == 0 {
            return Err("server closed the connection".into());
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }

    /// Sends `c` (and `stream` after it) and returns the reply.
    fn call(&mut self, c: impl Into<Command>, stream: Option<&[u8]>) -> Res<Reply> {
        let mut out = Vec::new();
        c.into().encode(&mut out).map_err(|e| e.to_string())?;
        if let Some(s) = stream {
            bb_proto::stream::encode_stream(s, &mut out);
        }
        self.write(&out)?;
        loop {
            if let Some((r, n)) = Reply::decode(&self.buf).map_err(|e| format!("reply: {e}"))? {
                self.buf.drain(..n);
                return Ok(r);
            }
            self.fill()?;
        }
    }

    /// The stream that follows a reply.
    fn stream(&mut self) -> Res<Vec<u8>> {
        let mut dec = StreamDecoder::new().with_limit(1 << 30);
        let mut data = Vec::new();
        loop {
            let step = dec.decode(&self.buf).map_err(|e| format!("stream: {e}"))?;
            data.extend_from_slice(step.data);
            let (used, end) = (step.used, step.end);
            self.buf.drain(..used);
            if end {
                return Ok(data);
            }
            if used == 0 {
                self.fill()?;
            }
        }
    }
}

/// Deterministic content for file `i` of account `account`: a small text, an
/// incompressible run, a larger half-compressible one (several blocks).
fn content(account: u32, i: usize) -> Vec<u8> {
    let mut x = u64::from(account) << 8 | i as u64 | 1;
    let mut rnd = move || {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    match i % 3 {
        0 => format!("account {account:08x} file {i}\n")
            .repeat(100)
            .into_bytes(),
        1 => (0..100 * 1024).map(|_| rnd() as u8).collect(),
        _ => (0..400 * 1024)
            .map(|k| if k % 2 == 0 { rnd() as u8 } else { b'x' })
            .collect(),
    }
}

fn encoded(keys: &Keys, i: usize, data: &[u8]) -> Vec<u8> {
    let meta = FileMeta {
        container_id: ROOT,
        mtime: 0x5_0000_0000 + i as i64,
        name: bb_format::EncodedName::encrypt(keys, format!("file{i}").as_bytes()).unwrap(),
        attributes: vec![0xa5; 49],
        symlink: false,
    };
    encode_file(keys, &meta, &Recipe::whole(data.len() as u64), data).unwrap()
}

const FILES_PER_SESSION: usize = 3;

struct Done {
    bytes_up: u64,
    bytes_down: u64,
}

/// One client: log in, wait until every client has, upload, read back, finish.
fn session(
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    account: u32,
    all_logged_in: &Barrier,
) -> Res<Done> {
    let keys = Keys::test_vector();
    let mut c = Client::connect(port, tls)?;
    match c.call(Version { version: 1 }, None)? {
        Reply::Version(v) if v.version == 1 => {}
        r => return Err(format!("Version: {r:?}")),
    }
    let login = Login {
        client_id: account as i32,
        flags: 0,
    };
    let logged_in = c.call(login, None);
    // Wait even on failure, or the others would wait forever.
    all_logged_in.wait();
    match logged_in? {
        Reply::LoginConfirmed(_) => {}
        r => return Err(format!("Login: {r:?}")),
    }
    let mut done = Done {
        bytes_up: 0,
        bytes_down: 0,
    };
    let mut ids = Vec::new();
    for i in 0..FILES_PER_SESSION {
        let data = content(account, i);
        let file = encoded(&keys, i, &data);
        let cmd = StoreFile {
            directory_object_id: ROOT,
            modification_time: 0x5_0000_0000 + i as i64,
            attributes_hash: 0x1234 + i as u64,
            diff_from_file_id: 0,
            filename: bb_format::EncodedName::encrypt(&keys, format!("file{i}").as_bytes())
                .map_err(|e| e.to_string())?,
        };
        match c.call(cmd, Some(&file))? {
            Reply::Success(s) if s.object_id > ROOT => ids.push(s.object_id),
            r => return Err(format!("StoreFile {i}: {r:?}")),
        }
        done.bytes_up += file.len() as u64;
    }
    for (i, id) in ids.into_iter().enumerate() {
        let cmd = GetFile {
            in_directory: ROOT,
            object_id: id,
        };
        match c.call(cmd, None)? {
            Reply::Success(s) if s.object_id == id => {}
            r => return Err(format!("GetFile {id}: {r:?}")),
        }
        let stream = c.stream()?;
        done.bytes_down += stream.len() as u64;
        let back = bb_format::decode::decode_file(&keys, &stream)
            .map_err(|e| format!("decoding file {id} of {account:08x}: {e}"))?;
        if back.content != content(account, i) {
            return Err(format!("file {id} of {account:08x} came back different"));
        }
    }
    match c.call(Finished {}, None)? {
        Reply::Finished(_) => Ok(done),
        r => Err(format!("Finished: {r:?}")),
    }
}

fn bbstored() -> PathBuf {
    std::env::var_os("BB_LOAD_BBSTORED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bbstored")))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmHWM` (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

fn write_conf(store: &Path, port: u16, pki: &bb_proto::pki::TestPki) -> PathBuf {
    let conf = store.join("bbstored.conf");
    std::fs::write(
        &conf,
        format!(
            "RaidFileConf = {s}/raidfile.conf\nAccountDatabase = {s}/accounts.txt\n\
             TimeBetweenHousekeeping = 900\nServer\n{{\n\
             \tPidFile = {s}/bbstored.pid\n\tListenAddresses = inet:127.0.0.1:{port}\n\
             \tCertificateFile = {}\n\tPrivateKeyFile = {}\n\tTrustedCAsFile = {}\n}}\n",
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.server_trusted_cas.display(),
            s = store.display(),
        ),
    )
    .unwrap();
    conf
}

#[test]
fn many_concurrent_sessions_each_on_its_own_account() {
    let sessions: u32 = std::env::var("BB_LOAD_SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let store = TempStore::new(true, 4096);
    let base = 0x0010_0000u32;

    // One certificate per account, all from one client CA (ECDSA: fast).
    let pki = make_test_pki(&store.root().join("pki"), base, KeyKind::EcdsaP256).unwrap();
    let mut tls = Vec::new();
    for n in 0..sessions {
        let account = base + n;
        let (cert, key) = if n == 0 {
            (pki.client_cert.clone(), pki.client_key.clone())
        } else {
            pki.issue_client(&format!("BACKUP-{account:08X}"), -60, 86400)
                .unwrap()
        };
        tls.push(
            bb_proto::pki::client_config(&cert, &key, &pki.client_trusted_cas, false).unwrap(),
        );
    }
    let mut db = bb_store::accounts::AccountDatabase::load(store.accounts_txt()).unwrap();
    let discs = store.discs();
    for n in 0..sessions {
        bb_store::account::create_account(&mut db, &discs, base + n, 1 << 20, 1 << 21).unwrap();
    }

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let conf = write_conf(store.root(), port, &pki);
    let log = store.root().join("bbstored.log");
    let child = Process::new(bbstored())
        .arg("-F")
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(store.root().join("bbstored.err")).unwrap())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "bbstored exited at start"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "bbstored not listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let idle_rss = peak_rss_kib(server.0.id());

    let barrier = Arc::new(Barrier::new(sessions as usize));
    let start = Instant::now();
    let threads: Vec<_> = tls
        .into_iter()
        .enumerate()
        .map(|(n, tls)| {
            let b = barrier.clone();
            std::thread::Builder::new()
                .stack_size(512 * 1024)
                .spawn(move || session(port, tls, base + n as u32, &b))
                .unwrap()
        })
        .collect();
    let results: Vec<Res<Done>> = threads
        .into_iter()
        .map(|t| {
            t.join()
                .unwrap_or_else(|_| Err("client thread panicked".into()))
        })
        .collect();
    let elapsed = start.elapsed();
    let peak = peak_rss_kib(server.0.id());
    let failures: Vec<String> = results
        .iter()
        .enumerate()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("session {n}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {sessions} sessions failed:\n{}\n{}",
        failures.len(),
        failures.join("\n"),
        std::fs::read_to_string(store.root().join("bbstored.err")).unwrap_or_default()
    );
    let (up, down) = results
        .iter()
        .flatten()
        .fold((0, 0), |(u, d), r| (u + r.bytes_up, d + r.bytes_down));
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let secs = elapsed.as_secs_f64();
    println!(
        "load: {sessions} concurrent sessions, {} files up and back, {:.1} MiB up + {:.1} MiB down \
         in {secs:.2} s = {:.1} MiB/s, {:.0} sessions/s; bbstored peak RSS {:.1} MiB (idle {:.1} MiB) [{}]",
        sessions as usize * FILES_PER_SESSION,
        mib(up),
        mib(down),
        mib(up + down) / secs,
        f64::from(sessions) / secs,
        peak as f64 / 1024.0,
        idle_rss as f64 / 1024.0,
        bbstored().display(),
    );

    // Every account holds its files and nothing else: the store agrees.
    for n in [0, sessions / 2, sessions - 1] {
        let objects = bb_store::RaidObjects::new(discs.clone(), base + n);
        let a = bb_store::Account::open(Box::new(objects), bb_store::Mode::ReadOnly).unwrap();
        assert_eq!(
            a.info().num_current_files,
            FILES_PER_SESSION as i64,
            "account {:08x}",
            base + n
        );
    }
    drop(server);
}
