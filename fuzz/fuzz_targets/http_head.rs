//! The metrics listeners' HTTP request head parser (`bb_proto::metrics::http`):
//! any bytes from a client are a head, "need more", or an error with a status;
//! never a panic, and a parsed head used no more bytes than it was given.
#![no_main]
use bb_proto::metrics::http;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match http::parse_head(data) {
        Ok(Some((head, used))) => {
            assert!(used <= data.len() && used <= http::MAX_HEAD);
            assert!(head.path.starts_with('/'));
            let _ = http::route(&head);
        }
        Ok(None) => assert!(data.len() < http::MAX_HEAD),
        Err(e) => assert!(matches!(e.status(), 400 | 431 | 505)),
    }
});
