/* SPDX-License-Identifier: BSD-3-Clause */
/* Steering: mode choice from (fake) port capabilities, rules and their rte_flow form. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

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
test_plan_and_flow_build(void **state)
{
	struct kite_topo_map m = { 6, 4, 11211 };
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_choose),
		cmocka_unit_test(test_names_roundtrip),
		cmocka_unit_test(test_plan_and_flow_build),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
