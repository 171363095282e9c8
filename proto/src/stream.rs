//! The two stream encodings (`protocol.md` §2.5): bulk data that follows a
//! command or a reply.
//!
//! ```text
//! stream header (8 bytes)
//!   0  4  u32 BE  StreamSize   N, or 0xFFFFFFFF = size uncertain (chunked)
//!   4  4  u32 BE  0xFFFFFFFF   (the stream "object type")
//! sized:    N data bytes
//! chunked:  { h:u8, len(h) data bytes }*  then  h = 0x00 (end of stream)
//!           h 1..=252 from the closed-form table of chunk_len; 253 = 65536;
//!           254 and 255 are reserved and fatal
//! ```
//!
//! Owns both encodings, the chunk-size table, the sender's chunking and a sans-IO
//! [`StreamDecoder`]. Must not know what the data is (§7 is bb-format's).
//!
//! Which form goes where is the exchange rule of §2.5/§2.6 ([`crate::exchange`]):
//! attribute streams and every reply stream are sized (chunked only beyond
//! 0x7FFFFFFF bytes); uploads may be either. A receiver reads every stream to
//! its end, chunked terminator included, even when it has rejected the payload.

use crate::error::{Error, Result};
use crate::object::{OBJECT_HEADER_LEN, STREAM_OBJECT_TYPE};

/// Length of a stream header.
pub const STREAM_HEADER_LEN: usize = OBJECT_HEADER_LEN;

/// `StreamSize` value meaning "size uncertain": the chunked form follows.
pub const SIZE_UNCERTAIN: u32 = 0xFFFF_FFFF;

/// Largest stream sent in the sized form; 0.13 switches to chunked above it
/// because its sender keeps the size in a signed int.
pub const MAX_SIZED_SEND: u64 = 0x7FFF_FFFF;

/// The chunk header that ends a chunked stream.
pub const END_OF_STREAM: u8 = 0x00;

/// The chunk header for a 64 KiB chunk (`ProtocolStreamHeader_SizeIs64k`).
pub const CHUNK_HEADER_64K: u8 = 253;

/// The largest chunk.
pub const MAX_CHUNK_LEN: usize = 65536;

/// A stream header: which of the two forms follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamHeader {
    /// Exactly this many bytes follow.
    Sized(u32),
    /// Chunks follow, ended by [`END_OF_STREAM`].
    Chunked,
}

impl StreamHeader {
    /// The form 0.13 sends for `len` bytes known up front: sized for
    /// 1..=0x7FFFFFFF bytes, chunked otherwise (including 0, which 0.13's
    /// sender refuses to send sized: nothing goes out as an empty chunked stream).
    pub fn for_len(len: u64) -> StreamHeader {
        if (1..=MAX_SIZED_SEND).contains(&len) {
            StreamHeader::Sized(len as u32)
        } else {
            StreamHeader::Chunked
        }
    }

    /// Appends the 8 header bytes.
    pub fn encode(self, out: &mut Vec<u8>) {
        let size = match self {
            StreamHeader::Sized(n) => n,
            StreamHeader::Chunked => SIZE_UNCERTAIN,
        };
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&STREAM_OBJECT_TYPE.to_be_bytes());
    }

    /// Reads a stream header from the front of `buf`; `Ok(None)` if fewer than 8
    /// bytes are there. An object header in its place is an error (§2.6: 0.13
    /// answers `Error(0,-1)` and closes).
    ///
    /// `Sized(n)` is accepted for every `n` other than 0xFFFFFFFF, including 0,
    /// as 0.13's release build does.
    pub fn decode(buf: &[u8]) -> Result<Option<(StreamHeader, usize)>> {
        let Some(h) = buf.get(..STREAM_HEADER_LEN) else {
            return Ok(None);
        };
        let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let kind = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        if kind != STREAM_OBJECT_TYPE {
            return Err(Error::ObjectWhereStreamExpected { object_type: kind });
        }
        let header = if size == SIZE_UNCERTAIN {
            StreamHeader::Chunked
        } else {
            StreamHeader::Sized(size)
        };
        Ok(Some((header, STREAM_HEADER_LEN)))
    }
}

