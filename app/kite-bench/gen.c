/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The request generator: one per load lcore or thread, touched by nothing
 * else while a phase runs (the reporting thread only reads its counters).
 *
 * Requests are drawn one at a time (operation, key, value size) and queued
 * per destination partition, because a datagram goes to one UDP port and
 * so may only carry keys of one partition. A partition's queue becomes a
 * datagram when it holds --batch requests or the next request would not
 * fit the MTU. Each outstanding datagram owns a slot: the frame's request
 * id names the slot (plus a generation, so a late reply to an earlier use
 * is recognised), and each request's opaque carries the slot's serial
 * number and the request's index, so every response is matched to exactly
 * one request and duplicates, strays and stale answers are counted apart.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>
#include <rte_malloc.h>

#include "kite_proto.h"
#include "kite_topo.h"

#include "bench.h"
#include "kite_guard.h"
#include "workload.h"

/* Open loop: a datagram sent this long after its intended time counts as late. */
#define LATE_US 100

enum slot_state {
	SLOT_FREE = 0,
	SLOT_PREPARED, /* bytes written, waiting for the transport */
	SLOT_INFLIGHT,
};

/* A drawn request: waiting in its partition's queue, or in a slot. */
struct req {
	uint64_t t0; /* latency starts here: arrival (open loop) or send time */
	uint32_t key;
	uint32_t vlen;
	uint8_t op;
};

struct slot {
	uint64_t t_send;
	uint64_t t_due; /* open loop: when the datagram was due to be sent */
	uint64_t got;	/* responses received, bit per request index */
	uint32_t tag;	/* serial number of the datagram, BENCH_TAG_MASK bits in opaque */
	uint16_t req_id;
	uint16_t flow;	/* the source port it went from (cookies are per source) */
	uint8_t state;
	uint8_t nreq;
	uint8_t ngot;
	bool any_rx;
	/* Reassembly of a reply that spans datagrams. */
	uint16_t rs_total;
	uint16_t rs_have;
	struct req *r;	/* batch entries */
	uint8_t *rbuf;	/* reply_dgrams * reply_stride bytes */
	uint16_t *rlen; /* payload length + 1 of each datagram seen, 0: not yet */
};

struct pqueue {
	uint32_t n;
	uint32_t bytes; /* datagram payload if sent now, frame included */
	bool carry;	/* r[n] did not fit: it starts the next datagram */
	struct req *r;	/* batch + 1 entries */
};

struct gen {
	struct gen_conf c;
	const struct workload *w;
	uint64_t rng;
	enum gen_phase phase;

	/* Slots. */
	struct slot *slots;
	uint32_t nslots;
	uint32_t slot_bits;
	uint32_t *free_stack;
	uint32_t nfree;
	uint32_t inflight;
	uint32_t serial;
	uint64_t next_expire;

	/* Per-partition queues. */
	struct pqueue *pq;
	uint32_t nparts;
	int ready; /* a queue that became a full datagram when the last one left it */

	/* Open loop. */
	double gap_mean; /* TSC cycles between datagram arrivals */
	uint64_t next_arrival;
	uint64_t late_tsc;

	/* Preload: this generator's key range and cursor, and SETs to send again. */
	uint64_t pre_lo, pre_hi, pre_next;
	struct req *retry;
	uint32_t nretry, retry_cap;

	/* Load bound. */
	uint64_t reqs_drawn;

	uint32_t version;
	/* --guard: each flow's cookie, as the node's reply envelopes gave it (zero: none yet). */
	uint8_t (*cookie)[KITE_GUARD_COOKIE_LEN];
	/*
	 * --guard mac: each flow's last AUTH stamp (unix microseconds). The
	 * node wants them increasing per source socket, and a stamp is at least
	 * the last + 1: one sequence for every flow would run ahead of the
	 * clock above a million datagrams a second, and the node refuses a
	 * stamp more than 1 s ahead.
	 */
	uint64_t *stamps;
	uint32_t flow_rr;

	/*
	 * Counters run over the whole phase (progress lines); `base` is their
	 * value at the end of warm-up, so the measured interval is st - base.
	 * The histograms restart at the end of warm-up instead, except
	 * hist_all, which feeds the per-second p99.
	 */
	struct bench_stats st;
	struct bench_stats base;
	struct hist hist;
	struct hist hist_op[OP_MAX];
	struct hist hist_all;

	/* --write-pcap capture: datagrams back to back. */
	uint8_t *cap_buf;
	size_t cap_size, cap_used;
	uint32_t cap_n, cap_max;
	struct gen_capture *cap;
};

/* Generators of DPDK lcores live in hugepage memory on their socket; others on the heap. */
static void *
bench_zalloc(size_t n, int socket, bool eal)
{
	return eal ? rte_zmalloc_socket("kite_bench", n, RTE_CACHE_LINE_SIZE, socket)
		   : calloc(1, n);
}

static void
bench_free(void *p, bool eal)
{
	if (eal)
		rte_free(p);
	else
		free(p);
}

