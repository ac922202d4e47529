/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: any bytes as a received Ethernet frame (sometimes cut
 * into several segments) through the network stack. Every verdict must
 * leave the mbufs accounted for: what the stack keeps is freed with the
 * context's reassembly table, everything else by us, and the pool must be
 * whole again after each input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include "kite_net.h"
#include "kite_test.h"

static struct rte_mempool *pool;
static struct kite_net *net;
static uint64_t tsc;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kite_net *
make_net(void)
{
	struct kite_net_conf c;

	memset(&c, 0, sizeof(c));
	c.mac = (struct rte_ether_addr){ { 0x02, 0, 0, 0, 0, 0x02 } };
	c.ip = 0xc6120002;
	c.netmask = 0xfffffffc;
	c.udp_port = 11211;
	c.udp_ports = 4;
	c.mtu = 1500;
	c.frag_max_flows = 16;
	c.frag_timeout_ms = 100;
	return kite_net_create(&c, 0);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (kite_test_eal_init("fuzz_net") != 0)
		abort();
	pool = rte_pktmbuf_pool_create("fznet", 4095, 0, 0, 2048 + RTE_PKTMBUF_HEADROOM, 0);
	net = make_net();
	if (pool == NULL || net == NULL)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rte_mbuf *head = NULL, *m;
	struct kite_net_udp u;
	size_t off = 0;
	/* The first byte picks a segment size, so chains get exercised too. */
	size_t seg = size > 0 ? 16 + (data[0] % 4) * 600 : 0;

	if (size < 1 || size > 9000)
		return 0;
	data++;
	size--;
	while (off < size || head == NULL) {
		size_t n = size - off < seg ? size - off : seg;
		m = rte_pktmbuf_alloc(pool);
		if (m == NULL)
			abort();
		if (n > 0)
			memcpy(rte_pktmbuf_append(m, (uint16_t)n), data + off, n);
		off += n;
		if (head == NULL)
			head = m;
		else if (rte_pktmbuf_chain(head, m) != 0)
			abort();
		if (n == 0)
			break;
	}
	tsc += rte_get_tsc_hz() / 50; /* fragments time out every few inputs */
	switch (kite_net_rx(net, &head, tsc, &u)) {
	case KITE_NET_UDP:
		if ((uint32_t)u.payload_off + u.payload_len > rte_pktmbuf_pkt_len(head))
			abort();
	{
		/* Through the neighbour table: held (1) while ARP asks, then the stack's. */
		int rc = kite_net_udp_reply(net, head, &u);

		if (rc == 0 && rte_pktmbuf_pkt_len(head) < KITE_NET_HDR_LEN)
			abort();
		if (rc != 1)
			rte_pktmbuf_free(head);
		break;
	}
	case KITE_NET_REPLY:
	case KITE_NET_DROP:
		rte_pktmbuf_free(head);
		break;
	case KITE_NET_HELD:
		break;
	}
	kite_net_tick(net, tsc);
	/* What the stack sends now: ARP requests, replies whose next hop answered. */
	for (;;) {
		struct rte_mbuf *out[16];
		unsigned int k = kite_net_pending(net, pool, tsc, out, 16);

		for (unsigned int i = 0; i < k; i++)
			rte_pktmbuf_free(out[i]);
		if (k < 16)
			break;
	}
	/* Every few hundred inputs, tear the context down: no mbuf may leak. */
	if (rte_mempool_in_use_count(pool) > 3000) {
		kite_net_free(net);
		net = make_net();
		if (net == NULL || rte_mempool_in_use_count(pool) != 0)
			abort();
	}
	return 0;
}
