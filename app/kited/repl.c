/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Replication (issue 11): the owner's worker
 * turns every mutation of a replicated vbucket into a REPL record
 * (lib/repl: the item's state after it, with the owner's CAS and a
 * sequence number per vbucket), batches records per replica partition
 * port into datagrams sent at the end of the burst, and keeps what it sent
 * in a log per destination. The replica's worker checks the MAC and the
 * map epoch, applies records in sequence order with the owner's CAS, and
 * answers with ACK pairs (applied up to) and NACK pairs (missing from);
 * the owner answers a NACK from its log, and sends the newest datagram
 * again to a replica that has not acknowledged for a while, so a lost
 * tail is noticed too. A new replica is backfilled (RESET, the items,
 * MARK in the stream); replication = sync holds replies until the
 * replicas acknowledged. Everything runs on the workers, lock-free: a
 * vbucket's sequence and expectation are touched only by the worker that
 * owns its partition.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "kite_repl.h"
#include "kited.h"
#include "kited_repl.h"

#define REPL_MAX_DEST 64
#define REPL_LOG_BYTES (256u << 10)
#define REPL_LOG_ENTRIES 512
#define REPL_RESEND_MS 100 /* a datagram unacknowledged this long is sent again */
#define REPL_MAX_SENDS 50  /* ... at most this often (5 s), then given up */

struct repl_dest {
	uint32_t ip; /* host order */
	uint16_t port;
	bool open, unacked;
	uint64_t epoch;         /* of the datagram being built */
	uint64_t last_send;     /* TSC */
	uint64_t last_arp;
	struct kite_repl_builder b;
	uint8_t *buf;           /* max_payload bytes */
	struct kite_repl_log log;
	/* For STAT (read by the control thread as they are). */
	uint64_t lag_ops, lag_us, retransmits, resyncs, acks;
	struct worker *w; /* its worker (the log's lost callback) */
};

/* only: the one partition to walk, UINT32_MAX for all of this worker's. */
static void purge(struct worker *w, const uint8_t *flags, uint32_t vbuckets, uint32_t only);
static void backfill_want(struct worker *w, uint32_t vb, unsigned int k);
static void gaps_retry(struct worker *w, uint64_t now);

/* A replica's open gap: asked for again until the missing record arrives. */
#define REPL_MAX_GAPS 256
struct repl_gap {
	uint32_t vb;
	uint64_t top; /* the highest sequence seen beyond the gap: closed once applied */
	uint32_t ip; /* the owner */
	uint16_t port, local;
	uint8_t tries;
	uint64_t tsc;
};

/* replication = sync: reply sets held until the replicas acknowledged. */
#define SYNC_HELD 1024          /* reply sets */
#define SYNC_MBUFS 4096         /* their datagrams */
#define SYNC_PAIRS 16384        /* their (vbucket, sequence) pairs */
#define SYNC_BURST_PAIRS 4096   /* pairs one burst may emit */
#define SYNC_CHECK_US 500       /* timeouts are looked at this often */
struct sync_pair {
	uint32_t vb;
	uint64_t seq;
};
struct sync_held {
	uint64_t deadline; /* TSC */
	struct kite_net_udp u;
	uint64_t mb, pr;   /* first datagram and pair (ring positions) */
	uint32_t nmb, npr;
	bool silent, done;
	uint8_t skip;      /* the guard's reply envelope ahead of datagram 0's responses */
	/* A relayed text datagram (no reply datagrams held): it goes on to relay_to once acked. */
	struct rte_mbuf *relay;
	uint16_t relay_to;
};

/* Items per backfill step (between bursts, or when idle). */
#define BACKFILL_STEP 256
/* Vbuckets one walk backfills at most (their RESETs and MARKs). */
#define BACKFILL_MAX_VBS 256
/* A backfill waits while a replica has more datagrams than this unacknowledged. */
#define BACKFILL_MAX_UNACKED (REPL_LOG_ENTRIES / 4)

struct worker_repl {
	/* replication = sync */
	struct sync_pair bp[SYNC_BURST_PAIRS]; /* this burst's, per datagram (dgram_ctx) */
	uint32_t nbp;
	struct sync_held held[SYNC_HELD];
	uint64_t h_head, h_tail;
	struct rte_mbuf *mb[SYNC_MBUFS];
	uint64_t mb_head, mb_tail;
	struct sync_pair pr[SYNC_PAIRS];
	uint64_t pr_head, pr_tail;
	bool sync_dirty;     /* an ACK arrived: look at the held sets */
	uint64_t sync_next;  /* TSC of the next look for timeouts */
	/* Backfill: one partition walked at a time, a step per burst. */
	bool bf_on, bf_maybe; /* walking; vbuckets may wait for one */
	uint32_t bf_part;
	struct kite_store_cursor bf_cur;
	uint64_t lag_hist[KITED_REPL_LAG_BUCKETS];
	struct repl_gap gap[REPL_MAX_GAPS];
	unsigned int ngap;
	struct repl_dest dest[REPL_MAX_DEST];
	unsigned int ndest;
	uint16_t src_port; /* a partition port of this worker: ACKs come back to it */
	uint16_t req_id;
	uint64_t next_timer;
	uint64_t ticks;
	bool flush_due;      /* replicated FLUSHes wait (repl_flush_at) */
	struct kited_repl_stats st;
};

_Static_assert(KITE_REPL_SECRET_LEN == KITE_GUARD_SECRET_LEN, "one parser for both secrets");

/*
 * The cluster secret file: the secret (64 hex digits) on the first line,
 * optionally the previous one on the second. Datagrams are sent under the
 * first and accepted under either, so a secret is rotated by a rolling
 * restart with both lines, then one more with the new line alone.
 */
static int
secret_read(struct node *n)
{
	char buf[512], *line, *save = NULL;
	unsigned int k = 0;
	size_t len;
	FILE *f = fopen(n->cfg.cluster_secret_file, "r");

	if (f == NULL) {
		KLOG(ERR, "replication: cluster-secret-file %s: %s", n->cfg.cluster_secret_file,
		     strerror(errno));
		return -errno;
	}
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		size_t l = strlen(line);

		while (l > 0 && (line[l - 1] == ' ' || line[l - 1] == '\r'))
			line[--l] = '\0';
		if (l == 0)
			continue;
		if (k == 2 || kite_guard_secret_parse(line, l, k == 0 ? n->repl_secret : n->repl_secret_old) != 0) {
			KLOG(ERR, "replication: cluster-secret-file %s: one or two lines of 64 hex "
				  "digits (32 bytes): the secret, then optionally the previous one",
			     n->cfg.cluster_secret_file);
			return -EINVAL;
		}
		k++;
	}
	if (k == 0) {
		KLOG(ERR, "replication: cluster-secret-file %s is empty", n->cfg.cluster_secret_file);
		return -EINVAL;
	}
	n->repl_secret_two = k == 2;
	return 0;
}

int
kited_repl_setup(struct node *n)
{
	int rc;

	if (n->cfg.replicas == 0)
		return 0;
	if ((rc = secret_read(n)) != 0)
		return rc;
	n->repl_seq = rte_zmalloc("kite_repl_seq", sizeof(uint64_t) * n->cfg.vbuckets, 0);
	n->repl_expected = rte_zmalloc("kite_repl_exp", sizeof(uint64_t) * n->cfg.vbuckets, 0);
	n->repl_clean = rte_zmalloc("kite_repl_clean", n->cfg.vbuckets, 0);
	n->repl_prev_role = rte_zmalloc("kite_repl_role", n->cfg.vbuckets, 0);
	n->repl_fresh = rte_zmalloc("kite_repl_fresh", n->cfg.vbuckets, 0);
	n->repl_prev_owner = rte_zmalloc("kite_repl_owner", sizeof(uint32_t) * n->cfg.vbuckets, 0);
	n->repl_slot = rte_zmalloc("kite_repl_slot", sizeof(uint32_t) * 2 * n->cfg.vbuckets, 0);
	n->repl_acked = rte_zmalloc("kite_repl_acked", sizeof(uint64_t) * 2 * n->cfg.vbuckets, 0);
	n->repl_bf = rte_zmalloc("kite_repl_bf", n->cfg.vbuckets, 0);
	n->repl_synced = rte_zmalloc("kite_repl_synced", n->cfg.vbuckets, 0);
	n->repl_ask = rte_zmalloc("kite_repl_ask", n->cfg.vbuckets, 0);
	n->repl_owner_ip = rte_zmalloc("kite_repl_oip", sizeof(uint32_t) * n->cfg.vbuckets, 0);
	n->repl_handover = rte_zmalloc("kite_repl_ho", sizeof(uint32_t) * n->cfg.vbuckets, 0);
	n->repl_flush_at = rte_zmalloc("kite_repl_fl", sizeof(uint32_t) * n->cfg.vbuckets, 0);
	if (n->repl_seq == NULL || n->repl_expected == NULL || n->repl_clean == NULL ||
	    n->repl_prev_role == NULL || n->repl_prev_owner == NULL || n->repl_fresh == NULL ||
	    n->repl_slot == NULL || n->repl_acked == NULL || n->repl_bf == NULL ||
	    n->repl_synced == NULL || n->repl_ask == NULL || n->repl_owner_ip == NULL ||
	    n->repl_handover == NULL || n->repl_flush_at == NULL)
		return -ENOMEM;
	n->repl_sync = strcmp(n->cfg.replication, "sync") == 0;
	n->repl_sync_tsc = n->tsc_hz * n->cfg.sync_timeout_ms / 1000;
	for (unsigned int i = 0; i < n->n_workers; i++) {
		struct worker *w = &n->workers[i];
		struct worker_repl *r = rte_zmalloc_socket("kite_repl", sizeof(*r), 64, w->socket);

		if (r == NULL)
			return -ENOMEM;
		/* Partition p belongs to worker p mod workers: worker i's first is i. */
		r->src_port = kite_topo_port(&n->map, i);
		w->repl = r;
	}
	n->repl_on = true;
	KLOG(INFO, "replication: %u replica(s) per vbucket, %s", n->cfg.replicas,
	     n->cfg.replication);
	return 0;
}

