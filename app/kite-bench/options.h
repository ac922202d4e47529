/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_BENCH_OPTIONS_H
#define KITE_BENCH_OPTIONS_H

/*
 * kite-bench's options: one X-macro table generates the struct, the
 * defaults, the parser, --help and the "options" object of the JSON report,
 * so they cannot drift apart (the same scheme as kited's config.h).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kite_limits.h"

#define BENCH_STR_MAX 256

/*
 * X(key, type, field, default, min, max, help)
 * Types: STR, U32, U64, NUM (double), IPV4 (host order), BOOL (--key / --no-key).
 */
#define BENCH_OPTIONS(X)                                                                           \
	X("mode", STR, mode, "dpdk", 0, 0,                                                         \
	  "dpdk (a DPDK port), socket (kernel UDP sockets), libkite (the client library: "      \
	  "what an application sees) or pcap (write --write-pcap only)")                          \
	X("port", STR, port, "0", 0, 0,                                                            \
	  "dpdk: port id, device name or vdev spec to create (net_memif0,role=client,...)")        \
	X("echo", BOOL, echo, "false", 0, 0,                                                       \
	  "dpdk: ceiling mode, count each echoed request (testpmd macswap) as its own reply")      \
	X("dst-mac", STR, dst_mac, "", 0, 0,                                                       \
	  "dpdk/pcap: server MAC; empty: resolve --server with ARP (pcap: 02:00:00:00:00:02)")     \
	X("src-ip", IPV4, src_ip, "198.18.0.1", 0, 0, "dpdk/pcap: our IPv4 address")               \
	X("netmask", IPV4, netmask, "255.255.255.252", 0, 0, "dpdk: netmask of --src-ip")          \
	X("server", IPV4, server, "198.18.0.2", 0, 0, "server IPv4 address")                       \
	X("cluster", STR, cluster, "", 0, 0,                                                      \
	  "route by the cluster map of this seed (HOST[:PORT],...; fetched with libkite, "       \
	  "again every second in socket mode) instead of --server/--partitions")                 \
	X("udp-port", U32, udp_port, "11211", 1, 65535, "server base UDP port")                    \
	X("partitions", U32, partitions, "1", 1, KITE_MAX_PARTITIONS,                              \
	  "server partitions: partition p on port base+p, p = XXH64(key) % partitions "            \
	  "(1: a single port)")                                                                    \
	X("server-workers", U32, server_workers, "1", 1, KITE_MAX_WORKERS,                         \
	  "dpdk: the server's workers; above 1, load lcore q sends only the partitions worker q "  \
	  "owns (p % workers == q), so replies come back on its queue (memif)")                    \
	X("src-port", U32, src_port, "20000", 1, 65535, "first client UDP source port")            \
	X("flows", U32, flows, "1", 1, 1024, "source ports (flows) per load lcore or thread")      \
	X("threads", U32, threads, "1", 1, 64, "socket: client threads")                           \
	X("cpus", STR, cpus, "", 0, 0, "socket: CPUs to pin threads to, e.g. 1 or 2,3")            \
	X("keys", U64, keys, "100000", 1, UINT64_C(1) << 32, "key space size")                     \
	X("key-size", U32, key_size, "16", 10, 250, "key length in bytes")                         \
	X("value-size", STR, value_size, "32", 0, 0,                                               \
	  "value bytes: N, uniform:MIN-MAX or mix:SIZE@WEIGHT,... (8 .. ~65000: a SET is one "     \
	  "datagram)")                                                                             \
	X("mix", STR, mix, "get:100", 0, 0,                                                        \
	  "operation weights, e.g. get:90,set:10 (get, set, delete, incr)")                        \
	X("dist", STR, dist, "uniform", 0, 0, "key popularity: uniform or zipf:THETA")             \
	X("batch", U32, batch, "1", 1, 64, "requests per datagram")                                \
	X("protocol", STR, protocol, "binary", 0, 0,                                              \
	  "binary or text (memcached's text commands get, set, delete; no incr)")                 \
	X("guard", STR, guard, "off", 0, 0,                                                        \
	  "Kite's envelope in every datagram: off, cookie (fetched from the replies, per "      \
	  "flow) or mac (a cookie and a tenant MAC: --tenant, --tenant-secret)")                  \
	X("tenant", U32, tenant, "0", 0, UINT32_MAX, "guard mac: the tenant id")                  \
	X("tenant-secret", STR, tenant_secret, "", 0, 0,                                          \
	  "guard mac: the tenant's secret, 64 hex digits (its keys must fall in its prefix: "     \
	  "keys start with k)")                                                                    \
	X("window", U32, window, "64", 1, 16384,                                                   \
	  "outstanding datagrams per load lcore or thread (the cap in open loop)")                 \
	X("rate", NUM, rate, "0", 0, 1e10,                                                         \
	  "open loop: target requests/s in total, Poisson arrivals (0: closed loop)")              \
	X("duration", NUM, duration, "10", 0, 86400,                                               \
	  "measured seconds after warm-up (0: preload only)")                                      \
	X("warmup", NUM, warmup, "1", 0, 3600, "seconds of load before measuring")                 \
	X("max-requests", U64, max_requests, "0", 0, UINT64_MAX,                                   \
	  "stop after this many requests per lcore or thread (0: time only)")                      \
	X("timeout-ms", U32, timeout_ms, "500", 1, 60000, "a datagram's reply deadline")           \
	X("preload", BOOL, preload, "true", 0, 0, "SET every key once before the load")            \
	X("preload-timeout", U32, preload_timeout, "120", 1, 3600, "seconds allowed for preload")  \
	X("mtu", U32, mtu, "1500", 576, 9000, "IP MTU of the path (request packing, fragments)")   \
	X("burst", U32, burst, "32", 1, 256, "dpdk: packets per rx/tx burst; socket: per *mmsg")   \
	X("mbufs", U32, mbufs, "16383", 1023, 1048575, "dpdk: mbufs per load lcore")               \
	X("json", STR, json, "", 0, 0, "write the full report as JSON to this file")               \
	X("write-pcap", STR, write_pcap, "", 0, 0,                                                 \
	  "write the request stream (first --pcap-count datagrams) as a pcap file")                \
	X("pcap-count", U32, pcap_count, "10000", 1, 10000000,                                     \
	  "datagrams written by --write-pcap")                                                     \
	X("server-stats", BOOL, server_stats, "false", 0, 0,                                       \
	  "read the server's STAT before and after the run (cycles per request from Kite)")        \
	X("label", STR, label, "", 0, 0, "name of this run in the JSON report")                    \
	X("progress", BOOL, progress, "true", 0, 0, "print a progress line every second")          \
	X("seed", U64, seed, "1", 0, UINT64_MAX, "random seed")

