/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libkite's cache patterns (kite/cache.h, docs/patterns.rst).
 *
 * One kite_cache_get() of a key:
 *   validation hook -> Bloom filter -> L1 -> single-flight (one caller
 *   per key in this process does the rest, the others wait for its
 *   result) -> the node's circuit breaker -> meta get "v f t c N<lease>"
 *   -> hit: the value (or "does not exist"); W: this process loads and
 *   stores with the item's CAS and I (a load overtaken by an
 *   invalidation lands stale); Z: another client loads: a stale value is
 *   served, a placeholder is waited for; a dead cache: the loader
 *   directly, within the fallback rate.
 *
 * Locks: `lock` guards the flights, the L1, the breakers, the bucket,
 * the loaders and the client registry; it is never held across I/O or a
 * loader call. Statistics are atomic counters.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <xxhash.h>

#include "kite_breaker.h"
#include "kite_cache_priv.h"
#include "kite_proto.h"

/* Defaults (kite/cache.h). */
#define DEF_TTL_S         300u
#define DEF_JITTER_PCT    10u
#define DEF_NEG_TTL_S     60u
#define DEF_LEASE_S       10u
#define DEF_WAIT_MS       2000u
#define DEF_POLL_MS       5u
#define DEF_L1_TTL_MS     1000u
#define DEF_FALLBACK_RATE 100.0
#define DEF_FALLBACK_BURST 10.0
/* Breakers are kept for this many members of the map; the rest go without. */
#define MAX_NODES 256
#define L1_WAYS 4

/* ---- statistics --------------------------------------------------------- */

#define STAT_ADD(c, f, n) atomic_fetch_add_explicit(&(c)->st.f, (n), memory_order_relaxed)
#define STAT_INC(c, f) STAT_ADD(c, f, 1)

struct astats {
	_Atomic uint64_t gets, hits, misses, loads, load_errors, coalesced, token_waits,
		wait_timeouts, stale_served, negative_hits, negative_stores, bloom_rejections,
		invalid_keys, l1_hits, early_refreshes, cache_errors, breaker_opens,
		fallback_loads, fallback_refused, writes, invalidations;
};

/* ---- in-process single-flight ------------------------------------------- */

struct flight {
	struct flight *next;
	uint64_t hash;
	void *key;
	size_t keylen;
	unsigned int refs; /* the leader and its waiters */
	bool done;
	int rc;
	struct kite_value v; /* the leader's result, copied out by each waiter */
	pthread_cond_t cond;
};

/* ---- the L1 ------------------------------------------------------------- */

struct l1_entry {
	uint64_t hash;
	void *key; /* NULL: empty */
	size_t keylen;
	void *data;
	size_t len;
	uint32_t flags;
	uint64_t expires; /* clock ms */
	uint64_t used;    /* clock ms of the last hit (replacement) */
};

/* ---- read-through loaders ----------------------------------------------- */

struct loader {
	struct loader *next;
	char *prefix;
	size_t plen;
	kite_loader_fn load;
	void *arg;
};

/* ---- write-behind ---------------------------------------------------------- */

/* Writer calls per write before it is given up. */
#define WB_TRIES 3
#define DEF_WB_QUEUE 1024u
#define DEF_WB_DELAY_MS 100u

struct wb_entry {
	struct wb_entry *next, *prev; /* the queue, oldest first */
	struct wb_entry *hnext;       /* the key's hash chain */
	uint64_t hash;
	void *key;
	size_t keylen;
	void *val; /* NULL with del */
	size_t len;
	uint32_t flags;
	bool del;
	uint64_t due;     /* clock ms: written by then (first queued + wb_delay_ms) */
	unsigned int tries;
};

/* ---- per-thread clients ----------------------------------------------------- */

struct tclient {
	struct tclient *next;
	struct kite_client *k;
	uint64_t gen; /* fork generation it was opened in */
};

struct kite_cache {
	struct kite_cache_options o;
	struct kite_cache_backend be; /* .exec NULL: per-thread clients */
	char *seeds;
	unsigned char secret[32], vkey[32];
	pthread_mutex_t lock;
	pthread_key_t tls;
	bool tls_ok;
	struct tclient *clients; /* every client opened, to close them at the end */
	uint64_t gen;            /* bumped in a forked child */
	struct flight *flights;
	struct l1_entry *l1;
	unsigned int l1_sets;
	uint64_t l1_n;
	struct kite_breaker br[MAX_NODES];
	bool br_open[MAX_NODES];
	struct kite_bucket bucket;
	struct loader *loaders;
	struct astats st;
	_Atomic uint64_t load_us; /* mean load time (an exponential average), for XFetch */
	/* Write-behind: the queue (under lock), its index, the writer thread. */
	struct wb_entry *wb_head, *wb_tail;
	struct wb_entry **wb_index;
	unsigned int wb_buckets;
	unsigned int wb_n, wb_reserved; /* queued, and slots taken by calls under way */
	unsigned int wb_busy;           /* entries being written now (0 or 1) */
	bool wb_running, wb_stop, wb_flush;
	pthread_t wb_thread;
	pthread_cond_t wb_cond; /* the writer thread's: work or stop */
	pthread_cond_t wb_idle; /* kite_cache_flush()'s: the queue is empty */
	_Atomic uint64_t wb_queued, wb_coalesced, wb_written, wb_retries, wb_failed, wb_dropped;
	struct kite_cache *next_cache; /* the list the fork handler walks */
};

/* Every open cache, for the fork handler. */
static pthread_mutex_t caches_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kite_cache *caches;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* ---- small helpers -------------------------------------------------------------- */

static uint64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t
mono_ms(void)
{
	return mono_us() / 1000u;
}

static uint64_t
now_ms(const struct kite_cache *c)
{
	return c->o.clock_ms != NULL ? c->o.clock_ms(c->o.clock_arg) : mono_ms();
}

/* A per-thread xorshift (TTL jitter), seeded from the clock and the thread. */
static uint64_t
rnd(void)
{
	static __thread uint64_t s;

	if (s == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)&s ^ (uint64_t)ts.tv_sec;
		s |= 1;
	}
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return s;
}

