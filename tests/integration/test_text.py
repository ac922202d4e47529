#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Differential test of the text and meta protocols: the same datagrams go
to kited and to memcached 1.6.18 (`memcached -U PORT`), and the text each
sends back is compared line by line.

Every datagram ends with `mn` so both servers end their answer with MN
(memcached sends one message per response; kited packs them per MTU: only
the text in order is compared, not datagram boundaries). Normalised before
comparing, and only this:
  * CAS values (gets/gats VALUE lines, meta c): by identity, each server's
    numbered in the order they first appear;
  * remaining TTLs (meta t): equal within one second (the two servers'
    clocks tick apart);
  * VERSION: the version; stats: the statistics (both end with END).
Kite's intended differences (docs/protocol.rst) have cases of their own
against kited alone: meta l and me are refused; keys with control
characters are refused; a line that starts like a response is dropped, not
answered ERROR; hot keys are listed by stats hotkeys and hinted with H;
quiet/noreply and the win/stale machinery are compared with memcached like
everything else. kited runs two workers, so datagrams whose keys both own
are relayed between them and must still come back in command order.

Run: python3 test_text.py --kited PATH --cli PATH --memcached PATH
"""

import os
import re
import select
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitelib  # noqa: E402
import kitetest as kt  # noqa: E402


def ask(client, text, mn=True):
    """One datagram of text (with mn after it: its MN ends the answer, else
    0.4 s of silence does); the text that came back, datagrams in order."""
    body = text + (b'mn\r\n' if mn else b'')
    req_id = client.new_req_id()
    client.sock.send(kt.frame(req_id) + body)
    got = {}
    deadline = time.monotonic() + 5.0
    idle_until = time.monotonic() + (5.0 if mn else 0.4)
    while True:
        now = time.monotonic()
        until = min(deadline, idle_until)
        if now >= until:
            break
        r, _, _ = select.select([client.sock], [], [], until - now)
        if not r:
            continue
        d = client.sock.recv(70000)
        if len(d) < 8:
            continue
        rid, seq, total, _ = struct.unpack('>HHHH', d[:8])
        if rid != req_id:
            continue
        if total == 0 and seq == 0 and len(d) == 8:
            continue  # memcached's empty frame
        got.setdefault(len(got), d[8:])  # arrival order: one message per reply (memcached)
        if not mn:
            idle_until = time.monotonic() + 0.4
        elif b''.join(got[k] for k in sorted(got)).endswith(b'MN\r\n'):
            break
    return b''.join(got[k] for k in sorted(got))


class Norm:
    """One server's normaliser (CAS identity is per server)."""

    def __init__(self):
        self.cas = {}

    def cas_id(self, v):
        if v not in self.cas:
            self.cas[v] = 'C%d' % len(self.cas)
        return self.cas[v]

    def line(self, ln):
        if ln.startswith(b'VERSION '):
            return b'VERSION x'
        if ln.startswith(b'STAT '):
            return None
        w = ln.split(b' ')
        if w[0] == b'VALUE' and len(w) == 5:
            w[4] = self.cas_id(w[4]).encode()
            return b' '.join(w)
        if w[0] in (b'HD', b'VA', b'EN', b'NF', b'NS', b'EX'):
            for i in range(1, len(w)):
                if w[i].startswith(b'c') and w[i][1:].isdigit():
                    w[i] = b'c' + self.cas_id(w[i][1:]).encode()
            return b' '.join(w)
        return ln

    def text(self, s):
        out = []
        for ln in s.split(b'\r\n'):
            n = self.line(ln)
            if n is not None:
                out.append(n)
        return out


def ttl_close(a, b):
    """Lines equal but for meta t values within one second."""
    wa, wb = a.split(b' '), b.split(b' ')
    if len(wa) != len(wb):
        return False
    for x, y in zip(wa, wb):
        if x == y:
            continue
        if x.startswith(b't') and y.startswith(b't'):
            try:
                if abs(int(x[1:]) - int(y[1:])) <= 1:
                    continue
            except ValueError:
                pass
        return False
    return True


