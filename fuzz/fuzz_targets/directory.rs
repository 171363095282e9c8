//! Directory objects from outside (stored objects, ListDirectory replies):
//! parse, re-encode, and produce listings.
//!
//! 0.13 sets option bit 0 exactly when some entry has a non-zero dependency
//! field, and our encoder recomputes it the same way; so a directory re-encodes
//! byte-identically when its input followed that rule, and parses back to the
//! same entries either way.
#![no_main]
use bb_format::directory::{Directory, ListFilter, OPTION_DEPENDENCY_INFO};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(dir) = Directory::parse(data) {
        let bytes = dir.encode().unwrap();
        let again = Directory::parse(&bytes).unwrap();
        assert_eq!(again.entries, dir.entries);
        assert_eq!(again.attributes, dir.attributes);
        let has_deps = dir.entries.iter().any(|e| e.has_dependencies());
        if (dir.options & OPTION_DEPENDENCY_INFO != 0) == has_deps {
            assert_eq!(bytes, data);
        }
        let _ = dir.encode_listing(ListFilter::default(), false);
    }
});
