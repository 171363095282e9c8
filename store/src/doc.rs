//! The documentation source of the server's tools and config files: one
//! [`Page`] each, from which `--help`, the man pages and the shell completions
//! are rendered (`bb_format::clidoc`). Adding an option is one line in `options`.
//!
//! The 0.13 usage texts that the tools print on a bad command line stay where
//! they are, word for word; tests check that they and these pages name the
//! same options. Must not know how the tools work.

use bb_format::clidoc::{Command, KeyBlock, Opt, Page, Value, item, operand};

const LEVELS: Value = Value::Choice(&["error", "warning", "notice", "info", "trace", "everything"]);

const DEFAULT_CONFIG: &str = crate::server::config::DEFAULT_CONFIG;

pub const BBSTORED: Page = Page {
    name: "bbstored",
    summary: "the Box Backup store server",
    synopsis: &["[options] [config file]"],
    description: "bbstored keeps the encrypted backups of bbackupd clients, one account each, on the disc sets of raidfile.conf(5). Clients log in with a TLS certificate whose common name BACKUP-<account> names their account; the server never sees their keys or file names.

Without -F or -D it starts itself again in the background and returns. SIGHUP reloads the configuration, raidfile.conf and the accounts; SIGTERM stops accepting connections and lets running sessions finish their command. Housekeeping (removing old and deleted files of accounts over their soft limit) runs every TimeBetweenHousekeeping seconds.",
    options: &[
        Opt::short('c', "Use this configuration file. Without -c, the last argument is the configuration file, or else /etc/boxbackup/bbstored.conf.").arg("file", Value::File),
        Opt::short('D', "Debugging mode: do not fork (the same as -F here)."),
        Opt::short('F', "Do not fork into the background; log to the console."),
        Opt::short('k', "Keep logging to the console after detaching (as well as the default syslog)."),
        Opt::short('K', "Accepted for compatibility."),
        Opt::short('o', "Log to this file as well (appended to, with times).").arg("file", Value::File),
        Opt::short('O', "The level of the -o file (default everything).").arg("level", LEVELS),
        Opt::short('L', "Accepted for compatibility (0.13's source-file log filter).").arg("file", Value::File),
        Opt::short('N', "Accepted for compatibility."),
        Opt::short('P', "Accepted for compatibility."),
        Opt::short('q', "Run more quietly: reduce the verbosity by one; can repeat."),
        Opt::short('Q', "Run at minimum verbosity."),
        Opt::short('t', "Tag console output with this marker.").arg("tag", Value::Text),
        Opt::short('T', "Timestamp console output."),
        Opt::short('U', "Timestamp console output (0.13: with microseconds)."),
        Opt::short('v', "Run more verbosely: increase the verbosity by one; can repeat."),
        Opt::short('V', "Run at maximum verbosity."),
        Opt::short('W', "Set the verbosity.").arg("level", LEVELS),
        Opt::both('h', "help", "Show this help and exit."),
    ],
    operands: &[operand("config file", Value::File, "The configuration file, if -c is not given.")],
    exit_status: &[
        item("0", "Started (in the background), or stopped by SIGTERM."),
        item("1", "The configuration could not be loaded, a listening address could not be bound, or the server failed."),
        item("2", "A bad command line."),
    ],
    environment: &[item("BBSTORED_LOG", "A tracing filter (e.g. bb_store=debug) instead of the verbosity options.")],
    files: &[
        item(DEFAULT_CONFIG, "The configuration, see bbstored.conf(5)."),
        item("/etc/boxbackup/raidfile.conf", "The disc sets, see raidfile.conf(5)."),
        item("/etc/boxbackup/bbstored/accounts.txt", "The accounts (AccountDatabase)."),
    ],
    examples: &[
        item("bbstored -F /etc/boxbackup/bbstored.conf", "Run in the foreground, as a service manager would:"),
        item("kill -HUP $(cat /var/run/bbstored.pid)", "Reload the configuration and the accounts:"),
    ],
    see_also: &["bbstored.conf(5)", "raidfile.conf(5)", "bbstoreaccounts(8)", "bbstored-config(8)", "bbstored-certs(8)", "raidfile-config(8)", "bbackupd(8)"],
    ..Page::EMPTY
};

