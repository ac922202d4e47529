/* SPDX-License-Identifier: BSD-3-Clause */

/*
 * Unit tests of lib/store: semantics against memcached 1.6's binary
 * protocol (each expectation marked "memcached" was checked against a real
 * memcached 1.6.18 over UDP), the memory budget, the CLOCK hand and the
 * index. White-box: kite_store__check() cross-checks the log, the index
 * and the counters after the operations that matter.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memory.h>

#include "kite_proto.h"
#include "kite_store.h"
#include "kite_store_priv.h"
#include "kite_test.h"

#define T0 1700000000u /* a fixed "now" so TTL arithmetic is exact */

static const uint8_t seed_a[16] = "0123456789abcdef";
static const uint8_t seed_b[16] = "fedcba9876543210";

/* Set by tests that run with the item prefetch off (kited --ablate prefetch). */
static bool mk_no_prefetch;

static struct kite_store *
mk(const char *name, uint64_t mem, uint32_t max_item, uint32_t entries)
{
	struct kite_store_params p = {
		.no_prefetch = mk_no_prefetch,
		.name = name,
		.socket_id = SOCKET_ID_ANY,
		.mem_bytes = mem,
		.index_entries = entries,
		.max_item_size = max_item,
		.id = 7,
		.seed = seed_a,
	};
	struct kite_store *s = kite_store_create(&p);

	assert_non_null(s);
	kite_store_set_time(s, T0);
	return s;
}

static void
check(const struct kite_store *s)
{
	assert_int_equal(kite_store__check(s), 0);
}

static uint64_t
h(const struct kite_store *s, const char *key)
{
	return kite_store_hash(s, key, (uint16_t)strlen(key));
}

/*
 * The store takes absolute expiry times and its own argument structs; the
 * tests below speak memcached's terms (relative or absolute exptime,
 * KITE_DELTA_NO_CREATE), converted here exactly as the engine converts
 * them (kite_proto_exptime() at the partition's clock).
 */
static uint32_t
ttl(const struct kite_store *s, uint32_t exptime)
{
	return kite_proto_exptime(exptime, s->now);
}

static int
mc_store(struct kite_store *s, enum kite_store_mode mode, const void *key, uint16_t keylen,
	 uint64_t hash, const void *val, uint32_t vallen, uint32_t flags, uint32_t exptime,
	 uint64_t cas_in, uint64_t *cas_out)
{
	const struct kite_store_write w = {
		.mode = mode,
		.flags = flags,
		.exptime = ttl(s, exptime),
		.value = val,
		.vallen = vallen,
		.cas = cas_in,
	};

	return kite_store_store(s, key, keylen, hash, &w, cas_out);
}

static int
mc_delta(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash, bool incr,
	 uint64_t d, uint64_t initial, uint32_t exptime, uint64_t cas_in, uint64_t *value,
	 uint64_t *cas)
{
	const struct kite_store_arith a = {
		.incr = incr,
		.create = exptime != KITE_DELTA_NO_CREATE,
		.delta = d,
		.initial = initial,
		.exptime = exptime != KITE_DELTA_NO_CREATE ? ttl(s, exptime) : 0,
		.cas = cas_in,
	};

	return kite_store_delta(s, key, keylen, hash, &a, value, cas);
}

static int
mc_touch(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash, uint32_t exptime,
	 struct kite_store_view *v)
{
	return kite_store_touch(s, key, keylen, hash, ttl(s, exptime), true, v);
}

static void
mc_flush(struct kite_store *s, uint32_t exptime)
{
	kite_store_flush(s, ttl(s, exptime));
}

static int
put(struct kite_store *s, enum kite_store_mode mode, const char *key, const char *val,
    uint32_t flags, uint32_t exptime, uint64_t cas_in, uint64_t *cas_out)
{
	uint64_t dummy;

	return mc_store(s, mode, key, (uint16_t)strlen(key), h(s, key), val, (uint32_t)strlen(val),
			flags, exptime, cas_in, cas_out != NULL ? cas_out : &dummy);
}

static int
set(struct kite_store *s, const char *key, const char *val)
{
	return put(s, KITE_STORE_SET, key, val, 0, 0, 0, NULL);
}

static int
get(struct kite_store *s, const char *key, struct kite_store_view *v)
{
	return kite_store_get(s, key, (uint16_t)strlen(key), h(s, key), v);
}

/* Assert key holds exactly val (and flags, when flags != ~0). */
static void
expect_val(struct kite_store *s, const char *key, const char *val, uint32_t flags)
{
	struct kite_store_view v;

	assert_int_equal(get(s, key, &v), KITE_STORE_OK);
	assert_int_equal(v.vallen, strlen(val));
	assert_memory_equal(v.value, val, v.vallen);
	if (flags != ~0u)
		assert_int_equal(v.flags, flags);
	assert_int_not_equal(v.cas, 0);
}

static void
expect_miss(struct kite_store *s, const char *key)
{
	struct kite_store_view v;

	assert_int_equal(get(s, key, &v), KITE_STORE_NOT_FOUND);
}

static int
delta(struct kite_store *s, const char *key, bool incr, uint64_t d, uint64_t initial,
      uint32_t exptime, uint64_t cas_in, uint64_t *value, uint64_t *cas)
{
	return mc_delta(s, key, (uint16_t)strlen(key), h(s, key), incr, d, initial, exptime, cas_in,
			value, cas);
}

static struct kite_store_stats
stats(const struct kite_store *s)
{
	struct kite_store_stats st;

	kite_store_stats_get(s, &st);
	return st;
}

static size_t
heap_alloc_bytes(void)
{
	struct rte_malloc_socket_stats ms;
	size_t sum = 0;
	unsigned int i;

	for (i = 0; i < rte_socket_count(); i++) {
		assert_int_equal(rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &ms), 0);
		sum += ms.heap_allocsz_bytes;
	}
	return sum;
}

static void
test_create_invalid(void **state)
{
	struct kite_store_params p = {
		.name = "inv",
		.socket_id = SOCKET_ID_ANY,
		.mem_bytes = 1 << 20,
		.max_item_size = 1024,
	};
	struct kite_store *s, *s2;

	(void)state;
	rte_errno = 0;
	assert_null(kite_store_create(NULL));
	assert_int_equal(rte_errno, EINVAL);

	p.name = NULL;
	rte_errno = 0;
	assert_null(kite_store_create(&p));
	assert_int_equal(rte_errno, EINVAL);

	p.name = "";
	rte_errno = 0;
	assert_null(kite_store_create(&p));
	assert_int_equal(rte_errno, EINVAL);

	/* 26 characters would be truncated inside rte_hash's ring name. */
	p.name = "abcdefghijklmnopqrstuvwxyz";
	rte_errno = 0;
	assert_null(kite_store_create(&p));
	assert_int_equal(rte_errno, ENAMETOOLONG);
	p.name = "abcdefghijklmnopqrstuvwxy";
	s = kite_store_create(&p);
	assert_non_null(s);
	kite_store_free(s);

	p.name = "inv";
	p.mem_bytes = 100;
	rte_errno = 0;
	assert_null(kite_store_create(&p));
	assert_int_equal(rte_errno, EINVAL);
	p.mem_bytes = 0;
	rte_errno = 0;
	assert_null(kite_store_create(&p));
	assert_int_equal(rte_errno, EINVAL);

	p.mem_bytes = 1 << 20;
	p.index_entries = 4;
	rte_errno = 0;
	assert_null(kite_store_create(&p));
	assert_int_equal(rte_errno, EINVAL);

	p.index_entries = 0;
	p.max_item_size = UINT32_MAX;
	rte_errno = 0;
	assert_null(kite_store_create(&p));
	assert_int_equal(rte_errno, EINVAL);

	/* More than the EAL's 512 MB of memory. */
	p.max_item_size = 1024;
	p.mem_bytes = 1ULL << 40;
	rte_errno = 0;
	assert_null(kite_store_create(&p));
	assert_int_equal(rte_errno, ENOMEM);

	/* Names are unique among live partitions (rte_hash's namespace). */
	p.mem_bytes = 1 << 20;
	s = kite_store_create(&p);
	assert_non_null(s);
	rte_errno = 0;
	s2 = kite_store_create(&p);
	assert_null(s2);
	assert_int_equal(rte_errno, EEXIST);
	kite_store_free(s);
	/* Freed: the name is available again. */
	s = kite_store_create(&p);
	assert_non_null(s);
	kite_store_free(s);

	kite_store_free(NULL);
}

static void
test_hash(void **state)
{
	struct kite_store_params p = {
		.name = "hb",
		.socket_id = SOCKET_ID_ANY,
		.mem_bytes = 1 << 16,
		.max_item_size = 1024,
		.seed = seed_b,
	};
	struct kite_store *a = mk("ha", 1 << 16, 1024, 0);
	struct kite_store *b = kite_store_create(&p);
	struct kite_store *r1, *r2;

	(void)state;
	assert_non_null(b);
	/* Deterministic under one seed, different under another. */
	assert_int_equal(h(a, "foo"), h(a, "foo"));
	assert_int_not_equal(h(a, "foo"), h(a, "fop"));
	assert_int_not_equal(h(a, "foo"), h(b, "foo"));
	assert_int_equal(kite_store_hash(a, "", 0), kite_store_hash(a, "", 0));
	kite_store_free(b);

	/* No seed: random per partition. */
	p.seed = NULL;
	p.name = "hr1";
	r1 = kite_store_create(&p);
	p.name = "hr2";
	r2 = kite_store_create(&p);
	assert_non_null(r1);
	assert_non_null(r2);
	assert_int_not_equal(h(r1, "foo"), h(r2, "foo"));
	kite_store_free(r1);
	kite_store_free(r2);
	kite_store_free(a);
}

static void
test_set_get_overwrite(void **state)
{
	struct kite_store *s = mk("sgo", 1 << 20, 4096, 0);
	struct kite_store_view v;
	struct kite_store_stats st;
	uint64_t c1, c2;
	const uint8_t bin[5] = { 0, 1, 0xff, ' ', 0 };

	(void)state;
	expect_miss(s, "k");
	assert_int_equal(put(s, KITE_STORE_SET, "k", "hello", 42, 0, 0, &c1), KITE_STORE_OK);
	assert_int_equal(c1 & 0xffff, 7); /* partition id in the low bits */
	expect_val(s, "k", "hello", 42);
	assert_int_equal(get(s, "k", &v), KITE_STORE_OK);
	assert_int_equal(v.cas, c1);

	assert_int_equal(put(s, KITE_STORE_SET, "k", "bye", 1, 0, 0, &c2), KITE_STORE_OK);
	assert_true(c2 > c1);
	expect_val(s, "k", "bye", 1);
	st = stats(s);
	assert_int_equal(st.curr_items, 1);
	assert_int_equal(st.bytes, kite_store__item_size(1, 3));
	assert_int_equal(st.total_items, 2);
	assert_int_equal(st.limit_maxbytes, 1 << 20);

	/* Empty value, binary key and value. */
	assert_int_equal(set(s, "empty", ""), KITE_STORE_OK);
	expect_val(s, "empty", "", 0);
	assert_int_equal(mc_store(s, KITE_STORE_SET, bin, 5, kite_store_hash(s, bin, 5),
					  bin, 5, 0, 0, 0, &c1),
			 KITE_STORE_OK);
	assert_int_equal(kite_store_get(s, bin, 5, kite_store_hash(s, bin, 5), &v), KITE_STORE_OK);
	assert_int_equal(v.vallen, 5);
	assert_memory_equal(v.value, bin, 5);
	/* A prefix of the key is another key. */
	assert_int_equal(kite_store_get(s, bin, 4, kite_store_hash(s, bin, 4), &v),
			 KITE_STORE_NOT_FOUND);
	/* Longest memcached key. */
	{
		char key[KITE_KEY_MAX + 1];

		memset(key, 'K', KITE_KEY_MAX);
		key[KITE_KEY_MAX] = '\0';
		assert_int_equal(set(s, key, "long"), KITE_STORE_OK);
		expect_val(s, key, "long", 0);
	}
	assert_int_equal(stats(s).curr_items, 4);
	check(s);
	kite_store_free(s);
}

