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
 * The store knows no protocol: it returns its own results (enum
 * kite_store_result) and takes absolute expiry times (unix seconds, 0:
 * never); the engine converts memcached's relative/absolute exptime and
 * maps results to wire statuses. An item's CAS is a version number (the
 * partition's next, or one given by the caller); FLUSH does not depend on
 * it (items carry the flush epoch they were stored in).
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
	uint32_t max_item_size;  /**< longest value accepted (TOO_LARGE beyond) */
	uint16_t id;             /**< partition number; low 16 bits of the CAS values it makes */
	const uint8_t *seed;     /**< 16-byte SipHash key; NULL: random */
	bool no_prefetch;        /**< skip the item prefetch of bulk lookups (benchmarks only) */
	/**
	 * The CAS sequence to count up from (the upper 48 bits of the first
	 * CAS is cas_seed + 1). kited seeds it from the clock so a restarted
	 * node never hands out a CAS it handed out before (docs/protocol.rst).
	 */
	uint64_t cas_seed;
};

/**
 * The partition's counters, in memcached's names where memcached has one:
 * X(field, name, help). The owner writes them; kite_store_stats_get()
 * copies them; kite_store_stats_names[] / _help[] name each.
 */
#define KITE_STORE_STATS(X)                                                                        \
	X(curr_items, "curr_items", "items stored now")                                          \
	X(total_items, "total_items", "items stored since start")                                \
	X(bytes, "bytes", "bytes of live items, headers included")                               \
	X(limit_maxbytes, "limit_maxbytes", "item memory of the partition")                      \
	X(get_hits, "get_hits", "lookups that found the key")                                    \
	X(get_misses, "get_misses", "lookups that did not")                                      \
	X(get_expired, "get_expired", "lookups that found the key expired")                      \
	X(get_flushed, "get_flushed", "lookups that found the key flushed")                      \
	X(touch_hits, "touch_hits", "expiry changes of a present key")                           \
	X(touch_misses, "touch_misses", "expiry changes of a missing key")                       \
	X(delete_hits, "delete_hits", "deletions of a present key")                              \
	X(delete_misses, "delete_misses", "deletions of a missing key")                          \
	X(incr_hits, "incr_hits", "increments of a present key")                                 \
	X(incr_misses, "incr_misses", "increments of a missing key, not created")                \
	X(decr_hits, "decr_hits", "decrements of a present key")                                 \
	X(decr_misses, "decr_misses", "decrements of a missing key, not created")                \
	X(cas_hits, "cas_hits", "compare-and-swap stores that matched")                          \
	X(cas_misses, "cas_misses", "compare-and-swap stores of a missing key")                  \
	X(cas_badval, "cas_badval", "compare-and-swap stores that did not match")                \
	X(evictions, "evictions", "live items dropped for space")                                \
	X(reclaimed, "reclaimed", "expired or flushed items freed by the CLOCK hand")            \
	X(expired_unfetched, "expired_unfetched", "items that expired never read")               \
	X(evicted_unfetched, "evicted_unfetched", "items evicted never read")                    \
	X(reinserted, "reinserted", "referenced items given a second chance by the hand")        \
	X(index_full, "index_full", "evictions forced by a full index")                          \
	X(store_too_large, "store_too_large", "stores refused: value too large")                 \
	X(store_no_memory, "store_no_memory", "stores refused: no room after evicting")          \
	X(appends_in_place, "appends_in_place", "APPENDs/PREPENDs that grew the item where it is (no copy in the log)") \
	X(over_share, "store_over_share", "stores refused: the writing tenant's memory share of the partition is full")

/** The partition's counters (KITE_STORE_STATS). */
struct kite_store_stats {
#define KITE_STORE_STATS_FIELD(field, name, help) uint64_t field;
	KITE_STORE_STATS(KITE_STORE_STATS_FIELD)
#undef KITE_STORE_STATS_FIELD
};

/** Counters in struct kite_store_stats. */
#define KITE_STORE_STATS_N (sizeof(struct kite_store_stats) / sizeof(uint64_t))

/** Name and help of each counter, in struct order. */
extern const char *const kite_store_stats_names[];
extern const char *const kite_store_stats_help[];

/**
 * What an operation did. The store has its own statuses; the engine maps
 * them to a protocol's (memcached binary, text, meta).
 */
