/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_errno.h>
#include <rte_lcore.h>

#include "kited.h"

/*
 * Resolve the `port` option: a number is a port id; a name is a probed
 * device; "name,args" is a vdev we hot-plug ourselves, so a single kite
 * option can replace EAL's --vdev.
 */
static int
resolve_port(const char *spec, uint16_t *port)
{
	char name[RTE_ETH_NAME_MAX_LEN];
	const char *comma = strchr(spec, ',');
	char *end;
	unsigned long id;
	size_t len;

	id = strtoul(spec, &end, 10);
	if (*spec != '\0' && *end == '\0') {
		if (id >= RTE_MAX_ETHPORTS || !rte_eth_dev_is_valid_port((uint16_t)id)) {
			KLOG(ERR, "port %lu does not exist (%u ports probed)", id,
			     rte_eth_dev_count_avail());
			return -ENODEV;
		}
		*port = (uint16_t)id;
		return 0;
	}
	len = comma ? (size_t)(comma - spec) : strlen(spec);
	if (len >= sizeof(name))
		return -ENAMETOOLONG;
	memcpy(name, spec, len);
	name[len] = '\0';
	if (rte_eth_dev_get_port_by_name(name, port) == 0)
		return 0;
	if (comma != NULL || strncmp(name, "net_", 4) == 0) {
		int rc = rte_dev_probe(spec);
		if (rc < 0) {
			KLOG(ERR, "cannot create device '%s': %s", spec, rte_strerror(-rc));
			return rc;
		}
		if (rte_eth_dev_get_port_by_name(name, port) == 0)
			return 0;
	}
	KLOG(ERR, "no DPDK port '%s'", spec);
	return -ENODEV;
}

int
port_resolve(struct node *n)
{
	return resolve_port(n->cfg.port, &n->port);
}

/* Choose the steering mode now that the port runs, and program it. */
static int
setup_steering(struct node *n, const struct rte_eth_dev_info *info, bool rss)
{
	struct kite_steer_caps caps;
	struct kite_steer_rule rules[KITE_MAX_PARTS];
	int mode, nr, rc;

	memset(&caps, 0, sizeof(caps));
	caps.max_rx_queues = info->max_rx_queues;
	caps.rss_udp = rss;
	nr = kite_steer_plan(&n->map, n->cfg.ip, rules, RTE_DIM(rules));
	if (nr < 0)
		return nr;
	caps.flow_udp_dst = n->n_workers > 1 && kite_steer_flow_supported(n->port, &rules[0]);
	mode = kite_steer_choose(&caps, (uint16_t)n->n_workers,
				 (enum kite_steer_mode)kite_steer_mode_parse(n->cfg.steer));
	if (mode < 0) {
		KLOG(ERR, "port %u (%s) cannot steer in mode '%s' (flow rules %s, RSS %s)",
		     n->port, info->driver_name, n->cfg.steer,
		     caps.flow_udp_dst ? "accepted" : "refused", rss ? "on" : "off");
		return mode;
	}
	n->steer = (enum kite_steer_mode)mode;
	if (n->steer != KITE_STEER_FLOW)
		return 0;
	rc = kite_steer_flow_install(n->port, rules, (unsigned int)nr, n->flows);
	if (rc != 0) {
		KLOG(ERR, "port %u: installing %d flow rules: %s", n->port, nr, rte_strerror(-rc));
		return rc;
	}
	n->n_flows = (unsigned int)nr;
	return 0;
}