static void
test_add_replace_cas(void **state)
{
	struct kite_store *s = mk("arc", 1 << 20, 4096, 0);
	struct kite_store_stats st;
	uint64_t c, c2;

	(void)state;
	assert_int_equal(put(s, KITE_STORE_ADD, "a", "1", 0, 0, 0, &c), KITE_STORE_OK);
	/* memcached binary: ADD on an existing key is KEY_EEXISTS. */
	assert_int_equal(put(s, KITE_STORE_ADD, "a", "2", 0, 0, 0, NULL), KITE_STORE_EXISTS);
	expect_val(s, "a", "1", 0);
	/* memcached binary: REPLACE of a missing key is KEY_ENOENT. */
	assert_int_equal(put(s, KITE_STORE_REPLACE, "nokey", "2", 0, 0, 0, NULL),
			 KITE_STORE_NOT_FOUND);
	expect_miss(s, "nokey");
	assert_int_equal(put(s, KITE_STORE_REPLACE, "a", "3", 9, 0, 0, &c2), KITE_STORE_OK);
	assert_int_not_equal(c2, c);
	expect_val(s, "a", "3", 9);

	/* SET with a cas is compare-and-swap. */
	assert_int_equal(put(s, KITE_STORE_SET, "a", "x", 0, 0, c2 + 1, NULL),
			 KITE_STORE_EXISTS);
	expect_val(s, "a", "3", 9);
	assert_int_equal(put(s, KITE_STORE_SET, "missing", "x", 0, 0, 12345, NULL),
			 KITE_STORE_NOT_FOUND);
	assert_int_equal(put(s, KITE_STORE_SET, "a", "cas", 0, 0, c2, &c), KITE_STORE_OK);
	expect_val(s, "a", "cas", 0);
	/* The old CAS is spent. */
	assert_int_equal(put(s, KITE_STORE_SET, "a", "again", 0, 0, c2, NULL),
			 KITE_STORE_EXISTS);

	/* memcached binary: ADD and REPLACE with a cas are compare-and-swap too. */
	assert_int_equal(put(s, KITE_STORE_ADD, "missing", "x", 0, 0, 12345, NULL),
			 KITE_STORE_NOT_FOUND);
	assert_int_equal(put(s, KITE_STORE_ADD, "a", "addcas", 0, 0, c, &c2), KITE_STORE_OK);
	expect_val(s, "a", "addcas", 0);
	assert_int_equal(put(s, KITE_STORE_REPLACE, "a", "r", 0, 0, c, NULL),
			 KITE_STORE_EXISTS);
	assert_int_equal(put(s, KITE_STORE_REPLACE, "missing", "r", 0, 0, c, NULL),
			 KITE_STORE_NOT_FOUND);
	assert_int_equal(put(s, KITE_STORE_REPLACE, "a", "replcas", 0, 0, c2, NULL),
			 KITE_STORE_OK);
	expect_val(s, "a", "replcas", 0);

	st = stats(s);
	assert_int_equal(st.cas_hits, 3);
	assert_int_equal(st.cas_badval, 3);
	assert_int_equal(st.cas_misses, 3);
	assert_int_equal(st.curr_items, 1);
	assert_int_equal(put(s, 99, "a", "bad mode", 0, 0, 0, NULL), KITE_STORE_INVALID);
	check(s);
	kite_store_free(s);
}

static void
test_append_prepend(void **state)
{
	struct kite_store *s = mk("app", 1 << 20, 16, 0);
	uint64_t c, c2;

	(void)state;
	/* memcached binary: APPEND/PREPEND to a missing key is NOT_STORED. */
	assert_int_equal(put(s, KITE_STORE_APPEND, "x", "v", 0, 0, 0, NULL),
			 KITE_STORE_NOT_STORED);
	assert_int_equal(put(s, KITE_STORE_PREPEND, "x", "v", 0, 0, 0, NULL),
			 KITE_STORE_NOT_STORED);
	expect_miss(s, "x");

	assert_int_equal(put(s, KITE_STORE_SET, "ap", "mid", 42, 10, 0, &c), KITE_STORE_OK);
	assert_int_equal(put(s, KITE_STORE_APPEND, "ap", "X", 0, 0, c + 1, NULL),
			 KITE_STORE_EXISTS);
	/* Flags and expiry given with APPEND are ignored: the item's stay. */
	assert_int_equal(put(s, KITE_STORE_APPEND, "ap", "_end", 5, 1000, c, &c2), KITE_STORE_OK);
	assert_int_not_equal(c2, c);
	assert_int_equal(put(s, KITE_STORE_PREPEND, "ap", "start_", 6, 1000, 0, &c),
			 KITE_STORE_OK);
	expect_val(s, "ap", "start_mid_end", 42);
	assert_int_equal(stats(s).curr_items, 1);
	assert_int_equal(stats(s).bytes, kite_store__item_size(2, 13));

	/* Combined length over max_item_size (16). */
	/* As memcached: NOT_STORED, old value kept. */
	assert_int_equal(put(s, KITE_STORE_APPEND, "ap", "1234", 0, 0, 0, NULL),
			 KITE_STORE_NOT_STORED);
	assert_int_equal(put(s, KITE_STORE_PREPEND, "ap", "1234", 0, 0, 0, NULL),
			 KITE_STORE_NOT_STORED);
	assert_int_equal(put(s, KITE_STORE_APPEND, "ap", "123", 0, 0, 0, NULL), KITE_STORE_OK);
	expect_val(s, "ap", "start_mid_end123", 42);
	assert_int_equal(stats(s).store_too_large, 2);

	/* The original TTL (10 s) survived both appends. */
	kite_store_set_time(s, T0 + 9);
	expect_val(s, "ap", "start_mid_end123", 42);
	kite_store_set_time(s, T0 + 10);
	expect_miss(s, "ap");

	/* Empty appends still store (new CAS). */
	assert_int_equal(put(s, KITE_STORE_SET, "e", "", 0, 0, 0, &c), KITE_STORE_OK);
	assert_int_equal(put(s, KITE_STORE_APPEND, "e", "", 0, 0, 0, &c2), KITE_STORE_OK);
	assert_int_not_equal(c, c2);
	expect_val(s, "e", "", 0);
	check(s);
	kite_store_free(s);
}

/*
 * Build one value of 35 x 29,900 bytes with APPENDs (the attack run's
 * case: 35 APPENDs to 1 MiB evicted 966 of 4,000 live keys of a cache 90 %
 * empty). In a row each grows the item at the log head where it is: no
 * eviction, the log holds the value once. With another write between them
 * each APPEND rewrites the whole value: the same value churns the log and
 * evicts live keys. The values are right either way; PREPEND too.
 */
static int put_num(struct kite_store *s, int i, uint32_t vallen);

static int
build_big(struct kite_store *s, const char *key, bool interleave, uint8_t *want, uint32_t *len)
{
	static uint8_t piece[29900]; /* 35 of them: 1,046,500 bytes, under 1 MiB */
	uint64_t cas;
	int rc;

	*len = 0;
	for (int i = 0; i < 35; i++) {
		memset(piece, 'A' + i % 26, sizeof(piece));
		piece[0] = (uint8_t)i;
		rc = mc_store(s, i == 0 ? KITE_STORE_SET : KITE_STORE_APPEND, key,
			      (uint16_t)strlen(key), h(s, key), piece, sizeof(piece), 0, 0, 0, &cas);
		if (rc != KITE_STORE_OK)
			return rc;
		memcpy(want + *len, piece, sizeof(piece));
		*len += sizeof(piece);
		if (interleave)
			assert_int_equal(set(s, "between", "x"), KITE_STORE_OK);
	}
	return KITE_STORE_OK;
}

static void
test_append_in_place(void **state)
{
	static uint8_t want[35 * 29900 + 64];
	struct kite_store_view v;
	uint32_t len;
	uint64_t c1, c2;

	(void)state;
	for (int interleave = 0; interleave < 2; interleave++) {
		struct kite_store *s = mk(interleave ? "appip1" : "appip0", 16 << 20, 1 << 20, 0);

		for (int i = 0; i < 1000; i++)
			assert_int_equal(put_num(s, i, 1000), KITE_STORE_OK);
		assert_int_equal(build_big(s, "big", interleave, want, &len), KITE_STORE_OK);
		assert_int_equal(get(s, "big", &v), KITE_STORE_OK);
		assert_int_equal(v.vallen, len);
		assert_memory_equal(v.value, want, len);
		print_message("35 APPENDs %s: %" PRIu64 " of 1000 live keys evicted, %" PRIu64
			      " in place\n", interleave ? "with a write between" : "in a row",
			      stats(s).evictions, stats(s).appends_in_place);
		if (!interleave) {
			assert_int_equal(stats(s).appends_in_place, 34);
			assert_int_equal(stats(s).evictions, 0);
			assert_true(kite_store__log_used(s) <
				    1000 * kite_store__item_size(10, 1000) + 2 * len);
		} else {
			assert_int_equal(stats(s).appends_in_place, 0);
			assert_true(stats(s).evictions > 0);
		}
		check(s);
		kite_store_free(s);
	}

	struct kite_store *s = mk("appip2", 1 << 20, 4096, 0);
	/* At the head: PREPEND moves the value up, keeps the key, new CAS. */
	assert_int_equal(put(s, KITE_STORE_SET, "p", "middle", 3, 0, 0, &c1), KITE_STORE_OK);
	assert_int_equal(put(s, KITE_STORE_PREPEND, "p", "front-", 9, 0, 0, &c2), KITE_STORE_OK);
	assert_int_not_equal(c1, c2);
	assert_int_equal(put(s, KITE_STORE_APPEND, "p", "-back", 9, 0, c2, &c1), KITE_STORE_OK);
	expect_val(s, "p", "front-middle-back", 3);
	assert_int_equal(stats(s).appends_in_place, 2);
	/* Not at the head, but the record's padding takes it: still in place. */
	assert_int_equal(set(s, "pad", "abc"), KITE_STORE_OK); /* 40 + 3 + 3: 2 bytes spare */
	assert_int_equal(set(s, "other", "o"), KITE_STORE_OK);
	assert_int_equal(put(s, KITE_STORE_APPEND, "pad", "d", 0, 0, 0, NULL), KITE_STORE_OK);
	assert_int_equal(stats(s).appends_in_place, 3);
	expect_val(s, "pad", "abcd", 0);
	/* Neither: a copy at the head, and the next one grows it there. */
	assert_int_equal(put(s, KITE_STORE_APPEND, "pad", "efghijklmn", 0, 0, 0, NULL),
			 KITE_STORE_OK);
	assert_int_equal(stats(s).appends_in_place, 3);
	assert_int_equal(put(s, KITE_STORE_PREPEND, "pad", "0123456789", 0, 0, 0, NULL),
			 KITE_STORE_OK);
	assert_int_equal(stats(s).appends_in_place, 4);
	expect_val(s, "pad", "0123456789abcdefghijklmn", 0);
	assert_int_equal(stats(s).bytes, kite_store__item_size(1, 17) +
						 kite_store__item_size(3, 24) +
						 kite_store__item_size(5, 1));
	assert_int_equal(stats(s).curr_items, 3);
	check(s);
	kite_store_free(s);
}

static int
tput(struct kite_store *s, enum kite_store_mode mode, uint8_t tenant, const char *key, uint32_t vallen)
{
	static uint8_t v[4096];
	uint64_t cas;
	struct kite_store_write w = {
		.mode = mode, .value = v, .vallen = vallen, .tenant = tenant,
	};

	memset(v, 't', vallen);
	return kite_store_store(s, key, (uint16_t)strlen(key), h(s, key), &w, &cas);
}

/*
 * Tenants' memory shares: each item carries its writer's tag; a tenant's
 * live bytes are counted through store, overwrite, APPEND (in place or
 * not), INCR, delete, expiry and flush; a store past the share is refused
 * (NO_MEMORY, counted; a refused SET drops the old value as memcached
 * does), other tenants and untagged writers are not held back, and freed
 * bytes can be used again.
 */
