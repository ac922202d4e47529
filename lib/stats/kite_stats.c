/* SPDX-License-Identifier: BSD-3-Clause */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kite_stats.h"

static const char *const cmd_names[KITE_CMD_MAX] = {
	[KITE_CMD_UNKNOWN] = "unknown", [KITE_CMD_GET] = "get",	    [KITE_CMD_SET] = "set",
	[KITE_CMD_ADD] = "add",		[KITE_CMD_REPLACE] = "replace", [KITE_CMD_APPEND] = "append",
	[KITE_CMD_PREPEND] = "prepend", [KITE_CMD_DELETE] = "delete", [KITE_CMD_INCR] = "incr",
	[KITE_CMD_DECR] = "decr",	[KITE_CMD_TOUCH] = "touch",	    [KITE_CMD_GAT] = "gat",
	[KITE_CMD_NOOP] = "noop",	[KITE_CMD_VERSION] = "version", [KITE_CMD_STAT] = "stat",
	[KITE_CMD_FLUSH] = "flush",	[KITE_CMD_QUIT] = "quit",
	[KITE_CMD_TOPOLOGY] = "topology",
};

void
kite_stats_sum_workers(const struct kite_stats_src *src, struct kite_worker_stats *sum)
{
	/* The struct is all uint64_t, so it sums as an array. */
	uint64_t *out = (uint64_t *)sum;
	const size_t n = sizeof(*sum) / sizeof(uint64_t);

	memset(sum, 0, sizeof(*sum));
	for (unsigned int w = 0; w < src->n_workers; w++) {
		const uint64_t *in = (const uint64_t *)src->workers[w];
		if (in == NULL)
			continue;
		for (size_t i = 0; i < n; i++)
			out[i] += in[i];
	}
}

void
kite_stats_sum_stores(const struct kite_stats_src *src, struct kite_store_stats *sum)
{
	uint64_t *out = (uint64_t *)sum;
	const size_t n = sizeof(*sum) / sizeof(uint64_t);
	struct kite_store_stats one;

	memset(sum, 0, sizeof(*sum));
	for (unsigned int p = 0; p < src->n_parts; p++) {
		if (src->parts[p] == NULL)
			continue;
		kite_store_stats_get(src->parts[p], &one);
		const uint64_t *in = (const uint64_t *)&one;
		for (size_t i = 0; i < n; i++)
			out[i] += in[i];
	}
}

static void
emit_u64(kite_stats_emit_fn emit, void *arg, const char *name, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	emit(arg, name, buf);
}

