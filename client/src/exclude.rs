//! Exclusions of one backup location: bbackupd.conf's `ExcludeFile`,
//! `ExcludeFilesRegex`, `ExcludeDir`, `ExcludeDirsRegex` and their `AlwaysInclude*`
//! counterparts, with 0.13's semantics.
//!
//! Owns: matching a full local path against one location's rules. Must not know:
//! how the tree is walked (the sync engine asks through [`Filter`]) or where the
//! rules come from (`config` reads them from the file, with their lines).
//!
//! 0.13's rules, checked against the real 0.13 (`bbackupd` + `bbackupquery ls -R`
//! on a tree with each kind of entry; the unit tests below encode the findings):
//! - files and directories have separate lists: `*File*` rules apply to every
//!   non-directory (symlinks too), `*Dir*` rules to directories only;
//! - a plain entry matches only the *whole* path, byte for byte (`/home/a/x`, not
//!   `a/x`); an entry ending in `/` never matches (0.13 warns, so do we);
//! - a regex is POSIX extended, unanchored (`regexec` finds it anywhere in the
//!   full path), so `\.mp3$` matches every mp3 and `^/home/` a whole subtree;
//! - `AlwaysInclude*` is checked first and wins over any exclusion;
//! - the location's own root is never tested (an `ExcludeDir` naming `Path`
//!   excludes nothing); nothing inside an excluded directory is looked at, so an
//!   `AlwaysInclude` below it has no effect (the engine does not descend);
//! - empty values are ignored;
//! - a regex that does not compile makes 0.13 fail every sync run with
//!   `BadRegularExpression` (after it has connected); here it is a config error
//!   with its line, before anything runs.
//!
//! POSIX ERE vs the `regex` crate, as far as they differ for paths: bracket
//! classes (`[[:upper:]]`), alternation, anchors, `{m,n}` and `\.` agree. Ours
//! rejects back-references (`\1`, a glibc extension in ERE) and look-around
//! (neither has it); inside brackets a backslash escapes in ours but is a literal
//! in POSIX (`[\.]` also matches `\` in 0.13); `\w`, `\s`, `\b` mean the same as
//! glibc's extensions; `\<`/`\>` are word boundaries in both. Matching is on
//! bytes with Unicode off, as glibc in the C locale that bbackupd runs in: `.`
//! matches any one byte, so paths that are not UTF-8 still match.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use regex::bytes::{Regex, RegexBuilder};

/// What the sync engine asks of exclusions (`Excludes` implements it; tests may
/// use their own). Paths are full local paths (the location's `Path` joined
/// with the names below it).
pub trait Filter: Send + Sync {
    fn exclude_file(&self, full_path: &Path) -> bool;
    fn exclude_dir(&self, full_path: &Path) -> bool;
}

/// The eight exclusion keys of a location block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    ExcludeFile,
    ExcludeFilesRegex,
    ExcludeDir,
    ExcludeDirsRegex,
    AlwaysIncludeFile,
    AlwaysIncludeFilesRegex,
    AlwaysIncludeDir,
    AlwaysIncludeDirsRegex,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::ExcludeFile,
        Rule::ExcludeFilesRegex,
        Rule::ExcludeDir,
        Rule::ExcludeDirsRegex,
        Rule::AlwaysIncludeFile,
        Rule::AlwaysIncludeFilesRegex,
        Rule::AlwaysIncludeDir,
        Rule::AlwaysIncludeDirsRegex,
    ];

    /// The key as bbackupd.conf spells it.
    pub fn key(self) -> &'static str {
        match self {
            Rule::ExcludeFile => "ExcludeFile",
            Rule::ExcludeFilesRegex => "ExcludeFilesRegex",
            Rule::ExcludeDir => "ExcludeDir",
            Rule::ExcludeDirsRegex => "ExcludeDirsRegex",
            Rule::AlwaysIncludeFile => "AlwaysIncludeFile",
            Rule::AlwaysIncludeFilesRegex => "AlwaysIncludeFilesRegex",
            Rule::AlwaysIncludeDir => "AlwaysIncludeDir",
            Rule::AlwaysIncludeDirsRegex => "AlwaysIncludeDirsRegex",
        }
    }

    pub fn from_key(key: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.key() == key)
    }

    fn is_regex(self) -> bool {
        self.key().ends_with("Regex")
    }

    fn is_dir(self) -> bool {
        self.key().contains("Dir")
    }

    fn is_always_include(self) -> bool {
        self.key().starts_with("AlwaysInclude")
    }
}

