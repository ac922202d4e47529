/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_ENGINE_H
#define KITE_ENGINE_H

/**
 * @file
 * Executes memcached-binary datagrams against the partitions one worker
 * owns and writes the reply datagrams, in two phases.
 *
 * Phase 1, kite_engine_parse(): each datagram of a burst is parsed once
 * into the engine's request table, and the caller learns which workers
 * own its keys, so it can hand the datagram to them (a datagram it does
 * not answer at all is withdrawn from the table). Phase 2,
 * kite_engine_execute(): the table is executed strictly in order; a run of
 * GET-family requests with no mutation between them is looked up with one
 * bulk index lookup per partition. Replies to one datagram are packed into
 * as few reply datagrams as max_payload allows; a response that does not
 * fit in one datagram continues in the next, and the frame header of each
 * reply datagram carries its sequence number and the total. No state
 * crosses datagrams: each one is parsed on its own. A text datagram whose
 * keys several workers own is answered by them in turn, in command order
 * (struct kite_engine_relay).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kite_hot.h"
#include "kite_proto.h"
#include "kite_store.h"
#include "kite_text.h"
#include "kite_topo.h"

/** Most requests parsed ahead of execution (a burst of 32 x 16 fits). */
#define KITE_ENGINE_MAX_REQS 512
/** Most datagrams parsed ahead of execution (a burst of 64 and its handoffs fit). */
#define KITE_ENGINE_MAX_DGRAMS 128

/** Where reply datagrams go; implemented by the worker (mbufs) or tests. */
struct kite_engine_out {
	/**
	 * Return a buffer for reply datagram number `idx` (0, 1, ...) of the
	 * request datagram being answered, at least max_payload bytes, or NULL.
	 */
	uint8_t *(*alloc)(void *arg, unsigned int idx);
	/**
	 * Reply datagrams 0..n-1 are complete: bufs[i] holds lens[i] bytes.
	 * With inplace, bufs[0] is the request's own buffer
	 * (kite_engine_dgram.inplace) and the others come from alloc.
	 */
	void (*done)(void *arg, unsigned int n, uint8_t *const *bufs, const uint16_t *lens,
		     bool inplace);
	/**
	 * The relay of text datagrams (kite_engine_relay); both NULL: none,
	 * and each worker answers the text commands it owns on its own.
	 * carry: reply datagrams 0..n-1 so far go on with the datagram to
	 * kite_engine_dgram.relay_to (bufs[n - 1] holds lens[n - 1] bytes
	 * and may grow there). resume: the n reply datagrams a relayed
	 * datagram carried, back into bufs and lens, in order.
	 */
	void (*carry)(void *arg, unsigned int n, uint8_t *const *bufs, const uint16_t *lens);
	void (*resume)(void *arg, unsigned int n, uint8_t **bufs, uint16_t *lens);
};

/**
 * Where a text datagram stands on its way through the workers. Text has
 * no opaque, so its responses must leave in the order of its commands: a
 * datagram whose keys several workers own is answered by each in turn (a
 * relay). A worker runs the commands from `off` on until one whose key
 * another worker owns, then the datagram goes on to that worker with its
 * reply so far; the last one sends the reply. Keys of different workers
 * live in different partitions, so no command sees another worker's
 * effects out of order. A flush_all goes round every worker before the
 * command after it runs. All zero for a datagram fresh from the network.
 */
struct kite_engine_relay {
	uint32_t off;          /**< the byte the next command starts at (0: fresh) */
	uint32_t sent_before;  /**< IP bytes of the closed reply datagrams (the bound) */
	uint32_t work_left;    /**< the guard's work units left (UINT32_MAX: unlimited) */
	uint16_t nbufs;        /**< reply datagrams written so far */
	uint16_t fill;         /**< bytes in the last of them */
	uint16_t hops;         /**< workers passed through (0: fresh) */
	uint16_t flush_left;   /**< a flush_all going round: workers still to flush, this one included */
	uint16_t left;         /**< requests not yet answered (the bound's reserve) */
	uint8_t cut;           /**< the status every later command gets (0: not cut) */
	bool stopped;          /**< the reply ran out of buffers: nothing more is written */
	struct kite_text_cursor cur; /**< inside a get line */
};

