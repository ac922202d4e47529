/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --cluster SEED: the map, fetched with libkite (kernel UDP to the seed
 * and the members), turned into destinations and a route the generators
 * read (bench.h). Called before the load and then once a second from the
 * reporting loop; a newer epoch publishes a new route. Old routes are
 * kept until the run ends (a generator may still read one), a few per
 * membership change.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kite/kite.h>

#include "bench.h"
#include "route.h"

#define MAX_ROUTES 64

static struct kite_client *client;
static struct bench_route *routes[MAX_ROUTES];
static unsigned int nroutes;

/* The destination index of (ip, port), appended if new; -1 when full. */
static int
dest_of(struct workload *w, uint32_t ip, uint16_t port)
{
	for (uint32_t i = 0; i < w->ndest; i++)
		if (w->dest[i].ip == ip && w->dest[i].port == port)
			return (int)i;
	if (w->ndest == BENCH_MAX_DESTS)
		return -1;
	w->dest[w->ndest].ip = ip;
	w->dest[w->ndest].port = port;
	return (int)w->ndest++;
}

int
bench_route_init(struct workload *w, const struct bench_options *o, char *err, size_t errlen)
{
	struct kite_options ko = { 0 };
	int rc;

	ko.seeds = o->cluster;
	ko.timeout_ms = o->timeout_ms;
	rc = kite_open(&client, &ko);
	if (rc != KITE_OK) {
		snprintf(err, errlen, "--cluster %s: %s", o->cluster, kite_strerror(rc));
		return -EIO;
	}
	w->cluster = true;
	w->ndest = 0;
	rc = bench_route_refresh(w, 0.0, stdout);
	if (rc < 0) {
		snprintf(err, errlen, "--cluster %s: no usable map (%s)", o->cluster,
			 rc == -ENOSPC ? "more than 256 partition ports" : "members");
		return rc;
	}
	return 0;
}

int
bench_route_refresh(struct workload *w, double t, FILE *log)
{
	struct bench_route *cur = atomic_load(&w->route), *r;
	struct kite_cluster_member *mb;
	struct kite_map_info mi;
	int rc = 0;

	if (client == NULL)
		return 0;
	if (kite_map_refresh(client) != KITE_OK)
		return 0; /* no answer this time: keep the route */
	kite_map_info(client, &mi);
	if (cur != NULL && mi.epoch == cur->map.epoch)
		return 0;
	if (nroutes == MAX_ROUTES || mi.members == 0)
		return -ENOSPC;
	r = calloc(1, sizeof(*r));
	mb = calloc(mi.members, sizeof(*mb));
	if (r == NULL || mb == NULL) {
		free(r);
		free(mb);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < mi.members; i++) {
		struct kite_member m;

		kite_map_member(client, i, &m);
		snprintf(mb[i].id, sizeof(mb[i].id), "%s", m.id);
		snprintf(mb[i].zone, sizeof(mb[i].zone), "%s", m.zone);
		mb[i].ip = m.ip;
		mb[i].base_port = m.port;
		mb[i].partitions = m.partitions;
		mb[i].weight = m.weight;
		mb[i].state = (uint8_t)kite_cluster_state_parse(m.state ? m.state : "active");
	}
	if (kite_cluster_map_build(&r->map, mb, mi.members, mi.vbuckets, mi.copies, mi.epoch) != 0) {
		free(r);
		free(mb);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < r->map.n_members && rc == 0; i++) {
		const struct kite_cluster_member *m = &r->map.members[i];
		int first = -1;

		/* A member's partition ports get consecutive destinations. */
		for (uint16_t p = 0; p < m->partitions; p++) {
			int d = dest_of(w, m->ip, (uint16_t)(m->base_port + p));
			if (d < 0 || (p > 0 && d != first + p)) {
				rc = -ENOSPC;
				break;
			}
			if (p == 0)
				first = d;
		}
		r->first[i] = (uint16_t)first;
	}
	free(mb);
	if (rc != 0) {
		kite_cluster_map_free(&r->map);
		free(r);
		return rc;
	}
	routes[nroutes++] = r;
	atomic_store_explicit(&w->route, r, memory_order_release);
	if (log != NULL) {
		fprintf(log, "map: epoch %" PRIu64 ", %u member(s)", mi.epoch, mi.members);
		if (t > 0)
			fprintf(log, " at %.1f s", t);
		for (unsigned int i = 0; i < r->map.n_members; i++) {
			struct in_addr a = { htonl(r->map.members[i].ip) };
			fprintf(log, "%s %s %s:%u", i ? "," : ":", r->map.members[i].id, inet_ntoa(a),
				r->map.members[i].base_port);
		}
		fprintf(log, "\n");
		fflush(log);
	}
	return 1;
}

void
bench_route_fini(void)
{
	for (unsigned int i = 0; i < nroutes; i++) {
		kite_cluster_map_free(&routes[i]->map);
		free(routes[i]);
	}
	nroutes = 0;
	kite_close(client);
	client = NULL;
}
