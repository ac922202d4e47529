/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libkite: routing by the cluster map, packing per node and partition,
 * reassembly, timeouts, retries and redirects (kite/kite.h).
 *
 * One batch is in flight per client. Its operations move through three
 * states: QUEUED (to be sent once not_before has passed and, after a
 * redirect, a map has been fetched), SENT (in a request datagram that
 * waits for its replies) and DONE. A request datagram ends when every
 * operation in it has its answer or its deadline passes; then what is
 * unanswered is queued again or ends with KITE_TIMEOUT. Map fetches are
 * datagrams of the same loop, so no reply of the batch is lost while one
 * is in flight.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <sodium.h>

#include "kite/kite.h"
#include "kite_cluster.h"
#include "kite_guard.h"
#include "kite_proto.h"

#define MAX_SEEDS 16
#define UDP_MAX 65507
#define MAX_MSG_DGRAMS 4096 /* reply datagrams of one message we accept */
#define MAX_COOKIES 64      /* nodes whose cookie we keep */
#define GUARD_RETRIES 3     /* sends of one op after COOKIE_REQUIRED or a stamp refusal */

#define MIN_U(a, b) ((a) < (b) ? (a) : (b))

enum { OP_QUEUED = 0, OP_SENT, OP_DONE };
/*
 * Phases of an op (warm-up, docs/libkite.rst): the request itself at the
 * owner; a read-through from the previous owner (FILL_GET) and the ADD
 * that fills the owner with it; the invalidation of a DELETE there.
 */
enum { PH_MAIN = 0, PH_FILL_GET, PH_FILL_ADD, PH_INVALIDATE };
enum { DG_BATCH = 0, DG_MAP };

/* A reply message being reassembled: `total` datagrams, by seq. */
struct rx_msg {
	uint16_t total, have;
	uint8_t **data;
	uint16_t *len;
	struct rx_msg *next;
};

/* A request datagram in flight. */
struct out_dg {
	int kind;
	uint16_t req_id;
	struct sockaddr_in to;
	int member; /* map index, or -1 */
	uint32_t *ops;
	unsigned int nops, left;
	uint64_t deadline;
	struct rx_msg *msgs;
	struct out_dg *next;
};

struct kite_client {
	struct kite_options o;
	int fd;
	struct sockaddr_in seeds[MAX_SEEDS];
	unsigned int n_seeds;
	/* The map. */
	struct kite_cluster_map map;
	bool have_map, memcached_seed;
	/* The map before the last change, for the warm-up window (read-through). */
	struct kite_cluster_map prev;
	bool have_prev;
	uint64_t prev_until_ms;
	uint64_t map_time_ms;
	bool need_map;      /* fetch one (redirect, tmpfail, refresh due) */
	int map_prefer;     /* member that told of a newer epoch (-1: none) */
	uint64_t map_seen;  /* highest epoch a node told of */
	unsigned int map_try, map_tries; /* tries of this fetch, and the most per fetch */
	struct out_dg *map_dg;
	/* The batch. */
	struct kite_op *ops;
	size_t nops, ndone;
	struct out_dg *dgs;
	uint8_t *tx, *rx;
	uint64_t rng;
	struct kite_client_stats st;
	/* The guard (docs/security.rst): a cookie per node address, tenant credentials. */
	struct {
		uint32_t ip; /* network order */
		uint8_t cookie[KITE_GUARD_COOKIE_LEN];
	} cookies[MAX_COOKIES];
	unsigned int ncookies, cookie_next;
	size_t env_len; /* envelope bytes in every datagram (0 toward a memcached seed) */
	size_t env_default;
	unsigned int map_cookie_tries;
	bool auth_refused; /* the guard refused our credentials when we asked for the map */
	bool tenant;
	uint8_t mac_key[16];
	uint64_t last_stamp;
	int64_t clock_off_us; /* the node's clock minus ours, learned from a stamp refusal */
	/* Value encryption (kite_options.value_key): the key, and each op's sealed value. */
	bool seal;
	uint8_t value_key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
	struct sealed {
		uint8_t *p;
		size_t len;
	} *sealed; /* per op of the batch; NULL without a key */
	/* A thread is inside submit/progress/exec/map_refresh (enter(), leave()). */
	bool busy;
};

static const char *const rc_names[KITE_RC_MAX] = {
	[KITE_OK] = "ok",
	[KITE_NOT_FOUND] = "not found",
	[KITE_EXISTS] = "exists (or CAS mismatch)",
	[KITE_TOO_LARGE] = "value too large",
	[KITE_INVALID] = "invalid arguments",
	[KITE_NOT_STORED] = "not stored",
	[KITE_NON_NUMERIC] = "not a number",
	[KITE_SERVER_NO_MEMORY] = "server out of memory",
	[KITE_UNKNOWN_COMMAND] = "unknown command",
	[KITE_TMPFAIL] = "temporary failure (the owner refuses writes)",
	[KITE_SERVER_ERROR] = "server error",
	[KITE_TIMEOUT] = "timeout",
	[KITE_REDIRECTS] = "too many redirects (map keeps changing)",
	[KITE_NO_MAP] = "no cluster map (no seed answered)",
	[KITE_BAD_ARGUMENT] = "bad argument",
	[KITE_NO_MEMORY] = "out of memory",
	[KITE_SYSTEM] = "system error",
	[KITE_PROTOCOL] = "malformed reply",
	[KITE_PENDING] = "pending",
	[KITE_AUTH] = "authentication refused (tenant id, secret or clock)",
	[KITE_FORBIDDEN] = "forbidden (command or key outside the tenant's)",
	[KITE_RATE_LIMITED] = "rate limited",
	[KITE_UNVALIDATED] = "reply over the amplification bound (no cookie)",
	[KITE_UNDECRYPTABLE] = "the value does not decrypt (another key, moved or altered)",
	[KITE_BUSY] = "the client is in use by another thread",
};

const char *
kite_strerror(int rc)
{
	return rc >= 0 && rc < KITE_RC_MAX && rc_names[rc] != NULL ? rc_names[rc] : "unknown error";
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
rnd(struct kite_client *c)
{
	/* xorshift64*: jitter and request ids, not security. */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 0x2545F4914F6CDD1DULL;
}

/* Backoff for attempt n (1, 2, ...): base * 2^(n-1), capped, full jitter in [half, whole]. */
static uint64_t
backoff_ms(struct kite_client *c, unsigned int n, unsigned int base, unsigned int cap)
{
	uint64_t b = (uint64_t)base << (n > 8 ? 8 : n - 1);

	if (b > cap)
		b = cap;
	return b / 2 + rnd(c) % (b / 2 + 1);
}

void
kite_op_clear(struct kite_op *op)
{
	free(op->result);
	op->result = NULL;
	op->result_len = 0;
	op->result_flags = 0;
	op->result_cas = 0;
	op->counter = 0;
	op->meta_ret = 0;
	op->ttl = KITE_TTL_NONE;
	op->rc = KITE_PENDING;
	op->status = 0;
	op->answered_by = -1;
	memset(&op->priv, 0, sizeof(op->priv));
}

/* ---- addresses ------------------------------------------------------------- */

static int
parse_seeds(struct kite_client *c, const char *list)
{
	char buf[1024], *save = NULL;

	if (list == NULL || strlen(list) >= sizeof(buf))
		return KITE_BAD_ARGUMENT;
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *t = strtok_r(buf, ", ", &save); t != NULL; t = strtok_r(NULL, ", ", &save)) {
		char *colon = strrchr(t, ':');
		const char *port = "11211";
		struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_DGRAM }, *ai;

		if (c->n_seeds == MAX_SEEDS)
			return KITE_BAD_ARGUMENT;
		if (colon != NULL) {
			*colon = '\0';
			port = colon + 1;
		}
		if (getaddrinfo(t, port, &hints, &ai) != 0)
			return KITE_BAD_ARGUMENT;
		memcpy(&c->seeds[c->n_seeds++], ai->ai_addr, sizeof(struct sockaddr_in));
		freeaddrinfo(ai);
	}
	return c->n_seeds > 0 ? KITE_OK : KITE_BAD_ARGUMENT;
}

static void
member_addr(const struct kite_client *c, int m, uint16_t partition, struct sockaddr_in *a)
{
	const struct kite_cluster_member *mb = &c->map.members[m];

	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(mb->ip);
	a->sin_port = htons((uint16_t)(mb->base_port + partition));
}

/* ---- the map ----------------------------------------------------------------- */

/* A one-node map of a seed that does not know CLUSTER_MAP (memcached). */
static int
map_of_seed(struct kite_client *c, const struct sockaddr_in *seed)
{
	struct kite_cluster_member m;
	struct kite_cluster_map nm;

	memset(&m, 0, sizeof(m));
	snprintf(m.id, sizeof(m.id), "seed");
	m.weight = 1;
	m.ip = ntohl(seed->sin_addr.s_addr);
	m.base_port = ntohs(seed->sin_port);
	m.partitions = 1;
	m.state = KITE_CLUSTER_ACTIVE;
	if (kite_cluster_map_build(&nm, &m, 1, KITE_CLUSTER_MIN_VBUCKETS, 1, 0) != 0)
		return KITE_NO_MEMORY;
	if (c->have_map)
		kite_cluster_map_free(&c->map);
	c->map = nm;
	c->have_map = true;
	c->memcached_seed = true;
	return KITE_OK;
}

