/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_BENCH_H
#define KITE_BENCH_H

/*
 * kite-bench: a load generator for Kite and for any memcached that speaks
 * the binary protocol over UDP.
 *
 * The workload (keys, values, operation mix, popularity, batching, request
 * matching, verification and latency accounting) lives in one generator,
 * struct gen, with one instance per load lcore or thread. The transports
 * (DPDK port, kernel sockets, a pcap file) only move datagram payloads in
 * and out of it, so every mode measures the same workload with the same
 * client-side cost and reports it in the same format.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kite_cluster.h"
#include "kite_limits.h"
#include "options.h"

/* Exit status when values failed verification. */
#define BENCH_EXIT_WRONG 3

/* Most requests in one datagram (opaque carries the index in 6 bits). */
#define BENCH_MAX_BATCH 64
#define BENCH_IDX_BITS	6
#define BENCH_TAG_MASK	((1u << (32 - BENCH_IDX_BITS)) - 1)
/* Load lcores / threads. */
#define BENCH_MAX_LCORES 64
/* Largest UDP payload an IPv4 datagram carries. */
#define BENCH_UDP_MAX 65507

/* ---- latency histogram (hist.c) ---------------------------------------- */

/*
 * Log-bucketed: values below 2^(SUB_BITS+1) exact, above that 2^SUB_BITS
 * buckets per power of two (under 1.6% relative error), in TSC cycles.
 */
#define HIST_SUB_BITS 6
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_BUCKETS  ((65 - HIST_SUB_BITS) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t sum;
	uint64_t min;
	uint64_t max;
	uint64_t b[HIST_BUCKETS];
};

void hist_reset(struct hist *h);
/* Record `n` samples of value v. */
static inline unsigned int
hist_index(uint64_t v)
{
	unsigned int msb, shift;

	if (v < 2 * HIST_SUB)
		return (unsigned int)v;
	msb = 63u - (unsigned int)__builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	return shift * HIST_SUB + (unsigned int)(v >> shift);
}

