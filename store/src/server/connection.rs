//! One client connection, after TLS: the ident exchange, then commands and
//! replies in lock-step (protocol.md §2.6, §4.7), over any `Read + Write`.
//!
//! Owns the framing discipline that 0.13 left to a nice client:
//! - every command stream is read to its end through a [`CommandStreamReader`],
//!   bounded in size and, per read, in time; EOF inside a stream ends the
//!   session cleanly (no abort, no spinning);
//! - a reply that is ready before its command stream has arrived completely
//!   (an early StorageLimitExceeded, a missing directory) is sent **before** the
//!   rest is drained. A client that watches for it (ours) stops sending; a 0.13
//!   client, which reads only after sending, still gets its reply, and the rest
//!   is discarded without touching the disc. We drain rather than close so that
//!   a 0.13 client sees "storage limit exceeded" (and stops uploading for this
//!   run) instead of a broken connection that it would retry with the same file
//!   forever; the drain is capped ([`Limits::max_drain`]) so a hostile client
//!   cannot stream forever;
//! - malformed objects, unknown types and stream/object confusion close the
//!   connection, as in 0.13 (there is no way to resynchronise);
//! - a session waiting for its client (ident, next command) notices a
//!   shutdown within [`STOP_POLL`], so idle clients cannot hold it up; a
//!   session inside a command finishes it (bounded by the operation timeout).
//!
//! Knows nothing of stores: a [`Handler`] answers commands.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bb_proto::stream::StreamHeader;
use bb_proto::{Command, ErrorReply, IDENT, Reply, StreamDecoder, check_ident};

pub use crate::session::{IncomingStream, ReplyBody, Response};

/// A byte transport whose reads can time out.
pub trait Transport: Read + Write {
    fn set_read_timeout(&mut self, d: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&mut self, d: Option<Duration>) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn set_read_timeout(&mut self, d: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, d)
    }
    fn set_write_timeout(&mut self, d: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, d)
    }
}

/// Bounds on one connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for the next command.
    pub idle: Duration,
    /// Longest wait for any one read or write inside a command.
    pub operation: Duration,
    /// Largest attribute stream accepted (0.13 took up to 2 GiB into memory).
    pub max_attributes: u64,
    /// Largest file stream accepted.
    pub max_file: u64,
    /// After an early reply, at most this much of the rest is drained; then
    /// the connection is closed.
    pub max_drain: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            idle: Duration::from_secs(900),
            operation: Duration::from_secs(900),
            max_attributes: 1 << 20,
            max_file: u64::MAX,
            max_drain: 1 << 30,
        }
    }
}

/// Byte counters of a connection (protocol bytes, after TLS).
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

/// Answers commands. The connection loop has already checked the framing.
pub trait Handler {
    /// `stream` is the command's stream, for the commands that carry one; the
    /// handler reads as much as it needs (the loop drains the rest).
    fn handle(&mut self, command: Command, stream: Option<&mut dyn IncomingStream>) -> Response;
    /// Whether the server is shutting down (checked between commands and,
    /// every [`STOP_POLL`], while waiting for the client's ident or next command).
    fn stopping(&self) -> bool {
        false
    }
    /// The client has sent nothing for [`IDLE_FLUSH`] since the last reply:
    /// a moment to write what was buffered (directory write-back), so other
    /// sessions see it.
    fn idle(&mut self) {}
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum End {
    #[error("client finished")]
    Finished,
    #[error("server shutting down")]
    Shutdown,
    #[error("connection closed by the client")]
    Closed,
    #[error("idle for longer than {0:?}")]
    Idle(Duration),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("network: {0}")]
    Io(#[from] io::Error),
}

/// Reads a command's stream from the connection: the bytes already received
/// first, then the transport; each read bounded by the operation timeout.
pub struct CommandStreamReader<'a> {
    t: &'a mut dyn Transport,
    buf: &'a mut Vec<u8>,
    decoder: &'a mut StreamDecoder,
    counters: &'a Counters,
    /// Decoded data not yet handed out.
    ready: Vec<u8>,
    ready_pos: usize,
    failed: &'a mut Option<String>,
}

