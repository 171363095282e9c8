//! The documentation source of the client's tools and bbackupd.conf: one
//! [`Page`] each, from which `--help`, the man pages and the shell completions
//! are rendered (`bb_format::clidoc`). Adding an option is one line in
//! `options`; a bbackupquery command's option letters must match the command
//! table of `query::parse` (a test checks).
//!
//! The 0.13 usage texts printed on a bad command line, and bbackupquery's
//! in-shell `help` (`query::help_text`), stay 0.13's words; tests check that
//! they and these pages name the same options. Must not know how the tools work.

use bb_format::clidoc::{Command, KeyBlock, Opt, Page, Value, item, operand};

const LEVELS: Value = Value::Choice(&["error", "warning", "notice", "info", "trace", "everything"]);

/// The console logging options the tools share with 0.13's.
const LOG: [Opt; 8] = [
    Opt::short('q', "Run more quietly: reduce the verbosity by one; can repeat."),
    Opt::short('Q', "Run at minimum verbosity: log nothing."),
    Opt::short('v', "Run more verbosely: increase the verbosity by one; can repeat."),
    Opt::short('V', "Run at maximum verbosity: log everything."),
    Opt::short('W', "Set the verbosity.").arg("level", LEVELS),
    Opt::short('t', "Tag console output with this marker.").arg("tag", Value::Text),
    Opt::short('T', "Timestamp console output."),
    Opt::short('U', "Timestamp console output with microseconds."),
];

pub const BBACKUPD: Page = Page {
    name: "bbackupd",
    summary: "the Box Backup client daemon",
    synopsis: &["[options] [config file]", "--once [options] [config file]"],
    description: "bbackupd backs up the locations of its bbackupd.conf(5) to a bbstored(8) store, encrypting everything on this machine with the account's keys file. In lazy mode (AutomaticBackup = yes) it scans every UpdateStoreInterval seconds and uploads files that have not changed for MinimumFileAge; in snapshot mode it waits for bbackupctl(8) sync. Files that changed are uploaded as diffs against their stored version; renamed files are moved on the store, not uploaded again; deleted files are marked deleted and kept as old versions until housekeeping needs the space.

Without -F, -D or --once it starts itself again in the background and returns. SIGHUP reloads the configuration; SIGTERM stops after the current file.",
    options: &[
        Opt::short('c', "Use this configuration file. Without -c, the last argument is the configuration file, or else /etc/boxbackup/bbackupd.conf.").arg("file", Value::File),
        Opt::short('D', "Debugging mode: do not fork (the same as -F here)."),
        Opt::short('F', "Do not fork into the background."),
        Opt::short('k', "Keep the console open after forking and keep logging to it."),
        Opt::short('K', "Accepted for compatibility."),
        Opt::short('o', "Log to this file as well (at maximum verbosity unless -O).").arg("file", Value::File),
        Opt::short('O', "Set the verbosity of the -o file.").arg("level", LEVELS),
        Opt::short('L', "Accepted for compatibility (0.13's source-file log filter).").arg("file", Value::File),
        Opt::short('N', "Accepted for compatibility."),
        Opt::short('P', "Accepted for compatibility."),
        LOG[0], LOG[1], LOG[2], LOG[3], LOG[4], LOG[5], LOG[6], LOG[7],
        Opt::long("once", "Run one backup in the foreground, then exit with the status below (ours)."),
        Opt::both('h', "help", "Show this help and exit."),
    ],
    operands: &[operand("config file", Value::File, "The configuration file, if -c is not given.")],
    exit_status: &[
        item("0", "Started in the background, stopped by SIGTERM, or (--once) the run finished."),
        item("1", "The daemon failed, or (--once) the run failed."),
        item("2", "A bad command line or configuration."),
        item("3", "(--once) The store is not the one this client backed up to: the store marker does not match, nothing was changed."),
    ],
    environment: &[item("BBACKUPD_LOG", "A tracing filter (e.g. bb_client=debug) instead of the verbosity options.")],
    files: &[item("/etc/boxbackup/bbackupd.conf", "The configuration, see bbackupd.conf(5).")],
    examples: &[
        item("bbackupd -F", "Run in the foreground, as a service manager would:"),
        item("bbackupd --once /etc/boxbackup/bbackupd.conf", "One backup run from cron:"),
    ],
    see_also: &["bbackupd.conf(5)", "bbackupctl(8)", "bbackupquery(8)", "bbackupd-config(8)", "bbackupfs(1)", "bbstored(8)"],
    ..Page::EMPTY
};

