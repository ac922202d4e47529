/* SPDX-License-Identifier: BSD-3-Clause */
/* The node's neighbour table (kite_net.h). */

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <rte_common.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_pause.h>

#include "kite_net.h"

#define PROBE 8

enum { NE_FREE = 0, NE_ASKED, NE_OK, NE_STATIC };

struct entry {
	uint32_t seq; /* odd while a writer holds the entry */
	uint32_t ip;  /* host order; 0: free */
	struct rte_ether_addr mac;
	uint8_t state;
	uint8_t rsvd;
	uint64_t asked;	  /* TSC of the last request, 0: none */
	uint64_t learned; /* TSC of the answer the MAC came from */
};

_Static_assert(sizeof(struct entry) == 32, "two entries per cache line");

struct kite_neigh {
	uint32_t mask;
	struct entry e[];
};

struct kite_neigh *
kite_neigh_create(uint32_t entries, int socket_id)
{
	struct kite_neigh *t;
	uint32_t n;

	if (entries == 0)
		entries = KITE_NEIGH_DEFAULT;
	if (entries > KITE_NEIGH_MAX) {
		rte_errno = EINVAL;
		return NULL;
	}
	n = rte_align32pow2(RTE_MAX(entries, (uint32_t)KITE_NEIGH_MIN)); /* as kite_neigh_footprint() */
	t = rte_zmalloc_socket("kite_neigh", sizeof(*t) + (size_t)n * sizeof(struct entry),
			       RTE_CACHE_LINE_SIZE, socket_id);
	if (t == NULL) {
		rte_errno = ENOMEM;
		return NULL;
	}
	t->mask = n - 1;
	return t;
}

size_t
kite_neigh_footprint(uint32_t entries)
{
	uint32_t n = rte_align32pow2(RTE_MAX(entries != 0 ? entries : KITE_NEIGH_DEFAULT,
					     (uint32_t)KITE_NEIGH_MIN));

	return sizeof(struct kite_neigh) + (size_t)n * sizeof(struct entry) + RTE_CACHE_LINE_SIZE;
}

void
kite_neigh_free(struct kite_neigh *t)
{
	rte_free(t);
}

static inline uint32_t
slot_of(const struct kite_neigh *t, uint32_t ip)
{
	/* Fibonacci hashing: neighbours tend to be consecutive addresses. */
	return (uint32_t)(((uint64_t)ip * 0x9e3779b97f4a7c15ull) >> 32) & t->mask;
}

/* A consistent copy of an entry (seqlock read). */
static void
read_entry(const struct entry *e, struct entry *out)
{
	for (;;) {
		uint32_t s1 = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);

		if (s1 & 1) {
			rte_pause();
			continue;
		}
		memcpy(out, e, sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&e->seq, __ATOMIC_RELAXED) == s1)
			return;
	}
}

static uint32_t
lock_entry(struct entry *e)
{
	uint32_t s = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);

	for (;;) {
		if (!(s & 1) && __atomic_compare_exchange_n(&e->seq, &s, s + 1, false,
							    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return s + 1;
		rte_pause();
		s = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);
	}
}

static void
unlock_entry(struct entry *e, uint32_t s)
{
	__atomic_store_n(&e->seq, s + 1, __ATOMIC_RELEASE);
}

int
kite_neigh_lookup(const struct kite_neigh *t, uint32_t ip, struct rte_ether_addr *mac,
		  uint64_t *learned)
{
	uint32_t h;

	if (t == NULL || mac == NULL)
		return -EINVAL;
	if (ip == 0)
		return -ENOENT;
	h = slot_of(t, ip);
	for (unsigned int i = 0; i < PROBE; i++) {
		const struct entry *e = &t->e[(h + i) & t->mask];
		struct entry c;

		if (__atomic_load_n(&e->ip, __ATOMIC_RELAXED) == 0)
			return -ENOENT; /* no deletion: a free slot ends the window */
		read_entry(e, &c);
		if (c.ip != ip)
			continue;
		if (c.state != NE_OK && c.state != NE_STATIC)
			return -ENOENT;
		rte_ether_addr_copy(&c.mac, mac);
		if (learned != NULL)
			*learned = c.state == NE_STATIC ? UINT64_MAX : c.learned;
		return 0;
	}
	return -ENOENT;
}

