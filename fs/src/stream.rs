//! Reading a large file: one GetFile stream per open file, decoded on its own
//! thread ahead of the reader (readahead), into a window of decoded blocks.
//!
//! Box Backup's protocol has no ranged read: a file comes as one stream from
//! its first block. So a reader moving forward is served from the window as
//! the stream fills it, a reader jumping ahead waits while the stream gets
//! there (decoding is what costs, and it goes on in the background), and a
//! reader going back past the window starts the stream again. The stream
//! thread keeps its own connection, so listing and small files go on beside
//! it. It stops when it is evicted (a fifth large file is read), when nobody
//! has read for a while, or at the first error, which the reads waiting get;
//! the next read starts it again.
//!
//! Must not know: FUSE, inodes.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use bb_format::Keys;
use bb_format::decode::StreamDecoder;

use crate::error::{Error, Result};
use crate::pool::MakeStore;

/// How far the stream runs ahead of the furthest read.
pub const READAHEAD: u64 = 32 << 20;
/// How much already read stays in the window, for readers a little behind.
pub const KEEP_BEHIND: u64 = 8 << 20;
/// A stream nobody reads from for this long gives up its connection.
const IDLE: Duration = Duration::from_secs(60);

/// One file's stream; shared by every reader of that file.
pub struct FileStream {
    dir: i64,
    id: i64,
    keys: Arc<Keys>,
    make: MakeStore,
    st: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
struct State {
    /// Bumped whenever the stream is started again; an older thread stops.
    generation: u64,
    /// Decoded blocks `(start offset, bytes)`, in order, contiguous.
    window: VecDeque<(u64, Arc<Vec<u8>>)>,
    /// Clear bytes decoded so far by the current thread.
    decoded: u64,
    /// The thread may decode up to here before it waits.
    want: u64,
    /// The furthest offset read so far (for trimming the window).
    read_to: u64,
    finished: bool,
    running: bool,
    error: Option<String>,
    closed: bool,
}

impl std::fmt::Debug for FileStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStream").field("id", &self.id).finish()
    }
}

