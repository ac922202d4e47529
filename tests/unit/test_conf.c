/* SPDX-License-Identifier: BSD-3-Clause */
/* lib/conf: typed option tables, every type, ranges, messages, round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "kite_conf.h"

struct o {
	char name[8];
	uint32_t n32;
	uint64_t n64;
	uint64_t size;
	double x;
	uint32_t ip;
	bool on;
};

#define OPT(key, type, field, def, min, max)                                                       \
	{ key, KITE_CONF_##type, offsetof(struct o, field), sizeof(((struct o *)0)->field), def,   \
	  min, max, "help" }

static const struct kite_conf_opt t[] = {
	OPT("name", STR, name, "abc", 0, 0),    OPT("n32", U32, n32, "7", 1, 100),
	OPT("n64", U64, n64, "0x10", 0, 1e15),  OPT("size", SIZE, size, "1M", 1024, 1099511627776.0),
	OPT("x", NUM, x, "0.5", 0, 2),	        OPT("ip", IPV4, ip, "198.18.0.2", 0, 0),
	OPT("on", BOOL, on, "yes", 0, 0),
};
#define N (sizeof(t) / sizeof(t[0]))

static char err[200];

static int
set(struct o *v, const char *key, const char *val)
{
	return kite_conf_set(kite_conf_find(t, N, key), v, val, "--", err, sizeof(err));
}

static void
test_invalid(void **state)
{
	struct o v;

	(void)state;
	kite_conf_defaults(t, N, &v, sizeof(v));
	assert_null(kite_conf_find(t, N, "nope"));
	assert_int_equal(set(&v, "name", "12345678"), -EINVAL); /* 8 bytes: no room for NUL */
	assert_non_null(strstr(err, "--name"));
	assert_int_equal(set(&v, "n32", "0"), -EINVAL);
	assert_int_equal(set(&v, "n32", "101"), -EINVAL);
	assert_non_null(strstr(err, "outside 1..100"));
	assert_int_equal(set(&v, "n32", "-1"), -EINVAL);
	assert_int_equal(set(&v, "n32", "5x"), -EINVAL);
	assert_int_equal(set(&v, "n64", "99999999999999999999999"), -EINVAL);
	assert_int_equal(set(&v, "size", "1Q"), -EINVAL);
	assert_int_equal(set(&v, "size", "1"), -EINVAL); /* under 1024 */
	assert_int_equal(set(&v, "size", "2T"), -EINVAL);
	assert_int_equal(set(&v, "size", "99999999999999999T"), -EINVAL);
	assert_int_equal(set(&v, "x", "2.5"), -EINVAL);
	assert_int_equal(set(&v, "x", "nan"), -EINVAL);
	assert_int_equal(set(&v, "x", ""), -EINVAL);
	assert_int_equal(set(&v, "ip", "1.2.3"), -EINVAL);
	assert_int_equal(set(&v, "on", "maybe"), -EINVAL);
	/* Nothing changed by the failures. */
	assert_string_equal(v.name, "abc");
	assert_int_equal(v.n32, 7);
	assert_int_equal(v.size, 1 << 20);
	assert_true(v.on);
}

static void
test_values_and_round_trip(void **state)
{
	struct o v, w;
	char buf[64];

	(void)state;
	kite_conf_defaults(t, N, &v, sizeof(v));
	assert_int_equal(v.n64, 16);
	assert_int_equal(v.ip, 0xc6120002u);
	assert_int_equal(set(&v, "size", "512MiB"), 0);
	assert_int_equal(v.size, 512ull << 20);
	assert_int_equal(set(&v, "size", "4kb"), 0);
	assert_int_equal(v.size, 4096);
	assert_int_equal(set(&v, "size", "1T"), 0);
	assert_int_equal(set(&v, "x", "1e-3"), 0);
	assert_int_equal(set(&v, "on", "off"), 0);
	assert_false(v.on);
	assert_int_equal(set(&v, "name", "kite"), 0);
	/* format -> set gives the same value back, every type. */
	memset(&w, 0, sizeof(w));
	for (size_t i = 0; i < N; i++) {
		kite_conf_format(&t[i], &v, buf, sizeof(buf));
		assert_int_equal(kite_conf_set(&t[i], &w, buf, "", err, sizeof(err)), 0);
	}
	assert_memory_equal(&v, &w, sizeof(v));
	kite_conf_format(&t[5], &v, buf, sizeof(buf));
	assert_string_equal(buf, "198.18.0.2");
	assert_string_equal(kite_conf_type_name(KITE_CONF_SIZE), "bytes");
}

/* Choice lists and flag sets (kited's steer and ablate options). */
static void
test_choices(void **state)
{
	(void)state;
	assert_int_equal(kite_conf_choice(NULL, "a"), -1);
	assert_int_equal(kite_conf_choice("a,bb,c", NULL), -1);
	assert_int_equal(kite_conf_choice("a,bb,c", "a"), 0);
	assert_int_equal(kite_conf_choice("a,bb,c", "bb"), 1);
	assert_int_equal(kite_conf_choice("a,bb,c", "c"), 2);
	assert_int_equal(kite_conf_choice("a,bb,c", "b"), -1);
	assert_int_equal(kite_conf_choice("a,bb,c", ""), -1);
	assert_int_equal(kite_conf_choice("a,bb,c", "a,bb"), -1);

	assert_int_equal(kite_conf_flags(NULL, "a"), -1);
	assert_int_equal(kite_conf_flags("a,bb,c", NULL), -1);
	assert_int_equal(kite_conf_flags("a,bb,c", ""), 0);
	assert_int_equal(kite_conf_flags("a,bb,c", "none"), 0);
	assert_int_equal(kite_conf_flags("a,bb,c", "c,a"), 5);
	assert_int_equal(kite_conf_flags("a,bb,c", "bb,bb"), 2);
	assert_int_equal(kite_conf_flags("a,bb,c", "a, c"), -1);
	assert_int_equal(kite_conf_flags("a,bb,c", "a,"), -1);
	assert_int_equal(kite_conf_flags("a,bb,c", ",a"), -1);
	assert_int_equal(kite_conf_flags("a,bb,c", "a,,c"), -1);
	assert_int_equal(kite_conf_flags("a,bb,c", "none,a"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_values_and_round_trip),
		cmocka_unit_test(test_choices),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
