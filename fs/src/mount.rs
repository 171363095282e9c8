//! The `bbackupfs` command: options, the mount's lifetime, signals.
//!
//! Without `-f` the command starts itself again in the foreground as a
//! background process (its own process group, so a terminal's Ctrl-C does
//! not reach it), passes on what that process prints until the mount is up,
//! and exits 0 then, or with the child's status if it failed first. No fork:
//! the workspace has no unsafe code, and a re-exec is all a daemon needs.
//!
//! SIGINT, SIGTERM and SIGHUP unmount cleanly; so does `fusermount3 -u`.
//!
//! Must not know: the store or the caches (it builds a [`BoxFs`] and hands
//! it to fuser).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bb_client::config::BackupdConfig;
use fuser::{MountOption, SessionACL};

use crate::core::{BoxFs, Options};
use crate::fuse::Fuse;
use crate::pool::{MakeStore, Store};

/// 0.13's default bbackupd.conf.
pub const DEFAULT_CONFIG: &str = "/etc/boxbackup/bbackupd.conf";

/// Parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub config: PathBuf,
    pub foreground: bool,
    pub location: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub no_disk_cache: bool,
    pub verbose: u8,
    pub mount_options: Vec<MountOption>,
    pub acl: SessionACL,
    pub connections: usize,
    pub threads: usize,
    pub ttl: Duration,
    pub timeout: Duration,
    pub cache_mb: usize,
    pub mountpoint: PathBuf,
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Parsed {
    Mount(Box<Args>),
    Help,
    Version,
}

fn number(opt: &str, v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("-o {opt}={v}: expected a positive number"))
}

/// Parses the arguments after the program name.
pub fn parse_args(args: &[OsString]) -> Result<Parsed, String> {
    let mut a = Args {
        config: PathBuf::from(DEFAULT_CONFIG),
        foreground: false,
        location: None,
        cache_dir: None,
        no_disk_cache: false,
        verbose: 0,
        mount_options: Vec::new(),
        acl: SessionACL::Owner,
        connections: 4,
        threads: 2,
        ttl: Duration::from_secs(60),
        timeout: Duration::from_secs(60),
        cache_mb: 96,
        mountpoint: PathBuf::new(),
    };
    let mut mountpoint = None;
    let mut it = args.iter();
    let value = |it: &mut std::slice::Iter<'_, OsString>, what: &str| {
        it.next()
            .cloned()
            .ok_or_else(|| format!("{what} needs a value"))
    };
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-h" | "--help") => return Ok(Parsed::Help),
            Some("-V" | "--version") => return Ok(Parsed::Version),
            Some("-c") => a.config = value(&mut it, "-c")?.into(),
            Some("-f") => a.foreground = true,
            Some("-v") => a.verbose += 1,
            Some("-vv") => a.verbose += 2,
            Some("--location") => {
                a.location = Some(
                    value(&mut it, "--location")?
                        .into_string()
                        .map_err(|_| "--location: not UTF-8".to_string())?,
                )
            }
            Some("--cache-dir") => a.cache_dir = Some(value(&mut it, "--cache-dir")?.into()),
            Some("--no-disk-cache") => a.no_disk_cache = true,
            Some("-o") => {
                let v = value(&mut it, "-o")?;
                let v = v.to_str().ok_or("-o: not UTF-8")?;
                for o in v.split(',').filter(|o| !o.is_empty()) {
                    mount_option(&mut a, o)?;
                }
            }
            Some(s) if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown option {s}"));
            }
            _ => {
                if mountpoint.replace(PathBuf::from(arg)).is_some() {
                    return Err("only one MOUNTPOINT may be given".into());
                }
            }
        }
    }
    a.mountpoint = mountpoint.ok_or("no MOUNTPOINT given")?;
    Ok(Parsed::Mount(Box::new(a)))
}

fn mount_option(a: &mut Args, o: &str) -> Result<(), String> {
    let (k, v) = o.split_once('=').map_or((o, None), |(k, v)| (k, Some(v)));
    let opt = match (k, v) {
        ("allow_other", None) => {
            a.acl = SessionACL::All;
            return Ok(());
        }
        ("allow_root", None) => {
            a.acl = SessionACL::RootAndOwner;
            return Ok(());
        }
        ("ro" | "default_permissions", None) => return Ok(()),
        ("rw", None) => return Err("-o rw: bbackupfs is read-only".into()),
        ("auto_unmount", None) => MountOption::AutoUnmount,
        ("noexec", None) => MountOption::NoExec,
        ("nosuid", None) => MountOption::NoSuid,
        ("nodev", None) => MountOption::NoDev,
        ("noatime", None) => MountOption::NoAtime,
        ("fsname", Some(v)) => MountOption::FSName(v.into()),
        ("subtype", Some(v)) => MountOption::Subtype(v.into()),
        ("connections", Some(v)) => {
            a.connections = number(k, v)?.min(64) as usize;
            return Ok(());
        }
        ("threads", Some(v)) => {
            a.threads = number(k, v)?.min(64) as usize;
            return Ok(());
        }
        ("ttl", Some(v)) => {
            a.ttl = Duration::from_secs(number(k, v)?);
            return Ok(());
        }
        ("timeout", Some(v)) => {
            a.timeout = Duration::from_secs(number(k, v)?);
            return Ok(());
        }
        ("cache_mb", Some(v)) => {
            a.cache_mb = number(k, v)?.min(1 << 20) as usize;
            return Ok(());
        }
        _ => return Err(format!("unknown mount option -o {o}")),
    };
    a.mount_options.retain(|m| m != &opt);
    a.mount_options.push(opt);
    Ok(())
}

