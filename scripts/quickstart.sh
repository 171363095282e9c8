#!/usr/bin/env bash
# The quick start: a whole Box Backup set-up on this machine with our tools only
# (see README.md, "Quick start").
#
#   scripts/quickstart.sh [SOURCE_DIR]   build, set up (once), start bbstored, back up
#                                        SOURCE_DIR, list, compare, restore, diff
#   scripts/quickstart.sh stop           stop bbstored (and a bbackupd started by hand)
#   scripts/quickstart.sh clean          stop, then remove ./bb-quickstart
#
# Everything lives in ./bb-quickstart of the working directory: a single-disc
# RaidFile set (store/), a CA (ca/), the server's and client's configs, keys and
# certificates (etc/), bbackupd's state (work/), logs (logs/), the built-in sample
# (sample/, used when no SOURCE_DIR is given) and the restores (restore-<time>/).
# A second run reuses all of it, so it uploads only what changed.
#
# Environment:
#   BB_QUICKSTART_PROFILE  release (default) or debug: which cargo profile to build
#                          and run (the test suite uses debug, which it has built)
#   BB_QUICKSTART_PORT     the port for bbstored at set-up (default: 2201 if free)
#   CARGO_TARGET_DIR       honoured, as cargo does
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
qs=$PWD/bb-quickstart
etc=$qs/etc
logs=$qs/logs
account=1
server_name=localhost

# ---------------------------------------------------------------- reporting
current_step="starting"
current_log=""

say() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }

fail() {
    printf '\nquickstart: FAILED at step "%s": %s\n' "$current_step" "$*" >&2
    if [[ -n $current_log && -s $current_log ]]; then
        printf 'quickstart: the last lines of %s:\n' "$current_log" >&2
        tail -n 25 "$current_log" | sed 's/^/    /' >&2
    fi
    if server_running; then
        printf 'quickstart: bbstored is still running; "%s stop" stops it.\n' "$0" >&2
    fi
    exit 1
}

# Anything not run through `run` that fails still names its step.
trap 'rc=$?; trap - ERR; fail "command \"$BASH_COMMAND\" exited with status $rc (line $LINENO)"' ERR

# step NAME LOG: what the following commands do, and where their output goes.
step() {
    current_step=$1
    current_log=$2
    mkdir -p "$(dirname "$current_log")"
}

# run [-C DIR] [-i ANSWER] CMD...: runs CMD (in DIR, with ANSWER on stdin) with
# its output appended to the step's log.
run() {
    local dir=. answer=""
    while [[ $1 == -C || $1 == -i ]]; do
        if [[ $1 == -C ]]; then dir=$2; else answer=$2; fi
        shift 2
    done
    printf '\n$ %s\n' "$*" >>"$current_log"
    local rc=0
    if [[ -n $answer ]]; then
        (cd "$dir" && printf '%s\n' "$answer" | "$@") >>"$current_log" 2>&1 || rc=$?
    else
        (cd "$dir" && "$@" </dev/null) >>"$current_log" 2>&1 || rc=$?
    fi
    ((rc == 0)) || fail "$(basename "$1") exited with status $rc"
}

# ---------------------------------------------------------------- processes
# pid_of FILE NAME: the pid in FILE if that process is alive and is NAME.
pid_of() {
    local file=$1 name=$2 pid
    [[ -r $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid && -r /proc/$pid/comm ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
    echo "$pid"
}

server_running() { pid_of "$qs/bbstored.pid" bbstored >/dev/null; }

# stop_process FILE NAME: SIGTERM, then up to 10 s for a clean exit, then SIGKILL.
stop_process() {
    local file=$1 name=$2 pid i
    pid=$(pid_of "$file" "$name") || { rm -f "$file"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        [[ -d /proc/$pid ]] || break
        sleep 0.1
    done
    if [[ -d /proc/$pid ]]; then
        note "$name (pid $pid) did not stop in 10 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$file"
    note "stopped $name (pid $pid)"
}

# unmount_view: unmounts the bbackupfs view (its process then exits).
unmount_view() {
    local i
    mountpoint -q "$qs/mnt" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        fusermount3 -u "$qs/mnt" 2>/dev/null && break
        sleep 0.1
    done
    if mountpoint -q "$qs/mnt" 2>/dev/null; then
        note "$qs/mnt is busy; unmounting it lazily"
        fusermount3 -u -z "$qs/mnt" 2>/dev/null || true
    fi
    for ((i = 0; i < 100; i++)); do
        pgrep -f "bbackupfs .*$qs/mnt\$" >/dev/null || break
        sleep 0.1
    done
    note "unmounted $qs/mnt"
}

stop_all() {
    [[ -d $qs ]] || return 0
    unmount_view
    stop_process "$qs/work/bbackupd.pid" bbackupd
    stop_process "$qs/bbstored.pid" bbstored
}

case ${1:-} in
    stop)
        stop_all
        exit 0
        ;;
    clean)
        stop_all
        rm -rf "$qs"
        echo "removed $qs"
        exit 0
        ;;
    -h | --help)
        sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
