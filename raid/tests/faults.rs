//! Crashes and I/O errors at every step, through the `FaultFs` seam: a committed file
//! is never unreadable, a half-written one is never visible, and the order of syncs
//! and renames is the one the crate essay promises.

mod common;

use std::path::Path;
use std::sync::Arc;

use bb_raid::fault::{EIO, ENOSPC, Fault, FaultFs, Op, PathMatch, Record, Rule};
use bb_raid::{Component, DiscSet, Overwrite, RaidRead, RaidWrite, Rebuilt};
use common::{TempSet, data};

const NAME: &str = "dir/obj";

fn faulty(t: &TempSet) -> (FaultFs, DiscSet) {
    let f = FaultFs::real();
    let set = t.set.clone().with_fs(Arc::new(f.clone()));
    (f, set)
}

fn put(set: &DiscSet, content: &[u8]) -> bb_raid::Result<bb_raid::Committed> {
    let mut w = RaidWrite::create(set, NAME, Overwrite::Allow)?;
    for piece in content.chunks(50_000) {
        w.write_bytes(piece)?;
    }
    w.commit(true)
}

fn content_now(t: &TempSet) -> Option<Vec<u8>> {
    match RaidRead::open(&t.set, NAME) {
        Ok(mut r) => Some(r.read_all().expect("a file that opens must read")),
        Err(bb_raid::Error::NotFound { .. }) => None,
        Err(e) => panic!("unreadable after crash: {e}"),
    }
}

/// Files other than the final representation left in the discs' `dir`.
fn leftovers(t: &TempSet) -> Vec<String> {
    let mut v = Vec::new();
    for d in t.set.dirs() {
        for e in std::fs::read_dir(d.join("dir")).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().to_string();
            if !n.ends_with(".rf") && !n.ends_with(".rfw") {
                v.push(n);
            }
        }
    }
    v
}

/// Crash after every possible number of operations of write + commit + transform,
/// with an older version in place (`old`) or none.
fn crash_everywhere(raid: bool, old: Option<&[u8]>) {
    let new = data(300_000, 99);
    // Count the operations of a clean run.
    let total = {
        let t = if raid {
            TempSet::raid(4096)
        } else {
            TempSet::single(4096)
        };
        t.set.create_dir("dir", false).unwrap();
        if let Some(o) = old {
            put(&t.set, o).unwrap();
        }
        let (f, set) = faulty(&t);
        put(&set, &new).unwrap();
        f.op_count()
    };
    assert!(total > 10);
    for n in 0..=total {
        let t = if raid {
            TempSet::raid(4096)
        } else {
            TempSet::single(4096)
        };
        t.set.create_dir("dir", false).unwrap();
        if let Some(o) = old {
            put(&t.set, o).unwrap();
        }
        let (f, set) = faulty(&t);
        f.crash_after(n);
        let outcome = put(&set, &new);
        // The process "died": what it left must read as the old or the new version.
        let got = content_now(&t);
        let is_old = got.as_deref() == old;
        let is_new = got.as_deref() == Some(&new[..]);
        assert!(
            is_old || is_new,
            "crash after {n} of {total} ops: neither old nor new content"
        );
        if let Ok(c) = &outcome {
            if c.transform_error.is_none() && !f.crashed() {
                assert!(
                    is_new,
                    "crash after {n}: reported success but content is old"
                );
            }
        }
        // A committed file is never lost: once the rename happened, it is the new one.
        let committed = f.log().iter().any(|r| {
            r.ok && r.op == Op::Rename
                && r.to
                    .as_deref()
                    .is_some_and(|p| p.to_string_lossy().ends_with(".rfw"))
        });
        if committed {
            assert!(
                is_new,
                "crash after {n}: commit happened but content is old"
            );
        }
        // "After the restart": the checker tidies up and raidifies.
        let mut checker = bb_raid::Checker::new(
            t.set.clone(),
            bb_raid::CheckerConfig {
                roots: vec!["dir".into()],
                ..Default::default()
            },
        );
        let mut steps = 0;
        while let Some(s) = checker.step() {
            s.result
                .unwrap_or_else(|e| panic!("crash after {n}: checker on {}: {e}", s.name));
            steps += 1;
            if checker.passes() > 0 || steps > 10 {
                break;
            }
        }
        assert_eq!(
            content_now(&t),
            got,
            "crash after {n}: the repair changed the content"
        );
        if raid && got.is_some() {
            let r = RaidRead::open(&t.set, NAME).unwrap();
            assert_eq!(
                r.representation(),
                bb_raid::Representation::Raid,
                "crash after {n}: not raidified"
            );
            assert!(!r.is_degraded());
        }
        let left = leftovers(&t);
        assert!(
            left.iter().all(|n| n.ends_with(".rfP")),
            "crash after {n}: left {left:?}"
        );
    }
}

