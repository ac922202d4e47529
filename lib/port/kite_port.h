/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_PORT_H
#define KITE_PORT_H

/**
 * @file
 * Port set-up shared by kited and kite-bench: find a port from a spec
 * (a port id, the name of a probed device, or "name,args" hot-plugged as a
 * vdev), then configure it with one RX/TX queue pair per polling lcore,
 * the offloads it offers, an MTU fallback to 1500 and descriptor counts
 * adjusted to the driver's limits, and start it.
 *
 * Neither function logs: errors come back as a negative errno with a
 * one-line reason in err, and what was chosen in struct kite_port_info,
 * so each program reports them in its own way.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rte_mempool;

/**
 * Find the port a spec names. A number is a port id; "name" a probed
 * device; "name,args", a "net_..." vdev name or a PCI address
 * ("0000:3b:00.0") not yet probed is hot-plugged with rte_dev_probe.
 * @return 0, or a negative errno with the reason in err.
 */
int kite_port_resolve(const char *spec, uint16_t *port, char *err, size_t errlen);

/** What to ask of a port. */
struct kite_port_conf {
	uint16_t queues;    /**< RX/TX queue pairs, one per polling lcore */
	uint16_t mtu;       /**< IP MTU; refused values fall back to 1500 */
	uint16_t rx_desc;   /**< per queue; adjusted to the driver's limits */
	uint16_t tx_desc;
	bool rx_csum;       /**< use RX IPv4/UDP checksum offloads where offered */
	bool rss;           /**< with several queues, RSS over IP/UDP where offered */
	bool fast_free;     /**< TX MBUF_FAST_FREE allowed: mbufs never shared, one pool */
	/** Per queue: the RX mempool, and the socket for its rings (< 0: the port's). */
	struct rte_mempool *const *rx_pools;
	const int *sockets;
};

/** What the port was set up with. */
struct kite_port_info {
	const char *driver;     /**< driver name (static storage of the PMD) */
	uint16_t max_rx_queues; /**< the driver's limit */
	uint16_t mtu;           /**< the MTU accepted (conf.mtu or 1500) */
	int mtu_error;          /**< why conf.mtu was refused (negative errno), else 0 */
	uint16_t rx_desc;       /**< descriptors per queue after adjustment */
	uint16_t tx_desc;
	bool rx_ip_csum;        /**< offloads in use */
	bool rx_l4_csum;
	bool tx_csum;           /**< IPv4 and UDP checksums both offloaded */
	bool rss;
};

/**
 * Configure and start a port as conf asks. On failure after configuring,
 * the port is left stopped (callers may still rte_eth_dev_close it).
 * @return 0, or a negative errno with the reason in err.
 */
int kite_port_start(uint16_t port, const struct kite_port_conf *conf,
		    struct kite_port_info *info, char *err, size_t errlen);

/*
 * munmap() that waits for the polling threads (kite_unmap.c): DPDK's memif
 * PMD unmaps a connection's shared memory from its interrupt thread when
 * the peer leaves, while a poller may be inside a burst over it. A program
 * that calls kite_port_unmap_guard() gets this object's munmap, which
 * first waits until every thread online in qs has reported a quiescent
 * state; it must export the symbol (-Wl,--export-dynamic-symbol=munmap)
 * so that the DPDK libraries bind to it.
 */
struct rte_rcu_qsbr;

/** Wait on qs before every munmap from now on (NULL: plain munmap again). */
void kite_port_unmap_guard(struct rte_rcu_qsbr *qs);
/** The calling thread's id in qs while it is online (RTE_QSBR_THRID_INVALID: none). */
void kite_port_unmap_self(unsigned int thread_id);

#endif /* KITE_PORT_H */
