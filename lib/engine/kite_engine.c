/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_prefetch.h>

#include "kite_engine.h"
#include "kite_text.h"

#define STAT_NAME(field, name, help) name,
#define STAT_HELP(field, name, help) help,
const char *const kite_engine_stats_names[] = { KITE_ENGINE_STATS(STAT_NAME) };
const char *const kite_engine_stats_help[] = { KITE_ENGINE_STATS(STAT_HELP) };

/* What an entry of the request table asks the executor to do. */
enum entry_kind {
	ENTRY_REQ = 0, /* a well-formed request */
	ENTRY_ERR,     /* reply with `status`, nothing else */
};

struct entry {
	struct kite_req r;
	uint64_t hash;
	uint32_t vb;   /* the key's vbucket (cluster mode) */
	uint16_t part; /* the key's partition */
	uint16_t dgram;
	uint16_t vslot; /* GET: its view in kite_engine.views, once looked up */
	uint8_t kind;
	uint8_t status; /* ENTRY_ERR: the wire status to answer */
	uint8_t result; /* GET: the store's result (enum kite_store_result) */
	bool keyed : 1;
	bool looked_up : 1;
	bool hashed : 1; /* hash computed ahead by warm_run() */
	bool only : 1;   /* the datagram's single request */
};

/* 96 bytes from a cache-line aligned table: an entry never touches a third line. */
_Static_assert(sizeof(struct entry) == 96, "a request table entry spans two cache lines");
_Static_assert(KITE_MAX_WORKERS <= 256 && KITE_MAX_PARTS_PER_WORKER <= 256,
	       "owners and slots fit a byte");
_Static_assert(KITE_MAX_PARTITIONS <= 65536, "a partition number fits 16 bits");

struct kite_engine {
	struct kite_engine_conf conf;
	uint64_t self_bit; /* this worker in a route mask */
	uint64_t all_bits; /* every worker */
	bool part_pow2; /* partitions is a power of two: h & (n - 1) is h % n */
	/*
	 * Each partition's owner and its place among the owner's partitions,
	 * computed once: the divisions they take (p % workers, p / workers)
	 * would otherwise cost tens of cycles on every request.
	 */
	uint8_t owner_of[KITE_MAX_PARTITIONS];
	uint8_t slot_of[KITE_MAX_PARTITIONS];
	/* Datagrams parsed since the last execution; entries index them. */
	unsigned int ndg;
	struct kite_engine_dgram *dg[KITE_ENGINE_MAX_DGRAMS];
	unsigned int last_first; /* first entry of the datagram parsed last */
	/* The reply datagrams of the request datagram being answered. */
	int open;            /* index into dg, -1 when none */
	bool out_stopped;    /* allocation failed or too many datagrams */
	bool inplace;        /* bufs[0] is the request's own buffer */
	unsigned int nbufs;
	uint16_t fill;       /* bytes used in bufs[nbufs - 1] */
	/* The guard's bound: IP bytes of the open datagram's closed reply datagrams. */
	uint32_t sent_before;
	bool forced;         /* writing a cut status: past the budget check */
	const struct entry *wrote; /* the request whose response was written last */
	/* Per parsed datagram: requests not yet executed, cut status, work left. */
	uint16_t left[KITE_ENGINE_MAX_DGRAMS];
	uint8_t cut[KITE_ENGINE_MAX_DGRAMS];
	uint32_t work_left[KITE_ENGINE_MAX_DGRAMS];
	uint8_t *bufs[KITE_MAX_REPLY_DGRAMS];
	uint16_t lens[KITE_MAX_REPLY_DGRAMS];
	uint32_t now; /* unix seconds, for STAT */
	uint64_t rng; /* ttl-jitter's xorshift state */
	uint8_t hint; /* the next binary response's datatype (KITE_DATATYPE_HOT) */
	struct kite_hot hot; /* this worker's hot keys */
	const struct kite_engine_cluster *cluster; /* NULL: no cluster */
	bool fenced; /* this execution refuses writes (the fence deadline has passed) */
	bool prev_ok; /* the PREVIOUS role still counts in this execution */
	size_t topo_len; /* the TOPOLOGY reply body, encoded once */
	uint8_t topo[KITE_TOPO_REPLY_MAX];
	unsigned int nent;
	/* Cache-line aligned (the engine is): no entry touches three lines. */
	struct entry ent[KITE_ENGINE_MAX_REQS] __rte_cache_aligned;
	/*
	 * The views of the GET run being answered, written by the store's bulk
	 * lookup where the engine reads them (no copy: a copy loads fields the
	 * store has just written, which costs a store-forwarding stall).
	 */
	struct kite_store_view views[KITE_ENGINE_MAX_REQS];
	/* Text requests: what they add to their entry (same index). */
	struct kite_text_req text[KITE_ENGINE_MAX_REQS];
};

/*
 * A client's expiry as the item's absolute time (memcached's rule), spread
 * by ttl-jitter: a future expiry moves by a uniform random fraction of at
 * most ttl_jitter percent of the time left, either way, so keys written
 * together do not expire together. Applied once, here on the owner;
 * replicas receive the result. 0 (never) and past times are kept.
 */
static uint32_t
item_exptime(struct kite_engine *e, uint32_t exptime)
{
	uint32_t t = kite_proto_exptime(exptime, e->now);
	uint64_t left, span, r;

	if (likely(e->conf.ttl_jitter == 0) || t == 0 || t <= e->now)
		return t;
	left = (uint64_t)t - e->now;
	span = left * e->conf.ttl_jitter / 100;
	if (span == 0)
		return t;
	/* xorshift64*: cheap and per engine (one worker), no lock. */
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	r = (e->rng * UINT64_C(2685821657736338717)) % (2 * span + 1);
	left = left + r - span;
	if (left == 0)
		left = 1;
	return left + e->now > UINT32_MAX ? UINT32_MAX : (uint32_t)(left + e->now);
}

static bool
is_keyed(uint8_t cmd)
{
	return (cmd >= KITE_CMD_GET && cmd <= KITE_CMD_GAT) || cmd == KITE_CMD_FILL_GET;
}

static bool
owns(const struct kite_engine *e, uint32_t part)
{
	return e->owner_of[part] == e->conf.self;
}

/*
 * Does this worker answer the datagram's keyless and malformed requests
 * (and count what its parse finds)? Its home worker does; for a text
 * datagram, whichever worker the relay is at (kite_engine_relay).
 */
static inline bool
answers(const struct kite_engine_dgram *d)
{
	return d->home | d->ordered;
}

static int
build_topology(struct kite_engine *e)
{
	struct kite_topology *t = malloc(sizeof(*t)); /* 4 KiB: not on the stack */
	int len;

	if (t == NULL)
		return -ENOMEM;
	len = kite_topo_from_map(&e->conf.map, t);
	if (len == 0)
		len = kite_topo_write(e->topo, sizeof(e->topo), t);
	free(t);
	if (len < 0)
		return len;
	e->topo_len = (size_t)len;
	return 0;
}

struct kite_engine *
kite_engine_create(const struct kite_engine_conf *conf, int socket_id)
{
	struct kite_engine *e;

	if (conf == NULL || conf->parts == NULL || conf->stats == NULL ||
	    kite_topo_map_check(&conf->map) != 0 || conf->self >= conf->map.workers ||
	    conf->out.alloc == NULL || conf->out.done == NULL ||
	    conf->max_payload < KITE_FRAME_HDR_LEN + KITE_BIN_HDR_LEN + 8) {
		rte_errno = EINVAL;
		return NULL;
	}
	e = rte_zmalloc_socket("kite_engine", sizeof(*e), RTE_CACHE_LINE_SIZE, socket_id);
	if (e == NULL) {
		rte_errno = ENOMEM;
		return NULL;
	}
	e->conf = *conf;
	e->open = -1;
	e->rng = UINT64_C(0x9e3779b97f4a7c15) ^ ((uint64_t)conf->self << 32) ^ rte_rdtsc();
	kite_hot_init(&e->hot, conf->no_hot ? 0 : conf->hot_rate, conf->hot_pub, 0);
	e->self_bit = UINT64_C(1) << conf->self;
	e->all_bits = ~UINT64_C(0) >> (64 - conf->map.workers); /* 1..KITE_MAX_WORKERS */
	/* A division costs tens of cycles per request; a mask gives the same partition. */
	e->part_pow2 = rte_is_power_of_2(conf->map.partitions);
	for (uint32_t p = 0; p < conf->map.partitions; p++) {
		e->owner_of[p] = (uint8_t)kite_topo_owner(&conf->map, p);
		e->slot_of[p] = (uint8_t)(p / conf->map.workers);
	}
	if (build_topology(e) != 0) {
		rte_free(e);
		rte_errno = EINVAL;
		return NULL;
	}
	return e;
}

size_t
kite_engine_footprint(void)
{
	return sizeof(struct kite_engine) + RTE_CACHE_LINE_SIZE;
}

void
kite_engine_free(struct kite_engine *e)
{
	rte_free(e);
}

void
kite_engine_set_cluster(struct kite_engine *e, const struct kite_engine_cluster *c)
{
	e->cluster = c;
}

void
kite_engine_set_time(struct kite_engine *e, uint32_t now)
{
	/* A new second: the hot keys' rates, snapshot and hot set. */
	if (now != e->now) {
		if (e->hot.since == 0)
			e->hot.since = now;
		else if (!e->conf.no_hot)
			kite_hot_tick(&e->hot, now);
	}
	e->now = now;
	for (uint32_t p = e->conf.self; p < e->conf.map.partitions; p += e->conf.map.workers)
		if (e->conf.parts[p] != NULL)
			kite_store_set_time(e->conf.parts[p], now);
}

/* ---- reply writer ------------------------------------------------------ */

static void
close_dgram(struct kite_engine *e)
{
	struct kite_engine_dgram *d;
	struct kite_proto_frame f;

	if (e->open < 0)
		return;
	d = e->dg[e->open];
	if (unlikely(d->relay_to >= 0)) {
		/* Relayed on: the reply continues at the next worker (kite_engine_relay). */
		if (e->nbufs > 0)
			e->lens[e->nbufs - 1] = e->fill;
		d->relay.nbufs = (uint16_t)e->nbufs;
		d->relay.fill = e->fill;
		d->relay.sent_before = e->sent_before;
		d->relay.stopped = e->out_stopped;
		if (e->nbufs > 0)
			e->conf.out.carry(d->out_arg, e->nbufs, e->bufs, e->lens);
	} else if (e->nbufs > 0) {
		e->lens[e->nbufs - 1] = e->fill;
		f.req_id = kite_proto_get16(d->data);
		f.total = (uint16_t)e->nbufs;
		f.reserved = 0;
		for (unsigned int i = 0; i < e->nbufs; i++) {
			f.seq = (uint16_t)i;
			kite_proto_frame_write(e->bufs[i], &f);
		}
		e->conf.out.done(d->out_arg, e->nbufs, e->bufs, e->lens, e->inplace);
		e->conf.stats->tx_dgrams += e->nbufs;
	}
	e->open = -1;
	e->nbufs = 0;
	e->fill = 0;
	e->sent_before = 0;
	e->wrote = NULL;
	e->out_stopped = false;
	e->inplace = false;
}

/* Make datagram di's reply the open one; a relayed datagram's goes on where it was left. */
static void
open_dgram(struct kite_engine *e, unsigned int di)
{
	struct kite_engine_dgram *d = e->dg[di];

	if (e->open == (int)di)
		return;
	close_dgram(e);
	e->open = (int)di;
	if (unlikely(d->ordered && d->relay.nbufs != 0)) {
		e->conf.out.resume(d->out_arg, d->relay.nbufs, e->bufs, e->lens);
		e->nbufs = d->relay.nbufs;
		e->fill = d->relay.fill;
		e->sent_before = d->relay.sent_before;
		e->out_stopped = d->relay.stopped;
		d->relay.nbufs = 0;
	}
}

/*
 * Start reply datagram number nbufs. The first reply to a datagram's only
 * request may reuse the request's buffer: the request was fully read
 * before its response is written, except the key of a GETK/GATK hit,
 * which the response copies (so those get a fresh buffer).
 */
static bool
next_buf(struct kite_engine *e, const struct entry *q)
{
	const struct kite_engine_dgram *d = e->dg[e->open];
	uint8_t *b;

	if (e->out_stopped)
		return false;
	if (e->nbufs == KITE_MAX_REPLY_DGRAMS) {
		e->conf.stats->reply_truncated++;
		e->out_stopped = true;
		return false;
	}
	if (e->nbufs == 0 && q != NULL && q->only && d->inplace && !e->conf.no_inplace &&
	    !(q->kind == ENTRY_REQ && q->r.want_key)) {
		b = (uint8_t *)(uintptr_t)d->data;
		e->inplace = true;
	} else {
		b = e->conf.out.alloc(d->out_arg, e->nbufs);
	}
	if (b == NULL) {
		e->conf.stats->nombuf++;
		e->out_stopped = true;
		return false;
	}
	if (e->nbufs > 0) {
		e->lens[e->nbufs - 1] = e->fill;
		e->sent_before += 28u + e->fill;
	}
	e->bufs[e->nbufs++] = b;
	e->fill = KITE_FRAME_HDR_LEN; /* frame written when the datagram closes */
	if (e->nbufs == 1 && d->renv_len > 0) {
		/* The guard's envelope starts the reply (a cookie for the sender). */
		memmove(b + KITE_FRAME_HDR_LEN, d->renv, d->renv_len);
		e->conf.stats->copied_bytes += d->renv_len;
		e->fill = (uint16_t)(e->fill + d->renv_len);
	}
	return true;
}

