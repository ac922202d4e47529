/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITED_SIZING_H
#define KITED_SIZING_H

/*
 * How much DPDK memory (hugepages, or -m with --no-huge) a configuration
 * takes, part by part, from what each piece says it allocates: partitions
 * (lib/store), engines (lib/engine), network stacks (lib/net), mbuf pools,
 * per-worker scratch and rings, and EAL's own. kited logs it at start and
 * names it when an allocation fails; docs/operations.rst has the formula.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Data room of the packet mbufs: the largest reply frame, at least DPDK's default. */
uint16_t kited_mbuf_room(const struct kited_config *c);

/* Whether large RX mbufs are needed (rx-mbuf-size above the packet mbufs' room). */
bool kited_rx_pool_needed(const struct kited_config *c);

/* Large RX mbufs per pool: the RX rings and the bursts in flight of every worker. */
unsigned int kited_rx_mbufs(const struct kited_config *c);

/* DPDK memory of a configuration, in bytes. */
struct kited_memory {
	uint64_t items;   /* item logs: the memory option */
	uint64_t index;   /* the partitions' indexes and headers */
	uint64_t mbufs;   /* packet mbuf pools, and large RX pools, one of each per socket */
	uint64_t workers; /* engines, reassembly tables, scratch, handoff rings */
	uint64_t eal;     /* EAL's own memzones and the rest */
	uint64_t total;
};

/*
 * Plan c's memory with `pools` sockets running workers. page: the page
 * size mempools lay objects out in (no object straddles a 4 KiB page
 * without hugepages; 0 with hugepages, where it does not matter).
 */
void kited_memory_plan(const struct kited_config *c, unsigned int pools, size_t page,
		       struct kited_memory *m);

/*
 * DPDK memory kited can still get: what EAL's heaps have free, and with
 * hugepages the free hugepages of the system. Call after rte_eal_init().
 */
uint64_t kited_memory_available(void);

/* DPDK memory in use now (every socket's heap). */
uint64_t kited_memory_in_use(void);

/*
 * Out of DPDK memory while allocating `what`: log what the configuration
 * needs, what EAL had, and what to change. (A failed rte_malloc leaves
 * rte_errno alone, so its text would be a stale one.)
 */
void kited_no_memory(const struct kited_memory *plan, const char *what);

/* "about N MiB (items A, index B, packet buffers C, workers D, EAL E MiB)" into buf. */
void kited_memory_describe(const struct kited_memory *m, char *buf, size_t len);

#endif /* KITED_SIZING_H */
