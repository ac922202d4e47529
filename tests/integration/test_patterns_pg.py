#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""libkite's cache patterns in front of a real PostgreSQL (a private one,
tools/kitepg.py) and a real kited, with tools/kite-invalidator following
the database's changes through its outbox table:

  * a change made while no worker runs waits in the outbox and lands when
    one starts (durable; NOTIFY is only the wake-up);
  * the invalidation latency, a row's commit to its key marked stale in the
    cache, measured over 100 updates: p99 under 100 ms;
  * a load that read the old row before the change stores it after the
    invalidation: it lands stale, and no read after the invalidation
    returns the old value (loaders store with C<cas> I, docs/patterns.rst);
  * 10 % of the datagrams to the node lost (tc netem): every invalidation
    still lands (retries) and every key reads its latest row;
  * tools/stampede-bench --quick: 64 clients in 8 processes, one hot key, a
    50 ms query: exactly one query per expiry with the server's tokens and
    with stale-while-revalidate.

The cache clients are the `kite` Python package (lib/client/python) on this
build's libkite, inside the test's network namespace.
Run: python3 test_patterns_pg.py --kited PATH --cli PATH [--build DIR]
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, 'tools'))
import kitepg  # noqa: E402

kitepg.use_debian_python()
import kitetest as kt  # noqa: E402
from kitetest import check  # noqa: E402

INVALIDATOR = os.path.join(ROOT, 'tools', 'kite-invalidator')


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))] if xs else 0.0


class Loss:
    """10 % of the datagrams between the namespace and kited lost, each way:
    tc netem where the kernel has it, else nftables (numgen random)."""

    def __init__(self, topo):
        self.topo = topo
        self.how = None

    def _ns(self, *cmd, check_rc=True):
        return kt.sh([self.topo.ip_tool, 'netns', 'exec', self.topo.ns] + list(cmd),
                     check_rc=check_rc)

    def on(self):
        try:
            self._ns('tc', 'qdisc', 'add', 'dev', self.topo.ns_if, 'root', 'netem', 'loss',
                     '10%')
            self.how = 'netem'
            return
        except Exception:
            pass
        ip = self.topo.kited_ip
        self._ns('nft', 'add', 'table', 'inet', 'kiteloss')
        self._ns('nft', 'add', 'chain', 'inet', 'kiteloss', 'out',
                 '{ type filter hook output priority 0; }')
        self._ns('nft', 'add', 'chain', 'inet', 'kiteloss', 'in',
                 '{ type filter hook input priority 0; }')
        self._ns('nft', 'add', 'rule', 'inet', 'kiteloss', 'out', 'ip', 'daddr', ip, 'meta', 'l4proto', 'udp',
                 'numgen', 'random', 'mod', '10', '==', '0', 'counter', 'drop')
        self._ns('nft', 'add', 'rule', 'inet', 'kiteloss', 'in', 'ip', 'saddr', ip, 'meta', 'l4proto', 'udp',
                 'numgen', 'random', 'mod', '10', '==', '0', 'counter', 'drop')
        self.how = 'nftables'

    def dropped(self):
        if self.how == 'netem':
            out = self._ns('tc', '-s', 'qdisc', 'show', 'dev', self.topo.ns_if).stdout.decode()
            m = re.search(r'dropped (\d+)', out)
            return int(m.group(1)) if m else -1
        out = self._ns('nft', 'list', 'table', 'inet', 'kiteloss').stdout.decode()
        return sum(int(x) for x in re.findall(r'packets (\d+)', out))

    def off(self):
        if self.how == 'netem':
            self._ns('tc', 'qdisc', 'del', 'dev', self.topo.ns_if, 'root', check_rc=False)
        elif self.how == 'nftables':
            self._ns('nft', 'delete', 'table', 'inet', 'kiteloss', check_rc=False)
        self.how = None


