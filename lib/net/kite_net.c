/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Kite's IPv4 stack: just enough Ethernet, ARP, ICMP echo, IPv4 and UDP to
 * serve memcached's binary protocol to hosts on one subnet. Everything is
 * answered in place on the received mbuf; one context per worker lcore, so
 * nothing here locks or allocates after kite_net_create().
 */

/*
 * rte_ip_frag_table_del_expired_entries() is still experimental in 22.11;
 * without it timed-out fragments stay held until a new datagram hashes onto
 * their bucket. Opt in for this file only.
 */
#define ALLOW_EXPERIMENTAL_API

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_random.h>
#include <rte_udp.h>

#include "kite_net.h"

/*
 * The build may name the logtype for us (as DPDK's own build does with
 * -DRTE_LOG_DEFAULT_LOGTYPE); without that, RTE_LOG_REGISTER_DEFAULT would
 * register the literal string "RTE_LOG_DEFAULT_LOGTYPE" for every module.
 */
#ifdef RTE_LOG_DEFAULT_LOGTYPE
RTE_LOG_REGISTER_DEFAULT(kite_net_logtype, INFO);
#else
RTE_LOG_REGISTER(kite_net_logtype, kite.net, INFO);
#endif

/* Init-time messages only: the packet path never logs. */
#define NET_LOG(level, fmt, ...)                                                                   \
	rte_log(RTE_LOG_##level, kite_net_logtype, "kite_net: " fmt "\n", ##__VA_ARGS__)

#define ETH_LEN	 14
#define IP4_LEN	 20
#define UDP_LEN	 8
#define ARP_LEN	 28
#define ICMP_LEN 8
/* Shortest Ethernet frame without its FCS; replies we build are padded to it. */
#define ETH_MIN_LEN 60
#define REPLY_TTL   64

/* Wire formats we lean on (byte offsets as in RFC 826/791/768). */
_Static_assert(sizeof(struct rte_ether_hdr) == ETH_LEN, "Ethernet header size");
_Static_assert(sizeof(struct rte_ipv4_hdr) == IP4_LEN, "IPv4 header size");
_Static_assert(sizeof(struct rte_udp_hdr) == UDP_LEN, "UDP header size");
_Static_assert(sizeof(struct rte_arp_hdr) == ARP_LEN, "ARP header size");
_Static_assert(sizeof(struct rte_icmp_hdr) == ICMP_LEN, "ICMP header size");
_Static_assert(KITE_NET_HDR_LEN == ETH_LEN + IP4_LEN + UDP_LEN, "reply header size");

#define FRAG_DEFAULT_FLOWS	1024
#define FRAG_DEFAULT_TIMEOUT_MS 500
/*
 * Per source address, the reassemblies it may have open: a quarter of the
 * table (at least 16). A token goes with each first fragment and comes
 * back when the datagram completes, or with time (one timeout period
 * refills them all: what never completed has timed out by then), so one
 * source flooding first fragments that never complete cannot hold the
 * whole table, and a source whose datagrams complete is never held back.
 */
#define FRAG_SOURCES 256
/*
 * DPDK's reassembly discards the whole datagram when a first or last
 * fragment arrives twice (and one more middle fragment can push it past its
 * total): one retransmitted or spoofed copy would cost a large request.
 * A shadow record per datagram in flight (source, destination, IP id) keeps
 * the offset and length of each fragment handed in, so an exact copy is
 * dropped (kite_net_drop_frag_dup) before DPDK sees it. Two-way buckets
 * under a secret hash; a datagram that finds no free way is handed in
 * unrecorded (DPDK's behaviour), an entry older than the timeout is free.
 */
#define FRAG_SEEN_FRAGS 8 /* RTE_LIBRTE_IP_FRAG_MAX_FRAG in 22.11: more fail anyway */
#define FRAG_SEEN_WAYS	2
_Static_assert(FRAG_SOURCES == 256, "fsrc_slot() takes the top 8 bits of a hash");
#define FRAG_MAX_FLOWS		(1u << 20)
#define FRAG_BUCKET_ENTRIES	16
/* DPDK memory one entry of the reassembly table takes (struct ip_frag_pkt, internal). */
#define FRAG_ENTRY_BYTES	512
#define DEFAULT_MTU		1500
/* RFC 791: every host must take a 68-byte datagram unfragmented. */
#define MIN_MTU 68

/*
 * Replies go to the MAC the neighbour table holds for their next hop (the
 * destination on-link, else the gateway): a reply whose next hop is not
 * known yet waits in a small queue per worker while ARP asks, at most
 * HOLD_MAX of them for HOLD_MS; a learned entry used after REFRESH_S is
 * asked for again (and used meanwhile). One request per address per
 * ASK_MS for the whole node; an answer counts within ASK_WINDOW_MS.
 */
#define HOLD_MAX      64
#define HOLD_MS	      1000
#define ASK_MS	      200
#define ASK_WINDOW_MS 3000
#define REFRESH_S     30
#define ASK_MAX	      16
/* A context given no table of the node's keeps one of its own, this large. */
#define OWN_NEIGH     256

struct frag_seen {
	uint32_t src, dst; /* host order; src 0: free (never a valid source) */
	uint16_t id;
	uint8_t n;         /* fragments recorded */
	uint64_t tsc;      /* the first one's arrival */
	uint16_t ofs[FRAG_SEEN_FRAGS], len[FRAG_SEEN_FRAGS];
};

struct kite_net {
	struct kite_net_conf conf;
	rte_be32_t ip_be;      /* conf.ip as it appears on the wire */
	uint32_t subnet_bcast; /* directed broadcast, host order; 0 when the subnet has none */
	uint16_t ip_id;
	unsigned int worker;
	struct rte_ip_frag_tbl *frag;
	struct kite_net_stats stats;
	/* The node's neighbour table (shared), or this context's own. */
	struct kite_neigh *neigh;
	bool own_neigh;
	uint64_t hold_tsc, ask_tsc, window_tsc, refresh_tsc;
	uint64_t now; /* the TSC of the last burst or tick */
	/* Replies waiting for their next hop's MAC, and addresses to ask for. */
	struct {
		struct rte_mbuf *m;
		uint32_t nh;
		uint64_t tsc;
	} held[HOLD_MAX];
	unsigned int nheld;
	uint32_t ask[ASK_MAX];
	unsigned int nask;
	/* Reassemblies each source may still start (token buckets, by address hash). */
	struct {
		uint32_t ip;
		uint32_t tokens;
		uint64_t tsc;
	} fsrc[FRAG_SOURCES];
	uint32_t fsrc_cap;     /* tokens per source: a quarter of the table, at least 16 */
	uint64_t fsrc_refill;  /* TSC cycles per token */
	/* Fragments handed to DPDK per datagram in flight (duplicates stay out). */
	struct frag_seen *seen;
	uint32_t seen_mask;    /* buckets - 1 */
	uint64_t seen_key;     /* secret: a sender cannot aim at one bucket */
	uint64_t frag_tsc;     /* the reassembly timeout in TSC cycles */
	/* Fragments DPDK gives up on; emptied before every return. */
	struct rte_ip_frag_death_row dr;
};

#define STAT_NAME(field, name, help) name,
#define STAT_HELP(field, name, help) help,
const char *const kite_net_stats_names[] = { KITE_NET_STATS(STAT_NAME) };
const char *const kite_net_stats_help[] = { KITE_NET_STATS(STAT_HELP) };

static const char *const drop_names[KITE_NET_DROP_MAX] = {
	[KITE_NET_DROP_RUNT] = "runt",
	[KITE_NET_DROP_ETHERTYPE] = "ethertype",
	[KITE_NET_DROP_NOT_US] = "not_us",
	[KITE_NET_DROP_ARP_BAD] = "arp_bad",
	[KITE_NET_DROP_IP_BAD] = "ip_bad",
	[KITE_NET_DROP_IP_CSUM] = "ip_csum",
	[KITE_NET_DROP_IP_OPTIONS] = "ip_options",
	[KITE_NET_DROP_PROTO] = "proto",
	[KITE_NET_DROP_ICMP] = "icmp",
	[KITE_NET_DROP_UDP_BAD] = "udp_bad",
	[KITE_NET_DROP_UDP_CSUM] = "udp_csum",
	[KITE_NET_DROP_UDP_PORT] = "udp_port",
	[KITE_NET_DROP_FRAG] = "frag",
	[KITE_NET_DROP_BCAST_SRC] = "bcast_src",
	[KITE_NET_DROP_FRAG_QUOTA] = "frag_quota",
	[KITE_NET_DROP_FRAG_DUP] = "frag_dup",
	[KITE_NET_DROP_NO_ROUTE] = "no_route",
	[KITE_NET_DROP_UNRESOLVED] = "unresolved",
};

static inline enum kite_net_verdict
drop(struct kite_net *n, enum kite_net_drop why)
{
	n->stats.drops[why]++;
	return KITE_NET_DROP;
}

static inline uint16_t
cksum_fold(uint32_t sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/*
 * Non-complemented one's complement sum of len bytes from off, across
 * segments. Written out rather than using rte_raw_cksum_mbuf() because
 * 22.11's version truncates a segment's unfolded 32-bit sum to 16 bits
 * before byte-swapping it when the segment starts at an odd offset.
 */
static uint16_t
mbuf_sum(const struct rte_mbuf *m, uint32_t off, uint32_t len)
{
	uint32_t sum = 0;
	bool odd = false;

	for (; m != NULL && len > 0; m = m->next) {
		uint32_t dl = rte_pktmbuf_data_len(m);
		uint32_t take;
		uint16_t s;

		if (off >= dl) {
			off -= dl;
			continue;
		}
		take = RTE_MIN(dl - off, len);
		s = rte_raw_cksum(rte_pktmbuf_mtod_offset(m, const void *, off), take);
		/* A piece that starts at an odd position has its bytes in the other lanes. */
		if (odd)
			s = rte_bswap16(s);
		sum += s;
		odd ^= take & 1;
		len -= take;
		off = 0;
	}
	return cksum_fold(sum);
}

/*
 * The header checksum of a reply's IPv4 header (20 bytes, no options, DF,
 * TTL REPLY_TTL, UDP), from the values kite_net_udp_reply() stores rather
 * than from memory: summing the header it has just written, in 16-byte
 * loads over 2- and 4-byte stores, stalls on store-to-load forwarding
 * (about a quarter of the reply's cost at one GET per datagram). The words
 * are summed as numbers (host order) and the result stored big-endian,
 * which is what a sum of the big-endian words in memory gives.
 */
static inline uint16_t
reply_ip_cksum(uint16_t total_length, uint16_t id, uint32_t src, uint32_t dst)
{
	uint32_t sum = (uint32_t)(RTE_IPV4_VHL_DEF << 8) + total_length + id +
		       (RTE_IPV4_HDR_DF_FLAG) + (uint32_t)(REPLY_TTL << 8 | IPPROTO_UDP) +
		       (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff);

	return rte_cpu_to_be_16((uint16_t)~cksum_fold(sum));
}

/* RFC 1624 eqn. 3: a checksum after one 16-bit word changes, in either byte order. */
static inline uint16_t
cksum_adjust(uint16_t hc, uint16_t old, uint16_t new)
{
	uint32_t sum = (uint32_t)(uint16_t)~hc + (uint16_t)~old + new;

	return (uint16_t)~cksum_fold(sum);
}

/* Cut a packet to len bytes (Ethernet padding), freeing segments past the end. */
static void
pkt_trim(struct rte_mbuf *m, uint32_t len)
{
	struct rte_mbuf *seg = m;
	struct rte_mbuf *rest;
	uint32_t left = len;
	uint16_t segs = 1;

	if (rte_pktmbuf_pkt_len(m) == len)
		return;
	while (left > rte_pktmbuf_data_len(seg)) {
		left -= rte_pktmbuf_data_len(seg);
		seg = seg->next;
		segs++;
	}
	seg->data_len = (uint16_t)left;
	rest = seg->next;
	if (rest != NULL) {
		seg->next = NULL;
		m->nb_segs = segs;
		rte_pktmbuf_free(rest);
	}
	m->pkt_len = len;
}

/* Addresses that can never be a unicast sender. */
static inline bool
ip_src_bad(const struct kite_net *n, uint32_t ip)
{
	/* 224/4 multicast and 240/4 reserved, which holds 255.255.255.255 */
	return ip == 0 || (ip >> 28) >= 0xe || ip == n->subnet_bcast;
}

static inline bool
on_link(const struct kite_net *n, uint32_t ip)
{
	return (ip & n->conf.netmask) == (n->conf.ip & n->conf.netmask);
}

/* Where a datagram to dst goes first: dst itself on-link, else the gateway (0: nowhere). */
static inline uint32_t
next_hop(const struct kite_net *n, uint32_t dst)
{
	return on_link(n, dst) ? dst : n->conf.gateway;
}

/* Ask for nh at the next kite_net_pending() (the node asks at most every ASK_MS). */
static void
want_ask(struct kite_net *n, uint32_t nh)
{
	for (unsigned int i = 0; i < n->nask; i++)
		if (n->ask[i] == nh)
			return;
	if (n->nask < ASK_MAX)
		n->ask[n->nask++] = nh;
}

/*
 * Address a reply frame (Ethernet header at m's data) to the MAC of dst's
 * next hop. 0: addressed; 1: held until ARP answers (m is the stack's
 * now); -EHOSTUNREACH (no route: off-link and no gateway) or -EAGAIN (the
 * hold queue is full): m stays the caller's, counted.
 */
static int
address_reply(struct kite_net *n, struct rte_mbuf *m, uint32_t dst, uint64_t tsc)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	const uint32_t nh = next_hop(n, dst);
	uint64_t learned;

	if (nh == 0) {
		n->stats.drops[KITE_NET_DROP_NO_ROUTE]++;
		return -EHOSTUNREACH;
	}
	if (kite_neigh_lookup(n->neigh, nh, &eth->dst_addr, &learned) == 0) {
		if (learned != UINT64_MAX && tsc - learned > n->refresh_tsc)
			want_ask(n, nh); /* still used meanwhile */
		return 0;
	}
	if (n->nheld == HOLD_MAX) {
		n->stats.drops[KITE_NET_DROP_UNRESOLVED]++;
		return -EAGAIN;
	}
	n->held[n->nheld].m = m;
	n->held[n->nheld].nh = nh;
	n->held[n->nheld].tsc = tsc;
	n->nheld++;
	n->stats.neigh_held++;
	want_ask(n, nh);
	return 1;
}

static enum kite_net_verdict
arp_rx(struct kite_net *n, struct rte_mbuf *m, uint64_t tsc)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);
	struct rte_arp_ipv4 *a = &arp->arp_data;
	struct rte_ether_addr req_mac;
	rte_be32_t req_ip;
	uint32_t sip;
	uint16_t op;
	uint8_t *pad;

	if (rte_pktmbuf_data_len(m) < ETH_LEN + ARP_LEN)
		return drop(n, KITE_NET_DROP_RUNT);
	if (arp->arp_hardware != RTE_BE16(RTE_ARP_HRD_ETHER) ||
	    arp->arp_protocol != RTE_BE16(RTE_ETHER_TYPE_IPV4) ||
	    arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != sizeof(uint32_t))
		return drop(n, KITE_NET_DROP_ARP_BAD);
	op = rte_be_to_cpu_16(arp->arp_opcode);
	if (op != RTE_ARP_OP_REQUEST && op != RTE_ARP_OP_REPLY)
		return drop(n, KITE_NET_DROP_ARP_BAD);
	/* We would answer to it or remember it: it must be a real station. */
	if (!rte_is_valid_assigned_ether_addr(&a->arp_sha))
		return drop(n, KITE_NET_DROP_BCAST_SRC);
	/*
	 * A neighbour we know that now shows another MAC (its request, or a
	 * gratuitous ARP: a restarted VM, a replaced NIC) is asked again; the
	 * answer to that request, not this frame, is what is learned.
	 */
	sip = rte_be_to_cpu_32(a->arp_sip);
	const bool neighbour = !ip_src_bad(n, sip) && sip != n->conf.ip && on_link(n, sip);
	if (op == RTE_ARP_OP_REQUEST && neighbour) {
		struct rte_ether_addr known;

		if (kite_neigh_lookup(n->neigh, sip, &known, NULL) == 0 &&
		    !rte_is_same_ether_addr(&known, &a->arp_sha))
			want_ask(n, sip);
	}
	if (a->arp_tip != n->ip_be)
		return drop(n, KITE_NET_DROP_NOT_US);
	if (op == RTE_ARP_OP_REPLY) {
		/*
		 * Learned only as the answer to a request of ours (a reply nobody
		 * asked for, or a neighbour's request, could aim our replies at
		 * any station), and only from on-link senders.
		 */
		if (neighbour && kite_neigh_answer(n->neigh, sip, &a->arp_sha, tsc, n->window_tsc))
			n->stats.arp_learned++;
		else
			n->stats.arp_ignored++;
		rte_pktmbuf_free(m);
		return KITE_NET_HELD;
	}

	rte_ether_addr_copy(&a->arp_sha, &req_mac);
	req_ip = a->arp_sip;
	rte_ether_addr_copy(&req_mac, &eth->dst_addr);
	rte_ether_addr_copy(&n->conf.mac, &eth->src_addr);
	arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REPLY);
	rte_ether_addr_copy(&req_mac, &a->arp_tha);
	a->arp_tip = req_ip;
	rte_ether_addr_copy(&n->conf.mac, &a->arp_sha);
	a->arp_sip = n->ip_be;

	/* Zero the padding rather than echo back whatever the request carried. */
	pkt_trim(m, ETH_LEN + ARP_LEN);
	if (rte_pktmbuf_tailroom(m) >= ETH_MIN_LEN - ETH_LEN - ARP_LEN) {
		pad = (uint8_t *)rte_pktmbuf_append(m, ETH_MIN_LEN - ETH_LEN - ARP_LEN);
		memset(pad, 0, ETH_MIN_LEN - ETH_LEN - ARP_LEN);
	}
	n->stats.arp_replies++;
	return KITE_NET_REPLY;
}

