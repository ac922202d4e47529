/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lib/proto's text and meta parser (kite_text.h): every command's syntax,
 * memcached 1.6.18's error lines, the meta flag rules, base64 keys,
 * multi-key get lines through the cursor, data blocks, and the lines that
 * are never answered (responses, a line cut at the datagram's end).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kite_text.h"

#define MAXV (1024 * 1024)

struct one {
	enum kite_parse_result res;
	struct kite_req r;
	struct kite_text_req t;
	size_t used;
	uint8_t drop;
};

/* Parse the first request of s (a fresh cursor). */
static struct one
parse1(const char *s)
{
	static struct one o;
	struct kite_text_cursor c;

	kite_text_cursor_init(&c, false);
	memset(&o, 0, sizeof(o));
	o.res = kite_text_parse((const uint8_t *)s, strlen(s), MAXV, &c, &o.r, &o.t, &o.used,
				&o.drop);
	return o;
}

/* The error line s gets. */
static const char *
err_of(const char *s)
{
	struct one o = parse1(s);

	assert_int_not_equal(o.res, KITE_PARSE_OK);
	return kite_text_err_str((enum kite_text_err)o.t.err);
}

static void
test_classic(void **state)
{
	struct one o;

	(void)state;
	o = parse1("set k 5 0 3\r\nabc\r\nget k\r\n");
	assert_int_equal(o.res, KITE_PARSE_OK);
	assert_int_equal(o.t.tcmd, KITE_T_SET);
	assert_int_equal(o.r.cmd, KITE_CMD_SET);
	assert_int_equal(o.r.flags, 5);
	assert_int_equal(o.r.vallen, 3);
	assert_memory_equal(o.r.value, "abc", 3);
	assert_int_equal(o.used, strlen("set k 5 0 3\r\nabc\r\n"));
	assert_false(o.t.noreply);

	o = parse1("set k 0 0 0 noreply\r\n\r\n");
	assert_int_equal(o.res, KITE_PARSE_OK);
	assert_true(o.t.noreply);
	assert_int_equal(o.r.vallen, 0);
	/* Only the exact word noreply counts; any other sixth word is ignored. */
	o = parse1("set k 0 0 1 xnoreply\r\nv\r\n");
	assert_int_equal(o.res, KITE_PARSE_OK);
	assert_false(o.t.noreply);

	o = parse1("cas k 1 2 1 77\r\nx\r\n");
	assert_int_equal(o.res, KITE_PARSE_OK);
	assert_int_equal(o.t.tcmd, KITE_T_CAS);
	assert_int_equal(o.r.cas, 77);
	assert_int_equal(o.r.exptime, 2);
	/* cas with unique 0 never matches (memcached answers EXISTS). */
	o = parse1("cas k 1 2 1 0\r\nx\r\n");
	assert_int_equal(o.r.cas, UINT64_MAX);

	o = parse1("incr n 42\n");
	assert_int_equal(o.res, KITE_PARSE_OK);
	assert_int_equal(o.r.cmd, KITE_CMD_INCR);
	assert_int_equal(o.r.delta, 42);
	assert_int_equal(o.r.exptime, KITE_DELTA_NO_CREATE);
	o = parse1("decr n 1 noreply\r\n");
	assert_int_equal(o.r.cmd, KITE_CMD_DECR);
	assert_true(o.t.noreply);

	o = parse1("delete k 0 noreply\r\n");
	assert_int_equal(o.res, KITE_PARSE_OK);
	assert_true(o.t.noreply);
	o = parse1("touch k 10\r\n");
	assert_int_equal(o.r.cmd, KITE_CMD_TOUCH);
	assert_int_equal(o.r.exptime, 10);
	o = parse1("flush_all 30 noreply\r\n");
	assert_int_equal(o.r.cmd, KITE_CMD_FLUSH);
	assert_int_equal(o.r.exptime, 30);
	assert_true(o.t.noreply);
	o = parse1("flush_all -1\r\n");
	assert_int_equal(o.r.exptime, 0);
	o = parse1("version\r\n");
	assert_int_equal(o.r.cmd, KITE_CMD_VERSION);
	o = parse1("verbosity 1\r\n");
	assert_int_equal(o.t.tcmd, KITE_T_VERBOSITY);
	o = parse1("stats\r\n");
	assert_int_equal(o.r.cmd, KITE_CMD_STAT);
	assert_int_equal(o.r.keylen, 0);
	o = parse1("stats items\r\n");
	assert_int_equal(o.r.keylen, 5);
	o = parse1("quit\r\n");
	assert_int_equal(o.r.cmd, KITE_CMD_QUIT);
	/* A negative exptime: already expired (an absolute time in the past). */
	o = parse1("set k 0 -1 1\r\nx\r\n");
	assert_int_equal(o.r.exptime, KITE_REALTIME_MAXDELTA + 1);
	/* 32-bit fields wrap as memcached's do. */
	o = parse1("set k 4294967296 0 1\r\nx\r\n");
	assert_int_equal(o.res, KITE_PARSE_OK);
	assert_int_equal(o.r.flags, 0);
}

static void
test_errors(void **state)
{
	char longkey[300];
	char line[400];
	struct one o;

	(void)state;
	assert_string_equal(err_of("bogus\r\n"), "ERROR");
	assert_string_equal(err_of("\r\n"), "ERROR");
	assert_string_equal(err_of("get\r\n"), "ERROR");
	assert_string_equal(err_of("set k 0 0\r\n"), "ERROR");
	assert_string_equal(err_of("set k x 0 1\r\nv\r\n"), "CLIENT_ERROR bad command line format");
	assert_string_equal(err_of("set k 0 0 -1\r\n"), "CLIENT_ERROR bad command line format");
	assert_string_equal(err_of("set k 0 0 3\r\nabcd\r\n"), "CLIENT_ERROR bad data chunk");
	assert_string_equal(err_of("set k 0 0 2000000\r\n"), "CLIENT_ERROR bad data chunk");
	assert_string_equal(err_of("incr n x\r\n"), "CLIENT_ERROR invalid numeric delta argument");
	assert_string_equal(err_of("incr n -1\r\n"), "CLIENT_ERROR invalid numeric delta argument");
	assert_string_equal(err_of("touch k x\r\n"), "CLIENT_ERROR invalid exptime argument");
	assert_string_equal(err_of("gat x k\r\n"), "CLIENT_ERROR invalid exptime argument");
	assert_string_equal(err_of("delete k 5\r\n"),
			    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]");
	assert_string_equal(err_of("flush_all abc\r\n"), "CLIENT_ERROR invalid exptime argument");
	assert_string_equal(err_of("flush_all 1 2 3\r\n"), "ERROR");

	/* Keys: 250 bytes pass, 251 do not; control characters never (Kite). */
	memset(longkey, 'a', sizeof(longkey));
	snprintf(line, sizeof(line), "get %.250s\r\n", longkey);
	assert_int_equal(parse1(line).res, KITE_PARSE_OK);
	snprintf(line, sizeof(line), "get %.251s\r\n", longkey);
	assert_string_equal(err_of(line), "CLIENT_ERROR bad command line format");
	assert_string_equal(err_of("get a\tb\r\n"), "CLIENT_ERROR bad command line format");
	assert_string_equal(err_of("set a\x01 0 0 1\r\nx\r\n"),
			    "CLIENT_ERROR bad command line format");
	/* text-keys = memcached: any byte but the separators (memaslap's keys hold 0x10). */
	{
		struct kite_text_cursor c;
		static const char s[] = "set \x10\x10k 0 0 1\r\nx\r\n";

		kite_text_cursor_init(&c, true);
		memset(&o, 0, sizeof(o));
		assert_int_equal(kite_text_parse((const uint8_t *)s, sizeof(s) - 1, MAXV, &c, &o.r,
						 &o.t, &o.used, &o.drop),
				 KITE_PARSE_OK);
		assert_int_equal(o.r.keylen, 3);
	}

	/* A too large value: its block is skipped, the next command still runs. */
	{
		static char big[2100000];
		size_t n = (size_t)snprintf(big, sizeof(big), "set k 0 0 %d\r\n", MAXV + 1);
		memset(big + n, 'x', (size_t)MAXV + 1);
		memcpy(big + n + MAXV + 1, "\r\nget k\r\n", 10);
		o = parse1(big);
		assert_int_equal(o.res, KITE_PARSE_ERR_REPLY);
		assert_string_equal(kite_text_err_str((enum kite_text_err)o.t.err),
				    "SERVER_ERROR object too large for cache");
		assert_int_equal(o.used, n + MAXV + 3);
	}
	/* A bad block: the error, and parsing goes on right after bytes + 2. */
	o = parse1("set k 0 0 1\r\nabc\r\n");
	assert_int_equal(o.res, KITE_PARSE_ERR_REPLY);
	assert_int_equal(o.used, strlen("set k 0 0 1\r\nabc"));
	/* A block running past the datagram: nothing after it can be framed. */
	o = parse1("set k 0 0 10\r\nabc");
	assert_int_equal(o.res, KITE_PARSE_ERR_STOP);
	/* noreply hides errors found after it was read. */
	o = parse1("set k 0 0 1 noreply\r\nabc\r\n");
	assert_true(o.t.noreply);
}

static void
test_never_answered(void **state)
{
	static const char *const responses[] = {
		"VALUE k 0 1\r\n", "END\r\n",  "STORED\r\n", "ERROR\r\n", "CLIENT_ERROR x\r\n",
		"HD\r\n",	   "EN\r\n",   "VA 1\r\n",   "MN\r\n",    "5\r\n",
		"NOT_FOUND\r\n",   "GET k\r\n", " STAT x 1\r\n",
	};
	struct one o;

	(void)state;
	for (size_t i = 0; i < sizeof(responses) / sizeof(responses[0]); i++) {
		o = parse1(responses[i]);
		assert_int_equal(o.res, KITE_PARSE_DROP);
		assert_int_equal(o.drop, KITE_PROTO_DROP_TEXT_RESPONSE);
	}
	o = parse1("get k");
	assert_int_equal(o.res, KITE_PARSE_DROP);
	assert_int_equal(o.drop, KITE_PROTO_DROP_TEXT_PARTIAL);
	assert_string_equal(kite_proto_drop_name(KITE_PROTO_DROP_TEXT_RESPONSE), "text_response");
}

/* A get line: one request per key, the cursor carrying the line; END after the last. */
static void
test_multiget(void **state)
{
	const char *s = "gets a  bb ccc\r\nmn\r\n";
	const char *keys[] = { "a", "bb", "ccc" };
	struct kite_text_cursor c;
	struct kite_req r;
	struct kite_text_req t;
	size_t off = 0, used;
	uint8_t drop;

	(void)state;
	kite_text_cursor_init(&c, false);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(kite_text_parse((const uint8_t *)s + off, strlen(s) - off, MAXV, &c,
						 &r, &t, &used, &drop),
				 KITE_PARSE_OK);
		assert_int_equal(r.keylen, strlen(keys[i]));
		assert_memory_equal(r.key, keys[i], r.keylen);
		assert_int_equal(t.tcmd, KITE_T_GETS);
		assert_true(t.with_cas);
		assert_int_equal(t.end, i == 2);
		off += used;
	}
	assert_false(c.in_get);
	assert_int_equal(kite_text_parse((const uint8_t *)s + off, strlen(s) - off, MAXV, &c, &r,
					 &t, &used, &drop),
			 KITE_PARSE_OK);
	assert_int_equal(t.tcmd, KITE_T_MN);
	assert_int_equal(kite_text_count((const uint8_t *)s, strlen(s), false), 4);

	/* gat: the exptime travels with every key; gat with no key is just END. */
	kite_text_cursor_init(&c, false);
	s = "gat 30 x y\r\n";
	assert_int_equal(kite_text_parse((const uint8_t *)s, strlen(s), MAXV, &c, &r, &t, &used,
					 &drop),
			 KITE_PARSE_OK);
	assert_int_equal(r.cmd, KITE_CMD_GAT);
	assert_int_equal(r.exptime, 30);
	assert_int_equal(kite_text_parse((const uint8_t *)s + used, strlen(s) - used, MAXV, &c, &r,
					 &t, &used, &drop),
			 KITE_PARSE_OK);
	assert_int_equal(r.exptime, 30);
	assert_true(t.end);
	kite_text_cursor_init(&c, false);
	s = "gat 30\r\n";
	assert_int_equal(kite_text_parse((const uint8_t *)s, strlen(s), MAXV, &c, &r, &t, &used,
					 &drop),
			 KITE_PARSE_OK);
	assert_int_equal(r.cmd, KITE_CMD_NOOP);
	assert_true(t.end);
	/* The count skips data blocks (their lines are not requests). */
	s = "set k 0 0 5\r\na\nb\nc\r\nget k\r\n";
	assert_int_equal(kite_text_count((const uint8_t *)s, strlen(s), false), 2);
}

