/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lib/guard's decisions: CIDR lists; the envelope's encoding and every
 * malformed one; martian sources and the allow-list; the amplification
 * bound (budget = the request's IP bytes, fragment headers included, plus
 * what the source banked, forgotten after idle); cookies (valid for their
 * window and the next, bound to address and port, refreshed in the grace
 * window, the hello exchange never larger than the request); tenants
 * (file parsing, prefix-freedom, MAC, stamp window, replays, eviction
 * floor, commands and namespaces, admin-only commands); token buckets for
 * sources and tenants, drop or busy.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kite_guard.h"

#define IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))
#define SELF IP(198, 18, 0, 2)
#define CLIENT IP(198, 18, 0, 1)
#define T0 (1700000000ull * 1000000) /* a unix time in microseconds */

/* Tenants name the first six; "topology" stands for the commands every client may use. */
static const char *const names[] = { "unknown", "get", "set", "delete", "stat", "flush", "topology" };
enum { C_GET = 1, C_SET, C_DELETE, C_STAT, C_FLUSH, C_TOPOLOGY };

static struct kite_guard_stats st;

static void
conf_default(struct kite_guard_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->self_ip = SELF;
	c->bound = true;
	memset(c->cookie_secret, 7, sizeof(c->cookie_secret));
	c->cookie_window_s = 10;
	c->credit_max = 4096;
	c->credit_ms = 1000;
	c->burst_ms = 100;
	c->work = 512;
	c->stamp_past_ms = 30000;
	c->stamp_future_ms = 1000;
	c->workers = 1;
	c->sources = 64;
	c->all_cmds = 0x7f;
	c->public_cmds = 1u << C_TOPOLOGY;
	c->admin_cmds = 1u << C_STAT | 1u << C_FLUSH;
	c->mtu = 1500;
}

static struct kite_guard *
guard(const struct kite_guard_conf *c)
{
	struct kite_guard *g;

	memset(&st, 0, sizeof(st));
	g = kite_guard_create(c, &st);
	assert_non_null(g);
	return g;
}

/* A datagram: frame (req id 0x1234), then env (may be empty), then n bytes of body. */
static size_t
dgram(uint8_t *buf, const uint8_t *env, size_t envlen, size_t body)
{
	memset(buf, 0, 8);
	buf[0] = 0x12;
	buf[1] = 0x34;
	buf[5] = 1;
	if (envlen > 0)
		memcpy(buf + 8, env, envlen);
	memset(buf + 8 + envlen, 0x80, body);
	return 8 + envlen + body;
}

static void
test_cidrs(void **state)
{
	struct kite_guard_cidrs c;
	char err[160];

	(void)state;
	assert_int_equal(kite_guard_cidrs_parse(&c, "", err, sizeof(err)), 0);
	assert_int_equal(c.n, 0);
	assert_int_equal(kite_guard_cidrs_parse(&c, "10.0.0.0/8, 198.18.0.1 ,0.0.0.0/0", err,
						sizeof(err)), 0);
	assert_int_equal(c.n, 3);
	assert_true(kite_guard_cidrs_match(&c, IP(10, 9, 8, 7)));
	assert_true(kite_guard_cidrs_match(&c, IP(1, 2, 3, 4))); /* /0 */
	assert_int_equal(kite_guard_cidrs_parse(&c, "198.18.0.1", err, sizeof(err)), 0);
	assert_true(kite_guard_cidrs_match(&c, IP(198, 18, 0, 1)));
	assert_false(kite_guard_cidrs_match(&c, IP(198, 18, 0, 2)));
	assert_int_equal(kite_guard_cidrs_parse(&c, "10.0.0.0/33", err, sizeof(err)), -EINVAL);
	assert_int_equal(kite_guard_cidrs_parse(&c, "256.0.0.0/8", err, sizeof(err)), -EINVAL);
	assert_int_equal(kite_guard_cidrs_parse(&c, "10.0.0/8", err, sizeof(err)), -EINVAL);
	assert_int_equal(kite_guard_cidrs_parse(&c, "10.0.0.0/8x", err, sizeof(err)), -EINVAL);
	assert_int_equal(kite_guard_cidrs_parse(&c, "host.example", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "host.example"));
}

