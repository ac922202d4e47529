#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The stampede test: many clients hammer one hot key that expires every
--ttl seconds and whose recompute takes --recompute-ms; how many recomputes
does each expiry cause, and what latency do the clients see meanwhile?

  * unprotected (classic cache-aside): get; on a miss recompute, then set.
    Every client that misses in the same window recomputes.
  * protected (the meta commands' win tokens): mg <key> v N<lease>. A miss
    vivifies an empty item and exactly one client gets W: it recomputes and
    stores with ms; the others get Z (someone is on it) and retry after a
    short wait, then read the new value.
  * recache: the same with R<ttl - 1>: one client wins ahead of expiry and
    recomputes while the others keep reading the value, so the key never
    expires and nobody waits.

Counted: recomputes (clients that ran the 50 ms "database" call), grouped
into expiry windows (recomputes that start within 0.5 s of each other
belong to one expiry, windows are a second or more apart); per mode the recomputes per window (target with
protection: exactly 1 in every window) and the p50/p99 of the clients'
time to a value. Clients are threads with a socket each, in the test's
namespace, against kited on a veth (and, with --memcached, the same against
memcached -U 1.6.18 on loopback, which has the same meta commands).

The default suite runs a short version (16 clients, 3 s a mode) and fails
unless every protected and recache window had exactly one recompute and
the unprotected run had more. The figure:

  python3 tests/integration/test_stampede.py --kited build/app/kited/kited \\
      --memcached /usr/bin/memcached --clients 64 --seconds 10 --out docs/images
"""

import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402

KEY = b'hot:stampede'
VALUE = b'v' * 100


class Client:
    """One UDP client: one outstanding request, its own request ids."""

    def __init__(self, sock, addr, seed):
        self.s = sock
        self.s.connect(addr)
        self.s.settimeout(0.5)
        self.rid = seed & 0xffff

    def ask(self, body):
        self.rid = (self.rid + 1) & 0xffff
        self.s.send(struct.pack('>HHHH', self.rid, 0, 1, 0) + body)
        out = b''
        while True:
            try:
                d = self.s.recv(70000)
            except socket.timeout:
                return None
            if len(d) < 8 or struct.unpack('>H', d[:2])[0] != self.rid:
                continue
            out += d[8:]
            if out.endswith(b'\r\n') and (not out.startswith(b'VA') and
                                          not out.startswith(b'VALUE') or
                                          out.endswith(b'END\r\n') or
                                          out.count(b'\r\n') >= 2):
                return out


def run_mode(make_socket, addr, mode, clients, seconds, ttl, recompute_s, log):
    recomputes = []  # start times
    lat = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    errors = []

    def recompute():
        with lock:
            recomputes.append(time.monotonic())
        time.sleep(recompute_s)  # the database

    def worker(i):
        c = Client(make_socket(), addr, i * 977)
        my_lat = []
        try:
            while time.monotonic() < stop:
                t0 = time.monotonic()
                if mode == 'unprotected':
                    r = c.ask(b'get ' + KEY + b'\r\n')
                    if r is None:
                        continue
                    if r.startswith(b'VALUE'):
                        my_lat.append((t0, time.monotonic() - t0))
                        continue
                    recompute()
                    c.ask(b'set %s 0 %d %d\r\n%s\r\n' % (KEY, ttl, len(VALUE), VALUE))
                    my_lat.append((t0, time.monotonic() - t0))
                    continue
                # protected: vivify on miss with a lease of a few recomputes;
                # recache: also win ahead of expiry (R) while the others read on.
                lease = max(2, int(recompute_s * 10) + 1)
                extra = b' R%d' % (ttl - 1) if mode == 'recache' else b''
                while time.monotonic() < stop:
                    r = c.ask(b'mg %s v N%d%s\r\n' % (KEY, lease, extra))
                    if r is None:
                        continue
                    head = r.split(b'\r\n', 1)[0].split(b' ')
                    if head[0] != b'VA':
                        errors.append(r[:80])
                        break
                    flags = head[2:]
                    if b'W' in flags:
                        recompute()
                        c.ask(b'ms %s %d T%d\r\n%s\r\n' % (KEY, len(VALUE), ttl, VALUE))
                        break
                    if int(head[1]) > 0:
                        break  # a value (maybe stale-while-revalidate: X Z)
                    time.sleep(0.005)  # Z on the empty item: the winner is on it
                my_lat.append((t0, time.monotonic() - t0))
        finally:
            c.s.close()
            with lock:
                lat.extend(my_lat)

    th = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    # Group recomputes into expiry windows.
    recomputes.sort()
    windows = []
    for t in recomputes:
        # An item set with TTL n lives n-1..n s (second clocks): windows are
        # at least a second apart, the recomputes of one expiry 50 ms.
        if windows and t - windows[-1][0] < 0.5:
            windows[-1].append(t)
        else:
            windows.append([t])
    per = [len(w) for w in windows]
    # During the stampede: requests that started within one recompute (and a
    # little) of an expiry's first recompute.
    span = recompute_s + 0.05
    during = sorted(d for t0, d in lat if any(w[0] - 0.01 <= t0 <= w[0] + span for w in windows))
    lat = sorted(d for _, d in lat)
    res = {
        'mode': mode, 'clients': clients, 'seconds': seconds, 'ttl': ttl,
        'recompute_ms': recompute_s * 1000, 'recomputes': len(recomputes),
        'windows': len(windows), 'per_window': per,
        'per_window_max': max(per) if per else 0,
        'per_window_mean': statistics.mean(per) if per else 0,
        'requests': len(lat),
        'p50_ms': 1000 * lat[len(lat) // 2] if lat else None,
        'p99_ms': 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
        'during': len(during),
        'p99_during_ms': 1000 * during[min(len(during) - 1, int(len(during) * 0.99))]
        if during else None,
        'p50_during_ms': 1000 * during[len(during) // 2] if during else None,
        'errors': [e.decode(errors='replace') for e in errors[:5]],
    }
    log('%-12s %3d clients: %d recomputes in %d expiry windows (max %d, mean %.1f per '
        'window); %d values, p50 %.1f ms, p99 %.1f ms; during expiries %d, p50 %.1f ms, '
        'p99 %.1f ms' % (
            mode, clients, res['recomputes'], res['windows'], res['per_window_max'],
            res['per_window_mean'], res['requests'], res['p50_ms'] or 0, res['p99_ms'] or 0,
            res['during'], res['p50_during_ms'] or 0, res['p99_during_ms'] or 0))
    return res


def figure(results, out):
    dat = os.path.join(out, 'stampede.dat')
    with open(dat, 'w') as f:
        f.write('# label recomputes_per_expiry_mean max p99_during_ms p99_ms\n')
        short = {'unprotected': 'none', 'protected': 'N W Z', 'recache': 'N + R'}
        for r in results:
            f.write('"%s\\n%s" %.2f %d %.1f %.1f\n' % (
                r['server'], short[r['mode']], r['per_window_mean'], r['per_window_max'],
                r['p99_during_ms'] or 0, r['p99_ms'] or 0))
    gp = os.path.join(out, 'stampede.gp')
    c = results[0]['clients']
    with open(gp, 'w') as f:
        f.write('set terminal pngcairo size 1200,500 noenhanced font ",10"\n'
                'set output "%s"\n' % os.path.join(out, 'stampede.png') +
                'set multiplot layout 1,2 title "%d clients hammer one key (TTL %d s, recompute '
                '%d ms)"\n' % (c, results[0]['ttl'], results[0]['recompute_ms']) +
                'set style fill solid 0.7 border -1\nset boxwidth 0.6\nset grid ytics\n'
                'set bmargin 4\nset xtics font ",9"\n'
                'set title "recomputes per expiry (mean; max as label)"\nset yrange [0:*]\n'
                'plot "%s" using 0:2:xtic(1) with boxes notitle, "" using 0:2:3 with labels '
                'offset 0,1 notitle\n' % dat +
                'set title "clients\' p99 time to a value during expiries (ms)"\n'
                'plot "%s" using 0:4:xtic(1) with boxes lc rgb "#d62728" notitle\n' % dat +
                'unset multiplot\n')
    subprocess.run(['gnuplot', gp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def body(t):
    t.need_root()
    t.need_file(t.args.kited, 'kited')
    a = t.args
    results = []
    servers = []
    topo = kt.Topology(t).up()
    kd = kt.Kited(t, topo).start()
    servers.append(('kited', topo.socket, (topo.kited_ip, 11211)))
    mc = None
    if a.memcached and os.access(a.memcached, os.X_OK):
        mc = kt.Memcached(t, ['-t', '4']).start()

        def lo_socket():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(('127.0.0.1', 0))
            return s
        servers.append(('memcached', lo_socket, ('127.0.0.1', mc.port)))

    for name, mk, addr in servers:
        for mode in ('unprotected', 'protected', 'recache'):
            def case(name=name, mk=mk, addr=addr, mode=mode):
                # Each mode starts with the key absent: the first window is an expiry too.
                c = Client(mk(), addr, 1)
                c.ask(b'delete ' + KEY + b'\r\n')
                c.s.close()
                r = run_mode(mk, addr, mode, a.clients, a.seconds, a.ttl, a.recompute_ms / 1000.0,
                             t.log)
                r['server'] = name
                results.append(r)
                kt.check(not r['errors'], 'unexpected replies: %s' % r['errors'])
                kt.check(r['windows'] >= 2, 'only %d expiry windows' % r['windows'])
                if mode != 'unprotected':
                    kt.check(r['per_window_max'] == 1,
                             'a protected expiry had %d recomputes: %s' % (
                                 r['per_window_max'], r['per_window']))
                else:
                    kt.check(r['per_window_max'] > 1,
                             'no stampede without protection (%s): the test does not load '
                             'the key enough' % r['per_window'])
            t.case('%s: %s, %d clients' % (name, mode, a.clients), case)
    t.case('kited still running', lambda: kt.check(kd.alive(), 'kited exited:\n' + kd.tail()))
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, 'stampede.json'), 'w') as f:
            json.dump(results, f, indent=1)
        if results:
            figure(results, a.out)
            t.log('wrote %s' % os.path.join(a.out, 'stampede.png'))


def extra(ap):
    ap.add_argument('--clients', type=int, default=16)
    ap.add_argument('--seconds', type=float, default=4.0, help='per mode')
    ap.add_argument('--ttl', type=int, default=3, help='the key\'s TTL, seconds (>= 3)')
    ap.add_argument('--recompute-ms', type=float, default=50.0)
    ap.add_argument('--out', help='write stampede.json and stampede.png here')


if __name__ == '__main__':
    kt.run('stampede', body, extra)
