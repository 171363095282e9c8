//! The whole upload path, client and server, on random file pairs: the client
//! diffs the new file against the old version's block index and encodes the
//! recipe; the server combines the diff with the old object into the new
//! complete object and reverse-diffs the old object into a patch. Then the new
//! object must decode to the new file, and the patch rebuilt against it must
//! decode to the old file.

use std::io::Cursor;

use bb_format::combine::{combine, rebuild, reverse_diff, stream};
use bb_format::decode::decode_file;
use bb_format::diff::{DiffLimits, diff};
use bb_format::encode::{FileMeta, encode_file};
use bb_format::layout::FileLayout;
use bb_format::recipe::Recipe;
use bb_format::{EncodedName, Keys};
use proptest::prelude::*;

const OLD_ID: i64 = 0x10;

fn meta(keys: &Keys, mtime: i64) -> FileMeta {
    FileMeta {
        container_id: 2,
        mtime,
        name: EncodedName::encrypt(keys, b"file.bin").unwrap(),
        attributes: vec![2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9, 9],
        symlink: false,
    }
}

/// Random content that is partly compressible, so both chunk kinds occur.
fn content() -> impl Strategy<Value = Vec<u8>> {
    (0usize..120_000, any::<u64>()).prop_map(|(len, seed)| {
        let mut x = seed | 1;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if (i / 5000) % 2 == 0 {
                    b"abcdefgh"[(x % 8) as usize]
                } else {
                    x as u8
                }
            })
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Edit {
    Overwrite(usize, Vec<u8>),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Append(Vec<u8>),
}

fn edit() -> impl Strategy<Value = Edit> {
    let bytes = proptest::collection::vec(any::<u8>(), 1..600);
    prop_oneof![
        (any::<usize>(), bytes.clone()).prop_map(|(a, b)| Edit::Overwrite(a, b)),
        (any::<usize>(), bytes.clone()).prop_map(|(a, b)| Edit::Insert(a, b)),
        (any::<usize>(), 1usize..5000).prop_map(|(a, n)| Edit::Delete(a, n)),
        bytes.prop_map(Edit::Append),
    ]
}

fn apply(old: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = old.to_vec();
    for e in edits {
        let at = |a: usize, v: &Vec<u8>| if v.is_empty() { 0 } else { a % (v.len() + 1) };
        match e {
            Edit::Overwrite(a, b) => {
                let p = at(*a, &v);
                for (i, x) in b.iter().enumerate() {
                    if p + i < v.len() {
                        v[p + i] = *x;
                    }
                }
            }
            Edit::Insert(a, b) => {
                let p = at(*a, &v);
                v.splice(p..p, b.iter().copied());
            }
            Edit::Delete(a, n) => {
                let p = at(*a, &v);
                let end = (p + n).min(v.len());
                v.drain(p..end);
            }
            Edit::Append(b) => v.extend_from_slice(b),
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn diff_combine_and_reverse_diff_round_trip(
        old in content(),
        edits in proptest::collection::vec(edit(), 0..4),
    ) {
        let keys = Keys::test_vector();
        let new = apply(&old, &edits);
        let old_obj = encode_file(&keys, &meta(&keys, 1), &Recipe::whole(old.len() as u64), &old).unwrap();
        let old_index = FileLayout::parse(&old_obj).unwrap().index;
        let clears = old_index.decrypt_all(&keys).unwrap();

        let outcome = diff(&old_index, &clears, OLD_ID, &mut Cursor::new(&new), new.len() as u64, &mut DiffLimits::default()).unwrap();
        let upload = encode_file(&keys, &meta(&keys, 2), &outcome.recipe, &new).unwrap();

        if !outcome.recipe.has_references() {
            prop_assert_eq!(decode_file(&keys, &upload).unwrap().content, new);
            return Ok(());
        }
        // Server: combine into the new complete version...
        let new_obj = combine(&upload, &old_obj).unwrap();
        let decoded = decode_file(&keys, &new_obj).unwrap();
        prop_assert_eq!(&decoded.content, &new);
        prop_assert_eq!(decoded.header.mtime, 2);
        // ...and keep the old one as a patch against it.
        let (patch, shared) = reverse_diff(&upload, &old_obj, OLD_ID).unwrap();
        prop_assert!(shared);
        prop_assert!(patch.len() <= old_obj.len());
        let rebuilt = rebuild(&new_obj, &[&patch]).unwrap();
        prop_assert_eq!(decode_file(&keys, &rebuilt).unwrap().content, old);

        // The streaming transforms write the same bytes.
        let mut s_new = Vec::new();
        stream::combine(&mut &upload[..], &mut &old_obj[..], &mut s_new).unwrap();
        prop_assert_eq!(&s_new, &new_obj);
        let mut s_patch = Vec::new();
        let (_, s_shared) = stream::reverse_diff(&mut &upload[..], &mut &old_obj[..], OLD_ID, &mut s_patch).unwrap();
        prop_assert!(s_shared);
        prop_assert_eq!(&s_patch, &patch);
        let mut s_rebuilt = Vec::new();
        let mut scratch = || Ok(Cursor::new(Vec::new()));
        stream::rebuild(&mut &new_obj[..], [&patch[..]], &mut scratch, &mut s_rebuilt).unwrap();
        prop_assert_eq!(&s_rebuilt, &rebuilt);
    }
}

/// A small edit in a file of many blocks must reuse nearly all of them, and
/// the upload must be correspondingly small.
#[test]
fn small_edit_uploads_little() {
    let keys = Keys::test_vector();
    let old: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut new = old.clone();
    new[500_000] ^= 0xff;
    new.splice(700_000..700_000, b"inserted".iter().copied());
    let old_obj = encode_file(
        &keys,
        &meta(&keys, 1),
        &Recipe::whole(old.len() as u64),
        &old,
    )
    .unwrap();
    let old_index = FileLayout::parse(&old_obj).unwrap().index;
    let clears = old_index.decrypt_all(&keys).unwrap();
    let outcome = diff(
        &old_index,
        &clears,
        OLD_ID,
        &mut Cursor::new(&new),
        new.len() as u64,
        &mut DiffLimits::default(),
    )
    .unwrap();
    let upload = encode_file(&keys, &meta(&keys, 2), &outcome.recipe, &new).unwrap();
    assert!(
        upload.len() < old_obj.len() / 20,
        "upload {} of {}",
        upload.len(),
        old_obj.len()
    );
    let new_obj = combine(&upload, &old_obj).unwrap();
    assert_eq!(decode_file(&keys, &new_obj).unwrap().content, new);
}
