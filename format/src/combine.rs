//! The server's transforms of stored files (`formats.md` §6): combining a diff
//! with the complete old version, reverse-diffing the old version into a patch
//! against the new one, combining two patches when the middle of a chain is
//! deleted, and rebuilding an old version from the newest one.
//!
//! Owns: moving chunks and rewriting block index entries between encoded files.
//! Must not know: keys (chunks and the encrypted parts of entries are opaque
//! bytes), objects ids beyond the one field they go into, RaidFiles or
//! directories (the caller records dependencies).
//!
//! # Invariants
//!
//! Every input is first checked with [`FileLayout::parse`] (the server's
//! structural check, §2.8), and only the current format is accepted, as 0.13
//! does. Each output is built from the verified pieces so that it passes the same
//! check: its chunks are exactly the chunks its entries say, and its other-file
//! ID is non-zero exactly when an entry is a reference. The encrypted part of
//! an entry is always kept with the entry it belongs to, because it was
//! encrypted for that entry's position in the file whose index it sits in: a
//! combined file takes the diff's index, a patch keeps the old file's index.
//!
//! A reference `-E` must name a block that exists: `E < N` of the file it points
//! into. (0.13's combine accepts `E = N` and reads past its table; we reject it.)
//! The functions here work on whole objects in memory and return the new
//! object; [`stream`] has the same transforms over positional reads with
//! bounded memory, byte for byte the same output (the in-memory versions stay
//! as the simple reference the streaming ones are tested against).

pub mod stream;

use crate::error::{Error, Result};
use crate::index::{BlockIndex, IndexEntry};
use crate::layout::FileLayout;

/// A verified current-format input; `what` names it in errors.
fn parse<'a>(bytes: &'a [u8], what: &'static str) -> Result<FileLayout<'a>> {
    let layout = FileLayout::parse(bytes).map_err(|e| Error::corrupt(what, e.to_string()))?;
    if layout.header.legacy_v0 {
        return Err(Error::corrupt(what, "legacy (v0) files cannot be combined"));
    }
    Ok(layout)
}

/// Fails unless `layout` is complete.
fn require_complete(layout: &FileLayout<'_>, what: &'static str) -> Result<()> {
    if !layout.is_complete() {
        return Err(Error::corrupt(
            what,
            format!(
                "not a complete file: it refers to object {:#x}",
                layout.index.other_file_id
            ),
        ));
    }
    Ok(())
}

/// Fails unless `layout` is a patch (has references).
fn require_patch(layout: &FileLayout<'_>, what: &'static str) -> Result<()> {
    if layout.is_complete() {
        return Err(Error::corrupt(
            what,
            "not a patch: no entry refers to another file",
        ));
    }
    Ok(())
}

/// Checks a reference against the block count of the file it points into.
fn check_reference(block: u64, n: usize, position: usize, what: &'static str) -> Result<usize> {
    if block >= n as u64 {
        return Err(Error::corrupt(
            what,
            format!("entry {position} refers to block {block}, but the other file has {n} blocks"),
        ));
    }
    Ok(block as usize)
}

/// Assembles an encoded file: `prefix` (header, name, attributes), the chunks in
/// order, then the index.
fn assemble(prefix: &[u8], chunks: &[&[u8]], index: &BlockIndex) -> Vec<u8> {
    let data: usize = chunks.iter().map(|c| c.len()).sum();
    let mut out =
        Vec::with_capacity(prefix.len() + data + BlockIndex::encoded_len(index.entries.len()));
    out.extend_from_slice(prefix);
    for c in chunks {
        out.extend_from_slice(c);
    }
    index.encode_into(&mut out);
    out
}

