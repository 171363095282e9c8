//! The transport-free session: `Session::handle(command, stream) -> Response`.
//!
//! Owns the protocol phases (protocol.md §4.1), login (certificate account,
//! accounts.txt, the write lock with 0.13's retry and the request to
//! housekeeping to let go), read-only sessions, and the mapping of every
//! command onto the account operations of [`crate::ops`] and of store errors
//! onto Box Backup's error replies.
//!
//! Must not know sockets or TLS: the command's stream arrives as an
//! [`IncomingStream`], the reply's stream leaves as a [`ReplyBody`]. The caller
//! drains whatever the handler left of a command stream.
//!
//! Unlike 0.13, a command that fails inside the store gets an error reply and
//! the session goes on (§4.7 rule 2): store errors with a protocol meaning get
//! their sub-code; a corrupt object gets FileDoesNotVerify; only a failure of
//! the storage itself (I/O) gets the fatal error and a close.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bb_proto::message::{
    AccountUsage, AccountUsage2, Finished, IsAlive, LoginConfirmed, ObjectName, Success, Version,
};
use bb_proto::{Command, ErrorCode, ErrorReply, Phase, Reply};
use bb_raid::config::RaidConfig;
use tracing::{debug, info, warn};

use crate::account::{Account, Mode};
use crate::accounts::AccountDatabase;
use crate::error::{Error, StoreErrorKind};
use crate::objects::RaidObjects;
use crate::ops::MoveFlags;

/// A command's incoming stream.
pub trait IncomingStream: Read {
    /// The size the sender announced, for a sized stream (after reading its header).
    fn declared_len(&mut self) -> io::Result<Option<u64>>;
}

/// What follows a reply.
pub enum ReplyBody {
    None,
    Bytes(Vec<u8>),
    /// `len` bytes to be read from `reader`.
    Reader {
        len: u64,
        reader: Box<dyn Read + Send>,
    },
}

impl std::fmt::Debug for ReplyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyBody::None => write!(f, "None"),
            ReplyBody::Bytes(b) => write!(f, "Bytes({})", b.len()),
            ReplyBody::Reader { len, .. } => write!(f, "Reader({len})"),
        }
    }
}

/// A session's answer to one command.
#[derive(Debug)]
pub struct Response {
    pub reply: Reply,
    pub body: ReplyBody,
    /// Close the connection after sending (Finished, the fatal error).
    pub close: bool,
}

impl Response {
    pub fn reply(reply: impl Into<Reply>) -> Response {
        Response {
            reply: reply.into(),
            body: ReplyBody::None,
            close: false,
        }
    }

    pub fn error(code: ErrorCode) -> Response {
        Response::reply(Reply::from(code))
    }

    pub fn fatal() -> Response {
        Response {
            reply: Reply::Error(ErrorReply::FATAL),
            body: ReplyBody::None,
            close: true,
        }
    }

    fn with_body(reply: impl Into<Reply>, body: ReplyBody) -> Response {
        Response {
            reply: reply.into(),
            body,
            close: false,
        }
    }
}

/// Requests to housekeeping to let go of an account (0.13's `r<account>`
/// message over a socketpair; here a flag that housekeeping polls).
#[derive(Debug, Default)]
pub struct HousekeepingRequests {
    flags: Mutex<HashMap<u32, Arc<AtomicBool>>>,
}

impl HousekeepingRequests {
    /// The flag housekeeping of `account` polls; cleared when handed out.
    pub fn flag(&self, account: u32) -> Arc<AtomicBool> {
        let mut m = self.flags.lock().unwrap_or_else(|p| p.into_inner());
        let f = m.entry(account).or_default().clone();
        f.store(false, Ordering::SeqCst);
        f
    }

    /// Asks every running housekeeping to stop (server shutdown).
    pub fn request_release_all(&self) {
        let m = self.flags.lock().unwrap_or_else(|p| p.into_inner());
        for f in m.values() {
            f.store(true, Ordering::SeqCst);
        }
    }

