//! The accounts database, `accounts.txt` (store.md §2): which accounts exist and
//! on which disc set each lives.
//!
//! Owns: parsing (with file:line errors), lookup, add, remove, saving (sorted,
//! lowercase hex, atomic replace) and noticing that another process changed the
//! file. Must not know: what is inside an account (see `account`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Error, Result};

/// accounts.txt in memory: account ID -> disc set number.
#[derive(Debug, Clone)]
pub struct AccountDatabase {
    path: PathBuf,
    accounts: BTreeMap<u32, u32>,
    /// mtime and length of the file when last read or written.
    stamp: Option<(SystemTime, u64)>,
}

/// Strips a comment and surrounding blanks as the 0.13 config reader does
/// (store.md §1): `#` starts a comment when first or after a space or tab.
fn preprocess(line: &str) -> &str {
    let line = line.trim_end_matches('\r');
    let bytes = line.as_bytes();
    let mut end = line.len();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
            end = i;
            break;
        }
    }
    line[..end].trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r')
}

/// `sscanf(line, "%x:%d")` as 0.13 reads a line: leading blanks and a `0x`
/// prefix are tolerated, and so (like sscanf) is anything after the number.
fn parse_line(line: &str) -> Option<(u32, u32)> {
    let s = line.trim_start();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let hex_len = s.bytes().take_while(u8::is_ascii_hexdigit).count();
    if hex_len == 0 {
        return None;
    }
    let id = u32::from_str_radix(&s[..hex_len], 16).ok()?;
    let s = s[hex_len..].strip_prefix(':')?.trim_start();
    let s = s.strip_prefix('+').unwrap_or(s);
    let dec_len = s.bytes().take_while(u8::is_ascii_digit).count();
    if dec_len == 0 {
        return None;
    }
    let set = s[..dec_len].parse::<u32>().ok()?;
    Some((id, set))
}

fn stamp_of(path: &Path) -> Result<Option<(SystemTime, u64)>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some((
            m.modified().map_err(|e| Error::io("stat", path, e))?,
            m.len(),
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("stat", path, e)),
    }
}

impl AccountDatabase {
    /// Parses accounts.txt text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<BTreeMap<u32, u32>> {
        let mut accounts = BTreeMap::new();
        for (i, raw) in text.split('\n').enumerate() {
            let line = preprocess(raw);
            if line.is_empty() {
                continue;
            }
            let (id, set) = parse_line(line).ok_or_else(|| Error::Config {
                file: file.to_string(),
                line: i + 1,
                message: format!("expected <hex account id>:<disc set>, found {line:?}"),
            })?;
            // 0.13 keeps the last line for an ID; so do we.
            accounts.insert(id, set);
        }
        Ok(accounts)
    }

    /// Reads the database at `path`.
    pub fn load(path: impl Into<PathBuf>) -> Result<AccountDatabase> {
        let path = path.into();
        let stamp = stamp_of(&path)?;
        let text = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        let text = String::from_utf8_lossy(&text);
        let accounts = Self::parse(&text, &path.display().to_string())?;
        Ok(AccountDatabase {
            path,
            accounts,
            stamp,
        })
    }

    /// An empty database that will be written to `path` by `save` (0.13's
    /// `bbstoreaccounts` creates the file when it is missing).
    pub fn empty(path: impl Into<PathBuf>) -> AccountDatabase {
        AccountDatabase {
            path: path.into(),
            accounts: BTreeMap::new(),
            stamp: None,
        }
    }

    /// Loads `path`, or starts empty if it does not exist.
    pub fn load_or_empty(path: impl Into<PathBuf>) -> Result<AccountDatabase> {
        let path = path.into();
        if stamp_of(&path)?.is_none() {
            return Ok(Self::empty(path));
        }
        Self::load(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The disc set of `account`, if it exists.
    pub fn get(&self, account: u32) -> Option<u32> {
        self.accounts.get(&account).copied()
    }

    pub fn contains(&self, account: u32) -> bool {
        self.accounts.contains_key(&account)
    }

    /// (account, disc set) in account order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.accounts.iter().map(|(&a, &s)| (a, s))
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Adds an account (in memory; `save` writes it).
    pub fn add(&mut self, account: u32, disc_set: u32) -> Result<()> {
        if self.accounts.contains_key(&account) {
            return Err(Error::AccountExists {
                account,
                detail: format!("already in {}", self.path.display()),
            });
        }
        self.accounts.insert(account, disc_set);
        Ok(())
    }

    /// Removes an account (in memory; `save` writes it).
    pub fn remove(&mut self, account: u32) -> Result<()> {
        self.accounts
            .remove(&account)
            .map(|_| ())
            .ok_or(Error::AccountNotFound { account })
    }

    /// The file's text: `<lowercase hex id>:<set>\n` per account, sorted (store.md §2).
    pub fn render(&self) -> String {
        self.accounts
            .iter()
            .map(|(a, s)| format!("{a:x}:{s}\n"))
            .collect()
    }

    /// Writes the file atomically: a temporary next to it, fsync, rename.
    pub fn save(&mut self) -> Result<()> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".new");
        let tmp = PathBuf::from(tmp);
        let result = (|| {
            let mut f = fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
            f.write_all(self.render().as_bytes())
                .map_err(|e| Error::io("write", &tmp, e))?;
            f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
            fs::rename(&tmp, &self.path).map_err(|e| Error::io("rename over", &self.path, e))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename durable; failure here is not worth failing the save for.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.stamp = stamp_of(&self.path)?;
        Ok(())
    }

    /// Re-reads the file if its mtime or length changed since we last read or wrote
    /// it (the server does this before each login). Returns true if it re-read.
    pub fn reload_if_changed(&mut self) -> Result<bool> {
        let now = stamp_of(&self.path)?;
        if now == self.stamp {
            return Ok(false);
        }
        let fresh = Self::load(self.path.clone())?;
        *self = fresh;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_sscanf() {
        let m = AccountDatabase::parse(
            "1:0\n# comment\n\n  0x2:1   \r\nA:2 trailing\n1234567:0\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            vec![(1, 0), (2, 1), (0xa, 2), (0x1234567, 0)]
        );
        for bad in ["x:1", "1", "1:", "1;2", ":3", "100000000:0", "1:-1"] {
            let e = AccountDatabase::parse(&format!("1:0\n{bad}\n"), "accounts.txt")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("accounts.txt:2:"), "{bad}: {e}");
        }
    }

    #[test]
    fn save_sorted_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("accounts.txt");
        let mut db = AccountDatabase::load_or_empty(&p).unwrap();
        db.add(0x2, 1).unwrap();
        db.add(0x1, 0).unwrap();
        db.add(0xabc, 0).unwrap();
        assert!(db.add(0x1, 3).is_err());
        db.save().unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "1:0\n2:1\nabc:0\n");
        assert!(!db.reload_if_changed().unwrap());
        // Another process edits the file (a different length, so no mtime race).
        fs::write(&p, "1:0\n2:1\nabc:0\nff:1\n").unwrap();
        assert!(db.reload_if_changed().unwrap());
        assert_eq!(db.get(0xff), Some(1));
        db.remove(2).unwrap();
        assert!(db.remove(2).is_err());
        db.save().unwrap();
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "1:0\nff:1\nabc:0\n",
            "sorted by ID, not text"
        );
    }
}
