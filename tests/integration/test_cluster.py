#!/usr/bin/env python3
"""The cluster, end to end: a real etcd 3.4, kited nodes in network
namespaces on a data bridge and a management bridge (as tools/kite-up
--nodes builds them), and libkite (build/lib/libkite.so, through ctypes)
as the client.

Cases: start and convergence; routing and NOT_MY_VBUCKET; a join with
its hit ratio (warm-up read-through) against a client without warm-up;
a graceful leave; kill -9 of a node (convergence time); a node stopped
past its lease (fenced writes, then no stale read after it rejoins);
etcd stopped (serving goes on, writes fenced) and restarted (converges);
a duplicate node-id refused; a static members file without etcd, with
a SIGHUP reload.

Figures (convergence times, hit ratios) are printed; on a 2-CPU machine
the convergence time is reported, not gated (the target is lease TTL +
1 s). Network: bridges kcd<pid>/kcm<pid>, 198.18.X.0/24 (data) and
198.19.X.0/24 (management), X = 100 + pid % 100; namespaces kc<pid>n<i>.

Run: python3 test_cluster.py --kited PATH --cli PATH --build BUILD_DIR
"""

import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402
import kitelib  # noqa: E402
from kitetest import check, check_eq  # noqa: E402

LEASE_TTL = 2
WARMUP = 30
LEAVE_GRACE = 3
KEYS = 1500
ADMIN_PORT = 11280  # each node's admin endpoint, on its management address
UNTRUSTED_HOST = 200  # 198.18.x.200: outside the nodes' trusted 198.18.x.0/26


def cluster_map_epoch(body):
    """(epoch, members) of a CLUSTER_MAP body (docs/protocol.rst)."""
    _ver, _copies, n, _vb, epoch = struct.unpack('>BBHIQ', body[:16])
    return epoch, n


