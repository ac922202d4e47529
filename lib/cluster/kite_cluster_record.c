/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kite_cluster_record.h"

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (err != NULL && errlen > 0)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

static bool
pow2(uint64_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

static int
dump(json_t *o, char *buf, size_t len)
{
	size_t n;

	if (o == NULL)
		return -EINVAL;
	n = json_dumpb(o, buf, len, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (n == 0)
		return -EINVAL;
	if (n >= len)
		return -ENOSPC;
	buf[n] = '\0';
	return (int)n;
}

int
kite_cluster_member_to_json(const struct kite_cluster_member *mb, char *buf, size_t len)
{
	char ip[INET_ADDRSTRLEN];
	struct in_addr a = { htonl(mb->ip) };
	json_t *o;

	if (kite_cluster_member_check(mb) != 0)
		return -EINVAL;
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s}", "id", mb->id, "ip", ip, "port",
		      (json_int_t)mb->base_port, "partitions", (json_int_t)mb->partitions, "weight",
		      (json_int_t)mb->weight, "zone", mb->zone, "state",
		      kite_cluster_state_name(mb->state));
	if (o != NULL && mb->admin_port != 0) {
		char addr[INET_ADDRSTRLEN + 8];
		struct in_addr aa = { htonl(mb->admin_ip) };

		inet_ntop(AF_INET, &aa, addr, sizeof(addr));
		snprintf(addr + strlen(addr), 8, ":%u", (unsigned int)mb->admin_port);
		json_object_set_new(o, "admin", json_string(addr));
	}
	return dump(o, buf, len);
}

int
kite_cluster_addr_parse(const char *s, uint32_t *ip, uint16_t *port)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = strrchr(s, ':');
	struct in_addr a;
	uint64_t v;

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (inet_pton(AF_INET, host, &a) != 1 || !parse_u64(colon + 1, 1, 65535, &v))
		return -EINVAL;
	*ip = ntohl(a.s_addr);
	*port = (uint16_t)v;
	return 0;
}

/* An integer field in [lo, hi]; absent takes `def` (def < 0: required). */
static int
get_int(json_t *o, const char *name, int64_t lo, int64_t hi, int64_t def, int64_t *out,
	char *err, size_t errlen)
{
	json_t *v = json_object_get(o, name);

	if (v == NULL) {
		if (def < 0)
			return fail(err, errlen, "%s: missing", name);
		*out = def;
		return 0;
	}
	if (!json_is_integer(v))
		return fail(err, errlen, "%s: not an integer", name);
	*out = json_integer_value(v);
	if (*out < lo || *out > hi)
		return fail(err, errlen, "%s: %" PRId64 " is outside %" PRId64 "..%" PRId64, name,
			    *out, lo, hi);
	return 0;
}

/* A string field of at most `max` bytes; absent takes `def` (NULL: required). */
static int
get_str(json_t *o, const char *name, size_t max, const char *def, char *out, char *err,
	size_t errlen)
{
	json_t *v = json_object_get(o, name);
	const char *s;

	if (v == NULL) {
		if (def == NULL)
			return fail(err, errlen, "%s: missing", name);
		s = def;
	} else if (!json_is_string(v)) {
		return fail(err, errlen, "%s: not a string", name);
	} else {
		s = json_string_value(v);
		if (json_string_length(v) != strlen(s))
			return fail(err, errlen, "%s: contains a NUL", name);
	}
	if (strlen(s) > max)
		return fail(err, errlen, "%s: longer than %zu bytes", name, max);
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static json_t *
load(const char *json, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);

	if (o == NULL) {
		fail(err, errlen, "not JSON: %s (at byte %d)", je.text, je.position);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		fail(err, errlen, "not a JSON object");
		return NULL;
	}
	return o;
}

