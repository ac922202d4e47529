"""libkite through ctypes, for the integration tests: the client the
cluster tests measure with is the real library (build/lib/libkite.so),
not a re-implementation of its routing.

    lib = kitelib.load(build_dir)
    with kitelib.Client(lib, '198.18.5.11', timeout_ms=300) as c:
        c.set_many({b'k': b'v'})
        c.get_many([b'k'])      # {b'k': b'v'} (misses absent)
"""

import ctypes
import os

KITE_OK = 0
KITE_NOT_FOUND = 1
KITE_EXISTS = 2
KITE_TMPFAIL = 9
KITE_GET, KITE_SET, KITE_ADD, KITE_REPLACE, KITE_APPEND, KITE_PREPEND, KITE_DELETE = range(7)
# After INCR DECR TOUCH GAT and the node commands NOOP VERSION STATS FLUSH TOPOLOGY (kite.h).
KITE_META_GET, KITE_META_SET, KITE_META_DELETE, KITE_META_ARITH = range(16, 20)
META_WIN, META_BUSY, META_STALE, META_HOT, META_FETCHED = 1, 2, 4, 8, 16
KITE_TTL_NONE = -(1 << 63)
KITE_NODE_SEED = -1
KITE_NO_RETRY = 0xffffffff
KITE_NO_WARMUP = 0xffffffff


