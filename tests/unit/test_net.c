/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of lib/net. Every input frame is written out byte by byte
 * here, and every checksum is checked with the RFC 1071 sum below, so
 * nothing in the code under test vouches for itself.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "kite_net.h"
#include "kite_test.h"

#define OUR_IP	  0xc6120001u /* 198.18.0.1 */
#define PEER_IP	  0xc6120002u /* 198.18.0.2 */
#define OTHER_IP  0xc6120003u /* 198.18.0.3 */
#define OFFNET_IP 0xc6130005u /* 198.19.0.5, outside our /24 */
#define BCAST_IP  0xc61200ffu /* 198.18.0.255 */
#define PORT	  11211
#define PORTS	  4
#define PEER_PORT 40000

#define ET_IPV4 0x0800
#define ET_ARP	0x0806

static const uint8_t our_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t peer_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 };
static const uint8_t bcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static struct rte_mempool *pool;      /* ordinary 2 KiB mbufs */
static struct rte_mempool *tiny_pool; /* 40 bytes of room past the headroom */
static unsigned int pool_base, tiny_base;
static uint64_t hz;

#define T0 UINT64_C(1000000)

/* ---- bytes on the wire, written out independently of the code under test ---- */

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* RFC 1071: big-endian 16-bit words, a trailing odd byte padded with zero. */
static uint32_t
ref_sum(const uint8_t *p, size_t len, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)((p[i] << 8) | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t
ref_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static uint16_t
ref_cksum(const uint8_t *p, size_t len)
{
	return (uint16_t)~ref_fold(ref_sum(p, len, 0));
}

static uint32_t
ref_pseudo(uint32_t src, uint32_t dst, size_t l4_len)
{
	uint8_t ph[12];

	put32(ph, src);
	put32(ph + 4, dst);
	ph[8] = 0;
	ph[9] = 17;
	put16(ph + 10, (uint16_t)l4_len);
	return ref_sum(ph, sizeof(ph), 0);
}

/* True when a UDP datagram (checksum included) sums to all ones. */
static bool
ref_udp_ok(uint32_t src, uint32_t dst, const uint8_t *l4, size_t len)
{
	return ref_fold(ref_sum(l4, len, ref_pseudo(src, dst, len))) == 0xffff;
}

static size_t
put_eth(uint8_t *p, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
	memcpy(p, dst, 6);
	memcpy(p + 6, src, 6);
	put16(p + 12, type);
	return 14;
}

static void
fix_ip_csum(uint8_t *ip)
{
	size_t ihl = (size_t)(ip[0] & 0xf) * 4;

	put16(ip + 10, 0);
	put16(ip + 10, ref_cksum(ip, ihl));
}

static size_t
put_ip(uint8_t *p, uint16_t total, uint16_t id, uint16_t frag, uint8_t proto, uint32_t src,
       uint32_t dst)
{
	p[0] = 0x45;
	p[1] = 0;
	put16(p + 2, total);
	put16(p + 4, id);
	put16(p + 6, frag);
	p[8] = 64;
	p[9] = proto;
	put32(p + 12, src);
	put32(p + 16, dst);
	fix_ip_csum(p);
	return 20;
}

static void
fill_pattern(uint8_t *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seed);
}

/* UDP header and payload (what IP carries), with a checksum when csum is set. */
static size_t
put_udp(uint8_t *l4, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
	const uint8_t *payload, size_t len, bool csum)
{
	uint16_t c;

	put16(l4, sport);
	put16(l4 + 2, dport);
	put16(l4 + 4, (uint16_t)(8 + len));
	put16(l4 + 6, 0);
	memcpy(l4 + 8, payload, len);
	if (csum) {
		c = (uint16_t)~ref_fold(ref_sum(l4, 8 + len, ref_pseudo(src, dst, 8 + len)));
		put16(l4 + 6, c == 0 ? 0xffff : c);
	}
	return 8 + len;
}

/* A whole frame from the peer to one of our ports. */
static size_t
udp_frame(uint8_t *f, uint16_t dport, const uint8_t *payload, size_t len, bool csum)
{
	size_t o = put_eth(f, our_mac, peer_mac, ET_IPV4);

	o += put_ip(f + o, (uint16_t)(20 + 8 + len), 0x1000, 0, 17, PEER_IP, OUR_IP);
	return o + put_udp(f + o, PEER_IP, OUR_IP, PEER_PORT, dport, payload, len, csum);
}

/* One fragment carrying l4[ofs, ofs + len). */
static size_t
frag_frame(uint8_t *f, uint16_t id, uint8_t proto, const uint8_t *l4, uint32_t ofs, uint32_t len,
	   bool more)
{
	size_t o = put_eth(f, our_mac, peer_mac, ET_IPV4);

	o += put_ip(f + o, (uint16_t)(20 + len), id, (uint16_t)((ofs / 8) | (more ? 0x2000 : 0)),
		    proto, PEER_IP, OUR_IP);
	memcpy(f + o, l4 + ofs, len);
	return o + len;
}

static size_t
arp_frame(uint8_t *f, const uint8_t *eth_dst, uint16_t op, const uint8_t *sha, uint32_t spa,
	  uint32_t tpa)
{
	size_t o = put_eth(f, eth_dst, sha, ET_ARP);

	put16(f + o, 1);
	put16(f + o + 2, ET_IPV4);
	f[o + 4] = 6;
	f[o + 5] = 4;
	put16(f + o + 6, op);
	memcpy(f + o + 8, sha, 6);
	put32(f + o + 14, spa);
	memset(f + o + 18, 0, 6);
	put32(f + o + 24, tpa);
	return o + 28;
}

/* ---- mbufs ---- */

static struct rte_mbuf *
mbuf_of(const uint8_t *b, size_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	char *p;

	assert_non_null(m);
	p = rte_pktmbuf_append(m, (uint16_t)len);
	assert_non_null(p);
	memcpy(p, b, len);
	return m;
}

/* Two segments split at cut, so sums have to cross a boundary. */
static struct rte_mbuf *
mbuf_of_split(const uint8_t *b, size_t len, size_t cut)
{
	struct rte_mbuf *m = mbuf_of(b, cut);
	struct rte_mbuf *t = mbuf_of(b + cut, len - cut);

	assert_int_equal(rte_pktmbuf_chain(m, t), 0);
	return m;
}

static size_t
flatten(const struct rte_mbuf *m, uint8_t *out, size_t cap)
{
	size_t o = 0;

	for (; m != NULL; m = m->next) {
		assert_true(o + m->data_len <= cap);
		memcpy(out + o, rte_pktmbuf_mtod(m, const uint8_t *), m->data_len);
		o += m->data_len;
	}
	return o;
}

static struct kite_net_conf
test_conf(void)
{
	struct kite_net_conf c;

	memset(&c, 0, sizeof(c));
	memcpy(c.mac.addr_bytes, our_mac, 6);
	c.ip = OUR_IP;
	c.netmask = 0xffffff00u;
	c.udp_port = PORT;
	c.udp_ports = PORTS;
	c.mtu = 1500;
	c.socket_id = SOCKET_ID_ANY;
	/* Most cases here are about headers: replies to the frame's source (neighbour_* test the table). */
	c.reply_to_frame = true;
	return c;
}

static struct kite_net *
net_with(void (*tweak)(struct kite_net_conf *))
{
	struct kite_net_conf c = test_conf();
	struct kite_net *n;

	if (tweak != NULL)
		tweak(&c);
	n = kite_net_create(&c, 1);
	assert_non_null(n);
	return n;
}

static uint64_t
drops_total(const struct kite_net *n)
{
	const struct kite_net_stats *s = kite_net_stats(n);
	uint64_t t = 0;

	for (int r = 0; r < KITE_NET_DROP_MAX; r++)
		t += s->drops[r];
	return t;
}

static enum kite_net_verdict
rx_flags(struct kite_net *n, const uint8_t *f, size_t len, uint64_t ol_flags, struct rte_mbuf **out,
	 struct kite_net_udp *u)
{
	struct rte_mbuf *m = mbuf_of(f, len);
	enum kite_net_verdict v;

	m->ol_flags = ol_flags;
	v = kite_net_rx(n, &m, T0, u);
	*out = m;
	return v;
}

/* The frame is dropped for exactly this reason and nothing else is counted. */
static void
expect_drop_m(struct kite_net *n, struct rte_mbuf *m, enum kite_net_drop why)
{
	struct kite_net_udp u;
	uint64_t before = kite_net_stats(n)->drops[why];
	uint64_t total = drops_total(n);

	assert_int_equal(kite_net_rx(n, &m, T0, &u), KITE_NET_DROP);
	assert_int_equal(kite_net_stats(n)->drops[why], before + 1);
	assert_int_equal(drops_total(n), total + 1);
	rte_pktmbuf_free(m);
}

static void
expect_drop(struct kite_net *n, const uint8_t *f, size_t len, enum kite_net_drop why)
{
	expect_drop_m(n, mbuf_of(f, len), why);
}

static void
expect_drop_flags(struct kite_net *n, const uint8_t *f, size_t len, uint64_t ol_flags,
		  enum kite_net_drop why)
{
	struct rte_mbuf *m = mbuf_of(f, len);

	m->ol_flags = ol_flags;
	expect_drop_m(n, m, why);
}

static void
expect_udp(struct kite_net *n, const uint8_t *f, size_t len, uint64_t ol_flags)
{
	struct rte_mbuf *m;
	struct kite_net_udp u;

	assert_int_equal(rx_flags(n, f, len, ol_flags, &m, &u), KITE_NET_UDP);
	rte_pktmbuf_free(m);
}

/* ---- fixtures ---- */

static int
setup(void **state)
{
	pool_base = rte_mempool_in_use_count(pool);
	tiny_base = rte_mempool_in_use_count(tiny_pool);
	*state = net_with(NULL);
	return 0;
}

static int
teardown(void **state)
{
	kite_net_free(*state);
	if (rte_mempool_in_use_count(pool) != pool_base ||
	    rte_mempool_in_use_count(tiny_pool) != tiny_base) {
		fprintf(stderr, "mbuf leak: %u in use (expected %u), tiny %u (expected %u)\n",
			rte_mempool_in_use_count(pool), pool_base,
			rte_mempool_in_use_count(tiny_pool), tiny_base);
		return -1;
	}
	return 0;
}

/* ---- invalid arguments ---- */

static void
bad_mac_mcast(struct kite_net_conf *c)
{
	c->mac.addr_bytes[0] = 0x01;
}

static void
test_create_invalid(void **state)
{
	struct kite_net_conf c;

	(void)state;
	rte_errno = 0;
	assert_null(kite_net_create(NULL, 0));
	assert_int_equal(rte_errno, EINVAL);

	c = test_conf();
	bad_mac_mcast(&c);
	rte_errno = 0;
	assert_null(kite_net_create(&c, 0));
	assert_int_equal(rte_errno, EINVAL);

	c = test_conf();
	memset(&c.mac, 0, sizeof(c.mac));
	assert_null(kite_net_create(&c, 0));

	c = test_conf();
	c.ip = 0;
	assert_null(kite_net_create(&c, 0));

	c = test_conf();
	c.ip = 0xe0000001u;
	assert_null(kite_net_create(&c, 0));

	c = test_conf();
	c.netmask = 0xff00ff00u;
	assert_null(kite_net_create(&c, 0));

	c = test_conf();
	c.udp_ports = 0;
	assert_null(kite_net_create(&c, 0));

	c = test_conf();
	c.udp_port = 0;
	assert_null(kite_net_create(&c, 0));

	c = test_conf();
	c.udp_port = 65535;
	c.udp_ports = 2;
	assert_null(kite_net_create(&c, 0));

	c = test_conf();
	c.mtu = 67;
	assert_null(kite_net_create(&c, 0));

	c = test_conf();
	c.frag_max_flows = (1u << 20) + 1;
	rte_errno = 0;
	assert_null(kite_net_create(&c, 0));
	assert_int_equal(rte_errno, EINVAL);

	/* The edges that are allowed. */
	c = test_conf();
	c.udp_port = 65535;
	c.udp_ports = 1;
	c.netmask = 0xffffffffu;
	c.mtu = 0;
	c.frag_max_flows = 16;
	c.frag_timeout_ms = 10;
	struct kite_net *n = kite_net_create(&c, 7);
	assert_non_null(n);
	kite_net_free(n);
}

