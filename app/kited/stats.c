/* SPDX-License-Identifier: BSD-3-Clause */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kited_log.h"
#include "kite_text.h"
#include "kited_stats.h"

static const char *const loop_names[] = { KITED_LOOP_STATS(KITE_STATS_NAME) };
static const char *const loop_help[] = { KITED_LOOP_STATS(KITE_STATS_HELP) };

static const struct kite_stats_table engine_table = { kite_engine_stats_names,
						      kite_engine_stats_help, KITE_ENGINE_STATS_N };
static const struct kite_stats_table loop_table = { loop_names, loop_help,
						    0 KITED_LOOP_STATS(KITE_STATS_ONE) };
static const struct kite_stats_table store_table = { kite_store_stats_names, kite_store_stats_help,
						     KITE_STORE_STATS_N };
static const struct kite_stats_table guard_table = { kite_guard_stats_names, kite_guard_stats_help,
						     KITE_GUARD_STATS_N };
static const struct kite_stats_table net_table = { kite_net_stats_names, kite_net_stats_help,
						   KITE_NET_STATS_N };

_Static_assert(sizeof(struct kited_loop_stats) == (0 KITED_LOOP_STATS(KITE_STATS_ONE)) * 8,
	       "the loop's counters are the table's");
_Static_assert(sizeof(struct kited_worker_stats) % sizeof(uint64_t) == 0,
	       "a worker's counters sum as an array");

/*
 * Counters memcached's STAT has under the same name (and
 * memcached_exporter exports): shown as they are. Every other counter is
 * Kite's own and shown with the kite_ prefix.
 */
static const char *const memcached_names[] = {
	"curr_items",	     "total_items",	  "bytes",
	"limit_maxbytes",    "get_hits",	  "get_misses",
	"get_expired",	     "get_flushed",	  "touch_hits",
	"touch_misses",	     "delete_hits",	  "delete_misses",
	"incr_hits",	     "incr_misses",	  "decr_hits",
	"decr_misses",	     "cas_hits",	  "cas_misses",
	"cas_badval",	     "evictions",	  "reclaimed",
	"expired_unfetched", "evicted_unfetched", "store_too_large",
	"store_no_memory",
};

static bool
memcached_has(const char *name)
{
	for (size_t i = 0; i < RTE_DIM(memcached_names); i++)
		if (strcmp(memcached_names[i], name) == 0)
			return true;
	return false;
}

void
kited_stats_sum_workers(const struct kited_stats_src *src, struct kited_worker_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned int w = 0; w < src->n_workers; w++)
		if (src->workers[w] != NULL)
			kite_stats_add((uint64_t *)sum, (const uint64_t *)src->workers[w],
				       sizeof(*sum) / sizeof(uint64_t));
}

void
kited_stats_sum_stores(const struct kited_stats_src *src, struct kite_store_stats *sum)
{
	struct kite_store_stats one;

	memset(sum, 0, sizeof(*sum));
	for (unsigned int p = 0; p < src->n_parts; p++) {
		if (src->parts[p] == NULL)
			continue;
		kite_store_stats_get(src->parts[p], &one);
		kite_stats_add((uint64_t *)sum, (const uint64_t *)&one, KITE_STORE_STATS_N);
	}
}

void
kited_stats_sum_nets(const struct kited_stats_src *src, struct kite_net_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned int w = 0; w < src->n_workers; w++)
		if (src->nets != NULL && src->nets[w] != NULL)
			kite_stats_add((uint64_t *)sum,
				       (const uint64_t *)kite_net_stats(src->nets[w]),
				       sizeof(*sum) / sizeof(uint64_t));
}

static uint64_t
per_request(uint64_t cycles, uint64_t served)
{
	return served ? cycles / served : 0;
}

