//! One logged-in connection to a store: TCP (with a connect timeout and
//! TCP_NODELAY), TLS, the ident, Version, Login; then commands in lock-step
//! (`protocol.md` §2.6), each reply read to its end, Finished on close.
//!
//! The framing discipline 0.13's client left to luck (§6.5):
//! - every reply stream is read to its end, the chunked terminator included,
//!   even when the caller's `Write` fails, so the next reply starts in step;
//! - a structured payload (directory, block index, names) must use its stream
//!   exactly, or the operation fails ([`Error::Payload`]) while the connection
//!   stays usable;
//! - an upload is sent chunked, a piece at a time, looking for a reply between
//!   pieces: our bbstored answers an upload it will refuse (StorageLimitExceeded,
//!   a missing directory) before the stream ends, and then we stop sending and
//!   end the stream at once instead of pushing the rest at a server that only
//!   throws it away;
//! - every socket read and write has a timeout ([`Timeouts`]), an inactivity
//!   timeout like 0.13's, so a stalled server cannot hang the caller;
//! - any error that leaves the connection out of step (I/O, timeout, framing, an
//!   unexpected reply, 0.13's fatal `Error(0,-1)`) marks it broken; later calls
//!   fail with [`Error::NotConnected`] until a new connection is made
//!   ([`crate::Session`] does that).
//!
//! Must not know: what the payloads mean beyond parsing them (bb-format), or
//! anything of the server's store.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bb_format::directory::Directory;
use bb_format::index::BlockIndex;
use bb_format::{BoxTime, EncodedName};
use bb_proto::message::{
    AccountUsage, AccountUsage2, ChangeDirAttributes, CreateDirectory, CreateDirectory2,
    DeleteDirectory, DeleteFile, Finished, GetAccountUsage, GetAccountUsage2, GetBlockIndexById,
    GetBlockIndexByName, GetFile, GetIsAlive, GetObject, GetObjectName, ListDirectory, Login,
    LoginConfirmed, MoveObject, SetClientStoreMarker, SetReplacementFileAttributes, StoreFile,
    UndeleteDirectory, UndeleteFile, Version,
};
use bb_proto::stream::{ChunkedEncoder, END_OF_STREAM, MAX_SIZED_SEND, StreamHeader};
use bb_proto::{Command, IDENT, Reply, StreamDecoder, check_ident};
use rustls::{ClientConfig, ClientConnection};
use tracing::{debug, debug_span, warn};

use crate::error::{Error, Result};
use crate::store::{ObjectNames, StoreRead, StoreWrite};

/// 0.13's default `StorePort`.
pub const DEFAULT_PORT: u16 = 2201;

/// Largest listing, name list or block index we take into memory. A directory
/// entry is about 100 bytes, so this is millions of entries; a block index of
/// 1 GiB would describe a file of terabytes.
pub const MAX_STRUCTURED_STREAM: u64 = 1 << 30;

/// How much of an abandoned reply stream dropping an [`open_file`] reader reads
/// away to keep the connection; beyond it the connection is given up.
///
/// [`open_file`]: StoreRead::open_file
pub const MAX_DRAIN_ON_DROP: u64 = 4 << 20;

/// Commands [`StoreRead::get_files`] and [`StoreRead::list_directories`] keep
/// in flight on one connection.
pub const PIPELINE_DEPTH: usize = 64;

/// Bytes read from the upload source at a time; also how often we look for an
/// early reply.
const UPLOAD_PIECE: usize = 64 * 1024;

/// Socket time limits. Reads and writes are inactivity limits per call, as in
/// 0.13 (the timer restarts whenever bytes move), so a slow but live transfer
/// is never cut off while a dead one is noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect, per address tried. 0.13: the OS default.
    pub connect: Duration,
    /// Each wait during the TLS handshake. 0.13: 5 minutes.
    pub handshake: Duration,
    /// Each read after the handshake (ident, replies, reply streams). 0.13:
    /// 15 minutes; keep it that long against a 0.13 server, which can work on
    /// one command for a long time (§6.1).
    pub read: Duration,
    /// Each write after the handshake. 0.13: 15 minutes.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            handshake: Duration::from_secs(300),
            read: Duration::from_secs(900),
            write: Duration::from_secs(900),
        }
    }
}

impl Timeouts {
    /// Every limit the same (tests).
    pub fn all(d: Duration) -> Timeouts {
        Timeouts {
            connect: d,
            handshake: d,
            read: d,
            write: d,
        }
    }
}

