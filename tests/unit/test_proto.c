/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests for the frame and binary-protocol codec (lib/proto).
 *
 * Real memcached 1.6.18 (memcached -U 22122 -p 0, probed over UDP with a
 * python socket) was used as the reference. What it does, and where Kite
 * differs on purpose:
 *
 *  - keylen + extlen > bodylen: memcached answers UNKNOWN_COMMAND (0x81,
 *    "Unknown command") and drops the rest of the datagram. Kite answers
 *    with the same status and continues, because bodylen still frames the
 *    request.
 *  - Every other protocol error (EINVAL, "Invalid arguments") also makes
 *    memcached drop the rest of the datagram (close_after_write resets the
 *    UDP connection); Kite returns ERR_REPLY and continues.
 *  - bodylen past the end of the datagram: memcached sends nothing, then
 *    takes the missing body bytes from the next datagrams that arrive on the
 *    socket, frame headers included (a SET claiming bodylen 100 was completed
 *    by two later datagrams and stored their bytes as its value). Kite
 *    answers EINVAL and ignores the rest of the datagram (ERR_STOP).
 *  - Unknown opcodes (0x1b, 0x25, 0xe0-0xef, SASL 0x20/0x21 without SASL):
 *    "Unknown command". memcached swallows bodylen bytes after it has already
 *    consumed extras and key, so it over-reads by keylen + extlen into the
 *    next datagram (0x1b with 4 bytes of extras is answered only when another
 *    datagram arrives). Kite consumes exactly 24 + bodylen.
 *  - keylen > 250 is checked before the opcode: an unknown opcode with a
 *    300-byte key gets EINVAL from memcached, and from Kite.
 *  - TOUCH/GAT check only extlen == 4 and keylen != 0, and STAT only
 *    extlen == 0; trailing body bytes are parsed as the next request (a TOUCH
 *    whose value was a NOOP header got two replies). Kite requires
 *    bodylen == keylen + extlen for them (EINVAL otherwise).
 *  - GET with a value, DELETE with a value, INCR with a value, SET or APPEND
 *    with the wrong extras, FLUSH with 8 bytes of extras or a key, NOOP or
 *    VERSION with a body: all EINVAL, as here.
 *  - Frame: memcached drops total != 1 (0 and 2 tried) but answers
 *    seq = 1, total = 1 and ignores reserved. Kite also drops seq != 0.
 *    A frame alone, or a frame plus 5 bytes, gets no reply from either.
 *  - First byte other than 0x80 (0x81 included): memcached parses the
 *    datagram as the text protocol and replies "ERROR\r\n"; Kite drops it.
 *  - E2BIG ("Too large.") applies to APPEND/PREPEND as well, and SETQ reports
 *    it (quiet only hides success). memcached's limit includes item overhead
 *    (with -I 1024 a 1000-byte value is refused); Kite compares the value
 *    length alone with max_value.
 *  - NOT_MY_VBUCKET has no text in memcached (write_bin_error has no case for
 *    it); Kite's string is its own. datatype and vbucket are ignored by both.
 *  - A quiet miss (GETQ) or QUITQ makes memcached send an 8-byte datagram
 *    with total = 0 and no payload: 00 01 00 00 00 00 00 00 for req_id 1.
 *  - Each reply goes in its own datagram, and memcached 1.6.18 often loses
 *    the second request of a datagram (GET + NOOP: NOOP answered 5 times in
 *    20; NOOP + NOOP: once in 20), so pipelining after errors cannot be
 *    compared with it.
 *  - Verified bytes: GET hit for "foo"="bar" with flags 0, cas 1, opaque 8 is
 *    81 00 00 00 04 00 00 00 00 00 00 07 00 00 00 08 00*7 01 00 00 00 00 'bar'
 *    (see test_parse_res_memcached_bytes).
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "kite_proto.h"

#define BIG 4096

static uint8_t buf[BIG];

/* Outputs of one kite_proto_parse() call, so each test reads as one line. */
struct parsed {
	enum kite_parse_result res;
	struct kite_req req;
	size_t consumed;
	uint8_t status;
	uint8_t drop;
};

static struct parsed
parse(const uint8_t *p, size_t len, uint32_t max_value)
{
	struct parsed r;

	/* Poison the outputs so a field the parser forgot to write shows up. */
	memset(&r, 0xa5, sizeof(r));
	r.res = kite_proto_parse(p, len, max_value, &r.req, &r.consumed, &r.status, &r.drop);
	return r;
}

/*
 * Write an honest request at p: extras bytes 0xe0.., key 'k'..., value
 * 'v'... Returns its length. Tests that need a lying header patch it after.
 */
static size_t
put_req(uint8_t *p, uint8_t opcode, uint8_t extlen, uint16_t keylen, uint32_t vallen,
	uint32_t opaque)
{
	uint32_t body = (uint32_t)extlen + keylen + vallen;
	uint8_t *w = p + KITE_BIN_HDR_LEN;

	kite_proto_write_req_hdr(p, opcode, keylen, extlen, 0, body, opaque, 0);
	for (unsigned int i = 0; i < extlen; i++)
		*w++ = (uint8_t)(0xe0 + i);
	memset(w, 'k', keylen);
	w += keylen;
	memset(w, 'v', vallen);
	return KITE_BIN_HDR_LEN + body;
}

/* ---- invalid arguments ------------------------------------------------- */

static void
test_frame_parse_null(void **state)
{
	struct kite_proto_frame f;
	uint8_t d[8] = { 0, 1, 0, 0, 0, 1, 0, 0 };

	(void)state;
	assert_int_equal(kite_proto_frame_parse(NULL, 8, &f), -EINVAL);
	assert_int_equal(kite_proto_frame_parse(d, sizeof(d), NULL), -EINVAL);
	assert_int_equal(kite_proto_frame_parse(NULL, 0, NULL), -EINVAL);
}

static void
test_parse_null(void **state)
{
	struct kite_req req;
	size_t consumed = 99;
	uint8_t status = 99, drop = 99;
	size_t n = put_req(buf, KITE_OP_NOOP, 0, 0, 0, 1);

	(void)state;
	/* Missing outputs: nothing can be reported, so nothing is executed. */
	assert_int_equal(kite_proto_parse(buf, n, 0, NULL, &consumed, &status, &drop),
			 KITE_PARSE_DROP);
	assert_int_equal(kite_proto_parse(buf, n, 0, &req, NULL, &status, &drop), KITE_PARSE_DROP);
	assert_int_equal(kite_proto_parse(buf, n, 0, &req, &consumed, NULL, &drop),
			 KITE_PARSE_DROP);
	assert_int_equal(kite_proto_parse(buf, n, 0, &req, &consumed, &status, NULL),
			 KITE_PARSE_DROP);

	/* A NULL datagram is an empty one, whatever length comes with it. */
	struct parsed r = parse(NULL, 100, 0);
	assert_int_equal(r.res, KITE_PARSE_DROP);
	assert_int_equal(r.drop, KITE_PROTO_DROP_EMPTY);
	assert_int_equal(r.consumed, 0);
}

