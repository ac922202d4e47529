#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""memaslap, the standard memcached load tool (Debian's libmemcached-tools
ships it as `memcaslap`), against kited over UDP in the text protocol, with
verification of every value it reads back (-v 1), as a third-party client:
  * kited on a veth in a namespace, cluster = none (memaslap ignores
    redirects), its source trusted (memaslap cannot fetch a cookie);
  * memaslap must report 0 verify failures, 0 verify misses, and no
    dropped or timed-out UDP replies; kited's own counters must show the
    text requests served and no error replies;
  * the same run against memcached -U on loopback as a sanity check of the
    tool (same options).
Runs are bounded in time (-t) and by timeout.

Run: python3 test_memaslap.py --kited PATH --cli PATH --memcached PATH
"""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402

FIELDS = ('cmd_get', 'cmd_set', 'get_misses', 'verify_misses', 'verify_failed',
          'packet_disorder', 'packet_drop', 'udp_timeout')


def memaslap(t, server, seconds=5, extra=(), netns=None):
    exe = shutil.which('memcaslap') or shutil.which('memaslap')
    # kited's client end lives in the test's namespace: memaslap runs there.
    cmd = (['ip', 'netns', 'exec', netns] if netns else []) + [exe, '-s', server, '-U', '-t', '%ds' % seconds, '-T', '1', '-c', '8', '-v', '1',
           '-X', '64'] + list(extra)
    t.log('$ ' + ' '.join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=seconds + 60)
    out = p.stdout
    got = {}
    for f in FIELDS:
        m = re.search(r'^%s: (\d+)' % f, out, re.M)
        got[f] = int(m.group(1)) if m else None
    m = re.search(r'TPS: (\d+)', out)
    got['tps'] = int(m.group(1)) if m else None
    kt.check(p.returncode == 0 and None not in got.values(),
             'memaslap failed (%d):\n%s' % (p.returncode, out[-2000:]))
    return got, out


def check_clean(got, out):
    kt.check(got['cmd_get'] > 1000 and got['cmd_set'] > 100,
             'too few operations: %s\n%s' % (got, out[-1500:]))
    for f in ('verify_misses', 'verify_failed', 'packet_drop', 'udp_timeout'):
        kt.check(got[f] == 0, '%s = %d (want 0):\n%s' % (f, got[f], out[-1500:]))


def body(t):
    t.need_root()
    t.need_file(t.args.kited, 'kited')
    t.need_tool('ip')
    t.need_tool('ethtool')
    if not (shutil.which('memcaslap') or shutil.which('memaslap')):
        raise kt.Skip('memcaslap not installed (Debian package libmemcached-tools)')
    res = {}

    if t.args.memcached and os.access(t.args.memcached, os.X_OK):
        def c_memcached():
            mc = kt.Memcached(t, ['-t', '1']).start()
            try:
                got, out = memaslap(t, '127.0.0.1:%d' % mc.port, 3)
            finally:
                mc.stop()
            check_clean(got, out)
            res['memcached'] = got
        t.case('memaslap against memcached (the tool itself)', c_memcached)

    topo = kt.Topology(t).up()
    # memaslap's keys start with bytes 0x10: memcached's key rule (text-keys = memcached).
    kd = kt.Kited(t, topo, kite_args=['--memory', '64M', '--text-keys', 'memcached']).start()
    cli = topo.client()

    def c_kited():
        before = cli.stats()
        got, out = memaslap(t, '%s:11211' % topo.kited_ip, 5, netns=topo.ns)
        after = cli.stats()
        check_clean(got, out)
        served = int(after['kite_served']) - int(before['kite_served'])
        errs = int(after['kite_error_replies']) - int(before['kite_error_replies'])
        # memaslap counts the last requests of each of its 8 connections when it
        # issues them; those still in flight as its clock runs out are not served.
        kt.check(served >= got['cmd_get'] + got['cmd_set'] - 8,
                 'kited served %d requests, memaslap sent %d' % (
                     served, got['cmd_get'] + got['cmd_set']))
        kt.check(errs == 0, 'kited sent %d error replies' % errs)
        res['kited'] = got
        t.log('memaslap: kited %s' % got)
    t.case('memaslap against kited over UDP, every value verified', c_kited)
    t.case('kited still running', lambda: kt.check(kd.alive(), 'kited exited:\n' + kd.tail()))


if __name__ == '__main__':
    kt.run('memaslap', body)