void
kited_repl_free(struct node *n)
{
	for (unsigned int i = 0; n->workers != NULL && i < n->n_workers; i++) {
		struct worker_repl *r = n->workers[i].repl;

		if (r == NULL)
			continue;
		for (uint64_t h = r->h_head; h < r->h_tail; h++) {
			const struct sync_held *e = &r->held[h % SYNC_HELD];

			for (uint32_t k = 0; !e->done && k < e->nmb; k++)
				rte_pktmbuf_free(r->mb[(e->mb + k) % SYNC_MBUFS]);
			if (!e->done && e->relay != NULL)
				n->repl_relay_drop(&n->workers[i], e->relay);
		}
		for (unsigned int d = 0; d < r->ndest; d++) {
			rte_free(r->dest[d].buf);
			rte_free(r->dest[d].log.mem);
			rte_free(r->dest[d].log.ent);
		}
		rte_free(r);
		n->workers[i].repl = NULL;
	}
	rte_free(n->repl_seq);
	rte_free(n->repl_expected);
	rte_free(n->repl_clean);
	rte_free(n->repl_prev_role);
	rte_free(n->repl_fresh);
	n->repl_fresh = NULL;
	rte_free(n->repl_prev_owner);
	rte_free(n->repl_slot);
	rte_free(n->repl_acked);
	rte_free(n->repl_bf);
	rte_free(n->repl_synced);
	rte_free(n->repl_ask);
	rte_free(n->repl_owner_ip);
	rte_free(n->repl_handover);
	rte_free(n->repl_flush_at);
	n->repl_owner_ip = n->repl_handover = n->repl_flush_at = NULL;
	n->repl_ask = NULL;
	n->repl_slot = NULL;
	n->repl_acked = NULL;
	n->repl_bf = n->repl_synced = NULL;
	n->repl_seq = n->repl_expected = NULL;
	n->repl_clean = n->repl_prev_role = NULL;
	n->repl_prev_owner = NULL;
}

static unsigned int slot_of(const struct node *n, const struct kited_cview *view, uint32_t vb,
			    uint32_t ip);

/*
 * A datagram the log forgot before the replica acknowledged it (a burst
 * larger than the log: a FLUSH, a big backfill): it cannot be sent again,
 * and if it held a vbucket's last records no gap would ever show them
 * missing, so every vbucket it carried is backfilled to that replica.
 */
static void
on_log_lost(void *arg, const uint8_t *dg, size_t len)
{
	struct repl_dest *d = arg;
	struct worker *w = d->w;
	const struct kited_cview *view = w->cview;
	const uint8_t *p = dg + KITE_REPL_HDR_LEN, *end = dg + len - KITE_REPL_MAC_LEN;
	struct kite_repl_rec rec;

	w->repl->st.log_lost++;
	if (view == NULL || view->role == NULL || view->map.vbuckets != w->node->cfg.vbuckets)
		return;
	while (kite_repl_next_rec(&p, end, &rec) == 1) {
		unsigned int k;

		if (rec.vbucket >= view->map.vbuckets ||
		    view->role[rec.vbucket] != KITE_ENGINE_ROLE_OWNER)
			continue;
		k = slot_of(w->node, view, rec.vbucket, d->ip);
		if (k != 0)
			backfill_want(w, rec.vbucket, k);
	}
}

static struct repl_dest *
dest_get(struct worker *w, uint32_t ip, uint16_t port)
{
	struct worker_repl *r = w->repl;
	struct repl_dest *d;

	for (unsigned int i = 0; i < r->ndest; i++)
		if (r->dest[i].ip == ip && r->dest[i].port == port)
			return &r->dest[i];
	if (r->ndest == REPL_MAX_DEST)
		return NULL;
	d = &r->dest[r->ndest];
	memset(d, 0, sizeof(*d));
	d->buf = rte_malloc_socket("kite_repl_buf", w->node->max_payload, 64, w->socket);
	uint8_t *mem = rte_malloc_socket("kite_repl_log", REPL_LOG_BYTES, 64, w->socket);
	struct kite_repl_log_ent *ent = rte_malloc_socket(
		"kite_repl_ent", sizeof(*ent) * REPL_LOG_ENTRIES, 64, w->socket);
	if (d->buf == NULL || mem == NULL || ent == NULL) {
		rte_free(d->buf);
		rte_free(mem);
		rte_free(ent);
		return NULL;
	}
	kite_repl_log_init(&d->log, mem, REPL_LOG_BYTES, ent, REPL_LOG_ENTRIES);
	d->log.lost = on_log_lost;
	d->log.lost_arg = d;
	d->w = w;
	d->ip = ip;
	d->port = port;
	r->ndest++;
	return d;
}

/* Send bytes to a peer's port from this worker's port (ARP first if needed). */
static void
send_to(struct worker *w, uint32_t ip, uint16_t port, uint16_t from, const uint8_t *p, size_t len,
	uint64_t *last_arp)
{
	struct worker_repl *r = w->repl;
	struct kite_net_udp u;
	struct rte_mbuf *m;
	uint64_t now = rte_rdtsc();

	memset(&u, 0, sizeof(u));
	if (kite_net_arp_lookup(w->net, ip, &u.src_mac) != 0) {
		r->st.arp_misses++;
		if (last_arp != NULL && now - *last_arp < w->node->tsc_hz / 10)
			return;
		m = rte_pktmbuf_alloc(w->pool);
		if (m != NULL && kite_net_arp_request(w->net, m, ip) == 0)
			w->node->repl_tx(w, m);
		else if (m != NULL)
			rte_pktmbuf_free(m);
		if (last_arp != NULL)
			*last_arp = now;
		return;
	}
	m = rte_pktmbuf_alloc(w->pool);
	if (m == NULL) {
		r->st.nombuf++;
		return;
	}
	char *dst = rte_pktmbuf_append(m, (uint16_t)len);
	if (dst == NULL) {
		rte_pktmbuf_free(m);
		r->st.nombuf++;
		return;
	}
	memcpy(dst, p, len);
	u.src_ip = ip;
	u.src_port = port;
	u.dst_ip = w->node->cfg.ip;
	u.dst_port = from;
	w->node->repl_reply(w, m, &u);
	r->st.tx_datagrams++;
}

static void
dest_flush(struct worker *w, struct repl_dest *d)
{
	size_t len;

	if (!d->open)
		return;
	len = kite_repl_close(&d->b, w->node->repl_secret);
	kite_repl_log_add(&d->log, d->buf, len, rte_rdtsc());
	send_to(w, d->ip, d->port, w->repl->src_port, d->buf, len, &d->last_arp);
	d->open = false;
	d->unacked = true;
	d->last_send = rte_rdtsc();
}

struct resend_ctx {
	struct worker *w;
	struct repl_dest *d;
};

static void
on_resend_quiet(void *arg, const uint8_t *dg, size_t len)
{
	struct resend_ctx *x = arg;

	send_to(x->w, x->d->ip, x->d->port, x->w->repl->src_port, dg, len, &x->d->last_arp);
}

static void
on_resend(void *arg, const uint8_t *dg, size_t len)
{
	struct resend_ctx *x = arg;

	on_resend_quiet(arg, dg, len);
	x->w->repl->st.retransmits++;
}

/* Add a record to the datagram being built for d (a new one when it does not fit). */
static int
dest_add(struct worker *w, struct repl_dest *d, const struct kited_cview *view,
	 const struct kite_repl_rec *rec)
{
	if (d->open && (d->epoch != view->ec.epoch || !kite_repl_fits(&d->b, rec->keylen,
								       rec->vallen)))
		dest_flush(w, d);
	if (!d->open) {
		kite_repl_begin(&d->b, d->buf, w->node->max_payload, KITE_REPL_DATA,
				w->repl->req_id++, 0, (uint32_t)view->self, view->ec.epoch);
		d->epoch = view->ec.epoch;
		d->open = true;
	}
	if (kite_repl_add_rec(&d->b, rec) != 0) {
		/* Larger than one datagram alone: not replicated (counted). */
		w->repl->st.too_large++;
		return -1;
	}
	return 0;
}

