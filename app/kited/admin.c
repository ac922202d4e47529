/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The admin endpoint: HTTP on the management interface (kernel sockets,
 * libmicrohttpd's own thread, never a worker's lcore), option
 * admin-listen = ADDR:PORT (docs/operations.rst):
 *
 *   GET /healthz   200 "ok" while the process runs its loops
 *   GET /readyz    200 when it serves: started, and in a cluster holding
 *                  a map and not fenced; 503 and the reason otherwise
 *   GET /metrics   Prometheus text (kited_metrics_text)
 *   GET /hotkeys   JSON: the hottest keys (names as STAT hotkeys shows them:
 *                  cut at 64 bytes, base64 when not printable), admin only
 *   GET /cluster   JSON: the map (epoch, vbuckets, members and what each
 *                  owns) and whether this node is fenced; 404 outside a
 *                  cluster
 *
 * With admin-token-file, /metrics and /cluster need "Authorization: Bearer TOKEN" of
 * a line of that file (401 without, 403 for a token whose role may not
 * read statistics); /healthz and /readyz stay open for orchestrators.
 * TLS with admin-tls-cert and admin-tls-key (PEM files). Every other path
 * is 404, every other method 405, each with a JSON error body.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>
#include <rte_cycles.h>

#include "kited.h"
#include "kited_admin.h"
#include "kited_metrics.h"

#define ADMIN_MAX_TOKENS 64
#define ADMIN_TOKEN_MAX  KITED_ADMIN_TOKEN_MAX

/* What a token may do. */
enum role {
	ROLE_ADMIN = 1, /* everything */
	ROLE_READ,      /* statistics (/metrics) and health, nothing of the data */
};

struct token {
	char secret[ADMIN_TOKEN_MAX + 1];
	enum role role;
};

struct admin {
	struct MHD_Daemon *d;
	const struct node *n;
	struct token tokens[ADMIN_MAX_TOKENS];
	unsigned int ntokens;
	char *cert, *key; /* PEM text, for TLS */
};

static struct admin admin;