/// Where and how to log in: bbackupd.conf's `StoreHostname`, `StorePort`,
/// `AccountNumber`, `KeepAliveTime` and the TLS identity.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub account: u32,
    /// Log in read-only (no write lock; write commands get SessionReadOnly).
    pub read_only: bool,
    /// From [`Config::tls_from_files`] (0.13's `CertificateFile`,
    /// `PrivateKeyFile`, `TrustedCAsFile`).
    pub tls: Arc<ClientConfig>,
    pub timeouts: Timeouts,
    /// `KeepAliveTime`: [`StoreRead::keep_alive_if_due`] sends GetIsAlive when
    /// this long has passed since the last exchange. `None` disables it.
    pub keep_alive: Option<Duration>,
}

impl Config {
    /// A read/write login to `host` on the default port, with default timeouts
    /// and no keep-alive.
    pub fn new(host: &str, account: u32, tls: Arc<ClientConfig>) -> Config {
        Config {
            host: host.to_string(),
            port: DEFAULT_PORT,
            account,
            read_only: false,
            tls,
            timeouts: Timeouts::default(),
            keep_alive: None,
        }
    }

    /// The client TLS configuration from 0.13's three files. Like 0.13, the
    /// server's name is not checked unless `check_host_name` (then it must match
    /// [`Config::host`]).
    pub fn tls_from_files(
        cert: &std::path::Path,
        key: &std::path::Path,
        trusted_cas: &std::path::Path,
        check_host_name: bool,
    ) -> Result<Arc<ClientConfig>> {
        Ok(bb_proto::pki::client_config(
            cert,
            key,
            trusted_cas,
            check_host_name,
        )?)
    }
}

/// A logged-in connection. See the module header.
#[derive(Debug)]
pub struct Connection {
    tls: ClientConnection,
    sock: TcpStream,
    /// Plaintext received and not yet decoded: `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    timeouts: Timeouts,
    keep_alive: Option<Duration>,
    last_exchange: Instant,
    login: LoginConfirmed,
    marker: i64,
    broken: bool,
    finished: bool,
}

fn tls_or_io(op: &'static str, e: io::Error, after: Duration) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) {
        let inner = e.into_inner().expect("checked above");
        match inner.downcast::<rustls::Error>() {
            Ok(source) => Error::Tls {
                op,
                source: *source,
            },
            Err(other) => Error::Io {
                op,
                source: io::Error::other(other),
            },
        }
    } else {
        Error::io(op, e, after)
    }
}