static void
test_meta(void **state)
{
	struct one o;

	(void)state;
	o = parse1("mg foo v t c f s k Oab q N30 R5 T60\r\n");
	assert_int_equal(o.res, KITE_PARSE_OK);
	assert_int_equal(o.t.tcmd, KITE_T_MG);
	assert_int_equal(o.r.cmd, KITE_CMD_GAT); /* N and T may write */
	assert_true(o.t.noreply);
	assert_int_equal(o.t.n_ttl, 30);
	assert_int_equal(o.t.r_ttl, 5);
	assert_int_equal(o.r.exptime, 60);
	assert_true(o.t.has_ttl);
	assert_int_equal(o.t.opaque_len, 2);
	assert_memory_equal(o.t.opaque, "ab", 2);
	assert_int_equal(o.t.nflags, 11);
	assert_memory_equal(o.t.flags, "vtcfskOqNRT", 11);
	o = parse1("mg foo v\r\n");
	assert_int_equal(o.r.cmd, KITE_CMD_GET);

	o = parse1("ms foo 3 T10 F7 C99 I MR k\r\nbar\r\n");
	assert_int_equal(o.res, KITE_PARSE_OK);
	assert_int_equal(o.r.cmd, KITE_CMD_SET);
	assert_int_equal(o.r.flags, 7);
	assert_int_equal(o.r.cas, 99);
	assert_int_equal(o.t.mode, 'R');
	assert_true(kite_text_has(&o.t, 'I'));
	assert_memory_equal(o.r.value, "bar", 3);

	o = parse1("ma n N0 J10 D3 MD v\r\n");
	assert_int_equal(o.res, KITE_PARSE_OK);
	assert_int_equal(o.r.cmd, KITE_CMD_INCR);
	assert_int_equal(o.r.initial, 10);
	assert_int_equal(o.r.delta, 3);
	assert_int_equal(o.t.mode, 'D');
	o = parse1("md foo I T30 q\r\n");
	assert_int_equal(o.r.cmd, KITE_CMD_DELETE);
	assert_true(o.t.noreply);
	o = parse1("mn\r\n");
	assert_int_equal(o.t.tcmd, KITE_T_MN);

	/* Errors, exactly memcached 1.6.18's; errors are sent even with q. */
	assert_string_equal(err_of("mg foo E\r\n"), "CLIENT_ERROR invalid flag");
	assert_string_equal(err_of("mg foo v v\r\n"), "CLIENT_ERROR duplicate flag");
	assert_string_equal(err_of("mg foo O1 O2\r\n"), "CLIENT_ERROR duplicate flag");
	assert_string_equal(err_of("mg foo Tabc\r\n"), "CLIENT_ERROR bad token in command line format");
	assert_string_equal(err_of("mg foo Tabc Dabc\r\n"), "CLIENT_ERROR invalid numeric delta value");
	assert_string_equal(err_of("mg foo Jx\r\n"), "CLIENT_ERROR invalid numeric initial value");
	assert_string_equal(err_of("ms foo 1 MX\r\nx\r\n"), "CLIENT_ERROR invalid mode for ms M token");
	assert_string_equal(err_of("ms foo 1 MSS\r\nx\r\n"),
			    "CLIENT_ERROR incorrect length for M token");
	assert_string_equal(err_of("ma foo MX\r\n"), "CLIENT_ERROR invalid mode for ma M token");
	assert_string_equal(err_of("md foo E\r\n"), "CLIENT_ERROR invalid or duplicate flag");
	assert_string_equal(err_of("ma foo Tx\r\n"), "CLIENT_ERROR invalid or duplicate flag");
	assert_string_equal(err_of("mg foo O0123456789012345678901234567890123\r\n"),
			    "CLIENT_ERROR opaque token too long");
	/* h is served (the fetched bit); l would need a last-access time per item. */
	assert_int_equal(parse1("mg foo h u\r\n").res, KITE_PARSE_OK);
	assert_string_equal(err_of("mg foo l\r\n"), "CLIENT_ERROR unsupported flag");
	assert_string_equal(err_of("mg foo q h l\r\n"), "CLIENT_ERROR unsupported flag");
	assert_string_equal(err_of("mg\r\n"), "ERROR");
	assert_string_equal(err_of("mx foo\r\n"), "ERROR");
	assert_string_equal(err_of("ms foo\r\n"), "CLIENT_ERROR bad command line format");
	assert_string_equal(err_of("ms foo 2 S2\r\nab\r\n"), "CLIENT_ERROR invalid flag");
	assert_string_equal(err_of("me foo\r\n"), "SERVER_ERROR me is not supported");
	assert_string_equal(err_of("mg a b c f k l O P L N1 T1 R1 s t u v q C1 D1\r\n"),
			    "CLIENT_ERROR options flags are too long");
	assert_string_equal(err_of("md a b c f k O P L N1 T1 R1 s t u v q C1 I D1\r\n"),
			    "CLIENT_ERROR options flags too long");
	o = parse1("mg foo q Tx\r\n");
	assert_false(o.t.noreply);

	/* ms swallows its block after an error found once datalen was read. */
	o = parse1("ms foo 3 E\r\nabc\r\nmn\r\n");
	assert_int_equal(o.res, KITE_PARSE_ERR_REPLY);
	assert_int_equal(o.used, strlen("ms foo 3 E\r\nabc\r\n"));
	/* ... but not after a bad datalen. */
	o = parse1("ms foo x\r\nabc\r\n");
	assert_int_equal(o.used, strlen("ms foo x\r\n"));
}