static void
test_build_req_invalid(void **state)
{
	uint8_t ext[8] = { 0 };

	(void)state;
	assert_int_equal(
		kite_proto_build_req(NULL, BIG, KITE_OP_NOOP, 0, 0, NULL, 0, NULL, 0, NULL, 0),
		-EINVAL);
	assert_int_equal(kite_proto_build_req(buf, BIG, KITE_OP_SET, 0, 0, NULL, 8, "k", 1, "v", 1),
			 -EINVAL);
	assert_int_equal(
		kite_proto_build_req(buf, BIG, KITE_OP_GET, 0, 0, NULL, 0, NULL, 3, NULL, 0),
		-EINVAL);
	assert_int_equal(kite_proto_build_req(buf, BIG, KITE_OP_SET, 0, 0, ext, 8, "k", 1, NULL, 5),
			 -EINVAL);
	/* A body that cannot be described by the 32-bit bodylen nor returned as int. */
	assert_int_equal(kite_proto_build_req(buf, SIZE_MAX, KITE_OP_SET, 0, 0, ext, 8, "k", 1, buf,
					      UINT32_MAX),
			 -EINVAL);
	/* Too small by one byte, then exactly big enough. */
	assert_int_equal(
		kite_proto_build_req(buf, 23, KITE_OP_NOOP, 0, 0, NULL, 0, NULL, 0, NULL, 0),
		-ENOSPC);
	assert_int_equal(kite_proto_build_req(buf, 24 + 8 + 1 + 2 - 1, KITE_OP_SET, 0, 0, ext, 8,
					      "k", 1, "vv", 2),
			 -ENOSPC);
	assert_int_equal(kite_proto_build_req(buf, 24 + 8 + 1 + 2, KITE_OP_SET, 0, 0, ext, 8, "k",
					      1, "vv", 2),
			 24 + 8 + 1 + 2);
}

static void
test_parse_res_invalid(void **state)
{
	struct kite_res res;

	(void)state;
	assert_int_equal(kite_proto_parse_res(NULL, 24, &res), -EINVAL);
	kite_proto_write_res_hdr(buf, KITE_OP_NOOP, 0, 0, 0, 0, 1, 0);
	assert_int_equal(kite_proto_parse_res(buf, 24, NULL), -EINVAL);

	/* Short header: more bytes may come. */
	assert_int_equal(kite_proto_parse_res(buf, 0, &res), -EAGAIN);
	assert_int_equal(kite_proto_parse_res(buf, 23, &res), -EAGAIN);

	/* A request is not a response. */
	kite_proto_write_req_hdr(buf, KITE_OP_NOOP, 0, 0, 0, 0, 1, 0);
	assert_int_equal(kite_proto_parse_res(buf, 24, &res), -EINVAL);
	buf[0] = 0x00;
	assert_int_equal(kite_proto_parse_res(buf, 24, &res), -EINVAL);

	/* keylen + extlen > bodylen cannot be fixed by waiting. */
	kite_proto_write_res_hdr(buf, KITE_OP_GETK, 3, 4, 0, 6, 1, 0);
	assert_int_equal(kite_proto_parse_res(buf, BIG, &res), -EINVAL);

	/* Truncated body. */
	kite_proto_write_res_hdr(buf, KITE_OP_GET, 0, 4, 0, 10, 1, 0);
	assert_int_equal(kite_proto_parse_res(buf, 24 + 9, &res), -EAGAIN);
	assert_int_equal(kite_proto_parse_res(buf, 24 + 10, &res), 34);

	/* Too large to return as a length at all. */
	kite_proto_write_res_hdr(buf, KITE_OP_GET, 0, 0, 0, 0x7fffffff, 1, 0);
	assert_int_equal(kite_proto_parse_res(buf, BIG, &res), -EINVAL);
	kite_proto_write_res_hdr(buf, KITE_OP_GET, 0, 0, 0, 0xffffffff, 1, 0);
	assert_int_equal(kite_proto_parse_res(buf, BIG, &res), -EINVAL);
}

static void
test_write_null(void **state)
{
	uint8_t d[8];
	struct kite_proto_frame f = { 1, 0, 1, 0 };

	(void)state;
	memset(d, 0xaa, sizeof(d));
	kite_proto_frame_write(d, NULL);
	kite_proto_frame_write(NULL, &f);
	kite_proto_write_res_hdr(NULL, 0, 0, 0, 0, 0, 0, 0);
	kite_proto_write_req_hdr(NULL, 0, 0, 0, 0, 0, 0, 0);
	for (unsigned int i = 0; i < sizeof(d); i++)
		assert_int_equal(d[i], 0xaa);
}

static void
test_names_out_of_range(void **state)
{
	(void)state;
	assert_string_equal(kite_proto_drop_name(KITE_PROTO_DROP_MAX), "unknown");
	assert_string_equal(kite_proto_drop_name((enum kite_proto_drop)(-1)), "unknown");
	assert_string_equal(kite_proto_drop_name((enum kite_proto_drop)1000), "unknown");
	assert_string_equal(kite_proto_status_str(0x08), "");
	assert_string_equal(kite_proto_status_str(0x21), "");
	assert_string_equal(kite_proto_status_str(0xe4), "");
	assert_string_equal(kite_proto_status_str(0xff), "");
	assert_string_equal(kite_proto_status_str(KITE_STATUS_OK), "");
}

/* ---- frame ------------------------------------------------------------- */

static void
test_frame_short(void **state)
{
	struct kite_proto_frame f;
	uint8_t d[8] = { 0x12, 0x34, 0, 0, 0, 1, 0, 0 };

	(void)state;
	for (size_t len = 0; len < KITE_FRAME_HDR_LEN; len++)
		assert_int_equal(kite_proto_frame_parse(d, len, &f), KITE_PROTO_DROP_SHORT_FRAME);
}

static void
test_frame_ok(void **state)
{
	struct kite_proto_frame f;
	uint8_t d[10] = { 0x12, 0x34, 0, 0, 0, 1, 0xbe, 0xef, 0x80, 0 };

	(void)state;
	assert_int_equal(kite_proto_frame_parse(d, 8, &f), 0);
	assert_int_equal(f.req_id, 0x1234);
	assert_int_equal(f.seq, 0);
	assert_int_equal(f.total, 1);
	/* memcached ignores the reserved field; so do we. */
	assert_int_equal(f.reserved, 0xbeef);
	assert_int_equal(kite_proto_frame_parse(d, sizeof(d), &f), 0);

	/* A frame with nothing behind it: the request parser reports it empty. */
	struct parsed r = parse(d + 8, 0, 0);
	assert_int_equal(r.res, KITE_PARSE_DROP);
	assert_int_equal(r.drop, KITE_PROTO_DROP_EMPTY);
}

static void
test_frame_multi(void **state)
{
	struct kite_proto_frame f;
	uint8_t total2[8] = { 0, 7, 0, 0, 0, 2, 0, 0 };
	uint8_t total0[8] = { 0, 7, 0, 0, 0, 0, 0, 0 };
	uint8_t seq1[8] = { 0, 7, 0, 1, 0, 1, 0, 0 };
	uint8_t total256[8] = { 0, 7, 0, 0, 1, 1, 0, 0 };

	(void)state;
	assert_int_equal(kite_proto_frame_parse(total2, 8, &f), KITE_PROTO_DROP_MULTI_DGRAM);
	/* The header is still decoded so the drop can be attributed. */
	assert_int_equal(f.req_id, 7);
	assert_int_equal(f.total, 2);
	assert_int_equal(kite_proto_frame_parse(total0, 8, &f), KITE_PROTO_DROP_MULTI_DGRAM);
	assert_int_equal(kite_proto_frame_parse(seq1, 8, &f), KITE_PROTO_DROP_MULTI_DGRAM);
	assert_int_equal(f.seq, 1);
	assert_int_equal(kite_proto_frame_parse(total256, 8, &f), KITE_PROTO_DROP_MULTI_DGRAM);
	assert_int_equal(f.total, 0x101);
}

