//! bb-proto: Box Backup 0.13's wire protocol, sans-IO.
//!
//! Will own: the ident handshake, every Command and Reply with Box Backup's type
//! numbers, the error codes (type 1000, sub-codes 1..16), object framing and the two
//! stream encodings (`../shared/spec/protocol.md`). Encoders write into a buffer and
//! decoders read from a slice, returning `Ok(None)` when they need more bytes.
//!
//! Must not know: sockets, TLS, files, or what the messages mean to a store.

pub mod pki;
