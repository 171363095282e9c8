//! bb-store: the server side of a Box Backup store.
//!
//! Owns: accounts.txt, store info, refcounts, object id -> RaidFile path, directory
//! operations, (later) housekeeping, check/fix and a transport-free session; the
//! binaries bbstored, bbstoreaccounts, bbstored-config and raidfile-config.
//!
//! Must not know: the client's keys. The store sees only encrypted objects.
//!
//! # The core API (for the session, housekeeping, check and bbstoreaccounts)
//!
//! * [`accounts::AccountDatabase`]: accounts.txt — `load`/`load_or_empty`, `get`
//!   (account -> disc set), `add`, `remove`, `save` (sorted, atomic),
//!   `reload_if_changed`.
//! * [`objects::ObjectStore`]: one account's storage, object-safe. Objects by ID
//!   (`create_object(id, replace)` -> a streaming [`objects::ObjectWrite`] with
//!   `write`/`len`/`read_back_at`/`commit`/`discard`, discarded on drop;
//!   `open_object` -> [`objects::ObjectRead`] with `size`/`read_at`/`Read`;
//!   `object_exists`; `delete_object`), temporary files (`create_temp(purpose)`
//!   -> [`objects::TempObject`], `Write` + bb-format's `ReadAt`, unlinked at
//!   once: `.difftemp`, `.recombinetemp.<n>`; [`objects::ObjectSource`] wraps an
//!   `ObjectRead` as a `ReadAt`), usage in blocks, the named files
//!   ([`objects::NamedFile`]: `info`, `refcount.rdb` patched in place,
//!   `refcount.rdbX` committed by `replace_named`), `walk` over everything on disc
//!   ([`objects::WalkItem`]), and `lock_for_writing` (the account's `write.lock`,
//!   released when the guard drops). [`objects::RaidObjects`] implements it on a
//!   `bb_raid::DiscSet`; `object_path`/`parse_object_path` are store.md §3.2.
//! * [`account::Account`]: an open account (`open(store, Mode)`; read-write holds
//!   the lock and loads the refcounts). `info`/`info_mut`/`save_info`/
//!   `save_info_delayed`, `refcount`/`set_refcount`/`replace_refcounts`,
//!   `allocate_object_id`, `object_may_exist` (the +192 rule), `object_kind`,
//!   `read_object`, `read_directory` (DoesNotExist / NotADirectory / Corrupt),
//!   `save_directory` (rewrites with the §7.3 bookkeeping: usage delta into blocks
//!   used and in directories, size in the parent entry, upwards),
//!   `write_directory_uncommitted`, `close` (saves the info; dropping also saves).
//! * Account creation and deletion: [`account::create_account`] /
//!   [`account::delete_account`] (accounts.txt + storage),
//!   [`account::create_account_storage`] (storage only), [`account::parse_limit`].
//! * [`verify::verify_file`]: the structural check of formats.md §2.8 over
//!   positional reads (uploads are checked on disc before commit).
//! * [`ops`]: every protocol command's store side as `Account` methods
//!   (`store_file`, `get_file`, `list_directory`, `move_object`, ...), streams in
//!   as `Read`, out as [`ops::ObjectStream`]; on error an incoming stream may be
//!   left partly unread for the session to drain.
//! * [`memory::MemObjects`]: the in-memory fake `ObjectStore` for tests.
//! * [`error::Error`] with [`error::Error::kind`] -> [`error::StoreErrorKind`], Box
//!   Backup's protocol error sub-codes (`sub_code()`), `None` for internal failures.

pub mod account;
pub mod accounts;
pub mod accounts_tool;
pub mod check;
pub mod config_tool;
// Long one-line entries (an option, a key) keep additions to one line.
#[rustfmt::skip]
pub mod doc;
pub mod error;
pub mod housekeep;
pub mod memory;
pub mod objects;
pub mod ops;
pub mod report;
pub mod server;
pub mod session;
pub mod totals;
pub mod user;
pub mod verify;

pub use account::{Account, Mode, ROOT_DIRECTORY_ID};
pub use accounts::AccountDatabase;
pub use error::{Error, Result, StoreErrorKind};
pub use objects::{NamedFile, ObjectRead, ObjectStore, ObjectWrite, RaidObjects};

/// An object ID: signed 64-bit as on the wire and in directories; valid IDs are > 0.
pub type ObjectId = i64;
