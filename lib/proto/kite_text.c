/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * memcached's text and meta commands: a tokenizer over one line, the
 * classic commands and the meta flag parser of memcached 1.6.18 (its
 * proto_text.c: tokens split on spaces only, case-sensitive names, every
 * number in base 10, 32-bit fields truncated as memcached truncates them).
 */
#include <errno.h>
#include <string.h>

#include "kite_text.h"

static const char *const err_str[KITE_TERR_MAX] = {
	[KITE_TERR_NONE] = "",
	[KITE_TERR_ERROR] = "ERROR",
	[KITE_TERR_FORMAT] = "CLIENT_ERROR bad command line format",
	[KITE_TERR_CHUNK] = "CLIENT_ERROR bad data chunk",
	[KITE_TERR_TOO_LARGE] = "SERVER_ERROR object too large for cache",
	[KITE_TERR_DELTA_ARG] = "CLIENT_ERROR invalid numeric delta argument",
	[KITE_TERR_NON_NUMERIC] = "CLIENT_ERROR cannot increment or decrement non-numeric value",
	[KITE_TERR_EXPTIME] = "CLIENT_ERROR invalid exptime argument",
	[KITE_TERR_DELETE_USAGE] =
		"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
	[KITE_TERR_FLAG] = "CLIENT_ERROR invalid flag",
	[KITE_TERR_DUP_FLAG] = "CLIENT_ERROR duplicate flag",
	[KITE_TERR_TOKEN] = "CLIENT_ERROR bad token in command line format",
	[KITE_TERR_M_LEN] = "CLIENT_ERROR incorrect length for M token",
	[KITE_TERR_INITIAL] = "CLIENT_ERROR invalid numeric initial value",
	[KITE_TERR_DELTA] = "CLIENT_ERROR invalid numeric delta value",
	[KITE_TERR_B64] = "CLIENT_ERROR error decoding key",
	[KITE_TERR_OR_DUP] = "CLIENT_ERROR invalid or duplicate flag",
	[KITE_TERR_OPAQUE] = "CLIENT_ERROR opaque token too long",
	[KITE_TERR_MG_TOO_MANY] = "CLIENT_ERROR options flags are too long",
	[KITE_TERR_TOO_MANY] = "CLIENT_ERROR options flags too long",
	[KITE_TERR_MS_MODE] = "CLIENT_ERROR invalid mode for ms M token",
	[KITE_TERR_MA_MODE] = "CLIENT_ERROR invalid mode for ma M token",
	[KITE_TERR_UNSUPPORTED] = "CLIENT_ERROR unsupported flag",
	[KITE_TERR_ME] = "SERVER_ERROR me is not supported",
	[KITE_TERR_NO_MEMORY] = "SERVER_ERROR out of memory storing object",
};

const char *
kite_text_err_str(enum kite_text_err e)
{
	return (unsigned int)e < KITE_TERR_MAX && err_str[e] != NULL ? err_str[e] : "ERROR";
}

#define CMD(n) n, sizeof(n) - 1
static const struct {
	const char *name;
	uint8_t len;
	uint8_t tcmd;
	uint8_t cmd; /* enum kite_cmd */
} commands[] = {
	{ CMD("get"), KITE_T_GET, KITE_CMD_GET },
	{ CMD("bget"), KITE_T_GET, KITE_CMD_GET },
	{ CMD("gets"), KITE_T_GETS, KITE_CMD_GET },
	{ CMD("gat"), KITE_T_GAT, KITE_CMD_GAT },
	{ CMD("gats"), KITE_T_GATS, KITE_CMD_GAT },
	{ CMD("set"), KITE_T_SET, KITE_CMD_SET },
	{ CMD("add"), KITE_T_ADD, KITE_CMD_ADD },
	{ CMD("replace"), KITE_T_REPLACE, KITE_CMD_REPLACE },
	{ CMD("append"), KITE_T_APPEND, KITE_CMD_APPEND },
	{ CMD("prepend"), KITE_T_PREPEND, KITE_CMD_PREPEND },
	{ CMD("cas"), KITE_T_CAS, KITE_CMD_SET },
	{ CMD("incr"), KITE_T_INCR, KITE_CMD_INCR },
	{ CMD("decr"), KITE_T_DECR, KITE_CMD_DECR },
	{ CMD("delete"), KITE_T_DELETE, KITE_CMD_DELETE },
	{ CMD("touch"), KITE_T_TOUCH, KITE_CMD_TOUCH },
	{ CMD("flush_all"), KITE_T_FLUSH_ALL, KITE_CMD_FLUSH },
	{ CMD("version"), KITE_T_VERSION, KITE_CMD_VERSION },
	{ CMD("verbosity"), KITE_T_VERBOSITY, KITE_CMD_NOOP },
	{ CMD("stats"), KITE_T_STATS, KITE_CMD_STAT },
	{ CMD("quit"), KITE_T_QUIT, KITE_CMD_QUIT },
	{ CMD("mg"), KITE_T_MG, KITE_CMD_GET },
	{ CMD("ms"), KITE_T_MS, KITE_CMD_SET },
	{ CMD("md"), KITE_T_MD, KITE_CMD_DELETE },
	{ CMD("ma"), KITE_T_MA, KITE_CMD_INCR },
	{ CMD("mn"), KITE_T_MN, KITE_CMD_NOOP },
	{ CMD("me"), KITE_T_ME, KITE_CMD_GET },
};

