/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * DPDK transport: one RX/TX queue per load lcore on any ethdev port
 * (net_memif as the peer of kited here, real NICs in labs).
 *
 * Each load lcore polls its queue, hands reply payloads to its generator
 * and builds new request datagrams straight into mbufs: Ethernet, IPv4
 * and UDP headers from a per-lcore template, the payload written in place
 * by the generator. Nothing on this path allocates from the heap, logs or
 * makes a system call. ARP goes through lib/net (kite_net): we resolve the
 * server once before the load and answer its requests while it runs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_udp.h>

#include "kite_net.h"
#include "kite_port.h"
#include "kite_proto.h"
#include "kite_steer.h"

#include "bench.h"
#include "route.h"
#include "workload.h"

#define MAX_BURST   256
#define STASH	    64
#define ETH_LEN	    14
#define IP4_LEN	    20
#define UDP_LEN	    8
#define HDRS_LEN    (ETH_LEN + IP4_LEN + UDP_LEN)
#define ETH_MIN	    60
#define SCRATCH	    (BENCH_UDP_MAX + 64)
#define RX_DESC	    1024
#define TX_DESC	    1024
#define LINK_WAIT_S 10
#define ARP_WAIT_S  5
#define CTL_TRIES   3

/* The headers in front of every request, filled once per lcore. */
struct hdr_tmpl {
	struct rte_ether_hdr eth;
	struct rte_ipv4_hdr ip;
	struct rte_udp_hdr udp;
} __rte_packed __rte_aligned(2);

_Static_assert(sizeof(struct hdr_tmpl) == HDRS_LEN, "header template size");

struct dpdk_ctx;

struct dlc {
	struct dpdk_ctx *x;
	unsigned int idx;
	unsigned int lcore;
	uint16_t queue;
	struct rte_mempool *pool;
	struct gen *g;
	struct kite_net *net;
	struct phase_ctl pc;
	volatile bool running;
	bool draining;
	uint64_t drain_end;
	uint16_t ip_id;
	uint16_t sport_base;
	struct hdr_tmpl tmpl;
	unsigned int ntx;
	struct rte_mbuf *tx[MAX_BURST + STASH];
	unsigned int nstash;
	struct rte_mbuf *stash[STASH];
	uint8_t *scratch;
} __rte_cache_aligned;

struct dpdk_ctx {
	struct bench_options *o;
	struct workload w;
	uint16_t port;
	struct rte_ether_addr mac;
	struct rte_ether_addr peer;
	rte_be32_t our_ip;
	rte_be32_t srv_ip;
	/* --cluster: each destination's MAC (its member's, by ARP) and address. */
	struct rte_ether_addr dmac[BENCH_MAX_DESTS];
	rte_be32_t dip[BENCH_MAX_DESTS];
	bool csum_offload;
	bool main_runs;
	unsigned int n;
	unsigned int frag_payload; /* IP payload bytes per fragment (multiple of 8) */
	unsigned int max_frames;   /* frames the largest datagram needs */
	struct dlc *lc;
	struct gen *gens[BENCH_MAX_LCORES];
	uint8_t *ctl_buf;
	struct rte_flow **flows; /* reply steering rules, when the port has rte_flow */
	unsigned int nflows;
	char target[BENCH_STR_MAX + 64];
	/*
	 * The pollers' quiescent states, one thread id per load lcore (the
	 * main lcore's control exchanges use lcore 0's): the process's munmap
	 * waits on them (lib/port/kite_unmap.c), so a kited that goes away
	 * under load cannot unmap the memif rings under a burst.
	 */
	struct rte_rcu_qsbr *qs;
};

/* Lcore lc's thread polls from now until poll_offline(): munmap waits for it between polls. */
static void
poll_online(struct dlc *lc)
{
	if (lc->x->qs == NULL)
		return;
	rte_rcu_qsbr_thread_online(lc->x->qs, lc->idx);
	kite_port_unmap_self(lc->idx);
}

/* Between two polls: no burst of this thread is under way. */
static inline void
poll_quiescent(struct dlc *lc)
{
	if (lc->x->qs != NULL)
		rte_rcu_qsbr_quiescent(lc->x->qs, lc->idx);
}

static void
poll_offline(struct dlc *lc)
{
	if (lc->x->qs == NULL)
		return;
	kite_port_unmap_self(RTE_QSBR_THRID_INVALID);
	rte_rcu_qsbr_thread_offline(lc->x->qs, lc->idx);
}

/* One quiescent-state variable for the load lcores, which munmap waits on from now. */
static int
unmap_guard_setup(struct dpdk_ctx *x)
{
	size_t sz = rte_rcu_qsbr_get_memsize(x->n);

	x->qs = rte_zmalloc("kite-bench-qs", sz, RTE_CACHE_LINE_SIZE);
	if (x->qs == NULL || rte_rcu_qsbr_init(x->qs, x->n) != 0)
		goto fail;
	for (unsigned int i = 0; i < x->n; i++)
		if (rte_rcu_qsbr_thread_register(x->qs, i) != 0)
			goto fail;
	kite_port_unmap_guard(x->qs);
	return 0;
fail:
	rte_free(x->qs);
	x->qs = NULL;
	fprintf(stderr, "kite-bench: cannot set up the pollers' quiescent states\n");
	return -ENOMEM;
}

