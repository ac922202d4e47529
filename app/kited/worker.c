/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "kite_conf.h"
#include "kite_port.h"
#include "kited.h"
#include "kited_api.h"

#define PREFETCH_AHEAD 4

static struct handoff_meta *
meta(struct rte_mbuf *m)
{
	return rte_mbuf_to_priv(m);
}

static uint8_t *
reply_alloc(void *arg, unsigned int idx)
{
	struct dgram_ctx *c = arg;
	struct worker *w = c->w;
	struct rte_mbuf *m = rte_pktmbuf_alloc(w->pool);

	if (m == NULL)
		return NULL;
	w->pend[idx] = m;
	return rte_pktmbuf_mtod(m, uint8_t *);
}

static void
tx_flush(struct worker *w)
{
	unsigned int sent = 0;

	/* A few tries absorb a momentarily full TX ring; the rest is counted. */
	for (int tries = 0; tries < 4 && sent < w->ntx; tries++)
		sent += rte_eth_tx_burst(w->port, w->queue, w->tx + sent,
					 (uint16_t)(w->ntx - sent));
	if (sent < w->ntx) {
		w->stats->loop.tx_full += w->ntx - sent;
		rte_pktmbuf_free_bulk(w->tx + sent, w->ntx - sent);
	}
	w->ntx = 0;
}

static void
tx_add(struct worker *w, struct rte_mbuf *m)
{
	if (w->ntx == RTE_DIM(w->tx))
		tx_flush(w);
	w->tx[w->ntx++] = m;
	if (unlikely(w->node->ablate & KITED_ABLATE_TXBATCH))
		tx_flush(w);
}

/* What the network stack has to send: ARP requests, replies whose next hop is known now. */
static void
net_pending(struct worker *w, uint64_t tsc)
{
	struct rte_mbuf *out[32];
	unsigned int k;

	do {
		k = kite_net_pending(w->net, w->pool, tsc, out, RTE_DIM(out));
		for (unsigned int i = 0; i < k; i++)
			tx_add(w, out[i]);
	} while (k == RTE_DIM(out));
}

void
worker_tx(struct worker *w, struct rte_mbuf *m)
{
	tx_add(w, m);
}

void
worker_reply(struct worker *w, struct rte_mbuf *m, const struct kite_net_udp *u)
{
	/* From the admin endpoint's JSON API (sender 0.0.0.0: never one from the network). */
	if (unlikely(u->src_ip == 0)) {
		kited_api_deliver(w, m, u);
		return;
	}
	int rc = kite_net_udp_reply(w->net, m, u);

	if (rc < 0)
		rte_pktmbuf_free(m);
	else if (rc == 0)
		tx_add(w, m);
	/* rc 1: held by the stack until ARP answers (kite_net_pending hands it back). */
}

static void
reply_done(void *arg, unsigned int n, uint8_t *const *bufs, const uint16_t *lens, bool inplace)
{
	struct dgram_ctx *c = arg;
	struct worker *w = c->w;
	/* replication = sync: replies to mutations wait for the replicas (repl.c). */
	const bool hold = unlikely(c->sync_n > 0 || c->sync_over);

	(void)bufs; /* the mbufs behind them are known: pend[], or the request's */
	for (unsigned int i = 0; i < n; i++) {
		struct rte_mbuf *m = w->pend[i];

		c->tx_ip_bytes += (uint32_t)lens[i] + KITE_GUARD_L3L4;
		if (i == 0 && inplace) {
			/* Answered in the request's own mbuf: make the payload its data. */
			m = c->m;
			c->reused = true;
			m->data_off = (uint16_t)(m->data_off + c->u.payload_off);
			m->ol_flags = 0;
			m->packet_type = 0;
		}
		m->data_len = lens[i];
		m->pkt_len = lens[i];
		if (hold) {
			w->pend[i] = m;
			continue;
		}
		worker_reply(w, m, &c->u);
	}
	if (hold)
		kited_repl_hold(w, c, w->pend, n);
}

