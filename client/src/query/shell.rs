//! Commands from standard input after those on the command line.
//!
//! At a terminal: line editing, history and completion ([`rustyline`]) with
//! the prompt `query > `; completion knows the commands, their option
//! letters, names in store directories (`cd a/b/<TAB>`), location names
//! (`compare -l`) and local paths (`lcd`, local arguments). Otherwise lines
//! are read as they come, as 0.13 does with its line editor: no prompt, and a
//! newline is printed at the end of input. With `-E` (no editing) 0.13 prints
//! the prompt before every line, and so do we.

use std::cell::RefCell;
use std::io::{BufRead, IsTerminal};
use std::rc::Rc;

use bb_proto::message::flags;
use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::QueryContext;
use super::nav::exclude_flags;
use super::parse::{COMMANDS, Cmd, Lookup, Parsed};

const PROMPT: &str = "query > ";

/// Runs commands from standard input until `quit` or the end of input.
/// `editing` is false with `-E`.
pub fn run(ctx: QueryContext, editing: bool) -> QueryContext {
    if editing && std::io::stdin().is_terminal() {
        editor_loop(ctx)
    } else {
        plain_loop(ctx, editing, &mut std::io::stdin().lock())
    }
}

/// Lines from `input`; see the module header for the prompt and the final
/// newline.
pub fn plain_loop(mut ctx: QueryContext, editing: bool, input: &mut dyn BufRead) -> QueryContext {
    let mut line = Vec::new();
    while !ctx.stopped() {
        if !editing {
            ctx.console.print(PROMPT.as_bytes());
        }
        ctx.console.flush();
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => {
                if editing {
                    ctx.console.print(b"\n");
                }
                break;
            }
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                ctx.do_command(&line);
            }
        }
    }
    ctx.console.flush();
    ctx
}