impl Connection {
    /// Connects, completes TLS and the ident, agrees on version 1 and logs in.
    pub fn open(config: &Config) -> Result<Connection> {
        let span = debug_span!("connect", host = %config.host, port = config.port, account = format_args!("{:#x}", config.account));
        let _g = span.enter();
        let t = config.timeouts;
        let addr = format!("{}:{}", config.host, config.port);
        let addrs: Vec<_> = (config.host.as_str(), config.port)
            .to_socket_addrs()
            .map_err(|source| Error::Connect {
                addr: addr.clone(),
                source,
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        let mut sock = None;
        for a in &addrs {
            match TcpStream::connect_timeout(a, t.connect) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let sock = sock.ok_or(Error::Connect { addr, source: last })?;
        let op = "TLS handshake";
        let io_err = |e| Error::io(op, e, t.handshake);
        // Nagle would hold each small command ~40 ms waiting for the reply's ACK.
        sock.set_nodelay(true).map_err(io_err)?;
        sock.set_read_timeout(Some(t.handshake)).map_err(io_err)?;
        sock.set_write_timeout(Some(t.handshake)).map_err(io_err)?;
        let name = bb_proto::pki::server_name(&config.host)?;
        let tls = ClientConnection::new(config.tls.clone(), name)
            .map_err(|source| Error::Tls { op, source })?;
        let mut c = Connection {
            tls,
            sock,
            buf: Vec::new(),
            pos: 0,
            timeouts: t,
            keep_alive: config.keep_alive,
            last_exchange: Instant::now(),
            login: LoginConfirmed {
                client_store_marker: 0,
                blocks_used: 0,
                blocks_soft_limit: 0,
                blocks_hard_limit: 0,
            },
            marker: 0,
            broken: false,
            finished: false,
        };
        while c.tls.is_handshaking() {
            c.tls
                .complete_io(&mut c.sock)
                .map_err(|e| tls_or_io(op, e, t.handshake))?;
        }
        c.set_timeouts(t.read, t.write)
            .map_err(|e| Error::io(op, e, t.read))?;

        // Both sides send their ident first, then read (§2.1).
        c.send("ident", &IDENT)?;
        loop {
            match check_ident(c.pending()) {
                Ok(Some(used)) => {
                    c.consume(used);
                    break;
                }
                Ok(None) => c.fill("ident")?,
                Err(source) => {
                    return Err(Error::Protocol {
                        op: "ident",
                        source,
                    });
                }
            }
        }
        let v = c.simple(Version {
            version: Version::CURRENT,
        })?;
        match v {
            Reply::Version(v) if v.version == Version::CURRENT => {}
            other => {
                return Err(Error::UnexpectedReply {
                    op: "Version",
                    got: other.message_type(),
                });
            }
        }
        let flags = if config.read_only {
            Login::FLAGS_READ_ONLY
        } else {
            0
        };
        let login = Login {
            client_id: config.account as i32,
            flags,
        };
        match c.simple(login)? {
            Reply::LoginConfirmed(l) => {
                debug!(
                    marker = l.client_store_marker,
                    used = l.blocks_used,
                    hard = l.blocks_hard_limit,
                    "logged in"
                );
                c.marker = l.client_store_marker;
                c.login = l;
            }
            other => {
                return Err(Error::UnexpectedReply {
                    op: "Login",
                    got: other.message_type(),
                });
            }
        }
        Ok(c)
    }

    /// What LoginConfirmed said.
    pub fn login(&self) -> &LoginConfirmed {
        &self.login
    }

    /// Whether an earlier error left the connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends Finished, reads its reply and closes (with close_notify).
    pub fn finish(mut self) -> Result<()> {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> Result<()> {
        if self.broken {
            return Err(Error::NotConnected { op: "Finished" });
        }
        self.finished = true;
        let r = self.simple(Finished {});
        self.tls.send_close_notify();
        let _ = self.tls.complete_io(&mut self.sock);
        let _ = self.sock.shutdown(Shutdown::Both);
        self.broken = true;
        match r? {
            Reply::Finished(_) => Ok(()),
            other => Err(Error::UnexpectedReply {
                op: "Finished",
                got: other.message_type(),
            }),
        }
    }

    /// Gives the connection up: the socket is shut, later calls fail.
    fn poison(&mut self) {
        if !self.broken {
            debug!("connection given up");
        }
        self.broken = true;
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    fn set_timeouts(&self, read: Duration, write: Duration) -> io::Result<()> {
        self.sock.set_read_timeout(Some(read))?;
        self.sock.set_write_timeout(Some(write))
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads at least one more byte of plaintext (blocking, with the read timeout).
    fn fill(&mut self, op: &'static str) -> Result<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut tmp = [0u8; 32 * 1024];
        let n = loop {
            let mut s = rustls::Stream::new(&mut self.tls, &mut self.sock);
            match s.read(&mut tmp) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(tls_or_io(op, e, self.timeouts.read)),
            }
        };
        if n == 0 {
            return Err(Error::ConnectionClosed { op });
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }

    /// Moves whatever plaintext has already arrived into the buffer, without
    /// waiting.
    fn poll(&mut self, op: &'static str) -> Result<()> {
        let after = self.timeouts.read;
        self.sock
            .set_nonblocking(true)
            .map_err(|e| Error::io(op, e, after))?;
        let r = self.poll_inner(op);
        let back = self.sock.set_nonblocking(false);
        r?;
        back.map_err(|e| Error::io(op, e, after))
    }

    fn poll_inner(&mut self, op: &'static str) -> Result<()> {
        let mut tmp = [0u8; 32 * 1024];
        loop {
            match self.tls.read_tls(&mut self.sock) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    self.tls
                        .process_new_packets()
                        .map_err(|source| Error::Tls { op, source })?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(op, e, self.timeouts.read)),
            }
            loop {
                match self.tls.reader().read(&mut tmp) {
                    Ok(0) => break,
                    Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(Error::io(op, e, self.timeouts.read)),
                }
            }
        }
    }

    fn send(&mut self, op: &'static str, bytes: &[u8]) -> Result<()> {
        let mut s = rustls::Stream::new(&mut self.tls, &mut self.sock);
        s.write_all(bytes)
            .and_then(|()| s.flush())
            .map_err(|e| tls_or_io(op, e, self.timeouts.write))
    }

    fn encode(op: &'static str, cmd: &Command, out: &mut Vec<u8>) -> Result<()> {
        cmd.encode(out).map_err(|e| Error::Usage {
            op,
            detail: e.to_string(),
        })
    }

    /// Reads the next reply object.
    fn read_reply(&mut self, op: &'static str) -> Result<Reply> {
        loop {
            match Reply::decode(self.pending()) {
                Ok(Some((r, used))) => {
                    self.consume(used);
                    return Ok(r);
                }
                Ok(None) => self.fill(op)?,
                Err(source) => return Err(Error::Protocol { op, source }),
            }
        }
    }

    /// An error reply as an error; any other type than `cmd` expects too.
    fn check(op: &'static str, cmd: &Command, reply: Reply) -> Result<Reply> {
        match reply {
            Reply::Error(e) => Err(Error::Store { op, reply: e }),
            r if r.message_type() == cmd.expected_reply() => Ok(r),
            r => Err(Error::UnexpectedReply {
                op,
                got: r.message_type(),
            }),
        }
    }

    /// Runs one exchange: refuses on a broken connection, poisons the
    /// connection when the error leaves it out of step, and notes the time.
    fn exchange<T>(
        &mut self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T>,
    ) -> Result<T> {
        if self.broken {
            return Err(Error::NotConnected { op });
        }
        let r = f(self);
        match &r {
            Err(e) if e.is_connection_lost() => {
                warn!(op, error = %e, "connection lost");
                self.poison();
            }
            _ => self.last_exchange = Instant::now(),
        }
        r
    }

    /// A command without streams either way.
    fn simple(&mut self, cmd: impl Into<Command>) -> Result<Reply> {
        let cmd = cmd.into();
        let op = cmd.message_type().name();
        self.exchange(op, |c| {
            let mut out = Vec::with_capacity(64);
            Self::encode(op, &cmd, &mut out)?;
            c.send(op, &out)?;
            let r = c.read_reply(op)?;
            Self::check(op, &cmd, r)
        })
    }

    /// A command with a sized attribute stream.
    fn with_attributes(&mut self, cmd: impl Into<Command>, attributes: &[u8]) -> Result<Reply> {
        let cmd = cmd.into();
        let op = cmd.message_type().name();
        if attributes.len() as u64 > MAX_SIZED_SEND {
            return Err(Error::Usage {
                op,
                detail: format!("{} bytes of attributes", attributes.len()),
            });
        }
        self.exchange(op, |c| {
            let mut out = Vec::with_capacity(64 + attributes.len());
            Self::encode(op, &cmd, &mut out)?;
            // Attributes MUST be sized (§2.5); an empty blob (clearing them) is a
            // zero-length sized stream, which 0.13's release build reads fine.
            StreamHeader::Sized(attributes.len() as u32).encode(&mut out);
            out.extend_from_slice(attributes);
            c.send(op, &out)?;
            let r = c.read_reply(op)?;
            Self::check(op, &cmd, r)
        })
    }

    /// A command whose successful reply may carry a stream: sends it, checks
    /// the reply, returns it and whether a stream follows.
    fn begin_streamed(&mut self, op: &'static str, cmd: &Command) -> Result<(Reply, bool)> {
        let mut out = Vec::with_capacity(64);
        Self::encode(op, cmd, &mut out)?;
        self.send(op, &out)?;
        let r = self.read_reply(op)?;
        let has_stream = cmd.reply_stream(&r).is_some();
        Ok((Self::check(op, cmd, r)?, has_stream))
    }

    /// Reads a whole reply stream into `out`. A failing `out` does not stop the
    /// reading (the connection stays in step); its error is returned after.
    fn read_stream_into(
        &mut self,
        op: &'static str,
        mut dec: StreamDecoder,
        out: &mut dyn Write,
    ) -> Result<u64> {
        let mut sink_err = None;
        loop {
            let step = dec.decode(&self.buf[self.pos..]).map_err(|e| match e {
                bb_proto::Error::StreamTooLarge { size, limit } => {
                    Error::StreamTooLarge { op, size, limit }
                }
                source => Error::Protocol { op, source },
            })?;
            if !step.data.is_empty()
                && sink_err.is_none()
                && let Err(e) = out.write_all(step.data)
            {
                sink_err = Some(e);
            }
            let (used, end) = (step.used, step.end);
            self.consume(used);
            if end {
                break;
            }
            if used == 0 {
                self.fill(op)?;
            }
        }
        match sink_err {
            Some(source) => Err(Error::Sink { op, source }),
            None => Ok(dec.total()),
        }
    }

    fn read_stream_vec(&mut self, op: &'static str) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        let dec = StreamDecoder::new().with_limit(MAX_STRUCTURED_STREAM);
        self.read_stream_into(op, dec, &mut v)?;
        Ok(v)
    }

    /// A command whose reply stream is read whole (a structured payload).
    fn streamed_vec(&mut self, cmd: impl Into<Command>) -> Result<(Reply, Option<Vec<u8>>)> {
        let cmd = cmd.into();
        let op = cmd.message_type().name();
        self.exchange(op, |c| {
            let (r, has_stream) = c.begin_streamed(op, &cmd)?;
            let data = if has_stream {
                Some(c.read_stream_vec(op)?)
            } else {
                None
            };
            Ok((r, data))
        })
    }

    /// A command whose reply stream goes to `out`.
    fn streamed_into(&mut self, cmd: impl Into<Command>, out: &mut dyn Write) -> Result<u64> {
        let cmd = cmd.into();
        let op = cmd.message_type().name();
        self.exchange(op, |c| {
            let (_, has_stream) = c.begin_streamed(op, &cmd)?;
            if !has_stream {
                return Err(Error::UnexpectedReply {
                    op,
                    got: cmd.expected_reply(),
                });
            }
            c.read_stream_into(op, StreamDecoder::new(), out)
        })
    }

    /// Sends `cmds` ahead of their replies, at most [`PIPELINE_DEPTH`] in
    /// flight, and hands each reply's stream (read whole, at most `limit`
    /// bytes) to `each` in order. An error reply goes to `each` and the rest
    /// carry on: it has no stream, so the connection stays in step. Anything
    /// else that goes wrong leaves it out of step and is returned.
    ///
    /// The commands in flight are a few kilobytes at most, which the socket
    /// buffers take whole, so the server never waits for us to read a reply
    /// while we wait for it to read a command.
    fn pipelined(
        &mut self,
        op: &'static str,
        cmds: &[Command],
        limit: u64,
        each: &mut dyn FnMut(usize, Result<Vec<u8>>),
    ) -> Result<()> {
        self.exchange(op, |c| {
            let mut sent = 0;
            let mut out = Vec::with_capacity(64 * PIPELINE_DEPTH);
            for (i, cmd) in cmds.iter().enumerate() {
                // Top up when half the window has been answered: one TLS
                // record and one write for many commands.
                if sent - i <= PIPELINE_DEPTH / 2 && sent < cmds.len() {
                    out.clear();
                    let upto = (i + PIPELINE_DEPTH).min(cmds.len());
                    for cmd in &cmds[sent..upto] {
                        Self::encode(op, cmd, &mut out)?;
                    }
                    c.send(op, &out)?;
                    sent = upto;
                }
                let r = c.read_reply(op)?;
                let has_stream = cmd.reply_stream(&r).is_some();
                match Self::check(op, cmd, r) {
                    Ok(_) if has_stream => {
                        let mut v = Vec::new();
                        let dec = StreamDecoder::new().with_limit(limit);
                        c.read_stream_into(op, dec, &mut v)?;
                        each(i, Ok(v));
                    }
                    Ok(r) => {
                        return Err(Error::UnexpectedReply {
                            op,
                            got: r.message_type(),
                        });
                    }
                    Err(e) if e.is_connection_lost() => return Err(e),
                    Err(e) => each(i, Err(e)),
                }
            }
            Ok(())
        })
    }

    fn success_id(op: &'static str, r: Reply) -> Result<i64> {
        match r {
            Reply::Success(s) => Ok(s.object_id),
            other => Err(Error::UnexpectedReply {
                op,
                got: other.message_type(),
            }),
        }
    }

    /// The upload of StoreFile; see the module header for the early reply.
    fn upload(&mut self, cmd: Command, data: &mut dyn Read) -> Result<i64> {
        let op = "StoreFile";
        self.exchange(op, |c| {
            let mut out = Vec::with_capacity(UPLOAD_PIECE + 1024);
            Self::encode(op, &cmd, &mut out)?;
            let mut enc = ChunkedEncoder::begin(&mut out);
            c.send(op, &out)?;
            let mut piece = vec![0u8; UPLOAD_PIECE];
            let mut source_err = None;
            let mut sent = 0u64;
            loop {
                c.poll(op)?;
                if let Some((r, used)) =
                    Reply::decode(c.pending()).map_err(|source| Error::Protocol { op, source })?
                {
                    c.consume(used);
                    // The end marker alone: what the encoder still holds is never
                    // sent, and the server, which has answered, only drains.
                    c.send(op, &[END_OF_STREAM])?;
                    debug!(sent, "early reply during the upload");
                    return match r {
                        Reply::Error(e) => Err(Error::Store { op, reply: e }),
                        other => Err(Error::UnexpectedReply {
                            op,
                            got: other.message_type(),
                        }),
                    };
                }
                let n = match data.read(&mut piece) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // End the stream short: the server gets a file that does
                        // not verify, answers an error, and the session goes on.
                        source_err = Some(e);
                        break;
                    }
                };
                if n == 0 {
                    break;
                }
                out.clear();
                enc.push(&piece[..n], &mut out);
                if !out.is_empty() {
                    c.send(op, &out)?;
                }
                sent += n as u64;
            }
            out.clear();
            if source_err.is_some() {
                out.push(END_OF_STREAM);
            } else {
                enc.finish(&mut out);
            }
            c.send(op, &out)?;
            let r = c.read_reply(op);
            if let Some(source) = source_err {
                // The reply (most likely FileDoesNotVerify) matters less than why.
                r?;
                return Err(Error::Source { op, source });
            }
            let r = Self::check(op, &cmd, r?)?;
            Self::success_id(op, r)
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if !self.broken && !self.finished {
            // Say goodbye, but do not let a slow server hold up the drop for a
            // whole read timeout. Reading the reply matters: 0.13's server child
            // dies of SIGPIPE if we close before it has written it.
            let short = Duration::from_secs(5);
            let _ = self.set_timeouts(
                short.min(self.timeouts.read),
                short.min(self.timeouts.write),
            );
            let _ = self.finish_inner();
        }
    }
}

/// GetFile's stream as a `Read`; see [`StoreRead::open_file`].
#[derive(Debug)]
pub struct FileReader<'a> {
    conn: &'a mut Connection,
    dec: StreamDecoder,
    /// Stream data decoded but not yet handed out.
    spill: Vec<u8>,
    spill_pos: usize,
    done: bool,
}

impl FileReader<'_> {
    fn fail(&mut self, e: Error) -> io::Error {
        self.conn.poison();
        self.done = true;
        let kind = match &e {
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::ConnectionClosed { .. } => io::ErrorKind::UnexpectedEof,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

impl Read for FileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.spill_pos < self.spill.len() {
                let n = out.len().min(self.spill.len() - self.spill_pos);
                out[..n].copy_from_slice(&self.spill[self.spill_pos..self.spill_pos + n]);
                self.spill_pos += n;
                return Ok(n);
            }
            if self.done || out.is_empty() {
                return Ok(0);
            }
            let step = match self.dec.decode(self.conn.pending()) {
                Ok(s) => s,
                Err(source) => {
                    return Err(self.fail(Error::Protocol {
                        op: "GetFile",
                        source,
                    }));
                }
            };
            let n = out.len().min(step.data.len());
            out[..n].copy_from_slice(&step.data[..n]);
            self.spill.clear();
            self.spill_pos = 0;
            self.spill.extend_from_slice(&step.data[n..]);
            let (used, end) = (step.used, step.end);
            self.conn.consume(used);
            if end {
                self.done = true;
                self.conn.last_exchange = Instant::now();
            }
            if n > 0 || end {
                return Ok(n);
            }
            if used == 0
                && let Err(e) = self.conn.fill("GetFile")
            {
                return Err(self.fail(e));
            }
        }
    }
}

impl Drop for FileReader<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Read the rest away if it is small, to keep the connection; otherwise
        // a reconnect is cheaper than the download.
        let small = self.dec.remaining().is_some_and(|r| r <= MAX_DRAIN_ON_DROP);
        if small {
            let dec = std::mem::take(&mut self.dec);
            if self
                .conn
                .read_stream_into("GetFile", dec, &mut io::sink())
                .is_ok()
            {
                return;
            }
        }
        self.conn.poison();
    }
}

