/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITED_CONFIG_H
#define KITED_CONFIG_H

/**
 * @file
 * kited's options: one X-macro table generates the struct, the defaults,
 * the config-file keys, the command-line flags, --help and
 * --describe-config, so they cannot drift apart.
 *
 * Filled defaults -> file (--config) -> command line, validated once,
 * read-only afterwards.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kite_limits.h"

#define KITED_STR_MAX 256

/* Membership sources and fencing modes. */
#define KITED_CLUSTER_MODES "none,static,etcd"
enum kited_cluster_mode { KITED_CLUSTER_NONE = 0, KITED_CLUSTER_STATIC, KITED_CLUSTER_ETCD };
#define KITED_FENCING_MODES "strict,available"

/* Steering modes, in enum kite_steer_mode's order (lib/steer). */
#define KITED_STEER_MODES "auto,flow,rss,handoff"

/*
 * Data-path steps the ablate option can turn off (benchmarks only), one
 * bit each in this order.
 */
#define KITED_ABLATE_NAMES "bulk,prefetch,inplace,txbatch,hotkeys,latency"
enum kited_ablate {
	KITED_ABLATE_BULK = 1u << 0,     /* GETs looked up one by one, not in bulk */
	KITED_ABLATE_PREFETCH = 1u << 1, /* no software prefetch (headers, items, values) */
	KITED_ABLATE_INPLACE = 1u << 2,  /* every reply in a fresh buffer */
	KITED_ABLATE_TXBATCH = 1u << 3,  /* one packet per tx_burst */
	KITED_ABLATE_HOTKEYS = 1u << 4,  /* no hot-key counting or hints */
	KITED_ABLATE_LATENCY = 1u << 5,  /* no service-time histograms */
};

/*
 * X(key, type, field, default, min, max, help)
 * Types: STR (string), U32, SIZE (bytes; K/M/G suffixes), IPV4, BOOL.
 */
