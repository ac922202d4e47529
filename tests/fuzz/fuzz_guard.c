/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lib/guard with untrusted bytes: whole datagrams through kite_guard_check
 * (frame, envelope, cookie, AUTH with a MAC that almost never verifies,
 * HELLO, RESPONSE), under auth = optional with a tenants table, from a
 * source picked by the input; the envelope parser alone, whose accepted
 * envelopes must re-encode to the same fields; and the input as a
 * tenants file. A verdict must stay inside the datagram (skip) and a
 * guard reply never be larger than the request.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kite_guard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = { "unknown", "get", "set", "delete", "stat", "flush" };
static struct kite_guard *g;
static struct kite_guard_stats st;
static struct kite_guard_tenants *tenants;
static uint8_t buf[70000];

static void
init(void)
{
	struct kite_guard_conf c;
	char err[200];
	const char *text = "1 alpha 0101010101010101010101010101010101010101010101010101010101010101 a: rate=1000\n"
			   "2 ops 0202020202020202020202020202020202020202020202020202020202020202 adm: admin\n";

	memset(&c, 0, sizeof(c));
	c.self_ip = 0xc6120002;
	c.bound = true;
	c.cookie_window_s = 5;
	c.credit_max = 4096;
	c.credit_ms = 1000;
	c.source_rate = 100000;
	c.burst_ms = 100;
	c.work = 512;
	c.auth = KITE_GUARD_AUTH_OPTIONAL;
	c.stamp_past_ms = 30000;
	c.stamp_future_ms = 1000;
	c.workers = 2;
	c.sources = 256;
	c.all_cmds = 0x3f;
	c.admin_cmds = 0x30;
	c.mtu = 1500;
	g = kite_guard_create(&c, &st);
	tenants = kite_guard_tenants_parse(text, names, 6, err, sizeof(err));
	if (g == NULL || tenants == NULL)
		abort();
	kite_guard_set_tenants(g, tenants);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kite_guard_verdict v;
	struct kite_guard_env e, e2;
	uint8_t re[300];
	uint32_t ip;
	uint64_t now;

	if (g == NULL)
		init();
	if (size < 6 || size > sizeof(buf))
		return 0;
	/* The first 6 bytes choose the source and the clock; the rest is the datagram. */
	ip = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
	now = 1700000000ull * 1000000 + (uint64_t)data[4] * 1000003 + data[5];
	memcpy(buf, data + 6, size - 6);
	kite_guard_check(g, buf, (uint32_t)(size - 6), ip, (uint16_t)(data[4] << 8 | data[5]), now,
			 &v);
	if (memcmp(buf, data + 6, size - 6) != 0)
		abort(); /* the MAC check must leave the datagram as it was */
	if (v.action == KITE_GUARD_PASS && 8u + v.skip > size - 6 && v.skip != 0)
		abort();
	if (v.action == KITE_GUARD_REPLY && v.reply_len > size - 6)
		abort();
	if (v.action == KITE_GUARD_PASS)
		kite_guard_account(g, &v, 1, v.budget == UINT32_MAX ? 100 : v.budget / 2, now);

	/* The envelope alone: what parses re-encodes to the same fields. */
	int n = kite_guard_env_parse(data, size, &e);
	if (n > 0) {
		int m = kite_guard_env_write(re, sizeof(re), e.flags, e.cookie, e.tenant, e.stamp,
					     e.time_us, e.err, (size_t)n);
		if (m != n || kite_guard_env_parse(re, (size_t)m, &e2) != n || e2.flags != e.flags ||
		    e2.tenant != e.tenant || e2.stamp != e.stamp || e2.time_us != e.time_us ||
		    e2.err != e.err)
			abort();
	}

	/* The input as a tenants file. */
	char *text = malloc(size + 1);
	char err[400];
	if (text != NULL) {
		memcpy(text, data, size);
		text[size] = '\0';
		free(kite_guard_tenants_parse(text, names, 6, err, sizeof(err)));
		free(text);
	}
	return 0;
}
