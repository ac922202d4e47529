/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lib/repl with untrusted bytes: the datagram check (a random MAC never
 * passes, but every length is looked at first), the record and pair walks
 * over arbitrary bodies (what a MAC'd datagram from a buggy peer could
 * hold), and the owner's log indexing arbitrary datagrams. Re-encoding
 * every record walked must give the same bytes.
 */
#include <stdint.h>
#include <string.h>

#include "kite_repl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t mem[8192];
static struct kite_repl_log_ent ent[8];

static void
sink(void *arg, const uint8_t *d, size_t len)
{
	(void)arg;
	(void)d;
	(void)len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t secret[KITE_REPL_SECRET_LEN];
	struct kite_repl_msg m;
	struct kite_repl_rec r;
	struct kite_repl_log l;
	const uint8_t *p = data, *end = data + size;
	uint32_t vb = 0;
	uint64_t seq;

	(void)kite_repl_parse(data, size, secret, &m);
	while (kite_repl_next_rec(&p, end, &r) == 1) {
		/* Re-encode: the bytes walked must come back. */
		static uint8_t buf[70000];
		struct kite_repl_builder b;

		kite_repl_begin(&b, buf, sizeof(buf), KITE_REPL_DATA, 0, 0, 0, 0);
		if (kite_repl_add_rec(&b, &r) == 0 &&
		    memcmp(buf + KITE_REPL_HDR_LEN, p - (KITE_REPL_REC_FIXED + r.keylen + r.vallen),
			   KITE_REPL_REC_FIXED + r.keylen + r.vallen) != 0)
			__builtin_trap();
		vb = r.vbucket;
	}
	p = data;
	while (kite_repl_next_pair(&p, end, &vb, &seq) == 1)
		;
	kite_repl_log_init(&l, mem, sizeof(mem), ent, 8);
	for (size_t off = 0; off + 64 <= size; off += 64)
		kite_repl_log_add(&l, data + off, size - off, off);
	(void)kite_repl_log_resend(&l, vb, 1, 0, 0, 0, sink, NULL);
	(void)kite_repl_log_ack(&l, (uint16_t)vb, NULL);
	(void)kite_repl_log_unacked(&l);
	(void)kite_repl_log_retry(&l, UINT64_MAX, 0, 4, 3, sink, NULL, NULL);
	return 0;
}
