/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_flow.h>

#include "kite_steer.h"

static const char *const mode_names[] = {
	[KITE_STEER_AUTO] = "auto",
	[KITE_STEER_FLOW] = "flow",
	[KITE_STEER_RSS] = "rss",
	[KITE_STEER_HANDOFF] = "handoff",
};

int
kite_steer_mode_parse(const char *s)
{
	if (s == NULL)
		return -EINVAL;
	for (unsigned int i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		if (strcmp(s, mode_names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

const char *
kite_steer_mode_name(enum kite_steer_mode m)
{
	if ((unsigned int)m >= sizeof(mode_names) / sizeof(mode_names[0]))
		return "invalid";
	return mode_names[m];
}

int
kite_steer_choose(const struct kite_steer_caps *caps, uint16_t workers,
		  enum kite_steer_mode requested)
{
	bool queues = caps != NULL && caps->max_rx_queues >= workers;
	bool flow = queues && caps->flow_udp_dst;
	bool rss = queues && caps->rss_udp;

	if (workers == 0)
		return -EINVAL;
	switch (requested) {
	case KITE_STEER_AUTO:
		/* One worker needs no steering; otherwise the best the port offers. */
		if (workers == 1)
			return KITE_STEER_HANDOFF;
		if (flow)
			return KITE_STEER_FLOW;
		if (rss)
			return KITE_STEER_RSS;
		return KITE_STEER_HANDOFF;
	case KITE_STEER_FLOW:
		return flow ? KITE_STEER_FLOW : -ENOTSUP;
	case KITE_STEER_RSS:
		return rss ? KITE_STEER_RSS : -ENOTSUP;
	case KITE_STEER_HANDOFF:
		return KITE_STEER_HANDOFF;
	}
	return -EINVAL;
}

int
kite_steer_plan(const struct kite_topo_map *m, uint32_t ip, struct kite_steer_rule *rules,
		unsigned int max)
{
	if (m == NULL || m->workers == 0 || (rules == NULL && max > 0))
		return -EINVAL;
	if (m->partitions > max)
		return -ENOSPC;
	for (uint32_t p = 0; p < m->partitions; p++) {
		rules[p].ip = ip;
		rules[p].udp_port = kite_topo_port(m, p);
		rules[p].queue = kite_topo_owner(m, p);
	}
	return (int)m->partitions;
}

void
kite_steer_flow_build(const struct kite_steer_rule *r, struct kite_steer_flow *f)
{
	memset(f, 0, sizeof(*f));
	f->attr.ingress = 1;
	f->ip_spec.hdr.dst_addr = rte_cpu_to_be_32(r->ip);
	f->ip_mask.hdr.dst_addr = UINT32_MAX;
	f->udp_spec.hdr.dst_port = rte_cpu_to_be_16(r->udp_port);
	f->udp_mask.hdr.dst_port = UINT16_MAX;
	f->queue.index = r->queue;
	f->pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;
	f->pattern[1].type = RTE_FLOW_ITEM_TYPE_IPV4;
	f->pattern[1].spec = &f->ip_spec;
	f->pattern[1].mask = &f->ip_mask;
	f->pattern[2].type = RTE_FLOW_ITEM_TYPE_UDP;
	f->pattern[2].spec = &f->udp_spec;
	f->pattern[2].mask = &f->udp_mask;
	f->pattern[3].type = RTE_FLOW_ITEM_TYPE_END;
	f->actions[0].type = RTE_FLOW_ACTION_TYPE_QUEUE;
	f->actions[0].conf = &f->queue;
	f->actions[1].type = RTE_FLOW_ACTION_TYPE_END;
}

bool
kite_steer_flow_supported(uint16_t port, const struct kite_steer_rule *rule)
{
	struct kite_steer_flow f;
	struct rte_flow_error err;

	kite_steer_flow_build(rule, &f);
	return rte_flow_validate(port, &f.attr, f.pattern, f.actions, &err) == 0;
}

void
kite_steer_flow_remove(uint16_t port, struct rte_flow **flows, unsigned int n)
{
	struct rte_flow_error err;

	for (unsigned int i = 0; i < n; i++) {
		if (flows[i] != NULL)
			rte_flow_destroy(port, flows[i], &err);
		flows[i] = NULL;
	}
}

int
kite_steer_flow_install(uint16_t port, const struct kite_steer_rule *rules, unsigned int n,
			struct rte_flow **flows, const char **why)
{
	struct kite_steer_flow f;
	struct rte_flow_error err;

	for (unsigned int i = 0; i < n; i++) {
		int rc;

		memset(&err, 0, sizeof(err));
		kite_steer_flow_build(&rules[i], &f);
		rc = rte_flow_validate(port, &f.attr, f.pattern, f.actions, &err);
		flows[i] = rc == 0 ? rte_flow_create(port, &f.attr, f.pattern, f.actions, &err)
				   : NULL;
		if (flows[i] == NULL) {
			kite_steer_flow_remove(port, flows, i);
			if (why != NULL)
				*why = err.message != NULL ? err.message : "no reason given";
			return rc != 0 ? rc : -(rte_errno ? rte_errno : EIO);
		}
	}
	return 0;
}
