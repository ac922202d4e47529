/* SPDX-License-Identifier: BSD-3-Clause */

/*
 * Trace-driven check that the store's CLOCK (FIFO with reinsertion)
 * replacement tracks exact LRU: a Zipf(0.99) GET-then-SET-on-miss trace over
 * 1M keys, the cache sized to 10% of the working set in bytes, replayed
 * against the real store and against an exact LRU simulator that holds as
 * many items as the store can. The hit ratios must agree within 2 points.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_memory.h>

#include "kite_store.h"
#include "kite_store_priv.h"
#include "kite_test.h"

#define N_KEYS	 1000000u
#define N_REQS	 5000000u
#define ZIPF_S	 0.99
#define KEY_LEN	 16
#define VAL_LEN	 32
#define MAX_DIFF 0.02

/*
 * The unit tests do not link libm, and a CDF needs only k^-s: natural log
 * by the atanh series on the mantissa, exp by Taylor after reducing by
 * ln 2. Both are accurate to ~1e-15 over the range used here.
 */
#define LN2 0.69314718055994530942

static double
ln(double x)
{
	union {
		double d;
		uint64_t u;
	} v = { .d = x };
	int e = (int)((v.u >> 52) & 0x7ff) - 1023;
	double z, z2, term, sum = 0;
	int i;

	v.u = (v.u & ((1ULL << 52) - 1)) | (1023ULL << 52); /* mantissa in [1, 2) */
	z = (v.d - 1) / (v.d + 1);
	z2 = z * z;
	term = z;
	for (i = 1; i < 41; i += 2) {
		sum += term / i;
		term *= z2;
	}
	return 2 * sum + e * LN2;
}

static double
expo(double y)
{
	int n = (int)(y / LN2 + (y < 0 ? -0.5 : 0.5));
	double r = y - n * LN2, term = 1, sum = 1;
	union {
		double d;
		uint64_t u;
	} scale;
	int i;

	for (i = 1; i < 25; i++) {
		term *= r / i;
		sum += term;
	}
	scale.u = (uint64_t)(n + 1023) << 52;
	return sum * scale.d;
}

static double
absd(double x)
{
	return x < 0 ? -x : x;
}

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * Deterministic Zipf trace: a cumulative table of k^-s over the ranks and a
 * binary search per draw. Rank r is key r.
 */
static uint32_t *
make_trace(void)
{
	double *cdf = malloc(N_KEYS * sizeof(*cdf));
	uint32_t *trace = malloc(N_REQS * sizeof(*trace));
	double sum = 0;
	uint64_t rng = 0x6b697465; /* "kite" */
	uint32_t i;

	assert_non_null(cdf);
	assert_non_null(trace);
	for (i = 0; i < N_KEYS; i++) {
		sum += expo(-ZIPF_S * ln((double)(i + 1)));
		cdf[i] = sum;
	}
	for (i = 0; i < N_REQS; i++) {
		double u = (double)(splitmix64(&rng) >> 11) * 0x1.0p-53 * sum;
		uint32_t lo = 0, hi = N_KEYS - 1;

		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;

			if (cdf[mid] < u)
				lo = mid + 1;
			else
				hi = mid;
		}
		trace[i] = lo;
	}
	free(cdf);
	return trace;
}

static void
key_of(char *buf, uint32_t id)
{
	char tmp[KEY_LEN + 1];

	snprintf(tmp, sizeof(tmp), "k%015" PRIu32, id);
	memcpy(buf, tmp, KEY_LEN);
}

static struct kite_store *
mk(const char *name, uint64_t mem)
{
	static const uint8_t seed[16] = "clock-vs-lru-sd!";
	struct kite_store_params p = {
		.name = name,
		.socket_id = SOCKET_ID_ANY,
		.mem_bytes = mem,
		/* Enough index that memory, not the index, bounds the cache. */
		.index_entries = (uint32_t)(mem / kite_store__item_size(KEY_LEN, VAL_LEN) * 2),
		.max_item_size = 1024,
		.seed = seed,
	};
	struct kite_store *s = kite_store_create(&p);

	assert_non_null(s);
	kite_store_set_time(s, 1700000000u);
	return s;
}

