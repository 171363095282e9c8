//! Box Backup's `Archive` encoding (`formats.md` §0), the field codec of the
//! store info file (`store.md` §4) and of the client's state files.
//!
//! Every value is big-endian: `bool` and `int` are 4-byte signed words (a bool
//! is written as 0 or 1 and read as "non-zero"), `int64`/`uint64` are 8 bytes,
//! `uint8` is widened to a 4-byte int, and a string is a 4-byte length followed
//! by the raw bytes with no terminator.
//!
//! Owns only the field codec. Must not know which structure the fields make up:
//! magic numbers, field order and what follows the archived fields (raw arrays,
//! "extra data") belong to the callers, which can mix raw bytes in through
//! [`ArchiveReader::reader`] and [`ArchiveWriter::raw`].

use crate::bytes::Reader;
use crate::error::{Error, Result};

/// Reads `Archive` fields from the front of a slice.
#[derive(Debug, Clone)]
pub struct ArchiveReader<'a> {
    r: Reader<'a>,
    what: &'static str,
}

impl<'a> ArchiveReader<'a> {
    /// A reader over `buf`; `what` names the structure in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        ArchiveReader {
            r: Reader::new(buf, what),
            what,
        }
    }

    /// Continues reading where a plain [`Reader`] stopped (e.g. after a magic);
    /// `what` names the structure in this reader's own errors.
    pub fn from_reader(r: Reader<'a>, what: &'static str) -> Self {
        ArchiveReader { r, what }
    }

    /// The underlying cursor, for raw (non-`Archive`) fields in between.
    pub fn reader(&mut self) -> &mut Reader<'a> {
        &mut self.r
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.r.position()
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.r.remaining()
    }

    /// The unconsumed rest of the input.
    pub fn rest(&self) -> &'a [u8] {
        self.r.rest()
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<()> {
        self.r.finish()
    }

    /// `int`: 4-byte big-endian signed.
    pub fn int(&mut self) -> Result<i32> {
        self.r.i32_be()
    }

    /// `int` that may be missing at the very end of the input, as
    /// `Archive::ReadIfPresent` does: no bytes left gives `default`, one to three
    /// bytes left is a truncated field.
    pub fn int_if_present(&mut self, default: i32) -> Result<i32> {
        if self.r.remaining() == 0 {
            Ok(default)
        } else {
            self.int()
        }
    }

    /// `bool`: a 4-byte int, true when non-zero (0.13 reads it that way).
    pub fn bool(&mut self) -> Result<bool> {
        Ok(self.int()? != 0)
    }

    /// `bool` that may be missing at the very end of the input (see
    /// [`int_if_present`](Self::int_if_present)).
    pub fn bool_if_present(&mut self, default: bool) -> Result<bool> {
        Ok(self.int_if_present(i32::from(default))? != 0)
    }

    /// `int64`: 8-byte big-endian signed.
    pub fn int64(&mut self) -> Result<i64> {
        self.r.i64_be()
    }

    /// `uint64`: 8-byte big-endian unsigned.
    pub fn uint64(&mut self) -> Result<u64> {
        self.r.u64_be()
    }

    /// `uint8`, stored widened to a 4-byte int. 0.13 silently truncates a
    /// value above 255; we call it corrupt, since its own writer cannot
    /// produce one.
    pub fn uint8(&mut self) -> Result<u8> {
        let v = self.int()?;
        u8::try_from(v).map_err(|_| Error::corrupt(self.what, format!("uint8 field holds {v}")))
    }

    /// `string`: 4-byte big-endian length, then the bytes. A negative length is
    /// corrupt; a length beyond the input is truncated (checked before any copy).
    pub fn string(&mut self) -> Result<&'a [u8]> {
        let len = self.int()?;
        let len = usize::try_from(len)
            .map_err(|_| Error::corrupt(self.what, format!("negative string length {len}")))?;
        self.r.take(len)
    }
}

/// Appends `Archive` fields to a buffer.
#[derive(Debug, Clone, Default)]
pub struct ArchiveWriter {
    out: Vec<u8>,
}

impl ArchiveWriter {
    /// An empty writer.
    pub fn new() -> Self {
        ArchiveWriter::default()
    }

    /// Continues an existing buffer (e.g. one that already holds a magic).
    pub fn from_vec(out: Vec<u8>) -> Self {
        ArchiveWriter { out }
    }

    /// The bytes written so far.
    pub fn into_inner(self) -> Vec<u8> {
        self.out
    }

