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
 *   GET, PUT, DELETE /cache/KEY and POST /cache/batch-get: the JSON API,
 *                  each request run by the key's worker (api.c)
 *
 * With admin-token-file, /metrics, /cluster and the JSON API need
 * "Authorization: Bearer TOKEN" of a line of that file (401 without).
 * A token is admin, read or a tenant's of tenants-file: the JSON API does
 * for it what a datagram of that client could do (a tenant's key prefix,
 * commands and rate; a read token only reads, as a client without AUTH);
 * /hotkeys needs an admin token (or an admin tenant's), /metrics a read or
 * admin one; /healthz and /readyz stay open for orchestrators.
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
#include "kite_proto.h"
#include "kite_text.h"
#include "kited_admin.h"
#include "kited_api.h"
#include "kited_metrics.h"

#define ADMIN_MAX_TOKENS 64

struct admin {
	struct MHD_Daemon *d;
	const struct node *n;
	struct kited_admin_token tokens[ADMIN_MAX_TOKENS]; /* as admin-token-file lists them */
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

/* Whoever reaches the port when there is no admin-token-file. */
static const struct kited_admin_token open_access = { .role = KITED_ADMIN_ROLE_ADMIN };

/*
 * The request's bearer token (its line of admin-token-file); &open_access
 * without a token file; NULL for none or an unknown one.
 */
static const struct kited_admin_token *
token_of(struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	const struct kited_admin_token *t = NULL;

	if (admin.ntokens == 0)
		return &open_access;
	if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	for (unsigned int i = 0; i < admin.ntokens; i++)
		if (same(h, admin.tokens[i].secret))
			t = &admin.tokens[i];
	return t;
}

/* Whether the token may see statistics and key names (a tenant's only when it may STAT). */
static bool
may_see_stats(const struct kited_admin_token *t)
{
	struct kited_api_policy p;

	if (t->role != KITED_ADMIN_ROLE_TENANT)
		return true;
	return kited_guard_api_policy(admin.n, t->tenant, &p) == 0 && p.admin;
}

/* A response; hname: one more header (Allow, Location), or NULL. */
static enum MHD_Result
reply_hdr(struct MHD_Connection *c, unsigned int code, const char *type, char *body, size_t len,
	  bool owned, const char *hname, const char *hval)
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
	if (hname != NULL)
		MHD_add_response_header(r, hname, hval);
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned int code, const char *type, char *body, size_t len,
      bool owned)
{
	return reply_hdr(c, code, type, body, len, owned, NULL, NULL);
}

/*
 * A JSON error: {"error": "...", "status": code}, with one more header
 * (hname: hval) when hname is not NULL; a Location is in the body too.
 */
static enum MHD_Result
error_hdr(struct MHD_Connection *c, unsigned int code, const char *what, const char *hname,
	  const char *hval)
{
	json_t *o = json_pack("{s:s, s:i}", "error", what, "status", (int)code);
	char *text;

	if (o != NULL && hname != NULL && strcmp(hname, MHD_HTTP_HEADER_LOCATION) == 0)
		json_object_set_new(o, "location", json_string(hval));
	text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (text == NULL)
		return reply_hdr(c, code, "application/json", "{}", 2, false, hname, hval);
	return reply_hdr(c, code, "application/json", text, strlen(text), true, hname, hval);
}

static enum MHD_Result
error(struct MHD_Connection *c, unsigned int code, const char *what)
{
	return error_hdr(c, code, what, NULL, NULL);
}

/* 405, with the methods the path takes. */
static enum MHD_Result
not_allowed(struct MHD_Connection *c, const char *allow)
{
	return error_hdr(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed",
			 MHD_HTTP_HEADER_ALLOW, allow);
}

/*
 * The URL of path (then key, percent-encoded, when not NULL) at the
 * admin endpoint of the node that owns key; -EEXIST when this node owns
 * it, -ENOENT when nobody's endpoint is known.
 */
static int
owner_url(const char *key, const char *path, const char *tail, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	uint32_t ip;
	uint16_t port;
	struct in_addr a;
	char host[INET_ADDRSTRLEN];
	int rc = kited_cluster_admin_owner(admin.n, key, (uint16_t)strlen(key), &ip, &port);
	size_t o;

	if (rc != 0)
		return rc;
	a.s_addr = htonl(ip);
	inet_ntop(AF_INET, &a, host, sizeof(host));
	o = (size_t)snprintf(out, len, "%s://%s:%u%s", admin.cert ? "https" : "http", host,
			     (unsigned int)port, path);
	for (const unsigned char *p = (const unsigned char *)tail; p && *p && o + 4 < len; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~:@!$&'()*+,;=", *p) != NULL) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o < len ? o : len - 1] = '\0';
	return 0;
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

/* ---- the JSON API: /cache/{key}, /cache/batch-get ---------------------------------- */

/* A request's body (PUT and POST of the JSON API); freed when the request ends. */
struct conn {
	char *body;
	size_t len;
	bool too_big;
};

/* Longest body: a value as large as one UDP request takes, in base64, and its JSON. */
#define API_BODY_MAX (96u * 1024u)
/* Keys per batch-get. */
#define API_BATCH_MAX 100

static bool
takes_body(const char *url, const char *method)
{
	if (strcmp(url, "/cache/batch-get") == 0)
		return strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	return strncmp(url, "/cache/", 7) == 0 && strcmp(method, MHD_HTTP_METHOD_PUT) == 0;
}

static void
request_done(void *cls, struct MHD_Connection *c, void **state,
	     enum MHD_RequestTerminationCode why)
{
	struct conn *k = *state;

	(void)cls;
	(void)c;
	(void)why;
	if (k != NULL) {
		free(k->body);
		free(k);
	}
	*state = NULL;
}

/* A JSON body of o (taken), with its status. */
static enum MHD_Result
reply_json(struct MHD_Connection *c, unsigned int code, json_t *o)
{
	char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (text == NULL)
		return error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	return reply(c, code, "application/json", text, strlen(text), true);
}

/* A key the API did not find: 404 {"error", "key", "status"}. */
static enum MHD_Result
not_found(struct MHD_Connection *c, const char *key)
{
	return reply_json(c, MHD_HTTP_NOT_FOUND,
			  json_pack("{s:s, s:s, s:i}", "error", "not found", "key", key, "status",
				    MHD_HTTP_NOT_FOUND));
}

/* A key as the API takes it: 1..250 bytes, no space or control character (as text's). */
static const char *
key_problem(const char *key, size_t len)
{
	if (len == 0)
		return "empty key";
	if (len > KITE_KEY_MAX)
		return "key over 250 bytes";
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)key[i] <= 0x20 || key[i] == 0x7f)
			return "key with a space or a control character";
	return NULL;
}

static bool
utf8_text(const uint8_t *p, size_t n)
{
	json_t *s;

	if (memchr(p, 0, n) != NULL)
		return false;
	s = json_stringn((const char *)p, n); /* NULL unless valid UTF-8 */
	json_decref(s);
	return s != NULL;
}

/* A return flag's number from a META reply's flags text ("t12 f0 c34"), or def. */
static long long
ret_flag(const char *flags, char f, long long def)
{
	for (const char *p = flags; *p != '\0'; p++)
		if (*p == f && (p == flags || p[-1] == ' '))
			return strtoll(p + 1, NULL, 10);
	return def;
}

/* How a failed call or a status that is not the answer is told. */
static enum MHD_Result
api_failure(struct MHD_Connection *c, int rc, const struct kited_api_result *r, const char *key)
{
	char url[1024];

	if (rc == -E2BIG)
		return error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request longer than a UDP datagram");
	if (rc == -EBUSY || rc == -EAGAIN)
		return error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy: try again");
	if (rc == -ETIMEDOUT)
		return error(c, MHD_HTTP_GATEWAY_TIMEOUT, "the worker did not answer in time");
	if (rc != 0)
		return error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error");
	switch (r->status) {
	case KITE_STATUS_NOT_MY_VBUCKET:
		/* Its owner's admin endpoint, when the map names one: 307 keeps the method and body. */
		if (key != NULL && owner_url(key, "/cache/", key, url, sizeof(url)) == 0)
			return error_hdr(c, MHD_HTTP_TEMPORARY_REDIRECT,
					 "another node owns the key: ask it (Location)",
					 MHD_HTTP_HEADER_LOCATION, url);
		return error(c, MHD_HTTP_MISDIRECTED_REQUEST,
			     "this node does not own the key, and its owner has no admin endpoint "
			     "in the map: see /cluster");
	case KITE_STATUS_E2BIG:
		return error(c, MHD_HTTP_CONTENT_TOO_LARGE, "value over the item limit");
	case KITE_STATUS_ENOMEM:
		return error(c, MHD_HTTP_INSUFFICIENT_STORAGE, "out of memory for the item");
	case KITE_STATUS_FORBIDDEN:
		return error(c, MHD_HTTP_FORBIDDEN,
			     "not for this token: outside its tenant's key prefix or commands");
	case KITE_STATUS_AUTH_ERROR:
		return error(c, MHD_HTTP_UNAUTHORIZED, "auth = required: use a tenant's token");
	case KITE_STATUS_RATE_LIMITED:
		return error(c, MHD_HTTP_TOO_MANY_REQUESTS, "over the tenant's rate: try again");
	case KITE_STATUS_ETMPFAIL:
		return error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
			     "not stored for sure (replication or fencing): try again");
	default:
		return error(c, MHD_HTTP_BAD_GATEWAY, "the worker refused the request");
	}
}

