/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_CACHE_H
#define KITE_CACHE_H

/**
 * @file
 * libkite's cache patterns (docs/patterns.rst): a cache in front of a
 * source of truth (a database) that loads what is missing without
 * melting the source. Built on the client of kite/kite.h and Kite's meta
 * commands (the server's win and stale tokens).
 *
 * - cache-aside: kite_cache_get() with a loader; read-through: a loader
 *   registered per key prefix, kite_cache_read();
 * - write-through: kite_cache_write() writes the source, then marks the
 *   cached item stale (never a set: see docs/patterns.rst for the race);
 *   write-behind: kite_cache_write_behind() sets the cache now and the
 *   source later, from a writer thread (bounded queue, coalesced per key);
 * - stampede: one load per key per process (single-flight), one per key
 *   across processes (the server's win token: meta N, W, Z; stale items
 *   served while one client reloads: md I, X), TTL jitter, early recache
 *   (meta R);
 * - penetration: "does not exist" cached with its own TTL, an optional
 *   Bloom filter of the keys that exist (kite/bloom.h), a key validation
 *   hook;
 * - hot keys: an optional in-process L1 for keys the node flags hot (or
 *   every key), its staleness bounded by l1_ttl_ms and by the item's TTL;
 * - a slow or dead cache: a circuit breaker per node; while open the
 *   loader is called directly, at most fallback_rate times per second.
 *
 * A struct kite_cache is shared by every thread of a process: each
 * thread gets its own kite_client on first use. After fork() the child
 * opens new clients and starts with an empty L1 and no loads in flight.
 */

#include <stddef.h>
#include <stdint.h>

#include "kite/bloom.h"
#include "kite/kite.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What a loader found (or the cache returns). */
struct kite_value {
	void *data;     /**< malloc'd (the receiver frees it with free()); NULL when len is 0 */
	size_t len;
	uint32_t flags; /**< the application's flags, bits 0..29 (30 and 31 are the cache's) */
	uint32_t ttl_s; /**< a loader may set it (0: the cache's ttl_s) */
};

/**
 * Load a key from the source of truth. Return KITE_OK with *out filled,
 * KITE_NOT_FOUND when the key does not exist (cached as such for
 * negative_ttl_s), or another rc for a failure (nothing is cached, the
 * caller gets that rc). Called by one thread per key at a time.
 */
typedef int (*kite_loader_fn)(void *arg, const void *key, size_t keylen, struct kite_value *out);

/** Write a key to the source of truth (value NULL: delete it). KITE_OK or an error rc. */
typedef int (*kite_writer_fn)(void *arg, const void *key, size_t keylen, const void *value,
			      size_t len, uint32_t flags);

/** kite_cache_options fields that are 0 by default but may be turned off explicitly. */
#define KITE_CACHE_OFF 0xffffffffu

/** Options; zero fields take the defaults shown. */
struct kite_cache_options {
	struct kite_options client;  /**< how to reach the cache (copied, secrets included) */
	uint32_t ttl_s;              /**< TTL of what a loader returns (300) */
	uint32_t jitter_pct;         /**< TTLs spread by up to +- this percent (10; KITE_CACHE_OFF: none) */
	uint32_t negative_ttl_s;     /**< TTL of "does not exist" (60; KITE_CACHE_OFF: not cached) */
	uint32_t lease_s;            /**< how long a win token holds (meta N's TTL; 10) */
	uint32_t wait_ms;            /**< how long a client that did not win waits for the winner (2000) */
	uint32_t poll_ms;            /**< between looks while it waits (5) */
	uint32_t early_s;            /**< recache this long before expiry (meta R; 0: off) */
	uint32_t no_stale;           /**< 1: never return a stale value (wait for the reload instead) */
	uint32_t l1_entries;         /**< in-process L1 of hot keys: entries (0: off) */
	uint32_t l1_ttl_ms;          /**< an L1 entry's staleness bound (1000) */
	uint32_t l1_all;             /**< 1: every key goes to the L1, not only those the node flags hot */
	unsigned int breaker_failures; /**< consecutive timeouts of a node that open its breaker (5) */
	unsigned int breaker_open_ms;  /**< how long it stays open before a probe (1000) */
	double fallback_rate;        /**< loader calls per second while a breaker is open (100) */
	double fallback_burst;       /**< ... and their burst (10) */
	/**
	 * Probabilistic early refresh (XFetch: Vattani et al., "Optimal
	 * Probabilistic Cache Stampede Prevention"): a hit with t seconds
	 * left reloads when t <= delta * early_beta * -ln(U), delta this
	 * process's mean load time, U uniform in (0, 1]; it stores with the
	 * item's CAS, so only the first refresh lands. 0: off; 1 is XFetch's
	 * usual beta, more refreshes earlier.
	 */
	double early_beta;
	struct kite_bloom *bloom;    /**< the keys that exist; NULL: no filter (not owned) */
	/** Key validation: return 0 to refuse a key (KITE_BAD_ARGUMENT, the source is not asked). */
	int (*validate)(void *arg, const void *key, size_t keylen);
	void *validate_arg;
	/**
	 * Write-behind (kite_cache_write_behind()): the writer that a
	 * thread of the cache calls for queued writes, at most wb_queue of
	 * them (1024), each within wb_delay_ms (100) of its first queuing;
	 * writes to one key coalesce (the last one is written). NULL: no
	 * write-behind.
	 */
	kite_writer_fn wb_writer;
	void *wb_arg;
	uint32_t wb_queue;
	uint32_t wb_delay_ms;
	/** The clock (milliseconds, monotonic); NULL: CLOCK_MONOTONIC. Tests pass a fake one. */
	uint64_t (*clock_ms)(void *arg);
	void *clock_arg;
};