/// Combines a diff with the complete old file it was made against (§6.1): the
/// diff's header, name and attributes, then for each diff entry its own chunk or
/// the old file's chunk for the block it refers to (copied verbatim), then the
/// diff's index with other file ID 0 and each reference replaced by the length
/// of the chunk copied for it. The result is complete.
pub fn combine(diff: &[u8], old: &[u8]) -> Result<Vec<u8>> {
    let d = parse(diff, "combine: diff")?;
    let o = parse(old, "combine: old file")?;
    require_complete(&o, "combine: old file")?;
    let n_old = o.index.entries.len();
    let mut chunks = Vec::with_capacity(d.index.entries.len());
    let mut entries = Vec::with_capacity(d.index.entries.len());
    for (i, e) in d.index.entries.iter().enumerate() {
        let chunk = match e.reference() {
            None => d.chunk(i),
            Some(block) => o.chunk(check_reference(block, n_old, i, "combine: diff")?),
        }
        .ok_or_else(|| Error::corrupt("combine", format!("no chunk for entry {i}")))?;
        chunks.push(chunk);
        entries.push(IndexEntry {
            encoded_size: chunk.len() as i64,
            encrypted: e.encrypted,
        });
    }
    let index = BlockIndex {
        legacy_v0: false,
        other_file_id: 0,
        iv_base: d.index.iv_base,
        entries,
    };
    Ok(assemble(d.prefix(), &chunks, &index))
}

/// Rewrites the complete old file `old` (object `old_object_id`) into a patch
/// against the new version that `diff` describes (§6.2): the old header, name,
/// attributes and index (IV base, encrypted parts) stay; each old block that
/// some diff entry `b` refers to becomes a reference `-b` (the last such entry
/// wins) and loses its chunk; other blocks keep their chunks.
///
/// Returns the patch and whether any block is shared. If none is, the patch is
/// `old` unchanged (other file ID 0) and no dependency should be recorded;
/// otherwise its other file ID is `old_object_id` (0.13 puts the old file's
/// own ID there, not the new one's).
pub fn reverse_diff(diff: &[u8], old: &[u8], old_object_id: i64) -> Result<(Vec<u8>, bool)> {
    let d = parse(diff, "reverse diff: diff")?;
    let o = parse(old, "reverse diff: old file")?;
    require_complete(&o, "reverse diff: old file")?;
    let n_old = o.index.entries.len();
    // For each old block, the last diff entry that refers to it.
    let mut used_by: Vec<Option<usize>> = vec![None; n_old];
    for (b, e) in d.index.entries.iter().enumerate() {
        if let Some(block) = e.reference() {
            used_by[check_reference(block, n_old, b, "reverse diff: diff")?] = Some(b);
        }
    }
    let shared = used_by.iter().any(Option::is_some);
    if shared && old_object_id == 0 {
        return Err(Error::corrupt(
            "reverse diff",
            "object ID 0 cannot be the other file of a patch",
        ));
    }
    let mut chunks = Vec::with_capacity(n_old);
    let mut entries = Vec::with_capacity(n_old);
    for (k, e) in o.index.entries.iter().enumerate() {
        let encoded_size = match used_by[k] {
            Some(b) => -(b as i64),
            None => {
                let chunk = o.chunk(k).ok_or_else(|| {
                    Error::corrupt("reverse diff", format!("no chunk for old block {k}"))
                })?;
                chunks.push(chunk);
                chunk.len() as i64
            }
        };
        entries.push(IndexEntry {
            encoded_size,
            encrypted: e.encrypted,
        });
    }
    let index = BlockIndex {
        legacy_v0: false,
        other_file_id: if shared { old_object_id } else { 0 },
        iv_base: o.index.iv_base,
        entries,
    };
    Ok((assemble(o.prefix(), &chunks, &index), shared))
}

