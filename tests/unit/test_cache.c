/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libkite's cache patterns (kite/cache.h) over an in-memory node with
 * the meta semantics kited has (N vivify and W/Z, md I stale and X, ms
 * C and I, R recache, the hot hint), a fake clock and fake loaders. Two
 * kite_cache objects over one node stand for two processes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kite/cache.h"
#include "kite_cache_priv.h"

/* ---- the fake clock --------------------------------------------------------- */

static _Atomic uint64_t clock_now = 1000000;

static uint64_t
fake_clock(void *arg)
{
	(void)arg;
	return atomic_load(&clock_now);
}

static void
advance(uint64_t ms)
{
	atomic_fetch_add(&clock_now, ms);
}

/* ---- the in-memory node --------------------------------------------------------- */

#define NITEMS 4096

struct item {
	char key[251];
	size_t keylen;
	uint8_t *val;
	size_t len;
	uint32_t flags;
	uint64_t exp_ms; /* 0: never */
	uint64_t cas;
	bool live, stale, win;
};

static struct node {
	pthread_mutex_t lock;
	struct item it[NITEMS];
	uint64_t cas;
	atomic_uint execs;
	atomic_bool down;      /* every request times out */
	atomic_uint sets;      /* META_SETs that stored */
	atomic_uint stale_sets; /* ... stored marked stale */
	uint32_t last_ttl;     /* the T of the last META_SET */
} nd = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct item *
find(const void *key, size_t keylen, bool create)
{
	struct item *free_slot = NULL;
	const uint64_t now = fake_clock(NULL);

	for (unsigned int i = 0; i < NITEMS; i++) {
		struct item *t = &nd.it[i];

		if (t->live && t->exp_ms != 0 && now >= t->exp_ms) {
			free(t->val);
			memset(t, 0, sizeof(*t));
		}
		if (!t->live) {
			if (free_slot == NULL)
				free_slot = t;
			continue;
		}
		if (t->keylen == keylen && memcmp(t->key, key, keylen) == 0)
			return t;
	}
	if (!create || free_slot == NULL)
		return NULL;
	memset(free_slot, 0, sizeof(*free_slot));
	memcpy(free_slot->key, key, keylen);
	free_slot->keylen = keylen;
	free_slot->live = true;
	return free_slot;
}

/* The number after flag letter f in the flags, or -1. */
static long long
flag_num(const char *m, char f)
{
	for (const char *p = m; p != NULL && *p != '\0'; p++)
		if (*p == f && (p == m || p[-1] == ' '))
			return p[1] == ' ' || p[1] == '\0' ? 0 : atoll(p + 1);
	return -1;
}

static bool
has_flag(const char *m, char f)
{
	return flag_num(m, f) >= 0;
}

static int
node_exec_fake(void *arg, struct kite_op *op)
{
	const char *m = op->meta != NULL ? op->meta : "";
	const uint64_t now = fake_clock(NULL);
	struct item *t;

	(void)arg;
	atomic_fetch_add(&nd.execs, 1);
	op->meta_ret = 0;
	op->ttl = KITE_TTL_NONE;
	op->result = NULL;
	op->result_len = 0;
	if (atomic_load(&nd.down)) {
		op->rc = KITE_TIMEOUT;
		return op->rc;
	}
	pthread_mutex_lock(&nd.lock);
	switch (op->type) {
	case KITE_META_GET:
		t = find(op->key, op->keylen, false);
		if (t == NULL && has_flag(m, 'N')) {
			t = find(op->key, op->keylen, true);
			t->exp_ms = now + (uint64_t)flag_num(m, 'N') * 1000u;
			t->cas = ++nd.cas;
			t->win = true;
			op->meta_ret |= KITE_META_WIN;
		} else if (t == NULL) {
			op->rc = KITE_NOT_FOUND;
			break;
		} else {
			long long r = flag_num(m, 'R');
			if (t->win)
				op->meta_ret |= KITE_META_BUSY;
			if (t->stale)
				op->meta_ret |= KITE_META_STALE;
			if (!t->win && (t->stale || (r > 0 && t->exp_ms != 0 &&
						     t->exp_ms - now < (uint64_t)r * 1000u))) {
				t->win = true;
				op->meta_ret |= KITE_META_WIN;
			}
		}
		if (op->keylen >= 3 && memcmp(op->key, "hot", 3) == 0)
			op->meta_ret |= KITE_META_HOT;
		op->result_cas = t->cas;
		op->result_flags = t->flags;
		op->ttl = t->exp_ms == 0 ? -1 : (int64_t)((t->exp_ms - now) / 1000u);
		if (has_flag(m, 'v') && t->len > 0) {
			op->result = malloc(t->len + 1);
			memcpy(op->result, t->val, t->len);
			((char *)op->result)[t->len] = '\0';
			op->result_len = t->len;
		}
		op->rc = KITE_OK;
		break;
	case KITE_META_SET: {
		long long c = flag_num(m, 'C');
		bool stale = false;

		t = find(op->key, op->keylen, c < 0);
		if (t == NULL) {
			op->rc = KITE_NOT_FOUND;
			break;
		}
		if (c >= 0 && (uint64_t)c != t->cas) {
			if (!has_flag(m, 'I') || (uint64_t)c > t->cas) {
				op->rc = KITE_EXISTS;
				break;
			}
			stale = true; /* a late writer: stored, but stale */
		}
		free(t->val);
		t->val = malloc(op->vallen + 1);
		if (op->vallen > 0)
			memcpy(t->val, op->value, op->vallen);
		t->len = op->vallen;
		t->flags = flag_num(m, 'F') >= 0 ? (uint32_t)flag_num(m, 'F') : 0;
		nd.last_ttl = flag_num(m, 'T') >= 0 ? (uint32_t)flag_num(m, 'T') : 0;
		t->exp_ms = nd.last_ttl ? now + (uint64_t)nd.last_ttl * 1000u : 0;
		t->cas = ++nd.cas;
		t->stale = stale;
		t->win = false;
		atomic_fetch_add(&nd.sets, 1);
		if (stale)
			atomic_fetch_add(&nd.stale_sets, 1);
		op->rc = KITE_OK;
		break;
	}
	case KITE_META_DELETE:
		t = find(op->key, op->keylen, false);
		if (t == NULL) {
			op->rc = KITE_NOT_FOUND;
			break;
		}
		if (has_flag(m, 'I')) {
			t->stale = true;
			t->cas = ++nd.cas;
		} else {
			free(t->val);
			memset(t, 0, sizeof(*t));
		}
		op->rc = KITE_OK;
		break;
	default:
		op->rc = KITE_BAD_ARGUMENT;
		break;
	}
	pthread_mutex_unlock(&nd.lock);
	return op->rc;
}

