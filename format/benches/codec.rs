use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use bb_format::Keys;
use bb_format::chunk::ChunkCodec;

fn splitmix(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        v.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    v.truncate(n);
    v
}

const WORDS: [&str; 32] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "box", "backup", "store", "raid",
    "file", "data",
];

/// gen-source.py's word_text: numbered lines of 12 words drawn from 32.
fn word_text(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(size + 128);
    let mut line = 0u64;
    while out.len() < size {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let mut r = z ^ (z >> 31);
        out.extend_from_slice(format!("{line:07}").as_bytes());
        for _ in 0..12 {
            out.push(b' ');
            out.extend_from_slice(WORDS[(r & 31) as usize].as_bytes());
            r >>= 5;
        }
        out.push(b'\n');
        line += 1;
    }
    out.truncate(size);
    out
}

fn primitives(c: &mut Criterion) {
    let keys = Keys::test_vector();
    let data = splitmix(1, 4096);
    let mut g = c.benchmark_group("primitives");
    g.throughput(Throughput::Bytes(4096));
    g.bench_function("md5", |b| {
        b.iter(|| bb_format::crypto::md5(black_box(&data)))
    });
    g.bench_function("weak", |b| {
        b.iter(|| bb_format::checksum::weak_checksum(black_box(&data)))
    });
    let mut out = Vec::with_capacity(8192);
    g.bench_function("aes_enc", |b| {
        b.iter(|| {
            out.clear();
            bb_format::crypto::aes_encrypt_into(
                keys.file_data_cipher(),
                &[0; 16],
                black_box(&data),
                &mut out,
            )
        })
    });
    g.finish();
}

fn chunks(c: &mut Criterion) {
    let keys = Keys::test_vector();
    let text = word_text(16 << 20, 42);
    let random = splitmix(3, 16 << 20);
    let mut g = c.benchmark_group("chunk_encode");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(text.len() as u64));
    for level in 1..=6 {
        let mut codec = ChunkCodec::with_level(level).unwrap();
        let mut out = Vec::with_capacity(8192);
        let mut total = 0usize;
        for b in text.chunks(4096) {
            out.clear();
            codec.encode(&keys, b, &mut out);
            total += out.len();
        }
        eprintln!(
            "level {level}: text 4 KiB blocks -> {:.3} of clear size",
            total as f64 / text.len() as f64
        );
        g.bench_function(format!("text_level{level}"), |bch| {
            bch.iter(|| {
                for b in text.chunks(4096) {
                    out.clear();
                    codec.encode(&keys, b, &mut out);
                }
            })
        });
    }
    let mut codec = ChunkCodec::new();
    let mut out = Vec::with_capacity(8192);
    g.bench_function("random", |bch| {
        bch.iter(|| {
            for b in random.chunks(4096) {
                out.clear();
                codec.encode(&keys, b, &mut out);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, primitives, chunks);
criterion_main!(benches);
