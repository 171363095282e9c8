//! The core against the real 0.13: accounts we create pass its checker and match
//! what it creates byte for byte; accounts it creates open with our code; the
//! account write lock excludes its tools.

mod common;

use bb_format::directory::Directory;
use bb_store::account::{self, Account, Mode};
use bb_store::error::Error;
use bb_store::{AccountDatabase, ObjectStore, RaidObjects};
use common::{TempStore, have_013, info_field, tree};

fn ours(ts: &TempStore, account: u32, soft: &str, hard: &str) {
    let discs = ts.discs();
    let mut db = AccountDatabase::load_or_empty(ts.accounts_txt()).unwrap();
    let soft = account::parse_limit(soft, discs.block_size()).unwrap();
    let hard = account::parse_limit(hard, discs.block_size()).unwrap();
    account::create_account(&mut db, &discs, account, soft, hard).unwrap();
}

fn file_bytes(ts: &TempStore) -> Vec<(String, Vec<u8>)> {
    tree(ts.root())
        .into_iter()
        .filter(|p| p.starts_with("disc"))
        .map(|p| {
            let b = std::fs::read(ts.root().join(&p)).unwrap();
            (p, b)
        })
        .collect()
}

#[test]
fn our_account_equals_013s_and_passes_its_check() {
    if !have_013() {
        return;
    }
    for (raid, bs) in [(true, 2048), (false, 4096)] {
        let a = TempStore::new(raid, bs);
        ours(&a, 0x1234567, "10M", "20M");
        ours(&a, 0xa, "8192B", "10240B");
        assert_eq!(
            std::fs::read_to_string(a.accounts_txt()).unwrap(),
            "a:0\n1234567:0\n"
        );
        a.assert_013_check_clean(0x1234567);
        a.assert_013_check_clean(0xa);
        let info = a.info_013(0x1234567);
        assert_eq!(info_field(&info, "Used"), 2 - i64::from(!raid));
        assert_eq!(info_field(&info, "Directories"), 2 - i64::from(!raid));

        let b = TempStore::new(raid, bs);
        for (id, soft, hard) in [("1234567", "10M", "20M"), ("a", "8192B", "10240B")] {
            let (ok, out) = b.bbstoreaccounts(&["create", id, "0", soft, hard]);
            assert!(ok, "{out}");
        }
        // Same files, same bytes (0.13's checker leaves nothing behind either).
        assert_eq!(file_bytes(&a), file_bytes(&b), "raid {raid}");
        assert_eq!(
            std::fs::read(a.accounts_txt()).unwrap(),
            std::fs::read(b.accounts_txt()).unwrap()
        );
    }
}

#[test]
fn fresh_info_is_the_spec_example() {
    // store.md §4.1: account 1, RAID set with 2048-byte blocks, limits 10M/20M.
    let ts = TempStore::new(true, 2048);
    ours(&ts, 1, "10M", "20M");
    let store = RaidObjects::new(ts.discs(), 1);
    let info = store
        .read_named(bb_store::NamedFile::Info)
        .unwrap()
        .unwrap();
    let hex: String = info.iter().map(|b| format!("{b:02x}")).collect();
    let spec: String = "494e4632 00000001 00000000
        0000000000000000 0000000000000001   0000000000000002 0000000000000000
        0000000000000000 0000000000000000   0000000000000002 0000000000001400
        0000000000002800 0000000000000000   0000000000000000 0000000000000000
        0000000000000001 0000000000000000   00000001"
        .split_whitespace()
        .collect();
    assert_eq!(hex, spec);
    let rc = store
        .read_named(bb_store::NamedFile::RefCount)
        .unwrap()
        .unwrap();
    assert_eq!(rc, [0x52, 0x65, 0x66, 0x43, 0, 0, 0, 1, 0, 0, 0, 1]);
}

