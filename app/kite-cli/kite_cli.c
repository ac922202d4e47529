/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * kite-cli: a command-line client for Kite, or for any memcached started
 * with -U, over the memcached UDP binary protocol, on libkite.
 *
 * The node given with -s is the seed: key commands are routed by the
 * cluster map libkite fetches from it (a one-node map for a single node,
 * or for a memcached, which does not know CLUSTER_MAP); node commands
 * (stats, version, flush, noop, topology) go to the -s node itself, or
 * with --all to every member of the map. A lost datagram is a timeout;
 * each retry is sent under a fresh random req_id so a late reply to an
 * earlier attempt is never mistaken for the current one.
 *
 * Exit codes (also in --help and docs/kite-cli.rst):
 *   0 success, 1 a cache answer that is not success (not found, exists,
 *   not stored, non-numeric value), 2 usage error, 3 timeout or network
 *   error (including a malformed reply), 4 the server refused the request
 *   (EINVAL, E2BIG, ENOMEM, unknown command, any other status).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kite/kite.h>

#include "admin_http.h"
#include "kite_guard.h"
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

struct cli {
	const char *prog;
	const char *host;
	const char *port;
	unsigned int timeout_ms;
	unsigned int retries;
	bool quiet;
	bool verbose;
	bool all; /* node commands to every member */
	uint32_t tenant;   /* --tenant (0: none) */
	const char *secret_file;
	const char *value_key_file; /* --value-key-file */
	struct kite_client *k;
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
		"Usage: %s [-s HOST] [-p PORT] [-t TIMEOUT_MS] [-r RETRIES] [-q] [-v] [-a]\n"
		"       COMMAND [ARGS]\n"
		"\n"
		"Talks to a Kite node or cluster (or memcached -U) with the memcached\n"
		"binary protocol over UDP, through libkite. The -s node is the seed:\n"
		"key commands go to the key's owner by the cluster map fetched from it\n"
		"(a single node, or a memcached, is a one-node map); node commands\n"
		"(stats, version, flush, noop, topology) go to the -s node itself.\n"
		"\n"
		"Options:\n"
		"  -s, --server HOST     seed node: IPv4 name or address (default %s)\n"
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
		"  -a, --all             node commands to every member of the map, each\n"
		"                        answer under a line \"== node ID (IP:PORT)\"\n"
		"      --tenant ID       sign every request as tenant ID (docs/security.rst);\n"
		"                        needs --tenant-secret-file; keys carry the tenant's\n"
		"                        prefix themselves\n"
		"      --tenant-secret-file FILE\n"
		"                        the tenant's secret: 64 hex digits (32 bytes)\n"
		"      --value-key-file FILE\n"
		"                        encrypt values on this side (XChaCha20-Poly1305,\n"
		"                        64 hex digits); get/set only, the node holds ciphertext\n"
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
		"  batch-get KEY...              GETK per key, routed by the map and\n"
		"                                packed per node and partition into\n"
		"                                datagrams of at most 1472 bytes; print\n"
		"                                \"VALUE KEY FLAGS BYTES\", the value, then\n"
		"                                \"END\"; missing keys are named on stderr\n"
		"                                as \"NOT_FOUND KEY\"\n"
		"  topology                      Kite's partition layout: \"partitions P\n"
		"                                workers W base_port B hash xxh64 seed S\",\n"
		"                                then \"partition N port U worker W\" lines\n"
		"  cluster                       the map: \"epoch E vbuckets V copies C\n"
		"                                members N\", then per member its id,\n"
		"                                address, partitions, weight, zone,\n"
		"                                state, vbuckets owned and its answer to\n"
		"                                a ping (NOOP round trip)\n"
		"\n"
		"Admin endpoint commands (HTTP; URL defaults to $KITE_ADMIN, else\n"
		"http://198.19.0.2:11280, tools/kite-up's node; -t is their timeout):\n"
		"  metrics [URL] [--token-file F] [--match TEXT]\n"
		"                                GET URL/metrics and print each metric\n"
		"                                family with its help text and values; a\n"
		"                                histogram as count, mean and the bucket\n"
		"                                bounds of p50, p99, p99.9. --match keeps\n"
		"                                families whose name contains TEXT\n"
		"  scrape-config [URL...] [--token-file F] [--job NAME] [--interval D]\n"
		"                                print a prometheus.yml that scrapes each\n"
		"                                node; for a cluster member, every member's\n"
		"                                admin endpoint (from its /cluster)\n"
		"                                --token-file: the bearer token on its\n"
		"                                first line (Prometheus' credentials_file)\n"
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
		"     UNKNOWN_COMMAND or any other status (admin commands: an\n"
		"     HTTP status other than 200)\n"
		"Errors print the memcached status name and the server's message on\n"
		"stderr, e.g. \"kite-cli: KEY_ENOENT: Not found\".\n",
		prog, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_TIMEOUT_MS, DEFAULT_RETRIES);
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

