/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --write-pcap: the request stream as Ethernet frames in a pcap file, for
 * labs that replay traffic with pktgen-dpdk (tools/pktgen/). In pcap mode
 * nothing is sent: the generator runs on its own and its first
 * --pcap-count datagrams are written; in the other modes the first
 * datagrams of load lcore 0 are kept in memory during the run (no I/O on
 * the load path) and written at the end.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>

#include "kite_proto.h"

#include "bench.h"
#include "workload.h"

#define ETH_LEN 14
#define IP4_LEN 20
#define UDP_LEN 8

static uint32_t
sum16(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t
fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void
ip_header(uint8_t *ip, uint32_t src, uint32_t dst, uint16_t id, uint16_t len, uint16_t frag)
{
	memset(ip, 0, IP4_LEN);
	ip[0] = 0x45;
	kite_proto_put16(ip + 2, len);
	kite_proto_put16(ip + 4, id);
	kite_proto_put16(ip + 6, frag);
	ip[8] = 64;
	ip[9] = 17; /* UDP */
	kite_proto_put32(ip + 12, src);
	kite_proto_put32(ip + 16, dst);
	kite_proto_put16(ip + 10, fold(sum16(ip, IP4_LEN, 0)));
}

static void
dump(pcap_dumper_t *d, const uint8_t *frame, uint32_t len, uint64_t n)
{
	struct pcap_pkthdr h;

	/* Back-to-back timestamps, 1 us apart: pktgen sets its own rate. */
	h.ts.tv_sec = (time_t)(n / 1000000);
	h.ts.tv_usec = (suseconds_t)(n % 1000000);
	h.caplen = len;
	h.len = len;
	pcap_dump((u_char *)d, &h, frame);
}

long
pcap_write(const char *path, struct gen *const *gens, unsigned int n, const struct pcap_addrs *a,
	   char *err, size_t errlen)
{
	pcap_t *p = pcap_open_dead(DLT_EN10MB, 65535);
	pcap_dumper_t *d;
	uint8_t *frame = NULL, *udp = NULL;
	const uint32_t frag_payload = (uint32_t)((a->mtu - IP4_LEN) & ~7u);
	uint16_t ip_id = 1;
	long frames = 0;

	if (p == NULL) {
		snprintf(err, errlen, "pcap_open_dead failed");
		return -ENOMEM;
	}
	d = pcap_dump_open(p, path);
	if (d == NULL) {
		snprintf(err, errlen, "%s: %s", path, pcap_geterr(p));
		pcap_close(p);
		return -EIO;
	}
	frame = malloc(ETH_LEN + 65536);
	udp = malloc(65536);
	if (frame == NULL || udp == NULL) {
		snprintf(err, errlen, "out of memory");
		frames = -ENOMEM;
		goto out;
	}
	memcpy(frame, a->dst_mac, 6);
	memcpy(frame + 6, a->src_mac, 6);
	frame[12] = 0x08;
	frame[13] = 0x00;
	for (unsigned int gi = 0; gi < n; gi++) {
		for (uint32_t i = 0; i < gen_captured(gens[gi]); i++) {
			struct gen_capture c;
			uint32_t ulen, sum;
			uint16_t cs;

			gen_capture_get(gens[gi], i, &c);
			ulen = UDP_LEN + c.len;
			kite_proto_put16(udp, (uint16_t)(a->src_port_base + c.flow));
			kite_proto_put16(udp + 2, c.dst_port);
			kite_proto_put16(udp + 4, (uint16_t)ulen);
			kite_proto_put16(udp + 6, 0);
			memcpy(udp + UDP_LEN, c.data, c.len);
			/* A real checksum: replayed frames must pass any receiver. */
			sum = sum16(udp, ulen, 0);
			sum += (a->src_ip >> 16) + (a->src_ip & 0xffff) + (a->dst_ip >> 16) +
			       (a->dst_ip & 0xffff) + 17 + ulen;
			cs = fold(sum);
			kite_proto_put16(udp + 6, cs == 0 ? 0xffff : cs);
			if (ulen + IP4_LEN <= a->mtu) {
				uint32_t flen = ETH_LEN + IP4_LEN + ulen;
				ip_header(frame + ETH_LEN, a->src_ip, a->dst_ip, ip_id++,
					  (uint16_t)(IP4_LEN + ulen), 0);
				memcpy(frame + ETH_LEN + IP4_LEN, udp, ulen);
				if (flen < 60) {
					memset(frame + flen, 0, 60 - flen);
					flen = 60;
				}
				dump(d, frame, flen, (uint64_t)frames++);
				continue;
			}
			for (uint32_t off = 0; off < ulen; off += frag_payload) {
				uint32_t chunk =
					ulen - off < frag_payload ? ulen - off : frag_payload;
				uint16_t frag = (uint16_t)(off / 8) |
						(off + chunk < ulen ? 0x2000 : 0); /* MF */
				ip_header(frame + ETH_LEN, a->src_ip, a->dst_ip, ip_id,
					  (uint16_t)(IP4_LEN + chunk), frag);
				memcpy(frame + ETH_LEN + IP4_LEN, udp + off, chunk);
				dump(d, frame, ETH_LEN + IP4_LEN + chunk, (uint64_t)frames++);
			}
			ip_id++;
		}
	}
out:
	free(frame);
	free(udp);
	pcap_dump_close(d);
	pcap_close(p);
	return frames;
}

int
run_pcap(struct bench_options *o)
{
	struct workload w;
	struct gen_conf gc;
	struct gen *g;
	struct pcap_addrs a;
	char err[256];
	uint64_t guard = 0;
	long nf;

	if (o->write_pcap[0] == '\0') {
		fprintf(stderr, "kite-bench: pcap mode needs --write-pcap FILE\n");
		return -EINVAL;
	}
	/* Nothing is timed in this mode; a nominal clock keeps the workload code uniform. */
	if (workload_init(&w, o, 1000000000u, err, sizeof(err)) != 0) {
		fprintf(stderr, "kite-bench: %s\n", err);
		return -EINVAL;
	}
	memset(&gc, 0, sizeof(gc));
	gc.w = &w;
	gc.nthreads = 1;
	gc.window = 1;
	gc.flows = o->flows;
	gc.seed = o->seed;
	gc.capture = o->pcap_count;
	gc.socket_id = -1;
	g = gen_create(&gc);
	if (g == NULL) {
		fprintf(stderr, "kite-bench: out of memory\n");
		return -ENOMEM;
	}
	gen_start(g, PHASE_LOAD, 0);
	/* Bounded: each turn writes one datagram unless the capture memory is full. */
	while (gen_captured(g) < o->pcap_count && guard++ < (uint64_t)o->pcap_count * 2) {
		static uint8_t buf[BENCH_UDP_MAX + 64];
		struct gen_dgram d;
		uint32_t before = gen_captured(g);

		if (!gen_prepare(g, 0, &d))
			break;
		gen_write(g, &d, buf);
		gen_discard(g, &d);
		if (gen_captured(g) == before)
			break;
	}
	memcpy(a.src_mac, "\x02\x00\x00\x00\x00\x01", 6);
	memcpy(a.dst_mac, "\x02\x00\x00\x00\x00\x02", 6);
	if (o->dst_mac[0] != '\0') {
		unsigned int m[6];
		if (sscanf(o->dst_mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4],
			   &m[5]) != 6) {
			fprintf(stderr, "kite-bench: --dst-mac '%s' is not a MAC address\n",
				o->dst_mac);
			gen_free(g);
			return -EINVAL;
		}
		for (int i = 0; i < 6; i++)
			a.dst_mac[i] = (uint8_t)m[i];
	}
	a.src_ip = o->src_ip;
	a.dst_ip = o->server;
	a.src_port_base = (uint16_t)o->src_port;
	a.mtu = (uint16_t)o->mtu;
	workload_describe(&w, o, stdout);
	nf = pcap_write(o->write_pcap, &g, 1, &a, err, sizeof(err));
	if (nf < 0) {
		fprintf(stderr, "kite-bench: %s\n", err);
		gen_free(g);
		return (int)nf;
	}
	printf("pcap: %u datagrams, %ld frames in %s\n", gen_captured(g), nf, o->write_pcap);
	gen_free(g);
	return 0;
}