static void
test_envelope(void **state)
{
	uint8_t b[128], ck[12];
	struct kite_guard_env e;
	int n;

	(void)state;
	memset(ck, 0xab, sizeof(ck));
	n = kite_guard_env_write(b, sizeof(b), KITE_GUARD_F_COOKIE | KITE_GUARD_F_AUTH, ck, 42,
				 0x1122334455667788ull, 0, 0, 0);
	assert_int_equal(n, 4 + 12 + 28);
	assert_int_equal(kite_guard_env_parse(b, (size_t)n, &e), n);
	assert_memory_equal(e.cookie, ck, 12);
	assert_int_equal(e.tenant, 42);
	assert_true(e.stamp == 0x1122334455667788ull);
	/* Padding: min_len. */
	n = kite_guard_env_write(b, sizeof(b), KITE_GUARD_F_HELLO, NULL, 0, 0, 0, 0, 16);
	assert_int_equal(n, 16);
	assert_int_equal(kite_guard_env_parse(b, 16, &e), 16);
	/* Not an envelope. */
	b[0] = 0x80;
	assert_int_equal(kite_guard_env_parse(b, 16, &e), 0);
	/* Malformed: version, unknown flag, length past the end, a field past the length. */
	kite_guard_env_write(b, sizeof(b), KITE_GUARD_F_COOKIE, ck, 0, 0, 0, 0, 0);
	b[1] = 2;
	assert_int_equal(kite_guard_env_parse(b, 16, &e), -1);
	b[1] = 1;
	b[2] = 0x20;
	assert_int_equal(kite_guard_env_parse(b, 16, &e), -1);
	b[2] = KITE_GUARD_F_COOKIE;
	assert_int_equal(kite_guard_env_parse(b, 15, &e), -1);
	b[3] = 10;
	assert_int_equal(kite_guard_env_parse(b, 16, &e), -1);
	b[3] = 3;
	assert_int_equal(kite_guard_env_parse(b, 16, &e), -1);
	assert_int_equal(kite_guard_env_parse(b, 2, &e), -1);
	/* No room, or an unknown flag asked for. */
	assert_int_equal(kite_guard_env_write(b, 10, KITE_GUARD_F_COOKIE, ck, 0, 0, 0, 0, 0), -1);
	assert_int_equal(kite_guard_env_write(b, sizeof(b), 0x40, NULL, 0, 0, 0, 0, 0), -1);
}

static void
test_martian_allow(void **state)
{
	struct kite_guard_conf c;
	struct kite_guard_verdict v;
	struct kite_guard *g;
	uint8_t b[64];
	size_t n;
	char err[100];

	(void)state;
	conf_default(&c);
	assert_int_equal(kite_guard_cidrs_parse(&c.allow, "198.18.0.0/24", err, sizeof(err)), 0);
	g = guard(&c);
	n = dgram(b, NULL, 0, 24);
	const uint32_t martians[] = { IP(127, 0, 0, 1), IP(0, 1, 2, 3), IP(224, 0, 0, 1),
				      IP(255, 255, 255, 255), SELF };
	for (size_t i = 0; i < sizeof(martians) / sizeof(martians[0]); i++) {
		kite_guard_check(g, b, (uint32_t)n, martians[i], 4000, T0, &v);
		assert_int_equal(v.action, KITE_GUARD_DROP);
	}
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 0, T0, &v); /* port 0 */
	assert_int_equal(v.action, KITE_GUARD_DROP);
	assert_int_equal(st.drop_martian, 6);
	kite_guard_check(g, b, (uint32_t)n, IP(198, 18, 1, 1), 4000, T0, &v);
	assert_int_equal(v.action, KITE_GUARD_DROP);
	assert_int_equal(st.drop_allow, 1);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
	assert_int_equal(v.action, KITE_GUARD_PASS);
	assert_int_equal(v.skip, 0);
	kite_guard_free(g);
}