const char *
kite_text_cmd_name(enum kite_text_cmd c)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].tcmd == c)
			return commands[i].name;
	return "";
}

/* ---- tokens --------------------------------------------------------------- */

struct tok {
	const uint8_t *p;
	uint32_t n;
};

/*
 * Split line[0..n) on spaces into at most max tokens; *rest is where the
 * tokens after the max-th start (n when none). memcached's tokenizer.
 */
static unsigned int
tokenize(const uint8_t *line, size_t n, struct tok *t, unsigned int max, size_t *rest)
{
	size_t i = 0;
	unsigned int k = 0;

	while (i < n) {
		while (i < n && line[i] == ' ')
			i++;
		if (i == n)
			break;
		if (k == max) {
			*rest = i;
			return k;
		}
		t[k].p = line + i;
		while (i < n && line[i] != ' ')
			i++;
		t[k].n = (uint32_t)(line + i - t[k].p);
		k++;
	}
	*rest = n;
	return k;
}

static bool
tok_is(const struct tok *t, const char *s)
{
	size_t n = strlen(s);

	return t->n == n && memcmp(t->p, s, n) == 0;
}

/* An unsigned base-10 number filling the token; false on anything else or overflow. */
static bool
tok_u64(const uint8_t *p, uint32_t n, uint64_t *v)
{
	uint64_t x = 0;

	if (n == 0 || n > 20)
		return false;
	for (uint32_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		if (x > (UINT64_MAX - (uint64_t)(p[i] - '0')) / 10)
			return false;
		x = x * 10 + (uint64_t)(p[i] - '0');
	}
	*v = x;
	return true;
}

/* A signed base-10 number (memcached's safe_strtol: a leading '-' allowed). */
static bool
tok_i64(const uint8_t *p, uint32_t n, int64_t *v)
{
	uint64_t x;

	if (n > 0 && p[0] == '-') {
		if (!tok_u64(p + 1, n - 1, &x) || x > (uint64_t)INT64_MAX)
			return false;
		*v = -(int64_t)x;
		return true;
	}
	if (!tok_u64(p, n, &x) || x > (uint64_t)INT64_MAX)
		return false;
	*v = (int64_t)x;
	return true;
}

/*
 * memcached's exptime as Kite's: int32 (memcached truncates a wider
 * number the same way); a negative one is "already expired", which Kite
 * writes as an absolute time in the past (KITE_REALTIME_MAXDELTA + 1).
 */
static bool
tok_exptime(const uint8_t *p, uint32_t n, uint32_t *out)
{
	int64_t v;
	int32_t e;

	if (!tok_i64(p, n, &v))
		return false;
	e = (int32_t)(uint32_t)(uint64_t)v;
	*out = e < 0 ? (uint32_t)KITE_REALTIME_MAXDELTA + 1 : (uint32_t)e;
	return true;
}

/* memcached's client flags: a 64-bit parse kept to 32 bits; no sign. */
static bool
tok_flags(const uint8_t *p, uint32_t n, uint32_t *out)
{
	uint64_t v;

	if (!tok_u64(p, n, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

/*
 * Has the 8-byte word a byte below 0x21 (a control character, a space, a
 * NUL) or a DEL? The bit tricks of "has a byte less than n" and "has a
 * zero byte": a borrow starts only at a byte that matches, so the answer
 * (though not which byte) is exact; bytes from 0x80 never match.
 */
static inline bool
word_has_ctl(uint64_t v)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	const uint64_t del = v ^ (ones * 0x7f);

	return (((v - ones * 0x21) & ~v) | ((del - ones) & ~del)) & highs;
}

/*
 * Keys: 1..250 bytes; no control characters unless `any` (text-keys =
 * memcached: any byte but the separators, as memcached 1.6.18 takes them).
 */
static bool
key_ok(const uint8_t *k, uint32_t n, bool any)
{
	uint32_t i = 0;
	uint64_t v;

	if (n == 0 || n > KITE_KEY_MAX)
		return false;
	if (any)
		return true;
	/* Eight bytes at a time, the tail as the last eight (overlapping). */
	for (; i + 8 <= n; i += 8) {
		memcpy(&v, k + i, 8);
		if (word_has_ctl(v))
			return false;
	}
	if (i < n && n >= 8) {
		memcpy(&v, k + n - 8, 8);
		return !word_has_ctl(v);
	}
	for (; i < n; i++)
		if (k[i] < 0x21 || k[i] == 0x7f)
			return false;
	return true;
}

/* ---- base64 ------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
kite_text_b64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	return o;
}

static int
b64_val(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
kite_text_b64_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
	size_t o = 0;

	if (n == 0 || n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		unsigned int pad = 0;

		for (int j = 0; j < 4; j++) {
			if (in[i + j] == '=' && i + 4 == n && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad > 0)
				return -1; /* data after padding */
			v[j] = b64_val(in[i + j]);
			if (v[j] < 0)
				return -1;
		}
		uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			     (uint32_t)v[3];
		if (o + 3 - pad > cap)
			return -1;
		out[o++] = (uint8_t)(x >> 16);
		if (pad < 2)
			out[o++] = (uint8_t)(x >> 8);
		if (pad < 1)
			out[o++] = (uint8_t)x;
	}
	return (int)o;
}