/* ---- port ------------------------------------------------------------------ */

/*
 * With several load lcores, each reply must reach the lcore that sent its
 * request. Each lcore has its own source ports, so a NIC with rte_flow
 * steers replies by UDP destination port with the same rules kited uses
 * for partitions (lib/steer). Without rte_flow (memif, af_packet) replies
 * return on the queue of the server worker that answered: --server-workers
 * makes that the sender's queue.
 */
static int
reply_steering(struct dpdk_ctx *x)
{
	const unsigned int n = x->n * x->o->flows;
	struct kite_steer_rule *rules;
	const char *why = NULL;
	int rc;

	rules = calloc(n, sizeof(*rules));
	x->flows = calloc(n, sizeof(*x->flows));
	if (rules == NULL || x->flows == NULL) {
		free(rules);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < n; i++) {
		rules[i].ip = x->o->src_ip;
		rules[i].udp_port = (uint16_t)(x->o->src_port + i);
		rules[i].queue = (uint16_t)(i / x->o->flows);
	}
	if (!kite_steer_flow_supported(x->port, &rules[0])) {
		if (x->o->server_workers != x->n)
			fprintf(stderr,
				"kite-bench: warning: port %u cannot steer replies by UDP "
				"port (no rte_flow); replies that return on another lcore's queue "
				"count as stale (memif: use --server-workers %u)\n",
				x->port, x->n);
		free(rules);
		return 0;
	}
	rc = kite_steer_flow_install(x->port, rules, n, x->flows, &why);
	free(rules);
	if (rc != 0) {
		fprintf(stderr, "kite-bench: port %u: reply steering rules: %s (%s)\n", x->port,
			rte_strerror(-rc), why);
		return rc;
	}
	x->nflows = n;
	printf("port %u: %u rte_flow rules steer replies to their lcore's queue\n", x->port, n);
	return 0;
}

static int
port_setup(struct dpdk_ctx *x)
{
	struct rte_mempool *pools[RTE_MAX_LCORE];
	int sockets[RTE_MAX_LCORE];
	struct kite_port_conf pc;
	struct kite_port_info pi;
	struct rte_eth_link link;
	char err[200];
	uint16_t nq = (uint16_t)x->n;
	int rc;

	rc = kite_port_resolve(x->o->port, &x->port, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "kite-bench: %s\n", err);
		return rc;
	}
	for (uint16_t q = 0; q < nq; q++) {
		/* Rings on the port's socket, or the polling lcore's when it has none. */
		sockets[q] = rte_eth_dev_socket_id(x->port);
		if (sockets[q] < 0)
			sockets[q] = (int)rte_lcore_to_socket_id(x->lc[q].lcore);
		pools[q] = x->lc[q].pool;
	}
	memset(&pc, 0, sizeof(pc));
	pc.queues = nq;
	pc.mtu = (uint16_t)x->o->mtu;
	pc.rx_desc = RX_DESC;
	pc.tx_desc = TX_DESC;
	pc.fast_free = true; /* each lcore's mbufs come from its own pool, never shared */
	pc.rx_pools = pools;
	pc.sockets = sockets;
	rc = kite_port_start(x->port, &pc, &pi, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "kite-bench: %s\n", err);
		return rc;
	}
	x->csum_offload = pi.tx_csum;
	if (pi.mtu_error != 0) {
		/* Datagrams are already cut for --mtu: better stop than send oversized frames. */
		fprintf(stderr, "kite-bench: port %u (%s) refused MTU %u (%s); run with --mtu %u\n",
			x->port, pi.driver, x->o->mtu, rte_strerror(-pi.mtu_error), pi.mtu);
		return -EINVAL;
	}
	rte_eth_macaddr_get(x->port, &x->mac);
	/* memif comes up once the peer has connected; wait for it, boundedly. */
	for (int i = 0; i < LINK_WAIT_S * 10 && !bench_quit; i++) {
		rte_eth_link_get_nowait(x->port, &link);
		if (link.link_status == RTE_ETH_LINK_UP)
			break;
		usleep(100 * 1000);
	}
	rte_eth_link_get_nowait(x->port, &link);
	if (link.link_status != RTE_ETH_LINK_UP) {
		fprintf(stderr,
			"kite-bench: port %u (%s): link down after %d s (is the server "
			"up?)\n",
			x->port, pi.driver, LINK_WAIT_S);
		return -ENOLINK;
	}
	printf("port %u (%s) " RTE_ETHER_ADDR_PRT_FMT ": %u queue(s), checksum offload %s\n",
	       x->port, pi.driver, RTE_ETHER_ADDR_BYTES(&x->mac), nq,
	       x->csum_offload ? "on" : "off");
	return nq > 1 ? reply_steering(x) : 0;
}

/* ---- packets ---------------------------------------------------------------- */

static void
tmpl_init(struct dlc *lc)
{
	struct dpdk_ctx *x = lc->x;
	struct hdr_tmpl *t = &lc->tmpl;

	memset(t, 0, sizeof(*t));
	rte_ether_addr_copy(&x->peer, &t->eth.dst_addr);
	rte_ether_addr_copy(&x->mac, &t->eth.src_addr);
	t->eth.ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
	t->ip.version_ihl = RTE_IPV4_VHL_DEF;
	t->ip.time_to_live = 64;
	t->ip.next_proto_id = IPPROTO_UDP;
	t->ip.src_addr = x->our_ip;
	t->ip.dst_addr = x->srv_ip;
}

