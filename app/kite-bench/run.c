/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * kite-bench's run loop, shared by every transport: bench_run() drives the
 * phases (preload, warm-up, measurement, drain) through the transport's
 * driver, prints progress once a second and writes the summary and the
 * JSON report. Transports call it; it calls them back only through the
 * driver's function pointers.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>

#include "bench.h"
#include "workload.h"

volatile bool bench_quit;

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
bench_tsc_hz(void)
{
	uint64_t t0, c0, t1, c1;
	struct timespec d = { 0, 100 * 1000 * 1000 };

	/* Without EAL nobody has calibrated the TSC; 100 ms gives 10 ppm. */
	t0 = mono_ns();
	c0 = rte_rdtsc();
	nanosleep(&d, NULL);
	t1 = mono_ns();
	c1 = rte_rdtsc();
	return (uint64_t)((double)(c1 - c0) * 1e9 / (double)(t1 - t0));
}

static void
sleep_until(uint64_t tsc, uint64_t hz)
{
	uint64_t now = rte_rdtsc();

	if (tsc > now) {
		uint64_t us = (tsc - now) * 1000000 / hz;
		if (us > 50000)
			us = 50000; /* stay responsive to signals and finished workers */
		usleep((useconds_t)us);
	}
}

/*
 * Sum the generators' counters and histograms: the measured interval, or
 * (progress) everything since the phase began, read while they run and so
 * a few samples stale.
 */
static void
collect(struct bench_driver *d, bool progress, struct bench_stats *st, struct hist *h,
	struct hist *hop)
{
	memset(st, 0, sizeof(*st));
	if (h != NULL)
		hist_reset(h);
	for (unsigned int op = 0; hop != NULL && op < OP_MAX; op++)
		hist_reset(&hop[op]);
	for (unsigned int i = 0; i < d->nthreads; i++) {
		struct bench_stats m;

		if (progress) {
			stats_add(st, gen_stats(d->gens[i]));
		} else {
			gen_measured(d->gens[i], &m);
			stats_add(st, &m);
		}
		if (h != NULL)
			hist_merge(h,
				   progress ? gen_hist_progress(d->gens[i]) : gen_hist(d->gens[i]));
		for (unsigned int op = 0; hop != NULL && op < OP_MAX; op++)
			hist_merge(&hop[op], gen_hist_op(d->gens[i], (enum bench_op)op));
	}
}

/* Let the phase run; print progress once a second when asked. */
static void
watch(struct bench_driver *d, struct run_report *r, uint64_t hz, uint64_t start, bool progress)
{
	static struct hist cur, prev, iv;
	struct bench_stats s_now, s_prev;
	uint64_t next = start + hz;

	memset(&s_prev, 0, sizeof(s_prev));
	hist_reset(&prev);
	while (!d->finished(d->arg)) {
		uint64_t now;

		if (d->poll_main != NULL)
			d->poll_main(d->arg);
		else
			sleep_until(next, hz);
		now = rte_rdtsc();
		if (now < next)
			continue;
		if (d->tick != NULL)
			d->tick(d->arg, (double)(now - start) / (double)hz);
		if (progress) {
			collect(d, true, &s_now, &cur, NULL);
			hist_diff(&iv, &cur, &prev);
			report_progress(r, (double)(now - start) / (double)hz,
					(double)(now - next + hz) / (double)hz, &s_now, &s_prev,
					&iv);
			s_prev = s_now;
			prev = cur;
		}
		next = now + hz;
	}
	d->wait(d->arg);
}

int
bench_run(struct bench_options *o, const struct workload *w, struct bench_driver *d,
	  const char *mode, const char *target)
{
	static struct run_report r;
	const uint64_t hz = w->tsc_hz;
	uint64_t t0, warm_end, end;
	int rc = 0;

	memset(&r, 0, sizeof(r));
	r.o = o;
	r.w = w;
	r.mode = mode;
	r.target = target;
	r.nthreads = d->nthreads;
	r.tsc_hz = hz;
	r.samples_cap = (unsigned int)(o->duration + o->warmup) + 8;
	r.samples = calloc(r.samples_cap, sizeof(*r.samples));
	if (r.samples == NULL)
		return -ENOMEM;
	workload_describe(w, o, stdout);

	if (o->preload && !w->echo) {
		printf("preload: %" PRIu64 " keys...\n", w->keys);
		fflush(stdout);
		t0 = rte_rdtsc();
		rc = d->launch(d->arg, PHASE_PRELOAD, 0, t0 + (uint64_t)o->preload_timeout * hz);
		if (rc != 0)
			goto out;
		watch(d, &r, hz, t0, false);
		r.preload_seconds = (double)(rte_rdtsc() - t0) / (double)hz;
		collect(d, false, &r.preload, NULL, NULL);
		printf("preload: %" PRIu64 " of %" PRIu64 " keys stored in %.2f s, %" PRIu64
		       " errors, %" PRIu64 " SETs unanswered and sent again\n",
		       r.preload.set_ok, w->keys, r.preload_seconds, r.preload.err_status,
		       r.preload.timeouts + r.preload.losses);
		if (bench_quit) {
			rc = -EINTR;
			goto out;
		}
	}
	if (o->duration > 0) {
		if (o->server_stats && d->server_stats != NULL &&
		    d->server_stats(d->arg, &r.srv_before) != 0)
			fprintf(stderr, "kite-bench: no STAT answer before the run\n");
		t0 = rte_rdtsc();
		warm_end = t0 + (uint64_t)(o->warmup * (double)hz);
		end = warm_end + (uint64_t)(o->duration * (double)hz);
		rc = d->launch(d->arg, PHASE_LOAD, warm_end, end);
		if (rc != 0)
			goto out;
		watch(d, &r, hz, t0, true);
		r.seconds = o->duration;
		/* Stopped early (signal or --max-requests): rate over the time that ran. */
		{
			uint64_t stop = rte_rdtsc();
			if (stop < end && stop > warm_end)
				r.seconds = (double)(stop - warm_end) / (double)hz;
		}
		if (o->server_stats && d->server_stats != NULL &&
		    d->server_stats(d->arg, &r.srv_after) != 0)
			fprintf(stderr, "kite-bench: no STAT answer after the run\n");
		collect(d, false, &r.total, &r.hist, r.hist_op);
		report_summary(&r, stdout);
		/* A wrong value is a correctness failure, not a performance figure. */
		if (r.total.wrong_value > 0 || r.preload.wrong_value > 0)
			rc = BENCH_EXIT_WRONG;
	}
	if (o->json[0] != '\0') {
		int jr = report_json(&r, o->json);
		if (jr != 0) {
			fprintf(stderr, "kite-bench: --json %s: %s\n", o->json, strerror(-jr));
			rc = jr;
		}
	}
out:
	free(r.samples);
	return rc;
}
