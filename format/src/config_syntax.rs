//! The configuration file syntax shared by raidfile.conf, bbstored.conf and
//! bbackupd.conf (store.md §1): `Key = Value` lines and named `{ ... }` blocks,
//! with 0.13's comment and whitespace rules.
//!
//! Owns: a line-accurate parser from text to a tree of [`Block`]s whose keys keep
//! their line numbers, and the C-style integer reading 0.13 applies to values.
//! Must not know: what any key means (that is each file's reader: bb-raid's
//! raidfile.conf, bb-store's bbstored.conf, bb-client's bbackupd.conf). It lives
//! in bb-format because it is pure text in, values out, and this is the lowest
//! crate that both the store side and the client side may depend on.
//!
//! Differs from 0.13 on purpose: where 0.13 collects messages and carries on
//! (a stray `}`, a block name without `{`), we stop at the first error and name
//! its line. A key given twice is an error unless the caller says that key may
//! repeat (0.13's `ConfigTest_MultiValueAllowed`, used for the Exclude* keys).

/// A malformed config file: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct SyntaxError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// One `Key = Value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// A block of the config syntax: the root, or `name` / `{` / ... / `}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Block {
    pub name: String,
    /// Line of the block's name (0 for the root).
    pub line: usize,
    /// Keys in file order.
    pub keys: Vec<Key>,
    /// Sub-blocks in file order.
    pub blocks: Vec<Block>,
}

impl Block {
    /// The first key with this name.
    pub fn key(&self, name: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Every key with this name, in file order (several only for keys the caller
    /// allowed to repeat).
    pub fn keys_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().filter(move |k| k.name == name)
    }

    /// The first sub-block with this name.
    pub fn block(&self, name: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| b.name == name)
    }
}

/// Whitespace as 0.13 counts it (`\r` and `\n` are gone by then).
fn iw(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c')
}

/// 0.13's line preprocessing: a `#` at the start or after whitespace starts a
/// comment; surrounding whitespace is trimmed.
fn preprocess(raw: &str) -> String {
    let line: String = raw.chars().filter(|&c| c != '\r').collect();
    let mut end = line.len();
    let mut prev: Option<char> = None;
    for (i, c) in line.char_indices() {
        if c == '#' && prev.is_none_or(iw) {
            end = i;
            break;
        }
        prev = Some(c);
    }
    line[..end].trim_matches(iw).to_string()
}

/// Parses text in the config syntax; every key may appear once per block. `file`
/// is used in error messages only.
pub fn parse(text: &str, file: &str) -> Result<Block, SyntaxError> {
    parse_with(text, file, &|_: &str| false)
}

/// Parses text in the config syntax; keys for which `may_repeat(name)` is true may
/// appear several times in one block (each occurrence is kept, in order).
pub fn parse_with(
    text: &str,
    file: &str,
    may_repeat: &dyn Fn(&str) -> bool,
) -> Result<Block, SyntaxError> {
    let err = |line: usize, message: String| SyntaxError {
        file: file.to_string(),
        line,
        message,
    };
    let mut stack: Vec<Block> = vec![Block::default()];
    let mut pending: Option<(String, usize)> = None;
    let mut last_line = 0;
    for (i, raw) in text.split('\n').enumerate() {
        let lineno = i + 1;
        last_line = lineno;
        let line = preprocess(raw);
        if line.is_empty() {
            continue;
        }
        if line == "{" {
            let Some((name, at)) = pending.take() else {
                return Err(err(
                    lineno,
                    "'{' without a block name on the line before".into(),
                ));
            };
            stack.push(Block {
                name,
                line: at,
                ..Block::default()
            });
            continue;
        }
        if let Some((name, at)) = pending.take() {
            return Err(err(
                at,
                format!("block '{name}' is not followed by a line with just '{{'"),
            ));
        }
        if line == "}" {
            if stack.len() == 1 {
                return Err(err(lineno, "'}' closes no block".into()));
            }
            let done = stack.pop().unwrap_or_default();
            if let Some(parent) = stack.last_mut() {
                parent.blocks.push(done);
            }
            continue;
        }
        let Some(cur) = stack.last_mut() else {
            return Err(err(lineno, "internal: no open block".into()));
        };
        match line.split_once('=') {
            Some((k, v)) => {
                let k = k.trim_matches(iw);
                let v = v.trim_matches(iw);
                if k.is_empty() {
                    return Err(err(lineno, "'=' with no key before it".into()));
                }
                if let Some(first) = cur.key(k).filter(|_| !may_repeat(k)) {
                    return Err(err(
                        lineno,
                        format!("key '{k}' given twice (first on line {})", first.line),
                    ));
                }
                cur.keys.push(Key {
                    name: k.to_string(),
                    value: v.to_string(),
                    line: lineno,
                });
            }
            None => pending = Some((line, lineno)),
        }
    }
    if let Some((name, at)) = pending {
        return Err(err(
            at,
            format!("block '{name}' is not followed by a line with just '{{'"),
        ));
    }
    if stack.len() > 1 {
        let open = stack
            .last()
            .map(|b| (b.name.clone(), b.line))
            .unwrap_or_default();
        return Err(err(
            last_line,
            format!(
                "file ended inside block '{}' (opened on line {})",
                open.0, open.1
            ),
        ));
    }
    Ok(stack.pop().unwrap_or_default())
}

