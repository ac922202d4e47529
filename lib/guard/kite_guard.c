/* SPDX-License-Identifier: BSD-3-Clause */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "kite_guard.h"

#define STAT_NAME(field, name, help) name,
#define STAT_HELP(field, name, help) help,
const char *const kite_guard_stats_names[] = { KITE_GUARD_STATS(STAT_NAME) };
const char *const kite_guard_stats_help[] = { KITE_GUARD_STATS(STAT_HELP) };

/* Token buckets count micro-tokens: one request (or byte) is 1e6. */
#define MICRO 1000000LL

/* One source address: banked bound bytes and its rate buckets. */
struct src {
	uint32_t ip;   /* 0: empty slot (0.0.0.0 is a martian, never stored) */
	uint32_t credit;
	uint64_t last_us;
	int64_t req_tokens;
	int64_t byte_tokens;
};

/* The last stamp accepted from one tenant at one source socket. */
struct seen {
	uint32_t tenant;
	uint32_t ip;
	uint16_t port;
	bool used;
	uint64_t stamp;
};

struct tstate {
	int64_t tokens;
	uint64_t last_us;
};

struct kite_guard {
	struct kite_guard_conf c;
	struct kite_guard_stats *st;
	const struct kite_guard_tenants *tenants;
	uint8_t first_bytes[32]; /* bit b: some tenant prefix starts with byte b */
	/* Per-window cookie keys: the current window's and the one before. */
	struct {
		uint64_t w;
		bool valid;
		uint8_t key[crypto_shorthash_KEYBYTES];
	} ck[2];
	uint64_t src_rate, src_bytes, src_req_cap, src_byte_cap; /* this worker's share */
	uint64_t floor; /* highest stamp ever evicted from seen[]: a fresh slot accepts only above */
	uint64_t w_now, w_from_us, w_until_us; /* the current cookie window and its bounds */
	/*
	 * The cookies checked lately, by source socket: a client sends many
	 * datagrams with one cookie, and comparing 8 bytes costs less than a
	 * SipHash. Entries are what the guard computed itself, never input.
	 */
	struct {
		uint32_t ip;
		uint16_t port;
		uint64_t w;
		uint64_t hash;
	} cc[256];
	struct src *src;
	struct seen *seen;
	struct tstate ts[KITE_GUARD_MAX_TENANTS];
};

/* ---- CIDR lists --------------------------------------------------------- */

int
kite_guard_cidrs_parse(struct kite_guard_cidrs *c, const char *list, char *err, size_t errlen)
{
	const char *p = list;

	memset(c, 0, sizeof(*c));
	while (p != NULL && *p != '\0') {
		char item[64];
		size_t n;
		unsigned int a, b, d, e, bits = 32;
		char extra;
		const char *comma;

		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		comma = strchr(p, ',');
		n = comma != NULL ? (size_t)(comma - p) : strlen(p);
		while (n > 0 && isspace((unsigned char)p[n - 1]))
			n--;
		if (n == 0 || n >= sizeof(item)) {
			snprintf(err, errlen, "'%.*s': not an IPv4 address or CIDR", (int)(n < 40 ? n : 40), p);
			return -EINVAL;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		int k = sscanf(item, "%u.%u.%u.%u/%u%c", &a, &b, &d, &e, &bits, &extra);
		if (!(k == 4 && strchr(item, '/') == NULL) && k != 5) {
			snprintf(err, errlen, "'%s': not an IPv4 address or CIDR (A.B.C.D[/N])", item);
			return -EINVAL;
		}
		if (a > 255 || b > 255 || d > 255 || e > 255 || bits > 32) {
			snprintf(err, errlen, "'%s': address bytes 0..255, prefix length 0..32", item);
			return -EINVAL;
		}
		if (c->n == KITE_GUARD_MAX_CIDRS) {
			snprintf(err, errlen, "more than %d prefixes", KITE_GUARD_MAX_CIDRS);
			return -EINVAL;
		}
		uint32_t mask = bits == 0 ? 0 : ~UINT32_C(0) << (32 - bits);
		c->mask[c->n] = mask;
		c->net[c->n] = ((uint32_t)a << 24 | (uint32_t)b << 16 | (uint32_t)d << 8 | e) & mask;
		c->n++;
		p = comma;
	}
	return 0;
}

bool
kite_guard_cidrs_match(const struct kite_guard_cidrs *c, uint32_t ip)
{
	for (unsigned int i = 0; i < c->n; i++)
		if ((ip & c->mask[i]) == c->net[i])
			return true;
	return false;
}

/* ---- tenants ------------------------------------------------------------ */

void
kite_guard_mac_key(uint8_t key[16], const uint8_t secret[KITE_GUARD_SECRET_LEN])
{
	static const uint8_t ctx[] = "kite tenant mac v1";

	crypto_generichash(key, 16, ctx, sizeof(ctx) - 1, secret, KITE_GUARD_SECRET_LEN);
}

int
kite_guard_secret_parse(const char *hex, size_t len, uint8_t out[KITE_GUARD_SECRET_LEN])
{
	if (hex == NULL || len != 2 * KITE_GUARD_SECRET_LEN)
		return -EINVAL;
	for (unsigned int i = 0; i < KITE_GUARD_SECRET_LEN; i++) {
		unsigned int b;

		if (!isxdigit((unsigned char)hex[2 * i]) || !isxdigit((unsigned char)hex[2 * i + 1]) ||
		    sscanf(hex + 2 * i, "%2x", &b) != 1)
			return -EINVAL;
		out[i] = (uint8_t)b;
	}
	return 0;
}

static int
parse_cmds(const char *s, const char *const *names, unsigned int ncmd, uint32_t *out)
{
	char buf[256];
	char *save = NULL;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	*out = 0;
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		unsigned int i;

		if (strcmp(t, "all") == 0) {
			*out |= ncmd >= 32 ? ~UINT32_C(0) : (UINT32_C(1) << ncmd) - 1;
			continue;
		}
		for (i = 0; i < ncmd; i++)
			if (names[i] != NULL && strcmp(names[i], t) == 0)
				break;
		if (i == ncmd)
			return -1;
		*out |= UINT32_C(1) << i;
	}
	return 0;
}

