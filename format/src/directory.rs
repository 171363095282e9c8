//! Directory objects (`formats.md` §7): a 36-byte header, the directory's own
//! encrypted attributes, the entries, and (iff option bit 0) one 16-byte
//! dependency record per entry.
//!
//! Owns the byte layout, the entry flags, and the two ways a directory is
//! written: as stored (with dependency records when any entry has one) and as a
//! ListDirectory reply (§7.3: filtered entries, never dependency records, header
//! attributes only on request). Must not know what the flags mean for
//! accounting or housekeeping, how attributes decrypt (the blobs are opaque
//! here; see [`crate::attributes`]), or where the object lives.
//!
//! Re-encoding any directory 0.13 wrote gives identical bytes. Two details make
//! that so: option bit 0 is recomputed from the entries on every write, exactly
//! as 0.13 does; and the other option bits, which 0.13 ignores on read and
//! writes as 0 (no 0.13 object has any set), are kept from the parsed header so
//! that `encode(parse(x)) == x` for every accepted `x` whose bit 0 agrees with
//! its entries.

use crate::BoxTime;
use crate::bytes::{Reader, put_mem_block};
use crate::error::{Error, Result};
use crate::filename::EncodedName;

/// "DIR_".
pub const DIR_MAGIC: u32 = 0x4449_525F;
/// Header option bit 0: dependency records follow the entries.
pub const OPTION_DEPENDENCY_INFO: i32 = 1;
/// Bytes in the header.
pub const DIR_HEADER_LEN: usize = 36;
/// Bytes in an entry before its name.
pub const ENTRY_FIXED_LEN: usize = 34;
/// Bytes in one dependency record.
pub const DEPENDENCY_RECORD_LEN: usize = 16;
/// The smallest possible entry: fixed part, a 2-byte name, an empty MemBlock.
const MIN_ENTRY_LEN: usize = ENTRY_FIXED_LEN + 2 + 4;

const WHAT: &str = "directory";

/// A directory object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    pub object_id: i64,
    /// Parent directory; the root (ID 1) is its own container.
    pub container_id: i64,
    /// The directory's ctime as the client last sent it.
    pub attributes_mod_time: BoxTime,
    /// Header options as read. Bit 0 is recomputed on encode; see the module docs.
    pub options: i32,
    /// The directory's own encrypted attributes; empty for none.
    pub attributes: Vec<u8>,
    /// Entries in append order (a newer version of a name is always later).
    pub entries: Vec<Entry>,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file's modification time; 0 for directories made by CreateDirectory.
    pub mtime: BoxTime,
    pub object_id: i64,
    /// Disc usage of the object in blocks of the disc set.
    pub size_in_blocks: i64,
    /// The attribute hash value (`formats.md` §4.4), stored big-endian; 0 for
    /// directories.
    pub attributes_hash: u64,
    /// Bit set of [`Entry::FILE`], [`Entry::DIR`], [`Entry::DELETED`],
    /// [`Entry::OLD_VERSION`], [`Entry::REMOVE_ASAP`].
    pub flags: u16,
    pub name: EncodedName,
    /// Encrypted replacement attributes; usually empty.
    pub attributes: Vec<u8>,
    /// The newer object this one is a patch against; 0 for none.
    pub depends_newer: i64,
    /// The older object that is a patch against this one; 0 for none.
    pub depends_older: i64,
}

/// The flag filters of ListDirectory (§7.2): an entry is listed if it has all of
/// `must_have` (or `must_have` is [`ListFilter::INCLUDE_EVERYTHING`]) and none of
/// `must_not_have`. The fields keep the protocol's signed 16-bit form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListFilter {
    pub must_have: i16,
    pub must_not_have: i16,
}

