/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lib/client's defences against a slow or dead cache node, on a fake
 * clock: the circuit breaker (defaults; closed -> open after exactly N
 * consecutive failures, a success in between starting the count again;
 * open refusing until the period passes; half-open letting exactly
 * `probes` through; a probe's success closing it, a probe's failure
 * opening it again for a doubled period up to the cap, reset on close;
 * lost probes re-armed; late reports while open ignored; state() and the
 * counters at each step) and the token bucket (burst then rate, a clock
 * that goes back, huge gaps, rate 0, fractional rates).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kite_breaker.h"

#define T0 1700000000000ull /* a start time in milliseconds, far from 0 */

static void
assert_counters(const struct kite_breaker *b, uint64_t opens, uint64_t half_opens, uint64_t closes,
		uint64_t rejected, uint64_t probes)
{
	assert_int_equal(b->opens, opens);
	assert_int_equal(b->half_opens, half_opens);
	assert_int_equal(b->closes, closes);
	assert_int_equal(b->rejected, rejected);
	assert_int_equal(b->probes, probes);
}

static void
test_defaults(void **state)
{
	struct kite_breaker b;
	struct kite_breaker_conf c;

	(void)state;
	/* NULL and an all-zero conf both take every default. */
	kite_breaker_init(&b, NULL);
	assert_int_equal(b.conf.failures, 5);
	assert_int_equal(b.conf.open_ms, 1000);
	assert_int_equal(b.conf.probes, 1);
	assert_int_equal(b.conf.max_open_ms, 30000);
	assert_int_equal(b.period_ms, 1000);
	assert_int_equal(kite_breaker_state(&b, T0), KITE_BREAKER_CLOSED);
	assert_counters(&b, 0, 0, 0, 0, 0);
	memset(&c, 0, sizeof(c));
	kite_breaker_init(&b, &c);
	assert_int_equal(b.conf.failures, 5);
	assert_int_equal(b.conf.open_ms, 1000);
	assert_int_equal(b.conf.probes, 1);
	assert_int_equal(b.conf.max_open_ms, 30000);

	/* Given fields are kept; a cap below open_ms is raised to it (no back-off). */
	c = (struct kite_breaker_conf){
		.failures = 3, .open_ms = 500, .probes = 2, .max_open_ms = 100
	};
	kite_breaker_init(&b, &c);
	assert_int_equal(b.conf.failures, 3);
	assert_int_equal(b.conf.open_ms, 500);
	assert_int_equal(b.conf.probes, 2);
	assert_int_equal(b.conf.max_open_ms, 500);

	assert_string_equal(kite_breaker_state_name(KITE_BREAKER_CLOSED), "closed");
	assert_string_equal(kite_breaker_state_name(KITE_BREAKER_OPEN), "open");
	assert_string_equal(kite_breaker_state_name(KITE_BREAKER_HALF_OPEN), "half-open");
}

static void
test_closed_to_open(void **state)
{
	struct kite_breaker b;
	struct kite_breaker_conf c = { .failures = 3, .open_ms = 1000 };
	uint64_t t = T0;

	(void)state;
	kite_breaker_init(&b, &c);
	/* Two failures, a success: the count starts again. */
	for (int round = 0; round < 3; round++) {
		assert_true(kite_breaker_allow(&b, t));
		kite_breaker_failure(&b, t);
		assert_true(kite_breaker_allow(&b, t));
		kite_breaker_failure(&b, t);
		assert_int_equal(b.fails, 2);
		assert_int_equal(kite_breaker_state(&b, t), KITE_BREAKER_CLOSED);
		assert_true(kite_breaker_allow(&b, t));
		kite_breaker_success(&b, t);
		assert_int_equal(b.fails, 0);
		t += 10;
	}
	assert_counters(&b, 0, 0, 0, 0, 0);

	/* Exactly three in a row open it: not before the third. */
	kite_breaker_failure(&b, t);
	kite_breaker_failure(&b, t);
	assert_int_equal(kite_breaker_state(&b, t), KITE_BREAKER_CLOSED);
	assert_true(kite_breaker_allow(&b, t));
	kite_breaker_failure(&b, t);
	assert_int_equal(kite_breaker_state(&b, t), KITE_BREAKER_OPEN);
	assert_int_equal(b.until_ms, t + 1000);
	assert_counters(&b, 1, 0, 0, 0, 0);

	/* Default conf: five. */
	kite_breaker_init(&b, NULL);
	for (int i = 0; i < 4; i++)
		kite_breaker_failure(&b, t);
	assert_int_equal(kite_breaker_state(&b, t), KITE_BREAKER_CLOSED);
	kite_breaker_failure(&b, t);
	assert_int_equal(kite_breaker_state(&b, t), KITE_BREAKER_OPEN);
	assert_int_equal(b.opens, 1);
}

