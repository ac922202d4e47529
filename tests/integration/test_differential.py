#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Differential test: the same request datagrams go to kited and to memcached
(the oracle, `memcached -U PORT -p 0 -l 127.0.0.1`); their replies are
compared field by field.

What is compared: the response STREAM of each request datagram, i.e. every
response parsed out of the reply datagrams in order (memcached sends one
message per response, cut into 1400-byte datagrams; kited packs responses
into datagrams of up to MTU - 28 bytes), so datagram boundaries are not
compared, but the frame header of every datagram is checked for sanity.
Per response: magic, opcode, datatype, status, keylen, extlen, bodylen,
opaque, extras, key, value, and CAS by identity: each server's CAS values
are numbered in the order they first appear, so "the same CAS as an earlier
reply" and "a new CAS" are compared, never the numbers themselves.

Both servers get a value size limit of 32 KiB (memcached: -I 32k with
slab_chunk_max 16k, kited: --max-item-size 32K) so values over the limit fit
one UDP datagram; values in the tests stay far from the limit, where the
two count item overhead differently.

Intended differences, and only these, are not compared:
  * VERSION: the version string (value and bodylen).
  * STAT: the statistics themselves; both must answer with STAT responses
    and end with the empty-key terminator.
  * A value over the size limit: both answer E2BIG, but memcached's SET also
    unlinks the old value of the key while kited leaves the store untouched.
    The following GET is checked against each server's own rule.
  * memcached's per-connection state across datagrams (a body continued in
    the next datagram, a malformed request closing the "connection") is
    never exercised here: every request here is whole within its datagram.
Every other mismatch fails its case.

Run: python3 test_differential.py --kited PATH --cli PATH --memcached PATH
     (--against-memcached compares memcached with a second memcached, to
     check this harness itself without kited.)
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402
from kitetest import (  # noqa: E402
    GET, GETQ, GETK, GETKQ, SET, SETQ, ADD, ADDQ, REPLACE, REPLACEQ, DELETE, DELETEQ,
    INCREMENT, INCREMENTQ, DECREMENT, DECREMENTQ, APPEND, APPENDQ, PREPEND, PREPENDQ,
    TOUCH, GAT, GATQ, GATK, GATKQ, NOOP, VERSION, STAT, FLUSH, FLUSHQ, QUIT, QUITQ,
    VERBOSITY, OK, KEY_ENOENT, req, store, concat, delete, delta, touch, gat,
    simple, flush, stat, get)

MAX_ITEM = 32 * 1024
BAD_CAS = 0x0123456789abcdef
UNUSED_CAS = 0x7777777777777777


class Side:
    """One server: its client, the CAS values captured for later requests,
    and which rule a known difference applies ('memcached' or 'kited')."""

    def __init__(self, name, kind, client):
        self.name = name
        self.kind = kind
        self.client = client
        self.cas = {}


FIELDS = ('magic', 'opcode', 'datatype', 'status', 'keylen', 'extlen', 'bodylen', 'opaque',
          'extras', 'key', 'value')


