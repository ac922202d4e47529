/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Kernel-socket transport: the same generators driven through UDP sockets
 * with sendmmsg/recvmmsg, one thread per --threads and one socket per
 * flow, so memcached -U and kited on af_packet are measured by the same
 * client code as kited on a DPDK port. Threads busy-poll (MSG_DONTWAIT)
 * to keep the client's latency out of the scheduler's hands; pin them
 * with --cpus.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <rte_cycles.h>

#include <kite/kite.h>

#include "kite_guard.h"
#include "kite_proto.h"

#include "bench.h"
#include "route.h"
#include "workload.h"

#define MAX_BURST 256
#define SOCK_BUF  (8 << 20)
#define CTL_TRIES 3

struct sflow {
	int fd;
	unsigned int npend; /* messages built and not yet accepted by the kernel */
	unsigned int first; /* first of them in pend[] */
	struct mmsghdr *pend;
};

/* --mode libkite: one client per slot, each with one batch in flight. */
#define LK_MAX_SLOTS 64

struct lk_slot {
	struct kite_client *c;
	struct kite_op ops[BENCH_MAX_BATCH];
	uint8_t key[BENCH_MAX_BATCH][KITE_KEY_MAX];
	uint64_t kidx[BENCH_MAX_BATCH];
	uint8_t op[BENCH_MAX_BATCH];
	uint8_t *val; /* batch x largest value */
	unsigned int n;
	uint64_t t0;
	bool busy;
	struct kite_client_stats st0; /* the client's counters at the last look */
};

struct sthr {
	struct sock_ctx *x;
	struct lk_slot *lk;
	unsigned int nlk;
	unsigned int idx;
	int cpu;
	pthread_t tid;
	bool started;
	struct gen *g;
	struct phase_ctl pc;
	volatile bool running;
	volatile bool go;
	bool draining;
	uint64_t drain_end;
	unsigned int nflows;
	struct sflow *flows;
	/* TX: message k uses buffer k; a buffer is reused once its message is sent. */
	uint8_t *txbuf;
	size_t txstride;
	struct iovec *txiov;
	struct sockaddr_in *txname; /* message k's destination */
	bool *txbusy;
	unsigned int txfree_hint;
	/* RX. */
	uint8_t *rxbuf;
	size_t rxstride;
	struct mmsghdr *rxm;
	struct iovec *rxiov;
};

struct sock_ctx {
	struct bench_options *o;
	struct workload w;
	unsigned int n;
	struct sthr *t;
	struct gen *gens[BENCH_MAX_LCORES];
	struct sockaddr_in *dst; /* one per partition port */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool libkite; /* --mode libkite */
	uint64_t phase_serial;
	bool exiting;
	uint8_t *ctl_buf;
	char target[64];
};

static int
parse_cpus(const char *s, int *cpus, unsigned int max)
{
	unsigned int n = 0;
	const char *p = s;

	while (*p != '\0' && n < max) {
		char *end;
		long a = strtol(p, &end, 10), b;

		if (end == p || a < 0)
			return -EINVAL;
		b = a;
		if (*end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
			if (end == p || b < a)
				return -EINVAL;
		}
		for (long c = a; c <= b && n < max; c++)
			cpus[n++] = (int)c;
		if (*end == ',')
			end++;
		else if (*end != '\0')
			return -EINVAL;
		p = end;
	}
	return (int)n;
}