static void
put(struct kite_engine *e, const void *src, size_t n)
{
	const uint8_t *p = src;

	while (n > 0 && !e->out_stopped) {
		size_t room = e->conf.max_payload - e->fill;
		if (room == 0) {
			if (!next_buf(e, NULL))
				return;
			continue;
		}
		size_t k = RTE_MIN(room, n);
		memcpy(e->bufs[e->nbufs - 1] + e->fill, p, k);
		e->fill = (uint16_t)(e->fill + k);
		p += k;
		n -= k;
	}
}

/*
 * IP bytes a response of `total` bytes adds to the open reply: its own,
 * and 28 + 8 for each reply datagram it opens (the first also carries
 * the guard's envelope). Mirrors respond()'s placement.
 */
static uint32_t
reply_cost(const struct kite_engine *e, const struct kite_engine_dgram *d, size_t total)
{
	const size_t mp = e->conf.max_payload;
	size_t base = 0, fill = e->fill, over;

	if (e->nbufs == 0) {
		base = 28 + KITE_FRAME_HDR_LEN + d->renv_len;
		fill = KITE_FRAME_HDR_LEN + d->renv_len;
	}
	if (fill + total <= mp)
		return (uint32_t)(base + total);
	if (total <= mp - KITE_FRAME_HDR_LEN)
		return (uint32_t)(base + 36 + total);
	over = fill + total - mp;
	return (uint32_t)(base + total + 36 * ((over + mp - KITE_FRAME_HDR_LEN - 1) /
					       (mp - KITE_FRAME_HDR_LEN)));
}

/* The longest status line a cut text request gets ("SERVER_ERROR cookie required\r\n"). */
#define TEXT_STATUS_MAX 30

static void respond(struct kite_engine *e, const struct entry *q, uint16_t status, uint64_t cas,
		    const void *ext, uint8_t extlen, const void *key, uint16_t keylen,
		    const void *val, uint32_t vallen);
static bool budget_fits(const struct kite_engine *e, const struct entry *q, size_t total);
static void cut_now(struct kite_engine *e, const struct entry *q);

/*
 * The amplification bound of a bounded datagram: may this response go
 * out and still leave 24 bytes for the status of every request after it?
 * If not, the datagram is cut: this response becomes COOKIE_REQUIRED, and
 * every later request gets a status instead of running (exec_one). A cut
 * request's further responses (STAT's) are dropped.
 */
static bool
over_budget_ok(struct kite_engine *e, const struct entry *q, size_t total)
{
	const struct kite_engine_dgram *d = e->dg[q->dgram];
	uint32_t used = e->sent_before + (e->nbufs > 0 ? 28u + e->fill : 0);

	if (e->forced) {
		/*
		 * A cut request's status. The reserve holds room for it, except
		 * in one corner: over 60 header-only requests (NOOP, VERSION,
		 * STAT: 24 bytes, as their status) in a fragmented datagram,
		 * whose statuses need more reply datagrams (36 bytes each) than
		 * the request had fragments (20). Those go unanswered (counted),
		 * never over the bound; any request with a key leaves room.
		 */
		if ((uint64_t)used + reply_cost(e, d, total) <= d->budget)
			return true;
		e->conf.stats->cut_unanswered++;
		return false;
	}
	if (e->cut[q->dgram] != 0)
		return false;
	if (budget_fits(e, q, total)) {
		e->wrote = q;
		return true;
	}
	cut_now(e, q);
	return false;
}

/*
 * May a response of `total` bytes go out and still leave room for the
 * status of every request after it? Nothing changes.
 */
static bool
budget_fits(const struct kite_engine *e, const struct entry *q, size_t total)
{
	const struct kite_engine_dgram *d = e->dg[q->dgram];
	uint32_t used = e->sent_before + (e->nbufs > 0 ? 28u + e->fill : 0);
	/*
	 * A request that answered already (STAT answers many) keeps room for
	 * its own status too: should a later response of it be cut, the
	 * status replaces that one.
	 */
	const uint32_t statuses = e->left[q->dgram] + (e->wrote == q);
	const size_t mp = e->conf.max_payload;
	size_t after = (e->nbufs == 0 ? KITE_FRAME_HDR_LEN + d->renv_len : e->fill) + total;
	/* A status: a binary header, or the longest of text's cut lines. */
	const uint32_t unit = q->r.dialect == KITE_DIALECT_TEXT ? TEXT_STATUS_MAX : 24u;
	uint64_t reserve = (uint64_t)unit * statuses;

	/* Statuses that will not fit the current reply datagram open more (36 bytes each). */
	if (after > mp)
		after = mp;
	if (after + reserve > mp)
		reserve += 36u * ((after + reserve - mp + mp - KITE_FRAME_HDR_LEN - 1) /
				  (mp - KITE_FRAME_HDR_LEN));
	return (uint64_t)used + reply_cost(e, d, total) + reserve <= d->budget;
}

/* Cut the datagram at q: its status is COOKIE_REQUIRED, and so is every later request's. */
static void
cut_now(struct kite_engine *e, const struct entry *q)
{
	e->cut[q->dgram] = KITE_STATUS_COOKIE_REQUIRED;
	e->conf.stats->cut_bound++;
	e->forced = true;
	respond(e, q, KITE_STATUS_COOKIE_REQUIRED, 0, NULL, 0, NULL, 0, NULL, 0);
	e->forced = false;
}

/* Bytes of one response, written in order (binary: header, extras, key, value). */
struct piece {
	const void *p;
	size_t n;
};

/*
 * Place one response of `total` bytes. A response that fits in one
 * datagram never straddles two. @return where to write it whole (counted
 * already), or NULL: *go then says whether it goes out piece by piece
 * (put(), then count_response()) or not at all (the bound cut it, or no
 * buffer).
 */
static uint8_t *
place(struct kite_engine *e, const struct entry *q, size_t total, bool *go)
{
	uint8_t *p;

	*go = false;
	open_dgram(e, q->dgram);
	if (unlikely(e->dg[q->dgram]->budget != 0) && !over_budget_ok(e, q, total))
		return NULL;
	if (e->nbufs == 0 ||
	    (total <= (size_t)e->conf.max_payload - KITE_FRAME_HDR_LEN &&
	     e->fill + total > e->conf.max_payload)) {
		if (!next_buf(e, q))
			return NULL;
	}
	*go = true;
	if (e->out_stopped || e->fill + total > e->conf.max_payload)
		return NULL;
	/* Fast path: the whole response fits; it is written straight into the datagram. */
	p = e->bufs[e->nbufs - 1] + e->fill;
	e->fill = (uint16_t)(e->fill + total);
	e->conf.stats->tx_responses++;
	e->conf.stats->tx_bytes += total;
	return p;
}

/* After a response went out piece by piece. */
static void
count_response(struct kite_engine *e, size_t total)
{
	if (!e->out_stopped) {
		e->conf.stats->tx_responses++;
		e->conf.stats->tx_bytes += total;
	}
}

/* Write one response made of pieces (text lines and values). */
static void
emit(struct kite_engine *e, const struct entry *q, const struct piece *pc, unsigned int np)
{
	size_t total = 0;
	uint8_t *p;
	bool go;

	for (unsigned int i = 0; i < np; i++)
		total += pc[i].n;
	e->conf.stats->copied_bytes += total;
	p = place(e, q, total, &go);
	if (p != NULL) {
		for (unsigned int i = 0; i < np; i++) {
			if (pc[i].n != 0)
				memcpy(p, pc[i].p, pc[i].n);
			p += pc[i].n;
		}
		return;
	}
	if (!go)
		return;
	for (unsigned int i = 0; i < np; i++)
		if (pc[i].n != 0)
			put(e, pc[i].p, pc[i].n);
	count_response(e, total);
}

static void respond_text_status(struct kite_engine *e, const struct entry *q, uint16_t status,
				const void *val, uint32_t vallen);

/*
 * Copy a key or a small value into a reply inline: two overlapping loads
 * and stores for up to 32 bytes, libc's memcpy (a call, then a dispatch on
 * the length) beyond. The 32-byte values of the batched GET benchmark went
 * through that call at 4.5 % of the profile.
 */
static inline void
copy_small(uint8_t *d, const uint8_t *s, size_t n)
{
	uint64_t a, b, c, f;

	if (n > 32) {
		memcpy(d, s, n);
	} else if (n >= 16) {
		memcpy(&a, s, 8);
		memcpy(&b, s + 8, 8);
		memcpy(&c, s + n - 16, 8);
		memcpy(&f, s + n - 8, 8);
		memcpy(d, &a, 8);
		memcpy(d + 8, &b, 8);
		memcpy(d + n - 16, &c, 8);
		memcpy(d + n - 8, &f, 8);
	} else if (n >= 8) {
		memcpy(&a, s, 8);
		memcpy(&b, s + n - 8, 8);
		memcpy(d, &a, 8);
		memcpy(d + n - 8, &b, 8);
	} else {
		for (size_t i = 0; i < n; i++)
			d[i] = s[i];
	}
}

/* Write one binary response (header, extras, key, value). */
static void
respond(struct kite_engine *e, const struct entry *q, uint16_t status, uint64_t cas,
	const void *ext, uint8_t extlen, const void *key, uint16_t keylen, const void *val,
	uint32_t vallen)
{
	const size_t body = (size_t)extlen + keylen + vallen;
	const size_t total = KITE_BIN_HDR_LEN + body;
	uint8_t hdr[KITE_BIN_HDR_LEN];
	uint8_t *p;
	bool go;

	/* A text request reaches here only for a status (errors, the guard's, the cluster's). */
	if (unlikely(q->r.dialect == KITE_DIALECT_TEXT)) {
		respond_text_status(e, q, status, val, vallen);
		return;
	}
	e->conf.stats->copied_bytes += (uint64_t)keylen + vallen;
	p = place(e, q, total, &go);
	if (p != NULL) {
		kite_proto_write_res_hdr(p, q->r.opcode, keylen, extlen, status, (uint32_t)body,
					 q->r.opaque, cas);
		p[5] = e->hint;
		p += KITE_BIN_HDR_LEN;
		if (extlen)
			memcpy(p, ext, extlen);
		if (keylen)
			copy_small(p + extlen, key, keylen);
		if (vallen)
			copy_small(p + extlen + keylen, val, vallen);
		return;
	}
	if (!go)
		return;
	kite_proto_write_res_hdr(hdr, q->r.opcode, keylen, extlen, status, (uint32_t)body,
				 q->r.opaque, cas);
	hdr[5] = e->hint;
	put(e, hdr, sizeof(hdr));
	if (extlen)
		put(e, ext, extlen);
	if (keylen)
		put(e, key, keylen);
	if (vallen)
		put(e, val, vallen);
	count_response(e, total);
}

/* An error reply: memcached's message as the body, CAS 0. */
static void
respond_err(struct kite_engine *e, const struct entry *q, uint8_t status)
{
	const char *msg = kite_proto_status_str(status);

	respond(e, q, status, 0, NULL, 0, NULL, 0, msg, (uint32_t)strlen(msg));
}

/* ---- phase 1: parse and route ------------------------------------------ */

static void execute(struct kite_engine *e);

static struct entry *
new_entry(struct kite_engine *e)
{
	if (e->nent == KITE_ENGINE_MAX_REQS)
		execute(e);
	return &e->ent[e->nent++];
}

/*
 * Parse datagram number di into the request table and return the workers
 * that must see it (kite_engine_parse()). Counts and drops are the home
 * worker's to count.
 */
/*
 * The guard's verdict for one well-formed request: the status that
 * refuses it (answered where the datagram arrived), or 0.
 */
static uint8_t
policy_refuses(const struct kite_engine *e, const struct kite_engine_dgram *d,
	       const struct kite_req *r)
{
	if (d->refuse != 0)
		return d->refuse;
	if (d->deny & (UINT32_C(1) << r->cmd))
		goto forbidden;
	if (!is_keyed(r->cmd) || d->ns == KITE_ENGINE_NS_ANY)
		return 0;
	if (d->ns == KITE_ENGINE_NS_PREFIX) {
		if (r->keylen < d->prefix_len || memcmp(r->key, d->prefix, d->prefix_len) != 0)
			goto forbidden;
		return 0;
	}
	if (e->conf.key_owned != NULL && e->conf.key_owned(e->conf.key_owned_arg, r->key, r->keylen))
		goto forbidden;
	return 0;
forbidden:
	e->conf.stats->forbidden++;
	return KITE_STATUS_FORBIDDEN;
}