pub const BBACKUPCTL: Page = Page {
    name: "bbackupctl",
    summary: "control a running bbackupd",
    synopsis: &["[options] <command>"],
    description: "bbackupctl talks to bbackupd(8) through the CommandSocket of bbackupd.conf(5); only the user bbackupd runs as may do so.",
    options: &[
        Opt::short('c', "Use this bbackupd.conf (default /etc/boxbackup/bbackupd.conf).").arg("file", Value::File),
        LOG[0], LOG[1], LOG[2], LOG[3], LOG[4], LOG[5], LOG[6], LOG[7],
        Opt::short('L', "Accepted for compatibility.").arg("file", Value::File),
        Opt::short('N', "Accepted for compatibility."),
        Opt::short('P', "Accepted for compatibility."),
        Opt::short('w', "Accepted for compatibility."),
        Opt::long("json", "With status: print bbackupd's status file as JSON (ours)."),
        Opt::both('h', "help", "Show this help and exit (as the only argument)."),
    ],
    operands: &[operand("command", Value::Command, "What to ask bbackupd, see below.")],
    commands: &[
        Command::new("status", "", "Report the daemon's state without changing anything; ours then prints the last run, its counts, what is pending and the next run from bbackupd's status file (docs/operations.md)."),
        Command::new("sync", "", "Start a backup run now."),
        Command::new("force-sync", "", "Start a backup run now, even if SyncAllowScript says no."),
        Command::new("reload", "", "Reload the configuration."),
        Command::new("terminate", "", "Stop the daemon."),
        Command::new("wait-for-sync", "", "Wait until the next run starts, then exit."),
        Command::new("wait-for-end", "", "Wait until the next run finishes, then exit."),
        Command::new("sync-and-wait", "", "Start a run and wait until it finishes."),
    ],
    exit_status: &[item("0", "Done."), item("1", "No CommandSocket, no daemon, or the command failed."), item("2", "A bad command line.")],
    examples: &[item("bbackupctl sync-and-wait", "Back up now (snapshot mode) and wait for the end:")],
    see_also: &["bbackupd(8)", "bbackupd.conf(5)"],
    ..Page::EMPTY
};

const NO_OPTS: &[Opt] = &[];