impl ListFilter {
    /// `must_have` value meaning "no requirement".
    pub const INCLUDE_EVERYTHING: i16 = -1;
    /// `must_not_have` value meaning "exclude nothing".
    pub const EXCLUDE_NOTHING: i16 = 0;
    /// `must_not_have` value excluding every entry that has any flag.
    pub const EXCLUDE_EVERYTHING: i16 = 31;
    /// Every entry.
    pub const EVERYTHING: ListFilter = ListFilter {
        must_have: Self::INCLUDE_EVERYTHING,
        must_not_have: Self::EXCLUDE_NOTHING,
    };

    pub fn new(must_have: i16, must_not_have: i16) -> ListFilter {
        ListFilter {
            must_have,
            must_not_have,
        }
    }

    /// True if an entry with `flags` passes the filter (0.13's `MatchesFlags`).
    pub fn matches(&self, flags: u16) -> bool {
        let flags = flags as i16;
        (self.must_have == Self::INCLUDE_EVERYTHING || flags & self.must_have == self.must_have)
            && flags & self.must_not_have == 0
    }
}

impl Default for ListFilter {
    fn default() -> Self {
        ListFilter::EVERYTHING
    }
}

impl Entry {
    /// The object is an encoded file.
    pub const FILE: u16 = 1;
    /// The object is a directory.
    pub const DIR: u16 = 2;
    /// Deleted on the client.
    pub const DELETED: u16 = 4;
    /// Superseded by a later entry of the same name.
    pub const OLD_VERSION: u16 = 8;
    /// Housekeeping removes it as soon as it is old or deleted (never set by 0.13).
    pub const REMOVE_ASAP: u16 = 16;

    pub fn is_file(&self) -> bool {
        self.flags & Self::FILE != 0
    }
    pub fn is_dir(&self) -> bool {
        self.flags & Self::DIR != 0
    }
    pub fn is_deleted(&self) -> bool {
        self.flags & Self::DELETED != 0
    }
    pub fn is_old_version(&self) -> bool {
        self.flags & Self::OLD_VERSION != 0
    }
    pub fn is_remove_asap(&self) -> bool {
        self.flags & Self::REMOVE_ASAP != 0
    }
    /// Neither old nor deleted (`store.md` §4.3's "current").
    pub fn is_current(&self) -> bool {
        self.flags & (Self::OLD_VERSION | Self::DELETED) == 0
    }
    pub fn add_flags(&mut self, flags: u16) {
        self.flags |= flags;
    }
    pub fn remove_flags(&mut self, flags: u16) {
        self.flags &= !flags;
    }
    /// True if either dependency field is set.
    pub fn has_dependencies(&self) -> bool {
        self.depends_newer != 0 || self.depends_older != 0
    }
    /// True if the entry carries replacement attributes.
    pub fn has_attributes(&self) -> bool {
        !self.attributes.is_empty()
    }

    /// Reads one entry (without its dependency record) from the reader.
    fn parse(r: &mut Reader<'_>) -> Result<Entry> {
        let mtime = r.i64_be()?;
        let object_id = r.i64_be()?;
        let size_in_blocks = r.i64_be()?;
        let attributes_hash = r.u64_be()?;
        let flags = r.u16_be()?;
        let (name, used) = EncodedName::parse(r.rest())?;
        r.take(used)?;
        let attributes = r.mem_block()?.to_vec();
        Ok(Entry {
            mtime,
            object_id,
            size_in_blocks,
            attributes_hash,
            flags,
            name,
            attributes,
            depends_newer: 0,
            depends_older: 0,
        })
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.mtime.to_be_bytes());
        out.extend_from_slice(&self.object_id.to_be_bytes());
        out.extend_from_slice(&self.size_in_blocks.to_be_bytes());
        out.extend_from_slice(&self.attributes_hash.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        put_mem_block(out, &self.attributes)
    }

    fn encoded_len(&self) -> usize {
        ENTRY_FIXED_LEN + self.name.as_bytes().len() + 4 + self.attributes.len()
    }
}

