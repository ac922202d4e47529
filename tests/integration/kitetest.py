# SPDX-License-Identifier: BSD-3-Clause
"""Shared harness of Kite's integration tests (Python 3 standard library only).

It builds the test network, starts the programs under test and speaks the
memcached UDP binary protocol with its own encoder and decoder, written from
memcached's protocol documentation and independent of Kite's C codec.

Network: one network namespace and one veth pair per test run, named after
the test's pid (netns ``kitetest<pid>``, veths ``kt<pid>a``/``kt<pid>b``).
kited binds ``kt<pid>a`` in the root namespace with net_af_packet; that end
has no kernel address, IPv6 off, no forwarding and no ARP answers, so only
kited answers for its address. The client end ``kt<pid>b`` lives in the
namespace with 198.18.X.1/30 (RFC 2544 benchmarking range); kited is
198.18.X.2. Client sockets are created inside the namespace (setns around
socket()) and keep living there, so the test itself stays in the root
namespace, where memcached (the oracle) listens on 127.0.0.1 only.

Everything started is stopped by pid and every namespace and link deleted
in the cleanup, which also runs on failure, on SIGTERM and on Ctrl-C.

Each test file calls ``run(name, body)``; ``body(t)`` receives a Suite that
counts cases. Exit status: 0 all passed, 1 a case failed, 77 skipped (not
root, or a tool missing), as meson expects.
"""

import argparse
import atexit
import ctypes
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

SKIP_CODE = 77

# ---- protocol constants (memcached protocol_binary.h) -------------------

MAGIC_REQ = 0x80
MAGIC_RES = 0x81

GET, SET, ADD, REPLACE, DELETE, INCREMENT, DECREMENT, QUIT, FLUSH = range(9)
GETQ, NOOP, VERSION, GETK, GETKQ, APPEND, PREPEND, STAT = range(0x09, 0x11)
SETQ, ADDQ, REPLACEQ, DELETEQ, INCREMENTQ, DECREMENTQ, QUITQ, FLUSHQ = range(0x11, 0x19)
APPENDQ, PREPENDQ = 0x19, 0x1a
VERBOSITY = 0x1b
TOUCH, GAT, GATQ = 0x1c, 0x1d, 0x1e
GATK, GATKQ = 0x23, 0x24

OPCODE_NAMES = {
    GET: 'GET', SET: 'SET', ADD: 'ADD', REPLACE: 'REPLACE', DELETE: 'DELETE',
    INCREMENT: 'INCREMENT', DECREMENT: 'DECREMENT', QUIT: 'QUIT', FLUSH: 'FLUSH',
    GETQ: 'GETQ', NOOP: 'NOOP', VERSION: 'VERSION', GETK: 'GETK', GETKQ: 'GETKQ',
    APPEND: 'APPEND', PREPEND: 'PREPEND', STAT: 'STAT', SETQ: 'SETQ', ADDQ: 'ADDQ',
    REPLACEQ: 'REPLACEQ', DELETEQ: 'DELETEQ', INCREMENTQ: 'INCREMENTQ',
    DECREMENTQ: 'DECREMENTQ', QUITQ: 'QUITQ', FLUSHQ: 'FLUSHQ', APPENDQ: 'APPENDQ',
    PREPENDQ: 'PREPENDQ', VERBOSITY: 'VERBOSITY', TOUCH: 'TOUCH', GAT: 'GAT',
    GATQ: 'GATQ', GATK: 'GATK', GATKQ: 'GATKQ',
}
# Opcodes whose success is silent (GET*Q: silent on a miss instead).
QUIET_OPS = {GETQ, GETKQ, SETQ, ADDQ, REPLACEQ, DELETEQ, INCREMENTQ, DECREMENTQ, QUITQ,
             FLUSHQ, APPENDQ, PREPENDQ, GATQ, GATKQ}

OK = 0x00
KEY_ENOENT = 0x01
KEY_EEXISTS = 0x02
E2BIG = 0x03
EINVAL = 0x04
NOT_STORED = 0x05
DELTA_BADVAL = 0x06
UNKNOWN_COMMAND = 0x81
ENOMEM = 0x82

