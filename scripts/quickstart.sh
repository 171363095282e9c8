#!/usr/bin/env bash
# The quick start: builds bb-format and backs up a directory into Box Backup 0.13
# objects, then restores and verifies it (see README.md).
#   scripts/quickstart.sh [SOURCE_DIR] [OUT_DIR]
# Without SOURCE_DIR a small built-in sample is used; OUT_DIR defaults to
# ./bb-quickstart. Remove OUT_DIR to clean up.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v cargo >/dev/null || { echo "quickstart.sh: cargo not found; install Rust (https://rustup.rs) first" >&2; exit 2; }
cargo build --quiet --release --manifest-path "$repo/Cargo.toml" -p bb-format --example quickstart
exec "$repo/target/release/examples/quickstart" "$@"
