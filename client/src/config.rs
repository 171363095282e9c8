//! bbackupd.conf: every key the 0.13 bbackupd accepts, typed, with 0.13's
//! defaults, plus our timeouts; also read by bbackupquery and bbackupctl.
//!
//! Owns: the file's rules (which keys exist, which are required, their types and
//! defaults), the locations with their [`Excludes`], and turning the settings
//! into a [`bb_remote::Config`] and the [`Keys`]. Must not know: what the daemon
//! does with them.
//!
//! Strict where 0.13 is, and a little stricter: an unknown key, a key given twice
//! (other than the Exclude* keys), a value of the wrong type, or a regex that does
//! not compile is an error naming `file:line`; missing required keys are one
//! error naming all of them. Also refused, where 0.13 would have carried on: a
//! negative time or size, a relative location `Path` (0.13 only logs it; the
//! daemon's working directory is not the user's), two locations with one name,
//! and the `S3Store` block (we only talk to bbstored).
//!
//! A path ending in `.toml` is read as TOML with the same key names: values typed
//! (times and sizes integers, yes/no booleans, paths strings), `[Server]` and one
//! `[BackupLocations.<name>]` table per location; an Exclude* key takes a string
//! or an array of strings:
//!
//! ```toml
//! StoreHostname = "backup.example.com"
//! AccountNumber = 0x01234567
//! KeysFile = "/etc/boxbackup/bbackupd/01234567-FileEncKeys.raw"
//! # ... the other required keys, as in the 0.13 syntax
//! [Server]
//! PidFile = "/var/run/bbackupd.pid"
//! [BackupLocations.home]
//! Path = "/home"
//! ExcludeDir = ["/home/guest", "/home/tmp"]
//! ```
//!
//! Every key, its default and which are ours: docs/client.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bb_format::Keys;
use bb_format::clidoc::Key as KeyDoc;
use bb_format::config_syntax::{Block, Key, SyntaxError, parse_c_int, parse_with};
use bb_remote::Timeouts;
use serde::Deserialize;
use toml::Spanned;

use crate::exclude::{Excludes, Rule};
use crate::sync::{Location, SyncOptions};

/// 0.13's default config file.
pub const DEFAULT_CONFIG: &str = "/etc/boxbackup/bbackupd.conf";
/// The status file's name in DataDirectory unless `StatusFile` says otherwise.
pub const STATUS_FILE: &str = "bbackupd-status.json";
/// 0.13's default `StorePort` (protocol.md §1.1).
pub const DEFAULT_PORT: u16 = 2201;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    #[error("{file}:{line}: {message}")]
    Bad {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: {what} lacks the required key(s) {}", keys.join(", "))]
    Missing {
        file: String,
        what: String,
        keys: Vec<String>,
    },
    /// The TLS files named by the configuration did not load.
    #[error("{file}: TLS setup from CertificateFile, PrivateKeyFile, TrustedCAsFile: {source}")]
    Tls {
        file: String,
        source: bb_remote::Error,
    },
    /// The KeysFile did not load.
    #[error("KeysFile {}: {source}", path.display())]
    Keys {
        path: PathBuf,
        source: bb_format::Error,
    },
}

/// One entry of `BackupLocations`.
#[derive(Debug, Clone)]
pub struct LocationConfig {
    /// The block name: the location's directory name on the store.
    pub name: String,
    pub path: PathBuf,
    pub excludes: Excludes,
}

/// Everything bbackupd.conf says. Times are whole seconds in the file.
#[derive(Debug, Clone)]
pub struct BackupdConfig {
    /// The file it came from (for messages).
    pub file: String,
    pub store_hostname: String,
    pub store_port: u16,
    pub account_number: u32,
    pub keys_file: PathBuf,
    pub certificate_file: PathBuf,
    pub private_key_file: PathBuf,
    pub trusted_cas_file: PathBuf,
    /// 0.13's OpenSSL level; kept so 0.13 files load. rustls always enforces at
    /// least what level 2 means.
    pub ssl_security_level: Option<i64>,
    pub data_directory: PathBuf,
    pub update_store_interval: Duration,
    /// How long to wait after a failed run (0.13: 100 s).
    pub backup_error_delay: Duration,
    pub minimum_file_age: Duration,
    pub max_upload_wait: Duration,
    pub max_file_time_in_future: Duration,
    /// false = snapshot mode (runs only on `bbackupctl sync`).
    pub automatic_backup: bool,
    pub file_tracking_size_threshold: u64,
    pub diffing_upload_size_threshold: u64,
    /// `MaximumDiffingTime`: 600 s when absent; `None` (from 0) = no limit.
    pub maximum_diffing_time: Option<Duration>,
    /// `KeepAliveTime`: 60 s when absent (0.13's code default, spec §4.5);
    /// `None` (from 0) = never.
    pub keep_alive_time: Option<Duration>,
    /// `MaxUploadRate` (kB/s in the file) in bytes per second; `None` = unlimited.
    pub max_upload_rate: Option<u64>,
    pub tcp_nice: bool,
    pub notify_script: Option<String>,
    /// 0.13's `NotifyAlways`: run NotifyScript for repeated events too.
    pub notify_all: bool,
    pub sync_allow_script: Option<String>,
    pub command_socket: Option<PathBuf>,
    /// `Server { PidFile }`.
    pub pid_file: Option<PathBuf>,
    /// `Server { User }`: the user to run as after start.
    pub user: Option<String>,
    pub store_object_info_file: Option<PathBuf>,
    pub extended_logging: bool,
    pub extended_log_file: Option<PathBuf>,
    pub log_all_file_access: bool,
    pub log_file: Option<PathBuf>,
    pub log_file_level: Option<String>,
    pub log_file_overwrite: bool,
    /// Ours: `LogTo`, where the daemon's log goes; `None`: the console in the
    /// foreground, syslog when detached (0.13's destinations).
    pub log_to: Option<Vec<bb_console::Destination>>,
    /// Ours: `SyslogFacility` (default daemon, what 0.13 uses).
    pub syslog_facility: bb_console::Facility,
    pub delete_redundant_locations_after: Duration,
    /// Ours: `StatusFile`, the machine-readable status bbackupd keeps
    /// (default: [`STATUS_FILE`] in DataDirectory; see
    /// [`BackupdConfig::status_file_path`]).
    pub status_file: Option<PathBuf>,
    /// Ours: `MetricsListenAddress`, where bbackupd serves Prometheus metrics.
    pub metrics_listen_address: Option<std::net::SocketAddr>,
    /// Ours: `ConnectTimeout` and `OperationTimeout` (read and write); the TLS
    /// handshake keeps bb-remote's default.
    pub timeouts: Timeouts,
    pub locations: Vec<LocationConfig>,
}

