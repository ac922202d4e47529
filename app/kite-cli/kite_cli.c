/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * kite-cli: a command-line client for Kite, or for any memcached started
 * with -U, over the memcached UDP binary protocol.
 *
 * It uses kernel UDP sockets and links only the kite_proto codec (no DPDK),
 * so it runs anywhere a shell does. One command is one request datagram
 * (batch-get: as few datagrams as the keys need); the reply may span
 * several datagrams and, from a Kite node with several workers, several
 * messages that share the request's req_id. A lost datagram is a timeout;
 * each retry sends the request again under a fresh random req_id so a late
 * reply to an earlier attempt can never be mistaken for the current one.
 *
 * Exit codes (also in --help and docs/kite-cli.rst):
 *   0 success, 1 a cache answer that is not success (not found, exists,
 *   not stored, non-numeric value), 2 usage error, 3 timeout or network
 *   error (including a malformed reply), 4 the server refused the request
 *   (EINVAL, E2BIG, ENOMEM, unknown command, any other status).
 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kite_proto.h"
#include "kite_topo.h"

enum cli_exit {
	EXIT_OK = 0,
	EXIT_CACHE = 1,
	EXIT_USAGE = 2,
	EXIT_NET = 3,
	EXIT_SERVER = 4,
};

#define DEFAULT_HOST	   "127.0.0.1"
#define DEFAULT_PORT	   "11211"
#define DEFAULT_TIMEOUT_MS 1000
#define DEFAULT_RETRIES	   2
/* batch-get packs its requests into datagrams of at most this many bytes. */
#define BATCH_DGRAM_MAX 1400
/* Largest UDP payload an IPv4 datagram carries. */
#define UDP_PAYLOAD_MAX 65507
/* Reply datagrams kept per attempt: a 1 MiB value is about 750 of 1400 bytes. */
#define MAX_REPLY_DGRAMS 4096
/* Opaque of batch-get's terminating NOOP; key requests use their index. */
#define OPAQUE_NOOP 0xfffffffeu

struct cli {
	const char *prog;
	const char *host;
	const char *port;
	unsigned int timeout_ms;
	unsigned int retries;
	bool quiet;
	bool verbose;
	int fd;
};

/* Options a command may take after its name. */
enum {
	OPT_FLAGS = 1u << 0,
	OPT_TTL = 1u << 1,
	OPT_INITIAL = 1u << 2,
	OPT_CAS = 1u << 3,
};

struct cmd_opts {
	unsigned int seen;
	uint32_t flags;
	uint32_t ttl;
	uint64_t initial;
	uint64_t cas;
};

/* One reply datagram, placed into a message by (total, seq). */
struct rx_dgram {
	uint16_t seq;
	uint16_t total;
	unsigned int msg;
	size_t len;
	uint8_t *data;
};

struct rx_msg {
	uint16_t total;
	uint16_t have;
};

/* Everything received for one attempt, and the responses parsed out of it. */
struct reply {
	struct rx_dgram *dg;
	unsigned int ndg;
	struct rx_msg *msgs;
	unsigned int nmsgs;
	uint8_t *stream;
	size_t stream_len;
	struct kite_res *res;
	unsigned int nres;
};

/* Says whether the responses collected so far complete the exchange. */
typedef bool (*done_fn)(const struct reply *r, void *arg);

static const char *const status_names[] = {
	[0x00] = "SUCCESS",	  [0x01] = "KEY_ENOENT",      [0x02] = "KEY_EEXISTS",
	[0x03] = "E2BIG",	  [0x04] = "EINVAL",	      [0x05] = "NOT_STORED",
	[0x06] = "DELTA_BADVAL",  [0x07] = "NOT_MY_VBUCKET",  [0x20] = "AUTH_ERROR",
	[0x21] = "AUTH_CONTINUE", [0x81] = "UNKNOWN_COMMAND", [0x82] = "ENOMEM",
	[0x83] = "NOT_SUPPORTED", [0x84] = "EINTERNAL",	      [0x85] = "EBUSY",
	[0x86] = "ETMPFAIL",
};

static const char *
status_name(uint16_t status)
{
	if (status < sizeof(status_names) / sizeof(status_names[0]) && status_names[status])
		return status_names[status];
	return "UNKNOWN_STATUS";
}

/* A cache answer that is not success exits 1; every other refusal exits 4. */
static int
status_exit(uint16_t status)
{
	switch (status) {
	case KITE_STATUS_OK:
		return EXIT_OK;
	case KITE_STATUS_KEY_ENOENT:
	case KITE_STATUS_KEY_EEXISTS:
	case KITE_STATUS_NOT_STORED:
	case KITE_STATUS_DELTA_BADVAL:
		return EXIT_CACHE;
	default:
		return EXIT_SERVER;
	}
}

