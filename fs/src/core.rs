//! The filesystem's model of the store: inodes, listings, file metadata and
//! file contents, with their caches. [`crate::fuse`] turns FUSE requests into
//! calls here; everything here is plain Rust that tests can call directly.
//!
//! # Where attributes come from
//!
//! A directory's attributes are in its own object (ListDirectory with
//! attributes); its modification time is the one its parent's entry holds
//! (0.13 keeps no other). A file's attributes are embedded in the file
//! object, at the head of the GetFile stream, unless its entry carries
//! replacement attributes; its size is the sum of the clear block sizes in
//! the block index, which comes right after them. So every file's metadata
//! costs a GetFile: for a small file the whole stream is read (and decoded
//! and kept, since a read of it usually follows), for a large one only its
//! head. These are
//! batched per directory: the files of a listing chunk go out as pipelined
//! GetFiles over all pooled connections at once, and child directories as
//! pipelined ListDirectories, so `ls -l` of 10,000 files is a few hundred
//! round trips spread over the pool, not 10,000 in a row.
//!
//! # Caches
//!
//! Byte-bounded LRUs for listings (refreshed after `ttl`, since directories
//! change while a store is in use), file metadata and decoded small files;
//! an on-disc metadata cache ([`crate::diskcache`]); each large file's stream
//! window ([`crate::stream`]). A prefetch thread fetches a directory being
//! read, and its subdirectories, ahead of the reader ([`Ahead`]).
//!
//! Must not know: the FUSE wire types beyond `FileAttr`, the config file.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bb_format::attributes::{self, UnixAttributes};
use bb_format::decode::{StreamDecoder, decode_file};
use bb_format::directory::{Directory, Entry};
use bb_format::{BoxTime, Keys};
use bb_proto::message::flags::ROOT_DIRECTORY;
use fuser::{FileAttr, FileType, INodeNo};

use crate::diskcache::{DiskCache, Facts};
use crate::error::{Error, Result};
use crate::lru::Lru;
use crate::pool::{MakeStore, Pool};
use crate::stream::FileStream;
use crate::view::{self, Child, Node, View};

/// A file whose entry says at most this many store blocks (4 MiB with 0.13's
/// usual 4 KiB blocks) is fetched whole when its metadata is needed, and read
/// from memory; a larger one only has its head read, and is streamed. (Up to
/// 4 MiB the rest of a stream is read away anyway to keep the connection.)
const SMALL_BLOCKS: i64 = 1024;
/// Largest stream a small-file fetch takes (a wrong `size_in_blocks` must not
/// make it unbounded).
const SMALL_LIMIT: u64 = 64 << 20;
/// Large files streamed at once (each holds a connection and a window).
const MAX_STREAMS: usize = 4;
/// How long a file fetched ahead counts as waiting for its reader.
const UNREAD_FOR: Duration = Duration::from_secs(10);
/// Files fetched per pipelined batch on one connection.
const BATCH: usize = 64;

/// What a mount keeps, and for how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// Connections in the pool (streams of large files have their own).
    pub connections: usize,
    /// How long a directory listing is used before it is fetched again.
    pub ttl: Duration,
    /// Bytes of memory for listings and metadata.
    pub meta_cache: usize,
    /// Bytes of memory for decoded small files.
    pub data_cache: usize,
    /// The on-disc metadata cache file; `None` for none.
    pub disk_cache: Option<PathBuf>,
    /// Mount only this location's current tree at the root.
    pub location: Option<String>,
    /// Owner of the mount's own directories (root, `current/`...).
    pub uid: u32,
    pub gid: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            connections: 4,
            ttl: Duration::from_secs(60),
            meta_cache: 32 << 20,
            data_cache: 64 << 20,
            disk_cache: None,
            location: None,
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
        }
    }
}

/// A directory listing with its names decrypted.
#[derive(Debug)]
pub struct Listing {
    pub dir: Directory,
    /// Clear names; `None` where a name did not decrypt.
    pub names: Vec<Option<Vec<u8>>>,
    /// The directory's own attributes, decrypted.
    pub attrs: Option<UnixAttributes>,
    fetched: Instant,
    children: [OnceLock<Arc<Vec<Child>>>; 3],
    /// Name -> position in `children`, per view, for lookups.
    index: [OnceLock<HashMap<Vec<u8>, usize>>; 3],
}

