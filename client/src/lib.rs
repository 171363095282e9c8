//! bb-client: bbackupd, bbackupquery, bbackupctl and bbackupd-config.
//!
//! Will own: scanning locations, uploads and diffs, delete lists, the inode map,
//! restore, compare and the bbackupquery shell.
//!
//! Must not know: the store's disc layout (bb-store, bb-raid); it talks to a store only
//! through bb-remote.