static inline void
ip_finish(struct dlc *lc, struct rte_mbuf *m, struct rte_ipv4_hdr *ip, struct rte_udp_hdr *udp)
{
	m->l2_len = ETH_LEN;
	m->l3_len = IP4_LEN;
	if (lc->x->csum_offload && udp != NULL) {
		m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;
		udp->dgram_cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
		return;
	}
	m->ol_flags = 0;
	/* No offload: the IP header sum only; UDP checksum 0 means none (RFC 768). */
	ip->hdr_checksum = rte_ipv4_cksum(ip);
}

/* Frames a datagram of `len` payload bytes needs. */
static inline unsigned int
frames_for(const struct dpdk_ctx *x, uint32_t len)
{
	uint32_t ip_payload = UDP_LEN + len;

	if (len <= x->w.req_budget)
		return 1;
	return (ip_payload + x->frag_payload - 1) / x->frag_payload;
}

static bool
stash_fill(struct dlc *lc, unsigned int need)
{
	unsigned int want = STASH - lc->nstash;

	if (lc->nstash >= need)
		return true;
	if (rte_pktmbuf_alloc_bulk(lc->pool, lc->stash + lc->nstash, want) == 0) {
		lc->nstash = STASH;
		return true;
	}
	/* The pool runs low (replies held in rings): take just what we need. */
	if (rte_pktmbuf_alloc_bulk(lc->pool, lc->stash + lc->nstash, need - lc->nstash) == 0) {
		lc->nstash = need;
		return true;
	}
	return false;
}

/* Build the frames of one prepared datagram onto the TX list. */
static unsigned int
build(struct dlc *lc, const struct gen_dgram *d)
{
	struct dpdk_ctx *x = lc->x;
	const uint16_t ulen = (uint16_t)(UDP_LEN + d->len);
	const uint16_t id = rte_cpu_to_be_16(lc->ip_id++);
	struct rte_mbuf *m;
	struct hdr_tmpl *h;
	uint8_t *p;
	uint32_t flen;

	if (d->len <= x->w.req_budget) {
		m = lc->stash[--lc->nstash];
		p = rte_pktmbuf_mtod(m, uint8_t *);
		h = (struct hdr_tmpl *)p;
		memcpy(h, &lc->tmpl, sizeof(*h));
		h->ip.total_length = rte_cpu_to_be_16((uint16_t)(IP4_LEN + ulen));
		h->ip.packet_id = id;
		h->udp.src_port = rte_cpu_to_be_16((uint16_t)(lc->sport_base + d->flow));
		h->udp.dst_port = rte_cpu_to_be_16(d->dst_port);
		h->udp.dgram_len = rte_cpu_to_be_16(ulen);
		if (x->w.cluster) {
			rte_ether_addr_copy(&x->dmac[d->dst], &h->eth.dst_addr);
			h->ip.dst_addr = x->dip[d->dst];
		}
		gen_write(lc->g, d, p + HDRS_LEN);
		flen = HDRS_LEN + d->len;
		if (flen < ETH_MIN) {
			memset(p + flen, 0, ETH_MIN - flen);
			flen = ETH_MIN;
		}
		m->data_len = (uint16_t)flen;
		m->pkt_len = flen;
		ip_finish(lc, m, &h->ip, &h->udp);
		lc->tx[lc->ntx++] = m;
		return 1;
	}

	/*
	 * Larger than the MTU: the whole UDP datagram in scratch, then cut
	 * into IPv4 fragments as a host stack would (the server reassembles).
	 * A fragmented datagram carries no UDP checksum: no NIC can offload it.
	 */
	{
		struct rte_udp_hdr *u = (struct rte_udp_hdr *)lc->scratch;
		unsigned int nf = 0;

		u->src_port = rte_cpu_to_be_16((uint16_t)(lc->sport_base + d->flow));
		u->dst_port = rte_cpu_to_be_16(d->dst_port);
		u->dgram_len = rte_cpu_to_be_16(ulen);
		u->dgram_cksum = 0;
		gen_write(lc->g, d, lc->scratch + UDP_LEN);
		for (uint32_t off = 0; off < ulen; off += x->frag_payload) {
			uint32_t chunk = RTE_MIN(x->frag_payload, (uint32_t)ulen - off);
			bool more = off + chunk < ulen;

			m = lc->stash[--lc->nstash];
			p = rte_pktmbuf_mtod(m, uint8_t *);
			h = (struct hdr_tmpl *)p;
			memcpy(h, &lc->tmpl, ETH_LEN + IP4_LEN);
			if (x->w.cluster) {
				rte_ether_addr_copy(&x->dmac[d->dst], &h->eth.dst_addr);
				h->ip.dst_addr = x->dip[d->dst];
			}
			h->ip.total_length = rte_cpu_to_be_16((uint16_t)(IP4_LEN + chunk));
			h->ip.packet_id = id;
			h->ip.fragment_offset = rte_cpu_to_be_16(
				(uint16_t)((off / 8) | (more ? RTE_IPV4_HDR_MF_FLAG : 0)));
			memcpy(p + ETH_LEN + IP4_LEN, lc->scratch + off, chunk);
			flen = ETH_LEN + IP4_LEN + chunk;
			if (flen < ETH_MIN) {
				memset(p + flen, 0, ETH_MIN - flen);
				flen = ETH_MIN;
			}
			m->data_len = (uint16_t)flen;
			m->pkt_len = flen;
			ip_finish(lc, m, &h->ip, NULL);
			lc->tx[lc->ntx++] = m;
			nf++;
		}
		return nf;
	}
}

