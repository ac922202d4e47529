/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_HIST_H
#define KITE_HIST_H

/**
 * @file
 * A log-bucketed histogram of unsigned values (kited: service times in
 * TSC cycles), written by one thread with plain adds, read by others.
 *
 * Buckets: each power of two is split in KITE_HIST_SUB equal steps, so a
 * value is placed to within 1/KITE_HIST_SUB of itself (25 %): values 0..3
 * have a bucket each, then [4,5), [5,6), [6,7), [7,8), [8,10), ...,
 * [12,14), [14,16), [16,20), ... Values from 2^KITE_HIST_OCTAVES on share
 * the last bucket. The index is two shifts and a count of leading zeros:
 * no loop, no division, no table.
 *
 * A histogram is a struct of uint64_t counts, so histograms of several
 * workers merge by adding them as arrays (kite_stats_add), like the
 * counter tables (kite_stats.h). Quantiles are the upper bound of the
 * bucket they fall in: never below the true value, at most 25 % above.
 * Powers of two are bucket bounds, so a cumulative count up to a power
 * of two (Prometheus's `le`) is exact.
 */

#include <stdint.h>

/** Steps per power of two (a power of two itself). */
#define KITE_HIST_SUB 4u
/** Values below 2^KITE_HIST_OCTAVES have buckets of their own. */
#define KITE_HIST_OCTAVES 40u
/** Buckets of a histogram. */
#define KITE_HIST_BUCKETS (KITE_HIST_SUB * (KITE_HIST_OCTAVES - 1u))

struct kite_hist {
	uint64_t count[KITE_HIST_BUCKETS]; /**< values per bucket */
	uint64_t sum;                      /**< sum of the values (wraps after 2^64) */
};

/** The bucket of value v. */
static inline unsigned int
kite_hist_bucket(uint64_t v)
{
	if (v < 2u * KITE_HIST_SUB)
		return (unsigned int)v;
	/* e: the top bit; the next two bits choose the step within [2^e, 2^(e+1)). */
	const unsigned int e = 63u - (unsigned int)__builtin_clzll(v);
	const unsigned int i = (e - 1u) * KITE_HIST_SUB + (unsigned int)((v >> (e - 2u)) & 3u);

	return i < KITE_HIST_BUCKETS ? i : KITE_HIST_BUCKETS - 1u;
}

/** Count n values of v. */
static inline void
kite_hist_add(struct kite_hist *h, uint64_t v, uint64_t n)
{
	h->count[kite_hist_bucket(v)] += n;
	h->sum += v * n;
}

/** The smallest value of bucket i. */
uint64_t kite_hist_lower(unsigned int i);

/** The bound above bucket i: its values are below it (UINT64_MAX for the last). */
uint64_t kite_hist_upper(unsigned int i);

/** Values counted. */
uint64_t kite_hist_total(const struct kite_hist *h);

/** Values below `bound`, exact when bound is a bucket bound (a power of two is). */
uint64_t kite_hist_below(const struct kite_hist *h, uint64_t bound);

/**
 * The q-quantile (0 < q <= 1) as the upper bound of the bucket holding the
 * value of rank ceil(q * total), minus one (the largest value that bucket
 * holds); 0 for an empty histogram.
 */
uint64_t kite_hist_quantile(const struct kite_hist *h, double q);

#endif /* KITE_HIST_H */
