//! The server's structural check of an encoded file (formats.md §2.8) on an object
//! that is read piecewise, so a large upload never has to be in memory.
//!
//! Owns: the store's view of the check (its read errors kept apart from the
//! verdict); the check is bb-format's `SourceLayout::parse`, the same as
//! `FileLayout::parse` done with positional reads. Must not know: where the
//! bytes come from (a write handle before commit, or a stored object).

use bb_format::combine::stream::SourceLayout;
use bb_format::filename::EncodedName;
use bb_format::layout::FileHeader;
use bb_format::read_at::ReadAt;

use crate::error::Result;

/// What the check learnt about a structurally valid file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedFile {
    pub header: FileHeader,
    /// The embedded encoded name.
    pub name: EncodedName,
    /// Offset of the first chunk.
    pub data_start: u64,
    /// Offset of the block index (stream order sends `index_start..size` first).
    pub index_start: u64,
    pub size: u64,
    /// The index's other-file ID: non-zero iff the file is a patch.
    pub other_file_id: i64,
}

impl VerifiedFile {
    pub fn is_complete(&self) -> bool {
        self.other_file_id == 0
    }
}

/// A read-at closure as bb-format's `ReadAt`, keeping the store's own error
/// so that a failure to read is told apart from a malformed file.
struct Source<'a> {
    read_at: &'a mut dyn FnMut(&mut [u8], u64) -> Result<usize>,
    size: u64,
    failed: Option<crate::Error>,
}

impl ReadAt for Source<'_> {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        // The structural check never reads past the announced size.
        let room = self.size.saturating_sub(offset);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        (self.read_at)(&mut buf[..want], offset).map_err(|e| {
            let msg = e.to_string();
            self.failed = Some(e);
            std::io::Error::other(msg)
        })
    }
}

/// Checks the file of `size` bytes that `read_at` reads. The outer `Result` is a
/// failure to read; the inner one the verdict. The check itself is bb-format's
/// `SourceLayout::parse`, the same one the streaming transforms use.
pub fn verify_file(
    read_at: &mut dyn FnMut(&mut [u8], u64) -> Result<usize>,
    size: u64,
) -> Result<Result<VerifiedFile, bb_format::Error>> {
    let mut src = Source {
        read_at,
        size,
        failed: None,
    };
    match SourceLayout::parse(&mut src) {
        Ok(l) => Ok(Ok(VerifiedFile {
            header: l.header,
            name: l.name,
            data_start: l.data_start,
            index_start: l.index_start,
            size: l.size,
            other_file_id: l.other_file_id,
        })),
        Err(e) => match src.failed.take() {
            Some(read_failure) => Err(read_failure),
            None => Ok(Err(e)),
        },
    }
}

/// [`verify_file`] on bytes in memory.
pub fn verify_bytes(bytes: &[u8]) -> Result<VerifiedFile, bb_format::Error> {
    let mut read_at = |buf: &mut [u8], off: u64| -> Result<usize> {
        let off = (off.min(bytes.len() as u64)) as usize;
        let n = buf.len().min(bytes.len() - off);
        buf[..n].copy_from_slice(&bytes[off..off + n]);
        Ok(n)
    };
    match verify_file(&mut read_at, bytes.len() as u64) {
        Ok(r) => r,
        Err(e) => Err(bb_format::Error::corrupt("encoded file", e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bb_format::layout::FileLayout;

    /// The real `hello.txt` object (formats.md §8).
    pub(crate) fn hello_object() -> Vec<u8> {
        let s: String =
            "66696c65 0000000000000001 0000000000000002 00059b1f7228d580 00001080 00000000
             4a00e1457017b169022135d057bca97e58a6
             00000061 022f3a6ae0eae178e9aa442e36ed77d3b58b9133d019953aed19387291578cf4
             26f1248bd0170a26bc4f8d53bebc945c9e69c2c3c5d38882b07bfaed5f0daf8d
             090dde2e33e16fe4d1b70321028b90589b8c50698a836852a9b6c819e6a5674223
             04 916c02086fca925c1975e8166eb23f84 920f0e34990ae95ed0d6e661c1a1ac9c
             62696478 0000000000000000 068b90eda9b586b4 0000000000000001
             0000000000000021 df2d418f6671dc0ec4528e24182948868949b237eb6844d7"
                .split_whitespace()
                .collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn agrees_with_file_layout() {
        let f = hello_object();
        let v = verify_bytes(&f).unwrap();
        let l = FileLayout::parse(&f).unwrap();
        assert_eq!(v.data_start, l.data_start as u64);
        assert_eq!(v.index_start, l.index_start as u64);
        assert!(v.is_complete());
        // Every truncation and every single-byte change gives the same verdict.
        for n in 0..f.len() {
            assert!(verify_bytes(&f[..n]).is_err(), "prefix {n}");
        }
        for i in 0..f.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut g = f.clone();
                g[i] ^= x;
                assert_eq!(
                    verify_bytes(&g).is_ok(),
                    FileLayout::parse(&g).is_ok(),
                    "byte {i} ^ {x:#x}"
                );
            }
        }
    }
}