/// The default directory of the metadata cache.
fn default_cache_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("bbackupfs"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bbackupfs"))
}

/// The cache file of one account under one key set, named so that two
/// stores, accounts or key sets never share one.
fn cache_file(dir: &Path, cfg: &BackupdConfig, keys: &bb_format::Keys) -> PathBuf {
    let mut tagged = b"bbackupfs cache file name".to_vec();
    tagged.extend_from_slice(keys.raw());
    let fp = bb_format::crypto::md5(&tagged);
    let host: String = cfg
        .store_hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!(
        "{host}_{}_{:08x}_{:02x}{:02x}{:02x}{:02x}.meta",
        cfg.store_port, cfg.account_number, fp[0], fp[1], fp[2], fp[3]
    ))
}

/// Set in the environment of the background child (see [`background`]): its
/// log then goes to syslog by default, as its stderr closes once mounted.
const DETACHED_ENV: &str = "BB_DETACHED";

/// Installs the log: bbackupd.conf's `LogTo`/`SyslogFacility` when set (as
/// bbackupd reads them); else the console, plus syslog when started in the
/// background, where the console is only seen until the mount is up. A
/// missing syslog socket is only worth a warning when `LogTo` asked for it.
fn init_logging(verbose: u8, cfg: Option<&BackupdConfig>, detached: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        || EnvFilter::try_from_env("BBACKUPFS_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let setup = bb_console::SystemLogSetup {
        destinations: cfg.and_then(|c| c.log_to.clone()),
        facility: cfg.map(|c| c.syslog_facility).unwrap_or_default(),
        ident: "bbackupfs".into(),
        ..Default::default()
    }
    .with_env_overrides();
    let configured = setup.destinations.is_some();
    let defaults: &[bb_console::Destination] = if detached {
        &[
            bb_console::Destination::Console,
            bb_console::Destination::Syslog,
        ]
    } else {
        &[bb_console::Destination::Console]
    };
    let r = setup.resolve(defaults);
    let console = r.console.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .with_filter(filter())
    });
    let system = r.system.map(|l| l.with_filter(filter()));
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(system)
        .try_init();
    if let Some(w) = r.warning.filter(|_| configured) {
        tracing::warn!("{w}");
    }
}

/// `bbackupfs`' main.
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // glibc gives every thread that allocates its own arena (up to 8 per
    // core), and memory freed in one is not reused by another: the fetch
    // threads would hold far more than the caches' bounds. Two arenas are
    // plenty; exec keeps the process ID, which scripts and tests rely on.
    if std::env::var_os("MALLOC_ARENA_MAX").is_none()
        && let Ok(exe) = std::env::current_exe()
    {
        let e = Command::new(exe)
            .args(&args)
            .env("MALLOC_ARENA_MAX", "2")
            .exec();
        tracing::debug!("re-exec with MALLOC_ARENA_MAX: {e}");
    }
    let a = match parse_args(&args) {
        Ok(Parsed::Help) => {
            print!("{}", bb_format::clidoc::help(&crate::doc::BBACKUPFS));
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("bbackupfs {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Mount(a)) => a,
        Err(e) => {
            eprintln!("bbackupfs: {e}\nTry `bbackupfs --help`.");
            return ExitCode::from(2);
        }
    };
    if !a.foreground {
        return background(&args, &a.mountpoint);
    }
    // Read once: its log keys first, then the mount. A bad config is logged
    // to the console (the only destination then known).
    let cfg = BackupdConfig::load(&a.config).map_err(|e| e.to_string());
    init_logging(
        a.verbose,
        cfg.as_ref().ok(),
        std::env::var_os(DETACHED_ENV).is_some(),
    );
    match cfg.and_then(|cfg| run(&a, cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bbackupfs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Mounts and serves until unmounted.
pub fn run(a: &Args, cfg: BackupdConfig) -> Result<(), String> {
    let keys = cfg.keys().map_err(|e| e.to_string())?;
    let mut remote = cfg.remote_config(true).map_err(|e| e.to_string())?;
    remote.timeouts = bb_remote::Timeouts::all(a.timeout);
    let make: MakeStore =
        Arc::new(move || bb_remote::Session::open(remote.clone()).map(|s| Box::new(s) as Store));
    let disk_cache = if a.no_disk_cache {
        None
    } else {
        a.cache_dir
            .clone()
            .or_else(default_cache_dir)
            .map(|d| cache_file(&d, &cfg, &keys))
    };
    let cache = a.cache_mb << 20;
    let opts = Options {
        connections: a.connections,
        ttl: a.ttl,
        meta_cache: cache / 3,
        data_cache: cache - cache / 3,
        disk_cache,
        location: a.location.clone(),
        ..Options::default()
    };
    let fs = Arc::new(BoxFs::new(keys, make, opts).map_err(|e| e.to_string())?);
    fs.start_prefetch();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::DefaultPermissions,
        MountOption::FSName(format!("bbackupfs#{}", cfg.store_hostname)),
        MountOption::Subtype("bbackupfs".into()),
    ];
    for o in &a.mount_options {
        config
            .mount_options
            .retain(|m| std::mem::discriminant(m) != std::mem::discriminant(o));
        config.mount_options.push(o.clone());
    }
    config.acl = a.acl;
    config.n_threads = Some(a.threads);
    config.clone_fd = true;
    let fuse = Fuse {
        fs,
        ttl: a.ttl,
        ops: Default::default(),
    };
    let mut session = fuser::Session::new(fuse, &a.mountpoint, &config).map_err(|e| {
        format!(
            "cannot mount on {}: {e}{}",
            a.mountpoint.display(),
            if e.raw_os_error() == Some(107) {
                " (a dead mount is there: `fusermount3 -u` it first)"
            } else {
                ""
            }
        )
    })?;
    let mut unmounter = session.unmount_callable();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("signals: {e}"))?;
    let handle = signals.handle();
    let waiter = std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            tracing::info!("signal {sig}: unmounting");
            if let Err(e) = unmounter.unmount() {
                tracing::error!("unmount: {e}");
            }
        }
    });
    tracing::info!("mounted on {}", a.mountpoint.display());
    let r = session.run().map_err(|e| format!("FUSE session: {e}"));
    handle.close();
    let _ = waiter.join();
    r
}

