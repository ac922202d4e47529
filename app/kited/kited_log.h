/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITED_LOG_H
#define KITED_LOG_H

/* kited's own log type (kite.kited), for every file of the program. */

#include <rte_log.h>

extern int kited_logtype;
#define KLOG(level, fmt, ...)                                                                      \
	rte_log(RTE_LOG_##level, kited_logtype, "kited: " fmt "\n", ##__VA_ARGS__)

#endif /* KITED_LOG_H */