struct gen *
gen_create(const struct gen_conf *c)
{
	const struct workload *w = c->w;
	bool eal = c->eal;
	struct gen *g;
	size_t reasm;

	g = bench_zalloc(sizeof(*g), c->socket_id, eal);
	if (g == NULL)
		return NULL;
	g->c = *c;
	g->w = w;
	g->rng = mix64(c->seed * UINT64_C(0x9e3779b97f4a7c15) + c->id + 1);
	g->nslots = c->window;
	while ((1u << g->slot_bits) < g->nslots)
		g->slot_bits++;
	g->nparts = w->cluster ? BENCH_MAX_DESTS : w->partitions;
	g->slots = bench_zalloc(sizeof(*g->slots) * g->nslots, c->socket_id, eal);
	g->free_stack = bench_zalloc(sizeof(uint32_t) * g->nslots, c->socket_id, eal);
	g->pq = bench_zalloc(sizeof(*g->pq) * g->nparts, c->socket_id, eal);
	if (g->slots == NULL || g->free_stack == NULL || g->pq == NULL)
		goto fail;
	reasm = (size_t)w->reply_dgrams * w->reply_stride;
	for (uint32_t i = 0; i < g->nslots; i++) {
		struct slot *s = &g->slots[i];
		s->r = bench_zalloc(sizeof(struct req) * w->batch, c->socket_id, eal);
		s->rbuf = bench_zalloc(reasm, c->socket_id, eal);
		s->rlen = bench_zalloc(sizeof(uint16_t) * w->reply_dgrams, c->socket_id, eal);
		if (s->r == NULL || s->rbuf == NULL || s->rlen == NULL)
			goto fail;
		/* Random generation start: a restarted client does not reuse ids at once. */
		s->req_id = (uint16_t)(i | (rng_next(&g->rng) << g->slot_bits));
	}
	/* At most every request of every slot can need another try at once. */
	g->retry_cap = g->nslots * w->batch;
	g->retry = bench_zalloc(sizeof(struct req) * g->retry_cap, c->socket_id, eal);
	if (g->retry == NULL)
		goto fail;
	for (uint32_t p = 0; p < g->nparts; p++) {
		g->pq[p].r = bench_zalloc(sizeof(struct req) * (w->batch + 1), c->socket_id, eal);
		if (g->pq[p].r == NULL)
			goto fail;
		g->pq[p].bytes = w->hdr;
	}
	if (c->capture > 0) {
		/* Bound the capture's memory; a short pcap is better than none. */
		size_t per = w->max_dgram;
		size_t want = per * c->capture;
		g->cap_size = want < (256u << 20) ? want : (256u << 20);
		g->cap_max = c->capture;
		g->cap_buf = malloc(g->cap_size);
		g->cap = calloc(c->capture, sizeof(*g->cap));
		if (g->cap_buf == NULL || g->cap == NULL)
			goto fail;
	}
	if (c->rate > 0)
		g->gap_mean = (double)w->tsc_hz / c->rate;
	g->late_tsc = w->tsc_hz / 1000000 * LATE_US;
	if (w->guard != 0) {
		g->cookie = calloc(c->flows, sizeof(*g->cookie));
		g->stamps = calloc(c->flows, sizeof(*g->stamps));
		if (g->cookie == NULL || g->stamps == NULL)
			goto fail;
	}
	g->version = (uint32_t)c->id << 24;
	hist_reset(&g->hist);
	hist_reset(&g->hist_all);
	for (unsigned int op = 0; op < OP_MAX; op++)
		hist_reset(&g->hist_op[op]);
	return g;
fail:
	gen_free(g);
	return NULL;
}

void
gen_free(struct gen *g)
{
	bool eal;

	if (g == NULL)
		return;
	eal = g->c.eal;
	if (g->slots != NULL) {
		for (uint32_t i = 0; i < g->nslots; i++) {
			bench_free(g->slots[i].r, eal);
			bench_free(g->slots[i].rbuf, eal);
			bench_free(g->slots[i].rlen, eal);
		}
	}
	if (g->pq != NULL)
		for (uint32_t p = 0; p < g->nparts; p++)
			bench_free(g->pq[p].r, eal);
	bench_free(g->retry, eal);
	bench_free(g->slots, eal);
	bench_free(g->free_stack, eal);
	bench_free(g->pq, eal);
	free(g->cap_buf);
	free(g->cap);
	free(g->cookie);
	free(g->stamps);
	bench_free(g, eal);
}

void
gen_mark_warm(struct gen *g)
{
	g->base = g->st;
	hist_reset(&g->hist);
	for (unsigned int op = 0; op < OP_MAX; op++)
		hist_reset(&g->hist_op[op]);
}

void
gen_measured(const struct gen *g, struct bench_stats *out)
{
	const uint64_t *a = (const uint64_t *)&g->st, *b = (const uint64_t *)&g->base;
	uint64_t *o = (uint64_t *)out;

	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		o[i] = a[i] - b[i];
}

void
gen_start(struct gen *g, enum gen_phase p, uint64_t now)
{
	const struct workload *w = g->w;

	g->phase = p;
	/* Whatever a previous phase left queued or outstanding is abandoned. */
	g->nfree = 0;
	for (uint32_t i = g->nslots; i-- > 0;) {
		g->slots[i].state = SLOT_FREE;
		g->free_stack[g->nfree++] = i;
	}
	g->inflight = 0;
	for (uint32_t q = 0; q < g->nparts; q++) {
		g->pq[q].n = 0;
		g->pq[q].bytes = g->w->hdr;
		g->pq[q].carry = false;
	}
	g->ready = -1;
	g->nretry = 0;
	g->reqs_drawn = 0;
	g->next_expire = now;
	g->next_arrival = now;
	memset(&g->st, 0, sizeof(g->st));
	hist_reset(&g->hist_all);
	gen_mark_warm(g);
	if (p == PHASE_PRELOAD && g->c.part_mod > 1) {
		/* Every generator walks all keys and stores those of its partitions. */
		g->pre_lo = 0;
		g->pre_hi = w->keys;
		g->pre_next = 0;
	} else if (p == PHASE_PRELOAD) {
		uint64_t share = w->keys / g->c.nthreads, extra = w->keys % g->c.nthreads;
		g->pre_lo = share * g->c.id + (g->c.id < extra ? g->c.id : extra);
		g->pre_hi = g->pre_lo + share + (g->c.id < extra ? 1 : 0);
		g->pre_next = g->pre_lo;
	}
}

/*
 * The destination of a key: its partition port on --server, or with
 * --cluster the owner's partition port by the current map (the function
 * libkite and the nodes use: vbucket = XXH64 mod V, partition = vbucket
 * mod the owner's partitions).
 */
