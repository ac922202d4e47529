/* SPDX-License-Identifier: BSD-3-Clause */

/*
 * engine-replay: recorded request datagrams through kited's engines on one
 * lcore, to measure the engine's own cost per request without a NIC and
 * without the workers fighting over two CPUs.
 *
 *   engine-replay [EAL args] -- --pcap FILE [--workers W] [--partitions P]
 *                 [--arrive steered|worker0] [--burst B] [--passes N]
 *                 [--runs R] [--value-size V] [--memory BYTES]
 *
 * The pcap holds request datagrams as kite-bench --mode pcap --write-pcap
 * records them (with --partitions W*P each datagram carries keys of one
 * partition and goes to that partition's UDP port). Every key in it is
 * stored first (SET, V-byte values), so the replay measures hits. Then the
 * datagrams arrive in bursts of B at a worker: the owner of their port
 * (steered, as a NIC with flow rules or a client that routes would deliver
 * them) or worker 0 for all (a single queue: the others' keys are handed
 * off). Each burst goes through what kited's worker does: parse, route
 * (datagrams with other workers' keys handed to them), execute, replies
 * written; the handed-off datagrams are then run on their owners' engines,
 * all on this one lcore. R runs of N passes over the recording each print
 * TSC cycles per request; the last line is their median.
 *
 * --guard cookie|mac puts the guard (lib/guard) in front of the engines,
 * as kited's worker does: each datagram gets an envelope with the cookie
 * of its source (12 bytes, checked by SipHash), and with mac also a
 * tenant id, stamp and MAC over the whole datagram (checked by
 * SipHash-2-4-128, replays refused); datagrams are re-signed between
 * passes, outside the timing, and when mac is among the modes before
 * every mode's pass, so that each mode runs after the same disturbance of
 * the caches. --guard off (default) calls no guard.
 *
 * It builds against the two-phase engine (kite_engine_parse / execute) and
 * against the one before it (kite_engine_route, then kite_engine_process,
 * which parsed a datagram twice on a node of several workers), so
 * tools/bench/engine-replay-compare can measure both side by side.
 */

#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcap/pcap.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>

#include "kite_conf.h"
#include "kite_engine.h"
#if __has_include("kite_guard.h")
#include <sys/time.h>
#include "kite_guard.h"
#define HAVE_GUARD 1
#else
#define HAVE_GUARD 0
#endif

/*
 * Adapters, so that one source builds against every revision of the
 * engine since lib/engine took bursts: the two-phase engine or the one
 * before it, the counters of lib/engine or of lib/stats, lib/topo's key
 * partition or lib/proto's, the limits' header or the engine's.
 */
#ifdef KITE_ENGINE_MAX_DGRAMS
/* The two-phase engine: parse once, route, execute. */
#define TWO_PHASE 1
#else
/* The engine before it: route (one parse), then process (another). */
#define TWO_PHASE 0
#endif
#ifdef KITE_ENGINE_STATS
typedef struct kite_engine_stats engine_stats;
#else
typedef struct kite_worker_stats engine_stats;
#endif
#ifdef KITE_TOPO_REPLY_MAX
#define KEY_PARTITION kite_topo_key_partition
#else
#define KEY_PARTITION kite_proto_key_partition
#endif
#ifndef KITE_MAX_REPLY_DGRAMS
#define KITE_MAX_REPLY_DGRAMS KITE_ENGINE_MAX_REPLY_DGRAMS
#endif

#define MAX_WORKERS 8
#define MAX_DGRAMS  200000
#define MAX_BURST   64
#define PAYLOAD	    1472
#define BASE_PORT   11211
#define DGRAM_MAX   1500
#define NOW	    1800000000u