class Differ:
    def __init__(self, t, a, b):
        self.t = t
        self.a = a  # the oracle
        self.b = b  # under test
        self.problems = []
        self.prefix = b''
        # CAS identity: a bijection between the two servers' CAS values,
        # built as they appear. Equal means "paired before, or both new".
        self.a_to_b = {}
        self.b_to_a = {}

    def key(self, name):
        return self.prefix + (name.encode() if isinstance(name, str) else name)

    def step(self, label, build, capture=None, stat=False, version=False, known=None,
             idle=0.25):
        """Send one datagram (build: bytes, or side -> bytes) to both servers
        and compare the replies. capture=(name, index) stores the CAS of
        response `index` per server. known={'memcached': check, 'kited':
        check}: an intended difference; each server's responses are checked
        by its own rule (check(responses) -> problem or None) instead."""
        reps = []
        bodies = []
        for side in (self.a, self.b):
            body = build(side) if callable(build) else build
            bodies.append(body)
            rep = side.client.request(body, idle=idle, linger=0.01)
            reps.append(rep)
        ra, rb = reps
        if self.t.verbose:
            self.t.debug('%s:' % label)
            for side, rep in ((self.a, ra), (self.b, rb)):
                self.t.debug('  %s: %s' % (side.name, [
                    (kt.opname(r.opcode), r.opaque, kt.stname(r.status)) for r in rep.responses]))
        where = '%s [request %s]' % (label, kt.hexdump(bodies[1]))
        found = []
        for side, rep in ((self.a, ra), (self.b, rb)):
            found += ['%s: %s' % (side.name, p) for p in rep.problems()]
            if rep.empty_frames and side.kind != 'memcached':
                found.append('%s: %d bare frame(s) with total 0 and no payload' % (
                    side.name, rep.empty_frames))
        if known is not None:
            for side, rep in ((self.a, ra), (self.b, rb)):
                p = known[side.kind](rep.responses)
                if p:
                    found.append('%s (own rule): %s; got %s' % (side.name, p, rep.responses))
        elif stat:
            found += self.compare_stat(ra.responses, rb.responses)
        else:
            found += self.compare(ra.responses, rb.responses, version)
        if capture is not None:
            name, idx = capture
            for side, rep in ((self.a, ra), (self.b, rb)):
                if idx < len(rep.responses):
                    side.cas[name] = rep.responses[idx].cas
                else:
                    found.append('%s: no response %d to capture CAS from' % (side.name, idx))
        for f in found:
            self.problems.append('%s: %s' % (where, f))
        return ra, rb

    def compare(self, la, lb, version=False):
        out = []
        if len(la) != len(lb):
            out.append('%d responses from %s, %d from %s:\n      %s: %s\n      %s: %s' % (
                len(la), self.a.name, len(lb), self.b.name, self.a.name, la, self.b.name, lb))
        for i, (x, y) in enumerate(zip(la, lb)):
            for f in FIELDS:
                if version and x.opcode == VERSION and f in ('bodylen', 'value'):
                    continue
                vx, vy = getattr(x, f), getattr(y, f)
                if vx != vy:
                    if f == 'status':
                        vx, vy = kt.stname(vx), kt.stname(vy)
                    out.append('response %d (%s) %s: %s=%r %s=%r' % (
                        i, kt.opname(x.opcode), f, self.a.name, vx, self.b.name, vy))
            why = self.cas_mismatch(x.cas, y.cas)
            if why:
                out.append('response %d (%s) cas: %s=%d %s=%d: %s' % (
                    i, kt.opname(x.opcode), self.a.name, x.cas, self.b.name, y.cas, why))
        return out

    def cas_mismatch(self, x, y):
        if x == 0 or y == 0:
            return None if x == y else 'one is zero'
        if x in self.a_to_b:
            if self.a_to_b[x] == y:
                return None
            return '%s repeats an earlier CAS, %s does not' % (self.a.name, self.b.name) \
                if y not in self.b_to_a else 'both repeat earlier CAS values of different replies'
        if y in self.b_to_a:
            return '%s repeats an earlier CAS, %s has a new one' % (self.b.name, self.a.name)
        self.a_to_b[x] = y
        self.b_to_a[y] = x
        return None

    def compare_stat(self, la, lb):
        # Responses before the STAT ones (a SET in the same datagram) compare as usual.
        na = next((i for i, r in enumerate(la) if r.opcode == STAT), len(la))
        nb = next((i for i, r in enumerate(lb) if r.opcode == STAT), len(lb))
        out = self.compare(la[:na], lb[:nb])
        la, lb = la[na:], lb[nb:]
        for side, l in ((self.a, la), (self.b, lb)):
            if not l:
                out.append('%s: no STAT reply' % side.name)
                continue
            last = l[-1]
            if not (last.opcode == STAT and last.status == OK and last.keylen == 0 and
                    last.bodylen == 0 and last.extlen == 0):
                out.append('%s: STAT does not end with an empty terminator: %r' % (
                    side.name, last))
            bad = [r for r in l if r.opcode != STAT or r.status != OK or r.magic != 0x81]
            if bad:
                out.append('%s: non-STAT or failed responses: %s' % (side.name, bad[:3]))
        if la and lb and la[-1].opaque != lb[-1].opaque:
            out.append('terminator opaque differs: %d vs %d' % (la[-1].opaque, lb[-1].opaque))
        return out


def cas_of(name):
    return lambda side: side.cas[name]


# ---- cases ------------------------------------------------------------------
# Each case uses keys under its own prefix, so a mismatch does not spread.

def c_get_miss(d):
    k = d.key('missing')
    d.step('GET miss', get(k, GET, 1))
    d.step('GETQ miss (silent)', get(k, GETQ, 2))
    d.step('GETK miss', get(k, GETK, 3))
    d.step('GETKQ miss (silent)', get(k, GETKQ, 4))


def c_get_hit(d):
    k = d.key('k')
    d.step('SET', store(SET, k, b'value-1', flags=0xdeadbeef, opaque=10), capture=('s', 0))
    for op, o in ((GET, 11), (GETQ, 12), (GETK, 13), (GETKQ, 14)):
        d.step('%s hit' % kt.opname(op), get(k, op, o))
    d.step('SET empty value', store(SET, k, b'', flags=1, opaque=15))
    d.step('GET empty value', get(k, GET, 16))
    d.step('SET binary value', store(SET, k, bytes(range(256)), flags=2, opaque=17))
    d.step('GETK binary value', get(k, GETK, 18))
    lk = d.key('L' * 200)
    d.step('SET long key', store(SET, lk, b'x', opaque=19))
    d.step('GETK long key', get(lk, GETK, 20))


def c_set(d):
    k = d.key('k')
    d.step('SET new', store(SET, k, b'one', flags=5, exptime=0, opaque=1), capture=('c1', 0))
    d.step('SETQ overwrite (silent)', store(SETQ, k, b'two', flags=6, opaque=2))
    d.step('GET after SETQ', get(k, GET, 3), capture=('c2', 0))
    d.step('SET with matching CAS', lambda s: store(SET, k, b'three', cas=s.cas['c2'],
                                                      opaque=4), capture=('c3', 0))
    d.step('SET with stale CAS', lambda s: store(SET, k, b'four', cas=s.cas['c2'], opaque=5))
    d.step('SET with unknown CAS', store(SET, k, b'four', cas=BAD_CAS, opaque=6))
    d.step('SETQ with stale CAS (error is not quiet)',
           lambda s: store(SETQ, k, b'five', cas=s.cas['c1'], opaque=7))
    d.step('GET after failed CAS', get(k, GET, 8))
    d.step('SET with CAS on missing key', store(SET, d.key('none'), b'x', cas=BAD_CAS, opaque=9))
    d.step('GET missing after CAS SET', get(d.key('none'), GETK, 10))
    d.step('SETQ with matching CAS (silent)',
           lambda s: store(SETQ, k, b'six', cas=s.cas['c3'], opaque=11))
    d.step('GETK after CAS SETQ', get(k, GETK, 12))


