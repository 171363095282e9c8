//! Command-line documentation: one typed description per tool or config file
//! ([`Page`]), and pure renderers from it to the `--help` text, a roff man
//! page, and bash, zsh and fish completions.
//!
//! Why here: every crate that owns a binary (bb-store, bb-client, bb-fs) depends
//! on bb-format, and this is text in, text out like the rest of the crate. The
//! pages themselves live with the binaries (`bb_store::doc`, `bb_client::doc`,
//! `bb_fs::doc`); config-file pages take their keys from the tables the config
//! readers check keys against, so a key cannot be accepted and undocumented.
//!
//! Adding an option is one line in the tool's page, e.g.
//! `Opt::short('o', "Log to a file as well").arg("file", Value::File),`; adding
//! a config key is one line in the reader's key table,
//! `Key::new("IdleTimeout", "seconds", "Close a session idle this long."),`.
//!
//! Must not know: which tools exist, files, processes. The generator in bb-tests
//! writes `contrib/` from these renderers, and a test there keeps the committed
//! files equal to what the pages give.

use std::fmt::Write as _;

/// What an option's argument or an operand is, for completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// Free text (a tag, a host name, a number): nothing to complete.
    Text,
    File,
    Dir,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// One of the page's [`Page::commands`].
    Command,
}

/// One option: `-c <file>`, `--once`, `-h, --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    pub short: Option<char>,
    pub long: Option<&'static str>,
    /// The argument's name as usage shows it (`file`), if the option takes one.
    pub arg: Option<(&'static str, Value)>,
    pub help: &'static str,
}

impl Opt {
    pub const fn short(c: char, help: &'static str) -> Opt {
        Opt {
            short: Some(c),
            long: None,
            arg: None,
            help,
        }
    }
    pub const fn long(name: &'static str, help: &'static str) -> Opt {
        Opt {
            short: None,
            long: Some(name),
            arg: None,
            help,
        }
    }
    pub const fn both(c: char, name: &'static str, help: &'static str) -> Opt {
        Opt {
            short: Some(c),
            long: Some(name),
            arg: None,
            help,
        }
    }
    /// The option takes an argument called `name`.
    pub const fn arg(self, name: &'static str, value: Value) -> Opt {
        Opt {
            arg: Some((name, value)),
            ..self
        }
    }

    /// `-c <file>`, `-h, --help`, `--location <name>`.
    fn label(&self) -> String {
        let mut s = String::new();
        if let Some(c) = self.short {
            s.push('-');
            s.push(c);
        }
        if let Some(l) = self.long {
            if !s.is_empty() {
                s.push_str(", ");
            }
            s.push_str("--");
            s.push_str(l);
        }
        if let Some((a, _)) = self.arg {
            let _ = write!(s, " <{a}>");
        }
        s
    }

    /// Every spelling: `-c`, `--config`.
    fn words(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(c) = self.short {
            w.push(format!("-{c}"));
        }
        if let Some(l) = self.long {
            w.push(format!("--{l}"));
        }
        w
    }
}

/// A name with an explanation: an operand, an exit status, a file, an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub name: &'static str,
    pub help: &'static str,
}

/// `Item { name, help }` in one short call.
pub const fn item(name: &'static str, help: &'static str) -> Item {
    Item { name, help }
}

/// A positional argument. A name ending in `...` repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operand {
    pub name: &'static str,
    pub value: Value,
    pub help: &'static str,
}

pub const fn operand(name: &'static str, value: Value, help: &'static str) -> Operand {
    Operand { name, value, help }
}

/// A command of a tool (bbackupctl's `sync`, bbackupquery's `list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    pub name: &'static str,
    /// What follows the name in usage: `[options] <directory-name>`.
    pub args: &'static str,
    pub help: &'static str,
    pub options: &'static [Opt],
}

impl Command {
    pub const fn new(name: &'static str, args: &'static str, help: &'static str) -> Command {
        Command {
            name,
            args,
            help,
            options: &[],
        }
    }
    pub const fn options(self, options: &'static [Opt]) -> Command {
        Command { options, ..self }
    }
}

