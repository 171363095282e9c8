//! The one conformance suite for [`StoreWrite`] (STYLE rule 5): every
//! implementation — the in-memory [`crate::fake::FakeStore`], a [`crate::Session`]
//! to our bbstored, a session to the real 0.13 bbstored — must pass it.
//!
//! [`run`] expects a fresh account (marker 0, empty root, room for a few MB)
//! and walks every command through its successes and the error replies 0.13
//! answers without closing the connection (§3.3), checking after each error
//! that the session goes on. [`hard_limit`] expects an account whose hard limit
//! is at most a few hundred KB. Encoded files are made with the given keys and
//! decoded back, so a test also proves the bytes round-trip.
//!
//! Test code: a failure panics with what was expected.

use std::io::{Cursor, Read, Write};

use bb_format::decode::{StreamDecoder, decode_file};
use bb_format::diff::{DiffLimits, diff};
use bb_format::directory::{Directory, Entry};
use bb_format::encode::{FileEncoder, FileMeta, encode_file};
use bb_format::recipe::Recipe;
use bb_format::{EncodedName, Keys};
use bb_proto::ErrorCode;
use bb_proto::message::{MoveObject, flags};

use crate::error::Error;
use crate::store::StoreWrite;

const ROOT: i64 = flags::ROOT_DIRECTORY;
const CURRENT: i16 = flags::DELETED | flags::OLD_VERSION;

/// Deterministic incompressible bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Helpers bound to one key set.
#[derive(Debug)]
pub struct Kit<'k> {
    pub keys: &'k Keys,
}

impl Kit<'_> {
    pub fn name(&self, s: &str) -> EncodedName {
        EncodedName::encrypt(self.keys, s.as_bytes()).expect("encrypt name")
    }

    pub fn attrs(&self, clear: &[u8]) -> Vec<u8> {
        bb_format::attributes::encrypt(self.keys, clear)
    }

    pub fn meta(&self, dir: i64, name: &str) -> FileMeta {
        FileMeta {
            container_id: dir,
            mtime: 0x5_0000_0000,
            name: self.name(name),
            attributes: self.attrs(b"file attributes"),
            symlink: false,
        }
    }

    /// An encoded file (file order) holding `content`.
    pub fn encode(&self, dir: i64, name: &str, content: &[u8]) -> Vec<u8> {
        let recipe = Recipe::whole(content.len() as u64);
        encode_file(self.keys, &self.meta(dir, name), &recipe, content).expect("encode")
    }

    /// Uploads `content` as `name` in `dir` (a full upload).
    pub fn upload(
        &self,
        s: &mut dyn StoreWrite,
        dir: i64,
        name: &str,
        content: &[u8],
    ) -> Result<i64, Error> {
        let enc = self.encode(dir, name, content);
        s.store_file(
            dir,
            &self.name(name),
            0x5_0000_0000,
            0,
            0,
            &mut Cursor::new(enc),
        )
    }

    /// Fetches a file through `get_file` and decodes it.
    pub fn fetch(&self, s: &mut dyn StoreWrite, dir: i64, id: i64) -> Vec<u8> {
        let mut v = Vec::new();
        let n = s.get_file(dir, id, &mut v).expect("GetFile");
        assert_eq!(n as usize, v.len(), "GetFile's length");
        decode_file(self.keys, &v).expect("decode GetFile").content
    }
}

fn expect_code<T: std::fmt::Debug>(r: Result<T, Error>, code: ErrorCode, what: &str) {
    match r {
        Err(e) if e.code() == Some(code) => {}
        other => panic!("{what}: expected {code:?}, got {other:?}"),
    }
}

fn alive(s: &mut dyn StoreWrite, after: &str) {
    s.list_directory(ROOT, flags::INCLUDE_EVERYTHING, CURRENT, false)
        .unwrap_or_else(|e| panic!("the session should go on after {after}: {e}"));
}

fn entries_named<'d>(d: &'d Directory, n: &EncodedName) -> Vec<&'d Entry> {
    d.entries.iter().filter(|e| &e.name == n).collect()
}

fn stream_of(s: &mut dyn StoreWrite, dir: i64, id: i64) -> Vec<u8> {
    let mut v = Vec::new();
    s.get_file(dir, id, &mut v).expect("GetFile");
    v
}

