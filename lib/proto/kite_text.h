/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_TEXT_H
#define KITE_TEXT_H

/**
 * @file
 * memcached's text and meta commands (memcached 1.6.18's doc/protocol.txt
 * and proto_text.c), decoded into the same struct kite_req the binary
 * codec fills, plus what only text needs (struct kite_text_req): the
 * engine executes one request table for both dialects and writes each
 * reply in its request's dialect.
 *
 * A datagram's dialect is decided by its first byte after the frame (and
 * the guard's envelope): 0x80 binary, anything else text. Lines end in
 * "\n" (a "\r" before it is dropped); tokens are separated by spaces. A
 * multi-key get yields one request per key (the last one marked `end`:
 * END follows its reply). A line that starts like a response (an
 * upper-case letter or a digit: VALUE, END, STORED, HD, EN, a number, ...)
 * is never answered: the rest of the datagram is dropped and counted, so
 * two servers cannot be made to echo each other. No state crosses
 * datagrams; the cursor below lives for one datagram.
 *
 * Where Kite differs from memcached 1.6.18 on purpose, docs/protocol.rst
 * says so (keys with control characters are refused with CLIENT_ERROR
 * bad command line format; a data block must
 * be in the same datagram; meta `l` is refused).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kite_proto.h"

/** Meta flags per command: memcached allows words + 1 <= 20 (17 flags; 16 for ms). */
#define KITE_TEXT_MAX_FLAGS 17
/** The whole O token, O included, is at most 32 bytes. */
#define KITE_TEXT_OPAQUE_MAX 31
/** Tokens of a non-get command line memcached looks at (the rest is ignored). */
#define KITE_TEXT_MAX_TOKENS 23

/** Text commands. */
enum kite_text_cmd {
	KITE_T_NONE = 0,
	KITE_T_GET,
	KITE_T_GETS,
	KITE_T_GAT,
	KITE_T_GATS,
	KITE_T_SET,
	KITE_T_ADD,
	KITE_T_REPLACE,
	KITE_T_APPEND,
	KITE_T_PREPEND,
	KITE_T_CAS,
	KITE_T_INCR,
	KITE_T_DECR,
	KITE_T_DELETE,
	KITE_T_TOUCH,
	KITE_T_FLUSH_ALL,
	KITE_T_VERSION,
	KITE_T_VERBOSITY,
	KITE_T_STATS,
	KITE_T_QUIT,
	KITE_T_MG,
	KITE_T_MS,
	KITE_T_MD,
	KITE_T_MA,
	KITE_T_MN,
	KITE_T_ME,
	KITE_T_MAX,
};

/** Error replies, each one exact line of memcached 1.6.18 (or Kite's, marked). */
enum kite_text_err {
	KITE_TERR_NONE = 0,
	KITE_TERR_ERROR,        /**< ERROR (unknown command, wrong word count) */
	KITE_TERR_FORMAT,       /**< CLIENT_ERROR bad command line format */
	KITE_TERR_CHUNK,        /**< CLIENT_ERROR bad data chunk */
	KITE_TERR_TOO_LARGE,    /**< SERVER_ERROR object too large for cache */
	KITE_TERR_DELTA_ARG,    /**< CLIENT_ERROR invalid numeric delta argument */
	KITE_TERR_NON_NUMERIC,  /**< CLIENT_ERROR cannot increment or decrement non-numeric value */
	KITE_TERR_EXPTIME,      /**< CLIENT_ERROR invalid exptime argument */
	KITE_TERR_DELETE_USAGE, /**< CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply] */
	KITE_TERR_FLAG,         /**< CLIENT_ERROR invalid flag */
	KITE_TERR_DUP_FLAG,     /**< CLIENT_ERROR duplicate flag */
	KITE_TERR_TOKEN,        /**< CLIENT_ERROR bad token in command line format */
	KITE_TERR_M_LEN,        /**< CLIENT_ERROR incorrect length for M token */
	KITE_TERR_INITIAL,      /**< CLIENT_ERROR invalid numeric initial value */
	KITE_TERR_DELTA,        /**< CLIENT_ERROR invalid numeric delta value */
	KITE_TERR_B64,          /**< CLIENT_ERROR error decoding key */
	KITE_TERR_OR_DUP,       /**< CLIENT_ERROR invalid or duplicate flag (md, ma) */
	KITE_TERR_OPAQUE,       /**< CLIENT_ERROR opaque token too long */
	KITE_TERR_MG_TOO_MANY,  /**< CLIENT_ERROR options flags are too long (mg) */
	KITE_TERR_TOO_MANY,     /**< CLIENT_ERROR options flags too long (ms, md, ma) */
	KITE_TERR_MS_MODE,      /**< CLIENT_ERROR invalid mode for ms M token */
	KITE_TERR_MA_MODE,      /**< CLIENT_ERROR invalid mode for ma M token */
	KITE_TERR_UNSUPPORTED,  /**< Kite: CLIENT_ERROR unsupported flag (meta l) */
	KITE_TERR_ME,           /**< Kite: SERVER_ERROR me is not supported (use mg with s t c f) */
	KITE_TERR_NO_MEMORY,    /**< SERVER_ERROR out of memory storing object */
	KITE_TERR_MAX,
};

