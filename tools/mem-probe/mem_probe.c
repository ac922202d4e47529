/* SPDX-License-Identifier: BSD-3-Clause */

/*
 * mem-probe: how fast is this CPU right now? A benchmark's context, not a
 * benchmark: on a shared host the memory system's latency changes from
 * second to second with the neighbours' load, and a cache that misses
 * pays for it.
 *
 *   mem-probe [--mib N] [--loads N] [--json]
 *
 * Prints three figures for the CPU it runs on (pin it with taskset):
 *   chase:   nanoseconds per dependent load, a random single cycle
 *            through N MiB (default 16: about what 100,000 cached items
 *            and their index span), so nearly every load misses the
 *            caches near the core;
 *   compute: nanoseconds per step of a dependent multiply-add chain,
 *            which touches no memory (the core's own speed);
 *   syscall: nanoseconds per system call that does nothing (getppid), the
 *            floor under every send and receive of a kernel-socket client
 *            (page-table isolation and a hypervisor can make it a
 *            microsecond).
 * The buffer is built before the clock starts. 16 MiB, 500,000 loads:
 * about 0.1 s; the system calls (loads / 5) about as long again.
 */

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double
now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static uint64_t
next_rand(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: mem-probe [--mib N] [--loads N] [--json]\n"
		   "  --mib N    size of the chased buffer in MiB (1..4096, default 16)\n"
		   "  --loads N  dependent loads timed (1000..1000000000, default 500000)\n"
		   "  --json     one JSON object instead of text\n"
		   "Prints ns per dependent load over the buffer (chase), ns per step of a\n"
		   "multiply-add chain (compute) and ns per empty system call (syscall), on the\n"
		   "CPU it runs on (pin it with taskset).\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = { { "mib", required_argument, NULL, 'm' },
					      { "loads", required_argument, NULL, 'n' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	unsigned long mib = 16, loads = 500000;
	int json = 0, c;
	char *end;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			mib = strtoul(optarg, &end, 10);
			if (*end != '\0' || mib < 1 || mib > 4096) {
				fprintf(stderr, "mem-probe: --mib must be 1..4096\n");
				return 2;
			}
			break;
		case 'n':
			loads = strtoul(optarg, &end, 10);
			if (*end != '\0' || loads < 1000 || loads > 1000000000) {
				fprintf(stderr, "mem-probe: --loads must be 1000..1000000000\n");
				return 2;
			}
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	/* One cycle through every 64-byte line (Sattolo's shuffle): no short loops. */
	const size_t lines = (size_t)mib << 20 >> 6;
	uint64_t *buf = aligned_alloc(64, lines * 64);
	size_t *order = malloc(lines * sizeof(*order));
	uint64_t seed = 42;

	if (buf == NULL || order == NULL) {
		fprintf(stderr, "mem-probe: cannot allocate %lu MiB\n", mib);
		return 1;
	}
	for (size_t i = 0; i < lines; i++)
		order[i] = i;
	for (size_t i = lines - 1; i > 0; i--) {
		size_t j = (size_t)(next_rand(&seed) % i), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < lines; i++)
		buf[order[i] * 8] = order[(i + 1) % lines] * 8;
	free(order);

	/* A lap first: page faults and TLB fills out of the timing. */
	uint64_t p = 0;
	for (size_t i = 0; i < lines; i++)
		p = buf[p];
	double t0 = now_ns();
	for (unsigned long i = 0; i < loads; i++)
		p = buf[p];
	double chase = (now_ns() - t0) / (double)loads;

	uint64_t x = p | 1;
	const unsigned long steps = loads * 20;
	t0 = now_ns();
	for (unsigned long i = 0; i < steps; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		__asm__ volatile("" : "+r"(x)); /* keep the chain */
	}
	double compute = (now_ns() - t0) / (double)steps;

	/* Called through syscall(): no library wrapper may answer it from a cache. */
	const unsigned long calls = loads / 5;
	long ppid = 0;
	t0 = now_ns();
	for (unsigned long i = 0; i < calls; i++)
		ppid += syscall(SYS_getppid);
	double sys = (now_ns() - t0) / (double)calls;

	if (json)
		printf("{\"mib\": %lu, \"loads\": %lu, \"chase_ns\": %.2f, \"compute_ns\": %.3f, "
		       "\"syscall_ns\": %.1f, \"check\": %u}\n",
		       mib, loads, chase, compute, sys, (unsigned int)((x ^ (uint64_t)ppid) & 1));
	else
		printf("chase %.1f ns/load over %lu MiB, compute %.3f ns/step, syscall %.0f ns\n",
		       chase, mib, compute, sys);
	free(buf);
	return 0;
}
