//! Errors of the RaidFile layer. Every failure names the operation and the RaidFile
//! name or path it concerns; configuration errors carry the file and line.

use std::io;
use std::path::PathBuf;

/// What went wrong in a RaidFile operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on one file failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// raidfile.conf (or another file in the same syntax) is malformed or unusable.
    #[error("{file}:{line}: {message}")]
    Config {
        file: String,
        line: usize,
        message: String,
    },

    /// The disc set description itself is unusable (wrong number of directories,
    /// two equal directories, a block size the parity code cannot use).
    #[error("disc set {set}: {detail}")]
    BadDiscSet { set: u32, detail: String },

    /// The name cannot be a RaidFile name (absolute, empty, `..`, NUL, ...).
    #[error("bad RaidFile name {name:?}: {why}")]
    BadName { name: String, why: &'static str },

    /// No representation of the file exists.
    #[error("RaidFile {name} does not exist")]
    NotFound { name: String },

    /// The file exists and the writer was not allowed to overwrite it.
    #[error("RaidFile {name} already exists")]
    AlreadyExists { name: String },

    /// Another writer (in this or another process) holds the file's lock.
    #[error("RaidFile {name} is locked by another writer")]
    Locked { name: String },

    /// Too few intact components are left to read the file.
    #[error("RaidFile {name} is damaged and cannot be recovered: {detail}")]
    Damaged { name: String, detail: String },

    /// A directory exists on some discs of the set but not on others, or a file
    /// stands where a directory should be.
    #[error("RaidFile directory {dir}: {detail}")]
    Directory { dir: String, detail: String },

    /// The operation does not apply in this state (e.g. a seek past 2^63).
    #[error("RaidFile {name}: {detail}")]
    Invalid { name: String, detail: String },
}

/// Result with the RaidFile error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the error is (or wraps) a system error with this errno.
    pub fn is_errno(&self, errno: i32) -> bool {
        matches!(self, Error::Io { source, .. } if source.raw_os_error() == Some(errno))
    }
}

/// `std::io` adapters (`Read`, `Write`, `Seek`) hand our errors through as `io::Error`
/// so callers can still downcast to the typed value.
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Io { source, .. } => source.kind(),
            Error::NotFound { .. } => io::ErrorKind::NotFound,
            Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
            Error::Locked { .. } => io::ErrorKind::WouldBlock,
            Error::Damaged { .. } => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
