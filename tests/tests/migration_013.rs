//! Issue 7, "Migration from 0.13": an installation set up the way a Debian
//! administrator sets up Box Backup 0.13, with 0.13's own tools only, switched
//! to our daemons on the very same files (no conversion step) and back again.
//!
//! The temp directory stands in for the machine: `etc/` for /etc/boxbackup,
//! `var/client` for /var/lib/bbackupd, `disc0..2` for the RAID discs, `ca/` for
//! the administrator's bbstored-certs CA. As root, the server side belongs to
//! the `bbstored` user exactly as Debian's boxbackup-server postinst leaves it
//! (discs' `backup` directories and `etc/bbstored` owned by it, mode 0700), and
//! bbstored.conf says `User = bbstored`: 0.13's bbstored and bbstoreaccounts
//! drop to that user themselves, and so do ours, started as root as Debian
//! starts 0.13's; every store file must still belong to that user afterwards.
//!
//! The only edits to what the 0.13 tools wrote are the ones a sandbox needs: a
//! free port on 127.0.0.1 and a PidFile outside /var/run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bb_tests::bb013::{self, Client013, Daemon};
use bb_tests::{free_port, is_root, ours, tree};

const ACCOUNT: &str = "1234567";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, feeding `input` on stdin; panics with its output on failure.
fn run(mut cmd: Command, input: &str, what: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        text(&out)
    );
    out
}

fn chown_r(path: &Path, user: &str) {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:{user}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "chown -R {user} {}", path.display());
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Replaces `from` (which must be there) by `to` in a config file.
fn edit(path: &Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(s.contains(from), "{} has no {from:?}:\n{s}", path.display());
    std::fs::write(path, s.replacen(from, to, 1)).unwrap();
}

/// The 0.13 installation in a temp directory.
struct Install {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    server_conf: PathBuf,
    client_conf: PathBuf,
    data_dir: PathBuf,
    source: PathBuf,
    port: u16,
    tree: tree::GenTree,
}

