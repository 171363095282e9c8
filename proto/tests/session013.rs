//! A whole session with the real 0.13 bbstored (`tests/data/session-013.txt`,
//! recorded by `tests/data/capture-013.py` against a copy of the bb013 fixture
//! store): every command type at least once, with success and error replies.
//!
//! The server's side is 0.13's bytes. Each line is one object or one stream; the
//! transcript is walked with the exchange rules (which commands and replies carry
//! a stream), every message re-encodes byte for byte, and every reply stream
//! parses as what §7 says it carries.

use bb_format::directory::{Directory, ListFilter};
use bb_format::index::BlockIndex;
use bb_format::layout::{Order, detect_order};
use bb_proto::stream::{StreamDecoder, StreamHeader, decode_whole, encode_sized};
use bb_proto::{Command, ErrorCode, MessageType, Reply, ReplyStream, check_ident};
use std::collections::VecDeque;

fn lines(side: &str) -> VecDeque<Vec<u8>> {
    include_str!("data/session-013.txt")
        .lines()
        .filter_map(|l| l.strip_prefix(side))
        .map(|hex| {
            let hex = hex.trim();
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect()
        })
        .collect()
}

fn whole_stream(line: &[u8]) -> (StreamHeader, Vec<u8>) {
    let (data, used) = decode_whole(line, StreamDecoder::new()).unwrap().unwrap();
    assert_eq!(used, line.len());
    (StreamHeader::decode(line).unwrap().unwrap().0, data)
}

#[test]
fn real_server_session() {
    let mut c = lines("C ");
    let mut s = lines("S ");
    assert_eq!(check_ident(&c.pop_front().unwrap()).unwrap(), Some(32));
    assert_eq!(check_ident(&s.pop_front().unwrap()).unwrap(), Some(32));

    let mut seen_commands = std::collections::BTreeSet::new();
    let mut seen_replies = std::collections::BTreeSet::new();
    let mut seen_codes = Vec::new();
    let mut last_object_names = 0;
    while let Some(line) = c.pop_front() {
        let (cmd, used) = Command::decode(&line).unwrap().unwrap();
        assert_eq!(used, line.len());
        assert_eq!(cmd.to_bytes().unwrap(), line);
        seen_commands.insert(cmd.message_type());
        if let Some(kind) = cmd.stream() {
            let stream = c.pop_front().unwrap();
            let (header, data) = whole_stream(&stream);
            if kind.must_be_sized() {
                assert!(matches!(header, StreamHeader::Sized(_)));
                let mut again = Vec::new();
                encode_sized(&data, &mut again).unwrap();
                assert_eq!(again, stream);
            }
        }

        let line = s.pop_front().unwrap();
        let (reply, used) = Reply::decode(&line).unwrap().unwrap();
        assert_eq!(used, line.len());
        assert_eq!(reply.to_bytes().unwrap(), line);
        seen_replies.insert(reply.message_type());
        match &reply {
            Reply::Error(e) => seen_codes.push(e.code().unwrap()),
            r => assert_eq!(r.message_type(), cmd.expected_reply(), "{cmd:?}"),
        }
        if let Reply::ObjectName(n) = &reply {
            last_object_names = n.num_name_elements;
        }
        let Some(kind) = cmd.reply_stream(&reply) else {
            continue;
        };
        // Reply streams from 0.13 are sized, and parse exactly as §7 says.
        let line = s.pop_front().unwrap();
        let (header, data) = whole_stream(&line);
        assert_eq!(header, StreamHeader::for_len(data.len() as u64));
        match kind {
            ReplyStream::Directory => {
                let dir = Directory::parse(&data).unwrap();
                let Command::ListDirectory(l) = &cmd else {
                    unreachable!()
                };
                let filter = ListFilter::new(l.flags_must_be_set, l.flags_not_to_be_set);
                assert_eq!(dir.encode_listing(filter, l.send_attributes).unwrap(), data);
            }
            ReplyStream::ObjectName => {
                let names = bb_proto::names::decode_object_names(&data, last_object_names);
                assert_eq!(names.unwrap().len(), last_object_names as usize);
            }
            ReplyStream::BlockIndex => {
                BlockIndex::parse(&data).unwrap();
            }
            ReplyStream::File => assert_eq!(detect_order(&data).unwrap(), Order::Stream),
            ReplyStream::Object => assert_eq!(detect_order(&data).unwrap(), Order::File),
        }
    }
    assert!(s.is_empty(), "server said more than was asked");

    // Every command type was exercised, and every reply type came back.
    let commands: Vec<_> = MessageType::ALL
        .iter()
        .copied()
        .filter(|t| t.is_command())
        .collect();
    assert_eq!(seen_commands.into_iter().collect::<Vec<_>>(), commands);
    let replies: Vec<_> = MessageType::ALL
        .iter()
        .copied()
        .filter(|t| t.is_reply())
        .collect();
    assert_eq!(seen_replies.into_iter().collect::<Vec<_>>(), replies);
    use ErrorCode::*;
    assert_eq!(
        seen_codes,
        [
            DoesNotExist,
            DirectoryAlreadyExists,
            FileDoesNotVerify,
            DoesNotExist,
            TargetNameExists,
            CannotDeleteRoot,
            NotInRightProtocolPhase
        ]
    );
}

/// Field values of a few of 0.13's replies, against what the store holds.
#[test]
fn real_server_values() {
    let s = lines("S ");
    let reply = |i: usize| Reply::decode(&s[i]).unwrap().unwrap().0;
    let Reply::LoginConfirmed(lc) = reply(2) else {
        panic!()
    };
    let Reply::AccountUsage(u) = reply(4) else {
        panic!()
    };
    let Reply::AccountUsage2(u2) = reply(5) else {
        panic!()
    };
    // bbstoreaccounts create 01234567 0 8192B 10240B; 4096-byte blocks.
    assert_eq!((lc.blocks_soft_limit, lc.blocks_hard_limit), (8192, 10240));
    assert_eq!((u.blocks_soft_limit, u.blocks_hard_limit), (8192, 10240));
    assert_eq!((u.block_size, u2.block_size), (4096, 4096));
    assert_eq!(lc.blocks_used, u.blocks_used);
    assert_eq!(u2.blocks_used, u.blocks_used);
    assert_eq!(u2.client_store_marker, lc.client_store_marker);
    assert!(u2.account_enabled);
    assert_eq!(u2.account_name, b"");
    assert_eq!(
        u2.blocks_used,
        u2.blocks_in_current_files
            + u2.blocks_in_old_files
            + u2.blocks_in_deleted_files
            + u2.blocks_in_directories
    );
}