/* Install the map of a CLUSTER_MAP body if it is newer. */
static int
map_install(struct kite_client *c, const uint8_t *body, size_t len)
{
	struct kite_cluster_msg *m = malloc(sizeof(*m));
	struct kite_cluster_map nm;
	int rc = KITE_OK;

	if (m == NULL)
		return KITE_NO_MEMORY;
	if (kite_cluster_msg_decode(body, len, m) != 0) {
		rc = KITE_PROTOCOL;
		goto out;
	}
	c->map_time_ms = now_ms();
	if (m->epoch > c->map_seen)
		c->map_seen = m->epoch;
	if (c->have_map && !c->memcached_seed && m->epoch <= c->map.epoch)
		goto out; /* not newer (a node behind us, or the same) */
	if (kite_cluster_map_build(&nm, m->members, m->n_members, m->vbuckets, m->copies,
				   m->epoch) != 0) {
		rc = KITE_PROTOCOL;
		goto out;
	}
	nm.replicas = m->replicas;
	/*
	 * A newer epoch with the same members moves nothing: the map before the
	 * last real change stays the one to read through from.
	 */
	if (c->have_map && c->map.n_members == nm.n_members &&
	    memcmp(c->map.members, nm.members, sizeof(*nm.members) * nm.n_members) == 0) {
		kite_cluster_map_free(&c->map);
		c->map = nm;
		c->st.map_changes++;
		goto out;
	}
	if (c->have_prev) {
		kite_cluster_map_free(&c->prev);
		c->have_prev = false;
	}
	if (c->have_map && !c->memcached_seed && c->o.warmup_ms != KITE_NO_WARMUP &&
	    c->map.vbuckets == nm.vbuckets) {
		/* Keys of moved vbuckets are read through from their previous owner for a while. */
		c->prev = c->map;
		c->have_prev = true;
		c->prev_until_ms = c->map_time_ms + c->o.warmup_ms;
	} else if (c->have_map) {
		kite_cluster_map_free(&c->map);
	}
	c->map = nm;
	c->have_map = true;
	c->memcached_seed = false;
	c->env_len = c->env_default;
	c->st.map_changes++;
out:
	free(m);
	return rc;
}

/* ---- request encoding ------------------------------------------------------- */

static const uint8_t op_opcode[KITE_OP_TYPE_MAX] = {
	[KITE_GET] = KITE_OP_GETK,	   [KITE_SET] = KITE_OP_SET,
	[KITE_ADD] = KITE_OP_ADD,	   [KITE_REPLACE] = KITE_OP_REPLACE,
	[KITE_APPEND] = KITE_OP_APPEND,	   [KITE_PREPEND] = KITE_OP_PREPEND,
	[KITE_DELETE] = KITE_OP_DELETE,	   [KITE_INCR] = KITE_OP_INCREMENT,
	[KITE_DECR] = KITE_OP_DECREMENT,   [KITE_TOUCH] = KITE_OP_TOUCH,
	[KITE_GAT] = KITE_OP_GATK,	   [KITE_NODE_NOOP] = KITE_OP_NOOP,
	[KITE_NODE_VERSION] = KITE_OP_VERSION,  [KITE_NODE_STATS] = KITE_OP_STAT,
	[KITE_NODE_FLUSH] = KITE_OP_FLUSH,	   [KITE_NODE_TOPOLOGY] = KITE_OP_TOPOLOGY,
	[KITE_META_GET] = KITE_OP_META_GET,	   [KITE_META_SET] = KITE_OP_META_SET,
	[KITE_META_DELETE] = KITE_OP_META_DELETE, [KITE_META_ARITH] = KITE_OP_META_ARITH,
};

static bool
is_meta(enum kite_op_type t)
{
	return t >= KITE_META_GET && t <= KITE_META_ARITH;
}

static bool
keyed(enum kite_op_type t)
{
	return t <= KITE_GAT || is_meta(t);
}

static bool
idempotent(enum kite_op_type t)
{
	return t != KITE_APPEND && t != KITE_PREPEND && t != KITE_INCR && t != KITE_DECR &&
	       t != KITE_META_ARITH;
}

/* Most bytes of meta flags (the extras' length is a byte). */
#define META_FLAGS_MAX 255

/* A meta op's flags: printable, no line end, at most META_FLAGS_MAX bytes. */
static bool
meta_flags_ok(const char *m)
{
	size_t n = 0;

	if (m == NULL)
		return true;
	for (; m[n] != '\0'; n++)
		if (n == META_FLAGS_MAX || (unsigned char)m[n] < 0x20 || (unsigned char)m[n] > 0x7e)
			return false;
	return true;
}

/* What goes on the wire for an op in its current phase. */
struct wire {
	uint8_t opcode, extlen;
	uint8_t ext[20];
	const void *extp; /* the extras when not in ext (meta flags) */
	const void *key;
	uint16_t keylen;
	const void *val;
	uint32_t vallen;
	uint64_t cas;
};

/* The sealed value of an op of the batch (value encryption), or NULL. */
static const struct sealed *
sealed_of(const struct kite_client *c, const struct kite_op *op)
{
	if (c->sealed == NULL || op < c->ops || op >= c->ops + c->nops)
		return NULL;
	return c->sealed[op - c->ops].p != NULL ? &c->sealed[op - c->ops] : NULL;
}

static void
sealed_free(struct kite_client *c)
{
	if (c->sealed == NULL)
		return;
	for (size_t i = 0; i < c->nops; i++)
		free(c->sealed[i].p);
	free(c->sealed);
	c->sealed = NULL;
}

static void
wire_of(const struct kite_client *c, const struct kite_op *op, struct wire *w)
{
	memset(w, 0, sizeof(*w));
	w->key = keyed(op->type) ? op->key : NULL;
	w->keylen = keyed(op->type) ? (uint16_t)op->keylen : 0;
	switch (op->priv.phase) {
	case PH_FILL_GET:
		w->opcode = KITE_OP_FILL_GET;
		return;
	case PH_FILL_ADD:
		/* The item as the previous owner had it: value, flags, absolute expiry. */
		w->opcode = KITE_OP_ADD;
		kite_proto_put32(w->ext, op->priv.fill_flags);
		kite_proto_put32(w->ext + 4, op->priv.fill_exp);
		w->extlen = 8;
		w->val = op->result;
		w->vallen = (uint32_t)op->result_len;
		return;
	case PH_INVALIDATE:
		w->opcode = KITE_OP_DELETE;
		return;
	default:
		break;
	}
	w->opcode = op_opcode[op->type];
	switch (op->type) {
	case KITE_SET:
	case KITE_ADD:
	case KITE_REPLACE:
		kite_proto_put32(w->ext, op->flags);
		kite_proto_put32(w->ext + 4, op->exptime);
		w->extlen = 8;
		/* fall through */
	case KITE_APPEND:
	case KITE_PREPEND:
		w->val = op->value;
		w->vallen = (uint32_t)op->vallen;
		w->cas = op->cas;
		if (sealed_of(c, op) != NULL) {
			w->val = sealed_of(c, op)->p;
			w->vallen = (uint32_t)sealed_of(c, op)->len;
		}
		break;
	case KITE_DELETE:
		w->cas = op->cas;
		break;
	case KITE_INCR:
	case KITE_DECR:
		kite_proto_put64(w->ext, op->delta);
		kite_proto_put64(w->ext + 8, op->initial);
		kite_proto_put32(w->ext + 16, op->create ? op->exptime : KITE_DELTA_NO_CREATE);
		w->extlen = 20;
		break;
	case KITE_TOUCH:
	case KITE_GAT:
		kite_proto_put32(w->ext, op->exptime);
		w->extlen = 4;
		break;
	case KITE_NODE_FLUSH:
		if (op->exptime != 0) {
			kite_proto_put32(w->ext, op->exptime);
			w->extlen = 4;
		}
		break;
	case KITE_NODE_STATS:
		w->key = op->key;
		w->keylen = (uint16_t)op->keylen;
		break;
	case KITE_META_SET:
		w->val = op->value;
		w->vallen = (uint32_t)op->vallen;
		/* fall through */
	case KITE_META_GET:
	case KITE_META_DELETE:
	case KITE_META_ARITH:
		if (op->meta != NULL) {
			w->extp = op->meta;
			w->extlen = (uint8_t)strlen(op->meta);
		}
		break;
	default:
		break;
	}
}

/* Encode op (opaque = its index) at out; bytes, or -ENOSPC. */
static int
encode(const struct kite_client *c, const struct kite_op *op, uint32_t opaque, uint8_t *out,
       size_t cap)
{
	struct wire w;

	wire_of(c, op, &w);
	return kite_proto_build_req(out, cap, w.opcode, opaque, w.cas,
				    w.extlen ? (w.extp != NULL ? w.extp : w.ext) : NULL, w.extlen,
				    w.key, w.keylen, w.val, w.vallen);
}

