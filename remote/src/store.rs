//! The store as a client sees it: [`StoreRead`] (what a read-only login may do)
//! and [`StoreWrite`] on top, one method per protocol command (`protocol.md`
//! §3.3), with the payloads parsed. Object IDs, flags and times are the wire's
//! (`i64` IDs, `i16` flag masks from [`bb_proto::message::flags`], `BoxTime`).
//!
//! Both traits are object-safe so that bbackupd, bbackupquery and the FUSE
//! filesystem can run over the real [`crate::Session`] or the in-memory
//! [`crate::fake::FakeStore`]; the conformance suite ([`crate::conformance`])
//! holds the two to the same behaviour.
//!
//! Must not know: how a server keeps objects (that is bb-store's), nor what the
//! encrypted names, attributes and blocks say (callers hold the keys).

use std::io::{Read, Write};

use bb_format::directory::Directory;
use bb_format::index::BlockIndex;
use bb_format::{BoxTime, EncodedName};
pub use bb_proto::message::{AccountUsage, AccountUsage2, LoginConfirmed};

use crate::error::Result;

/// What GetObjectName found: the names from the object up to (excluding) the
/// root, leaf first, and the first entry's fields (§3.3.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectNames {
    pub names: Vec<EncodedName>,
    pub modification_time: BoxTime,
    pub attributes_hash: u64,
    pub flags: i16,
}

/// Read access to one account's store.
pub trait StoreRead {
    /// ListDirectory: the entries whose flags include all of `must_be_set`
    /// (`flags::INCLUDE_EVERYTHING` for any) and none of `not_to_be_set`; the
    /// directory's own attributes only if `send_attributes`.
    fn list_directory(
        &mut self,
        id: i64,
        must_be_set: i16,
        not_to_be_set: i16,
        send_attributes: bool,
    ) -> Result<Directory>;

    /// GetObjectName: `None` when the object (or the directory, for
    /// `object_id` 0) is not found on the way up.
    fn get_object_name(
        &mut self,
        object_id: i64,
        containing_directory: i64,
    ) -> Result<Option<ObjectNames>>;

    /// GetObject: the stored object verbatim into `out`; returns its length.
    fn get_object(&mut self, id: i64, out: &mut dyn Write) -> Result<u64>;

    /// GetFile: the file rebuilt, in stream order (index first), into `out`;
    /// returns its length. Streams: nothing is held whole in memory.
    fn get_file(&mut self, directory: i64, id: i64, out: &mut dyn Write) -> Result<u64>;

    /// GetFile as a `Read` of the stream-order bytes (feed it to
    /// `bb_format::decode::StreamDecoder`). The reply has already been checked
    /// when this returns. Dropping the reader early reads the rest away, or for
    /// a large rest abandons the connection (a `Session` reconnects).
    fn open_file(&mut self, directory: i64, id: i64) -> Result<Box<dyn Read + '_>>;

    /// GetBlockIndexByID.
    fn get_block_index_by_id(&mut self, id: i64) -> Result<BlockIndex>;

    /// GetBlockIndexByName: the newest file of that name in `directory`
    /// (whatever its flags) and its index, or `None`.
    fn get_block_index_by_name(
        &mut self,
        directory: i64,
        name: &EncodedName,
    ) -> Result<Option<(i64, BlockIndex)>>;

    /// GetAccountUsage2 (servers from 0.12 on).
    fn usage(&mut self) -> Result<AccountUsage2>;

    /// The client store marker: as of login, or as last set in this session.
    fn client_store_marker(&mut self) -> Result<i64>;

    /// Sends GetIsAlive if the keep-alive interval has passed since the last
    /// exchange; returns whether it did. Stores without a connection never need it.
    fn keep_alive_if_due(&mut self) -> Result<bool> {
        Ok(false)
    }