impl Listing {
    fn new(keys: &Keys, dir: Directory) -> Listing {
        let names = dir
            .entries
            .iter()
            .map(|e| match e.name.decrypt(keys) {
                Ok(n)
                    if !n.is_empty()
                        && !n.contains(&b'/')
                        && !n.contains(&0)
                        && n != b"."
                        && n != b".." =>
                {
                    Some(n)
                }
                Ok(n) => {
                    tracing::error!(
                        "object {:#x}: name {:?} cannot be shown; left out",
                        e.object_id,
                        String::from_utf8_lossy(&n)
                    );
                    None
                }
                Err(err) => {
                    tracing::error!("object {:#x}: name: {err}; left out", e.object_id);
                    None
                }
            })
            .collect();
        let attrs = match UnixAttributes::decrypt(keys, &dir.attributes) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("directory {:#x}: attributes: {e}", dir.object_id);
                None
            }
        };
        Listing {
            dir,
            names,
            attrs,
            fetched: Instant::now(),
            children: Default::default(),
            index: Default::default(),
        }
    }

    fn weight(&self) -> usize {
        256 + self.dir.entries.len() * 160 + self.dir.attributes.len()
    }

    /// Where the child called `name` is in [`Listing::children`] of `view`.
    pub fn position(&self, view: View, name: &[u8]) -> Option<usize> {
        let kids = self.children(view);
        self.index[view_slot(view)]
            .get_or_init(|| {
                kids.iter()
                    .enumerate()
                    .map(|(k, c)| (c.name.clone(), k))
                    .collect()
            })
            .get(name)
            .copied()
    }

    /// The children in `view` (computed once per listing).
    pub fn children(&self, view: View) -> Arc<Vec<Child>> {
        let k = view_slot(view);
        self.children[k]
            .get_or_init(|| {
                Arc::new(view::children(
                    view,
                    self.dir.object_id,
                    &self.dir.entries,
                    &self.names,
                ))
            })
            .clone()
    }
}

fn view_slot(view: View) -> usize {
    match view {
        View::Current => 0,
        View::Deleted => 1,
        View::Versions => 2,
    }
}

/// A file's metadata: attributes and clear size.
#[derive(Debug, Clone)]
pub struct FileMeta {
    pub attrs: UnixAttributes,
    pub size: u64,
}

impl FileMeta {
    fn weight(&self) -> usize {
        128 + self.attrs.symlink_target.as_ref().map_or(0, Vec::len)
            + self
                .attrs
                .xattrs
                .iter()
                .map(|(n, v)| n.len() + v.len() + 48)
                .sum::<usize>()
    }
}

/// What the kernel knows an inode as.
#[derive(Debug, Clone)]
struct Inode {
    node: Node,
    parent: u64,
    lookups: u64,
    /// The entry that named it (for files and directories).
    entry: Option<EntryFacts>,
}

/// What a node needs from the entry that names it.
#[derive(Debug, Clone)]
pub struct EntryFacts {
    pub mtime: BoxTime,
    pub size_in_blocks: i64,
    pub hash: u64,
    /// Replacement attributes (encrypted); usually empty.
    pub attributes: Vec<u8>,
}

impl EntryFacts {
    fn of(e: &Entry) -> EntryFacts {
        EntryFacts {
            mtime: e.mtime,
            size_in_blocks: e.size_in_blocks,
            hash: e.attributes_hash,
            attributes: e.attributes.clone(),
        }
    }

    fn facts(&self) -> Facts {
        Facts {
            mtime: self.mtime,
            size_in_blocks: self.size_in_blocks,
            hash: self.hash,
        }
    }
}

/// One readdir item: the offset of the next item, inode, name, type, and
/// (readdirplus) attributes.
pub type DirItem = (u64, u64, Vec<u8>, FileType, Option<FileAttr>);

/// The mounted store. See the module header.
#[allow(missing_debug_implementations)] // caches of decrypted data: not for logs
pub struct BoxFs {
    keys: Arc<Keys>,
    pool: Pool,
    opts: Options,
    root: Node,
    mounted_at: SystemTime,
    inodes: Mutex<HashMap<u64, Inode>>,
    listings: Mutex<Lru<i64, Arc<Listing>>>,
    metas: Mutex<Lru<i64, Arc<FileMeta>>>,
    disk: Option<DiskCache>,
    /// Decoded small files.
    decoded: Mutex<Lru<i64, Arc<Vec<u8>>>>,
    /// Large files being read, with when they were last read.
    streams: Mutex<HashMap<i64, (Arc<FileStream>, Instant)>>,
    /// One fetch of a directory's metadata at a time.
    fetching: Mutex<HashMap<i64, Arc<Mutex<()>>>>,
    ahead: Ahead,
    stats: Stats,
}

/// A directory seen in a view, for the prefetch thread.
type DirJob = (View, i64);

/// Directories whose files' metadata (and small files) a background thread
/// fetches ahead of the reader: a directory being read whole (readdir from
/// its start) and its subdirectories, which `cp -a`, `diff -r` and `rsync`
/// visit next. It pauses while the small files it fetched wait unread in
/// more than half the cache, so it never evicts what it fetched itself.
#[derive(Default)]
struct Ahead {
    /// Small files decoded ahead and not opened yet: their sizes and when.
    unread: Mutex<HashMap<i64, (usize, Instant)>>,
    /// The directories to do, in order, and the same as a set.
    queue: Mutex<(VecDeque<DirJob>, HashSet<DirJob>)>,
    wake: std::sync::Condvar,
}

