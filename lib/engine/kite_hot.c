/* SPDX-License-Identifier: BSD-3-Clause */
/* Hot-key detection: a sampled Space-Saving top-K per worker (kite_hot.h). */
#include <string.h>

#include "kite_hot.h"

void
kite_hot_init(struct kite_hot *h, uint32_t rate, struct kite_hot_pub *pub, uint32_t now)
{
	memset(h, 0, sizeof(*h));
	h->rate = rate;
	h->pub = pub;
	h->since = now;
	if (pub != NULL)
		memset(pub, 0, sizeof(*pub));
}

/* The index: a sampled key's counter by its hash (linear probing, 0 = empty slot). */
static inline unsigned int
slot_of(uint64_t hash)
{
	return (unsigned int)(hash ^ (hash >> 32)) & (KITE_HOT_SET - 1);
}

static int
index_find(const struct kite_hot *h, uint64_t hash)
{
	for (unsigned int s = slot_of(hash);; s = (s + 1) & (KITE_HOT_SET - 1)) {
		const unsigned int c = h->idx[s];

		if (c == 0)
			return -1;
		if (h->hash[c - 1] == hash)
			return (int)(c - 1);
	}
}

static void
index_add(struct kite_hot *h, uint32_t c)
{
	unsigned int s = slot_of(h->hash[c]);

	while (h->idx[s] != 0)
		s = (s + 1) & (KITE_HOT_SET - 1);
	h->idx[s] = (uint8_t)(c + 1);
}

/* Remove counter c's slot, moving later slots of its probe run back (no tombstones). */
static void
index_del(struct kite_hot *h, uint32_t c)
{
	unsigned int s = slot_of(h->hash[c]);

	while (h->idx[s] != c + 1)
		s = (s + 1) & (KITE_HOT_SET - 1);
	for (unsigned int n = (s + 1) & (KITE_HOT_SET - 1); h->idx[n] != 0;
	     n = (n + 1) & (KITE_HOT_SET - 1)) {
		const unsigned int home = slot_of(h->hash[h->idx[n] - 1]);

		/* The entry at n may fill the hole at s unless its home lies in (s, n]. */
		if (((n - home) & (KITE_HOT_SET - 1)) >= ((n - s) & (KITE_HOT_SET - 1))) {
			h->idx[s] = h->idx[n];
			s = n;
		}
	}
	h->idx[s] = 0;
}

/* The heap of counters by count, smallest first: its root is the one a newcomer takes. */
static void
heap_down(struct kite_hot *h, unsigned int i)
{
	const unsigned int n = h->n;
	const uint8_t c = h->heap[i];
	const uint32_t v = h->count[c];

	for (;;) {
		unsigned int k = 2 * i + 1;

		if (k >= n)
			break;
		if (k + 1 < n && h->count[h->heap[k + 1]] < h->count[h->heap[k]])
			k++;
		if (h->count[h->heap[k]] >= v)
			break;
		h->heap[i] = h->heap[k];
		h->pos[h->heap[i]] = (uint8_t)i;
		i = k;
	}
	h->heap[i] = c;
	h->pos[c] = (uint8_t)i;
}

static void
heap_up(struct kite_hot *h, unsigned int i)
{
	const uint8_t c = h->heap[i];
	const uint32_t v = h->count[c];

	while (i > 0 && h->count[h->heap[(i - 1) / 2]] > v) {
		h->heap[i] = h->heap[(i - 1) / 2];
		h->pos[h->heap[i]] = (uint8_t)i;
		i = (i - 1) / 2;
	}
	h->heap[i] = c;
	h->pos[c] = (uint8_t)i;
}

