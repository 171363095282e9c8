//! The sync engine against the in-memory store: every kind of change, renames
//! through the inode map, deletions, symlinks, exclusions, files that fail or
//! change while read, the store-full mode, the MinimumFileAge window, and the
//! store identity check (swapped or rolled-back stores are not touched).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bb_client::localfs::{mtime_of, set_mtime};
use bb_client::sync::{
    self, Event, FnFilter, Location, SyncError, SyncOptions, SyncReport, SyncState,
};
use bb_format::attributes::UnixAttributes;
use bb_format::decode::decode_file;
use bb_format::{BoxTime, EncodedName, Keys};
use bb_proto::message::flags;
use bb_remote::fake::FakeStore;
use bb_remote::{StoreRead, StoreWrite};

const NOW: BoxTime = 1_700_000_000_000_000;
const HOUR: BoxTime = 3_600_000_000;

/// What a path holds, as compare would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir {
        mode: u16,
    },
    File {
        mode: u16,
        mtime: BoxTime,
        content: Vec<u8>,
    },
    Link {
        target: Vec<u8>,
    },
}

fn keys() -> Keys {
    Keys::test_vector()
}

/// Old enough for the default 6 h MinimumFileAge at NOW.
fn age(p: &Path) {
    set_mtime(p, NOW - 24 * HOUR).unwrap();
}

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
    age(p);
}

