/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_NET_H
#define KITE_NET_H

/**
 * @file
 * The node's small IPv4 stack: Ethernet, ARP, ICMP echo, IPv4 (with
 * fragment reassembly) and UDP, parsed and answered in place on mbufs.
 *
 * One struct kite_net per worker lcore (it holds that lcore's reassembly
 * table and counters); only the neighbour table (below) is the
 * node's, read without locks. Every packet that is not ours or is
 * malformed is dropped and counted by reason.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_ether.h>
#include <rte_mbuf.h>

/** Bytes of Ethernet + IPv4 (no options) + UDP headers in front of a reply. */
#define KITE_NET_HDR_LEN (14 + 20 + 8)

struct kite_neigh;

/** Configuration shared by every worker's context (host byte order). */
struct kite_net_conf {
	struct rte_ether_addr mac; /**< our MAC (the port's) */
	uint32_t ip;               /**< our IPv4 address, host order */
	uint32_t netmask;          /**< host order */
	uint16_t udp_port;         /**< base UDP port (11211) */
	uint16_t udp_ports;        /**< ports served: udp_port .. udp_port + udp_ports - 1 */
	uint16_t mtu;              /**< IP MTU (1500); 0 selects 1500 */
	bool rx_l4_csum_offload;   /**< trust RTE_MBUF_F_RX_L4_CKSUM_* flags */
	bool rx_ip_csum_offload;   /**< trust RTE_MBUF_F_RX_IP_CKSUM_* flags */
	bool tx_csum_offload;      /**< let the port fill IPv4/UDP checksums */
	bool tx_udp_csum_off;      /**< without offload, send UDP checksum 0 ("none", legal in IPv4) */
	uint32_t frag_max_flows;   /**< reassembly table size (datagrams in flight); 0: 1024 */
	uint32_t frag_timeout_ms;  /**< a datagram's fragments must arrive within this; 0: 500 */
	int socket_id;             /**< NUMA node of the reassembly table */
	/**
	 * Replies (UDP, ping) go to the frame's source MAC, not through the
	 * neighbour table: only for a link with one peer (memif), where no
	 * other station can be aimed at.
	 */
	bool reply_to_frame;
	uint32_t gateway;          /**< next hop for off-link addresses, host order; 0: none */
	/** The node's neighbour table, shared by the workers (below); NULL: one of its own. */
	struct kite_neigh *neigh;
};

/** What kite_net_rx() decided about a packet. */
enum kite_net_verdict {
	KITE_NET_UDP = 0,  /**< a datagram for us: see struct kite_net_udp */
	KITE_NET_REPLY,    /**< rewritten in place (ARP/ICMP reply): transmit it */
	KITE_NET_HELD,     /**< kept by reassembly or ARP: nothing to do */
	KITE_NET_DROP,     /**< the caller frees it; counted */
};

/** Drop reasons; index of struct kite_net_stats.drops[]. */
enum kite_net_drop {
	KITE_NET_DROP_RUNT = 0,     /**< shorter than its headers claim */
	KITE_NET_DROP_ETHERTYPE,    /**< not IPv4 or ARP (VLAN, IPv6, ...) */
	KITE_NET_DROP_NOT_US,       /**< IPv4 or ARP for another address / MAC */
	KITE_NET_DROP_ARP_BAD,      /**< malformed or unsupported ARP */
	KITE_NET_DROP_IP_BAD,       /**< bad version, IHL, total length */
	KITE_NET_DROP_IP_CSUM,      /**< bad IPv4 header checksum */
	KITE_NET_DROP_IP_OPTIONS,   /**< IPv4 options (not supported) */
	KITE_NET_DROP_PROTO,        /**< IP protocol other than UDP/ICMP */
	KITE_NET_DROP_ICMP,         /**< ICMP other than echo request, or bad */
	KITE_NET_DROP_UDP_BAD,      /**< bad UDP length */
	KITE_NET_DROP_UDP_CSUM,     /**< bad UDP checksum */
	KITE_NET_DROP_UDP_PORT,     /**< UDP port we do not serve */
	KITE_NET_DROP_FRAG,         /**< reassembly failed, timed out or table full */
	KITE_NET_DROP_BCAST_SRC,    /**< broadcast/multicast source address */
	KITE_NET_DROP_FRAG_QUOTA,   /**< a source starting more reassemblies than its share */
	KITE_NET_DROP_FRAG_DUP,     /**< a fragment already held (same datagram, offset, length) */
	KITE_NET_DROP_NO_ROUTE,     /**< a reply to an off-link address, and no gateway */
	KITE_NET_DROP_UNRESOLVED,   /**< a reply whose next hop did not answer ARP in time (or too many waiting) */
	KITE_NET_DROP_MAX,
};

