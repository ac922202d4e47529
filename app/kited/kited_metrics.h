/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITED_METRICS_H
#define KITED_METRICS_H

/*
 * The node's statistics as Prometheus text (exposition format 0.0.4), for
 * the admin endpoint's GET /metrics: STAT's lines renamed by rule
 * (memcached_exporter's names where memcached has the counter), and the
 * service-time histograms in seconds (docs/operations.rst).
 */

#include <stddef.h>
#include <stdint.h>

#include "kited_stats.h"

/* The text, malloc'd (*len bytes, NUL-terminated); NULL when out of memory. */
char *kited_metrics_text(const struct kited_stats_src *src, uint32_t now, size_t *len);

#endif /* KITED_METRICS_H */