struct kite_cache;

/** Open a cache. KITE_OK, KITE_BAD_ARGUMENT or KITE_NO_MEMORY; the first client opens on first use. */
int kite_cache_open(struct kite_cache **out, const struct kite_cache_options *o);
void kite_cache_close(struct kite_cache *c);

/**
 * Cache-aside: the key's value from the cache, or from `load` (once per
 * key across threads and, through the node's win token, across
 * processes), stored with ttl_s +- jitter. KITE_OK (*out filled: free
 * out->data), KITE_NOT_FOUND (the source says it does not exist, maybe
 * from the negative cache or the Bloom filter), KITE_BAD_ARGUMENT (a key
 * the hook refused), KITE_RATE_LIMITED (the cache is down and the
 * fallback rate is used up), or the loader's error.
 */
int kite_cache_get(struct kite_cache *c, const void *key, size_t keylen, kite_loader_fn load,
		   void *arg, struct kite_value *out);

/** Read-through: `load` serves the keys that start with `prefix` (the longest prefix wins). */
int kite_cache_register(struct kite_cache *c, const char *prefix, kite_loader_fn load, void *arg);

/** Read-through: kite_cache_get() with the loader registered for the key (KITE_BAD_ARGUMENT: none). */
int kite_cache_read(struct kite_cache *c, const void *key, size_t keylen, struct kite_value *out);

/**
 * Write-through: `write` the source first, then mark the cached item
 * stale (meta md I), so the next reader reloads it and a load that began
 * before the write cannot store the old value as fresh. value NULL
 * deletes. The writer's rc, or the invalidation's when the writer succeeded.
 */
int kite_cache_write(struct kite_cache *c, const void *key, size_t keylen, const void *value,
		     size_t len, uint32_t flags, kite_writer_fn write, void *arg);

/**
 * Write-behind: the cache holds the new value now (value NULL: the key is
 * deleted) and the source gets it later, from the cache's writer thread,
 * within wb_delay_ms; writes to one key queued meanwhile coalesce.
 * KITE_OK, KITE_BAD_ARGUMENT (no wb_writer), KITE_RATE_LIMITED (the
 * queue is full: nothing was written, counted in wb_dropped), or the
 * cache's error (nothing queued). Loss window (docs/patterns.rst): what
 * is queued when the process dies is lost; kite_cache_flush() and
 * kite_cache_close() write it first.
 */
int kite_cache_write_behind(struct kite_cache *c, const void *key, size_t keylen,
			    const void *value, size_t len, uint32_t flags);

/** Write every queued write-behind now; returns when the queue is empty (KITE_OK) or failed. */
int kite_cache_flush(struct kite_cache *c);

/** Mark a key stale in the cache (and drop it from this process's L1): event-based invalidation. */
int kite_cache_invalidate(struct kite_cache *c, const void *key, size_t keylen);

/** What the cache did, since it was opened. */
struct kite_cache_stats {
	uint64_t gets;             /**< kite_cache_get/read calls */
	uint64_t hits;             /**< answered from the cache (L1 included) */
	uint64_t misses;           /**< this process won the key's load */
	uint64_t loads;            /**< loader calls (fallback ones too) */
	uint64_t load_errors;      /**< ... that failed */
	uint64_t coalesced;        /**< waited for a load of this process (single-flight) */
	uint64_t token_waits;      /**< waited because another client held the win token (Z) */
	uint64_t wait_timeouts;    /**< ... until wait_ms, then loaded without storing */
	uint64_t stale_served;     /**< stale values returned while another client reloads */
	uint64_t negative_hits;    /**< "does not exist" from the cache */
	uint64_t negative_stores;  /**< ... stored */
	uint64_t bloom_rejections; /**< keys the Bloom filter said cannot exist */
	uint64_t invalid_keys;     /**< keys the validation hook refused */
	uint64_t l1_hits;
	uint64_t l1_entries;       /**< now */
	uint64_t early_refreshes;  /**< wins ahead of expiry (meta R) */
	uint64_t cache_errors;     /**< cache requests that failed (timeouts, ...) */
	uint64_t breaker_opens;
	uint64_t breakers_open;    /**< nodes whose breaker is open now */
	uint64_t fallback_loads;   /**< loads straight from the source, the cache being down */
	uint64_t fallback_refused; /**< ... refused by the fallback rate (KITE_RATE_LIMITED) */
	uint64_t writes;           /**< write-through calls */
	uint64_t invalidations;    /**< md I sent (writes and kite_cache_invalidate) */
	uint64_t wb_queued;        /**< write-behind calls queued */
	uint64_t wb_coalesced;     /**< ... that replaced a queued write of the same key */
	uint64_t wb_written;       /**< writer calls that succeeded */
	uint64_t wb_retries;       /**< writer calls that failed and were tried again */
	uint64_t wb_failed;        /**< writes given up after 3 failures */
	uint64_t wb_dropped;       /**< write-behind calls refused: the queue was full */
	uint64_t wb_depth;         /**< writes queued now */
};

void kite_cache_stats(struct kite_cache *c, struct kite_cache_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* KITE_CACHE_H */