/* ---- the seed -------------------------------------------------------------- */

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

/* ---- libkite ---------------------------------------------------------------- */

/* 32 bytes from a file of 64 hex digits (and an optional newline). */
static bool
read_hex32(const char *path, unsigned char out[32])
{
	FILE *f = fopen(path, "r");
	char hex[80] = "";
	bool ok = f != NULL && fgets(hex, sizeof(hex), f) != NULL;
	size_t n = strlen(hex);

	if (f != NULL)
		fclose(f);
	while (n > 0 && (hex[n - 1] == '\n' || hex[n - 1] == '\r'))
		n--;
	return ok && kite_guard_secret_parse(hex, n, out) == 0;
}

static int
open_client(struct cli *c)
{
	char seed[600];
	struct kite_options o = { 0 };
	unsigned char secret[32], vkey[32];
	int rc;

	if (c->secret_file != NULL) {
		if (!read_hex32(c->secret_file, secret)) {
			fprintf(stderr, "%s: --tenant-secret-file %s: not 64 hex digits\n", c->prog,
				c->secret_file);
			return EXIT_USAGE;
		}
		o.tenant_id = c->tenant;
		o.tenant_secret = secret;
	}
	if (c->value_key_file != NULL) {
		if (!read_hex32(c->value_key_file, vkey)) {
			fprintf(stderr, "%s: --value-key-file %s: not 64 hex digits\n", c->prog,
				c->value_key_file);
			return EXIT_USAGE;
		}
		o.value_key = vkey;
	}
	snprintf(seed, sizeof(seed), "%s:%s", c->host, c->port);
	o.seeds = seed;
	o.timeout_ms = c->timeout_ms;
	o.retries = c->retries == 0 ? KITE_NO_RETRY : c->retries;
	/* As before libkite: a retried incr/append may apply twice (--help says so). */
	o.retry_nonidempotent = 1;
	o.lazy_map = 1;
	rc = kite_open(&c->k, &o);
	memset(secret, 0, sizeof(secret));
	memset(vkey, 0, sizeof(vkey));
	if (rc == KITE_BAD_ARGUMENT) {
		fprintf(stderr, "%s: %s:%s: not an IPv4 address or name of one\n", c->prog,
			c->host, c->port);
		return EXIT_USAGE;
	}
	if (rc != KITE_OK) {
		fprintf(stderr, "%s: %s:%s: %s\n", c->prog, c->host, c->port, kite_strerror(rc));
		return EXIT_NET;
	}
	return EXIT_OK;
}

/* "IP:PORT" of member m, or of the seed. */
static const char *
where(const struct cli *c, int m)
{
	static char buf[64];
	struct kite_member mb;

	if (m >= 0 && kite_map_member(c->k, (unsigned int)m, &mb) == 0) {
		struct in_addr a = { htonl(mb.ip) };
		snprintf(buf, sizeof(buf), "%s:%u", inet_ntoa(a), mb.port);
	} else {
		snprintf(buf, sizeof(buf), "%s:%s", c->host, c->port);
	}
	return buf;
}

/*
 * What an op's rc means for the exit code; prints the message (status name
 * and the server's text, or the client's error) on stderr.
 */
