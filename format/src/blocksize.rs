//! How 0.13 splits a run of new bytes into blocks (`formats.md` §2.5).

/// Smallest block size used.
pub const MIN_BLOCK_SIZE: u64 = 4096;
/// Largest nominal block size used.
pub const MAX_BLOCK_SIZE: u64 = 524_288;
/// A tail shorter than this is merged into the previous block.
pub const MIN_TAIL: u64 = 128;
/// Blocks at least this long are compressed by 0.13 writers.
pub const COMPRESS_MIN: usize = 256;
/// The header's max-block hint adds this to the largest clear block size.
pub const HINT_EXTRA: i32 = 128;

/// The block layout of a run of `len` bytes: `count` blocks, all `size` bytes
/// long except the last, which is `last` bytes (possibly longer than `size` when a
/// short tail was merged into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLayout {
    pub size: u64,
    pub count: u64,
    pub last: u64,
}

impl RunLayout {
    /// The layout 0.13 chooses for `len` new bytes (`len == 0` gives no blocks).
    pub fn for_len(len: u64) -> RunLayout {
        if len == 0 {
            return RunLayout {
                size: MIN_BLOCK_SIZE,
                count: 0,
                last: 0,
            };
        }
        let mut size = MIN_BLOCK_SIZE;
        let mut count = len.div_ceil(size);
        while size < MAX_BLOCK_SIZE && count > 4096 {
            size *= 2;
            count = len.div_ceil(size);
        }
        let mut last = len - (count - 1) * size;
        if last < MIN_TAIL && count > 1 {
            count -= 1;
            last += size;
        }
        RunLayout { size, count, last }
    }

    /// Clear size of block `i` of the run.
    pub fn block_len(&self, i: u64) -> u64 {
        if i + 1 == self.count {
            self.last
        } else {
            self.size
        }
    }

    /// The largest clear block this run produces, as the header hint counts it:
    /// the nominal block size even when the run has one shorter block.
    pub fn hint_size(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.size.max(self.last)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(len: u64) -> Vec<u64> {
        let l = RunLayout::for_len(len);
        (0..l.count).map(|i| l.block_len(i)).collect()
    }

    #[test]
    fn spec_examples() {
        assert_eq!(sizes(0), Vec::<u64>::new());
        assert_eq!(sizes(12), vec![12]);
        assert_eq!(sizes(4200), vec![4200]);
        assert_eq!(sizes(4700), vec![4096, 604]);
        assert_eq!(sizes(9192), vec![4096, 4096, 1000]);
        let l = RunLayout::for_len(20 << 20);
        assert_eq!((l.size, l.count, l.last), (8192, 2560, 8192));
        let l = RunLayout::for_len(16 << 20);
        assert_eq!((l.size, l.count), (4096, 4096));
        let l = RunLayout::for_len(3 << 30);
        assert_eq!(l.size, MAX_BLOCK_SIZE);
        assert!(l.count > 4096);
        // The hint counts the nominal size: a 12-byte file gets 4096 (+128 = 4224).
        assert_eq!(RunLayout::for_len(12).hint_size(), 4096);
        assert_eq!(RunLayout::for_len(4200).hint_size(), 4200);
    }
}
