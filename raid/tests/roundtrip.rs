//! Write -> commit -> transform -> read, for the edge-case sizes of store.md §6, with
//! every single component lost, truncated or rebuilt; plus the name and directory
//! operations.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};

use bb_raid::{
    Component, Damage, Existence, ListKind, Overwrite, RaidRead, RaidWrite, Rebuilt,
    Representation, Transformed, rebuild, transform,
};
use common::{TempSet, data, edge_sizes, read_components, reference_components};
use proptest::prelude::*;

fn write_file(t: &TempSet, name: &str, content: &[u8], now: bool) {
    let mut w = RaidWrite::create(&t.set, name, Overwrite::Allow).unwrap();
    // Odd-sized pieces, so buffering is exercised.
    for piece in content.chunks(1733) {
        w.write_all(piece).unwrap();
    }
    assert_eq!(w.len(), content.len() as u64);
    let c = w.commit(now).unwrap();
    assert!(c.transform_error.is_none(), "{:?}", c.transform_error);
    assert_eq!(c.transformed, now && t.set.is_raid());
}

fn read_back(t: &TempSet, name: &str) -> (Vec<u8>, Option<bb_raid::Degraded>) {
    let mut r = RaidRead::open(&t.set, name).unwrap();
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    assert_eq!(v.len() as u64, r.size());
    (v, r.degraded())
}

#[test]
fn edge_sizes_match_the_layout_and_survive_any_one_loss() {
    for b in [2048usize, 4096] {
        let t = TempSet::raid(b as u64);
        for (i, &s) in edge_sizes(b).iter().enumerate() {
            let name = format!("f{i}");
            let content = data(s, i as u64);
            write_file(&t, &name, &content, true);
            assert!(!t.set.write_path(&name).exists());
            let comps = read_components(&t.set, &name);
            assert_eq!(comps, reference_components(&content, b), "size {s}, B {b}");
            assert_eq!(read_back(&t, &name), (content.clone(), None));
            assert_eq!(t.set.size(&name).unwrap(), s as u64);

            for c in Component::ALL {
                let p = t.set.component_path(&name, c);
                let aside = p.with_extension("aside");
                // Lost.
                std::fs::rename(&p, &aside).unwrap();
                let (got, d) = read_back(&t, &name);
                assert_eq!(got, content, "size {s} B {b} without {c:?}");
                let d = d.unwrap();
                assert_eq!((d.component, d.damage), (c, Damage::Missing));
                // Rebuilt byte-identical.
                assert_eq!(rebuild(&t.set, &name).unwrap(), Rebuilt::Component(c));
                assert_eq!(
                    std::fs::read(&p).unwrap(),
                    comps[c.index()],
                    "rebuilt {c:?} size {s}"
                );
                std::fs::remove_file(&aside).unwrap();
                // Truncated (when there is something to cut).
                let len = comps[c.index()].len() as u64;
                for cut in [len.saturating_sub(1), len / 2, 0] {
                    if cut >= len {
                        continue;
                    }
                    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                    f.set_len(cut).unwrap();
                    drop(f);
                    let (got, d) = read_back(&t, &name);
                    assert_eq!(got, content, "size {s} B {b}, {c:?} cut to {cut}");
                    let d = d.unwrap_or_else(|| panic!("size {s} {c:?} cut to {cut}: not noticed"));
                    assert_eq!(d.component, c, "size {s} cut {c:?} to {cut}");
                    assert_eq!(rebuild(&t.set, &name).unwrap(), Rebuilt::Component(c));
                    assert_eq!(std::fs::read(&p).unwrap(), comps[c.index()]);
                }
            }
            assert_eq!(rebuild(&t.set, &name).unwrap(), Rebuilt::Healthy);
            assert!(!t.set.repair_queue().is_empty());
            while t.set.repair_queue().pop().is_some() {}
        }
    }
}

#[test]
fn two_components_lost_is_an_error_not_garbage() {
    let t = TempSet::raid(4096);
    write_file(&t, "x", &data(10000, 1), true);
    std::fs::remove_file(t.set.component_path("x", Component::Stripe1)).unwrap();
    std::fs::remove_file(t.set.component_path("x", Component::Parity)).unwrap();
    assert!(matches!(
        RaidRead::open(&t.set, "x"),
        Err(bb_raid::Error::Damaged { .. })
    ));
    assert_eq!(
        t.set.existence("x").unwrap(),
        Existence::AsRaidWithMissingNotRecoverable
    );
}