pub const BBACKUPQUERY: Page = Page {
    name: "bbackupquery",
    summary: "browse, restore and compare Box Backup backups",
    synopsis: &["[options] [command]..."],
    description: "bbackupquery logs in to the store of a bbackupd.conf(5) and runs the commands given as arguments, then reads more from standard input, with line editing at a terminal. A command of several words is one argument: bbackupquery \"list -R home\" quit.

The store is read-only unless -w. Names are decrypted on this machine with the keys file; the store never sees them. In the shell, help <command> shows 0.13's help texts.",
    options: &[
        Opt::short('w', "Read/write mode: allow undelete and delete."),
        Opt::short('E', "Disable interactive line editing."),
        Opt::short('c', "Use this bbackupd.conf. Without -c, /etc/boxbackup/bbackupd.conf.").arg("file", Value::File),
        Opt::short('o', "Write log output to this file as well as the console.").arg("file", Value::File),
        Opt::short('O', "Set the verbosity of the -o file.").arg("level", LEVELS),
        Opt::short('l', "Accepted for compatibility (0.13's protocol log file).").arg("file", Value::File),
        Opt::short('L', "Accepted for compatibility (0.13's source-file log filter).").arg("file", Value::File),
        Opt::short('N', "Truncate the -o file at startup."),
        Opt::short('P', "Show the process id in console output."),
        LOG[0], LOG[1], LOG[2], LOG[3], LOG[4], LOG[5], LOG[6], LOG[7],
        Opt::both('h', "help", "Show this help and exit (as the only argument)."),
    ],
    operands: &[operand("command...", Value::Command, "Commands to run before reading standard input; end with quit to exit.")],
    commands: &[
        Command::new("list", "[options] [directory-name]", "List a directory of the store (ls is the same).").options(&[
            Opt::short('R', "Recurse into directories."),
            Opt::short('d', "Show deleted files and directories."),
            Opt::short('o', "Show old versions."),
            Opt::short('I', "Do not show object ids."),
            Opt::short('F', "Do not show flags."),
            Opt::short('t', "Show modification times in local time."),
            Opt::short('T', "Show modification times in GMT."),
            Opt::short('a', "Show the attribute modification time instead."),
            Opt::short('s', "Show sizes in blocks used on the server."),
            Opt::short('h', "Show attribute hashes."),
            Opt::short('D', "Sort directories together with files."),
            Opt::short('i', "Sort by object id."),
            Opt::short('S', "Sort by size."),
            Opt::short('U', "Do not sort."),
            Opt::short('r', "Accepted (0.13's table has it)."),
        ]),
        Command::new("cd", "[-d] [-o] <directory-name>", "Change the store directory.").options(&[
            Opt::short('d', "Consider deleted directories."),
            Opt::short('o', "Consider old versions of directories."),
        ]),
        Command::new("pwd", "", "Print the store directory.").options(NO_OPTS),
        Command::new("lcd", "<local-directory-name>", "Change the local directory."),
        Command::new("sh", "<shell command>", "Run a shell command."),
        Command::new("get", "[-i] <object-filename> [<local-filename>]", "Restore one file; -i takes a hex object id (old and deleted versions).").options(&[
            Opt::short('i', "The file is given as a hex object id."),
        ]),
        Command::new("compare", "[options] -a | -l <location> | <store-dir> <local-dir>", "Compare the store with local files: by default contents against the stored checksums and attributes.").options(&[
            Opt::short('a', "Compare all locations."),
            Opt::short('l', "Compare one location of the configuration."),
            Opt::short('c', "Set the return code: 1 same, 2 different, 3 error."),
            Opt::short('q', "Quick: contents against checksums only, no attributes."),
            Opt::short('f', "Full: download every file and compare byte for byte (0.13's default)."),
            Opt::short('A', "Ignore attribute differences."),
            Opt::short('E', "Ignore the exclusion settings."),
            Opt::short('Q', "Accepted (0.13's table has it)."),
        ]),
        Command::new("restore", "[-drif] <directory-name> [<local-directory-name>]", "Restore a directory; the local directory must not exist unless resuming.").options(&[
            Opt::short('d', "Restore a deleted directory, or deleted files inside."),
            Opt::short('r', "Resume an interrupted restore."),
            Opt::short('i', "The directory is given as a hex object id."),
            Opt::short('f', "Carry on after errors."),
        ]),
        Command::new("getobject", "<object-id> <local-filename>", "Save a raw (encrypted) object, for debugging."),
        Command::new("usage", "[-m]", "Show the account's space on the server.").options(&[
            Opt::short('m', "Machine-readable output."),
        ]),
        Command::new("undelete", "[-i] <directory-name>", "Remove the deleted flag (needs -w).").options(&[
            Opt::short('i', "The object is given as a hex object id."),
        ]),
        Command::new("delete", "[-i] <file-name>", "Set the deleted flag (needs -w).").options(&[
            Opt::short('i', "The object is given as a hex object id."),
        ]),
        Command::new("help", "[command]", "Show 0.13's help for a command."),
        Command::new("quit", "", "End the session (exit is the same)."),
    ],
    exit_status: &[
        item("0", "The last command succeeded."),
        item("1", "compare -c: no differences; or a bad option, an unusable configuration, a failed connection."),
        item("2", "compare -c: differences found; or a bad -O level."),
        item("3", "compare -c: an error."),
        item("4", "The last command failed."),
    ],
    files: &[item("/etc/boxbackup/bbackupd.conf", "The configuration, see bbackupd.conf(5).")],
    examples: &[
        item("bbackupquery \"list -R home\" quit", "List a location recursively:"),
        item("bbackupquery \"restore home /tmp/home-restored\" quit", "Restore a location into a new directory:"),
        item("bbackupquery \"compare -ac\" quit", "Check the whole backup, with the result in the exit status:"),
    ],
    see_also: &["bbackupd(8)", "bbackupd.conf(5)", "bbackupfs(1)"],
    ..Page::EMPTY
};

