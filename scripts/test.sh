#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian 12 machine with Rust installed.
# As root it first installs the Debian packages the suite needs (listed in
# scripts/apt-packages.txt); as another user it says which ones are missing.
# This is the README's test command, and .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v cargo >/dev/null || { echo "test.sh: cargo not found; install Rust (https://rustup.rs) first" >&2; exit 2; }

mapfile -t wanted < <(grep -v '^\s*\(#\|$\)' scripts/apt-packages.txt)
missing=()
for p in "${wanted[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "test.sh: installing ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	else
		echo "test.sh: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
		exit 2
	fi
fi

echo "test.sh: cargo fmt --check"
cargo fmt --all -- --check
echo "test.sh: cargo clippy"
cargo clippy --workspace --all-targets --locked -q -- -D warnings
echo "test.sh: cargo test"
# The FUSE mount tests skip only where /dev/fuse is missing; here they must run.
BB_REQUIRE_FUSE=1 cargo test --workspace --locked
