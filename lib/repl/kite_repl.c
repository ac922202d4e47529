/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "kite_proto.h"
#include "kite_repl.h"

/*
 * Layout (big-endian), after the 8-byte frame:
 *   binary header (24): magic, opcode 0xe8, keylen 0, extlen 16, datatype 0,
 *     vbucket/status 0, bodylen, opaque, cas 0
 *   extras (16): u8 sub, u8 version, u16 record count, u32 sender, u64 epoch
 *   body: records (DATA) or pairs (ACK/NACK), then a 16-byte MAC over
 *     header + extras + records (with bodylen already set).
 * Record: u8 kind, u8 key length, u32 vbucket, u64 seq, u64 cas, u32 flags,
 *   u32 expiry, u32 value length, key, value.
 */

void
kite_repl_begin(struct kite_repl_builder *b, uint8_t *buf, size_t cap, uint8_t sub,
		uint16_t req_id, uint32_t opaque, uint32_t sender, uint64_t epoch)
{
	struct kite_proto_frame f = { req_id, 0, 1, 0 };
	uint8_t *h = buf + 8, *x = h + 24;

	b->buf = buf;
	b->cap = cap;
	b->len = KITE_REPL_HDR_LEN;
	b->n = 0;
	b->sub = sub;
	kite_proto_frame_write(buf, &f);
	memset(h, 0, 24);
	h[0] = sub == KITE_REPL_DATA ? KITE_MAGIC_REQ : KITE_MAGIC_RES;
	h[1] = KITE_REPL_OPCODE;
	h[4] = KITE_REPL_EXTLEN;
	kite_proto_put32(h + 12, opaque);
	x[0] = sub;
	x[1] = KITE_REPL_VERSION;
	kite_proto_put16(x + 2, 0);
	kite_proto_put32(x + 4, sender);
	kite_proto_put64(x + 8, epoch);
}

bool
kite_repl_fits(const struct kite_repl_builder *b, uint16_t keylen, uint32_t vallen)
{
	return b->len + KITE_REPL_REC_FIXED + keylen + (size_t)vallen + KITE_REPL_MAC_LEN <= b->cap;
}

int
kite_repl_add_rec(struct kite_repl_builder *b, const struct kite_repl_rec *r)
{
	uint8_t *p;

	if (b->sub != KITE_REPL_DATA || r->keylen > KITE_KEY_MAX || b->n == UINT16_MAX ||
	    r->kind < KITE_REPL_PUT || r->kind > KITE_REPL_MARK)
		return -EINVAL;
	if (!kite_repl_fits(b, r->keylen, r->vallen))
		return -ENOSPC;
	p = b->buf + b->len;
	p[0] = r->kind;
	p[1] = (uint8_t)r->keylen;
	kite_proto_put32(p + 2, r->vbucket);
	kite_proto_put64(p + 6, r->seq);
	kite_proto_put64(p + 14, r->cas);
	kite_proto_put32(p + 22, r->flags);
	kite_proto_put32(p + 26, r->exptime);
	kite_proto_put32(p + 30, r->vallen);
	if (r->keylen > 0)
		memcpy(p + KITE_REPL_REC_FIXED, r->key, r->keylen);
	if (r->vallen > 0)
		memcpy(p + KITE_REPL_REC_FIXED + r->keylen, r->value, r->vallen);
	b->len += KITE_REPL_REC_FIXED + r->keylen + (size_t)r->vallen;
	b->n++;
	return 0;
}

int
kite_repl_add_pair(struct kite_repl_builder *b, uint32_t vbucket, uint64_t seq)
{
	uint8_t *p;

	if (b->sub == KITE_REPL_DATA || b->n == UINT16_MAX)
		return -EINVAL;
	if (b->len + KITE_REPL_PAIR_LEN + KITE_REPL_MAC_LEN > b->cap)
		return -ENOSPC;
	p = b->buf + b->len;
	kite_proto_put32(p, vbucket);
	kite_proto_put64(p + 4, seq);
	b->len += KITE_REPL_PAIR_LEN;
	b->n++;
	return 0;
}

