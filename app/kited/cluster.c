/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The cluster's control side: membership (a static members file, or etcd
 * through its v3 JSON gateway with libcurl and jansson), the map built
 * from it (lib/cluster), and the views published to the workers. All the
 * I/O runs on a control pthread; the workers only read views.
 *
 * etcd keys, under /kite/<cluster-name>/:
 *   config          {"vbuckets","copies","generation"}, created once
 *   members/<id>    this node's record (lib/cluster's JSON), under a lease
 *   epoch           the revision of the last membership change, 20 digits
 *
 * The epoch of a map is generation << 32 | revision of the last change to
 * the member list. A put leaves its revision in the key; a delete (a lease
 * that expired) does not, so every node that sees a membership event at
 * revision R raises the epoch key to R in a transaction (if lower). The
 * generation comes from the config record, made when the cluster is
 * created in an etcd: max(unix time, the highest generation this node has
 * seen + 1), so an etcd replaced by an empty one still gives higher epochs.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include "kite_cluster_record.h"
#include "kite_conf.h"
#include "kite_port.h"
#include "kited.h"
#include "kited_cluster.h"

#define MAX_ENDPOINTS 8
#define ETCD_TIMEOUT_MS 1000
#define MAX_PENDING 64

struct etcd {
	char ep[MAX_ENDPOINTS][256];
	unsigned int n_ep, cur;
	CURL *unary;
	CURLM *multi;
	CURL *watch;
	char *wbuf; /* watch stream bytes not yet parsed */
	size_t wlen, wcap;
	char *rbuf; /* unary response */
	size_t rlen, rcap;
	int64_t lease;
	char prefix[KITED_STR_MAX + 16]; /* /kite/<name>/ */
	char mkey[KITED_STR_MAX + 96]; /* /kite/<name>/members/<id> */
	uint32_t generation;
	uint64_t epoch_rev;   /* the epoch key's value */
	uint64_t rev;         /* revision of the last range */
	uint64_t event_rev;   /* newest membership event the watch reported */
	bool dirty;           /* a watch event arrived: range again */
	bool watch_dead;      /* the watch stream ended: start it after the next range */
	uint64_t next_keepalive, next_range; /* TSC */
	uint64_t sent_tsc;
};

struct kited_cluster {
	struct node *n;
	int mode;
	struct kite_cluster_member self;
	struct kite_cluster_config config;
	uint64_t static_epoch;
	uint64_t join_since, join_ready; /* TSC: registered joining; found whole */
	/* Views waiting for every worker to pass a quiescent state. */
	unsigned int npend;
	struct kited_cview *pend[MAX_PENDING];
	uint64_t token[MAX_PENDING];
	pthread_t thread;
	bool running;
	volatile bool quit, leave_req, left, reload_req;
	bool rejoined; /* registered anew after the lease lapsed: every vbucket starts over */
	volatile uint64_t fence_tsc;
	uint64_t leave_deadline;
	struct kited_cluster_stats st;
	struct etcd e;
	uint64_t hz;
	/*
	 * The map for the admin endpoint (another thread reads it, under
	 * json_lock): as JSON for /cluster, and who owns each vbucket and
	 * where its admin endpoint is, for the JSON API's redirects.
	 */
	pthread_mutex_t json_lock;
	char *json;
	uint8_t *admin_owner; /* vbucket -> member index (KITE_CLUSTER_NONE: nobody) */
	uint32_t admin_vbuckets;
	int admin_self;
	struct {
		uint32_t ip;
		uint16_t port;
	} admin_at[KITE_CLUSTER_MAX_MEMBERS];
};

static void join_begin(struct kited_cluster *c);

/* ---- views ---------------------------------------------------------------- */

static void
view_free(struct kited_cview *v)
{
	if (v == NULL)
		return;
	kite_cluster_map_free(&v->map);
	free(v->role);
	free(v->since);
	free(v->msg);
	free(v);
}

/* A view of map m (taken over) for this node; NULL on no memory. */
static struct kited_cview *
view_make(struct kited_cluster *c, struct kite_cluster_map *m)
{
	struct kited_cview *v = calloc(1, sizeof(*v));
	const struct kited_cview *prev = atomic_load(&c->n->cpub.cur);
	uint32_t pmask = c->n->n_parts - 1;
	/* Warm-up window: leave-grace for a node that is leaving. */
	unsigned int window = c->self.state == KITE_CLUSTER_LEAVING ? c->n->cfg.leave_grace
								   : c->n->cfg.warmup;
	int len;

	if (v == NULL)
		goto nomem;
	v->map = *m;
	memset(m, 0, sizeof(*m));
	v->self = kite_cluster_find(&v->map, c->self.id);
	v->role = calloc(v->map.vbuckets, 1);
	v->since = calloc(v->map.vbuckets, sizeof(*v->since));
	v->msg = malloc(KITE_CLUSTER_MSG_MAX);
	if (v->role == NULL || v->since == NULL || v->msg == NULL)
		goto nomem;
	if (prev != NULL && prev->map.vbuckets != v->map.vbuckets)
		prev = NULL;
	/*
	 * Roles. A replica candidate serves no reads until replication feeds
	 * it (issue 11): it is counted, not marked. A vbucket this node owned
	 * in the previous view (or still held as PREVIOUS) is PREVIOUS for the
	 * warm-up window (leave-grace when leaving): clients read keys through
	 * from it to fill the new owner, and invalidate there. Not after a
	 * lapsed lease: other nodes owned the vbuckets meanwhile.
	 */
	for (uint32_t vb = 0; vb < v->map.vbuckets; vb++) {
		const uint8_t *l = kite_cluster_nodes(&v->map, vb);
		uint8_t was = prev != NULL && prev->role != NULL ? prev->role[vb] : 0;

		if (v->self >= 0 && l[0] == v->self) {
			v->role[vb] = KITE_ENGINE_ROLE_OWNER;
			v->owned++;
			continue;
		}
		for (unsigned int k = 1; v->self >= 0 && k < v->map.copies; k++) {
			v->replicated += l[k] == v->self;
			/* With replication the first replicas hold the owner's stream. */
			if (l[k] == v->self && k <= c->n->cfg.replicas)
				v->role[vb] = KITE_ENGINE_ROLE_REPLICA;
		}
		if (v->role[vb] == KITE_ENGINE_ROLE_REPLICA)
			continue;
		if (!c->rejoined && window > 0 &&
		    (was == KITE_ENGINE_ROLE_OWNER ||
		     (was == KITE_ENGINE_ROLE_PREVIOUS && rte_rdtsc() < prev->ec.prev_until_tsc))) {
			v->role[vb] = KITE_ENGINE_ROLE_PREVIOUS;
			v->previous++;
		}
	}
	v->ec.prev_until_tsc = v->previous > 0 ? rte_rdtsc() + (uint64_t)window * c->hz : 0;
	/*
	 * Stale data after a rejoin: where this node's role in a vbucket
	 * changed (or it registered anew after its lease lapsed), what it
	 * holds for the vbucket is from before, when another node may have
	 * taken writes; mark the partition's history so the engines treat it
	 * as absent. Until replication (issue 11) a replica holds nothing
	 * newer than its mark either.
	 */
	for (uint32_t vb = 0; vb < v->map.vbuckets; vb++) {
		uint8_t was = prev != NULL && prev->since != NULL ? prev->role[vb] : 0;

		/*
		 * Replication: a replica's items carry their owner's CAS, which
		 * says nothing of this node's history, so no mark hides them; what
		 * it held from before is purged when it starts to replicate
		 * (repl.c), and a replica that takes over keeps the stream's data.
		 */
		if (v->role[vb] == KITE_ENGINE_ROLE_REPLICA ||
		    (v->role[vb] == KITE_ENGINE_ROLE_OWNER && was == KITE_ENGINE_ROLE_REPLICA &&
		     !c->rejoined)) {
			v->since[vb] = 0;
			continue;
		}

		/*
		 * Kept: an owner stays owner, or hands over (its data is as of the
		 * switch); a replica that takes over (failover) holds the stream.
		 */
		if (!c->rejoined && was != KITE_ENGINE_ROLE_NONE &&
		    (was == v->role[vb] || v->role[vb] == KITE_ENGINE_ROLE_PREVIOUS ||
		     (was == KITE_ENGINE_ROLE_REPLICA && v->role[vb] == KITE_ENGINE_ROLE_OWNER)))
			v->since[vb] = prev->since[vb];
		else if (v->role[vb] != KITE_ENGINE_ROLE_NONE)
			v->since[vb] = kite_store_cas_mark(c->n->parts[vb & pmask]);
	}
	v->rejoined = c->rejoined;
	c->rejoined = false;
	len = kite_cluster_msg_encode(&v->map, v->msg, KITE_CLUSTER_MSG_MAX);
	if (len < 0)
		goto nomem;
	v->ec.epoch = v->map.epoch;
	v->ec.vbucket_mask = v->map.vbuckets - 1;
	v->ec.role = v->role;
	v->ec.fence_tsc = c->mode == KITED_CLUSTER_ETCD &&
					  strcmp(c->n->cfg.fencing, "strict") == 0
				  ? &c->fence_tsc
				  : NULL;
	v->ec.since = v->since;
	v->ec.replicas = (uint8_t)c->n->cfg.replicas;
	v->ec.map_msg = v->msg;
	v->ec.map_len = (uint32_t)len;
	return v;
nomem:
	if (v != NULL)
		view_free(v);
	else
		kite_cluster_map_free(m);
	return NULL;
}

