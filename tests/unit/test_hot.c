/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lib/engine's hot-key detection (kite_hot.h): on a Zipf 1.2 workload the
 * true top 10 are found with recall >= 0.9; rates come out near the true
 * ones; the hot set holds exactly the keys over the rate; a snapshot reads
 * back whole; counts decay when a key cools down; the counters' index and
 * heap stay consistent and follow Space-Saving's rule sample by sample.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kite_hot.h"

#define NKEYS 100000
#define T0 1800000000u

static uint64_t
mix(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	x ^= x >> 33;
	return x | 1; /* never 0 */
}

/* Zipf(theta) over ranks 1..n by inverse transform on a precomputed CDF. */
static double *cdf;

static void
zipf_init(double theta)
{
	double sum = 0;

	cdf = malloc(sizeof(double) * NKEYS);
	assert_non_null(cdf);
	assert_true(theta == 1.2);
	for (int i = 0; i < NKEYS; i++) {
		/* 1 / (i+1)^1.2 without libm: (i+1) times its fifth root (Newton's method). */
		double x = (double)(i + 1), r = x > 1 ? x / 5 + 1 : 1;
		for (int it = 0; it < 60; it++)
			r = r - (r * r * r * r * r - x) / (5 * r * r * r * r);
		double p = 1.0 / (x * r);
		sum += p;
		cdf[i] = sum;
	}
	for (int i = 0; i < NKEYS; i++)
		cdf[i] /= sum;
}