static void
set_key(struct kite_store *s, uint32_t id)
{
	char key[KEY_LEN];
	uint8_t val[VAL_LEN];
	uint64_t cas;

	key_of(key, id);
	memset(val, (int)(id & 0xff), sizeof(val));
	const struct kite_store_write w = { .mode = KITE_STORE_SET,
					    .value = val,
					    .vallen = VAL_LEN };

	assert_int_equal(
		kite_store_store(s, key, KEY_LEN, kite_store_hash(s, key, KEY_LEN), &w, &cas),
		KITE_STORE_OK);
}

/* How many of these items the store holds once full. */
static uint64_t
measure_capacity(uint64_t mem)
{
	struct kite_store *s = mk("lru_cap", mem);
	struct kite_store_stats st;
	uint32_t id = 0;

	do {
		set_key(s, N_KEYS + id++);
		kite_store_stats_get(s, &st);
	} while (st.evictions == 0);
	kite_store_free(s);
	return st.curr_items;
}

/* Exact LRU over integer keys: direct-mapped key -> node, doubly linked list. */
struct lru {
	uint32_t cap, used, head, tail;
	int32_t *map; /* key -> node, -1: absent */
	uint32_t *key, *prev, *next;
};

#define NIL UINT32_MAX

static void
lru_init(struct lru *l, uint32_t cap)
{
	l->cap = cap;
	l->used = 0;
	l->head = l->tail = NIL;
	l->map = malloc(N_KEYS * sizeof(*l->map));
	l->key = malloc(cap * sizeof(*l->key));
	l->prev = malloc(cap * sizeof(*l->prev));
	l->next = malloc(cap * sizeof(*l->next));
	assert_non_null(l->map);
	assert_non_null(l->key);
	assert_non_null(l->prev);
	assert_non_null(l->next);
	memset(l->map, 0xff, N_KEYS * sizeof(*l->map));
}

static void
lru_unlink(struct lru *l, uint32_t n)
{
	if (l->prev[n] != NIL)
		l->next[l->prev[n]] = l->next[n];
	else
		l->head = l->next[n];
	if (l->next[n] != NIL)
		l->prev[l->next[n]] = l->prev[n];
	else
		l->tail = l->prev[n];
}

static void
lru_push_front(struct lru *l, uint32_t n)
{
	l->prev[n] = NIL;
	l->next[n] = l->head;
	if (l->head != NIL)
		l->prev[l->head] = n;
	l->head = n;
	if (l->tail == NIL)
		l->tail = n;
}

/* GET-then-SET-on-miss of key k. @return true on a hit. */
static bool
lru_access(struct lru *l, uint32_t k)
{
	int32_t n = l->map[k];
	uint32_t v;

	if (n >= 0) {
		lru_unlink(l, (uint32_t)n);
		lru_push_front(l, (uint32_t)n);
		return true;
	}
	if (l->used < l->cap) {
		v = l->used++;
	} else {
		v = l->tail;
		lru_unlink(l, v);
		l->map[l->key[v]] = -1;
	}
	l->key[v] = k;
	l->map[k] = (int32_t)v;
	lru_push_front(l, v);
	return false;
}