static void
test_null_args(void **state)
{
	struct kite_net *n = *state;
	struct rte_mbuf *m = NULL;
	struct rte_ether_addr mac;
	struct kite_net_udp u;
	uint8_t f[64];
	size_t len = arp_frame(f, bcast_mac, 1, peer_mac, PEER_IP, OUR_IP);

	kite_net_free(NULL);
	kite_net_tick(NULL, T0);
	assert_null(kite_net_stats(NULL));
	assert_int_equal(kite_net_rx(NULL, &m, T0, &u), KITE_NET_DROP);
	assert_int_equal(kite_net_rx(n, NULL, T0, &u), KITE_NET_DROP);
	assert_int_equal(kite_net_rx(n, &m, T0, &u), KITE_NET_DROP);
	m = mbuf_of(f, len);
	assert_int_equal(kite_net_rx(n, &m, T0, NULL), KITE_NET_DROP);
	/* Refused arguments are not packets: nothing counted. */
	assert_int_equal(kite_net_stats(n)->rx_packets, 0);
	assert_int_equal(drops_total(n), 0);

	memset(&u, 0, sizeof(u));
	assert_int_equal(kite_net_udp_reply(NULL, m, &u), -EINVAL);
	assert_int_equal(kite_net_udp_reply(n, NULL, &u), -EINVAL);
	assert_int_equal(kite_net_udp_reply(n, m, NULL), -EINVAL);
	assert_int_equal(kite_net_arp_lookup(NULL, PEER_IP, &mac), -EINVAL);
	assert_int_equal(kite_net_arp_lookup(n, PEER_IP, NULL), -EINVAL);
	assert_int_equal(kite_net_arp_request(NULL, m, PEER_IP), -EINVAL);
	assert_int_equal(kite_net_arp_request(n, NULL, PEER_IP), -EINVAL);
	/* m is not empty */
	assert_int_equal(kite_net_arp_request(n, m, PEER_IP), -EINVAL);
	rte_pktmbuf_free(m);
	m = rte_pktmbuf_alloc(pool);
	assert_non_null(m);
	assert_int_equal(kite_net_arp_request(n, m, 0), -EINVAL);
	rte_pktmbuf_free(m);
}

static void
test_drop_names(void **state)
{
	static const char *const want[KITE_NET_DROP_MAX] = {
		"runt",	 "ethertype", "not_us",	 "arp_bad",  "ip_bad",	 "ip_csum", "ip_options",
		"proto", "icmp",      "udp_bad", "udp_csum", "udp_port", "frag",    "bcast_src",
		"frag_quota", "frag_dup", "no_route", "unresolved",
	};

	(void)state;
	for (int r = 0; r < KITE_NET_DROP_MAX; r++)
		assert_string_equal(kite_net_drop_name((enum kite_net_drop)r), want[r]);
	assert_string_equal(kite_net_drop_name(KITE_NET_DROP_MAX), "unknown");
	assert_string_equal(kite_net_drop_name((enum kite_net_drop) - 1), "unknown");
}

/* ---- Ethernet ---- */

static void
test_eth_filters(void **state)
{
	struct kite_net *n = *state;
	static const uint8_t other_mac[6] = { 0x02, 0, 0, 0, 0, 0x09 };
	static const uint8_t mcast_mac[6] = { 0x01, 0x00, 0x5e, 0, 0, 1 };
	static const uint8_t zero_mac[6] = { 0 };
	uint8_t f[128], p[4] = { 1, 2, 3, 4 };
	size_t len;

	memset(f, 0, sizeof(f));
	expect_drop(n, f, 13, KITE_NET_DROP_RUNT);

	len = udp_frame(f, PORT, p, sizeof(p), true);
	memcpy(f, other_mac, 6);
	expect_drop(n, f, len, KITE_NET_DROP_NOT_US);
	memcpy(f, mcast_mac, 6);
	expect_drop(n, f, len, KITE_NET_DROP_NOT_US);
	/* Broadcast is only for ARP. */
	memcpy(f, bcast_mac, 6);
	expect_drop(n, f, len, KITE_NET_DROP_NOT_US);

	len = udp_frame(f, PORT, p, sizeof(p), true);
	memcpy(f + 6, bcast_mac, 6);
	expect_drop(n, f, len, KITE_NET_DROP_BCAST_SRC);
	memcpy(f + 6, mcast_mac, 6);
	expect_drop(n, f, len, KITE_NET_DROP_BCAST_SRC);
	memcpy(f + 6, zero_mac, 6);
	expect_drop(n, f, len, KITE_NET_DROP_BCAST_SRC);

	len = udp_frame(f, PORT, p, sizeof(p), true);
	put16(f + 12, 0x8100);
	expect_drop(n, f, len, KITE_NET_DROP_ETHERTYPE);
	put16(f + 12, 0x86dd);
	expect_drop(n, f, len, KITE_NET_DROP_ETHERTYPE);
	/* A tag the NIC took off still means another VLAN ... */
	put16(f + 12, ET_IPV4);
	struct rte_mbuf *vm = mbuf_of(f, len);
	vm->ol_flags = RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED;
	vm->vlan_tci = 7;
	expect_drop_m(n, vm, KITE_NET_DROP_ETHERTYPE);
	/* ... unless it was a priority tag (VLAN 0). */
	vm = mbuf_of(f, len);
	vm->ol_flags = RTE_MBUF_F_RX_VLAN | RTE_MBUF_F_RX_VLAN_STRIPPED;
	vm->vlan_tci = 0x6000;
	{
		struct kite_net_udp vu;
		assert_int_equal(kite_net_rx(n, &vm, T0, &vu), KITE_NET_UDP);
		rte_pktmbuf_free(vm);
	}
	expect_udp(n, f, len, 0);
	assert_int_equal(kite_net_stats(n)->rx_packets, 12);
}

/* A priority-tagged frame (802.1Q, VLAN 0) is served as the untagged one. */
static void
test_priority_tag(void **state)
{
	struct kite_net *n = *state;
	uint8_t f[256], t[260];
	const uint8_t p[] = "tagged payload";
	struct rte_mbuf *m;
	struct kite_net_udp u;
	size_t len = udp_frame(f, PORT, p, sizeof(p), true);

	memcpy(t, f, 12);
	put16(t + 12, 0x8100);
	put16(t + 14, 0x6000); /* priority 3, VLAN 0 */
	memcpy(t + 16, f + 12, len - 12);
	assert_int_equal(rx_flags(n, t, len + 4, 0, &m, &u), KITE_NET_UDP);
	assert_int_equal(u.payload_len, sizeof(p));
	assert_memory_equal(rte_pktmbuf_mtod_offset(m, const uint8_t *, u.payload_off), p,
			    sizeof(p));
	rte_pktmbuf_free(m);
	assert_int_equal(kite_net_stats(n)->priority_tagged, 1);
	/* VLAN 5: not ours. */
	put16(t + 14, 0x6005);
	expect_drop(n, t, len + 4, KITE_NET_DROP_ETHERTYPE);
}

/*
 * A UDP datagram the port delivered cut short (af_packet keeps framesz
 * bytes of what the kernel reassembled): passed on with what arrived and
 * the flag, its checksum unchecked, so the engine can answer E2BIG. A
 * fragment, or a frame without a whole UDP header, is still a runt.
 */
static void
test_truncated(void **state)
{
	struct kite_net *n = *state;
	static uint8_t f[2048], p[1800];
	struct rte_mbuf *m;
	struct kite_net_udp u;
	size_t len;

	fill_pattern(p, sizeof(p), 3);
	len = udp_frame(f, PORT, p, sizeof(p), true);
	assert_int_equal(rx_flags(n, f, 1514, 0, &m, &u), KITE_NET_UDP);
	assert_true(u.truncated);
	assert_int_equal(u.payload_len, 1514 - 42);
	assert_int_equal(u.src_ip, PEER_IP);
	assert_memory_equal(rte_pktmbuf_mtod_offset(m, const uint8_t *, u.payload_off), p, 64);
	rte_pktmbuf_free(m);
	assert_int_equal(kite_net_stats(n)->truncated, 1);
	/* The whole one: not cut, summed. */
	assert_int_equal(rx_flags(n, f, len, 0, &m, &u), KITE_NET_UDP);
	assert_false(u.truncated);
	assert_int_equal(u.payload_len, sizeof(p));
	rte_pktmbuf_free(m);
	/* Not even the UDP header; a cut fragment. */
	expect_drop(n, f, 14 + 20 + 4, KITE_NET_DROP_RUNT);
	put16(f + 14 + 6, 0x2000); /* MF */
	fix_ip_csum(f + 14);
	expect_drop(n, f, 1514, KITE_NET_DROP_RUNT);
	assert_int_equal(kite_net_stats(n)->truncated, 1);
}

/* ---- ARP ---- */

static void
test_arp_request_for_us(void **state)
{
	struct kite_net *n = *state;
	static const uint8_t want[60] = {
		/* Ethernet: to the requester, from us, ARP */
		0x02,
		0x00,
		0x00,
		0x00,
		0x00,
		0x02,
		0x02,
		0x00,
		0x00,
		0x00,
		0x00,
		0x01,
		0x08,
		0x06,
		/* htype 1, ptype IPv4, hlen 6, plen 4, op reply */
		0x00,
		0x01,
		0x08,
		0x00,
		0x06,
		0x04,
		0x00,
		0x02,
		/* sha us, spa 198.18.0.1 */
		0x02,
		0x00,
		0x00,
		0x00,
		0x00,
		0x01,
		0xc6,
		0x12,
		0x00,
		0x01,
		/* tha requester, tpa 198.18.0.2 */
		0x02,
		0x00,
		0x00,
		0x00,
		0x00,
		0x02,
		0xc6,
		0x12,
		0x00,
		0x02,
		/* padding to 60 bytes, zeroed */
		0,
		0,
		0,
		0,
		0,
		0,
		0,
		0,
		0,
		0,
		0,
		0,
		0,
		0,
		0,
		0,
		0,
		0,
	};
	uint8_t f[64], out[128];
	struct rte_mbuf *m;
	struct kite_net_udp u;
	struct rte_ether_addr mac;
	size_t len;

	/* Unpadded (from a host stack) and padded with junk (from the wire). */
	for (int padded = 0; padded < 2; padded++) {
		len = arp_frame(f, bcast_mac, 1, peer_mac, PEER_IP, OUR_IP);
		if (padded) {
			memset(f + len, 0xaa, 60 - len);
			len = 60;
		}
		assert_int_equal(rx_flags(n, f, len, 0, &m, &u), KITE_NET_REPLY);
		assert_int_equal(rte_pktmbuf_pkt_len(m), sizeof(want));
		assert_int_equal(flatten(m, out, sizeof(out)), sizeof(want));
		assert_memory_equal(out, want, sizeof(want));
		rte_pktmbuf_free(m);
	}
	/* Unicast requests (a neighbour re-checking us) are answered too. */
	len = arp_frame(f, our_mac, 1, peer_mac, PEER_IP, OUR_IP);
	assert_int_equal(rx_flags(n, f, len, 0, &m, &u), KITE_NET_REPLY);
	rte_pktmbuf_free(m);

	assert_int_equal(kite_net_stats(n)->arp_replies, 3);
	/* A neighbour's request teaches nothing: its sender fields could name anyone. */
	assert_int_equal(kite_net_stats(n)->arp_learned, 0);
	assert_int_equal(kite_net_arp_lookup(n, PEER_IP, &mac), -ENOENT);
	assert_int_equal(drops_total(n), 0);
}

