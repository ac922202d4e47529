#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Tour: kited on net_af_packet over a veth, pinged and driven by kite-cli
from a network namespace, every command and exit code checked.

kited runs with --max-item-size 1024 so that kite-cli's exit code 4 (a
server refusal: E2BIG) can be provoked with a value that still fits one
Ethernet frame.

Run: python3 test_tour.py --kited PATH --cli PATH [--memcached PATH]
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402
from kitetest import check, check_eq  # noqa: E402


class Cli:
    """Runs kite-cli inside the test namespace."""

    def __init__(self, t, topo, path):
        self.t = t
        self.topo = topo
        self.path = path

    def __call__(self, *args, server=True, env=None, timeout=30):
        argv = [self.topo.ip_tool, 'netns', 'exec', self.topo.ns, self.path]
        if server:
            argv += ['-s', self.topo.kited_ip]
        argv += [str(a) for a in args]
        e = dict(os.environ)
        e.pop('KITE_SERVER', None)
        if env:
            e.update(env)
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                           timeout=timeout)
        self.t.debug('kite-cli %s -> %d %r %r' % (' '.join(map(str, args)), p.returncode,
                                                   p.stdout[:200], p.stderr[:200]))
        return p.returncode, p.stdout.decode(errors='replace'), p.stderr.decode(errors='replace')

    def ok(self, *args, want_rc=0, **kw):
        rc, out, err = self(*args, **kw)
        check(rc == want_rc, 'kite-cli %s: exit %d, expected %d (stdout %r, stderr %r)' % (
            ' '.join(map(str, args)), rc, want_rc, out[:300], err[:300]))
        return out, err


def stat_value(out, name):
    m = re.search(r'^STAT %s (\S+)$' % re.escape(name), out, re.M)
    check(m is not None, 'no "STAT %s" line in:\n%s' % (name, out[:2000]))
    return m.group(1)


