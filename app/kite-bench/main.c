/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * kite-bench: load generator for Kite and any memcached-binary UDP server.
 *
 *   kite-bench [EAL options --] [options]
 *
 * main() parses the options and starts the transport (io_dpdk.c,
 * io_sock.c, pcap.c); each sets up its driver and hands it to bench_run()
 * (run.c), which drives the phases every transport shares.
 *
 * Exit status: 0 done, 1 failure (setup, I/O), 2 usage, 3 the run completed
 * but a GET returned a value that failed verification.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

static void
on_signal(int sig)
{
	(void)sig;
	bench_quit = true;
}

/* Split "EAL args -- our args" (EAL part only in dpdk mode). */
static int
find_dashdash(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0)
			return i;
	return -1;
}

int
main(int argc, char **argv)
{
	static struct bench_options o;
	char err[512];
	int dd = find_dashdash(argc, argv);
	int oargc = argc;
	char **oargv = argv;
	int rc;

	/* Our options follow `--`; with no `--` every argument is ours. */
	if (dd >= 0) {
		oargc = argc - dd;
		oargv = argv + dd;
	}
	switch (bench_options_parse(&o, oargc, oargv, stdout, err, sizeof(err))) {
	case BENCH_PARSE_EXIT:
		return 0;
	case BENCH_PARSE_ERROR:
		fprintf(stderr, "kite-bench: %s\n", err);
		return 2;
	case BENCH_PARSE_RUN:
		break;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	if (strcmp(o.mode, "dpdk") == 0) {
		rc = run_dpdk(&o, dd >= 0 ? dd : 1, argv);
	} else if (strcmp(o.mode, "socket") == 0 || strcmp(o.mode, "libkite") == 0) {
		if (dd >= 0)
			fprintf(stderr, "kite-bench: %s mode ignores the EAL options\n", o.mode);
		rc = run_socket(&o);
	} else if (strcmp(o.mode, "pcap") == 0) {
		rc = run_pcap(&o);
	} else {
		fprintf(stderr, "kite-bench: --mode must be dpdk, socket, libkite or pcap\n");
		return 2;
	}
	if (rc == -EINVAL)
		return 2;
	if (rc > 0)
		return rc;
	return rc == 0 ? 0 : 1;
}
