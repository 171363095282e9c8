//! `bbstored-config`: 0.13's server setup script (a Perl script calling `openssl`)
//! with its command line, checks, messages, exit statuses and files, making the key
//! and the certificate request in-process.
//!
//! ```text
//! bbstored-config config-dir server-hostname username [raidfile-config]
//!   config-dir/bbstored.conf                       (always rewritten)
//!   config-dir/bbstored/accounts.txt               (empty, if absent)
//!   config-dir/bbstored/<server>-key.pem           (RSA 2048, PKCS#8, 0600, if absent)
//!   config-dir/bbstored/<server>-csr.pem           (CN=<server>, if absent)
//! ```
//!
//! Owns: the checks before anything is written (the host name resolves, the
//! raidfile.conf exists, the user exists and is not root, the user can write every
//! `DirN` of the raidfile.conf), the layout above, the text of bbstored.conf and the
//! closing instructions. Must not know: how keys or requests are encoded
//! (`bb_proto::pki::issue`), or what bbstored.conf means (`server::config`).
//!
//! Where we differ from 0.13, on purpose:
//! * the request is signed with SHA-256; 0.13 asked `openssl req` for SHA-1, which
//!   our own certificate checks (and OpenSSL 3 at security level 2) refuse later;
//! * no warning about `OPENSSL_CONF`: we do not run `openssl`;
//! * the closing instructions name the `bbstored` installed beside this tool, where
//!   0.13 printed a fixed `/usr/local/sbin/bbstored`;
//! * the user is looked up in `/etc/passwd` only (0.13's `getpwnam` also asked NSS);
//! * a failure to write accounts.txt is an error (0.13 ignored it).
//!
//! Perl's `die` messages go to stderr as `bbstored-config: <message>` with exit
//! status 255 (or the errno of a failed `mkdir`), where Perl appended `at ... line N.`

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bb_proto::pki::issue::{self, KeyKind};

use crate::server::config::DEFAULT_CONFIG;

const USAGE: &str = "
Setup bbstored config utility.

Bad command line parameters.
Usage:
    bbstored-config config-dir server-hostname username [raidfile-config]

Parameters:
    config-dir       is usually /etc/boxbackup
    server-hostname  is the hostname that clients will use to connect to
                     this server
    username         is the user to run the server under
    raidfile-config  is optional. Use if you have a non-standard
                     raidfile.conf file.

";

/// What the tool learns from the machine, passed in so tests can vary it.
#[derive(Debug, Clone)]
pub struct Context {
    /// Whether the effective user is root (0.13 only warns when it is not).
    pub is_root: bool,
    /// The user database to look the server's user up in.
    pub passwd: PathBuf,
    /// The bbstored the closing instructions tell the user to start.
    pub bbstored: PathBuf,
}

impl Context {
    /// The running system's: the effective uid, `/etc/passwd`, and the `bbstored`
    /// beside the running executable (plain `bbstored`, found on `PATH`, if the
    /// executable's directory is unknown).
    pub fn from_system() -> Context {
        let bbstored = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("bbstored")))
            .unwrap_or_else(|| PathBuf::from("bbstored"));
        Context {
            is_root: rustix::process::geteuid().is_root(),
            passwd: PathBuf::from("/etc/passwd"),
            bbstored,
        }
    }
}

/// A failure with the exit status the Perl script would have given.
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

/// `die` right after a failed system call: Perl exits with `$!`.
fn die_errno(message: impl Into<String>, err: &std::io::Error) -> Die {
    Die {
        code: err
            .raw_os_error()
            .filter(|&c| c > 0 && c < 256)
            .unwrap_or(255),
        message: message.into(),
    }
}

/// Runs the tool; returns the exit status.
pub fn run(args: &[String], ctx: &Context, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let result = setup(args, ctx, out);
    let _ = out.flush();
    match result {
        Ok(code) => code,
        Err(d) => {
            let _ = writeln!(err, "bbstored-config: {}", d.message);
            d.code
        }
    }
}

fn io(e: std::io::Error) -> Die {
    die_errno(format!("writing to stdout: {e}"), &e)
}

