/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "kite_conf.h"
#include "options.h"

static const struct kite_conf_opt opts[] = {
#define BENCH_OPT(key, type, field, def, min, max, help)                                           \
	{ key,	   KITE_CONF_##type, offsetof(struct bench_options, field),                           \
	  sizeof(((struct bench_options *)0)->field), def, (double)(min), (double)(max), help },
	BENCH_OPTIONS(BENCH_OPT)
#undef BENCH_OPT
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static const struct kite_conf_opt *
find(const char *key)
{
	return kite_conf_find(opts, N_OPTS, key);
}

int
bench_options_set(struct bench_options *o, const char *key, const char *value, char *err,
		  size_t errlen)
{
	const struct kite_conf_opt *d = find(key);

	if (d == NULL) {
		snprintf(err, errlen, "unknown option --%s (see --help)", key);
		return -EINVAL;
	}
	return kite_conf_set(d, o, value, "--", err, errlen);
}

void
bench_options_defaults(struct bench_options *o)
{
	kite_conf_defaults(opts, N_OPTS, o, sizeof(*o));
}

void
bench_options_usage(FILE *f)
{
	fprintf(f, "usage: kite-bench [EAL options --] [options]\n"
		   "\n"
		   "  dpdk mode (default) takes EAL options before `--`; socket and pcap modes\n"
		   "  need none. Boolean options: --name or --no-name.\n\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct kite_conf_opt *d = &opts[i];
		char left[48];

		snprintf(left, sizeof(left), "--%s%s", d->key, d->type == KITE_CONF_BOOL ? "" : " V");
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
		const struct kite_conf_opt *d;
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
			if (d != NULL && d->type == KITE_CONF_BOOL) {
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
		} else if (d->type == KITE_CONF_BOOL) {
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
		const struct kite_conf_opt *d = &opts[i];
		char buf[BENCH_STR_MAX];

		fprintf(f, "%s\"%s\": ", indent, d->key);
		kite_conf_format(d, o, buf, sizeof(buf));
		/* Strings and addresses are JSON strings; numbers and booleans bare. */
		if (d->type == KITE_CONF_STR || d->type == KITE_CONF_IPV4)
			json_str(f, buf);
		else
			fputs(buf, f);
		fputs(i + 1 < N_OPTS ? ",\n" : "\n", f);
	}
}
