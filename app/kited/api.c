/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The admin endpoint's JSON API to the cache (/cache/{key}), served by the
 * key's owning worker: never a lock in the store, and the same path as a
 * UDP request, so replication, hot keys and statistics apply.
 *
 * The HTTP thread writes a binary request datagram (Kite's META opcodes:
 * mg with v t f c, ms with T, md) into mbufs of the owner's pool, marks
 * its sender 0.0.0.0 (never a source the network stack admits: the guard
 * drops martians) with the port naming a slot of this table, and puts it
 * on the owner's handoff ring. The worker runs it as any handed-off
 * datagram; its reply, instead of going out (worker_reply), is copied
 * into the slot (kited_api_deliver). The HTTP thread waits for it, at most
 * API_WAIT_MS.
 *
 * A slot's state is claimed with compare-and-swap on both sides, so a
 * reply that comes after the HTTP thread gave up is dropped, never written
 * into a slot reused meanwhile.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "kite_proto.h"
#include "kite_topo.h"
#include "kited.h"
#include "kited_api.h"

#define API_SLOTS   64
#define API_WAIT_MS 1000

enum slot_state { SLOT_FREE, SLOT_WAITING, SLOT_WRITING, SLOT_DONE };

struct api_slot {
	_Atomic int state;
	uint16_t req_id; /* the request's frame id: a reply for another is not this one's */
	uint16_t got;    /* reply datagrams copied */
	uint16_t total;  /* of total (the first datagram's frame) */
	bool cut;        /* more reply than room: the reply is incomplete */
	uint8_t *buf;    /* the responses, frames stripped */
	size_t len, cap;
};

static struct api_slot slots[API_SLOTS];
static _Atomic uint16_t next_req_id;

/* A free slot, claimed (WAITING); -1 when every one is busy. */
static int
slot_claim(size_t cap)
{
	for (int i = 0; i < API_SLOTS; i++) {
		int want = SLOT_FREE;
		struct api_slot *s = &slots[i];

		if (!atomic_compare_exchange_strong(&s->state, &want, SLOT_WRITING))
			continue;
		s->buf = malloc(cap);
		if (s->buf == NULL) {
			atomic_store(&s->state, SLOT_FREE);
			return -1;
		}
		s->cap = cap;
		s->len = 0;
		s->got = s->total = 0;
		s->cut = false;
		s->req_id = atomic_fetch_add(&next_req_id, 1);
		atomic_store(&s->state, SLOT_WAITING);
		return i;
	}
	return -1;
}

static void
slot_release(struct api_slot *s)
{
	free(s->buf);
	s->buf = NULL;
	atomic_store(&s->state, SLOT_FREE);
}

void
kited_api_deliver(struct worker *w, struct rte_mbuf *m, const struct kite_net_udp *u)
{
	const unsigned int i = (unsigned int)u->src_port - 1;
	const uint32_t len = rte_pktmbuf_pkt_len(m);
	struct kite_proto_frame f;
	struct api_slot *s;
	uint8_t hdr[8];
	int want = SLOT_WAITING;

	w->stats->loop.api_replies++;
	if (i >= API_SLOTS || len < 8) {
		rte_pktmbuf_free(m);
		return;
	}
	s = &slots[i];
	/* The frame as a reply carries it (total may be over 1: not a request's). */
	const uint8_t *fp = rte_pktmbuf_read(m, 0, 8, hdr);
	f.req_id = kite_proto_get16(fp);
	f.seq = kite_proto_get16(fp + 2);
	f.total = kite_proto_get16(fp + 4);
	/* Only the slot's own request's reply, and only while its HTTP thread waits. */
	if (!atomic_compare_exchange_strong(&s->state, &want, SLOT_WRITING)) {
		rte_pktmbuf_free(m);
		return;
	}
	if (f.req_id != s->req_id) {
		atomic_store(&s->state, SLOT_WAITING);
		rte_pktmbuf_free(m);
		return;
	}
	if (s->got == 0)
		s->total = f.total ? f.total : 1;
	if (s->len + (len - 8) <= s->cap) {
		/* rte_pktmbuf_read copies only where the data is not contiguous already. */
		const uint8_t *p = rte_pktmbuf_read(m, 8, len - 8, s->buf + s->len);
		if (p != s->buf + s->len)
			memcpy(s->buf + s->len, p, len - 8);
		s->len += len - 8;
	} else {
		s->cut = true;
	}
	s->got++;
	atomic_store(&s->state, s->got >= s->total ? SLOT_DONE : SLOT_WAITING);
	rte_pktmbuf_free(m);
}

