//! Object framing (`protocol.md` §2.2): an 8-byte header, then the fields.
//!
//! ```text
//! offset size
//! 0      4    ObjSize  u32 BE, whole object INCLUDING this header, 8..=16384
//! 4      4    ObjType  u32 BE, message type (§3.1); 0xFFFFFFFF = a stream header
//! 8      n    fields, in declaration order, no padding
//! ```
//!
//! Owns the header and the size limit; knows nothing of what the fields mean.
//! The header alone is enough to reject an object (bad size, stream header, unknown
//! type), so a receiver never buffers more than [`MAX_OBJECT_SIZE`] bytes.

use crate::error::{Error, Result};

/// Length of an object header (and of a stream header, §2.5).
pub const OBJECT_HEADER_LEN: usize = 8;

/// Largest object either side sends or accepts (`PROTOCOL_DEFAULT_MAXOBJSIZE`).
pub const MAX_OBJECT_SIZE: usize = 16384;

/// The type number reserved for stream headers (`SPECIAL_STREAM_OBJECT_TYPE`).
pub const STREAM_OBJECT_TYPE: u32 = 0xFFFF_FFFF;

/// Reads an object header from the front of `buf`: `(size, type)`, size checked.
///
/// `Ok(None)` if fewer than 8 bytes are there. A stream header is an error here:
/// where an object is expected 0.13 treats it as fatal.
pub fn decode_header(buf: &[u8]) -> Result<Option<(usize, u32)>> {
    let Some(h) = buf.get(..OBJECT_HEADER_LEN) else {
        return Ok(None);
    };
    let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let kind = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    if kind == STREAM_OBJECT_TYPE {
        return Err(Error::StreamWhereObjectExpected);
    }
    if (size as usize) < OBJECT_HEADER_LEN || size as usize > MAX_OBJECT_SIZE {
        return Err(Error::ObjectSize { size });
    }
    Ok(Some((size as usize, kind)))
}

/// Splits one whole object off the front of `buf`: `(type, body, bytes used)`.
///
/// `check_type` runs on the type number as soon as the header is in, so an
/// unwanted type fails before its body has arrived.
pub fn split_object(
    buf: &[u8],
    check_type: impl FnOnce(u32) -> Result<()>,
) -> Result<Option<(u32, &[u8], usize)>> {
    let Some((size, kind)) = decode_header(buf)? else {
        return Ok(None);
    };
    check_type(kind)?;
    let Some(body) = buf.get(OBJECT_HEADER_LEN..size) else {
        return Ok(None);
    };
    Ok(Some((kind, body, size)))
}

/// Starts an object in `out`; [`finish_object`] fills in its size.
pub(crate) fn begin_object(out: &mut Vec<u8>, kind: u32) -> usize {
    let start = out.len();
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    start
}

/// Writes the size of the object begun at `start`; the object is removed again if
/// it is too big, so `out` is left as it was.
pub(crate) fn finish_object(out: &mut Vec<u8>, start: usize) -> std::result::Result<(), usize> {
    let size = out.len() - start;
    if size > MAX_OBJECT_SIZE {
        out.truncate(start);
        return Err(size);
    }
    out[start..start + 4].copy_from_slice(&(size as u32).to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_limits() {
        let h = |size: u32, kind: u32| {
            let mut v = size.to_be_bytes().to_vec();
            v.extend_from_slice(&kind.to_be_bytes());
            v
        };
        assert_eq!(decode_header(&h(8, 4)[..7]).unwrap(), None);
        assert_eq!(decode_header(&h(8, 4)).unwrap(), Some((8, 4)));
        assert_eq!(decode_header(&h(16384, 30)).unwrap(), Some((16384, 30)));
        assert!(matches!(
            decode_header(&h(16385, 30)),
            Err(Error::ObjectSize { size: 16385 })
        ));
        assert!(matches!(
            decode_header(&h(7, 4)),
            Err(Error::ObjectSize { size: 7 })
        ));
        assert!(matches!(
            decode_header(&h(0x28, STREAM_OBJECT_TYPE)),
            Err(Error::StreamWhereObjectExpected)
        ));
        // The body is waited for only after the type passed.
        let mut obj = h(12, 1);
        assert_eq!(split_object(&obj, |_| Ok(())).unwrap(), None);
        assert!(split_object(&obj, |t| Err(Error::UnknownType(t))).is_err());
        obj.extend_from_slice(&[0, 0, 0, 1, 0xaa]);
        let (kind, body, used) = split_object(&obj, |_| Ok(())).unwrap().unwrap();
        assert_eq!((kind, body, used), (1, &[0, 0, 0, 1][..], 12));
    }
}
