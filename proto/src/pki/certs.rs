//! `bbstored-certs`: 0.13's certificate authority script, with its command line,
//! directory layout, prompts, messages and exit statuses, issuing certificates
//! in-process instead of calling `openssl`.
//!
//! ```text
//! bbstored-certs certs-dir init                     roots/{client,server}CA.pem (+ .srl),
//!                                                   keys/{client,server}Root{Key,CSR}.pem,
//!                                                   servers/, clients/  (all 0700)
//! bbstored-certs certs-dir sign <NNNN-csr.pem>      clients/NNNN-cert.pem, after "yes"
//! bbstored-certs certs-dir sign-server <csr.pem>    servers/<CN>-cert.pem, after "yes"
//! ```
//!
//! It signs with 0.13's CA directories too (v1 roots; PKCS#8 or PKCS#1 root keys) and
//! signs requests made by 0.13's `bbackupd-config` / `openssl req`. Serial numbers
//! come from `roots/<entity>CA.srl` as with `openssl x509 -CA`, so serials stay
//! unique within a CA, which the CRL check relies on.
//!
//! Exit statuses copy Perl's `die`: the errno of the failed test where there is one
//! (2 for a missing directory or request, the mkdir errno for `init` on an existing
//! directory), else 255; 1 for a usage error; 0 when the user does not type "yes"
//! (0.13 prints CANCELLED and exits 0). Messages go to stderr as `bbstored-certs: ...`
//! where Perl appended `at /usr/bin/bbstored-certs line N.`

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use super::issue::{self, Ca, Csr, KeyKind, LeafSpec};
use super::verify::Usage;

const USAGE: &str = "
bbstored certificates utility.

Bad command line parameters.
Usage:
\tbbstored-certs certs-dir command [arguments]

certs-dir is the directory holding the root keys and certificates for the backup system
command is the action to perform, taking parameters.

Commands are

\tinit
\t\t-- generate initial root certificates (certs-dir must not already exist)
\tsign certificate-name
\t\t-- sign a client certificate
\tsign-server certificate-name
\t\t-- sign a server certificate

Signing requires confirmation that the certificate is correct and should be signed.

";

/// Leaf certificates last 5000 days, as in 0.13.
const SIGN_DAYS: i64 = 5000;

/// A failure with the exit status Perl's `die` would have given.
#[derive(Debug)]
struct Die {
    code: i32,
    message: String,
}

fn die(message: impl Into<String>) -> Die {
    Die {
        code: 255,
        message: message.into(),
    }
}

/// `die` right after a failed file test or system call: Perl exits with `$!`.
fn die_errno(message: impl Into<String>, err: &std::io::Error) -> Die {
    Die {
        code: err
            .raw_os_error()
            .filter(|&c| c > 0 && c < 256)
            .unwrap_or(255),
        message: message.into(),
    }
}

const ENOENT: i32 = 2;

/// Runs the tool; returns the exit status. `stdin` answers the confirmation prompts.
pub fn bbstored_certs(
    args: &[String],
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    if args.len() < 2 {
        let _ = stdout.write_all(USAGE.as_bytes());
        return 1;
    }
    let (dir, command, rest) = (Path::new(&args[0]), args[1].as_str(), &args[2..]);
    let result = (|| {
        if command != "init" && !dir.is_dir() {
            return Err(Die {
                code: ENOENT,
                message: format!("{} does not exist", args[0]),
            });
        }
        match command {
            "init" => init(dir, stdout),
            "sign" => sign(dir, &args[0], rest, Usage::Client, stdin, stdout),
            "sign-server" => sign(dir, &args[0], rest, Usage::Server, stdin, stdout),
            _ => Err(die(format!("Unknown command {command}"))),
        }
    })();
    match result {
        Ok(()) => 0,
        Err(d) => {
            let _ = stdout.flush();
            let _ = writeln!(stderr, "bbstored-certs: {}", d.message);
            d.code
        }
    }
}

fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), Die> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if private {
        opts.mode(0o600);
    }
    opts.open(path)
        .and_then(|mut f| f.write_all(contents))
        .map_err(|e| die_errno(format!("Can't write {}: {e}", path.display()), &e))
}

/// Days from now until 2^31 seconds after the epoch, as 0.13 computes the roots'
/// lifetime ("the best we can do for now").
fn root_days() -> i64 {
    ((1i64 << 31) - issue::now()) / 86400
}

