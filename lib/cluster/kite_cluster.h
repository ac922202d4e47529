/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_CLUSTER_H
#define KITE_CLUSTER_H

/**
 * @file
 * The cluster map as a pure function: members -> vbucket -> ordered node
 * list (owner first, then replica candidates). No I/O, no DPDK, no clock:
 * kited's control thread, libkite and the tests compute the same map from
 * the same member list, bit for bit (integer arithmetic only).
 *
 * The hash chain is public: vbucket = XXH64(key, seed 0) mod vbuckets; in
 * cluster mode the partition inside a node is vbucket mod partitions
 * (partitions divides vbuckets, both powers of two, so this equals
 * XXH64 mod partitions: one hash serves both levels).
 *
 * Placement (docs/cluster.rst, "The map"): weighted rendezvous hashing
 * with bounded loads. Every (vbucket, member) pair has a score
 * -log2(u)/weight, u uniform from XXH64(vbucket, member seed); pairs are
 * taken in score order, and a member takes a vbucket while it is under
 * its cap, KITE_CLUSTER_CAP_PERMILLE/1000 of its weighted fair share. Pure
 * HRW moves only what must move but balances badly with few vbuckets per
 * member; the cap bounds the imbalance and, with the default 65,536
 * vbuckets, costs a few percent of extra movement at 64 members.
 */

#include <stddef.h>
#include <stdint.h>

/** Members of one cluster (member indexes are one byte; 0xff is none). */
#define KITE_CLUSTER_MAX_MEMBERS 255
/** "No node" in a vbucket's list. */
#define KITE_CLUSTER_NONE 0xff
/** Nodes listed per vbucket: the owner and up to three replica candidates. */
#define KITE_CLUSTER_MAX_COPIES 4
/** vbucket counts: powers of two in this range. */
#define KITE_CLUSTER_MIN_VBUCKETS 1024u
#define KITE_CLUSTER_MAX_VBUCKETS (1u << 20)
#define KITE_CLUSTER_DEFAULT_VBUCKETS 65536u
/** A member's cap: this many thousandths of its weighted fair share. */
#define KITE_CLUSTER_CAP_PERMILLE 1045u
/** Lengths of a member's id and zone, without the terminating NUL. */
#define KITE_CLUSTER_ID_MAX 63
#define KITE_CLUSTER_ZONE_MAX 31
/** Member weights. */
#define KITE_CLUSTER_MAX_WEIGHT 10000u

/** A member's state in the membership record. */
enum kite_cluster_state {
	KITE_CLUSTER_ACTIVE = 0, /**< owns vbuckets */
	/**
	 * Being filled: where it would own a vbucket it is listed second (its
	 * replica) behind the member that owns it now, until it turns active.
	 */
	KITE_CLUSTER_JOINING,
	KITE_CLUSTER_LEAVING,    /**< listed, owns nothing: handing over */
	KITE_CLUSTER_STATE_MAX,
};

/** One member as the membership record describes it. */
struct kite_cluster_member {
	char id[KITE_CLUSTER_ID_MAX + 1];     /**< node-id, unique in the cluster */
	char zone[KITE_CLUSTER_ZONE_MAX + 1]; /**< failure domain; "" = none */
	uint32_t weight;                      /**< 1..KITE_CLUSTER_MAX_WEIGHT */
	uint32_t ip;                          /**< data address, host order */
	uint16_t base_port;                   /**< partition p on base_port + p */
	uint16_t partitions;                  /**< power of two, divides vbuckets */
	uint8_t state;                        /**< enum kite_cluster_state */
	uint16_t admin_port;                  /**< its admin endpoint (HTTP), 0: none */
	uint32_t admin_ip;                    /**< host order, with admin_port */
};

/** A computed map. Members are sorted by id; the tables index them. */
struct kite_cluster_map {
	uint64_t epoch;    /**< only grows; given by the membership source */
	uint32_t vbuckets; /**< power of two */
	uint16_t n_members;
	uint8_t copies; /**< nodes listed per vbucket (1..KITE_CLUSTER_MAX_COPIES) */
	/**
	 * Replicas per vbucket (0..copies - 1): the first this many nodes after
	 * the owner hold its stream and serve reads. Set by the membership
	 * source after kite_cluster_map_build(); carried in CLUSTER_MAP.
	 */
	uint8_t replicas;
	struct kite_cluster_member *members;
	/** vbuckets x copies member indexes, owner first; KITE_CLUSTER_NONE pads. */
	uint8_t *nodes;
};

