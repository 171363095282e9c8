//! 0.13's command-line syntax for bbackupquery commands, quirks included:
//!
//! - words are separated by single spaces only; a word that *starts* with `"`
//!   runs to the next `"` (no escapes; a `"` inside a word is literal);
//! - a word that starts with `-` (after the command word) is a cluster of
//!   option letters, which collect into one set for the whole command, wherever
//!   they stand (`ls source -R` is `ls -R source`); even `"-x"` is options;
//! - `sh <rest>` passes `<rest>` untouched to the shell;
//! - `ls` is an alias of `list`; `exit` of `quit`.
//!
//! Owns the command table (names, option letters allowed) and the hex object-ID
//! syntax (`strtoll(s, 0, 16)`). Must not know what the commands do.

/// The commands of 0.13's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    Quit,
    List,
    Pwd,
    Cd,
    Lcd,
    Sh,
    GetObject,
    Get,
    Compare,
    Restore,
    Help,
    Usage,
    Undelete,
    Delete,
}

/// (name, option letters, command). Order as 0.13's table (completion lists
/// commands in this order).
pub const COMMANDS: &[(&str, &str, Cmd)] = &[
    ("quit", "", Cmd::Quit),
    ("exit", "", Cmd::Quit),
    ("list", "adDFhiIorRsStTU", Cmd::List),
    ("pwd", "", Cmd::Pwd),
    ("cd", "od", Cmd::Cd),
    ("lcd", "", Cmd::Lcd),
    ("sh", "", Cmd::Sh),
    ("getobject", "", Cmd::GetObject),
    ("get", "i", Cmd::Get),
    ("compare", "alcqAEQf", Cmd::Compare),
    ("restore", "drif", Cmd::Restore),
    ("help", "", Cmd::Help),
    ("usage", "m", Cmd::Usage),
    ("undelete", "i", Cmd::Undelete),
    ("delete", "i", Cmd::Delete),
];

/// Aliases resolved after the table.
const ALIASES: &[(&str, &str)] = &[("ls", "list")];

/// What the command word of a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// An empty (or all-blank) line.
    Blank,
    /// Not in the table.
    Unknown,
    /// (table name, option letters, command).
    Found(&'static str, &'static str, Cmd),
}

/// One command line, split 0.13's way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The command word and its arguments (raw bytes: names need not be UTF-8).
    pub words: Vec<Vec<u8>>,
    /// Option letters in the order given (duplicates kept).
    pub options: Vec<u8>,
    /// Words finished by a following separator (for completion: which
    /// argument the cursor is in).
    pub complete_words: usize,
    /// The line ended inside an option cluster.
    pub in_options: bool,
}

impl Parsed {
    /// Splits `line` (0.13's `ParsedCommand`).
    pub fn new(line: &[u8]) -> Parsed {
        let mut p = Parsed::default();
        if line.len() > 3 && line.starts_with(b"sh ") {
            p.words = vec![b"sh".to_vec(), line[3..].to_vec()];
            p.complete_words = 1;
            return p;
        }
        let mut quoted = false;
        let mut cur: Vec<u8> = Vec::new();
        for &c in line {
            if c == if quoted { b'"' } else { b' ' } {
                if !cur.is_empty() {
                    p.words.push(std::mem::take(&mut cur));
                    p.complete_words += 1;
                }
                quoted = false;
                p.in_options = false;
            } else if cur.is_empty() && c == b'"' {
                quoted = true;
            } else if cur.is_empty() && c == b'-' && !p.words.is_empty() {
                p.in_options = true;
            } else if p.in_options {
                p.options.push(c);
            } else {
                cur.push(c);
            }
        }
        if !cur.is_empty() {
            p.words.push(cur);
        }
        p
    }

    /// The table entry for the command word.
    pub fn command(&self) -> Lookup {
        let Some(first) = self.words.first() else {
            return Lookup::Blank;
        };
        let name = ALIASES
            .iter()
            .find(|(a, _)| a.as_bytes() == first.as_slice())
            .map(|(_, to)| to.as_bytes())
            .unwrap_or(first);
        match COMMANDS.iter().find(|(n, _, _)| n.as_bytes() == name) {
            Some(&(n, letters, cmd)) => Lookup::Found(n, letters, cmd),
            None => Lookup::Unknown,
        }
    }