static bool
ip_csum_ok(const struct kite_net *n, const struct rte_mbuf *m, const struct rte_ipv4_hdr *ip)
{
	if (n->conf.rx_ip_csum_offload) {
		switch (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) {
		case RTE_MBUF_F_RX_IP_CKSUM_GOOD:
		case RTE_MBUF_F_RX_IP_CKSUM_NONE:
			return true;
		case RTE_MBUF_F_RX_IP_CKSUM_BAD:
			return false;
		default:
			break;
		}
	}
	/* A correct header sums to all ones, its own checksum included. */
	return rte_raw_cksum(ip, IP4_LEN) == 0xffff;
}

/* A source's slot in the fragment quota table (FRAG_SOURCES = 256). */
static inline unsigned int
fsrc_slot(uint32_t src)
{
	return (src * 0x9e3779b1u) >> 24;
}

static bool
frag_quota_ok(struct kite_net *n, uint32_t src, uint64_t tsc)
{
	const unsigned int i = fsrc_slot(src);
	uint64_t add;

	if (n->fsrc[i].ip != src) {
		n->fsrc[i].ip = src;
		n->fsrc[i].tokens = n->fsrc_cap;
		n->fsrc[i].tsc = tsc;
	}
	add = tsc > n->fsrc[i].tsc ? (tsc - n->fsrc[i].tsc) / n->fsrc_refill : 0;
	if (add > 0) {
		n->fsrc[i].tokens = (uint32_t)RTE_MIN((uint64_t)n->fsrc_cap, n->fsrc[i].tokens + add);
		n->fsrc[i].tsc += add * n->fsrc_refill;
	}
	if (n->fsrc[i].tokens == 0)
		return false;
	n->fsrc[i].tokens--;
	return true;
}