/** One request datagram of a burst. */
struct kite_engine_dgram {
	const uint8_t *data; /**< UDP payload, frame header first */
	uint32_t len;
	bool home;           /**< answers keyless requests (NOOP, VERSION, STAT, QUIT) */
	/**
	 * data may be overwritten by the reply and has room for max_payload
	 * bytes: a datagram holding a single request is then answered in its
	 * own buffer (no allocation, no copy of the headers).
	 */
	bool inplace;
	void *out_arg;       /**< passed to the out callbacks for this datagram */
	/*
	 * The guard's verdict (lib/guard; all zero: no limits). The engine
	 * never includes the guard: it only obeys these fields.
	 */
	uint16_t skip;       /**< envelope bytes between the frame and the first request */
	uint16_t work;       /**< work units the datagram may spend (0: unlimited) */
	/**
	 * IP bytes the replies may take, 28 per reply datagram included (0:
	 * unbounded). A response that would not leave 24 bytes for each
	 * request after it is replaced by COOKIE_REQUIRED, and so is every
	 * later request of the datagram, none of which runs.
	 */
	uint32_t budget;
	uint32_t deny;       /**< command classes refused with FORBIDDEN: bit KITE_CMD_x */
	uint8_t refuse;      /**< non-zero: every request answered with this status, none executed */
	uint8_t ns;          /**< keys: 0 any, 1 must start with prefix, 2 must not be a tenant's */
	uint8_t prefix_len;
	uint8_t renv_len;    /**< bytes of renv that start reply datagram 0 (after its frame) */
	const uint8_t *prefix;
	const uint8_t *renv;
	/**
	 * The port delivered the datagram cut short (longer than its frame):
	 * nothing in it runs, its first request is answered E2BIG (the ones
	 * after it are not visible).
	 */
	bool truncated;
	/** The sender's tenant tag (its id, 1..255) for memory shares, 0: none. */
	uint8_t tenant;
	uint16_t nreq;       /**< written by kite_engine_parse(): requests the datagram held */
	/** In: where a relayed text datagram stands; out, with relay_to: where it goes on. */
	struct kite_engine_relay relay;
	/** Written by kite_engine_parse(), final after kite_engine_execute(): the worker a text datagram goes on to, -1: none. */
	int16_t relay_to;
	/** Written by kite_engine_parse(): a text datagram, answered in order (relay). */
	bool ordered;
};


/** kite_engine_dgram.ns */
enum { KITE_ENGINE_NS_ANY = 0, KITE_ENGINE_NS_PREFIX = 1, KITE_ENGINE_NS_PUBLIC = 2 };

/** Work units of a request: STAT answers a hundred statistics, FLUSH walks every partition. */
#define KITE_ENGINE_WORK_STAT 32
#define KITE_ENGINE_WORK_FLUSH 16

/**
 * The counters of one worker's engine: X(field, name, help), then
 * requests by command class (kite_proto_cmd_name()) and datagram
 * remainders dropped by reason (kite_proto_drop_name()).
 * kite_engine_stats_names[] / _help[] name the scalar ones, in order.
 */
#define KITE_ENGINE_STATS(X)                                                                       \
	X(rx_dgrams, "rx_datagrams", "UDP datagrams handed to the engine by their home worker")   \
	X(rx_requests, "rx_requests", "requests parsed")                                          \
	X(tx_dgrams, "tx_datagrams", "reply datagrams written")                                  \
	X(tx_responses, "tx_responses", "responses written")                                      \
	X(tx_bytes, "tx_bytes", "reply payload bytes")                                            \
	X(copied_bytes, "copied_bytes", "bytes copied on the data path: keys and values into replies (text lines whole), the guard's envelope, a write's key and value into the store") \
	X(err_replies, "error_replies", "error statuses sent for malformed requests")             \
	X(unknown_cmd, "unknown_commands", "UNKNOWN_COMMAND replies")                             \
	X(not_owned, "not_owned", "requests skipped: another worker owns their key")              \
	X(nombuf, "nombuf", "reply datagrams lost: no buffer")                                    \
	X(reply_truncated, "reply_truncated", "replies cut short: too many datagrams")            \
	X(not_my_vbucket, "not_my_vbucket", "NOT_MY_VBUCKET replies: the key's vbucket is elsewhere") \
	X(fenced_writes, "fenced_writes", "writes refused with ETMPFAIL: the node had fenced itself") \
	X(stale_hidden, "stale_hidden", "items from before this node's role in their vbucket changed, treated as absent") \
	X(served, "served", "requests executed")                                                  \
	X(cut_bound, "cut_amplification", "requests not executed: their reply would exceed the source's amplification bound") \
	X(cut_work, "cut_work", "requests not executed: over the datagram's work budget")         \
	X(cut_unanswered, "cut_unanswered", "statuses of cut requests not sent: they would exceed the bound (header-only requests only)") \
	X(refused, "refused", "requests not executed: the guard refused the datagram (auth required, rate)") \
	X(forbidden, "forbidden", "requests refused: command or key outside the sender's permission") \
	X(too_big, "too_big_datagrams", "datagrams the port cut short (over its frame size): the first request answered E2BIG, none executed")

/**
 * Written only by the engine's worker (plain stores); other threads read
 * them whole (aligned 64-bit loads).
 */
