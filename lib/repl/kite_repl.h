/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_REPL_H
#define KITE_REPL_H

/**
 * @file
 * Replication records and their datagrams (docs/protocol.rst, REPL 0xe8),
 * sequence order on the replica, and the owner's log of what it sent (for
 * retransmission). No DPDK, no I/O: kited's workers build, send, receive
 * and apply; this library only encodes, checks and remembers.
 *
 * A REPL datagram is the 8-byte memcached frame, then one binary message:
 *   DATA (request, magic 0x80): the owner's mutations, as item states;
 *   ACK and NACK (response, magic 0x81): the replica's (vbucket, sequence)
 *   pairs: applied up to, or missing from.
 * The extras carry the sub-command, the version, the sender's member
 * number and the sender's map epoch; the value carries the records or the
 * pairs followed by a 16-byte MAC (keyed BLAKE2b under the cluster secret)
 * over the header, extras and records. A datagram without a valid MAC is
 * never applied.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KITE_REPL_OPCODE 0xe8
#define KITE_REPL_VERSION 1
#define KITE_REPL_EXTLEN 16
#define KITE_REPL_MAC_LEN 16
#define KITE_REPL_SECRET_LEN 32
/** Bytes before the first record: frame, binary header, extras. */
#define KITE_REPL_HDR_LEN (8 + 24 + KITE_REPL_EXTLEN)
/** A record's fixed part: kind, key length, vbucket, seq, cas, flags, expiry, value length. */
#define KITE_REPL_REC_FIXED 34
/** An ACK/NACK pair: vbucket (u32), sequence (u64). */
#define KITE_REPL_PAIR_LEN 12

enum kite_repl_sub {
	KITE_REPL_DATA = 1, /**< owner -> replica: records */
	KITE_REPL_ACK = 2,  /**< replica -> owner: applied up to seq */
	KITE_REPL_NACK = 3, /**< replica -> owner: missing from seq (a gap) */
};

enum kite_repl_kind {
	KITE_REPL_PUT = 1,   /**< the item as it is now: value, flags, absolute expiry, CAS */
	KITE_REPL_DEL = 2,   /**< the key is gone */
	KITE_REPL_FLUSH = 3, /**< everything stored before `exptime` (unix time) is gone */
	/**
	 * The vbucket's stream restarts after `seq`: drop what you hold of it
	 * and take seq + 1 next (the owner's log no longer reaches back to
	 * what the replica lacks).
	 */
	KITE_REPL_RESET = 4,
	/**
	 * The owner's backfill of the vbucket (every item it held when the
	 * walk began, sent as PUT records after a RESET) is complete up to
	 * this record: a replica that applied it holds the whole vbucket.
	 */
	KITE_REPL_MARK = 5,
};

/** One mutation, as the state it left. Pointers refer to the caller's or the datagram's bytes. */
struct kite_repl_rec {
	uint8_t kind;
	uint32_t vbucket;
	uint64_t seq; /**< per vbucket, from 1 */
	uint64_t cas;
	uint32_t flags;
	uint32_t exptime; /**< absolute unix seconds, 0: never (FLUSH: when) */
	const uint8_t *key;
	uint16_t keylen;
	const uint8_t *value;
	uint32_t vallen;
};

/** A datagram being built in the caller's buffer. */
struct kite_repl_builder {
	uint8_t *buf;
	size_t cap;
	size_t len;
	uint32_t n; /**< records or pairs so far */
	uint8_t sub;
};

/**
 * Start a datagram: the frame (req_id, seq 0, total 1), a header for sub
 * (DATA a request, ACK/NACK a response; opaque as given) and the extras.
 * cap must hold at least KITE_REPL_HDR_LEN + KITE_REPL_MAC_LEN.
 */
void kite_repl_begin(struct kite_repl_builder *b, uint8_t *buf, size_t cap, uint8_t sub,
		     uint16_t req_id, uint32_t opaque, uint32_t sender, uint64_t epoch);
/** Append a record (DATA). @return 0, or -ENOSPC (the datagram is full: close it first), -EINVAL. */
int kite_repl_add_rec(struct kite_repl_builder *b, const struct kite_repl_rec *r);
/** Append a pair (ACK/NACK). @return 0, or -ENOSPC. */
int kite_repl_add_pair(struct kite_repl_builder *b, uint32_t vbucket, uint64_t seq);
/** Room left for a record of these sizes? */
bool kite_repl_fits(const struct kite_repl_builder *b, uint16_t keylen, uint32_t vallen);
/** Finish: lengths and the MAC. @return the datagram's length (frame included). */
size_t kite_repl_close(struct kite_repl_builder *b, const uint8_t secret[KITE_REPL_SECRET_LEN]);

/** A received REPL message, checked. */
struct kite_repl_msg {
	uint8_t sub;
	bool response;
	uint32_t opaque;
	uint32_t sender;
	uint64_t epoch;
	const uint8_t *body; /**< records or pairs */
	size_t bodylen;
};

/** Results of kite_repl_parse(). */
enum kite_repl_parse_result {
	KITE_REPL_OK = 0,
	KITE_REPL_MALFORMED = -1, /**< lengths, magic, opcode, version or sub-command */
	KITE_REPL_BAD_MAC = -2,   /**< not from a member of this cluster (or damaged) */
};