/// A regex that did not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid regular expression {pattern:?}: {message}")]
pub struct BadRegex {
    pub pattern: String,
    pub message: String,
}

/// Plain paths and regexes of one list (0.13's `ExcludeList`).
#[derive(Debug, Clone, Default)]
struct Matcher {
    definite: BTreeSet<Vec<u8>>,
    regexes: Vec<Regex>,
}

impl Matcher {
    fn matches(&self, path: &[u8]) -> bool {
        self.definite.contains(path) || self.regexes.iter().any(|r| r.is_match(path))
    }

    fn is_empty(&self) -> bool {
        self.definite.is_empty() && self.regexes.is_empty()
    }
}

#[derive(Debug, Clone, Default)]
struct List {
    exclude: Matcher,
    always_include: Matcher,
}

impl List {
    fn excludes(&self, path: &Path) -> bool {
        let p = path.as_os_str().as_bytes();
        !self.always_include.matches(p) && self.exclude.matches(p)
    }
}

/// One location's exclusions.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    files: List,
    dirs: List,
    /// The rules as given, in order (for logging and `bbackupquery` output).
    rules: Vec<(Rule, String)>,
}

/// Compiles a pattern the way 0.13's regcomp(REG_EXTENDED) would accept it, as
/// near as the `regex` crate gets (see the module header).
pub fn compile(pattern: &str) -> Result<Regex, BadRegex> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .map_err(|e| BadRegex {
            pattern: pattern.to_string(),
            message: e.to_string(),
        })
}

impl Excludes {
    /// Nothing excluded.
    pub fn new() -> Excludes {
        Excludes::default()
    }

    /// Adds one `rule = value` line. Empty values are ignored, as in 0.13.
    pub fn add(&mut self, rule: Rule, value: &str) -> Result<(), BadRegex> {
        if value.is_empty() {
            return Ok(());
        }
        let list = if rule.is_dir() {
            &mut self.dirs
        } else {
            &mut self.files
        };
        let m = if rule.is_always_include() {
            &mut list.always_include
        } else {
            &mut list.exclude
        };
        if rule.is_regex() {
            m.regexes.push(compile(value)?);
        } else {
            if value.ends_with('/') {
                tracing::warn!(
                    "{} entry ends in a path separator, will never match: {value}",
                    rule.key()
                );
            }
            m.definite.insert(value.as_bytes().to_vec());
        }
        self.rules.push((rule, value.to_string()));
        Ok(())
    }

    /// The rules in the order they were added.
    pub fn rules(&self) -> &[(Rule, String)] {
        &self.rules
    }

    /// True when nothing can be excluded.
    pub fn is_empty(&self) -> bool {
        self.files.exclude.is_empty() && self.dirs.exclude.is_empty()
    }

    /// Whether the file (or symlink, or other non-directory) at this full path
    /// is left out.
    pub fn is_file_excluded(&self, full_path: &Path) -> bool {
        self.files.excludes(full_path)
    }

    /// Whether the directory at this full path is left out (with everything in
    /// it: the engine does not descend).
    pub fn is_dir_excluded(&self, full_path: &Path) -> bool {
        self.dirs.excludes(full_path)
    }
}

impl Filter for Excludes {
    fn exclude_file(&self, full_path: &Path) -> bool {
        self.is_file_excluded(full_path)
    }

