//! A sparse file over 4 GiB, end to end: 0.13 has 32-bit arithmetic in its RAID read
//! path (store.md §11.5: a read with exactly 4 GiB left returns nothing). Written,
//! transformed (holes stay holes), and read around the 4 GiB boundary and at the end,
//! complete and with each component lost.

mod common;

use std::time::Instant;

use bb_raid::layout::Layout;
use bb_raid::{Component, Overwrite, RaidRead, RaidWrite};

const GIB: u64 = 1 << 30;

#[test]
fn sparse_file_over_4_gib() {
    let t = common::TempSet::raid(4096);
    let size = 5 * GIB + 12345;
    let marks: Vec<(u64, Vec<u8>)> = vec![
        (0, common::data(1000, 1)),
        (4 * GIB - 5000, common::data(10_000, 2)),
        (size - 100, common::data(100, 3)),
    ];
    let started = Instant::now();
    let mut w = RaidWrite::create(&t.set, "big", Overwrite::Deny).unwrap();
    for (at, bytes) in &marks {
        w.seek_to(*at).unwrap();
        w.write_bytes(bytes).unwrap();
    }
    assert_eq!(w.len(), size);
    let c = w.commit(true).unwrap();
    assert!(c.transformed, "{:?}", c.transform_error);
    assert!(
        started.elapsed().as_secs() < 30,
        "holes must not be written out"
    );

    let l = Layout::of(size, 4096);
    for (comp, want) in Component::ALL.iter().zip([l.stripe1, l.stripe2, l.parity]) {
        let m = std::fs::metadata(t.set.component_path("big", *comp)).unwrap();
        assert_eq!(m.len(), want, "{comp:?}");
        use std::os::unix::fs::MetadataExt;
        assert!(m.blocks() * 512 < 64 << 20, "{comp:?} stays sparse");
    }
    assert_eq!(t.set.size("big").unwrap(), size);

    let expect = |off: u64, len: usize| -> Vec<u8> {
        let mut v = vec![0u8; len];
        for (at, bytes) in &marks {
            for (i, b) in bytes.iter().enumerate() {
                let p = at + i as u64;
                if p >= off && p < off + len as u64 {
                    v[(p - off) as usize] = *b;
                }
            }
        }
        v
    };
    let probes: Vec<(u64, usize)> = vec![
        (0, 1200),
        (4 * GIB - 6000, 12_000),
        (4 * GIB - 1, 2),
        (size - (4 * GIB), 100), // exactly 4 GiB left: 0.13 would return nothing
        (size - (4 * GIB) - 1, 10),
        (3 * GIB, 8192),
        (size - 150, 150),
    ];
    for lost in [
        None,
        Some(Component::Stripe1),
        Some(Component::Stripe2),
        Some(Component::Parity),
    ] {
        let aside = lost.map(|c| {
            let p = t.set.component_path("big", c);
            let a = p.with_extension("aside");
            std::fs::rename(&p, &a).unwrap();
            (p, a)
        });
        let mut r = RaidRead::open(&t.set, "big").unwrap();
        assert_eq!(r.size(), size, "{lost:?}");
        assert_eq!(r.is_degraded(), lost.is_some());
        for &(off, len) in &probes {
            let mut buf = vec![0xAAu8; len];
            let n = r.read_at(&mut buf, off).unwrap();
            assert_eq!(n, len, "read at {off} without {lost:?}");
            assert!(buf == expect(off, len), "bytes at {off} without {lost:?}");
        }
        let mut past = [0u8; 10];
        assert_eq!(r.read_at(&mut past, size).unwrap(), 0);
        assert_eq!(r.read_at(&mut past, size - 3).unwrap(), 3);
        if let Some((p, a)) = aside {
            std::fs::rename(a, p).unwrap();
        }
    }
}
