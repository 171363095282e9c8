//! Helpers shared by the integration tests: temporary disc sets, deterministic data,
//! and an independent reference encoder of the RAID layout (written from the table
//! in store.md §6.5, not from the crate's code).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bb_raid::{Component, DiscSet};

pub struct TempSet {
    pub dir: tempfile::TempDir,
    pub set: DiscSet,
}

impl TempSet {
    pub fn raid(block: u64) -> TempSet {
        let dir = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..3)
            .map(|i| dir.path().join(format!("disc{i}")))
            .collect();
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
        }
        let set = DiscSet::new(0, block, dirs).unwrap();
        TempSet { dir, set }
    }

    pub fn single(block: u64) -> TempSet {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("disc0");
        std::fs::create_dir(&d).unwrap();
        let set = DiscSet::single(0, block, d).unwrap();
        TempSet { dir, set }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// splitmix64-based bytes: deterministic, incompressible, different per seed.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(len as u64);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The three components 0.13 writes for `data` with block size `b`, computed the
/// slow, obvious way from store.md §6.5.
pub fn reference_components(data: &[u8], b: usize) -> [Vec<u8>; 3] {
    let s = data.len();
    let (mut s1, mut s2, mut p) = (Vec::new(), Vec::new(), Vec::new());
    for (i, blk) in data.chunks(b).enumerate() {
        if i % 2 == 0 {
            s1.extend_from_slice(blk)
        } else {
            s2.extend_from_slice(blk)
        }
    }
    let pairs: Vec<&[u8]> = data.chunks(2 * b).collect();
    let mut appended = s == 0;
    for (k, pair) in pairs.iter().enumerate() {
        let mut blk = vec![0u8; b];
        for (i, &x) in pair.iter().enumerate() {
            blk[i % b] ^= x;
        }
        if k + 1 == pairs.len() {
            let l = pair.len();
            if l == 8 || l == b {
                appended = true;
            } else if l < b {
                blk.truncate(l);
            } else if l < 2 * b - 8 {
                for (i, x) in (s as u64).to_be_bytes().iter().enumerate() {
                    blk[b - 8 + i] ^= x;
                }
            } else {
                appended = true;
            }
        }
        p.extend_from_slice(&blk);
    }
    if appended {
        p.extend_from_slice(&(s as u64).to_be_bytes());
    }
    [s1, s2, p]
}

/// The three component files of `name`, in stripe 1, stripe 2, parity order.
pub fn read_components(set: &DiscSet, name: &str) -> [Vec<u8>; 3] {
    Component::ALL.map(|c| std::fs::read(set.component_path(name, c)).unwrap())
}

/// The sizes store.md §6 calls edge cases for block size `b`.
pub fn edge_sizes(b: usize) -> Vec<usize> {
    let mut v = vec![
        0,
        1,
        7,
        8,
        9,
        b - 9,
        b - 8,
        b - 1,
        b,
        b + 1,
        b + 7,
        b + 8,
        b + 9,
    ];
    for k in [2, 3, 4, 5] {
        let m = k * b;
        v.extend([m - 9, m - 8, m - 7, m - 1, m, m + 1, m + 7, m + 8, m + 9]);
    }
    v.push(3 * 1024 * 1024 + 1234);
    v.sort();
    v.dedup();
    v
}
