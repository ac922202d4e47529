/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * /metrics: the node's statistics in Prometheus's text format (0.0.4).
 *
 * One source of names: this reads what STAT shows (kited_stats_emit) and
 * renames it by rule, so STAT, telemetry and /metrics cannot disagree.
 * Counters memcached has go under memcached_exporter's names (dashboards
 * made for memcached work); the rest are kite_*, counters with _total,
 * help from the counter tables (kited_stats_help). Families whose members
 * STAT spells out one by one (per worker, per command, per drop reason,
 * per replica peer) become one family with a label. The service-time
 * histograms come straight from the workers' buckets, in seconds.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kite_proto.h"
#include "kited_metrics.h"

/* ---- an output buffer ---------------------------------------------------- */

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void __attribute__((format(printf, 2, 3)))
bprintf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	for (;;) {
		size_t room = b->cap - b->len;
		int n;

		if (b->oom)
			return;
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)n + 1;
		char *p = realloc(b->p, cap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

/*
 * The array p (capacity *cap elements of elem bytes) with room for element
 * n: p itself, or a larger copy; NULL when out of memory (p stays).
 */
static void *
grow(void *p, unsigned int n, unsigned int *cap, size_t elem)
{
	if (n < *cap)
		return p;
	unsigned int c = *cap ? *cap * 2 : 512;
	void *q = realloc(p, (size_t)c * elem);

	if (q != NULL)
		*cap = c;
	return q;
}

/* ---- STAT's lines, collected ---------------------------------------------- */

struct line {
	char name[96];
	char value[64];
	bool used; /* renamed already by a memcached rule */
};

struct lines {
	struct line *l;
	unsigned int n, cap;
	bool oom;
};

static void
collect(void *arg, const char *name, const char *value)
{
	struct lines *ls = arg;

	struct line *l = grow(ls->l, ls->n, &ls->cap, sizeof(*l));

	if (l == NULL) {
		ls->oom = true;
		return;
	}
	ls->l = l;
	struct line *x = &ls->l[ls->n++];
	snprintf(x->name, sizeof(x->name), "%s", name);
	snprintf(x->value, sizeof(x->value), "%s", value);
	x->used = false;
}

static struct line *
find(struct lines *ls, const char *name)
{
	for (unsigned int i = 0; i < ls->n; i++)
		if (strcmp(ls->l[i].name, name) == 0)
			return &ls->l[i];
	return NULL;
}

static bool
numeric(const char *v)
{
	if (*v == '-')
		v++;
	if (*v == '\0')
		return false;
	for (; *v != '\0'; v++)
		if ((*v < '0' || *v > '9') && *v != '.')
			return false;
	return true;
}

/* ---- samples, grouped by family --------------------------------------------- */

struct sample {
	char family[128];
	const char *type; /* "counter", "gauge" */
	char help[256];
	char labels[160]; /* `k="v",...` or "" */
	char value[64];
};

struct samples {
	struct sample *s;
	unsigned int n, cap;
	bool oom;
};

/* A label value as Prometheus's text format escapes it. */
static void
label_escape(char *out, size_t cap, const char *v)
{
	size_t o = 0;

	for (; *v != '\0' && o + 3 < cap; v++) {
		if (*v == '\\' || *v == '"') {
			out[o++] = '\\';
			out[o++] = *v;
		} else if (*v == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *v;
		}
	}
	out[o] = '\0';
}

static void __attribute__((format(printf, 6, 7)))
add(struct samples *ss, const char *family, const char *type, const char *help,
    const char *value, const char *labels_fmt, ...)
{
	va_list ap;

	struct sample *s = grow(ss->s, ss->n, &ss->cap, sizeof(*s));

	if (s == NULL) {
		ss->oom = true;
		return;
	}
	ss->s = s;
	struct sample *x = &ss->s[ss->n++];
	snprintf(x->family, sizeof(x->family), "%s", family);
	x->type = type;
	snprintf(x->help, sizeof(x->help), "%s", help);
	snprintf(x->value, sizeof(x->value), "%s", value);
	x->labels[0] = '\0';
	{
		va_start(ap, labels_fmt);
		vsnprintf(x->labels, sizeof(x->labels), labels_fmt, ap);
		va_end(ap);
	}
}

/* HELP text escaped (backslash, line feed). */
static void
help_out(struct buf *b, const char *h)
{
	for (; *h != '\0'; h++) {
		if (*h == '\\')
			bprintf(b, "\\\\");
		else if (*h == '\n')
			bprintf(b, "\\n");
		else
			bprintf(b, "%c", *h);
	}
}

static void
write_families(struct buf *b, const struct samples *ss)
{
	bool *done = calloc(ss->n ? ss->n : 1, sizeof(bool));

	if (done == NULL) {
		b->oom = true;
		return;
	}
	for (unsigned int i = 0; i < ss->n; i++) {
		if (done[i])
			continue;
		const struct sample *f = &ss->s[i];

		bprintf(b, "# HELP %s ", f->family);
		help_out(b, f->help);
		bprintf(b, "\n# TYPE %s %s\n", f->family, f->type);
		for (unsigned int j = i; j < ss->n; j++) {
			const struct sample *x = &ss->s[j];

			if (done[j] || strcmp(x->family, f->family) != 0)
				continue;
			done[j] = true;
			if (x->labels[0] != '\0')
				bprintf(b, "%s{%s} %s\n", x->family, x->labels, x->value);
			else
				bprintf(b, "%s %s\n", x->family, x->value);
		}
	}
	free(done);
}

/* ---- the rules ------------------------------------------------------------------ */

/* memcached's STAT name -> memcached_exporter's family (plain, no labels). */
static const struct {
	const char *stat, *family, *type, *help;
} mc_plain[] = {
	/* memcached_exporter types it a counter; a level by Prometheus's rules (promtool). */
	{ "uptime", "memcached_uptime_seconds", "gauge", "Number of seconds since the server started." },
	{ "time", "memcached_time_seconds", "gauge", "current UNIX time according to the server." },
	{ "curr_items", "memcached_current_items", "gauge", "Current number of items stored by this instance." },
	{ "total_items", "memcached_items_total", "counter", "Total number of items stored during the life of this instance." },
	{ "bytes", "memcached_current_bytes", "gauge", "Current number of bytes used to store items." },
	{ "limit_maxbytes", "memcached_limit_bytes", "gauge", "Number of bytes this server is allowed to use for storage." },
	{ "evictions", "memcached_items_evicted_total", "counter", "Total number of valid items removed from cache to free memory for new items." },
	{ "reclaimed", "memcached_items_reclaimed_total", "counter", "Total number of times an entry was stored using memory from an expired entry." },
	{ "store_too_large", "memcached_item_too_large_total", "counter", "The number of times an item exceeded the max-item-size when being stored." },
	{ "store_no_memory", "memcached_item_no_memory_total", "counter", "The number of times an item could not be stored due to no more memory." },
	{ "item_size_max", "memcached_max_item_size_bytes", "gauge", "Largest value a store accepts, in bytes." },
	{ "threads", "kite_workers", "gauge", "Worker lcores serving requests." },
};

#define COMMANDS_HELP                                                                              \
	"Total number of all requests broken down by command (get, set, etc.) and status."

/* memcached_commands_total{command, status}, as memcached_exporter derives it from STAT. */
static void
memcached_commands(struct lines *ls, struct samples *ss)
{
	static const char *const ops[] = { "get", "delete", "incr", "decr", "cas", "touch" };
	char name[64];
	uint64_t cas_ops = 0;

	for (unsigned int i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		static const struct {
			const char *suffix, *status;
		} st[] = { { "hits", "hit" }, { "misses", "miss" } };

		for (unsigned int k = 0; k < 2; k++) {
			snprintf(name, sizeof(name), "%s_%s", ops[i], st[k].suffix);
			struct line *l = find(ls, name);
			if (l == NULL)
				continue;
			l->used = true;
			add(ss, "memcached_commands_total", "counter", COMMANDS_HELP, l->value,
			    "command=\"%s\",status=\"%s\"", ops[i], st[k].status);
			if (strcmp(ops[i], "cas") == 0)
				cas_ops += strtoull(l->value, NULL, 10);
		}
	}
	struct line *l = find(ls, "cas_badval");
	if (l != NULL) {
		l->used = true;
		cas_ops += strtoull(l->value, NULL, 10);
		add(ss, "memcached_commands_total", "counter", COMMANDS_HELP, l->value,
		    "command=\"cas\",status=\"badval\"");
	}
	if ((l = find(ls, "cmd_flush")) != NULL) {
		l->used = true;
		add(ss, "memcached_commands_total", "counter", COMMANDS_HELP, l->value,
		    "command=\"flush\",status=\"hit\"");
	}
	if ((l = find(ls, "cmd_set")) != NULL) {
		/* As memcached_exporter: sets that were not compare-and-swaps. */
		uint64_t set = strtoull(l->value, NULL, 10);
		char v[32];

		l->used = true;
		snprintf(v, sizeof(v), "%" PRIu64, set > cas_ops ? set - cas_ops : 0);
		add(ss, "memcached_commands_total", "counter", COMMANDS_HELP, v,
		    "command=\"set\",status=\"hit\"");
	}
}

/* STAT names that are levels, not counts (everything else numeric is a counter). */
static const char *const gauges[] = {
	"kite_partitions", "kite_cycles_per_request", "kite_hot_keys", "kite_cluster_epoch",
	"kite_cluster_members", "kite_cluster_vbuckets_owned", "kite_cluster_vbuckets_previous",
	"kite_cluster_vbuckets_replica_candidate", "kite_cluster_joining", "kite_cluster_join_ms",
	"kite_cluster_fenced", "kite_repl_sync", "kite_repl_sync_timeout_ms",
	"kite_repl_lag_max", "kite_repl_lag_us_max", "kite_repl_lag_us_p50", "kite_repl_lag_us_p99",
	"kite_repl_lag_us_p999", "kite_repl_unsynced_vbuckets", "kite_repl_backfilling_vbuckets",
};

static bool
is_gauge(const char *name)
{
	for (unsigned int i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++)
		if (strcmp(gauges[i], name) == 0)
			return true;
	return false;
}

/* A counter's family: the name with _total (once). */
static void
counter_family(char *out, size_t cap, const char *name)
{
	size_t n = strlen(name);

	if (n > 6 && strcmp(name + n - 6, "_total") == 0)
		snprintf(out, cap, "%s", name);
	else
		snprintf(out, cap, "%s_total", name);
}

/* Labelled families: STAT's "<prefix><label value>" lines, one family. */
static const struct {
	const char *prefix, *family, *label, *help;
} by_label[] = {
	{ "kite_cmd_", "kite_requests_total", "command", "Requests served, by command class (both dialects)." },
	{ "kite_drop_", "kite_proto_drops_total", "reason", "Datagrams or requests the protocol layer dropped, by reason (docs/protocol.rst)." },
	{ "kite_net_drop_", "kite_net_drops_total", "reason", "Packets the network stack dropped, by reason." },
};

/* kite_worker<i>_<what>: one family per what, labelled worker. */
static bool
worker_line(struct samples *ss, const struct line *l)
{
	unsigned int w;
	int used = 0;
	const char *what;
	char base[112], fam[128];

	if (sscanf(l->name, "kite_worker%u_%n", &w, &used) != 1 || used == 0)
		return false;
	what = l->name + used;
	if (strcmp(what, "served") == 0)
		add(ss, "kite_worker_requests_total", "counter", "Requests one worker served.", l->value,
		    "worker=\"%u\"", w);
	else if (strcmp(what, "busy_cycles") == 0)
		add(ss, "kite_worker_busy_cycles_total", "counter",
		    "TSC cycles one worker spent on non-empty bursts.", l->value, "worker=\"%u\"", w);
	else if (strcmp(what, "cycles_per_request") == 0)
		add(ss, "kite_worker_cycles_per_request", "gauge",
		    "Busy cycles per request served, one worker, since start.", l->value,
		    "worker=\"%u\"", w);
	else {
		snprintf(base, sizeof(base), "kite_worker_%.90s", what);
		counter_family(fam, sizeof(fam), base);
		add(ss, fam, "counter", "Per worker (STAT kite_worker<i>_...).", l->value,
		    "worker=\"%u\"", w);
	}
	return true;
}

/* kite_repl_peer_<ip>_<what>: labelled peer. */
static bool
peer_line(struct samples *ss, const struct line *l)
{
	static const struct {
		const char *what, *type, *help;
	} f[] = {
		{ "lag_ops", "gauge", "Mutations sent to a replica and not acknowledged yet." },
		{ "lag_us", "gauge", "Age of the oldest mutation a replica has not acknowledged, seconds." },
		{ "unacked", "gauge", "Replication datagrams a replica has not acknowledged." },
		{ "retransmits", "counter", "Replication datagrams sent to a replica again." },
		{ "resyncs", "counter", "Resynchronisations of a replica (a backfill from scratch)." },
		{ "acks", "counter", "Acknowledgements from a replica." },
	};
	const char *rest;
	char ip[32], fam[128];

	if (strncmp(l->name, "kite_repl_peer_", 15) != 0)
		return false;
	rest = l->name + 15;
	for (unsigned int i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		size_t wl = strlen(f[i].what), rl = strlen(rest);

		if (rl <= wl + 1 || strcmp(rest + rl - wl, f[i].what) != 0 || rest[rl - wl - 1] != '_')
			continue;
		snprintf(ip, sizeof(ip), "%.*s", (int)(rl - wl - 1), rest);
		if (strcmp(f[i].what, "lag_us") == 0) {
			char v[64];

			snprintf(v, sizeof(v), "%.9g", strtod(l->value, NULL) / 1e6);
			add(ss, "kite_repl_peer_lag_seconds", f[i].type, f[i].help, v, "peer=\"%s\"",
			    ip);
			return true;
		}
		if (strcmp(f[i].type, "counter") == 0)
			snprintf(fam, sizeof(fam), "kite_repl_peer_%s_total", f[i].what);
		else
			snprintf(fam, sizeof(fam), "kite_repl_peer_%s", f[i].what);
		add(ss, fam, f[i].type, f[i].help, l->value, "peer=\"%s\"", ip);
		return true;
	}
	return false;
}

/*
 * A name with a time unit STAT abbreviates (_ms, _us as a word of it):
 * Prometheus's base unit instead, at the end (kite_repl_lag_us_p99 ->
 * kite_repl_lag_p99_seconds), the value converted. False: no such unit.
 */
static bool
in_seconds(const char *name, const char *value, char *out, size_t cap, char *val, size_t vcap)
{
	static const struct {
		const char *word;
		double div;
	} units[] = { { "_ms", 1e3 }, { "_us", 1e6 } };

	for (unsigned int u = 0; u < 2; u++) {
		const char *at = strstr(name, units[u].word);
		size_t wl = strlen(units[u].word);

		while (at != NULL && at[wl] != '\0' && at[wl] != '_')
			at = strstr(at + 1, units[u].word);
		if (at == NULL)
			continue;
		snprintf(out, cap, "%.*s%s_seconds", (int)(at - name), name, at + wl);
		snprintf(val, vcap, "%.9g", strtod(value, NULL) / units[u].div);
		return true;
	}
	return false;
}

static void
kite_line(struct samples *ss, const struct line *l)
{
	char fam[128], help[256], esc[96];
	const char *h;

	/* STAT's own percentiles and buckets of what /metrics shows as histograms. */
	if (strncmp(l->name, "kite_service_", 13) == 0 ||
	    strncmp(l->name, "kite_repl_lag_us_lt_", 20) == 0)
		return;
	if (worker_line(ss, l) || peer_line(ss, l))
		return;
	for (unsigned int i = 0; i < sizeof(by_label) / sizeof(by_label[0]); i++) {
		size_t pl = strlen(by_label[i].prefix);

		if (strncmp(l->name, by_label[i].prefix, pl) == 0 && numeric(l->value)) {
			label_escape(esc, sizeof(esc), l->name + pl);
			add(ss, by_label[i].family, "counter", by_label[i].help, l->value, "%s=\"%s\"",
			    by_label[i].label, esc);
			return;
		}
	}
	if (!numeric(l->value)) {
		/* A word (kite_steer_mode flow): an info gauge, the word as a label. */
		snprintf(fam, sizeof(fam), "%s_info", l->name);
		label_escape(esc, sizeof(esc), l->value);
		snprintf(help, sizeof(help), "STAT %s, as the label value (always 1).", l->name);
		add(ss, fam, "gauge", help, "1", "value=\"%s\"", esc);
		return;
	}
	h = kited_stats_help(l->name);
	if (h != NULL)
		snprintf(help, sizeof(help), "%s (STAT %s).", h, l->name);
	else
		snprintf(help, sizeof(help), "STAT %s (docs/operations.rst).", l->name);
	char name[128], val[64];
	const char *value = l->value;

	snprintf(name, sizeof(name), "%s", l->name);
	if (in_seconds(l->name, l->value, name, sizeof(name), val, sizeof(val))) {
		value = val;
		snprintf(help + strlen(help), sizeof(help) - strlen(help), " In seconds.");
	}
	if (is_gauge(l->name)) {
		add(ss, name, "gauge", help, value, "%s", "");
	} else {
		counter_family(fam, sizeof(fam), name);
		add(ss, fam, "counter", help, value, "%s", "");
	}
}

/* Service-time histograms: every command served, buckets at powers of two cycles. */
static void
service_histograms(struct buf *b, const struct kited_stats_src *src)
{
	/* le from 2^8 cycles (about 0.1 us) to 2^34 (several seconds at any TSC rate). */
	enum { LO = 8, HI = 34 };
	/* Cache-line aligned (its type says so; malloc gives 16 bytes): UBSan saw it misaligned. */
	struct kited_worker_stats *w = aligned_alloc(_Alignof(struct kited_worker_stats), sizeof(*w));
	bool head = false;

	if (w == NULL) {
		b->oom = true;
		return;
	}
	kited_stats_sum_workers(src, w);
	for (unsigned int c = 0; c < KITE_CMD_MAX && src->tsc_hz != 0; c++) {
		const struct kite_hist *h = &w->service[c];
		const uint64_t n = kite_hist_total(h);
		const char *cmd = kite_proto_cmd_name(c);

		if (n == 0)
			continue;
		if (!head) {
			bprintf(b, "# HELP kite_service_seconds Service time of a request, from the start "
				   "of the burst that took it in (rx_burst or a handoff ring) to the end "
				   "of that burst's tx_burst, by command class; time queued before the "
				   "burst is not included.\n# TYPE kite_service_seconds histogram\n");
			head = true;
		}
		for (unsigned int e = LO; e <= HI; e++)
			bprintf(b, "kite_service_seconds_bucket{command=\"%s\",le=\"%.9g\"} %" PRIu64 "\n",
				cmd, (double)(UINT64_C(1) << e) / (double)src->tsc_hz,
				kite_hist_below(h, UINT64_C(1) << e));
		bprintf(b, "kite_service_seconds_bucket{command=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", cmd,
			n);
		bprintf(b, "kite_service_seconds_sum{command=\"%s\"} %.9g\n", cmd,
			(double)h->sum / (double)src->tsc_hz);
		bprintf(b, "kite_service_seconds_count{command=\"%s\"} %" PRIu64 "\n", cmd, n);
	}
	free(w);
}

char *
kited_metrics_text(const struct kited_stats_src *src, uint32_t now, size_t *len)
{
	struct lines ls = { 0 };
	struct samples ss = { 0 };
	struct buf b = { 0 };
	char esc[64];

	b.cap = 16384;
	b.p = malloc(b.cap);
	if (b.p == NULL)
		return NULL;
	b.p[0] = '\0';
	kited_stats_emit(src, now, collect, &ls);

	/* memcached_exporter's names first. */
	for (unsigned int i = 0; i < sizeof(mc_plain) / sizeof(mc_plain[0]); i++) {
		struct line *l = find(&ls, mc_plain[i].stat);

		if (l == NULL)
			continue;
		l->used = true;
		add(&ss, mc_plain[i].family, mc_plain[i].type, mc_plain[i].help, l->value, "%s", "");
	}
	struct line *v = find(&ls, "version");
	if (v != NULL) {
		v->used = true;
		label_escape(esc, sizeof(esc), v->value);
		add(&ss, "memcached_version", "gauge", "The version of this memcached server.", "1",
		    "version=\"%s\"", esc);
	}
	memcached_commands(&ls, &ss);
	/* Shown by other families, or of no use to a monitor. */
	static const char *const skip[] = { "pid", "pointer_size", "udp_port", "cmd_get",
					    "cmd_touch" };
	for (unsigned int i = 0; i < sizeof(skip) / sizeof(skip[0]); i++) {
		struct line *l = find(&ls, skip[i]);
		if (l != NULL)
			l->used = true;
	}
	/* Everything else STAT shows, by rule. */
	for (unsigned int i = 0; i < ls.n; i++) {
		struct line *l = &ls.l[i];
		char name[112];

		if (l->used)
			continue;
		if (strncmp(l->name, "kite_", 5) == 0) {
			kite_line(&ss, l);
			continue;
		}
		/* memcached's other names (get_expired, ...): Kite's, with its prefix. */
		snprintf(name, sizeof(name), "kite_%s", l->name);
		snprintf(l->name, sizeof(l->name), "%.*s", (int)sizeof(l->name) - 1, name);
		kite_line(&ss, l);
	}
	write_families(&b, &ss);
	service_histograms(&b, src);
	bool oom = ls.oom || ss.oom || b.oom;
	free(ls.l);
	free(ss.s);
	if (oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}