fn init(dir: &Path, stdout: &mut dyn Write) -> Result<(), Die> {
    use std::os::unix::fs::DirBuilderExt;
    let mut b = std::fs::DirBuilder::new();
    b.mode(0o700);
    for sub in ["", "roots", "keys", "servers", "clients"] {
        b.create(dir.join(sub))
            .map_err(|e| die_errno("Failed to create directory structure", &e))?;
    }
    for entity in ["client", "server"] {
        let key = issue::generate_key(KeyKind::Rsa2048)
            .map_err(|e| die(format!("Couldn't generate private key. ({e})")))?;
        write_file(
            &dir.join(format!("keys/{entity}RootKey.pem")),
            key.pem.as_bytes(),
            true,
        )?;
        let cn = format!("Backup system {entity} root");
        let csr = issue::make_csr(&cn, &key.key_pair)
            .map_err(|e| die(format!("Certificate request wasn't created. ({e})")))?;
        write_file(
            &dir.join(format!("keys/{entity}RootCSR.pem")),
            csr.as_bytes(),
            false,
        )?;
        let _ = stdout.write_all(b"\n\n");
        let ca = Ca::new_root(&cn, key.key_pair, root_days())
            .map_err(|e| die(format!("Couldn't generate root certificate. ({e})")))?;
        write_file(
            &dir.join(format!("roots/{entity}CA.pem")),
            ca.pem().as_bytes(),
            false,
        )?;
        write_file(&dir.join(format!("roots/{entity}CA.srl")), b"00\n", false)?;
    }
    Ok(())
}

/// 0.13 reads the CN out of `openssl req -text` with `CN\s?=\s?([-\.\w]+)`, so only
/// the leading run of those characters counts.
fn csr_common_name(csr: &Csr) -> Option<String> {
    let cn = csr.common_name.as_deref()?;
    let end = cn
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
        .unwrap_or(cn.len());
    (end > 0).then(|| cn[..end].to_string())
}

fn sign(
    dir: &Path,
    dir_arg: &str,
    rest: &[String],
    usage: Usage,
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
) -> Result<(), Die> {
    let csr_arg = rest.first().map(String::as_str).unwrap_or("");
    let csr_path = Path::new(csr_arg);
    if !csr_path.is_file() {
        return Err(Die {
            code: ENOENT,
            message: format!("{csr_arg} does not exist"),
        });
    }
    let bytes = std::fs::read(csr_path).map_err(|e| die_errno(format!("{csr_arg}: {e}"), &e))?;
    let csr = Csr::parse(&bytes).map_err(|e| die(format!("{csr_arg}: {e}")))?;
    let cn =
        csr_common_name(&csr).ok_or_else(|| die(format!("No subject found in CSR {csr_arg}")))?;

    let (entity, out_cert, prompt) = match usage {
        Usage::Client => {
            let acc = cn
                .strip_prefix("BACKUP-")
                .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| {
                    die("The certificate presented does not appear to be a backup client certificate")
                })?
                .to_string();
            // The file name must start with the same hex digits followed by '-'
            // (at the start or after a '/'), the first such match counting.
            if csr_file_account(csr_arg).as_deref() != Some(acc.as_str()) {
                return Err(die(format!(
                    "Certificate request filename does not match name in certificate ({cn})"
                )));
            }
            let prompt = format!(
                "\nThis certificate is for backup account\n\n   {acc}\n\n\
                 Ensure this matches the account number you are expecting. The filename is\n\n   \
                 {csr_arg}\n\nwhich should include this account number, and additionally, you should check\n\
                 that you received it from the right person.\n\n\
                 Signing the wrong certificate compromises the security of your backup system.\n\n\
                 Would you like to sign this certificate? (type 'yes' to confirm)\n"
            );
            (
                "client",
                format!("{dir_arg}/clients/{acc}-cert.pem"),
                prompt,
            )
        }
        Usage::Server => {
            if !cn
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return Err(die("Invalid server name"));
            }
            let prompt = format!(
                "\nThis certificate is for backup server\n\n   {cn}\n\n\
                 Signing the wrong certificate compromises the security of your backup system.\n\n\
                 Would you like to sign this certificate? (type 'yes' to confirm)\n"
            );
            ("server", format!("{dir_arg}/servers/{cn}-cert.pem"), prompt)
        }
    };
    let _ = stdout.write_all(prompt.as_bytes());
    let _ = stdout.flush();
    let mut line = String::new();
    let _ = stdin.read_line(&mut line);
    if line.strip_suffix('\n').unwrap_or(&line).to_lowercase() != "yes" {
        let _ = stdout.write_all(b"CANCELLED\n");
        return Ok(());
    }

    let ca = load_ca(dir, entity)?;
    let srl_path = dir.join(format!("roots/{entity}CA.srl"));
    let serial = next_serial(&srl_path)?;
    let mut spec = LeafSpec::new(&cn, usage, &serial, SIGN_DAYS);
    spec.subject = csr
        .subject_dn()
        .map_err(|e| die(format!("Signing failed ({e})")))?;
    if usage == Usage::Server {
        spec.subject_alt_names = issue::server_san(&cn);
    }
    let der = ca
        .sign(&spec, csr.public_key())
        .map_err(|e| die(format!("Signing failed ({e})")))?;
    write_file(
        &srl_path,
        format!("{}\n", serial_hex(&serial)).as_bytes(),
        false,
    )?;
    write_file(
        Path::new(&out_cert),
        issue::pem_encode("CERTIFICATE", &der).as_bytes(),
        false,
    )?;
    let tail = match usage {
        Usage::Client => format!(
            "\n\nCertificate signed.\n\nSend the files\n\n   {out_cert}\n   {dir_arg}/roots/serverCA.pem\n\n\
             to the client.\n\n"
        ),
        Usage::Server => format!(
            "\n\nCertificate signed.\n\nInstall the files\n\n   {out_cert}\n   {dir_arg}/roots/clientCA.pem\n\n\
             on the server.\n\n"
        ),
    };
    let _ = stdout.write_all(tail.as_bytes());
    Ok(())
}