static void
test_frame_write(void **state)
{
	uint8_t d[8];
	const uint8_t want[8] = { 0xab, 0xcd, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00 };
	struct kite_proto_frame f = { .req_id = 0xabcd, .seq = 2, .total = 3, .reserved = 0 }, g;

	(void)state;
	kite_proto_frame_write(d, &f);
	assert_memory_equal(d, want, sizeof(want));
	assert_int_equal(kite_proto_frame_parse(d, sizeof(d), &g), KITE_PROTO_DROP_MULTI_DGRAM);
	assert_memory_equal(&f, &g, sizeof(f));
}

/* ---- command table ----------------------------------------------------- */

struct op_case {
	uint8_t opcode;
	enum kite_cmd cmd;
	bool quiet;
	bool want_key;
	uint8_t extlen; /* a valid request's shape */
	uint16_t keylen;
	uint32_t vallen;
};

static const struct op_case ops[] = {
	{ KITE_OP_GET, KITE_CMD_GET, false, false, 0, 3, 0 },
	{ KITE_OP_GETQ, KITE_CMD_GET, true, false, 0, 3, 0 },
	{ KITE_OP_GETK, KITE_CMD_GET, false, true, 0, 3, 0 },
	{ KITE_OP_GETKQ, KITE_CMD_GET, true, true, 0, 3, 0 },
	{ KITE_OP_SET, KITE_CMD_SET, false, false, 8, 3, 5 },
	{ KITE_OP_SETQ, KITE_CMD_SET, true, false, 8, 3, 5 },
	{ KITE_OP_ADD, KITE_CMD_ADD, false, false, 8, 3, 5 },
	{ KITE_OP_ADDQ, KITE_CMD_ADD, true, false, 8, 3, 0 },
	{ KITE_OP_REPLACE, KITE_CMD_REPLACE, false, false, 8, 3, 5 },
	{ KITE_OP_REPLACEQ, KITE_CMD_REPLACE, true, false, 8, 3, 5 },
	{ KITE_OP_APPEND, KITE_CMD_APPEND, false, false, 0, 3, 2 },
	{ KITE_OP_APPENDQ, KITE_CMD_APPEND, true, false, 0, 3, 2 },
	{ KITE_OP_PREPEND, KITE_CMD_PREPEND, false, false, 0, 3, 2 },
	{ KITE_OP_PREPENDQ, KITE_CMD_PREPEND, true, false, 0, 3, 0 },
	{ KITE_OP_DELETE, KITE_CMD_DELETE, false, false, 0, 3, 0 },
	{ KITE_OP_DELETEQ, KITE_CMD_DELETE, true, false, 0, 3, 0 },
	{ KITE_OP_INCREMENT, KITE_CMD_INCR, false, false, 20, 3, 0 },
	{ KITE_OP_INCREMENTQ, KITE_CMD_INCR, true, false, 20, 3, 0 },
	{ KITE_OP_DECREMENT, KITE_CMD_DECR, false, false, 20, 3, 0 },
	{ KITE_OP_DECREMENTQ, KITE_CMD_DECR, true, false, 20, 3, 0 },
	{ KITE_OP_TOUCH, KITE_CMD_TOUCH, false, false, 4, 3, 0 },
	{ KITE_OP_GAT, KITE_CMD_GAT, false, false, 4, 3, 0 },
	{ KITE_OP_GATQ, KITE_CMD_GAT, true, false, 4, 3, 0 },
	{ KITE_OP_GATK, KITE_CMD_GAT, false, true, 4, 3, 0 },
	{ KITE_OP_GATKQ, KITE_CMD_GAT, true, true, 4, 3, 0 },
	{ KITE_OP_NOOP, KITE_CMD_NOOP, false, false, 0, 0, 0 },
	{ KITE_OP_VERSION, KITE_CMD_VERSION, false, false, 0, 0, 0 },
	{ KITE_OP_STAT, KITE_CMD_STAT, false, false, 0, 0, 0 },
	{ KITE_OP_FLUSH, KITE_CMD_FLUSH, false, false, 0, 0, 0 },
	{ KITE_OP_FLUSHQ, KITE_CMD_FLUSH, true, false, 4, 0, 0 },
	{ KITE_OP_QUIT, KITE_CMD_QUIT, false, false, 0, 0, 0 },
	{ KITE_OP_QUITQ, KITE_CMD_QUIT, true, false, 0, 0, 0 },
	{ KITE_OP_TOPOLOGY, KITE_CMD_TOPOLOGY, false, false, 0, 0, 0 },
	{ KITE_OP_CLUSTER_MAP, KITE_CMD_CLUSTER_MAP, false, false, 0, 0, 0 },
	{ KITE_OP_FILL_GET, KITE_CMD_FILL_GET, false, false, 0, 3, 0 },
	/* Kite's meta opcodes: any extras (the flags as text), a value only for META_SET. */
	{ KITE_OP_META_GET, KITE_CMD_GET, false, false, 5, 3, 0 },
	{ KITE_OP_META_SET, KITE_CMD_SET, false, false, 4, 3, 5 },
	{ KITE_OP_META_DELETE, KITE_CMD_DELETE, false, false, 0, 3, 0 },
	{ KITE_OP_META_ARITH, KITE_CMD_INCR, false, false, 2, 3, 0 },
};

#define N_OPS (sizeof(ops) / sizeof(ops[0]))

static const struct op_case *
find_op(unsigned int opcode)
{
	for (size_t i = 0; i < N_OPS; i++)
		if (ops[i].opcode == opcode)
			return &ops[i];
	return NULL;
}

static void
test_cmd_table(void **state)
{
	unsigned int known = 0;

	(void)state;
	for (unsigned int op = 0; op < 256; op++) {
		bool quiet = true, want_key = true;
		enum kite_cmd c = kite_proto_cmd((uint8_t)op, &quiet, &want_key);
		const struct op_case *oc = find_op(op);

		if (oc == NULL) {
			assert_int_equal(c, KITE_CMD_UNKNOWN);
			assert_false(quiet);
			assert_false(want_key);
			continue;
		}
		known++;
		assert_int_equal(c, oc->cmd);
		assert_int_equal(quiet, oc->quiet);
		assert_int_equal(want_key, oc->want_key);
	}
	assert_int_equal(known, N_OPS);
	/* Outputs are optional. */
	assert_int_equal(kite_proto_cmd(KITE_OP_GETKQ, NULL, NULL), KITE_CMD_GET);
}

/* ---- well-formed requests ---------------------------------------------- */

static void
test_parse_every_opcode(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_OPS; i++) {
		const struct op_case *oc = &ops[i];
		size_t n = put_req(buf, oc->opcode, oc->extlen, oc->keylen, oc->vallen,
				   0x1000 + (uint32_t)i);
		struct parsed r = parse(buf, n, 1024);

		assert_int_equal(r.res, KITE_PARSE_OK);
		assert_int_equal(r.status, KITE_STATUS_OK);
		assert_int_equal(r.drop, KITE_PROTO_DROP_NONE);
		assert_int_equal(r.consumed, n);
		assert_int_equal(r.req.opcode, oc->opcode);
		assert_int_equal(r.req.cmd, oc->cmd);
		assert_int_equal(r.req.quiet, oc->quiet);
		assert_int_equal(r.req.want_key, oc->want_key);
		assert_int_equal(r.req.opaque, 0x1000 + i);
		assert_int_equal(r.req.extlen, oc->extlen);
		assert_int_equal(r.req.keylen, oc->keylen);
		assert_int_equal(r.req.bodylen, oc->extlen + oc->keylen + oc->vallen);
		assert_ptr_equal(r.req.key, buf + 24 + oc->extlen);
		assert_ptr_equal(r.req.value, buf + 24 + oc->extlen + oc->keylen);
		assert_int_equal(r.req.vallen, oc->vallen);
	}
}