/*
 * Classify one received frame. Reply datagrams (or, in echo mode, our own
 * requests coming back) go to the generator; ARP goes to lib/net, which
 * may turn it into a reply to send. Returns true when m is ours to free.
 */
static inline bool
rx_one(struct dlc *lc, struct rte_mbuf *m, uint64_t now)
{
	struct dpdk_ctx *x = lc->x;
	const struct rte_ether_hdr *eth;
	const struct rte_ipv4_hdr *ip;
	const struct rte_udp_hdr *udp;
	const uint8_t *p;
	uint32_t len = rte_pktmbuf_pkt_len(m), ulen;

	if (m->nb_segs > 1) {
		if (len > SCRATCH)
			goto other;
		p = rte_pktmbuf_read(m, 0, len, lc->scratch);
	} else {
		p = rte_pktmbuf_mtod(m, const uint8_t *);
	}
	if (len < HDRS_LEN)
		goto other;
	eth = (const struct rte_ether_hdr *)p;
	if (eth->ether_type != RTE_BE16(RTE_ETHER_TYPE_IPV4)) {
		if (eth->ether_type == RTE_BE16(RTE_ETHER_TYPE_ARP)) {
			struct kite_net_udp u;
			switch (kite_net_rx(lc->net, &m, now, &u)) {
			case KITE_NET_REPLY:
				if (lc->ntx < RTE_DIM(lc->tx))
					lc->tx[lc->ntx++] = m;
				else
					rte_pktmbuf_free(m);
				return false;
			case KITE_NET_HELD:
				return false;
			default:
				return true;
			}
		}
		goto other;
	}
	ip = (const struct rte_ipv4_hdr *)(eth + 1);
	if (ip->version_ihl != RTE_IPV4_VHL_DEF || ip->next_proto_id != IPPROTO_UDP ||
	    (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)))
		goto other;
	/* A reply comes from the server; an echo is our own request turned around. */
	if (x->w.echo	 ? (ip->src_addr != x->our_ip || ip->dst_addr != x->srv_ip)
	    : x->w.cluster ? ip->dst_addr != x->our_ip /* any member; the request id matches */
			   : (ip->src_addr != x->srv_ip || ip->dst_addr != x->our_ip))
		goto other;
	udp = (const struct rte_udp_hdr *)(ip + 1);
	ulen = rte_be_to_cpu_16(udp->dgram_len);
	if (ulen < UDP_LEN || ETH_LEN + IP4_LEN + ulen > len)
		goto other;
	gen_rx(lc->g, (const uint8_t *)(udp + 1), ulen - UDP_LEN, now);
	return true;
other:
	gen_counters(lc->g)->rx_other++;
	return true;
}

/* ---- the load loop ------------------------------------------------------------ */

static void
tx_flush(struct dlc *lc)
{
	struct dpdk_ctx *x = lc->x;
	uint16_t sent;

	if (lc->ntx == 0)
		return;
	sent = rte_eth_tx_burst(x->port, lc->queue, lc->tx, (uint16_t)lc->ntx);
	if (sent < lc->ntx) {
		/* Keep the rest for the next turn: a full ring is back-pressure, not loss. */
		memmove(lc->tx, lc->tx + sent, (lc->ntx - sent) * sizeof(lc->tx[0]));
		gen_counters(lc->g)->tx_retry++;
	}
	lc->ntx -= sent;
}

/* One turn: receive, send what is due, expire. Returns false when the phase is over. */
static bool
dlc_iterate(struct dlc *lc)
{
	struct dpdk_ctx *x = lc->x;
	const unsigned int burst = x->o->burst;
	struct rte_mbuf *rx[MAX_BURST], *fr[MAX_BURST];
	unsigned int nrx, nfr = 0, built = 0;
	uint64_t now, t0 = rte_rdtsc();
	bool sending;
	struct gen_dgram d;

	poll_quiescent(lc);
	nrx = rte_eth_rx_burst(x->port, lc->queue, rx, (uint16_t)burst);
	now = rte_rdtsc();
	for (unsigned int i = 0; i < nrx; i++) {
		if (i + 1 < nrx)
			rte_prefetch0(rte_pktmbuf_mtod(rx[i + 1], void *));
		if (rx_one(lc, rx[i], now))
			fr[nfr++] = rx[i];
	}
	if (nfr > 0)
		rte_pktmbuf_free_bulk(fr, nfr);

	if (lc->pc.phase == PHASE_LOAD && !lc->pc.warm_done && now >= lc->pc.warmup_end) {
		gen_mark_warm(lc->g);
		lc->pc.warm_done = true;
	}
	sending = now < lc->pc.end && !bench_quit;
	if (sending) {
		while (lc->ntx < burst && stash_fill(lc, x->max_frames) &&
		       gen_prepare(lc->g, now, &d)) {
			unsigned int nf = build(lc, &d);
			gen_sent(lc->g, &d, now, nf);
			built++;
		}
	}
	tx_flush(lc);
	gen_expire(lc->g, now, false);
	/* The client's own load: is it the bottleneck of this run? */
	if (nrx + built > 0)
		gen_counters(lc->g)->busy_cycles += rte_rdtsc() - t0;

	if (lc->pc.phase == PHASE_PRELOAD && gen_preload_done(lc->g))
		return false;
	if (!sending || gen_exhausted(lc->g)) {
		if (!lc->draining) {
			lc->draining = true;
			lc->drain_end = now + x->w.timeout_tsc + x->w.tsc_hz / 100;
		}
		if (gen_inflight(lc->g) == 0 || now >= lc->drain_end || bench_quit)
			return false;
	}
	return true;
}

