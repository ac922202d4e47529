/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITED_STATS_H
#define KITED_STATS_H

/*
 * kited's statistics, composed from the counter tables of the libraries
 * (engine, store, net) and of the worker loop: what STAT answers, what
 * DPDK telemetry's /kite/stats shows and what the log line says. Names are
 * memcached's where memcached has the counter (memcached_exporter reads
 * the same), Kite's own start with kite_.
 */

#include <stdint.h>

#include <rte_common.h>

#include "kite_engine.h"
#include "kite_guard.h"
#include "kite_hist.h"
#include "kite_net.h"
#include "kite_stats.h"
#include "kite_store.h"

/* The worker loop's own counters: X(field, name, help). */
#define KITED_LOOP_STATS(X)                                                                        \
	X(handoff_out, "handoff_out", "datagrams handed to another worker")                       \
	X(handoff_in, "handoff_in", "datagrams received from another worker")                     \
	X(handoff_full, "handoff_full", "handoffs dropped: the owner's ring was full")            \
	X(steer_misses, "steer_misses", "datagrams from the NIC with keys another worker owns")   \
	X(text_relays, "text_relays", "text datagrams passed on to the worker that answers their next command (replies in command order)") \
	X(relay_drops, "relay_drops", "relayed text datagrams dropped: the next worker's ring was full, or its sync replication timed out") \
	X(tx_full, "tx_full", "reply datagrams dropped: TX queue full")                           \
	X(text_from_member, "drop_text_from_member", "text datagrams from a cluster member's address, dropped (never answered)") \
	X(api_requests, "api_requests", "JSON API requests (admin endpoint) run by this worker")    \
	X(api_replies, "api_replies", "reply datagrams handed back to the JSON API")              \
	X(polls, "polls", "rx_burst calls")                                                       \
	X(idle_polls, "idle_polls", "rx_burst calls that returned nothing")                       \
	X(busy_cycles, "busy_cycles", "TSC cycles spent on non-empty bursts")

struct kited_loop_stats {
	KITED_LOOP_STATS(KITE_STATS_FIELD)
};

/* Everything one worker counts; only that worker writes it. */
struct kited_worker_stats {
	struct kite_engine_stats engine; /* the engine's (kite_engine_conf.stats) */
	struct kited_loop_stats loop;    /* the worker loop's */
	struct kite_guard_stats guard;   /* the guard's */
	/*
	 * Service time per command class (KITE_CMD_*), TSC cycles: from the
	 * start of the burst that took a request in (rx_burst, or its
	 * dequeue from the handoff ring) to the end of that burst's
	 * tx_burst. Time queued before the burst is not in it.
	 */
	struct kite_hist service[KITE_CMD_MAX];
} __rte_cache_aligned;

/* What the node-wide view sums. Arrays are owned by the caller. */
struct kited_stats_src {
	unsigned int n_workers;
	struct kited_worker_stats *const *workers; /* may hold NULLs */
	const struct kite_net *const *nets;        /* one per worker, may hold NULLs */
	unsigned int n_parts;
	struct kite_store *const *parts;
	uint32_t started;        /* unix time the node started */
	uint64_t limit_maxbytes; /* node memory budget */
	uint32_t max_item_size;
	uint16_t udp_port;
	uint64_t tsc_hz;        /* TSC cycles per second (service times) */
	const char *steer_mode; /* "flow", "rss" or "handoff"; NULL: not shown */
	struct kite_hot_pub *const *hot; /* each worker's hot keys (may be NULL, hold NULLs) */
	/* More of Kite's own statistics (the cluster's), emitted last; may be NULL. */
	void (*more)(const void *more_arg, kite_stats_emit_fn emit, void *arg);
	const void *more_arg;
};

/*
 * The hottest keys of the node, highest rate first (each worker's top,
 * merged): at most max into top; *hot: keys now over the hot rate.
 */
unsigned int kited_stats_hot(const struct kited_stats_src *src, struct kite_hot_key *top,
			     unsigned int max, unsigned int *hot);

/* STAT hotkeys: hot_keys, then hot_<i>_key, _rate and _rate_error for each. */
void kited_stats_emit_hot(const struct kited_stats_src *src, kite_stats_emit_fn emit, void *arg);

/* Sum every worker's counters into *sum. */
void kited_stats_sum_workers(const struct kited_stats_src *src, struct kited_worker_stats *sum);

/* Sum every partition's store counters into *sum. */
void kited_stats_sum_stores(const struct kited_stats_src *src, struct kite_store_stats *sum);

/* Sum every worker's network counters into *sum. */
void kited_stats_sum_nets(const struct kited_stats_src *src, struct kite_net_stats *sum);

/*
 * Emit memcached's general statistics (pid, uptime, time, version,
 * curr_items, get_hits, ...), then Kite's own (kite_*: engine, worker
 * loops, per-worker cost, network). `now` is unix time.
 */
void kited_stats_emit(const struct kited_stats_src *src, uint32_t now, kite_stats_emit_fn emit,
		      void *arg);

/* The help line of the counter STAT shows as stat_name (from the tables), or NULL. */
const char *kited_stats_help(const char *stat_name);

/* The engine's STAT callback: arg is a struct kited_stats_src. */
bool kited_stats_engine_stat(void *arg, uint32_t now, const uint8_t *group, uint16_t grouplen,
			     kite_engine_emit_fn emit, void *emit_arg);

/*
 * Log one line of rates and totals over the last `secs` seconds; *prev
 * holds the sums of the previous line and is updated.
 */
void kited_stats_log(const struct kited_stats_src *src, struct kited_worker_stats *prev,
		     double secs);

#endif /* KITED_STATS_H */