/* The encoded size of an op, exactly (what encode() writes). */
static size_t
encoded_len(const struct kite_client *c, const struct kite_op *op)
{
	struct wire w;

	wire_of(c, op, &w);
	return (size_t)KITE_BIN_HDR_LEN + w.extlen + w.keylen + w.vallen;
}

/* ---- finishing operations ---------------------------------------------------- */

/*
 * Value encryption: XChaCha20-Poly1305 (libsodium's IETF construction)
 * with a random 24-byte nonce; the associated data is the tenant id and
 * the whole key, so a sealed value cannot be moved to another key or
 * tenant. The node stores nonce || ciphertext || tag.
 */
#define SEAL_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES

static size_t
seal_ad(const struct kite_client *c, const struct kite_op *op, uint8_t *ad)
{
	kite_proto_put32(ad, c->o.tenant_id);
	memcpy(ad + 4, op->key, op->keylen);
	return 4 + op->keylen;
}

static int
seal(struct kite_client *c, const struct kite_op *op, struct sealed *out)
{
	uint8_t ad[4 + KITE_KEY_MAX];
	size_t adlen = seal_ad(c, op, ad);
	unsigned long long clen;

	out->len = SEAL_NONCE + op->vallen + SEAL_TAG;
	out->p = malloc(out->len);
	if (out->p == NULL)
		return KITE_NO_MEMORY;
	randombytes_buf(out->p, SEAL_NONCE);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out->p + SEAL_NONCE, &clen, op->value,
						   op->vallen, ad, adlen, NULL, out->p,
						   c->value_key);
	return KITE_OK;
}

static int
unseal(struct kite_client *c, struct kite_op *op)
{
	uint8_t ad[4 + KITE_KEY_MAX];
	size_t adlen = seal_ad(c, op, ad);
	unsigned long long plen;
	uint8_t *v = op->result, *m;

	m = op->result_len >= SEAL_NONCE + SEAL_TAG ? malloc(op->result_len - SEAL_NONCE - SEAL_TAG + 1)
						    : NULL;
	if (m == NULL ||
	    crypto_aead_xchacha20poly1305_ietf_decrypt(m, &plen, NULL, v + SEAL_NONCE,
						       op->result_len - SEAL_NONCE, ad, adlen, v,
						       c->value_key) != 0) {
		free(m);
		free(op->result);
		op->result = NULL;
		op->result_len = 0;
		return KITE_UNDECRYPTABLE;
	}
	m[plen] = '\0';
	free(op->result);
	op->result = m;
	op->result_len = (size_t)plen;
	return KITE_OK;
}

static void
finish(struct kite_client *c, struct kite_op *op, int rc)
{
	if (op->priv.state == OP_DONE)
		return;
	if (c->seal && rc == KITE_OK && (op->type == KITE_GET || op->type == KITE_GAT) &&
	    op->result != NULL)
		rc = unseal(c, op);
	op->rc = rc;
	op->priv.state = OP_DONE;
	c->ndone++;
	if (rc == KITE_TIMEOUT)
		c->st.timeouts++;
}

/* A reply only Kite sends: from now on every datagram carries the envelope. */
static void
kite_seen(struct kite_client *c)
{
	c->env_len = c->env_default;
}

static int
rc_of_status(uint16_t s)
{
	switch (s) {
	case KITE_STATUS_OK: return KITE_OK;
	case KITE_STATUS_KEY_ENOENT: return KITE_NOT_FOUND;
	case KITE_STATUS_KEY_EEXISTS: return KITE_EXISTS;
	case KITE_STATUS_E2BIG: return KITE_TOO_LARGE;
	case KITE_STATUS_EINVAL: return KITE_INVALID;
	case KITE_STATUS_NOT_STORED: return KITE_NOT_STORED;
	case KITE_STATUS_DELTA_BADVAL: return KITE_NON_NUMERIC;
	case KITE_STATUS_ENOMEM: return KITE_SERVER_NO_MEMORY;
	case KITE_STATUS_UNKNOWN_COMMAND: return KITE_UNKNOWN_COMMAND;
	case KITE_STATUS_ETMPFAIL: return KITE_TMPFAIL;
	case KITE_STATUS_AUTH_ERROR: return KITE_AUTH;
	case KITE_STATUS_FORBIDDEN: return KITE_FORBIDDEN;
	case KITE_STATUS_RATE_LIMITED: return KITE_RATE_LIMITED;
	case KITE_STATUS_COOKIE_REQUIRED: return KITE_UNVALIDATED;
	default: return KITE_SERVER_ERROR;
	}
}

/* op->result: a NUL-terminated copy of p[0..n) (an earlier one is freed). false: no memory. */
static bool
set_result(struct kite_op *op, const void *p, size_t n)
{
	free(op->result);
	op->result = malloc(n + 1);
	op->result_len = 0;
	if (op->result == NULL)
		return false;
	memcpy(op->result, p, n);
	((char *)op->result)[n] = '\0';
	op->result_len = n;
	return true;
}

static int
append_result(struct kite_op *op, const void *a, size_t alen, const void *b, size_t blen,
	      const char *tail)
{
	size_t tl = tail != NULL ? strlen(tail) : 0;
	char *nr = realloc(op->result, op->result_len + alen + blen + tl + 2);

	if (nr == NULL)
		return -1;
	memcpy(nr + op->result_len, a, alen);
	op->result_len += alen;
	if (b != NULL) {
		nr[op->result_len++] = ' ';
		memcpy(nr + op->result_len, b, blen);
		op->result_len += blen;
	}
	if (tl > 0)
		memcpy(nr + op->result_len, tail, tl);
	op->result_len += tl;
	nr[op->result_len] = '\0';
	op->result = nr;
	return 0;
}

/* Queue an op again for a retry at `when`. */
static void
requeue(struct kite_op *op, uint64_t when)
{
	op->priv.state = OP_QUEUED;
	op->priv.not_before = when;
}

static bool prev_owner(struct kite_client *c, const struct kite_op *op, struct sockaddr_in *to);

/* Into another phase (a new request: its own attempts). */
static void
to_phase(struct kite_op *op, uint8_t phase, uint64_t now)
{
	op->priv.phase = phase;
	op->priv.attempts = 0;
	requeue(op, now);
}

static void
drop_result(struct kite_op *op)
{
	free(op->result);
	op->result = NULL;
	op->result_len = 0;
}

/* A fill step that failed, timed out or found nothing: the op goes on without it. */
static void
fill_over(struct kite_client *c, struct kite_op *op, uint64_t now)
{
	uint8_t phase = op->priv.phase;

	drop_result(op);
	if (phase == PH_INVALIDATE) {
		op->status = op->priv.main_status;
		finish(c, op, rc_of_status(op->priv.main_status));
	} else if (op->type == KITE_GET && phase == PH_FILL_GET) {
		/* The owner missed and so did the previous owner. */
		op->status = KITE_STATUS_KEY_ENOENT;
		finish(c, op, KITE_NOT_FOUND);
	} else {
		/* A prefill that found nothing, or a GET whose ADD lost: ask the owner. */
		to_phase(op, PH_MAIN, now);
	}
}

/* A response to a fill step. */
static void
on_fill_response(struct kite_client *c, struct kite_op *op, const struct kite_res *x,
		 uint64_t now)
{
	switch (op->priv.phase) {
	case PH_FILL_GET:
		if (x->status != KITE_STATUS_OK || x->extlen < 8)
			break;
		drop_result(op);
		if (!set_result(op, x->value, x->vallen))
			break;
		op->priv.fill_flags = kite_proto_get32(x->extras);
		op->priv.fill_exp = kite_proto_get32(x->extras + 4);
		c->st.fill_hits++;
		to_phase(op, PH_FILL_ADD, now);
		return;
	case PH_FILL_ADD:
		if (op->type == KITE_GET && x->status == KITE_STATUS_OK) {
			/* The owner holds it now, as the previous owner had it. */
			op->status = KITE_STATUS_OK;
			op->result_flags = op->priv.fill_flags;
			op->result_cas = x->cas;
			finish(c, op, KITE_OK);
			return;
		}
		break; /* EXISTS: the owner has a newer item; others: go on without */
	case PH_INVALIDATE:
		if (x->status == KITE_STATUS_OK || op->priv.main_status == KITE_STATUS_OK) {
			op->status = KITE_STATUS_OK;
			finish(c, op, KITE_OK);
			return;
		}
		break;
	default:
		break;
	}
	fill_over(c, op, now);
}

/* A meta reply's return flags (text, e.g. "t100 c42 f0 h1 W"). */
static void
meta_parse(struct kite_op *op, const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t j = i;
		char num[24];
		size_t k;

		while (j < n && p[j] != ' ')
			j++;
		/* The token p[i..j): a flag letter and its value. */
		if (j > i) {
			k = j - i - 1 < sizeof(num) - 1 ? j - i - 1 : sizeof(num) - 1;
			memcpy(num, p + i + 1, k);
			num[k] = '\0';
			switch (p[i]) {
			case 'W': op->meta_ret |= KITE_META_WIN; break;
			case 'Z': op->meta_ret |= KITE_META_BUSY; break;
			case 'X': op->meta_ret |= KITE_META_STALE; break;
			case 'H': op->meta_ret |= KITE_META_HOT; break;
			case 'h':
				if (num[0] == '1')
					op->meta_ret |= KITE_META_FETCHED;
				break;
			case 't': op->ttl = strtoll(num, NULL, 10); break;
			case 'c': op->result_cas = strtoull(num, NULL, 10); break;
			case 'f': op->result_flags = (uint32_t)strtoul(num, NULL, 10); break;
			default: break;
			}
		}
		i = j + 1;
	}
}