/**
 * Per-worker counters: X(field, name, help), then drops[] by reason
 * (kite_net_drop_name()). kite_net_stats_names[] / _help[] name the
 * scalar ones, in struct order.
 */
#define KITE_NET_STATS(X)                                                                          \
	X(rx_packets, "rx_packets", "packets received")                                          \
	X(udp_datagrams, "udp_datagrams", "UDP datagrams delivered to the engine")               \
	X(arp_replies, "arp_replies", "ARP replies sent")                                        \
	X(arp_learned, "arp_learned", "neighbour entries learned or refreshed (answers to our requests)") \
	X(arp_ignored, "arp_ignored", "ARP replies nobody here asked for: not learned")          \
	X(arp_requests, "arp_requests", "ARP requests sent (next hops of replies, refreshes, peers)") \
	X(neigh_held, "neigh_held", "replies held until ARP gave their next hop's MAC")          \
	X(icmp_echo, "icmp_echo", "pings answered")                                              \
	X(priority_tagged, "priority_tagged", "frames with an 802.1Q priority tag (VLAN 0), served untagged") \
	X(frag_packets, "fragments", "IPv4 fragments received")                                  \
	X(reassembled, "reassembled", "datagrams completed from fragments")                      \
	X(truncated, "truncated", "UDP datagrams the port delivered cut short (longer than its frame): passed on for an E2BIG")

struct kite_net_stats {
#define KITE_NET_STATS_FIELD(field, name, help) uint64_t field;
	KITE_NET_STATS(KITE_NET_STATS_FIELD)
#undef KITE_NET_STATS_FIELD
	uint64_t drops[KITE_NET_DROP_MAX]; /**< by reason */
};

/** Scalar counters, before drops[]. */
#define KITE_NET_STATS_N (offsetof(struct kite_net_stats, drops) / sizeof(uint64_t))

/** Name and help of each scalar counter, in struct order. */
extern const char *const kite_net_stats_names[];
extern const char *const kite_net_stats_help[];

/** The sender of a datagram and where its payload is, filled for KITE_NET_UDP. */
struct kite_net_udp {
	struct rte_ether_addr src_mac; /**< the sender's (or its router's) MAC */
	uint32_t src_ip;               /**< host order */
	uint32_t dst_ip;
	uint16_t src_port;
	uint16_t dst_port;
	uint16_t payload_off; /**< offset of the UDP payload in the first segment */
	uint16_t payload_len; /**< UDP payload bytes (may span segments after reassembly) */
	/**
	 * The port delivered the datagram cut short (af_packet: longer than
	 * its frame size): payload_len is what arrived, the checksum unchecked.
	 */
	bool truncated;
};

struct kite_net;

/**
 * DPDK memory a context created with *conf takes (its reassembly table
 * dominates: frag_max_flows x 16 slots x 512 bytes). For sizing -m and
 * hugepages before anything is allocated.
 */
size_t kite_net_footprint(const struct kite_net_conf *conf);

/**
 * Create a worker's context.
 * @return NULL with rte_errno set: EINVAL for a bad conf (MAC not unicast,
 * IP 0 or multicast, netmask not contiguous, port range empty or past 65535,
 * mtu below 68, frag_max_flows above 2^20), ENOMEM.
 */
struct kite_net *kite_net_create(const struct kite_net_conf *conf, unsigned int worker);

/** Free a context and anything its reassembly table holds. */
void kite_net_free(struct kite_net *n);

/**
 * Classify one received packet. For KITE_NET_UDP, *m may have been
 * replaced by a reassembled (possibly multi-segment) mbuf. tsc is the
 * current rte_rdtsc() value (fragment timeouts).
 *
 * KITE_NET_HELD means the packet is no longer the caller's: the reassembly
 * table keeps (or has already freed) a fragment, and ARP replies to us are
 * freed once learned. KITE_NET_DROP leaves *m (which may be a reassembled
 * chain) for the caller to free. NULL arguments give KITE_NET_DROP, uncounted.
 */
enum kite_net_verdict kite_net_rx(struct kite_net *n, struct rte_mbuf **m, uint64_t tsc,
				  struct kite_net_udp *u);

/**
 * Put Ethernet, IPv4 and UDP headers in front of the payload already in
 * reply (which must have KITE_NET_HDR_LEN bytes of headroom), addressed
 * back to the sender described by u, from dst_ip:dst_port, to the MAC the
 * neighbour table holds for its next hop (or u's source MAC with
 * reply_to_frame). Fills checksums or the offload flags.
 * @return 0: transmit it; 1: held until ARP answers (the stack owns it
 * now, kite_net_pending() hands it back); or, reply still the caller's,
 * -ENOSPC when there is no headroom, -EMSGSIZE when the payload does not
 * fit one IPv4 datagram, -EHOSTUNREACH for an off-link address without a
 * gateway, -EAGAIN when too many replies wait for ARP (both counted),
 * -EINVAL for NULL arguments.
 */
