//! The store info file (`info`, `store.md` §4): an account's counters, limits,
//! client store marker and enabled flag.
//!
//! Reads the current format (v2, magic "INF2", `Archive` fields, §4.1) and the
//! legacy v1 format (fixed 88-byte header, §4.2); always writes v2. Whatever
//! follows the last known field is kept verbatim as [`StoreInfo::extra_data`] and
//! written back, so a newer server's additions survive a rewrite by this one.
//!
//! Must not know: where the file lives (RaidFile), which account the caller
//! expected (0.13 checks the account ID against the one it asked for; that is the
//! caller's job), or how the counters are recomputed.

use crate::archive::{ArchiveReader, ArchiveWriter};
use crate::bytes::Reader;
use crate::error::{Error, Result};

/// "INF2": the current store info magic.
pub const INFO_MAGIC_V2: u32 = 0x494E_4632;
/// The legacy (v1) store info magic, read only.
pub const INFO_MAGIC_V1: u32 = 0x3483_2476;
/// Bytes in the v1 fixed header, up to and including the deleted-directory count.
pub const INFO_V1_HEADER_LEN: usize = 88;

const WHAT: &str = "store info";

/// The store info of one account, every v2 field in file order.
///
/// All block counts are in blocks of the disc set's block size (`store.md` §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// The account ID (a signed 32-bit value in 0.13; the bits are what matter).
    pub account_id: u32,
    /// Cosmetic account name, raw bytes (empty unless set with `bbstoreaccounts name`).
    pub account_name: Vec<u8>,
    /// Opaque value set by the client to detect foreign changes; 0 = none.
    pub client_store_marker: i64,
    /// Highest object ID handed out so far (starts at 1, the root directory).
    pub last_object_id_used: i64,
    pub blocks_used: i64,
    pub blocks_in_current_files: i64,
    pub blocks_in_old_files: i64,
    pub blocks_in_deleted_files: i64,
    pub blocks_in_directories: i64,
    pub blocks_soft_limit: i64,
    pub blocks_hard_limit: i64,
    pub num_current_files: i64,
    pub num_old_files: i64,
    pub num_deleted_files: i64,
    pub num_directories: i64,
    /// Serialized but never used by 0.13 (always empty in practice).
    pub deleted_directories: Vec<i64>,
    /// False makes the server refuse logins.
    pub account_enabled: bool,
    /// Bytes after the last known field, kept for forward compatibility.
    pub extra_data: Vec<u8>,
}

impl StoreInfo {
    /// The info of a freshly created account, before its root directory is
    /// accounted for (0.13's `BackupStoreInfo::CreateNew`): last object ID 1,
    /// all counters 0, enabled.
    pub fn new(account_id: u32, blocks_soft_limit: i64, blocks_hard_limit: i64) -> StoreInfo {
        StoreInfo {
            account_id,
            account_name: Vec::new(),
            client_store_marker: 0,
            last_object_id_used: 1,
            blocks_used: 0,
            blocks_in_current_files: 0,
            blocks_in_old_files: 0,
            blocks_in_deleted_files: 0,
            blocks_in_directories: 0,
            blocks_soft_limit,
            blocks_hard_limit,
            num_current_files: 0,
            num_old_files: 0,
            num_deleted_files: 0,
            num_directories: 0,
            deleted_directories: Vec::new(),
            account_enabled: true,
            extra_data: Vec::new(),
        }
    }

    /// Parses a v2 or v1 info file (the whole file).
    pub fn parse(buf: &[u8]) -> Result<StoreInfo> {
        let mut r = Reader::new(buf, WHAT);
        match r.u32_be()? {
            INFO_MAGIC_V2 => Self::parse_v2(ArchiveReader::from_reader(r, WHAT)),
            INFO_MAGIC_V1 => Self::parse_v1(r),
            found => Err(Error::BadMagic { what: WHAT, found }),
        }
    }

    fn parse_v2(mut a: ArchiveReader<'_>) -> Result<StoreInfo> {
        let account_id = a.int()? as u32;
        let account_name = a.string()?.to_vec();
        let client_store_marker = a.int64()?;
        let last_object_id_used = a.int64()?;
        let blocks_used = a.int64()?;
        let blocks_in_current_files = a.int64()?;
        let blocks_in_old_files = a.int64()?;
        let blocks_in_deleted_files = a.int64()?;
        let blocks_in_directories = a.int64()?;
        let blocks_soft_limit = a.int64()?;
        let blocks_hard_limit = a.int64()?;
        let num_current_files = a.int64()?;
        let num_old_files = a.int64()?;
        let num_deleted_files = a.int64()?;
        let num_directories = a.int64()?;
        let count = a.int64()?;
        let deleted_directories = read_deleted_directories(a.reader(), count)?;
        let account_enabled = a.bool_if_present(true)?;
        let extra_data = a.rest().to_vec();
        Ok(StoreInfo {
            account_id,
            account_name,
            client_store_marker,
            last_object_id_used,
            blocks_used,
            blocks_in_current_files,
            blocks_in_old_files,
            blocks_in_deleted_files,
            blocks_in_directories,
            blocks_soft_limit,
            blocks_hard_limit,
            num_current_files,
            num_old_files,
            num_deleted_files,
            num_directories,
            deleted_directories,
            account_enabled,
            extra_data,
        })
    }

