/* SPDX-License-Identifier: BSD-3-Clause */
/* Node-wide statistics: sums over workers and partitions, and STAT names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kite_stats.h"
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
	struct kite_stats_src src;
	struct kite_worker_stats w;
	struct kite_store_stats st;
	static struct seen s;

	(void)state;
	memset(&src, 0, sizeof(src));
	kite_stats_sum_workers(&src, &w);
	kite_stats_sum_stores(&src, &st);
	assert_int_equal(w.rx_dgrams, 0);
	assert_int_equal(st.curr_items, 0);
	s.n = 0;
	kite_stats_emit(&src, 100, collect, &s);
	assert_string_equal(lookup(&s, "curr_items"), "0");
	assert_string_equal(lookup(&s, "kite_cycles_per_request"), "0");
	assert_null(lookup(&s, "kite_steer_mode"));
}

static void
test_sums(void **state)
{
	struct kite_worker_stats a, b, sum;
	struct kite_worker_stats *ws[3] = { &a, NULL, &b };
	struct kite_store_params p;
	struct kite_store *parts[2];
	struct kite_stats_src src;
	struct kite_store_stats st;
	static struct seen s;
	uint64_t cas;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.rx_dgrams = 3;
	b.rx_dgrams = 4;
	a.cmd[KITE_CMD_GET] = 10;
	b.cmd[KITE_CMD_GAT] = 1;
	a.busy_cycles = 1000;
	b.busy_cycles = 1000;
	a.served = 10;
	b.served = 10;
	b.proto_drops[KITE_PROTO_DROP_BAD_MAGIC] = 2;
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
	assert_int_equal(kite_store_store(parts[0], "a", 1, kite_store_hash(parts[0], "a", 1), &w1,
					  &cas),
			 0);
	assert_int_equal(kite_store_store(parts[1], "b", 1, kite_store_hash(parts[1], "b", 1), &w2,
					  &cas),
			 0);

	memset(&src, 0, sizeof(src));
	src.n_workers = 3;
	src.workers = ws;
	src.n_parts = 2;
	src.parts = parts;
	src.started = 50;
	src.limit_maxbytes = 2 << 20;
	src.steer_mode = "handoff";
	kite_stats_sum_workers(&src, &sum);
	assert_int_equal(sum.rx_dgrams, 7);
	kite_stats_sum_stores(&src, &st);
	assert_int_equal(st.curr_items, 2);

	s.n = 0;
	kite_stats_emit(&src, 150, collect, &s);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_source),
		cmocka_unit_test(test_sums),
	};
	if (kite_test_eal_init("stats") != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
