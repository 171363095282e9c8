//! `usage [-m]` (0.13's table or machine-readable lines) and `help [topic]`
//! (0.13's texts, [`super::help_text`]).

use super::QueryContext;
use super::help_text::TOPICS;
use super::parse::Opts;

/// 0.13's `HumanReadableSize`: two decimals, B/kB/MB/GB by 1024s.
fn human(bytes: i64) -> String {
    let mut v = bytes as f64;
    let mut unit = " B";
    for u in ["kB", "MB", "GB"] {
        if v > 1024.0 {
            v /= 1024.0;
            unit = u;
        }
    }
    format!("{v:.2} {unit}")
}

/// One line of the table (`FormatUsageLineStart` + `FormatUsageBar`).
pub fn usage_line(
    name: &str,
    blocks: i64,
    block_size: i64,
    hard_limit: i64,
    machine: bool,
) -> String {
    let bytes = blocks.saturating_mul(block_size);
    let max = hard_limit.saturating_mul(block_size);
    // 0.13 divides by the hard limit unguarded; an account without one shows 0%.
    let percent = if max == 0 {
        0
    } else {
        (i128::from(bytes) * 100 / i128::from(max)) as i64
    };
    if machine {
        return format!("{name}: {} kB, {percent}%", bytes >> 10);
    }
    let stars = if max <= 0 {
        0
    } else {
        (i128::from(bytes) * 16 / i128::from(max)).clamp(0, 16) as usize
    };
    format!(
        "{name:>20}: {blocks:>10} blocks, {:>10}, {percent:>3}% |{}{}|",
        human(bytes),
        "*".repeat(stars),
        " ".repeat(16 - stars)
    )
}

/// `usage [-m]`.
pub fn usage(ctx: &mut QueryContext, opts: &Opts) {
    let u = match ctx.store.as_read().usage() {
        Ok(u) => u,
        Err(e) => {
            ctx.store_failed("Failed to get account usage", &e);
            return;
        }
    };
    let bs = i64::from(u.block_size);
    let hard = u.blocks_hard_limit;
    let m = opts.has('m');
    let mut out = String::new();
    for (name, blocks) in [
        ("Used", u.blocks_used),
        ("Old files", u.blocks_in_old_files),
        ("Deleted files", u.blocks_in_deleted_files),
        ("Directories", u.blocks_in_directories),
        ("Soft limit", u.blocks_soft_limit),
        ("Hard limit", hard),
    ] {
        out.push_str(&usage_line(name, blocks, bs, hard, m));
        out.push('\n');
    }
    ctx.console.print(out.as_bytes());
}

/// `help [topic]`.
pub fn help(ctx: &mut QueryContext, args: &[Vec<u8>]) {
    let Some(topic) = args.first() else {
        let mut out = String::from("Available commands are:\n");
        for (t, _) in TOPICS {
            out.push_str(&format!("    {t}\n"));
        }
        out.push_str("Type \"help <command>\" for more information on a command.\n\n");
        ctx.console.print(out.as_bytes());
        return;
    };
    match TOPICS
        .iter()
        .find(|(t, _)| t.as_bytes() == topic.as_slice())
    {
        Some((_, text)) => ctx.console.print(format!("\n{text}\n").as_bytes()),
        None => {
            let mut m = b"No help found for command '".to_vec();
            m.extend_from_slice(topic);
            m.extend_from_slice(b"'\n");
            ctx.console.print(&m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture store's `usage` and `usage -m`, as 0.13 printed them.
    #[test]
    fn usage_lines_as_013() {
        assert_eq!(
            usage_line("Used", 783, 4096, 10240, false),
            "                Used:        783 blocks,    3.06 MB,   7% |*               |"
        );
        assert_eq!(
            usage_line("Hard limit", 10240, 4096, 10240, false),
            "          Hard limit:      10240 blocks,   40.00 MB, 100% |****************|"
        );
        assert_eq!(
            usage_line("Old files", 24, 4096, 10240, false),
            "           Old files:         24 blocks,   96.00 kB,   0% |                |"
        );
        assert_eq!(
            usage_line("Used", 783, 4096, 10240, true),
            "Used: 3132 kB, 7%"
        );
        assert_eq!(human(512), "512.00  B");
    }
}
