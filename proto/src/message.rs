//! Every message of the "Backup" protocol (`protocol.md` §3.1) with Box Backup's
//! type numbers and field order, as one struct each, and the two directions as
//! the enums [`Command`] (client → server) and [`Reply`] (server → client).
//!
//! Commands and replies share one number space; `Version` and `Finished` travel
//! both ways and appear in both enums. Field names are Box Backup's in Rust case
//! (`ClientStoreMarker` → `client_store_marker`); the exceptions are the Error
//! reply's `Type`/`SubType`, which are `error_type`/`sub_type` here because `type`
//! is a keyword.
//!
//! Owns the field layout of each message and nothing of its meaning: which replies
//! carry a stream is in [`crate::exchange`], what a store does with a command is
//! bb-store's business.

use bb_format::{BoxTime, EncodedName};

use crate::error::{Error, Result};
use crate::object::{begin_object, finish_object, split_object};
use crate::wire::{BodyReader, Field};

macro_rules! messages {
    ($(
        $(#[$meta:meta])*
        $variant:ident = $num:literal => $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {
        /// Every type number of the protocol (§3.1), named as in BackupProtocol.txt.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum MessageType {
            $( $variant = $num, )*
        }

        impl MessageType {
            /// All 30 types, in number order.
            pub const ALL: &[MessageType] = &[$( MessageType::$variant, )*];

            /// The type with this number, or `None` for a number 0.13 does not know
            /// (receiving one is fatal, §2.2).
            pub fn from_u32(n: u32) -> Option<MessageType> {
                match n {
                    $( $num => Some(MessageType::$variant), )*
                    _ => None,
                }
            }

            /// Box Backup's name of the message, e.g. `"GetBlockIndexByID"`.
            pub fn name(self) -> &'static str {
                #[allow(unreachable_patterns)]
                match self {
                    // The one name whose Rust case differs from BackupProtocol.txt.
                    MessageType::GetBlockIndexById => "GetBlockIndexByID",
                    $( MessageType::$variant => stringify!($variant), )*
                }
            }
        }

        $(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, Eq)]
            pub struct $name {
                $( $(#[$fmeta])* pub $field: $ty, )*
            }

            impl $name {
                /// This message's type number.
                pub const TYPE: MessageType = MessageType::$variant;

                fn encode_body(&self, _out: &mut Vec<u8>) {
                    $( Field::put(&self.$field, _out); )*
                }

                fn decode_body(_r: &mut BodyReader<'_>) -> Result<$name> {
                    Ok($name { $( $field: Field::get(_r, stringify!($field))?, )* })
                }
            }
        )*
    };
}

messages! {
    /// Type 0, server → client: the command failed. Never followed by a stream.
    /// `error_type` 1000 with a sub-code is a normal error ([`crate::ErrorCode`]);
    /// `(0, -1)` is 0.13's fatal error, after which it closes the connection (§3.2).
    Error = 0 => ErrorReply { error_type: i32, sub_type: i32 }
    /// Type 1, both ways: the client proposes version 1, the server echoes it.
    Version = 1 => Version { version: i32 }
    /// Type 2: log in as `client_id` (must equal the certificate's account);
    /// `flags` bit 0 is [`Login::FLAGS_READ_ONLY`].
    Login = 2 => Login { client_id: i32, flags: i32 }
    /// Type 3: the reply to [`Login`], from the account's store info.
    LoginConfirmed = 3 => LoginConfirmed {
        client_store_marker: i64,
        blocks_used: i64,
        blocks_soft_limit: i64,
        blocks_hard_limit: i64,
    }
    /// Type 4, both ways: ends the session; the server replies in kind and closes.
    Finished = 4 => Finished {}
    /// Type 5: the generic success reply; what `object_id` means depends on the
    /// command (§3.3).
    Success = 5 => Success { object_id: i64 }
    /// Type 6: store an opaque int64 the server hands back at every login (§4.3).
    SetClientStoreMarker = 6 => SetClientStoreMarker { client_store_marker: i64 }
    /// Type 10: fetch a stored object verbatim; reply `Success` + stream.
    GetObject = 10 => GetObject { object_id: i64 }
    /// Type 11: rename an entry or move it to another directory.
    MoveObject = 11 => MoveObject {
        object_id: i64,
        move_from_directory: i64,
        move_to_directory: i64,
        flags: i32,
        new_filename: EncodedName,
    }
    /// Type 12: the names from an object up to the root; reply [`ObjectName`],
    /// with a stream of names when `num_name_elements > 0`.
    GetObjectName = 12 => GetObjectName { object_id: i64, containing_directory_id: i64 }
    /// Type 13: the reply to [`GetObjectName`].
    ObjectName = 13 => ObjectName {
        num_name_elements: i32,
        modification_time: BoxTime,
        attributes_hash: u64,
        flags: i16,
    }
    /// Type 20: make a directory; an attribute stream (sized) follows the command.
    CreateDirectory = 20 => CreateDirectory {
        containing_directory_id: i64,
        attributes_mod_time: BoxTime,
        directory_name: EncodedName,
    }
    /// Type 21: list a directory; reply `Success` + a directory stream (§7.1).
    ListDirectory = 21 => ListDirectory {
        object_id: i64,
        flags_must_be_set: i16,
        flags_not_to_be_set: i16,
        send_attributes: bool,
    }
    /// Type 22: replace a directory's attributes; an attribute stream follows.
    ChangeDirAttributes = 22 => ChangeDirAttributes { object_id: i64, attributes_mod_time: BoxTime }
    /// Type 23: mark a directory and everything under it deleted.
    DeleteDirectory = 23 => DeleteDirectory { object_id: i64 }
    /// Type 24: undo [`DeleteDirectory`].
    UndeleteDirectory = 24 => UndeleteDirectory { object_id: i64 }
    /// Type 30: upload a file (or a patch when `diff_from_file_id != 0`); the
    /// encoded file follows as a stream of either form.
    StoreFile = 30 => StoreFile {
        directory_object_id: i64,
        modification_time: BoxTime,
        attributes_hash: u64,
        diff_from_file_id: i64,
        filename: EncodedName,
    }
    /// Type 31: fetch a file rebuilt and in stream order; reply `Success` + stream.
    GetFile = 31 => GetFile { in_directory: i64, object_id: i64 }
    /// Type 32: replace a file entry's attributes; an attribute stream follows.
    SetReplacementFileAttributes = 32 => SetReplacementFileAttributes {
        in_directory: i64,
        attributes_hash: u64,
        filename: EncodedName,
    }
    /// Type 33: mark every version of a file deleted; `Success(0)` if none.
    DeleteFile = 33 => DeleteFile { in_directory: i64, filename: EncodedName }
    /// Type 34: a file's block index; reply `Success` + stream.
    GetBlockIndexById = 34 => GetBlockIndexById { object_id: i64 }
    /// Type 35: the block index of the newest file of that name; `Success(0)`
    /// and no stream if there is none.
    GetBlockIndexByName = 35 => GetBlockIndexByName { in_directory: i64, filename: EncodedName }
    /// Type 36: clear a file entry's deleted flag.
    UndeleteFile = 36 => UndeleteFile { in_directory: i64, object_id: i64 }
    /// Type 40: reply [`AccountUsage`].
    GetAccountUsage = 40 => GetAccountUsage {}
    /// Type 41: the reply to [`GetAccountUsage`].
    AccountUsage = 41 => AccountUsage {
        blocks_used: i64,
        blocks_in_old_files: i64,
        blocks_in_deleted_files: i64,
        blocks_in_directories: i64,
        blocks_soft_limit: i64,
        blocks_hard_limit: i64,
        block_size: i32,
    }
    /// Type 42: keep-alive; reply [`IsAlive`].
    GetIsAlive = 42 => GetIsAlive {}
    /// Type 43: the reply to [`GetIsAlive`].
    IsAlive = 43 => IsAlive {}
    /// Type 44 (0.12+): reply [`AccountUsage2`].
    GetAccountUsage2 = 44 => GetAccountUsage2 {}
    /// Type 45 (0.12+): every store-info counter. `account_name` is the protocol's
    /// `String`: raw bytes, empty for an account created without a name.
    AccountUsage2 = 45 => AccountUsage2 {
        account_name: Vec<u8>,
        account_enabled: bool,
        client_store_marker: i64,
        block_size: i32,
        last_object_id_used: i64,
        blocks_used: i64,
        blocks_in_current_files: i64,
        blocks_in_old_files: i64,
        blocks_in_deleted_files: i64,
        blocks_in_directories: i64,
        blocks_soft_limit: i64,
        blocks_hard_limit: i64,
        num_current_files: i64,
        num_old_files: i64,
        num_deleted_files: i64,
        num_directories: i64,
    }
    /// Type 46 (0.12+): [`CreateDirectory`] with the entry's modification time.
    CreateDirectory2 = 46 => CreateDirectory2 {
        containing_directory_id: i64,
        attributes_mod_time: BoxTime,
        modification_time: BoxTime,
        directory_name: EncodedName,
    }
}

impl MessageType {
    /// Whether a client may send this type (Version and Finished go both ways).
    pub fn is_command(self) -> bool {
        use MessageType::*;
        !matches!(
            self,
            Error | LoginConfirmed | Success | ObjectName | AccountUsage | IsAlive | AccountUsage2
        )
    }

    /// Whether a server may send this type.
    pub fn is_reply(self) -> bool {
        use MessageType::*;
        matches!(self, Version | Finished) || !self.is_command()
    }
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name(), *self as u32)
    }
}

