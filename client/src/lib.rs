//! bb-client: bbackupd, bbackupquery, bbackupctl and bbackupd-config.
//!
//! Owns: scanning locations, uploads and diffs, delete lists, the inode map,
//! restore, compare and the bbackupquery shell; the local side of attributes
//! ([`localfs`]).
//!
//! Must not know: the store's disc layout (bb-store, bb-raid); it talks to a store only
//! through bb-remote's `StoreRead` / `StoreWrite`.

pub mod bbackupd_config;
pub mod compare;
pub mod config;
pub mod ctl;
pub mod daemon;
// Long one-line entries (an option, a key) keep additions to one line.
#[rustfmt::skip]
pub mod doc;
pub mod error;
pub mod exclude;
pub mod localfs;
pub mod query;
pub mod restore;
pub mod sync;
#[cfg(test)]
mod testutil;
pub mod upload;

pub use error::{Error, Result};