static void
test_tenant_share(void **state)
{
	struct kite_store *s = mk("share", 1 << 20, 4096, 0);
	const uint64_t one = kite_store__item_size(2, 1000);
	const struct kite_store_arith a = { .incr = true, .create = true, .initial = 5, .tenant = 7 };
	uint64_t v, cas;

	(void)state;
	kite_store_set_share(s, 7, 3 * one);
	assert_int_equal(tput(s, KITE_STORE_SET, 7, "a1", 1000), KITE_STORE_OK);
	assert_int_equal(tput(s, KITE_STORE_SET, 7, "a2", 1000), KITE_STORE_OK);
	assert_int_equal(tput(s, KITE_STORE_SET, 7, "a3", 1000), KITE_STORE_OK);
	assert_int_equal(kite_store_tenant_bytes(s, 7), 3 * one);
	/* Full: a fourth is refused; overwriting one of its own fits (the old is given back). */
	assert_int_equal(tput(s, KITE_STORE_SET, 7, "a4", 1000), KITE_STORE_NO_MEMORY);
	assert_int_equal(stats(s).over_share, 1);
	assert_int_equal(tput(s, KITE_STORE_SET, 7, "a3", 900), KITE_STORE_OK);
	/* Another tenant, and writers without one, are not held back. */
	assert_int_equal(tput(s, KITE_STORE_SET, 8, "b1", 1000), KITE_STORE_OK);
	assert_int_equal(tput(s, KITE_STORE_SET, 0, "c1", 1000), KITE_STORE_OK);
	assert_int_equal(kite_store_tenant_bytes(s, 8), one);
	/* APPEND past the share: refused, the value kept. */
	assert_int_equal(tput(s, KITE_STORE_APPEND, 7, "a1", 200), KITE_STORE_NO_MEMORY);
	assert_int_equal(get(s, "a1", &(struct kite_store_view){ 0 }), KITE_STORE_OK);
	/* A SET past the share drops the old value (memcached's rule for a failed SET). */
	assert_int_equal(tput(s, KITE_STORE_SET, 7, "a1", 2000), KITE_STORE_NO_MEMORY);
	expect_miss(s, "a1");
	assert_int_equal(kite_store_tenant_bytes(s, 7), one + kite_store__item_size(2, 900));
	/* INCR creates a tagged item; DELETE gives bytes back. */
	assert_int_equal(kite_store_delta(s, "n7", 2, h(s, "n7"), &a, &v, &cas), KITE_STORE_OK);
	assert_int_equal(kite_store_tenant_bytes(s, 7),
			 one + kite_store__item_size(2, 900) + kite_store__item_size(2, 1));
	assert_int_equal(kite_store_delete(s, "a2", 2, h(s, "a2"), 0), KITE_STORE_OK);
	assert_int_equal(tput(s, KITE_STORE_SET, 7, "a5", 1000), KITE_STORE_OK);
	/* APPEND in place at the head counts its growth; a copy moves the bytes. */
	assert_int_equal(tput(s, KITE_STORE_APPEND, 7, "a5", 8), KITE_STORE_OK);
	check(s);
	/* Expiry: the hand or a lookup gives them back. */
	struct kite_store_write w = { .mode = KITE_STORE_SET, .value = "x", .vallen = 1,
				      .exptime = T0 + 5, .tenant = 8 };
	assert_int_equal(kite_store_store(s, "e8", 2, h(s, "e8"), &w, &cas), KITE_STORE_OK);
	kite_store_set_time(s, T0 + 6);
	expect_miss(s, "e8");
	assert_int_equal(kite_store_tenant_bytes(s, 8), one);
	check(s);
	/* A flush: nothing counted, the whole share usable again. */
	kite_store_flush(s, 0);
	assert_int_equal(kite_store_tenant_bytes(s, 7), 0);
	for (int i = 0; i < 3; i++) {
		char key[4] = { 'f', (char)('0' + i), 0 };
		assert_int_equal(tput(s, KITE_STORE_SET, 7, key, 1000), KITE_STORE_OK);
	}
	check(s);
	/* No share: no limit. */
	kite_store_set_share(s, 7, 0);
	assert_int_equal(tput(s, KITE_STORE_SET, 7, "g1", 3000), KITE_STORE_OK);
	check(s);
	kite_store_free(s);
}

static void
test_delete(void **state)
{
	struct kite_store *s = mk("del", 1 << 20, 4096, 0);
	struct kite_store_stats st;
	uint64_t c;

	(void)state;
	assert_int_equal(kite_store_delete(s, "d", 1, h(s, "d"), 0), KITE_STORE_NOT_FOUND);
	assert_int_equal(put(s, KITE_STORE_SET, "d", "v", 0, 0, 0, &c), KITE_STORE_OK);
	assert_int_equal(kite_store_delete(s, "d", 1, h(s, "d"), c + 1), KITE_STORE_EXISTS);
	expect_val(s, "d", "v", 0);
	assert_int_equal(kite_store_delete(s, "d", 1, h(s, "d"), c), KITE_STORE_OK);
	expect_miss(s, "d");
	assert_int_equal(kite_store_delete(s, "d", 1, h(s, "d"), 0), KITE_STORE_NOT_FOUND);
	assert_int_equal(set(s, "d2", "v"), KITE_STORE_OK);
	assert_int_equal(kite_store_delete(s, "d2", 2, h(s, "d2"), 0), KITE_STORE_OK);
	st = stats(s);
	assert_int_equal(st.delete_hits, 2);
	assert_int_equal(st.delete_misses, 2);
	assert_int_equal(st.curr_items, 0);
	assert_int_equal(st.bytes, 0);
	/* A deleted key can be added again. */
	assert_int_equal(put(s, KITE_STORE_ADD, "d", "new", 0, 0, 0, NULL), KITE_STORE_OK);
	expect_val(s, "d", "new", 0);
	check(s);
	kite_store_free(s);
}

/* One INCR on a stored value, as probed against memcached 1.6.18. */
struct delta_case {
	const char *stored;
	int status;
	uint64_t result;
	const char *after; /* stored bytes afterwards */
};

static void
test_delta_parse(void **state)
{
	static const struct delta_case cases[] = {
		{ "abc", KITE_STORE_NON_NUMERIC, 0, "abc" },
		{ "", KITE_STORE_NON_NUMERIC, 0, "" },
		{ "  ", KITE_STORE_NON_NUMERIC, 0, "  " },
		{ " 12", KITE_STORE_OK, 13, "13 " },
		{ "12 ", KITE_STORE_OK, 13, "13 " },
		{ "12abc", KITE_STORE_NON_NUMERIC, 0, "12abc" },
		{ "-1", KITE_STORE_NON_NUMERIC, 0, "-1" },
		{ "-0", KITE_STORE_OK, 1, "1 " },
		{ "+5", KITE_STORE_OK, 6, "6 " },
		{ "18446744073709551616", KITE_STORE_NON_NUMERIC, 0, "18446744073709551616" },
		{ "-18446744073709551615", KITE_STORE_OK, 2, "2                    " },
		{ "0x10", KITE_STORE_NON_NUMERIC, 0, "0x10" },
		{ "\t7\n", KITE_STORE_OK, 8, "8  " },
		{ "9223372036854775808", KITE_STORE_OK, 9223372036854775809ULL,
		  "9223372036854775809" },
		{ "00000000000000000000000000042", KITE_STORE_OK, 43,
		  "43                           " },
		{ "-", KITE_STORE_NON_NUMERIC, 0, "-" },
		{ "1-", KITE_STORE_NON_NUMERIC, 0, "1-" },
	};
	struct kite_store *s = mk("dpar", 1 << 20, 4096, 0);
	struct kite_store_view v;
	uint64_t val, cas;
	size_t i;

	(void)state;
	for (i = 0; i < RTE_DIM(cases); i++) {
		const struct delta_case *dc = &cases[i];

		assert_int_equal(set(s, "nv", dc->stored), KITE_STORE_OK);
		val = 0xdead;
		assert_int_equal(delta(s, "nv", true, 1, 0, 0, 0, &val, &cas), dc->status);
		if (dc->status == KITE_STORE_OK)
			assert_int_equal(val, dc->result);
		expect_val(s, "nv", dc->after, ~0u);
	}
	/* A NUL byte ends the number like a space (memcached: "12\0zz" -> 13). */
	assert_int_equal(mc_store(s, KITE_STORE_SET, "nv", 2, h(s, "nv"), "12\0zz", 5, 0, 0,
					  0, &cas),
			 KITE_STORE_OK);
	assert_int_equal(delta(s, "nv", true, 1, 0, 0, 0, &val, &cas), KITE_STORE_OK);
	assert_int_equal(val, 13);
	assert_int_equal(get(s, "nv", &v), KITE_STORE_OK);
	assert_int_equal(v.vallen, 5);
	assert_memory_equal(v.value, "13   ", 5);
	check(s);
	kite_store_free(s);
}

static void
test_delta(void **state)
{
	struct kite_store *s = mk("delta", 1 << 20, 4096, 0);
	struct kite_store_stats st;
	struct kite_store_view v;
	uint64_t val, cas, cas2;

	(void)state;
	/* memcached: "10" decr 1 is rewritten in place as "9 ". */
	assert_int_equal(put(s, KITE_STORE_SET, "n", "10", 5, 0, 0, &cas), KITE_STORE_OK);
	assert_int_equal(delta(s, "n", false, 1, 0, 0, 0, &val, &cas2), KITE_STORE_OK);
	assert_int_equal(val, 9);
	assert_int_not_equal(cas2, cas);
	expect_val(s, "n", "9 ", 5);
	assert_int_equal(get(s, "n", &v), KITE_STORE_OK);
	assert_int_equal(v.cas, cas2);
	/* Growing past the old length stores a new item; flags kept. */
	assert_int_equal(delta(s, "n", true, 100, 0, 0, 0, &val, &cas), KITE_STORE_OK);
	assert_int_equal(val, 109);
	expect_val(s, "n", "109", 5);
	assert_int_equal(stats(s).curr_items, 1);
	assert_int_equal(stats(s).bytes, kite_store__item_size(1, 3));
	/* "100" decr 1 -> "99 ", then to 0 -> "0  ". */
	assert_int_equal(set(s, "h", "100"), KITE_STORE_OK);
	assert_int_equal(delta(s, "h", false, 1, 0, 0, 0, &val, &cas), KITE_STORE_OK);
	expect_val(s, "h", "99 ", 0);
	assert_int_equal(delta(s, "h", false, 99, 0, 0, 0, &val, &cas), KITE_STORE_OK);
	assert_int_equal(val, 0);
	expect_val(s, "h", "0  ", 0);
	/* Floor at 0, and still a new CAS. */
	assert_int_equal(set(s, "z", "5"), KITE_STORE_OK);
	assert_int_equal(delta(s, "z", false, 10, 0, 0, 0, &val, &cas), KITE_STORE_OK);
	assert_int_equal(val, 0);
	assert_int_equal(delta(s, "z", false, 1, 0, 0, 0, &val, &cas2), KITE_STORE_OK);
	assert_int_equal(val, 0);
	assert_int_not_equal(cas, cas2);
	expect_val(s, "z", "0", 0);
	/* Wrap at 2^64 (memcached stores "1" padded to 20 bytes). */
	assert_int_equal(set(s, "w", "18446744073709551615"), KITE_STORE_OK);
	assert_int_equal(delta(s, "w", true, 2, 0, 0, 0, &val, &cas), KITE_STORE_OK);
	assert_int_equal(val, 1);
	expect_val(s, "w", "1                   ", 0);
	assert_int_equal(delta(s, "w", true, UINT64_MAX, 0, 0, 0, &val, &cas), KITE_STORE_OK);
	assert_int_equal(val, 0);

	/* Missing key: no-create, create with initial (flags 0, given TTL). */
	assert_int_equal(delta(s, "nm", true, 1, 77, KITE_DELTA_NO_CREATE, 0, &val, &cas),
			 KITE_STORE_NOT_FOUND);
	assert_int_equal(delta(s, "nm", false, 1, 77, KITE_DELTA_NO_CREATE, 0, &val, &cas),
			 KITE_STORE_NOT_FOUND);
	expect_miss(s, "nm");
	assert_int_equal(delta(s, "nm", true, 1, 77, 10, 0, &val, &cas), KITE_STORE_OK);
	assert_int_equal(val, 77);
	assert_int_equal(get(s, "nm", &v), KITE_STORE_OK);
	assert_int_equal(v.cas, cas);
	expect_val(s, "nm", "77", 0);
	assert_int_equal(delta(s, "dm", false, 1, 5, 0, 0, &val, &cas), KITE_STORE_OK);
	assert_int_equal(val, 5);
	expect_val(s, "dm", "5", 0);
	assert_int_equal(delta(s, "big", true, 1, UINT64_MAX, 0, 0, &val, &cas), KITE_STORE_OK);
	expect_val(s, "big", "18446744073709551615", 0);
	/* memcached creates even when a cas was given for a missing key. */
	assert_int_equal(delta(s, "nc", true, 1, 9, 0, 1234, &val, &cas), KITE_STORE_OK);
	assert_int_equal(val, 9);
	/* The no-create expiry is ignored for an existing key. */
	assert_int_equal(delta(s, "nc", true, 1, 0, KITE_DELTA_NO_CREATE, 0, &val, &cas),
			 KITE_STORE_OK);
	assert_int_equal(val, 10);
	/* cas mismatch / match on an existing key. */
	assert_int_equal(delta(s, "nc", true, 1, 0, 0, cas + 1, &val, &cas2),
			 KITE_STORE_EXISTS);
	assert_int_equal(delta(s, "nc", true, 1, 0, 0, cas, &val, &cas2), KITE_STORE_OK);
	assert_int_equal(val, 11);
	/* The created item's TTL applies. */
	kite_store_set_time(s, T0 + 10);
	expect_miss(s, "nm");
	/* Non-numeric value is left alone. */
	assert_int_equal(set(s, "txt", "xxxxxxxxxx"), KITE_STORE_OK);
	assert_int_equal(delta(s, "txt", true, 1, 0, 0, 0, &val, &cas), KITE_STORE_NON_NUMERIC);
	expect_val(s, "txt", "xxxxxxxxxx", 0);

	st = stats(s);
	assert_int_equal(st.incr_misses, 1);
	assert_int_equal(st.decr_misses, 1);
	assert_int_equal(st.incr_hits, 5);
	assert_int_equal(st.decr_hits, 5);
	check(s);
	kite_store_free(s);
}

