//! bbackupctl: tells a running bbackupd (ours or 0.13's) what to do, over its
//! CommandSocket, with 0.13's commands, messages and exit codes.
//!
//! `bbackupctl [-c config] [-q|-v|-V|-W level...] command`: `status`, `sync`,
//! `force-sync`, `reload`, `terminate`, `wait-for-sync`, `wait-for-end`,
//! `sync-and-wait`. Exit 0 when done, 1 on any failure (no socket, daemon not
//! there, `error` from the daemon, waiting for a sync that snapshot mode never
//! starts), 2 for a bad command line. 0.13 itself ends most commands with a
//! SIGPIPE (exit 141 in a shell: it writes `quit` twice to a socket the daemon
//! has closed after the first); we exit 0 there.
//!
//! The protocol is described in [`crate::daemon::command`]. Log lines go to
//! stdout in 0.13's console format, as 0.13's do.
//!
//! Ours adds to `status` what bbackupd's status file says ([`status`]), and
//! `--json` to print that file alone; 0.13's output comes first, unchanged.
//!
//! Must not know: how the daemon works inside; the socket is all we share.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use tracing::{debug, error, info, trace};

use crate::daemon::command::State;
use crate::daemon::options::{DEFAULT_CONFIG, Level, Timestamps};

pub const USAGE: &str = "Usage: bbackupctl [options] <command>

Options:
  -c <file>  Use the specified configuration file [/etc/boxbackup/bbackupd.conf]
  -q         Run more quietly, reduce verbosity level by one, can repeat
  -Q         Run at minimum verbosity, log nothing
  -t <tag>   Tag console output with specified marker
  -T         Timestamp console output
  -U         Timestamp console output with microseconds
  -v         Run more verbosely, increase verbosity level by one, can repeat
  -V         Run at maximum verbosity
  -W <level> Set verbosity to error/warning/notice/info/trace/everything
  -L, -N, -P, -w  Accepted for compatibility
  --json     With status: print bbackupd's status file as JSON

Commands are:
  status -- report daemon status and the last sync without changing anything
  sync -- start a synchronisation (backup) run now
  force-sync -- force the start of a synchronisation run, even if SyncAllowScript says no
  reload -- reload daemon configuration
  terminate -- terminate daemon now
  wait-for-sync -- wait until the next sync starts, then exit
  wait-for-end  -- wait until the next sync finishes, then exit
  sync-and-wait -- start sync, wait until it finishes, then exit
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config: PathBuf,
    pub level: Level,
    pub timestamps: Option<Timestamps>,
    pub tag: Option<String>,
    pub command: String,
    /// Ours: `--json` (for `status`).
    pub json: bool,
}

/// `Err(message)` for a bad command line (exit 2).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Options, String> {
    let mut o = Options {
        config: PathBuf::from(DEFAULT_CONFIG),
        level: Level::Notice,
        timestamps: None,
        tag: None,
        command: String::new(),
        json: false,
    };
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--" {
            positional.extend(it.by_ref());
            break;
        }
        if a == "--json" {
            o.json = true;
            continue;
        }
        if !a.starts_with('-') || a == "-" {
            positional.push(a);
            continue;
        }
        let mut chars = a[1..].chars();
        while let Some(c) = chars.next() {
            let mut value = || -> Result<String, String> {
                let rest: String = chars.by_ref().collect();
                if !rest.is_empty() {
                    return Ok(rest);
                }
                it.next()
                    .ok_or_else(|| format!("option -{c} needs a value"))
            };
            match c {
                'c' => o.config = PathBuf::from(value()?),
                'q' => o.level = o.level.step(false),
                'Q' => o.level = Level::Nothing,
                'v' => o.level = o.level.step(true),
                'V' => o.level = Level::Everything,
                'W' => {
                    let v = value()?;
                    o.level = Level::by_name(&v).ok_or(format!("unknown verbosity level '{v}'"))?;
                }
                't' => o.tag = Some(value()?),
                'T' => o.timestamps = Some(Timestamps::Seconds),
                'U' => o.timestamps = Some(Timestamps::Micros),
                'L' => {
                    value()?;
                }
                'N' | 'P' | 'w' => {}
                _ => return Err(format!("Unknown option on command line: '{c}'")),
            }
        }
    }
    if positional.len() != 1 {
        return Err("exactly one command is needed".into());
    }
    o.command = positional.remove(0);
    Ok(o)
}

