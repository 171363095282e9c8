//! The GetObjectName reply stream (`protocol.md` §7.2): `NumNameElements`
//! encoded filenames back to back, leaf first, the root excluded; each name
//! delimits itself through its 2-byte little-endian header. The only §7 payload
//! that belongs to the protocol rather than to bb-format (directories, encoded
//! files and block indexes are `bb_format::{directory, layout, index}`).

use bb_format::EncodedName;

use crate::error::{Error, Result};

/// Appends the names, leaf first as given.
pub fn encode_object_names(names: &[EncodedName], out: &mut Vec<u8>) {
    for n in names {
        out.extend_from_slice(n.as_bytes());
    }
}

/// Reads exactly `count` names that fill `data` exactly; surplus or missing bytes
/// are an error (§6.5: readers check that a structure consumed its stream).
pub fn decode_object_names(data: &[u8], count: i32) -> Result<Vec<EncodedName>> {
    let count = usize::try_from(count)
        .map_err(|_| Error::NameStream(format!("negative name count {count}")))?;
    // Each name takes at least 2 bytes: a hostile count cannot make us reserve
    // more than the data could hold.
    let mut names = Vec::with_capacity(count.min(data.len() / 2));
    let mut pos = 0;
    for _ in 0..count {
        let (name, used) =
            EncodedName::parse(&data[pos..]).map_err(|source| Error::BadFilename {
                what: "object name stream",
                source,
            })?;
        names.push(name);
        pos += used;
    }
    if pos != data.len() {
        return Err(Error::NameStream(format!(
            "{} bytes after {count} names",
            data.len() - pos
        )));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §7.2: hello.txt (L = 18) then src (L = 10), as captured; the middle of
    /// hello.txt's ciphertext is elided in the spec, so its bytes come from §5.2.
    #[test]
    fn captured_names() {
        let hello = [
            0x4a, 0x00, 0x14, 0x73, 0x7c, 0xed, 0xaa, 0x25, 0x8b, 0x56, 0x76, 0x91, 0x3c, 0x38,
            0x0e, 0x96, 0x39, 0x26,
        ];
        let src = [0x2a, 0x00, 0x7a, 0x2f, 0xd3, 0x31, 0x38, 0x8a, 0x99, 0x75];
        let mut data = hello.to_vec();
        data.extend_from_slice(&src);
        assert_eq!(data.len(), 28);
        let names = decode_object_names(&data, 2).unwrap();
        assert_eq!(names[0].as_bytes(), hello);
        assert_eq!(names[1].as_bytes(), src);
        let mut back = Vec::new();
        encode_object_names(&names, &mut back);
        assert_eq!(back, data);
        assert!(decode_object_names(&data, 1).is_err()); // surplus
        assert!(decode_object_names(&data, 3).is_err()); // missing
        assert!(decode_object_names(&data, -1).is_err());
        assert!(decode_object_names(&[], i32::MAX).is_err());
        assert_eq!(decode_object_names(&[], 0).unwrap(), vec![]);
    }
}