#define KITED_OPTIONS(X)                                                                         \
	X("port", STR, port, "0", 0, 0,                                                          \
	  "DPDK port: a port id, a device name, or a vdev spec to hot-plug "                     \
	  "(e.g. net_af_packet0,iface=veth0)")                                                   \
	X("ip", IPV4, ip, "198.18.0.2", 0, 0, "IPv4 address the node answers on")                \
	X("netmask", IPV4, netmask, "255.255.255.252", 0, 0, "netmask of that address")          \
	X("udp-port", U32, udp_port, "11211", 1, 65535, "base UDP port (partition p: base + p)") \
	X("workers", U32, workers, "1", 1, KITE_MAX_WORKERS,                                    \
	  "worker lcores, one RX/TX queue each")                                                 \
	X("partitions", U32, partitions, "4", 1, KITE_MAX_PARTS_PER_WORKER,                     \
	  "partitions per worker")                                                               \
	X("memory", SIZE, memory, "64M", 1 << 20, UINT64_C(1) << 40,                             \
	  "item memory budget for the whole node (split evenly over partitions)")                \
	X("max-item-size", SIZE, max_item_size, "1M", 64, 1 << 20, "largest value accepted")     \
	X("mtu", U32, mtu, "1500", 576, 9000, "IP MTU; reply datagrams are cut to fit")          \
	X("burst", U32, burst, "32", 1, 64, "packets per rx_burst")                              \
	X("idle", STR, idle, "adaptive", 0, 0,                                                   \
	  "what an idle worker does: adaptive (busy-polls idle-spin-us after its last packet, "\
	  "then sleeps 8 us doubling up to idle-sleep-max-us), shared (idle-polls empty polls, " \
	  "then idle-sleep-us per poll: for several nodes and etcd on a few CPUs) or busy")      \
	X("idle-spin-us", U32, idle_spin_us, "200", 0, 10000000,                                 \
	  "adaptive: busy-poll this long after the last packet before sleeping")                 \
	X("idle-sleep-max-us", U32, idle_sleep_max_us, "1000", 8, 100000,                        \
	  "adaptive: the longest sleep of an idle worker (what the first request after a quiet " \
	  "spell may wait)")                                                                     \
	X("idle-polls", U32, idle_polls, "256", 0, 1000000000,                                   \
	  "shared: empty polls before a worker starts sleeping")                                 \
	X("idle-sleep-us", U32, idle_sleep_us, "50", 0, 100000,                                  \
	  "shared: sleep per empty poll once idle; 0: busy-poll whatever idle says")             \
	X("stats-interval", U32, stats_interval, "10", 0, 86400,                                 \
	  "seconds between stats lines in the log (0: off)")                                     \
	X("rx-desc", U32, rx_desc, "1024", 64, 16384, "RX descriptors per queue")                \
	X("tx-desc", U32, tx_desc, "1024", 64, 16384, "TX descriptors per queue")                \
	X("mbufs", U32, mbufs, "16383", 1023, 4194303, "mbufs in the packet pool")               \
	X("rx-mbuf-size", SIZE, rx_mbuf_size, "0", 0, 65280,                                     \
	  "data room of RX mbufs when larger frames than the MTU arrive whole "                   \
	  "(af_packet with framesz=N: set N); 0: same pool as replies")                         \
	X("handoff-ring", U32, handoff_ring, "4096", 64, 1048576,                                \
	  "slots of each worker's handoff ring (power of two)")                                  \
	X("frag-flows", U32, frag_flows, "1024", 16, 65536,                                      \
	  "IP datagrams being reassembled at once, per worker")                                  \
	X("frag-timeout-ms", U32, frag_timeout_ms, "500", 10, 60000,                             \
	  "time allowed for all fragments of a datagram")                                        \
	X("steer", STR, steer, "auto", 0, 0, "steering mode: auto, flow, rss or handoff")        \
	X("udp-checksum", BOOL, udp_checksum, "on", 0, 0,                                        \
	  "checksum replies in software when the port has no offload "                           \
	  "(off: UDP checksum 0, legal in IPv4; for memif and other in-host links)")             \
	X("pid-file", STR, pid_file, "", 0, 0, "write the process id here (removed on exit)")     \
	X("cluster", STR, cluster, "none", 0, 0,                                                 \
	  "membership: none (one node, as ever), static (members-file) or etcd")                \
	X("cluster-name", STR, cluster_name, "kite", 0, 0,                                      \
	  "the cluster's name: etcd keys live under /kite/NAME/")                               \
	X("node-id", STR, node_id, "", 0, 0,                                                    \
	  "this node's id in the cluster (1..63 characters, no space or '/'); "                \
	  "required with cluster static or etcd")                                                \
	X("zone", STR, zone, "", 0, 0, "failure domain; replicas go to other zones first")      \
	X("weight", U32, weight, "100", 1, 10000,                                               \
	  "share of the vbuckets, relative to the other members' weights")                     \
	X("vbuckets", U32, vbuckets, "65536", 1024, 1048576,                                    \
	  "vbuckets of the cluster (a power of two; fixed when the cluster is created)")        \
	X("copies", U32, copies, "2", 1, 4,                                                      \
	  "nodes listed per vbucket: the owner and replica candidates (fixed at creation)")     \
	X("members-file", STR, members_file, "", 0, 0,                                          \
	  "cluster static: the members file (docs/cluster.rst); re-read on SIGHUP")             \
	X("etcd", STR, etcd, "http://127.0.0.1:2379", 0, 0,                                     \
	  "cluster etcd: etcd endpoints, comma-separated (its v3 JSON gateway)")                \
	X("lease-ttl", U32, lease_ttl, "2", 1, 60,                                              \
	  "cluster etcd: seconds of this node's etcd lease; writes stop (fencing) when "        \
	  "no keepalive was acknowledged for about this long")                                   \
	X("fencing", STR, fencing, "strict", 0, 0,                                              \
	  "strict: refuse writes once the lease may have lapsed; available: keep taking "       \
	  "them (risk: two owners for a while, docs/cluster.rst)")                               \
	X("replicas", U32, replicas, "0", 0, 2,                                                 \
	  "replicas per vbucket (owner + R; R < copies): mutations stream to them, and a "     \
	  "failed owner's vbuckets go to a replica that holds the data")                        \
	X("replication", STR, replication, "async", 0, 0,                                       \
	  "async: reply before the replicas acknowledge (the loss window is the lag); sync: "  \
	  "reply after every replica in the map acknowledged (docs/cluster.rst)")               \
	X("sync-timeout-ms", U32, sync_timeout_ms, "500", 10, 60000,                             \
	  "replication sync: milliseconds a write waits for its replicas before it is "         \
	  "answered ETMPFAIL (outcome unknown; a quiet write gets no answer)")                  \
	X("cluster-secret-file", STR, cluster_secret_file, "", 0, 0,                            \
	  "64 hex digits (32 bytes), the same on every node: node-to-node datagrams carry "    \
	  "a MAC under it; required with replicas")                                             \
	X("warmup", U32, warmup, "30", 0, 3600,                                                 \
	  "seconds a node still answers warm-up reads (FILL_GET) and invalidations for the "    \
	  "vbuckets it owned before a map change, so clients fill the new owner (0: off)")      \
	X("leave-grace", U32, leave_grace, "5", 0, 600,                                         \
	  "seconds a leaving node (SIGTERM) stays listed as leaving, owning nothing but "       \
	  "answering warm-up reads, before it deregisters")                                     \
	X("mgmt-ip", IPV4, mgmt_ip, "0.0.0.0", 0, 0,                                             \
	  "management address: the kernel address etcd connections leave from (0.0.0.0: any)") \
	X("allow", STR, allow, "", 0, 0,                                                         \
	  "sources that may send at all: IPv4 CIDRs, comma-separated (empty: every source, "   \
	  "under the amplification bound); others are dropped and counted")                     \
	X("trusted", STR, trusted, "", 0, 0,                                                     \
	  "sources treated as validated (no amplification bound): CIDRs, comma-separated; "    \
	  "for clients that cannot fetch a cookie (memaslap, plain memcached clients)")         \
	X("amplification-bound", BOOL, amplification_bound, "on", 0, 0,                          \
	  "a source without a valid cookie gets at most the bytes it sent (off: no bound; "    \
	  "only behind a firewall that stops spoofed sources)")                                 \
	X("cookie-rotate-s", U32, cookie_rotate_s, "300", 1, 86400,                              \
	  "seconds per cookie key; a cookie stays valid for this window and the next")          \
	X("bound-credit", U32, bound_credit, "16384", 0, 1048576,                                \
	  "reply bytes a bounded source may bank from earlier datagrams (per worker, "         \
	  "forgotten after 1 s idle)")                                                           \
	X("source-rate", U32, source_rate, "0", 0, 1000000000,                                   \
	  "requests/s per source address, whole node (split over workers; 0: no limit)")        \
	X("source-bytes", U32, source_bytes, "0", 0, 4000000000u,                                \
	  "reply bytes/s per source address, whole node (split over workers; 0: no limit)")     \
	X("rate-burst-ms", U32, rate_burst_ms, "100", 1, 60000,                                  \
	  "token bucket depth, in milliseconds of the rate")                                     \
	X("over-rate", STR, over_rate, "drop", 0, 0,                                             \
	  "over a source or tenant rate: drop (counted) or busy (every request answered "      \
	  "RATE_LIMITED)")                                                                       \
	X("work-budget", U32, work_budget, "512", 1, 65535,                                      \
	  "work units per datagram (a request 1, STAT 32, FLUSH 16); the rest is answered "    \
	  "RATE_LIMITED, not executed")                                                          \
	X("auth", STR, auth, "off", 0, 0,                                                        \
	  "tenant authentication: off, optional (unauthenticated requests stay out of every "  \
	  "tenant's prefix) or required; needs tenants-file")                                   \
	X("tenants-file", STR, tenants_file, "", 0, 0,                                           \
	  "tenants (docs/security.rst): id, name, secret, key prefix, commands, rate; "        \
	  "re-read on SIGHUP")                                                                   \
	X("stamp-window-ms", U32, stamp_window_ms, "30000", 100, 3600000,                        \
	  "authenticated requests: stamps accepted this far behind the node's clock (1 s "     \
	  "ahead); a rejected client gets the node's time")                                      \
	X("hot-key-rate", U32, hot_key_rate, "5000", 0, 100000000,                              \
	  "reads per second (per worker) that make a key hot: its replies carry a hint, STAT " \
	  "hotkeys lists the hottest (0: no hot-key detection)")                                \
	X("ttl-jitter", STR, ttl_jitter, "0", 0, 0,                                              \
	  "spread each expiry a client sets by up to this share of its TTL, either way, so "   \
	  "keys written together do not expire together: N% (0-50; 0: off)")                   \
	X("text-keys", STR, text_keys, "strict", 0, 0,                                           \
	  "text and meta keys: strict (no control characters) or memcached (any byte but "     \
	  "space and newline, as memcached 1.6.18 takes them; memaslap's keys need it)")        \
	X("flush", BOOL, flush, "on", 0, 0,                                                      \
	  "off: FLUSH refused with FORBIDDEN for everyone (memcached's -F)")                    \
	X("guard-sources", U32, guard_sources, "4096", 64, 1048576,                              \
	  "per worker: source addresses the guard remembers (banked bytes, rate buckets, "     \
	  "replay stamps); a power of two")                                                      \
	X("reply-mac", STR, reply_mac, "auto", 0, 0,                                             \
	  "where replies go: neighbour (the MAC ARP gives for the next hop; a forged frame "   \
	  "source cannot aim them), frame (the request frame's source MAC: a link with one "   \
	  "peer only), auto (frame on memif, neighbour otherwise)")                              \
	X("gateway", IPV4, gateway, "0.0.0.0", 0, 0,                                             \
	  "next hop for clients outside ip/netmask (0.0.0.0: none, their requests get no "     \
	  "reply: kite_net_drop_no_route)")                                                      \
	X("neighbours", STR, neighbours, "", 0, 0,                                               \
	  "static neighbour entries, IP=MAC comma-separated; ARP never replaces them")          \
	X("user", STR, user, "", 0, 0,                                                           \
	  "once set up, run as this unprivileged user and its group: no root, no "             \
	  "capabilities; files re-read on SIGHUP must be readable by it (empty: stay root)")    \
	X("seccomp", BOOL, seccomp, "on", 0, 0,                                                  \
	  "once set up, refuse (EPERM) the system calls kited never makes: exec, ptrace, "     \
	  "modules, mount, namespaces, bpf, ... (docs/security.rst)")                           \
	X("admin-listen", STR, admin_listen, "", 0, 0,                                           \
	  "the admin endpoint (HTTP: /metrics, /healthz, /readyz) at IPV4:PORT on the "        \
	  "management interface, e.g. 198.19.0.2:11280 (empty: off)")                           \
	X("admin-token-file", STR, admin_token_file, "", 0, 0,                                   \
	  "bearer tokens for the admin endpoint, a line each: TOKEN ROLE (admin, read or "     \
	  "tenant=NAME of tenants-file); with it, /metrics, /cluster and /cache need one "     \
	  "(empty: open to whoever reaches the port, /cache as an unauthenticated client)")    \
	X("admin-tls-cert", STR, admin_tls_cert, "", 0, 0,                                       \
	  "PEM certificate: the admin endpoint speaks HTTPS (with admin-tls-key)")              \
	X("admin-advertise", STR, admin_advertise, "", 0, 0,                                     \
	  "the admin endpoint as others reach it (IPV4:PORT), for this node's cluster record: "\
	  "the JSON API's redirects and kite-cli scrape-config (empty: admin-listen's, none "  \
	  "when that is 0.0.0.0)")                                                               \
	X("admin-tls-key", STR, admin_tls_key, "", 0, 0,                                         \
	  "PEM private key of admin-tls-cert")                                                   \
	X("ablate", STR, ablate, "none", 0, 0,                                                   \
	  "benchmarks only: data-path steps to turn off, none or a list from "                   \
	  KITED_ABLATE_NAMES)

