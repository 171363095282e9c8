//! `bbackupd-config`: sets up a client as 0.13's Perl script does: a private key
//! and certificate request for `BACKUP-<account>`, the 1024-byte keys file, the
//! NotifySysadmin.sh script and bbackupd.conf, with the same command line, the
//! same printed text, the same files and the same exit codes.
//!
//! Owns: the tool's checks, messages and file contents. Key and request
//! generation is bb-proto's `pki::issue` (RSA-2048, what 0.13's `openssl genrsa
//! 2048` makes; the request is SHA-256 signed with only the CN, as `openssl req`
//! makes it from the script's answers). Must not know the daemon.
//!
//! Differs from the script on purpose: no `openssl` is run (so its prompts on
//! stderr and the OPENSSL_CONF warning are gone); the keys file is created
//! mode 0600 rather than by the umask; when `whereis` finds no sendmail the script
//! writes a broken `sendmail:` command into NotifySysadmin.sh, we write
//! `sendmail`; errors the script `die`s with are printed as
//! `bbackupd-config: <message>` instead of Perl's `at ... line N.` suffix, with
//! the same exit status (the failing call's errno, else 255).

mod template;

use std::io::Write;
use std::net::ToSocketAddrs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use bb_proto::pki::issue;

/// 0.13's usage text (printed on stdout, exit 1).
pub const USAGE: &str = "
Setup bbackupd config utility.

Bad command line parameters.
Usage:
    bbackupd-config config-dir backup-mode account-num server-hostname
        working-dir [backup directories]

Parameters:
    config-dir          is usually /etc/boxbackup
    backup-mode         is lazy or snapshot:
        lazy mode       runs continously, uploading files over a specified age
        snapshot mode   uploads a snapshot of the filesystem when instructed
                        explicitly, using bbackupctl sync
    account-num (hexdecimal) and server-hostname
                        are supplied by the server administrator
    working-dir         is usually /var/bbackupd
    backup directories  is list of directories to back up

";

const DEFAULT_CONFIG: &str = "/etc/boxbackup/bbackupd.conf";

/// What the tool takes from the system, passed in so tests can fix it.
#[derive(Debug, Clone)]
pub struct Env {
    pub is_root: bool,
    /// `hostname`, for the notify script.
    pub hostname: String,
    /// `whoami`, the notify script's recipient.
    pub username: String,
    /// The sendmail command for the notify script.
    pub sendmail: String,
}

impl Env {
    /// The running system's values.
    pub fn from_system() -> Env {
        let uid = rustix::process::geteuid();
        Env {
            is_root: uid.is_root(),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim_end().to_string())
                .unwrap_or_else(|_| "localhost".into()),
            username: user_name(uid.as_raw()).unwrap_or_else(|| uid.as_raw().to_string()),
            sendmail: find_sendmail(),
        }
    }
}

/// The user name of `uid` from /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// Where `whereis sendmail` would find it first; `sendmail` (the script's last
/// ditch guess) otherwise.
fn find_sendmail() -> String {
    [
        "/usr/bin",
        "/usr/sbin",
        "/usr/lib",
        "/bin",
        "/sbin",
        "/etc",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/usr/local/lib",
    ]
    .iter()
    .map(|d| Path::new(d).join("sendmail"))
    .find(|p| p.exists())
    .map_or_else(|| "sendmail".into(), |p| p.display().to_string())
}