impl Directory {
    /// An empty directory with no attributes, as CreateDirectory or account
    /// creation starts one.
    pub fn new(object_id: i64, container_id: i64) -> Directory {
        Directory {
            object_id,
            container_id,
            attributes_mod_time: 0,
            options: 0,
            attributes: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// Parses a whole directory object (or a ListDirectory reply). The entry
    /// count is checked against the bytes present before anything is allocated,
    /// and every byte must be used.
    pub fn parse(buf: &[u8]) -> Result<Directory> {
        let mut r = Reader::new(buf, WHAT);
        let magic = r.u32_be()?;
        if magic != DIR_MAGIC {
            return Err(Error::BadMagic {
                what: WHAT,
                found: magic,
            });
        }
        let count = r.i32_be()?;
        let object_id = r.i64_be()?;
        let container_id = r.i64_be()?;
        let attributes_mod_time = r.i64_be()?;
        let options = r.i32_be()?;
        let attributes = r.mem_block()?.to_vec();

        let count = usize::try_from(count)
            .map_err(|_| Error::corrupt(WHAT, format!("negative entry count {count}")))?;
        let with_deps = options & OPTION_DEPENDENCY_INFO != 0;
        let min_each = MIN_ENTRY_LEN + if with_deps { DEPENDENCY_RECORD_LEN } else { 0 };
        if count > r.remaining() / min_each {
            return Err(Error::corrupt(
                WHAT,
                format!(
                    "{count} entries cannot fit in the {} bytes left",
                    r.remaining()
                ),
            ));
        }

        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            entries.push(Entry::parse(&mut r)?);
        }
        if with_deps {
            for e in &mut entries {
                e.depends_newer = r.i64_be()?;
                e.depends_older = r.i64_be()?;
            }
        }
        r.finish()?;
        Ok(Directory {
            object_id,
            container_id,
            attributes_mod_time,
            options,
            attributes,
            entries,
        })
    }

    /// Encodes the directory as stored. The dependency section is written, and
    /// option bit 0 set, iff some entry has a non-zero dependency field.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.write(ListFilter::EVERYTHING, true, true)
    }

    /// Encodes every entry as a ListDirectory reply (§7.3): no dependency
    /// records; the header attributes only if `include_attributes`.
    pub fn encode_for_listing(&self, include_attributes: bool) -> Result<Vec<u8>> {
        self.write(ListFilter::EVERYTHING, include_attributes, false)
    }

    /// Encodes the entries that pass `filter` as a ListDirectory reply.
    pub fn encode_listing(&self, filter: ListFilter, include_attributes: bool) -> Result<Vec<u8>> {
        self.write(filter, include_attributes, false)
    }

