//! The server's structural check of an encoded file (formats.md §2.8) on an object
//! that is read piecewise, so a large upload never has to be in memory.
//!
//! Owns: the same checks as `bb_format::layout::FileLayout::parse`, done with
//! positional reads (the header and name at the front, the index at the back, in
//! batches). Must not know: where the bytes come from (a write handle before
//! commit, or a stored object).

use bb_format::filename::{EncodedName, MAX_ENCODED_LEN};
use bb_format::index::{BlockIndex, INDEX_ENTRY_LEN, INDEX_HEADER_LEN};
use bb_format::layout::{FILE_HEADER_LEN, FileHeader};

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

fn corrupt(detail: impl Into<String>) -> bb_format::Error {
    bb_format::Error::corrupt("encoded file", detail)
}

/// Reads exactly `buf.len()` bytes at `offset`, or reports truncation.
fn read_exact(
    read_at: &mut dyn FnMut(&mut [u8], u64) -> Result<usize>,
    buf: &mut [u8],
    offset: u64,
) -> Result<bool> {
    let mut done = 0;
    while done < buf.len() {
        let n = read_at(&mut buf[done..], offset + done as u64)?;
        if n == 0 {
            return Ok(false);
        }
        done += n;
    }
    Ok(true)
}

/// Checks the file of `size` bytes that `read_at` reads. The outer `Result` is a
/// failure to read; the inner one the verdict.
pub fn verify_file(
    read_at: &mut dyn FnMut(&mut [u8], u64) -> Result<usize>,
    size: u64,
) -> Result<Result<VerifiedFile, bb_format::Error>> {
    // Enough for the header, the longest name and the attribute length.
    let front_len = size.min((FILE_HEADER_LEN + MAX_ENCODED_LEN + 4) as u64) as usize;
    let mut front = vec![0u8; front_len];
    if !read_exact(read_at, &mut front, 0)? {
        return Ok(Err(corrupt("shorter than its size")));
    }
    let header = match FileHeader::parse(&front) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    let (name, name_len) = match EncodedName::parse(&front[FILE_HEADER_LEN..]) {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    let at = FILE_HEADER_LEN + name_len;
    let Some(len_bytes) = front.get(at..at + 4) else {
        return Ok(Err(corrupt("truncated before the attributes")));
    };
    let attr_len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    let data_start = (at + 4) as u64 + u64::from(attr_len);
    if data_start > size {
        return Ok(Err(corrupt("attributes run past the end")));
    }
    let n = header.num_blocks as u64;
    let Some(index_len) = n
        .checked_mul(INDEX_ENTRY_LEN as u64)
        .and_then(|x| x.checked_add(INDEX_HEADER_LEN as u64))
        .filter(|&x| x <= size)
    else {
        return Ok(Err(corrupt(format!(
            "{n} blocks cannot fit in {size} bytes"
        ))));
    };
    let index_start = size - index_len;
    if index_start < data_start {
        return Ok(Err(corrupt("block index overlaps the attributes")));
    }
    let mut ih = [0u8; INDEX_HEADER_LEN];
    if !read_exact(read_at, &mut ih, index_start)? {
        return Ok(Err(corrupt("shorter than its size")));
    }
    let (legacy, other_file_id, _iv, count) = match BlockIndex::parse_header(&ih) {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    if legacy != header.legacy_v0 {
        return Ok(Err(corrupt("header and index versions differ")));
    }
    if count as u64 != n {
        return Ok(Err(corrupt("header and index block counts differ")));
    }
    const BATCH: u64 = 1024;
    let mut buf = vec![0u8; (BATCH.min(n.max(1)) as usize) * INDEX_ENTRY_LEN];
    let mut pos = data_start;
    let mut has_refs = false;
    let mut i = 0u64;
    while i < n {
        let k = BATCH.min(n - i) as usize;
        let b = &mut buf[..k * INDEX_ENTRY_LEN];
        let off = index_start + INDEX_HEADER_LEN as u64 + i * INDEX_ENTRY_LEN as u64;
        if !read_exact(read_at, b, off)? {
            return Ok(Err(corrupt("shorter than its size")));
        }
        for e in b.chunks_exact(INDEX_ENTRY_LEN) {
            let mut s = [0u8; 8];
            s.copy_from_slice(&e[..8]);
            let encoded = i64::from_be_bytes(s);
            if encoded > 0 {
                match pos
                    .checked_add(encoded as u64)
                    .filter(|&end| end <= index_start)
                {
                    Some(end) => pos = end,
                    None => return Ok(Err(corrupt("chunk sizes overrun the block index"))),
                }
            } else {
                has_refs = true;
            }
        }
        i += k as u64;
    }
    if pos != index_start {
        return Ok(Err(corrupt(format!(
            "{} bytes between the last chunk and the index",
            index_start - pos
        ))));
    }
    if (other_file_id != 0) != has_refs {
        return Ok(Err(corrupt(
            "other-file ID is set iff an entry refers to another file: violated",
        )));
    }
    Ok(Ok(VerifiedFile {
        header,
        name,
        data_start,
        index_start,
        size,
        other_file_id,
    }))
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
