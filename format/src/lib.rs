//! bb-format: Box Backup 0.13's data formats, pure bytes in and bytes out.
//!
//! Owns the keys file and the ciphers, filenames, attributes and the attribute
//! hash, the encoded file (header, chunks, block index, both orders), block sizing,
//! the rolling checksum, the diff and the server-side transforms (combine, reverse
//! diff, combining patches), directory objects, the store info file and the
//! refcount database, and the text syntax of Box Backup's config files, as
//! `../shared/spec/formats.md` and `store.md` §1, §4–5 describe
//! them (section numbers in the module docs refer to those files).
//!
//! Must not know: files, sockets, the RaidFile layout, or the protocol. Callers
//! pass bytes (or a `Read`) and keys in; nothing here is global, so one process
//! can hold two stores and two key sets. Every decoder treats its input as
//! hostile: malformed bytes give an [`Error`], never a panic, and lengths read
//! from the input are checked against the bytes present before allocating.

pub mod archive;
pub mod attributes;
pub mod blocksize;
pub mod bytes;
pub mod checksum;
pub mod chunk;
pub mod clidoc;
pub mod combine;
pub mod config_syntax;
pub mod crypto;
pub mod decode;
pub mod diff;
pub mod directory;
pub mod encode;
pub mod error;
pub mod filename;
pub mod index;
pub mod keys;
pub mod layout;
pub mod read_at;
pub mod recipe;
pub mod refcount;
pub mod storeinfo;

pub use error::{Error, Result};
pub use filename::EncodedName;
pub use keys::Keys;

/// Microseconds since the Unix epoch, as Box Backup stores every time.
pub type BoxTime = i64;

#[cfg(test)]
mod test_util {
    /// Lowercase hex of `b`, for comparing with the spec's vectors.
    pub fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Bytes from hex, ignoring white space (the spec's vectors are spaced).
    pub fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The real `hello.txt` object of formats.md §8.
    pub fn hello_object() -> Vec<u8> {
        unhex(
            "66696c65 0000000000000001 0000000000000002 00059b1f7228d580 00001080 00000000
             4a00e1457017b169022135d057bca97e58a6
             00000061 022f3a6ae0eae178e9aa442e36ed77d3b58b9133d019953aed19387291578cf4
             26f1248bd0170a26bc4f8d53bebc945c9e69c2c3c5d38882b07bfaed5f0daf8d
             090dde2e33e16fe4d1b70321028b90589b8c50698a836852a9b6c819e6a5674223
             04 916c02086fca925c1975e8166eb23f84 920f0e34990ae95ed0d6e661c1a1ac9c
             62696478 0000000000000000 068b90eda9b586b4 0000000000000001
             0000000000000021 df2d418f6671dc0ec4528e24182948868949b237eb6844d7",
        )
    }
}
