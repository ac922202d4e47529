/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Progress lines, the end-of-run summary and the JSON report. The JSON
 * holds everything the plots and comparisons need (counters, rates,
 * percentiles, the non-empty histogram buckets, server cycles, the
 * per-second samples), so tools/bench never has to parse text.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "workload.h"

void
stats_add(struct bench_stats *a, const struct bench_stats *b)
{
	const uint64_t *src = (const uint64_t *)b;
	uint64_t *dst = (uint64_t *)a;

	/* The struct is uint64_t fields only. */
	for (size_t i = 0; i < sizeof(*a) / sizeof(uint64_t); i++)
		dst[i] += src[i];
}

static double
hit_ratio(const struct bench_stats *s)
{
	uint64_t n = s->get_hit + s->get_miss;

	return n ? (double)s->get_hit / (double)n : -1.0;
}

static uint64_t
sub(uint64_t a, uint64_t b)
{
	/* Counters only grow within a phase; stay sane if a read raced a phase start. */
	return a >= b ? a - b : a;
}

void
report_progress(struct run_report *r, double t, double secs, const struct bench_stats *now,
		const struct bench_stats *prev, const struct hist *interval)
{
	struct bench_stats d;
	const uint64_t *a = (const uint64_t *)now, *b = (const uint64_t *)prev;
	uint64_t *o = (uint64_t *)&d;
	double p99;

	for (size_t i = 0; i < sizeof(d) / sizeof(uint64_t); i++)
		o[i] = sub(a[i], b[i]);
	p99 = tsc_to_us(hist_quantile(interval, 0.99), r->tsc_hz);
	if (r->o->progress) {
		double hr = hit_ratio(&d);
		char hit[16];

		if (hr < 0)
			snprintf(hit, sizeof(hit), "-");
		else
			snprintf(hit, sizeof(hit), "%.1f%%", hr * 100);
		printf("[%5.1fs] %10.0f req/s  %9.0f dgram/s  hit %6s  p99 %8.1f us  "
		       "timeouts %" PRIu64 " errors %" PRIu64 " wrong %" PRIu64,
		       t, (double)d.done / secs, (double)d.rx_dgrams / secs, hit, p99,
		       d.timeouts + d.losses, d.err_status, d.wrong_value);
		if (r->w->cluster)
			printf(" redirects %" PRIu64, d.st_not_my_vbucket);
		putchar('\n');
		fflush(stdout);
	}
	if (r->nsamples < r->samples_cap) {
		struct progress_sample *s = &r->samples[r->nsamples++];
		s->t = t;
		s->ops = (double)d.done / secs;
		s->hit_ratio = hit_ratio(&d);
		s->p99_us = p99;
		s->redirects = (double)d.st_not_my_vbucket;
	}
}

static void
lat_line(FILE *f, const char *name, const struct hist *h, uint64_t hz)
{
	if (h->count == 0)
		return;
	fprintf(f,
		"  %-7s n=%-10" PRIu64 " mean %8.1f  p50 %8.1f  p90 %8.1f  p99 %8.1f  p99.9 %8.1f  "
		"max %9.1f us\n",
		name, h->count, tsc_to_us(h->sum / h->count, hz),
		tsc_to_us(hist_quantile(h, 0.5), hz), tsc_to_us(hist_quantile(h, 0.9), hz),
		tsc_to_us(hist_quantile(h, 0.99), hz), tsc_to_us(hist_quantile(h, 0.999), hz),
		tsc_to_us(h->max, hz));
}

static bool
server_cycles(const struct run_report *r, double *cpr, uint64_t *cycles, uint64_t *served)
{
	const struct server_stats *a = &r->srv_before, *b = &r->srv_after;

	if (!a->valid || !b->valid || !a->has_cycles || !b->has_cycles || b->served <= a->served)
		return false;
	*cycles = b->busy_cycles - a->busy_cycles;
	*served = b->served - a->served;
	*cpr = (double)*cycles / (double)*served;
	return true;
}