    /// The arguments after the command word.
    pub fn args(&self) -> &[Vec<u8>] {
        self.words.get(1..).unwrap_or(&[])
    }
}

/// The options of one command, checked against its letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opts([bool; 128]);

impl Opts {
    /// `Err(letter)` for the first letter the command does not take.
    pub fn check(given: &[u8], allowed: &str) -> Result<Opts, u8> {
        let mut o = Opts([false; 128]);
        for &c in given {
            if c >= 128 || !allowed.as_bytes().contains(&c) {
                return Err(c);
            }
            o.0[c as usize] = true;
        }
        Ok(o)
    }

    pub fn has(&self, c: char) -> bool {
        (c as usize) < 128 && self.0[c as usize]
    }
}

/// `strtoll(s, 0, 16)` as 0.13 uses it for object IDs: leading white space,
/// a sign, an optional `0x`, then as many hex digits as there are (the rest
/// is ignored). `None` where 0.13 says "Not a valid object ID": no digits,
/// zero, or out of range (LLONG_MIN / LLONG_MAX).
pub fn object_id(s: &[u8]) -> Option<i64> {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    if s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
        && s.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit())
    {
        i += 2;
    }
    let mut v: i128 = 0;
    let mut any = false;
    while let Some(d) = s.get(i).and_then(|c| (*c as char).to_digit(16)) {
        any = true;
        v = (v * 16 + i128::from(d)).min(i128::from(i64::MAX) + 1);
        i += 1;
    }
    if !any {
        return None;
    }
    let v = if neg { -v } else { v };
    let v = v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    (v != 0 && v != i64::MIN && v != i64::MAX).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(p: &Parsed) -> Vec<String> {
        p.words
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect()
    }

    #[test]
    fn splits_like_013() {
        let p = Parsed::new(b"ls -R -o source");
        assert_eq!(words(&p), ["ls", "source"]);
        assert_eq!(p.options, b"Ro");
        let p = Parsed::new(b"get \"with space.txt\" local name");
        assert_eq!(words(&p), ["get", "with space.txt", "local", "name"]);
        let p = Parsed::new(b"cd  a\"b  ");
        assert_eq!(words(&p), ["cd", "a\"b"]);
        // Options anywhere, and a quoted "-x" is options too.
        let p = Parsed::new(b"ls source -sT \"-d\"");
        assert_eq!(words(&p), ["ls", "source"]);
        assert_eq!(p.options, b"sTd");
        // A leading '-' is part of the command word.
        let p = Parsed::new(b"ls -a-b -R\"x y\" d");
        assert_eq!(words(&p), ["ls", "d"]);
        assert_eq!(p.options, b"abRx y");
        let p = Parsed::new(b"-R ls");
        assert_eq!(words(&p), ["-R", "ls"]);
        assert_eq!(p.command(), Lookup::Unknown);
        let p = Parsed::new(b"sh echo \"hi\"  there");
        assert_eq!(words(&p), ["sh", "echo \"hi\"  there"]);
        assert_eq!(Parsed::new(b"   ").command(), Lookup::Blank);
        assert_eq!(
            Parsed::new(b"ls").command(),
            Lookup::Found("list", "adDFhiIorRsStTU", Cmd::List)
        );
        assert!(matches!(
            Parsed::new(b"exit").command(),
            Lookup::Found("exit", _, Cmd::Quit)
        ));
    }

    #[test]
    fn option_letters_checked() {
        assert_eq!(Opts::check(b"x", "od"), Err(b'x'));
        let o = Opts::check(b"od", "od").unwrap();
        assert!(o.has('o') && o.has('d') && !o.has('R'));
    }

    #[test]
    fn hex_ids_as_strtoll() {
        assert_eq!(object_id(b"11a"), Some(0x11a));
        assert_eq!(object_id(b"0x11A"), Some(0x11a));
        assert_eq!(object_id(b"  12zz"), Some(0x12));
        assert_eq!(object_id(b"zz"), None);
        assert_eq!(object_id(b"0"), None);
        assert_eq!(object_id(b"-5"), Some(-5));
        assert_eq!(object_id(b"ffffffffffffffffff"), None);
        assert_eq!(object_id(b"0x"), None);
    }
}
