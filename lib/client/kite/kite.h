/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_KITE_H
#define KITE_KITE_H

/**
 * @file
 * libkite: the client library of the Kite cache (docs/libkite.rst).
 *
 * A client takes one or more seed nodes, fetches the cluster map from
 * them (CLUSTER_MAP; a plain memcached seed is used as a one-node cache),
 * and routes every keyed request to the owner of the key's vbucket, on the
 * port of the key's partition: vbucket = XXH64(key, 0) mod V, partition =
 * vbucket mod P. Requests are packed per node and partition into
 * datagrams up to the MTU, sent together and gathered; replies spread over
 * several datagrams are reassembled. A request that times out is sent
 * again (bounded, with jittered backoff); NOT_MY_VBUCKET makes the client
 * fetch the newer map and send the request to the new owner; a node's
 * temporary failure (ETMPFAIL) is retried after a backoff. Every request
 * ends with a status: nothing hangs past its deadline.
 *
 * Thread safety: a kite_client is used by one thread at a time (it owns
 * one socket and one batch in flight). Use one client per thread; clients
 * share nothing.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KITE_CLIENT_VERSION "0.1.0"

/** Results. Server statuses map to the first ones; the rest are the client's. */
enum kite_rc {
	KITE_OK = 0,
	KITE_NOT_FOUND,       /**< no such key (binary status 0x01) */
	KITE_EXISTS,          /**< the key exists, or the CAS did not match (0x02) */
	KITE_TOO_LARGE,       /**< the server refused the value's size (0x03) */
	KITE_INVALID,         /**< the server found the request invalid (0x04) */
	KITE_NOT_STORED,      /**< ADD/REPLACE/APPEND/PREPEND did not store (0x05) */
	KITE_NON_NUMERIC,     /**< INCR/DECR of a value that is not a number (0x06) */
	KITE_SERVER_NO_MEMORY,/**< the server is out of item memory (0x82) */
	KITE_UNKNOWN_COMMAND, /**< the server does not know the command (0x81) */
	KITE_TMPFAIL,         /**< the owner refused writes (fenced, 0x86) after every retry */
	KITE_SERVER_ERROR,    /**< another server status (kite_op.status has it) */
	KITE_TIMEOUT,         /**< no complete answer after every attempt */
	KITE_REDIRECTS,       /**< still NOT_MY_VBUCKET after refreshing the map */
	KITE_NO_MAP,          /**< no seed or member answered with a map */
	KITE_BAD_ARGUMENT,    /**< caller error: key empty or over 250 bytes, value too big for UDP, ... */
	KITE_NO_MEMORY,       /**< the client could not allocate */
	KITE_SYSTEM,          /**< a socket call failed (errno is kept) */
	KITE_PROTOCOL,        /**< a reply that does not parse */
	KITE_PENDING,         /**< asynchronous: not finished yet */
	KITE_AUTH,            /**< the node refused the tenant credentials (0x20, or a bad MAC) */
	KITE_FORBIDDEN,       /**< the command or key is outside the tenant's (0xe3) */
	KITE_RATE_LIMITED,    /**< over a source or tenant rate, or the datagram's work budget (0xe2) */
	KITE_UNVALIDATED,     /**< the reply exceeds the amplification bound and no cookie helped (0xe1) */
	KITE_UNDECRYPTABLE,   /**< value_key: a value that does not decrypt (other key, moved, altered) */
	KITE_BUSY,            /**< another thread is inside a call on this client (one thread at a time) */
	KITE_RC_MAX
};

/** A short English description of an rc ("not found", "timeout", ...). */
const char *kite_strerror(int rc);

