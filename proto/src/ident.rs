//! The ident exchange that opens every session (`protocol.md` §2.1): each side
//! writes 32 bytes, `Box-Backup:v=C` and 18 NULs, *then* reads the peer's 32 and
//! compares all of them. Neither side waits before sending, so a client and a
//! server that both send first cannot deadlock.
//!
//! Owns the bytes and the comparison; must not know how they are sent.

use crate::error::{Error, Result};

/// Length of the ident block.
pub const IDENT_LEN: usize = 32;

/// The ident block of 0.10 to 0.13: the string copied into a zeroed array.
pub const IDENT: [u8; IDENT_LEN] = *b"Box-Backup:v=C\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

/// Appends our ident to `out`.
pub fn encode_ident(out: &mut Vec<u8>) {
    out.extend_from_slice(&IDENT);
}

/// Checks the peer's ident against the bytes received so far.
///
/// Returns `Ok(None)` while fewer than 32 bytes have arrived and they still agree,
/// `Ok(Some(32))` (the bytes used) once all 32 match, and an error as soon as one
/// byte differs; a mismatch is final (0.13 closes the connection, §4.7). Bytes after
/// the first 32 are the first object and are left alone.
pub fn check_ident(received: &[u8]) -> Result<Option<usize>> {
    let n = received.len().min(IDENT_LEN);
    if received[..n] != IDENT[..n] {
        return Err(Error::IdentMismatch {
            received: String::from_utf8_lossy(&received[..n]).into_owned(),
        });
    }
    Ok((n == IDENT_LEN).then_some(IDENT_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 32 bytes as captured from 0.13 (§2.1, §5.1).
    #[test]
    fn golden_ident() {
        let hex = concat!(
            "426f782d4261636b75703a763d43",
            "000000000000000000000000000000000000"
        );
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(bytes, IDENT);
        let mut v = Vec::new();
        encode_ident(&mut v);
        assert_eq!(v, IDENT);
    }

    #[test]
    fn partial_full_and_mismatch() {
        assert_eq!(check_ident(&[]).unwrap(), None);
        assert_eq!(check_ident(&IDENT[..10]).unwrap(), None);
        assert_eq!(check_ident(&IDENT).unwrap(), Some(32));
        let mut more = IDENT.to_vec();
        more.extend_from_slice(&[0, 0, 0, 12]);
        assert_eq!(check_ident(&more).unwrap(), Some(32));
        // 0.09's ident fails at the version letter, before all 32 bytes arrive.
        assert!(check_ident(b"Box-Backup:v=B").is_err());
        // Padding must be zero too: 0.13 compares all 32 bytes.
        let mut bad = IDENT;
        bad[31] = b' ';
        assert!(check_ident(&bad).is_err());
        assert!(check_ident(&bad[..31]).unwrap().is_none());
    }
}
