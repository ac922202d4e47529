/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: any bytes as a kited config file. Loading must either
 * fail with a message or give a configuration that either validates or is
 * refused with a message; never a crash or a read past a buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct kited_config c;
	char err[512];
	FILE *f;

	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/kite_fuzz_config_%d", (int)getpid());
	f = fopen(path, "w");
	if (f == NULL)
		abort();
	fwrite(data, 1, size, f);
	fclose(f);
	kited_config_defaults(&c);
	err[0] = '\0';
	if (kited_config_load(&c, path, err, sizeof(err)) != 0) {
		if (err[0] == '\0')
			abort();
	} else if (kited_config_validate(&c, err, sizeof(err)) != 0 && err[0] == '\0') {
		abort();
	}
	if (memchr(c.port, '\0', sizeof(c.port)) == NULL ||
	    memchr(c.steer, '\0', sizeof(c.steer)) == NULL)
		abort();
	unlink(path);
	return 0;
}