/// Counters, for tests and the log.
#[derive(Debug, Default)]
pub struct Stats {
    pub listings_fetched: AtomicU64,
    pub files_fetched: AtomicU64,
    pub heads_fetched: AtomicU64,
    pub disk_hits: AtomicU64,
    /// Small files fetched for a read because the copy their metadata fetch
    /// left had been evicted (or there was none: metadata from disc).
    pub refetched: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn system_time(t: BoxTime) -> SystemTime {
    if t >= 0 {
        UNIX_EPOCH + Duration::from_micros(t as u64)
    } else {
        UNIX_EPOCH - Duration::from_micros(t.unsigned_abs())
    }
}

impl BoxFs {
    /// Sets a mount up: opens the disc cache and finds the location asked for.
    pub fn new(keys: Keys, make: MakeStore, opts: Options) -> Result<BoxFs> {
        let disk = match &opts.disk_cache {
            Some(p) => match DiskCache::open(p) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!("metadata cache {}: {e}; going on without it", p.display());
                    None
                }
            },
            None => None,
        };
        let cap = opts.meta_cache;
        let data = opts.data_cache;
        let mut fs = BoxFs {
            keys: Arc::new(keys),
            pool: Pool::new(make, opts.connections),
            root: Node::Root,
            mounted_at: SystemTime::now(),
            inodes: Mutex::new(HashMap::new()),
            listings: Mutex::new(Lru::new(cap / 2)),
            metas: Mutex::new(Lru::new(cap / 2)),
            disk,
            decoded: Mutex::new(Lru::new(data)),
            streams: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
            ahead: Ahead::default(),
            stats: Stats::default(),
            opts,
        };
        // Log in now, so that a wrong config fails the mount, not the first `ls`.
        let root = fs.listing(ROOT_DIRECTORY)?;
        if let Some(loc) = fs.opts.location.clone() {
            let child = root
                .children(View::Current)
                .iter()
                .find(|c| c.name == loc.as_bytes() && c.node.is_dir())
                .cloned()
                .ok_or_else(|| Error::Setup(format!("no location named {loc:?} in the store")))?;
            fs.root = child.node;
        }
        let (root_node, facts) = match fs.root {
            Node::Dir { id, .. } => {
                let e = root
                    .dir
                    .entries
                    .iter()
                    .find(|e| e.object_id == id)
                    .map(EntryFacts::of);
                (fs.root, e)
            }
            n => (n, None),
        };
        lock(&fs.inodes).insert(
            1,
            Inode {
                node: root_node,
                parent: 1,
                lookups: 1,
                entry: facts,
            },
        );
        Ok(fs)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn ino_of(&self, node: Node) -> u64 {
        if node == self.root {
            1
        } else {
            node.natural_ino()
        }
    }

    fn inode(&self, ino: u64) -> Result<Inode> {
        lock(&self.inodes).get(&ino).cloned().ok_or(Error::NotFound)
    }

    /// Remembers `child` (seen under `parent`) for the kernel: one lookup.
    fn remember(&self, parent: u64, node: Node, entry: Option<EntryFacts>) -> u64 {
        let ino = self.ino_of(node);
        let mut t = lock(&self.inodes);
        let i = t.entry(ino).or_insert(Inode {
            node,
            parent,
            lookups: 0,
            entry: None,
        });
        i.lookups += 1;
        if entry.is_some() {
            i.entry = entry;
        }
        ino
    }

