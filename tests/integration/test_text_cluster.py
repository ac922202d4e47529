#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Relayed text under synchronous replication, end to end: a real etcd, two
kited nodes in network namespaces with two workers each, --replicas 1,
--replication sync and a cluster secret (the set-up of test_repl.py);
libkite (ctypes) only to wait for the map and to tell which node owns a key.

A text datagram whose keys belong to partitions of both of node 1's
workers is relayed worker to worker (docs/protocol.rst); under sync
replication a worker that wrote passes it on only once the replica
acknowledged its writes (docs/cluster.rst, replication = sync).

Cases: a datagram of sets alternating between node 1's workers, a
multi-key get of them and mn comes back as one reply in command order
(several datagrams, seq/total consistent), the values are on the replica
(node 2, read there), kite_text_relays grew; with the replica stopped
(SIGSTOP, shorter than its lease) such a datagram is not answered at all,
goes no further than its first worker (the later keys keep their values)
and is counted (kite_repl_sync_withheld, kite_relay_drops); after SIGCONT
the cluster settles and node 1 answers a relayed text datagram in order.

Network and helpers: test_cluster.py's (bridges kcd<pid>/kcm<pid>,
namespaces kc<pid>n<i>, 198.18.X.0/24 and 198.19.X.0/24).

Run: python3 test_text_cluster.py --kited PATH --cli PATH --build BUILD_DIR
"""

import os
import select
import shutil
import signal
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402
import kitelib  # noqa: E402
from kitetest import check, check_eq  # noqa: E402
from test_cluster import Net, Node, converge, extra_args, load_libkite  # noqa: E402
from test_repl import SECRET, log_counters, wait_synced  # noqa: E402

WORKERS = 2
SYNC_TIMEOUT_MS = 300
# Longer than test_cluster's 2 s: the replica stopped for sync-timeout + 1 s
# must stay in the map (and in the ack set), so the owner waits for it.
LEASE_TTL = 5
NKEYS = 8
VALUE_LEN = 600  # 8 values: the get's reply spans several datagrams


def text_request(client, body, wait_mn=True, limit=5.0):
    """Send one text datagram; [(seq, total, payload)] of the reply datagrams
    in arrival order, until the text ends with MN (wait_mn) or `limit` s."""
    req_id = client.new_req_id()
    client.sock.send(kt.frame(req_id) + body)
    got = []
    end = time.monotonic() + limit
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([client.sock], [], [], left)
        if not r:
            continue
        d = client.sock.recv(70000)
        if len(d) < 8:
            continue
        rid, seq, total, _ = struct.unpack('>HHHH', d[:8])
        if rid != req_id:
            continue
        got.append((seq, total, d[8:]))
        if wait_mn and reply_text(got).endswith(b'MN\r\n'):
            # Complete; linger a little: a datagram after it would be an error.
            end = min(end, time.monotonic() + 0.05)
    return got


def reply_text(got):
    return b''.join(p for _s, _t, p in sorted(got, key=lambda g: g[0]))


def check_frames(got, what):
    """One reply: seq 0..n-1 each once, every total n."""
    seqs = sorted(s for s, _t, _p in got)
    totals = {t for _s, t, _p in got}
    check(seqs == list(range(len(got))) and totals == {len(got)},
          '%s: reply frames (seq, total) %r' % (what, [(s, t) for s, t, _p in got]))


def stat(node, name):
    return int(node.stats().get(name, 0))


def body(t):
    t.need_root()
    t.pid = os.getpid()
    t.ip_tool = t.need_tool('ip')
    t.need_tool('etcd')
    lib = load_libkite(t)
    tmp = tempfile.mkdtemp(prefix='kite-textc-')
    t.on_cleanup(lambda: shutil.rmtree(tmp, ignore_errors=True))
    secret = os.path.join(tmp, 'secret')
    with open(secret, 'w') as f:
        f.write(SECRET + '\n')
    net = Net(t)
    net.up()
    net.start_etcd()
    nodes = {}
    extra = ('--replicas', '1', '--replication', 'sync',
             '--sync-timeout-ms', str(SYNC_TIMEOUT_MS), '--cluster-secret-file', secret,
             '--lease-ttl', str(LEASE_TTL))  # the last --lease-ttl given wins
    for i in (1, 2):
        nodes[i] = Node(t, net, i, extra=extra, workers=WORKERS).start()
    n1, n2 = nodes[1], nodes[2]
    seeds = ','.join(net.data_ip(i) for i in sorted(nodes))
    client = kitelib.Client(lib, seeds, timeout_ms=300)
    t.on_cleanup(client.close)
    converge(list(nodes.values()), client, 2)
    check(wait_synced(list(nodes.values())) is not None, 'the cluster is not whole')
    client.refresh()

    st = n1.stats()
    parts = int(st['kite_partitions'])
    check_eq(int(st.get('kite_workers', WORKERS)), WORKERS, 'node 1 workers')

    def worker_of(k):
        return kt.key_partition(k, parts) % WORKERS

    # Keys node 1 owns (member index 0: ids sort n1 first), alternating
    # between its workers: every command of a datagram goes to the other one.
    by_worker = {0: [], 1: []}
    i = 0
    while min(len(v) for v in by_worker.values()) < NKEYS:
        k = b'tc-%06d' % i
        i += 1
        if client.owner(k) == 0 and len(by_worker[worker_of(k)]) < NKEYS:
            by_worker[worker_of(k)].append(k)
    keys = [by_worker[j % 2][j // 2] for j in range(NKEYS)]       # case 1
    keys2 = [by_worker[j % 2][NKEYS // 2 + j // 2] for j in range(NKEYS)]  # case 2
    t.log('keys of node 1, workers %r: %r' % ([worker_of(k) for k in keys], keys))

    def value(tag, k):
        v = tag + b'-' + k + b'-'
        return v + b'x' * (VALUE_LEN - len(v))

    def sets_body(ks, tag):
        return b''.join(b'set %s 0 0 %d\r\n%s\r\n' % (k, VALUE_LEN, value(tag, k)) for k in ks)

    def full_body(ks, tag):
        return sets_body(ks, tag) + b'get ' + b' '.join(ks) + b'\r\nmn\r\n'

    def full_want(ks, tag):
        return (b'STORED\r\n' * len(ks) +
                b''.join(b'VALUE %s 0 %d\r\n%s\r\n' % (k, VALUE_LEN, value(tag, k)) for k in ks) +
                b'END\r\nMN\r\n')

    def ask_in_order(ks, tag, what):
        c = n1.client()
        try:
            got = text_request(c, full_body(ks, tag))
        finally:
            c.close()
        text = reply_text(got)
        want = full_want(ks, tag)
        if text != want:
            t.log('%s: node 1 log:\n%s' % (what, n1.tail(15)))
        check(text == want, '%s: reply not the commands\' answers in order:\n    want %r...\n'
              '    got  %r...' % (what, want[:200], text[:400]))
        check_frames(got, what)
        check(len(got) >= 2, '%s: %d reply datagram(s); want several' % (what, len(got)))
        return got

    def replica_copies(ks):
        """{key: value node 2 (the replica of node 1's vbuckets) answers}, raw GETs."""
        out = {}
        c = n2.client()
        try:
            for k in ks:
                rep = c.request(kt.get(k, opaque=9), limit=1.0, idle=0.2)
                for r in rep.responses:
                    if r.opaque == 9 and r.status == kt.OK:
                        out[k] = r.value
        finally:
            c.close()
        return out

    def c_relayed():
        relays = stat(n1, 'kite_text_relays')
        held = stat(n1, 'kite_repl_sync_acked')
        got = ask_in_order(keys, b'v1', 'relayed sets, get, mn')
        grew = stat(n1, 'kite_text_relays') - relays
        acked = stat(n1, 'kite_repl_sync_acked') - held
        t.log('relayed text under sync: %d reply datagrams, kite_text_relays +%d, '
              'kite_repl_sync_acked +%d' % (len(got), grew, acked))
        # One pass per change of worker among the sets alone.
        check(grew >= NKEYS - 1, 'kite_text_relays grew by %d (want >= %d)' % (grew, NKEYS - 1))
        check(acked >= NKEYS // 2, 'kite_repl_sync_acked grew by %d (want >= %d: each worker\'s '
              'writes held until acknowledged)' % (acked, NKEYS // 2))
        # Sync: the reply came after the replica acknowledged, so it holds them now.
        copies = replica_copies(keys)
        wrong = [k for k in keys if copies.get(k) != value(b'v1', k)]
        if wrong:
            log_counters(t, nodes)
        check(not wrong, 'the replica (node 2) lacks or differs for %d keys: %r' % (
            len(wrong), wrong[:3]))
    t.case('relayed text under sync replication: one reply in order, on the replica',
           c_relayed)

    def c_withheld():
        # Old values first (acknowledged), to see how far the withheld datagram went.
        ask_in_order(keys2, b'old', 'sets before the stop')
        withheld = stat(n1, 'kite_repl_sync_withheld')
        drops = stat(n1, 'kite_relay_drops')
        c = n1.client()
        os.kill(n2.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            got = text_request(c, full_body(keys2, b'new'), wait_mn=False,
                               limit=SYNC_TIMEOUT_MS / 1000 + 1.0)
            waited = time.monotonic() - t0
            grew = stat(n1, 'kite_repl_sync_withheld') - withheld
            dropped = stat(n1, 'kite_relay_drops') - drops
        finally:
            os.kill(n2.proc.pid, signal.SIGCONT)
            c.close()
        t.log('replica stopped: nothing back in %.2f s (%d datagrams), '
              'kite_repl_sync_withheld +%d, kite_relay_drops +%d' % (
                  waited, len(got), grew, dropped))
        check(not got, 'a reply came back although the replica was stopped: %r' % (
            reply_text(got)[:300],))
        check(grew >= 1, 'kite_repl_sync_withheld grew by %d' % grew)
        check(dropped >= 1, 'kite_relay_drops grew by %d' % dropped)
        took = wait_synced(list(nodes.values()))
        if took is None:
            log_counters(t, nodes)
        check(took is not None, 'the cluster did not settle 20 s after SIGCONT')
        t.log('settled %.1f s after SIGCONT' % took)
        # The datagram went no further than its first worker: the first set
        # may have been applied (its outcome is unknown), the others were not.
        c = n1.client()
        try:
            text = reply_text(text_request(c, b'get ' + b' '.join(keys2) + b'\r\nmn\r\n'))
        finally:
            c.close()
        vals = {}
        for blk in text.split(b'VALUE ')[1:]:
            head, rest = blk.split(b'\r\n', 1)
            vals[head.split(b' ')[0]] = rest[:VALUE_LEN]
        check(vals.get(keys2[0]) in (value(b'old', keys2[0]), value(b'new', keys2[0])),
              'first key after the withheld datagram: %r' % (vals.get(keys2[0], b'')[:40],))
        later = [k for k in keys2[1:] if vals.get(k) != value(b'old', k)]
        check(not later, 'keys after the first changed by the withheld datagram: %r' % later)
        ask_in_order(keys2, b'after', 'relayed text after SIGCONT')
        copies = replica_copies(keys2)
        wrong = [k for k in keys2 if copies.get(k) != value(b'after', k)]
        check(not wrong, 'the replica lacks or differs for %d keys after SIGCONT: %r' % (
            len(wrong), wrong[:3]))
    t.case('sync timeout withholds a relayed text reply; answers resume after SIGCONT',
           c_withheld)

    def c_alive():
        for n in nodes.values():
            check(n.alive(), '%s exited:\n%s' % (n.name, n.tail()))
    t.case('the nodes still run', c_alive)


if __name__ == '__main__':
    kt.run('text_cluster', body, extra_args)