/// The hex digits in front of the first `-` that starts the file name or follows a
/// `/` (0.13: `m/(\A|\/)([A-Fa-f0-9]+)-/`).
fn csr_file_account(path: &str) -> Option<String> {
    let b = path.as_bytes();
    for start in 0..b.len() {
        if start != 0 && b[start - 1] != b'/' {
            continue;
        }
        let len = b[start..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        if len > 0 && b.get(start + len) == Some(&b'-') {
            return Some(path[start..start + len].to_string());
        }
    }
    None
}

fn load_ca(dir: &Path, entity: &str) -> Result<Ca, Die> {
    let cert_path = dir.join(format!("roots/{entity}CA.pem"));
    let key_path = dir.join(format!("keys/{entity}RootKey.pem"));
    let fail = |p: &PathBuf, e: String| die(format!("Signing failed ({}: {e})", p.display()));
    let certs =
        super::load::certificates(&cert_path).map_err(|e| fail(&cert_path, e.to_string()))?;
    let key_pem = std::fs::read(&key_path).map_err(|e| fail(&key_path, e.to_string()))?;
    let key = issue::key_from_pem(&key_pem).map_err(|e| fail(&key_path, e.to_string()))?;
    Ca::from_parts(certs[0].clone(), key).map_err(|e| fail(&cert_path, e.to_string()))
}

/// Reads the serial file (hex, as OpenSSL writes it), returns the next serial as
/// INTEGER content bytes. A missing file starts at 1.
fn next_serial(path: &Path) -> Result<Vec<u8>, Die> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "00".to_string(),
        Err(e) => return Err(die_errno(format!("{}: {e}", path.display()), &e)),
    };
    let hex = text.trim();
    if hex.is_empty() || hex.len() > 80 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(die(format!("{}: not a serial number", path.display())));
    }
    // Big-endian bytes of the number, plus one.
    let padded = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex.to_string()
    };
    let mut n: Vec<u8> = (0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).unwrap_or(0))
        .collect();
    let mut carry = true;
    for b in n.iter_mut().rev() {
        if !carry {
            break;
        }
        let (v, c) = b.overflowing_add(1);
        *b = v;
        carry = c;
    }
    if carry {
        n.insert(0, 1);
    }
    while n.len() > 1 && n[0] == 0 {
        n.remove(0);
    }
    // INTEGER contents: a leading zero keeps it positive.
    if n[0] & 0x80 != 0 {
        n.insert(0, 0);
    }
    Ok(n)
}

/// As OpenSSL writes a serial file: upper-case hex, an even number of digits.
fn serial_hex(serial: &[u8]) -> String {
    let s: String = serial.iter().map(|b| format!("{b:02X}")).collect();
    let t = s.trim_start_matches("00");
    if t.is_empty() { "00".into() } else { t.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_count_like_openssl() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.srl");
        assert_eq!(next_serial(&p).unwrap(), [1]);
        for (before, after) in [("00", "01"), ("01", "02"), ("7F", "0080"), ("FF", "0100")] {
            std::fs::write(&p, format!("{before}\n")).unwrap();
            let s = next_serial(&p).unwrap();
            assert_eq!(
                s.iter().map(|b| format!("{b:02X}")).collect::<String>(),
                after,
                "{before}"
            );
        }
        assert_eq!(serial_hex(&[0, 0x80]), "80");
        assert_eq!(serial_hex(&[1]), "01");
        std::fs::write(&p, "zz\n").unwrap();
        assert!(next_serial(&p).is_err());
    }

    #[test]
    fn csr_file_names_like_013() {
        assert_eq!(csr_file_account("1234-csr.pem").as_deref(), Some("1234"));
        assert_eq!(
            csr_file_account("/tmp/x/ab12-csr.pem").as_deref(),
            Some("ab12")
        );
        assert_eq!(csr_file_account("x1234-csr.pem"), None);
        assert_eq!(csr_file_account("csr.pem"), None);
        // The first match wins, as with Perl's regex.
        assert_eq!(csr_file_account("12-dir/34-csr.pem").as_deref(), Some("12"));
    }

    #[test]
    fn usage_and_missing_dir() {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        assert_eq!(bbstored_certs(&[], &mut &b""[..], &mut o, &mut e), 1);
        assert!(String::from_utf8_lossy(&o).contains("bbstored certificates utility."));
        let args = ["/nonexistent/ca".to_string(), "sign".into(), "x".into()];
        let (mut o, mut e) = (Vec::new(), Vec::new());
        assert_eq!(bbstored_certs(&args, &mut &b""[..], &mut o, &mut e), 2);
        assert_eq!(
            String::from_utf8_lossy(&e),
            "bbstored-certs: /nonexistent/ca does not exist\n"
        );
    }
}
