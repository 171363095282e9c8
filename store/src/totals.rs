//! The counters of a store info that a full scan recounts from the directories
//! (housekeeping and check share them, so both count the same way).

use bb_format::directory::Entry;
use bb_format::storeinfo::StoreInfo;

/// Blocks and numbers as the store info keeps them (store.md §4.3).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub used: i64,
    pub current: i64,
    pub old: i64,
    pub deleted: i64,
    pub dirs: i64,
    pub n_current: i64,
    pub n_old: i64,
    pub n_deleted: i64,
    pub n_dirs: i64,
}

impl Totals {
    /// Counts a file entry by its flags (an entry both old and deleted counts in
    /// both). Blocks used are the caller's: check counts them from the objects.
    pub fn count_file(&mut self, e: &Entry) {
        let s = e.size_in_blocks;
        if e.is_old_version() {
            self.old += s;
            self.n_old += 1;
        }
        if e.is_deleted() {
            self.deleted += s;
            self.n_deleted += 1;
        }
        if e.is_current() {
            self.current += s;
            self.n_current += 1;
        }
    }

    /// The totals an info holds.
    pub fn of_info(i: &StoreInfo) -> Totals {
        Totals {
            used: i.blocks_used,
            current: i.blocks_in_current_files,
            old: i.blocks_in_old_files,
            deleted: i.blocks_in_deleted_files,
            dirs: i.blocks_in_directories,
            n_current: i.num_current_files,
            n_old: i.num_old_files,
            n_deleted: i.num_deleted_files,
            n_dirs: i.num_directories,
        }
    }

    /// Writes these totals into `i`.
    pub fn apply_to(&self, i: &mut StoreInfo) {
        i.blocks_used = self.used;
        i.blocks_in_current_files = self.current;
        i.blocks_in_old_files = self.old;
        i.blocks_in_deleted_files = self.deleted;
        i.blocks_in_directories = self.dirs;
        i.num_current_files = self.n_current;
        i.num_old_files = self.n_old;
        i.num_deleted_files = self.n_deleted;
        i.num_directories = self.n_dirs;
    }

    /// Each counter with 0.13's field name, in the info's order.
    pub fn named(&self) -> [(&'static str, i64); 9] {
        [
            ("BlocksUsed", self.used),
            ("BlocksInCurrentFiles", self.current),
            ("BlocksInOldFiles", self.old),
            ("BlocksInDeletedFiles", self.deleted),
            ("BlocksInDirectories", self.dirs),
            ("NumCurrentFiles", self.n_current),
            ("NumOldFiles", self.n_old),
            ("NumDeletedFiles", self.n_deleted),
            ("NumDirectories", self.n_dirs),
        ]
    }
}