    /// Appends raw bytes that are not an `Archive` field.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    /// `int`: 4-byte big-endian signed.
    pub fn int(&mut self, v: i32) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }

    /// `bool`: written as the int 1 or 0.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.int(i32::from(v))
    }

    /// `int64`: 8-byte big-endian signed.
    pub fn int64(&mut self, v: i64) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }

    /// `uint64`: 8-byte big-endian unsigned.
    pub fn uint64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }

    /// `uint8`, widened to a 4-byte int.
    pub fn uint8(&mut self, v: u8) -> &mut Self {
        self.int(i32::from(v))
    }

    /// `string`: 4-byte length and the bytes. The length is a signed int in
    /// 0.13, so strings over `i32::MAX` bytes cannot be written.
    pub fn string(&mut self, s: &[u8]) -> Result<&mut Self> {
        let len = i32::try_from(s.len()).map_err(|_| Error::Unencodable {
            what: "archive string",
            detail: format!("{} bytes do not fit a signed 32-bit length", s.len()),
        })?;
        self.int(len);
        Ok(self.raw(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn field_encodings() {
        let mut w = ArchiveWriter::new();
        w.bool(true).int(-2).int64(-3).uint64(u64::MAX).uint8(200);
        w.string(b"ab").unwrap();
        let v = w.into_inner();
        assert_eq!(
            v,
            [
                &[0, 0, 0, 1][..],
                &[0xff, 0xff, 0xff, 0xfe],
                &(-3i64).to_be_bytes(),
                &[0xff; 8],
                &[0, 0, 0, 200],
                &[0, 0, 0, 2, b'a', b'b'],
            ]
            .concat()
        );
        let mut r = ArchiveReader::new(&v, "test");
        assert!(r.bool().unwrap());
        assert_eq!(r.int().unwrap(), -2);
        assert_eq!(r.int64().unwrap(), -3);
        assert_eq!(r.uint64().unwrap(), u64::MAX);
        assert_eq!(r.uint8().unwrap(), 200);
        assert_eq!(r.string().unwrap(), b"ab");
        r.finish().unwrap();
    }

    #[test]
    fn bool_reads_any_non_zero_as_true() {
        assert!(ArchiveReader::new(&[0, 0, 1, 0], "t").bool().unwrap());
        assert!(!ArchiveReader::new(&[0, 0, 0, 0], "t").bool().unwrap());
    }

    #[test]
    fn if_present() {
        assert!(ArchiveReader::new(&[], "t").bool_if_present(true).unwrap());
        assert!(!ArchiveReader::new(&[], "t").bool_if_present(false).unwrap());
        assert!(
            !ArchiveReader::new(&[0, 0, 0, 0], "t")
                .bool_if_present(true)
                .unwrap()
        );
        // A partial word is not "absent".
        assert!(matches!(
            ArchiveReader::new(&[0, 0], "t").bool_if_present(true),
            Err(Error::Truncated { what: "t", .. })
        ));
    }

    #[test]
    fn hostile_values() {
        assert!(matches!(
            ArchiveReader::new(&[0xff, 0xff, 0xff, 0xff], "t").string(),
            Err(Error::Corrupt { what: "t", .. })
        ));
        assert!(matches!(
            ArchiveReader::new(&[0x7f, 0xff, 0xff, 0xff, 1], "t").string(),
            Err(Error::Truncated { .. })
        ));
        assert!(ArchiveReader::new(&[0, 0, 1, 0], "t").uint8().is_err());
        assert!(ArchiveReader::new(&[0, 0, 0], "t").int().is_err());
    }

    proptest! {
        #[test]
        fn round_trip(a: bool, b: i32, c: i64, d: u64, e: u8, s in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut w = ArchiveWriter::new();
            w.bool(a).int(b).int64(c).uint64(d).uint8(e).string(&s).unwrap();
            let v = w.into_inner();
            let mut r = ArchiveReader::new(&v, "t");
            prop_assert_eq!(r.bool().unwrap(), a);
            prop_assert_eq!(r.int().unwrap(), b);
            prop_assert_eq!(r.int64().unwrap(), c);
            prop_assert_eq!(r.uint64().unwrap(), d);
            prop_assert_eq!(r.uint8().unwrap(), e);
            prop_assert_eq!(r.string().unwrap(), &s[..]);
            prop_assert!(r.finish().is_ok());
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut r = ArchiveReader::new(&buf, "t");
            let _ = r.string();
            let _ = r.uint8();
            let _ = r.bool_if_present(true);
            let _ = r.int64();
        }
    }
}
