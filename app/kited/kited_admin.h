/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITED_ADMIN_H
#define KITED_ADMIN_H

#include <stddef.h>

struct node;

/*
 * Start the admin endpoint (admin.c) when admin-listen is set: its own
 * thread (libmicrohttpd's), kernel sockets. @return 0, or -EINVAL with
 * the reason in err (the node does not start).
 */
int kited_admin_start(const struct node *n, char *err, size_t errlen);

/* Stop it (before the node is freed); nothing when it never started. */
void kited_admin_stop(void);

#endif /* KITED_ADMIN_H */