/* A datagram of src completed: its slot in the table is free again, and so is its token. */
static void
frag_quota_done(struct kite_net *n, uint32_t src)
{
	const unsigned int i = fsrc_slot(src);

	if (n->fsrc[i].ip == src && n->fsrc[i].tokens < n->fsrc_cap)
		n->fsrc[i].tokens++;
}

/* The datagram's shadow record; with create, a free or timed-out way becomes it. NULL: none. */
static struct frag_seen *
seen_find(struct kite_net *n, uint32_t src, uint32_t dst, uint16_t id, uint64_t tsc, bool create)
{
	uint64_t h = ((uint64_t)src << 32 | dst) ^ ((uint64_t)id << 17) ^ n->seen_key;
	struct frag_seen *b, *free_way = NULL;

	h *= UINT64_C(0x9e3779b97f4a7c15);
	h ^= h >> 29;
	b = &n->seen[(h & n->seen_mask) * FRAG_SEEN_WAYS];
	for (unsigned int i = 0; i < FRAG_SEEN_WAYS; i++) {
		const bool live = b[i].src != 0 && tsc - b[i].tsc < n->frag_tsc;

		if (live && b[i].src == src && b[i].dst == dst && b[i].id == id)
			return &b[i];
		if (!live && free_way == NULL)
			free_way = &b[i];
	}
	if (!create || free_way == NULL)
		return NULL;
	free_way->src = src;
	free_way->dst = dst;
	free_way->id = id;
	free_way->n = 0;
	free_way->tsc = tsc;
	return free_way;
}

