//! bbstored.conf: 0.13's keys, with the same syntax as raidfile.conf
//! (store.md §1), plus the settings that 0.13 lacked (CRL, timeouts).
//!
//! Owns the file's rules and defaults; knows nothing of sockets or stores. An
//! unknown key is an error with its line, as in 0.13 (which refuses keys that
//! its verification table does not list), so a typo never silently falls back
//! to a default.
//!
//! The same settings may come from a TOML file instead: [`ServerConfig::load`]
//! reads a path ending in `.toml` as TOML, with the same key names, defaults and
//! checks. The top-level keys stay top-level and the `Server` block becomes a
//! `[Server]` table; values are typed (paths and `ListenAddresses` are strings in
//! 0.13's syntax, times and `SSLSecurityLevel` integers, `ExtendedLogging` a
//! boolean):
//!
//! ```toml
//! RaidFileConf = "/etc/boxbackup/raidfile.conf"
//! AccountDatabase = "/etc/boxbackup/bbstored/accounts.txt"
//! TimeBetweenHousekeeping = 900
//!
//! [Server]
//! ListenAddresses = "inet:backup.example.com"
//! CertificateFile = "/etc/boxbackup/bbstored/backup.example.com-cert.pem"
//! PrivateKeyFile = "/etc/boxbackup/bbstored/backup.example.com-key.pem"
//! TrustedCAsFile = "/etc/boxbackup/bbstored/clientCA.pem"
//! ```
//!
//! Errors in either form read `file:line: message`. Every key, its default and
//! which are ours: docs/store.md, "bbstored.conf".

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bb_console::{Destination, Facility, parse_destinations};
use bb_format::clidoc::Key as KeyDoc;
use bb_raid::config::{Block, Key, parse, parse_c_int};
use serde::Deserialize;
use toml::Spanned;

/// The default port of Box Backup (protocol.md §1.1).
pub const DEFAULT_PORT: u16 = 2201;
/// 0.13's default config file.
pub const DEFAULT_CONFIG: &str = "/etc/boxbackup/bbstored.conf";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Syntax(#[from] bb_raid::Error),
    #[error("{file}:{line}: {message}")]
    Bad {
        file: String,
        line: usize,
        message: String,
    },
}