class Differ:
    def __init__(self, mc, kd):
        self.mc, self.kd = mc, kd
        self.nmc, self.nkd = Norm(), Norm()
        self.problems = []

    def same(self, text, mn=True):
        a = ask(self.mc, text, mn)
        b = ask(self.kd, text, mn)
        la, lb = self.nmc.text(a), self.nkd.text(b)
        if len(la) != len(lb) or not all(x == y or ttl_close(x, y) for x, y in zip(la, lb)):
            self.problems.append('for %r\n      memcached %r\n      kited     %r' % (
                text[:200], a[:400], b[:400]))
        return b

    def kited(self, text, want, mn=True):
        b = ask(self.kd, text, mn)
        if b != want:
            self.problems.append('for %r (Kite)\n      want %r\n      got  %r' % (
                text[:200], want, b))
        return b


def c_classic(d):
    d.same(b'set a 5 0 3\r\nabc\r\nget a\r\ngets a\r\nget nope\r\n')
    d.same(b'add a 0 0 1\r\nx\r\nadd b 1 0 2\r\nbb\r\nreplace c 0 0 1\r\nx\r\n'
           b'replace b 2 0 1\r\ny\r\nget b\r\n')
    d.same(b'append a 9 9 2\r\nde\r\nprepend a 0 0 1\r\n_\r\nappend zz 0 0 1\r\nx\r\n'
           b'get a\r\n')
    d.same(b'gets a\r\n')
    d.same(b'cas a 0 0 1 1\r\nx\r\ncas nope 0 0 1 1\r\nx\r\ncas a 0 0 1 0\r\nx\r\n')
    d.same(b'set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr n 18446744073709551615\r\n'
           b'incr nope 1\r\nincr a 1\r\nget n\r\n')
    d.same(b'delete a\r\ndelete a\r\ndelete b 0\r\ndelete n noreply\r\nget a b n\r\n')
    d.same(b'set t 0 100 1\r\nx\r\ntouch t 200\r\ntouch nope 1\r\ngat 300 t nope t\r\n'
           b'gats 0 t\r\ngat 5\r\n')
    d.same(b'set q 0 0 1 noreply\r\nq\r\nadd q 0 0 1 noreply\r\nz\r\nincr q 1 noreply\r\n'
           b'get q\r\n')
    d.same(b'verbosity 1\r\nverbosity 1 noreply\r\nversion\r\n')
    d.same(b'set m1 0 0 1\r\n1\r\nset m2 0 0 1\r\n2\r\nget m1 m2 nope m1\r\n')
    d.same(b'set neg 0 -1 1\r\nx\r\nget neg\r\n')
    d.same(b'stats\r\n')


def c_errors(d):
    d.same(b'bogus\r\n\r\nget\r\nset k 0 0\r\n')
    d.same(b'set k x 0 1\r\nset k 0 0 -1\r\nincr k x\r\nincr k -1\r\ntouch k x\r\n')
    d.same(b'set k 0 0 3\r\nabcd\r\nget k\r\n')
    d.same(b'delete k 5\r\ndelete k 0 0\r\ndelete k noreply 0\r\nflush_all abc\r\n')
    d.same(b'gat x k\r\n')
    d.same(b'get ' + b'a' * 250 + b'\r\nset ' + b'b' * 251 + b' 0 0 1\r\n')
    d.same(b'stats nosuchgroup\r\n')


def c_flush(d):
    d.same(b'set f 0 0 1\r\nx\r\nflush_all\r\nget f\r\nflush_all 0 noreply\r\n')
    d.same(b'set g 0 0 1\r\nx\r\nflush_all 100\r\nget g\r\n')


def c_meta_basic(d):
    d.same(b'ms m 3 T100 F7\r\nabc\r\nmg m v t c f s k Oxy\r\nmg m\r\nmg nope v k Oq\r\n')
    d.same(b'mg nope q v\r\nmg m q v\r\nmg m s v q\r\n')
    d.same(b'ms m 2 c k O9 F5\r\nzz\r\nmg m f v\r\n')
    d.same(b'ms e 1 ME\r\nx\r\nms e 1 ME\r\ny\r\nms r 1 MR\r\nx\r\nms e 2 MA\r\nAA\r\n'
           b'ms e 2 MP\r\nPP\r\nmg e v\r\nms nope 1 MA\r\nx\r\n')
    d.same(b'ms c 1 c\r\nx\r\n')
    d.same(b'mg c c\r\n')