/* ---- lines ---------------------------------------------------------------- */

/*
 * The line at p: its length without the newline (and a "\r" before it),
 * and the bytes up to and including the newline. false: no newline.
 * A NUL ends the line's content early (memcached handles C strings).
 */
static bool
line_at(const uint8_t *p, size_t len, size_t *n, size_t *with_nl)
{
	const uint8_t *nl = memchr(p, '\n', len);
	const uint8_t *nul;
	size_t k;

	if (nl == NULL)
		return false;
	k = (size_t)(nl - p);
	*with_nl = k + 1;
	if (k > 0 && p[k - 1] == '\r')
		k--;
	nul = memchr(p, 0, k);
	*n = nul != NULL ? (size_t)(nul - p) : k;
	return true;
}

/* A line that starts like a response (never answered): upper case or a digit. */
static bool
looks_like_response(const uint8_t *line, size_t n)
{
	size_t i = 0;

	while (i < n && line[i] == ' ')
		i++;
	return i < n && ((line[i] >= 'A' && line[i] <= 'Z') || (line[i] >= '0' && line[i] <= '9'));
}

/* (kite_text_count() is at the end: it runs the parser.) */

/* ---- the parser --------------------------------------------------------- */

static enum kite_parse_result
fail(struct kite_text_req *t, enum kite_text_err e, size_t *consumed, size_t adv)
{
	t->err = (uint8_t)e;
	*consumed = adv;
	return KITE_PARSE_ERR_REPLY;
}

/* A get line's key k (n bytes) as the request to execute; the cursor says which command. */
static void
get_key_req(const struct kite_text_cursor *cur, const uint8_t *k, uint32_t n, struct kite_req *r,
	    struct kite_text_req *t)
{
	r->key = k;
	r->keylen = (uint16_t)n;
	t->wkey = k;
	t->wkeylen = (uint8_t)n;
	t->tcmd = cur->tcmd;
	t->with_cas = cur->tcmd == KITE_T_GETS || cur->tcmd == KITE_T_GATS;
	r->exptime = cur->exptime;
	r->cmd = (cur->tcmd == KITE_T_GAT || cur->tcmd == KITE_T_GATS) ? KITE_CMD_GAT
								      : KITE_CMD_GET;
}

/* The next key of a get line at p (its remainder); the cursor says which command. */
static enum kite_parse_result
next_get_key(const uint8_t *p, size_t len, struct kite_text_cursor *cur, struct kite_req *r,
	     struct kite_text_req *t, size_t *consumed)
{
	size_t n, adv, rest, i;
	struct tok k;

	if (!line_at(p, len, &n, &adv)) {
		cur->in_get = false;
		return KITE_PARSE_DROP;
	}
	i = 0;
	while (i < n && p[i] == ' ')
		i++;
	if (tokenize(p + i, n - i, &k, 1, &rest) == 0) {
		/* Cannot happen: the cursor stops after the line's last key. */
		cur->in_get = false;
		return KITE_PARSE_DROP;
	}
	get_key_req(cur, k.p, k.n, r, t);
	/* Is there another key after this one? */
	i = (size_t)(k.p + k.n - p);
	while (i < n && p[i] == ' ')
		i++;
	if (i < n) {
		*consumed = i;
		return KITE_PARSE_OK;
	}
	t->end = true;
	cur->in_get = false;
	*consumed = adv;
	return KITE_PARSE_OK;
}