static void
test_ttl_touch(void **state)
{
	struct kite_store *s = mk("ttl", 1 << 20, 4096, 0);
	struct kite_store_view v;
	struct kite_store_stats st;

	(void)state;
	/* Relative. */
	assert_int_equal(put(s, KITE_STORE_SET, "rel", "v", 0, 2, 0, NULL), KITE_STORE_OK);
	/* Exactly 30 days is still relative. */
	assert_int_equal(put(s, KITE_STORE_SET, "max", "v", 0, KITE_REALTIME_MAXDELTA, 0, NULL),
			 KITE_STORE_OK);
	/* Absolute, in the future and in the past (memcached: born expired). */
	assert_int_equal(put(s, KITE_STORE_SET, "abs", "v", 0, T0 + 5, 0, NULL), KITE_STORE_OK);
	assert_int_equal(
		put(s, KITE_STORE_SET, "past", "v", 0, KITE_REALTIME_MAXDELTA + 5, 0, NULL),
		KITE_STORE_OK);
	assert_int_equal(put(s, KITE_STORE_SET, "past2", "v", 0, T0, 0, NULL), KITE_STORE_OK);
	assert_int_equal(put(s, KITE_STORE_SET, "never", "v", 0, 0, 0, NULL), KITE_STORE_OK);
	expect_miss(s, "past");
	expect_miss(s, "past2");
	/* An expired key is missing for ADD too. */
	assert_int_equal(put(s, KITE_STORE_SET, "ex", "v", 0, 1, 0, NULL), KITE_STORE_OK);
	kite_store_set_time(s, T0 + 1);
	expect_val(s, "rel", "v", 0);
	assert_int_equal(put(s, KITE_STORE_ADD, "ex", "new", 0, 0, 0, NULL), KITE_STORE_OK);
	expect_val(s, "ex", "new", 0);
	kite_store_set_time(s, T0 + 2);
	expect_miss(s, "rel");
	expect_val(s, "abs", "v", 0);
	kite_store_set_time(s, T0 + 5);
	expect_miss(s, "abs");
	kite_store_set_time(s, T0 + KITE_REALTIME_MAXDELTA - 1);
	expect_val(s, "max", "v", 0);
	kite_store_set_time(s, T0 + KITE_REALTIME_MAXDELTA);
	expect_miss(s, "max");
	expect_val(s, "never", "v", 0);

	/* Touch: missing, extend, shorten to the past; keeps the CAS. */
	kite_store_set_time(s, T0);
	assert_int_equal(mc_touch(s, "tm", 2, h(s, "tm"), 10, &v), KITE_STORE_NOT_FOUND);
	assert_int_equal(put(s, KITE_STORE_SET, "t", "tv", 3, 1, 0, NULL), KITE_STORE_OK);
	assert_int_equal(mc_touch(s, "t", 1, h(s, "t"), 100, &v), KITE_STORE_OK);
	assert_int_equal(v.vallen, 2);
	assert_memory_equal(v.value, "tv", 2);
	assert_int_equal(v.flags, 3);
	kite_store_set_time(s, T0 + 50);
	expect_val(s, "t", "tv", 3);
	assert_int_equal(mc_touch(s, "t", 1, h(s, "t"), 0, &v), KITE_STORE_OK);
	kite_store_set_time(s, T0 + 5000);
	expect_val(s, "t", "tv", 3);
	assert_int_equal(mc_touch(s, "t", 1, h(s, "t"), 1, &v), KITE_STORE_OK);
	kite_store_set_time(s, T0 + 5001);
	assert_int_equal(mc_touch(s, "t", 1, h(s, "t"), 100, &v), KITE_STORE_NOT_FOUND);
	expect_miss(s, "t");

	st = stats(s);
	assert_int_equal(st.touch_hits, 3);
	assert_int_equal(st.touch_misses, 2);
	/* past, past2, ex (via ADD), rel, abs, max, t (via touch). */
	assert_int_equal(st.get_expired, 7);
	/* Never read before expiring: past, past2, ex. */
	assert_int_equal(st.expired_unfetched, 3);
	check(s);
	kite_store_free(s);
}

static void
test_flush(void **state)
{
	struct kite_store *s = mk("flush", 1 << 20, 4096, 0);
	struct kite_store_stats st;

	(void)state;
	assert_int_equal(set(s, "a", "1"), KITE_STORE_OK);
	assert_int_equal(set(s, "b", "2"), KITE_STORE_OK);
	mc_flush(s, 0);
	expect_miss(s, "a");
	/* memcached: a store in the same second after the flush is visible. */
	assert_int_equal(set(s, "c", "3"), KITE_STORE_OK);
	expect_val(s, "c", "3", 0);
	/* Flushed items are missing for every command. */
	assert_int_equal(put(s, KITE_STORE_REPLACE, "b", "x", 0, 0, 0, NULL),
			 KITE_STORE_NOT_FOUND);
	assert_int_equal(put(s, KITE_STORE_ADD, "b", "new", 0, 0, 0, NULL), KITE_STORE_OK);
	expect_val(s, "b", "new", 0);

	/* Delayed: items stored before T vanish at T; later ones stay. */
	mc_flush(s, 10);
	assert_int_equal(set(s, "d", "4"), KITE_STORE_OK);
	kite_store_set_time(s, T0 + 9);
	expect_val(s, "c", "3", 0);
	assert_int_equal(set(s, "e", "5"), KITE_STORE_OK);
	kite_store_set_time(s, T0 + 10);
	expect_miss(s, "b");
	expect_miss(s, "c");
	expect_miss(s, "d");
	expect_miss(s, "e");
	assert_int_equal(set(s, "f", "6"), KITE_STORE_OK);
	kite_store_set_time(s, T0 + 11);
	expect_val(s, "f", "6", 0);

	/* A later flush replaces a pending one. */
	mc_flush(s, T0 + 100); /* absolute */
	mc_flush(s, 1000);
	kite_store_set_time(s, T0 + 200);
	expect_val(s, "f", "6", 0);
	/* An absolute flush time already past flushes now. */
	mc_flush(s, T0 + 100);
	expect_miss(s, "f");
	/* And flush 0 cancels a pending one. */
	assert_int_equal(set(s, "g", "7"), KITE_STORE_OK);
	mc_flush(s, 5);
	mc_flush(s, 0);
	assert_int_equal(set(s, "h", "8"), KITE_STORE_OK);
	kite_store_set_time(s, T0 + 300);
	expect_miss(s, "g");
	expect_val(s, "h", "8", 0);

	st = stats(s);
	/* a, b (via REPLACE), b again, c, d, e, f, g */
	assert_int_equal(st.get_flushed, 8);
	assert_int_equal(st.curr_items, 1);
	check(s);
	kite_store_free(s);
}

/* Deterministic PRNG for the randomized tests. */
static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#define SH_KEYS 4000

/* Shadow of what the store may hold: the last value written per key. */
struct shadow {
	bool present;
	uint32_t len;
	uint32_t version;
};

static void
fill_value(uint8_t *buf, uint32_t len, int key, uint32_t version)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(key * 31 + version * 7 + i);
}

static void
key_name(char *buf, size_t cap, int key)
{
	snprintf(buf, cap, "key:%d:%.*s", key, key % 33, "abcdefghijklmnopqrstuvwxyzABCDEFG");
}

static void
test_budget(void **state)
{
	const uint64_t mem = 256 * 1024 + 3; /* not a multiple of 8 on purpose */
	struct kite_store *s;
	static struct shadow sh[SH_KEYS];
	static uint8_t buf[8192], expect[8192];
	struct kite_store_stats st;
	uint64_t rng = 42, written = 0;
	size_t heap0;
	int op;

	(void)state;
	memset(sh, 0, sizeof(sh));
	s = mk("budget", mem, 8192, 0);
	heap0 = heap_alloc_bytes();
	for (op = 0; op < 300000; op++) {
		uint64_t r = splitmix64(&rng);
		int k = (int)(r % SH_KEYS);
		uint32_t what = (uint32_t)(r >> 32) % 100;
		char key[64];
		uint16_t kl;
		uint64_t hk, cas;
		struct kite_store_view v;

		key_name(key, sizeof(key), k);
		kl = (uint16_t)strlen(key);
		hk = kite_store_hash(s, key, kl);
		if (what < 45) {
			/* Mostly small values, some large, to wrap with fillers. */
			uint32_t len = (uint32_t)(r >> 40) % 16 == 0 ? (uint32_t)(r >> 20) % 8192
								     : (uint32_t)(r >> 20) % 300;

			sh[k].version++;
			fill_value(buf, len, k, sh[k].version);
			assert_int_equal(mc_store(s, KITE_STORE_SET, key, kl, hk, buf, len,
							  0, 0, 0, &cas),
					 KITE_STORE_OK);
			sh[k].present = true;
			sh[k].len = len;
			written += kite_store__item_size(kl, len);
		} else if (what < 50) {
			int ret = kite_store_delete(s, key, kl, hk, 0);

			assert_true(ret == KITE_STORE_OK || ret == KITE_STORE_NOT_FOUND);
			assert_true(ret == KITE_STORE_NOT_FOUND || sh[k].present);
			sh[k].present = false;
		} else {
			int ret = kite_store_get(s, key, kl, hk, &v);

			if (ret == KITE_STORE_OK) {
				/* A hit is never stale and never another key's. */
				assert_true(sh[k].present);
				assert_int_equal(v.vallen, sh[k].len);
				fill_value(expect, v.vallen, k, sh[k].version);
				assert_memory_equal(v.value, expect, v.vallen);
			} else {
				assert_int_equal(ret, KITE_STORE_NOT_FOUND);
			}
		}
		assert_true(kite_store__log_used(s) <= mem);
		if (op % 5000 == 0)
			check(s);
		if (op % 50000 == 49999) {
			/* Every present item, found by a full probe, matches the counters. */
			uint64_t items = 0, bytes = 0;
			int j;

			st = stats(s);
			for (j = 0; j < SH_KEYS; j++) {
				char kj[64];
				uint16_t klj;

				key_name(kj, sizeof(kj), j);
				klj = (uint16_t)strlen(kj);
				if (kite_store_get(s, kj, klj, kite_store_hash(s, kj, klj), &v) ==
				    KITE_STORE_OK) {
					assert_true(sh[j].present);
					items++;
					bytes += kite_store__item_size(klj, v.vallen);
				}
			}
			assert_int_equal(items, st.curr_items);
			assert_int_equal(bytes, st.bytes);
			assert_true(st.bytes <= mem);
		}
	}
	check(s);
	st = stats(s);
	assert_true(written > 20 * mem);
	assert_true(st.evictions > 0);
	assert_true(st.reinserted > 0);
	assert_true(st.evicted_unfetched > 0);
	assert_true(st.bytes <= mem);
	/* Far over budget and not one byte allocated beyond the region. */
	assert_int_equal(heap_alloc_bytes(), heap0);
	printf("budget: wrote %" PRIu64 " bytes into %" PRIu64 "; items %" PRIu64 " bytes %" PRIu64
	       " evictions %" PRIu64 " reinserted %" PRIu64 "\n",
	       written, mem, st.curr_items, st.bytes, st.evictions, st.reinserted);
	kite_store_free(s);
}

#define RO_KEYS 128
#define RO_MAXV 1024

/* What the store may hold for a key: exactly this, or nothing. */
struct ro_shadow {
	bool present;
	uint32_t len;
	uint32_t flags;
	uint32_t exp; /* absolute, 0: never */
	uint8_t val[RO_MAXV];
};

