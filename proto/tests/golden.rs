//! Golden tests: the bytes captured between the real 0.13 bbackupd/bbackupquery
//! and bbstored (`protocol.md` §5) decode to the expected messages and re-encode
//! byte for byte. Where the spec elides bytes (`…`), only the complete messages
//! are used, and the elided streams are checked for their framing alone.

use bb_format::EncodedName;
use bb_format::directory::{Directory, ListFilter};
use bb_proto::message::*;
use bb_proto::stream::{self, ChunkedEncoder, StreamDecoder, StreamHeader, decode_whole};
use bb_proto::{Command, ErrorCode, IDENT, Reply, ReplyStream, check_ident};

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// §5.1 as the offsets-and-hex dump shows it, offsets dropped.
fn dump(lines: &str) -> Vec<u8> {
    lines
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let (_offset, rest) = l.split_once("  ")?;
            // The hex column ends where the double-spaced annotation begins.
            let hex = rest.split("    ").next()?;
            Some(unhex(hex))
        })
        .flatten()
        .collect()
}

fn name(hex: &str) -> EncodedName {
    EncodedName::from_bytes(&unhex(hex)).unwrap()
}

fn command(bytes: &[u8]) -> Command {
    let (c, used) = Command::decode(bytes).unwrap().unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!(c.to_bytes().unwrap(), bytes, "{c:?} re-encodes");
    c
}

fn reply(bytes: &[u8]) -> Reply {
    let (r, used) = Reply::decode(bytes).unwrap().unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!(r.to_bytes().unwrap(), bytes, "{r:?} re-encodes");
    r
}

/// A whole direction of a session: ident, then objects (and their streams)
/// decoded one after another, each re-encoded and compared with its bytes.
struct Walker<'a> {
    buf: &'a [u8],
}

impl<'a> Walker<'a> {
    fn new(buf: &'a [u8]) -> Self {
        assert_eq!(check_ident(buf).unwrap(), Some(32));
        Walker { buf: &buf[32..] }
    }

    fn command(&mut self) -> Command {
        // Every prefix short of the whole object is "need more", never an error.
        let (c, used) = Command::decode(self.buf).unwrap().unwrap();
        for cut in 0..used {
            assert!(Command::decode(&self.buf[..cut]).unwrap().is_none());
        }
        assert_eq!(c.to_bytes().unwrap(), self.buf[..used]);
        self.buf = &self.buf[used..];
        c
    }

    fn reply(&mut self) -> Reply {
        let (r, used) = Reply::decode(self.buf).unwrap().unwrap();
        for cut in 0..used {
            assert!(Reply::decode(&self.buf[..cut]).unwrap().is_none());
        }
        assert_eq!(r.to_bytes().unwrap(), self.buf[..used]);
        self.buf = &self.buf[used..];
        r
    }

    /// A reply stream: must be sized, and re-encodes identically.
    fn reply_stream(&mut self) -> Vec<u8> {
        let (data, used) = decode_whole(self.buf, StreamDecoder::new())
            .unwrap()
            .unwrap();
        let mut again = Vec::new();
        stream::encode_stream(&data, &mut again);
        assert_eq!(again, self.buf[..used]);
        self.buf = &self.buf[used..];
        data
    }

    fn done(&self) {
        assert!(self.buf.is_empty(), "{} bytes left", self.buf.len());
    }
}