/* Requests in a datagram by their headers' lengths alone (an upper bound for the bound). */
static uint16_t
count_requests(const uint8_t *p, size_t n)
{
	size_t off = 0;
	unsigned int k = 0;

	while (off + KITE_BIN_HDR_LEN <= n && k < UINT16_MAX) {
		k++;
		off += KITE_BIN_HDR_LEN + kite_proto_get32(p + off + 8);
	}
	if (off < n && k < UINT16_MAX)
		k++; /* a truncated one may still be answered */
	return (uint16_t)k;
}

/*
 * A datagram the port cut short: its first request, whose header arrived,
 * is answered E2BIG (opcode and opaque echoed, so the client can match it);
 * nothing runs, the rest is not visible. The reply is smaller than what
 * arrived, and the bound applies to it as to any other.
 */
static uint64_t
parse_truncated(struct kite_engine *e, unsigned int di, size_t off)
{
	struct kite_engine_dgram *d = e->dg[di];
	struct kite_engine_stats *st = e->conf.stats;
	struct entry *q;

	const bool text = d->data[off] != KITE_MAGIC_REQ && d->data[off] != KITE_MAGIC_RES;

	/* Binary without a whole first header: nothing to echo, dropped. */
	if (!text && (d->len - off < KITE_BIN_HDR_LEN || d->data[off] != KITE_MAGIC_REQ)) {
		if (d->home)
			st->proto_drops[d->len - off < KITE_BIN_HDR_LEN ? KITE_PROTO_DROP_TRUNC_HDR
								    : KITE_PROTO_DROP_BAD_MAGIC]++;
		d->nreq = 0;
		return e->self_bit;
	}
	q = new_entry(e);
	memset(&q->r, 0, sizeof(q->r));
	if (text) {
		/* One SERVER_ERROR line for the datagram (nothing in it is read). */
		q->r.dialect = KITE_DIALECT_TEXT;
		e->text[q - e->ent].noreply = false;
		e->text[q - e->ent].err = KITE_TERR_NONE;
	} else {
		q->r.opcode = d->data[off + 1];
		q->r.opaque = kite_proto_get32(d->data + off + 12);
	}
	q->kind = ENTRY_ERR;
	q->status = KITE_STATUS_E2BIG;
	q->result = 0;
	q->keyed = false;
	q->only = true;
	q->dgram = (uint16_t)di;
	q->looked_up = false;
	q->hashed = false;
	e->left[di] = d->budget != 0 ? 1 : 0;
	if (d->home) {
		st->rx_requests++;
		st->too_big++;
	}
	d->nreq = 1;
	return e->self_bit;
}

/* entry.result of an ENTRY_ERR whose answer is the text error line in e->text (META_* flags). */
#define META_FLAG_ERROR 0xff

/* The route of a well-formed request (parse_dgram's tail, shared with text). */
static uint64_t
route(struct kite_engine *e, struct entry *q)
{
	q->kind = ENTRY_REQ;
	q->status = 0;
	q->keyed = is_keyed(q->r.cmd);
	if (q->keyed) {
		/* One hash for both levels: partition and vbucket. */
		uint64_t h = kite_topo_key_hash(q->r.key, q->r.keylen);

		const uint32_t n = e->conf.map.partitions;

		q->part = (uint16_t)(e->part_pow2 ? h & (n - 1) : h % n);
		q->vb = (uint32_t)h;
		return UINT64_C(1) << e->owner_of[q->part];
	}
	if (q->r.cmd == KITE_CMD_FLUSH)
		return e->all_bits; /* every worker flushes its own partitions */
	return e->self_bit;
}

/* The next entry of datagram di: the datagram's first is its `only` one until a second comes. */
static struct entry *
dgram_entry(struct kite_engine *e, unsigned int *count, unsigned int *first)
{
	struct entry *q;

	/* A table flush can only happen once this datagram has an entry already. */
	if (*count == 1)
		e->ent[*first].only = false;
	q = new_entry(e);
	if ((*count)++ == 0) {
		*first = (unsigned int)(q - e->ent);
		q->only = true;
	} else {
		q->only = false;
	}
	q->result = 0; /* META_FLAG_ERROR marks an entry of this datagram, never a stale one */
	return q;
}

/* What a parse result makes of entry q (both dialects). */
enum admit { ADMIT_ROUTE, ADMIT_NEXT, ADMIT_RETURN };

static enum admit
admit(struct kite_engine *e, struct kite_engine_dgram *d, struct entry *q,
      enum kite_parse_result res, uint8_t status, uint8_t drop, unsigned int count,
      unsigned int first, uint64_t *mask)
{
	struct kite_engine_stats *st = e->conf.stats;

	if (res == KITE_PARSE_DROP) {
		e->nent--;
		/* A dropped remainder still shares the buffer with the requests before it. */
		if (count > 1)
			e->ent[first].only = false;
		if (answers(d))
			st->proto_drops[drop]++;
		d->nreq = (uint16_t)(count - 1);
		*mask |= e->self_bit;
		return ADMIT_RETURN;
	}
	if (answers(d))
		st->rx_requests++;
	if (res == KITE_PARSE_OK)
		return ADMIT_ROUTE;
	/* Errors are answered where the datagram arrived. */
	q->kind = ENTRY_ERR;
	q->status = status;
	q->keyed = false;
	*mask |= e->self_bit;
	if (res == KITE_PARSE_ERR_STOP) {
		d->nreq = (uint16_t)count;
		return ADMIT_RETURN;
	}
	return ADMIT_NEXT;
}

/* entry.status of a request (ENTRY_REQ) that is one step of a flush_all's round: flush, no reply. */
#define ENTRY_ROUND 1

/*
 * Where a text datagram stops on this worker: its next request starts at
 * `off` (cursor `before`), and worker `to` goes on from there.
 */
static void
relay_stop(struct kite_engine_dgram *d, size_t off, const struct kite_text_cursor *before,
	   uint16_t flush_left, unsigned int to)
{
	d->relay_to = (int16_t)to;
	d->relay.off = (uint32_t)off;
	d->relay.cur = *before;
	d->relay.flush_left = flush_left;
	d->relay.hops = (uint16_t)(d->relay.hops + (d->relay.hops != UINT16_MAX));
	d->inplace = false; /* the request travels on */
}

/*
 * A text datagram (kite_text.h): one entry per command, one per key of a
 * get line; each entry's text part at the same index of e->text. With a
 * relay (kite_engine_relay), parsing stops at the first request another
 * worker owns, and a flush_all goes round the workers.
 */
static uint64_t
parse_text(struct kite_engine *e, unsigned int di, size_t off)
{
	struct kite_engine_dgram *d = e->dg[di];
	struct kite_text_cursor cur, before;
	unsigned int first = e->nent, count = 0;
	uint64_t mask = 0;
	const bool relay = e->conf.out.carry != NULL;
	uint16_t flush_left = 0;

	kite_text_cursor_init(&cur, e->conf.text_any_keys);
	d->ordered = relay;
	if (relay && d->relay.hops > 0) {
		/* On from where the last worker stopped. */
		off = d->relay.off;
		cur = d->relay.cur;
		flush_left = d->relay.flush_left;
		e->cut[di] = d->relay.cut;
		e->work_left[di] = d->relay.work_left;
		e->left[di] = d->relay.left;
	} else if (d->budget != 0) {
		e->left[di] = kite_text_count(d->data + off, d->len - off, e->conf.text_any_keys);
	}
	while (off < d->len) {
		struct entry *q = dgram_entry(e, &count, &first);
		struct kite_text_req *t = &e->text[q - e->ent];
		size_t used = 0;
		uint8_t status = 0, drop;
		enum kite_parse_result res;
		uint64_t bit = 0;

		before = cur;
		res = kite_text_parse(d->data + off, d->len - off, e->conf.max_item_size, &cur,
				      &q->r, t, &used, &drop);
		q->r.dialect = KITE_DIALECT_TEXT;
		q->r.quiet = t->noreply;
		q->dgram = (uint16_t)di;
		q->looked_up = false;
		q->hashed = false;
		if (res == KITE_PARSE_OK && unlikely(d->refuse | d->deny | d->ns) &&
		    (status = policy_refuses(e, d, &q->r)) != 0)
			res = KITE_PARSE_ERR_REPLY;
		if (res == KITE_PARSE_OK) {
			bit = route(e, q);
			if (relay && q->keyed && bit != e->self_bit && e->cut[di] == 0) {
				/* Another worker's key: the datagram goes on there, from this request. */
				e->nent--;
				count--;
				relay_stop(d, off, &before, flush_left, e->owner_of[q->part]);
				break;
			}
		}
		switch (admit(e, d, q, res, status, drop, count, first, &mask)) {
		case ADMIT_RETURN:
			return mask;
		case ADMIT_NEXT:
			off += used;
			continue;
		case ADMIT_ROUTE:
			break;
		}
		if (!relay) {
			mask |= bit;
		} else if (unlikely(q->r.cmd == KITE_CMD_FLUSH) && e->conf.map.workers > 1 &&
			   e->cut[di] == 0 && flush_left != 1) {
			/*
			 * flush_all goes round: each worker flushes its own
			 * partitions, and the last answers and goes on.
			 */
			if (flush_left != 0)
				e->conf.stats->rx_requests--; /* counted where the round began */
			q->status = ENTRY_ROUND;
			relay_stop(d, off, &before,
				   flush_left == 0 ? e->conf.map.workers - 1 : flush_left - 1,
				   (e->conf.self + 1u) % e->conf.map.workers);
			break;
		} else if (q->r.cmd == KITE_CMD_FLUSH && flush_left == 1) {
			e->conf.stats->rx_requests--; /* counted where the round began */
			flush_left = 0;
		}
		off += used;
		if (q->r.cmd == KITE_CMD_QUIT)
			break; /* quit ends the datagram */
	}
	d->nreq = (uint16_t)count;
	return mask | (relay ? e->self_bit : 0);
}

static uint64_t
parse_dgram(struct kite_engine *e, unsigned int di)
{
	struct kite_engine_dgram *d = e->dg[di];
	struct kite_engine_stats *st = e->conf.stats;
	struct kite_proto_frame f;
	size_t off = KITE_FRAME_HDR_LEN + d->skip, used;
	unsigned int first = e->nent, count = 0;
	uint64_t mask = 0;
	uint8_t status, drop;
	int rc;

	d->relay_to = -1;
	d->ordered = false;
	rc = kite_proto_frame_parse(d->data, d->len, &f);
	if (rc != 0) {
		if (d->home)
			st->proto_drops[rc]++;
		return e->self_bit;
	}
	if (d->len <= off) {
		if (d->home)
			st->proto_drops[KITE_PROTO_DROP_EMPTY]++;
		return e->self_bit;
	}
	/*
	 * The bound reserves a status for every request not yet answered,
	 * parsed or not (a table flush may split the datagram): count them
	 * by their headers first.
	 */
	e->left[di] = d->budget != 0 ? count_requests(d->data + off, d->len - off) : 0;
	e->cut[di] = 0;
	e->work_left[di] = d->work != 0 ? d->work : UINT32_MAX;
	if (unlikely(d->truncated))
		return parse_truncated(e, di, off);
	if (d->data[off] != KITE_MAGIC_REQ && d->data[off] != KITE_MAGIC_RES)
		return parse_text(e, di, off);
	while (off < d->len) {
		struct entry *q = dgram_entry(e, &count, &first);
		enum kite_parse_result res = kite_proto_parse(d->data + off, d->len - off,
							      e->conf.max_item_size, &q->r, &used,
							      &status, &drop);
		q->dgram = (uint16_t)di;
		q->looked_up = false;
		q->hashed = false;
		if (res == KITE_PARSE_OK && unlikely(kite_proto_is_meta(q->r.opcode))) {
			/* Kite's META_*: the flags (text, in the extras) as the text forms read them. */
			struct kite_text_req *t = &e->text[q - e->ent];
			enum kite_text_err te = kite_text_meta_flags(
				q->r.opcode, q->r.key - q->r.extlen, q->r.extlen, &q->r, t);

			q->r.quiet = t->noreply;
			if (te != KITE_TERR_NONE) {
				t->err = (uint8_t)te;
				q->result = META_FLAG_ERROR;
				status = KITE_STATUS_EINVAL;
				res = KITE_PARSE_ERR_REPLY;
			}
		}
		if (res == KITE_PARSE_OK && unlikely(d->refuse | d->deny | d->ns) &&
		    (status = policy_refuses(e, d, &q->r)) != 0)
			res = KITE_PARSE_ERR_REPLY;
		switch (admit(e, d, q, res, status, drop, count, first, &mask)) {
		case ADMIT_RETURN:
			return mask;
		case ADMIT_NEXT:
			off += used;
			continue;
		case ADMIT_ROUTE:
			break;
		}
		off += used;
		mask |= route(e, q);
		if (q->r.cmd == KITE_CMD_QUIT)
			break; /* QUIT and QUITQ end the datagram */
	}
	d->nreq = (uint16_t)count;
	return mask;
}

