//! Our bbackupquery against the real 0.13 bbstored serving the fixture store
//! (what the real 0.13 bbackupd uploaded), side by side with the real 0.13
//! bbackupquery on the same store: listings in every flag combination,
//! `cd`/`pwd`, `usage`, `help`, error messages and exit codes must be the
//! same bytes; `get -i` of every file version gives the MD5 the fixture
//! recorded; `getobject` the same bytes as 0.13's; `delete`/`undelete` (with
//! `-w`) change the store as the real client then sees it.
//!
//! Lines that differ on purpose are left out of the comparison: the banner
//! (version) and 0.13's debugging noise ("Exception thrown", "Network
//! operation started with no timeout").

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bb_tests::bb013::{self, Client013, Daemon};
use bb_tests::{fixtures, free_port};

const OURS: &str = env!("CARGO_BIN_EXE_bbackupquery-rs");

struct Env {
    tmp: tempfile::TempDir,
    _server: Daemon,
    conf: PathBuf,
}

fn start() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = fixtures::unpack_store("single", tmp.path(), port);
    let server = bb013::start_bbstored(
        &store.join("bbstored.conf"),
        port,
        &tmp.path().join("bbstored.log"),
    );
    let client = Client013::new(&tmp.path().join("client"), port, &tmp.path().join("source"));
    Env {
        conf: client.conf.clone(),
        tmp,
        _server: server,
    }
}

fn os(a: &[u8]) -> std::ffi::OsString {
    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(a).to_os_string()
}