static void
usage(FILE *f, const char *prog)
{
	fprintf(f,
		"Usage: %s [-s HOST] [-p PORT] [-t TIMEOUT_MS] [-r RETRIES] [-q] [-v]\n"
		"       COMMAND [ARGS]\n"
		"\n"
		"Talks to a Kite node (or memcached -U) with the memcached binary\n"
		"protocol over UDP.\n"
		"\n"
		"Options:\n"
		"  -s, --server HOST     server name or address (default %s)\n"
		"  -p, --port PORT       UDP port (default %s)\n"
		"                        KITE_SERVER=HOST:PORT (or [V6ADDR]:PORT) replaces\n"
		"                        both defaults; -s and -p override it\n"
		"  -t, --timeout MS      wait per attempt, milliseconds (default %d)\n"
		"  -r, --retries N       extra attempts after a timeout (default %d); each\n"
		"                        uses a new random req_id. A retried incr, decr,\n"
		"                        append or prepend may have been applied by a lost\n"
		"                        attempt.\n"
		"  -q, --quiet           print nothing on success and no message for exit\n"
		"                        code 1\n"
		"  -v, --verbose         also print flags and CAS (get, touch, incr, decr,\n"
		"                        batch-get)\n"
		"  -h, --help            this text\n"
		"  -V, --version         kite-cli's version\n"
		"\n"
		"Commands:\n"
		"  get KEY                       print the value\n"
		"  set KEY VALUE [--flags N] [--ttl S] [--cas N]\n"
		"  add KEY VALUE [--flags N] [--ttl S]\n"
		"  replace KEY VALUE [--flags N] [--ttl S] [--cas N]\n"
		"  append KEY VALUE [--cas N]    (flags and TTL of the item are kept)\n"
		"  prepend KEY VALUE [--cas N]\n"
		"                                these print \"STORED cas=N\"\n"
		"  delete KEY [--cas N]          print \"DELETED\"\n"
		"  incr KEY [DELTA] [--initial N] [--ttl S] [--cas N]\n"
		"  decr KEY [DELTA] [--initial N] [--ttl S] [--cas N]\n"
		"                                DELTA defaults to 1; print the new\n"
		"                                value. Without --initial a missing key\n"
		"                                is not created; --ttl is the TTL of a\n"
		"                                created key and needs --initial\n"
		"  touch KEY TTL                 set a new TTL; print \"TOUCHED\"\n"
		"  stats [GROUP]                 print \"STAT name value\" lines\n"
		"  version                       print the server's version\n"
		"  flush [DELAY]                 invalidate every item (after DELAY s);\n"
		"                                print \"OK\"\n"
		"  noop                          round trip; print \"OK\"\n"
		"  batch-get KEY...              GETK per key and a NOOP, packed into\n"
		"                                datagrams of at most %d bytes; print\n"
		"                                \"VALUE KEY FLAGS BYTES\", the value, then\n"
		"                                \"END\"; missing keys are named on stderr\n"
		"                                as \"NOT_FOUND KEY\"\n"
		"  topology                      Kite's partition layout: \"partitions P\n"
		"                                workers W base_port B hash xxh64 seed S\",\n"
		"                                then \"partition N port U worker W\" lines\n"
		"\n"
		"TTL: seconds up to 2592000 (30 days), larger values are a unix time, 0\n"
		"never expires. Values are taken byte for byte from the argument; \"--\"\n"
		"ends options, so \"set k -- --v\" stores \"--v\". get prints the value\n"
		"followed by a newline.\n"
		"\n"
		"Exit codes:\n"
		"  0  success\n"
		"  1  a cache answer that is not success: KEY_ENOENT (not found;\n"
		"     batch-get: any key missing), KEY_EEXISTS (add of an existing key,\n"
		"     CAS mismatch), NOT_STORED (append/prepend of a missing key),\n"
		"     DELTA_BADVAL (incr/decr of a non-numeric value)\n"
		"  2  usage error\n"
		"  3  timeout (every attempt) or network error, or a malformed reply\n"
		"  4  the server refused the request: EINVAL, E2BIG, ENOMEM,\n"
		"     UNKNOWN_COMMAND or any other status\n"
		"Errors print the memcached status name and the server's message on\n"
		"stderr, e.g. \"kite-cli: KEY_ENOENT: Not found\".\n",
		prog, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_TIMEOUT_MS, DEFAULT_RETRIES,
		BATCH_DGRAM_MAX);
}

static int
usage_error(const struct cli *c, const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", c->prog);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry '%s --help'.\n", c->prog);
	return EXIT_USAGE;
}

/* Parse a whole decimal number in [0, max]. */
static bool
parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return false;
	*out = v;
	return true;
}

/* ---- socket and exchange ------------------------------------------------ */

/* Split KITE_SERVER's HOST:PORT ([V6]:PORT for IPv6) into static buffers. */
static bool
parse_server_env(const char *env, const char **host, const char **port)
{
	static char hbuf[256];
	const char *colon;
	size_t hl;

	if (env[0] == '[') {
		const char *close = strchr(env, ']');
		if (close == NULL || close[1] != ':' || close[2] == '\0')
			return false;
		hl = (size_t)(close - env - 1);
		if (hl == 0 || hl >= sizeof(hbuf))
			return false;
		memcpy(hbuf, env + 1, hl);
		*port = close + 2;
	} else {
		colon = strrchr(env, ':');
		if (colon == NULL || colon == env || colon[1] == '\0')
			return false;
		hl = (size_t)(colon - env);
		if (hl >= sizeof(hbuf))
			return false;
		memcpy(hbuf, env, hl);
		*port = colon + 1;
	}
	hbuf[hl] = '\0';
	*host = hbuf;
	return true;
}

static int
open_socket(struct cli *c)
{
	struct addrinfo hints, *ai = NULL, *a;
	int rc, fd = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	rc = getaddrinfo(c->host, c->port, &hints, &ai);
	if (rc != 0) {
		fprintf(stderr, "%s: %s:%s: %s\n", c->prog, c->host, c->port, gai_strerror(rc));
		return rc == EAI_SERVICE ? EXIT_USAGE : EXIT_NET;
	}
	for (a = ai; a != NULL; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		/* Connected: only the server's datagrams arrive, and an ICMP error is seen. */
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		fprintf(stderr, "%s: %s:%s: %s\n", c->prog, c->host, c->port, strerror(errno));
		return EXIT_NET;
	}
	/* Room for a 1 MiB value in 1400-byte datagrams before we read any. */
	int sz = 8 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) != 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	c->fd = fd;
	return EXIT_OK;
}