/* The store's counters: memcached's names as they are, the node's budget for limit_maxbytes. */
static void
emit_store(const struct kited_stats_src *src, const struct kite_store_stats *s,
	   kite_stats_emit_fn emit, void *arg)
{
	const uint64_t *v = (const uint64_t *)s;
	char name[64];

	for (unsigned int i = 0; i < store_table.n; i++) {
		const char *n = store_table.names[i];

		if (strcmp(n, "limit_maxbytes") == 0) {
			kite_stats_emit_u64(emit, arg, n, src->limit_maxbytes);
			continue;
		}
		snprintf(name, sizeof(name), "%s%s", memcached_has(n) ? "" : "kite_", n);
		kite_stats_emit_u64(emit, arg, name, v[i]);
	}
}

void
kited_stats_emit(const struct kited_stats_src *src, uint32_t now, kite_stats_emit_fn emit,
		 void *arg)
{
	struct kited_worker_stats w;
	const struct kite_engine_stats *e = &w.engine;
	struct kite_store_stats s;
	struct kite_net_stats ns;
	char name[64];

	kited_stats_sum_workers(src, &w);
	kited_stats_sum_stores(src, &s);
	kited_stats_sum_nets(src, &ns);

	/* memcached's general statistics. */
	kite_stats_emit_u64(emit, arg, "pid", (uint64_t)getpid());
	kite_stats_emit_u64(emit, arg, "uptime", now >= src->started ? now - src->started : 0);
	kite_stats_emit_u64(emit, arg, "time", now);
	emit(arg, "version", KITE_VERSION);
	kite_stats_emit_u64(emit, arg, "pointer_size", sizeof(void *) * 8);
	kite_stats_emit_u64(emit, arg, "threads", src->n_workers);
	emit_store(src, &s, emit, arg);
	kite_stats_emit_u64(emit, arg, "item_size_max", src->max_item_size);
	kite_stats_emit_u64(emit, arg, "udp_port", src->udp_port);
	kite_stats_emit_u64(emit, arg, "cmd_get", e->cmd[KITE_CMD_GET] + e->cmd[KITE_CMD_GAT]);
	kite_stats_emit_u64(emit, arg, "cmd_set",
			    e->cmd[KITE_CMD_SET] + e->cmd[KITE_CMD_ADD] + e->cmd[KITE_CMD_REPLACE] +
				    e->cmd[KITE_CMD_APPEND] + e->cmd[KITE_CMD_PREPEND]);
	kite_stats_emit_u64(emit, arg, "cmd_flush", e->cmd[KITE_CMD_FLUSH]);
	kite_stats_emit_u64(emit, arg, "cmd_touch", e->cmd[KITE_CMD_TOUCH] + e->cmd[KITE_CMD_GAT]);

	/* Kite's own: the layout, the engines, the worker loops. */
	kite_stats_emit_u64(emit, arg, "kite_partitions", src->n_parts);
	if (src->steer_mode != NULL)
		emit(arg, "kite_steer_mode", src->steer_mode);
	kite_stats_emit_table(&engine_table, (const uint64_t *)e, "kite_", emit, arg);
	for (unsigned int c = 0; c < KITE_CMD_MAX; c++) {
		snprintf(name, sizeof(name), "kite_cmd_%s", kite_proto_cmd_name(c));
		kite_stats_emit_u64(emit, arg, name, e->cmd[c]);
	}
	for (unsigned int r = 1; r < KITE_PROTO_DROP_MAX; r++) {
		snprintf(name, sizeof(name), "kite_drop_%s", kite_proto_drop_name(r));
		kite_stats_emit_u64(emit, arg, name, e->proto_drops[r]);
	}
	kite_stats_emit_table(&loop_table, (const uint64_t *)&w.loop, "kite_", emit, arg);
	kite_stats_emit_u64(emit, arg, "kite_cycles_per_request",
			    per_request(w.loop.busy_cycles, e->served));

	/* Per worker: the server's own cost per request and its steering misses. */
	for (unsigned int i = 0; i < src->n_workers; i++) {
		const struct kited_worker_stats *one = src->workers[i];

		if (one == NULL)
			continue;
		snprintf(name, sizeof(name), "kite_worker%u_served", i);
		kite_stats_emit_u64(emit, arg, name, one->engine.served);
		snprintf(name, sizeof(name), "kite_worker%u_busy_cycles", i);
		kite_stats_emit_u64(emit, arg, name, one->loop.busy_cycles);
		snprintf(name, sizeof(name), "kite_worker%u_cycles_per_request", i);
		kite_stats_emit_u64(emit, arg, name,
				    per_request(one->loop.busy_cycles, one->engine.served));
		snprintf(name, sizeof(name), "kite_worker%u_steer_misses", i);
		kite_stats_emit_u64(emit, arg, name, one->loop.steer_misses);
	}

	/* Service time per command, every worker's (STAT shows quantiles; /metrics the buckets). */
	for (unsigned int c = 0; c < KITE_CMD_MAX; c++) {
		static const struct {
			double q;
			const char *suffix;
		} qs[] = { { 0.5, "p50" }, { 0.99, "p99" }, { 0.999, "p999" } };
		const struct kite_hist *h = &w.service[c];
		const uint64_t n = kite_hist_total(h);
		char val[32];

		if (n == 0 || src->tsc_hz == 0)
			continue;
		snprintf(name, sizeof(name), "kite_service_%s_count", kite_proto_cmd_name(c));
		kite_stats_emit_u64(emit, arg, name, n);
		for (unsigned int k = 0; k < RTE_DIM(qs); k++) {
			snprintf(name, sizeof(name), "kite_service_%s_%s_us", kite_proto_cmd_name(c),
				 qs[k].suffix);
			snprintf(val, sizeof(val), "%.3f",
				 (double)kite_hist_quantile(h, qs[k].q) * 1e6 / (double)src->tsc_hz);
			emit(arg, name, val);
		}
	}

	/* Hot keys now (their names and rates: STAT hotkeys). */
	{
		struct kite_hot_key top[1];
		unsigned int hot;

		kited_stats_hot(src, top, 1, &hot);
		kite_stats_emit_u64(emit, arg, "kite_hot_keys", hot);
	}

	/* The guard. */
	kite_stats_emit_table(&guard_table, (const uint64_t *)&w.guard, "kite_guard_", emit, arg);

	/* The network stacks. */
	kite_stats_emit_table(&net_table, (const uint64_t *)&ns, "kite_net_", emit, arg);
	for (unsigned int r = 0; r < KITE_NET_DROP_MAX; r++) {
		snprintf(name, sizeof(name), "kite_net_drop_%s", kite_net_drop_name(r));
		kite_stats_emit_u64(emit, arg, name, ns.drops[r]);
	}
	if (src->more != NULL)
		src->more(src->more_arg, emit, arg);
}