struct kited_config {
#define KITED_FIELD_STR(f)  char f[KITED_STR_MAX];
#define KITED_FIELD_U32(f)  uint32_t f;
#define KITED_FIELD_SIZE(f) uint64_t f;
#define KITED_FIELD_IPV4(f) uint32_t f; /* host order */
#define KITED_FIELD_BOOL(f) bool f;
#define KITED_FIELD(key, type, field, def, min, max, help) KITED_FIELD_##type(field)
	KITED_OPTIONS(KITED_FIELD)
#undef KITED_FIELD
};

/** Result of kited_config_parse_args(). */
enum kited_parse {
	KITED_PARSE_RUN = 0, /**< start the node */
	KITED_PARSE_EXIT,    /**< --help or --describe-config printed: exit 0 */
	KITED_PARSE_ERROR,   /**< message in err: exit 2 */
};

/** Fill every option with its default. */
void kited_config_defaults(struct kited_config *c);

/** Set one option by key from a string. @return 0 or -EINVAL (message in err). */
int kited_config_set(struct kited_config *c, const char *key, const char *value, char *err,
		     size_t errlen);

/**
 * Load a config file: `key = value` lines, `#` or `;` comments, INI
 * `[section]` headers allowed and ignored. @return 0 or -errno (message in err).
 */