/* A hit must match the shadow exactly and must not be expired. */
static void
ro_expect(const struct ro_shadow *sh, const struct kite_store_view *v, uint32_t now)
{
	assert_true(sh->present);
	assert_true(sh->exp == 0 || sh->exp > now);
	assert_int_equal(v->vallen, sh->len);
	assert_int_equal(v->flags, sh->flags);
	assert_memory_equal(v->value, sh->val, sh->len);
}

/*
 * Every command in random order on a region a fraction of the data set, so
 * the hand moves, pins and evicts all the time: hits are never stale, the
 * store never has a key the shadow lost, and the log stays consistent.
 */
static void
test_random_ops(void **state)
{
	static struct ro_shadow sh[RO_KEYS];
	static uint8_t buf[RO_MAXV];
	struct kite_store *s = mk("rand", 12 * 1024, RO_MAXV, 0);
	uint32_t now = T0;
	uint64_t rng = 99;
	int op, hits = 0;

	(void)state;
	memset(sh, 0, sizeof(sh));
	for (op = 0; op < 200000; op++) {
		uint64_t r = splitmix64(&rng);
		int k = (int)(r % RO_KEYS);
		uint32_t what = (uint32_t)(r >> 8) % 100;
		uint32_t len = (uint32_t)(r >> 20) % 200;
		uint32_t exp = (r >> 40) % 4 == 0 ? (uint32_t)(r >> 44) % 3 + 1 : 0;
		struct ro_shadow *e = &sh[k];
		struct kite_store_view v;
		char key[16];
		uint16_t kl;
		uint64_t hk, cas;
		int ret;

		snprintf(key, sizeof(key), "r%d", k);
		kl = (uint16_t)strlen(key);
		hk = kite_store_hash(s, key, kl);
		memset(buf, (int)(r >> 56), len);
		buf[0] = (uint8_t)op;

		if (what < 25) {
			ret = kite_store_get(s, key, kl, hk, &v);
			if (ret == KITE_STORE_OK) {
				ro_expect(e, &v, now);
				hits++;
			} else {
				e->present = false;
			}
		} else if (what < 45) {
			enum kite_store_mode mode = what < 35	? KITE_STORE_SET
						    : what < 40 ? KITE_STORE_ADD
								: KITE_STORE_REPLACE;

			ret = mc_store(s, mode, key, kl, hk, buf, len, (uint32_t)k, exp, 0,
					       &cas);
			if (ret == KITE_STORE_OK) {
				assert_true(mode != KITE_STORE_REPLACE || e->present);
				e->present = true;
				e->len = len;
				e->flags = (uint32_t)k;
				e->exp = exp != 0 ? now + exp : 0;
				memcpy(e->val, buf, len);
			} else if (mode == KITE_STORE_ADD) {
				assert_int_equal(ret, KITE_STORE_EXISTS);
				assert_true(e->present);
			} else {
				assert_int_equal(mode, KITE_STORE_REPLACE);
				assert_int_equal(ret, KITE_STORE_NOT_FOUND);
				e->present = false;
			}
		} else if (what < 65) {
			bool app = what < 55;
			uint64_t too_large = stats(s).store_too_large;

			ret = mc_store(s, app ? KITE_STORE_APPEND : KITE_STORE_PREPEND, key,
					       kl, hk, buf, len, 0, 0, 0, &cas);
			if (ret == KITE_STORE_OK) {
				assert_true(e->present);
				if (app) {
					memcpy(e->val + e->len, buf, len);
				} else {
					memmove(e->val + len, e->val, e->len);
					memcpy(e->val, buf, len);
				}
				e->len += len;
			} else if (ret == KITE_STORE_NOT_STORED &&
				   stats(s).store_too_large == too_large + 1) {
				/* Too large together: NOT_STORED as memcached, old value kept. */
				assert_true(e->present);
				assert_true(e->len + len > RO_MAXV);
			} else if (ret == KITE_STORE_NO_MEMORY) {
				/* Old and new together exceed the region: old kept. */
				assert_true(e->present);
				assert_true(kite_store__item_size(kl, e->len) +
						    kite_store__item_size(kl, e->len + len) >
					    12 * 1024 - 2 * RO_MAXV);
			} else {
				assert_int_equal(ret, KITE_STORE_NOT_STORED);
				e->present = false;
			}
		} else if (what < 72) {
			ret = kite_store_delete(s, key, kl, hk, 0);
			assert_true(ret == KITE_STORE_NOT_FOUND || e->present);
			e->present = false;
		} else if (what < 80) {
			ret = mc_touch(s, key, kl, hk, exp, &v);
			if (ret == KITE_STORE_OK) {
				ro_expect(e, &v, now);
				e->exp = exp != 0 ? now + exp : 0;
			} else {
				e->present = false;
			}
		} else if (what < 98) {
			/* Bulk: this key and its neighbours. */
			const uint8_t *keys[4];
			uint16_t lens[4];
			uint64_t hashes[4];
			struct kite_store_view views[4];
			uint8_t st[4];
			char names[4][16];
			int j;

			for (j = 0; j < 4; j++) {
				snprintf(names[j], sizeof(names[j]), "r%d", (k + j) % RO_KEYS);
				keys[j] = (const uint8_t *)names[j];
				lens[j] = (uint16_t)strlen(names[j]);
				hashes[j] = kite_store_hash(s, keys[j], lens[j]);
			}
			kite_store_get_bulk(s, keys, lens, hashes, 4, views, st);
			for (j = 0; j < 4; j++) {
				if (st[j] == KITE_STORE_OK)
					ro_expect(&sh[(k + j) % RO_KEYS], &views[j], now);
				else
					sh[(k + j) % RO_KEYS].present = false;
			}
		} else if (what < 99) {
			kite_store_set_time(s, ++now);
		} else if ((r >> 32) % 50 == 0) {
			mc_flush(s, 0);
			for (int j = 0; j < RO_KEYS; j++)
				sh[j].present = false;
		}
		if (op % 1000 == 0)
			check(s);
	}
	check(s);
	printf("random: %d hits, %" PRIu64 " evictions, %" PRIu64 " reinserted, %" PRIu64 " reclaimed\n", hits, stats(s).evictions, stats(s).reinserted, stats(s).reclaimed);
	assert_true(hits > 10000);
	assert_true(stats(s).evictions > 1000);
	assert_true(stats(s).reinserted > 1000);
	kite_store_free(s);
}

/* Store fixed-size item number i. */
static int
put_num(struct kite_store *s, int i, uint32_t vallen)
{
	char key[32];
	static uint8_t val[1024];
	uint64_t cas;

	snprintf(key, sizeof(key), "item%06d", i);
	memset(val, 'a' + i % 26, vallen);
	return mc_store(s, KITE_STORE_SET, key, (uint16_t)strlen(key),
				kite_store_hash(s, key, (uint16_t)strlen(key)), val, vallen, 0, 0,
				0, &cas);
}

static int
get_num(struct kite_store *s, int i)
{
	char key[32];
	struct kite_store_view v;

	snprintf(key, sizeof(key), "item%06d", i);
	return kite_store_get(s, key, (uint16_t)strlen(key),
			      kite_store_hash(s, key, (uint16_t)strlen(key)), &v);
}

static void
test_clock_second_chance(void **state)
{
	struct kite_store *s = mk("clock", 64 * 1024, 4096, 0);
	struct kite_store_stats st;
	int n = 0, cap, first, i, survivors = 0;

	(void)state;
	/* Fill until the first eviction: the log then holds items 1..n-1. */
	do {
		assert_int_equal(put_num(s, n++, 200), KITE_STORE_OK);
	} while (stats(s).evictions == 0);
	cap = (int)stats(s).curr_items;
	first = n - cap;
	assert_true(cap > 100);
	/* Reference every even item. */
	for (i = first; i < n; i++)
		if (i % 2 == 0)
			assert_int_equal(get_num(s, i), KITE_STORE_OK);
	/* Room for cap/2 - 2 new items: the hand passes every old item once. */
	for (i = 0; i < cap / 2 - 2; i++)
		assert_int_equal(put_num(s, n + i, 200), KITE_STORE_OK);
	for (i = first; i < n; i++) {
		int ret = get_num(s, i);

		if (i % 2 == 0)
			assert_int_equal(ret, KITE_STORE_OK);
		else if (ret == KITE_STORE_OK)
			survivors++;
	}
	st = stats(s);
	assert_true(st.reinserted >= (uint64_t)(cap / 2 - 4));
	/* Nearly all unreferenced items went; only what the last step spared. */
	assert_true(survivors <= 2);
	/* Newly stored items are all there. */
	for (i = 0; i < cap / 2 - 2; i++)
		assert_int_equal(get_num(s, n + i), KITE_STORE_OK);
	check(s);

	/* Without new references one second chance is all they get. */
	for (i = 0; i < 2 * cap; i++)
		assert_int_equal(put_num(s, 100000 + i, 200), KITE_STORE_OK);
	for (i = first; i < n + cap / 2 - 2; i++)
		assert_int_equal(get_num(s, i), KITE_STORE_NOT_FOUND);
	check(s);
	kite_store_free(s);
}

/* Items moved by the hand across the region's end keep their bytes. */
static void
test_reinsert_wrap(void **state)
{
	struct kite_store *s = mk("wrap", 8192 + 40, 4096, 0);
	uint64_t rng = 7;
	int i, k;

	(void)state;
	for (i = 0; i < 20000; i++) {
		uint64_t r = splitmix64(&rng);
		/* Odd sizes so fillers and partial overlaps keep changing. */
		uint32_t len = 100 + (uint32_t)(r % 700);

		k = (int)((r >> 32) % 24);
		if (put_num(s, k, len) != KITE_STORE_OK)
			fail();
		/* Reference everything that is present so the hand moves it. */
		for (int j = 0; j < 24; j++) {
			char key[32];
			struct kite_store_view v;
			uint32_t b;

			snprintf(key, sizeof(key), "item%06d", j);
			if (kite_store_get(s, key, (uint16_t)strlen(key),
					   kite_store_hash(s, key, (uint16_t)strlen(key)),
					   &v) != KITE_STORE_OK)
				continue;
			for (b = 0; b < v.vallen; b++)
				assert_int_equal(v.value[b], 'a' + j % 26);
		}
		if (i % 100 == 0)
			check(s);
	}
	assert_true(stats(s).reinserted > 1000);
	check(s);
	kite_store_free(s);
}

/* APPEND to the oldest item of a full log: the hand must not drop it. */
static void
test_append_full_log(void **state)
{
	struct kite_store *s = mk("appfull", 8192, 8192, 0);
	struct kite_store_view v;
	static uint8_t big[4096];
	uint64_t cas, item = kite_store__item_size(10, 500);
	int i;

	(void)state;
	memset(big, 'N', sizeof(big));
	/* victim is the oldest item, unreferenced, and the log is full. */
	assert_int_equal(set(s, "victim", "OLD:"), KITE_STORE_OK);
	for (i = 0; kite_store__log_used(s) + item <= 8192; i++)
		assert_int_equal(put_num(s, i, 500), KITE_STORE_OK);
	assert_int_equal(stats(s).evictions, 0);
	assert_int_equal(mc_store(s, KITE_STORE_APPEND, "victim", 6, h(s, "victim"), big,
					  4000, 0, 0, 0, &cas),
			 KITE_STORE_OK);
	/* The hand moved victim instead of evicting it, then made room. */
	assert_true(stats(s).evictions > 0);
	assert_int_equal(get(s, "victim", &v), KITE_STORE_OK);
	assert_int_equal(v.vallen, 4004);
	assert_memory_equal(v.value, "OLD:", 4);
	assert_memory_equal(v.value + 4, big, 4000);
	check(s);
	/* PREPEND at the tail, too. */
	assert_int_equal(set(s, "v2", "tail"), KITE_STORE_OK);
	for (i = 100; kite_store__log_used(s) + item <= 8192; i++)
		assert_int_equal(put_num(s, i, 500), KITE_STORE_OK);
	assert_int_equal(mc_store(s, KITE_STORE_PREPEND, "v2", 2, h(s, "v2"), big, 3000, 0,
					  0, 0, &cas),
			 KITE_STORE_OK);
	assert_int_equal(get(s, "v2", &v), KITE_STORE_OK);
	assert_int_equal(v.vallen, 3004);
	assert_memory_equal(v.value, big, 3000);
	assert_memory_equal(v.value + 3000, "tail", 4);
	check(s);
	/* Old + new cannot both fit in 8 KiB: ENOMEM, old value intact. */
	assert_int_equal(mc_store(s, KITE_STORE_APPEND, "v2", 2, h(s, "v2"), big, 4096, 0,
					  0, 0, &cas),
			 KITE_STORE_NO_MEMORY);
	assert_int_equal(get(s, "v2", &v), KITE_STORE_OK);
	assert_int_equal(v.vallen, 3004);
	check(s);
	kite_store_free(s);
}