void
kite_hot_count(struct kite_hot *h, uint64_t hash, const uint8_t *key, uint16_t keylen)
{
	const int found = index_find(h, hash);
	uint32_t m;

	if (found >= 0) {
		h->count[found]++;
		heap_down(h, h->pos[found]);
		return;
	}
	if (h->n < KITE_HOT_K) {
		m = h->n++;
		h->hash[m] = hash;
		h->err[m] = 0;
		h->count[m] = 1;
		h->heap[m] = (uint8_t)m;
		heap_up(h, m);
	} else {
		/* Space-Saving: the newcomer takes the smallest counter and its count as error. */
		m = h->heap[0];
		index_del(h, m);
		h->hash[m] = hash;
		h->err[m] = h->count[m];
		h->count[m]++;
		heap_down(h, 0);
	}
	index_add(h, m);
	h->name[m].keylen = keylen;
	memcpy(h->name[m].key, key, keylen < KITE_HOT_KEYLEN ? keylen : KITE_HOT_KEYLEN);
}

static void
set_add(struct kite_hot *h, uint64_t hash)
{
	unsigned int s = (unsigned int)hash & (KITE_HOT_SET - 1);

	if (hash == 0)
		return;
	while (h->set[s] != 0 && h->set[s] != hash)
		s = (s + 1) & (KITE_HOT_SET - 1);
	h->set[s] = hash;
}

void
kite_hot_tick(struct kite_hot *h, uint32_t now)
{
	uint32_t order[KITE_HOT_K];
	uint32_t elapsed;
	unsigned int n = h->n, top, hot = 0;

	if (now <= h->since)
		return;
	elapsed = now - h->since;
	/* Rank by count (insertion sort of 32). */
	for (unsigned int i = 0; i < n; i++) {
		unsigned int j = i;
		while (j > 0 && h->count[order[j - 1]] < h->count[i]) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	memset(h->set, 0, sizeof(h->set));
	top = n < KITE_HOT_TOP ? n : KITE_HOT_TOP;
	if (h->pub != NULL) {
		h->pub->seq++;
		__atomic_thread_fence(__ATOMIC_RELEASE);
	}
	for (unsigned int i = 0; i < n; i++) {
		const uint32_t o = order[i];
		/*
		 * The decayed count weighs this window 1 and each older one half
		 * of the one after it: it estimates about two windows' reads.
		 */
		const uint64_t rate = (uint64_t)h->count[o] * KITE_HOT_SAMPLE / (2u * elapsed);
		/*
		 * Hot on the count's lower bound (count - error): under a uniform
		 * load every counter is mostly error, inherited from the keys it
		 * replaced, and the estimate alone made all 128 of them "hot" at a
		 * few million reads per second (clients would keep random keys in
		 * their L1, and every hit paid a probe of a full hot set).
		 */
		const uint64_t sure = (uint64_t)(h->count[o] - h->err[o]) * KITE_HOT_SAMPLE /
				      (2u * elapsed);
		const bool is_hot = h->rate != 0 && sure >= h->rate;

		if (is_hot) {
			set_add(h, h->hash[o]);
			hot++;
		}
		if (h->pub != NULL && i < top) {
			struct kite_hot_key *k = &h->pub->top[i];

			k->rate = rate;
			k->err = (uint64_t)h->err[o] * KITE_HOT_SAMPLE / (2u * elapsed);
			k->keylen = h->name[o].keylen;
			memcpy(k->key, h->name[o].key,
			       k->keylen < KITE_HOT_KEYLEN ? k->keylen : KITE_HOT_KEYLEN);
		}
	}
	h->nhot = hot;
	if (h->pub != NULL) {
		h->pub->n = top;
		h->pub->hot = hot < top ? hot : top;
		h->pub->when = now;
		__atomic_thread_fence(__ATOMIC_RELEASE);
		h->pub->seq++;
	}
	/* Decay: older seconds weigh half as much each (halving keeps the heap's order). */
	for (unsigned int i = 0; i < n; i++) {
		h->count[i] /= 2;
		h->err[i] /= 2;
	}
	h->since = now;
}

unsigned int
kite_hot_read(const struct kite_hot_pub *p, struct kite_hot_pub *out)
{
	for (int tries = 0; tries < 1000; tries++) {
		uint32_t s = __atomic_load_n(&p->seq, __ATOMIC_ACQUIRE);

		if (s & 1)
			continue;
		memcpy((void *)out, (const void *)p, sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&p->seq, __ATOMIC_RELAXED) == s)
			return out->n;
	}
	out->n = 0;
	return 0;
}