STATUS_NAMES = {OK: 'OK', KEY_ENOENT: 'KEY_ENOENT', KEY_EEXISTS: 'KEY_EEXISTS',
                E2BIG: 'E2BIG', EINVAL: 'EINVAL', NOT_STORED: 'NOT_STORED',
                DELTA_BADVAL: 'DELTA_BADVAL', 0x07: 'NOT_MY_VBUCKET',
                UNKNOWN_COMMAND: 'UNKNOWN_COMMAND', ENOMEM: 'ENOMEM'}

NO_CREATE = 0xffffffff  # incr/decr expiry: do not create a missing key
# magic opcode keylen extlen datatype vbucket/status bodylen opaque cas
HDR = struct.Struct('>BBHBBHIIQ')
FRAME = struct.Struct('>HHHH')     # req_id seq total reserved


def opname(op):
    return OPCODE_NAMES.get(op, '0x%02x' % op)


def stname(st):
    return STATUS_NAMES.get(st, '0x%02x' % st)


# ---- encoder ---------------------------------------------------------------

def req(opcode, key=b'', value=b'', extras=b'', cas=0, opaque=0, vbucket=0, datatype=0,
        magic=MAGIC_REQ, keylen=None, extlen=None, bodylen=None):
    """One binary request. keylen/extlen/bodylen override the true lengths
    (for malformed requests); the bytes are always key, extras and value."""
    if isinstance(key, str):
        key = key.encode()
    if isinstance(value, str):
        value = value.encode()
    kl = len(key) if keylen is None else keylen
    el = len(extras) if extlen is None else extlen
    bl = len(extras) + len(key) + len(value) if bodylen is None else bodylen
    hdr = HDR.pack(magic, opcode, kl, el, datatype, vbucket, bl, opaque, cas)
    return hdr + extras + key + value


def frame(req_id, seq=0, total=1, reserved=0):
    return FRAME.pack(req_id, seq, total, reserved)


def get(key, op=GET, opaque=0):
    return req(op, key, opaque=opaque)


def store(op, key, value, flags=0, exptime=0, cas=0, opaque=0):
    """SET/ADD/REPLACE (and quiet forms): 8 bytes of extras."""
    return req(op, key, value, struct.pack('>II', flags, exptime), cas=cas, opaque=opaque)


def concat(op, key, value, cas=0, opaque=0):
    """APPEND/PREPEND (and quiet forms): no extras."""
    return req(op, key, value, cas=cas, opaque=opaque)


def delete(key, op=DELETE, cas=0, opaque=0):
    return req(op, key, cas=cas, opaque=opaque)


def delta(op, key, by=1, initial=0, exptime=0, cas=0, opaque=0):
    """INCREMENT/DECREMENT: delta, initial, expiry (NO_CREATE: no create)."""
    return req(op, key, extras=struct.pack('>QQI', by, initial, exptime), cas=cas, opaque=opaque)


def touch(key, exptime, opaque=0):
    return req(TOUCH, key, extras=struct.pack('>I', exptime), opaque=opaque)


def gat(op, key, exptime, opaque=0):
    return req(op, key, extras=struct.pack('>I', exptime), opaque=opaque)


def simple(op, opaque=0):
    """NOOP, VERSION, QUIT, QUITQ."""
    return req(op, opaque=opaque)


def flush(op=FLUSH, delay=None, opaque=0):
    return req(op, extras=b'' if delay is None else struct.pack('>I', delay), opaque=opaque)


def stat(group=b'', opaque=0):
    return req(STAT, group, opaque=opaque)


# ---- decoder ---------------------------------------------------------------

class Res:
    """One decoded response."""
    __slots__ = ('magic', 'opcode', 'keylen', 'extlen', 'datatype', 'status', 'bodylen',
                 'opaque', 'cas', 'extras', 'key', 'value')

    def __init__(self, raw_hdr, body):
        (self.magic, self.opcode, self.keylen, self.extlen, self.datatype, self.status,
         self.bodylen, self.opaque, self.cas) = HDR.unpack(raw_hdr)
        self.extras = body[:self.extlen]
        self.key = body[self.extlen:self.extlen + self.keylen]
        self.value = body[self.extlen + self.keylen:]

    @property
    def flags(self):
        return struct.unpack('>I', self.extras[:4])[0] if len(self.extras) >= 4 else None

    def __repr__(self):
        v = self.value if len(self.value) <= 40 else self.value[:40] + b'...'
        return ('<%s %s opaque=%d cas=%d key=%r ext=%s val=%r (%d)>'
                % (opname(self.opcode), stname(self.status), self.opaque, self.cas,
                   self.key, self.extras.hex(), v, len(self.value)))