static void
test_collision(void **state)
{
	struct kite_store *s = mk("coll", 1 << 20, 4096, 0);
	struct kite_store_view v;
	uint64_t ha = h(s, "A"), cas;
	uint8_t st[2];
	const uint8_t *keys[2] = { (const uint8_t *)"B", (const uint8_t *)"A" };
	const uint16_t lens[2] = { 1, 1 };
	const uint64_t hashes[2] = { ha, ha };
	struct kite_store_view views[2];

	(void)state;
	assert_int_equal(set(s, "A", "value-of-A"), KITE_STORE_OK);
	/* Key B under A's hash: a miss, never A's value. */
	assert_int_equal(kite_store_get(s, "B", 1, ha, &v), KITE_STORE_NOT_FOUND);
	kite_store_get_bulk(s, keys, lens, hashes, 2, views, st);
	assert_int_equal(st[0], KITE_STORE_NOT_FOUND);
	assert_int_equal(st[1], KITE_STORE_OK);
	assert_int_equal(mc_touch(s, "B", 1, ha, 0, &v), KITE_STORE_NOT_FOUND);
	assert_int_equal(kite_store_delete(s, "B", 1, ha, 0), KITE_STORE_NOT_FOUND);
	assert_int_equal(
		mc_delta(s, "B", 1, ha, true, 1, 0, KITE_DELTA_NO_CREATE, 0, &cas, &cas),
		KITE_STORE_NOT_FOUND);
	assert_int_equal(mc_store(s, KITE_STORE_REPLACE, "B", 1, ha, "b", 1, 0, 0, 0, &cas),
			 KITE_STORE_NOT_FOUND);
	assert_int_equal(mc_store(s, KITE_STORE_APPEND, "B", 1, ha, "b", 1, 0, 0, 0, &cas),
			 KITE_STORE_NOT_STORED);
	expect_val(s, "A", "value-of-A", 0);
	/* Longer key with the same prefix under the same hash. */
	assert_int_equal(kite_store_get(s, "AA", 2, ha, &v), KITE_STORE_NOT_FOUND);

	/* Storing B under the shared hash displaces A: one slot per hash. */
	assert_int_equal(
		mc_store(s, KITE_STORE_ADD, "B", 1, ha, "value-of-B", 10, 0, 0, 0, &cas),
		KITE_STORE_OK);
	assert_int_equal(kite_store_get(s, "B", 1, ha, &v), KITE_STORE_OK);
	assert_memory_equal(v.value, "value-of-B", 10);
	assert_int_equal(kite_store_get(s, "A", 1, ha, &v), KITE_STORE_NOT_FOUND);
	assert_int_equal(stats(s).curr_items, 1);
	check(s);
	kite_store_free(s);
}

static void
test_get_bulk_body(void)
{
	enum { N = 100 };
	struct kite_store *s = mk("bulk", 1 << 20, 4096, 0);
	char names[N][16];
	const uint8_t *keys[N];
	uint16_t lens[N];
	uint64_t hashes[N];
	struct kite_store_view views[N];
	uint8_t results[N];
	int i;

	for (i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "bk%d", i);
		keys[i] = (const uint8_t *)names[i];
		lens[i] = (uint16_t)strlen(names[i]);
		hashes[i] = kite_store_hash(s, keys[i], lens[i]);
		/* Every third key missing, every seventh expiring. */
		if (i % 3 != 0)
			assert_int_equal(put(s, KITE_STORE_SET, names[i], names[i], (uint32_t)i,
					     i % 7 == 0 ? 1 : 0, 0, NULL),
					 KITE_STORE_OK);
	}
	kite_store_set_time(s, T0 + 1);
	/* Duplicates: 60 repeats 14 (expired: the repeat must miss too), 61 repeats 1. */
	keys[60] = keys[14];
	lens[60] = lens[14];
	hashes[60] = hashes[14];
	keys[61] = keys[1];
	lens[61] = lens[1];
	hashes[61] = hashes[1];
	/* A wrong pairing: key 2 under key 4's hash. */
	hashes[62] = hashes[4];
	keys[62] = keys[2];
	lens[62] = lens[2];

	/* 0 keys is a no-op; more than 64 is served in chunks. */
	kite_store_get_bulk(s, keys, lens, hashes, 0, views, results);
	memset(results, 0xee, sizeof(results));
	kite_store_get_bulk(s, keys, lens, hashes, N, views, results);
	for (i = 0; i < N; i++) {
		struct kite_store_view v;
		int one = kite_store_get(s, keys[i], lens[i], hashes[i], &v);

		assert_int_equal(results[i], one);
		if (one == KITE_STORE_OK) {
			assert_int_equal(views[i].vallen, v.vallen);
			assert_ptr_equal(views[i].value, v.value);
			assert_int_equal(views[i].flags, v.flags);
			assert_int_equal(views[i].cas, v.cas);
			assert_memory_equal(views[i].value, keys[i], lens[i]);
		}
	}
	assert_int_equal(results[60], KITE_STORE_NOT_FOUND);
	assert_int_equal(results[61], KITE_STORE_OK);
	assert_int_equal(results[62], KITE_STORE_NOT_FOUND);
	assert_int_equal(results[5], KITE_STORE_OK);
	assert_int_equal(results[3], KITE_STORE_NOT_FOUND);
	check(s);
	kite_store_free(s);
}

static void
test_get_bulk(void **state)
{
	(void)state;
	test_get_bulk_body();
}

/* Without the item prefetch (kited --ablate prefetch) the answers are the same. */
static void
test_get_bulk_no_prefetch(void **state)
{
	(void)state;
	mk_no_prefetch = true;
	test_get_bulk_body();
	mk_no_prefetch = false;
}

static void
test_too_big(void **state)
{
	struct kite_store *s = mk("big", 16384, 100000, 0);
	static uint8_t val[100001];
	struct kite_store_stats st;
	uint64_t cas;

	(void)state;
	memset(val, 'v', sizeof(val));
	assert_int_equal(set(s, "k", "old"), KITE_STORE_OK);
	assert_int_equal(mc_store(s, KITE_STORE_ADD, "k2", 2, h(s, "k2"), val, 100001, 0, 0,
					  0, &cas),
			 KITE_STORE_TOO_LARGE);
	/* Fits max_item_size but not the 16 KiB region. */
	assert_int_equal(
		mc_store(s, KITE_STORE_ADD, "k2", 2, h(s, "k2"), val, 20000, 0, 0, 0, &cas),
		KITE_STORE_NO_MEMORY);
	expect_val(s, "k", "old", 0);
	/* memcached drops the old value when a SET fails. */
	assert_int_equal(
		mc_store(s, KITE_STORE_SET, "k", 1, h(s, "k"), val, 100001, 0, 0, 0, &cas),
		KITE_STORE_TOO_LARGE);
	expect_miss(s, "k");
	assert_int_equal(set(s, "k", "old"), KITE_STORE_OK);
	assert_int_equal(
		mc_store(s, KITE_STORE_SET, "k", 1, h(s, "k"), val, 20000, 0, 0, 0, &cas),
		KITE_STORE_NO_MEMORY);
	expect_miss(s, "k");
	/* The largest item the region holds. */
	assert_int_equal(mc_store(s, KITE_STORE_SET, "k", 1, h(s, "k"), val,
					  16384 - (uint32_t)sizeof(struct item) - 1, 0, 0, 0, &cas),
			 KITE_STORE_OK);
	assert_int_equal(stats(s).bytes, 16384);
	st = stats(s);
	assert_int_equal(st.store_too_large, 2);
	assert_int_equal(st.store_no_memory, 2);
	check(s);
	kite_store_free(s);

	/* A max_item_size of 0 means memcached's default, 1 MiB. */
	s = mk("big0", 4 << 20, 0, 0);
	assert_int_equal(
		mc_store(s, KITE_STORE_SET, "k", 1, h(s, "k"), val, 100000, 0, 0, 0, &cas),
		KITE_STORE_OK);
	kite_store_free(s);
}

static void
test_index_full(void **state)
{
	/* 64 index entries for a log that holds thousands of small items. */
	struct kite_store *s = mk("idx", 1 << 20, 4096, 64);
	struct kite_store_stats st;
	int i, hits = 0;

	(void)state;
	for (i = 0; i < 2000; i++)
		assert_int_equal(put_num(s, i, 10), KITE_STORE_OK);
	st = stats(s);
	assert_true(st.index_full > 0);
	assert_true(st.curr_items <= 64);
	assert_true(st.curr_items >= 32);
	assert_int_equal(st.evictions, st.index_full);
	check(s);
	/* The most recent item is always present. */
	assert_int_equal(get_num(s, 1999), KITE_STORE_OK);
	for (i = 0; i < 2000; i++)
		hits += get_num(s, i) == KITE_STORE_OK;
	assert_int_equal((uint64_t)hits, st.curr_items);
	kite_store_free(s);
}

static void
test_stats_counters(void **state)
{
	struct kite_store *s = mk("stats", 1 << 20, 4096, 0);
	struct kite_store_stats st;
	struct kite_store_view v;
	uint64_t c;

	(void)state;
	st = stats(s);
	assert_int_equal(st.curr_items, 0);
	assert_int_equal(st.total_items, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.limit_maxbytes, 1 << 20);

	assert_int_equal(set(s, "a", "1"), KITE_STORE_OK);
	assert_int_equal(set(s, "b", "22"), KITE_STORE_OK);
	assert_int_equal(put(s, KITE_STORE_SET, "c", "333", 0, 1, 0, NULL), KITE_STORE_OK);
	expect_val(s, "a", "1", 0);
	expect_val(s, "a", "1", 0);
	expect_miss(s, "zz");
	kite_store_set_time(s, T0 + 1);
	expect_miss(s, "c");
	assert_int_equal(mc_touch(s, "b", 1, h(s, "b"), 0, &v), KITE_STORE_OK);
	mc_flush(s, 0);
	expect_miss(s, "a");
	assert_int_equal(put(s, KITE_STORE_SET, "d", "4", 0, 0, 0, &c), KITE_STORE_OK);
	assert_int_equal(kite_store_delete(s, "d", 1, h(s, "d"), 0), KITE_STORE_OK);

	st = stats(s);
	assert_int_equal(st.get_hits, 2);
	assert_int_equal(st.get_misses, 3);
	assert_int_equal(st.get_expired, 1);
	assert_int_equal(st.get_flushed, 1);
	assert_int_equal(st.expired_unfetched, 1);
	assert_int_equal(st.touch_hits, 1);
	assert_int_equal(st.delete_hits, 1);
	assert_int_equal(st.total_items, 4);
	/* b is flushed but not yet reclaimed: counters only see it on contact. */
	assert_int_equal(st.curr_items, 1);
	assert_int_equal(st.bytes, kite_store__item_size(1, 2));
	assert_int_equal(st.evictions, 0);
	check(s);
	kite_store_free(s);

	/* reclaimed: the hand frees expired and flushed items without a lookup. */
	s = mk("stats2", 8192, 4096, 0);
	for (int i = 0; i < 10; i++) {
		char key[16];

		/* x5..x9 flushed, then x0..x4 expiring. */
		if (i == 5)
			mc_flush(s, 0);
		snprintf(key, sizeof(key), "x%d", 9 - i);
		assert_int_equal(put(s, KITE_STORE_SET, key, "v", 0, i >= 5 ? 1 : 0, 0, NULL),
				 KITE_STORE_OK);
	}
	kite_store_set_time(s, T0 + 1);
	for (int i = 0; i < 200; i++)
		assert_int_equal(put_num(s, i, 100), KITE_STORE_OK);
	st = stats(s);
	assert_int_equal(st.reclaimed, 10);
	assert_int_equal(st.expired_unfetched, 5);
	assert_true(st.evictions > 0);
	assert_int_equal(st.evicted_unfetched, st.evictions);
	check(s);
	kite_store_free(s);
}

static void
test_set_time(void **state)
{
	struct kite_store *s = mk("pf", 1 << 16, 1024, 0);

	(void)state;
	kite_store_set_time(s, 1);
	assert_int_equal(put(s, KITE_STORE_SET, "x", "v", 0, 5, 0, NULL), KITE_STORE_OK);
	kite_store_set_time(s, 5);
	expect_val(s, "x", "v", 0);
	kite_store_set_time(s, 6);
	expect_miss(s, "x");
	kite_store_free(s);
}