/* A relayed text datagram's reply so far goes on with it: linked through next, lengths set. */
static void
reply_carry(void *arg, unsigned int n, uint8_t *const *bufs, const uint16_t *lens)
{
	struct dgram_ctx *c = arg;
	struct worker *w = c->w;

	(void)bufs;
	for (unsigned int i = 0; i < n; i++) {
		struct rte_mbuf *m = w->pend[i];

		m->data_len = lens[i];
		m->pkt_len = lens[i];
		m->next = i + 1 < n ? w->pend[i + 1] : NULL;
	}
	c->chain = n > 0 ? w->pend[0] : NULL;
}

/* ... and this worker takes it up again (the engine knows how many it carried). */
static void
reply_resume(void *arg, unsigned int n, uint8_t **bufs, uint16_t *lens)
{
	struct dgram_ctx *c = arg;
	struct worker *w = c->w;
	struct rte_mbuf *m = c->chain;

	for (unsigned int i = 0; i < n; i++) {
		struct rte_mbuf *next = m->next;

		m->next = NULL;
		m->nb_segs = 1;
		w->pend[i] = m;
		bufs[i] = rte_pktmbuf_mtod(m, uint8_t *);
		lens[i] = m->data_len;
		m = next;
	}
	c->chain = NULL;
}

/* Free a relayed text datagram's reply so far (a list through next: one free frees it all). */
static void
chain_free(struct rte_mbuf **chain)
{
	if (*chain != NULL)
		rte_pktmbuf_free(*chain);
	*chain = NULL;
}

/* A relayed text datagram (and its reply so far) that cannot go on: dropped, counted. */
void
worker_relay_drop(struct worker *w, struct rte_mbuf *m)
{
	chain_free(&meta(m)->chain);
	rte_pktmbuf_free(m);
	w->stats->loop.relay_drops++;
}

void
worker_relay(struct worker *w, struct rte_mbuf *m, uint16_t to)
{
	if (rte_ring_mp_enqueue(w->node->workers[to].handoff, m) != 0) {
		w->stats->loop.handoff_full++;
		worker_relay_drop(w, m);
		return;
	}
	w->stats->loop.handoff_out++;
	w->stats->loop.text_relays++;
}

static void verdict_to_meta(struct handoff_meta *h, const struct kite_engine_dgram *d);

/*
 * A text datagram goes on to the worker that answers its next command
 * (kite_engine_relay), as the same mbuf, with its reply so far. Under
 * replication = sync, this worker's writes are acknowledged first.
 */
static void
relay_on(struct worker *w, struct dgram_ctx *c, const struct kite_engine_dgram *d)
{
	struct rte_mbuf *m = c->m;
	struct handoff_meta *h = meta(m);

	if (unlikely(rte_mbuf_refcnt_read(m) != 1)) {
		/*
		 * Never shared (text goes to one worker at a time); should it be,
		 * its meta is not ours to write: dropped, counted.
		 */
		chain_free(&c->chain);
		w->stats->loop.relay_drops++;
		return;
	}
	c->reused = true; /* the mbuf goes on: not released here */
	c->split = true;  /* its reply leaves elsewhere: the guard banks the budget */
	verdict_to_meta(h, d);
	h->u = c->u;
	h->relay = d->relay;
	h->chain = c->chain;
	c->chain = NULL;
	if (unlikely(c->sync_n > 0 || c->sync_over)) {
		kited_repl_hold_relay(w, c, m, (uint16_t)d->relay_to);
		return;
	}
	worker_relay(w, m, (uint16_t)d->relay_to);
}

static void shares_set(struct worker *w, const struct kite_guard_tenants *t);