static void
test_arp_other_ip(void **state)
{
	struct kite_net *n = *state;
	struct rte_ether_addr mac;
	uint8_t f[64];
	size_t len;

	len = arp_frame(f, bcast_mac, 1, peer_mac, PEER_IP, OTHER_IP);
	expect_drop(n, f, len, KITE_NET_DROP_NOT_US);
	/* Not for us: nothing learned. */
	assert_int_equal(kite_net_arp_lookup(n, PEER_IP, &mac), -ENOENT);
	assert_int_equal(kite_net_stats(n)->arp_learned, 0);

	/* A reply to someone else: same. */
	len = arp_frame(f, bcast_mac, 2, peer_mac, PEER_IP, OTHER_IP);
	expect_drop(n, f, len, KITE_NET_DROP_NOT_US);
	assert_int_equal(kite_net_stats(n)->arp_replies, 0);
}

static void
test_arp_bad(void **state)
{
	struct kite_net *n = *state;
	static const uint8_t mcast_mac[6] = { 0x01, 0x00, 0x5e, 0, 0, 1 };
	struct rte_ether_addr mac;
	uint8_t f[64];
	size_t len;

	len = arp_frame(f, bcast_mac, 1, peer_mac, PEER_IP, OUR_IP);
	expect_drop(n, f, len - 1, KITE_NET_DROP_RUNT);

	put16(f + 14, 6); /* IEEE 802 */
	expect_drop(n, f, len, KITE_NET_DROP_ARP_BAD);
	len = arp_frame(f, bcast_mac, 1, peer_mac, PEER_IP, OUR_IP);
	put16(f + 16, 0x86dd);
	expect_drop(n, f, len, KITE_NET_DROP_ARP_BAD);
	len = arp_frame(f, bcast_mac, 1, peer_mac, PEER_IP, OUR_IP);
	f[18] = 8;
	expect_drop(n, f, len, KITE_NET_DROP_ARP_BAD);
	len = arp_frame(f, bcast_mac, 1, peer_mac, PEER_IP, OUR_IP);
	f[19] = 16;
	expect_drop(n, f, len, KITE_NET_DROP_ARP_BAD);
	len = arp_frame(f, bcast_mac, 3, peer_mac, PEER_IP, OUR_IP); /* RARP */
	expect_drop(n, f, len, KITE_NET_DROP_ARP_BAD);

	/* A multicast sender hardware address is no station to answer. */
	len = arp_frame(f, bcast_mac, 1, peer_mac, PEER_IP, OUR_IP);
	memcpy(f + 22, mcast_mac, 6);
	expect_drop(n, f, len, KITE_NET_DROP_BCAST_SRC);

	assert_int_equal(kite_net_stats(n)->arp_learned, 0);
	assert_int_equal(kite_net_arp_lookup(n, PEER_IP, &mac), -ENOENT);
}

static void
test_arp_reply_learn(void **state)
{
	struct kite_net *n = *state;
	static const uint8_t new_mac[6] = { 0x02, 0, 0, 0, 0, 0x22 };
	struct rte_ether_addr mac;
	struct rte_mbuf *m;
	struct kite_net_udp u;
	uint8_t f[64];
	size_t len;

	assert_int_equal(kite_net_arp_lookup(n, PEER_IP, &mac), -ENOENT);
	assert_int_equal(kite_net_arp_lookup(n, 0, &mac), -ENOENT);

	/* A reply nobody asked for: consumed, not learned. */
	len = arp_frame(f, our_mac, 2, peer_mac, PEER_IP, OUR_IP);
	assert_int_equal(rx_flags(n, f, len, 0, &m, &u), KITE_NET_HELD);
	assert_int_equal(kite_net_arp_lookup(n, PEER_IP, &mac), -ENOENT);
	assert_int_equal(kite_net_stats(n)->arp_ignored, 1);

	/* The answer to our request: learned and consumed (freed by the stack). */
	m = rte_pktmbuf_alloc(pool);
	assert_int_equal(kite_net_arp_request(n, m, PEER_IP), 0);
	rte_pktmbuf_free(m);
	assert_int_equal(rx_flags(n, f, len, 0, &m, &u), KITE_NET_HELD);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base);
	assert_int_equal(kite_net_arp_lookup(n, PEER_IP, &mac), 0);
	assert_memory_equal(mac.addr_bytes, peer_mac, 6);

	/* A new MAC for the same address, within the window of the request, replaces it. */
	len = arp_frame(f, our_mac, 2, new_mac, PEER_IP, OUR_IP);
	assert_int_equal(rx_flags(n, f, len, 0, &m, &u), KITE_NET_HELD);
	assert_int_equal(kite_net_arp_lookup(n, PEER_IP, &mac), 0);
	assert_memory_equal(mac.addr_bytes, new_mac, 6);
	assert_int_equal(kite_net_stats(n)->arp_learned, 2);
	/* Seconds later, unasked: ignored. */
	len = arp_frame(f, our_mac, 2, peer_mac, PEER_IP, OUR_IP);
	m = mbuf_of(f, len);
	assert_int_equal(kite_net_rx(n, &m, T0 + 10 * hz, &u), KITE_NET_HELD);
	assert_int_equal(kite_net_arp_lookup(n, PEER_IP, &mac), 0);
	assert_memory_equal(mac.addr_bytes, new_mac, 6);
	assert_int_equal(kite_net_stats(n)->arp_ignored, 2);

	/* Off-link senders, our own address and probes (sender 0) are not learned. */
	m = rte_pktmbuf_alloc(pool);
	assert_int_equal(kite_net_arp_request(n, m, OFFNET_IP), 0);
	rte_pktmbuf_free(m);
	len = arp_frame(f, our_mac, 2, peer_mac, OFFNET_IP, OUR_IP);
	assert_int_equal(rx_flags(n, f, len, 0, &m, &u), KITE_NET_HELD);
	assert_int_equal(kite_net_arp_lookup(n, OFFNET_IP, &mac), -ENOENT);
	len = arp_frame(f, bcast_mac, 1, peer_mac, OUR_IP, OTHER_IP);
	expect_drop(n, f, len, KITE_NET_DROP_NOT_US);
	assert_int_equal(kite_net_arp_lookup(n, OUR_IP, &mac), -ENOENT);
	len = arp_frame(f, bcast_mac, 1, peer_mac, 0, OUR_IP);
	assert_int_equal(rx_flags(n, f, len, 0, &m, &u), KITE_NET_REPLY);
	rte_pktmbuf_free(m);
	len = arp_frame(f, bcast_mac, 1, peer_mac, BCAST_IP, OTHER_IP);
	expect_drop(n, f, len, KITE_NET_DROP_NOT_US);
	assert_int_equal(kite_net_arp_lookup(n, BCAST_IP, &mac), -ENOENT);
	assert_int_equal(kite_net_stats(n)->arp_learned, 2);
}

static void
wide_subnet(struct kite_net_conf *c)
{
	c->netmask = 0xffff0000u;
}

static void
test_arp_table_full(void **state)
{
	struct kite_net *n = net_with(wide_subnet);
	struct rte_ether_addr mac;
	struct rte_mbuf *m;
	struct kite_net_udp u;
	uint8_t f[64], sha[6] = { 0x02, 0, 0, 0, 0, 0 };
	const uint32_t first = 0xc6120100u, count = 2000;
	unsigned int found = 0;
	size_t len;

	(void)state;
	kite_net_tick(n, T0); /* the stack's clock */
	/* Far more neighbours than slots: the table keeps working and keeps the newest. */
	for (uint32_t i = 0; i < count; i++) {
		m = rte_pktmbuf_alloc(pool);
		assert_int_equal(kite_net_arp_request(n, m, first + i), 0);
		rte_pktmbuf_free(m);
		put32(sha + 2, i + 1);
		len = arp_frame(f, our_mac, 2, sha, first + i, OUR_IP);
		m = mbuf_of(f, len);
		assert_int_equal(kite_net_rx(n, &m, T0 + i, &u), KITE_NET_HELD);
	}
	assert_int_equal(kite_net_stats(n)->arp_learned, count);
	put32(sha + 2, count);
	assert_int_equal(kite_net_arp_lookup(n, first + count - 1, &mac), 0);
	assert_memory_equal(mac.addr_bytes, sha, 6);
	for (uint32_t i = 0; i < count; i++) {
		if (kite_net_arp_lookup(n, first + i, &mac) == 0) {
			put32(sha + 2, i + 1);
			assert_memory_equal(mac.addr_bytes, sha, 6);
			found++;
		}
	}
	assert_true(found > 128 && found <= 256);
	assert_int_equal(kite_net_arp_lookup(n, first + 2 * count, &mac), -ENOENT);
	kite_net_free(n);
}

static void
test_arp_request_builder(void **state)
{
	struct kite_net *n = *state;
	static const uint8_t want[60] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
		0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00,
		0x00, 0x00, 0x00, 0x01, 0xc6, 0x12, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0xc6, 0x12, 0x00, 0x03, 0,	  0,	0,    0,    0,	  0,
		0,    0,    0,	  0,	0,    0,    0,	  0,	0,    0,    0,	  0,
	};
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	uint8_t out[128];

	assert_non_null(m);
	assert_int_equal(kite_net_arp_request(n, m, OTHER_IP), 0);
	assert_int_equal(flatten(m, out, sizeof(out)), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	rte_pktmbuf_free(m);

	m = rte_pktmbuf_alloc(tiny_pool);
	assert_non_null(m);
	assert_int_equal(kite_net_arp_request(n, m, OTHER_IP), -ENOSPC);
	assert_int_equal(rte_pktmbuf_pkt_len(m), 0);
	rte_pktmbuf_free(m);
}

/* ---- ICMP ---- */

static size_t
echo_frame(uint8_t *f, uint8_t type, uint16_t ident, size_t plen)
{
	size_t o = put_eth(f, our_mac, peer_mac, ET_IPV4);
	uint8_t *icmp;

	o += put_ip(f + o, (uint16_t)(20 + 8 + plen), 0x4242, 0x4000, 1, PEER_IP, OUR_IP);
	/* A ping that has come a long way: the reply must not inherit its TTL. */
	f[22] = 3;
	fix_ip_csum(f + 14);
	icmp = f + o;
	icmp[0] = type;
	icmp[1] = 0;
	put16(icmp + 2, 0);
	put16(icmp + 4, ident);
	put16(icmp + 6, 1);
	fill_pattern(icmp + 8, plen, ident);
	put16(icmp + 2, ref_cksum(icmp, 8 + plen));
	return o + 8 + plen;
}

static void
test_icmp_echo(void **state)
{
	struct kite_net *n = *state;
	uint8_t f[256], out[256], want_payload[64];
	struct rte_mbuf *m;
	struct kite_net_udp u;
	size_t len, plen = 37;

	/* Many identifiers, so the patched checksum meets many values. */
	for (uint16_t ident = 0; ident < 512; ident++) {
		len = echo_frame(f, 8, (uint16_t)(ident * 131), plen);
		assert_int_equal(rx_flags(n, f, len, 0, &m, &u), KITE_NET_REPLY);
		assert_int_equal(flatten(m, out, sizeof(out)), len);
		rte_pktmbuf_free(m);

		assert_memory_equal(out, peer_mac, 6);
		assert_memory_equal(out + 6, our_mac, 6);
		assert_int_equal(get16(out + 12), ET_IPV4);
		assert_int_equal(out[14], 0x45);
		assert_int_equal(get16(out + 16), 20 + 8 + plen);
		assert_int_equal(out[22], 64);
		assert_int_equal(out[23], 1);
		assert_int_equal(get32(out + 26), OUR_IP);
		assert_int_equal(get32(out + 30), PEER_IP);
		assert_int_equal(ref_fold(ref_sum(out + 14, 20, 0)), 0xffff);
		assert_int_equal(out[34], 0);
		assert_int_equal(out[35], 0);
		assert_int_equal(get16(out + 38), (uint16_t)(ident * 131));
		assert_int_equal(get16(out + 40), 1);
		fill_pattern(want_payload, plen, (uint16_t)(ident * 131));
		assert_memory_equal(out + 42, want_payload, plen);
		assert_int_equal(ref_fold(ref_sum(out + 34, 8 + plen, 0)), 0xffff);
	}
	assert_int_equal(kite_net_stats(n)->icmp_echo, 512);

	/* Ethernet padding is not echoed back. */
	len = echo_frame(f, 8, 7, 0);
	memset(f + len, 0x55, 60 - len);
	assert_int_equal(rx_flags(n, f, 60, 0, &m, &u), KITE_NET_REPLY);
	assert_int_equal(rte_pktmbuf_pkt_len(m), len);
	rte_pktmbuf_free(m);
}

