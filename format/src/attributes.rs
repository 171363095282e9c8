//! File attributes (`formats.md` §4): the clear Unix attribute record, its
//! Blowfish encryption, the attribute hash kept in directory entries, and the
//! comparison bbackupd and bbackupquery use.
//!
//! Owns the byte layout of the clear record (38-byte fixed part, symlink target,
//! xattr section), the encrypted wrapper (encoding byte 2, 8-byte IV), the hash
//! recipe with its little-endian quirk, and the comparison rules. Must not know
//! the filesystem: callers stat files and read xattrs themselves and pass the
//! values in, and pass the [`Keys`] in.
//!
//! # Strict decoding
//!
//! [`UnixAttributes::decode_clear`] accepts exactly the records 0.13's writer can
//! produce, so that `encode_clear(decode_clear(x)) == x` for every accepted `x`.
//! That matters because the comparison of §4.5 looks at every byte after the
//! fixed part, and the attribute hash covers the xattr section byte for byte: a
//! value that silently normalised odd input would compare and hash differently
//! from the bytes it came from. So the decoder rejects, as [`Error::Corrupt`],
//! rather than drops:
//!
//! * an attribute type other than 1 (Windows clients store other records);
//! * a symlink mode without a NUL-terminated target;
//! * an xattr section whose length word disagrees with its entries, an entry
//!   with a name that is empty of its NUL or has a NUL inside, names out of
//!   strictly ascending bytewise order, or an empty section (0.13 writes no
//!   section at all when there are no xattrs);
//! * any byte after the xattr section, or one to three stray bytes where a
//!   section would start. 0.13 ignores such bytes on restore but would still
//!   compare them; no 0.13 writer produces them, and keeping unknown bytes would
//!   make two equal-looking values compare unequal.
//!
//! Code that only needs to pass attributes on (the server, a listing) should
//! keep the encrypted blob and never decode it; [`compare_clear`] compares
//! clear records byte-wise without decoding, as 0.13 does.

use crate::BoxTime;
use crate::bytes::Reader;
use crate::crypto;
use crate::error::{Error, Result};
use crate::keys::Keys;

/// Attribute type of the generic Unix record (the only one 0.13 Unix writes).
pub const ATTRIBUTE_TYPE_UNIX: u32 = 1;
/// Encoding byte of an encrypted attribute block: Blowfish-CBC.
pub const ENCODING_BLOWFISH: u8 = 2;
/// Bytes in the fixed part of the clear record.
pub const FIXED_LEN: usize = 38;
/// Encoding byte + IV.
const ENCRYPTED_HEADER_LEN: usize = 1 + 8;

/// File-type mask of a mode.
pub const S_IFMT: u16 = 0o170000;
/// File type: symbolic link.
pub const S_IFLNK: u16 = 0o120000;
/// File type: directory.
pub const S_IFDIR: u16 = 0o040000;
/// File type: regular file.
pub const S_IFREG: u16 = 0o100000;

const WHAT: &str = "attributes";

/// The clear attributes of one file, directory or symlink (`formats.md` §4.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnixAttributes {
    pub uid: u32,
    pub gid: u32,
    /// Modification time; 0 in a directory's own attributes.
    pub mtime: BoxTime,
    /// Attribute modification time (ctime); 0 in a directory's own attributes.
    pub attr_mtime: BoxTime,
    /// BSD `st_flags`; 0 on Linux.
    pub user_flags: u32,
    /// BSD `st_gen`; 0 on Linux. Never compared.
    pub generation: u32,
    /// Low 16 bits of `st_mode`, file-type bits included.
    pub mode: u16,
    /// The link target (no NUL); present iff the mode's type is symlink.
    pub symlink_target: Option<Vec<u8>>,
    /// Extended attributes as (name without NUL, value). Encoded sorted by name,
    /// bytewise, as 0.13 sorts them; decoded values are always sorted.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What [`UnixAttributes::compare`] and [`compare_clear`] may ignore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompareOptions {
    pub ignore_mtime: bool,
    pub ignore_attr_mtime: bool,
}

