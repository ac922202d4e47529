/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lib/repl: DATA and ACK/NACK datagrams round-trip; the MAC refuses any
 * other secret and any changed byte; every truncation and bad field is
 * refused; the replica's order check; the owner's log resends what a NACK
 * asks for, says when it no longer reaches back, and survives wrapping.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kite_proto.h"
#include "kite_repl.h"

static const uint8_t secret[KITE_REPL_SECRET_LEN] = "0123456789abcdef0123456789abcdef";
static const uint8_t other[KITE_REPL_SECRET_LEN] = "fedcba9876543210fedcba9876543210";

static size_t
build_data(uint8_t *buf, size_t cap, uint32_t vb, uint64_t seq0, unsigned int n)
{
	struct kite_repl_builder b;

	kite_repl_begin(&b, buf, cap, KITE_REPL_DATA, 7, 0, 3, 99);
	for (unsigned int i = 0; i < n; i++) {
		char key[16];
		struct kite_repl_rec r = { .kind = KITE_REPL_PUT, .vbucket = vb, .seq = seq0 + i,
					   .cas = 1000 + i, .flags = 5, .exptime = 1700000000 };
		int kl = snprintf(key, sizeof(key), "key%u", i);
		r.key = (const uint8_t *)key;
		r.keylen = (uint16_t)kl;
		r.value = (const uint8_t *)"value";
		r.vallen = 5;
		if (kite_repl_add_rec(&b, &r) != 0)
			break;
	}
	return kite_repl_close(&b, secret);
}

static void
test_data_roundtrip(void **state)
{
	uint8_t buf[1472];
	struct kite_repl_builder b;
	struct kite_repl_msg m;
	struct kite_repl_rec r;
	const uint8_t *p, *end;
	size_t len;
	int n = 0;

	(void)state;
	kite_repl_begin(&b, buf, sizeof(buf), KITE_REPL_DATA, 0x1234, 0, 2, 0x0102030405060708ULL);
	struct kite_repl_rec put = { .kind = KITE_REPL_PUT, .vbucket = 70000, .seq = 1, .cas = 42,
				     .flags = 9, .exptime = 1234567890, .key = (const uint8_t *)"k",
				     .keylen = 1, .value = (const uint8_t *)"hello", .vallen = 5 };
	struct kite_repl_rec del = { .kind = KITE_REPL_DEL, .vbucket = 70000, .seq = 2, .cas = 43,
				     .key = (const uint8_t *)"k", .keylen = 1 };
	struct kite_repl_rec fl = { .kind = KITE_REPL_FLUSH, .vbucket = 3, .seq = 1,
				    .exptime = 1700000000 };
	assert_int_equal(kite_repl_add_rec(&b, &put), 0);
	assert_int_equal(kite_repl_add_rec(&b, &del), 0);
	assert_int_equal(kite_repl_add_rec(&b, &fl), 0);
	len = kite_repl_close(&b, secret);
	assert_int_equal(kite_proto_get16(buf), 0x1234);
	assert_int_equal(buf[8], KITE_MAGIC_REQ);
	assert_int_equal(kite_repl_parse(buf + 8, len - 8, secret, &m), KITE_REPL_OK);
	assert_int_equal(m.sub, KITE_REPL_DATA);
	assert_false(m.response);
	assert_int_equal(m.sender, 2);
	assert_int_equal(m.epoch, 0x0102030405060708ULL);
	p = m.body;
	end = m.body + m.bodylen;
	while (kite_repl_next_rec(&p, end, &r) == 1) {
		if (n == 0) {
			assert_int_equal(r.kind, KITE_REPL_PUT);
			assert_int_equal(r.vbucket, 70000);
			assert_int_equal(r.seq, 1);
			assert_int_equal(r.cas, 42);
			assert_int_equal(r.flags, 9);
			assert_int_equal(r.exptime, 1234567890);
			assert_memory_equal(r.key, "k", 1);
			assert_int_equal(r.vallen, 5);
			assert_memory_equal(r.value, "hello", 5);
		} else if (n == 1) {
			assert_int_equal(r.kind, KITE_REPL_DEL);
			assert_int_equal(r.vallen, 0);
		} else {
			assert_int_equal(r.kind, KITE_REPL_FLUSH);
			assert_int_equal(r.keylen, 0);
		}
		n++;
	}
	assert_int_equal(n, 3);
	assert_ptr_equal(p, end);
}

