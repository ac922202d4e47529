/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * kite-bench's own logic, without a network: options, the histogram, Zipf
 * popularity, self-checking values, and the generator's matching of
 * replies to requests (driven by a tiny in-test server), including
 * multi-datagram reassembly, stale and duplicate answers, timeouts,
 * partition steering and echo mode, and --guard's envelope judged by the
 * real guard (lib/guard).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <rte_common.h>

#include "kite_guard.h"
#include "kite_proto.h"
#include "kite_topo.h"

#include "bench.h"
#include "workload.h"

#define HZ 1000000000u

static void
opts(struct bench_options *o, const char *const *kv)
{
	char err[256];

	bench_options_defaults(o);
	for (; kv != NULL && kv[0] != NULL; kv += 2)
		assert_int_equal(bench_options_set(o, kv[0], kv[1], err, sizeof(err)), 0);
}

static struct gen *
make_gen(struct workload *w, const struct bench_options *o, uint32_t window)
{
	struct gen_conf c;
	char err[256];

	assert_int_equal(workload_init(w, o, HZ, err, sizeof(err)), 0);
	memset(&c, 0, sizeof(c));
	c.w = w;
	c.nthreads = 1;
	c.window = window;
	c.flows = 1;
	c.seed = 7;
	c.socket_id = -1;
	return gen_create(&c);
}

/* ---- options ------------------------------------------------------------ */

static void
test_options_reject(void **state)
{
	struct bench_options o;
	struct workload w;
	char err[256];
	char *argv_bad[] = { "kite-bench", "--batch", "0", NULL };
	char *argv_unknown[] = { "kite-bench", "--nope", NULL };
	char *argv_ok[] = { "kite-bench", "--no-preload", "--batch=16", "--mix", "get:1", NULL };

	(void)state;
	assert_int_equal(bench_options_parse(&o, 3, argv_bad, stdout, err, sizeof(err)),
			 BENCH_PARSE_ERROR);
	assert_int_equal(bench_options_parse(&o, 2, argv_unknown, stdout, err, sizeof(err)),
			 BENCH_PARSE_ERROR);
	assert_int_equal(bench_options_parse(&o, 5, argv_ok, stdout, err, sizeof(err)),
			 BENCH_PARSE_RUN);
	assert_false(o.preload);
	assert_int_equal(o.batch, 16);

	/* Values too short for version + checksum, bad mixes and distributions. */
	opts(&o, (const char *const[]){ "value-size", "4", NULL });
	assert_int_not_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	opts(&o, (const char *const[]){ "mix", "get:0", NULL });
	assert_int_not_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	opts(&o, (const char *const[]){ "mix", "fetch:1", NULL });
	assert_int_not_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	opts(&o, (const char *const[]){ "dist", "zipf:0", NULL });
	assert_int_not_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	opts(&o, (const char *const[]){ "value-size", "uniform:64-16", NULL });
	assert_int_not_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	/* --guard: a known mode; mac needs a tenant and its 64-hex-digit secret; not echo. */
	opts(&o, (const char *const[]){ "guard", "hmac", NULL });
	assert_int_not_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	opts(&o, (const char *const[]){ "guard", "mac", "tenant", "3", NULL });
	assert_int_not_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	opts(&o, (const char *const[]){ "guard", "mac", "tenant", "3", "tenant-secret", "abcd",
					NULL });
	assert_int_not_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	opts(&o, (const char *const[]){ "guard", "cookie", "echo", "true", NULL });
	assert_int_not_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	opts(&o, (const char *const[]){ "guard", "cookie", NULL });
	assert_int_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	/* A 10-byte key holds 9 hex digits: 2^36 keys at most, 2^32 allowed. */
	opts(&o, (const char *const[]){ "key-size", "10", "keys", "4294967296", NULL });
	assert_int_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	opts(&o, NULL);
	assert_int_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
}

/* ---- histogram ------------------------------------------------------------ */