pub const BBSTOREACCOUNTS: Page = Page {
    name: "bbstoreaccounts",
    summary: "manage the accounts of a Box Backup store",
    synopsis: &["[-c config_file] [-m] action account_id [args]"],
    description: "bbstoreaccounts creates, inspects, checks and deletes the accounts of the store that a bbstored.conf(5) describes. Account numbers are in hex, without 0x. Limits are in blocks, or with a suffix: B blocks, M megabytes, G gigabytes.

It can run while bbstored runs: commands that change an account take its lock, and fail if a client holds it.",
    options: &[
        Opt::short('c', "Use this bbstored.conf (default /etc/boxbackup/bbstored.conf).").arg("config_file", Value::File),
        Opt::short('m', "Machine-readable output for info (numbers without units)."),
        Opt::short('W', "Show log messages up to this level.").arg("level", LEVELS),
        Opt::both('h', "help", "Show this help and exit (as the only argument)."),
    ],
    operands: &[
        operand("action", Value::Command, "What to do: one of the actions below."),
        operand("account_id", Value::Text, "The account number in hex."),
        operand("args...", Value::Text, "The action's arguments."),
    ],
    commands_title: "ACTIONS",
    commands: &[
        Command::new("create", "<account> <discnum> <softlimit> <hardlimit>", "Create the account on disc set discnum of raidfile.conf(5) with these limits."),
        Command::new("info", "[-m] <account>", "Show the account's usage and limits; -m for machine-readable output."),
        Command::new("enabled", "<account> <yes|no>", "Allow or refuse new logins to the account."),
        Command::new("setlimit", "<account> <softlimit> <hardlimit>", "Change the account's limits."),
        Command::new("name", "<account> <new name>", "Set the account's name (cosmetic)."),
        Command::new("delete", "<account> [yes]", "Delete the account and its data; asks first unless yes is given."),
        Command::new("check", "<account> [fix] [quiet]", "Check the account for errors; fix repairs what can be repaired, quiet prints less."),
        Command::new("housekeep", "<account>", "Run housekeeping on the account now."),
    ],
    exit_status: &[
        item("0", "Success (check: no errors left)."),
        item("1", "The action failed: a bad configuration, an unknown account, a locked account, errors found by check."),
        item("2", "A bad command line: the usage text is printed."),
    ],
    examples: &[
        item("bbstoreaccounts create 1234 0 4G 5G", "Create account 0x1234 on disc set 0 with a 4 GB soft and a 5 GB hard limit:"),
        item("bbstoreaccounts check 1234 fix", "Check and repair it:"),
    ],
    files: &[item(DEFAULT_CONFIG, "The server configuration that names the accounts database and raidfile.conf.")],
    see_also: &["bbstored(8)", "bbstored.conf(5)", "raidfile.conf(5)"],
    ..Page::EMPTY
};

pub const RAIDFILE_CONFIG: Page = Page {
    name: "raidfile-config",
    summary: "write a raidfile.conf for a Box Backup store",
    synopsis: &["config-dir block-size dir0 [dir1 dir2]"],
    description: "raidfile-config writes config-dir/raidfile.conf with one disc set, number 0. With one directory the set has no RAID; with three, files are striped over the three with parity, and a store survives the loss of any one of them.",
    options: &[Opt::both('h', "help", "Show this help and exit (as the only argument).")],
    operands: &[
        operand("config-dir", Value::Dir, "Where to write raidfile.conf, usually /etc/boxbackup."),
        operand("block-size", Value::Text, "A power of two, usually the block or fragment size of the file system."),
        operand("dir0", Value::Dir, "The first directory (the only one without RAID)."),
        operand("dir1", Value::Dir, "The second directory, on another disc."),
        operand("dir2", Value::Dir, "The third directory, on a third disc."),
    ],
    exit_status: &[item("0", "raidfile.conf written."), item("1", "Bad parameters, or raidfile.conf exists already or cannot be written.")],
    examples: &[item("raidfile-config /etc/boxbackup 4096 /var/lib/bbstored", "One directory, no RAID:")],
    files: &[item("/etc/boxbackup/raidfile.conf", "What it writes, see raidfile.conf(5).")],
    see_also: &["raidfile.conf(5)", "bbstored-config(8)", "bbstored(8)"],
    ..Page::EMPTY
};

pub const BBSTORED_CERTS: Page = Page {
    name: "bbstored-certs",
    summary: "the certificate authority of a Box Backup store",
    synopsis: &["certs-dir init", "certs-dir sign certificate-name", "certs-dir sign-server certificate-name"],
    description: "bbstored-certs keeps two CAs in certs-dir: one signs the server's certificate, the other the clients'. Keep certs-dir off the server: whoever has it can issue certificates.

Signing shows the request's common name and asks for confirmation. A client's common name must be BACKUP-<account in hex>.",
    options: &[Opt::both('h', "help", "Show this help and exit (as the only argument).")],
    operands: &[
        operand("certs-dir", Value::Dir, "The CA directory (init creates it: it must not exist)."),
        operand("command", Value::Command, "init, sign or sign-server."),
        operand("certificate-name", Value::File, "The certificate request (CSR) to sign."),
    ],
    commands: &[
        Command::new("init", "", "Create certs-dir with the root keys and certificates of both CAs."),
        Command::new("sign", "certificate-name", "Sign a client's certificate request."),
        Command::new("sign-server", "certificate-name", "Sign the server's certificate request."),
    ],
    exit_status: &[item("0", "Done."), item("1", "Bad parameters."), item("other", "As Perl's die in 0.13: the errno of a failed file operation, or 255. Answering anything but yes when signing exits 0.")],
    examples: &[
        item("bbstored-certs ca init", "Create the CAs:"),
        item("bbstored-certs ca sign 1234-csr.pem", "Sign the request bbackupd-config made for account 0x1234:"),
    ],
    see_also: &["bbstored-config(8)", "bbackupd-config(8)", "bbstored(8)"],
    ..Page::EMPTY
};