uint64_t
kite_engine_parse(struct kite_engine *e, struct kite_engine_dgram *d)
{
	if (e->ndg == KITE_ENGINE_MAX_DGRAMS)
		kite_engine_execute(e);
	e->conf.stats->rx_dgrams += d->home;
	e->dg[e->ndg] = d;
	e->last_first = e->nent;
	return parse_dgram(e, e->ndg++);
}

void
kite_engine_withdraw(struct kite_engine *e)
{
	if (e->ndg == 0)
		return;
	/*
	 * Its entries are the table's last. Should the table have filled up
	 * while it was parsed, those before were executed already: a datagram
	 * this worker does not answer holds only other workers' keys, whose
	 * execution reads nothing and only counts them as not owned.
	 */
	e->nent = e->last_first;
	e->ndg--;
}

/* ---- execution --------------------------------------------------------- */

static bool
is_get(const struct entry *q)
{
	return q->kind == ENTRY_REQ && q->r.cmd == KITE_CMD_GET && !q->r.direct;
}

/* Requests that change no partition; a GET run may extend over them. */
static bool
is_readonly(const struct entry *q)
{
	if (q->kind == ENTRY_ERR)
		return true;
	switch (q->r.cmd) {
	case KITE_CMD_GET:
	case KITE_CMD_NOOP:
	case KITE_CMD_VERSION:
	case KITE_CMD_STAT:
	case KITE_CMD_TOPOLOGY:
	case KITE_CMD_CLUSTER_MAP:
	case KITE_CMD_FILL_GET:
		return true;
	default:
		return false;
	}
}

/*
 * Cluster mode: may this node serve the request for its key's vbucket?
 * A read needs the owner or a replica, a write the owner and no fence.
 * Otherwise the client is told: NOT_MY_VBUCKET with the map's epoch (it
 * refreshes its map), or ETMPFAIL for a fenced write.
 */
static bool
cluster_refuses(struct kite_engine *e, const struct entry *q)
{
	const struct kite_engine_cluster *c = e->cluster;
	uint8_t role;

	if (c == NULL || c->role == NULL)
		return false;
	role = c->role[q->vb & c->vbucket_mask];
	if (role == KITE_ENGINE_ROLE_PREVIOUS && !e->prev_ok)
		role = KITE_ENGINE_ROLE_NONE;
	switch (q->r.cmd) {
	case KITE_CMD_GET:
		if (role == KITE_ENGINE_ROLE_OWNER || role == KITE_ENGINE_ROLE_REPLICA)
			return false;
		break;
	case KITE_CMD_FILL_GET:
		if (role != KITE_ENGINE_ROLE_NONE)
			return false;
		break;
	default:
		/* A previous owner takes invalidations during the warm-up window. */
		if (q->r.cmd == KITE_CMD_DELETE && role == KITE_ENGINE_ROLE_PREVIOUS)
			return false;
		if (role != KITE_ENGINE_ROLE_OWNER)
			break;
		if (!e->fenced)
			return false;
		e->conf.stats->fenced_writes++;
		respond_err(e, q, KITE_STATUS_ETMPFAIL);
		return true;
	}
	uint8_t epoch[8];
	for (int i = 0; i < 8; i++)
		epoch[i] = (uint8_t)(c->epoch >> (56 - 8 * i));
	e->conf.stats->not_my_vbucket++;
	respond(e, q, KITE_STATUS_NOT_MY_VBUCKET, 0, NULL, 0, NULL, 0, epoch, sizeof(epoch));
	return true;
}

/* The vbucket's "since" mark: items at or below it are from before (0: none). */
static inline uint64_t
since_of(const struct kite_engine *e, const struct entry *q)
{
	const struct kite_engine_cluster *c = e->cluster;

	return c != NULL && c->since != NULL ? c->since[q->vb & c->vbucket_mask] : 0;
}

/* Is an item with this CAS from before this node's role in its vbucket changed? */
static inline bool
stale(const struct kite_engine *e, const struct entry *q, uint64_t cas)
{
	uint64_t since = since_of(e, q);

	if (likely(since == 0) || cas > since)
		return false;
	e->conf.stats->stale_hidden++;
	return true;
}

/* A GET whose vbucket this node neither owns nor replicates (no lookup for it). */
static inline bool
not_here(const struct kite_engine *e, const struct entry *q)
{
	const struct kite_engine_cluster *c = e->cluster;

	return c != NULL && c->role != NULL &&
	       c->role[q->vb & c->vbucket_mask] != KITE_ENGINE_ROLE_OWNER &&
	       c->role[q->vb & c->vbucket_mask] != KITE_ENGINE_ROLE_REPLICA;
}

/* A GET of this worker's that no bulk lookup has served yet. */
static inline bool
pending_get(const struct kite_engine *e, const struct entry *q)
{
	return is_get(q) && !q->looked_up && owns(e, q->part) && !not_here(e, q);
}

/* A keyed write of this worker's. */
static inline bool
own_write(const struct kite_engine *e, const struct entry *q)
{
	return q->kind == ENTRY_REQ && q->keyed && !is_readonly(q) && owns(e, q->part);
}

/*
 * The entries of [first, end) that `take` selects, grouped by partition
 * (a counting sort over this worker's partitions): order[] receives their
 * indexes, group by group, and start[lp] the end of local partition lp's
 * group. Returns how many were taken.
 */
static inline unsigned int
group_by_part(const struct kite_engine *e, unsigned int first, unsigned int end,
	      bool (*take)(const struct kite_engine *, const struct entry *), uint16_t *order,
	      uint16_t *start)
{
	const uint16_t workers = e->conf.map.workers;
	const unsigned int nlocal = (e->conf.map.partitions + workers - 1) / workers;
	uint16_t taken[KITE_ENGINE_MAX_REQS];
	unsigned int n = 0;

	memset(start, 0, sizeof(start[0]) * (nlocal + 1));
	/* take() once per entry: the second pass goes over those taken. */
	for (unsigned int i = first; i < end; i++) {
		const struct entry *q = &e->ent[i];
		if (take(e, q)) {
			start[e->slot_of[q->part] + 1]++;
			taken[n++] = (uint16_t)i;
		}
	}
	if (n == 0)
		return 0;
	for (unsigned int p = 1; p <= nlocal; p++)
		start[p] = (uint16_t)(start[p] + start[p - 1]);
	for (unsigned int k = 0; k < n; k++)
		order[start[e->slot_of[e->ent[taken[k]].part]]++] = taken[k];
	return n;
}

/*
 * Look up every owned GET from `first` to the next mutation, in bulk per
 * partition: the run is grouped by partition, then each group goes to the
 * store in chunks of 64.
 */
static void
lookup_run(struct kite_engine *e, unsigned int first)
{
	const uint8_t *keys[64];
	uint16_t keylens[64];
	uint64_t hashes[64];
	uint8_t results[64];
	uint16_t start[KITE_MAX_PARTS_PER_WORKER + 1];
	uint16_t order[KITE_ENGINE_MAX_REQS];
	unsigned int end = first, ngets;

	while (end < e->nent && is_readonly(&e->ent[end]))
		end++;
	ngets = group_by_part(e, first, end, pending_get, order, start);
	if (ngets == 0)
		return;
	/* start[p] now marks the end of group p; groups are contiguous in order[]. */
	for (unsigned int g = 0, lp = 0; g < ngets; lp++) {
		unsigned int gend = start[lp];
		if (g == gend)
			continue;
		struct kite_store *s = e->conf.parts[e->ent[order[g]].part];
		while (g < gend) {
			unsigned int n = RTE_MIN(gend - g, 64u);
			for (unsigned int k = 0; k < n; k++) {
				struct entry *o = &e->ent[order[g + k]];
				if (!o->hashed)
					o->hash = kite_store_hash(s, o->r.key, o->r.keylen);
				keys[k] = o->r.key;
				keylens[k] = o->r.keylen;
				hashes[k] = o->hash;
			}
			/* A run's GETs are at most the table's: slots g.. are free. */
			kite_store_get_bulk(s, keys, keylens, hashes, n, &e->views[g], results);
			for (unsigned int k = 0; k < n; k++) {
				struct entry *o = &e->ent[order[g + k]];
				o->looked_up = true;
				o->result = results[k];
				o->vslot = (uint16_t)(g + k);
				/* The value's first and last line: the reply copies it. */
				if (results[k] == KITE_STORE_OK && !e->conf.no_prefetch) {
					const struct kite_store_view *v = &e->views[g + k];

					rte_prefetch0(v->value);
					if (v->vallen > 1)
						rte_prefetch0(v->value + v->vallen - 1);
				}
			}
			g += n;
		}
	}
}

/* Entries warm_run() looks at in one go: enough to overlap their misses, few enough to stay in L1. */
#define WARM_WINDOW 32

/*
 * Before a window of the table runs, bring the index entries and items of
 * its writes into the cache: each write's hash is computed once here, and
 * each partition's keys go through one bulk lookup (kite_store_prefetch_bulk),
 * so that their misses overlap as a GET run's do. A write alone would take
 * three dependent misses (bucket, key slot, item). A window without writes
 * is left to lookup_run(): its GETs form long runs. With writes, the GETs
 * between them come in short runs (a run ends at each write), whose bulk
 * lookups are too small to overlap anything: they are warmed here too.
 */
static inline bool
warmable(const struct kite_engine *e, const struct entry *q)
{
	return own_write(e, q) || pending_get(e, q);
}

static void
warm_run(struct kite_engine *e, unsigned int first)
{
	const unsigned int end = RTE_MIN(e->nent, first + WARM_WINDOW);
	uint64_t hashes[WARM_WINDOW];
	uint16_t keylens[WARM_WINDOW];
	uint16_t start[KITE_MAX_PARTS_PER_WORKER + 1];
	uint16_t order[WARM_WINDOW];
	unsigned int i = first, n;

	while (i < end && !own_write(e, &e->ent[i]))
		i++;
	if (i == end)
		return;
	n = group_by_part(e, first, end, warmable, order, start);
	if (n < 2)
		return; /* nothing to overlap */
	for (unsigned int g = 0, lp = 0; g < n; lp++) {
		const unsigned int gend = start[lp];
		const unsigned int g0 = g;
		struct kite_store *s;

		if (g == gend)
			continue;
		s = e->conf.parts[e->ent[order[g]].part];
		for (; g < gend; g++) {
			struct entry *q = &e->ent[order[g]];
			q->hash = kite_store_hash(s, q->r.key, q->r.keylen);
			q->hashed = true;
			hashes[g - g0] = q->hash;
			keylens[g - g0] = q->r.keylen;
		}
		kite_store_prefetch_bulk(s, hashes, keylens, gend - g0);
	}
}

static void
reply_value(struct kite_engine *e, const struct entry *q, const struct kite_store_view *v,
	    bool with_value)
{
	uint8_t flags[4];

	kite_proto_put32(flags, v->flags);
	/* A hot key's hit says so (the client may keep it in a local cache). */
	if (unlikely(e->hot.nhot != 0) && kite_hot_is_hot(&e->hot, q->hash))
		e->hint = KITE_DATATYPE_HOT;
	respond(e, q, KITE_STATUS_OK, v->cas, flags, 4, q->r.want_key ? q->r.key : NULL,
		q->r.want_key ? q->r.keylen : 0, with_value ? v->value : NULL,
		with_value ? v->vallen : 0);
	e->hint = 0;
}

static void
reply_miss(struct kite_engine *e, const struct entry *q)
{
	if (q->r.quiet)
		return;
	if (q->r.want_key)
		respond(e, q, KITE_STATUS_KEY_ENOENT, 0, NULL, 0, q->r.key, q->r.keylen, NULL, 0);
	else
		respond_err(e, q, KITE_STATUS_KEY_ENOENT);
}

/* A mutation's reply: silent on success when quiet, errors always sent. */
static void
reply_status(struct kite_engine *e, const struct entry *q, uint8_t status, uint64_t cas)
{
	if (status != KITE_STATUS_OK)
		respond_err(e, q, status);
	else if (!q->r.quiet)
		respond(e, q, KITE_STATUS_OK, cas, NULL, 0, NULL, 0, NULL, 0);
}

struct stat_ctx {
	struct kite_engine *e;
	const struct entry *q;
};


static void
emit_stat(void *arg, const char *name, const char *value)
{
	struct stat_ctx *c = arg;

	respond(c->e, c->q, KITE_STATUS_OK, 0, NULL, 0, name, (uint16_t)strlen(name), value,
		(uint32_t)strlen(value));
}

static void
exec_stat(struct kite_engine *e, struct entry *q)
{
	struct stat_ctx c = { e, q };

	/* The general group, or one the program has (hotkeys); memcached answers others so. */
	if (e->conf.stat == NULL ? q->r.keylen != 0
				 : !e->conf.stat(e->conf.stat_arg, e->now, q->r.key, q->r.keylen,
						 emit_stat, &c)) {
		respond_err(e, q, KITE_STATUS_KEY_ENOENT);
		return;
	}
	respond(e, q, KITE_STATUS_OK, 0, NULL, 0, NULL, 0, NULL, 0);
}