static void
test_bound(void **state)
{
	struct kite_guard_conf c;
	struct kite_guard_verdict v;
	struct kite_guard *g;
	uint8_t b[4096];
	size_t n;
	char err[100];

	(void)state;
	conf_default(&c);
	g = guard(&c);
	n = dgram(b, NULL, 0, 24);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
	assert_int_equal(v.action, KITE_GUARD_PASS);
	assert_int_equal(v.budget, 28 + 32); /* IP + UDP + payload */
	assert_int_equal(st.bounded, 1);
	/* Unused budget is banked (capped), and spent by the next datagram. */
	kite_guard_account(g, &v, 1, 24 + 28 + 8, T0);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 1000, &v);
	assert_int_equal(v.budget, 60);
	kite_guard_account(g, &v, 1, 0, T0 + 1000); /* a quiet miss: nothing sent */
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 2000, &v);
	assert_int_equal(v.budget, 120);
	kite_guard_account(g, &v, 1, 0, T0 + 2000);
	/* Idle past credit_ms: forgotten. */
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 2000 + 1001000, &v);
	assert_int_equal(v.budget, 60);
	/* A fragmented request counts each fragment's IP header. */
	assert_int_equal(kite_guard_ip_bytes(1472, 1500), 1500);
	assert_int_equal(kite_guard_ip_bytes(1473, 1500), 1473 + 8 + 40);
	assert_int_equal(kite_guard_ip_bytes(4000, 1500), 4008 + 60);
	/* Trusted sources and bound = off: unbounded. */
	kite_guard_free(g);
	assert_int_equal(kite_guard_cidrs_parse(&c.trusted, "198.18.0.1/32", err, sizeof(err)), 0);
	g = guard(&c);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
	assert_int_equal(v.budget, UINT32_MAX);
	assert_int_equal(st.validated, 1);
	kite_guard_check(g, b, (uint32_t)n, IP(198, 18, 0, 5), 4000, T0, &v);
	assert_int_equal(v.budget, 60);
	kite_guard_free(g);
	memset(&c.trusted, 0, sizeof(c.trusted));
	c.bound = false;
	g = guard(&c);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
	assert_int_equal(v.budget, UINT32_MAX);
	kite_guard_free(g);
}

/* Hello from (ip, port) at time now: the cookie, checked to be a reply no larger than sent. */
static void
get_cookie(struct kite_guard *g, uint32_t ip, uint16_t port, uint64_t now, uint8_t ck[12])
{
	uint8_t env[16], b[64];
	struct kite_guard_verdict v;
	struct kite_guard_env e;
	size_t n;

	kite_guard_env_write(env, sizeof(env), KITE_GUARD_F_HELLO, NULL, 0, 0, 0, 0, 16);
	n = dgram(b, env, 16, 0);
	kite_guard_check(g, b, (uint32_t)n, ip, port, now, &v);
	assert_int_equal(v.action, KITE_GUARD_REPLY);
	assert_true(v.reply_len <= n);
	assert_memory_equal(v.reply, "\x12\x34\0\0\0\x01\0\0", 8);
	assert_int_equal(kite_guard_env_parse(v.reply + 8, v.reply_len - 8u, &e), 16);
	assert_true(e.flags & KITE_GUARD_F_RESPONSE);
	assert_non_null(e.cookie);
	memcpy(ck, e.cookie, 12);
}

