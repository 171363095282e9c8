//! The exchange rules (`protocol.md` §2.6, §3.1, §4.1): which messages carry a
//! stream and in which form, which commands write, and which are allowed in which
//! session phase. Data, not behaviour: the connection loops in bb-store and
//! bb-remote apply them.
//!
//! The rules, in short:
//!
//! 1. The client sends one command. If [`Command::stream`] is `Some`, it sends
//!    exactly one stream right after it, without waiting: [`CommandStream::Attributes`]
//!    MUST be sized, [`CommandStream::File`] may be either form.
//! 2. The server reads the command and its whole stream (to the chunked
//!    terminator) *before* replying, even when the reply is an error; 0.13 does
//!    the same, so a failed StoreFile leaves the session usable.
//! 3. The server sends exactly one reply. A stream follows only where
//!    [`Command::reply_stream`] says so, never after an [`ErrorReply`], and always
//!    in the form [`crate::stream::StreamHeader::for_len`] picks (sized up to
//!    0x7FFFFFFF bytes): 0.13's clients parse listings, names and block indexes
//!    structurally and never read a chunked terminator, so a chunked reply stream
//!    would desynchronise them.
//! 4. The client reads the whole reply stream, terminator included, even if it
//!    stops caring about the data. Then the next command: no pipelining.
//!
//! [`ErrorReply`]: crate::message::ErrorReply

use crate::message::{Command, MessageType, Reply};
use crate::stream::StreamDecoder;

/// What the stream that follows a command carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandStream {
    /// An encrypted attribute blob (§7.3). MUST be sized; 0.13's server answers a
    /// chunked one with the fatal error and closes.
    Attributes,
    /// An encoded file or patch in file order (§7.4, §7.6), either form; bbackupd
    /// always sends it chunked.
    File,
}

impl CommandStream {
    /// Whether the sender must use the sized form.
    pub fn must_be_sized(self) -> bool {
        self == CommandStream::Attributes
    }

    /// A decoder for this stream that refuses more than `limit` bytes (and the
    /// chunked form, for attributes).
    pub fn decoder(self, limit: u64) -> StreamDecoder {
        let d = StreamDecoder::new().with_limit(limit);
        if self.must_be_sized() {
            d.sized_only()
        } else {
            d
        }
    }
}

/// What the stream that follows a reply carries. Always sent sized (§2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyStream {
    /// GetObject: the stored object verbatim (directory, file in file order, or
    /// reverse patch).
    Object,
    /// ListDirectory: a directory (§7.1), without dependency info.
    Directory,
    /// GetFile: the encoded file in stream order (§7.4).
    File,
    /// GetBlockIndexByID/ByName: the block index (§7.5).
    BlockIndex,
    /// GetObjectName: encoded names, leaf first (§7.2, [`crate::names`]).
    ObjectName,
}

/// The server's session phase (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// After the ident: only `Version` (and `Finished`).
    Version,
    /// After `Version(1)`: only `Login` (and `Finished`).
    Login,
    /// After a successful login: everything but `Version` and `Login`.
    Commands,
}

impl Command {
    /// The stream the client sends right after this command, if any.
    pub fn stream(&self) -> Option<CommandStream> {
        match self {
            Command::CreateDirectory(_)
            | Command::CreateDirectory2(_)
            | Command::ChangeDirAttributes(_)
            | Command::SetReplacementFileAttributes(_) => Some(CommandStream::Attributes),
            Command::StoreFile(_) => Some(CommandStream::File),
            _ => None,
        }
    }

    /// The reply type a successful command gets (an [`Reply::Error`] may come
    /// instead of any of them).
    pub fn expected_reply(&self) -> MessageType {
        match self {
            Command::Version(_) => MessageType::Version,
            Command::Login(_) => MessageType::LoginConfirmed,
            Command::Finished(_) => MessageType::Finished,
            Command::GetObjectName(_) => MessageType::ObjectName,
            Command::GetAccountUsage(_) => MessageType::AccountUsage,
            Command::GetIsAlive(_) => MessageType::IsAlive,
            Command::GetAccountUsage2(_) => MessageType::AccountUsage2,
            _ => MessageType::Success,
        }
    }

    /// The stream that follows `reply` to this command, if any: only after the
    /// expected success reply, and for GetBlockIndexByName only when it found a
    /// file (`Success.object_id != 0`), for GetObjectName only when it found names
    /// (`num_name_elements > 0`).
    pub fn reply_stream(&self, reply: &Reply) -> Option<ReplyStream> {
        match (self, reply) {
            (Command::GetObject(_), Reply::Success(_)) => Some(ReplyStream::Object),
            (Command::ListDirectory(_), Reply::Success(_)) => Some(ReplyStream::Directory),
            (Command::GetFile(_), Reply::Success(_)) => Some(ReplyStream::File),
            (Command::GetBlockIndexById(_), Reply::Success(_)) => Some(ReplyStream::BlockIndex),
            (Command::GetBlockIndexByName(_), Reply::Success(s)) if s.object_id != 0 => {
                Some(ReplyStream::BlockIndex)
            }
            (Command::GetObjectName(_), Reply::ObjectName(n)) if n.num_name_elements > 0 => {
                Some(ReplyStream::ObjectName)
            }
            _ => None,
        }
    }

