//! bb-store: the server side of a Box Backup store.
//!
//! Will own: accounts.txt, store info, refcounts, object id -> RaidFile path, directory
//! operations, housekeeping, check/fix, and a transport-free session that answers
//! protocol commands; the binaries bbstored, bbstoreaccounts and raidfile-config.
//!
//! Must not know: the client's keys. The store sees only encrypted objects.

pub mod server;
