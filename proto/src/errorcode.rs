//! The protocol's error sub-codes (`protocol.md` §3.2): `Error(1000, n)` replies
//! with Box Backup's numbers and names, so that C++ clients understand ours.
//!
//! Owns the numbering and the words; when a store raises which code is bb-store's
//! business (§3.3).

use crate::message::{ErrorReply, Reply};

macro_rules! codes {
    ($( $(#[$meta:meta])* $name:ident = $n:literal, $text:literal; )*) => {
        /// An error sub-code of type 1000 (`ErrorType`), as 0.13 numbers them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(i32)]
        pub enum ErrorCode {
            $( $(#[$meta])* $name = $n, )*
        }

        impl ErrorCode {
            /// All sixteen codes, in number order.
            pub const ALL: &[ErrorCode] = &[$( ErrorCode::$name, )*];

            /// The code with this sub-type number, if 0.13 defines one.
            pub fn from_sub_type(n: i32) -> Option<ErrorCode> {
                match n {
                    $( $n => Some(ErrorCode::$name), )*
                    _ => None,
                }
            }

            /// Box Backup's name, e.g. `"DoesNotExist"`.
            pub fn name(self) -> &'static str {
                match self {
                    $( ErrorCode::$name => stringify!($name), )*
                }
            }

            /// What the code means, in a few words.
            pub fn description(self) -> &'static str {
                match self {
                    $( ErrorCode::$name => $text, )*
                }
            }
        }
    };
}

codes! {
    /// `Version` with a value other than 1.
    WrongVersion = 1, "wrong protocol version";
    /// A command in the wrong session phase (§4.1); the session continues.
    NotInRightProtocolPhase = 2, "command not allowed in this protocol phase";
    /// Login's client ID is not the certificate's account, or no such account.
    BadLogin = 3, "bad login";
    /// Another read/write session or housekeeping holds the account.
    CannotLockStoreForWriting = 4, "cannot lock the store for writing";
    /// A write command in a read-only session.
    SessionReadOnly = 5, "session is read-only";
    /// An uploaded file or patch, or a stored file, fails structural checks.
    FileDoesNotVerify = 6, "file does not verify";
    /// The object or directory does not exist.
    DoesNotExist = 7, "object does not exist";
    /// CreateDirectory: a current entry of that name exists.
    DirectoryAlreadyExists = 8, "directory already exists";
    /// Delete/UndeleteDirectory of the root.
    CannotDeleteRoot = 9, "cannot delete the root directory";
    /// MoveObject: the target name is taken.
    TargetNameExists = 10, "target name exists";
    /// StoreFile / CreateDirectory would exceed the hard limit; the session goes on.
    StorageLimitExceeded = 11, "storage limit exceeded";
    /// StoreFile: the diff base is not an existing file.
    DiffFromFileDoesNotExist = 12, "file to diff from does not exist";
    /// The object is not an entry of the named directory.
    DoesNotExistInDirectory = 13, "object does not exist in that directory";
    /// GetFile: a patch chain references a missing entry.
    PatchConsistencyError = 14, "patch chain is inconsistent";
    /// Defined by 0.13 but never raised.
    MultiplyReferencedObject = 15, "object is referenced more than once";
    /// Login to a disabled account.
    DisabledAccount = 16, "account is disabled";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.name(),
            *self as i32,
            self.description()
        )
    }
}

impl std::error::Error for ErrorCode {}

impl From<ErrorCode> for ErrorReply {
    fn from(code: ErrorCode) -> ErrorReply {
        ErrorReply {
            error_type: ErrorReply::ERROR_TYPE,
            sub_type: code as i32,
        }
    }
}

impl From<ErrorCode> for Reply {
    fn from(code: ErrorCode) -> Reply {
        Reply::Error(code.into())
    }
}

impl TryFrom<&ErrorReply> for ErrorCode {
    /// The reply itself, when it is not a type-1000 error 0.13 defines (for
    /// instance the fatal `Error(0, -1)`).
    type Error = ErrorReply;

    fn try_from(e: &ErrorReply) -> Result<ErrorCode, ErrorReply> {
        if e.error_type != ErrorReply::ERROR_TYPE {
            return Err(e.clone());
        }
        ErrorCode::from_sub_type(e.sub_type).ok_or_else(|| e.clone())
    }
}

impl ErrorReply {
    /// The sub-code, if this is a type-1000 error 0.13 defines.
    pub fn code(&self) -> Option<ErrorCode> {
        ErrorCode::try_from(self).ok()
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code() {
            Some(code) => write!(f, "store error {code}"),
            None if self.is_fatal() => write!(f, "fatal store error (0, -1)"),
            None => write!(
                f,
                "store error type {} sub-type {}",
                self.error_type, self.sub_type
            ),
        }
    }
}

impl std::error::Error for ErrorReply {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_names_and_round_trip() {
        assert_eq!(ErrorCode::ALL.len(), 16);
        for (i, &c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(c as i32, i as i32 + 1);
            let e = ErrorReply::from(c);
            assert_eq!((e.error_type, e.sub_type), (1000, i as i32 + 1));
            assert_eq!(e.code(), Some(c));
        }
        assert_eq!(ErrorCode::from_sub_type(0), None);
        assert_eq!(ErrorCode::from_sub_type(17), None);
        assert_eq!(
            ErrorCode::StorageLimitExceeded.to_string(),
            "StorageLimitExceeded (11): storage limit exceeded"
        );
        assert_eq!(ErrorReply::FATAL.code(), None);
        assert_eq!(ErrorReply::FATAL.to_string(), "fatal store error (0, -1)");
        let odd = ErrorReply {
            error_type: 1000,
            sub_type: 99,
        };
        assert_eq!(ErrorCode::try_from(&odd), Err(odd.clone()));
        assert_eq!(
            ErrorReply::from(ErrorCode::DoesNotExist).to_string(),
            "store error DoesNotExist (7): object does not exist"
        );
    }
}