def parse_responses(stream):
    """Split a response stream. @return (responses, error or None)."""
    out = []
    off = 0
    while off < len(stream):
        if len(stream) - off < 24:
            return out, 'truncated header: %d bytes left at offset %d' % (len(stream) - off, off)
        h = stream[off:off + 24]
        magic, _, keylen, extlen, _, _, bodylen, _, _ = HDR.unpack(h)
        if magic != MAGIC_RES:
            return out, 'magic 0x%02x at offset %d' % (magic, off)
        if keylen + extlen > bodylen:
            return out, 'keylen %d + extlen %d > bodylen %d at offset %d' % (
                keylen, extlen, bodylen, off)
        if off + 24 + bodylen > len(stream):
            return out, 'body of %d bytes truncated at offset %d' % (bodylen, off)
        out.append(Res(h, stream[off + 24:off + 24 + bodylen]))
        off += 24 + bodylen
    return out, None


def parse_requests(body):
    """Walk the requests of a datagram body (for deciding when a reply is
    complete). @return list of (opcode, opaque, keylen) of framable ones."""
    out = []
    off = 0
    while len(body) - off >= 24:
        magic, op, keylen, extlen, _, _, bodylen, opaque, _ = HDR.unpack(body[off:off + 24])
        if magic != MAGIC_REQ or off + 24 + bodylen > len(body):
            break
        out.append((op, opaque, keylen, extlen, bodylen))
        off += 24 + bodylen
    return out


def xxh64(data, seed=0):
    """XXH64, the public key -> partition hash (kite_topo_key_partition)."""
    P1, P2, P3 = 11400714785074694791, 14029467366897019727, 1609587929392839161
    P4, P5 = 9650029242287828579, 2870177450012600261
    M = (1 << 64) - 1

    def rotl(x, r):
        return ((x << r) | (x >> (64 - r))) & M

    def rnd(acc, lane):
        acc = (acc + lane * P2) & M
        return (rotl(acc, 31) * P1) & M

    def merge(acc, v):
        acc ^= rnd(0, v)
        return (acc * P1 + P4) & M

    n = len(data)
    off = 0
    if n >= 32:
        v1, v2, v3, v4 = (seed + P1 + P2) & M, (seed + P2) & M, seed & M, (seed - P1) & M
        while off + 32 <= n:
            l1, l2, l3, l4 = struct.unpack_from('<QQQQ', data, off)
            v1, v2, v3, v4 = rnd(v1, l1), rnd(v2, l2), rnd(v3, l3), rnd(v4, l4)
            off += 32
        h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) & M
        for v in (v1, v2, v3, v4):
            h = merge(h, v)
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while off + 8 <= n:
        (k,) = struct.unpack_from('<Q', data, off)
        h ^= rnd(0, k)
        h = (rotl(h, 27) * P1 + P4) & M
        off += 8
    if off + 4 <= n:
        (k,) = struct.unpack_from('<I', data, off)
        h ^= (k * P1) & M
        h = (rotl(h, 23) * P2 + P3) & M
        off += 4
    while off < n:
        h ^= (data[off] * P5) & M
        h = (rotl(h, 11) * P1) & M
        off += 1
    h ^= h >> 33
    h = (h * P2) & M
    h ^= h >> 29
    h = (h * P3) & M
    h ^= h >> 32
    return h


assert xxh64(b'') == 0xef46db3751d8e999 and xxh64(b'abc') == 0x44bc2cf5ad770999
assert xxh64(b'0123456789abcdef0123456789abcdef0123') == 0xc4255ba3d1af5461


def key_partition(key, partitions):
    return xxh64(key) % partitions


# ---- UDP client ------------------------------------------------------------