static int
open_socket(uint16_t port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int sz = SOCK_BUF;

	if (fd < 0)
		return -errno;
	/* Root may exceed rmem_max; others get what the sysctl allows. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_ANY);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* Offer every pending message of a flow to the kernel; keep what it refuses. */
static void
flow_flush(struct sthr *t, struct sflow *f)
{
	while (f->npend > 0) {
		int n = sendmmsg(f->fd, f->pend + f->first, f->npend, MSG_DONTWAIT);

		if (n <= 0) {
			if (n < 0 && (errno == EAGAIN || errno == ENOBUFS || errno == EINTR)) {
				gen_counters(t->g)->tx_retry++;
				return;
			}
			/*
			 * Anything else (e.g. no route) will not get better by
			 * retrying: drop the messages, their requests time out.
			 */
			n = 1;
		}
		for (int i = 0; i < n; i++) {
			struct iovec *iov = f->pend[f->first + (unsigned int)i].msg_hdr.msg_iov;
			t->txbusy[iov - t->txiov] = false;
		}
		f->first += (unsigned int)n;
		f->npend -= (unsigned int)n;
	}
	f->first = 0;
}

static int
free_buf(struct sthr *t, unsigned int burst)
{
	for (unsigned int k = 0; k < burst; k++) {
		unsigned int i = (t->txfree_hint + k) % burst;
		if (!t->txbusy[i]) {
			t->txfree_hint = i + 1;
			return (int)i;
		}
	}
	return -1;
}

static bool
sthr_iterate(struct sthr *t)
{
	struct sock_ctx *x = t->x;
	const unsigned int burst = x->o->burst;
	const uint64_t t0 = rte_rdtsc();
	uint64_t now = t0;
	bool sending;
	unsigned int pending = 0, work = 0;

	for (unsigned int fi = 0; fi < t->nflows; fi++) {
		int n = recvmmsg(t->flows[fi].fd, t->rxm, burst, MSG_DONTWAIT, NULL);

		if (n <= 0)
			continue;
		work += (unsigned int)n;
		now = rte_rdtsc();
		for (int i = 0; i < n; i++) {
			if (t->rxm[i].msg_hdr.msg_flags & MSG_TRUNC)
				gen_counters(t->g)->bad_reply++;
			else
				gen_rx(t->g, t->rxbuf + (size_t)i * t->rxstride, t->rxm[i].msg_len,
				       now);
		}
	}
	if (t->pc.phase == PHASE_LOAD && !t->pc.warm_done && now >= t->pc.warmup_end) {
		gen_mark_warm(t->g);
		t->pc.warm_done = true;
	}
	sending = now < t->pc.end && !bench_quit;
	for (unsigned int fi = 0; fi < t->nflows; fi++)
		pending += t->flows[fi].npend;
	if (sending && pending == 0) {
		struct gen_dgram d;
		int k;

		while ((k = free_buf(t, burst)) >= 0 && gen_prepare(t->g, now, &d)) {
			struct sflow *f = &t->flows[d.flow];
			struct mmsghdr *mh = &f->pend[f->npend++];
			uint8_t *buf = t->txbuf + (size_t)k * t->txstride;

			gen_write(t->g, &d, buf);
			t->txbusy[k] = true;
			t->txiov[k].iov_base = buf;
			t->txiov[k].iov_len = d.len;
			memset(mh, 0, sizeof(*mh));
			t->txname[k].sin_family = AF_INET;
			t->txname[k].sin_port = htons(d.dst_port);
			t->txname[k].sin_addr.s_addr = htonl(d.dst_ip);
			mh->msg_hdr.msg_name = &t->txname[k];
			mh->msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
			mh->msg_hdr.msg_iov = &t->txiov[k];
			mh->msg_hdr.msg_iovlen = 1;
			gen_sent(t->g, &d, now, 1);
			work++;
		}
	}
	for (unsigned int fi = 0; fi < t->nflows; fi++)
		flow_flush(t, &t->flows[fi]);
	gen_expire(t->g, now, false);
	if (work > 0)
		gen_counters(t->g)->busy_cycles += rte_rdtsc() - t0;

	if (t->pc.phase == PHASE_PRELOAD && gen_preload_done(t->g))
		return false;
	if (!sending || gen_exhausted(t->g)) {
		if (!t->draining) {
			t->draining = true;
			t->drain_end = now + x->w.timeout_tsc + x->w.tsc_hz / 100;
		}
		if (gen_inflight(t->g) == 0 || now >= t->drain_end || bench_quit)
			return false;
	}
	return true;
}

/* libkite's answers to a slot's batch, judged by the generator. */
static void
lk_account(struct sthr *t, struct lk_slot *s, uint64_t now)
{
	struct bench_stats *st = gen_counters(t->g);
	struct kite_client_stats cs;

	for (unsigned int i = 0; i < s->n; i++) {
		struct kite_op *op = &s->ops[i];
		struct gen_outcome o = { 0 };

		o.timeout = op->rc == KITE_TIMEOUT;
		o.status = op->status != 0 || op->rc == KITE_OK ? op->status : 0xff;
		o.flags = op->result_flags;
		o.value = op->result;
		o.vallen = (uint32_t)op->result_len;
		if (op->type == KITE_INCR && op->rc == KITE_OK)
			o.vallen = 8;
		gen_record(t->g, (enum bench_op)s->op[i], s->kidx[i], &o, now - s->t0);
		kite_op_clear(op);
	}
	kite_client_stats(s->c, &cs);
	st->tx_dgrams += cs.datagrams_sent - s->st0.datagrams_sent;
	st->tx_packets += cs.datagrams_sent - s->st0.datagrams_sent;
	st->rx_dgrams += cs.datagrams_received - s->st0.datagrams_received;
	st->st_not_my_vbucket += cs.redirects - s->st0.redirects;
	s->st0 = cs;
	s->busy = false;
}

/* Draw a batch into a slot and start it; false when the phase has no more. */
static bool
lk_fill(struct sthr *t, struct lk_slot *s)
{
	const struct workload *w = &t->x->w;
	enum bench_op op;
	uint64_t key;
	uint32_t vlen;

	s->n = 0;
	while (s->n < w->batch && gen_draw(t->g, &op, &key, &vlen)) {
		struct kite_op *k = &s->ops[s->n];
		uint8_t *v = s->val + (size_t)s->n * w->vmax;

		memset(k, 0, sizeof(*k));
		key_write(s->key[s->n], w->key_size, key,
			  op == OP_INCR ? KEY_PREFIX_COUNTER : KEY_PREFIX_VALUE);
		k->key = s->key[s->n];
		k->keylen = w->key_size;
		switch (op) {
		case OP_SET:
			k->type = KITE_SET;
			value_write(v, vlen, key, 1, &k->flags);
			k->value = v;
			k->vallen = vlen;
			break;
		case OP_DELETE:
			k->type = KITE_DELETE;
			break;
		case OP_INCR:
			k->type = KITE_INCR;
			k->delta = 1;
			k->create = 1;
			break;
		default:
			k->type = KITE_GET;
			break;
		}
		s->kidx[s->n] = key;
		s->op[s->n] = (uint8_t)op;
		s->n++;
	}
	if (s->n == 0)
		return false;
	s->t0 = rte_rdtsc();
	kite_submit(s->c, s->ops, s->n);
	s->busy = kite_progress(s->c, 0) == KITE_PENDING;
	if (!s->busy)
		lk_account(t, s, rte_rdtsc());
	return true;
}

static bool
lk_iterate(struct sthr *t)
{
	struct sock_ctx *x = t->x;
	const uint64_t t0 = rte_rdtsc();
	uint64_t now = t0;
	bool sending, more = true;
	unsigned int busy = 0, work = 0;

	for (unsigned int i = 0; i < t->nlk; i++) {
		struct lk_slot *s = &t->lk[i];
		if (s->busy && kite_progress(s->c, 0) != KITE_PENDING) {
			now = rte_rdtsc();
			lk_account(t, s, now);
			work++;
		}
	}
	if (t->pc.phase == PHASE_LOAD && !t->pc.warm_done && now >= t->pc.warmup_end) {
		gen_mark_warm(t->g);
		t->pc.warm_done = true;
	}
	sending = now < t->pc.end && !bench_quit;
	for (unsigned int i = 0; i < t->nlk; i++) {
		struct lk_slot *s = &t->lk[i];
		if (sending && more && !s->busy) {
			more = lk_fill(t, s);
			work += more;
		}
		busy += s->busy;
	}
	if (work > 0)
		gen_counters(t->g)->busy_cycles += rte_rdtsc() - t0;
	if (t->pc.phase == PHASE_PRELOAD && !more && busy == 0)
		return false;
	if (!sending || gen_exhausted(t->g)) {
		if (!t->draining) {
			t->draining = true;
			t->drain_end = now + 10 * x->w.timeout_tsc + x->w.tsc_hz / 10;
		}
		if (busy == 0 || now >= t->drain_end || bench_quit)
			return false;
	}
	return true;
}

static void *
sthr_main(void *arg)
{
	struct sthr *t = arg;
	struct sock_ctx *x = t->x;
	uint64_t seen = 0;

	if (t->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(t->cpu, &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
			fprintf(stderr, "kite-bench: thread %u: cannot pin to CPU %d\n", t->idx,
				t->cpu);
	}
	for (;;) {
		pthread_mutex_lock(&x->lock);
		while (!x->exiting && x->phase_serial == seen)
			pthread_cond_wait(&x->cond, &x->lock);
		if (x->exiting) {
			pthread_mutex_unlock(&x->lock);
			return NULL;
		}
		seen = x->phase_serial;
		pthread_mutex_unlock(&x->lock);

		t->draining = false;
		gen_start(t->g, t->pc.phase, rte_rdtsc());
		while (x->libkite ? lk_iterate(t) : sthr_iterate(t))
			;
		gen_expire(t->g, rte_rdtsc(), true);
		for (unsigned int fi = 0; fi < t->nflows; fi++) {
			/* Unsent messages are abandoned with the phase. */
			t->flows[fi].npend = 0;
			t->flows[fi].first = 0;
		}
		memset(t->txbusy, 0, sizeof(bool) * x->o->burst);
		t->running = false;
	}
}

static int
drv_launch(void *arg, enum gen_phase p, uint64_t warmup_end, uint64_t end)
{
	struct sock_ctx *x = arg;

	pthread_mutex_lock(&x->lock);
	for (unsigned int i = 0; i < x->n; i++) {
		struct sthr *t = &x->t[i];
		t->pc.phase = p;
		t->pc.warmup_end = warmup_end;
		t->pc.end = end;
		t->pc.warm_done = false;
		t->running = true;
	}
	x->phase_serial++;
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
	return 0;
}

static bool
drv_finished(void *arg)
{
	struct sock_ctx *x = arg;

	for (unsigned int i = 0; i < x->n; i++)
		if (x->t[i].running)
			return false;
	return true;
}

static void
drv_wait(void *arg)
{
	/* drv_finished() already saw every thread park itself. */
	(void)arg;
}

static int
drv_server_stats(void *arg, struct server_stats *s)
{
	struct sock_ctx *x = arg;
	uint8_t req[CTL_REQ_MAX];
	uint8_t cookie[sizeof(((struct ctl_collect *)0)->cookie)] = { 0 };
	static uint8_t dg[BENCH_UDP_MAX];
	static uint64_t stamp; /* this socket's own stamps */
	struct ctl_collect c;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int rc = -ETIMEDOUT;

	if (fd < 0)
		return -errno;
	for (int t = 0; t < CTL_TRIES && !bench_quit && rc != 0; t++) {
		uint16_t id = (uint16_t)(0xfff0 + t);
		uint32_t len;
		struct pollfd pfd = { fd, POLLIN, 0 };

		len = ctl_stat_request(&x->w, req, id, cookie,
				       x->w.guard == 2 ? kite_guard_stamp_next(&stamp, kite_guard_wall_us())
						       : 0);
		ctl_collect_init(&c, id, x->ctl_buf, x->w.reply_stride);
		if (sendto(fd, req, len, 0, (struct sockaddr *)&x->dst[0], sizeof(x->dst[0])) < 0)
			continue;
		while (!c.done && poll(&pfd, 1, 1000) > 0) {
			ssize_t n = recv(fd, dg, sizeof(dg), 0);
			if (n > 0)
				ctl_collect_add(&c, dg, (uint32_t)n);
		}
		if (c.done)
			rc = ctl_stat_parse(&c, s);
		/* Refused for want of a cookie (the guard's bound): again with the one it offered. */
		if (rc != 0 && c.done && !c.has_cookie)
			break;
		if (c.has_cookie)
			memcpy(cookie, c.cookie, sizeof(cookie));
	}
	close(fd);
	return rc;
}

/* Once a second: the map again; a newer epoch is the route from now on. */
static void
drv_tick(void *arg, double t)
{
	struct sock_ctx *x = arg;

	bench_route_refresh(&x->w, t, stdout);
}

static void
ctx_free(struct sock_ctx *x)
{
	if (x->t != NULL) {
		pthread_mutex_lock(&x->lock);
		x->exiting = true;
		pthread_cond_broadcast(&x->cond);
		pthread_mutex_unlock(&x->lock);
		for (unsigned int i = 0; i < x->n; i++) {
			struct sthr *t = &x->t[i];
			if (t->started)
				pthread_join(t->tid, NULL);
			for (unsigned int f = 0; t->flows != NULL && f < t->nflows; f++) {
				if (t->flows[f].fd >= 0)
					close(t->flows[f].fd);
				free(t->flows[f].pend);
			}
			free(t->flows);
			free(t->txbuf);
			free(t->txiov);
			free(t->txname);
			for (unsigned int s = 0; t->lk != NULL && s < t->nlk; s++) {
				kite_close(t->lk[s].c);
				free(t->lk[s].val);
			}
			free(t->lk);
			free(t->txbusy);
			free(t->rxbuf);
			free(t->rxm);
			free(t->rxiov);
			gen_free(t->g);
		}
		free(x->t);
	}
	free(x->dst);
	free(x->ctl_buf);
	bench_route_fini();
}

int
run_socket(struct bench_options *o)
{
	static struct sock_ctx ctx;
	struct sock_ctx *x = &ctx;
	struct bench_driver d;
	int cpus[BENCH_MAX_LCORES];
	int ncpus = 0;
	char err[256];
	int rc = -EINVAL;
	uint32_t burst = o->burst;

	memset(x, 0, sizeof(*x));
	pthread_mutex_init(&x->lock, NULL);
	pthread_cond_init(&x->cond, NULL);
	x->o = o;
	x->n = o->threads;
	if (workload_init(&x->w, o, bench_tsc_hz(), err, sizeof(err)) != 0) {
		fprintf(stderr, "kite-bench: %s\n", err);
		return -EINVAL;
	}
	if (o->echo) {
		fprintf(stderr, "kite-bench: --echo needs --mode dpdk\n");
		return -EINVAL;
	}
	x->libkite = strcmp(o->mode, "libkite") == 0;
	/* libkite routes by the map itself; socket mode computes the same routing. */
	if (!x->libkite && o->cluster[0] != '\0' &&
	    bench_route_init(&x->w, o, err, sizeof(err)) != 0) {
		fprintf(stderr, "kite-bench: %s\n", err);
		bench_route_fini();
		return -EINVAL;
	}
	if (o->cpus[0] != '\0') {
		ncpus = parse_cpus(o->cpus, cpus, BENCH_MAX_LCORES);
		if (ncpus <= 0) {
			fprintf(stderr, "kite-bench: --cpus '%s' is not a CPU list\n", o->cpus);
			return -EINVAL;
		}
	}
	if (o->src_port + x->n * o->flows - 1 > 65535) {
		fprintf(stderr, "kite-bench: --src-port + threads x --flows runs past 65535\n");
		return -EINVAL;
	}
	x->dst = calloc(BENCH_MAX_DESTS, sizeof(*x->dst));
	x->t = calloc(x->n, sizeof(*x->t));
	x->ctl_buf = malloc((size_t)KITE_MAX_REPLY_DGRAMS * x->w.reply_stride);
	if (x->dst == NULL || x->t == NULL || x->ctl_buf == NULL)
		goto nomem;
	/* STAT and other control requests go to the first destination (--cluster: a member). */
	for (uint32_t p = 0; p < x->w.ndest; p++) {
		x->dst[p].sin_family = AF_INET;
		x->dst[p].sin_port = htons(x->w.dest[p].port);
		x->dst[p].sin_addr.s_addr = htonl(x->w.dest[p].ip);
	}
	for (unsigned int i = 0; i < x->n; i++) {
		struct sthr *t = &x->t[i];
		struct gen_conf gc;

		t->x = x;
		t->idx = i;
		t->cpu = ncpus > 0 ? cpus[i % (unsigned int)ncpus] : -1;
		t->nflows = x->libkite ? 0 : o->flows;
		t->flows = calloc(o->flows, sizeof(*t->flows));
		if (t->flows == NULL)
			goto nomem;
		if (x->libkite) {
			char seeds[300];
			struct kite_options ko = { 0 };

			if (o->cluster[0] != '\0')
				snprintf(seeds, sizeof(seeds), "%s", o->cluster);
			else
				snprintf(seeds, sizeof(seeds), "%u.%u.%u.%u:%u", o->server >> 24,
					 (o->server >> 16) & 255, (o->server >> 8) & 255,
					 o->server & 255, o->udp_port);
			ko.seeds = seeds;
			ko.timeout_ms = o->timeout_ms;
			t->nlk = o->window < LK_MAX_SLOTS ? o->window : LK_MAX_SLOTS;
			t->lk = calloc(t->nlk, sizeof(*t->lk));
			if (t->lk == NULL)
				goto nomem;
			for (unsigned int s = 0; s < t->nlk; s++) {
				int krc = kite_open(&t->lk[s].c, &ko);
				if (krc != KITE_OK) {
					fprintf(stderr, "kite-bench: libkite: %s: %s\n", seeds,
						kite_strerror(krc));
					rc = -EIO;
					goto fail;
				}
				t->lk[s].val = malloc((size_t)x->w.batch * (x->w.vmax ? x->w.vmax : 1));
				if (t->lk[s].val == NULL)
					goto nomem;
			}
		}
		for (unsigned int f = 0; f < t->nflows; f++)
			t->flows[f].fd = -1;
		for (unsigned int f = 0; f < t->nflows; f++) {
			uint16_t port = (uint16_t)(o->src_port + i * o->flows + f);
			t->flows[f].fd = open_socket(port);
			t->flows[f].pend = calloc(burst, sizeof(struct mmsghdr));
			if (t->flows[f].fd < 0) {
				fprintf(stderr, "kite-bench: UDP port %u: %s\n", port,
					strerror(-t->flows[f].fd));
				rc = t->flows[f].fd;
				goto fail;
			}
			if (t->flows[f].pend == NULL)
				goto nomem;
		}
		t->txstride = x->w.max_dgram;
		t->txbuf = malloc(t->txstride * burst);
		t->txiov = calloc(burst, sizeof(struct iovec));
		t->txname = calloc(burst, sizeof(struct sockaddr_in));
		t->txbusy = calloc(burst, sizeof(bool));
		/* Replies never exceed the MTU we were told (memcached: 1400-byte payloads). */
		t->rxstride = o->mtu > 2048 ? o->mtu : 2048;
		t->rxbuf = malloc(t->rxstride * burst);
		t->rxm = calloc(burst, sizeof(struct mmsghdr));
		t->rxiov = calloc(burst, sizeof(struct iovec));
		if (t->txbuf == NULL || t->txiov == NULL || t->txname == NULL || t->txbusy == NULL ||
		    t->rxbuf == NULL ||
		    t->rxm == NULL || t->rxiov == NULL)
			goto nomem;
		for (unsigned int k = 0; k < burst; k++) {
			t->rxiov[k].iov_base = t->rxbuf + (size_t)k * t->rxstride;
			t->rxiov[k].iov_len = t->rxstride;
			t->rxm[k].msg_hdr.msg_iov = &t->rxiov[k];
			t->rxm[k].msg_hdr.msg_iovlen = 1;
		}
		memset(&gc, 0, sizeof(gc));
		gc.w = &x->w;
		gc.id = i;
		gc.nthreads = x->n;
		gc.window = o->window;
		gc.flows = o->flows;
		gc.seed = o->seed;
		gc.rate = o->rate / x->n / x->w.batch;
		gc.max_reqs = o->max_requests;
		gc.capture = (i == 0 && o->write_pcap[0]) ? o->pcap_count : 0;
		gc.eal = false;
		gc.socket_id = -1;
		t->g = gen_create(&gc);
		x->gens[i] = t->g;
		if (t->g == NULL)
			goto nomem;
	}
	for (unsigned int i = 0; i < x->n; i++) {
		if (pthread_create(&x->t[i].tid, NULL, sthr_main, &x->t[i]) != 0) {
			fprintf(stderr, "kite-bench: cannot start thread %u\n", i);
			rc = -EAGAIN;
			goto fail;
		}
		x->t[i].started = true;
	}
	if (x->libkite)
		snprintf(x->target, sizeof(x->target), "libkite %.50s",
			 o->cluster[0] ? o->cluster : "(--server)");
	else if (x->w.cluster)
		snprintf(x->target, sizeof(x->target), "cluster %.50s", o->cluster);
	else
		snprintf(x->target, sizeof(x->target), "%u.%u.%u.%u:%u", o->server >> 24,
			 (o->server >> 16) & 255, (o->server >> 8) & 255, o->server & 255,
			 o->udp_port);

	memset(&d, 0, sizeof(d));
	d.tick = x->w.cluster ? drv_tick : NULL;
	d.arg = x;
	d.nthreads = x->n;
	d.gens = x->gens;
	d.launch = drv_launch;
	d.finished = drv_finished;
	d.wait = drv_wait;
	d.server_stats = drv_server_stats;
	rc = bench_run(o, &x->w, &d, x->libkite ? "socket-libkite" : "socket", x->target);

	if (o->write_pcap[0] != '\0') {
		struct pcap_addrs a;
		long nf;

		memcpy(a.src_mac, "\x02\x00\x00\x00\x00\x01", 6);
		memcpy(a.dst_mac, "\x02\x00\x00\x00\x00\x02", 6);
		a.src_ip = o->src_ip;
		a.dst_ip = o->server;
		a.src_port_base = (uint16_t)o->src_port;
		a.mtu = (uint16_t)o->mtu;
		nf = pcap_write(o->write_pcap, x->gens, 1, &a, err, sizeof(err));
		if (nf < 0) {
			fprintf(stderr, "kite-bench: %s\n", err);
			if (rc == 0)
				rc = (int)nf;
		} else {
			printf("pcap: %ld frames in %s\n", nf, o->write_pcap);
		}
	}
	ctx_free(x);
	return rc;
nomem:
	fprintf(stderr, "kite-bench: out of memory\n");
	rc = -ENOMEM;
fail:
	ctx_free(x);
	return rc;
}
