/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: any bytes as a request datagram through the engine and
 * real store partitions, then a fixed probe datagram that must be answered
 * exactly (nothing a datagram does may disturb the next one), and the
 * partition invariants must hold.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kite_engine.h"
#include "kite_test.h"

#define NPARTS 2

static struct kite_store *parts[NPARTS];
static struct kite_engine_stats wstats;
static struct kite_engine *engine;
/* The same partitions behind an engine with every data-path step off (kited --ablate). */
static struct kite_engine *engine_ablated;
static uint8_t bufs[1100][1472];
static unsigned int nbufs;
static uint8_t last[1472];
static uint16_t last_len;
static uint32_t now = 1800000000u;
static uint64_t sent_ip; /* IP bytes of the replies to the datagram being run */

static uint8_t *
f_alloc(void *arg, unsigned int idx)
{
	(void)arg;
	return idx < 1100 ? bufs[idx] : NULL;
}

static void
f_done(void *arg, unsigned int n, uint8_t *const *b, const uint16_t *lens, bool inplace)
{
	(void)arg;
	if (n == 0 || lens[0] > sizeof(last) || lens[n - 1] > 1472)
		abort();
	/* The first reply is the request's own buffer exactly when the engine says so. */
	if (inplace == (b[0] == bufs[0]))
		abort();
	nbufs = n;
	for (unsigned int i = 0; i < n; i++)
		sent_ip += lens[i] + 28u;
	memcpy(last, b[0], lens[0]);
	last_len = lens[0];
}

/* The text relay (kite_engine_relay): two workers over the same partitions. */
static struct kite_engine *relay_eng[2];
static uint8_t *carried[1100];
static uint16_t carried_len[1100];
static unsigned int ncarried;

static void
f_carry(void *arg, unsigned int n, uint8_t *const *b, const uint16_t *lens)
{
	(void)arg;
	if (n == 0 || n > 1100)
		abort();
	for (unsigned int i = 0; i < n; i++) {
		/* Carried buffers are the ones handed out, in order. */
		if (b[i] != bufs[i] && !(i == 0 && n == 1))
			abort();
		carried[i] = b[i];
		carried_len[i] = lens[i];
	}
	ncarried = n;
}

static void
f_resume(void *arg, unsigned int n, uint8_t **b, uint16_t *lens)
{
	(void)arg;
	/* The engine takes back exactly what it carried. */
	if (n != ncarried)
		abort();
	for (unsigned int i = 0; i < n; i++) {
		b[i] = carried[i];
		lens[i] = carried_len[i];
	}
	ncarried = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct kite_store_params p;
	struct kite_engine_conf c;
	char name[16];

	(void)argc;
	(void)argv;
	if (kite_test_eal_init("fuzz_engine") != 0)
		abort();
	for (int i = 0; i < NPARTS; i++) {
		memset(&p, 0, sizeof(p));
		snprintf(name, sizeof(name), "fz%d", i);
		p.name = name;
		p.mem_bytes = 256 << 10;
		p.max_item_size = 4096;
		p.id = (uint16_t)i;
		parts[i] = kite_store_create(&p);
		if (parts[i] == NULL)
			abort();
	}
	memset(&c, 0, sizeof(c));
	c.map.partitions = NPARTS;
	c.map.workers = 1;
	c.map.base_port = 11211;
	c.parts = parts;
	c.max_item_size = 4096;
	c.max_payload = 1472;
	c.stats = &wstats;
	c.out.alloc = f_alloc;
	c.out.done = f_done;
	engine = kite_engine_create(&c, 0);
	c.no_bulk = c.no_prefetch = c.no_inplace = true;
	engine_ablated = kite_engine_create(&c, 0);
	if (engine == NULL || engine_ablated == NULL)
		abort();
	c.no_bulk = c.no_prefetch = c.no_inplace = false;
	c.map.workers = 2;
	c.out.carry = f_carry;
	c.out.resume = f_resume;
	for (uint16_t w = 0; w < 2; w++) {
		c.self = w;
		relay_eng[w] = kite_engine_create(&c, 0);
		if (relay_eng[w] == NULL)
			abort();
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t copy[65536];
	/* frame(id 0x4b49) + NOOP opaque 0x600dd00d */
	static const uint8_t probe[] = {
		0x4b, 0x49, 0, 0, 0, 1, 0, 0, 0x80, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x60, 0x0d, 0xd0, 0x0d, 0, 0, 0, 0, 0, 0, 0, 0,
	};
	struct kite_engine_dgram d;

	if (size > sizeof(copy))
		return 0;
	/* The engine may answer in place, so it gets a writable copy. */
	memcpy(copy, data, size);
	/* One input in three goes through the engine with the data-path steps off. */
	struct kite_engine *e = size % 3 == 2 ? engine_ablated : engine;

	kite_engine_set_time(e, now++);
	d = (struct kite_engine_dgram){ copy, (uint32_t)size, true, size > 0 && size & 1, NULL };
	/*
	 * One input in four as the guard would hand it from an unvalidated
	 * source: the amplification bound (its IP bytes), a work budget, some
	 * commands denied, a key prefix. The replies must stay within the bound.
	 */
	if (size % 4 == 1 && size >= 12) {
		d.budget = (uint32_t)size + 28;
		d.work = 64;
		d.deny = (uint32_t)data[size - 1] << 8;
		d.ns = data[size - 2] % 3 == 1 ? 1 : 0;
		d.prefix = (const uint8_t *)"k";
		d.prefix_len = 1;
		/* Some as af_packet cut them: only the first header may be read. */
		d.truncated = data[size - 3] % 4 == 0;
	}
	nbufs = 0;
	sent_ip = 0;
	if (size % 5 == 3) {
		/*
		 * Through two workers as kited relays text (binary goes to one
		 * worker and skips the other's keys): each hop makes progress,
		 * the reply goes out once, within the bound.
		 */
		unsigned int w = size % 2, hops = 0;

		ncarried = 0;
		d.inplace = false;
		for (;;) {
			kite_engine_set_time(relay_eng[w], now);
			kite_engine_parse(relay_eng[w], &d);
			kite_engine_execute(relay_eng[w]);
			if (d.relay_to < 0)
				break;
			if ((unsigned int)d.relay_to == w || d.relay_to > 1 || ++hops > 70000)
				abort();
			w = (unsigned int)d.relay_to;
			d.home = false;
		}
		if (ncarried != 0)
			abort(); /* a carried reply was never sent */
	} else {
		kite_engine_process(e, &d, 1);
	}
	if (d.budget != 0 && sent_ip > d.budget)
		abort();

	memcpy(copy, probe, sizeof(probe));
	d = (struct kite_engine_dgram){ copy, sizeof(probe), true, false, NULL };
	nbufs = 0;
	kite_engine_process(engine, &d, 1);
	if (nbufs != 1 || last_len != 8 + 24 || last[0] != 0x4b || last[1] != 0x49 ||
	    last[8] != 0x81 || last[9] != 0x0a || last[14] != 0 || last[15] != 0 ||
	    memcmp(last + 20, probe + 20, 4) != 0)
		abort();
	return 0;
}