/// Replaces each `@NAME@` of `text` in one pass (a value containing `@` is
/// left alone).
fn fill(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let hit = values.iter().find_map(|(name, value)| {
            after
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix('@'))
                .map(|r| (*value, r))
        });
        match hit {
            Some((value, r)) => {
                out.push_str(value);
                rest = r;
            }
            None => {
                out.push('@');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The location name the script derives from a directory: drop the first
/// character, `/` becomes `-` (`/home/user` -> `home-user`).
pub fn location_name(dir: &str) -> String {
    let mut chars = dir.chars();
    chars.next();
    chars.as_str().replace('/', "-")
}

/// The files' paths, as the script names them.
#[derive(Debug, Clone)]
pub struct Paths {
    pub private_key: String,
    pub csr: String,
    pub certificate: String,
    pub ca: String,
    pub keys: String,
    pub config: String,
    pub notify: String,
}

impl Paths {
    pub fn new(config_dir: &str, account: &str) -> Paths {
        let sub = format!("{config_dir}/bbackupd");
        Paths {
            private_key: format!("{sub}/{account}-key.pem"),
            csr: format!("{sub}/{account}-csr.pem"),
            certificate: format!("{sub}/{account}-cert.pem"),
            ca: format!("{sub}/serverCA.pem"),
            keys: format!("{sub}/{account}-FileEncKeys.raw"),
            config: format!("{config_dir}/bbackupd.conf"),
            notify: format!("{sub}/NotifySysadmin.sh"),
        }
    }
}

/// bbackupd.conf as the script writes it.
pub fn render_config(
    paths: &Paths,
    lazy: bool,
    account: &str,
    server: &str,
    working_dir: &str,
    dirs: &[String],
) -> String {
    let values = [
        ("SERVER", server),
        ("ACCOUNT", account),
        ("KEYS", paths.keys.as_str()),
        ("CERT", paths.certificate.as_str()),
        ("KEY", paths.private_key.as_str()),
        ("CA", paths.ca.as_str()),
        ("WORKING", working_dir),
        ("NOTIFY", paths.notify.as_str()),
    ];
    let mut s = fill(template::CONF_HEAD, &values);
    s.push_str(template::CONF_SSL);
    s.push_str(if lazy {
        template::CONF_LAZY
    } else {
        template::CONF_SNAPSHOT
    });
    s.push_str(&fill(template::CONF_TAIL, &values));
    for d in dirs {
        s.push_str(&format!("\t{}\n\t{{\n\t\tPath = {d}\n", location_name(d)));
        if keys_inside(&paths.keys, d) {
            s.push_str(&format!("\t\tExcludeFile = {}\n", paths.keys));
        }
        s.push_str("\t}\n");
    }
    s.push_str("}\n\n");
    s
}

/// Whether the keys file lies inside `dir` (then the script excludes it).
fn keys_inside(keys: &str, dir: &str) -> bool {
    keys.as_bytes().starts_with(format!("{dir}/").as_bytes())
}

/// NotifySysadmin.sh as the script writes it.
pub fn render_notify(env: &Env, account: &str, server: &str) -> String {
    fill(
        template::NOTIFY,
        &[
            ("HOST", env.hostname.as_str()),
            ("USER", env.username.as_str()),
            ("SENDMAIL", env.sendmail.as_str()),
            ("ACCOUNT", account),
            ("SERVER", server),
        ],
    )
}

/// An error the script ends with through `die`.
struct Die {
    message: String,
    code: i32,
}

impl Die {
    fn new(message: impl Into<String>) -> Die {
        Die {
            message: message.into(),
            code: 255,
        }
    }

    fn io(message: impl Into<String>, e: &std::io::Error) -> Die {
        Die {
            message: message.into(),
            code: e
                .raw_os_error()
                .filter(|&c| c > 0 && c < 256)
                .unwrap_or(255),
        }
    }
}

/// Runs `bbackupd-config` with `args` (without the program name), printing to
/// `out` what the script prints and its `die` messages to `err`; returns the
/// exit status.
pub fn bbackupd_config(
    args: &[String],
    env: &Env,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    match run(args, env, out) {
        Ok(code) => code,
        Err(d) => {
            let _ = writeln!(err, "bbackupd-config: {}", d.message);
            d.code
        }
    }
}

fn usage(out: &mut dyn Write, error: &str) -> i32 {
    let _ = write!(out, "{USAGE}");
    if !error.is_empty() {
        let _ = write!(out, "=========\nERROR:\n{error}\n\n");
    }
    1
}

fn mkdir(path: &str, mode: u32) -> std::io::Result<()> {
    std::fs::DirBuilder::new().mode(mode).create(path)
}

fn is_dir(p: &str) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_dir())
}