impl Version {
    /// The only protocol version there is.
    pub const CURRENT: i32 = 1;
}

impl Login {
    /// `Flags_ReadOnly`: log in without taking the account's write lock.
    pub const FLAGS_READ_ONLY: i32 = 1;

    /// Whether the session is read-only (only bit 0 of `flags` means anything).
    pub fn read_only(&self) -> bool {
        self.flags & Self::FLAGS_READ_ONLY != 0
    }
}

impl MoveObject {
    /// `Flags_MoveAllWithSameName`: move every version of the name.
    pub const FLAGS_MOVE_ALL_WITH_SAME_NAME: i32 = 1;
    /// `Flags_AllowMoveOverDeletedObject`: the target name may exist if deleted.
    pub const FLAGS_ALLOW_MOVE_OVER_DELETED_OBJECT: i32 = 2;
}

impl GetObjectName {
    /// `ObjectID_DirectoryOnly`: name the directory itself.
    pub const OBJECT_ID_DIRECTORY_ONLY: i64 = 0;
}

impl ErrorReply {
    /// `ErrorType`: the `error_type` of every normal error reply.
    pub const ERROR_TYPE: i32 = 1000;
    /// 0.13's fatal error, `Error(0, -1)`: it closes the connection after it.
    pub const FATAL: ErrorReply = ErrorReply {
        error_type: 0,
        sub_type: -1,
    };

