/* SPDX-License-Identifier: BSD-3-Clause */
/* Steering: mode choice from (fake) port capabilities, ownership, ports. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid),	       cmocka_unit_test(test_choose),
		cmocka_unit_test(test_names_roundtrip), cmocka_unit_test(test_map),
		cmocka_unit_test(test_key_partition),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