int
worker_setup(struct node *n, struct worker *w, uint16_t id, unsigned int lcore)
{
	struct kite_engine_conf ec;
	char name[RTE_RING_NAMESIZE];
	const char *what;
	int rc;

	memset(w, 0, offsetof(struct worker, pend));
	w->id = id;
	w->lcore = lcore;
	w->socket = (int)rte_lcore_to_socket_id(lcore);
	w->port = n->port;
	w->queue = id;
	w->node = n;
	w->pool = n->pools[n->place.worker_pool[id]];
	w->stats = rte_zmalloc_socket("kite_wstats", sizeof(*w->stats), RTE_CACHE_LINE_SIZE,
				      w->socket);
	w->hot = rte_zmalloc_socket("kite_hot", sizeof(*w->hot), RTE_CACHE_LINE_SIZE, w->socket);
	w->scratch = rte_malloc_socket("kite_scratch",
				       (size_t)WORKER_MAX_BURST * WORKER_SCRATCH_SLOT, 0, w->socket);
	if (w->stats == NULL || w->scratch == NULL || w->hot == NULL) {
		what = "its counters and its scratch for reassembled datagrams";
		goto fail;
	}
	snprintf(name, sizeof(name), "kite_handoff_%u", id);
	w->handoff = rte_ring_create(name, n->cfg.handoff_ring, w->socket, RING_F_SC_DEQ);
	if (w->handoff == NULL) {
		what = "its handoff ring";
		goto fail;
	}
	w->guard = kite_guard_create(&n->gconf, &w->stats->guard);
	if (w->guard == NULL) {
		what = "its guard (source table)";
		goto fail;
	}
	w->tenants = n->tenants;
	kite_guard_set_tenants(w->guard, w->tenants);
	shares_set(w, w->tenants);
	n->netconf.socket_id = w->socket;
	w->net = kite_net_create(&n->netconf, id);
	if (w->net == NULL) {
		what = "its network stack (reassembly table)";
		goto fail;
	}

	memset(&ec, 0, sizeof(ec));
	ec.map = n->map;
	ec.self = id;
	ec.parts = n->parts;
	ec.max_item_size = (uint32_t)n->cfg.max_item_size;
	ec.max_payload = n->max_payload;
	ec.stats = &w->stats->engine;
	ec.stat = kited_stats_engine_stat;
	ec.stat_arg = &n->stats_src;
	ec.started = n->started;
	if (n->cfg.replicas > 0) {
		ec.repl = kited_repl_emit;
		ec.repl_arg = w;
	}
	ec.key_owned = kited_guard_key_owned;
	ec.key_owned_arg = w->guard;
	ec.text_any_keys = kite_conf_choice(KITED_TEXT_KEYS_MODES, n->cfg.text_keys) == 1;
	ec.ttl_jitter = (uint8_t)kited_ttl_jitter(n->cfg.ttl_jitter);
	ec.hot_rate = n->cfg.hot_key_rate;
	ec.hot_pub = w->hot;
	ec.no_hot = (n->ablate & KITED_ABLATE_HOTKEYS) != 0;
	ec.out.alloc = reply_alloc;
	ec.out.carry = reply_carry;
	ec.out.resume = reply_resume;
	ec.out.done = reply_done;
	ec.no_bulk = (n->ablate & KITED_ABLATE_BULK) != 0;
	ec.no_prefetch = (n->ablate & KITED_ABLATE_PREFETCH) != 0;
	ec.no_inplace = (n->ablate & KITED_ABLATE_INPLACE) != 0;
	w->engine = kite_engine_create(&ec, w->socket);
	if (w->engine == NULL) {
		what = "its engine";
		goto fail;
	}
	kite_engine_set_time(w->engine, node_now(n));
	return 0;
fail:
	/* Only the DPDK libraries set rte_errno; an rte_malloc failure is out of memory. */
	rc = w->stats == NULL || w->scratch == NULL || w->guard == NULL ? ENOMEM : rte_errno;
	if (rc == ENOMEM) {
		char msg[96];

		snprintf(msg, sizeof(msg), "worker %u: %s", id, what);
		kited_no_memory(&n->mem, msg);
	} else {
		KLOG(ERR, "worker %u: %s: %s", id, what, rte_strerror(rc));
	}
	worker_teardown(w);
	return -rc;
}

void
worker_teardown(struct worker *w)
{
	struct rte_mbuf *m;

	if (w->handoff != NULL) {
		while (rte_ring_sc_dequeue(w->handoff, (void **)&m) == 0) {
			/* A relayed text datagram carries its reply so far. */
			chain_free(&meta(m)->chain);
			rte_pktmbuf_free(m);
		}
		rte_ring_free(w->handoff);
	}
	kite_engine_free(w->engine);
	kite_guard_free(w->guard);
	kite_net_free(w->net);
	rte_free(w->scratch);
	/* stats stay until the node is freed: the control thread reads them. */
	w->handoff = NULL;
	w->engine = NULL;
	w->guard = NULL;
	w->net = NULL;
	w->scratch = NULL;
}

