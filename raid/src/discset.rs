//! `DiscSet`: one RaidFile disc set, passed around as a value.
//!
//! Owns: the set's number, block size and directories (three for RAID, one for a
//! non-RAID set), the `Fs` that all I/O goes through, the queue of files readers found
//! degraded, and the naming rules of store.md §6.3 (start disc, `.rfw`, `.rfwX`,
//! `.rf`, `.rfP`).
//!
//! Must not know: what the files contain. There is no global controller: a process
//! can hold any number of disc sets (two stores, or a store and a fault-injected copy
//! of it, in one test).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fs::{Fs, RealFs};
use crate::recover::RepairQueue;

/// The three components of a RAID file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Component {
    Stripe1,
    Stripe2,
    Parity,
}

impl Component {
    pub const ALL: [Component; 3] = [Component::Stripe1, Component::Stripe2, Component::Parity];

    /// Position after the start disc (stripe 1 on the start disc, then stripe 2, then
    /// parity).
    pub fn index(self) -> usize {
        match self {
            Component::Stripe1 => 0,
            Component::Stripe2 => 1,
            Component::Parity => 2,
        }
    }
}

/// Whether writes are gathered into whole multiples of each disc's `st_blksize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffering {
    /// Bounded buffers; every write but the last of a file is a whole number of the
    /// disc's blocks (the default).
    Blocks,
    /// One `write` per call, as 0.13 does; kept for measurement.
    None,
}

/// Extension of a committed non-RAID ("write") file.
pub const EXT_WRITE: &str = ".rfw";
/// Extension of a write file while it is being written.
pub const EXT_WRITE_TEMP: &str = ".rfwX";
/// Extension of a RAID component.
pub const EXT_COMPONENT: &str = ".rf";
/// Extension of a RAID component while the transform produces it.
pub const EXT_COMPONENT_TEMP: &str = ".rfP";
/// Extension of a component being rebuilt by recovery (ours; 0.13 ignores it).
pub const EXT_COMPONENT_REBUILD: &str = ".rfR";
/// Directory (per disc) where components that failed with EIO are moved.
pub const UNREADABLE_DIR: &str = ".raidfile-unreadable";

/// One disc set. Cloning is cheap and clones share the `Fs` and the repair queue.
#[derive(Debug, Clone)]
pub struct DiscSet {
    number: u32,
    block_size: u64,
    dirs: Arc<[PathBuf]>,
    fs: Arc<dyn Fs>,
    repairs: RepairQueue,
    buffering: Buffering,
}

impl DiscSet {
    /// A set of one directory (non-RAID) or three different directories (RAID).
    ///
    /// The block size must be a multiple of 8 and at least 16: the parity code stores
    /// an 8-byte size in the last block and recognises it by `parity length % B == 8`.
    pub fn new(number: u32, block_size: u64, dirs: Vec<PathBuf>) -> Result<DiscSet> {
        let bad = |detail: String| Error::BadDiscSet {
            set: number,
            detail,
        };
        if block_size < 16 || block_size % 8 != 0 {
            return Err(bad(format!(
                "block size {block_size} is not a multiple of 8 of at least 16"
            )));
        }
        if block_size > (1 << 30) {
            return Err(bad(format!("block size {block_size} is too large")));
        }
        match dirs.len() {
            1 => {}
            3 if dirs[0] != dirs[1] && dirs[1] != dirs[2] && dirs[0] != dirs[2] => {}
            3 => return Err(bad("two of the three directories are the same".into())),
            n => return Err(bad(format!("{n} directories; a set has 1 or 3"))),
        }
        Ok(DiscSet {
            number,
            block_size,
            dirs: dirs.into(),
            fs: RealFs::shared(),
            repairs: RepairQueue::default(),
            buffering: Buffering::Blocks,
        })
    }

    /// A RAID set over three directories.
    pub fn raid(number: u32, block_size: u64, dirs: [impl Into<PathBuf>; 3]) -> Result<DiscSet> {
        DiscSet::new(
            number,
            block_size,
            dirs.into_iter().map(Into::into).collect(),
        )
    }

    /// A non-RAID set over one directory.
    pub fn single(number: u32, block_size: u64, dir: impl Into<PathBuf>) -> Result<DiscSet> {
        DiscSet::new(number, block_size, vec![dir.into()])
    }

    /// The same set doing its I/O through `fs` (e.g. a `FaultFs`).
    pub fn with_fs(mut self, fs: Arc<dyn Fs>) -> DiscSet {
        self.fs = fs;
        self
    }

    /// The same set reporting degraded files to `queue`.
    pub fn with_repair_queue(mut self, queue: RepairQueue) -> DiscSet {
        self.repairs = queue;
        self
    }

    pub fn with_buffering(mut self, buffering: Buffering) -> DiscSet {
        self.buffering = buffering;
        self
    }

    pub fn number(&self) -> u32 {
        self.number
    }

    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    pub fn is_raid(&self) -> bool {
        self.dirs.len() == 3
    }

    pub fn fs(&self) -> &Arc<dyn Fs> {
        &self.fs
    }

    pub fn repair_queue(&self) -> &RepairQueue {
        &self.repairs
    }

    pub fn buffering(&self) -> Buffering {
        self.buffering
    }