static int
report(const struct cli *c, const struct kite_op *op)
{
	int code;

	if (op->rc == KITE_OK)
		return EXIT_OK;
	if (op->status != 0 && op->rc != KITE_TIMEOUT && op->rc != KITE_REDIRECTS &&
	    op->rc != KITE_NO_MAP) {
		code = status_exit(op->status);
		if (code == EXIT_CACHE && c->quiet)
			return code;
		if (op->result_len > 0)
			fprintf(stderr, "%s: %s: %.*s\n", c->prog, status_name(op->status),
				(int)op->result_len, (const char *)op->result);
		else
			fprintf(stderr, "%s: %s: %s\n", c->prog, status_name(op->status),
				kite_proto_status_str((uint8_t)op->status));
		return code;
	}
	switch (op->rc) {
	case KITE_TIMEOUT:
	case KITE_NO_MAP: {
		int m = op->type <= KITE_GAT ? kite_key_owner(c->k, op->key, op->keylen)
					     : op->node;
		fprintf(stderr, "%s: no reply from %s after %u attempt(s) of %u ms%s\n", c->prog,
			where(c, m), c->retries + 1, c->timeout_ms,
			op->rc == KITE_NO_MAP ? " (asking for the cluster map)" : "");
		return EXIT_NET;
	}
	case KITE_BAD_ARGUMENT: {
		if (c->value_key_file != NULL &&
		    (op->type == KITE_APPEND || op->type == KITE_PREPEND || op->type == KITE_INCR ||
		     op->type == KITE_DECR)) {
			fprintf(stderr, "%s: the node holds ciphertext (--value-key-file): append, "
					"prepend, incr and decr cannot work on it\n", c->prog);
			return EXIT_USAGE;
		}
		/* The one caller error left after kite-cli's own checks: the size. */
		size_t ext = op->type == KITE_SET || op->type == KITE_ADD || op->type == KITE_REPLACE
				     ? 8
				     : 0;
		fprintf(stderr, "%s: request of %zu bytes does not fit one UDP datagram\n", c->prog,
			(size_t)KITE_BIN_HDR_LEN + ext + op->keylen + op->vallen);
		return EXIT_USAGE;
	}
	default:
		fprintf(stderr, "%s: %s\n", c->prog, kite_strerror(op->rc));
		return op->rc == KITE_TMPFAIL || op->rc == KITE_REDIRECTS ? EXIT_SERVER : EXIT_NET;
	}
}

/* Run one op and report its failure. */
static int
run1(struct cli *c, struct kite_op *op)
{
	kite_exec(c->k, op, 1);
	return report(c, op);
}

static void
print_value(const struct cli *c, const char *key, const struct kite_op *op)
{
	if (c->quiet)
		return;
	if (c->verbose)
		printf("VALUE %s flags=%" PRIu32 " cas=%" PRIu64 " bytes=%zu\n", key,
		       op->result_flags, op->result_cas, op->result_len);
	fwrite(op->result, 1, op->result_len, stdout);
	putchar('\n');
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

	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 1, 1, &np);
	if (rc == EXIT_OK)
		rc = check_key(c, pos[0]);
	if (rc != EXIT_OK)
		return rc;
	struct kite_op op = { .type = KITE_GET, .key = pos[0], .keylen = strlen(pos[0]) };
	rc = run1(c, &op);
	if (rc == EXIT_OK)
		print_value(c, pos[0], &op);
	kite_op_clear(&op);
	return rc;
}

struct store_cmd {
	const char *name;
	enum kite_op_type type;
	unsigned int opts;
};

static const struct store_cmd store_cmds[] = {
	{ "set", KITE_SET, OPT_FLAGS | OPT_TTL | OPT_CAS },
	{ "add", KITE_ADD, OPT_FLAGS | OPT_TTL },
	{ "replace", KITE_REPLACE, OPT_FLAGS | OPT_TTL | OPT_CAS },
	{ "append", KITE_APPEND, OPT_CAS },
	{ "prepend", KITE_PREPEND, OPT_CAS },
};

