#!/bin/sh
# Installs every Box Backup tool (the crates with binaries: store, client, fs)
# into PREFIX/bin, the man pages into PREFIX/share/man, and the bash, zsh and
# fish completions; with --systemd (the default when run as root), the units
# of contrib/systemd into /etc/systemd/system, their /usr/local/bin rewritten
# to PREFIX/bin.
#
#   scripts/install.sh [--prefix DIR] [--systemd | --no-systemd] [--unit-dir DIR]
#
# cargo install takes one --path per run, hence one run per crate. --locked
# builds with the committed Cargo.lock.
set -eu

prefix=/usr/local
systemd=auto
unit_dir=/etc/systemd/system
while [ $# -gt 0 ]; do
    case $1 in
    --prefix) prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --systemd) systemd=yes; shift ;;
    --no-systemd) systemd=no; shift ;;
    --unit-dir) unit_dir=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ "$systemd" = auto ]; then
    if [ "$(id -u)" = 0 ] && [ -d /run/systemd/system ]; then systemd=yes; else systemd=no; fi
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# One target directory for the three installs, so that the dependencies they
# share are built once (cargo install otherwise builds each in a fresh temp dir).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
for crate in store client fs; do
    cargo install --locked --path "$crate" --root "$prefix"
done
# cargo install leaves its own bookkeeping in PREFIX; it is harmless.

man=$prefix/share/man
for page in contrib/man/*; do
    section=${page##*.}
    install -D -m 0644 "$page" "$man/man$section/$(basename "$page")"
done

share=$prefix/share
for f in contrib/completions/bash/*; do
    install -D -m 0644 "$f" "$share/bash-completion/completions/$(basename "$f")"
done
for f in contrib/completions/zsh/*; do
    install -D -m 0644 "$f" "$share/zsh/site-functions/$(basename "$f")"
done
for f in contrib/completions/fish/*; do
    install -D -m 0644 "$f" "$share/fish/vendor_completions.d/$(basename "$f")"
done

if [ "$systemd" = yes ]; then
    mkdir -p "$unit_dir"
    for u in contrib/systemd/*.service; do
        sed "s#/usr/local/bin/#$prefix/bin/#g" "$u" > "$unit_dir/$(basename "$u")"
        chmod 0644 "$unit_dir/$(basename "$u")"
    done
    if [ "$unit_dir" = /etc/systemd/system ] && command -v systemctl >/dev/null; then
        systemctl daemon-reload || true
    fi
    echo "systemd units in $unit_dir: systemctl enable --now bbstored / bbackupd"
fi
echo "installed into $prefix (binaries in $prefix/bin)"
