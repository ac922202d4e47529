/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * munmap() for the whole process: it first waits until every polling
 * thread (kited's workers, kite-bench's lcores) is between two bursts.
 *
 * Why: DPDK's memif PMD (22.11, and upstream as read in 2026) unmaps a
 * connection's shared memory from the EAL interrupt thread when the peer
 * goes away (memif_disconnect -> memif_free_regions), while a worker may
 * be inside rte_eth_rx_burst() or rte_eth_tx_burst() reading the rings in
 * that memory. The PMD clears its "connected" flag first, which the next
 * burst checks, but does not wait for a burst already past the check.
 * kited died of SIGSEGV in about one client disconnect in 50 under load on
 * a 2-CPU VM, 5 of some 280 (core: the worker in eth_memif_rx, the interrupt thread in
 * munmap called from memif_disconnect). The PMD runs nothing of ours
 * between the flag and the unmap, and the port's link event comes later.
 *
 * kite-bench, the peer on the other side, can die the same way when kited
 * goes away under load.
 *
 * So the program that calls kite_port_unmap_guard() links this object,
 * which defines munmap, and exports it (meson.build: --export-dynamic-
 * symbol): calls from the DPDK libraries bind to it before libc's. It
 * waits on the pollers' quiescent-state counters (kited: the same
 * rte_rcu_qsbr that guards cluster views; both report once per poll loop)
 * and then makes the system call. A burst that began before the wait ends before the
 * unmap; one that begins after it sees the flag cleared (the full barrier
 * below orders the caller's flag store before the wait's token). Asleep,
 * a poller is offline and is not waited for. glibc's own unmapping (free()
 * of large blocks) calls its internal alias and does not come here.
 * Outside the data path's start-up and shutdown this runs seldom: the
 * wait costs the caller a worker loop (microseconds).
 */
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <rte_atomic.h>
#include <rte_rcu_qsbr.h>

#include "kite_port.h"

static struct rte_rcu_qsbr *unmap_qs;
/* The calling thread's id while it is online (it reports for itself instead of waiting on itself). */
static __thread unsigned int unmap_self = RTE_QSBR_THRID_INVALID;

void
kite_port_unmap_guard(struct rte_rcu_qsbr *qs)
{
	__atomic_store_n(&unmap_qs, qs, __ATOMIC_RELEASE);
}

void
kite_port_unmap_self(unsigned int thread_id)
{
	unmap_self = thread_id;
}

int
munmap(void *addr, size_t len)
{
	struct rte_rcu_qsbr *qs = __atomic_load_n(&unmap_qs, __ATOMIC_ACQUIRE);

	if (qs != NULL) {
		rte_smp_mb();
		rte_rcu_qsbr_synchronize(qs, unmap_self);
	}
	return (int)syscall(SYS_munmap, addr, len);
}