/// The steps of the script, in its order; `Ok(status)` for its plain `exit`s.
fn setup(args: &[String], ctx: &Context, out: &mut dyn Write) -> Result<i32, Die> {
    if !ctx.is_root {
        out.write_all(b"\nWARNING: this should be run as root\n\n")
            .map_err(io)?;
    }
    if args.len() < 3 {
        out.write_all(USAGE.as_bytes()).map_err(io)?;
        return Ok(1);
    }
    let (config_dir, server, username) = (&args[0], &args[1], &args[2]);
    let raidfile_config = match args.get(3) {
        Some(r) if !r.is_empty() => r.clone(),
        _ => format!("{config_dir}/raidfile.conf"),
    };

    // The name must resolve, though not necessarily to this machine.
    if !resolves(server) {
        return Err(die(format!(
            "Server '{server}' not found. (check server name, test DNS lookup failed.)"
        )));
    }

    if !Path::new(&raidfile_config).is_file() {
        write!(
            out,
            "The RaidFile configuration file {raidfile_config} doesn't exist.\n\
             You may need to create it with raidfile-config.\n\
             Won't configure bbstored without it.\n"
        )
        .map_err(io)?;
        return Ok(1);
    }

    if username == "root" {
        return Err(die("You shouldn't run bbstored as root"));
    }
    // 0.13 took uid 0 to mean "no such user", so another uid-0 name is refused too.
    let uid = std::fs::read(&ctx.passwd)
        .ok()
        .and_then(|p| passwd_uid(&p, username))
        .unwrap_or(0);
    if uid == 0 {
        return Err(die(format!("User {username} doesn't exist")));
    }

    let raidconf = std::fs::read(&raidfile_config)
        .map_err(|e| die_errno(format!("Can't open {raidfile_config}"), &e))?;
    for dir in raid_dirs(&raidconf) {
        let mut dir = dir.to_vec();
        let mut backup = dir.clone();
        backup.extend_from_slice(b"/backup");
        if Path::new(std::ffi::OsStr::from_bytes(&backup)).exists() {
            dir = backup;
        }
        out.write_all(b"Checking permissions on ").map_err(io)?;
        out.write_all(&dir).map_err(io)?;
        out.write_all(b"\n").map_err(io)?;
        if !user_can_write(Path::new(std::ffi::OsStr::from_bytes(&dir)), uid) {
            out.write_all(username.as_bytes()).map_err(io)?;
            out.write_all(b" doesn't appear to have the necessary permissions on ")
                .map_err(io)?;
            out.write_all(&dir).map_err(io)?;
            out.write_all(
                b"\nEither adjust permissions, or create a directory 'backup' inside the\n\
                  directory specified in raidfile.conf which is writable.\n",
            )
            .map_err(io)?;
            return Ok(1);
        }
    }

    let bbstored_dir = format!("{config_dir}/bbstored");
    let private_key = format!("{bbstored_dir}/{server}-key.pem");
    let certificate_request = format!("{bbstored_dir}/{server}-csr.pem");
    let certificate = format!("{bbstored_dir}/{server}-cert.pem");
    let ca_root_cert = format!("{bbstored_dir}/clientCA.pem");
    let config_file = format!("{config_dir}/bbstored.conf");
    let accounts_file = format!("{bbstored_dir}/accounts.txt");

    write!(
        out,
        "
Setup bbstored config utility.

Configuration:
   Writing configuration file: {config_file}
   Writing empty accounts file: {accounts_file}
   Server hostname: {server}
   RaidFile config: {raidfile_config}

"
    )
    .map_err(io)?;

    if !Path::new(config_dir).is_dir() {
        writeln!(out, "Creating {config_dir}...").map_err(io)?;
        make_dir(config_dir)?;
    }
    if !Path::new(&bbstored_dir).is_dir() {
        writeln!(out, "Creating {bbstored_dir}").map_err(io)?;
        make_dir(&bbstored_dir)?;
    }

    if !Path::new(&accounts_file).is_file() {
        writeln!(out, "Creating blank accounts file").map_err(io)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&accounts_file)
            .map_err(|e| die_errno(format!("Can't create {accounts_file}: {e}"), &e))?;
    }

    if !Path::new(&private_key).is_file() {
        writeln!(out, "Generating private key...").map_err(io)?;
        // Flushed first so the message is seen during the (slow-ish) generation.
        out.flush().map_err(io)?;
        let key = issue::generate_key(KeyKind::Rsa2048)
            .map_err(|e| die(format!("Couldn't generate private key. ({e})")))?;
        write_file(&private_key, key.pem.as_bytes(), 0o600)
            .map_err(|e| die(format!("Couldn't generate private key. ({e})")))?;
    }

    if !Path::new(&certificate_request).is_file() {
        let csr = std::fs::read(&private_key)
            .map_err(|e| e.to_string())
            .and_then(|pem| issue::key_from_pem(&pem).map_err(|e| e.to_string()))
            .and_then(|key| issue::make_csr(server, &key).map_err(|e| e.to_string()))
            .and_then(|csr| {
                write_file(&certificate_request, csr.as_bytes(), 0o666).map_err(|e| e.to_string())
            });
        // 0.13 printed this after openssl's prompts, whether or not it worked.
        out.write_all(b"\n\n").map_err(io)?;
        if let Err(e) = csr {
            return Err(die(format!("Certificate request wasn't created. ({e})")));
        }
    }

    writeln!(out, "Writing configuration file {config_file}").map_err(io)?;
    let conf = config_text(
        &raidfile_config,
        &accounts_file,
        username,
        server,
        &certificate,
        &private_key,
        &ca_root_cert,
    );
    write_file(&config_file, conf.as_bytes(), 0o666)
        .map_err(|e| die_errno("Can't open config file for writing", &e))?;

    let daemon_args = if config_file == DEFAULT_CONFIG {
        String::new()
    } else {
        format!(" {config_file}")
    };
    write!(
        out,
        "
===================================================================

bbstored basic configuration complete.

What you need to do now...

1) Sign {certificate_request}
   using the bbstored-certs utility.

