//! Encoded files from outside (uploads, stored objects, GetFile downloads):
//! the keyless structural check, whole-file decoding in either order, the
//! streaming decoder, and the server-side transforms on what passes the check.
#![no_main]
use bb_format::Keys;
use bb_format::combine;
use bb_format::decode::{StreamDecoder, decode_file};
use bb_format::layout::{FileLayout, to_file_order, to_stream_order};
use libfuzzer_sys::fuzz_target;
use std::io::Read;
use std::sync::LazyLock;

static KEYS: LazyLock<Keys> = LazyLock::new(Keys::test_vector);

fuzz_target!(|data: &[u8]| {
    let whole = decode_file(&KEYS, data);
    if let Ok(mut dec) = StreamDecoder::new(&*KEYS, data) {
        let mut content = Vec::new();
        if dec.read_to_end(&mut content).is_ok() {
            // A stream that decodes fully decodes the same way as a whole file.
            if let Ok(w) = &whole {
                assert_eq!(w.content, content);
            }
        }
    }
    if let Ok(file) = to_file_order(data) {
        if let Ok(layout) = FileLayout::parse(&file) {
            assert_eq!(to_file_order(&to_stream_order(&layout)).unwrap(), file);
            // Combining the file with itself exercises both sides of the transforms.
            let _ = combine::combine(&file, &file);
            let _ = combine::reverse_diff(&file, &file, 7);
            let _ = combine::combine_patches(&file, &file);
        }
    }
});
