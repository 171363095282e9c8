//! The three views of the store and their inode numbers (pure: no I/O).
//!
//! Layout of a mount (see the README and `bbackupfs --help`):
//!
//! - `current/<location>/...`: the newest version of every file and directory
//!   that is not deleted.
//! - `deleted/<location>/...`: deleted files and directories in their places.
//!   Every directory that is not deleted appears too, so that deleted things
//!   below it can be reached; inside a deleted directory everything is shown.
//! - `versions/<location>/<path of a file>/`: a directory per file name with
//!   one entry per stored version (current, old and deleted ones), named
//!   `YYYY-MM-DDTHH-MM-SSZ_<object id in hex>` by its modification time (UTC)
//!   and object ID, so names sort by time. Every directory, deleted or not,
//!   appears, holding such a directory for each file name ever stored in it.
//!
//! When two entries would get the same name in one view (a deleted directory
//! and a new one of the same name, say), the newest keeps the name and the
//! others get `~<object id in hex>` appended.
//!
//! # Inode numbers
//!
//! Stable across mounts and never reused for something else, because they are
//! made from object IDs, which a store never reuses: `id << 3 | tag`, the tag
//! saying which view the object is seen in (a directory that is not deleted is
//! in all three, with different children in each). 1 is the mount root; in a
//! full mount 2, 3 and 4 are `current/`, `deleted/` and `versions/` (the
//! store's root directory, ID 1, seen in each view). A stored file never
//! changes, so the attributes of a file inode never change either.
//!
//! Must not know: FUSE, or how listings are fetched.

use bb_format::BoxTime;
use bb_format::directory::Entry;
use bb_proto::message::flags::ROOT_DIRECTORY;

/// One of the three trees a full mount shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    Current,
    Deleted,
    Versions,
}

impl View {
    pub const ALL: [View; 3] = [View::Current, View::Deleted, View::Versions];

    /// The top-level directory name of the view.
    pub fn dir_name(self) -> &'static str {
        match self {
            View::Current => "current",
            View::Deleted => "deleted",
            View::Versions => "versions",
        }
    }

    fn index(self) -> u64 {
        match self {
            View::Current => 0,
            View::Deleted => 1,
            View::Versions => 2,
        }
    }
}

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    /// The root of a full mount (holds the three views).
    Root,
    /// A store directory seen in a view.
    Dir { view: View, id: i64 },
    /// A stored file or symlink: in `current/` or `deleted/`, or as one
    /// version in `versions/`.
    File { view: View, dir: i64, id: i64 },
    /// `versions/.../<name>/`: every file named like object `key` (the oldest
    /// one) in directory `dir`.
    Versions { dir: i64, key: i64 },
}

/// Largest object ID that fits the inode scheme (IDs are allocated from 1 up,
/// so no real store comes near it).
pub const MAX_OBJECT_ID: i64 = (1 << 60) - 1;

impl Node {
    /// The inode number, if the node is not the mount's root (which is 1).
    pub fn natural_ino(self) -> u64 {
        let tagged = |id: i64, tag: u64| ((id.clamp(0, MAX_OBJECT_ID) as u64) << 3) | tag;
        match self {
            Node::Root => 1,
            Node::Dir { view, id } if id == ROOT_DIRECTORY => 2 + view.index(),
            Node::Dir { view, id } | Node::File { view, id, dir: _ } => {
                let tag = match (self, view) {
                    (Node::File { .. }, View::Versions) => 5,
                    (_, v) => 1 + v.index(),
                };
                tagged(id, tag)
            }
            Node::Versions { key, .. } => tagged(key, 4),
        }
    }

    pub fn is_dir(self) -> bool {
        !matches!(self, Node::File { .. })
    }
}

/// One name in a directory of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub name: Vec<u8>,
    pub node: Node,
    /// The entry in the listing of the containing store directory this child
    /// stands for (for a `Versions` child, its newest version).
    pub entry: usize,
}

