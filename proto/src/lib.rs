//! bb-proto: Box Backup 0.13's wire protocol, sans-IO (`../shared/spec/protocol.md`
//! §2, §3, §7; our notes in `docs/protocol.md`).
//!
//! Owns the ident handshake ([`ident`]), object framing ([`object`]), every
//! message with Box Backup's type numbers ([`message`]: [`Command`] client →
//! server, [`Reply`] server → client), the error sub-codes ([`ErrorCode`]), both
//! stream encodings ([`stream`]), the exchange rules ([`exchange`]) and the
//! object-name stream ([`names`]). Encoders append to a `Vec<u8>`; decoders read
//! from a slice and return `Ok(None)` when they need more bytes.
//!
//! Must not know: sockets, files, time, or what the messages mean to a store. The
//! exceptions: [`pki`], TLS configuration and certificate checks that both ends
//! need (it builds rustls configs and verifies certificates, still without
//! touching a socket); and [`metrics`], the small HTTP listener both daemons
//! serve Prometheus text with (bb-client may not see bb-store, so this is the
//! one crate they share; the protocol modules never use it).
//! Any error from a decoder means the connection is out of step and must be
//! closed; the protocol's own error replies are ordinary [`Reply::Error`] values.
//!
//! # A server session loop
//!
//! bb-store's `Session::handle(command, stream) -> reply` sits in a loop like this
//! (`read_more`/`send` are the transport's; `buf` holds received bytes):
//!
//! ```text
//! send(IDENT); while check_ident(&buf)? is None { read_more }; drop 32 bytes
//! loop {
//!     let (cmd, used) = match Command::decode(&buf) {
//!         Ok(Some(x)) => x,
//!         Ok(None) => { read_more; continue }     // at most 16 KiB buffered
//!         Err(Error::WrongDirection { .. }) => { send(Reply::Error(ErrorReply::FATAL)); close }
//!         Err(_) => close,                         // 0.13 closes without a reply
//!     };
//!     drop `used` bytes;
//!     let reply = if !cmd.allowed_in(phase) { NotInRightProtocolPhase }
//!                 else if read_only && cmd.is_write() { SessionReadOnly } else { ... };
//!     if let Some(kind) = cmd.stream() {
//!         // kind.decoder(limit) refuses chunked attributes and oversize streams.
//!         // Feed every byte through it to the end, even when the reply is already
//!         // an error; hand the data to handle() or discard it.
//!     }
//!     let (reply, data) = session.handle(cmd, stream);
//!     reply.encode(&mut out)?;
//!     if cmd.reply_stream(&reply).is_some() { stream::encode_stream(&data, &mut out) }
//!     //   (or StreamHeader::for_len(n).encode(&mut out) and then the n bytes)
//!     send(out); if cmd is Finished { close }
//! }
//! ```
//!
//! # A client
//!
//! bb-remote sends [`IDENT`] then reads and [`check_ident`]s the server's; sends
//! `Version(1)`, expects `Reply::Version(1)`; sends `Login`; then for each
//! operation: `cmd.encode(&mut out)`; if `cmd.stream()` is `Some`, append the
//! stream ([`stream::encode_sized`] for attributes; [`stream::ChunkedEncoder`] or a
//! sized header for files); send; [`Reply::decode`] the answer; if
//! `cmd.reply_stream(&reply)` is `Some`, run a [`StreamDecoder`] to the end, then
//! parse the data with bb-format (or [`names`]) and check it used the stream
//! exactly. A [`Reply::Error`] is the store's answer: [`ErrorReply::code`] names
//! it; the fatal `Error(0,-1)` means the server is about to close.

pub mod error;
pub mod errorcode;
pub mod exchange;
pub mod ident;
pub mod message;
pub mod metrics;
pub mod names;
pub mod object;
pub mod pki;
pub mod stream;
mod wire;

pub use error::{Error, Result};
pub use errorcode::ErrorCode;
pub use exchange::{CommandStream, Phase, ReplyStream};
pub use ident::{IDENT, IDENT_LEN, check_ident, encode_ident};
pub use message::{Command, ErrorReply, MessageType, Reply};
pub use object::MAX_OBJECT_SIZE;
pub use stream::{StreamDecoder, StreamHeader};