    /// Whether the command changes the store, so a read-only session gets
    /// `SessionReadOnly` (§3.3).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Command::SetClientStoreMarker(_)
                | Command::MoveObject(_)
                | Command::CreateDirectory(_)
                | Command::CreateDirectory2(_)
                | Command::ChangeDirAttributes(_)
                | Command::DeleteDirectory(_)
                | Command::UndeleteDirectory(_)
                | Command::StoreFile(_)
                | Command::SetReplacementFileAttributes(_)
                | Command::DeleteFile(_)
                | Command::UndeleteFile(_)
        )
    }

    /// Whether 0.13 accepts the command in `phase`; otherwise it replies
    /// `NotInRightProtocolPhase` and the session goes on (§4.1). `Finished` is
    /// accepted everywhere.
    pub fn allowed_in(&self, phase: Phase) -> bool {
        match self {
            Command::Finished(_) => true,
            Command::Version(_) => phase == Phase::Version,
            Command::Login(_) => phase == Phase::Login,
            _ => phase == Phase::Commands,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::*;
    use bb_format::EncodedName;

    fn name() -> EncodedName {
        EncodedName::clear(b"n").unwrap()
    }

    #[test]
    fn stream_rules_per_spec_table() {
        let attrs: Vec<Command> = vec![
            CreateDirectory {
                containing_directory_id: 1,
                attributes_mod_time: 0,
                directory_name: name(),
            }
            .into(),
            CreateDirectory2 {
                containing_directory_id: 1,
                attributes_mod_time: 0,
                modification_time: 0,
                directory_name: name(),
            }
            .into(),
            ChangeDirAttributes {
                object_id: 1,
                attributes_mod_time: 0,
            }
            .into(),
            SetReplacementFileAttributes {
                in_directory: 1,
                attributes_hash: 0,
                filename: name(),
            }
            .into(),
        ];
        for c in &attrs {
            assert_eq!(c.stream(), Some(CommandStream::Attributes));
            assert!(c.is_write());
        }
        let store = Command::from(StoreFile {
            directory_object_id: 1,
            modification_time: 0,
            attributes_hash: 0,
            diff_from_file_id: 0,
            filename: name(),
        });
        assert_eq!(store.stream(), Some(CommandStream::File));

        let ok = |id| Reply::Success(Success { object_id: id });
        let err = Reply::from(crate::ErrorCode::DoesNotExist);
        let by_name = Command::from(GetBlockIndexByName {
            in_directory: 2,
            filename: name(),
        });
        assert_eq!(by_name.reply_stream(&ok(9)), Some(ReplyStream::BlockIndex));
        assert_eq!(by_name.reply_stream(&ok(0)), None);
        assert_eq!(by_name.reply_stream(&err), None);
        let get_name = Command::from(GetObjectName {
            object_id: 3,
            containing_directory_id: 2,
        });
        let on = |n| {
            Reply::ObjectName(ObjectName {
                num_name_elements: n,
                modification_time: 0,
                attributes_hash: 0,
                flags: 0,
            })
        };
        assert_eq!(get_name.reply_stream(&on(2)), Some(ReplyStream::ObjectName));
        assert_eq!(get_name.reply_stream(&on(0)), None);
        let list = Command::from(ListDirectory {
            object_id: 1,
            flags_must_be_set: -1,
            flags_not_to_be_set: 12,
            send_attributes: true,
        });
        assert_eq!(list.reply_stream(&ok(1)), Some(ReplyStream::Directory));
        assert_eq!(list.reply_stream(&err), None);
        assert!(!list.is_write());
        assert_eq!(store.reply_stream(&ok(3)), None);
        assert_eq!(store.expected_reply(), MessageType::Success);
        assert_eq!(get_name.expected_reply(), MessageType::ObjectName);
    }

    #[test]
    fn phases() {
        let v = Command::from(Version { version: 1 });
        let f = Command::from(Finished {});
        let g = Command::from(GetIsAlive {});
        assert!(v.allowed_in(Phase::Version) && !v.allowed_in(Phase::Commands));
        assert!(f.allowed_in(Phase::Version) && f.allowed_in(Phase::Commands));
        assert!(!g.allowed_in(Phase::Login) && g.allowed_in(Phase::Commands));
    }
}
