#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Bad input: every malformed datagram kited must survive, each followed by
a liveness probe (a SET and a GET in the NEXT datagrams must succeed).

For each case the test checks
  * the reply: none when the datagram cannot be framed, else the exact
    (opcode, opaque, status, message) of each response, in order;
  * kited's STAT counters: the expected kite_drop_<reason>,
    kite_error_replies and kite_unknown_commands deltas, and no change in
    any other kite_drop_* counter;
  * that the store did not change: the key "guard" keeps its value, flags
    and CAS after every case (several bad requests target it).

The rules are docs/protocol.rst's "Bad input" table (lib/proto/kite_proto.c):
frame-level problems and unframable headers drop the rest of the datagram
and count the reason; a framable bad request gets EINVAL, E2BIG or
UNKNOWN_COMMAND (keylen + extlen > bodylen is UNKNOWN_COMMAND, as memcached
answers it) and the following requests are served; a bodylen past the end
of the datagram gets EINVAL and ends the datagram.

kited runs with --max-item-size 1024 (not larger: on net_af_packet a
request datagram must fit one ~2 KB frame, see test_differential.py's
fragmented case), so a 1500-byte value is over the limit.

Run: python3 test_badinput.py --kited PATH --cli PATH [--memcached PATH]
"""

import os
import random
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402
from kitetest import (  # noqa: E402
    GET, GETK, SET, ADD, REPLACE, APPEND, PREPEND, DELETE, INCREMENT, DECREMENT, TOUCH, GAT,
    GATK, NOOP, VERSION, QUIT, QUITQ, FLUSH, STAT, GETQ, OK, EINVAL, E2BIG, UNKNOWN_COMMAND,
    NOT_STORED, KEY_ENOENT, req, store, get, simple, frame, check)

MAX_ITEM = 1024
GUARD = b'guard'
GUARD_VALUE = b'original value'
GUARD_FLAGS = 0x600d
TEXT = {EINVAL: b'Invalid arguments', E2BIG: b'Too large.', UNKNOWN_COMMAND: b'Unknown command',
        NOT_STORED: b'Not stored.', KEY_ENOENT: b'Not found'}
DROPS = ('short_frame', 'multi_datagram', 'empty', 'truncated_header', 'bad_magic',
         'response_magic', 'text_response', 'text_partial_line')


class Bad:
    def __init__(self, t, topo, kited):
        self.t = t
        self.topo = topo
        self.kited = kited
        self.c = topo.client()
        self.guard_cas = None

    def stats(self):
        return {k: int(v) for k, v in self.c.stats().items() if v.isdigit()}

    def set_guard(self):
        rep = self.c.request(store(SET, GUARD, GUARD_VALUE, flags=GUARD_FLAGS, opaque=0x6d))
        rs = rep.responses
        check(len(rs) == 1 and rs[0].status == OK, 'setting the guard key: %s' % rs)
        self.guard_cas = rs[0].cas

    def check_guard(self, tag):
        rep = self.c.request(get(GUARD, GET, 0x6e))
        rs = rep.responses
        check(len(rs) == 1 and rs[0].status == OK and rs[0].value == GUARD_VALUE and
              rs[0].flags == GUARD_FLAGS and rs[0].cas == self.guard_cas,
              'store changed by "%s": guard is now %s (expected %r flags %#x cas %d)' % (
                  tag, rs, GUARD_VALUE, GUARD_FLAGS, self.guard_cas))

    def send(self, payload, expect, tag):
        """Send one raw datagram (frame included); check the responses
        against expect: a list of (opcode, opaque, status[, value])."""
        self.c.drain()
        req_id = struct.unpack('>H', payload[:2])[0] if len(payload) >= 2 else None
        self.c.send_raw(payload)
        if req_id is None:
            # Without a request id nothing can answer; anything at all is wrong.
            rep = kt.Reply(None)
            time.sleep(0.3)
            stray = self.c.drain()
            check(not stray, '%s: reply to a datagram without a frame: %r' % (tag, stray))
            return rep

        def done(rep):
            return len(rep.responses) >= len(expect) and expect
        rep = self.c.collect(req_id, done if expect else None, idle=0.3, limit=3.0)
        stray = list(self.c.stray)
        self.c.stray.clear()
        check(not rep.problems(), '%s: bad reply: %s' % (tag, rep.problems()))
        got = [(r.opcode, r.opaque, r.status) for r in rep.responses]
        want = [(e[0], e[1], e[2]) for e in expect]
        check(got == want, '%s [datagram %s]: responses %s, expected %s' % (
            tag, kt.hexdump(payload), fmt(got), fmt(want)))
        for r, e in zip(rep.responses, expect):
            if len(e) > 3:
                check(r.value == e[3], '%s: response opaque %d value %r, expected %r' % (
                    tag, r.opaque, r.value, e[3]))
            elif r.status in TEXT:
                check(r.value == TEXT[r.status] and r.cas == 0 and not r.extras and
                      not r.key, '%s: error reply %r should carry %r, CAS 0' % (
                          tag, r, TEXT[r.status]))
        # Datagrams under other request ids: replies to nothing we sent now.
        check(not stray, '%s: %d unexpected datagram(s) under other request ids: %s' % (
            tag, len(stray), [kt.hexdump(d, 40) for d in stray[:3]]))
        return rep

    def case(self, name, datagrams, drops=None, errors=0, unknown=0, tag_guard=True):
        """datagrams: list of (payload, expect). drops: {reason: count}."""
        drops = drops or {}

        def run():
            before = self.stats()
            for i, (payload, expect) in enumerate(datagrams):
                self.send(payload, expect, '%s #%d' % (name, i))
            after = self.stats()
            for reason in DROPS:
                k = 'kite_drop_' + reason
                got = after[k] - before[k]
                check(got == drops.get(reason, 0), '%s: %s grew by %d, expected %d' % (
                    name, k, got, drops.get(reason, 0)))
            got = after['kite_error_replies'] - before['kite_error_replies']
            check(got == errors, '%s: kite_error_replies grew by %d, expected %d' % (
                name, got, errors))
            got = after['kite_unknown_commands'] - before['kite_unknown_commands']
            check(got == unknown, '%s: kite_unknown_commands grew by %d, expected %d' % (
                name, got, unknown))
            check(self.kited.alive(), 'kited died:\n' + self.kited.tail())
            kt.probe(self.c, name)
            if tag_guard:
                self.check_guard(name)
        self.t.case(name, run)


def fmt(rs):
    return [(kt.opname(o), op, kt.stname(s)) for o, op, s in rs]


RID = [1000]


def dg(body, seq=0, total=1, reserved=0):
    RID[0] = (RID[0] + 7) & 0xffff
    return frame(RID[0], seq, total, reserved) + body


def ext(n):
    return b'\0' * n


def body(t):
    t.need_root()
    t.need_file(t.args.kited, 'kited')
    topo = kt.Topology(t).up()
    kited = kt.Kited(t, topo, kite_args=['--max-item-size', str(MAX_ITEM)]).start()
    b = Bad(t, topo, kited)
    t.case('set the guard key', b.set_guard)

    good_set = store(SET, GUARD, b'changed!', opaque=2)

    # ---- datagrams that cannot be framed: dropped, counted, no reply --------
    b.case('empty datagram', [(b'', [])], drops={'short_frame': 1})
    b.case('frame shorter than 8 bytes (1, 4, 7 bytes)',
           [(b'\x01', []), (b'\x01\x02\x03\x04', []), (dg(b'')[:7], [])],
           drops={'short_frame': 3})
    b.case('frame only, no request', [(dg(b''), [])], drops={'empty': 1})
    b.case('frame total 2 (with a SET of the guard inside)',
           [(dg(good_set, total=2), [])], drops={'multi_datagram': 1})
    b.case('frame total 0', [(dg(good_set, total=0), [])], drops={'multi_datagram': 1})
    b.case('frame seq 1 of 2', [(dg(good_set, seq=1, total=2), [])],
           drops={'multi_datagram': 1})
    b.case('frame seq 1 of 1', [(dg(good_set, seq=1, total=1), [])],
           drops={'multi_datagram': 1})
    b.case('truncated header (10 and 23 bytes after the frame)',
           [(dg(good_set[:10]), []), (dg(good_set[:23]), [])],
           drops={'truncated_header': 2})
    # A first byte other than 0x80/0x81 makes the datagram text (docs/protocol.rst):
    # without a newline it is a partial line, dropped.
    b.case('first byte 0x00, 0x7f, 0xff, no newline: a partial text line',
           [(dg(bytes([m]) + good_set[1:].replace(b'\n', b'\x0b')), [])
            for m in (0x00, 0x7f, 0xff)],
           drops={'text_partial_line': 3})
    b.case('response magic 0x81 (a SET of the guard)', [(dg(b'\x81' + good_set[1:]), [])],
           drops={'response_magic': 1})
    b.case('a text line that starts like a response ("VALUE guard 0 8" ...)',
           [(dg(b'VALUE guard 0 8\r\nchanged!\r\nEND\r\n'), [])],
           drops={'text_response': 1})
    b.case('a text SET without its newline ("set guard 0 0 8")',
           [(dg(b'set guard 0 0 8'), [])], drops={'text_partial_line': 1})

    # ---- framable but wrong: an error reply --------------------------------
    b.case('bodylen larger than the datagram (SET of the guard)',
           [(dg(req(SET, GUARD, b'changed!', ext(8), opaque=3, bodylen=8 + 5 + 8 + 10)),
             [(SET, 3, EINVAL)])], errors=1)
    b.case('bodylen 0x7fffffff', [(dg(req(GET, GUARD, opaque=4, bodylen=0x7fffffff)),
                                  [(GET, 4, EINVAL)])], errors=1)
    b.case('bodylen 0xffffffff with keylen 0xffff',
           [(dg(req(SET, GUARD, b'x', ext(8), opaque=5, keylen=0xffff, bodylen=0xffffffff)),
             [(SET, 5, EINVAL)])], errors=1)
    b.case('bodylen smaller than the data present (GET + 7 stray bytes)',
           [(dg(get(GUARD, GETK, 6) + b'\x80garbag'),
             [(GETK, 6, OK)])], drops={'truncated_header': 1})
    b.case('bodylen smaller than the data present (stray bytes parse as a bad magic)',
           [(dg(get(GUARD, GETK, 7) + b'\x00' * 30), [(GETK, 7, OK)])],
           drops={'bad_magic': 1})
    b.case('keylen + extlen > bodylen (GET)',
           [(dg(req(GET, GUARD, opaque=8, bodylen=3)[:24 + 3]), [(GET, 8, UNKNOWN_COMMAND)])],
           errors=1, unknown=1)
    b.case('keylen + extlen > bodylen (SET of the guard)',
           [(dg(req(SET, GUARD, b'', ext(8), opaque=9, bodylen=10)[:24 + 10]),
             [(SET, 9, UNKNOWN_COMMAND)])], errors=1, unknown=1)

    families = [
        ('GET extlen 4', req(GET, GUARD, extras=ext(4), opaque=20)),
        ('GETK extlen 4', req(GETK, GUARD, extras=ext(4), opaque=21)),
        ('GETQ extlen 8', req(GETQ, GUARD, extras=ext(8), opaque=22)),
        ('DELETE extlen 4 (guard)', req(DELETE, GUARD, extras=ext(4), opaque=23)),
        ('SET extlen 0 (guard)', req(SET, GUARD, b'changed!', opaque=24)),
        ('SET extlen 4 (guard)', req(SET, GUARD, b'changed!', ext(4), opaque=25)),
        ('SET extlen 12 (guard)', req(SET, GUARD, b'changed!', ext(12), opaque=26)),
        ('ADD extlen 0', req(ADD, b'newkey', b'v', opaque=27)),
        ('REPLACE extlen 4 (guard)', req(REPLACE, GUARD, b'changed!', ext(4), opaque=28)),
        ('APPEND extlen 8 (guard)', req(APPEND, GUARD, b'!', ext(8), opaque=29)),
        ('PREPEND extlen 4 (guard)', req(PREPEND, GUARD, b'!', ext(4), opaque=30)),
        ('INCREMENT extlen 0', req(INCREMENT, b'ctr', opaque=31)),
        ('INCREMENT extlen 8', req(INCREMENT, b'ctr', extras=ext(8), opaque=32)),
        ('INCREMENT extlen 24', req(INCREMENT, b'ctr', extras=ext(24), opaque=33)),
        ('DECREMENT extlen 19', req(DECREMENT, b'ctr', extras=ext(19), opaque=34)),
        ('INCREMENT with a value', req(INCREMENT, b'ctr', b'v', ext(20), opaque=35)),
        ('TOUCH extlen 0 (guard)', req(TOUCH, GUARD, opaque=36)),
        ('TOUCH extlen 8 (guard)', req(TOUCH, GUARD, extras=ext(8), opaque=37)),
        ('TOUCH with a value (guard)', req(TOUCH, GUARD, b'v', ext(4), opaque=38)),
        ('GAT extlen 0 (guard)', req(GAT, GUARD, opaque=39)),
        ('GATK extlen 8 (guard)', req(GATK, GUARD, extras=ext(8), opaque=40)),
        ('NOOP extlen 4', req(NOOP, extras=ext(4), opaque=41)),
        ('NOOP with a key', req(NOOP, b'k', opaque=42)),
        ('VERSION extlen 4', req(VERSION, extras=ext(4), opaque=43)),
        ('QUIT extlen 4', req(QUIT, extras=ext(4), opaque=44)),
        ('QUITQ with a value', req(QUITQ, value=b'v', opaque=45)),
        ('FLUSH extlen 8', req(FLUSH, extras=ext(8), opaque=46)),
        ('FLUSH extlen 2', req(FLUSH, extras=ext(2), opaque=47)),
        ('FLUSH with a key', req(FLUSH, b'k', opaque=48)),
        ('STAT extlen 4', req(STAT, extras=ext(4), opaque=49)),
        ('STAT with a value', req(STAT, b'', b'v', opaque=50)),
        ('TOPOLOGY extlen 4', req(0xe0, extras=ext(4), opaque=51)),
    ]
    b.case('wrong extras/key/body length for each opcode family (EINVAL each)',
           [(dg(body), [(body[1], struct.unpack('>I', body[12:16])[0], EINVAL)])
            for _, body in families], errors=len(families))

    empties = [req(GET, b'', opaque=60), req(SET, b'', b'v', ext(8), opaque=61),
               req(DELETE, b'', opaque=62), req(INCREMENT, b'', extras=ext(20), opaque=63),
               req(TOUCH, b'', extras=ext(4), opaque=64), req(GAT, b'', extras=ext(4), opaque=65),
               req(APPEND, b'', b'v', opaque=66), req(GETK, b'', opaque=67)]
    b.case('empty key (EINVAL each)',
           [(dg(e), [(e[1], struct.unpack('>I', e[12:16])[0], EINVAL)]) for e in empties],
           errors=len(empties))
    longs = [req(GET, b'k' * 251, opaque=70), req(SET, GUARD + b'x' * 246, b'v', ext(8), opaque=71),
             req(DELETE, b'k' * 1000, opaque=72), req(0x50, b'k' * 300, opaque=73)]
    b.case('key longer than 250 bytes (EINVAL each, even for an unknown opcode)',
           [(dg(e), [(e[1], struct.unpack('>I', e[12:16])[0], EINVAL)]) for e in longs],
           errors=len(longs))

    over = b'z' * 1500
    b.case('value over --max-item-size (SET of the guard): E2BIG, store unchanged',
           [(dg(store(SET, GUARD, over, opaque=80)), [(SET, 80, E2BIG)])], errors=1)
    b.case('value over --max-item-size (ADD of a new key): E2BIG, not created',
           [(dg(store(ADD, b'new-big', over, opaque=81)), [(ADD, 81, E2BIG)]),
            (dg(get(b'new-big', GETK, 82)), [(GETK, 82, KEY_ENOENT, b'')])], errors=1)
    # af_packet (framesz 32768) hands over what the kernel reassembled, cut.
    b.case('a 40,000-byte datagram (over af_packet\'s framesz): E2BIG for its first '
           'request, nothing runs',
           [(dg(store(SET, GUARD, b'w' * 39000, opaque=79) + get(GUARD, GET, 78)),
             [(SET, 79, E2BIG)])], errors=1)
    b.case('APPEND of a value over --max-item-size to the guard: E2BIG',
           [(dg(req(APPEND, GUARD, over, opaque=83)), [(APPEND, 83, E2BIG)])], errors=1)
    b.case('APPEND whose result exceeds --max-item-size: NOT_STORED, unchanged',
           [(dg(store(SET, b'grow', b'a' * 600, opaque=84)), [(SET, 84, OK)]),
            (dg(req(APPEND, b'grow', b'b' * 600, opaque=85)), [(APPEND, 85, NOT_STORED)]),
            (dg(req(PREPEND, b'grow', b'c' * 600, opaque=86)), [(PREPEND, 86, NOT_STORED)]),
            (dg(get(b'grow', GET, 87)), [(GET, 87, OK, b'a' * 600)])])
    b.case('unknown opcodes 0x50, 0x1b, 0xef (UNKNOWN_COMMAND each)',
           [(dg(req(op, opaque=90 + i)), [(op, 90 + i, UNKNOWN_COMMAND)])
            for i, op in enumerate((0x50, 0x1b, 0xef))], errors=3, unknown=3)

    # ---- a bad request among good ones in the same datagram ------------------
    b.case('unknown opcode, then SET and GET in the same datagram',
           [(dg(req(0x50, b'k', b'v', opaque=100) + store(SET, b'after-unk', b'v1', opaque=101) +
                get(b'after-unk', GET, 102)),
             [(0x50, 100, UNKNOWN_COMMAND), (SET, 101, OK), (GET, 102, OK, b'v1')])],
           errors=1, unknown=1)
    b.case('long key (EINVAL), then GETK of the guard',
           [(dg(req(GET, b'k' * 300, opaque=103) + get(GUARD, GETK, 104)),
             [(GET, 103, EINVAL), (GETK, 104, OK, GUARD_VALUE)])], errors=1)
    b.case('keylen + extlen > bodylen, then NOOP',
           [(dg(req(GET, GUARD, opaque=105, bodylen=2)[:26] + simple(NOOP, 106)),
             [(GET, 105, UNKNOWN_COMMAND), (NOOP, 106, OK)])], errors=1, unknown=1)
    b.case('E2BIG SET of the guard, then GET of the guard',
           [(dg(store(SET, GUARD, b'y' * 1100, opaque=107) + get(GUARD, GET, 108)),
             [(SET, 107, E2BIG), (GET, 108, OK, GUARD_VALUE)])], errors=1)
    b.case('bodylen past the end hides a SET of the guard: EINVAL, rest ignored',
           [(dg(req(GET, b'k', opaque=109, bodylen=200) + good_set), [(GET, 109, EINVAL)])],
           errors=1)
    b.case('NOOP, bad magic, NOOP: the rest after the bad magic is dropped',
           [(dg(simple(NOOP, 110) + b'\x42' + simple(NOOP, 111)[1:] + simple(NOOP, 112)),
             [(NOOP, 110, OK)])], drops={'bad_magic': 1})
    b.case('NOOP then 10 stray bytes', [(dg(simple(NOOP, 113) + b'\x80' * 10),
                                         [(NOOP, 113, OK)])], drops={'truncated_header': 1})
    b.case('two bad SETs of the guard in one datagram',
           [(dg(req(SET, GUARD, b'c1', opaque=114) + req(SET, GUARD, b'c2', ext(4), opaque=115)),
             [(SET, 114, EINVAL), (SET, 115, EINVAL)])], errors=2)
    b.case('QUIT then a SET of the guard: the SET is ignored',
           [(dg(simple(QUIT, 116) + good_set), [(QUIT, 116, OK)])])
    b.case('response magic after a good GETK: the rest is dropped',
           [(dg(get(GUARD, GETK, 117) + b'\x81' + good_set[1:]),
             [(GETK, 117, OK, GUARD_VALUE)])], drops={'response_magic': 1})

    # ---- random garbage ------------------------------------------------------
    def garbage():
        rng = random.Random(20240229)
        before = b.stats()
        sent = 0
        start = time.monotonic()
        for i in range(500):
            kind = i % 3
            n = rng.randrange(0, 1400)
            if kind == 0:
                data = bytes(rng.getrandbits(8) for _ in range(n))
            elif kind == 1:
                data = frame(rng.randrange(65536)) + bytes(rng.getrandbits(8) for _ in range(n))
            else:
                # A plausible header with random fields; never FLUSH (it would
                # legitimately empty the store) and never the guard's key.
                op = rng.choice([o for o in range(256) if o not in (FLUSH, 0x18)])
                kl = rng.choice([0, 1, 5, 250, 251, rng.randrange(65536)])
                el = rng.choice([0, 4, 8, 20, rng.randrange(256)])
                key = bytes(rng.getrandbits(8) for _ in range(min(kl, 300)))
                if key.startswith(GUARD):
                    key = b'x' + key[1:]
                val = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 600)))
                extras = bytes(rng.getrandbits(8) for _ in range(min(el, 40)))
                bl = rng.choice([None, None, rng.randrange(1 << 32), len(key) + len(extras)])
                data = frame(rng.randrange(65536)) + req(op, key, val, extras,
                                                         opaque=i, keylen=kl, extlen=el,
                                                         bodylen=bl)
                data = data[:1400]
            b.c.send_raw(data)
            sent += 1
            time.sleep(0.002)  # stay well inside af_packet's RX ring
            if time.monotonic() - start > 60:
                break
        time.sleep(0.5)
        b.c.drain()
        b.c.stray.clear()
        after = b.stats()
        check(sent == 500, 'sent only %d garbage datagrams in 60 s' % sent)
        check(b.kited.alive(), 'kited died on garbage:\n' + b.kited.tail())
        got = after['kite_rx_datagrams'] - before['kite_rx_datagrams']
        check(got >= sent - 2, 'kite_rx_datagrams grew by %d for %d datagrams' % (got, sent))
        dropped = sum(after['kite_drop_' + r] - before['kite_drop_' + r] for r in DROPS)
        check(dropped >= 300, 'only %d garbage datagrams counted as dropped' % dropped)
        kt.probe(b.c, 'garbage')
        b.check_guard('garbage')
    t.case('500 random garbage datagrams (seeded)', garbage)

    t.case('kited still running', lambda: check(kited.alive(), 'kited exited:\n' + kited.tail()))


if __name__ == '__main__':
    kt.run('badinput', body)