static void
test_hist(void **state)
{
	static struct hist h, g;
	uint64_t prev_hi = 0;

	(void)state;
	/* Buckets tile the value range with no gap or overlap. */
	for (unsigned int i = 0; i < HIST_BUCKETS; i++) {
		assert_true(hist_bucket_lo(i) <= hist_bucket_hi(i));
		if (i > 0)
			assert_int_equal(hist_bucket_lo(i), prev_hi + 1);
		prev_hi = hist_bucket_hi(i);
	}
	assert_int_equal(prev_hi, UINT64_MAX);
	for (uint64_t v = 1; v < (UINT64_C(1) << 62); v = v * 3 + 1) {
		unsigned int i = hist_index(v);
		assert_true(i < HIST_BUCKETS);
		assert_true(hist_bucket_lo(i) <= v && v <= hist_bucket_hi(i));
		/* Under 1.6% relative width above the exact range. */
		if (v >= 2 * HIST_SUB)
			assert_true((double)(hist_bucket_hi(i) - hist_bucket_lo(i)) <
				    (double)v / HIST_SUB + 1);
	}

	hist_reset(&h);
	for (uint64_t v = 1; v <= 10000; v++)
		hist_add(&h, v, 1);
	assert_int_equal(h.count, 10000);
	assert_int_equal(h.min, 1);
	assert_int_equal(h.max, 10000);
	assert_true(labs((long)hist_quantile(&h, 0.5) - 5000) < 5000 / 60);
	assert_true(labs((long)hist_quantile(&h, 0.99) - 9900) < 9900 / 60);
	assert_int_equal(hist_quantile(&h, 1.0), 10000);

	hist_reset(&g);
	hist_add(&g, 20000, 100);
	hist_merge(&g, &h);
	assert_int_equal(g.count, 10100);
	assert_int_equal(g.max, 20000);
	hist_diff(&h, &g, &h);
	assert_int_equal(h.count, 100);
}

/* ---- popularity --------------------------------------------------------- */

static void
test_zipf(void **state)
{
	const double thetas[] = { 0.5, 0.99, 1.0, 1.2 };
	struct bench_options o;
	struct workload w;
	char err[256], dist[32];

	(void)state;
	for (unsigned int t = 0; t < RTE_DIM(thetas); t++) {
		const uint64_t n = 1000, draws = 400000;
		uint32_t *count = calloc(n, sizeof(uint32_t));
		double hn = 0;
		uint64_t rng = 42, hottest = 0;

		assert_non_null(count);
		snprintf(dist, sizeof(dist), "zipf:%g", thetas[t]);
		opts(&o, (const char *const[]){ "keys", "1000", "dist", dist, NULL });
		assert_int_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
		for (uint64_t i = 0; i < draws; i++) {
			uint64_t k = draw_key(&w, &rng);
			assert_true(k < n);
			count[k]++;
		}
		for (uint64_t r = 1; r <= n; r++)
			hn += pow((double)r, -thetas[t]);
		/* Rank 1 maps to key 0; its share is 1 / H(n, theta). */
		for (uint64_t k = 0; k < n; k++)
			if (count[k] > count[hottest])
				hottest = k;
		assert_int_equal(hottest, 0);
		assert_true(fabs((double)count[0] / draws - 1.0 / hn) < 0.05 / hn + 0.002);
		/* Rank 2 lands at perm_mul: half (2^-theta) as popular as rank 1. */
		assert_true(fabs((double)count[w.perm_mul % n] / count[0] - pow(2, -thetas[t])) <
			    0.05);
		free(count);
	}
}

/* ---- values ------------------------------------------------------------- */

static void
test_values(void **state)
{
	uint8_t v[1100];
	uint32_t flags;

	(void)state;
	for (uint32_t len = 8; len < sizeof(v); len += 37) {
		value_write(v, len, 12345, 77, &flags);
		assert_true(value_check(v, len, 12345, flags));
		assert_false(value_check(v, len, 12346, flags));     /* another key */
		assert_false(value_check(v, len - 1, 12345, flags)); /* cut short */
		assert_false(value_check(v, len, 12345, flags ^ 1)); /* other flags */
		v[len - 1] ^= 0x40;				     /* damaged at the end */
		assert_false(value_check(v, len, 12345, flags));
	}
	assert_false(value_check(v, 7, 1, 0));
}

/* ---- the generator against a tiny server --------------------------------- */

/* An in-test server: a value per key index, answers one request datagram. */
struct mini {
	uint8_t val[64][512];
	uint32_t len[64];
	uint32_t flags[64];
	bool have[64];
	bool corrupt;
};

static uint64_t
key_index(const uint8_t *k, uint16_t kl)
{
	uint64_t idx = 0;

	for (uint16_t i = 1; i < kl; i++)
		idx = idx * 16 + (uint64_t)(k[i] <= '9' ? k[i] - '0' : k[i] - 'a' + 10);
	return idx;
}