/* Already handed in (the same offset and length)? Otherwise recorded when there is room. */
static bool
seen_dup(struct frag_seen *s, uint16_t ofs, uint16_t len)
{
	for (unsigned int i = 0; i < s->n; i++)
		if (s->ofs[i] == ofs && s->len[i] == len)
			return true;
	if (s->n < FRAG_SEEN_FRAGS) {
		s->ofs[s->n] = ofs;
		s->len[s->n] = len;
		s->n++;
	}
	return false;
}

/*
 * Hand a fragment to DPDK's reassembly. Returns true with *mp replaced by
 * the whole datagram, or false with the verdict in *v.
 */
static bool
frag_rx(struct kite_net *n, struct rte_mbuf **mp, uint64_t tsc, enum kite_net_verdict *v)
{
	struct rte_mbuf *m = *mp;
	struct rte_mbuf *whole;
	struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, ETH_LEN);
	uint16_t fo = rte_be_to_cpu_16(ip->fragment_offset);
	uint32_t ofs = (uint32_t)(fo & RTE_IPV4_HDR_OFFSET_MASK) * RTE_IPV4_HDR_OFFSET_UNITS;
	uint32_t len = rte_be_to_cpu_16(ip->total_length) - IP4_LEN;
	uint32_t before;
	const uint32_t src = rte_be_to_cpu_32(ip->src_addr), dst = rte_be_to_cpu_32(ip->dst_addr);
	const uint16_t id = rte_be_to_cpu_16(ip->packet_id);
	struct frag_seen *seen;

	/*
	 * 22.11 takes empty fragments and ones ending past 64 KiB (the
	 * reassembled total_length would wrap); RFC 791 wants every fragment
	 * but the last to be a multiple of 8 bytes.
	 */
	if (len == 0 || ofs + len + IP4_LEN > RTE_IPV4_MAX_PKT_LEN ||
	    ((fo & RTE_IPV4_HDR_MF_FLAG) && (len % RTE_IPV4_HDR_OFFSET_UNITS) != 0)) {
		*v = drop(n, KITE_NET_DROP_FRAG);
		return false;
	}

	/* A copy of a fragment the table holds would make DPDK discard the datagram. */
	seen = seen_find(n, src, dst, id, tsc, true);
	if (seen != NULL && seen_dup(seen, (uint16_t)ofs, (uint16_t)len)) {
		*v = drop(n, KITE_NET_DROP_FRAG_DUP);
		return false;
	}
	/* Each datagram has one first fragment: it is what a source's quota counts. */
	if (ofs == 0 && !frag_quota_ok(n, src, tsc)) {
		if (seen != NULL)
			seen->src = 0; /* never handed in: forget it */
		*v = drop(n, KITE_NET_DROP_FRAG_QUOTA);
		return false;
	}
	m->l2_len = ETH_LEN;
	m->l3_len = IP4_LEN;
	before = n->dr.cnt;
	whole = rte_ipv4_frag_reassemble_packet(n->frag, &n->dr, m, tsc, ip);
	/*
	 * Whatever reaches the death row is a fragment we received and now
	 * drop: this one (table full, duplicate), its whole datagram
	 * (overlap, too many fragments) or a timed-out one it displaced.
	 */
	n->stats.drops[KITE_NET_DROP_FRAG] += n->dr.cnt - before;
	/* Completed, or DPDK gave up on something (perhaps this datagram): a fresh start. */
	if (seen != NULL && (whole != NULL || n->dr.cnt != before))
		seen->src = 0;
	rte_ip_frag_free_death_row(&n->dr, 0);
	if (whole == NULL) {
		/* The table holds it, or it was on the death row just emptied. */
		*v = KITE_NET_HELD;
		return false;
	}

	n->stats.reassembled++;
	*mp = whole;
	ip = rte_pktmbuf_mtod_offset(whole, struct rte_ipv4_hdr *, ETH_LEN);
	frag_quota_done(n, src);
	/* DPDK rewrote total_length (and zeroed the header checksum); it must span the chain. */
	if ((uint32_t)rte_be_to_cpu_16(ip->total_length) + ETH_LEN != rte_pktmbuf_pkt_len(whole) ||
	    rte_pktmbuf_data_len(whole) < ETH_LEN + IP4_LEN + UDP_LEN) {
		*v = drop(n, KITE_NET_DROP_FRAG);
		return false;
	}
	return true;
}