/*
 * The member in replica slot k (1, 2) of vb in view: one of the first
 * `replicas` nodes after the owner, which hold its stream; NONE if none.
 */
static uint8_t
slot_member(const struct node *n, const struct kited_cview *view, uint32_t vb, unsigned int k)
{
	const uint8_t *l = kite_cluster_nodes(&view->map, vb);

	if (k > n->cfg.replicas || k >= view->map.copies || (int)l[k] == view->self)
		return KITE_CLUSTER_NONE;
	return l[k];
}

/* The destination of a vbucket's replica slot k (1, 2) in view; NULL: none. */
static struct repl_dest *
slot_dest(struct worker *w, const struct kited_cview *view, uint32_t vb, unsigned int k)
{
	uint8_t m = slot_member(w->node, view, vb, k);
	const struct kite_cluster_member *mb;
	struct repl_dest *d;

	if (m == KITE_CLUSTER_NONE)
		return NULL;
	mb = &view->map.members[m];
	d = dest_get(w, mb->ip, (uint16_t)(mb->base_port + (vb & (mb->partitions - 1u))));
	if (d == NULL)
		w->repl->st.no_dest++;
	return d;
}

/*
 * One record of an owned vbucket to each of its replicas, with the next
 * sequence number; *sent (may be NULL) counts the replicas. @return the
 * sequence, 0 when the vbucket has no replica to send it to (nothing to
 * wait for).
 */
static uint64_t
emit_rec(struct worker *w, struct kite_repl_rec *rec, uint64_t *sent)
{
	const struct kited_cview *view = w->cview;
	unsigned int to = 0;

	rec->seq = ++w->node->repl_seq[rec->vbucket];
	for (unsigned int k = 1; k <= 2; k++) {
		struct repl_dest *d = slot_dest(w, view, rec->vbucket, k);

		if (d == NULL || dest_add(w, d, view, rec) != 0)
			continue;
		to++;
	}
	if (sent != NULL)
		*sent += to;
	return to > 0 ? rec->seq : 0;
}

void
kited_repl_emit(void *arg, void *dgram_arg, uint32_t vb, uint8_t kind, const uint8_t *key,
		uint16_t keylen, const struct kite_store_view *v, bool silent)
{
	struct worker *w = arg;
	const struct kited_cview *view = w->cview;
	struct dgram_ctx *c = dgram_arg;
	struct worker_repl *r = w->repl;
	struct kite_repl_rec rec;
	uint64_t seq;

	if (r == NULL || view == NULL || view->self < 0 || view->role == NULL)
		return;
	if (kind == KITE_REPL_FLUSH && vb == KITE_ENGINE_REPL_ALL) {
		/* A FLUSH: one record per vbucket this worker owns, in each one's stream. */
		struct node *n = w->node;

		for (uint32_t p = 0; p < n->n_parts; p++) {
			if (kite_topo_owner(&n->map, p) != w->id)
				continue;
			for (uint32_t b = p; b < view->map.vbuckets; b += n->n_parts) {
				struct kite_repl_rec f = { .kind = KITE_REPL_FLUSH, .vbucket = b,
							   .exptime = v != NULL ? v->exptime : 0 };

				if (view->role[b] == KITE_ENGINE_ROLE_OWNER)
					emit_rec(w, &f, &r->st.tx_records);
			}
		}
		return;
	}
	if (vb >= view->map.vbuckets || view->role[vb] != KITE_ENGINE_ROLE_OWNER)
		return;
	memset(&rec, 0, sizeof(rec));
	rec.kind = kind;
	rec.vbucket = vb;
	rec.key = key;
	rec.keylen = keylen;
	if (v != NULL) {
		rec.cas = v->cas;
		rec.flags = v->flags;
		rec.exptime = v->exptime;
		rec.value = v->value;
		rec.vallen = v->vallen;
	}
	seq = emit_rec(w, &rec, &r->st.tx_records);
	if (!w->node->repl_sync || c == NULL || seq == 0)
		return;
	/* The datagram's pairs are consecutive: the engine executes datagram by datagram. */
	if (r->nbp == SYNC_BURST_PAIRS || (c->sync_n > 0 && c->sync_lo + c->sync_n != r->nbp)) {
		c->sync_over = true;
		return;
	}
	if (c->sync_n == 0)
		c->sync_lo = r->nbp;
	r->bp[r->nbp++] = (struct sync_pair){ vb, seq };
	c->sync_n++;
	c->sync_silent |= silent;
}

/* ---- replication = sync: held replies ---------------------------------- */

/* A response to a command that changes an item (the protocol's own opcode table). */
static bool
is_mutation(uint8_t op)
{
	bool quiet, want_key;

	switch (kite_proto_cmd(op, &quiet, &want_key)) {
	case KITE_CMD_SET: case KITE_CMD_ADD: case KITE_CMD_REPLACE: case KITE_CMD_APPEND:
	case KITE_CMD_PREPEND: case KITE_CMD_DELETE: case KITE_CMD_INCR: case KITE_CMD_DECR:
	case KITE_CMD_TOUCH: case KITE_CMD_GAT:
		return true;
	default:
		return false;
	}
}

/*
 * A timed-out set: every successful mutation response becomes ETMPFAIL
 * (its body stays, so lengths and the datagrams' split are unchanged).
 * Responses continue across datagrams: the payloads after their frames
 * are read as one stream.
 */
static void
patch_statuses(struct rte_mbuf *const *m, unsigned int n, uint8_t skip)
{
	uint64_t pos = 0, next = 0; /* stream offset; the next response header's */
	uint8_t hdr[24], *where[24];

	for (unsigned int i = 0; i < n; i++) {
		/* Datagram 0 may start with the guard's reply envelope: no response of its own. */
		const uint32_t head = KITE_FRAME_HDR_LEN + (i == 0 ? skip : 0);
		uint8_t *p = rte_pktmbuf_mtod(m[i], uint8_t *) + head;
		uint32_t len = rte_pktmbuf_data_len(m[i]) > head ? rte_pktmbuf_data_len(m[i]) - head : 0;

		for (uint32_t off = 0; off < len; off++, pos++) {
			if (pos < next)
				continue;
			/* Inside a header: keep its bytes and where they are (status at 6-7). */
			uint64_t h = pos - next;

			hdr[h] = p[off];
			where[h] = p + off;
			if (h < 23)
				continue;
			if (hdr[0] == KITE_MAGIC_RES && is_mutation(hdr[1]) && hdr[6] == 0 &&
			    hdr[7] == 0) {
				*where[6] = (uint8_t)(KITE_STATUS_ETMPFAIL >> 8);
				*where[7] = (uint8_t)(KITE_STATUS_ETMPFAIL & 0xff);
			}
			next = pos + 1 + kite_proto_get32(hdr + 8);
		}
	}
}

/* Send a held (or never held) set: headers now; after a timeout, patched or withheld. */
static void
sync_finish(struct worker *w, struct rte_mbuf **m, unsigned int n, const struct kite_net_udp *u,
	    uint8_t skip, bool silent, bool timed_out)
{
	/*
	 * A text reply cannot be patched in place (its lines would change
	 * length): like a quiet one it is withheld, so no text client is told
	 * STORED for a write its replicas did not take.
	 */
	const uint8_t *first = rte_pktmbuf_mtod(m[0], const uint8_t *);
	const bool text = rte_pktmbuf_data_len(m[0]) > KITE_FRAME_HDR_LEN + skip &&
			  first[KITE_FRAME_HDR_LEN + skip] != KITE_MAGIC_RES;

	if (timed_out && (silent || text)) {
		rte_pktmbuf_free_bulk(m, n);
		w->repl->st.sync_withheld++;
		return;
	}
	if (timed_out)
		patch_statuses(m, n, skip);
	for (unsigned int i = 0; i < n; i++)
		w->node->repl_reply(w, m[i], u);
}

void
kited_repl_hold(struct worker *w, struct dgram_ctx *c, struct rte_mbuf **m, unsigned int n)
{
	struct worker_repl *r = w->repl;
	struct sync_held *h;

	if (c->sync_over || r->h_tail - r->h_head == SYNC_HELD ||
	    r->mb_tail - r->mb_head + n > SYNC_MBUFS || r->pr_tail - r->pr_head + c->sync_n > SYNC_PAIRS) {
		r->st.sync_full++;
		sync_finish(w, m, n, &c->u, c->renv_len, c->sync_silent, true);
		return;
	}
	h = &r->held[r->h_tail++ % SYNC_HELD];
	h->deadline = rte_rdtsc() + w->node->repl_sync_tsc;
	h->u = c->u;
	h->mb = r->mb_tail;
	h->nmb = n;
	h->pr = r->pr_tail;
	h->npr = c->sync_n;
	h->silent = c->sync_silent;
	h->skip = c->renv_len;
	h->done = false;
	h->relay = NULL;
	for (unsigned int i = 0; i < n; i++)
		r->mb[r->mb_tail++ % SYNC_MBUFS] = m[i];
	for (uint32_t i = 0; i < c->sync_n; i++)
		r->pr[r->pr_tail++ % SYNC_PAIRS] = r->bp[c->sync_lo + i];
	r->st.sync_held++;
}