/// Root keys: 0.13's (as its bbackupd accepts them), then ours. The reader
/// accepts exactly these, and bbackupd.conf(5) is generated from them.
#[rustfmt::skip]
pub const ROOT_KEYS: &[KeyDoc] = &[
    KeyDoc::new("UpdateStoreInterval", "seconds", "The time between scans of the local directories in lazy mode, varied by a few percent so that clients spread out."),
    KeyDoc::new("BackupErrorDelay", "seconds", "How long to wait after a failed run before the next one (default 300)."),
    KeyDoc::new("MinimumFileAge", "seconds", "A file is uploaded only once it has not changed for this long."),
    KeyDoc::new("MaxUploadWait", "seconds", "A file that keeps changing is uploaded anyway when it was last uploaded this long ago."),
    KeyDoc::new("MaxFileTimeInFuture", "seconds", "A file whose modification time is further in the future than this is uploaded at once (default 172800)."),
    KeyDoc::new("AutomaticBackup", "yes|no", "yes: lazy mode, runs start by themselves; no: snapshot mode, runs start with bbackupctl sync (default yes)."),
    KeyDoc::new("SyncAllowScript", "command", "Run before each run; it may print now to go ahead or a number of seconds to wait."),
    KeyDoc::new("MaximumDiffingTime", "seconds", "Give up searching for a diff against the stored version after this long and upload the whole file."),
    KeyDoc::new("DeleteRedundantLocationsAfter", "seconds", "A location removed from this file is deleted from the store (as deleted files are: housekeeping removes it later) this long after a run first finds it unused (default 172800; 0: never)."),
    KeyDoc::new("FileTrackingSizeThreshold", "bytes", "Files at least this large are tracked by inode number so that renames are not uploaded again."),
    KeyDoc::new("DiffingUploadSizeThreshold", "bytes", "Files at least this large are uploaded as a diff against the stored version."),
    KeyDoc::new("ExtendedLogging", "yes|no", "Log every protocol command and reply."),
    KeyDoc::new("ExtendedLogFile", "path", "Write the extended log to this file."),
    KeyDoc::new("LogAllFileAccess", "yes|no", "Log every file and directory looked at, uploaded or skipped."),
    KeyDoc::new("LogFile", "path", "Also log to this file."),
    KeyDoc::new("LogFileLevel", "level", "Level for LogFile: error, warning, notice, info, trace or everything."),
    KeyDoc::new("LogFileOverwrite", "yes|no", "Start LogFile afresh rather than appending to it."),
    KeyDoc::new("LogTo", "console|syslog|journald|none,...", "Where the log goes; default: the console in the foreground and with --once, syslog when detached (ours)."),
    KeyDoc::new("SyslogFacility", "name", "The syslog facility: daemon (default, as 0.13), user, local0..local7 (ours)."),
    KeyDoc::new("CommandSocket", "path", "The Unix socket bbackupctl talks to bbackupd through."),
    KeyDoc::new("KeepAliveTime", "seconds", "Send a keep-alive to the store this often while a long diff runs."),
    KeyDoc::new("StoreObjectInfoFile", "path", "Save the state of the run here at exit, so a restart need not rescan the store."),
    KeyDoc::new("NotifyScript", "command", "Run on events (store-full, read-error, backup-error, backup-start, backup-finish, backup-ok) with the event as argument."),
    KeyDoc::new("NotifyAlways", "yes|no", "Run NotifyScript for every event, not only the first of a kind."),
    KeyDoc::new("MaxUploadRate", "kB/s", "Limit the upload rate."),
    KeyDoc::new("TcpNice", "yes|no", "Accepted for 0.13 compatibility (TCP send buffer tuning)."),
    KeyDoc::new("KeysFile", "path", "The account's 1024-byte keys file: keep a copy off this machine, without it nothing can be restored."),
    KeyDoc::new("DataDirectory", "path", "Where bbackupd keeps its state (the store marker, the inode map, the deletion list)."),
    KeyDoc::new("StoreHostname", "host", "The store server's host name or address."),
    KeyDoc::new("StorePort", "port", "The store server's port (default 2201)."),
    KeyDoc::new("AccountNumber", "hex", "The account number on the store, in hex (0x prefix allowed)."),
    KeyDoc::new("CertificateFile", "path", "This client's certificate, signed by the store's client CA."),
    KeyDoc::new("PrivateKeyFile", "path", "The private key of CertificateFile."),
    KeyDoc::new("TrustedCAsFile", "path", "The CA certificate the store's certificate must be signed by."),
    KeyDoc::new("SSLSecurityLevel", "number", "Accepted for 0.13 compatibility; the TLS settings are fixed."),
    // Ours:
    KeyDoc::new("ConnectTimeout", "seconds", "Give up connecting to the store after this long (ours)."),
    KeyDoc::new("OperationTimeout", "seconds", "Give up on a store read or write that stalls this long (ours)."),
    KeyDoc::new("StatusFile", "path", "The JSON status bbackupctl status prints (default DataDirectory/bbackupd-status.json; ours, see docs/operations.md)."),
    KeyDoc::new("MetricsListenAddress", "ip:port", "Serve the status as Prometheus metrics over HTTP here, e.g. 127.0.0.1:9181; none by default (ours)."),
];

/// Required root keys. 0.13 requires only the first seven and checks the store
/// keys when it connects; without S3 support every one is needed.
const REQUIRED: &[&str] = &[
    "UpdateStoreInterval",
    "MinimumFileAge",
    "MaxUploadWait",
    "FileTrackingSizeThreshold",
    "DiffingUploadSizeThreshold",
    "KeysFile",
    "DataDirectory",
    "StoreHostname",
    "AccountNumber",
    "CertificateFile",
    "PrivateKeyFile",
    "TrustedCAsFile",
];

/// Keys of the Server block.
#[rustfmt::skip]
pub const SERVER_KEYS: &[KeyDoc] = &[
    KeyDoc::new("PidFile", "path", "Write bbackupd's process id here."),
    KeyDoc::new("User", "name", "Accepted for 0.13 compatibility."),
];

/// Keys of a location block inside BackupLocations: `Path` and the rules of
/// [`Rule`] (a test keeps the two lists equal).
#[rustfmt::skip]
pub const LOCATION_KEYS: &[KeyDoc] = &[
    KeyDoc::new("Path", "path", "The directory to back up. Required."),
    KeyDoc::new("ExcludeFile", "path", "Do not back up this file (full path; repeatable)."),
    KeyDoc::new("ExcludeFilesRegex", "regex", "Do not back up files whose full path matches (POSIX extended regex; repeatable)."),
    KeyDoc::new("ExcludeDir", "path", "Do not back up this directory (full path; repeatable)."),
    KeyDoc::new("ExcludeDirsRegex", "regex", "Do not back up directories whose full path matches (repeatable)."),
    KeyDoc::new("AlwaysIncludeFile", "path", "Back up this file even if an Exclude rule matches it (repeatable)."),
    KeyDoc::new("AlwaysIncludeFilesRegex", "regex", "Back up files that match even if an Exclude rule matches them (repeatable)."),
    KeyDoc::new("AlwaysIncludeDir", "path", "Back up this directory even if an Exclude rule matches it (repeatable)."),
    KeyDoc::new("AlwaysIncludeDirsRegex", "regex", "Back up directories that match even if an Exclude rule matches them (repeatable)."),
];

/// The values of one file before they are checked and typed: what both syntaxes
/// turn into, so the rules live in one place.
#[derive(Debug, Default)]
struct Raw {
    root: BTreeMap<String, Value>,
    server: Option<BTreeMap<String, Value>>,
    /// Line of the BackupLocations block / table.
    locations_line: Option<usize>,
    locations: Vec<RawLocation>,
}

#[derive(Debug)]
struct RawLocation {
    name: String,
    line: usize,
    path: Option<Value>,
    rules: Vec<(Rule, Value)>,
}

/// A value and its line; `Text` from the 0.13 syntax (typed on use), the others
/// from TOML.
#[derive(Debug, Clone)]
struct Value {
    line: usize,
    v: V,
}

#[derive(Debug, Clone)]
enum V {
    Text(String),
    Int(i64),
    Bool(bool),
}

struct Reader<'a> {
    file: &'a str,
}

