/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * kite-cli's commands for a node's admin endpoint (HTTP, docs/operations.rst):
 *
 *   metrics [URL] [--token-file F] [--match TEXT]
 *       GET URL/metrics and print each family with its help text, a
 *       histogram as its count, mean and quantiles (bucket bounds).
 *   scrape-config [URL...] [--token-file F] [--job NAME] [--interval S]
 *       print a Prometheus configuration that scrapes the node, or, when
 *       it is a cluster member, every member's admin endpoint (/cluster).
 *
 * URL defaults to $KITE_ADMIN, else tools/kite-up's http://198.19.0.2:11280.
 * A token file holds the bearer token on its first line (the same file
 * Prometheus takes as credentials_file).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "admin_http.h"

#define DEFAULT_ADMIN "http://198.19.0.2:11280"
#define MAX_BODY      (16u << 20) /* a /metrics page is some 100 KiB; stop well above */

struct buf {
	char *p;
	size_t n;
	bool over;
};

static size_t
take(char *data, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t n = size * nmemb;
	char *p;

	if (b->n + n > MAX_BODY) {
		b->over = true;
		return 0;
	}
	p = realloc(b->p, b->n + n + 1);
	if (p == NULL)
		return 0;
	memcpy(p + b->n, data, n);
	b->p = p;
	b->n += n;
	p[b->n] = '\0';
	return n;
}

/* The token file's first line, trimmed; NULL with a message printed. */
static char *
read_token(const char *prog, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512];
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return NULL;
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		line[--n] = '\0';
	if (n == 0) {
		fprintf(stderr, "%s: %s: no token on its first line\n", prog, path);
		return NULL;
	}
	return strdup(line);
}

/*
 * GET base + path. @return 0 (*status, body in b), or EXIT_NET with a
 * message printed.
 */
static int
http_get(const char *prog, const char *base, const char *path, const char *token,
	 unsigned int timeout_ms, long *status, struct buf *b)
{
	char url[1024], auth[600], err[CURL_ERROR_SIZE] = "";
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();
	CURLcode rc;
	size_t bl = strlen(base);

	memset(b, 0, sizeof(*b));
	if (c == NULL) {
		fprintf(stderr, "%s: libcurl does not start\n", prog);
		return KITE_CLI_EXIT_NET;
	}
	while (bl > 0 && base[bl - 1] == '/')
		bl--;
	snprintf(url, sizeof(url), "%.*s%s", (int)bl, base, path);
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, take);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (rc != CURLE_OK) {
		fprintf(stderr, "%s: %s: %s\n", prog, url,
			b->over ? "more than 16 MiB" : err[0] ? err : curl_easy_strerror(rc));
		free(b->p);
		b->p = NULL;
		return KITE_CLI_EXIT_NET;
	}
	if (b->p == NULL)
		b->p = strdup("");
	return 0;
}

/* An HTTP status that is not 200: the JSON error's text, exit code 4. */
static int
http_refused(const char *prog, const char *what, long status, const struct buf *b)
{
	json_t *o = json_loads(b->p ? b->p : "", 0, NULL);
	const char *msg = json_string_value(json_object_get(o, "error"));

	fprintf(stderr, "%s: %s: HTTP %ld%s%s\n", prog, what, status, msg ? ": " : "",
		msg ? msg : "");
	json_decref(o);
	return KITE_CLI_EXIT_SERVER;
}

/* ---- metrics -------------------------------------------------------------- */

struct sample {
	char *name;   /* with its labels: name{a="b"} */
	char *family; /* the name before { */
	char *labels; /* inside the braces, "" for none */
	double value;
};

struct family {
	char *name, *help, *type;
	size_t first, n; /* its samples */
};

struct page {
	struct sample *s;
	size_t ns, cap;
	struct family *f;
	size_t nf, fcap;
};

static struct family *
family_of(struct page *pg, const char *name)
{
	for (size_t i = 0; i < pg->nf; i++)
		if (strcmp(pg->f[i].name, name) == 0)
			return &pg->f[i];
	if (pg->nf == pg->fcap) {
		size_t cap = pg->fcap ? 2 * pg->fcap : 64;
		struct family *f = realloc(pg->f, cap * sizeof(*f));
		if (f == NULL)
			return NULL;
		pg->f = f;
		pg->fcap = cap;
	}
	pg->f[pg->nf] = (struct family){ strdup(name), NULL, NULL, 0, 0 };
	return &pg->f[pg->nf++];
}

