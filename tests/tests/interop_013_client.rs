//! The real 0.13 client against our bbstored (issue 4, first "Done when"):
//! bbackupd backs up the fixture source (its three rounds) and a generated tree
//! whose multi-megabyte files change between rounds, so that diffs are sent.
//! After every round 0.13's `compare -acQ` finds no difference and its restore
//! is identical; at the end 0.13's `bbstoreaccounts check` finds no error in
//! what we wrote and its usage figures equal ours.

use bb_tests::ours::{OurServer, StoreDir};
use bb_tests::{bb013, fixtures, free_port, tree};

fn check_with_013(store: &StoreDir) -> String {
    let out = bb013::command("bbstoreaccounts")
        .arg("-c")
        .arg(&store.conf)
        .args(["check", "01234567"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "0.13 check: {}\n{text}", out.status);
    assert!(!text.contains("ERROR"), "0.13 check found errors:\n{text}");
    text
}

fn info_013(store: &StoreDir) -> String {
    let out = bb013::command("bbstoreaccounts")
        .arg("-c")
        .arg(&store.conf)
        .args(["info", "01234567"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number after `label` in 0.13's `info` output.
fn field(info: &str, label: &str) -> i64 {
    let line = info
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no '{label}' in:\n{info}"));
    let v = line
        .split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    match v.strip_prefix("0x") {
        Some(h) => i64::from_str_radix(h, 16).unwrap(),
        None => v.parse().unwrap(),
    }
}

fn usage_matches(store: &StoreDir) {
    let theirs = info_013(store);
    let ours = store.info(fixtures::ACCOUNT);
    assert_eq!(
        field(&theirs, "Last object ID"),
        ours.last_object_id_used,
        "{theirs}"
    );
    assert_eq!(field(&theirs, "Used"), ours.blocks_used, "{theirs}");
    assert_eq!(
        field(&theirs, "Current files"),
        ours.blocks_in_current_files,
        "{theirs}"
    );
    assert_eq!(
        field(&theirs, "Old files"),
        ours.blocks_in_old_files,
        "{theirs}"
    );
    assert_eq!(
        field(&theirs, "Deleted files"),
        ours.blocks_in_deleted_files,
        "{theirs}"
    );
    assert_eq!(
        field(&theirs, "Directories"),
        ours.blocks_in_directories,
        "{theirs}"
    );
}

fn round(client: &mut bb013::Client013, tmp: &std::path::Path, n: u32) {
    client.backup_round();
    let (rc, out) = client.compare();
    assert_eq!(
        rc, 1,
        "round {n}: 0.13 compare -acQ found differences:\n{out}"
    );
    let dest = tmp.join(format!("restore-{n}"));
    client.restore("source", &dest);
    let d = tree::compare_trees(&client.source, &dest);
    assert!(
        d.is_empty(),
        "round {n}: restore differs:\n{}",
        d.join("\n")
    );
}

#[test]
fn client_013_backs_up_the_fixture_source_to_our_server() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = StoreDir::create(&tmp.path().join("store"), port, true);
    store.create_account(fixtures::ACCOUNT, 8192, 10240);
    let _server = OurServer::start(&store.conf);
    let src = tmp.path().join("source");
    let mut client = bb013::Client013::new(&tmp.path().join("client"), port, &src);
    for (n, step) in ["round1", "round2", "round3"].into_iter().enumerate() {
        fixtures::gen_source(step, &src);
        round(&mut client, tmp.path(), n as u32 + 1);
    }
    check_with_013(&store);
    usage_matches(&store);
}

#[test]
fn client_013_sends_diffs_of_changing_big_files_to_our_server() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = StoreDir::create(&tmp.path().join("store"), port, false);
    store.create_account(fixtures::ACCOUNT, 1 << 20, 1 << 21);
    let _server = OurServer::start(&store.conf);
    let mut src = tree::GenTree::create(&tmp.path().join("source"), 42, 12, 25, 6 << 20);
    let mut client = bb013::Client013::new(&tmp.path().join("client"), port, &src.root);
    for n in 1..=3 {
        if n > 1 {
            src.mutate();
        }
        client.backup_round();
        let log =
            std::fs::read_to_string(client.dir.join(format!("bbackupd-round{n}.log"))).unwrap();
        if n > 1 {
            let stats = log
                .lines()
                .rfind(|l| l.contains("File statistics"))
                .unwrap();
            assert!(
                !stats.contains("bytes already on server 0,"),
                "no diff sent in round {n}: {stats}"
            );
        }
        let (rc, out) = client.compare();
        assert_eq!(
            rc, 1,
            "round {n}: 0.13 compare -acQ found differences:\n{out}"
        );
        let dest = tmp.path().join(format!("restore-{n}"));
        client.restore("source", &dest);
        let d = tree::compare_trees(&src.root, &dest);
        assert!(
            d.is_empty(),
            "round {n}: restore differs:\n{}",
            d.join("\n")
        );
    }
    check_with_013(&store);
    usage_matches(&store);
}