/// `len(h)` for h = 0..=255 (0 and the reserved 254, 255 hold 0). Built from
/// the closed-form ranges of §2.5, which the spec checked against upstream's
/// `sProtocolStreamHeaderLengths` for every value.
const CHUNK_LENS: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut h = 1u32;
    while h <= 253 {
        t[h as usize] = match h {
            1..=64 => h,
            65..=96 => 64 + 8 * (h - 64),
            97..=112 => 320 + 16 * (h - 96),
            113..=128 => 576 + 32 * (h - 112),
            129..=135 => 1088 + 64 * (h - 128),
            136..=147 => 1536 + 128 * (h - 135),
            148..=159 => 3072 + 256 * (h - 147),
            160..=231 => 6144 + 512 * (h - 159),
            232..=252 => 43008 + 1024 * (h - 231),
            _ => 65536,
        };
        h += 1;
    }
    t
};

/// The data length of a chunk with header `h`, or `None` for the end marker and
/// the reserved 254 and 255.
pub fn chunk_len(h: u8) -> Option<usize> {
    match h {
        1..=CHUNK_HEADER_64K => Some(CHUNK_LENS[h as usize] as usize),
        _ => None,
    }
}

/// The header of the largest chunk that holds no more than `n` bytes (0.13's
/// choice), or `None` for `n = 0`.
pub fn chunk_header_for(n: usize) -> Option<u8> {
    if n == 0 {
        return None;
    }
    // CHUNK_LENS[1..=253] is strictly increasing.
    let table = &CHUNK_LENS[1..=CHUNK_HEADER_64K as usize];
    let below = table.partition_point(|&len| len as usize <= n);
    Some(below as u8)
}

/// Appends a whole sized stream: header and data. For data of 1..=0x7FFFFFFF
/// bytes; for anything else use [`encode_stream`], which falls back to chunked.
pub fn encode_sized(data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let len = data.len() as u64;
    if !(1..=MAX_SIZED_SEND).contains(&len) {
        return Err(Error::UnsendableSize(len));
    }
    StreamHeader::Sized(len as u32).encode(out);
    out.extend_from_slice(data);
    Ok(())
}

/// Appends a whole chunked stream: header, chunks as 0.13 would cut `data` handed
/// over in one piece, and the end marker.
pub fn encode_chunked(data: &[u8], out: &mut Vec<u8>) {
    let mut enc = ChunkedEncoder::begin(out);
    enc.push(data, out);
    enc.finish(out);
}

/// Appends a whole stream in the form 0.13 uses for data of known size:
/// sized unless empty or above 0x7FFFFFFF bytes. This is the form for every
/// reply stream and for attribute streams.
pub fn encode_stream(data: &[u8], out: &mut Vec<u8>) {
    match StreamHeader::for_len(data.len() as u64) {
        StreamHeader::Sized(n) => {
            StreamHeader::Sized(n).encode(out);
            out.extend_from_slice(data);
        }
        StreamHeader::Chunked => encode_chunked(data, out),
    }
}

/// Writes a chunked stream piece by piece, cutting chunks the way 0.13's sender
/// does (§2.5), so a capture of bbackupd can be reproduced byte for byte.
///
/// 0.13 emits one chunk after each read from its source: the largest chunk that
/// the buffered bytes fill, keeping the rest for later; at the end it flushes the
/// rest in descending chunks and writes `0x00`. Each [`push`](Self::push) is one
/// such read. At most 1023 bytes stay buffered between pushes (the step between
/// two table sizes), however large the pushes are.
#[derive(Debug, Default)]
pub struct ChunkedEncoder {
    pending: Vec<u8>,
}

impl ChunkedEncoder {
    /// Writes the chunked stream header and returns the encoder.
    pub fn begin(out: &mut Vec<u8>) -> ChunkedEncoder {
        StreamHeader::Chunked.encode(out);
        ChunkedEncoder::default()
    }

    /// Adds `data` (one read from the source) and writes the chunks it completes.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if data.is_empty() {
            return;
        }
        self.pending.extend_from_slice(data);
        let mut start = 0;
        // Bigger than one buffer: 0.13 would have read in 64 KiB pieces and sent
        // each as one 64 KiB chunk.
        while self.pending.len() - start >= MAX_CHUNK_LEN {
            start += emit_chunk(&self.pending[start..], out);
        }
        if self.pending.len() > start {
            start += emit_chunk(&self.pending[start..], out);
        }
        self.pending.drain(..start);
    }

    /// Writes the buffered rest and the end marker.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        let mut start = 0;
        while self.pending.len() > start {
            start += emit_chunk(&self.pending[start..], out);
        }
        self.pending.clear();
        out.push(END_OF_STREAM);
    }
}

