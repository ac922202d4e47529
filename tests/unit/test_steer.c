/* SPDX-License-Identifier: BSD-3-Clause */
/* Steering: mode choice from (fake) port capabilities, ownership, ports. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <numa.h>
#include <numaif.h>

#include "kite_proto.h"
#include "kite_steer.h"

static void
test_invalid(void **state)
{
	struct kite_steer_caps caps = { 4, true, true };

	(void)state;
	assert_int_equal(kite_steer_choose(&caps, 0, KITE_STEER_AUTO), -EINVAL);
	assert_int_equal(kite_steer_choose(NULL, 2, KITE_STEER_FLOW), -ENOTSUP);
	assert_int_equal(kite_steer_mode_parse(NULL), -EINVAL);
	assert_int_equal(kite_steer_mode_parse("fastest"), -EINVAL);
	assert_string_equal(kite_steer_mode_name((enum kite_steer_mode)42), "invalid");
}

static void
test_choose(void **state)
{
	struct kite_steer_caps all = { 8, true, true }, rss = { 8, false, true },
			       none = { 8, false, false }, few = { 1, true, true };

	(void)state;
	assert_int_equal(kite_steer_choose(&all, 4, KITE_STEER_AUTO), KITE_STEER_FLOW);
	assert_int_equal(kite_steer_choose(&rss, 4, KITE_STEER_AUTO), KITE_STEER_RSS);
	assert_int_equal(kite_steer_choose(&none, 4, KITE_STEER_AUTO), KITE_STEER_HANDOFF);
	assert_int_equal(kite_steer_choose(&all, 1, KITE_STEER_AUTO), KITE_STEER_HANDOFF);
	/* Too few queues for the workers: rules cannot place every partition. */
	assert_int_equal(kite_steer_choose(&few, 4, KITE_STEER_AUTO), KITE_STEER_HANDOFF);
	assert_int_equal(kite_steer_choose(&few, 4, KITE_STEER_FLOW), -ENOTSUP);
	assert_int_equal(kite_steer_choose(&none, 4, KITE_STEER_RSS), -ENOTSUP);
	assert_int_equal(kite_steer_choose(&none, 4, KITE_STEER_HANDOFF), KITE_STEER_HANDOFF);
}

static void
test_names_roundtrip(void **state)
{
	(void)state;
	for (int m = KITE_STEER_AUTO; m <= KITE_STEER_HANDOFF; m++)
		assert_int_equal(kite_steer_mode_parse(kite_steer_mode_name(m)), m);
}

