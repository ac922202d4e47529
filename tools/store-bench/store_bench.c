/* SPDX-License-Identifier: BSD-3-Clause */

/*
 * store-bench: micro-benchmark of one kite_store partition on one lcore.
 *
 *   store-bench [EAL args] -- [--keys N] [--value-size B] [--mem BYTES]
 *               [--ops N] [--batch B] [--get-ratio R]
 *
 * Preloads N keys, then runs five rounds of: single GETs, bulk GETs of B
 * keys, SETs (overwrites) and a GET/SET mix, each over the same uniformly
 * random key sequence, and prints the median ops/s and TSC cycles per
 * operation. Every operation includes the SipHash of its key, as the data
 * path pays it too. Overwrites leave garbage in the log and the hand evicts
 * keys not rewritten or read within a lap, so the evicted keys are stored
 * again (untimed) before the GET and the MIX phases: GETs measure hits.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_lcore.h>

#include "kite_store.h"

#define ROUNDS	5
#define KEY_LEN 16
#define MAX_VAL (1u << 20)

enum phase { PH_GET, PH_BULK, PH_SET, PH_MIX, PH_MAX };

struct cfg {
	uint32_t keys;
	uint32_t value_size;
	uint64_t mem;
	uint32_t ops;
	uint32_t batch;
	double get_ratio;
};

struct bench {
	struct cfg c;
	struct kite_store *s;
	char *keys;	 /* keys * KEY_LEN bytes */
	uint32_t *seq;	 /* ops random key indexes */
	uint8_t *is_get; /* ops flags for the mixed phase */
	uint8_t *value;
	uint64_t get_misses; /* GET and GET bulk: 0 after each refill */
	uint64_t mix_misses;
	uint64_t refilled;
};

static void
usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [EAL args] -- [--keys N] [--value-size B] [--mem BYTES]\n"
		"       [--ops N] [--batch B (1-64)] [--get-ratio R (0-1)]\n"
		"defaults: --keys 200000 --value-size 32 --mem 2x the preloaded bytes\n"
		"          --ops 1000000 --batch 32 --get-ratio 0.9\n",
		prog);
}

static int
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int
parse_args(int argc, char **argv, struct cfg *c)
{
	static const struct option opts[] = {
		{ "keys", required_argument, NULL, 'k' },
		{ "value-size", required_argument, NULL, 'v' },
		{ "mem", required_argument, NULL, 'm' },
		{ "ops", required_argument, NULL, 'o' },
		{ "batch", required_argument, NULL, 'b' },
		{ "get-ratio", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	char *end;
	int opt;

	c->keys = 200000;
	c->value_size = 32;
	c->mem = 0;
	c->ops = 1000000;
	c->batch = 32;
	c->get_ratio = 0.9;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			if (parse_u64(optarg, 1, 100000000, &v) < 0)
				return -EINVAL;
			c->keys = (uint32_t)v;
			break;
		case 'v':
			if (parse_u64(optarg, 0, MAX_VAL, &v) < 0)
				return -EINVAL;
			c->value_size = (uint32_t)v;
			break;
		case 'm':
			if (parse_u64(optarg, 4096, UINT64_MAX, &v) < 0)
				return -EINVAL;
			c->mem = v;
			break;
		case 'o':
			if (parse_u64(optarg, 1, 1000000000, &v) < 0)
				return -EINVAL;
			c->ops = (uint32_t)v;
			break;
		case 'b':
			if (parse_u64(optarg, 1, RTE_HASH_LOOKUP_BULK_MAX, &v) < 0)
				return -EINVAL;
			c->batch = (uint32_t)v;
			break;
		case 'g':
			c->get_ratio = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || c->get_ratio < 0 || c->get_ratio > 1)
				return -EINVAL;
			break;
		default:
			return -EINVAL;
		}
	}
	if (optind != argc)
		return -EINVAL;
	/* Room for every key twice over: overwrites leave garbage behind. */
	if (c->mem == 0)
		c->mem = RTE_MAX((uint64_t)2 * c->keys *
					 RTE_ALIGN_CEIL(40 + KEY_LEN + (uint64_t)c->value_size, 8),
				 (uint64_t)1 << 20);
	return 0;
}

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline const char *
key_at(const struct bench *b, uint32_t i)
{
	return b->keys + (size_t)i * KEY_LEN;
}

static int
set_key(struct bench *b, uint32_t k)
{
	const char *key = key_at(b, k);
	uint64_t cas;

	const struct kite_store_write w = { .mode = KITE_STORE_SET,
					    .value = b->value,
					    .vallen = b->c.value_size };

	return kite_store_store(b->s, key, KEY_LEN, kite_store_hash(b->s, key, KEY_LEN), &w, &cas);
}

