//! The connections of a mount: a small pool of logged-in read-only sessions
//! that the FUSE threads share, one command at a time each, and a factory for
//! the dedicated session a long file stream keeps to itself.
//!
//! Owns: how many connections exist and who holds one. A session that lost
//! its connection logs in again the next time it is used (bb-remote's
//! `Session`), so a server that went away and came back needs nothing here.
//! Must not know: what is asked of the store.

use std::sync::{Arc, Condvar, Mutex};

use bb_remote::StoreRead;

use crate::error::{Error, Result};

/// A store connection as the mount uses it.
pub type Store = Box<dyn StoreRead + Send>;

/// Makes a new store connection (a `Session` to the configured server, or a
/// fake in tests).
pub type MakeStore = Arc<dyn Fn() -> bb_remote::Result<Store> + Send + Sync>;

/// Up to `size` connections, made when first needed.
pub struct Pool {
    make: MakeStore,
    size: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Store>,
    made: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("size", &self.size).finish()
    }
}

impl Pool {
    pub fn new(make: MakeStore, size: usize) -> Pool {
        Pool {
            make,
            size: size.max(1),
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                made: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// How many connections the pool may hold.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The factory, for connections kept outside the pool (file streams).
    pub fn maker(&self) -> MakeStore {
        self.make.clone()
    }

    /// A new connection outside the pool.
    pub fn make(&self) -> bb_remote::Result<Store> {
        (self.make)()
    }

    /// Runs `f` with a pooled connection, waiting for one if all are busy.
    /// `id` names the object for the error if no connection can be made.
    pub fn with<T>(&self, id: i64, f: impl FnOnce(&mut dyn StoreRead) -> Result<T>) -> Result<T> {
        let mut store = self.take(id)?;
        let r = f(store.as_mut());
        self.give_back(store);
        r
    }

    fn take(&self, id: i64) -> Result<Store> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(s) = st.idle.pop() {
                return Ok(s);
            }
            if st.made < self.size {
                st.made += 1;
                drop(st);
                return (self.make)().map_err(|e| {
                    let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    st.made -= 1;
                    self.freed.notify_one();
                    Error::remote(id, e)
                });
            }
            st = self.freed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn give_back(&self, s: Store) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.idle.push(s);
        self.freed.notify_one();
    }
}
