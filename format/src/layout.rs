//! The encoded file's outer structure (`formats.md` §2.1, §2.2, §2.7, §2.8):
//! the 36-byte header, the encoded name, the attributes MemBlock, the chunks, and
//! the block index at the end ("file order"), or the index first ("stream order").
//!
//! [`FileLayout::parse`] is the server's structural check: it needs no keys and
//! verifies everything that can be verified without them. Combine, reverse diff,
//! the store checker and the decoder all start from it.

use std::ops::Range;

use crate::bytes::Reader;
use crate::error::{Error, Result};
use crate::filename::EncodedName;
use crate::index::{BlockIndex, INDEX_HEADER_LEN, INDEX_MAGIC_V0, INDEX_MAGIC_V1};

/// "file": the encoded file magic.
pub const FILE_MAGIC_V1: u32 = 0x6669_6C65;
/// "FILE": the legacy (v0) encoded file magic, read only.
pub const FILE_MAGIC_V0: u32 = 0x4649_4C45;
/// Bytes in the file header.
pub const FILE_HEADER_LEN: usize = 36;

/// The 36-byte encoded file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// Read from a legacy "FILE" header.
    pub legacy_v0: bool,
    /// Number of blocks; equals the index's count.
    pub num_blocks: i64,
    /// The directory the client uploaded into (never updated on a move).
    pub container_id: i64,
    /// Local modification time (box_time, microseconds).
    pub mtime: i64,
    /// Largest clear block size that can occur, plus 128.
    pub max_block_clear_size: i32,
    /// Always 0.
    pub options: i32,
}

impl FileHeader {
    /// Parses the header from the front of `buf`.
    pub fn parse(buf: &[u8]) -> Result<FileHeader> {
        let mut r = Reader::new(buf, "file header");
        let legacy_v0 = match r.u32_be()? {
            FILE_MAGIC_V1 => false,
            FILE_MAGIC_V0 => true,
            found => {
                return Err(Error::BadMagic {
                    what: "encoded file",
                    found,
                });
            }
        };
        let h = FileHeader {
            legacy_v0,
            num_blocks: r.i64_be()?,
            container_id: r.i64_be()?,
            mtime: r.i64_be()?,
            max_block_clear_size: r.i32_be()?,
            options: r.i32_be()?,
        };
        if h.num_blocks < 0 {
            return Err(Error::corrupt(
                "file header",
                format!("negative block count {}", h.num_blocks),
            ));
        }
        Ok(h)
    }

    /// Appends the header (always the current magic).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&FILE_MAGIC_V1.to_be_bytes());
        out.extend_from_slice(&self.num_blocks.to_be_bytes());
        out.extend_from_slice(&self.container_id.to_be_bytes());
        out.extend_from_slice(&self.mtime.to_be_bytes());
        out.extend_from_slice(&self.max_block_clear_size.to_be_bytes());
        out.extend_from_slice(&self.options.to_be_bytes());
    }
}

/// Which order an encoded file's bytes are in, told by the first four bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Header first, index last: uploads and stored objects.
    File,
    /// Index first, then everything before it: GetFile downloads.
    Stream,
}

/// Tells file order from stream order by the magic at the start.
pub fn detect_order(buf: &[u8]) -> Result<Order> {
    let magic = Reader::new(buf, "encoded file").u32_be()?;
    match magic {
        FILE_MAGIC_V1 | FILE_MAGIC_V0 => Ok(Order::File),
        INDEX_MAGIC_V1 | INDEX_MAGIC_V0 => Ok(Order::Stream),
        found => Err(Error::BadMagic {
            what: "encoded file",
            found,
        }),
    }
}

/// A structurally verified encoded file in file order, borrowing its bytes.
#[derive(Debug, Clone)]
pub struct FileLayout<'a> {
    pub header: FileHeader,
    /// The encoded filename as embedded (header + body).
    pub name: EncodedName,
    /// The attributes MemBlock's contents (without its length word).
    pub attributes: &'a [u8],
    /// Offset of the first chunk (end of the attributes MemBlock).
    pub data_start: usize,
    /// Offset of the block index.
    pub index_start: usize,
    pub index: BlockIndex,
    /// Byte range of each entry's chunk in the file; `None` for references.
    pub chunks: Vec<Option<Range<usize>>>,
    file: &'a [u8],
}