static inline void
hist_add(struct hist *h, uint64_t v, uint32_t n)
{
	h->b[hist_index(v)] += n;
	h->count += n;
	h->sum += v * n;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/* Lowest and highest value of bucket i. */
uint64_t hist_bucket_lo(unsigned int i);
uint64_t hist_bucket_hi(unsigned int i);
/* a += b */
void hist_merge(struct hist *a, const struct hist *b);
/* out = a - b (bucket counts; min/max/sum taken from a) for interval views. */
void hist_diff(struct hist *out, const struct hist *a, const struct hist *b);
/* Value at quantile q (0..1): the upper edge of the bucket that holds it. */
uint64_t hist_quantile(const struct hist *h, double q);

/* ---- per-lcore counters -------------------------------------------------- */

/* X(name, help): every counter a generator keeps; JSON and summaries use the same table. */
#define BENCH_COUNTERS(X)                                                                          \
	X(tx_dgrams, "request datagrams sent")                                                     \
	X(tx_packets, "frames sent (fragments count one each)")                                    \
	X(tx_reqs, "requests sent")                                                                \
	X(tx_bytes, "UDP payload bytes sent")                                                      \
	X(rx_dgrams, "reply datagrams received")                                                   \
	X(rx_bytes, "UDP payload bytes received")                                                  \
	X(done, "requests answered (any status)")                                                  \
	X(get_hit, "GET answered with a value")                                                    \
	X(get_miss, "GET answered not found")                                                      \
	X(set_ok, "SET stored")                                                                    \
	X(del_ok, "DELETE answered (deleted or not found)")                                        \
	X(incr_ok, "INCR answered with a counter")                                                 \
	X(echo_ok, "requests echoed back (ceiling mode)")                                          \
	X(err_status, "answers with an error status")                                              \
	X(wrong_value, "GET values that failed verification")                                      \
	X(timeouts, "requests of datagrams that got no answer in time")                            \
	X(losses, "requests whose datagram got only part of its answer")                           \
	X(stale, "answers to requests already timed out or unknown")                               \
	X(dup, "duplicate answers")                                                                \
	X(bad_reply, "reply datagrams or responses that did not parse")                            \
	X(reasm_conflict, "multi-datagram replies that could not be reassembled")                  \
	X(rx_other, "frames received that were not replies (ARP, strays)")                         \
	X(tx_retry, "tx_burst or sendmmsg calls that left packets for later")                      \
	X(late_sends, "open loop: datagrams sent over 100 us after their intended time")           \
	X(busy_cycles, "client TSC cycles spent in loop turns that did work")

struct bench_stats {
#define BENCH_FIELD(n, h) uint64_t n;
	BENCH_COUNTERS(BENCH_FIELD)
#undef BENCH_FIELD
	/* Error statuses by value (0x00..0xff folded into 0..15 by status & 15 is
	 * not useful): the common ones by name. */
	uint64_t st_e2big;
	uint64_t st_einval;
	uint64_t st_enomem;
	uint64_t st_not_stored;
	uint64_t st_not_my_vbucket; /* --cluster: redirects (the request is not sent again) */
	uint64_t st_tmpfail;        /* a fenced owner refused a write */
	uint64_t st_other;
};

/*
 * --cluster: where requests go. Destinations (a member's partition port)
 * are appended, never changed, so a request queued under an older route
 * still has its address; a route (the map, and each member's first
 * destination) is immutable once published and read by the generators
 * through one atomic pointer.
 */
#define BENCH_MAX_DESTS 256

struct bench_dest {
	uint32_t ip; /* host order */
	uint16_t port;
};

struct bench_route {
	struct kite_cluster_map map;
	uint16_t first[KITE_CLUSTER_MAX_MEMBERS]; /* destination of member m's partition 0 */
};

/* ---- workload (workload.c) ----------------------------------------------- */

enum bench_op {
	OP_GET = 0,
	OP_SET,
	OP_DELETE,
	OP_INCR,
	OP_MAX,
};

enum value_dist {
	VAL_FIXED = 0,
	VAL_UNIFORM,
	VAL_MIX,
};

#define VAL_MIX_MAX 16

/* Everything read-only that all generators share. */
struct workload {
	uint64_t keys;
	uint32_t key_size;
	/* Value sizes. */
	enum value_dist vdist;
	uint32_t vmin, vmax; /* VAL_UNIFORM, and the bounds of any */
	unsigned int nmix;   /* VAL_MIX */
	uint32_t mix_size[VAL_MIX_MAX];
	uint32_t mix_cum[VAL_MIX_MAX]; /* cumulative weights scaled to 2^32 - 1 */
	/* Operation mix: cumulative thresholds on a 32-bit draw. */
	uint32_t op_cum[OP_MAX];
	bool op_used[OP_MAX];
	/* Popularity. */
	bool zipf;
	double theta;
	/* Zipf rejection-inversion constants (Hörmann & Derflinger 1996). */
	double z_hx1, z_hn, z_s;
	uint64_t perm_mul; /* rank -> key scrambling multiplier, coprime to keys */
	/* Batching and steering. */
	uint32_t batch;
	uint32_t partitions; /* 1: a single port */
	uint16_t base_port;
	/* Destinations: partitions of --server, or (--cluster) of the members. */
	bool cluster;
	uint32_t ndest;
	struct bench_dest dest[BENCH_MAX_DESTS];
	struct bench_route *_Atomic route; /* --cluster: the current route */
	uint32_t req_budget; /* UDP payload bytes a request datagram may fill before fragmenting */
	uint32_t max_req;    /* largest request the mix can draw */
	uint32_t max_dgram;  /* largest request datagram: the MTU, or one oversized request */
	uint32_t reply_cap;  /* largest reply message, bytes, for reassembly */
	uint32_t reply_stride; /* bytes of one reply datagram's payload after its frame */
	uint32_t reply_dgrams; /* reassembly slots per request datagram */
	/* Behaviour. */
	bool echo; /* ceiling mode: requests come back as their own replies */
	bool text; /* --protocol text: memcached text commands (get, set, delete) */
	/*
	 * Kite's envelope (docs/protocol.rst): 0 none, 1 a cookie, 2 a cookie
	 * and a tenant MAC in every datagram. hdr: frame + envelope bytes.
	 */
	uint8_t guard;
	uint32_t hdr;
	uint32_t tenant;
	uint8_t mac_key[16];
	uint64_t timeout_tsc;
	uint64_t tsc_hz;
};

int workload_init(struct workload *w, const struct bench_options *o, uint64_t tsc_hz, char *err,
		  size_t errlen);
/* Print the workload in one line (summary header). */
void workload_describe(const struct workload *w, const struct bench_options *o, FILE *f);

/* ---- generator (gen.c) --------------------------------------------------- */

enum gen_phase {
	PHASE_PRELOAD = 0, /* SET every key of the lcore's share once, closed loop */
	PHASE_LOAD,	   /* the configured mix */
};

struct gen;

/* A request datagram the generator has prepared for sending. */
struct gen_dgram {
	uint32_t slot;
	uint32_t len;	   /* UDP payload bytes */
	uint16_t dst_port; /* server UDP port (base + partition) */
	uint16_t flow;	   /* which client flow (source port / socket) sends it */
	uint16_t dst;      /* destination index (struct workload.dest) */
	uint32_t dst_ip;   /* its IPv4 address, host order */
};

struct gen_conf {
	const struct workload *w;
	unsigned int id; /* lcore / thread number, 0-based */
	unsigned int nthreads;
	uint32_t window; /* outstanding datagrams */
	uint32_t flows;	 /* source ports of this generator */
	uint64_t seed;
	double rate;	   /* datagrams/s of this generator; 0: closed loop */
	uint64_t max_reqs; /* stop sending after this many requests (0: no bound) */
	uint32_t capture;  /* datagrams to keep for --write-pcap (0: none) */
	uint32_t part_mod; /* above 1: draw only partitions p with p % part_mod == part_sel */
	uint32_t part_sel;
	bool eal; /* allocate from DPDK memory on socket_id */
	int socket_id;
};

struct gen *gen_create(const struct gen_conf *c);
void gen_free(struct gen *g);

/* Start a phase at `now`; PRELOAD covers this generator's share of the keys. */
void gen_start(struct gen *g, enum gen_phase p, uint64_t now);
/* End of warm-up: measure from here (called by the generator's own lcore). */
void gen_mark_warm(struct gen *g);

/*
 * Prepare the next request datagram if one is due at `now` (a free slot in
 * closed loop; its arrival time passed in open loop). Returns false when
 * nothing is due. After true, write its bytes with gen_write() into a
 * buffer of at least d->len bytes and then gen_sent() (or gen_discard()).
 */
bool gen_prepare(struct gen *g, uint64_t now, struct gen_dgram *d);
void gen_write(struct gen *g, const struct gen_dgram *d, uint8_t *buf);
/* Stamp the send time (closed loop latency starts here). */
void gen_sent(struct gen *g, const struct gen_dgram *d, uint64_t now, uint32_t frames);
/* Forget a prepared datagram without counting it (pcap mode: nothing answers). */
void gen_discard(struct gen *g, const struct gen_dgram *d);

/* A reply datagram (UDP payload, frame header first). */
void gen_rx(struct gen *g, const uint8_t *p, uint32_t len, uint64_t now);
/* Expire datagrams older than the timeout; call about every millisecond. */
void gen_expire(struct gen *g, uint64_t now, bool all);

/* Preload finished: every key sent and answered (or timed out). */
bool gen_preload_done(const struct gen *g);
/* Datagrams outstanding. */
uint32_t gen_inflight(const struct gen *g);
/* Load phase: the request bound is reached, nothing more will be sent. */
bool gen_exhausted(const struct gen *g);

/* Counters since the phase started (progress). */
const struct bench_stats *gen_stats(const struct gen *g);
/* Counters since the end of warm-up (the report). */
void gen_measured(const struct gen *g, struct bench_stats *out);
/* The transport's own counters (tx_retry, rx_other) live with the generator's. */
struct bench_stats *gen_counters(struct gen *g);
/* Latency since the end of warm-up; gen_hist_progress(): since the phase started. */
const struct hist *gen_hist(const struct gen *g);
const struct hist *gen_hist_progress(const struct gen *g);
const struct hist *gen_hist_op(const struct gen *g, enum bench_op op);

/* Captured request datagrams for --write-pcap. */
struct gen_capture {
	uint32_t len;
	uint16_t dst_port;
	uint16_t flow;
	const uint8_t *data;
};
uint32_t gen_captured(const struct gen *g);

/*
 * --mode libkite: the transport is libkite, which packs, routes and
 * retries itself; the generator draws the requests (preload: the next
 * key of its share) and judges the answers like its own.
 */
struct gen_outcome {
	bool timeout;       /* no answer after libkite's retries */
	uint16_t status;    /* the server's status */
	uint32_t flags;     /* GET */
	const uint8_t *value;
	uint32_t vallen;    /* GET: the value; INCR: 8 (the counter) */
};
bool gen_draw(struct gen *g, enum bench_op *op, uint64_t *key, uint32_t *vlen);
void gen_record(struct gen *g, enum bench_op op, uint64_t key, const struct gen_outcome *o,
		uint64_t lat);
void gen_capture_get(const struct gen *g, uint32_t i, struct gen_capture *c);

/* ---- control exchanges (gen.c): STAT before and after a run -------------- */

struct server_stats {
	bool valid;
	bool has_cycles; /* the server is Kite: busy cycles and served counts exist */
	uint64_t busy_cycles;
	uint64_t served;
	uint64_t get_hits;
	uint64_t get_misses;
	uint64_t curr_items;
	uint64_t evictions;
	uint64_t steer_misses; /* Kite: datagrams that arrived at a worker not owning their keys */
	uint64_t handoffs;     /* Kite: datagrams handed between workers */
	uint64_t copied_bytes; /* Kite: key and value bytes copied on the data path */
	/* Kite's guard: datagrams passed, of them validated (cookie or trusted), authenticated. */
	uint64_t guard_passed;
	uint64_t guard_validated;
	uint64_t guard_authed;
	/*
	 * Kite: the node's own service time of GET (RX burst to TX), its STAT
	 * quantiles since start in microseconds; negative when not shown.
	 */
	double service_get_p50_us;
	double service_get_p99_us;
};

/*
 * A stamp for a signed datagram (--guard mac): unix microseconds, above
 * every stamp this generator used before (the node refuses a stamp that
 * does not increase per tenant and source socket).
 */
uint64_t gen_stamp(struct gen *g, uint16_t flow);

/* The largest STAT request: frame, envelope (cookie and MAC), header. */
#define CTL_REQ_MAX (KITE_FRAME_HDR_LEN + 4 + 12 + 28 + KITE_BIN_HDR_LEN)

/*
 * Build a STAT request datagram (buf: CTL_REQ_MAX bytes); returns its
 * length. With --guard it carries the envelope: cookie (zeros until a
 * reply brought one), and for mac the tenant MAC with stamp (the bench
 * tenant must be an admin tenant: STAT is admin-only when auth is on).
 */
uint32_t ctl_stat_request(const struct workload *w, uint8_t *buf, uint16_t req_id,
			  const uint8_t *cookie, uint64_t stamp);

/* Collects the datagrams of one reply message and parses the STAT entries. */
struct ctl_collect {
	uint16_t req_id;
	uint16_t total;
	uint16_t have;
	bool done;
	uint8_t seen[KITE_MAX_REPLY_DGRAMS / 8];
	uint16_t len[KITE_MAX_REPLY_DGRAMS];
	uint8_t *buf; /* KITE_MAX_REPLY_DGRAMS * stride */
	uint32_t stride;
	bool has_cookie; /* the reply's envelope brought a cookie (retry with it) */
	uint8_t cookie[12];
};
void ctl_collect_init(struct ctl_collect *c, uint16_t req_id, uint8_t *buf, uint32_t stride);
/* Feed a datagram; true once the message is complete. */
bool ctl_collect_add(struct ctl_collect *c, const uint8_t *p, uint32_t len);
/* Parse the completed STAT message. @return 0 or -EINVAL. */
int ctl_stat_parse(struct ctl_collect *c, struct server_stats *s);

/* ---- randomness shared by gen.c and workload.c ---------------------------- */

/* A 64-bit mixing step (a variant of the MurmurHash3 finaliser). */
static inline uint64_t
mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	x ^= x >> 33;
	return x;
}

