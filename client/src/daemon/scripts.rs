//! The two scripts bbackupd runs, with 0.13's arguments and rules.
//!
//! * `NotifyScript <event> "<config file>"` through `sh -c` (0.13 uses
//!   system()), for the events of [`Notify`]. Unless `NotifyAlways`, an event
//!   equal to the last one notified is suppressed, except backup-start and
//!   backup-finish, which never count as "last" (so two good runs in a row give
//!   one backup-ok). A failing script is logged and not remembered.
//! * `SyncAllowScript "<config file>"` before each run that bbackupctl did not
//!   force: the first word of its first line is `now` or a delay in seconds; an
//!   optional second word limits the upload rate of that run, in kB/s. No line
//!   within 30 s, an empty line or an unreadable word: try again in 5 minutes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tracing::{debug, error, info, warn};

/// 0.13's events, in its order (the names are the script's first argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    StoreFull,
    ReadError,
    BackupError,
    BackupStart,
    BackupFinish,
    BackupOk,
}

impl Notify {
    pub fn name(self) -> &'static str {
        match self {
            Notify::StoreFull => "store-full",
            Notify::ReadError => "read-error",
            Notify::BackupError => "backup-error",
            Notify::BackupStart => "backup-start",
            Notify::BackupFinish => "backup-finish",
            Notify::BackupOk => "backup-ok",
        }
    }
}

/// Quotes `s` for `sh` (0.13 wraps the config path in double quotes; single
/// quotes also survive `$` and backquotes in the path).
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs NotifyScript and remembers what it last said.
#[derive(Debug, Default)]
pub struct Notifier {
    last: Option<Notify>,
}

impl Notifier {
    /// Tells the script about `event` (if there is a script and the event is
    /// not a repeat). Returns whether the script ran.
    pub fn notify(
        &mut self,
        event: Notify,
        script: Option<&str>,
        always: bool,
        config: &Path,
    ) -> bool {
        let start_or_finish = matches!(event, Notify::BackupStart | Notify::BackupFinish);
        if !always && self.last == Some(event) {
            if event == Notify::BackupOk {
                debug!("Suppressing duplicate notification about {}", event.name());
            } else {
                warn!("Suppressing duplicate notification about {}", event.name());
            }
            return false;
        }
        let Some(script) = script else {
            if !start_or_finish {
                debug!(
                    "Not notifying administrator about event {}, set NotifyScript to do this in future",
                    event.name()
                );
            }
            return false;
        };
        let line = format!(
            "{script} {} {}",
            event.name(),
            sh_quote(&config.to_string_lossy())
        );
        debug!(
            "About to notify administrator about event {}, running script '{line}'",
            event.name()
        );
        match Command::new("/bin/sh")
            .arg("-c")
            .arg(&line)
            .stdin(Stdio::null())
            .status()
        {
            Ok(st) if st.success() => {
                if !start_or_finish {
                    self.last = Some(event);
                }
            }
            Ok(st) => warn!("Notify script returned error code: {st} ({line})"),
            Err(e) => warn!("Notify script could not be run: {e} ({line})"),
        }
        true
    }
}

/// What SyncAllowScript said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allow {
    /// `None`: sync now; otherwise ask again after this long.
    pub wait: Option<Duration>,
    /// Upload limit for this run, bytes per second (the script says kB/s).
    pub max_rate: Option<u64>,
}

/// 0.13's wait after a script that said nothing usable.
pub const SCRIPT_RETRY: Duration = Duration::from_secs(300);

/// Parses the script's first line (0.13's ParseSyncAllowScriptOutput).
pub fn parse_allow(line: &str) -> Result<Allow, String> {
    let mut words = line.split_whitespace();
    let wait = match words.next() {
        None => return Err("SyncAllowScript output an empty line".into()),
        Some("now") => None,
        Some(n) => match n.parse::<i32>() {
            // 0.13 treats a delay <= 0 as "now" too.
            Ok(s) if s <= 0 => None,
            Ok(s) => Some(Duration::from_secs(s as u64)),
            Err(_) => {
                return Err(format!(
                    "SyncAllowScript output an invalid number: '{line}'"
                ));
            }
        },
    };
    let max_rate = match words.next() {
        None => None,
        Some(w) => match w.parse::<i32>() {
            Ok(0) => None,
            Ok(k) if k > 0 => Some(k as u64 * 1024),
            _ => {
                return Err(format!(
                    "Invalid maximum bandwidth from SyncAllowScript: '{line}'"
                ));
            }
        },
    };
    Ok(Allow { wait, max_rate })
}