/* Echo requests become replies in place; nothing else in ICMP is for us. */
static enum kite_net_verdict
icmp_rx(struct kite_net *n, struct rte_mbuf *m, struct rte_ipv4_hdr *ip, uint64_t tsc)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)(ip + 1);
	uint32_t len = rte_be_to_cpu_16(ip->total_length) - IP4_LEN;
	uint16_t old, new;

	/* Fragmented pings are refused before reassembly, so this is one segment. */
	if (len < ICMP_LEN || m->nb_segs != 1)
		return drop(n, KITE_NET_DROP_ICMP);
	if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || icmp->icmp_code != 0)
		return drop(n, KITE_NET_DROP_ICMP);
	if (rte_raw_cksum(icmp, len) != 0xffff)
		return drop(n, KITE_NET_DROP_ICMP);
	/*
	 * A request larger than our MTU (a link whose MTU is above the
	 * node's) would need a reply we cannot send whole: counted, not
	 * answered (never counted as answered and then lost on the wire).
	 */
	if (IP4_LEN + len > n->conf.mtu)
		return drop(n, KITE_NET_DROP_ICMP);

	rte_ether_addr_copy(&eth->src_addr, &eth->dst_addr);
	rte_ether_addr_copy(&n->conf.mac, &eth->src_addr);
	ip->dst_addr = ip->src_addr;
	ip->src_addr = n->ip_be;
	ip->time_to_live = REPLY_TTL;
	ip->fragment_offset = 0;
	ip->hdr_checksum = 0;
	ip->hdr_checksum = rte_ipv4_cksum(ip);

	/* Only the type changes: patch the checksum rather than re-sum the payload. */
	memcpy(&old, icmp, sizeof(old));
	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	memcpy(&new, icmp, sizeof(new));
	icmp->icmp_cksum = cksum_adjust(icmp->icmp_cksum, old, new);

	/* To the sender's (or its router's) MAC as the neighbour table has it. */
	if (!n->conf.reply_to_frame) {
		int r = address_reply(n, m, rte_be_to_cpu_32(ip->dst_addr), tsc);

		if (r < 0)
			return KITE_NET_DROP; /* counted */
		n->stats.icmp_echo++;
		return r == 0 ? KITE_NET_REPLY : KITE_NET_HELD;
	}
	n->stats.icmp_echo++;
	return KITE_NET_REPLY;
}

static bool
udp_csum_ok(const struct kite_net *n, const struct rte_mbuf *m, const struct rte_ipv4_hdr *ip,
	    uint32_t udp_len, bool reassembled)
{
	uint32_t sum;

	/* A NIC cannot check a fragment's UDP checksum, whatever the head's flags say. */
	if (n->conf.rx_l4_csum_offload && !reassembled) {
		switch (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) {
		case RTE_MBUF_F_RX_L4_CKSUM_GOOD:
		case RTE_MBUF_F_RX_L4_CKSUM_NONE:
			return true;
		case RTE_MBUF_F_RX_L4_CKSUM_BAD:
			return false;
		default:
			break;
		}
	}
	sum = (uint32_t)rte_ipv4_phdr_cksum(ip, 0) + mbuf_sum(m, ETH_LEN + IP4_LEN, udp_len);
	return cksum_fold(sum) == 0xffff;
}

static enum kite_net_verdict
udp_rx(struct kite_net *n, struct rte_mbuf *m, struct rte_ipv4_hdr *ip, struct kite_net_udp *u,
       bool reassembled, bool cut)
{
	const struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	const struct rte_udp_hdr *udp = (const struct rte_udp_hdr *)(ip + 1);
	uint32_t ip_payload = rte_be_to_cpu_16(ip->total_length) - IP4_LEN;
	uint16_t udp_len, dport;

	if (ip_payload < UDP_LEN || rte_pktmbuf_data_len(m) < ETH_LEN + IP4_LEN + UDP_LEN)
		return drop(n, KITE_NET_DROP_UDP_BAD);
	udp_len = rte_be_to_cpu_16(udp->dgram_len);
	if (udp_len < UDP_LEN || udp_len != ip_payload)
		return drop(n, KITE_NET_DROP_UDP_BAD);
	/* The port before the checksum: stray traffic costs no summing. */
	dport = rte_be_to_cpu_16(udp->dst_port);
	if ((uint16_t)(dport - n->conf.udp_port) >= n->conf.udp_ports)
		return drop(n, KITE_NET_DROP_UDP_PORT);
	/* RFC 768: zero means the sender computed none. A cut datagram cannot be summed. */
	if (udp->dgram_cksum != 0 && !cut && !udp_csum_ok(n, m, ip, udp_len, reassembled))
		return drop(n, KITE_NET_DROP_UDP_CSUM);

	rte_ether_addr_copy(&eth->src_addr, &u->src_mac);
	u->src_ip = rte_be_to_cpu_32(ip->src_addr);
	u->dst_ip = rte_be_to_cpu_32(ip->dst_addr);
	u->src_port = rte_be_to_cpu_16(udp->src_port);
	u->dst_port = dport;
	u->payload_off = ETH_LEN + IP4_LEN + UDP_LEN;
	u->payload_len = (uint16_t)(udp_len - UDP_LEN);
	u->truncated = cut;
	if (cut) {
		/* What arrived, for the engine's E2BIG (never more than was received). */
		u->payload_len = (uint16_t)(rte_pktmbuf_pkt_len(m) - ETH_LEN - IP4_LEN - UDP_LEN);
		n->stats.truncated++;
	}
	n->stats.udp_datagrams++;
	return KITE_NET_UDP;
}

