#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The guard (docs/security.rst), with kited's defaults: nothing trusted.

Spoofing: an attacker in the client namespace writes whole Ethernet frames
(AF_PACKET) that claim a victim's address (198.18.77.7, which nobody on
the link owns); a packet socket on the same link counts every byte kited
sends toward the victim. For every opcode and for pipelined datagrams the
victim receives at most the attacker's bytes (IP bytes, both ways).

Then: cookies (a padded hello, full replies with one, bound to the source
port, dead after the rotation grace), plain clients (small replies work,
large ones are refused with COOKIE_REQUIRED and every later request of
the datagram is refused too, quiet ones included, none executed), libkite
and kite-cli validating by themselves, the work budget, martian sources,
the allow-list, FLUSH off, tenants (isolation for every keyed opcode,
FLUSH and STAT admin-only, forged MACs, replays, expired stamps with the
node's time, unauthenticated requests, auth = optional, SIGHUP reload
under load) and a per-source rate limit under a flood (other clients see
no errors; their paired median latency with and without the flood is
reported).

Run: python3 test_guard.py --kited PATH --cli PATH
"""

import ctypes
import ctypes.util
import os
import pwd
import select
import signal
import socket
import statistics
import subprocess
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402
from kitetest import (  # noqa: E402
    GET, GETK, GETQ, GETKQ, SET, SETQ, ADD, REPLACE, APPEND, PREPEND, DELETE, INCREMENT,
    DECREMENT, TOUCH, GAT, GATK, NOOP, VERSION, FLUSH, STAT, OK, KEY_ENOENT, FRAME,
    req, store, get, simple, frame, stat, delta, concat, delete, touch, gat, flush, check,
    check_eq)

COOKIE_REQUIRED = 0xe1
RATE_LIMITED = 0xe2
FORBIDDEN = 0xe3
AUTH_ERROR = 0x20
TOPOLOGY = 0xe0
CLUSTER_MAP = 0xe1
FILL_GET = 0xe7

MAGIC = 0x8b
F_COOKIE, F_AUTH, F_HELLO, F_TIME, F_ERROR, F_RESPONSE = 0x01, 0x02, 0x04, 0x08, 0x10, 0x80
ERR_TENANT, ERR_MAC, ERR_STAMP, ERR_REPLAY = 1, 2, 3, 4

VICTIM = '198.18.77.7'
BIG = 20000          # a value far over one datagram
ROTATE_S = 3         # kited --cookie-rotate-s for the cookie cases

# ---- libsodium through ctypes (the same primitives kited and libkite use) ----

_so = ctypes.CDLL(ctypes.util.find_library('sodium') or 'libsodium.so.23')
_so.sodium_init()
_so.crypto_generichash.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                   ctypes.c_ulonglong, ctypes.c_char_p, ctypes.c_size_t]
_so.crypto_shorthash_siphashx24.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                            ctypes.c_ulonglong, ctypes.c_char_p]


def mac_key(secret):
    out = ctypes.create_string_buffer(16)
    ctx = b'kite tenant mac v1'
    _so.crypto_generichash(out, 16, ctx, len(ctx), secret, 32)
    return out.raw


def siphash128(data, key):
    out = ctypes.create_string_buffer(16)
    _so.crypto_shorthash_siphashx24(out, data, len(data), key)
    return out.raw


# ---- the envelope -------------------------------------------------------------

def envelope(flags=0, cookie=None, tenant=0, stamp=0, pad_to=0):
    body = b''
    if cookie is not None:
        flags |= F_COOKIE
        body += cookie
    if flags & F_AUTH:
        body += struct.pack('>IQ', tenant, stamp) + b'\0' * 16
    n = max(4 + len(body), pad_to)
    return bytes([MAGIC, 1, flags, n]) + body + b'\0' * (n - 4 - len(body))


def sign(dgram, key):
    """dgram: frame + envelope (AUTH with a zero MAC) + requests."""
    flags = dgram[10]
    at = 8 + 4 + (12 if flags & F_COOKIE else 0) + 12
    return dgram[:at] + siphash128(dgram, key) + dgram[at + 16:]


def parse_env(p):
    """(fields, length) of an envelope at p, or (None, 0)."""
    if not p or p[0] != MAGIC:
        return None, 0
    flags, n = p[2], p[3]
    e = {'flags': flags}
    off = 4
    if flags & F_COOKIE:
        e['cookie'] = p[off:off + 12]
        off += 12
    if flags & F_AUTH:
        off += 28
    if flags & F_TIME:
        e['time'] = struct.unpack('>Q', p[off:off + 8])[0]
        off += 8
    if flags & F_ERROR:
        e['err'] = struct.unpack('>H', p[off:off + 2])[0]
    return e, n


def now_us():
    return int(time.time() * 1e6)


class Peer:
    """A UDP socket in the namespace that speaks the envelope by hand."""

    def __init__(self, topo, port=11211):
        self.sock = topo.socket()
        self.addr = (topo.kited_ip, port)
        self.rid = os.getpid() & 0xffff
        self.cookie = None

    def close(self):
        self.sock.close()

    def send(self, payload):
        """payload: everything after the frame; returns (req_id, bytes sent)."""
        self.rid = (self.rid + 1) & 0xffff
        d = frame(self.rid) + payload
        self.sock.sendto(d, self.addr)
        return self.rid, len(d)

    def send_raw(self, dgram):
        self.sock.sendto(dgram, self.addr)

    def collect(self, rid, idle=0.4, limit=3.0, want=None):
        """Datagrams of rid: (envelope of seq 0, kt.Reply, payload bytes)."""
        rep = kt.Reply(rid)
        env = None
        nbytes = 0
        end = time.monotonic() + limit
        last = time.monotonic()
        while True:
            t = min(end, last + idle) - time.monotonic()
            if t <= 0:
                break
            r, _, _ = select.select([self.sock], [], [], t)
            if not r:
                continue
            d = self.sock.recv(70000)
            if len(d) < 8:
                continue
            got, seq, total, reserved = FRAME.unpack(d[:8])
            if got != rid:
                continue
            last = time.monotonic()
            nbytes += len(d)
            body = d[8:]
            e, n = parse_env(body)
            if e is not None:
                env = e
                body = body[n:]
            rep.add(seq, total, reserved, body)
            if want is not None and rep.complete():
                rep.parse()
                if rep.parse_error is None and want(rep):
                    break
        rep.parse()
        return env, rep, nbytes

    def hello(self):
        rid, _ = self.send(envelope(F_HELLO, pad_to=16))
        env, rep, _ = self.collect(rid, idle=0.3, limit=2.0)
        check(env is not None and 'cookie' in env, 'no cookie for a padded hello: %r' % env)
        self.cookie = env['cookie']
        return self.cookie

    def ask(self, body, cookie=True, want='auto', **kw):
        e = envelope(cookie=self.cookie) if cookie and self.cookie else b''
        rid, n = self.send(e + body)
        if want == 'auto':
            want = kt.auto_done(body)
        return self.collect(rid, want=want, **kw)


def statuses(rep):
    return [(r.opcode, r.opaque, r.status) for r in rep.responses]


# ---- raw frames: the attacker --------------------------------------------------

def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


class Wire:
    """Frames written on the client end of the link, and a count of what
    kited sends to chosen addresses (a packet socket on the same link)."""

    def __init__(self, t, topo):
        self.topo = topo
        with kt.InNetns(topo.ns):
            self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            self.tx.bind((topo.ns_if, 0))
            self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
            self.rx.bind((topo.ns_if, 0x0800))
            self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        mac = open('/sys/class/net/%s/address' % topo.host_if).read()
        self.kited_mac = bytes.fromhex(mac.strip().replace(':', ''))
        self.my_mac = self.tx.getsockname()[4]
        t.on_cleanup(self.close)

    def close(self):
        self.tx.close()
        self.rx.close()

    def udp(self, src, payload, sport=40000, dport=11211, dst=None, src_mac=None):
        """One spoofed datagram (payload after UDP), from src_mac (ours by
        default); returns its IP bytes."""
        dst = dst or self.topo.kited_ip
        udp = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload
        iph = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), os.getpid() & 0xffff, 0, 64,
                          17, 0, socket.inet_aton(src), socket.inet_aton(dst))
        iph = iph[:10] + struct.pack('!H', csum(iph)) + iph[12:]
        self.tx.send(self.kited_mac + (src_mac or self.my_mac) + b'\x08\x00' + iph + udp)
        return 20 + len(udp)

    def frames_to(self, dst, settle=0.5):
        """(destination MAC, IP length) of each frame kited sent to dst."""
        out = []
        want = socket.inet_aton(dst)
        end = time.monotonic() + settle
        while time.monotonic() < end:
            if not select.select([self.rx], [], [], max(0, end - time.monotonic()))[0]:
                continue
            f, meta = self.rx.recvfrom(70000)
            if meta[2] == socket.PACKET_OUTGOING or len(f) < 34:
                continue
            if f[30:34] == want and f[6:12] == self.kited_mac:
                out.append((f[0:6], struct.unpack('!H', f[16:18])[0]))
        return out

    def drain(self):
        while select.select([self.rx], [], [], 0)[0]:
            self.rx.recv(70000)

    def bytes_to(self, dst, settle=0.5):
        """IP bytes kited sent to dst since the last drain (IP reassembly not
        needed: each fragment counts its own header)."""
        total = 0
        want = socket.inet_aton(dst)
        end = time.monotonic() + settle
        while True:
            t = end - time.monotonic()
            if t <= 0:
                break
            if not select.select([self.rx], [], [], t)[0]:
                continue
            f, meta = self.rx.recvfrom(70000)
            if meta[2] == socket.PACKET_OUTGOING or len(f) < 34:
                continue
            if f[30:34] == want and f[6:12] == self.kited_mac:
                total += struct.unpack('!H', f[16:18])[0]
        return total


class Cli:
    def __init__(self, t, topo, path):
        self.t, self.topo, self.path = t, topo, path

    def __call__(self, *args, tenant=None, timeout=30):
        argv = [self.t.ip_tool, 'netns', 'exec', self.topo.ns, self.path, '-s',
                self.topo.kited_ip, '-t', '500', '-r', '2']
        if tenant is not None:
            argv += ['--tenant', str(tenant[0]), '--tenant-secret-file', tenant[1]]
        p = kt.subprocess.run(argv + [str(a) for a in args], stdout=kt.subprocess.PIPE,
                              stderr=kt.subprocess.PIPE, timeout=timeout)
        return p.returncode, p.stdout.decode(errors='replace'), p.stderr.decode(errors='replace')

    def ok(self, *args, **kw):
        rc, out, err = self(*args, **kw)
        check(rc == 0, 'kite-cli %s: exit %d (%r %r)' % (' '.join(map(str, args)), rc, out[:200],
                                                        err[:200]))
        return out


def stats_of(peer):
    """STAT through a validated peer (cookie): name -> int where numeric."""
    if peer.cookie is None:
        peer.hello()
    env, rep, _ = peer.ask(stat(opaque=0x57), limit=5.0)
    out = {}
    for r in rep.responses:
        if r.opcode == STAT and r.status == OK and r.keylen:
            v = r.value.decode()
            out[r.key.decode()] = int(v) if v.isdigit() else v
    check(out, 'no STAT answer through a cookie: %s' % statuses(rep))
    return out


def start(t, topo, args, prefix=None):
    # The client's namespace is the router to the (off-link) spoofed victims:
    # replies go through the neighbour table, to the gateway's MAC.
    k = kt.Kited(t, topo, trusted=None, prefix=prefix,
                 kite_args=['--gateway', topo.client_ip] + list(args))
    t.on_cleanup(lambda: k.stop())
    return k.start()


# ---- the cases -------------------------------------------------------------------

def body(t):
    t.need_root()
    cli_path = t.need_file(t.args.cli, 'kite-cli')
    t.need_file(t.args.kited, 'kited')
    t.ip_tool = t.need_tool('ip')
    topo = kt.Topology(t).up()
    tmp = '/tmp/kite-guard-%d' % t.pid
    os.makedirs(tmp, exist_ok=True)
    t.on_cleanup(lambda: kt.shutil.rmtree(tmp, ignore_errors=True))

    kited = start(t, topo, ['--cookie-rotate-s', str(ROTATE_S), '--max-item-size', '64K',
                            '--memory', '64M'])
    cli = Cli(t, topo, cli_path)
    wire = Wire(t, topo)
    big = bytes((i * 7) & 0xff for i in range(BIG))
    admin = Peer(topo)

    def c_libkite():
        # kite-cli (libkite) validates by itself: a value of 20 KB both ways.
        cli.ok('set', 'big', big.hex()[:BIG])
        out = cli.ok('get', 'big')
        check(out.strip() == big.hex()[:BIG], 'kite-cli get big: %d bytes back' % len(out))
        cli.ok('set', 'small', 'v')
        cli.ok('set', 'ctr', '5')
        out = cli.ok('stats')
        check('STAT kite_guard_hellos' in out, 'no guard counters in STAT')
    t.case('libkite and kite-cli validate by themselves (20 KB value both ways)', c_libkite)

    def c_sealed():
        vk = os.path.join(tmp, 'value-key')
        with open(vk, 'w') as f:
            f.write(os.urandom(32).hex() + '\n')
        other = os.path.join(tmp, 'other-key')
        with open(other, 'w') as f:
            f.write(os.urandom(32).hex() + '\n')
        cli.ok('--value-key-file', vk, 'set', 'card', '4111-1111-1111-1111')
        out = cli.ok('--value-key-file', vk, 'get', 'card')
        check(out.strip() == '4111-1111-1111-1111', 'sealed get: %r' % out)
        p = Peer(topo)
        p.hello()
        _, rep, _ = p.ask(get(b'card', opaque=1))
        v = rep.responses[0].value if rep.responses else b''
        check(len(v) == 19 + 40 and b'4111' not in v, 'the node holds %r' % v)
        rc, out, err = cli('--value-key-file', other, 'get', 'card')
        check(rc != 0 and 'decrypt' in err, 'another key opened it: %d %r %r' % (rc, out, err))
        rc, out, err = cli('--value-key-file', vk, 'append', 'card', 'x')
        check(rc == 2, 'append on ciphertext: %d %r' % (rc, err))
        p.close()
    t.case('values sealed by the client (kite-cli --value-key-file): the node holds only '
           'ciphertext, another key does not open it', c_sealed)

    def c_plain():
        p = Peer(topo)
        # A small reply fits the bound: SET answers 24 bytes to a longer request.
        env, rep, n = p.ask(store(SET, b'plain', b'x' * 40, opaque=1), cookie=False)
        check_eq(statuses(rep), [(SET, 1, OK)], 'plain SET')
        check(env is None, 'a plain request got an envelope back')
        # A reply larger than the request: refused, and so is everything after it.
        body = (store(SETQ, b'q1', b'one', opaque=2) + get(b'big', opaque=3) +
                store(SETQ, b'q2', b'two', opaque=4) + store(SETQ, b'q3', b'three', opaque=5) +
                simple(NOOP, opaque=6))
        rid, sent = p.send(body)
        env, rep, got = p.collect(rid, want=lambda r: any(x.opaque == 6 for x in r.responses))
        check_eq(statuses(rep), [(GET, 3, COOKIE_REQUIRED), (SETQ, 4, COOKIE_REQUIRED),
                                 (SETQ, 5, COOKIE_REQUIRED), (NOOP, 6, COOKIE_REQUIRED)],
                 'a datagram cut by the bound')
        check(got <= sent, 'plain client got %d bytes for %d' % (got, sent))
        # q1 ran (before the cut), q2 and q3 did not.
        v = Peer(topo)
        v.hello()
        _, rep, _ = v.ask(get(b'q1', opaque=7) + get(b'q2', opaque=8) + get(b'q3', opaque=9))
        check_eq([(r.opaque, r.status) for r in rep.responses],
                 [(7, OK), (8, KEY_ENOENT), (9, KEY_ENOENT)], 'what the cut datagram did')
        p.close()
        v.close()
    t.case('plain client: small replies served, a large one cuts the datagram '
           '(COOKIE_REQUIRED for it and every later request, quiet ones too; none ran)', c_plain)

    def c_text_cookie():
        # tools/kite-text: text commands behind a hello's cookie get whole replies;
        # the same text sent plain (as memcached clients do) is cut by the bound.
        tool = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), 'tools', 'kite-text')

        def text(*lines, plain=False):
            argv = [t.ip_tool, 'netns', 'exec', topo.ns, sys.executable, tool, '-s',
                    topo.kited_ip] + (['--plain'] if plain else []) + list(lines)
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            check(p.returncode == 0, 'kite-text %r: exit %d, %r' % (lines, p.returncode,
                                                                   p.stderr[:300]))
            return p.stdout
        value = 'v' * 1000
        # A long key: a cut request's status line (30 bytes) must fit what it sent.
        key = 'text-' + 'k' * 55
        check_eq(text('set %s 7 0 %d' % (key, len(value)), value, 'mn'),
                 b'STORED\r\nMN\r\n', 'kite-text set')
        check_eq(text('get ' + key, 'mg %s s f' % key),
                 ('VALUE %s 7 %d\r\n%s\r\nEND\r\nHD s%d f7\r\n' % (
                     key, len(value), value, len(value))).encode(), 'kite-text get (cookie)')
        check_eq(text('get ' + key, plain=True), b'SERVER_ERROR cookie required\r\n',
                 'plain text get of a large value')
        check_eq(text('mn', plain=True), b'MN\r\n', 'plain text, small reply')
    t.case('text clients: a cookie in the envelope (tools/kite-text) gets whole replies, '
           'plain text is bounded', c_text_cookie)

    def c_cookie():
        p = Peer(topo)
        rid, _ = p.send(envelope(F_HELLO))          # not padded: no answer
        env, rep, n = p.collect(rid, idle=0.3, limit=1.0)
        check(n == 0, 'an unpadded hello got %d bytes' % n)
        rid, sent = p.send(envelope(F_HELLO, pad_to=16))
        env, rep, n = p.collect(rid, idle=0.3, limit=2.0)
        check(env is not None and 'cookie' in env and n <= sent,
              'padded hello: %r, %d bytes back for %d' % (env, n, sent))
        p.cookie = env['cookie']
        env, rep, n = p.ask(get(b'big', opaque=1), limit=5.0)
        check(len(rep.responses) == 1 and rep.responses[0].status == OK and
              len(rep.responses[0].value) == BIG,
              'GET big with a cookie: %s' % statuses(rep))
        # A RESPONSE envelope; with a newer cookie only if the window turned meanwhile.
        check(env is not None and env['flags'] & F_RESPONSE and (
            env['flags'] == F_RESPONSE or env['cookie'][:4] != p.cookie[:4]),
            'reply envelope %r' % env)
        # The cookie is the source socket's: another port gets a fresh one instead.
        q = Peer(topo)
        q.cookie = p.cookie
        env, rep, n = q.ask(get(b'big', opaque=2), limit=3.0)
        check_eq(statuses(rep), [(GET, 2, COOKIE_REQUIRED)], 'a cookie from another port')
        check(env is not None and env.get('cookie') not in (None, p.cookie),
              'no fresh cookie for the other port: %r' % env)
        q.cookie = env['cookie']
        env, rep, n = q.ask(get(b'big', opaque=3), limit=5.0)
        check(rep.responses and rep.responses[0].status == OK, 'the fresh cookie does not work')
        p.close()
        q.close()
    t.case('cookies: a padded hello fetches one (never more bytes than sent); full replies '
           'with it; bound to the source port', c_cookie)

    def c_rotation():
        p = Peer(topo)
        ck = p.hello()
        w = struct.unpack('>I', ck[:4])[0]
        # Valid in its window and the next one ...
        while int(time.time()) // ROTATE_S < w + 1:
            time.sleep(0.1)
        # kited's clock (TSC since its start) may trail this one by a little.
        time.sleep(0.3)
        env, rep, _ = p.ask(get(b'big', opaque=1), limit=5.0)
        check(rep.responses and rep.responses[0].status == OK,
              'cookie refused in the grace window: %s' % statuses(rep))
        check(env is not None and 'cookie' in env, 'no newer cookie offered in the grace window')
        # ... and dead after.
        while int(time.time()) // ROTATE_S < w + 2:
            time.sleep(0.1)
        time.sleep(0.2)
        env, rep, _ = p.ask(get(b'big', opaque=2), limit=3.0)
        check_eq(statuses(rep), [(GET, 2, COOKIE_REQUIRED)], 'an expired cookie')
        p.close()
    t.case('cookie rotation: an old cookie works through the grace window, then stops', c_rotation)

    def amplification():
        """Spoofed datagrams for every opcode: (ratio, name, sent, got) each, worst first."""
        attacks = {
            'GET 20 KB': get(b'big'),
            'GETK 20 KB': get(b'big', op=GETK),
            'GAT 20 KB': gat(GAT, b'big', 0),
            'GATK 20 KB': gat(GATK, b'big', 0),
            'GETQ + NOOP': get(b'big', op=GETQ) + simple(NOOP),
            '2 x GET 20 KB': get(b'big') + get(b'big', opaque=1),
            '10 x GETKQ + NOOP': b''.join(get(b'big', op=GETKQ, opaque=i) for i in range(10)) +
            simple(NOOP),
            'STAT': stat(),
            'STAT x 40': stat() * 40,
            'STAT x 61': stat() * 61,
            'VERSION': simple(VERSION),
            'NOOP x 30': simple(NOOP) * 30,
            'TOPOLOGY': req(TOPOLOGY),
            'CLUSTER_MAP': req(CLUSTER_MAP),
            'FILL_GET': req(FILL_GET, b'big'),
            'INCR': delta(INCREMENT, b'ctr', 1),
            'SET': store(SET, b'spoofed', b'v'),
            'APPEND': concat(APPEND, b'small', b'z'),
            'DELETE miss': delete(b'nope'),
            'unknown opcode': req(0x55),
            'bad extras': req(GET, b'k', extras=b'xx'),
            'envelope, bogus cookie + GET': envelope(cookie=b'\1' * 12) + get(b'big'),
            'envelope, padded, no cookie + STAT': envelope(pad_to=16) + stat(),
            'padded hello': envelope(F_HELLO, pad_to=16),
            'bare envelope + GET': envelope() + get(b'big'),
        }
        res = []
        for name, body in attacks.items():
            # Bytes a source banked expire after 1 s idle: each attack starts without.
            time.sleep(1.1)
            wire.drain()
            sent = 0
            for i in range(20):
                sent += wire.udp(VICTIM, frame(0x4000 + i) + body, sport=50000 + i)
            got = wire.bytes_to(VICTIM, settle=0.6)
            res.append((got / sent, name, sent, got))
        res.sort(reverse=True)
        return res

    def show(title, res):
        t.log('  %s (IP bytes, 20 datagrams each):' % title)
        for r, name, sent, got in res:
            t.log('    %-36s %7d -> %9d  %8.2fx' % (name, sent, got, r))
        ts, tg = sum(x[2] for x in res), sum(x[3] for x in res)
        t.log('    %-36s %7d -> %9d  %8.2fx' % ('all', ts, tg, tg / ts))

    def c_amplification():
        res = amplification()
        show('amplification toward an unvalidated victim, bound on (the default)', res)
        for r, name, sent, got in res:
            check(got <= sent, '%s: the victim got %d bytes for the attacker\'s %d (%.2fx)' % (
                name, got, sent, r))
        st = stats_of(admin)
        check(st['kite_guard_bounded_tx_bytes'] <= st['kite_guard_bounded_rx_bytes'],
              'guard counters: %d bytes out for %d in' % (st['kite_guard_bounded_tx_bytes'],
                                                         st['kite_guard_bounded_rx_bytes']))
    t.case('spoofed victim gets at most 1x the attacker\'s bytes (every opcode, pipelined)',
           c_amplification)

    def c_martian():
        st = stats_of(admin)
        before = st['kite_guard_drop_martian'] + st['kite_net_drop_bcast_src']
        wire.drain()
        n = 0
        for src, sport in (('127.0.0.1', 40000), (topo.kited_ip, 40000), ('0.0.0.1', 40000),
                           ('224.0.0.9', 40000), ('255.255.255.255', 40000),
                           (topo.client_ip, 0)):
            wire.udp(src, frame(1) + simple(VERSION), sport=sport)
            n += 1
        got = sum(wire.bytes_to(a, settle=0.2) for a in ('127.0.0.1', topo.kited_ip))
        check(got == 0, 'kited answered a martian source (%d bytes)' % got)
        st = stats_of(admin)
        after = st['kite_guard_drop_martian'] + st['kite_net_drop_bcast_src']
        check(after - before == n, 'guard drop_martian + net drop_bcast_src grew by %d for %d '
              'martians' % (after - before, n))
    t.case('martian sources (127/8, ourselves, 0/8, multicast, broadcast, port 0) get nothing',
           c_martian)

    def c_forged_mac():
        # A request whose frame claims another station's MAC: the reply still
        # goes to the MAC ARP gave for the sender (the client's), never to the
        # frame's source; off-link senders' replies go to the gateway's.
        forged = bytes.fromhex('020000000099')
        st = stats_of(admin)
        for src in (topo.client_ip, VICTIM):
            wire.drain()
            for i in range(5):
                wire.udp(src, frame(0x700 + i) + simple(NOOP, opaque=i), sport=41000 + i,
                         src_mac=forged)
            got = wire.frames_to(src, settle=0.5)
            check(got, 'no reply to %s at all' % src)
            macs = {m for m, _ in got}
            check(macs == {wire.my_mac}, 'replies to %s went to %s, not to %s (the neighbour '
                  'table\'s; the frames claimed %s)' % (src, [m.hex() for m in macs],
                                                       wire.my_mac.hex(), forged.hex()))
        after = stats_of(admin)
        check(after['kite_net_arp_requests'] >= st['kite_net_arp_requests'],
              'ARP counters went back')
    t.case('a forged frame source MAC cannot aim replies: they go to the neighbour table\'s MAC',
           c_forged_mac)

    def c_work():
        p = Peer(topo)
        p.hello()
        env, rep, _ = p.ask(stat() * 100 + simple(NOOP, opaque=9), limit=8.0,
                            want=lambda r: any(x.opaque == 9 for x in r.responses))
        terms = sum(1 for r in rep.responses if r.opcode == STAT and r.keylen == 0 and
                    r.status == OK)
        limited = sum(1 for r in rep.responses if r.status == RATE_LIMITED)
        check_eq((terms, limited), (512 // 32, 100 - 512 // 32 + 1),
                 'STATs run and refused in one datagram (work budget 512, STAT 32)')
        p.close()
    t.case('work budget: 100 STATs in one datagram run 16, the rest get RATE_LIMITED', c_work)

    kited.stop()

    def c_before():
        # The same attacks with the bound off: what the guard prevents.
        k = start(t, topo, ['--amplification-bound', 'off', '--max-item-size', '64K'])
        try:
            cli.ok('set', 'big', big.hex()[:BIG])
            cli.ok('set', 'small', 'v')
            cli.ok('set', 'ctr', '5')
            res = amplification()
            show('the same with amplification-bound = off (the "before" table)', res)
            worst = dict((name, r) for r, name, _, _ in res)
            check(worst['GET 20 KB'] > 100, 'GET 20 KB amplifies only %.1fx without the bound' %
                  worst['GET 20 KB'])
        finally:
            k.stop()
    t.case('without the bound the same attacks amplify (the "before" table)', c_before)

    # ---- allow-list and FLUSH off ----
    def c_allow():
        k = start(t, topo, ['--allow', topo.client_ip + '/32', '--flush', 'off'])
        try:
            p = Peer(topo)
            p.hello()
            wire.drain()
            for i in range(10):
                wire.udp('198.18.66.6', frame(i) + simple(VERSION), sport=41000 + i)
            check(wire.bytes_to('198.18.66.6', settle=0.4) == 0,
                  'kited answered a source outside the allow-list')
            check(stats_of(p)['kite_guard_drop_allow'] == 10, 'drop_allow is not 10')
            _, rep, _ = p.ask(flush(opaque=3))
            check_eq(statuses(rep), [(FLUSH, 3, FORBIDDEN)], 'FLUSH with flush = off')
            p.close()
        finally:
            k.stop()
    t.case('allow-list drops other sources (counted); flush = off refuses FLUSH', c_allow)

    # ---- tenants ----
    secrets = {i: os.urandom(32) for i in (1, 2, 3, 4, 5)}
    tfile = os.path.join(tmp, 'tenants')

    def write_tenants(ids):
        rows = {1: 'a: cmds=all', 2: 'b:', 3: 'adm: admin', 4: 'd:', 5: 'e: mem=1%'}
        with open(tfile + '.new', 'w') as f:
            f.write('# id name secret prefix options\n')
            for i in ids:
                pre = rows[i].split()
                f.write('%d t%d %s %s\n' % (i, i, secrets[i].hex(), ' '.join(pre)))
        # Only kited's user (nobody, below) reads the secrets.
        os.chmod(tfile + '.new', 0o600)
        os.chown(tfile + '.new', nobody.pw_uid, nobody.pw_gid)
        os.rename(tfile + '.new', tfile)

    nobody = pwd.getpwnam('nobody')
    write_tenants([1, 2, 3, 5])
    for i, s in secrets.items():
        with open(os.path.join(tmp, 's%d' % i), 'w') as f:
            f.write(s.hex() + '\n')
    # This node gives up root once set up (user = nobody; seccomp is on by default).
    k = start(t, topo, ['--auth', 'required', '--tenants-file', tfile, '--user', 'nobody'])

    def c_privs():
        with open('/proc/%d/status' % k.proc.pid) as f:
            st = dict(line.rstrip('\n').split(':\t', 1) for line in f if ':\t' in line)
        uids = st['Uid'].split()
        gids = st['Gid'].split()
        check(uids == [str(nobody.pw_uid)] * 4, 'kited uids %r, expected nobody (%d)' % (
            uids, nobody.pw_uid))
        check(gids == [str(nobody.pw_gid)] * 4, 'kited gids %r' % gids)
        check(st['Groups'].split() in ([], [str(nobody.pw_gid)]), 'groups %r' % st['Groups'])
        for cap in ('CapInh', 'CapPrm', 'CapEff', 'CapAmb'):
            check(int(st[cap], 16) == 0, '%s = %s, expected none' % (cap, st[cap]))
        check(st['NoNewPrivs'].strip() == '1', 'NoNewPrivs %r' % st['NoNewPrivs'])
        check(st['Seccomp'].strip() == '2', 'Seccomp %r (2: filter)' % st['Seccomp'])
        # Every thread (workers, control, DPDK's): the same.
        for tid in os.listdir('/proc/%d/task' % k.proc.pid):
            with open('/proc/%d/task/%s/status' % (k.proc.pid, tid)) as f:
                ts = dict(line.rstrip('\n').split(':\t', 1) for line in f if ':\t' in line)
            check(ts['Uid'].split()[1] == str(nobody.pw_uid) and int(ts['CapEff'], 16) == 0
                  and ts['Seccomp'].strip() == '2',
                  'thread %s: uid %s CapEff %s Seccomp %s' % (tid, ts['Uid'], ts['CapEff'],
                                                              ts['Seccomp']))
        check(any('running as nobody' in line for line in k.lines),
              'no "running as nobody" in the log')
    t.case('user = nobody: every thread without root or capabilities, seccomp on', c_privs)

    class Tenant(Peer):
        def __init__(self, tid):
            super().__init__(topo)
            self.tid = tid
            self.key = mac_key(secrets[tid])
            self.stamp = 0

        def dgram(self, body, stamp=None):
            if stamp is None:
                self.stamp = max(now_us(), self.stamp + 1)
                stamp = self.stamp
            self.rid = (self.rid + 1) & 0xffff
            e = envelope(F_AUTH, cookie=self.cookie or b'\0' * 12, tenant=self.tid, stamp=stamp)
            return self.rid, sign(frame(self.rid) + e + body, self.key)

        def call(self, body, want='auto', **kw):
            if want == 'auto':
                want = kt.auto_done(body)
            for attempt in range(2):
                rid, d = self.dgram(body)
                self.send_raw(d)
                env, rep, n = self.collect(rid, want=want, **kw)
                fresh = env is not None and 'cookie' in env
                if fresh:
                    self.cookie = env['cookie']
                # As libkite does: cut by the bound, the reply brought a cookie; again.
                if not (fresh and any(r.status == COOKIE_REQUIRED for r in rep.responses)):
                    break
            return env, rep, n

    ta, tb, tadm = Tenant(1), Tenant(2), Tenant(3)

    def tadm_stats_peer():
        # STAT is the admin tenant's: stats_of() asks through it.
        class P:
            cookie = True

            def ask(self, body, **kw):
                return tadm.call(body, **kw)
        return P()

    def c_isolation():
        _, rep, _ = tb.call(store(SET, b'b:secret', b'B-VALUE', opaque=1))
        _, rep, _ = tb.call(store(SET, b'b:secret', b'B-VALUE', opaque=1))
        check_eq(statuses(rep), [(SET, 1, OK)], 'tenant B sets its key')
        _, rep, _ = tb.call(store(SET, b'b:ctr', b'10', opaque=1))
        ops = [get(b'b:secret'), get(b'b:secret', op=GETK), store(SET, b'b:secret', b'A'),
               store(ADD, b'b:new', b'A'), store(REPLACE, b'b:secret', b'A'),
               concat(APPEND, b'b:secret', b'A'), concat(PREPEND, b'b:secret', b'A'),
               delete(b'b:secret'), delta(INCREMENT, b'b:ctr', 1), delta(DECREMENT, b'b:ctr', 1),
               touch(b'b:secret', 1), gat(GAT, b'b:secret', 1), gat(GATK, b'b:secret', 1),
               req(FILL_GET, b'b:secret'), get(b'zz-public'), flush(), stat()]
        for i, body in enumerate(ops):
            body = body[:12] + struct.pack('>I', 100 + i) + body[16:]
            _, rep, _ = ta.call(body)
            st = [r.status for r in rep.responses]
            check(st == [FORBIDDEN], 'tenant A, %s on B\'s key: %s' % (
                kt.opname(body[1]), statuses(rep)))
        _, rep, _ = tb.call(get(b'b:secret', opaque=1) + get(b'b:ctr', opaque=2))
        check_eq([(r.status, r.value) for r in rep.responses], [(OK, b'B-VALUE'), (OK, b'10')],
                 'B\'s keys after A\'s attempts')
        _, rep, _ = ta.call(store(SET, b'a:mine', b'A', opaque=1) + get(b'a:mine', opaque=2))
        check_eq([r.status for r in rep.responses], [OK, OK], 'A in its own space')
        _, rep, _ = tadm.call(stat(opaque=5), limit=5.0)
        check(any(r.opcode == STAT and r.keylen == 0 and r.status == OK for r in rep.responses),
              'the admin tenant cannot STAT: %s' % statuses(rep)[:3])
    t.case('tenant isolation: A cannot reach B\'s keys with any keyed opcode; FLUSH and STAT '
           'are admin-only', c_isolation)

    def c_forgery():
        # A wrong MAC: the guard answers with its time and why, never more than was sent.
        rid, d = ta.dgram(store(SET, b'a:x', b'forged'))
        d = d[:-1] + bytes([d[-1] ^ 1])
        ta.send_raw(d)
        env, rep, n = ta.collect(rid, idle=0.3, limit=2.0)
        check(env is not None and env.get('err') == ERR_MAC and n <= len(d),
              'forged MAC: %r, %d bytes for %d' % (env, n, len(d)))
        # A replay: the same INCR datagram twice adds once.
        _, rep, _ = ta.call(store(SET, b'a:n', b'0'))
        rid, d = ta.dgram(delta(INCREMENT, b'a:n', 1))
        ta.send_raw(d)
        ta.collect(rid)
        ta.send_raw(d)
        env, rep, _ = ta.collect(rid, idle=0.3, limit=2.0)
        check(env is not None and env.get('err') == ERR_REPLAY, 'replay: %r' % env)
        _, rep, _ = ta.call(get(b'a:n', opaque=1))
        check_eq(rep.responses[0].value, b'1', 'a:n after an INCR and its replay')
        # An old stamp: refused with the node's clock.
        rid, d = ta.dgram(get(b'a:n'), stamp=now_us() - 120 * 10**6)
        ta.send_raw(d)
        env, rep, _ = ta.collect(rid, idle=0.3, limit=2.0)
        check(env is not None and env.get('err') == ERR_STAMP and
              abs(env.get('time', 0) - now_us()) < 5 * 10**6, 'expired stamp: %r' % env)
        # No tenant at all: every request refused with AUTH_ERROR.
        p = Peer(topo)
        env, rep, _ = p.ask(get(b'a:n', opaque=1) + simple(NOOP, opaque=2), cookie=False)
        check_eq(statuses(rep), [(GET, 1, AUTH_ERROR), (NOOP, 2, AUTH_ERROR)],
                 'unauthenticated requests with auth = required')
        p.close()
        st = stats_of(tadm_stats_peer())
        check(st['kite_guard_auth_bad_mac'] >= 1 and st['kite_guard_auth_replay'] >= 1 and
              st['kite_guard_auth_bad_stamp'] >= 1, 'auth counters: %r' % {
                  k_: v for k_, v in st.items() if k_.startswith('kite_guard_auth')})
    t.case('forged MACs, replays and old stamps are refused (with the node\'s time); '
           'unauthenticated requests get AUTH_ERROR', c_forgery)

    def c_cli_tenant():
        sf = os.path.join(tmp, 's1')
        cli.ok('set', 'a:cli', 'hello', tenant=(1, sf))
        out = cli.ok('get', 'a:cli', tenant=(1, sf))
        check(out.strip() == 'hello', 'kite-cli --tenant get: %r' % out)
        rc, out, err = cli('get', 'b:secret', tenant=(1, sf))
        check(rc != 0 and 'orbidden' in (out + err), 'kite-cli get of B\'s key: %d %r %r' % (
            rc, out, err))
        bad = os.path.join(tmp, 'bad')
        with open(bad, 'w') as f:
            f.write(os.urandom(32).hex() + '\n')
        rc, out, err = cli('get', 'a:cli', tenant=(1, bad))
        check(rc != 0, 'kite-cli with a wrong secret succeeded')
    t.case('kite-cli --tenant signs through libkite; a wrong secret is refused', c_cli_tenant)

    def c_share():
        # Tenant 5 may hold 1 % of each partition (64 MiB / 4: about 164 KiB).
        te = Tenant(5)
        val = b'm' * 8000
        ok, refused = [], []
        for i in range(120):
            key = b'e:%03d' % i
            _, rep, _ = te.call(store(SET, key, val, opaque=i), limit=2.0)
            st = statuses(rep)
            check(len(st) == 1 and st[0][2] in (OK, kt.ENOMEM), 'SET %r: %r' % (key, st))
            (ok if st[0][2] == OK else refused).append(key)
        check(40 < len(ok) < 100 and refused, 'tenant 5 with mem=1%%: %d stored, %d refused'
              % (len(ok), len(refused)))
        # Others are not held back by it.
        _, rep, _ = ta.call(store(SET, b'a:beside-share', val, opaque=7), limit=2.0)
        check_eq(statuses(rep), [(SET, 7, OK)], 'another tenant beside a full share')
        # Its own deletions make room again.
        for i, key in enumerate(ok):
            _, rep, _ = te.call(req(DELETE, key, opaque=i), limit=2.0)
        stored = 0
        for i, key in enumerate(refused):
            _, rep, _ = te.call(store(SET, key, val, opaque=i), limit=2.0)
            stored += statuses(rep) == [(SET, i, OK)]
        check(stored >= min(len(refused), 20), 'after deleting its keys the tenant stored %d '
              'of %d' % (stored, len(refused)))
        st = stats_of(tadm_stats_peer())
        check(st.get('kite_store_over_share', 0) >= len(refused), 'kite_store_over_share %r'
              % st.get('kite_store_over_share'))
        t.log('  mem=1%%: %d of 120 8 KB values stored, %d refused ENOMEM' % (len(ok),
                                                                          len(refused)))
    t.case('a tenant\'s memory share (mem=1%): stores past it get ENOMEM, others unaffected, '
           'deletes make room', c_share)

    def c_reload():
        errors = []
        done = threading.Event()
        count = [0]

        def load():
            c = Tenant(1)
            i = 0
            while not done.is_set():
                key = b'a:load%d' % (i % 50)
                _, rep, _ = c.call(store(SET, key, b'v%d' % i, opaque=1) +
                                   get(key, opaque=2), limit=2.0)
                st = [(r.opaque, r.status) for r in rep.responses]
                if st != [(1, OK), (2, OK)]:
                    errors.append((i, st))
                i += 1
                count[0] = i
            c.close()
        th = threading.Thread(target=load)
        th.start()
        try:
            for n in range(5):
                time.sleep(0.4)
                write_tenants([1, 2, 3, 4] if n % 2 == 0 else [1, 2, 3])
                os.kill(k.proc.pid, signal.SIGHUP)
            write_tenants([1, 2, 3, 4])
            os.kill(k.proc.pid, signal.SIGHUP)
            time.sleep(0.5)
        finally:
            done.set()
            th.join(10)
        check(not errors, '%d of %d requests failed across reloads: %s' % (
            len(errors), count[0], errors[:5]))
        check(count[0] > 20, 'only %d request pairs ran during the reloads' % count[0])
        td = Tenant(4)
        _, rep, _ = td.call(store(SET, b'd:new', b'x', opaque=1))
        check_eq(statuses(rep), [(SET, 1, OK)], 'a tenant added by the reload')
        td.close()
        t.log('  %d SET+GET pairs across 6 reloads, none failed' % count[0])
    t.case('SIGHUP reloads the tenants file under load; no request lost', c_reload)
    k.stop()

    def c_optional():
        k2 = start(t, topo, ['--auth', 'optional', '--tenants-file', tfile])
        try:
            p = Peer(topo)
            p.hello()
            _, rep, _ = p.ask(store(SET, b'a:intrude', b'x', opaque=1) +
                              store(SET, b'public', b'x', opaque=2))
            check_eq(statuses(rep), [(SET, 1, FORBIDDEN), (SET, 2, OK)],
                     'unauthenticated with auth = optional')
            a = Tenant(1)
            _, rep, _ = a.call(store(SET, b'a:ok', b'x', opaque=3))
            check_eq(statuses(rep), [(SET, 3, OK)], 'tenant A with auth = optional')
            p.close()
            a.close()
        finally:
            k2.stop()
    t.case('auth = optional: unauthenticated requests stay out of every tenant prefix',
           c_optional)

    def c_flood():
        k3 = start(t, topo, ['--source-rate', '400', '--rate-burst-ms', '100'])
        try:
            legit = Peer(topo)
            legit.hello()
            legit.ask(store(SET, b'lk', b'v', opaque=1))

            def sample(n):
                lat = []
                errs = 0
                for i in range(n):
                    time.sleep(0.005)  # 200/s, well under the source rate
                    t0 = time.perf_counter()
                    _, rep, _ = legit.ask(get(b'lk', opaque=i), idle=0.5, limit=1.0,
                                          want=lambda r: bool(r.responses))
                    lat.append(time.perf_counter() - t0)
                    if [r.status for r in rep.responses] != [OK]:
                        errs += 1
                return lat, errs
            stop = threading.Event()
            sent = [0]

            def flood():
                # 4000 datagrams/s for at most 4 s from one source: ten times its rate.
                end = time.monotonic() + 4
                nxt = time.monotonic()
                while not stop.is_set() and time.monotonic() < end:
                    wire.udp('198.18.99.9', frame(sent[0] & 0xffff) + get(b'lk'), sport=45000)
                    sent[0] += 1
                    nxt += 1 / 4000
                    d = nxt - time.monotonic()
                    if d > 0:
                        time.sleep(d)
            base, e0 = sample(150)
            th = threading.Thread(target=flood)
            th.start()
            time.sleep(0.3)
            under, e1 = sample(150)
            stop.set()
            th.join(10)
            check(e0 == 0 and e1 == 0, 'legitimate GETs failed: %d without, %d with the flood' % (
                e0, e1))
            st = stats_of(legit)
            check(st['kite_guard_drop_rate'] > sent[0] // 2,
                  'drop_rate %d for %d flood datagrams at 10x the rate' % (
                      st['kite_guard_drop_rate'], sent[0]))
            m0, m1 = statistics.median(base) * 1e6, statistics.median(under) * 1e6
            t.log('  flood: %d datagrams from one source at 10x its rate; %d dropped; legit GET '
                  'median %.0f us without, %.0f us with the flood (%.2fx), 0 errors' % (
                      sent[0], st['kite_guard_drop_rate'], m0, m1, m1 / m0))
            legit.close()
        finally:
            k3.stop()
    t.case('a flood over its source rate is dropped; other clients see no errors', c_flood)

    def c_member_text():
        # Nodes speak binary to each other: a text datagram from a member's
        # address is spoofed; it is dropped (counted), never answered there.
        members = os.path.join(tmp, 'members')
        with open(members, 'w') as f:
            f.write('epoch = 1\nvbuckets = 65536\ncopies = 2\n'
                    'member n1 %s:11211 partitions=4\nmember n2 198.18.99.77:11211 '
                    'partitions=4\n' % topo.kited_ip)
        k4 = start(t, topo, ['--cluster', 'static', '--members-file', members, '--node-id', 'n1'])
        try:
            peer = Peer(topo)
            before = stats_of(peer)
            wire.drain()
            wire.udp('198.18.99.77', frame(1) + b'mn\r\nbogus\r\n', sport=11211)
            to_member = wire.frames_to('198.18.99.77', settle=0.5)
            wire.udp('198.18.99.78', frame(2) + b'mn\r\n', sport=11211)
            to_other = wire.frames_to('198.18.99.78', settle=0.5)
            after = stats_of(peer)
            grew = after['kite_drop_text_from_member'] - before['kite_drop_text_from_member']
            check(not to_member, 'kited answered a member\'s address: %s' % to_member)
            check(grew == 1, 'kite_drop_text_from_member grew by %d, expected 1' % grew)
            check(len(to_other) == 1, 'a non-member\'s mn got %d frames back' % len(to_other))
            peer.close()
        finally:
            k4.stop()
    t.case('text from a cluster member\'s address is dropped, never answered', c_member_text)


if __name__ == '__main__':
    kt.run('guard', body)