/// §5.1: bbackupquery `list` + `quit` against a fresh account, both directions
/// complete.
#[test]
fn minimal_session() {
    let c2s = dump(
        "0000  42 6f 78 2d 42 61 63 6b 75 70 3a 76 3d 43 00 00    ident
         0010  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00    …
         0020  00 00 00 0c 00 00 00 01 00 00 00 01                Version
         002c  00 00 00 10    Login: size 16,
         0030  00 00 00 02 00 00 00 2a 00 00 00 01                       type 2
         003c  00 00 00 15    ListDirectory: size 21,
         0040  00 00 00 15 00 00 00 00 00 00 00 01 ff ff 00 0c           type 21
         0050  01                                                        SendAttributes=true
         0051  00 00 00 08 00 00 00 04                          Finished",
    );
    assert_eq!(c2s.len(), 89);
    let s2c = dump(
        "0000  42 6f 78 2d 42 61 63 6b 75 70 3a 76 3d 43 00 00    ident
         0010  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
         0020  00 00 00 0c 00 00 00 01 00 00 00 01                Version
         002c  00 00 00 28    LoginConfirmed: size 40,
         0030  00 00 00 03                                           type 3,
         0034  00 00 00 00 00 00 00 00                   ClientStoreMarker = 0
         003c  00 00 00 00
         0040  00 00 00 02                                           BlocksUsed = 2
         0044  00 00 00 00 00 00 03 e8                   BlocksSoftLimit = 1000
         004c  00 00 00 00
         0050  00 00 07 d0                                           BlocksHardLimit = 2000
         0054  00 00 00 10 00 00 00 05 00 00 00 00    Success: size 16, type 5,
         0060  00 00 00 01                                           ObjectID = 1
         0064  00 00 00 28 ff ff ff ff                stream header: 40 bytes
         006c  44 49 52 5f    stream: magic
         0070  00 00 00 00                                           NumEntries = 0
         0074  00 00 00 00 00 00 00 01                   ObjectID = 1
         007c  00 00 00 00
         0080  00 00 00 01                                           ContainerID = 1
         0084  00 00 00 00 00 00 00 00                   AttributesModTime = 0
         008c  00 00 00 00       OptionsPresent = 0
         0090  00 00 00 00                                           attribute block length = 0
         0094  00 00 00 08 00 00 00 04                Finished",
    );
    assert_eq!(s2c.len(), 156);
    assert_eq!(c2s[..32], IDENT);

    let mut c = Walker::new(&c2s);
    let mut s = Walker::new(&s2c);
    let mut exchange = |want_cmd: Command, want_reply: Reply| -> Option<Vec<u8>> {
        let cmd = c.command();
        assert_eq!(cmd, want_cmd);
        assert_eq!(cmd.stream(), None);
        let rep = s.reply();
        assert_eq!(rep, want_reply);
        assert_eq!(rep.message_type(), cmd.expected_reply());
        cmd.reply_stream(&rep).map(|_| s.reply_stream())
    };
    assert_eq!(
        exchange(Version { version: 1 }.into(), Version { version: 1 }.into()),
        None
    );
    let login = Login {
        client_id: 0x2a,
        flags: Login::FLAGS_READ_ONLY,
    };
    assert!(login.read_only());
    let confirmed = LoginConfirmed {
        client_store_marker: 0,
        blocks_used: 2,
        blocks_soft_limit: 1000,
        blocks_hard_limit: 2000,
    };
    assert_eq!(exchange(login.into(), confirmed.into()), None);
    let list = ListDirectory {
        object_id: flags::ROOT_DIRECTORY,
        flags_must_be_set: flags::INCLUDE_EVERYTHING,
        flags_not_to_be_set: flags::DELETED | flags::OLD_VERSION,
        send_attributes: true,
    };
    let listing = exchange(list.clone().into(), Success { object_id: 1 }.into()).unwrap();
    assert_eq!(
        Command::from(list).reply_stream(&Success { object_id: 1 }.into()),
        Some(ReplyStream::Directory)
    );
    // The listing is a directory (§7.1) that bb-format re-encodes identically.
    let dir = Directory::parse(&listing).unwrap();
    assert_eq!(
        (dir.object_id, dir.container_id, dir.entries.len()),
        (1, 1, 0)
    );
    assert_eq!(
        dir.encode_listing(ListFilter::new(-1, 12), true).unwrap(),
        listing
    );
    assert_eq!(exchange(Finished {}.into(), Finished {}.into()), None);
    c.done();
    s.done();
}

