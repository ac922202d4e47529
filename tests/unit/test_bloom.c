/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libkite's Bloom filter (kite/bloom.h): argument checks and sizing, no
 * false negatives, the measured false-positive rate against the configured
 * one and against fp_estimate(), clear, save/load round trips and every way
 * a saved buffer can be cut or corrupted, and adds from four threads while
 * a fifth looks keys up and saves.
 *
 * The rate tests use filters with a fixed seed (set through a saved
 * buffer), so their measured rates are the same on every run; one more
 * run with a random seed checks the rate with a wider margin.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include <kite/bloom.h>

#define N_KEYS 100000u
#define FIXED_SEED 0x6b697465626c6f6fULL

static size_t
key_of(char *buf, size_t size, const char *prefix, unsigned int i)
{
	return (size_t)snprintf(buf, size, "%s:%08u", prefix, i);
}

static void
add_range(struct kite_bloom *b, const char *prefix, unsigned int from, unsigned int to)
{
	char k[64];

	for (unsigned int i = from; i < to; i++)
		kite_bloom_add(b, k, key_of(k, sizeof(k), prefix, i));
}

/* Keys of the range the filter says may be present. */
static unsigned int
count_maybe(const struct kite_bloom *b, const char *prefix, unsigned int from, unsigned int to)
{
	char k[64];
	unsigned int n = 0;

	for (unsigned int i = from; i < to; i++)
		n += (unsigned int)kite_bloom_maybe(b, k, key_of(k, sizeof(k), prefix, i));
	return n;
}

/* ---- the saved format, as docs/libkite.rst describes it ------------------- */

static uint64_t
rd64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void
wr64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Write the checksum of a buffer whose other fields the test changed. */
static void
reseal(uint8_t *buf, size_t len)
{
	wr64(buf + 32, XXH3_64bits_withSeed(buf + 40, len - 40, XXH3_64bits(buf, 32)));
}

static void
saved_mk(const struct kite_bloom *b, uint64_t *m, unsigned int *k)
{
	void *buf;
	size_t len;

	assert_int_equal(kite_bloom_save(b, &buf, &len), KITE_OK);
	*m = rd64((uint8_t *)buf + 8);
	*k = (unsigned int)(((uint8_t *)buf)[6] << 8 | ((uint8_t *)buf)[7]);
	free(buf);
}

/* An empty filter sized like create's, with a seed of the test's choosing. */
static struct kite_bloom *
create_seeded(uint64_t capacity, double fp_rate, uint64_t seed)
{
	struct kite_bloom *b, *s;
	void *buf;
	size_t len;

	assert_int_equal(kite_bloom_create(&b, capacity, fp_rate), KITE_OK);
	assert_int_equal(kite_bloom_save(b, &buf, &len), KITE_OK);
	wr64((uint8_t *)buf + 16, seed);
	reseal(buf, len);
	assert_int_equal(kite_bloom_load(&s, buf, len), KITE_OK);
	free(buf);
	kite_bloom_free(b);
	return s;
}

/* ---- tests ----------------------------------------------------------------- */

