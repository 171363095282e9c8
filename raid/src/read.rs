//! Reading a RaidFile, complete or degraded (store.md §6.6).
//!
//! Owns: `RaidRead`: the open rules (a `.rfw` first; otherwise the components), the
//! choice between normal mode (both stripes) and recovery mode (one stripe and the
//! parity), and the switch to recovery mode when a stripe fails mid-read.
//!
//! Unlike 0.13, which trusts `size(stripe1) + size(stripe2)` whenever both stripes
//! exist, the reader cross-checks the three components' lengths and the size record
//! in the parity file before trusting them, so a truncated component is found and
//! read around instead of silently shortening the file. The rule: the lengths must be
//! exactly those `Layout::of(S)` gives for the size `S` they imply, and where the
//! parity file records `S` (appended or XORed in), the record must agree. When all
//! three exist but disagree, each "one component is bad" hypothesis is tried and the
//! one that is consistent wins; if the record contradicts the stripes, the record
//! wins (a truncated stripe can leave two stripes that are consistent with each
//! other, but never with the size written into the parity).
//!
//! Must not know: what the bytes mean. A degraded file is reported to the disc set's
//! repair queue; the reader itself never rewrites components.

use std::io::{self, IoSliceMut, Read, Seek, SeekFrom};

use tracing::{error, warn};

use crate::discset::{Component, DiscSet, check_name};
use crate::error::{Error, Result};
use crate::fault::EIO;
use crate::fs::{FsFile, OpenMode, read_full_at};
use crate::layout::{Layout, SizeRecord, Survivor, recover_size, stripe_position, xor_into};

/// What is wrong with the component a degraded read works around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The file is not there.
    Missing,
    /// It is there but its length or the size record disagrees with the others
    /// (e.g. truncated).
    Inconsistent,
    /// Opening or reading it failed (EIO and the like).
    Unreadable,
}

/// A degraded file: which component is lost and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Degraded {
    pub component: Component,
    pub damage: Damage,
}

/// How the file is stored, as found when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// A `.rfw` write file (non-RAID set, or not transformed yet).
    WriteFile,
    /// RAID components.
    Raid,
}

#[derive(Debug)]
enum Mode {
    Plain(Box<dyn FsFile>),
    Striped {
        stripes: [Box<dyn FsFile>; 2],
        parity: Option<Box<dyn FsFile>>,
    },
    Recovery {
        survivor: Box<dyn FsFile>,
        /// 0 = stripe 1 lost, 1 = stripe 2 lost.
        lost: usize,
        parity: Box<dyn FsFile>,
        cache: Cache,
    },
    Closed,
}

#[derive(Debug, Default)]
struct Cache {
    first_pair: u64,
    data: Vec<u8>,
    scratch_s: Vec<u8>,
    scratch_p: Vec<u8>,
}

/// Pairs decoded per step in recovery mode.
const RECOVERY_CHUNK: u64 = 2 << 20;
/// Blocks per stripe and system call in normal mode (IOV_MAX is 1024).
const MAX_IOVECS: usize = 512;

/// An open RaidFile.
#[derive(Debug)]
pub struct RaidRead {
    discs: DiscSet,
    name: String,
    size: u64,
    pos: u64,
    layout: Layout,
    mode: Mode,
    repr: Representation,
    degraded: Option<Degraded>,
}

struct Found {
    file: Box<dyn FsFile>,
    len: u64,
}

enum Slot {
    Ok(Found),
    Missing,
    Unreadable,
    /// Present, but rejected by the consistency check.
    Inconsistent,
}

impl Slot {
    fn get(&self) -> Option<&Found> {
        match self {
            Slot::Ok(f) => Some(f),
            _ => None,
        }
    }
    fn damage(&self) -> Damage {
        match self {
            Slot::Missing => Damage::Missing,
            Slot::Unreadable => Damage::Unreadable,
            _ => Damage::Inconsistent,
        }
    }
}

fn is_eio(e: &io::Error) -> bool {
    e.raw_os_error() == Some(EIO)
}

