/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_STEER_H
#define KITE_STEER_H

/**
 * @file
 * Key -> partition -> worker mapping and the choice of steering mode.
 *
 * The key -> partition function is public (kite_proto_key_partition(), in
 * the DPDK-free proto library so clients compute it too). Partition p is
 * owned by worker p % workers and is served on UDP port base + p, so a
 * NIC that queues by destination port delivers each request to its owner.
 */

#include <stdbool.h>
#include <stdint.h>

/** How requests reach the worker that owns their partition. */
enum kite_steer_mode {
	KITE_STEER_AUTO = 0, /**< pick the best the port supports */
	KITE_STEER_FLOW,     /**< rte_flow: UDP dst port -> queue (issue 4) */
	KITE_STEER_RSS,      /**< RSS spread, software handoff for misses (issue 4) */
	KITE_STEER_HANDOFF,  /**< any queue; rings between workers */
};

/** What a port can do, as far as steering cares (filled from rte_eth_dev_info). */
struct kite_steer_caps {
	uint16_t max_rx_queues;
	bool flow_udp_dst; /**< rte_flow_validate accepted an eth/ipv4/udp-dst rule */
	bool rss_udp;      /**< RSS over UDP ports is offered */
};

/** The partition layout of a node. */
struct kite_steer_map {
	uint32_t partitions; /**< total, all workers */
	uint16_t workers;
	uint16_t base_port;
};

/** Owner worker of partition p. */
static inline uint16_t
kite_steer_owner(const struct kite_steer_map *m, uint32_t p)
{
	return (uint16_t)(p % m->workers);
}

/** UDP port on which partition p is served. */
static inline uint16_t
kite_steer_port(const struct kite_steer_map *m, uint32_t p)
{
	return (uint16_t)(m->base_port + p);
}

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

#endif /* KITE_STEER_H */
