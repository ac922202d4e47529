/* SPDX-License-Identifier: BSD-3-Clause */
#include <stddef.h>
#include <stdint.h>

#include "kite_breaker.h"

/* now + ms without wrapping: a clock near its end keeps the breaker open, never closes it early. */
static uint64_t
after(uint64_t now_ms, unsigned int ms)
{
	return now_ms > UINT64_MAX - ms ? UINT64_MAX : now_ms + ms;
}

static unsigned int
or_default(unsigned int v, unsigned int def)
{
	return v != 0 ? v : def;
}

void
kite_breaker_init(struct kite_breaker *b, const struct kite_breaker_conf *c)
{
	struct kite_breaker_conf conf = { 0 };

	if (c != NULL)
		conf = *c;
	conf.failures = or_default(conf.failures, KITE_BREAKER_DEF_FAILURES);
	conf.open_ms = or_default(conf.open_ms, KITE_BREAKER_DEF_OPEN_MS);
	conf.probes = or_default(conf.probes, KITE_BREAKER_DEF_PROBES);
	conf.max_open_ms = or_default(conf.max_open_ms, KITE_BREAKER_DEF_MAX_OPEN_MS);
	/* A cap below the first period would shorten it; it means "no back-off". */
	if (conf.max_open_ms < conf.open_ms)
		conf.max_open_ms = conf.open_ms;

	*b = (struct kite_breaker){
		.conf = conf,
		.state = KITE_BREAKER_CLOSED,
		.period_ms = conf.open_ms,
	};
}

static void
trip(struct kite_breaker *b, uint64_t now_ms)
{
	b->state = KITE_BREAKER_OPEN;
	b->fails = 0;
	b->probes_left = 0;
	b->until_ms = after(now_ms, b->period_ms);
	b->opens++;
}

bool
kite_breaker_allow(struct kite_breaker *b, uint64_t now_ms)
{
	switch (b->state) {
	case KITE_BREAKER_CLOSED:
		return true;
	case KITE_BREAKER_OPEN:
		if (now_ms < b->until_ms)
			break;
		b->state = KITE_BREAKER_HALF_OPEN;
		b->probes_left = b->conf.probes;
		b->half_opens++;
		break;
	case KITE_BREAKER_HALF_OPEN:
		/*
		 * Every probe out and none reported for a whole period: the
		 * caller lost them (a timeout is reported as a failure, so a
		 * silent probe is a caller that never reported). Without
		 * this the node would stay shut out for good.
		 */
		if (b->probes_left == 0 && now_ms >= b->until_ms)
			b->probes_left = b->conf.probes;
		break;
	}
	if (b->state == KITE_BREAKER_HALF_OPEN && b->probes_left > 0) {
		b->probes_left--;
		b->until_ms = after(now_ms, b->period_ms);
		b->probes++;
		return true;
	}
	b->rejected++;
	return false;
}

void
kite_breaker_success(struct kite_breaker *b, uint64_t now_ms)
{
	(void)now_ms; /* a success needs no time; the argument keeps the three calls alike */
	switch (b->state) {
	case KITE_BREAKER_CLOSED:
		b->fails = 0;
		break;
	case KITE_BREAKER_HALF_OPEN:
		b->state = KITE_BREAKER_CLOSED;
		b->fails = 0;
		b->probes_left = 0;
		b->period_ms = b->conf.open_ms;
		b->closes++;
		break;
	case KITE_BREAKER_OPEN:
		/* Sent before it opened: says nothing of the node now. */
		break;
	}
}

void
kite_breaker_failure(struct kite_breaker *b, uint64_t now_ms)
{
	uint64_t doubled;

	switch (b->state) {
	case KITE_BREAKER_CLOSED:
		if (++b->fails >= b->conf.failures)
			trip(b, now_ms);
		break;
	case KITE_BREAKER_HALF_OPEN:
		/* Still down: wait twice as long before the next probe, up to the cap. */
		doubled = (uint64_t)b->period_ms * 2;
		b->period_ms =
			doubled > b->conf.max_open_ms ? b->conf.max_open_ms : (unsigned int)doubled;
		trip(b, now_ms);
		break;
	case KITE_BREAKER_OPEN:
		/* Sent before it opened; the breaker already knows. */
		break;
	}
}

enum kite_breaker_state
kite_breaker_state(const struct kite_breaker *b, uint64_t now_ms)
{
	if (b->state == KITE_BREAKER_OPEN && now_ms >= b->until_ms)
		return KITE_BREAKER_HALF_OPEN;
	return b->state;
}

const char *
kite_breaker_state_name(enum kite_breaker_state s)
{
	switch (s) {
	case KITE_BREAKER_CLOSED:
		return "closed";
	case KITE_BREAKER_OPEN:
		return "open";
	case KITE_BREAKER_HALF_OPEN:
		return "half-open";
	}
	return "unknown";
}

/* How far under a whole token rounding may leave the bank and still take it. */
#define TOKEN_SLACK 1e-9

void
kite_bucket_init(struct kite_bucket *b, double rate_per_s, double burst, uint64_t now_ms)
{
	/* Written as !(x >= y) so that NaN takes the safe value too. */
	if (!(burst >= 1))
		burst = 1;
	if (!(rate_per_s > 0))
		rate_per_s = 0;
	*b = (struct kite_bucket){
		.rate = rate_per_s,
		.burst = burst,
		/* Rate 0 means the fallback is off: not even the first burst passes. */
		.tokens = rate_per_s > 0 ? burst : 0,
		.last_ms = now_ms,
	};
}

/* What the bucket holds at now_ms; a clock that went back refills nothing. */
static double
refilled(const struct kite_bucket *b, uint64_t now_ms)
{
	double t;

	/* Also keeps 0 x an infinite rate (NaN) out when no time passed. */
	if (now_ms <= b->last_ms || b->rate == 0)
		return b->tokens;
	/* Any gap, however long, only fills the bucket: the sum is capped below. */
	t = b->tokens + (double)(now_ms - b->last_ms) * b->rate / 1000.0;
	return t < b->burst ? t : b->burst;
}

bool
kite_bucket_take(struct kite_bucket *b, uint64_t now_ms)
{
	b->tokens = refilled(b, now_ms);
	/*
	 * last_ms only moves forward: were it set back with the clock, the
	 * time between would be credited again when the clock came forward.
	 */
	if (now_ms > b->last_ms)
		b->last_ms = now_ms;
	/*
	 * Many small refills add up to a hair under a whole token (ten
	 * refills of 0.1 make 0.99999...); such a token counts as whole, and
	 * the hair it lacks is not carried as a debt.
	 */
	if (b->tokens >= 1 - TOKEN_SLACK) {
		b->tokens = b->tokens > 1 ? b->tokens - 1 : 0;
		b->taken++;
		return true;
	}
	b->refused++;
	return false;
}

double
kite_bucket_tokens(const struct kite_bucket *b, uint64_t now_ms)
{
	return refilled(b, now_ms);
}
