//! raidfile.conf: the disc set blocks (store.md §6.1) in 0.13's configuration
//! syntax (§1), and the `raidfile-config` tool that writes the file.
//!
//! Owns: the raidfile.conf rules with errors that name the file and line, and the logic of
//! `raidfile-config` (the store crate's binary is a thin `main` around it).
//!
//! Differs from 0.13 on purpose: disc sets may appear in any order and with gaps in
//! their numbers (0.13 requires the N-th block to have SetNumber N, store.md §11.3);
//! duplicate set numbers, duplicate keys, relative or missing directories are errors
//! with a line number instead of a bare "BadConfigFile".
//!
//! The syntax parser itself is generic (bbstored.conf and bbackupd.conf use the
//! same) and lives in `bb_format::config_syntax`, the lowest crate both ends of
//! the protocol share; it is re-exported here so the store's readers keep their
//! paths.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bb_format::clidoc::Key as KeyDoc;

use crate::discset::DiscSet;
use crate::error::{Error, Result};

pub use bb_format::config_syntax::{Block, Key, SyntaxError, parse_c_int};

/// Parses text in the config syntax (bb-format's parser), with its errors as this
/// crate's [`Error::Config`].
pub fn parse(text: &str, file: &str) -> Result<Block> {
    bb_format::config_syntax::parse(text, file).map_err(Error::from)
}

impl From<SyntaxError> for Error {
    fn from(e: SyntaxError) -> Error {
        Error::Config {
            file: e.file,
            line: e.line,
            message: e.message,
        }
    }
}

/// Keys of a disc set block: the reader accepts exactly these, and
/// raidfile.conf(5) is generated from them.
#[rustfmt::skip]
pub const SET_KEYS: &[KeyDoc] = &[
    KeyDoc::new("SetNumber", "number", "The disc set's number, which accounts.txt and bbstoreaccounts create refer to."),
    KeyDoc::new("BlockSize", "bytes", "The stripe size: a power of two, usually the block size of the file system under the directories."),
    KeyDoc::new("Dir0", "path", "The first directory of the set."),
    KeyDoc::new("Dir1", "path", "The second directory: the same as Dir0 for a set without RAID, else on another disc."),
    KeyDoc::new("Dir2", "path", "The third directory (parity): the same as Dir0 for a set without RAID, else on a third disc."),
];

/// One disc set as the file describes it, with the lines for error messages.
#[derive(Debug, Clone)]
pub struct SetEntry {
    pub set: DiscSet,
    pub block_name: String,
    pub line: usize,
    /// Lines of Dir0..Dir2.
    pub dir_lines: [usize; 3],
}

/// A parsed raidfile.conf: disc sets by number.
#[derive(Debug, Clone, Default)]
pub struct RaidConfig {
    pub file: String,
    pub sets: BTreeMap<u32, SetEntry>,
}

