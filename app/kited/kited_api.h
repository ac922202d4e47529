/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITED_API_H
#define KITED_API_H

/*
 * The JSON API's way to the data (api.c): one request through the key's
 * owning worker, as a handed-off datagram whose reply comes back here.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct node;
struct worker;
struct rte_mbuf;
struct kite_net_udp;

/*
 * What a request through the API may do: the guard's verdict a datagram
 * of the same client would get (kited_guard_api_policy), obeyed by the
 * worker's engine as any verdict.
 */
struct kited_api_policy {
	uint32_t deny;      /* command classes refused (bits of KITE_CMD_*) */
	uint8_t ns;         /* enum kite_guard_ns */
	uint8_t prefix_len;
	uint8_t prefix[64]; /* KITE_GUARD_PREFIX_MAX */
	uint8_t tag;        /* the tenant's id as its items' tag (memory shares), 0: none */
	bool admin;         /* the tenant may use the admin-only commands (STAT) */
	int16_t tenant;     /* its index in the tenants table (its rate), -1: none */
};

/* A request datagram may be at most this long (a UDP datagram's payload). */
#define KITED_API_MAX_REQUEST 65507

struct kited_api_result {
	uint16_t status; /* the binary status (KITE_STATUS_*) */
	uint64_t cas;
	char flags[256]; /* a META reply's return flags, as text */
	size_t flags_len;
	uint8_t *value;  /* malloc'd (free it), NULL when none */
	uint32_t value_len;
};

/*
 * Run one META request (opcode, its flags as text) for key on the worker
 * that owns it, under policy pol, and wait (1 s at most) for its reply.
 * @return 0 (*out filled), -E2BIG (request too long), -EBUSY (every slot
 * in use), -EAGAIN (the worker's ring is full), -ETIMEDOUT, -ENOMEM, -EIO.
 */
int kited_api_call(const struct node *n, const struct kited_api_policy *pol, uint8_t opcode,
		   const char *flags, const void *key, uint16_t keylen, const void *value,
		   uint32_t vallen, struct kited_api_result *out);

/* On the worker: a reply to the API (sender 0.0.0.0), copied to its slot; m is freed. */
void kited_api_deliver(struct worker *w, struct rte_mbuf *m, const struct kite_net_udp *u);

#endif /* KITED_API_H */