/* Key and value bytes the server copied per request served across the run (server_cycles()'s served). */
static double
server_copied(const struct run_report *r, uint64_t served)
{
	return (double)(r->srv_after.copied_bytes - r->srv_before.copied_bytes) / (double)served;
}

void
report_summary(const struct run_report *r, FILE *f)
{
	const struct bench_stats *s = &r->total;
	double secs = r->seconds > 0 ? r->seconds : 1;
	double hr = hit_ratio(s), cpr;
	uint64_t cyc, served;

	fprintf(f, "\n=== kite-bench %s -> %s, %u %s, %.1f s measured ===\n", r->mode, r->target,
		r->nthreads, strncmp(r->mode, "socket", 6) == 0 ? "thread(s)" : "lcore(s)", secs);
	workload_describe(r->w, r->o, f);
	if (r->o->preload)
		fprintf(f,
			"preload: %" PRIu64 " of %" PRIu64 " keys stored in %.2f s (%" PRIu64
			" errors, %" PRIu64 " SETs unanswered and sent again)\n",
			r->preload.set_ok, r->w->keys, r->preload_seconds, r->preload.err_status,
			r->preload.timeouts + r->preload.losses);
	fprintf(f, "throughput: %.0f req/s answered, %.0f sent; %.0f dgram/s out, %.0f in\n",
		(double)s->done / secs, (double)s->tx_reqs / secs, (double)s->tx_dgrams / secs,
		(double)s->rx_dgrams / secs);
	if (hr >= 0)
		fprintf(f, "GET: %" PRIu64 " hits, %" PRIu64 " misses, hit ratio %.2f%%\n",
			s->get_hit, s->get_miss, hr * 100);
	fprintf(f,
		"answers: set %" PRIu64 " delete %" PRIu64 " incr %" PRIu64 " echo %" PRIu64 "\n",
		s->set_ok, s->del_ok, s->incr_ok, s->echo_ok);
	fprintf(f,
		"problems: timeouts %" PRIu64 ", losses %" PRIu64 ", wrong values %" PRIu64
		", error statuses %" PRIu64 ", stale %" PRIu64 ", duplicates %" PRIu64
		", bad replies %" PRIu64 ", reassembly %" PRIu64 "\n",
		s->timeouts, s->losses, s->wrong_value, s->err_status, s->stale, s->dup,
		s->bad_reply, s->reasm_conflict);
	if (r->w->cluster)
		fprintf(f,
			"cluster: %" PRIu64 " NOT_MY_VBUCKET answers (redirects; the map is "
			"fetched again every second), %" PRIu64 " ETMPFAIL (fenced owner)\n",
			s->st_not_my_vbucket, s->st_tmpfail);
	fprintf(f, "client: %.0f%% busy (%u %s; near 100%% means the client set the pace)\n",
		100.0 * (double)s->busy_cycles / (secs * (double)r->tsc_hz * r->nthreads),
		r->nthreads, strncmp(r->mode, "socket", 6) == 0 ? "threads" : "lcores");
	if (s->late_sends)
		fprintf(f,
			"open loop: %" PRIu64 " datagrams sent over 100 us late (client "
			"saturated?)\n",
			s->late_sends);
	fprintf(f, "latency (us):\n");
	lat_line(f, "all", &r->hist, r->tsc_hz);
	for (unsigned int op = 0; op < OP_MAX; op++)
		lat_line(f, op_name((enum bench_op)op), &r->hist_op[op], r->tsc_hz);
	if (server_cycles(r, &cpr, &cyc, &served))
		fprintf(f,
			"server: %.1f cycles/request (%" PRIu64 " busy cycles / %" PRIu64
			" requests served), %.1f bytes copied/request\n",
			cpr, cyc, served, server_copied(r, served));
}

