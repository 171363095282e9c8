//! RaidFile throughput against a plain copy of the same data on the same disc.
//!
//! Not part of the test suite: `cargo bench -p bb-raid --bench raidfile`.
//! Environment: `BB_BENCH_MB` (file size, default 1024), `BB_BENCH_RUNS` (default 3),
//! `BB_BENCH_DIR` (where to put the files, default the system temp dir).
//!
//! Every write is measured up to durability (fsync of files and directories, which
//! RaidFile's commit and transform do anyway), so the disc is in the measurement.
//! Reads cannot drop the page cache (no root-only /proc/sys/vm/drop_caches in the
//! sandbox), so both the plain and the RAID reads are of files just written, i.e.
//! served from the page cache: they compare the CPU and system-call cost of the two
//! paths, which is what the reader's design controls. Figures are medians of runs.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bb_raid::{Buffering, Component, DiscSet, Overwrite, RaidRead, RaidWrite};

const CHUNK: usize = 1 << 20;

fn data(len: usize) -> Vec<u8> {
    let mut s = 0x1234_5678_9abc_def0u64;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        v.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    v.truncate(len);
    v
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Lets the disc go quiet before the next measurement: the filesystem is mounted
/// with `discard`, so the blocks freed by the previous step are trimmed at a later
/// journal commit, which would otherwise land in the next step's timing.
fn settle() {
    let _ = std::process::Command::new("sync").status();
    std::thread::sleep(Duration::from_millis(1500));
}

fn sync_dir(d: &Path) {
    File::open(d).unwrap().sync_all().unwrap();
}

fn set(base: &Path, buffering: Buffering) -> DiscSet {
    let dirs: Vec<PathBuf> = (0..3).map(|i| base.join(format!("disc{i}"))).collect();
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    DiscSet::new(0, 4096, dirs)
        .unwrap()
        .with_buffering(buffering)
}

fn read_plain(p: &Path) -> usize {
    let mut f = File::open(p).unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0;
    loop {
        let k = f.read(&mut buf).unwrap();
        if k == 0 {
            return n;
        }
        n += k;
    }
}

fn read_raid(s: &DiscSet) -> usize {
    let mut r = RaidRead::open(s, "f").unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0;
    loop {
        let k = r.read(&mut buf).unwrap();
        if k == 0 {
            return n;
        }
        n += k;
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing useful.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mb: usize = std::env::var("BB_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let runs: usize = std::env::var("BB_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let root = std::env::var("BB_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let tmp = tempfile::tempdir_in(root).unwrap();
    let base = tmp.path();
    let len = mb << 20;
    let content = data(len);
    let src = base.join("source");
    std::fs::write(&src, &content).unwrap();
    File::open(&src).unwrap().sync_all().unwrap();

    let mut t: std::collections::BTreeMap<&str, Vec<Duration>> = Default::default();
    for _ in 0..runs {
        // Plain copy of the file (copy_file_range) up to durability.
        let dst = base.join("copy");
        settle();
        let s = Instant::now();
        std::fs::copy(&src, &dst).unwrap();
        File::open(&dst).unwrap().sync_all().unwrap();
        sync_dir(base);
        t.entry("plain copy").or_default().push(s.elapsed());
        std::fs::remove_file(&dst).unwrap();

        // Plain write of the bytes from memory, 1 MiB per write, up to durability.
        settle();
        let s = Instant::now();
        let mut f = File::create(&dst).unwrap();
        for c in content.chunks(CHUNK) {
            f.write_all(c).unwrap();
        }
        f.sync_all().unwrap();
        sync_dir(base);
        t.entry("plain write").or_default().push(s.elapsed());

        let s = Instant::now();
        assert_eq!(read_plain(&dst), len);
        t.entry("plain read").or_default().push(s.elapsed());

        // The bytes a RAID write has to make durable, written plainly: 2.5x (the write
        // file and the three components) is the disc's own limit for a RAID write, and
        // 1.5x (components only) the limit of any scheme that skips the write file.
        for (label, n) in [
            ("plain write 1.5x", len * 3 / 2),
            ("plain write 2.5x", len * 5 / 2),
        ] {
            let extra = base.join("extra");
            settle();
            let s = Instant::now();
            let mut f = File::create(&extra).unwrap();
            let mut left = n;
            while left > 0 {
                let k = left.min(CHUNK);
                f.write_all(&content[..k]).unwrap();
                left -= k;
            }
            f.sync_all().unwrap();
            sync_dir(base);
            t.entry(label).or_default().push(s.elapsed());
            std::fs::remove_file(&extra).unwrap();
        }

        for (label, buffering) in [
            ("raid write", Buffering::Blocks),
            ("raid write unbuffered", Buffering::None),
        ] {
            let rs = set(&base.join(label.replace(' ', "-")), buffering);
            settle();
            let s = Instant::now();
            let mut w = RaidWrite::create(&rs, "f", Overwrite::Allow).unwrap();
            // The store writes objects in protocol-sized pieces; 4 KiB here, so the
            // buffering has something to gather.
            for c in content.chunks(4096) {
                w.write_bytes(c).unwrap();
            }
            assert!(w.commit(true).unwrap().transformed);
            t.entry(label).or_default().push(s.elapsed());
            if buffering == Buffering::Blocks {
                let s = Instant::now();
                assert_eq!(read_raid(&rs), len);
                t.entry("raid read").or_default().push(s.elapsed());
                let p = rs.component_path("f", Component::Stripe1);
                let aside = p.with_extension("aside");
                std::fs::rename(&p, &aside).unwrap();
                let s = Instant::now();
                assert_eq!(read_raid(&rs), len);
                t.entry("raid read degraded").or_default().push(s.elapsed());
                std::fs::rename(&aside, &p).unwrap();
            }
            rs.delete("f").unwrap();
        }
        std::fs::remove_file(&dst).ok();
    }
    let mbps = |d: Duration| (len as f64 / (1 << 20) as f64) / d.as_secs_f64();
    let med: std::collections::BTreeMap<&str, Duration> =
        t.into_iter().map(|(k, v)| (k, median(v))).collect();
    println!(
        "RaidFile benchmark: {mb} MiB, {runs} runs, medians, block size 4096, dir {}",
        base.display()
    );
    for (k, d) in &med {
        println!("{k:24} {:8.3} s {:8.0} MiB/s", d.as_secs_f64(), mbps(*d));
    }
    let r = |a: &str, b: &str| mbps(med[a]) / mbps(med[b]) * 100.0;
    println!(
        "raid write / plain copy          {:5.0} %",
        r("raid write", "plain copy")
    );
    println!(
        "raid write unbuffered / copy     {:5.0} %",
        r("raid write unbuffered", "plain copy")
    );
    println!(
        "raid read / plain read           {:5.0} %",
        r("raid read", "plain read")
    );
    println!(
        "raid read degraded / plain read  {:5.0} %",
        r("raid read degraded", "plain read")
    );
}