/* X(key, type, field, default, min, max, help): the options, one table (lib/conf). */
#define REPLAY_OPTIONS(X)                                                                          \
	X("pcap", STR, pcap, "", 0, 0, "request datagrams as kite-bench --mode pcap writes them")  \
	X("workers", U32, workers, "2", 1, MAX_WORKERS, "workers, one engine each")                \
	X("partitions", U32, partitions, "4", 1, 64, "partitions per worker")                      \
	X("arrive", STR, arrive, "steered", 0, 0,                                                  \
	  "steered (each datagram at the owner of its port) or worker0 (all at worker 0)")         \
	X("burst", U32, burst, "32", 1, MAX_BURST, "datagrams per burst")                          \
	X("passes", U32, passes, "20", 1, 100000, "passes over the recording per run")             \
	X("runs", U32, runs, "5", 1, 1000, "runs, each timed on its own")                          \
	X("value-size", U32, value_size, "32", 0, 4096, "bytes of each value stored first")        \
	X("memory", SIZE, memory, "256M", 1 << 20, UINT64_C(1) << 36, "item memory in all")        \
	X("guard", STR, guard_name, "off", 0, 0,                                                        \
	  "off, cookie (an envelope with the source's cookie) or mac (cookie and tenant MAC)")

struct cfg {
#define CFG_STR(f)					 char f[256];
#define CFG_U32(f)					 uint32_t f;
#define CFG_SIZE(f)					 uint64_t f;
#define CFG_FIELD(key, type, field, def, min, max, help) CFG_##type(field)
	REPLAY_OPTIONS(CFG_FIELD)
#undef CFG_FIELD
	bool steered; /* arrive steered */
	int modes[3]; /* --guard: 0 off, 1 cookie, 2 mac */
	unsigned int nmodes;
};

static const struct kite_conf_opt opts[] = {
#define CFG_OPT(key, type, field, def, min, max, help)                                             \
	{ key,                                                                                     \
	  KITE_CONF_##type,                                                                        \
	  offsetof(struct cfg, field),                                                             \
	  sizeof(((struct cfg *)0)->field),                                                        \
	  def,                                                                                     \
	  (double)(min),                                                                           \
	  (double)(max),                                                                           \
	  help },
	REPLAY_OPTIONS(CFG_OPT)
#undef CFG_OPT
};

/* A recorded request datagram. */
struct rec {
	uint8_t *data;
	uint16_t len;
	uint16_t port;
	uint16_t reqs;
	uint16_t sport; /* --guard: the source port it claims */
};

static struct rec base_recs[MAX_DGRAMS];
/* The recording the passes replay: base_recs, or a --guard mode's copy with envelopes. */
static struct rec *recs = base_recs;
static unsigned int nrecs;
/* --guard: the modes to run (0 off, 1 cookie, 2 mac), each run timing every one in turn. */
static int cur_mode;
static struct rec *mode_recs[3] = { base_recs, NULL, NULL };
static uint64_t replies;
static uint8_t reply_buf[KITE_MAX_REPLY_DGRAMS][PAYLOAD];

static uint8_t *
r_alloc(void *arg, unsigned int idx)
{
	(void)arg;
	return idx < KITE_MAX_REPLY_DGRAMS ? reply_buf[idx] : NULL;
}

static void
r_done(void *arg, unsigned int n, uint8_t *const *bufs, const uint16_t *lens
#if TWO_PHASE
       ,
       bool inplace
#endif
)
{
	(void)arg;
	(void)bufs;
	(void)lens;
#if TWO_PHASE
	(void)inplace;
#endif
	replies += n;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: engine-replay [EAL args] -- --pcap FILE [options]\n\n");
	for (size_t i = 0; i < RTE_DIM(opts); i++)
		fprintf(f, "  --%-12s %s (%s%s)\n", opts[i].key, opts[i].help,
			opts[i].def[0] ? "default " : "required", opts[i].def);
}