/* The family a sample belongs to: histogram and counter suffixes folded. */
static struct family *
family_of_sample(struct page *pg, const char *fam)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	size_t n = strlen(fam);

	for (size_t i = 0; i < 3; i++) {
		size_t k = strlen(sfx[i]);
		if (n > k && strcmp(fam + n - k, sfx[i]) == 0) {
			char base[256];
			snprintf(base, sizeof(base), "%.*s", (int)(n - k), fam);
			for (size_t j = 0; j < pg->nf; j++)
				if (strcmp(pg->f[j].name, base) == 0 && pg->f[j].type != NULL &&
				    strcmp(pg->f[j].type, "histogram") == 0)
					return &pg->f[j];
		}
	}
	return family_of(pg, fam);
}

/* Parse the text exposition format (what kited writes: no timestamps, no escapes in help). */
static int
parse_page(char *text, struct page *pg)
{
	char *save = NULL;

	for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "# HELP ", 7) == 0 || strncmp(l, "# TYPE ", 7) == 0) {
			char *name = l + 7, *sp = strchr(name, ' ');
			struct family *f;

			if (sp == NULL)
				continue;
			*sp = '\0';
			f = family_of(pg, name);
			if (f == NULL)
				return -ENOMEM;
			if (l[2] == 'H') {
				free(f->help);
				f->help = strdup(sp + 1);
			} else {
				free(f->type);
				f->type = strdup(sp + 1);
			}
			continue;
		}
		if (l[0] == '#' || l[0] == '\0')
			continue;
		char *end = strrchr(l, ' ');
		if (end == NULL)
			continue;
		*end = '\0';
		char *brace = strchr(l, '{');
		size_t fl = brace ? (size_t)(brace - l) : strlen(l);
		char fam[256];
		struct family *f;

		snprintf(fam, sizeof(fam), "%.*s", (int)fl, l);
		f = family_of_sample(pg, fam);
		if (f == NULL)
			return -ENOMEM;
		if (pg->ns == pg->cap) {
			size_t cap = pg->cap ? 2 * pg->cap : 256;
			struct sample *s = realloc(pg->s, cap * sizeof(*s));
			if (s == NULL)
				return -ENOMEM;
			pg->s = s;
			pg->cap = cap;
		}
		struct sample *s = &pg->s[pg->ns];
		s->name = strdup(l);
		s->family = strdup(fam);
		s->labels = brace ? strndup(brace + 1, strlen(brace + 1) - 1) : strdup("");
		s->value = strtod(end + 1, NULL);
		if (f->n == 0)
			f->first = pg->ns;
		f->n++;
		pg->ns++;
	}
	return 0;
}

static void
page_free(struct page *pg)
{
	for (size_t i = 0; i < pg->ns; i++) {
		free(pg->s[i].name);
		free(pg->s[i].family);
		free(pg->s[i].labels);
	}
	for (size_t i = 0; i < pg->nf; i++) {
		free(pg->f[i].name);
		free(pg->f[i].help);
		free(pg->f[i].type);
	}
	free(pg->s);
	free(pg->f);
}

/* A value as a person reads it: integers whole, seconds in the unit that fits. */
static void
print_value(double v, bool seconds)
{
	if (seconds && v > 0 && v < 1e-3)
		printf("%.1f us", v * 1e6);
	else if (seconds && v > 0 && v < 1)
		printf("%.3f ms", v * 1e3);
	else if (v == floor(v) && fabs(v) < 1e15)
		printf("%.0f", v);
	else
		printf("%g", v);
}

/* The labels of a bucket sample without le="...": the series it belongs to. */
static void
series_of(const char *labels, char *out, size_t len)
{
	const char *le = strstr(labels, "le=\"");
	size_t o = 0;

	if (le == NULL) {
		snprintf(out, len, "%s", labels);
		return;
	}
	o = (size_t)snprintf(out, len, "%.*s", (int)(le - labels), labels);
	if (o > 0 && o < len && out[o - 1] == ',')
		out[--o] = '\0';
}

/* Whether sample s is family f's sample with this suffix (_count, _sum, _bucket). */
static bool
is_part(const struct sample *s, const struct family *f, const char *suffix)
{
	size_t n = strlen(f->name);

	return strncmp(s->family, f->name, n) == 0 && strcmp(s->family + n, suffix) == 0;
}