/* Result names, for logs and tests. */
static void
test_result_names(void **state)
{
	(void)state;
	assert_string_equal(kite_store_result_name(KITE_STORE_OK), "ok");
	assert_string_equal(kite_store_result_name(KITE_STORE_NON_NUMERIC), "non_numeric");
	assert_string_equal(kite_store_result_name(KITE_STORE_INVALID), "invalid");
	assert_string_equal(kite_store_result_name(KITE_STORE_RESULT_MAX), "unknown");
	assert_string_equal(kite_store_result_name((enum kite_store_result)-1), "unknown");
	for (int r = 0; r < KITE_STORE_RESULT_MAX; r++)
		assert_string_not_equal(kite_store_result_name((enum kite_store_result)r), "unknown");
}

/* The store takes absolute times: what it is given is what the view shows. */
static void
test_absolute_expiry(void **state)
{
	struct kite_store *s = mk("absexp", 1 << 16, 1024, 0);
	const struct kite_store_write w = {
		.mode = KITE_STORE_SET, .exptime = T0 + 3, .value = "v", .vallen = 1
	};
	struct kite_store_view v;
	uint64_t cas;

	(void)state;
	assert_int_equal(kite_store_store(s, "a", 1, h(s, "a"), &w, &cas), KITE_STORE_OK);
	assert_int_equal(get(s, "a", &v), KITE_STORE_OK);
	assert_int_equal(v.exptime, T0 + 3);
	/* A small number is a time in 1970, not "in 5 seconds": expired at once. */
	assert_int_equal(kite_store_touch(s, "a", 1, h(s, "a"), 5, true, &v), KITE_STORE_OK);
	expect_miss(s, "a");
	assert_int_equal(kite_store_store(s, "a", 1, h(s, "a"), &w, &cas), KITE_STORE_OK);
	kite_store_set_time(s, T0 + 2);
	expect_val(s, "a", "v", 0);
	kite_store_set_time(s, T0 + 3);
	expect_miss(s, "a");
	/* A delayed flush at an absolute time. */
	kite_store_set_time(s, T0);
	assert_int_equal(set(s, "b", "v"), KITE_STORE_OK);
	kite_store_flush(s, T0 + 10);
	kite_store_set_time(s, T0 + 9);
	expect_val(s, "b", "v", 0);
	kite_store_set_time(s, T0 + 10);
	expect_miss(s, "b");
	check(s);
	kite_store_free(s);
}

/* A replica keeps its owner's CAS; the partition's own CAS values stay above it. */
static void
test_explicit_cas(void **state)
{
	struct kite_store *s = mk("setcas", 1 << 16, 1024, 0);
	const uint64_t given = (UINT64_C(5000) << 16) | 3; /* another partition's */
	struct kite_store_write w = {
		.mode = KITE_STORE_SET, .value = "v", .vallen = 1, .set_cas = given
	};
	struct kite_store_view v;
	uint64_t cas, cas2;

	(void)state;
	assert_int_equal(kite_store_store(s, "r", 1, h(s, "r"), &w, &cas), KITE_STORE_OK);
	assert_int_equal(cas, given);
	assert_int_equal(get(s, "r", &v), KITE_STORE_OK);
	assert_int_equal(v.cas, given);
	/* A compare-and-swap against it works like any other. */
	w.set_cas = 0;
	w.cas = given + 1;
	assert_int_equal(kite_store_store(s, "r", 1, h(s, "r"), &w, &cas2), KITE_STORE_EXISTS);
	w.cas = given;
	assert_int_equal(kite_store_store(s, "r", 1, h(s, "r"), &w, &cas2), KITE_STORE_OK);
	assert_true(cas2 > given);
	assert_int_equal(cas2 & 0xffff, 7);
	/* A lower given CAS is kept as given and does not pull the sequence back. */
	w.cas = 0;
	w.set_cas = (UINT64_C(10) << 16) | 3;
	assert_int_equal(kite_store_store(s, "low", 3, h(s, "low"), &w, &cas), KITE_STORE_OK);
	assert_int_equal(cas, w.set_cas);
	assert_true(put(s, KITE_STORE_SET, "next", "v", 0, 0, 0, &cas) == KITE_STORE_OK);
	assert_true(cas > cas2);
	/*
	 * FLUSH does not go by CAS: an item stored after a flush with a CAS
	 * below everything flushed is live, and one stored before is not.
	 */
	kite_store_flush(s, 0);
	expect_miss(s, "next");
	expect_miss(s, "low");
	w.set_cas = (UINT64_C(11) << 16) | 3;
	assert_int_equal(kite_store_store(s, "after", 5, h(s, "after"), &w, &cas), KITE_STORE_OK);
	expect_val(s, "after", "v", 0);
	check(s);
	kite_store_free(s);
}

/* The history mark: items at or below it are dropped by drop_older, later ones stay. */
static void
test_cas_mark(void **state)
{
	struct kite_store *s = mk("casmark", 1 << 16, 1024, 0);
	uint64_t cas, mark;

	(void)state;
	assert_int_equal(kite_store_cas_mark(s), 0); /* nothing stored yet */
	assert_true(put(s, KITE_STORE_SET, "a", "1", 0, 0, 0, &cas) == KITE_STORE_OK);
	mark = kite_store_cas_mark(s);
	assert_true(mark >= cas);
	assert_true(put(s, KITE_STORE_SET, "b", "2", 0, 0, 0, &cas) == KITE_STORE_OK);
	assert_true(cas > mark);
	assert_true(kite_store_drop_older(s, "a", 1, h(s, "a"), mark));
	assert_false(kite_store_drop_older(s, "a", 1, h(s, "a"), mark)); /* gone already */
	assert_false(kite_store_drop_older(s, "b", 1, h(s, "b"), mark)); /* newer: kept */
	expect_miss(s, "a");
	expect_val(s, "b", "2", 0);
	check(s);
	kite_store_free(s);
}

/*
 * The fetched bit as lookups report it (meta mg's h): as it was before the
 * lookup; a peek and a touch without fetch leave it; a new value clears it.
 */
static void
test_fetched_mark(void **state)
{
	struct kite_store *s = mk("fetched", 1 << 16, 1024, 0);
	struct kite_store_view v;
	const uint8_t *keys[1] = { (const uint8_t *)"f" };
	uint16_t lens[1] = { 1 };
	uint64_t hashes[1], cas, val;
	uint8_t res[1];

	(void)state;
	hashes[0] = h(s, "f");
	assert_int_equal(put(s, KITE_STORE_SET, "f", "12", 0, 0, 0, &cas), KITE_STORE_OK);
	assert_int_equal(kite_store_peek(s, "f", 1, hashes[0], &v), KITE_STORE_OK);
	assert_false(v.marks & KITE_STORE_MARK_FETCHED);
	assert_int_equal(kite_store_touch(s, "f", 1, hashes[0], 0, false, &v), KITE_STORE_OK);
	assert_int_equal(get(s, "f", &v), KITE_STORE_OK);
	assert_false(v.marks & KITE_STORE_MARK_FETCHED); /* this get is the first read */
	assert_int_equal(get(s, "f", &v), KITE_STORE_OK);
	assert_true(v.marks & KITE_STORE_MARK_FETCHED);
	assert_int_equal(kite_store_peek(s, "f", 1, hashes[0], &v), KITE_STORE_OK);
	assert_true(v.marks & KITE_STORE_MARK_FETCHED);
	/* An in-place INCR is a new value: not read yet. */
	assert_int_equal(delta(s, "f", true, 1, 0, 0, 0, &val, &cas), KITE_STORE_OK);
	assert_int_equal(val, 13);
	kite_store_get_bulk(s, keys, lens, hashes, 1, &v, res);
	assert_int_equal(res[0], KITE_STORE_OK);
	assert_false(v.marks & KITE_STORE_MARK_FETCHED);
	kite_store_get_bulk(s, keys, lens, hashes, 1, &v, res);
	assert_true(v.marks & KITE_STORE_MARK_FETCHED);
	/* A SET replaces the item: not read yet; a touch that reads marks it. */
	assert_int_equal(put(s, KITE_STORE_SET, "f", "x", 0, 0, 0, &cas), KITE_STORE_OK);
	assert_int_equal(kite_store_touch(s, "f", 1, hashes[0], 0, true, &v), KITE_STORE_OK);
	assert_int_equal(get(s, "f", &v), KITE_STORE_OK);
	assert_true(v.marks & KITE_STORE_MARK_FETCHED);
	/* Peeks count as reads in the statistics, like gets. */
	assert_int_equal(kite_store_peek(s, "nope", 4, h(s, "nope"), &v), KITE_STORE_NOT_FOUND);
	kite_store_free(s);
}

/* Stale and win-token bits: set on request, kept by reads and touches, cleared by a new value. */
static void
test_stale_and_win(void **state)
{
	struct kite_store *s = mk("stalewin", 1 << 16, 1024, 0);
	struct kite_store_view v;
	uint64_t cas, val;

	(void)state;
	assert_int_equal(kite_store_mark_stale(s, "k", 1, h(s, "k"), 0, NULL, NULL),
			 KITE_STORE_NOT_FOUND);
	assert_int_equal(kite_store_claim_win(s, "k", 1, h(s, "k"), true, &v), KITE_STORE_NOT_FOUND);
	assert_int_equal(put(s, KITE_STORE_SET, "k", "v1", 0, 0, 0, &cas), KITE_STORE_OK);
	assert_int_equal(get(s, "k", &v), KITE_STORE_OK);
	assert_false(v.marks & KITE_STORE_MARK_STALE);
	assert_false(v.marks & KITE_STORE_MARK_WIN);

	/* The first claim wins, later ones see the token out. */
	assert_int_equal(kite_store_claim_win(s, "k", 1, h(s, "k"), true, &v), KITE_STORE_OK);
	assert_false(v.marks & KITE_STORE_MARK_WIN);
	assert_int_equal(kite_store_claim_win(s, "k", 1, h(s, "k"), true, &v), KITE_STORE_EXISTS);
	assert_true(v.marks & KITE_STORE_MARK_WIN);
	assert_memory_equal(v.value, "v1", 2);

	/* Stale: only the right version when a CAS is given; the value is still served. */
	assert_int_equal(kite_store_mark_stale(s, "k", 1, h(s, "k"), cas + 1, NULL, NULL),
			 KITE_STORE_EXISTS);
	assert_int_equal(get(s, "k", &v), KITE_STORE_OK);
	assert_false(v.marks & KITE_STORE_MARK_STALE);
	{
		/* md I: stale, a new CAS, the win token back in, and a new expiry if given. */
		uint64_t ncas = 0;
		const uint32_t exp = ttl(s, 5000);

		assert_int_equal(kite_store_mark_stale(s, "k", 1, h(s, "k"), cas, &exp, &ncas),
				 KITE_STORE_OK);
		assert_true(ncas > cas);
		assert_int_equal(get(s, "k", &v), KITE_STORE_OK);
		assert_true(v.marks & KITE_STORE_MARK_STALE);
		assert_false(v.marks & KITE_STORE_MARK_WIN);
		assert_int_equal(v.exptime, exp);
		assert_int_equal(v.cas, ncas);
		assert_int_equal(kite_store_claim_win(s, "k", 1, h(s, "k"), true, &v), KITE_STORE_OK);
		assert_int_equal(mc_touch(s, "k", 1, h(s, "k"), 100, &v), KITE_STORE_OK);
		assert_true(v.marks & KITE_STORE_MARK_STALE);
		assert_true(v.marks & KITE_STORE_MARK_WIN);
		assert_int_equal(v.cas, ncas);

		/* ms I: an older CAS stores, stale, keeping expiry and token; a newer one fails. */
		struct kite_store_write w = { .mode = KITE_STORE_SET, .value = "late", .vallen = 4,
					      .exptime = 0, .cas = cas, .invalidate = true };
		uint64_t c2;

		assert_int_equal(kite_store_store(s, "k", 1, h(s, "k"), &w, &c2), KITE_STORE_OK);
		assert_int_equal(get(s, "k", &v), KITE_STORE_OK);
		assert_memory_equal(v.value, "late", 4);
		assert_true(v.marks & KITE_STORE_MARK_STALE);
		assert_true(v.marks & KITE_STORE_MARK_WIN);
		assert_int_equal(v.exptime, ttl(s, 100));
		w.cas = c2 + 1;
		assert_int_equal(kite_store_store(s, "k", 1, h(s, "k"), &w, &c2), KITE_STORE_EXISTS);
		w.invalidate = false;
		w.cas = cas;
		assert_int_equal(kite_store_store(s, "k", 1, h(s, "k"), &w, &c2), KITE_STORE_EXISTS);
	}

	/* A new value clears both: SET ... */
	assert_int_equal(put(s, KITE_STORE_SET, "k", "v2", 0, 0, 0, &cas), KITE_STORE_OK);
	assert_int_equal(get(s, "k", &v), KITE_STORE_OK);
	assert_false(v.marks & KITE_STORE_MARK_STALE);
	assert_false(v.marks & KITE_STORE_MARK_WIN);
	/* ... and INCR rewriting in place. */
	assert_int_equal(put(s, KITE_STORE_SET, "n", "10", 0, 0, 0, &cas), KITE_STORE_OK);
	assert_int_equal(kite_store_mark_stale(s, "n", 1, h(s, "n"), 0, NULL, NULL), KITE_STORE_OK);
	assert_int_equal(kite_store_claim_win(s, "n", 1, h(s, "n"), true, &v), KITE_STORE_OK);
	assert_int_equal(delta(s, "n", true, 1, 0, 0, 0, &val, &cas), KITE_STORE_OK);
	assert_int_equal(get(s, "n", &v), KITE_STORE_OK);
	assert_false(v.marks & KITE_STORE_MARK_STALE);
	assert_false(v.marks & KITE_STORE_MARK_WIN);
	check(s);
	kite_store_free(s);
}

