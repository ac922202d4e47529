/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "kite_cluster.h"

/* Seed of the members' own hash seeds ("kite" in ASCII). */
#define MEMBER_SEED 0x6b697465u

static const char *const state_names[KITE_CLUSTER_STATE_MAX] = {
	[KITE_CLUSTER_ACTIVE] = "active",
	[KITE_CLUSTER_JOINING] = "joining",
	[KITE_CLUSTER_LEAVING] = "leaving",
};

const char *
kite_cluster_state_name(unsigned int state)
{
	return state < KITE_CLUSTER_STATE_MAX ? state_names[state] : NULL;
}

int
kite_cluster_state_parse(const char *name)
{
	for (unsigned int i = 0; i < KITE_CLUSTER_STATE_MAX; i++)
		if (strcmp(name, state_names[i]) == 0)
			return (int)i;
	return -1;
}

uint32_t
kite_cluster_vbucket(const void *key, uint16_t keylen, uint32_t vbuckets)
{
	return vbuckets == 0 ? 0 : (uint32_t)(XXH64(key, keylen, 0) % vbuckets);
}

static bool
pow2(uint64_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

int
kite_cluster_member_check(const struct kite_cluster_member *mb)
{
	size_t idlen = strnlen(mb->id, sizeof(mb->id));
	size_t zlen = strnlen(mb->zone, sizeof(mb->zone));

	if (idlen == 0 || idlen > KITE_CLUSTER_ID_MAX || zlen > KITE_CLUSTER_ZONE_MAX)
		return -EINVAL;
	for (size_t i = 0; i < idlen; i++)
		if (mb->id[i] <= ' ' || mb->id[i] > '~' || mb->id[i] == '/')
			return -EINVAL;
	for (size_t i = 0; i < zlen; i++)
		if (mb->zone[i] < ' ' || mb->zone[i] > '~')
			return -EINVAL;
	if (mb->weight == 0 || mb->weight > KITE_CLUSTER_MAX_WEIGHT)
		return -EINVAL;
	if (!pow2(mb->partitions) || mb->state >= KITE_CLUSTER_STATE_MAX)
		return -EINVAL;
	return 0;
}

/*
 * Scores are integers so that every machine computes the same map:
 * -log2(u) in Q32.32 for u = (h >> 11 | 1) / 2^53. log2 of the mantissa
 * comes from a table of 2^16 + 1 points, each computed exactly by
 * repeated squaring, and linear interpolation between them (error below
 * 2^-33, far under the scores' spacing).
 */
#define LOG_BITS 16
static uint64_t log_table[(1u << LOG_BITS) + 1];
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

/* log2 of a mantissa in [1, 2), given as Q1.62, to 32 fraction bits. */
static uint64_t
log2_mantissa(uint64_t m)
{
	uint64_t frac = 0;

	for (int i = 1; i <= 32; i++) {
		unsigned __int128 sq = (unsigned __int128)m * m;

		m = (uint64_t)(sq >> 62);
		if (m >= (UINT64_C(2) << 62)) {
			m >>= 1;
			frac |= UINT64_C(1) << (32 - i);
		}
	}
	return frac;
}

static void
log_init(void)
{
	for (uint64_t i = 0; i < (1u << LOG_BITS); i++)
		log_table[i] = log2_mantissa((UINT64_C(1) << 62) | (i << (62 - LOG_BITS)));
	log_table[1u << LOG_BITS] = UINT64_C(1) << 32; /* log2(2) */
}

static uint64_t
neglog2_q32(uint64_t h)
{
	uint64_t x = (h >> 11) | 1;
	int lz = __builtin_clzll(x);
	uint64_t m = x << lz; /* leading one at bit 63 */
	uint32_t idx = (uint32_t)(m >> (63 - LOG_BITS)) & ((1u << LOG_BITS) - 1);
	uint64_t rem = (m >> (63 - LOG_BITS - 32)) & 0xffffffffu;
	uint64_t lo = log_table[idx], hi = log_table[idx + 1];
	uint64_t frac = lo + (((hi - lo) * rem) >> 32);

	return (UINT64_C(53) << 32) - (((uint64_t)(63 - lz) << 32) + frac);
}

/* A (vbucket, member) candidate: weighted score s / w, lower is better. */
struct cand {
	uint64_t s;
	uint32_t w;
	uint8_t idx;
};

/* Strict order of candidates: s_a/w_a, then the member index. */
static bool
cand_less(const struct cand *a, const struct cand *b)
{
	uint64_t l = a->s * b->w, r = b->s * a->w;

	return l != r ? l < r : a->idx < b->idx;
}

struct build {
	const struct kite_cluster_member *mb;
	const uint64_t *seed;
	const uint8_t *elig; /* member indexes that may own */
	unsigned int n_elig;
};

static struct cand
score(const struct build *b, uint32_t vb, uint8_t idx)
{
	uint32_t le = vb; /* hashed as 4 little-endian bytes */
	uint8_t buf[4] = { (uint8_t)le, (uint8_t)(le >> 8), (uint8_t)(le >> 16),
			   (uint8_t)(le >> 24) };
	struct cand c = { neglog2_q32(XXH64(buf, 4, b->seed[idx])), b->mb[idx].weight, idx };

	return c;
}

/* The best eligible candidate of vb strictly after `after` (NULL: the best). */
static bool
next_cand(const struct build *b, uint32_t vb, const struct cand *after, struct cand *out)
{
	bool found = false;

	for (unsigned int k = 0; k < b->n_elig; k++) {
		struct cand c = score(b, vb, b->elig[k]);

		if (after != NULL && !cand_less(after, &c))
			continue;
		if (!found || cand_less(&c, out)) {
			*out = c;
			found = true;
		}
	}
	return found;
}

/* Min-heap of vbuckets by their current candidate. */
struct heap {
	uint32_t *v;
	uint32_t n;
	struct cand *cur; /* per vbucket */
};

static bool
heap_less(const struct heap *h, uint32_t a, uint32_t b)
{
	const struct cand *x = &h->cur[a], *y = &h->cur[b];

	if (cand_less(x, y))
		return true;
	if (cand_less(y, x))
		return false;
	return a < b;
}

static void
heap_down(struct heap *h, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < h->n && heap_less(h, h->v[l], h->v[m]))
			m = l;
		if (r < h->n && heap_less(h, h->v[r], h->v[m]))
			m = r;
		if (m == i)
			return;
		uint32_t t = h->v[i];
		h->v[i] = h->v[m];
		h->v[m] = t;
		i = m;
	}
}