/* A text datagram (docs/protocol.rst) whose source is a member of the cluster. */
static bool
from_member_text(const struct worker *w, const struct kite_engine_dgram *d, uint32_t src_ip)
{
	const struct kited_cview *v = w->cview;
	const uint32_t off = KITE_FRAME_HDR_LEN + d->skip;

	if (v == NULL || v->map.n_members == 0 || d->len <= off ||
	    d->data[off] == KITE_MAGIC_REQ || d->data[off] == KITE_MAGIC_RES)
		return false;
	return kited_cview_member_ip(v, src_ip);
}

/* Point d at the UDP payload of m, copying a multi-segment datagram into scratch. */
static void
payload_of(struct worker *w, struct rte_mbuf *m, const struct kite_net_udp *u, unsigned int slot,
	   struct kite_engine_dgram *d)
{
	d->inplace = false;
	if (rte_pktmbuf_data_len(m) >= (uint32_t)u->payload_off + u->payload_len) {
		d->data = rte_pktmbuf_mtod_offset(m, const uint8_t *, u->payload_off);
		/* Reusable for the reply if nobody else holds it and a full reply fits. */
		d->inplace = m->nb_segs == 1 && RTE_MBUF_DIRECT(m) &&
			     rte_mbuf_refcnt_read(m) == 1 &&
			     m->buf_len - m->data_off - u->payload_off >= w->node->max_payload;
	} else {
		uint8_t *dst = w->scratch + (size_t)slot * WORKER_SCRATCH_SLOT;
		d->data = rte_pktmbuf_read(m, u->payload_off, u->payload_len, dst);
	}
	d->len = u->payload_len;
	d->truncated = u->truncated;
	memset(&d->relay, 0, sizeof(d->relay));
}

static bool route(struct worker *w, struct rte_mbuf *m, const struct kite_net_udp *u,
		  uint64_t mask);

/* The guard's verdict as the engine obeys it. */
static void
apply_verdict(const struct worker *w, struct kite_engine_dgram *d,
	      const struct kite_guard_verdict *v)
{
	const struct node *n = w->node;

	d->skip = v->skip;
	d->work = v->work;
	d->budget = v->budget == UINT32_MAX ? 0 : v->budget;
	d->deny = n->gconf.all_cmds & ~v->cmds;
	d->refuse = v->refuse == KITE_GUARD_REFUSE_AUTH   ? KITE_STATUS_AUTH_ERROR
		    : v->refuse == KITE_GUARD_REFUSE_RATE ? KITE_STATUS_RATE_LIMITED
							  : 0;
	d->ns = v->ns;
	d->prefix = v->prefix;
	d->prefix_len = v->prefix_len;
	d->renv = v->renv;
	d->renv_len = v->renv_len;
	/* Items carry the tenant's id as their tag (memory shares), ids up to 255. */
	d->tenant = 0;
	if (v->tenant >= 0 && w->tenants != NULL && w->tenants->t[v->tenant].id <= KITE_GUARD_TAG_MAX)
		d->tenant = (uint8_t)w->tenants->t[v->tenant].id;
}

/* The verdict travels with a handed-off datagram. */
static void
verdict_to_meta(struct handoff_meta *h, const struct kite_engine_dgram *d)
{
	h->budget = d->budget;
	h->deny = d->deny;
	h->skip = d->skip;
	h->work = d->work;
	h->refuse = d->refuse;
	h->ns = d->ns;
	h->prefix_len = d->prefix_len;
	/* A relayed datagram's verdict may be this very meta already. */
	if (d->prefix_len > 0 && d->prefix != h->prefix)
		memcpy(h->prefix, d->prefix, d->prefix_len);
	h->renv_len = d->renv_len;
	if (d->renv_len > 0 && d->renv != h->renv)
		memcpy(h->renv, d->renv, d->renv_len);
	h->tenant = d->tenant;
	memset(&h->relay, 0, sizeof(h->relay));
	h->chain = NULL;
}

