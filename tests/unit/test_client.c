/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libkite against scripted fake nodes on loopback: routing by the map,
 * packing, retries under new request ids, timeouts, non-idempotent
 * writes, NOT_MY_VBUCKET -> newer map, ETMPFAIL, late and duplicate
 * replies, multi-datagram reassembly out of order, a memcached seed.
 *
 * A fake node is a thread with one UDP socket per partition port; each
 * request datagram goes to a handler the test chooses.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include <kite/kite.h>

#include "kite_cluster.h"
#include "kite_proto.h"
#include "kite_topo.h"

#define MAXN 2
#define PARTS 2

struct fake;
typedef void (*handler_fn)(struct fake *f, int sock, const struct sockaddr_in *from,
			   const uint8_t *dg, size_t len);

struct fake {
	int id;
	uint16_t base;
	int socks[PARTS];
	pthread_t th;
	atomic_bool stop;
	handler_fn handle;
	/* What it saw. */
	atomic_uint datagrams, requests;
	atomic_uint keys_wrong; /* keyed requests whose owner (by the test's map) is not this node */
	atomic_uint envelopes;  /* datagrams that carried the guard's envelope */
	uint16_t req_ids[64];
	atomic_uint n_req_ids;
	/* Behaviour. */
	atomic_uint drop_first;     /* datagrams to ignore before answering */
	uint64_t epoch;             /* told in NOT_MY_VBUCKET */
};

static struct fake fakes[MAXN];
static struct kite_cluster_member members[MAXN];
static struct kite_cluster_map map; /* what the fakes serve */
static uint64_t map_epoch = 100;
static unsigned int map_n = MAXN;

/* ---- the fake nodes ------------------------------------------------------ */

static void
send_reply(int sock, const struct sockaddr_in *to, uint16_t req_id, uint16_t seq, uint16_t total,
	   const uint8_t *body, size_t blen)
{
	uint8_t out[2048];
	struct kite_proto_frame f = { req_id, seq, total, 0 };

	kite_proto_frame_write(out, &f);
	memcpy(out + 8, body, blen);
	sendto(sock, out, blen + 8, 0, (const struct sockaddr *)to, sizeof(*to));
}

static size_t
res(uint8_t *p, uint8_t opcode, uint16_t status, uint32_t opaque, uint64_t cas, const void *ext,
    uint8_t extlen, const void *key, uint16_t keylen, const void *val, uint32_t vallen)
{
	kite_proto_write_res_hdr(p, opcode, keylen, extlen, status, extlen + keylen + vallen,
				 opaque, cas);
	if (extlen > 0)
		memcpy(p + 24, ext, extlen);
	if (keylen > 0)
		memcpy(p + 24 + extlen, key, keylen);
	if (vallen > 0)
		memcpy(p + 24 + extlen + keylen, val, vallen);
	return 24u + extlen + keylen + vallen;
}

static int
owner_of(const void *key, size_t keylen)
{
	uint32_t vb = (uint32_t)(kite_topo_key_hash(key, (uint16_t)keylen) & (map.vbuckets - 1));
	return kite_cluster_owner(&map, vb);
}

/* A replica of the key's vbucket (read_from = any): the second node of its list. */
static atomic_bool serve_replica;  /* fakes answer reads of keys they replicate */
static char replica_lags[16];      /* ... except this key: a miss, as a replica still filling */

static bool
replica_of(const void *key, size_t keylen, int id)
{
	uint32_t vb = (uint32_t)(kite_topo_key_hash(key, (uint16_t)keylen) & (map.vbuckets - 1));
	return map.copies > 1 && map.replicas > 0 && kite_cluster_nodes(&map, vb)[1] == id;
}

/* The fakes' store: a few keys, shared (the tests look at one node at a time). */
static struct {
	char key[64];
	uint8_t val[256]; /* bytes: sealed values are binary */
	uint16_t vlen;
} kv[256];
static unsigned int nkv;
static pthread_mutex_t kv_lock = PTHREAD_MUTEX_INITIALIZER;
/* The flags (extras) and value length of the last meta request a fake got (under kv_lock). */
static char last_meta[256];
static uint32_t last_meta_vallen;