    /// Asks housekeeping of `account`, if running, to stop.
    pub fn request_release(&self, account: u32) {
        let m = self.flags.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = m.get(&account) {
            f.store(true, Ordering::SeqCst);
        }
    }
}

/// What sessions share: accounts, disc sets, housekeeping requests.
#[derive(Debug)]
pub struct StoreContext {
    pub accounts: Mutex<AccountDatabase>,
    pub raid: RwLock<Arc<RaidConfig>>,
    pub housekeeping: HousekeepingRequests,
    /// 0.13 retries a busy write lock 4 times, 1 s apart.
    pub lock_retries: u32,
    pub lock_retry_delay: Duration,
}

impl StoreContext {
    pub fn new(accounts: AccountDatabase, raid: RaidConfig) -> StoreContext {
        StoreContext {
            accounts: Mutex::new(accounts),
            raid: RwLock::new(Arc::new(raid)),
            housekeeping: HousekeepingRequests::default(),
            lock_retries: 4,
            lock_retry_delay: Duration::from_secs(1),
        }
    }

    /// Opens `account` (which must be in accounts.txt) in `mode`.
    pub fn open_account(&self, account: u32, mode: Mode) -> Result<Account, Error> {
        let set = {
            let mut db = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = db.reload_if_changed() {
                warn!("accounts database: {e}; using the copy in memory");
            }
            db.get(account).ok_or(Error::AccountNotFound { account })?
        };
        let raid = self.raid.read().unwrap_or_else(|p| p.into_inner()).clone();
        let discs = raid.set(set).map_err(|e| Error::Raid {
            op: "Login",
            name: format!("disc set {set}"),
            source: e,
        })?;
        Account::open(Box::new(RaidObjects::new(discs.clone(), account)), mode)
    }
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    ctx: Arc<StoreContext>,
    /// The account from the client certificate.
    cert_account: u32,
    phase: Phase,
    account: Option<Account>,
    /// Set after DisabledAccount: 0.13 keeps the account loaded, and a second
    /// Login is fatal there; we refuse it with BadLogin instead.
    disabled: bool,
}

