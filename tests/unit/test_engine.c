/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Engine tests: whole datagrams in, reply datagrams out, against real
 * store partitions. Requests are built byte by byte here so that a bug in
 * the codec cannot hide a bug in the engine.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_common.h>
#include <rte_errno.h>
#include <rte_malloc.h>

#include <xxhash.h>

#include "kite_engine.h"
#include "kite_test.h"

#define NPARTS	 4
#define MAX_OUT	 1100
#define PAYLOAD	 1472
#define NOW	 1800000000u

static struct kite_store *parts[NPARTS];
static struct kite_engine_stats wstats;

/* Reply datagrams captured from the engine. */
static uint8_t out_buf[MAX_OUT][PAYLOAD];
static uint16_t out_len[MAX_OUT];
static unsigned int n_out;
static unsigned int done_calls;
static unsigned int alloc_budget; /* allocations allowed before NULL */

static uint8_t *
t_alloc(void *arg, unsigned int idx)
{
	(void)arg;
	if (alloc_budget == 0 || n_out + idx >= MAX_OUT)
		return NULL;
	alloc_budget--;
	return out_buf[n_out + idx];
}

static unsigned int inplace_used;

static void
t_done(void *arg, unsigned int n, uint8_t *const *bufs, const uint16_t *lens, bool inplace)
{
	(void)arg;
	for (unsigned int i = 0; i < n; i++) {
		out_len[n_out + i] = lens[i];
		/* The engine says when the first reply is the request's own buffer. */
		assert_true((bufs[i] != out_buf[n_out + i]) == (i == 0 && inplace));
		if (bufs[i] != out_buf[n_out + i]) {
			/* Answered in the request's buffer: keep a copy like the others. */
			assert_int_equal(i, 0);
			memcpy(out_buf[n_out + i], bufs[i], lens[i]);
			inplace_used++;
		}
	}
	n_out += n;
	done_calls++;
}

/* Data-path steps kited --ablate turns off, as bits (kited's order). */
enum { NO_BULK = 1u << 0, NO_PREFETCH = 1u << 1, NO_INPLACE = 1u << 2, NO_TXBATCH = 1u << 3 };

/* The tests' engine configuration: NPARTS partitions, replies to t_alloc/t_done. */
static void
engine_conf(struct kite_engine_conf *c, uint16_t workers, uint16_t self, uint16_t payload,
	    unsigned int ablate)
{
	memset(c, 0, sizeof(*c));
	c->map.partitions = NPARTS;
	c->map.workers = workers;
	c->map.base_port = 11211;
	c->self = self;
	c->parts = parts;
	c->max_item_size = 8192;
	c->max_payload = payload;
	c->stats = &wstats;
	c->out.alloc = t_alloc;
	c->out.done = t_done;
	c->no_bulk = (ablate & NO_BULK) != 0;
	c->no_prefetch = (ablate & NO_PREFETCH) != 0;
	c->no_inplace = (ablate & NO_INPLACE) != 0;
}

static struct kite_engine *
make_engine_ablated(uint16_t workers, uint16_t self, uint16_t payload, unsigned int ablate)
{
	struct kite_engine_conf c;
	struct kite_engine *e;

	engine_conf(&c, workers, self, payload, ablate);
	e = kite_engine_create(&c, 0);
	assert_non_null(e);
	kite_engine_set_time(e, NOW);
	return e;
}

static struct kite_engine *
make_engine(uint16_t workers, uint16_t self, uint16_t payload)
{
	return make_engine_ablated(workers, self, payload, 0);
}

/* ---- request builder --------------------------------------------------- */

struct dg {
	uint8_t b[70000];
	uint32_t len;
};

static void
dg_start(struct dg *d, uint16_t req_id)
{
	memset(d->b, 0, 8);
	d->b[0] = (uint8_t)(req_id >> 8);
	d->b[1] = (uint8_t)req_id;
	d->b[5] = 1; /* total = 1 */
	d->len = 8;
}

static void
be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void
dg_req(struct dg *d, uint8_t op, uint32_t opaque, uint64_t cas, const void *ext, uint8_t extlen,
       const char *key, const void *val, uint32_t vallen)
{
	uint8_t *p = d->b + d->len;
	uint16_t keylen = key ? (uint16_t)strlen(key) : 0;
	uint32_t body = extlen + keylen + vallen;

	memset(p, 0, 24);
	p[0] = 0x80;
	p[1] = op;
	be(p + 2, keylen, 2);
	p[4] = extlen;
	be(p + 8, body, 4);
	be(p + 12, opaque, 4);
	be(p + 16, cas, 8);
	if (extlen)
		memcpy(p + 24, ext, extlen);
	if (keylen)
		memcpy(p + 24 + extlen, key, keylen);
	if (vallen)
		memcpy(p + 24 + extlen + keylen, val, vallen);
	d->len += 24 + body;
}

static void
dg_set(struct dg *d, uint8_t op, uint32_t opaque, const char *key, const char *val,
       uint32_t flags, uint32_t exp)
{
	uint8_t ext[8];

	be(ext, flags, 4);
	be(ext + 4, exp, 4);
	dg_req(d, op, opaque, 0, ext, 8, key, val, (uint32_t)strlen(val));
}

/* ---- reply reader ------------------------------------------------------ */

struct res {
	uint8_t opcode;
	uint16_t status;
	uint32_t opaque;
	uint64_t cas;
	uint8_t extlen;
	uint16_t keylen;
	uint32_t bodylen;
	uint8_t body[9000];
};

static uint64_t
rd(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Concatenate reply datagrams (checking their frames) into one stream. */
static uint32_t
stream(uint16_t req_id, uint8_t *s, uint32_t cap)
{
	uint32_t n = 0;

	for (unsigned int i = 0; i < n_out; i++) {
		const uint8_t *f = out_buf[i];
		assert_int_equal(rd(f, 2), req_id);
		assert_int_equal(rd(f + 2, 2), i);
		assert_int_equal(rd(f + 4, 2), n_out);
		assert_true(out_len[i] >= 8 && out_len[i] <= PAYLOAD);
		assert_true(n + out_len[i] - 8 <= cap);
		memcpy(s + n, f + 8, out_len[i] - 8u);
		n += out_len[i] - 8u;
	}
	return n;
}

static unsigned int
parse_all(uint16_t req_id, struct res *r, unsigned int max)
{
	static uint8_t s[MAX_OUT * PAYLOAD];
	uint32_t len = stream(req_id, s, sizeof(s)), off = 0;
	unsigned int k = 0;

	while (off < len) {
		const uint8_t *p = s + off;
		assert_true(len - off >= 24);
		assert_int_equal(p[0], 0x81);
		assert_true(k < max);
		r[k].opcode = p[1];
		r[k].keylen = (uint16_t)rd(p + 2, 2);
		r[k].extlen = p[4];
		r[k].status = (uint16_t)rd(p + 6, 2);
		r[k].bodylen = (uint32_t)rd(p + 8, 4);
		r[k].opaque = (uint32_t)rd(p + 12, 4);
		r[k].cas = rd(p + 16, 8);
		assert_true(len - off - 24 >= r[k].bodylen);
		if (r[k].bodylen <= sizeof(r[k].body))
			memcpy(r[k].body, p + 24, r[k].bodylen);
		off += 24 + r[k].bodylen;
		k++;
	}
	return k;
}

/* Run one datagram with fresh output counters; inplace lets the reply reuse its buffer. */
static void
run_dgram(struct kite_engine *e, struct dg *d, bool inplace)
{
	struct kite_engine_dgram g = { d->b, d->len, true, inplace, NULL };

	n_out = 0;
	done_calls = 0;
	inplace_used = 0;
	alloc_budget = MAX_OUT;
	kite_engine_process(e, &g, 1);
}

static void
run(struct kite_engine *e, struct dg *d)
{
	run_dgram(e, d, false);
}

static int
setup(void **state)
{
	struct kite_store_params p;
	char name[32];

	(void)state;
	memset(&wstats, 0, sizeof(wstats));
	for (int i = 0; i < NPARTS; i++) {
		memset(&p, 0, sizeof(p));
		snprintf(name, sizeof(name), "teng_%d", i);
		p.name = name;
		p.socket_id = 0;
		p.mem_bytes = 4 << 20;
		p.max_item_size = 8192;
		p.id = (uint16_t)i;
		parts[i] = kite_store_create(&p);
		if (parts[i] == NULL)
			return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	for (int i = 0; i < NPARTS; i++)
		kite_store_free(parts[i]);
	return 0;
}

/* ---- tests ------------------------------------------------------------- */

static void
test_create_invalid(void **state)
{
	struct kite_engine_conf c;

	(void)state;
	assert_null(kite_engine_create(NULL, 0));
	memset(&c, 0, sizeof(c));
	assert_null(kite_engine_create(&c, 0));
	assert_int_equal(rte_errno, EINVAL);
	c.map.partitions = NPARTS;
	c.map.workers = 2;
	c.self = 2; /* not a worker */
	c.parts = parts;
	c.stats = &wstats;
	c.out.alloc = t_alloc;
	c.out.done = t_done;
	c.max_payload = PAYLOAD;
	assert_null(kite_engine_create(&c, 0));
	c.self = 0;
	c.max_payload = 16; /* cannot hold a header */
	assert_null(kite_engine_create(&c, 0));
}

static void
test_get_miss_and_hit(void **state)
{
	struct kite_engine *e = make_engine(1, 0, PAYLOAD);
	struct dg d;
	struct res r[4];

	(void)state;
	dg_start(&d, 7);
	dg_req(&d, KITE_OP_GET, 0x11, 0, NULL, 0, "nokey", NULL, 0);
	run(e, &d);
	assert_int_equal(n_out, 1);
	assert_int_equal(parse_all(7, r, 4), 1);
	assert_int_equal(r[0].status, KITE_STATUS_KEY_ENOENT);
	assert_int_equal(r[0].opaque, 0x11);
	assert_int_equal(r[0].bodylen, 9);
	assert_memory_equal(r[0].body, "Not found", 9);

	dg_start(&d, 8);
	dg_set(&d, KITE_OP_SET, 1, "k1", "value-1", 0xdeadbeef, 0);
	dg_req(&d, KITE_OP_GET, 2, 0, NULL, 0, "k1", NULL, 0);
	dg_req(&d, KITE_OP_GETK, 3, 0, NULL, 0, "k1", NULL, 0);
	const uint64_t copied = wstats.copied_bytes;
	run(e, &d);
	/* Bytes copied: the SET's key and value into the store, the GET's value, the GETK's both. */
	assert_int_equal(wstats.copied_bytes - copied, (2 + 7) + 7 + (2 + 7));
	assert_int_equal(parse_all(8, r, 4), 3);
	assert_int_equal(r[0].status, 0);
	assert_int_not_equal(r[0].cas, 0);
	assert_int_equal(r[1].status, 0);
	assert_int_equal(r[1].extlen, 4);
	assert_int_equal(rd(r[1].body, 4), 0xdeadbeef);
	assert_memory_equal(r[1].body + 4, "value-1", 7);
	assert_int_equal(r[1].cas, r[0].cas);
	assert_int_equal(r[2].keylen, 2);
	assert_memory_equal(r[2].body + 4, "k1value-1", 9);
	kite_engine_free(e);
}

static void
test_quiet_batch_one_datagram(void **state)
{
	struct kite_engine *e = make_engine(1, 0, PAYLOAD);
	struct dg d;
	struct res r[32];
	char key[16];

	(void)state;
	dg_start(&d, 1);
	for (int i = 0; i < 16; i++) {
		snprintf(key, sizeof(key), "bk%d", i);
		dg_set(&d, KITE_OP_SETQ, (uint32_t)i, key, "v", 0, 0);
	}
	run(e, &d);
	assert_int_equal(n_out, 0); /* quiet stores are silent */

	dg_start(&d, 2);
	for (int i = 0; i < 16; i++) {
		snprintf(key, sizeof(key), i % 2 ? "bk%d" : "missing%d", i);
		dg_req(&d, KITE_OP_GETKQ, (uint32_t)i, 0, NULL, 0, key, NULL, 0);
	}
	dg_req(&d, KITE_OP_NOOP, 99, 0, NULL, 0, NULL, NULL, 0);
	run(e, &d);
	assert_int_equal(n_out, 1); /* 8 hits and the NOOP pack into one datagram */
	assert_int_equal(parse_all(2, r, 32), 9);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(r[i].opaque, (uint32_t)(2 * i + 1));
		assert_int_equal(r[i].opcode, KITE_OP_GETKQ);
	}
	assert_int_equal(r[8].opcode, KITE_OP_NOOP);
	kite_engine_free(e);
}

static void
test_large_reply_split(void **state)
{
	struct kite_engine *e = make_engine(1, 0, PAYLOAD);
	static char big[6001];
	struct dg d;
	struct res r[2];

	(void)state;
	memset(big, 'x', 6000);
	big[0] = 'A';
	big[5999] = 'Z';
	dg_start(&d, 3);
	dg_set(&d, KITE_OP_SET, 1, "big", big, 0, 0);
	run(e, &d);
	dg_start(&d, 4);
	dg_req(&d, KITE_OP_GET, 5, 0, NULL, 0, "big", NULL, 0);
	run(e, &d);
	assert_int_equal(n_out, 5); /* 6028 bytes of response in 1464-byte pieces */
	assert_int_equal(done_calls, 1);
	assert_int_equal(parse_all(4, r, 2), 1);
	assert_int_equal(r[0].bodylen, 6004);
	assert_int_equal(r[0].body[4], 'A');
	assert_int_equal(r[0].body[6003], 'Z');
	kite_engine_free(e);
}

static void
test_small_responses_never_straddle(void **state)
{
	struct kite_engine *e = make_engine(1, 0, 200);
	struct dg d;
	char key[16];

	(void)state;
	dg_start(&d, 9);
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "s%02d", i);
		dg_set(&d, KITE_OP_SET, (uint32_t)i, key, "0123456789012345678901234567890123456789",
		       0, 0);
	}
	run(e, &d);
	dg_start(&d, 10);
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "s%02d", i);
		dg_req(&d, KITE_OP_GETK, (uint32_t)i, 0, NULL, 0, key, NULL, 0);
	}
	run(e, &d);
	/* Each response is 24 + 4 + 3 + 40 = 71 bytes: two fit per 200-byte datagram. */
	assert_int_equal(n_out, 10);
	for (unsigned int i = 0; i < n_out; i++) {
		assert_int_equal(out_len[i], 8 + 2 * 71);
		assert_int_equal(out_buf[i][8], 0x81); /* each datagram starts with a header */
	}
	kite_engine_free(e);
}

