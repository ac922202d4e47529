# SPDX-License-Identifier: BSD-3-Clause
"""kite: the Python binding of libkite (docs/libkite.rst) and its cache
patterns (docs/patterns.rst).

    import kite

    with kite.Client('198.18.0.2') as c:
        c.set('greeting', b'hello', ttl=60)
        c.get('greeting')                  # b'hello'; None when missing

    def load_user(key):                    # bytes -> bytes, or None: no such row
        row = db.fetch(key)
        return None if row is None else row.to_json().encode()

    with kite.Cache('198.18.0.2', ttl=300) as cache:
        cache.get('user:42', load_user)    # one load per key across processes

Keys are str (UTF-8) or bytes, values bytes (str is encoded as UTF-8).
Errors raise kite.Error (kite.Timeout, kite.RateLimited, ...); a miss is
None. A Client or Cache is safe across os.fork(): the child opens its own
sockets (and the cache starts with nothing in flight).
"""

import ctypes
import os
import threading
import weakref

from . import _lib

__all__ = ['Client', 'Cache', 'Bloom', 'MetaResult', 'Error', 'Timeout', 'RateLimited',
           'NotStored', 'NotFound', 'Exists', 'BadArgument']

_L = _lib.load()


class Error(Exception):
    """A libkite result other than OK (rc: its enum kite_rc; name: 'TIMEOUT', ...)."""

    def __init__(self, rc, what=''):
        self.rc = rc
        self.name = _lib.RC_NAMES[rc] if 0 <= rc < len(_lib.RC_NAMES) else str(rc)
        msg = _L.kite_strerror(rc).decode()
        super().__init__('%s: %s' % (what, msg) if what else msg)


class Timeout(Error):
    pass


class RateLimited(Error):
    pass


class NotStored(Error):
    pass


class NotFound(Error):
    """A write that needs the key (replace, a CAS) found none; reads return None instead."""


class Exists(Error):
    pass


class BadArgument(Error):
    pass


_ERRORS = {_lib.RC['TIMEOUT']: Timeout, _lib.RC['RATE_LIMITED']: RateLimited,
           _lib.RC['NOT_FOUND']: NotFound,
           _lib.RC['NOT_STORED']: NotStored, _lib.RC['EXISTS']: Exists,
           _lib.RC['BAD_ARGUMENT']: BadArgument}


def _raise(rc, what=''):
    raise _ERRORS.get(rc, Error)(rc, what)


def _b(x, what='key'):
    if isinstance(x, bytes):
        return x
    if isinstance(x, (bytearray, memoryview)):
        return bytes(x)
    if isinstance(x, str):
        return x.encode('utf-8')
    raise TypeError('%s must be str or bytes, not %s' % (what, type(x).__name__))


# Objects to re-open in a forked child (weak: closed ones go by themselves).
_live = weakref.WeakSet()


def _after_fork():
    for o in list(_live):
        o._forked()


os.register_at_fork(after_in_child=_after_fork)


class MetaResult:
    """A meta command's answer: value, and the return flags."""
    __slots__ = ('found', 'value', 'win', 'busy', 'stale', 'hot', 'fetched', 'ttl', 'cas',
                 'flags', 'counter')

    def __init__(self, op, found):
        self.found = found
        self.value = ctypes.string_at(op.result, op.result_len) if op.result else b''
        r = op.meta_ret
        self.win = bool(r & _lib.META_WIN)
        self.busy = bool(r & _lib.META_BUSY)
        self.stale = bool(r & _lib.META_STALE)
        self.hot = bool(r & _lib.META_HOT)
        self.fetched = bool(r & _lib.META_FETCHED)
        self.ttl = None if op.ttl == _lib.TTL_NONE else op.ttl
        self.cas = op.result_cas
        self.flags = op.result_flags
        self.counter = op.counter

    def __repr__(self):
        return 'MetaResult(found=%r, value=%r, win=%r, busy=%r, stale=%r, ttl=%r, cas=%r)' % (
            self.found, self.value[:40], self.win, self.busy, self.stale, self.ttl, self.cas)