static void
json_hist(FILE *f, const struct hist *h, uint64_t hz, const char *ind)
{
	if (h->count == 0) {
		fprintf(f, "{\"count\": 0}");
		return;
	}
	fprintf(f,
		"{\n%s  \"count\": %" PRIu64 ",\n%s  \"mean\": %.3f,\n%s  \"min\": %.3f,\n"
		"%s  \"p50\": %.3f,\n%s  \"p90\": %.3f,\n%s  \"p99\": %.3f,\n%s  \"p999\": %.3f,\n"
		"%s  \"max\": %.3f\n%s}",
		ind, h->count, ind, tsc_to_us(h->sum / h->count, hz), ind, tsc_to_us(h->min, hz),
		ind, tsc_to_us(hist_quantile(h, 0.5), hz), ind,
		tsc_to_us(hist_quantile(h, 0.9), hz), ind, tsc_to_us(hist_quantile(h, 0.99), hz),
		ind, tsc_to_us(hist_quantile(h, 0.999), hz), ind, tsc_to_us(h->max, hz), ind);
}

static void
json_counters(FILE *f, const struct bench_stats *s, const char *ind)
{
	fprintf(f, "{\n");
#define BENCH_JSON(n, h) fprintf(f, "%s  \"%s\": %" PRIu64 ",\n", ind, #n, s->n);
	BENCH_COUNTERS(BENCH_JSON)
#undef BENCH_JSON
	fprintf(f,
		"%s  \"status_e2big\": %" PRIu64 ",\n%s  \"status_einval\": %" PRIu64 ",\n"
		"%s  \"status_enomem\": %" PRIu64 ",\n%s  \"status_not_stored\": %" PRIu64 ",\n"
		"%s  \"status_not_my_vbucket\": %" PRIu64 ",\n%s  \"status_tmpfail\": %" PRIu64 ",\n"
		"%s  \"status_other\": %" PRIu64 "\n%s}",
		ind, s->st_e2big, ind, s->st_einval, ind, s->st_enomem, ind, s->st_not_stored, ind,
		s->st_not_my_vbucket, ind, s->st_tmpfail, ind, s->st_other, ind);
}

static void
json_server(FILE *f, const char *name, const struct server_stats *s)
{
	fprintf(f,
		"    \"%s\": {\"valid\": %s, \"kite\": %s, \"busy_cycles\": %" PRIu64
		", \"served\": %" PRIu64 ", \"get_hits\": %" PRIu64 ", \"get_misses\": %" PRIu64
		", \"curr_items\": %" PRIu64 ", \"evictions\": %" PRIu64
		", \"steer_misses\": %" PRIu64 ", \"handoffs\": %" PRIu64
		", \"copied_bytes\": %" PRIu64
		", \"guard_passed\": %" PRIu64 ", \"guard_validated\": %" PRIu64
		", \"guard_authenticated\": %" PRIu64
		", \"service_get_p50_us\": %.3f, \"service_get_p99_us\": %.3f}",
		name, s->valid ? "true" : "false", s->has_cycles ? "true" : "false", s->busy_cycles,
		s->served, s->get_hits, s->get_misses, s->curr_items, s->evictions, s->steer_misses,
		s->handoffs, s->copied_bytes, s->guard_passed, s->guard_validated, s->guard_authed,
		s->service_get_p50_us, s->service_get_p99_us);
}

