//! Encoded test files made with our encoder and the fixture keys, and a recount
//! of an account's counters from its directories (what `check` computes).
#![allow(dead_code)]

use bb_format::Keys;
use bb_format::directory::Entry;
use bb_format::encode::{FileMeta, encode_file};
use bb_format::index::BlockClear;
use bb_format::recipe::{Instruction, Recipe};
use bb_format::{EncodedName, decode};
use bb_store::{Account, ObjectId};

pub fn keys() -> Keys {
    Keys::test_vector()
}

pub fn name(s: &str) -> EncodedName {
    EncodedName::encrypt(&keys(), s.as_bytes()).unwrap()
}

fn meta(container: ObjectId, n: &str) -> FileMeta {
    FileMeta {
        container_id: container,
        mtime: 0x5_0000_0000,
        name: name(n),
        attributes: vec![0xa5; 49],
        symlink: false,
    }
}

/// A complete file whose blocks are `blocks` (one `New` run each).
pub fn file_of_blocks(container: ObjectId, n: &str, blocks: &[&[u8]]) -> Vec<u8> {
    let mut src = Vec::new();
    let mut ins = Vec::new();
    for b in blocks {
        ins.push(Instruction::New {
            offset: src.len() as u64,
            len: b.len() as u64,
        });
        src.extend_from_slice(b);
    }
    let recipe = Recipe {
        other_file_id: 0,
        instructions: ins,
    };
    encode_file(&keys(), &meta(container, n), &recipe, &src).unwrap()
}

pub fn file(container: ObjectId, n: &str, content: &[u8]) -> Vec<u8> {
    encode_file(
        &keys(),
        &meta(container, n),
        &Recipe::whole(content.len() as u64),
        content,
    )
    .unwrap()
}

/// A patch against `old_id` whose blocks are: `Ok(old block index)` reused, or
/// `Err(bytes)` new.
pub fn patch(
    container: ObjectId,
    n: &str,
    old_id: ObjectId,
    old_blocks: &[&[u8]],
    parts: &[Result<usize, &[u8]>],
) -> Vec<u8> {
    let mut src = Vec::new();
    let mut ins = Vec::new();
    for p in parts {
        match p {
            Ok(i) => {
                ins.push(Instruction::Old {
                    index: *i as u64,
                    clear: BlockClear::of(old_blocks[*i]),
                });
                src.extend_from_slice(old_blocks[*i]);
            }
            Err(b) => {
                ins.push(Instruction::New {
                    offset: src.len() as u64,
                    len: b.len() as u64,
                });
                src.extend_from_slice(b);
            }
        }
    }
    let recipe = Recipe {
        other_file_id: old_id,
        instructions: ins,
    };
    encode_file(&keys(), &meta(container, n), &recipe, &src).unwrap()
}

/// Decodes a GetFile stream to the clear content.
pub fn content(stream: &[u8]) -> Vec<u8> {
    decode::decode_file(&keys(), stream).unwrap().content
}

/// The counters as `check` would compute them from the directories (files and
/// directories reachable from the root) and the object sizes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recount {
    pub blocks_used: i64,
    pub current: (i64, i64),
    pub old: (i64, i64),
    pub deleted: (i64, i64),
    pub dirs: (i64, i64),
}

pub fn recount(acc: &Account) -> Recount {
    let mut r = Recount::default();
    let mut stack = vec![1i64];
    while let Some(d) = stack.pop() {
        let dir = acc.read_directory("recount", d).unwrap();
        let size = acc.store().open_object(d).unwrap().size();
        let usage = acc.usage_in_blocks(size);
        r.dirs.0 += usage;
        r.dirs.1 += 1;
        r.blocks_used += usage;
        for e in &dir.entries {
            let osize = acc.store().open_object(e.object_id).unwrap().size();
            let u = acc.usage_in_blocks(osize);
            assert_eq!(
                e.size_in_blocks, u,
                "entry {:#x} size in {d:#x}",
                e.object_id
            );
            if e.is_dir() {
                let sub = acc.read_directory("recount", e.object_id).unwrap();
                assert_eq!(sub.container_id, d, "container of {:#x}", e.object_id);
                stack.push(e.object_id);
                continue;
            }
            r.blocks_used += u;
            let f = e.flags;
            if f & (Entry::OLD_VERSION | Entry::DELETED) == 0 {
                r.current.0 += u;
                r.current.1 += 1;
            }
            if f & Entry::OLD_VERSION != 0 {
                r.old.0 += u;
                r.old.1 += 1;
            }
            if f & Entry::DELETED != 0 {
                r.deleted.0 += u;
                r.deleted.1 += 1;
            }
        }
    }
    r
}

/// Asserts the account's counters equal the recount.
pub fn assert_counters(acc: &Account) {
    let i = acc.info();
    let have = Recount {
        blocks_used: i.blocks_used,
        current: (i.blocks_in_current_files, i.num_current_files),
        old: (i.blocks_in_old_files, i.num_old_files),
        deleted: (i.blocks_in_deleted_files, i.num_deleted_files),
        dirs: (i.blocks_in_directories, i.num_directories),
    };
    assert_eq!(have, recount(acc));
}