/// Everything bbstored.conf says.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub raidfile_conf: PathBuf,
    pub account_database: PathBuf,
    pub extended_logging: bool,
    /// Ours: `LogTo`, where log lines go; `None`: the console in the
    /// foreground, syslog when detached (0.13's destinations).
    pub log_to: Option<Vec<Destination>>,
    /// Ours: `SyslogFacility` (default daemon, 0.13's).
    pub syslog_facility: Facility,
    pub time_between_housekeeping: Duration,
    pub pid_file: Option<PathBuf>,
    pub user: Option<String>,
    /// The `ListenAddresses` text, resolved by [`ServerConfig::listen_addrs`].
    pub listen_addresses: Vec<(String, u16)>,
    pub certificate_file: PathBuf,
    pub private_key_file: PathBuf,
    pub trusted_cas_file: PathBuf,
    /// OpenSSL's security level in 0.13; kept so 0.13 files load. rustls always
    /// enforces at least what level 2 means (RSA >= 2048, no SHA-1).
    pub ssl_security_level: Option<i64>,
    /// Ours: a CRL (PEM or DER) of the client CA; re-read on SIGHUP.
    pub crl_file: Option<PathBuf>,
    /// Ours: a session that sends nothing for this long is closed (0.13: 15 min).
    pub idle_timeout: Duration,
    /// Ours: the longest wait for any one read or write inside a command,
    /// including draining a command stream (0.13 drained forever).
    pub operation_timeout: Duration,
    /// Ours: on SIGTERM, how long sessions may take to finish their command.
    pub shutdown_grace: Duration,
    /// Ours: `Server.MetricsListenAddress`, where Prometheus metrics are
    /// served (an IP literal and port); none = no metrics listener.
    pub metrics_listen_address: Option<SocketAddr>,
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

    fn check_keys(
        &self,
        b: &Block,
        allowed: &[KeyDoc],
        blocks: &[&str],
    ) -> Result<(), ConfigError> {
        if let Some(k) = b
            .keys
            .iter()
            .find(|k| !allowed.iter().any(|a| a.name == k.name))
        {
            return Err(self.bad(k.line, format!("unknown key '{}'", k.name)));
        }
        if let Some(x) = b.blocks.iter().find(|x| !blocks.contains(&x.name.as_str())) {
            return Err(self.bad(x.line, format!("unknown block '{}'", x.name)));
        }
        Ok(())
    }

    fn required<'b>(&self, b: &'b Block, name: &str) -> Result<&'b Key, ConfigError> {
        b.key(name).ok_or_else(|| {
            let line = b.line.max(1);
            let what = if b.name.is_empty() {
                "the file".to_string()
            } else {
                format!("block '{}'", b.name)
            };
            self.bad(line, format!("{what} lacks the required key '{name}'"))
        })
    }

    fn path(&self, k: &Key) -> Result<PathBuf, ConfigError> {
        self.path_at(&k.name, &k.value, k.line)
    }

    fn path_at(&self, name: &str, value: &str, line: usize) -> Result<PathBuf, ConfigError> {
        if value.is_empty() {
            return Err(self.bad(line, format!("'{name}' is empty")));
        }
        Ok(PathBuf::from(value))
    }

    fn int(&self, k: &Key) -> Result<i64, ConfigError> {
        parse_c_int(&k.value).ok_or_else(|| {
            self.bad(
                k.line,
                format!("'{}' must be an integer, not '{}'", k.name, k.value),
            )
        })
    }

    fn seconds(&self, k: Option<&Key>, default: u64) -> Result<Duration, ConfigError> {
        match k {
            None => Ok(Duration::from_secs(default)),
            Some(k) => self.seconds_at(&k.name, self.int(k)?, k.line),
        }
    }

    fn seconds_at(&self, name: &str, v: i64, line: usize) -> Result<Duration, ConfigError> {
        if v < 0 {
            return Err(self.bad(line, format!("'{name}' must not be negative")));
        }
        Ok(Duration::from_secs(v as u64))
    }

    /// 0.13's boolean: `yes`/`true`/`1` (any case) or `no`/`false`/`0`.
    fn log_to(&self, v: &str, line: usize) -> Result<Vec<Destination>, ConfigError> {
        parse_destinations(v).map_err(|e| self.bad(line, format!("LogTo: {e}")))
    }

    fn facility(&self, v: &str, line: usize) -> Result<Facility, ConfigError> {
        Facility::by_name(v).map_err(|e| self.bad(line, format!("SyslogFacility: {e}")))
    }

    fn boolean(&self, k: &Key) -> Result<bool, ConfigError> {
        match k.value.to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" => Ok(true),
            "no" | "false" | "0" => Ok(false),
            _ => Err(self.bad(
                k.line,
                format!("'{}' must be yes or no, not '{}'", k.name, k.value),
            )),
        }
    }

    /// `MetricsListenAddress`: see [`bb_proto::metrics::parse_listen_address`].
    fn metrics_at(&self, value: &str, line: usize) -> Result<SocketAddr, ConfigError> {
        bb_proto::metrics::parse_listen_address(value)
            .map_err(|m| self.bad(line, format!("MetricsListenAddress: {m}")))
    }

    /// `inet:host[:port][,inet:host[:port]...]`.
    fn listen(&self, k: &Key) -> Result<Vec<(String, u16)>, ConfigError> {
        self.listen_at(&k.value, k.line)
    }

    fn listen_at(&self, value: &str, line: usize) -> Result<Vec<(String, u16)>, ConfigError> {
        let mut out = Vec::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some(rest) = item.strip_prefix("inet:") else {
                return Err(self.bad(
                    line,
                    format!("listen address '{item}' must be inet:host[:port] (unix: sockets are not supported)"),
                ));
            };
            let (host, port) = match rest.rsplit_once(':') {
                // A bare IPv6 address has colons of its own; take it whole.
                Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                    let p: u16 = p
                        .parse()
                        .map_err(|_| self.bad(line, format!("bad port '{p}' in '{item}'")))?;
                    (
                        h.trim_start_matches('[').trim_end_matches(']').to_string(),
                        p,
                    )
                }
                _ => (rest.to_string(), DEFAULT_PORT),
            };
            if host.is_empty() {
                return Err(self.bad(line, format!("no host in '{item}'")));
            }
            out.push((host, port));
        }
        if out.is_empty() {
            return Err(self.bad(line, "ListenAddresses names no address"));
        }
        Ok(out)
    }
}

