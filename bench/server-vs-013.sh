#!/usr/bin/env bash
# server-vs-013.sh -- our bbstored against Box Backup 0.13's bbstored, same client.
#
# In one run, backs up the same tree with the same client (the real 0.13
# bbackupd, snapshot mode, TCP_NODELAY shim preloaded) to:
#   ours      our bbstored (release build; never given the shim)
#   013-shim  0.13's bbstored with the TCP_NODELAY shim
#   013       0.13's bbstored as it ships (Nagle + delayed ACK: ~40 ms stalls)
#   ours-nosync  diagnostic only, not a configuration: ours with fsync(2) and
#             fdatasync(2) made no-ops by an LD_PRELOAD, to show what our
#             durability costs (0.13 never calls fsync)
# each on a fresh store and a fresh copy of the tree, RUNS times, interleaved
# (run 1 of every server, then run 2...). One run = a first (full) backup,
# then MUTATE on the tree, then a second (incremental) backup.
#
# Timed: `bbackupctl sync-and-wait` only (bbackupd start-up, tree copy and
# store creation excluded). Server peak RSS: GNU time's %M over the server
# process (for 0.13, which forks a child per connection, the largest of its
# processes, as wait4 reports it). The server is restarted between the two
# backups so that each phase gets its own peak.
#
# Usage: bench/server-vs-013.sh TREE
# Environment:
#   RUNS=3                    runs per server
#   SERVERS="ours 013-shim 013"
#   MUTATE="$(cd "$(dirname "$0")/../../shared" && pwd)/bench/make-corpus.sh mutate"   (called as $MUTATE DIR)
#   OURS=<repo>/target/release/bbstored
#   RAID=0                    1: three discs (RAID), 0: one disc
#   COMPARE=0                 1: after each backup to ours, 0.13 `compare -acQ`
#   WORK=/tmp/bb-bench.XXXX   scratch (removed at the end unless KEEP=1)
# Output: one line per backup on stderr, then a table of medians on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
TREE=$(realpath "${1:?usage: server-vs-013.sh TREE}")
RUNS=${RUNS:-3}
SERVERS=${SERVERS:-"ours 013-shim 013"}
MUTATE=${MUTATE:-$(cd "$(dirname "$0")/../../shared" && pwd)/bench/make-corpus.sh mutate}
OURS=${OURS:-$repo/target/release/bbstored}
RAID=${RAID:-0}
COMPARE=${COMPARE:-0}
PACK=${PACK:-$(cd "$(dirname "$0")/../../shared" && pwd)/fixtures/bb013}
SHIM_SRC=${SHIM_SRC:-$(cd "$(dirname "$0")/../../shared" && pwd)/tools/nodelay-shim.c}
WORK=${WORK:-$(mktemp -d /tmp/bb-bench.XXXXXX)}
mkdir -p "$WORK"
results=$WORK/results.txt
: > "$results"

die() { echo "server-vs-013: $*" >&2; exit 2; }
[ -x "$OURS" ] || die "$OURS missing: cargo build --release -p bb-store"
for b in bbstored bbstoreaccounts bbackupd bbackupctl bbackupquery; do
	command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || die "$b (0.13) missing"
done
export PATH=$PATH:/usr/sbin
shim=$WORK/nodelay.so
gcc -shared -fPIC -O2 -o "$shim" "$SHIM_SRC" -ldl
nosync=$WORK/nosync.so
printf 'int fsync(int fd) { (void)fd; return 0; }\nint fdatasync(int fd) { (void)fd; return 0; }\n' > "$WORK/nosync.c"
gcc -shared -fPIC -O2 -o "$nosync" "$WORK/nosync.c"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

wait_port() { # port pid
	local i
	for i in $(seq 1 600); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		kill -0 "$2" 2>/dev/null || die "server exited at start (see $WORK)"
		sleep 0.05
	done
	die "server not listening on $1"
}