impl Reader<'_> {
    fn bad(&self, line: usize, message: impl Into<String>) -> ConfigError {
        ConfigError::Bad {
            file: self.file.to_string(),
            line,
            message: message.into(),
        }
    }

    fn int(&self, name: &str, v: &Value) -> Result<i64, ConfigError> {
        match &v.v {
            V::Int(i) => Ok(*i),
            V::Text(t) => parse_c_int(t)
                .ok_or_else(|| self.bad(v.line, format!("'{name}' must be an integer, not '{t}'"))),
            V::Bool(_) => Err(self.bad(v.line, format!("'{name}' must be an integer"))),
        }
    }

    fn non_negative(&self, name: &str, v: &Value) -> Result<u64, ConfigError> {
        let i = self.int(name, v)?;
        u64::try_from(i).map_err(|_| self.bad(v.line, format!("'{name}' must not be negative")))
    }

    /// 0.13's booleans: yes/true/no/false in any case.
    fn boolean(&self, name: &str, v: &Value) -> Result<bool, ConfigError> {
        match &v.v {
            V::Bool(b) => Ok(*b),
            V::Text(t) => match t.to_ascii_lowercase().as_str() {
                "yes" | "true" => Ok(true),
                "no" | "false" => Ok(false),
                _ => Err(self.bad(v.line, format!("'{name}' must be yes or no, not '{t}'"))),
            },
            V::Int(_) => Err(self.bad(v.line, format!("'{name}' must be yes or no"))),
        }
    }

    fn text<'v>(&self, name: &str, v: &'v Value) -> Result<&'v str, ConfigError> {
        match &v.v {
            V::Text(t) => Ok(t),
            _ => Err(self.bad(v.line, format!("'{name}' must be a string"))),
        }
    }

    fn path(&self, name: &str, v: &Value) -> Result<PathBuf, ConfigError> {
        let t = self.text(name, v)?;
        if t.is_empty() {
            return Err(self.bad(v.line, format!("'{name}' is empty")));
        }
        Ok(PathBuf::from(t))
    }

    fn check_known(
        &self,
        keys: &BTreeMap<String, Value>,
        known: &[KeyDoc],
        what: &str,
    ) -> Result<(), ConfigError> {
        let mut unknown: Vec<(&String, &Value)> = keys
            .iter()
            .filter(|(k, _)| !known.iter().any(|d| d.name == k.as_str()))
            .collect();
        unknown.sort_by_key(|(_, v)| v.line);
        match unknown.first() {
            Some((k, v)) => Err(self.bad(v.line, format!("unknown key '{k}' in {what}"))),
            None => Ok(()),
        }
    }

    fn build(&self, raw: Raw) -> Result<BackupdConfig, ConfigError> {
        self.check_known(&raw.root, ROOT_KEYS, "the file")?;
        let missing: Vec<String> = REQUIRED
            .iter()
            .filter(|k| !raw.root.contains_key(**k))
            .map(|k| k.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError::Missing {
                file: self.file.to_string(),
                what: "the file".into(),
                keys: missing,
            });
        }
        let Some(server) = &raw.server else {
            return Err(ConfigError::Missing {
                file: self.file.to_string(),
                what: "the file".into(),
                keys: vec!["Server (block)".into()],
            });
        };
        self.check_known(server, SERVER_KEYS, "block 'Server'")?;
        if raw.locations_line.is_none() {
            return Err(ConfigError::Missing {
                file: self.file.to_string(),
                what: "the file".into(),
                keys: vec!["BackupLocations (block)".into()],
            });
        }

        let root = &raw.root;
        let get = |k: &str| root.get(k);
        // Required keys are present (checked above).
        let req = |k: &str| &root[k];
        let secs = |k: &str, default: u64| -> Result<Duration, ConfigError> {
            match get(k) {
                Some(v) => Ok(Duration::from_secs(self.non_negative(k, v)?)),
                None => Ok(Duration::from_secs(default)),
            }
        };
        // A time where 0 means "off".
        let secs_or_off = |k: &str, default: u64| -> Result<Option<Duration>, ConfigError> {
            let d = secs(k, default)?;
            Ok((!d.is_zero()).then_some(d))
        };
        let flag = |k: &str, default: bool| match get(k) {
            Some(v) => self.boolean(k, v),
            None => Ok(default),
        };
        let opt_path = |k: &str| get(k).map(|v| self.path(k, v)).transpose();
        let opt_text = |k: &str| -> Result<Option<String>, ConfigError> {
            Ok(get(k)
                .map(|v| self.text(k, v).map(str::to_string))
                .transpose()?
                .filter(|s| !s.is_empty()))
        };

        let account = req("AccountNumber");
        let account_number = u32::try_from(self.int("AccountNumber", account)?).map_err(|_| {
            self.bad(
                account.line,
                "'AccountNumber' must be a 32-bit unsigned number",
            )
        })?;
        let store_port = match get("StorePort") {
            Some(v) => u16::try_from(self.int("StorePort", v)?)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| self.bad(v.line, "'StorePort' must be a port number (1-65535)"))?,
            None => DEFAULT_PORT,
        };
        let host = self.text("StoreHostname", req("StoreHostname"))?;
        if host.is_empty() {
            return Err(self.bad(req("StoreHostname").line, "'StoreHostname' is empty"));
        }
        let max_upload_rate = match get("MaxUploadRate") {
            Some(v) => {
                let kb = self.non_negative("MaxUploadRate", v)?;
                // 0.13 counts in kB of 1024 bytes [?].
                let bytes = kb
                    .checked_mul(1024)
                    .ok_or_else(|| self.bad(v.line, "'MaxUploadRate' is too large"))?;
                (bytes > 0).then_some(bytes)
            }
            None => None,
        };
        let defaults = Timeouts::default();
        let operation = secs("OperationTimeout", defaults.read.as_secs())?;
        let timeouts = Timeouts {
            connect: secs("ConnectTimeout", defaults.connect.as_secs())?,
            handshake: defaults.handshake,
            read: operation,
            write: operation,
        };
        if timeouts.connect.is_zero() || operation.is_zero() {
            let k = if operation.is_zero() {
                "OperationTimeout"
            } else {
                "ConnectTimeout"
            };
            return Err(self.bad(
                get(k).map_or(1, |v| v.line),
                format!("'{k}' must be above 0"),
            ));
        }

        let mut locations: Vec<LocationConfig> = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for loc in raw.locations {
            if let Some(first) = seen.get(&loc.name) {
                return Err(self.bad(
                    loc.line,
                    format!(
                        "location '{}' is defined twice (first on line {first})",
                        loc.name
                    ),
                ));
            }
            seen.insert(loc.name.clone(), loc.line);
            if loc.name.contains('/') || loc.name == "." || loc.name == ".." {
                return Err(self.bad(
                    loc.line,
                    format!("location name '{}' must be a plain name", loc.name),
                ));
            }
            let Some(pv) = &loc.path else {
                return Err(ConfigError::Missing {
                    file: self.file.to_string(),
                    what: format!("location '{}' (line {})", loc.name, loc.line),
                    keys: vec!["Path".into()],
                });
            };
            let path = self.path("Path", pv)?;
            if !path.is_absolute() {
                return Err(self.bad(
                    pv.line,
                    format!("'Path' of location '{}' must be absolute", loc.name),
                ));
            }
            let mut excludes = Excludes::new();
            for (rule, v) in &loc.rules {
                let t = self.text(rule.key(), v)?;
                excludes
                    .add(*rule, t)
                    .map_err(|e| self.bad(v.line, format!("{}: {e}", rule.key())))?;
            }
            locations.push(LocationConfig {
                name: loc.name,
                path,
                excludes,
            });
        }

        Ok(BackupdConfig {
            file: self.file.to_string(),
            store_hostname: host.to_string(),
            store_port,
            account_number,
            keys_file: self.path("KeysFile", req("KeysFile"))?,
            certificate_file: self.path("CertificateFile", req("CertificateFile"))?,
            private_key_file: self.path("PrivateKeyFile", req("PrivateKeyFile"))?,
            trusted_cas_file: self.path("TrustedCAsFile", req("TrustedCAsFile"))?,
            ssl_security_level: get("SSLSecurityLevel")
                .map(|v| self.int("SSLSecurityLevel", v))
                .transpose()?,
            data_directory: self.path("DataDirectory", req("DataDirectory"))?,
            update_store_interval: secs("UpdateStoreInterval", 0)?,
            backup_error_delay: secs("BackupErrorDelay", 100)?,
            minimum_file_age: secs("MinimumFileAge", 0)?,
            max_upload_wait: secs("MaxUploadWait", 0)?,
            max_file_time_in_future: secs("MaxFileTimeInFuture", 172_800)?,
            automatic_backup: flag("AutomaticBackup", true)?,
            file_tracking_size_threshold: self.non_negative(
                "FileTrackingSizeThreshold",
                req("FileTrackingSizeThreshold"),
            )?,
            diffing_upload_size_threshold: self.non_negative(
                "DiffingUploadSizeThreshold",
                req("DiffingUploadSizeThreshold"),
            )?,
            maximum_diffing_time: secs_or_off("MaximumDiffingTime", 600)?,
            keep_alive_time: secs_or_off("KeepAliveTime", 60)?,
            max_upload_rate,
            tcp_nice: flag("TcpNice", false)?,
            notify_script: opt_text("NotifyScript")?,
            notify_all: flag("NotifyAlways", false)?,
            sync_allow_script: opt_text("SyncAllowScript")?,
            command_socket: opt_path("CommandSocket")?,
            pid_file: server
                .get("PidFile")
                .map(|v| self.path("PidFile", v))
                .transpose()?,
            user: server
                .get("User")
                .map(|v| self.text("User", v).map(str::to_string))
                .transpose()?
                .filter(|u| !u.is_empty()),
            store_object_info_file: opt_path("StoreObjectInfoFile")?,
            extended_logging: flag("ExtendedLogging", false)?,
            extended_log_file: opt_path("ExtendedLogFile")?,
            log_all_file_access: flag("LogAllFileAccess", false)?,
            log_file: opt_path("LogFile")?,
            log_file_level: opt_text("LogFileLevel")?,
            log_file_overwrite: flag("LogFileOverwrite", false)?,
            log_to: get("LogTo")
                .map(|v| {
                    bb_console::parse_destinations(self.text("LogTo", v)?)
                        .map_err(|e| self.bad(v.line, format!("LogTo: {e}")))
                })
                .transpose()?,
            syslog_facility: get("SyslogFacility")
                .map(|v| {
                    bb_console::Facility::by_name(self.text("SyslogFacility", v)?)
                        .map_err(|e| self.bad(v.line, format!("SyslogFacility: {e}")))
                })
                .transpose()?
                .unwrap_or_default(),
            delete_redundant_locations_after: secs("DeleteRedundantLocationsAfter", 172_800)?,
            status_file: opt_path("StatusFile")?,
            metrics_listen_address: match get("MetricsListenAddress") {
                Some(v) => Some(
                    bb_proto::metrics::parse_listen_address(self.text("MetricsListenAddress", v)?)
                        .map_err(|m| self.bad(v.line, format!("MetricsListenAddress: {m}")))?,
                ),
                None => None,
            },
            timeouts,
            locations,
        })
    }
}