/** What an operation does. */
enum kite_op_type {
	KITE_GET = 0, /**< value, flags and CAS of a key */
	KITE_SET,
	KITE_ADD,
	KITE_REPLACE,
	KITE_APPEND,
	KITE_PREPEND,
	KITE_DELETE,
	KITE_INCR,     /**< counter in kite_op.counter */
	KITE_DECR,
	KITE_TOUCH,    /**< new expiry */
	KITE_GAT,      /**< new expiry, and the value */
	/* Node commands: sent to kite_op.node, not routed by key. */
	KITE_NODE_NOOP,
	KITE_NODE_VERSION,  /**< result: the version text */
	KITE_NODE_STATS,    /**< result: "name value\n" lines; key: the group ("" for general) */
	KITE_NODE_FLUSH,    /**< exptime: delay in seconds (0: now) */
	KITE_NODE_TOPOLOGY, /**< result: the TOPOLOGY body (docs/protocol.rst) */
	/*
	 * Meta commands (keyed): memcached's mg, ms, md, ma with the stampede
	 * defences, as Kite's binary META_* (docs/protocol.rst). kite_op.meta
	 * holds the flags as text, as they follow the key on a text line
	 * (b and k excepted: the key is sent as it is); the return flags come
	 * back parsed into meta_ret, ttl, result_cas, result_flags.
	 */
	KITE_META_GET,    /**< mg, e.g. "v c t N30 R10"; result: the value (with v) */
	KITE_META_SET,    /**< ms: the value, flags e.g. "T60 C<cas> I" (the length is added) */
	KITE_META_DELETE, /**< md, e.g. "I T30" (mark stale) or "C<cas>" */
	KITE_META_ARITH,  /**< ma, e.g. "N0 J1 D5 v"; counter: the new value (with v) */
	KITE_OP_TYPE_MAX
};

/** kite_op.meta_ret: the meta reply's flags (and the hot hint of any response). */
enum {
	KITE_META_WIN = 0x01,     /**< W: this client must recompute the item and store it */
	KITE_META_BUSY = 0x02,    /**< Z: another client already won; wait or use what came */
	KITE_META_STALE = 0x04,   /**< X: the item is stale (marked by md I or ms I) */
	KITE_META_HOT = 0x08,     /**< H, or the datatype bit of a GET: the key is hot on its node */
	KITE_META_FETCHED = 0x10, /**< h1: read before this request */
};

/** kite_op.ttl when the reply carried no t (or t was not asked). */
#define KITE_TTL_NONE INT64_MIN

/** kite_op.node: the first seed, whatever the map says. */
#define KITE_NODE_SEED (-1)

/**
 * One operation of a batch. Fill the inputs (zero the rest), run it, read
 * the outputs; kite_op_clear() frees what the client allocated.
 */
struct kite_op {
	/* Inputs. */
	enum kite_op_type type;
	const void *key;
	size_t keylen;       /**< 1..250 for keyed operations */
	const void *value;   /**< SET/ADD/REPLACE/APPEND/PREPEND */
	size_t vallen;
	uint32_t flags;      /**< stored with the value */
	uint32_t exptime;    /**< memcached expiry: seconds (<= 30 days) or unix time; FLUSH: delay */
	uint64_t cas;        /**< compare-and-swap: only if the item's CAS is this (0: any) */
	uint64_t delta;      /**< INCR/DECR amount */
	uint64_t initial;    /**< INCR/DECR value of a missing key */
	int create;          /**< INCR/DECR: create a missing key with `initial` (else NOT_FOUND) */
	int node;            /**< node commands: member index in the map, or KITE_NODE_SEED */
	const char *meta;    /**< KITE_META_*: the flags, NUL-terminated, at most 255 bytes (NULL: none) */
	/* Outputs. */
	int rc;              /**< enum kite_rc */
	uint16_t status;     /**< the server's binary status (0 if none arrived) */
	/**
	 * GET/GAT value, VERSION, STATS text, TOPOLOGY body; on a server
	 * error its message ("Not found"); malloc'd, NUL-terminated.
	 */
	void *result;
	size_t result_len;
	uint32_t result_flags;
	uint64_t result_cas;
	uint64_t counter;    /**< INCR/DECR: the new value (META_ARITH: with v) */
	unsigned int meta_ret; /**< KITE_META_WIN, _BUSY, _STALE, _HOT, _FETCHED */
	int64_t ttl;         /**< META: t, the seconds left (-1: never expires), or KITE_TTL_NONE */
	int answered_by;     /**< member index of the node that answered (-1: none, or the seed) */
	/* The client's own bookkeeping. */
	struct {
		uint16_t attempts, redirects, tmpfails;
		uint8_t state, phase, filled;
		uint8_t via; /* read_from any: 1 sent to a replica, 2 owner only */
		uint16_t main_status;
		uint32_t fill_flags, fill_exp;
		uint16_t guard_retries; /* sent again after COOKIE_REQUIRED or a stamp refusal */
		uint64_t not_before;
	} priv;
};