/* A memcached-like node that also serves CLUSTER_MAP from `map`. */
static void
h_normal(struct fake *f, int sock, const struct sockaddr_in *from, const uint8_t *dg, size_t len)
{
	uint8_t out[65536];
	size_t o = 0, off = 8;
	uint16_t req_id = kite_proto_get16(dg);

	while (off + 24 <= len) {
		const uint8_t *h = dg + off;
		uint8_t op = h[1], extlen = h[4];
		uint16_t keylen = kite_proto_get16(h + 2);
		uint32_t bodylen = kite_proto_get32(h + 8), opaque = kite_proto_get32(h + 12);
		const uint8_t *key = h + 24 + extlen, *val = key + keylen;
		uint32_t vallen = bodylen - extlen - keylen;

		off += 24 + bodylen;
		atomic_fetch_add(&f->requests, 1);
		if (op == KITE_OP_CLUSTER_MAP) {
			uint8_t body[8192];
			int n = kite_cluster_msg_encode(&map, body, sizeof(body));
			o += res(out + o, op, 0, opaque, 0, NULL, 0, NULL, 0, body, (uint32_t)n);
			continue;
		}
		if (op == KITE_OP_NOOP || op == KITE_OP_VERSION) {
			o += res(out + o, op, 0, opaque, 0, NULL, 0, NULL, 0, "1.0", op == KITE_OP_VERSION ? 3 : 0);
			continue;
		}
		bool as_replica = keylen > 0 && op == KITE_OP_GETK && atomic_load(&serve_replica) &&
				  replica_of(key, keylen, f->id);
		if (as_replica && strlen(replica_lags) == keylen &&
		    memcmp(replica_lags, key, keylen) == 0) {
			o += res(out + o, op, KITE_STATUS_KEY_ENOENT, opaque, 0, NULL, 0, key, keylen,
				 "Not found", 9);
			continue;
		}
		if (keylen > 0 && owner_of(key, keylen) != f->id && !as_replica) {
			uint8_t e[8];
			atomic_fetch_add(&f->keys_wrong, 1);
			kite_proto_put64(e, f->epoch ? f->epoch : map.epoch);
			o += res(out + o, op, KITE_STATUS_NOT_MY_VBUCKET, opaque, 0, NULL, 0, NULL, 0, e, 8);
			continue;
		}
		pthread_mutex_lock(&kv_lock);
		unsigned int i;
		for (i = 0; i < nkv; i++)
			if (strlen(kv[i].key) == keylen && memcmp(kv[i].key, key, keylen) == 0)
				break;
		if (kite_proto_is_meta(op)) {
			/* Scripted meta replies: the flags it got are kept for the test to see. */
			char fl[256], ret[128];
			bool has_v, has_n;

			snprintf(fl, sizeof(fl), "%.*s", (int)extlen, (const char *)(h + 24));
			snprintf(last_meta, sizeof(last_meta), "%s", fl);
			last_meta_vallen = vallen;
			has_v = strchr(fl, 'v') != NULL;
			has_n = strchr(fl, 'N') != NULL;
			if (op == KITE_OP_META_GET && i < nkv) {
				snprintf(ret, sizeof(ret), "t-1 c77 f9 h1 H");
				o += res(out + o, op, 0, opaque, 0, ret, (uint8_t)strlen(ret), NULL, 0,
					 kv[i].val, has_v ? kv[i].vlen : 0);
			} else if (op == KITE_OP_META_GET && has_n) {
				snprintf(ret, sizeof(ret), "t30 c5 W");
				o += res(out + o, op, 0, opaque, 0, ret, (uint8_t)strlen(ret), NULL, 0,
					 NULL, 0);
			} else if (op == KITE_OP_META_ARITH) {
				snprintf(ret, sizeof(ret), "c6");
				o += res(out + o, op, 0, opaque, 0, ret, 2, NULL, 0, "42", has_v ? 2 : 0);
			} else if (op == KITE_OP_META_GET) {
				o += res(out + o, op, KITE_STATUS_KEY_ENOENT, opaque, 0, NULL, 0, NULL, 0,
					 NULL, 0);
			} else {
				snprintf(ret, sizeof(ret), "c78 Z X");
				o += res(out + o, op, 0, opaque, 0, ret, (uint8_t)strlen(ret), NULL, 0,
					 NULL, 0);
			}
			pthread_mutex_unlock(&kv_lock);
			continue;
		}
		if (op == KITE_OP_SET || op == KITE_OP_APPEND) {
			if (i == nkv && nkv < 256)
				nkv++;
			/* A full store answers STORED and keeps nothing (big batches). */
			if (i < 256) {
				snprintf(kv[i].key, sizeof(kv[i].key), "%.*s", (int)keylen, key);
				kv[i].vlen = (uint16_t)(vallen < sizeof(kv[i].val) ? vallen
									 : sizeof(kv[i].val));
				memcpy(kv[i].val, val, kv[i].vlen);
			}
			o += res(out + o, op, 0, opaque, 77, NULL, 0, NULL, 0, NULL, 0);
		} else if (op == KITE_OP_GETK && i < nkv) {
			uint8_t fl[4] = { 0, 0, 0, 9 };
			const size_t at = o;
			o += res(out + o, op, 0, opaque, 77, fl, 4, key, keylen, kv[i].val, kv[i].vlen);
			/* A key named hot... is hot on this node: the datatype bit says so. */
			if (keylen >= 3 && memcmp(key, "hot", 3) == 0)
				out[at + 5] = KITE_DATATYPE_HOT;
		} else {
			o += res(out + o, op, KITE_STATUS_KEY_ENOENT, opaque, 0, NULL, 0, key, keylen,
				 "Not found", 9);
		}
		pthread_mutex_unlock(&kv_lock);
	}
	send_reply(sock, from, req_id, 0, 1, out, o);
}

/* Answers every request with ETMPFAIL (a fenced owner). */
static void
h_tmpfail(struct fake *f, int sock, const struct sockaddr_in *from, const uint8_t *dg, size_t len)
{
	uint8_t out[4096];
	size_t o = 0, off = 8;

	(void)f;
	while (off + 24 <= len) {
		const uint8_t *h = dg + off;
		uint32_t bodylen = kite_proto_get32(h + 8);
		if (h[1] == KITE_OP_CLUSTER_MAP) {
			h_normal(f, sock, from, dg, len);
			return;
		}
		o += res(out + o, h[1], KITE_STATUS_ETMPFAIL, kite_proto_get32(h + 12), 0, NULL, 0,
			 NULL, 0, NULL, 0);
		off += 24 + bodylen;
	}
	send_reply(sock, from, kite_proto_get16(dg), 0, 1, out, o);
}