static void
test_base64(void **state)
{
	static const char *const plain[] = { "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = { "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
					   "Zm9vYmFy" };
	char out[16];
	uint8_t dec[16];
	struct one o;

	(void)state;
	for (int i = 0; i < 6; i++) {
		size_t n = kite_text_b64_encode((const uint8_t *)plain[i], strlen(plain[i]), out);
		assert_int_equal(n, strlen(enc[i]));
		assert_memory_equal(out, enc[i], n);
		assert_int_equal(kite_text_b64_decode((const uint8_t *)enc[i], strlen(enc[i]), dec,
						      sizeof(dec)),
				 (int)strlen(plain[i]));
		assert_memory_equal(dec, plain[i], strlen(plain[i]));
	}
	assert_int_equal(kite_text_b64_decode((const uint8_t *)"cGxhaW4", 7, dec, sizeof(dec)), -1);
	assert_int_equal(kite_text_b64_decode((const uint8_t *)"Zg=a", 4, dec, sizeof(dec)), -1);
	assert_int_equal(kite_text_b64_decode((const uint8_t *)"Z*==", 4, dec, sizeof(dec)), -1);

	/* A b key: decoded for the lookup (control bytes allowed), sent back as it came. */
	o = parse1("mg YmluAGtleQ== b k v\r\n");
	assert_int_equal(o.res, KITE_PARSE_OK);
	assert_int_equal(o.r.keylen, 7);
	assert_memory_equal(o.r.key, "bin\0key", 7);
	assert_int_equal(o.t.wkeylen, 12);
	assert_true(o.t.b64);
	assert_string_equal(err_of("mg cGxhaW4 b\r\n"), "CLIENT_ERROR error decoding key");
	assert_string_equal(err_of("md cGxhaW4 b\r\n"), "CLIENT_ERROR invalid or duplicate flag");
}