make_store() { # dir
	local d=$1
	rm -rf "$d"
	mkdir -p "$d/disc0" "$d/disc1" "$d/disc2"
	local d1=$d/disc0 d2=$d/disc0
	if [ "$RAID" = 1 ]; then d1=$d/disc1; d2=$d/disc2; fi
	printf 'disc0\n{\n\tSetNumber = 0\n\tBlockSize = 4096\n\tDir0 = %s\n\tDir1 = %s\n\tDir2 = %s\n}\n' \
		"$d/disc0" "$d1" "$d2" > "$d/raidfile.conf"
	: > "$d/accounts.txt"
	# the port is filled in per start
	sed -e "s|@STORE@|$d|g" -e "s|@CERTS@|$PACK/certs|g" "$PACK/conf/bbstored.conf.in" > "$d/bbstored.conf.in"
	sed -e "s|@PORT@|0|g" "$d/bbstored.conf.in" > "$d/bbstored.conf"
	# Limits never reached.
	bbstoreaccounts -c "$d/bbstored.conf" create 01234567 0 60G 64G > "$d/create.log" 2>&1 || die "bbstoreaccounts create: $(cat "$d/create.log")"
}

server_pid=
time_pid=
start_server() { # kind store port
	local kind=$1 d=$2 port=$3
	sed -e "s|@PORT@|$port|g" "$d/bbstored.conf.in" > "$d/bbstored.conf"
	local cmd
	case $kind in
	ours) cmd=("$OURS" -F -c "$d/bbstored.conf") ;;
	ours-nosync) cmd=(env "LD_PRELOAD=$nosync" "$OURS" -F -c "$d/bbstored.conf") ;;
	013-shim) cmd=(env "LD_PRELOAD=$shim" "$(command -v bbstored)" -F -c "$d/bbstored.conf") ;;
	013) cmd=("$(command -v bbstored)" -F -c "$d/bbstored.conf") ;;
	*) die "unknown server $kind" ;;
	esac
	/usr/bin/time -f "%M %U %S" -o "$d/maxrss" "${cmd[@]}" >> "$d/server.log" 2>&1 &
	time_pid=$!
	local i
	for i in $(seq 1 100); do
		server_pid=$(pgrep -P "$time_pid" || true)
		[ -n "$server_pid" ] && break
		sleep 0.02
	done
	[ -n "$server_pid" ] || die "no server process"
	wait_port "$port" "$server_pid"
}

stop_server() { # store; sets rss (KiB) and cpu (user + system seconds)
	kill -TERM "$server_pid" 2>/dev/null || true
	wait "$time_pid" || true
	read -r rss cpu < <(tail -1 "$1/maxrss" | awk '{printf "%d %.2f\n", $1, $2 + $3}')
}

client_conf() { # clientdir port source
	sed -e "s|@PORT@|$2|g" -e "s|@CLIENT@|$1|g" -e "s|@SOURCE@|$3|g" \
		-e "s|@KEYS@|$PACK/keys|g" -e "s|@CERTS@|$PACK/certs|g" \
		"$PACK/conf/bbackupd.conf.in" > "$1/bbackupd.conf"
}

backup() { # clientdir tag -> prints seconds
	local c=$1 tag=$2
	rm -f "$c/bbackupd.pid" "$c/bbackupd.sock"
	LD_PRELOAD=$shim bbackupd -F -V -c "$c/bbackupd.conf" > "$c/bbackupd-$tag.log" 2>&1 &
	local bpid=$! i
	for i in $(seq 1 600); do
		[ -S "$c/bbackupd.sock" ] && break
		kill -0 $bpid 2>/dev/null || die "bbackupd exited early: $c/bbackupd-$tag.log"
		sleep 0.05
	done
	local t0 t1
	t0=$(now)
	LD_PRELOAD=$shim bbackupctl -q -c "$c/bbackupd.conf" sync-and-wait >&2 \
		|| die "sync-and-wait failed: $c/bbackupd-$tag.log"
	t1=$(now)
	kill -TERM $bpid; wait $bpid || true
	if grep -E '^(ERROR|FATAL)' "$c/bbackupd-$tag.log" >&2; then die "bbackupd logged errors: $c/bbackupd-$tag.log"; fi
	grep -q 'File statistics' "$c/bbackupd-$tag.log" || die "no sync summary: $c/bbackupd-$tag.log"
	python3 -c "print(f'{$t1 - $t0:.3f}')"
}

