//! The client's state between runs (`store.md` §10, our own format): the store
//! identity (marker, location directory IDs, the highest object ID seen, the
//! newest file uploaded), the inode map (renames), pending entries (the
//! MaxUploadWait clock) and files to send again (changed while read).
//!
//! Owns the file `DataDirectory/bb-sync-state`: Box Backup's Archive field
//! codec (big-endian), a magic, a name and a version, written to a temporary
//! file, fsynced, renamed over the old one and the directory fsynced, so a
//! crash leaves the old state or the new one, never a torn one. Losing the
//! file only costs rename detection for one run and the identity check (the
//! next run records afresh), as 0.13's state files.
//!
//! Must not know: how the engine uses the maps.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use bb_format::BoxTime;
use bb_format::archive::{ArchiveReader, ArchiveWriter};

use super::SyncError;

/// The state file's name in the data directory.
pub const STATE_FILE: &str = "bb-sync-state";

const MAGIC: i32 = 0x6262_5353; // "bbSS"
const NAME: &[u8] = b"bb-client sync state";
const VERSION: i32 = 2;
/// Version 1 had no `unused_roots_delete_after`; it is read as 0.
const VERSION_1: i32 = 1;

/// inode -> (object ID, containing directory ID), per location name.
pub(crate) type InodeMap = HashMap<u64, (i64, i64)>;

/// See the module header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    /// Where it was loaded from (for messages and [`SyncState::save_here`]).
    pub(crate) path: Option<PathBuf>,
    /// The client store marker this client set; 0: none yet (first run).
    pub(crate) marker: i64,
    /// End of the last run's sync window.
    pub(crate) last_sync_time: BoxTime,
    /// The highest object ID this client saw (the store's LastObjectIDUsed at
    /// a run's start) or created.
    pub(crate) highest_object_id: i64,
    /// The newest file this client uploaded: (object ID, directory ID).
    pub(crate) newest_file: Option<(i64, i64)>,
    /// Location name -> its directory's object ID in the root.
    pub(crate) locations: BTreeMap<String, i64>,
    /// Location name -> inode map of its tree.
    pub(crate) inodes: BTreeMap<String, InodeMap>,
    /// (directory ID, clear leaf name) -> when first seen too new to upload.
    pub(crate) pending: HashMap<(i64, Vec<u8>), BoxTime>,
    /// (directory ID, clear leaf name) of files to upload next run whatever
    /// their mtime says (they changed while being read).
    pub(crate) dirty: HashSet<(i64, Vec<u8>)>,
    /// When the store-root directories no location names are to be deleted
    /// (box_time; 0: none found yet). `DeleteRedundantLocationsAfter`.
    pub(crate) unused_roots_delete_after: BoxTime,
}

