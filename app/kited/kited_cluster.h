/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITED_CLUSTER_H
#define KITED_CLUSTER_H

/*
 * kited's side of the cluster (cluster.c): the membership source (none,
 * a static members file, or etcd through its v3 JSON gateway) run on a
 * control pthread, the map it builds for each member list, and the view
 * of it that the workers read. Views are immutable and published by
 * pointer; the workers report quiescent states to an rte_rcu_qsbr
 * variable between bursts (and go offline while they sleep), and the
 * control thread frees an old view once every worker has passed one --
 * checked without blocking. The data path takes no lock.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <rte_rcu_qsbr.h>

#include "kite_cluster.h"
#include "kite_engine.h"
#include "kite_stats.h"

/* One published map, as this node serves it. Immutable once published. */
struct kited_cview {
	struct kite_engine_cluster ec; /* what the engines read */
	struct kite_cluster_map map;   /* empty with cluster = none */
	int self;                      /* this node's member index, -1 if not listed */
	uint32_t owned, replicated;    /* vbuckets this node owns / holds a copy of */
	uint32_t previous;             /* vbuckets it still answers warm-up reads for */
	uint8_t *role;                 /* per vbucket, enum kite_engine_role */
	uint64_t *since;               /* per vbucket: items at or below are from before */
	uint8_t *msg;                  /* the CLUSTER_MAP reply body */
	bool rejoined;                 /* built after a lapsed lease: nothing held counts */
};

/* Counters the cluster code keeps (STAT and the log; written by the control thread). */
struct kited_cluster_stats {
	uint64_t epoch;
	uint64_t maps;               /* maps built and published */
	uint64_t members;            /* in the current map */
	uint64_t keepalives;         /* acknowledged */
	uint64_t keepalive_failures; /* sent, not acknowledged */
	uint64_t etcd_errors;        /* failed etcd requests of any kind */
	uint64_t registrations;      /* this node's member key written (1 + re-joins) */
	uint64_t fenced;             /* 1 while writes are refused */
	uint64_t owned, previous;    /* vbuckets this node owns / still answers fills for */
	uint64_t replica_candidates; /* vbuckets listing this node as a replica */
	uint64_t joining;            /* 1 while this node is listed joining (being filled) */
	uint64_t join_ms;            /* how long its last join took until it turned active */
};

/* STAT's cluster lines (kited_stats_src.more): kite_cluster_*. */
void kited_cluster_emit_stats(const void *node, kite_stats_emit_fn emit, void *arg);

/* A graceful leave may take leave-grace plus this long (etcd calls) before kited stops anyway. */
#define KITED_LEAVE_SLACK_S 5

struct node;
struct worker;

/* Between configuration and serving: the first view, registered (etcd). */
int kited_cluster_start(struct node *n);
/* Begin a graceful leave (SIGTERM in cluster mode); kited_cluster_left() says when done. */
void kited_cluster_leave(struct node *n);
bool kited_cluster_left(const struct node *n);
/* Stop the control thread and free every view (after the workers stopped). */
void kited_cluster_stop(struct node *n);
/* Re-read the members file (SIGHUP; cluster = static). */
void kited_cluster_reload(struct node *n);
const struct kited_cluster_stats *kited_cluster_stats(const struct node *n);

/*
 * Why the node should not take traffic yet (the admin endpoint's
 * /readyz): no map yet, or fenced; NULL when ready, or not in a cluster.
 */
const char *kited_cluster_not_ready(const struct node *n);

/*
 * The current map as JSON (malloc'd copy; the admin endpoint's /cluster),
 * NULL when not in a cluster or before the first map; *fenced: whether
 * the node refuses writes now.
 */
char *kited_cluster_json(const struct node *n, bool *fenced);
/*
 * The admin endpoint of the node that owns key in the map this node holds
 * (any thread). @return 0 (*ip, *port); -EEXIST: this node owns it;
 * -ENOENT: no map, or the owner has no admin endpoint in its record.
 */
int kited_cluster_admin_owner(const struct node *n, const void *key, uint16_t keylen, uint32_t *ip,
			      uint16_t *port);

/* The variable and the pointer the workers read. */
struct kited_cluster_pub {
	struct rte_rcu_qsbr *qs;
	_Atomic(struct kited_cview *) cur;
};

/* Is ip (host order) the address of a member of v's map? */
static inline bool
kited_cview_member_ip(const struct kited_cview *v, uint32_t ip)
{
	for (unsigned int i = 0; i < v->map.n_members; i++)
		if (v->map.members[i].ip == ip)
			return true;
	return false;
}

/*
 * A worker's turn: report a quiescent state, then take the current view
 * (between bursts: no request sees two maps).
 */
static inline const struct kited_cview *
kited_cluster_worker_turn(struct kited_cluster_pub *p, unsigned int id)
{
	rte_rcu_qsbr_quiescent(p->qs, id);
	return atomic_load_explicit(&p->cur, memory_order_acquire);
}

#endif /* KITED_CLUSTER_H */