/* Answer every request of a datagram into one reply message; returns its length. */
static uint32_t
mini_serve(struct mini *m, const uint8_t *req, uint32_t len, uint8_t *out)
{
	uint32_t off = KITE_FRAME_HDR_LEN, o = KITE_FRAME_HDR_LEN;

	memcpy(out, req, KITE_FRAME_HDR_LEN);
	while (off < len) {
		struct kite_req r;
		size_t used;
		uint8_t st, drop;
		uint64_t k;

		assert_int_equal(
			kite_proto_parse(req + off, len - off, UINT32_MAX, &r, &used, &st, &drop),
			KITE_PARSE_OK);
		k = key_index(r.key, r.keylen) % 64;
		switch (r.cmd) {
		case KITE_CMD_SET:
			memcpy(m->val[k], r.value, r.vallen);
			m->len[k] = r.vallen;
			m->flags[k] = r.flags;
			m->have[k] = true;
			kite_proto_write_res_hdr(out + o, r.opcode, 0, 0, 0, 0, r.opaque, 1);
			o += KITE_BIN_HDR_LEN;
			break;
		case KITE_CMD_GET:
			if (!m->have[k]) {
				kite_proto_write_res_hdr(out + o, r.opcode, 0, 0,
							 KITE_STATUS_KEY_ENOENT, 9, r.opaque, 0);
				memcpy(out + o + KITE_BIN_HDR_LEN, "Not found", 9);
				o += KITE_BIN_HDR_LEN + 9;
				break;
			}
			kite_proto_write_res_hdr(out + o, r.opcode, 0, 4, 0, 4 + m->len[k],
						 r.opaque, 1);
			kite_proto_put32(out + o + KITE_BIN_HDR_LEN, m->flags[k]);
			memcpy(out + o + KITE_BIN_HDR_LEN + 4, m->val[k], m->len[k]);
			if (m->corrupt)
				out[o + KITE_BIN_HDR_LEN + 4 + m->len[k] - 1] ^= 1;
			o += KITE_BIN_HDR_LEN + 4 + m->len[k];
			break;
		default:
			kite_proto_write_res_hdr(out + o, r.opcode, 0, 0, KITE_STATUS_EINVAL, 0,
						 r.opaque, 0);
			o += KITE_BIN_HDR_LEN;
			break;
		}
		off += (uint32_t)used;
	}
	return o;
}

/* Send the reply message as `parts` datagrams with seq/total, in reverse order. */
static void
deliver(struct gen *g, const uint8_t *msg, uint32_t len, unsigned int parts, uint32_t stride,
	uint64_t now)
{
	uint32_t body = len - KITE_FRAME_HDR_LEN;
	uint32_t chunk = (body + parts - 1) / parts;
	uint8_t dg[2048];

	assert_true(chunk <= stride);
	for (int i = (int)parts - 1; i >= 0; i--) {
		uint32_t a = (uint32_t)i * chunk, n = body - a < chunk ? body - a : chunk;
		memcpy(dg, msg, 2);
		kite_proto_put16(dg + 2, (uint16_t)i);
		kite_proto_put16(dg + 4, (uint16_t)parts);
		kite_proto_put16(dg + 6, 0);
		memcpy(dg + KITE_FRAME_HDR_LEN, msg + KITE_FRAME_HDR_LEN + a, n);
		gen_rx(g, dg, KITE_FRAME_HDR_LEN + n, now);
	}
}

