#!/usr/bin/env python3
"""Builds store/tests/data/damaged-single.tar.gz from the bb013 fixture pack.

Usage: make-damaged.py FIXTURE_STORE_TARBALL OUT_DIR
Needs the real 0.13 bbstoreaccounts (to make the shrunken store consistent
before it is damaged). Steps:
 1. unpack store-single, drop many/ (0x1f, 0x20..0x10f), text-1MiB (0xd) and the
    big-5MiB chain (0x5, 0x122, 0x123) from directory 0x2 and from disc, then let
    0.13's `check fix` make the counters consistent: that is `good/`;
 2. copy it to `damaged/` and damage it (see DAMAGE below).
"""
import os, shutil, struct, subprocess, sys, tarfile

ACC = "backup/01234567"

def parse_dir(b):
    magic, n, oid, cont, amt, opts = struct.unpack(">IiqqqI", b[:36])
    p = 36
    (alen,) = struct.unpack(">I", b[p:p + 4]); p += 4 + alen
    head = b[:p]
    ents = []
    for _ in range(n):
        s = p
        p += 34
        (nh,) = struct.unpack("<H", b[p:p + 2]); p += nh >> 2
        (ml,) = struct.unpack(">I", b[p:p + 4]); p += 4 + ml
        ents.append(bytearray(b[s:p]))
    deps = []
    if opts & 1:
        for i in range(n):
            deps.append(b[p + 16 * i:p + 16 * i + 16])
    return bytearray(head), ents, deps

def write_dir(head, ents, deps):
    opts = 1 if any(d != b"\0" * 16 for d in deps) else 0
    head[4:8] = struct.pack(">i", len(ents))
    head[32:36] = struct.pack(">I", opts)
    out = bytes(head) + b"".join(bytes(e) for e in ents)
    if opts:
        out += b"".join(deps)
    return out

def eid(e):
    return struct.unpack(">q", e[8:16])[0]

def opath(root, oid):
    parts = []
    rest = oid >> 8
    while rest:
        parts.append("%02x" % (rest & 0xff)); rest >>= 8
    return os.path.join(root, ACC, *parts, "o%02x.rfw" % (oid & 0xff))

def edit_dir(root, oid, fn):
    p = opath(root, oid)
    head, ents, deps = parse_dir(open(p, "rb").read())
    if not deps:
        deps = [b"\0" * 16] * len(ents)
    head, ents, deps = fn(head, ents, deps)
    open(p, "wb").write(write_dir(head, ents, deps))

def main():
    tarball, out = sys.argv[1], os.path.abspath(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    work = os.path.join(out, "work")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    tarfile.open(tarball).extractall(work)
    good = os.path.join(work, "store-single")
    disc = os.path.join(good, "disc0")
    drop = {0x1f, 0xd, 0x5, 0x122, 0x123}
    def shrink(head, ents, deps):
        keep = [i for i, e in enumerate(ents) if eid(e) not in drop]
        return head, [ents[i] for i in keep], [deps[i] for i in keep]
    edit_dir(disc, 0x2, shrink)
    for oid in list(drop) + list(range(0x20, 0x110)):
        os.remove(opath(disc, oid))
    conf = os.path.join(good, "bbstored.conf")
    for f in ("raidfile.conf", "bbstored.conf"):
        p = os.path.join(good, f)
        text = open(p).read()
        open(p, "w").write(text.replace("@STORE@", good))
    subprocess.run(["bbstoreaccounts", "-c", conf, "check", "01234567", "fix"],
                   stdout=subprocess.DEVNULL, check=False)
    for f in ("raidfile.conf", "bbstored.conf"):
        p = os.path.join(good, f)
        text = open(p).read()
        open(p, "w").write(text.replace(good, "@STORE@"))

    # DAMAGE
    bad = os.path.join(work, "damaged")
    shutil.copytree(good, bad)
    d = os.path.join(bad, "disc0")
    # 1. a missing object: one.bin (0xa, listed in 0x2)
    os.remove(opath(d, 0xa))
    # 2. an orphan: a copy of 0x15 as 0x125, its header naming container 0x999
    src = bytearray(open(opath(d, 0x15), "rb").read())
    src[12:20] = struct.pack(">q", 0x999)
    open(opath(d, 0x125), "wb").write(src)
    # 3. a wrong entry size: 0x18 in 0x17 says 5 blocks
    def size5(head, ents, deps):
        for e in ents:
            if eid(e) == 0x18:
                e[16:24] = struct.pack(">q", 5)
        return head, ents, deps
    edit_dir(d, 0x17, size5)
    # 4. a bad container ID: directory 0x11c (a/b/c) claims to be in 0x118
    p = opath(d, 0x11c)
    b = bytearray(open(p, "rb").read()); b[16:24] = struct.pack(">q", 0x118)
    open(p, "wb").write(b)
    # 5. wrong counters: blocks used +100, 7 directories
    p = os.path.join(d, ACC, "info.rfw")
    b = bytearray(open(p, "rb").read())
    (nl,) = struct.unpack(">I", b[8:12]); o = 12 + nl
    used = struct.unpack(">q", b[o + 16:o + 24])[0]
    b[o + 16:o + 24] = struct.pack(">q", used + 100)
    b[o + 96:o + 104] = struct.pack(">q", 7)
    open(p, "wb").write(b)
    # 6. a spurious file in the account root
    open(os.path.join(d, ACC, "junk.rfw"), "wb").write(b"not an object\n")

    with tarfile.open(os.path.join(out, "damaged-single.tar.gz"), "w:gz") as t:
        t.add(bad, arcname="damaged")
    shutil.rmtree(work)

main()
