//! Golden test: decode every complete file object of the store written by the
//! real Box Backup 0.13 (`shared/fixtures/bb013/store-single.tar.gz`) and check
//! its content against what `bbackupquery get -i` fetched
//! (`expected/single/versions.txt`). Patches (other-file ID != 0) belong to
//! combine and are skipped here.

use std::collections::BTreeMap;
use std::io::Read;

use bb_format::Keys;
use bb_format::decode::{StreamDecoder, decode_file};
use bb_format::layout::{FileLayout, to_stream_order};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/bb013");
const ACCOUNT_ROOT: &str = "store-single/disc0/backup/01234567/";

/// Object ID from a path under the account root (store.md §3.2): directory
/// components are the higher bytes, least significant first.
fn object_id(rel: &str) -> Option<u64> {
    let rel = rel.strip_suffix(".rfw")?;
    let mut parts: Vec<&str> = rel.split('/').collect();
    let leaf = parts.pop()?.strip_prefix('o')?;
    let mut id = u64::from_str_radix(leaf, 16).ok()?;
    for (i, d) in parts.iter().enumerate() {
        id |= u64::from_str_radix(d, 16).ok()? << (8 * (i + 1));
    }
    Some(id)
}

fn store_objects() -> BTreeMap<u64, Vec<u8>> {
    let gz = std::fs::read(format!("{FIXTURES}/store-single.tar.gz")).expect("fixture tarball");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
    let mut objects = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let Some(rel) = path
            .strip_prefix("./")
            .unwrap_or(&path)
            .strip_prefix(ACCOUNT_ROOT)
        else {
            continue;
        };
        let Some(id) = object_id(rel) else { continue };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        objects.insert(id, bytes);
    }
    objects
}

/// Object ID -> Some(md5 hex) for files, None for symlinks.
fn expected() -> BTreeMap<u64, Option<String>> {
    let text = std::fs::read_to_string(format!("{FIXTURES}/expected/single/versions.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let id = u64::from_str_radix(cols[0], 16).unwrap();
            let what = cols[3];
            let md5 = what.strip_prefix("md5=").map(str::to_owned);
            assert!(md5.is_some() || what.starts_with("->"), "{l}");
            (id, md5)
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn every_complete_file_object_decodes() {
    let keys =
        Keys::from_file(format!("{FIXTURES}/keys/01234567-FileEncKeys.raw").as_ref()).unwrap();
    let objects = store_objects();
    let expected = expected();
    assert!(objects.len() > 250, "{} objects", objects.len());

    let (mut complete, mut patches, mut symlinks, mut compressed_chunks) = (0, 0, 0, 0);
    for (&id, bytes) in &objects {
        // Directories, and anything else that is not an encoded file.
        let Ok(layout) = FileLayout::parse(bytes) else {
            continue;
        };
        if !layout.is_complete() {
            patches += 1;
            assert!(
                decode_file(&keys, bytes).is_err(),
                "patch {id:#x} must not decode alone"
            );
            continue;
        }
        complete += 1;
        let want = expected
            .get(&id)
            .unwrap_or_else(|| panic!("object {id:#x} is not in versions.txt"));
        let d = decode_file(&keys, bytes).unwrap_or_else(|e| panic!("object {id:#x}: {e}"));
        compressed_chunks += (0..layout.index.entries.len())
            .filter(|&i| layout.chunk(i).is_some_and(|c| c[0] == 0x05))
            .count();
        match want {
            Some(md5) => assert_eq!(
                &hex(&bb_format::crypto::md5(&d.content)),
                md5,
                "object {id:#x}"
            ),
            None => {
                symlinks += 1;
                assert_eq!(d.header.num_blocks, 0, "symlink {id:#x}");
                assert_eq!(d.header.max_block_clear_size, 128);
                assert_eq!(layout.index.iv_base, 0);
                assert!(d.content.is_empty());
            }
        }

        // The same object as GetFile sends it, through the streaming decoder.
        let stream = to_stream_order(&layout);
        let mut dec = StreamDecoder::new(&keys, &stream[..]).unwrap();
        assert_eq!(dec.header(), &d.header);
        assert_eq!(dec.name(), &d.name);
        assert_eq!(dec.attributes(), &d.attributes[..]);
        let mut content = Vec::new();
        dec.read_to_end(&mut content).unwrap();
        assert!(
            content == d.content,
            "object {id:#x}: streamed content differs"
        );
    }
    // Every file object bbackupquery fetched is here, complete or as a patch.
    assert_eq!(complete + patches, expected.len());
    assert_eq!(symlinks, 3);
    assert!(patches > 0, "the fixture holds patches");
    assert!(compressed_chunks > 0, "real zlib chunks were decoded");
    eprintln!(
        "decoded {complete} complete objects ({symlinks} symlinks, {compressed_chunks} compressed chunks); skipped {patches} patches"
    );
}