pub const BBSTORED_CONFIG: Page = Page {
    name: "bbstored-config",
    summary: "set up a Box Backup store server",
    synopsis: &["config-dir server-hostname username [raidfile-config]"],
    description: "bbstored-config writes config-dir/bbstored.conf, an empty accounts database, the server's private key and a certificate request, and checks that the directories of raidfile.conf exist and belong to username. Sign the request with bbstored-certs sign-server and put the certificates where it says.",
    options: &[Opt::both('h', "help", "Show this help and exit (as the only argument).")],
    operands: &[
        operand("config-dir", Value::Dir, "Usually /etc/boxbackup."),
        operand("server-hostname", Value::Text, "The name clients use to connect to this server."),
        operand("username", Value::Text, "The user the server runs as."),
        operand("raidfile-config", Value::File, "A raidfile.conf other than config-dir/raidfile.conf."),
    ],
    exit_status: &[item("0", "Done."), item("1", "Bad parameters."), item("other", "A failed check, as Perl's die in 0.13: 255, or the errno of a failed mkdir.")],
    examples: &[item("bbstored-config /etc/boxbackup backup.example.com bbstored", "Set up the server of backup.example.com, running as bbstored:")],
    see_also: &["bbstored(8)", "bbstored-certs(8)", "raidfile-config(8)", "bbstored.conf(5)"],
    ..Page::EMPTY
};

const CONFIG_SYNTAX: &str = "One key per line, Key = value; blocks are a name on a line of its own and then { ... }. # starts a comment. Numbers may be decimal, 0x hex or 0 octal; yes and no are booleans.";

pub const BBSTORED_CONF: Page = Page {
    name: "bbstored.conf",
    section: 5,
    summary: "configuration of the Box Backup store server",
    description: "bbstored(8) and bbstoreaccounts(8) read /etc/boxbackup/bbstored.conf unless given another file; bbstored-config(8) writes it. A file whose name ends in .toml is read as TOML with the same keys (the Server block a table).",
    keys: &[
        KeyBlock { name: "", intro: CONFIG_SYNTAX, keys: crate::server::config::ROOT_KEYS },
        KeyBlock { name: "Server", intro: "The Server block: the network side.", keys: crate::server::config::SERVER_KEYS },
    ],
    extra: &[("EXAMPLE", "  RaidFileConf = /etc/boxbackup/raidfile.conf
  AccountDatabase = /etc/boxbackup/bbstored/accounts.txt
  TimeBetweenHousekeeping = 900

  Server
  {
  	PidFile = /var/run/bbstored.pid
  	User = bbstored
  	ListenAddresses = inet:backup.example.com
  	CertificateFile = /etc/boxbackup/bbstored/backup.example.com-cert.pem
  	PrivateKeyFile = /etc/boxbackup/bbstored/backup.example.com-key.pem
  	TrustedCAsFile = /etc/boxbackup/bbstored/clientCA.pem
  }")],
    see_also: &["bbstored(8)", "raidfile.conf(5)", "bbstored-config(8)", "bbstoreaccounts(8)"],
    ..Page::EMPTY
};

pub const RAIDFILE_CONF: Page = Page {
    name: "raidfile.conf",
    section: 5,
    summary: "the disc sets of a Box Backup store",
    description: "raidfile.conf describes the disc sets bbstored(8) keeps accounts on: one block per set, any name. raidfile-config(8) writes it. A set with three different directories stripes each file over them with parity (0.13's userland RAID); a set whose three directories are the same has no RAID.",
    keys: &[KeyBlock { name: "disc set", intro: "Each block (e.g. disc0 { ... }) is one disc set with these keys, all required.", keys: bb_raid::config::SET_KEYS }],
    extra: &[("EXAMPLE", "  disc0
  {
  	SetNumber = 0
  	BlockSize = 4096
  	Dir0 = /var/lib/bbstored/0
  	Dir1 = /var/lib/bbstored/1
  	Dir2 = /var/lib/bbstored/2
  }")],
    see_also: &["raidfile-config(8)", "bbstored.conf(5)", "bbstored(8)"],
    ..Page::EMPTY
};

/// Every page of this crate, in the order the generator writes them.
pub const PAGES: &[&Page] = &[
    &BBSTORED,
    &BBSTOREACCOUNTS,
    &RAIDFILE_CONFIG,
    &BBSTORED_CERTS,
    &BBSTORED_CONFIG,
    &BBSTORED_CONF,
    &RAIDFILE_CONF,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::options::parse;

    /// bbstored's parser accepts exactly the documented letters.
    #[test]
    fn bbstored_options_match_the_parser() {
        for c in ('a'..='z').chain('A'..='Z') {
            let doc = BBSTORED.options.iter().find(|o| o.short == Some(c));
            let mut args = vec![format!("-{c}")];
            if let Some(Opt { arg: Some((_, v)), .. }) = doc {
                args.push(match v {
                    Value::Choice(c) => c[0].to_string(),
                    _ => "x".into(),
                });
            }
            assert_eq!(parse(args).is_ok(), doc.is_some(), "-{c}");
        }
        assert_eq!(parse(vec!["--help".to_string()]), Ok(None));
    }
}