static int
cmd_store(struct cli *c, const struct store_cmd *sc, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[2];
	char line[64];
	int np, rc;

	rc = parse_cmd_args(c, argc, argv, sc->opts, &o, pos, 2, 2, &np);
	if (rc == EXIT_OK)
		rc = check_key(c, pos[0]);
	if (rc != EXIT_OK)
		return rc;
	struct kite_op op = { .type = sc->type, .key = pos[0], .keylen = strlen(pos[0]),
			      .value = pos[1], .vallen = strlen(pos[1]), .flags = o.flags,
			      .exptime = o.ttl, .cas = o.cas };
	rc = run1(c, &op);
	if (rc == EXIT_OK) {
		snprintf(line, sizeof(line), "STORED cas=%" PRIu64, op.result_cas);
		say(c, line);
	}
	kite_op_clear(&op);
	return rc;
}

static int
cmd_delete(struct cli *c, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[1];
	int np, rc;

	rc = parse_cmd_args(c, argc, argv, OPT_CAS, &o, pos, 1, 1, &np);
	if (rc == EXIT_OK)
		rc = check_key(c, pos[0]);
	if (rc != EXIT_OK)
		return rc;
	struct kite_op op = { .type = KITE_DELETE, .key = pos[0], .keylen = strlen(pos[0]),
			      .cas = o.cas };
	rc = run1(c, &op);
	if (rc == EXIT_OK)
		say(c, "DELETED");
	kite_op_clear(&op);
	return rc;
}

static int
cmd_delta(struct cli *c, enum kite_op_type type, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[2];
	uint64_t delta = 1;
	int np, rc;

	rc = parse_cmd_args(c, argc, argv, OPT_INITIAL | OPT_TTL | OPT_CAS, &o, pos, 1, 2, &np);
	if (rc == EXIT_OK)
		rc = check_key(c, pos[0]);
	if (rc != EXIT_OK)
		return rc;
	if (np == 2 && !parse_u64(pos[1], UINT64_MAX, &delta))
		return usage_error(c, "DELTA '%s' is not a 64-bit unsigned number", pos[1]);
	if ((o.seen & OPT_TTL) && !(o.seen & OPT_INITIAL))
		return usage_error(c, "%s", "--ttl applies to a created key: give --initial too");
	struct kite_op op = { .type = type, .key = pos[0], .keylen = strlen(pos[0]),
			      .delta = delta, .initial = o.initial, .exptime = o.ttl,
			      .create = (o.seen & OPT_INITIAL) != 0, .cas = o.cas };
	rc = run1(c, &op);
	if (rc == EXIT_OK && !c->quiet) {
		if (c->verbose)
			printf("%" PRIu64 " cas=%" PRIu64 "\n", op.counter, op.result_cas);
		else
			printf("%" PRIu64 "\n", op.counter);
	}
	kite_op_clear(&op);
	return rc;
}

static int
cmd_touch(struct cli *c, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[2];
	uint64_t ttl;
	int np, rc;

	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 2, 2, &np);
	if (rc == EXIT_OK)
		rc = check_key(c, pos[0]);
	if (rc != EXIT_OK)
		return rc;
	if (!parse_u64(pos[1], UINT32_MAX, &ttl))
		return usage_error(c, "TTL '%s' is not 0..4294967295", pos[1]);
	struct kite_op op = { .type = KITE_TOUCH, .key = pos[0], .keylen = strlen(pos[0]),
			      .exptime = (uint32_t)ttl };
	rc = run1(c, &op);
	if (rc == EXIT_OK && !c->quiet) {
		if (c->verbose)
			printf("TOUCHED flags=%" PRIu32 " cas=%" PRIu64 "\n", op.result_flags,
			       op.result_cas);
		else
			puts("TOUCHED");
	}
	kite_op_clear(&op);
	return rc;
}

/*
 * A node command: to the -s node, or with --all to every member of the
 * map (each answer under a "== node ID (IP:PORT)" line). print() shows
 * one answer. @return the worst exit code.
 */