fn run(args: &[String], env: &Env, out: &mut dyn Write) -> Result<i32, Die> {
    if !env.is_root {
        let _ = write!(out, "\nWARNING: this should be run as root\n\n");
    }
    if args.len() < 5 {
        return Ok(usage(out, ""));
    }
    let (config_dir, mode, account, server, working_dir) =
        (&args[0], &args[1], &args[2], &args[3], &args[4]);
    let dirs = &args[5..];
    if mode != "lazy" && mode != "snapshot" {
        return Ok(usage(
            out,
            "ERROR: backup mode must be 'lazy' or 'snapshot'",
        ));
    }
    if (server.as_str(), 0u16)
        .to_socket_addrs()
        .map_or(true, |mut a| a.next().is_none())
    {
        return Ok(usage(
            out,
            &format!(
                "Backup server specified as '{server}', but it could not found.\n(A test DNS lookup failed -- check arguments)"
            ),
        ));
    }
    if !working_dir.starts_with('/') {
        return Ok(usage(
            out,
            &format!("Working directory {working_dir} is not specified as an absolute path"),
        ));
    }
    let paths = Paths::new(config_dir, account);
    for d in dirs {
        if d == "/" {
            return Err(Die::new(
                "It is not recommended that you backup the root directory of your disc",
            ));
        }
        if !d.starts_with('/') {
            return Err(Die::new(format!(
                "Directory {d} is not specified as an absolute path"
            )));
        }
        match std::fs::metadata(d) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(Die::new(format!("{d} is not a directory"))),
            Err(e) => return Err(Die::io(format!("{d} is not a directory"), &e)),
        }
    }

    let _ = write!(
        out,
        "\nSetup bbackupd config utility.\n\nConfiguration:\n   Writing configuration file: {}\n   Account: {account}\n   Server hostname: {server}\n   Directories to back up:\n",
        paths.config
    );
    for d in dirs {
        let _ = writeln!(out, "      {d}");
    }
    let _ = write!(
        out,
        "\nNote: If other file systems are mounted inside these directories, then\nthey will NOT be backed up. You will have to create separate locations for\nany mounted filesystems inside your backup locations.\n\n"
    );

    if !is_dir(config_dir) {
        let _ = writeln!(out, "Creating {config_dir}...");
        mkdir(config_dir, 0o755).map_err(|e| Die::io(format!("Can't create {config_dir}"), &e))?;
    }
    let sub = format!("{config_dir}/bbackupd");
    if !is_dir(&sub) {
        let _ = writeln!(out, "Creating {sub}");
        mkdir(&sub, 0o700).map_err(|e| Die::io(format!("Can't create {sub}"), &e))?;
    }
    if !is_dir(working_dir) {
        let _ = writeln!(out, "Creating {working_dir}");
        mkdir(working_dir, 0o700).map_err(|e| {
            Die::io(
                format!("Couldn't create {working_dir} -- create this manually and try again"),
                &e,
            )
        })?;
    }

    make_key_and_csr(&paths, account, out)?;

    if !Path::new(&paths.keys).is_file() {
        let _ = writeln!(out, "Generating keys for file backup");
        write_keys_file(&paths.keys)
            .map_err(|e| Die::io("Couldn't generate file backup keys.", &e))?;
    }

    let _ = writeln!(out, "Writing notify script {}", paths.notify);
    std::fs::write(&paths.notify, render_notify(env, account, server))
        .map_err(|e| Die::io("Can't open for writing", &e))?;
    std::fs::set_permissions(&paths.notify, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Die::io(format!("Can't chmod {}", paths.notify), &e))?;

    let _ = writeln!(out, "Writing configuration file {}", paths.config);
    let lazy = mode == "lazy";
    let text = render_config(&paths, lazy, account, server, working_dir, dirs);
    for d in dirs {
        if keys_inside(&paths.keys, d) {
            let _ = write!(
                out,
                "\nNOTE: Keys file has been explicitly excluded from the backup.\n\n"
            );
        }
    }
    std::fs::write(&paths.config, text)
        .map_err(|e| Die::io("Can't open config file for writing", &e))?;

    print_next_steps(&paths, lazy, out);
    Ok(0)
}

