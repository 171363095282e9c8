//! Errors of the protocol layer: what was wrong with bytes received, or why a value
//! cannot be sent. Every one of them means the connection cannot go on (0.13 closes
//! it, `protocol.md` §4.7) except where a variant says otherwise.
//!
//! These are *our* errors. The protocol's own error replies (type 1000, sub-codes
//! 1..16) are [`crate::ErrorCode`] and travel as an ordinary reply.

use crate::message::MessageType;

/// What went wrong while encoding or decoding protocol bytes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The peer's 32-byte ident is not `Box-Backup:v=C` plus NULs (§2.1).
    #[error("ident mismatch: peer sent {received:?}, expected \"Box-Backup:v=C\" and 18 NULs")]
    IdentMismatch {
        /// What the peer sent so far (at most 32 bytes), lossily shown.
        received: String,
    },

    /// An object header announced a size outside 8..=16384 (§2.2).
    #[error("object size {size} outside 8..={max}", max = crate::MAX_OBJECT_SIZE)]
    ObjectSize { size: u32 },

    /// A stream header (type 0xFFFFFFFF) arrived where an object was expected.
    #[error("stream header where an object was expected")]
    StreamWhereObjectExpected,

    /// An object header arrived where a stream header was expected.
    #[error("object of type {object_type} where a stream header was expected")]
    ObjectWhereStreamExpected { object_type: u32 },

    /// A type number that is not in the protocol (§3.1).
    #[error("unknown message type {0}")]
    UnknownType(u32),

    /// A known message sent the wrong way: a reply where a command was expected or
    /// the reverse. 0.13 answers a reply-as-command with the fatal `Error(0,-1)`
    /// before closing (§2.2).
    #[error("{message:?} (type {}) is not a {expected}", *message as u32)]
    WrongDirection {
        message: MessageType,
        expected: &'static str,
    },

    /// The object's body ended before all its fields were read.
    #[error("{message:?}: body too short for field {field}")]
    BodyTruncated {
        message: MessageType,
        field: &'static str,
    },

    /// The object's body has bytes after its last field.
    #[error("{message:?}: {extra} bytes after the last field")]
    BodyTrailing { message: MessageType, extra: usize },

    /// A field's value cannot be decoded (negative string length, bad filename).
    #[error("{message:?}: field {field}: {detail}")]
    BadField {
        message: MessageType,
        field: &'static str,
        detail: String,
    },

    /// An encoded filename inside an object or a name stream did not parse.
    #[error("{what}: bad encoded filename: {source}")]
    BadFilename {
        what: &'static str,
        #[source]
        source: bb_format::Error,
    },

    /// A message would not fit the 16384-byte object limit (a long filename).
    #[error("{message:?}: object of {size} bytes exceeds {max}", max = crate::MAX_OBJECT_SIZE)]
    ObjectTooBig { message: MessageType, size: usize },

    /// Chunk header 254 or 255, which no sender produces (§2.5).
    #[error("reserved chunk header {0:#04x} in a size-uncertain stream")]
    ReservedChunkHeader(u8),

    /// A chunked stream arrived where the protocol requires a sized one
    /// (attribute streams, §2.5).
    #[error("size-uncertain (chunked) stream where a sized stream is required")]
    ChunkedNotAllowed,

    /// A stream is larger than the receiver agreed to take.
    #[error("stream of at least {size} bytes exceeds the limit of {limit}")]
    StreamTooLarge { size: u64, limit: u64 },

    /// A stream decoder was used again after it reported an error.
    #[error("stream decoder used after an error")]
    StreamFailed,

    /// A sized stream of this length cannot be sent: 0 (0.13's sender refuses it)
    /// or above 0x7FFFFFFF (0.13 sends chunked from there on).
    #[error("cannot send a sized stream of {0} bytes")]
    UnsendableSize(u64),

    /// An object-name stream (§7.2) did not hold exactly the announced names.
    #[error("object name stream: {0}")]
    NameStream(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
