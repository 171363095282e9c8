//! The Prometheus text exposition format, version 0.0.4: `# HELP`, `# TYPE`,
//! then the family's samples, one family after the other.
//!
//! Owns escaping and number formatting. The names and label sets are the
//! caller's (constants in the daemons), so a bad name is a programming error
//! caught by a debug assertion and the unit tests, not an outside input.
//! Integers are written exactly (a `u64` byte counter past 2^53 must not lose
//! its last digits through `f64`).

use std::collections::BTreeSet;
use std::fmt::Write;

/// What `# TYPE` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A sample's value as the text format writes it.
pub trait SampleValue {
    fn write_to(&self, out: &mut String);
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl SampleValue for $t {
            fn write_to(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
int_value!(u64, i64, u32, i32, usize);

impl SampleValue for bool {
    fn write_to(&self, out: &mut String) {
        out.push(if *self { '1' } else { '0' });
    }
}

impl SampleValue for f64 {
    fn write_to(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

/// Builds one scrape's text.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
    family: Option<String>,
    families: BTreeSet<String>,
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*` (label names: the same without `:`).
pub fn valid_name(name: &str, colons: bool) -> bool {
    let ok = |c: char, first: bool| {
        c.is_ascii_alphabetic()
            || c == '_'
            || (colons && c == ':')
            || (!first && c.is_ascii_digit())
    };
    let mut chars = name.chars();
    chars.next().is_some_and(|c| ok(c, true)) && chars.all(|c| ok(c, false))
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts the family `name`; the samples that follow belong to it.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Exposition {
        debug_assert!(valid_name(name, true), "metric name {name:?}");
        debug_assert!(
            self.families.insert(name.to_string()),
            "family {name} twice"
        );
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.name());
        self.family = Some(name.to_string());
        self
    }

    /// A sample of the current family with `labels` (name, value).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl SampleValue) -> &mut Exposition {
        let Some(name) = &self.family else {
            debug_assert!(false, "sample before any family");
            return self;
        };
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                debug_assert!(valid_name(k, false) && !k.starts_with("__"), "label {k:?}");
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value.write_to(&mut self.out);
        self.out.push('\n');
        self
    }

    /// A family with one unlabelled sample.
    pub fn single(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        value: impl SampleValue,
    ) -> &mut Exposition {
        self.family(name, kind, help).sample(&[], value)
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// The Content-Type of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_escaped() {
        let mut e = Exposition::new();
        e.single("a_total", Kind::Counter, "Things\\done\nso far.", u64::MAX);
        e.family("b", Kind::Gauge, "B.")
            .sample(&[("account", "0x01234567")], -3i64)
            .sample(&[("x", "q\"\\\n"), ("y", "")], 1.5f64)
            .sample(&[], f64::NAN)
            .sample(&[], f64::NEG_INFINITY)
            .sample(&[], true);
        assert_eq!(
            e.finish(),
            "# HELP a_total Things\\\\done\\nso far.\n# TYPE a_total counter\n\
             a_total 18446744073709551615\n\
             # HELP b B.\n# TYPE b gauge\nb{account=\"0x01234567\"} -3\n\
             b{x=\"q\\\"\\\\\\n\",y=\"\"} 1.5\nb NaN\nb -Inf\nb 1\n"
        );
    }

    #[test]
    fn names() {
        assert!(valid_name("bbstored_up", true));
        assert!(valid_name("a:b", true));
        assert!(!valid_name("a:b", false));
        assert!(!valid_name("1a", true));
        assert!(!valid_name("", true));
        assert!(!valid_name("a-b", true));
    }
}
