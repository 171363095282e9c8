//! A fault-injecting `Fs` for tests: wraps another `Fs` (normally `RealFs` over a
//! temporary directory) and fails chosen operations.
//!
//! Owns: the fault rules (EIO, ENOSPC, any errno, short writes), the crash model and
//! an operation log that tests read to check ordering (e.g. "the file was synced
//! before it was renamed into place").
//!
//! The crash model: `crash_after(n)` lets `n` operations through; the next one and
//! every later one fail with EIO and do nothing, as if the process had died at that
//! point. What is on disc then is exactly what the operations before the crash left,
//! which a test inspects by opening the same directories through `RealFs`. It does
//! not model the page cache losing unsynced data; the op log covers that side by
//! checking that every rename into a visible name was preceded by a sync.
//!
//! Public (not test-only) so that higher layers' crash tests can use it too.

use std::io::{self, IoSliceMut};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fs::{DirEntry, Fs, FsFile, Meta, OpenMode};

/// The kind of an operation, for rules and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Open,
    Read,
    Write,
    SetLen,
    Sync,
    Rename,
    Remove,
    CreateDir,
    Stat,
    ReadDir,
    SyncDir,
    Lock,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fail with this errno (e.g. `libc`'s EIO = 5, ENOSPC = 28).
    Errno(i32),
    /// A write writes only half of what it was given (at least one byte).
    ShortWrite,
}

/// EIO, as Linux numbers it.
pub const EIO: i32 = 5;
/// ENOSPC, as Linux numbers it.
pub const ENOSPC: i32 = 28;

/// Which paths a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Every path.
    Any,
    /// Paths whose text ends with this (e.g. one component file, `.../o01.rf`).
    EndsWith(String),
    /// Paths below this directory (e.g. one whole disc).
    Under(PathBuf),
}

impl PathMatch {
    fn matches(&self, p: &Path) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::EndsWith(s) => p.to_string_lossy().ends_with(s.as_str()),
            PathMatch::Under(d) => p.starts_with(d),
        }
    }
}

/// One fault rule: operations of kind `op` on matching paths pass `skip` times, then
/// fail `times` times (forever when `None`).
#[derive(Debug, Clone)]
pub struct Rule {
    pub op: Op,
    pub path: PathMatch,
    pub skip: u64,
    pub times: Option<u64>,
    pub fault: Fault,
}

impl Rule {
    /// Every `op` on a matching path fails with `fault`.
    pub fn always(op: Op, path: PathMatch, fault: Fault) -> Rule {
        Rule {
            op,
            path,
            skip: 0,
            times: None,
            fault,
        }
    }
}

/// One logged operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub op: Op,
    pub path: PathBuf,
    /// The second path of a rename.
    pub to: Option<PathBuf>,
    /// False when the operation was failed by a rule or the crash.
    pub ok: bool,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<(Rule, u64)>,
    crash_after: Option<u64>,
    count: u64,
    crashed: bool,
    log: Vec<Record>,
}

/// The fault-injecting filesystem. Clones share their rules and log.
#[derive(Debug, Clone)]
pub struct FaultFs {
    inner: Arc<dyn Fs>,
    state: Arc<Mutex<State>>,
}

impl FaultFs {
    pub fn new(inner: Arc<dyn Fs>) -> FaultFs {
        FaultFs {
            inner,
            state: Arc::default(),
        }
    }

    /// Over the host filesystem.
    pub fn real() -> FaultFs {
        FaultFs::new(crate::fs::RealFs::shared())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock cannot leave the log in a state
        // worse than "partly written"; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add_rule(&self, rule: Rule) {
        self.lock().rules.push((rule, 0));
    }

    pub fn clear_rules(&self) {
        self.lock().rules.clear();
    }

    /// Let `n` more operations through, then crash.
    pub fn crash_after(&self, n: u64) {
        let mut s = self.lock();
        s.crash_after = Some(s.count + n);
    }

    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Operations seen so far (including failed ones).
    pub fn op_count(&self) -> u64 {
        self.lock().count
    }

    pub fn log(&self) -> Vec<Record> {
        self.lock().log.clone()
    }

    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// Decides the fate of one operation and logs it.
    fn check(&self, op: Op, path: &Path, to: Option<&Path>) -> Result<Option<Fault>, io::Error> {
        let mut s = self.lock();
        s.count += 1;
        if let Some(limit) = s.crash_after {
            if s.count > limit {
                s.crashed = true;
            }
        }
        let mut verdict = Ok(None);
        if s.crashed {
            verdict = Err(io::Error::from_raw_os_error(EIO));
        } else {
            for (rule, seen) in s.rules.iter_mut() {
                if rule.op != op || !rule.path.matches(path) {
                    continue;
                }
                *seen += 1;
                if *seen <= rule.skip {
                    continue;
                }
                if rule.times.is_some_and(|t| *seen > rule.skip + t) {
                    continue;
                }
                verdict = match rule.fault {
                    Fault::Errno(e) => Err(io::Error::from_raw_os_error(e)),
                    Fault::ShortWrite => Ok(Some(Fault::ShortWrite)),
                };
                break;
            }
        }
        let ok = matches!(verdict, Ok(None));
        s.log.push(Record {
            op,
            path: path.to_path_buf(),
            to: to.map(Path::to_path_buf),
            ok,
        });
        verdict
    }

    fn gate(&self, op: Op, path: &Path) -> io::Result<()> {
        self.check(op, path, None).map(|_| ())
    }
}

impl Fs for FaultFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        self.gate(Op::Open, path)?;
        let inner = self.inner.open(path, mode)?;
        Ok(Box::new(FaultFile {
            fs: self.clone(),
            inner,
            path: path.to_path_buf(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Op::Rename, from, Some(to))?;
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.gate(Op::Remove, path)?;
        self.inner.remove_file(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.gate(Op::CreateDir, path)?;
        self.inner.create_dir(path)
    }
    fn stat(&self, path: &Path) -> io::Result<Meta> {
        self.gate(Op::Stat, path)?;
        self.inner.stat(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        self.gate(Op::ReadDir, path)?;
        self.inner.read_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.gate(Op::SyncDir, path)?;
        self.inner.sync_dir(path)
    }
}

/// A file opened through `FaultFs`.
#[derive(Debug)]
pub struct FaultFile {
    fs: FaultFs,
    inner: Box<dyn FsFile>,
    path: PathBuf,
}

impl FsFile for FaultFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.fs.gate(Op::Read, &self.path)?;
        self.inner.read_at(buf, offset)
    }
    fn read_vectored_at(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> io::Result<usize> {
        self.fs.gate(Op::Read, &self.path)?;
        self.inner.read_vectored_at(bufs, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        match self.fs.check(Op::Write, &self.path, None)? {
            Some(Fault::ShortWrite) if buf.len() > 1 => {
                self.inner.write_at(&buf[..buf.len() / 2], offset)
            }
            _ => self.inner.write_at(buf, offset),
        }
    }
    fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        self.fs.gate(Op::Read, &self.path)?;
        self.inner.next_data(offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.gate(Op::SetLen, &self.path)?;
        self.inner.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.fs.gate(Op::Sync, &self.path)?;
        self.inner.sync()
    }
    fn stat(&self) -> io::Result<Meta> {
        self.fs.gate(Op::Stat, &self.path)?;
        self.inner.stat()
    }
    fn try_lock(&self) -> io::Result<bool> {
        self.fs.gate(Op::Lock, &self.path)?;
        self.inner.try_lock()
    }
    fn lock(&self) -> io::Result<()> {
        self.fs.gate(Op::Lock, &self.path)?;
        self.inner.lock()
    }
}
