//! Shared helpers for the golden tests: the bb013 fixture pack written by the
//! real C++ Box Backup 0.13 (`../shared/fixtures/bb013`, see its README).
//!
//! Store tarballs are unpacked in memory (no temp files, no shelling out) once
//! per test binary and cached. Each integration test binary compiles this module
//! separately and uses a different part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

use bb_format::Keys;

/// The account of the fixture stores.
pub const ACCOUNT_ID: u32 = 0x0123_4567;

/// The fixture pack: `$BB013_FIXTURES`, else `../shared/fixtures/bb013` next to
/// the repository.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("BB013_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/bb013"),
    }
}

/// Reads a file of the pack, e.g. `expected/single/info.txt`.
pub fn read_fixture(relative: &str) -> Vec<u8> {
    let path = fixtures_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

/// Reads a text file of the pack.
pub fn read_fixture_text(relative: &str) -> String {
    String::from_utf8(read_fixture(relative)).expect("fixture text is UTF-8")
}

/// The pack's keys file (byte i = i & 0xff).
pub fn keys() -> Keys {
    Keys::from_bytes(&read_fixture("keys/01234567-FileEncKeys.raw")).expect("fixture keys file")
}

/// Unpacks a `.tar.gz` of the pack into memory: regular files only, keyed by
/// their path inside the archive (e.g. `store-single/disc0/backup/01234567/o01.rfw`).
pub fn unpack(tarball: &str) -> HashMap<String, Vec<u8>> {
    let gz = flate2::read::GzDecoder::new(std::io::Cursor::new(read_fixture(tarball)));
    let mut archive = tar::Archive::new(gz);
    let mut files = HashMap::new();
    for entry in archive.entries().expect("reading tar") {
        let mut entry = entry.expect("tar entry");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .expect("tar path")
            .to_string_lossy()
            .into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("tar entry data");
        files.insert(path, bytes);
    }
    files
}

/// `store-single.tar.gz` unpacked (cached for the test binary).
pub fn unpack_store_single() -> &'static HashMap<String, Vec<u8>> {
    static FILES: OnceLock<HashMap<String, Vec<u8>>> = OnceLock::new();
    FILES.get_or_init(|| unpack("store-single.tar.gz"))
}

/// Object ID -> path under the account root, without the RaidFile suffix
/// (`store.md` §3.2): lowest byte is the leaf `oXX`, the other bytes from least
/// to most significant give the directories, stopping at the first zero rest.
pub fn object_path(id: i64) -> String {
    let mut v = id as u64;
    let leaf = format!("o{:02x}", v & 0xff);
    v >>= 8;
    let mut path = String::new();
    while v != 0 {
        path.push_str(&format!("{:02x}/", v & 0xff));
        v >>= 8;
    }
    path + &leaf
}

/// Inverse of [`object_path`] (with or without the `.rfw` suffix).
pub fn object_id_from_path(path: &str) -> Option<i64> {
    let path = path.strip_suffix(".rfw").unwrap_or(path);
    let mut parts: Vec<&str> = path.split('/').collect();
    let leaf = parts.pop()?.strip_prefix('o')?;
    let mut id = u64::from_str_radix(leaf, 16).ok()?;
    if leaf.len() != 2 {
        return None;
    }
    for (i, dir) in parts.iter().enumerate() {
        if dir.len() != 2 {
            return None;
        }
        id |= u64::from_str_radix(dir, 16).ok()? << (8 * (i + 1));
    }
    Some(id as i64)
}

/// The account directory of the non-RAID fixture store, as plain write files.
#[derive(Debug)]
pub struct SingleStore {
    files: &'static HashMap<String, Vec<u8>>,
}

impl SingleStore {
    pub const ROOT: &'static str = "store-single/disc0/backup/01234567/";

    pub fn get() -> SingleStore {
        SingleStore {
            files: unpack_store_single(),
        }
    }