fn local_tree(root: &Path) -> BTreeMap<String, Node> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let md = fs::symlink_metadata(&p).unwrap();
            let mode = (md.mode() & 0xffff) as u16;
            if md.is_dir() {
                out.insert(rel, Node::Dir { mode });
                walk(root, &p, out);
            } else if md.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap();
                out.insert(
                    rel,
                    Node::Link {
                        target: t.into_os_string().into_encoded_bytes(),
                    },
                );
            } else {
                out.insert(
                    rel,
                    Node::File {
                        mode,
                        mtime: mtime_of(&md),
                        content: fs::read(&p).unwrap(),
                    },
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn store_tree(s: &mut FakeStore, k: &Keys, dir: i64) -> BTreeMap<String, Node> {
    fn walk(s: &mut FakeStore, k: &Keys, dir: i64, prefix: &str, out: &mut BTreeMap<String, Node>) {
        let d = s
            .list_directory(
                dir,
                flags::INCLUDE_EVERYTHING,
                flags::DELETED | flags::OLD_VERSION,
                false,
            )
            .unwrap();
        for e in d.entries {
            let name = String::from_utf8(e.name.decrypt(k).unwrap()).unwrap();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if e.is_dir() {
                let sub = s
                    .list_directory(e.object_id, flags::INCLUDE_EVERYTHING, 0, true)
                    .unwrap();
                let a = UnixAttributes::decrypt(k, &sub.attributes)
                    .unwrap()
                    .unwrap();
                out.insert(rel.clone(), Node::Dir { mode: a.mode });
                walk(s, k, e.object_id, &rel, out);
            } else {
                let mut bytes = Vec::new();
                s.get_file(dir, e.object_id, &mut bytes).unwrap();
                let f = decode_file(k, &bytes).unwrap();
                let blob = if e.attributes.is_empty() {
                    f.attributes
                } else {
                    e.attributes.clone()
                };
                let a = UnixAttributes::decrypt(k, &blob).unwrap().unwrap();
                let node = if a.is_symlink() {
                    assert!(f.content.is_empty(), "{rel}: a symlink with data");
                    Node::Link {
                        target: a.symlink_target.clone().unwrap(),
                    }
                } else {
                    assert_eq!(a.mtime, e.mtime, "{rel}: entry mtime");
                    Node::File {
                        mode: a.mode,
                        mtime: a.mtime,
                        content: f.content,
                    }
                };
                out.insert(rel, node);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(s, k, dir, "", &mut out);
    out
}

fn location_id(s: &mut FakeStore, k: &Keys, name: &str) -> i64 {
    let root = s
        .list_directory(1, flags::DIR, flags::DELETED, false)
        .unwrap();
    root.entries
        .iter()
        .find(|e| e.name.decrypt(k).unwrap() == name.as_bytes())
        .map(|e| e.object_id)
        .expect("location directory")
}

struct Setup {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    data: PathBuf,
    opts: SyncOptions,
    store: FakeStore,
    state: SyncState,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let data = tmp.path().join("data");
        fs::create_dir_all(&src).unwrap();
        fs::create_dir_all(&data).unwrap();
        let mut opts = SyncOptions::new(vec![Location::new("home", &src)]);
        opts.now = Some(NOW);
        opts.file_tracking_size_threshold = 1024;
        opts.diffing_upload_size_threshold = 8192;
        let state = SyncState::load(&data).unwrap();
        Setup {
            _tmp: tmp,
            src,
            data,
            opts,
            store: FakeStore::default(),
            state,
        }
    }

    fn run(&mut self) -> (SyncReport, Vec<Event>) {
        let (r, ev) = self.try_run();
        (r.unwrap(), ev)
    }

    fn try_run(&mut self) -> (Result<SyncReport, SyncError>, Vec<Event>) {
        let mut ev = Vec::new();
        let r = sync::run(
            &mut self.store,
            &keys(),
            &self.opts,
            &mut self.state,
            &mut ev,
            &AtomicBool::new(false),
        );
        // As the daemon does: save after every run, then start from the file.
        self.state.save(&self.data).unwrap();
        self.state = SyncState::load(&self.data).unwrap();
        (r, ev)
    }

    fn assert_same(&mut self) {
        let id = location_id(&mut self.store, &keys(), "home");
        let theirs = store_tree(&mut self.store, &keys(), id);
        let ours = local_tree(&self.src);
        assert_eq!(theirs, ours);
    }
}

fn sample_tree(src: &Path) {
    write(&src.join("a.txt"), b"hello world\n");
    write(&src.join("empty"), b"");
    write(
        &src.join("sub/b.bin"),
        &(0..20_000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
    );
    write(&src.join("sub/deeper/c"), b"c");
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write(&src.join("big.dat"), &big);
    symlink("/", src.join("to-root")).unwrap();
    symlink("sub", src.join("to-sub")).unwrap();
    fs::set_permissions(src.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
}

#[test]
fn first_run_stores_the_tree_and_a_second_run_sends_nothing() {
    let mut s = Setup::new();
    sample_tree(&s.src);
    let (r, ev) = s.run();
    assert_eq!(r.files_uploaded, 7, "{ev:#?}");
    assert_eq!(r.directories_created, 2);
    assert_eq!((r.errors, r.deleted, r.moved, r.diffs), (0, 0, 0, 0));
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::LocationCreated { .. }))
    );
    s.assert_same();
    // Symlinks to directories are stored as symlinks and never followed.
    let id = location_id(&mut s.store, &keys(), "home");
    let t = store_tree(&mut s.store, &keys(), id);
    assert!(
        !t.keys()
            .any(|k| k.starts_with("to-root/") || k.starts_with("to-sub/"))
    );
    assert!(s.state.marker() != 0);
    assert_eq!(s.store.client_store_marker().unwrap(), s.state.marker());

    let (r, ev) = s.run();
    assert_eq!(
        (
            r.files_uploaded,
            r.deleted,
            r.moved,
            r.attributes_changed,
            r.errors
        ),
        (0, 0, 0, 0, 0),
        "{ev:#?}"
    );
    assert_eq!(r.files_seen, 7);
    s.assert_same();
}

#[test]
fn changes_of_every_kind() {
    let mut s = Setup::new();
    sample_tree(&s.src);
    s.run();

    // Edit in the middle of a big file: a diff goes up.
    let p = s.src.join("big.dat");
    let mut big = fs::read(&p).unwrap();
    big[1_500_000..1_500_100].fill(0xAA);
    big.extend_from_slice(b"appended");
    fs::write(&p, &big).unwrap();
    set_mtime(&p, NOW - 20 * HOUR).unwrap();
    // A small change; a chmod only; a new directory and file; deletions.
    write(&s.src.join("a.txt"), b"hello again\n");
    set_mtime(&s.src.join("a.txt"), NOW - 19 * HOUR).unwrap();
    fs::set_permissions(s.src.join("sub/b.bin"), fs::Permissions::from_mode(0o600)).unwrap();
    write(&s.src.join("new/n.txt"), b"new");
    fs::remove_file(s.src.join("empty")).unwrap();
    fs::remove_dir_all(s.src.join("sub/deeper")).unwrap();
    fs::set_permissions(s.src.join("sub"), fs::Permissions::from_mode(0o700)).unwrap();
    // A file replaced by a directory and a directory by a file.
    fs::remove_file(s.src.join("to-sub")).unwrap();
    fs::create_dir(s.src.join("to-sub")).unwrap();

    let (r, ev) = s.run();
    assert_eq!(r.diffs, 1, "{ev:#?}");
    assert_eq!(r.files_uploaded, 3, "{ev:#?}"); // big.dat, a.txt, new/n.txt
    // b.bin's mode (SetReplacementFileAttributes) and sub's (ChangeDirAttributes).
    assert_eq!(r.attributes_changed, 2, "{ev:#?}");
    // "empty", "sub/deeper", and the symlink "to-sub" (at once, for the directory).
    assert_eq!(r.deleted, 3, "{ev:#?}");
    assert!(
        r.bytes_uploaded < 200_000,
        "the diff sent {} bytes",
        r.bytes_uploaded
    );
    s.assert_same();

    // Old versions stay on the store: the previous big.dat is an old version.
    let id = location_id(&mut s.store, &keys(), "home");
    let d = s
        .store
        .list_directory(id, flags::INCLUDE_EVERYTHING, 0, false)
        .unwrap();
    let name = EncodedName::encrypt(&keys(), b"big.dat").unwrap();
    let versions: Vec<_> = d.entries.iter().filter(|e| e.name == name).collect();
    assert_eq!(versions.len(), 2);
    assert!(versions[0].is_old_version());
    let mut bytes = Vec::new();
    s.store
        .get_file(id, versions[0].object_id, &mut bytes)
        .unwrap();
    let old = decode_file(&keys(), &bytes).unwrap().content;
    assert_eq!(old.len(), 3_000_000);
    assert_ne!(old[1_500_000], 0xAA);

    let (r, _) = s.run();
    assert_eq!(
        (r.files_uploaded, r.deleted, r.attributes_changed),
        (0, 0, 0)
    );
}

#[test]
fn renames_and_moves_use_the_inode_map() {
    let mut s = Setup::new();
    sample_tree(&s.src);
    s.run();
    // A big file renamed within its directory, moved to another one; a
    // directory renamed (with its contents); a small file renamed (below the
    // tracking threshold: uploaded again).
    fs::rename(s.src.join("big.dat"), s.src.join("sub/big-moved.dat")).unwrap();
    fs::rename(s.src.join("sub/b.bin"), s.src.join("sub/b2.bin")).unwrap();
    fs::rename(s.src.join("sub/deeper"), s.src.join("deep-renamed")).unwrap();
    fs::rename(s.src.join("a.txt"), s.src.join("a2.txt")).unwrap();
    let (r, ev) = s.run();
    assert_eq!(r.moved, 3, "{ev:#?}");
    assert_eq!(r.files_uploaded, 1, "{ev:#?}"); // a2.txt
    assert_eq!(r.deleted, 1, "{ev:#?}"); // a.txt
    s.assert_same();
    let (r, _) = s.run();
    assert_eq!((r.files_uploaded, r.moved, r.deleted), (0, 0, 0));
    s.assert_same();
}

#[test]
fn hard_links_are_each_backed_up() {
    let mut s = Setup::new();
    write(&s.src.join("one"), &[1u8; 5000]);
    fs::hard_link(s.src.join("one"), s.src.join("two")).unwrap();
    let (r, _) = s.run();
    assert_eq!(r.files_uploaded, 2);
    s.assert_same();
    // Removing one link is a deletion, not a move of the other.
    fs::remove_file(s.src.join("one")).unwrap();
    let (r, _) = s.run();
    assert_eq!((r.deleted, r.moved, r.files_uploaded), (1, 0, 0));
    s.assert_same();
}

#[test]
fn excluded_things_are_not_stored_and_deleted_when_they_were() {
    let mut s = Setup::new();
    sample_tree(&s.src);
    s.run();
    let src = s.src.clone();
    let src2 = s.src.clone();
    s.opts.locations[0].filter = Arc::new(FnFilter(
        move |p: &Path| p == src.join("a.txt"),
        move |p: &Path| p == src2.join("sub"),
    ));
    let (r, ev) = s.run();
    assert_eq!(r.deleted, 2, "{ev:#?}");
    assert!(ev.iter().any(|e| matches!(e, Event::DirExcluded { .. })));
    let id = location_id(&mut s.store, &keys(), "home");
    let t = store_tree(&mut s.store, &keys(), id);
    assert!(!t.contains_key("a.txt") && !t.contains_key("sub"));
    assert!(t.contains_key("big.dat"));
}

#[test]
fn unsupported_types_and_unreadable_files() {
    let mut s = Setup::new();
    write(&s.src.join("ok"), b"fine");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        s.src.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let root = rustix::process::geteuid().is_root();
    if !root {
        write(&s.src.join("secret"), b"no");
        fs::set_permissions(s.src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    }
    let (r, ev) = s.run();
    assert_eq!(r.files_uploaded, 1, "{ev:#?}");
    if !root {
        assert_eq!(r.errors, 1);
        assert!(
            ev.iter()
                .any(|e| matches!(e, Event::ReadError { path, .. } if path.ends_with("secret")))
        );
    } else {
        // As root every file is readable; the shrinking-file test covers read
        // failures during an upload.
        assert_eq!(r.errors, 0, "{ev:#?}");
    }
}

/// Wraps the fake and runs a hook on the local file just before StoreFile
/// reads the body: a file that changes while it is read.
struct Meddling {
    inner: FakeStore,
    target: EncodedName,
    hook: Box<dyn FnMut()>,
}

impl StoreRead for Meddling {
    fn list_directory(
        &mut self,
        id: i64,
        m: i16,
        n: i16,
        a: bool,
    ) -> bb_remote::Result<bb_format::directory::Directory> {
        self.inner.list_directory(id, m, n, a)
    }
    fn get_object_name(
        &mut self,
        o: i64,
        d: i64,
    ) -> bb_remote::Result<Option<bb_remote::ObjectNames>> {
        self.inner.get_object_name(o, d)
    }
    fn get_object(&mut self, id: i64, out: &mut dyn std::io::Write) -> bb_remote::Result<u64> {
        self.inner.get_object(id, out)
    }
    fn get_file(
        &mut self,
        d: i64,
        id: i64,
        out: &mut dyn std::io::Write,
    ) -> bb_remote::Result<u64> {
        self.inner.get_file(d, id, out)
    }
    fn open_file(&mut self, d: i64, id: i64) -> bb_remote::Result<Box<dyn Read + '_>> {
        self.inner.open_file(d, id)
    }
    fn get_block_index_by_id(
        &mut self,
        id: i64,
    ) -> bb_remote::Result<bb_format::index::BlockIndex> {
        self.inner.get_block_index_by_id(id)
    }
    fn get_block_index_by_name(
        &mut self,
        d: i64,
        n: &EncodedName,
    ) -> bb_remote::Result<Option<(i64, bb_format::index::BlockIndex)>> {
        self.inner.get_block_index_by_name(d, n)
    }
    fn usage(&mut self) -> bb_remote::Result<bb_remote::store::AccountUsage2> {
        self.inner.usage()
    }
    fn client_store_marker(&mut self) -> bb_remote::Result<i64> {
        self.inner.client_store_marker()
    }
}

impl StoreWrite for Meddling {
    fn set_client_store_marker(&mut self, m: i64) -> bb_remote::Result<()> {
        self.inner.set_client_store_marker(m)
    }
    fn create_directory(
        &mut self,
        p: i64,
        n: &EncodedName,
        t: BoxTime,
        a: &[u8],
    ) -> bb_remote::Result<i64> {
        self.inner.create_directory(p, n, t, a)
    }
    fn create_directory2(
        &mut self,
        p: i64,
        n: &EncodedName,
        t: BoxTime,
        m: BoxTime,
        a: &[u8],
    ) -> bb_remote::Result<i64> {
        self.inner.create_directory2(p, n, t, m, a)
    }
    fn change_dir_attributes(&mut self, id: i64, t: BoxTime, a: &[u8]) -> bb_remote::Result<()> {
        self.inner.change_dir_attributes(id, t, a)
    }
    fn store_file(
        &mut self,
        d: i64,
        n: &EncodedName,
        t: BoxTime,
        h: u64,
        f: i64,
        data: &mut dyn Read,
    ) -> bb_remote::Result<i64> {
        if *n == self.target {
            // Let the encoder start (header, first blocks), then meddle.
            let mut first = vec![0u8; 64];
            let got = data
                .read(&mut first)
                .map_err(|source| bb_remote::Error::Source {
                    op: "StoreFile",
                    source,
                })?;
            first.truncate(got);
            (self.hook)();
            let mut chained = std::io::Cursor::new(first).chain(data);
            return self.inner.store_file(d, n, t, h, f, &mut chained);
        }
        self.inner.store_file(d, n, t, h, f, data)
    }
    fn set_replacement_file_attributes(
        &mut self,
        d: i64,
        n: &EncodedName,
        h: u64,
        a: &[u8],
    ) -> bb_remote::Result<i64> {
        self.inner.set_replacement_file_attributes(d, n, h, a)
    }
    fn delete_file(&mut self, d: i64, n: &EncodedName) -> bb_remote::Result<i64> {
        self.inner.delete_file(d, n)
    }
    fn undelete_file(&mut self, d: i64, id: i64) -> bb_remote::Result<i64> {
        self.inner.undelete_file(d, id)
    }
    fn delete_directory(&mut self, id: i64) -> bb_remote::Result<()> {
        self.inner.delete_directory(id)
    }
    fn undelete_directory(&mut self, id: i64) -> bb_remote::Result<()> {
        self.inner.undelete_directory(id)
    }
    fn move_object(
        &mut self,
        id: i64,
        from: i64,
        to: i64,
        n: &EncodedName,
        f: i32,
    ) -> bb_remote::Result<()> {
        self.inner.move_object(id, from, to, n, f)
    }
}

#[test]
fn files_that_change_while_read_never_corrupt_the_store() {
    let mut s = Setup::new();
    let p = s.src.join("moving.dat");
    write(&p, &vec![5u8; 200_000]);
    let p2 = p.clone();
    let mut store = Meddling {
        inner: FakeStore::default(),
        target: EncodedName::encrypt(&keys(), b"moving.dat").unwrap(),
        // Shrinks under the encoder: the stream fails, nothing is stored.
        hook: Box::new(move || {
            fs::OpenOptions::new()
                .write(true)
                .open(&p2)
                .unwrap()
                .set_len(1000)
                .unwrap();
            set_mtime(&p2, NOW - 24 * HOUR).unwrap();
        }),
    };
    let mut ev = Vec::new();
    let r = sync::run(
        &mut store,
        &keys(),
        &s.opts,
        &mut s.state,
        &mut ev,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!((r.files_uploaded, r.errors), (0, 1), "{ev:#?}");
    assert!(ev.iter().any(|e| matches!(e, Event::ReadError { .. })));
    let id = location_id(&mut store.inner, &keys(), "home");
    assert!(store_tree(&mut store.inner, &keys(), id).is_empty());

    // Rewritten under the encoder with the mtime put back: what went up is
    // a mix, but a valid file; the next run sends it again although the
    // mtime says nothing changed.
    write(&p, &vec![6u8; 200_000]);
    let p3 = p.clone();
    store.hook = Box::new(move || {
        let mut data = vec![7u8; 200_000];
        data[0] = 6;
        fs::write(&p3, &data).unwrap();
        set_mtime(&p3, NOW - 24 * HOUR).unwrap();
    });
    ev.clear();
    let r = sync::run(
        &mut store,
        &keys(),
        &s.opts,
        &mut s.state,
        &mut ev,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(r.files_uploaded, 1, "{ev:#?}");
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::ChangedWhileReading { .. })),
        "{ev:#?}"
    );
    // Decodes (every block's MD5 checks).
    let t = store_tree(&mut store.inner, &keys(), id);
    assert!(matches!(t.get("moving.dat"), Some(Node::File { .. })));

    store.hook = Box::new(|| {});
    s.state.save(&s.data).unwrap();
    s.state = SyncState::load(&s.data).unwrap();
    ev.clear();
    let r = sync::run(
        &mut store,
        &keys(),
        &s.opts,
        &mut s.state,
        &mut ev,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(r.files_uploaded, 1, "{ev:#?}");
    let t = store_tree(&mut store.inner, &keys(), id);
    assert_eq!(t, local_tree(&s.src));
    let r = sync::run(
        &mut store,
        &keys(),
        &s.opts,
        &mut s.state,
        &mut ev,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(r.files_uploaded, 0);
}

#[test]
fn minimum_file_age_and_max_upload_wait() {
    let mut s = Setup::new();
    let p = s.src.join("fresh");
    write(&p, b"x");
    set_mtime(&p, NOW - HOUR).unwrap(); // younger than 6 h
    let (r, _) = s.run();
    assert_eq!(r.files_uploaded, 0);
    // Still changing 25 h later (always 1 h old): MaxUploadWait (24 h) sends it.
    s.opts.now = Some(NOW + 10 * HOUR);
    set_mtime(&p, NOW + 9 * HOUR).unwrap();
    let (r, _) = s.run();
    assert_eq!(r.files_uploaded, 0);
    s.opts.now = Some(NOW + 26 * HOUR);
    set_mtime(&p, NOW + 25 * HOUR).unwrap();
    let (r, _) = s.run();
    assert_eq!(r.files_uploaded, 1);
    // A file far in the future goes up at once.
    let f = s.src.join("future");
    write(&f, b"f");
    set_mtime(&f, NOW + 1000 * HOUR).unwrap();
    let (r, ev) = s.run();
    assert_eq!(r.files_uploaded, 1, "{ev:#?}");
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::FileModifiedInFuture { .. }))
    );
}

#[test]
fn a_full_store_gets_no_uploads_but_its_deletions() {
    let mut s = Setup::new();
    sample_tree(&s.src);
    s.run();
    let used = s.store.usage().unwrap().blocks_used;
    s.store.set_limits(used, used);
    write(&s.src.join("more"), b"more data");
    write(&s.src.join("newdir/f"), b"more data");
    fs::remove_file(s.src.join("a.txt")).unwrap();
    let (r, ev) = s.run();
    assert!(r.store_full, "{ev:#?}");
    assert!(ev.contains(&Event::StoreFull));
    assert_eq!(
        (r.files_uploaded, r.directories_created, r.deleted),
        (0, 0, 1),
        "{ev:#?}"
    );
    // With room again, the rest goes up.
    s.store.set_limits(1 << 40, 1 << 40);
    let (r, _) = s.run();
    assert_eq!((r.files_uploaded, r.directories_created), (2, 1));
    s.assert_same();
}

#[test]
fn a_swapped_store_is_not_touched() {
    let mut s = Setup::new();
    sample_tree(&s.src);
    s.run();
    let before = s.state.clone();
    // Another (new) account behind the same address.
    s.store = FakeStore::default();
    let (r, _) = s.try_run();
    match r {
        Err(SyncError::StoreChanged { reason, state_file }) => {
            assert!(reason.contains("marker"), "{reason}");
            assert_eq!(state_file, s.data.join(sync::STATE_FILE));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.store.client_store_marker().unwrap(), 0);
    assert_eq!(s.store.usage().unwrap().last_object_id_used, 1);
    assert_eq!(s.state.marker(), before.marker());
    // A store with our marker but other location directories.
    s.store.set_client_store_marker(before.marker()).unwrap();
    let k = keys();
    for i in 0..40 {
        let n = format!("x{i}");
        s.store
            .create_directory(1, &EncodedName::encrypt(&k, n.as_bytes()).unwrap(), 0, &[])
            .unwrap();
    }
    s.store
        .create_directory(1, &EncodedName::encrypt(&k, b"home").unwrap(), 0, &[])
        .unwrap();
    let (r, _) = s.try_run();
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("location 'home'"), "{msg}");
    assert!(msg.contains("remove"), "{msg}");
}

#[test]
fn a_rolled_back_store_is_not_touched() {
    let mut s = Setup::new();
    sample_tree(&s.src);
    s.run();
    let snapshot = s.store.clone();
    write(&s.src.join("later"), b"later");
    let (r, _) = s.run();
    assert_eq!(r.files_uploaded, 1);
    // The store comes back from the copy taken before the second run.
    s.store = snapshot.clone();
    fs::remove_file(s.src.join("a.txt")).unwrap();
    let (r, _) = s.try_run();
    let msg = match r {
        Err(e @ SyncError::StoreChanged { .. }) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(msg.contains("last object ID"), "{msg}");
    let id = location_id(&mut s.store, &keys(), "home");
    let mut snap = snapshot;
    assert_eq!(
        store_tree(&mut s.store, &keys(), id),
        store_tree(&mut snap, &keys(), id)
    );
    assert_eq!(s.store.usage().unwrap(), snap.usage().unwrap());

    // Starting over (the state file removed) is a first run again.
    fs::remove_file(s.data.join(sync::STATE_FILE)).unwrap();
    s.state = SyncState::load(&s.data).unwrap();
    let (r, _) = s.run();
    assert_eq!(r.deleted, 1);
    s.assert_same();
}

#[test]
fn the_newest_file_must_still_be_there() {
    let mut s = Setup::new();
    write(&s.src.join("f"), b"1");
    s.run();
    // Same marker, same location, a higher last object ID, but our newest
    // file is gone: not the store we left.
    let marker = s.state.marker();
    let k = keys();
    let mut other = FakeStore::default();
    other.set_client_store_marker(marker).unwrap();
    let home = other
        .create_directory(1, &EncodedName::encrypt(&k, b"home").unwrap(), 0, &[])
        .unwrap();
    assert_eq!(Some(&home), s.state.location_ids().get("home"));
    // Object 3 (our file's ID) is a directory there.
    for i in 0..5 {
        let n = format!("d{i}");
        other
            .create_directory(
                home,
                &EncodedName::encrypt(&k, n.as_bytes()).unwrap(),
                0,
                &[],
            )
            .unwrap();
    }
    s.store = other;
    let (r, _) = s.try_run();
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("is not there"), "{msg}");
}

#[test]
fn state_survives_and_a_stopped_run_deletes_nothing() {
    let mut s = Setup::new();
    sample_tree(&s.src);
    s.run();
    assert!(s.state.tracked_inodes() >= 4);
    fs::remove_file(s.src.join("a.txt")).unwrap();
    let stop = AtomicBool::new(true);
    let mut ev = Vec::new();
    let r = sync::run(&mut s.store, &keys(), &s.opts, &mut s.state, &mut ev, &stop);
    assert!(matches!(r, Err(SyncError::Stopped)));
    let (r, _) = s.run();
    assert_eq!(r.deleted, 1);
    s.assert_same();
}

#[test]
fn location_paths_are_checked() {
    let mut s = Setup::new();
    s.opts
        .locations
        .push(Location::new("gone", s.src.join("nope")));
    write(&s.src.join("x"), b"x");
    let (r, ev) = s.run();
    assert_eq!(r.errors, 1);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::LocationUnavailable { .. }))
    );
    assert_eq!(r.files_uploaded, 1);
}