static void
test_errors_and_next_request(void **state)
{
	struct kite_engine *e = make_engine(1, 0, PAYLOAD);
	struct dg d;
	struct res r[4];
	uint64_t before = wstats.err_replies;

	(void)state;
	dg_start(&d, 5);
	dg_req(&d, 0xee, 1, 0, NULL, 0, NULL, NULL, 0); /* reserved/unknown opcode */
	dg_set(&d, KITE_OP_SET, 2, "after", "ok", 0, 0);
	run(e, &d);
	assert_int_equal(parse_all(5, r, 4), 2);
	assert_int_equal(r[0].status, KITE_STATUS_UNKNOWN_COMMAND);
	assert_int_equal(r[0].opaque, 1);
	assert_int_equal(r[1].status, KITE_STATUS_OK);
	assert_int_equal(wstats.err_replies, before + 1);

	/* GET with extras: invalid, reply EINVAL; the store is untouched. */
	uint8_t ext[4] = { 0 };
	dg_start(&d, 6);
	dg_req(&d, KITE_OP_GET, 3, 0, ext, 4, "after", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(6, r, 4), 1);
	assert_int_equal(r[0].status, KITE_STATUS_EINVAL);

	/*
	 * A binary datagram: a bad magic after a request drops the rest; the
	 * next datagram is served normally. (A bad first byte makes the
	 * datagram text: 'B' starts like a response line, dropped and counted.)
	 */
	uint64_t drops = wstats.proto_drops[KITE_PROTO_DROP_BAD_MAGIC];
	uint64_t tdrops = wstats.proto_drops[KITE_PROTO_DROP_TEXT_RESPONSE];
	dg_start(&d, 7);
	dg_req(&d, KITE_OP_NOOP, 4, 0, NULL, 0, NULL, NULL, 0);
	dg_req(&d, KITE_OP_NOOP, 4, 0, NULL, 0, NULL, NULL, 0);
	d.b[8 + 24] = 0x42;
	run(e, &d);
	assert_int_equal(n_out, 1); /* the first NOOP */
	assert_int_equal(wstats.proto_drops[KITE_PROTO_DROP_BAD_MAGIC], drops + 1);
	dg_start(&d, 7);
	dg_req(&d, KITE_OP_NOOP, 4, 0, NULL, 0, NULL, NULL, 0);
	d.b[8] = 0x42;
	run(e, &d);
	assert_int_equal(n_out, 0);
	assert_int_equal(wstats.proto_drops[KITE_PROTO_DROP_TEXT_RESPONSE], tdrops + 1);
	dg_start(&d, 8);
	dg_req(&d, KITE_OP_GET, 5, 0, NULL, 0, "after", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(8, r, 4), 1);
	assert_int_equal(r[0].status, KITE_STATUS_OK);
	assert_memory_equal(r[0].body + 4, "ok", 2);

	/* A frame that says total != 1 is dropped and counted. */
	drops = wstats.proto_drops[KITE_PROTO_DROP_MULTI_DGRAM];
	dg_start(&d, 9);
	dg_req(&d, KITE_OP_NOOP, 6, 0, NULL, 0, NULL, NULL, 0);
	d.b[5] = 2;
	run(e, &d);
	assert_int_equal(n_out, 0);
	assert_int_equal(wstats.proto_drops[KITE_PROTO_DROP_MULTI_DGRAM], drops + 1);
	kite_engine_free(e);
}

static void
test_quit_and_quitq(void **state)
{
	struct kite_engine *e = make_engine(1, 0, PAYLOAD);
	struct dg d;
	struct res r[4];

	(void)state;
	dg_start(&d, 1);
	dg_req(&d, KITE_OP_NOOP, 1, 0, NULL, 0, NULL, NULL, 0);
	dg_req(&d, KITE_OP_QUITQ, 2, 0, NULL, 0, NULL, NULL, 0);
	dg_req(&d, KITE_OP_NOOP, 3, 0, NULL, 0, NULL, NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(1, r, 4), 1);
	assert_int_equal(r[0].opaque, 1);

	dg_start(&d, 2);
	dg_req(&d, KITE_OP_QUIT, 4, 0, NULL, 0, NULL, NULL, 0);
	dg_req(&d, KITE_OP_NOOP, 5, 0, NULL, 0, NULL, NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(2, r, 4), 1);
	assert_int_equal(r[0].opcode, KITE_OP_QUIT);
	assert_int_equal(r[0].status, 0);
	kite_engine_free(e);
}

/*
 * The program composes STAT (app/kited/stats.c); the engine only frames
 * what its callback emits. This one emits the partitions' store counters.
 */
static bool
stat_stores(void *arg, uint32_t now, const uint8_t *group, uint16_t grouplen,
	    kite_engine_emit_fn emit, void *emit_arg)
{
	struct kite_store *const *ps = arg;
	struct kite_store_stats one;
	uint64_t sum[KITE_STORE_STATS_N] = { 0 };
	char v[24];

	(void)now;
	(void)group;
	if (grouplen != 0)
		return false;
	for (int p = 0; p < NPARTS; p++) {
		kite_store_stats_get(ps[p], &one);
		for (size_t i = 0; i < KITE_STORE_STATS_N; i++)
			sum[i] += ((const uint64_t *)&one)[i];
	}
	for (size_t i = 0; i < KITE_STORE_STATS_N; i++) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)sum[i]);
		emit(emit_arg, kite_store_stats_names[i], v);
	}
	return true;
}

static void
test_incr_flush_version_stat(void **state)
{
	struct kite_engine *e = make_engine(1, 0, PAYLOAD);
	struct dg d;
	static struct res r[200];
	uint8_t ext[20];
	unsigned int n;

	(void)state;
	be(ext, 5, 8);
	be(ext + 8, 100, 8);
	be(ext + 16, 0, 4);
	dg_start(&d, 1);
	dg_req(&d, KITE_OP_INCREMENT, 1, 0, ext, 20, "ctr", NULL, 0);
	dg_req(&d, KITE_OP_INCREMENT, 2, 0, ext, 20, "ctr", NULL, 0);
	dg_req(&d, KITE_OP_VERSION, 3, 0, NULL, 0, NULL, NULL, 0);
	dg_req(&d, KITE_OP_FLUSH, 4, 0, NULL, 0, NULL, NULL, 0);
	dg_req(&d, KITE_OP_GET, 5, 0, NULL, 0, "ctr", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(1, r, 8), 5);
	assert_int_equal(rd(r[0].body, 8), 100); /* created with the initial value */
	assert_int_equal(rd(r[1].body, 8), 105);
	assert_int_equal(r[2].bodylen, strlen(KITE_VERSION));
	assert_int_equal(r[3].status, 0);
	assert_int_equal(r[4].status, KITE_STATUS_KEY_ENOENT);

	/* STAT: memcached-named values, then an empty terminator. */
	struct kite_engine_conf c;
	memset(&c, 0, sizeof(c));
	kite_engine_free(e);
	c.map.partitions = NPARTS;
	c.map.workers = 1;
	c.parts = parts;
	c.max_item_size = 8192;
	c.max_payload = PAYLOAD;
	c.stats = &wstats;
	c.stat = stat_stores;
	c.stat_arg = parts;
	c.out.alloc = t_alloc;
	c.out.done = t_done;
	e = kite_engine_create(&c, 0);
	assert_non_null(e);
	dg_start(&d, 2);
	dg_req(&d, KITE_OP_STAT, 6, 0, NULL, 0, NULL, NULL, 0);
	run(e, &d);
	n = parse_all(2, r, 200);
	assert_true(n > 10);
	assert_int_equal(r[n - 1].keylen, 0);
	assert_int_equal(r[n - 1].bodylen, 0);
	bool seen = false;
	for (unsigned int i = 0; i < n; i++)
		if (r[i].keylen == 10 && memcmp(r[i].body, "curr_items", 10) == 0)
			seen = true;
	assert_true(seen);
	/* An unknown group is "Not found". */
	dg_start(&d, 3);
	dg_req(&d, KITE_OP_STAT, 7, 0, NULL, 0, "nosuchgroup", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(3, r, 2), 1);
	assert_int_equal(r[0].status, KITE_STATUS_KEY_ENOENT);
	kite_engine_free(e);
}

/*
 * The workers that must see datagram d, as phase 1 tells the worker that
 * received it; the datagram is then withdrawn, as one handed off whole is.
 */
static uint64_t
route_of(struct kite_engine *e, struct dg *d)
{
	struct kite_engine_dgram g = { d->b, d->len, true, false, NULL };
	uint64_t mask = kite_engine_parse(e, &g);

	kite_engine_withdraw(e);
	return mask;
}

static void
test_route_and_ownership(void **state)
{
	struct kite_engine *e0 = make_engine(2, 0, PAYLOAD);
	struct kite_engine *e1 = make_engine(2, 1, PAYLOAD);
	struct dg d;
	struct res r[4];
	char k0[16] = "", k1[16] = "", key[16];

	(void)state;
	/* Find one key owned by each worker (owner = partition % 2). */
	for (int i = 0; k0[0] == '\0' || k1[0] == '\0'; i++) {
		snprintf(key, sizeof(key), "rk%d", i);
		uint32_t p = kite_topo_key_partition(key, (uint16_t)strlen(key), NPARTS);
		strcpy(p % 2 ? k1 : k0, key);
	}
	dg_start(&d, 1);
	dg_req(&d, KITE_OP_GET, 1, 0, NULL, 0, k1, NULL, 0);
	assert_int_equal(route_of(e0, &d), 2);
	dg_req(&d, KITE_OP_GET, 2, 0, NULL, 0, k0, NULL, 0);
	assert_int_equal(route_of(e0, &d), 3);
	dg_start(&d, 1);
	dg_req(&d, KITE_OP_FLUSH, 3, 0, NULL, 0, NULL, NULL, 0);
	assert_int_equal(route_of(e1, &d), 3);
	dg_start(&d, 1);
	d.b[5] = 0; /* unframable: counted where it arrived */
	assert_int_equal(route_of(e1, &d), 2);

	/* Worker 0 answers its own key only; the other is left to worker 1. */
	uint64_t skipped = wstats.not_owned;
	dg_start(&d, 2);
	dg_set(&d, KITE_OP_SET, 1, k0, "zero", 0, 0);
	dg_set(&d, KITE_OP_SET, 2, k1, "one", 0, 0);
	run(e0, &d);
	assert_int_equal(parse_all(2, r, 4), 1);
	assert_int_equal(r[0].opaque, 1);
	assert_int_equal(wstats.not_owned, skipped + 1);
	struct kite_engine_dgram g = { d.b, d.len, false, false, NULL };
	n_out = 0;
	alloc_budget = MAX_OUT;
	kite_engine_process(e1, &g, 1);
	assert_int_equal(parse_all(2, r, 4), 1);
	assert_int_equal(r[0].opaque, 2);
	kite_engine_free(e0);
	kite_engine_free(e1);
}

static void
test_out_of_buffers(void **state)
{
	struct kite_engine *e = make_engine(1, 0, PAYLOAD);
	struct kite_engine_dgram g;
	struct dg d;
	uint64_t nombuf = wstats.nombuf;

	(void)state;
	dg_start(&d, 1);
	dg_req(&d, KITE_OP_NOOP, 1, 0, NULL, 0, NULL, NULL, 0);
	g = (struct kite_engine_dgram){ d.b, d.len, true, false, NULL };
	n_out = 0;
	alloc_budget = 0;
	kite_engine_process(e, &g, 1);
	assert_int_equal(n_out, 0);
	assert_int_equal(wstats.nombuf, nombuf + 1);
	/* Served normally once buffers are back. */
	run(e, &d);
	assert_int_equal(n_out, 1);
	kite_engine_free(e);
}

static void
test_burst_of_datagrams(void **state)
{
	struct kite_engine *e = make_engine(1, 0, PAYLOAD);
	static struct dg d[3];
	struct kite_engine_dgram g[3];
	char key[16];

	(void)state;
	/* SET in datagram 0 must be visible to the GET in datagram 2 of the same burst. */
	dg_start(&d[0], 10);
	dg_set(&d[0], KITE_OP_SETQ, 1, "burstkey", "v1", 0, 0);
	dg_start(&d[1], 11);
	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "none%d", i);
		dg_req(&d[1], KITE_OP_GETQ, (uint32_t)i, 0, NULL, 0, key, NULL, 0);
	}
	dg_start(&d[2], 12);
	dg_req(&d[2], KITE_OP_GET, 7, 0, NULL, 0, "burstkey", NULL, 0);
	for (int i = 0; i < 3; i++)
		g[i] = (struct kite_engine_dgram){ d[i].b, d[i].len, true, false, NULL };
	n_out = 0;
	done_calls = 0;
	alloc_budget = MAX_OUT;
	kite_engine_process(e, g, 3);
	assert_int_equal(done_calls, 1);
	assert_int_equal(n_out, 1);
	assert_int_equal(rd(out_buf[0], 2), 12);
	assert_int_equal(rd(out_buf[0] + 8 + 6, 2), 0);
	assert_memory_equal(out_buf[0] + 8 + 28, "v1", 2);
	kite_engine_free(e);
}

