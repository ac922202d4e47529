/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_STATS_H
#define KITE_STATS_H

/**
 * @file
 * Per-lcore counters and their node-wide view.
 *
 * Each worker writes only its own struct kite_worker_stats (cache-line
 * aligned, plain uint64 stores: no atomics on the hot path). Readers (the
 * control thread, a worker answering STAT) sum all workers and partitions;
 * aligned 64-bit loads cannot tear on the platforms DPDK supports, so a
 * sum is at worst a few packets stale.
 */

#include <stdint.h>

#include <rte_common.h>

#include "kite_proto.h"
#include "kite_net.h"
#include "kite_store.h"

/** Counters of one worker lcore. */
struct kite_worker_stats {
	uint64_t rx_dgrams;       /**< UDP datagrams handed to the engine */
	uint64_t rx_requests;     /**< requests parsed */
	uint64_t tx_dgrams;       /**< reply datagrams sent */
	uint64_t tx_responses;    /**< responses written */
	uint64_t tx_bytes;        /**< reply payload bytes */
	uint64_t cmd[KITE_CMD_MAX]; /**< requests by command class */
	uint64_t err_replies;     /**< error statuses sent for malformed requests */
	uint64_t unknown_cmd;     /**< UNKNOWN_COMMAND replies */
	uint64_t proto_drops[KITE_PROTO_DROP_MAX]; /**< datagram remainders dropped, by reason */
	uint64_t handoff_out;     /**< datagrams handed to another worker */
	uint64_t handoff_in;      /**< datagrams received from another worker */
	uint64_t handoff_full;    /**< handoffs dropped: owner's ring full */
	uint64_t not_owned;       /**< requests skipped because another worker answers them */
	uint64_t steer_misses;    /**< datagrams from the NIC with keys another worker owns */
	uint64_t tx_full;         /**< reply datagrams dropped: TX queue full */
	uint64_t nombuf;          /**< reply datagrams lost: mempool empty */
	uint64_t reply_truncated; /**< replies cut short: too many datagrams */
	uint64_t polls;           /**< rx_burst calls */
	uint64_t idle_polls;      /**< rx_burst calls that returned nothing */
	uint64_t busy_cycles;     /**< TSC cycles spent on non-empty bursts */
	uint64_t served;          /**< requests answered (busy_cycles / served = cost) */
} __rte_cache_aligned;

/** Everything the node-wide view sums. Arrays are owned by the caller. */
struct kite_stats_src {
	unsigned int n_workers;
	struct kite_worker_stats *const *workers;
	const struct kite_net *const *nets; /**< one per worker, may hold NULLs */
	unsigned int n_parts;
	struct kite_store *const *parts;
	uint32_t started;        /**< unix time the node started */
	uint64_t limit_maxbytes; /**< node memory budget */
	uint32_t max_item_size;
	uint16_t udp_port;
	const char *steer_mode;  /**< "flow", "rss" or "handoff"; NULL: not shown */
};

/** Callback receiving one "name value" statistic. */
typedef void (*kite_stats_emit_fn)(void *arg, const char *name, const char *value);

/** Sum every worker's counters into *sum. */
void kite_stats_sum_workers(const struct kite_stats_src *src, struct kite_worker_stats *sum);

/** Sum every partition's store counters into *sum. */
void kite_stats_sum_stores(const struct kite_stats_src *src, struct kite_store_stats *sum);

/**
 * Emit memcached-style general statistics (pid, uptime, time, version,
 * curr_items, get_hits, ...), then Kite's own (drops by reason, handoffs,
 * cycles per request). `now` is unix time.
 */
void kite_stats_emit(const struct kite_stats_src *src, uint32_t now, kite_stats_emit_fn emit,
		     void *arg);

#endif /* KITE_STATS_H */
