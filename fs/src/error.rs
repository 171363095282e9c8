//! Errors of bb-fs, and the one map from them to errno values (STYLE rule:
//! not found -> ENOENT, any write -> EROFS, network, crypto and decode
//! failures -> EIO, logged with the object they concern).

use fuser::Errno;

/// What went wrong, and with which store object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such name, or the object went away (housekeeping removed it).
    #[error("not found")]
    NotFound,

    /// The store or the connection to it failed.
    #[error("object {id:#x}: {source}")]
    Remote {
        id: i64,
        #[source]
        source: bb_remote::Error,
    },

    /// Bytes from the store did not decrypt or decode.
    #[error("object {id:#x}: {source}")]
    Format {
        id: i64,
        #[source]
        source: bb_format::Error,
    },

    /// A reader of a file being streamed saw the stream fail (the error was
    /// logged where it happened).
    #[error("object {id:#x}: {detail}")]
    Stream { id: i64, detail: String },

    /// The mount could not be set up.
    #[error("{0}")]
    Setup(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn remote(id: i64, source: bb_remote::Error) -> Error {
        match source.code() {
            Some(
                bb_proto::ErrorCode::DoesNotExist | bb_proto::ErrorCode::DoesNotExistInDirectory,
            ) => Error::NotFound,
            _ => Error::Remote { id, source },
        }
    }

    pub(crate) fn format(id: i64, source: bb_format::Error) -> Error {
        Error::Format { id, source }
    }

    /// The errno a FUSE reply carries for this error. Everything but "not
    /// found" is an I/O error, and is logged here, once, with its object.
    pub fn errno(&self) -> Errno {
        match self {
            Error::NotFound => Errno::ENOENT,
            e => {
                tracing::error!("{e}");
                Errno::EIO
            }
        }
    }
}
