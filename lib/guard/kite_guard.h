/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_GUARD_H
#define KITE_GUARD_H

/**
 * @file
 * The guard: what a UDP datagram may do before the engine sees it
 * (docs/security.rst). One guard per worker, no locks, no DPDK, no
 * protocol parser: it reads the 8-byte frame's length and Kite's optional
 * envelope (docs/protocol.rst) and decides
 *   - drop (allow-list, martian source, malformed envelope, rate limit),
 *   - answer itself (a hello gets a cookie; a bad tenant MAC, an old
 *     timestamp or a replay gets an error that carries the server's time),
 *   - or pass, with a verdict for the engine: the envelope bytes to skip,
 *     the reply byte budget (the amplification bound: a source that has
 *     not shown a valid cookie gets at most the bytes it sent), the
 *     command classes allowed, the key namespace, the work budget, a
 *     status that refuses every request of the datagram, and the envelope
 *     that starts the reply.
 *
 * Envelope (after the frame, before either dialect), big-endian:
 *   u8 magic 0x8b, u8 version 1, u8 flags, u8 length (bytes, head included)
 *   then one field per flag, in flag order:
 *     COOKIE  12 bytes: u32 window, u64 SipHash-2-4 of source address and port
 *     AUTH    28 bytes: u32 tenant, u64 stamp (unix microseconds, strictly
 *             increasing per tenant and source socket), 16-byte MAC
 *             (SipHash-2-4-128 of the whole datagram with these 16 bytes zero)
 *     TIME    8 bytes (replies): the server's unix time in microseconds
 *     ERROR   2 bytes (replies): why the guard refused (enum kite_guard_err)
 *   and zero padding up to length. HELLO asks for a cookie; RESPONSE marks
 *   a reply (never answered).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KITE_GUARD_MAGIC 0x8b
#define KITE_GUARD_VERSION 1
#define KITE_GUARD_ENV_HEAD 4
#define KITE_GUARD_COOKIE_LEN 12
#define KITE_GUARD_AUTH_LEN 28
#define KITE_GUARD_MAC_LEN 16
#define KITE_GUARD_TIME_LEN 8
#define KITE_GUARD_ERRF_LEN 2
#define KITE_GUARD_SECRET_LEN 32
/** The envelope of a reply that carries a cookie (head + cookie). */
#define KITE_GUARD_REPLY_ENV_MAX (KITE_GUARD_ENV_HEAD + KITE_GUARD_COOKIE_LEN)
/** Bytes a request without a cookie pads its envelope to, so a cookie reply never amplifies. */
#define KITE_GUARD_HELLO_ENV (KITE_GUARD_ENV_HEAD + KITE_GUARD_COOKIE_LEN)
/** IPv4 + UDP header bytes counted per datagram in the amplification bound. */
#define KITE_GUARD_L3L4 28
#define KITE_GUARD_MAX_CIDRS 64
#define KITE_GUARD_MAX_TENANTS 256
#define KITE_GUARD_PREFIX_MAX 64
#define KITE_GUARD_NAME_MAX 32

/** Envelope flags. */
enum {
	KITE_GUARD_F_COOKIE = 0x01,
	KITE_GUARD_F_AUTH = 0x02,
	KITE_GUARD_F_HELLO = 0x04,
	KITE_GUARD_F_TIME = 0x08,
	KITE_GUARD_F_ERROR = 0x10,
	KITE_GUARD_F_RESPONSE = 0x80,
	KITE_GUARD_F_KNOWN = 0x9f,
};

/** The ERROR field of a guard reply. */
enum kite_guard_err {
	KITE_GUARD_ERR_NONE = 0,
	KITE_GUARD_ERR_TENANT = 1,  /**< unknown tenant */
	KITE_GUARD_ERR_MAC = 2,     /**< the MAC does not verify */
	KITE_GUARD_ERR_STAMP = 3,   /**< the stamp is outside the window: use TIME */
	KITE_GUARD_ERR_REPLAY = 4,  /**< the stamp is not above the last one seen */
};

/** What to do with a datagram. */
enum kite_guard_action {
	KITE_GUARD_PASS = 0, /**< hand it to the engine with the verdict */
	KITE_GUARD_DROP,     /**< free it; counted */
	KITE_GUARD_REPLY,    /**< send verdict.reply[0..reply_len) back instead */
};

/** Namespace rule for keys (kite_guard_verdict.ns). */
enum kite_guard_ns {
	KITE_GUARD_NS_ANY = 0,   /**< every key */
	KITE_GUARD_NS_PREFIX,    /**< keys must start with the tenant's prefix */
	KITE_GUARD_NS_PUBLIC,    /**< keys must fall in no tenant's prefix (kite_guard_key_owned) */
};