impl Install {
    fn new() -> Install {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        // The bbstored user must reach the discs and etc/bbstored below it.
        chmod(&root, 0o755);
        let user = if is_root() {
            let known = Command::new("getent")
                .args(["passwd", "bbstored"])
                .output()
                .unwrap();
            assert!(
                known.status.success(),
                "no bbstored user: apt-get install boxbackup-server creates it"
            );
            "bbstored".to_string()
        } else {
            let out = Command::new("id").arg("-un").output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let etc = root.join("etc");
        let discs: Vec<PathBuf> = (0..3).map(|i| root.join(format!("disc{i}"))).collect();
        for d in &discs {
            std::fs::create_dir_all(d).unwrap();
        }

        // raidfile-config, then the discs' backup directories as Debian's postinst
        // makes them.
        let mut cmd = bb013::command("raidfile-config");
        cmd.arg(&etc).arg("4096").args(&discs);
        run(cmd, "", "0.13 raidfile-config");
        for d in &discs {
            let b = d.join("backup");
            std::fs::create_dir_all(&b).unwrap();
            if is_root() {
                chown_r(&b, &user);
            }
            chmod(&b, 0o700);
        }

        // bbstored-config: server key and CSR, empty accounts file, bbstored.conf.
        let mut cmd = bb013::command("bbstored-config");
        cmd.arg(&etc).arg("localhost").arg(&user);
        run(cmd, "", "0.13 bbstored-config");
        let sdir = etc.join("bbstored");

        // The CA, and the server certificate signed by it.
        let ca = root.join("ca");
        let mut cmd = bb013::command("bbstored-certs");
        cmd.arg(&ca).arg("init");
        run(cmd, "", "0.13 bbstored-certs init");
        let mut cmd = bb013::command("bbstored-certs");
        cmd.arg(&ca)
            .arg("sign-server")
            .arg(sdir.join("localhost-csr.pem"));
        run(cmd, "yes\n", "0.13 bbstored-certs sign-server");
        std::fs::copy(
            ca.join("servers/localhost-cert.pem"),
            sdir.join("localhost-cert.pem"),
        )
        .unwrap();
        std::fs::copy(ca.join("roots/clientCA.pem"), sdir.join("clientCA.pem")).unwrap();
        if is_root() {
            // dpkg-statoverride bbstored bbstored 700 /etc/boxbackup/bbstored, and
            // the private key and accounts file chowned to it (postinst).
            chown_r(&sdir, &user);
        }
        chmod(&sdir, 0o700);

        // The source tree, then bbackupd-config: keys file, client key and CSR,
        // bbackupd.conf with one location.
        let source = root.join("source");
        let tree = tree::GenTree::create(&source, 0x13_0013, 8, 12, 1 << 20);
        // /var exists on a machine; bbackupd-config makes only the last level.
        std::fs::create_dir_all(root.join("var")).unwrap();
        let data_dir = root.join("var/client");
        let mut cmd = bb013::command("bbackupd-config");
        cmd.arg(&etc)
            .args(["snapshot", ACCOUNT, "127.0.0.1"])
            .arg(&data_dir)
            .arg(&source);
        run(cmd, "", "0.13 bbackupd-config");
        let cdir = etc.join("bbackupd");
        // bbstored-certs takes the account from the CSR's file name.
        let mut cmd = bb013::command("bbstored-certs");
        cmd.current_dir(&cdir)
            .arg(&ca)
            .arg("sign")
            .arg(format!("{ACCOUNT}-csr.pem"));
        run(cmd, "yes\n", "0.13 bbstored-certs sign");
        std::fs::copy(
            ca.join(format!("clients/{ACCOUNT}-cert.pem")),
            cdir.join(format!("{ACCOUNT}-cert.pem")),
        )
        .unwrap();
        std::fs::copy(ca.join("roots/serverCA.pem"), cdir.join("serverCA.pem")).unwrap();

        // The sandbox's edits: port and PidFile.
        let port = free_port();
        let server_conf = etc.join("bbstored.conf");
        let client_conf = etc.join("bbackupd.conf");
        edit(
            &server_conf,
            "ListenAddresses = inet:localhost",
            &format!("ListenAddresses = inet:127.0.0.1:{port}"),
        );
        let run_dir = root.join("run");
        std::fs::create_dir_all(&run_dir).unwrap();
        edit(
            &server_conf,
            "PidFile = /var/run/bbstored.pid",
            &format!("PidFile = {}", run_dir.join("bbstored.pid").display()),
        );
        edit(
            &client_conf,
            "StoreHostname = 127.0.0.1\n",
            &format!("StoreHostname = 127.0.0.1\nStorePort = {port}\n"),
        );

        // The account, by 0.13's bbstoreaccounts (which drops to User itself).
        let mut cmd = bb013::command("bbstoreaccounts");
        cmd.arg("-c")
            .arg(&server_conf)
            .args(["create", ACCOUNT, "0", "200M", "400M"]);
        run(cmd, "", "0.13 bbstoreaccounts create");

        Install {
            _tmp: tmp,
            root,
            server_conf,
            client_conf,
            data_dir,
            source,
            port,
            tree,
        }
    }

    fn log(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// As root: every file of the store and of etc/bbstored still belongs to the
    /// bbstored user, so that 0.13 (which drops to it) can go on writing them.
    fn owned_by_user(&self, when: &str) {
        if !is_root() {
            return;
        }
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata(self.root.join("disc0/backup"))
            .unwrap()
            .uid();
        assert_ne!(uid, 0);
        for top in [
            "disc0/backup",
            "disc1/backup",
            "disc2/backup",
            "etc/bbstored",
        ] {
            for (p, _) in tree::walk(&self.root.join(top)) {
                let md = std::fs::symlink_metadata(&p).unwrap();
                assert_eq!(
                    md.uid(),
                    uid,
                    "{} is not the bbstored user's {when}",
                    p.display()
                );
            }
        }
    }

    fn start_013_server(&self) -> Daemon {
        bb013::start_bbstored(&self.server_conf, self.port, &self.log("bbstored-013.log"))
    }

    fn start_our_server(&self) -> Daemon {
        let mut cmd = Command::new(ours::bin("bbstored"));
        cmd.arg("-F").arg(&self.server_conf);
        let mut d = Daemon::spawn(cmd, "bbstored (ours)", &self.log("bbstored-ours.log"));
        bb013::wait_for_port(self.port, &mut d);
        d
    }

    /// 0.13's `compare -acQ` must say "no differences" (exit 1).
    fn compare_013(&self, c: &Client013, when: &str) {
        let (code, out) = c.compare();
        assert_eq!(code, 1, "0.13 compare {when}:\n{out}");
    }

    /// Our `compare -acQ` must say "no differences" (exit 1, as 0.13).
    fn compare_ours(&self, when: &str) {
        let out = Command::new(ours::bin("bbackupquery"))
            .arg("-c")
            .arg(&self.client_conf)
            .args(["compare -acQ", "quit"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "our compare {when}:\n{}",
            text(&out)
        );
    }

    /// 0.13's `bbstoreaccounts check` (server stopped) finds no error.
    fn check_013(&self, when: &str) {
        let out = bb013::command("bbstoreaccounts")
            .arg("-c")
            .arg(&self.server_conf)
            .args(["check", ACCOUNT])
            .output()
            .unwrap();
        let t = text(&out);
        assert!(
            out.status.success() && t.contains("no errors found"),
            "0.13 bbstoreaccounts check {when}:\n{t}"
        );
    }

    /// Our `bbstoreaccounts check` (server stopped) finds no error.
    fn check_ours(&self, when: &str) {
        let mut cmd = Command::new(ours::bin("bbstoreaccounts"));
        cmd.arg("-c")
            .arg(&self.server_conf)
            .args(["check", ACCOUNT]);
        let out = cmd.output().unwrap();
        let t = text(&out);
        assert!(
            out.status.success() && t.contains("no errors found"),
            "our bbstoreaccounts check {when}:\n{t}"
        );
    }
}

/// Changes GenTree's mutation leaves out: a file renamed within its directory,
/// an xattr changed, one added, one removed, and a mode change on a directory.
fn more_changes(src: &Path, round: u32) {
    let files: Vec<PathBuf> = tree::walk(src)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.len() > 0)
                && p.parent()
                    .is_some_and(|d| d.ends_with(format!("sub{}", round % 3)))
        })
        .collect();
    assert!(files.len() >= 3, "too few files to change in {src:?}");
    let renamed = files[0].with_file_name(format!("renamed-in-round-{round}.txt"));
    std::fs::rename(&files[0], &renamed).unwrap();
    xattr::set(&files[1], "user.tag", format!("changed {round}").as_bytes()).unwrap();
    xattr::set(&files[2], "user.added", b"new attribute").unwrap();
    for p in &files[3..] {
        if xattr::get(p, "user.tag").ok().flatten().is_some() {
            xattr::remove(p, "user.tag").unwrap();
            break;
        }
    }
    let dir = files[1].parent().unwrap();
    chmod(dir, if round % 2 == 0 { 0o750 } else { 0o700 });
}