static inline uint32_t
partition_of(const struct gen *g, uint32_t key, enum bench_op op)
{
	uint8_t kb[KITE_KEY_MAX];

	if (g->nparts == 1)
		return 0;
	key_write(kb, g->w->key_size, key, op == OP_INCR ? KEY_PREFIX_COUNTER : KEY_PREFIX_VALUE);
	if (g->w->cluster) {
		const struct bench_route *r =
			atomic_load_explicit(&((struct workload *)g->w)->route, memory_order_acquire);
		uint32_t vb = kite_cluster_vbucket(kb, (uint16_t)g->w->key_size, r->map.vbuckets);
		uint8_t m = kite_cluster_owner(&r->map, vb);

		return r->first[m] + (vb & (r->map.members[m].partitions - 1u));
	}
	return kite_topo_key_partition(kb, (uint16_t)g->w->key_size, g->nparts);
}

/* A queue is a datagram when it holds --batch requests or no further byte fits. */
static inline bool
queue_full(const struct gen *g, const struct pqueue *q)
{
	return q->n == g->w->batch || q->bytes >= g->w->req_budget;
}

/*
 * Queue one request on its partition. Returns the partition when its
 * queue is now a full datagram, else -1. A request that would push the
 * datagram past the MTU closes it without itself and starts the next one,
 * so small requests still share datagrams when some values are large; a
 * request larger than the MTU on its own goes alone (as IP fragments).
 */
static inline int
enqueue(struct gen *g, uint32_t p, uint32_t key, enum bench_op op, uint32_t vlen, uint64_t t0)
{
	const struct workload *w = g->w;
	struct pqueue *q = &g->pq[p];
	uint32_t size = workload_req_bytes(w, op, vlen);
	bool spill = q->n > 0 && q->bytes + size > w->req_budget;
	struct req *r = &q->r[q->n];

	r->key = key;
	r->op = (uint8_t)op;
	r->vlen = vlen;
	r->t0 = t0;
	if (spill) {
		q->carry = true;
		return (int)p;
	}
	q->n++;
	q->bytes += size;
	return queue_full(g, q) ? (int)p : -1;
}

/*
 * Whether this generator sends partition p: all of them, unless the
 * server's workers each answer on their own queue and we feed just one
 * (--server-workers).
 */
static inline bool
mine(const struct gen *g, uint32_t p)
{
	return g->c.part_mod <= 1 || p % g->c.part_mod == g->c.part_sel;
}

/* The queue that is already a datagram, if any. */
static inline int
take_ready(struct gen *g)
{
	int p = g->ready;

	g->ready = -1;
	return p;
}

/* Draw requests until some partition has a datagram's worth. */
static int
fill_load(struct gen *g, uint64_t t0)
{
	const struct workload *w = g->w;

	int p = take_ready(g);

	if (p >= 0)
		return p;
	for (;;) {
		enum bench_op op = draw_op(w, &g->rng);
		uint32_t key = (uint32_t)draw_key(w, &g->rng);
		uint32_t vlen = op == OP_SET ? draw_vlen(w, &g->rng) : 0;
		uint32_t part = partition_of(g, key, op);

		/* Another lcore's partition: its share of the same distribution. */
		if (!mine(g, part))
			continue;
		g->reqs_drawn++;
		p = enqueue(g, part, key, op, vlen, t0);
		if (p >= 0)
			return p;
	}
}

/*
 * Preload: SETs that went unanswered first (the cache is to hold every
 * key, and a lossy UDP server loses some), then the next keys of our
 * range; at its end, the partly filled queues.
 */
static int
fill_preload(struct gen *g, uint64_t t0)
{
	const struct workload *w = g->w;
	int p = take_ready(g);

	if (p >= 0)
		return p;
	while (g->nretry > 0) {
		const struct req *r = &g->retry[--g->nretry];
		p = enqueue(g, partition_of(g, r->key, OP_SET), r->key, OP_SET, r->vlen, t0);
		if (p >= 0)
			return p;
	}
	while (g->pre_next < g->pre_hi) {
		uint32_t key = (uint32_t)g->pre_next++;
		uint32_t part = partition_of(g, key, OP_SET);
		if (!mine(g, part))
			continue;
		p = enqueue(g, part, key, OP_SET, draw_vlen(w, &g->rng), t0);
		if (p >= 0)
			return p;
	}
	for (uint32_t q = 0; q < g->nparts; q++)
		if (g->pq[q].n > 0 || g->pq[q].carry)
			return (int)q;
	return -1;
}

bool
gen_exhausted(const struct gen *g)
{
	return g->phase == PHASE_LOAD && g->c.max_reqs != 0 && g->reqs_drawn >= g->c.max_reqs;
}

bool
gen_prepare(struct gen *g, uint64_t now, struct gen_dgram *d)
{
	uint64_t t0;
	struct slot *s;
	struct pqueue *q;
	uint32_t si;
	int p;

	if (g->nfree == 0 || gen_exhausted(g))
		return false;
	if (g->phase == PHASE_LOAD && g->gap_mean > 0) {
		if (now < g->next_arrival)
			return false;
		t0 = g->next_arrival;
		/* Poisson arrivals: exponential gaps, stamped when intended, not when sent. */
		g->next_arrival += (uint64_t)(-log1p(-rng_unit(&g->rng)) * g->gap_mean) + 1;
	} else {
		t0 = now;
	}
	p = g->phase == PHASE_PRELOAD ? fill_preload(g, t0) : fill_load(g, t0);
	if (p < 0)
		return false;

	si = g->free_stack[--g->nfree];
	s = &g->slots[si];
	q = &g->pq[p];
	s->state = SLOT_PREPARED;
	s->nreq = (uint8_t)q->n;
	s->ngot = 0;
	s->got = 0;
	s->any_rx = false;
	s->rs_total = 0;
	s->rs_have = 0;
	s->t_due = t0;
	s->tag = g->serial++;
	/* Next generation of this slot's request id. */
	s->req_id = (uint16_t)(((s->req_id >> g->slot_bits) + 1) << g->slot_bits | si);
	memcpy(s->r, q->r, sizeof(struct req) * q->n);

	d->slot = si;
	d->len = q->bytes;
	d->dst = (uint16_t)p;
	d->dst_port = g->w->dest[p].port;
	d->dst_ip = g->w->dest[p].ip;
	d->flow = (uint16_t)(g->flow_rr++ % g->c.flows);
	s->flow = d->flow;
	if (q->carry) {
		const struct req *c = &q->r[q->n];
		q->r[0] = *c;
		q->n = 1;
		q->bytes = g->w->hdr + workload_req_bytes(g->w, (enum bench_op)c->op, c->vlen);
		q->carry = false;
		if (queue_full(g, q))
			g->ready = p;
	} else {
		q->n = 0;
		q->bytes = g->w->hdr;
	}
	return true;
}