#[test]
fn non_raid_set_keeps_write_files() {
    let t = TempSet::single(4096);
    for (i, &s) in edge_sizes(4096).iter().enumerate().step_by(5) {
        let name = format!("d/f{i}");
        if i == 0 {
            t.set.create_dir("d", false).unwrap();
        }
        let content = data(s, 7 + i as u64);
        write_file(&t, &name, &content, true);
        assert_eq!(std::fs::read(t.set.write_path(&name)).unwrap(), content);
        let r = RaidRead::open(&t.set, &name).unwrap();
        assert_eq!(r.representation(), Representation::WriteFile);
        assert_eq!(read_back(&t, &name), (content, None));
        assert_eq!(t.set.existence(&name).unwrap(), Existence::NonRaid);
        assert_eq!(transform(&t.set, &name).unwrap(), Transformed::NonRaidSet);
    }
}

#[test]
fn commit_without_transform_then_raidify() {
    let t = TempSet::raid(2048);
    let content = data(50_000, 3);
    write_file(&t, "late", &content, false);
    assert_eq!(t.set.existence("late").unwrap(), Existence::NonRaid);
    assert_eq!(read_back(&t, "late"), (content.clone(), None));
    assert_eq!(transform(&t.set, "late").unwrap(), Transformed::Done);
    assert_eq!(t.set.existence("late").unwrap(), Existence::AsRaid);
    assert_eq!(
        read_components(&t.set, "late"),
        reference_components(&content, 2048)
    );
    assert_eq!(transform(&t.set, "late").unwrap(), Transformed::NothingToDo);
    // A newer write file wins over older components until it is transformed too.
    let newer = data(1234, 4);
    write_file(&t, "late", &newer, false);
    assert_eq!(read_back(&t, "late").0, newer);
    assert_eq!(rebuild(&t.set, "late").unwrap(), Rebuilt::Transformed);
    assert_eq!(read_back(&t, "late"), (newer.clone(), None));
    assert_eq!(
        read_components(&t.set, "late"),
        reference_components(&newer, 2048)
    );
}

#[test]
fn seek_read_and_write() {
    let t = TempSet::raid(2048);
    let mut w = RaidWrite::create(&t.set, "s", Overwrite::Deny).unwrap();
    w.write_all(&[1u8; 5000]).unwrap();
    w.seek(SeekFrom::Start(100)).unwrap();
    w.write_all(&[2u8; 10]).unwrap();
    w.seek(SeekFrom::Start(9000)).unwrap();
    w.write_all(&[3u8; 5]).unwrap();
    assert_eq!(w.len(), 9005);
    w.commit(true).unwrap();
    let mut want = vec![1u8; 5000];
    want[100..110].fill(2);
    want.resize(9000, 0);
    want.extend([3u8; 5]);
    for lost in [None, Some(Component::Stripe1), Some(Component::Stripe2)] {
        if let Some(c) = lost {
            std::fs::remove_file(t.set.component_path("s", c)).unwrap();
        }
        let mut r = RaidRead::open(&t.set, "s").unwrap();
        let mut buf = [0u8; 20];
        r.seek(SeekFrom::Start(95)).unwrap();
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..], &want[95..115]);
        assert_eq!(r.read_at(&mut buf, 8995).unwrap(), 10);
        assert_eq!(&buf[..10], &want[8995..]);
        r.seek(SeekFrom::End(-3)).unwrap();
        let mut tail = Vec::new();
        r.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, [3, 3, 3]);
        // Small sequential reads, as a stream consumer does them.
        r.seek(SeekFrom::Start(0)).unwrap();
        let mut all = Vec::new();
        let mut small = [0u8; 333];
        loop {
            let n = r.read(&mut small).unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&small[..n]);
        }
        assert_eq!(all, want);
        if let Some(c) = lost {
            assert_eq!(rebuild(&t.set, "s").unwrap(), Rebuilt::Component(c));
        }
    }
}