/* One response of a batch datagram; true when it completes its op. */
static bool
on_response(struct kite_client *c, struct out_dg *d, const struct kite_res *x)
{
	struct kite_op *op;
	uint64_t now;

	if (x->opaque >= c->nops)
		return false;
	op = &c->ops[x->opaque];
	if (op->priv.state != OP_SENT)
		return false; /* a duplicate */
	bool in_dg = false;
	for (unsigned int i = 0; i < d->nops; i++)
		in_dg |= d->ops[i] == x->opaque;
	if (!in_dg)
		return false;
	op->status = x->status;
	op->answered_by = d->member;
	now = now_ms();
	if (op->priv.phase != PH_MAIN) {
		on_fill_response(c, op, x, now);
		return true;
	}
	/* A replica that misses or refuses: the owner is asked (it may be filling). */
	if (op->priv.via == 1 && x->status != KITE_STATUS_OK) {
		op->priv.via = 2;
		c->st.replica_fallbacks++;
		requeue(op, now);
		return true;
	}
	/* Warm-up: a miss at the new owner is read through from the previous one. */
	if (!op->priv.filled && ((op->type == KITE_GET && x->status == KITE_STATUS_KEY_ENOENT) ||
				 (op->type == KITE_DELETE && (x->status == KITE_STATUS_OK ||
							      x->status == KITE_STATUS_KEY_ENOENT)))) {
		struct sockaddr_in to;

		if (prev_owner(c, op, &to)) {
			op->priv.filled = 1;
			op->priv.main_status = x->status;
			c->st.fills += op->type == KITE_GET;
			to_phase(op, op->type == KITE_GET ? PH_FILL_GET : PH_INVALIDATE, now);
			return true;
		}
	}
	if (x->status == KITE_STATUS_COOKIE_REQUIRED)
		kite_seen(c);
	if (x->status == KITE_STATUS_COOKIE_REQUIRED && op->priv.guard_retries < GUARD_RETRIES) {
		/* The reply's envelope brought a cookie: the next send is validated. */
		op->priv.guard_retries++;
		c->st.cookie_retries++;
		requeue(op, now);
		return true;
	}
	if (x->status == KITE_STATUS_NOT_MY_VBUCKET) {
		uint64_t epoch = x->vallen >= 8 ? kite_proto_get64(x->value) : 0;

		c->st.redirects++;
		if (++op->priv.redirects > c->o.max_redirects) {
			finish(c, op, KITE_REDIRECTS);
			return true;
		}
		c->need_map = true;
		if (epoch > c->map_seen) {
			c->map_seen = epoch;
			c->map_prefer = d->member;
		}
		/* Behind us, the node will catch up: give it a moment. */
		requeue(op, now + (c->have_map && epoch <= c->map.epoch
					   ? backoff_ms(c, op->priv.redirects, 20, 500)
					   : 0));
		return true;
	}
	if (x->status == KITE_STATUS_ETMPFAIL) {
		c->st.tmpfails++;
		if (++op->priv.tmpfails > c->o.tmpfail_retries) {
			finish(c, op, KITE_TMPFAIL);
			return true;
		}
		/* The owner fenced itself: its lease may be gone and the map about to change. */
		c->need_map = true;
		requeue(op, now + backoff_ms(c, op->priv.tmpfails, 100, 1000));
		return true;
	}
	if (x->datatype & KITE_DATATYPE_HOT)
		op->meta_ret |= KITE_META_HOT;
	if (is_meta(op->type) && x->status != KITE_STATUS_EINVAL) {
		/* Return flags (any status: EN, NS, EX carry them too), then the value. */
		meta_parse(op, x->extras, x->extlen);
		if (x->status == KITE_STATUS_OK && x->vallen > 0) {
			if (!set_result(op, x->value, x->vallen)) {
				finish(c, op, KITE_NO_MEMORY);
				return true;
			}
			if (op->type == KITE_META_ARITH)
				op->counter = strtoull(op->result, NULL, 10);
		}
		finish(c, op, rc_of_status(x->status));
		return true;
	}
	if (x->status == KITE_STATUS_OK) {
		op->result_flags = x->extlen >= 4 ? kite_proto_get32(x->extras) : 0;
		switch (op->type) {
		case KITE_GET:
		case KITE_GAT:
		case KITE_NODE_VERSION:
		case KITE_NODE_TOPOLOGY:
			if (!set_result(op, x->value, x->vallen)) {
				finish(c, op, KITE_NO_MEMORY);
				return true;
			}
			break;
		case KITE_INCR:
		case KITE_DECR:
			op->counter = x->vallen >= 8 ? kite_proto_get64(x->value) : 0;
			break;
		case KITE_NODE_STATS:
			if (x->keylen > 0) {
				if (append_result(op, x->key, x->keylen, x->value, x->vallen, "\n") != 0)
					finish(c, op, KITE_NO_MEMORY);
				return op->priv.state == OP_DONE;
			}
			break;
		default:
			break;
		}
		op->result_cas = x->cas;
	} else if (x->vallen > 0 && op->result == NULL) {
		/* The server's message ("Not found", ...): kept for the caller to show. */
		set_result(op, x->value, x->vallen);
	}
	finish(c, op, rc_of_status(x->status));
	return true;
}

/* ---- datagrams --------------------------------------------------------------- */

static void
msgs_free(struct rx_msg *m)
{
	while (m != NULL) {
		struct rx_msg *n = m->next;

		for (unsigned int i = 0; i < m->total; i++)
			free(m->data[i]);
		free(m->data);
		free(m->len);
		free(m);
		m = n;
	}
}

static void
dg_free(struct out_dg *d)
{
	msgs_free(d->msgs);
	free(d->ops);
	free(d);
}

static uint16_t
new_req_id(struct kite_client *c)
{
	for (;;) {
		uint16_t id = (uint16_t)rnd(c);
		bool used = false;

		for (struct out_dg *d = c->dgs; d != NULL; d = d->next)
			used |= d->req_id == id;
		if (!used)
			return id;
	}
}

static const uint8_t *
cookie_of(const struct kite_client *c, uint32_t ip)
{
	for (unsigned int i = 0; i < c->ncookies; i++)
		if (c->cookies[i].ip == ip)
			return c->cookies[i].cookie;
	return NULL;
}

static void
cookie_keep(struct kite_client *c, uint32_t ip, const uint8_t *cookie)
{
	unsigned int i;

	for (i = 0; i < c->ncookies; i++)
		if (c->cookies[i].ip == ip)
			break;
	if (i == c->ncookies) {
		if (c->ncookies < MAX_COOKIES)
			c->ncookies++;
		else
			i = c->cookie_next++ % MAX_COOKIES;
	}
	c->cookies[i].ip = ip;
	memcpy(c->cookies[i].cookie, cookie, KITE_GUARD_COOKIE_LEN);
	c->st.cookies++;
}

/*
 * The envelope after the frame (c->env_len bytes, the same for every
 * datagram): the node's cookie if we hold one, else as many zero bytes
 * (so the cookie the reply brings never makes it larger than the
 * request); the tenant's id, stamp and MAC (signed in dg_send()).
 */
static void
env_put(struct kite_client *c, const struct out_dg *d)
{
	const uint8_t *ck;
	uint8_t flags = 0;
	uint64_t stamp = 0;
	int n;

	if (c->env_len == 0)
		return;
	ck = cookie_of(c, d->to.sin_addr.s_addr);
	if (ck != NULL)
		flags |= KITE_GUARD_F_COOKIE;
	if (c->tenant) {
		flags |= KITE_GUARD_F_AUTH;
		/* Strictly increasing, near the node's clock. */
		stamp = kite_guard_stamp_next(&c->last_stamp,
					      (uint64_t)((int64_t)kite_guard_wall_us() + c->clock_off_us));
	}
	/* Without a cookie the COOKIE field's bytes stay, as padding at the end. */
	n = kite_guard_env_write(c->tx + KITE_FRAME_HDR_LEN, c->env_len, flags, ck, c->o.tenant_id,
				 stamp, 0, 0, c->env_len);
	(void)n; /* env_len is what these flags take at most: it fits */
}

