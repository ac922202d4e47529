/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The latency histogram. Recording is a shift, a count-leading-zeros and
 * an add (bench.h), so a load lcore can afford one sample per request;
 * everything that walks the buckets runs in the reporting thread.
 */
#include <string.h>

#include "bench.h"

void
hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

uint64_t
hist_bucket_lo(unsigned int i)
{
	unsigned int shift;

	if (i < 2 * HIST_SUB)
		return i;
	shift = i / HIST_SUB - 1;
	return (uint64_t)(HIST_SUB + i % HIST_SUB) << shift;
}

uint64_t
hist_bucket_hi(unsigned int i)
{
	unsigned int shift;

	if (i < 2 * HIST_SUB)
		return i;
	shift = i / HIST_SUB - 1;
	return ((uint64_t)(HIST_SUB + i % HIST_SUB + 1) << shift) - 1;
}

void
hist_merge(struct hist *a, const struct hist *b)
{
	for (unsigned int i = 0; i < HIST_BUCKETS; i++)
		a->b[i] += b->b[i];
	a->count += b->count;
	a->sum += b->sum;
	if (b->count > 0 && b->min < a->min)
		a->min = b->min;
	if (b->max > a->max)
		a->max = b->max;
}

void
hist_diff(struct hist *out, const struct hist *a, const struct hist *b)
{
	/*
	 * The snapshots are read while the lcore writes, so a bucket may be a
	 * few samples ahead of `count`; recount rather than trust the header.
	 */
	out->count = 0;
	out->min = UINT64_MAX;
	out->max = 0;
	for (unsigned int i = 0; i < HIST_BUCKETS; i++) {
		uint64_t d = a->b[i] >= b->b[i] ? a->b[i] - b->b[i] : 0;
		out->b[i] = d;
		if (d == 0)
			continue;
		out->count += d;
		if (out->min == UINT64_MAX)
			out->min = hist_bucket_lo(i);
		out->max = hist_bucket_hi(i);
	}
	out->sum = a->sum >= b->sum ? a->sum - b->sum : 0;
}

uint64_t
hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (h->count == 0)
		return 0;
	if (q >= 1.0)
		return h->max;
	want = (uint64_t)(q * (double)h->count);
	if (want >= h->count)
		want = h->count - 1;
	for (unsigned int i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > want) {
			uint64_t v = hist_bucket_hi(i);
			/* The exact extremes are known; never report beyond them. */
			return v > h->max && h->max != 0 ? h->max : v;
		}
	}
	return h->max;
}