static enum kite_parse_result
parse_get(const uint8_t *line, size_t n, size_t adv, const struct tok *tk, unsigned int nt,
	  struct kite_text_cursor *cur, struct kite_req *r, struct kite_text_req *t,
	  size_t *consumed)
{
	const bool gat = t->tcmd == KITE_T_GAT || t->tcmd == KITE_T_GATS;
	unsigned int first = gat ? 2 : 1;
	const uint8_t *after;
	size_t i;

	if (nt < 2) /* get with no key, gat with no exptime */
		return fail(t, KITE_TERR_ERROR, consumed, adv);
	if (gat) {
		uint32_t e;
		if (!tok_exptime(tk[1].p, tk[1].n, &e))
			return fail(t, KITE_TERR_EXPTIME, consumed, adv);
		cur->exptime = e;
		if (nt == 2) {
			/* gat <exptime> and no key: just END. */
			r->cmd = KITE_CMD_NOOP;
			t->end = true;
			*consumed = adv;
			return KITE_PARSE_OK;
		}
	} else {
		cur->exptime = 0;
	}
	/* Every key of the line is checked first: one bad key fails the whole command. */
	i = (size_t)(tk[first].p - line);
	while (i < n) {
		struct tok k;
		size_t rest;
		if (tokenize(line + i, n - i, &k, 1, &rest) == 0)
			break;
		if (!key_ok(k.p, k.n, cur->any_keys))
			return fail(t, KITE_TERR_FORMAT, consumed, adv);
		i = (size_t)(k.p + k.n - line);
	}
	cur->in_get = true;
	cur->tcmd = t->tcmd;
	after = tk[first].p;
	if (next_get_key(after, (size_t)(line + adv - after), cur, r, t, consumed) != KITE_PARSE_OK)
		return KITE_PARSE_DROP;
	*consumed += (size_t)(after - line);
	return KITE_PARSE_OK;
}

/* The data block of a store command: bytes + "\r\n" right after the line. */
static enum kite_parse_result
data_block(const uint8_t *p, size_t len, size_t adv, int64_t bytes, uint32_t max_value,
	   struct kite_req *r, struct kite_text_req *t, size_t *consumed)
{
	const size_t need = adv + (size_t)bytes + 2;

	if (need > len) {
		/* The block is not all in this datagram: nothing after it can be framed. */
		t->err = KITE_TERR_CHUNK;
		*consumed = len;
		return KITE_PARSE_ERR_STOP;
	}
	if ((uint64_t)bytes > max_value)
		return fail(t, KITE_TERR_TOO_LARGE, consumed, need);
	if (p[need - 2] != '\r' || p[need - 1] != '\n')
		return fail(t, KITE_TERR_CHUNK, consumed, need);
	r->value = p + adv;
	r->vallen = (uint32_t)bytes;
	*consumed = need;
	return KITE_PARSE_OK;
}

static enum kite_parse_result
parse_store(const uint8_t *p, size_t len, size_t adv, const struct tok *tk, unsigned int nt,
	    uint32_t max_value, bool any, struct kite_req *r, struct kite_text_req *t,
	    size_t *consumed)
{
	const bool cas = t->tcmd == KITE_T_CAS;
	const unsigned int base = cas ? 6 : 5; /* words, command included */
	int64_t bytes;

	if (nt != base && nt != base + 1)
		return fail(t, KITE_TERR_ERROR, consumed, adv);
	t->noreply = nt == base + 1 && tok_is(&tk[base], "noreply");
	if (!key_ok(tk[1].p, tk[1].n, any) || !tok_flags(tk[2].p, tk[2].n, &r->flags) ||
	    !tok_exptime(tk[3].p, tk[3].n, &r->exptime) || !tok_i64(tk[4].p, tk[4].n, &bytes) ||
	    bytes < 0 || bytes > INT32_MAX - 2 || (cas && !tok_u64(tk[5].p, tk[5].n, &r->cas)))
		return fail(t, KITE_TERR_FORMAT, consumed, adv);
	r->key = tk[1].p;
	r->keylen = (uint16_t)tk[1].n;
	/* memcached: cas with unique 0 on an existing item is EXISTS; Kite's 0 means "any". */
	if (cas && r->cas == 0)
		r->cas = UINT64_MAX;
	return data_block(p, len, adv, bytes, max_value, r, t, consumed);
}

/* ---- meta --------------------------------------------------------------- */

/* The flags every meta command's pre-parser accepts (memcached 1.6.18). */
static bool
meta_flag_known(uint8_t c)
{
	return c != 0 && strchr("bcfhklstuvqOPLNTRFCMJDI", c) != NULL;
}

/*
 * Parse meta flags tk[0..nt) into t and r. Errors: the first invalid or
 * duplicate flag stops parsing; a bad argument is remembered and parsing
 * goes on (the last one wins), as memcached does.
 */
