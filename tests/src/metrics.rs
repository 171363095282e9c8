//! Scraping a metrics endpoint with the real `curl`, and a strict check of
//! the Prometheus text exposition format (0.0.4) written from its
//! specification, independent of the writer in `bb_proto::metrics` so that
//! the two can catch each other's mistakes.
//!
//! Stricter than Prometheus itself where the format leaves room: every sample
//! needs a `# TYPE` before it, a family's lines must be contiguous, blank
//! lines are refused, counters end in `_total` and are finite and
//! non-negative.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A validated scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// Family name -> type.
    pub types: BTreeMap<String, String>,
    pub help: BTreeMap<String, String>,
}

impl Scrape {
    /// The value of the series `name{labels}` (exactly these labels).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// Like [`Scrape::get`], panicking with the scrape's series when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            let names: BTreeSet<&str> = self.samples.iter().map(|s| s.name.as_str()).collect();
            panic!("no series {name}{labels:?}; have {names:?}")
        })
    }
}

fn valid_name(n: &str, colons: bool) -> bool {
    let mut c = n.chars();
    let first = |ch: char| ch.is_ascii_alphabetic() || ch == '_' || (colons && ch == ':');
    c.next().is_some_and(first) && c.all(|ch| first(ch) || ch.is_ascii_digit())
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => {
            // Go's ParseFloat syntax: digits, '.', exponent, sign. Refuse Rust
            // extras such as "inf" or "infinity" spelled otherwise.
            if v.is_empty()
                || !v
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
            {
                return None;
            }
            v.parse().ok()
        }
    }
}

/// Parses `{a="x",b="y"}` from the start of `s`; returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("no '{'")?;
    loop {
        rest = rest.trim_start_matches(' ');
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let name = rest[..eq].trim();
        if !valid_name(name, false) || name.starts_with("__") {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .trim_start_matches(' ')
            .strip_prefix('"')
            .ok_or("label value without '\"'")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in a label value")),
                },
                Some((_, '\n')) => return Err("newline in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = rest[end + 1..].trim_start_matches(' ');
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("labels not separated by ','".into());
        }
    }
}

/// The family a sample belongs to (for the types we accept, the name itself;
/// histogram and summary suffixes map to their base name).
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    if types.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            )
        {
            return base;
        }
    }
    name
}