/// The last 8 bytes of a component (fewer bytes are zero-extended on the left; only
/// consulted where the layout guarantees 8).
fn tail8(f: &Found) -> io::Result<[u8; 8]> {
    let mut t = [0u8; 8];
    let n = f.len.min(8) as usize;
    let got = read_full_at(&*f.file, &mut t[8 - n..], f.len - n as u64)?;
    if got != n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "component shrank",
        ));
    }
    Ok(t)
}

/// Where a hypothesis's consistency check failed to read.
enum Check {
    Yes(u64),
    No,
    ReadFailed(usize, io::Error),
}

impl RaidRead {
    /// Opens `name` for reading. A `.rfw` write file always wins over components: it
    /// is the newest content (components are only made from it, and it is removed only
    /// once they are durable).
    pub fn open(discs: &DiscSet, name: &str) -> Result<RaidRead> {
        check_name(name)?;
        // A transform may remove the `.rfw` between our looking for it and opening the
        // components it produced: look again.
        for _ in 0..4 {
            if let Some(r) = Self::try_open(discs, name)? {
                return Ok(r);
            }
        }
        Err(Error::NotFound { name: name.into() })
    }

    fn new(discs: &DiscSet, name: &str, size: u64, mode: Mode, repr: Representation) -> RaidRead {
        RaidRead {
            discs: discs.clone(),
            name: name.into(),
            size,
            pos: 0,
            layout: Layout::of(size, discs.block_size()),
            mode,
            repr,
            degraded: None,
        }
    }