/*
 * The one-key "get <key>" fast path gives what the general path gives:
 * the same line with a second space after "get" (which only the general
 * path takes) must parse alike, for keys good and bad, with and without
 * any_keys, and with a NUL ending the line early.
 */
static void
test_get_fast_path(void **state)
{
	static const char *const keys[] = { "a", "k-00001", "0123456789abcdef", "x\x7fy",
					    "tab\tkey", "\xc3\xa9t\xc3\xa9", "a\x01", "nul\0tail" };
	char big[KITE_KEY_MAX + 2];

	(void)state;
	for (int any = 0; any < 2; any++)
		for (unsigned int i = 0; i < sizeof(keys) / sizeof(keys[0]) + 2; i++) {
			char fast[300], slow[300];
			const size_t nk = sizeof(keys) / sizeof(keys[0]);
			const char *k = i < nk ? keys[i] : big;
			struct kite_text_cursor c1, c2;
			struct one a, b;
			size_t kl;

			/* The last two: the longest key, and one byte longer
			 * (big is not NUL-terminated: no strlen on it). */
			memset(big, 'b', sizeof(big));
			if (i >= nk)
				kl = KITE_KEY_MAX + (i - nk);
			else if (i == nk - 1)
				kl = 8;
			else
				kl = strlen(k);
			memcpy(fast, "get ", 4);
			memcpy(fast + 4, k, kl);
			memcpy(fast + 4 + kl, "\r\n", 2);
			memcpy(slow, "get  ", 5);
			memcpy(slow + 5, k, kl);
			memcpy(slow + 5 + kl, "\r\n", 2);
			kite_text_cursor_init(&c1, any);
			kite_text_cursor_init(&c2, any);
			memset(&a, 0, sizeof(a));
			memset(&b, 0, sizeof(b));
			a.res = kite_text_parse((const uint8_t *)fast, kl + 6, MAXV, &c1, &a.r, &a.t,
						&a.used, &a.drop);
			b.res = kite_text_parse((const uint8_t *)slow, kl + 7, MAXV, &c2, &b.r, &b.t,
						&b.used, &b.drop);
			assert_int_equal(a.res, b.res);
			assert_int_equal(a.used + 1, b.used);
			assert_int_equal(a.drop, b.drop);
			assert_int_equal(a.r.cmd, b.r.cmd);
			assert_int_equal(a.r.keylen, b.r.keylen);
			assert_int_equal(a.r.exptime, b.r.exptime);
			if (a.r.keylen > 0)
				assert_memory_equal(a.r.key, b.r.key, a.r.keylen);
			assert_int_equal(a.t.tcmd, b.t.tcmd);
			assert_int_equal(a.t.err, b.t.err);
			assert_int_equal(a.t.end, b.t.end);
			assert_int_equal(a.t.with_cas, b.t.with_cas);
			assert_int_equal(a.t.wkeylen, b.t.wkeylen);
			assert_int_equal(c1.in_get, c2.in_get);
			assert_int_equal(c1.tcmd, c2.tcmd);
			assert_int_equal(c1.exptime, c2.exptime);
		}
}