static uint16_t
random_req_id(void)
{
	uint16_t id;

	if (getrandom(&id, sizeof(id), 0) == (ssize_t)sizeof(id))
		return id;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint16_t)(ts.tv_nsec ^ getpid());
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
reply_reset(struct reply *r)
{
	for (unsigned int i = 0; i < r->ndg; i++)
		free(r->dg[i].data);
	r->ndg = 0;
	r->nmsgs = 0;
	free(r->stream);
	r->stream = NULL;
	r->stream_len = 0;
	free(r->res);
	r->res = NULL;
	r->nres = 0;
}

static void
reply_free(struct reply *r)
{
	reply_reset(r);
	free(r->dg);
	free(r->msgs);
	r->dg = NULL;
	r->msgs = NULL;
}

/*
 * Place a datagram into the first message of its total that lacks its seq.
 * Several messages share one req_id when several workers of a node (or
 * memcached, once per response) answer one request datagram.
 */
static bool
reply_add(struct reply *r, uint16_t seq, uint16_t total, const uint8_t *data, size_t len)
{
	unsigned int m;

	if (r->dg == NULL) {
		r->dg = calloc(MAX_REPLY_DGRAMS, sizeof(*r->dg));
		r->msgs = calloc(MAX_REPLY_DGRAMS, sizeof(*r->msgs));
		if (r->dg == NULL || r->msgs == NULL)
			return false;
	}
	if (r->ndg == MAX_REPLY_DGRAMS)
		return false;
	for (m = 0; m < r->nmsgs; m++) {
		if (r->msgs[m].total != total || r->msgs[m].have == total)
			continue;
		bool dup = false;
		for (unsigned int i = 0; i < r->ndg; i++)
			if (r->dg[i].msg == m && r->dg[i].seq == seq)
				dup = true;
		if (!dup)
			break;
	}
	if (m == r->nmsgs) {
		r->msgs[m].total = total;
		r->msgs[m].have = 0;
		r->nmsgs++;
	}
	struct rx_dgram *d = &r->dg[r->ndg];
	d->data = malloc(len ? len : 1);
	if (d->data == NULL)
		return false;
	memcpy(d->data, data, len);
	d->len = len;
	d->seq = seq;
	d->total = total;
	d->msg = m;
	r->ndg++;
	r->msgs[m].have++;
	return true;
}

static bool
reply_complete(const struct reply *r)
{
	if (r->nmsgs == 0)
		return false;
	for (unsigned int m = 0; m < r->nmsgs; m++)
		if (r->msgs[m].have != r->msgs[m].total)
			return false;
	return true;
}

/* Concatenate the messages (each in seq order) and parse the responses. @return 0 or -EINVAL. */
static int
reply_parse(struct reply *r)
{
	size_t total = 0, off = 0;
	unsigned int cap = 0;

	free(r->stream);
	free(r->res);
	r->stream = NULL;
	r->res = NULL;
	r->nres = 0;
	for (unsigned int i = 0; i < r->ndg; i++)
		total += r->dg[i].len;
	r->stream = malloc(total ? total : 1);
	if (r->stream == NULL)
		return -ENOMEM;
	for (unsigned int m = 0; m < r->nmsgs; m++)
		for (uint16_t s = 0; s < r->msgs[m].total; s++)
			for (unsigned int i = 0; i < r->ndg; i++)
				if (r->dg[i].msg == m && r->dg[i].seq == s) {
					memcpy(r->stream + off, r->dg[i].data, r->dg[i].len);
					off += r->dg[i].len;
				}
	r->stream_len = off;

	off = 0;
	while (off < r->stream_len) {
		struct kite_res res;
		int n = kite_proto_parse_res(r->stream + off, r->stream_len - off, &res);
		if (n < 0)
			return -EINVAL;
		if (r->nres == cap) {
			cap = cap ? cap * 2 : 16;
			struct kite_res *nr = realloc(r->res, cap * sizeof(*nr));
			if (nr == NULL)
				return -ENOMEM;
			r->res = nr;
		}
		r->res[r->nres++] = res;
		off += (size_t)n;
	}
	return 0;
}

/*
 * Send body (requests without the frame) and collect the reply until done()
 * holds, then linger linger_ms for stragglers. Retries on timeout.
 * @return EXIT_OK with r filled, or EXIT_NET (message printed).
 */