static int
node_cmd(struct cli *c, struct kite_op *tmpl, void (*print)(const struct cli *, struct kite_op *))
{
	struct kite_map_info mi;
	struct kite_op *ops;
	unsigned int n = 1;
	int worst = EXIT_OK;

	if (c->all) {
		if (kite_map_refresh(c->k) != KITE_OK) {
			fprintf(stderr, "%s: no reply from %s:%s after %u attempt(s) of %u ms "
					"(asking for the cluster map)\n",
				c->prog, c->host, c->port, c->retries + 1, c->timeout_ms);
			return EXIT_NET;
		}
		kite_map_info(c->k, &mi);
		n = mi.members;
	}
	ops = calloc(n, sizeof(*ops));
	if (ops == NULL)
		return EXIT_NET;
	for (unsigned int i = 0; i < n; i++) {
		ops[i] = *tmpl;
		ops[i].node = c->all ? (int)i : KITE_NODE_SEED;
	}
	kite_exec(c->k, ops, n);
	for (unsigned int i = 0; i < n; i++) {
		struct kite_member mb;

		if (c->all && !c->quiet && kite_map_member(c->k, i, &mb) == 0)
			printf("== node %s (%s)\n", mb.id, where(c, (int)i));
		int rc = report(c, &ops[i]);
		if (rc == EXIT_OK)
			print(c, &ops[i]);
		if (rc > worst)
			worst = rc;
		kite_op_clear(&ops[i]);
	}
	free(ops);
	return worst;
}

static void
print_stats(const struct cli *c, struct kite_op *op)
{
	const char *p = op->result, *end = p + op->result_len;

	if (c->quiet || p == NULL)
		return;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		printf("STAT %.*s\n", (int)len, p);
		p += len + 1;
	}
}

static int
cmd_stats(struct cli *c, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[1];
	int np, rc;

	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 0, 1, &np);
	if (rc != EXIT_OK)
		return rc;
	if (np == 1 && strlen(pos[0]) > KITE_KEY_MAX)
		return usage_error(c, "group '%s' is longer than 250 bytes", pos[0]);
	struct kite_op op = { .type = KITE_NODE_STATS, .key = np ? pos[0] : NULL,
			      .keylen = np ? strlen(pos[0]) : 0 };
	return node_cmd(c, &op, print_stats);
}

static void
print_ok(const struct cli *c, struct kite_op *op)
{
	(void)op;
	say(c, "OK");
}

static void
print_text(const struct cli *c, struct kite_op *op)
{
	if (!c->quiet)
		printf("%.*s\n", (int)op->result_len, op->result != NULL ? (char *)op->result : "");
}

/* VERSION and NOOP: no arguments; print the body (VERSION) or OK (NOOP). */
static int
cmd_noarg(struct cli *c, int argc, char **argv, enum kite_op_type type)
{
	struct cmd_opts o;
	char *pos[1];
	int np, rc;

	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 0, 0, &np);
	if (rc != EXIT_OK)
		return rc;
	struct kite_op op = { .type = type };
	return node_cmd(c, &op, type == KITE_NODE_NOOP ? print_ok : print_text);
}

static int
cmd_flush(struct cli *c, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[1];
	uint64_t delay = 0;
	int np, rc;

	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 0, 1, &np);
	if (rc != EXIT_OK)
		return rc;
	if (np == 1 && !parse_u64(pos[0], UINT32_MAX, &delay))
		return usage_error(c, "DELAY '%s' is not 0..4294967295", pos[0]);
	struct kite_op op = { .type = KITE_NODE_FLUSH, .exptime = (uint32_t)delay };
	return node_cmd(c, &op, print_ok);
}