static int
cmp_member(const void *a, const void *b)
{
	return strcmp(((const struct kite_cluster_member *)a)->id,
		      ((const struct kite_cluster_member *)b)->id);
}

/* Caps: floor(cap x fair share), topped up so that they hold every vbucket. */
static void
caps(const struct build *b, uint32_t vbuckets, uint32_t *cap)
{
	uint64_t wsum = 0, total = 0;

	for (unsigned int k = 0; k < b->n_elig; k++)
		wsum += b->mb[b->elig[k]].weight;
	for (unsigned int k = 0; k < b->n_elig; k++) {
		uint64_t num = (uint64_t)vbuckets * b->mb[b->elig[k]].weight *
			       KITE_CLUSTER_CAP_PERMILLE;

		cap[b->elig[k]] = (uint32_t)(num / (wsum * 1000));
		total += cap[b->elig[k]];
	}
	/* Few vbuckets per member: round up the largest shares first. */
	for (unsigned int k = 0; total < vbuckets; k = (k + 1) % b->n_elig) {
		cap[b->elig[k]]++;
		total++;
	}
}

static void
replicas(const struct build *b, const struct kite_cluster_map *m, uint32_t vb)
{
	uint8_t *list = m->nodes + (size_t)vb * m->copies;
	unsigned int have = 1;

	/* Other zones first (a member without a zone is a zone of its own), then any. */
	for (int pass = 0; pass < 2 && have < m->copies; pass++) {
		while (have < m->copies) {
			struct cand best;
			bool found = false;

			for (unsigned int k = 0; k < b->n_elig; k++) {
				uint8_t idx = b->elig[k];
				bool taken = false;

				for (unsigned int j = 0; j < have && !taken; j++) {
					const char *z = m->members[list[j]].zone;

					taken = list[j] == idx ||
						(pass == 0 && z[0] != '\0' &&
						 strcmp(z, m->members[idx].zone) == 0);
				}
				if (taken)
					continue;
				struct cand c = score(b, vb, idx);
				if (!found || cand_less(&c, &best)) {
					best = c;
					found = true;
				}
			}
			if (!found)
				break;
			list[have++] = best.idx;
		}
	}
	for (; have < m->copies; have++)
		list[have] = KITE_CLUSTER_NONE;
}

/*
 * A joining member does not own yet: where it heads a vbucket's list, the
 * first member after it that is not joining moves to the front (in HRW
 * order that is the vbucket's owner before the join), so the joiner is
 * its replica and gets the data first (kited's backfill); when it turns
 * active, the vbucket moves to it, data and all. Where every listed member
 * is joining (a new cluster), the list stays.
 */
static void
joining_second(const struct kite_cluster_map *m, uint32_t vb)
{
	uint8_t *l = m->nodes + (size_t)vb * m->copies;
	unsigned int k;

	if (m->members[l[0]].state != KITE_CLUSTER_JOINING)
		return;
	for (k = 1; k < m->copies && l[k] != KITE_CLUSTER_NONE; k++)
		if (m->members[l[k]].state != KITE_CLUSTER_JOINING)
			break;
	if (k == m->copies || l[k] == KITE_CLUSTER_NONE)
		return;
	uint8_t first = l[k];
	memmove(l + 1, l, k);
	l[0] = first;
}