/* A GET's value in three datagrams, sent last first, then a duplicate and a stranger. */
static void
h_split(struct fake *f, int sock, const struct sockaddr_in *from, const uint8_t *dg, size_t len)
{
	uint8_t out[4096], val[3000];
	const uint8_t *h = dg + 8;
	size_t o;

	if (h[1] != KITE_OP_GETK) {
		h_normal(f, sock, from, dg, len);
		return;
	}
	for (unsigned int i = 0; i < sizeof(val); i++)
		val[i] = (uint8_t)('a' + i % 26);
	o = res(out, h[1], 0, kite_proto_get32(h + 12), 5, "\0\0\0\1", 4, h + 24,
		kite_proto_get16(h + 2), val, sizeof(val));
	uint16_t id = kite_proto_get16(dg);
	size_t part = (o + 2) / 3;
	send_reply(sock, from, (uint16_t)(id + 1), 0, 1, out, 24); /* another request's: ignored */
	for (int s = 2; s >= 0; s--) {
		size_t from_b = (size_t)s * part, n = from_b + part > o ? o - from_b : part;
		send_reply(sock, from, id, (uint16_t)s, 3, out + from_b, n);
		if (s == 1)
			send_reply(sock, from, id, 1, 3, out + from_b, n); /* a duplicate */
	}
}

/* memcached: CLUSTER_MAP is an unknown command; everything else as usual. */
static void
h_memcached(struct fake *f, int sock, const struct sockaddr_in *from, const uint8_t *dg,
	    size_t len)
{
	const uint8_t *h = dg + 8;
	uint8_t out[256];

	if (h[1] == KITE_OP_CLUSTER_MAP) {
		size_t o = res(out, h[1], KITE_STATUS_UNKNOWN_COMMAND, kite_proto_get32(h + 12), 0,
			       NULL, 0, NULL, 0, "Unknown command", 15);
		send_reply(sock, from, kite_proto_get16(dg), 0, 1, out, o);
		return;
	}
	/* Every key is ours: answer as the one node. */
	struct kite_cluster_map saved = map;
	(void)saved;
	h_normal(f, sock, from, dg, len);
}

