# SPDX-License-Identifier: BSD-3-Clause
"""libkite through ctypes: the structures of kite/kite.h and kite/cache.h, as
they are laid out in C (the tests check the sizes against the library's)."""

import ctypes
import ctypes.util
import os

# enum kite_rc (kite/kite.h)
RC_NAMES = ('OK', 'NOT_FOUND', 'EXISTS', 'TOO_LARGE', 'INVALID', 'NOT_STORED', 'NON_NUMERIC',
            'SERVER_NO_MEMORY', 'UNKNOWN_COMMAND', 'TMPFAIL', 'SERVER_ERROR', 'TIMEOUT',
            'REDIRECTS', 'NO_MAP', 'BAD_ARGUMENT', 'NO_MEMORY', 'SYSTEM', 'PROTOCOL',
            'PENDING', 'AUTH', 'FORBIDDEN', 'RATE_LIMITED', 'UNVALIDATED', 'UNDECRYPTABLE',
            'BUSY')
RC = {n: i for i, n in enumerate(RC_NAMES)}
OK, NOT_FOUND = RC['OK'], RC['NOT_FOUND']

# enum kite_op_type
(GET, SET, ADD, REPLACE, APPEND, PREPEND, DELETE, INCR, DECR, TOUCH, GAT, NODE_NOOP,
 NODE_VERSION, NODE_STATS, NODE_FLUSH, NODE_TOPOLOGY, META_GET, META_SET, META_DELETE,
 META_ARITH) = range(20)

META_WIN, META_BUSY, META_STALE, META_HOT, META_FETCHED = 1, 2, 4, 8, 16
TTL_NONE = -(1 << 63)
CACHE_OFF = 0xffffffff
NO_RETRY = 0xffffffff


class _Priv(ctypes.Structure):
    _fields_ = [('attempts', ctypes.c_uint16), ('redirects', ctypes.c_uint16),
                ('tmpfails', ctypes.c_uint16), ('state', ctypes.c_uint8),
                ('phase', ctypes.c_uint8), ('filled', ctypes.c_uint8),
                ('via', ctypes.c_uint8), ('main_status', ctypes.c_uint16),
                ('fill_flags', ctypes.c_uint32), ('fill_exp', ctypes.c_uint32),
                ('guard_retries', ctypes.c_uint16), ('not_before', ctypes.c_uint64)]


class Op(ctypes.Structure):
    _fields_ = [('type', ctypes.c_int), ('key', ctypes.c_void_p), ('keylen', ctypes.c_size_t),
                ('value', ctypes.c_void_p), ('vallen', ctypes.c_size_t),
                ('flags', ctypes.c_uint32), ('exptime', ctypes.c_uint32),
                ('cas', ctypes.c_uint64), ('delta', ctypes.c_uint64),
                ('initial', ctypes.c_uint64), ('create', ctypes.c_int), ('node', ctypes.c_int),
                ('meta', ctypes.c_char_p),
                ('rc', ctypes.c_int), ('status', ctypes.c_uint16),
                ('result', ctypes.c_void_p), ('result_len', ctypes.c_size_t),
                ('result_flags', ctypes.c_uint32), ('result_cas', ctypes.c_uint64),
                ('counter', ctypes.c_uint64), ('meta_ret', ctypes.c_uint),
                ('ttl', ctypes.c_int64), ('answered_by', ctypes.c_int), ('priv', _Priv)]


class Options(ctypes.Structure):
    _fields_ = [('seeds', ctypes.c_char_p), ('timeout_ms', ctypes.c_uint),
                ('retries', ctypes.c_uint), ('max_redirects', ctypes.c_uint),
                ('tmpfail_retries', ctypes.c_uint), ('refresh_ms', ctypes.c_uint),
                ('payload_max', ctypes.c_uint), ('retry_nonidempotent', ctypes.c_int),
                ('lazy_map', ctypes.c_int), ('warmup_ms', ctypes.c_uint),
                ('read_from', ctypes.c_int), ('tenant_id', ctypes.c_uint32),
                ('tenant_secret', ctypes.c_char_p), ('value_key', ctypes.c_char_p)]


class Value(ctypes.Structure):
    _fields_ = [('data', ctypes.c_void_p), ('len', ctypes.c_size_t),
                ('flags', ctypes.c_uint32), ('ttl_s', ctypes.c_uint32)]


LOADER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                          ctypes.POINTER(Value))
WRITER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                          ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32)
VALIDATE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
CLOCK = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)