static void
lru_fini(struct lru *l)
{
	free(l->map);
	free(l->key);
	free(l->prev);
	free(l->next);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void
test_math_and_lru_sanity(void **state)
{
	struct lru l;

	(void)state;
	/* The hand-rolled k^-s against known values. */
	assert_true(absd(ln(2.0) - LN2) < 1e-15);
	assert_true(absd(ln(1.0)) < 1e-15);
	assert_true(absd(expo(1.0) - 2.718281828459045) < 1e-14);
	assert_true(absd(expo(-ZIPF_S * ln(10.0)) - 0.10232929922807541) < 1e-15);
	assert_true(absd(expo(-ZIPF_S * ln(1e6)) - 1.1481536214968828e-06) < 1e-19);

	/* Capacity 2: a b a c b -> hit on a, b evicted by c, so b misses. */
	lru_init(&l, 2);
	assert_false(lru_access(&l, 1));
	assert_false(lru_access(&l, 2));
	assert_true(lru_access(&l, 1));
	assert_false(lru_access(&l, 3));
	assert_false(lru_access(&l, 2));
	assert_true(lru_access(&l, 3));
	assert_false(lru_access(&l, 1));
	lru_fini(&l);
}

static void
test_clock_vs_lru(void **state)
{
	const uint64_t item = kite_store__item_size(KEY_LEN, VAL_LEN);
	const uint64_t mem = (uint64_t)N_KEYS * item / 10;
	uint64_t cap, clock_hits = 0, lru_hits = 0, clock_warm = 0, lru_warm = 0;
	const uint32_t warm = N_REQS / 5;
	struct kite_store_stats st;
	struct kite_store *s;
	struct lru l;
	uint32_t *trace;
	double t0, t_trace, t_clock, t_lru, clock_ratio, lru_ratio;
	uint32_t i;

	(void)state;
	t0 = now_s();
	trace = make_trace();
	t_trace = now_s();

	cap = measure_capacity(mem);
	assert_true(cap > 0);
	assert_true(cap * item <= mem);

	s = mk("lru_clock", mem);
	for (i = 0; i < N_REQS; i++) {
		char key[KEY_LEN];
		struct kite_store_view v;
		uint64_t hk;

		key_of(key, trace[i]);
		hk = kite_store_hash(s, key, KEY_LEN);
		if (kite_store_get(s, key, KEY_LEN, hk, &v) == KITE_STORE_OK) {
			/* Never another key's value. */
			assert_int_equal(v.value[0], trace[i] & 0xff);
			clock_hits++;
			clock_warm += i >= warm;
		} else {
			set_key(s, trace[i]);
		}
	}
	kite_store_stats_get(s, &st);
	assert_int_equal(kite_store__check(s), 0);
	/* The store really was full and evicting; the index never interfered. */
	assert_int_equal(st.curr_items, cap);
	assert_true(st.evictions > 0);
	assert_int_equal(st.index_full, 0);
	kite_store_free(s);
	t_clock = now_s();

	lru_init(&l, (uint32_t)cap);
	for (i = 0; i < N_REQS; i++) {
		if (lru_access(&l, trace[i])) {
			lru_hits++;
			lru_warm += i >= warm;
		}
	}
	lru_fini(&l);
	t_lru = now_s();
	free(trace);

	clock_ratio = (double)clock_hits / N_REQS;
	lru_ratio = (double)lru_hits / N_REQS;
	printf("zipf %.2f, %u keys, %u requests, cache %" PRIu64 " bytes = %" PRIu64
	       " items (10%% of the working set)\n",
	       ZIPF_S, N_KEYS, N_REQS, mem, cap);
	printf("hit ratio: CLOCK %.4f  LRU %.4f  (diff %+.4f); after warm-up: CLOCK %.4f  LRU "
	       "%.4f\n",
	       clock_ratio, lru_ratio, clock_ratio - lru_ratio,
	       (double)clock_warm / (N_REQS - warm), (double)lru_warm / (N_REQS - warm));
	printf("CLOCK: %" PRIu64 " evictions, %" PRIu64 " reinserted\n", st.evictions,
	       st.reinserted);
	printf("time: trace %.2f s, store %.2f s, LRU %.2f s\n", t_trace - t0, t_clock - t_trace,
	       t_lru - t_clock);
	assert_true(absd(clock_ratio - lru_ratio) <= MAX_DIFF);
	assert_true(absd((double)clock_warm / (N_REQS - warm) -
			 (double)lru_warm / (N_REQS - warm)) <= MAX_DIFF);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_math_and_lru_sanity),
		cmocka_unit_test(test_clock_vs_lru),
	};
	int ret;

	if (kite_test_eal_init("store_clock") < 0)
		return 1;
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	rte_eal_cleanup();
	return ret;
}
