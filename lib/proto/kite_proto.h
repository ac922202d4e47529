/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_PROTO_H
#define KITE_PROTO_H

/**
 * @file
 * memcached UDP frame and binary protocol codec.
 *
 * The wire format is memcached 1.6's (doc/protocol.txt, protocol_binary.h):
 * every datagram starts with an 8-byte frame header, followed by one or more
 * 24-byte-header binary requests. This module only decodes and encodes; it
 * never touches the store and has no DPDK dependency, so libkite, kite-cli
 * and the fuzzers link it directly. All multi-byte fields are big-endian on
 * the wire; the structs below hold host-order values.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KITE_FRAME_HDR_LEN 8   /**< memcached UDP frame header */
#define KITE_BIN_HDR_LEN   24  /**< binary protocol header */
#define KITE_KEY_MAX       250 /**< longest key memcached accepts */
#define KITE_MAGIC_REQ     0x80
#define KITE_MAGIC_RES     0x81
/** Relative TTLs up to this many seconds; larger values are unix times. */
#define KITE_REALTIME_MAXDELTA (60 * 60 * 24 * 30)
/** incr/decr expiry meaning "do not create a missing key". */
#define KITE_DELTA_NO_CREATE 0xffffffffu
/** Longest STAT value or version string we produce. */
#define KITE_STAT_VAL_MAX 64

/** Opcodes (protocol_binary.h). */
enum kite_opcode {
	KITE_OP_GET = 0x00,
	KITE_OP_SET = 0x01,
	KITE_OP_ADD = 0x02,
	KITE_OP_REPLACE = 0x03,
	KITE_OP_DELETE = 0x04,
	KITE_OP_INCREMENT = 0x05,
	KITE_OP_DECREMENT = 0x06,
	KITE_OP_QUIT = 0x07,
	KITE_OP_FLUSH = 0x08,
	KITE_OP_GETQ = 0x09,
	KITE_OP_NOOP = 0x0a,
	KITE_OP_VERSION = 0x0b,
	KITE_OP_GETK = 0x0c,
	KITE_OP_GETKQ = 0x0d,
	KITE_OP_APPEND = 0x0e,
	KITE_OP_PREPEND = 0x0f,
	KITE_OP_STAT = 0x10,
	KITE_OP_SETQ = 0x11,
	KITE_OP_ADDQ = 0x12,
	KITE_OP_REPLACEQ = 0x13,
	KITE_OP_DELETEQ = 0x14,
	KITE_OP_INCREMENTQ = 0x15,
	KITE_OP_DECREMENTQ = 0x16,
	KITE_OP_QUITQ = 0x17,
	KITE_OP_FLUSHQ = 0x18,
	KITE_OP_APPENDQ = 0x19,
	KITE_OP_PREPENDQ = 0x1a,
	KITE_OP_TOUCH = 0x1c,
	KITE_OP_GAT = 0x1d,
	KITE_OP_GATQ = 0x1e,
	KITE_OP_GATK = 0x23,
	KITE_OP_GATKQ = 0x24,
	/* 0xe0-0xef: reserved for Kite; the registry is in docs/protocol.rst. */
	KITE_OP_KITE_FIRST = 0xe0,
	KITE_OP_TOPOLOGY = 0xe0, /**< partition count, key hash, partition -> port map */
	KITE_OP_CLUSTER_MAP = 0xe1, /**< the versioned cluster map (lib/cluster's message) */
	KITE_OP_META_GET = 0xe3,   /**< mg: meta flags as text in extras, return flags in the reply's */
	KITE_OP_META_SET = 0xe4,   /**< ms: the same, the data as the value */
	KITE_OP_META_DELETE = 0xe5, /**< md */
	KITE_OP_META_ARITH = 0xe6, /**< ma */
	KITE_OP_FILL_GET = 0xe7, /**< read a key for a warm-up fill: flags and expiry in extras */
	KITE_OP_KITE_LAST = 0xef,
};

/** Response status codes (protocol_binary.h). */
enum kite_status {
	KITE_STATUS_OK = 0x00,
	KITE_STATUS_KEY_ENOENT = 0x01,
	KITE_STATUS_KEY_EEXISTS = 0x02,
	KITE_STATUS_E2BIG = 0x03,
	KITE_STATUS_EINVAL = 0x04,
	KITE_STATUS_NOT_STORED = 0x05,
	KITE_STATUS_DELTA_BADVAL = 0x06,
	KITE_STATUS_NOT_MY_VBUCKET = 0x07,
	KITE_STATUS_AUTH_ERROR = 0x20, /**< memcached's: no tenant MAC where auth = required */
	KITE_STATUS_UNKNOWN_COMMAND = 0x81,
	KITE_STATUS_ENOMEM = 0x82,
	KITE_STATUS_ETMPFAIL = 0x86, /**< write refused: the node has fenced itself */
	/** Kite: not executed: the reply would exceed the amplification bound (get a cookie) */
	KITE_STATUS_COOKIE_REQUIRED = 0xe1,
	/** Kite: not executed: over a source or tenant rate, or the datagram's work budget */
	KITE_STATUS_RATE_LIMITED = 0xe2,
	/** Kite: not executed: the command or the key is outside what the sender may use */
	KITE_STATUS_FORBIDDEN = 0xe3,
};

