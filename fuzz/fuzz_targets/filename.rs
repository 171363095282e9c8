//! Encoded filenames from outside: parse, decrypt with the test keys, re-encode.
#![no_main]
use bb_format::{EncodedName, Keys};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static KEYS: LazyLock<Keys> = LazyLock::new(Keys::test_vector);

fuzz_target!(|data: &[u8]| {
    if let Ok((name, used)) = EncodedName::parse(data) {
        assert_eq!(name.as_bytes(), &data[..used]);
        if let Ok(clear) = name.decrypt(&KEYS) {
            if name.encoding() == 2 {
                // Fixed IV: a name that decrypts re-encrypts to the same bytes.
                assert_eq!(EncodedName::encrypt(&KEYS, &clear).unwrap(), name);
            }
        }
    }
});
