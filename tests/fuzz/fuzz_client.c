/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libkite's reply path with untrusted datagrams: frames, reassembly,
 * responses matched to operations (values, counters, STAT lines, errors,
 * NOT_MY_VBUCKET, ETMPFAIL), the CLUSTER_MAP body and the warm-up fill
 * phases. A batch of mixed operations is in flight (its datagrams sent
 * to a port nobody serves); each input is a series of
 *   u8 which, u16 length (big-endian), length bytes
 * injected as reply datagrams to in-flight request `which`. Nothing may
 * crash, leak or hang; every operation ends by kite_close().
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kite/kite.h"
#include "kite_client_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kite_options o = { .seeds = "127.0.0.1:9", .timeout_ms = 60000, .lazy_map = 1 };
	struct kite_client *c;
	struct kite_op ops[6] = {
		{ .type = KITE_GET, .key = "alpha", .keylen = 5 },
		{ .type = KITE_SET, .key = "beta", .keylen = 4, .value = "v", .vallen = 1 },
		{ .type = KITE_INCR, .key = "gamma", .keylen = 5, .delta = 1 },
		{ .type = KITE_DELETE, .key = "delta", .keylen = 5 },
		{ .type = KITE_NODE_STATS, .node = KITE_NODE_SEED },
		{ .type = KITE_NODE_VERSION, .node = KITE_NODE_SEED },
	};
	size_t off = 0;

	if (kite_open(&c, &o) != KITE_OK)
		return 0;
	kite_submit(c, ops, 6);
	kite_progress(c, 0);
	while (off + 3 <= size) {
		unsigned int which = data[off];
		size_t n = (size_t)data[off + 1] << 8 | data[off + 2];

		off += 3;
		if (n > size - off)
			n = size - off;
		kite__inject(c, which, data + off, n);
		off += n;
		/* Send what the answers made due (retries, fills, the map's requests). */
		kite_progress(c, 0);
	}
	kite_close(c);
	for (int i = 0; i < 6; i++)
		kite_op_clear(&ops[i]);
	return 0;
}