fn list_all(s: &mut dyn StoreWrite, id: i64) -> Directory {
    s.list_directory(id, flags::INCLUDE_EVERYTHING, flags::EXCLUDE_NOTHING, true)
        .unwrap_or_else(|e| panic!("list {id}: {e}"))
}

fn list_current(s: &mut dyn StoreWrite, id: i64) -> Directory {
    s.list_directory(id, flags::INCLUDE_EVERYTHING, CURRENT, true)
        .unwrap_or_else(|e| panic!("list {id}: {e}"))
}

/// A `Write` that only compares what it is given with the expected bytes.
struct Compare<'a> {
    want: &'a [u8],
    at: usize,
}

impl Write for Compare<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let end = self.at + buf.len();
        assert!(end <= self.want.len(), "more bytes than expected");
        assert!(
            buf == &self.want[self.at..end],
            "bytes differ at {}",
            self.at
        );
        self.at = end;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `Read` that fails.
struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("the disc went away"))
    }
}

/// The suite; see the module header.
pub fn run(s: &mut dyn StoreWrite, keys: &Keys) {
    let k = Kit { keys };

    // The store marker (§4.3): 0 on a fresh account, then what we set.
    assert_eq!(s.client_store_marker().unwrap(), 0, "fresh account marker");
    let marker = 0x0006_1108_e04b_9821;
    s.set_client_store_marker(marker).unwrap();
    assert_eq!(s.client_store_marker().unwrap(), marker);
    assert_eq!(s.usage().unwrap().client_store_marker, marker);

    let root = list_all(s, ROOT);
    assert_eq!(root.object_id, ROOT);
    assert!(root.entries.is_empty(), "fresh root: {root:?}");

    // Directories.
    let (attrs_a, attrs_b, attrs_c) = (k.attrs(b"dir a"), k.attrs(b"dir b"), k.attrs(b"dir c"));
    let a = s
        .create_directory(ROOT, &k.name("dir-a"), 111, &attrs_a)
        .unwrap();
    expect_code(
        s.create_directory(ROOT, &k.name("dir-a"), 111, &attrs_a),
        ErrorCode::DirectoryAlreadyExists,
        "CreateDirectory twice",
    );
    expect_code(
        s.create_directory(999_999, &k.name("x"), 1, &attrs_a),
        ErrorCode::DoesNotExist,
        "CreateDirectory in a missing parent",
    );
    let b = s
        .create_directory2(ROOT, &k.name("dir-b"), 222, 333_000, &attrs_b)
        .unwrap();
    assert!(a > ROOT && b > a, "ids {a} {b}");
    let root = list_all(s, ROOT);
    assert_eq!(root.entries.len(), 2);
    let ea = &root.entries[0];
    assert_eq!(
        (ea.object_id, ea.flags, ea.mtime, &ea.name),
        (a, Entry::DIR, 0, &k.name("dir-a"))
    );
    assert_eq!(root.entries[1].mtime, 333_000, "CreateDirectory2's mtime");
    let da = list_all(s, a);
    assert_eq!(
        (da.object_id, da.container_id, da.attributes_mod_time),
        (a, ROOT, 111)
    );
    assert_eq!(da.attributes, attrs_a);
    let da = s
        .list_directory(a, flags::INCLUDE_EVERYTHING, CURRENT, false)
        .unwrap();
    assert!(da.attributes.is_empty(), "attributes only when asked");
    s.change_dir_attributes(a, 444, &attrs_c).unwrap();
    let da = list_all(s, a);
    assert_eq!((da.attributes_mod_time, &da.attributes), (444, &attrs_c));
    s.change_dir_attributes(b, 445, &[]).unwrap();
    assert!(
        list_all(s, b).attributes.is_empty(),
        "empty attributes clear"
    );
    expect_code(
        s.change_dir_attributes(999_999, 1, &attrs_c),
        ErrorCode::DoesNotExist,
        "ChangeDirAttributes of a missing directory",
    );
    expect_code(
        s.list_directory(999_999, -1, 0, true),
        ErrorCode::DoesNotExist,
        "ListDirectory of a missing directory",
    );
    alive(s, "ListDirectory of a missing directory");

    // A small file, every way of reading it back.
    let small = b"Hello, store!\n".repeat(100);
    let n_small = k.name("small");
    let enc = k.encode(a, "small", &small);
    let f1 = s
        .store_file(a, &n_small, 5000, 0xabc, 0, &mut Cursor::new(&enc))
        .unwrap();
    let da = list_all(s, a);
    let e = da.entry_by_id(f1).expect("the new file's entry");
    assert_eq!(
        (e.flags, e.mtime, e.attributes_hash, &e.name),
        (Entry::FILE, 5000, 0xabc, &n_small)
    );
    assert!(e.size_in_blocks > 0);
    assert_eq!(k.fetch(s, a, f1), small);
    let mut obj = Vec::new();
    s.get_object(f1, &mut obj).unwrap();
    assert_eq!(obj, enc, "GetObject returns the upload verbatim");
    let mut stream_order = Vec::new();
    s.open_file(a, f1)
        .unwrap()
        .read_to_end(&mut stream_order)
        .unwrap();
    assert_eq!(decode_file(keys, &stream_order).unwrap().content, small);
    let idx = s.get_block_index_by_id(f1).unwrap();
    assert_eq!((idx.entries.len(), idx.other_file_id), (1, 0));
    let (id, idx2) = s.get_block_index_by_name(a, &n_small).unwrap().unwrap();
    assert_eq!((id, &idx2), (f1, &idx));
    assert!(
        s.get_block_index_by_name(a, &k.name("nothing"))
            .unwrap()
            .is_none()
    );
    let mut dir_obj = Vec::new();
    s.get_object(a, &mut dir_obj).unwrap();
    let parsed = Directory::parse(&dir_obj).expect("GetObject of a directory parses");
    assert_eq!(parsed.entries.len(), 1);

    // A bigger file, streamed both ways: encoded while it uploads, decoded
    // while it downloads.
    let big = noise(3 << 20, 1);
    let n_big = k.name("big");
    let mut encoder = FileEncoder::new(
        keys,
        k.meta(a, "big"),
        Recipe::whole(big.len() as u64),
        Cursor::new(&big),
    )
    .unwrap();
    let f_big = s.store_file(a, &n_big, 6000, 0, 0, &mut encoder).unwrap();
    {
        let r = s.open_file(a, f_big).unwrap();
        let mut dec = StreamDecoder::new(keys, r).unwrap();
        let mut cmp = Compare { want: &big, at: 0 };
        std::io::copy(&mut dec, &mut cmp).unwrap();
        assert_eq!(cmp.at, big.len());
    }
    // Leaving a download early keeps the session usable.
    {
        let mut r = s.open_file(a, f_big).unwrap();
        let mut head = [0u8; 100];
        r.read_exact(&mut head).unwrap();
    }
    alive(s, "a download left early");
    let mut stream_order = Vec::new();
    s.get_file(a, f_big, &mut stream_order).unwrap();
    assert_eq!(decode_file(keys, &stream_order).unwrap().content, big);

    // A new version of "small": the old one becomes OldVersion.
    let small2 = b"Hello again.\n".repeat(50);
    let f2 = k.upload(s, a, "small", &small2).unwrap();
    let cur = list_current(s, a);
    let ids: Vec<i64> = entries_named(&cur, &n_small)
        .iter()
        .map(|e| e.object_id)
        .collect();
    assert_eq!(ids, vec![f2]);
    let all = list_all(s, a);
    assert_eq!(
        all.entry_by_id(f1).unwrap().flags,
        Entry::FILE | Entry::OLD_VERSION
    );
    assert_eq!(k.fetch(s, a, f1), small, "the old version is still there");
    assert_eq!(k.fetch(s, a, f2), small2);

    // A diff upload against the newest "big".
    let mut big2 = big.clone();
    big2[1 << 20..(1 << 20) + 5000].copy_from_slice(&noise(5000, 2));
    big2.extend_from_slice(&noise(10_000, 3));
    let (old_id, old_idx) = s.get_block_index_by_name(a, &n_big).unwrap().unwrap();
    assert_eq!(old_id, f_big);
    let clears = old_idx.decrypt_all(keys).unwrap();
    let outcome = diff(
        &old_idx,
        &clears,
        old_id,
        &mut Cursor::new(&big2),
        big2.len() as u64,
        &mut DiffLimits::default(),
    )
    .unwrap();
    assert!(outcome.recipe.has_references(), "the diff reuses blocks");
    let patch = encode_file(keys, &k.meta(a, "big"), &outcome.recipe, &big2).unwrap();
    assert!(patch.len() < big2.len() / 2, "a patch, not a whole file");
    let f_big2 = s
        .store_file(a, &n_big, 7000, 0, old_id, &mut Cursor::new(&patch))
        .unwrap();
    assert_eq!(k.fetch(s, a, f_big2), big2);
    assert_eq!(k.fetch(s, a, f_big), big, "the old version rebuilt");
    assert_eq!(
        s.get_block_index_by_name(a, &n_big).unwrap().unwrap().0,
        f_big2
    );
    assert_eq!(
        s.get_block_index_by_id(f_big2).unwrap().other_file_id,
        0,
        "the newest version is stored whole"
    );
    expect_code(
        s.store_file(a, &n_big, 1, 0, 999_999, &mut Cursor::new(&patch)),
        ErrorCode::DiffFromFileDoesNotExist,
        "diff from a missing file",
    );
    alive(s, "DiffFromFileDoesNotExist");

    // Uploads the server refuses; the session goes on.
    expect_code(
        s.store_file(
            a,
            &k.name("junk"),
            1,
            0,
            0,
            &mut Cursor::new(noise(5000, 4)),
        ),
        ErrorCode::FileDoesNotVerify,
        "an upload that is not an encoded file",
    );
    alive(s, "FileDoesNotVerify");
    let enc = k.encode(999_999, "lost", &small);
    expect_code(
        s.store_file(999_999, &k.name("lost"), 1, 0, 0, &mut Cursor::new(enc)),
        ErrorCode::DoesNotExist,
        "StoreFile into a missing directory",
    );
    alive(s, "StoreFile into a missing directory");

    // A source that fails in the middle: the upload is abandoned with the
    // source's error, nothing is stored under the name, the session goes on.
    let mut failing = Cursor::new(k.encode(a, "half", &big))
        .take(1 << 20)
        .chain(Failing);
    match s.store_file(a, &k.name("half"), 1, 0, 0, &mut failing) {
        Err(Error::Source { .. }) => {}
        other => panic!("upload from a failing source: {other:?}"),
    }
    alive(s, "an upload from a failing source");
    assert!(entries_named(&list_all(s, a), &k.name("half")).is_empty());

    // Replacement attributes.
    let rattrs = k.attrs(b"replacement");
    let rid = s
        .set_replacement_file_attributes(a, &n_small, 0xdef, &rattrs)
        .unwrap();
    assert_eq!(rid, f2);
    let da = list_all(s, a);
    let e = da.entry_by_id(f2).unwrap();
    assert_eq!((e.attributes_hash, &e.attributes), (0xdef, &rattrs));
    expect_code(
        s.set_replacement_file_attributes(a, &k.name("none"), 1, &rattrs),
        ErrorCode::DoesNotExist,
        "SetReplacementFileAttributes of a missing file",
    );

    // Names up to the root.
    let n = s.get_object_name(f2, a).unwrap().expect("names of f2");
    assert_eq!(n.names, vec![n_small.clone(), k.name("dir-a")]);
    assert_eq!(n.flags, flags::FILE);
    assert_eq!(n.attributes_hash, 0xdef);
    let n = s
        .get_object_name(0, a)
        .unwrap()
        .expect("name of directory a");
    assert_eq!((n.names, n.flags), (vec![k.name("dir-a")], flags::DIR));
    assert!(s.get_object_name(999_999, a).unwrap().is_none());
    alive(s, "GetObjectName of a missing object");

    // Moves and renames.
    let n_ren = k.name("renamed");
    let both = MoveObject::FLAGS_MOVE_ALL_WITH_SAME_NAME
        | MoveObject::FLAGS_ALLOW_MOVE_OVER_DELETED_OBJECT;
    s.move_object(f2, a, a, &n_ren, both).unwrap();
    let da = list_all(s, a);
    assert_eq!(entries_named(&da, &n_ren).len(), 2, "all versions renamed");
    assert!(entries_named(&da, &n_small).is_empty());
    expect_code(
        s.move_object(f2, a, a, &n_ren, 0),
        ErrorCode::TargetNameExists,
        "rename onto a taken name",
    );
    expect_code(
        s.move_object(f2, b, a, &k.name("x"), 0),
        ErrorCode::DoesNotExistInDirectory,
        "move from the wrong directory",
    );
    let n_moved = k.name("big-moved");
    s.move_object(f_big2, a, b, &n_moved, both).unwrap();
    assert!(entries_named(&list_all(s, a), &n_big).is_empty());
    assert_eq!(entries_named(&list_all(s, b), &n_moved).len(), 2);
    assert_eq!(k.fetch(s, b, f_big2), big2);
    let c = s
        .create_directory(a, &k.name("dir-c"), 1, &attrs_c)
        .unwrap();
    s.move_object(c, a, b, &k.name("c-moved"), both).unwrap();
    assert_eq!(
        list_all(s, c).container_id,
        b,
        "a moved directory's container"
    );
    let n = s.get_object_name(0, c).unwrap().unwrap();
    assert_eq!(n.names, vec![k.name("c-moved"), k.name("dir-b")]);

    // Deleting and undeleting files.
    assert_eq!(s.delete_file(a, &n_ren).unwrap(), f2);
    assert!(entries_named(&list_current(s, a), &n_ren).is_empty());
    let da = list_all(s, a);
    assert!(
        entries_named(&da, &n_ren)
            .iter()
            .all(|e| e.flags & Entry::DELETED != 0),
        "every version deleted"
    );
    assert_eq!(
        s.delete_file(a, &n_ren).unwrap(),
        0,
        "nothing left to delete"
    );
    assert_eq!(s.delete_file(a, &k.name("never")).unwrap(), 0);
    assert_eq!(s.undelete_file(a, f2).unwrap(), f2);
    assert_eq!(s.undelete_file(a, f1).unwrap(), 0, "an old version");
    let cur = list_current(s, a);
    assert_eq!(
        entries_named(&cur, &n_ren)
            .iter()
            .map(|e| e.object_id)
            .collect::<Vec<_>>(),
        vec![f2]
    );
    assert_eq!(s.undelete_file(a, 999_999).unwrap(), 0);

    // Deleting and undeleting directories.
    s.delete_directory(b).unwrap();
    let root = list_current(s, ROOT);
    assert!(root.entry_by_id(b).is_none(), "b deleted");
    assert_ne!(
        list_all(s, ROOT).entry_by_id(b).unwrap().flags & Entry::DELETED,
        0
    );
    assert!(
        list_all(s, b)
            .entries
            .iter()
            .all(|e| e.flags & Entry::DELETED != 0),
        "everything in b deleted"
    );
    s.undelete_directory(b).unwrap();
    assert!(list_current(s, ROOT).entry_by_id(b).is_some(), "b back");
    assert_eq!(
        entries_named(&list_current(s, b), &n_moved).len(),
        1,
        "the current version back"
    );
    expect_code(
        s.delete_directory(ROOT),
        ErrorCode::CannotDeleteRoot,
        "DeleteDirectory of the root",
    );
    expect_code(
        s.delete_directory(999_999),
        ErrorCode::DoesNotExist,
        "DeleteDirectory of a missing directory",
    );

    // Reads that miss.
    expect_code(
        s.get_file(a, 999_999, &mut Vec::new()),
        ErrorCode::DoesNotExist,
        "GetFile of a missing object",
    );
    expect_code(
        s.get_file(a, f_big2, &mut Vec::new()),
        ErrorCode::DoesNotExistInDirectory,
        "GetFile from the wrong directory",
    );
    expect_code(
        s.get_object(999_999, &mut Vec::new()),
        ErrorCode::DoesNotExist,
        "GetObject of a missing object",
    );
    match s.open_file(a, 999_999) {
        Err(e) if e.code() == Some(ErrorCode::DoesNotExist) => {}
        Err(e) => panic!("open_file of a missing object: {e}"),
        Ok(_) => panic!("open_file of a missing object succeeded"),
    }
    alive(s, "reads that missed");

    // Pipelined reads: many commands ahead of their replies, an error reply in
    // the middle passed on without losing step, streams in order.
    let (small_stream, big_stream) = (stream_of(s, a, f1), stream_of(s, b, f_big2));
    let mut want: Vec<(i64, i64)> = (0..150).map(|_| (a, f1)).collect();
    want[70] = (a, 999_999);
    want.push((b, f_big2));
    let mut got = Vec::new();
    s.get_files(&want, 64 << 20, &mut |i, r| got.push((i, r)))
        .unwrap();
    assert_eq!(got.len(), want.len());
    for (i, r) in got {
        match (i, r) {
            (70, Err(e)) => assert_eq!(e.code(), Some(ErrorCode::DoesNotExist)),
            (70, Ok(_)) => panic!("get_files of a missing object succeeded"),
            (i, Ok(v)) if i == want.len() - 1 => assert!(v == big_stream, "pipelined big file"),
            (i, Ok(v)) => assert!(v == small_stream, "pipelined GetFile {i}"),
            (_, Err(e)) => panic!("pipelined GetFile {i}: {e}"),
        }
    }
    let mut dirs = Vec::new();
    s.list_directories(&[ROOT, 999_999, a], &mut |i, r| dirs.push((i, r)))
        .unwrap();
    assert_eq!(dirs.len(), 3);
    assert_eq!(dirs[0].1.as_ref().unwrap(), &list_all(s, ROOT));
    assert!(
        dirs[1].1.is_err(),
        "list_directories of a missing directory"
    );
    assert_eq!(dirs[2].1.as_ref().unwrap(), &list_all(s, a));
    alive(s, "pipelined reads");

    // Usage: counters that every implementation keeps the same way.
    let u = s.usage().unwrap();
    assert!(u.block_size > 0 && u.blocks_used > 0, "{u:?}");
    assert!(u.last_object_id_used >= f_big2, "{u:?}");
    assert!(u.num_directories >= 4, "{u:?}");
    // 0.13 does not count undeleted files back (§3.3.18): only lower bounds.
    assert!(u.num_current_files >= 1 && u.num_old_files >= 1, "{u:?}");
    assert_eq!(u.client_store_marker, marker);
}