static int
dg_send(struct kite_client *c, struct out_dg *d, size_t len)
{
	struct kite_proto_frame f = { d->req_id, 0, 1, 0 };

	kite_proto_frame_write(c->tx, &f);
	env_put(c, d);
	if (c->tenant)
		kite_guard_sign(c->tx, len, c->mac_key);
	for (;;) {
		if (sendto(c->fd, c->tx, len, 0, (const struct sockaddr *)&d->to, sizeof(d->to)) >= 0)
			break;
		if (errno == EINTR)
			continue;
		/* Full socket buffer or a transient ICMP error: the deadline retries it. */
		if (errno == EAGAIN || errno == ENOBUFS || errno == ECONNREFUSED ||
		    errno == EHOSTUNREACH || errno == ENETUNREACH)
			break;
		return KITE_SYSTEM;
	}
	c->st.datagrams_sent++;
	d->deadline = now_ms() + c->o.timeout_ms;
	d->next = c->dgs;
	c->dgs = d;
	return KITE_OK;
}

/* Ask one address for the map. */
static void
map_fetch_start(struct kite_client *c)
{
	struct out_dg *d = calloc(1, sizeof(*d));
	unsigned int t = c->map_try++;
	int n;

	if (d == NULL)
		return;
	d->kind = DG_MAP;
	d->member = -1;
	/* Who told of a newer map first, then the seeds and members in turn. */
	if (t == 0 && c->map_prefer >= 0 && c->have_map && c->map_prefer < c->map.n_members) {
		d->member = c->map_prefer;
		member_addr(c, d->member, 0, &d->to);
	} else if (!c->have_map || c->memcached_seed || t % 2 == 1 || c->map.n_members == 0) {
		d->to = c->seeds[t % c->n_seeds];
	} else {
		d->member = (int)(t / 2 % c->map.n_members);
		member_addr(c, d->member, 0, &d->to);
	}
	d->req_id = new_req_id(c);
	n = kite_proto_build_req(c->tx + KITE_FRAME_HDR_LEN + c->env_len,
				 UDP_MAX - KITE_FRAME_HDR_LEN - c->env_len, KITE_OP_CLUSTER_MAP, 0, 0,
				 NULL, 0, NULL, 0, NULL, 0);
	d->left = 1;
	c->st.map_fetches++;
	if (n < 0 || dg_send(c, d, (size_t)n + KITE_FRAME_HDR_LEN + c->env_len) != KITE_OK) {
		dg_free(d);
		return;
	}
	c->map_dg = d;
}