/* A histogram: per series, count, mean, and the bucket bounds of p50, p99, p99.9. */
static void
print_histogram(const struct page *pg, const struct family *f, bool seconds)
{
	static const double q[] = { 0.5, 0.99, 0.999 };

	for (size_t i = f->first; i < pg->ns; i++) {
		const struct sample *s = &pg->s[i];
		const double count = s->value;
		char other[512];

		if (!is_part(s, f, "_count"))
			continue;
		printf("  %s{%s} count %.0f", f->name, s->labels, count);
		for (size_t j = f->first; j < pg->ns && count > 0; j++)
			if (is_part(&pg->s[j], f, "_sum") && strcmp(pg->s[j].labels, s->labels) == 0) {
				printf(", mean ");
				print_value(pg->s[j].value / count, seconds);
			}
		/* Buckets are cumulative and in order: the first that holds q of the count. */
		for (size_t k = 0; k < 3 && count > 0; k++) {
			for (size_t j = f->first; j < pg->ns; j++) {
				const struct sample *b = &pg->s[j];
				const char *le = strstr(b->labels, "le=\"");

				if (le == NULL || !is_part(b, f, "_bucket"))
					continue;
				series_of(b->labels, other, sizeof(other));
				if (strcmp(other, s->labels) != 0 || b->value < q[k] * count)
					continue;
				printf(", p%g <= ", q[k] * 100);
				if (strncmp(le + 4, "+Inf", 4) == 0)
					printf("+Inf");
				else
					print_value(strtod(le + 4, NULL), seconds);
				break;
			}
		}
		printf("\n");
	}
}

static int
parse_common(const char *prog, int argc, char **argv, const char **urls, int *nurls, int max,
	     const char **token_file, const char **extra_name, const char **extra)
{
	*nurls = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--token-file") == 0 ||
		    (extra_name != NULL && strcmp(a, extra_name[0]) == 0) ||
		    (extra_name != NULL && extra_name[1] != NULL && strcmp(a, extra_name[1]) == 0)) {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s: option '%s' needs a value\n", prog, a);
				return KITE_CLI_EXIT_USAGE;
			}
			if (strcmp(a, "--token-file") == 0)
				*token_file = argv[++i];
			else if (strcmp(a, extra_name[0]) == 0)
				extra[0] = argv[++i];
			else
				extra[1] = argv[++i];
		} else if (a[0] == '-') {
			fprintf(stderr, "%s: option '%s' is not valid here\n", prog, a);
			return KITE_CLI_EXIT_USAGE;
		} else if (*nurls == max) {
			fprintf(stderr, "%s: more than %d URLs\n", prog, max);
			return KITE_CLI_EXIT_USAGE;
		} else if (strncmp(a, "http://", 7) != 0 && strncmp(a, "https://", 8) != 0) {
			fprintf(stderr, "%s: '%s' is not an http:// or https:// URL\n", prog, a);
			return KITE_CLI_EXIT_USAGE;
		} else {
			urls[(*nurls)++] = a;
		}
	}
	if (*nurls == 0) {
		const char *env = getenv("KITE_ADMIN");
		urls[(*nurls)++] = env != NULL && env[0] != '\0' ? env : DEFAULT_ADMIN;
	}
	return 0;
}

