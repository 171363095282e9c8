#!/usr/bin/env python3
"""Builds the fuzz seed corpora from objects the real Box Backup 0.13 wrote.

Reads ../../shared/fixtures/bb013/store-single.tar.gz (the fixture keys are the
test-vector keys that the fuzz targets use, so encrypted seeds decrypt) and
writes one file per seed, named by its SHA-1 as libFuzzer does, into
corpus/<target>/. Run it again after the fixture pack changes; the corpora that
fuzzing grew from these seeds are committed after `cargo fuzz cmin`.
"""
import hashlib, os, struct, sys, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACK = os.path.join(HERE, "..", "..", "shared", "fixtures", "bb013")

def put(target, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)

# Protocol seeds: the complete messages captured between the real 0.13 client and
# server (../../shared/spec/protocol.md section 5), one direction per seed, plus
# streams of both forms.
PROTO_SEEDS = [
    # 5.1 client to server, after the ident
    "0000000c0000000100000001 00000010000000020000002a00000001"
    " 000000150000001500000000000000 01ffff000c01 0000000800000004",
    # 5.1 server to client, after the ident, with the 40-byte listing stream
    "0000000c0000000100000001 0000002800000003 0000000000000000 0000000000000002"
    " 00000000000003e8 00000000000007d0 000000100000000500000000 00000001"
    " 00000028ffffffff 4449525f00000000 0000000000000001 0000000000000001"
    " 0000000000000000 00000000 00000000 0000000800000004",
    # 5.2 CreateDirectory, StoreFile, GetBlockIndexByName, StoreFile (diff)
    "00000022000000140000000000000001 00066108df2fe1cb 2a007a2fd331388a9975",
    "0000003a0000001e0000000000000002 00066108df2fe1cb 78e395ffb4e51f69 0000000000000000"
    " 4a0014737cedaa258b5676913c380e963926",
    "0000001a000000230000000000000002 2a005293a5c5944fe4c1",
    "000000320000001e0000000000000002 00066108fec39fc3 2a07b0307b6c2d07 0000000000000009"
    " 2a005293a5c5944fe4c1",
    # 5.4 errors and keep-alive
    "00000010 00000000 000003e8 00000002 00000010 00000000 00000000 ffffffff"
    " 00000008 0000002a 00000008 0000002b 00000008 0000002c",
    # object names (7.2)
    "4a0014737cedaa258b5676913c380e963926 2a007a2fd331388a9975",
    # a chunked stream with a 9-byte chunk and a 1-byte chunk, then the next object
    "ffffffffffffffff 09 000102030405060708 01 ff 00 0000000800000004",
    # a sized stream of 5 bytes
    "00000005ffffffff 0102030405",
]

def proto_seeds():
    for h in PROTO_SEEDS:
        put("proto", bytes.fromhex(h.replace(" ", "")))
    ident = b"Box-Backup:v=C" + bytes(18)
    put("proto", ident + bytes.fromhex(PROTO_SEEDS[0].replace(" ", "")))

def main():
    proto_seeds()
    with tarfile.open(os.path.join(PACK, "store-single.tar.gz")) as t:
        for m in t.getmembers():
            if not m.isfile() or "/backup/" not in m.name:
                continue
            data = t.extractfile(m).read()
            leaf = os.path.basename(m.name)
            if leaf == "info.rfw":
                put("storeinfo", data)
            elif leaf.startswith("refcount"):
                put("refcount", data)
            elif data[:4] == b"DIR_":
                put("directory", data)
            elif data[:4] == b"file":
                n = struct.unpack(">q", data[4:12])[0]
                name_len = struct.unpack("<H", data[36:38])[0] >> 2
                name = data[36:36 + name_len]
                attr_len = struct.unpack(">I", data[36 + name_len:40 + name_len])[0]
                attrs = data[40 + name_len:40 + name_len + attr_len]
                index = data[len(data) - (28 + 32 * n):]
                put("filename", name)
                put("attributes", attrs)
                put("block_index", index)
                if len(data) <= 65536:
                    put("file", data)
                    put("file", index + data[:len(data) - len(index)])  # stream order
    print("seeds:", {d: len(os.listdir(os.path.join(HERE, "corpus", d)))
                     for d in sorted(os.listdir(os.path.join(HERE, "corpus")))})

if __name__ == "__main__":
    sys.exit(main())