struct walk {
	uint8_t *seen;  /* visits per item number */
	unsigned int n; /* items visited */
	int stop_at;    /* stop the walk when this item is visited (-1: never) */
};

static int
walk_fn(void *arg, const struct kite_store_item *it)
{
	struct walk *w = arg;
	int i;

	assert_true(it->keylen == 10 && memcmp(it->key, "item", 4) == 0);
	i = atoi((const char *)it->key + 4);
	assert_int_equal(it->v.vallen, 200);
	assert_int_equal(it->v.value[0], 'a' + i % 26);
	if (w->seen[i] < 255)
		w->seen[i]++;
	w->n++;
	return i == w->stop_at;
}

/* Backfill walks: every item visited, in chunks, while the owner keeps writing. */
static void
test_iterate(void **state)
{
	struct kite_store *s = mk("iter", 64 * 1024, 4096, 0);
	static uint8_t seen[200000];
	struct walk w = { seen, 0, -1 };
	struct kite_store_cursor c;
	int n = 0, cap, first, i;

	(void)state;
	/* Empty: done at once. */
	kite_store_iter_begin(s, &c);
	assert_true(kite_store_iter_done(&c));
	assert_int_equal(kite_store_iter_next(s, &c, 100, walk_fn, &w), 0);

	/* A full log that has wrapped, some items deleted, expired or flushed away. */
	do {
		assert_int_equal(put_num(s, n++, 200), KITE_STORE_OK);
	} while (stats(s).evictions < 50);
	cap = (int)stats(s).curr_items;
	first = n - cap;
	for (i = first; i < n; i += 7) {
		char key[32];

		snprintf(key, sizeof(key), "item%06d", i);
		assert_int_equal(kite_store_delete(s, key, 10, h(s, key), 0), KITE_STORE_OK);
	}
	kite_store_iter_begin(s, &c);
	while (!kite_store_iter_done(&c))
		kite_store_iter_next(s, &c, 16, walk_fn, &w);
	for (i = 0; i < n; i++)
		assert_int_equal(seen[i], i >= first && (i - first) % 7 != 0 ? 1 : 0);
	assert_int_equal(w.n, stats(s).curr_items);

	/* A callback can stop the walk; it resumes after the item that stopped it. */
	memset(seen, 0, sizeof(seen));
	w.n = 0;
	w.stop_at = first + 1;
	kite_store_iter_begin(s, &c);
	while (kite_store_iter_next(s, &c, 1000, walk_fn, &w) > 0 && w.stop_at >= 0)
		w.stop_at = -1;
	while (!kite_store_iter_done(&c))
		kite_store_iter_next(s, &c, 1000, walk_fn, &w);
	assert_int_equal(w.n, stats(s).curr_items);

	/*
	 * Writes between chunks make the hand move referenced items to the
	 * head and evict others: every item present at the start and still
	 * present at the end is visited at least once.
	 */
	memset(seen, 0, sizeof(seen));
	w.n = 0;
	for (i = first; i < n; i++)
		if (i % 2 == 0)
			get_num(s, i); /* referenced: the hand will move them */
	int start_first = first, start_n = n;
	kite_store_iter_begin(s, &c);
	while (!kite_store_iter_done(&c)) {
		kite_store_iter_next(s, &c, 8, walk_fn, &w);
		for (int k = 0; k < 4; k++)
			assert_int_equal(put_num(s, n++, 200), KITE_STORE_OK);
	}
	for (i = start_first; i < start_n; i++)
		if (get_num(s, i) == KITE_STORE_OK)
			assert_true(seen[i] >= 1);
	/* The referenced ones did survive the churn, so the test did exercise moves. */
	int moved_seen = 0;
	for (i = start_first; i < start_n; i++)
		if (i % 2 == 0 && (i - first) % 7 != 0 && get_num(s, i) == KITE_STORE_OK)
			moved_seen++;
	assert_true(moved_seen > 0);
	assert_true(stats(s).reinserted > 0);

	/*
	 * A burst of writes mid-walk: the hand overtakes the cursor, the walk
	 * resumes at the tail and runs on to the head of then (a walk that
	 * stays slower than the writes would never end: the caller walks
	 * faster than it writes).
	 */
	memset(seen, 0, sizeof(seen));
	for (i = n - cap; i < n; i++)
		if (i % 3 == 0)
			get_num(s, i);
	start_first = n - cap;
	start_n = n;
	kite_store_iter_begin(s, &c);
	uint64_t end0 = c.end;
	kite_store_iter_next(s, &c, 10, walk_fn, &w);
	for (int k = 0; k < cap / 2; k++)
		assert_int_equal(put_num(s, n++, 200), KITE_STORE_OK);
	while (!kite_store_iter_done(&c)) {
		kite_store_iter_next(s, &c, 8, walk_fn, &w);
		assert_int_equal(put_num(s, n++, 200), KITE_STORE_OK);
	}
	assert_true(c.end > end0);
	for (i = start_first; i < start_n; i++)
		if (get_num(s, i) == KITE_STORE_OK)
			assert_true(seen[i] >= 1);

	/* Flushed and expired items are not visited. */
	kite_store_flush(s, 0);
	w.n = 0;
	kite_store_iter_begin(s, &c);
	while (!kite_store_iter_done(&c))
		kite_store_iter_next(s, &c, 64, walk_fn, &w);
	assert_int_equal(w.n, 0);
	/* An item that expires in a second. */
	static uint8_t val[200];
	uint64_t cas;
	memset(val, 'b', sizeof(val));
	assert_int_equal(mc_store(s, KITE_STORE_SET, "item000001", 10, h(s, "item000001"), val,
				  sizeof(val), 0, 1, 0, &cas),
			 KITE_STORE_OK);
	kite_store_iter_begin(s, &c);
	while (!kite_store_iter_done(&c))
		kite_store_iter_next(s, &c, 64, walk_fn, &w);
	assert_int_equal(w.n, 1);
	w.n = 0;
	kite_store_set_time(s, T0 + 1);
	kite_store_iter_begin(s, &c);
	assert_false(kite_store_iter_done(&c));
	while (!kite_store_iter_done(&c))
		kite_store_iter_next(s, &c, 64, walk_fn, &w);
	assert_int_equal(w.n, 0);
	check(s);
	kite_store_free(s);
}

static void
test_siphash_matches_libsodium(void **state)
{
	uint8_t seed[16], key[64], out[8];
	uint64_t ref;

	(void)state;
	for (int i = 0; i < 16; i++)
		seed[i] = (uint8_t)(i * 7 + 3);
	for (int i = 0; i < 64; i++)
		key[i] = (uint8_t)(i * 13 + 1);
	/* Same code with 2/4 rounds must be libsodium's SipHash-2-4, every tail length. */
	for (size_t len = 0; len <= sizeof(key); len++) {
		crypto_shorthash_siphash24(out, key, len, seed);
		memcpy(&ref, out, 8);
		assert_int_equal(kite_store__siphash(seed, key, len, 2, 4), ref);
		/* 1-3 differs from 2-4 and depends on the seed. */
		assert_int_not_equal(kite_store__siphash(seed, key, len, 1, 3), ref);
	}
	uint64_t a = kite_store__siphash(seed, key, 16, 1, 3);
	seed[0] ^= 1;
	assert_int_not_equal(kite_store__siphash(seed, key, 16, 1, 3), a);
}

/* The index hash (SipHash-1-3 unrolled, the seed's state kept) is siphash(1, 3) at every length. */
static void
test_index_hash_is_siphash13(void **state)
{
	struct kite_store *s = mk("hash13", 1 << 20, 0, 0);
	uint8_t key[80];

	(void)state;
	assert_non_null(s);
	for (int i = 0; i < (int)sizeof(key); i++)
		key[i] = (uint8_t)(i * 29 + 5);
	for (uint16_t len = 0; len <= sizeof(key); len++)
		assert_int_equal(kite_store_hash(s, key, len),
				 kite_store__siphash(seed_a, key, len, 1, 3));
	kite_store_free(s);
}

/* DPDK heap bytes in use on every socket. */
static size_t
heap_used(void)
{
	struct rte_malloc_socket_stats st;
	size_t sum = 0;

	for (int sock = 0; sock < RTE_MAX_NUMA_NODES; sock++)
		if (rte_malloc_get_socket_stats(sock, &st) == 0)
			sum += st.heap_allocsz_bytes;
	return sum;
}

/* What kite_store_footprint() says a partition takes is what it takes (within 2%). */
static void
test_footprint(void **state)
{
	const uint64_t sizes[] = { 64 << 10, 1 << 20, 3 << 20, 16 << 20 };

	(void)state;
	assert_int_equal(kite_store_footprint(NULL), 0);
	for (unsigned int i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct kite_store_params p = {
			.name = "footprint",
			.socket_id = SOCKET_ID_ANY,
			.mem_bytes = sizes[i],
		};
		size_t before = heap_used();
		struct kite_store *s = kite_store_create(&p);
		double used = (double)(heap_used() - before);
		double said = (double)kite_store_footprint(&p);

		assert_non_null(s);
		assert_true(said >= 0.98 * used && said <= 1.02 * used);
		kite_store_free(s);
		p.index_entries = 100000;
		before = heap_used();
		s = kite_store_create(&p);
		used = (double)(heap_used() - before);
		said = (double)kite_store_footprint(&p);
		assert_non_null(s);
		assert_true(said >= 0.98 * used && said <= 1.02 * used);
		kite_store_free(s);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_invalid),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_set_get_overwrite),
		cmocka_unit_test(test_add_replace_cas),
		cmocka_unit_test(test_append_prepend),
		cmocka_unit_test(test_delete),
		cmocka_unit_test(test_delta_parse),
		cmocka_unit_test(test_delta),
		cmocka_unit_test(test_ttl_touch),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_random_ops),
		cmocka_unit_test(test_clock_second_chance),
		cmocka_unit_test(test_reinsert_wrap),
		cmocka_unit_test(test_append_full_log),
		cmocka_unit_test(test_append_in_place),
		cmocka_unit_test(test_tenant_share),
		cmocka_unit_test(test_collision),
		cmocka_unit_test(test_get_bulk),
		cmocka_unit_test(test_get_bulk_no_prefetch),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_index_full),
		cmocka_unit_test(test_stats_counters),
		cmocka_unit_test(test_set_time),
		cmocka_unit_test(test_siphash_matches_libsodium),
		cmocka_unit_test(test_index_hash_is_siphash13),
		cmocka_unit_test(test_result_names),
		cmocka_unit_test(test_absolute_expiry),
		cmocka_unit_test(test_explicit_cas),
		cmocka_unit_test(test_stale_and_win),
		cmocka_unit_test(test_iterate),
		cmocka_unit_test(test_cas_mark),
		cmocka_unit_test(test_fetched_mark),
		cmocka_unit_test(test_footprint),
	};
	int ret;

	if (kite_test_eal_init("store") < 0)
		return 1;
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	rte_eal_cleanup();
	return ret;
}
