/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_NET_H
#define KITE_NET_H

/**
 * @file
 * The node's small IPv4 stack: Ethernet, ARP, ICMP echo, IPv4 (with
 * fragment reassembly) and UDP, parsed and answered in place on mbufs.
 *
 * One struct kite_net per worker lcore (it holds that lcore's reassembly
 * table and counters); nothing is shared, nothing locks. Every packet that
 * is not ours or is malformed is dropped and counted by reason.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_ether.h>
#include <rte_mbuf.h>

/** Bytes of Ethernet + IPv4 (no options) + UDP headers in front of a reply. */
#define KITE_NET_HDR_LEN (14 + 20 + 8)

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
	X(arp_learned, "arp_learned", "neighbour entries learned or refreshed")                  \
	X(icmp_echo, "icmp_echo", "pings answered")                                              \
	X(priority_tagged, "priority_tagged", "frames with an 802.1Q priority tag (VLAN 0), served untagged") \
	X(frag_packets, "fragments", "IPv4 fragments received")                                  \
	X(reassembled, "reassembled", "datagrams completed from fragments")

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
 * back to the sender described by u, from dst_ip:dst_port. Fills checksums
 * or the offload flags.
 * @return 0, or -ENOSPC when there is no headroom, -EMSGSIZE when the
 * payload does not fit one IPv4 datagram, -EINVAL for NULL arguments.
 */
int kite_net_udp_reply(struct kite_net *n, struct rte_mbuf *reply, const struct kite_net_udp *u);

/** Free reassembly state that has timed out (call from the idle path). */
void kite_net_tick(struct kite_net *n, uint64_t tsc);

/** Look up a neighbour's MAC learned from ARP. @return 0 or -ENOENT. */
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

#endif /* KITE_NET_H */
