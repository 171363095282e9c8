//! ExtendedLogging: every protocol command of a sync run and its outcome, as
//! one log line each (target [`PROTOCOL_TARGET`], DEBUG = 0.13's INFO level).
//!
//! A wrapper around any [`StoreWrite`], so that bb-remote needs no hook and
//! the engine does not know it is being watched. Names, attributes and file
//! contents are encrypted on the wire; the lines show IDs, sizes and flags only.

use std::io::{Read, Write};

use bb_format::directory::Directory;
use bb_format::index::BlockIndex;
use bb_format::{BoxTime, EncodedName};
use bb_remote::store::{AccountUsage2, ObjectNames};
use bb_remote::{Result, StoreRead, StoreWrite};
use tracing::debug;

use super::logging::PROTOCOL_TARGET;

/// See the module header.
pub struct Logged<'a> {
    pub inner: &'a mut dyn StoreWrite,
}

impl std::fmt::Debug for Logged<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Logged")
    }
}

fn outcome<T: std::fmt::Debug, E: std::fmt::Display>(cmd: &str, r: &std::result::Result<T, E>) {
    match r {
        Ok(v) => debug!(target: PROTOCOL_TARGET, "{cmd} -> {v:?}"),
        Err(e) => debug!(target: PROTOCOL_TARGET, "{cmd} -> error: {e}"),
    }
}

/// Logs `$cmd` (a format string with its arguments) and the result of `$call`.
macro_rules! logged {
    ($call:expr, $($cmd:tt)*) => {{
        let cmd = format!($($cmd)*);
        let r = $call;
        outcome(&cmd, &r);
        r
    }};
}

impl StoreRead for Logged<'_> {
    fn list_directory(
        &mut self,
        id: i64,
        must_be_set: i16,
        not_to_be_set: i16,
        send_attributes: bool,
    ) -> Result<Directory> {
        let r = self
            .inner
            .list_directory(id, must_be_set, not_to_be_set, send_attributes);
        match &r {
            Ok(d) => debug!(target: PROTOCOL_TARGET,
                "ListDirectory({id:#x}, must {must_be_set:#x}, not {not_to_be_set:#x}, attributes {send_attributes}) -> {} entries",
                d.entries.len()),
            Err(e) => debug!(target: PROTOCOL_TARGET, "ListDirectory({id:#x}) -> error: {e}"),
        }
        r
    }
    fn get_object_name(&mut self, object_id: i64, dir: i64) -> Result<Option<ObjectNames>> {
        let r = self.inner.get_object_name(object_id, dir);
        let levels = r.as_ref().map(|o| o.as_ref().map(|n| n.names.len()));
        outcome(&format!("GetObjectName({object_id:#x}, {dir:#x})"), &levels);
        r
    }
    fn get_object(&mut self, id: i64, out: &mut dyn Write) -> Result<u64> {
        logged!(self.inner.get_object(id, out), "GetObject({id:#x})")
    }
    fn get_file(&mut self, directory: i64, id: i64, out: &mut dyn Write) -> Result<u64> {
        logged!(
            self.inner.get_file(directory, id, out),
            "GetFile({directory:#x}, {id:#x})"
        )
    }
    fn open_file(&mut self, directory: i64, id: i64) -> Result<Box<dyn Read + '_>> {
        let r = self.inner.open_file(directory, id);
        match &r {
            Ok(_) => {
                debug!(target: PROTOCOL_TARGET, "GetFile({directory:#x}, {id:#x}) -> streaming")
            }
            Err(e) => {
                debug!(target: PROTOCOL_TARGET, "GetFile({directory:#x}, {id:#x}) -> error: {e}")
            }
        }
        r
    }
    fn get_block_index_by_id(&mut self, id: i64) -> Result<BlockIndex> {
        let r = self.inner.get_block_index_by_id(id);
        outcome(
            &format!("GetBlockIndexByID({id:#x})"),
            &r.as_ref().map(|_| ()),
        );
        r
    }
    fn get_block_index_by_name(
        &mut self,
        directory: i64,
        name: &EncodedName,
    ) -> Result<Option<(i64, BlockIndex)>> {
        let r = self.inner.get_block_index_by_name(directory, name);
        let id = r.as_ref().map(|o| o.as_ref().map(|(id, _)| *id));
        outcome(&format!("GetBlockIndexByName({directory:#x})"), &id);
        r
    }
    fn usage(&mut self) -> Result<AccountUsage2> {
        logged!(self.inner.usage(), "GetAccountUsage2")
    }
    fn client_store_marker(&mut self) -> Result<i64> {
        self.inner.client_store_marker()
    }
    fn keep_alive_if_due(&mut self) -> Result<bool> {
        let r = self.inner.keep_alive_if_due();
        if matches!(r, Ok(true)) {
            debug!(target: PROTOCOL_TARGET, "GetIsAlive");
        }
        r
    }
}

