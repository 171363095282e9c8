//! Many blocks at once: MD5 in SIMD lanes, AES-CBC over interleaved chains, and
//! a faster weak checksum.
//!
//! MD5 and CBC encryption are serial within one block (each step needs the
//! previous one), so a single block leaves most of a core idle waiting on
//! latencies. Running eight independent blocks side by side fills it: MD5 in
//! the two halves of SSE2 registers (four lanes each), and AES over eight CBC
//! chains handed to the cipher together, which pipelines them. Results are
//! identical to the one-block functions; tests compare them.
//!
//! SSE2 is part of the x86_64 baseline, but a `#[target_feature]` function can
//! only be called without `unsafe` from a function with the same attribute, so
//! the entry to the SSE2 MD5 is one `unsafe` call (see its SAFETY note). Other
//! architectures use the scalar MD5.

use aes::Aes256;
use cipher::BlockCipherEncrypt;
use cipher::array::Array;

use crate::crypto;

/// Blocks processed side by side.
pub const LANES: usize = 8;

/// MD5 of every input, computing equal-length runs of [`LANES`] inputs
/// together; `out[i]` receives the digest of `inputs[i]`.
pub fn md5_many(inputs: &[&[u8]], out: &mut [[u8; 16]]) {
    debug_assert_eq!(inputs.len(), out.len());
    let mut i = 0;
    while i < inputs.len() {
        let len = inputs[i].len();
        if i + LANES <= inputs.len() && inputs[i..i + LANES].iter().all(|b| b.len() == len) {
            let group: [&[u8]; LANES] = std::array::from_fn(|l| inputs[i + l]);
            out[i..i + LANES].copy_from_slice(&md5_x8(group));
            i += LANES;
        } else {
            out[i] = crypto::md5(inputs[i]);
            i += 1;
        }
    }
}

/// MD5 of eight inputs of equal length.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub fn md5_x8(inputs: [&[u8]; LANES]) -> [[u8; 16]; LANES] {
    // SAFETY: `sse2::md5_x8` is an ordinary safe function whose only
    // requirement is the SSE2 instruction set, which every x86_64 CPU has (it
    // is in the target's baseline: the compiler already assumes it everywhere).
    unsafe { sse2::md5_x8(inputs) }
}

/// MD5 of eight inputs of equal length.
#[cfg(not(target_arch = "x86_64"))]
pub fn md5_x8(inputs: [&[u8]; LANES]) -> [[u8; 16]; LANES] {
    inputs.map(crypto::md5)
}

/// The MD5 round constants and shifts (RFC 1321).
#[cfg(target_arch = "x86_64")]
mod md5_consts {
    pub const S: [i32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    pub const K: [u32; 64] = [
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613,
        0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193,
        0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d,
        0x02441453, 0xd8a1e681, 0xe7d3fbc8, 0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
        0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122,
        0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
        0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665, 0xf4292244,
        0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb,
        0xeb86d391,
    ];
}

/// Eight-lane MD5 on SSE2: lanes 0..4 in the first register of each pair,
/// 4..8 in the second, so every step has two independent dependency chains.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use super::LANES;
    use super::md5_consts::{K, S};
    use core::arch::x86_64::*;

    type W = [__m128i; 2];