pub const BBACKUPD_CONFIG: Page = Page {
    name: "bbackupd-config",
    summary: "set up a Box Backup client",
    synopsis: &["config-dir backup-mode account-num server-hostname working-dir [backup directories]"],
    description: "bbackupd-config writes config-dir/bbackupd.conf, a new keys file, a private key and a certificate request for the account, and a notify script that mails the user on problems. Send the request to the store's administrator (bbstored-certs sign) and install the certificates where it says. Keep a copy of the keys file off this machine: without it nothing can be restored.",
    options: &[Opt::both('h', "help", "Show this help and exit (as the only argument).")],
    operands: &[
        operand("config-dir", Value::Dir, "Usually /etc/boxbackup."),
        operand("backup-mode", Value::Choice(&["lazy", "snapshot"]), "lazy: back up continuously, files over a given age; snapshot: back up when told by bbackupctl sync."),
        operand("account-num", Value::Text, "The account number in hex, from the server's administrator."),
        operand("server-hostname", Value::Text, "The store server."),
        operand("working-dir", Value::Dir, "bbackupd's DataDirectory, usually /var/bbackupd."),
        operand("backup directories...", Value::Dir, "The directories to back up."),
    ],
    exit_status: &[item("0", "Done."), item("1", "Bad parameters, or a file could not be written.")],
    examples: &[item("bbackupd-config /etc/boxbackup lazy 1234 backup.example.com /var/bbackupd /home /etc", "Back up /home and /etc to account 0x1234:")],
    see_also: &["bbackupd(8)", "bbackupd.conf(5)", "bbstored-certs(8)"],
    ..Page::EMPTY
};