#[test]
fn names_directories_and_listings() {
    let t = TempSet::raid(4096);
    assert!(!t.set.dir_exists("backup").unwrap());
    t.set.create_dir("backup/01234567/01", true).unwrap();
    assert!(t.set.dir_exists("backup/01234567").unwrap());
    assert!(t.set.create_dir("backup", false).is_err());
    std::fs::remove_dir(t.set.disc_dir(1).join("backup/01234567/01")).unwrap();
    assert!(
        t.set.dir_exists("backup/01234567/01").is_err(),
        "on two discs of three"
    );
    std::fs::create_dir(t.set.disc_dir(1).join("backup/01234567/01")).unwrap();

    let d = "backup/01234567";
    write_file(&t, &format!("{d}/o01"), &data(100, 1), true);
    write_file(&t, &format!("{d}/o02"), &data(10000, 2), false);
    write_file(&t, &format!("{d}/info"), &data(300, 3), true);
    assert!(matches!(
        RaidWrite::create(&t.set, &format!("{d}/o01"), Overwrite::Deny),
        Err(bb_raid::Error::AlreadyExists { .. })
    ));
    let l = t.set.list_dir(d, ListKind::Files).unwrap();
    assert_eq!(l.names, ["info", "o01", "o02"]);
    assert!(l.all_readable);
    assert_eq!(t.set.list_dir(d, ListKind::Dirs).unwrap().names, ["01"]);
    // An unfinished write is invisible.
    let w = RaidWrite::create(&t.set, &format!("{d}/o03"), Overwrite::Deny).unwrap();
    assert_eq!(t.set.list_dir(d, ListKind::Files).unwrap().names.len(), 3);
    assert!(!t.set.exists(&format!("{d}/o03")).unwrap());
    drop(w);
    assert!(
        !t.set.write_temp_path(&format!("{d}/o03")).exists(),
        "dropped writer discards"
    );

    let rev1 = t.set.revision(&format!("{d}/o01")).unwrap().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    write_file(&t, &format!("{d}/o01"), &data(200, 9), true);
    let rev2 = t.set.revision(&format!("{d}/o01")).unwrap().unwrap();
    assert_ne!(rev1, rev2);

    // Two components gone: listed, but not all readable.
    std::fs::remove_file(
        t.set
            .component_path(&format!("{d}/info"), Component::Stripe1),
    )
    .unwrap();
    std::fs::remove_file(
        t.set
            .component_path(&format!("{d}/info"), Component::Stripe2),
    )
    .unwrap();
    assert!(!t.set.list_dir(d, ListKind::Files).unwrap().all_readable);

    t.set.delete(&format!("{d}/o01")).unwrap();
    t.set.delete(&format!("{d}/o02")).unwrap();
    t.set.delete(&format!("{d}/info")).unwrap();
    assert!(matches!(
        t.set.delete(&format!("{d}/o01")),
        Err(bb_raid::Error::NotFound { .. })
    ));
    assert!(t.set.list_dir(d, ListKind::Files).unwrap().names.is_empty());
    for disc in t.set.dirs() {
        let left: Vec<_> = std::fs::read_dir(disc.join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            ["01"],
            "nothing but the subdirectory is left on {disc:?}"
        );
    }
}

fn damage_strategy() -> impl Strategy<Value = (usize, u8, u64)> {
    // (component, 0 = missing / 1 = truncated / 2 = unreadable (EIO), cut fraction seed)
    (0usize..3, 0u8..3, any::<u64>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    /// Any length, any one component lost: reads back identical, and recovery
    /// rebuilds the lost component byte-identical.
    #[test]
    fn any_length_any_one_loss(len in 0usize..3000, seed in any::<u64>(), b in prop::sample::select(vec![16u64, 24, 64, 256]), (ci, kind, cut) in damage_strategy()) {
        let t = TempSet::raid(b);
        t.set.create_dir("p", false).unwrap();
        let content = data(len, seed);
        write_file(&t, "p/q", &content[..], true);
        let comps = read_components(&t.set, "p/q");
        prop_assert_eq!(&comps, &reference_components(&content, b as usize));
        let c = Component::ALL[ci];
        let path = t.set.component_path("p/q", c);
        let set = match kind {
            0 => { std::fs::remove_file(&path).unwrap(); t.set.clone() }
            1 => {
                let n = comps[ci].len() as u64;
                if n == 0 { std::fs::remove_file(&path).unwrap(); } else {
                    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(cut % n).unwrap();
                }
                t.set.clone()
            }
            _ => {
                let f = bb_raid::fault::FaultFs::real();
                let p = bb_raid::fault::PathMatch::EndsWith(path.to_string_lossy().to_string());
                f.add_rule(bb_raid::fault::Rule::always(bb_raid::fault::Op::Open, p, bb_raid::fault::Fault::Errno(bb_raid::fault::EIO)));
                t.set.clone().with_fs(std::sync::Arc::new(f))
            }
        };
        let mut r = RaidRead::open(&set, "p/q").unwrap();
        let got = r.read_all().unwrap();
        prop_assert_eq!(&got, &content);
        let d = r.degraded();
        prop_assert!(d.is_some(), "loss not noticed");
        prop_assert_eq!(d.unwrap().component, c);
        drop(r);
        prop_assert_eq!(rebuild(&t.set, "p/q").unwrap(), Rebuilt::Component(c));
        prop_assert_eq!(&std::fs::read(&path).unwrap(), &comps[ci]);
        prop_assert_eq!(read_back(&t, "p/q"), (content, None));
    }
}
