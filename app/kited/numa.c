/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <numa.h>

#include <rte_common.h>

#include "kited_log.h"
#include "kited_numa.h"

int
kited_numa_place(const struct kite_topo_map *m, const int *worker_socket, int port_socket,
		 struct kited_placement *pl)
{
	if (m == NULL || worker_socket == NULL || pl == NULL || m->workers == 0 ||
	    m->workers > RTE_DIM(pl->worker_pool) || m->partitions > RTE_DIM(pl->part_socket))
		return -EINVAL;
	memset(pl, 0, sizeof(*pl));
	for (uint16_t w = 0; w < m->workers; w++) {
		int s = worker_socket[w] < 0 ? 0 : worker_socket[w];
		unsigned int i;

		for (i = 0; i < pl->n_pools && pl->pools[i] != s; i++)
			;
		if (i == pl->n_pools) {
			if (pl->n_pools == RTE_DIM(pl->pools))
				return -EINVAL;
			pl->pools[pl->n_pools++] = s;
		}
		pl->worker_pool[w] = (int)i;
		if (port_socket >= 0 && s != port_socket)
			pl->remote++;
	}
	for (uint32_t p = 0; p < m->partitions; p++) {
		int s = worker_socket[kite_topo_owner(m, p)];
		pl->part_socket[p] = s < 0 ? 0 : s;
	}
	return 0;
}

int
kited_numa_mem_node(const void *addr, size_t len)
{
	enum { SAMPLES = 8 };
	void *pages[SAMPLES];
	int status[SAMPLES];
	uintptr_t base = (uintptr_t)addr;
	unsigned int n = 0;
	int node = -ENOENT;

	if (addr == NULL || len == 0)
		return -EINVAL;
	if (numa_available() < 0)
		return -ENOSYS;
	/* First, last and evenly spaced pages in between (move_pages takes any address in a page).
	 */
	for (unsigned int i = 0; i < SAMPLES; i++) {
		uintptr_t a = base + (uintptr_t)((len - 1) / (SAMPLES - 1) * i);

		if (n > 0 && (uintptr_t)pages[n - 1] == a)
			continue;
		pages[n++] = (void *)a;
	}
	if (numa_move_pages(0, n, pages, NULL, status, 0) != 0)
		return -errno;
	for (unsigned int i = 0; i < n; i++) {
		if (status[i] < 0)
			continue; /* not faulted in yet (or not movable): says nothing */
		if (node >= 0 && status[i] != node)
			return -EXDEV;
		node = status[i];
	}
	return node;
}

void
kited_numa_check(struct kite_store *const *parts, unsigned int n_parts,
		 const struct kited_placement *pl, const struct kite_topo_map *m,
		 struct kited_numa_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	for (unsigned int i = 0; i < n_parts; i++) {
		size_t len;
		const void *mem = kite_store_log_mem(parts[i], &len);
		int want = pl->part_socket[i];
		int node = kited_numa_mem_node(mem, len);

		if (node == -ENOSYS) {
			KLOG(INFO, "NUMA: the kernel has no NUMA support; placement not checked");
			rep->no_numa = true;
			return;
		}
		if (node == -EXDEV && want >= 0) {
			rep->remote++;
			KLOG(WARNING,
			     "NUMA: partition %u's memory is spread over several nodes, its worker "
			     "%u on node %d",
			     i, kite_topo_owner(m, i), want);
		} else if (node < 0 || want < 0) {
			rep->unknown++;
		} else if (node != want) {
			rep->remote++;
			KLOG(WARNING,
			     "NUMA: partition %u's memory is on node %d, its worker %u on node %d: "
			     "every request it serves crosses the interconnect (hugepages on node "
			     "%d?)",
			     i, node, kite_topo_owner(m, i), want, want);
		} else {
			rep->ok++;
		}
	}
	KLOG(INFO, "NUMA: %u partition(s) on their worker's node, %u elsewhere, %u not checked",
	     rep->ok, rep->remote, rep->unknown);
}