#[test]
fn a_completed_run_is_recorded_for_compare_and_a_failed_one_is_not() {
    let mut s = Setup::new();
    sample_tree(&s.src);
    let run = |s: &mut Setup| {
        sync::run_in_data_dir(
            &mut s.store,
            &keys(),
            &s.opts,
            &s.data,
            &mut Vec::new(),
            &AtomicBool::new(false),
        )
    };
    assert_eq!(sync::last_sync_start(&s.data), None);
    let r = run(&mut s).unwrap();
    assert_eq!(r.files_uploaded, 7);
    // The run's start (here the test clock) is what compare reads, as it
    // reads 0.13's file; the state was saved too.
    assert_eq!(sync::last_sync_start(&s.data), Some(NOW));
    assert!(sync::last_sync_finish(&s.data).unwrap() >= NOW);
    assert!(s.data.join(sync::STATE_FILE).exists());
    let marker = SyncState::load(&s.data).unwrap().marker();
    assert_ne!(marker, 0);

    // A swapped store: the run fails and the times stay.
    s.store = FakeStore::default();
    s.opts.now = Some(NOW + HOUR);
    assert!(matches!(run(&mut s), Err(SyncError::StoreChanged { .. })));
    assert_eq!(sync::last_sync_start(&s.data), Some(NOW));
    assert_eq!(SyncState::load(&s.data).unwrap().marker(), marker);
}