static void
test_icmp_bad(void **state)
{
	struct kite_net *n = *state;
	uint8_t f[256];
	size_t len;

	len = echo_frame(f, 8, 1, 16);
	f[40] ^= 0x01; /* payload no longer matches the checksum */
	expect_drop(n, f, len, KITE_NET_DROP_ICMP);
	len = echo_frame(f, 0, 1, 16); /* an echo reply */
	expect_drop(n, f, len, KITE_NET_DROP_ICMP);
	len = echo_frame(f, 13, 1, 16); /* timestamp */
	expect_drop(n, f, len, KITE_NET_DROP_ICMP);
	len = echo_frame(f, 8, 1, 16);
	f[35] = 1; /* code */
	put16(f + 36, 0);
	put16(f + 36, ref_cksum(f + 34, 24));
	expect_drop(n, f, len, KITE_NET_DROP_ICMP);
	/* Shorter than an ICMP header. */
	len = echo_frame(f, 8, 1, 0);
	put16(f + 16, 20 + 4);
	fix_ip_csum(f + 14);
	expect_drop(n, f, len, KITE_NET_DROP_ICMP);
	/* Larger than our MTU (its reply could not leave whole): refused, not "answered". */
	static uint8_t big[1600];
	len = echo_frame(big, 8, 1, 1500 - 28 + 1);
	expect_drop(n, big, len, KITE_NET_DROP_ICMP);
	len = echo_frame(big, 8, 1, 1500 - 28);
	struct rte_mbuf *m;
	struct kite_net_udp u;
	assert_int_equal(rx_flags(n, big, len, 0, &m, &u), KITE_NET_REPLY);
	rte_pktmbuf_free(m);
	assert_int_equal(kite_net_stats(n)->icmp_echo, 1);
}

/* ---- IPv4 ---- */

static void
test_ipv4_bad(void **state)
{
	struct kite_net *n = *state;
	uint8_t f[256], g[256], p[16];
	size_t len;

	fill_pattern(p, sizeof(p), 3);
	len = udp_frame(f, PORT, p, sizeof(p), true);
	expect_udp(n, f, len, 0);

	expect_drop(n, f, 14 + 19, KITE_NET_DROP_RUNT);

	memcpy(g, f, len);
	g[14] = 0x65;
	fix_ip_csum(g + 14);
	expect_drop(n, g, len, KITE_NET_DROP_IP_BAD);

	memcpy(g, f, len);
	g[14] = 0x44;
	expect_drop(n, g, len, KITE_NET_DROP_IP_BAD);

	/* Same datagram with a 4-byte option (NOP x4), checksum right. */
	memcpy(g, f, 34);
	memset(g + 34, 1, 4);
	memcpy(g + 38, f + 34, len - 34);
	g[14] = 0x46;
	put16(g + 16, (uint16_t)(get16(f + 16) + 4));
	fix_ip_csum(g + 14);
	expect_drop(n, g, len + 4, KITE_NET_DROP_IP_OPTIONS);

	memcpy(g, f, len);
	put16(g + 16, 19);
	fix_ip_csum(g + 14);
	expect_drop(n, g, len, KITE_NET_DROP_IP_BAD);

	memcpy(g, f, len);
	put16(g + 16, (uint16_t)(len - 14 + 1));
	fix_ip_csum(g + 14);
	expect_drop(n, g, len, KITE_NET_DROP_RUNT);

	memcpy(g, f, len);
	g[24] ^= 0x10;
	expect_drop(n, g, len, KITE_NET_DROP_IP_CSUM);

	memcpy(g, f, len);
	put32(g + 30, OTHER_IP);
	fix_ip_csum(g + 14);
	expect_drop(n, g, len, KITE_NET_DROP_NOT_US);
	memcpy(g, f, len);
	put32(g + 30, BCAST_IP);
	fix_ip_csum(g + 14);
	expect_drop(n, g, len, KITE_NET_DROP_NOT_US);

	static const uint32_t bad_src[] = { 0, 0xffffffffu, 0xe0000001u, 0xf0000001u, BCAST_IP };
	for (size_t i = 0; i < sizeof(bad_src) / sizeof(bad_src[0]); i++) {
		memcpy(g, f, len);
		put32(g + 26, bad_src[i]);
		fix_ip_csum(g + 14);
		expect_drop(n, g, len, KITE_NET_DROP_BCAST_SRC);
	}

	memcpy(g, f, len);
	g[23] = 6; /* TCP */
	fix_ip_csum(g + 14);
	expect_drop(n, g, len, KITE_NET_DROP_PROTO);

	/* Sources off our subnet are fine: they come through a router. */
	memcpy(g, f, len);
	put32(g + 26, OFFNET_IP);
	fix_ip_csum(g + 14);
	put16(g + 40, 0);
	expect_udp(n, g, len, 0);
}

static void
ip_offload(struct kite_net_conf *c)
{
	c->rx_ip_csum_offload = true;
}

static void
test_ip_csum_offload(void **state)
{
	struct kite_net *n = net_with(ip_offload);
	uint8_t f[128], p[8] = { 0 };
	size_t len = udp_frame(f, PORT, p, sizeof(p), false);

	(void)state;
	expect_udp(n, f, len, RTE_MBUF_F_RX_IP_CKSUM_GOOD);
	expect_drop_flags(n, f, len, RTE_MBUF_F_RX_IP_CKSUM_BAD, KITE_NET_DROP_IP_CSUM);
	f[24] ^= 0x40;
	/* The port vouched for it. */
	expect_udp(n, f, len, RTE_MBUF_F_RX_IP_CKSUM_GOOD);
	/* The port did not look: checked here. */
	expect_drop_flags(n, f, len, RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN, KITE_NET_DROP_IP_CSUM);
	kite_net_free(n);

	/* Without the conf flag the mbuf's flags are ignored. */
	n = *state;
	expect_drop_flags(n, f, len, RTE_MBUF_F_RX_IP_CKSUM_GOOD, KITE_NET_DROP_IP_CSUM);
}

/* ---- UDP ---- */

static void
test_udp_good(void **state)
{
	struct kite_net *n = *state;
	uint8_t f[512], p[301];
	struct rte_mbuf *m;
	struct kite_net_udp u;
	size_t len;

	fill_pattern(p, sizeof(p), 9);
	len = udp_frame(f, PORT + 2, p, sizeof(p), true);
	memset(&u, 0xee, sizeof(u));
	assert_int_equal(rx_flags(n, f, len, 0, &m, &u), KITE_NET_UDP);
	assert_memory_equal(u.src_mac.addr_bytes, peer_mac, 6);
	assert_int_equal(u.src_ip, PEER_IP);
	assert_int_equal(u.dst_ip, OUR_IP);
	assert_int_equal(u.src_port, PEER_PORT);
	assert_int_equal(u.dst_port, PORT + 2);
	assert_int_equal(u.payload_off, 42);
	assert_int_equal(u.payload_len, sizeof(p));
	assert_memory_equal(rte_pktmbuf_mtod_offset(m, uint8_t *, u.payload_off), p, sizeof(p));
	rte_pktmbuf_free(m);

	/* Payload across two segments, split at an odd offset. */
	m = mbuf_of_split(f, len, 42 + 101);
	assert_int_equal(kite_net_rx(n, &m, T0, &u), KITE_NET_UDP);
	assert_int_equal(u.payload_len, sizeof(p));
	rte_pktmbuf_free(m);
	f[len - 1] ^= 0x01;
	expect_drop_m(n, mbuf_of_split(f, len, 42 + 101), KITE_NET_DROP_UDP_CSUM);

	assert_int_equal(kite_net_stats(n)->udp_datagrams, 2);
	assert_int_equal(kite_net_stats(n)->rx_packets, 3);
}

static void
test_udp_zero_csum(void **state)
{
	struct kite_net *n = *state;
	uint8_t f[128], p[9];
	size_t len;

	fill_pattern(p, sizeof(p), 1);
	len = udp_frame(f, PORT, p, sizeof(p), false);
	assert_int_equal(get16(f + 40), 0);
	expect_udp(n, f, len, 0);
	/* "None" even when the payload is corrupt: nothing to check it against. */
	f[len - 1] ^= 0xff;
	expect_udp(n, f, len, 0);
	assert_int_equal(kite_net_stats(n)->udp_datagrams, 2);
}

static void
test_udp_bad_csum(void **state)
{
	struct kite_net *n = *state;
	uint8_t f[128], p[10];
	size_t len;

	fill_pattern(p, sizeof(p), 2);
	len = udp_frame(f, PORT, p, sizeof(p), true);
	f[len - 3] ^= 0x20;
	expect_drop(n, f, len, KITE_NET_DROP_UDP_CSUM);
	len = udp_frame(f, PORT, p, sizeof(p), true);
	put16(f + 40, (uint16_t)(get16(f + 40) + 1));
	expect_drop(n, f, len, KITE_NET_DROP_UDP_CSUM);
	/* The pseudo header counts too: a different source breaks it. */
	len = udp_frame(f, PORT, p, sizeof(p), true);
	put32(f + 26, OTHER_IP);
	fix_ip_csum(f + 14);
	expect_drop(n, f, len, KITE_NET_DROP_UDP_CSUM);
	assert_int_equal(kite_net_stats(n)->udp_datagrams, 0);
}

static void
test_udp_bad_len(void **state)
{
	struct kite_net *n = *state;
	uint8_t f[128], p[12];
	size_t len;

	fill_pattern(p, sizeof(p), 4);
	len = udp_frame(f, PORT, p, sizeof(p), false);
	put16(f + 38, 7);
	expect_drop(n, f, len, KITE_NET_DROP_UDP_BAD);
	put16(f + 38, (uint16_t)(8 + sizeof(p) - 1));
	expect_drop(n, f, len, KITE_NET_DROP_UDP_BAD);
	put16(f + 38, (uint16_t)(8 + sizeof(p) + 1));
	expect_drop(n, f, len, KITE_NET_DROP_UDP_BAD);
	/* IP carries fewer bytes than a UDP header. */
	len = udp_frame(f, PORT, p, sizeof(p), false);
	put16(f + 16, 20 + 6);
	fix_ip_csum(f + 14);
	expect_drop(n, f, len, KITE_NET_DROP_UDP_BAD);
}

static void
test_udp_port(void **state)
{
	struct kite_net *n = *state;
	uint8_t f[128], p[4] = { 9, 9, 9, 9 };
	size_t len;

	expect_udp(n, f, udp_frame(f, PORT, p, sizeof(p), true), 0);
	expect_udp(n, f, udp_frame(f, PORT + PORTS - 1, p, sizeof(p), true), 0);
	len = udp_frame(f, PORT - 1, p, sizeof(p), true);
	expect_drop(n, f, len, KITE_NET_DROP_UDP_PORT);
	len = udp_frame(f, PORT + PORTS, p, sizeof(p), true);
	expect_drop(n, f, len, KITE_NET_DROP_UDP_PORT);
	len = udp_frame(f, 53, p, sizeof(p), true);
	expect_drop(n, f, len, KITE_NET_DROP_UDP_PORT);
}

static void
l4_offload(struct kite_net_conf *c)
{
	c->rx_l4_csum_offload = true;
}

static void
test_udp_csum_offload(void **state)
{
	struct kite_net *n = net_with(l4_offload);
	uint8_t f[128], p[6] = { 1, 2, 3, 4, 5, 6 };
	size_t len = udp_frame(f, PORT, p, sizeof(p), true);

	(void)state;
	expect_udp(n, f, len, RTE_MBUF_F_RX_L4_CKSUM_GOOD);
	expect_drop_flags(n, f, len, RTE_MBUF_F_RX_L4_CKSUM_BAD, KITE_NET_DROP_UDP_CSUM);
	f[len - 1] ^= 0x01;
	expect_udp(n, f, len, RTE_MBUF_F_RX_L4_CKSUM_GOOD);
	expect_drop_flags(n, f, len, RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN, KITE_NET_DROP_UDP_CSUM);
	kite_net_free(n);

	n = *state;
	expect_drop_flags(n, f, len, RTE_MBUF_F_RX_L4_CKSUM_GOOD, KITE_NET_DROP_UDP_CSUM);
}