    /// GetFile for several `(directory, id)` pairs, each stream read whole (at
    /// most `limit` bytes) and handed to `each` with its index, in order. An
    /// error reply for one file goes to `each` and the others carry on; an
    /// error that leaves the connection unusable is returned.
    ///
    /// A connection sends the commands ahead of the replies (pipelined, a
    /// bounded number in flight), so N small files cost about one round trip,
    /// not N. This default runs them one after another.
    fn get_files(
        &mut self,
        files: &[(i64, i64)],
        limit: u64,
        each: &mut dyn FnMut(usize, Result<Vec<u8>>),
    ) -> Result<()> {
        for (i, &(dir, id)) in files.iter().enumerate() {
            let mut v = Vec::new();
            match self.get_file(dir, id, &mut v) {
                Ok(n) if n > limit => each(
                    i,
                    Err(crate::Error::StreamTooLarge {
                        op: "GetFile",
                        size: n,
                        limit,
                    }),
                ),
                Ok(_) => each(i, Ok(v)),
                Err(e) if e.is_connection_lost() => return Err(e),
                Err(e) => each(i, Err(e)),
            }
        }
        Ok(())
    }

    /// ListDirectory (every entry, with the directory's own attributes) for
    /// several directories; pipelined like [`StoreRead::get_files`].
    fn list_directories(
        &mut self,
        ids: &[i64],
        each: &mut dyn FnMut(usize, Result<Directory>),
    ) -> Result<()> {
        use bb_proto::message::flags;
        for (i, &id) in ids.iter().enumerate() {
            match self.list_directory(id, flags::INCLUDE_EVERYTHING, flags::EXCLUDE_NOTHING, true) {
                Ok(d) => each(i, Ok(d)),
                Err(e) if e.is_connection_lost() => return Err(e),
                Err(e) => each(i, Err(e)),
            }
        }
        Ok(())
    }
}

/// Write access (a read/write login), on top of [`StoreRead`].
pub trait StoreWrite: StoreRead {
    /// SetClientStoreMarker.
    fn set_client_store_marker(&mut self, marker: i64) -> Result<()>;

    /// CreateDirectory: a new directory `name` in `parent` with the encrypted
    /// attribute blob `attributes`; returns its ID.
    fn create_directory(
        &mut self,
        parent: i64,
        name: &EncodedName,
        attributes_mod_time: BoxTime,
        attributes: &[u8],
    ) -> Result<i64>;

    /// CreateDirectory2 (0.12+): also sets the entry's modification time.
    fn create_directory2(
        &mut self,
        parent: i64,
        name: &EncodedName,
        attributes_mod_time: BoxTime,
        modification_time: BoxTime,
        attributes: &[u8],
    ) -> Result<i64>;

    /// ChangeDirAttributes (an empty blob clears them).
    fn change_dir_attributes(
        &mut self,
        id: i64,
        attributes_mod_time: BoxTime,
        attributes: &[u8],
    ) -> Result<()>;

    /// StoreFile: uploads the encoded file (file order) read from `data`, or a
    /// patch against `diff_from` (0: none); returns the new object's ID. The
    /// upload streams; an error the server answers before the end (our
    /// bbstored's early StorageLimitExceeded) stops it at once.
    fn store_file(
        &mut self,
        directory: i64,
        name: &EncodedName,
        modification_time: BoxTime,
        attributes_hash: u64,
        diff_from: i64,
        data: &mut dyn Read,
    ) -> Result<i64>;

    /// SetReplacementFileAttributes: returns the ID of the entry changed.
    fn set_replacement_file_attributes(
        &mut self,
        directory: i64,
        name: &EncodedName,
        attributes_hash: u64,
        attributes: &[u8],
    ) -> Result<i64>;

    /// DeleteFile: every version of `name`; returns the current version's ID,
    /// or 0 when nothing was there.
    fn delete_file(&mut self, directory: i64, name: &EncodedName) -> Result<i64>;

    /// UndeleteFile: returns the ID, or 0 if the entry was an old version or not
    /// a deleted file.
    fn undelete_file(&mut self, directory: i64, id: i64) -> Result<i64>;

    /// DeleteDirectory (recursively).
    fn delete_directory(&mut self, id: i64) -> Result<()>;

    /// UndeleteDirectory (recursively).
    fn undelete_directory(&mut self, id: i64) -> Result<()>;

    /// MoveObject: rename `id` into `to` (which may be `from`) as `new_name`;
    /// `flags` are `MoveObject::FLAGS_*` (bbackupd sends both).
    fn move_object(
        &mut self,
        id: i64,
        from: i64,
        to: i64,
        new_name: &EncodedName,
        flags: i32,
    ) -> Result<()>;
}