/// One key of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    /// What the value is, as the page shows it (`seconds`, `path`, `yes|no`).
    pub value: &'static str,
    pub help: &'static str,
}

impl Key {
    pub const fn new(name: &'static str, value: &'static str, help: &'static str) -> Key {
        Key { name, value, help }
    }
}

/// The keys allowed at one place of a config file (the top level, a block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBlock {
    /// `""` for the top level, else how the block is written (`Server`).
    pub name: &'static str,
    pub intro: &'static str,
    pub keys: &'static [Key],
}

/// The names of a key table, for the readers that check keys against it.
pub fn key_names(keys: &[Key]) -> Vec<&'static str> {
    keys.iter().map(|k| k.name).collect()
}

/// One tool or one config file.
///
/// Text fields are paragraphs separated by a blank line; a paragraph whose
/// lines all start with two spaces is kept as it is (a layout, a sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub name: &'static str,
    /// Man section: 1 user commands, 5 file formats, 8 administration.
    pub section: u8,
    /// The NAME line after the dash.
    pub summary: &'static str,
    /// Usage lines, without the tool's name.
    pub synopsis: &'static [&'static str],
    pub description: &'static str,
    pub options: &'static [Opt],
    pub operands: &'static [Operand],
    /// Heading for `commands` (`COMMANDS`, `ACTIONS`).
    pub commands_title: &'static str,
    pub commands: &'static [Command],
    /// Config files: the keys, by block.
    pub keys: &'static [KeyBlock],
    /// Further sections: (title, text).
    pub extra: &'static [(&'static str, &'static str)],
    pub exit_status: &'static [Item],
    pub environment: &'static [Item],
    pub files: &'static [Item],
    pub examples: &'static [Item],
    /// `bbstored.conf(5)`.
    pub see_also: &'static [&'static str],
}

impl Page {
    /// Everything empty: pages are written `Page { name, .., ..Page::EMPTY }`.
    pub const EMPTY: Page = Page {
        name: "",
        section: 8,
        summary: "",
        synopsis: &[],
        description: "",
        options: &[],
        operands: &[],
        commands_title: "COMMANDS",
        commands: &[],
        keys: &[],
        extra: &[],
        exit_status: &[],
        environment: &[],
        files: &[],
        examples: &[],
        see_also: &[],
    };

    /// The file name of the man page: `bbstored.8`.
    pub fn man_file(&self) -> String {
        format!("{}.{}", self.name, self.section)
    }

    /// Whether completions make sense (a tool, not a config file).
    pub fn is_tool(&self) -> bool {
        self.section != 5
    }
}

/// Whether `args` ask only for help: `--help` or `-h` alone. Tools whose 0.13
/// command line has no options use this, so that `-h` among other arguments
/// (a directory, an account name) keeps its 0.13 meaning.
pub fn only_help(args: &[String]) -> bool {
    matches!(args, [a] if a == "--help" || a == "-h")
}

// ---------------------------------------------------------------------------
// --help

const WIDTH: usize = 79;
/// Column where option help starts in `--help`.
const HELP_COL: usize = 24;

fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    text.split("\n\n")
        .map(|p| p.trim_matches('\n'))
        .filter(|p| !p.is_empty())
}

fn verbatim(p: &str) -> bool {
    p.lines().all(|l| l.starts_with("  ") || l.is_empty())
}

/// Greedy word wrap of `text` to `width`, every line prefixed by `indent`
/// spaces except the first, which the caller has already started at `first`.
fn wrap_into(out: &mut String, text: &str, first: usize, indent: usize) {
    let mut col = first;
    let mut at_start = true;
    for w in text.split_whitespace() {
        if !at_start && col + 1 + w.len() > WIDTH {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
            at_start = true;
        }
        if !at_start {
            out.push(' ');
            col += 1;
        }
        out.push_str(w);
        col += w.len();
        at_start = false;
    }
    out.push('\n');
}