static void *
fake_main(void *arg)
{
	struct fake *f = arg;
	struct pollfd p[PARTS];
	uint8_t buf[65536];

	for (int i = 0; i < PARTS; i++)
		p[i] = (struct pollfd){ f->socks[i], POLLIN, 0 };
	while (!atomic_load(&f->stop)) {
		if (poll(p, PARTS, 20) <= 0)
			continue;
		for (int i = 0; i < PARTS; i++) {
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t n;

			if (!(p[i].revents & POLLIN))
				continue;
			n = recvfrom(f->socks[i], buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
			if (n < 8)
				continue;
			atomic_fetch_add(&f->datagrams, 1);
			unsigned int k = atomic_fetch_add(&f->n_req_ids, 1);
			if (k < 64)
				f->req_ids[k] = kite_proto_get16(buf);
			if (atomic_load(&f->drop_first) > 0) {
				atomic_fetch_sub(&f->drop_first, 1);
				continue;
			}
			if (n > 12 && buf[8] == 0x8b) {
				/* libkite's guard envelope (docs/protocol.rst) before the requests. */
				atomic_fetch_add(&f->envelopes, 1);
				size_t el = buf[11];
				if (el < 4 || 8 + el > (size_t)n)
					continue;
				memmove(buf + 8, buf + 8 + el, (size_t)n - 8 - el);
				n -= (ssize_t)el;
			}
			f->handle(f, f->socks[i], &from, buf, (size_t)n);
		}
	}
	return NULL;
}

/* Bind PARTS consecutive ports on 127.0.0.1. */
static int
fake_bind(struct fake *f)
{
	for (int tries = 0; tries < 50; tries++) {
		uint16_t base = (uint16_t)(20000 + (rand() % 20000));
		int ok = 1;

		for (int i = 0; i < PARTS && ok; i++) {
			struct sockaddr_in a = { .sin_family = AF_INET,
						 .sin_port = htons((uint16_t)(base + i)),
						 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
			f->socks[i] = socket(AF_INET, SOCK_DGRAM, 0);
			if (bind(f->socks[i], (struct sockaddr *)&a, sizeof(a)) != 0) {
				for (int j = 0; j <= i; j++)
					close(f->socks[j]);
				ok = 0;
			}
		}
		if (ok) {
			f->base = base;
			return 0;
		}
	}
	return -1;
}

static void
build_map(unsigned int n, uint64_t epoch)
{
	if (map.nodes != NULL)
		kite_cluster_map_free(&map);
	assert_int_equal(kite_cluster_map_build(&map, members, n, 1024, 1, epoch), 0);
}

static int
setup(void **state)
{
	(void)state;
	memset(fakes, 0, sizeof(fakes));
	nkv = 0;
	for (int i = 0; i < MAXN; i++) {
		struct fake *f = &fakes[i];
		f->id = i;
		f->handle = h_normal;
		if (fake_bind(f) != 0)
			return -1;
		memset(&members[i], 0, sizeof(members[i]));
		snprintf(members[i].id, sizeof(members[i].id), "f%d", i);
		members[i].weight = 1;
		members[i].ip = INADDR_LOOPBACK;
		members[i].base_port = f->base;
		members[i].partitions = PARTS;
		members[i].state = KITE_CLUSTER_ACTIVE;
	}
	map_n = MAXN;
	build_map(map_n, map_epoch);
	/* Member index i of the sorted map is fake i: ids f0 < f1. */
	for (int i = 0; i < MAXN; i++)
		pthread_create(&fakes[i].th, NULL, fake_main, &fakes[i]);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	for (int i = 0; i < MAXN; i++) {
		atomic_store(&fakes[i].stop, true);
		pthread_join(fakes[i].th, NULL);
		for (int p = 0; p < PARTS; p++)
			close(fakes[i].socks[p]);
	}
	kite_cluster_map_free(&map);
	return 0;
}

static struct kite_client *
open_client(unsigned int timeout_ms, unsigned int retries)
{
	struct kite_client *c;
	char seed[64];
	struct kite_options o = { 0 };

	snprintf(seed, sizeof(seed), "127.0.0.1:%u", fakes[0].base);
	o.seeds = seed;
	o.timeout_ms = timeout_ms;
	o.retries = retries;
	assert_int_equal(kite_open(&c, &o), KITE_OK);
	return c;
}

/* ---- tests ------------------------------------------------------------------ */

/* Keys go to their owner's partition port, packed: no node sees another's key. */
static void
test_routing_and_packing(void **state)
{
	struct kite_client *c = open_client(500, 0);
	struct kite_map_info mi;
	struct kite_op ops[40];
	char keys[40][16];
	unsigned int before[MAXN];

	(void)state;
	kite_map_info(c, &mi);
	assert_int_equal(mi.epoch, map_epoch);
	assert_int_equal(mi.members, MAXN);
	memset(ops, 0, sizeof(ops));
	for (int i = 0; i < 40; i++) {
		snprintf(keys[i], sizeof(keys[i]), "key%d", i);
		ops[i].type = KITE_SET;
		ops[i].key = keys[i];
		ops[i].keylen = strlen(keys[i]);
		ops[i].value = "v";
		ops[i].vallen = 1;
		/* The client computes the same owner as the map the fakes serve. */
		assert_int_equal(kite_key_owner(c, keys[i], strlen(keys[i])),
				 owner_of(keys[i], strlen(keys[i])));
	}
	unsigned int env_before[MAXN];
	for (int i = 0; i < MAXN; i++) {
		before[i] = atomic_load(&fakes[i].datagrams);
		env_before[i] = atomic_load(&fakes[i].envelopes);
	}
	assert_int_equal(kite_exec(c, ops, 40), KITE_OK);
	for (int i = 0; i < MAXN; i++) {
		/* One datagram per partition port at most: 40 small SETs fit. */
		assert_true(atomic_load(&fakes[i].datagrams) - before[i] <= PARTS);
		assert_int_equal(atomic_load(&fakes[i].keys_wrong), 0);
		/* Each with the guard's envelope: the map showed Kite nodes, not a memcached. */
		assert_int_equal(atomic_load(&fakes[i].envelopes) - env_before[i],
				 atomic_load(&fakes[i].datagrams) - before[i]);
	}
	for (int i = 0; i < 40; i++) {
		assert_int_equal(ops[i].rc, KITE_OK);
		assert_int_equal(ops[i].answered_by, owner_of(keys[i], strlen(keys[i])));
	}
	/* Read back in one batch, with a miss. */
	struct kite_op g[3] = { { .type = KITE_GET, .key = "key1", .keylen = 4 },
				{ .type = KITE_GET, .key = "nope", .keylen = 4 },
				{ .type = KITE_GET, .key = "key2", .keylen = 4 } };
	assert_int_equal(kite_exec(c, g, 3), KITE_NOT_FOUND);
	assert_int_equal(g[0].rc, KITE_OK);
	assert_int_equal(g[0].result_len, 1);
	assert_int_equal(g[0].result_flags, 9);
	assert_int_equal(g[1].rc, KITE_NOT_FOUND);
	assert_string_equal((char *)g[1].result, "Not found");
	assert_int_equal(g[2].rc, KITE_OK);
	for (int i = 0; i < 3; i++)
		kite_op_clear(&g[i]);
	for (int i = 0; i < 40; i++)
		kite_op_clear(&ops[i]);
	/* Caller errors never reach the wire. */
	struct kite_op bad = { .type = KITE_GET, .key = "", .keylen = 0 };
	assert_int_equal(kite_exec(c, &bad, 1), KITE_BAD_ARGUMENT);
	kite_close(c);
}

/* A lost datagram is sent again under a new request id; all lost: a timeout in bounded time. */
static void
test_retry_and_timeout(void **state)
{
	struct kite_client *c = open_client(100, 2);
	struct kite_client_stats st;
	struct fake *f;
	struct timespec t0, t1;
	int o = owner_of("rk", 2);

	(void)state;
	f = &fakes[o];
	atomic_store(&f->n_req_ids, 0);
	atomic_store(&f->drop_first, 1);
	assert_int_equal(kite_set(c, "rk", 2, "v", 1, 0, 0, 0, NULL), KITE_OK);
	/* The SET twice (and maybe a map fetch after the timeout): every id new. */
	unsigned int n = atomic_load(&f->n_req_ids);
	assert_true(n >= 2 && n <= 3);
	for (unsigned int i = 0; i < n; i++)
		for (unsigned int j = i + 1; j < n; j++)
			assert_int_not_equal(f->req_ids[i], f->req_ids[j]);
	kite_client_stats(c, &st);
	assert_int_equal(st.retries, 1);

	/* Never answered: 3 attempts of 100 ms, then KITE_TIMEOUT. */
	atomic_store(&f->drop_first, 1000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	void *v;
	size_t len;
	assert_int_equal(kite_get(c, "rk", 2, &v, &len, NULL, NULL), KITE_TIMEOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms >= 290 && ms < 1500);

	/* An APPEND is not sent twice by default: the first may have been applied. */
	unsigned int before = atomic_load(&f->datagrams);
	struct kite_op ap = { .type = KITE_APPEND, .key = "rk", .keylen = 2, .value = "x", .vallen = 1 };
	assert_int_equal(kite_exec(c, &ap, 1), KITE_TIMEOUT);
	assert_int_equal(atomic_load(&f->datagrams) - before, 1);
	kite_op_clear(&ap);
	atomic_store(&f->drop_first, 0);
	kite_close(c);
}

/* NOT_MY_VBUCKET with a newer epoch: the client fetches the map and goes to the new owner. */
static void
test_redirect(void **state)
{
	struct kite_client *c = open_client(300, 1);
	struct kite_client_stats st;
	struct kite_map_info mi;
	char key[16];
	int k;

	(void)state;
	/* A key fake 1 owns now; then only fake 0 is in the map (a leave). */
	for (k = 0;; k++) {
		snprintf(key, sizeof(key), "mv%d", k);
		if (owner_of(key, strlen(key)) == 1)
			break;
	}
	build_map(1, map_epoch + 1);
	assert_int_equal(owner_of(key, strlen(key)), 0);
	assert_int_equal(kite_set(c, key, strlen(key), "moved", 5, 0, 0, 0, NULL), KITE_OK);
	kite_client_stats(c, &st);
	assert_int_equal(st.redirects, 1);
	assert_true(st.map_changes >= 2);
	kite_map_info(c, &mi);
	assert_int_equal(mi.epoch, map_epoch + 1);
	assert_int_equal(mi.members, 1);
	build_map(MAXN, map_epoch + 2);
	kite_close(c);
}

/* A fenced owner: retried with backoff, then KITE_TMPFAIL; reads are not refused by it here. */
static void
test_tmpfail(void **state)
{
	struct kite_client *c = open_client(300, 1);
	struct kite_client_stats st;
	int o = owner_of("tf", 2);

	(void)state;
	fakes[o].handle = h_tmpfail;
	assert_int_equal(kite_set(c, "tf", 2, "v", 1, 0, 0, 0, NULL), KITE_TMPFAIL);
	kite_client_stats(c, &st);
	assert_int_equal(st.tmpfails, 4); /* the first answer and three retries */
	fakes[o].handle = h_normal;
	kite_close(c);
}

/* Three datagrams out of order, one duplicated, one of another request: one value. */
static void
test_reassembly(void **state)
{
	struct kite_client *c = open_client(500, 0);
	struct kite_client_stats st;
	void *v;
	size_t len;
	uint32_t flags;
	int o = owner_of("big", 3);

	(void)state;
	fakes[o].handle = h_split;
	assert_int_equal(kite_get(c, "big", 3, &v, &len, &flags, NULL), KITE_OK);
	assert_int_equal(len, 3000);
	assert_int_equal(flags, 1);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(((uint8_t *)v)[i], 'a' + i % 26);
	free(v);
	kite_client_stats(c, &st);
	assert_true(st.late_replies >= 1); /* the stranger (and the duplicate after completion) */
	fakes[o].handle = h_normal;
	kite_close(c);
}

/* A seed that does not know CLUSTER_MAP (memcached) is a one-node map of itself. */
/*
 * value_key: the node holds XChaCha20-Poly1305 ciphertext (40 bytes more,
 * never the plaintext), GET returns the plaintext; another key, a value
 * moved to another key or another tenant id, or a changed byte end with
 * KITE_UNDECRYPTABLE; APPEND and INCR cannot work on ciphertext.
 */
static void
test_value_encryption(void **state)
{
	static const unsigned char k1[32] = "0123456789abcdef0123456789abcdef";
	static const unsigned char k2[32] = "fedcba9876543210fedcba9876543210";
	struct kite_client *c, *other;
	struct kite_options o = { 0 };
	char seed[64];
	void *v = NULL;
	size_t len = 0;
	unsigned int i;

	(void)state;
	snprintf(seed, sizeof(seed), "127.0.0.1:%u", fakes[0].base);
	o.seeds = seed;
	o.timeout_ms = 500;
	o.value_key = k1;
	assert_int_equal(kite_open(&c, &o), KITE_OK);
	o.value_key = k2;
	assert_int_equal(kite_open(&other, &o), KITE_OK);
	assert_int_equal(kite_set(c, "sealed", 6, "secret value", 12, 0, 0, 0, NULL), KITE_OK);
	pthread_mutex_lock(&kv_lock);
	for (i = 0; i < nkv; i++)
		if (strcmp(kv[i].key, "sealed") == 0)
			break;
	assert_true(i < nkv);
	assert_int_equal(kv[i].vlen, 12 + 40);
	assert_null(memmem(kv[i].val, kv[i].vlen, "secret", 6));
	/* The same ciphertext under another key: must not open. */
	unsigned int j = nkv++;
	snprintf(kv[j].key, sizeof(kv[j].key), "moved");
	memcpy(kv[j].val, kv[i].val, kv[i].vlen);
	kv[j].vlen = kv[i].vlen;
	pthread_mutex_unlock(&kv_lock);
	assert_int_equal(kite_get(c, "sealed", 6, &v, &len, NULL, NULL), KITE_OK);
	assert_int_equal(len, 12);
	assert_memory_equal(v, "secret value", 12);
	free(v);
	v = NULL;
	assert_int_equal(kite_get(c, "moved", 5, &v, &len, NULL, NULL), KITE_UNDECRYPTABLE);
	assert_null(v);
	assert_int_equal(kite_get(other, "sealed", 6, &v, &len, NULL, NULL), KITE_UNDECRYPTABLE);
	pthread_mutex_lock(&kv_lock);
	kv[i].val[30] ^= 1;
	pthread_mutex_unlock(&kv_lock);
	assert_int_equal(kite_get(c, "sealed", 6, &v, &len, NULL, NULL), KITE_UNDECRYPTABLE);
	struct kite_op ap = { .type = KITE_APPEND, .key = "sealed", .keylen = 6, .value = "x",
			      .vallen = 1 };
	assert_int_equal(kite_exec(c, &ap, 1), KITE_BAD_ARGUMENT);
	struct kite_op inc = { .type = KITE_INCR, .key = "n", .keylen = 1, .delta = 1 };
	assert_int_equal(kite_exec(c, &inc, 1), KITE_BAD_ARGUMENT);
	kite_close(other);
	/* The same key under another tenant id: the associated data differs. */
	kite_close(c);
	o.value_key = k1;
	o.tenant_id = 5;
	o.tenant_secret = k2;
	assert_int_equal(kite_open(&c, &o), KITE_OK);
	pthread_mutex_lock(&kv_lock);
	kv[i].val[30] ^= 1;
	pthread_mutex_unlock(&kv_lock);
	assert_int_equal(kite_get(c, "sealed", 6, &v, &len, NULL, NULL), KITE_UNDECRYPTABLE);
	kite_close(c);
}

static void
test_memcached_seed(void **state)
{
	struct kite_client *c;
	struct kite_map_info mi;
	char seed[64];
	struct kite_options o = { 0 };

	(void)state;
	fakes[0].handle = h_memcached;
	build_map(1, map_epoch + 3); /* so fake 0 owns every key it is asked */
	unsigned int env_before = atomic_load(&fakes[0].envelopes);
	snprintf(seed, sizeof(seed), "127.0.0.1:%u", fakes[0].base);
	o.seeds = seed;
	assert_int_equal(kite_open(&c, &o), KITE_OK);
	kite_map_info(c, &mi);
	assert_true(mi.seed_is_memcached);
	assert_int_equal(mi.members, 1);
	assert_int_equal(kite_set(c, "mc", 2, "v", 1, 0, 0, 0, NULL), KITE_OK);
	/* A memcached never gets the guard's envelope: it would wait for a text line's end. */
	assert_int_equal(atomic_load(&fakes[0].envelopes), env_before);
	kite_close(c);
	fakes[0].handle = h_normal;
	build_map(MAXN, map_epoch + 4);

	/* No seed answers: kite_open says so, in bounded time. */
	o.seeds = "127.0.0.1:1";
	o.timeout_ms = 50;
	assert_int_equal(kite_open(&c, &o), KITE_NO_MAP);
	o.seeds = "no-such-host.invalid:11211";
	assert_int_equal(kite_open(&c, &o), KITE_BAD_ARGUMENT);
}

/* A thread inside a call: the other thread's calls get KITE_BUSY and change nothing. */
static void *
busy_main(void *arg)
{
	struct kite_client *c = arg;
	void *v;
	size_t len;

	return (void *)(intptr_t)kite_get(c, "bk", 2, &v, &len, NULL, NULL);
}

static void
test_busy(void **state)
{
	struct kite_client *c = open_client(300, 1);
	struct fake *f = &fakes[owner_of("bk", 2)];
	struct kite_op ops[2] = { { .type = KITE_GET, .key = "bk", .keylen = 2 },
				  { .type = KITE_SET, .key = "b2", .keylen = 2, .value = "v", .vallen = 1 } };
	unsigned int before = atomic_load(&f->datagrams), all_before = 0;
	pthread_t th;
	void *ret;

	(void)state;
	atomic_store(&f->drop_first, 1000); /* silent: the thread stays inside ~600 ms */
	pthread_create(&th, NULL, busy_main, c);
	for (int i = 0; i < 2000 && atomic_load(&f->datagrams) == before; i++)
		usleep(1000);
	assert_true(atomic_load(&f->datagrams) > before); /* its GET is out: it is inside */
	for (int i = 0; i < MAXN; i++)
		all_before += atomic_load(&fakes[i].datagrams);
	assert_int_equal(kite_exec(c, ops, 2), KITE_BUSY);
	assert_int_equal(ops[0].rc, KITE_BUSY);
	assert_int_equal(ops[1].rc, KITE_BUSY);
	assert_int_equal(kite_submit(c, ops, 2), KITE_BUSY);
	assert_int_equal(kite_progress(c, 0), KITE_BUSY);
	assert_int_equal(kite_map_refresh(c), KITE_BUSY);
	assert_string_equal(kite_strerror(KITE_BUSY), "the client is in use by another thread");
	pthread_join(th, &ret);
	assert_int_equal((int)(intptr_t)ret, KITE_TIMEOUT);
	/*
	 * Nothing of the refused calls went out: the fakes saw the thread's
	 * GET sent again and at most a map fetch after its timeout, and
	 * stored no "b2".
	 */
	unsigned int all_after = 0;
	for (int i = 0; i < MAXN; i++)
		all_after += atomic_load(&fakes[i].datagrams);
	assert_true(all_after - all_before <= 3);
	pthread_mutex_lock(&kv_lock);
	for (unsigned int i = 0; i < nkv; i++)
		assert_string_not_equal(kv[i].key, "b2");
	pthread_mutex_unlock(&kv_lock);
	/* The client passes to this thread between calls and works. */
	atomic_store(&f->drop_first, 0);
	assert_int_equal(kite_exec(c, ops, 2), KITE_NOT_FOUND);
	assert_int_equal(ops[0].rc, KITE_NOT_FOUND);
	assert_int_equal(ops[1].rc, KITE_OK);
	kite_op_clear(&ops[0]);
	kite_op_clear(&ops[1]);
	kite_close(c);
}

/* The asynchronous API: submit, wait on the fd, progress. */
static void
test_async(void **state)
{
	struct kite_client *c = open_client(500, 0);
	struct kite_op ops[2] = { { .type = KITE_SET, .key = "a1", .keylen = 2, .value = "x", .vallen = 1 },
				  { .type = KITE_NODE_VERSION, .node = 0 } };
	int rc, turns = 0;

	(void)state;
	assert_int_equal(kite_submit(c, ops, 2), KITE_PENDING);
	assert_int_equal(kite_submit(c, ops, 2), KITE_BAD_ARGUMENT); /* one batch at a time */
	while ((rc = kite_progress(c, 0)) == KITE_PENDING) {
		struct pollfd p = { kite_fd(c), POLLIN, 0 };
		poll(&p, 1, 50);
		assert_true(++turns < 100);
	}
	assert_int_equal(rc, KITE_OK);
	assert_string_equal((char *)ops[1].result, "1.0");
	kite_op_clear(&ops[0]);
	kite_op_clear(&ops[1]);
	kite_close(c);
}

/*
 * read_from = any: GETs spread over the owner and its replica (the map
 * carries replicas = 1); a replica's miss is asked again at the owner.
 */
static void
test_read_any(void **state)
{
	struct kite_client *c;
	struct kite_options o = { 0 };
	struct kite_client_stats st;
	struct kite_op ops[40];
	char keys[40][16], seed[64];
	unsigned int by_replica = 0;

	(void)state;
	kite_cluster_map_free(&map);
	assert_int_equal(kite_cluster_map_build(&map, members, MAXN, 1024, 2, map_epoch), 0);
	map.replicas = 1;
	snprintf(seed, sizeof(seed), "127.0.0.1:%u", fakes[0].base);
	o.seeds = seed;
	o.timeout_ms = 500;
	o.read_from = KITE_READ_ANY;
	assert_int_equal(kite_open(&c, &o), KITE_OK);
	memset(ops, 0, sizeof(ops));
	for (int i = 0; i < 40; i++) {
		snprintf(keys[i], sizeof(keys[i]), "rkey%d", i);
		ops[i] = (struct kite_op){ .type = KITE_SET, .key = keys[i], .keylen = strlen(keys[i]),
					   .value = keys[i], .vallen = strlen(keys[i]) };
	}
	assert_int_equal(kite_exec(c, ops, 40), KITE_OK);
	for (int i = 0; i < 40; i++)
		kite_op_clear(&ops[i]);
	snprintf(replica_lags, sizeof(replica_lags), "rkey7");
	atomic_store(&serve_replica, true);
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < 40; i++)
			ops[i] = (struct kite_op){ .type = KITE_GET, .key = keys[i],
						   .keylen = strlen(keys[i]) };
		assert_int_equal(kite_exec(c, ops, 40), KITE_OK);
		for (int i = 0; i < 40; i++) {
			assert_int_equal(ops[i].rc, KITE_OK);
			assert_int_equal(ops[i].result_len, strlen(keys[i]));
			assert_memory_equal(ops[i].result, keys[i], strlen(keys[i]));
			by_replica += ops[i].answered_by != owner_of(keys[i], strlen(keys[i]));
			if (i == 7) /* the lagging replica's key: always the owner's answer */
				assert_int_equal(ops[i].answered_by, owner_of(keys[i], 5));
			kite_op_clear(&ops[i]);
		}
	}
	kite_client_stats(c, &st);
	/* About half of 160 reads go to the replica: far from none and from all. */
	assert_true(by_replica > 30 && by_replica < 130);
	assert_true(st.replica_reads >= by_replica);
	assert_int_equal(st.replica_reads - by_replica, st.replica_fallbacks);
	atomic_store(&serve_replica, false);
	replica_lags[0] = '\0';
	kite_close(c);
	build_map(map_n, map_epoch);
}

/*
 * A batch larger than 64 datagrams' worth: the oldest open datagrams are
 * built and sent while the rest is packed (they used to go out unbuilt).
 */
static void
test_big_batch(void **state)
{
	struct kite_client *c = open_client(500, 2);
	enum { N = 3000 };
	static struct kite_op ops[N];
	static char keys[N][16];
	char val[100];
	int ok = 0;

	(void)state;
	memset(val, 'v', sizeof(val));
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "bb%d", i);
		ops[i] = (struct kite_op){ .type = KITE_SET, .key = keys[i], .keylen = strlen(keys[i]),
					   .value = val, .vallen = sizeof(val) };
	}
	kite_exec(c, ops, N);
	for (int i = 0; i < N; i++) {
		ok += ops[i].rc == KITE_OK;
		kite_op_clear(&ops[i]);
	}
	assert_int_equal(ok, N);
	kite_close(c);
}

