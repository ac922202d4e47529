/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "kite_port.h"

/* The value of key in a "k=v,k=v" argument list, into out; false when absent. */
static bool
arg_value(const char *args, const char *key, char *out, size_t len)
{
	size_t klen = strlen(key);

	for (const char *p = args; p != NULL && *p != '\0';
	     p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
		if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
			size_t n = strcspn(p + klen + 1, ",");

			snprintf(out, len, "%.*s", (int)n, p + klen + 1);
			return true;
		}
	}
	return false;
}

/*
 * Why a device would not come up, when it can be told: an af_packet port
 * whose interface does not exist here (DPDK reports it as EPERM). args:
 * the device's arguments, from the port spec or from EAL's --vdev.
 */
static void
explain_probe(const char *spec, const char *name, const char *args, int rc, char *err,
	      size_t errlen)
{
	char iface[IF_NAMESIZE + 1];

	if (strncmp(name, "net_af_packet", 13) == 0 &&
	    arg_value(args, "iface", iface, sizeof(iface)) && if_nametoindex(iface) == 0) {
		snprintf(err, errlen,
			 "cannot create device '%s': there is no interface '%s' in this network "
			 "namespace (ip link show); af_packet binds an interface that exists",
			 spec, iface);
		return;
	}
	if (strncmp(name, "net_af_packet", 13) == 0 &&
	    !arg_value(args, "iface", iface, sizeof(iface))) {
		snprintf(err, errlen, "cannot create device '%s': af_packet needs iface=NAME",
			 spec);
		return;
	}
	snprintf(
		err, errlen,
		"cannot create device '%s': the driver refused it (%s; DPDK's lines above say why)",
		spec, rc != 0 ? rte_strerror(-rc) : "no port came up");
}

/* The arguments EAL was given for device `name` (--vdev / -a), or NULL. */
static const char *
eal_devargs(const char *name)
{
	struct rte_devargs *da;

	RTE_EAL_DEVARGS_FOREACH(NULL, da)
	{
		if (strcmp(da->name, name) == 0)
			return da->args != NULL ? da->args : "";
	}
	return NULL;
}

int
kite_port_resolve(const char *spec, uint16_t *port, char *err, size_t errlen)
{
	char name[RTE_ETH_NAME_MAX_LEN];
	const char *comma = strchr(spec, ',');
	char *end;
	unsigned long id;
	size_t len;
	int rc;

	id = strtoul(spec, &end, 10);
	if (*spec != '\0' && *end == '\0') {
		if (id >= RTE_MAX_ETHPORTS || !rte_eth_dev_is_valid_port((uint16_t)id)) {
			snprintf(err, errlen, "port %lu does not exist (%u ports probed)", id,
				 rte_eth_dev_count_avail());
			return -ENODEV;
		}
		*port = (uint16_t)id;
		return 0;
	}
	len = comma != NULL ? (size_t)(comma - spec) : strlen(spec);
	if (len == 0 || len >= sizeof(name)) {
		snprintf(err, errlen, "port '%s': the device name must be 1 to %zu characters",
			 spec, sizeof(name) - 1);
		return -EINVAL;
	}
	memcpy(name, spec, len);
	name[len] = '\0';
	if (rte_eth_dev_get_port_by_name(name, port) == 0)
		return 0;
	/* A device EAL was given (--vdev, -a) and could not bring up: say why, do not retry. */
	if (comma == NULL && eal_devargs(name) != NULL) {
		explain_probe(spec, name, eal_devargs(name), 0, err, errlen);
		return -ENODEV;
	}
	/* Hot-plug what looks like a device: "name,args", a vdev name, a PCI address. */
	if (comma != NULL || strncmp(name, "net_", 4) == 0 || strchr(name, ':') != NULL) {
		rc = rte_dev_probe(spec);
		if (rc < 0) {
			explain_probe(spec, name, comma != NULL ? comma + 1 : "", rc, err, errlen);
			return rc;
		}
		if (rte_eth_dev_get_port_by_name(name, port) == 0)
			return 0;
	}
	snprintf(err, errlen, "no DPDK port '%s'", spec);
	return -ENODEV;
}