/* One key's value as JSON, from a META_GET's reply. */
static json_t *
value_json(const char *key, const struct kited_api_result *r)
{
	const bool text = utf8_text(r->value ? r->value : (const uint8_t *)"", r->value_len);
	long long ttl = ret_flag(r->flags, 't', -1);
	json_t *v;

	if (text) {
		v = json_stringn(r->value ? (const char *)r->value : "", r->value_len);
	} else {
		char *b = malloc(4 * ((r->value_len + 2) / 3) + 1);
		if (b == NULL)
			return NULL;
		b[kite_text_b64_encode(r->value, r->value_len, b)] = '\0';
		v = json_string(b);
		free(b);
	}
	return json_pack("{s:s, s:o, s:s, s:I, s:I, s:I}", "key", key, "value", v, "encoding",
			 text ? "utf-8" : "base64", "ttlSeconds", (json_int_t)ttl, "flags",
			 (json_int_t)ret_flag(r->flags, 'f', 0), "cas",
			 (json_int_t)ret_flag(r->flags, 'c', 0));
}

static enum MHD_Result
cache_get(struct MHD_Connection *c, const struct kited_api_policy *pol, const char *key)
{
	struct kited_api_result r;
	int rc = kited_api_call(admin.n, pol, KITE_OP_META_GET, "v t f c", key, (uint16_t)strlen(key),
				NULL, 0, &r);
	json_t *o;

	if (rc == 0 && r.status == KITE_STATUS_KEY_ENOENT) {
		free(r.value);
		return not_found(c, key);
	}
	if (rc != 0 || r.status != KITE_STATUS_OK) {
		free(r.value);
		return api_failure(c, rc, &r, key);
	}
	o = value_json(key, &r);
	free(r.value);
	return reply_json(c, MHD_HTTP_OK, o);
}