/** The public key -> vbucket function: XXH64(key, keylen, 0) mod vbuckets. */
uint32_t kite_cluster_vbucket(const void *key, uint16_t keylen, uint32_t vbuckets);

/**
 * Check one member record: id of 1..63 printable characters without
 * '/', zone of at most 31, weight 1..KITE_CLUSTER_MAX_WEIGHT, partitions
 * a power of two, a state in range.
 * @return 0 or -EINVAL.
 */
int kite_cluster_member_check(const struct kite_cluster_member *mb);

/**
 * Compute the map of `n` members (any order; LEAVING ones are listed but
 * own nothing). vbuckets: a power of two in range, divisible by every
 * member's partitions. copies: 1..KITE_CLUSTER_MAX_COPIES (the owner and
 * copies-1 replica candidates, other zones first).
 * @return 0; -EINVAL for bad arguments (a bad member, duplicate ids, no
 *   member that may own); -ENOMEM.
 */
int kite_cluster_map_build(struct kite_cluster_map *m, const struct kite_cluster_member *members,
			   unsigned int n, uint32_t vbuckets, unsigned int copies, uint64_t epoch);

/** Free what kite_cluster_map_build allocated (the struct itself is the caller's). */
void kite_cluster_map_free(struct kite_cluster_map *m);

/** The ordered node list of a vbucket: `copies` member indexes. */
static inline const uint8_t *
kite_cluster_nodes(const struct kite_cluster_map *m, uint32_t vbucket)
{
	return m->nodes + (size_t)vbucket * m->copies;
}

/** The owner (member index) of a vbucket. */
static inline uint8_t
kite_cluster_owner(const struct kite_cluster_map *m, uint32_t vbucket)
{
	return m->nodes[(size_t)vbucket * m->copies];
}

/** Index of the member with this id, or -1. */
int kite_cluster_find(const struct kite_cluster_map *m, const char *id);

/** vbuckets owned by each member: counts[n_members]. */
void kite_cluster_owned(const struct kite_cluster_map *m, uint32_t *counts);

/** Name of a state ("active", "joining", "leaving"), or NULL. */
const char *kite_cluster_state_name(unsigned int state);
/** State from its name, or -1. */
int kite_cluster_state_parse(const char *name);

/** CLUSTER_MAP reply layout version. */
#define KITE_CLUSTER_MSG_VERSION 1
/** Largest CLUSTER_MAP reply body (without the optional table): 255 full members. */
#define KITE_CLUSTER_MSG_MAX (20 + KITE_CLUSTER_MAX_MEMBERS * (2 + KITE_CLUSTER_ID_MAX + KITE_CLUSTER_ZONE_MAX + 13))

/**
 * Encode the CLUSTER_MAP reply body (docs/protocol.rst): version, epoch,
 * vbuckets, copies and the members, all big-endian; a client rebuilds the
 * table with kite_cluster_map_build() from the members (the placement is
 * a deterministic function of them).
 * @return bytes written, or -ENOSPC.
 */
int kite_cluster_msg_encode(const struct kite_cluster_map *m, uint8_t *buf, size_t len);

/** A decoded CLUSTER_MAP reply: the inputs of kite_cluster_map_build(). */
struct kite_cluster_msg {
	uint64_t epoch;
	uint32_t vbuckets;
	uint8_t copies;
	uint8_t replicas;
	uint16_t n_members;
	struct kite_cluster_member members[KITE_CLUSTER_MAX_MEMBERS];
};

/**
 * Decode a CLUSTER_MAP reply body (untrusted bytes): every length and
 * field is checked (kite_cluster_member_check, vbuckets and copies in
 * range). @return 0 or -EINVAL.
 */
int kite_cluster_msg_decode(const uint8_t *buf, size_t len, struct kite_cluster_msg *out);

#endif /* KITE_CLUSTER_H */