/// Uploads over the hard limit (an account of at most a few hundred KB):
/// StorageLimitExceeded, the session goes on, and a small file still fits.
pub fn hard_limit(s: &mut dyn StoreWrite, keys: &Keys) {
    let k = Kit { keys };
    let u = s.usage().unwrap();
    let room = (u.blocks_hard_limit - u.blocks_used).max(0) as u64 * u.block_size as u64;
    assert!(room < 4 << 20, "hard_limit needs a small account: {u:?}");
    let big = noise(room as usize + (2 << 20), 5);
    let mut encoder = FileEncoder::new(
        keys,
        k.meta(ROOT, "too big"),
        Recipe::whole(big.len() as u64),
        Cursor::new(&big),
    )
    .unwrap();
    expect_code(
        s.store_file(ROOT, &k.name("too big"), 1, 0, 0, &mut encoder),
        ErrorCode::StorageLimitExceeded,
        "an upload over the hard limit",
    );
    alive(s, "StorageLimitExceeded");
    let id = k.upload(s, ROOT, "fits", b"a small file").unwrap();
    assert_eq!(k.fetch(s, ROOT, id), b"a small file");
    let after = s.usage().unwrap();
    assert!(after.blocks_used <= after.blocks_hard_limit, "{after:?}");
}

/// Every write command refused in a read-only session, reads allowed.
pub fn read_only(s: &mut dyn StoreWrite, keys: &Keys) {
    let k = Kit { keys };
    list_all(s, ROOT);
    s.usage().unwrap();
    let n = k.name("ro");
    expect_code(
        s.set_client_store_marker(1),
        ErrorCode::SessionReadOnly,
        "SetClientStoreMarker",
    );
    expect_code(
        s.create_directory(ROOT, &n, 1, &[1, 2, 3]),
        ErrorCode::SessionReadOnly,
        "CreateDirectory",
    );
    expect_code(
        k.upload(s, ROOT, "ro", b"data"),
        ErrorCode::SessionReadOnly,
        "StoreFile",
    );
    expect_code(
        s.delete_file(ROOT, &n),
        ErrorCode::SessionReadOnly,
        "DeleteFile",
    );
    expect_code(
        s.delete_directory(2),
        ErrorCode::SessionReadOnly,
        "DeleteDirectory",
    );
    alive(s, "SessionReadOnly");
}
