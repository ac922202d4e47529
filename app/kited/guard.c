/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The guard's place in kited: its configuration from the options, the
 * cookie secret, the tenants file (re-read on SIGHUP and published to the
 * workers by pointer, freed once every worker has passed a quiescent
 * state since), and the engine's view of tenant prefixes. The per-datagram
 * work is lib/guard's, called from worker.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <rte_rcu_qsbr.h>
#include <sodium.h>

#include "kite_conf.h"
#include "kited.h"
#include "kited_api.h"

static const char *cmd_names[KITE_CMD_MAX];
/*
 * The admin endpoint's thread reads the tenants table too (the JSON API's
 * tokens map to tenants). It is no RCU reader: it copies what it needs
 * under this lock, and a reload swaps the pointer under it, so a table it
 * could still be reading is never retired.
 */
static pthread_mutex_t tenants_mu = PTHREAD_MUTEX_INITIALIZER;

static struct kite_guard_tenants *
load_tenants(const struct node *n)
{
	char err[512];
	struct kite_guard_tenants *t;

	t = kite_guard_tenants_load(n->cfg.tenants_file, cmd_names, KITE_CMD_MAX, err, sizeof(err));
	if (t == NULL)
		KLOG(ERR, "tenants-file: %s", err);
	return t;
}

int
kited_guard_setup(struct node *n)
{
	struct kite_guard_conf *c = &n->gconf;
	struct timeval tv;
	char err[160];

	if (sodium_init() < 0) {
		KLOG(ERR, "guard: libsodium does not start");
		return -1;
	}
	for (unsigned int i = 0; i < KITE_CMD_MAX; i++)
		cmd_names[i] = kite_proto_cmd_name(i);
	gettimeofday(&tv, NULL);
	n->epoch_us = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec -
		      (rte_rdtsc() - n->start_tsc) * 1000000 / n->tsc_hz;

	memset(c, 0, sizeof(*c));
	/* Validated with the configuration: these parse. */
	kite_guard_cidrs_parse(&c->allow, n->cfg.allow, err, sizeof(err));
	kite_guard_cidrs_parse(&c->trusted, n->cfg.trusted, err, sizeof(err));
	c->self_ip = n->cfg.ip;
	c->bound = n->cfg.amplification_bound;
	/* A fresh secret per start: cookies of an earlier run are worthless. */
	randombytes_buf(c->cookie_secret, sizeof(c->cookie_secret));
	c->cookie_window_s = n->cfg.cookie_rotate_s;
	c->credit_max = n->cfg.bound_credit;
	c->credit_ms = 1000;
	c->source_rate = n->cfg.source_rate;
	c->source_bytes = n->cfg.source_bytes;
	c->burst_ms = n->cfg.rate_burst_ms;
	c->work = (uint16_t)n->cfg.work_budget;
	c->auth = (enum kite_guard_auth)kite_conf_choice(KITE_GUARD_AUTH_MODES, n->cfg.auth);
	c->over = (enum kite_guard_over)kite_conf_choice(KITE_GUARD_OVER_MODES, n->cfg.over_rate);
	c->stamp_past_ms = n->cfg.stamp_window_ms;
	c->stamp_future_ms = 1000;
	c->workers = n->n_workers;
	c->sources = n->cfg.guard_sources;
	c->all_cmds = (UINT32_C(1) << KITE_CMD_MAX) - 1;
	c->admin_cmds = UINT32_C(1) << KITE_CMD_STAT | UINT32_C(1) << KITE_CMD_FLUSH;
	/* Clients need them to route, whatever a tenant's cmds= says (docs/security.rst). */
	c->public_cmds = UINT32_C(1) << KITE_CMD_TOPOLOGY | UINT32_C(1) << KITE_CMD_CLUSTER_MAP;
	c->never_cmds = n->cfg.flush ? 0 : UINT32_C(1) << KITE_CMD_FLUSH;
	c->mtu = (uint16_t)n->cfg.mtu;
	if (n->cfg.tenants_file[0] != '\0') {
		n->tenants = load_tenants(n);
		if (n->tenants == NULL)
			return -1;
		KLOG(INFO, "tenants: %u from %s (auth = %s)", n->tenants->n, n->cfg.tenants_file,
		     n->cfg.auth);
	}
	if (!c->bound)
		KLOG(WARNING, "amplification-bound = off: any source gets full replies (spoofable)");
	return 0;
}

