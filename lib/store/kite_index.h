/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_INDEX_H
#define KITE_INDEX_H

/*
 * The partition index (private to lib/store): 64-bit key hash -> item.
 *
 * A bucketized two-choice table: each bucket is one cache line of 8 slots,
 * a slot packs a 16-bit tag (the hash's top bits) with the item's offset in
 * the log. A key lives in one of two buckets derived from its hash. A
 * lookup reads the bucket lines and then the item: two dependent cache
 * misses, where rte_hash (bucket, then its key store, then our item) takes
 * three; kited's profile had rte_hash's key-store compare at 23% of a GET
 * at 16 requests per datagram. Full buckets are resolved by the store
 * evicting one of their items (a cache may forget), so inserts never
 * cascade. One owner lcore: nothing here locks.
 */

#include <stddef.h>
#include <stdint.h>

struct kite_index;

/*
 * entries: expected live items (sizing); base: the log the offsets are
 * relative to; hash_off: offset of the uint64_t key hash inside an item.
 * @return NULL with rte_errno set.
 */
struct kite_index *kite_index_create(uint64_t entries, const uint8_t *base, size_t hash_off,
				     int socket_id);
void kite_index_free(struct kite_index *x);

/* The item for hash h, or NULL. */
void *kite_index_get(const struct kite_index *x, uint64_t h);

/*
 * Look up n hashes; items[i] is the item of hashes[i] or NULL. Both
 * candidate buckets of every hash are prefetched before any is read, and
 * every found item before it is checked.
 */
void kite_index_get_bulk(const struct kite_index *x, const uint64_t *hashes, unsigned int n,
			 void **items);

/* Point h at item (insert or replace). @return 0, or -ENOSPC: both buckets full. */
int kite_index_put(struct kite_index *x, uint64_t h, const void *item);

/* Remove h. @return 0 or -ENOENT. */
int kite_index_del(struct kite_index *x, uint64_t h);

/* The items in h's two buckets (up to 16), to choose an eviction victim from. */
unsigned int kite_index_neighbours(const struct kite_index *x, uint64_t h, void **items);

/* Live entries. */
uint64_t kite_index_count(const struct kite_index *x);

/* Prefetch h's buckets (data-path staging). */
void kite_index_prefetch(const struct kite_index *x, uint64_t h);

/* Bytes of memory the index takes. */
uint64_t kite_index_bytes(const struct kite_index *x);

#endif /* KITE_INDEX_H */