int
report_json(const struct run_report *r, const char *path)
{
	const struct bench_stats *s = &r->total;
	double secs = r->seconds > 0 ? r->seconds : 1;
	double hr = hit_ratio(s), cpr;
	uint64_t cyc = 0, served = 0;
	bool have_cyc;
	FILE *f = fopen(path, "w");
	bool first = true;

	if (f == NULL)
		return -errno;
	fprintf(f, "{\n  \"tool\": \"kite-bench\",\n  \"version\": \"%s\",\n", KITE_VERSION);
	fprintf(f, "  \"time\": %lld,\n", (long long)time(NULL));
	fprintf(f, "  \"mode\": \"%s\",\n  \"target\": \"%s\",\n  \"threads\": %u,\n", r->mode,
		r->target, r->nthreads);
	fprintf(f, "  \"tsc_hz\": %" PRIu64 ",\n", r->tsc_hz);
	fprintf(f, "  \"options\": {\n");
	bench_options_json(f, r->o, "    ");
	fprintf(f, "  },\n");
	fprintf(f, "  \"preload\": {\"seconds\": %.3f, \"counters\": ", r->preload_seconds);
	json_counters(f, &r->preload, "  ");
	fprintf(f, "},\n");
	fprintf(f, "  \"seconds\": %.3f,\n", r->seconds);
	fprintf(f, "  \"counters\": ");
	json_counters(f, s, "  ");
	fprintf(f, ",\n");
	fprintf(f,
		"  \"throughput\": {\"requests_per_s\": %.1f, \"sent_per_s\": %.1f, "
		"\"datagrams_out_per_s\": %.1f, \"datagrams_in_per_s\": %.1f, "
		"\"bytes_out_per_s\": %.1f, \"bytes_in_per_s\": %.1f},\n",
		(double)s->done / secs, (double)s->tx_reqs / secs, (double)s->tx_dgrams / secs,
		(double)s->rx_dgrams / secs, (double)s->tx_bytes / secs,
		(double)s->rx_bytes / secs);
	fprintf(f, "  \"client_busy\": %.4f,\n",
		(double)s->busy_cycles / (secs * (double)r->tsc_hz * r->nthreads));
	if (hr >= 0)
		fprintf(f, "  \"hit_ratio\": %.6f,\n", hr);
	else
		fprintf(f, "  \"hit_ratio\": null,\n");
	fprintf(f, "  \"latency_us\": ");
	json_hist(f, &r->hist, r->tsc_hz, "  ");
	fprintf(f, ",\n  \"latency_by_op_us\": {");
	for (unsigned int op = 0; op < OP_MAX; op++) {
		if (r->hist_op[op].count == 0)
			continue;
		fprintf(f, "%s\n    \"%s\": ", first ? "" : ",", op_name((enum bench_op)op));
		json_hist(f, &r->hist_op[op], r->tsc_hz, "    ");
		first = false;
	}
	fprintf(f, "\n  },\n");
	/* Non-empty buckets as [low_us, high_us, count]: enough for any CDF. */
	fprintf(f, "  \"histogram_us\": [");
	first = true;
	for (unsigned int i = 0; i < HIST_BUCKETS; i++) {
		if (r->hist.b[i] == 0)
			continue;
		fprintf(f, "%s\n    [%.4f, %.4f, %" PRIu64 "]", first ? "" : ",",
			tsc_to_us(hist_bucket_lo(i), r->tsc_hz),
			tsc_to_us(hist_bucket_hi(i) + 1, r->tsc_hz), r->hist.b[i]);
		first = false;
	}
	fprintf(f, "\n  ],\n");
	have_cyc = server_cycles(r, &cpr, &cyc, &served);
	fprintf(f, "  \"server\": {\n");
	json_server(f, "before", &r->srv_before);
	fprintf(f, ",\n");
	json_server(f, "after", &r->srv_after);
	fprintf(f, ",\n    \"busy_cycles\": %" PRIu64 ",\n    \"served\": %" PRIu64 ",\n", cyc,
		served);
	if (have_cyc)
		fprintf(f,
			"    \"cycles_per_request\": %.2f,\n    \"copied_bytes_per_request\": "
			"%.2f\n  },\n",
			cpr, server_copied(r, served));
	else
		fprintf(f, "    \"cycles_per_request\": null,\n"
			   "    \"copied_bytes_per_request\": null\n  },\n");
	fprintf(f, "  \"progress\": [");
	for (unsigned int i = 0; i < r->nsamples; i++) {
		const struct progress_sample *p = &r->samples[i];
		fprintf(f, "%s\n    {\"t\": %.2f, \"requests_per_s\": %.1f, \"hit_ratio\": ",
			i ? "," : "", p->t, p->ops);
		if (p->hit_ratio >= 0)
			fprintf(f, "%.6f", p->hit_ratio);
		else
			fprintf(f, "null");
		fprintf(f, ", \"p99_us\": %.3f, \"redirects\": %.0f}", p->p99_us, p->redirects);
	}
	fprintf(f, "\n  ]\n}\n");
	if (fclose(f) != 0)
		return -errno;
	return 0;
}