/** Free an operation's result and reset its outputs (its inputs stay). */
void kite_op_clear(struct kite_op *op);

/** kite_options.retries: send each request once. */
#define KITE_NO_RETRY 0xffffffffu

/** Client options; zero fields take the defaults shown. */
struct kite_options {
	const char *seeds;          /**< "host[:port],..." (port 11211); required */
	unsigned int timeout_ms;    /**< per attempt (default 500) */
	unsigned int retries;       /**< attempts after the first on timeout (default 2; KITE_NO_RETRY: none) */
	unsigned int max_redirects; /**< map refreshes per operation on NOT_MY_VBUCKET (default 3) */
	unsigned int tmpfail_retries; /**< retries of a fenced write, with backoff (default 3) */
	unsigned int refresh_ms;    /**< fetch the map again after this long (default 5000) */
	unsigned int payload_max;   /**< UDP payload per request datagram (default 1472 - 8) */
	/**
	 * Send APPEND, PREPEND, INCR and DECR again after a timeout. Off by
	 * default: the first one may have been applied, and a second one
	 * would apply twice; such an operation ends with KITE_TIMEOUT.
	 */
	int retry_nonidempotent;
	/**
	 * Do not fetch the map in kite_open() but with the first keyed
	 * operation (a command-line tool that may only send node commands).
	 */
	int lazy_map;
	/**
	 * Warm-up (docs/libkite.rst): for this long after a map change, a GET
	 * that misses at a key's new owner is read through from its previous
	 * owner (FILL_GET) and the new owner filled with it (ADD); writes that
	 * build on the item fill first; a DELETE also invalidates the previous
	 * owner. Default 30000 (kited's warmup); KITE_NO_WARMUP: off.
	 */
	unsigned int warmup_ms;
	/**
	 * Where GETs go (docs/libkite.rst): KITE_READ_OWNER (default) or
	 * KITE_READ_ANY, spread over the owner and the vbucket's replicas (the
	 * map's `replicas`). A replica may lag its owner (async: by the
	 * replication lag; sync: not for writes already acknowledged), so a
	 * GET can return an older value; a miss or a refusal at a replica is
	 * asked again at the owner, so a replica still being filled never
	 * makes a key look absent.
	 */
	int read_from;
	/**
	 * Tenant credentials (docs/security.rst): with tenant_secret set,
	 * every datagram carries the tenant id, a stamp and a MAC under the
	 * key derived from the 32-byte secret. Keys must carry the tenant's
	 * prefix themselves.
	 */
	uint32_t tenant_id;
	const unsigned char *tenant_secret; /**< 32 bytes, or NULL: no tenant */
	/**
	 * Value encryption (docs/libkite.rst): with a 32-byte key, SET, ADD
	 * and REPLACE store XChaCha20-Poly1305 ciphertext (the tenant id and
	 * the key as associated data, 40 bytes more than the value) and GET
	 * and GAT return the plaintext; APPEND, PREPEND, INCR and DECR end
	 * with KITE_BAD_ARGUMENT. Copied at kite_open(). NULL: values as they are.
	 */
	const unsigned char *value_key;
};

/** kite_options.read_from */
enum { KITE_READ_OWNER = 0, KITE_READ_ANY = 1 };

/** kite_options.warmup_ms: no read-through after a map change. */
#define KITE_NO_WARMUP 0xffffffffu

struct kite_client;

/**
 * Open a client: resolve the seeds, fetch the map (KITE_NO_MAP if none
 * answers). *out is set on KITE_OK only.
 */
int kite_open(struct kite_client **out, const struct kite_options *o);
void kite_close(struct kite_client *c);

/* ---- synchronous: one operation, or a batch ---------------------------- */

