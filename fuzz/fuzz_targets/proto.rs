//! Bytes from the network: the message decoders (both directions, objects one
//! after another, each re-encoded and decoded again), the stream decoder (whole,
//! and fed in pieces whose sizes the input chooses: both must agree), the ident
//! check and the object-name stream.
#![no_main]
use bb_proto::stream::{StreamDecoder, decode_whole};
use bb_proto::{Command, Reply};
use libfuzzer_sys::fuzz_target;

fn objects<T: PartialEq + std::fmt::Debug>(
    mut buf: &[u8],
    decode: impl Fn(&[u8]) -> bb_proto::Result<Option<(T, usize)>>,
    encode: impl Fn(&T) -> Vec<u8>,
) {
    while let Ok(Some((m, used))) = decode(buf) {
        let again = encode(&m);
        assert_eq!(again.len(), used);
        assert_eq!(decode(&again).unwrap().unwrap(), (m, used));
        buf = &buf[used..];
    }
}

fn stream(data: &[u8], piece: usize) {
    let limit = 1 << 20;
    let whole = decode_whole(data, StreamDecoder::new().with_limit(limit));
    let mut dec = StreamDecoder::new().with_limit(limit);
    let (mut got, mut buffered, mut fed) = (Vec::new(), Vec::new(), 0);
    let piecewise = loop {
        let n = piece.min(data.len() - fed);
        buffered.extend_from_slice(&data[fed..fed + n]);
        fed += n;
        let step = loop {
            match dec.decode(&buffered) {
                Err(e) => break Err(e),
                Ok(s) => {
                    got.extend_from_slice(s.data);
                    let (used, end) = (s.used, s.end);
                    buffered.drain(..used);
                    if end || used == 0 {
                        break Ok(end);
                    }
                }
            }
        };
        match step {
            Err(e) => break Err(e),
            Ok(true) => break Ok(Some(fed - buffered.len())),
            Ok(false) if fed == data.len() => break Ok(None),
            Ok(false) => {}
        }
    };
    match (whole, piecewise) {
        (Ok(Some((d, used))), Ok(Some(used2))) => assert_eq!((d, used), (got, used2)),
        (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
        (a, b) => panic!("whole {a:?} vs piecewise {b:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    objects(data, Command::decode, |c| c.to_bytes().unwrap());
    objects(data, Reply::decode, |r| r.to_bytes().unwrap());
    let piece = data.first().map_or(1, |&b| usize::from(b) + 1);
    stream(data, piece);
    let _ = bb_proto::check_ident(data);
    let count = data.get(1).map_or(0, |&b| i32::from(b));
    if let Ok(names) = bb_proto::names::decode_object_names(data, count) {
        let mut again = Vec::new();
        bb_proto::names::encode_object_names(&names, &mut again);
        assert_eq!(again, data);
    }
});