impl std::fmt::Debug for CommandStreamReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandStreamReader")
            .field("decoder", &self.decoder)
            .finish()
    }
}

impl<'a> CommandStreamReader<'a> {
    fn new(
        t: &'a mut dyn Transport,
        buf: &'a mut Vec<u8>,
        decoder: &'a mut StreamDecoder,
        counters: &'a Counters,
        failed: &'a mut Option<String>,
    ) -> CommandStreamReader<'a> {
        CommandStreamReader {
            t,
            buf,
            decoder,
            counters,
            ready: Vec::new(),
            ready_pos: 0,
            failed,
        }
    }

    /// The stream's declared size (sized streams), after reading its header.
    pub fn declared_len(&mut self) -> io::Result<Option<u64>> {
        while self.decoder.header().is_none() {
            self.step()?;
        }
        Ok(match self.decoder.header() {
            Some(StreamHeader::Sized(n)) => Some(u64::from(n)),
            _ => None,
        })
    }

    /// Whether the whole stream, end marker included, has been read and handed out.
    pub fn is_end(&self) -> bool {
        self.decoder.is_end() && self.ready_pos == self.ready.len()
    }

    /// Stream data bytes received so far.
    pub fn received(&self) -> u64 {
        self.decoder.total()
    }

    fn fail(&mut self, why: String) -> io::Error {
        *self.failed = Some(why.clone());
        io::Error::new(io::ErrorKind::InvalidData, why)
    }

    /// One decoder step over the buffered bytes, reading from the transport
    /// when it needs more. Decoded data goes to `ready`.
    fn step(&mut self) -> io::Result<()> {
        if let Some(why) = self.failed.as_ref() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, why.clone()));
        }
        if self.decoder.is_end() {
            return Ok(());
        }
        let (used, end) = match self.decoder.decode(&self.buf[..]) {
            Ok(s) => {
                if self.ready_pos == self.ready.len() {
                    self.ready.clear();
                    self.ready_pos = 0;
                }
                self.ready.extend_from_slice(s.data);
                (s.used, s.end)
            }
            Err(e) => return Err(self.fail(e.to_string())),
        };
        self.buf.drain(..used);
        if used == 0 && !end {
            let n = read_appending(self.t, self.buf)?;
            if n == 0 {
                return Err(self.fail("connection closed inside a command stream".into()));
            }
            self.counters
                .bytes_in
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Reads and discards the rest of the stream, at most `cap` bytes; an
    /// error if the cap is passed. Returns the bytes discarded.
    pub fn drain(&mut self, cap: u64) -> io::Result<u64> {
        let mut n = (self.ready.len() - self.ready_pos) as u64;
        self.ready_pos = self.ready.len();
        while !self.decoder.is_end() {
            self.step()?;
            n += (self.ready.len() - self.ready_pos) as u64;
            self.ready_pos = self.ready.len();
            if n > cap {
                return Err(self.fail(format!(
                    "gave up draining a refused command stream after {n} bytes"
                )));
            }
        }
        Ok(n)
    }

    /// Reads the whole (small) stream into memory, refusing more than `max` bytes.
    pub fn read_all(&mut self, max: u64) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = self.read(&mut chunk)?;
            if n == 0 {
                return Ok(v);
            }
            if (v.len() + n) as u64 > max {
                return Err(self.fail(format!("stream longer than {max} bytes")));
            }
            v.extend_from_slice(&chunk[..n]);
        }
    }
}

impl IncomingStream for CommandStreamReader<'_> {
    fn declared_len(&mut self) -> io::Result<Option<u64>> {
        CommandStreamReader::declared_len(self)
    }
}

impl Read for CommandStreamReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.ready_pos == self.ready.len() {
            if self.decoder.is_end() || out.is_empty() {
                return Ok(0);
            }
            self.step()?;
        }
        let n = out.len().min(self.ready.len() - self.ready_pos);
        out[..n].copy_from_slice(&self.ready[self.ready_pos..self.ready_pos + n]);
        self.ready_pos += n;
        Ok(n)
    }
}

/// A read that retries on EINTR and maps a timeout to TimedOut.
fn read_retrying(t: &mut dyn Transport, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match t.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"));
            }
            r => return r,
        }
    }
}