/* The wire status of each store result (memcached binary protocol). */
static const uint8_t wire_status[KITE_STORE_RESULT_MAX] = {
	[KITE_STORE_OK] = KITE_STATUS_OK,
	[KITE_STORE_NOT_FOUND] = KITE_STATUS_KEY_ENOENT,
	[KITE_STORE_EXISTS] = KITE_STATUS_KEY_EEXISTS,
	[KITE_STORE_NOT_STORED] = KITE_STATUS_NOT_STORED,
	[KITE_STORE_TOO_LARGE] = KITE_STATUS_E2BIG,
	[KITE_STORE_NO_MEMORY] = KITE_STATUS_ENOMEM,
	[KITE_STORE_NON_NUMERIC] = KITE_STATUS_DELTA_BADVAL,
	[KITE_STORE_INVALID] = KITE_STATUS_EINVAL,
};

static uint8_t
status_of(enum kite_store_result r)
{
	return (unsigned int)r < KITE_STORE_RESULT_MAX ? wire_status[r] : KITE_STATUS_EINVAL;
}

/*
 * One function per command behind exec_one()'s switch (as Pelikan's
 * twemcache process.c): each gets its entry and, for keyed commands, its
 * partition; a GET also its index (it looks up the run that starts there).
 */
static void
exec_get(struct kite_engine *e, struct entry *q, struct kite_store *s, unsigned int i)
{
	struct kite_store_view one;
	const struct kite_store_view *v = &one;

	if (e->conf.no_bulk) {
		q->result = (uint8_t)kite_store_get(s, q->r.key, q->r.keylen, q->hash, &one);
	} else {
		if (!q->looked_up)
			lookup_run(e, i);
		v = &e->views[q->vslot];
	}
	if (q->result == KITE_STORE_OK && !stale(e, q, v->cas))
		reply_value(e, q, v, true);
	else
		reply_miss(e, q);
}

/*
 * FILL_GET: a warm-up read-through of a key this node may have owned
 * before the last map change. The reply's extras carry flags and the
 * absolute expiry (0: none) so the new owner gets the same item.
 */
static void
exec_fill_get(struct kite_engine *e, struct entry *q, struct kite_store *s)
{
	struct kite_store_view v;
	uint8_t ext[8];

	if (kite_store_get(s, q->r.key, q->r.keylen, q->hash, &v) != KITE_STORE_OK ||
	    stale(e, q, v.cas)) {
		reply_miss(e, q);
		return;
	}
	kite_proto_put32(ext, v.flags);
	kite_proto_put32(ext + 4, v.exptime);
	respond(e, q, KITE_STATUS_OK, v.cas, ext, 8, NULL, 0, v.value, v.vallen);
}

/*
 * Replication: a mutation of an owned vbucket that has replicas is handed
 * to the program as the item's state now (or its deletion).
 */
static void
replicate(struct kite_engine *e, const struct entry *q, struct kite_store *s, bool deleted)
{
	const struct kite_engine_cluster *c = e->cluster;
	struct kite_store_view v;

	void *dg;
	bool silent;

	if (e->conf.repl == NULL || c == NULL || c->replicas == 0 || c->role == NULL)
		return;
	dg = e->dg[q->dgram]->out_arg;
	/* A GAT's hit is answered even when quiet; TOUCH has no quiet form. */
	silent = q->r.quiet && q->r.cmd != KITE_CMD_GAT;
	if (deleted) {
		e->conf.repl(e->conf.repl_arg, dg, q->vb & c->vbucket_mask, 2, q->r.key,
			     q->r.keylen, NULL, silent);
		return;
	}
	if (kite_store_get(s, q->r.key, q->r.keylen, q->hash, &v) == KITE_STORE_OK)
		e->conf.repl(e->conf.repl_arg, dg, q->vb & c->vbucket_mask, 1, q->r.key,
			     q->r.keylen, &v, silent);
}

/*
 * The mutations, for both dialects: the store's work and its replication;
 * each dialect then answers in its own words.
 */

/* TOUCH, GAT and their text forms: the new expiry, *v the item after it. */
static enum kite_store_result
do_touch(struct kite_engine *e, const struct entry *q, struct kite_store *s,
	 struct kite_store_view *v)
{
	enum kite_store_result rc = kite_store_touch(s, q->r.key, q->r.keylen, q->hash,
						     item_exptime(e, q->r.exptime), true, v);

	if (rc == KITE_STORE_OK)
		replicate(e, q, s, false);
	return rc;
}

/* SET, ADD, REPLACE, APPEND, PREPEND (a text cas is a SET with its cas). */
static enum kite_store_result
do_store(struct kite_engine *e, const struct entry *q, struct kite_store *s, uint64_t *cas)
{
	static const uint8_t mode[KITE_CMD_MAX] = {
		[KITE_CMD_SET] = KITE_STORE_SET,	 [KITE_CMD_ADD] = KITE_STORE_ADD,
		[KITE_CMD_REPLACE] = KITE_STORE_REPLACE, [KITE_CMD_APPEND] = KITE_STORE_APPEND,
		[KITE_CMD_PREPEND] = KITE_STORE_PREPEND,
	};
	const struct kite_store_write w = {
		.mode = (enum kite_store_mode)mode[q->r.cmd],
		.flags = q->r.flags,
		.exptime = item_exptime(e, q->r.exptime),
		.value = q->r.value,
		.vallen = q->r.vallen,
		.cas = q->r.cas,
		.tenant = e->dg[q->dgram]->tenant,
	};
	enum kite_store_result rc = kite_store_store(s, q->r.key, q->r.keylen, q->hash, &w, cas);

	if (rc == KITE_STORE_OK) {
		e->conf.stats->copied_bytes += (uint64_t)q->r.keylen + q->r.vallen;
		replicate(e, q, s, false);
	}
	return rc;
}

static enum kite_store_result
do_delete(struct kite_engine *e, const struct entry *q, struct kite_store *s)
{
	enum kite_store_result rc = kite_store_delete(s, q->r.key, q->r.keylen, q->hash, q->r.cas);

	if (rc == KITE_STORE_OK)
		replicate(e, q, s, true);
	return rc;
}

/* INCREMENT and DECREMENT (text: never creating, exptime KITE_DELTA_NO_CREATE). */
static enum kite_store_result
do_delta(struct kite_engine *e, const struct entry *q, struct kite_store *s, uint64_t *value,
	 uint64_t *cas)
{
	const struct kite_store_arith a = {
		.incr = q->r.cmd == KITE_CMD_INCR,
		.create = q->r.exptime != KITE_DELTA_NO_CREATE,
		.delta = q->r.delta,
		.initial = q->r.initial,
		.exptime = item_exptime(e, q->r.exptime),
		.cas = q->r.cas,
		.tenant = e->dg[q->dgram]->tenant,
	};
	enum kite_store_result rc = kite_store_delta(s, q->r.key, q->r.keylen, q->hash, &a, value,
						     cas);

	if (rc == KITE_STORE_OK)
		replicate(e, q, s, false);
	return rc;
}

/* TOUCH and GAT: new expiry; GAT also returns the value. */
static void
exec_touch(struct kite_engine *e, struct entry *q, struct kite_store *s)
{
	struct kite_store_view v;

	if (do_touch(e, q, s, &v) == KITE_STORE_OK)
		reply_value(e, q, &v, q->r.cmd == KITE_CMD_GAT);
	else
		reply_miss(e, q);
}

/* SET, ADD, REPLACE, APPEND, PREPEND. */
static void
exec_store(struct kite_engine *e, struct entry *q, struct kite_store *s)
{
	uint64_t cas = 0;
	/* Stored first: the CAS is read after the call that writes it. */
	const uint8_t status = status_of(do_store(e, q, s, &cas));

	reply_status(e, q, status, cas);
}

static void
exec_delete(struct kite_engine *e, struct entry *q, struct kite_store *s)
{
	reply_status(e, q, status_of(do_delete(e, q, s)), 0);
}

/* INCREMENT and DECREMENT: the new value as 8 bytes. */
static void
exec_delta(struct kite_engine *e, struct entry *q, struct kite_store *s)
{
	uint64_t value, cas;
	enum kite_store_result rc = do_delta(e, q, s, &value, &cas);

	if (rc == KITE_STORE_OK && !q->r.quiet) {
		uint8_t body[8];
		kite_proto_put64(body, value);
		respond(e, q, KITE_STATUS_OK, cas, NULL, 0, NULL, 0, body, sizeof(body));
	} else if (rc != KITE_STORE_OK) {
		respond_err(e, q, status_of(rc));
	}
}

static void text_line(struct kite_engine *e, const struct entry *q, const char *s);

static void
flush_reply(struct kite_engine *e, const struct entry *q)
{
	if (q->r.dialect == KITE_DIALECT_TEXT)
		text_line(e, q, "OK");
	else
		respond(e, q, KITE_STATUS_OK, 0, NULL, 0, NULL, 0, NULL, 0);
}

/* Flush the partitions this worker owns (and their replicas). */
static void
flush_parts(struct kite_engine *e, const struct entry *q)
{
	const uint32_t when = kite_proto_exptime(q->r.exptime, e->now);
	const struct kite_engine_cluster *c = e->cluster;

	/* memcached 1.6.18: an absolute time at or before its start flushes nothing. */
	if (q->r.exptime > KITE_REALTIME_MAXDELTA && q->r.exptime <= e->conf.started)
		return;
	for (uint32_t p = e->conf.self; p < e->conf.map.partitions; p += e->conf.map.workers)
		if (e->conf.parts[p] != NULL)
			kite_store_flush(e->conf.parts[p], when);
	/* Replication: this worker's owned vbuckets are flushed on their replicas too. */
	if (e->conf.repl != NULL && c != NULL && c->replicas > 0 && c->role != NULL &&
	    !e->fenced) {
		const struct kite_store_view v = { .exptime = when };
		e->conf.repl(e->conf.repl_arg, NULL, KITE_ENGINE_REPL_ALL, 3, NULL, 0, &v, false);
	}
}

/*
 * Every worker flushes the partitions it owns (a binary FLUSH goes to all
 * of them, a text flush_all round them); the worker answering the
 * datagram answers.
 */
static void
exec_flush(struct kite_engine *e, struct entry *q)
{
	flush_parts(e, q);
	if (answers(e->dg[q->dgram]) && !q->r.quiet)
		flush_reply(e, q);
}

/* NOOP, and QUIT unless quiet: an empty success. */
static void
exec_empty(struct kite_engine *e, struct entry *q)
{
	if (!(q->r.cmd == KITE_CMD_QUIT && q->r.quiet))
		respond(e, q, KITE_STATUS_OK, 0, NULL, 0, NULL, 0, NULL, 0);
}

static void
exec_version(struct kite_engine *e, struct entry *q)
{
	respond(e, q, KITE_STATUS_OK, 0, NULL, 0, NULL, 0, KITE_VERSION,
		(uint32_t)strlen(KITE_VERSION));
}

static void
exec_topology(struct kite_engine *e, struct entry *q)
{
	respond(e, q, KITE_STATUS_OK, 0, NULL, 0, NULL, 0, e->topo, (uint32_t)e->topo_len);
}

static void
exec_cluster_map(struct kite_engine *e, struct entry *q)
{
	if (e->cluster == NULL || e->cluster->map_msg == NULL) {
		respond_err(e, q, KITE_STATUS_UNKNOWN_COMMAND);
		return;
	}
	respond(e, q, KITE_STATUS_OK, 0, NULL, 0, NULL, 0, e->cluster->map_msg, e->cluster->map_len);
}

/* ---- text replies (kite_text.h) ------------------------------------------- */

/*
 * Decimal digits of v at p; returns their count. The count first, then
 * the digits from the end, two at a time from a table: a digit at a time
 * into a buffer and reversed took half of a text GET's reply line (a
 * chain of dependent divisions, ``perf`` under a text get-b1).
 */
static size_t
put_u64(char *p, uint64_t v)
{
	static const char pairs[201] = "00010203040506070809"
				       "10111213141516171819"
				       "20212223242526272829"
				       "30313233343536373839"
				       "40414243444546474849"
				       "50515253545556575859"
				       "60616263646566676869"
				       "70717273747576777879"
				       "80818283848586878889"
				       "90919293949596979899";
	size_t n = 1;
	char *q;

	for (uint64_t t = 10; n < 20 && v >= t; t *= 10)
		n++;
	q = p + n;
	while (v >= 100) {
		const unsigned int r = (unsigned int)(v % 100);

		v /= 100;
		q -= 2;
		memcpy(q, &pairs[2 * r], 2);
	}
	if (v >= 10)
		memcpy(q - 2, &pairs[2 * v], 2);
	else
		q[-1] = (char)('0' + v);
	return n;
}

/*
 * A line builder: text responses are short lines, then maybe a value.
 * Start one with l.n = 0, never "= { 0 }", which would clear all its bytes.
 */
struct tline {
	char b[768];
	size_t n;
};