static void
test_eth_padding_trimmed(void **state)
{
	struct kite_net *n = *state;
	uint8_t f[128], p[4] = { 0xde, 0xad, 0xbe, 0xef };
	struct rte_mbuf *m;
	struct kite_net_udp u;
	size_t len = udp_frame(f, PORT, p, sizeof(p), true);

	assert_int_equal(len, 46);
	memset(f + len, 0xa5, 60 - len);
	assert_int_equal(rx_flags(n, f, 60, 0, &m, &u), KITE_NET_UDP);
	assert_int_equal(rte_pktmbuf_pkt_len(m), 46);
	assert_int_equal(rte_pktmbuf_data_len(m), 46);
	assert_int_equal(u.payload_len, 4);
	rte_pktmbuf_free(m);

	/* Padding in a segment of its own: that segment goes back to the pool. */
	m = mbuf_of_split(f, 60, 46);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base + 2);
	assert_int_equal(kite_net_rx(n, &m, T0, &u), KITE_NET_UDP);
	assert_int_equal(m->nb_segs, 1);
	assert_int_equal(rte_pktmbuf_pkt_len(m), 46);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base + 1);
	rte_pktmbuf_free(m);

	/* Padding that would spoil a checksum unless it is cut first. */
	m = mbuf_of_split(f, 60, 44);
	assert_int_equal(kite_net_rx(n, &m, T0, &u), KITE_NET_UDP);
	assert_int_equal(rte_pktmbuf_pkt_len(m), 46);
	assert_int_equal(m->nb_segs, 2);
	rte_pktmbuf_free(m);
}

static void
test_rx_counts(void **state)
{
	struct kite_net *n = *state;
	uint8_t f[128], p[1] = { 0 };
	size_t len = udp_frame(f, PORT, p, sizeof(p), true);
	const struct kite_net_stats *s = kite_net_stats(n);

	for (int i = 0; i < 5; i++)
		expect_udp(n, f, len, 0);
	expect_drop(n, f, 10, KITE_NET_DROP_RUNT);
	assert_int_equal(s->rx_packets, 6);
	assert_int_equal(s->udp_datagrams, 5);
	assert_int_equal(s->drops[KITE_NET_DROP_RUNT], 1);
}

/* ---- fragments ---- */

#define BIG_PAYLOAD 2992 /* a 3000-byte UDP datagram */

static size_t
big_datagram(uint8_t *l4, unsigned int seed, bool csum)
{
	uint8_t p[BIG_PAYLOAD];

	fill_pattern(p, sizeof(p), seed);
	return put_udp(l4, PEER_IP, OUR_IP, PEER_PORT, PORT + 1, p, sizeof(p), csum);
}

static void
check_whole(struct rte_mbuf *m, const struct kite_net_udp *u, const uint8_t *l4, size_t l4len)
{
	static uint8_t out[70000];

	assert_int_equal(rte_pktmbuf_pkt_len(m), 34 + l4len);
	assert_int_equal(flatten(m, out, sizeof(out)), 34 + l4len);
	assert_int_equal(get16(out + 16), 20 + l4len);
	assert_int_equal(get16(out + 20) & 0x3fff, 0);
	assert_memory_equal(out + 34, l4, l4len);
	assert_int_equal(u->payload_off, 42);
	assert_int_equal(u->payload_len, l4len - 8);
	assert_int_equal(u->src_ip, PEER_IP);
	assert_int_equal(u->src_port, PEER_PORT);
	assert_int_equal(u->dst_port, PORT + 1);
}

/* Send fragment i of the three at fo[i]/fl[i]; returns the verdict. */
static enum kite_net_verdict
send_frag(struct kite_net *n, uint16_t id, const uint8_t *l4, uint32_t ofs, uint32_t len, bool more,
	  uint64_t tsc, struct rte_mbuf **out, struct kite_net_udp *u)
{
	uint8_t f[2048];
	size_t flen = frag_frame(f, id, 17, l4, ofs, len, more);

	*out = mbuf_of(f, flen);
	return kite_net_rx(n, out, tsc, u);
}

static const uint32_t fo[3] = { 0, 1480, 2960 };
static const uint32_t fl[3] = { 1480, 1480, 40 };

static void
test_frag_in_order(void **state)
{
	struct kite_net *n = *state;
	static uint8_t l4[4096];
	size_t l4len = big_datagram(l4, 5, true);
	struct rte_mbuf *m;
	struct kite_net_udp u;

	assert_int_equal(l4len, 3000);
	assert_int_equal(send_frag(n, 0x77, l4, fo[0], fl[0], true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 0x77, l4, fo[1], fl[1], true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base + 2);
	assert_int_equal(send_frag(n, 0x77, l4, fo[2], fl[2], false, T0, &m, &u), KITE_NET_UDP);
	assert_int_equal(m->nb_segs, 3);
	check_whole(m, &u, l4, l4len);
	rte_pktmbuf_free(m);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base);

	assert_int_equal(kite_net_stats(n)->frag_packets, 3);
	assert_int_equal(kite_net_stats(n)->reassembled, 1);
	assert_int_equal(kite_net_stats(n)->udp_datagrams, 1);
	assert_int_equal(drops_total(n), 0);
}

static void
test_frag_all_orders(void **state)
{
	struct kite_net *n = *state;
	static const int order[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
					 { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
	static uint8_t l4[4096];
	struct rte_mbuf *m;
	struct kite_net_udp u;

	for (int k = 0; k < 6; k++) {
		size_t l4len = big_datagram(l4, (unsigned int)k, true);
		uint16_t id = (uint16_t)(0x100 + k);

		for (int j = 0; j < 3; j++) {
			int i = order[k][j];
			enum kite_net_verdict v =
				send_frag(n, id, l4, fo[i], fl[i], i != 2, T0, &m, &u);

			assert_int_equal(v, j == 2 ? KITE_NET_UDP : KITE_NET_HELD);
		}
		check_whole(m, &u, l4, l4len);
		rte_pktmbuf_free(m);
	}
	assert_int_equal(kite_net_stats(n)->reassembled, 6);
	assert_int_equal(kite_net_stats(n)->frag_packets, 18);
	assert_int_equal(drops_total(n), 0);
}

static void
test_frag_interleaved(void **state)
{
	struct kite_net *n = *state;
	static uint8_t a[4096], b[4096];
	size_t alen = big_datagram(a, 1, true), blen = big_datagram(b, 2, true);
	struct rte_mbuf *m;
	struct kite_net_udp u;

	assert_int_equal(send_frag(n, 1, a, fo[0], fl[0], true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 2, b, fo[2], fl[2], false, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 1, a, fo[2], fl[2], false, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 2, b, fo[0], fl[0], true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 2, b, fo[1], fl[1], true, T0, &m, &u), KITE_NET_UDP);
	check_whole(m, &u, b, blen);
	rte_pktmbuf_free(m);
	assert_int_equal(send_frag(n, 1, a, fo[1], fl[1], true, T0, &m, &u), KITE_NET_UDP);
	check_whole(m, &u, a, alen);
	rte_pktmbuf_free(m);
}

static void
test_frag_padded_last(void **state)
{
	struct kite_net *n = *state;
	uint8_t l4[2048], p[1480], f[128];
	struct rte_mbuf *m;
	struct kite_net_udp u;
	size_t l4len, flen;

	/* 1488 bytes of UDP: the last fragment carries 8 and arrives padded. */
	fill_pattern(p, sizeof(p), 77);
	l4len = put_udp(l4, PEER_IP, OUR_IP, PEER_PORT, PORT + 1, p, sizeof(p), true);
	assert_int_equal(l4len, 1488);
	flen = frag_frame(f, 9, 17, l4, 1480, 8, false);
	assert_int_equal(flen, 42);
	memset(f + flen, 0xcc, 60 - flen);
	m = mbuf_of(f, 60);
	assert_int_equal(kite_net_rx(n, &m, T0, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 9, l4, 0, 1480, true, T0, &m, &u), KITE_NET_UDP);
	check_whole(m, &u, l4, l4len);
	rte_pktmbuf_free(m);
}

static void
test_frag_bad_udp(void **state)
{
	struct kite_net *n = net_with(l4_offload);
	static uint8_t l4[4096];
	struct rte_mbuf *m;
	struct kite_net_udp u;
	uint8_t f[2048];
	size_t flen;

	(void)state;
	big_datagram(l4, 3, true);
	l4[2000] ^= 0x80;
	/* The head fragment claims a good L4 checksum; a NIC cannot know that. */
	flen = frag_frame(f, 5, 17, l4, fo[0], fl[0], true);
	m = mbuf_of(f, flen);
	m->ol_flags = RTE_MBUF_F_RX_L4_CKSUM_GOOD;
	assert_int_equal(kite_net_rx(n, &m, T0, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 5, l4, fo[1], fl[1], true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 5, l4, fo[2], fl[2], false, T0, &m, &u), KITE_NET_DROP);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_UDP_CSUM], 1);
	assert_int_equal(kite_net_stats(n)->reassembled, 1);
	/* DROP hands the whole chain back to the caller. */
	assert_int_equal(m->nb_segs, 3);
	rte_pktmbuf_free(m);

	/* Reassembled, then the UDP length disagrees with IP's. */
	big_datagram(l4, 3, false);
	put16(l4 + 4, 2999);
	assert_int_equal(send_frag(n, 6, l4, fo[0], fl[0], true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 6, l4, fo[1], fl[1], true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 6, l4, fo[2], fl[2], false, T0, &m, &u), KITE_NET_DROP);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_UDP_BAD], 1);
	rte_pktmbuf_free(m);
	kite_net_free(n);
}

/*
 * A copy of a fragment already held (retransmitted, or spoofed by someone
 * who saw the first) is dropped and counted; DPDK alone would discard the
 * whole datagram on a second first or last fragment. Every order of a
 * datagram with one fragment sent twice still completes, and a datagram
 * that completed may use its IP id again.
 */
static void
test_frag_duplicates(void **state)
{
	struct kite_net *n = *state;
	static uint8_t l4[4096];
	size_t l4len = big_datagram(l4, 7, true);
	struct rte_mbuf *m;
	struct kite_net_udp u;
	uint64_t dups = 0;

	for (int dup = 0; dup < 3; dup++) {
		for (int first = 0; first < 3; first++) {
			const uint16_t id = (uint16_t)(0x400 + dup * 3 + first);
			/*
			 * Fragment `first`, then the other two; `dup` goes twice in
			 * a row, never as the one that completes the datagram.
			 */
			int seq[3] = { first, first == 0 ? 1 : 0, first == 2 ? 1 : 2 }, order[4], k = 0;

			if (seq[2] == dup) {
				seq[2] = seq[1];
				seq[1] = dup;
			}
			for (int i = 0; i < 3; i++) {
				order[k++] = seq[i];
				if (seq[i] == dup)
					order[k++] = seq[i];
			}
			assert_int_equal(k, 4);
			for (int i = 0; i < k; i++) {
				enum kite_net_verdict v = send_frag(n, id, l4, fo[order[i]], fl[order[i]],
								    order[i] < 2, T0, &m, &u);
				if (i == k - 1) {
					assert_int_equal(v, KITE_NET_UDP);
					check_whole(m, &u, l4, l4len);
					rte_pktmbuf_free(m);
				} else if (v == KITE_NET_DROP) {
					rte_pktmbuf_free(m);
					dups++;
				} else {
					assert_int_equal(v, KITE_NET_HELD);
				}
			}
		}
	}
	assert_int_equal(kite_net_stats(n)->reassembled, 9);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG_DUP], 9);
	assert_int_equal(dups, 9);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG], 0);
	/* The same id again once its datagram completed: a new datagram, not a copy. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(send_frag(n, 0x400, l4, fo[i], fl[i], i < 2, T0, &m, &u),
				 i < 2 ? KITE_NET_HELD : KITE_NET_UDP);
	rte_pktmbuf_free(m);
	assert_int_equal(kite_net_stats(n)->reassembled, 10);
	/* An overlapping fragment of another length is no copy: DPDK decides (it fails). */
	assert_int_equal(send_frag(n, 0x500, l4, fo[0], fl[0], true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 0x500, l4, fo[0], fl[0] - 8, true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG_DUP], 9);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG], 2);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base);
}

