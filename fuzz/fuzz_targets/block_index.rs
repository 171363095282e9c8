//! Block indexes from outside (GetBlockIndexByID/ByName replies, stored files):
//! parse, re-encode, decrypt every entry.
#![no_main]
use bb_format::Keys;
use bb_format::index::BlockIndex;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static KEYS: LazyLock<Keys> = LazyLock::new(Keys::test_vector);

fuzz_target!(|data: &[u8]| {
    if let Ok((index, used)) = BlockIndex::parse_prefix(data) {
        if !index.legacy_v0 {
            assert_eq!(index.to_bytes(), &data[..used]);
        }
        let _ = index.decrypt_all(&KEYS);
    }
});