fn text_block(out: &mut String, text: &str, indent: usize) {
    let mut first = true;
    for p in paragraphs(text) {
        if !first {
            out.push('\n');
        }
        first = false;
        if verbatim(p) {
            for l in p.lines() {
                let _ = writeln!(out, "{}{l}", " ".repeat(indent));
            }
        } else {
            out.push_str(&" ".repeat(indent));
            wrap_into(out, p, indent, indent);
        }
    }
}

/// `label` at two spaces, `help` wrapped from `col` (or on the next line when
/// the label is too long).
fn labelled(out: &mut String, label: &str, help: &str, col: usize) {
    out.push_str("  ");
    out.push_str(label);
    let used = 2 + label.len();
    if used + 2 > col {
        out.push('\n');
        out.push_str(&" ".repeat(col));
    } else {
        out.push_str(&" ".repeat(col - used));
    }
    // Help text with paragraphs keeps them on separate lines.
    let mut first = true;
    for p in paragraphs(help) {
        if !first {
            out.push_str(&" ".repeat(col));
        }
        first = false;
        wrap_into(out, p, col, col);
    }
    if first {
        out.push('\n');
    }
}

fn opt_section(out: &mut String, title: &str, opts: &[Opt]) {
    if opts.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title}:");
    for o in opts {
        labelled(out, &o.label(), o.help, HELP_COL);
    }
}

/// The `--help` text: usage, summary, description, options, operands,
/// commands, exit status, and where the manual page is.
pub fn help(p: &Page) -> String {
    let mut out = String::new();
    for (i, s) in p.synopsis.iter().enumerate() {
        let lead = if i == 0 { "Usage:" } else { "      " };
        let _ = writeln!(out, "{lead} {} {s}", p.name);
    }
    let _ = writeln!(out, "\n{}", sentence(p.summary));
    if !p.description.is_empty() {
        out.push('\n');
        text_block(&mut out, p.description, 0);
    }
    opt_section(&mut out, "Options", p.options);
    if !p.operands.is_empty() {
        out.push_str("\nArguments:\n");
        for o in p.operands {
            labelled(&mut out, o.name, o.help, HELP_COL);
        }
    }
    if !p.commands.is_empty() {
        let _ = writeln!(out, "\n{}:", title_case(p.commands_title));
        for c in p.commands {
            let label = if c.args.is_empty() {
                c.name.to_string()
            } else {
                format!("{} {}", c.name, c.args)
            };
            labelled(&mut out, &label, c.help, HELP_COL);
            for o in c.options {
                labelled(
                    &mut out,
                    &format!("    {}", o.label()),
                    o.help,
                    HELP_COL + 4,
                );
            }
        }
    }
    for (title, text) in p.extra {
        let _ = writeln!(out, "\n{}:", title_case(title));
        text_block(&mut out, text, 2);
    }
    if !p.exit_status.is_empty() {
        out.push_str("\nExit status:\n");
        for e in p.exit_status {
            labelled(&mut out, e.name, e.help, 8);
        }
    }
    let _ = writeln!(out, "\nSee {}({}) for more.", p.name, p.section);
    out
}

fn sentence(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => {
            let mut t: String = f.to_uppercase().chain(c).collect();
            if !t.ends_with('.') {
                t.push('.');
            }
            t
        }
        None => String::new(),
    }
}

fn title_case(s: &str) -> String {
    let lower = s.to_lowercase();
    let mut c = lower.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------
// roff

/// Escapes text for roff: backslashes, and a leading `.` or `'` that would
/// read as a request. Hyphens become `\-` (a real minus, so options can be
/// copied and searched).
fn roff(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            _ => out.push(ch),
        }
    }
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