def c_add(d):
    k = d.key('k')
    d.step('ADD new', store(ADD, k, b'a1', flags=1, opaque=1))
    d.step('ADD existing', store(ADD, k, b'a2', flags=2, opaque=2))
    d.step('ADDQ new (silent)', store(ADDQ, d.key('q'), b'q1', opaque=3))
    d.step('ADDQ existing (error)', store(ADDQ, d.key('q'), b'q2', opaque=4))
    d.step('GETK after ADD', get(k, GETK, 5))
    d.step('GETK after ADDQ', get(d.key('q'), GETK, 6))


def c_replace(d):
    k = d.key('k')
    d.step('REPLACE missing', store(REPLACE, k, b'r0', opaque=1))
    d.step('REPLACEQ missing (error)', store(REPLACEQ, k, b'r0', opaque=2))
    d.step('SET', store(SET, k, b'r1', flags=3, opaque=3), capture=('c', 0))
    d.step('REPLACE existing', store(REPLACE, k, b'r2', flags=4, opaque=4), capture=('c2', 0))
    d.step('REPLACEQ existing (silent)', store(REPLACEQ, k, b'r3', flags=5, opaque=5))
    d.step('GET after REPLACEQ', get(k, GET, 6), capture=('c3', 0))
    d.step('REPLACE stale CAS', lambda s: store(REPLACE, k, b'r4', cas=s.cas['c2'], opaque=7))
    d.step('REPLACE matching CAS', lambda s: store(REPLACE, k, b'r5', cas=s.cas['c3'],
                                                     opaque=8))
    d.step('GET after CAS REPLACE', get(k, GET, 9))


def c_append_prepend(d):
    k = d.key('k')
    d.step('APPEND missing', concat(APPEND, k, b'x', opaque=1))
    d.step('PREPEND missing', concat(PREPEND, k, b'x', opaque=2))
    d.step('APPENDQ missing (error)', concat(APPENDQ, k, b'x', opaque=3))
    d.step('PREPENDQ missing (error)', concat(PREPENDQ, k, b'x', opaque=4))
    d.step('SET', store(SET, k, b'mid', flags=0x1234, exptime=0, opaque=5), capture=('c', 0))
    d.step('APPEND', concat(APPEND, k, b'-end', opaque=6), capture=('c2', 0))
    d.step('PREPEND', concat(PREPEND, k, b'start-', opaque=7))
    d.step('APPENDQ (silent)', concat(APPENDQ, k, b'+a', opaque=8))
    d.step('PREPENDQ (silent)', concat(PREPENDQ, k, b'p+', opaque=9))
    d.step('GET keeps flags', get(k, GET, 10), capture=('c3', 0))
    d.step('APPEND stale CAS', lambda s: concat(APPEND, k, b'!', cas=s.cas['c2'], opaque=11))
    d.step('PREPEND matching CAS', lambda s: concat(PREPEND, k, b'^', cas=s.cas['c3'],
                                                      opaque=12))
    d.step('APPEND empty', concat(APPEND, k, b'', opaque=13))
    d.step('GETK final', get(k, GETK, 14))


def c_delete(d):
    k = d.key('k')
    d.step('DELETE missing', delete(k, DELETE, opaque=1))
    d.step('DELETEQ missing (error)', delete(k, DELETEQ, opaque=2))
    d.step('SET', store(SET, k, b'v', opaque=3), capture=('c', 0))
    d.step('DELETE stale CAS', delete(k, DELETE, cas=BAD_CAS, opaque=4))
    d.step('GET still there', get(k, GET, 5))
    d.step('DELETE matching CAS', lambda s: delete(k, DELETE, cas=s.cas['c'], opaque=6))
    d.step('GET deleted', get(k, GET, 7))
    d.step('SET again', store(SET, k, b'v2', opaque=8))
    d.step('DELETEQ hit (silent)', delete(k, DELETEQ, opaque=9))
    d.step('GETK after DELETEQ', get(k, GETK, 10))
    d.step('DELETE with CAS on missing key', delete(k, DELETE, cas=BAD_CAS, opaque=11))


def c_incr_decr(d):
    k = d.key('n')
    d.step('INCR missing, create with initial', delta(INCREMENT, k, 5, 100, 0, opaque=1),
           capture=('c1', 0))
    d.step('GET created counter', get(k, GET, 2))
    d.step('INCR existing', delta(INCREMENT, k, 7, 0, 0, opaque=3))
    d.step('DECR existing', delta(DECREMENT, k, 2, 0, 0, opaque=4))
    d.step('INCRQ (silent)', delta(INCREMENTQ, k, 1, 0, 0, opaque=5))
    d.step('DECRQ (silent)', delta(DECREMENTQ, k, 1, 0, 0, opaque=6))
    d.step('GET counter', get(k, GETK, 7), capture=('c2', 0))
    d.step('INCR missing, no create (0xffffffff)',
           delta(INCREMENT, d.key('nc'), 1, 9, kt.NO_CREATE, opaque=8))
    d.step('DECR missing, no create (0xffffffff)',
           delta(DECREMENT, d.key('nc'), 1, 9, kt.NO_CREATE, opaque=9))
    d.step('INCRQ missing, no create (error)',
           delta(INCREMENTQ, d.key('nc'), 1, 9, kt.NO_CREATE, opaque=10))
    d.step('GET not created', get(d.key('nc'), GETK, 11))
    d.step('DECR missing, create with initial', delta(DECREMENT, d.key('d'), 3, 50, 0, opaque=12))
    d.step('INCRQ missing, create (silent)', delta(INCREMENTQ, d.key('iq'), 1, 77, 0, opaque=13))
    d.step('GET quietly created', get(d.key('iq'), GET, 14))
    d.step('INCR stale CAS', lambda s: delta(INCREMENT, k, 1, 0, 0, cas=s.cas['c1'], opaque=15))
    d.step('INCR matching CAS', lambda s: delta(INCREMENT, k, 1, 0, 0, cas=s.cas['c2'],
                                                 opaque=16))
    d.step('INCR by 0', delta(INCREMENT, k, 0, 0, 0, opaque=17))