impl UnixAttributes {
    /// True if the mode's type is symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }

    /// True if the mode's type is directory.
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    /// Encodes the clear record of §4.2.
    ///
    /// Fails if the value cannot be represented: a symlink target present
    /// without a symlink mode or missing with one, a NUL inside the target or an
    /// xattr name, a name of 65535 bytes or more, two xattrs with one name, or a
    /// value or section over 4 GiB.
    pub fn encode_clear(&self) -> Result<Vec<u8>> {
        let section = self.xattr_section()?;
        let target_len = self.symlink_target.as_ref().map_or(0, |t| t.len() + 1);
        let mut out = Vec::with_capacity(FIXED_LEN + target_len + section.len());
        out.extend_from_slice(&ATTRIBUTE_TYPE_UNIX.to_be_bytes());
        out.extend_from_slice(&self.uid.to_be_bytes());
        out.extend_from_slice(&self.gid.to_be_bytes());
        out.extend_from_slice(&self.mtime.to_be_bytes());
        out.extend_from_slice(&self.attr_mtime.to_be_bytes());
        out.extend_from_slice(&self.user_flags.to_be_bytes());
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.mode.to_be_bytes());
        match (&self.symlink_target, self.is_symlink()) {
            (Some(target), true) => {
                if target.contains(&0) {
                    return Err(unencodable("symlink target contains a NUL byte"));
                }
                out.extend_from_slice(target);
                out.push(0);
            }
            (None, false) => {}
            (Some(_), false) => {
                return Err(unencodable(
                    "symlink target given for a mode that is not a symlink",
                ));
            }
            (None, true) => return Err(unencodable("symlink mode without a symlink target")),
        }
        out.extend_from_slice(&section);
        Ok(out)
    }

    /// The xattr section exactly as in the clear record and as hashed (§4.2,
    /// §4.4): a u32 length of the rest, then per xattr, sorted by name, a u16
    /// name length including the NUL, the name, a NUL, a u32 value length and the
    /// value. Empty when there are no xattrs.
    pub fn xattr_section(&self) -> Result<Vec<u8>> {
        if self.xattrs.is_empty() {
            return Ok(Vec::new());
        }
        let mut sorted: Vec<&(Vec<u8>, Vec<u8>)> = self.xattrs.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = vec![0u8; 4];
        for (i, (name, value)) in sorted.iter().enumerate() {
            if i > 0 && sorted[i - 1].0 == *name {
                return Err(unencodable("two extended attributes with the same name"));
            }
            if name.contains(&0) {
                return Err(unencodable("extended attribute name contains a NUL byte"));
            }
            let name_len = u16::try_from(name.len() + 1)
                .map_err(|_| unencodable("extended attribute name over 65534 bytes"))?;
            let value_len = u32::try_from(value.len())
                .map_err(|_| unencodable("extended attribute value over 4 GiB"))?;
            out.extend_from_slice(&name_len.to_be_bytes());
            out.extend_from_slice(name);
            out.push(0);
            out.extend_from_slice(&value_len.to_be_bytes());
            out.extend_from_slice(value);
        }
        let rest = u32::try_from(out.len() - 4)
            .map_err(|_| unencodable("extended attribute section over 4 GiB"))?;
        out[..4].copy_from_slice(&rest.to_be_bytes());
        Ok(out)
    }

    /// Decodes a clear record, strictly (see the module docs).
    pub fn decode_clear(clear: &[u8]) -> Result<UnixAttributes> {
        let mut r = Reader::new(clear, WHAT);
        let kind = r.u32_be()?;
        if kind != ATTRIBUTE_TYPE_UNIX {
            return Err(Error::corrupt(
                WHAT,
                format!("attribute type {kind}; only 1 (generic Unix) is understood"),
            ));
        }
        let mut a = UnixAttributes {
            uid: r.u32_be()?,
            gid: r.u32_be()?,
            mtime: r.i64_be()?,
            attr_mtime: r.i64_be()?,
            user_flags: r.u32_be()?,
            generation: r.u32_be()?,
            mode: r.u16_be()?,
            symlink_target: None,
            xattrs: Vec::new(),
        };
        if a.is_symlink() {
            let rest = r.rest();
            let nul = rest.iter().position(|&b| b == 0).ok_or_else(|| {
                Error::corrupt(WHAT, "symlink attributes without a NUL-terminated target")
            })?;
            a.symlink_target = Some(r.take(nul)?.to_vec());
            r.take(1)?;
        }
        match r.remaining() {
            0 => {}
            1..=3 => {
                return Err(Error::corrupt(
                    WHAT,
                    format!("{} stray bytes after the fixed part", r.remaining()),
                ));
            }
            _ => a.xattrs = decode_xattr_section(&mut r)?,
        }
        r.finish()?;
        Ok(a)
    }

    /// Compares as bbackupd does (§4.5): attribute type, uid, gid, user flags and
    /// mode must be equal; mtime and attr-mtime are compared in whole seconds
    /// unless ignored; symlink target and xattrs must be equal. The generation
    /// number is not compared.
    ///
    /// Gives the same answer as [`compare_clear`] on the two encodings.
    pub fn compare(&self, other: &UnixAttributes, how: CompareOptions) -> bool {
        self.uid == other.uid
            && self.gid == other.gid
            && self.user_flags == other.user_flags
            && self.mode == other.mode
            && (how.ignore_mtime || seconds(self.mtime) == seconds(other.mtime))
            && (how.ignore_attr_mtime || seconds(self.attr_mtime) == seconds(other.attr_mtime))
            && self.symlink_target == other.symlink_target
            && same_xattrs(&self.xattrs, &other.xattrs)
    }

    /// The attribute hash of these attributes under `leaf_name` (§4.4).
    ///
    /// 0.13 hashes the full 32-bit `st_mode` from `lstat`; on Linux it fits the
    /// 16-bit mode stored here, so the two agree.
    pub fn attribute_hash(&self, keys: &Keys, leaf_name: &[u8]) -> Result<u64> {
        Ok(attribute_hash(
            keys,
            self.uid,
            self.gid,
            u32::from(self.mode),
            &self.xattr_section()?,
            leaf_name,
        ))
    }

    /// Encodes and encrypts with a random IV.
    pub fn encrypt(&self, keys: &Keys) -> Result<Vec<u8>> {
        Ok(encrypt(keys, &self.encode_clear()?))
    }

    /// Decrypts and decodes an encrypted block; `None` for an empty block (no
    /// attributes).
    pub fn decrypt(keys: &Keys, blob: &[u8]) -> Result<Option<UnixAttributes>> {
        if blob.is_empty() {
            return Ok(None);
        }
        UnixAttributes::decode_clear(&decrypt(keys, blob)?).map(Some)
    }
}

