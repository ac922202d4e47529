/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_STATS_H
#define KITE_STATS_H

/**
 * @file
 * Counter tables, generic: each library declares its counters once, as an
 * X-macro list of (field, name, help), which gives the struct of uint64_t
 * counters its owner writes and the name and help tables every output
 * reads (memcached's STAT, DPDK telemetry, the log line, Prometheus).
 * This module sums such structs and emits them by name; it knows no
 * library and no program. Which counters a program shows, under which
 * prefix, is composed at the top (app/kited/stats.c).
 *
 * Counters are plain uint64_t written by one lcore (no atomics on the hot
 * path); a reader on another thread sees each aligned 64-bit value whole,
 * so a sum is at worst a few packets stale.
 */

#include <stdint.h>

/** Callback receiving one "name value" statistic. */
typedef void (*kite_stats_emit_fn)(void *arg, const char *name, const char *value);

/** A library's counter table: counters 0..n-1 of a struct of uint64_t, by index. */
struct kite_stats_table {
	const char *const *names; /**< names[i]: counter i's name (lowercase, '_') */
	const char *const *help;  /**< help[i]: one line about counter i */
	unsigned int n;
};

/** sum[i] += v[i] for i < n: a struct of uint64_t counters added into another. */
void kite_stats_add(uint64_t *sum, const uint64_t *v, unsigned int n);

/** The index of the counter called name in t, or -1. */
int kite_stats_index(const struct kite_stats_table *t, const char *name);

/** Emit one counter as decimal text. */
void kite_stats_emit_u64(kite_stats_emit_fn emit, void *arg, const char *name, uint64_t v);

/**
 * Emit every counter of t from v[0..t->n), each named prefix + its name
 * (names longer than 63 characters in all are cut).
 */
void kite_stats_emit_table(const struct kite_stats_table *t, const uint64_t *v, const char *prefix,
			   kite_stats_emit_fn emit, void *arg);

/** Declare a counter struct field from an X-macro row (field, name, help). */
#define KITE_STATS_FIELD(field, name, help) uint64_t field;
/** A name-table entry from an X-macro row. */
#define KITE_STATS_NAME(field, name, help) name,
/** A help-table entry from an X-macro row. */
#define KITE_STATS_HELP(field, name, help) help,
/** One for each row: the count of an X-macro list. */
#define KITE_STATS_ONE(field, name, help) +1

#endif /* KITE_STATS_H */
