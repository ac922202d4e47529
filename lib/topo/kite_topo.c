/* SPDX-License-Identifier: BSD-3-Clause */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include <xxhash.h>

#include "kite_topo.h"

uint32_t
kite_topo_key_partition(const void *key, uint16_t keylen, uint32_t partitions)
{
	if (partitions == 0 || (key == NULL && keylen > 0))
		return 0;
	return (uint32_t)(XXH64(key, keylen, 0) % partitions);
}

uint64_t
kite_topo_key_hash(const void *key, uint16_t keylen)
{
	return key == NULL ? 0 : XXH64(key, keylen, 0);
}

int
kite_topo_map_check(const struct kite_topo_map *m)
{
	if (m == NULL || m->workers == 0 || m->workers > KITE_MAX_WORKERS || m->partitions == 0 ||
	    m->partitions > KITE_MAX_PARTITIONS ||
	    (m->partitions + m->workers - 1) / m->workers > KITE_MAX_PARTS_PER_WORKER ||
	    (uint32_t)m->base_port + m->partitions - 1 > UINT16_MAX)
		return -EINVAL;
	return 0;
}

int
kite_topo_from_map(const struct kite_topo_map *m, struct kite_topology *t)
{
	if (t == NULL || kite_topo_map_check(m) != 0)
		return -EINVAL;
	memset(t, 0, offsetof(struct kite_topology, port));
	t->version = KITE_TOPO_VERSION;
	t->hash = KITE_TOPO_HASH_XXH64;
	t->partitions = (uint16_t)m->partitions;
	t->workers = m->workers;
	t->base_port = m->base_port;
	for (uint32_t p = 0; p < m->partitions; p++) {
		t->port[p] = kite_topo_port(m, p);
		t->worker[p] = kite_topo_owner(m, p);
	}
	return 0;
}

/* The wire is big-endian; these read and write it at any alignment. */
static void
put16(uint8_t *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, sizeof(v));
}

static void
put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, sizeof(v));
}

static uint16_t
get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return be16toh(v);
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return be64toh(v);
}

int
kite_topo_write(uint8_t *out, size_t cap, const struct kite_topology *t)
{
	size_t need;

	if (out == NULL || t == NULL || t->partitions == 0 || t->partitions > KITE_MAX_PARTITIONS)
		return -EINVAL;
	need = KITE_TOPO_HDR_LEN + (size_t)t->partitions * 4;
	if (cap < need)
		return -ENOSPC;
	out[0] = t->version;
	out[1] = t->hash;
	put16(out + 2, t->partitions);
	put16(out + 4, t->workers);
	put16(out + 6, t->base_port);
	put64(out + 8, t->seed);
	for (uint16_t p = 0; p < t->partitions; p++) {
		put16(out + KITE_TOPO_HDR_LEN + 4 * p, t->port[p]);
		put16(out + KITE_TOPO_HDR_LEN + 4 * p + 2, t->worker[p]);
	}
	return (int)need;
}

int
kite_topo_parse(const uint8_t *p, size_t len, struct kite_topology *t)
{
	if (p == NULL || t == NULL || len < KITE_TOPO_HDR_LEN)
		return -EINVAL;
	t->version = p[0];
	t->hash = p[1];
	t->partitions = get16(p + 2);
	t->workers = get16(p + 4);
	t->base_port = get16(p + 6);
	t->seed = get64(p + 8);
	if (t->version != KITE_TOPO_VERSION || t->partitions == 0 ||
	    t->partitions > KITE_MAX_PARTITIONS || t->workers == 0 ||
	    len != KITE_TOPO_HDR_LEN + (size_t)t->partitions * 4)
		return -EINVAL;
	for (uint16_t i = 0; i < t->partitions; i++) {
		t->port[i] = get16(p + KITE_TOPO_HDR_LEN + 4 * i);
		t->worker[i] = get16(p + KITE_TOPO_HDR_LEN + 4 * i + 2);
	}
	return 0;
}