static void
unlink_dg(struct kite_client *c, struct out_dg *d)
{
	for (struct out_dg **p = &c->dgs; *p != NULL; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	if (c->map_dg == d)
		c->map_dg = NULL;
}

/*
 * The previous owner of a keyed op's vbucket, while the warm-up window
 * of the last map change is open and the vbucket moved; false otherwise.
 */
static bool
prev_owner(struct kite_client *c, const struct kite_op *op, struct sockaddr_in *to)
{
	if (!c->have_prev || !keyed(op->type))
		return false;
	if (now_ms() >= c->prev_until_ms) {
		kite_cluster_map_free(&c->prev);
		c->have_prev = false;
		return false;
	}
	uint32_t vb = kite_cluster_vbucket(op->key, (uint16_t)op->keylen, c->map.vbuckets);
	uint8_t p = kite_cluster_owner(&c->prev, vb), m = kite_cluster_owner(&c->map, vb);
	const struct kite_cluster_member *pm, *mm;

	if (p == KITE_CLUSTER_NONE || m == KITE_CLUSTER_NONE)
		return false;
	pm = &c->prev.members[p];
	mm = &c->map.members[m];
	if (pm->ip == mm->ip && pm->base_port == mm->base_port)
		return false; /* it did not move */
	memset(to, 0, sizeof(*to));
	to->sin_family = AF_INET;
	to->sin_addr.s_addr = htonl(pm->ip);
	to->sin_port = htons((uint16_t)(pm->base_port + (vb & (pm->partitions - 1u))));
	return true;
}

/* Ops that build on the item: they fill the new owner first during warm-up. */
static bool
needs_prefill(const struct kite_op *op)
{
	switch (op->type) {
	case KITE_GET:    /* read through after a miss instead */
	case KITE_DELETE: /* invalidated at the previous owner after */
		return false;
	case KITE_SET:
		return op->cas != 0;
	default:
		return keyed(op->type);
	}
}

/* The op's destination for the current map; false if it has none. */
static bool
route(struct kite_client *c, struct kite_op *op, struct sockaddr_in *to, int *member)
{
	if (!keyed(op->type)) {
		if (op->node == KITE_NODE_SEED || !c->have_map || op->node < 0 ||
		    op->node >= c->map.n_members) {
			if (op->node != KITE_NODE_SEED && c->have_map)
				return false;
			*to = c->seeds[0];
			*member = c->memcached_seed ? 0 : -1;
			return true;
		}
		*member = op->node;
		member_addr(c, op->node, 0, to);
		return true;
	}
	if (!c->have_map)
		return false;
	if (op->priv.phase == PH_FILL_GET || op->priv.phase == PH_INVALIDATE) {
		if (!prev_owner(c, op, to))
			return false;
		*member = -1;
		return true;
	}
	uint32_t vb = kite_cluster_vbucket(op->key, (uint16_t)op->keylen, c->map.vbuckets);
	uint8_t m = kite_cluster_owner(&c->map, vb);

	if (m == KITE_CLUSTER_NONE)
		return false;
	/* read_from = any: one of the owner and its replicas, at random. */
	op->priv.via = op->priv.via == 2 ? 2 : 0;
	if (op->type == KITE_GET && c->o.read_from == KITE_READ_ANY && op->priv.via == 0 &&
	    c->map.replicas > 0 && !c->memcached_seed) {
		unsigned int k = (unsigned int)(rnd(c) % (c->map.replicas + 1u));
		uint8_t r = kite_cluster_nodes(&c->map, vb)[k];

		if (k > 0 && r != KITE_CLUSTER_NONE) {
			m = r;
			op->priv.via = 1;
			c->st.replica_reads++;
		}
	}
	*member = m;
	member_addr(c, m, (uint16_t)(vb & (c->map.members[m].partitions - 1u)), to);
	return true;
}

/*
 * Encode the ops of datagram d into c->tx and send it; if it cannot be
 * sent its ops end with KITE_SYSTEM and d is freed.
 */
static int
dg_flush(struct kite_client *c, struct out_dg *d)
{
	size_t len = KITE_FRAME_HDR_LEN + c->env_len;

	for (unsigned int j = 0; j < d->nops; j++) {
		int n = encode(c, &c->ops[d->ops[j]], d->ops[j], c->tx + len, UDP_MAX - len);
		if (n < 0) {
			finish(c, &c->ops[d->ops[j]], KITE_BAD_ARGUMENT);
			continue;
		}
		len += (size_t)n;
	}
	if (dg_send(c, d, len) != KITE_OK) {
		for (unsigned int j = 0; j < d->nops; j++)
			finish(c, &c->ops[d->ops[j]], KITE_SYSTEM);
		dg_free(d);
		return KITE_SYSTEM;
	}
	return KITE_OK;
}

/* Pack and send every queued op that is due; ops with no route end now. */
static int
send_due(struct kite_client *c, uint64_t now)
{
	struct out_dg *open[64];
	size_t open_len[64];
	unsigned int nopen = 0;
	int rc = KITE_OK;

	/* A map fetch in flight: ops waiting for it stay queued. */
	for (size_t i = 0; i < c->nops; i++) {
		struct kite_op *op = &c->ops[i];
		struct sockaddr_in to;
		int member = -1;
		unsigned int k;

		if (op->priv.state != OP_QUEUED || op->priv.not_before > now)
			continue;
		if (c->map_dg != NULL && (op->priv.redirects > 0 || !c->have_map))
			continue;
		if (op->priv.phase == PH_MAIN && !op->priv.filled && needs_prefill(op) &&
		    prev_owner(c, op, &to)) {
			op->priv.filled = 1;
			op->priv.phase = PH_FILL_GET;
			c->st.fills++;
		}
		if (!route(c, op, &to, &member)) {
			if (op->priv.phase != PH_MAIN) {
				fill_over(c, op, now);
				continue;
			}
			finish(c, op, c->have_map ? KITE_BAD_ARGUMENT
					 : c->auth_refused ? KITE_AUTH : KITE_NO_MAP);
			continue;
		}
		size_t need = encoded_len(c, op);
		for (k = 0; k < nopen; k++)
			if (open[k]->to.sin_addr.s_addr == to.sin_addr.s_addr &&
			    open[k]->to.sin_port == to.sin_port &&
			    open_len[k] + need <= c->o.payload_max)
				break;
		if (k == nopen) {
			if (nopen == 64) {
				/*
				 * Too many open datagrams (destinations, or full ones of a
				 * big batch): the oldest is built and sent now.
				 */
				rc = dg_flush(c, open[0]);
				memmove(open, open + 1, sizeof(open[0]) * 63);
				memmove(open_len, open_len + 1, sizeof(open_len[0]) * 63);
				nopen--;
				if (rc != KITE_OK)
					break;
			}
			/* A datagram of its own: the largest op's size. */
			open[nopen] = calloc(1, sizeof(struct out_dg));
			if (open[nopen] == NULL) {
				rc = KITE_NO_MEMORY;
				break;
			}
			open[nopen]->kind = DG_BATCH;
			open[nopen]->to = to;
			open[nopen]->member = member;
			open[nopen]->req_id = new_req_id(c);
			/* The buffer: built in c->tx at send time from the op list. */
			open_len[nopen] = KITE_FRAME_HDR_LEN + c->env_len;
			k = nopen++; /* after a flush of the oldest, k was one past the end */
		}
		struct out_dg *d = open[k];
		if (d->nops % 16 == 0) {
			uint32_t *no = realloc(d->ops, sizeof(uint32_t) * (d->nops + 16));
			if (no == NULL) {
				rc = KITE_NO_MEMORY;
				break;
			}
			d->ops = no;
		}
		d->ops[d->nops++] = (uint32_t)i;
		d->left++;
		open_len[k] += need;
		op->priv.state = OP_SENT;
		op->priv.attempts++;
		c->st.ops += op->priv.attempts == 1;
	}
	for (unsigned int k = 0; k < nopen; k++) {
		struct out_dg *d = open[k];

		if (rc != KITE_OK) {
			for (unsigned int j = 0; j < d->nops; j++)
				requeue(&c->ops[d->ops[j]], now);
			dg_free(d);
			continue;
		}
		if (dg_flush(c, d) != KITE_OK)
			rc = KITE_SYSTEM;
	}
	return rc;
}

/* Parse a complete message of datagram d. */
static void
on_message(struct kite_client *c, struct out_dg *d, const struct rx_msg *m)
{
	size_t total = 0, off = 0;
	uint8_t *stream;

	for (unsigned int i = 0; i < m->total; i++)
		total += m->len[i];
	stream = malloc(total ? total : 1);
	if (stream == NULL)
		return;
	for (unsigned int i = 0; i < m->total; i++) {
		memcpy(stream + off, m->data[i], m->len[i]);
		off += m->len[i];
	}
	off = 0;
	while (off < total) {
		struct kite_res x;
		int n = kite_proto_parse_res(stream + off, total - off, &x);

		if (n < 0)
			break;
		off += (size_t)n;
		if (d->kind == DG_MAP) {
			if (x.status == KITE_STATUS_OK)
				map_install(c, x.value, x.vallen);
			else if (x.status == KITE_STATUS_UNKNOWN_COMMAND && !c->have_map &&
				 d->member < 0)
				map_of_seed(c, &d->to);
			d->left = 0;
			if (x.status == KITE_STATUS_COOKIE_REQUIRED)
				kite_seen(c);
			if (x.status == KITE_STATUS_COOKIE_REQUIRED && c->map_cookie_tries++ < GUARD_RETRIES) {
				/*
				 * The reply brought the node's cookie: ask the same node
				 * again, validated (the next seed has no cookie of ours yet,
				 * and with several seeds the retries would run out on them).
				 */
				c->st.cookie_retries++;
				c->need_map = true;
				if (c->map_try > 0)
					c->map_try--;
				continue;
			}
			c->map_cookie_tries = 0;
			c->need_map = false;
			c->map_try = 0;
			c->map_prefer = -1;
			continue;
		}
		if (on_response(c, d, &x) && d->left > 0)
			d->left--;
	}
	free(stream);
}

/*
 * A node's guard refused a datagram of ours (tenant MAC, stamp, replay):
 * a stamp refusal tells the node's clock, so its ops go again with a
 * corrected stamp (a few times); anything else ends them with KITE_AUTH.
 */
static void
on_guard_refusal(struct kite_client *c, struct out_dg *d, const struct kite_guard_env *e)
{
	const uint64_t now = now_ms();
	const bool clock = e->err == KITE_GUARD_ERR_STAMP || e->err == KITE_GUARD_ERR_REPLAY;

	c->st.auth_refusals++;
	if (clock && (e->flags & KITE_GUARD_F_TIME))
		c->clock_off_us = (int64_t)e->time_us - (int64_t)kite_guard_wall_us();
	for (unsigned int i = 0; i < d->nops; i++) {
		struct kite_op *op = &c->ops[d->ops[i]];

		if (op->priv.state != OP_SENT)
			continue;
		if (clock && op->priv.guard_retries < GUARD_RETRIES) {
			op->priv.guard_retries++;
			requeue(op, now);
		} else {
			op->status = KITE_STATUS_AUTH_ERROR;
			finish(c, op, KITE_AUTH);
		}
	}
	if (d == c->map_dg) {
		c->map_dg = NULL;
		if (clock && c->map_cookie_tries++ < GUARD_RETRIES) {
			/* The same node again, with the stamp corrected by its clock. */
			c->need_map = true;
			if (c->map_try > 0)
				c->map_try--;
		} else {
			/* Credentials the node refuses: ops waiting for the map end with KITE_AUTH. */
			c->need_map = false;
			c->auth_refused = true;
		}
	}
	unlink_dg(c, d);
	dg_free(d);
}

/* One datagram arrived. */
static void
on_datagram(struct kite_client *c, const uint8_t *p, size_t n, const struct sockaddr_in *from)
{
	struct kite_proto_frame f;
	struct out_dg *d;
	struct rx_msg *m;

	if (n >= KITE_FRAME_HDR_LEN) {
		/* A reply frame: any seq below total (kite_proto_frame_parse judges requests). */
		f.req_id = kite_proto_get16(p);
		f.seq = kite_proto_get16(p + 2);
		f.total = kite_proto_get16(p + 4);
	}
	if (n < KITE_FRAME_HDR_LEN || f.total == 0 || f.seq >= f.total ||
	    f.total > MAX_MSG_DGRAMS) {
		c->st.late_replies++;
		return;
	}
	for (d = c->dgs; d != NULL; d = d->next)
		if (d->req_id == f.req_id && d->to.sin_addr.s_addr == from->sin_addr.s_addr)
			break;
	if (d == NULL) {
		c->st.late_replies++;
		return;
	}
	c->st.datagrams_received++;
	if (n > KITE_FRAME_HDR_LEN && p[KITE_FRAME_HDR_LEN] == KITE_GUARD_MAGIC) {
		/* The node's envelope: a cookie to keep, or its guard's refusal. */
		struct kite_guard_env e;
		int el = kite_guard_env_parse(p + KITE_FRAME_HDR_LEN, n - KITE_FRAME_HDR_LEN, &e);

		if (el <= 0 || !(e.flags & KITE_GUARD_F_RESPONSE)) {
			c->st.late_replies++;
			return;
		}
		kite_seen(c);
		if (e.flags & KITE_GUARD_F_COOKIE)
			cookie_keep(c, from->sin_addr.s_addr, e.cookie);
		if (e.flags & KITE_GUARD_F_ERROR) {
			on_guard_refusal(c, d, &e);
			return;
		}
		/* The rest is the reply as ever: drop the envelope from this datagram. */
		memmove(c->rx + KITE_FRAME_HDR_LEN, p + KITE_FRAME_HDR_LEN + el,
			n - KITE_FRAME_HDR_LEN - (size_t)el);
		if (p != c->rx)
			memcpy(c->rx, p, KITE_FRAME_HDR_LEN);
		p = c->rx;
		n -= (size_t)el;
	}
	/*
	 * The message this datagram belongs to: the oldest with this total and
	 * this seq still missing. A byte-identical copy of a datagram we hold
	 * is a duplicate (the network's, or a replayed one), not a new message.
	 */
	for (m = d->msgs; m != NULL; m = m->next)
		if (m->total == f.total && m->data[f.seq] != NULL &&
		    m->len[f.seq] == n - KITE_FRAME_HDR_LEN &&
		    memcmp(m->data[f.seq], p + KITE_FRAME_HDR_LEN, n - KITE_FRAME_HDR_LEN) == 0) {
			c->st.late_replies++;
			return;
		}
	for (m = d->msgs; m != NULL; m = m->next)
		if (m->total == f.total && m->data[f.seq] == NULL)
			break;
	if (m == NULL) {
		m = calloc(1, sizeof(*m));
		if (m == NULL)
			return;
		m->total = f.total;
		m->data = calloc(f.total, sizeof(*m->data));
		m->len = calloc(f.total, sizeof(*m->len));
		if (m->data == NULL || m->len == NULL) {
			free(m->data);
			free(m->len);
			free(m);
			return;
		}
		/* At the tail: older messages fill first. */
		struct rx_msg **tail = &d->msgs;
		while (*tail != NULL)
			tail = &(*tail)->next;
		*tail = m;
	}
	m->data[f.seq] = malloc(n - KITE_FRAME_HDR_LEN + 1);
	if (m->data[f.seq] == NULL)
		return;
	memcpy(m->data[f.seq], p + KITE_FRAME_HDR_LEN, n - KITE_FRAME_HDR_LEN);
	m->len[f.seq] = (uint16_t)(n - KITE_FRAME_HDR_LEN);
	if (++m->have < m->total)
		return;
	on_message(c, d, m);
	/* Done with the message. */
	for (struct rx_msg **pp = &d->msgs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			m->next = NULL;
			msgs_free(m);
			break;
		}
	if (d->left == 0) {
		unlink_dg(c, d);
		dg_free(d);
	}
}

/* Deadlines: unanswered ops of an expired datagram are retried or time out. */
static void
expire(struct kite_client *c, uint64_t now)
{
	struct out_dg *d = c->dgs, *next;

	for (; d != NULL; d = next) {
		next = d->next;
		if (d->deadline > now)
			continue;
		unlink_dg(c, d);
		if (d->kind == DG_MAP) {
			/* Try the next address; after map_tries, go on with the map we have. */
			if (c->map_try >= c->map_tries) {
				c->need_map = false;
				c->map_try = 0;
				c->map_prefer = -1;
			}
		}
		for (unsigned int j = 0; j < d->nops; j++) {
			struct kite_op *op = &c->ops[d->ops[j]];

			if (op->priv.state != OP_SENT)
				continue;
			if (op->priv.phase != PH_MAIN && op->priv.attempts > c->o.retries) {
				fill_over(c, op, now);
				continue;
			}
			if (op->priv.attempts > c->o.retries ||
			    (!idempotent(op->type) && !c->o.retry_nonidempotent)) {
				finish(c, op, KITE_TIMEOUT);
				continue;
			}
			c->st.retries++;
			/* The node may be gone: look at the map again, then resend. */
			c->need_map = c->need_map || keyed(op->type);
			requeue(op, now + backoff_ms(c, op->priv.attempts, 10, 200));
		}
		dg_free(d);
	}
}

static void
drain(struct kite_client *c)
{
	for (;;) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(c->fd, c->rx, UDP_MAX + 1, MSG_DONTWAIT, (struct sockaddr *)&from,
				     &fl);

		if (n < 0)
			return; /* EAGAIN, or an ICMP error: deadlines handle both */
		on_datagram(c, c->rx, (size_t)n, &from);
	}
}