/// How often a session that waits for its client looks at
/// [`Handler::stopping`]: an idle client must not hold up a shutdown for its
/// whole idle timeout.
const STOP_POLL: Duration = Duration::from_millis(200);

/// How long a client may pause between commands before the session writes
/// what it buffered (see [`Handler::idle`]). A client that sends commands
/// back to back never waits this long; one that stops, or a person at
/// bbackupquery, sees its changes on disc (and other sessions see them) at
/// once.
pub const IDLE_FLUSH: Duration = Duration::from_millis(20);

/// What [`fill_waiting`] saw.
enum Waited {
    Data,
    Eof,
    TimedOut,
    Stopping,
}

/// Reads at least one more byte into `buf`, waiting up to `limit` in slices
/// of [`STOP_POLL`] and giving up early when the server stops. A timed-out
/// read loses nothing: TLS keeps a partial record for the next read.
/// Leaves the read timeout at `limit`.
fn fill_waiting(
    t: &mut dyn Transport,
    buf: &mut Vec<u8>,
    counters: &Counters,
    handler: &mut dyn Handler,
    limit: Duration,
) -> io::Result<Waited> {
    let deadline = std::time::Instant::now() + limit;
    let mut told_idle = false;
    let result = loop {
        if handler.stopping() {
            break Ok(Waited::Stopping);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break Ok(Waited::TimedOut);
        }
        let slice = if told_idle { STOP_POLL } else { IDLE_FLUSH };
        t.set_read_timeout(Some(left.min(slice)))?;
        match fill(t, buf, counters) {
            Ok(true) => break Ok(Waited::Data),
            Ok(false) => break Ok(Waited::Eof),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                if !told_idle {
                    told_idle = true;
                    handler.idle();
                }
                continue;
            }
            Err(e) => break Err(e),
        }
    };
    t.set_read_timeout(Some(limit))?;
    result
}

/// Reads at least one more byte into `buf`; `Ok(false)` on a clean EOF.
fn fill(t: &mut dyn Transport, buf: &mut Vec<u8>, counters: &Counters) -> io::Result<bool> {
    let n = read_appending(t, buf)?;
    counters.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    Ok(n > 0)
}

/// Bytes asked of the transport per read: one TLS record's worth.
const READ_PIECE: usize = 16 << 10;

/// Reads once, appending to `buf`. Straight into the vector, not through a
/// buffer on the stack: a stack page once touched stays resident for the
/// session's life, and hundreds of sessions each kept 64 KiB that way.
fn read_appending(t: &mut dyn Transport, buf: &mut Vec<u8>) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + READ_PIECE, 0);
    let r = read_retrying(t, &mut buf[start..]);
    buf.truncate(start + *r.as_ref().unwrap_or(&0));
    r
}