static int
exchange(struct cli *c, const uint8_t *body, size_t blen, done_fn done, void *arg,
	 unsigned int linger_ms, struct reply *r)
{
	static uint8_t rx[UDP_PAYLOAD_MAX + 1];
	uint8_t *tx;
	bool malformed = false;

	if (blen + KITE_FRAME_HDR_LEN > UDP_PAYLOAD_MAX) {
		fprintf(stderr, "%s: request of %zu bytes does not fit one UDP datagram\n", c->prog,
			blen);
		return EXIT_USAGE;
	}
	tx = malloc(blen + KITE_FRAME_HDR_LEN);
	if (tx == NULL) {
		fprintf(stderr, "%s: out of memory\n", c->prog);
		return EXIT_NET;
	}
	memcpy(tx + KITE_FRAME_HDR_LEN, body, blen);

	for (unsigned int attempt = 0; attempt <= c->retries; attempt++) {
		struct kite_proto_frame f = { random_req_id(), 0, 1, 0 };
		int64_t deadline = now_ms() + c->timeout_ms;
		int64_t linger_end = -1;

		reply_reset(r);
		malformed = false;
		kite_proto_frame_write(tx, &f);
		if (send(c->fd, tx, blen + KITE_FRAME_HDR_LEN, 0) < 0) {
			fprintf(stderr, "%s: send to %s:%s: %s\n", c->prog, c->host, c->port,
				strerror(errno));
			free(tx);
			return EXIT_NET;
		}
		for (;;) {
			int64_t now = now_ms();
			int64_t until =
				linger_end >= 0 && linger_end < deadline ? linger_end : deadline;
			if (now >= until)
				break;
			struct pollfd p = { c->fd, POLLIN, 0 };
			int pr = poll(&p, 1, (int)(until - now));
			if (pr < 0 && errno != EINTR) {
				fprintf(stderr, "%s: poll: %s\n", c->prog, strerror(errno));
				free(tx);
				return EXIT_NET;
			}
			if (pr <= 0)
				continue;
			ssize_t n = recv(c->fd, rx, sizeof(rx), 0);
			if (n < 0) {
				if (errno == EINTR || errno == EAGAIN)
					continue;
				fprintf(stderr, "%s: %s:%s: %s\n", c->prog, c->host, c->port,
					strerror(errno));
				free(tx);
				return EXIT_NET;
			}
			struct kite_proto_frame rf;
			if (n < KITE_FRAME_HDR_LEN)
				continue;
			rf.req_id = kite_proto_get16(rx);
			rf.seq = kite_proto_get16(rx + 2);
			rf.total = kite_proto_get16(rx + 4);
			/* A late reply to an earlier attempt, or nonsense: not ours. */
			if (rf.req_id != f.req_id || rf.total == 0 || rf.seq >= rf.total)
				continue;
			if (!reply_add(r, rf.seq, rf.total, rx + KITE_FRAME_HDR_LEN,
				       (size_t)n - KITE_FRAME_HDR_LEN)) {
				fprintf(stderr, "%s: reply larger than %d datagrams\n", c->prog,
					MAX_REPLY_DGRAMS);
				free(tx);
				return EXIT_NET;
			}
			if (!reply_complete(r)) {
				/* A straggler's first datagram: wait for the rest of it. */
				if (linger_end >= 0)
					linger_end = deadline;
				continue;
			}
			if (reply_parse(r) != 0) {
				malformed = true;
				continue;
			}
			malformed = false;
			if (linger_end >= 0) {
				linger_end = now_ms() + linger_ms;
			} else if (done(r, arg)) {
				if (linger_ms == 0) {
					free(tx);
					return EXIT_OK;
				}
				linger_end = now_ms() + linger_ms;
			}
		}
		/* Lingered with every message complete: the reply is whole. */
		if (linger_end >= 0 && !malformed && reply_complete(r)) {
			free(tx);
			return EXIT_OK;
		}
	}
	free(tx);
	if (malformed)
		fprintf(stderr, "%s: malformed reply from %s:%s\n", c->prog, c->host, c->port);
	else
		fprintf(stderr, "%s: no reply from %s:%s after %u attempt(s) of %u ms\n", c->prog,
			c->host, c->port, c->retries + 1, c->timeout_ms);
	return EXIT_NET;
}

/* Done when a response carrying this opaque has arrived (STAT: its terminator). */
struct want {
	uint32_t opaque;
	bool stat;
};

static bool
done_opaque(const struct reply *r, void *arg)
{
	const struct want *w = arg;

	for (unsigned int i = 0; i < r->nres; i++) {
		const struct kite_res *x = &r->res[i];
		if (x->opaque != w->opaque)
			continue;
		if (!w->stat || x->keylen == 0 || x->status != KITE_STATUS_OK)
			return true;
	}
	return false;
}

static const struct kite_res *
find_res(const struct reply *r, uint32_t opaque)
{
	for (unsigned int i = 0; i < r->nres; i++)
		if (r->res[i].opaque == opaque)
			return &r->res[i];
	return NULL;
}

/* Report a non-success status: name and message on stderr. @return the exit code. */
static int
report_status(const struct cli *c, const struct kite_res *x)
{
	int code = status_exit(x->status);

	if (code == EXIT_CACHE && c->quiet)
		return code;
	if (x->vallen > 0)
		fprintf(stderr, "%s: %s: %.*s\n", c->prog, status_name(x->status), (int)x->vallen,
			(const char *)x->value);
	else
		fprintf(stderr, "%s: %s: %s\n", c->prog, status_name(x->status),
			kite_proto_status_str((uint8_t)x->status));
	return code;
}

/* Build one request, exchange it, and find its response. */
static int
simple_request(struct cli *c, uint8_t opcode, uint64_t cas, const void *ext, uint8_t extlen,
	       const void *key, uint16_t keylen, const void *val, uint32_t vallen, struct reply *r,
	       const struct kite_res **out)
{
	const size_t cap = (size_t)KITE_BIN_HDR_LEN + extlen + keylen + vallen;
	uint8_t *buf = malloc(cap);
	struct want w = { 0x4b495445u /* "KITE" */, opcode == KITE_OP_STAT };
	int n, rc;

	if (buf == NULL) {
		fprintf(stderr, "%s: out of memory\n", c->prog);
		return EXIT_NET;
	}
	n = kite_proto_build_req(buf, cap, opcode, w.opaque, cas, ext, extlen, key, keylen, val,
				 vallen);
	if (n < 0) {
		free(buf);
		fprintf(stderr, "%s: cannot encode the request\n", c->prog);
		return EXIT_USAGE;
	}
	rc = exchange(c, buf, (size_t)n, done_opaque, &w, 0, r);
	free(buf);
	if (rc != EXIT_OK)
		return rc;
	*out = find_res(r, w.opaque);
	if (*out == NULL) {
		fprintf(stderr, "%s: reply without our opaque\n", c->prog);
		return EXIT_NET;
	}
	return EXIT_OK;
}

/* ---- command arguments --------------------------------------------------- */

/*
 * Split a command's arguments into positionals and the options in `allowed`.
 * Options may come anywhere; "--" makes the rest positional; an argument
 * with one leading '-' is positional (so a value may start with '-').
 */
