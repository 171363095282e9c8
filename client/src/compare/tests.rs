use std::os::unix::fs::PermissionsExt;

use bb_format::EncodedName;
use bb_format::directory::Directory;
use bb_remote::fake::FakeStore;
use bb_remote::{ObjectNames, StoreWrite};

use super::*;
use crate::testutil::upload_tree;

fn keys() -> Keys {
    Keys::test_vector()
}

fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::create_dir(src.join("gone-dir")).unwrap();
    let big: Vec<u8> = (0..20_000u32).map(|i| (i * 13 % 253) as u8).collect();
    fs::write(src.join("big.bin"), &big).unwrap();
    fs::write(src.join("text.txt"), b"some text\n").unwrap();
    fs::write(src.join("mode.txt"), b"mode").unwrap();
    fs::write(src.join("x.txt"), b"xattrs").unwrap();
    fs::write(src.join("delete-me"), b"bye").unwrap();
    fs::write(src.join("sub/deeper/d.txt"), b"deep").unwrap();
    let _ = xattr::set(src.join("x.txt"), "user.a", b"1");
    std::os::unix::fs::symlink("target-1", src.join("link")).unwrap();
    src
}

fn setup(dir: &Path) -> (FakeStore, i64, PathBuf) {
    let src = source(dir);
    let mut store = FakeStore::new(1 << 20, 1 << 21);
    let id = upload_tree(&mut store, &keys(), 1, b"src", &src);
    (store, id, src)
}

fn opts(mode: CompareMode) -> CompareOptions {
    CompareOptions {
        mode,
        store_path: b"/src".to_vec(),
        ..CompareOptions::default()
    }
}

fn run(
    store: &mut dyn StoreRead,
    id: i64,
    src: &Path,
    o: &CompareOptions,
) -> (CompareReport, Vec<String>) {
    let mut ev = Vec::new();
    let r = compare_location(store, &keys(), id, src, o, &mut ev).unwrap();
    let lines = ev
        .iter()
        .flat_map(|e| e.lines())
        .map(|(_, t)| String::from_utf8(t).unwrap())
        .filter(|t| !t.starts_with("Comparing directory"))
        .collect();
    (r, lines)
}

#[test]
fn an_unchanged_tree_compares_clean_in_every_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, id, src) = setup(tmp.path());
    for mode in [CompareMode::Md5, CompareMode::Quick, CompareMode::Full] {
        let (r, lines) = run(&mut store, id, &src, &opts(mode));
        assert!(lines.is_empty(), "{mode:?}: {lines:#?}");
        assert_eq!(r.differences, 0);
        assert_eq!((r.files, r.dirs), (7, 4), "{mode:?}");
        assert_eq!(
            r.summary_lines(),
            [
                "[ 0 (of 0) differences probably due to file modifications after the last \
                 upload ]",
                "Differences: 0 (0 dirs excluded, 0 files excluded, 0 files not checked)"
            ]
        );
    }
}

/// Counts GetFile calls.
struct Counting {
    inner: FakeStore,
    get_files: usize,
}

impl StoreRead for Counting {
    fn list_directory(&mut self, id: i64, m: i16, n: i16, a: bool) -> bb_remote::Result<Directory> {
        self.inner.list_directory(id, m, n, a)
    }
    fn get_object_name(&mut self, o: i64, d: i64) -> bb_remote::Result<Option<ObjectNames>> {
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
        self.get_files += 1;
        self.inner.get_file(d, id, out)
    }
    fn open_file(&mut self, d: i64, id: i64) -> bb_remote::Result<Box<dyn Read + '_>> {
        self.get_files += 1;
        self.inner.open_file(d, id)
    }
    fn get_block_index_by_id(&mut self, id: i64) -> bb_remote::Result<BlockIndex> {
        self.inner.get_block_index_by_id(id)
    }
    fn get_block_index_by_name(
        &mut self,
        d: i64,
        n: &EncodedName,
    ) -> bb_remote::Result<Option<(i64, BlockIndex)>> {
        self.inner.get_block_index_by_name(d, n)
    }
    fn usage(&mut self) -> bb_remote::Result<bb_remote::store::AccountUsage2> {
        self.inner.usage()
    }
    fn client_store_marker(&mut self) -> bb_remote::Result<i64> {
        self.inner.client_store_marker()
    }
}

#[test]
fn md5_mode_downloads_only_symlink_heads() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, id, src) = setup(tmp.path());
    let mut c = Counting {
        inner: store,
        get_files: 0,
    };
    let (r, _) = run(&mut c, id, &src, &opts(CompareMode::Md5));
    assert_eq!(r.differences, 0);
    assert_eq!(c.get_files, 1, "only the symlink");
    c.get_files = 0;
    run(&mut c, id, &src, &opts(CompareMode::Full));
    assert_eq!(c.get_files, 7);
}