static void
test_create_args(void **state)
{
	struct kite_bloom *b = (struct kite_bloom *)&b; /* create must reset it */

	(void)state;
	assert_int_equal(kite_bloom_create(NULL, 100, 0.01), KITE_BAD_ARGUMENT);
	assert_int_equal(kite_bloom_create(&b, 0, 0.01), KITE_BAD_ARGUMENT);
	assert_null(b);
	assert_int_equal(kite_bloom_create(&b, KITE_BLOOM_MAX_CAPACITY + 1, 0.5),
			 KITE_BAD_ARGUMENT);
	assert_int_equal(kite_bloom_create(&b, 100, 0.0), KITE_BAD_ARGUMENT);
	assert_int_equal(kite_bloom_create(&b, 100, 1.0), KITE_BAD_ARGUMENT);
	assert_int_equal(kite_bloom_create(&b, 100, -0.01), KITE_BAD_ARGUMENT);
	assert_int_equal(kite_bloom_create(&b, 100, 1.5), KITE_BAD_ARGUMENT);
	assert_int_equal(kite_bloom_create(&b, 100, NAN), KITE_BAD_ARGUMENT);
	assert_int_equal(kite_bloom_create(&b, 100, INFINITY), KITE_BAD_ARGUMENT);
	/* Over 1 GiB of bits: 896,179,684 keys at 1 % need exactly 2^33. */
	assert_int_equal(kite_bloom_create(&b, 896179685, 0.01), KITE_BAD_ARGUMENT);
	assert_int_equal(kite_bloom_create(&b, KITE_BLOOM_MAX_CAPACITY, 0.01), KITE_BAD_ARGUMENT);
	/* More than 64 hashes. */
	assert_int_equal(kite_bloom_create(&b, 10, 1e-30), KITE_BAD_ARGUMENT);
	assert_null(b);
	kite_bloom_free(NULL);

	/* The other calls' NULL arguments. */
	void *buf = &buf;
	size_t len = 1;
	assert_int_equal(kite_bloom_save(NULL, &buf, &len), KITE_BAD_ARGUMENT);
	assert_null(buf);
	assert_int_equal(len, 0);
	assert_int_equal(kite_bloom_create(&b, 10, 0.01), KITE_OK);
	assert_int_equal(kite_bloom_save(b, NULL, &len), KITE_BAD_ARGUMENT);
	assert_int_equal(kite_bloom_save(b, &buf, NULL), KITE_BAD_ARGUMENT);
	kite_bloom_free(b);
	assert_int_equal(kite_bloom_load(NULL, "x", 1), KITE_BAD_ARGUMENT);
	assert_int_equal(kite_bloom_load(&b, NULL, 100), KITE_BAD_ARGUMENT);
	assert_null(b);
}