/// Writes the largest chunk that fits in non-empty `data`; returns its length.
fn emit_chunk(data: &[u8], out: &mut Vec<u8>) -> usize {
    let h = chunk_header_for(data.len().min(MAX_CHUNK_LEN)).unwrap_or(1);
    let len = chunk_len(h).unwrap_or(1);
    out.push(h);
    out.extend_from_slice(&data[..len]);
    len
}

/// One step of a [`StreamDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Input bytes consumed (headers included); drop them from the buffer.
    pub used: usize,
    /// Stream data found, a slice of the input (may be empty).
    pub data: &'a [u8],
    /// The stream has ended; the next byte belongs to the next object.
    pub end: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Sized { remaining: u64 },
    ChunkHeader,
    ChunkData { remaining: usize },
    Done,
    Failed,
}

/// Reads one stream of either form from bytes as they arrive, without copying.
///
/// ```
/// # use bb_proto::stream::{encode_chunked, StreamDecoder};
/// let mut wire = Vec::new();
/// encode_chunked(b"hello", &mut wire);
/// wire.extend_from_slice(b"next object");
///
/// let mut dec = StreamDecoder::new().with_limit(1 << 20);
/// let (mut buf, mut got) = (&wire[..], Vec::new());
/// loop {
///     let step = dec.decode(buf)?;
///     got.extend_from_slice(step.data);
///     buf = &buf[step.used..];
///     if step.end { break; }
///     // step.used == 0 && !step.end: read more bytes from the connection.
/// }
/// assert_eq!(got, b"hello");
/// assert_eq!(buf, b"next object");
/// # Ok::<(), bb_proto::Error>(())
/// ```
///
/// Each call consumes what it can (headers and at most one run of data) and
/// reports it in a [`Decoded`]; `used == 0 && !end` means "need more bytes". After
/// an error the decoder stays failed: the connection is out of step and must be
/// closed.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    state: State,
    header: Option<StreamHeader>,
    limit: u64,
    sized_only: bool,
    total: u64,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        StreamDecoder::new()
    }
}

impl StreamDecoder {
    /// A decoder expecting a stream header, taking either form and any size.
    pub fn new() -> StreamDecoder {
        StreamDecoder {
            state: State::Header,
            header: None,
            limit: u64::MAX,
            sized_only: false,
            total: 0,
        }
    }

    /// Refuses a stream of more than `max` data bytes: a sized one as soon as its
    /// header arrives, a chunked one at the first chunk header that goes past it.
    ///
    /// Refusing breaks the connection. A server that wants to answer
    /// `StorageLimitExceeded` and carry on (§6.4) must drain instead: keep an
    /// unlimited decoder, count, and discard.
    pub fn with_limit(mut self, max: u64) -> StreamDecoder {
        self.limit = max;
        self
    }

    /// Refuses the chunked form, as attribute streams require (§2.5).
    pub fn sized_only(mut self) -> StreamDecoder {
        self.sized_only = true;
        self
    }

    /// The header, once it has arrived.
    pub fn header(&self) -> Option<StreamHeader> {
        self.header
    }