void
kite_stats_emit(const struct kite_stats_src *src, uint32_t now, kite_stats_emit_fn emit, void *arg)
{
	struct kite_worker_stats w;
	struct kite_store_stats s;
	char name[64];

	kite_stats_sum_workers(src, &w);
	kite_stats_sum_stores(src, &s);

	emit_u64(emit, arg, "pid", (uint64_t)getpid());
	emit_u64(emit, arg, "uptime", now >= src->started ? now - src->started : 0);
	emit_u64(emit, arg, "time", now);
	emit(arg, "version", KITE_VERSION);
	emit_u64(emit, arg, "pointer_size", sizeof(void *) * 8);
	emit_u64(emit, arg, "threads", src->n_workers);
	emit_u64(emit, arg, "curr_items", s.curr_items);
	emit_u64(emit, arg, "total_items", s.total_items);
	emit_u64(emit, arg, "bytes", s.bytes);
	emit_u64(emit, arg, "limit_maxbytes", src->limit_maxbytes);
	emit_u64(emit, arg, "item_size_max", src->max_item_size);
	emit_u64(emit, arg, "udp_port", src->udp_port);
	emit_u64(emit, arg, "cmd_get", w.cmd[KITE_CMD_GET] + w.cmd[KITE_CMD_GAT]);
	emit_u64(emit, arg, "cmd_set",
		 w.cmd[KITE_CMD_SET] + w.cmd[KITE_CMD_ADD] + w.cmd[KITE_CMD_REPLACE] +
			 w.cmd[KITE_CMD_APPEND] + w.cmd[KITE_CMD_PREPEND]);
	emit_u64(emit, arg, "cmd_flush", w.cmd[KITE_CMD_FLUSH]);
	emit_u64(emit, arg, "cmd_touch", w.cmd[KITE_CMD_TOUCH] + w.cmd[KITE_CMD_GAT]);
	emit_u64(emit, arg, "get_hits", s.get_hits);
	emit_u64(emit, arg, "get_misses", s.get_misses);
	emit_u64(emit, arg, "get_expired", s.get_expired);
	emit_u64(emit, arg, "get_flushed", s.get_flushed);
	emit_u64(emit, arg, "delete_misses", s.delete_misses);
	emit_u64(emit, arg, "delete_hits", s.delete_hits);
	emit_u64(emit, arg, "incr_misses", s.incr_misses);
	emit_u64(emit, arg, "incr_hits", s.incr_hits);
	emit_u64(emit, arg, "decr_misses", s.decr_misses);
	emit_u64(emit, arg, "decr_hits", s.decr_hits);
	emit_u64(emit, arg, "cas_misses", s.cas_misses);
	emit_u64(emit, arg, "cas_hits", s.cas_hits);
	emit_u64(emit, arg, "cas_badval", s.cas_badval);
	emit_u64(emit, arg, "touch_hits", s.touch_hits);
	emit_u64(emit, arg, "touch_misses", s.touch_misses);
	emit_u64(emit, arg, "evictions", s.evictions);
	emit_u64(emit, arg, "reclaimed", s.reclaimed);
	emit_u64(emit, arg, "expired_unfetched", s.expired_unfetched);
	emit_u64(emit, arg, "evicted_unfetched", s.evicted_unfetched);
	emit_u64(emit, arg, "kite_reinserted", s.reinserted);
	emit_u64(emit, arg, "kite_index_full", s.index_full);
	emit_u64(emit, arg, "kite_partitions", src->n_parts);
	if (src->steer_mode != NULL)
		emit(arg, "kite_steer_mode", src->steer_mode);
	emit_u64(emit, arg, "kite_rx_datagrams", w.rx_dgrams);
	emit_u64(emit, arg, "kite_rx_requests", w.rx_requests);
	emit_u64(emit, arg, "kite_tx_datagrams", w.tx_dgrams);
	emit_u64(emit, arg, "kite_tx_responses", w.tx_responses);
	emit_u64(emit, arg, "kite_tx_bytes", w.tx_bytes);
	for (unsigned int c = 0; c < KITE_CMD_MAX; c++) {
		snprintf(name, sizeof(name), "kite_cmd_%s", cmd_names[c]);
		emit_u64(emit, arg, name, w.cmd[c]);
	}
	emit_u64(emit, arg, "kite_error_replies", w.err_replies);
	emit_u64(emit, arg, "kite_unknown_commands", w.unknown_cmd);
	for (unsigned int r = 1; r < KITE_PROTO_DROP_MAX; r++) {
		snprintf(name, sizeof(name), "kite_drop_%s", kite_proto_drop_name(r));
		emit_u64(emit, arg, name, w.proto_drops[r]);
	}
	emit_u64(emit, arg, "kite_handoff_out", w.handoff_out);
	emit_u64(emit, arg, "kite_handoff_in", w.handoff_in);
	emit_u64(emit, arg, "kite_handoff_full", w.handoff_full);
	emit_u64(emit, arg, "kite_steer_misses", w.steer_misses);
	emit_u64(emit, arg, "kite_tx_full", w.tx_full);
	emit_u64(emit, arg, "kite_nombuf", w.nombuf);
	emit_u64(emit, arg, "kite_reply_truncated", w.reply_truncated);
	emit_u64(emit, arg, "kite_busy_cycles", w.busy_cycles);
	emit_u64(emit, arg, "kite_served", w.served);
	emit_u64(emit, arg, "kite_cycles_per_request", w.served ? w.busy_cycles / w.served : 0);

	/* Per worker: the server's own cost per request and its steering misses. */
	for (unsigned int i = 0; i < src->n_workers; i++) {
		const struct kite_worker_stats *one = src->workers[i];
		if (one == NULL)
			continue;
		snprintf(name, sizeof(name), "kite_worker%u_served", i);
		emit_u64(emit, arg, name, one->served);
		snprintf(name, sizeof(name), "kite_worker%u_busy_cycles", i);
		emit_u64(emit, arg, name, one->busy_cycles);
		snprintf(name, sizeof(name), "kite_worker%u_cycles_per_request", i);
		emit_u64(emit, arg, name, one->served ? one->busy_cycles / one->served : 0);
		snprintf(name, sizeof(name), "kite_worker%u_steer_misses", i);
		emit_u64(emit, arg, name, one->steer_misses);
	}

	struct kite_net_stats ns;
	memset(&ns, 0, sizeof(ns));
	for (unsigned int i = 0; i < src->n_workers; i++) {
		const struct kite_net_stats *one;
		if (src->nets == NULL || src->nets[i] == NULL)
			continue;
		one = kite_net_stats(src->nets[i]);
		const uint64_t *in = (const uint64_t *)one;
		uint64_t *out = (uint64_t *)&ns;
		for (size_t k = 0; k < sizeof(ns) / sizeof(uint64_t); k++)
			out[k] += in[k];
	}
	emit_u64(emit, arg, "kite_net_rx_packets", ns.rx_packets);
	emit_u64(emit, arg, "kite_net_arp_replies", ns.arp_replies);
	emit_u64(emit, arg, "kite_net_icmp_echo", ns.icmp_echo);
	emit_u64(emit, arg, "kite_net_fragments", ns.frag_packets);
	emit_u64(emit, arg, "kite_net_reassembled", ns.reassembled);
	for (unsigned int r = 0; r < KITE_NET_DROP_MAX; r++) {
		snprintf(name, sizeof(name), "kite_net_drop_%s", kite_net_drop_name(r));
		emit_u64(emit, arg, name, ns.drops[r]);
	}
}
