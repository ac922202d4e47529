/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_BREAKER_H
#define KITE_BREAKER_H

/**
 * @file
 * Defences of libkite's cache patterns against a slow or dead cache node
 * (internal, not installed): a circuit breaker per node and a token bucket
 * that bounds how often the caller may go straight to the database while a
 * breaker is open.
 *
 * Both are plain caller-allocated structs with no locks, no allocation and
 * no clock of their own: every call takes the time as `now_ms` (a
 * monotonic clock in milliseconds), so the caller decides the locking and
 * tests drive them with a fake clock.
 *
 * Circuit breaker states:
 *
 *   CLOSED    --`failures` consecutive failures-->  OPEN
 *   OPEN      --the open period has passed------->  HALF_OPEN (on the next allow())
 *   HALF_OPEN --a probe succeeds----------------->  CLOSED
 *   HALF_OPEN --a probe fails-------------------->  OPEN, for twice the last period
 *
 * The open period starts at `open_ms` and doubles with every failed probe,
 * up to `max_open_ms`, so a node that stays dead is probed less and less
 * often; closing the breaker resets it to `open_ms`.
 *
 * The breaker holds no request ids: while half-open, any report counts as
 * a probe's outcome, a late answer to a request let through before it
 * opened included. While open, reports are ignored (they come from such
 * requests).
 */

#include <stdbool.h>
#include <stdint.h>

#define KITE_BREAKER_DEF_FAILURES    5
#define KITE_BREAKER_DEF_OPEN_MS     1000
#define KITE_BREAKER_DEF_PROBES	     1
#define KITE_BREAKER_DEF_MAX_OPEN_MS 30000

/** A breaker's settings; a zero field takes its default (KITE_BREAKER_DEF_*). */
struct kite_breaker_conf {
	unsigned int failures; /**< consecutive failures (timeouts) that open it, default 5 */
	unsigned int open_ms;  /**< how long it stays open before half-open, default 1000 */
	unsigned int probes;   /**< requests let through while half-open, default 1 */
	/**
	 * Cap of the open period, which doubles with every failed probe;
	 * default 30000. A value at or below `open_ms` turns the back-off off.
	 */
	unsigned int max_open_ms;
};

/** Where a breaker stands. */
enum kite_breaker_state {
	KITE_BREAKER_CLOSED = 0, /**< requests go to the node */
	KITE_BREAKER_OPEN,	 /**< requests are refused until the open period passes */
	KITE_BREAKER_HALF_OPEN,	 /**< a few probes go to the node; the first outcome decides */
};

/**
 * A circuit breaker for one cache node. Fields are for reading (stats,
 * tests); change them only through the functions below.
 */
struct kite_breaker {
	struct kite_breaker_conf conf; /**< the settings, defaults filled in */
	/**
	 * The state as last changed by a call. OPEN whose open period has
	 * passed is reported as HALF_OPEN by kite_breaker_state() but only
	 * becomes HALF_OPEN here on the next kite_breaker_allow().
	 */
	enum kite_breaker_state state;
	unsigned int fails;	  /**< closed: consecutive failures so far */
	unsigned int probes_left; /**< half-open: probes still to let through */
	unsigned int period_ms;	  /**< the current open period: open_ms, doubled per failed probe */
	/**
	 * Open: when it turns half-open. Half-open: one period after the
	 * last probe was let through; if by then every probe is out and none
	 * reported, they count as lost and allow() lets `probes` more
	 * through (so a caller that forgets to report cannot shut the node
	 * out for good).
	 */
	uint64_t until_ms;
	/* Counters, from kite_breaker_init(). */
	uint64_t opens;	     /**< entries into OPEN (from closed and from a failed probe) */
	uint64_t half_opens; /**< entries into HALF_OPEN */
	uint64_t closes;     /**< HALF_OPEN -> CLOSED */
	uint64_t rejected;   /**< kite_breaker_allow() calls that returned false */
	uint64_t probes;     /**< requests let through while half-open */
};

/**
 * Set a breaker up closed, with zeroed counters. `c` may be NULL (all
 * defaults); a zero field of `c` takes its default.
 */
void kite_breaker_init(struct kite_breaker *b, const struct kite_breaker_conf *c);

/**
 * May a request go to the node now? Closed: true. Open: false until the
 * open period has passed; then the breaker turns half-open and lets
 * `probes` requests through (true), and refuses the rest (false) until one
 * of them reports through kite_breaker_success() or kite_breaker_failure().
 * Probes still unreported one open period after the last of them was let
 * through are taken as lost, and `probes` more are let through.
 */
bool kite_breaker_allow(struct kite_breaker *b, uint64_t now_ms);

/**
 * Report a request that got its answer. Closed: resets the count of
 * consecutive failures. Half-open: closes the breaker and resets the open
 * period to `open_ms`. Open: ignored (the request was let through before
 * the breaker opened and says nothing of the node now).
 */
void kite_breaker_success(struct kite_breaker *b, uint64_t now_ms);

/**
 * Report a request that failed (timed out). Closed: counts; the
 * `failures`-th consecutive one opens the breaker for `open_ms`. Half-open:
 * the probe failed, so the period doubles (up to `max_open_ms`) and the
 * breaker opens again for it. Open: ignored, as for success.
 */
void kite_breaker_failure(struct kite_breaker *b, uint64_t now_ms);

/**
 * The breaker's state at `now_ms`: HALF_OPEN as soon as the open period
 * has passed, even before kite_breaker_allow() is called. Changes nothing.
 */
enum kite_breaker_state kite_breaker_state(const struct kite_breaker *b, uint64_t now_ms);

/** Name of a state ("closed", "open", "half-open"), for stats and logs. */
const char *kite_breaker_state_name(enum kite_breaker_state s);

/**
 * A token bucket: `rate` tokens a second, at most `burst` banked. The
 * fallback to the database while a breaker is open takes one per call.
 * Tokens are counted as a double, so fractional rates (0.5/s: one call
 * every two seconds) work.
 */
struct kite_bucket {
	double rate;	  /**< tokens a second; 0: nothing ever passes */
	double burst;	  /**< most tokens banked, at least 1 */
	double tokens;	  /**< banked at `last_ms`, 0 <= tokens <= burst */
	uint64_t last_ms; /**< the latest time seen; never moves back */
	uint64_t taken;	  /**< kite_bucket_take() calls that got a token */
	uint64_t refused; /**< kite_bucket_take() calls that did not */
};

/**
 * Set a bucket up full (`burst` tokens) at `now_ms`. A `burst` below 1 (or
 * NaN) is taken as 1. A `rate_per_s` of 0 (or below, or NaN) means nothing
 * ever passes: the bucket then starts empty and never refills, so the
 * fallback is off.
 */
void kite_bucket_init(struct kite_bucket *b, double rate_per_s, double burst, uint64_t now_ms);

/**
 * Refill by the time passed since the latest call (capped at `burst`) and
 * take one token: true if there was one (within 1e-9, the rounding of
 * many small refills). A `now_ms` before the latest time seen refills
 * nothing (the clock went back; the time is not credited twice when it
 * comes forward again).
 */
bool kite_bucket_take(struct kite_bucket *b, uint64_t now_ms);

/** Tokens the bucket would hold at `now_ms` (refilled, capped). Changes nothing. */
double kite_bucket_tokens(const struct kite_bucket *b, uint64_t now_ms);

#endif /* KITE_BREAKER_H */
