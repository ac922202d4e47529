/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_TOPO_H
#define KITE_TOPO_H

/**
 * @file
 * Where a key lives: key -> partition -> worker -> UDP port, the node's
 * limits (kite_limits.h) and the TOPOLOGY reply that publishes the layout.
 *
 * Everything here is public and computable by any client: the key ->
 * partition function is XXH64(key, seed 0) modulo the partition count;
 * partition p is owned by worker p % workers and served on UDP port
 * base + p, so a NIC that queues by destination port delivers each request
 * to its owner. No DPDK: the node, libkite, kite-cli, kite-bench and the
 * fuzzers all link it, and the cluster map will build on it.
 */

#include <stddef.h>
#include <stdint.h>

#include "kite_limits.h"

/**
 * The public key -> partition function:
 * XXH64(key, keylen, seed 0) modulo `partitions` (0 for 0 partitions).
 */
uint32_t kite_topo_key_partition(const void *key, uint16_t keylen, uint32_t partitions);

/**
 * The key hash both levels take their number from: XXH64(key, keylen, 0).
 * partition = hash mod partitions; in cluster mode vbucket = hash mod
 * vbuckets (lib/cluster), and as both are powers of two with partitions
 * dividing vbuckets, partition = vbucket mod partitions.
 */
uint64_t kite_topo_key_hash(const void *key, uint16_t keylen);

/** The partition layout of a node. */
struct kite_topo_map {
	uint32_t partitions; /**< total, all workers */
	uint16_t workers;
	uint16_t base_port;
};

/** Owner worker of partition p. */
static inline uint16_t
kite_topo_owner(const struct kite_topo_map *m, uint32_t p)
{
	return (uint16_t)(p % m->workers);
}

/** UDP port on which partition p is served. */
static inline uint16_t
kite_topo_port(const struct kite_topo_map *m, uint32_t p)
{
	return (uint16_t)(m->base_port + p);
}

/**
 * Check a map against the limits: 1..KITE_MAX_WORKERS workers, at least
 * one and at most KITE_MAX_PARTITIONS partitions, at most
 * KITE_MAX_PARTS_PER_WORKER per worker, every port below 65536.
 * @return 0 or -EINVAL.
 */
int kite_topo_map_check(const struct kite_topo_map *m);

/** Key hash functions a topology reply can name. */
#define KITE_TOPO_HASH_XXH64 1
/** Topology reply layout version. */
#define KITE_TOPO_VERSION 1
/** Fixed part of a topology reply body, before the per-partition entries. */
#define KITE_TOPO_HDR_LEN 16
/** Largest topology reply body. */
#define KITE_TOPO_REPLY_MAX (KITE_TOPO_HDR_LEN + 4 * KITE_MAX_PARTITIONS)

/**
 * The node's partition layout, as carried by a TOPOLOGY reply body
 * (big-endian):
 *   offset 0  u8  version (1)
 *   offset 1  u8  key hash function (1 = XXH64)
 *   offset 2  u16 partitions
 *   offset 4  u16 workers
 *   offset 6  u16 base UDP port
 *   offset 8  u64 key hash seed (0)
 *   offset 16 partitions x { u16 UDP port, u16 worker }
 */
struct kite_topology {
	uint8_t version;
	uint8_t hash;
	uint16_t partitions;
	uint16_t workers;
	uint16_t base_port;
	uint64_t seed;
	uint16_t port[KITE_MAX_PARTITIONS];   /**< UDP port of partition p */
	uint16_t worker[KITE_MAX_PARTITIONS]; /**< worker (queue) that owns partition p */
};

/** Describe map m as a topology (version, hash and seed of today's layout). @return 0 or -EINVAL.
 */
int kite_topo_from_map(const struct kite_topo_map *m, struct kite_topology *t);

/** Encode t into out[0..cap). @return bytes written or -ENOSPC / -EINVAL. */
int kite_topo_write(uint8_t *out, size_t cap, const struct kite_topology *t);

/** Decode a TOPOLOGY reply body. @return 0 or -EINVAL. */
int kite_topo_parse(const uint8_t *p, size_t len, struct kite_topology *t);

#endif /* KITE_TOPO_H */