/**
 * Check one REPL message: p points at the binary header (after the frame),
 * len bytes to the end of the datagram.
 */
int kite_repl_parse(const uint8_t *p, size_t len, const uint8_t secret[KITE_REPL_SECRET_LEN],
		    struct kite_repl_msg *m);

/** Next record of a DATA body. @return 1 (r filled), 0 (end), -1 (malformed: stop). */
int kite_repl_next_rec(const uint8_t **p, const uint8_t *end, struct kite_repl_rec *r);
/** Next pair of an ACK/NACK body. @return 1, 0 (end), -1 (malformed). */
int kite_repl_next_pair(const uint8_t **p, const uint8_t *end, uint32_t *vbucket, uint64_t *seq);

/** The replica's verdict on a record, given the next sequence it expects for the vbucket. */
enum kite_repl_order {
	KITE_REPL_APPLY, /**< seq == expected */
	KITE_REPL_DUP,   /**< seq < expected: applied before (a retransmission) */
	KITE_REPL_GAP,   /**< seq > expected: something is missing; ask from expected */
};

static inline enum kite_repl_order
kite_repl_order(uint64_t expected, uint64_t seq)
{
	return seq == expected ? KITE_REPL_APPLY : seq < expected ? KITE_REPL_DUP : KITE_REPL_GAP;
}

/* ---- the owner's log of sent datagrams (retransmission) ---------------- */

#define KITE_REPL_LOG_VBS 8 /**< vbucket ranges remembered per datagram; more: "any" */

/** What one logged datagram holds. */
struct kite_repl_log_ent {
	uint32_t off, len; /**< bytes in the log's memory */
	uint16_t req_id;   /**< the datagram's frame request id (its ACK names it) */
	uint8_t acked;     /**< the replica acknowledged it */
	uint8_t sends;     /**< times sent */
	uint64_t tsc;      /**< last sent (caller's clock) */
	uint64_t born;     /**< first sent (caller's clock): the lag of its acknowledgment */
	uint8_t nvb;       /**< ranges below; KITE_REPL_LOG_VBS + 1: many (resend on any NACK) */
	struct {
		uint32_t vb;
		uint64_t lo, hi;
	} r[KITE_REPL_LOG_VBS];
};

/**
 * A ring of the last datagrams sent to one destination (bytes and which
 * sequences they carry), so a NACK or a silent replica can be answered by
 * sending them again. Memory is the caller's.
 */
struct kite_repl_log {
	uint8_t *mem;
	size_t memcap;
	size_t head; /**< next byte offset */
	struct kite_repl_log_ent *ent;
	uint32_t nent_cap;
	uint64_t first, next; /**< entries [first, next) are live (ring indexes) */
	/**
	 * Called (if set) for each entry forgotten before it was acknowledged
	 * (the log wrapped): the datagram can no longer be sent again, so the
	 * sender must resync what it carried. Set after kite_repl_log_init().
	 */
	void (*lost)(void *arg, const uint8_t *dgram, size_t len);
	void *lost_arg;
};

void kite_repl_log_init(struct kite_repl_log *l, uint8_t *mem, size_t memcap,
			struct kite_repl_log_ent *ent, uint32_t nent);
/** Remember a sent DATA datagram (its records are read to index it). */
void kite_repl_log_add(struct kite_repl_log *l, const uint8_t *dgram, size_t len, uint64_t now);
/**
 * Datagrams of map epoch `epoch` holding (vb, seq >= from), oldest first:
 * calls fn for each (those of another epoch would be refused anyway),
 * except those sent within `quiet` before `now` (one NACK that names many
 * vbuckets, or NACKs sent again, must not resend a datagram many times);
 * sent ones are stamped with now.
 * @return the number resent, or -1 when the log no longer reaches back to
 * `from` for this vbucket (the replica must be resynced from the store).
 */
int kite_repl_log_resend(struct kite_repl_log *l, uint32_t vb, uint64_t from, uint64_t epoch,
			 uint64_t now, uint64_t quiet,
			 void (*fn)(void *arg, const uint8_t *dgram, size_t len), void *arg);
/**
 * The newest entry with this request id is acknowledged. @return true if
 * found (and not acknowledged before); *born (may be NULL) is when it was
 * first sent.
 */
bool kite_repl_log_ack(struct kite_repl_log *l, uint16_t req_id, uint64_t *born);
/** Entries sent and not acknowledged yet (nor given up): a sender's backpressure. */
unsigned int kite_repl_log_unacked(const struct kite_repl_log *l);

/**
 * Give up every unacknowledged entry at once (its destination has left the
 * cluster: nothing it did not acknowledge will be sent again, and it no
 * longer counts as unacknowledged). A NACK can still ask for an entry.
 * @return the entries given up.
 */
unsigned int kite_repl_log_give_up(struct kite_repl_log *l);

/**
 * Send again (fn) the unacknowledged entries last sent before `before`, at
 * most `max`, oldest first, stamping them with `now`; an entry sent
 * `max_sends` times is given up. @return entries sent; *given_up counts.
 */
unsigned int kite_repl_log_retry(struct kite_repl_log *l, uint64_t before, uint64_t now,
				 unsigned int max, unsigned int max_sends,
				 void (*fn)(void *arg, const uint8_t *dgram, size_t len), void *arg,
				 uint64_t *given_up);

#endif /* KITE_REPL_H */