int
kite_next_timeout_ms(const struct kite_client *c)
{
	uint64_t now = now_ms(), next = UINT64_MAX;

	for (const struct out_dg *d = c->dgs; d != NULL; d = d->next)
		if (d->deadline < next)
			next = d->deadline;
	for (size_t i = 0; i < c->nops; i++)
		if (c->ops[i].priv.state == OP_QUEUED && c->ops[i].priv.not_before < next)
			next = c->ops[i].priv.not_before;
	if (next == UINT64_MAX)
		return c->need_map && c->map_dg == NULL ? 0 : -1;
	return next <= now ? 0 : (int)(next - now > INT_MAX ? INT_MAX : next - now);
}

/* Every op has its answer (a map fetch may still be in flight: it outlives the batch). */
static bool
batch_done(const struct kite_client *c)
{
	return c->ndone == c->nops;
}

static int
batch_rc(const struct kite_client *c)
{
	for (size_t i = 0; i < c->nops; i++)
		if (c->ops[i].rc != KITE_OK)
			return c->ops[i].rc;
	return KITE_OK;
}

/*
 * A client is one thread's at a time (docs/libkite.rst). A call that finds
 * another thread inside gets KITE_BUSY and changes nothing, instead of the
 * two corrupting the batch and the datagram lists (which crashed a test
 * that shared a client by mistake). Handing a client from one thread to
 * another between calls stays allowed.
 */
static bool
enter(struct kite_client *c)
{
	return !__atomic_exchange_n(&c->busy, true, __ATOMIC_ACQUIRE);
}

static void
leave(struct kite_client *c)
{
	__atomic_store_n(&c->busy, false, __ATOMIC_RELEASE);
}

static void
ops_busy(struct kite_op *ops, size_t n)
{
	for (size_t i = 0; ops != NULL && i < n; i++)
		ops[i].rc = KITE_BUSY;
}

/* One turn of the loop without waiting. */
static int
turn(struct kite_client *c)
{
	uint64_t now = now_ms();

	drain(c);
	expire(c, now);
	if (c->need_map && c->map_dg == NULL) {
		/* Each seed (and a few members) as many times as a request is sent. */
		if (c->map_try == 0)
			c->map_tries = (c->o.retries + 1) *
				       (c->n_seeds + (c->have_map ? MIN_U(c->map.n_members, 4u) : 0));
		map_fetch_start(c);
	}
	return send_due(c, now);
}

static int
progress(struct kite_client *c, int timeout_ms)
{
	uint64_t end = timeout_ms < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int rc = turn(c);

		if (rc == KITE_SYSTEM || rc == KITE_NO_MEMORY) {
			for (size_t i = 0; i < c->nops; i++)
				finish(c, &c->ops[i], rc);
		}
		if (batch_done(c)) {
			int brc = batch_rc(c);

			/* The batch's datagrams go (their late replies are counted as such). */
			for (struct out_dg *d = c->dgs, *next; d != NULL; d = next) {
				next = d->next;
				if (d->kind == DG_BATCH) {
					unlink_dg(c, d);
					dg_free(d);
				}
			}
			sealed_free(c);
			c->nops = 0;
			c->ops = NULL;
			return brc;
		}
		uint64_t now = now_ms();
		if (now >= end)
			return KITE_PENDING;
		int wait = kite_next_timeout_ms(c);
		if (wait < 0 || (uint64_t)wait > end - now)
			wait = end - now > INT_MAX ? INT_MAX : (int)(end - now);
		if (wait > 0) {
			struct pollfd p = { c->fd, POLLIN, 0 };
			poll(&p, 1, wait);
		}
	}
}

static int
submit(struct kite_client *c, struct kite_op *ops, size_t n)
{
	if (c->nops != 0)
		return KITE_BAD_ARGUMENT; /* a batch is in flight */
	sealed_free(c);
	if (c->seal && n > 0) {
		c->sealed = calloc(n, sizeof(*c->sealed));
		if (c->sealed == NULL)
			return KITE_NO_MEMORY;
	}
	c->ops = ops;
	c->nops = n;
	for (size_t i = 0; i < n; i++) {
		kite_op_clear(&ops[i]);
		if ((unsigned int)ops[i].type >= KITE_OP_TYPE_MAX) {
			ops[i].rc = KITE_BAD_ARGUMENT;
			ops[i].priv.state = OP_DONE;
			continue;
		}
		if (keyed(ops[i].type) &&
		    (ops[i].key == NULL || ops[i].keylen == 0 || ops[i].keylen > KITE_KEY_MAX)) {
			ops[i].rc = KITE_BAD_ARGUMENT;
			ops[i].priv.state = OP_DONE;
			continue;
		}
		/*
		 * Meta flags: printable text of at most 255 bytes; values sealed
		 * by the client cannot go through META_SET (docs/libkite.rst).
		 */
		if (is_meta(ops[i].type) &&
		    (!meta_flags_ok(ops[i].meta) || (c->seal && ops[i].type != KITE_META_DELETE))) {
			ops[i].rc = KITE_BAD_ARGUMENT;
			ops[i].priv.state = OP_DONE;
			continue;
		}
		if (ops[i].type == KITE_NODE_STATS && ops[i].keylen > KITE_KEY_MAX) {
			ops[i].rc = KITE_BAD_ARGUMENT;
			ops[i].priv.state = OP_DONE;
			continue;
		}
		if (c->seal && ops[i].priv.state != OP_DONE) {
			/* A value the node cannot read cannot be appended to or counted. */
			int t = ops[i].type, rc = KITE_OK;
			if (t == KITE_APPEND || t == KITE_PREPEND || t == KITE_INCR || t == KITE_DECR)
				rc = KITE_BAD_ARGUMENT;
			else if (t == KITE_SET || t == KITE_ADD || t == KITE_REPLACE)
				rc = seal(c, &ops[i], &c->sealed[i]);
			if (rc != KITE_OK) {
				ops[i].rc = rc;
				ops[i].priv.state = OP_DONE;
				continue;
			}
		}
		if (encoded_len(c, &ops[i]) + KITE_FRAME_HDR_LEN > UDP_MAX) {
			ops[i].rc = KITE_BAD_ARGUMENT; /* over one UDP datagram */
			ops[i].priv.state = OP_DONE;
		}
	}
	c->ndone = 0;
	for (size_t i = 0; i < n; i++) {
		c->ndone += ops[i].priv.state == OP_DONE;
		/* No map yet (lazy_map): keyed ops wait for one. */
		if (!c->have_map && ops[i].priv.state != OP_DONE && keyed(ops[i].type))
			c->need_map = true;
	}
	if (c->have_map && now_ms() - c->map_time_ms >= c->o.refresh_ms)
		c->need_map = true;
	return KITE_PENDING;
}

int
kite_progress(struct kite_client *c, int timeout_ms)
{
	if (!enter(c))
		return KITE_BUSY;
	int rc = progress(c, timeout_ms);
	leave(c);
	return rc;
}

int
kite_submit(struct kite_client *c, struct kite_op *ops, size_t n)
{
	if (!enter(c)) {
		ops_busy(ops, n);
		return KITE_BUSY;
	}
	int rc = submit(c, ops, n);
	leave(c);
	return rc;
}

int
kite_exec(struct kite_client *c, struct kite_op *ops, size_t n)
{
	if (!enter(c)) {
		ops_busy(ops, n);
		return KITE_BUSY;
	}
	int rc = submit(c, ops, n);

	if (rc == KITE_PENDING) {
		progress(c, -1);
		rc = KITE_OK;
		for (size_t i = 0; i < n; i++)
			if (ops[i].rc != KITE_OK) {
				rc = ops[i].rc;
				break;
			}
	}
	leave(c);
	return rc;
}