static void
test_open_rejects(void **state)
{
	struct kite_breaker b;
	struct kite_breaker_conf c = { .failures = 1, .open_ms = 1000 };
	uint64_t t = T0;

	(void)state;
	kite_breaker_init(&b, &c);
	kite_breaker_failure(&b, t);
	assert_int_equal(kite_breaker_state(&b, t), KITE_BREAKER_OPEN);
	/* Refused every millisecond of the period. */
	for (uint64_t dt = 0; dt < 1000; dt++) {
		assert_false(kite_breaker_allow(&b, t + dt));
		assert_int_equal(kite_breaker_state(&b, t + dt), KITE_BREAKER_OPEN);
	}
	assert_counters(&b, 1, 0, 0, 1000, 0);

	/* Late reports of requests sent before it opened change nothing. */
	kite_breaker_success(&b, t + 500);
	kite_breaker_failure(&b, t + 500);
	assert_int_equal(kite_breaker_state(&b, t + 500), KITE_BREAKER_OPEN);
	assert_int_equal(b.until_ms, t + 1000);
	assert_counters(&b, 1, 0, 0, 1000, 0);

	/* state() says half-open once the period has passed, before any allow(). */
	assert_int_equal(kite_breaker_state(&b, t + 1000), KITE_BREAKER_HALF_OPEN);
	assert_int_equal(kite_breaker_state(&b, t + 99999), KITE_BREAKER_HALF_OPEN);
	assert_int_equal(b.state, KITE_BREAKER_OPEN);
	assert_int_equal(b.half_opens, 0);
	/* ... and a success reported there is still a stale one: no probe went out. */
	kite_breaker_success(&b, t + 1000);
	assert_int_equal(b.state, KITE_BREAKER_OPEN);
	assert_int_equal(b.closes, 0);
}

static void
test_half_open_probes(void **state)
{
	struct kite_breaker b;
	struct kite_breaker_conf c = { .failures = 2, .open_ms = 1000, .probes = 3 };
	uint64_t t = T0;

	(void)state;
	kite_breaker_init(&b, &c);
	kite_breaker_failure(&b, t);
	kite_breaker_failure(&b, t);
	t += 1000;
	/* Exactly three let through, the rest refused until one reports. */
	for (int i = 0; i < 3; i++) {
		assert_true(kite_breaker_allow(&b, t));
		assert_int_equal(kite_breaker_state(&b, t), KITE_BREAKER_HALF_OPEN);
	}
	for (int i = 0; i < 10; i++)
		assert_false(kite_breaker_allow(&b, t + 10));
	assert_int_equal(kite_breaker_state(&b, t + 10), KITE_BREAKER_HALF_OPEN);
	assert_counters(&b, 1, 1, 0, 10, 3);

	/* The first probe back succeeds: closed, everything goes through. */
	kite_breaker_success(&b, t + 20);
	assert_int_equal(kite_breaker_state(&b, t + 20), KITE_BREAKER_CLOSED);
	for (int i = 0; i < 10; i++)
		assert_true(kite_breaker_allow(&b, t + 20));
	assert_counters(&b, 1, 1, 1, 10, 3);
	/* Another probe's late failure counts as a closed breaker's: one of two, no open. */
	kite_breaker_failure(&b, t + 30);
	assert_int_equal(b.fails, 1);
	assert_int_equal(kite_breaker_state(&b, t + 30), KITE_BREAKER_CLOSED);
	assert_int_equal(b.opens, 1);
}

