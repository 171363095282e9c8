#!/usr/bin/env bash
# client-vs.sh -- our client + our bbstored against Box Backup 0.13 (client and
# server) and restic, on the same tree, same disc, side by side.
#
# For each client kind, RUNS times, interleaved (run 1 of every kind, then run 2...),
# on a fresh copy of the corpus and a fresh store / repository:
#   (a) first  full backup of the copy
#   (b) incr   incremental backup after `make-corpus.sh mutate COPY 1` (~1%)
#   (c) restore of the latest backup into an empty directory
#   (d) verify compare of the local (mutated) copy with the latest backup
# Kinds:
#   ours     our bbackupd --once / bbackupquery + our bbstored (release builds;
#            skipped with a message while target/release/bbackupd is missing)
#   013-shim 0.13 bbackupd (snapshot mode, bbackupctl sync-and-wait) /
#            bbackupquery + 0.13 bbstored, all with the TCP_NODELAY shim preloaded
#   013      the same as shipped, no shim (Nagle + delayed ACK stalls)
#   restic   restic 0.14 (Debian), local repository on the same disc, no network
# What each step runs:
#   step     ours                      0.13                          restic
#   first    bbackupd --once CONF      bbackupctl sync-and-wait      restic backup SRC
#   incr     bbackupd --once CONF      bbackupctl sync-and-wait      restic backup SRC (parent found by path)
#   restore  bbackupquery "restore"    bbackupquery "restore"        restic restore latest --target DIR
#   verify   bbackupquery "compare -ac" (our checksum mode)
#                                      bbackupquery "compare -acq" (quick: block index MD5s vs local file)
#                                                                    restic backup --dry-run --force SRC
# The verify step is the closest equivalent, not the same thing: 0.13's quick
# compare reads every local file and checks each block's MD5 against the
# block index it downloads; restic has no compare with the local tree, and
# `backup --dry-run --force` is what comes closest: it reads and hashes every
# local file and looks each chunk up in the repository, writing nothing
# ("Data Blobs: 0 new" iff every file's content is there). `restic check
# --read-data` checks the repository alone (VERIFY_RESTIC=check selects it).
#
# Timed: the command of each step (wall clock); for 0.13's backups only
# `bbackupctl sync-and-wait` (bbackupd is started before, and stopped after).
# Peak RSS of the client: GNU time's %M over the client process (bbackupd,
# bbackupquery, restic). Not timed: copying the corpus, creating stores,
# accounts and repositories (`restic init`).
#
# The restore is checked (file count and bytes equal to the local copy, or a
# full content digest with VERIFY_RESTORE=digest); the compare must report no
# differences (exit code 1 for bbackupquery; for restic, no new data blobs).
#
# Usage: bench/client-vs.sh [CORPUS]     CORPUS: a directory built by
#        make-corpus.sh build (not changed: each run copies it). Default
#        $CORPUS or /work/bench-corpus/base; built there if missing.
# Environment:
#   RUNS=3                 runs per kind (median reported)
#   RUNS_013=1             runs of the unshimmed 0.13 (its stalls make it slow)
#   KINDS="ours 013-shim 013 restic"
#   OURS_BIN=<repo>/target/release   our bbackupd, bbackupquery, bbstored, bbstoreaccounts
#   MAKE_CORPUS=<shared>/bench/make-corpus.sh
#   VERIFY_RESTORE=count   or digest
#   VERIFY_RESTIC=dry-run  or check
#   WORK=/tmp/bb-client-bench.XXXX   scratch (removed at the end unless KEEP=1)
#   RESULTS=FILE           also append the raw result lines there
# Requires: apt-get install -y restic time (0.13: boxbackup-server boxbackup-client).
# Output: one line per step on stderr, then a markdown table on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
shared=$(cd "$repo/../shared" 2>/dev/null && pwd || echo /work/shared)
CORPUS=${1:-${CORPUS:-/work/bench-corpus/base}}
RUNS=${RUNS:-3}
RUNS_013=${RUNS_013:-1}
KINDS=${KINDS:-"ours 013-shim 013 restic"}
OURS_BIN=${OURS_BIN:-$repo/target/release}
MAKE_CORPUS=${MAKE_CORPUS:-$shared/bench/make-corpus.sh}
VERIFY_RESTORE=${VERIFY_RESTORE:-count}
VERIFY_RESTIC=${VERIFY_RESTIC:-dry-run}
PACK=${PACK:-$shared/fixtures/bb013}
SHIM_SRC=${SHIM_SRC:-$shared/tools/nodelay-shim.c}
WORK=${WORK:-$(mktemp -d /tmp/bb-client-bench.XXXXXX)}
mkdir -p "$WORK"
results=$WORK/results.txt
: > "$results"
export PATH=$PATH:/usr/sbin