#[test]
fn crash_at_every_step_raid_overwrite() {
    crash_everywhere(true, Some(&data(70_000, 1)));
}

#[test]
fn crash_at_every_step_raid_new() {
    crash_everywhere(true, None);
}

#[test]
fn crash_at_every_step_single() {
    crash_everywhere(false, Some(&data(5000, 2)));
}

#[test]
fn errors_at_every_write_and_sync() {
    let old = data(20_000, 3);
    let new = data(200_000, 4);
    for op in [
        Op::Write,
        Op::Sync,
        Op::SyncDir,
        Op::Rename,
        Op::Open,
        Op::SetLen,
    ] {
        for errno in [EIO, ENOSPC] {
            for skip in 0..12u64 {
                let t = TempSet::raid(2048);
                t.set.create_dir("dir", false).unwrap();
                put(&t.set, &old).unwrap();
                let (f, set) = faulty(&t);
                f.add_rule(Rule {
                    op,
                    path: PathMatch::Any,
                    skip,
                    times: Some(1),
                    fault: Fault::Errno(errno),
                });
                let outcome = put(&set, &new);
                let got = content_now(&t).unwrap();
                match &outcome {
                    Err(_) => assert!(got == old || got == new, "{op:?} #{skip}: corrupt"),
                    Ok(c) => {
                        assert_eq!(
                            got, new,
                            "{op:?} #{skip} errno {errno}: {:?}",
                            c.transform_error
                        );
                        if c.transform_error.is_some() {
                            // Committed as a write file and queued for raidify.
                            assert!(set.repair_queue().names().contains(&NAME.to_string()));
                            // (Healthy when only the final directory sync failed.)
                            let r = bb_raid::rebuild(&t.set, NAME).unwrap();
                            assert!(
                                matches!(r, Rebuilt::Transformed | Rebuilt::Healthy),
                                "{r:?}"
                            );
                        }
                    }
                }
                // Nothing half-made stays visible.
                assert!(
                    leftovers(&t).is_empty(),
                    "{op:?} #{skip}: {:?}",
                    leftovers(&t)
                );
                let r = RaidRead::open(&t.set, NAME).unwrap();
                assert!(!r.is_degraded(), "{op:?} #{skip}: degraded after an error");
            }
        }
    }
}

#[test]
fn short_writes_are_completed() {
    let t = TempSet::raid(4096);
    t.set.create_dir("dir", false).unwrap();
    let (f, set) = faulty(&t);
    f.add_rule(Rule {
        op: Op::Write,
        path: PathMatch::Any,
        skip: 0,
        times: None,
        fault: Fault::ShortWrite,
    });
    let new = data(123_457, 5);
    put(&set, &new).unwrap();
    assert_eq!(content_now(&t).unwrap(), new);
    assert_eq!(
        common::read_components(&t.set, NAME),
        common::reference_components(&new, 4096)
    );
}

fn pos(log: &[Record], f: impl Fn(&Record) -> bool) -> usize {
    log.iter().position(f).expect("operation not found")
}

fn last_pos(log: &[Record], f: impl Fn(&Record) -> bool) -> usize {
    log.iter().rposition(f).expect("operation not found")
}

