/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <string.h>

#include "kite_cluster.h"

/*
 * CLUSTER_MAP reply body, big-endian:
 *   u8 version, u8 copies, u16 member count, u32 vbuckets, u64 epoch,
 *   u8 replicas, u8 and u16 reserved (0), then per member:
 *   u8 id length, id, u8 zone length, zone, u32 ip, u16 base port,
 *   u16 partitions, u32 weight, u8 state.
 */

static uint8_t *
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *
put32(uint8_t *p, uint32_t v)
{
	return put16(put16(p, (uint16_t)(v >> 16)), (uint16_t)v);
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

int
kite_cluster_msg_encode(const struct kite_cluster_map *m, uint8_t *buf, size_t len)
{
	uint8_t *p = buf, *end = buf + len;

	if (len < 20)
		return -ENOSPC;
	*p++ = KITE_CLUSTER_MSG_VERSION;
	*p++ = m->copies;
	p = put16(p, m->n_members);
	p = put32(p, m->vbuckets);
	p = put32(put32(p, (uint32_t)(m->epoch >> 32)), (uint32_t)m->epoch);
	*p++ = m->replicas;
	*p++ = 0;
	p = put16(p, 0);
	for (unsigned int i = 0; i < m->n_members; i++) {
		const struct kite_cluster_member *mb = &m->members[i];
		size_t il = strlen(mb->id), zl = strlen(mb->zone);

		if ((size_t)(end - p) < 2 + il + zl + 13)
			return -ENOSPC;
		*p++ = (uint8_t)il;
		memcpy(p, mb->id, il);
		p += il;
		*p++ = (uint8_t)zl;
		memcpy(p, mb->zone, zl);
		p += zl;
		p = put32(p, mb->ip);
		p = put16(p, mb->base_port);
		p = put16(p, mb->partitions);
		p = put32(p, mb->weight);
		*p++ = mb->state;
	}
	return (int)(p - buf);
}

int
kite_cluster_msg_decode(const uint8_t *buf, size_t len, struct kite_cluster_msg *out)
{
	const uint8_t *p = buf, *end = buf + len;

	memset(out, 0, sizeof(*out));
	if (len < 20 || p[0] != KITE_CLUSTER_MSG_VERSION)
		return -EINVAL;
	out->copies = p[1];
	out->n_members = get16(p + 2);
	out->vbuckets = get32(p + 4);
	out->epoch = (uint64_t)get32(p + 8) << 32 | get32(p + 12);
	out->replicas = p[16];
	p += 20;
	if (out->copies == 0 || out->copies > KITE_CLUSTER_MAX_COPIES ||
	    out->replicas >= out->copies || out->n_members == 0 ||
	    out->n_members > KITE_CLUSTER_MAX_MEMBERS || out->vbuckets < KITE_CLUSTER_MIN_VBUCKETS ||
	    out->vbuckets > KITE_CLUSTER_MAX_VBUCKETS || (out->vbuckets & (out->vbuckets - 1)) != 0)
		return -EINVAL;
	for (unsigned int i = 0; i < out->n_members; i++) {
		struct kite_cluster_member *mb = &out->members[i];
		size_t il, zl;

		if (p >= end || (il = *p++) == 0 || il > KITE_CLUSTER_ID_MAX || (size_t)(end - p) < il)
			return -EINVAL;
		memcpy(mb->id, p, il);
		p += il;
		if (p >= end || (zl = *p++) > KITE_CLUSTER_ZONE_MAX || (size_t)(end - p) < zl + 13)
			return -EINVAL;
		memcpy(mb->zone, p, zl);
		p += zl;
		mb->ip = get32(p);
		mb->base_port = get16(p + 4);
		mb->partitions = get16(p + 6);
		mb->weight = get32(p + 8);
		mb->state = p[12];
		p += 13;
		if (memchr(mb->id, '\0', il) != NULL || memchr(mb->zone, '\0', zl) != NULL ||
		    kite_cluster_member_check(mb) != 0 || out->vbuckets % mb->partitions != 0)
			return -EINVAL;
	}
	return p == end ? 0 : -EINVAL;
}