/// Runs SyncAllowScript (if any). Never fails: anything unusable means "ask
/// again in 5 minutes", as in 0.13.
pub fn sync_allowed(script: Option<&str>, config: &Path, within: Duration) -> Allow {
    let now = Allow {
        wait: None,
        max_rate: None,
    };
    let retry = Allow {
        wait: Some(SCRIPT_RETRY),
        max_rate: None,
    };
    let Some(script) = script else {
        return now;
    };
    let line = format!("{script} {}", sh_quote(&config.to_string_lossy()));
    let mut child = match Command::new("/bin/sh")
        .arg("-c")
        .arg(&line)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            error!("Internal error running SyncAllowScript: {e} ({line})");
            return retry;
        }
    };
    // A reader thread, so that a script that prints nothing cannot hold us up
    // past `within`.
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut first = String::new();
            let r = BufReader::new(out)
                .read_line(&mut first)
                .map(|n| (n, first));
            let _ = tx.send(r);
        });
    }
    let answer = rx.recv_timeout(within);
    let allow = match answer {
        Ok(Ok((n, first))) if n > 0 => match parse_allow(first.trim_end_matches(['\r', '\n'])) {
            Ok(a) => {
                match a.wait {
                    None => info!("SyncAllowScript requested a backup now ({line})"),
                    Some(d) => info!(
                        "SyncAllowScript requested a delay of {} seconds ({line})",
                        d.as_secs()
                    ),
                }
                if let Some(r) = a.max_rate {
                    info!(
                        "SyncAllowScript set maximum bandwidth to {} kB/s ({line})",
                        r / 1024
                    );
                }
                a
            }
            Err(e) => {
                error!(
                    "{e}, sleeping for {} seconds ({line})",
                    SCRIPT_RETRY.as_secs()
                );
                retry
            }
        },
        Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
            error!(
                "SyncAllowScript output nothing within {} seconds, waiting 5 minutes to try again ({line})",
                within.as_secs()
            );
            retry
        }
    };
    // The script's verdict is in; it may not keep us waiting any longer.
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let _ = child.kill();
    }
    let _ = child.wait();
    allow
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_013_script_answers() {
        let now = Allow {
            wait: None,
            max_rate: None,
        };
        assert_eq!(parse_allow("now"), Ok(now));
        assert_eq!(parse_allow("  now  "), Ok(now));
        assert_eq!(
            parse_allow("30"),
            Ok(Allow {
                wait: Some(Duration::from_secs(30)),
                max_rate: None
            })
        );
        assert_eq!(
            parse_allow("now 100"),
            Ok(Allow {
                wait: None,
                max_rate: Some(102_400)
            })
        );
        assert!(parse_allow("").is_err());
        assert!(parse_allow("soon").is_err());
        assert!(parse_allow("now fast").is_err());
        assert!(parse_allow("99999999999").is_err());
    }

    #[test]
    fn runs_the_scripts() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("it's.conf");
        let script = |body: &str| {
            let p = dir.path().join(format!("s{}", body.len()));
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            p.display().to_string()
        };
        let s = script("echo now");
        assert_eq!(
            sync_allowed(Some(&s), &conf, Duration::from_secs(10)).wait,
            None
        );
        let s = script("echo 7 3");
        let a = sync_allowed(Some(&s), &conf, Duration::from_secs(10));
        assert_eq!(a.wait, Some(Duration::from_secs(7)));
        assert_eq!(a.max_rate, Some(3072));
        // Silent for longer than allowed: ask again in 5 minutes.
        let s = script("sleep 5; echo now");
        let t = std::time::Instant::now();
        assert_eq!(
            sync_allowed(Some(&s), &conf, Duration::from_millis(200)).wait,
            Some(SCRIPT_RETRY)
        );
        assert!(t.elapsed() < Duration::from_secs(4));
        assert_eq!(sync_allowed(None, &conf, Duration::from_secs(1)).wait, None);

        // NotifyScript gets the event and the config path; repeats are dropped.
        let log = dir.path().join("events");
        let s = script(&format!("echo \"$1|$2\" >> '{}'", log.display()));
        let mut n = Notifier::default();
        for e in [
            Notify::BackupStart,
            Notify::BackupOk,
            Notify::BackupFinish,
            Notify::BackupStart,
            Notify::BackupOk,
            Notify::BackupFinish,
            Notify::ReadError,
            Notify::BackupOk,
        ] {
            n.notify(e, Some(&s), false, &conf);
        }
        n.notify(Notify::BackupOk, Some(&s), true, &conf);
        let c = conf.display();
        let want: Vec<String> = [
            "backup-start",
            "backup-ok",
            "backup-finish",
            "backup-start",
            "backup-finish",
            "read-error",
            "backup-ok",
            "backup-ok",
        ]
        .iter()
        .map(|e| format!("{e}|{c}"))
        .collect();
        let got = std::fs::read_to_string(&log).unwrap();
        assert_eq!(got.lines().collect::<Vec<_>>(), want);
    }
}