static void
test_pairs_and_fullness(void **state)
{
	uint8_t buf[200];
	struct kite_repl_builder b;
	struct kite_repl_msg m;
	const uint8_t *p, *end;
	uint32_t vb;
	uint64_t seq;
	int n = 0;
	size_t len;

	(void)state;
	kite_repl_begin(&b, buf, sizeof(buf), KITE_REPL_NACK, 1, 77, 4, 5);
	while (kite_repl_add_pair(&b, (uint32_t)n, (uint64_t)n * 10) == 0)
		n++;
	/* 200 bytes: header 48, MAC 16, so 11 pairs of 12. */
	assert_int_equal(n, (200 - KITE_REPL_HDR_LEN - KITE_REPL_MAC_LEN) / KITE_REPL_PAIR_LEN);
	struct kite_repl_rec r = { .kind = KITE_REPL_PUT, .vbucket = 1, .seq = 1,
				   .key = (const uint8_t *)"k", .keylen = 1 };
	assert_int_equal(kite_repl_add_rec(&b, &r), -EINVAL); /* records only in DATA */
	len = kite_repl_close(&b, secret);
	assert_true(len <= sizeof(buf));
	assert_int_equal(kite_repl_parse(buf + 8, len - 8, secret, &m), KITE_REPL_OK);
	assert_true(m.response);
	assert_int_equal(m.sub, KITE_REPL_NACK);
	assert_int_equal(m.opaque, 77);
	p = m.body;
	end = p + m.bodylen;
	for (int i = 0; i < n; i++) {
		assert_int_equal(kite_repl_next_pair(&p, end, &vb, &seq), 1);
		assert_int_equal(vb, (uint32_t)i);
		assert_int_equal(seq, (uint64_t)i * 10);
	}
	assert_int_equal(kite_repl_next_pair(&p, end, &vb, &seq), 0);

	/* A DATA datagram is full before its buffer overflows; a too large record fails. */
	uint8_t small[100];
	kite_repl_begin(&b, small, sizeof(small), KITE_REPL_DATA, 1, 0, 1, 1);
	r.vallen = 100;
	r.value = small;
	assert_int_equal(kite_repl_add_rec(&b, &r), -ENOSPC);
	r.vallen = 0;
	assert_int_equal(kite_repl_add_rec(&b, &r), 0);
	r.kind = 9;
	assert_int_equal(kite_repl_add_rec(&b, &r), -EINVAL);
}

/* A datagram from anyone without the secret, or changed anywhere, is refused. */
static void
test_mac(void **state)
{
	uint8_t buf[1472];
	struct kite_repl_msg m;
	size_t len = build_data(buf, sizeof(buf), 5, 1, 3);

	(void)state;
	assert_int_equal(kite_repl_parse(buf + 8, len - 8, secret, &m), KITE_REPL_OK);
	assert_int_equal(kite_repl_parse(buf + 8, len - 8, other, &m), KITE_REPL_BAD_MAC);
	for (size_t i = 8 + 12; i < len; i++) {
		if (i >= 8 + 8 && i < 8 + 12)
			continue; /* bodylen: a changed length is malformed or a bad MAC */
		buf[i] ^= 0x01;
		int rc = kite_repl_parse(buf + 8, len - 8, secret, &m);
		assert_true(rc == KITE_REPL_BAD_MAC || rc == KITE_REPL_MALFORMED);
		buf[i] ^= 0x01;
	}
	/* Every truncation is refused. */
	for (size_t l = 0; l < len - 8; l++)
		assert_int_not_equal(kite_repl_parse(buf + 8, l, secret, &m), KITE_REPL_OK);
}

/* Records that lie about their lengths or fields stop the walk. */
static void
test_bad_records(void **state)
{
	uint8_t rec[64];
	struct kite_repl_rec r;
	const uint8_t *p;

	(void)state;
	memset(rec, 0, sizeof(rec));
	rec[0] = KITE_REPL_PUT;
	rec[1] = 3;
	kite_proto_put64(rec + 6, 1);
	kite_proto_put32(rec + 30, 2);
	memcpy(rec + KITE_REPL_REC_FIXED, "abcxy", 5);
	p = rec;
	assert_int_equal(kite_repl_next_rec(&p, rec + KITE_REPL_REC_FIXED + 5, &r), 1);
	/* Value longer than what is left. */
	p = rec;
	assert_int_equal(kite_repl_next_rec(&p, rec + KITE_REPL_REC_FIXED + 4, &r), -1);
	/* Key longer than what is left. */
	p = rec;
	assert_int_equal(kite_repl_next_rec(&p, rec + KITE_REPL_REC_FIXED + 2, &r), -1);
	/* Sequence 0, an unknown kind, a DEL with a value, a PUT without a key. */
	kite_proto_put64(rec + 6, 0);
	p = rec;
	assert_int_equal(kite_repl_next_rec(&p, rec + sizeof(rec), &r), -1);
	kite_proto_put64(rec + 6, 1);
	rec[0] = 7;
	p = rec;
	assert_int_equal(kite_repl_next_rec(&p, rec + sizeof(rec), &r), -1);
	rec[0] = KITE_REPL_DEL;
	p = rec;
	assert_int_equal(kite_repl_next_rec(&p, rec + sizeof(rec), &r), -1);
	rec[0] = KITE_REPL_PUT;
	rec[1] = 0;
	p = rec;
	assert_int_equal(kite_repl_next_rec(&p, rec + sizeof(rec), &r), -1);
	/* Shorter than the fixed part. */
	p = rec;
	assert_int_equal(kite_repl_next_rec(&p, rec + 10, &r), -1);
}

