//! Attribute blobs from outside (file objects, directory entries): decrypt with
//! the test keys, decode the clear form, and check that whatever decodes
//! re-encodes to the same bytes; the clear decoder also gets the raw input.
#![no_main]
use bb_format::Keys;
use bb_format::attributes::{self, UnixAttributes};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static KEYS: LazyLock<Keys> = LazyLock::new(Keys::test_vector);

fn check_clear(clear: &[u8]) {
    if let Ok(a) = UnixAttributes::decode_clear(clear) {
        assert_eq!(a.encode_clear().unwrap(), clear);
        let _ = a.attribute_hash(&KEYS, b"leaf");
    }
}

fuzz_target!(|data: &[u8]| {
    check_clear(data);
    if let Ok(clear) = attributes::decrypt(&KEYS, data) {
        check_clear(&clear);
    }
});
