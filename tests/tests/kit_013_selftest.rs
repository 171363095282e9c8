//! The kit against the real 0.13 on both ends: a 0.13 client backs up a
//! generated tree to a 0.13 server (on a fresh account) in two rounds; compare
//! is clean and a restore is identical. This proves the harness that the
//! interop suites use with our own server in place of 0.13's.

use bb_tests::{bb013, free_port, tree};

#[test]
fn kit_backs_up_and_restores_with_013_on_both_ends() {
    let mut tmp = tempfile::tempdir().unwrap();
    if std::env::var_os("BB_KEEP").is_some() {
        eprintln!("work dir {}", tmp.path().display());
        tmp.disable_cleanup(true);
    }
    let port = free_port();
    // A fresh account on an empty single-disc store, made by 0.13's tools.
    let store = bb_tests::ours::StoreDir::create(&tmp.path().join("store"), port, false);
    let conf = store.conf;
    bb013::create_fixture_account(&conf, "100M", "120M");
    let _server = bb013::start_bbstored(&conf, port, &tmp.path().join("bbstored.log"));

    let mut src = tree::GenTree::create(&tmp.path().join("src"), 7, 4, 10, 3 << 20);
    let mut client = bb013::Client013::new(&tmp.path().join("client"), port, &src.root);
    for round in 1..=2 {
        if round > 1 {
            src.mutate();
        }
        client.backup_round();
        let (rc, out) = client.compare();
        assert_eq!(rc, 1, "round {round}: compare -acQ:\n{out}");
    }
    let dest = tmp.path().join("restored");
    client.restore("source", &dest);
    let d = tree::compare_trees(&src.root, &dest);
    assert!(d.is_empty(), "restore differs:\n{}", d.join("\n"));

    // The checks can fail: a changed byte is seen by both compare and the kit.
    let victim = &src.big_files[1];
    let mut data = std::fs::read(victim).unwrap();
    data[100] ^= 1;
    std::fs::write(victim, &data).unwrap();
    let (rc, out) = client.compare();
    assert_eq!(rc, 2, "compare after a change:\n{out}");
    assert_eq!(
        tree::compare_trees(&src.root, &dest).len(),
        2,
        "content and mtime"
    );
}