static int
parse_cmd_args(struct cli *c, int argc, char **argv, unsigned int allowed, struct cmd_opts *o,
	       char **pos, int min_pos, int max_pos, int *npos)
{
	static const struct {
		const char *name;
		unsigned int bit;
	} names[] = { { "flags", OPT_FLAGS },
		      { "ttl", OPT_TTL },
		      { "initial", OPT_INITIAL },
		      { "cas", OPT_CAS } };
	bool only_pos = false;

	memset(o, 0, sizeof(*o));
	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!only_pos && strcmp(a, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (!only_pos && (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0)) {
			c->verbose = true;
			continue;
		}
		if (!only_pos && strncmp(a, "--", 2) == 0) {
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t nl = eq ? (size_t)(eq - name) : strlen(name);
			unsigned int bit = 0;
			const char *val;
			uint64_t v;

			for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
				if (strlen(names[k].name) == nl &&
				    strncmp(names[k].name, name, nl) == 0)
					bit = names[k].bit;
			if (bit == 0 || !(allowed & bit))
				return usage_error(c, "option '%s' is not valid here", a);
			if (eq != NULL) {
				val = eq + 1;
			} else {
				if (i + 1 >= argc)
					return usage_error(c, "option '%s' needs a value", a);
				val = argv[++i];
			}
			switch (bit) {
			case OPT_FLAGS:
				if (!parse_u64(val, UINT32_MAX, &v))
					return usage_error(c, "--flags: '%s' is not 0..4294967295",
							   val);
				o->flags = (uint32_t)v;
				break;
			case OPT_TTL:
				/* 0xffffffff would mean "do not create" to incr/decr. */
				if (!parse_u64(val, UINT32_MAX - 1, &v))
					return usage_error(c, "--ttl: '%s' is not 0..4294967294",
							   val);
				o->ttl = (uint32_t)v;
				break;
			case OPT_INITIAL:
				if (!parse_u64(val, UINT64_MAX, &v))
					return usage_error(c,
							   "--initial: '%s' is not a 64-bit "
							   "unsigned number",
							   val);
				o->initial = v;
				break;
			case OPT_CAS:
				if (!parse_u64(val, UINT64_MAX, &v))
					return usage_error(c,
							   "--cas: '%s' is not a 64-bit unsigned "
							   "number",
							   val);
				o->cas = v;
				break;
			}
			o->seen |= bit;
			continue;
		}
		if (*npos == max_pos)
			return usage_error(c, "unexpected argument '%s'", a);
		pos[(*npos)++] = argv[i];
	}
	if (*npos < min_pos)
		return usage_error(c, "%s", "missing argument");
	return EXIT_OK;
}

static int
check_key(struct cli *c, const char *key)
{
	size_t n = strlen(key);

	if (n == 0)
		return usage_error(c, "%s", "the key is empty");
	if (n > KITE_KEY_MAX)
		return usage_error(c, "key '%s' is longer than 250 bytes", key);
	return EXIT_OK;
}

static void
print_value(const struct cli *c, const char *key, const struct kite_res *x)
{
	uint32_t flags = x->extlen >= 4 ? kite_proto_get32(x->extras) : 0;

	if (c->quiet)
		return;
	if (c->verbose)
		printf("VALUE %s flags=%" PRIu32 " cas=%" PRIu64 " bytes=%" PRIu32 "\n", key, flags,
		       x->cas, x->vallen);
	fwrite(x->value, 1, x->vallen, stdout);
	putchar('\n');
}

static void
say(const struct cli *c, const char *line)
{
	if (!c->quiet)
		puts(line);
}

/* ---- commands ------------------------------------------------------------ */

static int
cmd_get(struct cli *c, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[1];
	int np, rc;
	struct reply r = { 0 };
	const struct kite_res *x;

	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 1, 1, &np);
	if (rc == EXIT_OK)
		rc = check_key(c, pos[0]);
	if (rc != EXIT_OK)
		return rc;
	rc = simple_request(c, KITE_OP_GET, 0, NULL, 0, pos[0], (uint16_t)strlen(pos[0]), NULL, 0,
			    &r, &x);
	if (rc == EXIT_OK) {
		if (x->status != KITE_STATUS_OK)
			rc = report_status(c, x);
		else
			print_value(c, pos[0], x);
	}
	reply_free(&r);
	return rc;
}

struct store_cmd {
	const char *name;
	uint8_t opcode;
	bool extras; /* flags and TTL: SET, ADD, REPLACE */
	unsigned int opts;
};

static const struct store_cmd store_cmds[] = {
	{ "set", KITE_OP_SET, true, OPT_FLAGS | OPT_TTL | OPT_CAS },
	{ "add", KITE_OP_ADD, true, OPT_FLAGS | OPT_TTL },
	{ "replace", KITE_OP_REPLACE, true, OPT_FLAGS | OPT_TTL | OPT_CAS },
	{ "append", KITE_OP_APPEND, false, OPT_CAS },
	{ "prepend", KITE_OP_PREPEND, false, OPT_CAS },
};

static int
cmd_store(struct cli *c, const struct store_cmd *sc, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[2];
	uint8_t ext[8];
	char line[64];
	int np, rc;
	struct reply r = { 0 };
	const struct kite_res *x;

	rc = parse_cmd_args(c, argc, argv, sc->opts, &o, pos, 2, 2, &np);
	if (rc == EXIT_OK)
		rc = check_key(c, pos[0]);
	if (rc != EXIT_OK)
		return rc;
	kite_proto_put32(ext, o.flags);
	kite_proto_put32(ext + 4, o.ttl);
	rc = simple_request(c, sc->opcode, o.cas, sc->extras ? ext : NULL, sc->extras ? 8 : 0,
			    pos[0], (uint16_t)strlen(pos[0]), pos[1], (uint32_t)strlen(pos[1]), &r,
			    &x);
	if (rc == EXIT_OK) {
		if (x->status != KITE_STATUS_OK) {
			rc = report_status(c, x);
		} else {
			snprintf(line, sizeof(line), "STORED cas=%" PRIu64, x->cas);
			say(c, line);
		}
	}
	reply_free(&r);
	return rc;
}

