//! Every store operation, on the in-memory fake and on real disc sets (RAID and
//! single), with files made by our encoder under the fixture keys. After each
//! step the counters must equal a recount from the directories.

mod common;

use std::io::Read;

use bb_format::directory::{Directory, Entry, ListFilter};
use bb_format::layout::FileLayout;
use bb_store::account::{Mode, create_account_storage};
use bb_store::error::Error;
use bb_store::memory::MemObjects;
use bb_store::ops::MoveFlags;
use bb_store::{Account, ObjectStore, RaidObjects, StoreErrorKind};
use common::TempStore;
use common::files::{assert_counters, content, file, file_of_blocks, name, patch};

/// Makes handles on one account's storage (each call a new handle on the same
/// objects), keeping the temporary directory alive.
type Handles = (Box<dyn Fn() -> Box<dyn ObjectStore>>, Option<TempStore>);

type Factory = Box<dyn Fn() -> Handles>;

fn factories() -> Vec<(&'static str, Factory)> {
    vec![
        (
            "memory",
            Box::new(|| {
                let m = MemObjects::new(1, 4096);
                (
                    Box::new(move || Box::new(m.clone()) as Box<dyn ObjectStore>) as _,
                    None,
                )
            }),
        ),
        (
            "raid3",
            Box::new(|| {
                let ts = TempStore::new(true, 2048);
                let r = RaidObjects::new(ts.discs(), 1);
                (
                    Box::new(move || Box::new(r.clone()) as Box<dyn ObjectStore>) as _,
                    Some(ts),
                )
            }),
        ),
        (
            "single",
            Box::new(|| {
                let ts = TempStore::new(false, 4096);
                let r = RaidObjects::new(ts.discs(), 1);
                (
                    Box::new(move || Box::new(r.clone()) as Box<dyn ObjectStore>) as _,
                    Some(ts),
                )
            }),
        ),
    ]
}

/// Each store kind, with directories written through and with write-back.
fn cases() -> Vec<(String, Factory, bool)> {
    let mut v = Vec::new();
    for write_back in [false, true] {
        for (label, make) in factories() {
            let suffix = if write_back { "+write-back" } else { "" };
            v.push((format!("{label}{suffix}"), make, write_back));
        }
    }
    v
}

/// Every test runs twice per store: writing directories through (as 0.13 and
/// housekeeping do) and with the write-back that sessions use.
fn new_account(store: Box<dyn ObjectStore>, soft: i64, hard: i64, write_back: bool) -> Account {
    create_account_storage(&*store, soft, hard).unwrap();
    let mut acc = Account::open(store, Mode::ReadWrite).unwrap();
    acc.set_directory_write_back(write_back).unwrap();
    acc
}

fn store(acc: &mut Account, dir: i64, n: &str, bytes: &[u8]) -> bb_store::Result<i64> {
    acc.store_file(
        dir,
        100,
        0x1111,
        0,
        &name(n),
        &mut &bytes[..],
        Some(bytes.len() as u64),
    )
}

fn kind<T: std::fmt::Debug>(r: bb_store::Result<T>) -> Option<StoreErrorKind> {
    r.expect_err("expected an error").kind()
}

