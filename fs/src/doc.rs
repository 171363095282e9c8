//! The documentation source of bbackupfs: the [`Page`] from which `--help`,
//! bbackupfs(1) and the shell completions are rendered (`bb_format::clidoc`).
//! Adding an option is one line in `options` (and its arm in `mount::parse`;
//! a test keeps the two in step). Must not know how the mount works.

use bb_format::clidoc::{Opt, Page, Value, item, operand};

pub const BBACKUPFS: Page = Page {
    name: "bbackupfs",
    section: 1,
    summary: "mount a Box Backup store read-only",
    synopsis: &["[-c bbackupd.conf] [-f] [-o option[,option...]] [--location name] [--cache-dir dir | --no-disk-cache] [-v] mountpoint"],
    description: "bbackupfs mounts the Box Backup account of a bbackupd.conf(5) read-only at mountpoint through FUSE, decrypting on this machine with the configuration's KeysFile. Restore is cp -a or rsync -aX, verify is diff -r, attributes are stat and getfattr. Unmount with fusermount3 -u mountpoint (or SIGINT or SIGTERM in the foreground).

Without -f it starts itself again in the background and returns once the mount is up.",
    options: &[
        Opt::short('c', "The bbackupd.conf to read (default /etc/boxbackup/bbackupd.conf; 0.13 syntax, or TOML for a file ending in .toml).").arg("file", Value::File),
        Opt::short('f', "Stay in the foreground."),
        Opt::long("location", "Mount only this location's current tree at mountpoint, so that diff -r SOURCE mountpoint works directly.").arg("name", Value::Text),
        Opt::long("cache-dir", "Where the metadata cache lives (default $XDG_CACHE_HOME/bbackupfs or ~/.cache/bbackupfs).").arg("dir", Value::Dir),
        Opt::long("no-disk-cache", "Keep no metadata on disc."),
        Opt::short('v', "Log more (to stderr); -vv more still."),
        Opt::short('o', "Comma-separated mount options, see MOUNT OPTIONS.").arg("options", Value::Choice(&["allow_other", "allow_root", "auto_unmount", "noexec", "nosuid", "nodev", "noatime", "fsname=", "subtype=", "connections=", "threads=", "ttl=", "timeout=", "cache_mb="])),
        Opt::both('h', "help", "Show this help and exit."),
        Opt::both('V', "version", "Show the version and exit."),
    ],
    operands: &[operand("mountpoint", Value::Dir, "An empty directory to mount on.")],
    extra: &[
        ("LAYOUT", "  current/<location>/...    the newest version of every file and directory
                            that is not deleted
  deleted/<location>/...    deleted files and directories in their places
                            (directories that are not deleted appear too, so
                            that what was deleted below them can be reached)
  versions/<location>/<path of a file>/
                            one directory per file name, with one entry per
                            stored version (current, old and deleted), named
                            YYYY-MM-DDTHH-MM-SSZ_<object id in hex> by its
                            modification time (UTC): they sort oldest first

Where two entries would get the same name, the newest keeps it and the others get ~<object id in hex> appended."),
        ("MOUNT OPTIONS", "  allow_other, allow_root, auto_unmount, noexec, nosuid, nodev, noatime,
  fsname=NAME, subtype=NAME    as for any FUSE mount
  connections=N    store connections (default 4)
  threads=N        threads serving FUSE requests (default 2)
  ttl=SECONDS      how long a directory listing is trusted (default 60)
  timeout=SECONDS  network timeout (default 60); a read that fails gets EIO
  cache_mb=N       memory for caches, in MiB (default 96)

rw is refused: bbackupfs is read-only."),
    ],
    exit_status: &[
        item("0", "Mounted (in the background), or unmounted cleanly (in the foreground)."),
        item("1", "The mount failed: the configuration, the store, the mountpoint."),
        item("2", "A bad command line."),
    ],
    environment: &[item("BBACKUPFS_LOG", "A tracing filter (e.g. bb_fs=debug) instead of -v.")],
    examples: &[
        item("bbackupfs -c /etc/boxbackup/bbackupd.conf /mnt/backup", "Mount the account:"),
        item("cp -a /mnt/backup/current/home/alice/notes.txt /tmp/", "Copy a file back:"),
        item("fusermount3 -u /mnt/backup", "Unmount:"),
    ],
    see_also: &["bbackupd.conf(5)", "bbackupquery(8)", "fusermount3(1)"],
    ..Page::EMPTY
};
