/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libkite's Bloom filter (kite/bloom.h): one array of 64-bit words, k
 * probes per key by double hashing over one XXH3_128bits, bits set with
 * atomic OR so that adds and lookups from several threads need no lock.
 *
 * Invariants: m is a non-zero multiple of 64 and at most
 * KITE_BLOOM_MAX_BYTES * 8; 1 <= k <= KITE_BLOOM_MAX_K; bits only go from 0
 * to 1 between clears; every add that `count` counts set at least one bit
 * that no other add set, so count <= the number of bits set (save relies
 * on it to write a consistent snapshot, load checks it).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/random.h>

#include <xxhash.h>

#include "kite/bloom.h"

#define LN2	       0.69314718055994530942
#define MAX_BITS       (KITE_BLOOM_MAX_BYTES * 8)
#define FORMAT_VERSION 1

/*
 * kite_bloom_save()'s header, big-endian:
 *   0  4  magic "KBLM"
 *   4  2  version (1)
 *   6  2  k
 *   8  8  m, in bits
 *  16  8  seed
 *  24  8  count
 *  32  8  checksum: XXH3_64bits_withSeed(bits, m / 8, XXH3_64bits(bytes 0..31))
 *  40     the bit array, m / 64 words, each big-endian
 */
#define OFF_MAGIC    0
#define OFF_VERSION  4
#define OFF_K	     6
#define OFF_M	     8
#define OFF_SEED     16
#define OFF_COUNT    24
#define OFF_CHECKSUM 32
_Static_assert(OFF_CHECKSUM + 8 == KITE_BLOOM_HEADER_LEN, "header layout");

static const uint8_t magic[4] = { 'K', 'B', 'L', 'M' };

struct kite_bloom {
	/* Read by every add and maybe; written only by create, load and free. */
	uint64_t *words;
	uint64_t m; /* bits */
	uint64_t seed;
	unsigned int k;
	/*
	 * Written by adds that set a new bit: on a cache line of its own, so
	 * that counting does not evict the fields above from the caches of
	 * threads that only look keys up.
	 */
	_Alignas(64) uint64_t count;
};

static void
put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint16_t
get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/*
 * floor(h * m / 2^64): maps a 64-bit hash onto [0, m) without a division
 * (Lemire's multiply-shift), and without the bias of h % m.
 */
static inline uint64_t
reduce(uint64_t h, uint64_t m)
{
#ifdef __SIZEOF_INT128__
	return (uint64_t)(((unsigned __int128)h * m) >> 64);
#else
	uint64_t hl = h & 0xffffffffu, hh = h >> 32, ml = m & 0xffffffffu, mh = m >> 32;
	uint64_t mid1 = hh * ml, mid2 = hl * mh;
	uint64_t carry = ((hl * ml >> 32) + (mid1 & 0xffffffffu) + (mid2 & 0xffffffffu)) >> 32;

	return hh * mh + (mid1 >> 32) + (mid2 >> 32) + carry;
#endif
}

/*
 * Kirsch-Mitzenmacher double hashing: probe i is g_i = h1 + i * h2 (mod
 * 2^64), reduced onto [0, m). Two independent 64-bit halves of one 128-bit
 * hash give the k probes the false-positive rate of k independent hashes
 * for any m we allow; h2 is made odd so that the g_i are all distinct.
 */
struct probe {
	uint64_t g, step;
};

static inline struct probe
probe_start(const struct kite_bloom *b, const void *key, size_t keylen)
{
	XXH128_hash_t h = XXH3_128bits_withSeed(key, keylen, b->seed);

	return (struct probe){ h.low64, h.high64 | 1 };
}

static uint64_t
random_seed(const void *salt)
{
	uint64_t seed;
	struct timespec ts;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
		return seed;
	/*
	 * No entropy yet (early boot) or no getrandom(): the seed only has to
	 * be hard to guess from outside, not secret forever.
	 */
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t mix[4] = { (uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)getpid(),
			    (uint64_t)(uintptr_t)salt };
	return XXH3_64bits(mix, sizeof(mix));
}