static uint64_t
run_get(struct bench *b)
{
	struct kite_store_view v;
	uint64_t t0 = rte_rdtsc(), misses = 0;
	uint32_t i;

	for (i = 0; i < b->c.ops; i++) {
		const char *key = key_at(b, b->seq[i]);

		misses += kite_store_get(b->s, key, KEY_LEN, kite_store_hash(b->s, key, KEY_LEN),
					 &v) != KITE_STORE_OK;
	}
	b->get_misses += misses;
	return rte_rdtsc() - t0;
}

static uint64_t
run_bulk(struct bench *b)
{
	const uint8_t *keys[RTE_HASH_LOOKUP_BULK_MAX];
	uint16_t lens[RTE_HASH_LOOKUP_BULK_MAX];
	uint64_t hashes[RTE_HASH_LOOKUP_BULK_MAX];
	struct kite_store_view views[RTE_HASH_LOOKUP_BULK_MAX];
	uint8_t st[RTE_HASH_LOOKUP_BULK_MAX];
	uint64_t t0, misses = 0;
	uint32_t i, j;

	for (j = 0; j < b->c.batch; j++)
		lens[j] = KEY_LEN;
	t0 = rte_rdtsc();
	for (i = 0; i < b->c.ops; i += b->c.batch) {
		uint32_t n = RTE_MIN(b->c.batch, b->c.ops - i);

		for (j = 0; j < n; j++) {
			keys[j] = (const uint8_t *)key_at(b, b->seq[i + j]);
			hashes[j] = kite_store_hash(b->s, keys[j], KEY_LEN);
		}
		kite_store_get_bulk(b->s, keys, lens, hashes, n, views, st);
		for (j = 0; j < n; j++)
			misses += st[j] != KITE_STORE_OK;
	}
	b->get_misses += misses;
	return rte_rdtsc() - t0;
}

static uint64_t
run_set(struct bench *b)
{
	uint64_t t0 = rte_rdtsc();
	uint32_t i;

	for (i = 0; i < b->c.ops; i++)
		if (set_key(b, b->seq[i]) != KITE_STORE_OK)
			b->mix_misses++;
	return rte_rdtsc() - t0;
}

static uint64_t
run_mix(struct bench *b)
{
	struct kite_store_view v;
	uint64_t t0 = rte_rdtsc(), misses = 0;
	uint32_t i;

	for (i = 0; i < b->c.ops; i++) {
		const char *key = key_at(b, b->seq[i]);

		if (b->is_get[i])
			misses += kite_store_get(b->s, key, KEY_LEN,
						 kite_store_hash(b->s, key, KEY_LEN),
						 &v) != KITE_STORE_OK;
		else
			misses += set_key(b, b->seq[i]) != KITE_STORE_OK;
	}
	b->mix_misses += misses;
	return rte_rdtsc() - t0;
}