fn change(src: &Path) {
    // Same size and mtime: only the MD5s can tell.
    let p = src.join("big.bin");
    let md = fs::metadata(&p).unwrap();
    let mut data = fs::read(&p).unwrap();
    data[10_000] ^= 1;
    fs::write(&p, &data).unwrap();
    localfs::set_mtime(&p, localfs::mtime_of(&md)).unwrap();
    fs::set_permissions(src.join("mode.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    let _ = xattr::set(src.join("x.txt"), "user.a", b"2");
    fs::remove_file(src.join("link")).unwrap();
    std::os::unix::fs::symlink("target-2", src.join("link")).unwrap();
    fs::remove_file(src.join("delete-me")).unwrap();
    fs::write(src.join("added"), b"new").unwrap();
    fs::remove_dir(src.join("gone-dir")).unwrap();
    fs::create_dir(src.join("new-dir")).unwrap();
    fs::set_permissions(src.join("sub"), fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn changes_are_named_with_013_wording() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, id, src) = setup(tmp.path());
    change(&src);
    let s = src.display();
    let xattrs = xattr::get(src.join("x.txt"), "user.a").is_ok();
    let file_attrs = |name: &str| {
        format!("Local file '{s}/{name}' has different attributes to store file '/src/{name}'.")
    };
    let mut full = vec![
        format!("Local file '{s}/big.bin' has different contents to store file '/src/big.bin'."),
        format!("Remote file '/src/delete-me' exists, but local file '{s}/delete-me' does not."),
        file_attrs("link"),
        file_attrs("mode.txt"),
    ];
    if xattrs {
        full.push(file_attrs("x.txt"));
    }
    full.extend([
        format!("Local file '{s}/added' exists, but remote file '/src/added' does not."),
        format!("Remote file '/src/gone-dir' exists, but local file '{s}/gone-dir' does not."),
        format!(
            "Local directory '{s}/sub' has different attributes to store directory '/src/sub'."
        ),
        format!("Local file '{s}/new-dir' exists, but remote file '/src/new-dir' does not."),
    ]);
    for mode in [CompareMode::Md5, CompareMode::Full] {
        let (r, lines) = run(&mut store, id, &src, &opts(mode));
        assert_eq!(lines, full, "{mode:?}");
        assert_eq!(r.differences, full.len() as u64);
    }
    // Quick: no file attributes, but directory attributes.
    let quick: Vec<String> = full
        .iter()
        .filter(|l| !l.contains("attributes to store file"))
        .cloned()
        .collect();
    let (_, lines) = run(&mut store, id, &src, &opts(CompareMode::Quick));
    assert_eq!(lines, quick);
    // -A: no attributes at all.
    let o = CompareOptions {
        ignore_attributes: true,
        ..opts(CompareMode::Md5)
    };
    let (_, lines) = run(&mut store, id, &src, &o);
    assert_eq!(lines.len(), quick.len() - 1);
}

#[test]
fn entry_attributes_are_used_and_announced() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, id, src) = setup(tmp.path());
    let k = keys();
    let p = src.join("text.txt");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o604)).unwrap();
    let a = localfs::read_attributes(&p, &fs::symlink_metadata(&p).unwrap()).unwrap();
    store
        .set_replacement_file_attributes(
            id,
            &EncodedName::encrypt(&k, b"text.txt").unwrap(),
            a.attribute_hash(&k, b"text.txt").unwrap(),
            &a.encrypt(&k).unwrap(),
        )
        .unwrap();
    for mode in [CompareMode::Md5, CompareMode::Full] {
        let (r, lines) = run(&mut store, id, &src, &opts(mode));
        assert_eq!(r.differences, 0, "{mode:?}: {lines:?}");
    }
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    let (_, lines) = run(&mut store, id, &src, &opts(CompareMode::Md5));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[1],
        "(the file above has had new attributes applied)\n"
    );
}

#[test]
fn excludes_count_as_013_counts_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, id, src) = setup(tmp.path());
    fs::write(src.join("local-only"), b"x").unwrap();
    fs::create_dir(src.join("local-dir")).unwrap();
    fs::write(src.join("text.txt"), b"changed, but excluded").unwrap();
    let ex: Arc<Excluded> = Arc::new(|p: &Path, _dir: bool| {
        let n = p.file_name().unwrap().as_bytes();
        n == b"local-only" || n == b"local-dir" || n == b"text.txt" || n == b"sub"
    });
    let o = CompareOptions {
        excluded: Some(ex),
        ..opts(CompareMode::Md5)
    };
    let (r, lines) = run(&mut store, id, &src, &o);
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!((r.excluded_files, r.excluded_dirs), (1, 2));
    assert_eq!(
        r.summary_lines()[1],
        "Differences: 0 (2 dirs excluded, 1 files excluded, 0 files not checked)"
    );
}

#[test]
fn changes_after_the_last_sync_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, id, src) = setup(tmp.path());
    fs::write(src.join("text.txt"), b"changed after the sync").unwrap();
    let o = CompareOptions {
        last_sync_time: Some(1),
        ..opts(CompareMode::Md5)
    };
    let (r, lines) = run(&mut store, id, &src, &o);
    assert_eq!(r.explained_by_mod_time, r.differences);
    assert!(r.differences >= 1);
    assert!(lines.iter().any(|l| l
        == "(the file above was modified after the last sync time -- might be reason for \
            difference)"));
}