static void
print_topology(const struct cli *c, struct kite_op *op)
{
	static struct kite_topology topo;

	if (kite_topo_parse(op->result, op->result_len, &topo) != 0) {
		fprintf(stderr, "%s: malformed topology reply (%zu bytes)\n", c->prog,
			op->result_len);
		op->rc = KITE_PROTOCOL;
		return;
	}
	if (c->quiet)
		return;
	printf("partitions %u workers %u base_port %u hash %s seed %" PRIu64 "\n", topo.partitions,
	       topo.workers, topo.base_port,
	       topo.hash == KITE_TOPO_HASH_XXH64 ? "xxh64" : "unknown", topo.seed);
	for (unsigned int p = 0; p < topo.partitions; p++)
		printf("partition %u port %u worker %u\n", p, topo.port[p], topo.worker[p]);
}

/* topology: Kite's TOPOLOGY (0xe0), the partition layout of the node. */
static int
cmd_topology(struct cli *c, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[1];
	int np, rc;

	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 0, 0, &np);
	if (rc != EXIT_OK)
		return rc;
	struct kite_op op = { .type = KITE_NODE_TOPOLOGY };
	return node_cmd(c, &op, print_topology);
}

/*
 * batch-get: one GETK per key, routed by the map and packed per node and
 * partition into as few datagrams as fit; hits print in key order, misses
 * are named on stderr.
 */
static int
cmd_batch_get(struct cli *c, int argc, char **argv)
{
	struct cmd_opts o;
	char **pos;
	struct kite_op *ops;
	int np, rc, worst = EXIT_OK;

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
	ops = calloc((size_t)np, sizeof(*ops));
	if (ops == NULL) {
		free(pos);
		return EXIT_NET;
	}
	for (int k = 0; k < np; k++) {
		ops[k].type = KITE_GET;
		ops[k].key = pos[k];
		ops[k].keylen = strlen(pos[k]);
	}
	kite_exec(c->k, ops, (size_t)np);
	for (int k = 0; k < np; k++) {
		struct kite_op *x = &ops[k];

		if (x->rc == KITE_NOT_FOUND) {
			if (!c->quiet)
				fprintf(stderr, "NOT_FOUND %s\n", pos[k]);
			if (worst == EXIT_OK)
				worst = EXIT_CACHE;
		} else if (x->rc != KITE_OK) {
			rc = report(c, x);
			if (rc > worst)
				worst = rc;
		} else if (!c->quiet) {
			printf("VALUE %s %" PRIu32 " %zu", pos[k], x->result_flags, x->result_len);
			if (c->verbose)
				printf(" cas=%" PRIu64, x->result_cas);
			putchar('\n');
			fwrite(x->result, 1, x->result_len, stdout);
			putchar('\n');
		}
		kite_op_clear(x);
	}
	if (!c->quiet)
		puts("END");
	free(ops);
	free(pos);
	return worst;
}

/*
 * cluster: the map (epoch, vbuckets, copies), then one line per member
 * with its vbuckets and its answer to a NOOP (round trip, or "no reply").
 */
