#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Start-up errors point the right way: each way kited can fail to start,
provoked for real, must give a message that says what is wrong and what to
do -- never DPDK's "Success", a bare errno of the wrong kind, or advice for
the other memory mode -- and the right exit status (2: configuration or
EAL, which a restart cannot mend; 1: a resource missing at start).

Run: python3 test_startup.py --kited PATH --cli PATH
"""

import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402
from kitetest import check, check_eq  # noqa: E402


def body(t):
    t.need_root()
    kited_path = t.need_file(t.args.kited, 'kited')
    topo = kt.Topology(t).up()
    prefix = 'kst%d' % t.pid
    t.on_cleanup(lambda: kt.dpdk_prefix_cleanup(prefix))
    t.on_cleanup(lambda: kt.dpdk_prefix_cleanup(prefix + 'b'))
    af = 'net_af_packet0,iface=%s,framesz=32768,blocksz=32768' % topo.host_if

    def kited(eal, kite, timeout=60):
        argv = [kited_path] + eal + ['--'] + kite
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
        out = p.stdout.decode(errors='replace')
        t.debug('%s -> %d\n%s' % (' '.join(argv), p.returncode, out[-1500:]))
        return p.returncode, out

    def no_bad_words(out):
        check('Success' not in out, '"Success" in an error:\n%s' % out[-1500:])
        check('Operation not permitted' not in out,
              '"Operation not permitted" as root:\n%s' % out[-1500:])

    base = ['-l', '0', '--no-huge', '-m', '512', '--no-pci', '--file-prefix', prefix]
    node = ['--ip', topo.kited_ip, '--netmask', topo.netmask, '--stats-interval', '0']

    def c_version():
        rc, out = kited(['--version'], [])
        check_eq(rc, 0, 'kited --version exit status')
        check(re.match(r'^kited \d+\.\d+\.\d+ \(DPDK \d+\.\d+', out), 'kited --version: %r'
              % out)
        rc, out2 = kited([], ['--version'])
        check_eq(out2, out, 'kited -- --version')
    t.case('kited --version (either side of --)', c_version)

    def c_same_prefix():
        first = kt.Process(t, 'kited', [kited_path] + base + ['--vdev=' + af, '--'] +
                           ['--profile', 'af_packet'] + node, ready_line='kited: ready')
        first.start()
        first.wait_ready(60)
        try:
            rc, out = kited(base + ['--vdev=net_null0'], ['--port', 'net_null0'])
            check_eq(rc, 2, 'exit status of a second kited with the same --file-prefix')
            check(re.search(r'another DPDK process \(pid %d\) runs with --file-prefix %s'
                            % (first.proc.pid, prefix), out),
                  'the second kited does not name the first:\n%s' % out[-1500:])
            no_bad_words(out)
        finally:
            check_eq(first.stop(signal.SIGTERM), 0, 'first kited exit status')
    t.case('a second kited with the same --file-prefix names the first', c_same_prefix)

    def c_no_interface():
        rc, out = kited(base + ['--vdev=net_af_packet0,iface=nosuchif9,framesz=32768,'
                                'blocksz=32768'], ['--profile', 'af_packet'] + node)
        check(rc != 0, 'kited started on a missing interface')
        check("no interface 'nosuchif9'" in out, 'no word of the missing interface:\n%s'
              % out[-1500:])
        no_bad_words(out)
        rc, out = kited(base, ['--port', 'net_af_packet0,qpairs=1', '--profile', 'af_packet']
                        + node)
        check(rc != 0, 'kited started an af_packet port with no iface=')
        check('iface=' in out, 'no word of the missing iface= argument:\n%s' % out[-1500:])
        no_bad_words(out)
    t.case('af_packet on a missing interface says so', c_no_interface)

    def c_memory():
        rc, out = kited(['-l', '0', '--no-huge', '-m', '128', '--no-pci', '--file-prefix',
                         prefix, '--vdev=net_null0'],
                        ['--profile', 'null', '--memory', '256M'] + node)
        check_eq(rc, 1, 'exit status when memory runs out')
        check(re.search(r'memory: this configuration needs about \d+ MiB \(items 256, ', out),
              'no "needs about" line:\n%s' % out[-1500:])
        check(re.search(r'not enough DPDK memory for .*raise -m', out),
              'no "not enough DPDK memory ... raise -m":\n%s' % out[-1500:])
        check('hugepages' not in out.split('not enough DPDK memory', 1)[1],
              'hugepage advice with --no-huge:\n%s' % out[-1500:])
        check('No such file or directory' not in out, 'ENOENT for a lack of memory:\n%s'
              % out[-1500:])
        # Workers' setup runs out (items fit, the reassembly tables do not).
        rc, out = kited(['-l', '0', '--no-huge', '-m', '128', '--no-pci', '--file-prefix',
                         prefix, '--vdev=net_null0'],
                        ['--profile', 'null', '--memory', '16M', '--frag-flows', '65536']
                        + node)
        check_eq(rc, 1, 'exit status when a worker cannot be set up')
        check(re.search(r'not enough DPDK memory for worker 0', out),
              'worker setup failure not named:\n%s' % out[-1500:])
        check('No such file or directory' not in out, 'ENOENT for a lack of memory:\n%s'
              % out[-1500:])
    t.case('out of memory: what is needed and what to change', c_memory)

    def c_framesz():
        vdev = 'net_af_packet0,iface=%s' % topo.host_if
        p = kt.Process(t, 'kited', [kited_path] + base + ['--vdev=' + vdev, '--'] +
                       ['--port', 'net_af_packet0'] + node, ready_line='kited: ready')
        p.start()
        p.wait_ready(60)
        check_eq(p.stop(signal.SIGTERM), 0, 'kited exit status')
        log = '\n'.join(p.lines)
        check(re.search(r'takes frames of 2048 bytes: datagrams above about \d+ bytes are '
                        r'cut, their first request answered E2BIG.*framesz=32768', log),
              'no warning about the default framesz:\n%s' % log[-1500:])
        # framesz larger than the RX mbufs (no rx-mbuf-size): refused.
        rc, out = kited(base + ['--vdev=' + af], ['--port', 'net_af_packet0'] + node)
        check_eq(rc, 1, 'exit status with framesz above the mbuf room')
        check(re.search(r'takes frames of 32768 bytes but RX mbufs hold \d+: set '
                        r'rx-mbuf-size 32768', out), 'no framesz/rx-mbuf-size error:\n%s'
              % out[-1500:])
    t.case('af_packet frame size: warned at 2048, refused above the mbuf room', c_framesz)

    def c_pid_dir():
        rc, out = kited(base + ['--vdev=net_null0'],
                        ['--profile', 'null', '--pid-file', '/nonexistent-kite/kited.pid'])
        check_eq(rc, 2, 'exit status with a pid file in a missing folder')
        check('folder /nonexistent-kite does not exist' in out, 'no word of the folder:\n%s'
              % out)
        check('EAL' not in out, 'EAL started before the pid file was checked:\n%s' % out)
    t.case('a pid file in a missing folder stops kited before EAL', c_pid_dir)

    def c_eal_option():
        rc, out = kited(['-l', '0', '--no-huge', '-m', '512', '--no-pci', '--file-prefix',
                         prefix + 'b', '--no-such-eal-option'], [])
        check_eq(rc, 2, 'exit status with an unknown EAL option')
        check('EAL did not start' in out, 'no "EAL did not start":\n%s' % out[-1500:])
        no_bad_words(out)
    t.case('an EAL failure is said in words', c_eal_option)


if __name__ == '__main__':
    kt.run('startup', body)