static enum kite_net_verdict
ipv4_rx(struct kite_net *n, struct rte_mbuf **mp, uint64_t tsc, struct kite_net_udp *u)
{
	struct rte_mbuf *m = *mp;
	struct rte_ipv4_hdr *ip;
	enum kite_net_verdict v;
	bool reassembled = false, cut = false;
	uint32_t ihl, total;

	if (rte_pktmbuf_data_len(m) < ETH_LEN + IP4_LEN)
		return drop(n, KITE_NET_DROP_RUNT);
	ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, ETH_LEN);
	if ((ip->version_ihl >> 4) != IPVERSION)
		return drop(n, KITE_NET_DROP_IP_BAD);
	ihl = (uint32_t)(ip->version_ihl & RTE_IPV4_HDR_IHL_MASK) * RTE_IPV4_IHL_MULTIPLIER;
	if (ihl < IP4_LEN)
		return drop(n, KITE_NET_DROP_IP_BAD);
	if (ihl > IP4_LEN)
		return drop(n, KITE_NET_DROP_IP_OPTIONS);
	total = rte_be_to_cpu_16(ip->total_length);
	if (total < ihl)
		return drop(n, KITE_NET_DROP_IP_BAD);
	if (total > rte_pktmbuf_pkt_len(m) - ETH_LEN) {
		/*
		 * Cut short by the port (af_packet keeps the first framesz bytes
		 * of a datagram the kernel reassembled): a whole UDP datagram, not
		 * a fragment, whose headers arrived goes on, so its sender hears
		 * E2BIG rather than nothing. Anything else is a runt.
		 */
		if (ip->next_proto_id != IPPROTO_UDP || rte_ipv4_frag_pkt_is_fragmented(ip) ||
		    rte_pktmbuf_data_len(m) < ETH_LEN + IP4_LEN + UDP_LEN ||
		    rte_be_to_cpu_16(((const struct rte_udp_hdr *)(ip + 1))->dgram_len) !=
			    total - IP4_LEN)
			return drop(n, KITE_NET_DROP_RUNT);
		cut = true;
	} else {
		/* Short frames arrive padded to 60 bytes; the padding is not payload. */
		pkt_trim(m, ETH_LEN + total);
	}
	if (!ip_csum_ok(n, m, ip))
		return drop(n, KITE_NET_DROP_IP_CSUM);
	if (ip->dst_addr != n->ip_be)
		return drop(n, KITE_NET_DROP_NOT_US);
	if (ip_src_bad(n, rte_be_to_cpu_32(ip->src_addr)))
		return drop(n, KITE_NET_DROP_BCAST_SRC);
	if (ip->next_proto_id != IPPROTO_UDP && ip->next_proto_id != IPPROTO_ICMP)
		return drop(n, KITE_NET_DROP_PROTO);

	if (rte_ipv4_frag_pkt_is_fragmented(ip)) {
		n->stats.frag_packets++;
		/* We would drop the reassembled ping anyway: keep it out of the table. */
		if (ip->next_proto_id == IPPROTO_ICMP)
			return drop(n, KITE_NET_DROP_ICMP);
		if (!frag_rx(n, mp, tsc, &v))
			return v;
		m = *mp;
		ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, ETH_LEN);
		reassembled = true;
	}

	if (ip->next_proto_id == IPPROTO_ICMP)
		return icmp_rx(n, m, ip, tsc);
	return udp_rx(n, m, ip, u, reassembled, cut);
}

enum kite_net_verdict
kite_net_rx(struct kite_net *n, struct rte_mbuf **mp, uint64_t tsc, struct kite_net_udp *u)
{
	struct rte_mbuf *m;
	const struct rte_ether_hdr *eth;
	rte_be16_t type;

	if (n == NULL || mp == NULL || *mp == NULL || u == NULL)
		return KITE_NET_DROP;
	m = *mp;
	n->now = tsc;
	n->stats.rx_packets++;

	if (rte_pktmbuf_data_len(m) < ETH_LEN)
		return drop(n, KITE_NET_DROP_RUNT);
	eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
	type = eth->ether_type;
	/* A tag the NIC stripped still puts the frame on a VLAN we do not serve ... */
	if (m->ol_flags & (RTE_MBUF_F_RX_VLAN_STRIPPED | RTE_MBUF_F_RX_QINQ_STRIPPED) &&
	    (m->vlan_tci & 0x0fff) != 0)
		return drop(n, KITE_NET_DROP_ETHERTYPE);
	/*
	 * ... but a priority tag (802.1Q, VLAN id 0: only a priority, no VLAN)
	 * is the untagged network: the tag goes and the frame is served as
	 * one without it (replies are untagged, which such hosts accept).
	 */
	if (type == RTE_BE16(RTE_ETHER_TYPE_VLAN) && rte_pktmbuf_data_len(m) >= ETH_LEN + 4) {
		const uint8_t *tag = rte_pktmbuf_mtod_offset(m, const uint8_t *, ETH_LEN);

		if (((tag[0] << 8 | tag[1]) & 0x0fff) != 0)
			return drop(n, KITE_NET_DROP_ETHERTYPE);
		memmove(rte_pktmbuf_mtod_offset(m, uint8_t *, 4), eth, 12);
		rte_pktmbuf_adj(m, 4);
		eth = rte_pktmbuf_mtod(m, const struct rte_ether_hdr *);
		type = eth->ether_type;
		n->stats.priority_tagged++;
	}
	if (!rte_is_same_ether_addr(&eth->dst_addr, &n->conf.mac) &&
	    !(type == RTE_BE16(RTE_ETHER_TYPE_ARP) && rte_is_broadcast_ether_addr(&eth->dst_addr)))
		return drop(n, KITE_NET_DROP_NOT_US);
	if (!rte_is_valid_assigned_ether_addr(&eth->src_addr))
		return drop(n, KITE_NET_DROP_BCAST_SRC);
	if (type == RTE_BE16(RTE_ETHER_TYPE_IPV4))
		return ipv4_rx(n, mp, tsc, u);
	if (type == RTE_BE16(RTE_ETHER_TYPE_ARP))
		return arp_rx(n, m, tsc);
	return drop(n, KITE_NET_DROP_ETHERTYPE);
}

