//! The README's quick start (`scripts/quickstart.sh`), end to end, as a new
//! user runs it, in a fresh working directory: the first run sets everything
//! up and backs up the built-in sample (compare clean, the restore identical);
//! after one file changes the second run uploads only that file; `stop` leaves
//! no bbstored behind and `clean` removes the directory. The script builds and
//! runs the debug binaries (BB_QUICKSTART_PROFILE=debug) so that the suite does
//! not wait for a release build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bb_tests::mount::{diff_r, fuse_available, is_mounted};
use bb_tests::tree::compare_trees;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/quickstart.sh")
}

/// Runs the script in `cwd` with the environment a user's shell has: cargo's
/// test-run variables (LD_LIBRARY_PATH and friends) would make the script's
/// `cargo build` start from scratch.
fn quickstart(cwd: &Path, args: &[&str]) -> Output {
    quickstart_env(cwd, args, &[])
}

fn quickstart_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).args(args).current_dir(cwd).env_clear();
    for k in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "CARGO_TARGET_DIR",
        "TMPDIR",
    ] {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("BB_QUICKSTART_PROFILE", "debug");
    cmd.envs(env.iter().copied());
    cmd.output().expect("run scripts/quickstart.sh")
}

/// `diff -r` of the sample against the location in the quick start's mount.
fn mounted_diff(qs: &Path, sample: &Path) -> String {
    let mnt = qs.join("mnt");
    assert!(
        is_mounted(&mnt),
        "the store is not mounted on {}",
        mnt.display()
    );
    let locs: Vec<_> = std::fs::read_dir(mnt.join("current"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(locs.len(), 1, "{locs:?}");
    diff_r(sample, &locs[0])
}

fn text(o: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn bbstored_pid(qs: &Path) -> Option<u32> {
    std::fs::read_to_string(qs.join("bbstored.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is a live bbstored (not a zombie, not a reused pid).
fn is_bbstored(pid: u32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    comm.trim() == "bbstored" && !state.starts_with('Z')
}

/// Stops what the script started even when an assertion fails half-way.
struct Stop<'a>(&'a Path);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        if self.0.join("bb-quickstart").exists() {
            let _ = quickstart(self.0, &["stop"]);
        }
    }
}

/// The one `restore-*` directory that `before` did not list.
fn new_restore(qs: &Path, before: &[PathBuf]) -> PathBuf {
    let now = restores(qs);
    let fresh: Vec<_> = now.iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(fresh.len(), 1, "one new restore directory: {now:?}");
    fresh[0].clone()
}

fn restores(qs: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(qs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("restore-"))
        })
        .collect();
    v.sort();
    v
}

/// The numbers on bbackupd's statistics line: (files uploaded, dirs created, deleted).
fn statistics(stdout: &str) -> (u64, u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.contains("File statistics:"))
        .unwrap_or_else(|| panic!("no statistics line in\n{stdout}"));
    let num = |what: &str| -> u64 {
        let before = line.split(what).next().unwrap();
        before
            .rsplit(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        num(" files uploaded"),
        num(" dirs created"),
        num(" deleted"),
    )
}

#[test]
fn quick_start_backs_up_compares_restores_and_stops() {
    let cwd = tempfile::tempdir().unwrap();
    let cwd = cwd.path();
    let _stop = Stop(cwd);
    let qs = cwd.join("bb-quickstart");
    let sample = qs.join("sample");

    // First run: set-up, full backup of the sample.
    let o = quickstart(cwd, &[]);
    let out = text(&o);
    assert!(o.status.success(), "first run\n{out}");
    assert!(out.contains("no differences"), "{out}");
    assert!(out.contains("    identical"), "{out}");
    assert!(qs.join(".set-up").exists());
    let (files, dirs, _) = statistics(&out);
    assert_eq!((files, dirs), (8, 2), "the sample's files and dirs\n{out}");
    let first = new_restore(&qs, &[]);
    let diffs = compare_trees(&sample, &first);
    assert!(diffs.is_empty(), "restore differs: {diffs:#?}");
    let pid = bbstored_pid(&qs).expect("bbstored.pid");
    assert!(is_bbstored(pid), "bbstored runs after the quick start");
    let fuse = fuse_available("quick_start");
    if fuse {
        assert_eq!(mounted_diff(&qs, &sample), "", "the mounted backup\n{out}");
    }

    // Second run after one change: the same store and server, one upload.
    let before = restores(&qs);
    let letter = sample.join("docs/letter.txt");
    let mut body = std::fs::read(&letter).unwrap();
    body.extend_from_slice(b"a third line, added before the second run\n");
    std::fs::write(&letter, &body).unwrap();
    let o = quickstart(cwd, &[]);
    let out = text(&o);
    assert!(o.status.success(), "second run\n{out}");
    assert!(!out.contains("Setting up"), "set up only once\n{out}");
    assert!(out.contains("bbstored is running"), "{out}");
    assert_eq!(statistics(&out), (1, 0, 0), "only the changed file\n{out}");
    assert!(out.contains("no differences"), "{out}");
    let second = new_restore(&qs, &before);
    let diffs = compare_trees(&sample, &second);
    assert!(diffs.is_empty(), "restore differs: {diffs:#?}");
    assert_eq!(std::fs::read(second.join("docs/letter.txt")).unwrap(), body);
    assert_eq!(bbstored_pid(&qs), Some(pid), "the same bbstored");
    if fuse {
        assert_eq!(mounted_diff(&qs, &sample), "", "mounted again\n{out}");
    }

    // stop: the server is gone, by its pid; the view is unmounted and its
    // process gone.
    let o = quickstart(cwd, &["stop"]);
    assert!(o.status.success(), "stop\n{}", text(&o));
    assert!(!is_bbstored(pid), "bbstored {pid} still runs after stop");
    assert!(!qs.join("bbstored.pid").exists());
    assert!(!is_mounted(&qs.join("mnt")), "still mounted after stop");
    let left = std::process::Command::new("pgrep")
        .args(["-f", &format!("bbackupfs .*{}", qs.join("mnt").display())])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "bbackupfs left running: {left:?}");

    // clean: nothing left.
    let o = quickstart(cwd, &["clean"]);
    assert!(o.status.success(), "clean\n{}", text(&o));
    assert!(!qs.exists());
}

#[test]
fn a_failing_step_is_named_with_its_log() {
    let cwd = tempfile::tempdir().unwrap();
    let cwd = cwd.path();
    let _stop = Stop(cwd);
    let o = quickstart(cwd, &["/nonexistent/quickstart-source"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is not a directory"), "{}", text(&o));

    // bbstored cannot listen on a port that is taken: the run stops at that
    // step, names its log, and leaves no server behind.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let o = quickstart_env(cwd, &[], &[("BB_QUICKSTART_PORT", &port)]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAILED at step \"start bbstored\"") && out.contains("logs/bbstored.log"),
        "{out}"
    );
    let qs = cwd.join("bb-quickstart");
    assert!(bbstored_pid(&qs).is_none_or(|p| !is_bbstored(p)), "{out}");
}