/* ---- reporting (report.c) ------------------------------------------------ */

struct run_report {
	const struct bench_options *o;
	const struct workload *w;
	const char *mode;   /* "dpdk", "dpdk-echo", "socket", "pcap" */
	const char *target; /* free text: port or server address */
	unsigned int nthreads;
	double seconds; /* measured interval */
	uint64_t tsc_hz;
	struct bench_stats total;
	struct hist hist;
	struct hist hist_op[OP_MAX];
	struct bench_stats preload;
	double preload_seconds;
	struct server_stats srv_before, srv_after;
	/* Per-second progress samples. */
	unsigned int nsamples;
	struct progress_sample {
		double t;
		double ops;
		double hit_ratio;
		double p99_us;
		double redirects; /* NOT_MY_VBUCKET answers in the interval */
	} * samples;
	unsigned int samples_cap;
};

/* Sum counters: a += b. */
void stats_add(struct bench_stats *a, const struct bench_stats *b);
/* Print one progress line for the interval between two snapshots. */
void report_progress(struct run_report *r, double t, double secs, const struct bench_stats *now,
		     const struct bench_stats *prev, const struct hist *interval);
void report_summary(const struct run_report *r, FILE *f);
int report_json(const struct run_report *r, const char *path);

/* Cycles to microseconds. */
static inline double
tsc_to_us(uint64_t c, uint64_t hz)
{
	return (double)c * 1e6 / (double)hz;
}

