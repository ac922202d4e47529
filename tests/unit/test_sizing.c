/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * kited's memory plan (app/kited/sizing.c): the parts it adds up are what
 * DPDK really allocates for them, so the figure kited logs at start and the
 * formula in docs/operations.rst hold.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "kite_store.h"
#include "kite_test.h"
#include "kited.h"
#include "kited_sizing.h"

static void
test_mbuf_room(void **state)
{
	struct kited_config c;

	(void)state;
	kited_config_defaults(&c);
	assert_int_equal(kited_mbuf_room(&c), RTE_MBUF_DEFAULT_BUF_SIZE);
	assert_false(kited_rx_pool_needed(&c));
	c.mtu = 9000;
	assert_int_equal(kited_mbuf_room(&c), RTE_PKTMBUF_HEADROOM + 9000 + 14 + 4);
	c.mtu = 1500;
	c.rx_mbuf_size = 32768;
	assert_true(kited_rx_pool_needed(&c));
	assert_int_equal(kited_rx_mbufs(&c), 1 * (1024 + 4 * 32) + 1024);
}

/* The plan's items, index and packet buffers against what creating them takes. */
static void
test_plan_matches_allocations(void **state)
{
	const size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct kite_store *parts[8];
	struct kited_memory m;
	struct kited_config c;
	struct rte_mempool *mp;
	char plan[200];

	(void)state;
	kited_config_defaults(&c);
	c.memory = 32u << 20;
	c.mbufs = 4095;
	c.partitions = 8;
	kited_memory_plan(&c, 1, page, &m);
	assert_int_equal(m.items, c.memory);
	assert_int_equal(m.total, m.items + m.index + m.mbufs + m.workers + m.eal);
	kited_memory_describe(&m, plan, sizeof(plan));
	assert_non_null(strstr(plan, "items 32"));

	uint64_t before = kited_memory_in_use();
	for (unsigned int i = 0; i < 8; i++) {
		struct kite_store_params p = { .socket_id = 0, .mem_bytes = c.memory / 8 };
		char name[16];

		snprintf(name, sizeof(name), "plan%u", i);
		p.name = name;
		parts[i] = kite_store_create(&p);
		assert_non_null(parts[i]);
	}
	mp = rte_pktmbuf_pool_create("plan_pool", c.mbufs, 256,
				     RTE_ALIGN_CEIL(sizeof(struct handoff_meta), RTE_MBUF_PRIV_ALIGN),
				     kited_mbuf_room(&c), 0);
	assert_non_null(mp);
	double used = (double)(kited_memory_in_use() - before);
	double planned = (double)(m.items + m.index + m.mbufs);
	print_message("planned %.0f, allocated %.0f bytes\n", planned, used);
	assert_true(planned >= 0.98 * used && planned <= 1.03 * used);
	rte_mempool_free(mp);
	for (unsigned int i = 0; i < 8; i++)
		kite_store_free(parts[i]);

	/* Two sockets: two pools; large RX mbufs add their own. */
	struct kited_memory two;
	kited_memory_plan(&c, 2, page, &two);
	assert_int_equal(two.mbufs, 2 * m.mbufs);
	c.rx_mbuf_size = 32768;
	kited_memory_plan(&c, 1, page, &two);
	assert_true(two.mbufs > m.mbufs + kited_rx_mbufs(&c) * 32768ull);
	/* With hugepages objects pack tighter than in 4 KiB pages. */
	c.rx_mbuf_size = 0;
	kited_memory_plan(&c, 1, 0, &two);
	assert_true(two.mbufs < m.mbufs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mbuf_room),
		cmocka_unit_test(test_plan_matches_allocations),
	};

	if (kite_test_eal_init("sizing") != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
