//! The reference count database (`refcount.rdb`, `store.md` §5): magic "RefC",
//! the account ID, then one big-endian u32 count per object ID, object *n* at
//! offset `8 + 4*(n-1)`.
//!
//! Owns the byte layout and the "absent means 0, writing past the end extends
//! with zeros" rule. Must not know where the file lives (it is always a plain
//! RaidFile write-file), how counts are rebuilt, or which IDs are plausible:
//! callers that set counts for IDs read from disc bound them first (e.g. by the
//! store info's last object ID), since the table grows to the highest ID set.

use crate::bytes::Reader;
use crate::error::{Error, Result};

/// "RefC".
pub const REFCOUNT_MAGIC: u32 = 0x5265_6643;
/// Bytes before the first count.
pub const REFCOUNT_HEADER_LEN: usize = 8;

const WHAT: &str = "refcount database";

/// An account's reference counts; object `n` is at index `n - 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefCountDatabase {
    pub account_id: u32,
    pub counts: Vec<u32>,
}

impl RefCountDatabase {
    /// An empty database (no object covered yet).
    pub fn new(account_id: u32) -> RefCountDatabase {
        RefCountDatabase {
            account_id,
            counts: Vec::new(),
        }
    }

    /// Parses a whole refcount file. A length that is not 8 plus a multiple of 4
    /// is corrupt (0.13 would silently ignore a partial last count; no writer
    /// produces one).
    pub fn parse(buf: &[u8]) -> Result<RefCountDatabase> {
        let mut r = Reader::new(buf, WHAT);
        let magic = r.u32_be()?;
        if magic != REFCOUNT_MAGIC {
            return Err(Error::BadMagic {
                what: WHAT,
                found: magic,
            });
        }
        let account_id = r.u32_be()?;
        if r.remaining() % 4 != 0 {
            return Err(Error::corrupt(
                WHAT,
                format!(
                    "{} bytes of counts is not a whole number of 4-byte counts",
                    r.remaining()
                ),
            ));
        }
        let mut counts = Vec::with_capacity(r.remaining() / 4);
        while r.remaining() > 0 {
            counts.push(r.u32_be()?);
        }
        Ok(RefCountDatabase { account_id, counts })
    }

    /// Encodes the whole file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(REFCOUNT_HEADER_LEN + 4 * self.counts.len());
        out.extend_from_slice(&REFCOUNT_MAGIC.to_be_bytes());
        out.extend_from_slice(&self.account_id.to_be_bytes());
        for c in &self.counts {
            out.extend_from_slice(&c.to_be_bytes());
        }
        out
    }

    /// The count of `object_id`; 0 for IDs the file does not cover (and for
    /// IDs below 1, which no object has).
    pub fn get(&self, object_id: i64) -> u32 {
        index_of(object_id)
            .and_then(|i| self.counts.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// Sets the count of `object_id`, extending the table with zeros as 0.13
    /// extends the file. IDs below 1 are refused, and so is an extension the
    /// allocator cannot satisfy (an error rather than an abort).
    pub fn set(&mut self, object_id: i64, count: u32) -> Result<()> {
        let i = index_of(object_id).ok_or_else(|| Error::Unencodable {
            what: WHAT,
            detail: format!("object ID {object_id} has no reference count slot"),
        })?;
        if i >= self.counts.len() {
            let more = i + 1 - self.counts.len();
            self.counts
                .try_reserve_exact(more)
                .map_err(|_| Error::Unencodable {
                    what: WHAT,
                    detail: format!("cannot grow the table to object ID {object_id}"),
                })?;
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] = count;
        Ok(())
    }

    /// The highest object ID the file covers, `(file size - 8) / 4`; 0 if none.
    pub fn highest_id(&self) -> i64 {
        self.counts.len() as i64
    }
}

fn index_of(object_id: i64) -> Option<usize> {
    usize::try_from(object_id.checked_sub(1)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fresh_account_vector() {
        let bytes = [0x52, 0x65, 0x66, 0x43, 0, 0, 0, 1, 0, 0, 0, 1];
        let db = RefCountDatabase::parse(&bytes).unwrap();
        assert_eq!(db.account_id, 1);
        assert_eq!(db.counts, vec![1]);
        assert_eq!(db.highest_id(), 1);
        assert_eq!(db.get(1), 1);
        assert_eq!(db.encode(), bytes);

        let mut fresh = RefCountDatabase::new(1);
        fresh.set(1, 1).unwrap();
        assert_eq!(fresh.encode(), bytes);
    }

    #[test]
    fn get_and_set() {
        let mut db = RefCountDatabase::new(0x0123_4567);
        assert_eq!(db.get(5), 0);
        assert_eq!(db.get(0), 0);
        assert_eq!(db.get(-3), 0);
        db.set(5, 1).unwrap();
        assert_eq!(db.counts, vec![0, 0, 0, 0, 1]);
        assert_eq!(db.highest_id(), 5);
        db.set(2, 3).unwrap();
        assert_eq!(db.get(2), 3);
        assert_eq!(db.get(6), 0);
        assert!(db.set(0, 1).is_err());
        assert!(db.set(i64::MIN, 1).is_err());
        // Far beyond any real store: an error value, not an abort.
        assert!(db.set(i64::MAX, 1).is_err());
        assert_eq!(db.highest_id(), 5);
    }

    #[test]
    fn bad_input() {
        assert!(matches!(
            RefCountDatabase::parse(b"RefX\0\0\0\x01"),
            Err(Error::BadMagic { .. })
        ));
        assert!(RefCountDatabase::parse(b"RefC\0\0\0").is_err());
        assert!(matches!(
            RefCountDatabase::parse(b"RefC\0\0\0\x01\0\0"),
            Err(Error::Corrupt { .. })
        ));
        let empty = RefCountDatabase::parse(b"RefC\0\0\0\x01").unwrap();
        assert_eq!(empty.highest_id(), 0);
    }

    proptest! {
        #[test]
        fn round_trip(id: u32, counts in proptest::collection::vec(any::<u32>(), 0..100)) {
            let db = RefCountDatabase { account_id: id, counts };
            prop_assert_eq!(RefCountDatabase::parse(&db.encode()).unwrap(), db);
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = RefCountDatabase::parse(&buf);
        }
    }
}