fn text_keys(b: &Block) -> BTreeMap<String, Value> {
    b.keys
        .iter()
        .map(|k: &Key| {
            (
                k.name.clone(),
                Value {
                    line: k.line,
                    v: V::Text(k.value.clone()),
                },
            )
        })
        .collect()
}

/// The 0.13 syntax into [`Raw`].
fn raw_from_text(text: &str, file: &str) -> Result<Raw, ConfigError> {
    let r = Reader { file };
    let root = parse_with(text, file, &|k| Rule::from_key(k).is_some())?;
    let mut raw = Raw {
        root: text_keys(&root),
        ..Raw::default()
    };
    // A repeated Exclude* at the root or in Server is still a mistake: it is
    // only allowed inside a location, which the unknown-key check catches.
    for b in &root.blocks {
        match b.name.as_str() {
            "Server" => {
                if let Some(x) = b.blocks.first() {
                    return Err(r.bad(x.line, format!("unknown block '{}' in Server", x.name)));
                }
                if raw.server.is_some() {
                    return Err(r.bad(b.line, "block 'Server' given twice"));
                }
                raw.server = Some(text_keys(b));
            }
            "BackupLocations" => {
                if raw.locations_line.is_some() {
                    return Err(r.bad(b.line, "block 'BackupLocations' given twice"));
                }
                raw.locations_line = Some(b.line);
                if let Some(k) = b.keys.first() {
                    return Err(r.bad(
                        k.line,
                        format!(
                            "key '{}' directly in BackupLocations (keys belong in a location block)",
                            k.name
                        ),
                    ));
                }
                for loc in &b.blocks {
                    if let Some(x) = loc.blocks.first() {
                        return Err(r.bad(
                            x.line,
                            format!("unknown block '{}' in location '{}'", x.name, loc.name),
                        ));
                    }
                    let mut rl = RawLocation {
                        name: loc.name.clone(),
                        line: loc.line,
                        path: None,
                        rules: Vec::new(),
                    };
                    for k in &loc.keys {
                        let v = Value {
                            line: k.line,
                            v: V::Text(k.value.clone()),
                        };
                        if k.name == "Path" {
                            rl.path = Some(v);
                        } else if let Some(rule) = Rule::from_key(&k.name) {
                            rl.rules.push((rule, v));
                        } else {
                            return Err(r.bad(
                                k.line,
                                format!("unknown key '{}' in location '{}'", k.name, loc.name),
                            ));
                        }
                    }
                    raw.locations.push(rl);
                }
            }
            "S3Store" => {
                return Err(r.bad(
                    b.line,
                    "S3Store is not supported (only bbstored stores are)",
                ));
            }
            other => return Err(r.bad(b.line, format!("unknown block '{other}'"))),
        }
    }
    for (k, v) in &raw.root {
        if Rule::from_key(k).is_some() {
            return Err(r.bad(
                v.line,
                format!("'{k}' belongs in a location block inside BackupLocations"),
            ));
        }
    }
    Ok(raw)
}

/// An Exclude* value: one string or an array of them.
#[derive(Debug)]
enum OneOrMany {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis;
        impl<'de> serde::de::Visitor<'de> for Vis {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(s.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element::<Spanned<String>>()? {
                    v.push(x);
                }
                Ok(OneOrMany::Many(v))
            }
        }
        d.deserialize_any(Vis)
    }
}

#[allow(non_snake_case)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlLocation {
    Path: Option<Spanned<String>>,
    ExcludeFile: Option<Spanned<OneOrMany>>,
    ExcludeFilesRegex: Option<Spanned<OneOrMany>>,
    ExcludeDir: Option<Spanned<OneOrMany>>,
    ExcludeDirsRegex: Option<Spanned<OneOrMany>>,
    AlwaysIncludeFile: Option<Spanned<OneOrMany>>,
    AlwaysIncludeFilesRegex: Option<Spanned<OneOrMany>>,
    AlwaysIncludeDir: Option<Spanned<OneOrMany>>,
    AlwaysIncludeDirsRegex: Option<Spanned<OneOrMany>>,
}

impl TomlLocation {
    fn rules(&self) -> [(Rule, &Option<Spanned<OneOrMany>>); 8] {
        [
            (Rule::ExcludeFile, &self.ExcludeFile),
            (Rule::ExcludeFilesRegex, &self.ExcludeFilesRegex),
            (Rule::ExcludeDir, &self.ExcludeDir),
            (Rule::ExcludeDirsRegex, &self.ExcludeDirsRegex),
            (Rule::AlwaysIncludeFile, &self.AlwaysIncludeFile),
            (Rule::AlwaysIncludeFilesRegex, &self.AlwaysIncludeFilesRegex),
            (Rule::AlwaysIncludeDir, &self.AlwaysIncludeDir),
            (Rule::AlwaysIncludeDirsRegex, &self.AlwaysIncludeDirsRegex),
        ]
    }
}

/// The TOML root: one typed field per key, named as the key, so serde's
/// "unknown field" message lists exactly what a user may write.
macro_rules! toml_root {
    (ints: [$($i:ident),*], bools: [$($b:ident),*], strings: [$($s:ident),*]) => {
        #[allow(non_snake_case)]
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct TomlRoot {
            $($i: Option<Spanned<i64>>,)*
            $($b: Option<Spanned<bool>>,)*
            $($s: Option<Spanned<String>>,)*
            Server: Option<Spanned<TomlServer>>,
            BackupLocations: Option<Spanned<BTreeMap<String, Spanned<TomlLocation>>>>,
            S3Store: Option<Spanned<toml::Table>>,
        }

        impl TomlRoot {
            fn values(&self, line: &dyn Fn(usize) -> usize) -> BTreeMap<String, Value> {
                let mut m = BTreeMap::new();
                $(if let Some(v) = &self.$i {
                    m.insert(stringify!($i).to_string(), Value { line: line(v.span().start), v: V::Int(*v.get_ref()) });
                })*
                $(if let Some(v) = &self.$b {
                    m.insert(stringify!($b).to_string(), Value { line: line(v.span().start), v: V::Bool(*v.get_ref()) });
                })*
                $(if let Some(v) = &self.$s {
                    m.insert(stringify!($s).to_string(), Value { line: line(v.span().start), v: V::Text(v.get_ref().clone()) });
                })*
                m
            }
        }
    };
}

toml_root! {
    ints: [UpdateStoreInterval, BackupErrorDelay, MinimumFileAge, MaxUploadWait,
        MaxFileTimeInFuture, MaximumDiffingTime, DeleteRedundantLocationsAfter,
        FileTrackingSizeThreshold, DiffingUploadSizeThreshold, KeepAliveTime, MaxUploadRate,
        StorePort, AccountNumber, SSLSecurityLevel, ConnectTimeout, OperationTimeout],
    bools: [AutomaticBackup, ExtendedLogging, LogAllFileAccess, LogFileOverwrite, NotifyAlways,
        TcpNice],
    strings: [SyncAllowScript, ExtendedLogFile, LogFile, LogFileLevel, LogTo, SyslogFacility, CommandSocket,
        StoreObjectInfoFile, NotifyScript, KeysFile, DataDirectory, StoreHostname,
        CertificateFile, PrivateKeyFile, TrustedCAsFile, StatusFile, MetricsListenAddress]
}

