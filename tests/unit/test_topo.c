/* SPDX-License-Identifier: BSD-3-Clause */
/* lib/topo: the public key -> partition function, the map and the TOPOLOGY codec. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "kite_topo.h"

static void
test_partition_invalid(void **state)
{
	(void)state;
	assert_int_equal(kite_topo_key_partition("foo", 3, 0), 0);
	assert_int_equal(kite_topo_key_partition(NULL, 3, 16), 0);
}

static void
test_map(void **state)
{
	struct kite_topo_map m = { 8, 3, 11211 };
	unsigned int per[3] = { 0 };

	(void)state;
	for (uint32_t p = 0; p < m.partitions; p++) {
		assert_true(kite_topo_owner(&m, p) < 3);
		per[kite_topo_owner(&m, p)]++;
		assert_int_equal(kite_topo_port(&m, p), 11211 + p);
	}
	assert_int_equal(per[0], 3);
	assert_int_equal(per[1], 3);
	assert_int_equal(per[2], 2);
}

static void
test_key_partition(void **state)
{
	unsigned int hist[16] = { 0 };
	char key[32];

	(void)state;
	/* Documented values: XXH64 seed 0, modulo the partition count. */
	assert_int_equal(kite_topo_key_partition("foo", 3, 1), 0);
	assert_int_equal(kite_topo_key_partition("foo", 3, 0), 0);
	for (int i = 0; i < 16000; i++) {
		int n = snprintf(key, sizeof(key), "key:%d", i);
		uint32_t p = kite_topo_key_partition(key, (uint16_t)n, 16);
		assert_true(p < 16);
		assert_int_equal(p, kite_topo_key_partition(key, (uint16_t)n, 16));
		hist[p]++;
	}
	for (int p = 0; p < 16; p++)
		assert_true(hist[p] > 800 && hist[p] < 1200);
}

static void
test_partition(void **state)
{
	unsigned int hits[8] = { 0 };

	(void)state;
	/* XXH64 of the empty input with seed 0 is a published test vector. */
	assert_int_equal(kite_topo_key_partition("", 0, 1000), UINT64_C(0xEF46DB3751D8E999) % 1000);
	assert_int_equal(kite_topo_key_partition("foo", 3, UINT32_MAX),
			 (uint32_t)(XXH64("foo", 3, 0) % UINT32_MAX));
	assert_int_equal(kite_topo_key_partition("anything", 8, 1), 0);
	for (unsigned int i = 0; i < 8000; i++) {
		char key[16];
		int kl = snprintf(key, sizeof(key), "key:%u", i);
		uint32_t p = kite_topo_key_partition(key, (uint16_t)kl, 8);

		assert_true(p < 8);
		hits[p]++;
	}
	/* A public function any client computes: it had better spread keys. */
	for (unsigned int p = 0; p < 8; p++)
		assert_true(hits[p] > 800 && hits[p] < 1200);
}

static void
test_topology_codec(void **state)
{
	static struct kite_topology t, back;
	uint8_t out[KITE_TOPO_REPLY_MAX];
	int n;

	(void)state;
	assert_int_equal(kite_topo_write(NULL, sizeof(out), &t), -EINVAL);
	memset(&t, 0, sizeof(t));
	assert_int_equal(kite_topo_write(out, sizeof(out), &t), -EINVAL); /* 0 parts */
	assert_int_equal(kite_topo_parse(NULL, 16, &back), -EINVAL);
	assert_int_equal(kite_topo_parse(out, 15, &back), -EINVAL);

	t.version = KITE_TOPO_VERSION;
	t.hash = KITE_TOPO_HASH_XXH64;
	t.partitions = 3;
	t.workers = 2;
	t.base_port = 11211;
	for (int p = 0; p < 3; p++) {
		t.port[p] = (uint16_t)(11211 + p);
		t.worker[p] = (uint16_t)(p % 2);
	}
	assert_int_equal(kite_topo_write(out, 27, &t), -ENOSPC);
	n = kite_topo_write(out, sizeof(out), &t);
	assert_int_equal(n, 16 + 12);
	/* The documented byte layout. */
	const uint8_t head[16] = { 1, 1, 0, 3, 0, 2, 0x2b, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0 };
	assert_memory_equal(out, head, 16);
	const uint8_t p2[4] = { 0x2b, 0xcd, 0, 0 };
	assert_memory_equal(out + 16 + 8, p2, 4);
	assert_int_equal(kite_topo_parse(out, (size_t)n, &back), 0);
	assert_int_equal(back.partitions, 3);
	assert_int_equal(back.port[2], 11213);
	assert_int_equal(back.worker[1], 1);
	/* Wrong length, version or counts are refused. */
	assert_int_equal(kite_topo_parse(out, (size_t)n - 1, &back), -EINVAL);
	out[0] = 9;
	assert_int_equal(kite_topo_parse(out, (size_t)n, &back), -EINVAL);
	out[0] = 1;
	out[4] = out[5] = 0;
	assert_int_equal(kite_topo_parse(out, (size_t)n, &back), -EINVAL);
}