/// §5.2: the complete messages of bbackupd's first backup.
#[test]
fn first_backup() {
    assert_eq!(
        command(&unhex("00000010 00000002 01234567 00000000")),
        Login {
            client_id: 0x0123_4567,
            flags: 0
        }
        .into()
    );
    assert_eq!(
        reply(&unhex(
            "00000028 00000003 0000000000000000 0000000000000002 0000000000000a00 0000000000001400"
        )),
        LoginConfirmed {
            client_store_marker: 0,
            blocks_used: 2,
            blocks_soft_limit: 2560,
            blocks_hard_limit: 5120
        }
        .into()
    );
    let marker = 0x0006_6108_e04b_9821;
    let set = command(&unhex("00000010 00000006 00066108e04b9821"));
    assert_eq!(
        set,
        SetClientStoreMarker {
            client_store_marker: marker
        }
        .into()
    );
    assert!(set.is_write());
    assert_eq!(
        reply(&unhex("00000010 00000005 00066108e04b9821")),
        Success { object_id: marker }.into()
    );
    assert_eq!(
        command(&unhex("00000015 00000015 0000000000000001 0002 000c 00")),
        ListDirectory {
            object_id: 1,
            flags_must_be_set: flags::DIR,
            flags_not_to_be_set: 12,
            send_attributes: false
        }
        .into()
    );
    assert_eq!(
        command(&unhex("00000015 00000015 0000000000000002 ffff 000c 01")),
        ListDirectory {
            object_id: 2,
            flags_must_be_set: -1,
            flags_not_to_be_set: 12,
            send_attributes: true
        }
        .into()
    );
    let src = name("2a00 7a2fd331388a9975");
    let mkdir = command(&unhex(
        "00000022 00000014 0000000000000001 00066108df2fe1cb 2a00 7a2fd331388a9975",
    ));
    assert_eq!(
        mkdir,
        CreateDirectory {
            containing_directory_id: 1,
            attributes_mod_time: 0x0006_6108_df2f_e1cb,
            directory_name: src
        }
        .into()
    );
    assert_eq!(mkdir.stream(), Some(bb_proto::CommandStream::Attributes));
    // The 49-byte attribute stream's header (its body is elided in the spec).
    let mut attr_header = Vec::new();
    StreamHeader::for_len(49).encode(&mut attr_header);
    assert_eq!(attr_header, unhex("00000031 ffffffff"));
    assert_eq!(
        reply(&unhex("00000010 00000005 0000000000000002")),
        Success { object_id: 2 }.into()
    );
    assert_eq!(
        StreamHeader::decode(&unhex("00000059 ffffffff")).unwrap(),
        Some((StreamHeader::Sized(89), 8))
    );
    let hello = name("4a00 14737cedaa258b5676913c380e963926");
    let store = command(&unhex(
        "0000003a 0000001e 0000000000000002 00066108df2fe1cb 78e395ffb4e51f69 0000000000000000
         4a00 14737cedaa258b5676913c380e963926",
    ));
    assert_eq!(
        store,
        StoreFile {
            directory_object_id: 2,
            modification_time: 0x0006_6108_df2f_e1cb,
            attributes_hash: 0x78e3_95ff_b4e5_1f69,
            diff_from_file_id: 0,
            filename: hello
        }
        .into()
    );
    // The upload: one chunk of 200 bytes, then the end marker.
    let body: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();
    let mut wire = Vec::new();
    stream::encode_chunked(&body, &mut wire);
    let mut want = unhex("ffffffff ffffffff 51");
    want.extend_from_slice(&body);
    want.push(0);
    assert_eq!(wire, want);
    let decoder = store.stream().unwrap().decoder(1 << 30);
    assert_eq!(
        decode_whole(&wire, decoder).unwrap(),
        Some((body, wire.len()))
    );
    assert_eq!(
        reply(&unhex("00000010 00000005 0000000000000003")),
        Success { object_id: 3 }.into()
    );
    assert_eq!(command(&unhex("00000008 00000004")), Finished {}.into());
    assert_eq!(reply(&unhex("00000008 00000004")), Finished {}.into());
}

/// §5.2's second file and §5.3's patch: bbackupd's chunking, reproduced from the
/// sizes of its reads.
#[test]
fn upload_chunking() {
    let mut out = Vec::new();
    let mut enc = ChunkedEncoder::begin(&mut out);
    for _ in 0..17 {
        enc.push(&[0x5a; 4096], &mut out);
    }
    enc.push(&[0x5a; 1673], &mut out);
    enc.finish(&mut out);
    let mut want = unhex("ffffffff ffffffff");
    for _ in 0..17 {
        want.push(0x97);
        want.extend_from_slice(&[0x5a; 4096]);
    }
    want.push(0x88);
    want.extend_from_slice(&[0x5a; 1664]);
    want.push(0x09);
    want.extend_from_slice(&[0x5a; 9]);
    want.push(0);
    assert_eq!(out, want);
}