fn payload(op: &'static str) -> impl Fn(bb_format::Error) -> Error {
    move |source| Error::Payload { op, source }
}

impl StoreRead for Connection {
    fn list_directory(
        &mut self,
        id: i64,
        must_be_set: i16,
        not_to_be_set: i16,
        send_attributes: bool,
    ) -> Result<Directory> {
        let cmd = ListDirectory {
            object_id: id,
            flags_must_be_set: must_be_set,
            flags_not_to_be_set: not_to_be_set,
            send_attributes,
        };
        let (_, data) = self.streamed_vec(cmd)?;
        let data = data.unwrap_or_default();
        Directory::parse(&data).map_err(payload("ListDirectory"))
    }

    fn get_object_name(
        &mut self,
        object_id: i64,
        containing_directory: i64,
    ) -> Result<Option<ObjectNames>> {
        let cmd = GetObjectName {
            object_id,
            containing_directory_id: containing_directory,
        };
        let (r, data) = self.streamed_vec(cmd)?;
        let Reply::ObjectName(n) = r else {
            return Err(Error::UnexpectedReply {
                op: "GetObjectName",
                got: r.message_type(),
            });
        };
        let Some(data) = data else {
            return Ok(None);
        };
        let names =
            bb_proto::names::decode_object_names(&data, n.num_name_elements).map_err(|source| {
                Error::Protocol {
                    op: "GetObjectName",
                    source,
                }
            })?;
        Ok(Some(ObjectNames {
            names,
            modification_time: n.modification_time,
            attributes_hash: n.attributes_hash,
            flags: n.flags,
        }))
    }