def c_meta_cas(d):
    d.same(b'ms k 1 c\r\nx\r\n')
    # C999999: a CAS neither server has handed out (memcached counts from 1).
    d.same(b'ms k 1 C999999\r\ny\r\nms nope 1 C5\r\ny\r\nms nope 1 C5 ME\r\ny\r\n'
           b'ms nope 1 C5 MR\r\ny\r\nms k 1 C999999 MA\r\ny\r\nmg k v\r\n')
    d.same(b'md k C999999\r\nmd nope\r\nmd k q\r\nmd k\r\nmg k\r\n')


def c_meta_arith(d):
    d.same(b'ma c1 N0 J10 v\r\nma c1 v\r\nma c1 MD D20 v c\r\nma c1 M- v\r\nma c1 M+ D3\r\n'
           b'ma nope\r\nma nope q\r\n')
    d.same(b'ma c2 N0 q v\r\nma c2 q v\r\nma c2 v t\r\n')
    d.same(b'set s 0 0 3\r\nabc\r\nma s\r\n')
    d.same(b'ma c3 N0 J5 MD D10 v\r\n')
    d.same(b'ma c1 D18446744073709551615 v\r\n')


def c_meta_errors(d):
    d.same(b'mg foo E\r\nmg foo v v\r\nmg foo O1 O2\r\nmg foo Tabc\r\nmg foo Tabc Dabc\r\n')
    d.same(b'ms foo 1 MX\r\nx\r\nms foo 1 MSS\r\nx\r\nma foo MX\r\nmd foo E\r\nma foo Tx\r\n')
    d.same(b'mg foo O0123456789012345678901234567890123\r\nmg\r\nmx foo\r\nms foo\r\n')
    d.same(b'ms foo 2 S2\r\nab\r\nmg foo q Tx\r\nms foo 3 E\r\nabc\r\n')
    d.same(b'mg a b c f k O P L N1 T1 R1 s t u v q C1 D1 J1\r\n')
    d.same(b'md a c f k O P L N1 T1 R1 s t u v q C1 I D1\r\n')


def c_meta_b64(d):
    d.same(b'ms YmluAGtleQ== 2 b k c\r\nhi\r\nmg YmluAGtleQ== b k v\r\n'
           b'mg bm9wZQ== b k v\r\nmd YmluAGtleQ== b k\r\nmg cGxhaW4 b\r\n')


def c_vivify(d):
    # N: the first reader wins (W), the next are told someone is on it (Z);
    # the empty item is a 0-byte hit for a plain get.
    d.same(b'mg v1 N30 t v c\r\nmg v1 N30 v\r\nmg v1 N30\r\nget v1\r\n')
    d.same(b'ms v1 3 T60\r\nnew\r\nmg v1 N30 v\r\n')
    d.same(b'mg v2 t N30\r\n')


def c_stale(d):
    # md I: stale with a new CAS; the next reader gets X and W, later ones Z X.
    d.same(b'ms s1 3 T100\r\nold\r\nmd s1 I T30\r\nmg s1 v c t\r\nmg s1 v c\r\nmg s1\r\n')
    d.same(b'ms s1 3\r\nnew\r\nmg s1 v\r\n')
    d.same(b'md nope I\r\nmd s1 I q\r\nmg s1 c\r\n')


def c_recache(d):
    # R: one client wins ahead of expiry; an item with no expiry never does.
    d.same(b'ms r1 1 T100\r\nx\r\nmg r1 R200 t\r\nmg r1 R200 t\r\nmg r1 R50 t\r\n')
    d.same(b'ms r2 1\r\nx\r\nmg r2 R200 t\r\n')
    d.same(b'ms r3 1 T100\r\nx\r\nmg r3 t T30\r\nmg r3 T50 t\r\n')


