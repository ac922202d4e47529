#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The admin endpoint of a real kited (admin-listen, docs/operations.rst):
/healthz and /readyz; /metrics checked by Debian's `promtool check metrics`
and scraped by a real Prometheus server, whose PromQL hit ratio must be
the one STAT implies; the service-time histogram against the requests
sent; bearer tokens (401 without, /healthz open); HTTPS with a
self-signed certificate; every bad request a JSON 4xx with the node still
serving; bad admin options refused at start.

Run: python3 test_admin.py --kited PATH --cli PATH
"""

import base64
import http.client as http_client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kitetest as kt  # noqa: E402

check, check_eq = kt.check, kt.check_eq
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))


def http(url, method='GET', headers=None, body=None, ctx=None, timeout=5.0):
    """(status, headers, body bytes); HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except (OSError, http_client.HTTPException) as e:
        raise kt.CaseFailure('%s %s: %r' % (method, url, e))


def parse_metrics(text):
    """{(name, frozenset(labels)): float} of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$', line)
        check(m is not None, 'not a sample line: %r' % line)
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ''))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(ms, name, **labels):
    return ms.get((name, frozenset(labels.items())))


def body(t):
    t.need_root()
    t.need_file(t.args.kited, 'kited')
    promtool = kt.which('promtool')
    prometheus = kt.which('prometheus')
    if not promtool or not prometheus:
        raise kt.Skip('Debian\'s prometheus package (promtool, prometheus) is not installed')
    tmp = tempfile.mkdtemp(prefix='kite-admin-')
    t.on_cleanup(lambda: shutil.rmtree(tmp, ignore_errors=True))
    topo = kt.Topology(t).up()
    port = kt.free_tcp_port()
    base = 'http://127.0.0.1:%d' % port
    # A low hot-key rate, so that c_hot's reads make a key hot.
    kd = kt.Kited(t, topo, kite_args=('--admin-listen', '127.0.0.1:%d' % port,
                                      '--hot-key-rate', '100', '--max-item-size', '1024')).start()
    client = topo.client()
    t.on_cleanup(client.close)

    def c_health():
        st, h, b = http(base + '/healthz')
        check_eq((st, b), (200, b'ok\n'), '/healthz')
        st, h, b = http(base + '/readyz')
        check_eq((st, b), (200, b'ready\n'), '/readyz of a single node that serves')
    t.case('/healthz and /readyz', c_health)


    hits = misses = sets = 0

    def traffic():
        nonlocal hits, misses, sets
        for i in range(200):
            rep = client.request(kt.store(kt.SET, b'adm:%d' % i, b'v%d' % i, opaque=i))
            check(rep.responses and rep.responses[0].status == kt.OK, 'set %d' % i)
            sets += 1
        for i in range(300):
            rep = client.request(kt.get(b'adm:%d' % i, opaque=i))
            check(rep.responses, 'get %d answered' % i)
            if rep.responses[0].status == kt.OK:
                hits += 1
            else:
                misses += 1

    def c_metrics():
        traffic()
        st, h, b = http(base + '/metrics')
        check_eq(st, 200, '/metrics status')
        check(h.get('Content-Type', '').startswith('text/plain; version=0.0.4'),
              'content type %r' % h.get('Content-Type'))
        p = subprocess.run([promtool, 'check', 'metrics'], input=b, capture_output=True,
                           timeout=60)
        check(p.returncode == 0, 'promtool check metrics: %s %s' % (
            p.stdout.decode()[-3000:], p.stderr.decode()[-3000:]))
        ms = parse_metrics(b.decode())
        stats = client.stats()
        check_eq(metric(ms, 'memcached_commands_total', command='get', status='hit'),
                 float(stats['get_hits']), 'get hits: /metrics against STAT')
        check_eq(metric(ms, 'memcached_commands_total', command='get', status='miss'),
                 float(stats['get_misses']), 'get misses: /metrics against STAT')
        check_eq((int(stats['get_hits']), int(stats['get_misses'])), (hits, misses),
                 'STAT against the replies')
        check_eq(metric(ms, 'memcached_current_items'), 200.0, 'items')
        check_eq(metric(ms, 'kite_requests_total', command='set'), float(sets), 'sets')
        # Every request served is in the histogram of its command, in seconds.
        n_get = metric(ms, 'kite_service_seconds_count', command='get')
        check(n_get is not None and n_get >= hits + misses, 'get service count %r' % n_get)
        inf = metric(ms, 'kite_service_seconds_bucket', command='get', le='+Inf')
        check_eq(inf, n_get, '+Inf bucket = count')
        buckets = sorted((float(dict(k[1])['le']), v) for k, v in ms.items()
                         if k[0] == 'kite_service_seconds_bucket' and
                         dict(k[1]).get('command') == 'get' and dict(k[1])['le'] != '+Inf')
        check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), 'cumulative buckets')
        total = metric(ms, 'kite_service_seconds_sum', command='get')
        check(total is not None and 0 < total / n_get < 0.01,
              'mean service time %r s: between 0 and 10 ms' % (total / n_get if total else None))
        check(float(stats['kite_service_get_p50_us']) <= float(stats['kite_service_get_p99_us'])
              <= float(stats['kite_service_get_p999_us']), 'STAT quantiles in order')
        t.log('FIGURE: service time of GET (server side): p50 %s us, p99 %s us, p999 %s us' % (
            stats['kite_service_get_p50_us'], stats['kite_service_get_p99_us'],
            stats['kite_service_get_p999_us']))
    t.case('/metrics: promtool check metrics, memcached names, histograms', c_metrics)

    def c_prometheus():
        # A real Prometheus scrapes the node; its hit ratio is the one STAT implies.
        pport = kt.free_tcp_port()
        cfg = os.path.join(tmp, 'prometheus.yml')
        # The configuration the docs tell users to make: kite-cli scrape-config.
        cli = t.need_file(t.args.cli, 'kite-cli')
        p = subprocess.run([cli, 'scrape-config', base, '--interval', '1s'], capture_output=True,
                           text=True, timeout=30)
        check(p.returncode == 0 and "targets: ['127.0.0.1:%d']" % port in p.stdout,
              'kite-cli scrape-config: %d %r %r' % (p.returncode, p.stdout, p.stderr))
        with open(cfg, 'w') as f:
            f.write(p.stdout)
        p = subprocess.run([promtool, 'check', 'config', cfg], capture_output=True, text=True,
                           timeout=60)
        check(p.returncode == 0, 'promtool check config: %s %s' % (p.stdout, p.stderr))
        p = kt.Process(t, 'prometheus', [prometheus, '--config.file=' + cfg,
                                         '--storage.tsdb.path=' + os.path.join(tmp, 'tsdb'),
                                         '--web.listen-address=127.0.0.1:%d' % pport])
        p.start()
        api = 'http://127.0.0.1:%d/api/v1/query?query=' % pport
        q = ('sum(memcached_commands_total{command="get",status="hit"}) / '
             'sum(memcached_commands_total{command="get"})')
        got = None
        end = time.monotonic() + 60
        while time.monotonic() < end and got is None:
            time.sleep(1)
            try:
                st, h, b = http(api + urllib.parse.quote('up{job="kite"}'))
            except OSError:
                continue
            if st != 200:
                continue
            res = json.loads(b)['data']['result']
            if not res or res[0]['value'][1] != '1':
                continue
            st, h, b = http(api + urllib.parse.quote(q))
            res = json.loads(b)['data']['result']
            if st == 200 and res:
                got = float(res[0]['value'][1])
        check(got is not None, 'Prometheus never scraped the node (%s)' % p.tail())
        stats = client.stats()
        want = int(stats['get_hits']) / (int(stats['get_hits']) + int(stats['get_misses']))
        check(abs(got - want) < 1e-9, 'PromQL hit ratio %r, STAT %r' % (got, want))
        t.log('FIGURE: PromQL hit ratio %.4f = STAT get_hits/(get_hits+get_misses) %.4f' % (
            got, want))
        # Every query of the dashboard and of the rules parses and runs on this Prometheus.
        with open(os.path.join(ROOT, 'tools', 'grafana', 'kite.json')) as f:
            dash = json.load(f)
        exprs = [tg['expr'] for pn in dash['panels'] for tg in pn.get('targets', [])]
        check(len(exprs) >= 15, 'dashboard queries: %d' % len(exprs))
        rules = os.path.join(ROOT, 'tools', 'prometheus', 'kite-rules.yml')
        with open(rules) as f:
            text = f.read()
        # Block scalars (expr: |, then the lines indented under it) and one-line exprs.
        exprs += [e.strip() for e in re.findall(r'expr: \|\n((?:          .*\n)+)', text)]
        exprs += [e.strip() for e in re.findall(r'expr: ([^|\n].*)\n', text)]
        for e in exprs:
            q = e.replace('$instance', '.*')
            st, h, b = http(api + urllib.parse.quote(q))
            check(st == 200 and json.loads(b).get('status') == 'success',
                  'PromQL %r: %s' % (q, b[:300]))
        p.stop()
    t.case('a real Prometheus, configured by kite-cli scrape-config, scrapes the node: PromQL '
           'hit ratio = STAT; the dashboard\'s and the rules\' queries run', c_prometheus)

    def c_cli_metrics():
        cli = t.need_file(t.args.cli, 'kite-cli')
        run = lambda *a, **kw: subprocess.run([cli] + list(a), capture_output=True, text=True,
                                              timeout=30, **kw)
        p = run('metrics', base)
        check_eq(p.returncode, 0, 'kite-cli metrics: %r' % p.stderr)
        page = parse_metrics(http(base + '/metrics')[2].decode())
        hits = metric(page, 'memcached_commands_total', command='get', status='hit')
        check('memcached_commands_total (counter): Total number of all requests' in p.stdout,
              'a family with its type and help: %r' % p.stdout[:500])
        line = '  memcached_commands_total{command="get",status="hit"} '
        got = [l[len(line):] for l in p.stdout.splitlines() if l.startswith(line)]
        check(got and int(got[0]) >= hits, 'get hits %r, /metrics said %r' % (got, hits))
        p = run('metrics', base, '--match', 'service_seconds')
        check(p.returncode == 0 and 'kite_service_seconds{command="get"} count ' in p.stdout and
              'p99 <= ' in p.stdout and 'memcached_' not in p.stdout,
              'a histogram as count and quantiles, --match: %r' % p.stdout)
        env = dict(os.environ, KITE_ADMIN=base)
        p = run('metrics', '--match', 'memcached_current_items', env=env)
        check(p.returncode == 0 and 'memcached_current_items ' in p.stdout,
              'KITE_ADMIN: %d %r' % (p.returncode, p.stderr))
        p = run('metrics', 'http://127.0.0.1:1')
        check(p.returncode == 3 and 'kite-cli:' in p.stderr, 'nobody listening: exit %d %r' % (
            p.returncode, p.stderr))
        for bad in (('metrics', 'ftp://x'), ('metrics', base, '--bogus'),
                    ('metrics', base, '--match'), ('scrape-config', '--job')):
            p = run(*bad)
            check_eq(p.returncode, 2, 'usage error for %r (%r)' % (bad, p.stderr))
    t.case('kite-cli metrics: families with help, histograms summarized; bad arguments', c_cli_metrics)

    def c_rules():
        rules = os.path.join(ROOT, 'tools', 'prometheus', 'kite-rules.yml')
        for args in (['check', 'rules', rules],
                     ['test', 'rules', os.path.join(ROOT, 'tools', 'prometheus',
                                                    'kite-rules.test.yml')]):
            p = subprocess.run([promtool] + args, capture_output=True, text=True, timeout=120)
            check(p.returncode == 0, 'promtool %s: %s %s' % (' '.join(args[:2]),
                                                             p.stdout[-2000:], p.stderr[-2000:]))
    t.case('alert rules: promtool check rules and promtool test rules', c_rules)

    def c_api():
        # The seed's JSON API, differential against the UDP protocol both ways.
        j = lambda b: json.loads(b)  # noqa: E731
        hdr = {'Content-Type': 'application/json'}
        st, h, b = http(base + '/cache/api:1', 'PUT', hdr,
                        json.dumps({'value': 'hello, kite', 'ttlSeconds': 100}).encode())
        check_eq((st, j(b).get('stored')), (200, True), 'PUT: %r' % b)
        st, h, b = http(base + '/cache/api:1')
        v = j(b)
        check_eq((st, v['value'], v['encoding'], v['flags']), (200, 'hello, kite', 'utf-8', 0),
                 'GET after PUT')
        check(95 <= v['ttlSeconds'] <= 100, 'ttlSeconds %r' % v['ttlSeconds'])
        rep = client.request(kt.get(b'api:1', opaque=9))
        check(rep.responses and rep.responses[0].value == b'hello, kite',
              'UDP GET of what HTTP set: %r' % rep.responses)
        raw = bytes(range(256)) * 3
        rep = client.request(kt.store(kt.SET, b'api:bin', raw, flags=7, opaque=10))
        check(rep.responses and rep.responses[0].status == kt.OK, 'UDP SET')
        st, h, b = http(base + '/cache/api:bin')
        v = j(b)
        check_eq((st, v['encoding'], base64.b64decode(v['value']), v['flags'], v['ttlSeconds']),
                 (200, 'base64', raw, 7, -1), 'HTTP GET of what UDP set')
        st, h, b = http(base + '/cache/api:b64', 'PUT', hdr, json.dumps(
            {'value': base64.b64encode(raw).decode(), 'encoding': 'base64', 'flags': 3}).encode())
        check_eq(st, 200, 'PUT base64')
        rep = client.request(kt.get(b'api:b64', opaque=11))
        check(rep.responses and rep.responses[0].value == raw, 'UDP GET of a base64 PUT')
        st, h, b = http(base + '/cache/batch-get', 'POST', hdr,
                        json.dumps({'keys': ['api:1', 'api:none', 'api:bin']}).encode())
        v = j(b)
        check_eq((st, sorted(v['values']), v['missing']), (200, ['api:1', 'api:bin'], ['api:none']),
                 'batch-get')
        check_eq(v['values']['api:1']['value'], 'hello, kite', 'batch-get value')
        st, h, b = http(base + '/cache/api:1', 'DELETE')
        check_eq((st, j(b).get('deleted')), (200, True), 'DELETE')
        check_eq(http(base + '/cache/api:1')[0], 404, 'GET after DELETE')
        check_eq(http(base + '/cache/api:1', 'DELETE')[0], 404, 'DELETE of a missing key')
        rep = client.request(kt.get(b'api:1', opaque=12))
        check(rep.responses and rep.responses[0].status == kt.KEY_ENOENT, 'UDP after DELETE')
        # Bad input: a 4xx JSON error each, and nothing changes.
        before = client.stats()
        bad = [
            ('PUT', '/cache/api:x', b'{not json', 400),
            ('PUT', '/cache/api:x', b'[1, 2]', 400),
            ('PUT', '/cache/api:x', b'{"ttlSeconds": 5}', 400),
            ('PUT', '/cache/api:x', b'{"value": 5}', 400),
            ('PUT', '/cache/api:x', b'{"value": "v", "ttlSeconds": "5"}', 400),
            ('PUT', '/cache/api:x', b'{"value": "v", "ttlSeconds": -1}', 400),
            ('PUT', '/cache/api:x', b'{"value": "v", "encoding": "rot13"}', 400),
            ('PUT', '/cache/api:x', b'{"value": "!!!", "encoding": "base64"}', 400),
            ('PUT', '/cache/api:x', b'{"value": "v", "value": "w"}', 400),
            ('PUT', '/cache/api:x', json.dumps({'value': 'x' * 2000}).encode(), 413),
            ('PUT', '/cache/api:x', b'x' * (97 * 1024), 413),
            ('PUT', '/cache/api:x', None, 400),
            ('GET', '/cache/' + 'k' * 251, None, 400),
            ('GET', '/cache/a%20b', None, 400),
            ('GET', '/cache/a%01b', None, 400),
            ('GET', '/cache/', None, 400),
            ('POST', '/cache/api:x', b'{}', 405),
            ('PATCH', '/cache/api:x', None, 405),
            ('GET', '/cache/batch-get', None, 405),
            ('POST', '/cache/batch-get', b'{"keys": "api:1"}', 400),
            ('POST', '/cache/batch-get', json.dumps({'keys': ['k%d' % i for i in range(101)]}).encode(), 400),
            ('POST', '/cache/batch-get', b'{"keys": [1]}', 400),
            ('POST', '/cache/batch-get', b'{"keys": [""]}', 400),
            ('GET', '/cache', None, 404),
        ]
        for method, path, body, code in bad:
            st, h, b = http(base + path, method, hdr if body is not None else {}, body)
            check_eq(st, code, '%s %s %r' % (method, path, (body or b'')[:40]))
            e = j(b)
            check(e.get('status') == code and e.get('error'), 'JSON error body %r' % b[:200])
        # A 405 names the methods its path takes.
        for method, path, allow in (('POST', '/cache/api:x', 'GET, HEAD, PUT, DELETE'),
                                    ('GET', '/cache/batch-get', 'POST'),
                                    ('POST', '/metrics', 'GET, HEAD')):
            st, h, b = http(base + path, method)
            check_eq((st, h.get('Allow')), (405, allow), 'Allow of %s %s' % (method, path))
        after = client.stats()
        check_eq(after['curr_items'], before['curr_items'], 'items after the bad requests')
        check_eq(http(base + '/cache/api:x')[0], 404, 'nothing stored by a bad PUT')
        check(int(after['kite_api_requests']) > 0, 'kite_api_requests counted')
        kt.probe(client, 'after bad JSON API requests')
    t.case('JSON API: PUT/GET/DELETE/batch-get, the same data as UDP both ways; every bad '
           'input a JSON 4xx, nothing changed', c_api)

    def c_bad():
        for path, method, code in (('/nope', 'GET', 404), ('/metrics', 'POST', 405),
                                   ('/healthz', 'DELETE', 405), ('/', 'GET', 404),
                                   ('/metrics/../x', 'GET', 404)):
            st, h, b = http(base + path, method=method)
            check_eq(st, code, '%s %s' % (method, path))
            j = json.loads(b)
            check(j.get('status') == code and j.get('error'), 'JSON error body %r' % b)
        st, h, b = http(base + '/healthz', method='GET', body=b'x' * 100,
                        headers={'Content-Type': 'text/plain'})
        check(400 <= st < 500, 'a body where none is taken: %d' % st)
        # A raw line that is not HTTP, then the endpoint and the node go on.
        s = socket.create_connection(('127.0.0.1', port), timeout=5)
        s.sendall(b'\x00\xffnot http at all\r\n\r\n')
        try:
            s.recv(4096)
        except OSError:
            pass
        s.close()
        check_eq(http(base + '/healthz')[0], 200, '/healthz after garbage')
        kt.probe(client, 'after bad admin requests')
    t.case('bad requests: JSON 404/405/4xx, nothing changes, the node serves', c_bad)

    def c_hot():
        # A key read far over hot-key-rate is listed, with its rate.
        hc = topo.client()
        # 3,000 reads over 1.5 s: 2,000 a second, against a hot rate of 100.
        for k in range(30):
            for i in range(100):
                hc.sock.send(kt.frame(k * 100 + i) + kt.get(b'hot:key', opaque=i))
            time.sleep(0.05)
        hc.sock.settimeout(0.2)
        while True:  # drain the replies
            try:
                hc.sock.recv(65536)
            except OSError:
                break
        hc.close()
        # Each worker publishes its top keys about once a second.
        end = time.monotonic() + 5
        while True:
            st, h, b = http(base + '/hotkeys')
            check_eq(st, 200, '/hotkeys status')
            j = json.loads(b)
            if any(x.get('key') == 'hot:key' for x in j.get('top', [])) or \
                    time.monotonic() > end:
                break
            time.sleep(0.2)
        check(isinstance(j.get('top'), list) and isinstance(j.get('hot'), int), 'shape %r' % j)
        check(j['hot'] >= 1 and j['top'], 'a hot key listed: %r' % j)
        check_eq(j['top'][0]['key'], 'hot:key', 'the hottest key')
        check(j['top'][0]['rate'] > 0, 'its rate %r' % j['top'][0])
        t.log('FIGURE: /hotkeys after 3,000 reads of one key in 1.5 s: %s' % b.decode()[:200])
    t.case('/hotkeys lists a key read over hot-key-rate', c_hot)
    kd.stop()

    def c_tokens():
        tok = os.path.join(tmp, 'tokens')
        with open(tok, 'w') as f:
            f.write('# admin tokens\nreadtoken-0123456789abcdef read\n\n'
                    'admintoken-0123456789abcdef admin\n')
        kd2 = kt.Kited(t, topo, kite_args=('--admin-listen', '127.0.0.1:%d' % port,
                                           '--admin-token-file', tok)).start()
        try:
            st, h, b = http(base + '/metrics')
            check_eq(st, 401, '/metrics without a token')
            check('Bearer' in h.get('WWW-Authenticate', ''), 'WWW-Authenticate %r' % h)
            check_eq(http(base + '/metrics', headers={'Authorization': 'Bearer wrong-token-000000'})[0],
                     401, 'a wrong token')
            for tk in ('readtoken-0123456789abcdef', 'admintoken-0123456789abcdef'):
                check_eq(http(base + '/metrics', headers={'Authorization': 'Bearer ' + tk})[0],
                         200, '/metrics with %s' % tk)
            check_eq(http(base + '/healthz')[0], 200, '/healthz needs no token')
            if t.args.cli:
                tf = os.path.join(tmp, 'read.token')
                with open(tf, 'w') as f:
                    f.write('readtoken-0123456789abcdef\n')
                p = subprocess.run([t.args.cli, 'metrics', base, '--token-file', tf, '--match',
                                    'current_items'], capture_output=True, text=True, timeout=30)
                check(p.returncode == 0 and 'memcached_current_items' in p.stdout,
                      'kite-cli metrics --token-file: %d %r' % (p.returncode, p.stderr))
                p = subprocess.run([t.args.cli, 'metrics', base], capture_output=True, text=True,
                                   timeout=30)
                check(p.returncode == 4 and 'HTTP 401: a bearer token is required' in p.stderr,
                      'kite-cli metrics without the token: %d %r' % (p.returncode, p.stderr))
                p = subprocess.run([t.args.cli, 'scrape-config', base, '--token-file', tf],
                                   capture_output=True, text=True, timeout=30)
                check(p.returncode == 0 and 'credentials_file: %s' % tf in p.stdout,
                      'scrape-config --token-file: %r' % p.stdout)
                cfg = os.path.join(tmp, 'prom-token.yml')
                with open(cfg, 'w') as f:
                    f.write(p.stdout)
                p = subprocess.run([promtool, 'check', 'config', cfg], capture_output=True,
                                   text=True, timeout=60)
                check(p.returncode == 0, 'promtool check config (token): %s %s' % (p.stdout,
                                                                                  p.stderr))
            # Hot keys' names are the users' data: admin only.
            check_eq(http(base + '/hotkeys', headers={
                'Authorization': 'Bearer readtoken-0123456789abcdef'})[0], 403,
                '/hotkeys with a read token')
            st, h, b = http(base + '/hotkeys', headers={
                'Authorization': 'Bearer admintoken-0123456789abcdef'})
            check(st == 200 and 'top' in json.loads(b), '/hotkeys with the admin token: %d %r' % (
                st, b[:200]))
            # The JSON API: reads with either token, writes with admin only, nothing without.
            body = json.dumps({'value': 'v'}).encode()
            rd = {'Authorization': 'Bearer readtoken-0123456789abcdef'}
            ad = {'Authorization': 'Bearer admintoken-0123456789abcdef'}
            check_eq(http(base + '/cache/tok', 'PUT', {}, body)[0], 401, 'PUT without a token')
            check_eq(http(base + '/cache/tok', 'PUT', rd, body)[0], 403, 'PUT with a read token')
            check_eq(http(base + '/cache/tok', 'PUT', ad, body)[0], 200, 'PUT with admin')
            check_eq(http(base + '/cache/tok', 'GET', rd)[0], 200, 'GET with a read token')
            check_eq(http(base + '/cache/tok', 'DELETE', rd)[0], 403, 'DELETE with a read token')
            check_eq(http(base + '/cache/tok', 'GET')[0], 401, 'GET without a token')
        finally:
            kd2.stop()
    t.case('bearer tokens: 401 without, /healthz open, /hotkeys and writes admin only', c_tokens)

    def c_tenant_tokens():
        # Each token maps to a tenant of tenants-file, and the JSON API does for it what that
        # tenant's datagrams could do: its key prefix, its commands, its rate.
        tfile, tok = os.path.join(tmp, 'tenants'), os.path.join(tmp, 'tokens2')
        shop_secret = os.path.join(tmp, 'shop.key')
        with open(shop_secret, 'w') as f:
            f.write(os.urandom(32).hex() + '\n')
        with open(tfile, 'w') as f:
            f.write('1 shop %s shop: cmds=get,set,delete\n' % open(shop_secret).read().strip())
            f.write('2 ro %s ro: cmds=get\n' % os.urandom(32).hex())
            f.write('3 slow %s slow: cmds=all rate=5\n' % os.urandom(32).hex())
        with open(tok, 'w') as f:
            f.write('shoptoken-0123456789 tenant=shop\nrotoken-0123456789ab tenant=ro\n'
                    'slowtoken-0123456789 tenant=slow\nreadtoken-0123456789 read\n'
                    'admintoken-012345678 admin\n')
        hdr = {n: {'Authorization': 'Bearer %stoken-0123456789' % n} for n in ('shop', 'slow')}
        hdr['ro'] = {'Authorization': 'Bearer rotoken-0123456789ab'}
        hdr['read'] = {'Authorization': 'Bearer readtoken-0123456789'}
        hdr['admin'] = {'Authorization': 'Bearer admintoken-012345678'}
        val = lambda v: json.dumps({'value': v}).encode()
        kd4 = kt.Kited(t, topo, kite_args=('--admin-listen', '127.0.0.1:%d' % port,
                                           '--admin-token-file', tok, '--auth', 'optional',
                                           '--tenants-file', tfile)).start()
        try:
            u = base + '/cache/'
            check_eq(http(u + 'shop:1', 'PUT', hdr['shop'], val('cart'))[0], 200,
                     'a tenant writes in its prefix')
            st, h, b = http(u + 'pub1', 'PUT', hdr['shop'], val('x'))
            check(st == 403 and b'prefix' in b, 'a tenant outside its prefix: %d %r' % (st, b))
            check_eq(http(u + 'ro:1', 'PUT', hdr['admin'], val('r'))[0], 200, 'admin writes ro:1')
            check_eq(http(u + 'ro:1', 'PUT', hdr['ro'], val('w'))[0], 403,
                     'a tenant without set (cmds=get) cannot PUT')
            check_eq(http(u + 'ro:1', 'DELETE', hdr['ro'])[0], 403, 'nor DELETE')
            st, h, b = http(u + 'ro:1', 'GET', hdr['ro'])
            check(st == 200 and json.loads(b)['value'] == 'r', 'but reads: %d %r' % (st, b))
            st, h, b = http(u + 'batch-get', 'POST', hdr['ro'],
                            json.dumps({'keys': ['ro:1', 'shop:1']}).encode())
            check_eq(st, 403, 'a batch with a key of another tenant')
            # What the tenant's token stored over HTTP, the tenant reads over UDP (signed
            # datagrams, kite-cli --tenant), and the other way round.
            if t.args.cli:
                def cli(*a):
                    return subprocess.run(
                        [topo.ip_tool, 'netns', 'exec', topo.ns, t.args.cli, '-s', topo.kited_ip,
                         '-t', '500', '-r', '2', '--tenant', '1', '--tenant-secret-file',
                         shop_secret] + list(a), capture_output=True, text=True, timeout=30)
                p = cli('get', 'shop:1')
                check(p.returncode == 0 and p.stdout.strip() == 'cart',
                      'UDP get of what HTTP set: %d %r %r' % (p.returncode, p.stdout, p.stderr))
                p = cli('set', 'shop:2', 'udp-set')
                check_eq(p.returncode, 0, 'UDP set as the tenant')
                st, h, b = http(u + 'shop:2', 'GET', hdr['shop'])
                check(st == 200 and json.loads(b)['value'] == 'udp-set',
                      'HTTP get of what UDP set: %d %r' % (st, b))
            # A read token, as a datagram without AUTH under auth = optional: public keys only.
            check_eq(http(u + 'shop:1', 'GET', hdr['read'])[0], 403, 'read token, a tenant key')
            check_eq(http(u + 'pub1', 'GET', hdr['read'])[0], 404, 'read token, a public key')
            st, h, b = http(u + 'shop:1', 'GET', hdr['admin'])
            check(st == 200 and json.loads(b)['value'] == 'cart', 'admin reads every key')
            # Statistics: a read token, not a tenant that may not STAT over UDP.
            check_eq(http(base + '/metrics', headers=hdr['shop'])[0], 403,
                     '/metrics with a tenant token that may not STAT')
            check_eq(http(base + '/metrics', headers=hdr['read'])[0], 200, '/metrics, read token')
            check_eq(http(base + '/hotkeys', headers=hdr['shop'])[0], 403, '/hotkeys, tenant')
            # The tenant's rate (5/s, 100 ms of burst) holds for the API as for its datagrams.
            codes = [http(u + 'slow:1', 'GET', hdr['slow'])[0] for _ in range(30)]
            check(429 in codes and codes.count(404) <= 8,
                  'rate 5/s: 30 quick GETs answered %r' % codes)
            time.sleep(1.2)
            check_eq(http(u + 'slow:1', 'GET', hdr['slow'])[0], 404, 'a GET once the rate refilled')
            st, h, b = http(u + 'slow:1', 'GET', hdr['admin'])
            check_eq(st, 404, 'the admin token is not the tenant\'s rate')
        finally:
            kd4.stop()
        # auth = required without a token file: the JSON API is a client without AUTH: refused.
        kd5 = kt.Kited(t, topo, kite_args=('--admin-listen', '127.0.0.1:%d' % port,
                                           '--auth', 'required', '--tenants-file', tfile)).start()
        try:
            st, h, b = http(base + '/cache/pub1')
            check(st == 401 and b'auth = required' in b, 'auth = required, no token file: %d %r'
                  % (st, b))
            check_eq(http(base + '/metrics')[0], 200, '/metrics open without a token file')
        finally:
            kd5.stop()
        # A token naming no tenant: kited says so at start.
        with open(tok, 'a') as f:
            f.write('ghosttoken-012345678 tenant=ghost\n')
        k = kt.Kited(t, topo, kite_args=('--admin-listen', '127.0.0.1:%d' % port,
                                         '--admin-token-file', tok, '--tenants-file', tfile))
        p = subprocess.run(k.argv, capture_output=True, text=True, timeout=60)
        check(p.returncode != 0 and "tenant 'ghost' is not in" in p.stdout + p.stderr,
              'a token of an unknown tenant: rc %d %r' % (p.returncode, (p.stdout + p.stderr)[-300:]))
    t.case('tenant tokens: the JSON API within the tenant\'s prefix, commands and rate',
           c_tenant_tokens)

    def c_tls():
        openssl = kt.which('openssl')
        if not openssl:
            raise kt.Skip('openssl not installed')
        cert, key = os.path.join(tmp, 'cert.pem'), os.path.join(tmp, 'key.pem')
        kt.sh([openssl, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
               '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], timeout=60)
        kd3 = kt.Kited(t, topo, kite_args=('--admin-listen', '127.0.0.1:%d' % port,
                                           '--admin-tls-cert', cert,
                                           '--admin-tls-key', key)).start()
        try:
            ctx = ssl.create_default_context(cafile=cert)
            ctx.check_hostname = False
            st, h, b = http('https://127.0.0.1:%d/metrics' % port, ctx=ctx)
            check_eq(st, 200, 'HTTPS /metrics')
            check(b.startswith(b'# HELP '), 'metrics over TLS')
        finally:
            kd3.stop()
    t.case('HTTPS with admin-tls-cert and admin-tls-key', c_tls)

    def c_bad_options():
        for args, want in ((('--admin-listen', 'nonsense'), 'admin-listen'),
                           (('--admin-listen', '127.0.0.1:0'), 'admin-listen'),
                           (('--admin-listen', '127.0.0.1:%d' % port, '--admin-tls-cert',
                             '/nonexistent'), 'admin-tls-cert and admin-tls-key'),
                           (('--admin-listen', '127.0.0.1:%d' % port, '--admin-token-file',
                             '/nonexistent/tokens'), '/nonexistent/tokens')):
            k = kt.Kited(t, topo, kite_args=args)
            p = subprocess.run(k.argv, capture_output=True, text=True, timeout=60)
            check(p.returncode != 0, '%r: started anyway' % (args,))
            check(want in p.stdout + p.stderr, '%r: message %r' % (
                args, (p.stdout + p.stderr)[-500:]))
    t.case('bad admin options: kited refuses to start, says why', c_bad_options)


if __name__ == '__main__':
    kt.run('admin', body)