int
kite_fd(const struct kite_client *c)
{
	return c->fd;
}

static int
map_refresh(struct kite_client *c)
{
	if (c->nops != 0)
		return KITE_BAD_ARGUMENT; /* a batch is in flight */
	c->need_map = true;
	c->map_try = 0;
	c->map_cookie_tries = 0;
	c->auth_refused = false;
	c->ndone = 0;
	while (c->need_map || c->map_dg != NULL) {
		turn(c);
		int wait = kite_next_timeout_ms(c);
		if (c->need_map || c->map_dg != NULL) {
			struct pollfd p = { c->fd, POLLIN, 0 };
			poll(&p, 1, wait < 0 ? 10 : wait);
		}
	}
	return c->have_map ? KITE_OK : c->auth_refused ? KITE_AUTH : KITE_NO_MAP;
}

int
kite_map_refresh(struct kite_client *c)
{
	if (!enter(c))
		return KITE_BUSY;
	int rc = map_refresh(c);
	leave(c);
	return rc;
}

int
kite_open(struct kite_client **out, const struct kite_options *o)
{
	struct kite_client *c;
	int rc, sz = 8 << 20;

	*out = NULL;
	if (o == NULL || o->seeds == NULL)
		return KITE_BAD_ARGUMENT;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return KITE_NO_MEMORY;
	c->o = *o;
	if (c->o.timeout_ms == 0)
		c->o.timeout_ms = 500;
	if (c->o.retries == 0)
		c->o.retries = 2;
	else if (c->o.retries == KITE_NO_RETRY)
		c->o.retries = 0;
	if (c->o.max_redirects == 0)
		c->o.max_redirects = 3;
	if (c->o.tmpfail_retries == 0)
		c->o.tmpfail_retries = 3;
	if (c->o.refresh_ms == 0)
		c->o.refresh_ms = 5000;
	if (c->o.warmup_ms == 0)
		c->o.warmup_ms = 30000;
	if (c->o.payload_max == 0)
		c->o.payload_max = 1472;
	if (c->o.payload_max < 64 || c->o.payload_max > UDP_MAX)
		c->o.payload_max = 1472;
	c->map_prefer = -1;
	c->fd = -1;
	if ((c->o.tenant_secret != NULL || c->o.value_key != NULL) && sodium_init() < 0) {
		free(c);
		return KITE_SYSTEM;
	}
	if (c->o.value_key != NULL) {
		c->seal = true;
		memcpy(c->value_key, c->o.value_key, sizeof(c->value_key));
		c->o.value_key = NULL;
	}
	if (c->o.tenant_secret != NULL) {
		c->tenant = true;
		kite_guard_mac_key(c->mac_key, c->o.tenant_secret);
		c->o.tenant_secret = NULL; /* the caller's buffer need not outlive kite_open() */
	}
	c->env_default =
		KITE_GUARD_ENV_HEAD + KITE_GUARD_COOKIE_LEN + (c->tenant ? KITE_GUARD_AUTH_LEN : 0);
	/*
	 * Until a node has shown it is Kite, requests go plain: a memcached
	 * would take the envelope for the start of a text command and wait
	 * for its end (silence, then garbage). A tenant talks to Kite only.
	 */
	c->env_len = c->tenant ? c->env_default : 0;
	if (getrandom(&c->rng, sizeof(c->rng), 0) != sizeof(c->rng) || c->rng == 0)
		c->rng = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
	c->tx = malloc(UDP_MAX + 1);
	c->rx = malloc(UDP_MAX + 1);
	if (c->tx == NULL || c->rx == NULL) {
		rc = KITE_NO_MEMORY;
		goto fail;
	}
	rc = parse_seeds(c, o->seeds);
	if (rc != KITE_OK)
		goto fail;
	c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		rc = KITE_SYSTEM;
		goto fail;
	}
	/* Room for a 1 MiB value in 1400-byte datagrams before we read any. */
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) != 0)
		(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (!c->o.lazy_map) {
		rc = map_refresh(c);
		if (rc != KITE_OK)
			goto fail;
	}
	*out = c;
	return KITE_OK;
fail:
	kite_close(c);
	return rc;
}

void
kite_close(struct kite_client *c)
{
	if (c == NULL)
		return;
	while (c->dgs != NULL) {
		struct out_dg *d = c->dgs;
		unlink_dg(c, d);
		dg_free(d);
	}
	sealed_free(c);
	sodium_memzero(c->value_key, sizeof(c->value_key));
	sodium_memzero(c->mac_key, sizeof(c->mac_key));
	if (c->have_map)
		kite_cluster_map_free(&c->map);
	if (c->have_prev)
		kite_cluster_map_free(&c->prev);
	if (c->fd >= 0)
		close(c->fd);
	free(c->tx);
	free(c->rx);
	free(c);
}

/* ---- the simple API ------------------------------------------------------------ */

int
kite_get(struct kite_client *c, const void *key, size_t keylen, void **value, size_t *len,
	 uint32_t *flags, uint64_t *cas)
{
	struct kite_op op = { .type = KITE_GET, .key = key, .keylen = keylen };
	int rc = kite_exec(c, &op, 1);

	*value = NULL;
	*len = 0;
	if (rc == KITE_OK) {
		*value = op.result;
		*len = op.result_len;
		if (flags != NULL)
			*flags = op.result_flags;
		if (cas != NULL)
			*cas = op.result_cas;
		op.result = NULL;
	}
	kite_op_clear(&op);
	return rc;
}

int
kite_set(struct kite_client *c, const void *key, size_t keylen, const void *value, size_t vallen,
	 uint32_t flags, uint32_t exptime, uint64_t cas, uint64_t *cas_out)
{
	struct kite_op op = { .type = KITE_SET, .key = key, .keylen = keylen, .value = value,
			      .vallen = vallen, .flags = flags, .exptime = exptime, .cas = cas };
	int rc = kite_exec(c, &op, 1);

	if (cas_out != NULL)
		*cas_out = op.result_cas;
	kite_op_clear(&op);
	return rc;
}

int
kite_delete(struct kite_client *c, const void *key, size_t keylen, uint64_t cas)
{
	struct kite_op op = { .type = KITE_DELETE, .key = key, .keylen = keylen, .cas = cas };
	int rc = kite_exec(c, &op, 1);

	kite_op_clear(&op);
	return rc;
}

/* ---- the map, seen from outside -------------------------------------------------- */

void
kite_map_info(const struct kite_client *c, struct kite_map_info *out)
{
	memset(out, 0, sizeof(*out));
	if (!c->have_map)
		return;
	out->epoch = c->map.epoch;
	out->vbuckets = c->map.vbuckets;
	out->copies = c->map.copies;
	out->members = c->map.n_members;
	out->seed_is_memcached = c->memcached_seed;
}

int
kite_map_member(const struct kite_client *c, unsigned int i, struct kite_member *out)
{
	uint32_t *counts;

	if (!c->have_map || i >= c->map.n_members)
		return -1;
	const struct kite_cluster_member *m = &c->map.members[i];
	memset(out, 0, sizeof(*out));
	snprintf(out->id, sizeof(out->id), "%s", m->id);
	snprintf(out->zone, sizeof(out->zone), "%s", m->zone);
	out->ip = m->ip;
	out->port = m->base_port;
	out->partitions = m->partitions;
	out->weight = m->weight;
	out->state = kite_cluster_state_name(m->state);
	counts = calloc(c->map.n_members, sizeof(*counts));
	if (counts != NULL) {
		kite_cluster_owned(&c->map, counts);
		out->vbuckets_owned = counts[i];
		free(counts);
	}
	return 0;
}

int
kite_key_owner(const struct kite_client *c, const void *key, size_t keylen)
{
	if (!c->have_map || keylen == 0 || keylen > KITE_KEY_MAX)
		return -1;
	uint32_t vb = kite_cluster_vbucket(key, (uint16_t)keylen, c->map.vbuckets);
	uint8_t m = kite_cluster_owner(&c->map, vb);
	return m == KITE_CLUSTER_NONE ? -1 : m;
}

void
kite_client_stats(const struct kite_client *c, struct kite_client_stats *out)
{
	*out = c->st;
}

/* ---- tests and fuzzing (kite_client_test.h; not exported by libkite.so) ---- */

int
kite__inject(struct kite_client *c, unsigned int which, const uint8_t *p, size_t n)
{
	uint8_t buf[UDP_MAX + 1];
	unsigned int count = 0;
	struct out_dg *d;

	for (d = c->dgs; d != NULL; d = d->next)
		count++;
	if (count == 0 || n > UDP_MAX || n < KITE_FRAME_HDR_LEN)
		return -1;
	which %= count;
	for (d = c->dgs; which > 0; d = d->next)
		which--;
	memcpy(buf, p, n);
	kite_proto_put16(buf, d->req_id);
	struct sockaddr_in from = d->to;
	on_datagram(c, buf, n, &from);
	return 0;
}