impl RaidConfig {
    /// Parses and checks the text (no filesystem access).
    pub fn parse(text: &str, file: &str) -> Result<RaidConfig> {
        let root = parse(text, file)?;
        let err = |line: usize, message: String| Error::Config {
            file: file.to_string(),
            line,
            message,
        };
        if let Some(k) = root.keys.first() {
            return Err(err(
                k.line,
                format!("key '{}' outside any disc set block", k.name),
            ));
        }
        let mut sets: BTreeMap<u32, SetEntry> = BTreeMap::new();
        for b in &root.blocks {
            if let Some(inner) = b.blocks.first() {
                return Err(err(
                    inner.line,
                    format!(
                        "unexpected block '{}' inside disc set '{}'",
                        inner.name, b.name
                    ),
                ));
            }
            for k in &b.keys {
                if !SET_KEYS.iter().any(|d| d.name == k.name) {
                    return Err(err(
                        k.line,
                        format!(
                            "unknown key '{}' in disc set '{}' (known: {})",
                            k.name,
                            b.name,
                            bb_format::clidoc::key_names(SET_KEYS).join(", ")
                        ),
                    ));
                }
            }
            let get = |name: &str| {
                b.key(name)
                    .ok_or_else(|| err(b.line, format!("disc set '{}' has no {name}", b.name)))
            };
            let num_key = get("SetNumber")?;
            let number = parse_c_int(&num_key.value)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| {
                    err(
                        num_key.line,
                        format!("SetNumber '{}' is not a number from 0 up", num_key.value),
                    )
                })?;
            let bs_key = get("BlockSize")?;
            let block_size = parse_c_int(&bs_key.value)
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| {
                    err(
                        bs_key.line,
                        format!("BlockSize '{}' is not a positive number", bs_key.value),
                    )
                })?;
            let d = [get("Dir0")?, get("Dir1")?, get("Dir2")?];
            for k in d {
                if k.value.is_empty() {
                    return Err(err(k.line, format!("{} is empty", k.name)));
                }
            }
            let (v0, v1, v2) = (&d[0].value, &d[1].value, &d[2].value);
            let dirs: Vec<PathBuf> = if v0 == v1 && v1 == v2 {
                vec![PathBuf::from(v0)]
            } else if v0 != v1 && v1 != v2 && v0 != v2 {
                vec![v0.into(), v1.into(), v2.into()]
            } else {
                let (a, b2) = if v0 == v1 {
                    (d[0], d[1])
                } else if v1 == v2 {
                    (d[1], d[2])
                } else {
                    (d[0], d[2])
                };
                return Err(err(
                    b2.line,
                    format!(
                        "{} and {} are the same directory; use three different directories (RAID) or the same one three times (no RAID)",
                        a.name, b2.name
                    ),
                ));
            };
            let set = DiscSet::new(number, block_size, dirs)
                .map_err(|e| err(bs_key.line, e.to_string()))?;
            if let Some(prev) = sets.get(&number) {
                return Err(err(
                    num_key.line,
                    format!(
                        "SetNumber {number} is used twice (block '{}' on line {} and block '{}')",
                        prev.block_name, prev.line, b.name
                    ),
                ));
            }
            sets.insert(
                number,
                SetEntry {
                    set,
                    block_name: b.name.clone(),
                    line: b.line,
                    dir_lines: [d[0].line, d[1].line, d[2].line],
                },
            );
        }
        Ok(RaidConfig {
            file: file.to_string(),
            sets,
        })
    }

    /// Reads, parses and checks `path`, including that every directory is an
    /// absolute path to an existing directory.
    pub fn load(path: &Path) -> Result<RaidConfig> {
        let file = path.display().to_string();
        let text = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        let text = String::from_utf8(text).map_err(|e| Error::Config {
            file: file.clone(),
            line: 0,
            message: format!("not UTF-8: {e}"),
        })?;
        let cfg = RaidConfig::parse(&text, &file)?;
        cfg.check_dirs()?;
        Ok(cfg)
    }

    /// Every directory must be absolute and an existing directory.
    pub fn check_dirs(&self) -> Result<()> {
        for e in self.sets.values() {
            for (i, dir) in e.set.dirs().iter().enumerate() {
                let line = e.dir_lines[i];
                let bad = |why: String| Error::Config {
                    file: self.file.clone(),
                    line,
                    message: format!(
                        "Dir{i} of disc set {}: {}: {why}",
                        e.set.number(),
                        dir.display()
                    ),
                };
                if !dir.is_absolute() {
                    return Err(bad("not an absolute path".into()));
                }
                match std::fs::metadata(dir) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(bad("not a directory".into())),
                    Err(err) => return Err(bad(err.to_string())),
                }
            }
        }
        Ok(())
    }

    /// The disc set with this number.
    pub fn set(&self, number: u32) -> Result<&DiscSet> {
        self.sets
            .get(&number)
            .map(|e| &e.set)
            .ok_or_else(|| Error::Config {
                file: self.file.clone(),
                line: 0,
                message: format!("no disc set with SetNumber {number}"),
            })
    }
}

/// The file `raidfile-config` writes, byte for byte as 0.13's script writes it.
pub fn render(block_size: u64, dirs: &[&str; 3]) -> String {
    format!(
        "\ndisc0\n{{\n\tSetNumber = 0\n\tBlockSize = {block_size}\n\tDir0 = {}\n\tDir1 = {}\n\tDir2 = {}\n}}\n\n",
        dirs[0], dirs[1], dirs[2]
    )
}

/// The usage text of 0.13's `raidfile-config`.
pub const USAGE: &str = "
Setup raidfile config utility.

Bad command line parameters.
Usage:
    raidfile-config config-dir block-size dir0 [dir1 dir2]

Parameters:
    config-dir        is usually /etc/boxbackup
    block-size        must be a power of two, and usually the block or
                      fragment size of your file system
    dir0, dir1, dir2  are the directories used as the root of the raid
                      file system

If only one directory is specified, then userland RAID is disabled.
Specifying three directories enables it.

";