pub const BBACKUPD_CONF: Page = Page {
    name: "bbackupd.conf",
    section: 5,
    summary: "configuration of the Box Backup client",
    description: "bbackupd(8), bbackupctl(8), bbackupquery(8) and bbackupfs(1) read /etc/boxbackup/bbackupd.conf unless given another file; bbackupd-config(8) writes it. A file whose name ends in .toml is read as TOML with the same keys (blocks as tables, a repeated key as an array).",
    keys: &[
        KeyBlock { name: "", intro: "One key per line, Key = value; blocks are a name on a line of its own and then { ... }. # starts a comment. Numbers may be decimal, 0x hex or 0 octal; yes and no are booleans.", keys: crate::config::ROOT_KEYS },
        KeyBlock { name: "Server", intro: "The Server block: the daemon's process.", keys: crate::config::SERVER_KEYS },
        KeyBlock { name: "BackupLocations", intro: "Inside BackupLocations, one block per location; its name is the location's name on the store. The Exclude and AlwaysInclude keys may repeat; AlwaysInclude wins over Exclude. Paths are full local paths.", keys: crate::config::LOCATION_KEYS },
    ],
    extra: &[("EXAMPLE", "  StoreHostname = backup.example.com
  AccountNumber = 0x1234
  KeysFile = /etc/boxbackup/bbackupd/1234-FileEncKeys.raw
  CertificateFile = /etc/boxbackup/bbackupd/1234-cert.pem
  PrivateKeyFile = /etc/boxbackup/bbackupd/1234-key.pem
  TrustedCAsFile = /etc/boxbackup/bbackupd/serverCA.pem
  DataDirectory = /var/bbackupd
  UpdateStoreInterval = 3600
  MinimumFileAge = 21600
  MaxUploadWait = 86400
  FileTrackingSizeThreshold = 65536
  DiffingUploadSizeThreshold = 8192
  CommandSocket = /var/bbackupd/bbackupd.sock

  Server
  {
  	PidFile = /var/bbackupd/bbackupd.pid
  }

  BackupLocations
  {
  	home
  	{
  		Path = /home
  		ExcludeDirsRegex = ^/home/[^/]+/\\.cache$
  	}
  }")],
    see_also: &["bbackupd(8)", "bbackupd-config(8)", "bbackupctl(8)", "bbackupquery(8)"],
    ..Page::EMPTY
};

/// Every page of this crate, in the order the generator writes them.
pub const PAGES: &[&Page] = &[&BBACKUPD, &BBACKUPCTL, &BBACKUPQUERY, &BBACKUPD_CONFIG, &BBACKUPD_CONF];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse::COMMANDS;

    /// Every command of bbackupquery's table is documented with exactly its
    /// option letters, and nothing else is documented.
    #[test]
    fn query_commands_match_the_table() {
        for (name, letters, _) in COMMANDS {
            if *name == "exit" {
                continue;
            }
            let doc = BBACKUPQUERY.commands.iter().find(|c| c.name == *name);
            let doc = doc.unwrap_or_else(|| panic!("{name} is not documented"));
            let mut want: Vec<char> = letters.chars().collect();
            let mut have: Vec<char> = doc.options.iter().filter_map(|o| o.short).collect();
            want.sort_unstable();
            have.sort_unstable();
            assert_eq!(have, want, "options of {name}");
        }
        for c in BBACKUPQUERY.commands {
            assert!(COMMANDS.iter().any(|(n, _, _)| n == &c.name), "{} is not a command", c.name);
        }
    }

    /// bbackupctl's documented commands are the ones its usage text lists.
    #[test]
    fn ctl_commands_match_the_usage() {
        for c in BBACKUPCTL.commands {
            assert!(crate::ctl::USAGE.contains(&format!("  {} ", c.name)), "{}", c.name);
        }
        let listed = crate::ctl::USAGE.split("Commands are:\n").nth(1).unwrap_or("").lines().count();
        assert_eq!(listed, BBACKUPCTL.commands.len());
    }
}

#[cfg(test)]
mod option_tests {
    use super::*;

    fn args_for(page: &Page, c: char) -> (bool, Vec<String>) {
        let doc = page.options.iter().find(|o| o.short == Some(c));
        let mut args = vec![format!("-{c}")];
        if let Some(Opt { arg: Some((_, v)), .. }) = doc {
            args.push(match v {
                Value::Choice(c) => c[0].to_string(),
                _ => "x".into(),
            });
        }
        (doc.is_some(), args)
    }

    /// bbackupd's and bbackupctl's parsers accept exactly the documented letters.
    #[test]
    fn daemon_and_ctl_options_match_their_parsers() {
        for c in ('a'..='z').chain('A'..='Z') {
            let (documented, args) = args_for(&BBACKUPD, c);
            let ok = crate::daemon::options::parse(args).is_ok();
            assert_eq!(ok, documented, "bbackupd -{c}");
            let (documented, mut args) = args_for(&BBACKUPCTL, c);
            args.push("sync".into());
            // -h is help only as the sole argument (see the binary).
            let ok = crate::ctl::parse(args).is_ok() || c == 'h';
            assert_eq!(ok, documented, "bbackupctl -{c}");
        }
    }

    /// bbackupquery's parser accepts exactly the documented letters.
    #[test]
    fn query_options_match_the_parser() {
        for c in ('a'..='z').chain('A'..='Z') {
            let (documented, args) = args_for(&BBACKUPQUERY, c);
            let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
            let ok = crate::query::cli::parse_options(&args).is_ok() || c == 'h';
            assert_eq!(ok, documented, "bbackupquery -{c}");
        }
    }
}