die() { echo "client-vs: $*" >&2; exit 2; }
note() { echo "client-vs: $*" >&2; }

if [ ! -d "$CORPUS/pypi" ]; then
	note "no corpus at $CORPUS: building it (downloads the wheels once; takes a while)"
	bash "$MAKE_CORPUS" build "$CORPUS" >&2
fi
CORPUS=$(realpath "$CORPUS")
[ -x /usr/bin/time ] || die "GNU time missing: apt-get install -y time"

# Which kinds can run here.
kinds=()
for k in $KINDS; do
	case $k in
	ours)
		missing=
		for b in bbackupd bbackupquery bbstored bbstoreaccounts; do
			[ -x "$OURS_BIN/$b" ] || missing="$missing $b"
		done
		if [ -n "$missing" ]; then
			note "SKIPPING ours: missing in $OURS_BIN:$missing (cargo build --release -p bb-client -p bb-store)"
			continue
		fi
		if ! "$OURS_BIN/bbackupd" --help 2>&1 | grep -q -- --once; then
			note "SKIPPING ours: $OURS_BIN/bbackupd has no --once (the one-shot sync the bench drives)"
			continue
		fi
		;;
	013-shim | 013)
		for b in bbstored bbstoreaccounts bbackupd bbackupctl bbackupquery; do
			command -v "$b" >/dev/null || die "$b (0.13) missing: apt-get install -y boxbackup-server boxbackup-client"
		done
		;;
	restic) command -v restic >/dev/null || die "restic missing: apt-get install -y restic" ;;
	*) die "unknown kind $k" ;;
	esac
	kinds+=("$k")
done
[ ${#kinds[@]} -gt 0 ] || die "nothing to run"

shim=$WORK/nodelay.so
gcc -shared -fPIC -O2 -o "$shim" "$SHIM_SRC" -ldl

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
load() { cut -d' ' -f1 /proc/loadavg; }

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

wait_port() { # port pid
	local i
	for i in $(seq 1 600); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		kill -0 "$2" 2>/dev/null || die "server exited at start (see $WORK)"
		sleep 0.05
	done
	die "server not listening on $1"
}

# --- Box Backup stores (ours and 0.13 share the config syntax and the pack) ---

preload() { # kind -> env prefix for 0.13 binaries
	if [ "$1" = 013-shim ]; then echo "LD_PRELOAD=$shim"; else echo "LD_PRELOAD="; fi
}

make_store() { # kind dir
	local kind=$1 d=$2 accounts=bbstoreaccounts
	[ "$kind" = ours ] && accounts=$OURS_BIN/bbstoreaccounts
	rm -rf "$d"
	mkdir -p "$d/disc0"
	printf 'disc0\n{\n\tSetNumber = 0\n\tBlockSize = 4096\n\tDir0 = %s\n\tDir1 = %s\n\tDir2 = %s\n}\n' \
		"$d/disc0" "$d/disc0" "$d/disc0" > "$d/raidfile.conf"
	: > "$d/accounts.txt"
	sed -e "s|@STORE@|$d|g" -e "s|@CERTS@|$PACK/certs|g" "$PACK/conf/bbstored.conf.in" > "$d/bbstored.conf.in"
	sed -e "s|@PORT@|0|g" "$d/bbstored.conf.in" > "$d/bbstored.conf"
	"$accounts" -c "$d/bbstored.conf" create 01234567 0 60G 64G > "$d/create.log" 2>&1 \
		|| die "$accounts create: $(cat "$d/create.log")"
}

server_pid=
start_server() { # kind store port
	local kind=$1 d=$2 port=$3
	sed -e "s|@PORT@|$port|g" "$d/bbstored.conf.in" > "$d/bbstored.conf"
	case $kind in
	ours) "$OURS_BIN/bbstored" -F -c "$d/bbstored.conf" >> "$d/server.log" 2>&1 & ;;
	*) env "$(preload "$kind")" bbstored -F -c "$d/bbstored.conf" >> "$d/server.log" 2>&1 & ;;
	esac
	server_pid=$!
	wait_port "$port" "$server_pid"
}

stop_server() {
	kill -TERM "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
}

client_conf() { # clientdir port source
	sed -e "s|@PORT@|$2|g" -e "s|@CLIENT@|$1|g" -e "s|@SOURCE@|$3|g" \
		-e "s|@KEYS@|$PACK/keys|g" -e "s|@CERTS@|$PACK/certs|g" \
		"$PACK/conf/bbackupd.conf.in" > "$1/bbackupd.conf"
}