static void
quota_flows(struct kite_net_conf *c)
{
	c->frag_max_flows = 64; /* a quarter: 16 reassemblies open per source */
	c->frag_timeout_ms = 100;
}

/*
 * A source may hold a quarter of the reassembly table: first fragments
 * that never complete are refused past it (counted), a datagram that
 * completes gives its token back, and one timeout period refills them.
 */
static void
test_frag_quota(void **state)
{
	struct kite_net *n = net_with(quota_flows);
	static uint8_t l4[4096];
	struct rte_mbuf *m;
	struct kite_net_udp u;

	(void)state;
	big_datagram(l4, 3, true);
	/* 40 whole datagrams in a row: each gives its token back. */
	for (uint16_t id = 0; id < 40; id++) {
		for (int k = 0; k < 3; k++) {
			enum kite_net_verdict v =
				send_frag(n, (uint16_t)(100 + id), l4, fo[k], fl[k], k < 2, T0, &m, &u);
			assert_int_equal(v, k < 2 ? KITE_NET_HELD : KITE_NET_UDP);
		}
		rte_pktmbuf_free(m);
	}
	assert_int_equal(kite_net_stats(n)->reassembled, 40);
	/* 16 first fragments that never complete are held; the 17th is refused. */
	for (uint16_t id = 0; id < 16; id++)
		assert_int_equal(send_frag(n, (uint16_t)(500 + id), l4, fo[0], fl[0], true, T0, &m, &u),
				 KITE_NET_HELD);
	assert_int_equal(send_frag(n, 600, l4, fo[0], fl[0], true, T0, &m, &u), KITE_NET_DROP);
	rte_pktmbuf_free(m);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG_QUOTA], 1);
	/* A later fragment of a datagram in the table is not a new reassembly. */
	assert_int_equal(send_frag(n, 500, l4, fo[1], fl[1], true, T0, &m, &u), KITE_NET_HELD);
	/* A timeout period later the stale ones are gone and the tokens back. */
	kite_net_tick(n, T0 + hz / 5);
	assert_int_equal(send_frag(n, 601, l4, fo[0], fl[0], true, T0 + hz / 5, &m, &u),
			 KITE_NET_HELD);
	kite_net_tick(n, T0 + hz);
	kite_net_free(n);
}

static void
test_frag_timeout(void **state)
{
	struct kite_net *n = *state;
	static uint8_t l4[4096];
	struct rte_mbuf *m;
	struct kite_net_udp u;

	big_datagram(l4, 8, true);
	assert_int_equal(send_frag(n, 0x55, l4, fo[0], fl[0], true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 0x55, l4, fo[2], fl[2], false, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base + 2);

	/* Within the default 500 ms nothing goes. */
	kite_net_tick(n, T0 + hz / 4);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base + 2);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG], 0);

	kite_net_tick(n, T0 + 3 * hz);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG], 2);

	/* The missing piece, late: it starts a datagram of its own. */
	assert_int_equal(send_frag(n, 0x55, l4, fo[1], fl[1], true, T0 + 3 * hz, &m, &u),
			 KITE_NET_HELD);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base + 1);

	/* A stale datagram is also dropped when its own next fragment finds it. */
	assert_int_equal(send_frag(n, 0x55, l4, fo[0], fl[0], true, T0 + 6 * hz, &m, &u),
			 KITE_NET_HELD);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG], 3);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base + 1);

	kite_net_tick(n, T0 + 9 * hz);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG], 4);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base);
	assert_int_equal(kite_net_stats(n)->reassembled, 0);
}

static void
short_timeout(struct kite_net_conf *c)
{
	c->frag_timeout_ms = 100;
	c->frag_max_flows = 2;
}

static void
test_frag_conf(void **state)
{
	struct kite_net *n = net_with(short_timeout);
	static uint8_t l4[4096];
	struct rte_mbuf *m;
	struct kite_net_udp u;
	uint16_t id;

	(void)state;
	big_datagram(l4, 8, true);
	assert_int_equal(send_frag(n, 1, l4, fo[0], fl[0], true, T0, &m, &u), KITE_NET_HELD);
	kite_net_tick(n, T0 + hz / 20);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base + 1);
	kite_net_tick(n, T0 + hz / 5);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base);

	/* Two datagrams in flight at most: later ones are dropped, not queued. */
	for (id = 10; id < 20; id++)
		assert_int_equal(send_frag(n, id, l4, fo[0], fl[0], true, T0, &m, &u),
				 KITE_NET_HELD);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG], 1 + 8);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base + 2);
	kite_net_free(n);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base);
}

static void
test_frag_bad(void **state)
{
	struct kite_net *n = *state;
	static uint8_t l4[70000];
	struct rte_mbuf *m;
	struct kite_net_udp u;
	uint8_t f[2048];
	size_t flen;

	big_datagram(l4, 4, true);

	/* The first fragment twice: the copy is dropped, the datagram still waits (DPDK alone would give up). */
	assert_int_equal(send_frag(n, 1, l4, 0, 1480, true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 1, l4, 0, 1480, true, T0, &m, &u), KITE_NET_DROP);
	rte_pktmbuf_free(m);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG], 0);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG_DUP], 1);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base + 1);

	/* Overlapping pieces: [0,16) [8,24) [24,32). */
	assert_int_equal(send_frag(n, 2, l4, 0, 16, true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 2, l4, 8, 16, true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 2, l4, 24, 8, false, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG], 3);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base + 1);

	/* A hole: [0,16) [8,24) then last [32,40); sizes add up, pieces do not. */
	assert_int_equal(send_frag(n, 3, l4, 0, 16, true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 3, l4, 8, 16, true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 3, l4, 32, 8, false, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG], 6);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base + 1);

	/* Ending past 64 KiB: refused before DPDK sees it; the caller frees. */
	assert_int_equal(send_frag(n, 4, l4, 65512, 8, false, T0, &m, &u), KITE_NET_DROP);
	rte_pktmbuf_free(m);
	assert_int_equal(send_frag(n, 4, l4, 65504, 8, false, T0, &m, &u), KITE_NET_HELD);
	/* Empty, and a middle piece that is not a multiple of 8 bytes. */
	assert_int_equal(send_frag(n, 5, l4, 8, 0, true, T0, &m, &u), KITE_NET_DROP);
	rte_pktmbuf_free(m);
	assert_int_equal(send_frag(n, 5, l4, 8, 13, true, T0, &m, &u), KITE_NET_DROP);
	rte_pktmbuf_free(m);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_FRAG], 9);

	/* Fragments of anything but UDP never reach the table. */
	flen = frag_frame(f, 6, 1, l4, 0, 64, true);
	expect_drop(n, f, flen, KITE_NET_DROP_ICMP);
	flen = frag_frame(f, 6, 6, l4, 0, 64, true);
	expect_drop(n, f, flen, KITE_NET_DROP_PROTO);
	assert_int_equal(kite_net_stats(n)->reassembled, 0);
	assert_int_equal(kite_net_stats(n)->frag_packets, 13);

	kite_net_tick(n, T0 + 10 * hz);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base);
}

static void
test_frag_free_held(void **state)
{
	struct kite_net *n = net_with(NULL);
	static uint8_t l4[4096];
	struct rte_mbuf *m;
	struct kite_net_udp u;

	(void)state;
	big_datagram(l4, 6, true);
	assert_int_equal(send_frag(n, 1, l4, fo[0], fl[0], true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 2, l4, fo[1], fl[1], true, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(send_frag(n, 2, l4, fo[2], fl[2], false, T0, &m, &u), KITE_NET_HELD);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base + 3);
	kite_net_free(n);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base);
}

/* ---- replies ---- */

static struct kite_net_udp
reply_to(void)
{
	struct kite_net_udp u;

	memset(&u, 0, sizeof(u));
	memcpy(u.src_mac.addr_bytes, peer_mac, 6);
	u.src_ip = PEER_IP;
	u.dst_ip = OUR_IP;
	u.src_port = PEER_PORT;
	u.dst_port = PORT + 3;
	return u;
}

/* The headers in front of payload, checked field by field. */
static void
check_reply_headers(const uint8_t *out, size_t plen)
{
	assert_memory_equal(out, peer_mac, 6);
	assert_memory_equal(out + 6, our_mac, 6);
	assert_int_equal(get16(out + 12), ET_IPV4);
	assert_int_equal(out[14], 0x45);
	assert_int_equal(out[15], 0);
	assert_int_equal(get16(out + 16), 28 + plen);
	assert_int_equal(get16(out + 20), 0x4000); /* DF, offset 0 */
	assert_int_equal(out[22], 64);
	assert_int_equal(out[23], 17);
	assert_int_equal(get32(out + 26), OUR_IP);
	assert_int_equal(get32(out + 30), PEER_IP);
	assert_int_equal(get16(out + 34), PORT + 3);
	assert_int_equal(get16(out + 36), PEER_PORT);
	assert_int_equal(get16(out + 38), 8 + plen);
}

static struct rte_mbuf *
payload_mbuf(const uint8_t *p, size_t len)
{
	return mbuf_of(p, len);
}

/*
 * The IPv4 header checksum (summed 32 bits at a time) against the RFC 1071
 * reference over many headers: 3,000 replies with every identifier value
 * they reach, random addresses, ports and lengths, each summing to all
 * ones; 3,000 received headers with random identifiers, TTLs and sources
 * taken, and each of them with one bit flipped in the identifier, the TTL,
 * the checksum or the source dropped as a bad checksum.
 */
static void
test_ip_csum_many(void **state)
{
	struct kite_net *n = *state;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	uint8_t f[256], out[256], p[64];

	fill_pattern(p, sizeof(p), 5);
	for (int i = 0; i < 3000; i++) {
		struct kite_net_udp u = reply_to();
		struct rte_mbuf *m;
		size_t plen;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		u.src_ip = (uint32_t)x;
		u.dst_ip = (uint32_t)(x >> 32);
		u.src_port = (uint16_t)(x >> 16);
		plen = (size_t)(x >> 40) % sizeof(p);
		m = payload_mbuf(p, plen);
		assert_int_equal(kite_net_udp_reply(n, m, &u), 0);
		assert_int_equal(flatten(m, out, sizeof(out)), 42 + plen);
		assert_int_equal(ref_fold(ref_sum(out + 14, 20, 0)), 0xffff);
		rte_pktmbuf_free(m);
	}
	for (int i = 0; i < 3000; i++) {
		static const uint8_t flip_at[] = {4, 5, 8, 10, 11, 12, 13, 14, 15};
		uint32_t src;
		size_t o, len;
		struct rte_mbuf *m;
		struct kite_net_udp u;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* A unicast source (multicast, broadcast and 0.x are dropped before the checksum). */
		src = 0x0a000001u + (uint32_t)(x % 0xfffffe);
		o = put_eth(f, our_mac, peer_mac, ET_IPV4);
		o += put_ip(f + o, 20 + 8 + 16, (uint16_t)(x >> 32), 0, 17, src, OUR_IP);
		f[14 + 8] = (uint8_t)(x >> 48) | 1; /* TTL */
		fix_ip_csum(f + 14);
		len = o + put_udp(f + o, src, OUR_IP, PEER_PORT, PORT, p, 16, false);
		assert_int_equal(rx_flags(n, f, len, 0, &m, &u), KITE_NET_UDP);
		assert_int_equal(u.src_ip, src);
		rte_pktmbuf_free(m);
		f[14 + flip_at[i % sizeof(flip_at)]] ^= (uint8_t)(1u << ((x >> 56) & 7));
		expect_drop(n, f, len, KITE_NET_DROP_IP_CSUM);
	}
}