void
kited_repl_hold_relay(struct worker *w, struct dgram_ctx *c, struct rte_mbuf *m, uint16_t to)
{
	struct worker_repl *r = w->repl;
	struct sync_held *h;

	if (c->sync_over || r->h_tail - r->h_head == SYNC_HELD ||
	    r->pr_tail - r->pr_head + c->sync_n > SYNC_PAIRS) {
		/* As a timeout: a text reply is withheld (sync_finish), the datagram goes no further. */
		r->st.sync_full++;
		r->st.sync_withheld++;
		w->node->repl_relay_drop(w, m);
		return;
	}
	h = &r->held[r->h_tail++ % SYNC_HELD];
	h->deadline = rte_rdtsc() + w->node->repl_sync_tsc;
	h->u = c->u;
	h->mb = r->mb_tail;
	h->nmb = 0;
	h->pr = r->pr_tail;
	h->npr = c->sync_n;
	h->silent = c->sync_silent;
	h->skip = c->renv_len;
	h->done = false;
	h->relay = m;
	h->relay_to = to;
	for (uint32_t i = 0; i < c->sync_n; i++)
		r->pr[r->pr_tail++ % SYNC_PAIRS] = r->bp[c->sync_lo + i];
	r->st.sync_held++;
}

/* Every replica of the view's ack set acknowledged the pair? */
static bool
pair_acked(struct worker *w, const struct sync_pair *p)
{
	const struct kited_cview *view = w->cview;
	struct node *n = w->node;

	if (view == NULL || view->role == NULL || p->vb >= view->map.vbuckets ||
	    view->role[p->vb] != KITE_ENGINE_ROLE_OWNER)
		return false; /* no longer the owner: only a timeout answers */
	for (unsigned int k = 1; k <= 2; k++)
		if (n->repl_slot[p->vb * 2 + k - 1] != 0 &&
		    n->repl_acked[p->vb * 2 + k - 1] < p->seq)
			return false;
	return true;
}

static void
sync_check(struct worker *w, uint64_t now)
{
	struct worker_repl *r = w->repl;
	struct rte_mbuf *m[KITE_MAX_REPLY_DGRAMS];

	for (uint64_t i = r->h_head; i < r->h_tail; i++) {
		struct sync_held *h = &r->held[i % SYNC_HELD];
		bool ok = true;

		if (h->done)
			continue;
		for (uint32_t k = 0; ok && k < h->npr; k++)
			ok = pair_acked(w, &r->pr[(h->pr + k) % SYNC_PAIRS]);
		if (!ok && now < h->deadline)
			continue;
		if (h->relay != NULL) {
			/* A relayed text datagram: on to the next worker, or (timed out) withheld. */
			if (ok) {
				w->node->repl_relay(w, h->relay, h->relay_to);
			} else {
				r->st.sync_withheld++;
				w->node->repl_relay_drop(w, h->relay);
			}
			h->relay = NULL;
		} else {
			for (uint32_t k = 0; k < h->nmb; k++)
				m[k] = r->mb[(h->mb + k) % SYNC_MBUFS];
			sync_finish(w, m, h->nmb, &h->u, h->skip, h->silent, !ok);
		}
		if (ok)
			r->st.sync_acked++;
		else
			r->st.sync_timeouts++;
		h->done = true;
	}
	while (r->h_head < r->h_tail && r->held[r->h_head % SYNC_HELD].done) {
		const struct sync_held *h = &r->held[r->h_head % SYNC_HELD];

		r->mb_head = h->mb + h->nmb;
		r->pr_head = h->pr + h->npr;
		r->h_head++;
	}
	r->sync_dirty = false;
	r->sync_next = now + w->node->tsc_hz * SYNC_CHECK_US / 1000000;
}

static void backfill_step(struct worker *w);
static void asks_scan(struct worker *w);
static void flushes_run(struct worker *w);

/* Between bursts (and when idle): backfill, send what was batched, timers, held replies. */
static void
repl_tick(struct worker *w)
{
	struct worker_repl *r = w->repl;
	uint64_t now;

	if (r->bf_on || r->bf_maybe)
		backfill_step(w);
	for (unsigned int i = 0; i < r->ndest; i++)
		dest_flush(w, &r->dest[i]);
	r->nbp = 0;
	now = rte_rdtsc();
	if (r->h_tail != r->h_head && (r->sync_dirty || now >= r->sync_next))
		sync_check(w, now);
	if (now < r->next_timer)
		return;

	r->next_timer = now + w->node->tsc_hz / 50;
	if (r->ngap > 0)
		gaps_retry(w, now);
	if (++r->ticks % 10 == 0)
		asks_scan(w); /* every 200 ms */
	if (r->flush_due)
		flushes_run(w);
	/* Datagrams not acknowledged in time (lost, or the peer's MAC unknown yet): again. */
	for (unsigned int i = 0; i < r->ndest; i++) {
		struct repl_dest *d = &r->dest[i];
		struct resend_ctx x = { w, d };
		unsigned int sent;

		if (!d->unacked)
			continue;
		sent = kite_repl_log_retry(&d->log, now - w->node->tsc_hz * REPL_RESEND_MS / 1000,
					   now, 32, REPL_MAX_SENDS, on_resend_quiet, &x,
					   &r->st.given_up);
		r->st.retransmits += sent;
		d->retransmits += sent;
	}
}

void
kited_repl_flush(struct worker *w)
{
	if (w->repl != NULL)
		repl_tick(w);
}

void
kited_repl_idle(struct worker *w)
{
	if (w->repl != NULL)
		repl_tick(w);
}

/* ---- backfill: a replica new to a vbucket gets all of it ----------------- */

/* Ask for a backfill of vb to the replica in slot k (1, 2). */
static void
backfill_want(struct worker *w, uint32_t vb, unsigned int k)
{
	w->node->repl_bf[vb] |= (uint8_t)(1u << (k - 1));
	w->repl->bf_maybe = true;
}

struct bf_ctx {
	struct worker *w;
	uint32_t vbuckets;
	const uint64_t *since;
};

/* One item of the walked partition: sent again if its vbucket is being backfilled. */
static int
backfill_item(void *arg, const struct kite_store_item *it)
{
	struct bf_ctx *x = arg;
	struct worker *w = x->w;
	uint32_t vb = kite_cluster_vbucket(it->key, it->keylen, x->vbuckets);
	struct kite_repl_rec rec;

	if (!(w->node->repl_bf[vb] & 0xc) || (x->since != NULL && it->v.cas <= x->since[vb]))
		return 0; /* not being backfilled, or from before this node's ownership: absent */
	memset(&rec, 0, sizeof(rec));
	rec.kind = KITE_REPL_PUT;
	rec.vbucket = vb;
	rec.key = it->key;
	rec.keylen = it->keylen;
	rec.cas = it->v.cas;
	rec.flags = it->v.flags;
	rec.exptime = it->v.exptime;
	rec.value = it->v.value;
	rec.vallen = it->v.vallen;
	emit_rec(w, &rec, &w->repl->st.backfill_items);
	return 0;
}

/*
 * A backfill walks one partition of this worker for every vbucket of it
 * that waits: a RESET to each new replica (drop what you hold, the stream
 * restarts here), then, a step per burst, every item of those vbuckets as
 * a PUT record in the ordinary stream (to every replica of the vbucket:
 * sequences stay one per vbucket, and a PUT of the item as it is is
 * harmless where it is held already), and a MARK at the end. Writes
 * during the walk go into the same stream, in order: an item the walk
 * sends late is sent as it is then. The store's cursor visits every item
 * present when the walk began and still present at its end.
 */
