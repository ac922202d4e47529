/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_errno.h>

#include "kited.h"

/*
 * Choose the steering mode now that the port runs, and program it: flow
 * rules when the port takes them, else RSS or handoff (lib/steer).
 */
int
steering_setup(struct node *n, const char *driver, uint16_t max_rx_queues, bool rss)
{
	const enum kite_steer_mode want = (enum kite_steer_mode)kite_steer_mode_parse(n->cfg.steer);
	struct kite_steer_caps caps;
	struct kite_steer_rule rules[KITE_MAX_PARTITIONS];
	const char *why = NULL;
	int mode, nr, rc;

	memset(&caps, 0, sizeof(caps));
	caps.max_rx_queues = max_rx_queues;
	caps.rss_udp = rss;
	nr = kite_steer_plan(&n->map, n->cfg.ip, rules, RTE_DIM(rules));
	if (nr < 0)
		return nr;
	caps.flow_udp_dst = n->n_workers > 1 && kite_steer_flow_supported(n->port, &rules[0]);
	mode = kite_steer_choose(&caps, (uint16_t)n->n_workers, want);
	if (mode < 0) {
		KLOG(ERR, "port %u (%s) cannot steer in mode '%s' (flow rules %s, RSS %s)", n->port,
		     driver, n->cfg.steer, caps.flow_udp_dst ? "accepted" : "refused",
		     rss ? "on" : "off");
		return mode;
	}
	n->steer = (enum kite_steer_mode)mode;
	if (n->steer != KITE_STEER_FLOW)
		return 0;
	rc = kite_steer_flow_install(n->port, rules, (unsigned int)nr, n->flows, &why);
	if (rc == 0) {
		n->n_flows = (unsigned int)nr;
		return 0;
	}
	if (want == KITE_STEER_FLOW) {
		KLOG(ERR, "port %u (%s): installing %d flow rules: %s (%s)", n->port, driver, nr,
		     rte_strerror(-rc), why);
		return rc;
	}
	/*
	 * The rules could not all be installed although the first one
	 * validated: refused at creation (net_tap on a kernel without TC
	 * flower/skbedit), a later rule refused, or no room for them all.
	 * auto degrades to the next best mode.
	 */
	caps.flow_udp_dst = false;
	mode = kite_steer_choose(&caps, (uint16_t)n->n_workers, KITE_STEER_AUTO);
	KLOG(WARNING,
	     "port %u (%s) could not install its %d flow rules although the first validated "
	     "(%s: %s); steering by %s instead",
	     n->port, driver, nr, rte_strerror(-rc), why,
	     kite_steer_mode_name((enum kite_steer_mode)mode));
	n->steer = (enum kite_steer_mode)mode;
	return 0;
}

void
steering_teardown(struct node *n)
{
	kite_steer_flow_remove(n->port, n->flows, n->n_flows);
	n->n_flows = 0;
}