/* ---- pcap (pcap.c) ---------------------------------------------------------- */

/* Addresses of the frames written to a pcap (host order for IPs and ports). */
struct pcap_addrs {
	uint8_t src_mac[6];
	uint8_t dst_mac[6];
	uint32_t src_ip;
	uint32_t dst_ip;
	uint16_t src_port_base;
	uint16_t mtu;
};

/*
 * Write captured datagrams from every generator as Ethernet frames with
 * valid IPv4 and UDP checksums, fragmenting datagrams above the MTU.
 * @return frames written, or -errno.
 */
long pcap_write(const char *path, struct gen *const *gens, unsigned int n,
		const struct pcap_addrs *a, char *err, size_t errlen);

/* ---- transports (io_dpdk.c, io_sock.c, pcap.c): main() calls one ---------- */

int run_dpdk(struct bench_options *o, int argc, char **argv);
int run_socket(struct bench_options *o);
int run_pcap(struct bench_options *o);

/* ---- the run loop (run.c), which transports call -------------------------- */

/* Calibrate the TSC against CLOCK_MONOTONIC_RAW (modes without EAL). */
uint64_t bench_tsc_hz(void);
/* Set on SIGINT/SIGTERM: every loop stops, the run reports what it has. */
extern volatile bool bench_quit;

