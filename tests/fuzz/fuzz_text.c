/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for the text and meta parser (lib/proto/kite_text.c).
 *
 * Each input is a datagram's text, walked as the engine walks it: request
 * after request with one cursor until the text ends or the parser says
 * stop or drop. Beyond ASan/UBSan's checks it aborts when the contract the
 * engine relies on breaks: the walk always advances and never past the
 * end; an accepted request's key is 1..250 bytes inside the input (or in
 * the request's own decoded-key buffer) and its value inside the input; an
 * error names a known line; the request count is the requests found.
 * base64 keys are also re-encoded and decoded back.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kite_text.h"

static void
check(int cond)
{
	if (!cond)
		abort();
}

static uint32_t
touch(const uint8_t *p, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += p[i];
	return s;
}

static int
inside(const uint8_t *p, size_t n, const uint8_t *base, size_t len)
{
	return p >= base && p + n <= base + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run(const uint8_t *data, size_t size, bool any_keys);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Both key policies (text-keys = strict and memcached). */
	run(data, size, false);
	run(data, size, true);
	return 0;
}

static void
run(const uint8_t *data, size_t size, bool any_keys)
{
	struct kite_text_cursor cur;
	static struct kite_req r;
	static struct kite_text_req t;
	size_t off = 0;
	unsigned int found = 0;
	const unsigned int bound = kite_text_count(data, size, any_keys);
	volatile uint32_t sink = 0;

	kite_text_cursor_init(&cur, any_keys);
	while (off < size) {
		size_t used = 0;
		uint8_t drop = 0;
		enum kite_parse_result res = kite_text_parse(data + off, size - off, 1 << 20, &cur,
							     &r, &t, &used, &drop);

		if (res == KITE_PARSE_DROP) {
			check(drop == KITE_PROTO_DROP_TEXT_RESPONSE ||
			      drop == KITE_PROTO_DROP_TEXT_PARTIAL);
			break;
		}
		found++;
		check(used > 0 && used <= size - off);
		if (res == KITE_PARSE_OK) {
			check(t.tcmd > KITE_T_NONE && t.tcmd < KITE_T_MAX);
			check(r.keylen <= KITE_KEY_MAX);
			if (r.keylen > 0)
				check(inside(r.key, r.keylen, data + off, used) ||
				      (t.b64 && r.key == t.key));
			if (r.vallen > 0)
				check(inside(r.value, r.vallen, data + off, used));
			if (t.opaque_len > 0)
				check(inside(t.opaque, t.opaque_len, data + off, used) &&
				      t.opaque_len <= KITE_TEXT_OPAQUE_MAX);
			check(t.nflags <= KITE_TEXT_MAX_FLAGS);
			sink += touch(r.key, r.keylen) + touch(r.value, r.vallen);
			if (t.b64 && r.keylen > 0) {
				char enc[4 * ((KITE_KEY_MAX + 2) / 3) + 4];
				uint8_t back[KITE_KEY_MAX];
				size_t n = kite_text_b64_encode(r.key, r.keylen, enc);
				check(kite_text_b64_decode((const uint8_t *)enc, n, back,
							   sizeof(back)) == (int)r.keylen);
				check(memcmp(back, r.key, r.keylen) == 0);
			}
		} else {
			check(t.err > KITE_TERR_NONE && t.err < KITE_TERR_MAX);
			check(kite_text_err_str((enum kite_text_err)t.err)[0] != '\0');
		}
		off += used;
		if (res == KITE_PARSE_ERR_STOP || (res == KITE_PARSE_OK && r.cmd == KITE_CMD_QUIT))
			break;
	}
	check(found == bound || bound == UINT16_MAX);
	(void)sink;
}