/*
 * The GET family (GET, GETQ, GETK, GETKQ) has a path of its own in the
 * parser: every field of the request it fills, padding included, as the
 * general path fills it (the expected request is built field by field on
 * zeroed memory), and each way of leaving it ends where the general path
 * ends: key of 250 bytes taken, 0 and 251 refused, extras or a value
 * refused, a body past the datagram stopping the datagram.
 */
static void
test_parse_get_family(void **state)
{
	static const struct { uint8_t op; bool quiet, want_key; } fam[] = {
		{ KITE_OP_GET, false, false }, { KITE_OP_GETQ, true, false },
		{ KITE_OP_GETK, false, true }, { KITE_OP_GETKQ, true, true },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(fam) / sizeof(fam[0]); i++) {
		static const uint16_t klens[] = { 1, 16, 250 };

		for (size_t k = 0; k < sizeof(klens) / sizeof(klens[0]); k++) {
			size_t n = put_req(buf, fam[i].op, 0, klens[k], 0, 0x77 + (uint32_t)k);
			struct kite_req want;
			struct parsed r;

			buf[5] = 0x01;
			kite_proto_put16(buf + 6, 0x0203);
			kite_proto_put64(buf + 16, UINT64_C(0x1122334455667788));
			/* Another request after it: consumed stops at this one's end. */
			n += put_req(buf + n, KITE_OP_NOOP, 0, 0, 0, 1);
			r = parse(buf, n, 1024);
			memset(&want, 0, sizeof(want));
			want.opcode = fam[i].op;
			want.cmd = KITE_CMD_GET;
			want.quiet = fam[i].quiet;
			want.want_key = fam[i].want_key;
			want.datatype = 1;
			want.vbucket = 0x0203;
			want.keylen = klens[k];
			want.bodylen = klens[k];
			want.opaque = 0x77 + (uint32_t)k;
			want.cas = UINT64_C(0x1122334455667788);
			want.key = buf + 24;
			want.value = buf + 24 + klens[k];
			assert_int_equal(r.res, KITE_PARSE_OK);
			assert_int_equal(r.consumed, 24 + klens[k]);
			assert_int_equal(r.status, KITE_STATUS_OK);
			assert_int_equal(r.drop, KITE_PROTO_DROP_NONE);
			assert_memory_equal(&r.req, &want, sizeof(want));
		}
		/* Ways out of the fast path, each ending as the general path ends (EINVAL). */
		static const struct {
			uint8_t extlen;
			uint16_t keylen;
			uint32_t vallen, cut;
			enum kite_parse_result res;
		} out[] = {
			{ 0, 251, 0, 0, KITE_PARSE_ERR_REPLY }, /* key too long */
			{ 0, 0, 0, 0, KITE_PARSE_ERR_REPLY },   /* no key */
			{ 4, 8, 0, 0, KITE_PARSE_ERR_REPLY },   /* extras */
			{ 0, 8, 5, 0, KITE_PARSE_ERR_REPLY },   /* a value */
			{ 0, 8, 0, 1, KITE_PARSE_ERR_STOP },    /* body past the datagram */
		};
		for (size_t k = 0; k < sizeof(out) / sizeof(out[0]); k++) {
			size_t n = put_req(buf, fam[i].op, out[k].extlen, out[k].keylen,
					   out[k].vallen, 1);
			struct parsed r = parse(buf, n - out[k].cut, 1024);

			assert_int_equal(r.res, out[k].res);
			assert_int_equal(r.status, KITE_STATUS_EINVAL);
			if (out[k].res == KITE_PARSE_ERR_REPLY)
				assert_int_equal(r.consumed, n);
		}
	}
}

static void
test_parse_header_fields(void **state)
{
	(void)state;
	size_t n = kite_proto_build_req(buf, BIG, KITE_OP_GETK, 0xdeadbeef,
					UINT64_C(0x0102030405060708), NULL, 0, "foo", 3, NULL, 0);
	buf[5] = 0x01;			   /* datatype */
	kite_proto_put16(buf + 6, 0x0bcd); /* vbucket */
	struct parsed r = parse(buf, n, 0);

	assert_int_equal(r.res, KITE_PARSE_OK);
	assert_int_equal(r.req.opaque, 0xdeadbeef);
	assert_true(r.req.cas == UINT64_C(0x0102030405060708));
	/* Carried, not judged: memcached ignores both. */
	assert_int_equal(r.req.datatype, 1);
	assert_int_equal(r.req.vbucket, 0x0bcd);
	assert_memory_equal(r.req.key, "foo", 3);
}

static void
test_parse_set_extras(void **state)
{
	uint8_t ext[8];

	(void)state;
	kite_proto_put32(ext, 0xdeadbeef);
	kite_proto_put32(ext + 4, 3600);
	int n = kite_proto_build_req(buf, BIG, KITE_OP_SETQ, 5, 0, ext, 8, "foo", 3, "bar", 3);
	assert_int_equal(n, 24 + 8 + 3 + 3);
	struct parsed r = parse(buf, (size_t)n, 3);

	assert_int_equal(r.res, KITE_PARSE_OK);
	assert_int_equal(r.req.flags, 0xdeadbeef);
	assert_int_equal(r.req.exptime, 3600);
	assert_memory_equal(r.req.key, "foo", 3);
	assert_memory_equal(r.req.value, "bar", 3);
	assert_int_equal(r.req.vallen, 3);
	assert_true(r.req.quiet);

	/* An empty value is a valid SET. */
	n = kite_proto_build_req(buf, BIG, KITE_OP_ADD, 5, 0, ext, 8, "foo", 3, NULL, 0);
	r = parse(buf, (size_t)n, 0);
	assert_int_equal(r.res, KITE_PARSE_OK);
	assert_int_equal(r.req.vallen, 0);
}

static void
test_parse_incr_extras(void **state)
{
	uint8_t ext[20];

	(void)state;
	kite_proto_put64(ext, UINT64_C(0x1122334455667788));
	kite_proto_put64(ext + 8, 42);
	kite_proto_put32(ext + 16, KITE_DELTA_NO_CREATE);
	int n = kite_proto_build_req(buf, BIG, KITE_OP_DECREMENTQ, 5, 0, ext, 20, "ctr", 3, NULL,
				     0);
	struct parsed r = parse(buf, (size_t)n, 0);

	assert_int_equal(r.res, KITE_PARSE_OK);
	assert_int_equal(r.req.cmd, KITE_CMD_DECR);
	assert_true(r.req.delta == UINT64_C(0x1122334455667788));
	assert_true(r.req.initial == 42);
	assert_int_equal(r.req.exptime, KITE_DELTA_NO_CREATE);
	assert_memory_equal(r.req.key, "ctr", 3);
}

static void
test_parse_touch_gat_extras(void **state)
{
	static const uint8_t touch_ops[] = { KITE_OP_TOUCH, KITE_OP_GAT, KITE_OP_GATQ, KITE_OP_GATK,
					     KITE_OP_GATKQ };
	uint8_t ext[4];

	(void)state;
	kite_proto_put32(ext, KITE_REALTIME_MAXDELTA + 1);
	for (size_t i = 0; i < sizeof(touch_ops); i++) {
		int n = kite_proto_build_req(buf, BIG, touch_ops[i], 5, 0, ext, 4, "key", 3, NULL,
					     0);
		struct parsed r = parse(buf, (size_t)n, 0);

		assert_int_equal(r.res, KITE_PARSE_OK);
		assert_int_equal(r.req.exptime, KITE_REALTIME_MAXDELTA + 1);
		assert_memory_equal(r.req.key, "key", 3);
	}
}

