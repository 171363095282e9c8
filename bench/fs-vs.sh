#!/usr/bin/env bash
# fs-vs.sh -- bbackupfs (read-only FUSE mount of a Box Backup store, issue 6)
# against `restic mount` and `borg mount`, on the same corpus, same disc.
#
# Setup (not timed, once per kind): one backup of the corpus (read in place,
# not copied) into
#   ours    our bbstored (a fresh store, as bench/client-vs.sh makes it) filled by
#           our `bbackupd --once`; the server stays up while ours is measured.
#           Mounted with `bbackupfs -c CONF -f --cache-dir DIR --location source MNT`
#           (the mount root is then the location's current tree). Skipped, with a
#           message, while $OURS_BIN/bbackupfs (or the other binaries) is missing.
#   restic  restic 0.14 (Debian), local repository on the same disc (format 2,
#           compression "auto" = zstd), RESTIC_PASSWORD set; `restic mount MNT`;
#           the tree is MNT/ids/<snapshot>/<corpus path>.
#   borg    borg 1.2 (Debian), local repository, `repokey` encryption (AES-CTR +
#           HMAC-SHA256), BORG_PASSPHRASE set, lz4 compression (borg's default);
#           `borg mount -f REPO::bench MNT`; the tree is MNT/<corpus path>.
# Each mount process runs in the foreground, in the background of this script
# (`... -f MNT &`), so that $! is the mount process; a mount is ready when
# `mountpoint -q MNT` says so (the time to that point is recorded as "mount").
#
# Then, RUNS times, interleaved (run 1 of every kind, then run 2...), timed by
# wall clock:
#   ls-cold  `ls -lR` of the tree to /dev/null, on a fresh mount with cold caches
#   ls-warm  `ls -lR` again, same mount
#   find     `find . -type f | wc -l`, same mount (must equal the corpus's count)
#   cp       `cp -a TREE/. DEST` (DEST: a scratch dir on the same disc), fresh
#            mount, cold caches; checked afterwards (file count + bytes, or
#            `diff -r CORPUS DEST` when VERIFY=diff), then deleted
#   diff     `diff -r CORPUS TREE`, fresh mount, cold caches; must print nothing
#   dd       `dd if=TREE/<the biggest file under big/> of=/dev/null bs=1M`,
#            fresh mount, cold caches -> MB/s (10^6 bytes/s)
#   restore  the tool's own restore of the whole tree into an empty scratch dir,
#            cold caches (no mount): ours `bbackupquery "restore source DIR" quit`
#            (as client-vs.sh runs it; the issue's target is cp <= 1.3x this),
#            restic `restore latest --target DIR`, borg `extract`; checked as cp is
# "Cold caches": the page cache is dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`)
# before ls-cold, cp, diff, dd and restore when that is permitted (the script says
# at its start whether it is; if not, "cold" means a fresh mount only), and each
# fresh mount gets a new empty cache directory: ours `--cache-dir`, restic
# RESTIC_CACHE_DIR, borg BORG_CACHE_DIR. Dropping the cache also evicts the
# corpus, so diff reads both sides from disc, for every kind alike.
#
# Peak RSS: VmHWM of the mount process (ours: bbackupfs; restic: `restic mount`;
# borg: the `borg mount -f` process), read from /proc/PID/status just before each
# unmount; so one figure for ls-cold/ls-warm/find (one mount) and one each for
# cp, diff and dd. restore: GNU time's %M of the restoring process.
#
# Attributes: on the first run's ls mount, untimed, every entry's type, mode,
# owner, group, size (files) and mtime (ns) as the mount shows them is compared
# with the corpus (find -printf); differences are counted per field, with
# examples, and printed after the table (a point of issue 6: what each mount
# gets wrong).
#
# A failed check does not stop the run: the step is recorded as FAIL (the table
# shows it), its log is kept under WORK/logs, and the script exits 1 at the end.
#
# Usage: bench/fs-vs.sh [CORPUS]     CORPUS: a directory built by make-corpus.sh
#        build (only read). Default $CORPUS or /work/bench-corpus/base.
# Environment:
#   RUNS=3                 runs per kind (median reported)
#   KINDS="ours restic borg"
#   OURS_BIN=<repo>/target/release   bbackupfs, bbackupd, bbackupquery, bbstored,
#                          bbstoreaccounts (cargo build --release -p bb-store -p bb-client
#                          -p <the bbackupfs crate>)
#   VERIFY=count           or diff (cp's and restore's copies: diff -r against CORPUS)
#   WORK=/work/bench-scratch/fs-vs.XXXX   scratch: repositories, store, mounts,
#                          copies (needs ~2.5 GB per kind + 2.2 GB for one copy);
#                          removed at the end unless KEEP=1
#   RESULTS=FILE           also append the raw result lines there
# Requires: apt-get install -y fuse3 restic borgbackup time; /dev/fuse; root (or
# a user allowed to mount FUSE and, for the cold steps, to drop caches).
# Output: one line per step on stderr, then a markdown table on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
shared=$(cd "$repo/../shared" 2>/dev/null && pwd || echo /work/shared)
CORPUS=${1:-${CORPUS:-/work/bench-corpus/base}}
RUNS=${RUNS:-3}
KINDS=${KINDS:-"ours restic borg"}
OURS_BIN=${OURS_BIN:-$repo/target/release}
VERIFY=${VERIFY:-count}
PACK=${PACK:-$shared/fixtures/bb013}
mkdir -p /work/bench-scratch
WORK=${WORK:-$(mktemp -d /work/bench-scratch/fs-vs.XXXXXX)}
mkdir -p "$WORK/logs"
WORK=$(realpath "$WORK")
results=$WORK/results.txt
attrs=$WORK/attrs.txt
: > "$results"
: > "$attrs"
export PATH=$PATH:/usr/sbin
failed=0