/* Read a whole small file (at most 1 MiB); NULL with err set. */
static char *
slurp(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *p;
	size_t n;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	p = malloc((1u << 20) + 1);
	if (p == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	n = fread(p, 1, 1u << 20, f);
	if (!feof(f)) {
		snprintf(err, errlen, "%s: larger than 1 MiB", path);
		fclose(f);
		free(p);
		return NULL;
	}
	fclose(f);
	p[n] = '\0';
	return p;
}

/* Compare without an early exit on the first difference. */
static bool
same(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = (unsigned char)(la != lb);

	for (size_t i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/* The role of the request's bearer token, 0 for none or an unknown one. */
static int
role_of(struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	int role = 0;

	if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	for (unsigned int i = 0; i < admin.ntokens; i++)
		if (same(h, admin.tokens[i].secret))
			role = (int)admin.tokens[i].role;
	return role;
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned int code, const char *type, char *body, size_t len,
      bool owned)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (r == NULL) {
		if (owned)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (code == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"kited\"");
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

/* A JSON error: {"error": "...", "status": code}. */
static enum MHD_Result
error(struct MHD_Connection *c, unsigned int code, const char *what)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"status\":%u}\n", what, code);

	return reply(c, code, "application/json", body, (size_t)n, false);
}

/* Why the node is not ready, or NULL. */
static const char *
not_ready(const struct node *n)
{
	if (n->quit || n->stop_req)
		return "stopping";
	if (!n->port_started)
		return "starting";
	return kited_cluster_not_ready(n);
}

/* /hotkeys: {"hot": N, "top": [{"key": ..., "rate": ..., "rate_error": ...}, ...]}. */
struct hot_json {
	char *body;
	size_t len;
	json_t *root, *top, *cur;
};

static void
hot_emit(void *arg, const char *name, const char *value)
{
	struct hot_json *h = arg;

	if (strcmp(name, "hot_keys") == 0) {
		json_object_set_new(h->root, "hot", json_integer(strtoll(value, NULL, 10)));
		return;
	}
	/* hot_<i>_key, then _rate and _rate_error of the same i. */
	const char *what = strchr(name + 4, '_');
	if (what == NULL)
		return;
	if (strcmp(what, "_key") == 0) {
		h->cur = json_object();
		json_array_append_new(h->top, h->cur);
		json_object_set_new(h->cur, "key", json_string(value));
	} else if (h->cur != NULL) {
		json_object_set_new(h->cur, what + 1, json_integer(strtoll(value, NULL, 10)));
	}
}

static int
hot_keys_json(const struct node *n, struct hot_json *h)
{
	h->root = json_object();
	h->top = json_array();
	h->cur = NULL;
	if (h->root == NULL || h->top == NULL) {
		json_decref(h->root);
		json_decref(h->top);
		return -ENOMEM;
	}
	json_object_set_new(h->root, "top", h->top);
	kited_stats_emit_hot(&n->stats_src, hot_emit, h);
	h->body = json_dumps(h->root, JSON_COMPACT);
	json_decref(h->root);
	if (h->body == NULL)
		return -ENOMEM;
	h->len = strlen(h->body);
	return 0;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
       const char *version, const char *upload, size_t *upload_len, void **state)
{
	const struct node *n = admin.n;
	const bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
			 strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	(void)cls;
	(void)version;
	(void)upload;

	/*
	 * No path here takes a body: one announced is refused before it is
	 * read (the connection then closes); the first call for a request
	 * otherwise only sets it up (libmicrohttpd's protocol).
	 */
	if (*state == NULL) {
		static int started;
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_TRANSFER_ENCODING);

		*state = &started;
		if ((cl != NULL && strtoull(cl, NULL, 10) != 0) || te != NULL)
			return error(c, MHD_HTTP_CONTENT_TOO_LARGE, "no path here takes a body");
		return MHD_YES;
	}
	if (*upload_len != 0) {
		*upload_len = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/healthz") == 0) {
		if (!get)
			return error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
		return reply(c, MHD_HTTP_OK, "text/plain", "ok\n", 3, false);
	}
	if (strcmp(url, "/readyz") == 0) {
		const char *why;
		char body[128];
		int len;

		if (!get)
			return error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
		why = not_ready(n);
		if (why == NULL)
			return reply(c, MHD_HTTP_OK, "text/plain", "ready\n", 6, false);
		len = snprintf(body, sizeof(body), "not ready: %s\n", why);
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", body, (size_t)len, false);
	}
	if (strcmp(url, "/metrics") == 0) {
		size_t len;
		char *text;

		if (!get)
			return error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
		if (admin.ntokens > 0 && role_of(c) == 0)
			return error(c, MHD_HTTP_UNAUTHORIZED, "a bearer token is required");
		text = kited_metrics_text(&n->stats_src, node_now(n), &len);
		if (text == NULL)
			return error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
		return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
			     true);
	}
	if (strcmp(url, "/hotkeys") == 0) {
		struct hot_json hj = { .body = NULL, .len = 0 };
		int role;

		if (!get)
			return error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
		/* Key names are the users' data: the admin role only (open without a token file). */
		role = admin.ntokens > 0 ? role_of(c) : ROLE_ADMIN;
		if (role == 0)
			return error(c, MHD_HTTP_UNAUTHORIZED, "a bearer token is required");
		if (role != ROLE_ADMIN)
			return error(c, MHD_HTTP_FORBIDDEN, "hot keys need an admin token");
		if (hot_keys_json(n, &hj) != 0)
			return error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
		return reply(c, MHD_HTTP_OK, "application/json", hj.body, hj.len, true);
	}
	if (strcmp(url, "/cluster") == 0) {
		bool fenced;
		char *map, *body;
		int len;

		if (!get)
			return error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
		if (admin.ntokens > 0 && role_of(c) == 0)
			return error(c, MHD_HTTP_UNAUTHORIZED, "a bearer token is required");
		map = kited_cluster_json(n, &fenced);
		if (map == NULL)
			return error(c, MHD_HTTP_NOT_FOUND,
				     n->cfg.cluster[0] == '\0' || strcmp(n->cfg.cluster, "none") == 0
					     ? "not in a cluster (cluster = none)"
					     : "no cluster map yet");
		/* The map, and this node's state now: {"fenced": ..., "map": {...}}. */
		len = asprintf(&body, "{\"fenced\":%s,\"map\":%s}\n", fenced ? "true" : "false", map);
		free(map);
		if (len < 0)
			return error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
		return reply(c, MHD_HTTP_OK, "application/json", body, (size_t)len, true);
	}
	return error(c, MHD_HTTP_NOT_FOUND, "no such path");
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	KLOG(WARNING, "admin: %s", msg);
}

