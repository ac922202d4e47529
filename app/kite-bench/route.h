/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_BENCH_ROUTE_H
#define KITE_BENCH_ROUTE_H

#include <stdio.h>

#include "bench.h"

/* --cluster: open libkite on the seed and publish the first route. 0 or -errno. */
int bench_route_init(struct workload *w, const struct bench_options *o, char *err, size_t errlen);
/* Fetch the map; a newer epoch becomes the route (logged, t: seconds into the run). 1 new, 0 same. */
int bench_route_refresh(struct workload *w, double t, FILE *log);
void bench_route_fini(void);

#endif