bb_backup() { # kind clientdir tag
	local kind=$1 c=$2 tag=$3
	if [ "$kind" = ours ]; then
		timed "$OURS_BIN/bbackupd" --once "$c/bbackupd.conf" > "$c/bbackupd-$tag.log" 2>&1
		[ "$rc" = 0 ] || die "our bbackupd --once failed ($rc): $c/bbackupd-$tag.log"
		return
	fi
	rm -f "$c/bbackupd.pid" "$c/bbackupd.sock"
	# Default log level: -V (trace) logs every stream write, ~18 MB a minute.
	env "$(preload "$kind")" /usr/bin/time -f "%M" -o "$c/bbackupd-$tag.rss" \
		bbackupd -F -c "$c/bbackupd.conf" > "$c/bbackupd-$tag.log" 2>&1 &
	local tpid=$! i bpid=
	for i in $(seq 1 600); do
		bpid=$(pgrep -P "$tpid" || true)
		[ -n "$bpid" ] && [ -S "$c/bbackupd.sock" ] && break
		kill -0 "$tpid" 2>/dev/null || die "bbackupd exited early: $c/bbackupd-$tag.log"
		sleep 0.05
	done
	local t0 t1
	t0=$(now)
	env "$(preload "$kind")" bbackupctl -q -c "$c/bbackupd.conf" sync-and-wait >&2 \
		|| die "sync-and-wait failed: $c/bbackupd-$tag.log"
	t1=$(now)
	secs=$(elapsed "$t0" "$t1")
	kill -TERM "$bpid"
	wait "$tpid" || true
	rss=$(tail -1 "$c/bbackupd-$tag.rss")
	[[ $rss =~ ^[0-9]+$ ]] || rss=0
	if grep -E '^(ERROR|FATAL)' "$c/bbackupd-$tag.log" >&2; then die "bbackupd logged errors: $c/bbackupd-$tag.log"; fi
}

bb_query() { # kind clientdir log command
	local kind=$1 c=$2 log=$3 cmd=$4
	if [ "$kind" = ours ]; then
		timed "$OURS_BIN/bbackupquery" -c "$c/bbackupd.conf" "$cmd" quit > "$log" 2>&1
	else
		timed env "$(preload "$kind")" bbackupquery -c "$c/bbackupd.conf" "$cmd" quit > "$log" 2>&1
	fi
}

# --- checks ---

tree_summary() { # dir -> "files bytes" (or the content digest)
	if [ "$VERIFY_RESTORE" = digest ]; then
		bash "$MAKE_CORPUS" digest "$1" | sed 's/ dirs=[0-9]*//'
	else
		find "$1" -type f -printf '%s\n' | awk '{n++; s+=$1} END {printf "files=%d bytes=%d\n", n, s}'
	fi
}

check_restore() { # restored source
	local a b
	a=$(tree_summary "$1")
	b=$(tree_summary "$2")
	[ "$a" = "$b" ] || die "restore differs: restored $a, source $b ($1)"
}

record() { # kind run step
	echo "$1 run=$2 $3 ${secs}s rss=${rss}KiB load=$(load)" >&2
	echo "$1 $2 $3 $secs $rss $(load)" >> "$results"
	[ -z "${RESULTS:-}" ] || echo "$1 $2 $3 $secs $rss $(load) $(date -u +%FT%TZ)" >> "$RESULTS"
}

# --- one run of one kind ---