2) Install the server certificate and root CA certificate as
      {certificate}
      {ca_root_cert}

3) You may wish to read the configuration file
      {config_file}
   and adjust as appropraite.

4) Create accounts with bbstoreaccounts

5) Start the backup store daemon with the command
      {bbstored}{daemon_args}
   in /etc/rc.local, or your local equivalent.

===================================================================

",
        bbstored = ctx.bbstored.display()
    )
    .map_err(io)?;
    Ok(0)
}

/// bbstored.conf as 0.13's script writes it (a Box Backup built with
/// SSLSecurityLevel support, as Debian's is).
pub fn config_text(
    raidfile_config: &str,
    accounts_file: &str,
    username: &str,
    server: &str,
    certificate: &str,
    private_key: &str,
    ca_root_cert: &str,
) -> String {
    format!(
        "
RaidFileConf = {raidfile_config}
AccountDatabase = {accounts_file}

# Uncomment this line to see exactly what commands are being received from clients.
# ExtendedLogging = yes

# scan all accounts for files which need deleting every 15 minutes.

TimeBetweenHousekeeping = 900

Server
{{
\tPidFile = /var/run/bbstored.pid
\tUser = {username}
\tListenAddresses = inet:{server}
\tCertificateFile = {certificate}
\tPrivateKeyFile = {private_key}
\tTrustedCAsFile = {ca_root_cert}
\t# Box Backup compiled with support for SSLSecurityLevel
\tSSLSecurityLevel = 2
}}
"
    )
}

fn resolves(host: &str) -> bool {
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()
        .map(|mut a| a.next().is_some())
        .unwrap_or(false)
}

fn make_dir(dir: &str) -> Result<(), Die> {
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(dir)
        .map_err(|e| die_errno(format!("Can't create {dir}"), &e))
}

/// Creates or truncates `path`; `mode` before the umask, as `open(2)` takes it.
fn write_file(path: &str, contents: &[u8], mode: u32) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(contents))
}

/// The uid of `name` in a passwd(5) file, if it has an entry.
pub fn passwd_uid(passwd: &[u8], name: &str) -> Option<u32> {
    passwd.split(|&b| b == b'\n').find_map(|line| {
        let mut fields = line.split(|&b| b == b':');
        if fields.next()? != name.as_bytes() {
            return None;
        }
        let uid = fields.nth(1)?;
        std::str::from_utf8(uid).ok()?.trim().parse().ok()
    })
}

/// Whether `uid` can write `dir`, by 0.13's rule: the owner needs rwx for the
/// user, anyone else rwx for others (group permissions are not counted). A
/// directory that cannot be stat'ed fails.
fn user_can_write(dir: &Path, uid: u32) -> bool {
    let Ok(m) = std::fs::metadata(dir) else {
        return false;
    };
    let need = if m.uid() == uid { 0o700 } else { 0o007 };
    m.mode() & need == need
}

/// The directories named by raidfile.conf lines, found as 0.13's script finds them:
/// the first `Dir<digit> = value` anywhere in a line (comments included, every
/// occurrence, duplicates too), the value running to the end of the line.
pub fn raid_dirs(conf: &[u8]) -> Vec<&[u8]> {
    conf.split(|&b| b == b'\n').filter_map(dir_value).collect()
}