int
kite_cli_metrics(const char *prog, unsigned int timeout_ms, int argc, char **argv)
{
	const char *urls[1], *token_file = NULL, *names[2] = { "--match", NULL }, *extra[2] = { 0 };
	char *token = NULL;
	struct page pg = { 0 };
	struct buf b;
	long status = 0;
	int nurls, rc;

	rc = parse_common(prog, argc, argv, urls, &nurls, 1, &token_file, names, extra);
	if (rc != 0)
		return rc;
	if (token_file != NULL && (token = read_token(prog, token_file)) == NULL)
		return KITE_CLI_EXIT_USAGE;
	rc = http_get(prog, urls[0], "/metrics", token, timeout_ms, &status, &b);
	free(token);
	if (rc != 0)
		return rc;
	if (status != 200) {
		rc = http_refused(prog, "/metrics", status, &b);
		free(b.p);
		return rc;
	}
	if (parse_page(b.p, &pg) != 0) {
		fprintf(stderr, "%s: out of memory\n", prog);
		free(b.p);
		page_free(&pg);
		return KITE_CLI_EXIT_NET;
	}
	for (size_t i = 0; i < pg.nf; i++) {
		const struct family *f = &pg.f[i];
		const bool seconds = strstr(f->name, "_seconds") != NULL;

		if (f->n == 0 || (extra[0] != NULL && strstr(f->name, extra[0]) == NULL))
			continue;
		printf("%s (%s): %s\n", f->name, f->type ? f->type : "untyped",
		       f->help ? f->help : "");
		if (f->type != NULL && strcmp(f->type, "histogram") == 0) {
			print_histogram(&pg, f, seconds);
			continue;
		}
		for (size_t j = f->first, k = 0; j < pg.ns && k < f->n; j++) {
			if (strcmp(pg.s[j].family, f->name) != 0)
				continue;
			k++;
			printf("  %s ", pg.s[j].name);
			print_value(pg.s[j].value, seconds);
			printf("\n");
		}
	}
	free(b.p);
	page_free(&pg);
	return KITE_CLI_EXIT_OK;
}

/* ---- scrape-config ---------------------------------------------------------------- */

int
kite_cli_scrape_config(const char *prog, unsigned int timeout_ms, int argc, char **argv)
{
	const char *urls[64], *token_file = NULL, *names[2] = { "--job", "--interval" };
	const char *extra[2] = { "kite", "15s" };
	char *token = NULL;
	json_t *targets = json_array();
	bool https = false;
	int nurls, rc = 0;

	rc = parse_common(prog, argc, argv, urls, &nurls, 64, &token_file, names, extra);
	if (rc != 0)
		goto out;
	if (token_file != NULL && (token = read_token(prog, token_file)) == NULL) {
		rc = KITE_CLI_EXIT_USAGE;
		goto out;
	}
	for (int i = 0; i < nurls; i++) {
		const char *host = strstr(urls[i], "://") + 3;
		size_t hl = strcspn(host, "/");
		struct buf b;
		long status = 0;

		https |= strncmp(urls[i], "https://", 8) == 0;
		/* A cluster member lists every member's admin endpoint; a single node, itself. */
		rc = http_get(prog, urls[i], "/cluster", token, timeout_ms, &status, &b);
		if (rc != 0)
			goto out;
		if (status == 200) {
			json_t *o = json_loads(b.p, 0, NULL), *m;
			size_t k;

			json_array_foreach(json_object_get(json_object_get(o, "map"), "members"), k, m) {
				const char *a = json_string_value(json_object_get(m, "admin"));
				if (a == NULL) {
					fprintf(stderr, "%s: member %s has no admin endpoint: not listed\n",
						prog, json_string_value(json_object_get(m, "id")));
					continue;
				}
				json_array_append_new(targets, json_string(a));
			}
			json_decref(o);
		} else if (status == 404) {
			json_array_append_new(targets, json_stringn(host, hl));
		} else {
			rc = http_refused(prog, "/cluster", status, &b);
			free(b.p);
			goto out;
		}
		free(b.p);
	}
	/* YAML (flow style where JSON and YAML agree): a whole prometheus.yml. */
	printf("# Prometheus configuration for Kite, by kite-cli scrape-config\n"
	       "# (rules and a dashboard: tools/prometheus/kite-rules.yml, tools/grafana/kite.json)\n"
	       "global:\n  scrape_interval: %s\n"
	       "scrape_configs:\n"
	       "  - job_name: %s\n"
	       "    metrics_path: /metrics\n"
	       "    scheme: %s\n",
	       extra[1], extra[0], https ? "https" : "http");
	if (token_file != NULL)
		printf("    authorization:\n      type: Bearer\n      credentials_file: %s\n",
		       token_file);
	printf("    static_configs:\n      - targets: [");
	for (size_t i = 0, first = 1; i < json_array_size(targets); i++) {
		const char *t = json_string_value(json_array_get(targets, i));
		bool dup = false;

		for (size_t j = 0; j < i; j++)
			dup |= strcmp(t, json_string_value(json_array_get(targets, j))) == 0;
		if (dup)
			continue;
		printf("%s'%s'", first ? "" : ", ", t);
		first = 0;
	}
	printf("]\n");
	rc = KITE_CLI_EXIT_OK;
out:
	free(token);
	json_decref(targets);
	return rc;
}