def c_incr_edges(d):
    w = d.key('wrap')
    d.step('SET 2^64-1', store(SET, w, b'18446744073709551615', opaque=1))
    d.step('INCR wraps to 0', delta(INCREMENT, w, 1, 0, 0, opaque=2))
    d.step('GET wrapped', get(w, GET, 3))
    d.step('SET 2^64-2', store(SET, w, b'18446744073709551614', opaque=4))
    d.step('INCR by 5 wraps', delta(INCREMENT, w, 5, 0, 0, opaque=5))
    d.step('INCR by 2^64-1', delta(INCREMENT, w, 0xffffffffffffffff, 0, 0, opaque=6))
    f = d.key('floor')
    d.step('SET 5', store(SET, f, b'5', opaque=7))
    d.step('DECR below 0 floors at 0', delta(DECREMENT, f, 10, 0, 0, opaque=8))
    d.step('GET floored', get(f, GET, 9))
    p = d.key('pad')
    d.step('SET 10', store(SET, p, b'10', flags=9, opaque=10))
    d.step('DECR 10 -> 9 (padded "9 ")', delta(DECREMENT, p, 1, 0, 0, opaque=11))
    d.step('GET padded value', get(p, GET, 12))
    d.step('INCR padded "9 " -> 10', delta(INCREMENT, p, 1, 0, 0, opaque=13))
    d.step('GET after growing back', get(p, GET, 14))
    d.step('SET 1000', store(SET, p, b'1000', opaque=15))
    d.step('DECR 1000 -> 5', delta(DECREMENT, p, 995, 0, 0, opaque=16))
    d.step('GET "5   "', get(p, GETK, 17))
    d.step('INCR 5 -> 99999 (grows)', delta(INCREMENT, p, 99994, 0, 0, opaque=18))
    d.step('GET grown', get(p, GETK, 19))
    n = d.key('nonnum')
    for i, v in enumerate((b'abc', b'12abc', b'-5', b'', b' 7', b'123456789012345678901234',
                           b'18446744073709551616', b'0x10', b'3.5')):
        d.step('SET %r' % v, store(SET, n, v, opaque=100 + i))
        d.step('INCR on %r' % v, delta(INCREMENT, n, 1, 0, 0, opaque=200 + i))
        d.step('DECR on %r' % v, delta(DECREMENT, n, 1, 0, 0, opaque=300 + i))
        d.step('GET after delta on %r' % v, get(n, GET, 400 + i))
    c = d.key('created')
    d.step('INCR create initial 2^64-1', delta(INCREMENT, c, 1, 0xffffffffffffffff, 0, opaque=20))
    d.step('GET created 2^64-1', get(c, GET, 21))
    d.step('INCR flags of created item', get(c, GETK, 22))


def c_touch_gat(d):
    k = d.key('k')
    d.step('TOUCH missing', touch(k, 100, opaque=1))
    d.step('GAT missing', gat(GAT, k, 100, opaque=2))
    d.step('GATQ missing (silent)', gat(GATQ, k, 100, opaque=3))
    d.step('GATK missing', gat(GATK, k, 100, opaque=4))
    d.step('GATKQ missing (silent)', gat(GATKQ, k, 100, opaque=5))
    d.step('SET', store(SET, k, b'tv', flags=0xabcd, opaque=6), capture=('c', 0))
    d.step('TOUCH hit', touch(k, 100, opaque=7))
    d.step('GAT hit', gat(GAT, k, 200, opaque=8))
    d.step('GATQ hit', gat(GATQ, k, 300, opaque=9))
    d.step('GATK hit', gat(GATK, k, 400, opaque=10))
    d.step('GATKQ hit', gat(GATKQ, k, 0, opaque=11))
    d.step('GETK after touches (CAS kept?)', get(k, GETK, 12))


def c_keyless(d):
    d.step('NOOP', simple(NOOP, 1))
    d.step('VERSION (string not compared)', simple(VERSION, 2), version=True)
    d.step('STAT (contents not compared)', stat(b'', 3), stat=True)
    d.step('STAT unknown group', stat(b'no-such-group', 4))