static void
backfill_step(struct worker *w)
{
	struct worker_repl *r = w->repl;
	struct node *n = w->node;
	const struct kited_cview *view = w->cview;
	const uint32_t P = n->n_parts, V = n->cfg.vbuckets;

	if (view == NULL || view->role == NULL || view->self < 0)
		return;
	/*
	 * Backpressure: a backfill goes on only while every replica keeps up
	 * (what it has not acknowledged must stay in the log, or a lost
	 * datagram could be neither sent again nor asked for). A destination
	 * that has left the map is no replica: kited_repl_view_change() gave
	 * up its log, and nothing more is sent to it.
	 */
	for (unsigned int i = 0; i < r->ndest; i++)
		if (kited_cview_member_ip(view, r->dest[i].ip) &&
		    kite_repl_log_unacked(&r->dest[i].log) > BACKFILL_MAX_UNACKED) {
			r->st.backfill_waits++;
			return;
		}
	if (!r->bf_on) {
		unsigned int taken = 0;

		r->bf_maybe = false;
		for (uint32_t p = 0; p < P && !r->bf_on; p++) {
			if (kite_topo_owner(&n->map, p) != w->id)
				continue;
			for (uint32_t vb = p; vb < V; vb += P) {
				uint8_t want = n->repl_bf[vb] & 3;

				if (want == 0)
					continue;
				if (taken == BACKFILL_MAX_VBS) {
					r->bf_maybe = true; /* the rest in the next walk */
					break;
				}
				taken++;
				if (view->role[vb] != KITE_ENGINE_ROLE_OWNER) {
					n->repl_bf[vb] = 0;
					continue;
				}
				for (unsigned int k = 1; k <= 2; k++) {
					struct repl_dest *d;
					struct kite_repl_rec rec = { .kind = KITE_REPL_RESET,
								     .vbucket = vb };

					if (!(want & (1u << (k - 1))) ||
					    (d = slot_dest(w, view, vb, k)) == NULL)
						continue;
					/* RESET names the last sequence before the restart (0: none yet). */
					rec.seq = n->repl_seq[vb];
					if (rec.seq == 0)
						rec.seq = n->repl_seq[vb] = 1;
					dest_add(w, d, view, &rec);
					d->resyncs++;
				}
				n->repl_bf[vb] = (uint8_t)((n->repl_bf[vb] | (uint8_t)(want << 2)) & ~3u);
				r->bf_on = true;
			}
			if (r->bf_on) {
				r->bf_part = p;
				kite_store_iter_begin(n->parts[p], &r->bf_cur);
			}
		}
		if (!r->bf_on)
			return;
	}
	struct bf_ctx x = { w, V, view->ec.since };
	kite_store_iter_next(n->parts[r->bf_part], &r->bf_cur, BACKFILL_STEP, backfill_item, &x);
	if (!kite_store_iter_done(&r->bf_cur))
		return;
	for (uint32_t vb = r->bf_part; vb < V; vb += P) {
		struct kite_repl_rec rec = { .kind = KITE_REPL_MARK, .vbucket = vb };

		if (!(n->repl_bf[vb] & 0xc))
			continue;
		n->repl_bf[vb] &= 3;
		if (view->role[vb] == KITE_ENGINE_ROLE_OWNER) {
			emit_rec(w, &rec, NULL);
			r->st.backfills++;
		}
	}
	r->bf_on = false;
	r->bf_maybe = true; /* others may wait */
}

/* The replica slot (1, 2) of vb whose member has this address in view; 0: none. */
static unsigned int
slot_of(const struct node *n, const struct kited_cview *view, uint32_t vb, uint32_t ip)
{
	for (unsigned int k = 1; k <= 2; k++) {
		uint8_t m = slot_member(n, view, vb, k);

		if (m != KITE_CLUSTER_NONE && view->map.members[m].ip == ip)
			return k;
	}
	return 0;
}

/* An ACK's opaque: the DATA datagram's request id; this bit: not all of it was taken. */
#define REPL_ACK_PARTIAL (1u << 16)

/* An ACK or NACK from a replica: the owner's side. */
static void
on_answer(struct worker *w, const struct kite_repl_msg *m, const struct kite_net_udp *u)
{
	struct worker_repl *r = w->repl;
	struct node *n = w->node;
	const struct kited_cview *view = w->cview;
	struct repl_dest *d = NULL;
	const uint8_t *p = m->body, *end = m->body + m->bodylen;
	uint32_t vb;
	uint64_t seq;

	for (unsigned int i = 0; i < r->ndest; i++)
		if (r->dest[i].ip == u->src_ip && r->dest[i].port == u->src_port)
			d = &r->dest[i];
	if (view == NULL || view->role == NULL || view->map.vbuckets != n->cfg.vbuckets)
		return;
	/* A replica that asks for its backfill may not have heard from us yet. */
	if (d == NULL && m->sub == KITE_REPL_NACK && m->sender < view->map.n_members &&
	    view->map.members[m->sender].ip == u->src_ip)
		d = dest_get(w, u->src_ip, u->src_port);
	if (d == NULL) {
		r->st.rx_stray++;
		return;
	}
	if (m->sub == KITE_REPL_ACK) {
		uint64_t born, lag = 0;

		r->st.rx_acks++;
		d->acks++;
		/*
		 * The ACK's opaque names the DATA datagram it answers; one the
		 * replica took only in part (its map did not make it a replica
		 * of every vbucket yet) is sent again.
		 */
		if (!(m->opaque & REPL_ACK_PARTIAL) &&
		    kite_repl_log_ack(&d->log, (uint16_t)m->opaque, &born)) {
			uint64_t us = (rte_rdtsc() - born) * 1000000 / n->tsc_hz;
			unsigned int bkt = 0;

			while (bkt + 1 < KITED_REPL_LAG_BUCKETS && us >= (UINT64_C(1) << bkt))
				bkt++;
			r->lag_hist[bkt]++;
			d->lag_us = us;
			if (us > r->st.lag_us_max)
				r->st.lag_us_max = us;
		}
		while (kite_repl_next_pair(&p, end, &vb, &seq) == 1) {
			unsigned int k;

			if (vb >= n->cfg.vbuckets || view->role[vb] != KITE_ENGINE_ROLE_OWNER)
				continue;
			uint64_t l = n->repl_seq[vb] > seq ? n->repl_seq[vb] - seq : 0;
			if (l > lag)
				lag = l;
			/* Acknowledged up to seq by the member in slot k: sync replies may go. */
			k = slot_of(n, view, vb, u->src_ip);
			if (k != 0 && n->repl_slot[vb * 2 + k - 1] == u->src_ip &&
			    seq > n->repl_acked[vb * 2 + k - 1]) {
				n->repl_acked[vb * 2 + k - 1] = seq;
				r->sync_dirty = true;
			}
		}
		d->lag_ops = lag;
		if (lag > r->st.lag_max)
			r->st.lag_max = lag;
		return;
	}
	r->st.rx_nacks++;
	while (kite_repl_next_pair(&p, end, &vb, &seq) == 1) {
		struct resend_ctx x = { w, d };
		unsigned int k;

		if (vb >= n->cfg.vbuckets || view->role[vb] != KITE_ENGINE_ROLE_OWNER)
			continue;
		/* A datagram resent within the last 50 ms is on its way: not again. */
		if ((seq != 0 && kite_repl_log_resend(&d->log, vb, seq, view->ec.epoch, rte_rdtsc(),
						      n->tsc_hz / 20, on_resend, &x) >= 0) ||
		    seq > n->repl_seq[vb])
			continue;
		/*
		 * Older than the log, or a replica that asks (0: it holds nothing
		 * whole of the vbucket): it gets the whole vbucket again (backfill).
		 */
		k = slot_of(n, view, vb, u->src_ip);
		if (k == 0 || (n->repl_bf[vb] & (0x5u << (k - 1))))
			continue; /* not its replica, or a backfill is already on its way */
		r->st.resync_needed++;
		backfill_want(w, vb, k);
	}
}

static void
gap_open(struct worker_repl *r, uint32_t vb, uint64_t seq, const struct kite_net_udp *u)
{
	for (unsigned int i = 0; i < r->ngap; i++)
		if (r->gap[i].vb == vb) {
			if (seq > r->gap[i].top)
				r->gap[i].top = seq;
			return;
		}
	if (r->ngap == REPL_MAX_GAPS)
		return;
	r->gap[r->ngap++] = (struct repl_gap){ .vb = vb, .top = seq, .ip = u->src_ip,
					       .port = u->src_port, .local = u->dst_port,
					       .tries = 0, .tsc = rte_rdtsc() };
}

/*
 * Applied up to seq: a gap closes only once everything seen beyond it is
 * applied too (what arrived after the hole was dropped, and its datagram
 * may have been acknowledged: it comes again only by NACK).
 */
static void
gap_close(struct worker_repl *r, uint32_t vb, uint64_t seq)
{
	for (unsigned int i = 0; i < r->ngap; i++)
		if (r->gap[i].vb == vb) {
			if (seq >= r->gap[i].top)
				r->gap[i] = r->gap[--r->ngap];
			return;
		}
}

/* A NACK for one vbucket. */
static void
send_nack(struct worker *w, const struct repl_gap *g)
{
	const struct kited_cview *view = w->cview;
	struct kite_repl_builder b;
	uint8_t out[128];

	if (view == NULL)
		return;
	kite_repl_begin(&b, out, sizeof(out), KITE_REPL_NACK, 0, 0, (uint32_t)view->self,
			view->ec.epoch);
	kite_repl_add_pair(&b, g->vb, w->node->repl_expected[g->vb]);
	send_to(w, g->ip, g->port, g->local, out, kite_repl_close(&b, w->node->repl_secret), NULL);
}

/*
 * A replica vbucket without a whole backfill (a new owner, or this node new
 * to it) asks its owner for one, NACK (vb, 0), when a scan finds it so
 * twice with no RESET between (the owner's own backfill usually comes
 * first; maps seen in another order, or a lost MARK, would leave it so).
 * Pairs are batched per owner port.
 */