static void
mac_of(uint8_t out[KITE_REPL_MAC_LEN], const uint8_t *p, size_t len,
       const uint8_t secret[KITE_REPL_SECRET_LEN])
{
	crypto_generichash(out, KITE_REPL_MAC_LEN, p, len, secret, KITE_REPL_SECRET_LEN);
}

size_t
kite_repl_close(struct kite_repl_builder *b, const uint8_t secret[KITE_REPL_SECRET_LEN])
{
	uint8_t *h = b->buf + 8;
	size_t bodylen = b->len + KITE_REPL_MAC_LEN - 8 - 24;

	kite_proto_put32(h + 8, (uint32_t)bodylen);
	kite_proto_put16(h + 24 + 2, (uint16_t)b->n);
	mac_of(b->buf + b->len, h, b->len - 8, secret);
	b->len += KITE_REPL_MAC_LEN;
	return b->len;
}

int
kite_repl_parse(const uint8_t *p, size_t len, const uint8_t secret[KITE_REPL_SECRET_LEN],
		struct kite_repl_msg *m)
{
	uint8_t mac[KITE_REPL_MAC_LEN];
	uint32_t bodylen;
	const uint8_t *x;

	if (len < 24 + KITE_REPL_EXTLEN + KITE_REPL_MAC_LEN)
		return KITE_REPL_MALFORMED;
	if ((p[0] != KITE_MAGIC_REQ && p[0] != KITE_MAGIC_RES) || p[1] != KITE_REPL_OPCODE ||
	    kite_proto_get16(p + 2) != 0 || p[4] != KITE_REPL_EXTLEN)
		return KITE_REPL_MALFORMED;
	bodylen = kite_proto_get32(p + 8);
	if (bodylen < KITE_REPL_EXTLEN + KITE_REPL_MAC_LEN || bodylen > len - 24)
		return KITE_REPL_MALFORMED;
	x = p + 24;
	if (x[1] != KITE_REPL_VERSION || x[0] < KITE_REPL_DATA || x[0] > KITE_REPL_NACK ||
	    (x[0] == KITE_REPL_DATA) != (p[0] == KITE_MAGIC_REQ))
		return KITE_REPL_MALFORMED;
	/* The MAC covers header, extras and body up to itself. */
	mac_of(mac, p, 24 + bodylen - KITE_REPL_MAC_LEN, secret);
	if (sodium_memcmp(mac, p + 24 + bodylen - KITE_REPL_MAC_LEN, KITE_REPL_MAC_LEN) != 0)
		return KITE_REPL_BAD_MAC;
	m->sub = x[0];
	m->response = p[0] == KITE_MAGIC_RES;
	m->opaque = kite_proto_get32(p + 12);
	m->sender = kite_proto_get32(x + 4);
	m->epoch = kite_proto_get64(x + 8);
	m->body = x + KITE_REPL_EXTLEN;
	m->bodylen = bodylen - KITE_REPL_EXTLEN - KITE_REPL_MAC_LEN;
	return KITE_REPL_OK;
}

int
kite_repl_next_rec(const uint8_t **pp, const uint8_t *end, struct kite_repl_rec *r)
{
	const uint8_t *p = *pp;
	size_t left = (size_t)(end - p);

	if (left == 0)
		return 0;
	if (left < KITE_REPL_REC_FIXED)
		return -1;
	r->kind = p[0];
	r->keylen = p[1];
	r->vbucket = kite_proto_get32(p + 2);
	r->seq = kite_proto_get64(p + 6);
	r->cas = kite_proto_get64(p + 14);
	r->flags = kite_proto_get32(p + 22);
	r->exptime = kite_proto_get32(p + 26);
	r->vallen = kite_proto_get32(p + 30);
	if (r->kind < KITE_REPL_PUT || r->kind > KITE_REPL_MARK || r->seq == 0 ||
	    r->keylen > KITE_KEY_MAX ||
	    (r->kind != KITE_REPL_FLUSH && r->kind != KITE_REPL_RESET && r->kind != KITE_REPL_MARK &&
	     r->keylen == 0) ||
	    (r->kind != KITE_REPL_PUT && r->vallen != 0))
		return -1;
	if (left - KITE_REPL_REC_FIXED < r->keylen ||
	    (size_t)r->vallen > left - KITE_REPL_REC_FIXED - r->keylen)
		return -1;
	r->key = p + KITE_REPL_REC_FIXED;
	r->value = r->key + r->keylen;
	*pp = r->value + r->vallen;
	return 1;
}