/*
 * The key check (eight bytes at a time) against the rule byte by byte:
 * every length to one past the longest, a bad byte at every position,
 * the good bytes around it drawn from the edges (0x21, 0x7e, 0x80, 0xff).
 * Through the one-key get and through a get of two keys (the general
 * path). NUL, space and newline are left out: they end the line or the
 * key (test_get_fast_path and test_multiget have them).
 */
static void
test_key_check(void **state)
{
	static const uint8_t bad[] = { 0x01, 0x09, 0x0b, 0x0d, 0x1f, 0x7f };
	static const uint8_t good[] = { 0x21, 0x7e, 0x80, 0xff, 'k', 0x5c };
	unsigned int seed = 1, checked = 0;

	(void)state;
	for (unsigned int len = 1; len <= KITE_KEY_MAX + 1; len++)
		for (unsigned int pos = 0; pos <= len; pos++) /* pos == len: no bad byte */
			for (unsigned int b = 0; b < (pos < len ? sizeof(bad) : 1); b++)
				for (int two = 0; two < 2; two++) {
					uint8_t key[KITE_KEY_MAX + 1], line[600];
					struct kite_text_cursor c;
					struct one o;
					size_t n = 0, off = 0;
					bool ok = pos == len && len <= KITE_KEY_MAX, all_ok = true;

					for (unsigned int i = 0; i < len; i++) {
						seed = seed * 1103515245u + 12345u;
						key[i] = good[(seed >> 16) % sizeof(good)];
					}
					if (pos < len)
						key[pos] = bad[b];
					memcpy(line, two ? "get x " : "get ", two ? 6 : 4);
					n = two ? 6 : 4;
					memcpy(line + n, key, len);
					n += len;
					memcpy(line + n, "\r\n", 2);
					n += 2;
					kite_text_cursor_init(&c, false);
					/* Every request of the line: all good, the last one the key. */
					while (off < n) {
						memset(&o, 0, sizeof(o));
						o.res = kite_text_parse(line + off, n - off, MAXV, &c,
									&o.r, &o.t, &o.used, &o.drop);
						assert_true(o.res != KITE_PARSE_DROP && o.used > 0);
						all_ok = all_ok && o.res == KITE_PARSE_OK;
						off += o.used;
					}
					assert_int_equal(all_ok, ok);
					if (ok) {
						assert_int_equal(o.r.keylen, len);
						assert_memory_equal(o.r.key, key, len);
					}
					checked++;
				}
	assert_int_equal(checked, 2 * (6 * (KITE_KEY_MAX + 1) * (KITE_KEY_MAX + 2) / 2 + (KITE_KEY_MAX + 1)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classic),	 cmocka_unit_test(test_errors),
		cmocka_unit_test(test_never_answered), cmocka_unit_test(test_multiget),
		cmocka_unit_test(test_meta),	 cmocka_unit_test(test_base64),
		cmocka_unit_test(test_get_fast_path), cmocka_unit_test(test_key_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