class Reply:
    """What came back for one request datagram."""

    def __init__(self, req_id):
        self.req_id = req_id
        self.dgrams = []     # (seq, total, reserved, payload) in arrival order
        self.messages = []   # [total, {seq: payload}]
        self.errors = []     # frame-level problems
        self.empty_frames = 0  # bare frames with total 0 (memcached's quiet replies)
        self.responses = []
        self.parse_error = None

    def add(self, seq, total, reserved, payload):
        self.dgrams.append((seq, total, reserved, payload))
        if total == 0 and seq == 0 and not payload:
            # memcached 1.6 sends a bare frame with total 0 for a datagram
            # whose responses were all quiet; it carries nothing.
            self.empty_frames += 1
            return
        if total == 0 or seq >= total:
            self.errors.append('frame seq %d total %d' % (seq, total))
            return
        if reserved != 0:
            self.errors.append('frame reserved field 0x%04x' % reserved)
        for m in self.messages:
            if m[0] == total and seq not in m[1]:
                m[1][seq] = payload
                return
        self.messages.append([total, {seq: payload}])

    def complete(self):
        return all(len(m[1]) == m[0] for m in self.messages)

    @property
    def stream(self):
        return b''.join(m[1][s] for m in self.messages for s in sorted(m[1]))

    def parse(self):
        self.responses, self.parse_error = parse_responses(self.stream)
        return self.responses

    def problems(self):
        p = list(self.errors)
        if not self.complete():
            p.append('incomplete message(s): %s' % [
                '%d/%d' % (len(m[1]), m[0]) for m in self.messages])
        if self.parse_error:
            p.append('unparsable stream: ' + self.parse_error)
        return p


class UdpClient:
    """A connected UDP socket speaking the memcached UDP frame."""

    def __init__(self, sock, addr, name='server'):
        self.sock = sock
        self.addr = addr
        self.name = name
        sock.connect(addr)
        self.rng = random.Random(os.getpid() ^ id(self))
        self.next_id = self.rng.randrange(65536)
        self.stray = []

    def close(self):
        self.sock.close()

    def new_req_id(self):
        self.next_id = (self.next_id + 1) & 0xffff
        return self.next_id

    def send_raw(self, data):
        self.sock.send(data)

    def drain(self):
        """Drop whatever is queued; returns the datagrams dropped."""
        got = []
        while True:
            r, _, _ = select.select([self.sock], [], [], 0)
            if not r:
                return got
            try:
                got.append(self.sock.recv(70000))
            except OSError:
                return got

    def collect(self, req_id, done=None, idle=0.3, limit=5.0, linger=0.03):
        """Gather datagrams of req_id until done(reply) holds (then linger a
        little for stray extras), `idle` seconds pass with nothing new, or
        `limit` seconds in all."""
        rep = Reply(req_id)
        start = time.monotonic()
        last = start
        stop_at = None
        while True:
            now = time.monotonic()
            until = min(start + limit, last + idle)
            if stop_at is not None:
                until = min(until, stop_at)
            if now >= until:
                break
            r, _, _ = select.select([self.sock], [], [], until - now)
            if not r:
                continue
            try:
                d = self.sock.recv(70000)
            except ConnectionRefusedError:
                rep.errors.append('ICMP port unreachable')
                continue
            if len(d) < 8:
                self.stray.append(d)
                continue
            rid, seq, total, reserved = FRAME.unpack(d[:8])
            if rid != req_id:
                self.stray.append(d)
                continue
            last = time.monotonic()
            rep.add(seq, total, reserved, d[8:])
            if done is not None and rep.complete():
                rep.parse()
                if rep.parse_error is None and done(rep):
                    stop_at = time.monotonic() + linger
        rep.parse()
        return rep

    def request(self, body, done='auto', idle=0.3, limit=5.0, req_id=None, frame_hdr=None,
                linger=0.03):
        """Send one datagram (frame + body) and collect its reply."""
        if req_id is None:
            req_id = self.new_req_id()
        if done == 'auto':
            done = auto_done(body)
        hdr = frame(req_id) if frame_hdr is None else frame_hdr
        self.sock.send(hdr + body)
        return self.collect(req_id, done, idle, limit, linger)

    def stats(self, group=b''):
        rep = self.request(stat(group, opaque=0x5747), limit=5.0)
        out = {}
        for r in rep.responses:
            if r.opcode == STAT and r.status == OK and r.keylen:
                out[r.key.decode()] = r.value.decode()
        if not any(r.opcode == STAT and r.keylen == 0 for r in rep.responses):
            raise CaseFailure('%s: STAT reply without terminator: %s' % (
                self.name, rep.problems() or rep.responses))
        return out