int
kite_cluster_member_from_json(const char *json, size_t len, struct kite_cluster_member *mb,
			      char *err, size_t errlen)
{
	char ip[INET_ADDRSTRLEN + 1], state[16], adm[INET_ADDRSTRLEN + 8];
	struct in_addr a;
	int64_t port, parts, weight;
	json_t *o = load(json, len, err, errlen);
	int rc, st;

	if (o == NULL)
		return -EINVAL;
	memset(mb, 0, sizeof(*mb));
	if ((rc = get_str(o, "id", KITE_CLUSTER_ID_MAX, NULL, mb->id, err, errlen)) != 0 ||
	    (rc = get_str(o, "ip", INET_ADDRSTRLEN, NULL, ip, err, errlen)) != 0 ||
	    (rc = get_int(o, "port", 1, 65535, -1, &port, err, errlen)) != 0 ||
	    (rc = get_int(o, "partitions", 1, KITE_CLUSTER_MAX_VBUCKETS, 4, &parts, err,
			  errlen)) != 0 ||
	    (rc = get_int(o, "weight", 1, KITE_CLUSTER_MAX_WEIGHT, 100, &weight, err, errlen)) !=
		    0 ||
	    (rc = get_str(o, "zone", KITE_CLUSTER_ZONE_MAX, "", mb->zone, err, errlen)) != 0 ||
	    (rc = get_str(o, "state", sizeof(state) - 1, "active", state, err, errlen)) != 0 ||
	    (rc = get_str(o, "admin", sizeof(adm) - 1, "", adm, err, errlen)) != 0)
		goto out;
	if (adm[0] != '\0' && kite_cluster_addr_parse(adm, &mb->admin_ip, &mb->admin_port) != 0) {
		rc = fail(err, errlen, "admin: '%s' is not IPV4:PORT", adm);
		goto out;
	}
	if (inet_pton(AF_INET, ip, &a) != 1) {
		rc = fail(err, errlen, "ip: '%s' is not an IPv4 address", ip);
		goto out;
	}
	if ((st = kite_cluster_state_parse(state)) < 0) {
		rc = fail(err, errlen, "state: '%s' is not active, joining or leaving", state);
		goto out;
	}
	mb->ip = ntohl(a.s_addr);
	mb->base_port = (uint16_t)port;
	mb->partitions = (uint16_t)parts;
	mb->weight = (uint32_t)weight;
	mb->state = (uint8_t)st;
	if (parts > 65535 || !pow2((uint64_t)parts))
		rc = fail(err, errlen, "partitions: %" PRId64 " is not a power of two", parts);
	else if (port + parts - 1 > 65535)
		rc = fail(err, errlen, "port: %" PRId64 " + %" PRId64 " partitions passes 65535",
			  port, parts);
	else if (kite_cluster_member_check(mb) != 0)
		rc = fail(err, errlen, "id: '%s' has a space, '/' or a control character", mb->id);
out:
	json_decref(o);
	return rc;
}

int
kite_cluster_config_to_json(const struct kite_cluster_config *c, char *buf, size_t len)
{
	return dump(json_pack("{s:I, s:I, s:I}", "vbuckets", (json_int_t)c->vbuckets, "copies",
			      (json_int_t)c->copies, "generation", (json_int_t)c->generation),
		    buf, len);
}

static int
config_check(const struct kite_cluster_config *c, char *err, size_t errlen)
{
	if (!pow2(c->vbuckets) || c->vbuckets < KITE_CLUSTER_MIN_VBUCKETS ||
	    c->vbuckets > KITE_CLUSTER_MAX_VBUCKETS)
		return fail(err, errlen, "vbuckets: %u is not a power of two in %u..%u",
			    c->vbuckets, KITE_CLUSTER_MIN_VBUCKETS, KITE_CLUSTER_MAX_VBUCKETS);
	if (c->copies < 1 || c->copies > KITE_CLUSTER_MAX_COPIES)
		return fail(err, errlen, "copies: %u is outside 1..%u", c->copies,
			    KITE_CLUSTER_MAX_COPIES);
	return 0;
}

int
kite_cluster_config_from_json(const char *json, size_t len, struct kite_cluster_config *c,
			      char *err, size_t errlen)
{
	int64_t vb, copies, gen;
	json_t *o = load(json, len, err, errlen);
	int rc;

	if (o == NULL)
		return -EINVAL;
	rc = get_int(o, "vbuckets", 1, KITE_CLUSTER_MAX_VBUCKETS, -1, &vb, err, errlen);
	if (rc == 0)
		rc = get_int(o, "copies", 1, KITE_CLUSTER_MAX_COPIES, 1, &copies, err, errlen);
	if (rc == 0)
		rc = get_int(o, "generation", 0, UINT32_MAX, -1, &gen, err, errlen);
	json_decref(o);
	if (rc != 0)
		return rc;
	c->vbuckets = (uint32_t)vb;
	c->copies = (uint32_t)copies;
	c->generation = (uint32_t)gen;
	return config_check(c, err, errlen);
}