#[test]
fn syncs_and_renames_happen_in_the_promised_order() {
    let t = TempSet::raid(4096);
    t.set.create_dir("dir", false).unwrap();
    put(&t.set, &data(1000, 6)).unwrap();
    let (f, set) = faulty(&t);
    put(&set, &data(100_000, 7)).unwrap();
    let log = f.log();
    let ends = |p: &Path, s: &str| p.to_string_lossy().ends_with(s);
    let temp = t.set.write_temp_path(NAME);
    let wfile = t.set.write_path(NAME);
    // Rule 1 for the write file.
    let commit = pos(&log, |r| r.op == Op::Rename && r.path == temp);
    let last_write = last_pos(&log[..commit], |r| r.op == Op::Write && r.path == temp);
    let sync = last_pos(&log[..commit], |r| r.op == Op::Sync && r.path == temp);
    assert!(last_write < sync && sync < commit);
    assert!(
        log[commit..]
            .iter()
            .any(|r| r.op == Op::SyncDir && r.path == wfile.parent().unwrap())
    );
    // Rule 1 for each component, and Rule 2.
    let unlink = pos(&log, |r| r.op == Op::Remove && r.path == wfile);
    for c in Component::ALL {
        let fin = t.set.component_path(NAME, c);
        let rename = pos(&log, |r| {
            r.op == Op::Rename && r.to.as_deref() == Some(&fin)
        });
        let tmp = &log[rename].path;
        assert!(ends(tmp, ".rfP"));
        let w = last_pos(&log[..rename], |r| r.op == Op::Write && &r.path == tmp);
        let s = last_pos(&log[..rename], |r| r.op == Op::Sync && &r.path == tmp);
        assert!(w < s && s < rename, "{c:?}: written, synced, renamed");
        let dsync = pos(&log[rename..], |r| {
            r.op == Op::SyncDir && r.path == fin.parent().unwrap()
        }) + rename;
        assert!(
            dsync < unlink,
            "{c:?}: directory synced before the write file goes"
        );
    }
    assert!(
        log[unlink..]
            .iter()
            .any(|r| r.op == Op::SyncDir && r.path == wfile.parent().unwrap())
    );
    assert!(log.iter().all(|r| r.ok));
}

#[test]
fn eio_mid_read_switches_to_recovery() {
    let t = TempSet::raid(4096);
    t.set.create_dir("dir", false).unwrap();
    let content = data(5 << 20, 8);
    put(&t.set, &content).unwrap();
    for c in [Component::Stripe1, Component::Stripe2] {
        let (f, set) = faulty(&t);
        let p = t.set.component_path(NAME, c);
        f.add_rule(Rule {
            op: Op::Read,
            path: PathMatch::EndsWith(p.to_string_lossy().into()),
            skip: 1,
            times: None,
            fault: Fault::Errno(EIO),
        });
        let mut r = RaidRead::open(&set, NAME).unwrap();
        assert!(!r.is_degraded());
        let mut got = vec![0u8; content.len()];
        let mut off = 0;
        while off < got.len() {
            let n = r
                .read_at(
                    &mut got[off..(off + 777_777).min(content.len())],
                    off as u64,
                )
                .unwrap();
            off += n;
        }
        assert!(got == content, "{c:?}");
        let d = r.degraded().unwrap();
        assert_eq!((d.component, d.damage), (c, bb_raid::Damage::Unreadable));
        assert!(!p.exists(), "moved aside like 0.13 does");
        assert!(t.set.unreadable_path(NAME, c).exists());
        assert_eq!(set.repair_queue().pop().as_deref(), Some(NAME));
        assert_eq!(
            bb_raid::rebuild(&t.set, NAME).unwrap(),
            Rebuilt::Component(c)
        );
    }
}

#[test]
fn a_whole_disc_unreadable() {
    let t = TempSet::raid(4096);
    t.set.create_dir("dir", false).unwrap();
    let content = data(1 << 20, 9);
    put(&t.set, &content).unwrap();
    for d in 0..3 {
        let (f, set) = faulty(&t);
        for op in [Op::Open, Op::Read, Op::Stat] {
            f.add_rule(Rule::always(
                op,
                PathMatch::Under(t.set.disc_dir(d).to_path_buf()),
                Fault::Errno(EIO),
            ));
        }
        // Renames into .raidfile-unreadable fail too on a dead disc; reads go on.
        f.add_rule(Rule::always(
            Op::Rename,
            PathMatch::Under(t.set.disc_dir(d).to_path_buf()),
            Fault::Errno(EIO),
        ));
        let mut r = RaidRead::open(&set, NAME).unwrap();
        assert_eq!(r.read_all().unwrap(), content, "disc {d}");
        assert!(r.is_degraded());
    }
}