/// Combines two patches of a chain (§6.3), for deleting the middle version:
/// `x` refers to its newer version N, `y` (older) refers to `x`. The result is
/// `y` rebased onto N: `y`'s header, name, attributes and index, where each
/// reference to a block `x` stores becomes that chunk (copied) and each
/// reference to a block `x` itself refers to becomes `x`'s reference into N.
///
/// Returns the patch and whether it still refers to N. Its other file ID is
/// `x`'s when it does; when every reference was resolved from `x`'s chunks the
/// result is complete, with other file ID 0 (0.13 keeps `x`'s ID there even
/// then, which breaks the "ID set iff references" rule of §2.8).
pub fn combine_patches(x: &[u8], y: &[u8]) -> Result<(Vec<u8>, bool)> {
    let xl = parse(x, "combine patches: newer patch")?;
    let yl = parse(y, "combine patches: older patch")?;
    require_patch(&xl, "combine patches: newer patch")?;
    require_patch(&yl, "combine patches: older patch")?;
    let n_x = xl.index.entries.len();
    let mut chunks = Vec::with_capacity(yl.index.entries.len());
    let mut entries = Vec::with_capacity(yl.index.entries.len());
    let mut refers = false;
    for (i, e) in yl.index.entries.iter().enumerate() {
        let encoded_size = match e.reference() {
            None => {
                let chunk = yl.chunk(i).ok_or_else(|| {
                    Error::corrupt("combine patches", format!("no chunk for entry {i}"))
                })?;
                chunks.push(chunk);
                chunk.len() as i64
            }
            Some(block) => {
                let block = check_reference(block, n_x, i, "combine patches: older patch")?;
                match xl.chunk(block) {
                    Some(chunk) => {
                        chunks.push(chunk);
                        chunk.len() as i64
                    }
                    None => {
                        refers = true;
                        xl.index.entries[block].encoded_size
                    }
                }
            }
        };
        entries.push(IndexEntry {
            encoded_size,
            encrypted: e.encrypted,
        });
    }
    let index = BlockIndex {
        legacy_v0: false,
        other_file_id: if refers { xl.index.other_file_id } else { 0 },
        iv_base: yl.index.iv_base,
        entries,
    };
    Ok((assemble(yl.prefix(), &chunks, &index), refers))
}

