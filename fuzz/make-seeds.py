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

def main():
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