static int
cmd_delete(struct cli *c, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[1];
	int np, rc;
	struct reply r = { 0 };
	const struct kite_res *x;

	rc = parse_cmd_args(c, argc, argv, OPT_CAS, &o, pos, 1, 1, &np);
	if (rc == EXIT_OK)
		rc = check_key(c, pos[0]);
	if (rc != EXIT_OK)
		return rc;
	rc = simple_request(c, KITE_OP_DELETE, o.cas, NULL, 0, pos[0], (uint16_t)strlen(pos[0]),
			    NULL, 0, &r, &x);
	if (rc == EXIT_OK) {
		if (x->status != KITE_STATUS_OK)
			rc = report_status(c, x);
		else
			say(c, "DELETED");
	}
	reply_free(&r);
	return rc;
}

static int
cmd_delta(struct cli *c, uint8_t opcode, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[2];
	uint8_t ext[20];
	uint64_t delta = 1;
	int np, rc;
	struct reply r = { 0 };
	const struct kite_res *x;

	rc = parse_cmd_args(c, argc, argv, OPT_INITIAL | OPT_TTL | OPT_CAS, &o, pos, 1, 2, &np);
	if (rc == EXIT_OK)
		rc = check_key(c, pos[0]);
	if (rc != EXIT_OK)
		return rc;
	if (np == 2 && !parse_u64(pos[1], UINT64_MAX, &delta))
		return usage_error(c, "DELTA '%s' is not a 64-bit unsigned number", pos[1]);
	if ((o.seen & OPT_TTL) && !(o.seen & OPT_INITIAL))
		return usage_error(c, "%s", "--ttl applies to a created key: give --initial too");
	kite_proto_put64(ext, delta);
	kite_proto_put64(ext + 8, o.initial);
	kite_proto_put32(ext + 16, (o.seen & OPT_INITIAL) ? o.ttl : KITE_DELTA_NO_CREATE);
	rc = simple_request(c, opcode, o.cas, ext, sizeof(ext), pos[0], (uint16_t)strlen(pos[0]),
			    NULL, 0, &r, &x);
	if (rc == EXIT_OK) {
		if (x->status != KITE_STATUS_OK) {
			rc = report_status(c, x);
		} else if (x->vallen != 8) {
			fprintf(stderr, "%s: malformed reply: counter of %" PRIu32 " bytes\n",
				c->prog, x->vallen);
			rc = EXIT_NET;
		} else if (!c->quiet) {
			if (c->verbose)
				printf("%" PRIu64 " cas=%" PRIu64 "\n", kite_proto_get64(x->value),
				       x->cas);
			else
				printf("%" PRIu64 "\n", kite_proto_get64(x->value));
		}
	}
	reply_free(&r);
	return rc;
}

static int
cmd_touch(struct cli *c, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[2];
	uint8_t ext[4];
	uint64_t ttl;
	int np, rc;
	struct reply r = { 0 };
	const struct kite_res *x;

	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 2, 2, &np);
	if (rc == EXIT_OK)
		rc = check_key(c, pos[0]);
	if (rc != EXIT_OK)
		return rc;
	if (!parse_u64(pos[1], UINT32_MAX, &ttl))
		return usage_error(c, "TTL '%s' is not 0..4294967295", pos[1]);
	kite_proto_put32(ext, (uint32_t)ttl);
	rc = simple_request(c, KITE_OP_TOUCH, 0, ext, sizeof(ext), pos[0], (uint16_t)strlen(pos[0]),
			    NULL, 0, &r, &x);
	if (rc == EXIT_OK) {
		if (x->status != KITE_STATUS_OK) {
			rc = report_status(c, x);
		} else if (!c->quiet) {
			if (c->verbose)
				printf("TOUCHED flags=%" PRIu32 " cas=%" PRIu64 "\n",
				       x->extlen >= 4 ? kite_proto_get32(x->extras) : 0, x->cas);
			else
				puts("TOUCHED");
		}
	}
	reply_free(&r);
	return rc;
}

static int
cmd_stats(struct cli *c, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[1];
	int np, rc;
	struct reply r = { 0 };
	const struct kite_res *x;

	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 0, 1, &np);
	if (rc != EXIT_OK)
		return rc;
	if (np == 1 && strlen(pos[0]) > KITE_KEY_MAX)
		return usage_error(c, "group '%s' is longer than 250 bytes", pos[0]);
	rc = simple_request(c, KITE_OP_STAT, 0, NULL, 0, np ? pos[0] : NULL,
			    np ? (uint16_t)strlen(pos[0]) : 0, NULL, 0, &r, &x);
	if (rc != EXIT_OK)
		goto out;
	if (x->status != KITE_STATUS_OK) {
		rc = report_status(c, x);
		goto out;
	}
	for (unsigned int i = 0; i < r.nres; i++) {
		x = &r.res[i];
		if (x->status != KITE_STATUS_OK) {
			rc = report_status(c, x);
			break;
		}
		if (x->keylen == 0)
			break;
		if (!c->quiet)
			printf("STAT %.*s %.*s\n", (int)x->keylen, (const char *)x->key,
			       (int)x->vallen, (const char *)x->value);
	}
out:
	reply_free(&r);
	return rc;
}