#define ASK_BATCHES 16
struct ask_batch {
	uint32_t ip;
	uint16_t port, local;
	struct kite_repl_builder b;
	uint8_t buf[512];
};

static void
ask_flush(struct worker *w, struct ask_batch *a)
{
	if (a->b.n == 0)
		return;
	send_to(w, a->ip, a->port, a->local, a->buf, kite_repl_close(&a->b, w->node->repl_secret),
		NULL);
	w->repl->st.resync_asks += a->b.n;
	a->b.n = 0;
}

static void
asks_scan(struct worker *w)
{
	struct node *n = w->node;
	const struct kited_cview *view = w->cview;
	struct ask_batch *a = calloc(ASK_BATCHES, sizeof(*a));
	unsigned int na = 0;

	if (a == NULL || view == NULL || view->role == NULL || view->self < 0 ||
	    view->map.vbuckets != n->cfg.vbuckets) {
		free(a);
		return;
	}
	for (uint32_t p = 0; p < n->n_parts; p++) {
		if (kite_topo_owner(&n->map, p) != w->id)
			continue;
		for (uint32_t vb = p; vb < n->cfg.vbuckets; vb += n->n_parts) {
			uint8_t o;
			const struct kite_cluster_member *mb;
			uint16_t port;
			unsigned int i;

			if (view->role[vb] != KITE_ENGINE_ROLE_REPLICA || n->repl_synced[vb]) {
				n->repl_ask[vb] = 0;
				continue;
			}
			if (n->repl_ask[vb] == 0) {
				n->repl_ask[vb] = 1; /* the owner's backfill may be on its way */
				continue;
			}
			o = kite_cluster_owner(&view->map, vb);
			if (o == KITE_CLUSTER_NONE)
				continue;
			mb = &view->map.members[o];
			port = (uint16_t)(mb->base_port + (vb & (mb->partitions - 1u)));
			for (i = 0; i < na && (a[i].ip != mb->ip || a[i].port != port); i++)
				;
			if (i == na) {
				if (na == ASK_BATCHES)
					continue; /* the next scan */
				a[i].ip = mb->ip;
				a[i].port = port;
				a[i].local = kite_topo_port(&n->map, p);
				kite_repl_begin(&a[i].b, a[i].buf, sizeof(a[i].buf), KITE_REPL_NACK, 0, 0,
						(uint32_t)view->self, view->ec.epoch);
				na++;
			}
			if (kite_repl_add_pair(&a[i].b, vb, 0) != 0) {
				ask_flush(w, &a[i]);
				kite_repl_begin(&a[i].b, a[i].buf, sizeof(a[i].buf), KITE_REPL_NACK, 0,
						0, (uint32_t)view->self, view->ec.epoch);
				kite_repl_add_pair(&a[i].b, vb, 0);
			}
		}
	}
	for (unsigned int i = 0; i < na; i++)
		ask_flush(w, &a[i]);
	free(a);
}

/* Gaps still open after a while: NACK again (the first NACK may have been lost). */
static void
gaps_retry(struct worker *w, uint64_t now)
{
	struct worker_repl *r = w->repl;

	for (unsigned int i = 0; i < r->ngap;) {
		struct repl_gap *g = &r->gap[i];

		if (now - g->tsc < w->node->tsc_hz * REPL_RESEND_MS / 1000) {
			i++;
			continue;
		}
		if (++g->tries > REPL_MAX_SENDS) {
			r->gap[i] = r->gap[--r->ngap];
			r->st.given_up++;
			continue;
		}
		send_nack(w, g);
		g->tsc = now;
		r->st.nack_retries++;
		i++;
	}
}

/*
 * A replicated FLUSH of vb: its items go now (a walk of the partition at
 * the next tick, for every vbucket flushed meanwhile), or when the delay
 * ends (then whatever the replica holds of vb is from before the flush's
 * time, give or take the replication lag).
 */
static void
flush_vb(struct worker *w, uint32_t vb, uint32_t when)
{
	struct node *n = w->node;
	uint32_t now = node_now(n);

	n->repl_flush_at[vb] = when == 0 || when <= now ? now : when;
	w->repl->flush_due = true;
	w->repl->st.rx_flushes++;
}

/*
 * A record's effect on the store: PUT (with the owner's CAS), DEL, FLUSH.
 * RESET and MARK act on the stream, not on items.
 */
static void
apply_rec(struct worker *w, const struct kite_repl_rec *rec)
{
	struct node *n = w->node;
	struct kite_store *s = n->parts[rec->vbucket & (n->n_parts - 1)];

	if (rec->kind == KITE_REPL_PUT) {
		const struct kite_store_write wr = {
			.mode = KITE_STORE_SET, .flags = rec->flags, .exptime = rec->exptime,
			.value = rec->value, .vallen = rec->vallen, .set_cas = rec->cas,
		};
		uint64_t cas;

		if (kite_store_store(s, rec->key, rec->keylen, kite_store_hash(s, rec->key, rec->keylen),
				     &wr, &cas) != KITE_STORE_OK)
			w->repl->st.apply_failed++;
	} else if (rec->kind == KITE_REPL_DEL) {
		kite_store_delete(s, rec->key, rec->keylen, kite_store_hash(s, rec->key, rec->keylen),
				  0);
	} else if (rec->kind == KITE_REPL_FLUSH) {
		flush_vb(w, rec->vbucket, rec->exptime);
	}
}

/*
 * A record from the owner this node took the vbucket over from (a joiner
 * that turned active, or a failover): applied if it is the next of the
 * stream and this node has written nothing of the vbucket since (its own
 * sequence is still where the stream left it), then this node's sequence
 * goes on from it. Later, or after a write here, it is dropped (counted,
 * false returned: the datagram's ACK says partial): the write here is
 * newer.
 *
 * An applied record goes on into this node's own stream with the same
 * sequence, as a write here would: the replicas of the vbucket now follow
 * this node, and the backfill walk that fills a new one does not see an
 * item stored after it began (the walk ends at the log's head of then).
 * Without this, a late record reached the new owner and never its replica
 * (the fault suite's F3 saw one key in a few runs: owner and replica with
 * one value under two CAS values; F10 drives this path on purpose).
 */
static bool
handover_late(struct worker *w, const struct kite_repl_rec *rec)
{
	struct node *n = w->node;
	uint32_t vb = rec->vbucket;

	if (rec->seq < n->repl_expected[vb]) {
		w->repl->st.rx_dups++;
		return true;
	}
	/*
	 * RESET and MARK speak of the old owner's backfill of this node, which
	 * is over: a MARK passed on would tell this node's replicas they are
	 * whole while its own walk toward them may still be under way.
	 */
	if (rec->seq != n->repl_expected[vb] || n->repl_seq[vb] + 1 != rec->seq ||
	    rec->kind == KITE_REPL_RESET || rec->kind == KITE_REPL_MARK) {
		w->repl->st.handover_dropped++;
		return false;
	}
	struct kite_repl_rec fwd = *rec;

	apply_rec(w, rec);
	n->repl_expected[vb] = rec->seq + 1;
	/* emit_rec() takes the next sequence of this node's stream (rec->seq, checked above). */
	emit_rec(w, &fwd, &w->repl->st.tx_records);
	w->repl->st.handover_late++;
	return true;
}

/* Vbuckets whose replicated FLUSH is due: their items removed, one walk for all. */
static void
flushes_run(struct worker *w)
{
	struct node *n = w->node;
	uint32_t now = node_now(n);
	uint8_t *due = NULL;
	bool any = false, later = false;

	for (uint32_t p = 0; p < n->n_parts; p++) {
		if (kite_topo_owner(&n->map, p) != w->id)
			continue;
		for (uint32_t vb = p; vb < n->cfg.vbuckets; vb += n->n_parts) {
			if (n->repl_flush_at[vb] == 0)
				continue;
			if (n->repl_flush_at[vb] > now) {
				later = true;
				continue;
			}
			if (due == NULL && (due = calloc(n->cfg.vbuckets, 1)) == NULL)
				return;
			due[vb] = 1;
			n->repl_flush_at[vb] = 0;
			any = true;
		}
	}
	if (any)
		purge(w, due, n->cfg.vbuckets, UINT32_MAX);
	free(due);
	w->repl->flush_due = later;
}