static void
dlc_begin(struct dlc *lc)
{
	lc->draining = false;
	poll_online(lc);
	gen_start(lc->g, lc->pc.phase, rte_rdtsc());
}

static void
dlc_end(struct dlc *lc)
{
	/* Whatever is still out counts as lost; unsent frames are dropped. */
	gen_expire(lc->g, rte_rdtsc(), true);
	tx_flush(lc);
	if (lc->ntx > 0) {
		rte_pktmbuf_free_bulk(lc->tx, lc->ntx);
		lc->ntx = 0;
	}
	poll_offline(lc);
	lc->running = false;
}

static int
dlc_main(void *arg)
{
	struct dlc *lc = arg;

	dlc_begin(lc);
	while (dlc_iterate(lc))
		;
	dlc_end(lc);
	return 0;
}

/* ---- driver callbacks --------------------------------------------------------- */

static int
drv_launch(void *arg, enum gen_phase p, uint64_t warmup_end, uint64_t end)
{
	struct dpdk_ctx *x = arg;

	for (unsigned int i = 0; i < x->n; i++) {
		struct dlc *lc = &x->lc[i];
		lc->pc.phase = p;
		lc->pc.warmup_end = warmup_end;
		lc->pc.end = end;
		lc->pc.warm_done = false;
		lc->running = true;
		if (x->main_runs) {
			dlc_begin(lc);
			continue;
		}
		if (rte_eal_remote_launch(dlc_main, lc, lc->lcore) != 0) {
			fprintf(stderr, "kite-bench: cannot launch lcore %u\n", lc->lcore);
			lc->running = false;
			bench_quit = true;
			return -EBUSY;
		}
	}
	return 0;
}

static bool
drv_finished(void *arg)
{
	struct dpdk_ctx *x = arg;

	for (unsigned int i = 0; i < x->n; i++)
		if (x->lc[i].running)
			return false;
	return true;
}

static void
drv_wait(void *arg)
{
	struct dpdk_ctx *x = arg;

	if (!x->main_runs)
		rte_eal_mp_wait_lcore();
}

static bool
drv_poll_main(void *arg)
{
	struct dpdk_ctx *x = arg;
	struct dlc *lc = &x->lc[0];

	/* A slice of the load between two looks at the clock for progress lines. */
	for (int i = 0; i < 1024 && lc->running; i++) {
		if (!dlc_iterate(lc)) {
			dlc_end(lc);
			break;
		}
	}
	return lc->running;
}

/* Send one control datagram from lcore 0's queue (load stopped). */
static int
ctl_send(struct dlc *lc, const uint8_t *payload, uint32_t len)
{
	struct dpdk_ctx *x = lc->x;
	struct rte_mbuf *m = rte_pktmbuf_alloc(lc->pool);
	struct hdr_tmpl *h;
	uint32_t flen = HDRS_LEN + len;

	if (m == NULL)
		return -ENOMEM;
	h = rte_pktmbuf_mtod(m, struct hdr_tmpl *);
	memcpy(h, &lc->tmpl, sizeof(*h));
	h->ip.total_length = rte_cpu_to_be_16((uint16_t)(IP4_LEN + UDP_LEN + len));
	h->ip.packet_id = rte_cpu_to_be_16(lc->ip_id++);
	h->udp.src_port = rte_cpu_to_be_16(lc->sport_base);
	h->udp.dst_port = rte_cpu_to_be_16(x->w.base_port);
	h->udp.dgram_len = rte_cpu_to_be_16((uint16_t)(UDP_LEN + len));
	memcpy(h + 1, payload, len);
	if (flen < ETH_MIN) {
		memset((uint8_t *)h + flen, 0, ETH_MIN - flen);
		flen = ETH_MIN;
	}
	m->data_len = (uint16_t)flen;
	m->pkt_len = flen;
	ip_finish(lc, m, &h->ip, &h->udp);
	if (rte_eth_tx_burst(x->port, lc->queue, &m, 1) != 1) {
		rte_pktmbuf_free(m);
		return -EAGAIN;
	}
	return 0;
}