static void
tl_str(struct tline *l, const char *s)
{
	size_t k = strlen(s);

	if (l->n + k < sizeof(l->b)) {
		memcpy(l->b + l->n, s, k);
		l->n += k;
	}
}

static void
tl_mem(struct tline *l, const void *p, size_t k)
{
	if (l->n + k < sizeof(l->b)) {
		memcpy(l->b + l->n, p, k);
		l->n += k;
	}
}

static void
tl_u64(struct tline *l, uint64_t v)
{
	if (l->n + 20 < sizeof(l->b))
		l->n += put_u64(l->b + l->n, v);
}

static void
tl_i64(struct tline *l, int64_t v)
{
	if (v < 0) {
		tl_str(l, "-");
		tl_u64(l, (uint64_t)(-v));
	} else {
		tl_u64(l, (uint64_t)v);
	}
}

/* One line: s and "\r\n". */
static void
text_line(struct kite_engine *e, const struct entry *q, const char *s)
{
	const struct piece pc[2] = { { s, strlen(s) }, { "\r\n", 2 } };

	emit(e, q, pc, 2);
}

/* The line of a status a text request is answered with outside its command. */
static void
respond_text_status(struct kite_engine *e, const struct entry *q, uint16_t status,
		    const void *val, uint32_t vallen)
{
	struct tline l;
	l.n = 0;

	switch (status) {
	case KITE_STATUS_OK:
		tl_str(&l, "OK");
		break;
	case KITE_STATUS_KEY_ENOENT:
		tl_str(&l, "NOT_FOUND");
		break;
	case KITE_STATUS_KEY_EEXISTS:
		tl_str(&l, "EXISTS");
		break;
	case KITE_STATUS_NOT_STORED:
		tl_str(&l, "NOT_STORED");
		break;
	case KITE_STATUS_E2BIG:
		tl_str(&l, kite_text_err_str(KITE_TERR_TOO_LARGE));
		break;
	case KITE_STATUS_DELTA_BADVAL:
		tl_str(&l, kite_text_err_str(KITE_TERR_NON_NUMERIC));
		break;
	case KITE_STATUS_NOT_MY_VBUCKET:
		/* With the map's epoch, as the binary reply's body. */
		tl_str(&l, "SERVER_ERROR not my vbucket ");
		if (vallen == 8)
			tl_u64(&l, kite_proto_get64(val));
		break;
	case KITE_STATUS_AUTH_ERROR:
		tl_str(&l, "CLIENT_ERROR authentication required");
		break;
	case KITE_STATUS_UNKNOWN_COMMAND:
		tl_str(&l, "ERROR");
		break;
	case KITE_STATUS_ENOMEM:
		tl_str(&l, kite_text_err_str(KITE_TERR_NO_MEMORY));
		break;
	case KITE_STATUS_ETMPFAIL:
		tl_str(&l, "SERVER_ERROR temporary failure");
		break;
	case KITE_STATUS_COOKIE_REQUIRED:
		tl_str(&l, "SERVER_ERROR cookie required");
		break;
	case KITE_STATUS_RATE_LIMITED:
		tl_str(&l, "SERVER_ERROR rate limited");
		break;
	case KITE_STATUS_FORBIDDEN:
		tl_str(&l, "CLIENT_ERROR forbidden");
		break;
	default:
		tl_str(&l, kite_text_err_str(KITE_TERR_FORMAT));
		break;
	}
	tl_str(&l, "\r\n");
	const struct piece pc[1] = { { l.b, l.n } };
	emit(e, q, pc, 1);
}

/* Remaining TTL as meta's t shows it: -1 for none. */
static int64_t
ttl_left(const struct kite_engine *e, uint32_t exptime)
{
	if (exptime == 0)
		return -1;
	return exptime > e->now ? (int64_t)exptime - e->now : 0;
}

/* The k flag: the key as sent (base64 when it came so, then " b"). */
static void
tl_key(struct tline *l, const struct kite_text_req *t)
{
	tl_str(l, " k");
	tl_mem(l, t->wkey, t->wkeylen);
	if (t->b64)
		tl_str(l, " b");
}

/* Whether meta flag c comes after flag number f (T and N act where they stand). */
static bool
flag_after(const struct kite_text_req *t, unsigned int f, char c)
{
	for (unsigned int g = f + 1; g < t->nflags; g++)
		if (t->flags[g] == c)
			return true;
	return false;
}

/* On a miss or failure: only O and k, in request order. */
static void
tl_echo(struct tline *l, const struct kite_text_req *t)
{
	for (unsigned int f = 0; f < t->nflags; f++) {
		if (t->flags[f] == 'O') {
			tl_str(l, " O");
			tl_mem(l, t->opaque, t->opaque_len);
		} else if (t->flags[f] == 'k') {
			tl_key(l, t);
		}
	}
}

/*
 * A meta reply in the request's dialect: text "<code>[ <len>]<flags>\r\n"
 * (and the value); binary (Kite's META opcodes, docs/protocol.rst) the
 * code's status, the return flags as extras text, the value as the value.
 */
static void
meta_out(struct kite_engine *e, const struct entry *q, const char *code, const struct tline *f,
	 const void *val, uint32_t vlen, bool with_value)
{
	if (q->r.dialect == KITE_DIALECT_TEXT) {
		struct tline l;
		l.n = 0;

		tl_str(&l, code);
		if (with_value) {
			tl_str(&l, " ");
			tl_u64(&l, vlen);
		}
		tl_mem(&l, f->b, f->n);
		tl_str(&l, "\r\n");
		if (with_value) {
			const struct piece pc[3] = { { l.b, l.n }, { val, vlen }, { "\r\n", 2 } };
			emit(e, q, pc, 3);
		} else {
			const struct piece pc[1] = { { l.b, l.n } };
			emit(e, q, pc, 1);
		}
		return;
	}
	uint16_t status = KITE_STATUS_OK;
	if (code[0] == 'E' && code[1] == 'N')
		status = KITE_STATUS_KEY_ENOENT;
	else if (code[0] == 'N' && code[1] == 'F')
		status = KITE_STATUS_KEY_ENOENT;
	else if (code[0] == 'N' && code[1] == 'S')
		status = KITE_STATUS_NOT_STORED;
	else if (code[0] == 'E' && code[1] == 'X')
		status = KITE_STATUS_KEY_EEXISTS;
	/* The flags without their leading space; at most 255 bytes of extras. */
	const size_t n = f->n > 0 ? f->n - 1 : 0;
	respond(e, q, status, 0, f->n > 0 ? f->b + 1 : NULL, (uint8_t)(n > 255 ? 255 : n), NULL, 0,
		with_value ? val : NULL, with_value ? vlen : 0);
}

/* A failure of a meta command: memcached's line in text, the status (and the line) in binary. */
static void
meta_err(struct kite_engine *e, const struct entry *q, const char *line, uint8_t status)
{
	if (q->r.dialect == KITE_DIALECT_TEXT)
		text_line(e, q, line);
	else
		respond(e, q, status, 0, NULL, 0, NULL, 0, line, (uint32_t)strlen(line));
}

static void
text_code(struct kite_engine *e, const struct entry *q, const struct kite_text_req *t,
	  const char *code, bool cas_flag, uint64_t cas)
{
	struct tline f;
	f.n = 0;

	for (unsigned int i = 0; i < t->nflags; i++) {
		if (t->flags[i] == 'O') {
			tl_str(&f, " O");
			tl_mem(&f, t->opaque, t->opaque_len);
		} else if (t->flags[i] == 'k') {
			tl_key(&f, t);
		} else if (t->flags[i] == 'c' && cas_flag) {
			tl_str(&f, " c");
			tl_u64(&f, cas);
		}
	}
	meta_out(e, q, code, &f, NULL, 0, false);
}

/* The item a text read sees: from the GET run's bulk lookup, or looked up now. */
static const struct kite_store_view *
text_lookup(struct kite_engine *e, struct entry *q, struct kite_store *s, unsigned int i,
	    struct kite_store_view *one)
{
	if (q->r.cmd == KITE_CMD_GET && !q->r.direct && !e->conf.no_bulk) {
		if (!q->looked_up)
			lookup_run(e, i);
		if (q->result == KITE_STORE_OK && !stale(e, q, e->views[q->vslot].cas))
			return &e->views[q->vslot];
		return NULL;
	}
	/* mg's u: the item is neither bumped for CLOCK nor marked fetched. */
	if ((unlikely(e->text[i].tcmd == KITE_T_MG && kite_text_has(&e->text[i], 'u'))
		     ? kite_store_peek
		     : kite_store_get)(s, q->r.key, q->r.keylen, q->hash, one) == KITE_STORE_OK &&
	    !stale(e, q, one->cas))
		return one;
	return NULL;
}

/* get, gets, gat, gats: VALUE for a hit, nothing for a miss; END after the line's last key. */
static void
exec_text_get(struct kite_engine *e, struct entry *q, struct kite_store *s, unsigned int i)
{
	const struct kite_text_req *t = &e->text[i];
	struct kite_store_view one;
	const struct kite_store_view *v;
	struct tline l;
	l.n = 0;

	if (q->r.cmd == KITE_CMD_GAT) {
		v = do_touch(e, q, s, &one) == KITE_STORE_OK ? &one : NULL;
	} else {
		v = text_lookup(e, q, s, i, &one);
	}
	if (v == NULL) {
		if (t->end)
			text_line(e, q, "END");
		return;
	}
	tl_str(&l, "VALUE ");
	tl_mem(&l, t->wkey, t->wkeylen);
	tl_str(&l, " ");
	tl_u64(&l, v->flags);
	tl_str(&l, " ");
	tl_u64(&l, v->vallen);
	if (t->with_cas) {
		tl_str(&l, " ");
		tl_u64(&l, v->cas);
	}
	tl_str(&l, "\r\n");
	const struct piece pc[3] = { { l.b, l.n }, { v->value, v->vallen },
				     { t->end ? "\r\nEND\r\n" : "\r\n", t->end ? 7 : 2 } };
	emit(e, q, pc, 3);
}

/* set, add, replace, append, prepend, cas. */
static void
exec_text_store(struct kite_engine *e, struct entry *q, struct kite_store *s, unsigned int i)
{
	const struct kite_text_req *t = &e->text[i];
	uint64_t cas = 0;
	const char *line;

	switch (do_store(e, q, s, &cas)) {
	case KITE_STORE_OK:
		line = "STORED";
		break;
	case KITE_STORE_EXISTS:
		line = t->tcmd == KITE_T_ADD ? "NOT_STORED" : "EXISTS";
		break;
	case KITE_STORE_NOT_FOUND:
		line = t->tcmd == KITE_T_CAS ? "NOT_FOUND" : "NOT_STORED";
		break;
	case KITE_STORE_TOO_LARGE:
		line = kite_text_err_str(KITE_TERR_TOO_LARGE);
		break;
	case KITE_STORE_NO_MEMORY:
		line = kite_text_err_str(KITE_TERR_NO_MEMORY);
		break;
	default:
		line = "NOT_STORED";
		break;
	}
	if (!t->noreply)
		text_line(e, q, line);
}

/* incr, decr: the new value as a line. */
static void
exec_text_delta(struct kite_engine *e, struct entry *q, struct kite_store *s, unsigned int i)
{
	const struct kite_text_req *t = &e->text[i];
	uint64_t value, cas;
	char num[24];

	switch (do_delta(e, q, s, &value, &cas)) {
	case KITE_STORE_OK:
		if (!t->noreply) {
			num[put_u64(num, value)] = '\0';
			text_line(e, q, num);
		}
		return;
	case KITE_STORE_NOT_FOUND:
		if (!t->noreply)
			text_line(e, q, "NOT_FOUND");
		return;
	case KITE_STORE_NON_NUMERIC:
		if (!t->noreply)
			text_line(e, q, kite_text_err_str(KITE_TERR_NON_NUMERIC));
		return;
	default:
		if (!t->noreply)
			text_line(e, q, "SERVER_ERROR out of memory");
		return;
	}
}