def body(t):
    t.need_root()
    ping = t.need_tool('ping')
    cli_path = t.need_file(t.args.cli, 'kite-cli')
    t.need_file(t.args.kited, 'kited')
    topo = kt.Topology(t).up()
    # No periodic stats lines: the one at stop covers the whole run (checked last).
    t_launch = time.monotonic()
    kited = kt.Kited(t, topo, kite_args=['--max-item-size', '1024',
                                         '--stats-interval', '0']).start()
    t_ready = time.monotonic()
    cli = Cli(t, topo, cli_path)
    client = topo.client()

    def c_ping():
        before = client.stats()
        p = topo.in_ns(ping, '-c', '3', '-W', '2', topo.kited_ip, check_rc=False, timeout=30)
        out = p.stdout.decode(errors='replace')
        check(p.returncode == 0, 'ping exit %d:\n%s' % (p.returncode, out))
        check(re.search(r'3 packets transmitted, 3 received', out) is not None,
              'ping lost replies:\n%s' % out)
        after = client.stats()
        check(int(after['kite_net_icmp_echo']) - int(before['kite_net_icmp_echo']) == 3,
              'kite_net_icmp_echo grew from %s to %s, expected +3' % (
                  before['kite_net_icmp_echo'], after['kite_net_icmp_echo']))
        check(int(after['kite_net_arp_replies']) >= 1, 'kited never answered ARP')
        # The kernel answers nothing here: the neighbour entry is kited's MAC.
        p = topo.ip('-n', topo.ns, 'neigh', 'show', topo.kited_ip)
        mac = open('/sys/class/net/%s/address' % topo.host_if).read().strip()
        check(mac.lower() in p.stdout.decode().lower(),
              'ARP entry %r is not kited\'s MAC %s' % (p.stdout.decode().strip(), mac))
    t.case('ping (ARP + ICMP answered by kited)', c_ping)

    def c_basics():
        out, _ = cli.ok('version')
        check(re.fullmatch(r'\d+\.\d+\.\d+\S*\n', out) is not None, 'version: %r' % out)
        out, _ = cli.ok('noop')
        check_eq(out, 'OK\n', 'noop output')
        out, _ = cli.ok('--help', server=False)
        for word in ('Exit codes', 'batch-get', 'KITE_SERVER', 'incr KEY'):
            check(word in out, '--help lacks %r' % word)
        out, _ = cli.ok('-V', server=False)
        check(out.startswith('kite-cli '), '-V: %r' % out)
    t.case('version, noop, --help', c_basics)

    def c_set_get():
        out, _ = cli.ok('set', 'greeting', 'hello kite', '--flags', '7', '--ttl', '600')
        m = re.fullmatch(r'STORED cas=(\d+)\n', out)
        check(m is not None, 'set output %r' % out)
        cas = int(m.group(1))
        out, _ = cli.ok('get', 'greeting')
        check_eq(out, 'hello kite\n', 'get output')
        out, _ = cli.ok('get', 'greeting', '--verbose')
        check_eq(out, 'VALUE greeting flags=7 cas=%d bytes=10\nhello kite\n' % cas,
                 'get --verbose output')
        out, _ = cli.ok('-v', 'get', 'greeting')
        check(out.startswith('VALUE greeting flags=7'), '-v get: %r' % out)
        rc, out, err = cli('get', 'no-such-key')
        check(rc == 1 and out == '' and 'KEY_ENOENT' in err and 'Not found' in err,
              'get miss: rc %d out %r err %r' % (rc, out, err))
        rc, out, err = cli('-q', 'get', 'no-such-key')
        check(rc == 1 and out == '' and err == '', '-q get miss: rc %d %r %r' % (rc, out, err))
        out, _ = cli.ok('-q', 'set', 'quiet', 'x')
        check_eq(out, '', '-q set output')
        out, _ = cli.ok('set', 'dash', '--', '--not-an-option')
        out, _ = cli.ok('get', 'dash')
        check_eq(out, '--not-an-option\n', 'value after --')
        out, _ = cli.ok('set', 'empty', '')
        out, _ = cli.ok('get', 'empty')
        check_eq(out, '\n', 'empty value')
    t.case('set/get (+ --verbose, -q, miss)', c_set_get)

    def c_store_family():
        cli.ok('set', 'fam', 'mid', '--flags', '3')
        _, err = cli.ok('add', 'fam', 'x', want_rc=1)
        check('KEY_EEXISTS' in err, 'add existing: %r' % err)
        cli.ok('add', 'fam-new', 'a1')
        _, err = cli.ok('replace', 'fam-missing', 'x', want_rc=1)
        check('KEY_ENOENT' in err, 'replace missing: %r' % err)
        cli.ok('replace', 'fam-new', 'a2')
        cli.ok('append', 'fam', '-end')
        cli.ok('prepend', 'fam', 'start-')
        out, _ = cli.ok('get', 'fam', '-v')
        check(out.startswith('VALUE fam flags=3 ') and out.endswith('\nstart-mid-end\n'),
              'append/prepend result: %r' % out)
        _, err = cli.ok('append', 'fam-missing', 'x', want_rc=1)
        check('NOT_STORED' in err, 'append missing: %r' % err)
        _, err = cli.ok('prepend', 'fam-missing', 'x', want_rc=1)
        check('NOT_STORED' in err, 'prepend missing: %r' % err)
        out, _ = cli.ok('set', 'casd', 'v1')
        cas = int(re.fullmatch(r'STORED cas=(\d+)\n', out).group(1))
        _, err = cli.ok('set', 'casd', 'v2', '--cas', str(cas + 1), want_rc=1)
        check('KEY_EEXISTS' in err, 'stale cas: %r' % err)
        out, _ = cli.ok('set', 'casd', 'v3', '--cas', str(cas))
        check(out.startswith('STORED cas='), 'cas set: %r' % out)
        out, _ = cli.ok('get', 'casd')
        check_eq(out, 'v3\n', 'value after cas set')
    t.case('add/replace/append/prepend/--cas', c_store_family)

    def c_delete():
        cli.ok('set', 'del-me', 'x')
        out, _ = cli.ok('delete', 'del-me')
        check_eq(out, 'DELETED\n', 'delete output')
        _, err = cli.ok('delete', 'del-me', want_rc=1)
        check('KEY_ENOENT' in err, 'delete missing: %r' % err)
        cli.ok('get', 'del-me', want_rc=1)
    t.case('delete', c_delete)

    def c_incr_decr():
        _, err = cli.ok('incr', 'ctr', want_rc=1)
        check('KEY_ENOENT' in err, 'incr missing without --initial: %r' % err)
        out, _ = cli.ok('incr', 'ctr', '5', '--initial', '10')
        check_eq(out, '10\n', 'incr creating with --initial')
        out, _ = cli.ok('incr', 'ctr', '5')
        check_eq(out, '15\n', 'incr 5')
        out, _ = cli.ok('incr', 'ctr')
        check_eq(out, '16\n', 'incr default delta 1')
        out, _ = cli.ok('decr', 'ctr', '100')
        check_eq(out, '0\n', 'decr floors at 0')
        out, _ = cli.ok('decr', 'dctr', '1', '--initial', '7', '--ttl', '100')
        check_eq(out, '7\n', 'decr creating')
        out, _ = cli.ok('-v', 'incr', 'ctr', '18446744073709551615')
        check(re.fullmatch(r'18446744073709551615 cas=\d+\n', out) is not None,
              'incr -v: %r' % out)
        out, _ = cli.ok('incr', 'ctr', '1')
        check_eq(out, '0\n', 'incr wraps at 2^64')
        cli.ok('set', 'text', 'abc')
        _, err = cli.ok('incr', 'text', want_rc=1)
        check('DELTA_BADVAL' in err, 'incr non-numeric: %r' % err)
        _, err = cli.ok('incr', 'ctr', '--ttl', '5', want_rc=2)
        check('--initial' in err, 'incr --ttl without --initial: %r' % err)
        cli.ok('incr', 'ctr', 'x', want_rc=2)
    t.case('incr/decr', c_incr_decr)

    def c_touch():
        cli.ok('set', 'tk', 'v', '--flags', '9')
        out, _ = cli.ok('touch', 'tk', '100')
        check_eq(out, 'TOUCHED\n', 'touch output')
        out, _ = cli.ok('touch', 'tk', '100', '-v')
        check(re.fullmatch(r'TOUCHED flags=9 cas=\d+\n', out) is not None,
              'touch -v: %r' % out)
        _, err = cli.ok('touch', 'tk-missing', '10', want_rc=1)
        check('KEY_ENOENT' in err, 'touch missing: %r' % err)
        cli.ok('touch', 'tk', 'soon', want_rc=2)
    t.case('touch', c_touch)

    def c_stats():
        out, _ = cli.ok('stats')
        for name in ('curr_items', 'get_hits', 'get_misses', 'cmd_get', 'cmd_set', 'uptime',
                     'kite_rx_requests', 'kite_tx_datagrams', 'kite_drop_bad_magic',
                     'kite_net_icmp_echo', 'kite_handoff_out'):
            v = stat_value(out, name)
            check(v.isdigit(), 'STAT %s %r is not a number' % (name, v))
        check(int(stat_value(out, 'curr_items')) >= 5, 'curr_items too low:\n' + out[:500])
        check(int(stat_value(out, 'get_hits')) >= 3, 'get_hits too low')
        check(int(stat_value(out, 'get_misses')) >= 1, 'get_misses too low')
        check_eq(stat_value(out, 'item_size_max'), '1024', 'item_size_max')
        check(all(l.startswith('STAT ') for l in out.splitlines()), 'non-STAT line in output')
        _, err = cli.ok('stats', 'settings', want_rc=1)
        check('KEY_ENOENT' in err, 'stats group: %r' % err)
    t.case('stats', c_stats)

    def c_telemetry():
        tool = kt.which('dpdk-telemetry.py')
        check(tool is not None, 'dpdk-telemetry.py not found (Debian package dpdk-dev, '
              'which tools/kite-common.sh installs)')
        import json
        r = subprocess.run([tool, '-f', kited.prefix], input=b'/kite/stats\n',
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        out = r.stdout.decode(errors='replace')
        # The tool prints its own banner lines, then one JSON object per command.
        line = next((l for l in out.splitlines() if l.startswith('{"/kite/stats"')), None)
        check(line is not None, 'no /kite/stats answer from dpdk-telemetry.py:\n' + out[-800:])
        st = json.loads(line)['/kite/stats']
        check_eq(st.get('pid'), str(kited.proc.pid), 'pid over telemetry')
        out_cli, _ = cli.ok('stats')
        check(int(st['curr_items']) == int(stat_value(out_cli, 'curr_items')),
              'curr_items: telemetry %s, STAT %s' % (st['curr_items'],
                                                    stat_value(out_cli, 'curr_items')))
        check('kite_net_rx_packets' in st, 'no kite_net_rx_packets in /kite/stats')
    t.case('the same statistics over DPDK telemetry (/kite/stats)', c_telemetry)

    def c_batch_get():
        for i in range(3):
            cli.ok('set', 'bk%d' % i, 'value %d' % i, '--flags', str(i))
        rc, out, err = cli('batch-get', 'bk0', 'bk1', 'bk-missing', 'bk2')
        check(rc == 1, 'batch-get with a miss: rc %d' % rc)
        check_eq(out, 'VALUE bk0 0 7\nvalue 0\nVALUE bk1 1 7\nvalue 1\n'
                      'VALUE bk2 2 7\nvalue 2\nEND\n', 'batch-get output')
        check_eq(err, 'NOT_FOUND bk-missing\n', 'batch-get stderr')
        out, _ = cli.ok('batch-get', 'bk2', 'bk0')
        check_eq(out, 'VALUE bk2 2 7\nvalue 2\nVALUE bk0 0 7\nvalue 0\nEND\n',
                 'batch-get all hits')
        # 40 keys of 60 bytes: several 1400-byte datagrams of GETKQs.
        keys = ['batch-%02d-' % i + 'k' * 51 for i in range(40)]
        for k in keys[::3]:
            cli.ok('set', k, 'v-' + k[:8])
        before = client.stats()
        rc, out, err = cli('batch-get', *keys)
        after = client.stats()
        check(rc == 1, 'batch-get of 40 keys with misses: rc %d' % rc)
        want = ''.join('VALUE %s 0 10\nv-%s\n' % (k, k[:8]) for k in keys[::3]) + 'END\n'
        check_eq(out, want, 'batch-get of 40 keys')
        check_eq(err.count('NOT_FOUND'), 40 - len(keys[::3]), 'NOT_FOUND lines')
        # libkite packs GETKs per partition port: 1472 bytes less the frame,
        # 84 bytes a GETK; plus its CLUSTER_MAP request (and our STAT).
        per = (1472 - 8) // (24 + len(keys[0]))
        parts = int(before['kite_partitions']) if 'kite_partitions' in before else 4
        counts = {}
        for k in keys:
            p = kt.key_partition(k.encode(), parts)
            counts[p] = counts.get(p, 0) + 1
        want_dgrams = sum(-(-n // per) for n in counts.values()) + 1
        dgrams = int(after['kite_rx_datagrams']) - int(before['kite_rx_datagrams']) - 1
        check(dgrams == want_dgrams, 'batch-get of 40 x 60-byte keys sent %d datagrams, '
              'expected %d (%d partitions)' % (dgrams, want_dgrams, len(counts)))
    t.case('batch-get', c_batch_get)

    def c_exit_codes():
        rc, out, err = cli('set', 'too-big', 'x' * 1500)
        check(rc == 4 and 'E2BIG' in err, 'value over max-item-size: rc %d err %r' % (rc, err))
        cli.ok(want_rc=2)
        cli.ok('frobnicate', want_rc=2)
        cli.ok('set', 'k', want_rc=2)
        cli.ok('get', 'k', '--flags', '1', want_rc=2)
        cli.ok('set', 'k', 'v', '--bogus', '1', want_rc=2)
        cli.ok('set', 'x' * 251, 'v', want_rc=2)
        cli.ok('get', '', want_rc=2)
        cli.ok('-t', '0', 'noop', want_rc=2)
        cli.ok('-p', '70000', 'noop', want_rc=2)
        # kited serves UDP 11211-11214; 11300 is dropped, so this times out.
        rc, out, err = cli('-p', '11300', '-t', '200', '-r', '1', 'noop')
        check(rc == 3 and 'no reply' in err and '2 attempt' in err,
              'timeout: rc %d err %r' % (rc, err))
    t.case('exit codes 2, 3, 4', c_exit_codes)

    def c_env():
        env = {'KITE_SERVER': '%s:11211' % topo.kited_ip}
        cli.ok('set', 'envkey', 'from-env', server=False, env=env)
        out, _ = cli.ok('get', 'envkey', server=False, env=env)
        check_eq(out, 'from-env\n', 'get via KITE_SERVER')
        # -p overrides the port from KITE_SERVER (a partition port of kited).
        env = {'KITE_SERVER': '%s:1' % topo.kited_ip}
        out, _ = cli.ok('-p', '11212', 'get', 'envkey', server=False, env=env)
        check_eq(out, 'from-env\n', 'get via a partition port')
        cli.ok('noop', server=False, env={'KITE_SERVER': 'nonsense'}, want_rc=2)
    t.case('KITE_SERVER and partition ports', c_env)

    def c_flush():
        cli.ok('set', 'fl1', 'x')
        out, _ = cli.ok('flush')
        check_eq(out, 'OK\n', 'flush output')
        cli.ok('get', 'fl1', want_rc=1)
        cli.ok('set', 'fl2', 'x')
        out, _ = cli.ok('flush', '600')
        check_eq(out, 'OK\n', 'delayed flush output')
        out, _ = cli.ok('get', 'fl2')
        check_eq(out, 'x\n', 'item before a delayed flush')
        cli.ok('flush', 'later', want_rc=2)
    t.case('flush', c_flush)

    def c_topology():
        out, _ = cli.ok('topology')
        check(re.search(r'^partitions 4 workers 1 base_port 11211 hash xxh64 seed 0$', out,
                        re.M) is not None, 'topology header: %r' % out[:200])
        for p in range(4):
            check(re.search(r'^partition %d port %d worker 0$' % (p, 11211 + p), out, re.M),
                  'topology lacks partition %d: %r' % (p, out))
    t.case('topology', c_topology)

    t.case('kited still running', lambda: check(kited.alive(), 'kited exited:\n' + kited.tail()))

    def c_final_stats():
        # The stats line at stop divides by the time since the last one (here:
        # since start), so rate x that time gives back the requests served.
        out, _ = cli.ok('stats')
        m = re.search(r'^STAT \S*rx_requests (\d+)$', out, re.M)
        check(m is not None, 'no rx_requests in STAT:\n%s' % out[:1500])
        served = int(m.group(1)) + 1          # and the STAT request itself
        t_stop = time.monotonic()
        check_eq(kited.stop(signal.SIGTERM), 0, 'kited exit status after SIGTERM')
        t_done = time.monotonic()
        lines = [ln for ln in kited.lines if 'kited: stats:' in ln]
        check(lines, 'no stats line at stop:\n' + kited.tail())
        rate = float(re.search(r'stats: (\d+) req/s', lines[-1]).group(1))
        most = served / (t_stop - t_ready) * 1.05 + 1
        least = served / (t_done - t_launch) * 0.95 - 1
        check(least <= rate <= most, 'stats line at stop says %.0f req/s; %d requests in '
              '%.1f..%.1f s give %.0f..%.0f' % (rate, served, t_stop - t_ready,
                                               t_done - t_launch, least, most))
    t.case('the stats line at stop tells the real rate', c_final_stats)


if __name__ == '__main__':
    kt.run('tour', body)
