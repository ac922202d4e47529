/* SPDX-License-Identifier: BSD-3-Clause */
/* kited's NUMA placement: pools and partitions with their workers, and where memory really is. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <numa.h>
#include <numaif.h>

#include "kite_test.h"
#include "kited_numa.h"

static void
test_placement(void **state)
{
	static struct kited_placement pl;
	struct kite_topo_map m = { 8, 4, 11211 };
	const int one[4] = { 0, 0, 0, 0 };
	const int two[4] = { 0, 1, 0, 1 };
	const int unknown[4] = { -1, -1, -1, -1 };

	(void)state;
	assert_int_equal(kited_numa_place(NULL, one, 0, &pl), -EINVAL);
	struct kite_topo_map big = { 2000, 4, 11211 };
	assert_int_equal(kited_numa_place(&big, one, 0, &pl), -EINVAL);

	assert_int_equal(kited_numa_place(&m, one, 0, &pl), 0);
	assert_int_equal(pl.n_pools, 1);
	assert_int_equal(pl.remote, 0);

	/* Two sockets: a pool each, partitions with their owners, remote workers counted. */
	assert_int_equal(kited_numa_place(&m, two, 0, &pl), 0);
	assert_int_equal(pl.n_pools, 2);
	assert_int_equal(pl.pools[0], 0);
	assert_int_equal(pl.pools[1], 1);
	assert_int_equal(pl.worker_pool[1], 1);
	assert_int_equal(pl.worker_pool[2], 0);
	assert_int_equal(pl.remote, 2);
	for (int p = 0; p < 8; p++)
		assert_int_equal(pl.part_socket[p], two[p % 4]);

	/* SOCKET_ID_ANY (-1) from a VM or a vdev: treated as socket 0, nothing remote. */
	assert_int_equal(kited_numa_place(&m, unknown, -1, &pl), 0);
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
	assert_int_equal(kited_numa_mem_node(NULL, 4096), -EINVAL);
	assert_int_equal(kited_numa_mem_node(&node, 0), -EINVAL);
	if (numa_available() < 0) {
		assert_int_equal(kited_numa_mem_node(&node, sizeof(node)), -ENOSYS);
		return;
	}
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m != MAP_FAILED);
	/* Never touched: no page is placed, so nothing can be said. */
	assert_int_equal(kited_numa_mem_node(m, len), -ENOENT);
	memset(m, 1, len);
	node = kited_numa_mem_node(m, len);
	assert_true(node >= 0 && node <= numa_max_node());
	/* A one-byte range at the very end is one page of the same node. */
	assert_int_equal(kited_numa_mem_node(m + len - 1, 1), node);
	munmap(m, len);

	if (numa_max_node() >= 1) {
		/* Two nodes: memory bound to each is reported as such, a range over both as -EXDEV.
		 */
		const long page = sysconf(_SC_PAGESIZE);
		unsigned long mask0 = 1, mask1 = 2;

		m = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert_true(m != MAP_FAILED);
		assert_int_equal(mbind(m, (size_t)page, MPOL_BIND, &mask0, 8, 0), 0);
		assert_int_equal(mbind(m + page, (size_t)page, MPOL_BIND, &mask1, 8, 0), 0);
		memset(m, 1, 2 * (size_t)page);
		assert_int_equal(kited_numa_mem_node(m, (size_t)page), 0);
		assert_int_equal(kited_numa_mem_node(m + page, (size_t)page), 1);
		assert_int_equal(kited_numa_mem_node(m, 2 * (size_t)page), -EXDEV);
		munmap(m, 2 * (size_t)page);
	} else {
		print_message("one NUMA node here: the two-node case is not exercised\n");
	}
}

/* The start-up check: a partition's memory compared with its plan. */
static void
test_check(void **state)
{
	static struct kited_placement pl;
	struct kite_topo_map m = { 2, 1, 11211 };
	struct kite_store_params sp;
	struct kite_store *parts[2];
	struct kited_numa_report rep;
	const int sock[1] = { 0 };

	(void)state;
	assert_int_equal(kited_numa_place(&m, sock, 0, &pl), 0);
	memset(&sp, 0, sizeof(sp));
	sp.name = "numa_p0";
	sp.socket_id = 0;
	sp.mem_bytes = 1 << 20;
	parts[0] = kite_store_create(&sp);
	sp.name = "numa_p1";
	parts[1] = kite_store_create(&sp);
	assert_non_null(parts[0]);
	assert_non_null(parts[1]);
	kited_numa_check(parts, 2, &pl, &m, &rep);
	if (rep.no_numa) {
		assert_int_equal(rep.ok + rep.remote + rep.unknown, 0);
	} else {
		/* Zeroed at creation, so placed: on node 0, the plan's. */
		assert_int_equal(rep.ok, 2);
		assert_int_equal(rep.remote, 0);
		/* A plan that says another node is reported as remote. */
		pl.part_socket[1] = numa_max_node() + 1;
		kited_numa_check(parts, 2, &pl, &m, &rep);
		assert_int_equal(rep.ok, 1);
		assert_int_equal(rep.remote, 1);
		/* No socket known: not checked. */
		pl.part_socket[1] = -1;
		kited_numa_check(parts, 2, &pl, &m, &rep);
		assert_int_equal(rep.ok, 1);
		assert_int_equal(rep.unknown, 1);
	}
	kite_store_free(parts[0]);
	kite_store_free(parts[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_placement),
		cmocka_unit_test(test_mem_node),
		cmocka_unit_test(test_check),
	};
	if (kite_test_eal_init("numa") != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
