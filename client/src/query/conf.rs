//! The few bbackupd.conf settings bbackupquery needs: the store's address, the
//! account, the TLS files, the keys file, the data directory and minimum file
//! age (compare's "modified after the last sync" hints), and the locations
//! (for `compare -a` / `-l`).
//!
//! TO BE REPLACED by `crate::config::BackupdConfig` (helper CONFIG) when it
//! lands: this is a deliberately small reader of 0.13's syntax (`Key = Value`
//! lines, `Name { ... }` blocks, `#` comments) without 0.13's verification of
//! every key.
//!
//! Must not know: the commands.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// One block of a 0.13 configuration file.
#[derive(Debug, Clone, Default)]
struct Block {
    keys: Vec<(String, String)>,
    subs: Vec<(String, Block)>,
}

impl Block {
    fn get(&self, k: &str) -> Option<&str> {
        self.keys
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    fn sub(&self, k: &str) -> Option<&Block> {
        self.subs.iter().find(|(n, _)| n == k).map(|(_, b)| b)
    }
}

/// What bbackupquery takes from bbackupd.conf.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    pub store_hostname: String,
    pub store_port: u16,
    pub account_number: u32,
    pub keys_file: PathBuf,
    pub certificate_file: PathBuf,
    pub private_key_file: PathBuf,
    pub trusted_cas_file: PathBuf,
    pub data_directory: PathBuf,
    pub minimum_file_age: Duration,
    pub keep_alive_time: Option<Duration>,
    /// `BackupLocations`: (name, path) in file order.
    pub locations: Vec<(String, PathBuf)>,
}

fn parse_blocks(text: &str, file: &str) -> Result<Block, String> {
    let mut stack: Vec<(String, Block)> = vec![(String::new(), Block::default())];
    let mut pending: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{file}:{}", n + 1);
        if line == "{" {
            let name = pending
                .take()
                .ok_or_else(|| format!("{}: '{{' without a block name", at()))?;
            stack.push((name, Block::default()));
        } else if line == "}" {
            if let Some(p) = pending.take() {
                return Err(format!("{}: '{p}' is neither a key nor a block", at()));
            }
            if stack.len() < 2 {
                return Err(format!("{}: unbalanced '}}'", at()));
            }
            let (name, b) = stack.pop().expect("checked above");
            stack.last_mut().expect("root").1.subs.push((name, b));
        } else if let Some((k, v)) = line.split_once('=') {
            if let Some(p) = pending.take() {
                return Err(format!("{}: '{p}' is neither a key nor a block", at()));
            }
            stack
                .last_mut()
                .expect("root")
                .1
                .keys
                .push((k.trim().to_string(), v.trim().to_string()));
        } else if let Some(name) = line.strip_suffix('{') {
            stack.push((name.trim().to_string(), Block::default()));
        } else {
            if let Some(p) = pending.replace(line.to_string()) {
                return Err(format!("{}: '{p}' is neither a key nor a block", at()));
            }
        }
    }
    if stack.len() != 1 || pending.is_some() {
        return Err(format!("{file}: unterminated block at end of file"));
    }
    Ok(stack.pop().expect("root").1)
}

fn number(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

impl QueryConfig {
    pub fn load(path: &Path) -> Result<QueryConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("Failed to open file: {}: {e}", path.display()))?;
        QueryConfig::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, file: &str) -> Result<QueryConfig, String> {
        let root = parse_blocks(text, file)?;
        let mut missing = Vec::new();
        let mut req = |k: &str| -> String {
            match root.get(k) {
                Some(v) => v.to_string(),
                None => {
                    missing.push(format!("<root>.{k} (key) is missing."));
                    String::new()
                }
            }
        };
        let host = req("StoreHostname");
        let account = req("AccountNumber");
        let keys = req("KeysFile");
        let cert = req("CertificateFile");
        let key = req("PrivateKeyFile");
        let cas = req("TrustedCAsFile");
        let data = req("DataDirectory");
        if !missing.is_empty() {
            return Err(missing.join("\n"));
        }
        let bad = |k: &str, v: &str| format!("<root>.{k}: '{v}' is not a valid number");
        let account_number = number(&account)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad("AccountNumber", &account))?;
        let store_port = match root.get("StorePort") {
            Some(p) => number(p)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| bad("StorePort", p))?,
            None => bb_remote::DEFAULT_PORT,
        };
        let secs = |k: &str| -> Result<Option<u64>, String> {
            root.get(k)
                .map(|v| number(v).ok_or_else(|| bad(k, v)))
                .transpose()
        };
        let minimum_file_age = Duration::from_secs(secs("MinimumFileAge")?.unwrap_or(0));
        let keep_alive_time = secs("KeepAliveTime")?
            .filter(|&s| s > 0)
            .map(Duration::from_secs);
        let locations = root
            .sub("BackupLocations")
            .map(|b| {
                b.subs
                    .iter()
                    .map(|(n, l)| (n.clone(), PathBuf::from(l.get("Path").unwrap_or(""))))
                    .collect()
            })
            .unwrap_or_default();
        Ok(QueryConfig {
            store_hostname: host,
            store_port,
            account_number,
            keys_file: keys.into(),
            certificate_file: cert.into(),
            private_key_file: key.into(),
            trusted_cas_file: cas.into(),
            data_directory: data.into(),
            minimum_file_age,
            keep_alive_time,
            locations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fixture_template() {
        let text = "StoreHostname = 127.0.0.1\nStorePort = 2201\nAccountNumber = 0x01234567\n\
            KeysFile = /k\nCertificateFile = /c\nPrivateKeyFile = /p\nTrustedCAsFile = /t\n\
            DataDirectory = /d\nMinimumFileAge = 6\n# comment\nServer\n{\n\tPidFile = /x\n}\n\
            BackupLocations\n{\n\tsource\n\t{\n\t\tPath = /src\n\t\tExcludeFile = /src/a\n\t}\n\
            \thome {\n\t\tPath = /home\n\t}\n}\n";
        let c = QueryConfig::parse(text, "t").unwrap();
        assert_eq!(c.account_number, 0x0123_4567);
        assert_eq!(c.store_port, 2201);
        assert_eq!(c.minimum_file_age, Duration::from_secs(6));
        assert_eq!(
            c.locations,
            vec![
                ("source".to_string(), PathBuf::from("/src")),
                ("home".to_string(), PathBuf::from("/home"))
            ]
        );
        assert!(QueryConfig::parse("junk\n", "t").is_err());
        let e = QueryConfig::parse("StoreHostname = x\n", "t").unwrap_err();
        assert!(e.contains("<root>.KeysFile (key) is missing."), "{e}");
    }
}
