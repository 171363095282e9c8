//! Errors of the store. Every variant names the operation and the account, object
//! or file it concerns; [`Error::kind`] says which of Box Backup's protocol error
//! sub-codes (protocol.md §3.2) a session should answer with.

use std::io;
use std::path::PathBuf;

use crate::ObjectId;

/// Box Backup's protocol error sub-codes (`Error` reply, type 1000), as numbered
/// by 0.13 (protocol.md §3.2). Our own enum so this crate needs no protocol crate;
/// the session maps it to the wire with [`StoreErrorKind::sub_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreErrorKind {
    WrongVersion,
    NotInRightProtocolPhase,
    BadLogin,
    CannotLockStoreForWriting,
    SessionReadOnly,
    FileDoesNotVerify,
    DoesNotExist,
    DirectoryAlreadyExists,
    CannotDeleteRoot,
    TargetNameExists,
    StorageLimitExceeded,
    DiffFromFileDoesNotExist,
    DoesNotExistInDirectory,
    PatchConsistencyError,
    MultiplyReferencedObject,
    DisabledAccount,
}

impl StoreErrorKind {
    /// Every kind, in sub-code order.
    pub const ALL: [StoreErrorKind; 16] = [
        StoreErrorKind::WrongVersion,
        StoreErrorKind::NotInRightProtocolPhase,
        StoreErrorKind::BadLogin,
        StoreErrorKind::CannotLockStoreForWriting,
        StoreErrorKind::SessionReadOnly,
        StoreErrorKind::FileDoesNotVerify,
        StoreErrorKind::DoesNotExist,
        StoreErrorKind::DirectoryAlreadyExists,
        StoreErrorKind::CannotDeleteRoot,
        StoreErrorKind::TargetNameExists,
        StoreErrorKind::StorageLimitExceeded,
        StoreErrorKind::DiffFromFileDoesNotExist,
        StoreErrorKind::DoesNotExistInDirectory,
        StoreErrorKind::PatchConsistencyError,
        StoreErrorKind::MultiplyReferencedObject,
        StoreErrorKind::DisabledAccount,
    ];

    /// The protocol sub-code (1..=16).
    pub fn sub_code(self) -> i32 {
        StoreErrorKind::ALL
            .iter()
            .position(|&k| k == self)
            .map_or(0, |i| i as i32 + 1)
    }

    /// The kind for a protocol sub-code, if it is one of 0.13's.
    pub fn from_sub_code(code: i32) -> Option<StoreErrorKind> {
        let i = usize::try_from(code.checked_sub(1)?).ok()?;
        StoreErrorKind::ALL.get(i).copied()
    }
}