int
kite_net_udp_reply(struct kite_net *n, struct rte_mbuf *m, const struct kite_net_udp *u)
{
	struct rte_ether_hdr *eth;
	struct rte_ipv4_hdr *ip;
	struct rte_udp_hdr *udp;
	uint32_t payload;
	uint16_t c, id, total;
	int held = 0;

	if (n == NULL || m == NULL || u == NULL)
		return -EINVAL;
	payload = rte_pktmbuf_pkt_len(m);
	if (payload > RTE_IPV4_MAX_PKT_LEN - IP4_LEN - UDP_LEN)
		return -EMSGSIZE;
	eth = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, KITE_NET_HDR_LEN);
	if (eth == NULL)
		return -ENOSPC;
	ip = (struct rte_ipv4_hdr *)(eth + 1);
	udp = (struct rte_udp_hdr *)(ip + 1);

	rte_ether_addr_copy(&u->src_mac, &eth->dst_addr);
	rte_ether_addr_copy(&n->conf.mac, &eth->src_addr);
	eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);

	id = n->ip_id++;
	total = (uint16_t)(IP4_LEN + UDP_LEN + payload);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0;
	ip->total_length = rte_cpu_to_be_16(total);
	ip->packet_id = rte_cpu_to_be_16(id);
	/* The engine sizes replies to the MTU; never fragment on the way. */
	ip->fragment_offset = RTE_BE16(RTE_IPV4_HDR_DF_FLAG);
	ip->time_to_live = REPLY_TTL;
	ip->next_proto_id = IPPROTO_UDP;
	ip->hdr_checksum = 0;
	ip->src_addr = rte_cpu_to_be_32(u->dst_ip);
	ip->dst_addr = rte_cpu_to_be_32(u->src_ip);

	udp->src_port = rte_cpu_to_be_16(u->dst_port);
	udp->dst_port = rte_cpu_to_be_16(u->src_port);
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(UDP_LEN + payload));
	udp->dgram_cksum = 0;
	/* Through the neighbour table unless the link has one peer (memif). */
	if (!n->conf.reply_to_frame) {
		held = address_reply(n, m, u->src_ip, n->now);
		if (held < 0) {
			rte_pktmbuf_adj(m, KITE_NET_HDR_LEN); /* the caller's as it came */
			return held;
		}
	}

	m->l2_len = ETH_LEN;
	m->l3_len = IP4_LEN;
	/* The mbuf may be a recycled request: no stale Tx requests from before. */
	m->ol_flags &= ~RTE_MBUF_F_TX_OFFLOAD_MASK;
	if (n->conf.tx_csum_offload) {
		m->ol_flags |=
			RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;
		/* The NIC adds the datagram to the pseudo-header sum we seed. */
		udp->dgram_cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
		return held;
	}
	ip->hdr_checksum = reply_ip_cksum(total, id, u->dst_ip, u->src_ip);
	/* Links that cannot corrupt (memif, one host) may skip summing the payload. */
	if (n->conf.tx_udp_csum_off)
		return held;
	c = (uint16_t)~cksum_fold((uint32_t)rte_ipv4_phdr_cksum(ip, 0) +
				  mbuf_sum(m, ETH_LEN + IP4_LEN, UDP_LEN + payload));
	/* RFC 768: a computed zero goes out as all ones; zero means "none". */
	udp->dgram_cksum = c == 0 ? 0xffff : c;
	return held;
}

void
kite_net_tick(struct kite_net *n, uint64_t tsc)
{
	uint32_t before;

	if (n == NULL)
		return;
	n->now = tsc;
	/*
	 * One pass frees at most a death row's worth (tens of datagrams):
	 * bounded work for the idle path, and the next tick goes on.
	 */
	before = n->dr.cnt;
	rte_ip_frag_table_del_expired_entries(n->frag, &n->dr, tsc);
	n->stats.drops[KITE_NET_DROP_FRAG] += n->dr.cnt - before;
	rte_ip_frag_free_death_row(&n->dr, 0);
}

int
kite_net_arp_lookup(const struct kite_net *n, uint32_t ip, struct rte_ether_addr *mac)
{
	if (n == NULL || mac == NULL)
		return -EINVAL;
	return kite_neigh_lookup(n->neigh, ip, mac, NULL);
}

static int
arp_request_build(struct kite_net *n, struct rte_mbuf *m, uint32_t ip)
{
	struct rte_ether_hdr *eth;
	struct rte_arp_hdr *arp;

	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(m, ETH_MIN_LEN);
	if (eth == NULL)
		return -ENOSPC;
	memset(eth, 0, ETH_MIN_LEN);
	arp = (struct rte_arp_hdr *)(eth + 1);

	memset(&eth->dst_addr, 0xff, sizeof(eth->dst_addr));
	rte_ether_addr_copy(&n->conf.mac, &eth->src_addr);
	eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_ARP);
	arp->arp_hardware = RTE_BE16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = RTE_BE16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = sizeof(uint32_t);
	arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REQUEST);
	rte_ether_addr_copy(&n->conf.mac, &arp->arp_data.arp_sha);
	arp->arp_data.arp_sip = n->ip_be;
	/* tha stays zero: it is what we ask for. */
	arp->arp_data.arp_tip = rte_cpu_to_be_32(ip);
	return 0;
}

int
kite_net_arp_request(struct kite_net *n, struct rte_mbuf *m, uint32_t ip)
{
	int rc;

	if (n == NULL || m == NULL || ip == 0 || rte_pktmbuf_pkt_len(m) != 0)
		return -EINVAL;
	rc = arp_request_build(n, m, ip);
	if (rc != 0)
		return rc;
	/* Its answer is accepted now (the caller paces its requests itself). */
	kite_neigh_ask(n->neigh, ip, n->now != 0 ? n->now : rte_rdtsc(), 0);
	n->stats.arp_requests++;
	return 0;
}

unsigned int
kite_net_pending(struct kite_net *n, struct rte_mempool *pool, uint64_t tsc, struct rte_mbuf **out,
		 unsigned int max)
{
	unsigned int k = 0, keep = 0, nask;

	if (n == NULL || (n->nheld == 0 && n->nask == 0))
		return 0;
	n->now = tsc;
	/* ARP requests first; the node asks for an address at most every ASK_MS. */
	nask = n->nask;
	n->nask = 0;
	for (unsigned int i = 0; i < nask && k < max && pool != NULL; i++) {
		struct rte_mbuf *m;

		if (!kite_neigh_ask(n->neigh, n->ask[i], tsc, n->ask_tsc))
			continue;
		m = rte_pktmbuf_alloc(pool);
		if (m == NULL)
			break; /* held replies ask again at the next call */
		if (arp_request_build(n, m, n->ask[i]) != 0) {
			rte_pktmbuf_free(m);
			continue;
		}
		n->stats.arp_requests++;
		out[k++] = m;
	}
	/* Held replies whose next hop is known now go; the rest wait until HOLD_MS. */
	for (unsigned int i = 0; i < n->nheld; i++) {
		struct rte_mbuf *m = n->held[i].m;
		struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

		if (k < max && kite_neigh_lookup(n->neigh, n->held[i].nh, &eth->dst_addr, NULL) == 0) {
			out[k++] = m;
			continue;
		}
		if (tsc - n->held[i].tsc > n->hold_tsc) {
			rte_pktmbuf_free(m);
			n->stats.drops[KITE_NET_DROP_UNRESOLVED]++;
			continue;
		}
		n->held[keep++] = n->held[i];
		want_ask(n, n->held[i].nh);
	}
	n->nheld = keep;
	return k;
}