    /// Whether this is the fatal `Error(0, -1)`.
    pub fn is_fatal(&self) -> bool {
        *self == Self::FATAL
    }
}

/// Entry flag bits and the special filter values (§3.1), for ListDirectory,
/// ObjectName and directory entries. Plain `i16` bit masks as on the wire.
pub mod flags {
    /// `Flags_File`.
    pub const FILE: i16 = 1;
    /// `Flags_Dir`.
    pub const DIR: i16 = 2;
    /// `Flags_Deleted`.
    pub const DELETED: i16 = 4;
    /// `Flags_OldVersion`.
    pub const OLD_VERSION: i16 = 8;
    /// `Flags_RemoveASAP`: a housekeeping hint that shows in listings.
    pub const REMOVE_ASAP: i16 = 16;
    /// `Flags_INCLUDE_EVERYTHING`, for `flags_must_be_set`: no requirement.
    pub const INCLUDE_EVERYTHING: i16 = -1;
    /// `Flags_EXCLUDE_NOTHING`, for `flags_not_to_be_set`.
    pub const EXCLUDE_NOTHING: i16 = 0;
    /// `Flags_EXCLUDE_EVERYTHING` as declared in BackupProtocol.txt (the directory
    /// code uses 31, which adds RemoveASAP).
    pub const EXCLUDE_EVERYTHING: i16 = 15;
    /// `RootDirectory`: the object ID of the root.
    pub const ROOT_DIRECTORY: i64 = 1;
}