    /// A file of the account root by RaidFile name plus suffix, e.g. `info.rfw`.
    pub fn account_file(&self, name: &str) -> Option<&'static [u8]> {
        self.files
            .get(&format!("{}{name}", Self::ROOT))
            .map(Vec::as_slice)
    }

    /// The stored bytes of an object.
    pub fn object(&self, id: i64) -> Option<&'static [u8]> {
        self.account_file(&format!("{}.rfw", object_path(id)))
    }

    /// Every object of the account, sorted by ID.
    pub fn objects(&self) -> Vec<(i64, &'static [u8])> {
        let mut v: Vec<(i64, &'static [u8])> = self
            .files
            .iter()
            .filter_map(|(path, bytes)| {
                let rel = path.strip_prefix(Self::ROOT)?;
                Some((object_id_from_path(rel)?, bytes.as_slice()))
            })
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }
}

/// One line of `expected/manifest-round*.txt`: path, type letter, permission
/// bits (octal, no type), uid, gid, symlink target and xattrs (values decoded
/// from hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub path: Vec<u8>,
    pub kind: char,
    pub perms: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub link_target: Option<Vec<u8>>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Undoes the manifest's path escaping (`\xHH`, `\\`).
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).expect("\\xHH escape"));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Parses a manifest, keyed by path (`.` is the backed-up location itself).
pub fn manifest(round: u32) -> HashMap<Vec<u8>, ManifestEntry> {
    let text = read_fixture_text(&format!("expected/manifest-round{round}.txt"));
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(' ').collect();
        let (uid, gid) = f[3].split_once(':').expect("uid:gid");
        let mut e = ManifestEntry {
            path: unescape(f[0]),
            kind: f[1].chars().next().expect("type"),
            perms: u16::from_str_radix(f[2], 8).expect("mode"),
            uid: uid.parse().expect("uid"),
            gid: gid.parse().expect("gid"),
            mtime_ns: f[5].parse().expect("mtime"),
            link_target: None,
            xattrs: Vec::new(),
        };
        for field in &f[6..] {
            if let Some(t) = field.strip_prefix("->") {
                e.link_target = Some(unescape(t));
            } else if let Some(list) = field.strip_prefix("xattr:") {
                for kv in list.split(',') {
                    let (k, v) = kv.split_once('=').expect("name=value");
                    e.xattrs.push((unescape(k).to_vec(), unhex(v)));
                }
            }
        }
        out.insert(e.path.clone(), e);
    }
    out
}

/// Unpacks a `.tar.gz` of the pack into memory keyed by the raw path bytes
/// (names that are not UTF-8 stay exact): regular files only.
pub fn unpack_raw(tarball: &str) -> HashMap<Vec<u8>, Vec<u8>> {
    let gz = flate2::read::GzDecoder::new(std::io::Cursor::new(read_fixture(tarball)));
    let mut archive = tar::Archive::new(gz);
    let mut files = HashMap::new();
    let mut hard_links = Vec::new();
    for entry in archive.entries().expect("reading tar") {
        let mut entry = entry.expect("tar entry");
        if entry.header().entry_type().is_hard_link() {
            let target = entry
                .link_name_bytes()
                .expect("hard link target")
                .into_owned();
            hard_links.push((entry.path_bytes().into_owned(), target));
            continue;
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path_bytes().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("tar data");
        files.insert(path, bytes);
    }
    // A hard link is a second name for the same content.
    for (path, target) in hard_links {
        let bytes = files[&target].clone();
        files.insert(path, bytes);
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths() {
        for (id, path) in [
            (0x1, "o01"),
            (0xff, "off"),
            (0x100, "01/o00"),
            (0x1234, "12/o34"),
            (0x123456, "34/12/o56"),
            (0x10000, "00/01/o00"),
        ] {
            assert_eq!(object_path(id), path);
            assert_eq!(object_id_from_path(path), Some(id));
        }
        assert_eq!(object_id_from_path("info.rfw"), None);
    }
}
