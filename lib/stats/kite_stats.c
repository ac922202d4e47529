/* SPDX-License-Identifier: BSD-3-Clause */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kite_stats.h"

void
kite_stats_add(uint64_t *sum, const uint64_t *v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		sum[i] += v[i];
}

int
kite_stats_index(const struct kite_stats_table *t, const char *name)
{
	for (unsigned int i = 0; i < t->n; i++)
		if (strcmp(t->names[i], name) == 0)
			return (int)i;
	return -1;
}

void
kite_stats_emit_u64(kite_stats_emit_fn emit, void *arg, const char *name, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	emit(arg, name, buf);
}

void
kite_stats_emit_table(const struct kite_stats_table *t, const uint64_t *v, const char *prefix,
		      kite_stats_emit_fn emit, void *arg)
{
	char name[64];

	for (unsigned int i = 0; i < t->n; i++) {
		snprintf(name, sizeof(name), "%s%s", prefix, t->names[i]);
		kite_stats_emit_u64(emit, arg, name, v[i]);
	}
}