static void
test_topology(void **state)
{
	struct kite_engine *e = make_engine(2, 1, PAYLOAD);
	static struct kite_topology t;
	struct dg d;
	struct res r[2];

	(void)state;
	dg_start(&d, 3);
	dg_req(&d, KITE_OP_TOPOLOGY, 9, 0, NULL, 0, NULL, NULL, 0);
	/* Keyless: the receiving worker answers it. */
	assert_int_equal(route_of(e, &d), 2);
	run(e, &d);
	assert_int_equal(parse_all(3, r, 2), 1);
	assert_int_equal(r[0].status, 0);
	assert_int_equal(r[0].opcode, KITE_OP_TOPOLOGY);
	assert_int_equal(kite_topo_parse(r[0].body, r[0].bodylen, &t), 0);
	assert_int_equal(t.partitions, NPARTS);
	assert_int_equal(t.workers, 2);
	assert_int_equal(t.base_port, 11211);
	assert_int_equal(t.hash, KITE_TOPO_HASH_XXH64);
	for (int p = 0; p < NPARTS; p++) {
		assert_int_equal(t.port[p], 11211 + p);
		assert_int_equal(t.worker[p], p % 2);
	}
	/* With a body it is malformed. */
	dg_start(&d, 4);
	dg_req(&d, KITE_OP_TOPOLOGY, 10, 0, NULL, 0, "k", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(4, r, 2), 1);
	assert_int_equal(r[0].status, KITE_STATUS_EINVAL);
	kite_engine_free(e);
}


/* The replication hook: what it was told, call by call. */
struct repl_call {
	void *dgram;
	uint32_t vb;
	uint8_t kind;
	char key[16];
	bool has_view, silent;
	uint64_t cas;
	uint32_t exptime;
};
static struct repl_call repl_calls[16];
static unsigned int n_repl;

static void
t_repl(void *arg, void *dgram_arg, uint32_t vb, uint8_t kind, const uint8_t *key, uint16_t keylen,
       const struct kite_store_view *v, bool silent)
{
	struct repl_call *c = &repl_calls[n_repl++ % 16];

	assert_ptr_equal(arg, &n_repl);
	c->dgram = dgram_arg;
	c->vb = vb;
	c->kind = kind;
	memset(c->key, 0, sizeof(c->key));
	if (keylen > 0)
		memcpy(c->key, key, keylen < 15 ? keylen : 15);
	c->exptime = v != NULL ? v->exptime : 0;
	c->has_view = v != NULL;
	c->cas = v != NULL ? v->cas : 0;
	c->silent = silent;
}

/*
 * Replication hook: each successful mutation of an owned vbucket, with its
 * datagram's out_arg (sync replication holds that datagram's replies) and
 * whether its success is silent (quiet); reads, failures, and vbuckets
 * this node does not own emit nothing.
 */
static void
test_repl_hook(void **state)
{
	struct kite_engine_conf conf;
	struct kite_engine *e;
	static uint8_t role[1024];
	struct kite_engine_cluster c = { 7, 1023, role, NULL, NULL, 0 };
	struct kite_engine_dgram g;
	struct dg d;
	uint8_t delta[20] = { 0 };
	int tag;

	(void)state;
	engine_conf(&conf, 1, 0, PAYLOAD, 0);
	conf.repl = t_repl;
	conf.repl_arg = &n_repl;
	e = kite_engine_create(&conf, 0);
	assert_non_null(e);
	kite_engine_set_time(e, NOW);
	memset(role, KITE_ENGINE_ROLE_OWNER, sizeof(role));
	c.replicas = 1;
	/* "rh-other" is a replica's key here: never emitted. */
	role[XXH64("rh-other", 8, 0) % 1024] = KITE_ENGINE_ROLE_REPLICA;
	kite_engine_set_cluster(e, &c);

	n_repl = 0;
	dg_start(&d, 1);
	dg_set(&d, KITE_OP_SET, 1, "rh-a", "v1", 0, 0);
	dg_set(&d, KITE_OP_SETQ, 2, "rh-b", "v2", 0, 0);
	dg_set(&d, KITE_OP_ADD, 3, "rh-a", "v3", 0, 0); /* exists: fails, nothing emitted */
	dg_req(&d, KITE_OP_GET, 4, 0, NULL, 0, "rh-a", NULL, 0);
	dg_req(&d, KITE_OP_INCREMENT, 5, 0, delta, sizeof(delta), "rh-n", NULL, 0);
	dg_req(&d, KITE_OP_DELETEQ, 6, 0, NULL, 0, "rh-b", NULL, 0);
	dg_set(&d, KITE_OP_SET, 7, "rh-other", "x", 0, 0); /* not owned: NOT_MY_VBUCKET */
	g = (struct kite_engine_dgram){ d.b, d.len, true, false, &tag };
	n_out = 0;
	alloc_budget = MAX_OUT;
	kite_engine_process(e, &g, 1);
	assert_int_equal(n_repl, 4);
	for (unsigned int i = 0; i < 4; i++)
		assert_ptr_equal(repl_calls[i].dgram, &tag);
	assert_string_equal(repl_calls[0].key, "rh-a");
	assert_int_equal(repl_calls[0].kind, 1);
	assert_true(repl_calls[0].has_view && repl_calls[0].cas != 0);
	assert_false(repl_calls[0].silent);
	assert_string_equal(repl_calls[1].key, "rh-b");
	assert_true(repl_calls[1].silent); /* SETQ: its success has no response */
	assert_string_equal(repl_calls[2].key, "rh-n");
	assert_int_equal(repl_calls[2].kind, 1);
	assert_false(repl_calls[2].silent);
	assert_string_equal(repl_calls[3].key, "rh-b");
	assert_int_equal(repl_calls[3].kind, 2); /* a deletion: no item */
	assert_false(repl_calls[3].has_view);
	assert_true(repl_calls[3].silent);
	assert_int_equal(repl_calls[0].vb, (uint32_t)(XXH64("rh-a", 4, 0) % 1024));

	/* FLUSH: one call for every vbucket this worker owns, with its time, no datagram. */
	n_repl = 0;
	dg_start(&d, 3);
	dg_req(&d, KITE_OP_FLUSH, 1, 0, NULL, 0, NULL, NULL, 0);
	run(e, &d);
	assert_int_equal(n_repl, 1);
	assert_int_equal(repl_calls[0].kind, 3);
	assert_int_equal(repl_calls[0].vb, KITE_ENGINE_REPL_ALL);
	assert_null(repl_calls[0].dgram);
	assert_int_equal(repl_calls[0].exptime, 0);

	/* Without replicas in the view nothing is emitted. */
	c.replicas = 0;
	kite_engine_set_cluster(e, &c);
	n_repl = 0;
	dg_start(&d, 2);
	dg_set(&d, KITE_OP_SET, 1, "rh-a", "v9", 0, 0);
	run(e, &d);
	assert_int_equal(n_repl, 0);
	kite_engine_free(e);
}

/*
 * Cluster mode: a read needs the owner or a replica, a write the owner;
 * otherwise NOT_MY_VBUCKET with the epoch. A fenced node refuses writes
 * (ETMPFAIL) and keeps serving reads. CLUSTER_MAP returns the view's message.
 */
static void
test_cluster_roles(void **state)
{
	struct kite_engine *e = make_engine(1, 0, PAYLOAD);
	static uint8_t role[1024];
	static const uint8_t msg[] = { 1, 2, 3, 4, 5 };
	volatile uint64_t fence = UINT64_MAX;
	struct kite_engine_cluster c = { 0x0102030405060708ULL, 1023, role, &fence, msg,
					 sizeof(msg) };
	const char *keys[3];
	char kbuf[3][16];
	struct dg d;
	struct res r[8];

	(void)state;
	/* Three keys, one per role: owner, replica, none. */
	for (int want = 0, i = 0; want < 3; i++) {
		snprintf(kbuf[want], sizeof(kbuf[want]), "k%d", i);
		uint32_t vb = (uint32_t)(XXH64(kbuf[want], strlen(kbuf[want]), 0) % 1024);
		bool used = false;
		for (int j = 0; j < want; j++)
			used |= (uint32_t)(XXH64(kbuf[j], strlen(kbuf[j]), 0) % 1024) == vb;
		if (used)
			continue;
		role[vb] = want == 0 ? KITE_ENGINE_ROLE_OWNER
				     : want == 1 ? KITE_ENGINE_ROLE_REPLICA : KITE_ENGINE_ROLE_NONE;
		keys[want] = kbuf[want];
		want++;
	}
	kite_engine_set_cluster(e, &c);
	memset(&wstats, 0, sizeof(wstats));

	dg_start(&d, 1);
	for (int k = 0; k < 3; k++)
		dg_set(&d, KITE_OP_SET, (uint32_t)k, keys[k], "v", 0, 0);
	for (int k = 0; k < 3; k++)
		dg_req(&d, KITE_OP_GETK, 10u + (uint32_t)k, 0, NULL, 0, keys[k], NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(1, r, 8), 6);
	assert_int_equal(r[0].status, KITE_STATUS_OK);               /* owner: write */
	assert_int_equal(r[1].status, KITE_STATUS_NOT_MY_VBUCKET);   /* replica: no write */
	assert_int_equal(r[2].status, KITE_STATUS_NOT_MY_VBUCKET);   /* none */
	assert_int_equal(r[1].bodylen, 8);
	assert_int_equal(rd(r[1].body, 8), 0x0102030405060708ULL);
	assert_int_equal(r[3].status, KITE_STATUS_OK);               /* owner: read */
	assert_int_equal(r[4].status, KITE_STATUS_KEY_ENOENT);       /* replica: read, a miss */
	assert_int_equal(r[5].status, KITE_STATUS_NOT_MY_VBUCKET);   /* none: no read */
	assert_int_equal(wstats.not_my_vbucket, 3);

	/* Fenced: writes refused, reads served. */
	fence = 0;
	dg_start(&d, 2);
	dg_set(&d, KITE_OP_SET, 1, keys[0], "w", 0, 0);
	dg_req(&d, KITE_OP_DELETE, 2, 0, NULL, 0, keys[0], NULL, 0);
	dg_req(&d, KITE_OP_GET, 3, 0, NULL, 0, keys[0], NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(2, r, 8), 3);
	assert_int_equal(r[0].status, KITE_STATUS_ETMPFAIL);
	assert_int_equal(r[1].status, KITE_STATUS_ETMPFAIL);
	assert_int_equal(r[2].status, KITE_STATUS_OK);
	assert_memory_equal(r[2].body + 4, "v", 1);
	assert_int_equal(wstats.fenced_writes, 2);

	/* CLUSTER_MAP answers the view's message. */
	dg_start(&d, 3);
	dg_req(&d, KITE_OP_CLUSTER_MAP, 7, 0, NULL, 0, NULL, NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(3, r, 8), 1);
	assert_int_equal(r[0].status, KITE_STATUS_OK);
	assert_int_equal(r[0].bodylen, sizeof(msg));
	assert_memory_equal(r[0].body, msg, sizeof(msg));

	/* A view without roles serves every key; without a view CLUSTER_MAP is unknown. */
	c.role = NULL;
	dg_start(&d, 4);
	dg_set(&d, KITE_OP_SET, 1, keys[2], "x", 0, 0);
	run(e, &d);
	assert_int_equal(parse_all(4, r, 8), 1);
	assert_int_equal(r[0].status, KITE_STATUS_OK); /* no roles: no cluster checks at all */
	kite_engine_set_cluster(e, NULL);
	dg_start(&d, 5);
	dg_req(&d, KITE_OP_CLUSTER_MAP, 7, 0, NULL, 0, NULL, NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(5, r, 8), 1);
	assert_int_equal(r[0].status, KITE_STATUS_UNKNOWN_COMMAND);
	kite_engine_free(e);
}

/*
 * Items from before a role change are absent: a GET misses, an ADD stores,
 * an APPEND finds nothing to append to; what is written after is served.
 */
static void
test_cluster_since(void **state)
{
	struct kite_engine *e = make_engine(1, 0, PAYLOAD);
	static uint8_t role[1024];
	static uint64_t since[1024];
	struct kite_engine_cluster c = { 9, 1023, role, NULL, NULL, 0, since };
	struct dg d;
	struct res r[8];

	(void)state;
	memset(role, KITE_ENGINE_ROLE_OWNER, sizeof(role));
	memset(since, 0, sizeof(since));
	kite_engine_set_cluster(e, &c);
	memset(&wstats, 0, sizeof(wstats));
	dg_start(&d, 1);
	dg_set(&d, KITE_OP_SET, 1, "old1", "a", 0, 0);
	dg_set(&d, KITE_OP_SET, 2, "old2", "b", 0, 0);
	dg_set(&d, KITE_OP_SET, 3, "old3", "c", 0, 0);
	run(e, &d);
	assert_int_equal(parse_all(1, r, 8), 3);

	/* The role changed: mark every vbucket's partition history. */
	for (unsigned int vb = 0; vb < 1024; vb++)
		since[vb] = kite_store_cas_mark(parts[vb % NPARTS]);
	dg_start(&d, 2);
	dg_req(&d, KITE_OP_GETK, 1, 0, NULL, 0, "old1", NULL, 0);
	dg_set(&d, KITE_OP_ADD, 2, "old2", "B", 0, 0);
	dg_req(&d, KITE_OP_APPEND, 3, 0, NULL, 0, "old3", "x", 1);
	dg_set(&d, KITE_OP_SET, 4, "old1", "fresh", 0, 0);
	dg_req(&d, KITE_OP_GETK, 5, 0, NULL, 0, "old1", NULL, 0);
	dg_req(&d, KITE_OP_GETK, 6, 0, NULL, 0, "old2", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(2, r, 8), 6);
	assert_int_equal(r[0].status, KITE_STATUS_KEY_ENOENT);  /* from before: a miss */
	assert_int_equal(r[1].status, KITE_STATUS_OK);          /* ADD: no item any more */
	assert_int_equal(r[2].status, KITE_STATUS_NOT_STORED); /* APPEND: nothing */
	assert_int_equal(r[3].status, KITE_STATUS_OK);
	assert_int_equal(r[4].status, KITE_STATUS_OK);
	assert_memory_equal(r[4].body + 4 + 4, "fresh", 5);     /* flags, key, value */
	assert_int_equal(r[5].status, KITE_STATUS_OK);
	assert_memory_equal(r[5].body + 4 + 4, "B", 1);
	assert_true(wstats.stale_hidden >= 3);
	kite_engine_set_cluster(e, NULL);
	kite_engine_free(e);
}

