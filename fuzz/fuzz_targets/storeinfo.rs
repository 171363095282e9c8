//! Store info files (v2 and legacy v1) from disc: parse and re-encode; a v2
//! file re-encodes to the same bytes.
#![no_main]
use bb_format::storeinfo::{INFO_MAGIC_V2, StoreInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = StoreInfo::parse(data) {
        let bytes = info.encode().unwrap();
        if data.starts_with(&INFO_MAGIC_V2.to_be_bytes()) {
            assert_eq!(bytes, data);
        }
        assert_eq!(StoreInfo::parse(&bytes).unwrap(), info);
    }
});
