//! Errors of the client end. Three kinds matter to a caller, and
//! [`Error::is_connection_lost`] tells them apart:
//!
//! - the store answered with an error reply ([`Error::Store`]): the session goes on,
//!   unless the reply was 0.13's fatal `Error(0,-1)`, after which the server closes;
//! - the connection is gone or out of step (I/O, timeout, TLS, framing, an
//!   unexpected reply): the next operation needs a new connection
//!   ([`crate::Session`] makes one);
//! - a reply stream arrived whole but its payload did not parse
//!   ([`Error::Payload`]): the connection is still in step.

use std::io;

use bb_proto::{ErrorCode, ErrorReply, MessageType};

/// What went wrong in an operation; `op` names the protocol command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: {reply}")]
    Store { op: &'static str, reply: ErrorReply },

    #[error("{op}: timed out after {after:?}")]
    Timeout {
        op: &'static str,
        after: std::time::Duration,
    },

    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("{op}: the server closed the connection")]
    ConnectionClosed { op: &'static str },

    #[error("{op}: the connection was lost earlier and must be re-opened")]
    NotConnected { op: &'static str },

    /// The text is our verifier's own where it refused the peer's certificate
    /// (a SHA-1 signed one, say), not rustls's `Debug` of it.
    #[error("{op}: TLS: {}", bb_proto::pki::tls_error_text(.source))]
    Tls {
        op: &'static str,
        #[source]
        source: rustls::Error,
    },

    #[error("TLS configuration: {0}")]
    Pki(#[from] bb_proto::pki::Error),

    #[error("{op}: protocol: {source}")]
    Protocol {
        op: &'static str,
        #[source]
        source: bb_proto::Error,
    },

    #[error("{op}: unexpected reply {got}")]
    UnexpectedReply { op: &'static str, got: MessageType },

    #[error("{op}: the reply stream does not parse: {source}")]
    Payload {
        op: &'static str,
        #[source]
        source: bb_format::Error,
    },

    #[error("{op}: the reply stream of {size} bytes exceeds the limit of {limit}")]
    StreamTooLarge {
        op: &'static str,
        size: u64,
        limit: u64,
    },

    #[error("{op}: reading the upload source: {source}")]
    Source {
        op: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("{op}: writing the downloaded data: {source}")]
    Sink {
        op: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("{op}: {detail}")]
    Usage { op: &'static str, detail: String },

    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The store's sub-code when this is a type-1000 error reply.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Store { reply, .. } => reply.code(),
            _ => None,
        }
    }

    /// Whether the connection can no longer be used: I/O, timeouts, TLS,
    /// framing, an unexpected reply, or 0.13's fatal `Error(0,-1)`.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Error::Store { reply, .. } => reply.error_type != ErrorReply::ERROR_TYPE,
            Error::Payload { .. }
            | Error::Source { .. }
            | Error::Sink { .. }
            | Error::Usage { .. }
            | Error::Pki(_) => false,
            _ => true,
        }
    }

    /// Turns an I/O error of the socket into a timeout or a lost connection.
    pub(crate) fn io(op: &'static str, e: io::Error, after: std::time::Duration) -> Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout { op, after },
            io::ErrorKind::UnexpectedEof => Error::ConnectionClosed { op },
            _ => Error::Io { op, source: e },
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_reply_means_the_connection_is_gone() {
        let normal = Error::Store {
            op: "ListDirectory",
            reply: ErrorReply {
                error_type: 1000,
                sub_type: 7,
            },
        };
        assert_eq!(normal.code(), Some(ErrorCode::DoesNotExist));
        assert!(!normal.is_connection_lost());
        let fatal = Error::Store {
            op: "ListDirectory",
            reply: ErrorReply::FATAL,
        };
        assert_eq!(fatal.code(), None);
        assert!(fatal.is_connection_lost());
        let t = Error::io(
            "GetIsAlive",
            io::Error::from(io::ErrorKind::WouldBlock),
            std::time::Duration::from_secs(1),
        );
        assert!(matches!(t, Error::Timeout { .. }) && t.is_connection_lost());
    }
}