/// A directory in the store root is live (not deleted) when listed without
/// the deleted ones.
fn root_has(s: &mut FakeStore, k: &Keys, name: &str) -> bool {
    s.list_directory(1, flags::DIR, flags::DELETED, false)
        .unwrap()
        .entries
        .iter()
        .any(|e| e.name.decrypt(k).unwrap() == name.as_bytes())
}

#[test]
fn a_location_taken_out_of_the_config_is_deleted_after_the_delay() {
    let mut s = Setup::new();
    sample_tree(&s.src);
    let other = s._tmp.path().join("other");
    write(&other.join("x"), b"x");
    s.opts.locations.push(Location::new("other", &other));
    s.run();
    assert!(root_has(&mut s.store, &keys(), "other"));
    let other_id = location_id(&mut s.store, &keys(), "other");

    // "other" leaves the config: the first run only notes when to delete it.
    s.opts.locations.retain(|l| l.name != "other");
    let delay = std::time::Duration::from_secs(3600);
    s.opts.delete_redundant_locations_after = delay;
    let (r, _) = s.run();
    assert_eq!(r.deleted, 0);
    assert!(root_has(&mut s.store, &keys(), "other"));
    // Still too early (the deadline survives the state file).
    s.opts.now = Some(NOW + HOUR - 1);
    s.run();
    assert!(root_has(&mut s.store, &keys(), "other"));
    // Due: deleted as a directory, so still there with its files for restore.
    s.opts.now = Some(NOW + HOUR);
    let (r, _) = s.run();
    assert_eq!(r.deleted, 1);
    assert!(!root_has(&mut s.store, &keys(), "other"));
    assert!(root_has(&mut s.store, &keys(), "home"));
    let all = s.store.list_directory(1, flags::DIR, 0, false).unwrap();
    assert!(
        all.entries
            .iter()
            .any(|e| e.object_id == other_id && e.flags & bb_format::directory::Entry::DELETED != 0)
    );
    s.assert_same();
}

#[test]
fn unused_locations_stay_with_a_zero_delay_or_when_they_come_back() {
    let mut s = Setup::new();
    sample_tree(&s.src);
    let other = s._tmp.path().join("other");
    write(&other.join("x"), b"x");
    let other_loc = Location::new("other", &other);
    s.opts.locations.push(other_loc.clone());
    s.run();
    s.opts.delete_redundant_locations_after = std::time::Duration::from_secs(60);

    // Out, then back before the delay: the deadline is forgotten.
    s.opts.locations.retain(|l| l.name != "other");
    s.run();
    s.opts.locations.push(other_loc);
    s.opts.now = Some(NOW + HOUR);
    s.run();
    s.opts.locations.retain(|l| l.name != "other");
    s.opts.now = Some(NOW + 2 * HOUR);
    s.run();
    assert!(
        root_has(&mut s.store, &keys(), "other"),
        "a new delay starts"
    );

    // Zero: never.
    s.opts.delete_redundant_locations_after = std::time::Duration::ZERO;
    s.opts.now = Some(NOW + 100 * HOUR);
    s.run();
    s.opts.now = Some(NOW + 200 * HOUR);
    s.run();
    assert!(root_has(&mut s.store, &keys(), "other"));
}