impl<'a> FileLayout<'a> {
    /// Parses and verifies a file-order encoded file (`formats.md` §2.8): magic,
    /// name, attributes, index position and magic, counts, chunk sizes that fill
    /// the data area exactly, and "other file ID != 0 iff a reference exists".
    pub fn parse(file: &'a [u8]) -> Result<FileLayout<'a>> {
        let header = FileHeader::parse(file)?;
        let (name, name_len) = EncodedName::parse(&file[FILE_HEADER_LEN..])?;
        let mut r = Reader::new(&file[FILE_HEADER_LEN + name_len..], "file attributes");
        let attributes = r.mem_block()?;
        let data_start = FILE_HEADER_LEN + name_len + r.position();

        let n = header.num_blocks as u64;
        let index_len = (n)
            .checked_mul(32)
            .and_then(|x| x.checked_add(INDEX_HEADER_LEN as u64))
            .filter(|&x| x <= file.len() as u64)
            .ok_or_else(|| {
                Error::corrupt(
                    "encoded file",
                    format!("{n} blocks cannot fit in {} bytes", file.len()),
                )
            })? as usize;
        let index_start = file.len() - index_len;
        if index_start < data_start {
            return Err(Error::corrupt(
                "encoded file",
                "block index overlaps the attributes",
            ));
        }
        let index = BlockIndex::parse(&file[index_start..])?;
        if index.legacy_v0 != header.legacy_v0 {
            return Err(Error::corrupt(
                "encoded file",
                "header and index versions differ",
            ));
        }
        if index.entries.len() as u64 != n {
            return Err(Error::corrupt(
                "encoded file",
                "header and index block counts differ",
            ));
        }
        let mut chunks = Vec::with_capacity(index.entries.len());
        let mut pos = data_start as u64;
        for e in &index.entries {
            match e.stored_len() {
                Some(len) => {
                    let end = pos
                        .checked_add(len)
                        .filter(|&end| end <= index_start as u64)
                        .ok_or_else(|| {
                            Error::corrupt("encoded file", "chunk sizes overrun the block index")
                        })?;
                    chunks.push(Some(pos as usize..end as usize));
                    pos = end;
                }
                None => chunks.push(None),
            }
        }
        if pos != index_start as u64 {
            return Err(Error::corrupt(
                "encoded file",
                format!(
                    "{} bytes between the last chunk and the index",
                    index_start as u64 - pos
                ),
            ));
        }
        if (index.other_file_id != 0) != index.has_references() {
            return Err(Error::corrupt(
                "encoded file",
                "other-file ID is set iff an entry refers to another file: violated",
            ));
        }
        Ok(FileLayout {
            header,
            name,
            attributes,
            data_start,
            index_start,
            index,
            chunks,
            file,
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.file
    }

    /// Header, name and attributes MemBlock: everything before the chunks.
    pub fn prefix(&self) -> &'a [u8] {
        &self.file[..self.data_start]
    }

    /// The chunk of entry `i`, if stored in this file.
    pub fn chunk(&self, i: usize) -> Option<&'a [u8]> {
        self.chunks.get(i)?.clone().map(|r| &self.file[r])
    }

    /// True if every block is stored here (no references).
    pub fn is_complete(&self) -> bool {
        self.index.other_file_id == 0
    }
}

/// Rewrites stream order (index first) into file order. File order is returned
/// unchanged.
pub fn to_file_order(buf: &[u8]) -> Result<Vec<u8>> {
    match detect_order(buf)? {
        Order::File => Ok(buf.to_vec()),
        Order::Stream => {
            let (_, used) = BlockIndex::parse_prefix(buf)?;
            let mut v = Vec::with_capacity(buf.len());
            v.extend_from_slice(&buf[used..]);
            v.extend_from_slice(&buf[..used]);
            Ok(v)
        }
    }
}

/// Rewrites a verified file-order file into stream order (what GetFile sends).
pub fn to_stream_order(layout: &FileLayout<'_>) -> Vec<u8> {
    let f = layout.bytes();
    let mut v = Vec::with_capacity(f.len());
    v.extend_from_slice(&f[layout.index_start..]);
    v.extend_from_slice(&f[..layout.index_start]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::hello_object;

    #[test]
    fn spec_object_parses() {
        let f = hello_object();
        assert_eq!(f.len(), 248);
        let l = FileLayout::parse(&f).unwrap();
        assert_eq!(l.header.num_blocks, 1);
        assert_eq!(l.header.container_id, 2);
        assert_eq!(l.header.max_block_clear_size, 4224);
        assert_eq!(l.attributes.len(), 97);
        assert_eq!(l.chunk(0).unwrap().len(), 33);
        assert!(l.is_complete());
        let k = crate::keys::Keys::test_vector();
        assert_eq!(l.name.decrypt(&k).unwrap(), b"hello.txt");
        let c = l.index.decrypt_entry(&k, 0).unwrap();
        assert_eq!(c, crate::index::BlockClear::of(b"hello world\n"));
        let s = to_stream_order(&l);
        assert_eq!(detect_order(&s).unwrap(), Order::Stream);
        assert_eq!(to_file_order(&s).unwrap(), f);
    }

    #[test]
    fn structural_errors() {
        let f = hello_object();
        // Every truncation is an error, never a panic.
        for n in 0..f.len() {
            assert!(FileLayout::parse(&f[..n]).is_err(), "prefix {n}");
        }
        // A chunk size that leaves a gap.
        let mut g = f.clone();
        let at = g.len() - 32 + 7;
        g[at] = 0x20;
        assert!(FileLayout::parse(&g).is_err());
        // A reference without an other-file ID.
        let mut g = f.clone();
        let at = g.len() - 32;
        g[at..at + 8].copy_from_slice(&0i64.to_be_bytes());
        assert!(FileLayout::parse(&g).is_err());
    }
}