    /// Data bytes delivered so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Data bytes still to come, when the form says (sized streams).
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Sized { remaining } => Some(remaining),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Whether the end of the stream has been consumed.
    pub fn is_end(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes from the front of `input`; see the type's documentation.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>> {
        let r = self.step(input);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn step<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::Failed => return Err(Error::StreamFailed),
                State::Done => {
                    return Ok(Decoded {
                        used: pos,
                        data: &[],
                        end: true,
                    });
                }
                State::Header => {
                    let Some((header, used)) = StreamHeader::decode(rest)? else {
                        return Ok(need_more(pos));
                    };
                    pos += used;
                    self.header = Some(header);
                    self.state = match header {
                        StreamHeader::Sized(n) => {
                            if u64::from(n) > self.limit {
                                return Err(Error::StreamTooLarge {
                                    size: n.into(),
                                    limit: self.limit,
                                });
                            }
                            if n == 0 {
                                State::Done
                            } else {
                                State::Sized {
                                    remaining: n.into(),
                                }
                            }
                        }
                        StreamHeader::Chunked if self.sized_only => {
                            return Err(Error::ChunkedNotAllowed);
                        }
                        StreamHeader::Chunked => State::ChunkHeader,
                    };
                }
                State::Sized { remaining } => {
                    let n = rest
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    if n == 0 {
                        return Ok(need_more(pos));
                    }
                    let remaining = remaining - n as u64;
                    self.total += n as u64;
                    self.state = if remaining == 0 {
                        State::Done
                    } else {
                        State::Sized { remaining }
                    };
                    return Ok(Decoded {
                        used: pos + n,
                        data: &rest[..n],
                        end: remaining == 0,
                    });
                }
                State::ChunkHeader => {
                    let Some(&h) = rest.first() else {
                        return Ok(need_more(pos));
                    };
                    pos += 1;
                    if h == END_OF_STREAM {
                        self.state = State::Done;
                        continue;
                    }
                    let len = chunk_len(h).ok_or(Error::ReservedChunkHeader(h))?;
                    let announced = self.total + len as u64;
                    if announced > self.limit {
                        return Err(Error::StreamTooLarge {
                            size: announced,
                            limit: self.limit,
                        });
                    }
                    self.state = State::ChunkData { remaining: len };
                }
                State::ChunkData { remaining } => {
                    let n = rest.len().min(remaining);
                    if n == 0 {
                        return Ok(need_more(pos));
                    }
                    let remaining = remaining - n;
                    self.total += n as u64;
                    let mut used = pos + n;
                    let mut end = false;
                    self.state = if remaining > 0 {
                        State::ChunkData { remaining }
                    } else if rest.get(n) == Some(&END_OF_STREAM) {
                        // Report the end with the last data when it is already here,
                        // saving the caller a round.
                        used += 1;
                        end = true;
                        State::Done
                    } else {
                        State::ChunkHeader
                    };
                    return Ok(Decoded {
                        used,
                        data: &rest[..n],
                        end,
                    });
                }
            }
        }
    }
}

fn need_more(used: usize) -> Decoded<'static> {
    Decoded {
        used,
        data: &[],
        end: false,
    }
}

