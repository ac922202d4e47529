/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITED_REPL_H
#define KITED_REPL_H

/* kited's replication (repl.c): async or sync, backfill, on the workers. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kite_net.h"
#include "kite_store.h"

/* Counters (STAT kite_repl_*), summed over the workers; lag_max is a maximum. */
struct kited_repl_stats {
	uint64_t tx_records;     /* mutation records sent (one per replica; backfills not counted) */
	uint64_t tx_datagrams;   /* REPL datagrams sent (DATA, ACK, NACK, retransmissions) */
	uint64_t retransmits;    /* DATA sent again (NACK, or a silent replica) */
	uint64_t rx_acks, rx_nacks;
	uint64_t rx_applied;     /* records applied as a replica */
	uint64_t rx_dups;        /* records seen before (retransmissions) */
	uint64_t rx_gaps;        /* records after a missing one (NACKed) */
	uint64_t rx_bad_mac;     /* datagrams without a valid MAC: dropped */
	uint64_t rx_malformed;
	uint64_t rx_stale_epoch; /* records from a node that is not the vbucket's owner here: dropped */
	uint64_t rx_not_replica; /* records for a vbucket this node does not replicate */
	uint64_t rx_stray;       /* answers from no destination of ours */
	uint64_t resync_needed;  /* NACKs the log could not answer: backfills asked for */
	uint64_t arp_misses, nombuf, no_dest, too_large, apply_failed;
	uint64_t purged;         /* items removed from vbuckets this node began to replicate */
	uint64_t rx_resets;      /* vbuckets restarted by their owner (its log did not reach back) */
	uint64_t given_up;       /* datagrams never acknowledged (after every retry, or their
				  * member left the map), gaps never filled */
	uint64_t nack_retries;   /* NACKs sent again for a gap still open */
	uint64_t lag_max;        /* records: the largest owner sequence - acknowledged seen */
	uint64_t lag_us_max;     /* microseconds from a DATA datagram's first send to its ACK */
	uint64_t sync_held;      /* reply sets held for replicas (replication = sync) */
	uint64_t sync_acked;     /* ... sent once every replica acknowledged */
	uint64_t sync_timeouts;  /* ... answered ETMPFAIL after sync-timeout-ms */
	uint64_t sync_withheld;  /* ... not answered at all (a quiet write among them) */
	uint64_t sync_full;      /* ... answered ETMPFAIL at once: the hold queue was full */
	uint64_t backfills;      /* vbucket backfills completed (RESET, items, MARK) */
	uint64_t backfill_items; /* records sent by backfills (an item to each replica) */
	uint64_t rx_marks;       /* backfills received whole, as a replica */
	uint64_t backfill_waits; /* backfill steps put off: a replica had too much unacknowledged */
	uint64_t resync_asks;    /* backfills asked for, as a replica (vbuckets) */
	uint64_t handover_late;  /* records of the owner taken over from, applied after the switch */
	uint64_t handover_dropped; /* ... dropped: this node had written the vbucket since */
	uint64_t rx_old_secret;  /* datagrams accepted under the previous secret (rotation) */
	uint64_t rx_flushes;     /* vbucket FLUSH records applied as a replica */
	uint64_t log_lost;       /* datagrams the log forgot unacknowledged: their vbuckets backfilled */
};

/* Ack-latency histogram: bucket b counts lags below 2^b microseconds (the last: the rest). */
#define KITED_REPL_LAG_BUCKETS 24

/* One replica this node streams to (STAT kite_repl_peer_<ip>_*). */
struct kited_repl_peer {
	uint32_t ip;
	uint64_t lag_ops;     /* the owner's sequence - the replica's, at its last ACK (largest pair) */
	uint64_t lag_us;      /* first send to ACK of its last acknowledged datagram */
	uint64_t retransmits; /* DATA sent to it again */
	uint64_t resyncs;     /* backfills it needed */
	uint64_t acks;
	uint64_t unacked;     /* datagrams sent to it and not acknowledged yet (its queue) */
};

struct node;
struct worker;
struct kited_cview;

/* Read the secret, size the per-vbucket sequences, give each worker its state. */
int kited_repl_setup(struct node *n);
void kited_repl_free(struct node *n);
/* The engine's kite_engine_repl_fn (arg: the worker, dgram_arg: the datagram's dgram_ctx). */
void kited_repl_emit(void *arg, void *dgram_arg, uint32_t vb, uint8_t kind, const uint8_t *key,
		     uint16_t keylen, const struct kite_store_view *v, bool silent);
struct dgram_ctx;
struct rte_mbuf;
/*
 * replication = sync: the reply datagrams (payload only, no headers yet)
 * of a datagram whose mutations emitted records: held until every
 * replica acknowledged them, then sent; after sync-timeout-ms their
 * mutations' statuses become ETMPFAIL (or, with a quiet write among
 * them, nothing is sent).
 */
void kited_repl_hold(struct worker *w, struct dgram_ctx *c, struct rte_mbuf **m, unsigned int n);
/*
 * replication = sync: a text datagram relayed on to worker `to` after
 * this worker's writes (kite_engine_relay): held until every replica
 * acknowledged them, then passed on; on a timeout it goes no further and
 * nothing is answered (as a text reply that timed out).
 */
void kited_repl_hold_relay(struct worker *w, struct dgram_ctx *c, struct rte_mbuf *m, uint16_t to);
/* An idle poll: timers (retransmission, held replies) and a backfill step. */
void kited_repl_idle(struct worker *w);
/* End of a burst: send what was batched; now and then the tail to silent replicas. */
void kited_repl_flush(struct worker *w);
/* A REPL datagram (payload: the frame and after)? Handled (true) or not ours (false). */
bool kited_repl_rx(struct worker *w, const uint8_t *payload, size_t len,
		   const struct kite_net_udp *u);
/* A worker took a new view (compared with what it saw last, kept per vbucket). */
void kited_repl_view_change(struct worker *w, const struct kited_cview *v);
void kited_repl_stats_sum(const struct node *n, struct kited_repl_stats *sum);
void kited_repl_lag_hist(const struct node *n, uint64_t hist[KITED_REPL_LAG_BUCKETS]);
/* The replicas this node streams to, summed over workers. @return how many (at most max). */
unsigned int kited_repl_peers(const struct node *n, struct kited_repl_peer *out, unsigned int max);
/* Owned vbuckets with a replica waiting for its backfill (or being backfilled). */
uint32_t kited_repl_backfilling(const struct node *n);
/* Replica vbuckets whose owner's backfill has not arrived whole yet. */
uint32_t kited_repl_unsynced(const struct node *n);

#endif /* KITED_REPL_H */