static void
choose_offloads(const struct kite_port_conf *c, const struct rte_eth_dev_info *di,
		struct rte_eth_conf *ec)
{
	memset(ec, 0, sizeof(*ec));
	ec->rxmode.mtu = c->mtu;
	if (c->rx_csum && (di->rx_offload_capa & RTE_ETH_RX_OFFLOAD_UDP_CKSUM))
		ec->rxmode.offloads |= RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
	if (c->rx_csum && (di->rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM))
		ec->rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
	/* Both or neither: a half-offloaded packet needs a software sum anyway. */
	if ((di->tx_offload_capa & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) &&
	    (di->tx_offload_capa & RTE_ETH_TX_OFFLOAD_UDP_CKSUM))
		ec->txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
	if (c->fast_free && (di->tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE))
		ec->txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
	if (c->rss && c->queues > 1 && di->flow_type_rss_offloads != 0) {
		ec->rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		ec->rx_adv_conf.rss_conf.rss_hf =
			di->flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP);
	}
}

int
kite_port_start(uint16_t port, const struct kite_port_conf *c, struct kite_port_info *info,
		char *err, size_t errlen)
{
	struct rte_eth_dev_info di;
	struct rte_eth_conf ec;
	uint16_t nq = c->queues, rxd = c->rx_desc, txd = c->tx_desc;
	int rc;

	memset(info, 0, sizeof(*info));
	rc = rte_eth_dev_info_get(port, &di);
	if (rc != 0) {
		snprintf(err, errlen, "port %u: device info: %s", port, rte_strerror(-rc));
		return rc;
	}
	info->driver = di.driver_name;
	info->max_rx_queues = di.max_rx_queues;
	if (nq == 0 || di.max_rx_queues < nq || di.max_tx_queues < nq) {
		snprintf(err, errlen,
			 "port %u (%s) offers %u RX / %u TX queues; %u are needed, one per "
			 "polling lcore (af_packet: qpairs=N in the vdev; memif: "
			 "rx_queues/tx_queues)",
			 port, di.driver_name, di.max_rx_queues, di.max_tx_queues, nq);
		return -EINVAL;
	}
	choose_offloads(c, &di, &ec);
	info->mtu = c->mtu;
	rc = rte_eth_dev_configure(port, nq, nq, &ec);
	if (rc != 0 && ec.rxmode.mtu != RTE_ETHER_MTU) {
		info->mtu_error = rc;
		info->mtu = RTE_ETHER_MTU;
		ec.rxmode.mtu = RTE_ETHER_MTU;
		rc = rte_eth_dev_configure(port, nq, nq, &ec);
	}
	if (rc != 0) {
		snprintf(err, errlen, "port %u: configure: %s", port, rte_strerror(-rc));
		return rc;
	}
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &rxd, &txd);
	if (rc != 0) {
		snprintf(err, errlen, "port %u: descriptors: %s", port, rte_strerror(-rc));
		return rc;
	}
	info->rx_desc = rxd;
	info->tx_desc = txd;
	for (uint16_t q = 0; q < nq; q++) {
		struct rte_eth_rxconf rxq = di.default_rxconf;
		struct rte_eth_txconf txq = di.default_txconf;
		int socket = c->sockets != NULL ? c->sockets[q] : -1;

		if (socket < 0)
			socket = rte_eth_dev_socket_id(port);
		if (socket < 0)
			socket = (int)rte_socket_id();
		rxq.offloads = ec.rxmode.offloads;
		txq.offloads = ec.txmode.offloads;
		rc = rte_eth_rx_queue_setup(port, q, rxd, (unsigned int)socket, &rxq,
					    c->rx_pools[q]);
		if (rc == 0)
			rc = rte_eth_tx_queue_setup(port, q, txd, (unsigned int)socket, &txq);
		if (rc != 0) {
			snprintf(err, errlen, "port %u: queue %u set-up: %s", port, q,
				 rte_strerror(-rc));
			return rc;
		}
	}
	info->rx_l4_csum = !!(ec.rxmode.offloads & RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
	info->rx_ip_csum = !!(ec.rxmode.offloads & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM);
	info->tx_csum = !!(ec.txmode.offloads & RTE_ETH_TX_OFFLOAD_UDP_CKSUM);
	info->rss = ec.rxmode.mq_mode == RTE_ETH_MQ_RX_RSS;
	rc = rte_eth_dev_start(port);
	if (rc != 0) {
		snprintf(err, errlen, "port %u: start: %s", port, rte_strerror(-rc));
		return rc;
	}
	return 0;
}