/// Top-level keys: 0.13's, then ours. The reader accepts exactly these, and
/// bbstored.conf(5) is generated from them.
#[rustfmt::skip]
pub const ROOT_KEYS: &[KeyDoc] = &[
    KeyDoc::new("RaidFileConf", "path", "The raidfile.conf that describes the disc sets (default /etc/boxbackup/raidfile.conf)."),
    KeyDoc::new("AccountDatabase", "path", "The accounts.txt file that bbstoreaccounts maintains: account number, disc set. Required."),
    KeyDoc::new("ExtendedLogging", "yes|no", "Log every protocol command and reply."),
    KeyDoc::new("TimeBetweenHousekeeping", "seconds", "How often housekeeping runs over every account: old and deleted files go once an account is over its soft limit (default 900)."),
    // Ours:
    KeyDoc::new("LogTo", "console|syslog|journald|none,...", "Where the log goes; default: the console in the foreground, syslog when detached (ours)."),
    KeyDoc::new("SyslogFacility", "name", "The syslog facility: daemon (default, as 0.13), user, local0..local7 (ours)."),
    KeyDoc::new("IdleTimeout", "seconds", "Close a session whose client sends nothing for this long (ours)."),
    KeyDoc::new("OperationTimeout", "seconds", "Give up on a read or write to a client that stalls this long (ours)."),
    KeyDoc::new("ShutdownGracePeriod", "seconds", "On SIGTERM, how long running sessions get to finish their command (ours)."),
];

/// Keys of the Server block.
#[rustfmt::skip]
pub const SERVER_KEYS: &[KeyDoc] = &[
    KeyDoc::new("PidFile", "path", "Write the server's process id here."),
    KeyDoc::new("User", "name", "Run as this user once the port is bound and the pid file written (bbstoreaccounts too), as 0.13 does; looked up in /etc/passwd."),
    KeyDoc::new("ListenAddresses", "inet:host[:port],...", "Where to listen, e.g. inet:0.0.0.0 or inet:backup.example.com:2201. Required."),
    KeyDoc::new("CertificateFile", "path", "The server's certificate, signed by the server CA (bbstored-certs sign-server). Required."),
    KeyDoc::new("PrivateKeyFile", "path", "The private key of CertificateFile. Required."),
    KeyDoc::new("TrustedCAsFile", "path", "The client CA certificate: clients must present a certificate it signed. Required."),
    KeyDoc::new("SSLSecurityLevel", "number", "Accepted for 0.13 compatibility; the TLS settings are fixed."),
    // Ours:
    KeyDoc::new("CRLFile", "path", "A certificate revocation list of the client CA; revoked clients are refused (ours)."),
    KeyDoc::new("MetricsListenAddress", "ip:port", "Serve Prometheus metrics over HTTP here, e.g. 127.0.0.1:9180; none by default (ours, see docs/operations.md)."),
];