/// Perl's `\s` on a byte string.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// `m/Dir\d\s*=\s*(.+)/` on one line without its newline.
fn dir_value(line: &[u8]) -> Option<&[u8]> {
    (0..line.len()).find_map(|start| {
        let rest = line[start..].strip_prefix(b"Dir")?;
        let (&digit, rest) = rest.split_first()?;
        if !digit.is_ascii_digit() {
            return None;
        }
        let rest = &rest[rest.iter().take_while(|&&b| is_space(b)).count()..];
        let rest = rest.strip_prefix(b"=")?;
        let spaces = rest.iter().take_while(|&&b| is_space(b)).count();
        match (&rest[spaces..], spaces) {
            (value, _) if !value.is_empty() => Some(value),
            // Only spaces after '=': the greedy `\s*` gives its last one back to `.+`.
            (_, n) if n > 0 => Some(&rest[n - 1..]),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_dirs_as_the_perl_pattern_does() {
        let conf = b"disc0\n{\n\tSetNumber = 0\n\tDir0 = /a/b\n\tDir1=/c d \n# Dir2 = /old\n\
                     Dirx = /no\n\tDir2 = \n\tDir3 =\nxDir4 y Dir5 = /z\n";
        let got: Vec<&[u8]> = raid_dirs(conf);
        assert_eq!(got, vec![&b"/a/b"[..], b"/c d ", b"/old", b" ", b"/z"]);
    }

    #[test]
    fn looks_users_up_in_passwd() {
        let p = b"root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/bin/false\n\
                  bad:x:notanumber:0::/:\nshort\n";
        assert_eq!(passwd_uid(p, "nobody"), Some(65534));
        assert_eq!(passwd_uid(p, "root"), Some(0));
        assert_eq!(passwd_uid(p, "bad"), None);
        assert_eq!(passwd_uid(p, "short"), None);
        assert_eq!(passwd_uid(p, "nob"), None);
    }

    fn ctx(dir: &Path, is_root: bool) -> Context {
        let passwd = dir.join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0::/:\ntoor:x:0:0::/:\nsrv:x:4242:4242::/:\n",
        )
        .unwrap();
        Context {
            is_root,
            passwd,
            bbstored: PathBuf::from("/opt/bb/bbstored"),
        }
    }

    fn go(args: &[&str], ctx: &Context) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&args, ctx, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn refusals() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path(), false);
        let (code, out, _) = go(&["a", "b"], &c);
        assert_eq!(code, 1);
        assert!(out.starts_with("\nWARNING: this should be run as root\n\n\nSetup"));
        let etc = d.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        let etc = etc.to_str().unwrap();
        let (code, out, _) = go(&[etc, "127.0.0.1", "srv"], &c);
        assert_eq!(code, 1);
        assert!(out.contains("raidfile.conf doesn't exist"), "{out}");
        let raid = d.path().join("r.conf");
        let raid_s = raid.to_str().unwrap();
        let dir = d.path().join("disc");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&raid, format!("Dir0 = {}\n", dir.display())).unwrap();
        for (user, msg) in [
            ("root", "You shouldn't run bbstored as root"),
            ("toor", "User toor doesn't exist"),
            ("ghost", "User ghost doesn't exist"),
        ] {
            let (code, _, err) = go(&[etc, "127.0.0.1", user, raid_s], &c);
            assert_eq!(
                (code, err.trim()),
                (255, &*format!("bbstored-config: {msg}"))
            );
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let (code, out, _) = go(&[etc, "127.0.0.1", "srv", raid_s], &c);
        assert_eq!(code, 1);
        assert!(
            out.contains("srv doesn't appear to have the necessary permissions on "),
            "{out}"
        );
        // Nothing is written before the checks pass.
        assert!(!d.path().join("etc/bbstored").exists());
    }

    #[test]
    fn writes_the_files() {
        let d = tempfile::tempdir().unwrap();
        let c = ctx(d.path(), true);
        let dir = d.path().join("disc");
        std::fs::create_dir(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let raid = d.path().join("r.conf");
        std::fs::write(&raid, format!("Dir0 = {}\n", dir.display())).unwrap();
        let etc = d.path().join("new");
        let etc_s = etc.to_str().unwrap();
        let (code, out, err) = go(&[etc_s, "127.0.0.1", "srv", raid.to_str().unwrap()], &c);
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(out.contains(&format!("Creating {etc_s}...\n")), "{out}");
        assert!(out.contains(&format!("/opt/bb/bbstored {etc_s}/bbstored.conf\n")));
        let conf = crate::server::config::ServerConfig::load(&etc.join("bbstored.conf")).unwrap();
        assert_eq!(conf.user.as_deref(), Some("srv"));
        assert_eq!(conf.raidfile_conf, raid);
        let csr = std::fs::read(etc.join("bbstored/127.0.0.1-csr.pem")).unwrap();
        let csr = issue::Csr::parse(&csr).unwrap();
        assert_eq!(csr.common_name.as_deref(), Some("127.0.0.1"));
        let key = std::fs::metadata(etc.join("bbstored/127.0.0.1-key.pem")).unwrap();
        assert_eq!(key.mode() & 0o777, 0o600);
        // A second run keeps the key, request and accounts and only rewrites the config.
        let before = std::fs::read(etc.join("bbstored/127.0.0.1-key.pem")).unwrap();
        let (code, out, _) = go(&[etc_s, "127.0.0.1", "srv", raid.to_str().unwrap()], &c);
        assert_eq!(code, 0);
        assert!(
            !out.contains("Creating") && !out.contains("Generating"),
            "{out}"
        );
        let after = std::fs::read(etc.join("bbstored/127.0.0.1-key.pem")).unwrap();
        assert_eq!(before, after);
    }
}
