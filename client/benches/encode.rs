//! Encoding speed of one large file: `FileEncoder` (one thread, in the reader)
//! against `ParallelEncoder` with 1 and 2 workers, reading the encoded bytes as
//! an uploader would. Not a criterion bench: each run encodes hundreds of MiB,
//! and a few runs are enough to see the ratio.
//!
//! `cargo bench -p bb-client --bench encode -- [FILE ...]`; without files it
//! makes a 256 MiB file of text-like lines and one of random bytes in a temp dir.
//! `ENCODE_RUNS` (default 2) runs each, the best is reported.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bb_client::upload::{EncoderOptions, ParallelEncoder};
use bb_format::encode::{FileEncoder, FileMeta};
use bb_format::recipe::Recipe;
use bb_format::{EncodedName, Keys};

fn meta(k: &Keys) -> FileMeta {
    FileMeta {
        container_id: 2,
        mtime: 0,
        name: EncodedName::encrypt(k, b"big").unwrap(),
        attributes: vec![2, 0, 0, 0],
        symlink: false,
    }
}

fn drain(mut r: impl Read) -> u64 {
    let mut buf = vec![0u8; 64 << 10];
    let mut n = 0;
    loop {
        match r.read(&mut buf).unwrap() {
            0 => return n,
            k => n += k as u64,
        }
    }
}

fn make(dir: &Path) -> Vec<PathBuf> {
    let len = 256usize << 20;
    let text = dir.join("text-256M");
    let mut v = Vec::with_capacity(len);
    let mut x: u64 = 1;
    while v.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.extend_from_slice(
            format!(
                "{:08} def handler_{}(self, arg): return arg * {}\n",
                v.len(),
                x % 5000,
                x >> 50
            )
            .as_bytes(),
        );
    }
    v.truncate(len);
    std::fs::write(&text, &v).unwrap();
    let random = dir.join("random-256M");
    for b in v.chunks_mut(8) {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = b.len();
        b.copy_from_slice(&(x ^ (x >> 29)).to_le_bytes()[..n]);
    }
    std::fs::write(&random, &v).unwrap();
    vec![text, random]
}

fn main() {
    let args: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .collect();
    let runs: usize = std::env::var("ENCODE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let tmp = tempfile::tempdir().unwrap();
    let files = if args.is_empty() {
        make(tmp.path())
    } else {
        args
    };
    let keys = Arc::new(Keys::test_vector());
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        let mib = len as f64 / 1048576.0;
        let report = |what: &str, run: &mut dyn FnMut() -> u64| {
            let mut best = f64::MAX;
            let mut out = 0;
            for _ in 0..runs {
                let t = Instant::now();
                out = run();
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!(
                "{:<14} {:<26} {:8.1} MiB/s  ({:.2} s, {:.1} MiB out)",
                f.file_name().unwrap().to_string_lossy(),
                what,
                mib / best,
                best,
                out as f64 / 1048576.0
            );
        };
        report("FileEncoder (1 thread)", &mut || {
            let src = std::fs::File::open(f).unwrap();
            drain(FileEncoder::new(&*keys, meta(&keys), Recipe::whole(len), src).unwrap())
        });
        for threads in [1, 2] {
            report(&format!("ParallelEncoder {threads} worker(s)"), &mut || {
                drain(
                    ParallelEncoder::open(
                        keys.clone(),
                        f,
                        meta(&keys),
                        EncoderOptions::with_threads(threads),
                    )
                    .unwrap(),
                )
            });
        }
    }
}