/* --key value or --key=value for every option of the table. */
static int
parse_args(int argc, char **argv, struct cfg *c)
{
	char err[256], key[32];

	kite_conf_defaults(opts, RTE_DIM(opts), c, sizeof(*c));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *val;
		const struct kite_conf_opt *o;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strncmp(a, "--", 2) != 0 || strlen(a + 2) >= sizeof(key)) {
			fprintf(stderr, "engine-replay: unexpected argument '%s'\n", a);
			return -EINVAL;
		}
		snprintf(key, sizeof(key), "%s", a + 2);
		eq = strchr(a, '=');
		if (eq != NULL) {
			key[eq - a - 2] = '\0';
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			fprintf(stderr, "engine-replay: --%s needs a value\n", key);
			return -EINVAL;
		}
		o = kite_conf_find(opts, RTE_DIM(opts), key);
		if (o == NULL) {
			fprintf(stderr, "engine-replay: unknown option --%s (see --help)\n", key);
			return -EINVAL;
		}
		if (kite_conf_set(o, c, val, "--", err, sizeof(err)) != 0) {
			fprintf(stderr, "engine-replay: %s\n", err);
			return -EINVAL;
		}
	}
	c->steered = strcmp(c->arrive, "steered") == 0;
	{
		char list[256], *save = NULL;

		snprintf(list, sizeof(list), "%s", c->guard_name);
		c->nmodes = 0;
		for (char *t = strtok_r(list, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
			int m = strcmp(t, "off") == 0 ? 0 : strcmp(t, "cookie") == 0 ? 1
				: strcmp(t, "mac") == 0 ? 2 : -1;
			if (m < 0 || (m > 0 && !HAVE_GUARD) || c->nmodes == 3) {
				fprintf(stderr, "engine-replay: --guard: off, cookie, mac or a list of "
						"them (this revision: %s)\n",
					HAVE_GUARD ? "all three" : "off only");
				return -EINVAL;
			}
			c->modes[c->nmodes++] = m;
		}
		if (c->nmodes == 0)
			c->modes[c->nmodes++] = 0;
	}
	if (c->pcap[0] == '\0' || (!c->steered && strcmp(c->arrive, "worker0") != 0)) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/* The UDP payload of an Ethernet/IPv4 frame, unfragmented; NULL otherwise. */
static const uint8_t *
udp_payload(const uint8_t *f, uint32_t caplen, uint16_t *len, uint16_t *port)
{
	uint32_t ihl;
	uint16_t ulen;

	if (caplen < 14 + 20 + 8 || f[12] != 0x08 || f[13] != 0x00)
		return NULL;
	ihl = (uint32_t)(f[14] & 0x0f) * 4;
	if ((f[14] >> 4) != 4 || ihl < 20 || f[14 + 9] != 17 ||
	    ((f[14 + 6] & 0x3f) | f[14 + 7]) != 0 || caplen < 14 + ihl + 8)
		return NULL;
	*port = (uint16_t)(f[14 + ihl + 2] << 8 | f[14 + ihl + 3]);
	ulen = (uint16_t)(f[14 + ihl + 4] << 8 | f[14 + ihl + 5]);
	if (ulen < 8 + 8 || ulen - 8u > DGRAM_MAX || 14 + ihl + ulen > caplen)
		return NULL;
	*len = (uint16_t)(ulen - 8);
	return f + 14 + ihl + 8;
}

/*
 * Keys of a text datagram of get lines (kite-bench --protocol text), read
 * by the node's own text parser, or 0 when it holds anything else.
 */
static unsigned int
count_text_gets(const uint8_t *p, uint32_t len, const uint8_t **keys, uint16_t *keylens,
		unsigned int max)
{
	struct kite_text_cursor c;
	uint32_t off = KITE_FRAME_HDR_LEN;
	unsigned int n = 0;

	kite_text_cursor_init(&c, false);
	while (off < len) {
		struct kite_req r;
		struct kite_text_req t;
		size_t used;
		uint8_t drop;

		if (kite_text_parse(p + off, len - off, 1u << 20, &c, &r, &t, &used, &drop) !=
			    KITE_PARSE_OK ||
		    r.cmd != KITE_CMD_GET || n == max)
			return 0;
		keys[n] = r.key;
		keylens[n] = r.keylen;
		n++;
		off += (uint32_t)used;
	}
	return n;
}

/* Requests of a datagram (after its 8-byte frame), or 0 when it does not parse cleanly. */
static unsigned int
count_reqs(const uint8_t *p, uint32_t len, const uint8_t **keys, uint16_t *keylens,
	   unsigned int max)
{
	uint32_t off = KITE_FRAME_HDR_LEN;
	unsigned int n = 0;

	if (len > off && p[off] != KITE_MAGIC_REQ)
		return count_text_gets(p, len, keys, keylens, max);

	while (off < len && n < max) {
		struct kite_req r;
		size_t used;
		uint8_t status, drop;

		if (kite_proto_parse(p + off, len - off, 1u << 20, &r, &used, &status, &drop) !=
		    KITE_PARSE_OK)
			return 0;
		keys[n] = r.key;
		keylens[n] = r.keylen;
		n++;
		off += (uint32_t)used;
	}
	return off == len ? n : 0;
}

static int
load_pcap(const char *path)
{
	char err[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline(path, err);
	struct pcap_pkthdr *h;
	const u_char *f;
	const uint8_t *keys[256];
	uint16_t keylens[256];
	unsigned int skipped = 0;

	if (p == NULL) {
		fprintf(stderr, "engine-replay: %s: %s\n", path, err);
		return -ENOENT;
	}
	while (nrecs < MAX_DGRAMS && pcap_next_ex(p, &h, &f) == 1) {
		uint16_t len, port;
		const uint8_t *u = udp_payload(f, h->caplen, &len, &port);
		unsigned int n = u != NULL ? count_reqs(u, len, keys, keylens, 256) : 0;

		if (n == 0) {
			skipped++;
			continue;
		}
		recs[nrecs].data = malloc(len);
		if (recs[nrecs].data == NULL)
			break;
		memcpy(recs[nrecs].data, u, len);
		recs[nrecs].len = len;
		recs[nrecs].port = port;
		recs[nrecs].reqs = (uint16_t)n;
		nrecs++;
	}
	pcap_close(p);
	if (skipped > 0)
		fprintf(stderr,
			"engine-replay: %u frames skipped (not one whole request datagram)\n",
			skipped);
	return nrecs > 0 ? 0 : -ENOENT;
}

static struct kite_engine *engines[MAX_WORKERS];
static engine_stats stats[MAX_WORKERS];

static struct kite_engine_dgram *
dgram_of(struct kite_engine_dgram *d, const struct rec *r, bool home)
{
	/* Never in place: the recording is replayed many times. */
	*d = (struct kite_engine_dgram){ r->data, r->len, home, false, NULL };
	return d;
}

/* SET every key of the recording once, on its owner, so the replay measures hits. */
static void
preload(const struct cfg *c, unsigned int nparts)
{
	static uint8_t dg[DGRAM_MAX + 600];
	static uint8_t value[4096];
	const uint8_t *keys[256];
	uint16_t keylens[256];
	uint8_t ext[8] = { 0 };

	memset(value, 'v', sizeof(value));
	for (unsigned int i = 0; i < nrecs; i++) {
		unsigned int n = count_reqs(recs[i].data, recs[i].len, keys, keylens, 256);

		for (unsigned int k = 0; k < n; k++) {
			uint32_t p = KEY_PARTITION(keys[k], keylens[k], nparts);
			struct kite_engine_dgram d = { dg, 0, true, false, NULL };
			int len;

			memset(dg, 0, KITE_FRAME_HDR_LEN);
			dg[5] = 1; /* total = 1 */
			len = kite_proto_build_req(dg + KITE_FRAME_HDR_LEN,
						   sizeof(dg) - KITE_FRAME_HDR_LEN, KITE_OP_SETQ, 0,
						   0, ext, 8, keys[k], keylens[k], value,
						   c->value_size);
			if (len < 0)
				continue;
			d.len = (uint32_t)(KITE_FRAME_HDR_LEN + len);
			kite_engine_process(engines[p % c->workers], &d, 1);
		}
	}
}

#if HAVE_GUARD
#define SRC_IP 0xc6120001u /* 198.18.0.1 */
#define SOURCES 64	   /* source ports the datagrams claim */
static struct kite_guard *mguards[3][MAX_WORKERS];
static struct kite_guard_stats gstats[3][MAX_WORKERS];
static struct kite_guard_tenants *tenants;
static uint8_t mac_key[16];
static uint64_t stamp;
static uint64_t guard_drops;

static uint64_t
wall_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
}

/*
 * The guards (one per worker, as kited has), a tenant whose prefix is
 * what every recorded key starts with, each source's cookie from a hello,
 * and an envelope in every recorded datagram.
 */
static int
guard_setup(const struct cfg *c, int mode)
{
	struct kite_guard **guards = mguards[mode];
	static const char *names[KITE_CMD_MAX];
	struct kite_guard_conf gc;
	uint8_t secret[32], ck[SOURCES][KITE_GUARD_COOKIE_LEN];
	const uint8_t *keys[256];
	uint16_t keylens[256];
	uint8_t prefix[KITE_GUARD_PREFIX_MAX];
	size_t plen = KITE_GUARD_PREFIX_MAX;
	char text[512], err[256];

	for (unsigned int i = 0; i < KITE_CMD_MAX; i++)
		names[i] = kite_proto_cmd_name(i);
	memset(&gc, 0, sizeof(gc));
	gc.self_ip = 0xc6120002u;
	gc.bound = true;
	memset(gc.cookie_secret, 0x5a, sizeof(gc.cookie_secret));
	gc.cookie_window_s = 300;
	gc.credit_max = 16384;
	gc.credit_ms = 1000;
	gc.burst_ms = 100;
	gc.work = 512;
	gc.auth = mode == 2 ? KITE_GUARD_AUTH_REQUIRED : KITE_GUARD_AUTH_OFF;
	gc.stamp_past_ms = 30000;
	gc.stamp_future_ms = 1000;
	gc.workers = c->workers;
	gc.sources = 4096;
	gc.all_cmds = (UINT32_C(1) << KITE_CMD_MAX) - 1;
	gc.admin_cmds = UINT32_C(1) << KITE_CMD_STAT | UINT32_C(1) << KITE_CMD_FLUSH;
	gc.mtu = 1500;
	for (unsigned int w = 0; w < c->workers; w++) {
		guards[w] = kite_guard_create(&gc, &gstats[mode][w]);
		if (guards[w] == NULL)
			return -1;
	}
	/* The tenant owns the keys' common prefix. */
	for (unsigned int i = 0; i < nrecs && plen > 0; i++) {
		unsigned int n = count_reqs(base_recs[i].data, base_recs[i].len, keys, keylens, 256);
		for (unsigned int k = 0; k < n; k++) {
			size_t m = 0;
			if (i == 0 && k == 0) {
				plen = keylens[0] < plen ? keylens[0] : plen;
				memcpy(prefix, keys[0], plen);
			}
			while (m < plen && m < keylens[k] && keys[k][m] == prefix[m])
				m++;
			plen = m;
		}
	}
	if (mode == 2) {
		char hex[65];
		if (plen == 0 || memchr(prefix, ' ', plen) != NULL) {
			fprintf(stderr, "engine-replay: --guard mac: the keys share no prefix\n");
			return -1;
		}
		memset(secret, 0x33, sizeof(secret));
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", secret[i]);
		snprintf(text, sizeof(text), "1 bench %s %.*s\n", hex, (int)plen, (const char *)prefix);
		tenants = kite_guard_tenants_parse(text, names, KITE_CMD_MAX, err, sizeof(err));
		if (tenants == NULL) {
			fprintf(stderr, "engine-replay: tenant: %s\n", err);
			return -1;
		}
		kite_guard_mac_key(mac_key, secret);
		for (unsigned int w = 0; w < c->workers; w++)
			kite_guard_set_tenants(guards[w], tenants);
	}
	/* Each source's cookie, from a hello as a client gets it. */
	for (unsigned int sp = 0; sp < SOURCES; sp++) {
		uint8_t h[8 + 16] = { 0 };
		struct kite_guard_verdict v;
		struct kite_guard_env e;

		h[5] = 1;
		kite_guard_env_write(h + 8, 16, KITE_GUARD_F_HELLO, NULL, 0, 0, 0, 0, 16);
		kite_guard_check(guards[0], h, sizeof(h), SRC_IP, (uint16_t)(20000 + sp), wall_us(),
				 &v);
		if (v.action != KITE_GUARD_REPLY ||
		    kite_guard_env_parse(v.reply + 8, v.reply_len - 8u, &e) <= 0 || e.cookie == NULL)
			return -1;
		memcpy(ck[sp], e.cookie, sizeof(ck[sp]));
	}
	/* A copy of the recording with the envelope between the frame and the requests. */
	struct rec *mr = calloc(nrecs, sizeof(*mr));
	if (mr == NULL)
		return -1;
	mode_recs[mode] = mr;
	for (unsigned int i = 0; i < nrecs; i++) {
		const uint8_t flags = KITE_GUARD_F_COOKIE | (mode == 2 ? KITE_GUARD_F_AUTH : 0);
		uint8_t env[64];
		int el;
		uint8_t *d;

		mr[i] = base_recs[i];
		mr[i].sport = (uint16_t)(20000 + i % SOURCES);
		el = kite_guard_env_write(env, sizeof(env), flags, ck[i % SOURCES], 1, 0, 0, 0, 0);
		d = malloc(base_recs[i].len + (size_t)el);
		if (el < 0 || d == NULL)
			return -1;
		memcpy(d, base_recs[i].data, KITE_FRAME_HDR_LEN);
		memcpy(d + KITE_FRAME_HDR_LEN, env, (size_t)el);
		memcpy(d + KITE_FRAME_HDR_LEN + el, base_recs[i].data + KITE_FRAME_HDR_LEN,
		       base_recs[i].len - KITE_FRAME_HDR_LEN);
		mr[i].data = d;
		mr[i].len = (uint16_t)(base_recs[i].len + el);
	}
	stamp = wall_us();
	return 0;
}

/* mac: fresh stamps and MACs for the next pass (a replay would be refused). */
static void
resign(void)
{
	const size_t at = KITE_FRAME_HDR_LEN + KITE_GUARD_ENV_HEAD + KITE_GUARD_COOKIE_LEN + 4;

	struct rec *mr = mode_recs[2];

	for (unsigned int i = 0; i < nrecs; i++) {
		uint8_t *p = mr[i].data + at;

		stamp++;
		for (int b = 0; b < 8; b++)
			p[b] = (uint8_t)(stamp >> (56 - 8 * b));
		memset(p + 8, 0, 16);
		kite_guard_sign(mr[i].data, mr[i].len, mac_key);
	}
}

/* The guard's verdict as kited's worker hands it to the engine. */
static bool
guarded(unsigned int h, const struct rec *r, struct kite_engine_dgram *d, uint64_t now)
{
	struct kite_guard_verdict v;

	kite_guard_check(mguards[cur_mode][h], r->data, r->len, SRC_IP, r->sport, now, &v);
	if (v.action != KITE_GUARD_PASS) {
		guard_drops++;
		return false;
	}
	d->skip = v.skip;
	d->work = v.work;
	d->budget = v.budget == UINT32_MAX ? 0 : v.budget;
	d->deny = ~v.cmds & ((UINT32_C(1) << KITE_CMD_MAX) - 1);
	d->ns = v.ns;
	d->prefix = v.prefix;
	d->prefix_len = v.prefix_len;
	return true;
}
#endif

/*
 * One burst arriving at worker h: what kited's worker_poll() does with it,
 * then the handed-off datagrams on their owners.
 */
static void
burst(const struct cfg *c, unsigned int h, const struct rec *const *in, unsigned int n)
{
	static struct kite_engine_dgram home[MAX_BURST], away[MAX_WORKERS][MAX_BURST];
	unsigned int naway[MAX_WORKERS] = { 0 };
	const uint64_t self = UINT64_C(1) << h;
#if !TWO_PHASE
	unsigned int nhome = 0;
#endif

#if HAVE_GUARD
	const uint64_t now = cur_mode ? wall_us() : 0;
#endif
	for (unsigned int i = 0; i < n; i++) {
		uint64_t mask;

#if TWO_PHASE
		dgram_of(&home[i], in[i], true);
#if HAVE_GUARD
		if (cur_mode && !guarded(h, in[i], &home[i], now))
			continue;
#endif
		mask = kite_engine_parse(engines[h], &home[i]);
#else
		mask = c->workers > 1 ? kite_engine_route(engines[h], in[i]->data, in[i]->len)
				      : self;
		if (mask & self)
			dgram_of(&home[nhome++], in[i], true);
#endif
		if (mask == self)
			continue;
		for (unsigned int o = 0; o < c->workers; o++)
			if (o != h && (mask & (UINT64_C(1) << o))) {
				dgram_of(&away[o][naway[o]], in[i], false);
#if TWO_PHASE
				/* The verdict travels with the datagram (kited: the mbuf's). */
				away[o][naway[o]] = home[i];
				away[o][naway[o]].home = false;
#endif
				naway[o]++;
			}
#if TWO_PHASE
		if (!(mask & self))
			kite_engine_withdraw(engines[h]);
#endif
	}
#if TWO_PHASE
	kite_engine_execute(engines[h]);
#else
	if (nhome > 0)
		kite_engine_process(engines[h], home, nhome);
#endif
	for (unsigned int o = 0; o < c->workers; o++)
		if (naway[o] > 0)
			kite_engine_process(engines[o], away[o], naway[o]);
}

/* One pass over the recording: datagrams queue at their arrival worker, in bursts. */
static void
pass(const struct cfg *c)
{
	static const struct rec *q[MAX_WORKERS][MAX_BURST];
	unsigned int nq[MAX_WORKERS] = { 0 };

	for (unsigned int i = 0; i < nrecs; i++) {
		unsigned int h = 0;

		if (c->steered && recs[i].port >= BASE_PORT)
			h = (unsigned int)(recs[i].port - BASE_PORT) % c->workers;
		q[h][nq[h]++] = &recs[i];
		if (nq[h] == c->burst) {
			burst(c, h, q[h], nq[h]);
			nq[h] = 0;
		}
	}
	for (unsigned int h = 0; h < c->workers; h++)
		if (nq[h] > 0)
			burst(c, h, q[h], nq[h]);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct kite_store **parts;
	struct kite_store_params sp;
	struct kite_engine_conf ec;
	struct cfg c;
	uint64_t reqs = 0;
	double *cpr;
	int ret = rte_eal_init(argc, argv);

	if (ret < 0) {
		fprintf(stderr, "engine-replay: EAL: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	argc -= ret;
	argv += ret;
	argv[0] = (char *)"engine-replay";
	if (parse_args(argc, argv, &c) != 0 || load_pcap(c.pcap) != 0)
		return 2;
	const unsigned int nparts = c.workers * c.partitions;
	parts = calloc(nparts, sizeof(*parts));
	cpr = calloc(c.runs, sizeof(*cpr));
	if (parts == NULL || cpr == NULL)
		return 1;
	for (unsigned int p = 0; p < nparts; p++) {
		char name[32];

		snprintf(name, sizeof(name), "replay_p%u", p);
		memset(&sp, 0, sizeof(sp));
		sp.name = name;
		sp.socket_id = (int)rte_socket_id();
		sp.mem_bytes = c.memory / nparts;
		sp.id = (uint16_t)p;
		parts[p] = kite_store_create(&sp);
		if (parts[p] == NULL) {
			fprintf(stderr, "engine-replay: partition %u: %s\n", p,
				rte_strerror(rte_errno));
			return 1;
		}
	}
	for (unsigned int w = 0; w < c.workers; w++) {
		memset(&ec, 0, sizeof(ec));
		ec.map.partitions = nparts;
		ec.map.workers = (uint16_t)c.workers;
		ec.map.base_port = BASE_PORT;
		ec.self = (uint16_t)w;
		ec.parts = parts;
		ec.max_item_size = 1u << 20;
		ec.max_payload = PAYLOAD;
		ec.stats = &stats[w];
		ec.out.alloc = r_alloc;
		ec.out.done = r_done;
		engines[w] = kite_engine_create(&ec, (int)rte_socket_id());
		if (engines[w] == NULL) {
			fprintf(stderr, "engine-replay: engine %u: %s\n", w,
				rte_strerror(rte_errno));
			return 1;
		}
		kite_engine_set_time(engines[w], NOW);
	}
	for (unsigned int i = 0; i < nrecs; i++)
		reqs += recs[i].reqs;
	preload(&c, nparts);
#if HAVE_GUARD
	for (unsigned int k = 0; k < c.nmodes; k++)
		if (c.modes[k] != 0 && mode_recs[c.modes[k]] == NULL &&
		    guard_setup(&c, c.modes[k]) != 0) {
			fprintf(stderr, "engine-replay: the guard could not be set up\n");
			return 1;
		}
#endif
	static const char *const mode_name[3] = { "off", "cookie", "mac" };
	printf("engine-replay: %s engine, %u datagrams (%" PRIu64 " requests) from %s, "
	       "%u worker(s) x %u partitions, arrive %s, bursts of %u, %u passes x %u runs, "
	       "guard %s\n",
	       TWO_PHASE ? "two-phase (parse once)" : "route + process (parse twice)", nrecs, reqs,
	       c.pcap, c.workers, c.partitions, c.steered ? "steered" : "at worker 0", c.burst,
	       c.passes, c.runs, c.guard_name);
	/* Each mode's cycles per request, run by run; the modes take turns within a run. */
	double *mcpr = calloc((size_t)c.runs * c.nmodes, sizeof(*mcpr));
	if (mcpr == NULL)
		return 1;
	bool with_mac = false;
	for (unsigned int k = 0; k < c.nmodes; k++)
		with_mac |= c.modes[k] == 2;
	(void)with_mac;
	for (unsigned int k = 0; k < c.nmodes; k++) {
		recs = mode_recs[c.modes[k]];
		cur_mode = c.modes[k];
#if HAVE_GUARD
		if (cur_mode == 2)
			resign();
#endif
		pass(&c); /* warm the caches and the branch predictors */
	}
	for (unsigned int r = 0; r < c.runs; r++) {
		for (unsigned int k = 0; k < c.nmodes; k++) {
			uint64_t replies0 = replies, spent = 0;

			recs = mode_recs[c.modes[k]];
			cur_mode = c.modes[k];
			for (unsigned int p = 0; p < c.passes; p++) {
#if HAVE_GUARD
				/*
				 * Outside the timing: the client's work, fresh stamps and
				 * MACs. Before every mode's pass when mac is measured, so
				 * each sees the same cache disturbance (2 MB of records
				 * written and hashed), not the mac mode alone.
				 */
				if (with_mac)
					resign();
#endif
				uint64_t t0 = rte_rdtsc();
				pass(&c);
				spent += rte_rdtsc() - t0;
			}
			mcpr[k * c.runs + r] = (double)spent / (double)(reqs * c.passes);
			printf("run %u%s%s: %.1f cycles/request, %" PRIu64 " reply datagrams\n", r + 1,
			       c.nmodes > 1 ? " guard " : "", c.nmodes > 1 ? mode_name[cur_mode] : "",
			       mcpr[k * c.runs + r], replies - replies0);
			fflush(stdout);
		}
	}
	recs = base_recs;
	memcpy(cpr, mcpr, sizeof(*cpr) * c.runs);
	uint64_t hits = 0, served = 0;
	for (unsigned int p = 0; p < nparts; p++) {
		struct kite_store_stats st;

		kite_store_stats_get(parts[p], &st);
		hits += st.get_hits;
	}
	for (unsigned int w = 0; w < c.workers; w++)
		served += stats[w].served;
	qsort(cpr, c.runs, sizeof(*cpr), cmp_double);
	printf("median: %.1f cycles/request (%" PRIu64 " requests served, %" PRIu64 " GET hits)\n",
	       cpr[c.runs / 2], served, hits);
	for (unsigned int k = 0; c.nmodes > 1 && k < c.nmodes; k++) {
		/* Paired: each run's ratio to the first mode's in the same run. */
		double *ratio = calloc(c.runs, sizeof(*ratio)), *own = mcpr + k * c.runs;
		if (ratio == NULL)
			break;
		for (unsigned int r = 0; r < c.runs; r++)
			ratio[r] = own[r] / mcpr[r];
		qsort(own, c.runs, sizeof(*own), cmp_double);
		qsort(ratio, c.runs, sizeof(*ratio), cmp_double);
		printf("median guard %s: %.1f cycles/request, paired ratio to %s %.3f\n",
		       mode_name[c.modes[k]], own[c.runs / 2], mode_name[c.modes[0]],
		       ratio[c.runs / 2]);
		free(ratio);
	}
	free(mcpr);
#if HAVE_GUARD
	{
		uint64_t passed = 0, authed = 0;
		for (int m = 1; m < 3; m++)
			for (unsigned int w = 0; w < c.workers; w++) {
				passed += gstats[m][w].validated;
				authed += gstats[m][w].authed;
				kite_guard_free(mguards[m][w]);
			}
		if (mode_recs[1] != NULL || mode_recs[2] != NULL)
			printf("guard: %" PRIu64 " datagrams validated by cookie, %" PRIu64
			       " authenticated, %" PRIu64 " refused\n", passed, authed, guard_drops);
		for (int m = 1; m < 3; m++) {
			for (unsigned int i = 0; mode_recs[m] != NULL && i < nrecs; i++)
				free(mode_recs[m][i].data);
			free(mode_recs[m]);
		}
		free(tenants);
	}
#endif
	for (unsigned int w = 0; w < c.workers; w++)
		kite_engine_free(engines[w]);
	for (unsigned int p = 0; p < nparts; p++)
		kite_store_free(parts[p]);
	for (unsigned int i = 0; i < nrecs; i++)
		free(recs[i].data);
	free(parts);
	free(cpr);
	rte_eal_cleanup();
	return 0;
}