esac
(($# <= 1)) || { echo "usage: $0 [SOURCE_DIR | stop | clean]" >&2; exit 2; }
if [[ -n ${1:-} ]]; then
    [[ -d $1 ]] || { echo "quickstart: $1 is not a directory" >&2; exit 2; }
    src=$(cd "$1" && pwd -P)
else
    src=$qs/sample
fi

# ---------------------------------------------------------------- build
profile=${BB_QUICKSTART_PROFILE:-release}
case $profile in
    release) build_flags=(--release) ;;
    debug) build_flags=() ;;
    *) echo "quickstart: BB_QUICKSTART_PROFILE must be release or debug" >&2; exit 2 ;;
esac
target=${CARGO_TARGET_DIR:-$repo/target}
[[ $target == /* ]] || target=$PWD/$target
bin=$target/$profile

command -v cargo >/dev/null || {
    echo "quickstart: cargo not found; install Rust (https://rustup.rs) first" >&2
    exit 2
}
mkdir -p "$logs"
say "Building bbstored, bbackupd and the tools ($profile)"
step "build (cargo build)" "$logs/build.log"
note "cargo build ${build_flags[*]} --bins -p bb-store -p bb-client -p bb-fs"
note "the first build takes a few minutes; tail -f $current_log to watch it"
: >"$current_log"
run cargo build "${build_flags[@]}" --bins -p bb-store -p bb-client -p bb-fs --manifest-path "$repo/Cargo.toml"
for b in bbstored bbstoreaccounts bbstored-certs bbstored-config raidfile-config \
    bbackupd bbackupquery bbackupctl bbackupd-config; do
    [[ -x $bin/$b ]] || fail "$bin/$b was not built"
done

# ---------------------------------------------------------------- set-up
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
    local p
    if [[ -n ${BB_QUICKSTART_PORT:-} ]]; then
        echo "$BB_QUICKSTART_PORT"
        return
    fi
    for ((p = 2201; p < 2300; p++)); do
        port_in_use "$p" || { echo "$p"; return; }
    done
}

setup() {
    say "Setting up a store, a CA, certificates and an account in $qs"
    step "set-up" "$logs/setup.log"
    # A set-up that failed half-way is started again from scratch.
    rm -rf "$etc" "$qs/ca" "$qs/store" "$qs/work"
    mkdir -p "$etc" "$qs/store" "$qs/work"
    local port user
    port=$(pick_port)
    [[ -n $port ]] || fail "no free port in 2201-2299 on 127.0.0.1 (set BB_QUICKSTART_PORT)"

    # bbstored-config refuses to configure bbstored to run as root (as 0.13 did),
    # and bbstored and bbstoreaccounts change to Server.User as 0.13's do. As
    # root, "nobody" is named (given the disc directory, which is what that check
    # looks at) and the User line is then taken out again: nobody could not reach
    # a working directory under /root, and the store lives in the user's own
    # directory anyway.
    user=$(id -un)
    if [[ $(id -u) == 0 ]]; then
        user=nobody
        chown nobody "$qs/store"
    fi

    current_step="raidfile-config (a single-disc RaidFile set)"
    run "$bin/raidfile-config" "$etc" 2048 "$qs/store"

    current_step="bbstored-config (server key, request, bbstored.conf)"
    run "$bin/bbstored-config" "$etc" "$server_name" "$user"
    # Listen on loopback only, with the pid file inside bb-quickstart.
    sed -i -e "s|^\([[:space:]]*PidFile = \).*|\1$qs/bbstored.pid|" \
        -e "s|^\([[:space:]]*ListenAddresses = \).*|\1inet:127.0.0.1:$port|" \
        "$etc/bbstored.conf"
    if [[ $(id -u) == 0 ]]; then
        sed -i -e '/^[[:space:]]*User = /d' "$etc/bbstored.conf"
        chown root "$qs/store"
    fi

    # bbstored-certs asks "type 'yes' to confirm" before signing, as 0.13 did.
    # It reads the account from the request's file name, the first hex digits
    # before a '-' at the start or after a '/' -- which "bb-quickstart" would be
    # in an absolute path -- so requests are named relative to $qs.
    current_step="bbstored-certs (a new CA, the server certificate)"
    run -C "$qs" "$bin/bbstored-certs" ca init
    run -C "$qs" -i yes "$bin/bbstored-certs" ca sign-server "etc/bbstored/$server_name-csr.pem"
    cp "$qs/ca/servers/$server_name-cert.pem" "$qs/ca/roots/clientCA.pem" "$etc/bbstored/"

    current_step="bbstoreaccounts create (account $account)"
    run "$bin/bbstoreaccounts" -c "$etc/bbstored.conf" create "$account" 0 10G 12G

    current_step="bbackupd-config (client keys, request, bbackupd.conf)"
    run "$bin/bbackupd-config" "$etc" snapshot "$account" 127.0.0.1 "$qs/work" "$src"
    sed -i "s|^StoreHostname = .*|&\nStorePort = $port|" "$etc/bbackupd.conf"

    current_step="bbstored-certs (the client certificate)"
    run -C "$qs" -i yes "$bin/bbstored-certs" ca sign "etc/bbackupd/$account-csr.pem"
    cp "$qs/ca/clients/$account-cert.pem" "$qs/ca/roots/serverCA.pem" "$etc/bbackupd/"

    touch "$qs/.set-up"
    note "store:        $qs/store (RaidFile disc set 0, account $account)"
    note "server:       $etc/bbstored.conf (127.0.0.1:$port)"
    note "client:       $etc/bbackupd.conf (snapshot mode)"
    note "keys:         $etc/bbackupd/$account-FileEncKeys.raw (without it the backup cannot be read)"
    note "log:          $logs/setup.log"
}

# The location bbackupd-config names after a directory: the first character
# dropped, '/' becoming '-'.
location_name() { local d=${1#?}; echo "${d//\//-}"; }

# point_at SOURCE: makes the config's (only) location back up SOURCE. The
# location is the last block bbackupd-config writes; everything else is kept.
point_at() {
    local conf=$etc/bbackupd.conf loc
    loc=$(location_name "$1")
    if grep -qxF $'\t\tPath = '"$1" "$conf"; then
        return
    fi
    note "backing up $1 now: location $loc (the old location is deleted from the store later)"
    sed -i '/^BackupLocations$/,$d' "$conf"
    printf 'BackupLocations\n{\n\t%s\n\t{\n\t\tPath = %s\n\t}\n}\n\n' "$loc" "$1" >>"$conf"
}

make_sample() {
    local s=$qs/sample
    mkdir -p "$s/docs/notes"
    printf 'Box Backup quick start sample.\nEdit me and run the quick start again.\n' >"$s/README.txt"
    printf 'first line\nsecond line\n' >"$s/docs/letter.txt"
    printf 'a note in a subdirectory\n' >"$s/docs/notes/todo.txt"
    : >"$s/empty"
    # A file big enough (> DiffingUploadSizeThreshold) to go up as a diff when changed.
    seq 1 20000 >"$s/numbers.txt"
    printf '#!/bin/sh\necho hello\n' >"$s/hello.sh"
    chmod 755 "$s/hello.sh"
    printf 'spaces in the name\n' >"$s/with space.txt"
    ln -s docs/letter.txt "$s/link-to-letter"
    if command -v setfattr >/dev/null && setfattr -n user.quickstart -v sample "$s/README.txt" 2>/dev/null; then
        note "sample: README.txt has the extended attribute user.quickstart"
    elif command -v python3 >/dev/null &&
        python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.quickstart", b"sample")' "$s/README.txt" 2>/dev/null; then
        note "sample: README.txt has the extended attribute user.quickstart"
    else
        note "sample: no extended attribute (this file system or machine does not support user xattrs)"
    fi
}

start_server() {
    local pid i
    if pid=$(pid_of "$qs/bbstored.pid" bbstored); then
        note "bbstored is running (pid $pid)"
        return
    fi
    step "start bbstored" "$logs/bbstored.log"
    rm -f "$qs/bbstored.pid"
    # -F with setsid rather than bbstored's own detaching, which closes stderr
    # (our bbstored's log). bbstored writes the pid file once it listens.
    printf '\n--- %s: starting bbstored\n' "$(date)" >>"$current_log"
    setsid "$bin/bbstored" -F "$etc/bbstored.conf" >>"$current_log" 2>&1 </dev/null &
    for ((i = 0; i < 100; i++)); do
        pid=$(pid_of "$qs/bbstored.pid" bbstored) && break
        kill -0 $! 2>/dev/null ||
            fail "bbstored exited (if its port is taken now: \"$0 clean\" and run again, or change ListenAddresses in $etc/bbstored.conf and StorePort in $etc/bbackupd.conf)"
        sleep 0.1
    done
    [[ -n ${pid:-} ]] || fail "bbstored did not write $qs/bbstored.pid within 10 s"
    note "started bbstored (pid $pid, $(grep -o 'inet:[^ ]*' "$etc/bbstored.conf")); log: $current_log"
}

# ---------------------------------------------------------------- the run

say "Using $qs"
if [[ ! -e $qs/.set-up ]]; then
    stop_all
    [[ $src != "$qs/sample" || -d $src ]] || make_sample
    setup
elif [[ $src == "$qs/sample" && ! -d $src ]]; then
    make_sample
fi
point_at "$src"
conf=$etc/bbackupd.conf
loc=$(location_name "$src")
# Backing up a directory that holds bb-quickstart: leave the store, state and
# restores out (ExcludeDir takes the whole path), and out of the diff.
diff_excludes=()
if [[ $qs == "$src"/* ]] && ! grep -qF "ExcludeDir = $qs" "$conf"; then
    sed -i "s|^\t\tPath = $src\$|&\n\t\tExcludeDir = $qs|" "$conf"
fi
[[ $qs == "$src"/* ]] && diff_excludes=(--exclude=bb-quickstart)

say "Starting bbstored"
start_server

once_out=$(mktemp)
backup_rc=0
if daemon=$(pid_of "$qs/work/bbackupd.pid" bbackupd); then
    # A bbackupd started by hand owns the state in work/: ask it instead of
    # running a second one beside it.
    say "Backing up $src (bbackupd pid $daemon runs: bbackupctl sync-and-wait)"
    step "backup (bbackupctl sync-and-wait)" "$logs/bbackupd.log"
    printf '\n--- %s: bbackupctl sync-and-wait\n' "$(date)" >>"$current_log"
    "$bin/bbackupctl" -c "$conf" sync-and-wait >"$once_out" 2>&1 || backup_rc=$?
    ((backup_rc == 0)) || fail "bbackupctl sync-and-wait exited with status $backup_rc"
    note "(the statistics are in bbackupd's own log)"
else
    say "Backing up $src (bbackupd --once)"
    step "backup (bbackupd --once)" "$logs/bbackupd.log"
    printf '\n--- %s: bbackupd --once\n' "$(date)" >>"$current_log"
    "$bin/bbackupd" --once -c "$conf" >"$once_out" 2>&1 || backup_rc=$?
fi
cat "$once_out" >>"$current_log"
sed 's/^/    /' "$once_out"
rm -f "$once_out"
case $backup_rc in
    0) ;;
    2) fail "bbackupd refused the configuration $conf (status 2)" ;;
    3) fail "the store is not the one bbackupd backed up to before (status 3)" ;;
    *) fail "the backup failed (status $backup_rc)" ;;
esac

query() { "$bin/bbackupquery" -c "$conf" "$@"; }

say "The store now holds (bbackupquery \"ls -R\" quit, first 25 lines)"
step "list (bbackupquery ls -R)" "$logs/bbackupquery.log"
ls_out=$(mktemp)
ls_rc=0
query "ls -R" quit >"$ls_out" 2>>"$current_log" || ls_rc=$?
cat "$ls_out" >>"$current_log"
sed -i '/Backup Query Tool/d' "$ls_out"
head -n 25 "$ls_out" | sed 's/^/    /'
(($(wc -l <"$ls_out") <= 25)) || note "... ($(wc -l <"$ls_out") lines in all)"
rm -f "$ls_out"
((ls_rc == 0)) || fail "bbackupquery ls exited with status $ls_rc"

say "Comparing the store with $src (bbackupquery \"compare -ac\" quit)"
step "compare (bbackupquery compare -ac)" "$logs/bbackupquery.log"
cmp_out=$(mktemp)
cmp_rc=0
# -v for the summary lines (at 0.13's default level a clean compare prints nothing).
query -v "compare -ac" quit >"$cmp_out" 2>&1 || cmp_rc=$?
cat "$cmp_out" >>"$current_log"
# Shown: the differences, warnings and errors, and the summary; not the chatter.
awk '!/^(NOTICE|INFO): / || /Differences:|differences probably/ { print "    " $0 }' "$cmp_out"
rm -f "$cmp_out"
# -c: 1 no differences, 2 differences, 3 error.
case $cmp_rc in
    1) note "no differences" ;;
    2) fail "compare found differences (files changed since the backup, or a bug)" ;;
    *) fail "compare failed (status $cmp_rc)" ;;
esac

restore=$qs/restore-$(date +%Y%m%d-%H%M%S)
n=1
while [[ -e $restore ]]; do restore=$qs/restore-$(date +%Y%m%d-%H%M%S).$((n++)); done
say "Restoring location $loc into $restore"
step "restore (bbackupquery restore)" "$logs/bbackupquery.log"
run "$bin/bbackupquery" -c "$conf" "restore $loc $restore" quit

say "Checking the restore against the source (diff -r --no-dereference)"
step "diff -r" "$logs/diff.log"
diff_rc=0
diff -r --no-dereference "${diff_excludes[@]}" "$src" "$restore" >"$current_log" 2>&1 || diff_rc=$?
if ((diff_rc != 0)); then
    head -n 20 "$current_log" | sed 's/^/    /'
    fail "the restore differs from $src"
fi
note "identical"
if [[ $src == "$qs/sample" ]]; then
    # diff does not look at xattrs (compare -a did): show the sample's one.
    x=$(getfattr --only-values -n user.quickstart "$restore/README.txt" 2>/dev/null ||
        python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "user.quickstart").decode())' \
            "$restore/README.txt" 2>/dev/null || true)
    [[ -z $x ]] || note "and README.txt came back with its extended attribute user.quickstart=$x"
fi

# The read-only FUSE view of the store (needs /dev/fuse and fusermount3).
mounted=
if [[ -e /dev/fuse ]] && command -v fusermount3 >/dev/null; then
    unmount_view
    mkdir -p "$qs/mnt"
    say "Mounting the store read-only on $qs/mnt (bbackupfs)"
    step "mount (bbackupfs)" "$logs/bbackupfs.log"
    run "$bin/bbackupfs" -c "$conf" --cache-dir "$qs/cache" "$qs/mnt"
    say "Checking the mounted backup against the source (diff -r --no-dereference)"
    current_log=$logs/diff-mount.log
    diff_rc=0
    diff -r --no-dereference "${diff_excludes[@]}" "$src" "$qs/mnt/current/$loc" >"$current_log" 2>&1 || diff_rc=$?
    if ((diff_rc != 0)); then
        cat "$current_log" >&2
        fail "the mounted backup differs from $src"
    fi
    note "identical"
    mounted=1
else
    note "no /dev/fuse or fusermount3 here (apt-get install fuse3): not mounting the store"
fi

cat <<EOF

==> Done: backed up, compared and restored with Box Backup, all in $qs

What to try next (bbstored keeps running until "$0 stop"):

  export PATH=$bin:\$PATH C=$conf
  bbackupquery -c \$C                        # the query shell: ls, cd, get, help
  bbackupquery -c \$C "ls -Rts" quit         # with times and sizes in blocks
  bbackupquery -c \$C "ls -Rod" quit         # old versions and deleted files too
  bbackupquery -c \$C "compare -a" quit      # nothing printed: no differences
  bbackupquery -c \$C "restore $loc /tmp/somewhere" quit
  bbackupquery -c \$C usage quit
  bbstoreaccounts -c $etc/bbstored.conf info $account

  # Change something in $src and run the quick start again: only the changes go up.
  $0${1:+ $1}

  # Or run bbackupd as a daemon (snapshot mode: it backs up when told to):
  bbackupd -c \$C
  bbackupctl -c \$C sync-and-wait
  bbackupctl -c \$C terminate

Configs: $etc/bbstored.conf, $conf
Logs:    $logs/
Keys:    $etc/bbackupd/$account-FileEncKeys.raw (without it nothing can be restored)

EOF
if [[ -n $mounted ]]; then
    cat <<EOF
The store is mounted read-only on $qs/mnt (bbackupfs; "$0 stop" unmounts it):

  ls $qs/mnt/current/$loc                     # the newest versions
  diff -r $src $qs/mnt/current/$loc           # verify
  cp -a $qs/mnt/current/$loc /tmp/somewhere   # restore
  ls $qs/mnt/versions/$loc/                   # every version of every file
  ls $qs/mnt/deleted/$loc/                    # what was deleted, in its place

EOF
fi
cat <<EOF
"$0 stop" stops bbstored (and a bbackupd started as above) and unmounts the view;
"$0 clean" stops them and removes $qs.
EOF