fn bad(path: &Path, detail: impl std::fmt::Display) -> SyncError {
    SyncError::State {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

impl SyncState {
    /// An empty state: the next run is a first run.
    pub fn new() -> SyncState {
        SyncState::default()
    }

    /// The state kept in `dir`, or an empty one if there is none yet.
    pub fn load(dir: &Path) -> Result<SyncState, SyncError> {
        let path = dir.join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SyncState {
                    path: Some(path),
                    ..SyncState::default()
                });
            }
            Err(e) => return Err(bad(&path, e)),
        };
        let mut s = SyncState::decode(&bytes).map_err(|e| bad(&path, e))?;
        s.path = Some(path);
        Ok(s)
    }

    /// Writes the state to `dir` atomically (temp file, fsync, rename, fsync
    /// of the directory).
    pub fn save(&self, dir: &Path) -> Result<(), SyncError> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = self.encode().map_err(|e| bad(&path, e))?;
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &path)?;
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| bad(&path, e))
    }

    /// Saves to the directory it was loaded from (no-op for a state made with
    /// [`SyncState::new`]).
    pub fn save_here(&self) -> Result<(), SyncError> {
        match self.path.as_ref().and_then(|p| p.parent()) {
            Some(dir) => self.save(dir),
            None => Ok(()),
        }
    }

    /// The state file this state belongs to, if known.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The client store marker this client set (0: none yet).
    pub fn marker(&self) -> i64 {
        self.marker
    }

    /// The end of the last successful run's sync window (box_time; 0: none).
    pub fn last_sync_time(&self) -> BoxTime {
        self.last_sync_time
    }

    /// The location directories this client knows: name -> object ID.
    pub fn location_ids(&self) -> &BTreeMap<String, i64> {
        &self.locations
    }

    /// Inode-map entries (all locations).
    pub fn tracked_inodes(&self) -> usize {
        self.inodes.values().map(|m| m.len()).sum()
    }

    /// Forgets everything (as if the state file had been removed).
    pub fn reset(&mut self) {
        let path = self.path.take();
        *self = SyncState {
            path,
            ..SyncState::default()
        };
    }

    fn encode(&self) -> bb_format::Result<Vec<u8>> {
        let mut w = ArchiveWriter::new();
        w.int(MAGIC).string(NAME)?.int(VERSION);
        w.int64(self.marker)
            .int64(self.last_sync_time)
            .int64(self.highest_object_id);
        let (nid, ndir) = self.newest_file.unwrap_or((0, 0));
        w.bool(self.newest_file.is_some()).int64(nid).int64(ndir);
        w.int64(self.locations.len() as i64);
        for (name, id) in &self.locations {
            w.string(name.as_bytes())?.int64(*id);
        }
        w.int64(self.inodes.len() as i64);
        for (name, map) in &self.inodes {
            w.string(name.as_bytes())?.int64(map.len() as i64);
            // Sorted, so that equal states give equal files.
            let mut v: Vec<_> = map.iter().collect();
            v.sort_unstable();
            for (ino, (obj, dir)) in v {
                w.uint64(*ino).int64(*obj).int64(*dir);
            }
        }
        let mut pending: Vec<_> = self.pending.iter().collect();
        pending.sort_unstable();
        w.int64(pending.len() as i64);
        for ((dir, name), t) in pending {
            w.int64(*dir).string(name)?.int64(*t);
        }
        let mut dirty: Vec<_> = self.dirty.iter().collect();
        dirty.sort_unstable();
        w.int64(dirty.len() as i64);
        for (dir, name) in dirty {
            w.int64(*dir).string(name)?;
        }
        w.int64(self.unused_roots_delete_after);
        Ok(w.into_inner())
    }

    fn decode(buf: &[u8]) -> Result<SyncState, String> {
        let e = |e: bb_format::Error| e.to_string();
        let mut r = ArchiveReader::new(buf, "client sync state");
        if r.int().map_err(e)? != MAGIC || r.string().map_err(e)? != NAME {
            return Err("not a bb-client sync state file".into());
        }
        let version = r.int().map_err(e)?;
        if version != VERSION && version != VERSION_1 {
            return Err(format!(
                "version {version}; this client reads {VERSION_1} and {VERSION}"
            ));
        }
        let mut s = SyncState {
            marker: r.int64().map_err(e)?,
            last_sync_time: r.int64().map_err(e)?,
            highest_object_id: r.int64().map_err(e)?,
            ..SyncState::default()
        };
        let has_newest = r.bool().map_err(e)?;
        let newest = (r.int64().map_err(e)?, r.int64().map_err(e)?);
        s.newest_file = has_newest.then_some(newest);
        // Every count is checked against the bytes left before anything is
        // allocated for it.
        let count = |r: &mut ArchiveReader<'_>, min: usize| -> Result<usize, String> {
            let n = r.int64().map_err(e)?;
            match usize::try_from(n) {
                Ok(n) if n.checked_mul(min).is_some_and(|b| b <= r.remaining()) => Ok(n),
                _ => Err(format!("a count of {n} does not fit the file")),
            }
        };
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| "a name is not UTF-8");
        for _ in 0..count(&mut r, 12)? {
            let name = text(r.string().map_err(e)?)?;
            s.locations.insert(name, r.int64().map_err(e)?);
        }
        for _ in 0..count(&mut r, 12)? {
            let name = text(r.string().map_err(e)?)?;
            let n = count(&mut r, 24)?;
            let mut map = InodeMap::with_capacity(n);
            for _ in 0..n {
                let ino = r.uint64().map_err(e)?;
                map.insert(ino, (r.int64().map_err(e)?, r.int64().map_err(e)?));
            }
            s.inodes.insert(name, map);
        }
        for _ in 0..count(&mut r, 20)? {
            let dir = r.int64().map_err(e)?;
            let name = r.string().map_err(e)?.to_vec();
            s.pending.insert((dir, name), r.int64().map_err(e)?);
        }
        for _ in 0..count(&mut r, 12)? {
            let dir = r.int64().map_err(e)?;
            s.dirty.insert((dir, r.string().map_err(e)?.to_vec()));
        }
        if version != VERSION_1 {
            s.unused_roots_delete_after = r.int64().map_err(e)?;
        }
        r.finish().map_err(e)?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SyncState {
        let mut s = SyncState {
            marker: 0x66108e04b9821,
            last_sync_time: 1_600_000_000_000_000,
            highest_object_id: 77,
            newest_file: Some((70, 3)),
            ..SyncState::default()
        };
        s.locations.insert("home".into(), 2);
        s.inodes
            .entry("home".into())
            .or_default()
            .insert(12345, (70, 3));
        s.pending.insert((3, b"new".to_vec()), 99);
        s.dirty.insert((3, b"changing".to_vec()));
        s.unused_roots_delete_after = 1_700_000_000_000_000;
        s
    }

    #[test]
    fn round_trips_through_the_data_directory() {
        let d = tempfile::tempdir().unwrap();
        let empty = SyncState::load(d.path()).unwrap();
        assert_eq!(empty.marker(), 0);
        assert_eq!(empty.path(), Some(d.path().join(STATE_FILE).as_path()));
        let mut s = sample();
        s.save(d.path()).unwrap();
        let back = SyncState::load(d.path()).unwrap();
        s.path = back.path.clone();
        assert_eq!(back, s);
        assert!(!d.path().join(format!("{STATE_FILE}.tmp")).exists());
    }

    #[test]
    fn version_1_files_still_read() {
        let mut s = sample();
        let mut bytes = s.encode().unwrap();
        // Version 1: the same without the trailing deadline.
        let at = 4 + 4 + NAME.len();
        bytes[at..at + 4].copy_from_slice(&VERSION_1.to_be_bytes());
        bytes.truncate(bytes.len() - 8);
        s.unused_roots_delete_after = 0;
        assert_eq!(SyncState::decode(&bytes).unwrap(), s);
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let bytes = sample().encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(SyncState::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = bytes.clone();
        // The location count (after magic, name, version, 3 int64, bool, 2 int64).
        let at = 4 + 4 + NAME.len() + 4 + 24 + 4 + 16;
        huge[at..at + 8].copy_from_slice(&i64::MAX.to_be_bytes());
        assert!(SyncState::decode(&huge).is_err());
        let mut other = bytes;
        other[0] ^= 1;
        assert!(SyncState::decode(&other).is_err());
    }
}