/// Rebuilds an old version for download (§6.4): starting from the newest,
/// complete version, combines each patch in turn, newest patch first, and
/// returns the complete file the last patch describes. With no patches, the
/// newest version is returned (after checking it is complete).
pub fn rebuild<P: AsRef<[u8]>>(newest: &[u8], patches_newest_to_oldest: &[P]) -> Result<Vec<u8>> {
    require_complete(
        &parse(newest, "rebuild: newest version")?,
        "rebuild: newest version",
    )?;
    let mut current = newest.to_vec();
    for patch in patches_newest_to_oldest {
        let patch = patch.as_ref();
        require_patch(&parse(patch, "rebuild: patch")?, "rebuild: patch")?;
        current = combine(patch, &current)?;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::put_mem_block;
    use crate::filename::EncodedName;
    use crate::index::{BlockClear, encrypt_entry};
    use crate::keys::Keys;
    use crate::layout::FileHeader;
    use proptest::prelude::*;

    /// One entry of a hand-built file: its own (fake, opaque) chunk, or a
    /// reference; plus the clear block it stands for.
    #[derive(Debug, Clone, PartialEq)]
    enum Ent {
        Stored(Vec<u8>),
        Ref(u64),
    }

    /// A hand-built encoded file.
    #[derive(Debug, Clone)]
    struct Spec {
        name: Vec<u8>,
        mtime: i64,
        attrs: Vec<u8>,
        iv_base: u64,
        other: i64,
        entries: Vec<(Ent, BlockClear)>,
    }

    fn build(spec: &Spec) -> Vec<u8> {
        let keys = Keys::test_vector();
        let mut out = Vec::new();
        FileHeader {
            legacy_v0: false,
            num_blocks: spec.entries.len() as i64,
            container_id: 2,
            mtime: spec.mtime,
            max_block_clear_size: 4224,
            options: 0,
        }
        .encode_into(&mut out);
        out.extend_from_slice(EncodedName::encrypt(&keys, &spec.name).unwrap().as_bytes());
        put_mem_block(&mut out, &spec.attrs).unwrap();
        let mut entries = Vec::new();
        for (pos, (e, clear)) in spec.entries.iter().enumerate() {
            let encoded_size = match e {
                Ent::Stored(chunk) => {
                    out.extend_from_slice(chunk);
                    chunk.len() as i64
                }
                Ent::Ref(b) => (*b as i64).wrapping_neg(),
            };
            entries.push(IndexEntry {
                encoded_size,
                encrypted: encrypt_entry(&keys, spec.iv_base, pos as u64, clear),
            });
        }
        BlockIndex {
            legacy_v0: false,
            other_file_id: spec.other,
            iv_base: spec.iv_base,
            entries,
        }
        .encode_into(&mut out);
        out
    }

    fn clear(tag: &str) -> BlockClear {
        BlockClear::of(tag.as_bytes())
    }

    fn stored(chunk: &str, c: &str) -> (Ent, BlockClear) {
        (Ent::Stored(chunk.as_bytes().to_vec()), clear(c))
    }

    fn reference(block: u64, c: &str) -> (Ent, BlockClear) {
        (Ent::Ref(block), clear(c))
    }

    /// Old version O: four blocks, complete.
    fn old_spec() -> Spec {
        Spec {
            name: b"file.txt".to_vec(),
            mtime: 1000,
            attrs: b"attributes of O".to_vec(),
            iv_base: 0x1111_0000,
            other: 0,
            entries: vec![
                stored("chunk-0", "A"),
                stored("chunk-1-longer", "B"),
                stored("chunk-2", "C"),
                stored("c3", "D"),
            ],
        }
    }

    /// A diff against O: new data, reused blocks out of order and twice.
    fn diff_spec() -> Spec {
        Spec {
            name: b"file.txt".to_vec(),
            mtime: 2000,
            attrs: b"attributes of the new version".to_vec(),
            iv_base: 0x2222_0000,
            other: 0x10,
            entries: vec![
                stored("new-0", "X"),
                reference(2, "C"),
                reference(3, "D"),
                stored("new-3", "Y"),
                reference(0, "A"),
                reference(2, "C"),
            ],
        }
    }

    #[test]
    fn combine_gives_the_full_file() {
        let o = build(&old_spec());
        let d = build(&diff_spec());
        let mut full = diff_spec();
        full.other = 0;
        full.entries = vec![
            stored("new-0", "X"),
            stored("chunk-2", "C"),
            stored("c3", "D"),
            stored("new-3", "Y"),
            stored("chunk-0", "A"),
            stored("chunk-2", "C"),
        ];
        let n = combine(&d, &o).unwrap();
        assert_eq!(n, build(&full));
        assert!(FileLayout::parse(&n).unwrap().is_complete());
        // A diff without references combines to itself.
        let mut plain = diff_spec();
        plain.other = 0;
        plain.entries.retain(|(e, _)| matches!(e, Ent::Stored(_)));
        let p = build(&plain);
        assert_eq!(combine(&p, &o).unwrap(), p);
    }

    #[test]
    fn reverse_diff_and_back() {
        let o = build(&old_spec());
        let d = build(&diff_spec());
        let (patch, shared) = reverse_diff(&d, &o, 0x10).unwrap();
        assert!(shared);
        let mut want = old_spec();
        want.other = 0x10;
        want.entries = vec![
            reference(4, "A"),
            stored("chunk-1-longer", "B"),
            reference(5, "C"), // the last diff entry using block 2 wins
            reference(2, "D"),
        ];
        assert_eq!(patch, build(&want));
        // The new complete file plus the patch give O back, byte for byte.
        let n = combine(&d, &o).unwrap();
        assert_eq!(combine(&patch, &n).unwrap(), o);
        assert_eq!(rebuild(&n, &[&patch]).unwrap(), o);

        // Nothing shared: O unchanged, no dependency.
        let mut unrelated = diff_spec();
        unrelated.other = 0;
        unrelated
            .entries
            .retain(|(e, _)| matches!(e, Ent::Stored(_)));
        let (same, shared) = reverse_diff(&build(&unrelated), &o, 0x10).unwrap();
        assert!(!shared);
        assert_eq!(same, o);
    }

    /// Three versions: O1 -> (D2) -> N2 -> (D3) -> N3, stored as P1 -> P2 -> N3.
    struct Chain {
        o1: Vec<u8>,
        n2: Vec<u8>,
        p1: Vec<u8>,
        p2: Vec<u8>,
        n3: Vec<u8>,
    }

    fn chain() -> Chain {
        let o1 = build(&old_spec());
        let d2 = build(&diff_spec());
        let n2 = combine(&d2, &o1).unwrap();
        let (p1, _) = reverse_diff(&d2, &o1, 0x10).unwrap();
        // D3 against N2 (blocks X C D Y A C): reuses 0 (X), 2 (D), 4 (A).
        let d3 = build(&Spec {
            name: b"file.txt".to_vec(),
            mtime: 3000,
            attrs: b"third".to_vec(),
            iv_base: 0x3333_0000,
            other: 0x20,
            entries: vec![
                reference(4, "A"),
                stored("newest", "Z"),
                reference(0, "X"),
                reference(2, "D"),
            ],
        });
        let n3 = combine(&d3, &n2).unwrap();
        let (p2, shared) = reverse_diff(&d3, &n2, 0x20).unwrap();
        assert!(shared);
        Chain { o1, n2, p1, p2, n3 }
    }

    #[test]
    fn combine_patches_equals_combining_twice() {
        let Chain { o1, n2, p1, p2, n3 } = chain();
        assert_eq!(rebuild(&n3, &[&p2]).unwrap(), n2);
        assert_eq!(rebuild(&n3, &[&p2, &p1]).unwrap(), o1);
        let (p1n, refers) = combine_patches(&p2, &p1).unwrap();
        assert!(refers);
        let l = FileLayout::parse(&p1n).unwrap();
        assert_eq!(l.index.other_file_id, 0x20, "X's other file ID");
        assert_eq!(combine(&p1n, &n3).unwrap(), o1);
        // P1's blocks were A B C D; in P2 (N2's patch) X and D and A refer into
        // N3, C is stored. So P1' stores B (own) and C (from P2), and refers to
        // N3 for A and D.
        let kinds: Vec<i64> = l.index.entries.iter().map(|e| e.encoded_size).collect();
        let p2l = FileLayout::parse(&p2).unwrap();
        assert_eq!(kinds[0], p2l.index.entries[4].encoded_size); // A: N2 block 4 -> N3
        assert_eq!(kinds[1], "chunk-1-longer".len() as i64);
        assert_eq!(kinds[2], "chunk-2".len() as i64);
        assert_eq!(kinds[3], p2l.index.entries[2].encoded_size); // D: N2 block 2 -> N3
    }

    #[test]
    fn combine_patches_can_resolve_everything() {
        // Y refers only to blocks X stores: the result is complete.
        let Chain { p2, .. } = chain();
        let p2l = FileLayout::parse(&p2).unwrap();
        let stored_in_x: Vec<u64> = (0..p2l.index.entries.len() as u64)
            .filter(|&k| p2l.chunk(k as usize).is_some())
            .collect();
        let y = build(&Spec {
            name: b"y".to_vec(),
            mtime: 1,
            attrs: vec![],
            iv_base: 5,
            other: 0x20,
            entries: stored_in_x.iter().map(|&k| reference(k, "q")).collect(),
        });
        let (out, refers) = combine_patches(&p2, &y).unwrap();
        assert!(!refers);
        let l = FileLayout::parse(&out).unwrap();
        assert!(l.is_complete());
    }

    #[test]
    fn references_out_of_range_are_rejected() {
        let o = build(&old_spec());
        // Block 4 of a 4-block file: 0.13's combine lets `= N` through; we do not.
        let mut d = diff_spec();
        d.entries[1] = reference(4, "C");
        let d = build(&d);
        assert!(combine(&d, &o).is_err());
        assert!(reverse_diff(&d, &o, 0x10).is_err());
        let mut d = diff_spec();
        d.entries[1] = reference(3, "C");
        assert!(combine(&build(&d), &o).is_ok());

        let Chain { p2, .. } = chain();
        let mut y = diff_spec();
        y.entries[0] = reference(6, "A"); // P2 has 6 blocks
        assert!(combine_patches(&p2, &build(&y)).is_err());
        // A huge reference (E = i64::MIN) does not overflow.
        let mut d = diff_spec();
        d.entries[1].0 = Ent::Ref(1 << 63);
        let bytes = build(&d);
        assert!(combine(&bytes, &o).is_err());
        assert!(reverse_diff(&bytes, &o, 1).is_err());
    }

    #[test]
    fn wrong_kinds_of_input_are_rejected() {
        let o = build(&old_spec());
        let d = build(&diff_spec());
        let Chain { n2, p1, p2, n3, .. } = chain();
        // Old file not complete.
        assert!(combine(&d, &p1).is_err());
        assert!(reverse_diff(&d, &p1, 0x10).is_err());
        // Patches that are not patches.
        assert!(combine_patches(&n2, &p1).is_err());
        assert!(combine_patches(&p2, &o).is_err());
        assert!(rebuild(&n3, &[&n2]).is_err());
        // Newest version not complete.
        assert!(rebuild(&p2, &[&p1]).is_err());
        // Shared blocks need a real object ID.
        assert!(reverse_diff(&d, &o, 0).is_err());
        // Legacy (v0) files.
        let mut legacy = o.clone();
        legacy[..4].copy_from_slice(&crate::layout::FILE_MAGIC_V0.to_be_bytes());
        let at = legacy.len() - BlockIndex::encoded_len(4);
        legacy[at..at + 4].copy_from_slice(&crate::index::INDEX_MAGIC_V0.to_be_bytes());
        assert!(FileLayout::parse(&legacy).is_ok());
        assert!(combine(&d, &legacy).is_err());
        assert!(combine(&legacy, &o).is_err());
        assert!(reverse_diff(&d, &legacy, 1).is_err());
    }

    #[test]
    fn truncated_or_garbled_inputs_are_errors_not_panics() {
        let o = build(&old_spec());
        let d = build(&diff_spec());
        let Chain { p1, p2, n3, .. } = chain();
        for cut in 0..d.len() {
            assert!(combine(&d[..cut], &o).is_err());
            assert!(reverse_diff(&d[..cut], &o, 1).is_err());
        }
        for cut in 0..o.len() {
            assert!(combine(&d, &o[..cut]).is_err());
            assert!(reverse_diff(&d, &o[..cut], 1).is_err());
        }
        for cut in 0..p2.len() {
            assert!(combine_patches(&p2[..cut], &p1).is_err());
            assert!(rebuild(&n3, &[&p2[..cut]]).is_err());
        }
        for cut in 0..p1.len() {
            assert!(combine_patches(&p2, &p1[..cut]).is_err());
        }
        // Flipping any byte never panics (it may still parse: chunks are opaque).
        for i in 0..d.len() {
            let mut g = d.clone();
            g[i] ^= 0x80;
            let _ = combine(&g, &o);
            let _ = reverse_diff(&g, &o, 1);
            let _ = combine_patches(&g, &p1);
            let _ = combine_patches(&p2, &g);
        }
    }

    fn spec_strategy(n_other: usize, max_entries: usize, tag: u8) -> impl Strategy<Value = Spec> {
        let entry = (
            proptest::collection::vec(any::<u8>(), 1..40),
            0..n_other.max(1) as u64,
            any::<u32>(),
        )
            .prop_map(move |(mut chunk, r, c)| {
                if n_other == 0 || c % 3 != 0 {
                    chunk.insert(0, tag);
                    (Ent::Stored(chunk), clear(&format!("{tag}-{c}")))
                } else {
                    (Ent::Ref(r), clear(&format!("r-{r}")))
                }
            });
        (
            proptest::collection::vec(entry, 0..max_entries),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..20),
        )
            .prop_map(move |(entries, iv_base, attrs)| {
                let refers = entries.iter().any(|(e, _)| matches!(e, Ent::Ref(_)));
                Spec {
                    name: vec![b'n', tag],
                    mtime: tag as i64,
                    attrs,
                    iv_base,
                    other: if refers { 0x100 + tag as i64 } else { 0 },
                    entries,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// For any old file and any two successive diffs: combining gives
        /// complete files, each patch restores its version exactly, and
        /// combining the two patches equals applying them one after the other.
        #[test]
        fn chain_round_trip(
            (o1, d2, d3) in (1usize..8).prop_flat_map(|n1| {
                (spec_strategy(0, n1 + 1, 1), Just(n1))
            }).prop_flat_map(|(o1, _)| {
                let n1 = o1.entries.len();
                (Just(o1), spec_strategy(n1, 10, 2))
            }).prop_flat_map(|(o1, d2)| {
                let n2 = d2.entries.len();
                (Just(o1), Just(d2), spec_strategy(n2, 10, 3))
            })
        ) {
            let o1 = build(&o1);
            let d2 = build(&d2);
            let d3 = build(&d3);
            let n2 = combine(&d2, &o1).unwrap();
            prop_assert!(FileLayout::parse(&n2).unwrap().is_complete());
            same_as_streaming(&d2, &o1, 0x51);
            let (p1, shared1) = reverse_diff(&d2, &o1, 0x51).unwrap();
            FileLayout::parse(&p1).unwrap();
            prop_assert_eq!(combine(&p1, &n2).unwrap(), o1.clone());
            let n3 = combine(&d3, &n2).unwrap();
            let (p2, shared2) = reverse_diff(&d3, &n2, 0x52).unwrap();
            same_as_streaming(&d3, &n2, 0x52);
            // Applying the patches in turn, as a download does.
            prop_assert_eq!(s_rebuild(&n3, &[&p2, &p1]).is_ok(), rebuild(&n3, &[&p2, &p1]).is_ok());
            if let Ok(r) = rebuild(&n3, &[&p2, &p1]) {
                prop_assert_eq!(s_rebuild(&n3, &[&p2, &p1]).unwrap(), r);
            }
            let in_memory = combine_patches(&p2, &p1).ok();
            prop_assert_eq!(s_combine_patches(&p2, &p1).ok(), in_memory);
            prop_assert_eq!(combine(&p2, &n3).unwrap(), n2.clone());
            if shared1 && shared2 {
                prop_assert_eq!(rebuild(&n3, &[&p2, &p1]).unwrap(), o1.clone());
                let (p1n, refers) = combine_patches(&p2, &p1).unwrap();
                let l = FileLayout::parse(&p1n).unwrap();
                prop_assert_eq!(refers, !l.is_complete());
                prop_assert_eq!(combine(&p1n, &n3).unwrap(), o1.clone());
            } else if !shared1 {
                prop_assert_eq!(p1, o1);
            }
        }
    }

    /// Gives at most 5 bytes per read, so every read loop is exercised.
    struct Dribble<'a>(&'a [u8]);

    impl crate::read_at::ReadAt for Dribble<'_> {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_at(&mut self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
            let n = buf.len().min(5);
            let mut s = self.0;
            crate::read_at::ReadAt::read_at(&mut s, &mut buf[..n], offset)
        }
    }

    fn s_combine(d: &[u8], o: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let len = stream::combine(&mut Dribble(d), &mut Dribble(o), &mut out)?;
        assert_eq!(len, out.len() as u64);
        Ok(out)
    }

    fn s_reverse_diff(d: &[u8], o: &[u8], id: i64) -> Result<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        let (len, shared) = stream::reverse_diff(&mut &d[..], &mut Dribble(o), id, &mut out)?;
        assert_eq!(len, out.len() as u64);
        Ok((out, shared))
    }

    fn s_combine_patches(x: &[u8], y: &[u8]) -> Result<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        let (len, refers) = stream::combine_patches(&mut Dribble(x), &mut &y[..], &mut out)?;
        assert_eq!(len, out.len() as u64);
        Ok((out, refers))
    }

    fn s_rebuild(newest: &[u8], patches: &[&[u8]]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut made = 0;
        let mut scratch = || {
            made += 1;
            Ok(std::io::Cursor::new(Vec::new()))
        };
        let len = stream::rebuild(
            &mut &newest[..],
            patches.iter().map(|p| Dribble(p)),
            &mut scratch,
            &mut out,
        )?;
        assert_eq!(len, out.len() as u64);
        assert_eq!(made, patches.len().saturating_sub(1));
        Ok(out)
    }

    /// The streaming transforms give the same bytes, and fail on the same
    /// inputs, as the in-memory ones.
    fn same_as_streaming(d: &[u8], o: &[u8], id: i64) {
        match combine(d, o) {
            Ok(v) => assert_eq!(s_combine(d, o).unwrap(), v),
            Err(_) => assert!(s_combine(d, o).is_err()),
        }
        match reverse_diff(d, o, id) {
            Ok(v) => assert_eq!(s_reverse_diff(d, o, id).unwrap(), v),
            Err(_) => assert!(s_reverse_diff(d, o, id).is_err()),
        }
        // The same two inputs as patches (usually refused: not patches).
        assert_eq!(
            s_combine_patches(d, o).ok(),
            combine_patches(d, o).ok(),
            "combine_patches"
        );
        match rebuild(o, &[d]) {
            Ok(v) => assert_eq!(s_rebuild(o, &[d]).unwrap(), v),
            Err(_) => assert!(s_rebuild(o, &[d]).is_err()),
        }
    }

    #[test]
    fn streaming_matches_in_memory_on_the_fixed_cases() {
        let o = build(&old_spec());
        let d = build(&diff_spec());
        same_as_streaming(&d, &o, 0x10);
        same_as_streaming(&d, &o, 0);
        let Chain { o1, n2, p1, p2, n3 } = chain();
        assert_eq!(s_rebuild(&n3, &[]).unwrap(), n3);
        assert_eq!(s_rebuild(&n3, &[&p2]).unwrap(), n2);
        assert_eq!(s_rebuild(&n3, &[&p2, &p1]).unwrap(), o1);
        assert_eq!(
            s_combine_patches(&p2, &p1).unwrap(),
            combine_patches(&p2, &p1).unwrap()
        );
        for (a, b) in [(&n2, &p1), (&p2, &o), (&n3, &n2)] {
            assert!(s_combine_patches(a, b).is_err());
        }
        assert_eq!(
            s_combine_patches(&p1, &p2).ok(),
            combine_patches(&p1, &p2).ok()
        );
        assert!(s_rebuild(&n3, &[&n2]).is_err());
        assert!(s_rebuild(&p2, &[&p1]).is_err());
        // Bad references, legacy files.
        let mut bad = diff_spec();
        bad.entries[1] = reference(4, "C");
        same_as_streaming(&build(&bad), &o, 0x10);
        bad.entries[1].0 = Ent::Ref(1 << 63);
        same_as_streaming(&build(&bad), &o, 0x10);
        let mut legacy = o.clone();
        legacy[..4].copy_from_slice(&crate::layout::FILE_MAGIC_V0.to_be_bytes());
        let at = legacy.len() - BlockIndex::encoded_len(4);
        legacy[at..at + 4].copy_from_slice(&crate::index::INDEX_MAGIC_V0.to_be_bytes());
        same_as_streaming(&d, &legacy, 0x10);
        same_as_streaming(&legacy, &o, 0x10);
    }

    #[test]
    fn streaming_agrees_on_truncated_and_garbled_inputs() {
        let o = build(&old_spec());
        let d = build(&diff_spec());
        let Chain { p1, p2, .. } = chain();
        for cut in 0..d.len() {
            same_as_streaming(&d[..cut], &o, 1);
        }
        for cut in 0..o.len() {
            same_as_streaming(&d, &o[..cut], 1);
        }
        for i in 0..d.len() {
            for x in [0x01u8, 0x80] {
                let mut g = d.clone();
                g[i] ^= x;
                same_as_streaming(&g, &o, 1);
                assert_eq!(
                    s_combine_patches(&g, &p1).ok(),
                    combine_patches(&g, &p1).ok()
                );
                assert_eq!(
                    s_combine_patches(&p2, &g).ok(),
                    combine_patches(&p2, &g).ok()
                );
            }
        }
    }

    #[test]
    fn source_layout_agrees_with_file_layout() {
        let f = crate::test_util::hello_object();
        let check = |g: &[u8]| {
            let a = FileLayout::parse(g);
            let b = stream::SourceLayout::parse(&mut Dribble(g));
            assert_eq!(a.is_ok(), b.is_ok());
            if let (Ok(a), Ok(b)) = (a, b) {
                assert_eq!(a.data_start as u64, b.data_start);
                assert_eq!(a.index_start as u64, b.index_start);
                assert_eq!(a.index.other_file_id, b.other_file_id);
                assert_eq!(a.index.iv_base, b.iv_base);
                assert_eq!(a.header, b.header);
                assert_eq!(a.name, b.name);
            }
        };
        for n in 0..=f.len() {
            check(&f[..n]);
        }
        for i in 0..f.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut g = f.clone();
                g[i] ^= x;
                check(&g);
            }
        }
        let d = build(&diff_spec());
        for i in 0..d.len() {
            let mut g = d.clone();
            g[i] ^= 0x04;
            check(&g);
        }
    }

    /// A source that fails every read: the error is an I/O error, not "corrupt".
    struct Broken;

    impl crate::read_at::ReadAt for Broken {
        fn len(&self) -> u64 {
            1000
        }
        fn read_at(&mut self, _: &mut [u8], _: u64) -> std::io::Result<usize> {
            Err(std::io::Error::other("disc on fire"))
        }
    }

    #[test]
    fn read_and_write_failures_are_io_errors() {
        let o = build(&old_spec());
        let d = build(&diff_spec());
        let mut out = Vec::new();
        let e = stream::combine(&mut Broken, &mut &o[..], &mut out).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
        let e = stream::reverse_diff(&mut &d[..], &mut Broken, 1, &mut out).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
        struct Full;
        impl std::io::Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disc full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let e = stream::combine(&mut &d[..], &mut &o[..], &mut Full).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }
}