#[test]
fn every_operation() {
    for (label, make, write_back) in cases() {
        let label = label.as_str();
        eprintln!("backend {label}");
        let (handle, _keep) = make();
        let mut acc = new_account(handle(), 10_000, 20_000, write_back);
        assert_counters(&acc);

        // CreateDirectory.
        let d = acc
            .create_directory(1, &name("src"), &[1; 49], 7, 0)
            .unwrap();
        assert_eq!(d, 2);
        assert_eq!(
            kind(acc.create_directory(1, &name("src"), &[], 0, 0)),
            Some(StoreErrorKind::DirectoryAlreadyExists)
        );
        assert_eq!(
            kind(acc.create_directory(999, &name("x"), &[], 0, 0)),
            Some(StoreErrorKind::DoesNotExist)
        );
        let d2 = acc
            .create_directory(1, &name("other"), &[], 0, 0x1234)
            .unwrap();
        assert_eq!(
            acc.read_directory("t", 1)
                .unwrap()
                .entry_by_id(d2)
                .unwrap()
                .mtime,
            0x1234
        );
        assert_counters(&acc);

        // StoreFile, GetFile, GetObject, block indexes.
        let v1 = file(d, "a.txt", b"hello");
        let f1 = store(&mut acc, d, "a.txt", &v1).unwrap();
        assert_eq!(
            content(&acc.get_file(d, f1).unwrap().into_vec().unwrap()),
            b"hello"
        );
        assert_eq!(acc.get_object(f1).unwrap().into_vec().unwrap(), v1);
        let layout = FileLayout::parse(&v1).unwrap();
        assert_eq!(
            acc.get_block_index_by_id(f1).unwrap().into_vec().unwrap(),
            &v1[layout.index_start..]
        );
        let (id, idx) = acc
            .get_block_index_by_name(d, &name("a.txt"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (id, idx.into_vec().unwrap()),
            (f1, v1[layout.index_start..].to_vec())
        );
        assert!(
            acc.get_block_index_by_name(d, &name("nope"))
                .unwrap()
                .is_none()
        );
        assert_eq!(acc.info().num_current_files, 1);
        assert_counters(&acc);

        // A second version makes the first old.
        let v2 = file(d, "a.txt", b"hello again");
        let f2 = store(&mut acc, d, "a.txt", &v2).unwrap();
        let listing = |acc: &Account, must: i16, not: i16| {
            Directory::parse(&acc.list_directory(d, must, not, true).unwrap()).unwrap()
        };
        assert_eq!(listing(&acc, -1, 12).entries.len(), 1);
        let all = listing(&acc, -1, 0);
        assert_eq!(all.entries.len(), 2);
        assert_eq!(all.entries[0].flags, Entry::FILE | Entry::OLD_VERSION);
        assert_eq!(all.attributes, vec![1; 49]);
        assert_eq!(all.attributes_mod_time, 7);
        assert_eq!(
            listing(&acc, Entry::OLD_VERSION as i16, 0).entries[0].object_id,
            f1
        );
        assert!(
            Directory::parse(&acc.list_directory(d, -1, 0, false).unwrap())
                .unwrap()
                .attributes
                .is_empty()
        );
        assert_eq!(
            (acc.info().num_current_files, acc.info().num_old_files),
            (1, 1)
        );
        assert_counters(&acc);

        // SetReplacementFileAttributes.
        assert_eq!(
            acc.set_replacement_file_attributes(d, 0x2222, &name("a.txt"), &[9; 10])
                .unwrap(),
            f2
        );
        let e = acc
            .read_directory("t", d)
            .unwrap()
            .entry_by_id(f2)
            .unwrap()
            .clone();
        assert_eq!(
            (e.attributes_hash, e.attributes.clone()),
            (0x2222, vec![9; 10])
        );
        assert_eq!(
            kind(acc.set_replacement_file_attributes(d, 1, &name("nope"), &[])),
            Some(StoreErrorKind::DoesNotExist)
        );
        assert_counters(&acc);

        // DeleteFile / UndeleteFile.
        assert_eq!(acc.delete_file(d, &name("a.txt")).unwrap(), f2);
        assert_eq!(acc.delete_file(d, &name("a.txt")).unwrap(), 0);
        assert_eq!(acc.delete_file(d, &name("nope")).unwrap(), 0);
        assert_eq!(listing(&acc, -1, 12).entries.len(), 0);
        assert_eq!(acc.info().num_deleted_files, 2);
        assert_counters(&acc);
        assert_eq!(acc.undelete_file(d, f2).unwrap(), f2);
        assert_eq!(acc.undelete_file(d, f1).unwrap(), 0, "old version");
        assert_eq!(acc.undelete_file(d, 999).unwrap(), 0);
        assert_counters(&acc);

        // MoveObject: rename in place, then to another directory.
        let flags = MoveFlags::from_bits(3);
        acc.move_object(f2, d, d, flags, &name("b.txt")).unwrap();
        let dir = acc.read_directory("t", d).unwrap();
        assert!(
            dir.entries.iter().all(|e| e.name == name("b.txt")),
            "all versions renamed"
        );
        assert_eq!(
            kind(acc.move_object(f2, d, d, flags, &name("b.txt"))),
            Some(StoreErrorKind::TargetNameExists)
        );
        assert_eq!(
            kind(acc.move_object(999, d, d, flags, &name("c"))),
            Some(StoreErrorKind::DoesNotExistInDirectory)
        );
        let e = acc.create_directory(d, &name("sub"), &[], 0, 0).unwrap();
        let g = store(&mut acc, e, "g", &file(e, "g", b"gee")).unwrap();
        acc.move_object(e, d, 1, MoveFlags::default(), &name("sub2"))
            .unwrap();
        assert_eq!(acc.read_directory("t", e).unwrap().container_id, 1);
        assert!(acc.read_directory("t", d).unwrap().entry_by_id(e).is_none());
        acc.move_object(f2, d, d2, MoveFlags::default(), &name("moved"))
            .unwrap();
        assert_eq!(acc.read_directory("t", d2).unwrap().entries.len(), 1);
        assert_counters(&acc);

        // GetObjectName.
        let n = acc.get_object_name(g, e).unwrap();
        assert_eq!(n.names, vec![name("g"), name("sub2")]);
        assert_eq!(
            (n.flags, n.modification_time, n.attributes_hash),
            (Entry::FILE, 100, 0x1111)
        );
        let n = acc.get_object_name(0, e).unwrap();
        assert_eq!((n.names, n.flags), (vec![name("sub2")], Entry::DIR));
        assert_eq!(acc.get_object_name(999, e).unwrap(), Default::default());
        assert_eq!(acc.get_object_name(g, 999).unwrap(), Default::default());

        // DeleteDirectory / UndeleteDirectory.
        acc.delete_directory(e).unwrap();
        let root = acc.read_directory("t", 1).unwrap();
        assert!(root.entry_by_id(e).unwrap().is_deleted());
        assert!(acc.read_directory("t", e).unwrap().entries[0].is_deleted());
        assert_counters(&acc);
        acc.delete_directory(e).unwrap();
        acc.undelete_directory(e).unwrap();
        assert!(!acc.read_directory("t", e).unwrap().entries[0].is_deleted());
        assert_eq!(
            kind(acc.delete_directory(1)),
            Some(StoreErrorKind::CannotDeleteRoot)
        );
        assert_eq!(
            kind(acc.undelete_directory(999)),
            Some(StoreErrorKind::DoesNotExist)
        );
        assert_counters(&acc);

        // ChangeDirAttributes, SetClientStoreMarker, usage.
        acc.change_dir_attributes(d, &[3; 20], 55).unwrap();
        let dd = Directory::parse(&acc.list_directory(d, -1, 0, true).unwrap()).unwrap();
        assert_eq!((dd.attributes, dd.attributes_mod_time), (vec![3; 20], 55));
        acc.set_client_store_marker(42).unwrap();
        assert_eq!(acc.account_usage2().info.client_store_marker, 42);
        let u = acc.account_usage();
        assert_eq!(u.blocks_used, acc.info().blocks_used);
        assert_eq!(u.block_size as u64, acc.block_size());
        assert_counters(&acc);

        // Errors that must not panic or change anything.
        let before = acc.info().clone();
        assert_eq!(
            kind(store(&mut acc, 999, "x", &v1)),
            Some(StoreErrorKind::DoesNotExist)
        );
        assert_eq!(
            kind(acc.store_file(d, 0, 0, 999, &name("x"), &mut &v1[..], None)),
            Some(StoreErrorKind::DiffFromFileDoesNotExist)
        );
        let mut bad = v1.clone();
        let l = bad.len();
        bad[l - 40] ^= 0x40; // a chunk size that no longer fits
        let next = acc.info().last_object_id_used + 1;
        assert_eq!(
            kind(store(&mut acc, d, "bad", &bad)),
            Some(StoreErrorKind::FileDoesNotVerify)
        );
        assert!(
            !acc.store().object_exists(next).unwrap(),
            "no partial object"
        );
        let mut after = acc.info().clone();
        after.last_object_id_used = before.last_object_id_used;
        assert_eq!(after, before, "no counter change");
        assert_eq!(
            kind(acc.get_file(d, 999)),
            Some(StoreErrorKind::DoesNotExist)
        );
        assert_eq!(
            kind(acc.get_file(d, g)),
            Some(StoreErrorKind::DoesNotExistInDirectory)
        );
        assert_eq!(
            kind(acc.get_file(1, d)),
            Some(StoreErrorKind::FileDoesNotVerify)
        );
        assert_eq!(
            kind(acc.list_directory(g, -1, 0, false)),
            Some(StoreErrorKind::DoesNotExist)
        );
        assert_eq!(
            kind(acc.list_directory(12345, -1, 0, false)),
            Some(StoreErrorKind::DoesNotExist)
        );
        assert_eq!(
            kind(acc.get_block_index_by_id(d)),
            Some(StoreErrorKind::DoesNotExist)
        );
        assert_eq!(kind(acc.get_object(0)), Some(StoreErrorKind::DoesNotExist));
        assert_counters(&acc);

        // Read-only: reads work, writes are refused.
        let store_ro = handle();
        acc.close().unwrap();
        let ro = Account::open(store_ro, Mode::ReadOnly).unwrap();
        assert_eq!(ro.info().client_store_marker, 42);
        assert_eq!(
            content(&ro.get_file(e, g).unwrap().into_vec().unwrap()),
            b"gee"
        );
        let mut ro = ro;
        assert_eq!(
            kind(ro.delete_file(d, &name("b.txt"))),
            Some(StoreErrorKind::SessionReadOnly)
        );
        assert_eq!(
            kind(ro.create_directory(1, &name("z"), &[], 0, 0)),
            Some(StoreErrorKind::SessionReadOnly)
        );
    }
}

#[test]
fn diff_uploads_and_patch_chains() {
    let a: &[u8] = &[b'a'; 3000];
    let b: &[u8] = &[b'b'; 3000];
    let c: &[u8] = &[b'c'; 2000];
    let dd: &[u8] = &[b'd'; 1000];
    for (label, make, write_back) in cases() {
        let label = label.as_str();
        eprintln!("backend {label}");
        let (handle, _keep) = make();
        let mut acc = new_account(handle(), 10_000, 20_000, write_back);
        let d = acc.create_directory(1, &name("d"), &[], 0, 0).unwrap();
        let other = acc.create_directory(1, &name("o"), &[], 0, 0).unwrap();
        let id1 = store(&mut acc, d, "big", &file_of_blocks(d, "big", &[a, b])).unwrap();
        let p2 = patch(d, "big", id1, &[a, b], &[Ok(0), Err(c)]);
        let id2 = acc
            .store_file(d, 200, 2, id1, &name("big"), &mut &p2[..], None)
            .unwrap();
        assert_counters(&acc);
        let get = |acc: &Account, id| content(&acc.get_file(d, id).unwrap().into_vec().unwrap());
        assert_eq!(get(&acc, id2), [a, c].concat());
        assert_eq!(get(&acc, id1), [a, b].concat());
        let dir = acc.read_directory("t", d).unwrap();
        assert_eq!(dir.entry_by_id(id1).unwrap().depends_newer, id2);
        assert_eq!(dir.entry_by_id(id2).unwrap().depends_older, id1);
        assert!(dir.entry_by_id(id1).unwrap().is_old_version());
        // GetObject gives the stored reverse patch as it is.
        let raw = acc.get_object(id1).unwrap().into_vec().unwrap();
        assert!(!FileLayout::parse(&raw).unwrap().is_complete());

        let p3 = patch(d, "big", id2, &[a, c], &[Err(dd), Ok(1)]);
        let id3 = acc
            .store_file(
                d,
                300,
                3,
                id2,
                &name("big"),
                &mut &p3[..],
                Some(p3.len() as u64),
            )
            .unwrap();
        assert_counters(&acc);
        assert_eq!(get(&acc, id3), [dd, c].concat());
        assert_eq!(get(&acc, id2), [a, c].concat());
        assert_eq!(get(&acc, id1), [a, b].concat());
        assert_eq!(
            acc.get_block_index_by_name(d, &name("big"))
                .unwrap()
                .unwrap()
                .0,
            id3
        );

        // A diff that shares nothing stores a complete file and records no link.
        let p4 = patch(d, "big", id3, &[dd, c], &[Err(b"zzz")]);
        // (The encoder makes a whole file when nothing is reused: other id 0.)
        let id4 = acc.store_file(d, 400, 4, id3, &name("big"), &mut &p4[..], None);
        if let Ok(id4) = id4 {
            assert_eq!(
                acc.read_directory("t", d)
                    .unwrap()
                    .entry_by_id(id4)
                    .unwrap()
                    .depends_older,
                0
            );
            assert_eq!(get(&acc, id3), [dd, c].concat());
            assert_counters(&acc);
        }

        // The diff base must be a file of the target directory.
        let p = patch(other, "big", id3, &[dd, c], &[Ok(0)]);
        assert_eq!(
            kind(acc.store_file(other, 1, 1, id3, &name("big"), &mut &p[..], None)),
            Some(StoreErrorKind::DiffFromFileDoesNotExist)
        );
        assert_eq!(
            kind(acc.store_file(d, 1, 1, d, &name("big"), &mut &p[..], None)),
            Some(StoreErrorKind::DiffFromFileDoesNotExist)
        );
        // A broken chain is a patch consistency error, not a panic.
        let mut dir = acc.read_directory("t", d).unwrap();
        dir.entries.retain(|e| e.object_id != id2);
        acc.save_directory(&dir).unwrap();
        assert_eq!(
            kind(acc.get_file(d, id1)),
            Some(StoreErrorKind::PatchConsistencyError)
        );
    }
}

/// Diffs that fail (do not verify, refer past the old file, a broken stream)
/// leave no new object, no rewritten old version, no temporary file and no
/// counter change; the account stays usable.
#[test]
fn failed_diff_uploads_leave_nothing_behind() {
    let a: &[u8] = &[b'a'; 3000];
    let b: &[u8] = &[b'b'; 3000];
    let c: &[u8] = &[b'c'; 2000];
    for (label, make, write_back) in cases() {
        let label = label.as_str();
        eprintln!("backend {label}");
        let (handle, keep) = make();
        let store_handle = handle();
        let mut acc = new_account(handle(), 10_000, 20_000, write_back);
        let d = acc.create_directory(1, &name("d"), &[], 0, 0).unwrap();
        let id1 = store(&mut acc, d, "big", &file_of_blocks(d, "big", &[a, b])).unwrap();
        let old_bytes = acc.get_object(id1).unwrap().into_vec().unwrap();
        let usage = acc.account_usage();
        let dir_before = acc.read_directory("t", d).unwrap();

        // Refers to block 2 of a 2-block file: verifies, but cannot combine.
        let past_end = patch(d, "big", id1, &[a, b, c], &[Ok(0), Ok(2)]);
        let good = patch(d, "big", id1, &[a, b], &[Ok(0), Err(c)]);
        let truncated = &good[..good.len() - 5];
        let mut garbled = good.clone();
        let at = garbled.len() - 25; // low byte of the last entry's size
        garbled[at] ^= 0x40; // the chunk sizes no longer add up
        for (what, bytes) in [
            ("reference past the end", &past_end[..]),
            ("truncated", truncated),
            ("garbled", &garbled[..]),
        ] {
            let next = acc.info().last_object_id_used + 1;
            let r = acc.store_file(d, 2, 2, id1, &name("big"), &mut &bytes[..], None);
            assert_eq!(kind(r), Some(StoreErrorKind::FileDoesNotVerify), "{what}");
            assert!(!store_handle.object_exists(next).unwrap(), "{what}");
            assert_eq!(acc.get_object(id1).unwrap().into_vec().unwrap(), old_bytes);
            assert_eq!(acc.account_usage(), usage, "{what}");
            assert_eq!(acc.read_directory("t", d).unwrap(), dir_before, "{what}");
            assert_counters(&acc);
        }
        // A stream that breaks part-way.
        struct Breaks<'a>(&'a [u8]);
        impl Read for Breaks<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(std::io::Error::other("connection reset"));
                }
                let n = buf.len().min(self.0.len()).min(100);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let r = acc.store_file(d, 2, 2, id1, &name("big"), &mut Breaks(&good[..200]), None);
        assert!(r.is_err());
        assert_eq!(acc.account_usage(), usage);
        if let Some(ts) = &keep {
            let temps: Vec<String> = common::tree(ts.root())
                .into_iter()
                .filter(|p| p.contains("temp") || p.ends_with(".rfwX"))
                .collect();
            assert!(temps.is_empty(), "{temps:?}");
        }
        // And the good diff still goes in.
        let id2 = acc
            .store_file(d, 2, 2, id1, &name("big"), &mut &good[..], None)
            .unwrap();
        assert_eq!(
            content(&acc.get_file(d, id1).unwrap().into_vec().unwrap()),
            [a, b].concat()
        );
        assert_eq!(
            content(&acc.get_file(d, id2).unwrap().into_vec().unwrap()),
            [a, c].concat()
        );
        assert_counters(&acc);
    }
}

