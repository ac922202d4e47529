/* SPDX-License-Identifier: BSD-3-Clause */
/* lib/stats: the log-bucketed histogram (kite_hist.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kite_hist.h"
#include "kite_stats.h"

/* Every value lies in its bucket; buckets are contiguous and at most 25 % wide. */
static void
test_buckets(void **state)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)state;
	for (unsigned int i = 0; i + 1 < KITE_HIST_BUCKETS; i++) {
		assert_int_equal(kite_hist_upper(i), kite_hist_lower(i + 1));
		assert_true(kite_hist_lower(i) < kite_hist_upper(i));
		if (kite_hist_lower(i) >= 4)
			assert_true((kite_hist_upper(i) - kite_hist_lower(i)) * 4 <= kite_hist_lower(i));
		assert_int_equal(kite_hist_bucket(kite_hist_lower(i)), i);
		assert_int_equal(kite_hist_bucket(kite_hist_upper(i) - 1), i);
	}
	for (unsigned int v = 0; v < 100000; v++) {
		unsigned int b = kite_hist_bucket(v);
		assert_true(kite_hist_lower(b) <= v && v < kite_hist_upper(b));
	}
	for (int k = 0; k < 100000; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t v = x >> (x & 63);
		unsigned int b = kite_hist_bucket(v);
		assert_true(kite_hist_lower(b) <= v);
		assert_true(v < kite_hist_upper(b) || b == KITE_HIST_BUCKETS - 1);
	}
	/* Powers of two start buckets (Prometheus's le bounds are exact there). */
	for (unsigned int e = 0; e < KITE_HIST_OCTAVES; e++)
		assert_int_equal(kite_hist_lower(kite_hist_bucket(1ull << e)), 1ull << e);
	/* Beyond the range: the last bucket, unbounded above. */
	assert_int_equal(kite_hist_bucket(UINT64_MAX), KITE_HIST_BUCKETS - 1);
	assert_int_equal(kite_hist_upper(KITE_HIST_BUCKETS - 1), UINT64_MAX);
}

/* Quantiles: the bucket's top, never below the true value, at most 25 % above. */
static void
test_quantiles(void **state)
{
	static struct kite_hist h;

	(void)state;
	memset(&h, 0, sizeof(h));
	assert_int_equal(kite_hist_quantile(&h, 0.5), 0);
	assert_int_equal(kite_hist_total(&h), 0);
	for (uint64_t v = 1; v <= 10000; v++)
		kite_hist_add(&h, v * 100, 1);
	assert_int_equal(kite_hist_total(&h), 10000);
	assert_int_equal(h.sum, 100ull * 10000 * 10001 / 2);
	const double qs[] = { 0.5, 0.9, 0.99, 0.999, 1.0 };
	for (unsigned int i = 0; i < 5; i++) {
		uint64_t truth = (uint64_t)(qs[i] * 10000 + 0.5) * 100;
		uint64_t got = kite_hist_quantile(&h, qs[i]);
		assert_true(got >= truth);
		assert_true(got <= truth + truth / 4);
	}
	/* Counted n at once: the same as n adds. */
	static struct kite_hist a, b;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	kite_hist_add(&a, 777, 5);
	for (int i = 0; i < 5; i++)
		kite_hist_add(&b, 777, 1);
	assert_memory_equal(&a, &b, sizeof(a));
}

/* Cumulative counts below a power of two are exact; histograms merge as arrays. */
static void
test_below_and_merge(void **state)
{
	static struct kite_hist w0, w1, sum;

	(void)state;
	memset(&w0, 0, sizeof(w0));
	memset(&w1, 0, sizeof(w1));
	memset(&sum, 0, sizeof(sum));
	for (uint64_t v = 0; v < 5000; v++) {
		kite_hist_add(&w0, v, 1);
		kite_hist_add(&w1, v * 3, 2);
	}
	for (unsigned int e = 0; e < 20; e++) {
		const uint64_t bound = 1ull << e;
		uint64_t truth = 0;
		for (uint64_t v = 0; v < 5000; v++)
			truth += (v < bound) + 2 * (v * 3 < bound);
		kite_stats_add((uint64_t *)&sum, (const uint64_t *)&w0, sizeof(sum) / 8);
		kite_stats_add((uint64_t *)&sum, (const uint64_t *)&w1, sizeof(sum) / 8);
		assert_int_equal(kite_hist_below(&sum, bound), truth * (e + 1));
	}
	assert_int_equal(kite_hist_below(&w0, UINT64_MAX), 5000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_quantiles),
		cmocka_unit_test(test_below_and_merge),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