/* Free the views every worker has moved past (never blocks). */
static void
reclaim(struct kited_cluster *c, bool all)
{
	unsigned int k = 0;

	for (unsigned int i = 0; i < c->npend; i++) {
		if (all || rte_rcu_qsbr_check(c->n->cpub.qs, c->token[i], false) == 1) {
			view_free(c->pend[i]);
			continue;
		}
		c->pend[k] = c->pend[i];
		c->token[k] = c->token[i];
		k++;
	}
	c->npend = k;
}

/*
 * The map of view v as JSON, for /cluster: cluster name, this node, the
 * epoch and layout, and each member with its address, state, weight, zone
 * and the vbuckets it owns. Built here, where maps change; /cluster copies it.
 */
static void
json_snapshot(struct kited_cluster *c, const struct kited_cview *v)
{
	static const char *const modes[] = { "none", "static", "etcd" };
	json_t *root = json_object(), *members = json_array();
	uint32_t *owned = calloc(v->map.n_members ? v->map.n_members : 1, sizeof(*owned));
	char *text = NULL;

	if (root == NULL || members == NULL || owned == NULL)
		goto out;
	for (uint32_t vb = 0; vb < v->map.vbuckets; vb++) {
		const uint8_t o = kite_cluster_nodes(&v->map, vb)[0];

		if (o < v->map.n_members)
			owned[o]++;
	}
	for (unsigned int i = 0; i < v->map.n_members; i++) {
		const struct kite_cluster_member *m = &v->map.members[i];
		struct in_addr a = { .s_addr = htonl(m->ip) };
		char ip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:s, s:I, s:s, s:I, s:b}", "id", m->id,
				      "ip", ip, "port", (json_int_t)m->base_port, "partitions",
				      (json_int_t)m->partitions, "state",
				      kite_cluster_state_name(m->state), "weight",
				      (json_int_t)m->weight, "zone", m->zone, "vbuckets_owned",
				      (json_int_t)owned[i], "self", (int)i == v->self);

		if (o != NULL && m->admin_port != 0) {
			char addr[INET_ADDRSTRLEN + 8];
			struct in_addr aa = { .s_addr = htonl(m->admin_ip) };

			inet_ntop(AF_INET, &aa, addr, sizeof(addr));
			snprintf(addr + strlen(addr), 8, ":%u", (unsigned int)m->admin_port);
			json_object_set_new(o, "admin", json_string(addr));
		}
		json_array_append_new(members, o);
	}
	json_object_set_new(root, "mode", json_string(modes[c->mode]));
	json_object_set_new(root, "cluster", json_string(c->n->cfg.cluster_name));
	json_object_set_new(root, "node_id", json_string(c->self.id));
	json_object_set_new(root, "epoch", json_integer((json_int_t)v->ec.epoch));
	json_object_set_new(root, "vbuckets", json_integer((json_int_t)v->map.vbuckets));
	json_object_set_new(root, "copies", json_integer((json_int_t)v->map.copies));
	json_object_set_new(root, "replicas", json_integer((json_int_t)v->map.replicas));
	json_object_set_new(root, "owned", json_integer((json_int_t)v->owned));
	json_object_set_new(root, "previous", json_integer((json_int_t)v->previous));
	json_object_set_new(root, "replica_candidates", json_integer((json_int_t)v->replicated));
	json_object_set_new(root, "members", members);
	members = NULL;
	text = json_dumps(root, JSON_COMPACT);
out:
	json_decref(members);
	json_decref(root);
	free(owned);
	if (text == NULL)
		return; /* out of memory: /cluster shows the map before */
	uint8_t *own = malloc(v->map.vbuckets ? v->map.vbuckets : 1);
	if (own == NULL) {
		free(text);
		return;
	}
	for (uint32_t vb = 0; vb < v->map.vbuckets; vb++)
		own[vb] = kite_cluster_nodes(&v->map, vb)[0];
	pthread_mutex_lock(&c->json_lock);
	free(c->json);
	c->json = text;
	free(c->admin_owner);
	c->admin_owner = own;
	c->admin_vbuckets = v->map.vbuckets;
	c->admin_self = v->self;
	memset(c->admin_at, 0, sizeof(c->admin_at));
	for (unsigned int i = 0; i < v->map.n_members && i < KITE_CLUSTER_MAX_MEMBERS; i++) {
		c->admin_at[i].ip = v->map.members[i].admin_ip;
		c->admin_at[i].port = v->map.members[i].admin_port;
	}
	pthread_mutex_unlock(&c->json_lock);
}

int
kited_cluster_admin_owner(const struct node *n, const void *key, uint16_t keylen, uint32_t *ip,
			  uint16_t *port)
{
	struct kited_cluster *c = n->cluster;
	int rc = -ENOENT;

	if (c == NULL)
		return -ENOENT;
	pthread_mutex_lock(&c->json_lock);
	if (c->admin_owner != NULL && c->admin_vbuckets > 0) {
		const uint8_t o = c->admin_owner[kite_cluster_vbucket(key, keylen, c->admin_vbuckets)];

		if (o < KITE_CLUSTER_MAX_MEMBERS && (int)o == c->admin_self) {
			rc = -EEXIST;
		} else if (o < KITE_CLUSTER_MAX_MEMBERS && c->admin_at[o].port != 0) {
			*ip = c->admin_at[o].ip;
			*port = c->admin_at[o].port;
			rc = 0;
		}
	}
	pthread_mutex_unlock(&c->json_lock);
	return rc;
}

/* Whether the node refuses writes now: its etcd lease may have lapsed. */
static bool
fenced_now(const struct kited_cluster *c)
{
	return c->mode == KITED_CLUSTER_ETCD && rte_rdtsc() > c->fence_tsc;
}