/** Command classes; one per opcode, quiet variants share their loud class. */
enum kite_cmd {
	KITE_CMD_UNKNOWN = 0,
	KITE_CMD_GET,     /**< GET GETQ GETK GETKQ */
	KITE_CMD_SET,     /**< SET SETQ */
	KITE_CMD_ADD,     /**< ADD ADDQ */
	KITE_CMD_REPLACE, /**< REPLACE REPLACEQ */
	KITE_CMD_APPEND,  /**< APPEND APPENDQ */
	KITE_CMD_PREPEND, /**< PREPEND PREPENDQ */
	KITE_CMD_DELETE,  /**< DELETE DELETEQ */
	KITE_CMD_INCR,    /**< INCREMENT INCREMENTQ */
	KITE_CMD_DECR,    /**< DECREMENT DECREMENTQ */
	KITE_CMD_TOUCH,   /**< TOUCH */
	KITE_CMD_GAT,     /**< GAT GATQ GATK GATKQ */
	KITE_CMD_NOOP,
	KITE_CMD_VERSION,
	KITE_CMD_STAT,
	KITE_CMD_FLUSH, /**< FLUSH FLUSHQ */
	KITE_CMD_QUIT,  /**< QUIT QUITQ */
	KITE_CMD_TOPOLOGY, /**< Kite's TOPOLOGY */
	KITE_CMD_CLUSTER_MAP, /**< Kite's CLUSTER_MAP */
	KITE_CMD_FILL_GET, /**< Kite's FILL_GET (keyed, read-only) */
	KITE_CMD_MAX,
};

/** Host-order view of the 8-byte memcached UDP frame header. */
struct kite_proto_frame {
	uint16_t req_id;   /**< offset 0: echoed in every reply datagram */
	uint16_t seq;      /**< offset 2: datagram number within the message */
	uint16_t total;    /**< offset 4: datagrams in the message */
	uint16_t reserved; /**< offset 6: 0 */
};

/**
 * A decoded request. Pointers point into the datagram passed to
 * kite_proto_parse() and are valid as long as it is.
 */
struct kite_req {
	uint8_t opcode;   /**< offset 1 */
	uint8_t extlen;   /**< offset 4 */
	uint8_t datatype; /**< offset 5 */
	uint8_t cmd;      /**< enum kite_cmd */
	bool quiet;       /**< quiet variant: silent on success (GET*Q: on miss) */
	bool want_key;    /**< GETK, GETKQ, GATK, GATKQ: key in the reply */
	uint16_t vbucket; /**< offset 6 */
	uint16_t keylen;  /**< offset 2 */
	uint8_t dialect;  /**< KITE_DIALECT_* (in what was padding) */
	/**
	 * Looked up on its own at execution, never in a GET run's bulk lookup
	 * (meta mg: a win claim changes what the next reader of the key sees).
	 */
	bool direct;
	uint32_t bodylen; /**< offset 8 */
	uint32_t opaque;  /**< offset 12: echoed */
	uint32_t vallen;  /**< (placed here to keep the struct at 72 bytes) */
	uint64_t cas;     /**< offset 16 */
	const uint8_t *key;
	const uint8_t *value;
	/* Decoded extras, by command. */
	uint32_t flags;   /**< SET/ADD/REPLACE */
	uint32_t exptime; /**< SET/ADD/REPLACE/INCR/DECR/TOUCH/GAT/FLUSH */
	uint64_t delta;   /**< INCR/DECR */
	uint64_t initial; /**< INCR/DECR */
};

_Static_assert(sizeof(struct kite_req) == 72, "the engine keeps two cache lines per request");

/** kite_req.dialect: how the request came and how it is answered. */
enum { KITE_DIALECT_BINARY = 0, KITE_DIALECT_TEXT = 1 };

/** What kite_proto_parse() tells the caller to do. */
enum kite_parse_result {
	KITE_PARSE_OK = 0,         /**< execute req; next request at +consumed */
	KITE_PARSE_ERR_REPLY = 1,  /**< reply req with *status; continue at +consumed */
	KITE_PARSE_ERR_STOP = 2,   /**< reply req with *status; ignore the rest of the datagram */
	KITE_PARSE_DROP = 3,       /**< cannot frame a reply: drop the rest, count *drop */
};

/** Why the rest of a datagram was dropped. Indexes the drop counters. */
enum kite_proto_drop {
	KITE_PROTO_DROP_NONE = 0,
	KITE_PROTO_DROP_SHORT_FRAME,    /**< datagram shorter than the 8-byte frame */
	KITE_PROTO_DROP_MULTI_DGRAM,    /**< frame total != 1 or seq != 0 */
	KITE_PROTO_DROP_EMPTY,          /**< frame header and nothing else */
	KITE_PROTO_DROP_TRUNC_HDR,      /**< fewer than 24 bytes left for a header */
	KITE_PROTO_DROP_BAD_MAGIC,      /**< first byte neither 0x80 nor 0x81 */
	KITE_PROTO_DROP_RES_MAGIC,      /**< response magic 0x81 in a request */
	KITE_PROTO_DROP_TEXT_RESPONSE,  /**< a text line that starts like a response (VALUE, HD, 5, ...) */
	KITE_PROTO_DROP_TEXT_PARTIAL,   /**< a text line without its newline at the datagram's end */
	KITE_PROTO_DROP_MAX,
};