/// The children of store directory `dir` in `view`. `names[i]` is the clear
/// name of `entries[i]` (`None` if it did not decrypt: such entries are left
/// out, and the caller logs them).
pub fn children(view: View, dir: i64, entries: &[Entry], names: &[Option<Vec<u8>>]) -> Vec<Child> {
    let mut out = Vec::new();
    match view {
        View::Current | View::Deleted => {
            for (i, (e, name)) in entries.iter().zip(names).enumerate() {
                let Some(name) = name else { continue };
                let shown = match view {
                    View::Current => e.is_current(),
                    _ => (e.is_deleted() && !e.is_old_version()) || (e.is_dir() && !e.is_deleted()),
                };
                if !shown || !(e.is_dir() || e.is_file()) {
                    continue;
                }
                let node = if e.is_dir() {
                    Node::Dir {
                        view,
                        id: e.object_id,
                    }
                } else {
                    Node::File {
                        view,
                        dir,
                        id: e.object_id,
                    }
                };
                out.push(Child {
                    name: name.clone(),
                    node,
                    entry: i,
                });
            }
        }
        View::Versions => {
            // One directory per file name: keyed by its oldest object, shown
            // where its newest entry is.
            let mut by_name: std::collections::HashMap<&[u8], usize> = Default::default();
            for (i, (e, name)) in entries.iter().zip(names).enumerate() {
                let Some(name) = name else { continue };
                if e.is_dir() {
                    out.push(Child {
                        name: name.clone(),
                        node: Node::Dir {
                            view,
                            id: e.object_id,
                        },
                        entry: i,
                    });
                } else if e.is_file() {
                    match by_name.get(&name[..]) {
                        Some(&k) => {
                            let c: &mut Child = &mut out[k];
                            if let Node::Versions { key, .. } = &mut c.node {
                                *key = (*key).min(e.object_id);
                            }
                            c.entry = i;
                        }
                        None => {
                            by_name.insert(name, out.len());
                            out.push(Child {
                                name: name.clone(),
                                node: Node::Versions {
                                    dir,
                                    key: e.object_id,
                                },
                                entry: i,
                            });
                        }
                    }
                }
            }
            out.sort_by_key(|c| c.entry);
        }
    }
    make_unique(&mut out);
    out
}