struct kite_engine_stats {
#define KITE_ENGINE_STATS_FIELD(field, name, help) uint64_t field;
	KITE_ENGINE_STATS(KITE_ENGINE_STATS_FIELD)
#undef KITE_ENGINE_STATS_FIELD
	uint64_t cmd[KITE_CMD_MAX];                  /**< requests by command class */
	uint64_t proto_drops[KITE_PROTO_DROP_MAX];   /**< datagram remainders dropped, by reason */
};

/** Scalar counters, before cmd[]. */
#define KITE_ENGINE_STATS_N (offsetof(struct kite_engine_stats, cmd) / sizeof(uint64_t))

/** Name and help of each scalar counter, in struct order. */
extern const char *const kite_engine_stats_names[];
extern const char *const kite_engine_stats_help[];

/** Receives one STAT "name value" pair. */
typedef void (*kite_engine_emit_fn)(void *arg, const char *name, const char *value);

/**
 * Answers STAT: emit every statistic of the node (the program composes
 * them; the engine only frames them). now is unix time; group[0..grouplen)
 * the group asked for (grouplen 0: the general statistics).
 * @return false for a group the program does not have (binary: KEY_ENOENT,
 * text: ERROR), true once its statistics were emitted.
 */
typedef bool (*kite_engine_stat_fn)(void *arg, uint32_t now, const uint8_t *group,
				    uint16_t grouplen, kite_engine_emit_fn emit, void *emit_arg);

/** This node's part in a vbucket (kite_engine_cluster.role). */
enum kite_engine_role {
	KITE_ENGINE_ROLE_NONE = 0, /**< neither owner nor replica: NOT_MY_VBUCKET */
	KITE_ENGINE_ROLE_OWNER,    /**< reads and writes */
	KITE_ENGINE_ROLE_REPLICA,  /**< reads only */
	/**
	 * Owned before the last map change: FILL_GET (a client's warm-up
	 * read-through) and DELETE (its invalidation) only, until
	 * kite_engine_cluster.prev_until_tsc.
	 */
	KITE_ENGINE_ROLE_PREVIOUS,
};

/**
 * The cluster as one worker sees it: an immutable view the control thread
 * builds for each map and publishes by pointer (kited: RCU). With
 * `role` NULL the node serves every key (cluster = none).
 */
struct kite_engine_cluster {
	uint64_t epoch;        /**< the map's epoch, told in NOT_MY_VBUCKET */
	uint32_t vbucket_mask; /**< vbuckets - 1 (vbuckets a power of two) */
	const uint8_t *role;   /**< per vbucket: enum kite_engine_role; NULL: all owned */
	/**
	 * Writes are refused with ETMPFAIL once the TSC passes this deadline
	 * (self-fencing: the node's lease may be gone); NULL never fences.
	 * Read once per execution, before the table's first write.
	 */
	const volatile uint64_t *fence_tsc;
	const uint8_t *map_msg; /**< CLUSTER_MAP reply body (lib/cluster's message) */
	uint32_t map_len;
	/**
	 * Per vbucket (NULL: none): items with a CAS at most this value are
	 * from before this node's role in the vbucket last changed (it was out
	 * of the map, or another node owned the vbucket meanwhile), so they
	 * do not exist: a GET misses, any other command removes them first.
	 * 0: every item counts (kite_store_cas_mark() of the partition when
	 * the role changed).
	 */
	const uint64_t *since;
	/** The PREVIOUS role counts until the TSC passes this (warm-up, leave). */
	uint64_t prev_until_tsc;
	/** Replicas per vbucket (0: none): mutations of owned vbuckets are emitted. */
	uint8_t replicas;
};

/**
 * Replication (kited, issue 11): called after each successful mutation of
 * an owned vbucket when the view has replicas, with the item as it is now
 * (v; NULL for a deletion, kind 2). The store never learns of it.
 * dgram_arg is the out_arg of the request's datagram (synchronous
 * replication holds that datagram's replies until the replicas acked);
 * silent: the mutation's success has no response (a quiet command). A
 * FLUSH is kind 3 with vbucket KITE_ENGINE_REPL_ALL, no key, v->exptime
 * its time (0: now), dgram_arg NULL, once per worker that flushed.
 */
/* kite_engine_repl_fn's vbucket for a FLUSH (kind 3): every vbucket this worker owns. */
#define KITE_ENGINE_REPL_ALL UINT32_MAX
typedef void (*kite_engine_repl_fn)(void *arg, void *dgram_arg, uint32_t vbucket, uint8_t kind,
				    const uint8_t *key, uint16_t keylen,
				    const struct kite_store_view *v, bool silent);