void
gen_write(struct gen *g, const struct gen_dgram *d, uint8_t *buf)
{
	const struct workload *w = g->w;
	struct slot *s = &g->slots[d->slot];
	const uint32_t ks = w->key_size;
	uint8_t *p = buf;

	kite_proto_put16(p, s->req_id);
	kite_proto_put16(p + 2, 0);
	kite_proto_put16(p + 4, 1);
	kite_proto_put16(p + 6, 0);
	p += KITE_FRAME_HDR_LEN;
	if (w->guard != 0) {
		/* The flow's cookie (zeros until a reply brought one: then the node offers it). */
		kite_guard_env_write(p, w->hdr - KITE_FRAME_HDR_LEN,
				     KITE_GUARD_F_COOKIE | (w->guard == 2 ? KITE_GUARD_F_AUTH : 0),
				     g->cookie[s->flow], w->tenant, w->guard == 2 ? gen_stamp(g, s->flow) : 0,
				     0, 0, 0);
		p += w->hdr - KITE_FRAME_HDR_LEN;
	}
	for (uint32_t i = 0; w->text && i < s->nreq; i++) {
		/* memcached's text commands; replies come in request order (parse_text). */
		const struct req *r = &s->r[i];

		switch (r->op) {
		case OP_GET:
			memcpy(p, "get ", 4);
			key_write(p + 4, ks, r->key, KEY_PREFIX_VALUE);
			memcpy(p + 4 + ks, "\r\n", 2);
			p += 4 + ks + 2;
			break;
		case OP_DELETE:
			memcpy(p, "delete ", 7);
			key_write(p + 7, ks, r->key, KEY_PREFIX_VALUE);
			memcpy(p + 7 + ks, "\r\n", 2);
			p += 7 + ks + 2;
			break;
		case OP_SET: {
			uint32_t flags;
			char head[40];
			/* The flags in 10 digits: the request's length was counted so. */
			int n = snprintf(head, sizeof(head), " %010u 0 %u\r\n", 0u, r->vlen);
			uint8_t *v;

			memcpy(p, "set ", 4);
			key_write(p + 4, ks, r->key, KEY_PREFIX_VALUE);
			v = p + 4 + ks + (uint32_t)n;
			value_write(v, r->vlen, r->key, g->version++, &flags);
			n = snprintf(head, sizeof(head), " %010u 0 %u\r\n", flags, r->vlen);
			memcpy(p + 4 + ks, head, (size_t)n);
			memcpy(v + r->vlen, "\r\n", 2);
			p = v + r->vlen + 2;
			break;
		}
		default:
			break;
		}
	}
	for (uint32_t i = 0; !w->text && i < s->nreq; i++) {
		const struct req *r = &s->r[i];
		uint32_t opaque = (s->tag & BENCH_TAG_MASK) << BENCH_IDX_BITS | i;
		uint8_t *x;

		switch (r->op) {
		case OP_GET:
			kite_proto_write_req_hdr(p, KITE_OP_GET, (uint16_t)ks, 0, 0, ks, opaque, 0);
			key_write(p + KITE_BIN_HDR_LEN, ks, r->key, KEY_PREFIX_VALUE);
			p += KITE_BIN_HDR_LEN + ks;
			break;
		case OP_DELETE:
			kite_proto_write_req_hdr(p, KITE_OP_DELETE, (uint16_t)ks, 0, 0, ks, opaque,
						 0);
			key_write(p + KITE_BIN_HDR_LEN, ks, r->key, KEY_PREFIX_VALUE);
			p += KITE_BIN_HDR_LEN + ks;
			break;
		case OP_SET: {
			uint32_t flags;
			kite_proto_write_req_hdr(p, KITE_OP_SET, (uint16_t)ks, 8, 0,
						 8 + ks + r->vlen, opaque, 0);
			x = p + KITE_BIN_HDR_LEN;
			key_write(x + 8, ks, r->key, KEY_PREFIX_VALUE);
			value_write(x + 8 + ks, r->vlen, r->key, g->version++, &flags);
			kite_proto_put32(x, flags);
			kite_proto_put32(x + 4, 0); /* no expiry */
			p = x + 8 + ks + r->vlen;
			break;
		}
		case OP_INCR:
			kite_proto_write_req_hdr(p, KITE_OP_INCREMENT, (uint16_t)ks, 20, 0, 20 + ks,
						 opaque, 0);
			x = p + KITE_BIN_HDR_LEN;
			kite_proto_put64(x, 1);	     /* delta */
			kite_proto_put64(x + 8, 0);  /* initial */
			kite_proto_put32(x + 16, 0); /* expiry 0: create a missing counter */
			key_write(x + 20, ks, r->key, KEY_PREFIX_COUNTER);
			p = x + 20 + ks;
			break;
		default:
			break;
		}
	}
	/* The tenant MAC over the whole datagram (its field zero meanwhile). */
	if (w->guard == 2)
		kite_guard_sign(buf, d->len, w->mac_key);
	if (g->phase == PHASE_LOAD && g->cap_n < g->cap_max &&
	    g->cap_used + d->len <= g->cap_size) {
		struct gen_capture *c = &g->cap[g->cap_n++];
		memcpy(g->cap_buf + g->cap_used, buf, d->len);
		c->data = g->cap_buf + g->cap_used;
		c->len = d->len;
		c->dst_port = d->dst_port;
		c->flow = d->flow;
		g->cap_used += d->len;
	}
}