/* Store again every key the hand evicted since the last round (untimed). */
static int
refill(struct bench *b)
{
	struct kite_store_view v;
	uint32_t i;

	for (i = 0; i < b->c.keys; i++) {
		const char *key = key_at(b, i);

		if (kite_store_get(b->s, key, KEY_LEN, kite_store_hash(b->s, key, KEY_LEN), &v) ==
		    KITE_STORE_OK)
			continue;
		if (set_key(b, i) != KITE_STORE_OK) {
			fprintf(stderr,
				"store-bench: cannot store key %" PRIu32
				": --mem too small for --keys\n",
				i);
			return -ENOMEM;
		}
		b->refilled++;
	}
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
setup(struct bench *b)
{
	struct kite_store_params p = {
		.name = "store_bench",
		.socket_id = (int)rte_socket_id(),
		.mem_bytes = b->c.mem,
		.max_item_size = RTE_MAX(b->c.value_size, 1024u),
		.id = 1,
	};
	uint64_t rng = 1;
	uint32_t i;

	b->keys = malloc((size_t)b->c.keys * KEY_LEN);
	b->seq = malloc((size_t)b->c.ops * sizeof(*b->seq));
	b->is_get = malloc(b->c.ops);
	b->value = malloc(RTE_MAX(b->c.value_size, 1u));
	if (b->keys == NULL || b->seq == NULL || b->is_get == NULL || b->value == NULL) {
		fprintf(stderr, "store-bench: out of memory\n");
		return -ENOMEM;
	}
	for (i = 0; i < b->c.keys; i++) {
		char tmp[KEY_LEN + 1];

		snprintf(tmp, sizeof(tmp), "bench:%010" PRIu32, i);
		memcpy(b->keys + (size_t)i * KEY_LEN, tmp, KEY_LEN);
	}
	for (i = 0; i < b->c.ops; i++) {
		uint64_t r = splitmix64(&rng);

		b->seq[i] = (uint32_t)((r & 0xffffffff) % b->c.keys);
		b->is_get[i] = (double)(r >> 40) / (double)(1 << 24) < b->c.get_ratio;
	}
	memset(b->value, 'v', RTE_MAX(b->c.value_size, 1u));

	b->s = kite_store_create(&p);
	if (b->s == NULL) {
		fprintf(stderr, "store-bench: kite_store_create(%" PRIu64 " bytes): %s\n", b->c.mem,
			rte_strerror(rte_errno));
		return -rte_errno;
	}
	printf("preloading %" PRIu32 " keys...\n", b->c.keys);
	fflush(stdout);
	return refill(b);
}

static void
teardown(struct bench *b)
{
	kite_store_free(b->s);
	free(b->keys);
	free(b->seq);
	free(b->is_get);
	free(b->value);
}

int
main(int argc, char **argv)
{
	static const char *const names[PH_MAX] = { "GET", "GET bulk", "SET", "MIX" };
	uint64_t (*const run[PH_MAX])(struct bench *) = { run_get, run_bulk, run_set, run_mix };
	uint64_t cyc[PH_MAX][ROUNDS];
	struct kite_store_stats st;
	struct bench b = { 0 };
	double hz;
	int ret, r, ph;

	ret = rte_eal_init(argc, argv);
	if (ret < 0) {
		fprintf(stderr, "store-bench: rte_eal_init: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	argc -= ret;
	argv += ret;
	if (parse_args(argc, argv, &b.c) < 0) {
		usage(argv[0]);
		rte_eal_cleanup();
		return 2;
	}
	hz = (double)rte_get_tsc_hz();
	printf("store-bench: %" PRIu32 " keys x %" PRIu32 " B values, mem %" PRIu64 " B, %" PRIu32
	       " ops/round, batch %" PRIu32 ", get-ratio %.2f, TSC %.3f GHz, lcore %u\n",
	       b.c.keys, b.c.value_size, b.c.mem, b.c.ops, b.c.batch, b.c.get_ratio, hz / 1e9,
	       rte_lcore_id());
	ret = setup(&b);
	if (ret < 0) {
		teardown(&b);
		rte_eal_cleanup();
		return 1;
	}

	for (r = 0; r < ROUNDS; r++) {
		for (ph = 0; ph < PH_MAX; ph++) {
			if ((ph == PH_GET && r > 0) || ph == PH_MIX) {
				if (refill(&b) < 0) {
					teardown(&b);
					rte_eal_cleanup();
					return 1;
				}
			}
			cyc[ph][r] = run[ph](&b);
		}
		printf("round %d/%d:", r + 1, ROUNDS);
		for (ph = 0; ph < PH_MAX; ph++)
			printf("  %s %.1f", names[ph], (double)cyc[ph][r] / b.c.ops);
		printf(" cycles/op\n");
		fflush(stdout);
	}

	printf("\n%-14s %14s %12s   (median of %d rounds, %" PRIu32 " ops each)\n", "op", "ops/s",
	       "cycles/op", ROUNDS, b.c.ops);
	for (ph = 0; ph < PH_MAX; ph++) {
		char label[32];
		uint64_t med;

		qsort(cyc[ph], ROUNDS, sizeof(cyc[ph][0]), cmp_u64);
		med = cyc[ph][ROUNDS / 2];
		if (ph == PH_BULK)
			snprintf(label, sizeof(label), "GET bulk(%" PRIu32 ")", b.c.batch);
		else if (ph == PH_MIX)
			snprintf(label, sizeof(label), "MIX(%.0f%% GET)", b.c.get_ratio * 100);
		else
			snprintf(label, sizeof(label), "%s", names[ph]);
		printf("%-14s %14.0f %12.1f\n", label, (double)b.c.ops * hz / (double)med,
		       (double)med / b.c.ops);
	}
	kite_store_stats_get(b.s, &st);
	printf("\nstore: %" PRIu64 " items, %" PRIu64 " live bytes of %" PRIu64
	       ", evictions %" PRIu64 ", reinserted %" PRIu64 ", index_full %" PRIu64 "\n",
	       st.curr_items, st.bytes, st.limit_maxbytes, st.evictions, st.reinserted,
	       st.index_full);
	printf("misses: GET phases %" PRIu64 ", MIX %" PRIu64 "; evicted keys re-stored between"
	       " phases: %" PRIu64 "\n",
	       b.get_misses, b.mix_misses, b.refilled - b.c.keys);
	teardown(&b);
	rte_eal_cleanup();
	return 0;
}
