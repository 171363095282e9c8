//! A raw protocol client for tests: TLS to 127.0.0.1, the ident, typed commands
//! with their streams, and equally any bytes at all, so that a suite can play a
//! well-behaved client, a 0.13-like one, or a broken one.
//!
//! Owns nothing but the client end of one connection and its byte counts. It
//! checks only what it must to stay in step (object framing, stream framing);
//! what a reply means is the suite's business. It must not know the server's
//! inside: suites reach our bbstored and 0.13's the same way, through a port.
//!
//! Not a product client (that is bb-remote): it panics on nothing, but it also
//! retries nothing, and an error simply ends the connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bb_format::encode::{FileMeta, encode_file};
use bb_format::recipe::Recipe;
use bb_format::{EncodedName, Keys};
use bb_proto::message::{
    Finished, GetFile, GetIsAlive, ListDirectory, Login, StoreFile, Version, flags,
};
use bb_proto::stream::{ChunkedEncoder, StreamHeader};
use bb_proto::{Command, IDENT, Reply, StreamDecoder, check_ident};
use rustls::{ClientConnection, StreamOwned};

use crate::fixtures;

/// The three files of a client's TLS identity (bbackupd.conf's
/// CertificateFile, PrivateKeyFile, TrustedCAsFile).
#[derive(Debug, Clone)]
pub struct ClientCerts {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub trusted_cas: PathBuf,
}

impl ClientCerts {
    /// The fixture pack's client, account 0x01234567 (0.13 made these).
    pub fn fixture() -> ClientCerts {
        let d = fixtures::certs().join("client");
        ClientCerts {
            cert: d.join("01234567-cert.pem"),
            key: d.join("01234567-key.pem"),
            trusted_cas: d.join("serverCA.pem"),
        }
    }

    /// The client of a [`bb_proto::pki::TestPki`].
    pub fn of_test_pki(p: &bb_proto::pki::TestPki) -> ClientCerts {
        ClientCerts {
            cert: p.client_cert.clone(),
            key: p.client_key.clone(),
            trusted_cas: p.client_trusted_cas.clone(),
        }
    }

    /// The same trusted CAs with another certificate and key.
    pub fn with_cert(&self, cert: PathBuf, key: PathBuf) -> ClientCerts {
        ClientCerts {
            cert,
            key,
            trusted_cas: self.trusted_cas.clone(),
        }
    }
}

/// How long any one read or write may take before the test calls the server hung.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Largest stream a reply may carry here (tests fetch small files).
const MAX_REPLY_STREAM: u64 = 1 << 30;

/// One client connection. See the module header.
#[derive(Debug)]
pub struct RawClient {
    tls: StreamOwned<ClientConnection, TcpStream>,
    /// Received bytes not yet decoded.
    buf: Vec<u8>,
    /// Keys for [`RawClient::encode_file`]: the fixture account's.
    pub keys: Keys,
    sent: u64,
    received: u64,
}

