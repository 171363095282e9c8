//! The weak rolling checksum of `formats.md` §5.1, used in every block index entry
//! and by the diff search. All arithmetic is modulo 2^16.

/// Rolling checksum state over a window of fixed length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollingChecksum {
    a: u16,
    b: u16,
}

impl RollingChecksum {
    /// Checksum of `block` (the window is `block.len()` bytes long).
    pub fn new(block: &[u8]) -> Self {
        let len = block.len() as u32;
        let mut a: u32 = 0;
        let mut b: u32 = 0;
        // Sum in u32 lanes and wrap at the end: (L - i) * x[i] mod 2^16 only needs
        // the low 16 bits of every term.
        for (i, &x) in block.iter().enumerate() {
            a = a.wrapping_add(x as u32);
            b = b.wrapping_add((len.wrapping_sub(i as u32)).wrapping_mul(x as u32));
        }
        RollingChecksum {
            a: a as u16,
            b: b as u16,
        }
    }

    /// Slides the window by one byte: `old` leaves, `new` enters; `len` is the
    /// window length.
    #[inline]
    pub fn roll(&mut self, old: u8, new: u8, len: usize) {
        self.a = self.a.wrapping_sub(old as u16).wrapping_add(new as u16);
        self.b = self
            .b
            .wrapping_sub((len as u16).wrapping_mul(old as u16))
            .wrapping_add(self.a);
    }

    /// The 32-bit value stored in block indexes: `a | b << 16`.
    #[inline]
    pub fn value(&self) -> u32 {
        self.a as u32 | (self.b as u32) << 16
    }

    /// The 16-bit hash-table key used by the diff search (the `b` half).
    #[inline]
    pub fn component2(&self) -> u16 {
        self.b
    }
}

/// Checksum of a whole block.
pub fn weak_checksum(block: &[u8]) -> u32 {
    RollingChecksum::new(block).value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_vectors() {
        assert_eq!(weak_checksum(b"abc"), 0x024a0126);
        assert_eq!(weak_checksum(b"hello world\n"), 0x1e660466);
    }

    proptest! {
        #[test]
        fn rolling_equals_fresh(data in proptest::collection::vec(any::<u8>(), 2..3000), len in 1usize..600) {
            let len = len.min(data.len() - 1);
            let mut c = RollingChecksum::new(&data[..len]);
            for start in 1..=data.len() - len {
                c.roll(data[start - 1], data[start + len - 1], len);
                prop_assert_eq!(c, RollingChecksum::new(&data[start..start + len]));
            }
        }
    }
}