/** The line of an error (without "\r\n"). */
const char *kite_text_err_str(enum kite_text_err e);

/** Name of a text command ("get", "mg", ...), "" for none. */
const char *kite_text_cmd_name(enum kite_text_cmd c);

/** What a text request adds to struct kite_req. */
struct kite_text_req {
	uint8_t tcmd;      /**< enum kite_text_cmd */
	uint8_t err;       /**< enum kite_text_err with KITE_PARSE_ERR_* */
	bool noreply;      /**< classic noreply, meta q */
	bool end;          /**< get family: END follows this key's reply */
	bool with_cas;     /**< gets, gats: VALUE lines carry the CAS */
	bool b64;          /**< meta b: key was base64 (r.key is decoded) */
	bool has_ttl;      /**< meta T given (r.exptime is it) */
	uint8_t mode;      /**< meta M: the mode character (0: the default) */
	uint8_t nflags;    /**< meta: flags in request order */
	uint8_t opaque_len;
	uint8_t wkeylen;   /**< the key as sent (base64 with b) */
	char flags[KITE_TEXT_MAX_FLAGS]; /**< meta: flag letters in request order */
	uint64_t mask;     /**< meta: flags given, bit kite_text_flag_bit(c) */
	uint32_t n_ttl;    /**< meta N: vivify/auto-create TTL (memcached exptime) */
	uint32_t r_ttl;    /**< meta R: recache threshold in seconds */
	const uint8_t *opaque;
	const uint8_t *wkey;
	uint8_t key[KITE_KEY_MAX]; /**< the decoded key of a b request */
};

/** Bit of a meta flag letter in kite_text_req.mask (A-Z: 0-25, a-z: 26-51). */
static inline uint64_t
kite_text_flag_bit(char c)
{
	if (c >= 'A' && c <= 'Z')
		return UINT64_C(1) << (c - 'A');
	if (c >= 'a' && c <= 'z')
		return UINT64_C(1) << (26 + c - 'a');
	return 0;
}

static inline bool
kite_text_has(const struct kite_text_req *t, char c)
{
	return (t->mask & kite_text_flag_bit(c)) != 0;
}

/** Where parsing of one datagram stands inside a multi-key get line. */
struct kite_text_cursor {
	bool in_get;       /**< the next call returns the next key of a get line */
	bool any_keys;     /**< keys may hold control characters (text-keys = memcached) */
	uint8_t tcmd;
	uint32_t exptime;  /**< gat, gats */
};

/**
 * Reset a cursor (at the start of each datagram). any_keys: keys may hold
 * control characters (bytes below 0x21 and 0x7f), as memcached 1.6.18
 * takes them; otherwise they are refused with CLIENT_ERROR bad command
 * line format.
 */
static inline void
kite_text_cursor_init(struct kite_text_cursor *c, bool any_keys)
{
	c->in_get = false;
	c->any_keys = any_keys;
	c->tcmd = KITE_T_NONE;
	c->exptime = 0;
}

/**
 * Decode the text request at the head of p[0..len), one key of a get line
 * at a time (cur carries the line). Fills r (cmd, quiet, key, value,
 * flags, exptime in memcached's form, cas, delta, initial) and t.
 * @return KITE_PARSE_OK (*consumed: where the next request starts),
 * KITE_PARSE_ERR_REPLY (answer t->err, go on at *consumed; with
 * t->noreply the error is not sent), KITE_PARSE_ERR_STOP (answer t->err,
 * nothing after it in the datagram runs) or KITE_PARSE_DROP (*drop:
 * a response line or a line without its newline; the rest is dropped).
 */
enum kite_parse_result kite_text_parse(const uint8_t *p, size_t len, uint32_t max_value,
				       struct kite_text_cursor *cur, struct kite_req *r,
				       struct kite_text_req *t, size_t *consumed, uint8_t *drop);

/**
 * The meta flags of a binary META_* request (Kite's opcodes 0xe3-0xe6,
 * docs/protocol.rst): flags[0..n) is the extras, the same text an mg, ms,
 * md or ma line carries after its key (and ms after its length). Fills t
 * (t->tcmd from the opcode) and what the flags set in r, as for text, with
 * r->cas from C only. b and k are refused (a binary key is sent as it is,
 * and the client has it). @return KITE_TERR_NONE or the error.
 */
enum kite_text_err kite_text_meta_flags(uint8_t opcode, const uint8_t *flags, size_t n,
					struct kite_req *r, struct kite_text_req *t);

/**
 * Requests a text datagram holds, as the engine will parse them (each key
 * of a get line counts, an error counts): the guard's bound reserves a
 * status for each.
 */
uint16_t kite_text_count(const uint8_t *p, size_t len, bool any_keys);

/** base64 (RFC 4648, padded) of n bytes into out (4 * ceil(n / 3) bytes). @return its length. */
size_t kite_text_b64_encode(const uint8_t *in, size_t n, char *out);

/** Decode padded base64. @return the length, or -1 if it is not valid base64 or too long. */
int kite_text_b64_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

#endif /* KITE_TEXT_H */