/*
 * PREVIOUS (owned before the last map change): FILL_GET with flags and
 * expiry, DELETE as an invalidation; GET and other writes are redirected;
 * nothing once the window has passed.
 */
static void
test_cluster_previous(void **state)
{
	struct kite_engine *e = make_engine(1, 0, PAYLOAD);
	static uint8_t role[1024];
	struct kite_engine_cluster c = { 5, 1023, role, NULL, NULL, 0, NULL, 0 };
	struct dg d;
	struct res r[8];

	(void)state;
	memset(role, KITE_ENGINE_ROLE_OWNER, sizeof(role));
	kite_engine_set_cluster(e, &c);
	dg_start(&d, 1);
	dg_set(&d, KITE_OP_SET, 1, "moved", "val", 42, NOW + 100);
	dg_set(&d, KITE_OP_SET, 2, "gone", "x", 0, 0);
	run(e, &d);
	assert_int_equal(parse_all(1, r, 8), 2);

	memset(role, KITE_ENGINE_ROLE_PREVIOUS, sizeof(role));
	c.prev_until_tsc = UINT64_MAX;
	dg_start(&d, 2);
	dg_req(&d, KITE_OP_FILL_GET, 1, 0, NULL, 0, "moved", NULL, 0);
	dg_req(&d, KITE_OP_GET, 2, 0, NULL, 0, "moved", NULL, 0);
	dg_set(&d, KITE_OP_SET, 3, "moved", "new", 0, 0);
	dg_req(&d, KITE_OP_DELETE, 4, 0, NULL, 0, "gone", NULL, 0);
	dg_req(&d, KITE_OP_FILL_GET, 5, 0, NULL, 0, "gone", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(2, r, 8), 5);
	assert_int_equal(r[0].status, KITE_STATUS_OK);
	assert_int_equal(r[0].extlen, 8);
	assert_int_equal(rd(r[0].body, 4), 42);          /* flags */
	assert_int_equal(rd(r[0].body + 4, 4), NOW + 100); /* absolute expiry */
	assert_memory_equal(r[0].body + 8, "val", 3);
	assert_int_equal(r[1].status, KITE_STATUS_NOT_MY_VBUCKET);
	assert_int_equal(r[2].status, KITE_STATUS_NOT_MY_VBUCKET);
	assert_int_equal(r[3].status, KITE_STATUS_OK);   /* invalidated */
	assert_int_equal(r[4].status, KITE_STATUS_KEY_ENOENT);

	c.prev_until_tsc = 0; /* the window has passed */
	dg_start(&d, 3);
	dg_req(&d, KITE_OP_FILL_GET, 1, 0, NULL, 0, "moved", NULL, 0);
	dg_req(&d, KITE_OP_DELETE, 2, 0, NULL, 0, "moved", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(3, r, 8), 2);
	assert_int_equal(r[0].status, KITE_STATUS_NOT_MY_VBUCKET);
	assert_int_equal(r[1].status, KITE_STATUS_NOT_MY_VBUCKET);
	kite_engine_set_cluster(e, NULL);
	kite_engine_free(e);
}

/* Run one datagram allowing the reply in its own buffer. */
static void
run_inplace(struct kite_engine *e, struct dg *d)
{
	run_dgram(e, d, true);
}

static void
test_reply_in_place(void **state)
{
	struct kite_engine *e = make_engine(1, 0, PAYLOAD);
	static char big[3001];
	struct dg d;
	struct res r[4];

	(void)state;
	dg_start(&d, 1);
	dg_set(&d, KITE_OP_SET, 1, "ip", "in-place-value", 5, 0);
	run_inplace(e, &d);
	assert_int_equal(inplace_used, 1);
	assert_int_equal(parse_all(1, r, 4), 1);
	assert_int_equal(r[0].status, 0);

	/* GET: the reply overwrites the request it answers. */
	dg_start(&d, 2);
	dg_req(&d, KITE_OP_GET, 2, 0, NULL, 0, "ip", NULL, 0);
	run_inplace(e, &d);
	assert_int_equal(inplace_used, 1);
	assert_int_equal(parse_all(2, r, 4), 1);
	assert_memory_equal(r[0].body + 4, "in-place-value", 14);

	/* GETK copies the key into the reply: never in place. */
	dg_start(&d, 3);
	dg_req(&d, KITE_OP_GETK, 3, 0, NULL, 0, "ip", NULL, 0);
	run_inplace(e, &d);
	assert_int_equal(inplace_used, 0);
	assert_int_equal(parse_all(3, r, 4), 1);
	assert_memory_equal(r[0].body + 4, "ipin-place-value", 16);

	/* Two requests: the second would be overwritten, so no reuse. */
	dg_start(&d, 4);
	dg_req(&d, KITE_OP_GET, 4, 0, NULL, 0, "ip", NULL, 0);
	dg_req(&d, KITE_OP_GET, 5, 0, NULL, 0, "ip", NULL, 0);
	run_inplace(e, &d);
	assert_int_equal(inplace_used, 0);
	assert_int_equal(parse_all(4, r, 4), 2);
	assert_int_equal(r[1].opaque, 5);
	assert_memory_equal(r[1].body + 4, "in-place-value", 14);

	/* A large value: the first datagram in place, the rest allocated. */
	memset(big, 'b', 3000);
	dg_start(&d, 5);
	dg_set(&d, KITE_OP_SET, 6, "bigip", big, 0, 0);
	run_inplace(e, &d);
	dg_start(&d, 6);
	dg_req(&d, KITE_OP_GET, 7, 0, NULL, 0, "bigip", NULL, 0);
	run_inplace(e, &d);
	assert_int_equal(n_out, 3);
	assert_int_equal(inplace_used, 1);
	assert_int_equal(parse_all(6, r, 4), 1);
	assert_int_equal(r[0].bodylen, 3004);
	assert_int_equal(r[0].body[3003], 'b');
	kite_engine_free(e);
}

/*
 * kited --ablate turns data-path steps off for measurement; the answers
 * must not change. One script of bursts, run on fresh partitions with each
 * setting, gives byte-identical replies.
 */
static unsigned int
ablate_script(unsigned int ablate, uint8_t *cap, size_t cap_size)
{
	struct kite_engine *e;
	static struct dg d[4];
	struct kite_engine_dgram g[4];
	unsigned int total = 0, used = 0;
	char key[16];

	assert_int_equal(teardown(NULL), 0);
	assert_int_equal(setup(NULL), 0);
	e = make_engine_ablated(1, 0, PAYLOAD, ablate);

	/* Burst 1: stores spread over every partition. */
	dg_start(&d[0], 1);
	for (int i = 0; i < 24; i++) {
		snprintf(key, sizeof(key), "ab%d", i);
		dg_set(&d[0], KITE_OP_SETQ, (uint32_t)i, key, key, (uint32_t)i, 0);
	}
	/*
	 * Burst 2: writes to keys that exist (warm_run finds and prefetches
	 * them; one key twice, a DELETE among them), then GET runs with hits,
	 * misses, duplicates, a SET in between.
	 */
	dg_start(&d[1], 2);
	for (int i = 1; i <= 8; i++) {
		snprintf(key, sizeof(key), "ab%d", i == 8 ? 2 : i);
		dg_set(&d[1], KITE_OP_SET, 200 + (uint32_t)i, key, i == 8 ? "again" : "over", 7, 0);
	}
	dg_req(&d[1], KITE_OP_DELETE, 210, 0, NULL, 0, "ab9", NULL, 0);
	for (int i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "ab%d", (i * 7) % 28);
		dg_req(&d[1], i % 3 ? KITE_OP_GET : KITE_OP_GETQ, (uint32_t)i, 0, NULL, 0, key,
		       NULL, 0);
		if (i == 12)
			dg_set(&d[1], KITE_OP_SET, 99, "ab3", "changed", 1, 0);
	}
	dg_start(&d[2], 3);
	dg_req(&d[2], KITE_OP_GET, 1, 0, NULL, 0, "ab3", NULL, 0);
	dg_start(&d[3], 4);
	dg_req(&d[3], KITE_OP_GETK, 2, 0, NULL, 0, "ab5", NULL, 0);
	for (int i = 0; i < 4; i++)
		g[i] = (struct kite_engine_dgram){ d[i].b, d[i].len, true, i >= 2, NULL };
	n_out = 0;
	inplace_used = 0;
	alloc_budget = MAX_OUT;
	kite_engine_process(e, g, 1);
	kite_engine_process(e, g + 1, 3);
	for (unsigned int i = 0; i < n_out; i++) {
		assert_true(used + 2 + out_len[i] <= cap_size);
		cap[used++] = (uint8_t)(out_len[i] >> 8);
		cap[used++] = (uint8_t)out_len[i];
		memcpy(cap + used, out_buf[i], out_len[i]);
		used += out_len[i];
		total++;
	}
	/* The single GET may be answered in place unless that step is off. */
	assert_int_equal(inplace_used, (ablate & NO_INPLACE) ? 0 : 1);
	kite_engine_free(e);
	return used;
}

static void
test_ablate_same_replies(void **state)
{
	static uint8_t want[MAX_OUT * (PAYLOAD + 2)], got[MAX_OUT * (PAYLOAD + 2)];
	const unsigned int settings[] = {
		NO_BULK, NO_PREFETCH, NO_INPLACE,
		NO_BULK | NO_PREFETCH | NO_INPLACE | NO_TXBATCH,
	};
	unsigned int nwant, ngot;

	(void)state;
	nwant = ablate_script(0, want, sizeof(want));
	assert_true(nwant > 200);
	for (size_t i = 0; i < RTE_DIM(settings); i++) {
		ngot = ablate_script(settings[i], got, sizeof(got));
		assert_int_equal(ngot, nwant);
		assert_memory_equal(got, want, nwant);
	}
}

/*
 * Parse once: a datagram parsed and withdrawn (handed off whole) leaves
 * nothing behind; the ones kept are executed from their single parse.
 */
static void
test_parse_withdraw_execute(void **state)
{
	struct kite_engine *e0 = make_engine(2, 0, PAYLOAD);
	static struct dg d[3];
	struct kite_engine_dgram g[3];
	char k0[16] = "", k1[16] = "", key[16];
	struct res r[4];

	(void)state;
	for (int i = 0; k0[0] == '\0' || k1[0] == '\0'; i++) {
		snprintf(key, sizeof(key), "pw%d", i);
		uint32_t p = kite_topo_key_partition(key, (uint16_t)strlen(key), NPARTS);
		strcpy(p % 2 ? k1 : k0, key);
	}
	dg_start(&d[0], 1);
	dg_set(&d[0], KITE_OP_SET, 1, k0, "mine", 0, 0);
	dg_start(&d[1], 2);
	dg_set(&d[1], KITE_OP_SET, 2, k1, "theirs", 0, 0); /* worker 1's */
	dg_start(&d[2], 3);
	dg_req(&d[2], KITE_OP_GET, 3, 0, NULL, 0, k0, NULL, 0);
	for (int i = 0; i < 3; i++)
		g[i] = (struct kite_engine_dgram){ d[i].b, d[i].len, true, false, NULL };

	uint64_t rx = wstats.rx_requests, not_owned = wstats.not_owned;
	n_out = 0;
	done_calls = 0;
	alloc_budget = MAX_OUT;
	assert_int_equal(kite_engine_parse(e0, &g[0]), 1);
	assert_int_equal(kite_engine_parse(e0, &g[1]), 2);
	kite_engine_withdraw(e0);
	assert_int_equal(kite_engine_parse(e0, &g[2]), 1);
	kite_engine_execute(e0);
	/* Counted where they arrived, each request once; the withdrawn one is not executed. */
	assert_int_equal(wstats.rx_requests, rx + 3);
	assert_int_equal(wstats.not_owned, not_owned);
	assert_int_equal(done_calls, 2);
	assert_int_equal(n_out, 2);
	assert_int_equal(rd(out_buf[0], 2), 1);           /* SET answered... */
	assert_int_equal(rd(out_buf[0] + 8 + 6, 2), 0);
	assert_int_equal(rd(out_buf[0] + 8 + 12, 4), 1);
	assert_int_equal(rd(out_buf[1], 2), 3);           /* ... then the GET, a hit */
	assert_int_equal(rd(out_buf[1] + 8 + 6, 2), 0);
	assert_memory_equal(out_buf[1] + 8 + 28, "mine", 4);
	/* Nothing of d[1] reached the store. */
	struct kite_engine *e1 = make_engine(2, 1, PAYLOAD);
	dg_start(&d[0], 4);
	dg_req(&d[0], KITE_OP_GET, 4, 0, NULL, 0, k1, NULL, 0);
	run(e1, &d[0]);
	assert_int_equal(parse_all(4, r, 4), 1);
	assert_int_equal(r[0].status, KITE_STATUS_KEY_ENOENT);
	/* Withdrawing with nothing parsed is harmless. */
	kite_engine_withdraw(e1);
	kite_engine_execute(e1);
	kite_engine_free(e0);
	kite_engine_free(e1);
}

