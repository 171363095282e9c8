//! bbstored.conf: 0.13's keys, with the same syntax as raidfile.conf
//! (store.md §1), plus the settings that 0.13 lacked (CRL, timeouts).
//!
//! Owns the file's rules and defaults; knows nothing of sockets or stores. An
//! unknown key is an error with its line, as in 0.13 (which refuses keys that
//! its verification table does not list), so a typo never silently falls back
//! to a default.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bb_raid::config::{Block, Key, parse, parse_c_int};

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

    fn check_keys(&self, b: &Block, allowed: &[&str], blocks: &[&str]) -> Result<(), ConfigError> {
        if let Some(k) = b.keys.iter().find(|k| !allowed.contains(&k.name.as_str())) {
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
        if k.value.is_empty() {
            return Err(self.bad(k.line, format!("'{}' is empty", k.name)));
        }
        Ok(PathBuf::from(&k.value))
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
            Some(k) => {
                let v = self.int(k)?;
                if v < 0 {
                    return Err(self.bad(k.line, format!("'{}' must not be negative", k.name)));
                }
                Ok(Duration::from_secs(v as u64))
            }
        }
    }

    /// 0.13's boolean: `yes`/`true`/`1` (any case) or `no`/`false`/`0`.
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

    /// `inet:host[:port][,inet:host[:port]...]`.
    fn listen(&self, k: &Key) -> Result<Vec<(String, u16)>, ConfigError> {
        let mut out = Vec::new();
        for item in k.value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some(rest) = item.strip_prefix("inet:") else {
                return Err(self.bad(
                    k.line,
                    format!("listen address '{item}' must be inet:host[:port] (unix: sockets are not supported)"),
                ));
            };
            let (host, port) = match rest.rsplit_once(':') {
                // A bare IPv6 address has colons of its own; take it whole.
                Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                    let p: u16 = p
                        .parse()
                        .map_err(|_| self.bad(k.line, format!("bad port '{p}' in '{item}'")))?;
                    (
                        h.trim_start_matches('[').trim_end_matches(']').to_string(),
                        p,
                    )
                }
                _ => (rest.to_string(), DEFAULT_PORT),
            };
            if host.is_empty() {
                return Err(self.bad(k.line, format!("no host in '{item}'")));
            }
            out.push((host, port));
        }
        if out.is_empty() {
            return Err(self.bad(k.line, "ListenAddresses names no address"));
        }
        Ok(out)
    }
}

const ROOT_KEYS: &[&str] = &[
    "RaidFileConf",
    "AccountDatabase",
    "ExtendedLogging",
    "TimeBetweenHousekeeping",
    // Ours:
    "IdleTimeout",
    "OperationTimeout",
    "ShutdownGracePeriod",
];
const SERVER_KEYS: &[&str] = &[
    "PidFile",
    "User",
    "ListenAddresses",
    "CertificateFile",
    "PrivateKeyFile",
    "TrustedCAsFile",
    "SSLSecurityLevel",
    // Ours:
    "CRLFile",
];

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
        })
    }

    /// Reads and parses a bbstored.conf.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        ServerConfig::parse(&text, &file)
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
}