struct bench_options {
#define BENCH_FIELD_STR(f)				   char f[BENCH_STR_MAX];
#define BENCH_FIELD_U32(f)				   uint32_t f;
#define BENCH_FIELD_U64(f)				   uint64_t f;
#define BENCH_FIELD_NUM(f)				   double f;
#define BENCH_FIELD_IPV4(f)				   uint32_t f;
#define BENCH_FIELD_BOOL(f)				   bool f;
#define BENCH_FIELD(key, type, field, def, min, max, help) BENCH_FIELD_##type(field)
	BENCH_OPTIONS(BENCH_FIELD)
#undef BENCH_FIELD
};

enum bench_parse {
	BENCH_PARSE_RUN = 0,
	BENCH_PARSE_EXIT,  /* --help printed */
	BENCH_PARSE_ERROR, /* message in err */
};

void bench_options_defaults(struct bench_options *o);
int bench_options_set(struct bench_options *o, const char *key, const char *value, char *err,
		      size_t errlen);
enum bench_parse bench_options_parse(struct bench_options *o, int argc, char **argv, FILE *out,
				     char *err, size_t errlen);
void bench_options_usage(FILE *f);
/* Write every option as members of a JSON object (no braces). */
void bench_options_json(FILE *f, const struct bench_options *o, const char *indent);

#endif /* KITE_BENCH_OPTIONS_H */