static int
parse_line(char *line, struct kite_guard_tenant *t, const char *const *names, unsigned int ncmd,
	   char *err, size_t errlen)
{
	char *f[8];
	unsigned int nf = 0;
	char *save = NULL;
	char *end;

	for (char *tok = strtok_r(line, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
		if (nf == 8) {
			snprintf(err, errlen, "too many fields");
			return -1;
		}
		f[nf++] = tok;
	}
	if (nf < 4) {
		snprintf(err, errlen,
			 "expected: ID NAME SECRET PREFIX [admin] [cmds=...] [rate=N] [mem=N%%]");
		return -1;
	}
	memset(t, 0, sizeof(*t));
	errno = 0;
	unsigned long id = strtoul(f[0], &end, 10);
	if (*end != '\0' || errno != 0 || id == 0 || id > UINT32_MAX || f[0][0] == '-') {
		snprintf(err, errlen, "ID '%s': a number 1..4294967295", f[0]);
		return -1;
	}
	t->id = (uint32_t)id;
	if (strlen(f[1]) >= KITE_GUARD_NAME_MAX) {
		snprintf(err, errlen, "NAME '%s': at most %d characters", f[1], KITE_GUARD_NAME_MAX - 1);
		return -1;
	}
	strcpy(t->name, f[1]);
	uint8_t secret[KITE_GUARD_SECRET_LEN];
	if (kite_guard_secret_parse(f[2], strlen(f[2]), secret) != 0) {
		snprintf(err, errlen, "SECRET: 64 hex digits (32 bytes)");
		return -1;
	}
	kite_guard_mac_key(t->key, secret);
	sodium_memzero(secret, sizeof(secret));
	size_t pl = strlen(f[3]);
	if (pl == 0 || pl > KITE_GUARD_PREFIX_MAX) {
		snprintf(err, errlen, "PREFIX '%s': 1..%d bytes", f[3], KITE_GUARD_PREFIX_MAX);
		return -1;
	}
	memcpy(t->prefix, f[3], pl);
	t->prefix_len = (uint8_t)pl;
	t->cmds = ncmd >= 32 ? ~UINT32_C(0) : (UINT32_C(1) << ncmd) - 1;
	for (unsigned int i = 4; i < nf; i++) {
		if (strcmp(f[i], "admin") == 0) {
			t->admin = true;
		} else if (strncmp(f[i], "cmds=", 5) == 0) {
			if (parse_cmds(f[i] + 5, names, ncmd, &t->cmds) != 0) {
				snprintf(err, errlen, "'%s': command classes from the list in docs/security.rst, comma-separated, or all",
					 f[i]);
				return -1;
			}
		} else if (strncmp(f[i], "rate=", 5) == 0) {
			errno = 0;
			unsigned long r = strtoul(f[i] + 5, &end, 10);
			if (*end != '\0' || errno != 0 || r > 1000000000UL || f[i][5] == '-') {
				snprintf(err, errlen, "'%s': requests per second, 0..1000000000", f[i]);
				return -1;
			}
			t->rate = (uint32_t)r;
		} else if (strncmp(f[i], "mem=", 4) == 0) {
			errno = 0;
			unsigned long pct = strtoul(f[i] + 4, &end, 10);
			if (end == f[i] + 4 || strcmp(end, "%") != 0 || errno != 0 || pct == 0 ||
			    pct > 100) {
				snprintf(err, errlen, "'%s': a share of each partition, 1%%..100%%", f[i]);
				return -1;
			}
			t->mem_pct = (uint8_t)pct;
		} else {
			snprintf(err, errlen, "'%s': expected admin, cmds=..., rate=N or mem=N%%", f[i]);
			return -1;
		}
	}
	/* Items carry the tenant as an 8-bit tag (its id), which a share needs. */
	if (t->mem_pct != 0 && t->id > KITE_GUARD_TAG_MAX) {
		snprintf(err, errlen, "mem=: only tenants with an id up to %d can have a share",
			 KITE_GUARD_TAG_MAX);
		return -1;
	}
	return 0;
}

struct kite_guard_tenants *
kite_guard_tenants_parse(const char *text, const char *const *names, unsigned int ncmd, char *err,
			 size_t errlen)
{
	struct kite_guard_tenants *ts = calloc(1, sizeof(*ts));
	unsigned int lineno = 0;
	const char *p = text;

	if (ts == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	while (p != NULL && *p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		char line[512], msg[200];
		char *s;

		lineno++;
		if (n >= sizeof(line)) {
			snprintf(err, errlen, "line %u: too long", lineno);
			goto fail;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl != NULL ? nl + 1 : NULL;
		s = line;
		while (isspace((unsigned char)*s))
			s++;
		char *hash = strchr(s, '#');
		if (hash != NULL)
			*hash = '\0';
		for (char *q = s; *q; q++)
			if (*q == '\r')
				*q = ' ';
		size_t k = strlen(s);
		while (k > 0 && isspace((unsigned char)s[k - 1]))
			s[--k] = '\0';
		if (*s == '\0')
			continue;
		if (ts->n == KITE_GUARD_MAX_TENANTS) {
			snprintf(err, errlen, "line %u: more than %d tenants", lineno, KITE_GUARD_MAX_TENANTS);
			goto fail;
		}
		struct kite_guard_tenant *t = &ts->t[ts->n];
		if (parse_line(s, t, names, ncmd, msg, sizeof(msg)) != 0) {
			snprintf(err, errlen, "line %u: %s", lineno, msg);
			goto fail;
		}
		for (unsigned int i = 0; i < ts->n; i++) {
			const struct kite_guard_tenant *o = &ts->t[i];
			unsigned int m = o->prefix_len < t->prefix_len ? o->prefix_len : t->prefix_len;

			if (o->id == t->id) {
				snprintf(err, errlen, "line %u: tenant id %u twice", lineno, t->id);
				goto fail;
			}
			if (memcmp(o->prefix, t->prefix, m) == 0) {
				snprintf(err, errlen,
					 "line %u: prefix '%.*s' of %s and '%.*s' of %s: one starts the "
					 "other (prefixes must be prefix-free)",
					 lineno, (int)t->prefix_len, (const char *)t->prefix, t->name,
					 (int)o->prefix_len, (const char *)o->prefix, o->name);
				goto fail;
			}
		}
		ts->n++;
	}
	return ts;
fail:
	sodium_memzero(ts, sizeof(*ts));
	free(ts);
	return NULL;
}

struct kite_guard_tenants *
kite_guard_tenants_load(const char *path, const char *const *names, unsigned int ncmd, char *err,
			size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;
	struct kite_guard_tenants *t;
	char msg[400];

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > (1 << 20) ||
	    fseek(f, 0, SEEK_SET) != 0) {
		snprintf(err, errlen, "%s: unreadable or larger than 1 MiB", path);
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		snprintf(err, errlen, "%s: read failed", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	if (memchr(buf, '\0', (size_t)n) != NULL) {
		snprintf(err, errlen, "%s: not a text file", path);
		free(buf);
		return NULL;
	}
	t = kite_guard_tenants_parse(buf, names, ncmd, msg, sizeof(msg));
	sodium_memzero(buf, (size_t)n);
	free(buf);
	if (t == NULL)
		snprintf(err, errlen, "%s: %s", path, msg);
	return t;
}

/* ---- envelope ------------------------------------------------------------- */

static inline uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static inline void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void
put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

int
kite_guard_env_parse(const uint8_t *p, size_t n, struct kite_guard_env *e)
{
	size_t off = KITE_GUARD_ENV_HEAD;

	memset(e, 0, sizeof(*e));
	if (n == 0 || p[0] != KITE_GUARD_MAGIC)
		return 0;
	if (n < KITE_GUARD_ENV_HEAD || p[1] != KITE_GUARD_VERSION || (p[2] & ~KITE_GUARD_F_KNOWN) ||
	    p[3] < KITE_GUARD_ENV_HEAD || p[3] > n)
		return -1;
	e->flags = p[2];
	e->len = p[3];
	if (e->flags & KITE_GUARD_F_COOKIE) {
		if (off + KITE_GUARD_COOKIE_LEN > e->len)
			return -1;
		e->cookie = p + off;
		off += KITE_GUARD_COOKIE_LEN;
	}
	if (e->flags & KITE_GUARD_F_AUTH) {
		if (off + KITE_GUARD_AUTH_LEN > e->len)
			return -1;
		e->tenant = get32(p + off);
		e->stamp = get64(p + off + 4);
		e->mac = p + off + 12;
		off += KITE_GUARD_AUTH_LEN;
	}
	if (e->flags & KITE_GUARD_F_TIME) {
		if (off + KITE_GUARD_TIME_LEN > e->len)
			return -1;
		e->time_us = get64(p + off);
		off += KITE_GUARD_TIME_LEN;
	}
	if (e->flags & KITE_GUARD_F_ERROR) {
		if (off + KITE_GUARD_ERRF_LEN > e->len)
			return -1;
		e->err = (uint16_t)(p[off] << 8 | p[off + 1]);
		off += KITE_GUARD_ERRF_LEN;
	}
	return e->len;
}

int
kite_guard_env_write(uint8_t *p, size_t cap, uint8_t flags, const uint8_t *cookie, uint32_t tenant,
		     uint64_t stamp, uint64_t time_us, uint16_t err, size_t min_len)
{
	size_t off = KITE_GUARD_ENV_HEAD;
	size_t need = KITE_GUARD_ENV_HEAD + ((flags & KITE_GUARD_F_COOKIE) ? KITE_GUARD_COOKIE_LEN : 0) +
		      ((flags & KITE_GUARD_F_AUTH) ? KITE_GUARD_AUTH_LEN : 0) +
		      ((flags & KITE_GUARD_F_TIME) ? KITE_GUARD_TIME_LEN : 0) +
		      ((flags & KITE_GUARD_F_ERROR) ? KITE_GUARD_ERRF_LEN : 0);

	if (need < min_len)
		need = min_len;
	if (need > cap || need > 255 || (flags & ~KITE_GUARD_F_KNOWN))
		return -1;
	memset(p, 0, need);
	p[0] = KITE_GUARD_MAGIC;
	p[1] = KITE_GUARD_VERSION;
	p[2] = flags;
	p[3] = (uint8_t)need;
	if (flags & KITE_GUARD_F_COOKIE) {
		if (cookie != NULL)
			memcpy(p + off, cookie, KITE_GUARD_COOKIE_LEN);
		off += KITE_GUARD_COOKIE_LEN;
	}
	if (flags & KITE_GUARD_F_AUTH) {
		put32(p + off, tenant);
		put64(p + off + 4, stamp);
		off += KITE_GUARD_AUTH_LEN; /* MAC zero: kite_guard_sign() */
	}
	if (flags & KITE_GUARD_F_TIME) {
		put64(p + off, time_us);
		off += KITE_GUARD_TIME_LEN;
	}
	if (flags & KITE_GUARD_F_ERROR) {
		p[off] = (uint8_t)(err >> 8);
		p[off + 1] = (uint8_t)err;
	}
	return (int)need;
}

/* Where the MAC of an envelope's AUTH field lies in the datagram, or 0. */
static size_t
mac_offset(const struct kite_guard_env *e)
{
	if (!(e->flags & KITE_GUARD_F_AUTH))
		return 0;
	return 8 + KITE_GUARD_ENV_HEAD + ((e->flags & KITE_GUARD_F_COOKIE) ? KITE_GUARD_COOKIE_LEN : 0) +
	       12;
}

static void
mac_of(uint8_t out[16], const uint8_t *dgram, size_t len, const uint8_t key[16])
{
	crypto_shorthash_siphashx24(out, dgram, len, key);
}

int
kite_guard_sign(uint8_t *dgram, size_t len, const uint8_t key[16])
{
	struct kite_guard_env e;
	uint8_t mac[16];
	size_t at;

	if (len < 8 || kite_guard_env_parse(dgram + 8, len - 8, &e) <= 0 ||
	    (at = mac_offset(&e)) == 0)
		return -1;
	memset(dgram + at, 0, 16);
	mac_of(mac, dgram, len, key);
	memcpy(dgram + at, mac, 16);
	return 0;
}

/* ---- the guard ---------------------------------------------------------- */

struct kite_guard *
kite_guard_create(const struct kite_guard_conf *conf, struct kite_guard_stats *stats)
{
	struct kite_guard *g;
	unsigned int w;

	if (conf == NULL || stats == NULL || conf->sources == 0 ||
	    (conf->sources & (conf->sources - 1)) != 0 || conf->cookie_window_s == 0 ||
	    conf->mtu < 68 || sodium_init() < 0) {
		errno = EINVAL;
		return NULL;
	}
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	g->src = calloc(conf->sources, sizeof(*g->src));
	g->seen = calloc(conf->sources, sizeof(*g->seen));
	if (g->src == NULL || g->seen == NULL) {
		kite_guard_free(g);
		errno = ENOMEM;
		return NULL;
	}
	g->c = *conf;
	g->st = stats;
	w = conf->workers ? conf->workers : 1;
	/* A source picks its worker by port: each gets an equal share of the node's rate. */
	g->src_rate = (conf->source_rate + w - 1) / w;
	g->src_bytes = ((uint64_t)conf->source_bytes + w - 1) / w;
	g->src_req_cap = g->src_rate * (conf->burst_ms ? conf->burst_ms : 1) * 1000;
	g->src_byte_cap = g->src_bytes * (conf->burst_ms ? conf->burst_ms : 1) * 1000;
	return g;
}

void
kite_guard_free(struct kite_guard *g)
{
	if (g == NULL)
		return;
	free(g->src);
	free(g->seen);
	sodium_memzero(g, sizeof(*g));
	free(g);
}

void
kite_guard_set_tenants(struct kite_guard *g, const struct kite_guard_tenants *t)
{
	g->tenants = t;
	memset(g->first_bytes, 0, sizeof(g->first_bytes));
	memset(g->ts, 0, sizeof(g->ts));
	if (t == NULL)
		return;
	for (unsigned int i = 0; i < t->n; i++) {
		uint8_t b = t->t[i].prefix[0];
		g->first_bytes[b >> 3] |= (uint8_t)(1u << (b & 7));
	}
}

bool
kite_guard_key_owned(const struct kite_guard *g, const uint8_t *key, uint16_t len)
{
	const struct kite_guard_tenants *t = g->tenants;

	if (t == NULL || len == 0 || !(g->first_bytes[key[0] >> 3] & (1u << (key[0] & 7))))
		return false;
	for (unsigned int i = 0; i < t->n; i++)
		if (len >= t->t[i].prefix_len && memcmp(key, t->t[i].prefix, t->t[i].prefix_len) == 0)
			return true;
	return false;
}

uint32_t
kite_guard_ip_bytes(uint32_t payload, uint16_t mtu)
{
	uint32_t data = payload + 8;           /* the UDP header travels in the first fragment */
	uint32_t per = (uint32_t)(mtu - 20) & ~7u; /* fragment data is a multiple of 8 */
	uint32_t frags = (data + per - 1) / per;

	return data + 20 * (frags ? frags : 1);
}

/* The cookie key of window w: BLAKE2b keyed with the secret (no shared state, no lock). */
static const uint8_t *
cookie_key(struct kite_guard *g, uint64_t w)
{
	static const uint8_t ctx[] = "kite cookie v1";
	unsigned int slot = (unsigned int)(w & 1);
	uint8_t in[sizeof(ctx) - 1 + 8];

	if (g->ck[slot].valid && g->ck[slot].w == w)
		return g->ck[slot].key;
	memcpy(in, ctx, sizeof(ctx) - 1);
	put64(in + sizeof(ctx) - 1, w);
	crypto_generichash(g->ck[slot].key, sizeof(g->ck[slot].key), in, sizeof(in),
			   g->c.cookie_secret, sizeof(g->c.cookie_secret));
	g->ck[slot].w = w;
	g->ck[slot].valid = true;
	return g->ck[slot].key;
}

static void
make_cookie(struct kite_guard *g, uint64_t w, uint32_t ip, uint16_t port, uint8_t out[12])
{
	uint8_t in[6];

	put32(in, ip);
	in[4] = (uint8_t)(port >> 8);
	in[5] = (uint8_t)port;
	put32(out, (uint32_t)w);
	crypto_shorthash(out + 4, in, sizeof(in), cookie_key(g, w));
}

static bool
martian(const struct kite_guard *g, uint32_t ip, uint16_t port)
{
	const uint8_t top = (uint8_t)(ip >> 24);

	return top == 0 || top == 127 || top >= 224 || ip == g->c.self_ip || port == 0;
}

/* The source table's slot for an address (src_of() and kite_guard_account() agree on it). */
static struct src *
src_slot(struct kite_guard *g, uint32_t ip)
{
	return &g->src[((ip * 0x9e3779b1u) >> 8) & (g->c.sources - 1)];
}

static struct src *
src_of(struct kite_guard *g, uint32_t ip, uint64_t now_us)
{
	struct src *s = src_slot(g, ip);

	if (s->ip != ip) {
		/* A new source (or a colliding one): nothing banked, full buckets. */
		s->ip = ip;
		s->credit = 0;
		s->last_us = now_us;
		s->req_tokens = (int64_t)g->src_req_cap;
		s->byte_tokens = (int64_t)g->src_byte_cap;
		return s;
	}
	uint64_t dt = now_us > s->last_us ? now_us - s->last_us : 0;
	if (dt > (uint64_t)g->c.credit_ms * 1000)
		s->credit = 0;
	if (g->src_rate) {
		int64_t t = s->req_tokens + (int64_t)(dt * g->src_rate);
		s->req_tokens = t > (int64_t)g->src_req_cap ? (int64_t)g->src_req_cap : t;
	}
	if (g->src_bytes) {
		int64_t t = s->byte_tokens + (int64_t)(dt * g->src_bytes);
		s->byte_tokens = t > (int64_t)g->src_byte_cap ? (int64_t)g->src_byte_cap : t;
	}
	s->last_us = now_us;
	return s;
}

static int
find_tenant(const struct kite_guard_tenants *t, uint32_t id)
{
	if (t == NULL)
		return -1;
	for (unsigned int i = 0; i < t->n; i++)
		if (t->t[i].id == id)
			return (int)i;
	return -1;
}

/* A refusal of the guard's own: frame, then an envelope with our time and why. */
static void
auth_reply(struct kite_guard *g, const uint8_t *data, uint32_t len, uint64_t now_us,
	   enum kite_guard_err why, struct kite_guard_verdict *v)
{
	int n;

	memcpy(v->reply, data, 2); /* the request id */
	memset(v->reply + 2, 0, 6);
	v->reply[5] = 1; /* seq 0 of 1 */
	n = kite_guard_env_write(v->reply + 8, sizeof(v->reply) - 8,
				 KITE_GUARD_F_RESPONSE | KITE_GUARD_F_TIME | KITE_GUARD_F_ERROR, NULL, 0,
				 0, now_us, (uint16_t)why, 0);
	/* Never larger than the request: an AUTH request is longer than this reply. */
	if (n < 0 || 8u + (uint32_t)n > len) {
		v->action = KITE_GUARD_DROP;
		return;
	}
	v->reply_len = (uint16_t)(8 + n);
	v->action = KITE_GUARD_REPLY;
	(void)g;
}

/* Check a tenant MAC and stamp; the tenant's index, or -1 after writing the refusal. */
static int
check_auth(struct kite_guard *g, uint8_t *data, uint32_t len, const struct kite_guard_env *e,
	   uint32_t ip, uint16_t port, uint64_t now_us, struct kite_guard_verdict *v)
{
	const int ti = find_tenant(g->tenants, e->tenant);
	const size_t at = mac_offset(e);
	uint8_t want[16], got[16];

	if (ti < 0) {
		g->st->auth_tenant++;
		auth_reply(g, data, len, now_us, KITE_GUARD_ERR_TENANT, v);
		return -1;
	}
	memcpy(got, data + at, 16);
	memset(data + at, 0, 16);
	mac_of(want, data, len, g->tenants->t[ti].key);
	memcpy(data + at, got, 16);
	if (crypto_verify_16(want, got) != 0) {
		g->st->auth_mac++;
		auth_reply(g, data, len, now_us, KITE_GUARD_ERR_MAC, v);
		return -1;
	}
	if (e->stamp + (uint64_t)g->c.stamp_past_ms * 1000 < now_us ||
	    e->stamp > now_us + (uint64_t)g->c.stamp_future_ms * 1000) {
		g->st->auth_stamp++;
		auth_reply(g, data, len, now_us, KITE_GUARD_ERR_STAMP, v);
		return -1;
	}
	/* Replays: stamps strictly increase per tenant and source socket. */
	uint32_t h = (e->tenant * 0x85ebca6bu) ^ (ip * 0x9e3779b1u) ^ ((uint32_t)port * 0xc2b2ae35u);
	struct seen *s = &g->seen[(h >> 7) & (g->c.sources - 1)];
	bool mine = s->used && s->tenant == e->tenant && s->ip == ip && s->port == port;
	uint64_t last = mine ? s->stamp : g->floor;
	if (e->stamp <= last) {
		g->st->auth_replay++;
		auth_reply(g, data, len, now_us, KITE_GUARD_ERR_REPLAY, v);
		return -1;
	}
	if (!mine) {
		/* What the slot forgets raises the floor every new slot starts from. */
		if (s->used && s->stamp > g->floor)
			g->floor = s->stamp;
		s->used = true;
		s->tenant = e->tenant;
		s->ip = ip;
		s->port = port;
	}
	s->stamp = e->stamp;
	return ti;
}

/* Refill tenant ti's bucket to now_us; whether it is over its rate (never when it has none). */
static bool
tenant_over(struct kite_guard *g, int ti, uint64_t now_us)
{
	const struct kite_guard_conf *c = &g->c;
	const struct kite_guard_tenant *t = &g->tenants->t[ti];
	struct tstate *ts = &g->ts[ti];
	const unsigned int w = c->workers ? c->workers : 1;
	uint64_t rate;
	int64_t cap;

	if (!t->rate)
		return false;
	rate = (t->rate + w - 1) / w;
	cap = (int64_t)(rate * (c->burst_ms ? c->burst_ms : 1) * 1000);
	if (ts->last_us == 0) {
		ts->tokens = cap;
	} else {
		uint64_t dt = now_us > ts->last_us ? now_us - ts->last_us : 0;
		int64_t tk = ts->tokens + (int64_t)(dt * rate);
		ts->tokens = tk > cap ? cap : tk;
	}
	ts->last_us = now_us;
	return ts->tokens < 0;
}

void
kite_guard_check(struct kite_guard *g, uint8_t *data, uint32_t len, uint32_t src_ip,
		 uint16_t src_port, uint64_t now_us, struct kite_guard_verdict *v)
{
	const struct kite_guard_conf *c = &g->c;
	struct kite_guard_env e;
	bool validated, cookie_ok = false, fresh_cookie = false;
	int envlen = 0;
	struct src *s;

	v->action = KITE_GUARD_PASS;
	v->refuse = KITE_GUARD_REFUSE_NONE;
	v->ns = KITE_GUARD_NS_ANY;
	v->prefix = NULL;
	v->prefix_len = 0;
	v->skip = 0;
	v->work = c->work;
	v->budget = UINT32_MAX;
	v->tenant = -1;
	v->src_ip = src_ip;
	v->renv_len = 0;
	v->reply_len = 0;
	v->cmds = c->all_cmds & ~c->never_cmds;
	if (c->auth != KITE_GUARD_AUTH_OFF)
		v->cmds &= ~c->admin_cmds;

	if (martian(g, src_ip, src_port)) {
		g->st->drop_martian++;
		v->action = KITE_GUARD_DROP;
		return;
	}
	if (c->allow.n > 0 && !kite_guard_cidrs_match(&c->allow, src_ip)) {
		g->st->drop_allow++;
		v->action = KITE_GUARD_DROP;
		return;
	}
	if (len > 8) {
		envlen = kite_guard_env_parse(data + 8, len - 8, &e);
		if (envlen < 0) {
			g->st->drop_envelope++;
			v->action = KITE_GUARD_DROP;
			return;
		}
		if (envlen > 0 && (e.flags & KITE_GUARD_F_RESPONSE)) {
			g->st->drop_response++;
			v->action = KITE_GUARD_DROP;
			return;
		}
		v->skip = (uint16_t)envlen;
	}
	validated = !c->bound || (c->trusted.n > 0 && kite_guard_cidrs_match(&c->trusted, src_ip));
	/* The cookie window: two divisions, only when the clock crossed a boundary. */
	if (now_us < g->w_from_us || now_us >= g->w_until_us) {
		const uint64_t span = (uint64_t)c->cookie_window_s * 1000000;

		g->w_now = now_us / span;
		g->w_from_us = g->w_now * span;
		g->w_until_us = g->w_from_us + span;
	}
	const uint64_t now_w = g->w_now;
	if (envlen > 0 && (e.flags & KITE_GUARD_F_COOKIE)) {
		const uint64_t w = get32(e.cookie);
		uint8_t want[KITE_GUARD_COOKIE_LEN];

		if ((w == (now_w & 0xffffffffu) || w == ((now_w - 1) & 0xffffffffu)) && now_w > 0) {
			const uint64_t cw = now_w - (w != (now_w & 0xffffffffu));
			const unsigned int ci = ((src_ip * 0x9e3779b1u) ^ src_port) & 255;
			uint64_t a, b;

			if (g->cc[ci].ip == src_ip && g->cc[ci].port == src_port && g->cc[ci].w == cw) {
				a = g->cc[ci].hash;
			} else {
				make_cookie(g, cw, src_ip, src_port, want);
				memcpy(&a, want + 4, 8);
				g->cc[ci].ip = src_ip;
				g->cc[ci].port = src_port;
				g->cc[ci].w = cw;
				g->cc[ci].hash = a;
			}
			/* The window matched already; the hash in constant time (one XOR). */
			memcpy(&b, e.cookie + 4, 8);
			cookie_ok = (a ^ b) == 0;
			fresh_cookie = cookie_ok && w == (now_w & 0xffffffffu);
		}
		if (!cookie_ok)
			g->st->cookie_bad++;
		validated |= cookie_ok;
	}
	/* A client that speaks the envelope gets a (new) cookie until it holds a fresh one. */
	if (envlen >= KITE_GUARD_REPLY_ENV_MAX && !fresh_cookie) {
		v->renv_len = (uint8_t)kite_guard_env_write(v->renv, sizeof(v->renv),
							    KITE_GUARD_F_RESPONSE | KITE_GUARD_F_COOKIE,
							    NULL, 0, 0, 0, 0, 0);
		make_cookie(g, now_w, src_ip, src_port, v->renv + KITE_GUARD_ENV_HEAD);
	} else if (envlen > 0) {
		/* The reply's envelope: the head alone (a RESPONSE, nothing to keep). */
		v->renv[0] = KITE_GUARD_MAGIC;
		v->renv[1] = KITE_GUARD_VERSION;
		v->renv[2] = KITE_GUARD_F_RESPONSE;
		v->renv[3] = KITE_GUARD_ENV_HEAD;
		v->renv_len = KITE_GUARD_ENV_HEAD;
	}
	if (envlen > 0 && (e.flags & KITE_GUARD_F_HELLO) && len == 8u + (uint32_t)envlen) {
		/* A hello: frame + cookie back, never more than it sent (clients pad). */
		if (len < 8u + KITE_GUARD_REPLY_ENV_MAX) {
			g->st->drop_envelope++;
			v->action = KITE_GUARD_DROP;
			return;
		}
		memcpy(v->reply, data, 2);
		memset(v->reply + 2, 0, 6);
		v->reply[5] = 1;
		kite_guard_env_write(v->reply + 8, sizeof(v->reply) - 8,
				     KITE_GUARD_F_RESPONSE | KITE_GUARD_F_COOKIE,
				     v->renv + KITE_GUARD_ENV_HEAD, 0, 0, 0, 0, 0);
		make_cookie(g, now_w, src_ip, src_port, v->reply + 8 + KITE_GUARD_ENV_HEAD);
		v->reply_len = 8 + KITE_GUARD_REPLY_ENV_MAX;
		v->action = KITE_GUARD_REPLY;
		g->st->hellos++;
		return;
	}
	if (v->renv_len > KITE_GUARD_ENV_HEAD)
		g->st->cookies_sent++;

	if (c->auth != KITE_GUARD_AUTH_OFF) {
		if (envlen > 0 && (e.flags & KITE_GUARD_F_AUTH)) {
			int ti = check_auth(g, data, len, &e, src_ip, src_port, now_us, v);
			if (ti < 0)
				return;
			const struct kite_guard_tenant *t = &g->tenants->t[ti];
			v->tenant = ti;
			v->ns = KITE_GUARD_NS_PREFIX;
			v->prefix = t->prefix;
			v->prefix_len = t->prefix_len;
			v->cmds = (t->cmds | c->public_cmds) & c->all_cmds & ~c->never_cmds;
			if (!t->admin)
				v->cmds &= ~c->admin_cmds;
			g->st->authed++;
		} else if (c->auth == KITE_GUARD_AUTH_REQUIRED) {
			g->st->auth_missing++;
			v->refuse = KITE_GUARD_REFUSE_AUTH;
		} else if (g->tenants != NULL && g->tenants->n > 0) {
			v->ns = KITE_GUARD_NS_PUBLIC;
		}
	}

	/* A validated source without source rates needs nothing of the source table. */
	s = validated && !g->src_rate && !g->src_bytes ? NULL : src_of(g, src_ip, now_us);
	bool over = s != NULL && ((g->src_rate && s->req_tokens < 0) ||
				  (g->src_bytes && s->byte_tokens < 0));
	if (v->tenant >= 0)
		over |= tenant_over(g, v->tenant, now_us);
	if (over) {
		if (c->over == KITE_GUARD_OVER_DROP) {
			g->st->drop_rate++;
			v->action = KITE_GUARD_DROP;
			return;
		}
		g->st->busy_rate++;
		if (v->refuse == KITE_GUARD_REFUSE_NONE)
			v->refuse = KITE_GUARD_REFUSE_RATE;
	}
	g->st->passed++;
	if (validated) {
		g->st->validated++;
		return;
	}
	/* The amplification bound: what it sent, plus what it banked lately. */
	const uint32_t in = kite_guard_ip_bytes(len, c->mtu);
	v->budget = in + s->credit;
	s->credit = 0;
	g->st->bounded++;
	g->st->rx_bytes += in;
}

void
kite_guard_account(struct kite_guard *g, const struct kite_guard_verdict *v, uint32_t requests,
		   uint32_t tx_bytes, uint64_t now_us)
{
	struct src *s;

	if (v->budget == UINT32_MAX && !g->src_rate && !g->src_bytes && v->tenant < 0)
		return; /* validated, no rate to charge: nothing to touch */
	s = src_slot(g, v->src_ip);
	if (v->budget != UINT32_MAX) {
		g->st->tx_bytes += tx_bytes;
		if (s->ip == v->src_ip && tx_bytes < v->budget) {
			uint32_t left = v->budget - tx_bytes;
			s->credit = left > g->c.credit_max ? g->c.credit_max : left;
		}
	}
	if (s->ip == v->src_ip) {
		if (g->src_rate)
			s->req_tokens -= (int64_t)requests * MICRO;
		if (g->src_bytes)
			s->byte_tokens -= (int64_t)tx_bytes * MICRO;
	}
	if (v->tenant >= 0 && g->tenants != NULL && g->tenants->t[v->tenant].rate) {
		g->ts[v->tenant].tokens -= (int64_t)requests * MICRO;
		g->ts[v->tenant].last_us = g->ts[v->tenant].last_us ? g->ts[v->tenant].last_us : now_us;
	}
}

bool
kite_guard_tenant_take(struct kite_guard *g, int ti, uint32_t requests, uint64_t now_us)
{
	if (g->tenants == NULL || ti < 0 || (unsigned int)ti >= g->tenants->n)
		return false;
	if (tenant_over(g, ti, now_us))
		return false;
	if (g->tenants->t[ti].rate)
		g->ts[ti].tokens -= (int64_t)requests * MICRO;
	return true;
}

uint64_t
kite_guard_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}