    #[inline]
    #[target_feature(enable = "sse2")]
    fn rotl(x: __m128i, s: i32) -> __m128i {
        _mm_or_si128(
            _mm_sll_epi32(x, _mm_cvtsi32_si128(s)),
            _mm_srl_epi32(x, _mm_cvtsi32_si128(32 - s)),
        )
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn step<const R: usize>(i: usize, a: &mut W, b: &W, c: &W, d: &W, m: &[W; 16]) {
        let g = match R {
            0 => i,
            1 => (5 * i + 1) % 16,
            2 => (3 * i + 5) % 16,
            _ => (7 * i) % 16,
        };
        let k = _mm_set1_epi32(K[i] as i32);
        for v in 0..2 {
            let (b, c, d) = (b[v], c[v], d[v]);
            let f = match R {
                0 => _mm_or_si128(_mm_and_si128(b, c), _mm_andnot_si128(b, d)),
                1 => _mm_or_si128(_mm_and_si128(b, d), _mm_andnot_si128(d, c)),
                2 => _mm_xor_si128(_mm_xor_si128(b, c), d),
                _ => _mm_xor_si128(c, _mm_or_si128(b, _mm_xor_si128(d, _mm_set1_epi32(-1)))),
            };
            let t = _mm_add_epi32(_mm_add_epi32(a[v], f), _mm_add_epi32(k, m[g][v]));
            a[v] = _mm_add_epi32(rotl(t, S[i]), b);
        }
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn round<const R: usize>(a: &mut W, b: &mut W, c: &mut W, d: &mut W, m: &[W; 16]) {
        // Four steps per iteration with the roles rotated, instead of moving
        // the registers after every step.
        for j in (0..16).step_by(4) {
            let i = R * 16 + j;
            step::<R>(i, a, b, c, d, m);
            step::<R>(i + 1, d, a, b, c, m);
            step::<R>(i + 2, c, d, a, b, m);
            step::<R>(i + 3, b, c, d, a, m);
        }
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn compress(state: &mut [W; 4], m: &[W; 16]) {
        let [mut a, mut b, mut c, mut d] = *state;
        round::<0>(&mut a, &mut b, &mut c, &mut d, m);
        round::<1>(&mut a, &mut b, &mut c, &mut d, m);
        round::<2>(&mut a, &mut b, &mut c, &mut d, m);
        round::<3>(&mut a, &mut b, &mut c, &mut d, m);
        for v in 0..2 {
            state[0][v] = _mm_add_epi32(state[0][v], a[v]);
            state[1][v] = _mm_add_epi32(state[1][v], b[v]);
            state[2][v] = _mm_add_epi32(state[2][v], c[v]);
            state[3][v] = _mm_add_epi32(state[3][v], d[v]);
        }
    }

    #[inline]
    fn word(b: &[u8; 64], j: usize) -> i32 {
        // MD5 reads its message words little-endian.
        i32::from_le_bytes([b[4 * j], b[4 * j + 1], b[4 * j + 2], b[4 * j + 3]])
    }

    /// Transposes one 64-byte chunk of each lane into the message schedule.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn load(chunks: [&[u8; 64]; LANES], m: &mut [W; 16]) {
        for (j, mj) in m.iter_mut().enumerate() {
            let w: [i32; LANES] = std::array::from_fn(|l| word(chunks[l], j));
            mj[0] = _mm_set_epi32(w[3], w[2], w[1], w[0]);
            mj[1] = _mm_set_epi32(w[7], w[6], w[5], w[4]);
        }
    }

    #[inline]
    #[target_feature(enable = "sse2")]
    fn lane(v: __m128i, l: usize) -> u32 {
        let x = match l {
            0 => v,
            1 => _mm_shuffle_epi32::<1>(v),
            2 => _mm_shuffle_epi32::<2>(v),
            _ => _mm_shuffle_epi32::<3>(v),
        };
        _mm_cvtsi128_si32(x) as u32
    }

    /// MD5 of eight equal-length inputs (panics otherwise: callers group them).
    #[target_feature(enable = "sse2")]
    pub fn md5_x8(inputs: [&[u8]; LANES]) -> [[u8; 16]; LANES] {
        let len = inputs[0].len();
        assert!(
            inputs.iter().all(|i| i.len() == len),
            "md5_x8 needs equal lengths"
        );
        let init = |x: u32| [_mm_set1_epi32(x as i32); 2];
        let mut state: [W; 4] = [
            init(0x6745_2301),
            init(0xefcd_ab89),
            init(0x98ba_dcfe),
            init(0x1032_5476),
        ];
        let mut m: [W; 16] = [[_mm_setzero_si128(); 2]; 16];
        let full = len / 64;
        for blk in 0..full {
            let off = blk * 64;
            let chunks: [&[u8; 64]; LANES] =
                std::array::from_fn(|l| inputs[l][off..off + 64].try_into().expect("64 bytes"));
            load(chunks, &mut m);
            compress(&mut state, &m);
        }
        // Padding: 0x80, zeros, and the bit length (little-endian) in the last
        // 8 bytes of the final 64-byte chunk.
        let rem = len - full * 64;
        let tail_len = if rem < 56 { 64 } else { 128 };
        let mut tail = [[0u8; 128]; LANES];
        for (t, input) in tail.iter_mut().zip(inputs) {
            t[..rem].copy_from_slice(&input[full * 64..]);
            t[rem] = 0x80;
            t[tail_len - 8..tail_len]
                .copy_from_slice(&((len as u64).wrapping_mul(8)).to_le_bytes());
        }
        for off in (0..tail_len).step_by(64) {
            let chunks: [&[u8; 64]; LANES] =
                std::array::from_fn(|l| tail[l][off..off + 64].try_into().expect("64 bytes"));
            load(chunks, &mut m);
            compress(&mut state, &m);
        }
        let mut out = [[0u8; 16]; LANES];
        for (l, o) in out.iter_mut().enumerate() {
            for (i, s) in state.iter().enumerate() {
                o[4 * i..4 * i + 4].copy_from_slice(&lane(s[l / 4], l % 4).to_le_bytes());
            }
        }
        out
    }
}

/// One CBC chain to encrypt in place: `body` bytes (a multiple of 16, already
/// padded) at `start` in the buffer, with the IV in the 16 bytes just before
/// it, as in a chunk.
#[derive(Debug, Clone, Copy)]
pub struct Chain {
    pub start: usize,
    pub len: usize,
}

/// AES-256-CBC encrypts every chain in `buf` in place, up to [`LANES`] chains
/// at a time so the cipher pipelines them. Each block is XORed with the 16
/// bytes before it in the buffer: the IV for the first block, the previous
/// ciphertext block after that.
pub fn cbc_encrypt_chains(cipher: &Aes256, buf: &mut [u8], chains: &[Chain]) {
    for group in chains.chunks(LANES) {
        let steps = group.iter().map(|c| c.len / 16).max().unwrap_or(0);
        let mut work = [Array::from([0u8; 16]); LANES];
        let mut active = [0usize; LANES];
        for t in 0..steps {
            let mut n = 0;
            for c in group {
                if t < c.len / 16 {
                    let pos = c.start + 16 * t;
                    let (prev, cur) = buf[pos - 16..pos + 16].split_at(16);
                    for ((w, p), x) in work[n].iter_mut().zip(prev).zip(cur) {
                        *w = p ^ x;
                    }
                    active[n] = pos;
                    n += 1;
                }
            }
            cipher.encrypt_blocks(&mut work[..n]);
            for (w, &pos) in work[..n].iter().zip(&active[..n]) {
                buf[pos..pos + 16].copy_from_slice(w);
            }
        }
    }
}

/// The weak rolling checksum of `formats.md` §5.1, computed 64 bytes at a time
/// so the compiler can vectorize it; equal to
/// [`crate::checksum::weak_checksum`].
pub fn weak_checksum(block: &[u8]) -> u32 {
    // b = sum((L - i) * x_i) = L * a - sum(i * x_i), all mod 2^16; u32 wrapping
    // arithmetic is exact mod 2^16. Per 64-byte chunk starting at c,
    // sum(i * x_i) = c * s + sum(j * x_(c+j)), with fixed weights j.
    let len = block.len() as u32;
    let mut a: u32 = 0;
    let mut t: u32 = 0;
    let mut chunks = block.chunks_exact(64);
    let mut c: u32 = 0;
    for chunk in &mut chunks {
        let mut s: u32 = 0;
        let mut w: u32 = 0;
        for (j, &x) in chunk.iter().enumerate() {
            s += x as u32;
            w += j as u32 * x as u32;
        }
        t = t.wrapping_add(c.wrapping_mul(s)).wrapping_add(w);
        a = a.wrapping_add(s);
        c = c.wrapping_add(64);
    }
    for (j, &x) in chunks.remainder().iter().enumerate() {
        a = a.wrapping_add(x as u32);
        t = t.wrapping_add(c.wrapping_add(j as u32).wrapping_mul(x as u32));
    }
    let b = len.wrapping_mul(a).wrapping_sub(t);
    (a & 0xffff) | (b << 16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keys;
    use proptest::prelude::*;

    #[test]
    fn md5_x8_matches_md5_at_padding_edges() {
        let data: Vec<u8> = (0..9 * 5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 4096, 4200] {
            let inputs: [&[u8]; LANES] = std::array::from_fn(|l| &data[l * 5000..l * 5000 + len]);
            let got = md5_x8(inputs);
            for (g, i) in got.iter().zip(inputs) {
                assert_eq!(*g, crypto::md5(i), "len {len}");
            }
        }
    }

    proptest! {
        #[test]
        fn many_equal_one_by_one(lens in proptest::collection::vec(prop_oneof![Just(64usize), Just(100), 0usize..300], 0..30), seed in any::<u8>()) {
            let data: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &n)| (0..n).map(|j| (j * 31 + i * 7) as u8 ^ seed).collect()).collect();
            let inputs: Vec<&[u8]> = data.iter().map(|d| &d[..]).collect();
            let mut out = vec![[0u8; 16]; inputs.len()];
            md5_many(&inputs, &mut out);
            for (o, i) in out.iter().zip(&inputs) {
                prop_assert_eq!(*o, crypto::md5(i));
            }
            for i in &inputs {
                prop_assert_eq!(weak_checksum(i), crate::checksum::weak_checksum(i));
            }
        }

        #[test]
        fn chains_equal_serial_cbc(lens in proptest::collection::vec(0usize..20, 0..20)) {
            let k = Keys::test_vector();
            let mut buf = Vec::new();
            let mut chains = Vec::new();
            let mut expect = Vec::new();
            for (i, &blocks) in lens.iter().enumerate() {
                let iv = [i as u8; 16];
                let clear: Vec<u8> = (0..blocks * 16 + 5).map(|j| (j * 3 + i) as u8).collect();
                buf.extend_from_slice(&iv);
                let start = buf.len();
                // Pad the way aes_encrypt_into does, then compare.
                let mut one = Vec::new();
                crypto::aes_encrypt_into(k.file_data_cipher(), &iv, &clear, &mut one);
                let pad = one.len() - clear.len();
                buf.extend_from_slice(&clear);
                buf.extend(std::iter::repeat_n(pad as u8, pad));
                chains.push(Chain { start, len: one.len() });
                expect.extend_from_slice(&iv);
                expect.extend_from_slice(&one);
            }
            cbc_encrypt_chains(k.file_data_cipher(), &mut buf, &chains);
            prop_assert_eq!(buf, expect);
        }

        #[test]
        fn weak_checksum_matches(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(weak_checksum(&data), crate::checksum::weak_checksum(&data));
        }
    }
}