/*
 * XFetch: reload now, ttl_s seconds before expiry? With delta the mean
 * load time, yes when ttl <= delta * beta * -ln(U), U uniform in (0, 1]:
 * rarely while the item is young, surely by its last delta.
 */
static bool
xfetch_due(struct kite_cache *c, int64_t ttl_s)
{
	const double delta_s = (double)atomic_load_explicit(&c->load_us, memory_order_relaxed) / 1e6;
	double u;

	if (c->o.early_beta <= 0 || ttl_s < 0 || delta_s <= 0)
		return false;
	/* Most hits are far from expiry: -ln(U) over 40 has a chance under 1e-17. */
	if ((double)ttl_s > delta_s * c->o.early_beta * 40.0)
		return false;
	u = (double)((rnd() >> 11) + 1) / 9007199254740992.0; /* (0, 1] */
	return (double)ttl_s <= delta_s * c->o.early_beta * -log(u);
}

static void
sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000u, (long)(ms % 1000u) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static uint64_t
key_hash(const void *key, size_t keylen)
{
	return XXH64(key, keylen, 0x6b697465u);
}

/* The TTL a loaded value is stored with: the loader's or ttl_s, spread by the jitter. */
static uint32_t
ttl_of(const struct kite_cache *c, uint32_t ttl)
{
	uint64_t spread;

	if (ttl == 0)
		ttl = c->o.ttl_s;
	if (c->o.jitter_pct == KITE_CACHE_OFF || c->o.jitter_pct == 0 || ttl < 2)
		return ttl;
	spread = (uint64_t)ttl * c->o.jitter_pct / 100u;
	if (spread == 0)
		return ttl;
	/* Uniform in [ttl - spread, ttl + spread], never below 1 s. */
	int64_t t = (int64_t)ttl - (int64_t)spread + (int64_t)(rnd() % (2 * spread + 1));
	return t < 1 ? 1u : (uint32_t)t;
}

static int
copy_value(struct kite_value *out, const void *data, size_t len, uint32_t flags)
{
	out->data = NULL;
	out->len = len;
	out->flags = flags & KITE_CACHE_F_APP;
	out->ttl_s = 0;
	if (len > 0) {
		out->data = malloc(len);
		if (out->data == NULL)
			return KITE_NO_MEMORY;
		memcpy(out->data, data, len);
	}
	return KITE_OK;
}

/* ---- the node: a client per thread ------------------------------------------- */

static struct kite_client *
thread_client(struct kite_cache *c, int *rc)
{
	struct tclient *t = c->tls_ok ? pthread_getspecific(c->tls) : NULL;
	struct kite_options ko;

	if (t != NULL && t->gen == c->gen) {
		*rc = KITE_OK;
		return t->k;
	}
	/* First use in this thread (or in a forked child): a client of its own. */
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		*rc = KITE_NO_MEMORY;
		return NULL;
	}
	ko = c->o.client;
	ko.seeds = c->seeds;
	ko.tenant_secret = c->o.client.tenant_secret != NULL ? c->secret : NULL;
	ko.value_key = c->o.client.value_key != NULL ? c->vkey : NULL;
	*rc = kite_open(&t->k, &ko);
	if (*rc != KITE_OK) {
		free(t);
		return NULL;
	}
	pthread_mutex_lock(&c->lock);
	t->gen = c->gen;
	t->next = c->clients;
	c->clients = t;
	pthread_mutex_unlock(&c->lock);
	pthread_setspecific(c->tls, t);
	return t->k;
}

static int
node_exec(struct kite_cache *c, struct kite_op *op)
{
	struct kite_client *k;
	int rc;

	if (c->be.exec != NULL)
		return c->be.exec(c->be.arg, op);
	k = thread_client(c, &rc);
	if (k == NULL) {
		op->rc = rc;
		return rc;
	}
	kite_exec(k, op, 1);
	return op->rc;
}

static int
node_owner(struct kite_cache *c, const void *key, size_t keylen)
{
	struct kite_client *k;
	int rc;

	if (c->be.exec != NULL)
		return c->be.owner != NULL ? c->be.owner(c->be.arg, key, keylen) : 0;
	k = thread_client(c, &rc);
	return k != NULL ? kite_key_owner(k, key, keylen) : -1;
}

/* A cache failure (the node, not the key): what trips a breaker. */
static bool
node_failed(int rc)
{
	return rc == KITE_TIMEOUT || rc == KITE_NO_MAP || rc == KITE_SYSTEM ||
	       rc == KITE_TMPFAIL || rc == KITE_REDIRECTS;
}

/* ---- breakers ---------------------------------------------------------------- */

/* May a request for this node go out? (no node known: yes) */
static bool
breaker_allow(struct kite_cache *c, int node)
{
	bool ok;

	if (node < 0 || node >= MAX_NODES)
		return true;
	pthread_mutex_lock(&c->lock);
	ok = kite_breaker_allow(&c->br[node], now_ms(c));
	pthread_mutex_unlock(&c->lock);
	return ok;
}

static void
breaker_report(struct kite_cache *c, int node, bool failed)
{
	bool open;

	if (node < 0 || node >= MAX_NODES)
		return;
	pthread_mutex_lock(&c->lock);
	if (failed)
		kite_breaker_failure(&c->br[node], now_ms(c));
	else
		kite_breaker_success(&c->br[node], now_ms(c));
	open = c->br[node].state != KITE_BREAKER_CLOSED;
	if (open && !c->br_open[node])
		STAT_INC(c, breaker_opens);
	c->br_open[node] = open;
	pthread_mutex_unlock(&c->lock);
}

/* The cache cannot be used: the loader directly, within the fallback rate; nothing stored. */
static int
fallback(struct kite_cache *c, const void *key, size_t keylen, kite_loader_fn load, void *arg,
	 struct kite_value *out)
{
	bool ok;
	int rc;