static void
test_parse_flush_extras(void **state)
{
	uint8_t ext[4];

	(void)state;
	kite_proto_put32(ext, 10);
	int n = kite_proto_build_req(buf, BIG, KITE_OP_FLUSH, 5, 0, ext, 4, NULL, 0, NULL, 0);
	struct parsed r = parse(buf, (size_t)n, 0);
	assert_int_equal(r.res, KITE_PARSE_OK);
	assert_int_equal(r.req.exptime, 10);

	n = kite_proto_build_req(buf, BIG, KITE_OP_FLUSHQ, 5, 0, NULL, 0, NULL, 0, NULL, 0);
	r = parse(buf, (size_t)n, 0);
	assert_int_equal(r.res, KITE_PARSE_OK);
	assert_int_equal(r.req.exptime, 0);
	assert_true(r.req.quiet);
}

static void
test_parse_stat_group(void **state)
{
	(void)state;
	int n = kite_proto_build_req(buf, BIG, KITE_OP_STAT, 5, 0, NULL, 0, "settings", 8, NULL, 0);
	struct parsed r = parse(buf, (size_t)n, 0);

	assert_int_equal(r.res, KITE_PARSE_OK);
	assert_int_equal(r.req.keylen, 8);
	assert_memory_equal(r.req.key, "settings", 8);
}

static void
test_parse_key_max(void **state)
{
	(void)state;
	size_t n = put_req(buf, KITE_OP_GET, 0, KITE_KEY_MAX, 0, 1);
	struct parsed r = parse(buf, n, 0);

	assert_int_equal(r.res, KITE_PARSE_OK);
	assert_int_equal(r.req.keylen, 250);
}

static void
test_parse_value_at_limit(void **state)
{
	(void)state;
	size_t n = put_req(buf, KITE_OP_SET, 8, 3, 100, 1);
	struct parsed r = parse(buf, n, 100);

	assert_int_equal(r.res, KITE_PARSE_OK);
	assert_int_equal(r.req.vallen, 100);
}

static void
test_parse_pipeline(void **state)
{
	size_t len = 0;

	(void)state;
	for (unsigned int i = 0; i < 16; i++) {
		char key[8];
		int kl = snprintf(key, sizeof(key), "key%u", i);
		int n = kite_proto_build_req(buf + len, BIG - len, KITE_OP_GETKQ, i, 0, NULL, 0,
					     key, (uint16_t)kl, NULL, 0);
		assert_true(n > 0);
		len += (size_t)n;
	}
	len += (size_t)kite_proto_build_req(buf + len, BIG - len, KITE_OP_NOOP, 16, 0, NULL, 0,
					    NULL, 0, NULL, 0);

	size_t off = 0;
	unsigned int count = 0;
	while (off < len) {
		struct parsed r = parse(buf + off, len - off, 0);
		char key[8];
		int kl = snprintf(key, sizeof(key), "key%u", count);

		assert_int_equal(r.res, KITE_PARSE_OK);
		assert_int_equal(r.req.opaque, count);
		if (count < 16) {
			assert_int_equal(r.req.cmd, KITE_CMD_GET);
			assert_true(r.req.quiet && r.req.want_key);
			assert_int_equal(r.req.keylen, kl);
			assert_memory_equal(r.req.key, key, (size_t)kl);
		} else {
			assert_int_equal(r.req.cmd, KITE_CMD_NOOP);
		}
		off += r.consumed;
		count++;
	}
	assert_int_equal(off, len);
	assert_int_equal(count, 17);
	/* The end of the datagram is reported as empty, not as a bad request. */
	struct parsed r = parse(buf + off, 0, 0);
	assert_int_equal(r.res, KITE_PARSE_DROP);
	assert_int_equal(r.drop, KITE_PROTO_DROP_EMPTY);
}

/* ---- malformed requests ------------------------------------------------ */

static void
test_parse_empty_and_truncated(void **state)
{
	(void)state;
	size_t n = put_req(buf, KITE_OP_NOOP, 0, 0, 0, 1);
	struct parsed r = parse(buf, 0, 0);

	assert_int_equal(n, 24);
	assert_int_equal(r.res, KITE_PARSE_DROP);
	assert_int_equal(r.drop, KITE_PROTO_DROP_EMPTY);
	for (size_t len = 1; len < KITE_BIN_HDR_LEN; len++) {
		r = parse(buf, len, 0);
		assert_int_equal(r.res, KITE_PARSE_DROP);
		assert_int_equal(r.drop, KITE_PROTO_DROP_TRUNC_HDR);
		assert_int_equal(r.consumed, len);
	}
}

static void
test_parse_bad_magic(void **state)
{
	(void)state;
	for (unsigned int m = 0; m < 256; m++) {
		if (m == KITE_MAGIC_REQ)
			continue;
		size_t n = put_req(buf, KITE_OP_NOOP, 0, 0, 0, 1);
		buf[0] = (uint8_t)m;
		struct parsed r = parse(buf, n, 0);

		assert_int_equal(r.res, KITE_PARSE_DROP);
		assert_int_equal(r.drop, m == KITE_MAGIC_RES ? KITE_PROTO_DROP_RES_MAGIC
							     : KITE_PROTO_DROP_BAD_MAGIC);
		assert_int_equal(r.consumed, n);
	}
}

static void
test_parse_body_past_datagram(void **state)
{
	(void)state;
	size_t n = put_req(buf, KITE_OP_SET, 8, 3, 3, 0x77);
	/* Claim one byte more than the datagram carries. */
	kite_proto_put32(buf + 8, 8 + 3 + 3 + 1);
	struct parsed r = parse(buf, n, 1024);

	assert_int_equal(r.res, KITE_PARSE_ERR_STOP);
	assert_int_equal(r.status, KITE_STATUS_EINVAL);
	assert_int_equal(r.consumed, n);
	/* Enough to frame the reply. */
	assert_int_equal(r.req.opcode, KITE_OP_SET);
	assert_int_equal(r.req.opaque, 0x77);
	assert_int_equal(r.req.cmd, KITE_CMD_SET);

	/* The same for sizes that would overflow a careless 32-bit sum. */
	static const uint32_t lies[] = { 0x7fffffff, 0xffffffff, 0xffffffe8, 0x80000000 };
	for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		n = put_req(buf, KITE_OP_GET, 0, 3, 0, 0x78);
		kite_proto_put32(buf + 8, lies[i]);
		r = parse(buf, n, UINT32_MAX);
		assert_int_equal(r.res, KITE_PARSE_ERR_STOP);
		assert_int_equal(r.status, KITE_STATUS_EINVAL);
		assert_int_equal(r.req.opaque, 0x78);
		assert_int_equal(r.consumed, n);
	}
}

static void
test_parse_body_short_of_datagram(void **state)
{
	(void)state;
	/* The NOOP claims none of the 5 bytes after it; those then start the next request. */
	size_t n = put_req(buf, KITE_OP_NOOP, 0, 0, 0, 1);
	memset(buf + n, 0x80, 5);
	struct parsed r = parse(buf, n + 5, 0);

	assert_int_equal(r.res, KITE_PARSE_OK);
	assert_int_equal(r.consumed, 24);
	r = parse(buf + 24, 5, 0);
	assert_int_equal(r.res, KITE_PARSE_DROP);
	assert_int_equal(r.drop, KITE_PROTO_DROP_TRUNC_HDR);

	/* A SET that claims less body than it sends: the tail is the next header. */
	n = put_req(buf, KITE_OP_SET, 8, 3, 30, 2);
	kite_proto_put32(buf + 8, 8 + 3 + 2);
	r = parse(buf, n, 1024);
	assert_int_equal(r.res, KITE_PARSE_OK);
	assert_int_equal(r.consumed, 24 + 13);
	assert_int_equal(r.req.vallen, 2);
	r = parse(buf + r.consumed, n - r.consumed, 1024);
	assert_int_equal(r.res, KITE_PARSE_DROP);
	assert_int_equal(r.drop, KITE_PROTO_DROP_BAD_MAGIC); /* 'v' is not 0x80 */
}

