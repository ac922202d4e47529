/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <string.h>

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