/*
 * The parts of a run that do not depend on the transport: phases, progress,
 * summary and JSON. Transports fill `driver`.
 */
struct bench_driver {
	void *arg;
	unsigned int nthreads;
	struct gen **gens;
	/* Run phase p on every load lcore/thread; returns at once (workers run). */
	int (*launch)(void *arg, enum gen_phase p, uint64_t warmup_tsc, uint64_t end_tsc);
	/* True once every worker has returned from the phase. */
	bool (*finished)(void *arg);
	/* Wait for the workers of the phase. */
	void (*wait)(void *arg);
	/* Query the server's STAT (load stopped). NULL: not supported. */
	int (*server_stats)(void *arg, struct server_stats *s);
	/* Run one slice of the load on the calling thread (single-lcore DPDK); NULL otherwise. */
	bool (*poll_main)(void *arg);
	/* Once a second while the load runs (--cluster: fetch the map); may be NULL. */
	void (*tick)(void *arg, double t);
};

int bench_run(struct bench_options *o, const struct workload *w, struct bench_driver *d,
	      const char *mode, const char *target);

/* Shared loop state for one load lcore or thread in a phase. */
struct phase_ctl {
	enum gen_phase phase;
	uint64_t warmup_end; /* reset counters when crossing it (load phase) */
	uint64_t end;	     /* stop sending; then drain */
	bool warm_done;
};

#endif /* KITE_BENCH_H */