/// What went wrong in a store operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object (file or directory) does not exist.
    #[error("{op}: object {id:#x} does not exist")]
    DoesNotExist { op: &'static str, id: ObjectId },

    /// The object exists but is a file where a directory was needed.
    #[error("{op}: object {id:#x} is not a directory")]
    NotADirectory { op: &'static str, id: ObjectId },

    /// The object exists but is not an encoded file.
    #[error("{op}: object {id:#x} is not a file")]
    NotAFile { op: &'static str, id: ObjectId },

    /// The object is not an entry of the directory named.
    #[error("{op}: object {id:#x} is not in directory {dir:#x}")]
    DoesNotExistInDirectory {
        op: &'static str,
        id: ObjectId,
        dir: ObjectId,
    },

    /// An uploaded or stored file fails the structural check (formats.md §2.8).
    #[error("{op}: object {id:#x} does not verify: {source}")]
    FileDoesNotVerify {
        op: &'static str,
        id: ObjectId,
        #[source]
        source: bb_format::Error,
    },

    /// The operation would take the account over its hard limit.
    #[error("{op}: storage limit exceeded: {used} blocks used + {adding} > hard limit {hard}")]
    StorageLimitExceeded {
        op: &'static str,
        used: i64,
        adding: i64,
        hard: i64,
    },

    /// StoreFile's diff base is not an existing file (in that directory).
    #[error("{op}: diff base {id:#x} is not an existing file")]
    DiffFromFileDoesNotExist { op: &'static str, id: ObjectId },

    /// CreateDirectory: a current entry of that name exists in `dir`.
    #[error(
        "{op}: a current entry of that name exists in directory {dir:#x} (object {existing:#x})"
    )]
    DirectoryAlreadyExists {
        op: &'static str,
        dir: ObjectId,
        existing: ObjectId,
    },

    /// Delete/undelete of the root directory.
    #[error("{op}: the root directory cannot be deleted or undeleted")]
    CannotDeleteRoot { op: &'static str },

    /// MoveObject: the target name is taken in `dir`.
    #[error("{op}: the target name exists in directory {dir:#x}")]
    TargetNameExists { op: &'static str, dir: ObjectId },

    /// A patch chain is broken (a DependsNewer link leads nowhere).
    #[error("{op}: patch chain of object {id:#x} is inconsistent: {detail}")]
    PatchConsistency {
        op: &'static str,
        id: ObjectId,
        detail: String,
    },

    /// Another writer (session, housekeeping, tool) holds the account's write lock.
    #[error("account {account:#x}: cannot lock the store for writing (another writer holds it)")]
    CannotLockStoreForWriting { account: u32 },

    /// The account is disabled.
    #[error("account {account:#x} is disabled")]
    AccountDisabled { account: u32 },

    /// A write on an account opened read-only.
    #[error("{op}: account {account:#x} is open read-only")]
    ReadOnly { op: &'static str, account: u32 },

    /// The account is not in the accounts database.
    #[error("account {account:#x} does not exist")]
    AccountNotFound { account: u32 },

    /// Creating an account that already exists (in accounts.txt or on disc).
    #[error("account {account:#x} already exists: {detail}")]
    AccountExists { account: u32, detail: String },

    /// A stored object, info file or refcount database is malformed.
    #[error("{op}: {what} is corrupt: {source}")]
    Corrupt {
        op: &'static str,
        what: String,
        #[source]
        source: bb_format::Error,
    },

    /// Something could not be encoded (e.g. a directory over the format's limits).
    #[error("{op}: {source}")]
    Format {
        op: &'static str,
        #[source]
        source: bb_format::Error,
    },

    /// The RaidFile layer failed.
    #[error("{op} {name}: {source}")]
    Raid {
        op: &'static str,
        name: String,
        #[source]
        source: bb_raid::Error,
    },

    /// A plain file (accounts.txt, an upload stream) failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The incoming stream of an upload or attribute blob failed.
    #[error("{op}: reading the incoming stream: {source}")]
    Stream {
        op: &'static str,
        #[source]
        source: io::Error,
    },

    /// accounts.txt or bbstored.conf is malformed.
    #[error("{file}:{line}: {message}")]
    Config {
        file: String,
        line: usize,
        message: String,
    },

    /// An argument no store operation accepts (object ID 0, a bad limit, ...).
    #[error("{op}: {detail}")]
    Invalid { op: &'static str, detail: String },
}

/// Result with the store error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The protocol error a session should reply with, or `None` for failures of
    /// the store itself (I/O, corrupt objects, bad configuration), which 0.13
    /// answers with its fatal `Error(0, -1)` and a disconnect; a Rust server may
    /// reply `FileDoesNotVerify` for those instead and keep the session
    /// (protocol.md §6.3).
    ///
    /// A wrong object type maps to `DoesNotExist` (protocol.md §6.3: 0.13 killed the
    /// session there), except where 0.13 itself answers otherwise.
    pub fn kind(&self) -> Option<StoreErrorKind> {
        use StoreErrorKind as K;
        Some(match self {
            Error::DoesNotExist { .. } | Error::NotADirectory { .. } | Error::NotAFile { .. } => {
                K::DoesNotExist
            }
            Error::DoesNotExistInDirectory { .. } => K::DoesNotExistInDirectory,
            Error::FileDoesNotVerify { .. } => K::FileDoesNotVerify,
            Error::StorageLimitExceeded { .. } => K::StorageLimitExceeded,
            Error::DiffFromFileDoesNotExist { .. } => K::DiffFromFileDoesNotExist,
            Error::DirectoryAlreadyExists { .. } => K::DirectoryAlreadyExists,
            Error::CannotDeleteRoot { .. } => K::CannotDeleteRoot,
            Error::TargetNameExists { .. } => K::TargetNameExists,
            Error::PatchConsistency { .. } => K::PatchConsistencyError,
            Error::CannotLockStoreForWriting { .. } => K::CannotLockStoreForWriting,
            Error::AccountDisabled { .. } => K::DisabledAccount,
            Error::ReadOnly { .. } => K::SessionReadOnly,
            Error::AccountNotFound { .. } => K::BadLogin,
            Error::Stream { .. } => return None,
            Error::AccountExists { .. }
            | Error::Corrupt { .. }
            | Error::Format { .. }
            | Error::Raid { .. }
            | Error::Io { .. }
            | Error::Config { .. }
            | Error::Invalid { .. } => return None,
        })
    }

    pub(crate) fn raid(op: &'static str, name: impl Into<String>, source: bb_raid::Error) -> Self {
        Error::Raid {
            op,
            name: name.into(),
            source,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        op: &'static str,
        what: impl Into<String>,
        source: bb_format::Error,
    ) -> Self {
        Error::Corrupt {
            op,
            what: what.into(),
            source,
        }
    }

    /// True for "the object is not there" (any representation).
    pub fn is_does_not_exist(&self) -> bool {
        matches!(self, Error::DoesNotExist { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_codes_are_0_13s() {
        assert_eq!(StoreErrorKind::WrongVersion.sub_code(), 1);
        assert_eq!(StoreErrorKind::DoesNotExist.sub_code(), 7);
        assert_eq!(StoreErrorKind::StorageLimitExceeded.sub_code(), 11);
        assert_eq!(StoreErrorKind::DisabledAccount.sub_code(), 16);
        for k in StoreErrorKind::ALL {
            assert_eq!(StoreErrorKind::from_sub_code(k.sub_code()), Some(k));
        }
        assert_eq!(StoreErrorKind::from_sub_code(0), None);
        assert_eq!(StoreErrorKind::from_sub_code(17), None);
    }
}
