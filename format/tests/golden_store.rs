//! The whole 0.13 fixture store, decoded with the fixture keys: every directory
//! and every file object (current, old and deleted, patches rebuilt through
//! their chains) is matched against `source.tar.gz`, the round manifests and the
//! MD5s that the real `bbackupquery get -i` reported (`expected/single/versions.txt`).

mod common;

use std::collections::{BTreeMap, HashMap};

use bb_format::attributes::UnixAttributes;
use bb_format::combine;
use bb_format::crypto::md5;
use bb_format::decode::decode_file;
use bb_format::directory::{Directory, Entry};
use bb_format::layout::FileLayout;
use common::{ManifestEntry, SingleStore};

/// One directory entry found by walking the tree from the root.
struct Found {
    path: Vec<u8>,
    dir_id: i64,
    entry: Entry,
}

fn walk(store: &SingleStore, keys: &bb_format::Keys) -> (Vec<Found>, HashMap<i64, Directory>) {
    let mut found = Vec::new();
    let mut dirs = HashMap::new();
    let mut todo = vec![(1i64, Vec::<u8>::new())];
    while let Some((id, path)) = todo.pop() {
        let dir = Directory::parse(store.object(id).expect("directory object")).unwrap();
        assert_eq!(dir.object_id, id);
        for e in &dir.entries {
            let name = e.name.decrypt(keys).unwrap();
            let mut p = path.clone();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(&name);
            if e.is_dir() {
                let child = Directory::parse(store.object(e.object_id).unwrap()).unwrap();
                assert_eq!(child.container_id, id, "container of {:#x}", e.object_id);
                todo.push((e.object_id, p.clone()));
            }
            found.push(Found {
                path: p,
                dir_id: id,
                entry: e.clone(),
            });
        }
        dirs.insert(id, dir);
    }
    (found, dirs)
}