fn unencodable(detail: &str) -> Error {
    Error::Unencodable {
        what: WHAT,
        detail: detail.to_string(),
    }
}

/// Whole seconds, as 0.13's `BoxTimeToSeconds` (division truncating toward 0).
fn seconds(t: BoxTime) -> i64 {
    t / 1_000_000
}

/// Order-insensitive equality for values that may not be sorted yet; equal to
/// comparing the encoded sections when neither has duplicate names.
fn same_xattrs(a: &[(Vec<u8>, Vec<u8>)], b: &[(Vec<u8>, Vec<u8>)]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut a: Vec<_> = a.iter().collect();
    let mut b: Vec<_> = b.iter().collect();
    a.sort();
    b.sort();
    a == b
}

/// Reads the xattr section at the reader's position (at least 4 bytes remain).
fn decode_xattr_section(r: &mut Reader<'_>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let len = r.u32_be()? as usize;
    if len == 0 {
        return Err(Error::corrupt(WHAT, "empty extended attribute section"));
    }
    let mut s = Reader::new(r.take(len)?, "extended attributes");
    let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    while s.remaining() > 0 {
        let name_len = s.u16_be()? as usize;
        let name = s.take(name_len)?;
        let Some((&0, name)) = name.split_last() else {
            return Err(Error::corrupt(
                WHAT,
                "extended attribute name without its NUL",
            ));
        };
        if name.contains(&0) {
            return Err(Error::corrupt(
                WHAT,
                "extended attribute name contains a NUL byte",
            ));
        }
        if xattrs
            .last()
            .is_some_and(|(prev, _)| prev.as_slice() >= name)
        {
            return Err(Error::corrupt(
                WHAT,
                "extended attribute names not in strictly ascending order",
            ));
        }
        let value = s.mem_block()?;
        xattrs.push((name.to_vec(), value.to_vec()));
    }
    Ok(xattrs)
}