impl StoreWrite for Logged<'_> {
    fn set_client_store_marker(&mut self, marker: i64) -> Result<()> {
        logged!(
            self.inner.set_client_store_marker(marker),
            "SetClientStoreMarker({marker:#x})"
        )
    }
    fn create_directory(
        &mut self,
        parent: i64,
        name: &EncodedName,
        attributes_mod_time: BoxTime,
        attributes: &[u8],
    ) -> Result<i64> {
        logged!(
            self.inner
                .create_directory(parent, name, attributes_mod_time, attributes),
            "CreateDirectory(in {parent:#x})"
        )
    }
    fn create_directory2(
        &mut self,
        parent: i64,
        name: &EncodedName,
        attributes_mod_time: BoxTime,
        modification_time: BoxTime,
        attributes: &[u8],
    ) -> Result<i64> {
        logged!(
            self.inner.create_directory2(
                parent,
                name,
                attributes_mod_time,
                modification_time,
                attributes
            ),
            "CreateDirectory2(in {parent:#x})"
        )
    }
    fn change_dir_attributes(
        &mut self,
        id: i64,
        attributes_mod_time: BoxTime,
        attributes: &[u8],
    ) -> Result<()> {
        logged!(
            self.inner
                .change_dir_attributes(id, attributes_mod_time, attributes),
            "ChangeDirAttributes({id:#x})"
        )
    }
    fn store_file(
        &mut self,
        directory: i64,
        name: &EncodedName,
        modification_time: BoxTime,
        attributes_hash: u64,
        diff_from: i64,
        data: &mut dyn Read,
    ) -> Result<i64> {
        logged!(
            self.inner.store_file(
                directory,
                name,
                modification_time,
                attributes_hash,
                diff_from,
                data
            ),
            "StoreFile(in {directory:#x}, diff from {diff_from:#x})"
        )
    }
    fn set_replacement_file_attributes(
        &mut self,
        directory: i64,
        name: &EncodedName,
        attributes_hash: u64,
        attributes: &[u8],
    ) -> Result<i64> {
        logged!(
            self.inner.set_replacement_file_attributes(
                directory,
                name,
                attributes_hash,
                attributes
            ),
            "SetReplacementFileAttributes(in {directory:#x})"
        )
    }
    fn delete_file(&mut self, directory: i64, name: &EncodedName) -> Result<i64> {
        logged!(
            self.inner.delete_file(directory, name),
            "DeleteFile(in {directory:#x})"
        )
    }
    fn undelete_file(&mut self, directory: i64, id: i64) -> Result<i64> {
        logged!(
            self.inner.undelete_file(directory, id),
            "UndeleteFile({directory:#x}, {id:#x})"
        )
    }
    fn delete_directory(&mut self, id: i64) -> Result<()> {
        logged!(self.inner.delete_directory(id), "DeleteDirectory({id:#x})")
    }
    fn undelete_directory(&mut self, id: i64) -> Result<()> {
        logged!(
            self.inner.undelete_directory(id),
            "UndeleteDirectory({id:#x})"
        )
    }
    fn move_object(
        &mut self,
        id: i64,
        from: i64,
        to: i64,
        new_name: &EncodedName,
        flags: i32,
    ) -> Result<()> {
        logged!(
            self.inner.move_object(id, from, to, new_name, flags),
            "MoveObject({id:#x}, {from:#x} -> {to:#x}, flags {flags:#x})"
        )
    }
}