die() { echo "fs-vs: $*" >&2; exit 2; }
note() { echo "fs-vs: $*" >&2; }

[ -d "$CORPUS" ] || die "no corpus at $CORPUS (build it with make-corpus.sh build DIR)"
CORPUS=$(realpath "$CORPUS")
[ -x /usr/bin/time ] || die "GNU time missing: apt-get install -y time"
command -v fusermount3 >/dev/null || die "fusermount3 missing: apt-get install -y fuse3"
[ -c /dev/fuse ] || die "no /dev/fuse"

# Which kinds can run here.
kinds=()
for k in $KINDS; do
	case $k in
	ours)
		missing=
		for b in bbackupfs bbackupd bbackupquery bbstored bbstoreaccounts; do
			[ -x "$OURS_BIN/$b" ] || missing="$missing $b"
		done
		if [ -n "$missing" ]; then
			note "SKIPPING ours: missing in $OURS_BIN:$missing (cargo build --release -p bb-client -p bb-store and the bbackupfs crate)"
			continue
		fi
		if ! "$OURS_BIN/bbackupd" --help 2>&1 | grep -q -- --once; then
			note "SKIPPING ours: $OURS_BIN/bbackupd has no --once (the one-shot sync the bench drives)"
			continue
		fi
		;;
	restic) command -v restic >/dev/null || die "restic missing: apt-get install -y restic" ;;
	borg) command -v borg >/dev/null || die "borg missing: apt-get install -y borgbackup" ;;
	*) die "unknown kind $k" ;;
	esac
	kinds+=("$k")