static void
test_order(void **state)
{
	(void)state;
	assert_int_equal(kite_repl_order(5, 5), KITE_REPL_APPLY);
	assert_int_equal(kite_repl_order(5, 4), KITE_REPL_DUP);
	assert_int_equal(kite_repl_order(5, 9), KITE_REPL_GAP);
}

struct resent {
	unsigned int n;
	uint64_t lo[64];
};

static void
on_resend(void *arg, const uint8_t *dg, size_t len)
{
	struct resent *r = arg;
	struct kite_repl_msg m;
	struct kite_repl_rec rec;
	const uint8_t *p;

	assert_int_equal(kite_repl_parse(dg + 8, len - 8, secret, &m), KITE_REPL_OK);
	p = m.body;
	assert_int_equal(kite_repl_next_rec(&p, m.body + m.bodylen, &rec), 1);
	r->lo[r->n++ % 64] = rec.seq;
}

static void
test_log(void **state)
{
	static uint8_t mem[4096];
	static struct kite_repl_log_ent ent[16];
	struct kite_repl_log l;
	uint8_t dg[512];
	struct resent rs;
	size_t len;

	(void)state;
	kite_repl_log_init(&l, mem, sizeof(mem), ent, 16);
	/* vbucket 5: seqs 1-3, 4-6, 7-9; vbucket 6: 1-3. */
	for (int i = 0; i < 3; i++) {
		len = build_data(dg, sizeof(dg), 5, 1 + 3 * (uint64_t)i, 3);
		kite_repl_log_add(&l, dg, len, 0);
	}
	len = build_data(dg, sizeof(dg), 6, 1, 3);
	kite_repl_log_add(&l, dg, len, 0);
	memset(&rs, 0, sizeof(rs));
	assert_int_equal(kite_repl_log_resend(&l, 5, 5, 99, 1000, 0, on_resend, &rs), 2);
	assert_int_equal(rs.lo[0], 4);
	assert_int_equal(rs.lo[1], 7);
	memset(&rs, 0, sizeof(rs));
	assert_int_equal(kite_repl_log_resend(&l, 6, 1, 99, 1000, 0, on_resend, &rs), 1);
	/* Many more datagrams: the log wraps and forgets the oldest. */
	for (uint64_t s = 10; s < 10 + 3 * 200; s += 3) {
		len = build_data(dg, sizeof(dg), 5, s, 3);
		kite_repl_log_add(&l, dg, len, 0);
	}
	memset(&rs, 0, sizeof(rs));
	assert_int_equal(kite_repl_log_resend(&l, 5, 1, 99, 1000, 0, on_resend, &rs), -1); /* resync */
	memset(&rs, 0, sizeof(rs));
	int n = kite_repl_log_resend(&l, 5, 10 + 3 * 195, 99, 1000, 0, on_resend, &rs);
	assert_true(n >= 4 && n <= 6);
	assert_int_equal(rs.lo[0], 10 + 3 * 195);
	/* Entries never overlap in memory: every one still parses (on_resend checks). */
	memset(&rs, 0, sizeof(rs));
	kite_repl_log_resend(&l, 5, 10, 99, 1000, 0, on_resend, &rs);
	/* Just sent: not again within the quiet time; later, yes. */
	memset(&rs, 0, sizeof(rs));
	assert_int_equal(kite_repl_log_resend(&l, 5, 10 + 3 * 195, 99, 2000, 0, on_resend, &rs), n);
	memset(&rs, 0, sizeof(rs));
	assert_int_equal(kite_repl_log_resend(&l, 5, 10 + 3 * 195, 99, 2010, 50, on_resend, &rs), 0);
	assert_int_equal(kite_repl_log_resend(&l, 5, 10 + 3 * 195, 99, 2100, 50, on_resend, &rs), n);
	/* Another epoch: nothing of it is sent again. */
	memset(&rs, 0, sizeof(rs));
	assert_int_equal(kite_repl_log_resend(&l, 5, 10 + 3 * 195, 98, 1000, 0, on_resend, &rs), -1);
	assert_int_equal(rs.n, 0);
}

