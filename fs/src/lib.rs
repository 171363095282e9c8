//! bb-fs: bbackupfs, a read-only FUSE filesystem over a Box Backup store.
//!
//! Will own: the inode table, the `current/`, `deleted/` and `versions/` views, the
//! caches (directories, block indexes, decoded blocks, on-disc metadata) and the one
//! errno map.
//!
//! Must not know: the store's disc layout; it reads through bb-remote's `StoreRead`.