/* VERSION and NOOP: no arguments; print the body (VERSION) or OK (NOOP). */
static int
cmd_noarg(struct cli *c, int argc, char **argv, uint8_t opcode)
{
	struct cmd_opts o;
	char *pos[1];
	int np, rc;
	struct reply r = { 0 };
	const struct kite_res *x;

	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 0, 0, &np);
	if (rc != EXIT_OK)
		return rc;
	rc = simple_request(c, opcode, 0, NULL, 0, NULL, 0, NULL, 0, &r, &x);
	if (rc == EXIT_OK) {
		if (x->status != KITE_STATUS_OK)
			rc = report_status(c, x);
		else if (opcode == KITE_OP_NOOP)
			say(c, "OK");
		else if (!c->quiet)
			printf("%.*s\n", (int)x->vallen, (const char *)x->value);
	}
	reply_free(&r);
	return rc;
}

static int
cmd_flush(struct cli *c, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[1];
	uint8_t ext[4];
	uint64_t delay = 0;
	int np, rc;
	struct reply r = { 0 };
	const struct kite_res *x;

	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 0, 1, &np);
	if (rc != EXIT_OK)
		return rc;
	if (np == 1 && !parse_u64(pos[0], UINT32_MAX, &delay))
		return usage_error(c, "DELAY '%s' is not 0..4294967295", pos[0]);
	kite_proto_put32(ext, (uint32_t)delay);
	rc = simple_request(c, KITE_OP_FLUSH, 0, np ? ext : NULL, np ? 4 : 0, NULL, 0, NULL, 0, &r,
			    &x);
	if (rc == EXIT_OK) {
		if (x->status != KITE_STATUS_OK)
			rc = report_status(c, x);
		else
			say(c, "OK");
	}
	reply_free(&r);
	return rc;
}

/* topology: Kite's TOPOLOGY (0xe0), the partition layout of the node. */
static int
cmd_topology(struct cli *c, int argc, char **argv)
{
	static struct kite_topology topo;
	struct cmd_opts o;
	char *pos[1];
	int np, rc;
	struct reply r = { 0 };
	const struct kite_res *x;

	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 0, 0, &np);
	if (rc != EXIT_OK)
		return rc;
	rc = simple_request(c, KITE_OP_TOPOLOGY, 0, NULL, 0, NULL, 0, NULL, 0, &r, &x);
	if (rc == EXIT_OK) {
		if (x->status != KITE_STATUS_OK) {
			/* memcached and other servers answer UNKNOWN_COMMAND: exit 4. */
			rc = report_status(c, x);
		} else if (kite_topo_parse(x->value, x->vallen, &topo) != 0) {
			fprintf(stderr, "%s: malformed topology reply (%" PRIu32 " bytes)\n",
				c->prog, x->vallen);
			rc = EXIT_NET;
		} else if (!c->quiet) {
			printf("partitions %u workers %u base_port %u hash %s seed %" PRIu64 "\n",
			       topo.partitions, topo.workers, topo.base_port,
			       topo.hash == KITE_TOPO_HASH_XXH64 ? "xxh64" : "unknown", topo.seed);
			for (unsigned int p = 0; p < topo.partitions; p++)
				printf("partition %u port %u worker %u\n", p, topo.port[p],
				       topo.worker[p]);
		}
	}
	reply_free(&r);
	return rc;
}

/* batch-get is done when every key of the datagram and the NOOP have answered. */
struct batch_want {
	int first;
	int last;
};

static bool
done_batch(const struct reply *r, void *arg)
{
	const struct batch_want *w = arg;

	if (find_res(r, OPAQUE_NOOP) == NULL)
		return false;
	for (int k = w->first; k < w->last; k++)
		if (find_res(r, (uint32_t)k) == NULL)
			return false;
	return true;
}

/*
 * batch-get: GETK for each key (opaque = its index) and a NOOP, as many
 * keys per datagram as fit in BATCH_DGRAM_MAX. GETK rather than GETKQ: a
 * miss then answers too, so the reply is known to be complete even when
 * several workers answer parts of the datagram, with no waiting for
 * stragglers. Hits print in key order.
 */
static int
cmd_batch_get(struct cli *c, int argc, char **argv)
{
	struct cmd_opts o;
	char **pos;
	int np, rc, worst = EXIT_OK;
	uint8_t buf[BATCH_DGRAM_MAX];

	pos = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*pos));
	if (pos == NULL)
		return EXIT_NET;
	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 1, argc, &np);
	for (int i = 0; rc == EXIT_OK && i < np; i++)
		rc = check_key(c, pos[i]);
	if (rc != EXIT_OK) {
		free(pos);
		return rc;
	}

	int first = 0;
	while (first < np && worst != EXIT_NET && worst != EXIT_SERVER) {
		size_t off = 0;
		int last = first;
		struct reply r = { 0 };

		/* Room for the NOOP is kept; one key always fits (274 + 24 < 1392). */
		while (last < np) {
			size_t need = KITE_BIN_HDR_LEN + strlen(pos[last]);
			if (off + need + KITE_BIN_HDR_LEN > sizeof(buf) - KITE_FRAME_HDR_LEN)
				break;
			off += (size_t)kite_proto_build_req(
				buf + off, sizeof(buf) - off, KITE_OP_GETK, (uint32_t)last, 0,
				NULL, 0, pos[last], (uint16_t)strlen(pos[last]), NULL, 0);
			last++;
		}
		off += (size_t)kite_proto_build_req(buf + off, sizeof(buf) - off, KITE_OP_NOOP,
						    OPAQUE_NOOP, 0, NULL, 0, NULL, 0, NULL, 0);
		struct batch_want bw = { first, last };
		rc = exchange(c, buf, off, done_batch, &bw, 0, &r);
		if (rc != EXIT_OK) {
			reply_free(&r);
			free(pos);
			return rc;
		}
		for (int k = first; k < last; k++) {
			const struct kite_res *x = find_res(&r, (uint32_t)k);
			if (x == NULL || x->status == KITE_STATUS_KEY_ENOENT) {
				if (!c->quiet)
					fprintf(stderr, "NOT_FOUND %s\n", pos[k]);
				if (worst == EXIT_OK)
					worst = EXIT_CACHE;
				continue;
			}
			if (x->status != KITE_STATUS_OK) {
				rc = report_status(c, x);
				if (rc > worst)
					worst = rc;
				continue;
			}
			if (c->quiet)
				continue;
			printf("VALUE %s %" PRIu32 " %" PRIu32, pos[k],
			       x->extlen >= 4 ? kite_proto_get32(x->extras) : 0, x->vallen);
			if (c->verbose)
				printf(" cas=%" PRIu64, x->cas);
			putchar('\n');
			fwrite(x->value, 1, x->vallen, stdout);
			putchar('\n');
		}
		reply_free(&r);
		first = last;
	}
	if (!c->quiet)
		puts("END");
	free(pos);
	return worst;
}