/* DATA from an owner: apply in order, answer ACK (and NACK for gaps). */
static void
on_data(struct worker *w, const struct kite_repl_msg *m, const struct kite_net_udp *u,
	uint16_t req_id)
{
	struct worker_repl *r = w->repl;
	struct node *n = w->node;
	const struct kited_cview *view = w->cview;
	const uint8_t *p = m->body, *end = m->body + m->bodylen;
	struct kite_repl_rec rec;
	uint32_t acked[64], gaps[64];
	unsigned int nack = 0, ngap = 0;
	bool partial = false;
	uint8_t out[256];
	struct kite_repl_builder b;
	int rc;

	if (view == NULL || view->self < 0)
		return;
	while ((rc = kite_repl_next_rec(&p, end, &rec)) == 1) {
		uint32_t vb = rec.vbucket;
		uint32_t part;
		unsigned int k;

		if (vb < n->cfg.vbuckets && view->role[vb] == KITE_ENGINE_ROLE_OWNER &&
		    n->repl_handover[vb] == u->src_ip && u->src_ip != 0 &&
		    kite_topo_owner(&n->map, vb & (n->n_parts - 1)) == w->id) {
			/*
			 * From the owner this node took over from: late records, if
			 * nothing since. One dropped makes the ACK partial, as a record
			 * refused for want of the replica role does: its sender sends the
			 * datagram again. The sender may be the new owner and this node
			 * an old one that has not seen the map yet (its handover source
			 * is from an earlier failover): an ACK naming the datagram
			 * would tell the sender it arrived, and nothing would bring the
			 * record back once this node turned replica (F3 at -O3 lost a
			 * write so, now and then).
			 */
			if (!handover_late(w, &rec))
				partial = true;
			continue;
		}
		if (vb >= n->cfg.vbuckets || view->role[vb] != KITE_ENGINE_ROLE_REPLICA) {
			r->st.rx_not_replica++;
			partial = true;
			continue;
		}
		/*
		 * Only from the vbucket's owner in this node's map: a deposed owner's
		 * stream is refused, whatever epoch it names (a datagram sent again
		 * under the previous epoch of the same members is still good).
		 */
		uint8_t own = kite_cluster_owner(&view->map, vb);
		if (own == KITE_CLUSTER_NONE || view->map.members[own].ip != u->src_ip) {
			r->st.rx_stale_epoch++;
			partial = true;
			continue;
		}
		part = vb & (n->n_parts - 1);
		if (kite_topo_owner(&n->map, part) != w->id) {
			r->st.rx_not_replica++;
			continue;
		}
		if (rec.kind == KITE_REPL_RESET) {
			/*
			 * The stream restarts after rec.seq, a backfill follows. A
			 * RESET older than what was applied since is a retransmission.
			 * Dropped: what this replica held of the vbucket, unless clean,
			 * or it owned the vbucket until the map changed (its items are
			 * the newest there were).
			 */
			if (rec.seq + 1 < n->repl_expected[vb]) {
				r->st.rx_dups++;
				continue;
			}
			uint8_t *one = n->repl_clean[vb] || n->repl_fresh[vb]
					       ? NULL
					       : calloc(n->cfg.vbuckets, 1);

			if (one != NULL) {
				one[vb] = 1;
				purge(w, one, n->cfg.vbuckets, part);
				free(one);
			}
			n->repl_clean[vb] = 1;
			n->repl_synced[vb] = 0;
			n->repl_ask[vb] = 0; /* the backfill follows: give it a scan's time */
			n->repl_expected[vb] = rec.seq + 1;
			r->st.rx_resets++;
			if (r->ngap > 0)
				gap_close(r, vb, UINT64_MAX);
			goto ack;
		}
		switch (kite_repl_order(n->repl_expected[vb], rec.seq)) {
		case KITE_REPL_DUP:
			r->st.rx_dups++;
			break;
		case KITE_REPL_GAP:
			r->st.rx_gaps++;
			for (k = 0; k < ngap && gaps[k] != vb; k++)
				;
			if (k == ngap && ngap < RTE_DIM(gaps))
				gaps[ngap++] = vb;
			gap_open(r, vb, rec.seq, u);
			continue;
		case KITE_REPL_APPLY:
			if (rec.kind == KITE_REPL_MARK) {
				n->repl_synced[vb] = 1;
				r->st.rx_marks++;
			} else {
				apply_rec(w, &rec);
			}
			n->repl_expected[vb] = rec.seq + 1;
			n->repl_clean[vb] = 0;
			r->st.rx_applied += rec.kind != KITE_REPL_MARK;
			if (r->ngap > 0)
				gap_close(r, vb, rec.seq);
			break;
		}
	ack:
		for (k = 0; k < nack && acked[k] != vb; k++)
			;
		if (k == nack && nack < RTE_DIM(acked))
			acked[nack++] = vb;
	}
	if (rc < 0)
		r->st.rx_malformed++;
	/*
	 * Answers: an ACK naming the datagram (even with nothing applied: it
	 * arrived), with what we hold up to; a NACK from where we lack.
	 */
	for (int pass = 0; pass < 2; pass++) {
		const uint32_t *list = pass == 0 ? acked : gaps;
		unsigned int cnt = pass == 0 ? nack : ngap;
		unsigned int i = 0;

		if (pass == 1 && cnt == 0)
			break;
		do {
			kite_repl_begin(&b, out, sizeof(out), pass == 0 ? KITE_REPL_ACK : KITE_REPL_NACK,
					req_id, req_id | (partial ? REPL_ACK_PARTIAL : 0),
					(uint32_t)view->self, view->ec.epoch);
			for (; i < cnt; i++) {
				uint64_t e = n->repl_expected[list[i]];
				if (kite_repl_add_pair(&b, list[i], pass == 0 ? e - 1 : e) != 0)
					break;
			}
			size_t len = kite_repl_close(&b, n->repl_secret);
			/* From the port the DATA came to: the owner knows us by it. */
			send_to(w, u->src_ip, u->src_port, u->dst_port, out, len, NULL);
		} while (i < cnt);
	}
}

bool
kited_repl_rx(struct worker *w, const uint8_t *payload, size_t len, const struct kite_net_udp *u)
{
	struct worker_repl *r = w->repl;
	struct kite_repl_msg m;
	int rc;

	if (len < 8 + 24 || payload[8 + 1] != KITE_REPL_OPCODE ||
	    (payload[8] != KITE_MAGIC_REQ && payload[8] != KITE_MAGIC_RES))
		return false;
	if (r == NULL) {
		/* Not replicating: a REPL request is the engine's (UNKNOWN_COMMAND); a response is dropped. */
		return payload[8] == KITE_MAGIC_RES;
	}
	rc = kite_repl_parse(payload + 8, len - 8, w->node->repl_secret, &m);
	if (rc == KITE_REPL_BAD_MAC && w->node->repl_secret_two &&
	    kite_repl_parse(payload + 8, len - 8, w->node->repl_secret_old, &m) == KITE_REPL_OK) {
		rc = KITE_REPL_OK; /* under the previous secret: a rotation in progress */
		r->st.rx_old_secret++;
	}
	if (rc != KITE_REPL_OK) {
		if (rc == KITE_REPL_BAD_MAC)
			r->st.rx_bad_mac++;
		else
			r->st.rx_malformed++;
		return true;
	}
	if (m.sub == KITE_REPL_DATA)
		on_data(w, &m, u, kite_proto_get16(payload));
	else
		on_answer(w, &m, u);
	return true;
}

/* Keys of the vbuckets being purged, collected by a walk and removed after it. */
struct purge_ctx {
	const uint8_t *purge; /* per vbucket: 1 to purge */
	uint32_t vbuckets;
	uint8_t *keys;        /* KITE_KEY_MAX + 1 bytes per key: length, bytes */
	size_t n, cap;
};

static int
purge_collect(void *arg, const struct kite_store_item *it)
{
	struct purge_ctx *x = arg;
	uint32_t vb = kite_cluster_vbucket(it->key, it->keylen, x->vbuckets);

	if (!x->purge[vb])
		return 0;
	if (x->n == x->cap) {
		size_t ncap = x->cap ? x->cap * 2 : 1024;
		uint8_t *nk = realloc(x->keys, ncap * (KITE_KEY_MAX + 1));
		if (nk == NULL)
			return 1;
		x->keys = nk;
		x->cap = ncap;
	}
	x->keys[x->n * (KITE_KEY_MAX + 1)] = (uint8_t)it->keylen;
	memcpy(x->keys + x->n * (KITE_KEY_MAX + 1) + 1, it->key, it->keylen);
	x->n++;
	return 0;
}

/*
 * A replica gets only what is written after it starts following the
 * stream, so whatever it held of a vbucket from before (it owned or
 * replicated it once, and lost it) would be stale: removed now, before the
 * worker takes the first record (and a replicated FLUSH removes a
 * vbucket's items). A full walk of the partition in one go, once per map
 * change that gives this node new replica vbuckets, per RESET, and per
 * tick with FLUSHes due (not in bounded steps yet, unlike the backfill).
 */
static void
purge(struct worker *w, const uint8_t *flags, uint32_t vbuckets, uint32_t only)
{
	struct node *n = w->node;
	struct purge_ctx x = { flags, vbuckets, NULL, 0, 0 };

	for (uint32_t p = 0; p < n->n_parts; p++) {
		struct kite_store *s = n->parts[p];
		struct kite_store_cursor cur;

		if (kite_topo_owner(&n->map, p) != w->id || (only != UINT32_MAX && p != only))
			continue;
		x.n = 0;
		kite_store_iter_begin(s, &cur);
		while (!kite_store_iter_done(&cur))
			kite_store_iter_next(s, &cur, 1u << 20, purge_collect, &x);
		for (size_t i = 0; i < x.n; i++) {
			const uint8_t *k = x.keys + i * (KITE_KEY_MAX + 1);
			kite_store_delete(s, k + 1, k[0], kite_store_hash(s, k + 1, k[0]), 0);
		}
		w->repl->st.purged += x.n;
	}
	free(x.keys);
}