int
kite_repl_next_pair(const uint8_t **pp, const uint8_t *end, uint32_t *vbucket, uint64_t *seq)
{
	const uint8_t *p = *pp;

	if (p == end)
		return 0;
	if ((size_t)(end - p) < KITE_REPL_PAIR_LEN)
		return -1;
	*vbucket = kite_proto_get32(p);
	*seq = kite_proto_get64(p + 4);
	*pp = p + KITE_REPL_PAIR_LEN;
	return 1;
}

/* ---- the owner's log ------------------------------------------------------ */

void
kite_repl_log_init(struct kite_repl_log *l, uint8_t *mem, size_t memcap,
		   struct kite_repl_log_ent *ent, uint32_t nent)
{
	memset(l, 0, sizeof(*l));
	l->mem = mem;
	l->memcap = memcap;
	l->ent = ent;
	l->nent_cap = nent;
}

static struct kite_repl_log_ent *
ent_at(const struct kite_repl_log *l, uint64_t i)
{
	return &l->ent[i % l->nent_cap];
}

void
kite_repl_log_add(struct kite_repl_log *l, const uint8_t *dgram, size_t len, uint64_t now)
{
	struct kite_repl_log_ent *e;
	const uint8_t *p, *end;
	struct kite_repl_rec r;
	uint64_t last = l->first; /* the first entry kept */

	if (len > l->memcap || len < KITE_REPL_HDR_LEN + KITE_REPL_MAC_LEN)
		return;
	if (l->head + len > l->memcap)
		l->head = 0;
	/* Forget every entry up to the newest one the new bytes overwrite. */
	for (uint64_t i = l->first; i < l->next; i++) {
		const struct kite_repl_log_ent *o = ent_at(l, i);
		if (o->off < l->head + len && o->off + o->len > l->head)
			last = i + 1;
	}
	if (l->next - last == l->nent_cap)
		last++; /* every entry slot in use: the oldest goes */
	/* Forgotten unacknowledged: told, before their bytes are overwritten. */
	for (uint64_t i = l->first; l->lost != NULL && i < last; i++)
		if (!ent_at(l, i)->acked)
			l->lost(l->lost_arg, l->mem + ent_at(l, i)->off, ent_at(l, i)->len);
	l->first = last;
	e = ent_at(l, l->next);
	e->off = (uint32_t)l->head;
	e->len = (uint32_t)len;
	e->nvb = 0;
	e->req_id = kite_proto_get16(dgram);
	e->acked = 0;
	e->sends = 1;
	e->tsc = now;
	e->born = now;
	memcpy(l->mem + l->head, dgram, len);
	l->head += len;
	l->next++;
	/* Index its records: per vbucket, the lowest and highest sequence. */
	p = dgram + KITE_REPL_HDR_LEN;
	end = dgram + len - KITE_REPL_MAC_LEN;
	while (kite_repl_next_rec(&p, end, &r) == 1) {
		unsigned int k;

		if (e->nvb > KITE_REPL_LOG_VBS)
			break;
		for (k = 0; k < e->nvb; k++)
			if (e->r[k].vb == r.vbucket)
				break;
		/* A RESET answers a NACK from anywhere up to it: the stream restarts there. */
		uint64_t lo = r.kind == KITE_REPL_RESET ? 0 : r.seq;

		if (k == e->nvb) {
			if (e->nvb == KITE_REPL_LOG_VBS) {
				e->nvb = KITE_REPL_LOG_VBS + 1; /* many: resend on any NACK */
				break;
			}
			e->r[k].vb = r.vbucket;
			e->r[k].lo = lo;
			e->r[k].hi = r.seq;
			e->nvb++;
			continue;
		}
		if (lo < e->r[k].lo)
			e->r[k].lo = lo;
		if (r.seq > e->r[k].hi)
			e->r[k].hi = r.seq;
	}
}