#[allow(non_snake_case)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlServer {
    PidFile: Option<Spanned<String>>,
    User: Option<Spanned<String>>,
}

/// The 1-based line of byte `pos` of `text`.
fn line_of(text: &str, pos: usize) -> usize {
    let end = pos.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn raw_from_toml(text: &str, file: &str) -> Result<Raw, ConfigError> {
    let r = Reader { file };
    let line = |pos: usize| line_of(text, pos);
    let root: TomlRoot = toml::from_str(text).map_err(|e| {
        r.bad(
            e.span().map_or(1, |s| line(s.start)),
            e.message().trim_end().to_string(),
        )
    })?;
    if let Some(s3) = &root.S3Store {
        return Err(r.bad(
            line(s3.span().start),
            "S3Store is not supported (only bbstored stores are)",
        ));
    }
    let text_value = |v: &Spanned<String>| Value {
        line: line(v.span().start),
        v: V::Text(v.get_ref().clone()),
    };
    let mut raw = Raw {
        root: root.values(&line),
        ..Raw::default()
    };
    if let Some(s) = &root.Server {
        let mut m = BTreeMap::new();
        if let Some(v) = &s.get_ref().PidFile {
            m.insert("PidFile".to_string(), text_value(v));
        }
        if let Some(v) = &s.get_ref().User {
            m.insert("User".to_string(), text_value(v));
        }
        raw.server = Some(m);
    }
    if let Some(locs) = &root.BackupLocations {
        raw.locations_line = Some(line(locs.span().start));
        let mut list: Vec<(&String, &Spanned<TomlLocation>)> = locs.get_ref().iter().collect();
        // Keep the file's order, as the 0.13 syntax does.
        list.sort_by_key(|(_, l)| l.span().start);
        for (name, l) in list {
            let loc = l.get_ref();
            let mut rl = RawLocation {
                name: name.clone(),
                line: line(l.span().start),
                path: loc.Path.as_ref().map(text_value),
                rules: Vec::new(),
            };
            for (rule, v) in loc.rules() {
                let Some(v) = v else { continue };
                match v.get_ref() {
                    OneOrMany::One(s) => rl.rules.push((
                        rule,
                        Value {
                            line: line(v.span().start),
                            v: V::Text(s.clone()),
                        },
                    )),
                    OneOrMany::Many(items) => {
                        for s in items {
                            rl.rules.push((
                                rule,
                                Value {
                                    line: line(s.span().start),
                                    v: V::Text(s.get_ref().clone()),
                                },
                            ));
                        }
                    }
                }
            }
            raw.locations.push(rl);
        }
    }
    Ok(raw)
}

impl BackupdConfig {
    /// Parses the text of a bbackupd.conf in 0.13's syntax; `file` names it in
    /// errors.
    pub fn parse(text: &str, file: &str) -> Result<BackupdConfig, ConfigError> {
        Reader { file }.build(raw_from_text(text, file)?)
    }

    /// Parses the TOML form (see the module docs).
    pub fn parse_toml(text: &str, file: &str) -> Result<BackupdConfig, ConfigError> {
        Reader { file }.build(raw_from_toml(text, file)?)
    }

    /// Reads and parses a bbackupd.conf: TOML if the name ends in `.toml`, else
    /// 0.13's syntax.
    pub fn load(path: &Path) -> Result<BackupdConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        if path.extension().is_some_and(|e| e == "toml") {
            BackupdConfig::parse_toml(&text, &file)
        } else {
            BackupdConfig::parse(&text, &file)
        }
    }

    /// How to reach and log in to the store: TLS from the three files, host,
    /// port, account, our timeouts and the keep-alive. Loads the TLS files now.
    pub fn remote_config(&self, read_only: bool) -> Result<bb_remote::Config, ConfigError> {
        let tls = bb_remote::Config::tls_from_files(
            &self.certificate_file,
            &self.private_key_file,
            &self.trusted_cas_file,
            false,
        )
        .map_err(|source| ConfigError::Tls {
            file: self.file.clone(),
            source,
        })?;
        let mut c = bb_remote::Config::new(&self.store_hostname, self.account_number, tls);
        c.port = self.store_port;
        c.read_only = read_only;
        c.timeouts = self.timeouts;
        c.keep_alive = self.keep_alive_time;
        Ok(c)
    }

    /// The file encryption keys from `KeysFile`.
    /// Where bbackupd writes its status (`StatusFile`, else [`STATUS_FILE`] in
    /// DataDirectory).
    pub fn status_file_path(&self) -> PathBuf {
        self.status_file
            .clone()
            .unwrap_or_else(|| self.data_directory.join(STATUS_FILE))
    }

    pub fn keys(&self) -> Result<Keys, ConfigError> {
        Keys::from_file(&self.keys_file).map_err(|source| ConfigError::Keys {
            path: self.keys_file.clone(),
            source,
        })
    }

    /// The location with this name.
    pub fn location(&self, name: &str) -> Option<&LocationConfig> {
        self.locations.iter().find(|l| l.name == name)
    }

    /// The settings of one sync run: every location with its excludes, and
    /// the timing and size keys. `now` is left to the clock.
    pub fn sync_options(&self) -> SyncOptions {
        SyncOptions {
            minimum_file_age: self.minimum_file_age,
            max_upload_wait: self.max_upload_wait,
            max_file_time_in_future: self.max_file_time_in_future,
            file_tracking_size_threshold: self.file_tracking_size_threshold,
            diffing_upload_size_threshold: self.diffing_upload_size_threshold,
            maximum_diffing_time: self.maximum_diffing_time,
            max_upload_rate: self.max_upload_rate,
            delete_redundant_locations_after: self.delete_redundant_locations_after,
            ..SyncOptions::new(
                self.locations
                    .iter()
                    .map(LocationConfig::sync_location)
                    .collect(),
            )
        }
    }
}

impl LocationConfig {
    /// The location as the sync engine takes it, its excludes as the filter.
    pub fn sync_location(&self) -> Location {
        Location {
            name: self.name.clone(),
            path: self.path.clone(),
            filter: Arc::new(self.excludes.clone()),
        }
    }

    /// The excludes as compare's predicate (`compare -a` / `-l` without
    /// `-E`); `None` when nothing is excluded.
    pub fn compare_excluded(&self) -> Option<Arc<crate::compare::Excluded>> {
        if self.excludes.is_empty() {
            return None;
        }
        let ex = self.excludes.clone();
        Some(Arc::new(move |p: &Path, dir: bool| {
            if dir {
                ex.is_dir_excluded(p)
            } else {
                ex.is_file_excluded(p)
            }
        }))
    }
}

impl From<&LocationConfig> for Location {
    fn from(l: &LocationConfig) -> Location {
        l.sync_location()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/bb013")
    }

    /// The pack's bbackupd.conf template (written like 0.13's bbackupd-config)
    /// with its placeholders filled.
    fn fixture_text() -> String {
        let p = pack();
        std::fs::read_to_string(p.join("conf/bbackupd.conf.in"))
            .unwrap()
            .replace("@PORT@", "22011")
            .replace("@KEYS@", &p.join("keys").display().to_string())
            .replace("@CERTS@", &p.join("certs").display().to_string())
            .replace("@CLIENT@", "/var/bbackupd")
            .replace("@SOURCE@", "/src")
    }

    fn bad(text: &str) -> (usize, String) {
        match BackupdConfig::parse(text, "b.conf") {
            Err(ConfigError::Bad { line, message, .. }) => (line, message),
            Err(ConfigError::Syntax(e)) => (e.line, e.message),
            other => panic!("expected an error with a line, got {other:?}"),
        }
    }

    /// The required keys and blocks, then `extra` (before the blocks).
    fn minimal(extra: &str, location: &str) -> String {
        format!(
            "StoreHostname = h\nAccountNumber = 0x2a\nKeysFile = /k\nCertificateFile = /c\n\
             PrivateKeyFile = /p\nTrustedCAsFile = /t\nDataDirectory = /d\n\
             UpdateStoreInterval = 1\nMinimumFileAge = 2\nMaxUploadWait = 3\n\
             FileTrackingSizeThreshold = 4\nDiffingUploadSizeThreshold = 5\n{extra}\
             Server\n{{\n}}\nBackupLocations\n{{\n{location}}}\n"
        )
    }