int
port_open(struct node *n)
{
	const struct kited_config *c = &n->cfg;
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	struct rte_eth_link link;
	uint16_t nq = (uint16_t)c->workers;
	uint16_t rxd = (uint16_t)c->rx_desc, txd = (uint16_t)c->tx_desc;
	int rc;

	rc = rte_eth_dev_info_get(n->port, &info);
	if (rc != 0) {
		KLOG(ERR, "port %u: dev_info: %s", n->port, rte_strerror(-rc));
		return rc;
	}
	if (info.max_rx_queues < nq || info.max_tx_queues < nq) {
		KLOG(ERR,
		     "port %u (%s) offers %u RX / %u TX queues; %u workers need one each "
		     "(af_packet: add qpairs=%u to the vdev; memif: rx_queues/tx_queues)",
		     n->port, info.driver_name, info.max_rx_queues, info.max_tx_queues, nq, nq);
		return -EINVAL;
	}

	memset(&conf, 0, sizeof(conf));
	conf.rxmode.mtu = c->mtu;
	if (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_UDP_CKSUM)
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
	if (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM)
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
	if ((info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) &&
	    (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_UDP_CKSUM))
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
	if (nq > 1 && info.flow_type_rss_offloads != 0) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf =
			info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP);
	}
	/* Fast free needs refcnt 1 and one pool; handoff shares mbufs by refcnt. */
	if (nq > 1)
		conf.txmode.offloads &= ~RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;

	rc = rte_eth_dev_configure(n->port, nq, nq, &conf);
	if (rc != 0 && conf.rxmode.mtu != RTE_ETHER_MTU) {
		KLOG(WARNING, "port %u: MTU %u refused (%s); retrying with 1500", n->port,
		     c->mtu, rte_strerror(-rc));
		conf.rxmode.mtu = RTE_ETHER_MTU;
		rc = rte_eth_dev_configure(n->port, nq, nq, &conf);
	}
	if (rc != 0) {
		KLOG(ERR, "port %u: configure: %s", n->port, rte_strerror(-rc));
		return rc;
	}
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(n->port, &rxd, &txd);
	if (rc != 0)
		return rc;
	for (uint16_t q = 0; q < nq; q++) {
		/* Descriptor rings next to the worker that polls them. */
		int socket = n->place.pools[n->place.worker_pool[q]];
		struct rte_eth_rxconf rxq = info.default_rxconf;
		struct rte_eth_txconf txq = info.default_txconf;

		rxq.offloads = conf.rxmode.offloads;
		txq.offloads = conf.txmode.offloads;
		unsigned int pi = (unsigned int)n->place.worker_pool[q];
		rc = rte_eth_rx_queue_setup(n->port, q, rxd, (unsigned int)socket, &rxq,
					    n->rx_pools[pi] ? n->rx_pools[pi] : n->pools[pi]);
		if (rc == 0)
			rc = rte_eth_tx_queue_setup(n->port, q, txd, (unsigned int)socket, &txq);
		if (rc != 0) {
			KLOG(ERR, "port %u: queue %u setup: %s", n->port, q, rte_strerror(-rc));
			return rc;
		}
	}
	rc = rte_eth_macaddr_get(n->port, &n->mac);
	if (rc != 0)
		return rc;
	n->netconf.rx_l4_csum_offload = !!(conf.rxmode.offloads & RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
	n->netconf.rx_ip_csum_offload = !!(conf.rxmode.offloads & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM);
	n->netconf.tx_csum_offload = !!(conf.txmode.offloads & RTE_ETH_TX_OFFLOAD_UDP_CKSUM);

	rc = rte_eth_dev_start(n->port);
	if (rc != 0) {
		KLOG(ERR, "port %u: start: %s", n->port, rte_strerror(-rc));
		return rc;
	}
	n->port_started = true;
	rc = setup_steering(n, &info, conf.rxmode.mq_mode == RTE_ETH_MQ_RX_RSS);
	if (rc != 0)
		return rc;
	rte_eth_link_get_nowait(n->port, &link);
	KLOG(INFO,
	     "port %u (%s) " RTE_ETHER_ADDR_PRT_FMT ": %u queue(s), link %s, csum offload rx %s "
	     "tx %s, steering %s",
	     n->port, info.driver_name, RTE_ETHER_ADDR_BYTES(&n->mac), nq,
	     link.link_status ? "up" : "down", n->netconf.rx_l4_csum_offload ? "on" : "off",
	     n->netconf.tx_csum_offload ? "on" : "off", kite_steer_mode_name(n->steer));
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
