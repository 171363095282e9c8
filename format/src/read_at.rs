//! Positional reads from a source of known length: what the streaming
//! transforms ([`crate::combine::stream`]) read stored objects and uploads
//! through, so that a large file never has to be in memory.
//!
//! Owns: the [`ReadAt`] trait, its implementations for bytes in memory, and a
//! helper that loops over short reads. Must not know: files, RaidFiles or
//! objects; the store implements the trait on its own readers.

use std::io;

/// A source of `len()` bytes read at any offset.
///
/// `read_at` may return fewer bytes than asked (a caller loops); it returns 0
/// only at or past the end. A source that returns 0 before `len()` is treated as
/// having shrunk, an I/O error.
pub trait ReadAt {
    /// Total bytes in the source.
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads up to `buf.len()` bytes at `offset`.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

fn slice_read_at(data: &[u8], buf: &mut [u8], offset: u64) -> usize {
    let start = offset.min(data.len() as u64) as usize;
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}

impl ReadAt for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        Ok(slice_read_at(self, buf, offset))
    }
}

impl ReadAt for Vec<u8> {
    fn len(&self) -> u64 {
        Vec::len(self) as u64
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        Ok(slice_read_at(self, buf, offset))
    }
}

/// The cursor's position is ignored: reads are positional. A
/// `Cursor<Vec<u8>>` is both a `Write` sink and a `ReadAt` source, which makes
/// it a scratch object in memory for [`crate::combine::stream::rebuild`].
impl<T: AsRef<[u8]>> ReadAt for io::Cursor<T> {
    fn len(&self) -> u64 {
        self.get_ref().as_ref().len() as u64
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        Ok(slice_read_at(self.get_ref().as_ref(), buf, offset))
    }
}

impl<R: ReadAt + ?Sized> ReadAt for &mut R {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
}

impl<R: ReadAt + ?Sized> ReadAt for Box<R> {
    fn len(&self) -> u64 {
        (**self).len()
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }
}

/// Fills `buf` from `offset`, looping over short reads. Running out before the
/// buffer is full is `UnexpectedEof`.
pub fn read_exact_at<R: ReadAt + ?Sized>(
    src: &mut R,
    buf: &mut [u8],
    offset: u64,
) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match src.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "source of {} bytes ended at {} (reading {} bytes at {offset})",
                        src.len(),
                        offset + done as u64,
                        buf.len()
                    ),
                ));
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns at most 3 bytes per call, to exercise the loops.
    struct Dribble(Vec<u8>);

    impl ReadAt for Dribble {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let n = buf.len().min(3);
            Ok(slice_read_at(&self.0, &mut buf[..n], offset))
        }
    }

    #[test]
    fn short_reads_are_looped_and_eof_is_an_error() {
        let mut d = Dribble((0..20).collect());
        let mut b = [0u8; 10];
        read_exact_at(&mut d, &mut b, 5).unwrap();
        assert_eq!(b, [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        let e = read_exact_at(&mut d, &mut b, 15).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let mut s: &[u8] = &[1, 2, 3];
        assert_eq!(ReadAt::len(&s), 3);
        assert_eq!(s.read_at(&mut b, 7).unwrap(), 0);
        let mut c = io::Cursor::new(vec![1u8, 2, 3]);
        assert_eq!(c.read_at(&mut b, 1).unwrap(), 2);
        assert_eq!(&b[..2], &[2, 3]);
    }
}