class CacheOptions(ctypes.Structure):
    _fields_ = [('client', Options),
                ('ttl_s', ctypes.c_uint32), ('jitter_pct', ctypes.c_uint32),
                ('negative_ttl_s', ctypes.c_uint32), ('lease_s', ctypes.c_uint32),
                ('wait_ms', ctypes.c_uint32), ('poll_ms', ctypes.c_uint32),
                ('early_s', ctypes.c_uint32), ('no_stale', ctypes.c_uint32),
                ('l1_entries', ctypes.c_uint32), ('l1_ttl_ms', ctypes.c_uint32),
                ('l1_all', ctypes.c_uint32),
                ('breaker_failures', ctypes.c_uint), ('breaker_open_ms', ctypes.c_uint),
                ('fallback_rate', ctypes.c_double), ('fallback_burst', ctypes.c_double),
                ('early_beta', ctypes.c_double),
                ('bloom', ctypes.c_void_p),
                ('validate', VALIDATE), ('validate_arg', ctypes.c_void_p),
                ('wb_writer', WRITER), ('wb_arg', ctypes.c_void_p),
                ('wb_queue', ctypes.c_uint32), ('wb_delay_ms', ctypes.c_uint32),
                ('clock_ms', CLOCK), ('clock_arg', ctypes.c_void_p)]


CACHE_STATS = ('gets', 'hits', 'misses', 'loads', 'load_errors', 'coalesced', 'token_waits',
               'wait_timeouts', 'stale_served', 'negative_hits', 'negative_stores',
               'bloom_rejections', 'invalid_keys', 'l1_hits', 'l1_entries', 'early_refreshes',
               'cache_errors', 'breaker_opens', 'breakers_open', 'fallback_loads',
               'fallback_refused', 'writes', 'invalidations', 'wb_queued', 'wb_coalesced',
               'wb_written', 'wb_retries', 'wb_failed', 'wb_dropped', 'wb_depth')


class CacheStats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in CACHE_STATS]


CLIENT_STATS = ('ops', 'datagrams_sent', 'datagrams_received', 'retries', 'redirects',
                'tmpfails', 'map_fetches', 'map_changes', 'late_replies', 'timeouts', 'fills',
                'fill_hits', 'replica_reads', 'replica_fallbacks', 'cookies', 'cookie_retries',
                'auth_refusals')


class ClientStats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in CLIENT_STATS]


def _find():
    """libkite: $KITE_LIBKITE, else the system's (ldconfig), else the build tree's."""
    path = os.environ.get('KITE_LIBKITE')
    if path:
        return path
    found = ctypes.util.find_library('kite')
    if found:
        return found
    here = os.path.dirname(os.path.abspath(__file__))
    for rel in ('../../../../build/lib/libkite.so', '../../../build/lib/libkite.so'):
        p = os.path.normpath(os.path.join(here, rel))
        if os.path.exists(p):
            return p
    raise OSError('libkite not found: install it (ninja -C build install; ldconfig) or set '
                  'KITE_LIBKITE to the path of libkite.so')


def load():
    lib = ctypes.CDLL(_find())
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
    lib.kite_strerror.restype = ctypes.c_char_p
    lib.kite_strerror.argtypes = [ctypes.c_int]
    lib.kite_open.argtypes = [ctypes.POINTER(vp), ctypes.POINTER(Options)]
    lib.kite_close.argtypes = [vp]
    lib.kite_exec.argtypes = [vp, ctypes.POINTER(Op), sz]
    lib.kite_op_clear.argtypes = [ctypes.POINTER(Op)]
    lib.kite_key_owner.argtypes = [vp, vp, sz]
    lib.kite_client_stats.argtypes = [vp, ctypes.POINTER(ClientStats)]
    lib.kite_cache_open.argtypes = [ctypes.POINTER(vp), ctypes.POINTER(CacheOptions)]
    lib.kite_cache_close.argtypes = [vp]
    lib.kite_cache_get.argtypes = [vp, vp, sz, LOADER, vp, ctypes.POINTER(Value)]
    lib.kite_cache_register.argtypes = [vp, ctypes.c_char_p, LOADER, vp]
    lib.kite_cache_read.argtypes = [vp, vp, sz, ctypes.POINTER(Value)]
    lib.kite_cache_write.argtypes = [vp, vp, sz, vp, sz, ctypes.c_uint32, WRITER, vp]
    lib.kite_cache_write_behind.argtypes = [vp, vp, sz, vp, sz, ctypes.c_uint32]
    lib.kite_cache_flush.argtypes = [vp]
    lib.kite_cache_invalidate.argtypes = [vp, vp, sz]
    lib.kite_cache_stats.argtypes = [vp, ctypes.POINTER(CacheStats)]
    lib.kite_bloom_create.argtypes = [ctypes.POINTER(vp), ctypes.c_uint64, ctypes.c_double]
    lib.kite_bloom_free.argtypes = [vp]
    lib.kite_bloom_add.argtypes = [vp, vp, sz]
    lib.kite_bloom_maybe.argtypes = [vp, vp, sz]
    lib.kite_bloom_count.argtypes = [vp]
    lib.kite_bloom_count.restype = ctypes.c_uint64
    return lib


# The C library's allocator: loaders hand it values that the cache frees.
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