static enum kite_text_err
meta_flags(const struct tok *tk, unsigned int nt, struct kite_req *r, struct kite_text_req *t)
{
	enum kite_text_err err = KITE_TERR_NONE;

	for (unsigned int i = 0; i < nt; i++) {
		const uint8_t c = tk[i].p[0];
		const uint8_t *a = tk[i].p + 1;
		const uint32_t an = tk[i].n - 1;
		uint64_t v;

		if (c >= 0x7f)
			return KITE_TERR_DUP_FLAG;
		if (!meta_flag_known(c))
			return KITE_TERR_FLAG;
		if (t->mask & kite_text_flag_bit((char)c))
			return KITE_TERR_DUP_FLAG;
		t->mask |= kite_text_flag_bit((char)c);
		switch (c) {
		case 'N':
			if (!tok_exptime(a, an, &t->n_ttl))
				err = KITE_TERR_TOKEN;
			break;
		case 'T':
			if (!tok_exptime(a, an, &r->exptime))
				err = KITE_TERR_TOKEN;
			t->has_ttl = true;
			break;
		case 'R':
			if (!tok_exptime(a, an, &t->r_ttl))
				err = KITE_TERR_TOKEN;
			break;
		case 'C':
			if (!tok_u64(a, an, &r->cas))
				err = KITE_TERR_TOKEN;
			break;
		case 'M':
			if (an != 1)
				err = KITE_TERR_M_LEN;
			else
				t->mode = a[0];
			break;
		case 'J':
			if (!tok_u64(a, an, &r->initial))
				err = KITE_TERR_INITIAL;
			break;
		case 'D':
			if (!tok_u64(a, an, &v))
				err = KITE_TERR_DELTA;
			else
				r->delta = v;
			break;
		case 'F':
			if (!tok_flags(a, an, &r->flags))
				err = KITE_TERR_FORMAT;
			break;
		case 'O':
			t->opaque = a;
			t->opaque_len = (uint8_t)(an > 255 ? 255 : an);
			break;
		case 'q':
			t->noreply = true;
			break;
		case 'b':
			t->b64 = true;
			break;
		default:
			break;
		}
		if (c != 'P' && c != 'L')
			t->flags[t->nflags++] = (char)c;
	}
	return err;
}

/* What the flags mean together (after meta_flags(), whose error comes in). */
static enum kite_text_err
meta_checks(const struct kite_text_req *t, enum kite_text_err err)
{
	if (err == KITE_TERR_NONE && t->opaque != NULL && t->opaque_len > KITE_TEXT_OPAQUE_MAX)
		err = KITE_TERR_OPAQUE;
	if (err == KITE_TERR_NONE && t->tcmd == KITE_T_MS && t->mode != 0 &&
	    strchr("SEAPR", t->mode) == NULL)
		err = KITE_TERR_MS_MODE;
	if (err == KITE_TERR_NONE && t->tcmd == KITE_T_MA && t->mode != 0 &&
	    strchr("I+D-", t->mode) == NULL)
		err = KITE_TERR_MA_MODE;
	/* md and ma answer every pre-parse failure alike (memcached 1.6.18). */
	if ((t->tcmd == KITE_T_MD || t->tcmd == KITE_T_MA) && err != KITE_TERR_NONE &&
	    err != KITE_TERR_MA_MODE && err != KITE_TERR_OPAQUE)
		err = KITE_TERR_OR_DUP;
	/* Kite: l would need a last-access time in every item (docs/protocol.rst). */
	if (err == KITE_TERR_NONE && t->tcmd == KITE_T_MG && kite_text_has(t, 'l'))
		err = KITE_TERR_UNSUPPORTED;
	return err;
}

/* mg that may write runs as a GAT; every mg is looked up on its own. */
static void
meta_class(struct kite_req *r, const struct kite_text_req *t)
{
	/* Its win claims must be seen by the next mg of the same key in the datagram. */
	r->direct = t->tcmd == KITE_T_MG;
	/* An mg that may write (vivify, touch) runs as a GAT: in order, on the owner. */
	if (t->tcmd == KITE_T_MG && (kite_text_has(t, 'N') || kite_text_has(t, 'T')))
		r->cmd = KITE_CMD_GAT;
}

static void
text_req_reset(struct kite_text_req *t)
{
	t->tcmd = KITE_T_NONE;
	t->err = KITE_TERR_NONE;
	t->noreply = false;
	t->end = false;
	t->with_cas = false;
	t->b64 = false;
	t->has_ttl = false;
	t->mode = 0;
	t->nflags = 0;
	t->opaque_len = 0;
	t->wkeylen = 0;
	t->mask = 0;
	t->n_ttl = 0;
	t->r_ttl = 0;
	t->opaque = NULL;
	t->wkey = NULL;
}

enum kite_text_err
kite_text_meta_flags(uint8_t opcode, const uint8_t *flags, size_t n, struct kite_req *r,
		     struct kite_text_req *t)
{
	static const uint8_t tcmd[4] = { KITE_T_MG, KITE_T_MS, KITE_T_MD, KITE_T_MA };
	struct tok tk[KITE_TEXT_MAX_FLAGS + 1];
	size_t rest;
	unsigned int nt;
	enum kite_text_err err;

