//! Test helpers: a minimal backup of a local tree into a store (what bbackupd
//! uploads for a first run, without diffs or state), so restore and compare
//! can be tested against the in-memory `FakeStore`.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use bb_format::attributes::UnixAttributes;
use bb_format::encode::{FileMeta, encode_file};
use bb_format::recipe::Recipe;
use bb_format::{EncodedName, Keys};
use bb_remote::StoreWrite;

use crate::localfs;

/// Uploads `local` as directory `name` inside store directory `parent`;
/// returns the new directory's ID. Regular files, symlinks and directories
/// only (FIFOs and the like are skipped, as bbackupd skips them).
pub fn upload_tree(
    store: &mut dyn StoreWrite,
    keys: &Keys,
    parent: i64,
    name: &[u8],
    local: &Path,
) -> i64 {
    let md = fs::symlink_metadata(local).unwrap();
    let mut a = localfs::read_attributes(local, &md).unwrap();
    a.mtime = 0;
    a.attr_mtime = 0;
    let id = store
        .create_directory(
            parent,
            &EncodedName::encrypt(keys, name).unwrap(),
            localfs::ctime_of(&md),
            &a.encrypt(keys).unwrap(),
        )
        .unwrap();
    let mut entries: Vec<_> = fs::read_dir(local)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let leaf = p.file_name().unwrap().as_bytes().to_vec();
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            upload_tree(store, keys, id, &leaf, &p);
        } else if md.is_file() || md.file_type().is_symlink() {
            upload_file(store, keys, id, &leaf, &p);
        }
    }
    id
}

/// Uploads one file or symlink into `dir` under `leaf`; returns its ID.
pub fn upload_file(
    store: &mut dyn StoreWrite,
    keys: &Keys,
    dir: i64,
    leaf: &[u8],
    path: &Path,
) -> i64 {
    let md = fs::symlink_metadata(path).unwrap();
    let a: UnixAttributes = localfs::read_attributes(path, &md).unwrap();
    let symlink = md.file_type().is_symlink();
    let data = if symlink {
        Vec::new()
    } else {
        fs::read(path).unwrap()
    };
    let name = EncodedName::encrypt(keys, leaf).unwrap();
    let meta = FileMeta {
        container_id: dir,
        mtime: a.mtime,
        name: name.clone(),
        attributes: a.encrypt(keys).unwrap(),
        symlink,
    };
    let encoded = encode_file(keys, &meta, &Recipe::whole(data.len() as u64), &data).unwrap();
    store
        .store_file(
            dir,
            &name,
            a.mtime,
            a.attribute_hash(keys, leaf).unwrap(),
            0,
            &mut &encoded[..],
        )
        .unwrap()
}
