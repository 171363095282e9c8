//! STUBS of the compare and restore library functions (helper RESTORE writes
//! the real ones in `crate::compare` and `crate::restore`). The integrator
//! replaces this file with
//! `pub use crate::{compare, restore};`
//! The stubs fail with "not yet wired"; they never pretend to succeed.

use std::io;
use std::path::Path;

use crate::error::Error;

fn not_wired(op: &'static str, local: &Path) -> Error {
    Error::local(
        op,
        local,
        io::Error::new(io::ErrorKind::Unsupported, "not yet wired"),
    )
}

pub mod compare {
    use std::path::Path;

    use bb_format::{BoxTime, Keys};
    use bb_remote::StoreRead;

    use crate::error::Result;

    /// bbackupquery's `compare` flags that reach the library.
    #[derive(Debug, Clone, Default)]
    pub struct CompareOptions {
        /// `-q`: contents against the block index checksums, no download.
        pub quick: bool,
        /// `-A`: ignore attribute differences.
        pub ignore_attributes: bool,
        /// `-E`: ignore the location's exclusions.
        pub ignore_excludes: bool,
        /// `-Q`: quiet (no per-file explanations).
        pub quiet: bool,
        /// Files changed after this (the last sync start less MinimumFileAge)
        /// are expected to differ.
        pub latest_file_upload_time: BoxTime,
    }

    /// Counts 0.13 prints after a compare and bases `-c`'s exit code on.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct CompareReport {
        pub differences: u64,
        pub differences_explained_by_mod_time: u64,
        pub excluded_dirs: u64,
        pub excluded_files: u64,
        pub unchecked_files: u64,
    }

    /// Where compare's per-file lines go (`level` as bbackupquery logs them).
    pub trait CompareSink {
        fn line(&mut self, level: crate::query::Level, text: &[u8]);
    }

    pub fn compare_location(
        _store: &mut dyn StoreRead,
        _keys: &Keys,
        _store_dir: i64,
        local: &Path,
        _opts: &CompareOptions,
        _out: &mut dyn CompareSink,
    ) -> Result<CompareReport> {
        Err(super::not_wired("compare", local))
    }
}

pub mod restore {
    use std::path::Path;

    use bb_format::Keys;
    use bb_remote::StoreRead;

    use crate::error::Result;

    /// `restore` flags that reach the library (`-i` is resolved by the shell).
    #[derive(Debug, Clone, Default)]
    pub struct RestoreOptions {
        /// `-d`: restore deleted directories and files too.
        pub deleted: bool,
        /// `-r`: resume an interrupted restore.
        pub resume: bool,
        /// `-f`: go on after errors.
        pub force: bool,
    }

    /// How a restore ended (0.13's `Restore_*` results).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RestoreOutcome {
        Complete,
        CompleteWithErrors,
        ResumePossible,
        TargetExists,
        TargetPathNotFound,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RestoreReport {
        pub outcome: RestoreOutcome,
    }

    pub fn restore(
        _store: &mut dyn StoreRead,
        _keys: &Keys,
        _store_dir: i64,
        local: &Path,
        _opts: &RestoreOptions,
    ) -> Result<RestoreReport> {
        Err(super::not_wired("restore", local))
    }
}