run_bb() { # kind run
	local kind=$1 run=$2 store=$WORK/store client=$WORK/client src=$WORK/src dest=$WORK/restore port
	make_store "$kind" "$store"
	port=$(free_port)
	mkdir -p "$client"
	client_conf "$client" "$port" "$src"
	start_server "$kind" "$store" "$port"
	sync
	bb_backup "$kind" "$client" first
	record "$kind" "$run" first
	bash "$MAKE_CORPUS" mutate "$src" 1 > /dev/null 2>&1
	sleep 1 # the changes' mtimes must differ from the first sync's
	sync
	bb_backup "$kind" "$client" incr
	record "$kind" "$run" incr
	bb_query "$kind" "$client" "$client/restore.log" "restore source $dest"
	[ "$rc" = 0 ] || die "restore failed ($rc): $client/restore.log"
	record "$kind" "$run" restore
	check_restore "$dest" "$src"
	rm -rf "$dest"
	local cmp="compare -acq"
	[ "$kind" = ours ] && cmp="compare -ac"
	bb_query "$kind" "$client" "$client/compare.log" "$cmp"
	[ "$rc" = 1 ] || die "$cmp: exit $rc (1 = no differences): $client/compare.log"
	record "$kind" "$run" verify
	stop_server
	mkdir -p "$WORK/logs/$kind-$run"
	cp "$client"/*.log "$WORK/logs/$kind-$run/"
}

run_restic() { # run
	local run=$1 src=$WORK/src dest=$WORK/restore
	export RESTIC_REPOSITORY=$WORK/restic-repo RESTIC_PASSWORD=bench-password
	export RESTIC_CACHE_DIR=$WORK/restic-cache
	rm -rf "$RESTIC_REPOSITORY" "$RESTIC_CACHE_DIR"
	restic init > "$WORK/restic-init.log" 2>&1 || die "restic init: $(cat "$WORK/restic-init.log")"
	sync
	timed restic backup -q "$src" > "$WORK/restic-first.log" 2>> "$WORK/restic-first.log" 2>&1 || true1
	[ "$rc" = 0 ] || die "restic backup: exit $rc: $WORK/restic-first.log"
	record restic "$run" first
	bash "$MAKE_CORPUS" mutate "$src" 1 > /dev/null 2>&1
	sleep 1
	sync
	timed restic backup -q "$src" > "$WORK/restic-incr.log" 2>&1
	[ "$rc" = 0 ] || die "restic backup (incremental): exit $rc: $WORK/restic-incr.log"
	record restic "$run" incr
	timed restic restore latest -q --target "$dest" > "$WORK/restic-restore.log" 2>&1
	[ "$rc" = 0 ] || die "restic restore: exit $rc: $WORK/restic-restore.log"
	record restic "$run" restore
	check_restore "$dest$src" "$src"
	rm -rf "$dest"
	if [ "$VERIFY_RESTIC" = check ]; then
		timed restic check --read-data > "$WORK/restic-verify.log" 2>&1
		[ "$rc" = 0 ] || die "restic check: exit $rc: $WORK/restic-verify.log"
	else
		timed restic backup --dry-run --force -v "$src" > "$WORK/restic-verify.log" 2>&1
		[ "$rc" = 0 ] || die "restic backup --dry-run: exit $rc: $WORK/restic-verify.log"
		# Tree blobs (directory metadata) may differ; file contents must not.
		grep -Eq '^Data Blobs: +0 new' "$WORK/restic-verify.log" \
			|| die "restic dry run would add file data: $WORK/restic-verify.log"
	fi
	record restic "$run" verify
	mkdir -p "$WORK/logs/restic-$run"
	cp "$WORK"/restic-*.log "$WORK/logs/restic-$run/"
}

note "corpus $CORPUS: $(tree_summary "$CORPUS"); kinds ${kinds[*]}; runs $RUNS (013: $RUNS_013); work $WORK; load $(load); $(nproc) cores"
for run in $(seq 1 "$RUNS"); do
	for kind in "${kinds[@]}"; do
		[ "$kind" = 013 ] && [ "$run" -gt "$RUNS_013" ] && continue
		rm -rf "$WORK/src" "$WORK/client" "$WORK/store" "$WORK/restore" "$WORK/restic-repo"
		cp -a "$CORPUS" "$WORK/src"
		case $kind in
		restic) run_restic "$run" ;;
		*) run_bb "$kind" "$run" ;;
		esac
	done
done
rm -rf "$WORK/src" "$WORK/client" "$WORK/store" "$WORK/restore" "$WORK/restic-repo"

python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
kinds = []
for r in rows:
    if r[0] not in kinds:
        kinds.append(r[0])
steps = ["first", "incr", "restore", "verify"]
names = {"first": "first backup", "incr": "incremental", "restore": "restore", "verify": "verify/compare"}
med = {}
print("| client | runs | " + " | ".join(f"{names[s]} (s)" for s in steps) + " | " +
      " | ".join(f"peak RSS {s} (MiB)" for s in steps) + " | load avg |")
print("|---" * (3 + 2 * len(steps)) + "|")
for k in kinds:
    rs = [r for r in rows if r[0] == k]
    runs = len(set(r[1] for r in rs))
    cells, rsss = [], []
    for s in steps:
        xs = [float(r[3]) for r in rs if r[2] == s]
        if not xs:
            cells.append("-"); rsss.append("-"); continue
        med[(k, s)] = statistics.median(xs)
        extra = f" [{', '.join(f'{x:.1f}' for x in xs)}]" if len(xs) > 1 else ""
        cells.append(f"{med[(k, s)]:.2f}{extra}")
        rsss.append(f"{max(int(r[4]) for r in rs if r[2] == s) / 1024:.1f}")
    loads = [float(r[5]) for r in rs]
    print(f"| {k} | {runs} | " + " | ".join(cells) + " | " + " | ".join(rsss) +
          f" | {min(loads):.1f}-{max(loads):.1f} |")
print()
for base in ("restic", "013-shim", "013"):
    if base not in kinds:
        continue
    for k in kinds:
        if k == base:
            continue
        ratios = []
        for s in steps:
            if (k, s) in med and (base, s) in med and med[(k, s)] > 0:
                ratios.append(f"{names[s]} {med[(base, s)] / med[(k, s)]:.2f}x")
        if ratios:
            print(f"- {k} vs {base} (speed, >1 = {k} faster): " + ", ".join(ratios))
EOF
[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
