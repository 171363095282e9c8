//! Our bbstored serves the stores that the real 0.13 wrote (single disc and
//! RAID) to the real 0.13 bbackupquery: the listing is the one 0.13's own
//! server gave, `compare -acQ` against the source is clean, and every file
//! object — current, old and deleted versions — comes back with `get -i` with
//! the MD5 that 0.13 recorded.

use std::collections::BTreeMap;
use std::path::Path;

use bb_tests::ours::OurServer;
use bb_tests::{bb013, fixtures, free_port};

/// (id, md5 or symlink text) for every file object, from versions.txt.
fn versions(layout: &str) -> BTreeMap<u64, String> {
    let text =
        std::fs::read_to_string(fixtures::pack().join(format!("expected/{layout}/versions.txt")))
            .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (u64::from_str_radix(f[0], 16).unwrap(), f[3].to_string())
        })
        .collect()
}

fn md5_hex(data: &[u8]) -> String {
    bb_format::crypto::md5(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn serve_fixture(layout: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = fixtures::unpack_store(layout, tmp.path(), port);
    fixtures::untar(&fixtures::pack().join("source.tar.gz"), tmp.path());
    let src = tmp.path().join("source");
    let _server = OurServer::start(&store.join("bbstored.conf"));
    let client = bb013::Client013::new(&tmp.path().join("client"), port, &src);

    // The listing 0.13's own server gave for this store.
    let out = bb013::command("bbackupquery")
        .args(["-q", "-c"])
        .arg(&client.conf)
        .args(["ls -R -o -d -T -s", "quit"])
        .output()
        .unwrap();
    let expected =
        std::fs::read(fixtures::pack().join(format!("expected/{layout}/ls.txt"))).unwrap();
    assert!(
        out.stdout == expected,
        "{layout}: ls differs:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );

    if bb_tests::is_root() {
        let (rc, text) = client.compare();
        assert_eq!(rc, 1, "{layout}: compare -acQ:\n{text}");
    }

    // Every file object with get -i, through directories deleted or not.
    let got = tmp.path().join("got");
    std::fs::create_dir_all(&got).unwrap();
    let cmds = std::process::Command::new("python3")
        .arg(fixtures::pack().join("pack-tools.py"))
        .arg("getcmds")
        .arg(fixtures::pack().join(format!("expected/{layout}/ls.txt")))
        .arg(&got)
        .output()
        .unwrap();
    assert!(cmds.status.success());
    // Names may not be UTF-8: pass the commands as raw bytes.
    let cmds: Vec<std::ffi::OsString> = cmds
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(l).to_os_string())
        .collect();
    let out = client.query_os(&cmds);
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !log.contains("ERROR") && !log.contains("not found"),
        "{layout}: get -i:\n{log}"
    );
    let want = versions(layout);
    assert!(want.len() > 270);
    for (id, expect) in &want {
        let p = got.join(format!("{id:08x}"));
        let md = std::fs::symlink_metadata(&p)
            .unwrap_or_else(|e| panic!("{layout}: object {id:x} not fetched: {e}"));
        let have = if md.file_type().is_symlink() {
            format!("->{}", std::fs::read_link(&p).unwrap().display())
        } else {
            format!("md5={}", md5_hex(&std::fs::read(&p).unwrap()))
        };
        if expect.starts_with("md5=") || expect.starts_with("->") {
            assert_eq!(&have, expect, "{layout}: object {id:x}");
        }
    }
    check_fetched(&got, want.len());
}

fn check_fetched(dir: &Path, n: usize) {
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), n);
}

#[test]
fn our_server_serves_the_013_single_disc_store() {
    serve_fixture("single");
}

#[test]
fn our_server_serves_the_013_raid_store() {
    serve_fixture("raid3");
}