/* mg: the meta get, with the win/stale machinery (N, R, stale items) and T. */
static void
exec_mg(struct kite_engine *e, struct entry *q, struct kite_store *s, unsigned int i)
{
	const struct kite_text_req *t = &e->text[i];
	struct kite_store_view one, two;
	const struct kite_store_view *v = text_lookup(e, q, s, i, &one);
	/* h: read before this request (vivified: no); u leaves the item as it was. */
	const bool fetched = v != NULL && (v->marks & KITE_STORE_MARK_FETCHED) != 0;
	const bool bump = !kite_text_has(t, 'u');
	bool vivified = false, win = false, z = false, x = false;
	uint32_t old_exp = 0;
	struct tline l;
	l.n = 0;

	if (v == NULL && kite_text_has(t, 'N')) {
		/* Vivify: an empty item whose first reader (this one) must recache it. */
		const struct kite_store_write w = {
			.mode = KITE_STORE_ADD,
			.exptime = item_exptime(e, t->n_ttl),
			.tenant = e->dg[q->dgram]->tenant,
		};
		uint64_t cas;

		if (kite_store_store(s, q->r.key, q->r.keylen, q->hash, &w, &cas) == KITE_STORE_OK &&
		    kite_store_claim_win(s, q->r.key, q->r.keylen, q->hash, bump, &two) ==
			    KITE_STORE_OK) {
			v = &two;
			vivified = win = true;
			replicate(e, q, s, false);
		}
	}
	if (v == NULL) {
		if (t->noreply)
			return;
		tl_echo(&l, t);
		meta_out(e, q, "EN", &l, NULL, 0, false);
		return;
	}
	old_exp = v->exptime;
	if (!vivified) {
		z = (v->marks & KITE_STORE_MARK_WIN) != 0;
		x = (v->marks & KITE_STORE_MARK_STALE) != 0;
		if (kite_text_has(t, 'T')) {
			if (kite_store_touch(s, q->r.key, q->r.keylen, q->hash,
					     item_exptime(e, q->r.exptime), bump,
					     &two) == KITE_STORE_OK) {
				v = &two;
				replicate(e, q, s, false);
			}
		}
		/* One client wins the recompute: of a stale item, or ahead of expiry (R). */
		/* R sees the TTL from before T, as in memcached. */
		if (!z && (x || (kite_text_has(t, 'R') && old_exp != 0 &&
				 ttl_left(e, old_exp) < (int64_t)t->r_ttl))) {
			if (kite_store_claim_win(s, q->r.key, q->r.keylen, q->hash, bump, &two) ==
			    KITE_STORE_OK) {
				v = &two;
				win = true;
			}
		}
	}
	/* Return flags in request order; T and N act where they stand (a t before them sees before). */
	for (unsigned int f = 0; f < t->nflags; f++) {
		switch (t->flags[f]) {
		case 's':
			tl_str(&l, " s");
			tl_u64(&l, v->vallen);
			break;
		case 't':
			tl_str(&l, " t");
			/* t before N: the item did not exist yet; t before T: the old TTL. */
			if (vivified && flag_after(t, f, 'N'))
				tl_i64(&l, -1);
			else
				tl_i64(&l, ttl_left(e, flag_after(t, f, 'T') ? old_exp : v->exptime));
			break;
		case 'c':
			tl_str(&l, " c");
			tl_u64(&l, v->cas);
			break;
		case 'f':
			tl_str(&l, " f");
			tl_u64(&l, v->flags);
			break;
		case 'h':
			tl_str(&l, fetched ? " h1" : " h0");
			break;
		case 'O':
			tl_str(&l, " O");
			tl_mem(&l, t->opaque, t->opaque_len);
			break;
		case 'k':
			tl_key(&l, t);
			break;
		default:
			break;
		}
	}
	if (z)
		tl_str(&l, " Z");
	if (x)
		tl_str(&l, " X");
	if (win)
		tl_str(&l, " W");
	/* Kite: the key is hot on this node (a client may keep it in a local cache). */
	if (unlikely(e->hot.nhot != 0) && kite_hot_is_hot(&e->hot, q->hash))
		tl_str(&l, " H");
	meta_out(e, q, kite_text_has(t, 'v') ? "VA" : "HD", &l, v->value, v->vallen,
		 kite_text_has(t, 'v'));
}

/* ms: the meta set (modes, CAS, I: a late writer's value stored stale). */
static void
exec_ms(struct kite_engine *e, struct entry *q, struct kite_store *s, unsigned int i)
{
	const struct kite_text_req *t = &e->text[i];
	enum kite_store_mode mode;
	uint64_t cas = 0;
	const char *code;
	bool ok = false;

	switch (t->mode) {
	case 'E':
		mode = KITE_STORE_ADD;
		break;
	case 'A':
		mode = KITE_STORE_APPEND;
		break;
	case 'P':
		mode = KITE_STORE_PREPEND;
		break;
	case 'R':
		mode = KITE_STORE_REPLACE;
		break;
	default:
		mode = KITE_STORE_SET;
		break;
	}
	const struct kite_store_write w = {
		.mode = mode,
		.flags = q->r.flags,
		.exptime = t->has_ttl ? item_exptime(e, q->r.exptime) : 0,
		.value = q->r.value,
		.vallen = q->r.vallen,
		/* add ignores C (memcached 1.6.18). */
		.cas = mode == KITE_STORE_ADD ? 0 : q->r.cas,
		.invalidate = kite_text_has(t, 'I') &&
			      (mode == KITE_STORE_SET || mode == KITE_STORE_REPLACE),
		.tenant = e->dg[q->dgram]->tenant,
	};

	switch (kite_store_store(s, q->r.key, q->r.keylen, q->hash, &w, &cas)) {
	case KITE_STORE_OK:
		replicate(e, q, s, false);
		ok = true;
		code = "HD";
		break;
	case KITE_STORE_EXISTS:
		code = mode == KITE_STORE_ADD ? "NS" : "EX";
		break;
	case KITE_STORE_NOT_FOUND:
		code = w.cas != 0 ? "NF" : "NS";
		break;
	case KITE_STORE_TOO_LARGE:
		meta_err(e, q, kite_text_err_str(KITE_TERR_TOO_LARGE), KITE_STATUS_E2BIG);
		return;
	case KITE_STORE_NO_MEMORY:
		meta_err(e, q, kite_text_err_str(KITE_TERR_NO_MEMORY), KITE_STATUS_ENOMEM);
		return;
	default:
		code = "NS";
		break;
	}
	if (ok && t->noreply)
		return;
	text_code(e, q, t, code, true, ok ? cas : 0);
}

/* md: delete, or with I mark stale (a new CAS, the win token back, T a new TTL). */
static void
exec_md(struct kite_engine *e, struct entry *q, struct kite_store *s, unsigned int i)
{
	const struct kite_text_req *t = &e->text[i];
	enum kite_store_result rc;

	if (kite_text_has(t, 'I')) {
		const uint32_t exp = t->has_ttl ? item_exptime(e, q->r.exptime) : 0;

		rc = kite_store_mark_stale(s, q->r.key, q->r.keylen, q->hash, q->r.cas,
					   t->has_ttl ? &exp : NULL, NULL);
		if (rc == KITE_STORE_OK)
			replicate(e, q, s, false);
	} else {
		rc = kite_store_delete(s, q->r.key, q->r.keylen, q->hash, q->r.cas);
		if (rc == KITE_STORE_OK)
			replicate(e, q, s, true);
	}
	if (rc == KITE_STORE_OK && t->noreply)
		return;
	text_code(e, q, t, rc == KITE_STORE_OK ? "HD" : rc == KITE_STORE_EXISTS ? "EX" : "NF",
		  false, 0);
}

/* ma: meta arithmetic (N auto-create with J, D delta, M mode, T, C). */
static void
exec_ma(struct kite_engine *e, struct entry *q, struct kite_store *s, unsigned int i)
{
	const struct kite_text_req *t = &e->text[i];
	const bool create = kite_text_has(t, 'N');
	const struct kite_store_arith a = {
		.incr = !(t->mode == 'D' || t->mode == '-'),
		.create = create,
		.delta = kite_text_has(t, 'D') ? q->r.delta : 1,
		.initial = q->r.initial,
		.exptime = item_exptime(e, t->n_ttl),
		.cas = q->r.cas,
		.tenant = e->dg[q->dgram]->tenant,
	};
	struct kite_store_view v;
	uint64_t value, cas;
	bool existed = true;
	uint32_t old_exp = 0;
	struct tline l;
	l.n = 0;
	char num[24];
	size_t nlen;

	/* q hides the reply of a hit, not of an auto-create (memcached 1.6.18). */
	if (create && t->noreply)
		existed = kite_store_get(s, q->r.key, q->r.keylen, q->hash, &v) == KITE_STORE_OK;
	switch (kite_store_delta(s, q->r.key, q->r.keylen, q->hash, &a, &value, &cas)) {
	case KITE_STORE_OK:
		break;
	case KITE_STORE_NOT_FOUND:
		text_code(e, q, t, "NF", false, 0);
		return;
	case KITE_STORE_EXISTS:
		text_code(e, q, t, "EX", false, 0);
		return;
	case KITE_STORE_NON_NUMERIC:
		meta_err(e, q, kite_text_err_str(KITE_TERR_NON_NUMERIC), KITE_STATUS_DELTA_BADVAL);
		return;
	default:
		meta_err(e, q, "SERVER_ERROR out of memory", KITE_STATUS_ENOMEM);
		return;
	}
	/* The TTL before T, only for a t that shows it. */
	/* ma reads nothing: the new value is not fetched (mg h), as in memcached. */
	if (kite_text_has(t, 't') &&
	    kite_store_peek(s, q->r.key, q->r.keylen, q->hash, &v) == KITE_STORE_OK)
		old_exp = v.exptime;
	const uint32_t texp = t->has_ttl ? item_exptime(e, q->r.exptime) : 0;
	if (t->has_ttl &&
	    kite_store_touch(s, q->r.key, q->r.keylen, q->hash, texp, false, &v) ==
		    KITE_STORE_OK)
		cas = v.cas;
	replicate(e, q, s, false);
	if (t->noreply && existed)
		return;
	nlen = put_u64(num, value);
	for (unsigned int f = 0; f < t->nflags; f++) {
		switch (t->flags[f]) {
		case 'c':
			tl_str(&l, " c");
			tl_u64(&l, cas);
			break;
		case 't':
			tl_str(&l, " t");
			tl_i64(&l, ttl_left(e, flag_after(t, f, 'T') || !t->has_ttl ? old_exp : texp));
			break;
		case 'O':
			tl_str(&l, " O");
			tl_mem(&l, t->opaque, t->opaque_len);
			break;
		case 'k':
			tl_key(&l, t);
			break;
		default:
			break;
		}
	}
	meta_out(e, q, kite_text_has(t, 'v') ? "VA" : "HD", &l, num, (uint32_t)nlen,
		 kite_text_has(t, 'v'));
}

struct tstat_ctx {
	struct kite_engine *e;
	const struct entry *q;
};

static void
emit_text_stat(void *arg, const char *name, const char *value)
{
	struct tstat_ctx *c = arg;
	const struct piece pc[5] = { { "STAT ", 5 }, { name, strlen(name) }, { " ", 1 },
				     { value, strlen(value) }, { "\r\n", 2 } };

	emit(c->e, c->q, pc, 5);
}

/* Every text command, after the checks exec_one() makes for both dialects. */
static void
exec_text(struct kite_engine *e, struct entry *q, struct kite_store *s, unsigned int i)
{
	const struct kite_text_req *t = &e->text[i];

	switch (t->tcmd) {
	case KITE_T_GET:
	case KITE_T_GETS:
	case KITE_T_GAT:
	case KITE_T_GATS:
		if (q->r.cmd == KITE_CMD_NOOP) /* gat <exptime> with no key */
			text_line(e, q, "END");
		else
			exec_text_get(e, q, s, i);
		break;
	case KITE_T_SET:
	case KITE_T_ADD:
	case KITE_T_REPLACE:
	case KITE_T_APPEND:
	case KITE_T_PREPEND:
	case KITE_T_CAS:
		exec_text_store(e, q, s, i);
		break;
	case KITE_T_INCR:
	case KITE_T_DECR:
		exec_text_delta(e, q, s, i);
		break;
	case KITE_T_DELETE: {
		enum kite_store_result rc = do_delete(e, q, s);
		if (!t->noreply)
			text_line(e, q, rc == KITE_STORE_OK ? "DELETED" : "NOT_FOUND");
		break;
	}
	case KITE_T_TOUCH: {
		struct kite_store_view v;
		enum kite_store_result rc = do_touch(e, q, s, &v);
		if (!t->noreply)
			text_line(e, q, rc == KITE_STORE_OK ? "TOUCHED" : "NOT_FOUND");
		break;
	}
	case KITE_T_FLUSH_ALL:
		exec_flush(e, q);
		break;
	case KITE_T_VERSION:
		text_line(e, q, "VERSION " KITE_VERSION);
		break;
	case KITE_T_VERBOSITY:
		if (!t->noreply)
			text_line(e, q, "OK");
		break;
	case KITE_T_STATS: {
		struct tstat_ctx c = { e, q };

		/* The general group or one the program has (memcached answers others ERROR). */
		if (e->conf.stat == NULL ? q->r.keylen != 0
					 : !e->conf.stat(e->conf.stat_arg, e->now, q->r.key, q->r.keylen,
							 emit_text_stat, &c)) {
			text_line(e, q, "ERROR");
			break;
		}
		text_line(e, q, "END");
		break;
	}
	case KITE_T_QUIT:
		break;
	case KITE_T_MG:
		exec_mg(e, q, s, i);
		break;
	case KITE_T_MS:
		exec_ms(e, q, s, i);
		break;
	case KITE_T_MD:
		exec_md(e, q, s, i);
		break;
	case KITE_T_MA:
		exec_ma(e, q, s, i);
		break;
	case KITE_T_MN:
		text_line(e, q, "MN");
		break;
	default:
		text_line(e, q, "ERROR");
		break;
	}
}