done
[ ${#kinds[@]} -gt 0 ] || die "nothing to run"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
load() { cut -d' ' -f1 /proc/loadavg; }

drop_ok=0
sync
if (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then drop_ok=1; fi
drop_caches() {
	sync
	[ "$drop_ok" = 0 ] || echo 3 > /proc/sys/vm/drop_caches
}

# timed CMD...: runs CMD under GNU time; sets secs, rss (KiB), rc.
timed() {
	local t0 t1
	t0=$(now)
	rc=0
	/usr/bin/time -f "%M" -o "$WORK/time.out" "$@" || rc=$?
	t1=$(now)
	secs=$(elapsed "$t0" "$t1")
	rss=$(tail -1 "$WORK/time.out")
	[[ $rss =~ ^[0-9]+$ ]] || rss=0
}

# wall SHELL-COMMAND: runs it in bash (inside the tree, output to the caller's
# redirections); sets secs and rc.
wall() {
	local t0 t1
	t0=$(now)
	rc=0
	bash -c "set -o pipefail; $1" || rc=$?
	t1=$(now)
	secs=$(elapsed "$t0" "$t1")
}

# record kind run step status [extra]: uses secs and rss.
record() {
	local st=$4
	[ "$st" = ok ] || failed=1
	echo "$1 run=$2 $3 ${secs}s rss=${rss}KiB load=$(load) $st ${5:-}" >&2
	echo "$1 $2 $3 $secs $rss $(load) $st ${5:-}" >> "$results"
	[ -z "${RESULTS:-}" ] || echo "$1 $2 $3 $secs $rss $(load) $st $(date -u +%FT%TZ) ${5:-}" >> "$RESULTS"
}

wait_port() { # port pid
	local i
	for i in $(seq 1 600); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		kill -0 "$2" 2>/dev/null || die "server exited at start (see $WORK)"
		sleep 0.05
	done
	die "server not listening on $1"
}

# --- checks ---

tree_summary() { # dir -> "files=N bytes=N" (cached for the corpus)
	find "$1" -type f -printf '%s\n' | awk '{n++; s+=$1} END {printf "files=%d bytes=%d\n", n, s}'
}

# check_copy copy log -> 0 if the copy matches the corpus (count+bytes or diff -r)
check_copy() {
	if [ "$VERIFY" = diff ]; then
		diff -r "$CORPUS" "$1" > "$2" 2>&1 && [ ! -s "$2" ]
	else
		local a
		a=$(tree_summary "$1")
		echo "copy $a, corpus $corpus_summary" > "$2"
		[ "$a" = "$corpus_summary" ]
	fi
}

# Every entry's attributes, as find sees them (relative path first).
list_attrs() { # dir out
	(cd "$1" && find . -printf '%p\t%y\t%m\t%U\t%G\t%s\t%T@\n') | LC_ALL=C sort > "$2"
}

compare_attrs() { # kind mount-list corpus-list
	python3 - "$@" >> "$attrs" <<'EOF'
import sys
kind, mnt, src = sys.argv[1:4]
def load(p):
    d = {}
    for l in open(p, encoding="utf-8", errors="surrogateescape"):
        f = l.rstrip("\n").split("\t")
        if len(f) == 7:
            d[f[0]] = f[1:]
    return d
m, s = load(mnt), load(src)
names = ["type", "mode", "uid", "gid", "size", "mtime"]
diffs = {n: [] for n in names}
for p, a in s.items():
    b = m.get(p)
    if b is None:
        continue
    for i, n in enumerate(names):
        if n == "size" and a[0] == "d":
            continue  # a directory's st_size means nothing across filesystems
        if a[i] != b[i]:
            diffs[n].append(f"{p}: corpus {a[i]}, mount {b[i]}")
missing = [p for p in s if p not in m]
extra = [p for p in m if p not in s]
out = []
for n in names:
    if diffs[n]:
        ex = "; ".join(diffs[n][:2])
        out.append(f"{n} differs on {len(diffs[n])} ({ex})")
if missing:
    out.append(f"{len(missing)} entries missing ({'; '.join(missing[:2])})")
if extra:
    out.append(f"{len(extra)} extra entries ({'; '.join(extra[:2])})")
print(f"- {kind}: {len(s)} entries compared; " + ("; ".join(out) if out else "type, mode, uid, gid, size and mtime (ns) all equal"))
EOF
}

# --- mounts ---

mpid= mnt_now=
# mount_fs kind: a fresh mount point and a new empty cache dir; sets mpid, secs.
mount_fs() {
	local kind=$1 t0 t1 i
	mount_n=$((${mount_n:-0} + 1))
	local mnt=$WORK/mnt cache=$WORK/cache-$mount_n log=$WORK/logs/mount-$kind-$mount_n.log
	rm -rf "$WORK"/cache-*
	mkdir -p "$mnt" "$cache"
	t0=$(now)
	case $kind in
	ours) "$OURS_BIN/bbackupfs" -c "$WORK/client/bbackupd.conf" -f --cache-dir "$cache" \
		--location source "$mnt" > "$log" 2>&1 & ;;
	restic) env RESTIC_CACHE_DIR="$cache" restic mount "$mnt" > "$log" 2>&1 & ;;
	borg) env BORG_CACHE_DIR="$cache" borg mount -f "$BORG_REPO::bench" "$mnt" > "$log" 2>&1 & ;;
	esac
	mpid=$!
	mnt_now=$mnt
	for i in $(seq 1 6000); do
		mountpoint -q "$mnt" && break
		kill -0 "$mpid" 2>/dev/null || { mnt_now=; die "$kind mount exited at start: $log"; }
		sleep 0.05
	done
	mountpoint -q "$mnt" || die "$kind not mounted after 300 s: $log"
	t1=$(now)
	secs=$(elapsed "$t0" "$t1")
	rss=0
}

