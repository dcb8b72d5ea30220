#!/usr/bin/env python3
"""make_seeds.py: writes the starting seeds of the verify and codec fuzz targets
(and copies the event fixtures for decode) into DIR/TARGET. The committed corpora
under tests/fuzz/corpus/ are these, grown by fuzzing and minimised with -merge=1;
run this only to start afresh:  tests/fuzz/make_seeds.py /tmp/seeds
Standard library only: the msgpack here is packed by hand."""
import base64, glob, hashlib, hmac, os, shutil, struct, sys

out = sys.argv[1] if len(sys.argv) > 1 else "seeds"
here = os.path.dirname(os.path.abspath(__file__))

def write(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)

# ---- verify: the secrets of fuzz_verify.c, fixed now 1700000000 ----
KEYS = [b"fuzz-secret-number-one!!", b"the second fuzzing key, 32 bytes"]

def sig(key, msg_id, ts, body):
    mac = hmac.new(key, msg_id + b"." + ts + b"." + body, hashlib.sha256).digest()
    return b"v1," + base64.b64encode(mac)

body = b'{"type":"session.created","data":{"id":"sess_1","user_id":"user_1"}}'
good = sig(KEYS[0], b"msg_1", b"1700000000", body)
write("verify", "full-ok", b"\x00msg_1\n1700000000\n" + good + b"\n" + body)
write("verify", "full-rotation", b"\x00msg_2\n1700000299\nv1,AAAA " +
      sig(KEYS[1], b"msg_2", b"1700000299", b"{}") + b" v1a,xyz\n{}")
write("verify", "full-added-first", b"\x0cmsg_3\n1699999700\nv2,abc v1,\n[]")
write("verify", "full-added-last", b"\x06msg_4\n1700000001\nv1,=== ,,\n")
write("verify", "full-too-old", b"\x00msg_5\n1699999699\n" + sig(KEYS[0], b"msg_5", b"1699999699", b"x") + b"\nx")
hbody = b'{"type":"session.created","data":{}}'
write("verify", "header-ok", b"\x01" + sig(KEYS[1], b"msg_fuzz", b"1700000100", hbody))
write("verify", "header-mixed", b"\x04v1a,AAAA v1,bm90IGEgc2ln  v9,x")
write("verify", "header-padded", b"\x0d   v1," + b"A" * 43 + b"= v1," + b"B" * 42 + b"==")
for i, key in enumerate(KEYS):
    write("verify", "secrets-%d" % i, b"\x02whsec_" + base64.b64encode(key))
write("verify", "secrets-list", b"\x02whsec_" + base64.b64encode(KEYS[0]) + b", " + base64.b64encode(KEYS[1]))
write("verify", "secrets-bad", b"\x02whsec_Zm9v,whsec_" + base64.b64encode(b"k" * 65))

# ---- codec: records in the key layout of src/store/codec.c ----
def pk(v):
    if v is None: return b"\xc0"
    if v is True: return b"\xc3"
    if v is False: return b"\xc2"
    if isinstance(v, float): return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, int):
        if 0 <= v < 128: return bytes([v])
        if -32 <= v < 0: return struct.pack("b", v)
        if v >= 0: return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, list):
        return bytes([0x90 | len(v)]) + b"".join(pk(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(pk(k) + pk(x) for k, x in v.items())
    raise TypeError(v)

write("codec", "user", pk({"id": "user_1", "em": "a@b.c", "fn": "Zoé", "ca": 1700000000000,
                           "ua": 1700000000001, "b": True, "p": False, "xid": "x1"}))
write("codec", "history", pk({"t": "session.created", "at": 1700000000000, "did": "msg_1", "uid": "user_1",
                              "sid": "sess_1", "ip": "192.0.2.1", "co": "FR", "m": True, "ex": -1}))
write("codec", "alert", pk({"id": "a1", "r": "new_country", "sv": "high", "k": "user_1", "t": "user.created",
                            "at": 5, "sup": 2, "ev": [{"n": "count", "k": 2, "v": 3.5, "al": True},
                                                     {"n": "s", "k": 4, "s": "x"}], "tg": ["t1", "t2"]}))
write("codec", "open_alert", pk({"at": 1, "id": "a1", "sup": 3, "lsa": 4}))
write("codec", "outbox", pk({"at": 9, "tr": 2, "e": "HTTP 503"}))
write("codec", "sink_state", pk({"snk": "hook", "fs": 1, "n": 2, "f": 3, "e": "timeout"}))
write("codec", "delivery", pk({"r": 1700000000000, "t": "session.ended"}))
write("codec", "uint", pk(2 ** 40))
write("codec", "unknown-keys", pk({"zz": [1, {"a": None}], "id": "u"}) + b"")
write("codec", "huge-array", b"\x81\xa2ev\xdd\xff\xff\xff\xff")

# ---- decode: the event fixtures ----
for f in sorted(glob.glob(os.path.join(here, "..", "fixtures", "events", "*.json"))):
    os.makedirs(os.path.join(out, "decode"), exist_ok=True)
    shutil.copy(f, os.path.join(out, "decode", os.path.basename(f)))