static void
test_parse_key_ext_past_body(void **state)
{
	(void)state;
	/* keylen 3 with bodylen 2; the datagram itself is long enough. */
	size_t n = put_req(buf, KITE_OP_GET, 0, 3, 0, 0x55);
	kite_proto_put32(buf + 8, 2);
	struct parsed r = parse(buf, n, 0);

	assert_int_equal(r.res, KITE_PARSE_ERR_REPLY);
	assert_int_equal(r.status, KITE_STATUS_UNKNOWN_COMMAND); /* as memcached */
	assert_int_equal(r.consumed, 24 + 2);
	assert_int_equal(r.req.opaque, 0x55);

	/* extlen alone past the body. */
	n = put_req(buf, KITE_OP_SET, 8, 3, 0, 0x56);
	kite_proto_put32(buf + 8, 7);
	r = parse(buf, n, 1024);
	assert_int_equal(r.res, KITE_PARSE_ERR_REPLY);
	assert_int_equal(r.status, KITE_STATUS_UNKNOWN_COMMAND); /* as memcached */
	assert_int_equal(r.consumed, 24 + 7);

	/* Same for an opcode we do not know: the header is judged first. */
	n = put_req(buf, 0xeb, 4, 4, 0, 0x57);
	kite_proto_put32(buf + 8, 7);
	r = parse(buf, n, 0);
	assert_int_equal(r.res, KITE_PARSE_ERR_REPLY);
	assert_int_equal(r.status, KITE_STATUS_UNKNOWN_COMMAND); /* as memcached */
}

static void
test_parse_key_too_long(void **state)
{
	(void)state;
	size_t n = put_req(buf, KITE_OP_GET, 0, KITE_KEY_MAX + 1, 0, 9);
	struct parsed r = parse(buf, n, 0);

	assert_int_equal(r.res, KITE_PARSE_ERR_REPLY);
	assert_int_equal(r.status, KITE_STATUS_EINVAL);
	assert_int_equal(r.consumed, n);

	n = put_req(buf, KITE_OP_SET, 8, 1000, 10, 9);
	r = parse(buf, n, 1024);
	assert_int_equal(r.res, KITE_PARSE_ERR_REPLY);
	assert_int_equal(r.status, KITE_STATUS_EINVAL);
	assert_int_equal(r.consumed, n);

	/* memcached checks the key before the opcode. */
	n = put_req(buf, 0xe5, 0, 300, 0, 9);
	r = parse(buf, n, 0);
	assert_int_equal(r.res, KITE_PARSE_ERR_REPLY);
	assert_int_equal(r.status, KITE_STATUS_EINVAL);
}

static void
test_parse_value_too_big(void **state)
{
	static const uint8_t store_ops[] = { KITE_OP_SET,  KITE_OP_SETQ,    KITE_OP_ADD,
					     KITE_OP_ADDQ, KITE_OP_REPLACE, KITE_OP_REPLACEQ };
	static const uint8_t cat_ops[] = { KITE_OP_APPEND, KITE_OP_APPENDQ, KITE_OP_PREPEND,
					   KITE_OP_PREPENDQ };

	(void)state;
	for (size_t i = 0; i < sizeof(store_ops); i++) {
		size_t n = put_req(buf, store_ops[i], 8, 3, 101, 3);
		struct parsed r = parse(buf, n, 100);

		assert_int_equal(r.res, KITE_PARSE_ERR_REPLY);
		assert_int_equal(r.status, KITE_STATUS_E2BIG);
		assert_int_equal(r.consumed, n);
		/* Quiet variants still report errors, so the flag must be there. */
		assert_int_equal(r.req.opcode, store_ops[i]);
	}
	for (size_t i = 0; i < sizeof(cat_ops); i++) {
		size_t n = put_req(buf, cat_ops[i], 0, 3, 2, 3);
		struct parsed r = parse(buf, n, 1);

		assert_int_equal(r.res, KITE_PARSE_ERR_REPLY);
		assert_int_equal(r.status, KITE_STATUS_E2BIG);
	}
	/* A zero limit still admits empty values. */
	size_t n = put_req(buf, KITE_OP_SET, 8, 3, 0, 3);
	struct parsed r = parse(buf, n, 0);
	assert_int_equal(r.res, KITE_PARSE_OK);
}

static void
test_parse_unknown_opcodes(void **state)
{
	(void)state;
	for (unsigned int op = 0; op < 256; op++) {
		if (find_op(op) != NULL)
			continue;
		/* A body of each kind, all of which must be skipped. */
		size_t n = put_req(buf, (uint8_t)op, 4, 2, 3, op);
		size_t m = put_req(buf + n, KITE_OP_NOOP, 0, 0, 0, 1000);
		struct parsed r = parse(buf, n + m, 0);

		assert_int_equal(r.res, KITE_PARSE_ERR_REPLY);
		assert_int_equal(r.status, KITE_STATUS_UNKNOWN_COMMAND);
		assert_int_equal(r.consumed, n);
		assert_int_equal(r.req.opcode, op);
		assert_int_equal(r.req.opaque, op);
		assert_int_equal(r.req.cmd, KITE_CMD_UNKNOWN);
		r = parse(buf + n, m, 0);
		assert_int_equal(r.res, KITE_PARSE_OK);
		assert_int_equal(r.req.opaque, 1000);
	}
}

/* One request shape that memcached rejects with EINVAL. */
struct bad_case {
	uint8_t opcode;
	uint8_t extlen;
	uint16_t keylen;
	uint32_t vallen;
};