/* A filter with every bit 0 (words zeroed lazily by the allocator). */
static int
alloc_filter(struct kite_bloom **out, uint64_t m, unsigned int k, uint64_t seed)
{
	struct kite_bloom *b = aligned_alloc(_Alignof(struct kite_bloom), sizeof(*b));

	if (b == NULL)
		return KITE_NO_MEMORY;
	memset(b, 0, sizeof(*b));
	b->words = calloc(m / 64, sizeof(uint64_t));
	if (b->words == NULL) {
		free(b);
		return KITE_NO_MEMORY;
	}
	b->m = m;
	b->k = k;
	b->seed = seed;
	*out = b;
	return KITE_OK;
}

/*
 * The optimum for n keys at rate p: m = n * -ln(p) / ln(2)^2 bits and
 * k = -log2(p) hashes. k is rounded from the exact optimum, not from m
 * after it is rounded up to whole words: for a handful of keys that
 * rounding would ask for dozens of hashes and gain nothing.
 */
static int
size_filter(uint64_t n, double p, uint64_t *m_out, unsigned int *k_out)
{
	double ln_p = log(p);
	double bits = (double)n * -ln_p / (LN2 * LN2);
	double k = -ln_p / LN2 + 0.5;

	if (!(bits <= (double)MAX_BITS) || !(k < KITE_BLOOM_MAX_K + 1.0))
		return KITE_BAD_ARGUMENT;
	uint64_t m = (uint64_t)bits;
	if ((double)m < bits)
		m++;
	m = (m + 63) & ~(uint64_t)63;
	if (m == 0)
		m = 64;
	if (m > MAX_BITS)
		return KITE_BAD_ARGUMENT;
	*m_out = m;
	*k_out = k < 1.0 ? 1 : (unsigned int)k;
	return KITE_OK;
}

int
kite_bloom_create(struct kite_bloom **out, uint64_t capacity, double fp_rate)
{
	uint64_t m;
	unsigned int k;
	int rc;

	if (out == NULL)
		return KITE_BAD_ARGUMENT;
	*out = NULL;
	/* Written so that NaN fails too. */
	if (capacity == 0 || capacity > KITE_BLOOM_MAX_CAPACITY ||
	    !(fp_rate > 0.0 && fp_rate < 1.0))
		return KITE_BAD_ARGUMENT;
	rc = size_filter(capacity, fp_rate, &m, &k);
	if (rc != KITE_OK)
		return rc;
	rc = alloc_filter(out, m, k, 0);
	if (rc != KITE_OK)
		return rc;
	(*out)->seed = random_seed(*out);
	return KITE_OK;
}

void
kite_bloom_free(struct kite_bloom *b)
{
	if (b == NULL)
		return;
	free(b->words);
	free(b);
}

void
kite_bloom_add(struct kite_bloom *b, const void *key, size_t keylen)
{
	struct probe p = probe_start(b, key, keylen);
	bool fresh = false;

	for (unsigned int i = 0; i < b->k; i++, p.g += p.step) {
		uint64_t bit = reduce(p.g, b->m);
		uint64_t *w = &b->words[bit / 64];
		uint64_t mask = 1ULL << (bit % 64);

		/*
		 * Look before writing: once a filter is warm most bits of a key
		 * are set, and an atomic OR would still take the cache line
		 * away from every thread that reads it.
		 */
		if (__atomic_load_n(w, __ATOMIC_RELAXED) & mask)
			continue;
		if (!(__atomic_fetch_or(w, mask, __ATOMIC_RELAXED) & mask))
			fresh = true;
	}
	/*
	 * Release: a save that reads this count (acquire) also sees the bit
	 * this add set, which keeps count <= bits set in its snapshot. The
	 * bits themselves need no ordering: a filter promises nothing about
	 * one key's bits relative to another's.
	 */
	if (fresh)
		__atomic_fetch_add(&b->count, 1, __ATOMIC_RELEASE);
}

int
kite_bloom_maybe(const struct kite_bloom *b, const void *key, size_t keylen)
{
	struct probe p = probe_start(b, key, keylen);

	for (unsigned int i = 0; i < b->k; i++, p.g += p.step) {
		uint64_t bit = reduce(p.g, b->m);

		if (!(__atomic_load_n(&b->words[bit / 64], __ATOMIC_RELAXED) &
		      (1ULL << (bit % 64))))
			return 0;
	}
	return 1;
}