void
gen_sent(struct gen *g, const struct gen_dgram *d, uint64_t now, uint32_t frames)
{
	struct slot *s = &g->slots[d->slot];

	s->state = SLOT_INFLIGHT;
	s->t_send = now;
	if (g->phase == PHASE_LOAD && g->gap_mean > 0) {
		if (now - s->t_due > g->late_tsc)
			g->st.late_sends++;
	} else {
		for (uint32_t i = 0; i < s->nreq; i++)
			s->r[i].t0 = now;
	}
	g->inflight++;
	g->st.tx_dgrams++;
	g->st.tx_packets += frames;
	g->st.tx_reqs += s->nreq;
	g->st.tx_bytes += d->len;
}

static inline void
release(struct gen *g, uint32_t si)
{
	g->slots[si].state = SLOT_FREE;
	g->free_stack[g->nfree++] = si;
	g->inflight--;
}

void
gen_discard(struct gen *g, const struct gen_dgram *d)
{
	g->slots[d->slot].state = SLOT_FREE;
	g->free_stack[g->nfree++] = d->slot;
}

static inline void
count_status(struct gen *g, uint16_t status)
{
	g->st.err_status++;
	switch (status) {
	case KITE_STATUS_E2BIG:
		g->st.st_e2big++;
		break;
	case KITE_STATUS_EINVAL:
		g->st.st_einval++;
		break;
	case KITE_STATUS_ENOMEM:
		g->st.st_enomem++;
		break;
	case KITE_STATUS_NOT_STORED:
		g->st.st_not_stored++;
		break;
	case KITE_STATUS_NOT_MY_VBUCKET:
		g->st.st_not_my_vbucket++;
		break;
	case KITE_STATUS_ETMPFAIL:
		g->st.st_tmpfail++;
		break;
	default:
		g->st.st_other++;
		break;
	}
}

/* Judge one response of request `i`. */
static inline void
judge(struct gen *g, const struct req *r, const struct kite_res *res)
{
	switch (r->op) {
	case OP_GET:
		if (res->status == KITE_STATUS_OK) {
			if (res->extlen == 4 && value_check(res->value, res->vallen, r->key,
							    kite_proto_get32(res->extras)))
				g->st.get_hit++;
			else
				g->st.wrong_value++;
		} else if (res->status == KITE_STATUS_KEY_ENOENT) {
			g->st.get_miss++;
		} else {
			count_status(g, res->status);
		}
		break;
	case OP_SET:
		if (res->status == KITE_STATUS_OK)
			g->st.set_ok++;
		else
			count_status(g, res->status);
		break;
	case OP_DELETE:
		if (res->status == KITE_STATUS_OK || res->status == KITE_STATUS_KEY_ENOENT)
			g->st.del_ok++;
		else
			count_status(g, res->status);
		break;
	case OP_INCR:
		if (res->status == KITE_STATUS_OK && res->vallen == 8)
			g->st.incr_ok++;
		else if (res->status == KITE_STATUS_OK)
			g->st.wrong_value++;
		else
			count_status(g, res->status);
		break;
	default:
		break;
	}
}

/* Match one response (or echoed request) to its request; true if it was ours. */
static inline void
match(struct gen *g, struct slot *s, uint32_t opaque, const struct kite_res *res, uint64_t now)
{
	uint32_t idx = opaque & ((1u << BENCH_IDX_BITS) - 1);
	const struct req *r;
	uint64_t lat;

	if ((opaque >> BENCH_IDX_BITS) != (s->tag & BENCH_TAG_MASK) || idx >= s->nreq) {
		g->st.stale++;
		return;
	}
	if (s->got & (UINT64_C(1) << idx)) {
		g->st.dup++;
		return;
	}
	s->got |= UINT64_C(1) << idx;
	s->ngot++;
	g->st.done++;
	r = &s->r[idx];
	lat = now - r->t0;
	/* A sample from before a clock step would be enormous; now >= t0 always on one TSC. */
	hist_add(&g->hist, lat, 1);
	hist_add(&g->hist_op[r->op], lat, 1);
	hist_add(&g->hist_all, lat, 1);
	if (res == NULL)
		g->st.echo_ok++;
	else
		judge(g, r, res);
}

static bool
starts(const uint8_t *p, uint32_t len, const char *s)
{
	size_t n = strlen(s);

	return len >= n && memcmp(p, s, n) == 0;
}

/*
 * Text replies (--protocol text): in request order, so each answers the
 * next request not yet answered. A GET hit is "VALUE <key> <flags>
 * <bytes>\r\n<data>\r\nEND\r\n", a miss "END\r\n"; the lines of SET
 * and DELETE become the binary statuses judge() knows.
 */
