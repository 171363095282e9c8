//! Errors of the format layer. Every decoder reports malformed input as one of
//! these values; nothing here panics on bytes from outside.

/// What went wrong while encoding or decoding a Box Backup structure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The keys file is shorter than the 1024 bytes 0.13 reads.
    #[error("keys file is {0} bytes long; Box Backup keys files are 1024 bytes")]
    KeysFileTooShort(usize),

    /// Input ended before a field could be read.
    #[error("{what}: truncated: needed {need} bytes at offset {offset}, only {have} remain")]
    Truncated {
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },

    /// A structure did not start with its magic number.
    #[error("{what}: bad magic {found:#010x}")]
    BadMagic { what: &'static str, found: u32 },

    /// A structure parsed but breaks a rule of the format.
    #[error("{what}: {detail}")]
    Corrupt { what: &'static str, detail: String },

    /// Ciphertext did not decrypt to a well-formed plaintext (bad length or padding),
    /// which usually means the wrong keys file.
    #[error("{what}: decryption failed: {detail}")]
    Decrypt {
        what: &'static str,
        detail: &'static str,
    },

    /// A decoded block's size or MD5 did not match its block index entry.
    #[error("block {block}: {detail}")]
    BlockCheck { block: u64, detail: String },

    /// A value cannot be represented in the format (e.g. a name over 16375 bytes).
    #[error("{what}: cannot encode: {detail}")]
    Unencodable { what: &'static str, detail: String },

    /// The source of an encoding ended before its recipe said it would (the file
    /// shrank while being read); the output would not describe any real file.
    #[error("source changed while being encoded: {detail}")]
    SourceChanged { detail: String },

    /// Reading the source of an encoding, or writing its output, failed.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}
