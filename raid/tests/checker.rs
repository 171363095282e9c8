//! The background checker: queued (degraded-on-read) names first, then a paced walk
//! over every file that repairs lost or truncated components, rewrites wrong parity,
//! raidifies leftover write files and removes orphaned write temporaries.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bb_raid::{
    Checked, Checker, CheckerConfig, Component, Existence, Overwrite, RaidRead, RaidWrite, Rebuilt,
};
use common::{TempSet, data, read_components, reference_components};

fn put(t: &TempSet, name: &str, content: &[u8], transform: bool) {
    let mut w = RaidWrite::create(&t.set, name, Overwrite::Allow).unwrap();
    w.write_bytes(content).unwrap();
    w.commit(transform).unwrap();
}

#[test]
fn checker_repairs_everything_it_finds() {
    let t = TempSet::raid(2048);
    t.set.create_dir("st/sub", true).unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| {
            (
                if i < 4 {
                    format!("st/o{i:02}")
                } else {
                    format!("st/sub/o{i:02}")
                },
                data(3000 + 4999 * i, i as u64),
            )
        })
        .collect();
    for (n, c) in &files {
        put(&t, n, c, true);
    }
    put(&t, "st/refcount.rdb", b"stays a write file", false);
    // Damage: a missing stripe, a truncated parity, a flipped parity byte, a write file
    // left by a crash before transform, and an orphaned .rfwX.
    std::fs::remove_file(t.set.component_path(&files[0].0, Component::Stripe1)).unwrap();
    let p = t.set.component_path(&files[1].0, Component::Parity);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(100)
        .unwrap();
    let p = t.set.component_path(&files[5].0, Component::Parity);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[10] ^= 0x40;
    std::fs::write(&p, bytes).unwrap();
    put(&t, &files[6].0, &files[6].1, false);
    std::fs::write(t.set.write_temp_path("st/o99"), b"half written").unwrap();
    // A reader trips over file 7's lost stripe 2 first: it is queued.
    std::fs::remove_file(t.set.component_path(&files[7].0, Component::Stripe2)).unwrap();
    let mut r = RaidRead::open(&t.set, &files[7].0).unwrap();
    assert_eq!(r.read_all().unwrap(), files[7].1);
    assert_eq!(t.set.repair_queue().names(), vec![files[7].0.clone()]);

    let mut checker = Checker::new(
        t.set.clone(),
        CheckerConfig {
            roots: vec!["st".into()],
            bytes_per_second: 1 << 40,
            raidify: true,
            keep_as_write_file: Arc::new(|n: &str| n.ends_with("/refcount.rdb")),
        },
    );
    let first = checker.step().unwrap();
    assert!(first.queued);
    assert_eq!(first.name, files[7].0);
    assert_eq!(
        first.result.unwrap(),
        Checked::Repaired(Rebuilt::Component(Component::Stripe2))
    );

    let mut results = std::collections::BTreeMap::new();
    while checker.passes() == 0 {
        let s = checker.step().unwrap();
        // The step that notices the end of a pass already hands out the first file
        // of the next one; keep the first result per name.
        results.entry(s.name.clone()).or_insert(s.result.unwrap());
    }
    assert_eq!(
        results[&files[0].0],
        Checked::Repaired(Rebuilt::Component(Component::Stripe1))
    );
    assert_eq!(
        results[&files[1].0],
        Checked::Repaired(Rebuilt::Component(Component::Parity))
    );
    assert_eq!(results[&files[5].0], Checked::ParityRewritten);
    assert_eq!(
        results[&files[6].0],
        Checked::Repaired(Rebuilt::Transformed)
    );
    assert_eq!(results["st/refcount.rdb"], Checked::WriteFile);
    assert_eq!(results[&files[2].0], Checked::Good);
    assert!(!t.set.write_temp_path("st/o99").exists(), "orphan removed");
    for (n, c) in &files {
        assert_eq!(t.set.existence(n).unwrap(), Existence::AsRaid, "{n}");
        assert_eq!(
            read_components(&t.set, n),
            reference_components(c, 2048),
            "{n}"
        );
    }
    assert_eq!(
        t.set.existence("st/refcount.rdb").unwrap(),
        Existence::NonRaid
    );
}

#[test]
fn checker_keeps_its_pace_and_stops() {
    let t = TempSet::raid(2048);
    t.set.create_dir("a", false).unwrap();
    for i in 0..5 {
        put(&t, &format!("a/f{i}"), &data(100_000, i), true);
    }
    let mut c = Checker::new(
        t.set.clone(),
        CheckerConfig {
            roots: vec!["a".into()],
            bytes_per_second: 1_000_000,
            ..Default::default()
        },
    );
    c.step().unwrap().result.unwrap();
    c.step().unwrap().result.unwrap();
    // 200 kB checked at 1 MB/s: about 0.2 s to wait.
    let p = c.pause();
    assert!(
        p > Duration::from_millis(100) && p <= Duration::from_millis(200),
        "{p:?}"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let set = t.set.clone();
    let h = std::thread::spawn(move || {
        let mut c = Checker::new(
            set,
            CheckerConfig {
                roots: vec!["a".into()],
                ..Default::default()
            },
        );
        c.run(&s2);
        c.passes()
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    assert!(h.join().unwrap() >= 1);
}
