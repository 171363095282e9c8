//! Field encodings inside an object body (`protocol.md` §2.3, §2.4): big-endian
//! integers, 0.13's one-byte bool, the int32-prefixed String and self-delimiting
//! encoded filenames. Private: the message structs are the public face.
//!
//! Reads are bounded by the body, which the object header already limited to
//! 16 KiB, so no length read here can make us allocate more than that.

use bb_format::EncodedName;

use crate::error::{Error, Result};
use crate::message::MessageType;

/// A cursor over one object's body; errors name the message and the field.
pub(crate) struct BodyReader<'a> {
    body: &'a [u8],
    pos: usize,
    message: MessageType,
}

impl<'a> BodyReader<'a> {
    pub(crate) fn new(body: &'a [u8], message: MessageType) -> Self {
        BodyReader {
            body,
            pos: 0,
            message,
        }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        let s = self
            .body
            .get(self.pos..)
            .and_then(|rest| rest.get(..n))
            .ok_or(Error::BodyTruncated {
                message: self.message,
                field,
            })?;
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    /// Fails if bytes are left over: 0.13 has no optional or trailing fields.
    pub(crate) fn finish(self) -> Result<()> {
        let extra = self.body.len() - self.pos;
        if extra != 0 {
            return Err(Error::BodyTrailing {
                message: self.message,
                extra,
            });
        }
        Ok(())
    }
}

/// A protocol field type: how it is written and read.
pub(crate) trait Field: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(r: &mut BodyReader<'_>, field: &'static str) -> Result<Self>;
}

impl Field for i16 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn get(r: &mut BodyReader<'_>, field: &'static str) -> Result<Self> {
        Ok(i16::from_be_bytes(r.array(field)?))
    }
}

impl Field for i32 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn get(r: &mut BodyReader<'_>, field: &'static str) -> Result<Self> {
        Ok(i32::from_be_bytes(r.array(field)?))
    }
}

impl Field for i64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn get(r: &mut BodyReader<'_>, field: &'static str) -> Result<Self> {
        Ok(i64::from_be_bytes(r.array(field)?))
    }
}

/// The protocol declares attribute hashes int64; they are 64 opaque bits, held as
/// u64 like bb-format's directory entries. Same 8 big-endian bytes on the wire.
impl Field for u64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
    fn get(r: &mut BodyReader<'_>, field: &'static str) -> Result<Self> {
        Ok(u64::from_be_bytes(r.array(field)?))
    }
}

/// 0.13 writes 0 or 1 and reads true only for exactly 1; 2..=255 read as false
/// without an error (§2.3, checked against the Debian build).
impl Field for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn get(r: &mut BodyReader<'_>, field: &'static str) -> Result<Self> {
        Ok(r.array::<1>(field)?[0] == 1)
    }
}

/// The protocol's `String`: int32 BE length, then raw bytes (not necessarily UTF-8).
impl Field for Vec<u8> {
    fn put(&self, out: &mut Vec<u8>) {
        // A string longer than i32::MAX cannot fit an object; the object size check
        // in encode rejects it before anything is sent.
        out.extend_from_slice(&(self.len() as i32).to_be_bytes());
        out.extend_from_slice(self);
    }
    fn get(r: &mut BodyReader<'_>, field: &'static str) -> Result<Self> {
        let len = i32::from_be_bytes(r.array(field)?);
        let len = usize::try_from(len).map_err(|_| Error::BadField {
            message: r.message,
            field,
            detail: format!("negative string length {len}"),
        })?;
        Ok(r.take(len, field)?.to_vec())
    }
}

/// An encoded filename is self-delimiting through its little-endian header
/// (§2.4); it has no extra length prefix in an object.
impl Field for EncodedName {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn get(r: &mut BodyReader<'_>, field: &'static str) -> Result<Self> {
        let rest = &r.body[r.pos..];
        let (name, used) = EncodedName::parse(rest).map_err(|e| Error::BadField {
            message: r.message,
            field,
            detail: e.to_string(),
        })?;
        r.pos += used;
        Ok(name)
    }
}