compare() { # clientdir
	local out rc=0
	out=$(LD_PRELOAD=$shim bbackupquery -c "$1/bbackupd.conf" "compare -acQ" quit 2>&1) || rc=$?
	[ $rc = 1 ] || die "compare -acQ: exit $rc: $out"
}

used_blocks() { # store
	bbstoreaccounts -c "$1/bbstored.conf" info 01234567 | awk -F: '/^ *Used/ {print $2}' | awk '{print $1}'
}

echo "tree $TREE: $(find "$TREE" -type f | wc -l) files, $(du -sh --apparent-size "$TREE" | cut -f1); runs $RUNS; servers $SERVERS; raid $RAID; work $WORK" >&2
for run in $(seq 1 "$RUNS"); do
	for kind in $SERVERS; do
		store=$WORK/store client=$WORK/client src=$WORK/src
		rm -rf "$client" "$src"
		mkdir -p "$client"
		cp -a "$TREE" "$src"
		make_store "$store"
		port=$(free_port)
		client_conf "$client" "$port" "$src"
		sync

		start_server "$kind" "$store" "$port"
		t_first=$(backup "$client" first)
		stop_server "$store"; rss_first=$rss cpu_first=$cpu
		[ "$COMPARE" = 1 ] && [ "${kind%-nosync}" = ours ] && { start_server "$kind" "$store" "$port"; compare "$client"; stop_server "$store"; }
		used_first=$(used_blocks "$store")

		$MUTATE "$src" > /dev/null 2>&1
		sleep 1 # mtimes of the changes must differ from the first sync's
		sync
		port=$(free_port)
		client_conf "$client" "$port" "$src"
		start_server "$kind" "$store" "$port"
		t_second=$(backup "$client" second)
		stop_server "$store"; rss_second=$rss cpu_second=$cpu
		[ "$COMPARE" = 1 ] && [ "${kind%-nosync}" = ours ] && { start_server "$kind" "$store" "$port"; compare "$client"; stop_server "$store"; }
		used_second=$(used_blocks "$store")
		line="$kind run=$run first=${t_first}s cpu=${cpu_first}s rss=${rss_first}KiB second=${t_second}s cpu=${cpu_second}s rss=${rss_second}KiB used_blocks=$used_first,$used_second"
		echo "$line" >&2
		echo "$kind $run $t_first $rss_first $t_second $rss_second $used_first $used_second $cpu_first $cpu_second" >> "$results"
	done
done

python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
kinds = []
for r in rows:
    if r[0] not in kinds:
        kinds.append(r[0])
med = lambda xs: statistics.median(xs)
print(f"| server | runs | first backup (s) | server CPU (s) | incremental (s) | server CPU (s) | peak RSS first (MiB) | peak RSS incr. (MiB) | blocks used |")
print(f"|---|---|---|---|---|---|---|---|---|")
base = {}
for k in kinds:
    rs = [r for r in rows if r[0] == k]
    f = med([float(r[2]) for r in rs]); s = med([float(r[4]) for r in rs])
    m1 = max(int(r[3]) for r in rs) / 1024; m2 = max(int(r[5]) for r in rs) / 1024
    base[k] = (f, s)
    used = sorted(set(f"{r[6]}/{r[7]}" for r in rs))
    c1 = med([float(r[8]) for r in rs]); c2 = med([float(r[9]) for r in rs])
    print(f"| {k} | {len(rs)} | {f:.2f} [{', '.join(r[2] for r in rs)}] | {c1:.2f} | {s:.2f} [{', '.join(r[4] for r in rs)}] | {c2:.2f} | {m1:.1f} | {m2:.1f} | {' '.join(used)} |")
if "ours" in base:
    for k in kinds:
        if k not in ("ours", "ours-nosync"):
            print(f"speed-up of ours over {k}: first {base[k][0]/base['ours'][0]:.2f}x, incremental {base[k][1]/base['ours'][1]:.2f}x")
EOF
[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
