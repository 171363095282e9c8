//! bb-raid: RaidFile, Box Backup's userland RAID over three directories.
//!
//! Will own: raidfile.conf, the `DiscSet` value, write -> commit -> transform into two
//! stripes and a parity file (`../shared/spec/store.md` §6), degraded reads, recovery,
//! raidify, buffered I/O and Linux locking, behind a seam that tests can fail.
//!
//! Must not know: accounts, objects, backups. It stores named byte streams.
