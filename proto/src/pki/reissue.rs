//! What to tell an administrator whose certificate is signed with SHA-1 or MD5
//! (0.13's scripts signed with SHA-1 until 2019, so old installations have such
//! certificates, and rustls, like OpenSSL 3 at `SSLSecurityLevel` 2, refuses
//! them): the exact commands that re-issue it, keeping its key, with
//! `bbstored-certs` on the CA directory the installation already has.
//!
//! Owns only the wording. Knows nothing of parsing, trust or TLS.
//!
//! A new request comes first because the old one may be SHA-1 signed too
//! (Debian's boxbackup-server made its server request with `-sha1`), and
//! `bbstored-certs` refuses to sign such a request.

use std::path::Path;

use super::verify::Usage;

/// Shell-quotes `s` when it needs it (paths with spaces).
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:@,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The commands, one per line, indented. `cn` is the certificate's common name
/// (for a client `BACKUP-<account>`); `key_file` and `cert_file` are the files the
/// config names, or `None` for a peer's certificate, whose files we cannot know.
pub(crate) fn commands(
    usage: Usage,
    cn: Option<&str>,
    key_file: Option<&Path>,
    cert_file: Option<&Path>,
) -> String {
    let key = key_file.map_or_else(
        || "<its PrivateKeyFile>".to_string(),
        |p| quote(&p.display().to_string()),
    );
    let cert = cert_file.map_or_else(
        || "<its CertificateFile>".to_string(),
        |p| quote(&p.display().to_string()),
    );
    let (cn, csr, sign, issued) = match usage {
        Usage::Client => {
            let account = cn
                .and_then(|c| c.strip_prefix("BACKUP-"))
                .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_hexdigit()))
                .unwrap_or("<account>");
            (
                format!("BACKUP-{account}"),
                format!("{account}-csr.pem"),
                "sign",
                format!("clients/{account}-cert.pem"),
            )
        }
        Usage::Server => {
            let name = cn
                .filter(|c| {
                    !c.is_empty()
                        && c.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                })
                .unwrap_or("<server name>");
            (
                name.to_string(),
                format!("{name}-csr.pem"),
                "sign-server",
                format!("servers/{name}-cert.pem"),
            )
        }
    };
    format!(
        "    openssl req -new -sha256 -key {key} -subj {subj} -out {csr}\n    \
         bbstored-certs CERTS-DIR {sign} {csr}\n    \
         cp CERTS-DIR/{issued} {cert}\n\
         where CERTS-DIR is the certificate directory made by `bbstored-certs CERTS-DIR init` \
         (0.13's or ours; run the second step where it is), then restart the daemon",
        subj = quote(&format!("/CN={cn}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_commands_name_the_account_and_files() {
        let t = commands(
            Usage::Client,
            Some("BACKUP-1234567"),
            Some(Path::new("/etc/boxbackup/bbackupd/1234567-key.pem")),
            Some(Path::new("/etc/boxbackup/bbackupd/1234567-cert.pem")),
        );
        assert!(t.contains(
            "openssl req -new -sha256 -key /etc/boxbackup/bbackupd/1234567-key.pem \
             -subj /CN=BACKUP-1234567 -out 1234567-csr.pem"
        ));
        assert!(t.contains("bbstored-certs CERTS-DIR sign 1234567-csr.pem"));
        assert!(t.contains(
            "cp CERTS-DIR/clients/1234567-cert.pem /etc/boxbackup/bbackupd/1234567-cert.pem"
        ));
    }

    #[test]
    fn server_commands_and_peer_placeholders() {
        let t = commands(Usage::Server, Some("backup.example.org"), None, None);
        assert!(t.contains("-key <its PrivateKeyFile> -subj /CN=backup.example.org"));
        assert!(t.contains("sign-server backup.example.org-csr.pem"));
        assert!(t.contains("servers/backup.example.org-cert.pem <its CertificateFile>"));
        // A name bbstored-certs would refuse is not put into a command line.
        let t = commands(Usage::Server, Some("x; rm -rf /"), None, None);
        assert!(t.contains("/CN=<server name>"), "{t}");
        let t = commands(
            Usage::Client,
            Some("BACKUP-1"),
            Some(Path::new("/a b/k.pem")),
            None,
        );
        assert!(t.contains("-key '/a b/k.pem'"), "{t}");
    }
}