def _structs():
    """kite/kite.h's structures, as the Python package lays them out (one copy)."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'lib', 'client',
                        'python', 'kite', '_lib.py')
    spec = importlib.util.spec_from_file_location('kite_structs', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_S = _structs()
Op, Options = _S.Op, _S.Options


class MapInfo(ctypes.Structure):
    _fields_ = [('epoch', ctypes.c_uint64), ('vbuckets', ctypes.c_uint32),
                ('copies', ctypes.c_uint), ('members', ctypes.c_uint),
                ('seed_is_memcached', ctypes.c_int)]


Stats = _S.ClientStats


def load(build_dir):
    path = os.path.join(build_dir, 'lib', 'libkite.so')
    lib = ctypes.CDLL(path)
    lib.kite_open.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(Options)]
    lib.kite_close.argtypes = [ctypes.c_void_p]
    lib.kite_exec.argtypes = [ctypes.c_void_p, ctypes.POINTER(Op), ctypes.c_size_t]
    lib.kite_op_clear.argtypes = [ctypes.POINTER(Op)]
    lib.kite_map_refresh.argtypes = [ctypes.c_void_p]
    lib.kite_map_info.argtypes = [ctypes.c_void_p, ctypes.POINTER(MapInfo)]
    lib.kite_client_stats.argtypes = [ctypes.c_void_p, ctypes.POINTER(Stats)]
    lib.kite_strerror.restype = ctypes.c_char_p
    lib.kite_key_owner.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    return lib


class KiteError(Exception):
    pass


class Client:
    def __init__(self, lib, seeds, timeout_ms=300, retries=2, warmup=True, refresh_ms=0,
                 read_any=False, tenant=None, value_key=None, tmpfail_retries=0):
        """tenant: (id, 32-byte secret) to sign as; value_key: 32 bytes to seal
        values with (docs/libkite.rst); tmpfail_retries: ETMPFAIL answers retried
        (0: libkite's default)."""
        self.lib = lib
        self.h = ctypes.c_void_p()
        o = Options()
        o.seeds = seeds.encode()
        o.timeout_ms = timeout_ms
        o.retries = retries if retries else KITE_NO_RETRY
        o.warmup_ms = 0 if warmup else KITE_NO_WARMUP
        o.refresh_ms = refresh_ms
        o.tmpfail_retries = tmpfail_retries
        o.read_from = 1 if read_any else 0
        if tenant is not None:
            o.tenant_id = tenant[0]
            o.tenant_secret = tenant[1]
        if value_key is not None:
            o.value_key = value_key
        rc = lib.kite_open(ctypes.byref(self.h), ctypes.byref(o))
        if rc != KITE_OK:
            raise KiteError('kite_open(%s): %s' % (seeds, lib.kite_strerror(rc).decode()))

    def close(self):
        if self.h:
            self.lib.kite_close(self.h)
            self.h = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _run(self, ops, keep):
        arr = (Op * len(ops))(*ops)
        self.lib.kite_exec(self.h, arr, len(ops))
        out = []
        for op in arr:
            val = ctypes.string_at(op.result, op.result_len) if op.result else b''
            out.append((op.rc, op.status, val, op.result_flags, op.result_cas))
            self.lib.kite_op_clear(ctypes.byref(op))
        del keep
        return out

    def exec(self, kind, items, batch=200, **kw):
        """Run `kind` over [(key, value)] in batches: [(rc, status, value, flags)]."""
        res = []
        for i in range(0, len(items), batch):
            ops, keep = [], []
            for key, value in items[i:i + batch]:
                kb = ctypes.create_string_buffer(key, len(key))
                keep.append(kb)
                op = Op(type=kind, key=ctypes.cast(kb, ctypes.c_void_p), keylen=len(key), **kw)
                if value is not None:
                    vb = ctypes.create_string_buffer(value, len(value))
                    keep.append(vb)
                    op.value = ctypes.cast(vb, ctypes.c_void_p)
                    op.vallen = len(value)
                ops.append(op)
            res += self._run(ops, keep)
        return res

    def meta(self, kind, key, flags, value=None):
        """One meta command (KITE_META_*): a dict of rc, value, meta_ret, ttl, cas,
        flags and counter."""
        kb = ctypes.create_string_buffer(key, len(key))
        fb = ctypes.create_string_buffer(flags.encode() if isinstance(flags, str) else flags)
        keep = [kb, fb]
        op = Op(type=kind, key=ctypes.cast(kb, ctypes.c_void_p), keylen=len(key),
                meta=ctypes.cast(fb, ctypes.c_char_p))
        if value is not None:
            vb = ctypes.create_string_buffer(value, len(value))
            keep.append(vb)
            op.value = ctypes.cast(vb, ctypes.c_void_p)
            op.vallen = len(value)
        arr = (Op * 1)(op)
        self.lib.kite_exec(self.h, arr, 1)
        o = arr[0]
        r = {'rc': o.rc, 'value': ctypes.string_at(o.result, o.result_len) if o.result else b'',
             'meta_ret': o.meta_ret, 'ttl': o.ttl, 'cas': o.result_cas,
             'flags': o.result_flags, 'counter': o.counter}
        self.lib.kite_op_clear(ctypes.byref(arr[0]))
        del keep
        return r

    def set_many(self, kv):
        """{key: value} -> {key: rc}."""
        items = list(kv.items())
        return {k: r[0] for (k, _), r in zip(items, self.exec(KITE_SET, items))}

    def set_many_cas(self, kv):
        """{key: value} -> {key: (rc, cas)}."""
        items = list(kv.items())
        return {k: (r[0], r[4]) for (k, _), r in zip(items, self.exec(KITE_SET, items))}

    def owner(self, key):
        kb = ctypes.create_string_buffer(key, len(key))
        return self.lib.kite_key_owner(self.h, kb, len(key))

    def get_many(self, keys):
        """[key] -> ({key: value} of the hits, {key: rc} of what was neither hit nor miss)."""
        res = self.exec(KITE_GET, [(k, None) for k in keys])
        hits, errors = {}, {}
        for k, (rc, _st, val, _f, _cas) in zip(keys, res):
            if rc == KITE_OK:
                hits[k] = val
            elif rc != KITE_NOT_FOUND:
                errors[k] = rc
        return hits, errors

    def refresh(self):
        return self.lib.kite_map_refresh(self.h)

    def map_info(self):
        mi = MapInfo()
        self.lib.kite_map_info(self.h, ctypes.byref(mi))
        return mi

    def stats(self):
        st = Stats()
        self.lib.kite_client_stats(self.h, ctypes.byref(st))
        return {n: getattr(st, n) for n, _ in Stats._fields_}

    def strerror(self, rc):
        return self.lib.kite_strerror(rc).decode()
