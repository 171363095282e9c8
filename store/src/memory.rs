//! `MemObjects`: an in-memory `ObjectStore`, the fake for tests (STYLE rule 5).
//! The same operation suite runs on it and on `RaidObjects`; housekeeping and
//! check tests can use it to build odd stores quickly.
//!
//! Usage in blocks is the non-RAID rule (`ceil(size / block size)`).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::ObjectId;
use crate::error::{Error, Result};
use crate::objects::{NamedFile, ObjectRead, ObjectStore, ObjectWrite, WalkItem, WriteLockGuard};

#[derive(Debug, Default)]
struct State {
    exists: bool,
    objects: BTreeMap<ObjectId, Arc<Vec<u8>>>,
    named: HashMap<NamedFile, Vec<u8>>,
    locked: bool,
}

/// An account's objects in memory. Clones share the contents.
#[derive(Debug, Clone)]
pub struct MemObjects {
    account: u32,
    block_size: u64,
    state: Arc<Mutex<State>>,
}

impl MemObjects {
    pub fn new(account: u32, block_size: u64) -> MemObjects {
        MemObjects {
            account,
            block_size: block_size.max(1),
            state: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The IDs of all objects (tests).
    pub fn object_ids(&self) -> Vec<ObjectId> {
        self.state().objects.keys().copied().collect()
    }
}

#[derive(Debug)]
struct MemWrite {
    store: MemObjects,
    id: ObjectId,
    buf: Option<Vec<u8>>,
}

impl Write for MemWrite {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.buf {
            Some(b) => {
                b.extend_from_slice(data);
                Ok(data.len())
            }
            None => Err(io::Error::other("closed")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ObjectWrite for MemWrite {
    fn len(&self) -> u64 {
        self.buf.as_ref().map_or(0, |b| b.len() as u64)
    }
    fn read_back_at(&mut self, out: &mut [u8], offset: u64) -> Result<usize> {
        let b = self.buf.as_deref().unwrap_or(&[]);
        let off = (offset.min(b.len() as u64)) as usize;
        let n = out.len().min(b.len() - off);
        out[..n].copy_from_slice(&b[off..off + n]);
        Ok(n)
    }
    fn commit(mut self: Box<Self>) -> Result<()> {
        let b = self.buf.take().unwrap_or_default();
        self.store.state().objects.insert(self.id, Arc::new(b));
        Ok(())
    }
    fn discard(mut self: Box<Self>) -> Result<()> {
        self.buf = None;
        Ok(())
    }
}

#[derive(Debug)]
struct MemRead {
    data: Arc<Vec<u8>>,
    pos: u64,
}

impl Read for MemRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_at(buf, self.pos).map_err(io::Error::other)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl ObjectRead for MemRead {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&mut self, out: &mut [u8], offset: u64) -> Result<usize> {
        let off = (offset.min(self.data.len() as u64)) as usize;
        let n = out.len().min(self.data.len() - off);
        out[..n].copy_from_slice(&self.data[off..off + n]);
        Ok(n)
    }
}

#[derive(Debug)]
struct MemLock(Arc<Mutex<State>>);

impl WriteLockGuard for MemLock {}

impl Drop for MemLock {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).locked = false;
    }
}

impl ObjectStore for MemObjects {
    /// The in-memory store keeps its temporary files in memory too.
    fn create_temp(
        &self,
        _purpose: crate::objects::TempPurpose,
    ) -> Result<Box<dyn crate::objects::TempObject>> {
        Ok(Box::new(crate::objects::MemTemp::default()))
    }
    fn account_id(&self) -> u32 {
        self.account
    }
    fn block_size(&self) -> u64 {
        self.block_size
    }
    fn usage_in_blocks(&self, size: u64) -> u64 {
        size.div_ceil(self.block_size)
    }
    fn create_object(&self, id: ObjectId, replace: bool) -> Result<Box<dyn ObjectWrite>> {
        if id <= 0 {
            return Err(Error::Invalid {
                op: "create object",
                detail: format!("object ID {id} is not positive"),
            });
        }
        if !replace && self.state().objects.contains_key(&id) {
            return Err(Error::Invalid {
                op: "create object",
                detail: format!("object {id:#x} exists"),
            });
        }
        Ok(Box::new(MemWrite {
            store: self.clone(),
            id,
            buf: Some(Vec::new()),
        }))
    }
    fn open_object(&self, id: ObjectId) -> Result<Box<dyn ObjectRead>> {
        let data = self
            .state()
            .objects
            .get(&id)
            .cloned()
            .ok_or(Error::DoesNotExist {
                op: "open object",
                id,
            })?;
        Ok(Box::new(MemRead { data, pos: 0 }))
    }
    fn object_exists(&self, id: ObjectId) -> Result<bool> {
        Ok(self.state().objects.contains_key(&id))
    }
    fn delete_object(&self, id: ObjectId) -> Result<()> {
        self.state()
            .objects
            .remove(&id)
            .map(|_| ())
            .ok_or(Error::DoesNotExist {
                op: "delete object",
                id,
            })
    }
    fn read_named(&self, file: NamedFile) -> Result<Option<Vec<u8>>> {
        Ok(self.state().named.get(&file).cloned())
    }
    fn write_named(&self, file: NamedFile, data: &[u8]) -> Result<()> {
        self.state().named.insert(file, data.to_vec());
        Ok(())
    }
    fn sync_named(&self, _file: NamedFile) -> Result<()> {
        Ok(())
    }
    fn patch_named(&self, file: NamedFile, offset: u64, data: &[u8]) -> Result<()> {
        let mut s = self.state();
        let f = s.named.get_mut(&file).ok_or(Error::Invalid {
            op: "patch named file",
            detail: format!("{} does not exist", file.file_name()),
        })?;
        let end = offset as usize + data.len();
        if f.len() < end {
            f.resize(end, 0);
        }
        f[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
    fn replace_named(&self, from: NamedFile, to: NamedFile) -> Result<()> {
        let mut s = self.state();
        let v = s.named.remove(&from).ok_or(Error::Invalid {
            op: "replace named file",
            detail: format!("{} does not exist", from.file_name()),
        })?;
        s.named.insert(to, v);
        Ok(())
    }
    fn delete_named(&self, file: NamedFile) -> Result<bool> {
        Ok(self.state().named.remove(&file).is_some())
    }
    fn walk(&self, visit: &mut dyn FnMut(WalkItem) -> Result<()>) -> Result<()> {
        let (ids, named): (Vec<ObjectId>, Vec<NamedFile>) = {
            let s = self.state();
            (
                s.objects.keys().copied().collect(),
                s.named.keys().copied().collect(),
            )
        };
        for n in named {
            visit(WalkItem::Named(n))?;
        }
        for id in ids {
            visit(WalkItem::Object(id))?;
        }
        Ok(())
    }
    fn lock_for_writing(&self) -> Result<Box<dyn WriteLockGuard>> {
        let mut s = self.state();
        if s.locked {
            return Err(Error::CannotLockStoreForWriting {
                account: self.account,
            });
        }
        s.locked = true;
        Ok(Box::new(MemLock(self.state.clone())))
    }
    fn account_exists(&self) -> Result<bool> {
        Ok(self.state().exists)
    }
    fn create_account_storage(&self) -> Result<()> {
        let mut s = self.state();
        if s.exists {
            return Err(Error::AccountExists {
                account: self.account,
                detail: "in memory".into(),
            });
        }
        s.exists = true;
        Ok(())
    }
    fn destroy_account_storage(&self) -> Result<()> {
        let mut s = self.state();
        s.exists = false;
        s.objects.clear();
        s.named.clear();
        Ok(())
    }
}