static void
test_probe_success_closes(void **state)
{
	struct kite_breaker b;
	uint64_t t = T0;

	(void)state;
	kite_breaker_init(&b, NULL);
	for (int i = 0; i < 5; i++)
		kite_breaker_failure(&b, t);
	assert_int_equal(kite_breaker_state(&b, t), KITE_BREAKER_OPEN);
	assert_false(kite_breaker_allow(&b, t + 999));
	assert_int_equal(kite_breaker_state(&b, t + 1000), KITE_BREAKER_HALF_OPEN);
	assert_true(kite_breaker_allow(&b, t + 1000));	/* the one probe */
	assert_false(kite_breaker_allow(&b, t + 1001)); /* the rest wait for it */
	assert_int_equal(b.state, KITE_BREAKER_HALF_OPEN);
	kite_breaker_success(&b, t + 1050);
	assert_int_equal(kite_breaker_state(&b, t + 1050), KITE_BREAKER_CLOSED);
	assert_true(kite_breaker_allow(&b, t + 1050));
	assert_counters(&b, 1, 1, 1, 2, 1);
	/* Closed again from zero: four failures are not enough. */
	for (int i = 0; i < 4; i++)
		kite_breaker_failure(&b, t + 1100);
	assert_int_equal(kite_breaker_state(&b, t + 1100), KITE_BREAKER_CLOSED);
}

static void
test_backoff(void **state)
{
	struct kite_breaker b;
	struct kite_breaker_conf c = { .failures = 2, .open_ms = 1000, .max_open_ms = 5000 };
	/* Each failed probe doubles the period, up to the cap. */
	const unsigned int periods[] = { 1000, 2000, 4000, 5000, 5000 };
	uint64_t t = T0;
	uint64_t opens = 1;

	(void)state;
	kite_breaker_init(&b, &c);
	kite_breaker_failure(&b, t);
	kite_breaker_failure(&b, t);
	for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
		assert_int_equal(b.period_ms, periods[i]);
		assert_int_equal(b.until_ms, t + periods[i]);
		assert_false(kite_breaker_allow(&b, t + periods[i] - 1));
		assert_int_equal(kite_breaker_state(&b, t + periods[i] - 1), KITE_BREAKER_OPEN);
		t += periods[i];
		assert_int_equal(kite_breaker_state(&b, t), KITE_BREAKER_HALF_OPEN);
		assert_true(kite_breaker_allow(&b, t));
		t += 100; /* the probe times out */
		kite_breaker_failure(&b, t);
		opens++;
		assert_int_equal(kite_breaker_state(&b, t), KITE_BREAKER_OPEN);
		assert_int_equal(b.opens, opens);
	}
	assert_int_equal(b.period_ms, 5000);
	assert_counters(&b, 6, 5, 0, 5, 5);

	/* A probe gets through: closing resets the period to open_ms. */
	t += 5000;
	assert_true(kite_breaker_allow(&b, t));
	kite_breaker_success(&b, t);
	assert_int_equal(b.period_ms, 1000);
	assert_int_equal(b.closes, 1);
	kite_breaker_failure(&b, t);
	kite_breaker_failure(&b, t);
	assert_int_equal(kite_breaker_state(&b, t), KITE_BREAKER_OPEN);
	assert_int_equal(b.until_ms, t + 1000);
	assert_int_equal(kite_breaker_state(&b, t + 1000), KITE_BREAKER_HALF_OPEN);

	/* max_open_ms == open_ms: no back-off at all. */
	c = (struct kite_breaker_conf){ .failures = 1, .open_ms = 700, .max_open_ms = 700 };
	kite_breaker_init(&b, &c);
	kite_breaker_failure(&b, t);
	for (int i = 0; i < 4; i++) {
		t += 700;
		assert_true(kite_breaker_allow(&b, t));
		kite_breaker_failure(&b, t);
		assert_int_equal(b.until_ms, t + 700);
	}
}