static int
zipf_draw(uint64_t *rng)
{
	*rng ^= *rng << 13;
	*rng ^= *rng >> 7;
	*rng ^= *rng << 17;
	double u = (double)(*rng >> 11) / (double)(UINT64_C(1) << 53);
	int lo = 0, hi = NKEYS - 1;

	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void
key_of(int rank, char *k, uint16_t *len)
{
	*len = (uint16_t)snprintf(k, 32, "key:%d", rank);
}

static void
test_zipf_recall(void **state)
{
	static struct kite_hot h;
	static struct kite_hot_pub pub, snap;
	uint64_t rng = 88172645463325252ull;
	const int per_second = 200000, seconds = 5;
	int found = 0;

	(void)state;
	zipf_init(1.2);
	kite_hot_init(&h, 1000, &pub, T0);
	for (int s = 1; s <= seconds; s++) {
		for (int i = 0; i < per_second; i++) {
			char k[32];
			uint16_t n;
			int r = zipf_draw(&rng);

			key_of(r, k, &n);
			kite_hot_seen(&h, mix((uint64_t)r), (const uint8_t *)k, n);
		}
		kite_hot_tick(&h, T0 + (uint32_t)s);
	}
	assert_int_equal(kite_hot_read(&pub, &snap), KITE_HOT_TOP);
	/* Recall of the true top 10 (ranks 0..9) in the published top 10. */
	for (int r = 0; r < 10; r++) {
		char k[32];
		uint16_t n;

		key_of(r, k, &n);
		for (unsigned int i = 0; i < snap.n; i++)
			if (snap.top[i].keylen == n && memcmp(snap.top[i].key, k, n) == 0) {
				found++;
				break;
			}
	}
	printf("recall of the top 10: %d/10; top rate %llu (true %.0f)\n", found,
	       (unsigned long long)snap.top[0].rate, per_second * (cdf[0]));
	assert_true(found >= 9);
	/* Sorted by rate, and the hottest near its true rate (within 15 %). */
	for (unsigned int i = 1; i < snap.n; i++)
		assert_true(snap.top[i - 1].rate >= snap.top[i].rate);
	double truth = per_second * cdf[0];
	assert_true(snap.top[0].rate > truth * 0.85 && snap.top[0].rate < truth * 1.15);
	/* Hot: every key over 1000 reads/s and no other. */
	for (int r = 0; r < 20; r++) {
		double rate = per_second * (cdf[r] - (r ? cdf[r - 1] : 0));
		if (rate > 1300)
			assert_true(kite_hot_is_hot(&h, mix((uint64_t)r)));
		if (rate < 700)
			assert_false(kite_hot_is_hot(&h, mix((uint64_t)r)));
	}
	assert_false(kite_hot_is_hot(&h, mix(99999)));
	assert_true(snap.hot >= 1 && snap.hot <= snap.n);

	/* Cooling down: with no more reads the rates halve each second until nothing is hot. */
	for (int s = 1; s <= 12; s++)
		kite_hot_tick(&h, T0 + (uint32_t)(seconds + s));
	kite_hot_read(&pub, &snap);
	assert_int_equal(snap.hot, 0);
	assert_false(kite_hot_is_hot(&h, mix(0)));
	free(cdf);
}

/*
 * A uniform load over many keys has no hot key, however fast: 4 million
 * reads a second over 100,000 keys is 40 per key, under the threshold of
 * 1000. Space-Saving's counters are then mostly error (each inherits the
 * count of the key it replaced), and hotness is judged on count - error.
 */
static void
test_uniform_not_hot(void **state)
{
	static struct kite_hot h;
	static struct kite_hot_pub pub, snap;
	uint64_t x = 88172645463325252ULL;

	(void)state;
	kite_hot_init(&h, 1000, &pub, T0);
	for (int s = 1; s <= 3; s++) {
		for (int i = 0; i < 4000000; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			const uint64_t k = x % 100000;
			kite_hot_seen(&h, mix(k), (const uint8_t *)&k, sizeof(k));
		}
		kite_hot_tick(&h, T0 + (uint32_t)s);
	}
	kite_hot_read(&pub, &snap);
	assert_int_equal(snap.n, KITE_HOT_TOP);
	assert_int_equal(snap.hot, 0);
	assert_int_equal(h.nhot, 0);
	for (uint64_t k = 0; k < 1000; k++)
		assert_false(kite_hot_is_hot(&h, mix(k)));
}

/* Off (rate 0): counted and published, never hot. */
static void
test_rate_zero(void **state)
{
	static struct kite_hot h;
	static struct kite_hot_pub pub, snap;

	(void)state;
	kite_hot_init(&h, 0, &pub, T0);
	for (int i = 0; i < 100000; i++)
		kite_hot_seen(&h, 42, (const uint8_t *)"only", 4);
	kite_hot_tick(&h, T0 + 1);
	assert_false(kite_hot_is_hot(&h, 42));
	assert_int_equal(kite_hot_read(&pub, &snap), 1);
	assert_int_equal(snap.hot, 0);
	assert_int_equal(snap.top[0].keylen, 4);
	/* 100,000 reads in one second (decayed estimate over two windows): half of it. */
	assert_true(snap.top[0].rate >= 45000 && snap.top[0].rate <= 55000);
}

/* The counters' structures after every sample: index, heap and Space-Saving's sums. */
static void
check_structures(const struct kite_hot *h, uint64_t samples)
{
	unsigned int in_index = 0;
	uint64_t sum = 0;

	for (unsigned int s = 0; s < KITE_HOT_SET; s++)
		if (h->idx[s] != 0) {
			assert_true(h->idx[s] <= h->n);
			in_index++;
		}
	assert_int_equal(in_index, h->n);
	for (unsigned int c = 0; c < h->n; c++) {
		unsigned int s = (unsigned int)(h->hash[c] ^ (h->hash[c] >> 32)) & (KITE_HOT_SET - 1);

		/* Reached from its home slot without crossing an empty one. */
		while (h->idx[s] != c + 1) {
			assert_int_not_equal(h->idx[s], 0);
			s = (s + 1) & (KITE_HOT_SET - 1);
		}
		assert_int_equal(h->heap[h->pos[c]], c);
		if (h->pos[c] > 0)
			assert_true(h->count[h->heap[(h->pos[c] - 1) / 2]] <= h->count[c]);
		assert_true(h->err[c] < h->count[c]);
		sum += h->count[c];
	}
	/* Every sample added one to one counter; a takeover keeps the count it inherits. */
	assert_int_equal(sum, samples);
}

/*
 * The index and the heap against the definition: after each of 200,000
 * samples (keys from a skewed and a uniform stream, with hash collisions
 * on the index's slots) the index finds every counter, the heap is in
 * order, counts sum to the samples, and the key that took a counter over
 * inherited the smallest count there was (the Space-Saving rule).
 */
static void
test_heap_index(void **state)
{
	static struct kite_hot h;
	uint64_t x = 42;

	(void)state;
	kite_hot_init(&h, 0, NULL, T0);
	for (uint64_t i = 1; i <= 200000; i++) {
		uint64_t key, hash;
		uint32_t minc = UINT32_MAX;
		bool known = false, full = h.n == KITE_HOT_K;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* Half from 32 frequent keys, half from 5,000; slots collide (same low bits). */
		key = (x & 1) ? (x >> 8) % 32 : 32 + (x >> 8) % 5000;
		hash = (mix(key) & ~(uint64_t)0xff00) | ((key % 3) << 8);
		for (unsigned int c = 0; c < h.n; c++) {
			known |= h.hash[c] == hash;
			minc = h.count[c] < minc ? h.count[c] : minc;
		}
		kite_hot_count(&h, hash, (const uint8_t *)&key, sizeof(key));
		if (!known && full) {
			unsigned int c = 0;

			while (h.hash[c] != hash)
				c++;
			assert_int_equal(h.err[c], minc);
			assert_int_equal(h.count[c], minc + 1);
		}
		if (i % 97 == 0 || i < 300)
			check_structures(&h, i);
	}
	check_structures(&h, 200000);
	/* The 32 frequent keys (each 1/64 of the stream, over 1/KITE_HOT_K) all hold counters. */
	for (uint64_t key = 0; key < 32; key++) {
		const uint64_t hash = (mix(key) & ~(uint64_t)0xff00) | ((key % 3) << 8);
		bool held = false;

		for (unsigned int c = 0; c < h.n; c++)
			held |= h.hash[c] == hash;
		assert_true(held);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zipf_recall),
		cmocka_unit_test(test_uniform_not_hot),
		cmocka_unit_test(test_rate_zero),
		cmocka_unit_test(test_heap_index),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