static void
parse_text(struct gen *g, uint32_t si, const uint8_t *p, uint32_t len, uint64_t now)
{
	struct slot *s = &g->slots[si];

	while (len > 0 && s->ngot < s->nreq) {
		const uint8_t *nl = memchr(p, '\n', len);
		uint32_t ll, used;
		struct kite_res res;
		uint8_t fx[4];

		if (nl == NULL) {
			g->st.bad_reply++;
			break;
		}
		ll = (uint32_t)(nl - p) + 1;
		used = ll;
		memset(&res, 0, sizeof(res));
		if (starts(p, ll, "VALUE ")) {
			/* VALUE <key> <flags> <bytes>: the last two numbers of the line. */
			unsigned long long flags = 0, bytes = 0;
			char line[320];
			const uint32_t n = ll < sizeof(line) ? ll : (uint32_t)sizeof(line) - 1;
			const char *q;

			/* A copy with a NUL: sscanf must not run into the value. */
			memcpy(line, p, n);
			line[n] = '\0';
			q = strchr(line + 6, ' ');
			if (q == NULL || sscanf(q, " %llu %llu", &flags, &bytes) != 2 ||
			    (uint64_t)ll + bytes + 2 + 5 > len ||
			    memcmp(p + ll + bytes, "\r\nEND\r\n", 7) != 0) {
				g->st.bad_reply++;
				break;
			}
			kite_proto_put32(fx, (uint32_t)flags);
			res.status = KITE_STATUS_OK;
			res.extlen = 4;
			res.extras = fx;
			res.value = p + ll;
			res.vallen = (uint32_t)bytes;
			used = ll + (uint32_t)bytes + 7;
		} else if (starts(p, ll, "END\r\n") || starts(p, ll, "NOT_FOUND\r\n")) {
			res.status = KITE_STATUS_KEY_ENOENT;
		} else if (starts(p, ll, "STORED\r\n") || starts(p, ll, "DELETED\r\n")) {
			res.status = KITE_STATUS_OK;
		} else if (starts(p, ll, "NOT_STORED\r\n")) {
			res.status = KITE_STATUS_NOT_STORED;
		} else if (starts(p, ll, "SERVER_ERROR object too large")) {
			res.status = KITE_STATUS_E2BIG;
		} else if (starts(p, ll, "SERVER_ERROR out of memory")) {
			res.status = KITE_STATUS_ENOMEM;
		} else if (starts(p, ll, "SERVER_ERROR not my vbucket")) {
			res.status = KITE_STATUS_NOT_MY_VBUCKET;
		} else if (starts(p, ll, "SERVER_ERROR temporary failure")) {
			res.status = KITE_STATUS_ETMPFAIL;
		} else {
			res.status = KITE_STATUS_EINVAL; /* any other error line */
		}
		match(g, s, (s->tag & BENCH_TAG_MASK) << BENCH_IDX_BITS | s->ngot, &res, now);
		p += used;
		len -= used;
	}
	if (s->ngot == s->nreq)
		release(g, si);
}

/* Parse the responses of a complete reply message. */
static void
parse_message(struct gen *g, uint32_t si, const uint8_t *p, uint32_t len, uint64_t now)
{
	struct slot *s = &g->slots[si];

	if (g->w->text) {
		parse_text(g, si, p, len, now);
		return;
	}
	while (len > 0) {
		uint32_t opaque;
		int used;

		if (g->w->echo) {
			struct kite_req rq;
			size_t consumed;
			uint8_t status, drop;
			if (kite_proto_parse(p, len, UINT32_MAX, &rq, &consumed, &status, &drop) !=
			    KITE_PARSE_OK) {
				g->st.bad_reply++;
				break;
			}
			opaque = rq.opaque;
			used = (int)consumed;
			match(g, s, opaque, NULL, now);
		} else {
			struct kite_res res;
			used = kite_proto_parse_res(p, len, &res);
			if (used <= 0) {
				g->st.bad_reply++;
				break;
			}
			match(g, s, res.opaque, &res, now);
		}
		p += used;
		len -= (uint32_t)used;
	}
	if (s->ngot == s->nreq)
		release(g, si);
}

void
gen_rx(struct gen *g, const uint8_t *p, uint32_t len, uint64_t now)
{
	const struct workload *w = g->w;
	uint16_t req_id, seq, total;
	uint32_t si, plen;
	struct slot *s;

	g->st.rx_dgrams++;
	g->st.rx_bytes += len;
	if (len < KITE_FRAME_HDR_LEN) {
		g->st.bad_reply++;
		return;
	}
	req_id = kite_proto_get16(p);
	seq = kite_proto_get16(p + 2);
	total = kite_proto_get16(p + 4);
	si = req_id & ((1u << g->slot_bits) - 1);
	if (si >= g->nslots || g->slots[si].state != SLOT_INFLIGHT ||
	    g->slots[si].req_id != req_id) {
		g->st.stale++;
		return;
	}
	s = &g->slots[si];
	s->any_rx = true;
	p += KITE_FRAME_HDR_LEN;
	plen = len - KITE_FRAME_HDR_LEN;
	/* Datagram 0 of a reply may start with the node's envelope: keep a cookie it brings. */
	if (w->guard != 0 && seq == 0 && plen > 0 && p[0] == KITE_GUARD_MAGIC) {
		struct kite_guard_env e;
		int el = kite_guard_env_parse(p, plen, &e);

		if (el <= 0) {
			g->st.bad_reply++;
			return;
		}
		if ((e.flags & KITE_GUARD_F_COOKIE) && e.cookie != NULL)
			memcpy(g->cookie[s->flow], e.cookie, KITE_GUARD_COOKIE_LEN);
		p += el;
		plen -= (uint32_t)el;
	}
	if (total <= 1) {
		if (seq != 0) {
			g->st.bad_reply++;
			return;
		}
		parse_message(g, si, p, plen, now);
		return;
	}
	/*
	 * A message in several datagrams. Each lands at seq * stride; once all
	 * are in, they are closed up into one stream (a response may straddle
	 * datagrams) and parsed.
	 */
	if (seq >= total || total > w->reply_dgrams || plen > w->reply_stride ||
	    (s->rs_total != 0 && s->rs_total != total)) {
		g->st.reasm_conflict++;
		return;
	}
	if (s->rs_total == 0) {
		s->rs_total = total;
		s->rs_have = 0;
		memset(s->rlen, 0, sizeof(uint16_t) * total);
	}
	if (s->rlen[seq] != 0) {
		g->st.dup++;
		return;
	}
	memcpy(s->rbuf + (size_t)seq * w->reply_stride, p, plen);
	s->rlen[seq] = (uint16_t)(plen + 1);
	if (++s->rs_have < total)
		return;
	plen = 0;
	for (uint16_t i = 0; i < total; i++) {
		uint32_t l = s->rlen[i] - 1u;
		if (plen != (size_t)i * w->reply_stride)
			memmove(s->rbuf + plen, s->rbuf + (size_t)i * w->reply_stride, l);
		plen += l;
	}
	/* Another message for the same request id may follow (a multi-worker node). */
	s->rs_total = 0;
	parse_message(g, si, s->rbuf, plen, now);
}