def auto_done(body):
    """A completion test for a datagram: the reply is complete once the last
    request that must answer has answered (STAT: its terminator). None (wait
    for silence) when the last request is quiet or unparsable."""
    reqs = parse_requests(body)
    if not reqs:
        return None
    op, opaque, keylen, extlen, bodylen = reqs[-1]
    if op in QUIET_OPS:
        return None
    if op == STAT:
        return lambda rep: any(r.opaque == opaque and r.opcode == STAT and
                               (r.keylen == 0 or r.status != OK) for r in rep.responses)
    return lambda rep: any(r.opaque == opaque for r in rep.responses)


# ---- test bookkeeping --------------------------------------------------------

class Skip(Exception):
    pass


class CaseFailure(Exception):
    pass


class SetupError(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CaseFailure(msg)


def check_eq(got, want, what):
    if got != want:
        raise CaseFailure('%s: expected %r, got %r' % (what, want, got))


def hexdump(b, limit=96):
    h = b[:limit].hex()
    return h + ('...(%d bytes)' % len(b) if len(b) > limit else '')


def which(name):
    p = shutil.which(name)
    if p is None:
        for d in ('/usr/sbin', '/sbin', '/usr/bin', '/bin'):
            if os.access(os.path.join(d, name), os.X_OK):
                return os.path.join(d, name)
    return p


class Suite:
    """Counts cases, owns everything that must be cleaned up."""

    def __init__(self, name, args):
        self.name = name
        self.args = args
        self.passed = 0
        self.failed = 0
        self.failures = []
        self._cleanups = []
        self.pid = os.getpid()
        self.verbose = args.verbose

    def log(self, msg):
        print(msg, flush=True)

    def debug(self, msg):
        if self.verbose:
            print('  ' + msg, flush=True)

    def on_cleanup(self, fn):
        self._cleanups.append(fn)

    def cleanup(self):
        while self._cleanups:
            fn = self._cleanups.pop()
            try:
                fn()
            except Exception as e:  # cleanup must go on
                print('cleanup: %s' % e, file=sys.stderr, flush=True)

    def need_root(self):
        if os.geteuid() != 0:
            raise Skip('needs root (network namespaces, veth, af_packet)')

    def need_tool(self, name):
        p = which(name)
        if p is None:
            raise Skip('%s not found' % name)
        return p

    def need_file(self, path, what):
        if not path or not os.access(path, os.X_OK):
            raise Skip('%s not given or not executable (%r)' % (what, path))
        return path

    def case(self, name, fn, *a, **kw):
        """Run one case; a CaseFailure or any exception fails it."""
        try:
            fn(*a, **kw)
        except CaseFailure as e:
            self.failed += 1
            self.failures.append((name, str(e)))
            self.log('FAIL: %s: %s' % (name, e))
            return False
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            self.failed += 1
            self.failures.append((name, repr(e)))
            self.log('FAIL: %s: %r' % (name, e))
            if self.verbose:
                traceback.print_exc()
            return False
        self.passed += 1
        self.log('PASS: %s' % name)
        return True


def _on_signal(sig, frame_):
    raise KeyboardInterrupt('signal %d' % sig)


def run(name, body, extra_args=None):
    """Entry point of a test file: parse arguments, run body(suite), clean up,
    print the summary and exit 0, 1 or 77."""
    ap = argparse.ArgumentParser(description='Kite integration test: ' + name)
    ap.add_argument('--kited', default='', help='path of kited')
    ap.add_argument('--cli', default='', help='path of kite-cli')
    ap.add_argument('--memcached', default='', help='path of memcached (empty: none)')
    ap.add_argument('--verbose', '-v', action='store_true')
    if extra_args:
        extra_args(ap)
    args = ap.parse_args()
    # meson passes build-relative paths; make them survive any cwd.
    for attr in ('kited', 'cli', 'memcached'):
        v = getattr(args, attr)
        if v:
            setattr(args, attr, os.path.abspath(v))
    t = Suite(name, args)
    atexit.register(t.cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    code = 0
    try:
        body(t)
    except Skip as e:
        t.log('SKIP: %s: %s' % (name, e))
        t.cleanup()
        sys.exit(SKIP_CODE)
    except SetupError as e:
        t.failed += 1
        t.log('FAIL: %s setup: %s' % (name, e))
    except KeyboardInterrupt as e:
        t.failed += 1
        t.log('FAIL: %s interrupted (%s)' % (name, e))
    except Exception as e:
        t.failed += 1
        t.log('FAIL: %s: unexpected error: %r' % (name, e))
        traceback.print_exc()
    finally:
        t.cleanup()
    if t.failures:
        t.log('Failed cases:')
        for n, why in t.failures:
            t.log('  %s: %s' % (n, why.splitlines()[0] if why else ''))
    t.log('%d passed, %d failed' % (t.passed, t.failed))
    if t.failed:
        code = 1
    sys.exit(code)


# ---- namespaces ---------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, 'setns: ' + os.strerror(e))


def build_dir(args):
    """The build folder: --build where the test takes it, else the one kited
    comes from (BUILD/app/kited/kited)."""
    return getattr(args, 'build', None) or os.path.normpath(
        os.path.join(os.path.dirname(args.kited), '..', '..'))


def need_libkite(t):
    """This build's libkite.so (kitetest.build_dir), or Skip."""
    return t.need_file(os.path.join(build_dir(t.args), 'lib', 'libkite.so'), 'libkite')


class InNetns:
    """Context manager: the calling thread enters a named netns, then returns."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.home = os.open('/proc/thread-self/ns/net', os.O_RDONLY)
        fd = os.open('/run/netns/' + self.name, os.O_RDONLY)
        try:
            _setns(fd)
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc):
        try:
            _setns(self.home)
        finally:
            os.close(self.home)
        return False


def sh(cmd, check_rc=True, timeout=30, **kw):
    """Run a command (list); raise SetupError with its output on failure."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                       **kw)
    if check_rc and p.returncode != 0:
        raise SetupError('%s: exit %d: %s' % (' '.join(cmd), p.returncode,
                                              p.stdout.decode(errors='replace').strip()))
    return p


def write_sysctl(path, value):
    with open(path, 'w') as f:
        f.write(str(value))


class Topology:
    """netns + veth: kited's end in the root namespace (no address), the
    client end in the namespace with 198.18.X.1/30."""

    def __init__(self, t, subnet=None):
        self.t = t
        pid = t.pid
        self.ip_tool = t.need_tool('ip')
        self.ethtool = t.need_tool('ethtool')
        self.ns = 'kitetest%d' % pid
        self.host_if = 'kt%da' % pid
        self.ns_if = 'kt%db' % pid
        x = pid % 250 + 1 if subnet is None else subnet
        self.client_ip = '198.18.%d.1' % x
        self.kited_ip = '198.18.%d.2' % x
        self.netmask = '255.255.255.252'
        self.extra_links = []

    def ip(self, *a, check_rc=True):
        return sh([self.ip_tool] + list(a), check_rc=check_rc)

    def in_ns(self, *cmd, check_rc=True, timeout=30):
        return sh([self.ip_tool, 'netns', 'exec', self.ns] + list(cmd), check_rc=check_rc,
                  timeout=timeout)

    def up(self, veth=True):
        """Create the namespace and (veth=True) the veth pair. With
        veth=False the client end is attached later by attach_client_if()."""
        t = self.t
        # A namespace of our exact name can only be a leftover of a dead run
        # that had our pid.
        if os.path.exists('/run/netns/' + self.ns):
            self.ip('netns', 'del', self.ns, check_rc=False)
        if veth:
            self.ip('link', 'del', self.host_if, check_rc=False)
        self.ip('netns', 'add', self.ns)
        t.on_cleanup(self.down)
        with InNetns(self.ns):
            write_sysctl('/proc/sys/net/ipv6/conf/all/disable_ipv6', 1)
            write_sysctl('/proc/sys/net/ipv6/conf/default/disable_ipv6', 1)
        self.ip('-n', self.ns, 'link', 'set', 'lo', 'up')
        if not veth:
            return self
        self.ip('link', 'add', self.host_if, 'type', 'veth', 'peer', 'name', self.ns_if)
        self.quiet_host_if(self.host_if)
        self.ip('link', 'set', self.host_if, 'up')
        self.attach_client_if(self.ns_if)
        return self

    def attach_client_if(self, dev):
        """Move dev (now in the root namespace) into the namespace and make
        it the client end: 198.18.X.1/30, IPv6 off, TX checksum offload off
        (the kernel would leave UDP checksums to an offload that a veth or a
        tap never performs)."""
        write_sysctl('/proc/sys/net/ipv6/conf/%s/disable_ipv6' % dev, 1)
        self.ip('link', 'set', dev, 'netns', self.ns)
        self.ns_if = dev
        with InNetns(self.ns):
            write_sysctl('/proc/sys/net/ipv6/conf/%s/disable_ipv6' % dev, 1)
        self.ip('-n', self.ns, 'addr', 'add', self.client_ip + '/30', 'dev', dev)
        self.ip('-n', self.ns, 'link', 'set', dev, 'up')
        self.in_ns(self.ethtool, '-K', dev, 'tx', 'off')

    def quiet_host_if(self, dev):
        """The root-namespace end of a link that a DPDK program drives: no
        IPv6 chatter, no forwarding of what arrives, no kernel ARP answers."""
        write_sysctl('/proc/sys/net/ipv6/conf/%s/disable_ipv6' % dev, 1)
        write_sysctl('/proc/sys/net/ipv4/conf/%s/forwarding' % dev, 0)
        write_sysctl('/proc/sys/net/ipv4/conf/%s/rp_filter' % dev, 1)
        write_sysctl('/proc/sys/net/ipv4/conf/%s/arp_ignore' % dev, 8)
        write_sysctl('/proc/sys/net/ipv4/conf/%s/accept_local' % dev, 0)

    def down(self):
        self.ip('netns', 'del', self.ns, check_rc=False)
        # The veth goes with the namespace; this is for a half-built setup.
        if os.path.exists('/sys/class/net/' + self.host_if):
            self.ip('link', 'del', self.host_if, check_rc=False)
        for dev in self.extra_links:
            if os.path.exists('/sys/class/net/' + dev):
                self.ip('link', 'del', dev, check_rc=False)

    def socket(self, port=0):
        """A UDP socket that lives in the namespace."""
        with InNetns(self.ns):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            s.bind((self.client_ip, port))
        return s

    def client(self, port=11211, src_port=0, name='kited'):
        return UdpClient(self.socket(src_port), (self.kited_ip, port), name)


# ---- processes ---------------------------------------------------------------

def _pdeathsig():
    # The child gets SIGTERM if this test dies without cleaning up.
    _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Process:
    """A child whose output is read by a thread; stopped by pid."""

    def __init__(self, t, name, argv, ready_line=None):
        self.t = t
        self.name = name
        self.argv = argv
        self.ready_line = ready_line
        self.lines = []
        self.ready = threading.Event()
        self.proc = None

    def start(self, stdin_pipe=False):
        self.t.debug('start: ' + ' '.join(self.argv))
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_pdeathsig)
        self.t.on_cleanup(self.stop)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors='replace').rstrip('\n')
            self.lines.append(line)
            if self.t.verbose:
                print('  [%s] %s' % (self.name, line), flush=True)
            if self.ready_line is not None and line.strip() == self.ready_line:
                self.ready.set()

    def wait_ready(self, timeout=30.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ready.wait(0.1):
                return
            if self.proc.poll() is not None:
                self.reader.join(2)
                raise SetupError('%s exited with %d before "%s":\n%s' % (
                    self.name, self.proc.returncode, self.ready_line, self.tail()))
        raise SetupError('%s not ready after %.0f s:\n%s' % (self.name, timeout, self.tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n=30):
        return '\n'.join('    ' + l for l in self.lines[-n:])

    def stop(self, sig=signal.SIGINT, grace=10.0):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        if self.proc.stdin:
            self.proc.stdin.close()
        return self.proc.returncode


def dpdk_prefix_cleanup(prefix):
    for d in ('/var/run/dpdk/' + prefix, '/run/dpdk/' + prefix):
        shutil.rmtree(d, ignore_errors=True)


def lcore_map(n):
    """EAL --lcores mapping lcores 0..n onto the CPUs we may use."""
    cpus = sorted(os.sched_getaffinity(0))
    return ','.join('%d@%d' % (i, cpus[i % len(cpus)]) for i in range(n + 1))


# Every address the suites give their namespaces and veths (198.18.0.0/15).
TEST_TRUSTED = '198.18.0.0/15'


class Kited(Process):
    def __init__(self, t, topo=None, workers=1, kite_args=(), vdev=None, port=None,
                 ip=None, prefix=None, qpairs=None, trusted=TEST_TRUSTED):
        """trusted: sources kited treats as validated (no amplification bound).
        The protocol suites send raw datagrams without the guard's envelope
        and compare replies of any size, so they trust the test networks;
        test_guard.py passes None and runs with the node's defaults."""
        path = t.need_file(t.args.kited, 'kited')
        self.topo = topo
        self.workers = workers
        self.prefix = prefix or 'kt%d' % t.pid
        if vdev is None:
            # Whole reassembled datagrams arrive as one frame: see drivers-config/af_packet.conf.
            vdev = ('net_af_packet0,iface=%s,qpairs=%d,framesz=32768,blocksz=32768'
                    % (topo.host_if, qpairs or workers))
            kite_args = ('--profile', 'af_packet') + tuple(kite_args)
        self.ip = ip or topo.kited_ip
        eal = [path]
        eal += ['-l', '0'] if workers == 1 else ['--lcores=' + lcore_map(workers)]
        eal += ['--no-huge', '-m', '512', '--no-pci', '--file-prefix', self.prefix,
                '--vdev=' + vdev]
        kite = ['--port', port or vdev.split(',')[0], '--ip', self.ip,
                '--netmask', '255.255.255.252', '--idle', 'shared', '--idle-sleep-us', '50',
                '--stats-interval', '0']
        if workers != 1:
            kite += ['--workers', str(workers)]
        if trusted:
            kite += ['--trusted', trusted]
        kite += list(kite_args)
        super().__init__(t, 'kited', eal + ['--'] + kite, ready_line='kited: ready')

    def start(self):
        dpdk_prefix_cleanup(self.prefix)
        self.t.on_cleanup(lambda: dpdk_prefix_cleanup(self.prefix))
        super().start()
        self.wait_ready(60.0)
        return self


def free_port(kind=socket.SOCK_DGRAM):
    """A port of 127.0.0.1 free now (UDP by default, socket.SOCK_STREAM for TCP)."""
    s = socket.socket(socket.AF_INET, kind)
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_udp_port():
    return free_port(socket.SOCK_DGRAM)


def free_tcp_port():
    return free_port(socket.SOCK_STREAM)


class Memcached(Process):
    """The oracle: memcached -U PORT -p 0 -l 127.0.0.1."""

    def __init__(self, t, extra=()):
        path = t.args.memcached
        if not path or not os.access(path, os.X_OK):
            raise Skip('memcached not given or not executable (%r)' % path)
        self.port = free_udp_port()
        argv = [path, '-U', str(self.port), '-p', '0', '-l', '127.0.0.1', '-u', 'root',
                '-m', '64'] + list(extra)
        super().__init__(t, 'memcached', argv)

    def start(self):
        super().start()
        c = self.client()
        end = time.monotonic() + 10
        try:
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    raise SetupError('memcached exited with %d:\n%s' % (
                        self.proc.returncode, self.tail()))
                rep = c.request(simple(NOOP, opaque=1), idle=0.2, limit=0.5)
                if any(r.opcode == NOOP for r in rep.responses):
                    return self
                time.sleep(0.1)
        finally:
            c.close()
        raise SetupError('memcached does not answer on 127.0.0.1:%d' % self.port)

    def client(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(('127.0.0.1', 0))
        return UdpClient(s, ('127.0.0.1', self.port), 'memcached')


def probe(client, tag):
    """Liveness: a SET and a GET of a fresh key must succeed."""
    key = ('probe:%s:%d' % (tag, random.randrange(1 << 30))).encode()
    val = ('alive-%d' % random.randrange(1 << 30)).encode()
    rep = client.request(store(SET, key, val, flags=7, opaque=0xa1), limit=3.0)
    ok = [r for r in rep.responses if r.opaque == 0xa1]
    check(len(ok) == 1 and ok[0].status == OK,
          'liveness SET after "%s": got %s %s' % (tag, rep.responses, rep.problems()))
    rep = client.request(get(key, opaque=0xa2), limit=3.0)
    ok = [r for r in rep.responses if r.opaque == 0xa2]
    check(len(ok) == 1 and ok[0].status == OK and ok[0].value == val and ok[0].flags == 7,
          'liveness GET after "%s": got %s %s' % (tag, rep.responses, rep.problems()))