/** Run n operations (any mix of keys, nodes and types) and wait for all. @return KITE_OK if every op's rc is KITE_OK, else the first op's failing rc. */
int kite_exec(struct kite_client *c, struct kite_op *ops, size_t n);

/** GET: *value is malloc'd (free() it), *len its length; flags and cas may be NULL. */
int kite_get(struct kite_client *c, const void *key, size_t keylen, void **value, size_t *len,
	     uint32_t *flags, uint64_t *cas);
/** SET (cas non-zero: compare-and-swap); *cas_out (may be NULL) gets the new CAS. */
int kite_set(struct kite_client *c, const void *key, size_t keylen, const void *value,
	     size_t vallen, uint32_t flags, uint32_t exptime, uint64_t cas, uint64_t *cas_out);
int kite_delete(struct kite_client *c, const void *key, size_t keylen, uint64_t cas);

/* ---- asynchronous: start a batch, drive it from an event loop ------------ */

/**
 * Start n operations (the array must stay valid until done); one batch at
 * a time per client. @return KITE_PENDING, or an error (nothing started).
 */
int kite_submit(struct kite_client *c, struct kite_op *ops, size_t n);
/**
 * Progress: read what arrived, send what is due, wait at most timeout_ms
 * (0: do not wait; -1: until done). @return KITE_PENDING, or as kite_exec.
 */
int kite_progress(struct kite_client *c, int timeout_ms);
/** The socket to wait on (readable) between kite_progress() calls. */
int kite_fd(const struct kite_client *c);
/** Milliseconds until kite_progress() has something to do without input (retries). */
int kite_next_timeout_ms(const struct kite_client *c);

/* ---- the map -------------------------------------------------------------- */

/** One member of the map as the client sees it. */
struct kite_member {
	char id[64];
	char zone[32];
	uint32_t ip; /**< host order */
	uint16_t port;
	uint16_t partitions;
	uint32_t weight;
	const char *state; /**< "active", "joining", "leaving" */
	uint32_t vbuckets_owned;
};

/** The map now: epoch, vbuckets, copies, members (count). */
struct kite_map_info {
	uint64_t epoch;
	uint32_t vbuckets;
	unsigned int copies;
	unsigned int members;
	int seed_is_memcached; /**< the seed does not know CLUSTER_MAP: a one-node map of it */
};
void kite_map_info(const struct kite_client *c, struct kite_map_info *out);
/** Member i (0..members-1); -1 if out of range. */
int kite_map_member(const struct kite_client *c, unsigned int i, struct kite_member *out);
/** Fetch the map now (from the seeds, then the members). */
int kite_map_refresh(struct kite_client *c);
/** Member index that owns a key now (-1: no map). */
int kite_key_owner(const struct kite_client *c, const void *key, size_t keylen);

/** The client's counters (since kite_open). */
struct kite_client_stats {
	uint64_t ops, datagrams_sent, datagrams_received;
	uint64_t retries;       /**< attempts after a timeout */
	uint64_t redirects;     /**< NOT_MY_VBUCKET answers */
	uint64_t tmpfails;      /**< ETMPFAIL answers */
	uint64_t map_fetches;   /**< maps fetched */
	uint64_t map_changes;   /**< maps with a newer epoch installed */
	uint64_t late_replies;  /**< datagrams of no batch in flight (late or duplicate) */
	uint64_t timeouts;      /**< operations that ended with KITE_TIMEOUT */
	uint64_t fills;         /**< warm-up read-throughs tried at a previous owner */
	uint64_t fill_hits;     /**< ... that found the item (and filled the new owner) */
	uint64_t replica_reads; /**< GETs sent to a replica (read_from = any) */
	uint64_t replica_fallbacks; /**< ... asked again at the owner (a miss or a refusal) */
	uint64_t cookies;       /**< cookies received from nodes (source validation) */
	uint64_t cookie_retries; /**< operations sent again after COOKIE_REQUIRED */
	uint64_t auth_refusals; /**< datagrams refused by a node's guard (MAC, stamp, replay) */
};
void kite_client_stats(const struct kite_client *c, struct kite_client_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* KITE_KITE_H */