    /// The entries that pass `filter`, in order.
    pub fn entries_matching(&self, filter: ListFilter) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.iter().filter(move |e| filter.matches(e.flags))
    }

    /// The entry for `object_id`, if any.
    pub fn entry_by_id(&self, object_id: i64) -> Option<&Entry> {
        self.entries.iter().find(|e| e.object_id == object_id)
    }

    /// The entry for `object_id`, if any, for changing it.
    pub fn entry_by_id_mut(&mut self, object_id: i64) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.object_id == object_id)
    }

    /// 0.13's `WriteToStream`: count and dependency decision over the selected
    /// entries only.
    fn write(&self, filter: ListFilter, with_attributes: bool, with_deps: bool) -> Result<Vec<u8>> {
        let selected: Vec<&Entry> = self.entries_matching(filter).collect();
        let count = i32::try_from(selected.len()).map_err(|_| Error::Unencodable {
            what: WHAT,
            detail: format!("{} entries do not fit a 32-bit count", selected.len()),
        })?;
        let deps = with_deps && selected.iter().any(|e| e.has_dependencies());
        let options = (self.options & !OPTION_DEPENDENCY_INFO)
            | if deps { OPTION_DEPENDENCY_INFO } else { 0 };
        let attributes: &[u8] = if with_attributes {
            &self.attributes
        } else {
            &[]
        };

        let len = DIR_HEADER_LEN
            + 4
            + attributes.len()
            + selected.iter().map(|e| e.encoded_len()).sum::<usize>()
            + if deps {
                DEPENDENCY_RECORD_LEN * selected.len()
            } else {
                0
            };
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&DIR_MAGIC.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        out.extend_from_slice(&self.object_id.to_be_bytes());
        out.extend_from_slice(&self.container_id.to_be_bytes());
        out.extend_from_slice(&self.attributes_mod_time.to_be_bytes());
        out.extend_from_slice(&options.to_be_bytes());
        put_mem_block(&mut out, attributes)?;
        for e in &selected {
            e.encode_into(&mut out)?;
        }
        if deps {
            for e in &selected {
                out.extend_from_slice(&e.depends_newer.to_be_bytes());
                out.extend_from_slice(&e.depends_older.to_be_bytes());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keys;
    use crate::test_util::unhex;
    use proptest::prelude::*;

    const FRESH_ROOT: &str =
        "4449525f 00000000 0000000000000001 0000000000000001 0000000000000000 00000000 00000000";

    const ROOT_WITH_SRC: &str =
        "4449525f 00000001 0000000000000001 0000000000000001 0000000000000000 00000000
        00000000
        0000000000000000 0000000000000002 0000000000000002 0000000000000000 0002
        2a004b3a2d420e842dcb 00000000";

    /// §7.1: a freshly created account's root (40 bytes).
    #[test]
    fn fresh_root_vector() {
        let bytes = unhex(FRESH_ROOT);
        assert_eq!(bytes.len(), 40);
        let d = Directory::parse(&bytes).unwrap();
        assert_eq!(d, Directory::new(1, 1));
        assert_eq!(d.encode().unwrap(), bytes);
    }

    /// §8: a root holding the location directory `src` (88 bytes).
    #[test]
    fn root_with_location_vector() {
        let bytes = unhex(ROOT_WITH_SRC);
        assert_eq!(bytes.len(), 88);
        let d = Directory::parse(&bytes).unwrap();
        assert_eq!(d.entries.len(), 1);
        let e = &d.entries[0];
        assert_eq!(
            (e.mtime, e.object_id, e.size_in_blocks, e.attributes_hash),
            (0, 2, 2, 0)
        );
        assert_eq!(e.flags, Entry::DIR);
        assert!(e.is_dir() && !e.is_file() && e.is_current() && !e.has_attributes());
        assert_eq!(e.name.decrypt(&Keys::test_vector()).unwrap(), b"src");
        assert_eq!(d.encode().unwrap(), bytes);

        let mut built = Directory::new(1, 1);
        built.entries.push(Entry {
            mtime: 0,
            object_id: 2,
            size_in_blocks: 2,
            attributes_hash: 0,
            flags: Entry::DIR,
            name: EncodedName::encrypt(&Keys::test_vector(), b"src").unwrap(),
            attributes: vec![],
            depends_newer: 0,
            depends_older: 0,
        });
        assert_eq!(built, d);
    }

    fn entry(id: i64, flags: u16) -> Entry {
        Entry {
            mtime: 100 + id,
            object_id: id,
            size_in_blocks: 1,
            attributes_hash: 0x0102_0304_0506_0708,
            flags,
            name: EncodedName::clear(format!("n{id}").as_bytes()).unwrap(),
            attributes: if id % 2 == 0 { vec![2; 17] } else { vec![] },
            depends_newer: 0,
            depends_older: 0,
        }
    }

    fn sample() -> Directory {
        let mut d = Directory::new(5, 2);
        d.attributes_mod_time = 77;
        d.attributes = vec![2, 9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8];
        d.entries = vec![
            entry(6, Entry::FILE | Entry::OLD_VERSION),
            entry(7, Entry::FILE),
            entry(8, Entry::DIR | Entry::DELETED),
            entry(9, Entry::FILE | Entry::DELETED | Entry::OLD_VERSION),
        ];
        d
    }

    #[test]
    fn dependency_section_follows_the_entries() {
        let mut d = sample();
        let plain = d.encode().unwrap();
        assert_eq!(i32::from_be_bytes(plain[32..36].try_into().unwrap()), 0);

        d.entries[0].depends_newer = 7;
        d.entries[1].depends_older = 6;
        let with = d.encode().unwrap();
        assert_eq!(i32::from_be_bytes(with[32..36].try_into().unwrap()), 1);
        assert_eq!(with.len(), plain.len() + 4 * DEPENDENCY_RECORD_LEN);
        assert_eq!(&with[plain.len()..plain.len() + 8], &7i64.to_be_bytes());
        let back = Directory::parse(&with).unwrap();
        assert_eq!(back.options, 1);
        assert_eq!(
            Directory { options: 0, ..back },
            Directory {
                options: 0,
                ..d.clone()
            }
        );

        // Clearing the last dependency drops the section and the bit.
        let mut back = Directory::parse(&with).unwrap();
        back.entries[0].depends_newer = 0;
        back.entries[1].depends_older = 0;
        assert_eq!(back.encode().unwrap(), plain);

        // Other option bits are kept (0.13 never sets any).
        d.options = 0x40;
        let bytes = d.encode().unwrap();
        assert_eq!(i32::from_be_bytes(bytes[32..36].try_into().unwrap()), 0x41);
        assert_eq!(Directory::parse(&bytes).unwrap().encode().unwrap(), bytes);
    }

    #[test]
    fn listings() {
        let mut d = sample();
        d.entries[0].depends_newer = 7;
        let full = d.encode_for_listing(true).unwrap();
        let l = Directory::parse(&full).unwrap();
        assert_eq!(l.options, 0, "listings never carry dependency records");
        assert_eq!(l.attributes, d.attributes);
        assert_eq!(l.entries.len(), 4);
        assert!(l.entries.iter().all(|e| !e.has_dependencies()));
        // Entry attributes are always sent.
        assert_eq!(l.entries[1].attributes, d.entries[1].attributes);

        let bare = Directory::parse(&d.encode_for_listing(false).unwrap()).unwrap();
        assert!(bare.attributes.is_empty());
        assert_eq!(bare.attributes_mod_time, 77);

        // Current files only: must have File, must not have Deleted or OldVersion.
        let current = ListFilter::new(
            Entry::FILE as i16,
            (Entry::DELETED | Entry::OLD_VERSION) as i16,
        );
        let l = Directory::parse(&d.encode_listing(current, true).unwrap()).unwrap();
        assert_eq!(
            l.entries.iter().map(|e| e.object_id).collect::<Vec<_>>(),
            vec![7]
        );
        let ids = |f: ListFilter| {
            d.entries_matching(f)
                .map(|e| e.object_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(ListFilter::EVERYTHING), vec![6, 7, 8, 9]);
        assert_eq!(ids(ListFilter::new(-1, Entry::DELETED as i16)), vec![6, 7]);
        assert_eq!(ids(ListFilter::new(Entry::DELETED as i16, 0)), vec![8, 9]);
        assert_eq!(
            ids(ListFilter::new((Entry::FILE | Entry::DELETED) as i16, 0)),
            vec![9]
        );
        assert_eq!(
            ids(ListFilter::new(-1, ListFilter::EXCLUDE_EVERYTHING)),
            Vec::<i64>::new()
        );
        // A filtered listing counts only what it writes.
        let l = d
            .encode_listing(ListFilter::new(Entry::DIR as i16, 0), false)
            .unwrap();
        assert_eq!(i32::from_be_bytes(l[4..8].try_into().unwrap()), 1);
    }

    #[test]
    fn flag_helpers() {
        let mut e = entry(3, Entry::FILE);
        assert!(e.is_file() && e.is_current());
        e.add_flags(Entry::OLD_VERSION | Entry::DELETED);
        assert!(e.is_old_version() && e.is_deleted() && !e.is_current());
        e.remove_flags(Entry::OLD_VERSION);
        assert_eq!(e.flags, 5);
        assert!(!e.is_remove_asap());
        let mut d = sample();
        assert_eq!(d.entry_by_id(8).unwrap().flags, 6);
        d.entry_by_id_mut(8).unwrap().size_in_blocks = 9;
        assert_eq!(d.entries[2].size_in_blocks, 9);
        assert!(d.entry_by_id(99).is_none());
    }

    #[test]
    fn hostile_input() {
        let good = sample().encode().unwrap();
        assert!(matches!(
            Directory::parse(b"DIR"),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            Directory::parse(b"DIR-xxxx"),
            Err(Error::BadMagic { .. })
        ));
        // A huge count fails before allocating.
        let mut b = good.clone();
        b[4..8].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(Directory::parse(&b), Err(Error::Corrupt { .. })));
        b[4..8].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(Directory::parse(&b), Err(Error::Corrupt { .. })));
        // One entry too many for the bytes.
        let mut b = good.clone();
        b[4..8].copy_from_slice(&5i32.to_be_bytes());
        assert!(Directory::parse(&b).is_err());
        // Trailing bytes.
        let mut b = good.clone();
        b.push(0);
        assert!(Directory::parse(&b).is_err());
        // Dependency bit set without the records.
        let mut b = good.clone();
        b[35] = 1;
        assert!(Directory::parse(&b).is_err());
        // Every truncation is an error value.
        for n in 0..good.len() {
            assert!(Directory::parse(&good[..n]).is_err(), "prefix {n}");
        }
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            any::<(i64, i64, i64, u64, u16)>(),
            proptest::collection::vec(any::<u8>(), 0..20),
            proptest::collection::vec(any::<u8>(), 0..20),
            any::<bool>(),
            any::<(i64, i64)>(),
        )
            .prop_map(
                |(
                    (mtime, object_id, size_in_blocks, attributes_hash, flags),
                    name,
                    attributes,
                    deps,
                    (n, o),
                )| Entry {
                    mtime,
                    object_id,
                    size_in_blocks,
                    attributes_hash,
                    flags,
                    name: EncodedName::clear(&name).unwrap(),
                    attributes,
                    depends_newer: if deps { n } else { 0 },
                    depends_older: if deps { o } else { 0 },
                },
            )
    }

    proptest! {
        #[test]
        fn round_trip(
            ids in any::<(i64, i64, i64)>(),
            options in any::<i32>(),
            attributes in proptest::collection::vec(any::<u8>(), 0..30),
            entries in proptest::collection::vec(arb_entry(), 0..6),
        ) {
            let d = Directory {
                object_id: ids.0,
                container_id: ids.1,
                attributes_mod_time: ids.2,
                options,
                attributes,
                entries,
            };
            let bytes = d.encode().unwrap();
            let back = Directory::parse(&bytes).unwrap();
            let deps = d.entries.iter().any(Entry::has_dependencies);
            prop_assert_eq!(back.options & OPTION_DEPENDENCY_INFO != 0, deps);
            prop_assert_eq!(back.options & !OPTION_DEPENDENCY_INFO, options & !OPTION_DEPENDENCY_INFO);
            prop_assert_eq!(&Directory { options, ..back.clone() }, &d);
            prop_assert_eq!(back.encode().unwrap(), bytes);
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = buf.clone();
            if b.len() >= 4 {
                b[..4].copy_from_slice(&DIR_MAGIC.to_be_bytes());
            }
            if let Ok(d) = Directory::parse(&b) {
                let again = d.encode().unwrap();
                prop_assert_eq!(Directory::parse(&again).unwrap().entries, d.entries);
            }
        }
    }
}