static void
test_cookies(void **state)
{
	struct kite_guard_conf c;
	struct kite_guard_verdict v;
	struct kite_guard *g;
	uint8_t b[128], env[16], ck[12];
	size_t n;

	(void)state;
	conf_default(&c);
	g = guard(&c);
	/* An unpadded hello is dropped: its reply would be larger. */
	kite_guard_env_write(env, sizeof(env), KITE_GUARD_F_HELLO, NULL, 0, 0, 0, 0, 0);
	n = dgram(b, env, 4, 0);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
	assert_int_equal(v.action, KITE_GUARD_DROP);

	get_cookie(g, CLIENT, 4000, T0, ck);
	assert_int_equal(st.hellos, 1);
	kite_guard_env_write(env, sizeof(env), KITE_GUARD_F_COOKIE, ck, 0, 0, 0, 0, 0);
	n = dgram(b, env, 16, 24);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 1, &v);
	assert_int_equal(v.action, KITE_GUARD_PASS);
	assert_int_equal(v.skip, 16);
	assert_int_equal(v.budget, UINT32_MAX);
	assert_int_equal(v.renv_len, 4); /* a fresh cookie: the reply envelope carries none */
	/* Another port or address: bounded, and offered a cookie of its own. */
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4001, T0 + 1, &v);
	assert_int_equal(v.budget, kite_guard_ip_bytes((uint32_t)n, 1500));
	assert_int_equal(v.renv_len, 16);
	assert_memory_not_equal(v.renv + 4, ck, 12);
	kite_guard_check(g, b, (uint32_t)n, IP(198, 18, 0, 9), 4000, T0 + 1, &v);
	assert_int_not_equal(v.budget, UINT32_MAX);
	/* Next window: still valid, and a newer one is offered. */
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 10 * 1000000ull, &v);
	assert_int_equal(v.budget, UINT32_MAX);
	assert_int_equal(v.renv_len, 16);
	/* Two windows on: dead. */
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 20 * 1000000ull, &v);
	assert_int_not_equal(v.budget, UINT32_MAX);
	/* A changed byte, or a cookie of another node (secret): dead. */
	b[8 + 4 + 11] ^= 1;
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 2, &v);
	assert_int_not_equal(v.budget, UINT32_MAX);
	b[8 + 4 + 11] ^= 1;
	kite_guard_free(g);
	c.cookie_secret[0] ^= 1;
	g = guard(&c);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 2, &v);
	assert_int_not_equal(v.budget, UINT32_MAX);
	assert_int_equal(st.cookie_bad, 1);
	/* A RESPONSE envelope is never answered; a malformed one is dropped. */
	b[8 + 2] |= KITE_GUARD_F_RESPONSE;
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
	assert_int_equal(v.action, KITE_GUARD_DROP);
	assert_int_equal(st.drop_response, 1);
	b[8 + 3] = 200;
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
	assert_int_equal(v.action, KITE_GUARD_DROP);
	assert_int_equal(st.drop_envelope, 1);
	kite_guard_free(g);
}

static char *
tenants_text(void)
{
	static char t[1024];

	snprintf(t, sizeof(t),
		 "# a comment\n\n"
		 "1 alpha %s a: cmds=get,set,delete rate=0\n"
		 "2 beta  %s b: mem=25%%\n"
		 "3 ops   %s adm: admin\n",
		 "0101010101010101010101010101010101010101010101010101010101010101",
		 "0202020202020202020202020202020202020202020202020202020202020202",
		 "0303030303030303030303030303030303030303030303030303030303030303");
	return t;
}