    fn parse_v1(mut r: Reader<'_>) -> Result<StoreInfo> {
        if r.remaining() + 4 < INFO_V1_HEADER_LEN {
            return Err(Error::Truncated {
                what: WHAT,
                offset: 4,
                need: INFO_V1_HEADER_LEN - 4,
                have: r.remaining(),
            });
        }
        let account_id = r.u32_be()?;
        let client_store_marker = r.i64_be()?;
        let last_object_id_used = r.i64_be()?;
        let blocks_used = r.i64_be()?;
        let blocks_in_old_files = r.i64_be()?;
        let blocks_in_deleted_files = r.i64_be()?;
        let blocks_in_directories = r.i64_be()?;
        let blocks_soft_limit = r.i64_be()?;
        let blocks_hard_limit = r.i64_be()?;
        // Current mark number and "options present": read and ignored by 0.13.
        let _mark = r.u32_be()?;
        let _options = r.u32_be()?;
        let count = r.i64_be()?;
        let deleted_directories = read_deleted_directories(&mut r, count)?;
        // v1 has no name, current-file blocks, file counts or enabled flag: they
        // are what a fresh account has. Everything left over is extra data.
        Ok(StoreInfo {
            client_store_marker,
            last_object_id_used,
            blocks_used,
            blocks_in_old_files,
            blocks_in_deleted_files,
            blocks_in_directories,
            deleted_directories,
            extra_data: r.rest().to_vec(),
            ..StoreInfo::new(account_id, blocks_soft_limit, blocks_hard_limit)
        })
    }

    /// Encodes as v2 (the only format 0.13 writes).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = ArchiveWriter::from_vec(Vec::with_capacity(
            128 + self.account_name.len()
                + 8 * self.deleted_directories.len()
                + self.extra_data.len(),
        ));
        w.raw(&INFO_MAGIC_V2.to_be_bytes());
        w.int(self.account_id as i32);
        w.string(&self.account_name)?;
        w.int64(self.client_store_marker)
            .int64(self.last_object_id_used)
            .int64(self.blocks_used)
            .int64(self.blocks_in_current_files)
            .int64(self.blocks_in_old_files)
            .int64(self.blocks_in_deleted_files)
            .int64(self.blocks_in_directories)
            .int64(self.blocks_soft_limit)
            .int64(self.blocks_hard_limit)
            .int64(self.num_current_files)
            .int64(self.num_old_files)
            .int64(self.num_deleted_files)
            .int64(self.num_directories)
            .int64(self.deleted_directories.len() as i64);
        for id in &self.deleted_directories {
            w.int64(*id);
        }
        w.bool(self.account_enabled);
        w.raw(&self.extra_data);
        Ok(w.into_inner())
    }
}