static const struct bad_case bad_lengths[] = {
	/* GET family: no extras, a key, no value. */
	{ KITE_OP_GET, 4, 3, 0 },
	{ KITE_OP_GET, 0, 0, 0 },
	{ KITE_OP_GET, 0, 3, 1 },
	{ KITE_OP_GETQ, 0, 0, 0 },
	{ KITE_OP_GETK, 8, 3, 0 },
	{ KITE_OP_GETKQ, 0, 3, 2 },
	/* SET family: exactly 8 bytes of extras and a key. */
	{ KITE_OP_SET, 0, 3, 5 },
	{ KITE_OP_SET, 4, 3, 5 },
	{ KITE_OP_SET, 12, 3, 5 },
	{ KITE_OP_SET, 8, 0, 5 },
	{ KITE_OP_SETQ, 0, 3, 0 },
	{ KITE_OP_ADD, 8, 0, 0 },
	{ KITE_OP_ADDQ, 4, 3, 0 },
	{ KITE_OP_REPLACE, 8, 0, 1 },
	{ KITE_OP_REPLACEQ, 20, 3, 1 },
	/* APPEND/PREPEND: no extras, a key. */
	{ KITE_OP_APPEND, 8, 3, 2 },
	{ KITE_OP_APPEND, 0, 0, 2 },
	{ KITE_OP_APPENDQ, 4, 3, 2 },
	{ KITE_OP_PREPEND, 0, 0, 0 },
	{ KITE_OP_PREPENDQ, 8, 3, 0 },
	/* DELETE: no extras, a key, no value. */
	{ KITE_OP_DELETE, 0, 3, 1 },
	{ KITE_OP_DELETE, 4, 3, 0 },
	{ KITE_OP_DELETE, 0, 0, 0 },
	{ KITE_OP_DELETEQ, 0, 0, 0 },
	/* INCR/DECR: 20 bytes of extras, a key, no value. */
	{ KITE_OP_INCREMENT, 8, 3, 0 },
	{ KITE_OP_INCREMENT, 0, 3, 0 },
	{ KITE_OP_INCREMENT, 20, 3, 1 },
	{ KITE_OP_INCREMENT, 20, 0, 0 },
	{ KITE_OP_INCREMENTQ, 24, 3, 0 },
	{ KITE_OP_DECREMENT, 20, 0, 0 },
	{ KITE_OP_DECREMENTQ, 20, 3, 8 },
	/* TOUCH/GAT: 4 bytes of extras, a key, no value. */
	{ KITE_OP_TOUCH, 0, 3, 0 },
	{ KITE_OP_TOUCH, 8, 3, 0 },
	{ KITE_OP_TOUCH, 4, 0, 0 },
	{ KITE_OP_TOUCH, 4, 3, 24 },
	{ KITE_OP_GAT, 4, 0, 0 },
	{ KITE_OP_GATQ, 0, 3, 0 },
	{ KITE_OP_GATK, 4, 3, 1 },
	{ KITE_OP_GATKQ, 8, 3, 0 },
	/* NOOP, VERSION, QUIT: nothing at all. */
	{ KITE_OP_NOOP, 0, 1, 0 },
	{ KITE_OP_NOOP, 4, 0, 0 },
	{ KITE_OP_NOOP, 0, 0, 1 },
	{ KITE_OP_VERSION, 0, 1, 0 },
	{ KITE_OP_VERSION, 0, 0, 6 },
	{ KITE_OP_QUIT, 4, 0, 0 },
	{ KITE_OP_QUITQ, 0, 1, 0 },
	{ KITE_OP_QUITQ, 0, 0, 1 },
	/* FLUSH: optional 4-byte exptime only. */
	{ KITE_OP_FLUSH, 8, 0, 0 },
	{ KITE_OP_FLUSH, 1, 0, 0 },
	{ KITE_OP_FLUSH, 0, 1, 0 },
	{ KITE_OP_FLUSH, 0, 0, 4 },
	{ KITE_OP_FLUSHQ, 4, 0, 1 },
	/* STAT: an optional group name only. */
	{ KITE_OP_STAT, 4, 0, 0 },
	{ KITE_OP_STAT, 0, 5, 1 },
	{ KITE_OP_STAT, 0, 0, 24 },
};

static void
test_parse_bad_lengths(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_lengths) / sizeof(bad_lengths[0]); i++) {
		const struct bad_case *bc = &bad_lengths[i];
		size_t n =
			put_req(buf, bc->opcode, bc->extlen, bc->keylen, bc->vallen, (uint32_t)i);
		size_t m = put_req(buf + n, KITE_OP_NOOP, 0, 0, 0, 1000);
		struct parsed r = parse(buf, n + m, 1024);

		if (r.res != KITE_PARSE_ERR_REPLY || r.status != KITE_STATUS_EINVAL)
			print_message("bad_lengths[%zu]: opcode 0x%02x ext %u key %u val %u\n", i,
				      bc->opcode, bc->extlen, bc->keylen, bc->vallen);
		assert_int_equal(r.res, KITE_PARSE_ERR_REPLY);
		assert_int_equal(r.status, KITE_STATUS_EINVAL);
		assert_int_equal(r.consumed, n);
		assert_int_equal(r.req.opcode, bc->opcode);
		assert_int_equal(r.req.opaque, i);
		/* The next request is still found. */
		r = parse(buf + n, m, 0);
		assert_int_equal(r.res, KITE_PARSE_OK);
		assert_int_equal(r.req.cmd, KITE_CMD_NOOP);
	}
}

/*
 * Deterministic garbage, for builds without the fuzzer: every walk must end,
 * advance on each step and stay inside the buffer.
 */
static void
test_parse_garbage(void **state)
{
	uint32_t x = 12345;

	(void)state;
	for (unsigned int round = 0; round < 20000; round++) {
		size_t len = 0, off = 0, steps = 0;

		x = x * 1103515245u + 12345u;
		len = (x >> 16) % 200;
		for (size_t i = 0; i < len; i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (uint8_t)(x >> 16);
		}
		/* Most rounds get a request magic so the length checks are reached. */
		if (len > 0 && round % 4 != 0)
			buf[0] = KITE_MAGIC_REQ;
		for (;;) {
			struct parsed r = parse(buf + off, len - off, (uint32_t)round);

			assert_true(r.consumed <= len - off);
			if (r.res == KITE_PARSE_DROP || r.res == KITE_PARSE_ERR_STOP)
				break;
			assert_true(r.consumed >= KITE_BIN_HDR_LEN);
			off += r.consumed;
			steps++;
			/* Each loop eats at least a header, so a short buffer gives few steps. */
			assert_true(steps <= len / KITE_BIN_HDR_LEN);
		}
	}
}

/* ---- strings ----------------------------------------------------------- */

static void
test_status_str(void **state)
{
	(void)state;
	assert_string_equal(kite_proto_status_str(KITE_STATUS_KEY_ENOENT), "Not found");
	assert_string_equal(kite_proto_status_str(KITE_STATUS_KEY_EEXISTS), "Data exists for key.");
	assert_string_equal(kite_proto_status_str(KITE_STATUS_E2BIG), "Too large.");
	assert_string_equal(kite_proto_status_str(KITE_STATUS_EINVAL), "Invalid arguments");
	assert_string_equal(kite_proto_status_str(KITE_STATUS_NOT_STORED), "Not stored.");
	assert_string_equal(kite_proto_status_str(KITE_STATUS_DELTA_BADVAL),
			    "Non-numeric server-side value for incr or decr");
	assert_string_equal(kite_proto_status_str(KITE_STATUS_NOT_MY_VBUCKET),
			    "I'm not responsible for this vbucket");
	assert_string_equal(kite_proto_status_str(KITE_STATUS_UNKNOWN_COMMAND), "Unknown command");
	assert_string_equal(kite_proto_status_str(KITE_STATUS_ENOMEM), "Out of memory");
}

static void
test_drop_names(void **state)
{
	(void)state;
	assert_string_equal(kite_proto_drop_name(KITE_PROTO_DROP_NONE), "none");
	assert_string_equal(kite_proto_drop_name(KITE_PROTO_DROP_SHORT_FRAME), "short_frame");
	assert_string_equal(kite_proto_drop_name(KITE_PROTO_DROP_MULTI_DGRAM), "multi_datagram");
	assert_string_equal(kite_proto_drop_name(KITE_PROTO_DROP_EMPTY), "empty");
	assert_string_equal(kite_proto_drop_name(KITE_PROTO_DROP_TRUNC_HDR), "truncated_header");
	assert_string_equal(kite_proto_drop_name(KITE_PROTO_DROP_BAD_MAGIC), "bad_magic");
	assert_string_equal(kite_proto_drop_name(KITE_PROTO_DROP_RES_MAGIC), "response_magic");
}

/* ---- encoders and the response parser ---------------------------------- */