def c_late_writer(d):
    """ms I with an older C: stored, but stale (a late fill never looks fresh)."""
    got = {}
    for name, side in (('mc', d.mc), ('kd', d.kd)):
        r = ask(side, b'ms lw 2 T100 c\r\nv1\r\n')
        got[name] = int(re.search(rb'HD c(\d+)', r).group(1))
    for name, side in (('mc', d.mc), ('kd', d.kd)):
        ask(side, b'md lw I\r\n')
    texts = {}
    for name, side in (('mc', d.mc), ('kd', d.kd)):
        old = got[name]
        texts[name] = ask(side, b'ms lw 2 I C%d\r\nv2\r\nmg lw v\r\nms lw 2 I C%d\r\nv3\r\n'
                          b'mg lw v\r\n' % (old, old + 1000000))
    a, b = d.nmc.text(texts['mc']), d.nkd.text(texts['kd'])
    if a != b:
        d.problems.append('late writer: memcached %r kited %r' % (texts['mc'], texts['kd']))


def c_meta_hit(d):
    """mg h (read before?) and u (leave the item as it was), after every kind of
    access: memcached's fetched bit, exactly."""
    d.same(b'set hk 0 0 1\r\nx\r\nmg hk h\r\nmg hk h\r\nget hk\r\nmg hk h v\r\n')
    d.same(b'set hu 0 0 1\r\ny\r\nmg hu h u\r\nmg hu h u\r\nmg hu h\r\nmg hu h\r\n')
    d.same(b'ms hm 1\r\nz\r\nmg hm h s\r\nset hm 0 0 1\r\nw\r\nmg hm h\r\n')
    d.same(b'mg hv h N30\r\nmg hv h\r\nmg hw h u N30\r\nmg hw h\r\n')
    d.same(b'set ht 0 0 1\r\n1\r\ntouch ht 100\r\nmg ht h\r\n')
    d.same(b'set ha 0 0 1\r\n1\r\nma ha\r\nmg ha h\r\nincr ha 1\r\nmg ha h\r\n')
    d.same(b'set hg 0 0 1\r\n1\r\ngat 100 hg\r\nmg hg h\r\ngets hg\r\nmg hg h\r\n')
    d.same(b'set hs 0 0 1\r\n1\r\nmd hs I\r\nmg hs h\r\nmg hs h\r\n')
    d.same(b'set hx 0 0 1\r\n1\r\nappend hx 0 0 1\r\n2\r\nmg hx h\r\nmg nope h\r\n')
    d.same(b'set hr 0 0 1\r\n1\r\nmg hr h u R30 T10\r\nmg hr h\r\n')


def c_pipeline(d):
    body = b''.join(b'set p%d 0 0 %d\r\n%s\r\n' % (i, i + 1, b'x' * (i + 1)) for i in range(40))
    body += b'get ' + b' '.join(b'p%d' % i for i in range(40)) + b'\r\n'
    d.same(body)
    d.same(b''.join(b'mg p%d v k q\r\n' % i for i in range(0, 60, 3)))


def c_quit(d):
    d.same(b'set qq 0 0 1\r\nx\r\nquit\r\nget qq\r\n', mn=False)


def c_kite_only(d):
    """Kite's intended differences (docs/protocol.rst), against kited alone."""
    d.kited(b'mg foo l\r\nmg foo h l v\r\n',
            b'CLIENT_ERROR unsupported flag\r\nCLIENT_ERROR unsupported flag\r\nMN\r\n')
    d.kited(b'me foo\r\n', b'SERVER_ERROR me is not supported\r\nMN\r\n')
    # (its data line is then read as a command, as after any bad store line)
    d.kited(b'set a\x01b 0 0 1\r\nx\r\n',
            b'CLIENT_ERROR bad command line format\r\nERROR\r\nMN\r\n')
    # A response line is never answered: nothing from it on.
    d.kited(b'mn\r\nVALUE k 0 1\r\nx\r\nEND\r\nmn\r\n', b'MN\r\n', mn=False)
    d.kited(b'GET k\r\n', b'', mn=False)


