//! The on-disc cache of file metadata: for each file object, its size and
//! its embedded (still encrypted) attributes, so that a second mount lists a
//! tree without fetching every file again.
//!
//! Stored objects never change, so a record never goes stale; it is only used
//! when the directory entry that names the object still says the same thing
//! about it (modification time, size in blocks, attribute hash), which also
//! keeps a store that was made again from scratch, reusing object IDs, from
//! being answered out of an old cache. Attributes stay encrypted on disc.
//!
//! File: a header line, then records appended as they are learnt:
//! `len u32 | id i64 | mtime i64 | blocks i64 | hash u64 | size u64 | blob`
//! (big-endian; `len` counts what follows it). A torn last record (a crash
//! while appending) is cut off when the file is opened; a file that does not
//! start with the header is started again.
//!
//! Must not know: the keys, FUSE.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bb_format::BoxTime;

const HEADER: &[u8] = b"bbackupfs metadata cache v1\n";
const FIXED: usize = 8 * 5;
/// A record larger than this is corrupt (attributes are capped well below).
const MAX_RECORD: u32 = 32 << 20;

/// What the directory entry says about an object; a record must match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Facts {
    pub mtime: BoxTime,
    pub size_in_blocks: i64,
    pub hash: u64,
}

/// See the module header.
#[derive(Debug)]
pub struct DiskCache {
    path: PathBuf,
    file: Mutex<File>,
    index: Mutex<HashMap<i64, (u64, u32)>>,
}

impl DiskCache {
    /// Opens (or creates) the cache file at `path`, indexing its records.
    pub fn open(path: &Path) -> io::Result<DiskCache> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut index = HashMap::new();
        let good_end = if bytes.starts_with(HEADER) {
            let mut pos = HEADER.len();
            while let Some(len) = bytes.get(pos..pos + 4) {
                let len = u32::from_be_bytes(len.try_into().expect("4 bytes"));
                let end = pos + 4 + len as usize;
                if len < FIXED as u32 || len > MAX_RECORD || end > bytes.len() {
                    break;
                }
                let id = i64::from_be_bytes(bytes[pos + 4..pos + 12].try_into().expect("8 bytes"));
                index.insert(id, (pos as u64 + 4, len));
                pos = end;
            }
            pos
        } else {
            0
        };
        if good_end != bytes.len() || good_end == 0 {
            if good_end == 0 {
                file.set_len(0)?;
                file.write_all(HEADER)?;
            } else {
                tracing::warn!(
                    "{}: cut off {} bytes of a torn record",
                    path.display(),
                    bytes.len() - good_end
                );
                file.set_len(good_end as u64)?;
            }
        }
        Ok(DiskCache {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            index: Mutex::new(index),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.index.lock().map_or(0, |i| i.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The size and encrypted attributes of `id`, if recorded with `facts`.
    pub fn get(&self, id: i64, facts: Facts) -> Option<(u64, Vec<u8>)> {
        let (off, len) = *self.index.lock().ok()?.get(&id)?;
        let mut rec = vec![0u8; len as usize];
        let file = self.file.lock().ok()?;
        file.read_exact_at(&mut rec, off).ok()?;
        drop(file);
        let word =
            |k: usize| i64::from_be_bytes(rec[k * 8..k * 8 + 8].try_into().expect("8 bytes"));
        let stored = Facts {
            mtime: word(1),
            size_in_blocks: word(2),
            hash: word(3) as u64,
        };
        (word(0) == id && stored == facts).then(|| (word(4) as u64, rec[FIXED..].to_vec()))
    }

    /// Records `id`. Errors are logged, not returned: the cache only saves time.
    pub fn put(&self, id: i64, facts: Facts, size: u64, attributes: &[u8]) {
        let len = FIXED + attributes.len();
        if len > MAX_RECORD as usize {
            return;
        }
        let mut rec = Vec::with_capacity(4 + len);
        rec.extend_from_slice(&(len as u32).to_be_bytes());
        for w in [
            id,
            facts.mtime,
            facts.size_in_blocks,
            facts.hash as i64,
            size as i64,
        ] {
            rec.extend_from_slice(&w.to_be_bytes());
        }
        rec.extend_from_slice(attributes);
        let Ok(mut file) = self.file.lock() else {
            return;
        };
        let r = file.metadata().and_then(|m| {
            file.write_all(&rec)?;
            Ok(m.len())
        });
        drop(file);
        match r {
            Ok(at) => {
                if let Ok(mut i) = self.index.lock() {
                    i.insert(id, (at + 4, len as u32));
                }
            }
            Err(e) => tracing::warn!("{}: {e}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen_and_must_match_facts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/cache");
        let f = Facts {
            mtime: 5,
            size_in_blocks: 2,
            hash: u64::MAX,
        };
        {
            let c = DiskCache::open(&p).unwrap();
            assert!(c.is_empty());
            c.put(7, f, 1234, b"attrs");
            c.put(8, f, 1, b"");
            assert_eq!(c.get(7, f), Some((1234, b"attrs".to_vec())));
        }
        let c = DiskCache::open(&p).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(7, f), Some((1234, b"attrs".to_vec())));
        assert_eq!(c.get(8, f), Some((1, Vec::new())));
        assert_eq!(c.get(7, Facts { mtime: 6, ..f }), None, "other facts");
        assert_eq!(c.get(9, f), None);
        drop(c);

        // A torn tail is cut off; the records before it stay.
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.extend_from_slice(&[0, 0, 0, 200, 1, 2, 3]);
        std::fs::write(&p, &bytes).unwrap();
        let c = DiskCache::open(&p).unwrap();
        assert_eq!(c.len(), 2);
        c.put(9, f, 9, b"nine");
        drop(c);
        let c = DiskCache::open(&p).unwrap();
        assert_eq!(c.get(9, f), Some((9, b"nine".to_vec())));

        // Not a cache file at all: started again.
        std::fs::write(&p, b"something else").unwrap();
        let c = DiskCache::open(&p).unwrap();
        assert!(c.is_empty());
        assert!(std::fs::read(&p).unwrap().starts_with(HEADER));
    }
}