/// Reads a limited stream and counts how much was taken.
struct Counting<'a> {
    data: &'a [u8],
    taken: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.taken).min(4096);
        buf[..n].copy_from_slice(&self.data[self.taken..self.taken + n]);
        self.taken += n;
        Ok(n)
    }
}

#[test]
fn hard_limit_is_enforced_early() {
    for (label, make, write_back) in cases() {
        let label = label.as_str();
        eprintln!("backend {label}");
        let (s, _keep) = make();
        // Room for about 60 KiB of files with 2 KiB or 4 KiB blocks.
        let mut acc = new_account(s(), 25, 40, write_back);
        let d = acc.create_directory(1, &name("d"), &[], 0, 0).unwrap();
        let big_content: Vec<u8> = (0..600_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let big = file(d, "big", &big_content);
        let before = acc.info().clone();
        let objects_before = acc.info().last_object_id_used;

        // Declared size: refused before a byte is read.
        let mut r = Counting {
            data: &big,
            taken: 0,
        };
        let e = acc.store_file(d, 1, 1, 0, &name("big"), &mut r, Some(big.len() as u64));
        assert!(
            matches!(e, Err(Error::StorageLimitExceeded { .. })),
            "{e:?}"
        );
        assert_eq!(r.taken, 0);

        // Chunked (no size): refused as soon as the bytes pass the limit.
        let mut r = Counting {
            data: &big,
            taken: 0,
        };
        let e = acc.store_file(d, 1, 1, 0, &name("big"), &mut r, None);
        assert_eq!(
            e.unwrap_err().kind(),
            Some(StoreErrorKind::StorageLimitExceeded)
        );
        assert!(r.taken < 200_000, "read {} of {} bytes", r.taken, big.len());
        for id in objects_before + 1..=acc.info().last_object_id_used {
            assert!(
                !acc.store().object_exists(id).unwrap(),
                "partial object {id:#x} left"
            );
        }
        let mut after = acc.info().clone();
        after.last_object_id_used = before.last_object_id_used;
        assert_eq!(after, before);

        // The account stays usable.
        let small = file(d, "small", b"fits");
        store(&mut acc, d, "small", &small).unwrap();
        assert_counters(&acc);

        // Directories too, once over the limit.
        acc.info_mut().unwrap().blocks_used = 41;
        assert_eq!(
            kind(acc.create_directory(1, &name("x"), &[], 0, 0)),
            Some(StoreErrorKind::StorageLimitExceeded)
        );
        assert_eq!(
            kind(store(&mut acc, d, "s2", &small)),
            Some(StoreErrorKind::StorageLimitExceeded)
        );
    }
}

#[test]
fn filters_match_the_spec() {
    let f = ListFilter::new(-1, 12);
    assert!(f.matches(Entry::FILE) && !f.matches(Entry::FILE | Entry::DELETED));
}
