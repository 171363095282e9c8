//! The 0.13 fixture stores (written by the real C++ server): we serve GetFile and
//! ListDirectory of every object, rebuild old versions from their reverse-diff
//! chains, and after a series of our operations on a copy, the real
//! `bbstoreaccounts check` finds no error and reports our counters.

mod common;

use std::collections::HashMap;

use bb_format::crypto::md5;
use bb_format::directory::{Directory, Entry};
use bb_format::layout::FileLayout;
use bb_store::account::Mode;
use bb_store::ops::MoveFlags;
use bb_store::{Account, ObjectId, RaidObjects};
use common::files::{assert_counters, content, file, keys, name};
use common::{TempStore, have_013, info_field};

const ACCOUNT: u32 = 0x1234567;
const LAYOUTS: [(&str, &str); 2] = [
    ("store-single.tar.gz", "store-single"),
    ("store-raid3.tar.gz", "store-raid3"),
];

/// object ID -> (containing directory, clear path) for every entry in the tree.
fn tree_map(acc: &Account) -> HashMap<ObjectId, (ObjectId, String)> {
    let k = keys();
    let mut map = HashMap::new();
    let mut stack = vec![(1i64, String::new())];
    while let Some((d, path)) = stack.pop() {
        let dir = acc.read_directory("test", d).unwrap();
        for e in &dir.entries {
            let n = String::from_utf8_lossy(&e.name.decrypt(&k).unwrap()).into_owned();
            let p = if path.is_empty() {
                n
            } else {
                format!("{path}/{n}")
            };
            if e.is_dir() {
                stack.push((e.object_id, p.clone()));
            }
            map.insert(e.object_id, (d, p));
        }
    }
    map
}