int kite_net_udp_reply(struct kite_net *n, struct rte_mbuf *reply, const struct kite_net_udp *u);

/**
 * What the stack has to send now: ARP requests for the next hops of held
 * replies (allocated from pool), and held replies whose next hop is known
 * now; a reply held longer than a second is dropped (counted). Call after
 * every burst and when idle. @return the mbufs put in out (at most max).
 */
unsigned int kite_net_pending(struct kite_net *n, struct rte_mempool *pool, uint64_t tsc,
			      struct rte_mbuf **out, unsigned int max);

/** Free reassembly state that has timed out (call from the idle path). */
void kite_net_tick(struct kite_net *n, uint64_t tsc);

/** A neighbour's MAC (an answer to our ARP request, or static). @return 0 or -ENOENT. */
int kite_net_arp_lookup(const struct kite_net *n, uint32_t ip, struct rte_ether_addr *mac);

/**
 * Build a broadcast ARP request for ip into m (to resolve a peer).
 * m must be empty (as rte_pktmbuf_alloc() returns it); the frame is padded
 * to the 60-byte Ethernet minimum.
 * @return 0 or -ENOSPC; -EINVAL for NULL arguments, ip 0 or a non-empty m.
 */
int kite_net_arp_request(struct kite_net *n, struct rte_mbuf *m, uint32_t ip);

/** The context's counters. */
const struct kite_net_stats *kite_net_stats(const struct kite_net *n);

/** Name of a drop reason, for stats output ("unknown" when out of range). */
const char *kite_net_drop_name(enum kite_net_drop r);

/*
 * ---- The node's neighbour table ----------------------------------------
 *
 * The node's neighbour table (IPv4 address -> MAC), one for all its
 * workers: an ARP reply may reach any worker's queue, and every worker's
 * replies need it. Replies are addressed through it, never to a frame's
 * source MAC (which anyone on the segment can forge to aim reply frames
 * at any station), so it learns only:
 *
 *  - answers to the node's own ARP requests, within a few seconds of the
 *    request (kite_neigh_ask() notes it; an unsolicited reply or a
 *    request from a neighbour teaches nothing);
 *  - static entries, which nothing replaces.
 *
 * Open addressing over a power-of-two table, a probe window of 8, no
 * deletion; when a window is full the entry used longest ago gives way
 * (never a static one). Each entry is a seqlock: lookups, on every reply,
 * take no lock and write nothing; the rare writers (ARP) take the entry's
 * lock with one compare-and-swap.
 */


/** Entries per table unless told otherwise; and the bounds. */
#define KITE_NEIGH_DEFAULT 1024
#define KITE_NEIGH_MIN	   16
#define KITE_NEIGH_MAX	   (1u << 20)

/**
 * Create a table of `entries` (rounded up to a power of two, within the
 * bounds) on socket_id. @return NULL with rte_errno set (ENOMEM, EINVAL).
 */
struct kite_neigh *kite_neigh_create(uint32_t entries, int socket_id);

void kite_neigh_free(struct kite_neigh *t);

/** DPDK memory a table of `entries` takes (as kite_neigh_create() rounds it). */
size_t kite_neigh_footprint(uint32_t entries);

/** A static entry (replaces a learned one). @return 0, -EINVAL (ip 0, MAC not unicast), -ENOSPC. */
int kite_neigh_add_static(struct kite_neigh *t, uint32_t ip, const struct rte_ether_addr *mac);

/**
 * The MAC of ip (host order). @return 0, or -ENOENT when unknown (never
 * answered yet). *learned (may be NULL): the TSC of the answer it came
 * from, UINT64_MAX for a static entry.
 */
int kite_neigh_lookup(const struct kite_neigh *t, uint32_t ip, struct rte_ether_addr *mac,
		      uint64_t *learned);

/**
 * The node asks for ip (it is about to send, or has sent, an ARP request):
 * noted, so that the answer is accepted. @return true when the caller
 * should send the request now: nobody asked for ip in the last `interval`
 * TSC cycles (the node as a whole asks at most that often).
 */
bool kite_neigh_ask(struct kite_neigh *t, uint32_t ip, uint64_t tsc, uint64_t interval);

/**
 * An ARP reply from ip: learned if the node asked for ip at most `window`
 * cycles before tsc and the entry is not static. @return true when learned.
 */
bool kite_neigh_answer(struct kite_neigh *t, uint32_t ip, const struct rte_ether_addr *mac,
		       uint64_t tsc, uint64_t window);

#endif /* KITE_NET_H */