static void
test_tenants_file(void **state)
{
	char err[400];
	struct kite_guard_tenants *t;
	const char *hex = "0101010101010101010101010101010101010101010101010101010101010101";
	char bad[512];

	(void)state;
	t = kite_guard_tenants_parse(tenants_text(), names, 6, err, sizeof(err));
	assert_non_null(t);
	assert_int_equal(t->n, 3);
	assert_int_equal(t->t[0].cmds, 1u << C_GET | 1u << C_SET | 1u << C_DELETE);
	assert_int_equal(t->t[1].cmds, 0x3f);
	assert_int_equal(t->t[1].mem_pct, 25);
	assert_int_equal(t->t[0].mem_pct, 0);
	assert_true(t->t[2].admin);
	free(t);
	const char *cases[][2] = {
		{ "1 a %s x: cmds=bogus\n", "cmds=bogus" },
		{ "1 a %s x:\n1 b %s y:\n", "twice" },
		{ "1 a %s ab\n2 b %s abc\n", "prefix-free" },
		{ "0 a %s x:\n", "ID" },
		{ "1 a 0102 x:\n", "SECRET" },
		{ "1 a %s\n", "expected" },
		{ "1 a %s x: rate=-1\n", "rate" },
		{ "1 a %s x: weird\n", "weird" },
		{ "1 a %s x: mem=0%%\n", "mem=0%" },
		{ "1 a %s x: mem=101%%\n", "mem=101%" },
		{ "1 a %s x: mem=10\n", "mem=10" },
		{ "256 a %s x: mem=10%%\n", "up to 255" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(bad, sizeof(bad), cases[i][0], hex, hex);
		t = kite_guard_tenants_parse(bad, names, 6, err, sizeof(err));
		assert_null(t);
		assert_non_null(strstr(err, cases[i][1]));
		assert_non_null(strstr(err, "line "));
	}
	/* The one parser of 32-byte secrets (tenants, the cluster secret, kite-cli's files). */
	uint8_t sec[KITE_GUARD_SECRET_LEN];
	assert_int_equal(kite_guard_secret_parse(hex, 64, sec), 0);
	assert_int_equal(sec[0], 1);
	assert_int_equal(sec[31], 1);
	assert_int_equal(kite_guard_secret_parse("AbCdEf0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
						 64, sec), 0);
	assert_int_equal(sec[0], 0xab);
	assert_int_equal(sec[1], 0xcd);
	assert_int_equal(kite_guard_secret_parse(hex, 63, sec), -EINVAL);
	assert_int_equal(kite_guard_secret_parse(hex, 65, sec), -EINVAL);
	snprintf(bad, sizeof(bad), "%.62sxz", hex);
	assert_int_equal(kite_guard_secret_parse(bad, 64, sec), -EINVAL);
	snprintf(bad, sizeof(bad), "%.62s +", hex);
	assert_int_equal(kite_guard_secret_parse(bad, 64, sec), -EINVAL);
	assert_int_equal(kite_guard_secret_parse(NULL, 64, sec), -EINVAL);
	t = kite_guard_tenants_load("/nonexistent/tenants", names, 6, err, sizeof(err));
	assert_null(t);
	assert_non_null(strstr(err, "/nonexistent/tenants"));
}

/* An AUTH datagram of tenant id at stamp, with a cookie field if ck. */
static size_t
auth_dgram(uint8_t *b, uint32_t id, uint64_t stamp, const uint8_t secret_byte, size_t body)
{
	uint8_t env[64], secret[32], key[16];
	int el = kite_guard_env_write(env, sizeof(env), KITE_GUARD_F_AUTH, NULL, id, stamp, 0, 0, 0);
	size_t n = dgram(b, env, (size_t)el, body);

	memset(secret, secret_byte, sizeof(secret));
	kite_guard_mac_key(key, secret);
	assert_int_equal(kite_guard_sign(b, n, key), 0);
	return n;
}

static void
test_auth(void **state)
{
	struct kite_guard_conf c;
	struct kite_guard_verdict v;
	struct kite_guard *g;
	struct kite_guard_tenants *t;
	struct kite_guard_env e;
	uint8_t b[256];
	char err[200];
	size_t n;

	(void)state;
	conf_default(&c);
	c.auth = KITE_GUARD_AUTH_REQUIRED;
	g = guard(&c);
	t = kite_guard_tenants_parse(tenants_text(), names, 6, err, sizeof(err));
	kite_guard_set_tenants(g, t);

	n = auth_dgram(b, 1, T0, 0x01, 24);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
	assert_int_equal(v.action, KITE_GUARD_PASS);
	assert_int_equal(v.tenant, 0);
	assert_int_equal(v.ns, KITE_GUARD_NS_PREFIX);
	assert_int_equal(v.prefix_len, 2);
	assert_memory_equal(v.prefix, "a:", 2);
	/* Its commands, and those every client needs to route (not in its cmds=). */
	assert_int_equal(v.cmds, 1u << C_GET | 1u << C_SET | 1u << C_DELETE | 1u << C_TOPOLOGY);
	assert_int_equal(v.skip, 4 + 28);
	/* The MAC check left the datagram as it was. */
	uint8_t copy[256];
	memcpy(copy, b, n);
	/* Replayed: refused with REPLAY, a reply no larger than the request. */
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 5, &v);
	assert_memory_equal(copy, b, n);
	assert_int_equal(v.action, KITE_GUARD_REPLY);
	assert_true(v.reply_len <= n);
	assert_int_equal(kite_guard_env_parse(v.reply + 8, v.reply_len - 8u, &e), v.reply_len - 8);
	assert_int_equal(e.err, KITE_GUARD_ERR_REPLAY);
	assert_true(e.time_us == T0 + 5);
	/* A later stamp passes; the same from another socket too (its own sequence). */
	n = auth_dgram(b, 1, T0 + 10, 0x01, 24);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 10, &v);
	assert_int_equal(v.action, KITE_GUARD_PASS);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4001, T0 + 10, &v);
	assert_int_equal(v.action, KITE_GUARD_PASS);
	/* Wrong secret, unknown tenant, changed byte, stamp too old or too new. */
	n = auth_dgram(b, 1, T0 + 20, 0x02, 24);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 20, &v);
	kite_guard_env_parse(v.reply + 8, v.reply_len - 8u, &e);
	assert_int_equal(e.err, KITE_GUARD_ERR_MAC);
	n = auth_dgram(b, 9, T0 + 20, 0x01, 24);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 20, &v);
	kite_guard_env_parse(v.reply + 8, v.reply_len - 8u, &e);
	assert_int_equal(e.err, KITE_GUARD_ERR_TENANT);
	n = auth_dgram(b, 1, T0 + 30, 0x01, 24);
	b[n - 1] ^= 1;
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 30, &v);
	kite_guard_env_parse(v.reply + 8, v.reply_len - 8u, &e);
	assert_int_equal(e.err, KITE_GUARD_ERR_MAC);
	n = auth_dgram(b, 1, T0 + 40, 0x01, 24);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 31 * 1000000ull, &v);
	kite_guard_env_parse(v.reply + 8, v.reply_len - 8u, &e);
	assert_int_equal(e.err, KITE_GUARD_ERR_STAMP);
	n = auth_dgram(b, 1, T0 + 2 * 1000000ull, 0x01, 24);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 50, &v);
	kite_guard_env_parse(v.reply + 8, v.reply_len - 8u, &e);
	assert_int_equal(e.err, KITE_GUARD_ERR_STAMP);
	assert_int_equal(st.auth_mac, 2);
	assert_int_equal(st.auth_stamp, 2);
	assert_int_equal(st.auth_tenant, 1);
	assert_int_equal(st.auth_replay, 1);
	/* Admin: every command; beta: all but the admin-only ones. */
	n = auth_dgram(b, 3, T0 + 60, 0x03, 24);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 60, &v);
	assert_int_equal(v.cmds, 0x7f);
	n = auth_dgram(b, 2, T0 + 70, 0x02, 24);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 70, &v);
	assert_int_equal(v.cmds, 0x7f & ~(1u << C_STAT | 1u << C_FLUSH));
	/* No AUTH while required: refused; optional: the public namespace. */
	n = dgram(b, NULL, 0, 24);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
	assert_int_equal(v.action, KITE_GUARD_PASS);
	assert_int_equal(v.refuse, KITE_GUARD_REFUSE_AUTH);
	kite_guard_free(g);
	c.auth = KITE_GUARD_AUTH_OPTIONAL;
	c.never_cmds = 1u << C_FLUSH;
	g = guard(&c);
	kite_guard_set_tenants(g, t);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
	assert_int_equal(v.refuse, KITE_GUARD_REFUSE_NONE);
	assert_int_equal(v.ns, KITE_GUARD_NS_PUBLIC);
	assert_int_equal(v.cmds, 0x7f & ~(1u << C_STAT | 1u << C_FLUSH));
	assert_true(kite_guard_key_owned(g, (const uint8_t *)"a:x", 3));
	assert_true(kite_guard_key_owned(g, (const uint8_t *)"adm:", 4));
	assert_false(kite_guard_key_owned(g, (const uint8_t *)"ad", 2));
	assert_false(kite_guard_key_owned(g, (const uint8_t *)"c:x", 3));
	/* Even the admin cannot FLUSH when it is off for everyone. */
	n = auth_dgram(b, 3, T0 + 80, 0x03, 24);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 80, &v);
	assert_int_equal(v.cmds, 0x7f & ~(1u << C_FLUSH));
	kite_guard_set_tenants(g, NULL);
	assert_false(kite_guard_key_owned(g, (const uint8_t *)"a:x", 3));
	kite_guard_free(g);
	free(t);
}