enum kite_store_result {
	KITE_STORE_OK = 0,      /**< done; a lookup found the key */
	KITE_STORE_NOT_FOUND,   /**< no such key (missing, expired or flushed) */
	KITE_STORE_EXISTS,      /**< ADD of a present key, CAS mismatch, win token already out */
	KITE_STORE_NOT_STORED,  /**< APPEND/PREPEND of a missing key, or a sum too large */
	KITE_STORE_TOO_LARGE,   /**< value longer than max_item_size */
	KITE_STORE_NO_MEMORY,   /**< no room even after evicting */
	KITE_STORE_NON_NUMERIC, /**< INCR/DECR of a value that is not a decimal number */
	KITE_STORE_INVALID,     /**< bad argument (an unknown store mode) */
	KITE_STORE_RESULT_MAX,
};

/** Name of a result ("ok", "not_found", ...), "unknown" out of range. */
const char *kite_store_result_name(enum kite_store_result r);

/** kite_store_view.marks: marked stale (kite_store_mark_stale), to serve but recompute. */
#define KITE_STORE_MARK_STALE 0x10
/** kite_store_view.marks: the item's win token is out (kite_store_claim_win). */
#define KITE_STORE_MARK_WIN 0x20
/**
 * kite_store_view.marks of a lookup (kite_store_get, _get_bulk, _peek):
 * the item had been read before this lookup (memcached's fetched bit,
 * meta mg's h).
 */
#define KITE_STORE_MARK_FETCHED 0x04

/** A found item. Valid until the next mutating call on the same store. */
struct kite_store_view {
	const uint8_t *value;
	uint32_t vallen;
	uint32_t flags;
	uint64_t cas;
	uint32_t exptime; /**< absolute unix seconds, 0: never */
	uint8_t marks;    /**< KITE_STORE_MARK_* */
};

/** Store modes of kite_store_store(). */
enum kite_store_mode {
	KITE_STORE_SET = 0,
	KITE_STORE_ADD,
	KITE_STORE_REPLACE,
	KITE_STORE_APPEND,
	KITE_STORE_PREPEND,
	KITE_STORE_MODE_MAX,
};

/** A write: what kite_store_store() stores and how. */
struct kite_store_write {
	enum kite_store_mode mode;
	uint32_t flags;     /**< client flags (APPEND/PREPEND keep the item's) */
	uint32_t exptime;   /**< absolute unix seconds, 0: never (APPEND/PREPEND keep the item's) */
	const void *value;
	uint32_t vallen;
	uint64_t cas;       /**< non-zero: store only if the item's CAS is this one */
	/**
	 * Non-zero: the item's new CAS (a replica keeps its owner's); later
	 * CAS values of this partition are larger. 0: the next of the partition.
	 */
	uint64_t set_cas;
	/** The writer's tenant tag (1..255; its tenant id), 0: none. Its share is enforced. */
	uint8_t tenant;
	/**
	 * The meta protocol's ms I (SET and REPLACE with a cas): a cas older
	 * than the item's is stored anyway, marked stale, keeping the item's
	 * expiry and win token (a late writer never looks fresh).
	 */
	bool invalidate;
};

/** An INCR/DECR: what kite_store_delta() does. */
struct kite_store_arith {
	bool incr;        /**< INCR (64-bit wrap) or DECR (floor 0) */
	bool create;      /**< a missing key is created holding `initial` */
	uint64_t delta;
	uint64_t initial;
	uint32_t exptime; /**< absolute expiry of a created item, 0: never */
	uint64_t cas;     /**< non-zero: only if the item's CAS is this one */
	uint8_t tenant;   /**< tag of a created item (kite_store_write.tenant) */
};

struct kite_store;

/** Create a partition. @return NULL with rte_errno set on failure. */
struct kite_store *kite_store_create(const struct kite_store_params *p);

/**
 * DPDK memory a partition created with *p takes: its item log, its index
 * (about 32 bytes an index slot: a quarter of the log by default) and its
 * header. For sizing -m and
 * hugepages before anything is allocated.
 */
uint64_t kite_store_footprint(const struct kite_store_params *p);

/** Free a partition and all its memory. NULL is a no-op. */
void kite_store_free(struct kite_store *s);

/**
 * Set the partition's clock (unix seconds). Called once per poll loop by
 * the owner; all expiry decisions use this value.
 */