void
gen_expire(struct gen *g, uint64_t now, bool all)
{
	const uint64_t timeout = g->w->timeout_tsc;

	if (!all && now < g->next_expire)
		return;
	/* A scan per eighth of the timeout keeps expiry within 12.5% of it. */
	g->next_expire = now + (timeout / 8 > 0 ? timeout / 8 : 1);
	if (g->inflight == 0)
		return;
	for (uint32_t i = 0; i < g->nslots; i++) {
		struct slot *s = &g->slots[i];
		if (s->state != SLOT_INFLIGHT || (!all && now - s->t_send < timeout))
			continue;
		if (s->ngot == 0 && !s->any_rx)
			g->st.timeouts += s->nreq;
		else
			g->st.losses += (uint64_t)(s->nreq - s->ngot);
		/* Preload tries again until the key is stored or preload time runs out. */
		if (g->phase == PHASE_PRELOAD && !all) {
			for (uint32_t r = 0; r < s->nreq; r++)
				if (!(s->got & (UINT64_C(1) << r)) && g->nretry < g->retry_cap)
					g->retry[g->nretry++] = s->r[r];
		}
		release(g, i);
	}
}

bool
gen_preload_done(const struct gen *g)
{
	if (g->pre_next < g->pre_hi || g->inflight > 0 || g->nretry > 0 || g->ready >= 0)
		return false;
	for (uint32_t p = 0; p < g->nparts; p++)
		if (g->pq[p].n > 0 || g->pq[p].carry)
			return false;
	return true;
}

uint32_t
gen_inflight(const struct gen *g)
{
	return g->inflight;
}

const struct bench_stats *
gen_stats(const struct gen *g)
{
	return &g->st;
}

struct bench_stats *
gen_counters(struct gen *g)
{
	return &g->st;
}

const struct hist *
gen_hist(const struct gen *g)
{
	return &g->hist;
}

const struct hist *
gen_hist_progress(const struct gen *g)
{
	return &g->hist_all;
}

const struct hist *
gen_hist_op(const struct gen *g, enum bench_op op)
{
	return &g->hist_op[op];
}

uint32_t
gen_captured(const struct gen *g)
{
	return g->cap_n;
}

void
gen_capture_get(const struct gen *g, uint32_t i, struct gen_capture *c)
{
	*c = g->cap[i];
}

uint64_t
gen_stamp(struct gen *g, uint16_t flow)
{
	return kite_guard_stamp_next(&g->stamps[flow], kite_guard_wall_us());
}

/* ---- control exchanges -------------------------------------------------- */

#define CTL_OPAQUE 0xc0ffee00u

_Static_assert(CTL_REQ_MAX == KITE_FRAME_HDR_LEN + KITE_GUARD_ENV_HEAD + KITE_GUARD_COOKIE_LEN +
				      KITE_GUARD_AUTH_LEN + KITE_BIN_HDR_LEN,
	       "CTL_REQ_MAX follows the envelope's layout");

uint32_t
ctl_stat_request(const struct workload *w, uint8_t *buf, uint16_t req_id, const uint8_t *cookie,
		 uint64_t stamp)
{
	static const uint8_t none[KITE_GUARD_COOKIE_LEN];
	uint32_t off = KITE_FRAME_HDR_LEN;

	kite_proto_put16(buf, req_id);
	kite_proto_put16(buf + 2, 0);
	kite_proto_put16(buf + 4, 1);
	kite_proto_put16(buf + 6, 0);
	if (w->guard != 0) {
		int el = kite_guard_env_write(buf + off, CTL_REQ_MAX - off,
					      KITE_GUARD_F_COOKIE |
						      (w->guard == 2 ? KITE_GUARD_F_AUTH : 0),
					      cookie != NULL ? cookie : none, w->tenant, stamp, 0, 0, 0);
		off += (uint32_t)el;
	}
	kite_proto_write_req_hdr(buf + off, KITE_OP_STAT, 0, 0, 0, 0, CTL_OPAQUE, 0);
	off += KITE_BIN_HDR_LEN;
	if (w->guard == 2)
		kite_guard_sign(buf, off, w->mac_key);
	return off;
}

void
ctl_collect_init(struct ctl_collect *c, uint16_t req_id, uint8_t *buf, uint32_t stride)
{
	memset(c, 0, sizeof(*c));
	c->req_id = req_id;
	c->buf = buf;
	c->stride = stride;
}

