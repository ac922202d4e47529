# SPDX-License-Identifier: BSD-3-Clause
"""The Python binding against a real kited: KITE_SERVER=HOST (the node; the
tests run where it is reachable) and KITE_LIBKITE (the library, if not
installed). tests/integration/test_python.py starts a node and runs these."""

import multiprocessing
import os
import threading
import time
import uuid

import pytest

import kite

SERVER = os.environ.get('KITE_SERVER')
pytestmark = pytest.mark.skipif(not SERVER, reason='KITE_SERVER is not set (a kited to use)')


def k(name):
    """A key of this run only."""
    return 'py-%s-%s' % (RUN, name)


RUN = uuid.uuid4().hex[:8]


@pytest.fixture
def client():
    with kite.Client(SERVER) as c:
        yield c


def test_client_basics(client):
    assert client.get(k('nope')) is None
    cas = client.set(k('a'), b'hello', ttl=60, flags=5)
    assert cas > 0
    assert client.get(k('a')) == b'hello'
    assert client.gets(k('a')) == (b'hello', 5, cas)
    assert client.get(k('a').encode()) == b'hello'          # bytes keys too
    client.set(k('s'), 'text is UTF-8: é')
    assert client.get(k('s')) == 'text is UTF-8: é'.encode()
    with pytest.raises(kite.Exists):         # binary ADD of a key that exists
        client.add(k('a'), b'x')
    with pytest.raises(kite.NotFound):       # binary REPLACE of a key that is not there
        client.replace(k('nope'), b'x')
    with pytest.raises(kite.Exists):
        client.set(k('a'), b'x', cas=cas + 12345)
    assert client.incr(k('n'), 5, initial=10) == 10
    assert client.incr(k('n'), 5) == 15
    assert client.delete(k('a')) is True
    assert client.delete(k('a')) is False
    with pytest.raises(kite.BadArgument):
        client.get('x' * 251)
    with pytest.raises(TypeError):
        client.get(42)
    assert client.get_many([k('n'), k('s'), k('none')]) == {
        k('n'): b'15', k('s'): 'text is UTF-8: é'.encode()}
    assert client.stats()['ops'] > 0
    # The names follow libkite's enum to its last code (kite_strerror of it).
    busy = kite.Error(kite._lib.RC['BUSY'])
    assert busy.name == 'BUSY' and 'another thread' in str(busy)


def test_client_meta(client):
    r = client.meta('mg', k('m'), 'v c N30 t')
    assert r.found and r.win and r.value == b'' and 29 <= r.ttl <= 30
    r2 = client.meta('mg', k('m'), 'v c N30')
    assert r2.busy and not r2.win
    assert client.meta('ms', k('m'), 'T60 C%d' % r.cas, b'fresh').found
    r = client.meta('mg', k('m'), 'v t h')
    assert r.value == b'fresh' and not r.win and not r.busy and not r.fetched
    assert client.meta('mg', k('m'), 'h').fetched          # read before: h1
    assert client.meta('md', k('m'), 'I').found
    r = client.meta('mg', k('m'), 'v')
    assert r.stale and r.win and r.value == b'fresh'
    assert not client.meta('mg', k('none'), 'v').found
    with pytest.raises(ValueError):
        client.meta('xx', k('m'))


def test_client_context_and_close():
    c = kite.Client(SERVER)
    c.set(k('ctx'), b'1')
    c.close()
    with pytest.raises(kite.Error):
        c.get(k('ctx'))


def test_client_fork(client):
    client.set(k('f'), b'parent')
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        # The child: the same object opens its own socket.
        try:
            ok = client.get(k('f')) == b'parent'
            client.set(k('f2'), b'child')
            os.write(w, b'1' if ok else b'0')
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b'1'
    os.waitpid(pid, 0)
    os.close(r)
    assert client.get(k('f2')) == b'child'
    assert client.get(k('f')) == b'parent'


def test_cache_aside_and_negative():
    calls = []

    def load(key):
        calls.append(key)
        return None if key.endswith(b'missing') else b'row:' + key

    with kite.Cache(SERVER, ttl=60) as cache:
        assert cache.get(k('u1'), load) == b'row:' + k('u1').encode()
        assert cache.get(k('u1'), load) == b'row:' + k('u1').encode()
        assert len(calls) == 1
        assert cache.get(k('missing'), load) is None
        assert cache.get(k('missing'), load) is None
        assert len(calls) == 2
        st = cache.stats()
        assert st['hits'] >= 1 and st['negative_hits'] == 1 and st['loads'] == 2


