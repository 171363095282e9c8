//! A minimal DER reader: just enough to walk X.509 certificates, CRLs and PKCS#10
//! requests and hand out the raw byte ranges that signatures cover.
//!
//! Owns: tag/length/value splitting with strict DER lengths. Must not know what an
//! OID means or anything about certificates.
//!
//! Only single-byte tags are accepted (X.509 uses nothing else), and lengths must be
//! in their shortest form, because a signature covers exact bytes and two readings
//! of the same bytes must never disagree.

/// Why a DER value could not be read. Carries no input bytes: callers add context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DerError(pub &'static str);

pub(crate) type DerResult<T> = std::result::Result<T, DerError>;

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const OID: u8 = 0x06;
pub(crate) const BOOLEAN: u8 = 0x01;
pub(crate) const UTC_TIME: u8 = 0x17;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;

/// One TLV: its tag, its contents, and the whole encoding (tag and length included).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
    pub raw: &'a [u8],
}

/// A cursor over a run of TLVs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Reader { rest: input }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next TLV, whatever its tag.
    pub fn any(&mut self) -> DerResult<Tlv<'a>> {
        let input = self.rest;
        let (&tag, after_tag) = input.split_first().ok_or(DerError("truncated: no tag"))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError("multi-byte tags are not used in X.509"));
        }
        let (&first, mut after_len) = after_tag
            .split_first()
            .ok_or(DerError("truncated: no length"))?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 {
                return Err(DerError("indefinite length is not DER"));
            }
            if n > 4 {
                return Err(DerError("length too large"));
            }
            if after_len.len() < n {
                return Err(DerError("truncated length"));
            }
            let mut len = 0usize;
            for &b in &after_len[..n] {
                len = (len << 8) | b as usize;
            }
            // Shortest form only: no leading zero byte, and long form only from 128.
            if after_len[0] == 0 || len < 0x80 {
                return Err(DerError("length not in shortest form"));
            }
            after_len = &after_len[n..];
            len
        };
        if after_len.len() < len {
            return Err(DerError("truncated value"));
        }
        let header = input.len() - after_len.len();
        let value = &after_len[..len];
        let raw = &input[..header + len];
        self.rest = &after_len[len..];
        Ok(Tlv { tag, value, raw })
    }

    /// The next TLV, which must carry `tag`.
    pub fn expect(&mut self, tag: u8, what: &'static str) -> DerResult<Tlv<'a>> {
        let tlv = self.any()?;
        if tlv.tag != tag {
            return Err(DerError(what));
        }
        Ok(tlv)
    }

    /// The next TLV if it carries `tag`, else nothing (and nothing consumed).
    pub fn optional(&mut self, tag: u8) -> DerResult<Option<Tlv<'a>>> {
        if self.peek_tag() == Some(tag) {
            self.any().map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn finish(&self, what: &'static str) -> DerResult<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DerError(what))
        }
    }
}

/// Reads exactly one TLV with `tag` spanning the whole of `input`.
pub(crate) fn single<'a>(input: &'a [u8], tag: u8, what: &'static str) -> DerResult<Tlv<'a>> {
    let mut r = Reader::new(input);
    let tlv = r.expect(tag, what)?;
    r.finish("trailing bytes after the outer value")?;
    Ok(tlv)
}

/// The contents of a BIT STRING with no unused bits (keys and signatures always are).
pub(crate) fn bit_string_bytes<'a>(tlv: &Tlv<'a>) -> DerResult<&'a [u8]> {
    match tlv.value.split_first() {
        Some((0, bytes)) => Ok(bytes),
        Some(_) => Err(DerError("bit string with unused bits")),
        None => Err(DerError("empty bit string")),
    }
}

/// Seconds since the Unix epoch of a UTCTime or GeneralizedTime in the forms RFC 5280
/// allows (`YYMMDDHHMMSSZ`, `YYYYMMDDHHMMSSZ`).
pub(crate) fn time(tlv: &Tlv<'_>) -> DerResult<i64> {
    let s = tlv.value;
    let (year, rest) = match tlv.tag {
        UTC_TIME if s.len() == 13 => {
            let yy = digits(&s[..2])? as i64;
            // RFC 5280 4.1.2.5.1: 50..99 are 19xx, 00..49 are 20xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        GENERALIZED_TIME if s.len() == 15 => (digits(&s[..4])? as i64, &s[4..]),
        UTC_TIME | GENERALIZED_TIME => return Err(DerError("time not in RFC 5280 form")),
        _ => return Err(DerError("expected a time")),
    };
    if rest[10] != b'Z' {
        return Err(DerError("time must end in Z"));
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let min = digits(&rest[6..8])?;
    let sec = digits(&rest[8..10])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 59 {
        return Err(DerError("time field out of range"));
    }
    let days = days_from_civil(year, month as i64, day as i64);
    Ok(days * 86400 + hour as i64 * 3600 + min as i64 * 60 + sec as i64)
}

fn digits(s: &[u8]) -> DerResult<u32> {
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return Err(DerError("non-digit in time"));
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Ok(v)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_short_long_and_bad() {
        let mut r = Reader::new(&[0x04, 0x02, 1, 2, 0x05, 0x00]);
        let t = r.any().unwrap();
        assert_eq!((t.tag, t.value, t.raw.len()), (0x04, &[1u8, 2][..], 4));
        assert_eq!(r.any().unwrap().value.len(), 0);
        assert!(r.is_empty());

        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        assert_eq!(Reader::new(&long).any().unwrap().value.len(), 0x80);

        for bad in [
            &[0x04, 0x81, 0x05, 1, 2, 3, 4, 5][..], // long form below 128
            &[0x04, 0x82, 0x00, 0x80],              // leading zero
            &[0x04, 0x80],                          // indefinite
            &[0x04, 0x03, 1, 2],                    // truncated
            &[0x1f, 0x01, 0x00],                    // multi-byte tag
            &[0x04],
            &[],
            &[0x04, 0x85, 1, 1, 1, 1, 1],
        ] {
            assert!(Reader::new(bad).any().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn times() {
        let t = |tag, s: &str| {
            time(&Tlv {
                tag,
                value: s.as_bytes(),
                raw: &[],
            })
        };
        assert_eq!(t(UTC_TIME, "700101000000Z"), Ok(0));
        // `date -d 2026-11-24T18:06:04Z +%s`
        assert_eq!(t(UTC_TIME, "261124180604Z"), Ok(1795543564));
        assert_eq!(t(GENERALIZED_TIME, "20400802180604Z"), Ok(2227543564));
        assert_eq!(t(UTC_TIME, "491231235959Z"), Ok(2524607999));
        assert_eq!(t(UTC_TIME, "500101000000Z"), Ok(-631152000));
        assert!(t(UTC_TIME, "261124180604+0100").is_err());
        assert!(t(UTC_TIME, "2611241806Z").is_err());
        assert!(t(UTC_TIME, "261324180604Z").is_err());
        assert!(t(OCTET_STRING, "261124180604Z").is_err());
    }
}
