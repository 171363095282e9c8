#!/usr/bin/env python3
"""Records a session with the real Box Backup 0.13 bbstored, for bb-proto's golden
tests (session-013.txt). Every command type is sent once or more, on a scratch
copy of the bb013 fixture store; every byte each side sent is written out as hex,
one message (or stream) a line, prefixed C (client) or S (server).

    capture-013.py PORT > session-013.txt
    (with `bbstored -F -c DEST/store-single/bbstored.conf` running, where DEST
     came from ../../../../shared/fixtures/bb013/instantiate.sh DEST single PORT)

The client is this script (Python's ssl, the fixture's client certificate), so
the client side is our bytes and the server side is 0.13's.
"""
import os, socket, ssl, struct, sys

PACK = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "..", "..", "..", "..", "shared", "fixtures", "bb013")
PACK = os.environ.get("BB013", PACK)
IDENT = b"Box-Backup:v=C" + bytes(18)
STREAM = 0xFFFFFFFF

def obj(kind, body=b""):
    return struct.pack(">II", 8 + len(body), kind) + body

def clear_name(s):
    b = s.encode()
    return struct.pack("<H", ((len(b) + 2) << 2) | 1) + b

class Conn:
    def __init__(self, port):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(f"{PACK}/certs/client/serverCA.pem")
        ctx.load_cert_chain(f"{PACK}/certs/client/01234567-cert.pem",
                            f"{PACK}/certs/client/01234567-key.pem")
        self.s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))

    def read(self, n):
        b = b""
        while len(b) < n:
            d = self.s.recv(n - len(b))
            if not d:
                raise EOFError(f"closed after {len(b)} of {n} bytes")
            b += d
        return b

    def send(self, data):
        print("C", data.hex())
        self.s.sendall(data)

    def reply(self):
        h = self.read(8)
        size, kind = struct.unpack(">II", h)
        r = h + self.read(size - 8)
        print("S", r.hex())
        return kind, r[8:]

    def stream(self):
        h = self.read(8)
        size, kind = struct.unpack(">II", h)
        assert kind == STREAM and size != 0xFFFFFFFF, h.hex()
        data = self.read(size)
        print("S", (h + data).hex())
        return data

    def cmd(self, kind, body=b"", stream=None, reply_stream=None):
        self.send(obj(kind, body))
        if stream is not None:
            self.send(struct.pack(">II", len(stream), STREAM) + stream)
        k, b = self.reply()
        data = self.stream() if reply_stream and reply_stream(k, b) else None
        return k, b, data

def entries(listing):
    """(id, flags, name bytes) of each entry of a directory stream (7.1)."""
    n = struct.unpack(">i", listing[4:8])[0]
    p = 36
    alen = struct.unpack(">i", listing[p:p + 4])[0]
    p += 4 + alen
    out = []
    for _ in range(n):
        mtime, oid, size, ahash, flags = struct.unpack(">qqqQh", listing[p:p + 34])
        p += 34
        l = struct.unpack("<H", listing[p:p + 2])[0] >> 2
        name = listing[p:p + l]
        p += l
        alen = struct.unpack(">i", listing[p:p + 4])[0]
        p += 4 + alen
        out.append((oid, flags, name, size))
    return out

def main():
    c = Conn(int(sys.argv[1]))
    c.send(IDENT)
    print("S", c.read(32).hex())
    ok = lambda k, b: k == 5
    c.cmd(1, struct.pack(">i", 1))                                   # Version
    c.cmd(2, struct.pack(">ii", 0x01234567, 0))                      # Login, read/write
    c.cmd(42)                                                        # GetIsAlive
    c.cmd(40)                                                        # GetAccountUsage
    c.cmd(44)                                                        # GetAccountUsage2
    _, _, root = c.cmd(21, struct.pack(">qhh?", 1, -1, 12, True), reply_stream=ok)
    loc = [e for e in entries(root) if e[1] & 2][0]
    _, _, listing = c.cmd(21, struct.pack(">qhh?", loc[0], -1, 12, True), reply_stream=ok)
    files = sorted((e for e in entries(listing) if e[1] & 1), key=lambda e: e[3])
    f = files[0]
    c.cmd(12, struct.pack(">qq", f[0], loc[0]), reply_stream=lambda k, b: k == 13 and b[:4] != bytes(4))
    c.cmd(12, struct.pack(">qq", 0, loc[0]), reply_stream=lambda k, b: k == 13 and b[:4] != bytes(4))
    c.cmd(12, struct.pack(">qq", 999999, loc[0]), reply_stream=lambda k, b: k == 13 and b[:4] != bytes(4))
    c.cmd(10, struct.pack(">q", f[0]), reply_stream=ok)             # GetObject
    c.cmd(34, struct.pack(">q", f[0]), reply_stream=ok)             # GetBlockIndexByID
    c.cmd(35, struct.pack(">q", loc[0]) + f[2], reply_stream=lambda k, b: k == 5 and b != bytes(8))
    c.cmd(35, struct.pack(">q", loc[0]) + clear_name("absent"),
          reply_stream=lambda k, b: k == 5 and b != bytes(8))
    c.cmd(31, struct.pack(">qq", loc[0], f[0]), reply_stream=ok)    # GetFile
    c.cmd(21, struct.pack(">qhh?", 999, -1, 0, False), reply_stream=ok)  # error 7
    attrs = bytes(range(1, 11))
    _, b, _ = c.cmd(20, struct.pack(">qq", 1, 1000) + clear_name("newdir"), stream=attrs)
    new = struct.unpack(">q", b)[0]
    _, b, _ = c.cmd(46, struct.pack(">qqq", new, 2000, 3000) + clear_name("sub"), stream=attrs)
    sub = struct.unpack(">q", b)[0]
    c.cmd(20, struct.pack(">qq", 1, 1000) + clear_name("newdir"), stream=attrs)  # error 8
    c.cmd(22, struct.pack(">qq", new, 4000), stream=bytes(range(20, 27)))
    # StoreFile of garbage, chunked: the server drains it and answers error 6.
    garbage = b"not a box backup file"
    c.send(obj(30, struct.pack(">qqQq", new, 5000, 0x1122334455667788, 0) + clear_name("junk")))
    c.send(struct.pack(">II", STREAM, STREAM) + bytes([len(garbage)]) + garbage + b"\0")
    c.reply()
    c.cmd(32, struct.pack(">qQ", new, 42) + clear_name("nofile"), stream=attrs)   # error 7
    c.cmd(11, struct.pack(">qqqi", sub, new, new, 3) + clear_name("moved"))
    c.cmd(11, struct.pack(">qqqi", sub, new, new, 3) + clear_name("moved"))      # error 10
    c.cmd(33, struct.pack(">q", new) + clear_name("nofile"))        # Success(0)
    c.cmd(36, struct.pack(">qq", new, 999))                         # Success(0)
    c.cmd(23, struct.pack(">q", new))
    c.cmd(24, struct.pack(">q", new))
    c.cmd(23, struct.pack(">q", 1))                                 # error 9
    c.cmd(6, struct.pack(">q", 0x0006_6108_e04b_9821))
    c.cmd(1, struct.pack(">i", 1))                                  # error 2
    c.cmd(4)                                                        # Finished

if __name__ == "__main__":
    main()