impl Session {
    pub fn new(ctx: Arc<StoreContext>, cert_account: u32) -> Session {
        Session {
            ctx,
            cert_account,
            phase: Phase::Version,
            account: None,
            disabled: false,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Ends the session: saves the store info and releases the lock. Called on
    /// Finished and when the connection ends any other way (§4.7 point 4).
    pub fn finish(&mut self) {
        if let Some(a) = self.account.take()
            && let Err(e) = a.close()
        {
            warn!(
                account = self.cert_account,
                "saving the store info at session end: {e}"
            );
        }
    }

    /// The client pauses: write the directories buffered by write-back, so
    /// that other sessions (a bbackupquery beside a running bbackupd) see them.
    pub fn idle(&mut self) {
        if let Some(a) = self.account.as_mut()
            && let Err(e) = a.flush_directories()
        {
            warn!(
                account = self.cert_account,
                "writing changed directories: {e}"
            );
        }
    }

    /// Answers one command. `stream` is its stream for the commands that carry
    /// one; what is left unread of it is the caller's to drain.
    pub fn handle(
        &mut self,
        command: Command,
        stream: Option<&mut dyn IncomingStream>,
    ) -> Response {
        if !command.allowed_in(self.phase) {
            return Response::error(ErrorCode::NotInRightProtocolPhase);
        }
        match command {
            Command::Finished(_) => {
                self.finish();
                Response {
                    reply: Finished {}.into(),
                    body: ReplyBody::None,
                    close: true,
                }
            }
            Command::Version(v) => {
                if v.version != 1 {
                    return Response::error(ErrorCode::WrongVersion);
                }
                self.phase = Phase::Login;
                Response::reply(Version { version: 1 })
            }
            Command::Login(l) => self.login(l.client_id, l.read_only()),
            other => {
                let Some(account) = self.account.as_mut() else {
                    return Response::error(ErrorCode::NotInRightProtocolPhase);
                };
                if account.is_read_only() && other.is_write() {
                    return Response::error(ErrorCode::SessionReadOnly);
                }
                match run(account, other, stream) {
                    Ok(r) => r,
                    Err(e) => error_response(self.cert_account, &e),
                }
            }
        }
    }

    fn login(&mut self, client_id: i32, read_only: bool) -> Response {
        if self.disabled || client_id as u32 != self.cert_account {
            info!(
                account = self.cert_account,
                client_id, "login refused: client id does not match the certificate"
            );
            return Response::error(ErrorCode::BadLogin);
        }
        let mode = if read_only {
            Mode::ReadOnly
        } else {
            Mode::ReadWrite
        };
        let mut tries = 0;
        let account = loop {
            match self.ctx.open_account(self.cert_account, mode) {
                Ok(a) => break a,
                Err(Error::CannotLockStoreForWriting { .. }) if tries < self.ctx.lock_retries => {
                    tries += 1;
                    self.ctx.housekeeping.request_release(self.cert_account);
                    std::thread::sleep(self.ctx.lock_retry_delay);
                }
                Err(e) => {
                    info!(account = self.cert_account, "login refused: {e}");
                    return match e.kind() {
                        Some(StoreErrorKind::CannotLockStoreForWriting) => {
                            Response::error(ErrorCode::CannotLockStoreForWriting)
                        }
                        Some(StoreErrorKind::BadLogin) => Response::error(ErrorCode::BadLogin),
                        _ => Response::fatal(),
                    };
                }
            }
        };
        let mut account = account;
        if !read_only && let Err(e) = account.set_directory_write_back(true) {
            warn!(account = self.cert_account, "directory write-back: {e}");
        }
        if !account.info().account_enabled {
            info!(
                account = self.cert_account,
                "login refused: account disabled"
            );
            self.disabled = true;
            return Response::error(ErrorCode::DisabledAccount);
        }
        let i = account.info();
        let reply = LoginConfirmed {
            client_store_marker: i.client_store_marker,
            blocks_used: i.blocks_used,
            blocks_soft_limit: i.blocks_soft_limit,
            blocks_hard_limit: i.blocks_hard_limit,
        };
        info!(
            account = format_args!("{:#010x}", self.cert_account),
            mode = if read_only { "read-only" } else { "read/write" },
            "login"
        );
        self.account = Some(account);
        self.phase = Phase::Commands;
        Response::reply(reply)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.finish();
    }
}

fn error_response(account: u32, e: &Error) -> Response {
    let code = match e.kind() {
        Some(kind) => ErrorCode::from_sub_type(kind.sub_code()),
        None => match e {
            Error::Corrupt { .. } | Error::Format { .. } => Some(ErrorCode::FileDoesNotVerify),
            // A bad or truncated command stream: the caller closes the connection.
            Error::Stream { .. } => None,
            _ => None,
        },
    };
    match code {
        Some(code) => {
            debug!(account, "command refused: {e}");
            Response::error(code)
        }
        None => {
            warn!(account, "command failed: {e}");
            Response::fatal()
        }
    }
}

/// Attribute streams are small; 0.13 read them whole into memory (§6.4: cap them).
const MAX_ATTRIBUTES: u64 = 1 << 20;

fn read_attributes(
    stream: Option<&mut dyn IncomingStream>,
    op: &'static str,
) -> Result<Vec<u8>, Error> {
    let Some(s) = stream else {
        return Ok(Vec::new());
    };
    let mut v = Vec::new();
    s.take(MAX_ATTRIBUTES + 1)
        .read_to_end(&mut v)
        .map_err(|e| Error::Stream { op, source: e })?;
    if v.len() as u64 > MAX_ATTRIBUTES {
        return Err(Error::Stream {
            op,
            source: io::Error::new(io::ErrorKind::InvalidData, "attribute stream over 1 MiB"),
        });
    }
    Ok(v)
}

fn body(s: crate::ops::ObjectStream) -> ReplyBody {
    ReplyBody::Reader {
        len: s.len(),
        reader: Box::new(s),
    }
}

/// One command in the Commands phase.
fn run(
    a: &mut Account,
    command: Command,
    stream: Option<&mut dyn IncomingStream>,
) -> Result<Response, Error> {
    // These read directories from disc, or change several directories whose
    // order on disc matters after a crash: buffered directories go first, and
    // what they change is written at once (Account::flush_directories).
    let write_through = matches!(
        command,
        Command::GetObject(_)
            | Command::MoveObject(_)
            | Command::DeleteDirectory(_)
            | Command::UndeleteDirectory(_)
    );
    if write_through {
        a.flush_directories()?;
    }
    let response = run_command(a, command, stream)?;
    if write_through {
        a.flush_directories()?;
    }
    Ok(response)
}

fn run_command(
    a: &mut Account,
    command: Command,
    stream: Option<&mut dyn IncomingStream>,
) -> Result<Response, Error> {
    Ok(match command {
        Command::SetClientStoreMarker(c) => {
            a.set_client_store_marker(c.client_store_marker)?;
            Response::reply(Success {
                object_id: c.client_store_marker,
            })
        }
        Command::GetObject(c) => {
            let s = a.get_object(c.object_id)?;
            Response::with_body(
                Success {
                    object_id: c.object_id,
                },
                body(s),
            )
        }
        Command::MoveObject(c) => {
            a.move_object(
                c.object_id,
                c.move_from_directory,
                c.move_to_directory,
                MoveFlags::from_bits(c.flags),
                &c.new_filename,
            )?;
            Response::reply(Success {
                object_id: c.object_id,
            })
        }
        Command::GetObjectName(c) => {
            let n = a.get_object_name(c.object_id, c.containing_directory_id)?;
            let reply = ObjectName {
                num_name_elements: n.names.len() as i32,
                modification_time: n.modification_time,
                attributes_hash: n.attributes_hash,
                flags: n.flags as i16,
            };
            if n.names.is_empty() {
                Response::reply(reply)
            } else {
                let mut data = Vec::new();
                for name in &n.names {
                    data.extend_from_slice(name.as_bytes());
                }
                Response::with_body(reply, ReplyBody::Bytes(data))
            }
        }
        Command::CreateDirectory(c) => {
            let attrs = read_attributes(stream, "CreateDirectory")?;
            let id = a.create_directory(
                c.containing_directory_id,
                &c.directory_name,
                &attrs,
                c.attributes_mod_time,
                0,
            )?;
            Response::reply(Success { object_id: id })
        }
        Command::CreateDirectory2(c) => {
            let attrs = read_attributes(stream, "CreateDirectory2")?;
            let id = a.create_directory(
                c.containing_directory_id,
                &c.directory_name,
                &attrs,
                c.attributes_mod_time,
                c.modification_time,
            )?;
            Response::reply(Success { object_id: id })
        }
        Command::ListDirectory(c) => {
            let data = a.list_directory(
                c.object_id,
                c.flags_must_be_set,
                c.flags_not_to_be_set,
                c.send_attributes,
            )?;
            Response::with_body(
                Success {
                    object_id: c.object_id,
                },
                ReplyBody::Bytes(data),
            )
        }
        Command::ChangeDirAttributes(c) => {
            let attrs = read_attributes(stream, "ChangeDirAttributes")?;
            a.change_dir_attributes(c.object_id, &attrs, c.attributes_mod_time)?;
            Response::reply(Success {
                object_id: c.object_id,
            })
        }
        Command::DeleteDirectory(c) => {
            a.delete_directory(c.object_id)?;
            Response::reply(Success {
                object_id: c.object_id,
            })
        }
        Command::UndeleteDirectory(c) => {
            a.undelete_directory(c.object_id)?;
            Response::reply(Success {
                object_id: c.object_id,
            })
        }
        Command::StoreFile(c) => {
            let Some(s) = stream else {
                return Err(Error::Invalid {
                    op: "StoreFile",
                    detail: "no stream".into(),
                });
            };
            let declared = s.declared_len().map_err(|e| Error::Stream {
                op: "StoreFile",
                source: e,
            })?;
            let mut r = ReadAdapter(s);
            let id = a.store_file(
                c.directory_object_id,
                c.modification_time,
                c.attributes_hash,
                c.diff_from_file_id,
                &c.filename,
                &mut r,
                declared,
            )?;
            Response::reply(Success { object_id: id })
        }
        Command::GetFile(c) => {
            let s = a.get_file(c.in_directory, c.object_id)?;
            Response::with_body(
                Success {
                    object_id: c.object_id,
                },
                body(s),
            )
        }
        Command::SetReplacementFileAttributes(c) => {
            let attrs = read_attributes(stream, "SetReplacementFileAttributes")?;
            let id = a.set_replacement_file_attributes(
                c.in_directory,
                c.attributes_hash,
                &c.filename,
                &attrs,
            )?;
            Response::reply(Success { object_id: id })
        }
        Command::DeleteFile(c) => {
            let id = a.delete_file(c.in_directory, &c.filename)?;
            Response::reply(Success { object_id: id })
        }
        Command::GetBlockIndexById(c) => {
            let s = a.get_block_index_by_id(c.object_id)?;
            Response::with_body(
                Success {
                    object_id: c.object_id,
                },
                body(s),
            )
        }
        Command::GetBlockIndexByName(c) => {
            match a.get_block_index_by_name(c.in_directory, &c.filename)? {
                Some((id, s)) => Response::with_body(Success { object_id: id }, body(s)),
                None => Response::reply(Success { object_id: 0 }),
            }
        }
        Command::UndeleteFile(c) => {
            let id = a.undelete_file(c.in_directory, c.object_id)?;
            Response::reply(Success { object_id: id })
        }
        Command::GetAccountUsage(_) => {
            let u = a.account_usage();
            Response::reply(AccountUsage {
                blocks_used: u.blocks_used,
                blocks_in_old_files: u.blocks_in_old_files,
                blocks_in_deleted_files: u.blocks_in_deleted_files,
                blocks_in_directories: u.blocks_in_directories,
                blocks_soft_limit: u.blocks_soft_limit,
                blocks_hard_limit: u.blocks_hard_limit,
                block_size: u.block_size,
            })
        }
        Command::GetIsAlive(_) => Response::reply(IsAlive {}),
        Command::GetAccountUsage2(_) => {
            let u = a.account_usage2();
            let i = &u.info;
            Response::reply(AccountUsage2 {
                account_name: i.account_name.clone(),
                account_enabled: i.account_enabled,
                client_store_marker: i.client_store_marker,
                block_size: u.block_size,
                last_object_id_used: i.last_object_id_used,
                blocks_used: i.blocks_used,
                blocks_in_current_files: i.blocks_in_current_files,
                blocks_in_old_files: i.blocks_in_old_files,
                blocks_in_deleted_files: i.blocks_in_deleted_files,
                blocks_in_directories: i.blocks_in_directories,
                blocks_soft_limit: i.blocks_soft_limit,
                blocks_hard_limit: i.blocks_hard_limit,
                num_current_files: i.num_current_files,
                num_old_files: i.num_old_files,
                num_deleted_files: i.num_deleted_files,
                num_directories: i.num_directories,
            })
        }
        // Phase-checked before: these cannot reach here.
        Command::Version(_) | Command::Login(_) | Command::Finished(_) => {
            Response::error(ErrorCode::NotInRightProtocolPhase)
        }
    })
}

/// `&mut dyn IncomingStream` as `&mut dyn Read`.
struct ReadAdapter<'a>(&'a mut dyn IncomingStream);

impl Read for ReadAdapter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
