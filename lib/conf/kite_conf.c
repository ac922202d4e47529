/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kite_conf.h"

const struct kite_conf_opt *
kite_conf_find(const struct kite_conf_opt *t, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].key, key) == 0)
			return &t[i];
	return NULL;
}

int
kite_conf_parse_bool(const char *v, bool *out)
{
	if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 ||
	    strcmp(v, "on") == 0)
		*out = true;
	else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0 ||
		 strcmp(v, "off") == 0)
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* Position of p[0..n) in choices, or -1. */
static int
choice_of(const char *choices, const char *p, size_t n)
{
	int i = 0;

	for (const char *c = choices; *c != '\0'; i++) {
		size_t m = strcspn(c, ",");

		if (m == n && n > 0 && strncmp(c, p, n) == 0)
			return i;
		c += m;
		if (*c == ',')
			c++;
	}
	return -1;
}

int
kite_conf_choice(const char *choices, const char *value)
{
	if (choices == NULL || value == NULL)
		return -1;
	return choice_of(choices, value, strlen(value));
}

long
kite_conf_flags(const char *choices, const char *list)
{
	long bits = 0;
	const char *p = list;

	if (choices == NULL || list == NULL)
		return -1;
	if (strcmp(list, "none") == 0)
		return 0;
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		int i = choice_of(choices, p, n);

		if (i < 0 || i >= 31)
			return -1;
		bits |= 1L << i;
		p += n;
		if (*p == ',' && *++p == '\0')
			return -1; /* trailing comma */
	}
	return bits;
}

const char *
kite_conf_type_name(enum kite_conf_type t)
{
	switch (t) {
	case KITE_CONF_STR:
		return "string";
	case KITE_CONF_U32:
	case KITE_CONF_U64:
		return "integer";
	case KITE_CONF_SIZE:
		return "bytes";
	case KITE_CONF_NUM:
		return "number";
	case KITE_CONF_IPV4:
		return "IPv4";
	case KITE_CONF_BOOL:
		return "boolean";
	}
	return "?";
}

/* An unsigned integer: decimal, or hex after 0x; nothing else after it. */
static int
parse_uint(const char *s, unsigned long long *v, char **end)
{
	int base = (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : 10;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, end, base);
	return errno != 0 ? -EINVAL : 0;
}

/* A byte count with an optional K/M/G/T suffix (powers of 1024), "MB" and "MiB" alike. */
static int
parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (parse_uint(s, &v, &end) != 0)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	default:
		break;
	}
	if (shift) {
		end++;
		if (toupper((unsigned char)*end) == 'I')
			end++;
	}
	if (toupper((unsigned char)*end) == 'B')
		end++;
	if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int
kite_conf_set(const struct kite_conf_opt *o, void *obj, const char *value, const char *prefix,
	      char *err, size_t errlen)
{
	void *field = (char *)obj + o->off;
	unsigned long long u;
	uint64_t v;
	char *end;

	switch (o->type) {
	case KITE_CONF_STR:
		if (strlen(value) >= o->len) {
			snprintf(err, errlen, "%s%s: value longer than %zu bytes", prefix, o->key,
				 o->len - 1);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	case KITE_CONF_IPV4: {
		struct in_addr a;
		if (inet_pton(AF_INET, value, &a) != 1) {
			snprintf(err, errlen, "%s%s: '%s' is not a dotted IPv4 address", prefix,
				 o->key, value);
			return -EINVAL;
		}
		*(uint32_t *)field = ntohl(a.s_addr);
		return 0;
	}
	case KITE_CONF_BOOL:
		if (kite_conf_parse_bool(value, field) != 0) {
			snprintf(err, errlen, "%s%s: '%s' is not a boolean (on/off)", prefix, o->key,
				 value);
			return -EINVAL;
		}
		return 0;
	case KITE_CONF_NUM: {
		double d;
		errno = 0;
		d = strtod(value, &end);
		if (errno != 0 || end == value || *end != '\0' || !isfinite(d) || d < o->min ||
		    d > o->max) {
			snprintf(err, errlen, "%s%s: '%s' is not a number in %g..%g", prefix, o->key,
				 value, o->min, o->max);
			return -EINVAL;
		}
		*(double *)field = d;
		return 0;
	}
	case KITE_CONF_SIZE:
		if (parse_size(value, &v) != 0) {
			snprintf(err, errlen, "%s%s: '%s' is not a size (bytes, or with K/M/G/T)",
				 prefix, o->key, value);
			return -EINVAL;
		}
		break;
	case KITE_CONF_U32:
	case KITE_CONF_U64:
		if (parse_uint(value, &u, &end) != 0 || *end != '\0') {
			snprintf(err, errlen, "%s%s: '%s' is not a number", prefix, o->key, value);
			return -EINVAL;
		}
		v = u;
		break;
	default:
		return -EINVAL;
	}
	if ((double)v < o->min || (double)v > o->max) {
		snprintf(err, errlen, "%s%s: %llu is outside %.0f..%.0f", prefix, o->key,
			 (unsigned long long)v, o->min, o->max);
		return -EINVAL;
	}
	if (o->type == KITE_CONF_U32)
		*(uint32_t *)field = (uint32_t)v;
	else
		*(uint64_t *)field = v;
	return 0;
}

void
kite_conf_defaults(const struct kite_conf_opt *t, size_t n, void *obj, size_t size)
{
	char err[160];

	memset(obj, 0, size);
	for (size_t i = 0; i < n; i++)
		/* Tables' defaults are in range by construction; each program's tests parse them. */
		(void)kite_conf_set(&t[i], obj, t[i].def, "", err, sizeof(err));
}

void
kite_conf_format(const struct kite_conf_opt *o, const void *obj, char *buf, size_t len)
{
	const void *field = (const char *)obj + o->off;
	uint32_t a;

	switch (o->type) {
	case KITE_CONF_STR:
		snprintf(buf, len, "%s", (const char *)field);
		return;
	case KITE_CONF_U32:
		snprintf(buf, len, "%" PRIu32, *(const uint32_t *)field);
		return;
	case KITE_CONF_U64:
	case KITE_CONF_SIZE:
		snprintf(buf, len, "%" PRIu64, *(const uint64_t *)field);
		return;
	case KITE_CONF_NUM:
		snprintf(buf, len, "%.17g", *(const double *)field);
		return;
	case KITE_CONF_IPV4:
		a = *(const uint32_t *)field;
		snprintf(buf, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255,
			 a & 255);
		return;
	case KITE_CONF_BOOL:
		snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false");
		return;
	}
	snprintf(buf, len, "?");
}