fn editor_loop(ctx: QueryContext) -> QueryContext {
    let shared = Rc::new(RefCell::new(ctx));
    let mut editor: Editor<QueryHelper, DefaultHistory> = match Editor::new() {
        Ok(e) => e,
        Err(_) => {
            let ctx = unwrap_shared(shared);
            return plain_loop(ctx, true, &mut std::io::stdin().lock());
        }
    };
    editor.set_helper(Some(QueryHelper {
        ctx: Rc::clone(&shared),
        files: FilenameCompleter::new(),
    }));
    let mut last = String::new();
    loop {
        shared.borrow_mut().console.flush();
        match editor.readline(PROMPT) {
            Ok(line) => {
                let mut c = shared.borrow_mut();
                c.do_command(line.as_bytes());
                c.console.flush();
                let stop = c.stopped();
                drop(c);
                if !line.trim().is_empty() && line != last {
                    let _ = editor.add_history_entry(line.as_str());
                    last = line;
                }
                if stop {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(_) => {
                shared.borrow_mut().console.print(b"\n");
                break;
            }
        }
    }
    drop(editor);
    unwrap_shared(shared)
}

fn unwrap_shared(shared: Rc<RefCell<QueryContext>>) -> QueryContext {
    match Rc::try_unwrap(shared) {
        Ok(c) => c.into_inner(),
        // The editor (the only other owner) has been dropped.
        Err(_) => unreachable!("the line editor still holds the query context"),
    }
}

struct QueryHelper {
    ctx: Rc<RefCell<QueryContext>>,
    files: FilenameCompleter,
}

impl Helper for QueryHelper {}
impl Hinter for QueryHelper {
    type Hint = String;
}
impl Highlighter for QueryHelper {}
impl Validator for QueryHelper {}

fn pair(s: String) -> Pair {
    Pair {
        display: s.clone(),
        replacement: s,
    }
}

/// What an argument position completes to.
enum Want {
    Nothing,
    RemoteDirs,
    RemoteFiles,
    Locations,
    LocalPaths,
}

impl Completer for QueryHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        rctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind([' ', '"']).map(|i| i + 1).unwrap_or(0);
        let text = &before[start..];
        let parsed = Parsed::new(before.as_bytes());
        if parsed.complete_words == 0 {
            let mut names: Vec<&str> = COMMANDS.iter().map(|(n, _, _)| *n).collect();
            names.push("ls");
            let c = names
                .into_iter()
                .filter(|n| n.starts_with(text))
                .map(|n| pair(format!("{n} ")))
                .collect();
            return Ok((start, c));
        }
        let Lookup::Found(_, letters, cmd) = parsed.command() else {
            return Ok((start, Vec::new()));
        };
        if text.starts_with('-') {
            let c = letters
                .chars()
                .filter(|l| !parsed.options.contains(&(*l as u8)))
                .map(|l| pair(format!("{text}{l}")))
                .collect();
            return Ok((start, c));
        }
        let arg = parsed.complete_words - 1;
        let has = |c: u8| parsed.options.contains(&c);
        let want = match (cmd, arg) {
            (Cmd::List | Cmd::Cd, 0) => Want::RemoteDirs,
            (Cmd::Restore, 0) if !has(b'i') => Want::RemoteDirs,
            (Cmd::Get | Cmd::Undelete | Cmd::Delete, 0) if !has(b'i') => Want::RemoteFiles,
            (Cmd::Compare, 0) if has(b'l') => Want::Locations,
            (Cmd::Compare, 0) => Want::RemoteDirs,
            (Cmd::Lcd | Cmd::Sh, _) | (Cmd::Get | Cmd::Restore | Cmd::Compare, 1) => {
                Want::LocalPaths
            }
            (Cmd::GetObject, 1) => Want::LocalPaths,
            _ => Want::Nothing,
        };
        match want {
            Want::Nothing => Ok((start, Vec::new())),
            Want::LocalPaths => self.files.complete(line, pos, rctx),
            Want::Locations => {
                let Ok(ctx) = self.ctx.try_borrow() else {
                    return Ok((start, Vec::new()));
                };
                let c = ctx
                    .compare
                    .locations
                    .iter()
                    .filter(|l| l.name.starts_with(text))
                    .map(|l| pair(l.name.clone()))
                    .collect();
                Ok((start, c))
            }
            Want::RemoteDirs | Want::RemoteFiles => {
                let Ok(mut ctx) = self.ctx.try_borrow_mut() else {
                    return Ok((start, Vec::new()));
                };
                let files = matches!(want, Want::RemoteFiles);
                let c = remote_names(&mut ctx, text, files, has(b'o'), has(b'd'));
                Ok((start, c.into_iter().map(pair).collect()))
            }
        }
    }
}

/// Names in the store directory that `text` points into which start with
/// its last part; directories end in `/`.
fn remote_names(
    ctx: &mut QueryContext,
    text: &str,
    files: bool,
    old: bool,
    deleted: bool,
) -> Vec<String> {
    let (dir_part, prefix) = match text.rfind('/') {
        Some(i) => (&text[..=i], &text[i + 1..]),
        None => ("", text),
    };
    let dir = if dir_part.is_empty() {
        ctx.current_dir()
    } else {
        match ctx.find_directory(dir_part.as_bytes(), old, deleted) {
            Ok(Some((id, _))) => id,
            _ => return Vec::new(),
        }
    };
    let include = if files {
        flags::INCLUDE_EVERYTHING
    } else {
        flags::DIR
    };
    let Ok(listing) =
        ctx.store
            .as_read()
            .list_directory(dir, include, exclude_flags(old, deleted), false)
    else {
        return Vec::new();
    };
    let mut out: Vec<String> = listing
        .entries
        .iter()
        .filter_map(|e| {
            let name = String::from_utf8(e.name.decrypt(&ctx.keys).ok()?).ok()?;
            if !name.starts_with(prefix) {
                return None;
            }
            let mut full = format!("{dir_part}{name}");
            if e.flags & bb_format::directory::Entry::DIR != 0 {
                full.push('/');
            }
            if full.contains(' ') {
                full = format!("\"{full}\"");
            }
            Some(full)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
