//! Client certificate → account number (protocol.md §1.4).
//!
//! Owns: reading the first commonName of the peer's certificate and turning
//! `BACKUP-<hex>` into a 32-bit account number, strictly by default or with 0.13's
//! exact `sscanf("BACKUP-%x")` leniency. Must not know whether the account exists.

use rustls::ServerConnection;

use super::cert::Cert;
use super::error::{Error, Result};

/// How `BACKUP-<hex>` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CnRule {
    /// `BACKUP-` then hex digits only (either case, leading zeros allowed) whose value
    /// fits in 32 bits. Everything `bbstored-certs sign` can issue for a real account.
    #[default]
    Strict,
    /// What 0.13 does with glibc's `sscanf(cn, "BACKUP-%x", &id)`: whitespace, a sign
    /// and `0x` allowed, trailing junk ignored, the value cut to its low 32 bits (so
    /// `BACKUP-100000001` is account 1).
    Compat013,
}

/// The account number named by a client certificate's common name.
pub fn account_from_common_name(cn: &str, rule: CnRule) -> Result<u32> {
    let bad = || Error::BadCommonName { cn: cn.to_string() };
    let rest = cn.strip_prefix("BACKUP-").ok_or_else(bad)?;
    match rule {
        CnRule::Strict => {
            if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            let digits = rest.trim_start_matches('0');
            if digits.len() > 8 {
                return Err(bad());
            }
            // Empty after trimming zeros means account 0.
            Ok(
                u32::from_str_radix(if digits.is_empty() { "0" } else { digits }, 16)
                    .map_err(|_| bad())?,
            )
        }
        CnRule::Compat013 => scanf_hex(rest.as_bytes()).ok_or_else(bad),
    }
}

/// glibc's `%x` into an `unsigned int`: strtoul semantics on an unsigned long
/// (64 bits here), then truncation.
fn scanf_hex(s: &[u8]) -> Option<u32> {
    let mut i = 0;
    // isspace() in the C locale.
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    let mut have_digit = false;
    if i + 1 < s.len() && s[i] == b'0' && (s[i + 1] == b'x' || s[i + 1] == b'X') {
        // "0x" counts as the digit 0 even when no hex digit follows.
        have_digit = true;
        i += 2;
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    while i < s.len() && s[i].is_ascii_hexdigit() {
        let d = (s[i] as char).to_digit(16).unwrap_or(0) as u64;
        match value.checked_mul(16).and_then(|v| v.checked_add(d)) {
            Some(v) => value = v,
            None => overflow = true,
        }
        have_digit = true;
        i += 1;
    }
    if !have_digit {
        return None;
    }
    let v = if overflow {
        u64::MAX
    } else if negative {
        value.wrapping_neg()
    } else {
        value
    };
    Some(v as u32)
}

/// The first commonName of a DER certificate's subject, if any.
pub fn common_name(cert_der: &[u8]) -> Result<Option<String>> {
    Ok(Cert::parse(cert_der)?.common_name())
}

/// After the handshake of a [`super::server_config`] connection: the account number
/// of the client, from its verified certificate. 0.13 closes the connection, before
/// sending its ident, when this fails ("Failed login: invalid client common name").
pub fn account_from_connection(conn: &ServerConnection, rule: CnRule) -> Result<u32> {
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or(Error::NoPeerCertificate)?;
    let cn = common_name(leaf)?.ok_or_else(|| Error::BadCommonName { cn: String::new() })?;
    account_from_common_name(&cn, rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// protocol.md §1.4's table, measured against glibc.
    #[test]
    fn compat_matches_013_table() {
        let ok = [
            ("BACKUP-1234567", 0x01234567),
            ("BACKUP-01234567", 0x01234567),
            ("BACKUP-0x2a", 0x2a),
            ("BACKUP- 2a", 0x2a),
            ("BACKUP-2a-extra", 0x2a),
            ("BACKUP--1", 0xffffffff),
            ("BACKUP-100000001", 0x00000001),
            ("BACKUP-ffffffff", 0xffffffff),
            ("BACKUP-FfFf", 0xffff),
            ("BACKUP-+10", 0x10),
        ];
        for (cn, want) in ok {
            assert_eq!(
                account_from_common_name(cn, CnRule::Compat013).unwrap(),
                want,
                "{cn}"
            );
        }
        for cn in [
            "backup-2a",
            "BACKUP-",
            "BACKUP-zz",
            "XBACKUP-2a",
            "",
            "BACKUP- ",
        ] {
            assert!(
                account_from_common_name(cn, CnRule::Compat013).is_err(),
                "{cn}"
            );
        }
    }

    #[test]
    fn strict_refuses_what_could_alias() {
        for (cn, want) in [
            ("BACKUP-1234567", 0x01234567),
            ("BACKUP-01234567", 0x01234567),
            ("BACKUP-0001234567", 0x01234567),
            ("BACKUP-ABCDEF12", 0xabcdef12),
            ("BACKUP-abcdef12", 0xabcdef12),
            ("BACKUP-0", 0),
            ("BACKUP-ffffffff", 0xffffffff),
        ] {
            assert_eq!(
                account_from_common_name(cn, CnRule::Strict).unwrap(),
                want,
                "{cn}"
            );
        }
        for cn in [
            "BACKUP-0x2a",
            "BACKUP- 2a",
            "BACKUP-2a-extra",
            "BACKUP--1",
            "BACKUP-100000001",
            "backup-2a",
            "BACKUP-",
            "BACKUP-zz",
            "XBACKUP-2a",
            "BACKUP-2a ",
            "BACKUP-+2a",
        ] {
            let e = account_from_common_name(cn, CnRule::Strict).unwrap_err();
            assert!(e.to_string().contains("invalid client common name"), "{cn}");
        }
    }
}
