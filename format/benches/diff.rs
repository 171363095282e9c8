//! The diff search (`bb_format::diff`) on large files: a 1 GiB and a 64 MiB
//! file of random bytes, diffed against their own unmodified block index
//! (512 KiB and 16 KiB blocks, as 0.13 would split them) after a few blocks
//! were changed. The files live in the temp directory for the run; the page
//! cache keeps them in memory, so this measures the search, not the disc.
//!
//! Run with `cargo bench -p bb-format --bench diff`.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

use bb_format::blocksize::RunLayout;
use bb_format::diff::{DiffLimits, diff};
use bb_format::index::{BlockClear, BlockIndex, IndexEntry};
use bb_format::recipe::Instruction;

/// A file of `len` random bytes, the index of its blocks, and the file
/// modified at `changes` places (a 16-byte overwrite in each).
struct Case {
    path: PathBuf,
    len: u64,
    index: BlockIndex,
    blocks: Vec<BlockClear>,
    changes: usize,
}

impl Case {
    fn new(name: &str, len: u64, changes: usize) -> Case {
        let path =
            std::env::temp_dir().join(format!("bb-diff-bench-{}-{name}", std::process::id()));
        let layout = RunLayout::for_len(len);
        let mut rng = SmallRng::seed_from_u64(len);
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&path).unwrap());
        let mut blocks = Vec::with_capacity(layout.count as usize);
        let mut buf = Vec::new();
        for i in 0..layout.count {
            buf.resize(layout.block_len(i) as usize, 0);
            rng.fill_bytes(&mut buf);
            blocks.push(BlockClear::of(&buf));
            out.write_all(&buf).unwrap();
        }
        let mut f = out.into_inner().unwrap();
        // Change a few blocks spread over the file (the index keeps the old ones).
        for k in 0..changes as u64 {
            f.seek(SeekFrom::Start(
                (k * 2 + 1) * len / (changes as u64 * 2 + 1),
            ))
            .unwrap();
            f.write_all(b"sixteen changes!").unwrap();
        }
        f.sync_all().unwrap();
        let index = BlockIndex {
            legacy_v0: false,
            other_file_id: 0,
            iv_base: 1,
            entries: vec![
                IndexEntry {
                    encoded_size: 1,
                    encrypted: [0; 24],
                };
                blocks.len()
            ],
        };
        Case {
            path,
            len,
            index,
            blocks,
            changes,
        }
    }

    /// Runs one diff and returns how many old blocks it reused.
    fn run(&self) -> usize {
        let mut f = File::open(&self.path).unwrap();
        let out = diff(
            &self.index,
            &self.blocks,
            0x1234,
            &mut f,
            self.len,
            &mut DiffLimits::default(),
        )
        .unwrap();
        out.recipe
            .instructions
            .iter()
            .filter(|i| matches!(i, Instruction::Old { .. }))
            .count()
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("diff");
    for (name, len, samples) in [("64MiB", 64u64 << 20, 20), ("1GiB", 1u64 << 30, 10)] {
        let case = Case::new(name, len, 4);
        // Each overwrite spoils one block (none straddles a boundary here).
        assert_eq!(case.run(), case.blocks.len() - case.changes);
        group.throughput(Throughput::Bytes(len));
        group.sample_size(samples);
        group.bench_function(name, |b| b.iter(|| case.run()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