static void
verdict_from_meta(struct kite_engine_dgram *d, const struct handoff_meta *h)
{
	d->budget = h->budget;
	d->deny = h->deny;
	d->skip = h->skip;
	d->work = h->work;
	d->refuse = h->refuse;
	d->ns = h->ns;
	d->prefix_len = h->prefix_len;
	d->prefix = h->prefix;
	d->renv_len = h->renv_len;
	d->renv = h->renv;
	d->tenant = h->tenant;
}

/* The guard answers itself (a hello's cookie, an auth refusal): a small datagram back. */
static void
guard_reply(struct worker *w, const struct kite_net_udp *u, const uint8_t *p, uint16_t len)
{
	struct rte_mbuf *r = rte_pktmbuf_alloc(w->pool);

	if (r == NULL) {
		w->stats->engine.nombuf++;
		return;
	}
	memcpy(rte_pktmbuf_mtod(r, uint8_t *), p, len);
	r->data_len = len;
	r->pkt_len = len;
	worker_reply(w, r, u);
}

/*
 * A REPL datagram? Applied or answered here when this worker owns the
 * partition of its port, else handed to the worker that does. true: it
 * was one (the caller releases its reference).
 */
static bool
repl_datagram(struct worker *w, struct rte_mbuf *m, const struct kite_net_udp *u,
	      const struct kite_engine_dgram *d)
{
	struct node *n = w->node;
	uint32_t part;
	uint16_t owner;

	if (d->len < 8 + 24 || d->data[8 + 1] != 0xe8)
		return false;
	part = (uint32_t)(u->dst_port - n->map.base_port) % n->map.partitions;
	owner = kite_topo_owner(&n->map, part);
	if (owner != w->id) {
		route(w, m, u, UINT64_C(1) << owner);
		return true;
	}
	return kited_repl_rx(w, d->data, d->len, u);
}

/* Hand m to every worker in mask except ourselves; returns true if we keep a share. */
static bool
route(struct worker *w, struct rte_mbuf *m, const struct kite_net_udp *u, uint64_t mask)
{
	const uint64_t self = UINT64_C(1) << w->id;
	struct node *n = w->node;

	meta(m)->u = *u;
	meta(m)->chain = NULL; /* only a relay carries a reply */
	for (uint16_t o = 0; o < n->n_workers; o++) {
		if (o == w->id || !(mask & (UINT64_C(1) << o)))
			continue;
		rte_pktmbuf_refcnt_update(m, 1);
		if (rte_ring_mp_enqueue(n->workers[o].handoff, m) != 0) {
			rte_pktmbuf_refcnt_update(m, -1);
			w->stats->loop.handoff_full++;
			continue;
		}
		w->stats->loop.handoff_out++;
	}
	return (mask & self) != 0;
}

/* A datagram's context for its replies, once its verdict is in d. */
static void
ctx_init(struct dgram_ctx *c, struct worker *w, struct rte_mbuf *m, const struct kite_net_udp *u,
	 const struct kite_engine_dgram *d, bool home)
{
	c->w = w;
	c->m = m;
	c->u = *u;
	c->reused = false;
	c->sync_n = 0;
	c->sync_silent = c->sync_over = false;
	c->renv_len = d->renv_len;
	c->guarded = home;
	c->split = false;
	c->tx_ip_bytes = 0;
	c->chain = home ? NULL : meta(m)->chain;
}

/*
 * Every request this burst served took `cycles` from RX to TX: counted in
 * its command's histogram (a few compares per burst, not per request).
 */
static inline void
service_time(struct worker *w, uint64_t cycles)
{
	const uint64_t *served = w->stats->engine.cmd;

	for (unsigned int c = 0; c < KITE_CMD_MAX; c++) {
		const uint64_t d = served[c] - w->served_before[c];

		if (d != 0) {
			kite_hist_add(&w->stats->service[c], cycles, d);
			w->served_before[c] = served[c];
		}
	}
}