    fn get_object(&mut self, id: i64, out: &mut dyn Write) -> Result<u64> {
        self.streamed_into(GetObject { object_id: id }, out)
    }

    fn get_file(&mut self, directory: i64, id: i64, out: &mut dyn Write) -> Result<u64> {
        let cmd = GetFile {
            in_directory: directory,
            object_id: id,
        };
        self.streamed_into(cmd, out)
    }

    fn open_file(&mut self, directory: i64, id: i64) -> Result<Box<dyn Read + '_>> {
        let cmd: Command = GetFile {
            in_directory: directory,
            object_id: id,
        }
        .into();
        let op = "GetFile";
        self.exchange(op, |c| c.begin_streamed(op, &cmd).map(|_| ()))?;
        Ok(Box::new(FileReader {
            conn: self,
            dec: StreamDecoder::new(),
            spill: Vec::new(),
            spill_pos: 0,
            done: false,
        }))
    }

    fn get_files(
        &mut self,
        files: &[(i64, i64)],
        limit: u64,
        each: &mut dyn FnMut(usize, Result<Vec<u8>>),
    ) -> Result<()> {
        let cmds: Vec<Command> = files
            .iter()
            .map(|&(in_directory, object_id)| {
                GetFile {
                    in_directory,
                    object_id,
                }
                .into()
            })
            .collect();
        self.pipelined("GetFile", &cmds, limit, each)
    }

    fn list_directories(
        &mut self,
        ids: &[i64],
        each: &mut dyn FnMut(usize, Result<Directory>),
    ) -> Result<()> {
        let cmds: Vec<Command> = ids
            .iter()
            .map(|&object_id| {
                ListDirectory {
                    object_id,
                    flags_must_be_set: bb_proto::message::flags::INCLUDE_EVERYTHING,
                    flags_not_to_be_set: bb_proto::message::flags::EXCLUDE_NOTHING,
                    send_attributes: true,
                }
                .into()
            })
            .collect();
        let parse = payload("ListDirectory");
        self.pipelined(
            "ListDirectory",
            &cmds,
            MAX_STRUCTURED_STREAM,
            &mut |i, r| {
                each(
                    i,
                    r.and_then(|data| Directory::parse(&data).map_err(&parse)),
                )
            },
        )
    }

    fn get_block_index_by_id(&mut self, id: i64) -> Result<BlockIndex> {
        let (_, data) = self.streamed_vec(GetBlockIndexById { object_id: id })?;
        BlockIndex::parse(&data.unwrap_or_default()).map_err(payload("GetBlockIndexByID"))
    }

    fn get_block_index_by_name(
        &mut self,
        directory: i64,
        name: &EncodedName,
    ) -> Result<Option<(i64, BlockIndex)>> {
        let cmd = GetBlockIndexByName {
            in_directory: directory,
            filename: name.clone(),
        };
        let (r, data) = self.streamed_vec(cmd)?;
        let id = Self::success_id("GetBlockIndexByName", r)?;
        match data {
            None => Ok(None),
            Some(d) => Ok(Some((
                id,
                BlockIndex::parse(&d).map_err(payload("GetBlockIndexByName"))?,
            ))),
        }
    }

    fn usage(&mut self) -> Result<AccountUsage2> {
        match self.simple(GetAccountUsage2 {})? {
            Reply::AccountUsage2(u) => Ok(u),
            other => Err(Error::UnexpectedReply {
                op: "GetAccountUsage2",
                got: other.message_type(),
            }),
        }
    }

    fn client_store_marker(&mut self) -> Result<i64> {
        Ok(self.marker)
    }

    fn keep_alive_if_due(&mut self) -> Result<bool> {
        match self.keep_alive {
            Some(every) if self.last_exchange.elapsed() >= every => {
                self.simple(GetIsAlive {})?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl Connection {
    /// GetAccountUsage (every server version; [`StoreRead::usage`] needs 0.12+).
    pub fn account_usage(&mut self) -> Result<AccountUsage> {
        match self.simple(GetAccountUsage {})? {
            Reply::AccountUsage(u) => Ok(u),
            other => Err(Error::UnexpectedReply {
                op: "GetAccountUsage",
                got: other.message_type(),
            }),
        }
    }

    /// GetIsAlive now, whatever the interval.
    pub fn is_alive(&mut self) -> Result<()> {
        self.simple(GetIsAlive {}).map(|_| ())
    }
}

impl StoreWrite for Connection {
    fn set_client_store_marker(&mut self, marker: i64) -> Result<()> {
        self.simple(SetClientStoreMarker {
            client_store_marker: marker,
        })?;
        self.marker = marker;
        Ok(())
    }

    fn create_directory(
        &mut self,
        parent: i64,
        name: &EncodedName,
        attributes_mod_time: BoxTime,
        attributes: &[u8],
    ) -> Result<i64> {
        let cmd = CreateDirectory {
            containing_directory_id: parent,
            attributes_mod_time,
            directory_name: name.clone(),
        };
        let r = self.with_attributes(cmd, attributes)?;
        Self::success_id("CreateDirectory", r)
    }

    fn create_directory2(
        &mut self,
        parent: i64,
        name: &EncodedName,
        attributes_mod_time: BoxTime,
        modification_time: BoxTime,
        attributes: &[u8],
    ) -> Result<i64> {
        let cmd = CreateDirectory2 {
            containing_directory_id: parent,
            attributes_mod_time,
            modification_time,
            directory_name: name.clone(),
        };
        let r = self.with_attributes(cmd, attributes)?;
        Self::success_id("CreateDirectory2", r)
    }

    fn change_dir_attributes(
        &mut self,
        id: i64,
        attributes_mod_time: BoxTime,
        attributes: &[u8],
    ) -> Result<()> {
        let cmd = ChangeDirAttributes {
            object_id: id,
            attributes_mod_time,
        };
        self.with_attributes(cmd, attributes).map(|_| ())
    }

    fn store_file(
        &mut self,
        directory: i64,
        name: &EncodedName,
        modification_time: BoxTime,
        attributes_hash: u64,
        diff_from: i64,
        data: &mut dyn Read,
    ) -> Result<i64> {
        let cmd = StoreFile {
            directory_object_id: directory,
            modification_time,
            attributes_hash,
            diff_from_file_id: diff_from,
            filename: name.clone(),
        };
        self.upload(cmd.into(), data)
    }

    fn set_replacement_file_attributes(
        &mut self,
        directory: i64,
        name: &EncodedName,
        attributes_hash: u64,
        attributes: &[u8],
    ) -> Result<i64> {
        let cmd = SetReplacementFileAttributes {
            in_directory: directory,
            attributes_hash,
            filename: name.clone(),
        };
        let r = self.with_attributes(cmd, attributes)?;
        Self::success_id("SetReplacementFileAttributes", r)
    }

    fn delete_file(&mut self, directory: i64, name: &EncodedName) -> Result<i64> {
        let r = self.simple(DeleteFile {
            in_directory: directory,
            filename: name.clone(),
        })?;
        Self::success_id("DeleteFile", r)
    }

    fn undelete_file(&mut self, directory: i64, id: i64) -> Result<i64> {
        let r = self.simple(UndeleteFile {
            in_directory: directory,
            object_id: id,
        })?;
        Self::success_id("UndeleteFile", r)
    }

    fn delete_directory(&mut self, id: i64) -> Result<()> {
        self.simple(DeleteDirectory { object_id: id }).map(|_| ())
    }

    fn undelete_directory(&mut self, id: i64) -> Result<()> {
        self.simple(UndeleteDirectory { object_id: id }).map(|_| ())
    }

    fn move_object(
        &mut self,
        id: i64,
        from: i64,
        to: i64,
        new_name: &EncodedName,
        flags: i32,
    ) -> Result<()> {
        self.simple(MoveObject {
            object_id: id,
            move_from_directory: from,
            move_to_directory: to,
            flags,
            new_filename: new_name.clone(),
        })
        .map(|_| ())
    }
}