/* ---- the bound before a request runs ------------------------------------ */

/* The most bytes of return flags a meta request can get back: those of `shown` (NULL: all). */
static size_t
meta_flags_max(const struct kite_text_req *t, const char *shown)
{
	size_t n = 0;

	for (unsigned int f = 0; f < t->nflags; f++) {
		if (shown != NULL && strchr(shown, t->flags[f]) == NULL)
			continue;
		if (t->flags[f] == 'k')
			n += 2 + t->wkeylen + (t->b64 ? 2 : 0);
		else if (t->flags[f] == 'O')
			n += 2 + t->opaque_len;
		else
			n += 2 + 20; /* " c", then a u64 (or an i64 TTL) */
	}
	return n;
}

/*
 * The longest success reply of a request that changes state, where it can
 * be longer than a status (a binary header, a text cut line); 0 where it
 * cannot, or the request changes nothing. Failures change nothing either.
 * mg counts: any mg may take an item's win token (N, R, a stale item).
 */
static size_t
reply_max(struct kite_engine *e, const struct entry *q, struct kite_store *s, unsigned int i)
{
	struct kite_store_view v;
	const bool text = q->r.dialect == KITE_DIALECT_TEXT;

	if (text || kite_proto_is_meta(q->r.opcode)) {
		const struct kite_text_req *t = &e->text[i];
		size_t val = 0, flags = 0;

		switch (t->tcmd) {
		case KITE_T_GAT:
		case KITE_T_GATS:
			if (q->r.cmd != KITE_CMD_GAT ||
			    kite_store_peek(s, q->r.key, q->r.keylen, q->hash, &v) != KITE_STORE_OK)
				return 0; /* END, or nothing */
			/* "VALUE <key> <flags> <bytes> <cas>\r\n<data>\r\nEND\r\n" */
			return 6 + t->wkeylen + 3 * 21 + 2 + v.vallen + 7;
		case KITE_T_MG:
			if (kite_text_has(t, 'v'))
				val = 2 + (kite_store_peek(s, q->r.key, q->r.keylen, q->hash, &v) ==
							   KITE_STORE_OK
						   ? v.vallen
						   : 0);
			flags = meta_flags_max(t, NULL) + sizeof(" Z X W H") - 1;
			break;
		case KITE_T_MA:
			if (kite_text_has(t, 'v'))
				val = 20 + 2;
			flags = meta_flags_max(t, "ctOk");
			break;
		case KITE_T_MS:
			flags = meta_flags_max(t, "cOk");
			break;
		case KITE_T_MD:
			flags = meta_flags_max(t, "Ok");
			break;
		default:
			return 0;
		}
		/* val: the value and its line end, 2 bytes at least where one is shown (v). */
		if (text) /* "VA <len>" or a code, the flags, the line's end, the value */
			return 2 + (val != 0 ? 11 : 0) + flags + 2 + val;
		return 24 + (flags > 255 ? 255 : flags) + val;
	}
	switch (q->r.cmd) {
	case KITE_CMD_INCR:
	case KITE_CMD_DECR:
		return q->r.quiet ? 0 : 24 + 8;
	case KITE_CMD_GAT:
		if (q->r.quiet ||
		    kite_store_peek(s, q->r.key, q->r.keylen, q->hash, &v) != KITE_STORE_OK)
			return 0;
		return 24 + 4 + q->r.keylen + v.vallen;
	default:
		return 0;
	}
}

/*
 * A bounded datagram: a request that changes state runs only if its
 * longest reply fits the bound. Cut after it ran, its client would take
 * COOKIE_REQUIRED for "not done" and retry (libkite does, with the cookie
 * the cut brought) what happened already: an INCR twice, a CAS store told
 * EXISTS, or a win token (mg N) handed to no one, so that every reader
 * waits for a value nobody computes. True: cut here, nothing ran.
 */
static bool
precut(struct kite_engine *e, const struct entry *q, struct kite_store *s, unsigned int i)
{
	const size_t unit = q->r.dialect == KITE_DIALECT_TEXT ? TEXT_STATUS_MAX : 24u;
	const size_t max = reply_max(e, q, s, i);

	if (max <= unit || budget_fits(e, q, max))
		return false;
	cut_now(e, q);
	return true;
}

static void
exec_one(struct kite_engine *e, unsigned int i)
{
	struct entry *q = &e->ent[i];
	struct kite_engine_stats *st = e->conf.stats;
	struct kite_store *s = NULL;
	const struct kite_engine_dgram *d = e->dg[q->dgram];

	e->left[q->dgram]--;
	if (unlikely(q->status == ENTRY_ROUND) && q->kind == ENTRY_REQ) {
		/*
		 * One step of a flush_all's round (parse_text): flush, answer
		 * nothing; the worker that ends the round answers (or, once the
		 * datagram is cut, tells it so).
		 */
		e->left[q->dgram]++;
		if (e->cut[q->dgram] == 0)
			flush_parts(e, q);
		return;
	}
	if (unlikely(e->cut[q->dgram] != 0)) {
		/* Cut: nothing more of this datagram runs; each request is told so. */
		if (d->ordered || ((q->kind == ENTRY_REQ && q->keyed) ? owns(e, q->part) : d->home)) {
			if (e->cut[q->dgram] == KITE_STATUS_COOKIE_REQUIRED)
				st->cut_bound++;
			else
				st->cut_work++;
			e->forced = true;
			respond(e, q, e->cut[q->dgram], 0, NULL, 0, NULL, 0, NULL, 0);
			e->forced = false;
		}
		return;
	}
	if (q->kind == ENTRY_REQ && unlikely(e->work_left[q->dgram] != UINT32_MAX) &&
	    (q->keyed ? owns(e, q->part) : answers(d) || q->r.cmd == KITE_CMD_FLUSH)) {
		const uint32_t cost = q->r.cmd == KITE_CMD_STAT    ? KITE_ENGINE_WORK_STAT
				      : q->r.cmd == KITE_CMD_FLUSH ? KITE_ENGINE_WORK_FLUSH
								   : 1;
		if (e->work_left[q->dgram] < cost) {
			e->cut[q->dgram] = KITE_STATUS_RATE_LIMITED;
			e->left[q->dgram]++;
			exec_one(e, i);
			return;
		}
		e->work_left[q->dgram] -= cost;
	}
	if (q->kind == ENTRY_ERR) {
		if (q->status == KITE_STATUS_RATE_LIMITED || q->status == KITE_STATUS_AUTH_ERROR) {
			if (answers(d))
				st->refused++;
		}
		if (answers(d) && q->r.dialect == KITE_DIALECT_TEXT && q->status == 0) {
			/* A text parse error: memcached's line, unless noreply hides it. */
			const struct kite_text_req *t = &e->text[i];

			st->err_replies++;
			if (t->err == KITE_TERR_ERROR)
				st->unknown_cmd++;
			if (!t->noreply)
				text_line(e, q, kite_text_err_str((enum kite_text_err)t->err));
			return;
		}
		if (answers(d)) {
			st->err_replies++;
			if (q->status == KITE_STATUS_UNKNOWN_COMMAND)
				st->unknown_cmd++;
			if (q->result == META_FLAG_ERROR) {
				/* A META_* request's bad flags: EINVAL with memcached's line as the body. */
				const char *m = kite_text_err_str((enum kite_text_err)e->text[i].err);
				respond(e, q, q->status, 0, NULL, 0, NULL, 0, m, (uint32_t)strlen(m));
			} else if (q->status == KITE_STATUS_FORBIDDEN || q->status == KITE_STATUS_AUTH_ERROR ||
			    q->status == KITE_STATUS_RATE_LIMITED)
				/* The guard's refusals: a bare status, never larger than the request. */
				respond(e, q, q->status, 0, NULL, 0, NULL, 0, NULL, 0);
			else
				respond_err(e, q, q->status);
		}
		return;
	}
	if (q->keyed) {
		if (!owns(e, q->part)) {
			st->not_owned++;
			return;
		}
		if (cluster_refuses(e, q))
			return;
		s = e->conf.parts[q->part];
		if (!q->looked_up && !q->hashed)
			q->hash = kite_store_hash(s, q->r.key, q->r.keylen);
		/* Reads count for the hot keys (sampled: one in KITE_HOT_SAMPLE). */
		if ((q->r.cmd == KITE_CMD_GET || q->r.cmd == KITE_CMD_GAT) && !e->conf.no_hot)
			kite_hot_seen(&e->hot, q->hash, q->r.key, q->r.keylen);
		/* A write never builds on an item from before (GET checks its hit). */
		if (q->r.cmd != KITE_CMD_GET) {
			uint64_t since = since_of(e, q);

			if (unlikely(since != 0) &&
			    kite_store_drop_older(s, q->r.key, q->r.keylen, q->hash, since))
				st->stale_hidden++;
		}
	} else if (!answers(d) && q->r.cmd != KITE_CMD_FLUSH) {
		return;
	}
	if (unlikely(d->budget != 0) && s != NULL && precut(e, q, s, i))
		return;
	st->cmd[q->r.cmd]++;
	st->served++;
	if (q->r.dialect == KITE_DIALECT_TEXT || unlikely(kite_proto_is_meta(q->r.opcode))) {
		exec_text(e, q, s, i);
		return;
	}
	/* The parser admits only the commands below. */
	switch (q->r.cmd) {
	case KITE_CMD_GET:
		exec_get(e, q, s, i);
		break;
	case KITE_CMD_SET:
	case KITE_CMD_ADD:
	case KITE_CMD_REPLACE:
	case KITE_CMD_APPEND:
	case KITE_CMD_PREPEND:
		exec_store(e, q, s);
		break;
	case KITE_CMD_DELETE:
		exec_delete(e, q, s);
		break;
	case KITE_CMD_INCR:
	case KITE_CMD_DECR:
		exec_delta(e, q, s);
		break;
	case KITE_CMD_TOUCH:
	case KITE_CMD_GAT:
		exec_touch(e, q, s);
		break;
	case KITE_CMD_NOOP:
	case KITE_CMD_QUIT:
		exec_empty(e, q);
		break;
	case KITE_CMD_VERSION:
		exec_version(e, q);
		break;
	case KITE_CMD_STAT:
		exec_stat(e, q);
		break;
	case KITE_CMD_FLUSH:
		exec_flush(e, q);
		break;
	case KITE_CMD_TOPOLOGY:
		exec_topology(e, q);
		break;
	case KITE_CMD_CLUSTER_MAP:
		exec_cluster_map(e, q);
		break;
	case KITE_CMD_FILL_GET:
		exec_fill_get(e, q, s);
		break;
	default:
		respond_err(e, q, KITE_STATUS_UNKNOWN_COMMAND);
		break;
	}
}

/* Execute the table: strictly in order, each entry once. */
static void
execute(struct kite_engine *e)
{
	const struct kite_engine_cluster *c = e->cluster;

	/*
	 * One look at the fence per table: writes that waited in the ring
	 * while the process was stopped are judged by the time they run.
	 */
	/* No clock read where nothing depends on it (cluster = none). */
	uint64_t now = c != NULL && (c->fence_tsc != NULL || c->prev_until_tsc != 0) ? rte_rdtsc() : 0;

	e->fenced = c != NULL && c->fence_tsc != NULL && now > *c->fence_tsc;
	e->prev_ok = c != NULL && now < c->prev_until_tsc;
	/*
	 * warm_run() is for tables with writes: one look for the first finds
	 * a table of reads without each window looking again (warm_run's own
	 * scan for a write, entry by entry, was 2 % of a GET's instructions).
	 */
	bool warm = !e->conf.no_prefetch && !e->conf.no_bulk;
	if (warm) {
		unsigned int w = 0;

		while (w < e->nent && is_readonly(&e->ent[w]))
			w++;
		warm = w < e->nent;
	}
	for (unsigned int i = 0; i < e->nent; i++) {
		/* A window ahead: its lines arrive while this one runs. */
		if (warm && i % WARM_WINDOW == 0) {
			if (i == 0)
				warm_run(e, 0);
			warm_run(e, i + WARM_WINDOW);
		}
		exec_one(e, i);
	}
	e->nent = 0;
	e->last_first = 0;
}

void
kite_engine_execute(struct kite_engine *e)
{
	execute(e);
	close_dgram(e);
	if (e->conf.out.carry != NULL)
		for (unsigned int i = 0; i < e->ndg; i++) {
			struct kite_engine_dgram *d = e->dg[i];

			if (likely(!d->ordered))
				continue;
			if (d->relay_to >= 0) {
				/* What goes on with it (its reply: close_dgram()). */
				d->relay.cut = e->cut[i];
				d->relay.work_left = e->work_left[i];
				d->relay.left = e->left[i];
			} else if (d->relay.nbufs != 0) {
				/* Relayed here and finished without a word: its reply leaves now. */
				open_dgram(e, i);
				close_dgram(e);
			}
		}
	e->ndg = 0;
}

void
kite_engine_process(struct kite_engine *e, struct kite_engine_dgram *d, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		kite_engine_parse(e, &d[i]);
	kite_engine_execute(e);
}