static int
server_stats_polled(struct dpdk_ctx *x, struct server_stats *s)
{
	struct dlc *lc = &x->lc[0];
	const uint64_t hz = x->w.tsc_hz;
	uint8_t req[CTL_REQ_MAX];
	uint8_t cookie[sizeof(((struct ctl_collect *)0)->cookie)] = { 0 };
	struct ctl_collect c;

	/* From lcore 0's first flow, so its stamps go on from that flow's (load stopped). */
	for (int t = 0; t < CTL_TRIES && !bench_quit; t++) {
		uint16_t id = (uint16_t)(0xfff0 + t);
		uint32_t len = ctl_stat_request(&x->w, req, id, cookie,
						x->w.guard == 2 ? gen_stamp(lc->g, 0) : 0);
		uint64_t deadline = rte_rdtsc() + hz;

		ctl_collect_init(&c, id, x->ctl_buf, x->w.reply_stride);
		if (ctl_send(lc, req, len) != 0)
			continue;
		while (rte_rdtsc() < deadline && !c.done) {
			struct rte_mbuf *rx[32];
			uint16_t n;

			poll_quiescent(lc);
			n = rte_eth_rx_burst(x->port, lc->queue, rx, 32);

			for (uint16_t i = 0; i < n; i++) {
				struct rte_mbuf *m = rx[i];
				const uint8_t *p = rte_pktmbuf_mtod(m, const uint8_t *);
				const struct rte_ipv4_hdr *ip;
				const struct rte_udp_hdr *udp;

				if (m->nb_segs == 1 && m->data_len >= HDRS_LEN &&
				    ((const struct rte_ether_hdr *)p)->ether_type ==
					    RTE_BE16(RTE_ETHER_TYPE_IPV4)) {
					ip = (const struct rte_ipv4_hdr *)(p + ETH_LEN);
					udp = (const struct rte_udp_hdr *)(ip + 1);
					if (ip->src_addr == x->srv_ip &&
					    ip->next_proto_id == IPPROTO_UDP &&
					    rte_be_to_cpu_16(udp->dgram_len) >= UDP_LEN &&
					    HDRS_LEN + rte_be_to_cpu_16(udp->dgram_len) - UDP_LEN <=
						    m->data_len)
						ctl_collect_add(&c, (const uint8_t *)(udp + 1),
								rte_be_to_cpu_16(udp->dgram_len) -
									UDP_LEN);
					rte_pktmbuf_free(m);
				} else if (rx_one(lc, m, rte_rdtsc())) {
					rte_pktmbuf_free(m);
				}
			}
			tx_flush(lc);
		}
		/* Refused for want of a cookie (the guard's bound): again with the one it offered. */
		if (c.done && (ctl_stat_parse(&c, s) == 0 || !c.has_cookie))
			return s->valid ? 0 : -EINVAL;
		if (c.has_cookie)
			memcpy(cookie, c.cookie, sizeof(cookie));
	}
	return -ETIMEDOUT;
}

static int
drv_server_stats(void *arg, struct server_stats *s)
{
	struct dpdk_ctx *x = arg;
	int rc;

	poll_online(&x->lc[0]);
	rc = server_stats_polled(x, s);
	poll_offline(&x->lc[0]);
	return rc;
}

/* Resolve a node's MAC (ip: host order) through lib/net's ARP (kited answers for its IP). */
static int
arp_resolve_polled(struct dpdk_ctx *x, uint32_t ip, struct rte_ether_addr *mac)
{
	struct dlc *lc = &x->lc[0];
	const uint64_t hz = rte_get_tsc_hz();

	for (int t = 0; t < ARP_WAIT_S * 5 && !bench_quit; t++) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(lc->pool);
		uint64_t deadline = rte_rdtsc() + hz / 5;

		if (m == NULL)
			return -ENOMEM;
		if (kite_net_arp_request(lc->net, m, ip) != 0 ||
		    rte_eth_tx_burst(x->port, lc->queue, &m, 1) != 1)
			rte_pktmbuf_free(m);
		while (rte_rdtsc() < deadline) {
			struct rte_mbuf *rx[32];
			uint16_t n;

			poll_quiescent(lc);
			n = rte_eth_rx_burst(x->port, lc->queue, rx, 32);
			for (uint16_t i = 0; i < n; i++) {
				struct kite_net_udp u;
				struct rte_mbuf *r = rx[i];
				switch (kite_net_rx(lc->net, &r, rte_rdtsc(), &u)) {
				case KITE_NET_REPLY:
					if (rte_eth_tx_burst(x->port, lc->queue, &r, 1) != 1)
						rte_pktmbuf_free(r);
					break;
				case KITE_NET_HELD:
					break;
				default:
					rte_pktmbuf_free(r);
					break;
				}
			}
			if (kite_net_arp_lookup(lc->net, ip, mac) == 0)
				return 0;
		}
	}
	return -ETIMEDOUT;
}

static int
arp_resolve(struct dpdk_ctx *x, uint32_t ip, struct rte_ether_addr *mac)
{
	int rc;

	poll_online(&x->lc[0]);
	rc = arp_resolve_polled(x, ip, mac);
	poll_offline(&x->lc[0]);
	return rc;
}

static int
parse_mac(const char *s, struct rte_ether_addr *mac)
{
	return rte_ether_unformat_addr(s, mac) == 0 ? 0 : -EINVAL;
}

static int
lcores_setup(struct dpdk_ctx *x)
{
	unsigned int lc, k = 0;

	RTE_LCORE_FOREACH_WORKER (lc) {
		if (k < BENCH_MAX_LCORES)
			x->lc[k++].lcore = lc;
	}
	if (k == 0) {
		/* One core for everything: the main lcore runs the load between progress lines. */
		x->main_runs = true;
		x->lc[k++].lcore = rte_get_main_lcore();
	}
	x->n = k;
	return 0;
}