/// What happened; the exit status is [`Outcome::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Failed => 1,
        }
    }
}

/// The greeting: configuration summary and state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    pub automatic_backup: bool,
    pub update_store_interval: i64,
    pub minimum_file_age: i64,
    pub max_upload_wait: i64,
    pub state: i32,
}

/// Parses `bbackupd: a b c d` (0.13's sscanf "bbackupd: %d %d %d %d").
pub fn parse_summary(line: &str) -> Option<[i64; 4]> {
    let rest = line.strip_prefix("bbackupd:")?;
    let v: Vec<i64> = rest
        .split_whitespace()
        .take(4)
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

/// Parses `state n`.
pub fn parse_state(line: &str) -> Option<i32> {
    line.strip_prefix("state ")?.trim().parse().ok()
}

/// Runs `command` against the daemon listening on `socket`. Messages go to the
/// log (0.13's wording).
pub fn run(socket: &Path, command: &str) -> Outcome {
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            debug!("connect {}: {e}", socket.display());
            error!(
                "Failed to connect to daemon control socket.\nPossible causes:\n  * Daemon not running\n  * Daemon busy syncing with store server\n  * Another bbackupctl process is communicating with the daemon\n  * Daemon is waiting to recover from an error"
            );
            return Outcome::Failed;
        }
    };
    let Ok(mut out) = stream.try_clone() else {
        error!("Failed to connect to daemon control socket.");
        return Outcome::Failed;
    };
    let mut lines = BufReader::new(stream);
    let mut next_line = move || -> Option<String> {
        let mut l = String::new();
        match lines.read_line(&mut l) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(l.trim_end_matches(['\n', '\r']).to_string()),
        }
    };
    let Some(summary) = next_line() else {
        error!(
            "Server rejected the connection. Are you running bbackupctl as the same user as the daemon?"
        );
        return Outcome::Failed;
    };
    let Some([auto, interval, age, wait]) = parse_summary(&summary) else {
        error!("Config summary didn't decode.");
        return Outcome::Failed;
    };
    trace!(
        "Daemon configuration summary:\n  AutomaticBackup = {}\n  UpdateStoreInterval = {interval} seconds\n  MinimumFileAge = {age} seconds\n  MaxUploadWait = {wait} seconds",
        auto != 0
    );
    let Some(state_line) = next_line() else {
        error!("Failed to receive state line from daemon");
        return Outcome::Failed;
    };
    let Some(mut state) = parse_state(&state_line) else {
        error!("Received invalid state line from daemon");
        return Outcome::Failed;
    };
    trace!("Current state: {}", State::name(state));

    let mut send = |s: &str| out.write_all(s.as_bytes());
    enum Wait {
        Start,
        End,
        Reply,
    }
    let wait = match command {
        "status" => {
            info!("state {}", State::name(state));
            let _ = send("quit\n");
            return Outcome::Done;
        }
        "wait-for-sync" | "wait-for-end" => {
            if auto == 0 {
                error!("Daemon is not in automatic mode, sync will never start!");
                return Outcome::Failed;
            }
            if command == "wait-for-sync" {
                Wait::Start
            } else {
                Wait::End
            }
        }
        "sync-and-wait" => {
            if send("force-sync\n").is_err() {
                error!("Failed to send the command to the daemon");
                return Outcome::Failed;
            }
            if state != State::Idle as i32 {
                debug!("Waiting for current sync/error state to finish...");
            }
            Wait::End
        }
        other => {
            if send(&format!("{other}\nquit\n")).is_err() {
                error!("Failed to send the command to the daemon");
                return Outcome::Failed;
            }
            Wait::Reply
        }
    };
    let mut started = false;
    while let Some(line) = next_line() {
        trace!("Received line: {line}");
        if let Some(s) = parse_state(&line) {
            if s != state {
                debug!("Daemon state changed to: {}", State::name(s));
            }
            state = s;
            continue;
        }
        match (&wait, line.as_str()) {
            (Wait::Start, "start-sync") => {
                let _ = send("quit\n");
                return Outcome::Done;
            }
            (Wait::End, "start-sync") => {
                trace!("Sync started...");
                started = true;
            }
            (Wait::End, "finish-sync") if started => {
                trace!("Sync finished.");
                let _ = send("quit\n");
                return Outcome::Done;
            }
            (Wait::End, "finish-sync") => trace!("Previous sync finished."),
            (Wait::Reply, "ok") => {
                trace!("Control command sent: {command}");
                return Outcome::Done;
            }
            (Wait::Reply, "error") => {
                error!("Control command failed: {command}. Check command spelling.");
                return Outcome::Failed;
            }
            _ => {}
        }
    }
    match wait {
        // 0.13 also ends quietly with status 0 when the daemon hangs up.
        Wait::Reply => Outcome::Done,
        Wait::Start | Wait::End => {
            error!("The daemon closed the connection before the sync ended");
            Outcome::Failed
        }
    }
}

