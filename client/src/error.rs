//! Errors of the client library. Variants name the operation and carry the
//! local path or the store object they concern; the binaries print the chain.

use std::io;
use std::path::PathBuf;

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A local file or directory could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Local {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The store (or the connection to it) failed.
    #[error(transparent)]
    Remote(#[from] bb_remote::Error),

    /// Bytes from the store did not decode, or could not be encoded.
    #[error("{what}: {source}")]
    Format {
        what: String,
        #[source]
        source: bb_format::Error,
    },

    /// Restore: the target exists and there is nothing to resume (0.13's
    /// `Restore_TargetExists`).
    #[error("The target directory exists. You cannot restore over an existing directory.")]
    RestoreTargetExists { path: PathBuf },

    /// Restore: an interrupted restore left its resume file; resuming was not
    /// asked for (0.13's `Restore_ResumePossible`).
    #[error("Resume possible -- repeat command with -r flag to resume")]
    RestoreResumePossible { path: PathBuf },

    /// Restore: the target's parent is missing or not a directory (0.13's
    /// `Restore_TargetPathNotFound`).
    #[error("Failed to restore: parent '{}' of target directory does not exist.", parent.display())]
    RestoreParentMissing { parent: PathBuf },

    /// Something from the store makes no sense for a local tree: a name that
    /// is not a single path component, a symlink with data, missing attributes.
    #[error("{what}: {detail}")]
    StoreData { what: String, detail: String },
}

impl Error {
    /// An I/O error on a local path.
    pub fn local(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Local {
            op,
            path: path.into(),
            source,
        }
    }

    /// A format error about `what` (an object id, a path).
    pub fn format(what: impl Into<String>, source: bb_format::Error) -> Error {
        Error::Format {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