/// The TOML form: 0.13's key names, typed. Field names are the keys themselves so
/// that serde's "unknown field" message lists exactly what a user may write.
#[allow(non_snake_case)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlRoot {
    RaidFileConf: Option<Spanned<String>>,
    AccountDatabase: Option<Spanned<String>>,
    ExtendedLogging: Option<bool>,
    LogTo: Option<Spanned<String>>,
    SyslogFacility: Option<Spanned<String>>,
    TimeBetweenHousekeeping: Option<Spanned<i64>>,
    IdleTimeout: Option<Spanned<i64>>,
    OperationTimeout: Option<Spanned<i64>>,
    ShutdownGracePeriod: Option<Spanned<i64>>,
    Server: Option<Spanned<TomlServer>>,
}

#[allow(non_snake_case)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlServer {
    PidFile: Option<Spanned<String>>,
    User: Option<String>,
    ListenAddresses: Option<Spanned<String>>,
    CertificateFile: Option<Spanned<String>>,
    PrivateKeyFile: Option<Spanned<String>>,
    TrustedCAsFile: Option<Spanned<String>>,
    SSLSecurityLevel: Option<i64>,
    CRLFile: Option<Spanned<String>>,
    MetricsListenAddress: Option<Spanned<String>>,
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

impl ServerConfig {
    /// Parses the text of a bbstored.conf; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<ServerConfig, ConfigError> {
        let root = parse(text, file)?;
        let r = Reader { file };
        r.check_keys(&root, ROOT_KEYS, &["Server"])?;
        let server = root
            .blocks
            .iter()
            .find(|b| b.name == "Server")
            .ok_or_else(|| r.bad(1, "the file lacks the 'Server' block"))?;
        r.check_keys(server, SERVER_KEYS, &[])?;
        let opt_path = |name: &str| server.key(name).map(|k| r.path(k)).transpose();
        let ssl_security_level = server
            .key("SSLSecurityLevel")
            .map(|k| r.int(k))
            .transpose()?;
        Ok(ServerConfig {
            raidfile_conf: match root.key("RaidFileConf") {
                Some(k) => r.path(k)?,
                None => PathBuf::from("/etc/boxbackup/raidfile.conf"),
            },
            account_database: r.path(r.required(&root, "AccountDatabase")?)?,
            extended_logging: root
                .key("ExtendedLogging")
                .map(|k| r.boolean(k))
                .transpose()?
                .unwrap_or(false),
            log_to: root
                .key("LogTo")
                .map(|k| r.log_to(&k.value, k.line))
                .transpose()?,
            syslog_facility: root
                .key("SyslogFacility")
                .map(|k| r.facility(&k.value, k.line))
                .transpose()?
                .unwrap_or_default(),
            time_between_housekeeping: r.seconds(root.key("TimeBetweenHousekeeping"), 900)?,
            pid_file: opt_path("PidFile")?,
            user: server
                .key("User")
                .map(|k| k.value.clone())
                .filter(|u| !u.is_empty()),
            listen_addresses: r.listen(r.required(server, "ListenAddresses")?)?,
            certificate_file: r.path(r.required(server, "CertificateFile")?)?,
            private_key_file: r.path(r.required(server, "PrivateKeyFile")?)?,
            trusted_cas_file: r.path(r.required(server, "TrustedCAsFile")?)?,
            ssl_security_level,
            crl_file: opt_path("CRLFile")?,
            idle_timeout: r.seconds(root.key("IdleTimeout"), 900)?,
            operation_timeout: r.seconds(root.key("OperationTimeout"), 900)?,
            shutdown_grace: r.seconds(root.key("ShutdownGracePeriod"), 30)?,
            metrics_listen_address: server
                .key("MetricsListenAddress")
                .map(|k| r.metrics_at(&k.value, k.line))
                .transpose()?,
        })
    }

    /// Parses the TOML form (see the module docs); `file` names it in errors.
    pub fn parse_toml(text: &str, file: &str) -> Result<ServerConfig, ConfigError> {
        let r = Reader { file };
        let line = |span: std::ops::Range<usize>| line_of(text, span.start);
        let root: TomlRoot = toml::from_str(text)
            .map_err(|e| r.bad(e.span().map_or(1, line), e.message().trim_end().to_string()))?;
        let server = root
            .Server
            .as_ref()
            .ok_or_else(|| r.bad(1, "the file lacks the [Server] table"))?;
        let server_line = line(server.span());
        let server = server.get_ref();
        let path = |name: &str, v: &Spanned<String>| r.path_at(name, v.get_ref(), line(v.span()));
        let lacks = |name: &str, in_server: bool| {
            let (at, what) = if in_server {
                (server_line, "table [Server]")
            } else {
                (1, "the file")
            };
            r.bad(at, format!("{what} lacks the required key '{name}'"))
        };
        let required = |name: &str, v: &Option<Spanned<String>>, in_server: bool| match v {
            Some(v) => path(name, v),
            None => Err(lacks(name, in_server)),
        };
        let seconds = |name: &str, v: &Option<Spanned<i64>>, default: u64| match v {
            Some(v) => r.seconds_at(name, *v.get_ref(), line(v.span())),
            None => Ok(Duration::from_secs(default)),
        };
        let listen = server
            .ListenAddresses
            .as_ref()
            .ok_or_else(|| lacks("ListenAddresses", true))?;
        Ok(ServerConfig {
            raidfile_conf: match &root.RaidFileConf {
                Some(v) => path("RaidFileConf", v)?,
                None => PathBuf::from("/etc/boxbackup/raidfile.conf"),
            },
            account_database: required("AccountDatabase", &root.AccountDatabase, false)?,
            extended_logging: root.ExtendedLogging.unwrap_or(false),
            log_to: root
                .LogTo
                .as_ref()
                .map(|v| r.log_to(v.get_ref(), line(v.span())))
                .transpose()?,
            syslog_facility: root
                .SyslogFacility
                .as_ref()
                .map(|v| r.facility(v.get_ref(), line(v.span())))
                .transpose()?
                .unwrap_or_default(),
            time_between_housekeeping: seconds(
                "TimeBetweenHousekeeping",
                &root.TimeBetweenHousekeeping,
                900,
            )?,
            pid_file: server
                .PidFile
                .as_ref()
                .map(|v| path("PidFile", v))
                .transpose()?,
            user: server.User.clone().filter(|u| !u.is_empty()),
            listen_addresses: r.listen_at(listen.get_ref(), line(listen.span()))?,
            certificate_file: required("CertificateFile", &server.CertificateFile, true)?,
            private_key_file: required("PrivateKeyFile", &server.PrivateKeyFile, true)?,
            trusted_cas_file: required("TrustedCAsFile", &server.TrustedCAsFile, true)?,
            ssl_security_level: server.SSLSecurityLevel,
            crl_file: server
                .CRLFile
                .as_ref()
                .map(|v| path("CRLFile", v))
                .transpose()?,
            idle_timeout: seconds("IdleTimeout", &root.IdleTimeout, 900)?,
            operation_timeout: seconds("OperationTimeout", &root.OperationTimeout, 900)?,
            shutdown_grace: seconds("ShutdownGracePeriod", &root.ShutdownGracePeriod, 30)?,
            metrics_listen_address: server
                .MetricsListenAddress
                .as_ref()
                .map(|v| r.metrics_at(v.get_ref(), line(v.span())))
                .transpose()?,
        })
    }

    /// Reads and parses a bbstored.conf: the TOML form if the name ends in
    /// `.toml`, else 0.13's.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        if path.extension().is_some_and(|e| e == "toml") {
            ServerConfig::parse_toml(&text, &file)
        } else {
            ServerConfig::parse(&text, &file)
        }
    }

    /// The socket addresses to listen on (host names resolved now).
    pub fn listen_addrs(&self) -> std::io::Result<Vec<SocketAddr>> {
        let mut out = Vec::new();
        for (host, port) in &self.listen_addresses {
            out.extend((host.as_str(), *port).to_socket_addrs()?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = "# bbstored.conf for the fixture store
RaidFileConf = /s/raidfile.conf
AccountDatabase = /s/accounts.txt
TimeBetweenHousekeeping = 900
Server
{
\tPidFile = /s/bbstored.pid
\tListenAddresses = inet:127.0.0.1:22011
\tCertificateFile = /c/localhost-cert.pem
\tPrivateKeyFile = /c/localhost-key.pem
\tTrustedCAsFile = /c/clientCA.pem
\tSSLSecurityLevel = 2
}
";

    #[test]
    fn reads_the_fixture_config() {
        let c = ServerConfig::parse(FIXTURE, "bbstored.conf").unwrap();
        assert_eq!(c.raidfile_conf, PathBuf::from("/s/raidfile.conf"));
        assert_eq!(c.account_database, PathBuf::from("/s/accounts.txt"));
        assert_eq!(c.time_between_housekeeping, Duration::from_secs(900));
        assert_eq!(c.listen_addresses, vec![("127.0.0.1".to_string(), 22011)]);
        assert_eq!(c.ssl_security_level, Some(2));
        assert_eq!(c.idle_timeout, Duration::from_secs(900));
        assert_eq!(c.crl_file, None);
        assert_eq!(
            c.listen_addrs().unwrap(),
            vec!["127.0.0.1:22011".parse().unwrap()]
        );
    }

    #[test]
    fn log_destinations() {
        let c = ServerConfig::parse(FIXTURE, "f").unwrap();
        assert_eq!((c.log_to, c.syslog_facility), (None, Facility::DAEMON));
        let t = FIXTURE.replace(
            "TimeBetweenHousekeeping = 900\n",
            "LogTo = journald\nSyslogFacility = local3\n",
        );
        let c = ServerConfig::parse(&t, "f").unwrap();
        assert_eq!(c.log_to, Some(vec![Destination::Journald]));
        assert_eq!(c.syslog_facility.code(), 19);
        let e = ServerConfig::parse(&t.replace("journald", "paper"), "f").unwrap_err();
        assert!(e.to_string().starts_with("f:4: LogTo"), "{e}");
        let toml = "AccountDatabase = \"/a\"\nLogTo = \"stderr, syslog\"\nSyslogFacility = \"daemon\"\n\
            [Server]\nListenAddresses = \"inet:127.0.0.1\"\nCertificateFile = \"/c\"\n\
            PrivateKeyFile = \"/k\"\nTrustedCAsFile = \"/t\"\n";
        let c = ServerConfig::parse_toml(toml, "f.toml").unwrap();
        assert_eq!(
            c.log_to,
            Some(vec![Destination::Console, Destination::Syslog])
        );
        let e =
            ServerConfig::parse_toml(&toml.replace("\"daemon\"", "\"x\""), "f.toml").unwrap_err();
        assert!(e.to_string().starts_with("f.toml:3: SyslogFacility"), "{e}");
    }

    #[test]
    fn default_port_and_several_addresses() {
        let t = FIXTURE.replace("inet:127.0.0.1:22011", "inet:127.0.0.1, inet:[::1]:7");
        let c = ServerConfig::parse(&t, "f").unwrap();
        assert_eq!(
            c.listen_addresses,
            vec![
                ("127.0.0.1".to_string(), DEFAULT_PORT),
                ("::1".to_string(), 7)
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                FIXTURE.replace("TimeBetweenHousekeeping", "TimeBetweenHousekeping"),
                4,
                "unknown key",
            ),
            (FIXTURE.replace("= 900", "= soon"), 4, "integer"),
            (
                FIXTURE.replace("\tTrustedCAsFile = /c/clientCA.pem\n", ""),
                5,
                "TrustedCAsFile",
            ),
            (
                FIXTURE.replace("inet:127.0.0.1:22011", "unix:/tmp/s"),
                8,
                "unix",
            ),
            (
                FIXTURE.replace("inet:127.0.0.1:22011", "inet:127.0.0.1:99999"),
                8,
                "port",
            ),
            (
                FIXTURE.replace("AccountDatabase = /s/accounts.txt\n", ""),
                1,
                "AccountDatabase",
            ),
        ];
        for (text, line, what) in cases {
            let e = ServerConfig::parse(&text, "b.conf")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("b.conf:{line}:")), "{e}");
            assert!(e.contains(what), "{e}");
        }
        assert!(ServerConfig::parse("Server\n{\n", "x").is_err());
    }

    const FIXTURE_TOML: &str = "# bbstored.toml for the fixture store
RaidFileConf = \"/s/raidfile.conf\"
AccountDatabase = \"/s/accounts.txt\"
TimeBetweenHousekeeping = 900

[Server]
PidFile = \"/s/bbstored.pid\"
ListenAddresses = \"inet:127.0.0.1:22011\"
CertificateFile = \"/c/localhost-cert.pem\"
PrivateKeyFile = \"/c/localhost-key.pem\"
TrustedCAsFile = \"/c/clientCA.pem\"
SSLSecurityLevel = 2
";

    #[test]
    fn toml_form_reads_the_same() {
        let classic = ServerConfig::parse(FIXTURE, "bbstored.conf").unwrap();
        let toml = ServerConfig::parse_toml(FIXTURE_TOML, "bbstored.toml").unwrap();
        assert_eq!(toml, classic);

        // Every key, ours included, in both forms.
        let all = FIXTURE
            .replace(
                "TimeBetweenHousekeeping = 900\n",
                "TimeBetweenHousekeeping = 60\nExtendedLogging = yes\nIdleTimeout = 5\n\
                 OperationTimeout = 6\nShutdownGracePeriod = 0\n",
            )
            .replace(
                "\tSSLSecurityLevel = 2\n",
                "\tSSLSecurityLevel = 1\n\tUser = bbs\n\tCRLFile = /c/crl.pem\n\
                 \tMetricsListenAddress = 127.0.0.1:9180\n",
            );
        let all_toml = FIXTURE_TOML
            .replace(
                "TimeBetweenHousekeeping = 900\n",
                "TimeBetweenHousekeeping = 60\nExtendedLogging = true\nIdleTimeout = 5\n\
                 OperationTimeout = 6\nShutdownGracePeriod = 0\n",
            )
            .replace(
                "SSLSecurityLevel = 2\n",
                "SSLSecurityLevel = 1\nUser = \"bbs\"\nCRLFile = \"/c/crl.pem\"\n\
                 MetricsListenAddress = \"127.0.0.1:9180\"\n",
            );
        let a = ServerConfig::parse(&all, "a").unwrap();
        assert_eq!(ServerConfig::parse_toml(&all_toml, "a").unwrap(), a);
        assert!(a.extended_logging);
        assert_eq!(a.shutdown_grace, Duration::ZERO);
        assert_eq!(a.crl_file, Some(PathBuf::from("/c/crl.pem")));
        assert_eq!(
            a.metrics_listen_address,
            Some("127.0.0.1:9180".parse().unwrap())
        );
        assert_eq!(classic.metrics_listen_address, None);
        let bad = FIXTURE.replace(
            "\tSSLSecurityLevel = 2\n",
            "\tSSLSecurityLevel = 2\n\tMetricsListenAddress = localhost:9180\n",
        );
        let e = ServerConfig::parse(&bad, "m").unwrap_err().to_string();
        assert!(
            e.starts_with("m:13:") && e.contains("MetricsListenAddress"),
            "{e}"
        );

        // An inline table is a table too.
        let inline = "AccountDatabase = \"/a\"\nServer = { ListenAddresses = \"inet:h\", \
                      CertificateFile = \"c\", PrivateKeyFile = \"k\", TrustedCAsFile = \"t\" }\n";
        let c = ServerConfig::parse_toml(inline, "i").unwrap();
        assert_eq!(c.listen_addresses, vec![("h".to_string(), DEFAULT_PORT)]);
        assert_eq!(
            c.raidfile_conf,
            PathBuf::from("/etc/boxbackup/raidfile.conf")
        );
    }

    #[test]
    fn load_picks_the_form_by_name() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("bbstored.toml");
        std::fs::write(&t, FIXTURE_TOML).unwrap();
        let c = d.path().join("bbstored.conf");
        std::fs::write(&c, FIXTURE).unwrap();
        assert_eq!(
            ServerConfig::load(&t).unwrap(),
            ServerConfig::load(&c).unwrap()
        );
        // Each form refuses the other.
        std::fs::write(&c, FIXTURE_TOML).unwrap();
        assert!(ServerConfig::load(&c).is_err());
        std::fs::write(&t, FIXTURE).unwrap();
        let e = ServerConfig::load(&t).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:", t.display())), "{e}");
    }

    #[test]
    fn toml_errors_name_the_line() {
        let cases = [
            (
                FIXTURE_TOML.replace("TimeBetweenHousekeeping", "TimeBetweenHousekeping"),
                4,
                "unknown field `TimeBetweenHousekeping`",
            ),
            (
                FIXTURE_TOML.replace("PidFile", "PIDFile"),
                7,
                "unknown field `PIDFile`",
            ),
            (
                FIXTURE_TOML.replace("= 900", "= \"900\""),
                4,
                "expected i64",
            ),
            (FIXTURE_TOML.replace("= 900", "= -1"), 4, "negative"),
            (
                FIXTURE_TOML.replace("SSLSecurityLevel = 2", "SSLSecurityLevel = \"2\""),
                12,
                "expected i64",
            ),
            (
                format!("{FIXTURE_TOML}ExtendedLogging = \"yes\"\n"),
                13,
                "unknown field `ExtendedLogging`",
            ),
            (
                FIXTURE_TOML.replace("AccountDatabase = \"/s/accounts.txt\"\n", "") + "",
                1,
                "the file lacks the required key 'AccountDatabase'",
            ),
            (
                FIXTURE_TOML.replace("TrustedCAsFile = \"/c/clientCA.pem\"\n", ""),
                6,
                "table [Server] lacks the required key 'TrustedCAsFile'",
            ),
            (
                FIXTURE_TOML.replace("inet:127.0.0.1:22011", "unix:/tmp/s"),
                8,
                "unix",
            ),
            (
                FIXTURE_TOML.replace("\"/c/clientCA.pem\"", "\"\""),
                11,
                "empty",
            ),
            (FIXTURE_TOML.replace("[Server]", "[Srever]"), 6, "Srever"),
            // Several unknown keys: toml names the first in key order, not file order.
            (
                FIXTURE_TOML.replace("[Server]\n", ""),
                8,
                "unknown field `CertificateFile`",
            ),
            (
                FIXTURE_TOML.replace("900\n", "900\nRaidFileConf = \"/x\"\n"),
                5,
                "duplicate key",
            ),
            (FIXTURE_TOML.replace("= 900", "= "), 4, ""),
            (
                FIXTURE_TOML.split("[Server]").next().unwrap().to_string(),
                1,
                "lacks the [Server] table",
            ),
        ];
        let mut wrong = Vec::new();
        for (text, line, what) in cases {
            let e = ServerConfig::parse_toml(&text, "b.toml")
                .unwrap_err()
                .to_string();
            if !e.starts_with(&format!("b.toml:{line}:")) || !e.contains(what) {
                wrong.push(format!("wanted line {line} and {what:?}, got {e}"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert_eq!(line_of("a\nb\n", 2), 2);
        assert_eq!(line_of("a\nb\n", 99), 3);
    }
}
