//! The two fixture stores hold the same backup history, written by the real
//! 0.13 once onto a RAID disc set and once onto a single disc. Their encrypted
//! bytes differ (random IVs), so "reads back identical" is checked where it is
//! meaningful: every object read through bb-raid from the RAID store, complete
//! and with each disc removed in turn, decodes to the same content, names,
//! attributes and block checksums as its single-disc counterpart. Only ctimes
//! differ (the source was unpacked afresh for each layout) and are masked.

use std::path::{Path, PathBuf};

use bb_format::Keys;
use bb_format::attributes::UnixAttributes;
use bb_format::decode::decode_file;
use bb_format::directory::Directory;
use bb_format::layout::FileLayout;
use bb_format::refcount::RefCountDatabase;
use bb_format::storeinfo::StoreInfo;
use bb_raid::{DiscSet, ListKind, RaidRead};

fn pack() -> PathBuf {
    match std::env::var_os("BB013_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/bb013"),
    }
}

fn unpack(tarball: &Path, into: &Path) {
    let f = std::fs::File::open(tarball).unwrap_or_else(|e| panic!("{}: {e}", tarball.display()));
    tar::Archive::new(flate2::read::GzDecoder::new(f))
        .unpack(into)
        .unwrap();
}

fn names(set: &DiscSet, dir: &str, out: &mut Vec<String>) {
    for f in set.list_dir(dir, ListKind::Files).unwrap().names {
        out.push(format!("{dir}/{f}"));
    }
    for d in set.list_dir(dir, ListKind::Dirs).unwrap().names {
        names(set, &format!("{dir}/{d}"), out);
    }
}

fn read(set: &DiscSet, name: &str) -> Vec<u8> {
    RaidRead::open(set, name)
        .and_then(|mut r| r.read_all())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Asserts that two objects 0.13 wrote from the same data say the same thing.
fn same_meaning(keys: &Keys, name: &str, raid: &[u8], single: &[u8]) {
    // ctimes differ: the source tree was unpacked afresh for each layout.
    let dec = |blob: &[u8]| {
        UnixAttributes::decrypt(keys, blob).unwrap().map(|mut a| {
            a.attr_mtime = 0;
            a
        })
    };
    match &raid[..4.min(raid.len())] {
        b"file" => {
            let (lr, ls) = (
                FileLayout::parse(raid).unwrap(),
                FileLayout::parse(single).unwrap(),
            );
            assert_eq!(lr.header, ls.header, "{name}: header");
            assert_eq!(lr.name, ls.name, "{name}: name");
            assert_eq!(dec(lr.attributes), dec(ls.attributes), "{name}: attributes");
            assert_eq!(
                lr.index.decrypt_all(keys).unwrap(),
                ls.index.decrypt_all(keys).unwrap(),
                "{name}: block checksums"
            );
            let refs = |l: &FileLayout<'_>| {
                l.index
                    .entries
                    .iter()
                    .map(|e| e.reference())
                    .collect::<Vec<_>>()
            };
            assert_eq!(refs(&lr), refs(&ls), "{name}: references");
            if lr.is_complete() {
                assert_eq!(
                    decode_file(keys, raid).unwrap().content,
                    decode_file(keys, single).unwrap().content,
                    "{name}: content"
                );
            }
        }
        b"DIR_" => {
            let (dr, ds) = (
                Directory::parse(raid).unwrap(),
                Directory::parse(single).unwrap(),
            );
            assert_eq!(
                (dr.object_id, dr.container_id),
                (ds.object_id, ds.container_id),
                "{name}"
            );
            assert_eq!(
                dec(&dr.attributes),
                dec(&ds.attributes),
                "{name}: attributes"
            );
            assert_eq!(dr.entries.len(), ds.entries.len(), "{name}: entries");
            for (a, b) in dr.entries.iter().zip(&ds.entries) {
                // Sizes are disc usage, which differs between the two disc sets.
                assert_eq!(
                    (
                        a.mtime,
                        a.object_id,
                        a.attributes_hash,
                        a.flags,
                        &a.name,
                        a.depends_newer,
                        a.depends_older
                    ),
                    (
                        b.mtime,
                        b.object_id,
                        b.attributes_hash,
                        b.flags,
                        &b.name,
                        b.depends_newer,
                        b.depends_older
                    ),
                    "{name}: entry"
                );
                assert_eq!(
                    dec(&a.attributes),
                    dec(&b.attributes),
                    "{name}: entry attributes"
                );
            }
        }
        _ if name.ends_with("/info") => {
            let (ir, is) = (
                StoreInfo::parse(raid).unwrap(),
                StoreInfo::parse(single).unwrap(),
            );
            assert_eq!(
                (
                    ir.account_id,
                    ir.last_object_id_used,
                    ir.num_current_files,
                    ir.num_old_files,
                    ir.num_deleted_files,
                    ir.num_directories
                ),
                (
                    is.account_id,
                    is.last_object_id_used,
                    is.num_current_files,
                    is.num_old_files,
                    is.num_deleted_files,
                    is.num_directories
                ),
                "{name}"
            );
        }
        _ if name.ends_with("/refcount.rdb") => {
            assert_eq!(
                RefCountDatabase::parse(raid).unwrap(),
                RefCountDatabase::parse(single).unwrap(),
                "{name}"
            );
        }
        _ => panic!("{name}: unexpected object"),
    }
}

#[test]
fn raid3_objects_mean_what_their_single_disc_counterparts_mean() {
    let pack = pack();
    let keys = Keys::from_file(&pack.join("keys/01234567-FileEncKeys.raw")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    unpack(&pack.join("store-raid3.tar.gz"), tmp.path());
    unpack(&pack.join("store-single.tar.gz"), tmp.path());
    let r = tmp.path().join("store-raid3");
    let discs = [r.join("disc0"), r.join("disc1"), r.join("disc2")];
    let single = DiscSet::single(0, 4096, tmp.path().join("store-single/disc0")).unwrap();

    let mut all = Vec::new();
    names(&single, "backup/01234567", &mut all);
    assert!(all.len() > 290, "{} objects", all.len());

    // Complete, then each disc removed in turn (renamed away and back).
    for lost in [None, Some(0), Some(1), Some(2)] {
        if let Some(d) = lost {
            std::fs::rename(&discs[d], r.join("gone")).unwrap();
            std::fs::create_dir(&discs[d]).unwrap();
        }
        let raid = DiscSet::raid(0, 4096, discs.clone()).unwrap();
        for name in &all {
            if let Some(d) = lost
                && name.ends_with("/refcount.rdb")
            {
                // Never RAIDed (store.md §5): it lives on one disc and is lost
                // with it, to be rebuilt by housekeeping; on the other two
                // discs' losses it must still read.
                let on_lost_disc = raid.write_path(name).starts_with(&discs[d]);
                assert_eq!(RaidRead::open(&raid, name).is_err(), on_lost_disc, "{name}");
                continue;
            }
            same_meaning(&keys, name, &read(&raid, name), &read(&single, name));
        }
        if let Some(d) = lost {
            std::fs::remove_dir(&discs[d]).unwrap();
            std::fs::rename(r.join("gone"), &discs[d]).unwrap();
        }
    }
}