/** Engine configuration; arrays are owned by the caller and outlive the engine. */
struct kite_engine_conf {
	struct kite_topo_map map;  /**< partitions, workers, base port */
	uint16_t self;              /**< this worker's number */
	struct kite_store *const *parts; /**< all partitions by number; only owned ones are touched */
	uint32_t max_item_size;
	uint16_t max_payload;       /**< UDP payload bytes per reply datagram (MTU - 28) */
	struct kite_engine_stats *stats; /**< this worker's counters (the caller's memory) */
	kite_engine_stat_fn stat;   /**< STAT's statistics; NULL: STAT answers only the terminator */
	void *stat_arg;
	/**
	 * Unix time the node started (0: unknown). A FLUSH with an absolute
	 * time at or before it is ignored, as memcached ignores one at or
	 * before its own start (its realtime() gives 1, "never").
	 */
	uint32_t started;
	kite_engine_repl_fn repl;   /**< NULL: no replication */
	void *repl_arg;
	struct kite_engine_out out;
	/**
	 * Namespace rule 2 (kite_engine_dgram.ns): whether a key belongs to
	 * some tenant (the guard's kite_guard_key_owned()); NULL: none does.
	 */
	bool (*key_owned)(const void *arg, const uint8_t *key, uint16_t len);
	const void *key_owned_arg;
	/**
	 * Text keys may hold control characters, as memcached 1.6.18 takes
	 * them (kited text-keys = memcached); false refuses them.
	 */
	bool text_any_keys;
	/**
	 * ttl-jitter: a client's future expiry moves by a uniform random
	 * fraction of at most this percent of the time left, either way (0:
	 * off). Applied once, on the owner; replicas get the result.
	 */
	uint8_t ttl_jitter;
	/**
	 * Hot keys (kite_hot.h): reads per second that make a key hot (0:
	 * no detection); the worker's snapshot goes to hot_pub (the caller's
	 * memory, read by other threads with kite_hot_read(); may be NULL).
	 * A hot key's replies carry a hint: binary responses' datatype bit
	 * KITE_DATATYPE_HOT, meta's return flag H.
	 */
	uint32_t hot_rate;
	struct kite_hot_pub *hot_pub;
	bool no_hot;      /**< benchmarks only (kited --ablate hotkeys): no counting, no hint */
	/*
	 * Benchmarks only (kited --ablate): turn one data-path step off to
	 * measure what it gains. All false in production.
	 */
	bool no_bulk;     /**< GETs looked up one by one, not in bulk */
	bool no_prefetch; /**< no software prefetch of values */
	bool no_inplace;  /**< every reply in a fresh buffer */
};

struct kite_engine;

/** Create an engine for one worker. @return NULL with rte_errno set. */
struct kite_engine *kite_engine_create(const struct kite_engine_conf *conf, int socket_id);

/** DPDK memory an engine takes (its request table and reply state). */
size_t kite_engine_footprint(void);

/** Free an engine. */
void kite_engine_free(struct kite_engine *e);

/**
 * Use this cluster view from the next request on (NULL: no cluster:
 * every key served, CLUSTER_MAP unknown). The view must stay valid until
 * the engine is given another one and has executed since.
 */
void kite_engine_set_cluster(struct kite_engine *e, const struct kite_engine_cluster *c);

/** Set the clock of every owned partition (unix seconds). */
void kite_engine_set_time(struct kite_engine *e, uint32_t now);

/**
 * Phase 1: parse datagram d into the request table; d must stay valid
 * until the next kite_engine_execute(). With more than
 * KITE_ENGINE_MAX_DGRAMS datagrams pending the table is executed first.
 * @return the workers that must see d: a bitmask (bit w = worker w) of the
 * owners of its keyed requests, every worker for a FLUSH, and `self` for
 * keyless or malformed requests and for a datagram that cannot be framed
 * (its drop is counted where it arrived). A text datagram, with the relay
 * callbacks set, is `self`'s alone: once it has executed, relay_to >= 0
 * says which worker it goes on to, with d->relay (kite_engine_relay).
 */
uint64_t kite_engine_parse(struct kite_engine *e, struct kite_engine_dgram *d);

/**
 * Forget the datagram parsed last: its requests belong to other workers
 * and it is handed to them whole (its mask lacked `self`).
 */
void kite_engine_withdraw(struct kite_engine *e);

/**
 * Phase 2: execute every parsed request in order and write the replies.
 * Requests whose partition this worker does not own are skipped (and
 * counted); their owner answers them.
 */
void kite_engine_execute(struct kite_engine *e);

/** Both phases for datagrams routed already (handoffs, tests). */
void kite_engine_process(struct kite_engine *e, struct kite_engine_dgram *d, unsigned int n);

#endif /* KITE_ENGINE_H */
