//! bb-fs: bbackupfs, a read-only FUSE filesystem over a Box Backup store,
//! decrypted on the client with the account's keys.
//!
//! - [`view`]: the `current/`, `deleted/` and `versions/` trees and their
//!   stable inode numbers (pure).
//! - [`core`]: [`core::BoxFs`], the model: inodes, listings, file metadata and
//!   contents, batched fetches and the caches.
//! - [`stream`]: large files read through one decoded stream with readahead.
//! - [`pool`]: the pooled store connections; [`diskcache`]: metadata on disc;
//!   [`lru`]: the byte-bounded LRU the memory caches use.
//! - [`fuse`]: fuser's requests to the model, and the errno map.
//! - [`mount`]: the `bbackupfs` command line and mount lifecycle.
//!
//! Must not know: the store's disc layout; it reads through bb-remote's
//! `StoreRead` (a `Session` to bbstored, or a fake in tests).

pub mod core;
pub mod diskcache;
// Long one-line entries (an option) keep additions to one line.
#[rustfmt::skip]
pub mod doc;
pub mod error;
pub mod fuse;
pub mod lru;
pub mod mount;
pub mod pool;
pub mod stream;
pub mod view;

pub use error::{Error, Result};
