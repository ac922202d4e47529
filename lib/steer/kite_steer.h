/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_STEER_H
#define KITE_STEER_H

/**
 * @file
 * Steering: how requests reach the worker that owns their partition.
 *
 * The layout itself (key -> partition -> worker -> UDP port) is lib/topo's;
 * this module chooses a steering mode for a port and programs it: rte_flow
 * rules "UDP dst port = base + p -> queue of p's owner" where the PMD
 * supports them, RSS with software handoff otherwise.
 */

#include <stdbool.h>
#include <stdint.h>

#include <rte_flow.h>

#include "kite_topo.h"

/** How requests reach the worker that owns their partition. */
enum kite_steer_mode {
	KITE_STEER_AUTO = 0, /**< pick the best the port supports */
	KITE_STEER_FLOW,     /**< rte_flow: UDP dst port -> queue */
	KITE_STEER_RSS,      /**< RSS spread, software handoff for misses */
	KITE_STEER_HANDOFF,  /**< any queue; rings between workers */
};

/** What a port can do, as far as steering cares (filled from rte_eth_dev_info). */
struct kite_steer_caps {
	uint16_t max_rx_queues;
	bool flow_udp_dst; /**< rte_flow_validate accepted an eth/ipv4/udp-dst rule */
	bool rss_udp;      /**< RSS over UDP ports is offered */
};

/**
 * Choose the steering mode for a port: the requested one when the port
 * supports it, else the best it supports. Handoff always works.
 * @return the mode, or -ENOTSUP when `requested` is forced but impossible.
 */
int kite_steer_choose(const struct kite_steer_caps *caps, uint16_t workers,
		      enum kite_steer_mode requested);

/** Parse "auto", "flow", "rss", "handoff". @return mode or -EINVAL. */
int kite_steer_mode_parse(const char *s);

/** Name of a mode. */
const char *kite_steer_mode_name(enum kite_steer_mode m);

/** One hardware steering rule: IPv4 dst ip, UDP dst port -> RX queue. */
struct kite_steer_rule {
	uint32_t ip;       /**< host order */
	uint16_t udp_port; /**< host order */
	uint16_t queue;
};

/**
 * The rules that put every partition's port on its owner's queue: one per
 * partition, rule i for partition i. @return the count, or -ENOSPC if max
 * is too small.
 */
int kite_steer_plan(const struct kite_topo_map *m, uint32_t ip, struct kite_steer_rule *rules,
		    unsigned int max);

/**
 * A rule in rte_flow form (eth / ipv4 dst / udp dst -> queue), with the
 * storage its pointers refer to. Filled by kite_steer_flow_build().
 */
struct kite_steer_flow {
	struct rte_flow_attr attr;
	struct rte_flow_item pattern[4];
	struct rte_flow_action actions[2];
	struct rte_flow_item_ipv4 ip_spec, ip_mask;
	struct rte_flow_item_udp udp_spec, udp_mask;
	struct rte_flow_action_queue queue;
};

/** Fill f from r. The result must not be copied (it points into itself). */
void kite_steer_flow_build(const struct kite_steer_rule *r, struct kite_steer_flow *f);

/**
 * Validate and create rules on a port (call after rte_eth_dev_start).
 * flows[i] receives rule i's handle. On failure every rule created so far
 * is destroyed, and *why (when why is not NULL) gets the PMD's reason.
 * A PMD may validate a rule and still refuse to create it (net_tap on a
 * kernel without TC flower/skbedit), so callers must handle both.
 * @return 0, or a negative errno from the PMD.
 */
int kite_steer_flow_install(uint16_t port, const struct kite_steer_rule *rules, unsigned int n,
			    struct rte_flow **flows, const char **why);

/** Destroy rules created by kite_steer_flow_install(). */
void kite_steer_flow_remove(uint16_t port, struct rte_flow **flows, unsigned int n);

/** Whether the port accepts a rule like rules[0] (rte_flow_validate). */
bool kite_steer_flow_supported(uint16_t port, const struct kite_steer_rule *rule);

#endif /* KITE_STEER_H */