fn roff_text(out: &mut String, text: &str) {
    let mut first = true;
    for p in paragraphs(text) {
        if !first {
            out.push_str(".PP\n");
        }
        first = false;
        if verbatim(p) {
            out.push_str(".RS 4\n.nf\n");
            for l in p.lines() {
                let _ = writeln!(out, "{}", roff(l.strip_prefix("  ").unwrap_or(l)));
            }
            out.push_str(".fi\n.RE\n");
        } else {
            for l in p.lines() {
                let l = l.trim();
                if !l.is_empty() {
                    let _ = writeln!(out, "{}", roff(l));
                }
            }
        }
    }
}

fn roff_opt(o: &Opt) -> String {
    let mut parts = Vec::new();
    for w in o.words() {
        parts.push(format!("\\fB{}\\fR", roff(&w)));
    }
    let mut s = parts.join(", ");
    if let Some((a, _)) = o.arg {
        let _ = write!(s, " \\fI{}\\fR", roff(a));
    }
    s
}

/// The man page, in the man macros. `date` goes in the page footer (a fixed
/// string, so that the output depends on the page alone).
pub fn man(p: &Page, version: &str, date: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        ".\\\" Generated from the {} page source by `cargo run -p bb-tests --bin gen-docs`; do not edit.",
        p.name
    );
    let _ = writeln!(
        out,
        ".TH {} {} \"{}\" \"Box Backup (Rust) {}\" \"Box Backup\"",
        roff(&p.name.to_uppercase()),
        p.section,
        // A date keeps its hyphens: mandoc parses YYYY-MM-DD.
        date.replace(['"', '\\'], ""),
        roff(version)
    );
    out.push_str(".SH NAME\n");
    let _ = writeln!(out, "{} \\- {}", roff(p.name), roff(p.summary));
    if !p.synopsis.is_empty() {
        out.push_str(".SH SYNOPSIS\n");
        for (i, s) in p.synopsis.iter().enumerate() {
            if i > 0 {
                out.push_str(".br\n");
            }
            let _ = writeln!(out, "\\fB{}\\fR {}", roff(p.name), roff(s));
        }
    }
    if !p.description.is_empty() {
        out.push_str(".SH DESCRIPTION\n");
        roff_text(&mut out, p.description);
    }
    if !p.options.is_empty() {
        out.push_str(".SH OPTIONS\n");
        for o in p.options {
            let _ = writeln!(out, ".TP\n{}", roff_opt(o));
            roff_text(&mut out, o.help);
        }
    }
    if !p.operands.is_empty() {
        out.push_str(".SH ARGUMENTS\n");
        for o in p.operands {
            let _ = writeln!(out, ".TP\n\\fI{}\\fR", roff(o.name));
            roff_text(&mut out, o.help);
        }
    }
    if !p.commands.is_empty() {
        let _ = writeln!(out, ".SH {}", roff(p.commands_title));
        for c in p.commands {
            let _ = write!(out, ".TP\n\\fB{}\\fR", roff(c.name));
            if !c.args.is_empty() {
                let _ = write!(out, " {}", roff(c.args));
            }
            out.push('\n');
            roff_text(&mut out, c.help);
            if !c.options.is_empty() {
                out.push_str(".RS\n");
                for o in c.options {
                    let _ = writeln!(out, ".TP\n{}", roff_opt(o));
                    roff_text(&mut out, o.help);
                }
                out.push_str(".RE\n");
            }
        }
    }
    for b in p.keys {
        if b.name.is_empty() {
            out.push_str(".SH KEYS\n");
        } else {
            let _ = writeln!(out, ".SH {} BLOCK", roff(&b.name.to_uppercase()));
        }
        if !b.intro.is_empty() {
            roff_text(&mut out, b.intro);
        }
        for k in b.keys {
            let _ = writeln!(
                out,
                ".TP\n\\fB{}\\fR = \\fI{}\\fR",
                roff(k.name),
                roff(k.value)
            );
            roff_text(&mut out, k.help);
        }
    }
    for (title, text) in p.extra {
        let _ = writeln!(out, ".SH {}", roff(title));
        roff_text(&mut out, text);
    }
    let items = |out: &mut String, title: &str, items: &[Item], bold: bool| {
        if items.is_empty() {
            return;
        }
        let _ = writeln!(out, ".SH {title}");
        for i in items {
            let (a, b) = if bold {
                ("\\fB", "\\fR")
            } else {
                ("\\fI", "\\fR")
            };
            let _ = writeln!(out, ".TP\n{a}{}{b}", roff(i.name));
            roff_text(out, i.help);
        }
    };
    items(&mut out, "EXIT STATUS", p.exit_status, true);
    items(&mut out, "ENVIRONMENT", p.environment, true);
    items(&mut out, "FILES", p.files, false);
    if !p.examples.is_empty() {
        out.push_str(".SH EXAMPLES\n");
        for (i, e) in p.examples.iter().enumerate() {
            if i > 0 {
                out.push_str(".PP\n");
            }
            roff_text(&mut out, e.help);
            let _ = writeln!(out, ".RS 4\n.nf\n{}\n.fi\n.RE", roff(e.name));
        }
    }
    if !p.see_also.is_empty() {
        out.push_str(".SH SEE ALSO\n");
        let refs: Vec<String> = p
            .see_also
            .iter()
            .map(|r| match r.split_once('(') {
                Some((n, s)) => format!("\\fB{}\\fR({s}", roff(n)),
                None => roff(r),
            })
            .collect();
        let _ = writeln!(out, "{}", refs.join(",\n"));
    }
    out
}