bool
ctl_collect_add(struct ctl_collect *c, const uint8_t *p, uint32_t len)
{
	uint16_t seq, total;

	if (c->done || len < KITE_FRAME_HDR_LEN || kite_proto_get16(p) != c->req_id)
		return c->done;
	seq = kite_proto_get16(p + 2);
	total = kite_proto_get16(p + 4);
	if (total == 0)
		total = 1;
	if (seq >= total || total > KITE_MAX_REPLY_DGRAMS || len - KITE_FRAME_HDR_LEN > c->stride ||
	    (c->total != 0 && c->total != total))
		return false;
	c->total = total;
	if (c->seen[seq / 8] & (1u << (seq % 8)))
		return false;
	c->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
	p += KITE_FRAME_HDR_LEN;
	len -= KITE_FRAME_HDR_LEN;
	/* Datagram 0 may start with the node's envelope; keep the cookie it offers. */
	if (seq == 0 && len > 0 && p[0] == KITE_GUARD_MAGIC) {
		struct kite_guard_env e;
		int el = kite_guard_env_parse(p, len, &e);

		if (el <= 0) {
			c->seen[0] &= (uint8_t)~1u;
			return false;
		}
		if ((e.flags & KITE_GUARD_F_COOKIE) && e.cookie != NULL) {
			memcpy(c->cookie, e.cookie, KITE_GUARD_COOKIE_LEN);
			c->has_cookie = true;
		}
		p += el;
		len -= (uint32_t)el;
	}
	memcpy(c->buf + (size_t)seq * c->stride, p, len);
	c->len[seq] = (uint16_t)len;
	if (++c->have == c->total)
		c->done = true;
	return c->done;
}

/* A STAT value as a string (cut at 31 bytes). */
static const char *
stat_text(const struct kite_res *r, char v[32])
{
	size_t n = r->vallen < 31 ? r->vallen : 31;

	memcpy(v, r->value, n);
	v[n] = '\0';
	return v;
}

static uint64_t
stat_u64(const struct kite_res *r)
{
	char v[32];

	return strtoull(stat_text(r, v), NULL, 10);
}

static double
stat_double(const struct kite_res *r)
{
	char v[32];

	return strtod(stat_text(r, v), NULL);
}

int
ctl_stat_parse(struct ctl_collect *c, struct server_stats *s)
{
	uint32_t len = 0;
	const uint8_t *p;

	if (!c->done)
		return -EINVAL;
	for (uint16_t i = 0; i < c->total; i++) {
		if ((size_t)i * c->stride != len)
			memmove(c->buf + len, c->buf + (size_t)i * c->stride, c->len[i]);
		len += c->len[i];
	}
	memset(s, 0, sizeof(*s));
	s->service_get_p50_us = s->service_get_p99_us = -1;
	p = c->buf;
	while (len > 0) {
		struct kite_res r;
		int used = kite_proto_parse_res(p, len, &r);

		if (used <= 0 || r.opaque != CTL_OPAQUE)
			return -EINVAL;
		if (r.keylen == 0) {
			s->valid = r.status == KITE_STATUS_OK;
			return s->valid ? 0 : -EINVAL;
		}
#define STAT_IS(name) (r.keylen == sizeof(name) - 1 && memcmp(r.key, name, r.keylen) == 0)
		if (STAT_IS("kite_busy_cycles")) {
			s->busy_cycles = stat_u64(&r);
			s->has_cycles = true;
		} else if (STAT_IS("kite_served")) {
			s->served = stat_u64(&r);
		} else if (STAT_IS("get_hits")) {
			s->get_hits = stat_u64(&r);
		} else if (STAT_IS("get_misses")) {
			s->get_misses = stat_u64(&r);
		} else if (STAT_IS("curr_items")) {
			s->curr_items = stat_u64(&r);
		} else if (STAT_IS("evictions")) {
			s->evictions = stat_u64(&r);
		} else if (STAT_IS("kite_steer_misses")) {
			s->steer_misses = stat_u64(&r);
		} else if (STAT_IS("kite_handoff_out")) {
			s->handoffs = stat_u64(&r);
		} else if (STAT_IS("kite_copied_bytes")) {
			s->copied_bytes = stat_u64(&r);
		} else if (STAT_IS("kite_guard_passed")) {
			s->guard_passed = stat_u64(&r);
		} else if (STAT_IS("kite_guard_validated")) {
			s->guard_validated = stat_u64(&r);
		} else if (STAT_IS("kite_guard_authenticated")) {
			s->guard_authed = stat_u64(&r);
		} else if (STAT_IS("kite_service_get_p50_us")) {
			s->service_get_p50_us = stat_double(&r);
		} else if (STAT_IS("kite_service_get_p99_us")) {
			s->service_get_p99_us = stat_double(&r);
		}
#undef STAT_IS
		p += used;
		len -= (uint32_t)used;
	}
	return -EINVAL;
}

/* ---- requests that travel through libkite (--mode libkite) ----------------- */

bool
gen_draw(struct gen *g, enum bench_op *op, uint64_t *key, uint32_t *vlen)
{
	const struct workload *w = g->w;

	if (g->phase == PHASE_PRELOAD) {
		if (g->pre_next >= g->pre_hi)
			return false;
		*op = OP_SET;
		*key = g->pre_next++;
		*vlen = draw_vlen(w, &g->rng);
		return true;
	}
	if (gen_exhausted(g))
		return false;
	*op = draw_op(w, &g->rng);
	*key = draw_key(w, &g->rng);
	*vlen = *op == OP_SET ? draw_vlen(w, &g->rng) : 0;
	g->reqs_drawn++;
	return true;
}

void
gen_record(struct gen *g, enum bench_op op, uint64_t key, const struct gen_outcome *o,
	   uint64_t lat)
{
	struct req r = { .t0 = 0, .key = (uint32_t)key, .op = (uint8_t)op };
	struct kite_res res;
	uint8_t fl[4];

	g->st.tx_reqs++;
	if (o->timeout) {
		g->st.timeouts++;
		return;
	}
	g->st.done++;
	hist_add(&g->hist, lat, 1);
	hist_add(&g->hist_op[op], lat, 1);
	hist_add(&g->hist_all, lat, 1);
	memset(&res, 0, sizeof(res));
	res.status = o->status;
	kite_proto_put32(fl, o->flags);
	res.extras = fl;
	res.extlen = op == OP_GET ? 4 : 0;
	res.value = o->value;
	res.vallen = o->vallen;
	judge(g, &r, &res);
}