static void
test_replay_floor(void **state)
{
	struct kite_guard_conf c;
	struct kite_guard_verdict v;
	struct kite_guard *g;
	struct kite_guard_tenants *t;
	uint8_t b[256], first[256];
	char err[200];
	size_t n, n1;

	(void)state;
	conf_default(&c);
	c.auth = KITE_GUARD_AUTH_REQUIRED;
	c.sources = 64;
	g = guard(&c);
	t = kite_guard_tenants_parse(tenants_text(), names, 6, err, sizeof(err));
	kite_guard_set_tenants(g, t);
	n1 = auth_dgram(first, 1, T0 + 1000, 0x01, 24);
	kite_guard_check(g, first, (uint32_t)n1, CLIENT, 4000, T0 + 1000, &v);
	assert_int_equal(v.action, KITE_GUARD_PASS);
	/* Thousands of other sockets push it out of the table ... */
	for (unsigned int p = 5000; p < 9000; p++) {
		n = auth_dgram(b, 1, T0 + 2000 + p, 0x01, 24);
		kite_guard_check(g, b, (uint32_t)n, CLIENT, (uint16_t)p, T0 + 2000 + p, &v);
	}
	/* ... yet its old datagram stays refused: the floor rose past it. */
	kite_guard_check(g, first, (uint32_t)n1, CLIENT, 4000, T0 + 20000, &v);
	assert_int_equal(v.action, KITE_GUARD_REPLY);
	kite_guard_free(g);
	free(t);
}