void kite_store_set_time(struct kite_store *s, uint32_t now);

/** The index hash of a key (SipHash-1-3 under the partition seed). */
uint64_t kite_store_hash(const struct kite_store *s, const void *key, uint16_t keylen);

/**
 * Look up a key. On a hit sets the CLOCK bit and the fetched bit and fills
 * *v (its marks: KITE_STORE_MARK_FETCHED as it was before).
 * @return OK or NOT_FOUND (missing, expired, flushed).
 */
enum kite_store_result kite_store_get(struct kite_store *s, const void *key, uint16_t keylen,
				      uint64_t hash, struct kite_store_view *v);

/**
 * kite_store_get() that leaves the item as it was: neither referenced for
 * CLOCK nor fetched (meta mg's u, "do not bump the item"). Counted as a
 * hit or a miss all the same.
 */
enum kite_store_result kite_store_peek(struct kite_store *s, const void *key, uint16_t keylen,
				       uint64_t hash, struct kite_store_view *v);

/**
 * Bring the index entries and the items of these keys into the cache
 * before a run of writes reaches them: one rte_hash bulk lookup per 64,
 * whose bucket and key-slot misses overlap, then a prefetch of each item's
 * header and key. Nothing changes and nothing is counted; a write then
 * finds its key in cached lines instead of taking three dependent misses.
 * A no-op when the store was created with no_prefetch.
 */
void kite_store_prefetch_bulk(const struct kite_store *s, const uint64_t *hashes,
			      const uint16_t *keylens, unsigned int n);

/**
 * Bulk form of kite_store_get() for any number of keys, one rte_hash bulk
 * lookup per 64. results[i] receives the result (enum kite_store_result)
 * for keys[i]; views[i] is filled on a hit.
 */
void kite_store_get_bulk(struct kite_store *s, const uint8_t *const *keys,
			 const uint16_t *keylens, const uint64_t *hashes, unsigned int n,
			 struct kite_store_view *views, uint8_t *results);

/**
 * Get and set the expiry (TOUCH/GAT): exptime absolute, 0 never. fetch:
 * the item is read, hence referenced and fetched (false: meta's T on an
 * mg with u or on an ma, which leave it as it was).
 * @return OK or NOT_FOUND.
 */
enum kite_store_result kite_store_touch(struct kite_store *s, const void *key, uint16_t keylen,
					uint64_t hash, uint32_t exptime, bool fetch,
					struct kite_store_view *v);

/**
 * SET/ADD/REPLACE/APPEND/PREPEND with memcached's semantics, a non-zero
 * w->cas meaning compare-and-swap. APPEND/PREPEND keep the item's flags
 * and expiry. A new item has its stale and win bits clear. A SET that
 * cannot be stored removes the old value (a client never reads what it
 * tried to overwrite).
 * @return OK (the item's CAS in *cas_out), EXISTS, NOT_FOUND, NOT_STORED,
 *         TOO_LARGE, NO_MEMORY or INVALID.
 */
enum kite_store_result kite_store_store(struct kite_store *s, const void *key, uint16_t keylen,
					uint64_t hash, const struct kite_store_write *w,
					uint64_t *cas_out);

/**
 * Remove the key's item if its CAS is at most cas_max (an item from before
 * a point in the partition's history, kite_store_cas_mark()).
 * @return true if an item was removed (not counted as a DELETE).
 */
bool kite_store_drop_older(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
			   uint64_t cas_max);

/**
 * A mark of the partition's history: every item stored so far has a CAS
 * at most this, every later one a larger CAS (0: nothing stored yet). May
 * be read from another thread than the owner's (one relaxed atomic load).
 */
uint64_t kite_store_cas_mark(const struct kite_store *s);

/** DELETE (cas non-zero: only that version). @return OK, NOT_FOUND or EXISTS. */
enum kite_store_result kite_store_delete(struct kite_store *s, const void *key, uint16_t keylen,
					 uint64_t hash, uint64_t cas);

/**
 * INCREMENT/DECREMENT as memcached: 64-bit wrap on incr, floor 0 on decr,
 * a missing key created with `initial` when a->create.
 * @return OK (*value_out, *cas_out), NOT_FOUND, EXISTS, NON_NUMERIC or
 *         NO_MEMORY.
 */