static void
test_gen_roundtrip(void **state)
{
	static struct mini m;
	static uint8_t req[4096], res[65536];
	struct bench_options o;
	struct workload w;
	struct gen *g;
	struct gen_dgram d;
	uint64_t now = 1000;
	const struct bench_stats *s;

	(void)state;
	memset(&m, 0, sizeof(m));
	opts(&o, (const char *const[]){ "keys", "64", "batch", "4", "value-size", "uniform:8-300",
					"mix", "get:70,set:30", NULL });
	g = make_gen(&w, &o, 8);
	assert_non_null(g);

	/* Preload: every key stored once, in datagrams of up to 4. */
	gen_start(g, PHASE_PRELOAD, now);
	while (gen_prepare(g, now, &d)) {
		gen_write(g, &d, req);
		gen_sent(g, &d, now, 1);
		deliver(g, res, mini_serve(&m, req, d.len, res), 1, w.reply_stride, now + 10);
	}
	assert_true(gen_preload_done(g));
	s = gen_stats(g);
	assert_int_equal(s->set_ok, 64);
	assert_int_equal(gen_inflight(g), 0);

	/* Load: every answer matched and verified, replies split into 1..3 datagrams. */
	gen_start(g, PHASE_LOAD, now);
	for (int i = 0; i < 300; i++) {
		uint32_t n;
		assert_true(gen_prepare(g, now, &d));
		assert_true(d.len <= 4 * w.max_req + KITE_FRAME_HDR_LEN);
		gen_write(g, &d, req);
		gen_sent(g, &d, now, 1);
		n = mini_serve(&m, req, d.len, res);
		deliver(g, res, n, 1 + (unsigned int)i % 3, w.reply_stride, now + 100);
		/* Replayed: now stale (the slot is free or has moved on). */
		if (i % 50 == 0)
			deliver(g, res, n, 1, w.reply_stride, now + 100);
	}
	s = gen_stats(g);
	assert_int_equal(s->done, s->tx_reqs);
	assert_int_equal(s->get_hit + s->set_ok, s->tx_reqs);
	assert_int_equal(s->wrong_value, 0);
	assert_int_equal(s->stale, 6);
	assert_int_equal(gen_hist(g)->count, s->done);
	assert_int_equal(hist_quantile(gen_hist(g), 0.5), 100);

	/* A damaged value is caught. */
	m.corrupt = true;
	for (int i = 0; i < 20; i++) {
		assert_true(gen_prepare(g, now, &d));
		gen_write(g, &d, req);
		gen_sent(g, &d, now, 1);
		deliver(g, res, mini_serve(&m, req, d.len, res), 1, w.reply_stride, now + 100);
	}
	assert_true(s->wrong_value > 0);

	/* No answer: timeouts after the deadline, and only then. */
	{
		uint64_t before = s->timeouts;
		while (gen_prepare(g, now, &d)) {
			gen_write(g, &d, req);
			gen_sent(g, &d, now, 1);
		}
		assert_int_equal(gen_inflight(g), 8);
		gen_expire(g, now + w.timeout_tsc / 2, false);
		assert_int_equal(gen_inflight(g), 8);
		gen_expire(g, now + w.timeout_tsc + 1, false);
		assert_int_equal(gen_inflight(g), 0);
		assert_true(s->timeouts > before);
	}
	gen_free(g);
}

/* A lossy server: preload sends unanswered SETs again until every key is stored. */
static void
test_gen_preload_retry(void **state)
{
	static struct mini m;
	static uint8_t req[4096], res[65536];
	struct bench_options o;
	struct workload w;
	struct gen *g;
	struct gen_dgram d;
	uint64_t now = 1000;
	unsigned int n = 0, stored = 0;

	(void)state;
	memset(&m, 0, sizeof(m));
	opts(&o, (const char *const[]){ "keys", "64", "batch", "3", NULL });
	g = make_gen(&w, &o, 4);
	assert_non_null(g);
	gen_start(g, PHASE_PRELOAD, now);
	for (int round = 0; round < 50 && !gen_preload_done(g); round++) {
		while (gen_prepare(g, now, &d)) {
			gen_write(g, &d, req);
			gen_sent(g, &d, now, 1);
			/* Every third datagram is lost. */
			if (++n % 3 != 0)
				deliver(g, res, mini_serve(&m, req, d.len, res), 1, w.reply_stride,
					now + 1);
		}
		now += w.timeout_tsc + 1;
		gen_expire(g, now, false);
	}
	assert_true(gen_preload_done(g));
	for (int k = 0; k < 64; k++)
		stored += m.have[k];
	assert_int_equal(stored, 64);
	assert_int_equal(gen_stats(g)->set_ok, 64);
	assert_true(gen_stats(g)->timeouts > 0);
	gen_free(g);
}

static void
test_gen_partitions(void **state)
{
	static uint8_t req[4096];
	struct bench_options o;
	struct workload w;
	struct gen *g;
	struct gen_dgram d;

	(void)state;
	opts(&o, (const char *const[]){ "keys", "100000", "batch", "16", "partitions", "4",
					"udp-port", "11211", NULL });
	g = make_gen(&w, &o, 64);
	assert_non_null(g);
	gen_start(g, PHASE_LOAD, 0);
	for (int i = 0; i < 64; i++) {
		uint32_t off = KITE_FRAME_HDR_LEN, n = 0;
		assert_true(gen_prepare(g, 0, &d));
		gen_write(g, &d, req);
		gen_sent(g, &d, 0, 1);
		/* Every key of a datagram is in the partition its port names. */
		while (off < d.len) {
			struct kite_req r;
			size_t used;
			uint8_t st, drop;
			assert_int_equal(kite_proto_parse(req + off, d.len - off, UINT32_MAX, &r,
							  &used, &st, &drop),
					 KITE_PARSE_OK);
			assert_int_equal(kite_topo_key_partition(r.key, r.keylen, 4) + 11211,
					 d.dst_port);
			off += (uint32_t)used;
			n++;
		}
		assert_int_equal(n, 16);
	}
	gen_free(g);
}