int kited_config_load(struct kited_config *c, const char *path, char *err, size_t errlen);

/**
 * Load drivers-config/NAME.conf, looked up in $KITE_PROFILE_DIR, then the
 * installed copies (share/kite/drivers-config under the prefix), then the
 * source tree; a kited run from its build tree looks in the source tree
 * before the installed copies. @return 0 or -errno.
 */
int kited_config_load_profile(struct kited_config *c, const char *name, char *err, size_t errlen);

/**
 * The profile a config file names (`profile = NAME`) into name, "" when
 * none. @return 0 or -errno (message in err).
 */
int kited_config_file_profile(const char *path, char *name, size_t len, char *err,
			      size_t errlen);

/**
 * Apply defaults, then the profile (--profile NAME, else the one the
 * --config file names), then --config FILE, then the other flags (the kite
 * arguments after EAL's `--`), then validate.
 */
enum kited_parse kited_config_parse_args(struct kited_config *c, int argc, char **argv,
					 FILE *out, char *err, size_t errlen);

/** Cross-option checks. @return 0 or -EINVAL (message in err). */
int kited_config_validate(const struct kited_config *c, char *err, size_t errlen);

/** Longest admin bearer token. */
#define KITED_ADMIN_TOKEN_MAX 128

/** Longest tenant name a token may name (the guard's KITE_GUARD_NAME_MAX, NUL included). */
#define KITED_ADMIN_TENANT_MAX 32