void
kite_bloom_clear(struct kite_bloom *b)
{
	memset(b->words, 0, (size_t)(b->m / 8));
	b->count = 0;
}

uint64_t
kite_bloom_count(const struct kite_bloom *b)
{
	return __atomic_load_n(&b->count, __ATOMIC_RELAXED);
}

double
kite_bloom_fp_estimate(const struct kite_bloom *b)
{
	uint64_t set = 0;
	double frac, p = 1.0;

	for (uint64_t i = 0; i < b->m / 64; i++)
		set += (uint64_t)__builtin_popcountll(
			__atomic_load_n(&b->words[i], __ATOMIC_RELAXED));
	frac = (double)set / (double)b->m;
	for (unsigned int i = 0; i < b->k; i++)
		p *= frac;
	return p;
}

size_t
kite_bloom_bytes(const struct kite_bloom *b)
{
	return (size_t)(b->m / 8);
}

static uint64_t
checksum(const uint8_t *buf, uint64_t m)
{
	return XXH3_64bits_withSeed(buf + KITE_BLOOM_HEADER_LEN, (size_t)(m / 8),
				    XXH3_64bits(buf, OFF_CHECKSUM));
}

int
kite_bloom_save(const struct kite_bloom *b, void **buf, size_t *len)
{
	uint8_t *out;
	size_t n;

	if (buf != NULL)
		*buf = NULL;
	if (len != NULL)
		*len = 0;
	if (b == NULL || buf == NULL || len == NULL)
		return KITE_BAD_ARGUMENT;
	n = KITE_BLOOM_HEADER_LEN + (size_t)(b->m / 8);
	out = malloc(n);
	if (out == NULL)
		return KITE_NO_MEMORY;
	memcpy(out + OFF_MAGIC, magic, sizeof(magic));
	put_be16(out + OFF_VERSION, FORMAT_VERSION);
	put_be16(out + OFF_K, (uint16_t)b->k);
	put_be64(out + OFF_M, b->m);
	put_be64(out + OFF_SEED, b->seed);
	/* The count before the bits: see kite_bloom_add(). */
	put_be64(out + OFF_COUNT, __atomic_load_n(&b->count, __ATOMIC_ACQUIRE));
	for (uint64_t i = 0; i < b->m / 64; i++)
		put_be64(out + KITE_BLOOM_HEADER_LEN + i * 8,
			 __atomic_load_n(&b->words[i], __ATOMIC_RELAXED));
	put_be64(out + OFF_CHECKSUM, checksum(out, b->m));
	*buf = out;
	*len = n;
	return KITE_OK;
}

int
kite_bloom_load(struct kite_bloom **out, const void *buf, size_t len)
{
	const uint8_t *in = buf;
	struct kite_bloom *b;
	uint64_t m, count, set = 0;
	unsigned int k;
	int rc;

	if (out == NULL)
		return KITE_BAD_ARGUMENT;
	*out = NULL;
	if (buf == NULL || len < KITE_BLOOM_HEADER_LEN)
		return KITE_BAD_ARGUMENT;
	k = get_be16(in + OFF_K);
	m = get_be64(in + OFF_M);
	count = get_be64(in + OFF_COUNT);
	/* m is bounded before it is used in a length, so nothing overflows. */
	if (memcmp(in + OFF_MAGIC, magic, sizeof(magic)) != 0 ||
	    get_be16(in + OFF_VERSION) != FORMAT_VERSION || k < 1 || k > KITE_BLOOM_MAX_K ||
	    m == 0 || m % 64 != 0 || m > MAX_BITS || len != KITE_BLOOM_HEADER_LEN + m / 8 ||
	    get_be64(in + OFF_CHECKSUM) != checksum(in, m))
		return KITE_BAD_ARGUMENT;
	rc = alloc_filter(&b, m, k, get_be64(in + OFF_SEED));
	if (rc != KITE_OK)
		return rc;
	for (uint64_t i = 0; i < m / 64; i++) {
		b->words[i] = get_be64(in + KITE_BLOOM_HEADER_LEN + i * 8);
		set += (uint64_t)__builtin_popcountll(b->words[i]);
	}
	if (count > set) {
		kite_bloom_free(b);
		return KITE_BAD_ARGUMENT;
	}
	b->count = count;
	*out = b;
	return KITE_OK;
}