const char *
kited_stats_help(const char *stat_name)
{
	/* Each table under the prefixes kited_stats_emit() gives its names. */
	static const struct {
		const struct kite_stats_table *t;
		const char *prefix;
	} tabs[] = {
		{ &engine_table, "kite_" }, { &loop_table, "kite_" },	{ &store_table, "" },
		{ &store_table, "kite_" },  { &guard_table, "kite_guard_" }, { &net_table, "kite_net_" },
	};

	for (unsigned int i = 0; i < RTE_DIM(tabs); i++) {
		const size_t pl = strlen(tabs[i].prefix);
		int k;

		if (strncmp(stat_name, tabs[i].prefix, pl) != 0)
			continue;
		k = kite_stats_index(tabs[i].t, stat_name + pl);
		if (k >= 0)
			return tabs[i].t->help[k];
	}
	return NULL;
}

/* A key for a STAT line: as it is when printable, else base64 with a "b64:" prefix. */
static void
hot_key_name(const struct kite_hot_key *k, char *out, size_t cap)
{
	size_t n = k->keylen < KITE_HOT_KEYLEN ? k->keylen : KITE_HOT_KEYLEN;
	bool printable = true;

	for (size_t i = 0; i < n; i++)
		if (k->key[i] < 0x21 || k->key[i] > 0x7e)
			printable = false;
	if (printable) {
		snprintf(out, cap, "%.*s%s", (int)n, (const char *)k->key,
			 k->keylen > KITE_HOT_KEYLEN ? "..." : "");
	} else {
		memcpy(out, "b64:", 4);
		out[4 + kite_text_b64_encode(k->key, n, out + 4)] = '\0';
	}
}