# umount_fs: sets rss to the mount process's VmHWM (KiB), unmounts, waits for it.
umount_fs() {
	local i
	rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$mpid/status" 2>/dev/null || echo 0)
	[[ $rss =~ ^[0-9]+$ ]] || rss=0
	for i in $(seq 1 100); do
		fusermount3 -u "$mnt_now" 2>/dev/null && break
		sleep 0.1
	done
	if mountpoint -q "$mnt_now"; then
		note "fusermount3 -u $mnt_now failed; TERM to $mpid"
		kill -TERM "$mpid" 2>/dev/null || true
	fi
	for i in $(seq 1 100); do
		kill -0 "$mpid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$mpid" 2>/dev/null; then
		note "mount process $mpid still running after unmount; TERM"
		kill -TERM "$mpid" 2>/dev/null || true
	fi
	wait "$mpid" 2>/dev/null || true
	mountpoint -q "$mnt_now" && umount -l "$mnt_now" 2>/dev/null || true
	mnt_now=
}

server_pid=
cleanup() {
	if [ -n "$mnt_now" ]; then
		fusermount3 -u "$mnt_now" 2>/dev/null || umount -l "$mnt_now" 2>/dev/null || true
		kill -TERM "$mpid" 2>/dev/null || true
	fi
	[ -z "$server_pid" ] || kill -TERM "$server_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	if [ "${KEEP:-0}" != 1 ] && [ -n "${WORK:-}" ] && ! mountpoint -q "$WORK/mnt" 2>/dev/null; then
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# --- setup: one backup per kind ---

tree= # the corpus as the current kind's mount shows it, relative to the mount

setup_ours() {
	local store=$WORK/store client=$WORK/client port
	rm -rf "$store"
	mkdir -p "$store/disc0" "$client"
	printf 'disc0\n{\n\tSetNumber = 0\n\tBlockSize = 4096\n\tDir0 = %s\n\tDir1 = %s\n\tDir2 = %s\n}\n' \
		"$store/disc0" "$store/disc0" "$store/disc0" > "$store/raidfile.conf"
	: > "$store/accounts.txt"
	port=$(free_port)
	sed -e "s|@STORE@|$store|g" -e "s|@CERTS@|$PACK/certs|g" -e "s|@PORT@|$port|g" \
		"$PACK/conf/bbstored.conf.in" > "$store/bbstored.conf"
	"$OURS_BIN/bbstoreaccounts" -c "$store/bbstored.conf" create 01234567 0 60G 64G > "$store/create.log" 2>&1 \
		|| die "bbstoreaccounts create: $(cat "$store/create.log")"
	"$OURS_BIN/bbstored" -F -c "$store/bbstored.conf" >> "$store/server.log" 2>&1 &
	server_pid=$!
	wait_port "$port" "$server_pid"
	sed -e "s|@PORT@|$port|g" -e "s|@CLIENT@|$client|g" -e "s|@SOURCE@|$CORPUS|g" \
		-e "s|@KEYS@|$PACK/keys|g" -e "s|@CERTS@|$PACK/certs|g" \
		"$PACK/conf/bbackupd.conf.in" > "$client/bbackupd.conf"
	sync
	timed "$OURS_BIN/bbackupd" --once "$client/bbackupd.conf" > "$WORK/logs/ours-backup.log" 2>&1
	[ "$rc" = 0 ] || die "our bbackupd --once failed ($rc): $WORK/logs/ours-backup.log"
	record ours 0 backup ok
	tree=.
}

stop_ours() {
	[ -n "$server_pid" ] || return 0
	kill -TERM "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}

setup_restic() {
	export RESTIC_REPOSITORY=$WORK/restic-repo RESTIC_PASSWORD=bench-password
	export RESTIC_CACHE_DIR=$WORK/restic-cache
	rm -rf "$RESTIC_REPOSITORY" "$RESTIC_CACHE_DIR"
	restic init > "$WORK/logs/restic-init.log" 2>&1 || die "restic init: $(cat "$WORK/logs/restic-init.log")"
	sync
	timed restic backup -q "$CORPUS" > "$WORK/logs/restic-backup.log" 2>&1
	[ "$rc" = 0 ] || die "restic backup: exit $rc: $WORK/logs/restic-backup.log"
	record restic 0 backup ok
	local id
	id=$(restic snapshots --json latest | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["short_id"])')
	rm -rf "$RESTIC_CACHE_DIR"
	tree=ids/$id$CORPUS
}

setup_borg() {
	export BORG_REPO=$WORK/borg-repo BORG_PASSPHRASE=bench-password
	export BORG_CACHE_DIR=$WORK/borg-cache BORG_CONFIG_DIR=$WORK/borg-config
	rm -rf "$BORG_REPO" "$BORG_CACHE_DIR" "$BORG_CONFIG_DIR"
	borg init -e repokey "$BORG_REPO" > "$WORK/logs/borg-init.log" 2>&1 || die "borg init: $(cat "$WORK/logs/borg-init.log")"
	sync
	timed borg create --compression lz4 "$BORG_REPO::bench" "$CORPUS" > "$WORK/logs/borg-backup.log" 2>&1
	[ "$rc" = 0 ] || die "borg create: exit $rc: $WORK/logs/borg-backup.log"
	record borg 0 backup ok
	rm -rf "$BORG_CACHE_DIR"
	tree=${CORPUS#/}
}

# --- the native restore (baseline for cp) ---

native_restore() { # kind dest -> sets secs rss rc, restored (the tree's copy)
	local kind=$1 dest=$2 log=$WORK/logs/$1-restore-$3.log
	case $kind in
	ours)
		timed "$OURS_BIN/bbackupquery" -c "$WORK/client/bbackupd.conf" "restore source $dest" quit > "$log" 2>&1
		restored=$dest ;;
	restic)
		mkdir -p "$WORK/cache-restore"
		timed env RESTIC_CACHE_DIR="$WORK/cache-restore" restic restore latest -q --target "$dest" > "$log" 2>&1
		restored=$dest$CORPUS ;;
	borg)
		mkdir -p "$dest" "$WORK/cache-restore"
		# borg extracts into the current directory
		timed env BORG_CACHE_DIR="$WORK/cache-restore" bash -c 'cd "$1" && exec borg extract "$BORG_REPO::bench"' _ "$dest" > "$log" 2>&1
		restored=$dest/${CORPUS#/} ;;
	esac
}

# --- one run of one kind ---

run_kind() { # kind run
	local kind=$1 run=$2 st n dest=$WORK/copy log
	mount_n=0

	# 1-3: ls -lR cold, warm; find | wc -l
	drop_caches
	mount_fs "$kind"
	local msecs=$secs
	local mt=$mnt_now/$tree
	log=$WORK/logs/$kind-$run-ls.log
	wall "cd '$mt' && ls -lR . > /dev/null" 2> "$log"
	st=ok; [ "$rc" = 0 ] || st=FAIL
	local s1=$secs st1=$st
	wall "cd '$mt' && ls -lR . > /dev/null" 2>> "$log"
	st=ok; [ "$rc" = 0 ] || st=FAIL
	local s2=$secs st2=$st
	wall "cd '$mt' && find . -type f | wc -l > '$WORK/find.out'" 2>> "$log"
	n=$(cat "$WORK/find.out" 2>/dev/null || echo 0)
	st=ok; [ "$rc" = 0 ] && [ "$n" = "$corpus_files" ] || st=FAIL
	local s3=$secs st3=$st
	if [ "$run" = 1 ]; then
		list_attrs "$mt" "$WORK/attrs-mount.txt" 2>> "$log" || true
		compare_attrs "$kind" "$WORK/attrs-mount.txt" "$WORK/attrs-corpus.txt"
		tail -1 "$attrs" >&2
		rm -f "$WORK/attrs-mount.txt"
	fi
	umount_fs
	secs=$msecs; record "$kind" "$run" mount ok
	secs=$s1; record "$kind" "$run" ls-cold "$st1"
	secs=$s2; record "$kind" "$run" ls-warm "$st2"
	secs=$s3; record "$kind" "$run" find "$st3" "files=$n"

	# 4: cp -a out of a fresh mount, then check the copy
	rm -rf "$dest"
	mkdir -p "$dest"
	drop_caches
	mount_fs "$kind"
	msecs=$secs
	log=$WORK/logs/$kind-$run-cp.log
	wall "cp -a '$mnt_now/$tree/.' '$dest'" > "$log" 2>&1
	umount_fs
	st=ok; [ "$rc" = 0 ] || st=FAIL
	check_copy "$dest" "$log.check" || st=FAIL
	local cps=$secs cpr=$rss
	secs=$msecs; rss=0; record "$kind" "$run" mount ok
	secs=$cps; rss=$cpr; record "$kind" "$run" cp "$st"
	rm -rf "$dest"

	# 5: diff -r corpus mount
	drop_caches
	mount_fs "$kind"
	msecs=$secs
	log=$WORK/logs/$kind-$run-diff.log
	wall "diff -r '$CORPUS' '$mnt_now/$tree'" > "$log" 2>&1
	umount_fs
	st=ok; [ "$rc" = 0 ] && [ ! -s "$log" ] || st=FAIL
	local ds=$secs dr=$rss
	secs=$msecs; rss=0; record "$kind" "$run" mount ok
	secs=$ds; rss=$dr; record "$kind" "$run" diff "$st" "lines=$(wc -l < "$log")"

	# 6: dd of the big file
	drop_caches
	mount_fs "$kind"
	msecs=$secs
	log=$WORK/logs/$kind-$run-dd.log
	wall "dd if='$mnt_now/$tree/$big' of=/dev/null bs=1M" > "$log" 2>&1
	umount_fs
	st=ok; [ "$rc" = 0 ] && grep -q "^$big_size bytes" "$log" || st=FAIL
	local dds=$secs ddr=$rss
	secs=$msecs; rss=0; record "$kind" "$run" mount ok
	secs=$dds; rss=$ddr; record "$kind" "$run" dd "$st" "bytes=$big_size"

	# the tool's own restore (baseline for cp)
	rm -rf "$dest"
	drop_caches
	native_restore "$kind" "$dest" "$run"
	st=ok; [ "$rc" = 0 ] || st=FAIL
	check_copy "$restored" "$WORK/logs/$kind-$run-restore.check" || st=FAIL
	rm -rf "$dest" "$WORK/cache-restore"
	record "$kind" "$run" restore "$st"
}

corpus_summary=$(tree_summary "$CORPUS")
corpus_files=$(echo "$corpus_summary" | sed 's/files=\([0-9]*\).*/\1/')
big=$(cd "$CORPUS" && find big -type f -printf '%s %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)
[ -n "$big" ] || die "no file under $CORPUS/big for the dd step"
big_size=$(stat -c %s "$CORPUS/$big")
list_attrs "$CORPUS" "$WORK/attrs-corpus.txt"
if [ "$drop_ok" = 1 ]; then drops="page cache dropped before cold steps"; else drops="NOT permitted to drop the page cache: cold steps are fresh mounts with empty caches only"; fi
note "corpus $CORPUS: $corpus_summary; big file $big; kinds ${kinds[*]}; runs $RUNS; work $WORK; load $(load); $(nproc) cores; $drops"

# The backups are made once, before the runs; the setups export the
# repositories' variables, so all run in this shell, and ours keeps its server.
declare -A trees
for kind in "${kinds[@]}"; do
	case $kind in
	ours) setup_ours ;;
	restic) setup_restic ;;
	borg) setup_borg ;;
	esac
	trees[$kind]=$tree