/** What a bearer token may do (docs/operations.rst). */
enum kited_admin_role {
	KITED_ADMIN_ROLE_READ = 0, /**< health, statistics, the map; reads as an unauthenticated client */
	KITED_ADMIN_ROLE_TENANT,   /**< the JSON API as that tenant over UDP (prefix, commands, rate) */
	KITED_ADMIN_ROLE_ADMIN,    /**< everything */
};

/** One line of admin-token-file. */
struct kited_admin_token {
	char secret[KITED_ADMIN_TOKEN_MAX + 1];
	enum kited_admin_role role;
	char tenant[KITED_ADMIN_TENANT_MAX]; /**< ROLE_TENANT: the tenants-file name */
};

/**
 * Parse admin-token-file's text: "TOKEN ROLE" lines (ROLE admin, read or
 * tenant=NAME; a token of 16 to 128 characters without spaces), '#'
 * comments and blank lines. @return 0 (*n tokens in out) or -EINVAL
 * (message in err).
 */
int kited_admin_tokens_parse(const char *text, struct kited_admin_token *out, unsigned int max,
			     unsigned int *n, char *err, size_t errlen);

/** idle option. */
enum kited_idle { KITED_IDLE_ADAPTIVE = 0, KITED_IDLE_SHARED, KITED_IDLE_BUSY };
#define KITED_IDLE_MODES "adaptive,shared,busy"

/** Parse admin-listen (IPV4:PORT, port 1..65535). @return 0 or -EINVAL (message in err). */
int kited_admin_listen_parse(const char *s, struct sockaddr_in *sa, char *err, size_t errlen);

/**
 * Parse the ablate option: "none" or a comma-separated list from
 * KITED_ABLATE_NAMES. @return KITED_ABLATE_* bits, or -1.
 */
int kited_ablate_parse(const char *list);

/** reply-mac values, in this order. */
#define KITED_REPLY_MAC_MODES "auto,neighbour,frame"
/* ttl-jitter: the percent it names, or -1. */
int kited_ttl_jitter(const char *s);
/* text-keys */
#define KITED_TEXT_KEYS_MODES "strict,memcached"
enum kited_reply_mac { KITED_REPLY_AUTO = 0, KITED_REPLY_NEIGHBOUR, KITED_REPLY_FRAME };

/** Most static neighbour entries. */
#define KITED_NEIGHBOURS_MAX 64

/**
 * Parse the neighbours option: "IP=MAC, ..." (IPv4 dotted, MAC as six
 * colon-separated hex pairs, unicast). Each entry goes to fn (may be NULL:
 * check only). @return the number of entries, or -EINVAL (message in err).
 */
int kited_neighbours_parse(const char *list, void (*fn)(uint32_t ip, const uint8_t mac[6], void *arg),
			   void *arg, char *err, size_t errlen);

/** Print --help. */
void kited_config_usage(FILE *f, const char *prog);

/** Print every option with its default and range (--describe-config). */
void kited_config_describe(FILE *f);

/** Print the effective configuration as a loadable file. */
void kited_config_dump(FILE *f, const struct kited_config *c);

#endif /* KITED_CONFIG_H */
