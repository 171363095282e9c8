//! The RAID layout of one file, as pure arithmetic (store.md §6.5, §6.6, §6.8).
//!
//! Owns: which bytes go to stripe 1, stripe 2 and the parity file for a file of a
//! given size and block size; where the size is recorded (appended, XORed into the
//! last parity block, or not at all); how the size is found again from two surviving
//! components; and the disc usage in blocks. All arithmetic is 64-bit (0.13 truncates
//! some of it to 32 bits, store.md §11.5).
//!
//! Must not know: files. Readers and writers ask this module what to do and do it.

/// How the file size is kept in the parity file (store.md §6.5 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeRecord {
    /// The last parity block is written in full and an 8-byte big-endian size follows.
    Appended,
    /// The last parity block is short (only the stripe 1 bytes); no record.
    None,
    /// The last 8 bytes of the (full) last parity block are XORed with the size.
    XoredIn,
}

/// Sizes and the size record of the three components for one file size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub size: u64,
    pub block: u64,
    pub stripe1: u64,
    pub stripe2: u64,
    pub parity: u64,
    pub record: SizeRecord,
    /// Number of block pairs (the last may be partial); 0 for an empty file.
    pub pairs: u64,
    /// Bytes in the last pair (1..=2B), 0 for an empty file.
    pub last_pair_len: u64,
}

/// Bytes of the size record.
pub const SIZE_RECORD_LEN: u64 = 8;

impl Layout {
    /// The layout 0.13 produces for `size` bytes with block size `block`.
    /// `block` must be at least 16 (checked by `DiscSet`).
    pub fn of(size: u64, block: u64) -> Layout {
        if size == 0 {
            return Layout {
                size,
                block,
                stripe1: 0,
                stripe2: 0,
                parity: SIZE_RECORD_LEN,
                record: SizeRecord::Appended,
                pairs: 0,
                last_pair_len: 0,
            };
        }
        let pairs = size.div_ceil(2 * block);
        let before = (pairs - 1) * block; // bytes of each component before the last pair
        let l = size - 2 * before;
        let (last_parity, record) = if l == SIZE_RECORD_LEN || l == block {
            (block + SIZE_RECORD_LEN, SizeRecord::Appended)
        } else if l < block {
            (l, SizeRecord::None)
        } else if l < 2 * block - SIZE_RECORD_LEN {
            (block, SizeRecord::XoredIn)
        } else {
            (block + SIZE_RECORD_LEN, SizeRecord::Appended)
        };
        Layout {
            size,
            block,
            stripe1: before + l.min(block),
            stripe2: before + l.saturating_sub(block),
            parity: before + last_parity,
            record,
            pairs,
            last_pair_len: l,
        }
    }

    /// Offset in the parity file of the size record's 8 bytes (appended or XORed in).
    pub fn record_offset(&self) -> Option<u64> {
        match self.record {
            SizeRecord::Appended => Some(self.parity - SIZE_RECORD_LEN),
            SizeRecord::XoredIn => Some(self.parity - SIZE_RECORD_LEN),
            SizeRecord::None => None,
        }
    }

    /// True when pair `k` is the last one and carries the XORed size.
    pub fn pair_has_xored_size(&self, k: u64) -> bool {
        self.record == SizeRecord::XoredIn && k + 1 == self.pairs
    }
}

/// Where byte `offset` of the file lives in the stripes: (stripe index 0 or 1, offset
/// in that stripe).
pub fn stripe_position(offset: u64, block: u64) -> (usize, u64) {
    let b = offset / block;
    ((b % 2) as usize, (b / 2) * block + offset % block)
}

/// The file size, found from the parity file and one stripe (0.13's recovery-mode
/// rules, store.md §6.6). `parity_tail` is the last 8 bytes of the parity file,
/// `stripe1_tail` the last 8 bytes of stripe 1 (both only consulted where 0.13 does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivor {
    Stripe1 { len: u64, tail: [u8; 8] },
    Stripe2 { len: u64 },
}

/// Recovers the size, or `None` when the components cannot belong to any file.
pub fn recover_size(
    block: u64,
    parity_len: u64,
    parity_tail: [u8; 8],
    survivor: Survivor,
) -> Option<u64> {
    if parity_len % block == SIZE_RECORD_LEN {
        return Some(u64::from_be_bytes(parity_tail));
    }
    match survivor {
        Survivor::Stripe1 { len, tail } => {
            if len % block != 0 {
                len.checked_add((len / block).checked_mul(block)?)
            } else {
                // The XORed-in case: stripe 2 is shorter than B - 8 in the last pair,
                // so the parity's last 8 bytes are stripe 1's XOR the size.
                let mut x = [0u8; 8];
                for i in 0..8 {
                    x[i] = tail[i] ^ parity_tail[i];
                }
                Some(u64::from_be_bytes(x))
            }
        }
        Survivor::Stripe2 { len } => {
            if len % block != 0 {
                len.checked_add((len / block + 1).checked_mul(block)?)
            } else {
                let b2 = len / block;
                let bp = parity_len / block;
                let blocks = if b2 == bp { 2 * b2 } else { 2 * b2 + 1 };
                blocks.checked_mul(block)?.checked_add(parity_len % block)
            }
        }
    }
}

