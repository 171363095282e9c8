//! What `gen-docs` writes: every page of every tool, rendered into the files
//! under `contrib/` (man pages, bash/zsh/fish completions). The suite
//! `tests/docs.rs` checks that the committed files are exactly these, so the
//! pages in `bb_store::doc`, `bb_client::doc` and `bb_fs::doc` stay the one
//! source. Must not know what the pages say.

use std::path::PathBuf;

use bb_format::clidoc::{self, Page};

/// The date in the man pages' footers: the last time their text changed in
/// substance. A constant, so that generating twice gives the same bytes.
pub const DATE: &str = "2026-11-25";

/// Every page, server first.
pub fn pages() -> Vec<&'static Page> {
    let mut v: Vec<&'static Page> = Vec::new();
    v.extend(bb_store::doc::PAGES);
    v.extend(bb_client::doc::PAGES);
    v.push(&bb_fs::doc::BBACKUPFS);
    v
}

/// (path under the workspace root, contents) of every generated file.
pub fn generate() -> Vec<(PathBuf, String)> {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = Vec::new();
    for p in pages() {
        out.push((
            PathBuf::from("contrib/man").join(p.man_file()),
            clidoc::man(p, version, DATE),
        ));
        if p.is_tool() {
            let c = PathBuf::from("contrib/completions");
            out.push((c.join("bash").join(p.name), clidoc::bash(p)));
            out.push((c.join("zsh").join(format!("_{}", p.name)), clidoc::zsh(p)));
            out.push((
                c.join("fish").join(format!("{}.fish", p.name)),
                clidoc::fish(p),
            ));
        }
    }
    out
}

/// The workspace root (this crate is `tests/` in it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}