static void
test_udp_reply_sw(void **state)
{
	struct kite_net *n = *state;
	struct kite_net_udp u = reply_to();
	uint8_t p[101], out[256];
	struct rte_mbuf *m;
	uint16_t id1;

	fill_pattern(p, sizeof(p), 21);
	m = payload_mbuf(p, sizeof(p));
	assert_int_equal(kite_net_udp_reply(n, m, &u), 0);
	assert_int_equal(flatten(m, out, sizeof(out)), 42 + sizeof(p));
	check_reply_headers(out, sizeof(p));
	assert_memory_equal(out + 42, p, sizeof(p));
	assert_int_equal(ref_fold(ref_sum(out + 14, 20, 0)), 0xffff);
	assert_int_not_equal(get16(out + 40), 0);
	assert_true(ref_udp_ok(OUR_IP, PEER_IP, out + 34, 8 + sizeof(p)));
	assert_int_equal(m->ol_flags & RTE_MBUF_F_TX_OFFLOAD_MASK, 0);
	id1 = get16(out + 18);
	rte_pktmbuf_free(m);

	/* Each datagram gets the next identifier. */
	m = payload_mbuf(p, 10);
	assert_int_equal(kite_net_udp_reply(n, m, &u), 0);
	flatten(m, out, sizeof(out));
	assert_int_equal(get16(out + 18), (uint16_t)(id1 + 1));
	assert_true(ref_udp_ok(OUR_IP, PEER_IP, out + 34, 8 + 10));
	rte_pktmbuf_free(m);

	/* An empty reply is still a datagram. */
	m = rte_pktmbuf_alloc(pool);
	assert_non_null(m);
	assert_int_equal(kite_net_udp_reply(n, m, &u), 0);
	assert_int_equal(flatten(m, out, sizeof(out)), 42);
	check_reply_headers(out, 0);
	assert_true(ref_udp_ok(OUR_IP, PEER_IP, out + 34, 8));
	rte_pktmbuf_free(m);
}

static void
tweak_no_udp_csum(struct kite_net_conf *c)
{
	c->tx_udp_csum_off = true;
}

static void
test_udp_reply_no_csum(void **state)
{
	struct kite_net *n = net_with(tweak_no_udp_csum);
	struct kite_net_udp u = reply_to();
	uint8_t p[64], out[128];
	struct rte_mbuf *m;

	(void)state;
	fill_pattern(p, sizeof(p), 5);
	m = payload_mbuf(p, sizeof(p));
	assert_int_equal(kite_net_udp_reply(n, m, &u), 0);
	assert_int_equal(flatten(m, out, sizeof(out)), 42 + sizeof(p));
	check_reply_headers(out, sizeof(p));
	/* The IPv4 header checksum is still right; UDP says "no checksum". */
	assert_int_equal(ref_fold(ref_sum(out + 14, 20, 0)), 0xffff);
	assert_int_equal(get16(out + 40), 0);
	assert_memory_equal(out + 42, p, sizeof(p));
	rte_pktmbuf_free(m);
	kite_net_free(n);
}

static void
neigh_mode(struct kite_net_conf *c)
{
	c->reply_to_frame = false;
}

#define GW_IP 0xc61200feu /* 198.18.0.254 */

static void
neigh_gw(struct kite_net_conf *c)
{
	c->reply_to_frame = false;
	c->gateway = GW_IP;
}

/* Everything kite_net_pending() hands out: ARP requests (their target) and replies (their MAC). */
static unsigned int
pending(struct kite_net *n, uint64_t tsc, uint32_t *arp_for, uint8_t (*reply_to)[6],
	unsigned int *nreplies)
{
	struct rte_mbuf *out[80];
	static uint8_t f[2048];
	unsigned int k = kite_net_pending(n, pool, tsc, out, RTE_DIM(out)), narp = 0;

	*nreplies = 0;
	for (unsigned int i = 0; i < k; i++) {
		size_t len = flatten(out[i], f, sizeof(f));

		assert_true(len >= 42);
		if (get16(f + 12) == 0x0806) {
			assert_memory_equal(f, bcast_mac, 6);
			assert_int_equal(get16(f + 20), 1);
			arp_for[narp++] = get32(f + 38);
		} else {
			assert_int_equal(get16(f + 12), 0x0800);
			memcpy(reply_to[(*nreplies)++], f, 6);
		}
		rte_pktmbuf_free(out[i]);
	}
	return narp;
}

static int
reply_of(struct kite_net *n, uint32_t to_ip, const uint8_t *frame_mac, struct rte_mbuf **mp)
{
	struct kite_net_udp u = reply_to();
	uint8_t p[100];

	fill_pattern(p, sizeof(p), 9);
	u.src_ip = to_ip;
	memcpy(u.src_mac.addr_bytes, frame_mac, 6);
	*mp = payload_mbuf(p, sizeof(p));
	return kite_net_udp_reply(n, *mp, &u);
}

/*
 * Replies go through the neighbour table (docs/security.rst): never to the
 * request frame's source MAC, which anyone on the segment can forge. An
 * unknown next hop holds the reply while ARP asks (once per 200 ms for the
 * node); the answer to that request releases it to the MAC ARP gave; an
 * answer nobody asked for changes nothing; a next hop that never answers
 * costs the reply after a second (counted); an off-link client needs the
 * gateway, else its reply is refused (counted).
 */
static void
test_neighbour_replies(void **state)
{
	struct kite_net *n = net_with(neigh_mode);
	static const uint8_t real_mac[6] = { 0x02, 0, 0, 0, 0, 0x77 };
	static const uint8_t forged[6] = { 0x02, 0, 0, 0, 0, 0x66 };
	uint8_t to[80][6], f[128];
	uint32_t asked[80];
	unsigned int nrep;
	struct rte_mbuf *m;
	struct kite_net_udp u;
	size_t len;

	(void)state;
	kite_net_tick(n, T0);
	/* Unknown next hop: held, one ARP request, nothing sent to the forged MAC. */
	assert_int_equal(reply_of(n, PEER_IP, forged, &m), 1);
	assert_int_equal(kite_net_stats(n)->neigh_held, 1);
	assert_int_equal(pending(n, T0, asked, to, &nrep), 1);
	assert_int_equal(asked[0], PEER_IP);
	assert_int_equal(nrep, 0);
	/* Asked again only after 200 ms, whoever asks. */
	assert_int_equal(pending(n, T0 + hz / 10, asked, to, &nrep), 0);
	assert_int_equal(pending(n, T0 + hz / 4, asked, to, &nrep), 1);
	/* The peer answers: the reply goes to the MAC it gave. */
	len = arp_frame(f, our_mac, 2, real_mac, PEER_IP, OUR_IP);
	m = mbuf_of(f, len);
	assert_int_equal(kite_net_rx(n, &m, T0 + hz / 4 + 10, &u), KITE_NET_HELD);
	assert_int_equal(kite_net_stats(n)->arp_learned, 1);
	assert_int_equal(pending(n, T0 + hz / 4 + 20, asked, to, &nrep), 0);
	assert_int_equal(nrep, 1);
	assert_memory_equal(to[0], real_mac, 6);
	/* Known now: addressed at once, whatever the frame's source said. */
	assert_int_equal(reply_of(n, PEER_IP, forged, &m), 0);
	assert_memory_equal(rte_pktmbuf_mtod(m, uint8_t *), real_mac, 6);
	rte_pktmbuf_free(m);
	/* An answer nobody asked for (ARP spoofing) changes nothing. */
	len = arp_frame(f, our_mac, 2, forged, PEER_IP, OUR_IP);
	m = mbuf_of(f, len);
	assert_int_equal(kite_net_rx(n, &m, T0 + 10 * hz, &u), KITE_NET_HELD);
	assert_int_equal(kite_net_stats(n)->arp_ignored, 1);
	assert_int_equal(reply_of(n, PEER_IP, forged, &m), 0);
	assert_memory_equal(rte_pktmbuf_mtod(m, uint8_t *), real_mac, 6);
	rte_pktmbuf_free(m);
	/* A ping is answered the same way. */
	len = echo_frame(f, 8, 0x77, 32);
	memcpy(f + 6, forged, 6);
	m = mbuf_of(f, len);
	assert_int_equal(kite_net_rx(n, &m, T0 + 10 * hz, &u), KITE_NET_REPLY);
	assert_memory_equal(rte_pktmbuf_mtod(m, uint8_t *), real_mac, 6);
	rte_pktmbuf_free(m);
	/* A next hop that never answers: the reply goes after a second, counted. */
	assert_int_equal(reply_of(n, OTHER_IP, forged, &m), 1);
	assert_int_equal(pending(n, T0 + 10 * hz, asked, to, &nrep), 1);
	assert_int_equal(asked[0], OTHER_IP);
	assert_int_equal(pending(n, T0 + 12 * hz, asked, to, &nrep), 1); /* asked once more */
	assert_int_equal(nrep, 0);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_UNRESOLVED], 1);
	/* At most 64 wait; the next is refused and stays the caller's. */
	for (int i = 0; i < 64; i++)
		assert_int_equal(reply_of(n, OTHER_IP, forged, &m), 1);
	assert_int_equal(reply_of(n, OTHER_IP, forged, &m), -EAGAIN);
	assert_int_equal(rte_pktmbuf_pkt_len(m), 100);
	rte_pktmbuf_free(m);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_UNRESOLVED], 2);
	/* Off-link without a gateway: no route, the caller's again. */
	assert_int_equal(reply_of(n, OFFNET_IP, forged, &m), -EHOSTUNREACH);
	assert_int_equal(rte_pktmbuf_pkt_len(m), 100);
	rte_pktmbuf_free(m);
	assert_int_equal(kite_net_stats(n)->drops[KITE_NET_DROP_NO_ROUTE], 1);
	/* Freed with 64 replies held: nothing leaks (teardown-style check below). */
	kite_net_free(n);
	assert_int_equal(rte_mempool_in_use_count(pool), pool_base);

	/* With a gateway: off-link replies go to its MAC. */
	n = net_with(neigh_gw);
	kite_net_tick(n, T0);
	assert_int_equal(reply_of(n, OFFNET_IP, forged, &m), 1);
	assert_int_equal(pending(n, T0, asked, to, &nrep), 1);
	assert_int_equal(asked[0], GW_IP);
	len = arp_frame(f, our_mac, 2, real_mac, GW_IP, OUR_IP);
	m = mbuf_of(f, len);
	assert_int_equal(kite_net_rx(n, &m, T0 + 5, &u), KITE_NET_HELD);
	assert_int_equal(pending(n, T0 + 6, asked, to, &nrep), 0);
	assert_int_equal(nrep, 1);
	assert_memory_equal(to[0], real_mac, 6);
	/* A learned entry used 30 s later is asked for again, and used meanwhile. */
	assert_int_equal(reply_of(n, OFFNET_IP, forged, &m), 0);
	rte_pktmbuf_free(m);
	kite_net_tick(n, T0 + 31 * hz);
	assert_int_equal(reply_of(n, OFFNET_IP, forged, &m), 0);
	assert_memory_equal(rte_pktmbuf_mtod(m, uint8_t *), real_mac, 6);
	rte_pktmbuf_free(m);
	assert_int_equal(pending(n, T0 + 31 * hz, asked, to, &nrep), 1);
	assert_int_equal(asked[0], GW_IP);
	/*
	 * The gateway moved (a request, then a gratuitous ARP, from its address
	 * with another MAC): asked again; still the old MAC until the answer.
	 */
	static const uint8_t moved[6] = { 0x02, 0, 0, 0, 0, 0x55 };
	len = arp_frame(f, bcast_mac, 1, moved, GW_IP, OUR_IP);
	m = mbuf_of(f, len);
	assert_int_equal(kite_net_rx(n, &m, T0 + 40 * hz, &u), KITE_NET_REPLY);
	rte_pktmbuf_free(m);
	len = arp_frame(f, bcast_mac, 1, moved, GW_IP, GW_IP);
	expect_drop(n, f, len, KITE_NET_DROP_NOT_US);
	assert_int_equal(reply_of(n, OFFNET_IP, forged, &m), 0);
	assert_memory_equal(rte_pktmbuf_mtod(m, uint8_t *), real_mac, 6);
	rte_pktmbuf_free(m);
	assert_int_equal(pending(n, T0 + 40 * hz, asked, to, &nrep), 1);
	assert_int_equal(asked[0], GW_IP);
	len = arp_frame(f, our_mac, 2, moved, GW_IP, OUR_IP);
	m = mbuf_of(f, len);
	assert_int_equal(kite_net_rx(n, &m, T0 + 40 * hz + 5, &u), KITE_NET_HELD);
	assert_int_equal(reply_of(n, OFFNET_IP, forged, &m), 0);
	assert_memory_equal(rte_pktmbuf_mtod(m, uint8_t *), moved, 6);
	rte_pktmbuf_free(m);
	kite_net_free(n);
}