def c_unknown(d):
    d.step('unknown opcode 0x50', req(0x50, opaque=1))
    d.step('unknown opcode 0xeb (Kite range, unassigned)', req(0xeb, opaque=2))
    d.step('unknown opcode 0xff', req(0xff, opaque=3))
    d.step('VERBOSITY 0x1b (not in memcached 1.6 binary)', req(VERBOSITY, opaque=4))
    d.step('GET then unknown then NOOP', get(d.key('x'), GETK, 5) + req(0x51, opaque=6) +
           simple(NOOP, 7))

    def topo_rule(rs):
        if len(rs) != 1 or rs[0].status != OK or len(rs[0].value) < 16 or rs[0].value[0] != 1:
            return 'kited answers TOPOLOGY (0xe0) with a version-1 layout'
        return None
    d.step('opcode 0xe0 (intended difference: Kite TOPOLOGY)', req(0xe0, opaque=8),
           known={'memcached': lambda rs: None if len(rs) == 1 and
                  rs[0].status == kt.UNKNOWN_COMMAND else 'expected UNKNOWN_COMMAND',
                  'kited': topo_rule})

    # memcached 1.6 over UDP loses the reply to an unknown opcode that has a
    # body and swallows the next datagram (its per-connection swallow
    # state), so these come last; every case starts with a fresh memcached.
    def unk_rule(rs):
        if len(rs) != 1 or rs[0].status != kt.UNKNOWN_COMMAND or rs[0].value != b'Unknown command':
            return 'expected UNKNOWN_COMMAND "Unknown command"'
        return None
    for label, body in (('extras, key and value', req(0x50, b'key', b'body', b'ext', opaque=9)),
                        ('a key', req(0xff, b'k', opaque=10)),
                        ('VERBOSITY with extras', req(VERBOSITY, extras=b'\0' * 4, opaque=11))):
        d.step('unknown opcode with %s (intended difference: memcached swallow state)' % label,
               body, known={'memcached': lambda rs: None, 'kited': unk_rule})


def c_invalid_single(d):
    """Malformed but framable requests, one per datagram (nothing follows,
    so memcached's close-after-error is invisible)."""
    k = d.key('k')
    cases = [
        ('GET with extras', req(GET, k, extras=b'\0\0\0\0', opaque=1)),
        ('GET empty key', req(GET, b'', opaque=2)),
        ('GET with value', req(GET, k, b'v', opaque=3)),
        ('SET without extras', req(SET, k, b'v', opaque=4)),
        ('SET extlen 4', req(SET, k, b'v', extras=b'\0' * 4, opaque=5)),
        ('SET empty key', req(SET, b'', b'v', extras=b'\0' * 8, opaque=6)),
        ('APPEND with extras', req(APPEND, k, b'v', extras=b'\0' * 8, opaque=7)),
        ('DELETE with extras', req(DELETE, k, extras=b'\0' * 4, opaque=8)),
        ('DELETE with value', req(DELETE, k, b'v', opaque=9)),
        ('INCR extlen 8', req(INCREMENT, k, extras=b'\0' * 8, opaque=10)),
        ('INCR with value', req(INCREMENT, k, b'v', extras=b'\0' * 20, opaque=11)),
        ('TOUCH without extras', req(TOUCH, k, opaque=12)),
        ('GAT extlen 8', req(GAT, k, extras=b'\0' * 8, opaque=13)),
        ('NOOP with key', req(NOOP, b'k', opaque=14)),
        ('VERSION with extras', req(VERSION, extras=b'\0' * 4, opaque=15)),
        ('FLUSH extlen 8', req(FLUSH, extras=b'\0' * 8, opaque=16)),
        ('key of 251 bytes', req(GET, b'x' * 251, opaque=17)),
        ('keylen+extlen > bodylen', req(GET, k, opaque=18, bodylen=len(k) - 1)),
        ('SET keylen+extlen > bodylen', req(SET, k, b'', extras=b'\0' * 8, opaque=19,
                                            bodylen=8)),
        ('QUIT with key', req(QUIT, b'k', opaque=20)),
    ]
    for label, body in cases:
        d.step(label, body)


def c_quit(d):
    d.step('QUIT', simple(QUIT, 1))
    d.step('QUITQ (silent)', simple(QUITQ, 2))
    d.step('NOOP after QUIT datagrams', simple(NOOP, 3))
    d.step('QUIT then NOOP in one datagram (NOOP unanswered)',
           simple(QUIT, 4) + simple(NOOP, 5))
    d.step('NOOP, QUITQ, NOOP in one datagram', simple(NOOP, 6) + simple(QUITQ, 7) +
           simple(NOOP, 8))
    k = d.key('k')
    d.step('QUIT then SET (SET not executed)', simple(QUIT, 9) + store(SET, k, b'x', opaque=10))
    d.step('GET after QUIT+SET', get(k, GETK, 11))


def c_flush_now(d):
    ks = [d.key('f%d' % i) for i in range(4)]
    for i, k in enumerate(ks):
        d.step('SET %d' % i, store(SET, k, b'v%d' % i, opaque=i))
    d.step('FLUSH', flush(FLUSH, None, 10))
    for i, k in enumerate(ks):
        d.step('GET after FLUSH %d' % i, get(k, GETK, 20 + i))
    d.step('SET after FLUSH', store(SET, ks[0], b'new', opaque=30))
    d.step('GET after FLUSH+SET', get(ks[0], GETK, 31))
    d.step('FLUSHQ (silent)', flush(FLUSHQ, None, 32))
    d.step('GET after FLUSHQ', get(ks[0], GETK, 33))
    d.step('SET', store(SET, ks[1], b'v', opaque=34))
    d.step('FLUSH delay 0 in extras', flush(FLUSH, 0, 35))
    d.step('GET after FLUSH 0', get(ks[1], GETK, 36))


def c_flush_delayed(d):
    a, b, c = d.key('a'), d.key('b'), d.key('c')
    d.step('SET a', store(SET, a, b'va', opaque=1))
    d.step('FLUSH delay 3', flush(FLUSH, 3, 2))
    d.step('GET a before the deadline', get(a, GETK, 3))
    d.step('SET b before the deadline', store(SET, b, b'vb', opaque=4))
    d.step('FLUSHQ delay 3 (silent)', flush(FLUSHQ, 3, 5))
    time.sleep(4.5)
    d.step('GET a after the deadline', get(a, GETK, 6))
    d.step('GET b after the deadline', get(b, GETK, 7))
    d.step('SET c after the deadline', store(SET, c, b'vc', opaque=8))
    d.step('GET c', get(c, GETK, 9))