static void
test_gen_echo(void **state)
{
	static uint8_t req[4096];
	struct bench_options o;
	struct workload w;
	struct gen *g;
	struct gen_dgram d;

	(void)state;
	opts(&o, (const char *const[]){ "echo", "true", "batch", "8", NULL });
	g = make_gen(&w, &o, 4);
	assert_non_null(g);
	gen_start(g, PHASE_LOAD, 0);
	for (int i = 0; i < 10; i++) {
		assert_true(gen_prepare(g, 0, &d));
		gen_write(g, &d, req);
		gen_sent(g, &d, 0, 1);
		gen_rx(g, req, d.len, 5); /* the request itself comes back */
	}
	assert_int_equal(gen_stats(g)->echo_ok, 80);
	assert_int_equal(gen_stats(g)->done, 80);
	gen_free(g);
}

/* ---- --protocol text: memcached's text commands --------------------------- */

/* A text server for the test: get/set/delete of 64 keys, replies in request order. */
static uint32_t
text_serve(struct mini *m, const uint8_t *req, uint32_t len, uint8_t *out)
{
	uint32_t off = KITE_FRAME_HDR_LEN, o = KITE_FRAME_HDR_LEN;

	memcpy(out, req, KITE_FRAME_HDR_LEN);
	while (off < len) {
		const uint8_t *p = req + off;
		const uint8_t *nl = memchr(p, '\n', len - off);
		char line[400], key[300];
		unsigned int flags, bytes;
		uint64_t k;

		assert_non_null(nl);
		assert_true((size_t)(nl - p) < sizeof(line));
		memcpy(line, p, (size_t)(nl - p));
		line[nl - p] = '\0';
		off += (uint32_t)(nl - p) + 1;
		if (sscanf(line, "set %299s %u 0 %u", key, &flags, &bytes) == 3) {
			k = key_index((const uint8_t *)key, (uint16_t)strlen(key)) % 64;
			assert_true(bytes <= sizeof(m->val[k]));
			memcpy(m->val[k], req + off, bytes);
			m->len[k] = bytes;
			m->flags[k] = flags;
			m->have[k] = true;
			assert_memory_equal(req + off + bytes, "\r\n", 2);
			off += bytes + 2;
			o += (uint32_t)sprintf((char *)out + o, "STORED\r\n");
		} else if (sscanf(line, "get %299s", key) == 1) {
			k = key_index((const uint8_t *)key, (uint16_t)strlen(key)) % 64;
			if (m->have[k]) {
				o += (uint32_t)sprintf((char *)out + o, "VALUE %s %u %u\r\n", key,
						       m->flags[k], m->len[k]);
				memcpy(out + o, m->val[k], m->len[k]);
				if (m->corrupt)
					out[o + m->len[k] - 1] ^= 1;
				o += m->len[k];
				o += (uint32_t)sprintf((char *)out + o, "\r\n");
			}
			o += (uint32_t)sprintf((char *)out + o, "END\r\n");
		} else if (sscanf(line, "delete %299s", key) == 1) {
			k = key_index((const uint8_t *)key, (uint16_t)strlen(key)) % 64;
			o += (uint32_t)sprintf((char *)out + o, m->have[k] ? "DELETED\r\n"
									: "NOT_FOUND\r\n");
			m->have[k] = false;
		} else {
			fail_msg("unexpected text request '%s'", line);
		}
	}
	return o;
}