/// Disc usage in blocks of a file of `size` bytes (store.md §6.8): what directory
/// entries and store info count.
pub fn disc_usage_in_blocks(size: u64, block: u64, raid: bool) -> u64 {
    let mut blocks = size.div_ceil(block);
    if !raid {
        return blocks;
    }
    let p = (size / block) / 2;
    blocks += p;
    let over = size - p * 2 * block;
    blocks += if over == 0 {
        1
    } else if over == SIZE_RECORD_LEN {
        2
    } else if over < block {
        1
    } else if over == block || over >= 2 * block - SIZE_RECORD_LEN {
        2
    } else {
        1
    };
    blocks
}

/// XOR `src` into `dst` (lengths may differ: the shorter one is zero-padded).
pub fn xor_into(dst: &mut [u8], src: &[u8]) {
    // A plain byte loop: LLVM turns it into wide SIMD XORs.
    for (a, b) in dst.iter_mut().zip(src) {
        *a ^= *b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_sizes_b2048() {
        // store.md §6.5, observed with the C++ implementation.
        let cases = [
            (128, 128, 0, 128),
            (2048, 2048, 0, 2056),
            (2056, 2048, 8, 2048),
            (3000, 2048, 952, 2048),
            (4088, 2048, 2040, 2056),
            (4096, 2048, 2048, 2056),
            (4104, 2056, 2048, 4104),
            (8200, 4104, 4096, 6152),
            (10000, 5904, 4096, 5904),
        ];
        for (s, s1, s2, p) in cases {
            let l = Layout::of(s, 2048);
            assert_eq!((l.stripe1, l.stripe2, l.parity), (s1, s2, p), "size {s}");
        }
        assert_eq!(Layout::of(0, 2048).parity, 8);
        assert_eq!(Layout::of(3000, 2048).record, SizeRecord::XoredIn);
    }

    #[test]
    fn disc_usage_examples() {
        // store.md §6.8.
        for (s, b) in [
            (40, 2),
            (128, 2),
            (2048, 3),
            (3000, 3),
            (4096, 4),
            (4104, 6),
            (8200, 9),
            (98505, 74),
        ] {
            assert_eq!(disc_usage_in_blocks(s, 2048, true), b, "size {s}");
        }
        assert_eq!(disc_usage_in_blocks(40, 4096, false), 1);
    }

    #[test]
    fn stripe_positions() {
        assert_eq!(stripe_position(0, 16), (0, 0));
        assert_eq!(stripe_position(17, 16), (1, 1));
        assert_eq!(stripe_position(33, 16), (0, 17));
        // Past 4 GiB nothing wraps.
        assert_eq!(stripe_position(5 << 30, 4096), (0, (5 << 30) / 2));
    }

    #[test]
    fn recovered_size_matches_every_small_size() {
        // For every size, build the components' lengths and tails as the layout says
        // and check both recovery routes give the size back.
        let b = 32u64;
        for s in 0..(6 * b + 3) {
            let data: Vec<u8> = (0..s).map(|i| (i * 7 + 3) as u8).collect();
            let (s1, s2, p) = crate::layout::tests::components(&data, b);
            let l = Layout::of(s, b);
            assert_eq!(
                (s1.len() as u64, s2.len() as u64, p.len() as u64),
                (l.stripe1, l.stripe2, l.parity)
            );
            let tail = |v: &[u8]| {
                let mut t = [0u8; 8];
                let n = v.len().min(8);
                t[8 - n..].copy_from_slice(&v[v.len() - n..]);
                t
            };
            let pt = tail(&p);
            let r1 = recover_size(
                b,
                l.parity,
                pt,
                Survivor::Stripe1 {
                    len: l.stripe1,
                    tail: tail(&s1),
                },
            );
            let r2 = recover_size(b, l.parity, pt, Survivor::Stripe2 { len: l.stripe2 });
            assert_eq!(r1, Some(s), "stripe1 route, size {s}");
            assert_eq!(r2, Some(s), "stripe2 route, size {s}");
        }
    }

    /// Reference encoder: the three components of `data`, straight from the table.
    pub(crate) fn components(data: &[u8], b: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let b = b as usize;
        let l = Layout::of(data.len() as u64, b as u64);
        let (mut s1, mut s2, mut p) = (Vec::new(), Vec::new(), Vec::new());
        for (i, blk) in data.chunks(b).enumerate() {
            if i % 2 == 0 {
                s1.extend_from_slice(blk)
            } else {
                s2.extend_from_slice(blk)
            }
        }
        for (k, pair) in data.chunks(2 * b).enumerate() {
            let mut pb = vec![0u8; b];
            xor_into(&mut pb, &pair[..pair.len().min(b)]);
            if pair.len() > b {
                xor_into(&mut pb, &pair[b..]);
            }
            if k as u64 + 1 == l.pairs {
                match l.record {
                    SizeRecord::None => pb.truncate(pair.len()),
                    SizeRecord::XoredIn => {
                        xor_into(&mut pb[b - 8..], &(data.len() as u64).to_be_bytes())
                    }
                    SizeRecord::Appended => {}
                }
            }
            p.extend_from_slice(&pb);
        }
        if l.record == SizeRecord::Appended {
            p.extend_from_slice(&(data.len() as u64).to_be_bytes());
        }
        (s1, s2, p)
    }
}
