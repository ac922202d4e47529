#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Two workers: kited --workers 2 on net_af_packet with qpairs=2.

The kernel spreads datagrams over the two RX queues by flow hash (af_packet
fanout), so requests often land on the worker that does not own their
key's partition and are handed off. Checked:
  * many keys from several source ports: every SET and GET is correct;
  * STAT kite_handoff_out and kite_handoff_in grow, kite_handoff_full does
    not;
  * one datagram mixing keys of both workers is answered for every key:
    each owner replies separately under the same request id, so all reply
    datagrams of that id are collected until every request has answered;
  * a FLUSH reaches the partitions of both workers;
  * kite-cli batch-get over keys of both workers finds every key.
Partition ownership comes from kited's TOPOLOGY reply and the public key
hash (XXH64, implemented independently in kitetest.py).

Run: python3 test_multiworker.py --kited PATH --cli PATH [--memcached PATH]
"""

import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402
from kitetest import (GET, GETK, GETKQ, SET, NOOP, FLUSH, OK, KEY_ENOENT, store, get,  # noqa: E402
                      simple, flush, req, check, check_eq)

WORKERS = 2
N_KEYS = 400
N_SOCKS = 8


def topology(c):
    rep = c.request(req(0xe0, opaque=77))
    rs = rep.responses
    check(len(rs) == 1 and rs[0].status == OK, 'TOPOLOGY: %s %s' % (rs, rep.problems()))
    v = rs[0].value
    check(len(v) >= 16 and v[0] == 1 and v[1] == 1, 'TOPOLOGY header %s' % v[:16].hex())
    parts, workers, base = struct.unpack('>HHH', v[2:8])
    check(len(v) == 16 + 4 * parts, 'TOPOLOGY body of %d bytes for %d partitions' % (
        len(v), parts))
    owner = [struct.unpack('>HH', v[16 + 4 * p:20 + 4 * p])[1] for p in range(parts)]
    return parts, workers, base, owner


def body(t):
    t.need_root()
    t.need_file(t.args.kited, 'kited')
    cli_path = t.need_file(t.args.cli, 'kite-cli')
    topo = kt.Topology(t).up()
    kited = kt.Kited(t, topo, workers=WORKERS).start()
    socks = [topo.client() for _ in range(N_SOCKS)]
    main = socks[0]
    layout = {}

    def c_topology():
        parts, workers, base, owner = topology(main)
        check_eq(workers, WORKERS, 'workers in TOPOLOGY')
        check_eq(base, 11211, 'base port')
        check_eq(owner, [p % WORKERS for p in range(parts)], 'partition owners')
        layout.update(parts=parts, owner=owner)
    t.case('TOPOLOGY: 2 workers, partitions owned round-robin', c_topology)
    parts = layout.get('parts', WORKERS * 4)
    owner = layout.get('owner', [p % WORKERS for p in range(parts)])

    def worker_of(key):
        return owner[kt.key_partition(key, parts)]

    def c_many_keys():
        before = main.stats()
        keys = [b'mw:key:%04d' % i for i in range(N_KEYS)]
        by_worker = [0] * WORKERS
        for i, k in enumerate(keys):
            by_worker[worker_of(k)] += 1
            c = socks[i % N_SOCKS]
            v = b'value-%d-' % i + k
            rep = c.request(store(SET, k, v, flags=i, opaque=i), limit=3.0, linger=0.002)
            rs = rep.responses
            check(len(rs) == 1 and rs[0].status == OK and rs[0].opaque == i,
                  'SET %r from source port %d: %s %s' % (k, c.sock.getsockname()[1], rs,
                                                         rep.problems()))
        for i, k in enumerate(keys):
            c = socks[(i + 3) % N_SOCKS]
            rep = c.request(get(k, GETK, i), limit=3.0, linger=0.002)
            rs = rep.responses
            check(len(rs) == 1 and rs[0].status == OK and rs[0].key == k and
                  rs[0].value == b'value-%d-' % i + k and rs[0].flags == i,
                  'GETK %r from source port %d: %s %s' % (k, c.sock.getsockname()[1], rs,
                                                          rep.problems()))
        check(min(by_worker) > N_KEYS // 4, 'keys per worker %s: hash looks wrong' % by_worker)
        after = main.stats()
        out = int(after['kite_handoff_out']) - int(before['kite_handoff_out'])
        inn = int(after['kite_handoff_in']) - int(before['kite_handoff_in'])
        check(out > 0, 'kite_handoff_out did not grow (%s -> %s): no request reached a '
              'non-owner worker' % (before['kite_handoff_out'], after['kite_handoff_out']))
        check(inn == out, 'handoff out %d but in %d' % (out, inn))
        check_eq(after['kite_handoff_full'], '0', 'kite_handoff_full')
        check(int(after['curr_items']) >= N_KEYS, 'curr_items %s' % after['curr_items'])
    t.case('%d keys from %d source ports: SET then GET, all correct' % (N_KEYS, N_SOCKS),
           c_many_keys)

    w_keys = [[], []]
    for i in range(1000):
        k = b'mix:%d' % i
        w = worker_of(k)
        if len(w_keys[w]) < 8:
            w_keys[w].append(k)
    mixed = [k for pair in zip(*w_keys) for k in pair]

    def c_mixed():
        check(all(len(x) == 8 for x in w_keys), 'could not find 8 keys per worker')
        # One datagram of SETs for both workers: every SET answers.
        body_ = b''.join(store(SET, k, b'v:' + k, flags=n, opaque=n)
                         for n, k in enumerate(mixed))
        for c in socks:
            rep = c.request(body_, done=lambda r: len({x.opaque for x in r.responses}) ==
                            len(mixed), limit=3.0)
            got = sorted(x.opaque for x in rep.responses)
            check(got == list(range(len(mixed))) and
                  all(x.status == OK for x in rep.responses) and not rep.problems(),
                  'mixed SET datagram from port %d: %s %s' % (
                      c.sock.getsockname()[1], rep.responses, rep.problems()))
        # GETKs of both workers, misses of both, and a NOOP for the home worker.
        missing = [b'nope:%d' % i for i in range(4)]
        body_ = (b''.join(get(k, GETK, 100 + n) for n, k in enumerate(mixed)) +
                 b''.join(get(k, GETK, 200 + n) for n, k in enumerate(missing)) +
                 simple(NOOP, 300))
        want = set(range(100, 100 + len(mixed))) | set(range(200, 200 + len(missing))) | {300}
        for c in socks:
            rep = c.request(body_, done=lambda r: {x.opaque for x in r.responses} >= want,
                            limit=3.0)
            got = {x.opaque: x for x in rep.responses}
            check(set(got) == want and len(rep.responses) == len(want) and
                  not rep.problems(),
                  'mixed GETK datagram from port %d: answered %s of %s; %s' % (
                      c.sock.getsockname()[1], sorted(got), sorted(want), rep.problems()))
            for n, k in enumerate(mixed):
                r = got[100 + n]
                check(r.status == OK and r.key == k and r.value == b'v:' + k and r.flags == n,
                      'GETK %r in a mixed datagram: %r' % (k, r))
            for n, k in enumerate(missing):
                check(got[200 + n].status == KEY_ENOENT, 'miss %r: %r' % (k, got[200 + n]))
            check(len(rep.messages) >= 2, 'a mixed datagram was answered in one message: '
                  'no owner replied separately (%d messages)' % len(rep.messages))
        # GETKQ: hits from both owners, misses silent, NOOP from home.
        body_ = (b''.join(get(k, GETKQ, 400 + n) for n, k in enumerate(mixed)) +
                 b''.join(get(k, GETKQ, 500 + n) for n, k in enumerate(missing)) +
                 simple(NOOP, 600))
        want = set(range(400, 400 + len(mixed))) | {600}
        rep = main.request(body_, done=lambda r: {x.opaque for x in r.responses} >= want,
                           limit=3.0, linger=0.2)
        got = sorted(x.opaque for x in rep.responses)
        check(got == sorted(want), 'mixed GETKQ datagram: answered %s, expected %s' % (
            got, sorted(want)))
    t.case('datagrams mixing keys of both workers: every request answered', c_mixed)

    def c_cli_batch():
        keys = [k.decode() for k in mixed]
        for _ in range(5):
            p = subprocess.run([topo.ip_tool, 'netns', 'exec', topo.ns, cli_path, '-s',
                                topo.kited_ip, 'batch-get'] + keys + ['mix:absent'],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            out = p.stdout.decode()
            want = ''.join('VALUE %s %d %d\nv:%s\n' % (k, n, len(k) + 2, k)
                           for n, k in enumerate(keys)) + 'END\n'
            check(p.returncode == 1 and out == want and
                  p.stderr.decode() == 'NOT_FOUND mix:absent\n',
                  'kite-cli batch-get over both workers: rc %d\nstdout %r\nstderr %r' % (
                      p.returncode, out, p.stderr.decode()))
    t.case('kite-cli batch-get over keys of both workers', c_cli_batch)

    def c_flush():
        rep = main.request(flush(FLUSH, None, 700), limit=3.0, linger=0.2)
        rs = rep.responses
        check(len(rs) == 1 and rs[0].status == OK and rs[0].opaque == 700,
              'FLUSH answered %s (expected one reply, from the home worker)' % rs)
        for n, k in enumerate(mixed):
            rep = socks[n % N_SOCKS].request(get(k, GET, n))
            rs = rep.responses
            check(len(rs) == 1 and rs[0].status == KEY_ENOENT,
                  'after FLUSH, %r (worker %d) still answers %s' % (k, worker_of(k), rs))
    t.case('FLUSH empties the partitions of both workers', c_flush)

    t.case('kited still running', lambda: check(kited.alive(), 'kited exited:\n' + kited.tail()))


if __name__ == '__main__':
    kt.run('multiworker', body)