unsigned int
worker_poll(struct worker *w)
{
	struct node *n = w->node;
	struct rte_mbuf *pkts[WORKER_MAX_BURST], *done[WORKER_MAX_BURST];
	struct kite_engine_dgram dg[WORKER_MAX_BURST];
	struct dgram_ctx ctx[WORKER_MAX_BURST];
	unsigned int nrx, nh, nd = 0, nhome, nfree = 0;
	uint64_t tsc = rte_rdtsc();
	const uint64_t now_us = node_now_us(n, tsc);
	const uint64_t self = UINT64_C(1) << w->id;
	struct kite_net_udp u;

	nrx = rte_eth_rx_burst(w->port, w->queue, pkts, (uint16_t)n->cfg.burst);
	/* Handed-off datagrams share the burst, so one burst never exceeds WORKER_MAX_BURST. */
	nh = rte_ring_sc_dequeue_burst(w->handoff, (void **)pkts + nrx,
				       (unsigned int)n->cfg.burst - nrx, NULL);
	w->stats->loop.polls++;
	if (nrx + nh == 0) {
		w->stats->loop.idle_polls++;
		return 0;
	}

	/*
	 * The network stack over the whole burst first (its code stays hot).
	 * Stage 1 of the prefetch pipeline: headers of the next packets; the
	 * index lookup prefetches buckets and items, the engine values.
	 */
	const unsigned int ahead = (n->ablate & KITED_ABLATE_PREFETCH) ? 0 : PREFETCH_AHEAD;
	for (unsigned int i = 0; i < nrx && i < ahead; i++)
		rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
	for (unsigned int i = 0; i < nrx; i++) {
		struct rte_mbuf *m = pkts[i];

		if (i + ahead < nrx && ahead > 0)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + ahead], void *));
		switch (kite_net_rx(w->net, &m, tsc, &u)) {
		case KITE_NET_UDP:
			/* Located (and linearised) once, for routing and for the engine. */
			payload_of(w, m, &u, nd, &dg[nd]);
			/* Node-to-node replication goes to the worker of its port's partition. */
			if (unlikely(n->repl_on) && repl_datagram(w, m, &u, &dg[nd])) {
				done[nfree++] = m;
				break;
			}
			/* The guard: drop, answer itself, or pass with a verdict. */
			kite_guard_check(w->guard, (uint8_t *)(uintptr_t)dg[nd].data, dg[nd].len,
					 u.src_ip, u.src_port, now_us, &ctx[nd].v);
			if (unlikely(ctx[nd].v.action != KITE_GUARD_PASS)) {
				if (ctx[nd].v.action == KITE_GUARD_REPLY)
					guard_reply(w, &u, ctx[nd].v.reply, ctx[nd].v.reply_len);
				done[nfree++] = m;
				break;
			}
			apply_verdict(w, &dg[nd], &ctx[nd].v);
			/*
			 * Nodes speak binary to each other: text from a member's
			 * address is spoofed, and its errors must not go there.
			 */
			if (unlikely(from_member_text(w, &dg[nd], u.src_ip))) {
				w->stats->loop.text_from_member++;
				done[nfree++] = m;
				break;
			}
			ctx_init(&ctx[nd], w, m, &u, &dg[nd], true);
			dg[nd].home = true;
			dg[nd].out_arg = &ctx[nd];
			nd++;
			break;
		case KITE_NET_REPLY:
			tx_add(w, m);
			break;
		case KITE_NET_HELD:
			break;
		case KITE_NET_DROP:
			rte_pktmbuf_free(m);
			break;
		}
	}
	/*
	 * Engine phase 1: each datagram parsed once, and handed to the other
	 * workers that own keys in it; one this worker answers nothing of is
	 * withdrawn again (its mbuf is only released below).
	 */
	nhome = nd;
	for (unsigned int i = 0; i < nhome; i++) {
		uint64_t mask = kite_engine_parse(w->engine, &dg[i]);

		if (mask == self)
			continue;
		w->stats->loop.steer_misses++;
		if (dg[i].budget != 0) {
			/* The bound is shared by every worker that answers a part (0 would mean none). */
			dg[i].budget /= (uint32_t)__builtin_popcountll(mask);
			if (dg[i].budget == 0)
				dg[i].budget = 1;
			ctx[i].split = true;
		}
		verdict_to_meta(meta(ctx[i].m), &dg[i]);
		if (!route(w, ctx[i].m, &ctx[i].u, mask))
			kite_engine_withdraw(w->engine);
		else if (rte_mbuf_refcnt_read(ctx[i].m) != 1)
			/* Shared with another worker now: the reply needs its own mbuf. */
			dg[i].inplace = false;
	}
	for (unsigned int i = nrx; i < nrx + nh; i++) {
		struct rte_mbuf *m = pkts[i];
		u = meta(m)->u;
		if (unlikely(u.src_ip == 0))
			w->stats->loop.api_requests++;
		else
			w->stats->loop.handoff_in++;
		payload_of(w, m, &u, nd, &dg[nd]);
		if (unlikely(n->repl_on) && repl_datagram(w, m, &u, &dg[nd])) {
			done[nfree++] = m;
			continue;
		}
		verdict_from_meta(&dg[nd], meta(m));
		/* A JSON API request of a tenant draws on the tenant's rate as its datagrams do. */
		if (unlikely(u.src_ip == 0) && meta(m)->api_tenant >= 0 &&
		    !kite_guard_tenant_take(w->guard, meta(m)->api_tenant, 1, now_us))
			dg[nd].refuse = KITE_STATUS_RATE_LIMITED;
		dg[nd].relay = meta(m)->relay;
		ctx_init(&ctx[nd], w, m, &u, &dg[nd], false);
		/* A JSON API request has no other home: this worker answers all of it (refusals too). */
		dg[nd].home = u.src_ip == 0;
		dg[nd].out_arg = &ctx[nd];
		kite_engine_parse(w->engine, &dg[nd]);
		nd++;
	}
	/* Phase 2. */
	if (nd > 0)
		kite_engine_execute(w->engine);
	/* Text datagrams that go on to the worker of their next command. */
	for (unsigned int i = 0; i < nd; i++)
		if (unlikely(dg[i].relay_to >= 0))
			relay_on(w, &ctx[i], &dg[i]);
	/* The guard learns what each datagram it judged cost: requests and reply bytes. */
	for (unsigned int i = 0; i < nhome; i++)
		if (ctx[i].guarded)
			kite_guard_account(w->guard, &ctx[i].v, dg[i].nreq,
					   ctx[i].split && ctx[i].v.budget != UINT32_MAX
						   ? ctx[i].v.budget
						   : ctx[i].tx_ip_bytes,
					   now_us);
	/* Requests go back to the pool, except those that became replies. */
	for (unsigned int i = 0; i < nd; i++)
		if (!ctx[i].reused)
			done[nfree++] = ctx[i].m;
	if (nfree > 0)
		rte_pktmbuf_free_bulk(done, nfree);
	if (w->repl != NULL)
		kited_repl_flush(w);
	net_pending(w, tsc);
	if (w->ntx > 0)
		tx_flush(w);
	const uint64_t took = rte_rdtsc() - tsc;
	w->stats->loop.busy_cycles += took;
	if (likely(!(n->ablate & KITED_ABLATE_LATENCY)))
		service_time(w, took);
	return nrx + nh;
}

