//! Property tests: every message round-trips, no input makes a decoder panic, and
//! streams survive any way of cutting them up on either side.

use bb_format::EncodedName;
use bb_proto::message::*;
use bb_proto::stream::{self, ChunkedEncoder, StreamDecoder, decode_whole};
use bb_proto::{Command, MAX_OBJECT_SIZE, Reply};
use proptest::prelude::*;

/// Field values to build any message from.
#[derive(Debug, Clone)]
struct Fields {
    a: i64,
    b: i64,
    c: i64,
    d: i64,
    h: u64,
    i: i32,
    j: i32,
    s: i16,
    t: i16,
    flag: bool,
    name: EncodedName,
    string: Vec<u8>,
    more: [i64; 10],
}

fn name() -> impl Strategy<Value = EncodedName> {
    (1u16..=2, proptest::collection::vec(any::<u8>(), 0..48)).prop_map(|(enc, body)| {
        let total = body.len() as u16 + 2;
        let mut v = ((total << 2) | enc).to_le_bytes().to_vec();
        v.extend_from_slice(&body);
        EncodedName::from_bytes(&v).unwrap()
    })
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        (
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<u64>(),
        ),
        (
            any::<i32>(),
            any::<i32>(),
            any::<i16>(),
            any::<i16>(),
            any::<bool>(),
        ),
        name(),
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<[i64; 10]>(),
    )
        .prop_map(
            |((a, b, c, d, h), (i, j, s, t, flag), name, string, more)| Fields {
                a,
                b,
                c,
                d,
                h,
                i,
                j,
                s,
                t,
                flag,
                name,
                string,
                more,
            },
        )
}

const COMMANDS: usize = 23;
const REPLIES: usize = 9;

fn make_command(k: usize, f: Fields) -> Command {
    match k {
        0 => Version { version: f.i }.into(),
        1 => Login {
            client_id: f.i,
            flags: f.j,
        }
        .into(),
        2 => Finished {}.into(),
        3 => SetClientStoreMarker {
            client_store_marker: f.a,
        }
        .into(),
        4 => GetObject { object_id: f.a }.into(),
        5 => MoveObject {
            object_id: f.a,
            move_from_directory: f.b,
            move_to_directory: f.c,
            flags: f.i,
            new_filename: f.name,
        }
        .into(),
        6 => GetObjectName {
            object_id: f.a,
            containing_directory_id: f.b,
        }
        .into(),
        7 => CreateDirectory {
            containing_directory_id: f.a,
            attributes_mod_time: f.b,
            directory_name: f.name,
        }
        .into(),
        8 => ListDirectory {
            object_id: f.a,
            flags_must_be_set: f.s,
            flags_not_to_be_set: f.t,
            send_attributes: f.flag,
        }
        .into(),
        9 => ChangeDirAttributes {
            object_id: f.a,
            attributes_mod_time: f.b,
        }
        .into(),
        10 => DeleteDirectory { object_id: f.a }.into(),
        11 => UndeleteDirectory { object_id: f.a }.into(),
        12 => StoreFile {
            directory_object_id: f.a,
            modification_time: f.b,
            attributes_hash: f.h,
            diff_from_file_id: f.c,
            filename: f.name,
        }
        .into(),
        13 => GetFile {
            in_directory: f.a,
            object_id: f.b,
        }
        .into(),
        14 => SetReplacementFileAttributes {
            in_directory: f.a,
            attributes_hash: f.h,
            filename: f.name,
        }
        .into(),
        15 => DeleteFile {
            in_directory: f.a,
            filename: f.name,
        }
        .into(),
        16 => GetBlockIndexById { object_id: f.a }.into(),
        17 => GetBlockIndexByName {
            in_directory: f.a,
            filename: f.name,
        }
        .into(),
        18 => UndeleteFile {
            in_directory: f.a,
            object_id: f.b,
        }
        .into(),
        19 => GetAccountUsage {}.into(),
        20 => GetIsAlive {}.into(),
        21 => GetAccountUsage2 {}.into(),
        _ => CreateDirectory2 {
            containing_directory_id: f.a,
            attributes_mod_time: f.b,
            modification_time: f.c,
            directory_name: f.name,
        }
        .into(),
    }
}