// ---------------------------------------------------------------------------
// completions

/// The shell function name for a tool: `_bb_bbstored_config`.
fn fn_name(p: &Page) -> String {
    format!("_bb_{}", p.name.replace(['-', '.'], "_"))
}

fn command_names(p: &Page) -> String {
    p.commands
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The bash completion of a value of kind `v` (an option's argument or an
/// operand) of page `p`.
fn bash_action(v: Value, p: &Page) -> String {
    match v {
        Value::File => "COMPREPLY=($(compgen -f -- \"$cur\"))".to_string(),
        Value::Dir => "COMPREPLY=($(compgen -d -- \"$cur\"))".to_string(),
        Value::Choice(c) => format!("COMPREPLY=($(compgen -W '{}' -- \"$cur\"))", c.join(" ")),
        Value::Command => format!(
            "COMPREPLY=($(compgen -W '{}' -- \"$cur\"))",
            command_names(p)
        ),
        Value::Text => "COMPREPLY=()".to_string(),
    }
}

/// bash: option words, option arguments (files, directories, choices), and
/// the commands where the operands say a command stands.
pub fn bash(p: &Page) -> String {
    let mut out = String::new();
    let f = fn_name(p);
    let _ = writeln!(
        out,
        "# bash completion for {} (generated by gen-docs; do not edit)",
        p.name
    );
    let _ = writeln!(out, "{f}()\n{{");
    out.push_str("    local cur prev\n");
    out.push_str("    cur=${COMP_WORDS[COMP_CWORD]}\n");
    out.push_str("    prev=${COMP_WORDS[COMP_CWORD-1]}\n");
    // Arguments of options.
    let mut arms = Vec::new();
    for o in p.options {
        if let Some((_, v)) = o.arg {
            let action = bash_action(v, p);
            arms.push((o.words().join("|"), action));
        }
    }
    if !arms.is_empty() {
        out.push_str("    case $prev in\n");
        for (w, a) in arms {
            let _ = writeln!(
                out,
                "        {w})\n            {a}\n            return\n            ;;"
            );
        }
        out.push_str("    esac\n");
    }
    let words: Vec<String> = p.options.iter().flat_map(|o| o.words()).collect();
    if !words.is_empty() {
        out.push_str("    if [[ $cur == -* ]]; then\n");
        let _ = writeln!(
            out,
            "        COMPREPLY=($(compgen -W '{}' -- \"$cur\"))\n        return\n    fi",
            words.join(" ")
        );
    }
    // Operands: count the words that are not options or their arguments.
    if !p.operands.is_empty() {
        let with_arg: Vec<String> = p
            .options
            .iter()
            .filter(|o| o.arg.is_some())
            .flat_map(|o| o.words())
            .collect();
        out.push_str("    local i n=0\n");
        out.push_str("    for ((i = 1; i < COMP_CWORD; i++)); do\n");
        out.push_str("        case ${COMP_WORDS[i]} in\n");
        if !with_arg.is_empty() {
            let _ = writeln!(out, "            {}) ((i++)) ;;", with_arg.join("|"));
        }
        out.push_str("            -*) ;;\n            *) ((n++)) ;;\n        esac\n    done\n");
        out.push_str("    case $n in\n");
        for (i, o) in p.operands.iter().enumerate() {
            let repeat = o.name.ends_with("...");
            let pat = if repeat {
                "*".to_string()
            } else {
                i.to_string()
            };
            let action = bash_action(o.value, p);
            let _ = writeln!(out, "        {pat}) {action} ;;");
            if repeat {
                break;
            }
        }
        out.push_str("        *) COMPREPLY=() ;;\n    esac\n");
    } else {
        out.push_str("    COMPREPLY=($(compgen -f -- \"$cur\"))\n");
    }
    out.push_str("}\n");
    let _ = writeln!(out, "complete -F {f} {}", p.name);
    out
}

/// Quoting for zsh `_arguments` specs inside single quotes.
fn zsh_desc(s: &str) -> String {
    one_line(s)
        .replace('\\', "\\\\")
        .replace('\'', "'\\''")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace(':', "\\:")
}

fn zsh_action(p: &Page, v: Value) -> String {
    match v {
        Value::File => "_files".into(),
        Value::Dir => "_files -/".into(),
        Value::Text => " ".into(),
        Value::Choice(c) => format!("({})", c.join(" ")),
        Value::Command => {
            let items: Vec<String> = p
                .commands
                .iter()
                .map(|c| {
                    let d = one_line(c.help)
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace(':', "\\:")
                        .replace('\'', "'\\''");
                    format!("{}\\:\"{d}\"", c.name)
                })
                .collect();
            format!("(({}))", items.join(" "))
        }
    }
}

/// zsh: an `_arguments` call with every option and operand.
pub fn zsh(p: &Page) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "#compdef {}", p.name);
    let _ = writeln!(
        out,
        "# zsh completion for {} (generated by gen-docs; do not edit)",
        p.name
    );
    out.push_str("_arguments -s -S \\\n");
    for o in p.options {
        let words = o.words();
        let desc = zsh_desc(o.help);
        let arg = match o.arg {
            Some((a, v)) => format!(":{a}:{}", zsh_action(p, v)),
            None => String::new(),
        };
        if words.len() == 2 {
            let _ = writeln!(
                out,
                "  '({0} {1})'{{{0},{1}}}'[{desc}]{arg}' \\",
                words[0], words[1]
            );
        } else {
            let _ = writeln!(out, "  '{}[{desc}]{arg}' \\", words[0]);
        }
    }
    for (i, o) in p.operands.iter().enumerate() {
        let n = if o.name.ends_with("...") {
            "*".to_string()
        } else {
            (i + 1).to_string()
        };
        let _ = writeln!(
            out,
            "  '{n}:{}:{}' \\",
            zsh_desc(o.name.trim_end_matches('.')),
            zsh_action(p, o.value)
        );
    }
    if p.operands.is_empty() {
        out.push_str("  '*:file:_files' \\\n");
    }
    // The last line continued with a backslash: end the command.
    out.push_str("  && return 0\n");
    out
}

