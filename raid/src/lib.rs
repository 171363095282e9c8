//! bb-raid: RaidFile, Box Backup's userland RAID over three directories.
//!
//! A *RaidFile* is a named byte stream (`backup/01234567/o0a`) stored on a *disc set*:
//! either one directory, where it is a plain file `<name>.rfw`, or three directories
//! ("discs"), where it ends up as two stripes and a parity file, `<name>.rf` on each
//! disc, laid out byte-for-byte as Box Backup 0.13 lays them out (store.md §6), so
//! 0.13 opens what we write and we open what it wrote. This crate knows nothing of
//! accounts, objects or backups.
//!
//! # The life of a file: write -> commit -> transform
//!
//! 1. **Write** (`RaidWrite::create`): the bytes go to `Dir[s]/<name>.rfwX`, where `s`
//!    is the start disc derived from the name. The writer holds an exclusive `flock` on
//!    that file for its whole life (the *name lock*; Linux has no `O_EXLOCK`), so two
//!    writers of one name, in one process or two, never interleave. Writes are
//!    gathered into whole multiples of the disc's `st_blksize`.
//! 2. **Commit**: fsync the file, rename `.rfwX` -> `.rfw`, fsync the directory. The
//!    rename is the commit point: before it, readers see the old version (or nothing);
//!    after it, the new one.
//! 3. **Transform** (RAID sets only, normally straight after commit): read the `.rfw`,
//!    write `<name>.rfP` on the three discs (stripe 1 = even blocks, stripe 2 = odd
//!    blocks, parity = their XOR plus the file size, `layout`), fsync them, rename each
//!    to `.rf`, fsync the three directories, and only then unlink the `.rfw`.
//!
//! # Invariants
//!
//! * **Rule 1: nothing is renamed into a visible name before its bytes are durable.**
//!   The `.rfwX` is synced before it becomes `.rfw`; the `.rfP` files are synced before
//!   they become `.rf`.
//! * **Rule 2: the `.rfw` is the last thing to go.** It is unlinked only after all three
//!   components are durable in place, and only if it is still the file that was read.
//!   `commit(true)` overlaps the write file's fsync with producing and syncing the
//!   components (from the same bytes, still under the writer's lock), and the new
//!   components are renamed into place only after the write file is committed, so the
//!   visible steps keep this order.
//! * **Readers prefer `.rfw`.** Components only ever appear from a committed `.rfw`'s
//!   bytes (or are rebuilt from their two siblings), and a
//!   `.rfw` is removed only after its components are complete, so whenever a `.rfw`
//!   exists it is at least as new as any components beside it, and the components may
//!   be stale, half-renamed or half-written. Preferring it is what makes every crash
//!   point below safe.
//!
//! # What a crash leaves
//!
//! | crash during | on disc | readers see |
//! |---|---|---|
//! | write | a partial `.rfwX` | the previous version (`.rfwX` is never read); the checker removes the orphan once its lock is free |
//! | commit, before the rename | a complete `.rfwX` | the previous version |
//! | commit, after the rename | `.rfw` | the new version |
//! | transform | `.rfw`, some `.rfP`, maybe some new `.rf` mixed with old ones | the new version, from the `.rfw`; raidify redoes the transform |
//! | transform, after the `.rfw` unlink | three new `.rf` | the new version |
//!
//! So a crash never leaves a committed file unreadable and never exposes a half-written
//! one. `FaultFs` (the seam under all I/O, `fs`) lets tests crash at every step and
//! check exactly this.
//!
//! # Degraded reads and recovery
//!
//! `RaidRead` reads a RAID file with any one component missing, truncated or
//! unreadable (recovering the lost stripe from the other and the parity), says that
//! it did (`RaidRead::degraded`), and queues the name on the disc set's `RepairQueue`.
//! `recover::rebuild` regenerates the lost component byte-identical; `recover::Checker`
//! repairs queued names first and otherwise walks the whole set at a set byte rate,
//! checking parity and transforming write files left behind by a crash ("raidify").
//!
//! # Locks
//!
//! Name lock (`flock` on `.rfwX`): writers, delete, rebuild, raidify. Write-file lock
//! (`flock` on `.rfw`): the transform of that `.rfw`, and a committing writer before it
//! renames over an older `.rfw`. Always name lock first (see `lock`).
//!
//! Everything goes through a `DiscSet` value: no global controller, so one process can
//! hold several stores, or a store and a fault-injected view of the same directories.

mod buffer;
pub mod config;
pub mod discset;
pub mod error;
pub mod fault;
pub mod fs;
pub mod layout;
pub mod lock;
pub mod ops;
pub mod read;
pub mod recover;
pub mod write;

pub use discset::{Buffering, Component, DiscSet};
pub use error::{Error, Result};
pub use ops::{Existence, ListKind, Listing};
pub use read::{Damage, Degraded, RaidRead, Representation};
pub use recover::{Checked, Checker, CheckerConfig, Rebuilt, RepairQueue, check_file, rebuild};
pub use write::{Committed, Overwrite, RaidWrite, Transformed, transform};