/** Name of a command class ("get", "set", ... "topology"), "unknown" out of range. */
const char *kite_proto_cmd_name(enum kite_cmd c);

/** Human-readable name of a drop reason (for stats). */
const char *kite_proto_drop_name(enum kite_proto_drop r);

/**
 * Decode a frame header.
 * @return 0, or KITE_PROTO_DROP_SHORT_FRAME / KITE_PROTO_DROP_MULTI_DGRAM.
 */
int kite_proto_frame_parse(const uint8_t *p, size_t len, struct kite_proto_frame *f);

/** Encode a frame header into 8 bytes at p. */
void kite_proto_frame_write(uint8_t *p, const struct kite_proto_frame *f);

/**
 * Decode the request at the head of p[0..len).
 *
 * Validates magic, lengths and the extras length for the opcode as memcached
 * 1.6 does. On KITE_PARSE_ERR_*, req->opcode/opaque are filled so the caller
 * can frame an error reply with *status. On KITE_PARSE_DROP, *drop says why.
 * max_value bounds the value length (E2BIG beyond it).
 */
enum kite_parse_result kite_proto_parse(const uint8_t *p, size_t len, uint32_t max_value,
					struct kite_req *req, size_t *consumed, uint8_t *status,
					uint8_t *drop);

/**
 * memcached's expiry rule (its realtime()): 0 is never; up to 30 days
 * (KITE_REALTIME_MAXDELTA) counts from `now`; anything larger is an
 * absolute unix time, and a past one makes the item expire at once.
 * @return absolute unix seconds (at most UINT32_MAX), 0 for never.
 */
uint32_t kite_proto_exptime(uint32_t exptime, uint32_t now);

/** Kite's binary forms of the meta commands (META_GET .. META_ARITH). */
static inline bool
kite_proto_is_meta(uint8_t opcode)
{
	return opcode >= KITE_OP_META_GET && opcode <= KITE_OP_META_ARITH;
}

/** Map an opcode to its command class, quiet flag and key flag. */
enum kite_cmd kite_proto_cmd(uint8_t opcode, bool *quiet, bool *want_key);

/** memcached's error string for a status ("Not found", ...), "" if none. */
const char *kite_proto_status_str(uint8_t status);

/** Write a 24-byte response header at p. */
void kite_proto_write_res_hdr(uint8_t *p, uint8_t opcode, uint16_t keylen, uint8_t extlen,
			      uint16_t status, uint32_t bodylen, uint32_t opaque, uint64_t cas);

/** Write a 24-byte request header at p (clients, tests, kite-bench). */
void kite_proto_write_req_hdr(uint8_t *p, uint8_t opcode, uint16_t keylen, uint8_t extlen,
			      uint16_t vbucket, uint32_t bodylen, uint32_t opaque, uint64_t cas);

/**
 * Encode a whole request (header, extras, key, value) into out[0..cap).
 * @return bytes written, or -ENOSPC.
 */
int kite_proto_build_req(uint8_t *out, size_t cap, uint8_t opcode, uint32_t opaque, uint64_t cas,
			 const void *extras, uint8_t extlen, const void *key, uint16_t keylen,
			 const void *value, uint32_t vallen);

/** A decoded response, pointers into the buffer given to kite_proto_parse_res(). */
/** A binary response's datatype bit (Kite's): its key is hot on this node (docs/protocol.rst). */
#define KITE_DATATYPE_HOT 0x40

struct kite_res {
	uint8_t opcode;
	uint8_t extlen;
	uint8_t datatype; /**< Kite sets KITE_DATATYPE_HOT (0x40) on a hot key's response */
	uint16_t keylen;
	uint16_t status;
	uint32_t bodylen;
	uint32_t opaque;
	uint64_t cas;
	const uint8_t *extras;
	const uint8_t *key;
	const uint8_t *value;
	uint32_t vallen;
};

/**
 * Decode the response at the head of p[0..len) (clients and tests).
 * @return bytes consumed, or -EINVAL / -EAGAIN (truncated).
 */
int kite_proto_parse_res(const uint8_t *p, size_t len, struct kite_res *res);

/** Big-endian helpers shared by every user of the wire format. */
static inline uint16_t
kite_proto_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t
kite_proto_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
kite_proto_get64(const uint8_t *p)
{
	return (uint64_t)kite_proto_get32(p) << 32 | kite_proto_get32(p + 4);
}

static inline void
kite_proto_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
kite_proto_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void
kite_proto_put64(uint8_t *p, uint64_t v)
{
	kite_proto_put32(p, (uint32_t)(v >> 32));
	kite_proto_put32(p + 4, (uint32_t)v);
}

#endif /* KITE_PROTO_H */