/* ---- main ---------------------------------------------------------------- */

static int
run_command(struct cli *c, const char *name, int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(store_cmds) / sizeof(store_cmds[0]); i++)
		if (strcmp(name, store_cmds[i].name) == 0)
			return cmd_store(c, &store_cmds[i], argc, argv);
	if (strcmp(name, "get") == 0)
		return cmd_get(c, argc, argv);
	if (strcmp(name, "delete") == 0)
		return cmd_delete(c, argc, argv);
	if (strcmp(name, "incr") == 0)
		return cmd_delta(c, KITE_OP_INCREMENT, argc, argv);
	if (strcmp(name, "decr") == 0)
		return cmd_delta(c, KITE_OP_DECREMENT, argc, argv);
	if (strcmp(name, "touch") == 0)
		return cmd_touch(c, argc, argv);
	if (strcmp(name, "stats") == 0)
		return cmd_stats(c, argc, argv);
	if (strcmp(name, "version") == 0)
		return cmd_noarg(c, argc, argv, KITE_OP_VERSION);
	if (strcmp(name, "flush") == 0)
		return cmd_flush(c, argc, argv);
	if (strcmp(name, "noop") == 0)
		return cmd_noarg(c, argc, argv, KITE_OP_NOOP);
	if (strcmp(name, "batch-get") == 0)
		return cmd_batch_get(c, argc, argv);
	if (strcmp(name, "topology") == 0)
		return cmd_topology(c, argc, argv);
	return -1;
}

static bool
is_command(const char *name)
{
	static const char *const names[] = { "get",    "set",	  "add",       "replace",
					     "append", "prepend", "delete",    "incr",
					     "decr",   "touch",	  "stats",     "version",
					     "flush",  "noop",	  "batch-get", "topology" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

int
main(int argc, char **argv)
{
	struct cli c = {
		.prog = "kite-cli",
		.host = DEFAULT_HOST,
		.port = DEFAULT_PORT,
		.timeout_ms = DEFAULT_TIMEOUT_MS,
		.retries = DEFAULT_RETRIES,
		.fd = -1,
	};
	const char *env = getenv("KITE_SERVER");
	const char *host = NULL, *port = NULL;
	uint64_t v;
	int i, rc;

	/*
	 * Line-buffered stdout: with "2>&1 | ..." misses on stderr stay in
	 * their place among the values on stdout, as on a terminal.
	 */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (env != NULL && env[0] != '\0' && !parse_server_env(env, &c.host, &c.port))
		return usage_error(&c, "KITE_SERVER='%s' is not HOST:PORT", env);

	/* Global options end at the command name. */
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;

		if (a[0] != '-')
			break;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout, c.prog);
			return EXIT_OK;
		}
		if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("kite-cli %s\n", KITE_VERSION);
			return EXIT_OK;
		}
		if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			c.quiet = true;
			continue;
		}
		if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			c.verbose = true;
			continue;
		}
		char opt = 0;
		if (strcmp(a, "-s") == 0 || strcmp(a, "--server") == 0)
			opt = 's';
		else if (strcmp(a, "-p") == 0 || strcmp(a, "--port") == 0)
			opt = 'p';
		else if (strcmp(a, "-t") == 0 || strcmp(a, "--timeout") == 0)
			opt = 't';
		else if (strcmp(a, "-r") == 0 || strcmp(a, "--retries") == 0)
			opt = 'r';
		else
			return usage_error(&c, "unknown option '%s'", a);
		if (i + 1 >= argc)
			return usage_error(&c, "option '%s' needs a value", a);
		val = argv[++i];
		switch (opt) {
		case 's':
			if (val[0] == '\0')
				return usage_error(&c, "%s", "-s: empty host");
			host = val;
			break;
		case 'p':
			if (!parse_u64(val, 65535, &v) || v == 0)
				return usage_error(&c, "-p: '%s' is not a port 1..65535", val);
			port = val;
			break;
		case 't':
			if (!parse_u64(val, 3600000, &v) || v == 0)
				return usage_error(&c, "-t: '%s' is not 1..3600000 ms", val);
			c.timeout_ms = (unsigned int)v;
			break;
		case 'r':
			if (!parse_u64(val, 100, &v))
				return usage_error(&c, "-r: '%s' is not 0..100", val);
			c.retries = (unsigned int)v;
			break;
		}
	}
	if (host != NULL)
		c.host = host;
	if (port != NULL)
		c.port = port;
	if (i >= argc)
		return usage_error(&c, "%s", "no command given");
	if (!is_command(argv[i]))
		return usage_error(&c, "unknown command '%s'", argv[i]);

	rc = open_socket(&c);
	if (rc != EXIT_OK)
		return rc;
	rc = run_command(&c, argv[i], argc - i - 1, argv + i + 1);
	close(c.fd);
	if (fflush(stdout) != 0 && rc == EXIT_OK)
		rc = EXIT_NET;
	return rc;
}