static void
test_gen_text(void **state)
{
	static struct mini m;
	static uint8_t req[4096], res[65536];
	struct bench_options o;
	struct workload w;
	struct gen *g;
	struct gen_dgram d;
	uint64_t now = 1000;
	const struct bench_stats *s;
	char err[256];

	(void)state;
	memset(&m, 0, sizeof(m));
	opts(&o, (const char *const[]){ "keys", "64", "batch", "4", "value-size", "uniform:8-300",
					"mix", "get:80,set:10,delete:10", "protocol", "text", NULL });
	g = make_gen(&w, &o, 8);
	assert_non_null(g);
	assert_true(w.text);
	gen_start(g, PHASE_PRELOAD, now);
	while (gen_prepare(g, now, &d)) {
		gen_write(g, &d, req);
		gen_sent(g, &d, now, 1);
		/* The request is exactly as long as was counted for it. */
		assert_memory_equal(req + d.len - 2, "\r\n", 2);
		deliver(g, res, text_serve(&m, req, d.len, res), 1, w.reply_stride, now + 10);
	}
	assert_true(gen_preload_done(g));
	gen_start(g, PHASE_LOAD, now);
	for (int i = 0; i < 300; i++) {
		assert_true(gen_prepare(g, now, &d));
		gen_write(g, &d, req);
		gen_sent(g, &d, now, 1);
		deliver(g, res, text_serve(&m, req, d.len, res), 1 + (unsigned int)i % 2,
			w.reply_stride, now + 100);
	}
	s = gen_stats(g);
	assert_int_equal(s->done, s->tx_reqs);
	assert_true(s->get_hit > 0 && s->set_ok > 0 && s->del_ok > 0);
	assert_int_equal(s->get_hit + s->get_miss + s->set_ok + s->del_ok, s->tx_reqs);
	assert_int_equal(s->wrong_value, 0);
	assert_int_equal(s->bad_reply, 0);
	m.corrupt = true;
	for (int i = 0; i < 40; i++) {
		assert_true(gen_prepare(g, now, &d));
		gen_write(g, &d, req);
		gen_sent(g, &d, now, 1);
		deliver(g, res, text_serve(&m, req, d.len, res), 1, w.reply_stride, now + 100);
	}
	assert_true(s->wrong_value > 0);
	gen_free(g);
	/* No incr in text; no echo. */
	opts(&o, (const char *const[]){ "protocol", "text", "mix", "get:1,incr:1", NULL });
	assert_int_not_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	opts(&o, (const char *const[]){ "protocol", "text", "echo", "true", NULL });
	assert_int_not_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	opts(&o, (const char *const[]){ "protocol", "ascii", NULL });
	assert_int_not_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
}

/* ---- --guard: the envelope as lib/guard judges it ------------------------ */

#define G_SELF 0xc6120902u /* 198.18.9.2 */
#define G_CLIENT 0xc6120901u
#define G_SECRET "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"

static uint64_t
unix_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static struct kite_guard *
bench_guard(struct kite_guard_stats *st, enum kite_guard_auth auth,
	    struct kite_guard_tenants **tenants)
{
	/* Command classes by KITE_CMD_* bit, as kited names them (only the count matters here). */
	static char namebuf[32][4];
	static const char *names[32];
	struct kite_guard_conf c;
	struct kite_guard *g;
	char err[160];

	for (int i = 0; i < 32; i++) {
		snprintf(namebuf[i], sizeof(namebuf[i]), "c%d", i);
		names[i] = namebuf[i];
	}
	memset(&c, 0, sizeof(c));
	c.self_ip = G_SELF;
	c.bound = true;
	memset(c.cookie_secret, 3, sizeof(c.cookie_secret));
	c.cookie_window_s = 300;
	c.credit_max = 4096;
	c.credit_ms = 1000;
	c.burst_ms = 100;
	c.work = 512;
	c.stamp_past_ms = 30000;
	c.stamp_future_ms = 1000;
	c.workers = 1;
	c.sources = 64;
	c.all_cmds = ~UINT32_C(0);
	c.admin_cmds = UINT32_C(1) << KITE_CMD_STAT;
	c.auth = auth;
	c.mtu = 1500;
	memset(st, 0, sizeof(*st));
	g = kite_guard_create(&c, st);
	assert_non_null(g);
	*tenants = NULL;
	if (auth != KITE_GUARD_AUTH_OFF) {
		*tenants = kite_guard_tenants_parse("7 bench " G_SECRET " k admin\n", names, 32, err,
						    sizeof(err));
		assert_non_null(*tenants);
		kite_guard_set_tenants(g, *tenants);
	}
	return g;
}

/*
 * The node's side: the guard judges the datagram; a passed one is served
 * without its envelope and answered with the reply envelope the guard chose.
 */
