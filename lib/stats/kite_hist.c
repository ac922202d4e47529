/* SPDX-License-Identifier: BSD-3-Clause */
#include <math.h>

#include "kite_hist.h"

_Static_assert((KITE_HIST_SUB & (KITE_HIST_SUB - 1u)) == 0 && KITE_HIST_SUB == 4u,
	       "kite_hist_bucket() takes two bits below the top one");

uint64_t
kite_hist_lower(unsigned int i)
{
	if (i < 2u * KITE_HIST_SUB)
		return i;
	const unsigned int e = i / KITE_HIST_SUB + 1u;

	return (uint64_t)(KITE_HIST_SUB + i % KITE_HIST_SUB) << (e - 2u);
}

uint64_t
kite_hist_upper(unsigned int i)
{
	return i + 1u >= KITE_HIST_BUCKETS ? UINT64_MAX : kite_hist_lower(i + 1u);
}

uint64_t
kite_hist_total(const struct kite_hist *h)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < KITE_HIST_BUCKETS; i++)
		n += h->count[i];
	return n;
}

uint64_t
kite_hist_below(const struct kite_hist *h, uint64_t bound)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < KITE_HIST_BUCKETS && kite_hist_upper(i) <= bound; i++)
		n += h->count[i];
	return n;
}

uint64_t
kite_hist_quantile(const struct kite_hist *h, double q)
{
	const uint64_t total = kite_hist_total(h);
	uint64_t rank, seen = 0;

	if (total == 0)
		return 0;
	if (!(q > 0.0))
		q = 0.0;
	if (q > 1.0)
		q = 1.0;
	rank = (uint64_t)ceil(q * (double)total);
	if (rank == 0)
		rank = 1;
	for (unsigned int i = 0; i < KITE_HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen >= rank) {
			const uint64_t up = kite_hist_upper(i);
			return up == UINT64_MAX ? up : up - 1u;
		}
	}
	return UINT64_MAX;
}