    /// The disc holding the write file and stripe 1 (store.md §6.3): the sum of the
    /// name's bytes as signed chars, taken modulo the number of discs the way 0.13's
    /// `int % size_t` does it (the sum is converted to an unsigned 64-bit value first,
    /// which only matters for names with many bytes >= 0x80).
    pub fn start_disc(&self, name: &str) -> usize {
        let h = name
            .bytes()
            .fold(0i32, |h, b| h.wrapping_add(i32::from(b as i8)));
        ((i64::from(h) as u64) % self.dirs.len() as u64) as usize
    }

    /// The directory of disc `d` (0-based, taken modulo the set size).
    pub fn disc_dir(&self, d: usize) -> &Path {
        &self.dirs[d % self.dirs.len()]
    }

    fn on_disc(&self, d: usize, name: &str, ext: &str) -> PathBuf {
        let mut s = OsString::from(name);
        s.push(ext);
        self.disc_dir(d).join(s)
    }

    /// `Dir[s]/<name>.rfw`.
    pub fn write_path(&self, name: &str) -> PathBuf {
        self.on_disc(self.start_disc(name), name, EXT_WRITE)
    }

    /// `Dir[s]/<name>.rfwX`.
    pub fn write_temp_path(&self, name: &str) -> PathBuf {
        self.on_disc(self.start_disc(name), name, EXT_WRITE_TEMP)
    }

    /// The disc a component lives on.
    pub fn component_disc(&self, name: &str, c: Component) -> usize {
        (self.start_disc(name) + c.index()) % self.dirs.len()
    }

    /// `Dir[(s + i) % 3]/<name>.rf`.
    pub fn component_path(&self, name: &str, c: Component) -> PathBuf {
        self.on_disc(self.component_disc(name, c), name, EXT_COMPONENT)
    }

    /// The component's name with another extension (`.rfP`, `.rfR`).
    pub fn component_path_ext(&self, name: &str, c: Component, ext: &str) -> PathBuf {
        self.on_disc(self.component_disc(name, c), name, ext)
    }

    /// Where 0.13 moves a component that failed with EIO:
    /// `Dir[d]/.raidfile-unreadable/<name>.rf` with `_` -> `__` and `/` -> `_`.
    pub fn unreadable_path(&self, name: &str, c: Component) -> PathBuf {
        let mut munged = String::new();
        for ch in format!("{name}{EXT_COMPONENT}").chars() {
            match ch {
                '/' => munged.push('_'),
                '_' => munged.push_str("__"),
                c => munged.push(c),
            }
        }
        self.disc_dir(self.component_disc(name, c))
            .join(UNREADABLE_DIR)
            .join(munged)
    }

    /// Disc usage in blocks of a file of `size` bytes on this set (store.md §6.8).
    pub fn disc_usage_in_blocks(&self, size: u64) -> u64 {
        crate::layout::disc_usage_in_blocks(size, self.block_size, self.is_raid())
    }
}

/// Checks a RaidFile name: relative, non-empty, no `.`/`..` components, no NUL, no
/// empty components. Names are paths below every disc root.
pub fn check_name(name: &str) -> Result<()> {
    let bad = |why| {
        Err(Error::BadName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.starts_with('/') {
        return bad("absolute");
    }
    if name.contains('\0') {
        return bad("contains NUL");
    }
    for part in name.split('/') {
        match part {
            "" => return bad("empty path component"),
            "." | ".." => return bad("'.' or '..' component"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set3() -> DiscSet {
        DiscSet::raid(0, 2048, ["/r/0", "/r/1", "/r/2"]).unwrap()
    }

    #[test]
    fn start_disc_examples() {
        // store.md §6.3.
        let s = set3();
        assert_eq!(s.start_disc("backup/00000001/info"), 1);
        assert_eq!(s.start_disc("backup/00000001/o01"), 0);
        assert_eq!(
            s.component_path("backup/00000001/o01", Component::Parity),
            PathBuf::from("/r/2/backup/00000001/o01.rf")
        );
        assert_eq!(
            s.write_temp_path("backup/00000001/info"),
            PathBuf::from("/r/1/backup/00000001/info.rfwX")
        );
    }

    #[test]
    fn start_disc_of_utf8_name() {
        let s = set3();
        // Bytes c3 bf sum to -61 + -65 = -126 as signed chars; 0.13 converts the int
        // to size_t before `%`, so the disc is (2^64 - 126) % 3 = 1, where a
        // mathematical -126 mod 3 would be 0.
        assert_eq!(s.start_disc("\u{ff}"), ((u64::MAX - 125) % 3) as usize);
    }

    #[test]
    fn unreadable_name_is_munged() {
        let s = set3();
        let p = s.unreadable_path("backup/0_1/o01", Component::Stripe2);
        assert!(
            p.ends_with(".raidfile-unreadable/backup_0__1_o01.rf"),
            "{p:?}"
        );
    }

    #[test]
    fn bad_sets_and_names() {
        assert!(DiscSet::raid(0, 2048, ["/a", "/b", "/a"]).is_err());
        assert!(DiscSet::single(0, 12, "/a").is_err());
        assert!(DiscSet::single(0, 8, "/a").is_err());
        assert!(DiscSet::new(0, 4096, vec!["/a".into(), "/b".into()]).is_err());
        for n in ["", "/abs", "a//b", "a/../b", "./a", "a/"] {
            assert!(check_name(n).is_err(), "{n:?}");
        }
        check_name("backup/01234567/o01").unwrap();
    }
}
