#!/usr/bin/env bash
# Runs fuzz targets for a while each and keeps what they find.
#   fuzz/run.sh SECONDS [TARGET...]     (default: every target, one after another)
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz wants a nightly
# compiler; RUSTC_BOOTSTRAP=1 lets the stable toolchain build it.
# The corpus grows in corpus/<target>/; crashes land in artifacts/<target>/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
secs=${1:?usage: run.sh SECONDS [TARGET...]}; shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O >/dev/null
mkdir -p logs
for t in "${targets[@]}"; do
	mkdir -p "corpus/$t"
	echo "fuzz: $t for ${secs}s"
	cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -max_len=1048576 \
		>"logs/$t.log" 2>&1 || { echo "fuzz: $t FAILED, see fuzz/logs/$t.log"; exit 1; }
	grep -E '^(Done|#[0-9]+ *DONE)' "logs/$t.log" | tail -1
done