/* Unsigned decimal in [lo, hi], the whole token. */
static bool
parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static int
member_line(char *rest, unsigned int line, struct kite_cluster_member *mb, char *err,
	    size_t errlen)
{
	char *save = NULL, *tok[8];
	unsigned int n = 0;
	uint64_t v;

	for (char *t = strtok_r(rest, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
		if (n == 8)
			return fail(err, errlen, "line %u: too many fields", line);
		tok[n++] = t;
	}
	if (n < 2)
		return fail(err, errlen, "line %u: member ID IP:PORT [partitions=N] [weight=N] "
					 "[zone=NAME] [admin=IP:PORT]", line);
	memset(mb, 0, sizeof(*mb));
	if (strlen(tok[0]) > KITE_CLUSTER_ID_MAX)
		return fail(err, errlen, "line %u: id longer than %d bytes", line,
			    KITE_CLUSTER_ID_MAX);
	strcpy(mb->id, tok[0]);
	mb->partitions = 4;
	mb->weight = 100;
	mb->state = KITE_CLUSTER_ACTIVE;

	char *colon = strrchr(tok[1], ':');
	struct in_addr a;
	if (colon == NULL)
		return fail(err, errlen, "line %u: '%s' is not IP:PORT", line, tok[1]);
	*colon = '\0';
	if (inet_pton(AF_INET, tok[1], &a) != 1)
		return fail(err, errlen, "line %u: '%s' is not an IPv4 address", line, tok[1]);
	if (!parse_u64(colon + 1, 1, 65535, &v))
		return fail(err, errlen, "line %u: port '%s' is not 1..65535", line, colon + 1);
	mb->ip = ntohl(a.s_addr);
	mb->base_port = (uint16_t)v;
	for (unsigned int i = 2; i < n; i++) {
		char *eq = strchr(tok[i], '=');

		if (eq == NULL)
			return fail(err, errlen, "line %u: '%s' is not NAME=VALUE", line, tok[i]);
		*eq = '\0';
		if (strcmp(tok[i], "partitions") == 0) {
			if (!parse_u64(eq + 1, 1, 32768, &v) || !pow2(v))
				return fail(err, errlen, "line %u: partitions '%s' is not a power "
							 "of two", line, eq + 1);
			mb->partitions = (uint16_t)v;
		} else if (strcmp(tok[i], "weight") == 0) {
			if (!parse_u64(eq + 1, 1, KITE_CLUSTER_MAX_WEIGHT, &v))
				return fail(err, errlen, "line %u: weight '%s' is not 1..%u", line,
					    eq + 1, KITE_CLUSTER_MAX_WEIGHT);
			mb->weight = (uint32_t)v;
		} else if (strcmp(tok[i], "admin") == 0) {
			if (kite_cluster_addr_parse(eq + 1, &mb->admin_ip, &mb->admin_port) != 0)
				return fail(err, errlen, "line %u: admin '%s' is not IPV4:PORT", line,
					    eq + 1);
		} else if (strcmp(tok[i], "zone") == 0) {
			if (strlen(eq + 1) > KITE_CLUSTER_ZONE_MAX)
				return fail(err, errlen, "line %u: zone longer than %d bytes", line,
					    KITE_CLUSTER_ZONE_MAX);
			strcpy(mb->zone, eq + 1);
		} else {
			return fail(err, errlen, "line %u: unknown field '%s'", line, tok[i]);
		}
	}
	if ((uint32_t)mb->base_port + mb->partitions - 1 > 65535)
		return fail(err, errlen, "line %u: port + partitions passes 65535", line);
	if (kite_cluster_member_check(mb) != 0)
		return fail(err, errlen, "line %u: id '%s' has a '/' or a control character", line,
			    mb->id);
	return 0;
}

int
kite_cluster_static_parse(const char *text, size_t len, struct kite_cluster_static *out,
			  char *err, size_t errlen)
{
	bool have_epoch = false;
	unsigned int line = 0;
	size_t pos = 0;

	memset(out, 0, sizeof(*out));
	out->config.vbuckets = KITE_CLUSTER_DEFAULT_VBUCKETS;
	out->config.copies = 1;
	while (pos < len) {
		char buf[512], *s, *e;
		size_t end = pos;

		while (end < len && text[end] != '\n')
			end++;
		line++;
		if (end - pos >= sizeof(buf))
			return fail(err, errlen, "line %u: longer than %zu bytes", line,
				    sizeof(buf) - 1);
		if (memchr(text + pos, '\0', end - pos) != NULL)
			return fail(err, errlen, "line %u: contains a NUL", line);
		memcpy(buf, text + pos, end - pos);
		buf[end - pos] = '\0';
		pos = end + 1;
		if ((s = strchr(buf, '#')) != NULL)
			*s = '\0';
		for (s = buf; *s == ' ' || *s == '\t' || *s == '\r'; s++)
			;
		for (e = s + strlen(s); e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r');)
			*--e = '\0';
		if (*s == '\0')
			continue;
		if (strncmp(s, "member", 6) == 0 && (s[6] == ' ' || s[6] == '\t')) {
			if (out->n_members == KITE_CLUSTER_MAX_MEMBERS)
				return fail(err, errlen, "line %u: more than %d members", line,
					    KITE_CLUSTER_MAX_MEMBERS);
			int rc = member_line(s + 7, line, &out->members[out->n_members], err,
					     errlen);
			if (rc != 0)
				return rc;
			for (unsigned int i = 0; i < out->n_members; i++)
				if (strcmp(out->members[i].id, out->members[out->n_members].id) == 0)
					return fail(err, errlen, "line %u: member '%s' twice", line,
						    out->members[i].id);
			out->n_members++;
			continue;
		}
		char *eq = strchr(s, '=');
		if (eq == NULL)
			return fail(err, errlen, "line %u: expected 'member ...' or 'key = value'",
				    line);
		char *k = s, *v = eq + 1;
		for (e = eq; e > k && (e[-1] == ' ' || e[-1] == '\t');)
			e--;
		*e = '\0';
		while (*v == ' ' || *v == '\t')
			v++;
		uint64_t x;
		if (strcmp(k, "epoch") == 0) {
			if (!parse_u64(v, 1, UINT64_MAX, &x))
				return fail(err, errlen, "line %u: epoch '%s' is not 1..2^64-1", line,
					    v);
			out->epoch = x;
			have_epoch = true;
		} else if (strcmp(k, "vbuckets") == 0) {
			if (!parse_u64(v, 1, KITE_CLUSTER_MAX_VBUCKETS, &x))
				return fail(err, errlen, "line %u: vbuckets '%s' is not a number "
							 "up to %u", line, v, KITE_CLUSTER_MAX_VBUCKETS);
			out->config.vbuckets = (uint32_t)x;
		} else if (strcmp(k, "copies") == 0) {
			if (!parse_u64(v, 1, KITE_CLUSTER_MAX_COPIES, &x))
				return fail(err, errlen, "line %u: copies '%s' is not 1..%u", line, v,
					    KITE_CLUSTER_MAX_COPIES);
			out->config.copies = (uint32_t)x;
		} else {
			return fail(err, errlen, "line %u: unknown key '%s'", line, k);
		}
	}
	if (!have_epoch)
		return fail(err, errlen, "no 'epoch = N' line (raise it on every edit)");
	if (out->n_members == 0)
		return fail(err, errlen, "no 'member' line");
	if (config_check(&out->config, err, errlen) != 0)
		return -EINVAL;
	for (unsigned int i = 0; i < out->n_members; i++)
		if (out->config.vbuckets % out->members[i].partitions != 0)
			return fail(err, errlen, "member '%s': %u partitions do not divide %u "
						 "vbuckets", out->members[i].id,
				    out->members[i].partitions, out->config.vbuckets);
	return 0;
}