    #[test]
    fn the_fixture_template_loads() {
        let c = BackupdConfig::parse(&fixture_text(), "bbackupd.conf").unwrap();
        assert_eq!(c.store_hostname, "127.0.0.1");
        assert_eq!(c.store_port, 22011);
        assert_eq!(c.account_number, 0x01234567);
        assert!(!c.automatic_backup);
        assert_eq!(c.update_store_interval, Duration::ZERO);
        assert_eq!(c.file_tracking_size_threshold, 65535);
        assert_eq!(c.diffing_upload_size_threshold, 8192);
        assert_eq!(c.maximum_diffing_time, Some(Duration::from_secs(120)));
        assert_eq!(
            c.keep_alive_time,
            Some(Duration::from_secs(60)),
            "absent: 60 s"
        );
        assert_eq!(c.ssl_security_level, Some(2));
        assert_eq!(
            c.command_socket.as_deref(),
            Some(Path::new("/var/bbackupd/bbackupd.sock"))
        );
        assert_eq!(
            c.pid_file.as_deref(),
            Some(Path::new("/var/bbackupd/bbackupd.pid"))
        );
        assert_eq!(c.store_object_info_file, None);
        assert_eq!(c.locations.len(), 1);
        assert_eq!(c.locations[0].name, "source");
        assert_eq!(c.locations[0].path, Path::new("/src"));
        assert!(c.locations[0].excludes.is_empty());
    }