static void
test_rates(void **state)
{
	struct kite_guard_conf c;
	struct kite_guard_verdict v;
	struct kite_guard *g;
	uint8_t b[64];
	size_t n;
	unsigned int passed = 0;

	(void)state;
	conf_default(&c);
	c.source_rate = 1000; /* 100 per 100 ms bucket, 2 workers: 50 each */
	c.workers = 2;
	g = guard(&c);
	n = dgram(b, NULL, 0, 24);
	for (int i = 0; i < 200; i++) {
		kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
		if (v.action == KITE_GUARD_PASS) {
			passed++;
			kite_guard_account(g, &v, 1, 0, T0);
		}
	}
	assert_int_equal(passed, 51); /* the bucket (50) and the one that took it below 0 */
	assert_int_equal(st.drop_rate, 149);
	/* 20 ms later: 10 more tokens at 500/s per worker. */
	passed = 0;
	for (int i = 0; i < 50; i++) {
		kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0 + 20000, &v);
		if (v.action == KITE_GUARD_PASS) {
			passed++;
			kite_guard_account(g, &v, 1, 0, T0 + 20000);
		}
	}
	assert_int_equal(passed, 10);
	/* Another source has its own bucket. */
	kite_guard_check(g, b, (uint32_t)n, IP(198, 18, 0, 9), 4000, T0, &v);
	assert_int_equal(v.action, KITE_GUARD_PASS);
	kite_guard_free(g);
	/* over = busy: passed with every request refused. */
	c.over = KITE_GUARD_OVER_BUSY;
	g = guard(&c);
	for (int i = 0; i < 60; i++) {
		kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
		kite_guard_account(g, &v, 1, 0, T0);
	}
	assert_int_equal(v.action, KITE_GUARD_PASS);
	assert_int_equal(v.refuse, KITE_GUARD_REFUSE_RATE);
	assert_int_equal(st.busy_rate, 9);
	kite_guard_free(g);
	/* Reply bytes per second. */
	c.over = KITE_GUARD_OVER_DROP;
	c.source_rate = 0;
	c.source_bytes = 100000; /* 5,000 per bucket per worker */
	c.bound = false;
	g = guard(&c);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
	kite_guard_account(g, &v, 1, 6000, T0);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 4000, T0, &v);
	assert_int_equal(v.action, KITE_GUARD_DROP);
	kite_guard_free(g);
}