	text_req_reset(t);
	if (!kite_proto_is_meta(opcode))
		return KITE_TERR_ERROR;
	t->tcmd = tcmd[opcode - KITE_OP_META_GET];
	t->wkey = r->key;
	t->wkeylen = (uint8_t)(r->keylen > KITE_KEY_MAX ? KITE_KEY_MAX : r->keylen);
	r->cas = 0; /* the C flag is the CAS, as in text */
	nt = tokenize(flags, n, tk, KITE_TEXT_MAX_FLAGS + 1, &rest);
	/* As many flags as the text forms take (ms's: one fewer, its length is the value's). */
	if (nt > (t->tcmd == KITE_T_MS ? KITE_TEXT_MAX_FLAGS - 1 : KITE_TEXT_MAX_FLAGS) ||
	    rest < n)
		return t->tcmd == KITE_T_MG ? KITE_TERR_MG_TOO_MANY : KITE_TERR_TOO_MANY;
	err = meta_checks(t, meta_flags(tk, nt, r, t));
	if (err == KITE_TERR_NONE && (kite_text_has(t, 'b') || kite_text_has(t, 'k')))
		err = KITE_TERR_FLAG;
	if (err != KITE_TERR_NONE)
		t->noreply = false; /* errors are sent even with q */
	meta_class(r, t);
	return err;
}

static enum kite_parse_result
parse_meta(const uint8_t *p, size_t len, size_t n, size_t adv, uint32_t max_value, bool any,
	   struct kite_req *r, struct kite_text_req *t, size_t *consumed)
{
	struct tok tk[KITE_TEXT_MAX_TOKENS + 1];
	size_t rest;
	unsigned int nt = tokenize(p, n, tk, KITE_TEXT_MAX_TOKENS + 1, &rest);
	const bool ms = t->tcmd == KITE_T_MS;
	const unsigned int fl0 = ms ? 3 : 2; /* first flag token */
	int64_t bytes = 0;
	enum kite_text_err err = KITE_TERR_NONE;

	if (t->tcmd == KITE_T_MN) {
		*consumed = adv;
		return KITE_PARSE_OK;
	}
	if (t->tcmd == KITE_T_ME) {
		if (nt < 2)
			return fail(t, KITE_TERR_FORMAT, consumed, adv);
		t->b64 = nt >= 3 && tok_is(&tk[2], "b");
		goto key;
	}
	if (nt < 2)
		return fail(t, KITE_TERR_ERROR, consumed, adv);
	if (ms) {
		if (nt < 3 || !tok_i64(tk[2].p, tk[2].n, &bytes) || bytes < 0 ||
		    bytes > INT32_MAX - 2)
			return fail(t, KITE_TERR_FORMAT, consumed, adv);
	}
	/* memcached: words + 1 > 20 is refused (mg's message has an "are"). */
	if (nt + 1 > 20 || rest < n) {
		if (tk[1].n > KITE_KEY_MAX)
			return fail(t, KITE_TERR_FORMAT, consumed, adv);
		return fail(t, t->tcmd == KITE_T_MG ? KITE_TERR_MG_TOO_MANY : KITE_TERR_TOO_MANY,
			    consumed, adv);
	}
	if (tk[1].n > KITE_KEY_MAX)
		return fail(t, KITE_TERR_FORMAT, consumed, adv);
	err = meta_checks(t, meta_flags(tk + fl0, nt - fl0, r, t));
key:
	t->wkey = tk[1].p;
	t->wkeylen = (uint8_t)(tk[1].n > KITE_KEY_MAX ? KITE_KEY_MAX : tk[1].n);
	if (err == KITE_TERR_NONE) {
		if (t->b64) {
			int k = kite_text_b64_decode(tk[1].p, tk[1].n, t->key, sizeof(t->key));
			if (k <= 0)
				err = t->tcmd == KITE_T_ME ? KITE_TERR_FORMAT
				      : (t->tcmd == KITE_T_MD || t->tcmd == KITE_T_MA) ? KITE_TERR_OR_DUP
											: KITE_TERR_B64;
			r->key = t->key;
			r->keylen = (uint16_t)(k > 0 ? k : 0);
		} else {
			if (!key_ok(tk[1].p, tk[1].n, any))
				err = KITE_TERR_FORMAT;
			r->key = tk[1].p;
			r->keylen = (uint16_t)tk[1].n;
		}
	}
	if (t->tcmd == KITE_T_ME) {
		/* Kite keeps no last-access time or fetched bit: me is refused (docs/protocol.rst). */
		t->nflags = 0;
		if (err == KITE_TERR_NONE)
			err = KITE_TERR_ME;
	}
	meta_class(r, t);
	if (ms) {
		/* ms swallows its data block after any error found once datalen was read. */
		if (err != KITE_TERR_NONE) {
			size_t need = adv + (size_t)bytes + 2;
			t->err = (uint8_t)err;
			if (need > len) {
				*consumed = len;
				return KITE_PARSE_ERR_STOP;
			}
			*consumed = need;
			return KITE_PARSE_ERR_REPLY;
		}
		enum kite_parse_result res = data_block(p, len, adv, bytes, max_value, r, t,
							consumed);
		if (res != KITE_PARSE_OK)
			t->noreply = false; /* errors are sent even with q */
		return res;
	}
	if (err != KITE_TERR_NONE) {
		t->noreply = false;
		return fail(t, err, consumed, adv);
	}
	*consumed = adv;
	return KITE_PARSE_OK;
}

