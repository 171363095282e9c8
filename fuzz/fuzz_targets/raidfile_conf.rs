//! raidfile.conf text from outside: parse in 0.13's syntax, check the disc sets, and
//! re-render set 0 the way raidfile-config writes it; nothing may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = bb_raid::config::parse(text, "fuzz");
    if let Ok(cfg) = bb_raid::config::RaidConfig::parse(text, "fuzz") {
        for e in cfg.sets.values() {
            let s = &e.set;
            let d: Vec<String> = s.dirs().iter().map(|p| p.display().to_string()).collect();
            let three = [d[0].as_str(), d[d.len() - 1].as_str(), d[0].as_str()];
            let _ = bb_raid::config::render(s.block_size(), &three);
            let _ = s.disc_usage_in_blocks(u64::MAX / 2);
        }
    }
});