/*
 * More datagrams than the engine holds: the table is executed before it
 * overflows, in order, and every datagram is answered once.
 */
static void
test_many_datagrams(void **state)
{
	struct kite_engine *e = make_engine(1, 0, PAYLOAD);
	static struct dg d[KITE_ENGINE_MAX_DGRAMS + 10];
	static struct kite_engine_dgram g[KITE_ENGINE_MAX_DGRAMS + 10];
	const unsigned int n = KITE_ENGINE_MAX_DGRAMS + 10;

	(void)state;
	for (unsigned int i = 0; i < n; i++) {
		dg_start(&d[i], (uint16_t)i);
		/* Each datagram reads the counter the one before it incremented. */
		uint8_t ext[20];
		be(ext, 1, 8);
		be(ext + 8, 0, 8);
		be(ext + 16, 0, 4);
		dg_req(&d[i], KITE_OP_INCREMENT, i, 0, ext, 20, "manyctr", NULL, 0);
		g[i] = (struct kite_engine_dgram){ d[i].b, d[i].len, true, false, NULL };
	}
	n_out = 0;
	done_calls = 0;
	alloc_budget = MAX_OUT;
	for (unsigned int i = 0; i < n; i++)
		assert_int_equal(kite_engine_parse(e, &g[i]), 1);
	kite_engine_execute(e);
	assert_int_equal(done_calls, n);
	assert_int_equal(n_out, n);
	for (unsigned int i = 0; i < n; i++) {
		assert_int_equal(rd(out_buf[i], 2), i);
		assert_int_equal(rd(out_buf[i] + 8 + 24, 8), i);
	}
	kite_engine_free(e);
}

/* What kite_engine_footprint() says an engine takes is what it takes (within 2%). */
/* IP bytes of every reply datagram written (payload + 28 each). */
static uint32_t
reply_ip_bytes(void)
{
	uint32_t n = 0;

	for (unsigned int i = 0; i < n_out; i++)
		n += out_len[i] + 28u;
	return n;
}

static void
run_verdict(struct kite_engine *e, struct dg *d, struct kite_engine_dgram *g)
{
	g->data = d->b;
	g->len = d->len;
	g->home = true;
	n_out = 0;
	done_calls = 0;
	alloc_budget = MAX_OUT;
	kite_engine_process(e, g, 1);
}

static bool
owned_by_tenant(const void *arg, const uint8_t *key, uint16_t len)
{
	(void)arg;
	return len >= 2 && key[0] == 't' && key[1] == ':';
}

/*
 * The guard's verdict as the engine obeys it: the amplification bound cuts
 * a datagram (COOKIE_REQUIRED for the response that would exceed it and
 * every request after it, quiet ones too, none executed), never more
 * bytes than the budget, across a table flush too; the reply envelope;
 * the envelope skipped; FORBIDDEN by command and by namespace; a refused
 * datagram; the work budget.
 */
static void
test_guard_verdict(void **state)
{
	struct kite_engine_conf c;
	struct kite_engine *e;
	static char big[4001];
	struct dg d;
	static struct res r[700];
	struct kite_engine_dgram g;
	unsigned int n;

	(void)state;
	engine_conf(&c, 1, 0, PAYLOAD, 0);
	c.key_owned = owned_by_tenant;
	e = kite_engine_create(&c, 0);
	assert_non_null(e);
	kite_engine_set_time(e, NOW);
	memset(big, 'b', 4000);
	dg_start(&d, 1);
	dg_set(&d, KITE_OP_SET, 1, "big", big, 0, 0);
	run(e, &d);

	/* Bounded: SETQ runs, the GET's reply would exceed, the rest is refused. */
	dg_start(&d, 2);
	dg_set(&d, KITE_OP_SETQ, 1, "q1", "one", 0, 0);
	dg_req(&d, KITE_OP_GET, 2, 0, NULL, 0, "big", NULL, 0);
	dg_set(&d, KITE_OP_SETQ, 3, "q2", "two", 0, 0);
	dg_req(&d, KITE_OP_NOOP, 4, 0, NULL, 0, NULL, NULL, 0);
	memset(&g, 0, sizeof(g));
	g.budget = d.len + 28;
	run_verdict(e, &d, &g);
	n = parse_all(2, r, 8);
	assert_int_equal(n, 3);
	for (unsigned int i = 0; i < 3; i++) {
		assert_int_equal(r[i].status, KITE_STATUS_COOKIE_REQUIRED);
		assert_int_equal(r[i].bodylen, 0);
		assert_int_equal(r[i].opaque, i + 2);
	}
	assert_true(reply_ip_bytes() <= g.budget);
	assert_int_equal(wstats.cut_bound, 3);
	dg_start(&d, 3);
	dg_req(&d, KITE_OP_GET, 1, 0, NULL, 0, "q1", NULL, 0);
	dg_req(&d, KITE_OP_GET, 2, 0, NULL, 0, "q2", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(3, r, 4), 2);
	assert_int_equal(r[0].status, 0);
	assert_int_equal(r[1].status, KITE_STATUS_KEY_ENOENT);

	/*
	 * 600 GETs in one fragmented datagram (the table holds 512): each
	 * answered (misses, or COOKIE_REQUIRED once the bound is near), never
	 * over the budget (the guard's: IP headers of the 10 fragments too).
	 */
	dg_start(&d, 4);
	for (unsigned int i = 0; i < 600; i++) {
		char key[8];
		snprintf(key, sizeof(key), "m%03u", i);
		dg_req(&d, KITE_OP_GET, i, 0, NULL, 0, key, NULL, 0);
	}
	memset(&g, 0, sizeof(g));
	g.budget = d.len + 8 + 20 * 10;
	run_verdict(e, &d, &g);
	n = parse_all(4, r, 700);
	assert_int_equal(n, 600);
	assert_true(reply_ip_bytes() <= g.budget);
	assert_int_equal(r[599].opaque, 599);
	/* 600 NOOPs: header-only, so a few statuses may go unanswered, never over. */
	dg_start(&d, 4);
	for (unsigned int i = 0; i < 600; i++)
		dg_req(&d, KITE_OP_NOOP, i, 0, NULL, 0, NULL, NULL, 0);
	memset(&g, 0, sizeof(g));
	g.budget = d.len + 8 + 20 * 10;
	run_verdict(e, &d, &g);
	n = parse_all(4, r, 700);
	assert_true(reply_ip_bytes() <= g.budget);
	assert_int_equal(n + wstats.cut_unanswered, 600);

	/* Skip an envelope; start the reply with one. */
	static const uint8_t renv[16] = { 0x8b, 1, 0x81, 16, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9 };
	dg_start(&d, 5);
	memset(d.b + 8, 0x8b, 16);
	d.len += 16;
	dg_req(&d, KITE_OP_GET, 7, 0, NULL, 0, "q1", NULL, 0);
	memset(&g, 0, sizeof(g));
	g.skip = 16;
	g.renv = renv;
	g.renv_len = 16;
	run_verdict(e, &d, &g);
	assert_int_equal(n_out, 1);
	assert_memory_equal(out_buf[0] + 8, renv, 16);
	assert_int_equal(out_buf[0][24], 0x81);
	assert_int_equal(rd(out_buf[0] + 24 + 6, 2), 0);
	assert_int_equal(rd(out_buf[0] + 24 + 12, 4), 7);

	/* FORBIDDEN: a denied command, a key outside the prefix, a tenant's key in public. */
	dg_start(&d, 6);
	dg_set(&d, KITE_OP_SET, 1, "a:k", "v", 0, 0);
	dg_req(&d, KITE_OP_GET, 2, 0, NULL, 0, "b:k", NULL, 0);
	dg_req(&d, KITE_OP_GET, 3, 0, NULL, 0, "a:k", NULL, 0);
	memset(&g, 0, sizeof(g));
	g.deny = 1u << KITE_CMD_SET;
	g.ns = KITE_ENGINE_NS_PREFIX;
	g.prefix = (const uint8_t *)"a:";
	g.prefix_len = 2;
	run_verdict(e, &d, &g);
	assert_int_equal(parse_all(6, r, 4), 3);
	assert_int_equal(r[0].status, KITE_STATUS_FORBIDDEN);
	assert_int_equal(r[0].bodylen, 0);
	assert_int_equal(r[1].status, KITE_STATUS_FORBIDDEN);
	assert_int_equal(r[2].status, KITE_STATUS_KEY_ENOENT); /* allowed, and the SET never ran */
	dg_start(&d, 7);
	dg_set(&d, KITE_OP_SET, 1, "t:k", "v", 0, 0);
	dg_set(&d, KITE_OP_SET, 2, "pub", "v", 0, 0);
	memset(&g, 0, sizeof(g));
	g.ns = KITE_ENGINE_NS_PUBLIC;
	run_verdict(e, &d, &g);
	assert_int_equal(parse_all(7, r, 4), 2);
	assert_int_equal(r[0].status, KITE_STATUS_FORBIDDEN);
	assert_int_equal(r[1].status, 0);

	/* Refused datagram: every request answered so, none executed. */
	dg_start(&d, 8);
	dg_set(&d, KITE_OP_SETQ, 1, "refused", "v", 0, 0);
	dg_req(&d, KITE_OP_NOOP, 2, 0, NULL, 0, NULL, NULL, 0);
	memset(&g, 0, sizeof(g));
	g.refuse = KITE_STATUS_AUTH_ERROR;
	run_verdict(e, &d, &g);
	assert_int_equal(parse_all(8, r, 4), 2);
	assert_int_equal(r[0].status, KITE_STATUS_AUTH_ERROR);
	assert_int_equal(r[1].status, KITE_STATUS_AUTH_ERROR);
	dg_start(&d, 9);
	dg_req(&d, KITE_OP_GET, 1, 0, NULL, 0, "refused", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(9, r, 4), 1);
	assert_int_equal(r[0].status, KITE_STATUS_KEY_ENOENT);

	/* Work budget: 64 units run two STATs (32 each); the rest are refused. */
	dg_start(&d, 10);
	for (unsigned int i = 0; i < 5; i++)
		dg_req(&d, KITE_OP_STAT, i, 0, NULL, 0, NULL, NULL, 0);
	dg_set(&d, KITE_OP_SETQ, 5, "late", "v", 0, 0);
	memset(&g, 0, sizeof(g));
	g.work = 64;
	run_verdict(e, &d, &g);
	n = parse_all(10, r, 8);
	assert_int_equal(n, 6);
	assert_int_equal(r[0].status, 0);
	assert_int_equal(r[1].status, 0);
	for (unsigned int i = 2; i < 6; i++)
		assert_int_equal(r[i].status, KITE_STATUS_RATE_LIMITED);
	assert_int_equal(r[5].opaque, 5);
	kite_engine_free(e);
}

/*
 * FLUSH with an absolute time (memcached 1.6.18): at or before the node's
 * start it flushes nothing; after it (and not later than now) at once.
 */
static void
test_flush_absolute(void **state)
{
	struct kite_engine_conf c;
	struct kite_engine *e;
	struct dg d;
	struct res r[4];
	uint8_t ext[4];

	(void)state;
	engine_conf(&c, 1, 0, PAYLOAD, 0);
	c.started = NOW - 100;
	e = kite_engine_create(&c, 0);
	assert_non_null(e);
	kite_engine_set_time(e, NOW);
	dg_start(&d, 1);
	dg_set(&d, KITE_OP_SET, 1, "fa", "v", 0, 0);
	run(e, &d);
	be(ext, NOW - 100, 4); /* the start itself: ignored */
	dg_start(&d, 2);
	dg_req(&d, KITE_OP_FLUSH, 2, 0, ext, 4, NULL, NULL, 0);
	dg_req(&d, KITE_OP_GET, 3, 0, NULL, 0, "fa", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(2, r, 4), 2);
	assert_int_equal(r[0].status, 0);
	assert_int_equal(r[1].status, 0);
	be(ext, NOW - 50, 4); /* after the start: at once */
	dg_start(&d, 3);
	dg_req(&d, KITE_OP_FLUSH, 4, 0, ext, 4, NULL, NULL, 0);
	dg_req(&d, KITE_OP_GET, 5, 0, NULL, 0, "fa", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(3, r, 4), 2);
	assert_int_equal(r[0].status, 0);
	assert_int_equal(r[1].status, KITE_STATUS_KEY_ENOENT);
	kite_engine_free(e);
}

/*
 * A datagram the port cut short (af_packet: over its frame size): the
 * first request is answered E2BIG with its opcode and opaque, nothing runs
 * (the SET cut in its value stores nothing, the GET behind it is not even
 * visible), and a cut datagram without a whole first header is a counted drop.
 */
static void
test_truncated(void **state)
{
	struct kite_engine_conf c;
	struct kite_engine *e;
	static char big[3000];
	static struct dg d;
	static struct res r[4];
	struct kite_engine_dgram g;

	(void)state;
	engine_conf(&c, 1, 0, PAYLOAD, 0);
	e = kite_engine_create(&c, 0);
	assert_non_null(e);
	kite_engine_set_time(e, NOW);
	memset(big, 'x', sizeof(big) - 1);
	const uint64_t served = wstats.served, too_big = wstats.too_big,
		       short_hdr = wstats.proto_drops[KITE_PROTO_DROP_TRUNC_HDR];
	dg_start(&d, 1);
	dg_set(&d, KITE_OP_SETQ, 0x1234, "cut", big, 0, 0);
	dg_req(&d, KITE_OP_GET, 2, 0, NULL, 0, "cut", NULL, 0);
	memset(&g, 0, sizeof(g));
	g.truncated = true;
	g.budget = 1000 + 28;
	d.len = 1000; /* what arrived */
	run_verdict(e, &d, &g);
	assert_int_equal(parse_all(1, r, 4), 1);
	assert_int_equal(r[0].opcode, KITE_OP_SETQ);
	assert_int_equal(r[0].status, KITE_STATUS_E2BIG);
	assert_int_equal(r[0].opaque, 0x1234);
	assert_int_equal(g.nreq, 1);
	assert_int_equal(wstats.too_big, too_big + 1);
	assert_int_equal(wstats.served, served);
	dg_start(&d, 2);
	dg_req(&d, KITE_OP_GET, 3, 0, NULL, 0, "cut", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(2, r, 4), 1);
	assert_int_equal(r[0].status, KITE_STATUS_KEY_ENOENT);
	/* Not even a whole first header: nothing to answer. */
	dg_start(&d, 3);
	dg_set(&d, KITE_OP_SET, 4, "cut", big, 0, 0);
	memset(&g, 0, sizeof(g));
	g.truncated = true;
	d.len = 8 + 20;
	run_verdict(e, &d, &g);
	assert_int_equal(n_out, 0);
	assert_int_equal(wstats.proto_drops[KITE_PROTO_DROP_TRUNC_HDR], short_hdr + 1);
	assert_int_equal(wstats.too_big, too_big + 1);
	kite_engine_free(e);
}