static void
test_lost_probe(void **state)
{
	struct kite_breaker b;
	struct kite_breaker_conf c = { .failures = 1, .open_ms = 1000, .probes = 1 };
	uint64_t t = T0;

	(void)state;
	kite_breaker_init(&b, &c);
	kite_breaker_failure(&b, t);
	t += 1000;
	assert_true(kite_breaker_allow(&b, t));
	/* Never reported: refused for one period after it went out, then another probe. */
	assert_false(kite_breaker_allow(&b, t + 999));
	assert_true(kite_breaker_allow(&b, t + 1000));
	assert_false(kite_breaker_allow(&b, t + 1001));
	assert_int_equal(kite_breaker_state(&b, t + 1001), KITE_BREAKER_HALF_OPEN);
	assert_counters(&b, 1, 1, 0, 2, 2);
	kite_breaker_success(&b, t + 1100);
	assert_int_equal(kite_breaker_state(&b, t + 1100), KITE_BREAKER_CLOSED);
}

static void
test_clock_edges(void **state)
{
	struct kite_breaker b;
	struct kite_breaker_conf c = { .failures = 1, .open_ms = 1000 };

	(void)state;
	/* Opened near the end of the clock: the period saturates, it stays open. */
	kite_breaker_init(&b, &c);
	kite_breaker_failure(&b, UINT64_MAX - 10);
	assert_int_equal(b.until_ms, UINT64_MAX);
	assert_false(kite_breaker_allow(&b, UINT64_MAX - 1));
	assert_int_equal(kite_breaker_state(&b, UINT64_MAX - 1), KITE_BREAKER_OPEN);
	assert_true(kite_breaker_allow(&b, UINT64_MAX));

	/* A clock that goes back keeps it open longer, never shorter. */
	kite_breaker_init(&b, &c);
	kite_breaker_failure(&b, T0);
	assert_false(kite_breaker_allow(&b, T0 - 5000));
	assert_int_equal(kite_breaker_state(&b, T0 - 5000), KITE_BREAKER_OPEN);
	assert_true(kite_breaker_allow(&b, T0 + 1000));
}

static void
test_bucket_burst_then_rate(void **state)
{
	struct kite_bucket k;
	uint64_t n = 0;

	(void)state;
	kite_bucket_init(&k, 100, 10, T0);
	assert_true(kite_bucket_tokens(&k, T0) == 10);
	/* The burst at once, then nothing in the same millisecond. */
	for (int i = 0; i < 10; i++)
		assert_true(kite_bucket_take(&k, T0));
	assert_false(kite_bucket_take(&k, T0));
	assert_int_equal(k.taken, 10);
	assert_int_equal(k.refused, 1);
	/* One token every 10 ms at 100/s. */
	assert_false(kite_bucket_take(&k, T0 + 9));
	assert_true(kite_bucket_take(&k, T0 + 10));
	assert_false(kite_bucket_take(&k, T0 + 10));

	/* 10 s, asking as fast as it gives, every millisecond: 10 + 100 x 10. */
	kite_bucket_init(&k, 100, 10, T0);
	for (uint64_t t = T0; t <= T0 + 10000; t++) {
		while (kite_bucket_take(&k, t))
			n++;
	}
	assert_true(n >= 1000);
	assert_true(n <= 1010);
	assert_int_equal(k.taken, n);
	assert_int_equal(k.refused, 10001);

	/* Idle for a while: the bank fills to the burst, never beyond. */
	assert_true(kite_bucket_tokens(&k, T0 + 10000 + 60000) == 10);
}

static void
test_bucket_clock(void **state)
{
	struct kite_bucket k;
	double before;

	(void)state;
	kite_bucket_init(&k, 100, 10, T0);
	for (int i = 0; i < 10; i++)
		assert_true(kite_bucket_take(&k, T0));
	/* Backwards: no refill, nothing negative, nothing taken. */
	assert_true(kite_bucket_tokens(&k, T0 - 1000) == 0);
	assert_false(kite_bucket_take(&k, T0 - 1000));
	assert_true(k.tokens >= 0);
	assert_int_equal(k.last_ms, T0);
	/* Coming forward again, only the time after T0 is credited (not from T0 - 1000). */
	assert_false(kite_bucket_take(&k, T0 + 9));
	assert_true(kite_bucket_take(&k, T0 + 10));
	assert_false(kite_bucket_take(&k, T0 + 10));
	before = k.tokens;
	assert_true(before >= 0 && before < 1);

	/* A huge gap fills it to the burst and no more. */
	assert_true(kite_bucket_tokens(&k, UINT64_MAX) == 10);
	for (int i = 0; i < 10; i++)
		assert_true(kite_bucket_take(&k, UINT64_MAX));
	assert_false(kite_bucket_take(&k, UINT64_MAX));
	/* ... and from 0 after that: the clock went back, so no refill. */
	assert_false(kite_bucket_take(&k, 0));
	assert_true(kite_bucket_tokens(&k, 0) >= 0);
}