static int
owner_fake(void *arg, const void *key, size_t keylen)
{
	(void)arg;
	(void)key;
	(void)keylen;
	return 0;
}

static void
node_reset(void)
{
	pthread_mutex_lock(&nd.lock);
	for (unsigned int i = 0; i < NITEMS; i++) {
		free(nd.it[i].val);
		memset(&nd.it[i], 0, sizeof(nd.it[i]));
	}
	pthread_mutex_unlock(&nd.lock);
	atomic_store(&nd.down, false);
	atomic_store(&nd.execs, 0);
	atomic_store(&nd.sets, 0);
	atomic_store(&nd.stale_sets, 0);
}

static const struct kite_cache_backend be = { node_exec_fake, owner_fake, NULL };

static struct kite_cache *
open_cache(struct kite_cache_options *o)
{
	struct kite_cache *c;

	o->clock_ms = fake_clock;
	assert_int_equal(kite_cache_open_backend(&c, o, &be), KITE_OK);
	return c;
}

/* ---- fake loaders ------------------------------------------------------------ */

struct source {
	atomic_uint calls;
	unsigned int delay_ms; /* real time: lets other threads pile up */
	int rc;                /* what it answers (KITE_OK: "v-<key>") */
	struct kite_cache *invalidate_during; /* invalidates the key while it loads */
};

static int
load_fake(void *arg, const void *key, size_t keylen, struct kite_value *out)
{
	struct source *s = arg;

	atomic_fetch_add(&s->calls, 1);
	if (s->delay_ms) {
		struct timespec ts = { 0, (long)s->delay_ms * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (s->invalidate_during != NULL)
		kite_cache_invalidate(s->invalidate_during, key, keylen);
	if (s->rc != KITE_OK)
		return s->rc;
	out->data = malloc(keylen + 2);
	memcpy(out->data, "v-", 2);
	memcpy((char *)out->data + 2, key, keylen);
	out->len = keylen + 2;
	out->flags = 7;
	return KITE_OK;
}

static void
check_loaded(const struct kite_value *v, const char *key)
{
	assert_int_equal(v->len, strlen(key) + 2);
	assert_memory_equal(v->data, "v-", 2);
	assert_memory_equal((char *)v->data + 2, key, strlen(key));
	assert_int_equal(v->flags, 7);
}

/* ---- tests -------------------------------------------------------------------- */

/* Cache-aside: one load, then hits; its TTL within the jitter; stats. */
static void
test_cache_aside(void **state)
{
	struct kite_cache_options o = { .ttl_s = 100 };
	struct kite_cache *c;
	struct source src = { 0 };
	struct kite_value v;
	struct kite_cache_stats st;

	(void)state;
	node_reset();
	c = open_cache(&o);
	assert_int_equal(kite_cache_get(c, "k1", 2, load_fake, &src, &v), KITE_OK);
	check_loaded(&v, "k1");
	free(v.data);
	assert_true(nd.last_ttl >= 90 && nd.last_ttl <= 110);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(kite_cache_get(c, "k1", 2, load_fake, &src, &v), KITE_OK);
		check_loaded(&v, "k1");
		free(v.data);
	}
	assert_int_equal(atomic_load(&src.calls), 1);
	kite_cache_stats(c, &st);
	assert_int_equal(st.gets, 6);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.hits, 5);
	assert_int_equal(st.loads, 1);
	/* After the TTL the item is gone: loaded again. */
	advance(111 * 1000);
	assert_int_equal(kite_cache_get(c, "k1", 2, load_fake, &src, &v), KITE_OK);
	free(v.data);
	assert_int_equal(atomic_load(&src.calls), 2);
	/* A loader error is returned, nothing cached. */
	src.rc = KITE_SYSTEM;
	assert_int_equal(kite_cache_get(c, "k2", 2, load_fake, &src, &v), KITE_SYSTEM);
	kite_cache_stats(c, &st);
	assert_int_equal(st.load_errors, 1);
	assert_int_equal(kite_cache_get(NULL, "k", 1, load_fake, &src, &v), KITE_BAD_ARGUMENT);
	assert_int_equal(kite_cache_get(c, "k", 0, load_fake, &src, &v), KITE_BAD_ARGUMENT);
	kite_cache_close(c);
}

