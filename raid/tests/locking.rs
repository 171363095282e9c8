//! Exclusive write locks between processes (flock on `.rfwX`; Linux has no
//! O_EXLOCK). The test binary re-runs itself as the second process.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use bb_raid::{DiscSet, Overwrite, RaidRead, RaidWrite};

const CHILD_ENV: &str = "BB_RAID_LOCK_CHILD";

fn set_at(dir: &str) -> DiscSet {
    let d = std::path::Path::new(dir);
    DiscSet::raid(0, 2048, [d.join("disc0"), d.join("disc1"), d.join("disc2")]).unwrap()
}

/// The second process. Commands on stdin, one per line: `try` (create and report),
/// `hold` (create and keep), `commit <byte>` (write 100000 bytes and commit).
#[test]
fn lock_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let set = set_at(&dir);
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    let mut held: Option<RaidWrite> = None;
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let reply = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["try"] => match RaidWrite::create(&set, "f", Overwrite::Allow) {
                Ok(_) => "created".to_string(),
                Err(bb_raid::Error::Locked { .. }) => "locked".to_string(),
                Err(e) => format!("error {e}"),
            },
            ["hold", byte] => match RaidWrite::create(&set, "f", Overwrite::Allow) {
                Ok(mut w) => {
                    let b: u8 = byte.parse().unwrap();
                    w.write_bytes(&vec![b; 100_000]).unwrap();
                    held = Some(w);
                    "holding".to_string()
                }
                Err(bb_raid::Error::Locked { .. }) => "locked".to_string(),
                Err(e) => format!("error {e}"),
            },
            ["commit"] => {
                held.take().unwrap().commit(true).unwrap();
                "committed".to_string()
            }
            ["quit"] => break,
            other => format!("error unknown {other:?}"),
        };
        writeln!(out, "CHILD {reply}").unwrap();
        out.flush().unwrap();
    }
}

struct Child {
    p: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Child {
    fn spawn(dir: &str) -> Child {
        let mut p = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "lock_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(p.stdout.take().unwrap());
        Child { p, out }
    }
    fn ask(&mut self, cmd: &str) -> String {
        let stdin = self.p.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        loop {
            let mut line = String::new();
            assert!(self.out.read_line(&mut line).unwrap() > 0, "child died");
            // libtest prints "test lock_child ... " before the first reply.
            if let Some(i) = line.find("CHILD ") {
                return line[i + 6..].trim().to_string();
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(stdin) = self.p.stdin.as_mut() {
            let _ = writeln!(stdin, "quit");
        }
        let _ = self.p.wait();
    }
}

#[test]
fn two_processes_never_write_one_file_at_once() {
    let t = common::TempSet::raid(2048);
    let dir = t.path().to_str().unwrap().to_string();
    let set = set_at(&dir);
    let mut child = Child::spawn(&dir);

    // We hold the lock: the other process is refused.
    let mut w = RaidWrite::create(&set, "f", Overwrite::Allow).unwrap();
    w.write_bytes(&[1u8; 100_000]).unwrap();
    assert_eq!(child.ask("try"), "locked");
    w.commit(true).unwrap();
    // Released on commit: now it gets it, and we are refused while it holds it.
    assert_eq!(child.ask("hold 2"), "holding");
    assert!(matches!(
        RaidWrite::create(&set, "f", Overwrite::Allow),
        Err(bb_raid::Error::Locked { .. })
    ));
    // Readers are never blocked, and see the last committed version.
    assert_eq!(
        RaidRead::open(&set, "f").unwrap().read_all().unwrap(),
        vec![1u8; 100_000]
    );
    assert_eq!(child.ask("commit"), "committed");
    assert_eq!(
        RaidRead::open(&set, "f").unwrap().read_all().unwrap(),
        vec![2u8; 100_000]
    );
    // A writer that is dropped releases too.
    let w = RaidWrite::create(&set, "f", Overwrite::Allow).unwrap();
    assert_eq!(child.ask("try"), "locked");
    drop(w);
    assert_eq!(child.ask("try"), "created");
}

#[test]
fn same_process_two_writers_exclude_each_other() {
    let t = common::TempSet::raid(2048);
    let a = RaidWrite::create(&t.set, "g", Overwrite::Allow).unwrap();
    assert!(matches!(
        RaidWrite::create(&t.set, "g", Overwrite::Allow),
        Err(bb_raid::Error::Locked { .. })
    ));
    // Delete and rebuild wait for or skip a live writer rather than racing it.
    assert_eq!(
        bb_raid::rebuild(&t.set, "g").unwrap(),
        bb_raid::Rebuilt::Busy
    );
    assert_eq!(
        bb_raid::transform(&t.set, "g").unwrap(),
        bb_raid::Transformed::Busy
    );
    a.commit(true).unwrap();
    assert_eq!(
        bb_raid::rebuild(&t.set, "g").unwrap(),
        bb_raid::Rebuilt::Healthy
    );
}