def c_flush_absolute_past(d):
    a = d.key('a')
    d.step('SET a', store(SET, a, b'va', opaque=1))
    d.step('FLUSH at an absolute time in the past', flush(FLUSH, int(time.time()) - 3600, 2))

    # memcached maps an absolute time at or before its own start to 1
    # (realtime()), so oldest_live becomes 0, which means "no flush"; kited
    # mirrors it (kite_engine_conf.started): the item stays on both.
    d.step('GET a (the flush was ignored)', get(a, GETK, 3))
    d.step('SET after the flush', store(SET, a, b'vb', opaque=4))
    d.step('GET after SET', get(a, GETK, 5))


def c_ttl(d):
    """TTL 3 s: both servers keep whole-second clocks, so an item with TTL n
    lives between n-1 and n seconds; 3 leaves two seconds for the steps that
    must see it alive, and 4.5 s of sleep sees it gone on both."""
    now = int(time.time())
    names = {}
    for n in ('set', 'add', 'replace', 'touch', 'gat', 'gatk', 'incr', 'long', 'abs_future',
              'appended', 'touch0'):
        names[n] = d.key(n)
    d.step('SET ttl 3', store(SET, names['set'], b'v', exptime=3, opaque=1))
    d.step('ADD ttl 3', store(ADD, names['add'], b'v', exptime=3, opaque=2))
    d.step('SET for REPLACE', store(SET, names['replace'], b'v', opaque=3))
    d.step('REPLACE ttl 3', store(REPLACE, names['replace'], b'v2', exptime=3, opaque=4))
    d.step('SET for TOUCH', store(SET, names['touch'], b'v', opaque=5))
    d.step('TOUCH ttl 3', touch(names['touch'], 3, opaque=6))
    d.step('SET for GAT', store(SET, names['gat'], b'v', opaque=7))
    d.step('GAT ttl 3', gat(GAT, names['gat'], 3, opaque=8))
    d.step('SET for GATK', store(SET, names['gatk'], b'v', exptime=3, opaque=9))
    d.step('GATK ttl 0 (never)', gat(GATK, names['gatk'], 0, opaque=10))
    d.step('INCR create ttl 3', delta(INCREMENT, names['incr'], 1, 5, 3, opaque=11))
    d.step('SET ttl 100', store(SET, names['long'], b'v', exptime=100, opaque=12))
    d.step('SET absolute future', store(SET, names['abs_future'], b'v', exptime=now + 100,
                                        opaque=13))
    d.step('SET ttl 3 then APPEND keeps ttl', store(SET, names['appended'], b'v', exptime=3,
                                                    opaque=14))
    d.step('APPEND', concat(APPEND, names['appended'], b'+', opaque=15))
    d.step('SET ttl 3 for TOUCH 0', store(SET, names['touch0'], b'v', exptime=3, opaque=16))
    d.step('TOUCH 0 (never expires)', touch(names['touch0'], 0, opaque=17))
    d.step('GET before expiry', get(names['set'], GETK, 18))
    ap = d.key('abs_past')
    d.step('SET absolute past', store(SET, ap, b'v', exptime=now - 3600, opaque=19))
    d.step('GET absolute past', get(ap, GETK, 20))
    d.step('SET for TOUCH absolute past', store(SET, d.key('tp'), b'v', opaque=21))
    d.step('TOUCH absolute past', touch(d.key('tp'), now - 3600, opaque=22))
    d.step('GET after TOUCH absolute past', get(d.key('tp'), GETK, 23))
    d.step('ADD over expired-by-absolute key', store(ADD, ap, b'again', opaque=24))
    time.sleep(4.5)
    for i, n in enumerate(sorted(names)):
        d.step('GET %s after 4.5 s' % n, get(names[n], GETK, 100 + i))
    d.step('ADD over expired key', store(ADD, names['set'], b'fresh', opaque=200))
    d.step('REPLACE expired key', store(REPLACE, names['add'], b'fresh', opaque=201))
    d.step('INCR expired counter, no create', delta(INCREMENT, names['incr'], 1, 0,
                                                    kt.NO_CREATE, opaque=202))
    d.step('TOUCH expired', touch(names['touch'], 10, opaque=203))