def c_hot(d):
    """Hot keys (Kite): a key read over hot-key-rate (5,000/s by default) is listed
    by stats hotkeys with its rate, and its replies carry the hint H."""
    body = b'get hotk\r\n' * 100
    d.kited(b'set hotk 0 0 1\r\nx\r\n', b'STORED\r\nMN\r\n')
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.2:
        ask(d.kd, body)
    time.sleep(1.1)  # the worker's next second: rates, snapshot, hot set
    st = ask(d.kd, b'stats hotkeys\r\n')
    lines = dict(ln.split(b' ')[1:3] for ln in st.split(b'\r\n') if ln.startswith(b'STAT '))
    if lines.get(b'hot_keys') != b'1' or lines.get(b'hot_0_key') != b'hotk' or \
            int(lines.get(b'hot_0_rate', b'0')) < 5000:
        d.problems.append('stats hotkeys: %r' % st)
    r = ask(d.kd, b'mg hotk v\r\nmg nope v\r\n')
    if not r.startswith(b'VA 1 H\r\nx\r\n'):
        d.problems.append('mg of a hot key: %r' % r)
    d.kited(b'stats nosuchgroup\r\n', b'ERROR\r\nMN\r\n')


def kite_stat(d, name):
    st = ask(d.kd, b'stats\r\n')
    for ln in st.split(b'\r\n'):
        f = ln.split(b' ')
        if len(f) == 3 and f[0] == b'STAT' and f[1] == name:
            return int(f[2])
    d.problems.append('stats has no %r' % name)
    return 0


def c_relay(d):
    """A datagram whose keys two workers own comes back as one reply, in command
    order (kited alone: memcached has one worker); kite_text_relays counts the
    passes from worker to worker."""
    before = kite_stat(d, b'kite_text_relays')
    keys = [b'rl%d' % i for i in range(24)]
    body = b''.join(b'set %s 0 0 %d\r\n%s\r\n' % (k, len(k), k) for k in keys)
    body += b'get ' + b' '.join(keys) + b'\r\nmn\r\n'
    want = b'STORED\r\n' * len(keys) + \
        b''.join(b'VALUE %s 0 %d\r\n%s\r\n' % (k, len(k), k) for k in keys) + b'END\r\nMN\r\n'
    req_id = d.kd.new_req_id()
    d.kd.sock.send(kt.frame(req_id) + body)
    got, deadline = [], time.monotonic() + 5.0
    while time.monotonic() < deadline and not b''.join(g[8:] for g in got).endswith(b'MN\r\n'):
        r, _, _ = select.select([d.kd.sock], [], [], 0.5)
        if r:
            g = d.kd.sock.recv(70000)
            if struct.unpack('>H', g[:2])[0] == req_id:
                got.append(g)
    frames = [struct.unpack('>HHHH', g[:8]) for g in got]
    if b''.join(g[8:] for g in got) != want:
        d.problems.append('relay: want %r\n      got %r' % (want[:300], b''.join(got)[:300]))
    if [f[1:3] for f in frames] != [(i, len(frames)) for i in range(len(frames))]:
        d.problems.append('relay: reply frames (seq, total) %r' % [f[1:3] for f in frames])
    relays = kite_stat(d, b'kite_text_relays') - before
    if relays < 2:
        d.problems.append('relay: kite_text_relays grew by %d (keys of both workers?)' % relays)


CASES = [('classic commands', c_classic), ('classic errors', c_errors), ('flush_all', c_flush),
         ('meta mg/ms', c_meta_basic), ('meta cas', c_meta_cas), ('meta ma', c_meta_arith),
         ('meta errors', c_meta_errors), ('meta base64 keys', c_meta_b64),
         ('meta h and u', c_meta_hit),
         ('vivify N/W/Z', c_vivify), ('stale-while-revalidate md I', c_stale),
         ('early recache R', c_recache), ('late writer ms I C', c_late_writer),
         ('pipelined datagrams', c_pipeline), ('quit', c_quit),
         ('Kite differences', c_kite_only), ('hot keys', c_hot),
         ('relay across workers', c_relay)]


def body(t):
    t.need_root()
    t.need_file(t.args.kited, 'kited')
    t.need_tool('ip')
    t.need_tool('ethtool')
    kt.Memcached(t)  # skips (77) when memcached is missing
    topo = kt.Topology(t).up()
    # Two workers: a datagram whose keys both own is answered in command
    # order all the same (the relay, docs/protocol.rst), which every case checks.
    kd = kt.Kited(t, topo, workers=t.args.workers).start()
    only = set(t.args.case or [])
    for name, fn in CASES:
        if only and name not in only:
            continue
        mc = kt.Memcached(t, ['-t', '1']).start()
        a, b = mc.client(), topo.client()
        ask(b, b'flush_all\r\n')
        d = Differ(a, b)

        def run_case(d=d, fn=fn):
            fn(d)
            if d.problems:
                raise kt.CaseFailure('%d mismatch(es):\n    ' % len(d.problems) +
                                     '\n    '.join(d.problems))
        t.case(name, run_case)
        a.close()
        b.close()
        mc.stop()
    if not only or 'libkite meta' in only:
        t.case('libkite meta (binary META_*): vivify W then Z, ms C, md I gives X and W, ma',
               lambda: c_libkite_meta(t, topo))
    t.case('kited still running', lambda: kt.check(kd.alive(), 'kited exited:\n' + kd.tail()))


