//! journald's native protocol: one datagram to
//! `/run/systemd/journal/socket` per entry, holding `KEY=VALUE\n` lines; a
//! value with a newline goes as `KEY\n`, its length as a little-endian u64,
//! the bytes, `\n` (systemd's "Native Journal Protocol").
//!
//! A datagram larger than the socket's send buffer fails with EMSGSIZE;
//! systemd then passes a sealed memfd instead, which needs `unsafe` here
//! (fd passing). We cut MESSAGE at [`MAX_MESSAGE`] bytes and say so at its
//! end: a log line that long is a bug report's attachment, not a log line.
//!
//! Pure: bytes out, no socket (that is [`crate::system`]'s).

/// The longest MESSAGE we send (well under the default 208 KiB send buffer).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// What follows a MESSAGE cut at [`MAX_MESSAGE`].
pub const TRUNCATED: &str = " [message truncated]";

/// Appends one field. Field names must be upper case ASCII, digits and `_`
/// (not starting with `_`, which journald reserves); callers use constants.
pub fn push_field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value);
    } else {
        out.push(b'=');
        out.extend_from_slice(value);
    }
    out.push(b'\n');
}

/// The MESSAGE value: `text`, cut on a character boundary if longer than
/// [`MAX_MESSAGE`].
pub fn message(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_MESSAGE {
        return text.into();
    }
    let mut end = MAX_MESSAGE - TRUNCATED.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATED}", &text[..end]).into()
}

/// A parsed datagram: the fields in order (for tests and tools that listen).
/// `None` if the bytes do not follow the protocol.
pub fn parse(mut d: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let nl = d.iter().position(|&b| b == b'\n')?;
        let line = &d[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            out.push((
                String::from_utf8(line[..eq].to_vec()).ok()?,
                line[eq + 1..].to_vec(),
            ));
            d = &d[nl + 1..];
        } else {
            let key = String::from_utf8(line.to_vec()).ok()?;
            let rest = &d[nl + 1..];
            let len = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
            let len = usize::try_from(len).ok()?;
            let value = rest.get(8..8usize.checked_add(len)?)?;
            if rest.get(8 + len) != Some(&b'\n') {
                return None;
            }
            out.push((key, value.to_vec()));
            d = &rest[8 + len + 1..];
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_binary_fields_round_trip() {
        let mut d = Vec::new();
        push_field(&mut d, "MESSAGE", b"hello");
        push_field(&mut d, "PRIORITY", b"5");
        push_field(&mut d, "CODE_LINE", b"two\nlines");
        assert_eq!(&d[..23], b"MESSAGE=hello\nPRIORITY=");
        let mut want = b"MESSAGE=hello\nPRIORITY=5\nCODE_LINE\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\n");
        assert_eq!(d, want);
        let f = parse(&d).unwrap();
        assert_eq!(f[2], ("CODE_LINE".to_string(), b"two\nlines".to_vec()));
        assert!(parse(b"MESSAGE\n\x05\0\0\0\0\0\0\0ab").is_none());
        assert!(parse(b"NOEND").is_none());
    }

    #[test]
    fn long_messages_are_cut_and_say_so() {
        let m = message(&"x".repeat(MAX_MESSAGE + 10)).into_owned();
        assert_eq!(m.len(), MAX_MESSAGE);
        assert!(m.ends_with(TRUNCATED));
        assert_eq!(message("short"), "short");
    }
}