/*
 * The entry of ip, locked (its seq in *s); with create, a free slot or the
 * one used longest ago (never static) becomes it. NULL: absent (or only
 * static entries in the window, with create).
 */
static struct entry *
lock_ip(struct kite_neigh *t, uint32_t ip, bool create, uint32_t *s)
{
	const uint32_t h = slot_of(t, ip);

again:
	for (;;) {
		struct entry *victim = NULL, *free_slot = NULL;
		uint64_t oldest = UINT64_MAX;

		for (unsigned int i = 0; i < PROBE; i++) {
			struct entry *e = &t->e[(h + i) & t->mask];
			struct entry c;

			read_entry(e, &c);
			if (c.ip == ip) {
				*s = lock_entry(e);
				if (e->ip == ip)
					return e;
				unlock_entry(e, *s); /* taken over meanwhile: look again */
				goto again;
			}
			if (c.ip == 0) {
				free_slot = e;
				break;
			}
			if (c.state != NE_STATIC && RTE_MAX(c.asked, c.learned) < oldest) {
				oldest = RTE_MAX(c.asked, c.learned);
				victim = e;
			}
		}
		struct entry *e = free_slot != NULL ? free_slot : victim;
		if (!create || e == NULL)
			return NULL; /* absent; or a window of static entries only */
		*s = lock_entry(e);
		/* Still what we chose? Then it becomes ip's. */
		if ((e == free_slot && e->ip == 0) || (e == victim && e->ip != 0 && e->ip != ip &&
						       e->state != NE_STATIC)) {
			e->ip = ip;
			e->state = NE_FREE;
			e->asked = 0;
			e->learned = 0;
			memset(&e->mac, 0, sizeof(e->mac));
			return e;
		}
		unlock_entry(e, *s);
	}
}

int
kite_neigh_add_static(struct kite_neigh *t, uint32_t ip, const struct rte_ether_addr *mac)
{
	struct entry *e;
	uint32_t s;

	if (t == NULL || mac == NULL || ip == 0 || !rte_is_valid_assigned_ether_addr(mac))
		return -EINVAL;
	e = lock_ip(t, ip, true, &s);
	if (e == NULL)
		return -ENOSPC;
	rte_ether_addr_copy(mac, &e->mac);
	e->state = NE_STATIC;
	unlock_entry(e, s);
	return 0;
}

bool
kite_neigh_ask(struct kite_neigh *t, uint32_t ip, uint64_t tsc, uint64_t interval)
{
	struct entry *e;
	uint32_t s;
	bool send = false;

	if (t == NULL || ip == 0)
		return false;
	e = lock_ip(t, ip, true, &s);
	if (e == NULL)
		return false; /* a window of static entries: nothing to ask */
	if (e->state != NE_STATIC && (e->asked == 0 || tsc - e->asked >= interval)) {
		e->asked = tsc != 0 ? tsc : 1;
		if (e->state == NE_FREE)
			e->state = NE_ASKED;
		send = true;
	}
	unlock_entry(e, s);
	return send;
}

bool
kite_neigh_answer(struct kite_neigh *t, uint32_t ip, const struct rte_ether_addr *mac,
		  uint64_t tsc, uint64_t window)
{
	struct entry *e;
	uint32_t s;
	bool learned = false;

	if (t == NULL || mac == NULL || ip == 0)
		return false;
	e = lock_ip(t, ip, false, &s);
	if (e == NULL)
		return false; /* never asked */
	if (e->state != NE_STATIC && e->asked != 0 && tsc >= e->asked && tsc - e->asked <= window) {
		rte_ether_addr_copy(mac, &e->mac);
		e->state = NE_OK;
		e->learned = tsc;
		learned = true;
	}
	unlock_entry(e, s);
	return learned;
}