/* The node's table, shared by the workers: static entries, asks, answers, the window. */
static void
test_neigh_table(void **state)
{
	struct kite_neigh *t = kite_neigh_create(16, SOCKET_ID_ANY);
	struct rte_ether_addr a = { { 0x02, 1, 2, 3, 4, 5 } }, b = { { 0x02, 9, 9, 9, 9, 9 } }, got;
	struct rte_ether_addr mcast = { { 0x01, 0, 0x5e, 0, 0, 1 } };
	uint64_t learned;

	(void)state;
	assert_non_null(t);
	assert_int_equal(kite_neigh_lookup(t, PEER_IP, &got, NULL), -ENOENT);
	assert_false(kite_neigh_answer(t, PEER_IP, &a, 100, 1000)); /* not asked */
	assert_true(kite_neigh_ask(t, PEER_IP, 100, 50));
	assert_false(kite_neigh_ask(t, PEER_IP, 120, 50)); /* paced */
	assert_int_equal(kite_neigh_lookup(t, PEER_IP, &got, NULL), -ENOENT); /* asked, unknown */
	assert_false(kite_neigh_answer(t, PEER_IP, &a, 2000, 1000)); /* too late */
	assert_true(kite_neigh_ask(t, PEER_IP, 2000, 50));
	assert_true(kite_neigh_answer(t, PEER_IP, &a, 2500, 1000));
	assert_int_equal(kite_neigh_lookup(t, PEER_IP, &got, &learned), 0);
	assert_memory_equal(got.addr_bytes, a.addr_bytes, 6);
	assert_int_equal(learned, 2500);
	/* Static: kept over any answer, learned reads UINT64_MAX. */
	assert_int_equal(kite_neigh_add_static(t, PEER_IP, &b), 0);
	assert_false(kite_neigh_ask(t, PEER_IP, 9000, 0));
	assert_false(kite_neigh_answer(t, PEER_IP, &a, 9000, 1000));
	assert_int_equal(kite_neigh_lookup(t, PEER_IP, &got, &learned), 0);
	assert_memory_equal(got.addr_bytes, b.addr_bytes, 6);
	assert_int_equal(learned, UINT64_MAX);
	assert_int_equal(kite_neigh_add_static(t, 0, &b), -EINVAL);
	assert_int_equal(kite_neigh_add_static(t, OTHER_IP, &mcast), -EINVAL);
	/* Many more addresses than slots: asks and answers go on, the newest stay. */
	for (uint32_t i = 0; i < 1000; i++) {
		assert_true(kite_neigh_ask(t, 0x0a000001u + i, 10000 + i, 0));
		assert_true(kite_neigh_answer(t, 0x0a000001u + i, &a, 10000 + i, 10));
	}
	assert_int_equal(kite_neigh_lookup(t, 0x0a000001u + 999, &got, NULL), 0);
	assert_int_equal(kite_neigh_lookup(t, PEER_IP, &got, NULL), 0); /* static: never evicted */
	kite_neigh_free(t);
	assert_null(kite_neigh_create(KITE_NEIGH_MAX + 1, SOCKET_ID_ANY));
}

static void
test_udp_reply_multiseg(void **state)
{
	struct kite_net *n = *state;
	struct kite_net_udp u = reply_to();
	uint8_t p[1200];
	static uint8_t out[4096];
	struct rte_mbuf *m;

	fill_pattern(p, sizeof(p), 33);
	/* Segments of 33 (odd), 70 and 1097 bytes. */
	m = payload_mbuf(p, 33);
	assert_int_equal(rte_pktmbuf_chain(m, payload_mbuf(p + 33, 70)), 0);
	assert_int_equal(rte_pktmbuf_chain(m, payload_mbuf(p + 103, sizeof(p) - 103)), 0);
	assert_int_equal(kite_net_udp_reply(n, m, &u), 0);
	assert_int_equal(m->nb_segs, 3);
	assert_int_equal(flatten(m, out, sizeof(out)), 42 + sizeof(p));
	check_reply_headers(out, sizeof(p));
	assert_memory_equal(out + 42, p, sizeof(p));
	assert_int_equal(ref_fold(ref_sum(out + 14, 20, 0)), 0xffff);
	assert_true(ref_udp_ok(OUR_IP, PEER_IP, out + 34, 8 + sizeof(p)));
	rte_pktmbuf_free(m);
}

static void
test_udp_reply_zero_csum(void **state)
{
	struct kite_net *n = *state;
	struct kite_net_udp u = reply_to();
	uint8_t hdr[8], p[2], out[64];
	uint16_t s0, x;
	struct rte_mbuf *m;

	/* Pick the two payload bytes that make the sum all ones, the checksum zero. */
	put16(hdr, PORT + 3);
	put16(hdr + 2, PEER_PORT);
	put16(hdr + 4, 10);
	put16(hdr + 6, 0);
	s0 = ref_fold(ref_sum(hdr, 8, ref_pseudo(OUR_IP, PEER_IP, 10)));
	x = (uint16_t)(0xffff - s0);
	put16(p, x);
	m = payload_mbuf(p, 2);
	assert_int_equal(kite_net_udp_reply(n, m, &u), 0);
	flatten(m, out, sizeof(out));
	assert_int_equal(get16(out + 40), 0xffff);
	assert_true(ref_udp_ok(OUR_IP, PEER_IP, out + 34, 10));
	rte_pktmbuf_free(m);
}

static void
tx_offload(struct kite_net_conf *c)
{
	c->tx_csum_offload = true;
}

static void
test_udp_reply_offload(void **state)
{
	struct kite_net *n = net_with(tx_offload);
	struct kite_net_udp u = reply_to();
	const uint64_t want = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;
	uint8_t p[55], out[128];
	struct rte_mbuf *m;

	(void)state;
	fill_pattern(p, sizeof(p), 44);
	m = payload_mbuf(p, sizeof(p));
	/* A recycled request mbuf: Rx flags stay, stale Tx requests go. */
	m->ol_flags = RTE_MBUF_F_RX_L4_CKSUM_GOOD | RTE_MBUF_F_TX_TCP_SEG;
	assert_int_equal(kite_net_udp_reply(n, m, &u), 0);
	assert_int_equal(m->ol_flags & RTE_MBUF_F_TX_OFFLOAD_MASK, want);
	assert_int_equal(m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK, RTE_MBUF_F_RX_L4_CKSUM_GOOD);
	assert_int_equal(m->l2_len, 14);
	assert_int_equal(m->l3_len, 20);
	assert_int_equal(flatten(m, out, sizeof(out)), 42 + sizeof(p));
	check_reply_headers(out, sizeof(p));
	assert_memory_equal(out + 42, p, sizeof(p));
	/* The port fills the IP checksum and finishes the UDP one from the pseudo-header sum. */
	assert_int_equal(get16(out + 24), 0);
	assert_int_equal(get16(out + 40), ref_fold(ref_pseudo(OUR_IP, PEER_IP, 8 + sizeof(p))));
	/* What the port will do: sum everything with that seed in place, complement. */
	put16(out + 40, (uint16_t)~ref_fold(ref_sum(out + 34, 8 + sizeof(p), 0)));
	assert_true(ref_udp_ok(OUR_IP, PEER_IP, out + 34, 8 + sizeof(p)));
	rte_pktmbuf_free(m);
	kite_net_free(n);
}

static void
test_udp_reply_errors(void **state)
{
	struct kite_net *n = *state;
	struct kite_net_udp u = reply_to();
	struct rte_mbuf *m, *seg;
	uint16_t room;

	/* No headroom left. */
	m = rte_pktmbuf_alloc(pool);
	assert_non_null(m);
	room = rte_pktmbuf_headroom(m);
	assert_non_null(rte_pktmbuf_prepend(m, room));
	assert_int_equal(kite_net_udp_reply(n, m, &u), -ENOSPC);
	assert_int_equal(rte_pktmbuf_pkt_len(m), room);
	rte_pktmbuf_free(m);

	/* More than one IPv4 datagram can carry: 33 x 2000 bytes. */
	m = rte_pktmbuf_alloc(pool);
	assert_non_null(m);
	assert_non_null(rte_pktmbuf_append(m, 2000));
	for (int i = 1; i < 33; i++) {
		seg = rte_pktmbuf_alloc(pool);
		assert_non_null(seg);
		assert_non_null(rte_pktmbuf_append(seg, 2000));
		assert_int_equal(rte_pktmbuf_chain(m, seg), 0);
	}
	assert_int_equal(kite_net_udp_reply(n, m, &u), -EMSGSIZE);
	assert_int_equal(rte_pktmbuf_pkt_len(m), 66000);
	rte_pktmbuf_free(m);
}

/* What kite_net_footprint() says a context takes is what it takes (within 2%). */
static void
tweak_flows(struct kite_net_conf *c)
{
	c->frag_max_flows = 4096;
}

static void
test_footprint(void **state)
{
	struct rte_malloc_socket_stats st;
	void (*tweaks[])(struct kite_net_conf *) = { NULL, tweak_flows };

	(void)state;
	for (unsigned int i = 0; i < 2; i++) {
		struct kite_net_conf c = test_conf();
		size_t before = 0, after = 0;
		struct kite_net *n;

		if (tweaks[i] != NULL)
			tweaks[i](&c);
		for (int sock = 0; sock < RTE_MAX_NUMA_NODES; sock++)
			if (rte_malloc_get_socket_stats(sock, &st) == 0)
				before += st.heap_allocsz_bytes;
		n = kite_net_create(&c, 1);
		assert_non_null(n);
		for (int sock = 0; sock < RTE_MAX_NUMA_NODES; sock++)
			if (rte_malloc_get_socket_stats(sock, &st) == 0)
				after += st.heap_allocsz_bytes;
		double used = (double)(after - before), said = (double)kite_net_footprint(&c);
		assert_true(said >= 0.98 * used && said <= 1.02 * used);
		kite_net_free(n);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eth_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_request_for_us, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_other_ip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_reply_learn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_table_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arp_request_builder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_priority_tag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test(test_neigh_table),
		cmocka_unit_test_setup_teardown(test_neighbour_replies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_icmp_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv4_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ip_csum_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ip_csum_offload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_zero_csum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_bad_csum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_bad_len, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_csum_offload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eth_padding_trimmed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frag_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frag_all_orders, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frag_interleaved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frag_padded_last, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frag_bad_udp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frag_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frag_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frag_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frag_conf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frag_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frag_free_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_reply_sw, setup, teardown),
		cmocka_unit_test(test_udp_reply_no_csum),
		cmocka_unit_test_setup_teardown(test_udp_reply_multiseg, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_reply_zero_csum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_reply_offload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_reply_errors, setup, teardown),
		cmocka_unit_test(test_footprint),
	};
	int rc;

	if (kite_test_eal_init("net") != 0)
		return 1;
	hz = rte_get_tsc_hz();
	/* No per-lcore cache, so rte_mempool_in_use_count() is exact. */
	pool = rte_pktmbuf_pool_create("test_net", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				       SOCKET_ID_ANY);
	tiny_pool = rte_pktmbuf_pool_create("test_net_tiny", 63, 0, 0, RTE_PKTMBUF_HEADROOM + 40,
					    SOCKET_ID_ANY);
	if (pool == NULL || tiny_pool == NULL) {
		fprintf(stderr, "mempool: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	rc = cmocka_run_group_tests_name("net", tests, NULL, NULL);
	rte_mempool_free(pool);
	rte_mempool_free(tiny_pool);
	rte_eal_cleanup();
	return rc;
}
