//! Codec throughput, one core: chunk encoding at zlib levels 1..6 on text,
//! whole-file encode and decode of text and random data, and the primitives
//! that bound them. `cargo bench -p bb-format --bench codec`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use bb_format::chunk::ChunkCodec;
use bb_format::decode::{StreamDecoder, decode_file};
use bb_format::encode::{FileEncoder, FileMeta, encode_file};
use bb_format::layout::{FileLayout, to_stream_order};
use bb_format::recipe::Recipe;
use bb_format::{EncodedName, Keys};

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
    let mut g = c.benchmark_group("primitives_4KiB");
    g.throughput(Throughput::Bytes(4096));
    g.bench_function("md5", |b| {
        b.iter(|| bb_format::crypto::md5(black_box(&data)))
    });
    g.bench_function("weak_checksum", |b| {
        b.iter(|| bb_format::checksum::weak_checksum(black_box(&data)))
    });
    let mut out = Vec::with_capacity(8192);
    g.bench_function("aes_cbc_encrypt", |b| {
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
    let mut ct = Vec::new();
    bb_format::crypto::aes_encrypt_into(keys.file_data_cipher(), &[0; 16], &data, &mut ct);
    g.bench_function("aes_cbc_decrypt", |b| {
        b.iter(|| {
            bb_format::crypto::aes_decrypt_into(
                keys.file_data_cipher(),
                &[0; 16],
                black_box(&ct),
                &mut out,
                "b",
            )
            .unwrap()
        })
    });
    g.finish();
}

/// zlib levels 1..6 on 4 KiB blocks of text: speed from criterion, ratio printed.
fn level_sweep(c: &mut Criterion) {
    let keys = Keys::test_vector();
    let text = word_text(16 << 20, 42);
    let mut g = c.benchmark_group("level_sweep_text_4KiB_blocks");
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
            "level {level}: chunks are {:.4} of the clear size",
            total as f64 / text.len() as f64
        );
        g.bench_function(format!("level{level}"), |bch| {
            bch.iter(|| {
                for b in text.chunks(4096) {
                    out.clear();
                    codec.encode(&keys, b, &mut out);
                }
            })
        });
    }
    g.finish();
}

fn stream_encode(keys: &Keys, meta: &FileMeta, recipe: &Recipe, data: &[u8]) -> u64 {
    let mut enc = FileEncoder::new(keys, meta.clone(), recipe.clone(), data).unwrap();
    std::io::copy(&mut enc, &mut std::io::sink()).unwrap()
}

fn stream_decode(keys: &Keys, stream: &[u8]) -> u64 {
    let mut dec = StreamDecoder::new(keys, stream).unwrap();
    std::io::copy(&mut dec, &mut std::io::sink()).unwrap()
}

fn files(c: &mut Criterion) {
    let keys = Keys::test_vector();
    let meta = FileMeta {
        container_id: 2,
        mtime: 0,
        name: EncodedName::encrypt(&keys, b"bench").unwrap(),
        attributes: vec![0; 49],
        symlink: false,
    };
    for mib in [16usize, 64] {
        let inputs = [
            ("text", word_text(mib << 20, 42)),
            ("random", splitmix(3, mib << 20)),
        ];
        let mut g = c.benchmark_group(format!("file_{mib}MiB"));
        g.sample_size(10);
        g.throughput(Throughput::Bytes((mib << 20) as u64));
        for (what, data) in &inputs {
            let recipe = Recipe::whole(data.len() as u64);
            let encoded = encode_file(&keys, &meta, &recipe, data).unwrap();
            eprintln!(
                "{what} {mib} MiB: encoded is {:.4} of the clear size",
                encoded.len() as f64 / data.len() as f64
            );
            g.bench_function(format!("encode_{what}"), |b| {
                b.iter(|| encode_file(&keys, &meta, &recipe, black_box(data)).unwrap())
            });
            g.bench_function(format!("decode_{what}"), |b| {
                b.iter(|| decode_file(&keys, black_box(&encoded)).unwrap())
            });
            // The streaming forms hold a few blocks at a time, so they also
            // leave out the page faults of a fresh 64 MiB output per run.
            g.bench_function(format!("stream_encode_{what}"), |b| {
                b.iter(|| stream_encode(&keys, &meta, &recipe, data))
            });
            let stream = to_stream_order(&FileLayout::parse(&encoded).unwrap());
            g.bench_function(format!("stream_decode_{what}"), |b| {
                b.iter(|| stream_decode(&keys, &stream))
            });
        }
        g.finish();
    }
}

/// CPU seconds used by this thread so far (utime + stime of
/// /proc/thread-self/stat, in clock ticks of 10 ms), or None off Linux.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields
    // 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Throughput per CPU second rather than per wall second, which stays
/// meaningful when other processes share the cores. Opt in with
/// CODEC_CPU_TIME=1 (it runs each case for about three CPU seconds).
fn cpu_time(_: &mut Criterion) {
    if std::env::var_os("CODEC_CPU_TIME").is_none() || thread_cpu_seconds().is_none() {
        return;
    }
    let keys = Keys::test_vector();
    let meta = FileMeta {
        container_id: 2,
        mtime: 0,
        name: EncodedName::encrypt(&keys, b"bench").unwrap(),
        attributes: vec![0; 49],
        symlink: false,
    };
    let measure = |what: &str, bytes: usize, f: &mut dyn FnMut()| {
        let start = thread_cpu_seconds().unwrap();
        let mut runs = 0usize;
        while thread_cpu_seconds().unwrap() - start < 3.0 {
            f();
            runs += 1;
        }
        let secs = thread_cpu_seconds().unwrap() - start;
        eprintln!(
            "cpu-time {what}: {:.0} MB/s ({:.0} MiB/s) per CPU second",
            (runs * bytes) as f64 / secs / 1e6,
            (runs * bytes) as f64 / secs / 1048576.0
        );
    };
    for mib in [16usize, 64] {
        for (what, data) in [
            ("text", word_text(mib << 20, 42)),
            ("random", splitmix(3, mib << 20)),
        ] {
            let recipe = Recipe::whole(data.len() as u64);
            let encoded = encode_file(&keys, &meta, &recipe, &data).unwrap();
            measure(&format!("encode {what} {mib} MiB"), data.len(), &mut || {
                black_box(encode_file(&keys, &meta, &recipe, &data).unwrap());
            });
            measure(&format!("decode {what} {mib} MiB"), data.len(), &mut || {
                black_box(decode_file(&keys, &encoded).unwrap());
            });
            measure(
                &format!("stream encode {what} {mib} MiB"),
                data.len(),
                &mut || {
                    black_box(stream_encode(&keys, &meta, &recipe, &data));
                },
            );
            let stream = to_stream_order(&FileLayout::parse(&encoded).unwrap());
            measure(
                &format!("stream decode {what} {mib} MiB"),
                data.len(),
                &mut || {
                    black_box(stream_decode(&keys, &stream));
                },
            );
        }
    }
    let data = splitmix(1, 4096);
    measure("md5 4 KiB blocks (yardstick)", 4096 * 1000, &mut || {
        for _ in 0..1000 {
            black_box(bb_format::crypto::md5(black_box(&data)));
        }
    });
}

criterion_group!(benches, primitives, level_sweep, files, cpu_time);
criterion_main!(benches);