static void
test_map(void **state)
{
	struct kite_steer_map m = { 8, 3, 11211 };
	unsigned int per[3] = { 0 };

	(void)state;
	for (uint32_t p = 0; p < m.partitions; p++) {
		assert_true(kite_steer_owner(&m, p) < 3);
		per[kite_steer_owner(&m, p)]++;
		assert_int_equal(kite_steer_port(&m, p), 11211 + p);
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
	assert_int_equal(kite_proto_key_partition("foo", 3, 1), 0);
	assert_int_equal(kite_proto_key_partition("foo", 3, 0), 0);
	for (int i = 0; i < 16000; i++) {
		int n = snprintf(key, sizeof(key), "key:%d", i);
		uint32_t p = kite_proto_key_partition(key, (uint16_t)n, 16);
		assert_true(p < 16);
		assert_int_equal(p, kite_proto_key_partition(key, (uint16_t)n, 16));
		hist[p]++;
	}
	for (int p = 0; p < 16; p++)
		assert_true(hist[p] > 800 && hist[p] < 1200);
}

static void
test_plan_and_flow_build(void **state)
{
	struct kite_steer_map m = { 6, 4, 11211 };
	struct kite_steer_rule rules[8];
	struct kite_steer_flow f;

	(void)state;
	assert_int_equal(kite_steer_plan(NULL, 1, rules, 8), -EINVAL);
	assert_int_equal(kite_steer_plan(&m, 1, rules, 5), -ENOSPC);
	assert_int_equal(kite_steer_plan(&m, 0xc6120002, rules, 8), 6);
	for (int p = 0; p < 6; p++) {
		assert_int_equal(rules[p].udp_port, 11211 + p);
		assert_int_equal(rules[p].queue, p % 4);
		assert_int_equal(rules[p].ip, 0xc6120002);
	}

	kite_steer_flow_build(&rules[5], &f);
	assert_int_equal(f.attr.ingress, 1);
	assert_int_equal(f.attr.egress, 0);
	assert_int_equal(f.pattern[0].type, RTE_FLOW_ITEM_TYPE_ETH);
	assert_null(f.pattern[0].spec);
	assert_int_equal(f.pattern[1].type, RTE_FLOW_ITEM_TYPE_IPV4);
	const struct rte_flow_item_ipv4 *ip = f.pattern[1].spec;
	const struct rte_flow_item_ipv4 *ipm = f.pattern[1].mask;
	const uint8_t want_ip[4] = { 198, 18, 0, 2 };
	assert_memory_equal(&ip->hdr.dst_addr, want_ip, 4); /* network order */
	assert_int_equal(ipm->hdr.dst_addr, UINT32_MAX);
	assert_int_equal(ipm->hdr.src_addr, 0);
	assert_int_equal(f.pattern[2].type, RTE_FLOW_ITEM_TYPE_UDP);
	const struct rte_flow_item_udp *udp = f.pattern[2].spec;
	const struct rte_flow_item_udp *udpm = f.pattern[2].mask;
	const uint8_t want_port[2] = { (11216 >> 8) & 0xff, 11216 & 0xff };
	assert_memory_equal(&udp->hdr.dst_port, want_port, 2);
	assert_int_equal(udpm->hdr.dst_port, UINT16_MAX);
	assert_int_equal(udpm->hdr.src_port, 0);
	assert_int_equal(f.pattern[3].type, RTE_FLOW_ITEM_TYPE_END);
	assert_int_equal(f.actions[0].type, RTE_FLOW_ACTION_TYPE_QUEUE);
	assert_int_equal(((const struct rte_flow_action_queue *)f.actions[0].conf)->index, 1);
	assert_int_equal(f.actions[1].type, RTE_FLOW_ACTION_TYPE_END);
}

static void
test_placement(void **state)
{
	static struct kite_steer_placement pl;
	struct kite_steer_map m = { 8, 4, 11211 };
	const int one[4] = { 0, 0, 0, 0 };
	const int two[4] = { 0, 1, 0, 1 };
	const int unknown[4] = { -1, -1, -1, -1 };

	(void)state;
	assert_int_equal(kite_steer_place(NULL, one, 0, &pl), -EINVAL);
	struct kite_steer_map big = { 2000, 4, 11211 };
	assert_int_equal(kite_steer_place(&big, one, 0, &pl), -EINVAL);

	assert_int_equal(kite_steer_place(&m, one, 0, &pl), 0);
	assert_int_equal(pl.n_pools, 1);
	assert_int_equal(pl.remote, 0);

	/* Two sockets: a pool each, partitions with their owners, remote workers counted. */
	assert_int_equal(kite_steer_place(&m, two, 0, &pl), 0);
	assert_int_equal(pl.n_pools, 2);
	assert_int_equal(pl.pools[0], 0);
	assert_int_equal(pl.pools[1], 1);
	assert_int_equal(pl.worker_pool[1], 1);
	assert_int_equal(pl.worker_pool[2], 0);
	assert_int_equal(pl.remote, 2);
	for (int p = 0; p < 8; p++)
		assert_int_equal(pl.part_socket[p], two[p % 4]);

	/* SOCKET_ID_ANY (-1) from a VM or a vdev: treated as socket 0, nothing remote. */
	assert_int_equal(kite_steer_place(&m, unknown, -1, &pl), 0);
	assert_int_equal(pl.n_pools, 1);
	assert_int_equal(pl.pools[0], 0);
	assert_int_equal(pl.remote, 0);
}

/* Where memory lives, as the kernel reports it (move_pages via libnuma). */
static void
test_mem_node(void **state)
{
	const size_t len = 1 << 20;
	uint8_t *m;
	int node;

	(void)state;
	assert_int_equal(kite_steer_mem_node(NULL, 4096), -EINVAL);
	assert_int_equal(kite_steer_mem_node(&node, 0), -EINVAL);
	if (numa_available() < 0) {
		assert_int_equal(kite_steer_mem_node(&node, sizeof(node)), -ENOSYS);
		return;
	}
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	/* Never touched: no page is placed, so nothing can be said. */
	assert_int_equal(kite_steer_mem_node(m, len), -ENOENT);
	memset(m, 1, len);
	node = kite_steer_mem_node(m, len);
	assert_true(node >= 0 && node <= numa_max_node());
	/* A one-byte range at the very end is one page of the same node. */
	assert_int_equal(kite_steer_mem_node(m + len - 1, 1), node);
	munmap(m, len);

	if (numa_max_node() >= 1) {
		/* Two nodes: memory bound to each is reported as such, a range over both as -EXDEV. */
		const long page = sysconf(_SC_PAGESIZE);
		unsigned long mask0 = 1, mask1 = 2;

		m = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert_true(m != MAP_FAILED);
		assert_int_equal(mbind(m, (size_t)page, MPOL_BIND, &mask0, 8, 0), 0);
		assert_int_equal(mbind(m + page, (size_t)page, MPOL_BIND, &mask1, 8, 0), 0);
		memset(m, 1, 2 * (size_t)page);
		assert_int_equal(kite_steer_mem_node(m, (size_t)page), 0);
		assert_int_equal(kite_steer_mem_node(m + page, (size_t)page), 1);
		assert_int_equal(kite_steer_mem_node(m, 2 * (size_t)page), -EXDEV);
		munmap(m, 2 * (size_t)page);
	} else {
		print_message("one NUMA node here: the two-node case is not exercised\n");
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid),	       cmocka_unit_test(test_choose),
		cmocka_unit_test(test_names_roundtrip), cmocka_unit_test(test_map),
		cmocka_unit_test(test_key_partition),
		cmocka_unit_test(test_plan_and_flow_build),
		cmocka_unit_test(test_placement),
		cmocka_unit_test(test_mem_node),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