/// §5.3: a diff upload.
#[test]
fn diff_upload() {
    let big = name("2a00 5293a5c5944fe4c1");
    let by_name = command(&unhex(
        "0000001a 00000023 0000000000000002 2a00 5293a5c5944fe4c1",
    ));
    assert_eq!(
        by_name,
        GetBlockIndexByName {
            in_directory: 2,
            filename: big.clone()
        }
        .into()
    );
    let found = reply(&unhex("00000010 00000005 0000000000000009"));
    assert_eq!(by_name.reply_stream(&found), Some(ReplyStream::BlockIndex));
    // The 117244-byte block index stream: its header and first bytes.
    let head =
        unhex("0001c9fc ffffffff 62696478 0000000000000000 f7f20e03cb117279 0000000000000e4f");
    let mut dec = StreamDecoder::new();
    let step = dec.decode(&head).unwrap();
    assert_eq!(dec.header(), Some(StreamHeader::Sized(117_244)));
    assert_eq!(117_244, 28 + 3663 * 32);
    assert_eq!((step.used, step.data.len(), step.end), (36, 28, false));
    assert_eq!(dec.remaining(), Some(117_244 - 28));
    assert_eq!(
        command(&unhex(
            "00000032 0000001e 0000000000000002 00066108fec39fc3 2a07b0307b6c2d07 0000000000000009
             2a00 5293a5c5944fe4c1"
        )),
        StoreFile {
            directory_object_id: 2,
            modification_time: 0x0006_6108_fec3_9fc3,
            attributes_hash: 0x2a07_b030_7b6c_2d07,
            diff_from_file_id: 9,
            filename: big
        }
        .into()
    );
    assert_eq!(
        reply(&unhex("00000010 00000005 000000000000000a")),
        Success { object_id: 10 }.into()
    );
}

/// §5.4: error replies and the small exchanges.
#[test]
fn errors_and_keepalive() {
    for (hex, code) in [
        (
            "00000010 00000000 000003e8 00000002",
            ErrorCode::NotInRightProtocolPhase,
        ),
        (
            "00000010 00000000 000003e8 00000007",
            ErrorCode::DoesNotExist,
        ),
        (
            "00000010 00000000 000003e8 0000000b",
            ErrorCode::StorageLimitExceeded,
        ),
    ] {
        let r = reply(&unhex(hex));
        assert_eq!(r, Reply::from(code));
        assert_eq!(r.as_error().unwrap().code(), Some(code));
    }
    let fatal = reply(&unhex("00000010 00000000 00000000 ffffffff"));
    assert_eq!(fatal, Reply::Error(ErrorReply::FATAL));
    assert!(fatal.as_error().unwrap().is_fatal());
    assert_eq!(fatal.as_error().unwrap().code(), None);

    assert_eq!(command(&unhex("00000008 0000002a")), GetIsAlive {}.into());
    assert_eq!(reply(&unhex("00000008 0000002b")), IsAlive {}.into());
    assert_eq!(
        command(&unhex("00000008 0000002c")),
        GetAccountUsage2 {}.into()
    );
    // AccountUsage2: the spec shows only the first fields; what is there must be
    // "need more", and the object completed decodes to those fields.
    let mut usage2 =
        unhex("00000079 0000002d 00000000 01 00066108e04b9821 00001000 0000000000000004");
    assert!(Reply::decode(&usage2).unwrap().is_none());
    usage2.resize(0x79, 0);
    match reply(&usage2) {
        Reply::AccountUsage2(u) => {
            assert_eq!(u.account_name, b"");
            assert!(u.account_enabled);
            assert_eq!(u.client_store_marker, 0x0006_6108_e04b_9821);
            assert_eq!(u.block_size, 4096);
            assert_eq!(u.last_object_id_used, 4);
        }
        other => panic!("{other:?}"),
    }
}

/// §2.6 / §4.7: the confusions that 0.13 treats as fatal are errors here.
#[test]
fn confusions() {
    // A stream header where a command is expected.
    assert!(matches!(
        Command::decode(&unhex("00000031 ffffffff")),
        Err(bb_proto::Error::StreamWhereObjectExpected)
    ));
    // A command where the attribute stream is expected.
    assert!(matches!(
        StreamDecoder::new()
            .sized_only()
            .decode(&unhex("00000008 0000002a")),
        Err(bb_proto::Error::ObjectWhereStreamExpected { object_type: 42 })
    ));
    // A reply type sent as a command (0.13: Error(0,-1), then close).
    assert!(matches!(
        Command::decode(&unhex("00000010 00000005 0000000000000001")),
        Err(bb_proto::Error::WrongDirection { .. })
    ));
    // Oversize object (16385 tested against 0.13).
    assert!(matches!(
        Command::decode(&unhex("00004001 0000001e")),
        Err(bb_proto::Error::ObjectSize { size: 16385 })
    ));
}
