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
            // Combining the file with itself exercises both sides of the transforms;
            // the streaming versions must agree byte for byte.
            let s = |f: &mut dyn FnMut(&mut Vec<u8>) -> bb_format::Result<()>| {
                let mut out = Vec::new();
                f(&mut out).map(|()| out).ok()
            };
            let f = &file[..];
            assert_eq!(
                combine::combine(f, f).ok(),
                s(&mut |o| combine::stream::combine(&mut &f[..], &mut &f[..], o).map(drop))
            );
            assert_eq!(
                combine::reverse_diff(f, f, 7).ok().map(|r| r.0),
                s(&mut |o| combine::stream::reverse_diff(&mut &f[..], &mut &f[..], 7, o)
                    .map(drop))
            );
            assert_eq!(
                combine::combine_patches(f, f).ok().map(|r| r.0),
                s(&mut |o| combine::stream::combine_patches(&mut &f[..], &mut &f[..], o)
                    .map(drop))
            );
        }
        // The streaming check accepts exactly what the in-memory one does.
        assert_eq!(
            FileLayout::parse(&file).is_ok(),
            combine::stream::SourceLayout::parse(&mut &file[..]).is_ok()
        );
    }
});