/* The tenants' memory shares in this worker's partitions (the owner's thread sets them). */
static void
shares_set(struct worker *w, const struct kite_guard_tenants *t)
{
	struct node *n = w->node;
	const uint64_t part_bytes = n->cfg.memory / n->n_parts;

	for (uint32_t p = 0; p < n->n_parts; p++) {
		if (kite_topo_owner(&n->map, p) != w->id)
			continue;
		for (unsigned int tag = 1; tag <= KITE_GUARD_TAG_MAX; tag++)
			kite_store_set_share(n->parts[p], (uint8_t)tag, 0);
		for (unsigned int i = 0; t != NULL && i < t->n; i++)
			if (t->t[i].mem_pct != 0)
				kite_store_set_share(n->parts[p], (uint8_t)t->t[i].id,
						     part_bytes * t->t[i].mem_pct / 100);
	}
}

void
worker_iterate(struct worker *w, struct worker_idle *st)
{
	struct node *n = w->node;
	uint64_t now = rte_rdtsc();
	/*
	 * Between bursts: no request sees two maps. The quiescent state comes
	 * first: from then on the old view may be freed, so nothing of it is
	 * read again (replication keeps what it compares in its own arrays).
	 */
	const struct kited_cview *v = kited_cluster_worker_turn(&n->cpub, w->id);

	/* Likewise the tenants table (SIGHUP replaces it; guard.c frees the old one later). */
	const struct kite_guard_tenants *t = __atomic_load_n(&n->tenants, __ATOMIC_ACQUIRE);
	if (unlikely(t != w->tenants)) {
		w->tenants = t;
		kite_guard_set_tenants(w->guard, t);
		shares_set(w, t);
	}
	if (v != w->cview) {
		w->cview = v;
		kite_engine_set_cluster(w->engine, v != NULL ? &v->ec : NULL);
		if (w->repl != NULL)
			kited_repl_view_change(w, v);
	}
	if (now - st->last_tick > n->tsc_hz / 100) {
		st->last_tick = now;
		kite_engine_set_time(w->engine, node_now(n));
		kite_net_tick(w->net, now);
	}
	if (worker_poll(w) > 0) {
		st->idle = 0;
		st->last_work = now;
		st->sleep_us = 0;
		return;
	}
	/* Held replies and ARP go on without traffic too. */
	net_pending(w, now);
	if (w->ntx > 0)
		tx_flush(w);
	if (w->repl != NULL) {
		/* Timers and backfill go on without traffic; what they send leaves now. */
		kited_repl_idle(w);
		if (w->ntx > 0)
			tx_flush(w);
	}
	/*
	 * Back off when idle (docs/tuning.rst). adaptive: a node that just
	 * served keeps polling for idle-spin-us, so one under light load
	 * answers as fast as a busy one; after that it sleeps, 8 us first and
	 * twice as long each time up to idle-sleep-max-us, so an idle node
	 * costs a wake-up per millisecond. shared: a short spin, then a sleep
	 * per empty poll, so several nodes and etcd share two CPUs.
	 */
	switch (n->idle_mode) {
	case KITED_IDLE_ADAPTIVE:
		if (now - st->last_work < n->idle_spin_tsc) {
			rte_pause();
			return;
		}
		st->sleep_us = st->sleep_us == 0 ? 8 : st->sleep_us * 2;
		if (st->sleep_us > n->cfg.idle_sleep_max_us)
			st->sleep_us = n->cfg.idle_sleep_max_us;
		break;
	case KITED_IDLE_SHARED:
		if (++st->idle < n->cfg.idle_polls) {
			rte_pause();
			return;
		}
		st->sleep_us = n->cfg.idle_sleep_us;
		break;
	default:
		rte_pause();
		return;
	}
	/* Asleep, a worker holds no view: the control thread need not wait for it. */
	rte_rcu_qsbr_thread_offline(n->cpub.qs, w->id);
	rte_delay_us_sleep(st->sleep_us);
	rte_rcu_qsbr_thread_online(n->cpub.qs, w->id);
}