/// Checks `text` against the exposition format; returns what it holds.
pub fn validate(text: &str) -> Result<Scrape, String> {
    let mut s = Scrape::default();
    if text.is_empty() {
        return Err("empty exposition".into());
    }
    if !text.ends_with('\n') {
        return Err("the last line does not end with a newline".into());
    }
    let mut seen_series = BTreeSet::new();
    let mut finished_families: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut enter = |family: &str, lineno: usize| -> Result<(), String> {
        if current.as_deref() != Some(family) {
            if finished_families.contains(family) {
                return Err(format!("line {lineno}: family {family} is not contiguous"));
            }
            if let Some(c) = current.take() {
                finished_families.insert(c);
            }
            current = Some(family.to_string());
        }
        Ok(())
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let err = |m: String| format!("line {n}: {m}: {line:?}");
        if line.is_empty() {
            return Err(err("blank line".into()));
        }
        if let Some(c) = line.strip_prefix('#') {
            let mut parts = c.trim_start().splitn(3, ' ');
            match parts.next() {
                Some("HELP") => {
                    let name = parts
                        .next()
                        .ok_or_else(|| err("HELP without a name".into()))?;
                    if !valid_name(name, true) {
                        return Err(err("bad metric name".into()));
                    }
                    let help = parts.next().unwrap_or("");
                    let mut it = help.chars();
                    while let Some(ch) = it.next() {
                        if ch == '\\' && !matches!(it.next(), Some('\\' | 'n')) {
                            return Err(err("bad escape in HELP".into()));
                        }
                    }
                    enter(name, n)?;
                    if s.help.insert(name.to_string(), help.to_string()).is_some() {
                        return Err(err("second HELP".into()));
                    }
                }
                Some("TYPE") => {
                    let name = parts
                        .next()
                        .ok_or_else(|| err("TYPE without a name".into()))?;
                    if !valid_name(name, true) {
                        return Err(err("bad metric name".into()));
                    }
                    let t = parts.next().unwrap_or("");
                    if !matches!(t, "counter" | "gauge" | "histogram" | "summary" | "untyped") {
                        return Err(err(format!("unknown type {t:?}")));
                    }
                    enter(name, n)?;
                    if s.samples
                        .iter()
                        .any(|x| family_of(&x.name, &s.types) == name)
                    {
                        return Err(err("TYPE after the family's samples".into()));
                    }
                    if s.types.insert(name.to_string(), t.to_string()).is_some() {
                        return Err(err("second TYPE".into()));
                    }
                    if t == "counter" && !name.ends_with("_total") {
                        return Err(err("counter name without _total".into()));
                    }
                }
                _ => {} // a comment
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !valid_name(name, true) {
            return Err(err("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before the value".into()))?;
        let mut fields = rest.split(' ');
        let v = fields.next().unwrap_or("");
        let value = parse_value(v).ok_or_else(|| err(format!("bad value {v:?}")))?;
        if let Some(ts) = fields.next()
            && ts.parse::<i64>().is_err()
        {
            return Err(err(format!("bad timestamp {ts:?}")));
        }
        if fields.next().is_some() {
            return Err(err("extra fields".into()));
        }
        let family = family_of(name, &s.types).to_string();
        let Some(t) = s.types.get(&family) else {
            return Err(err(format!("sample of {name} without a TYPE")));
        };
        if t == "counter" && !(value.is_finite() && value >= 0.0) {
            return Err(err("a counter must be finite and not negative".into()));
        }
        enter(&family, n)?;
        let key = format!("{name}{labels:?}");
        if !seen_series.insert(key) {
            return Err(err("duplicate series".into()));
        }
        s.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(s)
}

/// An HTTP answer as curl got it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// Header lines (name lower-cased, value trimmed).
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `curl -i` on `url` with `extra` arguments.
pub fn curl(url: &str, extra: &[&str]) -> Answer {
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--max-time", "20"])
        .args(extra)
        .arg(url)
        .output()
        .expect("run curl (apt-get install curl)");
    assert!(out.status.success(), "curl {url} {extra:?}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// `curl http://127.0.0.1:<port>/metrics`, checked: 200, the content type,
/// and a valid exposition.
pub fn scrape(port: u16) -> Scrape {
    let a = curl(&format!("http://127.0.0.1:{port}/metrics"), &[]);
    assert_eq!(a.status, 200, "{a:?}");
    assert!(
        a.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{a:?}"
    );
    validate(&a.body).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{}", a.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_text() {
        let s = validate(
            "# HELP a_total A.\n# TYPE a_total counter\na_total 3\n\
             # TYPE b gauge\nb{x=\"1\",y=\"q\\\"\\n\"} -1.5e3\nb{x=\"2\",} NaN 1700000000\n\
             # a comment\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 2\nh_count 1\n",
        )
        .unwrap();
        assert_eq!(s.value("a_total", &[]), 3.0);
        assert_eq!(s.value("b", &[("x", "1"), ("y", "q\"\n")]), -1500.0);
        assert_eq!(s.samples.len(), 6);
    }

    #[test]
    fn refuses_invalid_text() {
        for bad in [
            "",
            "a 1",
            "a 1\n",
            "# TYPE a gauge\na one\n",
            "# TYPE a gauge\na{x=1} 1\n",
            "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",
            "# TYPE a gauge\na{__x=\"1\"} 1\n",
            "# TYPE a gauge\na 1\na 2\n",
            "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x=\"y\"} 1\n",
            "# TYPE a gauge\na 1\n# TYPE a gauge\n",
            "# TYPE a_total counter\na_total -1\n",
            "# TYPE a counter\na 1\n",
            "# TYPE a gauge\n\na 1\n",
            "# TYPE a gauges\na 1\n",
            "# TYPE 1a gauge\n1a 1\n",
            "# TYPE a gauge\na{x=\"\\t\"} 1\n",
            "# TYPE a gauge\na 1 2 3\n",
            "# TYPE a gauge\na inf\n",
        ] {
            assert!(validate(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn our_writer_passes() {
        use bb_proto::metrics::{Exposition, Kind};
        let mut e = Exposition::new();
        e.single("x_total", Kind::Counter, "X \\ and\nnewline.", 5u64);
        e.family("y", Kind::Gauge, "Y.")
            .sample(&[("account", "0x01234567")], 1.25f64)
            .sample(&[("account", "q\"\\\n")], f64::INFINITY);
        let s = validate(&e.finish()).unwrap();
        assert_eq!(s.value("y", &[("account", "q\"\\\n")]), f64::INFINITY);
    }
}