/* The limits of kite_limits.h, as the engine and kited's config apply them. */
static void
test_map_check(void **state)
{
	struct kite_topo_map m = { 4, 1, 11211 };

	(void)state;
	assert_int_equal(kite_topo_map_check(NULL), -EINVAL);
	assert_int_equal(kite_topo_map_check(&m), 0);
	m.workers = 0;
	assert_int_equal(kite_topo_map_check(&m), -EINVAL);
	m.workers = KITE_MAX_WORKERS;
	m.partitions = KITE_MAX_PARTITIONS;
	assert_int_equal(kite_topo_map_check(&m), 0);
	m.workers = KITE_MAX_WORKERS + 1;
	assert_int_equal(kite_topo_map_check(&m), -EINVAL);
	m.workers = 1;
	m.partitions = KITE_MAX_PARTS_PER_WORKER;
	assert_int_equal(kite_topo_map_check(&m), 0);
	m.partitions = KITE_MAX_PARTS_PER_WORKER + 1;
	assert_int_equal(kite_topo_map_check(&m), -EINVAL);
	m.workers = 8;
	m.partitions = KITE_MAX_PARTITIONS + 8;
	assert_int_equal(kite_topo_map_check(&m), -EINVAL);
	m.partitions = 0;
	assert_int_equal(kite_topo_map_check(&m), -EINVAL);
	/* Every partition needs a port: the last one is 65535 at most. */
	m.partitions = 16;
	m.base_port = 65535 - 15;
	assert_int_equal(kite_topo_map_check(&m), 0);
	m.base_port++;
	assert_int_equal(kite_topo_map_check(&m), -EINVAL);
}

/* A map described as the TOPOLOGY reply describes it, and back through the codec. */
static void
test_from_map(void **state)
{
	static struct kite_topology t, back;
	struct kite_topo_map m = { 6, 4, 20000 };
	uint8_t out[KITE_TOPO_REPLY_MAX];
	int n;

	(void)state;
	assert_int_equal(kite_topo_from_map(NULL, &t), -EINVAL);
	assert_int_equal(kite_topo_from_map(&m, NULL), -EINVAL);
	assert_int_equal(kite_topo_from_map(&m, &t), 0);
	assert_int_equal(t.version, KITE_TOPO_VERSION);
	assert_int_equal(t.hash, KITE_TOPO_HASH_XXH64);
	assert_int_equal(t.seed, 0);
	assert_int_equal(t.partitions, 6);
	assert_int_equal(t.workers, 4);
	assert_int_equal(t.base_port, 20000);
	n = kite_topo_write(out, sizeof(out), &t);
	assert_int_equal(n, KITE_TOPO_HDR_LEN + 6 * 4);
	assert_int_equal(kite_topo_parse(out, (size_t)n, &back), 0);
	for (uint32_t p = 0; p < 6; p++) {
		assert_int_equal(back.port[p], kite_topo_port(&m, p));
		assert_int_equal(back.worker[p], kite_topo_owner(&m, p));
	}
	/* The largest layout fits the largest reply. */
	m.partitions = KITE_MAX_PARTITIONS;
	m.workers = KITE_MAX_WORKERS;
	m.base_port = 1024;
	assert_int_equal(kite_topo_from_map(&m, &t), 0);
	assert_int_equal(kite_topo_write(out, sizeof(out), &t), KITE_TOPO_REPLY_MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_partition_invalid), cmocka_unit_test(test_map),
		cmocka_unit_test(test_key_partition),	  cmocka_unit_test(test_partition),
		cmocka_unit_test(test_topology_codec),	  cmocka_unit_test(test_map_check),
		cmocka_unit_test(test_from_map),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