/** auth option. */
enum kite_guard_auth { KITE_GUARD_AUTH_OFF = 0, KITE_GUARD_AUTH_OPTIONAL, KITE_GUARD_AUTH_REQUIRED };
#define KITE_GUARD_AUTH_MODES "off,optional,required"
/** What happens over a rate limit. */
enum kite_guard_over { KITE_GUARD_OVER_DROP = 0, KITE_GUARD_OVER_BUSY };
#define KITE_GUARD_OVER_MODES "drop,busy"

/** Why a request of a passed datagram is refused (kite_guard_verdict.refuse). */
enum kite_guard_refuse {
	KITE_GUARD_REFUSE_NONE = 0,
	KITE_GUARD_REFUSE_AUTH,  /**< auth = required and no AUTH field */
	KITE_GUARD_REFUSE_RATE,  /**< over a rate, over = busy */
};

/**
 * The guard's counters: X(field, name, help); names get "guard_" in STAT.
 */
#define KITE_GUARD_STATS(X)                                                                        \
	X(passed, "passed", "datagrams handed to the engine")                                      \
	X(validated, "validated", "of them, from a validated source (cookie or trusted)")          \
	X(bounded, "bounded", "of them, under the amplification bound (no valid cookie)")          \
	X(authed, "authenticated", "of them, with a tenant MAC that verified")                     \
	X(hellos, "hellos", "hello requests answered with a cookie")                                \
	X(cookies_sent, "cookies_sent", "cookies sent in reply envelopes")                        \
	X(cookie_bad, "cookie_bad", "cookies that did not verify or had expired")                 \
	X(drop_allow, "drop_allow", "datagrams from outside the allow-list")                      \
	X(drop_martian, "drop_martian", "datagrams from a martian source (0/8, 127/8, multicast, broadcast, ourselves, port 0)") \
	X(drop_envelope, "drop_envelope", "datagrams with a malformed envelope")                   \
	X(drop_response, "drop_response", "envelopes marked RESPONSE (never answered)")            \
	X(drop_rate, "drop_rate", "datagrams dropped over a source or tenant rate")                \
	X(busy_rate, "busy_rate", "datagrams answered RATE_LIMITED over a source or tenant rate")   \
	X(auth_tenant, "auth_unknown_tenant", "AUTH fields naming no tenant")                      \
	X(auth_mac, "auth_bad_mac", "tenant MACs that did not verify")                             \
	X(auth_stamp, "auth_bad_stamp", "stamps outside the window")                               \
	X(auth_replay, "auth_replay", "stamps not above the last one seen (replays)")              \
	X(auth_missing, "auth_missing", "datagrams without AUTH while auth = required")            \
	X(rx_bytes, "bounded_rx_bytes", "IP bytes received from sources under the bound")          \
	X(tx_bytes, "bounded_tx_bytes", "IP bytes sent to sources under the bound")

struct kite_guard_stats {
#define KITE_GUARD_STATS_FIELD(field, name, help) uint64_t field;
	KITE_GUARD_STATS(KITE_GUARD_STATS_FIELD)
#undef KITE_GUARD_STATS_FIELD
};
#define KITE_GUARD_STATS_N (sizeof(struct kite_guard_stats) / sizeof(uint64_t))
extern const char *const kite_guard_stats_names[];
extern const char *const kite_guard_stats_help[];

/** An IPv4 prefix list (allow, trusted). */
struct kite_guard_cidrs {
	unsigned int n;
	uint32_t net[KITE_GUARD_MAX_CIDRS];  /**< host order, masked */
	uint32_t mask[KITE_GUARD_MAX_CIDRS];
};

/**
 * Parse "A.B.C.D[/N], ..." (empty: no entries). @return 0, or -EINVAL
 * with a message in err.
 */
int kite_guard_cidrs_parse(struct kite_guard_cidrs *c, const char *list, char *err, size_t errlen);
/** Whether ip (host order) is in the list. */
bool kite_guard_cidrs_match(const struct kite_guard_cidrs *c, uint32_t ip);

/** One tenant (tenants-file). */
struct kite_guard_tenant {
	uint32_t id;
	char name[KITE_GUARD_NAME_MAX];
	uint8_t key[16];   /**< the MAC key, derived from the 32-byte secret */
	uint8_t prefix[KITE_GUARD_PREFIX_MAX];
	uint8_t prefix_len;
	bool admin;        /**< may use the admin-only commands (STAT, FLUSH) */
	uint32_t cmds;     /**< command classes allowed (bits of the conf's names) */
	uint32_t rate;     /**< requests per second for the whole node (0: no limit) */
	uint8_t mem_pct;   /**< memory share of each partition, percent (0: none); id <= 255 */
};