static enum MHD_Result
cache_put(struct MHD_Connection *c, const struct kited_api_policy *pol, const char *key,
	  const struct conn *k)
{
	json_error_t jerr;
	json_t *in = k->body ? json_loadb(k->body, k->len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	json_t *val, *ttl, *enc, *fl;
	const char *e = "utf-8";
	long long t = 0, flags = 0;
	uint8_t *decoded = NULL; /* base64's bytes; utf-8 is sent from the JSON string */
	const uint8_t *bytes;
	size_t n;
	char meta[64];
	struct kited_api_result r;
	int rc;

	if (in == NULL || !json_is_object(in)) {
		json_decref(in);
		return error(c, MHD_HTTP_BAD_REQUEST, "the body is not a JSON object");
	}
	val = json_object_get(in, "value");
	ttl = json_object_get(in, "ttlSeconds");
	enc = json_object_get(in, "encoding");
	fl = json_object_get(in, "flags");
	if (!json_is_string(val) || (ttl != NULL && !json_is_integer(ttl)) ||
	    (enc != NULL && !json_is_string(enc)) || (fl != NULL && !json_is_integer(fl))) {
		json_decref(in);
		return error(c, MHD_HTTP_BAD_REQUEST,
			     "want {\"value\": string, \"ttlSeconds\": integer, \"encoding\": "
			     "\"utf-8\" or \"base64\", \"flags\": integer}");
	}
	if (ttl != NULL)
		t = json_integer_value(ttl);
	if (fl != NULL)
		flags = json_integer_value(fl);
	if (enc != NULL)
		e = json_string_value(enc);
	if (t < 0 || t > 100LL * 365 * 86400 || flags < 0 || flags > UINT32_MAX ||
	    (strcmp(e, "utf-8") != 0 && strcmp(e, "base64") != 0)) {
		json_decref(in);
		return error(c, MHD_HTTP_BAD_REQUEST,
			     "ttlSeconds 0 (none) or more, flags 0..4294967295, encoding utf-8 or "
			     "base64");
	}
	n = json_string_length(val);
	bytes = (const uint8_t *)json_string_value(val);
	if (strcmp(e, "base64") == 0) {
		int got;

		decoded = malloc(n + 1);
		got = decoded ? kite_text_b64_decode(bytes, n, decoded, n + 1) : -1;
		if (got < 0) {
			const bool oom = decoded == NULL;

			free(decoded);
			json_decref(in);
			return oom ? error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory")
				   : error(c, MHD_HTTP_BAD_REQUEST, "value is not base64");
		}
		bytes = decoded;
		n = (size_t)got;
	}
	if (n > admin.n->cfg.max_item_size) {
		free(decoded);
		json_decref(in);
		return error(c, MHD_HTTP_CONTENT_TOO_LARGE, "value over the item limit");
	}
	snprintf(meta, sizeof(meta), "T%lld F%lld", t, flags);
	rc = kited_api_call(admin.n, pol, KITE_OP_META_SET, meta, key, (uint16_t)strlen(key), bytes,
			    (uint32_t)n, &r);
	free(decoded);
	json_decref(in);
	free(r.value);
	if (rc != 0 || r.status != KITE_STATUS_OK)
		return api_failure(c, rc, &r, key);
	return reply_json(c, MHD_HTTP_OK,
			  json_pack("{s:s, s:b, s:I}", "key", key, "stored", 1, "bytes", (json_int_t)n));
}

static enum MHD_Result
cache_delete(struct MHD_Connection *c, const struct kited_api_policy *pol, const char *key)
{
	struct kited_api_result r;
	int rc = kited_api_call(admin.n, pol, KITE_OP_META_DELETE, "", key, (uint16_t)strlen(key), NULL,
				0, &r);

	free(r.value);
	if (rc == 0 && r.status == KITE_STATUS_KEY_ENOENT)
		return not_found(c, key);
	if (rc != 0 || r.status != KITE_STATUS_OK)
		return api_failure(c, rc, &r, key);
	return reply_json(c, MHD_HTTP_OK, json_pack("{s:s, s:b}", "key", key, "deleted", 1));
}

static enum MHD_Result
cache_batch_get(struct MHD_Connection *c, const struct kited_api_policy *pol,
		const struct conn *k)
{
	json_error_t jerr;
	json_t *in = k->body ? json_loadb(k->body, k->len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
	json_t *keys = json_is_object(in) ? json_object_get(in, "keys") : NULL;
	json_t *values, *missing, *elsewhere, *out;
	size_t i;
	json_t *kv;

	if (!json_is_array(keys) || json_array_size(keys) > API_BATCH_MAX) {
		json_decref(in);
		return error(c, MHD_HTTP_BAD_REQUEST, "want {\"keys\": [1 to 100 strings]}");
	}
	json_array_foreach(keys, i, kv) {
		if (!json_is_string(kv) ||
		    key_problem(json_string_value(kv), json_string_length(kv)) != NULL ||
		    strlen(json_string_value(kv)) != json_string_length(kv)) {
			json_decref(in);
			return error(c, MHD_HTTP_BAD_REQUEST,
				     "every key: a string of 1 to 250 bytes, no space or control "
				     "character");
		}
	}
	values = json_object();
	missing = json_array();
	elsewhere = json_object();
	json_array_foreach(keys, i, kv) {
		const char *key = json_string_value(kv);
		struct kited_api_result r;
		char url[256];
		int rc = kited_api_call(admin.n, pol, KITE_OP_META_GET, "v t f c", key,
					(uint16_t)strlen(key), NULL, 0, &r);

		if (rc == 0 && r.status == KITE_STATUS_OK) {
			json_object_set_new(values, key, value_json(key, &r));
		} else if (rc == 0 && r.status == KITE_STATUS_KEY_ENOENT) {
			json_array_append_new(missing, json_string(key));
		} else if (rc == 0 && r.status == KITE_STATUS_NOT_MY_VBUCKET &&
			   owner_url(key, "/cache/batch-get", NULL, url, sizeof(url)) == 0) {
			/* Another node's key: listed under the batch-get URL of its owner. */
			json_t *list = json_object_get(elsewhere, url);

			if (list == NULL) {
				list = json_array();
				json_object_set_new(elsewhere, url, list);
			}
			json_array_append_new(list, json_string(key));
		} else {
			enum MHD_Result ret = api_failure(c, rc, &r, NULL);

			free(r.value);
			json_decref(values);
			json_decref(missing);
			json_decref(elsewhere);
			json_decref(in);
			return ret;
		}
		free(r.value);
	}
	json_decref(in);
	out = json_pack("{s:o, s:o}", "values", values, "missing", missing);
	if (json_object_size(elsewhere) > 0)
		json_object_set_new(out, "elsewhere", elsewhere);
	else
		json_decref(elsewhere);
	return reply_json(c, MHD_HTTP_OK, out);
}

/* /cache/{key} (GET, PUT, DELETE) and /cache/batch-get (POST). */
static enum MHD_Result
cache_route(struct MHD_Connection *c, const char *key, const char *method, const struct conn *k)
{
	const bool read = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
			  strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	const bool batch = strcmp(key, "batch-get") == 0;
	const struct kited_admin_token *t = token_of(c);
	struct kited_api_policy pol;
	const char *why;
	int rc;

	if (batch ? strcmp(method, MHD_HTTP_METHOD_POST) != 0
		  : !read && strcmp(method, MHD_HTTP_METHOD_PUT) != 0 &&
			    strcmp(method, MHD_HTTP_METHOD_DELETE) != 0)
		return not_allowed(c, batch ? "POST" : "GET, HEAD, PUT, DELETE");
	if (t == NULL)
		return error(c, MHD_HTTP_UNAUTHORIZED, "a bearer token is required");
	if (!read && !batch && t->role == KITED_ADMIN_ROLE_READ)
		return error(c, MHD_HTTP_FORBIDDEN, "a read token only reads");
	/*
	 * What the request may do is what a datagram of the same client may:
	 * a tenant's token as that tenant's AUTH; a read token, or anyone
	 * without a token file, as a datagram without AUTH; an admin token
	 * everything.
	 */
	if (t->role == KITED_ADMIN_ROLE_ADMIN && t != &open_access) {
		memset(&pol, 0, sizeof(pol));
		pol.tenant = -1;
		pol.deny = admin.n->gconf.never_cmds;
	} else {
		rc = kited_guard_api_policy(admin.n,
					    t->role == KITED_ADMIN_ROLE_TENANT ? t->tenant : NULL, &pol);
		if (rc == -EACCES)
			return error(c, MHD_HTTP_UNAUTHORIZED,
				     "auth = required: the JSON API needs a tenant's or an admin token "
				     "(admin-token-file)");
		if (rc != 0)
			return error(c, MHD_HTTP_FORBIDDEN, "this token's tenant is not in tenants-file");
	}
	if (batch)
		return cache_batch_get(c, &pol, k);
	why = key_problem(key, strlen(key));
	if (why != NULL)
		return error(c, MHD_HTTP_BAD_REQUEST, why);
	if (read)
		return cache_get(c, &pol, key);
	if (strcmp(method, MHD_HTTP_METHOD_PUT) == 0)
		return cache_put(c, &pol, key, k);
	return cache_delete(c, &pol, key);
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
	const struct kited_admin_token *t;
	const bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
			 strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	(void)cls;
	(void)version;
	(void)upload;

	/*
	 * The first call for a request only sets it up (libmicrohttpd's
	 * protocol). Only the JSON API's PUT and POST take a body, up to
	 * API_BODY_MAX: any other announced body, or a longer one, is refused
	 * before it is read (the connection then closes).
	 */
	if (*state == NULL) {
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_TRANSFER_ENCODING);
		const bool body = (cl != NULL && strtoull(cl, NULL, 10) != 0) || te != NULL;
		struct conn *k = calloc(1, sizeof(*k));

		if (k == NULL)
			return MHD_NO;
		*state = k;
		/* (Under /cache/ the route says what is wrong: a method it does not take.) */
		if (body && !takes_body(url, method) && strncmp(url, "/cache/", 7) != 0)
			return error(c, MHD_HTTP_CONTENT_TOO_LARGE, "this request takes no body");
		if (cl != NULL && strtoull(cl, NULL, 10) > API_BODY_MAX)
			return error(c, MHD_HTTP_CONTENT_TOO_LARGE, "body over 98,304 bytes");
		return MHD_YES;
	}
	struct conn *k = *state;

	if (*upload_len != 0) {
		/* A body, kept for the JSON API (and cut short past the limit). */
		if (!takes_body(url, method)) {
			/* Not taken: discarded, and the route answers (405). */
		} else if (k->len + *upload_len > API_BODY_MAX) {
			k->too_big = true;
		} else {
			char *b = realloc(k->body, k->len + *upload_len + 1);
			if (b == NULL) {
				k->too_big = true;
			} else {
				memcpy(b + k->len, upload, *upload_len);
				k->body = b;
				k->len += *upload_len;
				b[k->len] = '\0';
			}
		}
		*upload_len = 0;
		return MHD_YES;
	}
	if (k->too_big)
		return error(c, MHD_HTTP_CONTENT_TOO_LARGE, "body over 98,304 bytes, or none taken");
	if (strncmp(url, "/cache/", 7) == 0)
		return cache_route(c, url + 7, method, k);
	if (strcmp(url, "/healthz") == 0) {
		if (!get)
			return not_allowed(c, "GET, HEAD");
		return reply(c, MHD_HTTP_OK, "text/plain", "ok\n", 3, false);
	}
	if (strcmp(url, "/readyz") == 0) {
		const char *why;
		char body[128];
		int len;

		if (!get)
			return not_allowed(c, "GET, HEAD");
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
			return not_allowed(c, "GET, HEAD");
		t = token_of(c);
		if (t == NULL)
			return error(c, MHD_HTTP_UNAUTHORIZED, "a bearer token is required");
		if (!may_see_stats(t))
			return error(c, MHD_HTTP_FORBIDDEN,
				     "statistics need a read or admin token, or an admin tenant's");
		text = kited_metrics_text(&n->stats_src, node_now(n), &len);
		if (text == NULL)
			return error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
		return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
			     true);
	}
	if (strcmp(url, "/hotkeys") == 0) {
		struct hot_json hj = { .body = NULL, .len = 0 };

		if (!get)
			return not_allowed(c, "GET, HEAD");
		/*
		 * Key names are the users' data: an admin token, or an admin
		 * tenant's (it may STAT hotkeys over UDP); open without a token file.
		 */
		t = token_of(c);
		if (t == NULL)
			return error(c, MHD_HTTP_UNAUTHORIZED, "a bearer token is required");
		if (t->role == KITED_ADMIN_ROLE_READ || !may_see_stats(t))
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
			return not_allowed(c, "GET, HEAD");
		if (token_of(c) == NULL)
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
		char *text = slurp(cfg->admin_token_file, err, errlen);
		char why[160];

		if (text == NULL)
			return -EINVAL;
		if (kited_admin_tokens_parse(text, admin.tokens, ADMIN_MAX_TOKENS, &admin.ntokens, why,
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
		/* A tenant's token names a tenant of tenants-file (a reload may drop it later: 403). */
		for (unsigned int i = 0; i < admin.ntokens; i++) {
			struct kited_api_policy p;

			if (admin.tokens[i].role == KITED_ADMIN_ROLE_TENANT &&
			    kited_guard_api_policy(n, admin.tokens[i].tenant, &p) != 0) {
				snprintf(err, errlen, "admin-token-file %s: tenant '%s' is not in %s",
					 cfg->admin_token_file, admin.tokens[i].tenant,
					 cfg->tenants_file[0] ? cfg->tenants_file
							      : "a tenants-file (none given)");
				memset(admin.tokens, 0, sizeof(admin.tokens));
				return -EINVAL;
			}
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
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)request_done, NULL },
		/* A JSON API request waits for a worker: a few threads, so one never stalls all. */
		{ MHD_OPTION_THREAD_POOL_SIZE, 4, NULL },
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