class Net:
    """Bridges, etcd and node namespaces of one test run."""

    def __init__(self, t):
        self.t = t
        self.ip_tool = t.need_tool('ip')
        pid = t.pid
        self.x = 100 + pid % 100
        self.dbr = 'kcd%d' % pid
        self.mbr = 'kcm%d' % pid
        self.host_ip = '198.18.%d.1' % self.x
        self.mgmt_ip = '198.19.%d.1' % self.x
        self.etcd_url = 'http://%s:2379' % self.mgmt_ip
        self.nodes = {}
        self.etcd = None
        self.etcd_dir = None

    def ip(self, *a, check_rc=True):
        return kt.sh([self.ip_tool] + list(a), check_rc=check_rc)

    def up(self):
        for br in (self.dbr, self.mbr):
            self.ip('link', 'del', br, check_rc=False)
        self.t.on_cleanup(self.down)
        for k, (br, addr) in enumerate(((self.dbr, self.host_ip), (self.mbr, self.mgmt_ip))):
            # A fixed address: a bridge otherwise takes its lowest port's, and
            # changes it as nodes join, which strands the ARP caches of the
            # nodes already there (their etcd connections time out).
            mac = '02:6b:63:%02x:%02x:%02x' % ((self.t.pid >> 8) & 0xff, self.t.pid & 0xff, k)
            self.ip('link', 'add', br, 'address', mac, 'type', 'bridge')
            kt.write_sysctl('/proc/sys/net/ipv6/conf/%s/disable_ipv6' % br, 1)
            self.ip('addr', 'add', addr + '/24', 'dev', br)
            self.ip('link', 'set', br, 'up')
        # Host sockets would leave UDP checksums to an offload a bridge never does.
        kt.sh([self.t.need_tool('ethtool'), '-K', self.dbr, 'tx', 'off'], check_rc=False)

    def down(self):
        for i in list(self.nodes):
            self.del_ns(i)
        for br in (self.dbr, self.mbr):
            self.ip('link', 'del', br, check_rc=False)
        if self.etcd_dir:
            shutil.rmtree(self.etcd_dir, ignore_errors=True)

    def ns(self, i):
        return 'kc%dn%d' % (self.t.pid, i)

    def data_ip(self, i):
        return '198.18.%d.%d' % (self.x, 10 + i)

    def add_ns(self, i):
        ns = self.ns(i)
        if os.path.exists('/run/netns/' + ns):
            self.ip('netns', 'del', ns, check_rc=False)
        self.ip('netns', 'add', ns)
        self.nodes[i] = ns
        self.ip('-n', ns, 'link', 'set', 'lo', 'up')
        for kind, br in (('d', self.dbr), ('m', self.mbr)):
            host = 'k%s%dn%d' % (kind, self.t.pid, i)
            self.ip('link', 'del', host, check_rc=False)
            self.ip('link', 'add', host, 'type', 'veth', 'peer', 'name',
                    'data' if kind == 'd' else 'mgmt', 'netns', ns)
            kt.write_sysctl('/proc/sys/net/ipv6/conf/%s/disable_ipv6' % host, 1)
            self.ip('link', 'set', host, 'master', br, 'up')
        kt.sh([self.ip_tool, 'netns', 'exec', ns, 'sysctl', '-qw',
               'net.ipv6.conf.data.disable_ipv6=1'], check_rc=False)
        self.ip('-n', ns, 'link', 'set', 'data', 'up')
        self.ip('-n', ns, 'addr', 'add', '198.19.%d.%d/24' % (self.x, 10 + i), 'dev', 'mgmt')
        self.ip('-n', ns, 'link', 'set', 'mgmt', 'up')
        return ns

    def del_ns(self, i):
        ns = self.nodes.pop(i, None)
        if ns:
            self.ip('netns', 'del', ns, check_rc=False)
            for kind in 'dm':
                self.ip('link', 'del', 'k%s%dn%d' % (kind, self.t.pid, i), check_rc=False)

    def start_etcd(self, fresh=True):
        etcd = self.t.need_tool('etcd')
        if fresh or self.etcd_dir is None:
            if self.etcd_dir:
                shutil.rmtree(self.etcd_dir, ignore_errors=True)
            self.etcd_dir = tempfile.mkdtemp(prefix='kite-etcd-')
        peer = 'http://%s:2380' % self.mgmt_ip
        argv = [etcd, '--name', 'kt', '--data-dir', self.etcd_dir,
                '--listen-client-urls', self.etcd_url, '--advertise-client-urls', self.etcd_url,
                '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
                '--initial-cluster', 'kt=' + peer]
        self.etcd = kt.Process(self.t, 'etcd', argv).start()
        end = time.monotonic() + 20
        while time.monotonic() < end:
            try:
                s = socket.create_connection((self.mgmt_ip, 2379), timeout=0.5)
                s.close()
                return
            except OSError:
                time.sleep(0.2)
        raise kt.SetupError('etcd does not listen on %s' % self.etcd_url)


