/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITED_H
#define KITED_H

/* State shared by kited's main, port, worker and control code. */

#include <stdbool.h>
#include <stdint.h>

#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "config.h"
#include "kite_engine.h"
#include "kite_guard.h"
#include "kite_net.h"
#include "kite_steer.h"
#include "kite_store.h"
#include "kite_topo.h"
#include "kited_cluster.h"
#include "kited_repl.h"
#include "kited_log.h"
#include "kited_stats.h"
#include "kited_numa.h"
#include "kited_sizing.h"

/* Packets a worker takes per poll, handed-off datagrams included (the burst option's maximum). */
#define WORKER_MAX_BURST 64
/* A reassembled request can be as large as an IPv4 datagram allows: one scratch slot each. */
#define WORKER_SCRATCH_SLOT 65536

/* What a handed-off mbuf carries in its private area. */
struct handoff_meta {
	struct kite_net_udp u;
	/* The guard's verdict, as the home worker judged the datagram. */
	uint32_t budget, deny;
	uint16_t skip, work;
	uint8_t refuse, ns, prefix_len, renv_len, tenant;
	uint8_t renv[KITE_GUARD_REPLY_ENV_MAX];
	uint8_t prefix[KITE_GUARD_PREFIX_MAX]; /* a copy: a reload may free the tenants table */
	int16_t api_tenant; /* a JSON API request (sender 0.0.0.0): its tenant's rate to charge, -1 none */
	/* A relayed text datagram: where it stands, and its reply so far (linked by next). */
	struct kite_engine_relay relay;
	struct rte_mbuf *chain;
};

/* Per-datagram context for the engine's reply callbacks. */
struct dgram_ctx {
	struct worker *w;
	struct rte_mbuf *m;     /* the request */
	struct kite_net_udp u;  /* its sender */
	bool reused;            /* m now carries the reply: do not free it */
	/*
	 * Synchronous replication (repl.c): this datagram's mutations, as
	 * (vbucket, sequence) pairs sync_lo.. of the worker's burst list; its
	 * replies wait until every replica acknowledged them.
	 */
	uint32_t sync_lo, sync_n;
	bool sync_silent; /* one of them was quiet: a timeout withholds every reply */
	bool sync_over;   /* more than the burst list holds: answered ETMPFAIL */
	uint8_t renv_len; /* the guard's reply envelope ahead of reply datagram 0's responses */
	/* The guard (guard.c): its verdict, and the IP bytes sent back. */
	struct kite_guard_verdict v;
	bool guarded;     /* judged here (home): account it after execution */
	bool split;       /* its budget was shared with other workers: bank nothing */
	uint32_t tx_ip_bytes;
	struct rte_mbuf *chain; /* a relayed text datagram's reply so far (linked by next) */
};

struct worker {
	uint16_t id;
	unsigned int lcore;
	int socket;
	uint16_t port;
	uint16_t queue;
	struct node *node;
	struct kite_engine *engine;
	struct kite_net *net;
	struct kited_worker_stats *stats;
	struct kite_hot_pub *hot; /* its hot keys' snapshot, read by STAT and telemetry */
	struct rte_mempool *pool; /* on the worker's socket: its RX queue and replies */
	struct rte_ring *handoff; /* datagrams other workers route here */
	uint8_t *scratch;         /* linear copies of multi-segment datagrams */
	/* Reply mbufs of the request datagram being answered. */
	struct rte_mbuf *pend[KITE_MAX_REPLY_DGRAMS];
	const struct kited_cview *cview; /* the map view the engine uses */
	struct worker_repl *repl;        /* replication state (repl.c); NULL: none */
	struct kite_guard *guard;        /* the guard (guard.c) */
	const struct kite_guard_tenants *tenants; /* the table the guard uses */
	/* Requests served per command class when the service time was last counted. */
	uint64_t served_before[KITE_CMD_MAX];
	/* Packets waiting for tx_burst. */
	unsigned int ntx;
	struct rte_mbuf *tx[512];
};

