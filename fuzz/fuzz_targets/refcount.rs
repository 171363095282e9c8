//! Refcount databases from disc: parse, re-encode identically, look up ids.
#![no_main]
use bb_format::refcount::RefCountDatabase;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(db) = RefCountDatabase::parse(data) {
        assert_eq!(db.encode(), data);
        let top = db.highest_id();
        let _ = db.get(top);
        let _ = db.get(top + 1);
        let _ = db.get(i64::MIN);
    }
});