/// The private key (kept if it exists) and the request for `BACKUP-<account>`.
fn make_key_and_csr(paths: &Paths, account: &str, out: &mut dyn Write) -> Result<(), Die> {
    let key_pair = if Path::new(&paths.private_key).is_file() {
        None
    } else {
        let _ = writeln!(out, "Generating private key...");
        let key = issue::generate_key(issue::KeyKind::Rsa2048)
            .map_err(|e| Die::new(format!("Couldn't generate private key. ({e})")))?;
        write_private(&paths.private_key, key.pem.as_bytes())
            .map_err(|e| Die::io("Couldn't generate private key.", &e))?;
        Some(key.key_pair)
    };
    if Path::new(&paths.csr).is_file() {
        return Ok(());
    }
    let key_pair = match key_pair {
        Some(k) => k,
        None => {
            let pem = std::fs::read(&paths.private_key)
                .map_err(|e| Die::io("Couldn't run openssl for CSR generation", &e))?;
            issue::key_from_pem(&pem)
                .map_err(|e| Die::new(format!("Certificate request wasn't created. ({e})")))?
        }
    };
    let csr = issue::make_csr(&format!("BACKUP-{account}"), &key_pair)
        .map_err(|e| Die::new(format!("Certificate request wasn't created. ({e})")))?;
    std::fs::write(&paths.csr, csr)
        .map_err(|e| Die::io("Certificate request wasn't created.", &e))?;
    let _ = write!(out, "\n\n");
    Ok(())
}

/// A new file readable by its owner only.
fn write_private(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// 1024 bytes from the OS's CSPRNG (the script: `openssl rand 1024`).
fn write_keys_file(path: &str) -> std::io::Result<()> {
    use rand::TryRngCore;
    let mut keys = [0u8; bb_format::keys::KEYS_FILE_LEN];
    rand::rngs::OsRng
        .try_fill_bytes(&mut keys)
        .map_err(std::io::Error::other)?;
    write_private(path, &keys)
}

fn print_next_steps(paths: &Paths, lazy: bool, out: &mut dyn Write) {
    let is_default = paths.config == DEFAULT_CONFIG;
    let daemon_args = if is_default {
        String::new()
    } else {
        format!(" {}", paths.config)
    };
    let ctl_args = if is_default {
        String::new()
    } else {
        format!(" -c {}", paths.config)
    };
    let _ = write!(
        out,
        "
===================================================================

bbackupd basic configuration complete.

What you need to do now...

1) Make a backup of {keys}
   This should be a secure offsite backup.
   Without it, you cannot restore backups. Everything else can
   be replaced. But this cannot.
   KEEP IT IN A SAFE PLACE, OTHERWISE YOUR BACKUPS ARE USELESS.

2) Send {csr}
   to the administrator of the backup server, and ask for it to
   be signed.

3) The administrator will send you two files. Install them as
      {cert}
      {ca}
   after checking their authenticity.

4) You may wish to read the configuration file
      {config}
   and adjust as appropriate.
   
   There are some notes in it on excluding files you do not
   wish to be backed up.

5) Review the script
      {notify}
   and check that it will email the right person when the store
   becomes full. This is important -- when the store is full, no
   more files will be backed up. You want to know about this.

6) Start the backup daemon with the command
      /usr/local/sbin/bbackupd{daemon_args}
   in /etc/rc.local, or your local equivalent.
   Note that bbackupd must run as root.
",
        keys = paths.keys,
        csr = paths.csr,
        cert = paths.certificate,
        ca = paths.ca,
        config = paths.config,
        notify = paths.notify,
    );
    if !lazy {
        let _ = write!(
            out,
            "
7) Set up a cron job to run whenever you want a snapshot of the
   file system to be taken. Run the command
      /usr/local/bin/bbackupctl -q{ctl_args} sync
"
        );
    }
    let _ = write!(
        out,
        "
===================================================================

Remember to make a secure, offsite backup of your backup keys,
as described in step 1 above. If you do not, you have no backups.

"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_one_pass() {
        assert_eq!(
            fill("a @X@ b @Y@ @Z@ c@", &[("X", "@Y@"), ("Y", "2")]),
            "a @Y@ b 2 @Z@ c@"
        );
    }

    #[test]
    fn location_names_as_the_script_makes_them() {
        assert_eq!(location_name("/home"), "home");
        assert_eq!(location_name("/tmp/bcx/home"), "tmp-bcx-home");
        assert_eq!(location_name("/home/"), "home-");
    }

    #[test]
    fn keys_inside_a_location() {
        assert!(keys_inside("/etc/box/bbackupd/k.raw", "/etc"));
        assert!(!keys_inside("/etc/box/bbackupd/k.raw", "/et"));
        assert!(!keys_inside("/etc/k.raw", "/etc/k.raw"));
    }
}