    fn exclude_dir(&self, full_path: &Path) -> bool {
        self.is_dir_excluded(full_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn ex(rules: &[(Rule, &str)]) -> Excludes {
        let mut e = Excludes::new();
        for (r, v) in rules {
            e.add(*r, v).unwrap();
        }
        e
    }

    fn f(e: &Excludes, p: &str) -> bool {
        e.exclude_file(Path::new(p))
    }

    fn d(e: &Excludes, p: &str) -> bool {
        e.exclude_dir(Path::new(p))
    }

    /// The first run against the real 0.13 (module header): which of these the
    /// 0.13 bbackupd uploaded.
    #[test]
    fn as_the_real_0_13_decided() {
        use Rule::*;
        let e = ex(&[
            (ExcludeFilesRegex, r"\.(mp3|MP3)$"),
            (AlwaysIncludeFile, "/t/a/x.mp3"),
            (ExcludeDir, "/t/b"),
            (ExcludeDir, "/t/trail/"),
            (ExcludeDirsRegex, "^/t/c$"),
            (AlwaysIncludeDir, "/t/c/keep"),
            (ExcludeFile, "/t/e/f1"),
            (ExcludeFile, "e/f2"),
            (ExcludeFilesRegex, "^/t/d/"),
            (ExcludeDirsRegex, "inner"),
            (AlwaysIncludeDirsRegex, "^/t/d/inner$"),
            (ExcludeFile, "/t/sp ace.txt"),
        ]);
        // Uploaded by 0.13:
        assert!(!f(&e, "/t/a/x.mp3"), "AlwaysIncludeFile beats the regex");
        assert!(!f(&e, "/t/a/y.txt"));
        assert!(!d(&e, "/t/a"), "file rules do not apply to directories");
        assert!(!d(&e, "/t/a/sub"));
        assert!(!d(&e, "/t/d"));
        assert!(
            !d(&e, "/t/d/inner"),
            "AlwaysIncludeDirsRegex beats the dir regex"
        );
        assert!(!f(&e, "/t/e/f2"), "a plain entry is a whole path");
        assert!(!d(&e, "/t/trail"), "a trailing / never matches");
        assert!(!f(&e, "/t/top.txt"));
        // Left out by 0.13:
        assert!(f(&e, "/t/a/sub/z.mp3"));
        assert!(f(&e, "/t/link.mp3"), "symlinks are files");
        assert!(d(&e, "/t/b"));
        assert!(d(&e, "/t/c"));
        assert!(f(&e, "/t/d/inner/i.txt"));
        assert!(f(&e, "/t/e/f1"));
        assert!(f(&e, "/t/sp ace.txt"));
        // The AlwaysIncludeDir below the excluded /t/c is never asked about,
        // since nothing below an excluded directory is looked at; on its own it
        // would be included.
        assert!(!d(&e, "/t/c/keep"));
    }

    /// The second run: POSIX classes, alternation, unanchored search.
    #[test]
    fn posix_classes_and_alternation() {
        use Rule::*;
        let e = ex(&[
            (ExcludeFilesRegex, "[[:upper:]]"),
            (ExcludeFilesRegex, r"x\.mp3|^/t/e/"),
            (ExcludeDirsRegex, "t$"),
        ]);
        assert!(f(&e, "/t/b/two.MP3"));
        assert!(f(&e, "/t/a/x.mp3"));
        assert!(f(&e, "/t/e/f1"));
        assert!(!f(&e, "/t/a/sub/z.mp3"));
        assert!(!d(&e, "/t/e"));
        assert!(
            d(&e, "/t/trail/t"),
            "unanchored: t$ matches any path ending in t"
        );
    }

    #[test]
    fn bytes_not_utf8() {
        let e = ex(&[(Rule::ExcludeFilesRegex, "^/t/.\\.bin$")]);
        let p = Path::new(OsStr::from_bytes(b"/t/\xff.bin"));
        assert!(e.exclude_file(p), ". matches one byte, as in the C locale");
        let e = ex(&[(Rule::ExcludeFilesRegex, "é")]);
        assert!(e.exclude_file(Path::new("/t/café")));
    }

    #[test]
    fn bad_regex_and_empty_values() {
        let mut e = Excludes::new();
        let err = e.add(Rule::ExcludeFilesRegex, "(").unwrap_err();
        assert_eq!(err.pattern, "(");
        assert!(e.add(Rule::ExcludeDirsRegex, r"\1").is_err());
        e.add(Rule::ExcludeFile, "").unwrap();
        assert!(e.is_empty());
        assert!(!f(&e, ""));
        e.add(Rule::ExcludeDir, "/x").unwrap();
        assert!(!e.is_empty());
        assert_eq!(e.rules(), &[(Rule::ExcludeDir, "/x".to_string())]);
    }

    #[test]
    fn keys_round_trip() {
        for r in Rule::ALL {
            assert_eq!(Rule::from_key(r.key()), Some(r));
        }
        assert_eq!(Rule::from_key("ExcludeFiles"), None);
    }
}
