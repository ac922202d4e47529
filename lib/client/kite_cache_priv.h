/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_CACHE_PRIV_H
#define KITE_CACHE_PRIV_H

/*
 * What kite_cache.c asks of the cache, so the unit tests can put an
 * in-memory node with the meta semantics (and a fake clock) under the
 * patterns: by default one kite_client per thread.
 */

#include "kite/cache.h"

/* The bits of kite_value.flags the cache keeps for itself (docs/patterns.rst). */
#define KITE_CACHE_F_VALUE    0x40000000u /* a value a loader returned */
#define KITE_CACHE_F_NEGATIVE 0x80000000u /* "does not exist" */
#define KITE_CACHE_F_APP      0x3fffffffu

struct kite_cache_backend {
	/* Run one operation to its end (its rc, outputs filled as kite_exec() does). */
	int (*exec)(void *arg, struct kite_op *op);
	/* The member index of the node that owns the key (-1: unknown). */
	int (*owner)(void *arg, const void *key, size_t keylen);
	void *arg;
};

/* kite_cache_open() on another backend (tests); o->client is not used. */
int kite_cache_open_backend(struct kite_cache **out, const struct kite_cache_options *o,
			    const struct kite_cache_backend *b);

#endif /* KITE_CACHE_PRIV_H */