unsigned int
kited_stats_hot(const struct kited_stats_src *src, struct kite_hot_key *top, unsigned int max,
		unsigned int *hot)
{
	struct kite_hot_pub one;
	unsigned int n = 0;

	*hot = 0;
	for (unsigned int w = 0; w < src->n_workers; w++) {
		if (src->hot == NULL || src->hot[w] == NULL)
			continue;
		kite_hot_read(src->hot[w], &one);
		*hot += one.hot;
		/* Keys live on one worker each (their partition's): merge by rate. */
		for (unsigned int i = 0; i < one.n; i++) {
			unsigned int j = n < max ? n++ : max;
			while (j > 0 && top[j - 1].rate < one.top[i].rate) {
				if (j < max)
					top[j] = top[j - 1];
				j--;
			}
			if (j < max)
				top[j] = one.top[i];
		}
	}
	return n;
}

void
kited_stats_emit_hot(const struct kited_stats_src *src, kite_stats_emit_fn emit, void *arg)
{
	struct kite_hot_key top[KITE_HOT_TOP];
	char name[32], key[4 + 4 * ((KITE_HOT_KEYLEN + 2) / 3) + 8];
	unsigned int hot, n = kited_stats_hot(src, top, KITE_HOT_TOP, &hot);

	kite_stats_emit_u64(emit, arg, "hot_keys", hot);
	for (unsigned int i = 0; i < n; i++) {
		hot_key_name(&top[i], key, sizeof(key));
		snprintf(name, sizeof(name), "hot_%u_key", i);
		emit(arg, name, key);
		snprintf(name, sizeof(name), "hot_%u_rate", i);
		kite_stats_emit_u64(emit, arg, name, top[i].rate);
		snprintf(name, sizeof(name), "hot_%u_rate_error", i);
		kite_stats_emit_u64(emit, arg, name, top[i].err);
	}
}

bool
kited_stats_engine_stat(void *arg, uint32_t now, const uint8_t *group, uint16_t grouplen,
			kite_engine_emit_fn emit, void *emit_arg)
{
	if (grouplen == 0) {
		kited_stats_emit(arg, now, emit, emit_arg);
		return true;
	}
	if (grouplen == 7 && memcmp(group, "hotkeys", 7) == 0) {
		kited_stats_emit_hot(arg, emit, emit_arg);
		return true;
	}
	return false;
}

void
kited_stats_log(const struct kited_stats_src *src, struct kited_worker_stats *prev, double secs)
{
	struct kited_worker_stats w;
	const struct kite_engine_stats *e = &w.engine;
	struct kite_store_stats s;
	uint64_t drops = 0;

	kited_stats_sum_workers(src, &w);
	kited_stats_sum_stores(src, &s);
	for (unsigned int r = 0; r < KITE_PROTO_DROP_MAX; r++)
		drops += e->proto_drops[r];
	KLOG(INFO,
	     "stats: %.0f req/s, %.0f dgram/s in, %.0f dgram/s out | items %" PRIu64
	     " bytes %" PRIu64 " hits %" PRIu64 " misses %" PRIu64 " evictions %" PRIu64
	     " | proto drops %" PRIu64 " errors %" PRIu64 " handoffs %" PRIu64 " | %" PRIu64
	     " cycles/req",
	     (double)(e->rx_requests - prev->engine.rx_requests) / secs,
	     (double)(e->rx_dgrams - prev->engine.rx_dgrams) / secs,
	     (double)(e->tx_dgrams - prev->engine.tx_dgrams) / secs, s.curr_items, s.bytes,
	     s.get_hits, s.get_misses, s.evictions, drops, e->err_replies, w.loop.handoff_out,
	     per_request(w.loop.busy_cycles, e->served));
	*prev = w;
}