bool
kite_repl_log_ack(struct kite_repl_log *l, uint16_t req_id, uint64_t *born)
{
	for (uint64_t i = l->next; i-- > l->first;) {
		struct kite_repl_log_ent *e = &l->ent[i % l->nent_cap];
		if (e->req_id == req_id) {
			bool first = !e->acked;

			e->acked = 1;
			if (born != NULL)
				*born = e->born;
			return first;
		}
	}
	return false;
}

unsigned int
kite_repl_log_unacked(const struct kite_repl_log *l)
{
	unsigned int n = 0;

	for (uint64_t i = l->first; i < l->next; i++)
		n += !l->ent[i % l->nent_cap].acked;
	return n;
}

unsigned int
kite_repl_log_give_up(struct kite_repl_log *l)
{
	unsigned int n = 0;

	for (uint64_t i = l->first; i < l->next; i++) {
		struct kite_repl_log_ent *e = &l->ent[i % l->nent_cap];

		n += !e->acked;
		e->acked = 1;
	}
	return n;
}

unsigned int
kite_repl_log_retry(struct kite_repl_log *l, uint64_t before, uint64_t now, unsigned int max,
		    unsigned int max_sends, void (*fn)(void *arg, const uint8_t *dgram, size_t len),
		    void *arg, uint64_t *given_up)
{
	unsigned int n = 0;

	for (uint64_t i = l->first; i < l->next && n < max; i++) {
		struct kite_repl_log_ent *e = &l->ent[i % l->nent_cap];

		if (e->acked || e->tsc >= before)
			continue;
		if (e->sends >= max_sends) {
			e->acked = 1; /* given up: the replica is gone or cut off; a NACK can still ask */
			if (given_up != NULL)
				(*given_up)++;
			continue;
		}
		fn(arg, l->mem + e->off, e->len);
		e->sends++;
		e->tsc = now;
		n++;
	}
	return n;
}

/* For an entry indexing more vbuckets than it remembers: read its records. */
static void
scan_entry(const struct kite_repl_log *l, const struct kite_repl_log_ent *e, uint32_t vb,
	   uint64_t from, bool *has, bool *reaches)
{
	const uint8_t *p = l->mem + e->off + KITE_REPL_HDR_LEN;
	const uint8_t *end = l->mem + e->off + e->len - KITE_REPL_MAC_LEN;
	struct kite_repl_rec r;

	while (kite_repl_next_rec(&p, end, &r) == 1) {
		if (r.vbucket != vb || r.seq < from)
			continue;
		*has = true;
		*reaches |= r.seq == from || r.kind == KITE_REPL_RESET;
	}
}

int
kite_repl_log_resend(struct kite_repl_log *l, uint32_t vb, uint64_t from, uint64_t epoch,
		     uint64_t now, uint64_t quiet,
		     void (*fn)(void *arg, const uint8_t *dgram, size_t len), void *arg)
{
	int n = 0;
	bool reaches = false;

	for (uint64_t i = l->first; i < l->next; i++) {
		struct kite_repl_log_ent *e = &l->ent[i % l->nent_cap];
		bool has = false;

		/* The extras' epoch (after frame and header). */
		if (kite_proto_get64(l->mem + e->off + 8 + 24 + 8) != epoch)
			continue;
		if (e->nvb > KITE_REPL_LOG_VBS) {
			scan_entry(l, e, vb, from, &has, &reaches);
		} else {
			for (unsigned int k = 0; !has && k < e->nvb; k++)
				if (e->r[k].vb == vb && e->r[k].hi >= from) {
					has = true;
					reaches |= e->r[k].lo <= from;
				}
		}
		if (!has)
			continue;
		if (e->tsc + quiet > now && e->tsc <= now)
			continue; /* just sent: it is on its way */
		fn(arg, l->mem + e->off, e->len);
		e->tsc = now;
		n++;
	}
	return reaches ? n : -1;
}