#[test]
fn installation_made_by_013_tools_switches_to_ours_and_back() {
    let t0 = Instant::now();
    let mut inst = Install::new();
    let mut client = Client013::from_conf(&inst.client_conf, &inst.data_dir, &inst.source);
    eprintln!("setup with the 0.13 tools: {:?}", t0.elapsed());

    // a. 0.13 backs up.
    let mut server = inst.start_013_server();
    client.backup_round();
    inst.compare_013(&client, "after 0.13's first backup");
    server.stop(Duration::from_secs(10));
    eprintln!("0.13 round: {:?}", t0.elapsed());

    // b. Ours, on the same files: the daemon driven by our bbackupctl, then
    // --once after more changes.
    let mut server = inst.start_our_server();
    inst.tree.mutate();
    more_changes(&inst.source, 1);
    let mut cmd = Command::new(ours::bin("bbackupd"));
    cmd.arg("-F").arg(&inst.client_conf);
    let mut daemon = Daemon::spawn(cmd, "bbackupd (ours)", &inst.log("bbackupd-ours.log"));
    let sock = inst.data_dir.join("bbackupd.sock");
    let t = Instant::now();
    // 0.13 left its socket file behind; ours replaces it once it listens.
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(daemon.is_running(), "our bbackupd:\n{}", daemon.log_text());
        assert!(t.elapsed() < Duration::from_secs(30), "no command socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Command::new(ours::bin("bbackupctl"))
        .arg("-q")
        .arg("-c")
        .arg(&inst.client_conf)
        .arg("sync-and-wait")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "our bbackupctl sync-and-wait: {}\n{}",
        text(&out),
        daemon.log_text()
    );
    daemon.stop(Duration::from_secs(30));
    inst.compare_013(&client, "after our daemon's backup");
    inst.compare_ours("after our daemon's backup");

    inst.tree.mutate();
    more_changes(&inst.source, 2);
    let out = Command::new(ours::bin("bbackupd"))
        .arg("--once")
        .arg(&inst.client_conf)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "bbackupd --once:\n{}",
        text(&out)
    );
    inst.compare_013(&client, "after our --once backup");
    inst.compare_ours("after our --once backup");
    server.stop(Duration::from_secs(10));
    inst.owned_by_user("after our daemons");
    inst.check_013("after our daemons");
    eprintln!("our rounds: {:?}", t0.elapsed());

    // c. Back to 0.13 on the same files.
    let mut server = inst.start_013_server();
    inst.tree.mutate();
    more_changes(&inst.source, 3);
    client.backup_round();
    inst.compare_013(&client, "after going back to 0.13");
    inst.compare_ours("after going back to 0.13");
    server.stop(Duration::from_secs(10));
    inst.check_ours("after going back to 0.13");
    inst.owned_by_user("after our check");
    inst.check_013("after going back to 0.13");
    eprintln!("back to 0.13: {:?}", t0.elapsed());
}