/* m = ceil(n * -ln p / ln(2)^2) rounded up to 64, k = round(-log2 p). */
static void
test_sizing(void **state)
{
	static const struct {
		uint64_t n;
		double p;
		uint64_t m;
		unsigned int k;
	} cases[] = {
		{ 100000, 0.01, 958528, 7 },
		{ 100000, 0.001, 1437760, 10 },
		{ 1, 0.01, 64, 7 },
		{ 10, 0.01, 128, 7 },
		{ 1000, 0.5, 1472, 1 },
		{ 1000, 0.9, 256, 1 },
		{ 1, 1e-19, 128, 63 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kite_bloom *b;
		uint64_t m;
		unsigned int k;

		assert_int_equal(kite_bloom_create(&b, cases[i].n, cases[i].p), KITE_OK);
		saved_mk(b, &m, &k);
		assert_int_equal(m, cases[i].m);
		assert_int_equal(k, cases[i].k);
		assert_int_equal(kite_bloom_bytes(b), m / 8);
		assert_int_equal(kite_bloom_count(b), 0);
		assert_true(kite_bloom_fp_estimate(b) == 0.0);
		kite_bloom_free(b);
	}
}

static void
test_no_false_negatives(void **state)
{
	struct kite_bloom *b;
	uint64_t count;

	(void)state;
	assert_int_equal(kite_bloom_create(&b, N_KEYS, 0.01), KITE_OK);
	assert_int_equal(count_maybe(b, "user", 0, 1000), 0); /* empty: all certainly absent */
	add_range(b, "user", 0, N_KEYS);
	assert_int_equal(count_maybe(b, "user", 0, N_KEYS), N_KEYS);
	/* The empty key is a key like any other. */
	assert_int_equal(kite_bloom_maybe(b, NULL, 0), kite_bloom_maybe(b, "", 0));
	kite_bloom_add(b, NULL, 0);
	assert_int_equal(kite_bloom_maybe(b, "", 0), 1);

	/* Distinct keys, less the few whose bits were all set already. */
	count = kite_bloom_count(b);
	printf("count after %u distinct adds: %llu\n", N_KEYS, (unsigned long long)count);
	assert_true(count <= N_KEYS + 1);
	assert_true(count >= N_KEYS - N_KEYS / 100);
	/* Adding the same keys again changes nothing. */
	add_range(b, "user", 0, N_KEYS);
	assert_int_equal(kite_bloom_count(b), count);
	kite_bloom_free(b);
}

/*
 * Fill to capacity, then measure over N_KEYS absent keys; return the rate.
 * With a fixed seed the answers are the same on every run, so the measured
 * rate can be held to the estimate; with a random one the measured rate
 * varies by about 1 / sqrt(N_KEYS * p) (10 % at 0.001) while the estimate,
 * from about a million bits, hardly moves.
 */
static double
measure(struct kite_bloom *b, double p, bool fixed_seed)
{
	add_range(b, "user", 0, N_KEYS);
	assert_int_equal(count_maybe(b, "user", 0, N_KEYS), N_KEYS);
	double rate = (double)count_maybe(b, "absent", 0, N_KEYS) / N_KEYS;
	double est = kite_bloom_fp_estimate(b);

	printf("fp %g (%s seed): measured %.5f (%.2fx), fp_estimate %.5f\n", p,
	       fixed_seed ? "fixed" : "random", rate, rate / p, est);
	/* 1.5x: five standard deviations at 0.001 for a random seed. */
	assert_true(rate <= 1.5 * p);
	assert_true(fabs(est - p) <= 0.1 * p);
	if (fixed_seed) {
		/* Sized no larger than needed either, and the estimate is what was measured. */
		assert_true(rate >= p / 1.5);
		assert_true(fabs(est - rate) <= 0.1 * p);
	}
	return rate;
}

static void
check_fp_rate(double p)
{
	struct kite_bloom *b = create_seeded(N_KEYS, p, FIXED_SEED);

	measure(b, p, true);
	kite_bloom_free(b);
	assert_int_equal(kite_bloom_create(&b, N_KEYS, p), KITE_OK);
	measure(b, p, false);
	kite_bloom_free(b);
}

static void
test_fp_rate_1pct(void **state)
{
	(void)state;
	check_fp_rate(0.01);
}

static void
test_fp_rate_01pct(void **state)
{
	(void)state;
	check_fp_rate(0.001);
}

static void
test_clear(void **state)
{
	struct kite_bloom *b;

	(void)state;
	assert_int_equal(kite_bloom_create(&b, 1000, 0.01), KITE_OK);
	add_range(b, "user", 0, 1000);
	assert_true(kite_bloom_fp_estimate(b) > 0.001);
	kite_bloom_clear(b);
	assert_int_equal(kite_bloom_count(b), 0);
	assert_true(kite_bloom_fp_estimate(b) == 0.0);
	assert_int_equal(count_maybe(b, "user", 0, 1000), 0);
	add_range(b, "user", 0, 10);
	assert_int_equal(count_maybe(b, "user", 0, 10), 10);
	kite_bloom_free(b);
}

static void
test_save_load(void **state)
{
	struct kite_bloom *a, *b;
	void *buf, *buf2;
	size_t len, len2;

	(void)state;
	assert_int_equal(kite_bloom_create(&a, N_KEYS, 0.01), KITE_OK);
	add_range(a, "user", 0, N_KEYS / 2);
	assert_int_equal(kite_bloom_save(a, &buf, &len), KITE_OK);
	assert_int_equal(len, KITE_BLOOM_HEADER_LEN + kite_bloom_bytes(a));
	assert_memory_equal(buf, "KBLM\0\1", 6);
	assert_int_equal(kite_bloom_load(&b, buf, len), KITE_OK);

	assert_int_equal(kite_bloom_bytes(b), kite_bloom_bytes(a));
	assert_int_equal(kite_bloom_count(b), kite_bloom_count(a));
	assert_true(kite_bloom_fp_estimate(b) == kite_bloom_fp_estimate(a));
	/* The same answer for every key, present or not. */
	for (unsigned int i = 0; i < N_KEYS; i++) {
		char k[64];
		size_t n = key_of(k, sizeof(k), "user", i);

		assert_int_equal(kite_bloom_maybe(b, k, n), kite_bloom_maybe(a, k, n));
		n = key_of(k, sizeof(k), "absent", i);
		assert_int_equal(kite_bloom_maybe(b, k, n), kite_bloom_maybe(a, k, n));
	}
	/* Byte for byte the same when saved again; and it keeps working. */
	assert_int_equal(kite_bloom_save(b, &buf2, &len2), KITE_OK);
	assert_int_equal(len2, len);
	assert_memory_equal(buf2, buf, len);
	add_range(b, "user", N_KEYS / 2, N_KEYS);
	assert_int_equal(count_maybe(b, "user", 0, N_KEYS), N_KEYS);
	free(buf);
	free(buf2);
	kite_bloom_free(a);
	kite_bloom_free(b);
}

static void
expect_refused(const uint8_t *buf, size_t len)
{
	struct kite_bloom *b = (struct kite_bloom *)&b;

	assert_int_equal(kite_bloom_load(&b, buf, len), KITE_BAD_ARGUMENT);
	assert_null(b);
}

/* A copy of `orig` with one field changed, resealed so that only the field is wrong. */
static void
expect_field_refused(const uint8_t *orig, size_t len, size_t off, uint64_t v, int width)
{
	uint8_t *c = malloc(len);

	assert_non_null(c);
	memcpy(c, orig, len);
	if (width == 8) {
		wr64(c + off, v);
	} else {
		c[off] = (uint8_t)(v >> 8);
		c[off + 1] = (uint8_t)v;
	}
	reseal(c, len);
	expect_refused(c, len);
	free(c);
}

static void
test_load_invalid(void **state)
{
	struct kite_bloom *a, *b;
	uint8_t *buf, *c;
	size_t len;

	(void)state;
	assert_int_equal(kite_bloom_create(&a, 10, 0.01), KITE_OK);
	add_range(a, "user", 0, 10);
	assert_int_equal(kite_bloom_save(a, (void **)&buf, &len), KITE_OK);
	assert_int_equal(len, 40 + 16);
	assert_int_equal(kite_bloom_load(&b, buf, len), KITE_OK);
	kite_bloom_free(b);

	/* Every truncation, and one byte too many. */
	for (size_t n = 0; n < len; n++)
		expect_refused(buf, n);
	c = malloc(len + 1);
	assert_non_null(c);
	memcpy(c, buf, len);
	c[len] = 0;
	expect_refused(c, len + 1);

	/* Any single bit flipped anywhere (header or bits): the checksum. */
	for (size_t bit = 0; bit < len * 8; bit++) {
		memcpy(c, buf, len);
		c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		expect_refused(c, len);
	}

	/* Each field wrong on its own, with a correct checksum. */
	expect_field_refused(buf, len, 0, 0x4b43, 2); /* magic "KCLM" */
	expect_field_refused(buf, len, 2, 0x4c4e, 2); /* magic "KBLN" */
	expect_field_refused(buf, len, 4, 0, 2);      /* version 0 */
	expect_field_refused(buf, len, 4, 2, 2);      /* version 2 */
	expect_field_refused(buf, len, 4, 0x0101, 2); /* the version's high byte flipped */
	expect_field_refused(buf, len, 6, 0, 2);      /* k 0 */
	expect_field_refused(buf, len, 6, KITE_BLOOM_MAX_K + 1, 2);
	expect_field_refused(buf, len, 6, 0xffff, 2);
	expect_field_refused(buf, len, 8, 0, 8);   /* m 0 */
	expect_field_refused(buf, len, 8, 64, 8);  /* m smaller than the bits */
	expect_field_refused(buf, len, 8, 192, 8); /* ... larger */
	expect_field_refused(buf, len, 8, 127, 8); /* not a multiple of 64 */
	expect_field_refused(buf, len, 8, 128 + 32, 8);
	/* Huge m: 2^62, just over 1 GiB of bits, the largest multiple of 64. */
	expect_field_refused(buf, len, 8, 1ULL << 62, 8);
	expect_field_refused(buf, len, 8, (1ULL << 33) + 64, 8);
	expect_field_refused(buf, len, 8, UINT64_MAX - 63, 8);
	/* count over the bits set: 16 bytes hold at most 128. */
	expect_field_refused(buf, len, 24, 129, 8);
	expect_field_refused(buf, len, 24, UINT64_MAX, 8);

	/* A huge m with a buffer long enough for the header only. */
	memcpy(c, buf, 40);
	wr64(c + 8, 1ULL << 62);
	reseal(c, 40);
	expect_refused(c, 40);

	/* The same fields with valid values are accepted (the helper is sound). */
	memcpy(c, buf, len);
	wr64(c + 16, 12345);
	wr64(c + 24, 0);
	reseal(c, len);
	assert_int_equal(kite_bloom_load(&b, c, len), KITE_OK);
	assert_int_equal(kite_bloom_count(b), 0);
	kite_bloom_free(b);

	free(c);
	free(buf);
	kite_bloom_free(a);
}

/* ---- threads ---------------------------------------------------------------- */

#define ADDERS 4
#define PER_ADDER 50000u

struct shared {
	struct kite_bloom *b;
	atomic_uint done[ADDERS]; /* keys [0, done) of adder i are in */
	atomic_bool stop;
	atomic_uint false_negatives;
	atomic_uint lookups;
	atomic_uint saves, bad_saves;
};

struct adder {
	struct shared *s;
	unsigned int id;
};

static void *
adder_main(void *arg)
{
	struct adder *a = arg;
	char k[64];

	for (unsigned int i = 0; i < PER_ADDER; i++) {
		unsigned int n = a->id * PER_ADDER + i;

		kite_bloom_add(a->s->b, k, key_of(k, sizeof(k), "user", n));
		atomic_store_explicit(&a->s->done[a->id], i + 1, memory_order_release);
	}
	return NULL;
}

/* Looks up keys the adders report done (each must be there), and saves now and then. */
static void *
reader_main(void *arg)
{
	struct shared *s = arg;
	uint64_t rng = 88172645463325252ULL;
	unsigned int round = 0;
	char k[64];

	while (!atomic_load(&s->stop)) {
		for (unsigned int a = 0; a < ADDERS; a++) {
			unsigned int done = atomic_load_explicit(&s->done[a], memory_order_acquire);

			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			if (done == 0)
				continue;
			unsigned int n = a * PER_ADDER + (unsigned int)(rng % done);
			if (!kite_bloom_maybe(s->b, k, key_of(k, sizeof(k), "user", n)))
				atomic_fetch_add(&s->false_negatives, 1);
			kite_bloom_maybe(s->b, k, key_of(k, sizeof(k), "absent", n));
			atomic_fetch_add(&s->lookups, 1);
		}
		/* A snapshot taken during adds must still load (count <= bits set). */
		if (++round % 256 == 0) {
			void *buf;
			size_t len;
			struct kite_bloom *c;

			if (kite_bloom_save(s->b, &buf, &len) != KITE_OK ||
			    kite_bloom_load(&c, buf, len) != KITE_OK) {
				atomic_fetch_add(&s->bad_saves, 1);
			} else {
				kite_bloom_free(c);
			}
			free(buf);
			atomic_fetch_add(&s->saves, 1);
		}
	}
	return NULL;
}

static void
test_concurrent(void **state)
{
	struct shared s = { 0 };
	struct adder adders[ADDERS];
	pthread_t th[ADDERS], reader;
	const unsigned int total = ADDERS * PER_ADDER;

	(void)state;
	assert_int_equal(kite_bloom_create(&s.b, total, 0.01), KITE_OK);
	assert_int_equal(pthread_create(&reader, NULL, reader_main, &s), 0);
	for (unsigned int i = 0; i < ADDERS; i++) {
		adders[i] = (struct adder){ &s, i };
		assert_int_equal(pthread_create(&th[i], NULL, adder_main, &adders[i]), 0);
	}
	for (unsigned int i = 0; i < ADDERS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	atomic_store(&s.stop, true);
	assert_int_equal(pthread_join(reader, NULL), 0);

	printf("concurrent: %u lookups, %u saves during the adds; count %llu of %u\n",
	       atomic_load(&s.lookups), atomic_load(&s.saves),
	       (unsigned long long)kite_bloom_count(s.b), total);
	assert_int_equal(atomic_load(&s.false_negatives), 0);
	assert_int_equal(atomic_load(&s.bad_saves), 0);
	assert_int_equal(count_maybe(s.b, "user", 0, total), total);
	assert_true(kite_bloom_count(s.b) <= total);
	assert_true(kite_bloom_count(s.b) >= total - total / 100);
	/* Threads did not lose bits: the rate is that of one thread's filling. */
	double rate = (double)count_maybe(s.b, "absent", 0, N_KEYS) / N_KEYS;
	printf("concurrent: fp measured %.5f\n", rate);
	assert_true(rate <= 1.5 * 0.01);
	kite_bloom_free(s.b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_args),
		cmocka_unit_test(test_sizing),
		cmocka_unit_test(test_no_false_negatives),
		cmocka_unit_test(test_fp_rate_1pct),
		cmocka_unit_test(test_fp_rate_01pct),
		cmocka_unit_test(test_clear),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_load_invalid),
		cmocka_unit_test(test_concurrent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