/// An integer as C's `strtol(s, &end, 0)` reads it when it must consume everything
/// (0.13's `ConfigTest_IsInt`): optional sign, `0x` hex, leading-`0` octal, decimal.
pub fn parse_c_int(s: &str) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) =
        if let Some(h) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
            (16, h)
        } else if rest.len() > 1 && rest.starts_with('0') {
            (8, &rest[1..])
        } else {
            (10, rest)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_whitespace_as_0_13() {
        assert_eq!(preprocess("  Key = a#b  # c\r"), "Key = a#b");
        assert_eq!(preprocess("#x"), "");
        assert_eq!(preprocess("\tDir0 = /x\x0b"), "Dir0 = /x");
        assert_eq!(parse_c_int("0x1F"), Some(31));
        assert_eq!(parse_c_int("-7"), Some(-7));
        assert_eq!(parse_c_int("0"), Some(0));
        assert_eq!(parse_c_int("08"), None);
        assert_eq!(parse_c_int("0x"), None);
        assert_eq!(parse_c_int(""), None);
    }

    #[test]
    fn blocks_keys_and_lines() {
        let b = parse(
            "A = 1\n\nOuter # c\n{\n\tInner\n\t{\n\t\tB = x = y\n\t}\n}\n",
            "f",
        )
        .unwrap();
        assert_eq!(b.key("A").unwrap().line, 1);
        let outer = b.block("Outer").unwrap();
        assert_eq!(outer.line, 3);
        let inner = outer.block("Inner").unwrap();
        assert_eq!(inner.key("B").unwrap().value, "x = y");
        assert_eq!(inner.key("B").unwrap().line, 7);
    }

    #[test]
    fn repeats_only_where_allowed() {
        let text = "E = a\nE = b\nF = c\n";
        let e = parse(text, "f.conf").unwrap_err();
        assert_eq!((e.line, e.file.as_str()), (2, "f.conf"));
        assert!(e.message.contains("twice"), "{e}");
        let b = parse_with(text, "f", &|k| k == "E").unwrap();
        let vals: Vec<_> = b
            .keys_named("E")
            .map(|k| (k.value.as_str(), k.line))
            .collect();
        assert_eq!(vals, [("a", 1), ("b", 2)]);
        let e = parse_with("F = 1\nF = 2\n", "f", &|k| k == "E").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn structural_errors_name_the_line() {
        let line = |t: &str| parse(t, "f").unwrap_err().line;
        assert_eq!(line("}\n"), 1);
        assert_eq!(line("a\nK = 1\n"), 1);
        assert_eq!(line("\n{\n"), 2);
        assert_eq!(line("a\n{\nK = 1\n"), 4);
        assert_eq!(line(" = 1\n"), 1);
    }
}