static void
test_bucket_rate_zero(void **state)
{
	struct kite_bucket k;

	(void)state;
	/* Rate 0: nothing passes, not even a burst, however long. */
	kite_bucket_init(&k, 0, 10, T0);
	assert_true(kite_bucket_tokens(&k, T0) == 0);
	assert_false(kite_bucket_take(&k, T0));
	assert_false(kite_bucket_take(&k, T0 + 3600 * 1000));
	assert_false(kite_bucket_take(&k, UINT64_MAX));
	assert_int_equal(k.taken, 0);
	assert_int_equal(k.refused, 3);
	/* Negative and NaN rates are rate 0; a burst below 1 (or NaN) is 1. */
	kite_bucket_init(&k, -5, 10, T0);
	assert_true(k.rate == 0);
	assert_false(kite_bucket_take(&k, T0 + 100000));
	kite_bucket_init(&k, NAN, NAN, T0);
	assert_true(k.rate == 0);
	assert_true(k.burst == 1);
	kite_bucket_init(&k, 1000, 0.2, T0);
	assert_true(k.burst == 1);
	assert_true(kite_bucket_take(&k, T0));
	assert_false(kite_bucket_take(&k, T0));
	assert_true(kite_bucket_take(&k, T0 + 1));
	/* An infinite rate: always full, never NaN, even with no time passed. */
	kite_bucket_init(&k, INFINITY, 2, T0);
	assert_true(kite_bucket_take(&k, T0));
	assert_true(kite_bucket_take(&k, T0));
	assert_false(kite_bucket_take(&k, T0));
	assert_true(kite_bucket_tokens(&k, T0) == 0);
	assert_true(kite_bucket_take(&k, T0 + 1));
	assert_true(kite_bucket_tokens(&k, T0 + 1) == 2 - 1);
}

static void
test_bucket_fractional(void **state)
{
	struct kite_bucket k;
	uint64_t n = 0;

	(void)state;
	/* 0.5/s, burst 1: one now, the next two seconds later. */
	kite_bucket_init(&k, 0.5, 1, T0);
	assert_true(kite_bucket_take(&k, T0));
	assert_false(kite_bucket_take(&k, T0 + 1000));
	assert_true(kite_bucket_tokens(&k, T0 + 1000) > 0.5 - 1e-9);
	assert_true(kite_bucket_tokens(&k, T0 + 1000) < 0.5 + 1e-9);
	assert_false(kite_bucket_take(&k, T0 + 1999));
	assert_true(kite_bucket_take(&k, T0 + 2000));
	assert_false(kite_bucket_take(&k, T0 + 2000));

	/* A minute asked every 10 ms: 1 + 60 x 0.5, give or take the rounding at the end. */
	kite_bucket_init(&k, 0.5, 1, T0);
	for (uint64_t t = T0; t <= T0 + 60000; t += 10)
		n += kite_bucket_take(&k, t);
	assert_true(n >= 30);
	assert_true(n <= 31);

	/* 2.5/s, burst 3 over 4 s, asked every millisecond: 3 + 10. */
	kite_bucket_init(&k, 2.5, 3, T0);
	n = 0;
	for (uint64_t t = T0; t <= T0 + 4000; t++)
		n += kite_bucket_take(&k, t);
	assert_true(n >= 12);
	assert_true(n <= 13);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_closed_to_open),
		cmocka_unit_test(test_open_rejects),
		cmocka_unit_test(test_half_open_probes),
		cmocka_unit_test(test_probe_success_closes),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_lost_probe),
		cmocka_unit_test(test_clock_edges),
		cmocka_unit_test(test_bucket_burst_then_rate),
		cmocka_unit_test(test_bucket_clock),
		cmocka_unit_test(test_bucket_rate_zero),
		cmocka_unit_test(test_bucket_fractional),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
