/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <string.h>

#include <rte_common.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_prefetch.h>

#include "kite_index.h"

#define SLOTS	  8
#define TAG_SHIFT 48
#define OFF_MASK  ((UINT64_C(1) << TAG_SHIFT) - 1)

struct bucket {
	uint64_t slot[SLOTS]; /* tag << 48 | (offset / 8 + 1); 0: empty */
} __rte_cache_aligned;

_Static_assert(sizeof(struct bucket) == 64, "a bucket is one cache line");

struct kite_index {
	struct bucket *b;
	uint64_t mask; /* buckets - 1 */
	uint64_t count;
	const uint8_t *base;
	size_t hash_off;
};

static inline uint64_t
tag_of(uint64_t h)
{
	return h >> TAG_SHIFT;
}

static inline uint64_t
b1_of(const struct kite_index *x, uint64_t h)
{
	return h & x->mask;
}

/* The second bucket differs from the first whenever there are two. */
static inline uint64_t
b2_of(const struct kite_index *x, uint64_t h)
{
	uint64_t alt = (uint32_t)(tag_of(h) * UINT32_C(0x9e3779b1)) | 1;

	return (h ^ alt) & x->mask;
}

static inline void *
item_of(const struct kite_index *x, uint64_t v)
{
	return (void *)(uintptr_t)(x->base + (((v & OFF_MASK) - 1) << 3));
}

static inline uint64_t
hash_of(const struct kite_index *x, const void *item)
{
	uint64_t h;

	memcpy(&h, (const uint8_t *)item + x->hash_off, sizeof(h));
	return h;
}

struct kite_index *
kite_index_create(uint64_t entries, const uint8_t *base, size_t hash_off, int socket_id)
{
	struct kite_index *x;
	uint64_t n = 1;

	if (base == NULL || entries == 0 || entries > (UINT64_C(1) << 40)) {
		rte_errno = EINVAL;
		return NULL;
	}
	/* About 3/4 full when the expected entries are in: two choices of 8 keep up. */
	while (n * SLOTS * 3 / 4 < entries)
		n <<= 1;
	x = rte_zmalloc_socket("kite_index", sizeof(*x), RTE_CACHE_LINE_SIZE, socket_id);
	if (x == NULL) {
		rte_errno = ENOMEM;
		return NULL;
	}
	x->b = rte_zmalloc_socket("kite_index_buckets", n * sizeof(struct bucket),
				  RTE_CACHE_LINE_SIZE, socket_id);
	if (x->b == NULL) {
		rte_free(x);
		rte_errno = ENOMEM;
		return NULL;
	}
	x->mask = n - 1;
	x->base = base;
	x->hash_off = hash_off;
	return x;
}

void
kite_index_free(struct kite_index *x)
{
	if (x == NULL)
		return;
	rte_free(x->b);
	rte_free(x);
}

/* The slot holding h in bucket bi, or NULL. */
static inline uint64_t *
find_in(const struct kite_index *x, uint64_t bi, uint64_t h)
{
	struct bucket *b = &x->b[bi];
	const uint64_t tag = tag_of(h);

	for (int i = 0; i < SLOTS; i++) {
		uint64_t v = b->slot[i];
		if (v != 0 && (v >> TAG_SHIFT) == tag && hash_of(x, item_of(x, v)) == h)
			return &b->slot[i];
	}
	return NULL;
}

static inline uint64_t *
find(const struct kite_index *x, uint64_t h)
{
	uint64_t *s = find_in(x, b1_of(x, h), h);

	return s != NULL ? s : find_in(x, b2_of(x, h), h);
}

void *
kite_index_get(const struct kite_index *x, uint64_t h)
{
	uint64_t *s = find(x, h);

	return s != NULL ? item_of(x, *s) : NULL;
}

void
kite_index_prefetch(const struct kite_index *x, uint64_t h)
{
	rte_prefetch0(&x->b[b1_of(x, h)]);
	rte_prefetch0(&x->b[b2_of(x, h)]);
}

void
kite_index_get_bulk(const struct kite_index *x, const uint64_t *hashes, unsigned int n,
		    void **items)
{
	/* Stage 1: every bucket line in flight. */
	for (unsigned int i = 0; i < n; i++)
		kite_index_prefetch(x, hashes[i]);
	/* Stage 2: first tag match per hash; its item line in flight. */
	for (unsigned int i = 0; i < n; i++) {
		const uint64_t tag = tag_of(hashes[i]);
		const uint64_t bs[2] = { b1_of(x, hashes[i]), b2_of(x, hashes[i]) };

		items[i] = NULL;
		for (int k = 0; k < 2 && items[i] == NULL; k++) {
			const struct bucket *b = &x->b[bs[k]];
			for (int j = 0; j < SLOTS; j++) {
				uint64_t v = b->slot[j];
				if (v != 0 && (v >> TAG_SHIFT) == tag) {
					items[i] = item_of(x, v);
					rte_prefetch0(items[i]);
					break;
				}
			}
		}
	}
	/* Stage 3: confirm by the full hash; a tag collision (1 in 4096) rescans. */
	for (unsigned int i = 0; i < n; i++)
		if (items[i] != NULL && hash_of(x, items[i]) != hashes[i])
			items[i] = kite_index_get(x, hashes[i]);
}

int
kite_index_put(struct kite_index *x, uint64_t h, const void *item)
{
	const uint64_t off = (uint64_t)((const uint8_t *)item - x->base);
	const uint64_t v = tag_of(h) << TAG_SHIFT | ((off >> 3) + 1);
	uint64_t *s = find(x, h);
	struct bucket *b1, *b2;
	int f1 = 0, f2 = 0;

	if (s != NULL) {
		*s = v;
		return 0;
	}
	b1 = &x->b[b1_of(x, h)];
	b2 = &x->b[b2_of(x, h)];
	for (int i = 0; i < SLOTS; i++) {
		f1 += b1->slot[i] == 0;
		f2 += b2->slot[i] == 0;
	}
	if (f1 == 0 && f2 == 0)
		return -ENOSPC;
	/* The emptier bucket keeps both choices open longest. */
	struct bucket *b = f1 >= f2 ? b1 : b2;
	for (int i = 0; i < SLOTS; i++) {
		if (b->slot[i] == 0) {
			b->slot[i] = v;
			x->count++;
			return 0;
		}
	}
	return -ENOSPC;
}

int
kite_index_del(struct kite_index *x, uint64_t h)
{
	uint64_t *s = find(x, h);

	if (s == NULL)
		return -ENOENT;
	*s = 0;
	x->count--;
	return 0;
}

unsigned int
kite_index_neighbours(const struct kite_index *x, uint64_t h, void **items)
{
	const uint64_t bs[2] = { b1_of(x, h), b2_of(x, h) };
	unsigned int n = 0;

	for (int k = 0; k < 2; k++)
		for (int i = 0; i < SLOTS; i++)
			if (x->b[bs[k]].slot[i] != 0)
				items[n++] = item_of(x, x->b[bs[k]].slot[i]);
	return n;
}

uint64_t
kite_index_count(const struct kite_index *x)
{
	return x->count;
}

uint64_t
kite_index_bytes(const struct kite_index *x)
{
	return (x->mask + 1) * sizeof(struct bucket) + sizeof(*x);
}
