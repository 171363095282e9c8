//! Store info files (v2 and legacy v1) from disc: parse, re-encode, parse again.
//!
//! Booleans are 4-byte words that 0.13 reads as "non-zero"; the encoder writes
//! 0 or 1, so raw inputs with other words do not re-encode byte-identically.
//! What must hold: the re-encoded bytes parse to the same info and re-encode to
//! themselves. Byte identity on real 0.13 files is the golden tests' job.
#![no_main]
use bb_format::storeinfo::StoreInfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = StoreInfo::parse(data) {
        let bytes = info.encode().unwrap();
        let again = StoreInfo::parse(&bytes).unwrap();
        assert_eq!(again, info);
        assert_eq!(again.encode().unwrap(), bytes);
    }
});