done
for run in $(seq 1 "$RUNS"); do
	for kind in "${kinds[@]}"; do
		tree=${trees[$kind]}
		run_kind "$kind" "$run"
	done
done
stop_ours

python3 - "$results" "$big_size" "$drop_ok" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
big = int(sys.argv[2])
kinds = []
for r in rows:
    if r[0] not in kinds:
        kinds.append(r[0])
steps = ["mount", "ls-cold", "ls-warm", "find", "cp", "diff", "dd", "restore"]
names = {"mount": "mount (s)", "ls-cold": "ls -lR cold (s)", "ls-warm": "ls -lR warm (s)",
         "find": "find (s)", "cp": "cp -a (s)", "diff": "diff -r (s)", "dd": "dd big (MB/s)",
         "restore": "own restore (s)"}
med = {}
print("| kind | runs | backup (s, setup) | " + " | ".join(names[s] for s in steps) +
      " | peak RSS ls / cp / diff / dd mount (MiB) | peak RSS restore (MiB) | load avg |")
print("|---" * (6 + len(steps)) + "|")
for k in kinds:
    rs = [r for r in rows if r[0] == k]
    runs = len(set(r[1] for r in rs if r[1] != "0"))
    backup = [float(r[3]) for r in rs if r[2] == "backup"]
    cells = []
    for s in steps:
        sel = [r for r in rs if r[2] == s]
        if not sel:
            cells.append("-"); continue
        xs = [float(r[3]) for r in sel]
        if s == "dd":
            xs = [big / x / 1e6 if x > 0 else 0 for x in xs]
        med[(k, s)] = statistics.median(xs)
        fmt = "{:.0f}" if s == "dd" else "{:.2f}"
        extra = f" [{', '.join(fmt.format(x) for x in xs)}]" if len(xs) > 1 and s != "mount" else ""
        fail = " **FAIL**" if any(r[6] != "ok" for r in sel) else ""
        cells.append(fmt.format(med[(k, s)]) + extra + fail)
    def peak(s):
        xs = [int(r[4]) for r in rs if r[2] == s]
        return f"{max(xs) / 1024:.0f}" if xs else "-"
    loads = [float(r[5]) for r in rs]
    print(f"| {k} | {runs} | " + (f"{backup[0]:.1f}" if backup else "-") + " | " + " | ".join(cells) +
          f" | {peak('ls-cold')} / {peak('cp')} / {peak('diff')} / {peak('dd')} | {peak('restore')} | {min(loads):.1f}-{max(loads):.1f} |")