/// The complete bytes of a file object: the object itself, or the version its
/// patch chain describes, rebuilt from the newest complete version.
fn complete_object(store: &SingleStore, dir: &Directory, entry: &Entry) -> Vec<u8> {
    let mut patches = vec![store.object(entry.object_id).unwrap()];
    let mut newer = entry.depends_newer;
    while newer != 0 {
        let e = dir
            .entry_by_id(newer)
            .expect("depends_newer names an entry of the same directory");
        patches.push(store.object(newer).unwrap());
        newer = e.depends_newer;
    }
    let newest = patches.pop().unwrap();
    patches.reverse();
    combine::rebuild(newest, &patches).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `expected/single/versions.txt`: object id -> (flags, size, md5 or `->target`,
/// first matching round, escaped path).
fn versions() -> BTreeMap<i64, (String, u64, String, u32, Vec<u8>)> {
    common::read_fixture_text("expected/single/versions.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.splitn(6, ' ').collect();
            let round = f[4].split(',').next().unwrap().parse().unwrap();
            (
                i64::from_str_radix(f[0], 16).unwrap(),
                (
                    f[1].to_string(),
                    f[2].parse().unwrap(),
                    f[3].to_string(),
                    round,
                    common::unescape(f[5]),
                ),
            )
        })
        .collect()
}

fn check_attributes(what: &str, a: &UnixAttributes, m: &ManifestEntry) {
    let kind = match a.mode & 0o170000 {
        0o100000 => 'f',
        0o040000 => 'd',
        0o120000 => 'l',
        other => panic!("{what}: unexpected file type {other:o}"),
    };
    assert_eq!(kind, m.kind, "{what}: type");
    assert_eq!(a.mode & 0o7777, m.perms, "{what}: permissions");
    assert_eq!((a.uid, a.gid), (m.uid, m.gid), "{what}: owner");
    assert_eq!(a.xattrs, m.xattrs, "{what}: xattrs");
    assert_eq!(a.symlink_target, m.link_target, "{what}: symlink target");
    if kind != 'd' {
        assert_eq!(a.mtime * 1000, m.mtime_ns, "{what}: mtime");
    }
}

#[test]
fn every_object_of_the_0_13_store_decodes_to_the_source() {
    let store = SingleStore::get();
    let keys = common::keys();
    let (found, dirs) = walk(&store, &keys);
    let versions = versions();
    let source = common::unpack_raw("source.tar.gz");
    let manifests: HashMap<u32, HashMap<Vec<u8>, ManifestEntry>> =
        (1..=3).map(|r| (r, common::manifest(r))).collect();

    let mut seen_versions = 0;
    let mut current_paths = Vec::new();
    for f in &found {
        let e = &f.entry;
        let what = format!("{:#x} {}", e.object_id, String::from_utf8_lossy(&f.path));
        // Paths in the store are `source/...`; manifests are relative to it.
        let rel = f.path.strip_prefix(b"source/").map(<[u8]>::to_vec);
        if e.is_dir() {
            let dir = &dirs[&e.object_id];
            let attrs = UnixAttributes::decrypt(&keys, &dir.attributes)
                .unwrap()
                .expect("dir attributes");
            if let (true, Some(rel)) = (e.is_current(), &rel) {
                check_attributes(&what, &attrs, &manifests[&3][rel]);
                current_paths.push(rel.clone());
            }
            continue;
        }
        let object = complete_object(&store, &dirs[&f.dir_id], e);
        let decoded = decode_file(&keys, &object).unwrap_or_else(|err| panic!("{what}: {err}"));
        assert!(FileLayout::parse(&object).unwrap().is_complete());
        // Attributes: the entry's replacement attributes win over the embedded ones.
        let blob = if e.attributes.is_empty() {
            &decoded.attributes
        } else {
            &e.attributes
        };
        let attrs = UnixAttributes::decrypt(&keys, blob)
            .unwrap()
            .expect("file attributes");

        let (flags, size, digest, round, vpath) = versions
            .get(&e.object_id)
            .unwrap_or_else(|| panic!("{what} not in versions.txt"));
        seen_versions += 1;
        assert_eq!(Some(vpath), rel.as_ref(), "{what}: path in versions.txt");
        assert_eq!(decoded.content.len() as u64, *size, "{what}: size");
        match (&attrs.symlink_target, digest.strip_prefix("->")) {
            (Some(t), Some(expect)) => assert_eq!(t, &common::unescape(expect), "{what}"),
            (None, None) => assert_eq!(
                format!("md5={}", hex(&md5(&decoded.content))),
                *digest,
                "{what}"
            ),
            _ => panic!("{what}: symlink disagreement with versions.txt"),
        }
        assert_eq!(flags.contains('X'), e.is_deleted(), "{what}: deleted flag");
        assert_eq!(flags.contains('o'), e.is_old_version(), "{what}: old flag");

        // Every version matches the manifest of the round it was backed up in.
        let rel = rel.unwrap();
        let m = &manifests[round][&rel];
        assert_eq!(
            decoded.header.mtime * 1000,
            m.mtime_ns,
            "{what}: header mtime"
        );
        if e.is_current() {
            check_attributes(&what, &attrs, &manifests[&3][&rel]);
            if attrs.symlink_target.is_none() {
                let mut tar_path = b"source/".to_vec();
                tar_path.extend_from_slice(&rel);
                assert_eq!(
                    decoded.content, source[&tar_path],
                    "{what}: content vs source.tar.gz"
                );
            }
            current_paths.push(rel);
        } else {
            check_attributes(&what, &attrs, m);
        }
    }
    assert_eq!(
        seen_versions,
        versions.len(),
        "every object of versions.txt was found"
    );
    // Names: the current tree is the round-3 source tree (the FIFO is not backed up).
    current_paths.sort();
    let mut expected: Vec<Vec<u8>> = manifests[&3]
        .values()
        .filter(|m| m.kind != 'p' && m.path != b".")
        .map(|m| m.path.clone())
        .collect();
    expected.sort();
    assert_eq!(current_paths, expected);
}
