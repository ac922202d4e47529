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
#include "kited_metrics.h"
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

/* Every sample line's family: TYPE'd once, before its samples. */
static void
check_exposition(const char *text)
{
	static char types[512][96];
	unsigned int nt = 0;
	const char *p = text;

	while (*p != '\0') {
		const char *end = strchr(p, '\n');
		char line[512], fam[96];

		assert_non_null(end);
		assert_true((size_t)(end - p) < sizeof(line));
		memcpy(line, p, (size_t)(end - p));
		line[end - p] = '\0';
		p = end + 1;
		if (strncmp(line, "# TYPE ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%95s", fam), 1);
			for (unsigned int i = 0; i < nt; i++)
				assert_string_not_equal(types[i], fam);
			assert_true(nt < 512);
			strcpy(types[nt++], fam);
			continue;
		}
		if (line[0] == '#')
			continue;
		size_t n = strcspn(line, "{ ");
		assert_true(n > 0 && n < sizeof(fam));
		memcpy(fam, line, n);
		fam[n] = '\0';
		/* A histogram's series are its family's. */
		for (const char *suf = "_bucket\0_sum\0_count\0"; *suf != '\0'; suf += strlen(suf) + 1) {
			size_t sl = strlen(suf);
			if (n > sl && strcmp(fam + n - sl, suf) == 0 && nt > 0 &&
			    strncmp(types[nt - 1], fam, n - sl) == 0 && types[nt - 1][n - sl] == '\0')
				fam[n - sl] = '\0';
		}
		assert_true(nt > 0);
		assert_string_equal(types[nt - 1], fam);
	}
}

/*
 * /metrics: STAT renamed by rule (memcached_exporter's names, labelled
 * families, info gauges), each family typed once; the service-time
 * histogram in seconds, and the same quantiles in STAT.
 */
static void
test_metrics(void **state)
{
	static struct kited_worker_stats a, b;
	struct kited_worker_stats *ws[3] = { &a, NULL, &b };
	struct kited_stats_src src;
	static struct seen s;
	size_t len;
	char *text;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.engine.cmd[KITE_CMD_GET] = 10;
	a.engine.served = 10;
	b.engine.served = 5;
	b.engine.proto_drops[KITE_PROTO_DROP_BAD_MAGIC] = 2;
	kite_hist_add(&a.service[KITE_CMD_GET], 1000, 6);
	kite_hist_add(&b.service[KITE_CMD_GET], 1000, 4);
	kite_hist_add(&b.service[KITE_CMD_SET], 100000, 1);
	memset(&src, 0, sizeof(src));
	src.n_workers = 3;
	src.workers = ws;
	src.started = 50;
	src.limit_maxbytes = 1 << 20;
	src.steer_mode = "handoff";
	src.tsc_hz = 1000000000; /* a cycle is a nanosecond */

	text = kited_metrics_text(&src, 150, &len);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	check_exposition(text);
	assert_non_null(strstr(text, "# TYPE memcached_current_items gauge\nmemcached_current_items 0\n"));
	assert_non_null(strstr(text, "\nmemcached_uptime_seconds 100\n"));
	assert_non_null(strstr(text, "\nmemcached_limit_bytes 1048576\n"));
	assert_non_null(strstr(text, "\nmemcached_commands_total{command=\"get\",status=\"hit\"} 0\n"));
	assert_non_null(strstr(text, "\nmemcached_version{version=\""));
	assert_non_null(strstr(text, "\nkite_requests_total{command=\"get\"} 10\n"));
	assert_non_null(strstr(text, "\nkite_proto_drops_total{reason=\"bad_magic\"} 2\n"));
	assert_non_null(strstr(text, "\nkite_worker_requests_total{worker=\"0\"} 10\n"));
	assert_non_null(strstr(text, "\nkite_worker_requests_total{worker=\"2\"} 5\n"));
	assert_non_null(strstr(text, "\nkite_steer_mode_info{value=\"handoff\"} 1\n"));
	/* A counter's help comes from its table; its name ends in _total. */
	assert_non_null(strstr(text, "# TYPE kite_handoff_out_total counter\n"));
	assert_non_null(strstr(text, "# HELP kite_handoff_out_total datagrams handed to another worker"));
	/* 1000 cycles: below 1024 (1.024 us), not below 512. */
	assert_non_null(strstr(text, "kite_service_seconds_bucket{command=\"get\",le=\"5.12e-07\"} 0\n"));
	assert_non_null(strstr(text, "kite_service_seconds_bucket{command=\"get\",le=\"1.024e-06\"} 10\n"));
	assert_non_null(strstr(text, "kite_service_seconds_bucket{command=\"get\",le=\"+Inf\"} 10\n"));
	assert_non_null(strstr(text, "kite_service_seconds_sum{command=\"get\"} 1e-05\n"));
	assert_non_null(strstr(text, "kite_service_seconds_count{command=\"set\"} 1\n"));
	assert_null(strstr(text, "command=\"delete\",le="));
	free(text);

	s.n = 0;
	kited_stats_emit(&src, 150, collect, &s);
	assert_string_equal(lookup(&s, "kite_service_get_count"), "10");
	assert_string_equal(lookup(&s, "kite_service_get_p50_us"), "1.023");
	assert_string_equal(lookup(&s, "kite_service_set_p999_us"), "114.687");
	assert_null(lookup(&s, "kite_service_delete_count"));
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
		cmocka_unit_test(test_metrics),
	};
	if (kite_test_eal_init("stats") != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
