#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Write the seed corpus for fuzz_proto (and fuzz_engine) into corpus/proto/
next to this file: binary datagrams, and text ones (text_*).

Each seed is one whole UDP datagram: the 8-byte memcached frame followed by
binary-protocol requests. There is one well-formed datagram per opcode, a
pipelined GETKQ batch, and one seed per kind of malformed input the parser
must survive, so the fuzzer starts next to every branch instead of having to
find the magic byte and a consistent length by chance.

Run it again after changing it; the output is deterministic.
"""

import os
import random
import re
import struct
import sys

FRAME = struct.Struct(">HHHH")
HDR = struct.Struct(">BBHBBHIIQ")

OPS = {
    "get": 0x00, "set": 0x01, "add": 0x02, "replace": 0x03, "delete": 0x04,
    "increment": 0x05, "decrement": 0x06, "quit": 0x07, "flush": 0x08,
    "getq": 0x09, "noop": 0x0a, "version": 0x0b, "getk": 0x0c, "getkq": 0x0d,
    "append": 0x0e, "prepend": 0x0f, "stat": 0x10, "setq": 0x11, "addq": 0x12,
    "replaceq": 0x13, "deleteq": 0x14, "incrementq": 0x15, "decrementq": 0x16,
    "quitq": 0x17, "flushq": 0x18, "appendq": 0x19, "prependq": 0x1a,
    "touch": 0x1c, "gat": 0x1d, "gatq": 0x1e, "gatk": 0x23, "gatkq": 0x24,
}


def frame(req_id=1, seq=0, total=1, reserved=0):
    return FRAME.pack(req_id, seq, total, reserved)


def req(op, key=b"", extras=b"", value=b"", opaque=0, cas=0, magic=0x80,
        keylen=None, extlen=None, bodylen=None):
    """A request; keylen/extlen/bodylen override the honest values to lie."""
    kl = len(key) if keylen is None else keylen
    el = len(extras) if extlen is None else extlen
    bl = len(extras) + len(key) + len(value) if bodylen is None else bodylen
    return HDR.pack(magic, op, kl, el, 0, 0, bl, opaque, cas) + extras + key + value


def store_extras(flags=0xdeadbeef, exptime=0):
    return struct.pack(">II", flags, exptime)


def well_formed(name, op):
    """One valid request for each opcode, with the extras its command wants."""
    key = b"key:" + name.encode()
    if name in ("get", "getq", "getk", "getkq", "delete", "deleteq"):
        return req(op, key, opaque=op)
    if name in ("set", "setq", "add", "addq", "replace", "replaceq"):
        return req(op, key, store_extras(), b"value-" + name.encode(), opaque=op)
    if name in ("append", "appendq", "prepend", "prependq"):
        return req(op, key, value=b"tail", opaque=op)
    if name in ("increment", "incrementq", "decrement", "decrementq"):
        return req(op, key, struct.pack(">QQI", 1, 100, 0), opaque=op)
    if name in ("touch", "gat", "gatq", "gatk", "gatkq"):
        return req(op, key, struct.pack(">I", 60), opaque=op)
    if name in ("flush", "flushq"):
        return req(op, extras=struct.pack(">I", 0), opaque=op)
    if name == "stat":
        return req(op, b"settings", opaque=op)
    return req(op, opaque=op)  # noop, version, quit, quitq


def seeds():
    out = {}
    for name, op in OPS.items():
        out["ok_" + name] = frame() + well_formed(name, op)

    batch = b"".join(req(OPS["getkq"], b"key:%d" % i, opaque=i) for i in range(16))
    out["ok_pipeline_getkq16_noop"] = frame() + batch + req(OPS["noop"], opaque=16)

    get = req(OPS["get"], b"foo", opaque=1)
    setv = req(OPS["set"], b"foo", store_extras(), b"bar", opaque=2)
    # bodylen that disagrees with the datagram, in both directions.
    out["bad_bodylen_larger"] = frame() + setv[:8] + struct.pack(">I", 8 + 3 + 3 + 10) + setv[12:]
    out["bad_bodylen_smaller"] = frame() + setv[:8] + struct.pack(">I", 8 + 3 + 1) + setv[12:]
    out["bad_keylen_extlen_over_body"] = frame() + req(OPS["set"], b"foo", store_extras(),
                                                       bodylen=9) + b"\0" * 8
    out["bad_extlen_get"] = frame() + req(OPS["get"], b"foo", b"\0" * 4)
    out["bad_extlen_set"] = frame() + req(OPS["set"], b"foo", b"\0" * 4, b"bar")
    out["bad_extlen_incr"] = frame() + req(OPS["increment"], b"ctr", b"\0" * 8)
    out["bad_extlen_touch"] = frame() + req(OPS["touch"], b"foo")
    out["bad_extlen_flush"] = frame() + req(OPS["flush"], extras=b"\0" * 8)
    out["bad_key_empty_get"] = frame() + req(OPS["get"]) + req(OPS["noop"], opaque=9)
    out["bad_key_empty_set"] = frame() + req(OPS["set"], b"", store_extras(), b"bar")
    out["bad_key_251"] = frame() + req(OPS["get"], b"k" * 251)
    out["bad_key_300_unknown_op"] = frame() + req(0xe5, b"k" * 300)
    # A value over the default 1 MiB limit cannot fit a datagram. The fuzzer
    # takes a nonzero frame reserved field as the limit, so 16 makes this E2BIG.
    out["bad_value_over_limit"] = frame(reserved=16) + req(OPS["set"], b"big", store_extras(),
                                                           b"v" * 64)
    out["bad_magic"] = frame() + req(OPS["noop"], magic=0x42)
    out["bad_response_magic"] = frame() + req(OPS["noop"], magic=0x81)
    out["bad_truncated_header"] = frame() + get[:23]
    out["bad_trailing_bytes"] = frame() + req(OPS["noop"]) + b"\x80\x0a\0\0\0"
    out["bad_frame_short"] = frame()[:7]
    out["bad_empty"] = b""
    out["bad_frame_only"] = frame()
    out["bad_frame_total2"] = frame(total=2) + get
    out["bad_frame_total0"] = frame(total=0) + get
    out["bad_frame_seq1"] = frame(seq=1) + get
    out["bad_unknown_kite_op"] = frame() + req(0xe0, b"k", b"\0" * 4, b"v") + get
    out["bad_bodylen_7fffffff"] = frame() + get[:8] + struct.pack(">I", 0x7fffffff) + get[12:]
    out["bad_bodylen_ffffffff"] = frame() + get[:8] + struct.pack(">I", 0xffffffff) + get[12:]
    out["bad_error_then_ok"] = (frame() + req(OPS["get"], b"foo", value=b"xx") +
                                req(OPS["noop"], opaque=7))

    rng = random.Random(20240501)
    for i in range(4):
        out["garbage_%d" % i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    # Garbage behind a valid frame and request magic reaches the length checks.
    out["garbage_after_magic"] = frame() + b"\x80" + bytes(rng.randrange(256) for _ in range(60))

    # Responses, for kite_proto_parse_res: memcached's reply to GET "foo".
    out["res_get_hit"] = frame() + bytes.fromhex(
        "81000000040000000000000700000008000000000000000100000000") + b"bar"
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = os.path.join(here, "corpus", "proto")
    os.makedirs(outdir, exist_ok=True)
    wanted = seeds()
    wanted.update(text_seeds())
    for name in os.listdir(outdir):
        # Inputs libFuzzer found (named by their SHA-1) stay; old seeds of ours go.
        if name not in wanted and not re.fullmatch(r"[0-9a-f]{40}", name):
            os.remove(os.path.join(outdir, name))
    for name, data in sorted(wanted.items()):
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(wanted), outdir), file=sys.stderr)


def text_seeds():
    """Whole text datagrams (frame, then lines) for fuzz_engine: the text
    parser's seeds framed, and pipelines whose keys land on both of the
    fuzzer's workers, so its relay (one worker after the other) is exercised."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "text")
    out = []
    for name in sorted(os.listdir(here)):
        with open(os.path.join(here, name), "rb") as f:
            out.append(("text_" + name, frame(0x1234) + f.read()))
    keys = [b"a%d" % i for i in range(12)]
    sets = b"".join(b"set %s 0 0 2\r\nv%d\r\n" % (k, i % 10) for i, k in enumerate(keys))
    out += [
        ("text_relay_sets_get", frame(0x1234) + sets + b"get " + b" ".join(keys) + b"\r\nmn\r\n"),
        ("text_relay_flush", frame(0x1234) + sets[:60] + b"flush_all\r\nget a0 a1 a2\r\n"
         b"set a3 0 0 1 noreply\r\nx\r\nmg a3 v h\r\n"),
        ("text_relay_meta", frame(0x1234) + b"".join(b"mg %s v t c N30 q\r\n" % k for k in keys) +
         b"md a1 I\r\nmg a1 v\r\nma a4 N0 J5\r\nmn\r\n"),
        ("text_relay_errors", frame(0x1234) + b"get a0\r\nbogus\r\nset a1 0 0 9\r\nshort\r\n"
         b"get a1 a2\r\nincr a5 1\r\ndelete a6 noreply\r\nmn\r\n"),
    ]
    return out


if __name__ == "__main__":
    main()