/// (id, md5 hex or None for symlinks) from expected/<layout>/versions.txt.
fn versions(layout: &str) -> Vec<(ObjectId, Option<String>)> {
    let text = std::fs::read_to_string(format!(
        "{}/../../shared/fixtures/bb013/expected/{layout}/versions.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let id = i64::from_str_radix(f[0], 16).unwrap();
            (id, f[3].strip_prefix("md5=").map(str::to_string))
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn check_versions(acc: &Account, layout: &str, map: &HashMap<ObjectId, (ObjectId, String)>) {
    let v = versions(layout);
    assert_eq!(v.len(), 277);
    for (id, md) in v {
        let (dir, path) = &map[&id];
        let stream = acc.get_file(*dir, id).unwrap().into_vec().unwrap();
        let c = content(&stream);
        if let Some(md) = md {
            assert_eq!(hex(&md5(&c)), md, "object {id:#x} {path}");
        } else {
            assert!(c.is_empty(), "symlink {path}");
        }
    }
}

#[test]
fn serve_every_object_of_the_013_stores() {
    for (tarball, top) in LAYOUTS {
        let layout = top.trim_start_matches("store-");
        let ts = TempStore::from_fixture(tarball, top);
        let acc = Account::open(
            Box::new(RaidObjects::new(ts.discs(), ACCOUNT)),
            Mode::ReadOnly,
        )
        .unwrap();
        let map = tree_map(&acc);
        check_versions(&acc, layout, &map);
        // Listings: every directory re-encodes to what we list with no filter, and
        // the filters drop old and deleted entries.
        let mut dirs = 1;
        let mut current = 0;
        for (&id, _) in map.iter().filter(|(id, _)| {
            acc.object_kind("t", **id).unwrap() == bb_store::account::ObjectKind::Directory
        }) {
            dirs += 1;
            let full = Directory::parse(&acc.list_directory(id, -1, 0, true).unwrap()).unwrap();
            let stored = acc.read_directory("t", id).unwrap();
            assert_eq!(full.entries.len(), stored.entries.len());
            assert_eq!(full.attributes, stored.attributes);
            let cur = Directory::parse(&acc.list_directory(id, -1, 12, false).unwrap()).unwrap();
            assert!(cur.attributes.is_empty());
            current += cur.entries.iter().filter(|e| e.is_file()).count();
        }
        assert_eq!(dirs, 15, "{layout}");
        assert_eq!(
            current, 271,
            "{layout}: 270 + the deleted-name quirk (README)"
        );
        // GetObject of a reverse patch is the patch as stored.
        let raw = acc.get_object(0x5).unwrap().into_vec().unwrap();
        assert!(!FileLayout::parse(&raw).unwrap().is_complete());
        // GetBlockIndexByName finds the newest big-5MiB.txt.
        let (dir, _) = map[&0x123];
        let (id, idx) = acc
            .get_block_index_by_name(dir, &name("big-5MiB.txt"))
            .unwrap()
            .unwrap();
        assert_eq!(id, 0x123);
        assert_eq!(idx.len() % 32, 28);
    }
}

#[test]
fn our_operations_on_an_013_store_pass_its_check() {
    if !have_013() {
        return;
    }
    for (tarball, top) in LAYOUTS {
        let layout = top.trim_start_matches("store-");
        let ts = TempStore::from_fixture(tarball, top);
        // The fixture carries 0.13's own counter drift (README: 2 errors); let
        // 0.13 fix it first so that what remains is ours.
        let (_, out) = ts.bbstoreaccounts(&["check", "1234567", "fix"]);
        assert!(out.contains("errors"), "{out}");
        ts.assert_013_check_clean(ACCOUNT);

        let store = RaidObjects::new(ts.discs(), ACCOUNT);
        let mut acc = Account::open(Box::new(store.clone()), Mode::ReadWrite).unwrap();
        assert_counters(&acc);
        let map = tree_map(&acc);
        let find = |p: &str| *map.iter().find(|(_, (_, path))| path == p).unwrap().0;
        let source = find("source");
        let a_dir = find("source/a");

        // New directory with a new file, a second version of it.
        let nd = acc
            .create_directory(source, &name("rust-dir"), &[7; 49], 1, 0)
            .unwrap();
        acc.store_file(
            nd,
            5,
            6,
            0,
            &name("r.txt"),
            &mut &file(nd, "r.txt", b"from rust")[..],
            None,
        )
        .unwrap();
        let r2 = acc
            .store_file(
                nd,
                6,
                7,
                0,
                &name("r.txt"),
                &mut &file(nd, "r.txt", b"from rust, v2")[..],
                None,
            )
            .unwrap();

        // A diff against the newest big-5MiB.txt: reuse its first block, new tail.
        let big = 0x123;
        let (big_dir, _) = map[&big];
        let old_stream = acc.get_file(big_dir, big).unwrap().into_vec().unwrap();
        let old_content = content(&old_stream);
        let old = acc.get_object(big).unwrap().into_vec().unwrap();
        let lay = FileLayout::parse(&old).unwrap();
        let first = lay.index.decrypt_entry(&keys(), 0).unwrap();
        let block0 = &old_content[..first.size as usize];
        assert_eq!(bb_format::index::BlockClear::of(block0), first);
        let p = common::files::patch(
            big_dir,
            "big-5MiB.txt",
            big,
            &[block0],
            &[Ok(0), Err(b"the end")],
        );
        let nb = acc
            .store_file(big_dir, 9, 9, big, &name("big-5MiB.txt"), &mut &p[..], None)
            .unwrap();
        assert_eq!(
            content(&acc.get_file(big_dir, nb).unwrap().into_vec().unwrap()),
            [block0, b"the end"].concat()
        );
        assert_counters(&acc);

        // Delete, move, delete a directory, undelete, attributes, marker.
        assert_ne!(acc.delete_file(source, &name("text.txt")).unwrap(), 0);
        let a_txt = find("source/a/a.txt");
        acc.move_object(
            a_txt,
            a_dir,
            nd,
            MoveFlags::from_bits(3),
            &name("a-moved.txt"),
        )
        .unwrap();
        let c_dir = find("source/a/b/c");
        acc.delete_directory(c_dir).unwrap();
        acc.undelete_file(nd, r2).unwrap_or_default();
        acc.change_dir_attributes(nd, &[8; 49], 2).unwrap();
        acc.set_replacement_file_attributes(nd, 0x77, &name("r.txt"), &[1; 49])
            .unwrap();
        acc.set_client_store_marker(0x1234).unwrap();
        assert_counters(&acc);
        let info = acc.info().clone();
        // Every old version still rebuilds through the longer chain.
        let map = tree_map(&acc);
        check_versions(&acc, layout, &map);
        acc.close().unwrap();

        ts.assert_013_check_clean(ACCOUNT);
        let out = ts.info_013(ACCOUNT);
        assert_eq!(info_field(&out, "Used"), info.blocks_used, "{out}");
        assert_eq!(
            info_field(&out, "Current files"),
            info.blocks_in_current_files
        );
        assert_eq!(info_field(&out, "Old files"), info.blocks_in_old_files);
        assert_eq!(
            info_field(&out, "Deleted files"),
            info.blocks_in_deleted_files
        );
        assert_eq!(info_field(&out, "Directories"), info.blocks_in_directories);
        assert_eq!(info_field(&out, "Current Files"), info.num_current_files);
        assert_eq!(info_field(&out, "Old Files"), info.num_old_files);
        assert_eq!(info_field(&out, "Deleted Files"), info.num_deleted_files);
        assert_eq!(info_field(&out, "Last object ID"), info.last_object_id_used);
        let _ = Entry::FILE;
    }
}