def body(t):
    t.need_root()
    t.need_file(t.args.kited, 'kited')
    build = kt.build_dir(t.args)
    libkite = kt.need_libkite(t)
    os.environ['KITE_LIBKITE'] = libkite
    try:
        import psycopg2  # noqa: F401
        pg = kitepg.PrivatePostgres(port=56000 + t.pid % 1000)
    except ImportError:
        raise kt.Skip('python3-psycopg2 is not installed')
    except kitepg.PostgresMissing as e:
        raise kt.Skip(str(e))
    sys.path.insert(0, os.path.join(ROOT, 'lib', 'client', 'python'))
    import kite

    shm_before = set(glob.glob('/dev/shm/PostgreSQL.*'))
    pg.start()
    t.on_cleanup(pg.stop)
    topo = kt.Topology(t).up()
    kd = kt.Kited(t, topo).start()
    db = pg.connect(autocommit=True)
    with db.cursor() as cur:
        cur.execute('CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL)')
        cur.execute('INSERT INTO items SELECT g, %s || g FROM generate_series(1, 500) g',
                    ('v1-',))
    inv_args = ['--dsn', pg.dsn(), '--seeds', topo.kited_ip, '--stats-interval', '0']
    p = subprocess.run([topo.ip_tool, 'netns', 'exec', topo.ns, sys.executable, INVALIDATOR] +
                       inv_args + ['--setup-only'], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, 'kite-invalidator --setup-only: %s' % p.stderr[-2000:])
    with db.cursor() as cur:
        cur.execute("CREATE TRIGGER items_kite AFTER INSERT OR UPDATE OR DELETE ON items "
                    "FOR EACH ROW EXECUTE FUNCTION kite_outbox_trigger('item:', 'id')")

    reader = pg.connect(autocommit=True)
    reader_lock = threading.Lock()

    def load(key, delay=0.0):
        with reader_lock, reader.cursor() as cur:
            cur.execute('SELECT v FROM items WHERE id = %s', (int(key.split(b':')[1]),))
            row = cur.fetchone()
        if delay:
            time.sleep(delay)
        return None if row is None else row[0].encode()

    def update(i, v):
        with db.cursor() as cur:
            cur.execute('UPDATE items SET v = %s WHERE id = %s', (v, i))

    def outbox_rows():
        with db.cursor() as cur:
            cur.execute('SELECT count(*) FROM kite_outbox')
            return cur.fetchone()[0]

    # The cache's sockets in the namespace: every call below runs in it.
    ns = kt.InNetns(topo.ns)
    ns.__enter__()
    t.on_cleanup(lambda: ns.__exit__(None, None, None))
    cache = kite.Cache(topo.kited_ip, ttl=600, stale=False, wait_ms=3000)
    t.on_cleanup(cache.close)
    peek = kite.Client(topo.kited_ip)
    t.on_cleanup(peek.close)

    def invalidator_once():
        p = subprocess.run([sys.executable, INVALIDATOR] + inv_args + ['--once'],
                           capture_output=True, text=True, timeout=120)
        check(p.returncode == 0, 'kite-invalidator --once: %s' % p.stderr[-2000:])
        return p.stdout

    def c_durable():
        check(cache.get('item:1', load) == b'v1-1', 'first read')
        update(1, 'v2-1')
        # No worker runs: the cache still has the old row, the outbox has the key.
        check(cache.get('item:1', load) == b'v1-1', 'a cache is stale until invalidated')
        check(outbox_rows() == 1, 'the change is in the outbox: %d rows' % outbox_rows())
        out = invalidator_once()
        check(outbox_rows() == 0, 'the outbox is empty after the worker ran')
        check(cache.get('item:1', load) == b'v2-1', 'after the invalidation: the new row')
        t.log('worker: ' + out.strip().splitlines()[-1])
    t.case('a change made while no worker runs lands when one starts (outbox)', c_durable)

    worker = subprocess.Popen([sys.executable, INVALIDATOR] + inv_args, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    t.on_cleanup(lambda: worker.poll() is None and (worker.terminate(), worker.wait(10)))

    def c_latency():
        # Measured as a reader sees it: from the commit until a cache read returns the new
        # row (the invalidation marked it stale, the next read won the reload).
        lat = []
        for i in range(2, 102):
            check(cache.get('item:%d' % i, load) == b'v1-%d' % i, 'read of item %d' % i)
        time.sleep(0.5)
        for i in range(2, 102):
            t0 = time.monotonic()
            update(i, 'v2-%d' % i)
            end = t0 + 5.0
            while time.monotonic() < end:
                v = cache.get('item:%d' % i, load)
                if v == b'v2-%d' % i:
                    break
                time.sleep(0.001)
            lat.append((time.monotonic() - t0) * 1000.0)
            check(v == b'v2-%d' % i, 'item %d still old 5 s after its update' % i)
        p50, p99 = pct(lat, 50), pct(lat, 99)
        t.log('FIGURE: invalidation latency over 100 updates (commit to the first cache read '
              'of the new row): p50 %.1f ms, p99 %.1f ms, max %.1f ms' % (p50, p99, max(lat)))
        check(p99 < 100.0, 'invalidation p99 %.1f ms (target < 100 ms)' % p99)
    t.case('invalidation latency: commit to stale in the cache, p99 < 100 ms', c_latency)

    def c_late_fill():
        # A load reads the old row, the row changes and is invalidated, then the load stores.
        got = {}

        def slow_reader():
            got['v'] = cache.get('item:200', lambda key: load(key, delay=0.5))
        th = threading.Thread(target=slow_reader)
        th.start()
        time.sleep(0.15)  # it has read v1 and sleeps
        update(200, 'v2-200')
        end = time.monotonic() + 5
        while outbox_rows() and time.monotonic() < end:
            time.sleep(0.01)
        check(outbox_rows() == 0, 'the invalidation did not land')
        th.join()
        check(got['v'] == b'v1-200', 'the slow load returns what it read: %r' % got.get('v'))
        # The late store landed stale: the next reader (here by hand) is told X and wins the
        # reload (W); it stores the new row with the CAS it was given.
        r = peek.meta('mg', 'item:200', 'v c')
        check(r.value == b'v1-200' and r.stale and r.win, 'the late fill is marked stale: %r' % r)
        peek.meta('ms', 'item:200', 'T600 F%d C%d I' % (0x40000000, r.cas), load(b'item:200'))
        check(cache.get('item:200', load) == b'v2-200', 'a read after the invalidation')
    t.case('a load overtaken by a change lands stale; reads after it get the new row',
           c_late_fill)

    def c_loss():
        for i in range(300, 400):
            cache.get('item:%d' % i, load)
        loss = Loss(topo)
        loss.on()
        try:
            for i in range(300, 400):
                update(i, 'v3-%d' % i)
            end = time.monotonic() + 30
            while outbox_rows() and time.monotonic() < end:
                time.sleep(0.05)
            check(outbox_rows() == 0, '%d invalidations did not land' % outbox_rows())
            dropped, how = loss.dropped(), loss.how
        finally:
            loss.off()
        t.log('%s dropped %s datagrams' % (how, dropped))
        check(dropped != 0, 'nothing was dropped: the loss did not apply')
        wrong = [i for i in range(300, 400) if cache.get('item:%d' % i, load) != b'v3-%d' % i]
        check(not wrong, 'keys reading an old row after the invalidations: %r' % wrong[:5])
    t.case('10 % loss: every invalidation lands (retries), every key reads its latest row',
           c_loss)

    def c_stop():
        worker.terminate()
        out, _ = worker.communicate(timeout=15)
        t.log('worker: ' + (out.strip().splitlines() or ['?'])[-1])
        check(worker.returncode == 0, 'the worker exited %s' % worker.returncode)
        st = cache.stats()
        t.log('cache: %s' % {k: v for k, v in st.items() if v})
    t.case('the worker stops cleanly on SIGTERM', c_stop)
    t.case('kited still running', lambda: check(kd.alive(), 'kited exited:\n' + kd.tail()))

    def c_stampede():
        # tools/stampede-bench --quick: its own PostgreSQL and kited, 64 clients in 8
        # processes, one hot key, a 50 ms query; the line it ends with is checked.
        ns.__exit__(None, None, None)  # the bench makes its namespace from the host's
        try:
            out = tempfile.mkdtemp(prefix='kite-sb-')
            t.on_cleanup(lambda: shutil.rmtree(out, ignore_errors=True))
            p = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'stampede-bench'),
                                '--quick', '--build', build, '--out', out],
                               capture_output=True, text=True, timeout=300)
        finally:
            ns.__enter__()
        line = (p.stdout.strip().splitlines() or [''])[-1]
        t.log('stampede-bench --quick: ' + line)
        check(p.returncode == 0 and line.startswith('db queries per expiry:'),
              'stampede-bench --quick: exit %d\n%s\n%s' % (p.returncode, p.stdout[-3000:],
                                                           p.stderr[-2000:]))
        got = dict(x.split('=') for x in line.split(':', 1)[1].split())
        check(float(got['tokens']) <= 1.05 and float(got['swr']) <= 1.05,
              'with the server\'s tokens: more than one query per expiry: %s' % line)
        check(float(got['none']) >= 5 * float(got['tokens']),
              'no stampede without protection (the test does not load the key enough): %s'
              % line)
    t.case('stampede-bench --quick: one database query per expiry with tokens and swr',
           c_stampede)

    def c_pg_gone():
        db.close()
        pg.stop()
        left = sorted(set(glob.glob('/dev/shm/PostgreSQL.*')) - shm_before)
        check(not left, 'PostgreSQL left shared memory behind after its stop: %s' % left)
    t.case('PostgreSQL stops cleanly: no shared memory segment left in /dev/shm', c_pg_gone)


def extra(ap):
    ap.add_argument('--build', help='the build folder (default: the one kited comes from)')


if __name__ == '__main__':
    kt.run('patterns_pg', body, extra)
