//! A [`Connection`] that comes back: after an operation fails in a way that
//! loses the connection, the next operation connects and logs in again first.
//! Nothing is retried behind the caller's back: the failed operation returns
//! its error, and calling again (or [`Session::reconnect`]) is the caller's
//! decision. A new login may bring a different client store marker
//! ([`Session::login`]); checking it (§4.3) is the caller's business too.
//!
//! Must not know: what the caller does with the store.

use std::io::{Read, Write};

use bb_format::directory::Directory;
use bb_format::index::BlockIndex;
use bb_format::{BoxTime, EncodedName};
use bb_proto::message::{AccountUsage2, LoginConfirmed};

use crate::connection::{Config, Connection};
use crate::error::{Error, Result};
use crate::store::{ObjectNames, StoreRead, StoreWrite};

/// See the module header.
#[derive(Debug)]
pub struct Session {
    config: Config,
    conn: Option<Connection>,
    login: LoginConfirmed,
    connects: u64,
}

impl Session {
    /// Connects and logs in now.
    pub fn open(config: Config) -> Result<Session> {
        let conn = Connection::open(&config)?;
        Ok(Session {
            login: conn.login().clone(),
            config,
            conn: Some(conn),
            connects: 1,
        })
    }

    /// What the latest LoginConfirmed said.
    pub fn login(&self) -> &LoginConfirmed {
        &self.login
    }

    /// How many times this session has logged in (1 + reconnects).
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Whether the current connection is usable (without asking the server).
    pub fn is_connected(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| !c.is_broken())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Drops the current connection (politely, if it still works) and logs in
    /// again.
    pub fn reconnect(&mut self) -> Result<&LoginConfirmed> {
        self.conn = None;
        let conn = Connection::open(&self.config)?;
        self.connects += 1;
        self.login = conn.login().clone();
        self.conn = Some(conn);
        Ok(&self.login)
    }

    /// The connection, made anew if the last one was lost.
    pub fn connection(&mut self) -> Result<&mut Connection> {
        if !self.is_connected() {
            self.reconnect()?;
        }
        self.conn
            .as_mut()
            .ok_or(Error::NotConnected { op: "connect" })
    }

    /// Ends the session with Finished (if still connected).
    pub fn finish(mut self) -> Result<()> {
        match self.conn.take() {
            Some(c) if !c.is_broken() => c.finish(),
            _ => Ok(()),
        }
    }
}

impl StoreRead for Session {
    fn list_directory(
        &mut self,
        id: i64,
        must_be_set: i16,
        not_to_be_set: i16,
        send_attributes: bool,
    ) -> Result<Directory> {
        self.connection()?
            .list_directory(id, must_be_set, not_to_be_set, send_attributes)
    }
    fn get_object_name(&mut self, object_id: i64, dir: i64) -> Result<Option<ObjectNames>> {
        self.connection()?.get_object_name(object_id, dir)
    }
    fn get_object(&mut self, id: i64, out: &mut dyn Write) -> Result<u64> {
        self.connection()?.get_object(id, out)
    }
    fn get_file(&mut self, directory: i64, id: i64, out: &mut dyn Write) -> Result<u64> {
        self.connection()?.get_file(directory, id, out)
    }
    fn open_file(&mut self, directory: i64, id: i64) -> Result<Box<dyn Read + '_>> {
        self.connection()?.open_file(directory, id)
    }
    fn get_block_index_by_id(&mut self, id: i64) -> Result<BlockIndex> {
        self.connection()?.get_block_index_by_id(id)
    }
    fn get_block_index_by_name(
        &mut self,
        directory: i64,
        name: &EncodedName,
    ) -> Result<Option<(i64, BlockIndex)>> {
        self.connection()?.get_block_index_by_name(directory, name)
    }
    fn get_files(
        &mut self,
        files: &[(i64, i64)],
        limit: u64,
        each: &mut dyn FnMut(usize, Result<Vec<u8>>),
    ) -> Result<()> {
        self.connection()?.get_files(files, limit, each)
    }
    fn list_directories(
        &mut self,
        ids: &[i64],
        each: &mut dyn FnMut(usize, Result<Directory>),
    ) -> Result<()> {
        self.connection()?.list_directories(ids, each)
    }
    fn usage(&mut self) -> Result<AccountUsage2> {
        self.connection()?.usage()
    }
    fn client_store_marker(&mut self) -> Result<i64> {
        self.connection()?.client_store_marker()
    }
    /// Only on a live connection: a lost one needs no keep-alive.
    fn keep_alive_if_due(&mut self) -> Result<bool> {
        match &mut self.conn {
            Some(c) if !c.is_broken() => c.keep_alive_if_due(),
            _ => Ok(false),
        }
    }
}

impl StoreWrite for Session {
    fn set_client_store_marker(&mut self, marker: i64) -> Result<()> {
        self.connection()?.set_client_store_marker(marker)?;
        self.login.client_store_marker = marker;
        Ok(())
    }
    fn create_directory(
        &mut self,
        parent: i64,
        name: &EncodedName,
        attributes_mod_time: BoxTime,
        attributes: &[u8],
    ) -> Result<i64> {
        self.connection()?
            .create_directory(parent, name, attributes_mod_time, attributes)
    }
    fn create_directory2(
        &mut self,
        parent: i64,
        name: &EncodedName,
        attributes_mod_time: BoxTime,
        modification_time: BoxTime,
        attributes: &[u8],
    ) -> Result<i64> {
        self.connection()?.create_directory2(
            parent,
            name,
            attributes_mod_time,
            modification_time,
            attributes,
        )
    }
    fn change_dir_attributes(
        &mut self,
        id: i64,
        attributes_mod_time: BoxTime,
        attributes: &[u8],
    ) -> Result<()> {
        self.connection()?
            .change_dir_attributes(id, attributes_mod_time, attributes)
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
        self.connection()?.store_file(
            directory,
            name,
            modification_time,
            attributes_hash,
            diff_from,
            data,
        )
    }
    fn set_replacement_file_attributes(
        &mut self,
        directory: i64,
        name: &EncodedName,
        attributes_hash: u64,
        attributes: &[u8],
    ) -> Result<i64> {
        self.connection()?.set_replacement_file_attributes(
            directory,
            name,
            attributes_hash,
            attributes,
        )
    }
    fn delete_file(&mut self, directory: i64, name: &EncodedName) -> Result<i64> {
        self.connection()?.delete_file(directory, name)
    }
    fn undelete_file(&mut self, directory: i64, id: i64) -> Result<i64> {
        self.connection()?.undelete_file(directory, id)
    }
    fn delete_directory(&mut self, id: i64) -> Result<()> {
        self.connection()?.delete_directory(id)
    }
    fn undelete_directory(&mut self, id: i64) -> Result<()> {
        self.connection()?.undelete_directory(id)
    }
    fn move_object(
        &mut self,
        id: i64,
        from: i64,
        to: i64,
        new_name: &EncodedName,
        flags: i32,
    ) -> Result<()> {
        self.connection()?
            .move_object(id, from, to, new_name, flags)
    }
}
