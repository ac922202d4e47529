/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_LIMITS_H
#define KITE_LIMITS_H

/**
 * @file
 * The node's size limits, in one place. Every table, option range, check
 * and client buffer that depends on one of them uses the macro here, so
 * server, clients and tools cannot disagree (docs/protocol.rst, "Limits").
 */

/**
 * Worker lcores of a node. A datagram's owners are a 64-bit mask (bit w =
 * worker w), which is what bounds this.
 */
#define KITE_MAX_WORKERS 64

/** Partitions one worker owns. */
#define KITE_MAX_PARTS_PER_WORKER 256

/**
 * Partitions of a node in all (workers x partitions per worker must stay
 * below it). The TOPOLOGY reply lists each, and each has a UDP port.
 */
#define KITE_MAX_PARTITIONS 1024

/**
 * Reply datagrams one request datagram may produce (about 1.5 MB at MTU
 * 1500). It bounds what one request can make the node send, and it sizes
 * the reassembly tables of clients.
 */
#define KITE_MAX_REPLY_DGRAMS 1024

_Static_assert(KITE_MAX_WORKERS <= 64, "the owners of a datagram are a 64-bit mask");
_Static_assert(KITE_MAX_PARTITIONS <= 65535, "partitions are 16-bit on the wire");
_Static_assert(KITE_MAX_REPLY_DGRAMS <= 65535, "the frame's total field is 16 bits");

#endif /* KITE_LIMITS_H */
