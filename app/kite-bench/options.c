/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

enum opt_type { T_STR, T_U32, T_U64, T_NUM, T_IPV4, T_BOOL };

struct opt {
	const char *key;
	enum opt_type type;
	size_t off;
	const char *def;
	double min;
	double max;
	const char *help;
};

static const struct opt opts[] = {
#define BENCH_OPT(key, type, field, def, min, max, help)                                           \
	{ key,		 T_##type, offsetof(struct bench_options, field), def, (double)(min),      \
	  (double)(max), help },
	BENCH_OPTIONS(BENCH_OPT)
#undef BENCH_OPT
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static const struct opt *
find(const char *key)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strcmp(opts[i].key, key) == 0)
			return &opts[i];
	return NULL;
}

static int
parse_bool(const char *v, bool *out)
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

int
bench_options_set(struct bench_options *o, const char *key, const char *value, char *err,
		  size_t errlen)
{
	const struct opt *d = find(key);
	void *field;
	char *end;

	if (d == NULL) {
		snprintf(err, errlen, "unknown option --%s (see --help)", key);
		return -EINVAL;
	}
	field = (char *)o + d->off;
	switch (d->type) {
	case T_STR:
		if (strlen(value) >= BENCH_STR_MAX) {
			snprintf(err, errlen, "--%s: longer than %d bytes", key, BENCH_STR_MAX - 1);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	case T_IPV4: {
		struct in_addr a;
		if (inet_pton(AF_INET, value, &a) != 1) {
			snprintf(err, errlen, "--%s: '%s' is not a dotted IPv4 address", key,
				 value);
			return -EINVAL;
		}
		*(uint32_t *)field = ntohl(a.s_addr);
		return 0;
	}
	case T_BOOL:
		if (parse_bool(value, field) != 0) {
			snprintf(err, errlen, "--%s: '%s' is not a boolean", key, value);
			return -EINVAL;
		}
		return 0;
	case T_U32:
	case T_U64: {
		unsigned long long v;
		if (!isdigit((unsigned char)*value)) {
			snprintf(err, errlen, "--%s: '%s' is not a number", key, value);
			return -EINVAL;
		}
		errno = 0;
		v = strtoull(value, &end, 0);
		if (errno != 0 || *end != '\0' || (double)v < d->min || (double)v > d->max) {
			snprintf(err, errlen, "--%s: '%s' is not a number in %.0f..%.0f", key,
				 value, d->min, d->max);
			return -EINVAL;
		}
		if (d->type == T_U32)
			*(uint32_t *)field = (uint32_t)v;
		else
			*(uint64_t *)field = (uint64_t)v;
		return 0;
	}
	case T_NUM: {
		double v;
		errno = 0;
		v = strtod(value, &end);
		if (errno != 0 || end == value || *end != '\0' || !isfinite(v) || v < d->min ||
		    v > d->max) {
			snprintf(err, errlen, "--%s: '%s' is not a number in %g..%g", key, value,
				 d->min, d->max);
			return -EINVAL;
		}
		*(double *)field = v;
		return 0;
	}
	}
	return -EINVAL;
}

void
bench_options_defaults(struct bench_options *o)
{
	char err[128];

	memset(o, 0, sizeof(*o));
	for (size_t i = 0; i < N_OPTS; i++)
		/* The table's defaults are valid by construction; a test parses each. */
		(void)bench_options_set(o, opts[i].key, opts[i].def, err, sizeof(err));
}

void
bench_options_usage(FILE *f)
{
	fprintf(f, "usage: kite-bench [EAL options --] [options]\n"
		   "\n"
		   "  dpdk mode (default) takes EAL options before `--`; socket and pcap modes\n"
		   "  need none. Boolean options: --name or --no-name.\n\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt *d = &opts[i];
		char left[48];

		snprintf(left, sizeof(left), "--%s%s", d->key, d->type == T_BOOL ? "" : " V");
		fprintf(f, "  %-22s %s [%s]\n", left, d->help, d->def[0] ? d->def : "\"\"");
	}
	fprintf(f, "  %-22s this text\n", "--help");
}

enum bench_parse
bench_options_parse(struct bench_options *o, int argc, char **argv, FILE *out, char *err,
		    size_t errlen)
{
	bench_options_defaults(o);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		char key[64];
		const char *eq, *val;
		const struct opt *d;
		size_t klen;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			bench_options_usage(out);
			return BENCH_PARSE_EXIT;
		}
		if (strncmp(a, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument '%s' (options start with --)",
				 a);
			return BENCH_PARSE_ERROR;
		}
		a += 2;
		eq = strchr(a, '=');
		klen = eq ? (size_t)(eq - a) : strlen(a);
		if (klen >= sizeof(key)) {
			snprintf(err, errlen, "unknown option --%s", a);
			return BENCH_PARSE_ERROR;
		}
		memcpy(key, a, klen);
		key[klen] = '\0';
		d = find(key);
		if (d == NULL && strncmp(key, "no-", 3) == 0 && eq == NULL) {
			d = find(key + 3);
			if (d != NULL && d->type == T_BOOL) {
				*(bool *)((char *)o + d->off) = false;
				continue;
			}
			d = NULL;
		}
		if (d == NULL) {
			snprintf(err, errlen, "unknown option --%s (see --help)", key);
			return BENCH_PARSE_ERROR;
		}
		if (eq != NULL) {
			val = eq + 1;
		} else if (d->type == T_BOOL) {
			val = "true";
		} else {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "--%s needs a value", key);
				return BENCH_PARSE_ERROR;
			}
			val = argv[++i];
		}
		if (bench_options_set(o, key, val, err, errlen) != 0)
			return BENCH_PARSE_ERROR;
	}
	return BENCH_PARSE_RUN;
}

static void
json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void
bench_options_json(FILE *f, const struct bench_options *o, const char *indent)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt *d = &opts[i];
		const void *field = (const char *)o + d->off;

		fprintf(f, "%s\"%s\": ", indent, d->key);
		switch (d->type) {
		case T_STR:
			json_str(f, field);
			break;
		case T_U32:
			fprintf(f, "%" PRIu32, *(const uint32_t *)field);
			break;
		case T_U64:
			fprintf(f, "%" PRIu64, *(const uint64_t *)field);
			break;
		case T_NUM:
			fprintf(f, "%.17g", *(const double *)field);
			break;
		case T_IPV4: {
			uint32_t a = *(const uint32_t *)field;
			fprintf(f, "\"%u.%u.%u.%u\"", a >> 24, (a >> 16) & 255, (a >> 8) & 255,
				a & 255);
			break;
		}
		case T_BOOL:
			fputs(*(const bool *)field ? "true" : "false", f);
			break;
		}
		fputs(i + 1 < N_OPTS ? ",\n" : "\n", f);
	}
}
