/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITED_NUMA_H
#define KITED_NUMA_H

/*
 * NUMA placement of a node: which socket each partition's memory and each
 * worker's mbuf pool come from (the plan), and where the memory really
 * landed (the check, asked of the kernel with move_pages(2) through
 * libnuma). A partition away from its worker costs a remote access on
 * every request it serves.
 */

#include <stddef.h>

#include "kite_store.h"
#include "kite_topo.h"

/* Sockets that can hold an mbuf pool. */
#define KITED_MAX_POOLS 8

/* Where each piece of a node lives. */
struct kited_placement {
	int part_socket[KITE_MAX_PARTITIONS]; /* socket of each partition's memory */
	int pools[KITED_MAX_POOLS]; /* sockets that need an mbuf pool, in first-use order */
	unsigned int n_pools;
	int worker_pool[KITE_MAX_WORKERS]; /* index into pools[] used by each worker's RX queue */
	unsigned int remote;		   /* workers on another socket than the port */
};

/*
 * Place partitions with their owners, one mbuf pool per socket that has a
 * worker, each worker's RX queue on its own socket's pool; count workers
 * that sit on another socket than the port (port_socket < 0: unknown, none
 * counted). @return 0, or -EINVAL when the map does not fit the struct.
 */
int kited_numa_place(const struct kite_topo_map *m, const int *worker_socket, int port_socket,
		     struct kited_placement *pl);

/*
 * Where memory really lives: the NUMA node of up to 8 pages spread over
 * [addr, addr + len), asked of the kernel with move_pages(2) (libnuma).
 * @return the node holding every sampled page that is placed; -ENOENT when
 * none is placed yet; -EXDEV when they sit on several nodes; -ENOSYS
 * without NUMA support in the kernel; -EINVAL for an empty range.
 */
int kited_numa_mem_node(const void *addr, size_t len);

/* What kited_numa_check() found. */
struct kited_numa_report {
	unsigned int ok;      /* partitions on their worker's node */
	unsigned int remote;  /* on another node, or spread over several */
	unsigned int unknown; /* not placed yet, or no socket known */
	bool no_numa;	      /* the kernel has no NUMA support: nothing checked */
};

/*
 * Compare where each partition's item memory landed with the plan, log a
 * warning for every partition away from its worker and a summary line.
 */
void kited_numa_check(struct kite_store *const *parts, unsigned int n_parts,
		      const struct kited_placement *pl, const struct kite_topo_map *m,
		      struct kited_numa_report *rep);

#endif /* KITED_NUMA_H */
