/* SPDX-License-Identifier: BSD-3-Clause */
/* lib/port: resolving port specs and starting ports, on net_null vdevs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "kite_port.h"
#include "kite_test.h"

static struct rte_mempool *pool;

static void
test_resolve(void **state)
{
	char err[200], big[RTE_ETH_NAME_MAX_LEN + 8];
	uint16_t p, q;

	(void)state;
	/* A vdev spec is hot-plugged, then found by its name and by its id. */
	assert_int_equal(kite_port_resolve("net_null0,size=64", &p, err, sizeof(err)), 0);
	assert_int_equal(kite_port_resolve("net_null0", &q, err, sizeof(err)), 0);
	assert_int_equal(p, q);
	snprintf(big, sizeof(big), "%u", p);
	assert_int_equal(kite_port_resolve(big, &q, err, sizeof(err)), 0);
	assert_int_equal(p, q);
	/* A net_ name alone is created with default arguments. */
	assert_int_equal(kite_port_resolve("net_null1", &q, err, sizeof(err)), 0);
	assert_int_not_equal(p, q);

	assert_int_equal(kite_port_resolve("77", &q, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "does not exist"));
	assert_int_equal(kite_port_resolve("eth9", &q, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "no DPDK port 'eth9'"));
	assert_true(kite_port_resolve("net_nosuchpmd0,x=1", &q, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "cannot create device"));
	assert_non_null(strstr(err, "the driver refused it"));
	/* af_packet over an interface that is not here says so, not "Operation not permitted". */
	assert_true(kite_port_resolve("net_af_packet9,iface=nosuchif9", &q, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "no interface 'nosuchif9'"));
	assert_true(kite_port_resolve("net_af_packet8", &q, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "af_packet needs iface=NAME"));
	assert_int_equal(kite_port_resolve("", &q, err, sizeof(err)), -EINVAL);
	assert_int_equal(kite_port_resolve(",size=64", &q, err, sizeof(err)), -EINVAL);
	memset(big, 'n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(kite_port_resolve(big, &q, err, sizeof(err)), -EINVAL);
}

static void
test_start_two_queues(void **state)
{
	struct rte_mempool *pools[2] = { pool, pool };
	int sockets[2] = { -1, -1 };
	struct kite_port_conf pc = {
		.queues = 2, .mtu = 1500, .rx_desc = 100, .tx_desc = 100,
		.rx_csum = true, .rss = true, .fast_free = true,
		.rx_pools = pools, .sockets = sockets,
	};
	struct kite_port_info pi;
	struct rte_mbuf *m[8];
	char err[200];
	uint16_t p;
	int n;

	(void)state;
	assert_int_equal(kite_port_resolve("net_null2,size=64", &p, err, sizeof(err)), 0);
	assert_int_equal(kite_port_start(p, &pc, &pi, err, sizeof(err)), 0);
	assert_string_equal(pi.driver, "net_null");
	assert_int_equal(pi.mtu, 1500);
	assert_int_equal(pi.mtu_error, 0);
	assert_true(pi.rx_desc >= 1 && pi.tx_desc >= 1);
	assert_true(pi.max_rx_queues >= 2);
	/* Both queues poll, from the pool they were given. */
	for (uint16_t q = 0; q < 2; q++) {
		n = rte_eth_rx_burst(p, q, m, 8);
		assert_true(n > 0);
		assert_ptr_equal(m[0]->pool, pool);
		rte_pktmbuf_free_bulk(m, (unsigned int)n);
	}
	assert_int_equal(rte_eth_dev_stop(p), 0);
	assert_int_equal(rte_eth_dev_close(p), 0);
}

static void
test_start_refused(void **state)
{
	struct rte_mempool *pools[1] = { pool };
	struct kite_port_conf pc = {
		.queues = 1, .mtu = 1500, .rx_desc = 64, .tx_desc = 64, .rx_pools = pools,
	};
	struct kite_port_info pi;
	char err[200];
	uint16_t p;

	(void)state;
	assert_int_equal(kite_port_resolve("net_null3", &p, err, sizeof(err)), 0);
	/* More queue pairs than the driver has: refused before configuring. */
	pc.queues = RTE_MAX_QUEUES_PER_PORT + 1;
	assert_int_equal(kite_port_start(p, &pc, &pi, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "queues"));
	pc.queues = 0;
	assert_int_equal(kite_port_start(p, &pc, &pi, err, sizeof(err)), -EINVAL);
	/* A port id that does not exist. */
	pc.queues = 1;
	assert_true(kite_port_start(RTE_MAX_ETHPORTS - 1, &pc, &pi, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "device info"));
	/* The same port then starts as asked. */
	assert_int_equal(kite_port_start(p, &pc, &pi, err, sizeof(err)), 0);
	assert_int_equal(rte_eth_dev_stop(p), 0);
	assert_int_equal(rte_eth_dev_close(p), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_start_two_queues),
		cmocka_unit_test(test_start_refused),
	};

	if (kite_test_eal_init("port") != 0)
		return 1;
	pool = rte_pktmbuf_pool_create("tport", 4095, 64, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
	if (pool == NULL)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