macro_rules! direction {
    (
        $(#[$meta:meta])*
        $enum:ident, $what:literal, [ $( $variant:ident ( $ty:ident ) ),* $(,)? ]
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $enum {
            $( #[doc = concat!("[`", stringify!($ty), "`]")] $variant($ty), )*
        }

        $(
            impl From<$ty> for $enum {
                fn from(m: $ty) -> $enum {
                    $enum::$variant(m)
                }
            }
        )*

        impl $enum {
            /// The type number this message travels with.
            pub fn message_type(&self) -> MessageType {
                match self {
                    $( $enum::$variant(_) => $ty::TYPE, )*
                }
            }

            /// Appends the whole object (header and fields) to `out`.
            ///
            /// Fails only if the object would exceed 16384 bytes, which takes an
            /// encoded name near its 16383-byte maximum; `out` is then unchanged.
            pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
                let start = begin_object(out, self.message_type() as u32);
                match self {
                    $( $enum::$variant(m) => m.encode_body(out), )*
                }
                finish_object(out, start).map_err(|size| Error::ObjectTooBig {
                    message: self.message_type(),
                    size,
                })
            }

            /// The whole object as a new vector.
            pub fn to_bytes(&self) -> Result<Vec<u8>> {
                let mut v = Vec::new();
                self.encode(&mut v)?;
                Ok(v)
            }

            #[doc = concat!("Decodes one ", $what, " from the front of `buf`: the message and the")]
            /// bytes it used, or `Ok(None)` until the whole object is there.
            ///
            /// Errors (all fatal to the connection, §4.7): a size outside 8..=16384,
            /// a stream header, an unknown type number or one that does not travel
            /// this way (these three are seen in the header, before the body has
            /// arrived), too few or too many bytes for the fields, a bad filename.
            pub fn decode(buf: &[u8]) -> Result<Option<($enum, usize)>> {
                let check = |n: u32| -> Result<()> {
                    let t = MessageType::from_u32(n).ok_or(Error::UnknownType(n))?;
                    match t {
                        $( MessageType::$variant => Ok(()), )*
                        #[allow(unreachable_patterns)]
                        _ => Err(Error::WrongDirection { message: t, expected: $what }),
                    }
                };
                let Some((kind, body, used)) = split_object(buf, check)? else {
                    return Ok(None);
                };
                // `check` let only this direction's known types through.
                let Some(t) = MessageType::from_u32(kind) else {
                    return Err(Error::UnknownType(kind));
                };
                let mut r = BodyReader::new(body, t);
                let msg = match t {
                    $( MessageType::$variant => $enum::$variant($ty::decode_body(&mut r)?), )*
                    #[allow(unreachable_patterns)]
                    _ => return Err(Error::WrongDirection { message: t, expected: $what }),
                };
                r.finish()?;
                Ok(Some((msg, used)))
            }
        }
    };
}

direction! {
    /// A message from client to server (§3.1). A server decodes with
    /// [`Command::decode`], which rejects reply types.
    Command, "command", [
        Version(Version),
        Login(Login),
        Finished(Finished),
        SetClientStoreMarker(SetClientStoreMarker),
        GetObject(GetObject),
        MoveObject(MoveObject),
        GetObjectName(GetObjectName),
        CreateDirectory(CreateDirectory),
        ListDirectory(ListDirectory),
        ChangeDirAttributes(ChangeDirAttributes),
        DeleteDirectory(DeleteDirectory),
        UndeleteDirectory(UndeleteDirectory),
        StoreFile(StoreFile),
        GetFile(GetFile),
        SetReplacementFileAttributes(SetReplacementFileAttributes),
        DeleteFile(DeleteFile),
        GetBlockIndexById(GetBlockIndexById),
        GetBlockIndexByName(GetBlockIndexByName),
        UndeleteFile(UndeleteFile),
        GetAccountUsage(GetAccountUsage),
        GetIsAlive(GetIsAlive),
        GetAccountUsage2(GetAccountUsage2),
        CreateDirectory2(CreateDirectory2),
    ]
}

direction! {
    /// A message from server to client (§3.1). A client decodes with
    /// [`Reply::decode`], which rejects command types.
    Reply, "reply", [
        Error(ErrorReply),
        Version(Version),
        LoginConfirmed(LoginConfirmed),
        Finished(Finished),
        Success(Success),
        ObjectName(ObjectName),
        AccountUsage(AccountUsage),
        IsAlive(IsAlive),
        AccountUsage2(AccountUsage2),
    ]
}

impl Reply {
    /// The error reply, if this is one.
    pub fn as_error(&self) -> Option<&ErrorReply> {
        match self {
            Reply::Error(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_table_matches_spec() {
        let numbers: Vec<u32> = MessageType::ALL.iter().map(|t| *t as u32).collect();
        assert_eq!(
            numbers,
            [
                0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 20, 21, 22, 23, 24, 30, 31, 32, 33, 34, 35,
                36, 40, 41, 42, 43, 44, 45, 46
            ]
        );
        for n in 0..=100u32 {
            if let Some(t) = MessageType::from_u32(n) {
                assert_eq!(t as u32, n);
                assert!(t.is_command() || t.is_reply(), "{t}");
            }
        }
        assert_eq!(MessageType::from_u32(7), None);
        assert_eq!(MessageType::from_u32(47), None);
        assert_eq!(MessageType::GetBlockIndexById.name(), "GetBlockIndexByID");
        assert_eq!(MessageType::Error.to_string(), "Error(0)");
        let commands = MessageType::ALL.iter().filter(|t| t.is_command()).count();
        let replies = MessageType::ALL.iter().filter(|t| t.is_reply()).count();
        assert_eq!((commands, replies), (23, 9));
    }

    /// The ObjSize column of §3.1 for the fixed-size messages, and `n + L` for the
    /// ones with a name.
    #[test]
    fn object_sizes_match_spec() {
        let name = EncodedName::clear(b"abcdefgh").unwrap(); // L = 10
        let l = 10;
        let size = |m: Command| m.to_bytes().unwrap().len();
        let rsize = |m: Reply| m.to_bytes().unwrap().len();
        assert_eq!(rsize(ErrorReply::FATAL.into()), 16);
        assert_eq!(size(Version { version: 1 }.into()), 12);
        assert_eq!(
            size(
                Login {
                    client_id: 1,
                    flags: 0
                }
                .into()
            ),
            16
        );
        assert_eq!(
            rsize(
                LoginConfirmed {
                    client_store_marker: 0,
                    blocks_used: 0,
                    blocks_soft_limit: 0,
                    blocks_hard_limit: 0
                }
                .into()
            ),
            40
        );
        assert_eq!(size(Finished {}.into()), 8);
        assert_eq!(rsize(Success { object_id: 1 }.into()), 16);
        assert_eq!(
            size(
                MoveObject {
                    object_id: 1,
                    move_from_directory: 1,
                    move_to_directory: 1,
                    flags: 3,
                    new_filename: name.clone()
                }
                .into()
            ),
            36 + l
        );
        assert_eq!(
            rsize(
                ObjectName {
                    num_name_elements: 0,
                    modification_time: 0,
                    attributes_hash: 0,
                    flags: 0
                }
                .into()
            ),
            30
        );
        assert_eq!(
            size(
                ListDirectory {
                    object_id: 1,
                    flags_must_be_set: -1,
                    flags_not_to_be_set: 12,
                    send_attributes: true
                }
                .into()
            ),
            21
        );
        assert_eq!(
            size(
                StoreFile {
                    directory_object_id: 2,
                    modification_time: 0,
                    attributes_hash: 0,
                    diff_from_file_id: 0,
                    filename: name.clone()
                }
                .into()
            ),
            40 + l
        );
        assert_eq!(
            size(
                CreateDirectory2 {
                    containing_directory_id: 1,
                    attributes_mod_time: 0,
                    modification_time: 0,
                    directory_name: name.clone()
                }
                .into()
            ),
            32 + l
        );
        assert_eq!(
            rsize(
                AccountUsage {
                    blocks_used: 0,
                    blocks_in_old_files: 0,
                    blocks_in_deleted_files: 0,
                    blocks_in_directories: 0,
                    blocks_soft_limit: 0,
                    blocks_hard_limit: 0,
                    block_size: 4096
                }
                .into()
            ),
            60
        );
    }

    #[test]
    fn too_big_to_send() {
        // The longest legal name (16383 bytes) does not fit StoreFile's object.
        let long = EncodedName::clear(&vec![b'x'; 16381]).unwrap();
        let m = Command::from(DeleteFile {
            in_directory: 1,
            filename: long.clone(),
        });
        let mut out = vec![9];
        assert!(matches!(
            m.encode(&mut out),
            Err(Error::ObjectTooBig { size: 16399, .. })
        ));
        assert_eq!(out, [9]);
        // 16384 - 8 - 8 = 16368 bytes of name still fit DeleteFile.
        let fits = EncodedName::clear(&vec![b'x'; 16366]).unwrap();
        let m = Command::from(DeleteFile {
            in_directory: 1,
            filename: fits,
        });
        let bytes = m.to_bytes().unwrap();
        assert_eq!(bytes.len(), 16384);
        assert_eq!(Command::decode(&bytes).unwrap().unwrap(), (m, 16384));
    }

    #[test]
    fn bad_bodies() {
        let obj = |size: u32, kind: u32, body: &[u8]| {
            let mut v = size.to_be_bytes().to_vec();
            v.extend_from_slice(&kind.to_be_bytes());
            v.extend_from_slice(body);
            v
        };
        // Short and long bodies.
        assert!(matches!(
            Command::decode(&obj(11, 1, &[0, 0, 1])),
            Err(Error::BodyTruncated { .. })
        ));
        assert!(matches!(
            Command::decode(&obj(13, 1, &[0, 0, 0, 1, 0])),
            Err(Error::BodyTrailing { extra: 1, .. })
        ));
        // Unknown and wrong-direction types fail on the header alone.
        assert!(matches!(
            Command::decode(&obj(16, 7, &[])),
            Err(Error::UnknownType(7))
        ));
        assert!(matches!(
            Command::decode(&obj(40, 3, &[])),
            Err(Error::WrongDirection {
                message: MessageType::LoginConfirmed,
                ..
            })
        ));
        assert!(matches!(
            Reply::decode(&obj(16, 2, &[])),
            Err(Error::WrongDirection {
                message: MessageType::Login,
                ..
            })
        ));
        // A bad filename (encoding 0) and one that overruns the body.
        assert!(matches!(
            Command::decode(&obj(18, 33, &[0, 0, 0, 0, 0, 0, 0, 1, 0x28, 0])),
            Err(Error::BadField { .. })
        ));
        assert!(matches!(
            Command::decode(&obj(18, 33, &[0, 0, 0, 0, 0, 0, 0, 1, 0x2a, 0])),
            Err(Error::BadField { .. })
        ));
        // A negative String length, and one longer than the body.
        let mut usage2 = vec![0xff, 0xff, 0xff, 0xff];
        usage2.extend_from_slice(&[0; 113]);
        assert!(matches!(
            Reply::decode(&obj(125, 45, &usage2)),
            Err(Error::BadField { .. })
        ));
        usage2[..4].copy_from_slice(&1000i32.to_be_bytes());
        assert!(matches!(
            Reply::decode(&obj(125, 45, &usage2)),
            Err(Error::BodyTruncated { .. })
        ));
        // bool: only 01 is true, 02 is read as false without an error (§2.3).
        let ld = |b: u8| obj(21, 21, &[0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 12, b]);
        let dec = |b| match Command::decode(&ld(b)).unwrap().unwrap().0 {
            Command::ListDirectory(l) => l.send_attributes,
            _ => unreachable!(),
        };
        assert!(dec(1));
        assert!(!dec(0));
        assert!(!dec(2));
    }
}