#[test]
fn we_open_and_change_an_013_account() {
    if !have_013() {
        return;
    }
    for raid in [true, false] {
        let ts = TempStore::new(raid, 4096);
        let (ok, out) = ts.bbstoreaccounts(&["create", "5", "0", "10M", "20M"]);
        assert!(ok, "{out}");
        let db = AccountDatabase::load(ts.accounts_txt()).unwrap();
        assert_eq!(db.get(5), Some(0));
        let store = RaidObjects::new(ts.discs(), 5);
        let mut acc = Account::open(Box::new(store.clone()), Mode::ReadWrite).unwrap();
        assert!(acc.holds_write_lock());
        assert_eq!(acc.info().blocks_soft_limit, 2560);
        assert_eq!(acc.info().num_directories, 1);
        assert_eq!(acc.refcount(1), 1);
        let root = acc.read_directory("test", 1).unwrap();
        assert_eq!(root, Directory::new(1, 1));
        assert!(matches!(
            acc.read_directory("test", 2),
            Err(Error::DoesNotExist { id: 2, .. })
        ));

        // A second writer is refused, by us and by 0.13's tools.
        let second = Account::open(Box::new(store.clone()), Mode::ReadWrite);
        assert!(
            matches!(second, Err(Error::CannotLockStoreForWriting { account: 5 })),
            "{second:?}"
        );
        assert_eq!(
            second.unwrap_err().kind(),
            Some(bb_store::StoreErrorKind::CannotLockStoreForWriting)
        );
        let (ok, out) = ts.bbstoreaccounts(&["setlimit", "5", "11M", "21M"]);
        assert!(!ok, "0.13 changed a locked account: {out}");
        // Readers need no lock.
        let reader = Account::open(Box::new(store.clone()), Mode::ReadOnly).unwrap();
        assert!(reader.require_write("x").is_err());

        // A subdirectory, made the way CreateDirectory makes one, then the root
        // rewritten with its bookkeeping.
        let id = acc.allocate_object_id().unwrap();
        assert_eq!(id, 2);
        let sub = Directory::new(id, 1);
        let (w, usage) = acc.write_directory_uncommitted(&sub, false).unwrap();
        w.commit().unwrap();
        {
            let info = acc.info_mut().unwrap();
            info.blocks_used += usage;
            info.blocks_in_directories += usage;
            info.num_directories += 1;
        }
        acc.set_refcount(id, 1).unwrap();
        let mut root = acc.read_directory("test", 1).unwrap();
        root.entries.push(bb_format::directory::Entry {
            mtime: 0,
            object_id: id,
            size_in_blocks: usage,
            attributes_hash: 0,
            flags: bb_format::directory::Entry::DIR,
            name: bb_format::EncodedName::clear(b"sub").unwrap(),
            attributes: Vec::new(),
            depends_newer: 0,
            depends_older: 0,
        });
        acc.save_directory(&root).unwrap();
        acc.close().unwrap();
        drop(reader);

        // The lock file is gone, 0.13's tools work again and find nothing wrong.
        let lock = ts.discs().disc_dir(0).join("backup/00000005/write.lock");
        assert!(!lock.exists());
        ts.assert_013_check_clean(5);
        let info = ts.info_013(5);
        assert_eq!(info_field(&info, "Last object ID"), 2);
        let acc = Account::open(Box::new(store), Mode::ReadOnly).unwrap();
        assert_eq!(info_field(&info, "Used"), acc.info().blocks_used);
        assert_eq!(
            info_field(&info, "Directories"),
            acc.info().blocks_in_directories
        );
        assert_eq!(acc.info().num_directories, 2);
    }
}

#[test]
fn delete_removes_everything() {
    let ts = TempStore::new(true, 2048);
    ours(&ts, 7, "1M", "2M");
    ours(&ts, 8, "1M", "2M");
    let mut db = AccountDatabase::load(ts.accounts_txt()).unwrap();
    account::delete_account(&mut db, &ts.discs(), 7).unwrap();
    assert_eq!(std::fs::read_to_string(ts.accounts_txt()).unwrap(), "8:0\n");
    assert!(tree(ts.root()).iter().all(|p| !p.contains("00000007")));
    assert!(matches!(
        account::create_account(&mut db, &ts.discs(), 8, 1, 2),
        Err(Error::AccountExists { .. })
    ));
    // Storage left on disc (accounts.txt edited by hand) is not overwritten.
    db.remove(8).unwrap();
    assert!(matches!(
        account::create_account(&mut db, &ts.discs(), 8, 1, 2),
        Err(Error::AccountExists { .. })
    ));
}

#[test]
fn walk_finds_objects_and_named_files() {
    let ts = TempStore::from_fixture("store-raid3.tar.gz", "store-raid3");
    let store = RaidObjects::new(ts.discs(), 0x1234567);
    let mut objects = Vec::new();
    let mut other = Vec::new();
    store
        .walk(&mut |item| {
            match item {
                bb_store::objects::WalkItem::Object(id) => objects.push(id),
                o => other.push(o),
            }
            Ok(())
        })
        .unwrap();
    assert!(objects.contains(&1) && objects.iter().any(|&id| id > 0xff));
    use bb_store::NamedFile::*;
    use bb_store::objects::WalkItem::Named;
    assert_eq!(other, vec![Named(Info), Named(RefCount)]);
    let acc = Account::open(Box::new(store), Mode::ReadOnly).unwrap();
    assert_eq!(
        acc.info().last_object_id_used,
        *objects.iter().max().unwrap()
    );
}