struct node {
	struct kited_config cfg;
	uint16_t port;
	bool port_started;
	struct rte_ether_addr mac;
	struct kite_net_conf netconf;
	struct kite_neigh *neigh; /* the workers' neighbour table (lib/net) */
	enum kite_steer_mode steer;
	struct kite_topo_map map;
	struct kited_placement place;
	struct kited_memory mem; /* what the configuration needs (kited_memory_plan) */
	struct rte_mempool *pools[KITED_MAX_POOLS]; /* one per socket with workers (place.pools) */
	struct rte_mempool *rx_pools[KITED_MAX_POOLS]; /* large RX mbufs (rx-mbuf-size), else NULL */
	unsigned int n_flows;
	struct rte_flow *flows[KITE_MAX_PARTITIONS];
	uint16_t max_payload;
	uint32_t started;
	uint64_t tsc_hz;
	uint64_t start_tsc;
	unsigned int n_parts;
	struct kite_store **parts;
	unsigned int n_workers;
	struct worker *workers;
	struct kited_worker_stats **wstats;
	struct kite_hot_pub **hot; /* each worker's hot-key snapshot (stats_src.hot) */
	const struct kite_net **nets;
	struct kited_stats_src stats_src;
	struct kited_worker_stats stats_prev; /* sums at the last stats line */
	bool main_runs_worker; /* no worker lcores: worker 0 runs on the main lcore */
	uint8_t idle_mode;     /* enum kited_idle; busy as well when idle-sleep-us = 0 */
	uint64_t idle_spin_tsc; /* adaptive: idle-spin-us in TSC cycles */
	volatile bool quit;    /* set by the signal handler (or a failed start); all loops poll it */
	uint64_t last_stats_tsc; /* when the last stats line was logged */
	unsigned int ablate;   /* KITED_ABLATE_* from the ablate option; 0 in production */
	struct kited_cluster *cluster;  /* cluster.c's state */
	struct kited_cluster_pub cpub;  /* the published map view, read by workers */
	volatile bool stop_req; /* SIGTERM/SIGINT: leave the cluster (if any), then quit */
	volatile bool hup_req;  /* SIGHUP: re-read the members file and the tenants file */
	/* The guard (guard.c): its configuration and the published tenants table. */
	struct kite_guard_conf gconf;
	struct kite_guard_tenants *tenants; /* read by workers each turn; replaced on SIGHUP */
	struct kite_guard_tenants *tenants_retired[8]; /* freed once every worker moved on */
	uint64_t tenants_token[8];
	uint64_t epoch_us; /* unix microseconds at start_tsc */
	/* Replication (repl.c): the secret, per-vbucket owner sequences and replica expectations. */
	bool repl_on;
	uint8_t repl_secret[32];     /* datagrams are sent under it, and accepted */
	uint8_t repl_secret_old[32]; /* accepted too while repl_secret_two (a rotation) */
	bool repl_secret_two;
	uint64_t *repl_seq;
	uint64_t *repl_expected;
	uint8_t *repl_clean; /* per vbucket: nothing applied since the replica dropped it */
	/* Per vbucket, what its worker saw in the last view it took: role and owner. */
	uint8_t *repl_prev_role;
	uint8_t *repl_fresh; /* per vbucket: a replica that owned it until the last map change */
	uint32_t *repl_prev_owner; /* the owner's address and port, hashed; 0: none */
	/*
	 * As an owner, per vbucket and replica slot (vb * 2 + k - 1): the
	 * slot's member (address; 0: none), the sequence it acknowledged
	 * (raised to the vbucket's sequence when the slot's member changes:
	 * an epoch takes it out of, or puts it in, the ack set), and the
	 * backfill state (bits 0-1 to start, 2-3 running, per slot).
	 */
	uint32_t *repl_slot;
	uint64_t *repl_acked;
	uint8_t *repl_bf;
	uint8_t *repl_synced; /* as a replica, per vbucket: the owner's backfill arrived whole */
	uint8_t *repl_ask;    /* as a replica, per vbucket: found not whole by the last scan */
	uint32_t *repl_owner_ip; /* per vbucket: the owner's address in the last view */
	uint32_t *repl_handover; /* per vbucket: the owner this node took over from (0: none) */
	uint32_t *repl_flush_at; /* as a replica, per vbucket: a replicated FLUSH due then (0: none) */
	bool repl_sync;       /* replication = sync */
	uint64_t repl_sync_tsc; /* sync-timeout-ms in TSC cycles */
	void (*repl_tx)(struct worker *w, struct rte_mbuf *m); /* worker_tx, given by main */
	/* worker_reply, given by main (repl.c and worker.c do not refer to each other). */
	void (*repl_reply)(struct worker *w, struct rte_mbuf *m, const struct kite_net_udp *u);
	/* worker_relay and worker_relay_drop, given by main (held relayed text datagrams). */
	void (*repl_relay)(struct worker *w, struct rte_mbuf *m, uint16_t to);
	void (*repl_relay_drop)(struct worker *w, struct rte_mbuf *m);
};