char *
kited_cluster_json(const struct node *n, bool *fenced)
{
	struct kited_cluster *c = n->cluster;
	char *copy = NULL;

	*fenced = false;
	if (c == NULL)
		return NULL;
	pthread_mutex_lock(&c->json_lock);
	if (c->json != NULL)
		copy = strdup(c->json);
	pthread_mutex_unlock(&c->json_lock);
	*fenced = fenced_now(c);
	return copy;
}

static void
publish(struct kited_cluster *c, struct kited_cview *v)
{
	struct kited_cview *old = atomic_exchange_explicit(&c->n->cpub.cur, v, memory_order_acq_rel);

	json_snapshot(c, v);
	c->st.maps++;
	c->st.epoch = v->ec.epoch;
	c->st.members = v->map.n_members;
	c->st.owned = v->owned;
	c->st.replica_candidates = v->replicated;
	c->st.previous = v->previous;
	if (old == NULL)
		return;
	if (c->npend == MAX_PENDING) {
		/* Maps faster than workers pass quiescent states: wait for the oldest. */
		rte_rcu_qsbr_check(c->n->cpub.qs, c->token[0], true);
		reclaim(c, false);
	}
	c->pend[c->npend] = old;
	c->token[c->npend++] = rte_rcu_qsbr_start(c->n->cpub.qs);
}

/* Build and publish the map of these members; 0, or -errno (logged). */
static int
install(struct kited_cluster *c, const struct kite_cluster_member *mb, unsigned int nmb,
	uint64_t epoch)
{
	struct kite_cluster_map m;
	struct kited_cview *cur = atomic_load(&c->n->cpub.cur), *v;
	int rc = kite_cluster_map_build(&m, mb, nmb, c->config.vbuckets, c->config.copies, epoch);

	if (rc != 0) {
		KLOG(ERR, "cluster: cannot build a map of %u member(s): %s", nmb, strerror(-rc));
		return rc;
	}
	m.replicas = (uint8_t)c->n->cfg.replicas;
	if (!c->rejoined && cur != NULL && cur->map.nodes != NULL && cur->map.epoch == epoch &&
	    cur->map.n_members == m.n_members &&
	    memcmp(cur->map.members, m.members, sizeof(*m.members) * m.n_members) == 0) {
		kite_cluster_map_free(&m);
		return 0; /* nothing changed */
	}
	v = view_make(c, &m);
	if (v == NULL) {
		KLOG(ERR, "cluster: no memory for a map view");
		return -ENOMEM;
	}
	KLOG(INFO,
	     "cluster: map epoch %" PRIu64 " (generation %" PRIu64 ", revision %" PRIu64
	     "): %u member(s); this node owns %u vbucket(s), holds copies of %u",
	     v->ec.epoch, v->ec.epoch >> 32, v->ec.epoch & 0xffffffffu, v->map.n_members,
	     v->owned, v->replicated);
	if (v->self < 0 && c->mode != KITED_CLUSTER_NONE)
		KLOG(WARNING, "cluster: node-id '%s' is not in the map: it serves no key",
		     c->self.id);
	publish(c, v);
	return 0;
}

/* cluster = none: a one-node map at epoch 0, so clients have one code path. */
static int
install_single(struct kited_cluster *c)
{
	struct kite_cluster_member me = c->self;
	struct kite_cluster_map m;
	struct kited_cview *v;
	uint32_t parts = c->n->cfg.workers * c->n->cfg.partitions;

	if (me.id[0] == '\0')
		snprintf(me.id, sizeof(me.id), "kited");
	/* A partition count that is no power of two cannot be vbucket mod P: one port. */
	me.partitions = (parts & (parts - 1)) == 0 && parts <= KITE_CLUSTER_MIN_VBUCKETS
				? (uint16_t)parts
				: 1;
	if (kite_cluster_map_build(&m, &me, 1, KITE_CLUSTER_MIN_VBUCKETS, 1, 0) != 0)
		return -EINVAL;
	v = view_make(c, &m);
	if (v == NULL)
		return -ENOMEM;
	v->ec.role = NULL; /* every key is served here */
	v->ec.since = NULL;
	v->ec.fence_tsc = NULL;
	publish(c, v);
	return 0;
}

/* ---- static members file ------------------------------------------------- */

static int
load_static(struct kited_cluster *c)
{
	static struct kite_cluster_static st;
	char err[256], *text = NULL;
	size_t len = 0;
	FILE *f = fopen(c->n->cfg.members_file, "r");
	int rc;

	if (f == NULL) {
		KLOG(ERR, "cluster: members-file %s: %s", c->n->cfg.members_file, strerror(errno));
		return -errno;
	}
	text = malloc(1 << 20);
	if (text != NULL)
		len = fread(text, 1, 1 << 20, f);
	fclose(f);
	if (text == NULL)
		return -ENOMEM;
	rc = kite_cluster_static_parse(text, len, &st, err, sizeof(err));
	free(text);
	if (rc != 0) {
		KLOG(ERR, "cluster: members-file %s: %s", c->n->cfg.members_file, err);
		return rc;
	}
	if (st.config.vbuckets != c->n->cfg.vbuckets || st.config.copies != c->n->cfg.copies) {
		KLOG(ERR,
		     "cluster: members-file %s has vbuckets %u and copies %u; this node is "
		     "configured with %u and %u: every node must agree",
		     c->n->cfg.members_file, st.config.vbuckets, st.config.copies,
		     c->n->cfg.vbuckets, c->n->cfg.copies);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < st.n_members; i++) {
		const struct kite_cluster_member *mb = &st.members[i];

		if (strcmp(mb->id, c->self.id) != 0)
			continue;
		if (mb->ip != c->self.ip || mb->base_port != c->self.base_port ||
		    mb->partitions != c->self.partitions)
			KLOG(WARNING,
			     "cluster: members-file lists '%s' with another address, port or "
			     "partition count than this node's configuration; clients will "
			     "follow the file",
			     mb->id);
	}
	if (c->running && st.epoch <= c->static_epoch) {
		KLOG(ERR, "cluster: members-file epoch %" PRIu64 " is not above %" PRIu64
			  ": raise it on every edit; the file is ignored",
		     st.epoch, c->static_epoch);
		return -EINVAL;
	}
	c->static_epoch = st.epoch;
	return install(c, st.members, st.n_members, st.epoch);
}

/* ---- etcd ------------------------------------------------------------------ */

static size_t
grow(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t ncap = (*len + n + 1) * 2;
		char *nb = realloc(*buf, ncap);

		if (nb == NULL)
			return 0;
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
	return n;
}

static size_t
on_unary(char *p, size_t size, size_t nmemb, void *arg)
{
	struct etcd *e = arg;

	return grow(&e->rbuf, &e->rlen, &e->rcap, p, size * nmemb);
}