static void
test_write_res_hdr(void **state)
{
	uint8_t h[24];
	const uint8_t want[24] = { 0x81, 0x0c, 0x01, 0x02, 0x04, 0x00, 0x00, 0x81,
				   0x11, 0x22, 0x33, 0x44, 0xde, 0xad, 0xbe, 0xef,
				   0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };

	(void)state;
	kite_proto_write_res_hdr(h, KITE_OP_GETK, 0x0102, 4, KITE_STATUS_UNKNOWN_COMMAND,
				 0x11223344, 0xdeadbeef, UINT64_C(0x0102030405060708));
	assert_memory_equal(h, want, sizeof(want));
}

static void
test_write_req_hdr(void **state)
{
	uint8_t h[24];
	const uint8_t want[24] = { 0x80, 0x01, 0x00, 0x03, 0x08, 0x00, 0xab, 0xcd,
				   0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x07,
				   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09 };

	(void)state;
	kite_proto_write_req_hdr(h, KITE_OP_SET, 3, 8, 0xabcd, 14, 7, 9);
	assert_memory_equal(h, want, sizeof(want));
}

static void
test_build_req_layout(void **state)
{
	uint8_t ext[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	const uint8_t want[24 + 8 + 3 + 3] = {
		0x80, 0x01, 0x00, 0x03, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x00,
		0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 1,	2,
		3,    4,    5,	  6,	7,    8,    'f',  'o',	'o',  'b',  'a',  'r',
	};

	(void)state;
	int n = kite_proto_build_req(buf, BIG, KITE_OP_SET, 7, 9, ext, 8, "foo", 3, "bar", 3);
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
}

static void
test_parse_res_roundtrip(void **state)
{
	struct kite_res res;
	uint8_t *w = buf + 24;

	(void)state;
	kite_proto_write_res_hdr(buf, KITE_OP_GATK, 3, 4, KITE_STATUS_OK, 4 + 3 + 5, 0x99,
				 UINT64_C(77));
	memcpy(w, "\x00\x00\x00\x2a", 4);
	memcpy(w + 4, "key", 3);
	memcpy(w + 7, "value", 5);
	/* Trailing bytes belong to the next response and are not consumed. */
	int n = kite_proto_parse_res(buf, 24 + 12 + 10, &res);

	assert_int_equal(n, 36);
	assert_int_equal(res.opcode, KITE_OP_GATK);
	assert_int_equal(res.extlen, 4);
	assert_int_equal(res.keylen, 3);
	assert_int_equal(res.status, KITE_STATUS_OK);
	assert_int_equal(res.bodylen, 12);
	assert_int_equal(res.opaque, 0x99);
	assert_true(res.cas == 77);
	assert_ptr_equal(res.extras, w);
	assert_memory_equal(res.key, "key", 3);
	assert_memory_equal(res.value, "value", 5);
	assert_int_equal(res.vallen, 5);
}

static void
test_parse_res_memcached_bytes(void **state)
{
	/* memcached 1.6.18's reply to GET "foo" (flags 0, value "bar", opaque 8). */
	static const uint8_t wire[] = { 0x81, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
					0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x08,
					0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
					0x00, 0x00, 0x00, 0x00, 'b',  'a',  'r' };
	/* ... and to a GET carrying a 2-byte value (opaque 9): EINVAL, text body, cas 0. */
	static const uint8_t einval[] = { 0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
					  0x00, 0x00, 0x11, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00,
					  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 'I',  'n',  'v',
					  'a',	'l',  'i',  'd',  ' ',	'a',  'r',  'g',  'u',
					  'm',	'e',  'n',  't',  's' };
	struct kite_res res;
	uint8_t mine[sizeof(einval)];

	(void)state;
	assert_int_equal(kite_proto_parse_res(wire, sizeof(wire), &res), sizeof(wire));
	assert_int_equal(res.extlen, 4);
	assert_int_equal(res.keylen, 0);
	assert_int_equal(res.opaque, 8);
	assert_true(res.cas == 1);
	assert_int_equal(res.vallen, 3);
	assert_memory_equal(res.value, "bar", 3);

	/* Our error header plus our string reproduces memcached's bytes exactly. */
	const char *s = kite_proto_status_str(KITE_STATUS_EINVAL);
	kite_proto_write_res_hdr(mine, KITE_OP_GET, 0, 0, KITE_STATUS_EINVAL, (uint32_t)strlen(s),
				 9, 0);
	memcpy(mine + 24, s, strlen(s));
	assert_int_equal(24 + strlen(s), sizeof(einval));
	assert_memory_equal(mine, einval, sizeof(einval));
}

/* memcached's expiry rule, which the engine applies before the store sees a time. */
static void
test_exptime(void **state)
{
	const uint32_t now = 1700000000u;

	(void)state;
	assert_int_equal(kite_proto_exptime(0, now), 0);
	assert_int_equal(kite_proto_exptime(1, now), now + 1);
	assert_int_equal(kite_proto_exptime(KITE_REALTIME_MAXDELTA, now),
			 now + KITE_REALTIME_MAXDELTA);
	/* Beyond 30 days: an absolute time, future or past (then expired at once). */
	assert_int_equal(kite_proto_exptime(KITE_REALTIME_MAXDELTA + 1, now),
			 KITE_REALTIME_MAXDELTA + 1);
	assert_int_equal(kite_proto_exptime(now + 5, now), now + 5);
	assert_int_equal(kite_proto_exptime(now - 5, now), now - 5);
	/* A relative time past 2106 saturates instead of wrapping into the past. */
	assert_int_equal(kite_proto_exptime(100, UINT32_MAX - 10), UINT32_MAX);
	assert_int_equal(kite_proto_exptime(10, UINT32_MAX - 10), UINT32_MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_parse_null),
		cmocka_unit_test(test_parse_null),
		cmocka_unit_test(test_build_req_invalid),
		cmocka_unit_test(test_parse_res_invalid),
		cmocka_unit_test(test_write_null),
		cmocka_unit_test(test_names_out_of_range),
		cmocka_unit_test(test_frame_short),
		cmocka_unit_test(test_frame_ok),
		cmocka_unit_test(test_frame_multi),
		cmocka_unit_test(test_frame_write),
		cmocka_unit_test(test_cmd_table),
		cmocka_unit_test(test_parse_every_opcode),
		cmocka_unit_test(test_parse_get_family),
		cmocka_unit_test(test_parse_header_fields),
		cmocka_unit_test(test_parse_set_extras),
		cmocka_unit_test(test_parse_incr_extras),
		cmocka_unit_test(test_parse_touch_gat_extras),
		cmocka_unit_test(test_parse_flush_extras),
		cmocka_unit_test(test_parse_stat_group),
		cmocka_unit_test(test_parse_key_max),
		cmocka_unit_test(test_parse_value_at_limit),
		cmocka_unit_test(test_parse_pipeline),
		cmocka_unit_test(test_parse_empty_and_truncated),
		cmocka_unit_test(test_parse_bad_magic),
		cmocka_unit_test(test_parse_body_past_datagram),
		cmocka_unit_test(test_parse_body_short_of_datagram),
		cmocka_unit_test(test_parse_key_ext_past_body),
		cmocka_unit_test(test_parse_key_too_long),
		cmocka_unit_test(test_parse_value_too_big),
		cmocka_unit_test(test_parse_unknown_opcodes),
		cmocka_unit_test(test_parse_bad_lengths),
		cmocka_unit_test(test_parse_garbage),
		cmocka_unit_test(test_status_str),
		cmocka_unit_test(test_drop_names),
		cmocka_unit_test(test_write_res_hdr),
		cmocka_unit_test(test_write_req_hdr),
		cmocka_unit_test(test_build_req_layout),
		cmocka_unit_test(test_parse_res_roundtrip),
		cmocka_unit_test(test_parse_res_memcached_bytes),
		cmocka_unit_test(test_exptime),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