/// The versions of the file named like object `key` in a listing: one
/// [`Node::File`] per stored file of that name, oldest first.
pub fn versions(dir: i64, key: i64, entries: &[Entry], names: &[Option<Vec<u8>>]) -> Vec<Child> {
    let Some(target) = entries
        .iter()
        .position(|e| e.object_id == key)
        .and_then(|i| names[i].as_ref())
    else {
        return Vec::new();
    };
    let mut out: Vec<Child> = entries
        .iter()
        .zip(names)
        .enumerate()
        .filter(|(_, (e, n))| e.is_file() && n.as_ref() == Some(target))
        .map(|(i, (e, _))| Child {
            name: version_name(e.mtime, e.object_id).into_bytes(),
            node: Node::File {
                view: View::Versions,
                dir,
                id: e.object_id,
            },
            entry: i,
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// `YYYY-MM-DDTHH-MM-SSZ_<id hex>` for a version (UTC; no colons, so the
/// names are safe for every tool and file system they are copied to).
pub fn version_name(mtime: BoxTime, id: i64) -> String {
    let secs = mtime.div_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}Z_{id:08x}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Gives every child a distinct name: the newest entry (the last in store
/// order) of a repeated name keeps it, the others get `~<id hex>`.
fn make_unique(children: &mut [Child]) {
    let mut last: std::collections::HashMap<Vec<u8>, usize> = Default::default();
    for (k, c) in children.iter().enumerate() {
        last.insert(c.name.clone(), k);
    }
    for (k, c) in children.iter_mut().enumerate() {
        if last.get(&c.name) != Some(&k) {
            let id = match c.node {
                Node::Dir { id, .. } | Node::File { id, .. } => id,
                Node::Versions { key, .. } => key,
                Node::Root => 0,
            };
            c.name.extend_from_slice(format!("~{id:x}").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bb_format::EncodedName;

    fn entry(id: i64, flags: u16, mtime: BoxTime) -> Entry {
        Entry {
            mtime,
            object_id: id,
            size_in_blocks: 1,
            attributes_hash: 0,
            flags,
            name: EncodedName::clear(b"x").unwrap(),
            attributes: Vec::new(),
            depends_newer: 0,
            depends_older: 0,
        }
    }

    fn names(c: &[Child]) -> Vec<String> {
        c.iter()
            .map(|c| String::from_utf8_lossy(&c.name).into_owned())
            .collect()
    }

    #[test]
    fn views_pick_their_entries() {
        const F: u16 = Entry::FILE;
        const D: u16 = Entry::DIR;
        const DEL: u16 = Entry::DELETED;
        const OLD: u16 = Entry::OLD_VERSION;
        let entries = vec![
            entry(10, F | OLD, 1),       // a: old version
            entry(11, F, 2),             // a: current
            entry(12, F | DEL | OLD, 3), // b: old, deleted
            entry(13, F | DEL, 4),       // b: deleted
            entry(14, D, 0),             // sub
            entry(15, D | DEL, 0),       // gone
            entry(16, D | DEL, 0),       // sub (deleted, same name as 14)
        ];
        let n = |s: &str| Some(s.as_bytes().to_vec());
        let names_ = vec![
            n("a"),
            n("a"),
            n("b"),
            n("b"),
            n("sub"),
            n("gone"),
            n("sub"),
        ];
        let cur = children(View::Current, 5, &entries, &names_);
        assert_eq!(names(&cur), ["a", "sub"]);
        assert_eq!(
            cur[0].node,
            Node::File {
                view: View::Current,
                dir: 5,
                id: 11
            }
        );
        let del = children(View::Deleted, 5, &entries, &names_);
        assert_eq!(names(&del), ["b", "sub~e", "gone", "sub"]);
        assert_eq!(
            del[0].node,
            Node::File {
                view: View::Deleted,
                dir: 5,
                id: 13
            }
        );
        let ver = children(View::Versions, 5, &entries, &names_);
        assert_eq!(names(&ver), ["a", "b", "sub~e", "gone", "sub"]);
        assert_eq!(ver[0].node, Node::Versions { dir: 5, key: 10 });
        assert_eq!(ver[1].node, Node::Versions { dir: 5, key: 12 });
        let va = versions(5, 10, &entries, &names_);
        assert_eq!(
            names(&va),
            [
                "1970-01-01T00-00-00Z_0000000a",
                "1970-01-01T00-00-00Z_0000000b"
            ]
        );
        // A name that did not decrypt is left out everywhere.
        let mut broken = names_.clone();
        broken[1] = None;
        assert_eq!(
            names(&children(View::Current, 5, &entries, &broken)),
            ["sub"]
        );
    }

    #[test]
    fn version_names_are_utc_and_sort_by_time() {
        // 2026-11-24 10:32:05.5 UTC
        let t = 1_795_516_325_500_000;
        assert_eq!(version_name(t, 0x1a3), "2026-11-24T10-32-05Z_000001a3");
        assert_eq!(version_name(0, 1), "1970-01-01T00-00-00Z_00000001");
        assert_eq!(
            version_name(951_782_400_000_000, 2),
            "2000-02-29T00-00-00Z_00000002"
        );
    }

    #[test]
    fn inode_numbers_are_distinct_per_view_and_stable() {
        let mut seen = std::collections::HashSet::new();
        for view in View::ALL {
            assert!(seen.insert(Node::Dir { view, id: 1 }.natural_ino()));
            assert!(seen.insert(Node::Dir { view, id: 7 }.natural_ino()));
            assert!(
                seen.insert(
                    Node::File {
                        view,
                        dir: 7,
                        id: 8
                    }
                    .natural_ino()
                )
            );
        }
        assert!(seen.insert(Node::Versions { dir: 7, key: 8 }.natural_ino()));
        assert!(!seen.contains(&1));
        assert_eq!(
            Node::Dir {
                view: View::Current,
                id: 1
            }
            .natural_ino(),
            2
        );
        assert_eq!(
            Node::File {
                view: View::Current,
                dir: 3,
                id: 9
            }
            .natural_ino(),
            9 << 3 | 1
        );
    }
}