class _Closing:
    """close() on leaving a with block, and when collected."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Client(_Closing):
    """A libkite client: routes by the cluster map, retries, cookies. One per
    thread at a time (it is not shared by threads; open one per thread: a call
    while another thread is inside one raises Error with name 'BUSY')."""

    def __init__(self, seeds, timeout_ms=500, retries=2, tenant=None, value_key=None,
                 read_any=False):
        self._seeds = seeds if isinstance(seeds, str) else ','.join(seeds)
        self._kw = dict(timeout_ms=timeout_ms, retries=retries, tenant=tenant,
                        value_key=value_key, read_any=read_any)
        self._h = None
        self._pid = None
        self._open()
        _live.add(self)

    def _open(self):
        o = _lib.Options()
        self._keep = [self._seeds.encode()]
        o.seeds = self._keep[0]
        o.timeout_ms = self._kw['timeout_ms']
        o.retries = self._kw['retries'] if self._kw['retries'] else _lib.NO_RETRY
        o.read_from = 1 if self._kw['read_any'] else 0
        if self._kw['tenant'] is not None:
            o.tenant_id, secret = self._kw['tenant']
            self._keep.append(_b(secret, 'secret'))
            o.tenant_secret = self._keep[-1]
        if self._kw['value_key'] is not None:
            self._keep.append(_b(self._kw['value_key'], 'value_key'))
            o.value_key = self._keep[-1]
        h = ctypes.c_void_p()
        rc = _L.kite_open(ctypes.byref(h), ctypes.byref(o))
        if rc != _lib.OK:
            _raise(rc, 'open %s' % self._seeds)
        self._h = h
        self._pid = os.getpid()

    def _forked(self):
        # The parent's socket is the parent's: drop our copy's state, open anew on use.
        self._h = None

    def _handle(self):
        if self._h is None or self._pid != os.getpid():
            if self._pid is None:
                raise Error(_lib.RC['BAD_ARGUMENT'], 'the client is closed')
            self._open()
        return self._h

    def close(self):
        if self._h is not None and self._pid == os.getpid():
            _L.kite_close(self._h)
        self._h = None
        self._pid = None
        _live.discard(self)

    def _exec(self, op, keep):
        arr = (_lib.Op * 1)(op)
        _L.kite_exec(self._handle(), arr, 1)
        del keep
        return arr[0]

    def _op(self, kind, key, value=None, **fields):
        kb = _b(key)
        keep = [kb]
        op = _lib.Op(type=kind, key=ctypes.cast(ctypes.c_char_p(kb), ctypes.c_void_p),
                     keylen=len(kb), **fields)
        if value is not None:
            vb = _b(value, 'value')
            keep.append(vb)
            op.value = ctypes.cast(ctypes.c_char_p(vb), ctypes.c_void_p)
            op.vallen = len(vb)
        return op, keep

    def _done(self, op):
        _L.kite_op_clear(ctypes.byref(op))

    def get(self, key):
        """The value (bytes), or None when the key is missing."""
        return self.gets(key)[0]

    def gets(self, key):
        """(value, flags, cas), value None when missing."""
        op, keep = self._op(_lib.GET, key)
        op = self._exec(op, keep)
        try:
            if op.rc == _lib.NOT_FOUND:
                return None, 0, 0
            if op.rc != _lib.OK:
                _raise(op.rc, 'get')
            return ctypes.string_at(op.result, op.result_len), op.result_flags, op.result_cas
        finally:
            self._done(op)

    def _store(self, kind, key, value, ttl, flags, cas):
        op, keep = self._op(kind, key, value, exptime=ttl, flags=flags, cas=cas)
        op = self._exec(op, keep)
        try:
            if op.rc != _lib.OK:
                _raise(op.rc, 'store')
            return op.result_cas
        finally:
            self._done(op)

    def set(self, key, value, ttl=0, flags=0, cas=0):
        """Store; returns the new CAS (cas != 0: only if the item's is that)."""
        return self._store(_lib.SET, key, value, ttl, flags, cas)

    def add(self, key, value, ttl=0, flags=0):
        return self._store(_lib.ADD, key, value, ttl, flags, 0)

    def replace(self, key, value, ttl=0, flags=0):
        return self._store(_lib.REPLACE, key, value, ttl, flags, 0)

    def delete(self, key):
        """True if it was there."""
        op, keep = self._op(_lib.DELETE, key)
        op = self._exec(op, keep)
        try:
            if op.rc not in (_lib.OK, _lib.NOT_FOUND):
                _raise(op.rc, 'delete')
            return op.rc == _lib.OK
        finally:
            self._done(op)

    def incr(self, key, delta=1, initial=None, ttl=0):
        """The new value; None when missing (initial=None) ."""
        op, keep = self._op(_lib.INCR, key, delta=delta, initial=initial or 0,
                            create=initial is not None, exptime=ttl)
        op = self._exec(op, keep)
        try:
            if op.rc == _lib.NOT_FOUND:
                return None
            if op.rc != _lib.OK:
                _raise(op.rc, 'incr')
            return op.counter
        finally:
            self._done(op)

    def meta(self, kind, key, flags='', value=None):
        """A meta command (kind: 'mg', 'ms', 'md', 'ma') with memcached's flags as text,
        e.g. meta('mg', 'k', 'v c t N30'); a MetaResult (found False: EN/NF)."""
        kinds = {'mg': _lib.META_GET, 'ms': _lib.META_SET, 'md': _lib.META_DELETE,
                 'ma': _lib.META_ARITH}
        if kind not in kinds:
            raise ValueError("kind must be 'mg', 'ms', 'md' or 'ma'")
        fb = flags.encode() if isinstance(flags, str) else bytes(flags)
        op, keep = self._op(kinds[kind], key, value, meta=fb)
        keep.append(fb)
        op = self._exec(op, keep)
        try:
            if op.rc not in (_lib.OK, _lib.NOT_FOUND):
                _raise(op.rc, kind)
            return MetaResult(op, op.rc == _lib.OK)
        finally:
            self._done(op)

    def get_many(self, keys):
        """{key: value} of the keys found (one batch: every node at once)."""
        keys = list(keys)
        if not keys:
            return {}
        ops = (_lib.Op * len(keys))()
        keep = []
        for i, k in enumerate(keys):
            kb = _b(k)
            keep.append(kb)
            ops[i].type = _lib.GET
            ops[i].key = ctypes.cast(ctypes.c_char_p(kb), ctypes.c_void_p)
            ops[i].keylen = len(kb)
        _L.kite_exec(self._handle(), ops, len(keys))
        out, err = {}, None
        for k, op in zip(keys, ops):
            if op.rc == _lib.OK:
                out[k] = ctypes.string_at(op.result, op.result_len)
            elif op.rc != _lib.NOT_FOUND and err is None:
                err = op.rc
            _L.kite_op_clear(ctypes.byref(op))
        del keep
        if err is not None:
            _raise(err, 'get_many')
        return out

    def set_many(self, items, ttl=0, flags=0, ttls=None):
        """Store [(key, value)] (or a dict) in one batch; ttls: one TTL per item.
        Returns the number stored; raises the first error after the batch."""
        items = list(items.items()) if isinstance(items, dict) else list(items)
        if not items:
            return 0
        ops = (_lib.Op * len(items))()
        keep = []
        for i, (k, v) in enumerate(items):
            kb, vb = _b(k), _b(v, 'value')
            keep += [kb, vb]
            ops[i].type = _lib.SET
            ops[i].key = ctypes.cast(ctypes.c_char_p(kb), ctypes.c_void_p)
            ops[i].keylen = len(kb)
            ops[i].value = ctypes.cast(ctypes.c_char_p(vb), ctypes.c_void_p)
            ops[i].vallen = len(vb)
            ops[i].flags = flags
            ops[i].exptime = ttls[i] if ttls is not None else ttl
        _L.kite_exec(self._handle(), ops, len(items))
        stored, err = 0, None
        for op in ops:
            if op.rc == _lib.OK:
                stored += 1
            elif err is None:
                err = op.rc
            _L.kite_op_clear(ctypes.byref(op))
        del keep
        if err is not None:
            _raise(err, 'set_many')
        return stored

    def stats(self):
        st = _lib.ClientStats()
        _L.kite_client_stats(self._handle(), ctypes.byref(st))
        return {n: getattr(st, n) for n in _lib.CLIENT_STATS}


class Bloom(_Closing):
    """kite/bloom.h: the keys that exist, for Cache(bloom=...)."""

    def __init__(self, capacity, fp_rate=0.01):
        h = ctypes.c_void_p()
        rc = _L.kite_bloom_create(ctypes.byref(h), capacity, fp_rate)
        if rc != _lib.OK:
            _raise(rc, 'bloom')
        self._h = h

    def add(self, key):
        kb = _b(key)
        _L.kite_bloom_add(self._h, kb, len(kb))

    def __contains__(self, key):
        kb = _b(key)
        return bool(_L.kite_bloom_maybe(self._h, kb, len(kb)))

    def __len__(self):
        return _L.kite_bloom_count(self._h)

    def close(self):
        if self._h:
            _L.kite_bloom_free(self._h)
            self._h = None


class _Callbacks:
    """The C callbacks of a Cache: a Python loader or writer behind each, and the
    exception it raised, re-raised in the calling thread."""

    def __init__(self):
        self.local = threading.local()

    def loader(self, fn):
        def call(_arg, key, keylen, out):
            try:
                v = fn(ctypes.string_at(key, keylen))
            except BaseException as e:  # noqa: B902 -- re-raised by the caller
                self.local.exc = e
                return _lib.RC['SYSTEM']
            if v is None:
                return _lib.NOT_FOUND
            ttl = flags = 0
            if isinstance(v, tuple):
                t = v
                v = t[0]
                ttl = t[1] if len(t) > 1 else 0
                flags = t[2] if len(t) > 2 else 0
            vb = _b(v, 'value')
            out.contents.len = len(vb)
            out.contents.ttl_s = int(ttl)
            out.contents.flags = int(flags)
            if vb:
                p = _lib.libc.malloc(len(vb))
                if not p:
                    return _lib.RC['NO_MEMORY']
                ctypes.memmove(p, vb, len(vb))
                out.contents.data = p
            return _lib.OK
        return _lib.LOADER(call)

    def writer(self, fn):
        def call(_arg, key, keylen, value, length, flags):
            try:
                fn(ctypes.string_at(key, keylen),
                   None if not value else ctypes.string_at(value, length))
            except BaseException as e:  # noqa: B902
                self.local.exc = e
                return _lib.RC['SYSTEM']
            return _lib.OK
        return _lib.WRITER(call)

    def reraise(self):
        e = getattr(self.local, 'exc', None)
        if e is not None:
            self.local.exc = None
            raise e


class Cache(_Closing):
    """libkite's cache patterns (docs/patterns.rst), shared by every thread.

    Loaders take the key (bytes) and return bytes, (bytes, ttl_s), or None
    for "does not exist" (cached for negative_ttl); an exception in a
    loader or writer is raised by the call that ran it.
    """

    def __init__(self, seeds, ttl=300, jitter_pct=10, negative_ttl=60, lease=10,
                 wait_ms=2000, poll_ms=5, early=0, stale=True, l1_entries=0, l1_ttl_ms=1000,
                 l1_all=False, breaker_failures=5, breaker_open_ms=1000, fallback_rate=100.0,
                 fallback_burst=10.0, early_beta=0.0, bloom=None, validate=None,
                 write_behind=None,
                 wb_queue=1024, wb_delay_ms=100, timeout_ms=500, retries=2):
        self._cb = _Callbacks()
        o = _lib.CacheOptions()
        self._seeds = (seeds if isinstance(seeds, str) else ','.join(seeds)).encode()
        o.client.seeds = self._seeds
        o.client.timeout_ms = timeout_ms
        o.client.retries = retries if retries else _lib.NO_RETRY
        o.ttl_s, o.negative_ttl_s, o.lease_s = ttl, negative_ttl, lease
        o.jitter_pct = jitter_pct if jitter_pct else _lib.CACHE_OFF
        o.wait_ms, o.poll_ms, o.early_s = wait_ms, poll_ms, early
        o.no_stale = 0 if stale else 1
        o.l1_entries, o.l1_ttl_ms, o.l1_all = l1_entries, l1_ttl_ms, 1 if l1_all else 0
        o.breaker_failures, o.breaker_open_ms = breaker_failures, breaker_open_ms
        o.fallback_rate, o.fallback_burst = fallback_rate, fallback_burst
        o.early_beta = early_beta
        self._bloom = bloom
        if bloom is not None:
            o.bloom = bloom._h
        self._keep = []
        if validate is not None:
            def v(_arg, key, keylen):
                try:
                    return 1 if validate(ctypes.string_at(key, keylen)) else 0
                except Exception:
                    return 0
            self._keep.append(_lib.VALIDATE(v))
            o.validate = self._keep[-1]
        if write_behind is not None:
            self._keep.append(self._cb.writer(write_behind))
            o.wb_writer = self._keep[-1]
            o.wb_queue, o.wb_delay_ms = wb_queue, wb_delay_ms
        h = ctypes.c_void_p()
        rc = _L.kite_cache_open(ctypes.byref(h), ctypes.byref(o))
        if rc != _lib.OK:
            _raise(rc, 'open cache')
        self._h = h
        self._loaders = {}
        _live.add(self)

    def _forked(self):
        pass  # libkite's own fork handler gives the child fresh clients and state

    def close(self):
        """Writes what write-behind has queued, then closes."""
        if self._h is not None:
            _L.kite_cache_close(self._h)
            self._h = None
        _live.discard(self)

    def _value(self, rc, v, what):
        self._cb.reraise()
        if rc == _lib.NOT_FOUND:
            return None
        if rc != _lib.OK:
            _raise(rc, what)
        try:
            return ctypes.string_at(v.data, v.len) if v.len else b''
        finally:
            if v.data:
                _lib.libc.free(v.data)

    def get(self, key, loader):
        """Cache-aside: the value, or loader(key)'s (one load per key across
        threads and processes); None when the source says it does not exist."""
        kb = _b(key)
        fn = self._cb.loader(loader)
        v = _lib.Value()
        rc = _L.kite_cache_get(self._h, kb, len(kb), fn, None, ctypes.byref(v))
        return self._value(rc, v, 'get')

    def register(self, prefix, loader):
        """Read-through: loader serves the keys starting with prefix."""
        fn = self._cb.loader(loader)
        self._loaders[prefix] = fn  # the callback lives as long as the cache
        rc = _L.kite_cache_register(self._h, _b(prefix, 'prefix'), fn, None)
        if rc != _lib.OK:
            _raise(rc, 'register')

    def read(self, key):
        """Read-through: get() with the loader registered for the key's prefix."""
        kb = _b(key)
        v = _lib.Value()
        rc = _L.kite_cache_read(self._h, kb, len(kb), ctypes.byref(v))
        return self._value(rc, v, 'read')

    def write(self, key, value, writer):
        """Write-through: writer(key, value) writes the source (value None:
        delete), then the cached item is marked stale."""
        kb = _b(key)
        vb = None if value is None else _b(value, 'value')
        fn = self._cb.writer(writer)
        rc = _L.kite_cache_write(self._h, kb, len(kb), vb, len(vb) if vb else 0, 0, fn, None)
        self._cb.reraise()
        if rc != _lib.OK:
            _raise(rc, 'write')

    def write_behind(self, key, value):
        """Write-behind: the cache now, the source (the write_behind writer) later."""
        kb = _b(key)
        vb = None if value is None else _b(value, 'value')
        rc = _L.kite_cache_write_behind(self._h, kb, len(kb), vb, len(vb) if vb else 0, 0)
        if rc != _lib.OK:
            _raise(rc, 'write_behind')

    def flush(self):
        """Write every queued write-behind now."""
        rc = _L.kite_cache_flush(self._h)
        if rc != _lib.OK:
            _raise(rc, 'flush')

    def invalidate(self, key):
        """Mark the key stale in the cache (event-based invalidation)."""
        kb = _b(key)
        rc = _L.kite_cache_invalidate(self._h, kb, len(kb))
        if rc != _lib.OK:
            _raise(rc, 'invalidate')

    def stats(self):
        st = _lib.CacheStats()
        _L.kite_cache_stats(self._h, ctypes.byref(st))
        return {n: getattr(st, n) for n in _lib.CACHE_STATS}
