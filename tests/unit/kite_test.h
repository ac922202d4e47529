/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_TEST_H
#define KITE_TEST_H

/* Shared set-up for unit tests that need DPDK's EAL. */

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>

static char kite_test_runtime_dir[128];

/* EAL leaves its runtime folder behind; a test binary removes its own. */
static inline void
kite_test_eal_cleanup(void)
{
	char cmd[192];

	rte_eal_cleanup();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", kite_test_runtime_dir);
	if (kite_test_runtime_dir[0] != '\0' && system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", kite_test_runtime_dir);
}

/* Initialise EAL once, without hugepages or PCI, under its own file prefix. */
static inline int
kite_test_eal_init(const char *name)
{
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "--file-prefix=kite_%s_%d", name, (int)getpid());
	snprintf(kite_test_runtime_dir, sizeof(kite_test_runtime_dir), "/var/run/dpdk/kite_%s_%d",
		 name, (int)getpid());
	char *argv[] = { (char *)"kite_test", (char *)"--no-huge", (char *)"--no-pci",
			 (char *)"-m", (char *)"512", (char *)"--log-level=lib.eal:error",
			 (char *)"--no-telemetry", (char *)"-l", (char *)"0", prefix, NULL };
	int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1;
	if (rte_eal_init(argc, argv) < 0) {
		fprintf(stderr, "rte_eal_init: %s\n", rte_strerror(rte_errno));
		return -1;
	}
	atexit(kite_test_eal_cleanup);
	return 0;
}

#endif