static void
test_footprint(void **state)
{
	struct rte_malloc_socket_stats st;
	size_t before = 0, after = 0;
	struct kite_engine *e;

	(void)state;
	for (int sock = 0; sock < RTE_MAX_NUMA_NODES; sock++)
		if (rte_malloc_get_socket_stats(sock, &st) == 0)
			before += st.heap_allocsz_bytes;
	e = make_engine(2, 1, PAYLOAD);
	for (int sock = 0; sock < RTE_MAX_NUMA_NODES; sock++)
		if (rte_malloc_get_socket_stats(sock, &st) == 0)
			after += st.heap_allocsz_bytes;
	double used = (double)(after - before), said = (double)kite_engine_footprint();
	assert_true(said >= 0.98 * used && said <= 1.02 * used);
	kite_engine_free(e);
}

/* ---- text and meta through the engine ---------------------------------- */

/*
 * The reply text of the reply datagrams captured (out_buf[0..n_out)): each
 * frame checked (request id, seq, total) and stripped; NUL-terminated.
 */
static const char *
reply_text(uint16_t req_id)
{
	static char out[MAX_OUT * PAYLOAD];
	size_t n = 0;

	for (unsigned int i = 0; i < n_out; i++) {
		assert_int_equal(rd(out_buf[i], 2), req_id);
		assert_int_equal(rd(out_buf[i] + 2, 2), i);
		assert_int_equal(rd(out_buf[i] + 4, 2), n_out);
		memcpy(out + n, out_buf[i] + 8, out_len[i] - 8);
		n += out_len[i] - 8;
	}
	out[n] = '\0';
	return out;
}

/* One text datagram; the reply text. */
static const char *
text_run(struct kite_engine *e, const char *text)
{
	static struct dg d;

	dg_start(&d, 0x7e57);
	memcpy(d.b + 8, text, strlen(text));
	d.len = 8 + (uint32_t)strlen(text);
	run(e, &d);
	return reply_text(0x7e57);
}

static void
test_text_classic(void **state)
{
	struct kite_engine *e = make_engine(1, 0, 1472);
	const char *r;

	(void)state;
	assert_string_equal(text_run(e, "set a 5 0 3\r\nabc\r\nget a nope a\r\n"),
			    "STORED\r\nVALUE a 5 3\r\nabc\r\nVALUE a 5 3\r\nabc\r\nEND\r\n");
	r = text_run(e, "gets a\r\n");
	assert_true(strncmp(r, "VALUE a 5 3 ", 12) == 0);
	assert_string_equal(text_run(e, "add a 0 0 1\r\nx\r\nreplace zz 0 0 1\r\nx\r\n"
					"append a 0 0 2\r\nde\r\nprepend zz 0 0 1\r\nx\r\nget a\r\n"),
			    "NOT_STORED\r\nNOT_STORED\r\nSTORED\r\nNOT_STORED\r\n"
			    "VALUE a 5 5\r\nabcde\r\nEND\r\n");
	assert_string_equal(text_run(e, "cas a 0 0 1 1\r\nx\r\ncas nope 0 0 1 1\r\nx\r\n"),
			    "EXISTS\r\nNOT_FOUND\r\n");
	assert_string_equal(text_run(e, "set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\n"
					"incr a 1\r\nincr nope 1\r\n"),
			    "STORED\r\n15\r\n0\r\nCLIENT_ERROR cannot increment or decrement "
			    "non-numeric value\r\nNOT_FOUND\r\n");
	assert_string_equal(text_run(e, "touch a 100\r\ntouch nope 1\r\ndelete a\r\ndelete a\r\n"),
			    "TOUCHED\r\nNOT_FOUND\r\nDELETED\r\nNOT_FOUND\r\n");
	assert_string_equal(text_run(e, "set q 0 0 1 noreply\r\nq\r\nget q\r\n"),
			    "VALUE q 0 1\r\nq\r\nEND\r\n");
	/* Numbers in replies at the edges of their digit counts (put_u64). */
	assert_string_equal(text_run(e, "set f 4294967295 0 10\r\n0123456789\r\nget f\r\n"
					"set g 99 0 100\r\n"
					"0123456789012345678901234567890123456789012345678901234567890123456789"
					"012345678901234567890123456789\r\nget g\r\n"
					"set n 0 0 1\r\n9\r\nincr n 18446744073709551606\r\n"
					"decr n 18446744073709551615\r\nincr n 1000000000000000000\r\n"),
			    "STORED\r\nVALUE f 4294967295 10\r\n0123456789\r\nEND\r\n"
			    "STORED\r\nVALUE g 99 100\r\n"
			    "0123456789012345678901234567890123456789012345678901234567890123456789"
			    "012345678901234567890123456789\r\nEND\r\n"
			    "STORED\r\n18446744073709551615\r\n0\r\n1000000000000000000\r\n");
	assert_string_equal(text_run(e, "verbosity 1\r\nversion\r\nmn\r\n"),
			    "OK\r\nVERSION " KITE_VERSION "\r\nMN\r\n");
	assert_string_equal(text_run(e, "flush_all\r\nget q\r\n"), "OK\r\nEND\r\n");
	assert_string_equal(text_run(e, "bogus\r\nset k 0 0 3\r\nabcd\r\nmn\r\n"),
			    "ERROR\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nMN\r\n");
	/* quit ends the datagram: nothing after it runs. */
	assert_string_equal(text_run(e, "mn\r\nquit\r\nmn\r\n"), "MN\r\n");
	/* A response line is never answered. */
	assert_string_equal(text_run(e, "VALUE a 0 1\r\nx\r\nEND\r\n"), "");
	kite_engine_free(e);
}