	pthread_mutex_lock(&c->lock);
	ok = kite_bucket_take(&c->bucket, now_ms(c));
	pthread_mutex_unlock(&c->lock);
	if (!ok) {
		STAT_INC(c, fallback_refused);
		return KITE_RATE_LIMITED;
	}
	STAT_INC(c, fallback_loads);
	STAT_INC(c, loads);
	memset(out, 0, sizeof(*out));
	rc = load(arg, key, keylen, out);
	if (rc != KITE_OK && rc != KITE_NOT_FOUND)
		STAT_INC(c, load_errors);
	return rc;
}

/* ---- L1 ------------------------------------------------------------------------ */

static void
l1_clear_entry(struct l1_entry *e)
{
	free(e->key);
	free(e->data);
	memset(e, 0, sizeof(*e));
}

/* A fresh L1 copy of the key, or KITE_NOT_FOUND. */
static int
l1_get(struct kite_cache *c, uint64_t h, const void *key, size_t keylen, struct kite_value *out)
{
	int rc = KITE_NOT_FOUND;
	uint64_t now;

	if (c->l1 == NULL)
		return KITE_NOT_FOUND;
	now = now_ms(c);
	pthread_mutex_lock(&c->lock);
	struct l1_entry *set = &c->l1[(h & (c->l1_sets - 1)) * L1_WAYS];
	for (unsigned int w = 0; w < L1_WAYS; w++) {
		struct l1_entry *e = &set[w];

		if (e->key == NULL || e->hash != h || e->keylen != keylen ||
		    memcmp(e->key, key, keylen) != 0)
			continue;
		if (now >= e->expires) {
			l1_clear_entry(e);
			c->l1_n--;
			break;
		}
		e->used = now;
		rc = copy_value(out, e->data, e->len, e->flags);
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* Keep a copy for at most l1_ttl_ms, and never past the item's own expiry (ttl_s; -1: none). */
static void
l1_put(struct kite_cache *c, uint64_t h, const void *key, size_t keylen, const void *data,
       size_t len, uint32_t flags, int64_t ttl_s)
{
	struct l1_entry *victim = NULL;
	uint64_t now, life = c->o.l1_ttl_ms;
	void *k, *d = NULL;

	if (c->l1 == NULL || ttl_s == 0)
		return;
	if (ttl_s > 0 && (uint64_t)ttl_s * 1000u < life)
		life = (uint64_t)ttl_s * 1000u;
	k = malloc(keylen);
	if (k == NULL || (len > 0 && (d = malloc(len)) == NULL)) {
		free(k);
		return;
	}
	memcpy(k, key, keylen);
	if (len > 0)
		memcpy(d, data, len);
	now = now_ms(c);
	pthread_mutex_lock(&c->lock);
	struct l1_entry *set = &c->l1[(h & (c->l1_sets - 1)) * L1_WAYS];
	for (unsigned int w = 0; w < L1_WAYS && victim == NULL; w++)
		if (set[w].key != NULL && set[w].hash == h && set[w].keylen == keylen &&
		    memcmp(set[w].key, key, keylen) == 0)
			victim = &set[w];
	for (unsigned int w = 0; w < L1_WAYS && victim == NULL; w++)
		if (set[w].key == NULL || now >= set[w].expires)
			victim = &set[w];
	if (victim == NULL) {
		/* The least recently used of the set. */
		victim = &set[0];
		for (unsigned int w = 1; w < L1_WAYS; w++)
			if (set[w].used < victim->used)
				victim = &set[w];
	}
	if (victim->key != NULL)
		l1_clear_entry(victim);
	else
		c->l1_n++;
	victim->hash = h;
	victim->key = k;
	victim->keylen = keylen;
	victim->data = d;
	victim->len = len;
	victim->flags = flags;
	victim->expires = now + life;
	victim->used = now;
	pthread_mutex_unlock(&c->lock);
}

static void
l1_drop(struct kite_cache *c, uint64_t h, const void *key, size_t keylen)
{
	if (c->l1 == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	struct l1_entry *set = &c->l1[(h & (c->l1_sets - 1)) * L1_WAYS];
	for (unsigned int w = 0; w < L1_WAYS; w++)
		if (set[w].key != NULL && set[w].hash == h && set[w].keylen == keylen &&
		    memcmp(set[w].key, key, keylen) == 0) {
			l1_clear_entry(&set[w]);
			c->l1_n--;
		}
	pthread_mutex_unlock(&c->lock);
}

/* ---- talking to the node ---------------------------------------------------------- */

/* Store what a winner loaded (or "does not exist"), with the item's CAS and I. */
static void
store_loaded(struct kite_cache *c, const void *key, size_t keylen, uint64_t cas, bool mark_stale,
	     int rc, const struct kite_value *v)
{
	char meta[96];
	struct kite_op op;
	uint32_t ttl, flags;

	if (rc == KITE_NOT_FOUND) {
		if (c->o.negative_ttl_s == KITE_CACHE_OFF)
			return;
		ttl = c->o.negative_ttl_s;
		flags = KITE_CACHE_F_NEGATIVE;
	} else {
		ttl = ttl_of(c, v->ttl_s);
		flags = (v->flags & KITE_CACHE_F_APP) | KITE_CACHE_F_VALUE;
	}
	/*
	 * C<cas> I: if the item was invalidated since this client won it
	 * (md I bumps the CAS), the value is stored marked stale, so the
	 * next reader reloads it rather than trusting an old load.
	 */
	if (cas != 0)
		snprintf(meta, sizeof(meta), "T%u F%u C%llu%s", ttl, flags, (unsigned long long)cas,
			 mark_stale ? " I" : "");
	else
		snprintf(meta, sizeof(meta), "T%u F%u", ttl, flags);
	memset(&op, 0, sizeof(op));
	op.type = KITE_META_SET;
	op.key = key;
	op.keylen = keylen;
	op.meta = meta;
	if (rc == KITE_OK) {
		op.value = v->data;
		op.vallen = v->len;
	}
	node_exec(c, &op);
	if (rc == KITE_NOT_FOUND && op.rc == KITE_OK)
		STAT_INC(c, negative_stores);
	kite_op_clear(&op);
}

/* Load as the winner; store; hand the result to *out. */
static int
load_and_store(struct kite_cache *c, const void *key, size_t keylen, kite_loader_fn load,
	       void *arg, uint64_t cas, bool store, bool mark_stale, struct kite_value *out)
{
	const uint64_t t0 = mono_us();
	uint64_t took, avg;
	int rc;

	memset(out, 0, sizeof(*out));
	STAT_INC(c, loads);
	rc = load(arg, key, keylen, out);
	/* The mean load time, for XFetch: an exponential average over about 8 loads. */
	took = mono_us() - t0;
	avg = atomic_load_explicit(&c->load_us, memory_order_relaxed);
	atomic_store_explicit(&c->load_us, avg == 0 ? took : avg - avg / 8 + took / 8,
			      memory_order_relaxed);
	if (rc != KITE_OK && rc != KITE_NOT_FOUND) {
		STAT_INC(c, load_errors);
		return rc;
	}
	if (store)
		store_loaded(c, key, keylen, cas, mark_stale, rc, out);
	if (rc == KITE_NOT_FOUND) {
		free(out->data);
		memset(out, 0, sizeof(*out));
	}
	out->flags &= KITE_CACHE_F_APP;
	return rc;
}

/*
 * The key through the node (the single-flight leader does this): a hit,
 * a win (load and store), or someone else's win (stale value, or wait).
 */
static int
fetch(struct kite_cache *c, uint64_t h, const void *key, size_t keylen, kite_loader_fn load,
      void *arg, struct kite_value *out)
{
	const uint64_t deadline = mono_ms() + c->o.wait_ms;
	bool waited = false;
	char meta[64];
	int node = node_owner(c, key, keylen);

	if (c->o.early_s != 0)
		snprintf(meta, sizeof(meta), "v f t c N%u R%u", c->o.lease_s, c->o.early_s);
	else
		snprintf(meta, sizeof(meta), "v f t c N%u", c->o.lease_s);
	for (;;) {
		struct kite_op op;
		int rc;

		if (!breaker_allow(c, node))
			return fallback(c, key, keylen, load, arg, out);
		memset(&op, 0, sizeof(op));
		op.type = KITE_META_GET;
		op.key = key;
		op.keylen = keylen;
		op.meta = meta;
		rc = node_exec(c, &op);
		if (rc != KITE_OK) {
			/* With N a miss is a win: anything else is the node's trouble. */
			STAT_INC(c, cache_errors);
			breaker_report(c, node, node_failed(rc));
			kite_op_clear(&op);
			return fallback(c, key, keylen, load, arg, out);
		}
		breaker_report(c, node, false);
		/*
		 * A value, or the placeholder of another client's win (empty,
		 * none of our flag bits, its token out)? A value another
		 * client stored without our bits (a plain memcached set) is a
		 * value: only an empty item under a token is waited for.
		 */
		const bool valued =
			(op.result_flags & (KITE_CACHE_F_VALUE | KITE_CACHE_F_NEGATIVE)) != 0 ||
			op.result_len > 0;
		const bool real = valued || !(op.meta_ret & KITE_META_BUSY);
		if (op.meta_ret & KITE_META_WIN) {
			/* This client recomputes: a miss, a stale item, or ahead of expiry (R). */
			if (valued && !(op.meta_ret & KITE_META_STALE))
				STAT_INC(c, early_refreshes);
			else
				STAT_INC(c, misses);
			rc = load_and_store(c, key, keylen, load, arg, op.result_cas, true, true,
					    out);
			kite_op_clear(&op);
			return rc;
		}
		if (real && (!(op.meta_ret & (KITE_META_BUSY | KITE_META_STALE)) ||
			     !c->o.no_stale)) {
			/* A hit, or a stale value while another client reloads it. */
			if (!(op.meta_ret & (KITE_META_STALE | KITE_META_BUSY)) &&
			    xfetch_due(c, op.ttl)) {
				/*
				 * XFetch: this hit reloads ahead of expiry. Stored with the
				 * item's CAS (no I): if another client refreshed it first,
				 * the store is refused and its value stays.
				 */
				STAT_INC(c, early_refreshes);
				rc = load_and_store(c, key, keylen, load, arg, op.result_cas, true,
						    false, out);
				kite_op_clear(&op);
				return rc;
			}
			if (op.meta_ret & KITE_META_STALE)
				STAT_INC(c, stale_served);
			else
				STAT_INC(c, hits);
			if (op.result_flags & KITE_CACHE_F_NEGATIVE) {
				STAT_INC(c, negative_hits);
				rc = KITE_NOT_FOUND;
				memset(out, 0, sizeof(*out));
			} else {
				rc = copy_value(out, op.result, op.result_len, op.result_flags);
			}
			if (rc == KITE_OK && (c->o.l1_all || (op.meta_ret & KITE_META_HOT)) &&
			    !(op.meta_ret & KITE_META_STALE))
				l1_put(c, h, key, keylen, op.result, op.result_len,
				       op.result_flags & KITE_CACHE_F_APP, op.ttl);
			kite_op_clear(&op);
			return rc;
		}
		kite_op_clear(&op);
		/* Another client holds the win token of a placeholder: wait for its value. */
		if (!waited)
			STAT_INC(c, token_waits);
		waited = true;
		if (mono_ms() >= deadline) {
			/* The winner is slow or gone: load, and leave the storing to it. */
			STAT_INC(c, wait_timeouts);
			return load_and_store(c, key, keylen, load, arg, 0, false, false, out);
		}
		sleep_ms(c->o.poll_ms);
	}
}

/* ---- single-flight ---------------------------------------------------------------- */

/* One reference to a flight less; the last one frees it (lock held). */
static void
flight_put(struct flight *f)
{
	if (--f->refs != 0)
		return;
	free(f->key);
	free(f->v.data);
	pthread_cond_destroy(&f->cond);
	free(f);
}

static int
flight_run(struct kite_cache *c, uint64_t h, const void *key, size_t keylen, kite_loader_fn load,
	   void *arg, struct kite_value *out)
{
	struct flight *f;
	int rc;

	pthread_mutex_lock(&c->lock);
	for (f = c->flights; f != NULL; f = f->next)
		if (f->hash == h && f->keylen == keylen && memcmp(f->key, key, keylen) == 0)
			break;
	if (f != NULL) {
		/* A load of this key is under way in this process: wait for it. */
		f->refs++;
		STAT_INC(c, coalesced);
		while (!f->done)
			pthread_cond_wait(&f->cond, &c->lock);
		rc = f->rc;
		if (rc == KITE_OK)
			rc = copy_value(out, f->v.data, f->v.len, f->v.flags);
		else
			memset(out, 0, sizeof(*out));
		flight_put(f);
		pthread_mutex_unlock(&c->lock);
		return rc;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL || (f->key = malloc(keylen)) == NULL) {
		free(f);
		pthread_mutex_unlock(&c->lock);
		return KITE_NO_MEMORY;
	}
	memcpy(f->key, key, keylen);
	f->keylen = keylen;
	f->hash = h;
	f->refs = 1;
	pthread_cond_init(&f->cond, NULL);
	f->next = c->flights;
	c->flights = f;
	pthread_mutex_unlock(&c->lock);

	rc = fetch(c, h, key, keylen, load, arg, out);

	pthread_mutex_lock(&c->lock);
	for (struct flight **p = &c->flights; *p != NULL; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	f->rc = rc;
	if (rc == KITE_OK && f->refs > 1 &&
	    copy_value(&f->v, out->data, out->len, out->flags) != KITE_OK)
		f->rc = KITE_NO_MEMORY;
	f->done = true;
	pthread_cond_broadcast(&f->cond);
	flight_put(f);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* ---- write-behind ------------------------------------------------------------------ */

static struct wb_entry **
wb_slot(struct kite_cache *c, uint64_t h, const void *key, size_t keylen)
{
	struct wb_entry **p = &c->wb_index[h & (c->wb_buckets - 1)];

	while (*p != NULL && !((*p)->hash == h && (*p)->keylen == keylen &&
			       memcmp((*p)->key, key, keylen) == 0))
		p = &(*p)->hnext;
	return p;
}

/* Take e out of the queue and the index (lock held). */
static void
wb_unlink(struct kite_cache *c, struct wb_entry *e)
{
	struct wb_entry **p = wb_slot(c, e->hash, e->key, e->keylen);

	if (*p == e)
		*p = e->hnext;
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		c->wb_head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->wb_tail = e->prev;
	e->next = e->prev = e->hnext = NULL;
	c->wb_n--;
}

/* Queue e at the tail, or at the head (a retry: older than everything queued) (lock held). */
static void
wb_link(struct kite_cache *c, struct wb_entry *e, bool head)
{
	struct wb_entry **p = wb_slot(c, e->hash, e->key, e->keylen);

	e->hnext = *p;
	*p = e;
	if (head) {
		e->prev = NULL;
		e->next = c->wb_head;
		if (c->wb_head != NULL)
			c->wb_head->prev = e;
		else
			c->wb_tail = e;
		c->wb_head = e;
	} else {
		e->prev = c->wb_tail;
		e->next = NULL;
		if (c->wb_tail != NULL)
			c->wb_tail->next = e;
		else
			c->wb_head = e;
		c->wb_tail = e;
	}
	c->wb_n++;
}

/* Wait on the writer's condition for at most ms (lock held). */
static void
wb_wait(struct kite_cache *c, unsigned int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000u;
	ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&c->wb_cond, &c->lock, &ts);
}

static void
wb_free(struct wb_entry *e)
{
	free(e->key);
	free(e->val);
	free(e);
}

static void
cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

/*
 * The writer thread: writes each queued write when it is due (or at once
 * when flushing), oldest first, one at a time, so writes to one key
 * reach the source in the order they were made. A failed write is tried
 * again after 10, 20 ms, unless a newer write of the key was queued
 * meanwhile; after WB_TRIES it is given up (counted).
 */
static void *
wb_main(void *arg)
{
	struct kite_cache *c = arg;
	const unsigned int tick = c->o.wb_delay_ms / 4 > 0 ? c->o.wb_delay_ms / 4 : 1;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct wb_entry *e = c->wb_head;
		const uint64_t now = now_ms(c);

		if (e != NULL && (c->wb_flush || c->wb_stop || now >= e->due)) {
			int rc;

			wb_unlink(c, e);
			c->wb_busy++;
			pthread_mutex_unlock(&c->lock);
			rc = c->o.wb_writer(c->o.wb_arg, e->key, e->keylen, e->del ? NULL : e->val,
					    e->len, e->flags);
			pthread_mutex_lock(&c->lock);
			c->wb_busy--;
			if (rc == KITE_OK) {
				atomic_fetch_add(&c->wb_written, 1);
				wb_free(e);
			} else if (++e->tries >= WB_TRIES ||
				   *wb_slot(c, e->hash, e->key, e->keylen) != NULL) {
				/* Given up, or superseded by a newer write of the key. */
				if (e->tries >= WB_TRIES)
					atomic_fetch_add(&c->wb_failed, 1);
				wb_free(e);
			} else {
				atomic_fetch_add(&c->wb_retries, 1);
				e->due = now_ms(c) + 10u * e->tries;
				/* First in the queue again: it is older than everything there. */
				wb_link(c, e, true);
				if (!c->wb_flush && !c->wb_stop)
					wb_wait(c, 10);
			}
			continue;
		}
		if (c->wb_head == NULL && c->wb_busy == 0) {
			c->wb_flush = false;
			pthread_cond_broadcast(&c->wb_idle);
			if (c->wb_stop)
				break;
		}
		/* Nothing due: look again after a quarter of the delay (or when told). */
		wb_wait(c, tick);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* The writer thread, started with the first write-behind (again in a forked child). */
static int
wb_start(struct kite_cache *c)
{
	if (c->wb_running)
		return KITE_OK;
	c->wb_stop = false;
	if (pthread_create(&c->wb_thread, NULL, wb_main, c) != 0)
		return KITE_SYSTEM;
	c->wb_running = true;
	return KITE_OK;
}

int
kite_cache_write_behind(struct kite_cache *c, const void *key, size_t keylen, const void *value,
			size_t len, uint32_t flags)
{
	const uint64_t h = key_hash(key, keylen);
	struct wb_entry *e;
	struct kite_op op;
	char meta[64];
	int rc;

	if (c == NULL || c->o.wb_writer == NULL || key == NULL || keylen == 0 ||
	    keylen > KITE_KEY_MAX || (flags & ~KITE_CACHE_F_APP) != 0 ||
	    (value == NULL && len != 0))
		return KITE_BAD_ARGUMENT;
	e = calloc(1, sizeof(*e));
	if (e == NULL || (e->key = malloc(keylen)) == NULL ||
	    (value != NULL && len > 0 && (e->val = malloc(len)) == NULL)) {
		if (e != NULL)
			wb_free(e);
		return KITE_NO_MEMORY;
	}
	memcpy(e->key, key, keylen);
	e->keylen = keylen;
	e->hash = h;
	if (value != NULL && len > 0)
		memcpy(e->val, value, len);
	e->len = value != NULL ? len : 0;
	e->del = value == NULL;
	e->flags = flags;
	/* A slot first: a full queue refuses the write before the cache sees it. */
	pthread_mutex_lock(&c->lock);
	rc = wb_start(c);
	if (rc == KITE_OK && c->wb_n + c->wb_reserved >= c->o.wb_queue &&
	    *wb_slot(c, h, key, keylen) == NULL)
		rc = KITE_RATE_LIMITED;
	if (rc == KITE_OK)
		c->wb_reserved++;
	pthread_mutex_unlock(&c->lock);
	if (rc != KITE_OK) {
		if (rc == KITE_RATE_LIMITED)
			atomic_fetch_add(&c->wb_dropped, 1);
		wb_free(e);
		return rc;
	}
	/* The cache now: readers see the new value (or none) at once. */
	l1_drop(c, h, key, keylen);
	memset(&op, 0, sizeof(op));
	op.key = key;
	op.keylen = keylen;
	if (value != NULL) {
		snprintf(meta, sizeof(meta), "T%u F%u", ttl_of(c, 0), flags | KITE_CACHE_F_VALUE);
		op.type = KITE_META_SET;
		op.value = value;
		op.vallen = len;
	} else {
		meta[0] = '\0';
		op.type = KITE_META_DELETE;
	}
	op.meta = meta;
	rc = node_exec(c, &op);
	kite_op_clear(&op);
	if (rc == KITE_NOT_FOUND && value == NULL)
		rc = KITE_OK; /* deleting what is not there */
	pthread_mutex_lock(&c->lock);
	c->wb_reserved--;
	if (rc == KITE_OK) {
		struct wb_entry **p = wb_slot(c, h, key, keylen);

		e->due = now_ms(c) + c->o.wb_delay_ms;
		if (*p != NULL) {
			/* Coalesced: the queued write takes this value and keeps its place and time. */
			struct wb_entry *q = *p;

			free(q->val);
			q->val = e->val;
			q->len = e->len;
			q->del = e->del;
			q->flags = e->flags;
			e->val = NULL;
			atomic_fetch_add(&c->wb_coalesced, 1);
			wb_free(e);
		} else {
			wb_link(c, e, false);
		}
		atomic_fetch_add(&c->wb_queued, 1);
		pthread_cond_signal(&c->wb_cond);
		e = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (e != NULL) {
		STAT_INC(c, cache_errors);
		wb_free(e);
	}
	return rc;
}

int
kite_cache_flush(struct kite_cache *c)
{
	if (c == NULL)
		return KITE_BAD_ARGUMENT;
	pthread_mutex_lock(&c->lock);
	if (c->wb_running) {
		c->wb_flush = true;
		pthread_cond_signal(&c->wb_cond);
		while (c->wb_head != NULL || c->wb_busy != 0 || c->wb_reserved != 0)
			pthread_cond_wait(&c->wb_idle, &c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return KITE_OK;
}

/* ---- the API ------------------------------------------------------------------------ */

int
kite_cache_get(struct kite_cache *c, const void *key, size_t keylen, kite_loader_fn load,
	       void *arg, struct kite_value *out)
{
	uint64_t h;

	if (c == NULL || key == NULL || keylen == 0 || keylen > KITE_KEY_MAX || load == NULL ||
	    out == NULL)
		return KITE_BAD_ARGUMENT;
	memset(out, 0, sizeof(*out));
	STAT_INC(c, gets);
	if (c->o.validate != NULL && !c->o.validate(c->o.validate_arg, key, keylen)) {
		STAT_INC(c, invalid_keys);
		return KITE_BAD_ARGUMENT;
	}
	if (c->o.bloom != NULL && !kite_bloom_maybe(c->o.bloom, key, keylen)) {
		STAT_INC(c, bloom_rejections);
		return KITE_NOT_FOUND;
	}
	h = key_hash(key, keylen);
	if (l1_get(c, h, key, keylen, out) == KITE_OK) {
		STAT_INC(c, l1_hits);
		STAT_INC(c, hits);
		return KITE_OK;
	}
	return flight_run(c, h, key, keylen, load, arg, out);
}

int
kite_cache_register(struct kite_cache *c, const char *prefix, kite_loader_fn load, void *arg)
{
	struct loader *l;

	if (c == NULL || prefix == NULL || load == NULL || strlen(prefix) > KITE_KEY_MAX)
		return KITE_BAD_ARGUMENT;
	l = calloc(1, sizeof(*l));
	if (l == NULL || (l->prefix = strdup(prefix)) == NULL) {
		free(l);
		return KITE_NO_MEMORY;
	}
	l->plen = strlen(prefix);
	l->load = load;
	l->arg = arg;
	pthread_mutex_lock(&c->lock);
	l->next = c->loaders;
	c->loaders = l;
	pthread_mutex_unlock(&c->lock);
	return KITE_OK;
}

int
kite_cache_read(struct kite_cache *c, const void *key, size_t keylen, struct kite_value *out)
{
	const struct loader *best = NULL;
	kite_loader_fn load = NULL;
	void *arg = NULL;

	if (c == NULL || key == NULL || out == NULL)
		return KITE_BAD_ARGUMENT;
	pthread_mutex_lock(&c->lock);
	for (const struct loader *l = c->loaders; l != NULL; l = l->next)
		if (l->plen <= keylen && memcmp(l->prefix, key, l->plen) == 0 &&
		    (best == NULL || l->plen > best->plen))
			best = l;
	if (best != NULL) {
		load = best->load;
		arg = best->arg;
	}
	pthread_mutex_unlock(&c->lock);
	if (load == NULL) {
		memset(out, 0, sizeof(*out));
		return KITE_BAD_ARGUMENT;
	}
	return kite_cache_get(c, key, keylen, load, arg, out);
}

int
kite_cache_invalidate(struct kite_cache *c, const void *key, size_t keylen)
{
	struct kite_op op;
	int rc, node;

	if (c == NULL || key == NULL || keylen == 0 || keylen > KITE_KEY_MAX)
		return KITE_BAD_ARGUMENT;
	l1_drop(c, key_hash(key, keylen), key, keylen);
	node = node_owner(c, key, keylen);
	memset(&op, 0, sizeof(op));
	op.type = KITE_META_DELETE;
	op.key = key;
	op.keylen = keylen;
	op.meta = "I";
	rc = node_exec(c, &op);
	kite_op_clear(&op);
	STAT_INC(c, invalidations);
	/* Nothing there to invalidate is what an invalidation wants. */
	if (rc == KITE_NOT_FOUND)
		rc = KITE_OK;
	if (rc != KITE_OK)
		STAT_INC(c, cache_errors);
	breaker_report(c, node, node_failed(rc));
	return rc;
}

int
kite_cache_write(struct kite_cache *c, const void *key, size_t keylen, const void *value,
		 size_t len, uint32_t flags, kite_writer_fn write, void *arg)
{
	int rc;

	if (c == NULL || key == NULL || keylen == 0 || keylen > KITE_KEY_MAX || write == NULL ||
	    (flags & ~KITE_CACHE_F_APP) != 0)
		return KITE_BAD_ARGUMENT;
	STAT_INC(c, writes);
	/*
	 * The source first, then the cache marked stale (not set): a reader
	 * that loaded the old row before this write and stores it after
	 * does so with an older CAS and I, so it lands stale too.
	 */
	rc = write(arg, key, keylen, value, len, flags);
	if (rc != KITE_OK)
		return rc;
	return kite_cache_invalidate(c, key, keylen);
}

void
kite_cache_stats(struct kite_cache *c, struct kite_cache_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (c == NULL)
		return;
#define LOAD(f) out->f = atomic_load_explicit(&c->st.f, memory_order_relaxed)
	LOAD(gets);
	LOAD(hits);
	LOAD(misses);
	LOAD(loads);
	LOAD(load_errors);
	LOAD(coalesced);
	LOAD(token_waits);
	LOAD(wait_timeouts);
	LOAD(stale_served);
	LOAD(negative_hits);
	LOAD(negative_stores);
	LOAD(bloom_rejections);
	LOAD(invalid_keys);
	LOAD(l1_hits);
	LOAD(early_refreshes);
	LOAD(cache_errors);
	LOAD(breaker_opens);
	LOAD(fallback_loads);
	LOAD(fallback_refused);
	LOAD(writes);
	LOAD(invalidations);
#undef LOAD
	out->wb_queued = atomic_load(&c->wb_queued);
	out->wb_coalesced = atomic_load(&c->wb_coalesced);
	out->wb_written = atomic_load(&c->wb_written);
	out->wb_retries = atomic_load(&c->wb_retries);
	out->wb_failed = atomic_load(&c->wb_failed);
	out->wb_dropped = atomic_load(&c->wb_dropped);
	pthread_mutex_lock(&c->lock);
	out->wb_depth = c->wb_n;
	out->l1_entries = c->l1_n;
	for (unsigned int i = 0; i < MAX_NODES; i++)
		out->breakers_open += c->br_open[i];
	pthread_mutex_unlock(&c->lock);
}

/* ---- open, close, fork ------------------------------------------------------------- */

/*
 * In a forked child only the forking thread lives on: locks another
 * thread held are re-made, loads in flight (their threads are gone) are
 * forgotten, the L1 starts empty and every thread opens a new client
 * (the parent's sockets stay the parent's).
 */
static void
atfork_prepare(void)
{
	pthread_mutex_lock(&caches_lock);
}

static void
atfork_parent(void)
{
	pthread_mutex_unlock(&caches_lock);
}

static void
atfork_child(void)
{
	pthread_mutex_init(&caches_lock, NULL);
	for (struct kite_cache *c = caches; c != NULL; c = c->next_cache) {
		pthread_mutex_init(&c->lock, NULL);
		c->flights = NULL; /* their waiters are not in this process */
		for (unsigned int i = 0; c->l1 != NULL && i < c->l1_sets * L1_WAYS; i++)
			if (c->l1[i].key != NULL)
				l1_clear_entry(&c->l1[i]);
		c->l1_n = 0;
		/* The parent's queued writes are the parent's to write; its writer thread is not here. */
		while (c->wb_head != NULL) {
			struct wb_entry *e = c->wb_head;
			c->wb_head = e->next;
			wb_free(e);
		}
		c->wb_tail = NULL;
		c->wb_n = c->wb_reserved = c->wb_busy = 0;
		if (c->wb_index != NULL)
			memset(c->wb_index, 0, sizeof(*c->wb_index) * c->wb_buckets);
		c->wb_running = c->wb_flush = c->wb_stop = false;
		cond_init_mono(&c->wb_cond);
		pthread_cond_init(&c->wb_idle, NULL);
		c->gen++;
	}
}

static void
atfork_register(void)
{
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static int
cache_open(struct kite_cache **out, const struct kite_cache_options *o,
	   const struct kite_cache_backend *b)
{
	struct kite_cache *c;
	const uint64_t now = o->clock_ms != NULL ? o->clock_ms(o->clock_arg) : mono_ms();

	if (out == NULL || o == NULL || (b == NULL && o->client.seeds == NULL) ||
	    (o->fallback_rate < 0) || (o->fallback_burst < 0))
		return KITE_BAD_ARGUMENT;
	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return KITE_NO_MEMORY;
	c->o = *o;
	if (b != NULL)
		c->be = *b;
	/* Defaults. */
#define DEFAULT(f, v)                                                                              \
	do {                                                                                       \
		if (c->o.f == 0)                                                                   \
			c->o.f = (v);                                                              \
	} while (0)
	DEFAULT(ttl_s, DEF_TTL_S);
	DEFAULT(jitter_pct, DEF_JITTER_PCT);
	DEFAULT(negative_ttl_s, DEF_NEG_TTL_S);
	DEFAULT(lease_s, DEF_LEASE_S);
	DEFAULT(wait_ms, DEF_WAIT_MS);
	DEFAULT(poll_ms, DEF_POLL_MS);
	DEFAULT(l1_ttl_ms, DEF_L1_TTL_MS);
	DEFAULT(fallback_rate, DEF_FALLBACK_RATE);
	DEFAULT(fallback_burst, DEF_FALLBACK_BURST);
	DEFAULT(wb_queue, DEF_WB_QUEUE);
	DEFAULT(wb_delay_ms, DEF_WB_DELAY_MS);
#undef DEFAULT
	if (c->o.jitter_pct != KITE_CACHE_OFF && c->o.jitter_pct > 100)
		goto bad;
	if (c->o.wb_writer != NULL) {
		if (c->o.wb_queue > (1u << 24))
			goto bad;
		c->wb_buckets = 1;
		while (c->wb_buckets < 2 * c->o.wb_queue)
			c->wb_buckets <<= 1;
		c->wb_index = calloc(c->wb_buckets, sizeof(*c->wb_index));
		if (c->wb_index == NULL)
			goto nomem;
	}
	cond_init_mono(&c->wb_cond);
	pthread_cond_init(&c->wb_idle, NULL);
	if (b == NULL) {
		c->seeds = strdup(o->client.seeds);
		if (c->seeds == NULL)
			goto nomem;
		if (o->client.tenant_secret != NULL)
			memcpy(c->secret, o->client.tenant_secret, 32);
		if (o->client.value_key != NULL)
			memcpy(c->vkey, o->client.value_key, 32);
		/* No destructor: kite_cache_close() closes the clients (the registry keeps them). */
		if (pthread_key_create(&c->tls, NULL) != 0)
			goto nomem;
		c->tls_ok = true;
	}
	if (c->o.l1_entries != 0) {
		unsigned int sets = 1;

		if (c->o.l1_entries > (1u << 24))
			goto bad;
		while (sets * L1_WAYS < c->o.l1_entries)
			sets <<= 1;
		c->l1_sets = sets;
		c->l1 = calloc((size_t)sets * L1_WAYS, sizeof(*c->l1));
		if (c->l1 == NULL)
			goto nomem;
	}
	pthread_mutex_init(&c->lock, NULL);
	{
		const struct kite_breaker_conf bc = { .failures = o->breaker_failures,
						      .open_ms = o->breaker_open_ms };
		for (unsigned int i = 0; i < MAX_NODES; i++)
			kite_breaker_init(&c->br[i], &bc);
	}
	kite_bucket_init(&c->bucket, c->o.fallback_rate, c->o.fallback_burst, now);
	pthread_once(&atfork_once, atfork_register);
	pthread_mutex_lock(&caches_lock);
	c->next_cache = caches;
	caches = c;
	pthread_mutex_unlock(&caches_lock);
	*out = c;
	return KITE_OK;
bad:
	kite_cache_close(c);
	return KITE_BAD_ARGUMENT;
nomem:
	kite_cache_close(c);
	return KITE_NO_MEMORY;
}

int
kite_cache_open(struct kite_cache **out, const struct kite_cache_options *o)
{
	return cache_open(out, o, NULL);
}

int
kite_cache_open_backend(struct kite_cache **out, const struct kite_cache_options *o,
			const struct kite_cache_backend *b)
{
	if (b == NULL || b->exec == NULL)
		return KITE_BAD_ARGUMENT;
	return cache_open(out, o, b);
}

void
kite_cache_close(struct kite_cache *c)
{
	if (c == NULL)
		return;
	/* Queued write-behinds are written before the cache goes. */
	if (c->wb_running) {
		pthread_mutex_lock(&c->lock);
		c->wb_stop = true;
		pthread_cond_signal(&c->wb_cond);
		pthread_mutex_unlock(&c->lock);
		pthread_join(c->wb_thread, NULL);
		c->wb_running = false;
	}
	free(c->wb_index);
	pthread_mutex_lock(&caches_lock);
	for (struct kite_cache **p = &caches; *p != NULL; p = &(*p)->next_cache)
		if (*p == c) {
			*p = c->next_cache;
			break;
		}
	pthread_mutex_unlock(&caches_lock);
	while (c->clients != NULL) {
		struct tclient *t = c->clients;

		c->clients = t->next;
		/* A parent's client in a forked child: its socket is the parent's too; closing our copy is harmless. */
		kite_close(t->k);
		free(t);
	}
	if (c->tls_ok)
		pthread_key_delete(c->tls);
	for (unsigned int i = 0; c->l1 != NULL && i < c->l1_sets * L1_WAYS; i++)
		if (c->l1[i].key != NULL)
			l1_clear_entry(&c->l1[i]);
	free(c->l1);
	while (c->loaders != NULL) {
		struct loader *l = c->loaders;

		c->loaders = l->next;
		free(l->prefix);
		free(l);
	}
	free(c->seeds);
	sodium_memzero(c->secret, sizeof(c->secret));
	sodium_memzero(c->vkey, sizeof(c->vkey));
	free(c);
}