/** Tenants with an id up to this tag the items they write (memory shares). */
#define KITE_GUARD_TAG_MAX 255

/** A tenants file, loaded whole; replaced whole on reload. */
struct kite_guard_tenants {
	unsigned int n;
	struct kite_guard_tenant t[KITE_GUARD_MAX_TENANTS];
};

/**
 * Load a tenants file (docs/security.rst): one tenant per line,
 *   ID NAME SECRET PREFIX [admin] [cmds=a,b,...] [rate=N] [mem=N%]
 * SECRET is 64 hex digits; mem= (a share of each partition's memory)
 * needs an id up to KITE_GUARD_TAG_MAX; prefixes must be prefix-free (no tenant's is
 * the start of another's); cmds names come from cmd_names[0..ncmd) (bit i
 * = cmd_names[i]; "all" = every one). @return a table (free()), or NULL
 * with a message in err.
 */
struct kite_guard_tenants *kite_guard_tenants_load(const char *path, const char *const *cmd_names,
						   unsigned int ncmd, char *err, size_t errlen);
/** The same from text in memory (tests, the fuzz target). */
struct kite_guard_tenants *kite_guard_tenants_parse(const char *text, const char *const *cmd_names,
						    unsigned int ncmd, char *err, size_t errlen);

/**
 * A 32-byte secret written as exactly len = 64 hex digits (tenants files,
 * the cluster secret, kite-cli's key files). @return 0, or -EINVAL.
 */
int kite_guard_secret_parse(const char *hex, size_t len, uint8_t out[KITE_GUARD_SECRET_LEN]);

/** The MAC key a tenant's secret gives (clients derive it the same way). */
void kite_guard_mac_key(uint8_t key[16], const uint8_t secret[KITE_GUARD_SECRET_LEN]);

/** Guard configuration (shared by the workers, read-only). */
struct kite_guard_conf {
	struct kite_guard_cidrs allow;   /**< n == 0: every source */
	struct kite_guard_cidrs trusted; /**< sources treated as validated */
	uint32_t self_ip;                /**< datagrams claiming it are martians */
	bool bound;                      /**< the amplification bound (on by default) */
	uint8_t cookie_secret[KITE_GUARD_SECRET_LEN];
	uint32_t cookie_window_s;        /**< a cookie's key changes every window; valid for two */
	uint32_t credit_max;             /**< unused bound bytes a source may bank */
	uint32_t credit_ms;              /**< banked bytes are forgotten after this idle time */
	uint32_t source_rate;            /**< requests/s per source, whole node (0: off) */
	uint32_t source_bytes;           /**< reply bytes/s per source, whole node (0: off) */
	uint32_t burst_ms;               /**< bucket depth in milliseconds of rate */
	uint16_t work;                   /**< work units per datagram (engine) */
	enum kite_guard_auth auth;
	enum kite_guard_over over;
	uint32_t stamp_past_ms;          /**< stamps accepted this far behind our clock */
	uint32_t stamp_future_ms;        /**< and this far ahead */
	unsigned int workers;            /**< rates are split over them */
	unsigned int sources;            /**< source table slots per worker (power of two) */
	uint32_t all_cmds;               /**< every command class */
	uint32_t public_cmds;            /**< every tenant's, whatever its cmds= (routing: TOPOLOGY, CLUSTER_MAP) */
	uint32_t admin_cmds;             /**< only for the admin tenant when auth is on */
	uint32_t never_cmds;             /**< refused to everyone (e.g. FLUSH when flush = off) */
	uint16_t mtu;                    /**< to count a fragmented request's IP headers */
};

/** The decision for one datagram. */
struct kite_guard_verdict {
	uint8_t action;      /**< enum kite_guard_action */
	uint8_t refuse;      /**< enum kite_guard_refuse: every request answered so, none executed */
	uint8_t ns;          /**< enum kite_guard_ns */
	uint8_t prefix_len;
	uint16_t skip;       /**< envelope bytes after the frame */
	uint16_t work;       /**< work units the engine may spend */
	uint32_t budget;     /**< IP bytes the reply may take; UINT32_MAX: unbounded */
	uint32_t cmds;       /**< command classes allowed */
	const uint8_t *prefix;
	int tenant;          /**< index in the tenants table, -1: none */
	uint32_t src_ip;
	uint8_t renv_len;    /**< envelope for reply datagram 0 (0: none) */
	uint8_t renv[KITE_GUARD_REPLY_ENV_MAX];
	uint16_t reply_len;  /**< action REPLY: payload (frame first) */
	uint8_t reply[8 + KITE_GUARD_ENV_HEAD + KITE_GUARD_COOKIE_LEN + KITE_GUARD_TIME_LEN +
		      KITE_GUARD_ERRF_LEN + 2];
};