fn send(t: &mut dyn Transport, data: &[u8], counters: &Counters) -> io::Result<()> {
    t.write_all(data)?;
    counters
        .bytes_out
        .fetch_add(data.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// Sends a reply and its body (sized whenever the size fits, §2.5).
/// Bytes of a reply stream sent per write: small, because every session sending
/// holds this much (twice for chunked streams), and TLS cuts records at 16 KiB.
const SEND_PIECE: usize = 16 << 10;

fn send_response(t: &mut dyn Transport, r: Response, counters: &Counters) -> io::Result<()> {
    let mut out = Vec::with_capacity(64);
    r.reply
        .encode(&mut out)
        .map_err(|e| io::Error::other(format!("encoding the reply: {e}")))?;
    match r.body {
        ReplyBody::None => send(t, &out, counters)?,
        ReplyBody::Bytes(b) => {
            bb_proto::stream::encode_stream(&b, &mut out);
            send(t, &out, counters)?;
        }
        ReplyBody::Reader { len, mut reader } => {
            let header = StreamHeader::for_len(len);
            if header != StreamHeader::Chunked {
                header.encode(&mut out);
            } else {
                // The chunked encoder writes its own header below.
                send(t, &out, counters)?;
            }
            let mut left = len;
            match header {
                StreamHeader::Sized(_) => {
                    // Read straight into the output buffer: one buffer per reply,
                    // not a chunk and a copy of it.
                    loop {
                        let want = SEND_PIECE.min(usize::try_from(left).unwrap_or(usize::MAX));
                        let start = out.len();
                        out.resize(start + want, 0);
                        reader.read_exact(&mut out[start..])?;
                        send(t, &out, counters)?;
                        out.clear();
                        left -= want as u64;
                        if left == 0 {
                            break;
                        }
                    }
                }
                StreamHeader::Chunked => {
                    let mut chunk = vec![0u8; SEND_PIECE];
                    out.clear();
                    let mut enc = bb_proto::stream::ChunkedEncoder::begin(&mut out);
                    send(t, &out, counters)?;
                    out.clear();
                    while left > 0 {
                        let want = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                        reader.read_exact(&mut chunk[..want])?;
                        enc.push(&chunk[..want], &mut out);
                        send(t, &out, counters)?;
                        out.clear();
                        left -= want as u64;
                    }
                    enc.finish(&mut out);
                    send(t, &out, counters)?;
                }
            }
        }
    }
    t.flush()
}

/// Serves one connection until the client finishes, the connection breaks or
/// the server stops. Never panics on anything the client sends.
pub fn serve(
    t: &mut dyn Transport,
    handler: &mut dyn Handler,
    limits: &Limits,
    counters: &Counters,
) -> End {
    match serve_inner(t, handler, limits, counters) {
        Ok(end) => end,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => End::Closed,
        Err(e) if e.kind() == io::ErrorKind::InvalidData => End::Protocol(e.to_string()),
        Err(e) => End::Io(e),
    }
}

fn protocol(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

fn serve_inner(
    t: &mut dyn Transport,
    handler: &mut dyn Handler,
    limits: &Limits,
    counters: &Counters,
) -> io::Result<End> {
    t.set_write_timeout(Some(limits.operation))?;
    t.set_read_timeout(Some(limits.operation))?;
    // Ident first, then read the client's (§2.1): neither side waits.
    send(t, &IDENT, counters)?;
    t.flush()?;
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        match check_ident(&buf) {
            Ok(Some(used)) => {
                buf.drain(..used);
                break;
            }
            Ok(None) => match fill_waiting(t, &mut buf, counters, handler, limits.operation)? {
                Waited::Data => {}
                Waited::Eof => return Ok(End::Closed),
                Waited::Stopping => return Ok(End::Shutdown),
                Waited::TimedOut => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no ident from the client",
                    ));
                }
            },
            Err(e) => return Err(protocol(format!("ident: {e}"))),
        }
    }
    loop {
        if handler.stopping() {
            return Ok(End::Shutdown);
        }
        // Wait for a whole command: the idle timeout (and shutdown) for its
        // first byte, the operation timeout for the rest.
        let command = loop {
            match Command::decode(&buf) {
                Ok(Some((c, used))) => {
                    buf.drain(..used);
                    break c;
                }
                Ok(None) if buf.is_empty() => {
                    match fill_waiting(t, &mut buf, counters, handler, limits.idle)? {
                        Waited::Data => {}
                        Waited::Eof => return Ok(End::Closed),
                        Waited::Stopping => return Ok(End::Shutdown),
                        Waited::TimedOut => return Ok(End::Idle(limits.idle)),
                    }
                }
                Ok(None) => {
                    if !fill(t, &mut buf, counters)? {
                        return Ok(End::Closed);
                    }
                }
                Err(bb_proto::Error::WrongDirection { .. }) => {
                    // 0.13 answers a reply type sent as a command with the fatal error.
                    let _ = send_response(
                        t,
                        Response::reply(Reply::Error(ErrorReply::FATAL)),
                        counters,
                    );
                    return Err(protocol("a reply type sent as a command"));
                }
                Err(e) => return Err(protocol(e.to_string())),
            }
        };
        t.set_read_timeout(Some(limits.operation))?;
        let is_finished = matches!(command, Command::Finished(_));
        match command.stream() {
            None => {
                let r = handler.handle(command, None);
                let close = r.close;
                send_response(t, r, counters)?;
                if is_finished {
                    return Ok(End::Finished);
                }
                if close {
                    return Err(protocol("closed after a fatal error"));
                }
            }
            Some(kind) => {
                let limit = match kind {
                    bb_proto::CommandStream::Attributes => limits.max_attributes,
                    bb_proto::CommandStream::File => limits.max_file,
                };
                let mut decoder = kind.decoder(limit);
                let mut failed = None;
                let mut reader =
                    CommandStreamReader::new(t, &mut buf, &mut decoder, counters, &mut failed);
                let r = handler.handle(command, Some(&mut reader as &mut dyn IncomingStream));
                drop(reader);
                if let Some(why) = failed.take() {
                    // Out of step (chunked attributes, a bad chunk header, EOF):
                    // 0.13 sends the fatal error and closes.
                    let _ = send_response(
                        t,
                        Response::reply(Reply::Error(ErrorReply::FATAL)),
                        counters,
                    );
                    return Err(protocol(why));
                }
                // An early answer (the stream has not ended) is sent at once;
                // then the rest is discarded.
                let close = r.close;
                send_response(t, r, counters)?;
                if close {
                    return Err(protocol("closed after a fatal error"));
                }
                if !decoder.is_end() {
                    let mut reader =
                        CommandStreamReader::new(t, &mut buf, &mut decoder, counters, &mut failed);
                    let drained = reader.drain(limits.max_drain)?;
                    tracing::debug!(drained, "discarded the rest of a refused command stream");
                }
            }
        }
    }
}