print()
print("(medians of the runs, each run's figure in brackets; mount: median over the four mounts "
      "of every run; dd in 10^6 bytes/s; " +
      ("page cache dropped before each cold step" if sys.argv[3] == "1" else "page cache NOT dropped (not permitted)") + ")")
print()
for k in kinds:
    if (k, "cp") in med and (k, "restore") in med and med[(k, "restore")] > 0:
        r = med[(k, "cp")] / med[(k, "restore")]
        target = " (issue 6 target: <= 1.3x)" if k == "ours" else ""
        print(f"- {k}: cp -a out of the mount takes {r:.2f}x its own restore{target}")
if "ours" in kinds:
    for base in ("restic", "borg"):
        if base not in kinds:
            continue
        ratios = []
        for s in steps[1:]:
            if ("ours", s) in med and (base, s) in med and med[("ours", s)] > 0 and med[(base, s)] > 0:
                x = med[("ours", s)] / med[(base, s)] if s == "dd" else med[(base, s)] / med[("ours", s)]
                ratios.append(f"{s} {x:.2f}x")
        if ratios:
            print(f"- ours vs {base} (speed, >1 = ours faster): " + ", ".join(ratios))
EOF
if [ -s "$attrs" ]; then
	echo
	echo "Attributes on the mount vs the corpus (first run, untimed):"
	echo
	cat "$attrs"
fi
if [ "$failed" = 1 ]; then
	note "some checks FAILED: see the logs in $WORK/logs (KEEP=1 keeps them)"
	KEEP=1
	exit 1
fi