    #[test]
    fn remote_config_and_keys_from_the_fixture_files() {
        let c = BackupdConfig::parse(&fixture_text(), "bbackupd.conf").unwrap();
        let r = c.remote_config(true).unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.account),
            ("127.0.0.1", 22011, 0x01234567)
        );
        assert!(r.read_only);
        assert_eq!(r.keep_alive, Some(Duration::from_secs(60)));
        assert_eq!(r.timeouts, Timeouts::default());
        assert!(!c.remote_config(false).unwrap().read_only);
        let keys = c.keys().unwrap();
        assert_eq!(
            keys.raw()[..],
            std::fs::read(pack().join("keys/01234567-FileEncKeys.raw")).unwrap()[..]
        );

        let mut missing = c.clone();
        missing.private_key_file = "/nonexistent/key.pem".into();
        assert!(matches!(
            missing.remote_config(false),
            Err(ConfigError::Tls { .. })
        ));
        missing.keys_file = "/nonexistent/keys".into();
        let e = missing.keys().unwrap_err();
        assert!(e.to_string().contains("/nonexistent/keys"), "{e}");
    }

    #[test]
    fn defaults_when_absent() {
        let c = BackupdConfig::parse(&minimal("", "a\n{\nPath = /x\n}\n"), "f").unwrap();
        assert_eq!(c.store_port, 2201);
        assert_eq!(c.account_number, 0x2a);
        assert!(c.automatic_backup);
        assert_eq!(c.backup_error_delay, Duration::from_secs(100));
        assert_eq!(c.max_file_time_in_future, Duration::from_secs(172_800));
        assert_eq!(
            c.delete_redundant_locations_after,
            Duration::from_secs(172_800)
        );
        assert_eq!(c.maximum_diffing_time, Some(Duration::from_secs(600)));
        assert_eq!(c.keep_alive_time, Some(Duration::from_secs(60)));
        assert_eq!(c.max_upload_rate, None);
        assert!(!c.extended_logging && !c.log_all_file_access && !c.notify_all && !c.tcp_nice);
        assert!(!c.log_file_overwrite);
        assert_eq!(c.notify_script, None);
        assert_eq!(c.sync_allow_script, None);
        assert_eq!(c.command_socket, None);
        assert_eq!(c.pid_file, None);
        assert_eq!(c.user, None);
        assert_eq!(c.ssl_security_level, None);
        assert_eq!(c.timeouts, Timeouts::default());
        assert_eq!(
            (
                c.update_store_interval,
                c.minimum_file_age,
                c.max_upload_wait
            ),
            (
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(3)
            )
        );
        assert_eq!(
            (
                c.file_tracking_size_threshold,
                c.diffing_upload_size_threshold
            ),
            (4, 5)
        );
    }

    const EVERY_KEY: &str = "BackupErrorDelay = 7\nMaxFileTimeInFuture = 8\nAutomaticBackup = No\n\
        SyncAllowScript = /bin/allow now\nMaximumDiffingTime = 0\n\
        DeleteRedundantLocationsAfter = 9\nExtendedLogging = TRUE\nExtendedLogFile = /el\n\
        LogAllFileAccess = yes\nLogFile = /lf\nLogFileLevel = trace\nLogFileOverwrite = true\n\
        CommandSocket = /s\nKeepAliveTime = 0\nStoreObjectInfoFile = /soi\n\
        NotifyScript = /n.sh arg\nNotifyAlways = yes\nMaxUploadRate = 10\nTcpNice = yes\n\
        StorePort = 22011\nSSLSecurityLevel = 1\nConnectTimeout = 5\nOperationTimeout = 60\n";

    fn check_every_key(c: &BackupdConfig) {
        assert_eq!(c.backup_error_delay, Duration::from_secs(7));
        assert_eq!(c.max_file_time_in_future, Duration::from_secs(8));
        assert!(!c.automatic_backup);
        assert_eq!(c.sync_allow_script.as_deref(), Some("/bin/allow now"));
        assert_eq!(c.maximum_diffing_time, None, "0 = no limit");
        assert_eq!(c.delete_redundant_locations_after, Duration::from_secs(9));
        assert!(c.extended_logging);
        assert_eq!(c.extended_log_file.as_deref(), Some(Path::new("/el")));
        assert!(c.log_all_file_access);
        assert_eq!(c.log_file.as_deref(), Some(Path::new("/lf")));
        assert_eq!(c.log_file_level.as_deref(), Some("trace"));
        assert!(c.log_file_overwrite);
        assert_eq!(c.command_socket.as_deref(), Some(Path::new("/s")));
        assert_eq!(c.keep_alive_time, None, "0 = never");
        assert_eq!(c.store_object_info_file.as_deref(), Some(Path::new("/soi")));
        assert_eq!(c.notify_script.as_deref(), Some("/n.sh arg"));
        assert!(c.notify_all);
        assert_eq!(c.max_upload_rate, Some(10 * 1024));
        assert!(c.tcp_nice);
        assert_eq!(c.store_port, 22011);
        assert_eq!(c.ssl_security_level, Some(1));
        assert_eq!(c.timeouts.connect, Duration::from_secs(5));
        assert_eq!(c.timeouts.read, Duration::from_secs(60));
        assert_eq!(c.timeouts.write, Duration::from_secs(60));
        assert_eq!(c.pid_file.as_deref(), Some(Path::new("/pid")));
        assert_eq!(c.user.as_deref(), Some("backup"));
        assert_eq!(c.locations.len(), 2);
        assert_eq!(c.locations[0].name, "home");
        assert_eq!(c.locations[1].name, "etc");
        let home = &c.locations[0].excludes;
        assert_eq!(home.rules().len(), 9);
        assert!(home.is_dir_excluded(Path::new("/home/guest")));
        assert!(home.is_dir_excluded(Path::new("/home/tmp")));
        assert!(home.is_file_excluded(Path::new("/home/a/song.mp3")));
        assert!(!home.is_file_excluded(Path::new("/home/a/keep.mp3")));
        assert!(home.is_file_excluded(Path::new("/home/a/x.o")));
        let r = c.remote_config_parts();
        assert_eq!(r, ("h".to_string(), 22011, 0x2a));

        // What the sync engine gets: the same values, the excludes behind
        // the one Filter trait.
        let o = c.sync_options();
        assert_eq!(o.minimum_file_age, c.minimum_file_age);
        assert_eq!(o.max_upload_wait, c.max_upload_wait);
        assert_eq!(o.max_file_time_in_future, Duration::from_secs(8));
        assert_eq!(
            o.file_tracking_size_threshold,
            c.file_tracking_size_threshold
        );
        assert_eq!(
            o.diffing_upload_size_threshold,
            c.diffing_upload_size_threshold
        );
        assert_eq!(o.maximum_diffing_time, None);
        assert_eq!(o.max_upload_rate, Some(10 * 1024));
        assert_eq!(o.now, None);
        let names: Vec<&str> = o.locations.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["home", "etc"]);
        assert_eq!(o.locations[0].path, Path::new("/home"));
        let f = &o.locations[0].filter;
        assert!(f.exclude_dir(Path::new("/home/guest")));
        assert!(!f.exclude_file(Path::new("/home/guest")), "dir rules only");
        assert!(f.exclude_file(Path::new("/home/a/song.mp3")));
        assert!(!f.exclude_file(Path::new("/home/a/keep.mp3")));
        assert!(!o.locations[1].filter.exclude_dir(Path::new("/etc/x")));
        // And compare's predicate.
        let ex = c.locations[0].compare_excluded().unwrap();
        assert!(ex(Path::new("/home/guest"), true));
        assert!(!ex(Path::new("/home/guest"), false));
        assert!(ex(Path::new("/home/a/x.o"), false));
        assert!(c.locations[1].compare_excluded().is_none());
    }

    impl BackupdConfig {
        fn remote_config_parts(&self) -> (String, u16, u32) {
            (
                self.store_hostname.clone(),
                self.store_port,
                self.account_number,
            )
        }
    }

    #[test]
    fn every_key_in_0_13_syntax() {
        let text = minimal(EVERY_KEY, "")
            .replace(
                "Server\n{\n}",
                "Server\n{\nPidFile = /pid\nUser = backup\n}",
            )
            .replace(
                "BackupLocations\n{\n}",
                "BackupLocations\n{\n\thome\n\t{\n\t\tPath = /home\n\
                 \t\tExcludeDir = /home/guest\n\t\tExcludeDir = /home/tmp\n\
                 \t\tExcludeFilesRegex = \\.mp3$\n\t\tAlwaysIncludeFile = /home/a/keep.mp3\n\
                 \t\tExcludeFile = /home/a/x.o\n\t\tExcludeDirsRegex = ^/home/[^/]+/cache$\n\
                 \t\tAlwaysIncludeFilesRegex = important\n\t\tAlwaysIncludeDir = /home/guest/keep\n\
                 \t\tAlwaysIncludeDirsRegex = ^/home/x$\n\t}\n\tetc\n\t{\n\t\tPath = /etc\n\t}\n}",
            );
        let c = BackupdConfig::parse(&text, "f").unwrap();
        check_every_key(&c);
    }

    #[test]
    fn every_key_in_toml() {
        let text = r#"
StoreHostname = "h"
AccountNumber = 0x2a
KeysFile = "/k"
CertificateFile = "/c"
PrivateKeyFile = "/p"
TrustedCAsFile = "/t"
DataDirectory = "/d"
UpdateStoreInterval = 1
MinimumFileAge = 2
MaxUploadWait = 3
FileTrackingSizeThreshold = 4
DiffingUploadSizeThreshold = 5
BackupErrorDelay = 7
MaxFileTimeInFuture = 8
AutomaticBackup = false
SyncAllowScript = "/bin/allow now"
MaximumDiffingTime = 0
DeleteRedundantLocationsAfter = 9
ExtendedLogging = true
ExtendedLogFile = "/el"
LogAllFileAccess = true
LogFile = "/lf"
LogFileLevel = "trace"
LogFileOverwrite = true
CommandSocket = "/s"
KeepAliveTime = 0
StoreObjectInfoFile = "/soi"
NotifyScript = "/n.sh arg"
NotifyAlways = true
MaxUploadRate = 10
TcpNice = true
StorePort = 22011
SSLSecurityLevel = 1
ConnectTimeout = 5
OperationTimeout = 60

[Server]
PidFile = "/pid"
User = "backup"

[BackupLocations.home]
Path = "/home"
ExcludeDir = ["/home/guest", "/home/tmp"]
ExcludeFilesRegex = '\.mp3$'
AlwaysIncludeFile = "/home/a/keep.mp3"
ExcludeFile = ["/home/a/x.o"]
ExcludeDirsRegex = "^/home/[^/]+/cache$"
AlwaysIncludeFilesRegex = "important"
AlwaysIncludeDir = "/home/guest/keep"
AlwaysIncludeDirsRegex = "^/home/x$"

[BackupLocations.etc]
Path = "/etc"
"#;
        let c = BackupdConfig::parse_toml(text, "f.toml").unwrap();
        check_every_key(&c);
    }

    fn bad_toml(text: &str) -> (usize, String) {
        match BackupdConfig::parse_toml(text, "b.toml") {
            Err(ConfigError::Bad { line, message, .. }) => (line, message),
            other => panic!("expected an error with a line, got {other:?}"),
        }
    }

    #[test]
    fn toml_errors_name_the_line() {
        let head = "StoreHostname = \"h\"\nAccountNumber = 1\n";
        let (l, m) = bad_toml(&format!("{head}Bogus = 1\n"));
        assert_eq!(l, 3);
        assert!(m.contains("Bogus"), "{m}");
        let (l, _) = bad_toml(&format!("{head}UpdateStoreInterval = \"1\"\n"));
        assert_eq!(l, 3);
        let (l, _) = bad_toml(&format!("{head}AutomaticBackup = \"no\"\n"));
        assert_eq!(l, 3);
        let (l, m) = bad_toml(&format!(
            "{}[Server]\n[BackupLocations.a]\nPath = \"/a\"\nExcludeFilesRegex = [\n  \"ok\",\n  \"(\",\n]\n",
            minimal_toml()
        ));
        assert_eq!(l, 19, "the bad element's own line: {m}");
        assert!(
            m.contains("ExcludeFilesRegex") && m.contains("regular expression"),
            "{m}"
        );
        let (l, _) = bad_toml(&format!(
            "{}[Server]\nFoo = 1\n[BackupLocations.a]\nPath = \"/a\"\n",
            minimal_toml()
        ));
        assert_eq!(l, 15);
        let (l, _) = bad_toml(&format!(
            "{}[Server]\n[BackupLocations.a]\nPath = \"/a\"\nExcludeFiles = \"x\"\n",
            minimal_toml()
        ));
        assert_eq!(l, 17);
        let e = BackupdConfig::parse_toml(&format!("{}[Server]\n", minimal_toml()), "b.toml")
            .unwrap_err();
        assert!(e.to_string().contains("BackupLocations"), "{e}");
    }

    fn minimal_toml() -> String {
        "StoreHostname = \"h\"\nAccountNumber = 1\nKeysFile = \"/k\"\nCertificateFile = \"/c\"\n\
         PrivateKeyFile = \"/p\"\nTrustedCAsFile = \"/t\"\nDataDirectory = \"/d\"\n\
         UpdateStoreInterval = 1\nMinimumFileAge = 2\nMaxUploadWait = 3\n\
         FileTrackingSizeThreshold = 4\nDiffingUploadSizeThreshold = 5\n\n"
            .to_string()
    }

    /// Ours: StatusFile and MetricsListenAddress, in both syntaxes.
    #[test]
    fn status_and_metrics_keys() {
        let c = BackupdConfig::parse(&minimal("", ""), "f").unwrap();
        assert_eq!(c.status_file_path(), Path::new("/d").join(STATUS_FILE));
        assert_eq!(c.metrics_listen_address, None);
        let keys = "StatusFile = /run/bb.json\nMetricsListenAddress = [::1]:9181\n";
        let c = BackupdConfig::parse(&minimal(keys, ""), "f").unwrap();
        assert_eq!(c.status_file_path(), Path::new("/run/bb.json"));
        assert_eq!(
            c.metrics_listen_address,
            Some("[::1]:9181".parse().unwrap())
        );
        let t = format!(
            "{}StatusFile = \"/run/bb.json\"\nMetricsListenAddress = \"[::1]:9181\"\n[Server]\n\
             [BackupLocations]\n",
            minimal_toml()
        );
        let c2 = BackupdConfig::parse_toml(&t, "f.toml").unwrap();
        assert_eq!(c2.status_file, c.status_file);
        assert_eq!(c2.metrics_listen_address, c.metrics_listen_address);
        let bad = minimal("MetricsListenAddress = backup.example.com:80\n", "");
        let e = BackupdConfig::parse(&bad, "f").unwrap_err().to_string();
        assert!(
            e.starts_with("f:13:") && e.contains("MetricsListenAddress"),
            "{e}"
        );
    }

    #[test]
    fn toml_locations_keep_file_order() {
        let text = format!(
            "{}[Server]\n[BackupLocations.zz]\nPath = \"/z\"\n[BackupLocations.aa]\nPath = \"/a\"\n",
            minimal_toml()
        );
        let c = BackupdConfig::parse_toml(&text, "f.toml").unwrap();
        let names: Vec<_> = c.locations.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["zz", "aa"]);
    }

    #[test]
    fn errors_name_the_line() {
        let loc = "a\n{\nPath = /x\n}\n";
        // Line 13 is the first line after the required keys.
        let (l, m) = bad(&minimal("Bogus = 1\n", loc));
        assert_eq!(l, 13);
        assert!(m.contains("unknown key 'Bogus'"), "{m}");
        let (l, m) = bad(&minimal("KeepAliveTime = soon\n", loc));
        assert_eq!(l, 13);
        assert!(m.contains("integer"), "{m}");
        let (l, m) = bad(&minimal("AutomaticBackup = maybe\n", loc));
        assert_eq!(l, 13);
        assert!(m.contains("yes or no"), "{m}");
        let (l, m) = bad(&minimal("MinimumFileAge = 9\n", loc));
        assert_eq!(l, 13, "a key given twice");
        assert!(m.contains("twice"), "{m}");
        let (l, _) = bad(&minimal("", loc).replace("MaxUploadWait = 3", "MaxUploadWait = -3"));
        assert_eq!(l, 10, "negative time");
        let (l, _) = bad(&minimal("", loc).replace("0x2a", "0x100000000"));
        assert_eq!(l, 2);
        let (l, _) = bad(&minimal("StorePort = 70000\n", loc));
        assert_eq!(l, 13);
        let (l, _) = bad(&minimal("ExcludeDir = /x\n", loc));
        assert_eq!(l, 13, "Exclude* outside a location");
        // Location errors: the block opens on line 18 (`a`), `{` 19, Path 20.
        let (l, m) = bad(&minimal("", "a\n{\nPath = x\n}\n"));
        assert_eq!(l, 20);
        assert!(m.contains("absolute"), "{m}");
        let (l, m) = bad(&minimal(
            "",
            "a\n{\nPath = /x\nExcludeFilesRegex = ok\nExcludeFilesRegex = (\n}\n",
        ));
        assert_eq!(l, 22);
        assert!(m.contains("regular expression"), "{m}");
        let (l, m) = bad(&minimal("", "a\n{\nPath = /x\nExcludeFiles = /y\n}\n"));
        assert_eq!(l, 21);
        assert!(m.contains("unknown key 'ExcludeFiles'"), "{m}");
        let (l, m) = bad(&minimal("", "a\n{\nPath = /x\n}\na\n{\nPath = /y\n}\n"));
        assert_eq!(l, 22);
        assert!(m.contains("twice"), "{m}");
        let (l, _) = bad(&minimal("", "a\n{\nPath = /x\nPath = /y\n}\n"));
        assert_eq!(l, 21);
        let (l, _) =
            bad(&minimal("", loc).replace("Server\n{\n}", "Server\n{\nListenAddresses = x\n}"));
        assert_eq!(l, 15);
        let (l, m) = bad(&minimal("", loc).replace("Server\n", "S3Store\n{\n}\nServer\n"));
        assert_eq!(l, 13);
        assert!(m.contains("S3Store"), "{m}");
        let (l, _) = bad(&minimal("", loc).replace("Server\n{\n}", "Server\n{\n"));
        assert!(l > 13);
    }

    #[test]
    fn missing_keys_are_named_together() {
        let e = BackupdConfig::parse("KeysFile = /k\nServer\n{\n}\n", "m.conf").unwrap_err();
        match &e {
            ConfigError::Missing { keys, .. } => {
                assert!(keys.contains(&"UpdateStoreInterval".to_string()));
                assert!(keys.contains(&"StoreHostname".to_string()));
                assert!(!keys.contains(&"KeysFile".to_string()));
                assert_eq!(keys.len(), REQUIRED.len() - 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with("m.conf: "), "{e}");
        let no_locations = minimal("", "").replace("BackupLocations\n{\n}\n", "");
        let e = BackupdConfig::parse(&no_locations, "m.conf").unwrap_err();
        assert!(e.to_string().contains("BackupLocations"), "{e}");
        let no_server = minimal("", "").replace("Server\n{\n}\n", "");
        let e = BackupdConfig::parse(&no_server, "m.conf").unwrap_err();
        assert!(e.to_string().contains("Server"), "{e}");
        let e = BackupdConfig::parse(&minimal("", "a\n{\n}\n"), "m.conf").unwrap_err();
        assert!(
            e.to_string().contains("location 'a'") && e.to_string().contains("Path"),
            "{e}"
        );
    }

    #[test]
    fn log_destinations() {
        let c = BackupdConfig::parse(&minimal("", ""), "m.conf").unwrap();
        assert_eq!(c.log_to, None);
        assert_eq!(c.syslog_facility, bb_console::Facility::DAEMON);
        let c = BackupdConfig::parse(
            &minimal("LogTo = syslog, stderr\nSyslogFacility = local5\n", ""),
            "m.conf",
        )
        .unwrap();
        use bb_console::Destination::*;
        assert_eq!(c.log_to, Some(vec![Syslog, Console]));
        assert_eq!(c.syslog_facility.code(), 21);
        let e = BackupdConfig::parse(&minimal("LogTo = printer\n", ""), "m.conf").unwrap_err();
        assert!(e.to_string().contains("LogTo"), "{e}");
        let t = format!(
            "{}LogTo = \"journald\"\n[Server]\n[BackupLocations.a]\nPath = \"/a\"\n",
            minimal_toml()
        );
        let c = BackupdConfig::parse_toml(&t, "m.toml").unwrap();
        assert_eq!(c.log_to, Some(vec![Journald]));
    }

    #[test]
    fn every_known_key_is_typed_in_toml_too() {
        // The TOML struct and ROOT_KEYS must list the same keys: a key missing
        // from the struct would be refused as unknown.
        for k in ROOT_KEYS.iter().map(|d| &d.name) {
            let v = if [
                "AutomaticBackup",
                "ExtendedLogging",
                "LogAllFileAccess",
                "LogFileOverwrite",
                "NotifyAlways",
                "TcpNice",
            ]
            .contains(k)
            {
                "true"
            } else if [
                "SyncAllowScript",
                "ExtendedLogFile",
                "LogFile",
                "LogFileLevel",
                "LogTo",
                "SyslogFacility",
                "CommandSocket",
                "StoreObjectInfoFile",
                "NotifyScript",
                "KeysFile",
                "DataDirectory",
                "StoreHostname",
                "CertificateFile",
                "PrivateKeyFile",
                "TrustedCAsFile",
                "StatusFile",
            ]
            .contains(k)
            {
                "\"/x\""
            } else if *k == "MetricsListenAddress" {
                "\"127.0.0.1:9\""
            } else {
                "1"
            };
            let r: Result<TomlRoot, _> = toml::from_str(&format!("{k} = {v}\n"));
            assert!(r.is_ok(), "{k}: {r:?}");
        }
    }

    #[test]
    fn location_keys_are_path_and_the_rules() {
        let mut want = vec!["Path"];
        want.extend(Rule::ALL.iter().map(|r| r.key()));
        let have: Vec<&str> = LOCATION_KEYS.iter().map(|k| k.name).collect();
        assert_eq!(have, want);
    }

    #[test]
    fn load_picks_the_syntax_by_name() {
        let t = tempfile::tempdir().unwrap();
        let classic = t.path().join("bbackupd.conf");
        std::fs::write(&classic, minimal("", "a\n{\nPath = /x\n}\n")).unwrap();
        assert_eq!(
            BackupdConfig::load(&classic).unwrap().locations[0].name,
            "a"
        );
        let toml_file = t.path().join("bbackupd.toml");
        std::fs::write(
            &toml_file,
            format!(
                "{}[Server]\n[BackupLocations.b]\nPath = \"/b\"\n",
                minimal_toml()
            ),
        )
        .unwrap();
        assert_eq!(
            BackupdConfig::load(&toml_file).unwrap().locations[0].name,
            "b"
        );
        let e = BackupdConfig::load(&t.path().join("none.conf")).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
    }
}
