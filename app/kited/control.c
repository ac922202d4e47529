/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdbool.h>

#include <rte_cycles.h>
#include <rte_telemetry.h>

#include "kited.h"

/*
 * DPDK telemetry: "/kite/stats" answers what STAT answers, for operators
 * who cannot reach the data path (no route, wrong address, a dead link):
 *   dpdk-telemetry.py -f PREFIX  then  /kite/stats
 * The telemetry thread reads the counters as the STAT code does (aligned
 * 64-bit loads of counters only their worker writes).
 */
static const struct node *tel_node;

static void
tel_emit(void *arg, const char *name, const char *value)
{
	/* Past the dict's capacity (RTE_TEL_MAX_DICT_ENTRIES) entries are left out. */
	(void)rte_tel_data_add_dict_string(arg, name, value);
}

static int
tel_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd;
	(void)params;
	if (tel_node == NULL)
		return -EAGAIN;
	rte_tel_data_start_dict(d);
	kited_stats_emit(&tel_node->stats_src, node_now(tel_node), tel_emit, d);
	return 0;
}

static int
tel_hot(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd;
	(void)params;
	if (tel_node == NULL)
		return -EAGAIN;
	rte_tel_data_start_dict(d);
	kited_stats_emit_hot(&tel_node->stats_src, tel_emit, d);
	return 0;
}

/* Serve /kite/stats from n; NULL stops answering (before the node is freed). */
void
control_telemetry(const struct node *n)
{
	static bool registered;

	tel_node = n;
	if (n == NULL || registered)
		return;
	registered = true;
	if (rte_telemetry_register_cmd("/kite/stats", tel_stats,
				       "kited's statistics, as STAT answers them. Takes no parameters") != 0)
		KLOG(WARNING, "telemetry command /kite/stats not registered");
	if (rte_telemetry_register_cmd("/kite/hotkeys", tel_hot,
				       "the node's hottest keys and their reads per second, as STAT "
				       "hotkeys answers them. Takes no parameters") != 0)
		KLOG(WARNING, "telemetry command /kite/hotkeys not registered");
}

void
control_log_stats(struct node *n, double secs)
{
	kited_stats_log(&n->stats_src, &n->stats_prev, secs);
}

void
control_tick(struct node *n)
{
	const uint64_t now = rte_rdtsc();
	const uint64_t hz = n->tsc_hz;

	if (n->cfg.stats_interval != 0 && now - n->last_stats_tsc >= n->cfg.stats_interval * hz) {
		control_log_stats(n, (double)(now - n->last_stats_tsc) / (double)hz);
		n->last_stats_tsc = now;
	}
	/* Membership and replication will live here. */
}