static void
test_text_meta(void **state)
{
	struct kite_engine *e = make_engine(1, 0, 1472);
	unsigned long long cas;

	(void)state;
	text_run(e, "flush_all\r\n");
	assert_string_equal(text_run(e, "ms m 3 T100 F7\r\nabc\r\nmg m v t f s k Oxy\r\n"
					"mg nope v k O1\r\nmg nope q\r\nmn\r\n"),
			    "HD\r\nVA 3 t100 f7 s3 km Oxy\r\nabc\r\nEN knope O1\r\nMN\r\n");
	assert_int_equal(sscanf(text_run(e, "mg m c\r\n"), "HD c%llu", &cas), 1);
	/* Vivify: W for the first, Z after; a plain get sees a 0-byte hit. */
	assert_string_equal(text_run(e, "mg v1 N30 v t\r\nmg v1 N30 v\r\nget v1\r\n"),
			    "VA 0 t30 W\r\n\r\nVA 0 Z\r\n\r\nVALUE v1 0 0\r\n\r\nEND\r\n");
	assert_string_equal(text_run(e, "ms v1 3\r\nnew\r\nmg v1 N30 v\r\n"),
			    "HD\r\nVA 3\r\nnew\r\n");
	/* md I: stale, the next reader wins with X W, then Z X. */
	assert_string_equal(text_run(e, "md m I\r\nmg m v\r\nmg m\r\nmd m q\r\nmg m\r\n"),
			    "HD\r\nVA 3 X W\r\nabc\r\nHD Z X\r\nEN\r\n");
	/* R: one early winner; no expiry never wins. */
	assert_string_equal(text_run(e, "ms r 1 T100\r\nx\r\nmg r R200\r\nmg r R200\r\n"
					"ms r2 1\r\nx\r\nmg r2 R200\r\n"),
			    "HD\r\nHD W\r\nHD Z\r\nHD\r\nHD\r\n");
	/* ms modes and CAS. */
	assert_string_equal(text_run(e, "ms e 1 ME\r\nx\r\nms e 1 ME\r\ny\r\nms zz 1 MR\r\nx\r\n"
					"ms zz 1 C5\r\nx\r\nms e 1 C1\r\nx\r\nms e 1 MA q\r\nz\r\n"
					"mg e v\r\n"),
			    "HD\r\nNS\r\nNS\r\nNF\r\nEX\r\nVA 2\r\nxz\r\n");
	/* ms I with an older CAS: stored, stale. */
	{
		char req[128];
		unsigned long long c1, c2;

		assert_int_equal(sscanf(text_run(e, "ms lw 2 c\r\nv1\r\n"), "HD c%llu", &c1), 1);
		assert_int_equal(sscanf(text_run(e, "md lw I\r\nmg lw c\r\n"), "HD\r\nHD c%llu X W",
					&c2),
				 1);
		assert_true(c2 > c1);
		snprintf(req, sizeof(req), "ms lw 2 I C%llu\r\nv2\r\nmg lw v\r\n", c1);
		assert_string_equal(text_run(e, req), "HD\r\nVA 2 Z X\r\nv2\r\n");
		snprintf(req, sizeof(req), "ms lw 2 I C%llu\r\nv3\r\n", c2 + (1ULL << 40));
		assert_string_equal(text_run(e, req), "EX\r\n");
	}
	/* ma. */
	assert_string_equal(text_run(e, "ma c N0 J10 v\r\nma c v\r\nma c MD D20 v\r\nma nope\r\n"
					"ma nope q\r\n"),
			    "VA 2\r\n10\r\nVA 2\r\n11\r\nVA 1\r\n0\r\nNF\r\nNF\r\n");
	/* base64 keys: decoded for the store, returned as sent. */
	assert_string_equal(text_run(e, "ms YmluAGtleQ== 2 b k\r\nhi\r\nmg YmluAGtleQ== b k v\r\n"),
			    "HD kYmluAGtleQ== b\r\nVA 2 kYmluAGtleQ== b\r\nhi\r\n");
	/* Errors always answered, even with q. */
	assert_string_equal(text_run(e, "mg foo q E\r\nme foo\r\nmg foo l\r\n"),
			    "CLIENT_ERROR invalid flag\r\nSERVER_ERROR me is not supported\r\n"
			    "CLIENT_ERROR unsupported flag\r\n");
	/* h: read before this request; u leaves the item as it was (not fetched, no CLOCK bit). */
	assert_string_equal(text_run(e, "ms hb 1\r\nx\r\nmg hb h u\r\nmg hb h\r\nmg hb h v\r\n"
					"mg hn h N10\r\nmg hn h\r\nma hb\r\n"),
			    "HD\r\nHD h0\r\nHD h0\r\nVA 1 h1\r\nx\r\nHD h0 W\r\nHD h1 Z\r\n"
			    "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
	kite_engine_free(e);
}

/* One META_* request; its reply's status, extras (as a string) and value. */
static uint16_t
meta_bin(struct kite_engine *e, uint8_t op, const char *flags, const char *key, const char *val,
	 char *ext, char *value)
{
	static struct dg d;
	static struct res r[4];

	dg_start(&d, 0xb1);
	dg_req(&d, op, 77, 0, flags, (uint8_t)strlen(flags), key, val,
	       val ? (uint32_t)strlen(val) : 0);
	run(e, &d);
	if (n_out == 0) {
		ext[0] = value[0] = '\0';
		return 0xffff; /* quiet */
	}
	assert_int_equal(parse_all(0xb1, r, 4), 1);
	assert_int_equal(r[0].opcode, op);
	assert_int_equal(r[0].opaque, 77);
	memcpy(ext, r[0].body, r[0].extlen);
	ext[r[0].extlen] = '\0';
	memcpy(value, r[0].body + r[0].extlen + r[0].keylen,
	       r[0].bodylen - r[0].extlen - r[0].keylen);
	value[r[0].bodylen - r[0].extlen - r[0].keylen] = '\0';
	return r[0].status;
}

/*
 * The bound decides before a request that changes state runs. Cut after
 * it ran, its client (told COOKIE_REQUIRED, and given a cookie) retries
 * what happened already: a win token (mg N) handed to no one, so that
 * every reader waits for a value nobody computes; an INCR applied twice.
 * Each is cut here with room for its status but not for its reply, and
 * then nothing ran; with room it runs.
 */
static void
test_guard_cut_before_run(void **state)
{
	struct kite_engine *e = make_engine(1, 0, 1472);
	struct kite_engine_dgram g;
	static struct dg d;
	static struct res r[4];
	char ext[300], val[300];
	uint64_t cuts;
	uint8_t inc[20] = { 0 };

	(void)state;
	text_run(e, "flush_all\r\n");
	/* mg N: room for a 24-byte status (60 IP bytes), not for "W t-1 c<cas>". */
	cuts = wstats.cut_bound;
	dg_start(&d, 0xc1);
	dg_req(&d, KITE_OP_META_GET, 5, 0, "N30 v t c", 9, "lease", NULL, 0);
	memset(&g, 0, sizeof(g));
	g.budget = 28 + 8 + 24 + 4;
	run_verdict(e, &d, &g);
	assert_int_equal(parse_all(0xc1, r, 4), 1);
	assert_int_equal(r[0].status, KITE_STATUS_COOKIE_REQUIRED);
	assert_int_equal(wstats.cut_bound, cuts + 1);
	assert_true(reply_ip_bytes() <= g.budget);
	/* No placeholder, no token out: the retry (validated) wins. */
	assert_string_equal(text_run(e, "mg lease v\r\n"), "EN\r\n");
	assert_int_equal(meta_bin(e, KITE_OP_META_GET, "N30 v t c", "lease", NULL, ext, val),
			 KITE_STATUS_OK);
	assert_non_null(strstr(ext, " W"));
	/* A stale item's token, in text: the same. */
	assert_string_equal(text_run(e, "ms st 5\r\nvalue\r\nmd st I\r\n"), "HD\r\nHD\r\n");
	memset(&g, 0, sizeof(g));
	dg_start(&d, 0xc2);
	memcpy(d.b + 8, "mg st v c\r\n", 11);
	d.len = 8 + 11;
	g.budget = 28 + 8 + 30 + 4;
	run_verdict(e, &d, &g);
	assert_string_equal(reply_text(0xc2), "SERVER_ERROR cookie required\r\n");
	assert_true(reply_ip_bytes() <= g.budget);
	assert_string_equal(text_run(e, "mg st v\r\n"), "VA 5 X W\r\nvalue\r\n");
	/* INCR: a 32-byte reply, room for 28; the counter is as it was. */
	assert_string_equal(text_run(e, "set n 0 0 1\r\n5\r\n"), "STORED\r\n");
	inc[7] = 1;
	dg_start(&d, 0xc3);
	dg_req(&d, KITE_OP_INCREMENT, 6, 0, inc, 20, "n", NULL, 0);
	memset(&g, 0, sizeof(g));
	g.budget = 28 + 8 + 24 + 4;
	run_verdict(e, &d, &g);
	assert_int_equal(parse_all(0xc3, r, 4), 1);
	assert_int_equal(r[0].status, KITE_STATUS_COOKIE_REQUIRED);
	assert_string_equal(text_run(e, "get n\r\n"), "VALUE n 0 1\r\n5\r\nEND\r\n");
	/* With room, the same INCR runs. */
	dg_start(&d, 0xc4);
	dg_req(&d, KITE_OP_INCREMENT, 7, 0, inc, 20, "n", NULL, 0);
	memset(&g, 0, sizeof(g));
	g.budget = 28 + 8 + 32;
	run_verdict(e, &d, &g);
	assert_int_equal(parse_all(0xc4, r, 4), 1);
	assert_int_equal(r[0].status, KITE_STATUS_OK);
	assert_string_equal(text_run(e, "get n\r\n"), "VALUE n 0 1\r\n6\r\nEND\r\n");
	kite_engine_free(e);
}

/* Kite's META opcodes: the text forms' semantics, flags as text in the extras. */
static void
test_meta_binary(void **state)
{
	struct kite_engine *e = make_engine(1, 0, 1472);
	char ext[300], val[300];

	(void)state;
	text_run(e, "flush_all\r\n");
	assert_int_equal(meta_bin(e, KITE_OP_META_SET, "T100 F7", "bm", "abc", ext, val),
			 KITE_STATUS_OK);
	assert_int_equal(meta_bin(e, KITE_OP_META_GET, "v t f s", "bm", NULL, ext, val),
			 KITE_STATUS_OK);
	assert_string_equal(ext, "t100 f7 s3");
	assert_string_equal(val, "abc");
	assert_int_equal(meta_bin(e, KITE_OP_META_GET, "v O9", "nope", NULL, ext, val),
			 KITE_STATUS_KEY_ENOENT);
	assert_string_equal(ext, "O9");
	assert_int_equal(meta_bin(e, KITE_OP_META_GET, "v q", "nope", NULL, ext, val), 0xffff);
	/* Vivify and the win token; a text reader sees the same item. */
	assert_int_equal(meta_bin(e, KITE_OP_META_GET, "N30 v", "bv", NULL, ext, val),
			 KITE_STATUS_OK);
	assert_string_equal(ext, "W");
	assert_int_equal(meta_bin(e, KITE_OP_META_GET, "N30 v", "bv", NULL, ext, val),
			 KITE_STATUS_OK);
	assert_string_equal(ext, "Z");
	assert_string_equal(text_run(e, "mg bv\r\n"), "HD Z\r\n");
	/* META_DELETE I: stale; the next reader wins with X W. */
	assert_int_equal(meta_bin(e, KITE_OP_META_DELETE, "I", "bm", NULL, ext, val),
			 KITE_STATUS_OK);
	assert_int_equal(meta_bin(e, KITE_OP_META_GET, "v", "bm", NULL, ext, val), KITE_STATUS_OK);
	assert_string_equal(ext, "X W");
	assert_string_equal(val, "abc");
	/* META_SET modes and CAS; META_ARITHMETIC. */
	assert_int_equal(meta_bin(e, KITE_OP_META_SET, "ME", "bm", "x", ext, val),
			 KITE_STATUS_NOT_STORED);
	assert_int_equal(meta_bin(e, KITE_OP_META_SET, "C1", "bm", "x", ext, val),
			 KITE_STATUS_KEY_EEXISTS);
	assert_int_equal(meta_bin(e, KITE_OP_META_SET, "C1", "nope", "x", ext, val),
			 KITE_STATUS_KEY_ENOENT);
	assert_int_equal(meta_bin(e, KITE_OP_META_SET, "q", "bq", "quiet", ext, val), 0xffff);
	assert_int_equal(meta_bin(e, KITE_OP_META_ARITH, "N0 J10 v", "bn", NULL, ext, val),
			 KITE_STATUS_OK);
	assert_string_equal(val, "10");
	assert_int_equal(meta_bin(e, KITE_OP_META_ARITH, "MD D3 v", "bn", NULL, ext, val),
			 KITE_STATUS_OK);
	assert_string_equal(val, "7");
	assert_int_equal(meta_bin(e, KITE_OP_META_ARITH, "", "bm", NULL, ext, val),
			 KITE_STATUS_DELTA_BADVAL);
	assert_int_equal(meta_bin(e, KITE_OP_META_DELETE, "", "bq", NULL, ext, val), KITE_STATUS_OK);
	assert_int_equal(meta_bin(e, KITE_OP_META_DELETE, "", "bq", NULL, ext, val),
			 KITE_STATUS_KEY_ENOENT);
	/* Bad flags: EINVAL with memcached's line; b and k are for text only. */
	assert_int_equal(meta_bin(e, KITE_OP_META_GET, "E", "bm", NULL, ext, val),
			 KITE_STATUS_EINVAL);
	assert_string_equal(val, "CLIENT_ERROR invalid flag");
	assert_int_equal(meta_bin(e, KITE_OP_META_GET, "k v", "bm", NULL, ext, val),
			 KITE_STATUS_EINVAL);
	assert_int_equal(meta_bin(e, KITE_OP_META_GET, "v q E", "bm", NULL, ext, val),
			 KITE_STATUS_EINVAL);
	/*
	 * The table entry that held that error is reused: a datagram cut short
	 * gets memcached's E2BIG body, not the meta error line of before.
	 */
	{
		static struct dg d;
		static struct res r[4];
		struct kite_engine_dgram g;

		dg_start(&d, 0xb2);
		dg_set(&d, KITE_OP_SET, 9, "cut", "value", 0, 0);
		memset(&g, 0, sizeof(g));
		g.truncated = true;
		run_verdict(e, &d, &g);
		assert_int_equal(parse_all(0xb2, r, 4), 1);
		assert_int_equal(r[0].status, KITE_STATUS_E2BIG);
		assert_int_equal(r[0].bodylen, strlen("Too large."));
		assert_memory_equal(r[0].body, "Too large.", r[0].bodylen);
	}
	kite_engine_free(e);
}

/* ttl-jitter: TTLs spread uniformly within +-N% of the time left; 0 and past times kept. */
static void
test_ttl_jitter(void **state)
{
	struct kite_engine_conf c;
	struct kite_engine *e;
	struct kite_store_view v;
	unsigned int below = 0, above = 0, n = 0;
	double sum = 0, sq = 0;
	char key[32], line[96];

	(void)state;
	engine_conf(&c, 1, 0, 1472, 0);
	c.ttl_jitter = 10;
	e = kite_engine_create(&c, 0);
	assert_non_null(e);
	kite_engine_set_time(e, NOW);
	text_run(e, "flush_all\r\n");
	for (int i = 0; i < 2000; i++) {
		struct kite_store *s;

		snprintf(key, sizeof(key), "j%d", i);
		snprintf(line, sizeof(line), "set %s 0 1000 1\r\nx\r\n", key);
		assert_string_equal(text_run(e, line), "STORED\r\n");
		s = parts[kite_topo_key_hash(key, (uint16_t)strlen(key)) % NPARTS];
		assert_int_equal(kite_store_get(s, key, (uint16_t)strlen(key),
						kite_store_hash(s, key, (uint16_t)strlen(key)), &v),
				 KITE_STORE_OK);
		int64_t ttl = (int64_t)v.exptime - NOW;
		assert_true(ttl >= 900 && ttl <= 1100);
		below += ttl < 1000;
		above += ttl > 1000;
		sum += (double)ttl;
		sq += (double)ttl * (double)ttl;
		n++;
	}
	/* Uniform on [900, 1100]: mean 1000, standard deviation 200 / sqrt(12) = 57.7. */
	double mean = sum / n, var = sq / n - mean * mean;
	assert_true(mean > 990 && mean < 1010);
	assert_true(var > 50 * 50 && var < 65 * 65);
	assert_true(below > 800 && above > 800);
	/* No expiry stays none; a TTL too short to spread stays as it is. */
	text_run(e, "set j-never 0 0 1\r\nx\r\nset j-short 0 5 1\r\nx\r\n");
	{
		struct kite_store *s = parts[kite_topo_key_hash("j-never", 7) % NPARTS];
		assert_int_equal(kite_store_get(s, "j-never", 7, kite_store_hash(s, "j-never", 7), &v),
				 KITE_STORE_OK);
		assert_int_equal(v.exptime, 0);
		s = parts[kite_topo_key_hash("j-short", 7) % NPARTS];
		assert_int_equal(kite_store_get(s, "j-short", 7, kite_store_hash(s, "j-short", 7), &v),
				 KITE_STORE_OK);
		assert_int_equal(v.exptime, NOW + 5);
	}
	kite_engine_free(e);
}

/* Hot keys: a key read often enough is hinted hot in its replies (binary bit, meta H). */
static void
test_hot_hint(void **state)
{
	struct kite_engine_conf c;
	struct kite_engine *e;
	static struct kite_hot_pub pub, snap;
	static struct dg d;
	static struct res r[4];
	char ext[300], val[300];

	(void)state;
	engine_conf(&c, 1, 0, 1472, 0);
	c.hot_rate = 100;
	c.hot_pub = &pub;
	e = kite_engine_create(&c, 0);
	assert_non_null(e);
	kite_engine_set_time(e, NOW);
	text_run(e, "flush_all\r\nset hot 0 0 1\r\nx\r\nset cold 0 0 1\r\ny\r\n");
	/* Nothing is hot before a second has been counted. */
	dg_start(&d, 0x40);
	dg_req(&d, KITE_OP_GET, 1, 0, NULL, 0, "hot", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(0x40, r, 4), 1);
	assert_int_equal(out_buf[0][8 + 5], 0);
	for (int i = 0; i < 5000; i++)
		text_run(e, "get hot\r\n");
	text_run(e, "get cold\r\n");
	kite_engine_set_time(e, NOW + 1);
	assert_true(kite_hot_read(&pub, &snap) >= 1); /* one read in 64 is counted */
	assert_int_equal(snap.hot, 1);
	assert_int_equal(snap.top[0].keylen, 3);
	assert_memory_equal(snap.top[0].key, "hot", 3);
	assert_true(snap.top[0].rate >= 2000);
	/* Binary GET hit: datatype bit 0x40; a cold key's: none. */
	dg_start(&d, 0x41);
	dg_req(&d, KITE_OP_GET, 1, 0, NULL, 0, "hot", NULL, 0);
	dg_req(&d, KITE_OP_GET, 2, 0, NULL, 0, "cold", NULL, 0);
	run(e, &d);
	assert_int_equal(parse_all(0x41, r, 4), 2);
	assert_int_equal(out_buf[0][8 + 5], KITE_DATATYPE_HOT);
	assert_int_equal(out_buf[0][8 + 24 + 4 + 1 + 5], 0); /* the second response's datatype */
	/* Meta: the return flag H, last (text and binary). */
	assert_string_equal(text_run(e, "mg hot v\r\nmg cold v\r\n"),
			    "VA 1 H\r\nx\r\nVA 1\r\ny\r\n");
	assert_int_equal(meta_bin(e, KITE_OP_META_GET, "v", "hot", NULL, ext, val), KITE_STATUS_OK);
	assert_string_equal(ext, "H");
	/* Cooled down: no more hint. */
	for (uint32_t s = 2; s < 12; s++)
		kite_engine_set_time(e, NOW + s);
	assert_string_equal(text_run(e, "mg hot v\r\n"), "VA 1\r\nx\r\n");
	kite_engine_free(e);
}

/* ---- the text relay (kite_engine_relay) --------------------------------- */

/* What a worker carries on: the reply datagrams so far (test buffers, as t_alloc gave them). */
static uint8_t *carried_bufs[MAX_OUT];
static uint16_t carried_lens[MAX_OUT];
static unsigned int carried_n, carry_calls;

static void
t_carry(void *arg, unsigned int n, uint8_t *const *bufs, const uint16_t *lens)
{
	(void)arg;
	for (unsigned int i = 0; i < n; i++) {
		carried_bufs[i] = bufs[i];
		carried_lens[i] = lens[i];
	}
	carried_n = n;
	carry_calls++;
}

static void
t_resume(void *arg, unsigned int n, uint8_t **bufs, uint16_t *lens)
{
	(void)arg;
	assert_int_equal(n, carried_n);
	for (unsigned int i = 0; i < n; i++) {
		bufs[i] = carried_bufs[i];
		lens[i] = carried_lens[i];
	}
	carried_n = 0;
}

static struct kite_engine *
make_relay_engine(uint16_t workers, uint16_t self, uint16_t payload)
{
	struct kite_engine_conf c;
	struct kite_engine *e;

	engine_conf(&c, workers, self, payload, 0);
	c.out.carry = t_carry;
	c.out.resume = t_resume;
	e = kite_engine_create(&c, 0);
	assert_non_null(e);
	kite_engine_set_time(e, NOW);
	return e;
}

/*
 * One text datagram through the relay, as kited's workers pass it on:
 * in at `home`, then to each worker the engine names, until one sends the
 * reply. The reply text (frames checked and stripped); *hops: workers after the first.
 */
static const char *
relay_run_bounded(struct kite_engine **eng, unsigned int home, const char *text, uint32_t budget,
		  unsigned int *hops)
{
	static struct dg d;
	struct kite_engine_dgram g;
	unsigned int at = home;

	dg_start(&d, 0x4e1a);
	memcpy(d.b + 8, text, strlen(text));
	d.len = 8 + (uint32_t)strlen(text);
	memset(&g, 0, sizeof(g));
	g.data = d.b;
	g.len = d.len;
	g.home = true;
	g.budget = budget;
	n_out = 0;
	done_calls = 0;
	carried_n = 0;
	alloc_budget = MAX_OUT;
	*hops = 0;
	for (;;) {
		/* A text datagram goes to one worker at a time: the mask is that worker alone. */
		assert_int_equal(kite_engine_parse(eng[at], &g), UINT64_C(1) << at);
		kite_engine_execute(eng[at]);
		if (g.relay_to < 0)
			break;
		assert_int_not_equal(g.relay_to, (int)at);
		at = (unsigned int)g.relay_to;
		g.home = false;
		g.inplace = false;
		(*hops)++;
		assert_true(*hops < 64);
	}
	/* Sent once, whole, by the last worker. */
	assert_true(done_calls <= 1);
	return reply_text(0x4e1a);
}

static const char *
relay_run(struct kite_engine **eng, unsigned int home, const char *text, unsigned int *hops)
{
	return relay_run_bounded(eng, home, text, 0, hops);
}

/* Keys owned by worker 0 and worker 1 of two (partition % 2). */
static void
keys_by_worker(char *k0, char *k1, const char *prefix)
{
	char key[32];

	k0[0] = k1[0] = '\0';
	for (int i = 0; k0[0] == '\0' || k1[0] == '\0'; i++) {
		snprintf(key, sizeof(key), "%s%d", prefix, i);
		uint32_t p = kite_topo_key_partition(key, (uint16_t)strlen(key), NPARTS);
		strcpy(p % 2 ? k1 : k0, key);
	}
}

/*
 * Text has no opaque: a datagram whose keys two workers own is answered
 * in command order, in one reply, whichever worker it arrives at.
 */
static void
test_text_relay(void **state)
{
	struct kite_engine *eng[2] = { make_relay_engine(2, 0, PAYLOAD),
				       make_relay_engine(2, 1, PAYLOAD) };
	char k0[32], k1[32], req[2048], want[2048];
	unsigned int hops;
	uint64_t relays;

	(void)state;
	keys_by_worker(k0, k1, "rel");
	snprintf(req, sizeof(req),
		 "set %s 0 0 3\r\none\r\nset %s 0 0 4\r\nzero\r\nget %s %s %s\r\n"
		 "delete %s\r\nmn\r\nget %s %s\r\nversion\r\n",
		 k1, k0, k0, k1, k0, k1, k1, k0);
	snprintf(want, sizeof(want),
		 "STORED\r\nSTORED\r\nVALUE %s 0 4\r\nzero\r\nVALUE %s 0 3\r\none\r\n"
		 "VALUE %s 0 4\r\nzero\r\nEND\r\nDELETED\r\nMN\r\nVALUE %s 0 4\r\nzero\r\nEND\r\n"
		 "VERSION " KITE_VERSION "\r\n",
		 k0, k1, k0, k0);
	for (unsigned int home = 0; home < 2; home++) {
		relays = wstats.rx_requests;
		assert_string_equal(relay_run(eng, home, req, &hops), want);
		/* Owners in command order 1 0 0 1 0 1 - 1 0 -: five changes, one more from worker 0. */
		assert_int_equal(hops, home == 0 ? 6u : 5u);
		/* Each request counted once, wherever it ran (get lines: one per key). */
		assert_int_equal(wstats.rx_requests - relays, 2 + 3 + 1 + 1 + 2 + 1);
	}

	/* A reply larger than a datagram: split with seq/total across the workers' parts. */
	{
		struct kite_engine *small[2] = { make_relay_engine(2, 0, 64),
						 make_relay_engine(2, 1, 64) };
		const char *r;

		snprintf(req, sizeof(req), "set %s 0 0 40\r\n%040d\r\nset %s 0 0 40\r\n%040d\r\n"
					   "get %s %s %s %s\r\n",
			 k0, 0, k1, 1, k0, k1, k0, k1);
		r = relay_run(small, 0, req, &hops);
		snprintf(want, sizeof(want),
			 "STORED\r\nSTORED\r\nVALUE %s 0 40\r\n%040d\r\nVALUE %s 0 40\r\n%040d\r\n"
			 "VALUE %s 0 40\r\n%040d\r\nVALUE %s 0 40\r\n%040d\r\nEND\r\n",
			 k0, 0, k1, 1, k0, 0, k1, 1);
		assert_string_equal(r, want);
		assert_true(n_out > 4);
		kite_engine_free(small[0]);
		kite_engine_free(small[1]);
	}

	/* flush_all goes round both workers before the command after it runs. */
	snprintf(req, sizeof(req), "set %s 0 0 1\r\na\r\nset %s 0 0 1\r\nb\r\nflush_all\r\n"
				   "get %s %s\r\nset %s 0 0 1\r\nc\r\nget %s\r\n",
		 k0, k1, k0, k1, k1, k1);
	snprintf(want, sizeof(want), "STORED\r\nSTORED\r\nOK\r\nEND\r\nSTORED\r\nVALUE %s 0 1\r\nc\r\nEND\r\n", k1);
	uint64_t flushes = wstats.cmd[KITE_CMD_FLUSH];
	assert_string_equal(relay_run(eng, 0, req, &hops), want);
	/* One flush_all, counted once. */
	assert_int_equal(wstats.cmd[KITE_CMD_FLUSH] - flushes, 1);
	/* Quiet requests on one worker and the rest on another: nothing lost, nothing doubled. */
	snprintf(req, sizeof(req), "set %s 0 0 1 noreply\r\nq\r\nset %s 0 0 1 noreply\r\nr\r\nmn\r\n", k1,
		 k0);
	assert_string_equal(relay_run(eng, 1, req, &hops), "MN\r\n");
	snprintf(req, sizeof(req), "mn\r\nset %s 0 0 1 noreply\r\nq\r\nset %s 0 0 1 noreply\r\nr\r\n", k1, k0);
	assert_string_equal(relay_run(eng, 1, req, &hops), "MN\r\n");
	/* Errors in the middle are answered in their place. */
	snprintf(req, sizeof(req), "get %s\r\nbogus\r\nget %s\r\n", k1, k0);
	snprintf(want, sizeof(want), "VALUE %s 0 1\r\nq\r\nEND\r\nERROR\r\nVALUE %s 0 1\r\nr\r\nEND\r\n", k1, k0);
	assert_string_equal(relay_run(eng, 0, req, &hops), want);
	assert_int_equal(hops, 2);

	/* The amplification bound holds for the whole reply: a cut goes on with the datagram. */
	{
		char big[1001];
		uint64_t cut = wstats.cut_bound;
		size_t total = 0;

		memset(big, 'x', 1000);
		big[1000] = '\0';
		snprintf(req, sizeof(req), "set %s 0 0 1000\r\n%s\r\n", k1, big);
		relay_run(eng, 0, req, &hops);
		snprintf(req, sizeof(req), "mn\r\nget %s\r\nset %s 0 0 1\r\nx\r\nget %s\r\n", k1, k0, k0);
		const uint32_t budget = 28 + 8 + (uint32_t)strlen(req) + 200;
		assert_string_equal(relay_run_bounded(eng, 0, req, budget, &hops),
				    "MN\r\nSERVER_ERROR cookie required\r\nSERVER_ERROR cookie required\r\n"
				    "SERVER_ERROR cookie required\r\n");
		/* Cut on worker 1, which had parsed up to worker 0's key: 0 tells the rest. */
		assert_int_equal(hops, 2);
		assert_int_equal(wstats.cut_bound, cut + 3);
		for (unsigned int i = 0; i < n_out; i++)
			total += 28u + out_len[i];
		assert_true(total <= budget);
		/* The cut set never ran: k0 holds what it held. */
		snprintf(req, sizeof(req), "get %s\r\n", k0);
		snprintf(want, sizeof(want), "VALUE %s 0 1\r\nr\r\nEND\r\n", k0);
		assert_string_equal(relay_run(eng, 1, req, &hops), want);
	}
	kite_engine_free(eng[0]);
	kite_engine_free(eng[1]);
}

/* The guard's verdict for a text datagram: refusals and cuts as lines. */
static void
test_text_guard(void **state)
{
	struct kite_engine *e = make_engine(1, 0, 1472);
	static struct dg d;
	static const char text[] = "set g 0 0 3\r\nabc\r\nget g\r\n";
	struct kite_engine_dgram g;

	(void)state;
	dg_start(&d, 9);
	memcpy(d.b + 8, text, sizeof(text) - 1);
	d.len = 8 + sizeof(text) - 1;
	memset(&g, 0, sizeof(g));
	g.data = d.b;
	g.len = d.len;
	g.home = true;
	g.refuse = KITE_STATUS_RATE_LIMITED;
	n_out = 0;
	alloc_budget = MAX_OUT;
	kite_engine_process(e, &g, 1);
	assert_int_equal(n_out, 1);
	assert_int_equal(out_len[0] - 8, 2 * strlen("SERVER_ERROR rate limited\r\n"));
	assert_memory_equal(out_buf[0] + 8,
			    "SERVER_ERROR rate limited\r\nSERVER_ERROR rate limited\r\n",
			    out_len[0] - 8);
	/* Nothing ran. */
	assert_string_equal(text_run(e, "get g\r\n"), "END\r\n");

	/* Forbidden: a key outside the sender's prefix. */
	g.refuse = 0;
	g.ns = KITE_ENGINE_NS_PREFIX;
	g.prefix = (const uint8_t *)"t1:";
	g.prefix_len = 3;
	n_out = 0;
	kite_engine_process(e, &g, 1);
	assert_memory_equal(out_buf[0] + 8, "CLIENT_ERROR forbidden\r\nCLIENT_ERROR forbidden\r\n",
			    out_len[0] - 8);

	/* The amplification bound: a reply over it is cut, the rest told so. */
	text_run(e, "set big 0 0 1000\r\n"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		    "\r\n");
	{
		static const char req[] = "get big\r\nset after 0 0 1\r\nx\r\nmn\r\n";
		uint64_t cut = wstats.cut_bound;

		dg_start(&d, 10);
		memcpy(d.b + 8, req, sizeof(req) - 1);
		d.len = 8 + sizeof(req) - 1;
		memset(&g, 0, sizeof(g));
		g.data = d.b;
		g.len = d.len;
		g.home = true;
		g.budget = 28 + d.len + 200; /* the request's own bytes, and some credit */
		n_out = 0;
		kite_engine_process(e, &g, 1);
		assert_int_equal(n_out, 1);
		assert_memory_equal(out_buf[0] + 8,
				    "SERVER_ERROR cookie required\r\nSERVER_ERROR cookie required\r\n"
				    "SERVER_ERROR cookie required\r\n",
				    out_len[0] - 8);
		assert_true((uint32_t)out_len[0] + 28 <= g.budget);
		assert_int_equal(wstats.cut_bound, cut + 3);
		assert_string_equal(text_run(e, "get after\r\n"), "END\r\n");
	}
	kite_engine_free(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_invalid),
		cmocka_unit_test(test_get_miss_and_hit),
		cmocka_unit_test(test_guard_verdict),
		cmocka_unit_test(test_quiet_batch_one_datagram),
		cmocka_unit_test(test_large_reply_split),
		cmocka_unit_test(test_repl_hook),
		cmocka_unit_test(test_small_responses_never_straddle),
		cmocka_unit_test(test_errors_and_next_request),
		cmocka_unit_test(test_quit_and_quitq),
		cmocka_unit_test(test_incr_flush_version_stat),
		cmocka_unit_test(test_flush_absolute),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_route_and_ownership),
		cmocka_unit_test(test_parse_withdraw_execute),
		cmocka_unit_test(test_many_datagrams),
		cmocka_unit_test(test_footprint),
		cmocka_unit_test(test_out_of_buffers),
		cmocka_unit_test(test_burst_of_datagrams),
		cmocka_unit_test(test_topology),
		cmocka_unit_test(test_cluster_roles),
		cmocka_unit_test(test_cluster_since),
		cmocka_unit_test(test_cluster_previous),
		cmocka_unit_test(test_reply_in_place),
		cmocka_unit_test(test_ablate_same_replies),
		cmocka_unit_test(test_text_classic),
		cmocka_unit_test(test_text_meta),
		cmocka_unit_test(test_text_guard),
		cmocka_unit_test(test_text_relay),
		cmocka_unit_test(test_meta_binary),
		cmocka_unit_test(test_guard_cut_before_run),
		cmocka_unit_test(test_ttl_jitter),
		cmocka_unit_test(test_hot_hint),
	};

	if (kite_test_eal_init("engine") != 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