/// Decodes a whole stream that is already in `input`, for small streams (names,
/// attributes, listings, block indexes): the data and the bytes used, or
/// `Ok(None)` if the stream has not ended within `input`. Copies the data; scans
/// from the start on every call.
pub fn decode_whole(input: &[u8], mut decoder: StreamDecoder) -> Result<Option<(Vec<u8>, usize)>> {
    let mut data = Vec::new();
    let mut pos = 0;
    loop {
        let step = decoder.decode(&input[pos..])?;
        data.extend_from_slice(step.data);
        pos += step.used;
        if step.end {
            return Ok(Some((data, pos)));
        }
        if step.used == 0 {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_table() {
        // Sample values of §2.5.
        for (h, len) in [
            (1, 1),
            (9, 9),
            (64, 64),
            (81, 200),
            (135, 1536),
            (136, 1664),
            (144, 2688),
            (151, 4096),
            (252, 64512),
            (253, 65536),
        ] {
            assert_eq!(chunk_len(h), Some(len), "h={h}");
            assert_eq!(chunk_header_for(len), Some(h), "len={len}");
        }
        for h in [0, 254, 255] {
            assert_eq!(chunk_len(h), None);
        }
        for h in 2..=253u8 {
            assert!(chunk_len(h) > chunk_len(h - 1));
        }
        assert_eq!(chunk_header_for(0), None);
        assert_eq!(chunk_header_for(1673), Some(0x88));
        assert_eq!(chunk_header_for(65535), Some(252));
        assert_eq!(chunk_header_for(1 << 30), Some(253));
    }

    #[test]
    fn header_forms() {
        assert_eq!(StreamHeader::for_len(0), StreamHeader::Chunked);
        assert_eq!(StreamHeader::for_len(40), StreamHeader::Sized(40));
        assert_eq!(
            StreamHeader::for_len(0x7FFF_FFFF),
            StreamHeader::Sized(0x7FFF_FFFF)
        );
        assert_eq!(StreamHeader::for_len(0x8000_0000), StreamHeader::Chunked);
        let mut v = Vec::new();
        StreamHeader::Chunked.encode(&mut v);
        assert_eq!(v, [0xff; 8]);
        assert_eq!(
            StreamHeader::decode(&v).unwrap(),
            Some((StreamHeader::Chunked, 8))
        );
        assert!(matches!(
            StreamHeader::decode(&[0, 0, 0, 8, 0, 0, 0, 4]),
            Err(Error::ObjectWhereStreamExpected { object_type: 4 })
        ));
        assert!(encode_sized(&[], &mut v).is_err());
        // An empty stream goes out chunked.
        let mut e = Vec::new();
        encode_stream(&[], &mut e);
        assert_eq!(e, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
    }

    #[test]
    fn decoder_edge_cases() {
        // Zero-length sized stream: 0.13's receiver takes it as empty.
        let d = decode_whole(
            &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 7],
            StreamDecoder::new(),
        );
        assert_eq!(d.unwrap(), Some((vec![], 8)));
        // Reserved chunk headers.
        let mut s = Vec::new();
        StreamHeader::Chunked.encode(&mut s);
        s.push(254);
        let mut dec = StreamDecoder::new();
        assert!(matches!(
            dec.decode(&s),
            Err(Error::ReservedChunkHeader(254))
        ));
        assert!(matches!(dec.decode(&s), Err(Error::StreamFailed)));
        // Attribute streams refuse the chunked form.
        assert!(matches!(
            StreamDecoder::new().sized_only().decode(&s),
            Err(Error::ChunkedNotAllowed)
        ));
        // Limits: sized at the header, chunked at the chunk that passes it.
        let mut big = Vec::new();
        StreamHeader::Sized(0xFFFF_FFFE).encode(&mut big);
        assert!(matches!(
            StreamDecoder::new().with_limit(1 << 20).decode(&big),
            Err(Error::StreamTooLarge {
                size: 0xFFFF_FFFE,
                ..
            })
        ));
        let mut ch = Vec::new();
        encode_chunked(&[1; 300], &mut ch);
        assert!(decode_whole(&ch, StreamDecoder::new().with_limit(300)).is_ok());
        assert!(matches!(
            decode_whole(&ch, StreamDecoder::new().with_limit(299)),
            Err(Error::StreamTooLarge { .. })
        ));
        // Byte by byte, the way a slow connection delivers it.
        let mut dec = StreamDecoder::new();
        let mut got = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for &b in &ch {
            pending.push(b);
            let step = dec.decode(&pending).unwrap();
            got.extend_from_slice(step.data);
            pending.drain(..step.used);
        }
        assert!(dec.is_end() && pending.is_empty());
        assert_eq!(got, [1; 300]);
        assert_eq!(dec.total(), 300);
    }

    /// bbackupd's second file in §5.2 (read 4 KiB at a time, 71305 bytes) and the
    /// diff tail of §5.3 (2753 bytes) chunk exactly as captured.
    #[test]
    fn chunking_matches_captures() {
        let headers = |pushes: &[usize]| {
            let mut out = Vec::new();
            let mut enc = ChunkedEncoder::begin(&mut out);
            for &n in pushes {
                enc.push(&vec![0xaa; n], &mut out);
            }
            enc.finish(&mut out);
            let mut hs = Vec::new();
            let mut p = 8;
            loop {
                let h = out[p];
                hs.push(h);
                if h == 0 {
                    break;
                }
                p += 1 + chunk_len(h).unwrap();
            }
            assert_eq!(p + 1, out.len());
            hs
        };
        let mut reads = vec![4096; 17];
        reads.push(1673);
        let mut want = vec![0x97; 17];
        want.extend_from_slice(&[0x88, 0x09, 0x00]);
        assert_eq!(headers(&reads), want);
        assert_eq!(headers(&[2753]), [0x90, 0x40, 0x01, 0x00]);
        assert_eq!(headers(&[200]), [0x51, 0x00]);
        assert_eq!(headers(&[]), [0x00]);
        // One huge push goes out as 64 KiB chunks.
        assert_eq!(headers(&[65536 * 2 + 5]), [253, 253, 5, 0]);
    }
}