/// Encrypts a clear record with a random IV: `02`, IV, Blowfish-CBC (attributes
/// key, PKCS#7) of `clear` (§4.1).
pub fn encrypt(keys: &Keys, clear: &[u8]) -> Vec<u8> {
    let mut iv = [0u8; 8];
    crypto::random_bytes(&mut iv);
    encrypt_with_iv(keys, &iv, clear)
}

/// [`encrypt`] with a given IV, for reproducible test vectors.
pub fn encrypt_with_iv(keys: &Keys, iv: &[u8; 8], clear: &[u8]) -> Vec<u8> {
    let body = crypto::blowfish_encrypt(keys.attributes_cipher(), iv, clear);
    let mut out = Vec::with_capacity(ENCRYPTED_HEADER_LEN + body.len());
    out.push(ENCODING_BLOWFISH);
    out.extend_from_slice(iv);
    out.extend_from_slice(&body);
    out
}

/// Decrypts an encrypted attribute block to the clear record. An empty block
/// means "no attributes" and gives an empty record.
pub fn decrypt(keys: &Keys, blob: &[u8]) -> Result<Vec<u8>> {
    let Some((&encoding, rest)) = blob.split_first() else {
        return Ok(Vec::new());
    };
    if encoding != ENCODING_BLOWFISH {
        return Err(Error::corrupt(
            WHAT,
            format!("unknown attribute encoding {encoding}; 0.13 writes only 2 (Blowfish)"),
        ));
    }
    let mut r = Reader::new(rest, WHAT);
    let iv: [u8; 8] = r.array()?;
    crypto::blowfish_decrypt(keys.attributes_cipher(), &iv, r.rest(), WHAT)
}