/// `bbackupctl status` (ours): 0.13's `state` line from the daemon when a
/// CommandSocket is configured (the same output and exit status as 0.13),
/// then the status file bbackupd keeps (`StatusFile`) in human form: the
/// last sync's result and counts, what is pending, the next sync. The file
/// is also there when the daemon is not running (the exit status then still
/// says so, as 0.13's does). With `json`, only the file, as JSON.
pub fn status(socket: Option<&Path>, status_file: &Path, json: bool) -> Outcome {
    use crate::daemon::status::StatusDoc;
    if json {
        return match StatusDoc::load(status_file)
            .and_then(|d| serde_json::to_string_pretty(&d).map_err(|e| e.to_string()))
        {
            Ok(text) => {
                println!("{text}");
                Outcome::Done
            }
            Err(e) => {
                error!("No status: {e}");
                Outcome::Failed
            }
        };
    }
    let live = socket.map(|s| run(s, "status"));
    let fmt = |t: f64| crate::query::console::format_iso((t * 1e6) as i64, true, ' ');
    let file = match StatusDoc::load(status_file) {
        Ok(d) => {
            print!("{}", d.human(&fmt));
            Outcome::Done
        }
        Err(e) if live.is_some() => {
            // A 0.13 daemon, or ours without a run yet: the state line is all.
            debug!("no status file: {e}");
            Outcome::Done
        }
        Err(e) => {
            error!("No status: {e}");
            Outcome::Failed
        }
    };
    live.unwrap_or(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_013_lines() {
        assert_eq!(
            parse_summary("bbackupd: 1 3600 21600 86400"),
            Some([1, 3600, 21600, 86400])
        );
        assert_eq!(parse_summary("bbackupd: 1 3600"), None);
        assert_eq!(parse_summary("hello"), None);
        assert_eq!(parse_state("state 0"), Some(0));
        assert_eq!(parse_state("state -1"), Some(-1));
        assert_eq!(parse_state("state x"), None);
        assert_eq!(parse_state("start-sync"), None);
    }

    #[test]
    fn reads_command_lines() {
        let p = |a: &[&str]| parse(a.iter().map(|s| s.to_string()));
        let o = p(&["-q", "-c", "/x.conf", "sync"]).unwrap();
        assert_eq!(
            (o.level, o.config, o.command.as_str()),
            (Level::Warning, PathBuf::from("/x.conf"), "sync")
        );
        assert_eq!(
            p(&["status"]).unwrap().config,
            PathBuf::from(DEFAULT_CONFIG)
        );
        assert!(p(&[]).is_err());
        assert!(p(&["sync", "now"]).is_err());
        assert!(p(&["-x", "sync"]).is_err());
        assert!(p(&["-w", "sync"]).is_ok());
        let o = p(&["status", "--json"]).unwrap();
        assert!(o.json && o.command == "status");
        assert!(!p(&["status"]).unwrap().json);
    }
}