/* Entries the log forgets before they were acknowledged are told to the sender. */
static unsigned int lost_n;
static uint64_t lost_lo[64];

static void
on_lost(void *arg, const uint8_t *dg, size_t len)
{
	struct kite_repl_msg m;
	struct kite_repl_rec rec;
	const uint8_t *p;

	assert_ptr_equal(arg, &lost_n);
	assert_int_equal(kite_repl_parse(dg + 8, len - 8, secret, &m), KITE_REPL_OK);
	p = m.body;
	assert_int_equal(kite_repl_next_rec(&p, m.body + m.bodylen, &rec), 1);
	lost_lo[lost_n++ % 64] = rec.seq;
}

static void
test_log_lost(void **state)
{
	static uint8_t mem[4096];
	static struct kite_repl_log_ent ent[4];
	struct kite_repl_log l;
	uint8_t dg[512];
	size_t len;

	(void)state;
	kite_repl_log_init(&l, mem, sizeof(mem), ent, 4);
	l.lost = on_lost;
	l.lost_arg = &lost_n;
	lost_n = 0;
	for (uint64_t i = 0; i < 4; i++) {
		len = build_data(dg, sizeof(dg), 5, 1 + 3 * i, 3);
		kite_proto_put16(dg, (uint16_t)(200 + i));
		kite_repl_log_add(&l, dg, len, 0);
	}
	assert_int_equal(lost_n, 0);
	assert_true(kite_repl_log_ack(&l, 200, NULL)); /* the oldest acknowledged */
	/* Two more: the entry slots wrap; the acknowledged one goes silently, the next is lost. */
	for (uint64_t i = 4; i < 6; i++) {
		len = build_data(dg, sizeof(dg), 5, 1 + 3 * i, 3);
		kite_repl_log_add(&l, dg, len, 0);
	}
	assert_int_equal(lost_n, 1);
	assert_int_equal(lost_lo[0], 4);
	/* Memory wraps too (large datagrams): each unacknowledged one overwritten is told once. */
	lost_n = 0;
	for (uint64_t i = 6; i < 40; i++) {
		len = build_data(dg, sizeof(dg), 5, 1 + 3 * i, 3);
		kite_repl_log_add(&l, dg, len, 0);
	}
	assert_int_equal(lost_n, 34);
	for (unsigned int i = 0; i < 34; i++)
		assert_int_equal(lost_lo[i], 1 + 3 * (i + 2));
}

/* Unacknowledged datagrams are sent again until acknowledged or given up. */
static void
test_log_retry(void **state)
{
	static uint8_t mem[8192];
	static struct kite_repl_log_ent ent[16];
	struct kite_repl_log l;
	uint8_t dg[512];
	struct resent rs;
	uint64_t given_up = 0;
	size_t len;

	(void)state;
	kite_repl_log_init(&l, mem, sizeof(mem), ent, 16);
	for (int i = 0; i < 3; i++) {
		len = build_data(dg, sizeof(dg), 5, 1 + 3 * (uint64_t)i, 3);
		kite_proto_put16(dg, (uint16_t)(100 + i)); /* request ids 100..102 */
		kite_repl_log_add(&l, dg, len, 10);
	}
	uint64_t born = 0;
	assert_int_equal(kite_repl_log_unacked(&l), 3);
	assert_true(kite_repl_log_ack(&l, 101, &born));
	assert_int_equal(kite_repl_log_unacked(&l), 2);
	assert_int_equal(born, 10);
	assert_false(kite_repl_log_ack(&l, 101, NULL)); /* acknowledged before: not again */
	assert_false(kite_repl_log_ack(&l, 999, NULL));
	memset(&rs, 0, sizeof(rs));
	/* Not old enough yet. */
	assert_int_equal(kite_repl_log_retry(&l, 10, 20, 8, 3, on_resend, &rs, &given_up), 0);
	assert_int_equal(kite_repl_log_retry(&l, 11, 20, 8, 3, on_resend, &rs, &given_up), 2);
	assert_int_equal(rs.lo[0], 1); /* 100 and 102, not the acknowledged 101 */
	assert_int_equal(rs.lo[1], 7);
	/* Sent twice now; the third attempt is the last, then given up. */
	assert_int_equal(kite_repl_log_retry(&l, 21, 30, 8, 3, on_resend, &rs, &given_up), 2);
	assert_int_equal(kite_repl_log_retry(&l, 31, 40, 8, 3, on_resend, &rs, &given_up), 0);
	assert_int_equal(given_up, 2);

	/* A destination that left: everything it has not acknowledged is given up at once. */
	for (int i = 3; i < 7; i++) {
		len = build_data(dg, sizeof(dg), 5, 1 + 3 * (uint64_t)i, 3);
		kite_proto_put16(dg, (uint16_t)(100 + i));
		kite_repl_log_add(&l, dg, len, 50);
	}
	assert_true(kite_repl_log_ack(&l, 104, NULL));
	assert_int_equal(kite_repl_log_unacked(&l), 3);
	assert_int_equal(kite_repl_log_give_up(&l), 3);
	assert_int_equal(kite_repl_log_unacked(&l), 0);
	assert_int_equal(kite_repl_log_give_up(&l), 0);
	rs.n = 0;
	assert_int_equal(kite_repl_log_retry(&l, 1000, 1000, 8, 3, on_resend, &rs, &given_up), 0);
	assert_int_equal(rs.n, 0);
	/* A NACK still finds them (the replica may ask after all). */
	assert_int_equal(kite_repl_log_resend(&l, 5, 13, 99, 2000, 0, on_resend, &rs), 3);
}

