/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_STORE_H
#define KITE_STORE_H

/**
 * @file
 * One cache partition: an rte_hash index over a circular item log.
 *
 * A partition is owned by exactly one lcore (EREW), so nothing here locks.
 * Item memory is one region of exactly mem_bytes allocated on the
 * partition's NUMA node at creation: the budget can never be exceeded.
 * Items are appended at the log head; when space is needed the CLOCK hand
 * (the log tail) evicts unreferenced items, reclaims expired, flushed and
 * dead ones, and moves referenced ones back to the head with their bit
 * cleared (FIFO with reinsertion, i.e. CLOCK). A hit only sets a bit.
 *
 * The index is keyed by a 64-bit SipHash-1-3 of the key under a secret
 * per-partition seed, so crafted keys cannot pile into one bucket; the full
 * key is stored in the item and compared on every lookup, so a lookup never
 * returns another key's value even when two keys share a hash.
 *
 * Status returns are enum kite_status values from kite_proto.h.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Creation parameters. */
struct kite_store_params {
	const char *name;        /**< unique among live partitions (rte_hash name) */
	int socket_id;           /**< NUMA node for index and item memory */
	uint64_t mem_bytes;      /**< item log size: the hard memory budget */
	uint32_t index_entries;  /**< index capacity; 0: mem_bytes / 128 */
	uint32_t max_item_size;  /**< longest value accepted (E2BIG beyond) */
	uint16_t id;             /**< partition number; low 16 bits of every CAS */
	const uint8_t *seed;     /**< 16-byte SipHash key; NULL: random */
	bool no_prefetch;        /**< skip the item prefetch of bulk lookups (benchmarks only) */
};

/** Counters, in memcached's names where memcached has one. */
struct kite_store_stats {
	uint64_t curr_items;
	uint64_t total_items;    /**< successful stores */
	uint64_t bytes;          /**< bytes of live items, headers included */
	uint64_t limit_maxbytes; /**< mem_bytes */
	uint64_t get_hits;
	uint64_t get_misses;
	uint64_t get_expired;
	uint64_t get_flushed;
	uint64_t touch_hits;
	uint64_t touch_misses;
	uint64_t delete_hits;
	uint64_t delete_misses;
	uint64_t incr_hits;
	uint64_t incr_misses;
	uint64_t decr_hits;
	uint64_t decr_misses;
	uint64_t cas_hits;
	uint64_t cas_misses;
	uint64_t cas_badval;
	uint64_t evictions;      /**< live items dropped for space */
	uint64_t reclaimed;      /**< expired/flushed items freed by the hand */
	uint64_t expired_unfetched;
	uint64_t evicted_unfetched;
	uint64_t reinserted;     /**< referenced items given a second chance */
	uint64_t index_full;     /**< evictions forced by a full index */
	uint64_t store_too_large;
	uint64_t store_no_memory;
};

/** A found item. Valid until the next mutating call on the same store. */
struct kite_store_view {
	const uint8_t *value;
	uint32_t vallen;
	uint32_t flags;
	uint64_t cas;
};

/** Store modes of kite_store_store(). */
enum kite_store_mode {
	KITE_STORE_SET = 0,
	KITE_STORE_ADD,
	KITE_STORE_REPLACE,
	KITE_STORE_APPEND,
	KITE_STORE_PREPEND,
};

struct kite_store;

/** Create a partition. @return NULL with rte_errno set on failure. */
struct kite_store *kite_store_create(const struct kite_store_params *p);

/** Free a partition and all its memory. NULL is a no-op. */
void kite_store_free(struct kite_store *s);

/**
 * Set the partition's clock (unix seconds). Called once per poll loop by
 * the owner; all TTL decisions use this value.
 */
void kite_store_set_time(struct kite_store *s, uint32_t now);

/** The index hash of a key (SipHash-1-3 under the partition seed). */
uint64_t kite_store_hash(const struct kite_store *s, const void *key, uint16_t keylen);

/**
 * Look up a key. On a hit sets the CLOCK bit and fills *v.
 * @return KITE_STATUS_OK or KITE_STATUS_KEY_ENOENT (missing, expired, flushed).
 */
int kite_store_get(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
		   struct kite_store_view *v);

/**
 * Bulk form of kite_store_get() for up to 64 keys, one rte_hash bulk lookup.
 * statuses[i] receives the status of keys[i]; views[i] is filled on a hit.
 */
void kite_store_get_bulk(struct kite_store *s, const uint8_t *const *keys,
			 const uint16_t *keylens, const uint64_t *hashes, unsigned int n,
			 struct kite_store_view *views, uint8_t *statuses);

/**
 * Get and update the expiry (TOUCH/GAT). exptime as in the protocol.
 * @return KITE_STATUS_OK or KITE_STATUS_KEY_ENOENT.
 */
int kite_store_touch(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
		     uint32_t exptime, struct kite_store_view *v);

/**
 * SET/ADD/REPLACE/APPEND/PREPEND with memcached's semantics, including a
 * non-zero cas_in meaning compare-and-swap. APPEND/PREPEND keep the
 * item's flags and expiry.
 * @return OK (new CAS in *cas_out), KEY_EEXISTS, KEY_ENOENT, NOT_STORED,
 *         E2BIG or ENOMEM.
 */
int kite_store_store(struct kite_store *s, enum kite_store_mode mode, const void *key,
		     uint16_t keylen, uint64_t hash, const void *value, uint32_t vallen,
		     uint32_t flags, uint32_t exptime, uint64_t cas_in, uint64_t *cas_out);

/** DELETE. @return OK, KEY_ENOENT or KEY_EEXISTS (cas mismatch). */
int kite_store_delete(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
		      uint64_t cas_in);

/**
 * INCREMENT/DECREMENT as memcached: 64-bit wrap on incr, floor 0 on decr,
 * a missing key created with `initial` unless exptime is
 * KITE_DELTA_NO_CREATE, DELTA_BADVAL for a non-numeric value.
 * @return OK (*value_out, *cas_out), KEY_ENOENT, KEY_EEXISTS, DELTA_BADVAL,
 *         ENOMEM.
 */
int kite_store_delta(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
		     bool incr, uint64_t delta, uint64_t initial, uint32_t exptime,
		     uint64_t cas_in, uint64_t *value_out, uint64_t *cas_out);

/**
 * FLUSH: with delay 0 every current item becomes invisible now; with a
 * delay (protocol exptime) items stored before that time vanish then.
 */
void kite_store_flush(struct kite_store *s, uint32_t exptime);

/** The item log's memory (mem_bytes long), for NUMA placement checks. */
const void *kite_store_log_mem(const struct kite_store *s, size_t *len);

/** Copy the partition's counters. */
void kite_store_stats_get(const struct kite_store *s, struct kite_store_stats *st);

#endif /* KITE_STORE_H */