/// Whether `mountpoint` is a bbackupfs mount now (per /proc/self/mountinfo).
pub fn is_mounted(mountpoint: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(mountpoint) else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    info.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f.get(4) == Some(&want.as_str()) && is_ours(l)
    })
}

/// Starts the foreground mount as a background process and waits until it
/// is mounted or has failed.
fn background(args: &[OsString], mountpoint: &Path) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("bbackupfs: cannot find myself to start in the background: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut child = match Command::new(exe)
        .arg("-f")
        .args(args)
        .env(DETACHED_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bbackupfs: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Pass on what the child says until it is mounted (later writes find the
    // pipe closed; Rust ignores SIGPIPE, so they just fail).
    let err = child.stderr.take();
    std::thread::spawn(move || {
        if let Some(e) = err {
            for line in BufReader::new(e).lines().map_while(Result::ok) {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    });
    loop {
        if is_mounted(mountpoint) {
            return ExitCode::SUCCESS;
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                std::thread::sleep(Duration::from_millis(50));
                return ExitCode::from(status.code().unwrap_or(1).clamp(1, 255) as u8);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                eprintln!("bbackupfs: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}

/// Whether a mountinfo line is a bbackupfs mount: fuser mounts as type
/// `fuse` with source `bbackupfs#HOST` when it calls mount(2) itself (as
/// root), or as `fuse.bbackupfs` through fusermount3.
fn is_ours(line: &str) -> bool {
    let Some((_, after)) = line.split_once(" - ") else {
        return false;
    };
    let mut f = after.split(' ');
    matches!(f.next(), Some("fuse" | "fuse.bbackupfs"))
        && f.next().is_some_and(|s| s.starts_with("bbackupfs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[&str]) -> Result<Parsed, String> {
        parse_args(&s.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn parses_the_command_line() {
        let Parsed::Mount(a) = parse(&[
            "-c",
            "x.conf",
            "-f",
            "-o",
            "allow_other,ttl=5,noatime",
            "--location",
            "home",
            "/mnt",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.config, PathBuf::from("x.conf"));
        assert!(a.foreground);
        assert_eq!(a.acl, SessionACL::All);
        assert_eq!(a.ttl, Duration::from_secs(5));
        assert_eq!(a.mount_options, vec![MountOption::NoAtime]);
        assert_eq!(a.location.as_deref(), Some("home"));
        assert_eq!(a.mountpoint, PathBuf::from("/mnt"));
        let Parsed::Mount(d) = parse(&["/m"]).unwrap() else {
            panic!()
        };
        assert_eq!(d.config, PathBuf::from(DEFAULT_CONFIG));
        assert!(!d.foreground);
        assert!(matches!(parse(&["--help"]), Ok(Parsed::Help)));
        for bad in [
            &["-o", "rw", "/m"][..],
            &["-o", "ttl=0", "/m"],
            &["-o", "bogus", "/m"],
            &[],
            &["/a", "/b"],
            &["-x", "/m"],
            &["-c"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