/* TTL jitter: stores spread over ttl +- 10 %, both sides, mean near ttl. */
static void
test_jitter(void **state)
{
	struct kite_cache_options o = { .ttl_s = 300 };
	struct kite_cache *c;
	struct source src = { 0 };
	struct kite_value v;
	uint32_t lo = UINT32_MAX, hi = 0;
	double sum = 0;
	char key[32];

	(void)state;
	node_reset();
	c = open_cache(&o);
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "j%d", i);
		if (i % NITEMS == NITEMS - 1)
			node_reset();
		assert_int_equal(kite_cache_get(c, key, strlen(key), load_fake, &src, &v), KITE_OK);
		free(v.data);
		lo = nd.last_ttl < lo ? nd.last_ttl : lo;
		hi = nd.last_ttl > hi ? nd.last_ttl : hi;
		sum += nd.last_ttl;
	}
	assert_true(lo >= 270 && lo < 280);
	assert_true(hi <= 330 && hi > 320);
	assert_true(sum / 1000 > 295 && sum / 1000 < 305);
	kite_cache_close(c);
	/* Off: every TTL as given. */
	node_reset();
	o.jitter_pct = KITE_CACHE_OFF;
	c = open_cache(&o);
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "n%d", i);
		assert_int_equal(kite_cache_get(c, key, strlen(key), load_fake, &src, &v), KITE_OK);
		free(v.data);
		assert_int_equal(nd.last_ttl, 300);
	}
	kite_cache_close(c);
}

/* Penetration: "does not exist" is cached for negative_ttl_s; the Bloom filter; the hook. */
static int
only_user_keys(void *arg, const void *key, size_t keylen)
{
	(void)arg;
	return keylen > 5 && memcmp(key, "user:", 5) == 0;
}

static void
test_penetration(void **state)
{
	struct kite_cache_options o = { .negative_ttl_s = 60 };
	struct kite_cache *c;
	struct source src = { .rc = KITE_NOT_FOUND };
	struct kite_value v;
	struct kite_cache_stats st;
	struct kite_bloom *b;

	(void)state;
	node_reset();
	c = open_cache(&o);
	for (int i = 0; i < 4; i++)
		assert_int_equal(kite_cache_get(c, "user:9", 6, load_fake, &src, &v), KITE_NOT_FOUND);
	assert_int_equal(atomic_load(&src.calls), 1);
	kite_cache_stats(c, &st);
	assert_int_equal(st.negative_stores, 1);
	assert_int_equal(st.negative_hits, 3);
	/* Its own TTL: asked again after it. */
	advance(61 * 1000);
	assert_int_equal(kite_cache_get(c, "user:9", 6, load_fake, &src, &v), KITE_NOT_FOUND);
	assert_int_equal(atomic_load(&src.calls), 2);
	kite_cache_close(c);

	/* The Bloom filter: a key it never saw reaches neither the cache nor the source. */
	node_reset();
	assert_int_equal(kite_bloom_create(&b, 1000, 0.01), KITE_OK);
	kite_bloom_add(b, "user:1", 6);
	o.bloom = b;
	o.validate = only_user_keys;
	c = open_cache(&o);
	src.rc = KITE_OK;
	atomic_store(&src.calls, 0);
	assert_int_equal(kite_cache_get(c, "user:2", 6, load_fake, &src, &v), KITE_NOT_FOUND);
	assert_int_equal(atomic_load(&nd.execs), 0);
	assert_int_equal(kite_cache_get(c, "user:1", 6, load_fake, &src, &v), KITE_OK);
	free(v.data);
	assert_int_equal(kite_cache_get(c, "admin", 5, load_fake, &src, &v), KITE_BAD_ARGUMENT);
	assert_int_equal(atomic_load(&src.calls), 1);
	kite_cache_stats(c, &st);
	assert_int_equal(st.bloom_rejections, 1);
	assert_int_equal(st.invalid_keys, 1);
	kite_cache_close(c);
	kite_bloom_free(b);
}

/* Stampede in one process: 16 threads, one slow load, everyone gets the value. */
struct getter {
	struct kite_cache *c;
	struct source *src;
	const char *key;
	int rc;
	struct kite_value v;
};

static void *
getter_main(void *arg)
{
	struct getter *g = arg;

	g->rc = kite_cache_get(g->c, g->key, strlen(g->key), load_fake, g->src, &g->v);
	return NULL;
}

static void
test_single_flight(void **state)
{
	struct kite_cache_options o = { 0 };
	struct kite_cache *c;
	struct source src = { .delay_ms = 100 };
	struct getter g[16];
	pthread_t th[16];
	struct kite_cache_stats st;

	(void)state;
	node_reset();
	c = open_cache(&o);
	for (int i = 0; i < 16; i++) {
		g[i] = (struct getter){ .c = c, .src = &src, .key = "hotrow" };
		pthread_create(&th[i], NULL, getter_main, &g[i]);
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(g[i].rc, KITE_OK);
		check_loaded(&g[i].v, "hotrow");
		free(g[i].v.data);
	}
	assert_int_equal(atomic_load(&src.calls), 1);
	kite_cache_stats(c, &st);
	/* One asked the node; the others waited for it or arrived after it stored. */
	assert_int_equal(st.coalesced + st.hits, 15);
	kite_cache_close(c);
}

