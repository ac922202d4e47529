#!/usr/bin/env python3
"""Replication (asynchronous, R = 1) end to end: a real etcd, three kited
nodes in namespaces with --replicas 1 and a cluster secret (node 3's file
also holds a previous secret), libkite (ctypes) as the client. Sync mode
and the faults are tests/faults/test_faults.py.

Cases: every write reaches one replica (items on the nodes = 2 x keys, the
replication counters agree); a datagram under another secret is refused and
changes nothing; deletes replicate; kill -9 of a node: the time until its
keys are written and read again through the new owner (a figure; target
lease TTL + 1 s), the hit ratio of its keys right after (target >= 95 %),
every value the last acknowledged one (or, async, counted as lost and
printed), a client's CAS from before the failover still works, and the
new replicas are backfilled (every key on two nodes again); reads from
replicas (read_from = any); a valid MAC under the previous secret is
accepted but a non-member's record is not applied; a FLUSH of one node
leaves none of its keys on any node.

Run: python3 test_repl.py --kited PATH --cli PATH --build BUILD_DIR
"""

import hashlib
import os
import signal
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402
import kitelib  # noqa: E402
from kitetest import check, check_eq  # noqa: E402
from test_cluster import (LEASE_TTL, Net, Node, converge, extra_args, hit_ratio,  # noqa: E402
                          load_libkite, log_figures)

KEYS = 1200
SECRET = '00112233445566778899aabbccddeeff' * 2
# Node 3's file has a second line: the secret being rotated out (accepted too).
OLD_SECRET = 'fedcba98765432100123456789abcdef' * 2


def stats_sum(nodes, name):
    return sum(int(n.stats().get(name, 0)) for n in nodes)


def log_counters(t, nodes):
    """The replication counters of each node, for a failure's log."""
    names = ('tx_records', 'rx_applied', 'rx_dups', 'rx_gaps', 'retransmits', 'rx_acks',
             'rx_nacks', 'nack_retries', 'resync_needed', 'rx_resets', 'given_up',
             'rx_stale_epoch', 'rx_not_replica', 'arp_misses', 'apply_failed', 'purged',
             'backfills', 'backfill_items', 'rx_marks', 'unsynced_vbuckets', 'backfill_waits',
             'backfilling_vbuckets', 'resync_asks')
    t.log('replication counters: %r' % {n: [int(x.stats().get('kite_repl_' + n, 0))
                                            for x in nodes.values()] for n in names})
    t.log('peers: %r' % [{k: v for k, v in x.stats().items() if k.startswith('kite_repl_peer')
                          or k.startswith('kite_repl_backfill_waits')} for x in nodes.values()])


def wait_synced(nodes, timeout=20):
    """Until no node is joining (being filled before it owns), every replica
    vbucket is whole and no owner has a backfill to send (a node that restarts
    or returns is whole again only then), the same map everywhere. Seconds."""
    t0 = time.monotonic()
    seen = None  # the epoch of the last whole observation: whole twice, 0.5 s apart
    while time.monotonic() - t0 < timeout:
        try:
            st = [x.stats() for x in nodes]
        except kt.CaseFailure:
            time.sleep(0.5)  # a node busy starting: ask again
            continue
        epochs = {s.get('kite_cluster_epoch') for s in st}
        if all(int(s.get('kite_cluster_joining', 1)) == 0 and
               int(s.get('kite_repl_unsynced_vbuckets', 1)) == 0 and
               int(s.get('kite_repl_backfilling_vbuckets', 1)) == 0 for s in st) and \
                len(epochs) == 1:
            if seen == epochs:
                return time.monotonic() - t0
            seen = epochs
            time.sleep(0.5)
            continue
        seen = None
        time.sleep(0.2)
    return None


def forged_data(key, value, vb, req_id=77, secret=None):
    """A REPL DATA datagram: under a wrong secret (a MAC that cannot verify),
    or with a valid MAC under `secret` (hex): keyed BLAKE2b-128 over the
    header, extras and records."""
    rec = bytes([1, len(key)]) + struct.pack('>IQQIII', vb, 1, 5, 0, 0, len(value)) + key + value
    ext = bytes([1, 1]) + struct.pack('>HIQ', 1, 0, 0)
    body_len = len(ext) + len(rec) + 16
    hdr = struct.pack('>BBHBBHIIQ', 0x80, 0xe8, 0, 16, 0, 0, body_len, 0, 0)
    mac = b'\x00' * 16
    if secret is not None:
        mac = hashlib.blake2b(hdr + ext + rec, digest_size=16,
                              key=bytes.fromhex(secret)).digest()
    return struct.pack('>HHHH', req_id, 0, 1, 0) + hdr + ext + rec + mac