/// Perl's `int()` of a string: the leading number (decimal, fraction, exponent),
/// truncated; 0 when there is none.
fn perl_int(s: &str) -> i64 {
    let s = s.trim_start();
    let bytes = s.as_bytes();
    let mut i = 0;
    if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
        i += 1;
    }
    let digits_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i == digits_start {
        return 0;
    }
    let mut end = i;
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            end = j;
        }
    }
    s[..end]
        .parse::<f64>()
        .map(|f| f.trunc() as i64)
        .unwrap_or(0)
}

/// Runs `raidfile-config` with `args` (without the program name), writing what the
/// 0.13 script prints to `out` and its errors to `err`; returns the exit status.
///
/// Same checks in the same order as the script (each directory: not given twice,
/// a directory, absolute; block size a positive power of two; the file not there
/// yet; the config directory created with mode 0755 if missing), the same output
/// file, the same messages (errors are prefixed `raidfile-config: ` instead of
/// Perl's `at ... line N.` suffix) and the same exit codes (1 for usage, 255 or the
/// failing call's errno for errors).
pub fn raidfile_config(
    args: &[String],
    is_root: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    if !is_root {
        let _ = write!(out, "\nWARNING: this should be run as root\n\n");
    }
    if args.len() != 5 && args.len() != 3 {
        let _ = write!(out, "{USAGE}");
        return 1;
    }
    let die = |err: &mut dyn Write, msg: String, code: i32| {
        let _ = writeln!(err, "raidfile-config: {msg}");
        code
    };
    let config_dir = &args[0];
    let dirs_in = &args[2..];
    for (i, d) in dirs_in.iter().enumerate() {
        if dirs_in[..i].contains(d) {
            return die(err, format!("{d} is used twice"), 255);
        }
        match std::fs::metadata(d) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return die(err, format!("{d} is not a directory"), 255),
            Err(e) => {
                return die(
                    err,
                    format!("{d} is not a directory"),
                    e.raw_os_error().unwrap_or(255),
                );
            }
        }
        if !d.starts_with('/') {
            return die(err, format!("{d} should be an absolute path"), 255);
        }
    }
    let block_size = perl_int(&args[1]);
    if block_size <= 0 {
        return die(err, "Bad block size".into(), 255);
    }
    if !(block_size as u64).is_power_of_two() {
        return die(
            err,
            format!("Block size {block_size} is not a power of two"),
            255,
        );
    }
    let conf = format!("{config_dir}/raidfile.conf");
    if std::fs::metadata(&conf).is_ok_and(|m| m.is_file()) {
        return die(
            err,
            format!("{conf} already exists. Delete and try again"),
            255,
        );
    }
    if !std::fs::metadata(config_dir).is_ok_and(|m| m.is_dir()) {
        let _ = writeln!(out, "Creating {config_dir}...");
        let made = {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o755).create(config_dir)
        };
        if let Err(e) = made {
            return die(
                err,
                format!("Can't create {config_dir}"),
                e.raw_os_error().unwrap_or(255),
            );
        }
    }
    let dirs: [&str; 3] = if dirs_in.len() == 1 {
        let _ = writeln!(out, "WARNING: userland RAID is disabled.");
        [&dirs_in[0], &dirs_in[0], &dirs_in[0]]
    } else {
        [&dirs_in[0], &dirs_in[1], &dirs_in[2]]
    };
    if let Err(e) = std::fs::write(&conf, render(block_size as u64, &dirs)) {
        return die(
            err,
            format!("Can't open {conf} for writing"),
            e.raw_os_error().unwrap_or(255),
        );
    }
    let _ = writeln!(out, "Config file written.");
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "
disc0
{
\tSetNumber = 0
\tBlockSize = 2048
\tDir0 = /raid/0.0
\tDir1 = /raid/0.1
\tDir2 = /raid/0.2
}
";

    #[test]
    fn sample_from_the_spec() {
        let c = RaidConfig::parse(SAMPLE, "raidfile.conf").unwrap();
        let s = c.set(0).unwrap();
        assert!(s.is_raid());
        assert_eq!(s.block_size(), 2048);
        assert_eq!(s.dirs()[2], PathBuf::from("/raid/0.2"));
    }

    #[test]
    fn sets_in_any_order_with_gaps() {
        let text = "d7\n{\nSetNumber = 7\nBlockSize = 4096\nDir0 = /a\nDir1 = /a\nDir2 = /a\n}\n\
                    # comment\nd2 # trailing comment\n{\nSetNumber = 0x2\nBlockSize = 010000\nDir0 = /x\nDir1 = /y\nDir2 = /z\n}\n";
        let c = RaidConfig::parse(text, "f").unwrap();
        assert_eq!(c.sets.keys().copied().collect::<Vec<_>>(), vec![2, 7]);
        assert_eq!(
            c.set(2).unwrap().block_size(),
            4096,
            "010000 is octal, as strtol reads it"
        );
        assert!(!c.set(7).unwrap().is_raid());
        assert!(c.set(3).is_err());
    }

    fn err_of(text: &str) -> (usize, String) {
        match RaidConfig::parse(text, "raidfile.conf") {
            Err(Error::Config { line, message, .. }) => (line, message),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_line() {
        let (l, m) = err_of("disc0\n{\nSetNumber = 0\nBlockSize = 4096\nDir0 = /a\nDir1 = /b\n}\n");
        assert_eq!(l, 1);
        assert!(m.contains("no Dir2"), "{m}");

        let dup = "a\n{\nSetNumber = 1\nBlockSize = 4096\nDir0 = /a\nDir1 = /a\nDir2 = /a\n}\nb\n{\nSetNumber = 1\nBlockSize = 4096\nDir0 = /b\nDir1 = /b\nDir2 = /b\n}\n";
        let (l, m) = err_of(dup);
        assert_eq!(l, 11);
        assert!(m.contains("used twice") && m.contains("line 1"), "{m}");

        let (l, m) =
            err_of("a\n{\nSetNumber = 0\nBlockSize = 4096\nDir0 = /a\nDir1 = /a\nDir2 = /b\n}\n");
        assert_eq!(l, 6);
        assert!(m.contains("same directory"), "{m}");

        let (l, _) = err_of("a\n{\nSetNumber = 0\nBlockSize = 4096\nBlockSize = 4096\n}\n");
        assert_eq!(l, 5);
        let (l, m) = err_of(
            "a\n{\nSetNumber = 0\nBlockSize = 4096\nDir0 = /a\nDir1 = /a\nDir2 = /a\nDri3 = /x\n}\n",
        );
        assert_eq!(l, 8);
        assert!(m.contains("unknown key"), "{m}");
        let (l, _) = err_of(
            "a\n{\nSetNumber = zero\nBlockSize = 4096\nDir0 = /a\nDir1 = /a\nDir2 = /a\n}\n",
        );
        assert_eq!(l, 3);
        let (l, _) =
            err_of("a\n{\nSetNumber = 0\nBlockSize = 12\nDir0 = /a\nDir1 = /a\nDir2 = /a\n}\n");
        assert_eq!(l, 4);
        let (l, m) = err_of("a\n{\nSetNumber = 0\n");
        assert_eq!(l, 4);
        assert!(m.contains("ended inside"), "{m}");
        let (l, _) = err_of("a\nSetNumber = 0\n");
        assert_eq!(l, 1);
        let (l, _) = err_of("}\n");
        assert_eq!(l, 1);
    }

    #[test]
    fn load_checks_directories() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().display();
        let conf = t.path().join("raidfile.conf");
        std::fs::write(&conf, format!("s\n{{\nSetNumber = 0\nBlockSize = 4096\nDir0 = {d}\nDir1 = {d}/missing\nDir2 = {d}/x\n}}\n")).unwrap();
        match RaidConfig::load(&conf) {
            Err(Error::Config { line, message, .. }) => {
                assert_eq!(line, 6);
                assert!(message.contains("missing"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(
            &conf,
            format!(
                "s\n{{\nSetNumber = 0\nBlockSize = 4096\nDir0 = {d}\nDir1 = {d}\nDir2 = {d}\n}}\n"
            ),
        )
        .unwrap();
        RaidConfig::load(&conf).unwrap();
    }

    #[test]
    fn perl_int_prefixes() {
        assert_eq!(perl_int("4096"), 4096);
        assert_eq!(perl_int("4096abc"), 4096);
        assert_eq!(perl_int("abc"), 0);
        assert_eq!(perl_int("1e3"), 1000);
        assert_eq!(perl_int(" 2048.9"), 2048);
        assert_eq!(perl_int("-4"), -4);
    }

    #[test]
    fn rendered_file_parses_back() {
        let text = render(4096, &["/a", "/b", "/c"]);
        let c = RaidConfig::parse(&text, "f").unwrap();
        assert_eq!(c.set(0).unwrap().dirs().len(), 3);
    }
}