/* ---- one request ---------------------------------------------------------- */

enum kite_parse_result
kite_text_parse(const uint8_t *p, size_t len, uint32_t max_value, struct kite_text_cursor *cur,
		struct kite_req *r, struct kite_text_req *t, size_t *consumed, uint8_t *drop)
{
	struct tok tk[KITE_TEXT_MAX_TOKENS + 1];
	size_t n, adv, rest;
	unsigned int nt;
	size_t ci;

	memset(r, 0, sizeof(*r));
	text_req_reset(t);
	*drop = KITE_PROTO_DROP_NONE;

	if (cur->in_get) {
		enum kite_parse_result res = next_get_key(p, len, cur, r, t, consumed);
		if (res == KITE_PARSE_DROP)
			*drop = KITE_PROTO_DROP_TEXT_PARTIAL;
		return res;
	}
	if (!line_at(p, len, &n, &adv)) {
		*drop = KITE_PROTO_DROP_TEXT_PARTIAL;
		return KITE_PARSE_DROP;
	}
	/*
	 * The common request at once: "get <key>", one key, one space, no
	 * spaces after. The same result as parse_get() and next_get_key()
	 * give it, which scan the line four more times (tokens, each key's
	 * check, the line again, the key again): 724 instructions of a text
	 * get-b1 request went to them. Anything else, a bad key included,
	 * takes the general path below.
	 */
	if (n > 4 && memcmp(p, "get ", 4) == 0 &&
	    (!cur->any_keys || memchr(p + 4, ' ', n - 4) == NULL) && /* key_ok: no space */
	    key_ok(p + 4, (uint32_t)(n - 4), cur->any_keys)) {
		cur->exptime = 0;
		cur->tcmd = KITE_T_GET;
		cur->in_get = false;
		get_key_req(cur, p + 4, (uint32_t)(n - 4), r, t);
		t->end = true;
		*consumed = adv;
		return KITE_PARSE_OK;
	}
	if (looks_like_response(p, n)) {
		*drop = KITE_PROTO_DROP_TEXT_RESPONSE;
		return KITE_PARSE_DROP;
	}
	nt = tokenize(p, n, tk, KITE_TEXT_MAX_TOKENS + 1, &rest);
	if (nt == 0 || tk[0].n < 2)
		return fail(t, KITE_TERR_ERROR, consumed, adv);
	/* By length first: most names are told apart without a compare. */
	for (ci = 0; ci < sizeof(commands) / sizeof(commands[0]); ci++)
		if (commands[ci].len == tk[0].n && memcmp(tk[0].p, commands[ci].name, tk[0].n) == 0)
			break;
	if (ci == sizeof(commands) / sizeof(commands[0]))
		return fail(t, KITE_TERR_ERROR, consumed, adv);
	t->tcmd = commands[ci].tcmd;
	r->cmd = commands[ci].cmd;
	/* memcached counts at most 23 words for everything but the get family. */
	if (nt > KITE_TEXT_MAX_TOKENS)
		nt = KITE_TEXT_MAX_TOKENS;