static char *
b64(const void *data, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *out = malloc(n);

	if (out != NULL)
		sodium_bin2base64(out, n, data, len, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

/* Decode a base64 field; NULL if absent or invalid. *len set. */
static char *
unb64(json_t *s, size_t *len)
{
	const char *in = json_string_value(s);
	size_t inlen, cap;
	char *out;

	if (in == NULL)
		return NULL;
	inlen = strlen(in);
	cap = inlen / 4 * 3 + 4;
	out = malloc(cap);
	if (out == NULL)
		return NULL;
	if (sodium_base642bin((unsigned char *)out, cap, in, inlen, NULL, len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(out);
		return NULL;
	}
	out[*len] = '\0';
	return out;
}

static json_t *
jkey(const char *key)
{
	char *s = b64(key, strlen(key));
	json_t *j = json_string(s);

	free(s);
	return j;
}

/* The key just past every key that starts with prefix (etcd's range_end). */
static json_t *
jprefix_end(const char *prefix)
{
	char end[KITED_STR_MAX + 32];
	size_t n = strlen(prefix);

	if (n == 0 || n >= sizeof(end))
		return json_string("");

	memcpy(end, prefix, n + 1);
	end[n - 1]++;
	return jkey(end);
}

static int64_t
jint(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	if (json_is_integer(v))
		return json_integer_value(v);
	return 0;
}

static void
curl_common(struct kited_cluster *c, CURL *h)
{
	char ip[INET_ADDRSTRLEN];
	struct in_addr a = { htonl(c->n->cfg.mgmt_ip) };

	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)ETCD_TIMEOUT_MS);
	if (c->n->cfg.mgmt_ip != 0) {
		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		curl_easy_setopt(h, CURLOPT_INTERFACE, ip);
	}
}

/*
 * POST a JSON body (taken) to an etcd gateway path; the parsed reply, or
 * NULL (logged once per failure; the next endpoint is tried next time).
 */
static json_t *
etcd_post(struct kited_cluster *c, const char *path, json_t *body)
{
	struct etcd *e = &c->e;
	char url[512], *data = json_dumps(body, JSON_COMPACT);
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	long code = 0;
	CURLcode rc;
	json_t *out = NULL;

	json_decref(body);
	if (data == NULL)
		goto done;
	snprintf(url, sizeof(url), "%s%s", e->ep[e->cur], path);
	e->rlen = 0;
	curl_easy_reset(e->unary);
	curl_common(c, e->unary);
	curl_easy_setopt(e->unary, CURLOPT_URL, url);
	curl_easy_setopt(e->unary, CURLOPT_POSTFIELDS, data);
	curl_easy_setopt(e->unary, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(e->unary, CURLOPT_TIMEOUT_MS, (long)ETCD_TIMEOUT_MS);
	curl_easy_setopt(e->unary, CURLOPT_WRITEFUNCTION, on_unary);
	curl_easy_setopt(e->unary, CURLOPT_WRITEDATA, e);
	rc = curl_easy_perform(e->unary);
	curl_easy_getinfo(e->unary, CURLINFO_RESPONSE_CODE, &code);
	if (rc != CURLE_OK || code != 200) {
		c->st.etcd_errors++;
		KLOG(WARNING, "cluster: etcd %s%s: %s", e->ep[e->cur], path,
		     rc != CURLE_OK ? curl_easy_strerror(rc) : (e->rbuf ? e->rbuf : "HTTP error"));
		e->cur = (e->cur + 1) % e->n_ep;
		goto done;
	}
	out = json_loadb(e->rbuf, e->rlen, 0, NULL);
	if (out == NULL)
		c->st.etcd_errors++;
done:
	free(data);
	curl_slist_free_all(hdr);
	return out;
}

static int
etcd_grant(struct kited_cluster *c)
{
	json_t *r = etcd_post(c, "/v3/lease/grant",
			      json_pack("{s:I}", "TTL", (json_int_t)c->n->cfg.lease_ttl));

	if (r == NULL)
		return -EIO;
	c->e.lease = jint(r, "ID");
	json_decref(r);
	return c->e.lease != 0 ? 0 : -EIO;
}

/* Write this node's record under the lease: create-if-absent (create) or plain put. */
static int
etcd_put_self(struct kited_cluster *c, bool create, char *holder, size_t hlen)
{
	char rec[512], lease[32];
	char *v;
	json_t *put, *txn, *r;
	int n = kite_cluster_member_to_json(&c->self, rec, sizeof(rec));

	if (n < 0)
		return n;
	v = b64(rec, (size_t)n);
	snprintf(lease, sizeof(lease), "%" PRId64, c->e.lease);
	put = json_pack("{s:{s:o, s:s, s:s}}", "requestPut", "key", jkey(c->e.mkey), "value", v,
			"lease", lease);
	free(v);
	if (!create) {
		r = etcd_post(c, "/v3/kv/put", json_incref(json_object_get(put, "requestPut")));
		json_decref(put);
		if (r == NULL)
			return -EIO;
		json_decref(r);
		return 0;
	}
	txn = json_pack("{s:[{s:s, s:o, s:s}], s:[o], s:[{s:{s:o}}]}", "compare", "target", "CREATE",
			"key", jkey(c->e.mkey), "createRevision", "0", "success", put, "failure",
			"requestRange", "key", jkey(c->e.mkey));
	r = etcd_post(c, "/v3/kv/txn", txn);
	if (r == NULL)
		return -EIO;
	if (!json_is_true(json_object_get(r, "succeeded"))) {
		/* Someone holds this id: name them. */
		json_t *kv = json_array_get(
			json_object_get(json_object_get(json_array_get(json_object_get(r, "responses"),
								       0),
							"response_range"),
					"kvs"),
			0);
		size_t len = 0;
		char *val = unb64(json_object_get(kv, "value"), &len);

		snprintf(holder, hlen, "%s", val != NULL ? val : "?");
		free(val);
		json_decref(r);
		return -EEXIST;
	}
	json_decref(r);
	c->st.registrations++;
	return 0;
}

/* The config record: create it if absent, then check it against ours. */
static int
etcd_config(struct kited_cluster *c)
{
	char key[KITED_STR_MAX + 32], rec[128], *v;
	struct kite_cluster_config mine = c->config, theirs;
	json_t *txn, *r, *kv;
	size_t len = 0;
	char err[200];
	int rc;

	snprintf(key, sizeof(key), "%sconfig", c->e.prefix);
	/* A new etcd gets a generation above anything this node has seen. */
	mine.generation = (uint32_t)time(NULL);
	if (mine.generation <= c->e.generation)
		mine.generation = c->e.generation + 1;
	rc = kite_cluster_config_to_json(&mine, rec, sizeof(rec));
	if (rc < 0)
		return rc;
	v = b64(rec, (size_t)rc);
	txn = json_pack("{s:[{s:s, s:o, s:s}], s:[{s:{s:o, s:s}}], s:[{s:{s:o}}]}", "compare",
			"target", "CREATE", "key", jkey(key), "createRevision", "0", "success",
			"requestPut", "key", jkey(key), "value", v, "failure", "requestRange", "key",
			jkey(key));
	free(v);
	r = etcd_post(c, "/v3/kv/txn", txn);
	if (r == NULL)
		return -EIO;
	if (json_is_true(json_object_get(r, "succeeded"))) {
		theirs = mine;
		KLOG(INFO, "cluster: created cluster '%s' in etcd: %u vbuckets, %u copies, "
			   "generation %u",
		     c->n->cfg.cluster_name, mine.vbuckets, mine.copies, mine.generation);
	} else {
		kv = json_array_get(
			json_object_get(json_object_get(json_array_get(json_object_get(r, "responses"),
								       0),
							"response_range"),
					"kvs"),
			0);
		v = unb64(json_object_get(kv, "value"), &len);
		rc = v == NULL ? -EINVAL
			       : kite_cluster_config_from_json(v, len, &theirs, err, sizeof(err));
		free(v);
		if (rc != 0) {
			json_decref(r);
			KLOG(ERR, "cluster: the config record %s in etcd is not valid: %s", key,
			     v == NULL ? "not base64" : err);
			return -EINVAL;
		}
	}
	json_decref(r);
	if (theirs.vbuckets != mine.vbuckets || theirs.copies != mine.copies) {
		KLOG(ERR,
		     "cluster: cluster '%s' has %u vbuckets and %u copies; this node is "
		     "configured with %u and %u (both are fixed when the cluster is created)",
		     c->n->cfg.cluster_name, theirs.vbuckets, theirs.copies, mine.vbuckets,
		     mine.copies);
		return -EINVAL;
	}
	c->e.generation = theirs.generation;
	return 0;
}

/* Raise the epoch key to rev (20 digits: string order is number order). */
static void
etcd_raise_epoch(struct kited_cluster *c, uint64_t rev)
{
	char key[KITED_STR_MAX + 32], val[32], *v;
	json_t *r;

	snprintf(key, sizeof(key), "%sepoch", c->e.prefix);
	snprintf(val, sizeof(val), "%020" PRIu64, rev);
	v = b64(val, strlen(val));
	r = etcd_post(c, "/v3/kv/txn",
		      json_pack("{s:[{s:s, s:s, s:o, s:s}], s:[{s:{s:o, s:s}}]}", "compare",
				"target", "VALUE", "result", "LESS", "key", jkey(key), "value", v,
				"success", "requestPut", "key", jkey(key), "value", v));
	/* An absent key compares as not less: create it separately. */
	json_decref(r);
	r = etcd_post(c, "/v3/kv/txn",
		      json_pack("{s:[{s:s, s:o, s:s}], s:[{s:{s:o, s:s}}]}", "compare", "target",
				"CREATE", "key", jkey(key), "createRevision", "0", "success",
				"requestPut", "key", jkey(key), "value", v));
	json_decref(r);
	free(v);
}

/* Read every member, build and publish the map. */
static int
etcd_range(struct kited_cluster *c)
{
	static struct kite_cluster_member mb[KITE_CLUSTER_MAX_MEMBERS];
	char mprefix[KITED_STR_MAX + 32], epochkey[KITED_STR_MAX + 32], err[200];
	json_t *r, *kvs, *kv;
	unsigned int n = 0;
	uint64_t last = 0;
	size_t i;

	snprintf(mprefix, sizeof(mprefix), "%smembers/", c->e.prefix);
	snprintf(epochkey, sizeof(epochkey), "%sepoch", c->e.prefix);
	r = etcd_post(c, "/v3/kv/range",
		      json_pack("{s:o, s:o}", "key", jkey(c->e.prefix), "range_end",
				jprefix_end(c->e.prefix)));
	if (r == NULL)
		return -EIO;
	c->e.rev = (uint64_t)jint(json_object_get(r, "header"), "revision");
	kvs = json_object_get(r, "kvs");
	json_array_foreach(kvs, i, kv)
	{
		size_t klen = 0, vlen = 0;
		char *k = unb64(json_object_get(kv, "key"), &klen);
		char *v = unb64(json_object_get(kv, "value"), &vlen);
		uint64_t mod = (uint64_t)jint(kv, "mod_revision");

		if (k != NULL && v != NULL && strcmp(k, epochkey) == 0) {
			uint64_t e = strtoull(v, NULL, 10);
			if (e > last)
				last = e;
		} else if (k != NULL && v != NULL && strncmp(k, mprefix, strlen(mprefix)) == 0) {
			if (n < KITE_CLUSTER_MAX_MEMBERS &&
			    kite_cluster_member_from_json(v, vlen, &mb[n], err, sizeof(err)) == 0 &&
			    strcmp(mb[n].id, k + strlen(mprefix)) == 0) {
				n++;
				if (mod > last)
					last = mod;
			} else {
				KLOG(WARNING, "cluster: member record %s ignored: %s", k,
				     n >= KITE_CLUSTER_MAX_MEMBERS ? "too many members"
								   : "invalid or id mismatch");
			}
		}
		free(k);
		free(v);
	}
	json_decref(r);
	c->e.epoch_rev = last;
	if (n == 0) {
		KLOG(WARNING, "cluster: no member in etcd (this node's lease may have lapsed)");
		return -ENOENT;
	}
	return install(c, mb, n, (uint64_t)c->e.generation << 32 | (last & 0xffffffffu));
}

/* Parse complete watch messages; any membership event marks the map dirty. */
static void
watch_parse(struct kited_cluster *c)
{
	struct etcd *e = &c->e;
	size_t used = 0;

	for (;;) {
		json_error_t je;
		json_t *o = json_loadb(e->wbuf + used, e->wlen - used, JSON_DISABLE_EOF_CHECK, &je);
		json_t *res, *ev;
		size_t i;

		if (o == NULL)
			break;
		used += (size_t)je.position;
		res = json_object_get(o, "result");
		json_array_foreach(json_object_get(res, "events"), i, ev)
		{
			json_t *kv = json_object_get(ev, "kv");
			uint64_t rev = (uint64_t)jint(kv, "mod_revision");
			size_t klen = 0;
			char *k = unb64(json_object_get(kv, "key"), &klen);

			/* A delete leaves no revision behind: the epoch key will keep it. */
			if (k != NULL && strstr(k, "/members/") != NULL && rev > e->event_rev)
				e->event_rev = rev;
			free(k);
			e->dirty = true;
		}
		json_decref(o);
		while (used < e->wlen && (e->wbuf[used] == '\n' || e->wbuf[used] == '\r' ||
					  e->wbuf[used] == ' '))
			used++;
	}
	memmove(e->wbuf, e->wbuf + used, e->wlen - used);
	e->wlen -= used;
	if (e->wlen > (1u << 20))
		e->wlen = 0; /* not JSON that will ever complete: drop it, the range catches up */
}

static size_t
on_watch(char *p, size_t size, size_t nmemb, void *arg)
{
	struct kited_cluster *c = arg;
	size_t n = size * nmemb;

	if (grow(&c->e.wbuf, &c->e.wlen, &c->e.wcap, p, n) != n)
		return 0;
	watch_parse(c);
	return n;
}

static void
watch_start(struct kited_cluster *c)
{
	struct etcd *e = &c->e;
	char url[512], *data;
	json_t *body;
	static struct curl_slist *hdr;

	if (e->watch != NULL) {
		curl_multi_remove_handle(e->multi, e->watch);
		curl_easy_cleanup(e->watch);
	}
	if (hdr == NULL)
		hdr = curl_slist_append(NULL, "Content-Type: application/json");
	e->wlen = 0;
	e->watch = curl_easy_init();
	if (e->watch == NULL)
		return;
	body = json_pack("{s:{s:o, s:o, s:s}}", "create_request", "key", jkey(e->prefix),
			 "range_end", jprefix_end(e->prefix), "start_revision", "0");
	char rev[32];
	snprintf(rev, sizeof(rev), "%" PRIu64, e->rev + 1);
	json_object_set_new(json_object_get(body, "create_request"), "start_revision",
			    json_string(rev));
	data = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	snprintf(url, sizeof(url), "%s/v3/watch", e->ep[e->cur]);
	curl_common(c, e->watch);
	curl_easy_setopt(e->watch, CURLOPT_URL, url);
	curl_easy_setopt(e->watch, CURLOPT_COPYPOSTFIELDS, data);
	curl_easy_setopt(e->watch, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(e->watch, CURLOPT_WRITEFUNCTION, on_watch);
	curl_easy_setopt(e->watch, CURLOPT_WRITEDATA, c);
	free(data);
	curl_multi_add_handle(e->multi, e->watch);
}

/* One keepalive; on success the fence moves on (true). Lease gone: register again. */
static bool
etcd_keepalive(struct kited_cluster *c)
{
	struct etcd *e = &c->e;
	char id[32];
	uint64_t sent = rte_rdtsc();
	json_t *r;
	int64_t ttl;

	snprintf(id, sizeof(id), "%" PRId64, e->lease);
	r = etcd_post(c, "/v3/lease/keepalive", json_pack("{s:s}", "ID", id));
	if (r == NULL) {
		c->st.keepalive_failures++;
		return false;
	}
	ttl = jint(json_object_get(r, "result"), "TTL");
	json_decref(r);
	if (ttl > 0) {
		/*
		 * Writes may go on until the lease could have lapsed, counted from
		 * when the keepalive was sent, less a quarter of the TTL (at least
		 * 250 ms) for clock drift and the fencing check's granularity.
		 */
		uint64_t ttl_c = c->n->cfg.lease_ttl * c->hz;
		uint64_t margin = RTE_MAX(ttl_c / 4, c->hz / 4);

		c->fence_tsc = sent + ttl_c - margin;
		c->st.keepalives++;
		return true;
	}
	/*
	 * The lease expired: this node left the map. It must serve no value
	 * from before (docs/cluster.rst, stale reads): register anew.
	 */
	c->st.keepalive_failures++;
	KLOG(WARNING, "cluster: lease %" PRId64 " expired; registering again", e->lease);
	/*
	 * First hide what this node holds (its vbuckets were others' while it
	 * was out), before any client that learns of the new registration can
	 * ask: the same map again, every vbucket marked.
	 */
	struct kited_cview *cur = atomic_load(&c->n->cpub.cur);
	if (cur != NULL && cur->map.n_members > 0) {
		c->rejoined = true;
		install(c, cur->map.members, cur->map.n_members, cur->map.epoch);
		c->rejoined = true; /* the view after the registration starts over too */
	}
	char holder[512];
	uint64_t granted = rte_rdtsc();
	join_begin(c);
	if (etcd_grant(c) == 0 && etcd_put_self(c, true, holder, sizeof(holder)) == 0) {
		/* A fresh lease: writes may go on (as after the first registration). */
		c->fence_tsc = granted + (c->n->cfg.lease_ttl * c->hz * 3) / 4;
		e->dirty = true;
		c->rejoined = true;
		return true;
	}
	return false;
}

static void
etcd_turn(struct kited_cluster *c)
{
	struct etcd *e = &c->e;
	uint64_t now = rte_rdtsc();
	int running = 0;

	if (now >= e->next_keepalive) {
		/* Three keepalives per TTL; after a failure, again in 100 ms. */
		e->next_keepalive = etcd_keepalive(c) ? now + c->n->cfg.lease_ttl * c->hz / 3
						      : rte_rdtsc() + c->hz / 10;
	}
	now = rte_rdtsc();
	if ((now > c->fence_tsc) != (c->st.fenced != 0)) {
		/* The workers read fence_tsc themselves: this only tells the log. */
		if (now > c->fence_tsc)
			KLOG(WARNING, "cluster: fenced: no keepalive acknowledged in time (%" PRIu64
				      " ms past the fence); writes refused until the lease is renewed",
			     (now - c->fence_tsc) * 1000 / c->hz);
		else
			KLOG(INFO, "cluster: unfenced: the lease is renewed, writes taken again");
	}
	c->st.fenced = now > c->fence_tsc;
	curl_multi_perform(e->multi, &running);
	if (running == 0 && !e->watch_dead) {
		/* The watch stream ended (etcd restarted, a timeout): range, then watch again. */
		CURLMsg *msg;
		int left;

		while ((msg = curl_multi_info_read(e->multi, &left)) != NULL)
			;
		e->watch_dead = true;
		e->cur = (e->cur + 1) % e->n_ep;
	}
	if (e->event_rev > e->epoch_rev)
		etcd_raise_epoch(c, e->event_rev);
	if (e->dirty || e->watch_dead || now >= e->next_range) {
		if (etcd_range(c) == 0) {
			e->dirty = false;
			if (e->watch_dead) {
				watch_start(c);
				e->watch_dead = false;
			}
			/* A range now and then whatever the watch says. */
			e->next_range = now + 5 * c->hz;
		} else {
			e->next_range = now + c->hz / 2;
			e->dirty = false;
		}
	}
	curl_multi_poll(e->multi, NULL, 0, 50, NULL);
}

static int
etcd_begin(struct kited_cluster *c)
{
	struct etcd *e = &c->e;
	char list[KITED_STR_MAX], *save = NULL, holder[512];
	int rc = -EIO;

	snprintf(list, sizeof(list), "%s", c->n->cfg.etcd);
	for (char *t = strtok_r(list, ",", &save); t != NULL && e->n_ep < MAX_ENDPOINTS;
	     t = strtok_r(NULL, ",", &save)) {
		size_t l = strlen(t);
		while (l > 0 && t[l - 1] == '/')
			t[--l] = '\0';
		snprintf(e->ep[e->n_ep++], sizeof(e->ep[0]), "%s%s",
			 strstr(t, "://") == NULL ? "http://" : "", t);
	}
	snprintf(e->prefix, sizeof(e->prefix), "/kite/%s/", c->n->cfg.cluster_name);
	snprintf(e->mkey, sizeof(e->mkey), "%smembers/%s", e->prefix, c->self.id);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	e->unary = curl_easy_init();
	e->multi = curl_multi_init();
	if (e->unary == NULL || e->multi == NULL)
		return -ENOMEM;
	/* etcd may be starting too: a few tries over two seconds per endpoint. */
	for (unsigned int t = 0; t < 4 * e->n_ep; t++) {
		if ((rc = etcd_config(c)) == 0)
			break;
		if (rc == -EINVAL)
			return rc;
		usleep(500 * 1000);
	}
	if (rc != 0) {
		KLOG(ERR, "cluster: no etcd answered at %s", c->n->cfg.etcd);
		return rc;
	}
	if (etcd_grant(c) != 0) {
		KLOG(ERR, "cluster: etcd refused a lease");
		return -EIO;
	}
	rc = etcd_put_self(c, true, holder, sizeof(holder));
	if (rc == -EEXIST) {
		/*
		 * This node's own registration from before a crash or a quick
		 * restart lasts until its lease runs out: wait that long (twice
		 * the TTL and a second, for etcd's expiry) before giving up. A
		 * live node with this id renews its lease and is still refused.
		 */
		const uint64_t until = rte_rdtsc() + (2 * c->n->cfg.lease_ttl + 1) * c->hz;

		KLOG(WARNING,
		     "cluster: node-id '%s' is registered (%s); waiting up to %u s for that lease "
		     "to run out",
		     c->self.id, holder, 2 * c->n->cfg.lease_ttl + 1);
		while (rc == -EEXIST && rte_rdtsc() < until && !c->n->quit) {
			usleep(250 * 1000);
			/* Our own lease would lapse meanwhile: a fresh one each try (they expire). */
			if (etcd_grant(c) != 0)
				break;
			rc = etcd_put_self(c, true, holder, sizeof(holder));
		}
	}
	if (rc == -EEXIST) {
		KLOG(ERR,
		     "cluster: node-id '%s' is already registered in cluster '%s' (%s); "
		     "another node runs with this id, or this node's old lease has %u s "
		     "to run out",
		     c->self.id, c->n->cfg.cluster_name, holder, c->n->cfg.lease_ttl);
		return rc;
	}
	if (rc != 0)
		return rc;
	c->fence_tsc = rte_rdtsc() + (c->n->cfg.lease_ttl * c->hz * 3) / 4;
	e->next_keepalive = rte_rdtsc() + c->n->cfg.lease_ttl * c->hz / 3;
	KLOG(INFO, "cluster: registered '%s' in cluster '%s' at %s (lease %" PRId64 ", TTL %u s)",
	     c->self.id, c->n->cfg.cluster_name, e->ep[e->cur], e->lease, c->n->cfg.lease_ttl);
	etcd_raise_epoch(c, 0);
	rc = etcd_range(c);
	if (rc != 0)
		return rc;
	watch_start(c);
	return 0;
}

static void
etcd_end(struct kited_cluster *c)
{
	struct etcd *e = &c->e;

	if (e->watch != NULL) {
		curl_multi_remove_handle(e->multi, e->watch);
		curl_easy_cleanup(e->watch);
	}
	if (e->multi != NULL)
		curl_multi_cleanup(e->multi);
	if (e->unary != NULL)
		curl_easy_cleanup(e->unary);
	free(e->wbuf);
	free(e->rbuf);
	curl_global_cleanup();
}

/* ---- joining: filled as a replica before owning ------------------------------- */

/*
 * With replicas and etcd a node registers as joining: the map lists it
 * second where it would own (lib/cluster), so the owners backfill it as a
 * replica; once every replica vbucket it holds is whole it turns active
 * and the vbuckets move to it with their data (a node that restarts or
 * rejoins is filled before it serves). Without replicas there is nothing
 * to fill it from: it is active at once (warm-up reads through instead).
 */
static void
join_begin(struct kited_cluster *c)
{
	if (c->mode != KITED_CLUSTER_ETCD || c->n->cfg.replicas == 0 ||
	    c->self.state == KITE_CLUSTER_LEAVING)
		return;
	c->self.state = KITE_CLUSTER_JOINING;
	c->join_since = rte_rdtsc();
	c->join_ready = 0;
	c->st.joining = 1;
}

/* Joining and filled (the workers took a map that lists it, and no replica vbucket waits)? */
static void
join_turn(struct kited_cluster *c)
{
	const struct kited_cview *v = atomic_load(&c->n->cpub.cur);
	uint32_t want = 0, have = 0;
	uint64_t now = rte_rdtsc();

	if (c->self.state != KITE_CLUSTER_JOINING || c->leave_req || v == NULL || v->self < 0 ||
	    v->map.members[v->self].state != KITE_CLUSTER_JOINING || v->role == NULL ||
	    c->n->repl_prev_role == NULL)
		return;
	for (uint32_t vb = 0; vb < v->map.vbuckets; vb++) {
		want += v->role[vb] == KITE_ENGINE_ROLE_REPLICA;
		have += c->n->repl_prev_role[vb] == KITE_ENGINE_ROLE_REPLICA;
	}
	if (want != have || kited_repl_unsynced(c->n) != 0) {
		c->join_ready = 0;
		return;
	}
	/* Whole for a moment (a backfill that is about to begin is not missed). */
	if (c->join_ready == 0) {
		c->join_ready = now;
		return;
	}
	if (now - c->join_ready < c->hz / 5)
		return;
	char h[8];
	c->self.state = KITE_CLUSTER_ACTIVE;
	if (etcd_put_self(c, false, h, sizeof(h)) != 0) {
		c->self.state = KITE_CLUSTER_JOINING;
		return;
	}
	c->st.joining = 0;
	c->st.join_ms = (now - c->join_since) * 1000 / c->hz;
	c->e.dirty = true;
	KLOG(INFO, "cluster: active: its %u replica vbuckets are whole (joined in %" PRIu64
		   " ms); the vbuckets it owns move to it",
	     want, c->st.join_ms);
}

/* ---- the control thread ----------------------------------------------------- */

static void *
control_main(void *arg)
{
	struct kited_cluster *c = arg;

	while (!c->quit) {
		if (c->mode == KITED_CLUSTER_ETCD && c->self.state == KITE_CLUSTER_JOINING)
			join_turn(c);
		if (c->mode == KITED_CLUSTER_ETCD) {
			if (c->leave_req && !c->left) {
				if (c->leave_deadline == 0) {
					/* Out of the map first, so clients move; then the key goes. */
					c->self.state = KITE_CLUSTER_LEAVING;
					char h[8];
					etcd_put_self(c, false, h, sizeof(h));
					c->leave_deadline =
						rte_rdtsc() + (uint64_t)c->n->cfg.leave_grace * c->hz;
					c->e.dirty = true;
					KLOG(INFO, "cluster: leaving: marked leaving, deregistering "
						   "in %u s (leave-grace)",
					     c->n->cfg.leave_grace);
				} else if (rte_rdtsc() >= c->leave_deadline) {
					char id[32];
					snprintf(id, sizeof(id), "%" PRId64, c->e.lease);
					json_decref(etcd_post(c, "/v3/lease/revoke",
							      json_pack("{s:s}", "ID", id)));
					KLOG(INFO, "cluster: left: lease revoked, key removed");
					c->left = true;
				}
			}
			etcd_turn(c);
		} else {
			if (c->reload_req) {
				c->reload_req = false;
				if (c->mode == KITED_CLUSTER_STATIC)
					load_static(c);
				else
					KLOG(INFO, "SIGHUP: nothing to re-read (cluster = none)");
			}
			if (c->leave_req)
				c->left = true;
			usleep(50 * 1000);
		}
		reclaim(c, false);
	}
	return NULL;
}

int
kited_cluster_start(struct node *n)
{
	struct kited_cluster *c = calloc(1, sizeof(*c));
	size_t sz;
	int rc;

	if (c == NULL)
		return -ENOMEM;
	pthread_mutex_init(&c->json_lock, NULL);
	n->cluster = c;
	c->n = n;
	c->hz = rte_get_tsc_hz();
	c->mode = kite_conf_choice(KITED_CLUSTER_MODES, n->cfg.cluster);
	c->config.vbuckets = n->cfg.vbuckets;
	c->config.copies = n->cfg.copies;
	memcpy(c->self.id, n->cfg.node_id, strnlen(n->cfg.node_id, KITE_CLUSTER_ID_MAX));
	memcpy(c->self.zone, n->cfg.zone, strnlen(n->cfg.zone, KITE_CLUSTER_ZONE_MAX));
	c->self.weight = n->cfg.weight;
	c->self.ip = n->cfg.ip;
	c->self.base_port = (uint16_t)n->cfg.udp_port;
	c->self.partitions = (uint16_t)(n->cfg.workers * n->cfg.partitions);
	c->self.state = KITE_CLUSTER_ACTIVE;
	/*
	 * The admin endpoint goes in the record: admin-advertise, else
	 * admin-listen when it names an address of its own (not 0.0.0.0).
	 */
	if (n->cfg.admin_advertise[0] != '\0')
		kite_cluster_addr_parse(n->cfg.admin_advertise, &c->self.admin_ip,
					&c->self.admin_port);
	else if (n->cfg.admin_listen[0] != '\0' &&
		 kite_cluster_addr_parse(n->cfg.admin_listen, &c->self.admin_ip,
					 &c->self.admin_port) == 0 &&
		 c->self.admin_ip == 0)
		c->self.admin_port = 0;
	join_begin(c);

	sz = rte_rcu_qsbr_get_memsize(n->n_workers);
	n->cpub.qs = rte_zmalloc("kite_rcu", sz, RTE_CACHE_LINE_SIZE);
	if (n->cpub.qs == NULL || rte_rcu_qsbr_init(n->cpub.qs, n->n_workers) != 0)
		return -ENOMEM;
	for (unsigned int i = 0; i < n->n_workers; i++)
		rte_rcu_qsbr_thread_register(n->cpub.qs, i);
	kite_port_unmap_guard(n->cpub.qs);

	switch (c->mode) {
	case KITED_CLUSTER_STATIC:
		rc = load_static(c);
		break;
	case KITED_CLUSTER_ETCD:
		rc = etcd_begin(c);
		break;
	default:
		rc = install_single(c);
		break;
	}
	if (rc != 0)
		return rc;
	c->running = true;
	rc = rte_ctrl_thread_create(&c->thread, "kite-cluster", NULL, control_main, c);
	if (rc != 0) {
		c->running = false;
		KLOG(ERR, "cluster: cannot start the control thread: %s", strerror(rc));
		return -rc;
	}
	return 0;
}

void
kited_cluster_leave(struct node *n)
{
	if (n->cluster != NULL)
		n->cluster->leave_req = true;
}

bool
kited_cluster_left(const struct node *n)
{
	const struct kited_cluster *c = n->cluster;

	return c == NULL || !c->running || c->mode != KITED_CLUSTER_ETCD || c->left;
}

void
kited_cluster_reload(struct node *n)
{
	if (n->cluster != NULL)
		n->cluster->reload_req = true;
}


/*
 * Replication beyond the counters: the mode, the replicas' lag (in
 * records and microseconds), retransmissions and resyncs per peer, the
 * acknowledgment latency's percentiles and histogram, and the replica
 * vbuckets whose backfill has not arrived whole.
 */
static void
repl_stats_more(const struct node *n, kite_engine_emit_fn emit, void *arg)
{
	struct kited_repl_peer peers[64];
	uint64_t hist[KITED_REPL_LAG_BUCKETS], total = 0;
	unsigned int np;
	char name[96], ip[INET_ADDRSTRLEN];

	kite_stats_emit_u64(emit, arg, "kite_repl_sync", n->repl_sync);
	kite_stats_emit_u64(emit, arg, "kite_repl_sync_timeout_ms", n->cfg.sync_timeout_ms);
	kited_repl_lag_hist(n, hist);
	for (unsigned int b = 0; b < KITED_REPL_LAG_BUCKETS; b++)
		total += hist[b];
	for (unsigned int q = 0; q < 3; q++) {
		static const char *const qn[] = { "p50", "p99", "p999" };
		static const uint64_t qk[] = { 500, 990, 999 };
		uint64_t want = (total * qk[q] + 999) / 1000, seen = 0, at = 0;

		for (unsigned int b = 0; total > 0 && b < KITED_REPL_LAG_BUCKETS; b++) {
			seen += hist[b];
			if (seen >= want) {
				at = UINT64_C(1) << b; /* the bucket's upper bound */
				break;
			}
		}
		snprintf(name, sizeof(name), "kite_repl_lag_us_%s", qn[q]);
		kite_stats_emit_u64(emit, arg, name, at);
	}
	for (unsigned int b = 0; b < KITED_REPL_LAG_BUCKETS; b++) {
		if (hist[b] == 0)
			continue;
		snprintf(name, sizeof(name), "kite_repl_lag_us_lt_%" PRIu64, UINT64_C(1) << b);
		kite_stats_emit_u64(emit, arg, name, hist[b]);
	}
	np = kited_repl_peers(n, peers, 64);
	for (unsigned int i = 0; i < np; i++) {
		struct in_addr a = { .s_addr = htonl(peers[i].ip) };
		static const char *const f[] = { "lag_ops", "lag_us",  "retransmits",
						 "resyncs", "acks",    "unacked" };
		const uint64_t val[] = { peers[i].lag_ops, peers[i].lag_us, peers[i].retransmits,
					 peers[i].resyncs, peers[i].acks,   peers[i].unacked };

		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		for (unsigned int k = 0; k < 6; k++) {
			snprintf(name, sizeof(name), "kite_repl_peer_%s_%s", ip, f[k]);
			kite_stats_emit_u64(emit, arg, name, val[k]);
		}
	}
	kite_stats_emit_u64(emit, arg, "kite_repl_unsynced_vbuckets", kited_repl_unsynced(n));
	kite_stats_emit_u64(emit, arg, "kite_repl_backfilling_vbuckets", kited_repl_backfilling(n));
}

void
kited_cluster_emit_stats(const void *node, kite_stats_emit_fn emit, void *arg)
{
	const struct node *n = node;
	const struct kited_cluster *c = n->cluster;
	static const char *const modes[] = { "none", "static", "etcd" };

	if (c == NULL)
		return;
	emit(arg, "kite_cluster_mode", modes[c->mode]);
	kite_stats_emit_u64(emit, arg, "kite_cluster_epoch", c->st.epoch);
	kite_stats_emit_u64(emit, arg, "kite_cluster_members", c->st.members);
	kite_stats_emit_u64(emit, arg, "kite_cluster_vbuckets_owned", c->st.owned);
	kite_stats_emit_u64(emit, arg, "kite_cluster_vbuckets_previous", c->st.previous);
	kite_stats_emit_u64(emit, arg, "kite_cluster_vbuckets_replica_candidate",
			    c->st.replica_candidates);
	kite_stats_emit_u64(emit, arg, "kite_cluster_maps", c->st.maps);
	kite_stats_emit_u64(emit, arg, "kite_cluster_joining", c->st.joining);
	kite_stats_emit_u64(emit, arg, "kite_cluster_join_ms", c->st.join_ms);
	kite_stats_emit_u64(emit, arg, "kite_cluster_registrations", c->st.registrations);
	kite_stats_emit_u64(emit, arg, "kite_cluster_keepalives", c->st.keepalives);
	kite_stats_emit_u64(emit, arg, "kite_cluster_keepalive_failures",
			    c->st.keepalive_failures);
	kite_stats_emit_u64(emit, arg, "kite_cluster_etcd_errors", c->st.etcd_errors);
	kite_stats_emit_u64(emit, arg, "kite_cluster_fenced", fenced_now(c));
	if (n->repl_on) {
		struct kited_repl_stats rs;
		static const char *const names[] = {
			"tx_records", "tx_datagrams", "retransmits", "rx_acks", "rx_nacks",
			"rx_applied", "rx_dups", "rx_gaps", "rx_bad_mac", "rx_malformed",
			"rx_stale_epoch", "rx_not_replica", "rx_stray", "resync_needed",
			"arp_misses", "nombuf", "no_dest", "too_large", "apply_failed", "purged",
			"rx_resets", "given_up", "nack_retries", "lag_max", "lag_us_max",
			"sync_held", "sync_acked", "sync_timeouts", "sync_withheld", "sync_full",
			"backfills", "backfill_items", "rx_marks", "backfill_waits", "resync_asks",
			"handover_late", "handover_dropped", "rx_old_secret", "rx_flushes", "log_lost",
		};
		char name[64];

		_Static_assert(sizeof(names) / sizeof(names[0]) ==
				       sizeof(struct kited_repl_stats) / sizeof(uint64_t),
			       "a name per replication counter");
		kited_repl_stats_sum(n, &rs);
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			snprintf(name, sizeof(name), "kite_repl_%s", names[i]);
			kite_stats_emit_u64(emit, arg, name, ((const uint64_t *)&rs)[i]);
		}
		repl_stats_more(n, emit, arg);
	}
}

const char *
kited_cluster_not_ready(const struct node *n)
{
	const struct kited_cluster *c = n->cluster;

	if (c == NULL || c->mode == KITED_CLUSTER_NONE)
		return NULL;
	if (c->st.epoch == 0)
		return "no cluster map yet";
	if (fenced_now(c))
		return "fenced: its etcd lease may have lapsed (writes refused)";
	return NULL;
}

const struct kited_cluster_stats *
kited_cluster_stats(const struct node *n)
{
	return n->cluster != NULL ? &n->cluster->st : NULL;
}

void
kited_cluster_stop(struct node *n)
{
	struct kited_cluster *c = n->cluster;

	if (c == NULL)
		return;
	if (c->running) {
		c->quit = true;
		pthread_join(c->thread, NULL);
	}
	if (c->mode == KITED_CLUSTER_ETCD)
		etcd_end(c);
	reclaim(c, true);
	view_free(atomic_exchange(&n->cpub.cur, NULL));
	kite_port_unmap_guard(NULL);
	rte_free(n->cpub.qs);
	n->cpub.qs = NULL;
	free(c->json);
	free(c->admin_owner);
	pthread_mutex_destroy(&c->json_lock);
	free(c);
	n->cluster = NULL;
}
