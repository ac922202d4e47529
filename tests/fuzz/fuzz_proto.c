/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for the frame and binary-protocol codec.
 *
 * Each input is one whole datagram, walked the way the engine walks it:
 * frame, then requests until the datagram ends or the parser says stop or
 * drop. Beyond "no crash, no out-of-bounds read" (ASan/UBSan's job) it
 * checks the contract the engine relies on and aborts when it breaks: the
 * walk always advances, never past the datagram, and an accepted request
 * re-encodes to the very bytes it was parsed from. The same bytes also go
 * through the response parser that clients and tests use, and through the
 * TOPOLOGY reply parser (lib/topo), whose accepted input must re-encode
 * byte for byte.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kite_proto.h"
#include "kite_topo.h"

/* Large enough for any request that fits libFuzzer's maximum input. */
#define REBUILD_MAX (KITE_BIN_HDR_LEN + 255 + 65535 + (1 << 20))

static uint8_t rebuilt[REBUILD_MAX];

/* Reading every byte of key and value makes ASan vouch for their bounds. */
static uint32_t
touch(const uint8_t *p, size_t n)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += p[i];
	return sum;
}

static void
check(int cond)
{
	if (!cond)
		abort();
}

static void
check_ok_request(const uint8_t *p, size_t len, const struct kite_req *r, size_t consumed)
{
	volatile uint32_t sink;

	check(consumed == KITE_BIN_HDR_LEN + (size_t)r->bodylen);
	check(r->cmd != KITE_CMD_UNKNOWN);
	check(r->keylen <= KITE_KEY_MAX);
	check((size_t)r->extlen + r->keylen + r->vallen == r->bodylen);
	check(r->key == p + KITE_BIN_HDR_LEN + r->extlen);
	check(r->value == r->key + r->keylen);
	check((size_t)(r->value + r->vallen - p) <= len);
	sink = touch(r->key, r->keylen) + touch(r->value, r->vallen);
	(void)sink;

	check(kite_topo_key_partition(r->key, r->keylen, 7) < 7);

	if (consumed > sizeof(rebuilt))
		return;
	int n = kite_proto_build_req(rebuilt, sizeof(rebuilt), r->opcode, r->opaque, r->cas,
				     p + KITE_BIN_HDR_LEN, r->extlen, r->key, r->keylen, r->value,
				     r->vallen);
	check(n >= 0 && (size_t)n == consumed);
	/* Bytes 5-7 are datatype and vbucket, which build_req always writes as 0. */
	check(memcmp(rebuilt, p, 5) == 0);
	check(memcmp(rebuilt + 8, p + 8, consumed - 8) == 0);
}

static void
walk_requests(const uint8_t *data, size_t size, const struct kite_proto_frame *f)
{
	/* The frame's reserved field picks the value limit, so E2BIG gets explored too. */
	uint32_t max_value = f->reserved != 0 ? f->reserved : 1u << 20;
	size_t off = KITE_FRAME_HDR_LEN;
	struct kite_req req;
	size_t consumed;
	uint8_t status, drop;

	for (;;) {
		size_t left = size - off;
		enum kite_parse_result res = kite_proto_parse(data + off, left, max_value, &req,
							      &consumed, &status, &drop);

		check(consumed <= left);
		check(strlen(kite_proto_status_str(status)) < 64);
		check(kite_proto_drop_name((enum kite_proto_drop)drop)[0] != '\0');
		switch (res) {
		case KITE_PARSE_OK:
			check(status == KITE_STATUS_OK && drop == KITE_PROTO_DROP_NONE);
			check_ok_request(data + off, left, &req, consumed);
			break;
		case KITE_PARSE_ERR_REPLY:
			check(status != KITE_STATUS_OK && drop == KITE_PROTO_DROP_NONE);
			check(consumed == KITE_BIN_HDR_LEN + (size_t)req.bodylen);
			break;
		case KITE_PARSE_ERR_STOP:
			check(status != KITE_STATUS_OK && drop == KITE_PROTO_DROP_NONE);
			return;
		case KITE_PARSE_DROP:
			check(drop != KITE_PROTO_DROP_NONE && drop < KITE_PROTO_DROP_MAX);
			check((left == 0) == (drop == KITE_PROTO_DROP_EMPTY));
			return;
		default:
			abort();
		}
		/* A request that consumed nothing would spin the engine forever. */
		check(consumed >= KITE_BIN_HDR_LEN);
		off += consumed;
	}
}

static void
walk_responses(const uint8_t *p, size_t len)
{
	struct kite_res res;
	volatile uint32_t sink;

	for (;;) {
		int n = kite_proto_parse_res(p, len, &res);

		if (n < 0)
			return;
		check(n >= KITE_BIN_HDR_LEN && (size_t)n <= len);
		check((size_t)res.extlen + res.keylen + res.vallen == res.bodylen);
		sink = touch(res.extras, res.extlen) + touch(res.key, res.keylen) +
		       touch(res.value, res.vallen);
		(void)sink;
		p += n;
		len -= (size_t)n;
	}
}

static void
walk_topology(const uint8_t *p, size_t len)
{
	static struct kite_topology t;
	static uint8_t out[KITE_TOPO_REPLY_MAX];

	if (kite_topo_parse(p, len, &t) != 0)
		return;
	check(t.partitions > 0 && t.partitions <= KITE_MAX_PARTITIONS && t.workers > 0);
	check(kite_topo_write(out, sizeof(out), &t) == (int)len);
	check(memcmp(out, p, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kite_proto_frame f;

	/* libFuzzer passes a real buffer even for empty inputs; be sure anyway. */
	if (data == NULL)
		return 0;
	int rc = kite_proto_frame_parse(data, size, &f);

	check(rc == 0 || rc == KITE_PROTO_DROP_SHORT_FRAME || rc == KITE_PROTO_DROP_MULTI_DGRAM);
	check((rc == KITE_PROTO_DROP_SHORT_FRAME) == (size < KITE_FRAME_HDR_LEN));
	if (rc == 0)
		walk_requests(data, size, &f);

	/* Responses both with and without the frame in front. */
	walk_responses(data, size);
	if (size >= KITE_FRAME_HDR_LEN)
		walk_responses(data + KITE_FRAME_HDR_LEN, size - KITE_FRAME_HDR_LEN);
	walk_topology(data, size);
	return 0;
}
