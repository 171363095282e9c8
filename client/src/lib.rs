//! bb-client: bbackupd, bbackupquery, bbackupctl and bbackupd-config.
//!
//! Owns: scanning locations, uploads and diffs, delete lists, the inode map,
//! restore, compare and the bbackupquery shell; the local side of attributes
//! ([`localfs`]).
//!
//! Must not know: the store's disc layout (bb-store, bb-raid); it talks to a store only
//! through bb-remote's `StoreRead` / `StoreWrite`.

pub mod error;
pub mod localfs;
pub mod upload;

pub use error::{Error, Result};