fn make_reply(k: usize, f: Fields) -> Reply {
    let m = f.more;
    match k {
        0 => ErrorReply {
            error_type: f.i,
            sub_type: f.j,
        }
        .into(),
        1 => Version { version: f.i }.into(),
        2 => LoginConfirmed {
            client_store_marker: f.a,
            blocks_used: f.b,
            blocks_soft_limit: f.c,
            blocks_hard_limit: f.d,
        }
        .into(),
        3 => Finished {}.into(),
        4 => Success { object_id: f.a }.into(),
        5 => ObjectName {
            num_name_elements: f.i,
            modification_time: f.a,
            attributes_hash: f.h,
            flags: f.s,
        }
        .into(),
        6 => AccountUsage {
            blocks_used: f.a,
            blocks_in_old_files: f.b,
            blocks_in_deleted_files: f.c,
            blocks_in_directories: f.d,
            blocks_soft_limit: m[0],
            blocks_hard_limit: m[1],
            block_size: f.i,
        }
        .into(),
        7 => IsAlive {}.into(),
        _ => AccountUsage2 {
            account_name: f.string,
            account_enabled: f.flag,
            client_store_marker: f.a,
            block_size: f.i,
            last_object_id_used: f.b,
            blocks_used: f.c,
            blocks_in_current_files: f.d,
            blocks_in_old_files: m[0],
            blocks_in_deleted_files: m[1],
            blocks_in_directories: m[2],
            blocks_soft_limit: m[3],
            blocks_hard_limit: m[4],
            num_current_files: m[5],
            num_old_files: m[6],
            num_deleted_files: m[7],
            num_directories: m[8],
        }
        .into(),
    }
}

