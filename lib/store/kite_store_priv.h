/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_STORE_PRIV_H
#define KITE_STORE_PRIV_H

/*
 * Internals of one partition, shared by kite_store.c and the white-box unit
 * tests only. Nothing outside lib/store and tests/unit includes this.
 */

#include <stdint.h>

#include <sodium.h>

#include <rte_common.h>

#include "kite_store.h"

/* iflags bits of an item header. */
#define ITEM_LIVE    0x01 /* linked in the index; everything else is garbage */
#define ITEM_REF     0x02 /* CLOCK bit: read since the hand last passed */
#define ITEM_FETCHED KITE_STORE_MARK_FETCHED /* read at least once (memcached's *_unfetched, mg h) */
#define ITEM_FILLER  0x08 /* pads the log to the region's end; only total is valid */
#define ITEM_STALE   KITE_STORE_MARK_STALE /* marked stale: still served, flagged */
#define ITEM_WIN     KITE_STORE_MARK_WIN   /* its win token is out */

/*
 * Log record. Records are 8-byte aligned and never straddle the region's
 * end, so a header can always be read in place. A filler record only has
 * its first 8 bytes written (total, keylen, iflags), which is why it may
 * be as short as 8 bytes.
 */
struct item {
	uint32_t total;	  /* 0: bytes in the log, header and padding included */
	uint16_t keylen;  /* 4 */
	uint8_t iflags;	  /* 6: ITEM_* */
	uint8_t tenant;	  /* 7: the writer's tenant tag (its id, 1..255), 0: none */
	uint32_t vallen;  /* 8: the value length cannot be recovered from total */
	uint32_t flags;	  /* 12: client flags, opaque */
	uint32_t exptime; /* 16: absolute unix seconds, 0: never */
	uint32_t epoch;	  /* 20: the partition's flush epoch when stored; another: flushed */
	uint64_t cas;	  /* 24: (sequence << 16) | partition id, or one given (set_cas) */
	uint64_t hash;	  /* 32: index key; needed to unlink from the tail */
	uint8_t data[];	  /* 40: key, then value */
};

_Static_assert(sizeof(struct item) == 40, "item header is 40 bytes");
_Static_assert(sizeof(struct item) % 8 == 0, "item header keeps 8-byte alignment");

#define ITEM_ALIGN 8

struct kite_store {
	/* Read on every operation. */
	struct rte_hash *index;
	uint8_t *log;  /* the item region, mem_bytes long */
	uint64_t size; /* usable bytes: mem_bytes rounded down to ITEM_ALIGN */
	/*
	 * head and tail count bytes ever appended and released; they never
	 * wrap, so head - tail is the log's length. The offsets are the same
	 * positions inside the region, kept alongside to avoid a division.
	 */
	uint64_t head;
	uint64_t tail;
	uint64_t head_off;
	uint64_t tail_off;
	uint64_t cas_seq; /* last CAS sequence handed out or given */
	uint32_t epoch; /* flush epoch: a flush starts the next, items of older ones are flushed */
	uint32_t now;
	uint32_t flush_time; /* pending delayed flush (absolute), 0: none */
	uint32_t max_item_size;
	uint16_t id;
	bool no_prefetch;
	uint8_t seed[crypto_shorthash_siphash24_KEYBYTES];
	uint64_t sip_iv[4]; /* SipHash's v0..v3 after the seed: computed once, not per key */

	struct kite_store_stats st;
	/*
	 * Tenants' memory shares: bytes of live items of this flush epoch per
	 * tag, and each tag's limit (0: none). Items of an older epoch were
	 * flushed: a flush zeroes the counts and they are not taken off again.
	 */
	uint64_t tenant_bytes[KITE_STORE_TENANT_TAGS];
	uint64_t tenant_cap[KITE_STORE_TENANT_TAGS];
};

/*
 * Walk the whole log and cross-check it against the index and the
 * counters: record sizes and alignment, head - tail, curr_items, bytes,
 * every live item found in the index at its own address, and the index
 * holding nothing else. O(log size); for tests.
 * @return 0, or a negative line number identifying the broken invariant.
 */
int kite_store__check(const struct kite_store *s);

/* Bytes the log occupies now (head - tail), fillers and garbage included. */
uint64_t kite_store__log_used(const struct kite_store *s);

/* Footprint in the log of an item with these lengths. */
static inline uint64_t
kite_store__item_size(uint16_t keylen, uint32_t vallen)
{
	return RTE_ALIGN_CEIL((uint64_t)sizeof(struct item) + keylen + vallen, ITEM_ALIGN);
}

/* SipHash with c compression and d finalisation rounds (tests compare 2-4 with libsodium). */
uint64_t kite_store__siphash(const uint8_t seed[16], const void *key, size_t len, int c, int d);

#endif /* KITE_STORE_PRIV_H */