/*
 * A backfill: RESET, the items as PUT records, MARK. A NACK from any
 * sequence up to the RESET's is answered from the log (the stream
 * restarts there), not with another resync; MARK parses like RESET.
 */
static void
test_log_reset_mark(void **state)
{
	static uint8_t mem[4096];
	static struct kite_repl_log_ent ent[16];
	struct kite_repl_log l;
	struct kite_repl_builder b;
	struct kite_repl_msg m;
	struct kite_repl_rec r;
	uint8_t dg[512];
	struct resent rs;
	const uint8_t *p;
	size_t len;

	(void)state;
	kite_repl_log_init(&l, mem, sizeof(mem), ent, 16);
	kite_repl_begin(&b, dg, sizeof(dg), KITE_REPL_DATA, 9, 0, 3, 99);
	assert_int_equal(kite_repl_add_rec(&b, &(struct kite_repl_rec){ .kind = KITE_REPL_RESET,
									 .vbucket = 5, .seq = 40 }),
			 0);
	assert_int_equal(kite_repl_add_rec(&b, &(struct kite_repl_rec){ .kind = KITE_REPL_MARK,
									 .vbucket = 5, .seq = 41 }),
			 0);
	len = kite_repl_close(&b, secret);
	kite_repl_log_add(&l, dg, len, 0);
	memset(&rs, 0, sizeof(rs));
	assert_int_equal(kite_repl_log_resend(&l, 5, 1, 99, 1000, 0, on_resend, &rs), 1);
	assert_int_equal(rs.lo[0], 40);
	assert_int_equal(kite_repl_log_resend(&l, 5, 41, 99, 2000, 0, on_resend, &rs), 1);
	/* Another vbucket is not answered by it. */
	assert_int_equal(kite_repl_log_resend(&l, 6, 1, 99, 3000, 0, on_resend, &rs), -1);
	assert_int_equal(kite_repl_parse(dg + 8, len - 8, secret, &m), KITE_REPL_OK);
	p = m.body;
	assert_int_equal(kite_repl_next_rec(&p, m.body + m.bodylen, &r), 1);
	assert_int_equal(r.kind, KITE_REPL_RESET);
	assert_int_equal(kite_repl_next_rec(&p, m.body + m.bodylen, &r), 1);
	assert_int_equal(r.kind, KITE_REPL_MARK);
	assert_int_equal(r.seq, 41);
	assert_int_equal(r.keylen, 0);
	assert_int_equal(kite_repl_next_rec(&p, m.body + m.bodylen, &r), 0);
	/* A kind beyond MARK is refused when built. */
	kite_repl_begin(&b, dg, sizeof(dg), KITE_REPL_DATA, 9, 0, 3, 99);
	assert_int_equal(kite_repl_add_rec(&b, &(struct kite_repl_rec){ .kind = 6, .vbucket = 5,
									 .seq = 1 }),
			 -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data_roundtrip), cmocka_unit_test(test_pairs_and_fullness),
		cmocka_unit_test(test_mac),	       cmocka_unit_test(test_bad_records),
		cmocka_unit_test(test_order),	       cmocka_unit_test(test_log),
		cmocka_unit_test(test_log_retry), cmocka_unit_test(test_log_reset_mark),
		cmocka_unit_test(test_log_lost),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