class Node(kt.Process):
    def __init__(self, t, net, i, mode='etcd', extra=(), workers=1, trusted=kt.TEST_TRUSTED):
        """workers > 1: that many worker lcores (--lcores), one af_packet
        queue pair each (--workers). trusted: the sources the node does not
        bound (the suite's whole range by default)."""
        self.net = net
        self.i = i
        self.prefix = 'kc%dn%d' % (t.pid, i)
        ns = net.add_ns(i)
        lcores = ['-l', '0'] if workers == 1 else ['--lcores=' + kt.lcore_map(workers)]
        argv = [t.ip_tool, 'netns', 'exec', ns, t.need_file(t.args.kited, 'kited')] + lcores + [
                '--no-huge', '-m', '512', '--no-pci', '--file-prefix', self.prefix,
                '--vdev=net_af_packet0,iface=data,qpairs=%d,framesz=32768,blocksz=32768'
                % workers, '--',
                '--profile', 'af_packet', '--ip', net.data_ip(i), '--netmask', '255.255.255.0',
                '--idle', 'shared', '--idle-sleep-us', '50', '--stats-interval', '0', '--memory', '32M',
                '--cluster', mode, '--node-id', 'n%d' % i, '--cluster-name', 'kt%d' % t.pid,
                '--lease-ttl', str(LEASE_TTL), '--warmup', str(WARMUP),
                '--leave-grace', str(LEAVE_GRACE), '--trusted', trusted]
        if mode == 'etcd':
            mgmt = '198.19.%d.%d:%d' % (net.x, 10 + i, ADMIN_PORT)
            argv += ['--etcd', net.etcd_url, '--mgmt-ip', '198.19.%d.%d' % (net.x, 10 + i)]
            # Node 3 listens on every address and says in its record where it is reached.
            argv += (['--admin-listen', '0.0.0.0:%d' % ADMIN_PORT, '--admin-advertise', mgmt]
                     if i == 3 else ['--admin-listen', mgmt])
        if workers != 1:
            argv += ['--workers', str(workers)]
        argv += list(extra)
        super().__init__(t, 'n%d' % i, argv, ready_line='kited: ready')

    def start(self, wait=True):
        kt.dpdk_prefix_cleanup(self.prefix)
        self.t.on_cleanup(lambda: kt.dpdk_prefix_cleanup(self.prefix))
        super().start()
        if wait:
            self.wait_ready(60.0)
        return self

    def client(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((self.net.host_ip, 0))
        return kt.UdpClient(s, (self.net.data_ip(self.i), 11211), self.name)

    def epoch(self):
        """(epoch, members) this node serves, or None."""
        c = self.client()
        try:
            rep = c.request(kt.simple(0xe1, opaque=7), limit=1.0, idle=0.2)
            for r in rep.responses:
                if r.opaque == 7 and r.status == kt.OK:
                    return cluster_map_epoch(r.value)
        finally:
            c.close()
        return None

    def stats(self):
        c = self.client()
        try:
            return c.stats()
        finally:
            c.close()


def converge(nodes, client, want_members, limit=30.0):
    """Seconds until every node and the libkite client serve one epoch with
    want_members members; (secs, epoch). Fails after `limit`."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < limit:
        seen = [n.epoch() for n in nodes]
        client.refresh()
        mi = client.map_info()
        seen.append((mi.epoch, mi.members))
        last = seen
        if all(s is not None and s == seen[0] for s in seen) and seen[0][1] == want_members:
            return time.monotonic() - t0, seen[0][0]
        time.sleep(0.1)
    raise kt.CaseFailure('no convergence on %d members in %.0f s: %r\n%s' % (
        want_members, limit, last,
        '\n'.join('%s:\n%s' % (n.name, n.tail(12)) for n in nodes)))


def load_libkite(t):
    """libkite of the build (--build, or the one kited comes from), or Skip."""
    build = kt.build_dir(t.args)
    try:
        return kitelib.load(build)
    except OSError as e:
        raise kt.Skip('libkite not built: %s' % e)


def log_figures(t, figures):
    for f in figures:
        t.log('FIGURE: ' + f)


def hit_ratio(client, keys):
    hits, errors = client.get_many(keys)
    return len(hits) / len(keys), hits, errors


def body(t):
    t.need_root()
    t.pid = os.getpid()
    t.ip_tool = t.need_tool('ip')
    t.need_tool('etcd')
    lib = load_libkite(t)
    net = Net(t)
    net.up()
    net.start_etcd()
    nodes = {}
    figures = []

    def seeds():
        return ','.join(net.data_ip(i) for i in sorted(nodes))

    # The host and the nodes are trusted, a client at UNTRUSTED_HOST is not (c_untrusted).
    trusted = '198.18.%d.0/26' % net.x
    for i in (1, 2, 3):
        nodes[i] = Node(t, net, i, trusted=trusted).start()
    client = kitelib.Client(lib, seeds(), timeout_ms=300)
    t.on_cleanup(client.close)
    keys = [b'key-%05d' % k for k in range(KEYS)]
    v1 = {k: b'v1-' + k for k in keys}

    def c_start():
        secs, epoch = converge(list(nodes.values()), client, 3)
        figures.append('start: 3 nodes and the client on epoch %d in %.2f s' % (epoch, secs))
        mi = client.map_info()
        check_eq(mi.vbuckets, 65536, 'vbuckets')
    t.case('three nodes register and converge', c_start)

    def c_route():
        res = client.set_many(v1)
        bad = {k: r for k, r in res.items() if r != kitelib.KITE_OK}
        check(not bad, 'sets failed: %d, e.g. %r' % (len(bad), list(bad.items())[:3]))
        ratio, hits, errors = hit_ratio(client, keys)
        check(ratio == 1.0 and not errors, 'read back: %.3f, errors %r' % (ratio, errors))
        check(all(hits[k] == v1[k] for k in keys), 'values differ')
        items = [int(nodes[i].stats()['curr_items']) for i in sorted(nodes)]
        check_eq(sum(items), KEYS, 'items on the nodes (%r)' % items)
        check(min(items) > KEYS / 6, 'keys spread over the nodes: %r' % items)
        # A raw GET to a node that does not own the key: NOT_MY_VBUCKET + epoch.
        epoch = client.map_info().epoch
        wrong = 0
        for k in keys[:60]:
            for i in sorted(nodes):
                c = nodes[i].client()
                rep = c.request(kt.get(k, opaque=3), limit=1.0, idle=0.2)
                c.close()
                r = [x for x in rep.responses if x.opaque == 3]
                if r and r[0].status == 0x07:
                    check_eq(struct.unpack('>Q', r[0].value)[0], epoch, 'epoch in NOT_MY_VBUCKET')
                    wrong += 1
        check_eq(wrong, 60 * 2, 'NOT_MY_VBUCKET answers (each key: 2 of 3 nodes)')
    t.case('routing by the map; NOT_MY_VBUCKET carries the epoch', c_route)

    def c_admin():
        # Each node's admin endpoint on its management address: /cluster is the map the
        # client holds, /readyz says ready, /metrics counts the members.
        epoch = client.map_info().epoch
        for i in sorted(nodes):
            base = 'http://198.19.%d.%d:%d' % (net.x, 10 + i, ADMIN_PORT)
            with urllib.request.urlopen(base + '/cluster', timeout=5) as r:
                j = json.loads(r.read())
            m = j['map']
            check_eq(m['epoch'], epoch, 'node %d: /cluster epoch' % i)
            check_eq(len(m['members']), 3, 'node %d: members' % i)
            check_eq(sum(x['vbuckets_owned'] for x in m['members']), m['vbuckets'],
                     'node %d: every vbucket owned once' % i)
            me = [x for x in m['members'] if x['self']]
            check(len(me) == 1 and me[0]['id'] == 'n%d' % i and m['node_id'] == 'n%d' % i,
                  'node %d: self %r' % (i, me))
            check_eq(me[0]['vbuckets_owned'], m['owned'], 'node %d: owned' % i)
            check_eq(j['fenced'], False, 'node %d: fenced' % i)
            with urllib.request.urlopen(base + '/readyz', timeout=5) as r:
                check_eq(r.read(), b'ready\n', 'node %d: /readyz' % i)
            with urllib.request.urlopen(base + '/metrics', timeout=5) as r:
                text = r.read().decode()
            check('\nkite_cluster_members 3\n' in text, 'node %d: kite_cluster_members' % i)
            check('\nkite_cluster_epoch %d\n' % epoch in text, 'node %d: kite_cluster_epoch' % i)
        # Each member's record names its admin endpoint; /cluster lists them.
        check_eq(sorted(x.get('admin') for x in m['members']),
                 ['198.19.%d.%d:%d' % (net.x, 10 + i, ADMIN_PORT) for i in sorted(nodes)],
                 'members\' admin endpoints in /cluster')

        # kite-cli scrape-config on one member lists every member's endpoint.
        p = subprocess.run([t.need_file(t.args.cli, 'kite-cli'), 'scrape-config',
                            'http://198.19.%d.%d:%d' % (net.x, 10 + sorted(nodes)[0], ADMIN_PORT)],
                           capture_output=True, text=True, timeout=30)
        want = ', '.join("'198.19.%d.%d:%d'" % (net.x, 10 + i, ADMIN_PORT) for i in sorted(nodes))
        check(p.returncode == 0 and 'targets: [%s]' % want in p.stdout,
              'scrape-config of a member: %d %r %r' % (p.returncode, p.stdout, p.stderr))

        def raw(method, url, body=None):
            # One request, no redirect followed: (status, Location, JSON body).
            u = urllib.parse.urlsplit(url)
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
            try:
                conn.request(method, u.path, body=body,
                             headers={'Content-Type': 'application/json'} if body else {})
                r = conn.getresponse()
                return r.status, r.getheader('Location'), json.loads(r.read() or b'null')
            finally:
                conn.close()

        # The JSON API: the owner stores (libkite reads it); another node redirects there
        # (307 keeps the method and the body).
        key = b'api-cluster-key#1'
        qkey = urllib.parse.quote(key.decode(), safe='')
        owner = nodes[sorted(nodes)[client.owner(key)]].i
        owner_base = 'http://198.19.%d.%d:%d' % (net.x, 10 + owner, ADMIN_PORT)
        for i in sorted(nodes):
            url = 'http://198.19.%d.%d:%d/cache/%s' % (net.x, 10 + i, ADMIN_PORT, qkey)
            body = json.dumps({'value': 'via node %d' % i}).encode()
            code, loc, j = raw('PUT', url, body)
            if i == owner:
                check_eq(code, 200, 'PUT to the owner %d' % i)
                continue
            check_eq((code, loc), (307, owner_base + '/cache/' + qkey),
                     'PUT to node %d (owner %d): redirect' % (i, owner))
            check_eq(j.get('location'), loc, 'the Location in the JSON body too')
            code, _, j = raw('PUT', loc, body)
            check_eq(code, 200, 'the PUT repeated where the redirect points')
        hits, errors = client.get_many([key])
        last = sorted(nodes)[-1]  # the last PUT, redirected or not
        check_eq(hits.get(key), b'via node %d' % last, 'libkite reads what the redirected PUT stored')
        # A GET through any node: urllib follows the 307 on its own.
        for i in sorted(nodes):
            url = 'http://198.19.%d.%d:%d/cache/%s' % (net.x, 10 + i, ADMIN_PORT, qkey)
            with urllib.request.urlopen(url, timeout=5) as r:
                check_eq(json.loads(r.read())['value'], 'via node %d' % last,
                         'GET through node %d' % i)
        # batch-get at one node: its own keys answered, the others listed by owner's URL.
        keys = ['api-batch-%d' % k for k in range(12)]
        res = client.set_many(dict((k.encode(), k.upper().encode()) for k in keys))
        check(all(r == 0 for r in res.values()), 'set the batch\'s keys: %r' % res)
        first = 'http://198.19.%d.%d:%d' % (net.x, 10 + sorted(nodes)[0], ADMIN_PORT)
        code, _, j = raw('POST', first + '/cache/batch-get', json.dumps({'keys': keys}).encode())
        check_eq(code, 200, 'batch-get')
        got = dict((k, v['value']) for k, v in j['values'].items())
        for url, ks in j.get('elsewhere', {}).items():
            c2, _, j2 = raw('POST', url, json.dumps({'keys': ks}).encode())
            check(c2 == 200 and not j2.get('elsewhere'), 'batch-get at %s: %d %r' % (url, c2, j2))
            got.update((k, v['value']) for k, v in j2['values'].items())
        check_eq(got, dict((k, k.upper()) for k in keys),
                 'batch-get: own keys, and the rest at the owners it names')
        check(j.get('elsewhere'), 'some keys were another node\'s: %r' % j)
    t.case('admin endpoint per node: /cluster = the map, /readyz, /metrics; the JSON API '
           'stores at the owner, other nodes redirect there (307, batch-get lists owners)',
           c_admin)

    def c_untrusted():
        # A client the nodes bound (as kited's default treats every source): libkite
        # fetches the map with several seeds, one cookie per node, and a win token
        # (mg N) is never handed out in a reply the bound cuts.
        ns = net.add_ns(UNTRUSTED_HOST - 10)
        net.ip('-n', ns, 'addr', 'add', '198.18.%d.%d/24' % (net.x, UNTRUSTED_HOST), 'dev', 'data')
        # The kernel's UDP checksums, not the veth's offload (af_packet sees them unfinished).
        kt.sh([net.ip_tool, 'netns', 'exec', ns, t.need_tool('ethtool'), '-K', 'data', 'tx', 'off'])
        with kt.InNetns(ns):
            uc = kitelib.Client(lib, seeds(), timeout_ms=300)
        t.on_cleanup(uc.close)
        ukeys = [b'untrusted-%03d' % k for k in range(90)]
        res = uc.set_many({k: b'u-' + k for k in ukeys})
        check(all(r == kitelib.KITE_OK for r in res.values()), 'sets: %r' % sorted(
            set(uc.strerror(r) for r in res.values())))
        hits, errors = uc.get_many(ukeys)
        check(len(hits) == len(ukeys) and not errors, 'read back %d of %d, errors %r' % (
            len(hits), len(ukeys), errors))
        st = uc.stats()
        # Cookies received: one per node at least (datagrams sent before the first came back
        # bring their own).
        check(st['cookies'] >= 3, 'cookies received: %r' % st)
        check(st['cookie_retries'] >= 1, 'validated after a cut: %r' % st)
        check_eq(uc.map_info().members, 3, 'members in the map')
        # Fresh clients, each with no cookie yet: one of them wins the key's token.
        wins = 0
        for n in range(4):
            with kt.InNetns(ns):
                fc = kitelib.Client(lib, seeds(), timeout_ms=300)
            try:
                r = fc.meta(kitelib.KITE_META_GET, b'untrusted-lease', b'N30 v c')
                check_eq(r['rc'], kitelib.KITE_OK, 'mg N of a fresh client')
                wins += bool(r['meta_ret'] & kitelib.META_WIN)
            finally:
                fc.close()
        check_eq(wins, 1, 'win tokens handed out to 4 fresh untrusted clients')
        nodes_cut = sum(int(nodes[i].stats().get('kite_guard_bounded', 0)) for i in nodes)
        check(nodes_cut > 0, 'the nodes bounded the untrusted client')
    t.case('an untrusted client: several seeds, cookies from each node, one win token', c_untrusted)

    def c_join():
        cold = kitelib.Client(lib, seeds(), timeout_ms=300, warmup=False)
        t.on_cleanup(cold.close)
        nodes[4] = Node(t, net, 4, trusted=trusted).start()
        secs, epoch = converge(list(nodes.values()), client, 4)
        figures.append('join: 4 nodes and the client on epoch %d in %.2f s' % (epoch, secs))
        owned = int(nodes[4].stats()['kite_cluster_vbuckets_owned'])
        check(abs(owned - 65536 / 4) < 65536 / 4 * 0.06, 'joiner owns %d vbuckets' % owned)
        cold.refresh()
        ratio_cold, _, errors = hit_ratio(cold, keys)
        check(not errors, 'cold client errors %r' % errors)
        ratio, hits, errors = hit_ratio(client, keys)
        check(not errors, 'errors %r' % errors)
        check(all(hits[k] == v1[k] for k in hits), 'a filled value differs')
        ratio2, _, _ = hit_ratio(client, keys)
        figures.append('join: hit ratio during the move %.1f%% with warm-up (libkite), '
                       '%.1f%% for a client without it; after the move %.1f%%'
                       % (100 * ratio, 100 * ratio_cold, 100 * ratio2))
        check(ratio >= 0.95, 'hit ratio during the join %.3f (target: at most 5 points lost)'
              % ratio)
        check(ratio2 == 1.0, 'hit ratio after the join %.3f' % ratio2)
        st = client.stats()
        check(st['fill_hits'] > 0, 'no fill from a previous owner: %r' % st)
        cold.close()
    t.case('join: the new node takes its share, warm-up keeps the hit ratio', c_join)

    def c_leave():
        n4 = nodes.pop(4)
        before = [int(n4.stats()['curr_items'])]
        t0 = time.monotonic()
        os.kill(n4.proc.pid, signal.SIGTERM)
        time.sleep(0.5)
        ratio, hits, errors = hit_ratio(client, keys)
        check(not errors, 'errors during the leave %r' % errors)
        check(all(hits[k] == v1[k] for k in hits), 'a value differs after the leave')
        rc = n4.proc.wait(LEAVE_GRACE + 15)
        took = time.monotonic() - t0
        net.del_ns(4)
        check_eq(rc, 0, 'leaver exit status')
        check(took < LEAVE_GRACE + 6, 'leave took %.1f s' % took)
        secs, epoch = converge(list(nodes.values()), client, 3)
        figures.append('leave: node 4 (%d items) gone in %.1f s; hit ratio during the '
                       'hand-over %.1f%%' % (before[0], took, 100 * ratio))
        check(ratio >= 0.95, 'hit ratio across the leave %.3f' % ratio)
    t.case('graceful leave on SIGTERM hands over and deregisters', c_leave)

    def c_stale():
        # Node 2 stops past its lease: the others take its vbuckets and new
        # writes; when it comes back, nothing it holds from before may be read.
        n2 = nodes[2]
        os.kill(n2.proc.pid, signal.SIGSTOP)
        try:
            others = [nodes[i] for i in sorted(nodes) if i != 2]
            secs, epoch = converge(others, client, 2)
            figures.append('node stopped past its lease: out of the map in %.2f s' % secs)
            v2 = {k: b'v2-' + k for k in keys}
            res = client.set_many(v2)
            bad = [k for k, r in res.items() if r != kitelib.KITE_OK]
            check(not bad, '%d writes failed while node 2 was stopped' % len(bad))
        finally:
            os.kill(n2.proc.pid, signal.SIGCONT)
        secs, epoch = converge(list(nodes.values()), client, 3)
        figures.append('node 2 rejoined after SIGCONT in %.2f s' % secs)
        st = n2.stats()
        check(int(st['kite_cluster_registrations']) >= 2, 'node 2 did not register anew')
        ratio, hits, errors = hit_ratio(client, keys)
        stale = [k for k, v in hits.items() if v != v2[k]]
        figures.append('rejoin: %d stale reads of %d keys (hit ratio %.1f%%)' % (
            len(stale), KEYS, 100 * ratio))
        check(not errors, 'errors after the rejoin %r' % errors)
        check(not stale, '%d stale reads after the rejoin, e.g. %r' % (len(stale), stale[:3]))
        v1.update(v2)
    t.case('0 stale reads after a node rejoins', c_stale)

    def c_kill():
        n3 = nodes.pop(3)
        t0 = time.monotonic()
        os.kill(n3.proc.pid, signal.SIGKILL)
        n3.proc.wait(10)
        secs, epoch = converge(list(nodes.values()), client, 2)
        secs = time.monotonic() - t0
        net.del_ns(3)
        figures.append('kill -9: the survivors and the client converged in %.2f s '
                       '(target lease TTL + 1 s = %d s)' % (secs, LEASE_TTL + 1))
        v3 = {k: b'v3-' + k for k in keys}
        res = client.set_many(v3)
        check(all(r == kitelib.KITE_OK for r in res.values()), 'writes after the kill')
        ratio, hits, errors = hit_ratio(client, keys)
        check(ratio == 1.0 and all(hits[k] == v3[k] for k in keys),
              'read back after the kill: %.3f' % ratio)
        v1.update(v3)
    t.case('kill -9 of a node: the map converges without it', c_kill)

    def c_etcd():
        # etcd stops: reads go on, writes are fenced (strict); it comes back: writes resume.
        net.etcd.stop(signal.SIGTERM)
        time.sleep(LEASE_TTL + 1)
        ratio, hits, errors = hit_ratio(client, keys[:300])
        check(ratio == 1.0, 'reads with etcd down: %.3f, errors %r' % (ratio, errors))
        res = client.exec(kitelib.KITE_SET, [(keys[0], b'during')])
        check_eq(res[0][0], 9, 'a write with etcd down ends with KITE_TMPFAIL')
        fenced = [int(nodes[i].stats()['kite_cluster_fenced']) for i in sorted(nodes)]
        check_eq(fenced, [1] * len(nodes), 'fenced nodes')
        t0 = time.monotonic()
        net.start_etcd(fresh=False)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if all(int(nodes[i].stats()['kite_cluster_fenced']) == 0 for i in sorted(nodes)):
                break
            time.sleep(0.2)
        secs, epoch = converge(list(nodes.values()), client, len(nodes))
        figures.append('etcd restarted: writes accepted again after %.2f s' % (
            time.monotonic() - t0))
        res = client.set_many({keys[0]: b'after'})
        check_eq(res[keys[0]], kitelib.KITE_OK, 'a write after etcd is back')
    t.case('etcd down: reads served, writes fenced; back: converges', c_etcd)

    def c_duplicate():
        dup = Node(t, net, 9, extra=('--node-id', 'n1'))
        dup.start(wait=False)
        rc = dup.proc.wait(30)
        net.del_ns(9)
        out = '\n'.join(dup.lines)
        check(rc != 0 and 'already registered' in out,
              'a second n1: rc %r, output %s' % (rc, out[-400:]))
    t.case('a node-id that is already registered is refused', c_duplicate)

    def c_static():
        for i in sorted(nodes):
            nodes.pop(i).stop(signal.SIGTERM, grace=LEAVE_GRACE + 10)
            net.del_ns(i)
        client.close()
        path = os.path.join(tempfile.mkdtemp(prefix='kite-members-'), 'members')
        t.on_cleanup(lambda: shutil.rmtree(os.path.dirname(path), ignore_errors=True))

        def write(epoch, ids):
            with open(path, 'w') as f:
                f.write('# test members file\nepoch = %d\nvbuckets = 65536\ncopies = 2\n'
                        % epoch)
                for i in ids:
                    f.write('member n%d %s:11211 partitions=4\n' % (i, net.data_ip(i)))
        write(10, (5, 6))
        for i in (5, 6):
            nodes[i] = Node(t, net, i, mode='static', extra=('--members-file', path)).start()
        c = kitelib.Client(lib, seeds(), timeout_ms=300)
        t.on_cleanup(c.close)
        converge(list(nodes.values()), c, 2)
        check_eq(c.map_info().epoch, 10, 'the file\'s epoch')
        res = c.set_many(v1)
        check(all(r == kitelib.KITE_OK for r in res.values()), 'static sets')
        items = [int(nodes[i].stats()['curr_items']) for i in (5, 6)]
        check(sum(items) == KEYS and min(items) > KEYS / 4, 'static spread %r' % items)
        # Node 6 leaves the file: SIGHUP, both converge; its keys are read through.
        write(11, (5,))
        for i in (5, 6):
            os.kill(nodes[i].proc.pid, signal.SIGHUP)
        secs, epoch = converge([nodes[5]], c, 1)
        check_eq(epoch, 11, 'epoch after the reload')
        ratio, hits, errors = hit_ratio(c, keys)
        figures.append('static file: node 6 removed by SIGHUP, map on epoch 11 in %.2f s; '
                       'hit ratio across it %.1f%%' % (secs, 100 * ratio))
        check(ratio >= 0.95 and not errors, 'static hand-over: %.3f %r' % (ratio, errors))
        # An edit that does not raise the epoch is refused (the map stays).
        write(11, (5, 6))
        os.kill(nodes[5].proc.pid, signal.SIGHUP)
        time.sleep(0.5)
        check_eq(nodes[5].epoch(), (11, 1), 'epoch after a reload without a higher epoch')
        check(any('not above' in line for line in nodes[5].lines), 'no refusal logged')
        c.close()
    t.case('a static members file, reloaded on SIGHUP', c_static)
    log_figures(t, figures)


def extra_args(ap):
    ap.add_argument('--build', default='', help='build directory (for lib/libkite.so)')


if __name__ == '__main__':
    kt.run('cluster', body, extra_args)
