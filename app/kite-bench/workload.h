/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_BENCH_WORKLOAD_H
#define KITE_BENCH_WORKLOAD_H

/*
 * Per-request helpers of the workload, inline because the generators call
 * them for every request: random numbers, key popularity, key bytes and
 * self-checking values.
 */

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bench.h"

const char *op_name(enum bench_op op);
uint32_t workload_req_bytes(const struct workload *w, enum bench_op op, uint32_t vlen);

/* ---- random numbers: splitmix64 (Steele, Lea, Flood 2014) ---------------- */

static inline uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform in [0, n) by multiply-shift (Lemire); the bias is below 2^-32 for n < 2^32. */
static inline uint64_t
rng_below(uint64_t *s, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

/* Uniform in [0, 1). */
static inline double
rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/* ---- Zipf by rejection-inversion ------------------------------------------ */

/* log1p(x)/x and expm1(x)/x, continuous at 0. */
static inline double
zipf_helper1(double x)
{
	return fabs(x) > 1e-8 ? log1p(x) / x : 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

static inline double
zipf_helper2(double x)
{
	return fabs(x) > 1e-8 ? expm1(x) / x : 1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x));
}

/* h(x) = x^-theta */
static inline double
zipf_h(double theta, double x)
{
	return exp(-theta * log(x));
}

/* H(x) = integral of h: (x^(1-theta) - 1) / (1 - theta), log(x) at theta 1. */
static inline double
zipf_hint(double theta, double x)
{
	double lx = log(x);

	return zipf_helper2((1.0 - theta) * lx) * lx;
}

static inline double
zipf_hint_inv(double theta, double y)
{
	double t = y * (1.0 - theta);

	if (t < -1.0)
		t = -1.0; /* rounding near the lower end */
	return exp(zipf_helper1(t) * y);
}

/* A key index: uniform, or a Zipf rank scattered over the key space. */
static inline uint64_t
draw_key(const struct workload *w, uint64_t *rng)
{
	if (!w->zipf)
		return rng_below(rng, w->keys);
	for (;;) {
		double u = w->z_hn + rng_unit(rng) * (w->z_hx1 - w->z_hn);
		double x = zipf_hint_inv(w->theta, u);
		uint64_t k = (uint64_t)(x + 0.5);

		if (k < 1)
			k = 1;
		else if (k > w->keys)
			k = w->keys;
		if ((double)k - x <= w->z_s ||
		    u >= zipf_hint(w->theta, (double)k + 0.5) - zipf_h(w->theta, (double)k))
			return ((k - 1) * w->perm_mul) % w->keys;
	}
}

static inline enum bench_op
draw_op(const struct workload *w, uint64_t *rng)
{
	uint32_t r = (uint32_t)(rng_next(rng) >> 32);
	unsigned int op = 0;

	while (op < OP_MAX - 1 && (!w->op_used[op] || r > w->op_cum[op]))
		op++;
	return (enum bench_op)op;
}

static inline uint32_t
draw_vlen(const struct workload *w, uint64_t *rng)
{
	switch (w->vdist) {
	case VAL_UNIFORM:
		return w->vmin + (uint32_t)rng_below(rng, (uint64_t)(w->vmax - w->vmin) + 1);
	case VAL_MIX: {
		uint32_t r = (uint32_t)(rng_next(rng) >> 32);
		unsigned int i = 0;
		while (i < w->nmix - 1 && r > w->mix_cum[i])
			i++;
		return w->mix_size[i];
	}
	default:
		return w->vmin;
	}
}

/* ---- keys: a prefix letter, then the index in hex, zero-padded ----------- */

#define KEY_PREFIX_VALUE   'k'
#define KEY_PREFIX_COUNTER 'n'

static inline void
key_write(uint8_t *p, uint32_t size, uint64_t idx, char prefix)
{
	static const char hex[16] = "0123456789abcdef";

	p[0] = (uint8_t)prefix;
	for (uint32_t i = size - 1; i >= 1; i--) {
		p[i] = (uint8_t)hex[idx & 15];
		idx >>= 4;
	}
}

/* ---- values that check themselves ------------------------------------------ */

/*
 * A value of length L >= 8 for key index k written at version v:
 *   bytes 0..3  v (little-endian)
 *   bytes 4..7  check = high half of seed(k, v, L)
 *   bytes 8..   64-bit words seed + i * golden, the last one cut to fit
 * and its flags are the low half of the seed. A reader recomputes the seed
 * from the key it asked for and the version it finds, so a value stored
 * under another key, cut short, or damaged anywhere fails.
 */
#define VAL_WORD_STEP UINT64_C(0x9e3779b97f4a7c15)

static inline uint64_t
value_seed(uint64_t key, uint32_t version, uint32_t len)
{
	return mix64(key * UINT64_C(0xd6e8feb86659fd93) ^ ((uint64_t)version << 32 | len));
}

static inline void
value_write(uint8_t *p, uint32_t len, uint64_t key, uint32_t version, uint32_t *flags)
{
	uint64_t seed = value_seed(key, version, len);
	uint32_t check = (uint32_t)(seed >> 32);
	uint64_t word = seed;
	uint32_t off;

	/* x86 and arm64 are little-endian; memcpy keeps the layout defined. */
	memcpy(p, &version, 4);
	memcpy(p + 4, &check, 4);
	for (off = 8; off + 8 <= len; off += 8) {
		word += VAL_WORD_STEP;
		memcpy(p + off, &word, 8);
	}
	if (off < len) {
		word += VAL_WORD_STEP;
		memcpy(p + off, &word, len - off);
	}
	*flags = (uint32_t)seed;
}

static inline bool
value_check(const uint8_t *p, uint32_t len, uint64_t key, uint32_t flags)
{
	uint32_t version, check;
	uint64_t seed, word, got;
	uint32_t off;

	if (len < 8)
		return false;
	memcpy(&version, p, 4);
	memcpy(&check, p + 4, 4);
	seed = value_seed(key, version, len);
	if (check != (uint32_t)(seed >> 32) || flags != (uint32_t)seed)
		return false;
	word = seed;
	for (off = 8; off + 8 <= len; off += 8) {
		word += VAL_WORD_STEP;
		memcpy(&got, p + off, 8);
		if (got != word)
			return false;
	}
	if (off < len) {
		word += VAL_WORD_STEP;
		if (memcmp(p + off, &word, len - off) != 0)
			return false;
	}
	return true;
}

#endif /* KITE_BENCH_WORKLOAD_H */
