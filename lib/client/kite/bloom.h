/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_BLOOM_H
#define KITE_BLOOM_H

/**
 * @file
 * libkite's Bloom filter (docs/libkite.rst, "Bloom filter"): a set of keys
 * that answers "certainly absent" or "maybe present", for the cache
 * patterns' defence against penetration (kite/cache.h): a key that cannot
 * exist is refused before it reaches the source of truth.
 *
 * Sizing, for n = capacity keys at a false-positive rate p:
 * m = ceil(n * -ln(p) / ln(2)^2) bits, rounded up to a multiple of 64, and
 * k = round(-log2(p)) hashes (at least 1, at most KITE_BLOOM_MAX_K). The
 * bit array is one allocation of m / 8 bytes, at most KITE_BLOOM_MAX_BYTES.
 * A key's k bits come from one XXH3_128bits of the key under the filter's
 * seed, split into two 64-bit hashes and combined by double hashing
 * (Kirsch and Mitzenmacher). The seed is drawn at random when the filter is
 * created, so that nobody can compute in advance which absent keys it lets
 * through, and travels with kite_bloom_save().
 *
 * Thread safety: kite_bloom_add(), kite_bloom_maybe(), kite_bloom_count(),
 * kite_bloom_fp_estimate(), kite_bloom_bytes() and kite_bloom_save() may run
 * at the same time from any number of threads on one filter: bits are set
 * with atomic OR and read with atomic loads. An add that returned before a
 * maybe began (in the sense of the application's own synchronisation, e.g.
 * a mutex or a release/acquire pair) is always seen by it; an add that runs
 * during the maybe may or may not be. kite_bloom_clear() and
 * kite_bloom_free() must not run at the same time as any other call on the
 * same filter: the application stops the others first.
 */

#include <stddef.h>
#include <stdint.h>

#include "kite/kite.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The largest bit array kite_bloom_create() and kite_bloom_load() accept: 1 GiB (2^33 bits). */
#define KITE_BLOOM_MAX_BYTES (1ULL << 30)

/** The most hashes per key; it bounds fp_rate from below at about 2^-64 (5e-20). */
#define KITE_BLOOM_MAX_K 64

/** The largest capacity kite_bloom_create() accepts (2^32 keys). */
#define KITE_BLOOM_MAX_CAPACITY (1ULL << 32)

/** kite_bloom_save()'s header size in bytes; the bit array follows it. */
#define KITE_BLOOM_HEADER_LEN 40

struct kite_bloom;

/**
 * Create an empty filter sized for `capacity` keys (1..KITE_BLOOM_MAX_CAPACITY)
 * at false-positive rate `fp_rate` (0 < fp_rate < 1), with a random seed.
 *
 * @return KITE_OK (*out set), KITE_BAD_ARGUMENT (out NULL, capacity or
 * fp_rate out of range, more than KITE_BLOOM_MAX_BYTES of bits, or more
 * than KITE_BLOOM_MAX_K hashes) or KITE_NO_MEMORY. *out is NULL on failure.
 */
int kite_bloom_create(struct kite_bloom **out, uint64_t capacity, double fp_rate);

/** Free a filter (NULL: nothing). Not concurrently with any other call on it. */
void kite_bloom_free(struct kite_bloom *b);

/**
 * Add a key (keylen bytes; key may be NULL only when keylen is 0). Safe
 * concurrently with add, maybe and the readers (see the file comment).
 */
void kite_bloom_add(struct kite_bloom *b, const void *key, size_t keylen);

/**
 * @return 1 if the key may have been added (or is a false positive), 0 if
 * it certainly was not added since the filter was created, cleared or
 * loaded. Safe concurrently with add.
 */
int kite_bloom_maybe(const struct kite_bloom *b, const void *key, size_t keylen);

/** Forget every key (bits and count to 0). Not concurrently with any other call. */
void kite_bloom_clear(struct kite_bloom *b);

/**
 * The number of distinct keys added, as far as the filter can tell: an add
 * counts when it set at least one bit that was 0, so adding a key again
 * does not count, and neither does a new key whose bits were all set
 * already (a false positive; about fp_estimate() of the adds near
 * capacity). Compare it with the capacity to know when to build a larger
 * filter. Read without a lock: during concurrent adds it may lag them.
 */
uint64_t kite_bloom_count(const struct kite_bloom *b);

/**
 * The false-positive probability now, (bits set / m)^k, from a count of the
 * bits set: it reads the whole bit array (m / 64 words), so call it for
 * monitoring, not per key. 0 for an empty filter.
 */
double kite_bloom_fp_estimate(const struct kite_bloom *b);

/** The size of the bit array in bytes (m / 8); the handle adds about 128 bytes. */
size_t kite_bloom_bytes(const struct kite_bloom *b);

/**
 * Serialise a filter: *buf is malloc'd (free() it), *len is
 * KITE_BLOOM_HEADER_LEN + m / 8. The format (docs/libkite.rst) is a
 * big-endian header (magic "KBLM", version 1, k, m, seed, count, a
 * checksum) and the bit array as big-endian 64-bit words. Safe
 * concurrently with add: the copy holds at least every add that returned
 * before the call.
 *
 * @return KITE_OK, KITE_BAD_ARGUMENT (a NULL argument) or KITE_NO_MEMORY.
 */
int kite_bloom_save(const struct kite_bloom *b, void **buf, size_t *len);

/**
 * Rebuild a filter from kite_bloom_save()'s output, on any machine: it
 * answers exactly as the saved one did. Every field is checked (magic,
 * version, k in 1..KITE_BLOOM_MAX_K, m a non-zero multiple of 64 of at most
 * KITE_BLOOM_MAX_BYTES, len exactly KITE_BLOOM_HEADER_LEN + m / 8, the
 * checksum) before anything is allocated, and count (no more than the bits
 * set) after; nothing of an invalid buffer is kept.
 *
 * @return KITE_OK (*out set), KITE_BAD_ARGUMENT (a NULL argument or a
 * buffer that is not a valid filter) or KITE_NO_MEMORY. *out is NULL on
 * failure.
 */
int kite_bloom_load(struct kite_bloom **out, const void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* KITE_BLOOM_H */
