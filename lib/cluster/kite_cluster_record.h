/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_CLUSTER_RECORD_H
#define KITE_CLUSTER_RECORD_H

/**
 * @file
 * The membership records as text: a member's record and the cluster's
 * configuration record as etcd stores them (JSON), and the static members
 * file (docs/cluster.rst). Parsers take untrusted bytes: every field is
 * checked, unknown fields are ignored (newer nodes may add some), and an
 * error says which field and why.
 */

#include <stddef.h>
#include <stdint.h>

#include "kite_cluster.h"

/** A cluster's configuration record: fixed when the cluster is created. */
struct kite_cluster_config {
	uint32_t vbuckets;   /**< power of two, KITE_CLUSTER_MIN..MAX_VBUCKETS */
	uint32_t copies;     /**< nodes listed per vbucket */
	uint32_t generation; /**< high half of every epoch in this etcd */
};

/**
 * A member record as JSON, e.g.
 * {"id":"n1","ip":"198.18.0.11","port":11211,"partitions":4,
 *  "weight":100,"zone":"a","state":"active","admin":"198.19.0.11:11280"}
 * ("admin", the node's admin endpoint, only when it has one).
 * @return the length written (without the NUL), or -ENOSPC / -EINVAL.
 */
int kite_cluster_member_to_json(const struct kite_cluster_member *mb, char *buf, size_t len);

/** Parse "A.B.C.D:PORT" (port 1..65535). @return 0 or -EINVAL. */
int kite_cluster_addr_parse(const char *s, uint32_t *ip, uint16_t *port);

/** Parse a member record (any bytes). @return 0 or -EINVAL with err set. */
int kite_cluster_member_from_json(const char *json, size_t len, struct kite_cluster_member *mb,
				  char *err, size_t errlen);

/** The configuration record as JSON: {"vbuckets":N,"copies":N,"generation":N}. */
int kite_cluster_config_to_json(const struct kite_cluster_config *c, char *buf, size_t len);

/** Parse a configuration record. @return 0 or -EINVAL with err set. */
int kite_cluster_config_from_json(const char *json, size_t len, struct kite_cluster_config *c,
				  char *err, size_t errlen);

/** A static members file, parsed. */
struct kite_cluster_static {
	uint64_t epoch;
	struct kite_cluster_config config; /**< generation unused */
	unsigned int n_members;
	struct kite_cluster_member members[KITE_CLUSTER_MAX_MEMBERS];
};

/**
 * Parse a static members file:
 *
 *     # comment
 *     epoch = 3
 *     vbuckets = 65536
 *     copies = 2
 *     member ID IP:PORT [partitions=N] [weight=N] [zone=NAME] [admin=IP:PORT]
 *
 * One `member` line per node (partitions 4, weight 100, no zone and no
 * admin endpoint unless given). epoch is required and must be raised on every edit.
 * @return 0 or -EINVAL with err naming the line.
 */
int kite_cluster_static_parse(const char *text, size_t len, struct kite_cluster_static *out,
			      char *err, size_t errlen);

#endif /* KITE_CLUSTER_RECORD_H */