static void
ctx_free(struct dpdk_ctx *x)
{
	for (unsigned int i = 0; i < x->n; i++) {
		struct dlc *lc = &x->lc[i];
		if (lc->nstash > 0)
			rte_pktmbuf_free_bulk(lc->stash, lc->nstash);
		lc->nstash = 0;
		gen_free(lc->g);
		kite_net_free(lc->net);
		rte_free(lc->scratch);
	}
	if (x->port != UINT16_MAX && x->nflows > 0)
		kite_steer_flow_remove(x->port, x->flows, x->nflows);
	free(x->flows);
	if (x->port != UINT16_MAX) {
		rte_eth_dev_stop(x->port);
		rte_eth_dev_close(x->port);
	}
	for (unsigned int i = 0; i < x->n; i++)
		rte_mempool_free(x->lc[i].pool);
	kite_port_unmap_guard(NULL);
	rte_free(x->qs);
	x->qs = NULL;
	free(x->ctl_buf);
	rte_free(x->lc);
}

int
run_dpdk(struct bench_options *o, int argc, char **argv)
{
	static struct dpdk_ctx ctx;
	struct dpdk_ctx *x = &ctx;
	struct bench_driver d;
	char err[256];
	int rc = -EINVAL;
	struct kite_net_conf nc;
	uint32_t room;
	long nf;

	if (rte_eal_init(argc, argv) < 0) {
		fprintf(stderr, "kite-bench: EAL init failed: %s\n", rte_strerror(rte_errno));
		return -EINVAL;
	}
	memset(x, 0, sizeof(*x));
	x->o = o;
	x->port = UINT16_MAX;
	x->lc = rte_zmalloc("kite_bench_lc", sizeof(*x->lc) * BENCH_MAX_LCORES,
			    RTE_CACHE_LINE_SIZE);
	if (x->lc == NULL)
		goto out;
	if (workload_init(&x->w, o, rte_get_tsc_hz(), err, sizeof(err)) != 0) {
		fprintf(stderr, "kite-bench: %s\n", err);
		goto out;
	}
	x->our_ip = rte_cpu_to_be_32(o->src_ip);
	x->srv_ip = rte_cpu_to_be_32(o->server);
	if (o->cluster[0] != '\0') {
		if (o->echo || o->server_workers > 1) {
			fprintf(stderr, "kite-bench: --cluster takes neither --echo nor "
					"--server-workers\n");
			goto out;
		}
		if (bench_route_init(&x->w, o, err, sizeof(err)) != 0) {
			fprintf(stderr, "kite-bench: %s\n", err);
			goto out;
		}
		/* STAT and the other control requests go to the first member. */
		x->srv_ip = rte_cpu_to_be_32(x->w.dest[0].ip);
	}
	x->frag_payload = (o->mtu - IP4_LEN) & ~7u;
	x->max_frames = frames_for(x, x->w.max_dgram);
	if (x->max_frames > STASH) {
		fprintf(stderr, "kite-bench: a datagram of %u bytes needs more than %d fragments\n",
			x->w.max_dgram, STASH);
		goto out;
	}
	lcores_setup(x);
	if (unmap_guard_setup(x) != 0)
		goto out;
	if (o->server_workers > 1 &&
	    (o->server_workers != x->n || o->partitions < o->server_workers || o->echo)) {
		fprintf(stderr,
			"kite-bench: --server-workers %u needs as many load lcores (have %u) "
			"and at least as many --partitions, and no --echo\n",
			o->server_workers, x->n);
		goto out;
	}

	room = RTE_PKTMBUF_HEADROOM + o->mtu + ETH_LEN + RTE_ETHER_CRC_LEN;
	if (room < RTE_MBUF_DEFAULT_BUF_SIZE)
		room = RTE_MBUF_DEFAULT_BUF_SIZE;
	for (unsigned int i = 0; i < x->n; i++) {
		struct dlc *lc = &x->lc[i];
		int socket = (int)rte_lcore_to_socket_id(lc->lcore);
		char name[RTE_MEMPOOL_NAMESIZE];
		struct gen_conf gc;

		lc->x = x;
		lc->idx = i;
		lc->queue = (uint16_t)i;
		lc->sport_base = (uint16_t)(o->src_port + i * o->flows);
		snprintf(name, sizeof(name), "kb_pool_%u", i);
		lc->pool = rte_pktmbuf_pool_create(name, o->mbufs, 256, 0, (uint16_t)room, socket);
		lc->scratch = rte_malloc_socket("kb_scratch", SCRATCH, RTE_CACHE_LINE_SIZE, socket);
		memset(&gc, 0, sizeof(gc));
		gc.w = &x->w;
		gc.id = i;
		gc.nthreads = x->n;
		gc.window = o->window;
		gc.flows = o->flows;
		gc.seed = o->seed;
		gc.rate = o->rate / x->n / x->w.batch;
		gc.max_reqs = o->max_requests;
		gc.capture = (i == 0 && o->write_pcap[0]) ? o->pcap_count : 0;
		gc.part_mod = o->server_workers;
		gc.part_sel = i;
		gc.eal = true;
		gc.socket_id = socket;
		lc->g = gen_create(&gc);
		x->gens[i] = lc->g;
		if (lc->pool == NULL || lc->scratch == NULL || lc->g == NULL) {
			fprintf(stderr,
				"kite-bench: out of memory for lcore %u (try fewer --mbufs, "
				"--window or more -m)\n",
				lc->lcore);
			goto out;
		}
	}
	if (o->src_port + x->n * o->flows - 1 > 65535) {
		fprintf(stderr, "kite-bench: --src-port + lcores x --flows runs past 65535\n");
		goto out;
	}
	rc = port_setup(x);
	if (rc != 0)
		goto out;
	memset(&nc, 0, sizeof(nc));
	nc.mac = x->mac;
	nc.ip = o->src_ip;
	nc.netmask = o->netmask;
	nc.udp_port = (uint16_t)o->src_port;
	nc.udp_ports = (uint16_t)(x->n * o->flows);
	nc.mtu = (uint16_t)o->mtu;
	nc.frag_max_flows = 16;
	for (unsigned int i = 0; i < x->n; i++) {
		nc.socket_id = (int)rte_lcore_to_socket_id(x->lc[i].lcore);
		x->lc[i].net = kite_net_create(&nc, i);
		if (x->lc[i].net == NULL) {
			fprintf(stderr,
				"kite-bench: bad address settings (--src-ip, --netmask): %s\n",
				rte_strerror(rte_errno));
			rc = -EINVAL;
			goto out;
		}
	}
	if (o->dst_mac[0] != '\0') {
		if (parse_mac(o->dst_mac, &x->peer) != 0) {
			fprintf(stderr, "kite-bench: --dst-mac '%s' is not a MAC address\n",
				o->dst_mac);
			rc = -EINVAL;
			goto out;
		}
	} else if (o->echo) {
		/* Any unicast address: testpmd's macswap sends it back whatever it is. */
		parse_mac("02:00:00:00:00:02", &x->peer);
	} else if (x->w.cluster) {
		/* Every member's MAC, before the load (the route is fixed in dpdk mode). */
		for (uint32_t dd = 0; dd < x->w.ndest; dd++) {
			x->dip[dd] = rte_cpu_to_be_32(x->w.dest[dd].ip);
			if (dd > 0 && x->w.dest[dd].ip == x->w.dest[dd - 1].ip) {
				x->dmac[dd] = x->dmac[dd - 1];
				continue;
			}
			rc = arp_resolve(x, x->w.dest[dd].ip, &x->dmac[dd]);
			if (rc != 0) {
				fprintf(stderr, "kite-bench: no ARP answer from member %u.%u.%u.%u in "
						"%d s\n",
					x->w.dest[dd].ip >> 24, (x->w.dest[dd].ip >> 16) & 255,
					(x->w.dest[dd].ip >> 8) & 255, x->w.dest[dd].ip & 255,
					ARP_WAIT_S);
				goto out;
			}
		}
		x->peer = x->dmac[0];
	} else {
		rc = arp_resolve(x, rte_be_to_cpu_32(x->srv_ip), &x->peer);
		if (rc != 0) {
			fprintf(stderr, "kite-bench: no ARP answer for the server in %d s\n",
				ARP_WAIT_S);
			goto out;
		}
	}
	printf("server " RTE_ETHER_ADDR_PRT_FMT "%s\n", RTE_ETHER_ADDR_BYTES(&x->peer),
	       o->echo ? " (echo: requests come back as replies)" : "");
	for (unsigned int i = 0; i < x->n; i++)
		tmpl_init(&x->lc[i]);
	x->ctl_buf = malloc((size_t)KITE_MAX_REPLY_DGRAMS * x->w.reply_stride);
	if (x->ctl_buf == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (x->w.cluster)
		snprintf(x->target, sizeof(x->target), "%s cluster %.40s", o->port, o->cluster);
	else
		snprintf(x->target, sizeof(x->target), "%s %u.%u.%u.%u:%u", o->port,
			 o->server >> 24, (o->server >> 16) & 255, (o->server >> 8) & 255,
			 o->server & 255, o->udp_port);

	memset(&d, 0, sizeof(d));
	d.arg = x;
	d.nthreads = x->n;
	d.gens = x->gens;
	d.launch = drv_launch;
	d.finished = drv_finished;
	d.wait = drv_wait;
	d.server_stats = o->echo ? NULL : drv_server_stats;
	d.poll_main = x->main_runs ? drv_poll_main : NULL;
	if (o->echo)
		o->preload = false;
	rc = bench_run(o, &x->w, &d, o->echo ? "dpdk-echo" : "dpdk", x->target);

	if (o->write_pcap[0] != '\0') {
		struct pcap_addrs a;
		memcpy(a.src_mac, x->mac.addr_bytes, 6);
		memcpy(a.dst_mac, x->peer.addr_bytes, 6);
		a.src_ip = o->src_ip;
		a.dst_ip = o->server;
		a.src_port_base = (uint16_t)o->src_port;
		a.mtu = (uint16_t)o->mtu;
		nf = pcap_write(o->write_pcap, x->gens, 1, &a, err, sizeof(err));
		if (nf < 0) {
			fprintf(stderr, "kite-bench: %s\n", err);
			if (rc == 0)
				rc = (int)nf;
		} else {
			printf("pcap: %ld frames in %s\n", nf, o->write_pcap);
		}
	}
out:
	ctx_free(x);
	bench_route_fini();
	rte_eal_cleanup();
	return rc;
}