int
kited_admin_start(const struct node *n, char *err, size_t errlen)
{
	const struct kited_config *cfg = &n->cfg;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_POLL;
	char host[64];
	unsigned int port;

	if (cfg->admin_listen[0] == '\0')
		return 0;
	if (kited_admin_listen_parse(cfg->admin_listen, &sa, err, errlen) != 0)
		return -EINVAL;
	memset(&admin, 0, sizeof(admin));
	admin.n = n;
	if (cfg->admin_token_file[0] != '\0') {
		struct kited_admin_token t[ADMIN_MAX_TOKENS];
		char *text = slurp(cfg->admin_token_file, err, errlen);
		char why[160];

		if (text == NULL)
			return -EINVAL;
		if (kited_admin_tokens_parse(text, t, ADMIN_MAX_TOKENS, &admin.ntokens, why,
					     sizeof(why)) != 0) {
			snprintf(err, errlen, "admin-token-file %s: %s", cfg->admin_token_file, why);
			free(text);
			return -EINVAL;
		}
		free(text);
		if (admin.ntokens == 0) {
			snprintf(err, errlen, "admin-token-file %s: no token", cfg->admin_token_file);
			return -EINVAL;
		}
		for (unsigned int i = 0; i < admin.ntokens; i++) {
			_Static_assert(sizeof(admin.tokens[i].secret) == sizeof(t[i].secret),
				       "a token is as long as the file's");
			memcpy(admin.tokens[i].secret, t[i].secret, sizeof(t[i].secret));
			admin.tokens[i].role = t[i].admin ? ROLE_ADMIN : ROLE_READ;
		}
	}
	if (cfg->admin_tls_cert[0] != '\0') {
		admin.cert = slurp(cfg->admin_tls_cert, err, errlen);
		if (admin.cert == NULL)
			return -EINVAL;
		admin.key = slurp(cfg->admin_tls_key, err, errlen);
		if (admin.key == NULL)
			return -EINVAL;
		flags |= MHD_USE_TLS;
	}
	port = ntohs(sa.sin_port);
	/* The limits (docs/operations.rst); the certificate and key last, with TLS only. */
	struct MHD_OptionItem opts[] = {
		{ MHD_OPTION_CONNECTION_LIMIT, 64, NULL },
		{ MHD_OPTION_PER_IP_CONNECTION_LIMIT, 16, NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, 10, NULL },
		{ MHD_OPTION_CONNECTION_MEMORY_LIMIT, 65536, NULL },
		{ admin.cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, admin.cert },
		{ admin.cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, admin.key },
		{ MHD_OPTION_END, 0, NULL },
	};
	admin.d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, NULL,
				   MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				   MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_ARRAY, opts,
				   MHD_OPTION_END);
	if (admin.d == NULL) {
		inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
		snprintf(err, errlen, "admin-listen %s:%u: cannot listen (address in use, not "
				      "this host's, or a bad TLS certificate or key)",
			 host, port);
		return -EINVAL;
	}
	inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
	KLOG(INFO, "admin: %s://%s:%u/ (/metrics /healthz /readyz /cluster /hotkeys)%s",
	     admin.cert ? "https" : "http", host, port,
	     admin.ntokens ? ", bearer tokens required for /metrics and /cluster" : "");
	return 0;
}

void
kited_admin_stop(void)
{
	if (admin.d != NULL)
		MHD_stop_daemon(admin.d);
	admin.d = NULL;
	free(admin.cert);
	free(admin.key);
	admin.cert = admin.key = NULL;
	memset(admin.tokens, 0, sizeof(admin.tokens));
}