def body(t):
    t.need_root()
    t.ip_tool = t.need_tool('ip')
    t.need_tool('etcd')
    lib = load_libkite(t)
    tmp = tempfile.mkdtemp(prefix='kite-repl-')
    t.on_cleanup(lambda: __import__('shutil').rmtree(tmp, ignore_errors=True))
    secret = os.path.join(tmp, 'secret')
    with open(secret, 'w') as f:
        f.write(SECRET + '\n')
    secret2 = os.path.join(tmp, 'secret2')
    with open(secret2, 'w') as f:
        f.write(SECRET + '\n' + OLD_SECRET + '\n')
    net = Net(t)
    net.up()
    net.start_etcd()
    nodes = {}
    figures = []
    extra = ('--replicas', '1', '--cluster-secret-file', secret)
    for i in (1, 2, 3):
        nodes[i] = Node(t, net, i, extra=extra if i < 3 else (
            '--replicas', '1', '--cluster-secret-file', secret2)).start()
    seeds = ','.join(net.data_ip(i) for i in sorted(nodes))
    client = kitelib.Client(lib, seeds, timeout_ms=300)
    t.on_cleanup(client.close)
    converge(list(nodes.values()), client, 3)
    # Nodes join as replicas first and turn active once filled: wait for that
    # (backfill records would count among the records applied below).
    check(wait_synced(list(nodes.values())) is not None, 'the cluster is not whole')
    client.refresh()
    if os.environ.get('KITE_DEBUG'):
        for _ in range(6):
            t.log('after converge: unsynced %r' % [
                int(x.stats().get('kite_repl_unsynced_vbuckets', 0)) for x in nodes.values()])
            time.sleep(0.5)
        log_counters(t, nodes)
    keys = [b'rkey-%05d' % k for k in range(KEYS)]
    acked = {}

    def c_replicated():
        res = client.set_many_cas({k: b'v1-' + k for k in keys})
        for k, (rc, cas) in res.items():
            check_eq(rc, kitelib.KITE_OK, 'set %r' % k)
            acked[k] = (b'v1-' + k, cas)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            items = stats_sum(nodes.values(), 'curr_items')
            if items == 2 * KEYS:
                break
            time.sleep(0.1)
        if items != 2 * KEYS:
            log_counters(t, nodes)
        check_eq(items, 2 * KEYS, 'items on the nodes (each key on its owner and one replica)')
        sent = stats_sum(nodes.values(), 'kite_repl_tx_records')
        applied = stats_sum(nodes.values(), 'kite_repl_rx_applied')
        check_eq(sent, KEYS, 'records sent')
        check_eq(applied, KEYS, 'records applied')
        check_eq(stats_sum(nodes.values(), 'kite_repl_rx_bad_mac'), 0, 'bad MACs')
        figures.append('replication: %d writes, %d records applied, %d retransmissions' % (
            KEYS, applied, stats_sum(nodes.values(), 'kite_repl_retransmits')))
    t.case('every write reaches one replica', c_replicated)

    def c_read_any():
        # read_from = any: reads spread over owners and replicas, every value right.
        anyc = kitelib.Client(lib, seeds, timeout_ms=300, read_any=True)
        t.on_cleanup(anyc.close)
        hits, errors = anyc.get_many(keys)
        st = anyc.stats()
        wrong = [k for k in keys if hits.get(k) != acked[k][0]]
        figures.append('read_from = any: %d reads, %d sent to a replica, %d asked again at the '
                       'owner, %d wrong or missing' % (len(keys), st['replica_reads'],
                                                       st['replica_fallbacks'], len(wrong)))
        check(not errors, 'errors: %r' % list(errors.items())[:3])
        check(not wrong, 'values not the acknowledged ones: %r' % wrong[:3])
        check(0.3 * len(keys) < st['replica_reads'] < 0.7 * len(keys),
              'reads sent to replicas: %d of %d (R = 1: about half)' % (
                  st['replica_reads'], len(keys)))
    t.case('reads from replicas (read_from = any)', c_read_any)

    def c_forged():
        n1 = nodes[1]
        before = int(n1.stats()['kite_repl_rx_bad_mac'])
        items = int(n1.stats()['curr_items'])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((net.host_ip, 0))
        for p in range(4):
            s.sendto(forged_data(b'forged', b'evil', p), (net.data_ip(1), 11211 + p))
        s.close()
        time.sleep(0.3)
        check_eq(int(n1.stats()['kite_repl_rx_bad_mac']) - before, 4, 'forged datagrams refused')
        check_eq(int(n1.stats()['curr_items']), items, 'items after the forged datagrams')
        hits, _ = client.get_many([b'forged'])
        check(not hits, 'a forged record was applied')
        # Node 3 also accepts the secret being rotated out (its file's second
        # line); a valid MAC from a non-member is still not applied.
        n3 = nodes[3]
        before = n3.stats()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((net.host_ip, 0))
        for p in range(4):
            s.sendto(forged_data(b'forged2', b'evil', p, secret=OLD_SECRET),
                     (net.data_ip(3), 11211 + p))
            s.sendto(forged_data(b'forged3', b'evil', p, secret=SECRET),
                     (net.data_ip(3), 11211 + p))
        s.close()
        time.sleep(0.3)
        after = n3.stats()

        def d(name):
            return int(after['kite_repl_' + name]) - int(before['kite_repl_' + name])
        check_eq(d('rx_old_secret'), 4, 'datagrams accepted under the previous secret')
        check_eq(d('rx_bad_mac'), 0, 'valid MACs counted as bad')
        hits, _ = client.get_many([b'forged2', b'forged3'])
        check(not hits, 'a record from a non-member was applied: %r' % hits)
    t.case('a datagram under another secret is refused', c_forged)

    def c_deletes():
        gone = keys[:50]
        res = client.exec(kitelib.KITE_DELETE, [(k, None) for k in gone])
        check(all(r[0] == kitelib.KITE_OK for r in res), 'deletes')
        for k in gone:
            acked.pop(k)
        end = time.monotonic() + 5
        while time.monotonic() < end and \
                stats_sum(nodes.values(), 'curr_items') != 2 * (KEYS - 50):
            time.sleep(0.1)
        check_eq(stats_sum(nodes.values(), 'curr_items'), 2 * (KEYS - 50),
                 'items after 50 deletes (owner and replica)')
    t.case('deletes replicate', c_deletes)

    def copies_of(keys_):
        """{key: [values held by the nodes that answer it]} by raw GETs to every node."""
        out = {k: [] for k in keys_}
        for n in nodes.values():
            c = n.client()
            try:
                for k in keys_:
                    rep = c.request(kt.get(k, opaque=9), limit=1.0, idle=0.1)
                    for r in rep.responses:
                        if r.opaque == 9 and r.status == kt.OK:
                            out[k].append(r.value)
            finally:
                c.close()
        return out

    def c_lossy():
        # F6: 10 % loss and 5 ms delay on every node's link (host side of
        # its veth: af_packet bypasses the namespace's qdisc). The streams
        # must converge: every key on its owner and its replica, equal.
        tc = t.need_tool('tc')
        devs = ['kd%dn%d' % (t.pid, i) for i in sorted(nodes)]
        for d in devs:
            kt.sh([tc, 'qdisc', 'add', 'dev', d, 'root', 'netem', 'loss', '10%', 'delay', '5ms'])
        try:
            lossy = keys[100:400]
            res = client.set_many_cas({k: b'v-lossy-' + k for k in lossy})
            for k, (rc, cas) in res.items():
                if rc == kitelib.KITE_OK:
                    acked[k] = (b'v-lossy-' + k, cas)
        finally:
            for d in devs:
                kt.sh([tc, 'qdisc', 'del', 'dev', d, 'root'], check_rc=False)
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if stats_sum(nodes.values(), 'curr_items') == 2 * len(acked):
                break
            time.sleep(0.2)
        got = copies_of(lossy)
        bad = {k: v for k, v in got.items() if k in acked and
               (len(v) != 2 or any(x != acked[k][0] for x in v))}
        figures.append('10%% loss and 5 ms delay: %d of %d writes acknowledged; %d keys not '
                       'on exactly two nodes with the acknowledged value; %d retransmissions, '
                       '%d NACKs sent again in all' % (
                           sum(1 for k in lossy if k in acked and acked[k][0].startswith(
                               b'v-lossy')), len(lossy), len(bad),
                           stats_sum(nodes.values(), 'kite_repl_retransmits'),
                           stats_sum(nodes.values(), 'kite_repl_nack_retries')))
        check(not bad, 'owner and replica differ for %d keys, e.g. %r' % (
            len(bad), list(bad.items())[:2]))
    # netem is a kernel module; a kernel without it (some VMs) cannot cut or
    # slow links, and says so here rather than passing a case that did nothing.
    tc = kt.which('tc')
    probe = kt.sh([tc, 'qdisc', 'add', 'dev', net.dbr, 'root', 'netem', 'delay', '1ms'],
                  check_rc=False) if tc else None
    if probe is not None and probe.returncode == 0:
        kt.sh([tc, 'qdisc', 'del', 'dev', net.dbr, 'root'], check_rc=False)
        t.case('10% loss and 5 ms delay: owner and replica end identical', c_lossy)
    else:
        t.log('SKIP: 10%% loss and 5 ms delay: no netem in this kernel (%s)' % (
            probe.stdout.decode(errors='replace').strip() if probe is not None else 'no tc'))

    def c_pause():
        # F7: SIGSTOP a node past its lease, write through the others, SIGCONT.
        # Async: what it holds from before is hidden when it registers again,
        # its vbuckets come back to it, and the replicas that served meanwhile
        # keep their items (warm-up reads them through): no stale value.
        n3 = nodes[3]
        theirs = [k for k in acked if client.owner(k) == 2]
        os.kill(n3.proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            converge([nodes[1], nodes[2]], client, 2)
            res = client.set_many_cas({k: b'v5-' + k for k in theirs})
            for k, (rc, cas) in res.items():
                if rc == kitelib.KITE_OK:
                    acked[k] = (b'v5-' + k, cas)
            while time.monotonic() - t0 < 3:
                time.sleep(0.1)
        finally:
            os.kill(n3.proc.pid, signal.SIGCONT)
        converge(list(nodes.values()), client, 3)
        ratio, hits, errors = hit_ratio(client, theirs)
        for _ in range(3):
            if not errors:
                break
            # The resumed node can be slow to answer at first (open problem,
            # docs/cluster.rst): the keys that timed out are read again.
            time.sleep(2)
            again, errors = client.get_many(list(errors))
            hits.update(again)
        ratio = len(hits) / len(theirs)
        stale = [k for k in hits if hits[k] != acked[k][0]]
        figures.append('SIGSTOP of an owner for 3 s (async, R=1): hit ratio of its %d keys '
                       'after it came back %.1f%%, %d stale values, %d acknowledged writes '
                       'not found' % (len(theirs), 100 * ratio, len(stale),
                                      len(theirs) - len(hits)))
        missing = [k for k in theirs if k not in hits][:5]
        if missing:
            # Diagnostics only: the returned node may still be slow to answer.
            try:
                st = n3.stats()
                where = copies_of(missing)
            except kt.CaseFailure as e:
                st, where = {}, 'unknown (%s)' % e
            t.log('pause: where the first missing keys are: %r; the returned node: fenced '
                  'writes %s, hidden %s; the client: %r' % (
                      where, st.get('kite_fenced_writes'), st.get('kite_stale_hidden'),
                      client.stats()))
        check(not errors, 'errors after the pause: %r' % list(errors.items())[:3])
        check(not stale, 'stale values after the pause: %r' % stale[:3])
        check(ratio >= 0.95, 'hit ratio of its keys after the pause %.3f (target >= 0.95)' % ratio)
    t.case('SIGSTOP of an owner past its lease: no stale value after it returns', c_pause)

    def c_failover():
        # One failure at a time: the node that returned in the last case is
        # whole again only once its backfill arrived (R = 1).
        took = wait_synced(list(nodes.values()))
        check(took is not None, 'replicas not whole 20 s after the last case')
        figures.append('replicas whole again %.1f s after the SIGSTOP case ended' % took)
        victim = nodes[2]
        mine = [k for k in acked if client.owner(k) == 1]  # member index 1 is n2 (ids sorted)
        check(len(mine) > KEYS / 5, 'keys owned by n2: %d' % len(mine))
        probe = mine[0]
        t0 = time.monotonic()
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        nodes.pop(2)
        # Until a write and a read of one of its keys succeed through the new owner.
        ok_at = None
        while time.monotonic() - t0 < 30:
            res = client.exec(kitelib.KITE_SET, [(probe, b'v2-probe')], batch=1)
            if res[0][0] == kitelib.KITE_OK:
                hits, _ = client.get_many([probe])
                if hits.get(probe) == b'v2-probe':
                    ok_at = time.monotonic() - t0
                    break
            time.sleep(0.05)
        check(ok_at is not None, 'no write and read of the failed node\'s key in 30 s')
        acked[probe] = (b'v2-probe', None)
        net.del_ns(2)
        converge(list(nodes.values()), client, 2)
        sample = mine[1:]
        ratio, hits, errors = hit_ratio(client, sample)
        lost = [k for k in sample if k not in hits]
        wrong = [k for k in sample if k in hits and hits[k] != acked[k][0]]
        figures.append('kill -9 of an owner (async, R=1): its keys written and read again '
                       'after %.2f s (target lease TTL + 1 s = %d s); hit ratio of its %d keys '
                       '%.1f%%; %d acknowledged writes lost (async lag), %d wrong values'
                       % (ok_at, LEASE_TTL + 1, len(sample), 100 * ratio, len(lost), len(wrong)))
        check(not errors, 'errors reading after the failover: %r' % list(errors.items())[:3])
        check(not wrong, 'values that are not the last acknowledged: %r' % wrong[:3])
        check(ratio >= 0.95, 'hit ratio of the failed node\'s keys %.3f (target >= 0.95)' % ratio)
        # A client's CAS from before the failover still works: replicas hold the owner's CAS.
        k = sample[0] if sample[0] in hits else next(iter(hits))
        res = client.exec(kitelib.KITE_SET, [(k, b'v3-cas')], batch=1, cas=acked[k][1])
        check_eq(res[0][0], kitelib.KITE_OK, 'SET with the CAS from before the failover')
        res = client.exec(kitelib.KITE_SET, [(k, b'v4-cas')], batch=1, cas=acked[k][1])
        check_eq(res[0][0], kitelib.KITE_EXISTS,
                 'the same CAS again (the item changed)')
        # Backfill: the new owners give their vbuckets' new replicas everything they
        # hold, so every key is on two nodes again and every replica vbucket is whole.
        want = 2 * len(acked)
        end = time.monotonic() + 20
        t1 = time.monotonic()
        while time.monotonic() < end:
            items = stats_sum(nodes.values(), 'curr_items')
            unsynced = stats_sum(nodes.values(), 'kite_repl_unsynced_vbuckets')
            if items == want and unsynced == 0:
                break
            if os.environ.get('KITE_DEBUG'):
                t.log('backfill: items %d unsynced %r' % (items, [
                    int(x.stats().get('kite_repl_unsynced_vbuckets', 0)) for x in nodes.values()]))
            time.sleep(0.5 if os.environ.get('KITE_DEBUG') else 0.2)
        figures.append('backfill after the failover: %d items on the 2 nodes (want %d), '
                       '%d replica vbuckets not yet whole, after %.1f s; %d backfills, '
                       '%d records' % (items, want, unsynced, time.monotonic() - t1,
                                       stats_sum(nodes.values(), 'kite_repl_backfills'),
                                       stats_sum(nodes.values(), 'kite_repl_backfill_items')))
        if items != want or unsynced:
            log_counters(t, nodes)
        check_eq(items, want, 'items after the backfill (every key on its owner and a replica)')
        check_eq(unsynced, 0, 'replica vbuckets whose backfill did not arrive whole')
    t.case('kill -9 of an owner: its replica serves its keys', c_failover)

    def c_flush():
        # A FLUSH sent to one node empties what it owns there and on the
        # replicas (a failover must not bring flushed keys back).
        live = sorted(nodes)
        client.refresh()
        n1 = nodes[live[0]]
        mine = [k for k in acked if client.owner(k) == 0]  # n1 sorts first
        theirs = [k for k in acked if client.owner(k) != 0]
        before = stats_sum(nodes.values(), 'kite_repl_rx_flushes')
        c = n1.client()
        try:
            rep = c.request(kt.flush(opaque=5))
            check(any(r.status == kt.OK for r in rep.responses), 'FLUSH answered')
        finally:
            c.close()
        end = time.monotonic() + 5
        while time.monotonic() < end:
            held = copies_of(mine)
            if not any(held.values()):
                break
            time.sleep(0.2)
        left = [k for k, v in held.items() if v]
        others = copies_of(theirs)
        figures.append('FLUSH of one node: %d of its %d keys still held anywhere; %d vbucket '
                       'FLUSH records applied by its replicas; the other node\'s %d keys '
                       'still served: %d' % (len(left), len(mine),
                                             stats_sum(nodes.values(), 'kite_repl_rx_flushes')
                                             - before, len(theirs),
                                             sum(1 for v in others.values() if v)))
        check(not left, 'keys still held after the FLUSH (replicas not flushed): %r' % left[:3])
        check(all(others.values()), 'keys of the node not flushed were lost')
    t.case('FLUSH of a node reaches its replicas', c_flush)
    log_figures(t, figures)


if __name__ == '__main__':
    kt.run('repl', body, extra_args)