/* steering.c */
int steering_setup(struct node *n, const char *driver, uint16_t max_rx_queues, bool rss);
void steering_teardown(struct node *n);

/* worker.c */
int worker_setup(struct node *n, struct worker *w, uint16_t id, unsigned int lcore);
void worker_teardown(struct worker *w);
int worker_main(void *arg);
/* Queue a packet for this worker's next tx_burst. */
void worker_tx(struct worker *w, struct rte_mbuf *m);
/* A UDP reply (payload in m) to u's sender through the network stack: sent, held until ARP answers, or freed. */
void worker_reply(struct worker *w, struct rte_mbuf *m, const struct kite_net_udp *u);
/* A relayed text datagram (its meta says where it stands) on to worker `to`, or dropped and counted. */
void worker_relay(struct worker *w, struct rte_mbuf *m, uint16_t to);
void worker_relay_drop(struct worker *w, struct rte_mbuf *m);
/* One poll iteration; returns the packets handled. */
unsigned int worker_poll(struct worker *w);
/* Idle-backoff state of a polling loop. */
struct worker_idle {
	uint64_t last_tick;
	uint64_t last_work; /* TSC of the last poll that found work (adaptive) */
	uint32_t idle;      /* empty polls in a row (shared) */
	uint32_t sleep_us;  /* the next sleep (adaptive; 0: still spinning) */
};
/* Before a polling loop's first turn: its idle state, and (adaptive) a fine timer slack. */
void worker_idle_init(const struct node *n, struct worker_idle *st);
/* Clock tick, one poll, and backoff when idle: one turn of a worker's loop. */
void worker_iterate(struct worker *w, struct worker_idle *st);

/* control.c */
/* One turn of the control work (the periodic stats line); called by main's loop. */
void control_tick(struct node *n);
void control_log_stats(struct node *n, double secs);
void control_telemetry(const struct node *n);

/* guard.c */
/* The guard's configuration and the tenants file; 0, or -1 after logging why. */
int kited_guard_setup(struct node *n);
/* SIGHUP: read the tenants file again (a bad file keeps the old table). */
void kited_guard_reload(struct node *n);
struct kited_api_policy;
/*
 * What the JSON API may do for a tenant of tenants-file (by name), or,
 * with tenant NULL, for a client that names none: the same as a datagram
 * with that tenant's AUTH, or without AUTH. Any thread. @return 0;
 * -ENOENT (no such tenant now); -EACCES (none named, and auth = required).
 */
int kited_guard_api_policy(const struct node *n, const char *tenant, struct kited_api_policy *p);
/* Free replaced tenant tables no worker can still read. */
void kited_guard_tick(struct node *n);
void kited_guard_free(struct node *n);
/* Whether a key is some tenant's (the engine's key_owned). */
bool kited_guard_key_owned(const void *arg, const uint8_t *key, uint16_t len);

/* Unix microseconds from the TSC (the guard's clock). */
static inline uint64_t
node_now_us(const struct node *n, uint64_t tsc)
{
	return n->epoch_us + (tsc - n->start_tsc) * 1000000 / n->tsc_hz;
}

/* Unix time, derived from the TSC so workers never make a syscall for it. */
static inline uint32_t
node_now(const struct node *n)
{
	return n->started + (uint32_t)((rte_rdtsc() - n->start_tsc) / n->tsc_hz);
}

#endif /* KITED_H */