static int
cmd_cluster(struct cli *c, int argc, char **argv)
{
	struct cmd_opts o;
	char *pos[1];
	struct kite_map_info mi;
	int np, rc, worst = EXIT_OK;

	rc = parse_cmd_args(c, argc, argv, 0, &o, pos, 0, 0, &np);
	if (rc != EXIT_OK)
		return rc;
	if (kite_map_refresh(c->k) != KITE_OK) {
		fprintf(stderr, "%s: no reply from %s:%s after %u attempt(s) of %u ms (asking for "
				"the cluster map)\n",
			c->prog, c->host, c->port, c->retries + 1, c->timeout_ms);
		return EXIT_NET;
	}
	kite_map_info(c->k, &mi);
	if (mi.seed_is_memcached) {
		if (!c->quiet)
			printf("%s:%s does not know CLUSTER_MAP (a memcached?): used as one node\n",
			       c->host, c->port);
		return EXIT_OK;
	}
	if (!c->quiet)
		printf("epoch %" PRIu64 " vbuckets %u copies %u members %u\n", mi.epoch,
		       mi.vbuckets, mi.copies, mi.members);
	for (unsigned int i = 0; i < mi.members; i++) {
		struct kite_member mb;
		struct kite_op op = { .type = KITE_NODE_NOOP, .node = (int)i };
		struct timespec t0, t1;

		kite_map_member(c->k, i, &mb);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		kite_exec(c->k, &op, 1);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		if (op.rc != KITE_OK)
			worst = EXIT_NET;
		if (!c->quiet) {
			printf("member %s %s partitions %u weight %u zone %s state %s vbuckets %u "
			       "(%.1f%%) ",
			       mb.id, where(c, (int)i), mb.partitions, mb.weight,
			       mb.zone[0] ? mb.zone : "-", mb.state ? mb.state : "?",
			       mb.vbuckets_owned, 100.0 * mb.vbuckets_owned / mi.vbuckets);
			if (op.rc == KITE_OK)
				printf("ping %.2f ms\n", ms);
			else
				printf("ping %s\n", kite_strerror(op.rc));
		}
		kite_op_clear(&op);
	}
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
		return cmd_delta(c, KITE_INCR, argc, argv);
	if (strcmp(name, "decr") == 0)
		return cmd_delta(c, KITE_DECR, argc, argv);
	if (strcmp(name, "touch") == 0)
		return cmd_touch(c, argc, argv);
	if (strcmp(name, "stats") == 0)
		return cmd_stats(c, argc, argv);
	if (strcmp(name, "version") == 0)
		return cmd_noarg(c, argc, argv, KITE_NODE_VERSION);
	if (strcmp(name, "flush") == 0)
		return cmd_flush(c, argc, argv);
	if (strcmp(name, "noop") == 0)
		return cmd_noarg(c, argc, argv, KITE_NODE_NOOP);
	if (strcmp(name, "batch-get") == 0)
		return cmd_batch_get(c, argc, argv);
	if (strcmp(name, "topology") == 0)
		return cmd_topology(c, argc, argv);
	if (strcmp(name, "cluster") == 0)
		return cmd_cluster(c, argc, argv);
	return -1;
}

static bool
is_command(const char *name)
{
	static const char *const names[] = { "get",    "set",	  "add",       "replace",
					     "append", "prepend", "delete",    "incr",
					     "decr",   "touch",	  "stats",     "version",
					     "flush",  "noop",	  "batch-get", "topology",
					     "cluster" };

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
		if (strcmp(a, "-a") == 0 || strcmp(a, "--all") == 0) {
			c.all = true;
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
		else if (strcmp(a, "--tenant") == 0)
			opt = 'T';
		else if (strcmp(a, "--tenant-secret-file") == 0)
			opt = 'S';
		else if (strcmp(a, "--value-key-file") == 0)
			opt = 'K';
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
		case 'T':
			if (!parse_u64(val, UINT32_MAX, &v) || v == 0)
				return usage_error(&c, "--tenant: '%s' is not 1..4294967295", val);
			c.tenant = (uint32_t)v;
			break;
		case 'S':
			c.secret_file = val;
			break;
		case 'K':
			c.value_key_file = val;
			break;
		}
	}
	if ((c.tenant != 0) != (c.secret_file != NULL))
		return usage_error(&c, "%s", "--tenant and --tenant-secret-file go together");
	if (host != NULL)
		c.host = host;
	if (port != NULL)
		c.port = port;
	if (i >= argc)
		return usage_error(&c, "%s", "no command given");
	/* The admin endpoint's commands speak HTTP: no UDP client to open. */
	if (strcmp(argv[i], "metrics") == 0)
		return kite_cli_metrics(c.prog, c.timeout_ms, argc - i - 1, argv + i + 1);
	if (strcmp(argv[i], "scrape-config") == 0)
		return kite_cli_scrape_config(c.prog, c.timeout_ms, argc - i - 1, argv + i + 1);
	if (!is_command(argv[i]))
		return usage_error(&c, "unknown command '%s'", argv[i]);

	rc = open_client(&c);
	if (rc != EXIT_OK)
		return rc;
	rc = run_command(&c, argv[i], argc - i - 1, argv + i + 1);
	kite_close(c.k);
	if (fflush(stdout) != 0 && rc == EXIT_OK)
		rc = EXIT_NET;
	return rc;
}