def c_libkite_meta(t, topo):
    """libkite's KITE_META_* against kited: the same defences as the text lines."""
    build = kt.build_dir(t.args)
    try:
        lib = kitelib.load(build)
    except OSError as e:
        raise kt.Skip('libkite not built: %s' % e)
    with kt.InNetns(topo.ns):
        c = kitelib.Client(lib, '%s:11211' % topo.kited_ip, timeout_ms=500)
    try:
        key = b'lk-vivify'
        c.meta(kitelib.KITE_META_DELETE, key, '')
        won = c.meta(kitelib.KITE_META_GET, key, 'v c N30 t')  # t after N: the new TTL
        kt.check(won['rc'] == kitelib.KITE_OK and won['meta_ret'] == kitelib.META_WIN and
                 won['value'] == b'' and 29 <= won['ttl'] <= 30, 'vivify: %r' % won)
        busy = c.meta(kitelib.KITE_META_GET, key, 'v c N30')
        kt.check(busy['meta_ret'] == kitelib.META_BUSY, 'second reader: %r' % busy)
        st = c.meta(kitelib.KITE_META_SET, key, 'T60 C%d' % won['cas'], b'fresh')
        kt.check(st['rc'] == kitelib.KITE_OK, 'the winner\'s ms C: %r' % st)
        got = c.meta(kitelib.KITE_META_GET, key, 'v t c h f')
        kt.check(got['value'] == b'fresh' and got['meta_ret'] == 0 and
                 59 <= got['ttl'] <= 60, 'after the winner stored: %r' % got)
        kt.check(c.meta(kitelib.KITE_META_GET, key, 'h')['meta_ret'] == kitelib.META_FETCHED,
                 'h after a read')
        kt.check(c.meta(kitelib.KITE_META_DELETE, key, 'I')['rc'] == kitelib.KITE_OK, 'md I')
        stale = c.meta(kitelib.KITE_META_GET, key, 'v c')
        kt.check(stale['value'] == b'fresh' and
                 stale['meta_ret'] == kitelib.META_STALE | kitelib.META_WIN,
                 'stale-while-revalidate: %r' % stale)
        # A late writer with the CAS from before the invalidation: stored, but marked stale.
        late = c.meta(kitelib.KITE_META_SET, key, 'I C%d' % got['cas'], b'late')
        kt.check(late['rc'] == kitelib.KITE_OK, 'late ms I C: %r' % late)
        after = c.meta(kitelib.KITE_META_GET, key, 'v')
        kt.check(after['value'] == b'late' and after['meta_ret'] & kitelib.META_STALE,
                 'a late fill lands stale: %r' % after)
        n = c.meta(kitelib.KITE_META_ARITH, b'lk-n', 'N0 J5 v')
        kt.check(n['rc'] == kitelib.KITE_OK and n['counter'] == 5, 'ma: %r' % n)
        bad = c.meta(kitelib.KITE_META_GET, key, 'v E')
        kt.check(bad['rc'] == 4, 'bad flags: rc %d (KITE_INVALID)' % bad['rc'])
        miss = c.meta(kitelib.KITE_META_GET, b'lk-none', 'v')
        kt.check(miss['rc'] == kitelib.KITE_NOT_FOUND and miss['ttl'] == kitelib.KITE_TTL_NONE,
                 'miss: %r' % miss)
    finally:
        c.close()


def extra(ap):
    ap.add_argument('--case', action='append', help='run only this case (repeatable)')
    ap.add_argument('--workers', type=int, default=2, help="kited's workers (default 2)")


if __name__ == '__main__':
    kt.run('text', body, extra)