fn proto_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl RawClient {
    /// TCP and TLS to 127.0.0.1:`port`, handshake done (from the client's side:
    /// with TLS 1.3 a refused client certificate shows only at the first read).
    pub fn connect(port: u16, certs: &ClientCerts) -> io::Result<RawClient> {
        let config =
            bb_proto::pki::client_config(&certs.cert, &certs.key, &certs.trusted_cas, false)
                .map_err(|e| io::Error::other(format!("client TLS config: {e}")))?;
        let name = bb_proto::pki::server_name("127.0.0.1").map_err(io::Error::other)?;
        let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
        let sock = TcpStream::connect(("127.0.0.1", port))?;
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(DEFAULT_TIMEOUT))?;
        sock.set_write_timeout(Some(DEFAULT_TIMEOUT))?;
        let mut tls = StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(RawClient {
            tls,
            buf: Vec::new(),
            keys: Keys::from_file(&fixtures::keys_file())
                .map_err(|e| io::Error::other(format!("fixture keys: {e}")))?,
            sent: 0,
            received: 0,
        })
    }

    /// Connects, exchanges idents and agrees on version 1: ready to log in.
    pub fn start(port: u16, certs: &ClientCerts) -> io::Result<RawClient> {
        let mut c = RawClient::connect(port, certs)?;
        c.hello()?;
        match c.call(&Version { version: 1 }.into(), None)?.0 {
            Reply::Version(v) if v.version == 1 => Ok(c),
            other => Err(proto_err(format!("Version: {other:?}"))),
        }
    }

    /// [`RawClient::start`] and a successful login: ready for commands.
    pub fn open(
        port: u16,
        certs: &ClientCerts,
        account: u32,
        read_only: bool,
    ) -> io::Result<RawClient> {
        let mut c = RawClient::start(port, certs)?;
        match c.login(account, read_only)? {
            Reply::LoginConfirmed(_) => Ok(c),
            other => Err(proto_err(format!("Login: {other:?}"))),
        }
    }

    /// Sends our ident and checks the server's.
    pub fn hello(&mut self) -> io::Result<()> {
        self.send_raw(&IDENT)?;
        loop {
            match check_ident(&self.buf) {
                Ok(Some(used)) => {
                    self.buf.drain(..used);
                    return Ok(());
                }
                Ok(None) => self.fill()?,
                Err(e) => return Err(proto_err(format!("server ident: {e}"))),
            }
        }
    }

    /// Sends Login; returns the reply (LoginConfirmed or an error).
    pub fn login(&mut self, account: u32, read_only: bool) -> io::Result<Reply> {
        let flags = if read_only { Login::FLAGS_READ_ONLY } else { 0 };
        let login = Login {
            client_id: account as i32,
            flags,
        };
        Ok(self.call(&login.into(), None)?.0)
    }

    /// Bytes written to the TLS layer so far (protocol bytes, as the server counts them).
    pub fn bytes_sent(&self) -> u64 {
        self.sent
    }

    /// Protocol bytes received so far.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    pub fn set_timeout(&mut self, d: Duration) -> io::Result<()> {
        self.tls.sock.set_read_timeout(Some(d))?;
        self.tls.sock.set_write_timeout(Some(d))
    }

    /// Caps the kernel's send buffer (SO_SNDBUF; the kernel doubles the
    /// value), which bounds what a careful client has in flight when an early
    /// reply comes.
    pub fn set_send_buffer(&self, bytes: usize) -> io::Result<()> {
        rustix::net::sockopt::set_socket_send_buffer_size(&self.tls.sock, bytes)?;
        Ok(())
    }

    /// Sends `bytes` as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tls.write_all(bytes)?;
        self.tls.flush()?;
        self.sent += bytes.len() as u64;
        Ok(())
    }

    /// Sends a command and, if given, its stream in the form 0.13 uses for data
    /// of known size (sized; chunked when empty).
    pub fn send_command(&mut self, cmd: &Command, stream: Option<&[u8]>) -> io::Result<()> {
        let mut out = Vec::new();
        cmd.encode(&mut out).map_err(proto_err)?;
        if let Some(s) = stream {
            bb_proto::stream::encode_stream(s, &mut out);
        }
        self.send_raw(&out)
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut tmp = [0u8; 32 * 1024];
        let n = self.tls.read(&mut tmp)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        self.received += n as u64;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }

    /// Reads the next reply.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        loop {
            match Reply::decode(&self.buf) {
                Ok(Some((r, used))) => {
                    self.buf.drain(..used);
                    return Ok(r);
                }
                Ok(None) => self.fill()?,
                Err(e) => return Err(proto_err(format!("reply: {e}"))),
            }
        }
    }

    /// Reads a whole reply stream.
    pub fn read_stream(&mut self) -> io::Result<Vec<u8>> {
        let mut dec = StreamDecoder::new().with_limit(MAX_REPLY_STREAM);
        let mut data = Vec::new();
        loop {
            let step = dec.decode(&self.buf).map_err(proto_err)?;
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

    /// Sends a command (and its stream) and reads the reply and, when the
    /// protocol says one follows, the reply's stream.
    pub fn call(
        &mut self,
        cmd: &Command,
        stream: Option<&[u8]>,
    ) -> io::Result<(Reply, Option<Vec<u8>>)> {
        self.send_command(cmd, stream)?;
        let reply = self.read_reply()?;
        let data = match cmd.reply_stream(&reply) {
            Some(_) => Some(self.read_stream()?),
            None => None,
        };
        Ok((reply, data))
    }

    /// A reply that has already arrived, without waiting for one.
    pub fn poll_reply(&mut self) -> io::Result<Option<Reply>> {
        if let Some((r, used)) = Reply::decode(&self.buf).map_err(proto_err)? {
            self.buf.drain(..used);
            return Ok(Some(r));
        }
        self.tls.sock.set_nonblocking(true)?;
        let got = self.read_available();
        self.tls.sock.set_nonblocking(false)?;
        got?;
        match Reply::decode(&self.buf).map_err(proto_err)? {
            Some((r, used)) => {
                self.buf.drain(..used);
                Ok(Some(r))
            }
            None => Ok(None),
        }
    }

    /// Moves whatever has arrived into `buf`, without waiting (the socket is
    /// non-blocking). Plaintext is taken out after every record batch, so
    /// rustls's buffer never fills however much the server sends.
    fn read_available(&mut self) -> io::Result<()> {
        let mut tmp = [0u8; 32 * 1024];
        loop {
            match self.tls.conn.read_tls(&mut self.tls.sock) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    self.tls.conn.process_new_packets().map_err(proto_err)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
            loop {
                match self.tls.conn.reader().read(&mut tmp) {
                    Ok(0) => break,
                    Ok(n) => {
                        self.received += n as u64;
                        self.buf.extend_from_slice(&tmp[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// An encoded file (file order) as bbackupd would upload it into directory
    /// `dir`, with the fixture keys.
    pub fn encode_file(&self, dir: i64, name: &str, content: &[u8]) -> io::Result<Vec<u8>> {
        let meta = FileMeta {
            container_id: dir,
            mtime: 0x5_0000_0000,
            name: self.name(name)?,
            attributes: bb_format::attributes::encrypt(&self.keys, &[0u8; 4]),
            symlink: false,
        };
        encode_file(
            &self.keys,
            &meta,
            &Recipe::whole(content.len() as u64),
            content,
        )
        .map_err(|e| io::Error::other(format!("encode: {e}")))
    }

    /// `name` encrypted with the fixture keys.
    pub fn name(&self, name: &str) -> io::Result<EncodedName> {
        EncodedName::encrypt(&self.keys, name.as_bytes())
            .map_err(|e| io::Error::other(format!("name: {e}")))
    }

    /// The StoreFile command for `name` in `dir`.
    pub fn store_file_command(&self, dir: i64, name: &str) -> io::Result<Command> {
        Ok(StoreFile {
            directory_object_id: dir,
            modification_time: 0x5_0000_0000,
            attributes_hash: 0,
            diff_from_file_id: 0,
            filename: self.name(name)?,
        }
        .into())
    }

    /// Uploads `content` as file `name` into `dir` (encoded, sent chunked as
    /// bbackupd does); returns the reply (Success(new id) or an error).
    pub fn upload_file(&mut self, dir: i64, name: &str, content: &[u8]) -> io::Result<Reply> {
        let encoded = self.encode_file(dir, name, content)?;
        let mut out = Vec::new();
        self.store_file_command(dir, name)?
            .encode(&mut out)
            .map_err(proto_err)?;
        bb_proto::stream::encode_chunked(&encoded, &mut out);
        self.send_raw(&out)?;
        self.read_reply()
    }

    /// Uploads `stream_data` after `cmd` as a chunked stream of `piece`-byte
    /// pushes, looking for an early reply after each: on one, ends the stream
    /// at once (the server drains what is in flight) and returns it with the
    /// stream data bytes sent. The way a careful client uploads.
    pub fn upload_watching(
        &mut self,
        cmd: &Command,
        stream_data: &[u8],
        piece: usize,
    ) -> io::Result<(Reply, u64)> {
        let mut out = Vec::new();
        cmd.encode(&mut out).map_err(proto_err)?;
        let mut enc = ChunkedEncoder::begin(&mut out);
        self.send_raw(&out)?;
        let mut sent = 0u64;
        for p in stream_data.chunks(piece.max(1)) {
            if let Some(r) = self.poll_reply()? {
                // The end marker alone: chunks the encoder still holds are
                // never sent, which is allowed (the stream just ends early).
                self.send_raw(&[bb_proto::stream::END_OF_STREAM])?;
                return Ok((r, sent));
            }
            out.clear();
            enc.push(p, &mut out);
            self.send_raw(&out)?;
            sent += p.len() as u64;
        }
        out.clear();
        enc.finish(&mut out);
        self.send_raw(&out)?;
        Ok((self.read_reply()?, sent))
    }

    /// Lists a directory: the reply and the directory stream.
    pub fn list(&mut self, dir: i64) -> io::Result<(Reply, Option<Vec<u8>>)> {
        let cmd = ListDirectory {
            object_id: dir,
            flags_must_be_set: flags::INCLUDE_EVERYTHING,
            flags_not_to_be_set: flags::EXCLUDE_NOTHING,
            send_attributes: true,
        };
        self.call(&cmd.into(), None)
    }

    /// Fetches a file (stream order): the reply and the stream.
    pub fn get_file(&mut self, dir: i64, id: i64) -> io::Result<(Reply, Option<Vec<u8>>)> {
        let cmd = GetFile {
            in_directory: dir,
            object_id: id,
        };
        self.call(&cmd.into(), None)
    }

    /// GetIsAlive: whether the session is still in step.
    pub fn is_alive(&mut self) -> io::Result<bool> {
        Ok(matches!(
            self.call(&GetIsAlive {}.into(), None)?.0,
            Reply::IsAlive(_)
        ))
    }

    /// Ends the session politely: Finished, its reply, close_notify.
    pub fn finish(mut self) -> io::Result<()> {
        match self.call(&Finished {}.into(), None)?.0 {
            Reply::Finished(_) => {}
            other => return Err(proto_err(format!("Finished: {other:?}"))),
        }
        self.close_tls();
        Ok(())
    }

    /// Drops the TCP connection without a TLS close_notify (a crashed client,
    /// a pulled cable).
    pub fn abort(self) {
        let _ = self.tls.sock.shutdown(Shutdown::Both);
    }

    /// Ends the TLS session cleanly (close_notify) and closes, with no Finished.
    pub fn close_tls(mut self) {
        self.tls.conn.send_close_notify();
        let _ = self.tls.flush();
        let _ = self.tls.sock.shutdown(Shutdown::Write);
    }

    /// Whether the server closes the connection within `limit` (anything it
    /// still sends is read and thrown away). A timeout means it did not.
    pub fn closed_by_server(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut tmp = [0u8; 32 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.tls.sock.set_read_timeout(Some(left)).is_err() {
                return false;
            }
            match self.tls.read(&mut tmp) {
                Ok(0) => return true,
                Ok(n) => self.received += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                // Reset, an alert, EOF without close_notify: closed.
                Err(_) => return true,
            }
        }
    }

    /// The encoded stream header for a sized stream of `len` bytes.
    pub fn sized_header(len: u32) -> Vec<u8> {
        let mut v = Vec::new();
        StreamHeader::Sized(len).encode(&mut v);
        v
    }
}