void
worker_idle_init(const struct node *n, struct worker_idle *st)
{
	memset(st, 0, sizeof(*st));
	st->last_tick = st->last_work = rte_rdtsc();
	/*
	 * A thread's sleeps end up to its timer slack late: 50 us by default,
	 * longer than the sleep. 1 us lets the first sleeps be as short as
	 * asked (the wake-ups stay few: the sleeps double).
	 */
	if (n->idle_mode == KITED_IDLE_ADAPTIVE && prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0) != 0)
		KLOG(WARNING, "idle: cannot set the timer slack (%s); sleeps may end 50 us late",
		     strerror(errno));
}

int
worker_main(void *arg)
{
	struct worker *w = arg;
	struct worker_idle st;

	worker_idle_init(w->node, &st);
	KLOG(INFO, "worker %u on lcore %u (socket %d), queue %u", w->id, w->lcore, w->socket,
	     w->queue);
	rte_rcu_qsbr_thread_online(w->node->cpub.qs, w->id);
	kite_port_unmap_self(w->id);
	while (!w->node->quit)
		worker_iterate(w, &st);
	kite_port_unmap_self(RTE_QSBR_THRID_INVALID);
	rte_rcu_qsbr_thread_offline(w->node->cpub.qs, w->id);
	return 0;
}
