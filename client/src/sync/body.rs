//! The one place where the body of a StoreFile is made from a local file: the
//! engine calls [`file_body`] and streams what it returns, so a faster encoder
//! (the parallel one in `upload.rs`) replaces this function and nothing else.
//!
//! Owns: the streaming encoder choice, rate limiting and the byte count of an
//! upload. Must not know: the protocol or the decisions of the engine.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bb_format::Keys;
use bb_format::encode::{FileEncoder, FileMeta};
use bb_format::recipe::{Instruction, Recipe};

use crate::upload::{DEFAULT_BATCH_BYTES, EncoderOptions, ParallelEncoder, Source};

/// The encoded file (file order) for `recipe` over `file` (read from its
/// current position, which must be offset 0), streamed: a few blocks are held
/// at a time, never the whole file. A file that turns out shorter than the
/// recipe makes the stream fail (the upload is then abandoned and the store
/// keeps nothing); a longer one is cut at the recipe's end.
///
/// More than one piece of new data ([`DEFAULT_BATCH_BYTES`]) goes through the
/// [`ParallelEncoder`], which compresses and encrypts on every core while the
/// connection sends; smaller files are encoded in this thread (a thread costs
/// more than they do). The parallel encoder pads or cuts a file that changed
/// size rather than failing; the engine's size and time check after the upload
/// catches that and uploads the file again next run.
pub fn file_body<'k>(
    keys: &'k Keys,
    file: File,
    meta: FileMeta,
    recipe: Recipe,
) -> bb_format::Result<Box<dyn Read + 'k>> {
    let new_bytes: u64 = recipe
        .instructions
        .iter()
        .map(|i| match i {
            Instruction::New { len, .. } => *len,
            Instruction::Old { .. } => 0,
        })
        .sum();
    if new_bytes <= DEFAULT_BATCH_BYTES {
        return Ok(Box::new(FileEncoder::new(keys, meta, recipe, file)?));
    }
    let enc = ParallelEncoder::new(
        Arc::new(keys.clone()),
        meta,
        recipe,
        Arc::new(OpenFile(file)),
        EncoderOptions::default(),
    )?;
    Ok(Box::new(enc))
}

/// The engine's open descriptor as the parallel encoder's source: positional
/// reads, whatever the file position.
struct OpenFile(File);

impl Source for OpenFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.0, buf, offset)
    }
}

/// Counts the bytes read through it and, with a rate, sleeps to keep the
/// average at or below `rate` bytes per second (`MaxUploadRate`).
pub(crate) struct Metered<R> {
    inner: R,
    pub(crate) count: u64,
    rate: Option<u64>,
    start: Instant,
}

impl<R> Metered<R> {
    pub(crate) fn new(inner: R, rate: Option<u64>) -> Metered<R> {
        Metered {
            inner,
            count: 0,
            rate: rate.filter(|&r| r > 0),
            start: Instant::now(),
        }
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(rate) = self.rate {
            let due = Duration::from_secs_f64(self.count as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(self.start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metered_counts_and_limits() {
        let data = vec![7u8; 3000];
        let mut m = Metered::new(&data[..], Some(10_000));
        let t = Instant::now();
        let mut out = Vec::new();
        // Read in small pieces so the limiter gets a say.
        let mut buf = [0u8; 500];
        loop {
            let n = m.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, data);
        assert_eq!(m.count, 3000);
        // 2500 bytes had to be "due" before the last read: >= 0.25 s.
        assert!(
            t.elapsed() >= Duration::from_millis(240),
            "{:?}",
            t.elapsed()
        );
    }
}