/// The 64-bit attribute hash of §4.4:
/// `md5(uid BE32 || gid BE32 || mode BE32 || xattr section || leaf name || secret)`,
/// whose first eight digest bytes 0.13 reads in host order. Every store in use
/// was written by little-endian clients, so the value is digest bytes 0..8 read
/// as a little-endian u64; directories store that value big-endian.
pub fn attribute_hash(
    keys: &Keys,
    uid: u32,
    gid: u32,
    mode: u32,
    xattr_section: &[u8],
    leaf_name: &[u8],
) -> u64 {
    use md5::Digest;
    let mut h = md5::Md5::new();
    h.update(uid.to_be_bytes());
    h.update(gid.to_be_bytes());
    h.update(mode.to_be_bytes());
    h.update(xattr_section);
    h.update(leaf_name);
    h.update(keys.attribute_hash_secret());
    let digest: [u8; 16] = h.finalize().into();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// Compares two clear records byte-wise as 0.13's `Compare` does (§4.5): equal
/// sizes; equal type, uid, gid, user flags and mode; times in whole seconds
/// unless ignored; equal bytes after the fixed part. Records shorter than the
/// fixed part are equal only if identical (0.13 would read past their end).
pub fn compare_clear(a: &[u8], b: &[u8], how: CompareOptions) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() < FIXED_LEN {
        return a == b;
    }
    let time = |x: &[u8], at: usize| {
        let mut t = [0u8; 8];
        t.copy_from_slice(&x[at..at + 8]);
        seconds(i64::from_be_bytes(t))
    };
    a[0..12] == b[0..12] // type, uid, gid
        && a[28..32] == b[28..32] // user flags
        && a[36..38] == b[36..38] // mode
        && (how.ignore_mtime || time(a, 12) == time(b, 12))
        && (how.ignore_attr_mtime || time(a, 20) == time(b, 20))
        && a[FIXED_LEN..] == b[FIXED_LEN..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{hex, unhex};
    use proptest::prelude::*;

    /// §4.2 clear example: uid/gid 1000, both times 1577934245123456, 0100644.
    fn example() -> UnixAttributes {
        UnixAttributes {
            uid: 1000,
            gid: 1000,
            mtime: 1_577_934_245_123_456,
            attr_mtime: 1_577_934_245_123_456,
            mode: 0o100644,
            ..Default::default()
        }
    }

    const EXAMPLE_CLEAR: &str =
        "00000001 000003e8 000003e8 00059b1f7228d580 00059b1f7228d580 00000000 00000000 81a4";

    #[test]
    fn clear_vector() {
        let clear = example().encode_clear().unwrap();
        assert_eq!(hex(&clear), EXAMPLE_CLEAR.replace(' ', ""));
        assert_eq!(clear.len(), FIXED_LEN);
        assert_eq!(UnixAttributes::decode_clear(&clear).unwrap(), example());
    }

    #[test]
    fn encrypted_vector() {
        let k = Keys::test_vector();
        let enc = encrypt_with_iv(&k, &[0, 1, 2, 3, 4, 5, 6, 7], &unhex(EXAMPLE_CLEAR));
        assert_eq!(
            hex(&enc),
            "020001020304050607ec0a3329d4d8b556a3f88bad1cb3fb33834660e54eeecfdd1cf3fd5f108cb481b188993ffdc0dc65"
        );
        assert_eq!(enc.len(), 49);
        assert_eq!(decrypt(&k, &enc).unwrap(), unhex(EXAMPLE_CLEAR));
        assert_eq!(UnixAttributes::decrypt(&k, &enc).unwrap(), Some(example()));
        // Random IVs differ but decrypt the same.
        let a = example().encrypt(&k).unwrap();
        assert_eq!(UnixAttributes::decrypt(&k, &a).unwrap(), Some(example()));
    }

    /// §4.2: mode 0100640 with `user.abc = "x\1y"` and `user.test = "hello123"`
    /// is 84 clear bytes. The real `hello.txt` object of §8 carries exactly these
    /// (97-byte encrypted block), which pins the layout against 0.13's own bytes.
    #[test]
    fn xattr_example_and_real_object() {
        let mut a = UnixAttributes {
            mode: 0o100640,
            xattrs: vec![
                (b"user.test".to_vec(), b"hello123".to_vec()),
                (b"user.abc".to_vec(), b"x\x01y".to_vec()),
            ],
            ..Default::default()
        };
        let clear = a.encode_clear().unwrap();
        assert_eq!(clear.len(), 84);
        let section = a.xattr_section().unwrap();
        assert_eq!(section.len(), 84 - 38);
        assert_eq!(&section[..4], &42u32.to_be_bytes());
        assert_eq!(&section[4..6], &9u16.to_be_bytes());
        assert_eq!(&section[6..15], b"user.abc\0");
        // Decoding gives them back sorted.
        a.xattrs.sort();
        assert_eq!(UnixAttributes::decode_clear(&clear).unwrap(), a);

        let k = Keys::test_vector();
        let real = unhex(
            "022f3a6ae0eae178e9aa442e36ed77d3b58b9133d019953aed19387291578cf4
             26f1248bd0170a26bc4f8d53bebc945c9e69c2c3c5d38882b07bfaed5f0daf8d
             090dde2e33e16fe4d1b70321028b90589b8c50698a836852a9b6c819e6a5674223",
        );
        let clear = decrypt(&k, &real).unwrap();
        assert_eq!(clear.len(), 84);
        let attrs = UnixAttributes::decode_clear(&clear).unwrap();
        assert_eq!(attrs.mode, 0o100640);
        assert_eq!(attrs.mtime, 0x0005_9b1f_7228_d580);
        assert_eq!(
            attrs.xattrs,
            vec![
                (b"user.abc".to_vec(), b"x\x01y".to_vec()),
                (b"user.test".to_vec(), b"hello123".to_vec())
            ]
        );
        assert_eq!(attrs.encode_clear().unwrap(), clear);
    }

    /// §4.4 example.
    #[test]
    fn hash_vector() {
        let k = Keys::test_vector();
        let h = attribute_hash(&k, 1000, 1000, 0o100644, &[], b"hello.txt");
        assert_eq!(h, 0x8b4d_6db0_199b_9361);
        assert_eq!(
            h.to_be_bytes(),
            [0x8b, 0x4d, 0x6d, 0xb0, 0x19, 0x9b, 0x93, 0x61]
        );
        assert_eq!(example().attribute_hash(&k, b"hello.txt").unwrap(), h);
        // The digest itself, to show where the byte swap comes from.
        let mut input = Vec::new();
        for v in [1000u32, 1000, 0o100644] {
            input.extend_from_slice(&v.to_be_bytes());
        }
        input.extend_from_slice(b"hello.txt");
        input.extend_from_slice(k.attribute_hash_secret());
        assert_eq!(
            hex(&crypto::md5(&input)),
            "61939b19b06d4d8b74f5d0fd628a217f"
        );
    }

    #[test]
    fn symlinks() {
        let a = UnixAttributes {
            mode: 0o120777,
            symlink_target: Some(b"../text.txt".to_vec()),
            xattrs: vec![(b"user.x".to_vec(), vec![])],
            ..Default::default()
        };
        let clear = a.encode_clear().unwrap();
        assert_eq!(&clear[FIXED_LEN..FIXED_LEN + 12], b"../text.txt\0");
        assert_eq!(UnixAttributes::decode_clear(&clear).unwrap(), a);

        // An empty target is still a NUL.
        let empty = UnixAttributes {
            symlink_target: Some(vec![]),
            ..a.clone()
        };
        assert_eq!(
            empty.encode_clear().unwrap().len(),
            FIXED_LEN + 1 + 4 + 2 + 7 + 4
        );

        // Symlink mode without the NUL-terminated target is corrupt.
        let mut bare = a.encode_clear().unwrap();
        bare.truncate(FIXED_LEN);
        assert!(matches!(
            UnixAttributes::decode_clear(&bare),
            Err(Error::Corrupt { .. })
        ));
        bare.extend_from_slice(b"abc");
        assert!(matches!(
            UnixAttributes::decode_clear(&bare),
            Err(Error::Corrupt { .. })
        ));

        // Mode and target must agree when encoding.
        let wrong = UnixAttributes {
            mode: 0o100644,
            ..a.clone()
        };
        assert!(wrong.encode_clear().is_err());
        let missing = UnixAttributes {
            symlink_target: None,
            ..a.clone()
        };
        assert!(missing.encode_clear().is_err());
        let nul = UnixAttributes {
            symlink_target: Some(b"a\0b".to_vec()),
            ..a
        };
        assert!(nul.encode_clear().is_err());
    }

    #[test]
    fn strict_decoding() {
        let base = example().encode_clear().unwrap();
        let with = |tail: &[u8]| [&base[..], tail].concat();
        let dec = |b: &[u8]| UnixAttributes::decode_clear(b);

        assert!(dec(&base[..37]).is_err());
        let mut t = base.clone();
        t[3] = 2;
        assert!(matches!(dec(&t), Err(Error::Corrupt { .. })));
        // Stray bytes and trailing bytes.
        assert!(dec(&with(&[0])).is_err());
        assert!(dec(&with(&[0, 0, 0])).is_err());
        // Empty section.
        assert!(dec(&with(&[0, 0, 0, 0])).is_err());
        // Section length beyond the record.
        assert!(dec(&with(&[0, 0, 0, 9, 0, 2, b'a', 0])).is_err());
        // A good one-entry section: name "a", value "v".
        let good = [0, 0, 0, 9, 0, 2, b'a', 0, 0, 0, 0, 1, b'v'];
        assert_eq!(
            dec(&with(&good)).unwrap().xattrs,
            vec![(b"a".to_vec(), b"v".to_vec())]
        );
        // ... followed by anything is corrupt.
        assert!(dec(&with(&[&good[..], &[0]].concat())).is_err());
        // Name without NUL, name length 0, NUL inside the name.
        assert!(dec(&with(&[0, 0, 0, 9, 0, 2, b'a', b'b', 0, 0, 0, 1, b'v'])).is_err());
        assert!(dec(&with(&[0, 0, 0, 6, 0, 0, 0, 0, 0, 0])).is_err());
        assert!(dec(&with(&[0, 0, 0, 10, 0, 3, 0, b'a', 0, 0, 0, 0, 1, b'v'])).is_err());
        // Value overrunning the section.
        assert!(dec(&with(&[0, 0, 0, 9, 0, 2, b'a', 0, 0, 0, 0, 2, b'v'])).is_err());
        // Out of order and duplicate names.
        let two =
            |x: u8, y: u8| with(&[0, 0, 0, 16, 0, 2, x, 0, 0, 0, 0, 0, 0, 2, y, 0, 0, 0, 0, 0]);
        assert!(dec(&two(b'a', b'b')).is_ok());
        assert!(dec(&two(b'b', b'a')).is_err());
        assert!(dec(&two(b'a', b'a')).is_err());
    }

    #[test]
    fn encrypted_block_errors() {
        let k = Keys::test_vector();
        assert_eq!(decrypt(&k, &[]).unwrap(), Vec::<u8>::new());
        assert_eq!(UnixAttributes::decrypt(&k, &[]).unwrap(), None);
        let good = encrypt_with_iv(&k, &[9; 8], &unhex(EXAMPLE_CLEAR));
        let mut bad = good.clone();
        bad[0] = 1;
        let err = decrypt(&k, &bad).unwrap_err().to_string();
        assert!(err.contains("unknown attribute encoding 1"), "{err}");
        assert!(decrypt(&k, &good[..5]).is_err());
        assert!(decrypt(&k, &good[..9]).is_err());
        assert!(decrypt(&k, &good[..good.len() - 1]).is_err());
    }

    #[test]
    fn comparison() {
        let a = example();
        let how = CompareOptions::default();
        assert!(a.compare(&a, how));
        // Same second, different microseconds: equal.
        let b = UnixAttributes {
            mtime: a.mtime + 1,
            ..a.clone()
        };
        assert!(a.compare(&b, how));
        // Next second: different unless ignored.
        let c = UnixAttributes {
            mtime: a.mtime + 1_000_000,
            attr_mtime: a.attr_mtime - 1_000_000,
            ..a.clone()
        };
        assert!(!a.compare(&c, how));
        assert!(!a.compare(
            &c,
            CompareOptions {
                ignore_mtime: true,
                ..how
            }
        ));
        assert!(a.compare(
            &c,
            CompareOptions {
                ignore_mtime: true,
                ignore_attr_mtime: true
            }
        ));
        // Generation is never compared; mode, ids, flags and xattrs are.
        assert!(a.compare(
            &UnixAttributes {
                generation: 7,
                ..a.clone()
            },
            how
        ));
        assert!(!a.compare(
            &UnixAttributes {
                mode: 0o100600,
                ..a.clone()
            },
            how
        ));
        assert!(!a.compare(
            &UnixAttributes {
                user_flags: 1,
                ..a.clone()
            },
            how
        ));
        assert!(!a.compare(
            &UnixAttributes {
                gid: 1,
                ..a.clone()
            },
            how
        ));
        let x = UnixAttributes {
            xattrs: vec![(b"user.a".to_vec(), vec![])],
            ..a.clone()
        };
        assert!(!a.compare(&x, how));
        // The byte-wise form agrees.
        let enc = |v: &UnixAttributes| v.encode_clear().unwrap();
        assert!(compare_clear(&enc(&a), &enc(&b), how));
        assert!(!compare_clear(&enc(&a), &enc(&c), how));
        assert!(compare_clear(
            &enc(&a),
            &enc(&c),
            CompareOptions {
                ignore_mtime: true,
                ignore_attr_mtime: true
            }
        ));
        assert!(!compare_clear(&enc(&a), &enc(&x), how));
        assert!(!compare_clear(&[1, 2], &[1, 3], how));
        assert!(compare_clear(&[1, 2], &[1, 2], how));
    }

    fn arb_attrs() -> impl Strategy<Value = UnixAttributes> {
        let name = proptest::collection::vec(1u8..=255, 0..12);
        let value = proptest::collection::vec(any::<u8>(), 0..12);
        (
            any::<(u32, u32, i64, i64, u32, u32)>(),
            any::<u16>(),
            proptest::option::of(proptest::collection::vec(1u8..=255, 0..20)),
            proptest::collection::btree_map(name, value, 0..4),
        )
            .prop_map(
                |((uid, gid, mtime, attr_mtime, user_flags, generation), mode, target, x)| {
                    // Keep mode and target consistent, as every real record is.
                    let mode = if target.is_some() {
                        (mode & !S_IFMT) | S_IFLNK
                    } else if mode & S_IFMT == S_IFLNK {
                        mode & !S_IFMT
                    } else {
                        mode
                    };
                    UnixAttributes {
                        uid,
                        gid,
                        mtime,
                        attr_mtime,
                        user_flags,
                        generation,
                        mode,
                        symlink_target: target,
                        xattrs: x.into_iter().collect(),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn clear_round_trip(a in arb_attrs()) {
            let clear = a.encode_clear().unwrap();
            prop_assert_eq!(UnixAttributes::decode_clear(&clear).unwrap(), a);
        }

        #[test]
        fn encrypted_round_trip(a in arb_attrs(), iv: [u8; 8]) {
            let k = Keys::test_vector();
            let clear = a.encode_clear().unwrap();
            let enc = encrypt_with_iv(&k, &iv, &clear);
            prop_assert_eq!(enc.len(), 9 + (clear.len() / 8 + 1) * 8);
            prop_assert_eq!(&decrypt(&k, &enc).unwrap(), &clear);
            prop_assert_eq!(UnixAttributes::decrypt(&k, &a.encrypt(&k).unwrap()).unwrap(), Some(a));
        }

        #[test]
        fn compare_forms_agree(a in arb_attrs(), b in arb_attrs(), same: bool, im: bool, ia: bool) {
            let b = if same { UnixAttributes { mtime: b.mtime, generation: b.generation, ..a.clone() } } else { b };
            let how = CompareOptions { ignore_mtime: im, ignore_attr_mtime: ia };
            let ca = a.encode_clear().unwrap();
            let cb = b.encode_clear().unwrap();
            prop_assert_eq!(a.compare(&b, how), compare_clear(&ca, &cb, how));
        }

        #[test]
        fn decode_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut b = buf.clone();
            if b.len() >= 4 {
                b[..4].copy_from_slice(&1u32.to_be_bytes());
            }
            if let Ok(a) = UnixAttributes::decode_clear(&b) {
                // Anything accepted re-encodes to the same bytes.
                prop_assert_eq!(a.encode_clear().unwrap(), b);
            }
            let k = Keys::test_vector();
            let _ = decrypt(&k, &buf);
        }
    }
}