    fn try_open(discs: &DiscSet, name: &str) -> Result<Option<RaidRead>> {
        let fs = discs.fs().clone();
        let wpath = discs.write_path(name);
        match fs.open(&wpath, OpenMode::Read) {
            Ok(f) => {
                let len = f.stat().map_err(|e| Error::io("stat", &wpath, e))?.len;
                return Ok(Some(Self::new(
                    discs,
                    name,
                    len,
                    Mode::Plain(f),
                    Representation::WriteFile,
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // A dead start disc: whether a write file is there cannot be known. The
            // components on the other discs are the best copy left (they are the same
            // content unless a newer write file was lost with the disc), so read them
            // rather than fail every file whose start disc died.
            Err(e) if discs.is_raid() && is_eio(&e) => {
                error!(set = discs.number(), name, error = %e,
                    "write file unreadable; reading the RAID components instead");
            }
            Err(e) => return Err(Error::io("open", &wpath, e)),
        }
        if !discs.is_raid() {
            return Err(Error::NotFound { name: name.into() });
        }
        let mut slots: Vec<Slot> = Vec::with_capacity(3);
        for c in Component::ALL {
            let p = discs.component_path(name, c);
            let slot = match fs.open(&p, OpenMode::Read) {
                Ok(file) => match file.stat() {
                    Ok(m) => Slot::Ok(Found { file, len: m.len }),
                    Err(e) => {
                        Self::note_unreadable(discs, name, c, &e);
                        Slot::Unreadable
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => Slot::Missing,
                Err(e) => {
                    Self::note_unreadable(discs, name, c, &e);
                    Slot::Unreadable
                }
            };
            slots.push(slot);
        }
        if slots.iter().all(|s| matches!(s, Slot::Missing)) {
            return match fs.stat(&wpath) {
                Ok(_) => Ok(None),
                Err(_) => Err(Error::NotFound { name: name.into() }),
            };
        }
        let Ok([s1, s2, p]) = <[Slot; 3]>::try_from(slots) else {
            return Err(Error::Invalid {
                name: name.into(),
                detail: "internal: three slots".into(),
            });
        };
        let r = Self::decide(discs, name, [s1, s2, p])?;
        if let Some(d) = r.degraded {
            warn!(set = discs.number(), name, component = ?d.component, damage = ?d.damage,
                "reading degraded RaidFile");
            discs.repair_queue().push(name);
        }
        Ok(Some(r))
    }

    /// EIO on a component: 0.13 moves it to `.raidfile-unreadable/` so nothing trips
    /// over it again; recovery rebuilds it later.
    fn note_unreadable(discs: &DiscSet, name: &str, c: Component, e: &io::Error) {
        error!(set = discs.number(), name, component = ?c, error = %e, "RaidFile component unreadable");
        if is_eio(e) {
            let fs = discs.fs();
            let from = discs.component_path(name, c);
            let to = discs.unreadable_path(name, c);
            if let Some(dir) = to.parent() {
                let _ = fs.create_dir(dir);
            }
            let _ = fs.rename(&from, &to);
        }
    }

    fn check_h0(block: u64, s1: &Found, s2: &Found, p: &Found) -> Check {
        let size = s1.len + s2.len;
        let l = Layout::of(size, block);
        if (l.stripe1, l.stripe2, l.parity) != (s1.len, s2.len, p.len) {
            return Check::No;
        }
        Self::check_record(&l, s1, p, 0)
    }

    /// Checks the size record of `l` in `p` (with stripe 1 `s1` for the XORed case).
    /// `s1_slot` names the slot of `s1` for error reporting.
    fn check_record(l: &Layout, s1: &Found, p: &Found, s1_slot: usize) -> Check {
        let pt = match tail8(p) {
            Ok(t) => t,
            Err(e) => return Check::ReadFailed(2, e),
        };
        let rec = match l.record {
            SizeRecord::None => return Check::Yes(l.size),
            SizeRecord::Appended => pt,
            SizeRecord::XoredIn => match tail8(s1) {
                Ok(t) => {
                    let mut x = pt;
                    xor_into(&mut x, &t);
                    x
                }
                Err(e) => return Check::ReadFailed(s1_slot, e),
            },
        };
        if u64::from_be_bytes(rec) == l.size {
            Check::Yes(l.size)
        } else {
            Check::No
        }
    }

    /// Stripe `lost` (0 or 1) gone: the size from the other stripe and the parity.
    fn check_lost_stripe(block: u64, lost: usize, survivor: &Found, p: &Found) -> Check {
        let pt = match tail8(p) {
            Ok(t) => t,
            Err(e) => return Check::ReadFailed(2, e),
        };
        let surv = if lost == 1 {
            let t = if survivor.len % block == 0 && survivor.len >= 8 {
                match tail8(survivor) {
                    Ok(t) => t,
                    Err(e) => return Check::ReadFailed(0, e),
                }
            } else {
                [0; 8]
            };
            Survivor::Stripe1 {
                len: survivor.len,
                tail: t,
            }
        } else {
            Survivor::Stripe2 { len: survivor.len }
        };
        let Some(size) = recover_size(block, p.len, pt, surv) else {
            return Check::No;
        };
        let l = Layout::of(size, block);
        let want = if lost == 1 { l.stripe1 } else { l.stripe2 };
        if want != survivor.len || l.parity != p.len {
            return Check::No;
        }
        // With stripe 1 present and the size appended, the record was what gave us the
        // size; the lengths just agreed with it. Nothing more to check.
        Check::Yes(size)
    }

    fn decide(discs: &DiscSet, name: &str, mut slots: [Slot; 3]) -> Result<RaidRead> {
        let b = discs.block_size();
        let damaged = |detail: &str| Error::Damaged {
            name: name.into(),
            detail: detail.into(),
        };
        // A failed tail read marks that slot unreadable and starts over; at most
        // three slots can fail.
        'again: for _ in 0..4 {
            match (&slots[0], &slots[1], &slots[2]) {
                (Slot::Ok(s1), Slot::Ok(s2), Slot::Ok(p)) => {
                    match Self::check_h0(b, s1, s2, p) {
                        Check::Yes(size) => {
                            return Ok(Self::striped(discs, name, size, slots, None));
                        }
                        Check::ReadFailed(i, e) => {
                            Self::note_unreadable(discs, name, Component::ALL[i], &e);
                            slots[i] = Slot::Unreadable;
                            continue 'again;
                        }
                        Check::No => {}
                    }
                    // Which one component, if dropped, leaves a consistent pair?
                    let s3 = s1.len + s2.len;
                    let l3 = Layout::of(s3, b);
                    let stripes_agree = (l3.stripe1, l3.stripe2) == (s1.len, s2.len);
                    let only_record_disagrees = stripes_agree && l3.parity == p.len;
                    let mut h = [None, None];
                    let mut failed = None;
                    for (lost, survivor) in [(0, s2), (1, s1)] {
                        match Self::check_lost_stripe(b, lost, survivor, p) {
                            Check::Yes(size) => h[lost] = Some(size),
                            Check::No => {}
                            Check::ReadFailed(i, e) => {
                                failed = Some((if i == 0 { 1 - lost } else { i }, e));
                                break;
                            }
                        }
                    }
                    if let Some((i, e)) = failed {
                        Self::note_unreadable(discs, name, Component::ALL[i], &e);
                        slots[i] = Slot::Unreadable;
                        continue 'again;
                    }
                    // Every hypothesis whose lengths (and record) hold: (slot lost, size).
                    let mut cands: Vec<(usize, u64)> = Vec::new();
                    for (lost, size) in h.iter().enumerate() {
                        if let Some(size) = size {
                            cands.push((lost, *size));
                        }
                    }
                    if stripes_agree {
                        cands.push((2, s3));
                    }
                    if cands.len() > 1 {
                        // Lengths alone can fit two stories (e.g. a 1-byte file with
                        // stripe 1 cut to nothing, or an empty file with its parity cut
                        // to 1 byte). The suspect's remaining bytes decide: a truncated
                        // component is a prefix of what the others say it should be.
                        // The story that explains the most surviving bytes wins; with
                        // no evidence either way, the size record outranks the stripes
                        // when it contradicts them, and the stripes win otherwise.
                        let mut scored = Vec::new();
                        for &(lost, size) in &cands {
                            let suspect = [s1, s2, p][lost];
                            if let Some(n) =
                                Self::suspect_is_prefix(discs, name, lost, size, suspect)?
                            {
                                let prefer = if lost == 2 {
                                    !only_record_disagrees
                                } else {
                                    only_record_disagrees
                                };
                                scored.push((n, prefer, lost, size));
                            }
                        }
                        scored.sort_by_key(|s| std::cmp::Reverse((s.0, s.1)));
                        if let [top, second, ..] = scored.as_slice() {
                            if (top.0, top.1) == (second.0, second.1) {
                                return Err(damaged(
                                    "two different components could be the damaged one",
                                ));
                            }
                        }
                        cands = scored
                            .iter()
                            .map(|&(_, _, lost, size)| (lost, size))
                            .collect();
                    }
                    let Some(&(lost, size)) = cands.first() else {
                        return Err(damaged("the three components disagree about the size"));
                    };
                    slots[lost] = Slot::Inconsistent;
                    if lost == 2 {
                        let d = Degraded {
                            component: Component::Parity,
                            damage: Damage::Inconsistent,
                        };
                        return Ok(Self::striped(discs, name, size, slots, Some(d)));
                    }
                    return Ok(Self::recovery(discs, name, size, lost, slots));
                }
                (Slot::Ok(s1), Slot::Ok(s2), lost_parity) => {
                    let size = s1.len + s2.len;
                    let l = Layout::of(size, b);
                    if (l.stripe1, l.stripe2) != (s1.len, s2.len) {
                        return Err(damaged("parity lost and the stripes' lengths disagree"));
                    }
                    let d = Degraded {
                        component: Component::Parity,
                        damage: lost_parity.damage(),
                    };
                    return Ok(Self::striped(discs, name, size, slots, Some(d)));
                }
                (Slot::Ok(survivor), _, Slot::Ok(p)) | (_, Slot::Ok(survivor), Slot::Ok(p)) => {
                    let lost = if slots[0].get().is_some() { 1 } else { 0 };
                    match Self::check_lost_stripe(b, lost, survivor, p) {
                        Check::Yes(size) => {
                            return Ok(Self::recovery(discs, name, size, lost, slots));
                        }
                        Check::No => {
                            return Err(damaged(
                                "one stripe lost and the other disagrees with the parity",
                            ));
                        }
                        Check::ReadFailed(i, e) => {
                            let i = if i == 0 { 1 - lost } else { i };
                            Self::note_unreadable(discs, name, Component::ALL[i], &e);
                            slots[i] = Slot::Unreadable;
                            continue 'again;
                        }
                    }
                }
                _ => return Err(damaged("fewer than two components are usable")),
            }
        }
        Err(damaged("components kept failing"))
    }

    /// Under the hypothesis "slot `lost` is damaged and the file is `size` bytes",
    /// is what remains of that component (its last two blocks or so) equal to what the
    /// other two components say it should hold? A truncated component passes; a
    /// wrong hypothesis almost never does.
    /// `Some(bytes checked)` when it passes, `None` when it does not.
    fn suspect_is_prefix(
        discs: &DiscSet,
        name: &str,
        lost: usize,
        size: u64,
        suspect: &Found,
    ) -> Result<Option<u64>> {
        let b = discs.block_size();
        let layout = Layout::of(size, b);
        let want_len = [layout.stripe1, layout.stripe2, layout.parity][lost];
        let end = suspect.len.min(want_len);
        if end == 0 {
            return Ok((suspect.len <= want_len).then_some(0));
        }
        let start = end.saturating_sub(2 * b);
        let mut have = vec![0u8; (end - start) as usize];
        if read_full_at(&*suspect.file, &mut have, start).ok() != Some(have.len()) {
            return Ok(None);
        }
        // A reader that trusts only the other two components.
        let fs = discs.fs();
        let mut reopened: Vec<Slot> = Vec::new();
        for (i, c) in Component::ALL.into_iter().enumerate() {
            if i == lost {
                reopened.push(Slot::Inconsistent);
                continue;
            }
            let path = discs.component_path(name, c);
            let file = fs
                .open(&path, OpenMode::Read)
                .map_err(|e| Error::io("open", &path, e))?;
            let len = file.stat().map_err(|e| Error::io("stat", &path, e))?.len;
            reopened.push(Slot::Ok(Found { file, len }));
        }
        let Ok(slots) = <[Slot; 3]>::try_from(reopened) else {
            return Ok(None);
        };
        let mut r = if lost == 2 {
            Self::striped(discs, name, size, slots, None)
        } else {
            Self::recovery(discs, name, size, lost, slots)
        };
        let want = match r.component_bytes(Component::ALL[lost], start, end) {
            Ok(w) => w,
            Err(_) => return Ok(None),
        };
        Ok((want == have && suspect.len <= want_len).then_some(have.len() as u64))
    }

    /// Bytes `start..end` of component `c` as the file's content says they must be.
    fn component_bytes(&mut self, c: Component, start: u64, end: u64) -> Result<Vec<u8>> {
        let b = self.discs.block_size();
        let layout = self.layout;
        let size = self.size;
        let mut out = Vec::with_capacity((end - start) as usize);
        let mut pairbuf = vec![0u8; 2 * b as usize];
        let mut o = start;
        while o < end {
            let k = o / b;
            let within = o % b;
            let take = (b - within).min(end - o);
            match c {
                Component::Stripe1 | Component::Stripe2 => {
                    let extra = if c == Component::Stripe2 { b } else { 0 };
                    let fo = k * 2 * b + extra + within;
                    let mut v = vec![0u8; take as usize];
                    let n = self.read_at(&mut v, fo)?;
                    v.truncate(n);
                    out.extend_from_slice(&v);
                    if (n as u64) < take {
                        break;
                    }
                }
                Component::Parity => {
                    if layout.record == SizeRecord::Appended && o >= layout.parity - 8 {
                        let rec = size.to_be_bytes();
                        let from = (o - (layout.parity - 8)) as usize;
                        let to = (from + (end - o) as usize).min(8);
                        out.extend_from_slice(&rec[from..to]);
                        break;
                    }
                    pairbuf.fill(0);
                    let n = self.read_at(&mut pairbuf, k * 2 * b)?;
                    let _ = n;
                    let (first, second) = pairbuf.split_at_mut(b as usize);
                    xor_into(first, second);
                    if layout.pair_has_xored_size(k) {
                        xor_into(&mut first[b as usize - 8..], &size.to_be_bytes());
                    }
                    let stop = (within + take).min(b) as usize;
                    out.extend_from_slice(&first[within as usize..stop]);
                }
            }
            o += take;
        }
        Ok(out)
    }

    fn striped(
        discs: &DiscSet,
        name: &str,
        size: u64,
        slots: [Slot; 3],
        degraded: Option<Degraded>,
    ) -> RaidRead {
        let [s1, s2, p] = slots;
        let (Slot::Ok(s1), Slot::Ok(s2)) = (s1, s2) else {
            unreachable!("striped mode is chosen only with both stripes")
        };
        let parity = match p {
            Slot::Ok(p) => Some(p.file),
            _ => None,
        };
        let mut r = Self::new(
            discs,
            name,
            size,
            Mode::Striped {
                stripes: [s1.file, s2.file],
                parity,
            },
            Representation::Raid,
        );
        r.degraded = degraded;
        r
    }

    fn recovery(discs: &DiscSet, name: &str, size: u64, lost: usize, slots: [Slot; 3]) -> RaidRead {
        let damage = slots[lost].damage();
        let [s1, s2, p] = slots;
        let survivor = if lost == 0 { s2 } else { s1 };
        let (Slot::Ok(survivor), Slot::Ok(p)) = (survivor, p) else {
            unreachable!("recovery mode is chosen only with a stripe and the parity")
        };
        let mut r = Self::new(
            discs,
            name,
            size,
            Mode::Recovery {
                survivor: survivor.file,
                lost,
                parity: p.file,
                cache: Cache::default(),
            },
            Representation::Raid,
        );
        r.degraded = Some(Degraded {
            component: Component::ALL[lost],
            damage,
        });
        r
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Some` when the file is being read around a lost or damaged component.
    pub fn degraded(&self) -> Option<Degraded> {
        self.degraded
    }

    pub fn is_degraded(&self) -> bool {
        self.degraded.is_some()
    }

    pub fn representation(&self) -> Representation {
        self.repr
    }

    /// Disc usage in blocks of this file on its set.
    pub fn disc_usage_in_blocks(&self) -> u64 {
        self.discs.disc_usage_in_blocks(self.size)
    }

    /// Reads at `offset` until `buf` is full or the file ends; returns the bytes read.
    pub fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let o = offset + done as u64;
            if o >= self.size {
                break;
            }
            let n = self.read_some(&mut buf[done..], o)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    /// The whole file.
    pub fn read_all(&mut self) -> Result<Vec<u8>> {
        let len = usize::try_from(self.size).map_err(|_| Error::Invalid {
            name: self.name.clone(),
            detail: "file too large for memory".into(),
        })?;
        let mut v = vec![0u8; len];
        let n = self.read_at(&mut v, 0)?;
        v.truncate(n);
        Ok(v)
    }

    fn read_some(&mut self, buf: &mut [u8], off: u64) -> Result<usize> {
        let n = (buf.len() as u64).min(self.size - off) as usize;
        let buf = &mut buf[..n];
        match &self.mode {
            Mode::Plain(_) => self.read_plain(buf, off),
            Mode::Striped { .. } => self.read_striped(buf, off),
            Mode::Recovery { .. } => self.read_recovery(buf, off),
            Mode::Closed => Err(Error::Invalid {
                name: self.name.clone(),
                detail: "closed after an error".into(),
            }),
        }
    }

    fn read_plain(&mut self, buf: &mut [u8], off: u64) -> Result<usize> {
        let Mode::Plain(f) = &self.mode else {
            unreachable!()
        };
        let n = read_full_at(&**f, buf, off)
            .map_err(|e| Error::io("read", self.discs.write_path(&self.name), e))?;
        if n < buf.len() {
            // A committed write file is never rewritten in place; if it shrank, say so
            // rather than return a short file.
            return Err(Error::Damaged {
                name: self.name.clone(),
                detail: format!(
                    "write file shorter than when opened ({} bytes)",
                    off + n as u64
                ),
            });
        }
        Ok(n)
    }

    fn read_striped(&mut self, buf: &mut [u8], off: u64) -> Result<usize> {
        let b = self.discs.block_size();
        // Never more blocks than one preadv per stripe can take.
        let limit = (MAX_IOVECS as u64 * 2 - 1) * b;
        let n = (buf.len() as u64).min(limit) as usize;
        let failure = {
            let Mode::Striped { stripes, .. } = &self.mode else {
                unreachable!()
            };
            let mut vecs: [Vec<IoSliceMut<'_>>; 2] = [Vec::new(), Vec::new()];
            let mut start = [0u64; 2];
            let mut want = [0usize; 2];
            let mut rest = &mut buf[..n];
            let mut o = off;
            while !rest.is_empty() {
                let take = ((b - o % b) as usize).min(rest.len());
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(take);
                let (st, so) = stripe_position(o, b);
                if vecs[st].is_empty() {
                    start[st] = so;
                }
                vecs[st].push(IoSliceMut::new(head));
                want[st] += take;
                o += take as u64;
                rest = tail;
            }
            let mut failure = None;
            for st in 0..2 {
                if want[st] == 0 {
                    continue;
                }
                match stripes[st].read_vectored_at(&mut vecs[st], start[st]) {
                    Ok(got) if got == want[st] => {}
                    Ok(_) => {
                        failure = Some((
                            st,
                            io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "stripe shorter than expected",
                            ),
                        ));
                        break;
                    }
                    Err(e) => {
                        failure = Some((st, e));
                        break;
                    }
                }
            }
            failure
        };
        match failure {
            None => Ok(n),
            Some((st, e)) => {
                self.switch_to_recovery(st, e)?;
                self.read_recovery(&mut buf[..n], off)
            }
        }
    }

    /// A stripe failed in normal mode: carry on from the other stripe and the parity.
    fn switch_to_recovery(&mut self, st: usize, e: io::Error) -> Result<()> {
        let c = Component::ALL[st];
        Self::note_unreadable(&self.discs, &self.name, c, &e);
        let mode = std::mem::replace(&mut self.mode, Mode::Closed);
        let Mode::Striped { stripes, parity } = mode else {
            unreachable!()
        };
        let Some(parity) = parity else {
            return Err(Error::Damaged {
                name: self.name.clone(),
                detail: format!("{c:?} failed ({e}) and the parity is missing"),
            });
        };
        let [s1, s2] = stripes;
        let survivor = if st == 0 { s2 } else { s1 };
        self.mode = Mode::Recovery {
            survivor,
            lost: st,
            parity,
            cache: Cache::default(),
        };
        let damage = if e.kind() == io::ErrorKind::UnexpectedEof {
            Damage::Inconsistent
        } else {
            Damage::Unreadable
        };
        self.degraded = Some(Degraded {
            component: c,
            damage,
        });
        warn!(set = self.discs.number(), name = %self.name, component = ?c, "switched to recovery mode");
        self.discs.repair_queue().push(&self.name);
        Ok(())
    }

    fn read_recovery(&mut self, buf: &mut [u8], off: u64) -> Result<usize> {
        let b = self.discs.block_size();
        let pair = 2 * b;
        let chunk_pairs = (RECOVERY_CHUNK / pair).max(1);
        let mut done = 0usize;
        while done < buf.len() {
            let o = off + done as u64;
            let p = o / pair;
            let left = (buf.len() - done) as u64;
            // Whole pairs (or the rest of the file) requested: decode straight into
            // the caller's buffer, no staging copy.
            let whole = if o + left >= self.size {
                left.div_ceil(pair)
            } else {
                left / pair
            };
            if o % pair == 0 && whole > 0 {
                let n = whole.min(chunk_pairs).min(self.layout.pairs - p);
                done += self.decode_pairs(p, n, Target::Caller(&mut buf[done..]))?;
                continue;
            }
            let covered = {
                let Mode::Recovery { cache, .. } = &self.mode else {
                    unreachable!()
                };
                let first = cache.first_pair * pair;
                !cache.data.is_empty() && o >= first && o < first + cache.data.len() as u64
            };
            if !covered {
                let n = chunk_pairs.min(self.layout.pairs - p);
                self.decode_pairs(p, n, Target::Cache)?;
            }
            let Mode::Recovery { cache, .. } = &self.mode else {
                unreachable!()
            };
            let within = (o - cache.first_pair * pair) as usize;
            let take = (cache.data.len() - within).min(buf.len() - done);
            buf[done..done + take].copy_from_slice(&cache.data[within..within + take]);
            done += take;
        }
        Ok(done)
    }

    /// Rebuilds the file bytes of `npairs` pairs starting at pair `first` from the
    /// surviving stripe and the parity, into the cache or the caller's buffer (which
    /// must hold them). Returns the number of file bytes produced.
    fn decode_pairs(&mut self, first: u64, npairs: u64, target: Target<'_>) -> Result<usize> {
        let b = self.discs.block_size();
        let bu = b as usize;
        let pair = 2 * b;
        let layout = self.layout;
        let size = self.size;
        let name = self.name.clone();
        let Mode::Recovery {
            survivor,
            lost,
            parity,
            cache,
        } = &mut self.mode
        else {
            unreachable!()
        };
        let span = (npairs * b) as usize;
        cache.scratch_s.resize(span, 0);
        cache.scratch_p.resize(span, 0);
        let at = first * b;
        let damaged = |what: &str, e: io::Error| Error::Damaged {
            name: name.clone(),
            detail: format!("{what} failed while reading in recovery mode: {e}"),
        };
        let gs = read_full_at(&**survivor, &mut cache.scratch_s, at)
            .map_err(|e| damaged("surviving stripe", e))?;
        let gp =
            read_full_at(&**parity, &mut cache.scratch_p, at).map_err(|e| damaged("parity", e))?;
        // Components end early only in the last pair; anything shorter than the
        // layout says is damage.
        let surv_len = if *lost == 0 {
            layout.stripe2
        } else {
            layout.stripe1
        };
        let want_s = surv_len.saturating_sub(at).min(span as u64) as usize;
        let want_p = layout.parity.saturating_sub(at).min(span as u64) as usize;
        if gs != want_s || gp != want_p {
            return Err(damaged(
                "a component",
                io::Error::new(io::ErrorKind::UnexpectedEof, "shorter than the size says"),
            ));
        }
        cache.scratch_s[gs..].fill(0);
        cache.scratch_p[gp..].fill(0);
        let bytes = ((npairs * pair).min(size - first * pair)) as usize;
        let mut staged = Vec::new();
        let out: &mut [u8] = match target {
            Target::Caller(out) => &mut out[..bytes],
            Target::Cache => {
                staged = std::mem::take(&mut cache.data);
                staged.resize(bytes, 0);
                cache.first_pair = first;
                &mut staged
            }
        };
        // The lost stripe's blocks: parity XOR survivor (with the XORed-in size undone
        // in the last pair).
        if layout.pair_has_xored_size(first + npairs - 1) {
            let last = (npairs as usize - 1) * bu;
            xor_into(
                &mut cache.scratch_p[last + bu - 8..last + bu],
                &size.to_be_bytes(),
            );
        }
        xor_into(&mut cache.scratch_p, &cache.scratch_s);
        for k in 0..npairs as usize {
            let pblk = &cache.scratch_p[k * bu..(k + 1) * bu];
            let sblk = &cache.scratch_s[k * bu..(k + 1) * bu];
            let (first_blk, second_blk) = if *lost == 0 {
                (pblk, sblk)
            } else {
                (sblk, pblk)
            };
            let base = k * 2 * bu;
            let end = (base + 2 * bu).min(bytes);
            let a = (end - base).min(bu);
            out[base..base + a].copy_from_slice(&first_blk[..a]);
            if end > base + bu {
                out[base + bu..end].copy_from_slice(&second_blk[..end - base - bu]);
            }
        }
        if !staged.is_empty() || bytes == 0 {
            cache.data = staged;
        }
        Ok(bytes)
    }
}

/// Where `decode_pairs` puts the bytes.
enum Target<'a> {
    Cache,
    Caller(&'a mut [u8]),
}

impl Read for RaidRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size {
            return Ok(0);
        }
        let n = self.read_some(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RaidRead {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let to = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
        };
        self.pos =
            to.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before start"))?;
        Ok(self.pos)
    }
}
