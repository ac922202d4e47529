#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Steering on net_tap, the one PMD here with a real rte_flow back end.

kited runs with 2 workers inside the test's network namespace on a
net_tap port (the kernel tap it creates is the client's end), with
``steer auto``. net_tap validates the partition rules in software and
creates them as TC flower filters with skbedit queue mapping. So:

  * where the kernel has TC flower and skbedit, auto must pick ``flow``,
    and requests sent to base_port + partition must reach the owner's
    queue: no steering miss;
  * where it has not (the CI VMs: no CONFIG_NET_CLS_FLOWER), creating the
    first rule fails after validation passed; auto must then degrade to
    ``rss`` (or ``handoff``), say so in its log, and still answer every
    request correctly, with the misses counted and handed off;
  * ``--steer flow`` forced: starts with flow rules where they can be
    created, and otherwise exits with an error naming the flow rules.

Run: python3 test_tap.py --kited PATH --cli PATH
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402
from kitetest import GETK, SET, OK, store, get, check, check_eq  # noqa: E402

WORKERS = 2
PARTS = WORKERS * 4  # kited's default of 4 partitions per worker
N_KEYS = 240


def body(t):
    t.need_root()
    t.need_file(t.args.kited, 'kited')
    topo = kt.Topology(t).up(veth=False)
    tap = 'ktap%d' % t.pid

    def start(kite_args=(), expect_ready=True):
        k = kt.Kited(t, topo, workers=WORKERS, vdev='net_tap0,iface=%s' % tap,
                     kite_args=kite_args)
        # Inside the namespace: the tap, and the TC rules net_tap puts on it, live there.
        k.argv = [topo.ip_tool, 'netns', 'exec', topo.ns] + k.argv
        if expect_ready:
            k.start()
            topo.ip('-n', topo.ns, 'addr', 'replace', topo.client_ip + '/30', 'dev', tap)
            topo.ip('-n', topo.ns, 'link', 'set', tap, 'up')
            # The kernel would leave UDP checksums to an offload a tap never performs.
            topo.in_ns(topo.ethtool, '-K', tap, 'tx', 'off', check_rc=False)
        return k

    kited = start()
    log = '\n'.join(kited.lines)
    clients = [topo.client(port=11211 + p) for p in range(PARTS)]
    main = clients[0]
    mode = {}

    def c_mode():
        # The first datagram also resolves kited's MAC.
        end = time.monotonic() + 20
        st = None
        while st is None and time.monotonic() < end:
            try:
                st = main.stats()
            except Exception:  # noqa: BLE001 - retried until the deadline
                time.sleep(0.5)
        check(st is not None, 'no STAT reply over the tap:\n' + kited.tail())
        m = st['kite_steer_mode']
        mode['m'] = m
        refused = 'flow rules although the first validated' in log
        t.log('steering mode %s%s' % (m, ' (flow rules refused by the kernel)' if refused
                                      else ''))
        if refused:
            check(m in ('rss', 'handoff'), 'flow refused, mode %s (want rss or handoff)' % m)
            check('steering by %s instead' % m in log, 'the fallback is not logged:\n' + log)
        else:
            check_eq(m, 'flow', 'auto on net_tap whose rules were created')
    t.case('steer auto: flow where the kernel takes the rules, else a logged fallback',
           c_mode)

    def c_by_port():
        before = main.stats()
        keys = [b'tap:key:%04d' % i for i in range(N_KEYS)]
        per_part = [0] * PARTS
        for i, k in enumerate(keys):
            p = kt.key_partition(k, PARTS)
            per_part[p] += 1
            rep = clients[p].request(store(SET, k, b'v%d' % i, flags=i, opaque=i), limit=3.0,
                                     linger=0.002)
            rs = rep.responses
            check(len(rs) == 1 and rs[0].status == OK, 'SET %r on port %d: %s %s' % (
                k, 11211 + p, rs, rep.problems()))
        for i, k in enumerate(keys):
            p = kt.key_partition(k, PARTS)
            rep = clients[p].request(get(k, GETK, i), limit=3.0, linger=0.002)
            rs = rep.responses
            check(len(rs) == 1 and rs[0].status == OK and rs[0].value == b'v%d' % i and
                  rs[0].key == k, 'GETK %r on port %d: %s %s' % (k, 11211 + p, rs,
                                                                  rep.problems()))
        check(min(per_part) > 0, 'keys per partition %s' % per_part)
        after = main.stats()
        misses = int(after['kite_steer_misses']) - int(before['kite_steer_misses'])
        out = int(after['kite_handoff_out']) - int(before['kite_handoff_out'])
        inn = int(after['kite_handoff_in']) - int(before['kite_handoff_in'])
        check_eq(after['kite_handoff_full'], '0', 'kite_handoff_full')
        check(inn == out, 'handoff out %d but in %d' % (out, inn))
        if mode.get('m') == 'flow':
            # STATs go to the base port (partition 0, worker 0): only they may miss.
            check(misses <= 2 and out <= 2,
                  'flow rules steer by port, yet %d misses and %d handoffs' % (misses, out))
        else:
            # Which queue the kernel picks is its business (tun follows a flow
            # to the queue its replies left from), so misses may be few or none;
            # every one must have been handed off (STATs to port 0 aside).
            t.log('%d steering misses, %d handed off' % (misses, out))
            check(out >= misses - 2, '%d misses but only %d handed off' % (misses, out))
    t.case('%d keys, each sent to base port + partition: all answered; misses as the '
           'mode says' % N_KEYS, c_by_port)

    t.case('kited still running', lambda: check(kited.alive(), 'kited exited:\n' + kited.tail()))
    kited.stop()

    def c_forced():
        k = start(('--steer', 'flow'), expect_ready=False)
        kt.dpdk_prefix_cleanup(k.prefix)
        kt.Process.start(k)
        end = time.monotonic() + 60
        while time.monotonic() < end and k.alive() and not k.ready.is_set():
            time.sleep(0.1)
        if mode.get('m') == 'flow':
            check(k.ready.is_set(), 'forced flow did not start:\n' + k.tail())
        else:
            k.proc.wait(10)
            k.reader.join(5)  # every line of its error read
            text = '\n'.join(k.lines)
            check(not k.ready.is_set() and k.proc.returncode not in (0, None),
                  'forced flow on a kernel that refuses the rules should fail, rc %s:\n%s' %
                  (k.proc.returncode, k.tail()))
            check('flow rules' in text, 'the error does not name the flow rules:\n' + text)
        k.stop()
        kt.dpdk_prefix_cleanup(k.prefix)
    t.case('--steer flow forced: starts with rules, or fails saying why', c_forced)


if __name__ == '__main__':
    kt.run('tap', body)