const struct kite_net_stats *
kite_net_stats(const struct kite_net *n)
{
	return n == NULL ? NULL : &n->stats;
}

const char *
kite_net_drop_name(enum kite_net_drop r)
{
	if ((unsigned int)r >= KITE_NET_DROP_MAX)
		return "unknown";
	return drop_names[r];
}

static bool
conf_ok(const struct kite_net_conf *c)
{
	uint32_t host = ~c->netmask;

	if (!rte_is_valid_assigned_ether_addr(&c->mac))
		return false;
	if (c->ip == 0 || (c->ip >> 28) >= 0xe)
		return false;
	/* Contiguous masks only: host bits + 1 is a power of two (or wraps to 0). */
	if ((host & (host + 1)) != 0)
		return false;
	if (c->udp_port == 0 || c->udp_ports == 0 ||
	    (uint32_t)c->udp_port + c->udp_ports > UINT16_MAX + 1u)
		return false;
	if (c->mtu != 0 && c->mtu < MIN_MTU)
		return false;
	if (c->frag_max_flows > FRAG_MAX_FLOWS)
		return false;
	return true;
}

size_t
kite_net_footprint(const struct kite_net_conf *conf)
{
	uint32_t flows = conf != NULL && conf->frag_max_flows != 0 ? conf->frag_max_flows
								   : FRAG_DEFAULT_FLOWS;

	/* rte_ip_frag keeps a 512-byte record per bucket entry (measured in test_net). */
	return sizeof(struct kite_net) + (size_t)flows * FRAG_BUCKET_ENTRIES * FRAG_ENTRY_BYTES +
	       (size_t)rte_align32pow2(flows) * FRAG_SEEN_WAYS * sizeof(struct frag_seen) +
	       (conf == NULL || conf->neigh == NULL ? kite_neigh_footprint(OWN_NEIGH) : 0) +
	       4 * RTE_CACHE_LINE_SIZE;
}

struct kite_net *
kite_net_create(const struct kite_net_conf *conf, unsigned int worker)
{
	struct kite_net *n;
	uint32_t flows, ms, host;
	uint64_t hz, cycles;

	if (conf == NULL || !conf_ok(conf)) {
		rte_errno = EINVAL;
		return NULL;
	}
	n = rte_zmalloc_socket("kite_net", sizeof(*n), RTE_CACHE_LINE_SIZE, conf->socket_id);
	if (n == NULL) {
		NET_LOG(ERR, "worker %u: no memory for a context on socket %d", worker,
			conf->socket_id);
		rte_errno = ENOMEM;
		return NULL;
	}
	n->conf = *conf;
	if (n->conf.mtu == 0)
		n->conf.mtu = DEFAULT_MTU;
	if (n->conf.frag_max_flows == 0)
		n->conf.frag_max_flows = FRAG_DEFAULT_FLOWS;
	if (n->conf.frag_timeout_ms == 0)
		n->conf.frag_timeout_ms = FRAG_DEFAULT_TIMEOUT_MS;
	n->worker = worker;
	n->ip_be = rte_cpu_to_be_32(conf->ip);
	host = ~conf->netmask;
	/* /31 and /32 have no broadcast address (RFC 3021). */
	n->subnet_bcast = host >= 3 ? (conf->ip & conf->netmask) | host : 0;
	/* Consecutive workers start far apart; RFC 6864 makes DF datagrams' IDs moot anyway. */
	n->ip_id = (uint16_t)rte_rand();

	flows = n->conf.frag_max_flows;
	ms = n->conf.frag_timeout_ms;
	hz = rte_get_tsc_hz();
	cycles = (uint64_t)ms * (hz / 1000) + (uint64_t)ms * (hz % 1000) / 1000;
	n->fsrc_cap = RTE_MAX(16u, flows / 4);
	n->fsrc_refill = RTE_MAX(UINT64_C(1), cycles / n->fsrc_cap);
	n->frag_tsc = cycles;
	n->hold_tsc = hz / 1000 * HOLD_MS;
	n->ask_tsc = hz / 1000 * ASK_MS;
	n->window_tsc = hz / 1000 * ASK_WINDOW_MS;
	n->refresh_tsc = hz * REFRESH_S;
	n->neigh = conf->neigh;
	if (n->neigh == NULL) {
		/* No table of the node's: one of this context's own. */
		n->neigh = kite_neigh_create(OWN_NEIGH, conf->socket_id);
		if (n->neigh == NULL) {
			NET_LOG(ERR, "worker %u: no memory for a neighbour table", worker);
			rte_errno = ENOMEM;
			goto fail;
		}
		n->own_neigh = true;
	}
	n->seen_mask = (uint32_t)rte_align32pow2(flows) - 1;
	n->seen_key = rte_rand();
	n->seen = rte_zmalloc_socket("kite_net_frag_seen",
				     sizeof(*n->seen) * FRAG_SEEN_WAYS * (n->seen_mask + 1u),
				     RTE_CACHE_LINE_SIZE, conf->socket_id);
	if (n->seen == NULL) {
		NET_LOG(ERR, "worker %u: no memory for %u fragment records", worker, flows);
		rte_errno = ENOMEM;
		goto fail;
	}
	n->frag = rte_ip_frag_table_create(flows, FRAG_BUCKET_ENTRIES, flows, cycles,
					   conf->socket_id);
	if (n->frag == NULL) {
		NET_LOG(ERR, "worker %u: cannot create a reassembly table for %u datagrams", worker,
			flows);
		rte_errno = ENOMEM;
		goto fail;
	}
	return n;

fail:
	if (n->own_neigh)
		kite_neigh_free(n->neigh);
	rte_free(n->seen);
	rte_free(n);
	return NULL;
}

void
kite_net_free(struct kite_net *n)
{
	if (n == NULL)
		return;
	rte_ip_frag_free_death_row(&n->dr, 0);
	/* Frees the fragments the table still holds. */
	rte_ip_frag_table_destroy(n->frag);
	for (unsigned int i = 0; i < n->nheld; i++)
		rte_pktmbuf_free(n->held[i].m);
	if (n->own_neigh)
		kite_neigh_free(n->neigh);
	rte_free(n->seen);
	rte_free(n);
}