/* A chain of mbufs from pool holding data[0..len); NULL when out of mbufs. */
static struct rte_mbuf *
mbufs_of(struct rte_mempool *pool, const uint8_t *data, size_t len)
{
	struct rte_mbuf *head = NULL;
	size_t off = 0;

	do {
		struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
		size_t n;

		if (m == NULL) {
			rte_pktmbuf_free(head);
			return NULL;
		}
		n = len - off < rte_pktmbuf_tailroom(m) ? len - off : rte_pktmbuf_tailroom(m);
		memcpy(rte_pktmbuf_append(m, (uint16_t)n), data + off, n);
		off += n;
		if (head == NULL)
			head = m;
		else if (rte_pktmbuf_chain(head, m) != 0) {
			rte_pktmbuf_free(m);
			rte_pktmbuf_free(head);
			return NULL;
		}
	} while (off < len);
	return head;
}

static void
sleep_us(long us)
{
	struct timespec t = { 0, us * 1000 };

	nanosleep(&t, NULL);
}

int
kited_api_call(const struct node *n, const struct kited_api_policy *pol, uint8_t opcode,
	       const char *flags, const void *key, uint16_t keylen, const void *value,
	       uint32_t vallen, struct kited_api_result *out)
{
	const uint32_t part = kite_topo_key_partition(key, keylen, n->map.partitions);
	const uint16_t wid = kite_topo_owner(&n->map, part);
	const struct worker *w = &n->workers[wid];
	const size_t flen = flags ? strlen(flags) : 0;
	const size_t reqlen = 8 + 24 + flen + keylen + vallen;
	/* Room for the reply: the value (at most the item limit), its flags, frames. */
	const size_t cap = (size_t)n->cfg.max_item_size + 4096;
	struct kite_proto_frame fr;
	struct rte_mbuf *m;
	struct handoff_meta *h;
	struct api_slot *s;
	uint8_t *req;
	int slot, rc;

	memset(out, 0, sizeof(*out));
	if (flen > 255 || reqlen > KITED_API_MAX_REQUEST)
		return -E2BIG;
	slot = slot_claim(cap);
	if (slot < 0)
		return -EBUSY;
	s = &slots[slot];
	req = malloc(reqlen);
	if (req == NULL) {
		slot_release(s);
		return -ENOMEM;
	}
	fr = (struct kite_proto_frame){ s->req_id, 0, 1, 0 };
	kite_proto_frame_write(req, &fr);
	rc = kite_proto_build_req(req + 8, reqlen - 8, opcode, 1, 0, flags, (uint8_t)flen, key,
				  keylen, value, vallen);
	if (rc < 0) {
		free(req);
		slot_release(s);
		return -EINVAL;
	}
	m = mbufs_of(w->pool, req, reqlen);
	free(req);
	if (m == NULL) {
		slot_release(s);
		return -ENOMEM;
	}
	/* Sent by "0.0.0.0:slot+1": the worker hands the reply back here. */
	h = rte_mbuf_to_priv(m);
	memset(h, 0, sizeof(*h));
	h->u.src_ip = 0;
	h->u.src_port = (uint16_t)(slot + 1);
	h->u.payload_off = 0;
	h->u.payload_len = (uint16_t)reqlen;
	/* The verdict a datagram of this client would get: the engine obeys it as any. */
	h->deny = pol->deny;
	h->ns = pol->ns;
	h->prefix_len = pol->prefix_len;
	memcpy(h->prefix, pol->prefix, pol->prefix_len);
	h->tenant = pol->tag;
	h->api_tenant = pol->tenant;
	if (rte_ring_mp_enqueue(w->handoff, m) != 0) {
		rte_pktmbuf_free(m);
		slot_release(s);
		return -EAGAIN;
	}
	for (unsigned int waited = 0;; waited += 50) {
		int done = SLOT_DONE, waiting = SLOT_WAITING;

		if (atomic_compare_exchange_strong(&s->state, &done, SLOT_WRITING))
			break;
		if (waited >= API_WAIT_MS * 1000 &&
		    atomic_compare_exchange_strong(&s->state, &waiting, SLOT_WRITING)) {
			slot_release(s);
			return -ETIMEDOUT;
		}
		sleep_us(50);
	}
	/* The one response (opaque 1). */
	struct kite_res r;
	int used = kite_proto_parse_res(s->buf, s->len, &r);

	if (s->cut || used <= 0 || r.opaque != 1) {
		slot_release(s);
		return -EIO;
	}
	out->status = r.status;
	out->cas = r.cas;
	out->flags_len = r.extlen < sizeof(out->flags) - 1 ? r.extlen : sizeof(out->flags) - 1;
	memcpy(out->flags, r.extras, out->flags_len);
	out->flags[out->flags_len] = '\0';
	out->value = NULL;
	out->value_len = r.vallen;
	if (r.vallen > 0) {
		out->value = malloc(r.vallen);
		if (out->value == NULL) {
			slot_release(s);
			return -ENOMEM;
		}
		memcpy(out->value, r.value, r.vallen);
	}
	slot_release(s);
	return 0;
}