static uint32_t
guarded_serve(struct kite_guard *kg, struct mini *m, uint8_t *req, uint32_t len, uint16_t port,
	      uint8_t *out, struct kite_guard_verdict *v)
{
	static uint8_t bare[4096], body[65536];
	uint32_t n;

	kite_guard_check(kg, req, len, G_CLIENT, port, unix_us(), v);
	assert_int_equal(v->action, KITE_GUARD_PASS);
	assert_int_equal(v->refuse, 0);
	memcpy(bare, req, KITE_FRAME_HDR_LEN);
	memcpy(bare + KITE_FRAME_HDR_LEN, req + KITE_FRAME_HDR_LEN + v->skip,
	       len - KITE_FRAME_HDR_LEN - v->skip);
	n = mini_serve(m, bare, len - v->skip, body);
	memcpy(out, body, KITE_FRAME_HDR_LEN);
	memcpy(out + KITE_FRAME_HDR_LEN, v->renv, v->renv_len);
	memcpy(out + KITE_FRAME_HDR_LEN + v->renv_len, body + KITE_FRAME_HDR_LEN,
	       n - KITE_FRAME_HDR_LEN);
	return n + v->renv_len;
}

static void
run_guarded(const char *mode)
{
	static struct mini m;
	static uint8_t req[4096], res[65536];
	const bool mac = strcmp(mode, "mac") == 0;
	struct kite_guard_tenants *tenants;
	struct kite_guard_stats st;
	struct kite_guard_verdict v;
	struct kite_guard *kg;
	struct bench_options o;
	struct workload w;
	struct gen *g;
	struct gen_dgram d;
	const struct bench_stats *s;
	uint64_t now = 1000;

	memset(&m, 0, sizeof(m));
	opts(&o, (const char *const[]){ "keys", "16", "batch", "2", "mix", "get:80,set:20",
					"guard", mode, "tenant", mac ? "7" : "0",
					"tenant-secret", mac ? G_SECRET : "", NULL });
	g = make_gen(&w, &o, 4);
	assert_non_null(g);
	assert_int_equal(w.hdr, KITE_FRAME_HDR_LEN + KITE_GUARD_ENV_HEAD + KITE_GUARD_COOKIE_LEN +
					(mac ? KITE_GUARD_AUTH_LEN : 0));
	kg = bench_guard(&st, mac ? KITE_GUARD_AUTH_REQUIRED : KITE_GUARD_AUTH_OFF, &tenants);

	/* Preload and load through the guard: every datagram passes, MACs verify. */
	gen_start(g, PHASE_PRELOAD, now);
	while (gen_prepare(g, now, &d)) {
		gen_write(g, &d, req);
		assert_int_equal(req[KITE_FRAME_HDR_LEN], KITE_GUARD_MAGIC);
		gen_sent(g, &d, now, 1);
		deliver(g, res, guarded_serve(kg, &m, req, d.len, 40000, res, &v), 1,
			w.reply_stride, now + 10);
	}
	assert_true(gen_preload_done(g));
	gen_start(g, PHASE_LOAD, now);
	for (int i = 0; i < 100; i++) {
		assert_true(gen_prepare(g, now, &d));
		gen_write(g, &d, req);
		gen_sent(g, &d, now, 1);
		deliver(g, res, guarded_serve(kg, &m, req, d.len, 40000, res, &v), 1,
			w.reply_stride, now + 10);
		if (mac) {
			assert_true(v.tenant >= 0);
			assert_int_equal(v.prefix_len, 1);
		}
	}
	s = gen_stats(g);
	assert_int_equal(s->done, s->tx_reqs);
	assert_int_equal(s->wrong_value, 0);
	assert_int_equal(s->err_status, 0);
	assert_int_equal(s->bad_reply, 0);
	/* The first datagram had no cookie: it got one, and every later one was validated. */
	assert_int_equal(st.cookies_sent, 1);
	assert_int_equal(st.cookie_bad, 1);
	assert_int_equal(st.validated, st.passed - 1);
	assert_int_equal(st.authed, mac ? st.passed : 0);
	assert_int_equal(st.auth_replay + st.auth_mac + st.auth_stamp, 0);

	/* The control STAT: a cookie fetched on the first try, then answered in full. */
	{
		struct ctl_collect c;
		static uint8_t cbuf[KITE_MAX_REPLY_DGRAMS * 2048];
		uint8_t cookie[KITE_GUARD_COOKIE_LEN] = { 0 }, dg[128];
		uint32_t len = ctl_stat_request(&w, req, 0xfff0, cookie, mac ? gen_stamp(g, 0) : 0);

		assert_true(len <= CTL_REQ_MAX);
		kite_guard_check(kg, req, len, G_CLIENT, 40001, unix_us(), &v);
		assert_int_equal(v.action, KITE_GUARD_PASS);
		assert_true(v.renv_len > KITE_GUARD_ENV_HEAD); /* a cookie offered */
		if (mac)
			assert_true(v.cmds & UINT32_C(1) << KITE_CMD_STAT);
		/* What the node sends back: frame, its envelope, a STAT end. */
		memcpy(dg, req, KITE_FRAME_HDR_LEN);
		memcpy(dg + KITE_FRAME_HDR_LEN, v.renv, v.renv_len);
		kite_proto_write_res_hdr(dg + KITE_FRAME_HDR_LEN + v.renv_len, KITE_OP_STAT, 0, 0,
					 0, 0, 0xc0ffee00u, 0);
		ctl_collect_init(&c, 0xfff0, cbuf, 2048);
		assert_true(ctl_collect_add(&c, dg, KITE_FRAME_HDR_LEN + v.renv_len + KITE_BIN_HDR_LEN));
		assert_true(c.has_cookie);
		memcpy(cookie, c.cookie, sizeof(cookie));
		len = ctl_stat_request(&w, req, 0xfff1, cookie, mac ? gen_stamp(g, 0) : 0);
		st.validated = 0;
		kite_guard_check(kg, req, len, G_CLIENT, 40001, unix_us(), &v);
		assert_int_equal(v.action, KITE_GUARD_PASS);
		assert_int_equal(st.validated, 1);
		assert_int_equal(v.renv_len, KITE_GUARD_ENV_HEAD); /* holds a fresh one */
	}

	/* A replayed signed datagram is refused: the stamps really are checked. */
	if (mac) {
		uint32_t len = ctl_stat_request(&w, req, 0xfff2, NULL, gen_stamp(g, 0));
		static uint8_t again[CTL_REQ_MAX];

		memcpy(again, req, len);
		kite_guard_check(kg, req, len, G_CLIENT, 40002, unix_us(), &v);
		assert_int_equal(v.action, KITE_GUARD_PASS);
		kite_guard_check(kg, again, len, G_CLIENT, 40002, unix_us(), &v);
		assert_int_equal(st.auth_replay, 1);
	}
	kite_guard_free(kg);
	free(tenants);
	gen_free(g);
}