def c_multi(d):
    a, b, c, m = d.key('a'), d.key('b'), d.key('c'), d.key('missing')
    d.step('SETQ a, SETQ b, SETQ c, NOOP',
           store(SETQ, a, b'va', 1, opaque=1) + store(SETQ, b, b'vb', 2, opaque=2) +
           store(SETQ, c, b'vc', 3, opaque=3) + simple(NOOP, 4))
    d.step('GETKQ a, GETKQ missing, GETK b, GETQ missing, GET c, NOOP',
           get(a, GETKQ, 5) + get(m, GETKQ, 6) + get(b, GETK, 7) + get(m, GETQ, 8) +
           get(c, GET, 9) + simple(NOOP, 10))
    d.step('SET, GET, DELETE, GET, ADD, GETK',
           store(SET, a, b'x1', opaque=11) + get(a, GET, 12) + delete(a, opaque=13) +
           get(a, GET, 14) + store(ADD, a, b'x2', opaque=15) + get(a, GETK, 16))
    d.step('INCRQ create, INCR, DECRQ, GET',
           delta(INCREMENTQ, d.key('n'), 1, 10, 0, opaque=17) +
           delta(INCREMENT, d.key('n'), 5, 0, 0, opaque=18) +
           delta(DECREMENTQ, d.key('n'), 3, 0, 0, opaque=19) + get(d.key('n'), GET, 20))
    d.step('GET hit, unknown opcode, GET hit',
           get(b, GET, 21) + req(0x50, opaque=22) + get(c, GET, 23))
    d.step('SETQ with stale CAS, NOOP', store(SETQ, b, b'z', cas=UNUSED_CAS, opaque=24) +
           simple(NOOP, 25))
    d.step('APPENDQ, PREPENDQ, GETK', concat(APPENDQ, c, b'>', opaque=26) +
           concat(PREPENDQ, c, b'<', opaque=27) + get(c, GETK, 28))
    d.step('TOUCH, GAT, GATKQ miss, GATK, NOOP', touch(b, 100, opaque=29) +
           gat(GAT, b, 100, opaque=30) + gat(GATKQ, m, 100, opaque=31) +
           gat(GATK, c, 100, opaque=32) + simple(NOOP, 33))
    d.step('VERSION, NOOP', simple(VERSION, 34) + simple(NOOP, 35), version=True)
    d.step('SET then STAT', store(SET, a, b'st', opaque=36) + stat(b'', 37), stat=True)
    d.step('GET after SET+STAT', get(a, GETK, 38))
    # Requests stay within one 1472-byte packet (see c_fragmented); the
    # replies of the GET batches span several reply datagrams.
    many = [d.key('m%02d' % i) for i in range(16)]
    d.step('16 x SETQ + NOOP', b''.join(store(SETQ, k, (b'value-%02d-' % i) * 6, i,
                                             opaque=100 + i)
                                       for i, k in enumerate(many)) + simple(NOOP, 199))
    d.step('16 x GETKQ + 5 misses + NOOP (reply spans datagrams)',
           b''.join(get(k, GETKQ, 200 + i) for i, k in enumerate(many)) +
           b''.join(get(d.key('x%d' % i), GETKQ, 300 + i) for i in range(5)) +
           simple(NOOP, 399))
    d.step('16 x GETK', b''.join(get(k, GETK, 400 + i) for i, k in enumerate(many)))
    d.step('16 x GET + 16 x GETK', b''.join(get(k, GET, 600 + i) for i, k in enumerate(many)) +
           b''.join(get(k, GETK, 700 + i) for i, k in enumerate(many)))
    d.step('DELETEQ hit, DELETEQ miss, DELETE miss',
           delete(many[0], DELETEQ, opaque=500) + delete(m, DELETEQ, opaque=501) +
           delete(m, DELETE, opaque=502))
    d.step('FLUSHQ with delay then NOOP', flush(FLUSHQ, 1000, 503) + simple(NOOP, 504))
    d.step('FLUSHQ delay 0 then NOOP', flush(FLUSHQ, 0, 505) + simple(NOOP, 506))
    d.step('GETK after FLUSHQ 0', get(b, GETK, 507))


def c_large(d):
    """Values larger than one reply datagram, grown with APPEND so that each
    request stays small (see c_fragmented for large requests)."""
    k = d.key('big')
    chunk = bytes((i * 7 + 3) & 0xff for i in range(1000))
    d.step('SET 1000-byte value', store(SET, k, chunk, flags=42, opaque=1))
    for i in range(19):
        d.step('APPEND 1000 bytes (%d)' % (i + 2), concat(APPENDQ if i % 2 else APPEND, k,
                                                         chunk[i:] + chunk[:i], opaque=10 + i))
    d.step('GET 20000-byte value (reply spans datagrams)', get(k, GET, 2))
    d.step('GETK 20000-byte value', get(k, GETK, 3))
    d.step('GAT 20000-byte value', gat(GAT, k, 0, opaque=5))
    d.step('two large GETs and a NOOP in one datagram', get(k, GETK, 6) + get(k, GET, 7) +
           simple(NOOP, 8))
    d.step('GETKQ large + GETKQ miss + NOOP', get(k, GETKQ, 9) + get(d.key('no'), GETKQ, 10) +
           simple(NOOP, 11))


def c_fragmented(d):
    """Request datagrams larger than the MTU arrive as IP fragments. On
    net_af_packet the kernel puts them back together before kited sees them
    (DPDK's af_packet PMD joins its fanout group with
    PACKET_FANOUT_FLAG_DEFRAG), so kited receives one frame of up to 64 KB
    there; on memif kited reassembles them itself (test_memif.py)."""
    for n in (1600, 3000, 20000):
        k = d.key('f%d' % n)
        v = bytes((i * 13 + n) & 0xff for i in range(n))
        d.step('SET %d-byte value in one (fragmented) datagram' % n,
               store(SET, k, v, flags=n, opaque=n))
        d.step('GETK %d-byte value' % n, get(k, GETK, n + 1))