int
kite_cluster_map_build(struct kite_cluster_map *m, const struct kite_cluster_member *members,
		       unsigned int n, uint32_t vbuckets, unsigned int copies, uint64_t epoch)
{
	uint64_t seed[KITE_CLUSTER_MAX_MEMBERS];
	uint8_t elig[KITE_CLUSTER_MAX_MEMBERS];
	uint32_t cap[KITE_CLUSTER_MAX_MEMBERS];
	struct build b = { .seed = seed, .elig = elig };
	struct heap h = { 0 };

	pthread_once(&log_once, log_init);
	memset(m, 0, sizeof(*m));
	if (n == 0 || n > KITE_CLUSTER_MAX_MEMBERS || !pow2(vbuckets) ||
	    vbuckets < KITE_CLUSTER_MIN_VBUCKETS || vbuckets > KITE_CLUSTER_MAX_VBUCKETS ||
	    copies == 0 || copies > KITE_CLUSTER_MAX_COPIES)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++)
		if (kite_cluster_member_check(&members[i]) != 0 ||
		    vbuckets % members[i].partitions != 0)
			return -EINVAL;

	m->members = malloc(sizeof(*m->members) * n);
	m->nodes = malloc((size_t)vbuckets * copies);
	h.v = malloc(sizeof(*h.v) * vbuckets);
	h.cur = malloc(sizeof(*h.cur) * vbuckets);
	if (m->members == NULL || m->nodes == NULL || h.v == NULL || h.cur == NULL)
		goto nomem;
	memcpy(m->members, members, sizeof(*members) * n);
	/* Input order must not matter: members by id, ids unique. */
	qsort(m->members, n, sizeof(*m->members), cmp_member);
	for (unsigned int i = 1; i < n; i++)
		if (strcmp(m->members[i - 1].id, m->members[i].id) == 0)
			goto inval;
	m->epoch = epoch;
	m->vbuckets = vbuckets;
	m->n_members = (uint16_t)n;
	m->copies = (uint8_t)copies;

	b.mb = m->members;
	for (unsigned int i = 0; i < n; i++) {
		seed[i] = XXH64(m->members[i].id, strlen(m->members[i].id), MEMBER_SEED);
		if (m->members[i].state != KITE_CLUSTER_LEAVING)
			elig[b.n_elig++] = (uint8_t)i;
	}
	if (b.n_elig == 0)
		goto inval;
	caps(&b, vbuckets, cap);

	/*
	 * Owners: pairs in score order (a heap of each vbucket's best untried
	 * member); a full member passes the vbucket to its next choice.
	 */
	for (uint32_t v = 0; v < vbuckets; v++) {
		next_cand(&b, v, NULL, &h.cur[v]);
		h.v[v] = v;
	}
	h.n = vbuckets;
	for (uint32_t i = h.n / 2; i-- > 0;)
		heap_down(&h, i);
	while (h.n > 0) {
		uint32_t v = h.v[0];
		uint8_t idx = h.cur[v].idx;

		if (cap[idx] > 0) {
			cap[idx]--;
			m->nodes[(size_t)v * copies] = idx;
			h.v[0] = h.v[--h.n];
		} else {
			struct cand nx;

			/* The caps hold every vbucket, so someone is always left. */
			if (!next_cand(&b, v, &h.cur[v], &nx))
				goto inval;
			h.cur[v] = nx;
		}
		heap_down(&h, 0);
	}
	if (copies > 1)
		for (uint32_t v = 0; v < vbuckets; v++) {
			replicas(&b, m, v);
			joining_second(m, v);
		}
	free(h.v);
	free(h.cur);
	return 0;
inval:
	free(h.v);
	free(h.cur);
	kite_cluster_map_free(m);
	return -EINVAL;
nomem:
	free(h.v);
	free(h.cur);
	kite_cluster_map_free(m);
	return -ENOMEM;
}

void
kite_cluster_map_free(struct kite_cluster_map *m)
{
	free(m->members);
	free(m->nodes);
	m->members = NULL;
	m->nodes = NULL;
	m->n_members = 0;
}

int
kite_cluster_find(const struct kite_cluster_map *m, const char *id)
{
	for (unsigned int i = 0; i < m->n_members; i++)
		if (strcmp(m->members[i].id, id) == 0)
			return (int)i;
	return -1;
}

void
kite_cluster_owned(const struct kite_cluster_map *m, uint32_t *counts)
{
	memset(counts, 0, sizeof(*counts) * m->n_members);
	for (uint32_t v = 0; v < m->vbuckets; v++)
		counts[kite_cluster_owner(m, v)]++;
}
