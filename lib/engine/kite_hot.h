/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_HOT_H
#define KITE_HOT_H

/**
 * @file
 * Hot-key detection for one worker: a sampled Space-Saving top-K (Metwally
 * et al., 2005) of the keys its reads ask for, in bounded memory and
 * without locks (the worker alone writes it).
 *
 * One read in KITE_HOT_SAMPLE is counted: the sampled key's counter is
 * found among KITE_HOT_K by its hash (a 256-slot index), or it takes over
 * the smallest counter, the root of a heap of the counters by count
 * (Space-Saving: the newcomer inherits the evicted count as its possible
 * overestimate). A sample costs a probe and a sift through the heap's 7
 * levels; scanning 128 hashes and 128 counts for the smallest cost ten
 * times that, 3 % of a batched GET under a uniform load. Space-Saving finds
 * every key with more than 1/KITE_HOT_K of the (decayed) sampled reads. Once a second
 * kite_hot_tick() turns the counts into rates (sampled count x sample rate
 * / seconds), publishes the top KITE_HOT_TOP under a sequence lock for
 * other threads (STAT, telemetry), marks every key at or above the hot
 * rate as hot for the next second (a 256-slot set that a hit checks in a
 * few cycles, for the reply's hint), and halves the counts (older seconds
 * weigh less). Keys are kept for reporting up to KITE_HOT_KEYLEN bytes.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KITE_HOT_K 128       /**< Space-Saving counters: keys over 1/128 of the sampled reads are found */
#define KITE_HOT_TOP 10      /**< keys published */
#define KITE_HOT_KEYLEN 64   /**< key bytes kept for reporting */
#define KITE_HOT_SAMPLE 64   /**< one read in this many is counted (a power of two) */
#define KITE_HOT_SET 256     /**< slots of the hot set and of the counters' index (a power of two, twice KITE_HOT_K) */

/* Counters are numbered in a byte; the index needs an empty slot to end a probe. */
_Static_assert(KITE_HOT_K < 256 && KITE_HOT_SET > KITE_HOT_K, "kite_hot sizes");

struct kite_hot_key {
	uint64_t rate;     /**< reads per second, estimated */
	uint64_t err;      /**< of which possibly others' (Space-Saving's bound) */
	uint16_t keylen;   /**< the key's full length */
	uint8_t key[KITE_HOT_KEYLEN]; /**< its first bytes */
};

/** What a worker publishes once a second (read with kite_hot_read()). */
struct kite_hot_pub {
	volatile uint32_t seq; /**< odd while being written */
	uint32_t n;            /**< keys in top[], by rate, highest first */
	uint32_t hot;          /**< of them, at or above the hot rate */
	uint32_t when;         /**< unix seconds of the snapshot */
	struct kite_hot_key top[KITE_HOT_TOP];
};

/* A counter's key, kept apart: only a replacement and the tick touch it. */
struct kite_hot_name {
	uint16_t keylen;
	uint8_t key[KITE_HOT_KEYLEN];
};

struct kite_hot {
	uint32_t tick;       /**< reads seen, for sampling */
	uint32_t rate;       /**< reads per second that make a key hot (0: never) */
	uint32_t since;      /**< unix second the counts started accumulating in */
	uint32_t n;          /**< counters in use */
	uint64_t set[KITE_HOT_SET]; /**< hashes of hot keys, 0 empty (a key hashing to 0: never) */
	uint32_t nhot;       /**< keys in set[] */
	/* The counters as parallel arrays: a sampled read never touches the names. */
	uint64_t hash[KITE_HOT_K];
	uint32_t count[KITE_HOT_K];
	uint32_t err[KITE_HOT_K];
	uint8_t idx[KITE_HOT_SET];  /**< counter + 1 by its hash's slot (0: empty) */
	uint8_t heap[KITE_HOT_K];   /**< counters, a min-heap by count */
	uint8_t pos[KITE_HOT_K];    /**< each counter's place in heap[] */
	struct kite_hot_name name[KITE_HOT_K];
	struct kite_hot_pub *pub; /**< where snapshots go (the caller's memory) */
};

/** Start empty; keys at or above rate reads/s are hot. pub may be NULL. */
void kite_hot_init(struct kite_hot *h, uint32_t rate, struct kite_hot_pub *pub, uint32_t now);

/** Count one sampled read (kite_hot_seen() calls it one time in KITE_HOT_SAMPLE). */
void kite_hot_count(struct kite_hot *h, uint64_t hash, const uint8_t *key, uint16_t keylen);

/** A read of key (hash: any fixed 64-bit hash of it). */
static inline void
kite_hot_seen(struct kite_hot *h, uint64_t hash, const uint8_t *key, uint16_t keylen)
{
	if ((++h->tick & (KITE_HOT_SAMPLE - 1)) == 0)
		kite_hot_count(h, hash, key, keylen);
}

/** Whether the key was hot in the last full second. */
static inline bool
kite_hot_is_hot(const struct kite_hot *h, uint64_t hash)
{
	if (h->nhot == 0)
		return false;
	for (unsigned int i = 0, s = (unsigned int)hash & (KITE_HOT_SET - 1); i < KITE_HOT_SET;
	     i++, s = (s + 1) & (KITE_HOT_SET - 1)) {
		if (h->set[s] == hash)
			return true;
		if (h->set[s] == 0)
			return false;
	}
	return false;
}

/** Once a second or more (now: unix seconds): rates, the snapshot, the hot set, decay. */
void kite_hot_tick(struct kite_hot *h, uint32_t now);

/**
 * Copy a snapshot from another thread (retries while the worker writes).
 * @return the keys copied.
 */
unsigned int kite_hot_read(const struct kite_hot_pub *p, struct kite_hot_pub *out);

#endif /* KITE_HOT_H */