def c_e2big(d):
    """Run against servers limited to 1 KiB values (memcached -I 1k, kited
    --max-item-size 1024); 1500 bytes is over both limits."""
    k = d.key('k')
    over = b'z' * 1500
    d.step('SET small value', store(SET, k, b'old', flags=1, opaque=1))
    d.step('SET value over the limit: E2BIG', store(SET, k, over, opaque=2))

    def mc_rule(rs):
        if len(rs) != 1 or rs[0].status != KEY_ENOENT:
            return 'memcached unlinks the old value on E2BIG: expected KEY_ENOENT'
        return None

    def kd_rule(rs):
        if len(rs) != 1 or rs[0].status != OK or rs[0].value != b'old':
            return 'kited leaves the store untouched on E2BIG: expected the old value'
        return None
    d.step('GET after E2BIG (intended difference)', get(k, GET, 3),
           known={'memcached': mc_rule, 'kited': kd_rule})
    n = d.key('n')
    d.step('ADD value over the limit on a missing key', store(ADD, n, over, opaque=4))
    d.step('GET missing after ADD E2BIG', get(n, GETK, 5))
    d.step('SETQ value over the limit (error is not quiet)', store(SETQ, n, over, opaque=6))
    d.step('REPLACE value over the limit on a missing key', store(REPLACE, n, over, opaque=7))
    a = d.key('a')
    d.step('SET 600 bytes', store(SET, a, b'a' * 600, opaque=8))
    d.step('APPEND 600 bytes: over the limit', concat(APPEND, a, b'b' * 600, opaque=9))
    d.step('PREPEND 600 bytes: over the limit', concat(PREPEND, a, b'c' * 600, opaque=10))
    d.step('APPENDQ 600 bytes: over the limit (error)', concat(APPENDQ, a, b'b' * 600,
                                                              opaque=11))
    d.step('GET unchanged after failed APPEND', get(a, GETK, 12))
    d.step('SET then E2BIG SET then GET in one datagram',
           store(SET, d.key('m'), b'v1', opaque=13) + store(SET, d.key('m'), over, opaque=14) +
           get(d.key('x'), GETK, 15))


# Each case runs against a freshly started memcached: memcached keeps parser
# state per UDP "connection" (one per worker thread; -t 1 makes it one), and
# after a QUIT or a protocol error it drops the rest of later datagrams after
# an error reply. Kited keeps no such state, so a fresh oracle per case keeps
# one case's leftovers from turning into another case's false mismatch.
CASES = [
    ('get miss', c_get_miss), ('get hit', c_get_hit), ('set and cas', c_set),
    ('add', c_add), ('replace', c_replace), ('append/prepend', c_append_prepend),
    ('delete', c_delete), ('incr/decr', c_incr_decr), ('incr/decr edges', c_incr_edges),
    ('touch/gat', c_touch_gat), ('noop/version/stat', c_keyless), ('unknown opcodes', c_unknown),
    ('malformed single requests', c_invalid_single), ('quit', c_quit),
    ('multi-request datagrams', c_multi), ('large values', c_large),
    ('fragmented request datagrams', c_fragmented), ('ttl expiry', c_ttl),
    ('flush now', c_flush_now), ('flush delayed', c_flush_delayed),
    ('flush absolute past', c_flush_absolute_past),
]
# Cases run against servers restarted with a 1 KiB value limit.
SMALL_LIMIT_CASES = [('value over the size limit', c_e2big)]


class Servers:
    """The oracle and the server under test, restartable with a value limit."""

    def __init__(self, t):
        self.t = t
        self.against_mc = t.args.against_memcached
        self.topo = None
        self.oracle = None
        self.other = None
        self.kited = None

    def mc_args(self, small):
        # -t 1: one UDP "connection", so memcached's state is deterministic.
        if small:
            return ['-t', '1', '-I', '1k', '-o', 'slab_chunk_max=512']
        return ['-t', '1']

    def fresh_oracle(self, small):
        if self.oracle is not None:
            self.oracle.stop()
        self.oracle = kt.Memcached(self.t, self.mc_args(small)).start()
        return Side('memcached', 'memcached', self.oracle.client())

    def start_under_test(self, small):
        if self.against_mc:
            if self.other is not None:
                self.other.stop()
            self.other = kt.Memcached(self.t, self.mc_args(small)).start()
            return Side('memcached2', 'memcached', self.other.client())
        if self.topo is None:
            self.topo = kt.Topology(self.t).up()
        if self.kited is not None:
            self.kited.stop()
        args = ['--max-item-size', '1024'] if small else []
        self.kited = kt.Kited(self.t, self.topo, kite_args=args).start()
        return Side('kited', 'kited', self.topo.client())


def run_cases(t, servers, cases, small):
    only = set(t.args.case or [])
    cases = [(n, f) for n, f in cases if not only or n in only]
    if not cases:
        return
    b = servers.start_under_test(small)
    for name, fn in cases:
        a = servers.fresh_oracle(small)
        b.client.close()
        if servers.against_mc:
            b = servers.start_under_test(small)
        else:
            b = Side('kited', 'kited', servers.topo.client())
        d = Differ(t, a, b)
        d.prefix = ('d%02d:' % (len(t.failures) + t.passed)).encode()

        def run_case(d=d, fn=fn):
            fn(d)
            if d.problems:
                raise kt.CaseFailure('%d mismatch(es):\n    ' % len(d.problems) +
                                     '\n    '.join(d.problems))
        t.case(name, run_case)
        a.client.close()
    if servers.kited is not None:
        k = servers.kited
        t.case('kited still running (%s limit)' % ('1 KiB' if small else 'default'),
               lambda: kt.check(k.alive(), 'kited exited:\n' + k.tail()))


def body(t):
    t.need_root()
    if not t.args.against_memcached:
        t.need_file(t.args.kited, 'kited')
        t.need_tool('ip')
        t.need_tool('ethtool')
    kt.Memcached(t)  # skips (77) when memcached is missing
    servers = Servers(t)
    run_cases(t, servers, CASES, small=False)
    run_cases(t, servers, SMALL_LIMIT_CASES, small=True)


def extra(ap):
    ap.add_argument('--against-memcached', action='store_true',
                    help='compare memcached with a second memcached (checks the harness)')
    ap.add_argument('--case', action='append', help='run only this case (repeatable)')


if __name__ == '__main__':
    kt.run('differential', body, extra)