/// Reads `count` big-endian int64 IDs, checking the count against the bytes
/// present before allocating (the count comes from disc).
fn read_deleted_directories(r: &mut Reader<'_>, count: i64) -> Result<Vec<i64>> {
    let n = usize::try_from(count)
        .map_err(|_| Error::corrupt(WHAT, format!("negative deleted-directory count {count}")))?;
    if n > r.remaining() / 8 {
        return Err(Error::Truncated {
            what: WHAT,
            offset: r.position(),
            need: n.saturating_mul(8),
            have: r.remaining(),
        });
    }
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(r.i64_be()?);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::unhex;
    use proptest::prelude::*;

    /// store.md §4.1: a fresh account (ID 1, 2048-byte blocks, limits 10M/20M)
    /// after its root directory was written.
    const FRESH: &str = "494e4632 00000001 00000000
        0000000000000000 0000000000000001
        0000000000000002 0000000000000000
        0000000000000000 0000000000000000
        0000000000000002 0000000000001400
        0000000000002800 0000000000000000
        0000000000000000 0000000000000000
        0000000000000001 0000000000000000
        00000001";

    #[test]
    fn fresh_account_vector() {
        let bytes = unhex(FRESH);
        assert_eq!(bytes.len(), 128);
        let info = StoreInfo::parse(&bytes).unwrap();
        let mut expected = StoreInfo::new(1, 5120, 10240);
        expected.blocks_used = 2;
        expected.blocks_in_directories = 2;
        expected.num_directories = 1;
        assert_eq!(info, expected);
        assert_eq!(info.encode().unwrap(), bytes);
    }

    #[test]
    fn enabled_is_optional_and_extra_data_is_kept() {
        let mut bytes = unhex(FRESH);
        bytes.truncate(124);
        let info = StoreInfo::parse(&bytes).unwrap();
        assert!(info.account_enabled);
        assert!(info.extra_data.is_empty());
        // Written back with the field present, as 0.13 does.
        assert_eq!(info.encode().unwrap(), unhex(FRESH));

        let mut bytes = unhex(FRESH);
        bytes[127] = 0;
        bytes.extend_from_slice(b"future");
        let info = StoreInfo::parse(&bytes).unwrap();
        assert!(!info.account_enabled);
        assert_eq!(info.extra_data, b"future");
        assert_eq!(info.encode().unwrap(), bytes);

        // Two stray bytes where the enabled word would be: truncated, not absent.
        let mut bytes = unhex(FRESH);
        bytes.truncate(126);
        assert!(matches!(
            StoreInfo::parse(&bytes),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn legacy_v1() {
        let mut v1 = Vec::new();
        v1.extend_from_slice(&INFO_MAGIC_V1.to_be_bytes());
        v1.extend_from_slice(&7u32.to_be_bytes());
        for x in [11i64, 12, 13, 14, 15, 16, 17, 18] {
            v1.extend_from_slice(&x.to_be_bytes());
        }
        v1.extend_from_slice(&99u32.to_be_bytes()); // mark, ignored
        v1.extend_from_slice(&1u32.to_be_bytes()); // options, ignored
        v1.extend_from_slice(&2i64.to_be_bytes());
        assert_eq!(v1.len(), INFO_V1_HEADER_LEN);
        v1.extend_from_slice(&0x20i64.to_be_bytes());
        v1.extend_from_slice(&0x21i64.to_be_bytes());
        v1.extend_from_slice(b"xyz");
        let info = StoreInfo::parse(&v1).unwrap();
        assert_eq!(info.account_id, 7);
        assert_eq!(info.client_store_marker, 11);
        assert_eq!(info.last_object_id_used, 12);
        assert_eq!(info.blocks_used, 13);
        assert_eq!(info.blocks_in_old_files, 14);
        assert_eq!(info.blocks_in_deleted_files, 15);
        assert_eq!(info.blocks_in_directories, 16);
        assert_eq!(info.blocks_soft_limit, 17);
        assert_eq!(info.blocks_hard_limit, 18);
        assert_eq!(info.blocks_in_current_files, 0);
        assert_eq!(info.num_directories, 0);
        assert_eq!(info.deleted_directories, vec![0x20, 0x21]);
        assert!(info.account_enabled);
        assert_eq!(info.extra_data, b"xyz");
        // Rewritten as v2, which reads back the same.
        let v2 = info.encode().unwrap();
        assert_eq!(&v2[..4], b"INF2");
        assert_eq!(StoreInfo::parse(&v2).unwrap(), info);
        assert!(StoreInfo::parse(&v1[..87]).is_err());
    }

    #[test]
    fn hostile_input() {
        assert!(matches!(
            StoreInfo::parse(b"INF3"),
            Err(Error::BadMagic { .. })
        ));
        assert!(StoreInfo::parse(&[]).is_err());
        // A huge deleted-directory count must fail before allocating.
        let mut bytes = unhex(FRESH);
        bytes[116..124].copy_from_slice(&i64::MAX.to_be_bytes());
        assert!(matches!(
            StoreInfo::parse(&bytes),
            Err(Error::Truncated { .. })
        ));
        bytes[116..124].copy_from_slice(&(-1i64).to_be_bytes());
        assert!(matches!(
            StoreInfo::parse(&bytes),
            Err(Error::Corrupt { .. })
        ));
        // A huge name length likewise.
        let mut bytes = unhex(FRESH);
        bytes[8..12].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        assert!(matches!(
            StoreInfo::parse(&bytes),
            Err(Error::Truncated { .. })
        ));
    }

    fn arb_info() -> impl Strategy<Value = StoreInfo> {
        (
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..20),
            proptest::array::uniform13(any::<i64>()),
            proptest::collection::vec(any::<i64>(), 0..5),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..12),
        )
            .prop_map(|(id, name, n, dd, en, extra)| StoreInfo {
                account_id: id,
                account_name: name,
                client_store_marker: n[0],
                last_object_id_used: n[1],
                blocks_used: n[2],
                blocks_in_current_files: n[3],
                blocks_in_old_files: n[4],
                blocks_in_deleted_files: n[5],
                blocks_in_directories: n[6],
                blocks_soft_limit: n[7],
                blocks_hard_limit: n[8],
                num_current_files: n[9],
                num_old_files: n[10],
                num_deleted_files: n[11],
                num_directories: n[12],
                deleted_directories: dd,
                account_enabled: en,
                extra_data: extra,
            })
    }

    proptest! {
        #[test]
        fn round_trip(info in arb_info()) {
            let bytes = info.encode().unwrap();
            prop_assert_eq!(StoreInfo::parse(&bytes).unwrap(), info);
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..160)) {
            let _ = StoreInfo::parse(&buf);
            let mut v2 = INFO_MAGIC_V2.to_be_bytes().to_vec();
            v2.extend_from_slice(&buf);
            let _ = StoreInfo::parse(&v2);
            let mut v1 = INFO_MAGIC_V1.to_be_bytes().to_vec();
            v1.extend_from_slice(&buf);
            let _ = StoreInfo::parse(&v1);
        }
    }
}
