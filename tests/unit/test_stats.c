/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Statistics: lib/stats' generic counter tables, and kited's composition of
 * them (app/kited/stats.c): sums over workers and partitions, and STAT names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kite_stats.h"
#include "kited_stats.h"
#include "kite_test.h"

struct seen {
	char names[256][48];
	char values[256][32];
	unsigned int n;
};

static void
collect(void *arg, const char *name, const char *value)
{
	struct seen *s = arg;

	assert_true(s->n < 256);
	assert_true(strlen(name) < 48 && strlen(value) < 32);
	strcpy(s->names[s->n], name);
	strcpy(s->values[s->n], value);
	s->n++;
}

static const char *
lookup(const struct seen *s, const char *name)
{
	for (unsigned int i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return s->values[i];
	return NULL;
}

static void
test_empty_source(void **state)
{
	struct kited_stats_src src;
	struct kited_worker_stats w;
	struct kite_store_stats st;
	static struct seen s;

	(void)state;
	memset(&src, 0, sizeof(src));
	kited_stats_sum_workers(&src, &w);
	kited_stats_sum_stores(&src, &st);
	assert_int_equal(w.engine.rx_dgrams, 0);
	assert_int_equal(st.curr_items, 0);
	s.n = 0;
	kited_stats_emit(&src, 100, collect, &s);
	assert_string_equal(lookup(&s, "curr_items"), "0");
	assert_string_equal(lookup(&s, "kite_cycles_per_request"), "0");
	assert_null(lookup(&s, "kite_steer_mode"));
}

static void
test_sums(void **state)
{
	struct kited_worker_stats a, b, sum;
	struct kited_worker_stats *ws[3] = { &a, NULL, &b };
	struct kite_store_params p;
	struct kite_store *parts[2];
	struct kited_stats_src src;
	struct kite_store_stats st;
	static struct seen s;
	uint64_t cas;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.engine.rx_dgrams = 3;
	b.engine.rx_dgrams = 4;
	a.engine.cmd[KITE_CMD_GET] = 10;
	b.engine.cmd[KITE_CMD_GAT] = 1;
	a.loop.busy_cycles = 1000;
	b.loop.busy_cycles = 1000;
	a.engine.served = 10;
	b.engine.served = 10;
	b.engine.proto_drops[KITE_PROTO_DROP_BAD_MAGIC] = 2;
	for (int i = 0; i < 2; i++) {
		memset(&p, 0, sizeof(p));
		p.name = i ? "tstat1" : "tstat0";
		p.mem_bytes = 1 << 20;
		p.max_item_size = 1024;
		p.id = (uint16_t)i;
		parts[i] = kite_store_create(&p);
		assert_non_null(parts[i]);
	}
	const struct kite_store_write w1 = { .mode = KITE_STORE_SET, .value = "1", .vallen = 1 };
	const struct kite_store_write w2 = { .mode = KITE_STORE_SET, .value = "2", .vallen = 1 };
	assert_int_equal(
		kite_store_store(parts[0], "a", 1, kite_store_hash(parts[0], "a", 1), &w1, &cas),
		0);
	assert_int_equal(
		kite_store_store(parts[1], "b", 1, kite_store_hash(parts[1], "b", 1), &w2, &cas),
		0);

	memset(&src, 0, sizeof(src));
	src.n_workers = 3;
	src.workers = ws;
	src.n_parts = 2;
	src.parts = parts;
	src.started = 50;
	src.limit_maxbytes = 2 << 20;
	src.steer_mode = "handoff";
	kited_stats_sum_workers(&src, &sum);
	assert_int_equal(sum.engine.rx_dgrams, 7);
	kited_stats_sum_stores(&src, &st);
	assert_int_equal(st.curr_items, 2);

	s.n = 0;
	kited_stats_emit(&src, 150, collect, &s);
	assert_string_equal(lookup(&s, "uptime"), "100");
	assert_string_equal(lookup(&s, "time"), "150");
	assert_string_equal(lookup(&s, "curr_items"), "2");
	assert_string_equal(lookup(&s, "cmd_get"), "11");
	assert_string_equal(lookup(&s, "limit_maxbytes"), "2097152");
	assert_string_equal(lookup(&s, "kite_cycles_per_request"), "100");
	assert_string_equal(lookup(&s, "kite_drop_bad_magic"), "2");
	assert_non_null(lookup(&s, "version"));
	assert_string_equal(lookup(&s, "kite_steer_mode"), "handoff");
	assert_non_null(lookup(&s, "kite_net_drop_udp_csum"));
	kite_store_free(parts[0]);
	kite_store_free(parts[1]);
}

/* lib/stats: sums and names of a counter table, whatever library declares it. */
#define TEST_STATS(X)                                                                              \
	X(alpha, "alpha", "first")                                                                 \
	X(beta, "beta_total", "second, named apart from its field")

struct test_counters {
	TEST_STATS(KITE_STATS_FIELD)
};

static const char *const t_names[] = { TEST_STATS(KITE_STATS_NAME) };
static const char *const t_help[] = { TEST_STATS(KITE_STATS_HELP) };
static const struct kite_stats_table t_table = { t_names, t_help, 0 TEST_STATS(KITE_STATS_ONE) };

static void
test_table(void **state)
{
	struct test_counters a = { 1, 2 }, b = { 10, 20 };
	static struct seen s;

	(void)state;
	assert_int_equal(t_table.n, 2);
	assert_int_equal(kite_stats_index(&t_table, "beta_total"), 1);
	assert_int_equal(kite_stats_index(&t_table, "beta"), -1);
	assert_string_equal(t_table.help[0], "first");
	kite_stats_add((uint64_t *)&a, (const uint64_t *)&b, t_table.n);
	assert_int_equal(a.alpha, 11);
	assert_int_equal(a.beta, 22);
	s.n = 0;
	kite_stats_emit_table(&t_table, (const uint64_t *)&a, "x_", collect, &s);
	assert_int_equal(s.n, 2);
	assert_string_equal(lookup(&s, "x_alpha"), "11");
	assert_string_equal(lookup(&s, "x_beta_total"), "22");
	kite_stats_emit_u64(collect, &s, "big", UINT64_MAX);
	assert_string_equal(lookup(&s, "big"), "18446744073709551615");
}

/* Every library's counter is shown, once, under its table's name. */
static void
test_every_counter_shown(void **state)
{
	struct kited_stats_src src;
	static struct seen s;
	char name[64];

	(void)state;
	memset(&src, 0, sizeof(src));
	s.n = 0;
	kited_stats_emit(&src, 100, collect, &s);
	for (unsigned int i = 0; i < KITE_ENGINE_STATS_N; i++) {
		snprintf(name, sizeof(name), "kite_%s", kite_engine_stats_names[i]);
		assert_non_null(lookup(&s, name));
	}
	for (unsigned int i = 0; i < KITE_NET_STATS_N; i++) {
		snprintf(name, sizeof(name), "kite_net_%s", kite_net_stats_names[i]);
		assert_non_null(lookup(&s, name));
	}
	/* The store's: memcached's names as they are, Kite's own prefixed. */
	assert_non_null(lookup(&s, "get_hits"));
	assert_non_null(lookup(&s, "store_no_memory"));
	assert_non_null(lookup(&s, "kite_reinserted"));
	assert_null(lookup(&s, "reinserted"));
	assert_non_null(lookup(&s, "kite_handoff_out"));
	assert_non_null(lookup(&s, "kite_cmd_topology"));
	/* No name twice. */
	for (unsigned int i = 0; i < s.n; i++)
		for (unsigned int j = i + 1; j < s.n; j++)
			assert_string_not_equal(s.names[i], s.names[j]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_source),
		cmocka_unit_test(test_sums),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_every_counter_shown),
	};
	if (kite_test_eal_init("stats") != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