impl FileStream {
    pub fn new(dir: i64, id: i64, keys: Arc<Keys>, make: MakeStore) -> Arc<FileStream> {
        Arc::new(FileStream {
            dir,
            id,
            keys,
            make,
            st: Mutex::new(State::default()),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the stream thread and frees its window. A read still waiting
    /// on it, or a later one, starts the stream again.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.running = false;
        st.generation += 1;
        st.window.clear();
        self.cv.notify_all();
    }

    /// Reads up to `len` bytes at `offset` (fewer only at the end of the file,
    /// whose clear size is `size`).
    pub fn read(self: &Arc<Self>, offset: u64, len: usize, size: u64) -> Result<Vec<u8>> {
        let end = size.min(offset.saturating_add(len as u64));
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut st = self.lock();
        if st.closed {
            // Reopened after the last close: start afresh.
            *st = State {
                generation: st.generation + 1,
                ..State::default()
            };
        }
        if st.error.is_some() && !st.running {
            // A new read after a failed stream tries again (the server may be
            // back); the reads that were waiting got the error.
            st.error = None;
            st.finished = false;
        }
        loop {
            if let Some(data) = copy_out(&st.window, offset, end) {
                st.read_to = st.read_to.max(end);
                trim(&mut st);
                // Keep the thread going ahead of this reader.
                let want = end.saturating_add(READAHEAD);
                if want > st.want {
                    st.want = want;
                    self.cv.notify_all();
                }
                return Ok(data);
            }
            if let Some(e) = st.error.clone() {
                return Err(Error::Stream {
                    id: self.id,
                    detail: e,
                });
            }
            if st.finished && end > st.decoded {
                return Err(Error::Stream {
                    id: self.id,
                    detail: format!(
                        "the stream ended at {} bytes, the block index says {size}",
                        st.decoded
                    ),
                });
            }
            let window_start = st.window.front().map_or(st.decoded, |(s, _)| *s);
            if offset < window_start || !st.running {
                self.restart(&mut st, offset);
                continue;
            }
            let want = end.saturating_add(READAHEAD);
            if want > st.want {
                st.want = want;
                self.cv.notify_all();
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Starts a new stream thread from the beginning of the file, to serve a
    /// read at `offset`.
    fn restart(self: &Arc<Self>, st: &mut State, offset: u64) {
        st.generation += 1;
        st.window.clear();
        st.decoded = 0;
        st.finished = false;
        st.running = true;
        st.closed = false;
        st.read_to = offset;
        st.want = offset.saturating_add(READAHEAD);
        let generation = st.generation;
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name(format!("stream-{:x}", self.id))
            .spawn(move || me.run(generation))
            .map_or_else(
                |e| {
                    st.running = false;
                    st.error = Some(format!("cannot start a stream thread: {e}"));
                },
                drop,
            );
    }

    fn run(&self, generation: u64) {
        let r = self.pump(generation);
        let mut st = self.lock();
        if st.generation == generation {
            st.running = false;
            match r {
                Ok(true) => st.finished = true,
                // Idle: the connection and the window go; a later read
                // starts again.
                Ok(false) => st.window.clear(),
                Err(e) => {
                    tracing::error!("object {:#x}: {e}", self.id);
                    st.error = Some(e);
                }
            }
            self.cv.notify_all();
        }
    }

    /// Streams and decodes until the end (`true`), an error, a newer
    /// generation or a long time without reads (`false`).
    fn pump(&self, generation: u64) -> std::result::Result<bool, String> {
        let mut store = (self.make)().map_err(|e| e.to_string())?;
        let reader = store
            .open_file(self.dir, self.id)
            .map_err(|e| e.to_string())?;
        let mut dec = StreamDecoder::new(&*self.keys, reader).map_err(|e| e.to_string())?;
        loop {
            {
                let mut st = self.lock();
                loop {
                    if st.generation != generation {
                        return Ok(false);
                    }
                    // Decode only what is not yet in the window (a restart
                    // for an offset far ahead skips keeping what is before).
                    if st.decoded < st.want {
                        break;
                    }
                    let (g, timeout) = self
                        .cv
                        .wait_timeout(st, IDLE)
                        .unwrap_or_else(|e| e.into_inner());
                    st = g;
                    if timeout.timed_out() && st.decoded >= st.want {
                        return Ok(false);
                    }
                }
            }
            let block = match dec.next_block() {
                Ok(Some(b)) => b.to_vec(),
                Ok(None) => return Ok(true),
                Err(e) => return Err(e.to_string()),
            };
            let mut st = self.lock();
            if st.generation != generation {
                return Ok(false);
            }
            let start = st.decoded;
            st.decoded += block.len() as u64;
            // Blocks wholly before the furthest read minus what we keep
            // behind are not needed (a restart to an offset far ahead).
            if st.decoded + KEEP_BEHIND >= st.read_to {
                st.window.push_back((start, Arc::new(block)));
            }
            trim(&mut st);
            self.cv.notify_all();
        }
    }
}

/// Drops blocks that end more than [`KEEP_BEHIND`] before the furthest read.
fn trim(st: &mut State) {
    while let Some((s, b)) = st.window.front() {
        if s + b.len() as u64 + KEEP_BEHIND < st.read_to {
            st.window.pop_front();
        } else {
            break;
        }
    }
}

/// The bytes `[offset, end)` if the window holds all of them.
fn copy_out(window: &VecDeque<(u64, Arc<Vec<u8>>)>, offset: u64, end: u64) -> Option<Vec<u8>> {
    let first = window.front()?.0;
    let (last_s, last_b) = window.back()?;
    if offset < first || end > last_s + last_b.len() as u64 {
        return None;
    }
    let mut out = Vec::with_capacity((end - offset) as usize);
    // Blocks are contiguous: find the first one by binary search.
    let k = window.partition_point(|(s, b)| s + b.len() as u64 <= offset);
    for (s, b) in window.iter().skip(k) {
        if *s >= end {
            break;
        }
        let from = offset.max(*s) - s;
        let to = end.min(s + b.len() as u64) - s;
        out.extend_from_slice(&b[from as usize..to as usize]);
    }
    Some(out)
}
