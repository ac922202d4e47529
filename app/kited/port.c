/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_errno.h>
#include <rte_lcore.h>

#include "kite_port.h"
#include "kited.h"

int
port_resolve(struct node *n)
{
	char err[160];
	int rc = kite_port_resolve(n->cfg.port, &n->port, err, sizeof(err));

	if (rc != 0)
		KLOG(ERR, "%s", err);
	return rc;
}

/* Choose the steering mode now that the port runs, and program it. */
static int
setup_steering(struct node *n, const char *driver, uint16_t max_rx_queues, bool rss)
{
	const enum kite_steer_mode want = (enum kite_steer_mode)kite_steer_mode_parse(n->cfg.steer);
	struct kite_steer_caps caps;
	struct kite_steer_rule rules[KITE_MAX_PARTITIONS];
	const char *why = NULL;
	int mode, nr, rc;

	memset(&caps, 0, sizeof(caps));
	caps.max_rx_queues = max_rx_queues;
	caps.rss_udp = rss;
	nr = kite_steer_plan(&n->map, n->cfg.ip, rules, RTE_DIM(rules));
	if (nr < 0)
		return nr;
	caps.flow_udp_dst = n->n_workers > 1 && kite_steer_flow_supported(n->port, &rules[0]);
	mode = kite_steer_choose(&caps, (uint16_t)n->n_workers, want);
	if (mode < 0) {
		KLOG(ERR, "port %u (%s) cannot steer in mode '%s' (flow rules %s, RSS %s)",
		     n->port, driver, n->cfg.steer,
		     caps.flow_udp_dst ? "accepted" : "refused", rss ? "on" : "off");
		return mode;
	}
	n->steer = (enum kite_steer_mode)mode;
	if (n->steer != KITE_STEER_FLOW)
		return 0;
	rc = kite_steer_flow_install(n->port, rules, (unsigned int)nr, n->flows, &why);
	if (rc == 0) {
		n->n_flows = (unsigned int)nr;
		return 0;
	}
	if (want == KITE_STEER_FLOW) {
		KLOG(ERR, "port %u (%s): installing %d flow rules: %s (%s)", n->port, driver, nr,
		     rte_strerror(-rc), why);
		return rc;
	}
	/*
	 * The rules could not all be installed although the first one
	 * validated: refused at creation (net_tap on a kernel without TC
	 * flower/skbedit), a later rule refused, or no room for them all.
	 * auto degrades to the next best mode.
	 */
	caps.flow_udp_dst = false;
	mode = kite_steer_choose(&caps, (uint16_t)n->n_workers, KITE_STEER_AUTO);
	KLOG(WARNING,
	     "port %u (%s) could not install its %d flow rules although the first validated "
	     "(%s: %s); steering by %s instead",
	     n->port, driver, nr, rte_strerror(-rc), why,
	     kite_steer_mode_name((enum kite_steer_mode)mode));
	n->steer = (enum kite_steer_mode)mode;
	return 0;
}

int
port_open(struct node *n)
{
	const struct kited_config *c = &n->cfg;
	struct rte_mempool *rx_pools[KITE_MAX_WORKERS];
	int sockets[KITE_MAX_WORKERS];
	struct kite_port_conf pc;
	struct kite_port_info pi;
	struct rte_eth_link link;
	char err[200];
	uint16_t nq = (uint16_t)c->workers;
	int rc;

	for (uint16_t q = 0; q < nq; q++) {
		unsigned int p = (unsigned int)n->place.worker_pool[q];

		/* Descriptor rings next to the worker that polls them. */
		sockets[q] = n->place.pools[p];
		rx_pools[q] = n->rx_pools[p] ? n->rx_pools[p] : n->pools[p];
	}
	memset(&pc, 0, sizeof(pc));
	pc.queues = nq;
	pc.mtu = (uint16_t)c->mtu;
	pc.rx_desc = (uint16_t)c->rx_desc;
	pc.tx_desc = (uint16_t)c->tx_desc;
	pc.rx_csum = true;
	pc.rss = true;
	/*
	 * Fast free needs refcnt 1 and one pool per TX queue: handoff shares
	 * mbufs by refcnt, and with big RX mbufs (rx-mbuf-size) an in-place
	 * reply leaves in an RX-pool mbuf beside TX-pool ones.
	 */
	pc.fast_free = nq == 1 && n->rx_pools[n->place.worker_pool[0]] == NULL;
	pc.rx_pools = rx_pools;
	pc.sockets = sockets;
	rc = kite_port_start(n->port, &pc, &pi, err, sizeof(err));
	if (pi.mtu_error != 0) {
		KLOG(WARNING, "port %u: MTU %u refused (%s); using %u", n->port, c->mtu,
		     rte_strerror(-pi.mtu_error), pi.mtu);
		/* Replies are cut to the MTU the port took, not the one asked for. */
		n->max_payload = (uint16_t)(pi.mtu - 20 - 8);
		n->netconf.mtu = pi.mtu;
	}
	if (rc != 0) {
		KLOG(ERR, "%s", err);
		return rc;
	}
	n->port_started = true;
	rc = rte_eth_macaddr_get(n->port, &n->mac);
	if (rc != 0)
		return rc;
	n->netconf.rx_l4_csum_offload = pi.rx_l4_csum;
	n->netconf.rx_ip_csum_offload = pi.rx_ip_csum;
	n->netconf.tx_csum_offload = pi.tx_csum;
	rc = setup_steering(n, pi.driver, pi.max_rx_queues, pi.rss);
	if (rc != 0)
		return rc;
	rte_eth_link_get_nowait(n->port, &link);
	KLOG(INFO,
	     "port %u (%s) " RTE_ETHER_ADDR_PRT_FMT ": %u queue(s), %u/%u descriptors, link %s, "
	     "csum offload rx %s tx %s, steering %s",
	     n->port, pi.driver, RTE_ETHER_ADDR_BYTES(&n->mac), nq, pi.rx_desc, pi.tx_desc,
	     link.link_status ? "up" : "down", pi.rx_l4_csum ? "on" : "off",
	     pi.tx_csum ? "on" : "off", kite_steer_mode_name(n->steer));
	return 0;
}

void
port_close(struct node *n)
{
	if (!n->port_started)
		return;
	kite_steer_flow_remove(n->port, n->flows, n->n_flows);
	n->n_flows = 0;
	rte_eth_dev_stop(n->port);
	rte_eth_dev_close(n->port);
	n->port_started = false;
}