impl Env {
    /// A fresh empty directory to run a client in.
    fn dir(&self, name: &str) -> PathBuf {
        let d = self.tmp.path().join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn run(&self, mut cmd: Command, cwd: &Path, opts: &[&str], commands: &[&[u8]]) -> Output {
        cmd.current_dir(cwd)
            .arg("-c")
            .arg(&self.conf)
            .args(opts)
            .args(commands.iter().map(|c| os(c)))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ours(&self, cwd: &Path, opts: &[&str], commands: &[&[u8]]) -> Output {
        self.run(Command::new(OURS), cwd, opts, commands)
    }

    fn real(&self, cwd: &Path, opts: &[&str], commands: &[&[u8]]) -> Output {
        self.run(bb013::command("bbackupquery"), cwd, opts, commands)
    }

    /// Runs both in fresh directories; stdout (less banner and noise) and
    /// exit codes must be equal. Returns our output.
    fn same(&self, opts: &[&str], commands: &[&[u8]]) -> Vec<u8> {
        let o = self.ours(&self.dir("ours"), opts, commands);
        let r = self.real(&self.dir("real"), opts, commands);
        let (os_, rs) = (filtered(&o.stdout), filtered(&r.stdout));
        if os_ != rs {
            let (ol, rl) = (lines(&os_), lines(&rs));
            let at = ol
                .iter()
                .zip(&rl)
                .position(|(a, b)| a != b)
                .unwrap_or(ol.len().min(rl.len()));
            panic!(
                "{opts:?} {}: output differs at line {at}:\n ours: {:?}\n 0.13: {:?}\n(ours {} lines, 0.13 {} lines)",
                show(commands),
                ol.get(at).map(|l| String::from_utf8_lossy(l)),
                rl.get(at).map(|l| String::from_utf8_lossy(l)),
                ol.len(),
                rl.len()
            );
        }
        assert_eq!(
            o.status.code(),
            r.status.code(),
            "{opts:?} {}: exit codes differ; output:\n{}",
            show(commands),
            String::from_utf8_lossy(&os_)
        );
        assert!(
            o.stderr.is_empty(),
            "ours wrote to stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        os_
    }
}

fn show(commands: &[&[u8]]) -> String {
    commands
        .iter()
        .map(|c| format!("{:?}", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn lines(b: &[u8]) -> Vec<&[u8]> {
    b.split(|&c| c == b'\n').collect()
}

fn filtered(out: &[u8]) -> Vec<u8> {
    const DROP: &[&[u8]] = &[
        b"NOTICE:  Box Backup Backup Query Tool",
        b"(c) Ben Summers",
        b"WARNING: Exception thrown",
        b"WARNING: Network operation started with no timeout",
        b"TRACE:",
    ];
    let mut r = Vec::new();
    for l in out.split_inclusive(|&c| c == b'\n') {
        if !DROP.iter().any(|d| l.starts_with(d)) {
            r.extend_from_slice(l);
        }
    }
    r
}

#[test]
fn listings_help_usage_and_messages_are_013s() {
    let env = start();

    // The fixture's own record of `ls -R -o -d -T -s` from 0.13's server.
    let o = env.ours(&env.dir("ours"), &["-q"], &[b"ls -R -o -d -T -s", b"quit"]);
    let expected = std::fs::read(fixtures::pack().join("expected/single/ls.txt")).unwrap();
    assert!(
        o.stdout == expected,
        "ls -R -o -d -T -s:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // Every listing option, in groups (one process per group).
    for filter in ["", "o", "d", "od"] {
        let mut cmds: Vec<Vec<u8>> = Vec::new();
        // Not "Sr": 0.13's reversed sort says "less" both ways for equal
        // keys, and std::sort runs off the array when many are equal (0.13
        // dies of SIGSEGV in source/many/, 240 files of 1 block); see below.
        for sort in ["", "i", "S", "U", "D", "r", "ir", "Dr", "iD", "SD"] {
            for show in ["R", "RIF", "RTs", "Rth", "RTa", "Tt", "ah"] {
                let letters = format!("{filter}{sort}{show}");
                cmds.push(format!("ls -{letters}").into_bytes());
                cmds.push(format!("list -{letters} /source").into_bytes());
            }
        }
        cmds.push(b"quit".to_vec());
        let c: Vec<&[u8]> = cmds.iter().map(|c| c.as_slice()).collect();
        let out = env.same(&["-q"], &c);
        assert!(
            out.len() > 10_000,
            "suspiciously short listing for -{filter}"
        );
    }

    // Where 0.13 crashes, we still list, by size, largest first, directories
    // first.
    let o = env.ours(&env.dir("ours"), &["-q"], &[b"ls -SrRs source", b"quit"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let many: Vec<(bool, i64)> = text
        .lines()
        .filter(|l| l.contains(" many/"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1].starts_with("-d"), f[2].parse().unwrap())
        })
        .collect();
    assert_eq!(many.len(), 240);
    let top: Vec<(bool, i64)> = text
        .lines()
        .filter(|l| !l.contains('/') && l.split_whitespace().count() >= 4)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1].starts_with("-d"), f[2].parse().unwrap())
        })
        .collect();
    assert!(
        top.windows(2)
            .all(|w| (w[0].0 && !w[1].0) || (w[0].0 == w[1].0 && w[0].1 >= w[1].1)),
        "{text}"
    );

    // Paths: relative, absolute, "..", ".", quoted names with spaces, deleted
    // directories with -d, options after the argument.
    env.same(
        &[],
        &[
            b"pwd",
            b"cd source",
            b"pwd",
            b"cd a/b",
            b"pwd",
            b"cd ../..",
            b"pwd",
            b"cd ./a/./b/c",
            b"pwd",
            b"cd /",
            b"pwd",
            b"cd ..",
            b"pwd",
            b"cd -d source/dir-to-delete",
            b"pwd",
            b"ls",
            b"cd sub",
            b"ls -s",
            b"pwd",
            b"cd /source/names",
            b"ls -T",
            b"ls ../a -R",
            b"ls \"../a\" -i",
            b"quit",
        ],
    );
    env.same(&["-q"], &[b"usage", b"usage -m", b"quit"]);
    env.same(&["-q"], &[b"help", b"quit"]);
    for topic in [
        "bbackupquery",
        "ls",
        "list",
        "cd",
        "pwd",
        "lcd",
        "sh",
        "get",
        "restore",
        "getobject",
        "usage",
        "undelete",
        "delete",
        "quit",
        "exit",
        "help",
        "nonesuch",
    ] {
        env.same(&["-q"], &[format!("help {topic}").as_bytes(), b"quit"]);
    }
    // `help compare` is 0.13's with our default mode and `-f` explained:
    // every other line as 0.13 has it.
    let o = env.ours(&env.dir("ours"), &["-q"], &[b"help compare", b"quit"]);
    let r = env.real(&env.dir("real"), &["-q"], &[b"help compare", b"quit"]);
    let (ours_help, real_help) = (
        String::from_utf8_lossy(&filtered(&o.stdout)).into_owned(),
        String::from_utf8_lossy(&filtered(&r.stdout)).into_owned(),
    );
    assert!(
        ours_help.contains("    -f -- full compare. Downloads every file"),
        "{ours_help}"
    );
    let changed = [
        "All the data will be downloaded",
        "operation.",
        "doesn't do a full download",
    ];
    for line in real_help.lines() {
        if !changed.iter().any(|c| line.contains(c)) {
            assert!(
                ours_help.lines().any(|l| l == line),
                "help compare lacks 0.13's line {line:?}:\n{ours_help}"
            );
        }
    }

    // Errors: message and exit code (each in its own process: the exit code
    // is that of the last command).
    let cases: &[&[&[u8]]] = &[
        &[b"ls nosuch"],
        &[b"ls -d source/nosuch"],
        &[b"ls source/dir-to-delete"],
        &[b"ls -x"],
        &[b"frob"],
        &[b"pwd", b"-R ls"],
        &[b"cd"],
        &[b"cd a b"],
        &[b"cd nosuch"],
        &[b"cd source/dir-to-delete"],
        &[b"cd -x source"],
        &[b"cd source", b"ls -l"],
        &[b"ls nosuch", b"pwd"],
        &[b"ls nosuch", b"help"],
        &[b"ls nosuch", b"frob"],
        &[b"cd source", b"get nosuch.txt"],
        &[b"cd source", b"get"],
        &[b"cd source", b"get -i 4"],
        &[b"cd source", b"get -i zz q"],
        &[b"cd source", b"get -i 119 q"],
        &[b"cd source", b"get a"],
        &[b"cd source", b"get nosuch/x"],
        &[b"getobject 4"],
        &[b"getobject zz f"],
        &[b"getobject 99999 f"],
        &[b"undelete x"],
        &[b"delete x"],
        &[b"lcd"],
        &[b"lcd /nonexistent-dir"],
        &[b"sh"],
        &[b"compare a b"],
        &[b"compare"],
        &[b"compare -l nosuch"],
        &[b"restore"],
        &[b"restore /"],
        &[b"restore nosuch x"],
        &[b"restore -i zz x"],
        &[b"usage -x"],
        &[b"quit", b"ls nosuch"],
        &[b"exit"],
    ];
    for case in cases {
        let mut c: Vec<&[u8]> = case.to_vec();
        c.push(b"quit");
        env.same(&["-q"], &c);
    }
    // Without quit: the rest comes from standard input (here: none).
    env.same(&["-q"], &[b"ls source/a"]);
    env.same(&["-q"], &[b"ls nosuch"]);
    // Log levels.
    env.same(&["-v"], &[b"cd source", b"lcd /tmp", b"pwd", b"quit"]);
    env.same(&["-W", "error"], &[b"pwd", b"ls nosuch", b"quit"]);
    env.same(&["-Q"], &[b"ls nosuch", b"ls", b"quit"]);
}

/// (id, md5 or symlink text) for every file object, from versions.txt.
fn versions() -> Vec<(u64, String)> {
    let text =
        std::fs::read_to_string(fixtures::pack().join("expected/single/versions.txt")).unwrap();
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

#[test]
fn get_fetches_every_version_and_getobject_the_stored_bytes() {
    let env = start();
    let got = env.dir("got");
    let cmds = Command::new("python3")
        .arg(fixtures::pack().join("pack-tools.py"))
        .arg("getcmds")
        .arg(fixtures::pack().join("expected/single/ls.txt"))
        .arg(&got)
        .output()
        .unwrap();
    assert!(cmds.status.success());
    let mut cmds: Vec<&[u8]> = cmds
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    cmds.push(b"quit");
    let out = env.ours(&env.dir("ours"), &["-q"], &cmds);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.is_empty(),
        "get -i:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let want = versions();
    assert!(want.len() > 270);
    for (id, expect) in &want {
        let p = got.join(format!("{id:08x}"));
        let md = std::fs::symlink_metadata(&p)
            .unwrap_or_else(|e| panic!("object {id:x} not fetched: {e}"));
        let have = if md.file_type().is_symlink() {
            format!("->{}", std::fs::read_link(&p).unwrap().display())
        } else {
            format!("md5={}", md5_hex(&std::fs::read(&p).unwrap()))
        };
        if expect.starts_with("md5=") || expect.starts_with("->") {
            assert_eq!(&have, expect, "object {id:x}");
        }
    }
    assert_eq!(std::fs::read_dir(&got).unwrap().count(), want.len());

    // get by name (current version), with a path, to a given name; the
    // local file must not exist.
    let d = env.dir("byname");
    let o = env.ours(
        &d,
        &["-q"],
        &[
            b"cd source",
            b"get big-5MiB.txt",
            b"get a/b/c/c.txt cc",
            b"get \"names/with space.txt\"",
            b"quit",
        ],
    );
    assert!(o.status.success() && o.stdout.is_empty(), "{o:?}");
    let big = want.iter().find(|(id, _)| *id == 0x123).unwrap();
    assert_eq!(
        format!(
            "md5={}",
            md5_hex(&std::fs::read(d.join("big-5MiB.txt")).unwrap())
        ),
        big.1
    );
    assert_eq!(std::fs::read(d.join("cc")).unwrap().len(), 8);
    assert!(d.join("with space.txt").exists());
    let o = env.ours(&d, &["-q"], &[b"cd source", b"get big-5MiB.txt", b"quit"]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(
        o.stdout,
        b"ERROR:   The local file big-5MiB.txt already exists, will not overwrite it.\n"
    );

    // getobject: the stored object, byte for byte what 0.13 fetches.
    let (dour, dreal) = (env.dir("go-ours"), env.dir("go-real"));
    let cmds: &[&[u8]] = &[
        b"getobject 2 dir",
        b"getobject 5 patch",
        b"getobject 123 file",
        b"quit",
    ];
    let o = env.ours(&dour, &["-q"], cmds);
    let r = env.real(&dreal, &["-q"], cmds);
    assert_eq!(o.status.code(), r.status.code());
    for f in ["dir", "patch", "file"] {
        let a = std::fs::read(dour.join(f)).unwrap();
        assert!(!a.is_empty());
        assert!(
            a == std::fs::read(dreal.join(f)).unwrap(),
            "getobject {f} differs"
        );
    }
}

#[test]
fn delete_and_undelete_need_w_and_change_the_store() {
    let env = start();
    let d = env.dir("w");
    let listing = |path: &[u8]| {
        let mut c = b"ls -od ".to_vec();
        c.extend_from_slice(path);
        let r = env.real(&d, &["-q"], &[&c, b"quit"]);
        String::from_utf8_lossy(&r.stdout).into_owned()
    };
    // Read-only: refused, nothing changes.
    let o = env.ours(&d, &["-q"], &[b"cd source", b"delete text.txt", b"quit"]);
    assert_eq!(o.stdout, b"ERROR:   This command requires a read-write connection. Please reconnect with the -w option.\n");
    assert!(listing(b"source").contains("00000121 f----- text.txt"));

    let o = env.ours(
        &d,
        &["-q", "-w"],
        &[
            b"cd source",
            b"delete text.txt",
            b"delete a",
            b"delete -i 3",
            b"quit",
        ],
    );
    assert!(
        o.status.success() && o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let l = listing(b"source");
    assert!(l.contains("00000121 f-X--- text.txt"), "{l}");
    assert!(l.contains("00000118 -dX--- a"), "{l}");
    assert!(l.contains("00000003 f-X--- .hidden"), "{l}");
    assert!(listing(b"source/a").contains("00000119 f-X--- a.txt"));

    let o = env.ours(
        &d,
        &["-q", "-w"],
        &[
            b"cd source",
            b"undelete -i 121",
            b"undelete a",
            b"undelete -i 3",
            b"quit",
        ],
    );
    assert!(
        o.status.success() && o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let l = listing(b"source");
    assert!(l.contains("00000121 f----- text.txt"), "{l}");
    assert!(l.contains("00000118 -d---- a"), "{l}");
    assert!(l.contains("00000003 f----- .hidden"), "{l}");
    assert!(listing(b"source/a").contains("00000119 f----- a.txt"));

    // Same messages as 0.13 for what cannot be found.
    env.same(
        &["-q", "-w"],
        &[
            b"cd source",
            b"delete nosuch",
            b"undelete -i 4444",
            b"delete",
            b"undelete",
            b"quit",
        ],
    );
}

#[test]
fn exit_codes_of_the_program_are_013s() {
    let env = start();
    let d = env.dir("x");
    let code = |o: Output| o.status.code();
    // Options.
    for opts in [&["-h"][..], &["-qqqqq"], &["-W", "bogus"], &["-O", "bogus"]] {
        let o = env.ours(&d, opts, &[b"quit"]);
        let r = env.real(&d, opts, &[b"quit"]);
        assert_eq!(code(o), code(r), "{opts:?}");
    }
    // Configuration and connection.
    let bad = |name: &str, text: &str| {
        let p = env.tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let conf = std::fs::read_to_string(&env.conf).unwrap();
    let closed = free_port();
    let refused = bad(
        "refused.conf",
        &conf
            .lines()
            .map(|l| {
                if l.starts_with("StorePort") {
                    format!("StorePort = {closed}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let junk = bad("junk.conf", "junk\n");
    for conf in [
        refused.as_path(),
        junk.as_path(),
        Path::new("/nonexistent/bbackupd.conf"),
    ] {
        let run = |mut c: Command| {
            c.current_dir(&d)
                .arg("-q")
                .arg("-c")
                .arg(conf)
                .arg("quit")
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        let o = run(Command::new(OURS));
        let r = run(bb013::command("bbackupquery"));
        assert_eq!(code(o), code(r), "{}", conf.display());
    }
    // Standard input without quit: the commands run, then the end of input.
    let piped = |mut c: Command| {
        use std::io::Write;
        let mut child = c
            .current_dir(&d)
            .arg("-q")
            .arg("-c")
            .arg(&env.conf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"ls source/a\ncd source\n\nls nosuch\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let o = piped(Command::new(OURS));
    let r = piped(bb013::command("bbackupquery"));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&r.stdout)
    );
    assert_eq!(code(o), code(r));
}