enum kite_store_result kite_store_delta(struct kite_store *s, const void *key, uint16_t keylen,
					uint64_t hash, const struct kite_store_arith *a,
					uint64_t *value_out, uint64_t *cas_out);

/**
 * Mark an item stale (the meta protocol's md I): it stays and is still
 * served, flagged stale, until it is stored again. It gets a new CAS (so a
 * writer holding the old one is told apart), its win token is handed back
 * (the next reader wins the recompute), and with exptime non-NULL a new
 * expiry (absolute, 0 never).
 * @return OK (*cas_out: the new CAS, if cas_out), NOT_FOUND or EXISTS
 * (cas given and different).
 */
enum kite_store_result kite_store_mark_stale(struct kite_store *s, const void *key,
					     uint16_t keylen, uint64_t hash, uint64_t cas,
					     const uint32_t *exptime, uint64_t *cas_out);

/**
 * Hand out an item's win token (the right to recompute it, the meta
 * protocol's W flag): the first caller since the item was stored wins.
 * *v is filled in both cases (its marks tell the state before this call).
 * fetch: the claim reads the item, which is then referenced and fetched
 * (false: meta mg's u, the item is not bumped).
 * @return OK (this caller wins), EXISTS (already out) or NOT_FOUND.
 */
enum kite_store_result kite_store_claim_win(struct kite_store *s, const void *key, uint16_t keylen,
					    uint64_t hash, bool fetch, struct kite_store_view *v);

/**
 * FLUSH: with `when` 0 or not after now, every current item becomes
 * invisible now; with a later absolute time, items stored before then
 * vanish at that time. A new flush replaces a pending one.
 */
void kite_store_flush(struct kite_store *s, uint32_t when);

/** Tenant tags a partition keeps memory shares for (tag 0: no tenant). */
#define KITE_STORE_TENANT_TAGS 256

/**
 * The memory share of tenant tag (1..255) in this partition: bytes of its
 * live items (headers included) it may hold; 0: no limit. A store that
 * would take it past the share is refused (KITE_STORE_NO_MEMORY, counted
 * as store_over_share) until its items are deleted, expire or are evicted.
 * The owner's thread only.
 */
void kite_store_set_share(struct kite_store *s, uint8_t tag, uint64_t bytes);

/** Bytes of live items tag holds in this partition (items flushed since are not counted). */
uint64_t kite_store_tenant_bytes(const struct kite_store *s, uint8_t tag);

/** One item, as iteration shows it; pointers valid during the callback only. */
struct kite_store_item {
	const uint8_t *key;
	uint16_t keylen;
	struct kite_store_view v;
};

/** Called for each live item; a non-zero return stops the walk after this item. */
typedef int (*kite_store_iter_fn)(void *arg, const struct kite_store_item *it);

/**
 * Where a walk over a partition's items stands (backfill of a replica).
 * Positions count log bytes and never go back.
 */
struct kite_store_cursor {
	uint64_t pos; /**< next record to visit */
	uint64_t end; /**< the walk is done at this position */
};

/** Start a walk over every item present now. */
void kite_store_iter_begin(const struct kite_store *s, struct kite_store_cursor *c);

/**
 * Visit up to max_records log records from the cursor, calling fn for each
 * live item (neither expired nor flushed); the caller filters (by vbucket,
 * say). Between calls the owner may serve requests: every item present at
 * kite_store_iter_begin() and still present at the end is visited at least
 * once; items stored after the start may or may not be, and an item the
 * CLOCK hand moves may be visited twice. When the hand overtakes the
 * cursor the walk resumes at the tail and runs on to the head of then, so
 * a walk ends only if it advances through the log faster than writes do:
 * the caller sizes max_records to its partition's write rate.
 * @return the items visited.
 */
unsigned int kite_store_iter_next(struct kite_store *s, struct kite_store_cursor *c,
				  unsigned int max_records, kite_store_iter_fn fn, void *arg);

/** Whether the walk has reached its end. */
static inline bool
kite_store_iter_done(const struct kite_store_cursor *c)
{
	return c->pos >= c->end;
}

/** The item log's memory (mem_bytes long), for NUMA placement checks. */
const void *kite_store_log_mem(const struct kite_store *s, size_t *len);

/** Copy the partition's counters. */
void kite_store_stats_get(const struct kite_store *s, struct kite_store_stats *st);

#endif /* KITE_STORE_H */