struct kite_guard;

/** A worker's guard. @return NULL on a bad conf (errno EINVAL) or no memory. */
struct kite_guard *kite_guard_create(const struct kite_guard_conf *conf,
				     struct kite_guard_stats *stats);
void kite_guard_free(struct kite_guard *g);

/**
 * Use this tenants table from now on (NULL: none). The caller keeps it
 * alive until the worker has moved past it (kited: RCU). Per-tenant state
 * (rate buckets) starts afresh.
 */
void kite_guard_set_tenants(struct kite_guard *g, const struct kite_guard_tenants *t);

/**
 * Judge one datagram (UDP payload, frame first; writable: the MAC field
 * is zeroed while the MAC is checked). now_us: unix microseconds.
 */
void kite_guard_check(struct kite_guard *g, uint8_t *data, uint32_t len, uint32_t src_ip,
		      uint16_t src_port, uint64_t now_us, struct kite_guard_verdict *v);

/**
 * After the engine answered a passed datagram: `requests` it held, and
 * the IP bytes sent back (replies' payload + 28 each). Charges the rate
 * buckets and banks what is left of the bound.
 */
void kite_guard_account(struct kite_guard *g, const struct kite_guard_verdict *v,
			uint32_t requests, uint32_t tx_bytes, uint64_t now_us);

/**
 * Charge `requests` to tenant ti's rate (an index in the tenants table in
 * use) for requests that came another way than a datagram (kited's JSON
 * API). @return true when within its rate (charged; always for a tenant
 * without one), false when over it or when ti names no tenant.
 */
bool kite_guard_tenant_take(struct kite_guard *g, int ti, uint32_t requests, uint64_t now_us);

/** Whether key falls in some tenant's prefix (for KITE_GUARD_NS_PUBLIC). */
bool kite_guard_key_owned(const struct kite_guard *g, const uint8_t *key, uint16_t len);

/** IP bytes a request datagram of this UDP payload took (fragments' headers included). */
uint32_t kite_guard_ip_bytes(uint32_t payload, uint16_t mtu);

/* ---- encoding (clients and tests) ---------------------------------------- */

/** A parsed envelope. */
struct kite_guard_env {
	uint8_t flags;
	uint8_t len;
	const uint8_t *cookie;   /**< COOKIE: 12 bytes */
	uint32_t tenant;         /**< AUTH */
	uint64_t stamp;
	const uint8_t *mac;      /**< AUTH: 16 bytes in the datagram */
	uint64_t time_us;        /**< TIME */
	uint16_t err;            /**< ERROR */
};

/**
 * Parse the envelope at p (after the frame). @return its length (> 0),
 * 0 when p does not start with one, -1 when it is malformed.
 */
int kite_guard_env_parse(const uint8_t *p, size_t n, struct kite_guard_env *e);

/**
 * Write an envelope: flags with the fields given (cookie for COOKIE;
 * tenant and stamp for AUTH, MAC zero; time_us for TIME; err for ERROR),
 * padded to at least min_len. @return its length, or -1 if cap is short.
 */
int kite_guard_env_write(uint8_t *p, size_t cap, uint8_t flags, const uint8_t *cookie,
			 uint32_t tenant, uint64_t stamp, uint64_t time_us, uint16_t err,
			 size_t min_len);

/**
 * Sign a datagram whose envelope (at offset 8) holds an AUTH field with a
 * zero MAC: computes and stores the MAC. @return 0, -1 if it has none.
 */
int kite_guard_sign(uint8_t *dgram, size_t len, const uint8_t key[16]);

/** Unix microseconds now (the clock a node judges stamps by). */
uint64_t kite_guard_wall_us(void);

/**
 * The next stamp of a signer (one tenant, one source socket): now_us, or
 * one above *last when the clock has not moved past it, since the guard
 * refuses a stamp that does not increase. Updates *last.
 */
static inline uint64_t
kite_guard_stamp_next(uint64_t *last, uint64_t now_us)
{
	*last = now_us > *last ? now_us : *last + 1;
	return *last;
}

#endif /* KITE_GUARD_H */