/* Meta commands: the flags go as the extras, the return flags come back parsed. */
static void
test_meta_ops(void **state)
{
	struct kite_client *c = open_client(300, 1);
	struct kite_op ops[6];
	char big[300];

	(void)state;
	assert_int_equal(kite_set(c, "mk", 2, "val", 3, 0, 0, 0, NULL), KITE_OK);
	memset(ops, 0, sizeof(ops));
	ops[0] = (struct kite_op){ .type = KITE_META_GET, .key = "mk", .keylen = 2,
				   .meta = "v t c f h" };
	ops[1] = (struct kite_op){ .type = KITE_META_GET, .key = "gone", .keylen = 4,
				   .meta = "v c N30" };
	ops[2] = (struct kite_op){ .type = KITE_META_GET, .key = "gone", .keylen = 4, .meta = "v" };
	ops[3] = (struct kite_op){ .type = KITE_META_ARITH, .key = "n", .keylen = 1, .meta = "N0 v" };
	ops[4] = (struct kite_op){ .type = KITE_GET, .key = "hotk", .keylen = 4 };
	ops[5] = (struct kite_op){ .type = KITE_META_GET, .key = "mk", .keylen = 2,
				   .meta = "v\r\nmn" };
	assert_int_equal(kite_set(c, "hotk", 4, "h", 1, 0, 0, 0, NULL), KITE_OK);
	kite_exec(c, ops, 6);
	assert_int_equal(ops[0].rc, KITE_OK);
	assert_int_equal(ops[0].result_len, 3);
	assert_memory_equal(ops[0].result, "val", 3);
	assert_int_equal(ops[0].ttl, -1);
	assert_int_equal(ops[0].result_cas, 77);
	assert_int_equal(ops[0].result_flags, 9);
	assert_int_equal(ops[0].meta_ret, KITE_META_FETCHED | KITE_META_HOT);
	/* A miss with N: this client won the recompute. */
	assert_int_equal(ops[1].rc, KITE_OK);
	assert_int_equal(ops[1].meta_ret, KITE_META_WIN);
	assert_int_equal(ops[1].ttl, 30);
	assert_int_equal(ops[1].result_len, 0);
	assert_int_equal(ops[2].rc, KITE_NOT_FOUND);
	assert_int_equal(ops[2].ttl, KITE_TTL_NONE);
	assert_int_equal(ops[3].rc, KITE_OK);
	assert_int_equal(ops[3].counter, 42);
	/* The hot hint of a plain GET (the datatype bit). */
	assert_int_equal(ops[4].rc, KITE_OK);
	assert_int_equal(ops[4].meta_ret, KITE_META_HOT);
	/* Flags with a line end never leave the client. */
	assert_int_equal(ops[5].rc, KITE_BAD_ARGUMENT);
	for (int i = 0; i < 6; i++)
		kite_op_clear(&ops[i]);

	/* META_SET: the flags as sent, the value as the body; Z and X parsed. */
	ops[0] = (struct kite_op){ .type = KITE_META_SET, .key = "ms", .keylen = 2, .value = "abcd",
				   .vallen = 4, .meta = "T60 C77 I" };
	memset(big, 'c', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ops[1] = (struct kite_op){ .type = KITE_META_DELETE, .key = "ms", .keylen = 2, .meta = big };
	kite_exec(c, ops, 2);
	assert_int_equal(ops[0].rc, KITE_OK);
	assert_int_equal(ops[0].meta_ret, KITE_META_BUSY | KITE_META_STALE);
	assert_int_equal(ops[0].result_cas, 78);
	pthread_mutex_lock(&kv_lock);
	assert_string_equal(last_meta, "T60 C77 I");
	assert_int_equal(last_meta_vallen, 4);
	pthread_mutex_unlock(&kv_lock);
	/* Over 255 bytes of flags: refused here. */
	assert_int_equal(ops[1].rc, KITE_BAD_ARGUMENT);
	kite_op_clear(&ops[0]);
	kite_op_clear(&ops[1]);
	kite_close(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routing_and_packing),
		cmocka_unit_test(test_read_any),
		cmocka_unit_test(test_retry_and_timeout),
		cmocka_unit_test(test_redirect),
		cmocka_unit_test(test_tmpfail),
		cmocka_unit_test(test_reassembly),
		cmocka_unit_test(test_memcached_seed),
		cmocka_unit_test(test_value_encryption),
		cmocka_unit_test(test_async),
		cmocka_unit_test(test_busy),
		cmocka_unit_test(test_meta_ops),
		cmocka_unit_test(test_big_batch),
	};

	srand((unsigned int)getpid());
	return cmocka_run_group_tests(tests, setup, teardown);
}