/* Stampede across processes: the node's win token; the loser waits, then hits. */
static void
test_tokens_across_processes(void **state)
{
	struct kite_cache_options o = { .poll_ms = 2 };
	struct kite_cache *a, *b;
	struct source src = { .delay_ms = 100 };
	struct getter g[8];
	pthread_t th[8];
	struct kite_cache_stats sa, sb;

	(void)state;
	node_reset();
	a = open_cache(&o);
	b = open_cache(&o);
	for (int i = 0; i < 8; i++) {
		g[i] = (struct getter){ .c = i % 2 ? b : a, .src = &src, .key = "shared" };
		pthread_create(&th[i], NULL, getter_main, &g[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(g[i].rc, KITE_OK);
		check_loaded(&g[i].v, "shared");
		free(g[i].v.data);
	}
	/* Exactly one load for both "processes". */
	assert_int_equal(atomic_load(&src.calls), 1);
	kite_cache_stats(a, &sa);
	kite_cache_stats(b, &sb);
	assert_int_equal(sa.misses + sb.misses, 1);
	assert_int_equal(sa.token_waits + sb.token_waits, 1);
	kite_cache_close(a);
	kite_cache_close(b);
}

/* A winner that never stores: the others wait wait_ms, then load without storing. */
static void
test_wait_timeout(void **state)
{
	struct kite_cache_options o = { .wait_ms = 30, .poll_ms = 2 };
	struct kite_cache *c;
	struct source src = { 0 };
	struct kite_value v;
	struct kite_op op = { .type = KITE_META_GET, .key = "orphan", .keylen = 6, .meta = "v N10" };
	struct kite_cache_stats st;

	(void)state;
	node_reset();
	c = open_cache(&o);
	node_exec_fake(NULL, &op); /* a client that won and died */
	assert_true(op.meta_ret & KITE_META_WIN);
	assert_int_equal(kite_cache_get(c, "orphan", 6, load_fake, &src, &v), KITE_OK);
	check_loaded(&v, "orphan");
	free(v.data);
	kite_cache_stats(c, &st);
	assert_int_equal(st.wait_timeouts, 1);
	assert_int_equal(atomic_load(&nd.sets), 0); /* the win is not this client's */
	kite_cache_close(c);
}

/* Stale-while-revalidate: after an invalidation one client reloads, the others get the old value. */
static void
test_stale_while_revalidate(void **state)
{
	struct kite_cache_options o = { 0 };
	struct kite_cache *a, *b;
	struct source src = { 0 }, slow = { .delay_ms = 100 };
	struct getter g;
	pthread_t th;
	struct kite_value v;
	struct kite_cache_stats st;

	(void)state;
	node_reset();
	a = open_cache(&o);
	b = open_cache(&o);
	assert_int_equal(kite_cache_get(a, "row", 3, load_fake, &src, &v), KITE_OK);
	free(v.data);
	assert_int_equal(kite_cache_invalidate(a, "row", 3), KITE_OK);
	g = (struct getter){ .c = a, .src = &slow, .key = "row" };
	pthread_create(&th, NULL, getter_main, &g);
	struct timespec ts = { 0, 30 * 1000000L };
	nanosleep(&ts, NULL); /* a is reloading now */
	assert_int_equal(kite_cache_get(b, "row", 3, load_fake, &src, &v), KITE_OK);
	check_loaded(&v, "row");
	free(v.data);
	kite_cache_stats(b, &st);
	assert_int_equal(st.stale_served, 1);
	pthread_join(th, NULL);
	assert_int_equal(g.rc, KITE_OK);
	free(g.v.data);
	assert_int_equal(atomic_load(&slow.calls), 1);
	assert_int_equal(atomic_load(&src.calls), 1);
	/* no_stale: wait for the reload instead. */
	kite_cache_close(b);
	o.no_stale = 1;
	o.poll_ms = 2;
	b = open_cache(&o);
	assert_int_equal(kite_cache_invalidate(a, "row", 3), KITE_OK);
	pthread_create(&th, NULL, getter_main, &g);
	nanosleep(&ts, NULL);
	assert_int_equal(kite_cache_get(b, "row", 3, load_fake, &src, &v), KITE_OK);
	free(v.data);
	kite_cache_stats(b, &st);
	assert_int_equal(st.stale_served, 0);
	assert_int_equal(st.token_waits, 1);
	pthread_join(th, NULL);
	free(g.v.data);
	kite_cache_close(a);
	kite_cache_close(b);
}

/* A load overtaken by an invalidation lands stale: the next reader reloads. */
static void
test_late_fill(void **state)
{
	struct kite_cache_options o = { 0 };
	struct kite_cache *c;
	struct source src = { 0 };
	struct kite_value v;

	(void)state;
	node_reset();
	c = open_cache(&o);
	src.invalidate_during = c;
	assert_int_equal(kite_cache_get(c, "race", 4, load_fake, &src, &v), KITE_OK);
	free(v.data);
	assert_int_equal(atomic_load(&nd.stale_sets), 1);
	src.invalidate_during = NULL;
	assert_int_equal(kite_cache_get(c, "race", 4, load_fake, &src, &v), KITE_OK);
	free(v.data);
	assert_int_equal(atomic_load(&src.calls), 2);
	assert_int_equal(atomic_load(&nd.stale_sets), 1);
	kite_cache_close(c);
}

/* Write-through: the source first, then the cache marked stale; read-through by prefix. */
static atomic_uint writes;
static int
write_fake(void *arg, const void *key, size_t keylen, const void *value, size_t len,
	   uint32_t flags)
{
	(void)key;
	(void)keylen;
	(void)value;
	(void)len;
	(void)flags;
	atomic_fetch_add(&writes, 1);
	return arg != NULL ? KITE_SYSTEM : KITE_OK;
}

static void
test_write_and_read_through(void **state)
{
	struct kite_cache_options o = { 0 };
	struct kite_cache *c;
	struct source users = { 0 }, vip = { 0 };
	struct kite_value v;
	struct kite_cache_stats st;

	(void)state;
	node_reset();
	c = open_cache(&o);
	assert_int_equal(kite_cache_register(c, "user:", load_fake, &users), KITE_OK);
	assert_int_equal(kite_cache_register(c, "user:vip:", load_fake, &vip), KITE_OK);
	assert_int_equal(kite_cache_read(c, "user:1", 6, &v), KITE_OK);
	free(v.data);
	assert_int_equal(kite_cache_read(c, "user:vip:1", 10, &v), KITE_OK);
	free(v.data);
	assert_int_equal(atomic_load(&users.calls), 1);
	assert_int_equal(atomic_load(&vip.calls), 1);
	assert_int_equal(kite_cache_read(c, "order:1", 7, &v), KITE_BAD_ARGUMENT);
	/* The write marks the item stale: the next read loads again. */
	assert_int_equal(kite_cache_write(c, "user:1", 6, "x", 1, 0, write_fake, NULL), KITE_OK);
	assert_int_equal(kite_cache_read(c, "user:1", 6, &v), KITE_OK);
	free(v.data);
	assert_int_equal(atomic_load(&users.calls), 2);
	/* A failed write leaves the cache alone. */
	assert_int_equal(kite_cache_write(c, "user:1", 6, "x", 1, 0, write_fake, &users),
			 KITE_SYSTEM);
	assert_int_equal(kite_cache_read(c, "user:1", 6, &v), KITE_OK);
	free(v.data);
	assert_int_equal(atomic_load(&users.calls), 2);
	assert_int_equal(kite_cache_write(c, "user:1", 6, "x", 1, KITE_CACHE_F_VALUE, write_fake,
					  NULL),
			 KITE_BAD_ARGUMENT);
	kite_cache_stats(c, &st);
	assert_int_equal(st.writes, 2);
	assert_int_equal(st.invalidations, 1);
	kite_cache_close(c);
}

/* L1: hot keys (the node's hint) served in-process, for at most l1_ttl_ms; dropped on writes. */
static void
test_l1(void **state)
{
	struct kite_cache_options o = { .l1_entries = 64, .l1_ttl_ms = 500 };
	struct kite_cache *c;
	struct source src = { 0 };
	struct kite_value v;
	struct kite_cache_stats st;
	unsigned int execs;

	(void)state;
	node_reset();
	c = open_cache(&o);
	assert_int_equal(kite_cache_get(c, "hotkey", 6, load_fake, &src, &v), KITE_OK);
	free(v.data);
	assert_int_equal(kite_cache_get(c, "hotkey", 6, load_fake, &src, &v), KITE_OK); /* hit: H */
	free(v.data);
	execs = atomic_load(&nd.execs);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(kite_cache_get(c, "hotkey", 6, load_fake, &src, &v), KITE_OK);
		check_loaded(&v, "hotkey");
		free(v.data);
	}
	assert_int_equal(atomic_load(&nd.execs), execs);
	kite_cache_stats(c, &st);
	assert_int_equal(st.l1_hits, 10);
	assert_int_equal(st.l1_entries, 1);
	/* Its bound: after l1_ttl_ms the node is asked again. */
	advance(501);
	assert_int_equal(kite_cache_get(c, "hotkey", 6, load_fake, &src, &v), KITE_OK);
	free(v.data);
	assert_true(atomic_load(&nd.execs) > execs);
	/* A key the node does not flag stays out. */
	assert_int_equal(kite_cache_get(c, "cold", 4, load_fake, &src, &v), KITE_OK);
	free(v.data);
	execs = atomic_load(&nd.execs);
	assert_int_equal(kite_cache_get(c, "cold", 4, load_fake, &src, &v), KITE_OK);
	free(v.data);
	assert_int_equal(atomic_load(&nd.execs), execs + 1);
	/* Its own write drops it from the L1. */
	assert_int_equal(kite_cache_invalidate(c, "hotkey", 6), KITE_OK);
	kite_cache_stats(c, &st);
	assert_int_equal(st.l1_entries, 0);
	kite_cache_close(c);
}

/* A dead cache: the breaker opens, the loader is used within the fallback rate, then it closes. */
static void
test_breaker(void **state)
{
	struct kite_cache_options o = { .breaker_failures = 3, .breaker_open_ms = 1000,
					.fallback_rate = 10, .fallback_burst = 5 };
	struct kite_cache *c;
	struct source src = { 0 };
	struct kite_value v;
	struct kite_cache_stats st;
	unsigned int ok = 0, limited = 0, execs;

	(void)state;
	node_reset();
	c = open_cache(&o);
	atomic_store(&nd.down, true);
	/* Each call during the failures still answers, from the loader. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(kite_cache_get(c, "d", 1, load_fake, &src, &v), KITE_OK);
		free(v.data);
	}
	kite_cache_stats(c, &st);
	assert_int_equal(st.breaker_opens, 1);
	assert_int_equal(st.breakers_open, 1);
	/* Open: the node is not asked; the loader at most burst, then rate per second. */
	execs = atomic_load(&nd.execs);
	for (int i = 0; i < 20; i++) {
		int rc = kite_cache_get(c, "d", 1, load_fake, &src, &v);
		if (rc == KITE_OK) {
			ok++;
			free(v.data);
		} else {
			assert_int_equal(rc, KITE_RATE_LIMITED);
			limited++;
		}
	}
	assert_int_equal(atomic_load(&nd.execs), execs);
	assert_int_equal(ok, 2); /* 5 tokens, 3 taken by the failures */
	assert_int_equal(limited, 18);
	advance(500); /* 5 more tokens */
	for (int i = 0; i < 10; i++)
		if (kite_cache_get(c, "d", 1, load_fake, &src, &v) == KITE_OK) {
			ok++;
			free(v.data);
		}
	assert_int_equal(ok, 7);
	/* The node is back: after open_ms a probe goes through and closes the breaker. */
	atomic_store(&nd.down, false);
	advance(600);
	assert_int_equal(kite_cache_get(c, "d", 1, load_fake, &src, &v), KITE_OK);
	free(v.data);
	assert_true(atomic_load(&nd.execs) > execs);
	kite_cache_stats(c, &st);
	assert_int_equal(st.breakers_open, 0);
	assert_int_equal(st.fallback_refused, 18 + 5);
	kite_cache_close(c);
}

/* Early recache (meta R): one client reloads ahead of expiry; the others keep hitting. */
static void
test_early_recache(void **state)
{
	struct kite_cache_options o = { .ttl_s = 100, .jitter_pct = KITE_CACHE_OFF, .early_s = 10 };
	struct kite_cache *c;
	struct source src = { 0 };
	struct kite_value v;
	struct kite_cache_stats st;

	(void)state;
	node_reset();
	c = open_cache(&o);
	assert_int_equal(kite_cache_get(c, "r", 1, load_fake, &src, &v), KITE_OK);
	free(v.data);
	advance(85 * 1000);
	assert_int_equal(kite_cache_get(c, "r", 1, load_fake, &src, &v), KITE_OK);
	free(v.data);
	assert_int_equal(atomic_load(&src.calls), 1);
	advance(6 * 1000); /* 9 s left: under R */
	assert_int_equal(kite_cache_get(c, "r", 1, load_fake, &src, &v), KITE_OK);
	free(v.data);
	assert_int_equal(atomic_load(&src.calls), 2);
	kite_cache_stats(c, &st);
	assert_int_equal(st.early_refreshes, 1);
	kite_cache_close(c);
}

/* A value another client stored without the cache's flag bits (a plain memcached set) is served. */
static void
test_foreign_value(void **state)
{
	struct kite_cache_options o = { .wait_ms = 2000 };
	struct kite_cache *c;
	struct source src = { 0 };
	struct kite_value v;
	struct kite_op op = { .type = KITE_META_SET, .key = "plain", .keylen = 5, .value = "hello",
			      .vallen = 5, .meta = "T60" };
	struct kite_cache_stats st;

	(void)state;
	node_reset();
	c = open_cache(&o);
	assert_int_equal(node_exec_fake(NULL, &op), KITE_OK);
	assert_int_equal(kite_cache_get(c, "plain", 5, load_fake, &src, &v), KITE_OK);
	assert_int_equal(v.len, 5);
	assert_memory_equal(v.data, "hello", 5);
	free(v.data);
	assert_int_equal(atomic_load(&src.calls), 0);
	kite_cache_stats(c, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.token_waits, 0);
	kite_cache_close(c);
}

/* XFetch: hits reload at random ahead of expiry, more likely the nearer it is; never far from it. */
static void
test_xfetch(void **state)
{
	struct kite_cache_options o = { .ttl_s = 2000, .jitter_pct = KITE_CACHE_OFF,
					.early_beta = 100 };
	struct kite_cache *c;
	struct source src = { .delay_ms = 100 }; /* delta: 0.1 s, so delta * beta = 10 s */
	struct kite_value v;
	struct kite_cache_stats st;
	int gets = 0;

	(void)state;
	node_reset();
	c = open_cache(&o);
	assert_int_equal(kite_cache_get(c, "x", 1, load_fake, &src, &v), KITE_OK);
	free(v.data);
	/* 1,999 s left: beyond 40 * delta * beta, never. */
	for (int i = 0; i < 200; i++) {
		assert_int_equal(kite_cache_get(c, "x", 1, load_fake, &src, &v), KITE_OK);
		free(v.data);
	}
	assert_int_equal(atomic_load(&src.calls), 1);
	/* 1 s left: each hit reloads with probability e^-0.1 (0.9). */
	advance(1998 * 1000);
	while (atomic_load(&src.calls) == 1 && gets < 50) {
		assert_int_equal(kite_cache_get(c, "x", 1, load_fake, &src, &v), KITE_OK);
		free(v.data);
		gets++;
	}
	assert_int_equal(atomic_load(&src.calls), 2);
	kite_cache_stats(c, &st);
	assert_int_equal(st.early_refreshes, 1);
	/* The refresh stored a new item: the next hits are far from expiry again. */
	for (int i = 0; i < 20; i++) {
		assert_int_equal(kite_cache_get(c, "x", 1, load_fake, &src, &v), KITE_OK);
		free(v.data);
	}
	assert_int_equal(atomic_load(&src.calls), 2);
	kite_cache_close(c);
}

/* fork(): the child uses the cache with fresh state, even with a load in flight in the parent. */
static void
test_fork(void **state)
{
	struct kite_cache_options o = { 0 };
	struct kite_cache *c;
	struct source slow = { .delay_ms = 200 }, src = { 0 };
	struct getter g;
	pthread_t th;
	pid_t pid;
	int status;

	(void)state;
	node_reset();
	c = open_cache(&o);
	g = (struct getter){ .c = c, .src = &slow, .key = "inflight" };
	pthread_create(&th, NULL, getter_main, &g);
	struct timespec ts = { 0, 50 * 1000000L };
	nanosleep(&ts, NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct kite_value v;
		/* The parent's flight is not ours: no waiting for a thread that is not here. */
		int rc = kite_cache_get(c, "other", 5, load_fake, &src, &v);
		_exit(rc == KITE_OK ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	pthread_join(th, NULL);
	assert_int_equal(g.rc, KITE_OK);
	free(g.v.data);
	kite_cache_close(c);
}

/* ---- write-behind ---------------------------------------------------------------- */

static struct wlog {
	pthread_mutex_t lock;
	unsigned int n, fail_next;
	char last_key[64], last_val[64];
	bool last_del;
	int fd; /* >= 0: each write also appended here (the fork test) */
} wl = { .lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1 };

static int
wb_writer_fake(void *arg, const void *key, size_t keylen, const void *value, size_t len,
	       uint32_t flags)
{
	int rc = KITE_OK;

	(void)arg;
	(void)flags;
	pthread_mutex_lock(&wl.lock);
	if (wl.fail_next > 0) {
		wl.fail_next--;
		rc = KITE_SYSTEM;
	} else {
		wl.n++;
		snprintf(wl.last_key, sizeof(wl.last_key), "%.*s", (int)keylen, (const char *)key);
		snprintf(wl.last_val, sizeof(wl.last_val), "%.*s", (int)len,
			 value != NULL ? (const char *)value : "");
		wl.last_del = value == NULL;
		if (wl.fd >= 0 && write(wl.fd, "w\n", 2) != 2)
			rc = KITE_SYSTEM;
	}
	pthread_mutex_unlock(&wl.lock);
	return rc;
}

static unsigned int
wl_count(void)
{
	unsigned int n;

	pthread_mutex_lock(&wl.lock);
	n = wl.n;
	pthread_mutex_unlock(&wl.lock);
	return n;
}

static void
real_sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* The cache at once, the source within wb_delay_ms, writes to one key coalesced. */
static void
test_write_behind(void **state)
{
	struct kite_cache_options o = { .wb_writer = wb_writer_fake, .wb_delay_ms = 200,
					.jitter_pct = KITE_CACHE_OFF };
	struct kite_cache *c;
	struct source src = { 0 };
	struct kite_value v;
	struct kite_cache_stats st;
	char val[16];

	(void)state;
	node_reset();
	wl.n = 0;
	c = open_cache(&o);
	for (int i = 0; i < 10; i++) {
		snprintf(val, sizeof(val), "v%d", i);
		assert_int_equal(kite_cache_write_behind(c, "wb", 2, val, strlen(val), 3), KITE_OK);
	}
	/* Readers see the last value now, from the cache: the loader is not asked. */
	assert_int_equal(kite_cache_get(c, "wb", 2, load_fake, &src, &v), KITE_OK);
	assert_int_equal(v.len, 2);
	assert_memory_equal(v.data, "v9", 2);
	assert_int_equal(v.flags, 3);
	free(v.data);
	assert_int_equal(atomic_load(&src.calls), 0);
	/* Not yet due (the fake clock stands still): nothing written. */
	real_sleep_ms(150);
	assert_int_equal(wl_count(), 0);
	kite_cache_stats(c, &st);
	assert_int_equal(st.wb_depth, 1);
	assert_int_equal(st.wb_coalesced, 9);
	/* Due: written once, the last value, within a tick of the writer thread. */
	advance(200);
	for (int i = 0; i < 100 && wl_count() == 0; i++)
		real_sleep_ms(10);
	assert_int_equal(wl_count(), 1);
	assert_string_equal(wl.last_val, "v9");
	/* A delete: the cache forgets the key now, the source later. */
	assert_int_equal(kite_cache_write_behind(c, "wb", 2, NULL, 0, 0), KITE_OK);
	src.rc = KITE_NOT_FOUND;
	assert_int_equal(kite_cache_get(c, "wb", 2, load_fake, &src, &v), KITE_NOT_FOUND);
	assert_int_equal(kite_cache_flush(c), KITE_OK);
	assert_int_equal(wl_count(), 2);
	assert_true(wl.last_del);
	kite_cache_stats(c, &st);
	assert_int_equal(st.wb_queued, 11);
	assert_int_equal(st.wb_written, 2);
	assert_int_equal(st.wb_depth, 0);
	/* Bad calls. */
	assert_int_equal(kite_cache_write_behind(c, "wb", 2, NULL, 3, 0), KITE_BAD_ARGUMENT);
	assert_int_equal(kite_cache_write_behind(c, "wb", 2, "x", 1, KITE_CACHE_F_NEGATIVE),
			 KITE_BAD_ARGUMENT);
	kite_cache_close(c);
	o.wb_writer = NULL;
	c = open_cache(&o);
	assert_int_equal(kite_cache_write_behind(c, "wb", 2, "x", 1, 0), KITE_BAD_ARGUMENT);
	kite_cache_close(c);
}

/* A bounded queue; failures tried again, then given up; close writes what is queued. */
static void
test_write_behind_limits(void **state)
{
	struct kite_cache_options o = { .wb_writer = wb_writer_fake, .wb_delay_ms = 100000,
					.wb_queue = 4 };
	struct kite_cache *c;
	struct kite_cache_stats st;
	char key[16];

	(void)state;
	node_reset();
	wl.n = 0;
	c = open_cache(&o);
	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "q%d", i);
		assert_int_equal(kite_cache_write_behind(c, key, strlen(key), "x", 1, 0),
				 i < 4 ? KITE_OK : KITE_RATE_LIMITED);
	}
	/* A key already queued still coalesces into its slot. */
	assert_int_equal(kite_cache_write_behind(c, "q0", 2, "y", 1, 0), KITE_OK);
	kite_cache_stats(c, &st);
	assert_int_equal(st.wb_dropped, 1);
	assert_int_equal(st.wb_depth, 4);
	/* The refused write never reached the cache either. */
	pthread_mutex_lock(&nd.lock);
	assert_null(find("q4", 2, false));
	pthread_mutex_unlock(&nd.lock);
	/* Two failures, then it goes through. */
	wl.fail_next = 2;
	assert_int_equal(kite_cache_flush(c), KITE_OK);
	assert_int_equal(wl_count(), 4);
	kite_cache_stats(c, &st);
	assert_int_equal(st.wb_retries, 2);
	assert_int_equal(st.wb_failed, 0);
	/* Three failures: given up. */
	wl.fail_next = 3;
	assert_int_equal(kite_cache_write_behind(c, "q9", 2, "x", 1, 0), KITE_OK);
	assert_int_equal(kite_cache_flush(c), KITE_OK);
	kite_cache_stats(c, &st);
	assert_int_equal(st.wb_failed, 1);
	assert_int_equal(wl_count(), 4);
	/* Close writes what is queued, due or not. */
	assert_int_equal(kite_cache_write_behind(c, "q1", 2, "z", 1, 0), KITE_OK);
	assert_int_equal(kite_cache_write_behind(c, "q2", 2, "z", 1, 0), KITE_OK);
	kite_cache_close(c);
	assert_int_equal(wl_count(), 6);
}

/*
 * The loss window: a process that dies with writes queued loses them
 * (the cache has them, the source does not); one that closes the cache
 * loses none.
 */
static void
test_write_behind_loss(void **state)
{
	char path[] = "/tmp/kite-wb-XXXXXX";
	int fd = mkstemp(path), status;
	struct kite_cache_options o = { .wb_writer = wb_writer_fake, .wb_delay_ms = 100000 };

	(void)state;
	assert_true(fd >= 0);
	node_reset();
	for (int crash = 0; crash < 2; crash++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct kite_cache *c;
			char key[16];

			wl.fd = fd;
			wl.n = 0;
			if (kite_cache_open_backend(&c, &o, &be) != KITE_OK)
				_exit(2);
			for (int i = 0; i < 20; i++) {
				snprintf(key, sizeof(key), "loss%d", i);
				if (kite_cache_write_behind(c, key, strlen(key), "x", 1, 0) != KITE_OK)
					_exit(3);
			}
			if (crash)
				_exit(0); /* as kill -9: nothing more runs */
			kite_cache_close(c);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		off_t size = lseek(fd, 0, SEEK_END);
		/* Closed: all 20 written; crashed: the 20 queued ones lost. */
		assert_int_equal(size, crash ? 0 : 40);
		if (!crash)
			assert_int_equal(ftruncate(fd, 0), 0);
	}
	close(fd);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_aside),
		cmocka_unit_test(test_jitter),
		cmocka_unit_test(test_penetration),
		cmocka_unit_test(test_single_flight),
		cmocka_unit_test(test_tokens_across_processes),
		cmocka_unit_test(test_wait_timeout),
		cmocka_unit_test(test_stale_while_revalidate),
		cmocka_unit_test(test_late_fill),
		cmocka_unit_test(test_write_and_read_through),
		cmocka_unit_test(test_l1),
		cmocka_unit_test(test_breaker),
		cmocka_unit_test(test_early_recache),
		cmocka_unit_test(test_xfetch),
		cmocka_unit_test(test_foreign_value),
		cmocka_unit_test(test_fork),
		cmocka_unit_test(test_write_behind),
		cmocka_unit_test(test_write_behind_limits),
		cmocka_unit_test(test_write_behind_loss),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