	switch (t->tcmd) {
	case KITE_T_GET:
	case KITE_T_GETS:
	case KITE_T_GAT:
	case KITE_T_GATS: {
		/* Keys beyond the 23rd word are read by the cursor, not the tokenizer. */
		enum kite_parse_result res = parse_get(p, n, adv, tk, nt, cur, r, t, consumed);
		if (res == KITE_PARSE_DROP)
			*drop = KITE_PROTO_DROP_TEXT_PARTIAL;
		return res;
	}
	case KITE_T_SET:
	case KITE_T_ADD:
	case KITE_T_REPLACE:
	case KITE_T_APPEND:
	case KITE_T_PREPEND:
	case KITE_T_CAS:
		return parse_store(p, len, adv, tk, nt, max_value, cur->any_keys, r, t, consumed);
	case KITE_T_INCR:
	case KITE_T_DECR:
		if (nt != 3 && nt != 4)
			return fail(t, KITE_TERR_ERROR, consumed, adv);
		t->noreply = nt == 4 && tok_is(&tk[3], "noreply");
		if (!key_ok(tk[1].p, tk[1].n, cur->any_keys))
			return fail(t, KITE_TERR_FORMAT, consumed, adv);
		if (!tok_u64(tk[2].p, tk[2].n, &r->delta))
			return fail(t, KITE_TERR_DELTA_ARG, consumed, adv);
		r->key = tk[1].p;
		r->keylen = (uint16_t)tk[1].n;
		r->exptime = KITE_DELTA_NO_CREATE;
		break;
	case KITE_T_DELETE:
		if (nt < 2 || nt > 4)
			return fail(t, KITE_TERR_ERROR, consumed, adv);
		t->noreply = tok_is(&tk[nt - 1], "noreply");
		if (!key_ok(tk[1].p, tk[1].n, cur->any_keys))
			return fail(t, KITE_TERR_FORMAT, consumed, adv);
		/* delete <key> [0] [noreply]: the old hold time must be the literal 0. */
		if (nt - (t->noreply ? 1 : 0) > 3 ||
		    (nt - (t->noreply ? 1 : 0) == 3 && !tok_is(&tk[2], "0")))
			return fail(t, KITE_TERR_DELETE_USAGE, consumed, adv);
		r->key = tk[1].p;
		r->keylen = (uint16_t)tk[1].n;
		break;
	case KITE_T_TOUCH:
		if (nt != 3 && nt != 4)
			return fail(t, KITE_TERR_ERROR, consumed, adv);
		t->noreply = nt == 4 && tok_is(&tk[3], "noreply");
		if (!key_ok(tk[1].p, tk[1].n, cur->any_keys))
			return fail(t, KITE_TERR_FORMAT, consumed, adv);
		if (!tok_exptime(tk[2].p, tk[2].n, &r->exptime))
			return fail(t, KITE_TERR_EXPTIME, consumed, adv);
		r->key = tk[1].p;
		r->keylen = (uint16_t)tk[1].n;
		break;
	case KITE_T_FLUSH_ALL:
		if (nt > 3)
			return fail(t, KITE_TERR_ERROR, consumed, adv);
		t->noreply = nt >= 2 && tok_is(&tk[nt - 1], "noreply");
		if (nt - (t->noreply ? 1 : 0) >= 2) {
			int64_t d;
			if (!tok_i64(tk[1].p, tk[1].n, &d))
				return fail(t, KITE_TERR_EXPTIME, consumed, adv);
			/* A negative delay flushes now (memcached). */
			r->exptime = d <= 0 ? 0 : (uint32_t)(int32_t)d;
		}
		break;
	case KITE_T_VERBOSITY: {
		int64_t v;
		if (nt != 2 && nt != 3)
			return fail(t, KITE_TERR_ERROR, consumed, adv);
		t->noreply = tok_is(&tk[nt - 1], "noreply");
		if (!tok_i64(tk[1].p, tk[1].n, &v))
			return fail(t, KITE_TERR_FORMAT, consumed, adv);
		break;
	}
	case KITE_T_STATS:
		/* General statistics; a group name goes to the engine as the key. */
		if (nt >= 2) {
			r->key = tk[1].p;
			r->keylen = (uint16_t)(tk[1].n > KITE_KEY_MAX ? KITE_KEY_MAX : tk[1].n);
		}
		break;
	case KITE_T_VERSION:
	case KITE_T_QUIT:
		break;
	case KITE_T_MG:
	case KITE_T_MS:
	case KITE_T_MD:
	case KITE_T_MA:
	case KITE_T_MN:
	case KITE_T_ME:
		return parse_meta(p, len, n, adv, max_value, cur->any_keys, r, t, consumed);
	default:
		return fail(t, KITE_TERR_ERROR, consumed, adv);
	}
	*consumed = adv;
	return KITE_PARSE_OK;
}

uint16_t
kite_text_count(const uint8_t *p, size_t len, bool any_keys)
{
	/*
	 * Exactly the requests the engine will find: the parser's own walk
	 * (a data block is stepped over only where the parser steps over it).
	 */
	struct kite_text_cursor cur;
	struct kite_req r;
	struct kite_text_req t;
	size_t off = 0;
	unsigned int k = 0;

	kite_text_cursor_init(&cur, any_keys);
	while (off < len && k < UINT16_MAX) {
		size_t used = 0;
		uint8_t drop;
		enum kite_parse_result res =
			kite_text_parse(p + off, len - off, UINT32_MAX, &cur, &r, &t, &used, &drop);

		if (res == KITE_PARSE_DROP)
			break;
		k++;
		if (res == KITE_PARSE_ERR_STOP || (res == KITE_PARSE_OK && r.cmd == KITE_CMD_QUIT))
			break;
		off += used;
	}
	return (uint16_t)k;
}