/*
 * AUTH stamps per flow: the node wants them increasing per source socket,
 * and each is at least the last + 1 us. Shared by all flows, 8,000 stamps
 * drawn at once would run 8 ms ahead of the clock (the node refuses 1 s
 * ahead, which a one-sequence generator reached at 4 million datagrams a
 * second); per flow each runs 1 ms ahead at most.
 */
static void
test_gen_stamps_per_flow(void **state)
{
	struct bench_options o;
	struct workload w;
	struct gen_conf c;
	char err[256];
	uint64_t last[8] = { 0 }, top = 0;
	struct gen *g;

	(void)state;
	opts(&o, (const char *const[]){ "keys", "16", "guard", "mac", "tenant", "7",
					"tenant-secret", G_SECRET, NULL });
	assert_int_equal(workload_init(&w, &o, HZ, err, sizeof(err)), 0);
	memset(&c, 0, sizeof(c));
	c.w = &w;
	c.nthreads = 1;
	c.window = 4;
	c.flows = 8;
	c.seed = 7;
	c.socket_id = -1;
	g = gen_create(&c);
	assert_non_null(g);
	for (unsigned int i = 0; i < 8000; i++) {
		const uint16_t f = (uint16_t)(i % 8);
		const uint64_t st = gen_stamp(g, f);

		assert_true(st > last[f]);
		last[f] = st;
		top = st > top ? st : top;
	}
	assert_true(top < kite_guard_wall_us() + 2000);
	gen_free(g);
}

static void
test_gen_guard_cookie(void **state)
{
	(void)state;
	run_guarded("cookie");
}

static void
test_gen_guard_mac(void **state)
{
	(void)state;
	run_guarded("mac");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options_reject), cmocka_unit_test(test_hist),
		cmocka_unit_test(test_zipf),	       cmocka_unit_test(test_values),
		cmocka_unit_test(test_gen_roundtrip),  cmocka_unit_test(test_gen_preload_retry),
		cmocka_unit_test(test_gen_partitions), cmocka_unit_test(test_gen_echo),
		cmocka_unit_test(test_gen_guard_cookie), cmocka_unit_test(test_gen_guard_mac),
		cmocka_unit_test(test_gen_text),       cmocka_unit_test(test_gen_stamps_per_flow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
