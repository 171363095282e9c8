//! Writes the man pages and shell completions under `contrib/` from the pages
//! in the tools' crates: `cargo run -p bb-tests --bin gen-docs`. Files that
//! no page makes any more are removed, so a renamed tool leaves nothing behind.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = bb_tests::docs::workspace_root();
    let files = bb_tests::docs::generate();
    let wanted: BTreeSet<PathBuf> = files.iter().map(|(p, _)| root.join(p)).collect();
    for dir in [
        "contrib/man",
        "contrib/completions/bash",
        "contrib/completions/zsh",
        "contrib/completions/fish",
    ] {
        let dir = root.join(dir);
        std::fs::create_dir_all(&dir)?;
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            if p.is_file() && !wanted.contains(&p) {
                std::fs::remove_file(&p)?;
            }
        }
    }
    for (p, text) in &files {
        std::fs::write(root.join(p), text)?;
    }
    println!(
        "wrote {} files under {}",
        files.len(),
        root.join("contrib").display()
    );
    Ok(())
}