void
kited_guard_reload(struct node *n)
{
	struct kite_guard_tenants *t, *old;
	unsigned int k;

	if (n->cfg.tenants_file[0] == '\0')
		return;
	for (k = 0; k < RTE_DIM(n->tenants_retired); k++)
		if (n->tenants_retired[k] == NULL)
			break;
	if (k == RTE_DIM(n->tenants_retired)) {
		KLOG(WARNING, "tenants-file: reloads too fast; try again in a moment");
		return;
	}
	t = load_tenants(n);
	if (t == NULL) {
		KLOG(WARNING, "tenants-file: kept the %u tenants loaded before", n->tenants ? n->tenants->n : 0);
		return;
	}
	pthread_mutex_lock(&tenants_mu);
	old = n->tenants;
	__atomic_store_n(&n->tenants, t, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&tenants_mu);
	KLOG(INFO, "tenants: reloaded %u from %s", t->n, n->cfg.tenants_file);
	if (old != NULL) {
		/* Freed once every worker has reported a quiescent state since the swap. */
		n->tenants_retired[k] = old;
		n->tenants_token[k] = rte_rcu_qsbr_start(n->cpub.qs);
	}
}

void
kited_guard_tick(struct node *n)
{
	for (unsigned int k = 0; k < RTE_DIM(n->tenants_retired); k++) {
		if (n->tenants_retired[k] == NULL ||
		    rte_rcu_qsbr_check(n->cpub.qs, n->tenants_token[k], false) != 1)
			continue;
		sodium_memzero(n->tenants_retired[k], sizeof(*n->tenants_retired[k]));
		free(n->tenants_retired[k]);
		n->tenants_retired[k] = NULL;
	}
}

void
kited_guard_free(struct node *n)
{
	for (unsigned int k = 0; k < RTE_DIM(n->tenants_retired); k++) {
		free(n->tenants_retired[k]);
		n->tenants_retired[k] = NULL;
	}
	if (n->tenants != NULL) {
		sodium_memzero(n->tenants, sizeof(*n->tenants));
		free(n->tenants);
		n->tenants = NULL;
	}
	sodium_memzero(n->gconf.cookie_secret, sizeof(n->gconf.cookie_secret));
}

bool
kited_guard_key_owned(const void *arg, const uint8_t *key, uint16_t len)
{
	return kite_guard_key_owned(arg, key, len);
}

int
kited_guard_api_policy(const struct node *n, const char *tenant, struct kited_api_policy *p)
{
	const struct kite_guard_conf *c = &n->gconf;
	int rc = 0;

	memset(p, 0, sizeof(*p));
	p->tenant = -1;
	p->ns = KITE_GUARD_NS_ANY;
	p->deny = c->never_cmds;
	if (tenant == NULL) {
		/* As a datagram without AUTH is judged (kite_guard_check). */
		if (c->auth == KITE_GUARD_AUTH_OFF)
			return 0;
		if (c->auth == KITE_GUARD_AUTH_REQUIRED)
			return -EACCES;
		p->deny |= c->admin_cmds;
		pthread_mutex_lock(&tenants_mu);
		if (n->tenants != NULL && n->tenants->n > 0)
			p->ns = KITE_GUARD_NS_PUBLIC;
		pthread_mutex_unlock(&tenants_mu);
		return 0;
	}
	/* As a datagram with the tenant's AUTH, whatever the auth option says. */
	pthread_mutex_lock(&tenants_mu);
	rc = -ENOENT;
	for (unsigned int i = 0; n->tenants != NULL && i < n->tenants->n; i++) {
		const struct kite_guard_tenant *t = &n->tenants->t[i];

		if (strcmp(t->name, tenant) != 0)
			continue;
		p->tenant = (int16_t)i;
		p->ns = KITE_GUARD_NS_PREFIX;
		p->prefix_len = t->prefix_len;
		memcpy(p->prefix, t->prefix, t->prefix_len);
		p->deny = c->all_cmds & ~((t->cmds | c->public_cmds) & ~c->never_cmds);
		if (!t->admin)
			p->deny |= c->admin_cmds;
		p->tag = t->id <= KITE_GUARD_TAG_MAX ? (uint8_t)t->id : 0;
		p->admin = t->admin;
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&tenants_mu);
	return rc;
}