    /// The kernel forgot `n` lookups of `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        if ino == 1 {
            return;
        }
        let mut t = lock(&self.inodes);
        if let Some(i) = t.get_mut(&ino) {
            i.lookups = i.lookups.saturating_sub(n);
            if i.lookups == 0 {
                t.remove(&ino);
            }
        }
    }

    /// A directory listing, from the cache while it is fresh.
    pub fn listing(&self, id: i64) -> Result<Arc<Listing>> {
        if let Some(l) = lock(&self.listings).get(&id)
            && l.fetched.elapsed() < self.opts.ttl
        {
            return Ok(l);
        }
        let dir = self.pool.with(id, |s| {
            s.list_directory(id, bb_proto::message::flags::INCLUDE_EVERYTHING, 0, true)
                .map_err(|e| Error::remote(id, e))
        })?;
        self.stats.listings_fetched.fetch_add(1, Ordering::Relaxed);
        Ok(self.keep_listing(dir))
    }

    fn keep_listing(&self, dir: Directory) -> Arc<Listing> {
        let id = dir.object_id;
        let l = Arc::new(Listing::new(&self.keys, dir));
        lock(&self.listings).insert(id, l.clone(), l.weight());
        l
    }

    /// Fetches the listings of `ids` not fresh in the cache, pipelined over
    /// the pool. Errors are left for the caller's own fetch to meet.
    fn prefetch_listings(&self, ids: &[i64]) {
        let missing: Vec<i64> = {
            let mut c = lock(&self.listings);
            ids.iter()
                .copied()
                .filter(|id| {
                    c.get(id)
                        .is_none_or(|l| l.fetched.elapsed() >= self.opts.ttl)
                })
                .collect()
        };
        if missing.is_empty() {
            return;
        }
        self.spread(&missing, |s, part| {
            let r = s.list_directories(part, &mut |i, r| match r {
                Ok(d) => {
                    self.stats.listings_fetched.fetch_add(1, Ordering::Relaxed);
                    self.keep_listing(d);
                }
                Err(e) => tracing::debug!("directory {:#x}: {e}", part[i]),
            });
            if let Err(e) = r {
                tracing::debug!("listing directories: {e}");
            }
        });
    }

    /// Runs `f` over parts of `items`, one part per pooled connection, in
    /// parallel, in pieces of at most [`BATCH`].
    fn spread<T: Sync>(&self, items: &[T], f: impl Fn(&mut dyn bb_remote::StoreRead, &[T]) + Sync) {
        let n = self.pool.size().min(items.len().div_ceil(8)).max(1);
        let per = items.len().div_ceil(n);
        std::thread::scope(|sc| {
            for part in items.chunks(per.max(1)) {
                let f = &f;
                sc.spawn(move || {
                    let _ = self.pool.with(0, |s| {
                        for piece in part.chunks(BATCH) {
                            f(s, piece);
                        }
                        Ok(())
                    });
                });
            }
        });
    }

    /// Starts the thread that fetches ahead (see [`Ahead`]); it ends with
    /// the last reference to the filesystem.
    pub fn start_prefetch(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || {
                loop {
                    let Some(fs) = weak.upgrade() else { return };
                    let job = {
                        let mut q = lock(&fs.ahead.queue);
                        match q.0.pop_front() {
                            Some(j) => Some(j),
                            None => {
                                let (g, _) = fs
                                    .ahead
                                    .wake
                                    .wait_timeout(q, Duration::from_millis(500))
                                    .unwrap_or_else(|e| e.into_inner());
                                drop(g);
                                None
                            }
                        }
                    };
                    let Some((view, id)) = job else { continue };
                    // Wait while what was fetched ahead is still unread.
                    while fs.unread_bytes() > fs.opts.data_cache / 3 {
                        if Arc::strong_count(&fs) == 1 {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    fs.fetch_ahead(view, id);
                    lock(&fs.ahead.queue).1.remove(&(view, id));
                }
            });
    }

    /// Bytes decoded ahead and still waiting for a reader. Files evicted
    /// unread no longer count, nor do files nobody opened for a while (a
    /// listing without reads, or reads the page cache served).
    fn unread_bytes(&self) -> usize {
        let mut u = lock(&self.ahead.unread);
        let decoded = lock(&self.decoded);
        u.retain(|id, (_, at)| decoded.contains(id) && at.elapsed() < UNREAD_FOR);
        u.values().map(|(n, _)| n).sum()
    }

    /// Queues directory `id` (seen in `view`) and its subdirectories for the
    /// prefetch thread: called when a directory is read from its start.
    fn queue_ahead(&self, view: View, id: i64) {
        let subdirs: Vec<i64> = match lock(&self.listings).get(&id) {
            Some(l) => l
                .children(view)
                .iter()
                .filter_map(|c| match c.node {
                    Node::Dir { id, .. } => Some(id),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        // Depth first, as the tools that read whole trees go: this directory
        // now, then its subdirectories in order, before older work.
        let mut q = lock(&self.ahead.queue);
        let (queue, queued) = &mut *q;
        for d in subdirs.into_iter().rev().chain([id]) {
            if queued.insert((view, d)) {
                queue.push_front((view, d));
            }
        }
        // Old work the reader has left behind is not worth doing.
        while queue.len() > 4096 {
            if let Some(j) = queue.pop_back() {
                queued.remove(&j);
            }
        }
        self.ahead.wake.notify_one();
    }

    /// What a reader of directory `id` will need: its files' metadata (small
    /// files whole) and its subdirectories' listings.
    fn fetch_ahead(&self, view: View, id: i64) {
        let Ok(l) = self.listing(id) else { return };
        let kids = l.children(view);
        self.prepare(&kids, Some(&l));
        // Small files whose metadata was at hand (the disc cache) but whose
        // content is not: fetched whole too, for the reads to come.
        let want: Vec<(i64, i64, EntryFacts)> = kids
            .iter()
            .filter_map(|c| match c.node {
                Node::File { dir, id, .. } => l
                    .dir
                    .entries
                    .get(c.entry)
                    .filter(|e| e.size_in_blocks <= SMALL_BLOCKS)
                    .map(|e| (dir, id, EntryFacts::of(e))),
                _ => None,
            })
            .filter(|(_, id, _)| !lock(&self.decoded).contains(id))
            .collect();
        if !want.is_empty() {
            self.fetch_whole(&want);
        }
    }

    /// The node's children (for a directory-like node).
    pub fn children(&self, node: Node) -> Result<Arc<Vec<Child>>> {
        match node {
            Node::Root => Ok(Arc::new(
                View::ALL
                    .iter()
                    .map(|&view| Child {
                        name: view.dir_name().as_bytes().to_vec(),
                        node: Node::Dir {
                            view,
                            id: ROOT_DIRECTORY,
                        },
                        entry: usize::MAX,
                    })
                    .collect(),
            )),
            Node::Dir { view, id } => Ok(self.listing(id)?.children(view)),
            Node::Versions { dir, key } => {
                let l = self.listing(dir)?;
                Ok(Arc::new(view::versions(dir, key, &l.dir.entries, &l.names)))
            }
            Node::File { .. } => Err(Error::NotFound),
        }
    }

    /// The listing a child's `entry` index refers to.
    fn containing(&self, parent: Node) -> Result<Option<Arc<Listing>>> {
        match parent {
            Node::Dir { id, .. } => self.listing(id).map(Some),
            Node::Versions { dir, .. } => self.listing(dir).map(Some),
            _ => Ok(None),
        }
    }

    /// Looks `name` up in directory `parent`: the child's inode and attributes.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<(u64, FileAttr)> {
        let p = self.inode(parent)?;
        let (kids, k, listing) = match p.node {
            // Directories can be large: by the listing's index.
            Node::Dir { view, id } => {
                let l = self.listing(id)?;
                (l.children(view), l.position(view, name), Some(l))
            }
            node => {
                let kids = self.children(node)?;
                let k = kids.iter().position(|c| c.name == name);
                (kids, k, self.containing(node)?)
            }
        };
        let k = k.ok_or(Error::NotFound)?;
        // Metadata for this file and the ones after it, in one batch.
        self.prepare(&kids[k..kids.len().min(k + BATCH)], listing.as_deref());
        let c = &kids[k];
        let facts = listing
            .as_ref()
            .and_then(|l| l.dir.entries.get(c.entry))
            .map(EntryFacts::of);
        let attr = self.attr_of(c.node, facts.as_ref())?;
        let ino = self.remember(parent, c.node, facts);
        Ok((ino, attr))
    }

    /// Fetches, in batches, what the attributes of `kids` need.
    fn prepare(&self, kids: &[Child], listing: Option<&Listing>) {
        let Some(l) = listing else { return };
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for c in kids {
            match c.node {
                Node::File { dir, id, .. } => {
                    if let Some(e) = l.dir.entries.get(c.entry) {
                        files.push((dir, id, EntryFacts::of(e)));
                    }
                }
                Node::Dir { id, .. } => dirs.push(id),
                Node::Versions { .. } | Node::Root => {}
            }
        }
        if !dirs.is_empty() {
            self.prefetch_listings(&dirs);
        }
        if !files.is_empty() {
            self.prefetch_metas(&files);
        }
    }

    /// Attributes of `ino`.
    pub fn getattr(&self, ino: u64) -> Result<FileAttr> {
        let i = self.inode(ino)?;
        self.attr_of(i.node, i.entry.as_ref())
    }

    fn attr_of(&self, node: Node, entry: Option<&EntryFacts>) -> Result<FileAttr> {
        let ino = self.ino_of(node);
        let dir_attr =
            |mode: u32, uid, gid, mtime: SystemTime, ctime: SystemTime, nlink| FileAttr {
                ino: INodeNo(ino),
                size: 4096,
                blocks: 8,
                atime: mtime,
                mtime,
                ctime,
                crtime: ctime,
                kind: FileType::Directory,
                perm: (mode & 0o7777) as u16,
                nlink,
                uid,
                gid,
                rdev: 0,
                flags: 0,
                blksize: 4096,
            };
        match node {
            Node::Root => Ok(dir_attr(
                0o555,
                self.opts.uid,
                self.opts.gid,
                self.mounted_at,
                self.mounted_at,
                5,
            )),
            Node::Dir { view, id } => {
                let l = self.listing(id)?;
                let subdirs = l.children(view).iter().filter(|c| c.node.is_dir()).count() as u32;
                let ctime = system_time(l.dir.attributes_mod_time);
                let mtime = match entry.map(|e| e.mtime) {
                    Some(t) if t != 0 => system_time(t),
                    _ => ctime,
                };
                Ok(match (&l.attrs, id == ROOT_DIRECTORY) {
                    (Some(a), false) => {
                        dir_attr(u32::from(a.mode), a.uid, a.gid, mtime, ctime, 2 + subdirs)
                    }
                    _ => dir_attr(
                        0o555,
                        self.opts.uid,
                        self.opts.gid,
                        self.mounted_at,
                        self.mounted_at,
                        2 + subdirs,
                    ),
                })
            }
            Node::Versions { dir, key } => {
                let l = self.listing(dir)?;
                let newest = view::versions(dir, key, &l.dir.entries, &l.names)
                    .iter()
                    .filter_map(|c| l.dir.entries.get(c.entry))
                    .map(|e| e.mtime)
                    .max()
                    .unwrap_or(0);
                let (uid, gid) = l
                    .attrs
                    .as_ref()
                    .map_or((self.opts.uid, self.opts.gid), |a| (a.uid, a.gid));
                let t = system_time(newest);
                Ok(dir_attr(0o555, uid, gid, t, t, 2))
            }
            Node::File { dir, id, .. } => {
                let facts = match entry {
                    Some(e) => e.clone(),
                    None => {
                        let l = self.listing(dir)?;
                        let e = l.dir.entry_by_id(id).ok_or(Error::NotFound)?;
                        EntryFacts::of(e)
                    }
                };
                let m = self.meta(dir, id, &facts)?;
                let a = &m.attrs;
                let kind = match u32::from(a.mode) & libc_s_ifmt() {
                    x if x == u32::from(attributes::S_IFLNK) => FileType::Symlink,
                    x if x == u32::from(attributes::S_IFDIR) => FileType::Directory,
                    _ => FileType::RegularFile,
                };
                let mtime = system_time(a.mtime);
                Ok(FileAttr {
                    ino: INodeNo(ino),
                    size: m.size,
                    blocks: m.size.div_ceil(512),
                    atime: mtime,
                    mtime,
                    ctime: system_time(a.attr_mtime),
                    crtime: mtime,
                    kind,
                    perm: a.mode & 0o7777,
                    nlink: 1,
                    uid: a.uid,
                    gid: a.gid,
                    rdev: 0,
                    flags: 0,
                    blksize: 4096,
                })
            }
        }
    }

    /// A file's metadata: memory, then disc, then the store (with the rest
    /// of its batch when called through [`BoxFs::prefetch_metas`]).
    pub fn meta(&self, dir: i64, id: i64, facts: &EntryFacts) -> Result<Arc<FileMeta>> {
        if let Some(m) = lock(&self.metas).get(&id) {
            return Ok(m);
        }
        if let Some(m) = self.disk_meta(id, facts)? {
            return Ok(m);
        }
        self.prefetch_metas(&[(dir, id, facts.clone())]);
        if let Some(m) = lock(&self.metas).get(&id) {
            return Ok(m);
        }
        // The batch failed for this file: fetch it alone for its error.
        self.fetch_head(dir, id, facts)
    }

    fn disk_meta(&self, id: i64, facts: &EntryFacts) -> Result<Option<Arc<FileMeta>>> {
        let Some(disk) = &self.disk else {
            return Ok(None);
        };
        let Some((size, blob)) = disk.get(id, facts.facts()) else {
            return Ok(None);
        };
        self.stats.disk_hits.fetch_add(1, Ordering::Relaxed);
        let m = self.make_meta(id, facts, &blob, size)?;
        Ok(Some(m))
    }

    fn make_meta(
        &self,
        id: i64,
        facts: &EntryFacts,
        embedded: &[u8],
        size: u64,
    ) -> Result<Arc<FileMeta>> {
        let blob = if facts.attributes.is_empty() {
            embedded
        } else {
            &facts.attributes
        };
        let attrs = UnixAttributes::decrypt(&self.keys, blob)
            .map_err(|e| Error::format(id, e))?
            .ok_or_else(|| Error::Stream {
                id,
                detail: "the file has no attributes".into(),
            })?;
        let size = if attrs.is_symlink() {
            attrs.symlink_target.as_ref().map_or(0, |t| t.len() as u64)
        } else {
            size
        };
        let m = Arc::new(FileMeta { attrs, size });
        lock(&self.metas).insert(id, m.clone(), m.weight());
        Ok(m)
    }

    /// Metadata for the files in `files` that have none yet: small ones
    /// fetched whole and pipelined, large ones by their heads.
    fn prefetch_metas(&self, files: &[(i64, i64, EntryFacts)]) {
        let mut small = Vec::new();
        let mut large = Vec::new();
        for f in files {
            // (Not holding the lock across `from_disk`, which takes it too.)
            if lock(&self.metas).get(&f.1).is_some() {
                continue;
            }
            if let Ok(Some(_)) = self.disk_meta(f.1, &f.2) {
                continue;
            }
            if f.2.size_in_blocks <= SMALL_BLOCKS {
                small.push(f);
            } else {
                large.push(f);
            }
        }
        if small.is_empty() && large.is_empty() {
            return;
        }
        // One fetch per directory at a time: a second thread asking for the
        // same files waits for the first and then finds them cached.
        let dir = files[0].0;
        let gate = lock(&self.fetching).entry(dir).or_default().clone();
        let _g = lock(&gate);
        small.retain(|f| lock(&self.metas).get(&f.1).is_none());
        large.retain(|f| lock(&self.metas).get(&f.1).is_none());
        if !small.is_empty() {
            let small: Vec<(i64, i64, EntryFacts)> = small.into_iter().cloned().collect();
            self.fetch_whole(&small);
        }
        for f in large {
            if let Err(e) = self.fetch_head(f.0, f.1, &f.2) {
                tracing::debug!("object {:#x}: {e}", f.1);
            }
        }
    }

    /// Fetches small files whole, pipelined over the pool, and takes them in.
    fn fetch_whole(&self, files: &[(i64, i64, EntryFacts)]) {
        let reqs: Vec<(i64, i64)> = files.iter().map(|f| (f.0, f.1)).collect();
        let idx: HashMap<i64, &EntryFacts> = files.iter().map(|f| (f.1, &f.2)).collect();
        self.spread(&reqs, |s, part| {
            let r = s.get_files(part, SMALL_LIMIT, &mut |i, r| {
                let (_, id) = part[i];
                if let Err(e) = r
                    .map_err(|e| Error::remote(id, e))
                    .and_then(|bytes| self.learn_whole(id, idx[&id], bytes))
                {
                    tracing::debug!("object {id:#x}: {e}");
                }
            });
            if let Err(e) = r {
                tracing::debug!("fetching files: {e}");
            }
        });
    }

    /// Takes in a small file fetched whole: its metadata, and the stream for
    /// a read that usually follows.
    fn learn_whole(&self, id: i64, facts: &EntryFacts, bytes: Vec<u8>) -> Result<()> {
        self.stats.files_fetched.fetch_add(1, Ordering::Relaxed);
        // Decoded here, on a fetching thread, so that the open that usually
        // follows finds the content ready (every block checked against the
        // index, so its length is the size the index gives).
        let file = decode_file(&self.keys, &bytes).map_err(|e| Error::format(id, e))?;
        drop(bytes);
        let size = file.content.len() as u64;
        self.make_meta(id, facts, &file.attributes, size)?;
        if let Some(d) = &self.disk {
            d.put(id, facts.facts(), size, &file.attributes);
        }
        let n = file.content.len();
        lock(&self.decoded).insert(id, Arc::new(file.content), n);
        lock(&self.ahead.unread).insert(id, (n, Instant::now()));
        Ok(())
    }

    /// The clear size the block index gives; `None` for a legacy index whose
    /// entries may have been encrypted either way (only decoding tells).
    fn index_size(&self, id: i64, index: &bb_format::index::BlockIndex) -> Result<Option<u64>> {
        if index.legacy_v0 {
            return Ok(None);
        }
        let blocks = index
            .decrypt_all(&self.keys)
            .map_err(|e| Error::format(id, e))?;
        Ok(Some(blocks.iter().map(|b| u64::from(b.size)).sum()))
    }

    /// The metadata of one file from the head of its stream.
    fn fetch_head(&self, dir: i64, id: i64, facts: &EntryFacts) -> Result<Arc<FileMeta>> {
        let (size, embedded) = self.pool.with(id, |s| {
            let reader = s.open_file(dir, id).map_err(|e| Error::remote(id, e))?;
            let mut dec =
                StreamDecoder::new(&*self.keys, reader).map_err(|e| Error::format(id, e))?;
            self.stats.heads_fetched.fetch_add(1, Ordering::Relaxed);
            let size = match self.index_size(id, dec.index())? {
                Some(n) => n,
                None => {
                    std::io::copy(&mut dec, &mut std::io::sink()).map_err(|e| Error::Stream {
                        id,
                        detail: e.to_string(),
                    })?
                }
            };
            Ok((size, dec.attributes().to_vec()))
        })?;
        if let Some(d) = &self.disk {
            d.put(id, facts.facts(), size, &embedded);
        }
        self.make_meta(id, facts, &embedded, size)
    }

    /// The symlink target of `ino`.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let i = self.inode(ino)?;
        let Node::File { dir, id, .. } = i.node else {
            return Err(Error::NotFound);
        };
        let facts = i.entry.ok_or(Error::NotFound)?;
        let m = self.meta(dir, id, &facts)?;
        m.attrs.symlink_target.clone().ok_or(Error::NotFound)
    }

    /// The extended attributes of `ino`.
    pub fn xattrs(&self, ino: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let i = self.inode(ino)?;
        match i.node {
            Node::File { dir, id, .. } => {
                let facts = i.entry.ok_or(Error::NotFound)?;
                Ok(self.meta(dir, id, &facts)?.attrs.xattrs.clone())
            }
            Node::Dir { id, .. } if id != ROOT_DIRECTORY => Ok(self
                .listing(id)?
                .attrs
                .as_ref()
                .map(|a| a.xattrs.clone())
                .unwrap_or_default()),
            _ => Ok(Vec::new()),
        }
    }

    /// The entries of directory `ino` from position `offset` on (0 is `.`,
    /// 1 is `..`), each with its inode, name and, if `plus`, attributes (and
    /// then counted as a lookup).
    pub fn readdir(&self, ino: u64, offset: u64, max: usize, plus: bool) -> Result<Vec<DirItem>> {
        let i = self.inode(ino)?;
        let kids = self.children(i.node)?;
        let listing = self.containing(i.node)?;
        let mut out = Vec::new();
        let mut pos = offset as usize;
        while pos < 2 && out.len() < max {
            let (n, name) = if pos == 0 {
                (ino, &b"."[..])
            } else {
                (i.parent, &b".."[..])
            };
            pos += 1;
            out.push((pos as u64, n, name.to_vec(), FileType::Directory, None));
        }
        let from = pos - 2;
        let upto = kids.len().min(from + max.saturating_sub(out.len()));
        if from >= upto {
            return Ok(out);
        }
        if from == 0
            && let Node::Dir { view, id } = i.node
        {
            self.queue_ahead(view, id);
        }
        if plus {
            self.prepare(&kids[from..upto], listing.as_deref());
        }
        for (k, c) in kids[from..upto].iter().enumerate() {
            // Offsets are positions, so that a child left out below does not
            // shift the ones after it.
            let next = (2 + from + k + 1) as u64;
            let facts = listing
                .as_ref()
                .and_then(|l| l.dir.entries.get(c.entry))
                .map(EntryFacts::of);
            if plus {
                match self.attr_of(c.node, facts.as_ref()) {
                    Ok(a) => {
                        let child = self.remember(ino, c.node, facts);
                        out.push((next, child, c.name.clone(), a.kind, Some(a)));
                    }
                    // One bad file must not hide its directory: it is left
                    // out here (its error logged), and a lookup of it fails.
                    Err(e) => {
                        e.errno();
                        continue;
                    }
                }
            } else {
                let kind = match c.node {
                    Node::File { id, .. } => match self.cached_meta(id) {
                        Some(m) if m.attrs.is_symlink() => FileType::Symlink,
                        _ => FileType::RegularFile,
                    },
                    _ => FileType::Directory,
                };
                out.push((next, self.ino_of(c.node), c.name.clone(), kind, None));
            }
        }
        Ok(out)
    }

    fn cached_meta(&self, id: i64) -> Option<Arc<FileMeta>> {
        lock(&self.metas).get(&id)
    }

    /// Reads up to `len` bytes at `offset` of file `ino`. There are no open
    /// handles: the FUSE side answers OPEN with ENOSYS, after which the
    /// kernel opens files without asking and keeps their pages (a file inode
    /// stands for one stored object, which never changes), two requests fewer
    /// per file read.
    pub fn read(&self, ino: u64, offset: u64, len: usize) -> Result<Vec<u8>> {
        let i = self.inode(ino)?;
        let Node::File { dir, id, .. } = i.node else {
            return Err(Error::NotFound);
        };
        let facts = i.entry.ok_or(Error::NotFound)?;
        let m = self.meta(dir, id, &facts)?;
        // The reader has come for it: no longer waiting unread.
        lock(&self.ahead.unread).remove(&id);
        if facts.size_in_blocks <= SMALL_BLOCKS || m.size <= (4 << 20) {
            let c = self.whole(dir, id, m.size)?;
            let start = offset.min(c.len() as u64) as usize;
            let end = c.len().min(start.saturating_add(len));
            return Ok(c[start..end].to_vec());
        }
        self.stream(dir, id).read(offset, len, m.size)
    }

    /// The stream of a large file, made at its first read. At most
    /// [`MAX_STREAMS`] are kept: the one read least recently is stopped to
    /// make room (a reader still on it starts it again).
    fn stream(&self, dir: i64, id: i64) -> Arc<FileStream> {
        let mut s = lock(&self.streams);
        let now = Instant::now();
        if let Some(e) = s.get_mut(&id) {
            e.1 = now;
            return e.0.clone();
        }
        if s.len() >= MAX_STREAMS
            && let Some(oldest) = s.iter().min_by_key(|(_, e)| e.1).map(|(k, _)| *k)
            && let Some((old, _)) = s.remove(&oldest)
        {
            old.close();
        }
        let st = FileStream::new(dir, id, self.keys.clone(), self.pool.maker());
        s.insert(id, (st.clone(), now));
        st
    }

    /// A small file's clear content: decoded cache, then the store.
    fn whole(&self, dir: i64, id: i64, size: u64) -> Result<Arc<Vec<u8>>> {
        if let Some(c) = lock(&self.decoded).get(&id) {
            return Ok(c);
        }
        let mut bytes = Vec::new();
        self.pool.with(id, |s| {
            s.get_file(dir, id, &mut bytes)
                .map_err(|e| Error::remote(id, e))
        })?;
        self.stats.refetched.fetch_add(1, Ordering::Relaxed);
        let content = decode_file(&self.keys, &bytes)
            .map_err(|e| Error::format(id, e))?
            .content;
        if content.len() as u64 != size {
            return Err(Error::Stream {
                id,
                detail: format!(
                    "{} bytes decoded, the block index says {size}",
                    content.len()
                ),
            });
        }
        let c = Arc::new(content);
        lock(&self.decoded).insert(id, c.clone(), c.len());
        Ok(c)
    }

    /// Usage figures for statfs: (block size, blocks used, hard limit).
    pub fn usage(&self) -> Result<(u64, u64, u64)> {
        let u = self
            .pool
            .with(0, |s| s.usage().map_err(|e| Error::remote(0, e)))?;
        Ok((
            u.block_size.max(1) as u64,
            u.blocks_used.max(0) as u64,
            u.blocks_hard_limit.max(0) as u64,
        ))
    }
}

fn libc_s_ifmt() -> u32 {
    u32::from(attributes::S_IFMT)
}
