//! Block-buffered writing to one file on one disc.
//!
//! Owns: a bounded buffer per file that sends writes out in whole multiples of the
//! disc's natural block size (`st_blksize`), aligned to it, so the filesystem never
//! sees a partial-block write in the middle of a file; holes (`skip`) for sparse
//! output; and the unbuffered pass-through mode 0.13 uses, kept for measurement.
//!
//! Must not know: what is being written (write file, stripe, parity).

use std::io;
use std::path::PathBuf;

use crate::discset::Buffering;
use crate::error::{Error, Result};
use crate::fs::{FsFile, write_all_at};

/// Upper bound of one buffer; rounded down to a multiple of the disc's block size.
/// Measured on ext4 over virtio (docs/benchmarks.md): 64 KiB to 256 KiB writes are
/// fastest while another file's fsync is in flight; 1 MiB writes stall behind it
/// (RAID write 2-3x slower), 4 KiB ones cost system calls. The low end of that
/// range: a server holds one per session writing, and hundreds of sessions add up.
pub(crate) const BUFFER_BYTES: u64 = 64 << 10;

/// A file being written sequentially (seeks flush the buffer).
#[derive(Debug)]
pub(crate) struct BlockWriter {
    pub(crate) file: Box<dyn FsFile>,
    pub(crate) path: PathBuf,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    start: u64,
    align: u64,
    cap: u64,
    buffered: bool,
    /// Highest offset written or skipped to (the file's length once flushed).
    end: u64,
}

impl BlockWriter {
    pub(crate) fn new(
        file: Box<dyn FsFile>,
        path: PathBuf,
        buffering: Buffering,
    ) -> Result<BlockWriter> {
        let meta = file.stat().map_err(|e| Error::io("stat", &path, e))?;
        // st_blksize of 0 or absurd values would break the arithmetic; fall back to 4 KiB.
        let align = if (512..=(1 << 24)).contains(&meta.blksize) {
            meta.blksize
        } else {
            4096
        };
        let cap = (BUFFER_BYTES / align).max(1) * align;
        Ok(BlockWriter {
            file,
            path,
            buf: Vec::new(),
            start: 0,
            align,
            cap,
            buffered: buffering == Buffering::Blocks,
            end: meta.len,
        })
    }

    /// Current write position.
    pub(crate) fn position(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    /// Length of the file as written so far (including buffered bytes).
    pub(crate) fn len(&self) -> u64 {
        self.end.max(self.position())
    }

    fn io(&self, op: &'static str, e: io::Error) -> Error {
        Error::io(op, &self.path, e)
    }

    /// How many bytes the buffer may hold before it must go out: up to the next
    /// multiple of `cap` boundary, so that after an unaligned seek the first flush
    /// re-aligns the stream.
    fn room(&self) -> u64 {
        let limit = self.cap - (self.start % self.align);
        limit.saturating_sub(self.buf.len() as u64)
    }

    pub(crate) fn write(&mut self, mut data: &[u8]) -> Result<()> {
        if !self.buffered {
            write_all_at(&*self.file, data, self.start).map_err(|e| self.io("write", e))?;
            self.start += data.len() as u64;
            self.end = self.end.max(self.start);
            return Ok(());
        }
        while !data.is_empty() {
            // Large aligned writes skip the copy into the buffer.
            if self.buf.is_empty() && self.start % self.align == 0 && data.len() as u64 >= self.cap
            {
                let n = (data.len() as u64 / self.align * self.align) as usize;
                write_all_at(&*self.file, &data[..n], self.start)
                    .map_err(|e| self.io("write", e))?;
                self.start += n as u64;
                self.end = self.end.max(self.start);
                data = &data[n..];
                continue;
            }
            let take = (self.room() as usize).min(data.len());
            if self.buf.capacity() == 0 {
                self.buf
                    .reserve_exact((self.cap as usize).min(data.len().max(self.align as usize)));
            }
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.room() == 0 {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Writes out whatever is buffered (the only place a partial block goes out).
    pub(crate) fn flush(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            write_all_at(&*self.file, &self.buf, self.start).map_err(|e| self.io("write", e))?;
            self.start += self.buf.len() as u64;
            self.end = self.end.max(self.start);
            self.buf.clear();
        }
        Ok(())
    }

    /// Moves the write position (flushing first).
    pub(crate) fn seek(&mut self, pos: u64) -> Result<()> {
        self.flush()?;
        self.start = pos;
        Ok(())
    }

    /// Leaves a hole of `n` zero bytes.
    pub(crate) fn skip(&mut self, n: u64) -> Result<()> {
        let to = self.position() + n;
        self.seek(to)
    }

    /// Flushes and makes the length cover skipped holes at the end.
    pub(crate) fn finish(&mut self) -> Result<u64> {
        self.flush()?;
        // Nothing more is written; the buffer would otherwise live on through the
        // commit and transform (a server holds one per session).
        self.buf = Vec::new();
        let len = self.len();
        let on_disc = self.file.stat().map_err(|e| self.io("stat", e))?.len;
        if on_disc < len {
            self.file.set_len(len).map_err(|e| self.io("truncate", e))?;
        }
        Ok(len)
    }

    pub(crate) fn sync(&self) -> Result<()> {
        self.file.sync().map_err(|e| self.io("fsync", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{FaultFs, Op};
    use crate::fs::{Fs, OpenMode};

    #[test]
    fn writes_go_out_in_whole_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::real();
        let path = dir.path().join("f");
        let f = fs.open(&path, OpenMode::CreateRw).unwrap();
        let mut w = BlockWriter::new(f, path.clone(), Buffering::Blocks).unwrap();
        let align = w.align;
        let data: Vec<u8> = (0..(3 * BUFFER_BYTES + 777)).map(|i| i as u8).collect();
        fs.clear_log();
        // Odd-sized pieces, as a caller streaming an object would write them.
        for piece in data.chunks(1000) {
            w.write(piece).unwrap();
        }
        w.finish().unwrap();
        let writes = fs.log().iter().filter(|r| r.op == Op::Write).count();
        assert!(writes <= 5, "{writes} writes");
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert!(align >= 512);
    }

    #[test]
    fn unaligned_seek_realigns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = crate::fs::RealFs.open(&path, OpenMode::CreateRw).unwrap();
        let mut w = BlockWriter::new(f, path.clone(), Buffering::Blocks).unwrap();
        w.write(&[1; 10]).unwrap();
        w.seek(5).unwrap();
        assert_eq!(w.room(), w.cap - 5);
        w.write(&[2; 10]).unwrap();
        w.skip(100).unwrap();
        assert_eq!(w.finish().unwrap(), 115);
        let got = std::fs::read(&path).unwrap();
        assert_eq!(&got[..15], &[1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
        assert!(got[15..].iter().all(|&b| b == 0));
    }
}