static void
test_tenant_rate(void **state)
{
	struct kite_guard_conf c;
	struct kite_guard_verdict v;
	struct kite_guard *g;
	struct kite_guard_tenants *t;
	uint8_t b[256];
	char err[200], text[512];
	unsigned int passed = 0;

	(void)state;
	conf_default(&c);
	c.auth = KITE_GUARD_AUTH_REQUIRED;
	g = guard(&c);
	snprintf(text, sizeof(text), "7 slow %s s: rate=100\n",
		 "0707070707070707070707070707070707070707070707070707070707070707");
	t = kite_guard_tenants_parse(text, names, 6, err, sizeof(err));
	assert_non_null(t);
	kite_guard_set_tenants(g, t);
	for (unsigned int i = 0; i < 40; i++) {
		size_t n = auth_dgram(b, 7, T0 + i + 1, 0x07, 24);
		/* Each from its own port: the tenant's bucket, not a source's, limits. */
		kite_guard_check(g, b, (uint32_t)n, CLIENT, (uint16_t)(4000 + i), T0 + i + 1, &v);
		if (v.action == KITE_GUARD_PASS) {
			passed++;
			kite_guard_account(g, &v, 1, 0, T0 + i + 1);
		}
	}
	assert_int_equal(passed, 11); /* 100/s x 100 ms = 10, and the one that overdrew */
	kite_guard_free(g);

	/* Requests from elsewhere (the JSON API) draw on the same bucket. */
	g = guard(&c);
	kite_guard_set_tenants(g, t);
	passed = 0;
	for (unsigned int i = 0; i < 40; i++)
		passed += kite_guard_tenant_take(g, 0, 1, T0 + i + 1);
	assert_int_equal(passed, 11);
	size_t n = auth_dgram(b, 7, T0 + 100, 0x07, 24);
	kite_guard_check(g, b, (uint32_t)n, CLIENT, 5000, T0 + 100, &v);
	assert_int_not_equal(v.action, KITE_GUARD_PASS); /* over: dropped (over = drop) */
	/* 100 ms later the bucket is full again; no tenant at index 1 or -1. */
	assert_true(kite_guard_tenant_take(g, 0, 1, T0 + 200000));
	assert_false(kite_guard_tenant_take(g, 1, 1, T0 + 200000));
	assert_false(kite_guard_tenant_take(g, -1, 1, T0 + 200000));
	kite_guard_set_tenants(g, NULL);
	assert_false(kite_guard_tenant_take(g, 0, 1, T0 + 200000));
	kite_guard_free(g);
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidrs),	    cmocka_unit_test(test_envelope),
		cmocka_unit_test(test_martian_allow), cmocka_unit_test(test_bound),
		cmocka_unit_test(test_cookies),	    cmocka_unit_test(test_tenants_file),
		cmocka_unit_test(test_auth),	    cmocka_unit_test(test_replay_floor),
		cmocka_unit_test(test_rates),	    cmocka_unit_test(test_tenant_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