def test_cache_loader_exception():
    def load(key):
        raise RuntimeError('database is down')

    with kite.Cache(SERVER) as cache:
        with pytest.raises(RuntimeError, match='database is down'):
            cache.get(k('boom'), load)


def test_cache_threads_one_load():
    calls = []
    lock = threading.Lock()

    def load(key):
        with lock:
            calls.append(key)
        time.sleep(0.1)
        return b'v'

    results = []
    with kite.Cache(SERVER) as cache:
        def run():
            results.append(cache.get(k('hot'), load))
        th = [threading.Thread(target=run) for _ in range(16)]
        for t in th:
            t.start()
        for t in th:
            t.join()
    assert results == [b'v'] * 16
    assert len(calls) == 1


def _proc_get(key, counter, barrier, out):
    def load(_k):
        with counter.get_lock():
            counter.value += 1
        time.sleep(0.2)
        return b'computed'

    with kite.Cache(SERVER) as cache:
        barrier.wait()
        out.put(cache.get(key, load))


def test_cache_processes_one_load():
    """Four processes: the node's win token lets exactly one load."""
    ctx = multiprocessing.get_context('fork')
    counter = ctx.Value('i', 0)
    barrier = ctx.Barrier(4)
    out = ctx.Queue()
    procs = [ctx.Process(target=_proc_get, args=(k('proc'), counter, barrier, out))
             for _ in range(4)]
    for p in procs:
        p.start()
    got = [out.get(timeout=20) for _ in procs]
    for p in procs:
        p.join(20)
    assert got == [b'computed'] * 4
    assert counter.value == 1


def test_cache_write_through_and_invalidate():
    db = {k('w'): b'v1'}

    def load(key):
        return db.get(key.decode())

    def write(key, value):
        db[key.decode()] = value

    with kite.Cache(SERVER) as cache:
        assert cache.get(k('w'), load) == b'v1'
        cache.write(k('w'), b'v2', write)
        assert db[k('w')] == b'v2'
        assert cache.get(k('w'), load) == b'v2'
        db[k('w')] = b'v3'
        cache.invalidate(k('w'))
        assert cache.get(k('w'), load) == b'v3'
        cache.register(k('rt:'), load)
        db[k('rt:1')] = b'through'
        assert cache.read(k('rt:1')) == b'through'
        with pytest.raises(kite.BadArgument):
            cache.read('no-loader-for-this')


def test_cache_write_behind():
    written = {}

    def writer(key, value):
        written[key] = value

    with kite.Cache(SERVER, write_behind=writer, wb_delay_ms=50) as cache:
        for i in range(10):
            cache.write_behind(k('wb'), b'v%d' % i)
        # The cache has the last value now; the source gets it once, coalesced.
        assert cache.get(k('wb'), lambda key: b'from-source') == b'v9'
        cache.flush()
        assert written == {k('wb').encode(): b'v9'}
        assert cache.stats()['wb_coalesced'] == 9


def test_cache_bloom_and_validate():
    bloom = kite.Bloom(1000, 0.01)
    bloom.add(k('exists'))
    assert k('exists') in bloom and len(bloom) == 1
    calls = []

    def load(key):
        calls.append(key)
        return b'x'

    with kite.Cache(SERVER, bloom=bloom, validate=lambda key: key.startswith(b'py-')) as cache:
        assert cache.get(k('never'), load) is None
        assert cache.get(k('exists'), load) == b'x'
        with pytest.raises(kite.BadArgument):
            cache.get('other-key', load)
        assert len(calls) == 1
        assert cache.stats()['bloom_rejections'] == 1


def test_cache_fork():
    def load(key):
        return b'p'

    with kite.Cache(SERVER) as cache:
        assert cache.get(k('cf'), load) == b'p'
        pid = os.fork()
        if pid == 0:
            ok = False
            try:
                ok = cache.get(k('cf2'), lambda key: b'c') == b'c'
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert cache.get(k('cf2'), load) == b'c'
