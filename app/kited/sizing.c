/* SPDX-License-Identifier: BSD-3-Clause */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>
#include <rte_eal.h>
#include <rte_ether.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "kite_engine.h"
#include "kite_net.h"
#include "kite_store.h"
#include "kited.h"
#include "kited_log.h"
#include "kited_sizing.h"

/*
 * EAL's own memory besides what kited asks for: memzones of the mempool
 * and ring libraries, telemetry, the ethdev's queue structures. Measured
 * with --no-huge on af_packet, null and memif ports (kited logs what it
 * planned and what it uses once it serves).
 */
#define EAL_OVERHEAD (2u << 20)

uint16_t
kited_mbuf_room(const struct kited_config *c)
{
	/* Room for the largest reply datagram plus headers; at least DPDK's default. */
	uint32_t room = RTE_PKTMBUF_HEADROOM + c->mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;

	return (uint16_t)RTE_MAX(room, (uint32_t)RTE_MBUF_DEFAULT_BUF_SIZE);
}

bool
kited_rx_pool_needed(const struct kited_config *c)
{
	return c->rx_mbuf_size > (uint64_t)kited_mbuf_room(c) - RTE_PKTMBUF_HEADROOM;
}

unsigned int
kited_rx_mbufs(const struct kited_config *c)
{
	return c->workers * (c->rx_desc + 4 * c->burst) + 1024;
}

/* Memory of a pool of n mbufs with data_room bytes each, as rte_mempool lays it out. */
static uint64_t
pool_bytes(unsigned int n, uint32_t data_room, size_t page)
{
	struct rte_mempool_objsz sz;
	uint32_t priv = RTE_ALIGN_CEIL(sizeof(struct handoff_meta), RTE_MBUF_PRIV_ALIGN);
	uint64_t obj = rte_mempool_calc_obj_size(sizeof(struct rte_mbuf) + priv + data_room, 0, &sz);

	/* Without hugepages an object does not straddle a page. */
	if (page != 0 && obj <= page)
		obj = page / (page / obj);
	else if (page != 0)
		obj = RTE_ALIGN_CEIL(obj, page);
	/* The objects, the ring that holds them, the pool's header and per-lcore caches. */
	return n * obj + rte_ring_get_memsize(rte_align32pow2(n + 1)) + sizeof(struct rte_mempool) +
	       RTE_MAX_LCORE * sizeof(struct rte_mempool_cache);
}

void
kited_memory_plan(const struct kited_config *c, unsigned int pools, size_t page,
		  struct kited_memory *m)
{
	const unsigned int parts = c->workers * c->partitions;
	struct kite_store_params sp;
	struct kite_net_conf nc;

	memset(m, 0, sizeof(*m));
	memset(&sp, 0, sizeof(sp));
	sp.mem_bytes = c->memory / parts;
	m->items = sp.mem_bytes * parts;
	m->index = (kite_store_footprint(&sp) - sp.mem_bytes) * parts;
	m->mbufs = pools * pool_bytes(c->mbufs, kited_mbuf_room(c), page);
	if (kited_rx_pool_needed(c))
		m->mbufs += pools * pool_bytes(kited_rx_mbufs(c),
					       (uint32_t)(RTE_PKTMBUF_HEADROOM + c->rx_mbuf_size),
					       page);
	memset(&nc, 0, sizeof(nc));
	nc.frag_max_flows = c->frag_flows;
	m->workers = (uint64_t)c->workers *
		     (kite_engine_footprint() + kite_net_footprint(&nc) +
		      (uint64_t)WORKER_MAX_BURST * WORKER_SCRATCH_SLOT +
		      rte_ring_get_memsize(c->handoff_ring) + sizeof(struct kited_worker_stats) +
		      sizeof(struct kite_hot_pub));
	m->eal = EAL_OVERHEAD;
	m->total = m->items + m->index + m->mbufs + m->workers + m->eal;
}

/* Free pages of every hugepage size the kernel has, in bytes. */
static uint64_t
free_hugepages(void)
{
	const char *dir = "/sys/kernel/mm/hugepages";
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t sum = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		unsigned long long kb, pages;
		char path[512];
		FILE *f;

		if (sscanf(e->d_name, "hugepages-%llukB", &kb) != 1)
			continue;
		snprintf(path, sizeof(path), "%s/%s/free_hugepages", dir, e->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fscanf(f, "%llu", &pages) == 1)
			sum += (uint64_t)pages * kb * 1024;
		fclose(f);
	}
	closedir(d);
	return sum;
}

static void
heaps(uint64_t *total, uint64_t *used)
{
	struct rte_malloc_socket_stats st;

	*total = *used = 0;
	for (int s = 0; s < RTE_MAX_NUMA_NODES; s++)
		if (rte_malloc_get_socket_stats(s, &st) == 0) {
			*total += st.heap_totalsz_bytes;
			*used += st.heap_allocsz_bytes;
		}
}

uint64_t
kited_memory_available(void)
{
	uint64_t total, used;

	heaps(&total, &used);
	return total - used + (rte_eal_has_hugepages() ? free_hugepages() : 0);
}

uint64_t
kited_memory_in_use(void)
{
	uint64_t total, used;

	heaps(&total, &used);
	return used;
}

void
kited_no_memory(const struct kited_memory *plan, const char *what)
{
	char need[160];

	kited_memory_describe(plan, need, sizeof(need));
	KLOG(ERR,
	     "not enough DPDK memory for %s: this configuration needs %s; %.0f MiB more were "
	     "free (%s). Lower memory, mbufs or workers, or give EAL more: %s",
	     what, need, (double)kited_memory_available() / (1 << 20),
	     rte_eal_has_hugepages() ? "free hugepages" : "what -m left",
	     rte_eal_has_hugepages() ? "reserve more hugepages (docs/operations.rst)"
				     : "raise -m (--no-huge takes -m MiB at start)");
}

static double
mib(uint64_t b)
{
	return (double)b / (1 << 20);
}

void
kited_memory_describe(const struct kited_memory *m, char *buf, size_t len)
{
	snprintf(buf, len,
		 "about %.0f MiB (items %.0f, index %.0f, packet buffers %.0f, workers %.0f, "
		 "EAL %.0f MiB)",
		 mib(m->total), mib(m->items), mib(m->index), mib(m->mbufs), mib(m->workers),
		 mib(m->eal));
}