/*
 * A worker's new view: where this node became a replica of a vbucket whose
 * owner changed, it follows the new owner's stream from its next record;
 * where it became the owner of a vbucket it replicated, its sequence goes
 * on from what it applied, so the other replicas see no gap.
 */
void
kited_repl_view_change(struct worker *w, const struct kited_cview *v)
{
	struct node *n = w->node;
	uint8_t *gained;
	bool any = false;

	if (w->repl == NULL || v == NULL || v->role == NULL || v->map.vbuckets != n->cfg.vbuckets)
		return;
	gained = calloc(v->map.vbuckets, 1);
	for (uint32_t vb = 0; vb < v->map.vbuckets; vb++) {
		uint32_t part = vb & (n->n_parts - 1);
		/* After a lapsed lease nothing held counts: as if new to every vbucket. */
		uint8_t was = v->rejoined ? KITE_ENGINE_ROLE_NONE : n->repl_prev_role[vb];
		uint8_t now = v->role[vb];
		uint8_t o = kite_cluster_owner(&v->map, vb);
		uint32_t owner = 0;

		if (kite_topo_owner(&n->map, part) != w->id)
			continue;
		if (o != KITE_CLUSTER_NONE) {
			const struct kite_cluster_member *m = &v->map.members[o];
			owner = (m->ip * 2654435761u) ^ m->base_port ^ 1u;
		}
		/*
		 * A stream to follow from its start: records that arrive after a
		 * later one was lost or delayed (an ARP miss) are asked for (NACK
		 * from 1), and an owner whose log no longer reaches back answers
		 * with a RESET.
		 */
		if (now == KITE_ENGINE_ROLE_REPLICA &&
		    (was != KITE_ENGINE_ROLE_REPLICA || n->repl_prev_owner[vb] != owner)) {
			n->repl_expected[vb] = 1;
			n->repl_clean[vb] = 0;
		}
		/*
		 * Held from before (it replicated or owned the vbucket once, then
		 * lost it): purged. An owner that becomes a replica keeps its
		 * items, the newest there were (and warm-up reads them through).
		 */
		if (now == KITE_ENGINE_ROLE_REPLICA && was != KITE_ENGINE_ROLE_REPLICA &&
		    was != KITE_ENGINE_ROLE_OWNER && gained != NULL) {
			gained[vb] = 1;
			any = true;
		}
		/* Sticky while it stays a replica (later maps may change other vbuckets). */
		if (now == KITE_ENGINE_ROLE_REPLICA && was == KITE_ENGINE_ROLE_OWNER)
			n->repl_fresh[vb] = 1;
		else if (now != KITE_ENGINE_ROLE_REPLICA)
			n->repl_fresh[vb] = 0;
		/*
		 * A replica that takes over goes on with the sequence it applied;
		 * records its previous owner sent before it saw the new map are
		 * still taken while this node has written nothing of its own
		 * (a handover: the old owner may have acknowledged them).
		 */
		if (now == KITE_ENGINE_ROLE_OWNER && was == KITE_ENGINE_ROLE_REPLICA &&
		    n->repl_expected[vb] > 0 && n->repl_seq[vb] < n->repl_expected[vb] - 1)
			n->repl_seq[vb] = n->repl_expected[vb] - 1;
		n->repl_handover[vb] = now == KITE_ENGINE_ROLE_OWNER && was == KITE_ENGINE_ROLE_REPLICA
					       ? n->repl_owner_ip[vb]
					       : now == KITE_ENGINE_ROLE_OWNER ? n->repl_handover[vb] : 0;
		n->repl_owner_ip[vb] = o != KITE_CLUSTER_NONE ? v->map.members[o].ip : 0;
		if (now == KITE_ENGINE_ROLE_REPLICA &&
		    (was != KITE_ENGINE_ROLE_REPLICA || n->repl_prev_owner[vb] != owner))
			n->repl_synced[vb] = 0; /* a new owner's backfill is to come */
		/*
		 * As the owner: a replica slot whose member changed leaves the
		 * ack set with this epoch, and its new member joins it for what
		 * is written from now on, after a backfill of the vbucket.
		 */
		for (unsigned int k = 1; k <= 2; k++) {
			uint8_t m = now == KITE_ENGINE_ROLE_OWNER ? slot_member(n, v, vb, k)
								  : KITE_CLUSTER_NONE;
			uint32_t ip = m != KITE_CLUSTER_NONE ? v->map.members[m].ip : 0;

			if (ip == n->repl_slot[vb * 2 + k - 1] && was == now)
				continue;
			n->repl_slot[vb * 2 + k - 1] = ip;
			n->repl_acked[vb * 2 + k - 1] = n->repl_seq[vb];
			n->repl_bf[vb] &= (uint8_t)~(0x5u << (k - 1));
			if (ip != 0)
				backfill_want(w, vb, k);
		}
		n->repl_prev_role[vb] = now;
		n->repl_prev_owner[vb] = owner;
	}
	/*
	 * A destination whose member left the map replicates nothing any more:
	 * what it has not acknowledged is given up now, not sent again for
	 * 5 s (REPL_MAX_SENDS, at most 32 a tick: a full log took ~25 s),
	 * where it also held every backfill back. A member that returns is
	 * new to its vbuckets and backfilled.
	 */
	for (unsigned int i = 0; i < w->repl->ndest; i++) {
		struct repl_dest *d = &w->repl->dest[i];

		if (d->unacked && !kited_cview_member_ip(v, d->ip)) {
			w->repl->st.given_up += kite_repl_log_give_up(&d->log);
			d->unacked = false;
		}
	}
	if (any) {
		purge(w, gained, v->map.vbuckets, UINT32_MAX);
		for (uint32_t vb = 0; vb < v->map.vbuckets; vb++)
			if (gained[vb])
				n->repl_clean[vb] = 1;
	}
	free(gained);
}

void
kited_repl_stats_sum(const struct node *n, struct kited_repl_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned int i = 0; n->workers != NULL && i < n->n_workers; i++) {
		const struct worker_repl *r = n->workers[i].repl;
		const uint64_t *a;
		uint64_t *o = (uint64_t *)sum;

		if (r == NULL)
			continue;
		a = (const uint64_t *)&r->st;
		for (size_t k = 0; k < sizeof(*sum) / sizeof(uint64_t); k++)
			o[k] = (k == offsetof(struct kited_repl_stats, lag_max) / sizeof(uint64_t))
				       ? RTE_MAX(o[k], a[k])
				       : o[k] + a[k];
	}
}

void
kited_repl_lag_hist(const struct node *n, uint64_t hist[KITED_REPL_LAG_BUCKETS])
{
	memset(hist, 0, sizeof(uint64_t) * KITED_REPL_LAG_BUCKETS);
	for (unsigned int i = 0; n->workers != NULL && i < n->n_workers; i++) {
		const struct worker_repl *r = n->workers[i].repl;

		for (unsigned int b = 0; r != NULL && b < KITED_REPL_LAG_BUCKETS; b++)
			hist[b] += r->lag_hist[b];
	}
}

unsigned int
kited_repl_peers(const struct node *n, struct kited_repl_peer *out, unsigned int max)
{
	unsigned int np = 0;

	for (unsigned int i = 0; n->workers != NULL && i < n->n_workers; i++) {
		const struct worker_repl *r = n->workers[i].repl;

		for (unsigned int j = 0; r != NULL && j < r->ndest; j++) {
			const struct repl_dest *d = &r->dest[j];
			unsigned int k;

			for (k = 0; k < np && out[k].ip != d->ip; k++)
				;
			if (k == np) {
				if (np == max)
					continue;
				memset(&out[np], 0, sizeof(out[np]));
				out[np++].ip = d->ip;
			}
			out[k].lag_ops = RTE_MAX(out[k].lag_ops, d->lag_ops);
			out[k].lag_us = RTE_MAX(out[k].lag_us, d->lag_us);
			out[k].retransmits += d->retransmits;
			out[k].resyncs += d->resyncs;
			out[k].acks += d->acks;
			out[k].unacked += kite_repl_log_unacked(&d->log);
		}
	}
	return np;
}

uint32_t
kited_repl_backfilling(const struct node *n)
{
	uint32_t c = 0;

	if (n->repl_bf == NULL)
		return 0;
	for (uint32_t vb = 0; vb < n->cfg.vbuckets; vb++)
		c += n->repl_bf[vb] != 0;
	return c;
}

uint32_t
kited_repl_unsynced(const struct node *n)
{
	uint32_t c = 0;

	/* The roles the workers last took (STAT may run beside them: no view is read). */
	if (n->repl_synced == NULL)
		return 0;
	for (uint32_t vb = 0; vb < n->cfg.vbuckets; vb++)
		c += n->repl_prev_role[vb] == KITE_ENGINE_ROLE_REPLICA && !n->repl_synced[vb];
	return c;
}