/// Decodes objects one after another from `buf` until it runs out or fails,
/// checking what decodes re-encodes to the same bytes (bools aside: 0.13 reads
/// 0x02 as false, so only the value must survive).
fn decode_all<T: PartialEq + std::fmt::Debug>(
    mut buf: &[u8],
    decode: impl Fn(&[u8]) -> bb_proto::Result<Option<(T, usize)>>,
    encode: impl Fn(&T) -> Vec<u8>,
) {
    while let Ok(Some((m, used))) = decode(buf) {
        assert!((8..=MAX_OBJECT_SIZE).contains(&used));
        let again = encode(&m);
        assert_eq!(again.len(), used);
        let (m2, used2) = decode(&again).unwrap().unwrap();
        assert_eq!((m2, used2), (m, used));
        buf = &buf[used..];
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn commands_round_trip(k in 0..COMMANDS, f in fields(), junk in proptest::collection::vec(any::<u8>(), 0..16)) {
        let c = make_command(k, f);
        let mut bytes = c.to_bytes().unwrap();
        let len = bytes.len();
        prop_assert_eq!(c.message_type() as u32, u32::from_be_bytes(bytes[4..8].try_into().unwrap()));
        // Short of the whole object: need more. Followed by anything: stops at its end.
        prop_assert!(Command::decode(&bytes[..len - 1]).unwrap().is_none());
        bytes.extend_from_slice(&junk);
        prop_assert_eq!(Command::decode(&bytes).unwrap().unwrap(), (c, len));
    }

    #[test]
    fn replies_round_trip(k in 0..REPLIES, f in fields(), junk in proptest::collection::vec(any::<u8>(), 0..16)) {
        let r = make_reply(k, f);
        let mut bytes = r.to_bytes().unwrap();
        let len = bytes.len();
        prop_assert!(Reply::decode(&bytes[..len - 1]).unwrap().is_none());
        bytes.extend_from_slice(&junk);
        prop_assert_eq!(Reply::decode(&bytes).unwrap().unwrap(), (r, len));
    }

    /// Arbitrary bytes, and arbitrary bytes behind a plausible header (so the
    /// field decoders get exercised rather than the size check alone).
    #[test]
    fn decoders_never_panic(
        size in 0u32..64, kind in 0u32..50, body in proptest::collection::vec(any::<u8>(), 0..80),
        raw in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut framed = size.to_be_bytes().to_vec();
        framed.extend_from_slice(&kind.to_be_bytes());
        framed.extend_from_slice(&body);
        for buf in [&framed, &raw] {
            decode_all(buf, Command::decode, |c| c.to_bytes().unwrap());
            decode_all(buf, Reply::decode, |r| r.to_bytes().unwrap());
            let _ = decode_whole(buf, StreamDecoder::new().with_limit(1 << 16));
            let _ = bb_proto::check_ident(buf);
            let _ = bb_proto::names::decode_object_names(buf, i32::from(size as u8));
        }
    }

    /// Any data, cut into any reads by the sender and delivered in any pieces to
    /// the receiver, comes out whole, and the bytes after the stream stay put.
    #[test]
    fn streams_survive_any_chunking(
        data in proptest::collection::vec(any::<u8>(), 0..200_000),
        reads in proptest::collection::vec(1usize..70_000, 1..8),
        pieces in proptest::collection::vec(1usize..9_000, 1..40),
        sized in any::<bool>(),
    ) {
        let mut wire = Vec::new();
        if sized && !data.is_empty() {
            stream::encode_sized(&data, &mut wire).unwrap();
        } else {
            let mut enc = ChunkedEncoder::begin(&mut wire);
            let mut rest = &data[..];
            for &r in reads.iter().cycle() {
                if rest.is_empty() { break; }
                let n = r.min(rest.len());
                enc.push(&rest[..n], &mut wire);
                rest = &rest[n..];
            }
            enc.finish(&mut wire);
        }
        let stream_len = wire.len();
        wire.extend_from_slice(b"\x00\x00\x00\x08\x00\x00\x00\x04");

        // Whole, then delivered piece by piece.
        prop_assert_eq!(
            decode_whole(&wire, StreamDecoder::new()).unwrap(),
            Some((data.clone(), stream_len))
        );
        let mut dec = StreamDecoder::new().with_limit(data.len() as u64);
        let (mut got, mut buffered, mut fed) = (Vec::new(), Vec::new(), 0usize);
        for &p in pieces.iter().cycle() {
            let n = p.min(wire.len() - fed);
            buffered.extend_from_slice(&wire[fed..fed + n]);
            fed += n;
            loop {
                let step = dec.decode(&buffered).unwrap();
                got.extend_from_slice(step.data);
                let (used, end) = (step.used, step.end);
                buffered.drain(..used);
                if end || used == 0 { break; }
            }
            if dec.is_end() || fed == wire.len() { break; }
        }
        prop_assert!(dec.is_end());
        prop_assert_eq!(dec.total(), data.len() as u64);
        prop_assert_eq!(got, data);
        prop_assert_eq!(&buffered[..], &wire[stream_len..fed]);
    }

    /// Any sequence of valid chunk headers (not only the ones 0.13 would pick) is
    /// read, as §2.5 requires of a receiver.
    #[test]
    fn any_chunk_sequence_decodes(hs in proptest::collection::vec(1u8..=253, 0..20), fill in any::<u8>()) {
        let mut wire = vec![0xff; 8];
        let mut want = Vec::new();
        for &h in &hs {
            let n = stream::chunk_len(h).unwrap();
            wire.push(h);
            wire.extend(std::iter::repeat_n(fill, n));
            want.extend(std::iter::repeat_n(fill, n));
        }
        wire.push(0);
        prop_assert_eq!(decode_whole(&wire, StreamDecoder::new()).unwrap(), Some((want, wire.len())));
    }
}