impl Handler for crate::session::Session {
    fn handle(&mut self, command: Command, stream: Option<&mut dyn IncomingStream>) -> Response {
        crate::session::Session::handle(self, command, stream)
    }
    fn idle(&mut self) {
        crate::session::Session::idle(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bb_proto::message::{GetIsAlive, StoreFile, Success};
    use std::net::TcpListener;

    /// Answers GetIsAlive; for StoreFile reads `take` bytes, then answers
    /// Success(bytes read) (an early answer when take < the stream).
    struct Toy {
        take: usize,
    }

    impl Handler for Toy {
        fn handle(&mut self, c: Command, stream: Option<&mut dyn IncomingStream>) -> Response {
            match (c, stream) {
                (Command::StoreFile(_), Some(s)) => {
                    let mut got = vec![0u8; self.take];
                    let n = s.read_exact(&mut got).map(|_| self.take).unwrap_or(0);
                    Response::reply(Success {
                        object_id: n as i64,
                    })
                }
                (Command::Finished(_), _) => Response {
                    reply: Reply::Finished(bb_proto::message::Finished {}),
                    body: ReplyBody::None,
                    close: true,
                },
                _ => Response::reply(bb_proto::message::IsAlive {}),
            }
        }
    }

    fn pair(take: usize) -> (TcpStream, std::thread::JoinHandle<(End, u64)>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let counters = Counters::default();
            let limits = Limits {
                idle: Duration::from_secs(5),
                operation: Duration::from_secs(5),
                ..Limits::default()
            };
            let end = serve(&mut s, &mut Toy { take }, &limits, &counters);
            (end, counters.bytes_in.load(Ordering::Relaxed))
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&IDENT).unwrap();
        let mut id = [0u8; 32];
        c.read_exact(&mut id).unwrap();
        assert_eq!(id, IDENT);
        (c, h)
    }

    fn store_file() -> Command {
        StoreFile {
            directory_object_id: 1,
            modification_time: 0,
            attributes_hash: 0,
            diff_from_file_id: 0,
            filename: bb_format::EncodedName::clear(b"f").unwrap(),
        }
        .into()
    }

    fn read_reply(c: &mut TcpStream) -> Reply {
        let mut buf = Vec::new();
        loop {
            if let Some((r, _)) = Reply::decode(&buf).unwrap() {
                return r;
            }
            let mut b = [0u8; 1];
            c.read_exact(&mut b).unwrap();
            buf.push(b[0]);
        }
    }

    #[test]
    fn commands_streams_and_finished() {
        let (mut c, h) = pair(10);
        let mut out = Vec::new();
        Command::from(GetIsAlive {}).encode(&mut out).unwrap();
        store_file().encode(&mut out).unwrap();
        bb_proto::stream::encode_chunked(&[7u8; 10], &mut out);
        Command::from(GetIsAlive {}).encode(&mut out).unwrap();
        c.write_all(&out).unwrap();
        assert!(matches!(read_reply(&mut c), Reply::IsAlive(_)));
        assert!(matches!(
            read_reply(&mut c),
            Reply::Success(Success { object_id: 10 })
        ));
        assert!(matches!(read_reply(&mut c), Reply::IsAlive(_)));
        out.clear();
        Command::from(bb_proto::message::Finished {})
            .encode(&mut out)
            .unwrap();
        c.write_all(&out).unwrap();
        assert!(matches!(read_reply(&mut c), Reply::Finished(_)));
        assert!(matches!(h.join().unwrap().0, End::Finished));
    }

    #[test]
    fn early_reply_comes_before_the_stream_ends_and_the_rest_is_drained() {
        let (mut c, h) = pair(100);
        let mut out = Vec::new();
        store_file().encode(&mut out).unwrap();
        let mut enc = bb_proto::stream::ChunkedEncoder::begin(&mut out);
        enc.push(&[1u8; 4096], &mut out);
        c.write_all(&out).unwrap();
        // The reply arrives although the stream is still open.
        assert!(matches!(
            read_reply(&mut c),
            Reply::Success(Success { object_id: 100 })
        ));
        out.clear();
        enc.push(&[2u8; 100_000], &mut out);
        enc.finish(&mut out);
        Command::from(GetIsAlive {}).encode(&mut out).unwrap();
        c.write_all(&out).unwrap();
        // The session is still in step after the drain.
        assert!(matches!(read_reply(&mut c), Reply::IsAlive(_)));
        drop(c);
        let (end, bytes_in) = h.join().unwrap();
        assert!(matches!(end, End::Closed), "{end:?}");
        assert!(bytes_in > 104_096);
    }

    #[test]
    fn eof_inside_a_stream_and_garbage_end_the_session_cleanly() {
        let (mut c, h) = pair(1 << 20);
        let mut out = Vec::new();
        store_file().encode(&mut out).unwrap();
        let mut enc = bb_proto::stream::ChunkedEncoder::begin(&mut out);
        enc.push(&[1u8; 4096], &mut out);
        c.write_all(&out).unwrap();
        drop(c);
        let (end, _) = h.join().unwrap();
        assert!(matches!(end, End::Protocol(_) | End::Closed), "{end:?}");

        let (mut c, h) = pair(1);
        c.write_all(&[0, 0, 0, 3, 0, 0, 0, 42]).unwrap();
        let (end, _) = h.join().unwrap();
        assert!(matches!(end, End::Protocol(_)), "{end:?}");
    }

    /// Never answers; stops when told.
    struct Stoppable(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl Handler for Stoppable {
        fn handle(&mut self, _: Command, _: Option<&mut dyn IncomingStream>) -> Response {
            Response::reply(bb_proto::message::IsAlive {})
        }
        fn stopping(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn idle_clients_end_promptly_on_shutdown() {
        for send_ident in [true, false] {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let s2 = stop.clone();
            let h = std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let limits = Limits {
                    idle: Duration::from_secs(60),
                    operation: Duration::from_secs(60),
                    ..Limits::default()
                };
                let t = std::time::Instant::now();
                let end = serve(&mut s, &mut Stoppable(s2), &limits, &Counters::default());
                (end, t.elapsed())
            });
            let mut c = TcpStream::connect(addr).unwrap();
            if send_ident {
                c.write_all(&IDENT).unwrap();
            }
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::SeqCst);
            let (end, took) = h.join().unwrap();
            assert!(matches!(end, End::Shutdown), "{end:?}");
            assert!(took < Duration::from_secs(2), "{took:?}");
        }
    }

    #[test]
    fn idle_client_is_dropped() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let limits = Limits {
                idle: Duration::from_millis(200),
                operation: Duration::from_secs(5),
                ..Limits::default()
            };
            serve(&mut s, &mut Toy { take: 0 }, &limits, &Counters::default())
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&IDENT).unwrap();
        let end = h.join().unwrap();
        assert!(matches!(end, End::Idle(_)), "{end:?}");
    }
}