/// The first paragraph of a help text on one line (completions show one line).
fn one_line(s: &str) -> String {
    let first = paragraphs(s).next().unwrap_or("");
    first.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn fish_quote(s: &str) -> String {
    format!(
        "'{}'",
        one_line(s).replace('\\', "\\\\").replace('\'', "\\'")
    )
}

/// fish: one `complete` line per option and per command.
pub fn fish(p: &Page) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# fish completion for {} (generated by gen-docs; do not edit)",
        p.name
    );
    let n = p.name;
    let _ = writeln!(out, "complete -c {n} -f");
    for o in p.options {
        let mut line = format!("complete -c {n}");
        if let Some(c) = o.short {
            let _ = write!(line, " -s {c}");
        }
        if let Some(l) = o.long {
            let _ = write!(line, " -l {l}");
        }
        match o.arg {
            Some((_, Value::File)) => line.push_str(" -r -F"),
            Some((_, Value::Dir)) => line.push_str(" -r -a '(__fish_complete_directories)'"),
            Some((_, Value::Choice(c))) => {
                let _ = write!(line, " -x -a '{}'", c.join(" "));
            }
            Some((_, Value::Command)) => {
                let _ = write!(line, " -x -a '{}'", command_names(p));
            }
            Some((_, Value::Text)) => line.push_str(" -x"),
            None => {}
        }
        let _ = writeln!(out, "{line} -d {}", fish_quote(o.help));
    }
    let cmd_operand = p.operands.iter().any(|o| o.value == Value::Command);
    if cmd_operand {
        let names = command_names(p);
        for c in p.commands {
            let _ = writeln!(
                out,
                "complete -c {n} -n 'not __fish_seen_subcommand_from {names}' -a {} -d {}",
                c.name,
                fish_quote(c.help)
            );
        }
    }
    if p.operands
        .iter()
        .any(|o| matches!(o.value, Value::File | Value::Dir))
    {
        let _ = writeln!(out, "complete -c {n} -F");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: Page = Page {
        name: "tool",
        section: 8,
        summary: "does a thing",
        synopsis: &["[options] <command>"],
        description: "First paragraph, long enough to be wrapped when it is rendered as help text at seventy-nine columns.\n\n  verbatim line\n  another",
        options: &[
            Opt::short('c', "Use this config file").arg("file", Value::File),
            Opt::both('h', "help", "Show this help"),
            Opt::long("level", "Log level").arg("level", Value::Choice(&["error", "info"])),
        ],
        operands: &[operand("command", Value::Command, "What to do")],
        commands: &[Command::new("sync", "", "Start a sync [now]: 'really'")],
        ..Page::EMPTY
    };

    #[test]
    fn help_wraps_and_lists() {
        let h = help(&PAGE);
        assert!(h.starts_with("Usage: tool [options] <command>\n\nDoes a thing.\n"));
        assert!(h.lines().all(|l| l.len() <= WIDTH), "{h}");
        assert!(h.contains("\n  verbatim line\n  another\n"));
        assert!(h.contains("  -c <file>             Use this config file\n"));
        assert!(h.contains("  -h, --help            Show this help\n"));
        assert!(h.contains("Commands:\n  sync"));
    }

    #[test]
    fn man_escapes() {
        let m = man(&PAGE, "0.1", "2026-01-02");
        assert!(m.contains(".TH TOOL 8 \"2026-01-02\" \"Box Backup (Rust) 0.1\""));
        assert!(m.contains("\\fB\\-c\\fR \\fIfile\\fR"));
        assert!(m.contains("\\fB\\-h\\fR, \\fB\\-\\-help\\fR"));
        assert_eq!(roff(".x\\y"), "\\&.x\\ey");
    }

    #[test]
    fn completions_name_everything() {
        let b = bash(&PAGE);
        assert!(b.contains("complete -F _bb_tool tool"));
        assert!(b.contains("compgen -W 'error info'"));
        let z = zsh(&PAGE);
        assert!(z.starts_with("#compdef tool\n"));
        assert!(
            z.contains("sync\\:\"Start a sync [now]\\: '\\''really'\\''\""),
            "{z}"
        );
        let f = fish(&PAGE);
        assert!(f.contains("complete -c tool -s c -r -F -d 'Use this config file'"));
        assert!(f.contains("-a sync -d 'Start a sync [now]: \\'really\\''"));
    }
}
