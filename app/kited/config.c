/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "kite_cluster.h"
#include "kite_conf.h"
#include "kite_guard.h"

static const struct kite_conf_opt opts[] = {
#define KITED_OPT(key, type, field, def, min, max, help)                                           \
	{ key,	   KITE_CONF_##type, offsetof(struct kited_config, field),                            \
	  sizeof(((struct kited_config *)0)->field), def, (double)(min), (double)(max), help },
	KITED_OPTIONS(KITED_OPT)
#undef KITED_OPT
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

int
kited_ttl_jitter(const char *s)
{
	int v = 0, digits = 0;

	for (; *s >= '0' && *s <= '9' && digits < 3; s++, digits++)
		v = v * 10 + (*s - '0');
	if (digits == 0 || (*s == '%' && s[1] != '\0') || (*s != '%' && *s != '\0') || v > 50)
		return -1;
	return v;
}

int
kited_config_set(struct kited_config *c, const char *key, const char *value, char *err,
		 size_t errlen)
{
	const struct kite_conf_opt *o = kite_conf_find(opts, N_OPTS, key);

	if (o == NULL) {
		snprintf(err, errlen, "unknown option '%s' (see --describe-config)", key);
		return -EINVAL;
	}
	return kite_conf_set(o, c, value, "", err, errlen);
}

void
kited_config_defaults(struct kited_config *c)
{
	kite_conf_defaults(opts, N_OPTS, c, sizeof(*c));
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int
kited_config_load(struct kited_config *c, const char *path, char *err, size_t errlen)
{
	char line[1024], msg[256];
	unsigned int lineno = 0;
	FILE *f = fopen(path, "r");
	int rc = 0;

	if (f == NULL) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s, *eq;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, errlen, "%s:%u: line too long", path, lineno);
			rc = -EINVAL;
			break;
		}
		s = trim(line);
		if (*s == '\0' || *s == '#' || *s == ';' || *s == '[')
			continue;
		eq = strchr(s, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "%s:%u: expected 'key = value'", path, lineno);
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		/* A profile named in a file was applied before the file (kited_config_file_profile). */
		if (strcmp(trim(s), "profile") == 0)
			continue;
		if (kited_config_set(c, trim(s), trim(eq + 1), msg, sizeof(msg)) != 0) {
			snprintf(err, errlen, "%s:%u: %s", path, lineno, msg);
			rc = -EINVAL;
			break;
		}
	}
	fclose(f);
	return rc;
}

int
kited_config_file_profile(const char *path, char *name, size_t len, char *err, size_t errlen)
{
	char line[1024];
	FILE *f = fopen(path, "r");

	name[0] = '\0';
	if (f == NULL) {
		int rc = -errno;

		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s = trim(line), *eq = strchr(s, '=');

		if (*s == '#' || *s == ';' || *s == '[' || eq == NULL)
			continue;
		*eq = '\0';
		if (strcmp(trim(s), "profile") == 0)
			snprintf(name, len, "%s", trim(eq + 1));
	}
	fclose(f);
	return 0;
}

/*
 * Whether this kited runs from its build tree: then the source tree's
 * profiles are the current ones, an installed copy may be older.
 */
static bool
from_build_tree(void)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	size_t root = strlen(KITE_BUILD_DIR);

	if (n <= 0)
		return false;
	exe[n] = '\0';
	return strncmp(exe, KITE_BUILD_DIR, root) == 0 && exe[root] == '/';
}

int
kited_config_load_profile(struct kited_config *c, const char *name, char *err, size_t errlen)
{
	const char *env = getenv("KITE_PROFILE_DIR");
	const bool dev = from_build_tree();
	/*
	 * $KITE_PROFILE_DIR first (profiles of one's own), then the copies
	 * that belong to this binary: the source tree's for a kited run from
	 * its build folder, the installed ones otherwise -- never the other's.
	 */
	const char *dirs[] = { env, dev ? KITE_PROFILE_SRC_DIR : KITE_PROFILE_INSTALL_DIR };
	char path[512];

	/* A name, not a path: profiles live in drivers-config/. */
	if (name[0] == '\0' || strchr(name, '/') != NULL || strlen(name) > 64) {
		snprintf(err, errlen, "profile: '%s' is not a profile name (see drivers-config/)",
			 name);
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (dirs[i] == NULL || dirs[i][0] == '\0')
			continue;
		snprintf(path, sizeof(path), "%s/%s.conf", dirs[i], name);
		if (access(path, R_OK) == 0)
			return kited_config_load(c, path, err, errlen);
	}
	snprintf(err, errlen, "profile '%s' not found in %s%s%s, %s", name,
		 env != NULL ? "$KITE_PROFILE_DIR (" : "", env != NULL ? env : "",
		 env != NULL ? "), " : "", dev ? KITE_PROFILE_SRC_DIR : KITE_PROFILE_INSTALL_DIR);
	return -ENOENT;
}

static int
validate_cluster(const struct kited_config *c, uint64_t parts, char *err, size_t errlen)
{
	struct kite_cluster_member me;
	int mode = kite_conf_choice(KITED_CLUSTER_MODES, c->cluster);

	if (mode < 0) {
		snprintf(err, errlen, "cluster: '%s' is not none, static or etcd", c->cluster);
		return -EINVAL;
	}
	if (kite_conf_choice(KITED_FENCING_MODES, c->fencing) < 0) {
		snprintf(err, errlen, "fencing: '%s' is not strict or available", c->fencing);
		return -EINVAL;
	}
	if ((c->vbuckets & (c->vbuckets - 1)) != 0) {
		snprintf(err, errlen, "vbuckets: %u is not a power of two", c->vbuckets);
		return -EINVAL;
	}
	if (c->cluster_name[0] == '\0' || strchr(c->cluster_name, '/') != NULL ||
	    strlen(c->cluster_name) > 63) {
		snprintf(err, errlen, "cluster-name: '%s' must be 1..63 characters without '/'",
			 c->cluster_name);
		return -EINVAL;
	}
	if (strcmp(c->replication, "async") != 0 && strcmp(c->replication, "sync") != 0) {
		snprintf(err, errlen, "replication: '%s': async or sync", c->replication);
		return -EINVAL;
	}
	if (mode == KITED_CLUSTER_NONE) {
		if (c->replicas > 0) {
			snprintf(err, errlen, "replicas: %u needs a cluster (cluster = static or etcd)",
				 c->replicas);
			return -EINVAL;
		}
		return 0;
	}
	if (c->replicas >= c->copies) {
		snprintf(err, errlen, "replicas: %u must be below copies (%u): the map lists "
				      "the owner and copies - 1 candidates",
			 c->replicas, c->copies);
		return -EINVAL;
	}
	if (c->replicas > 0 && c->cluster_secret_file[0] == '\0') {
		snprintf(err, errlen, "cluster-secret-file: required with replicas (node-to-node "
				      "datagrams are authenticated)");
		return -EINVAL;
	}
	if (c->node_id[0] == '\0') {
		snprintf(err, errlen, "node-id: required with cluster = %s", c->cluster);
		return -EINVAL;
	}
	memset(&me, 0, sizeof(me));
	me.weight = c->weight;
	me.partitions = 1;
	if (strlen(c->node_id) <= KITE_CLUSTER_ID_MAX && strlen(c->zone) <= KITE_CLUSTER_ZONE_MAX) {
		memcpy(me.id, c->node_id, strlen(c->node_id));
		memcpy(me.zone, c->zone, strlen(c->zone));
	}
	if (strlen(c->node_id) > KITE_CLUSTER_ID_MAX || strlen(c->zone) > KITE_CLUSTER_ZONE_MAX ||
	    kite_cluster_member_check(&me) != 0) {
		snprintf(err, errlen,
			 "node-id/zone: '%s'/'%s': an id of 1..%d printable characters without "
			 "space or '/', a zone of at most %d",
			 c->node_id, c->zone, KITE_CLUSTER_ID_MAX, KITE_CLUSTER_ZONE_MAX);
		return -EINVAL;
	}
	/* vbucket mod partitions must be the partition: a power of two that divides. */
	if ((parts & (parts - 1)) != 0 || c->vbuckets % parts != 0) {
		snprintf(err, errlen,
			 "workers x partitions = %" PRIu64 " must be a power of two dividing "
			 "vbuckets (%u) in cluster mode",
			 parts, c->vbuckets);
		return -EINVAL;
	}
	if (mode == KITED_CLUSTER_STATIC && c->members_file[0] == '\0') {
		snprintf(err, errlen, "members-file: required with cluster = static");
		return -EINVAL;
	}
	if (mode == KITED_CLUSTER_ETCD && c->etcd[0] == '\0') {
		snprintf(err, errlen, "etcd: required with cluster = etcd");
		return -EINVAL;
	}
	return 0;
}

static int addr_parse(const char *name, const char *s, struct sockaddr_in *sa, char *err,
		      size_t errlen);

int
kited_config_validate(const struct kited_config *c, char *err, size_t errlen)
{
	uint64_t parts = (uint64_t)c->workers * c->partitions;

	if (parts > KITE_MAX_PARTITIONS) {
		snprintf(err, errlen, "workers x partitions = %" PRIu64 " exceeds %u", parts,
			 KITE_MAX_PARTITIONS);
		return -EINVAL;
	}
	if (c->udp_port + parts - 1 > 65535) {
		snprintf(err, errlen, "udp-port %u + %" PRIu64 " partitions exceeds port 65535",
			 c->udp_port, parts);
		return -EINVAL;
	}
	if (c->memory / parts < (64u << 10)) {
		snprintf(err, errlen,
			 "memory %" PRIu64 " gives each of %" PRIu64
			 " partitions less than 64 KiB; raise memory or lower partitions",
			 c->memory, parts);
		return -EINVAL;
	}
	if (c->max_item_size + 512 > c->memory / parts) {
		snprintf(err, errlen,
			 "max-item-size %" PRIu64 " does not fit in a partition of %" PRIu64
			 " bytes",
			 c->max_item_size, c->memory / parts);
		return -EINVAL;
	}
	if (c->handoff_ring & (c->handoff_ring - 1)) {
		snprintf(err, errlen, "handoff-ring %u is not a power of two", c->handoff_ring);
		return -EINVAL;
	}
	if (kite_conf_choice(KITED_STEER_MODES, c->steer) < 0) {
		snprintf(err, errlen, "steer: '%s' is not auto, flow, rss or handoff", c->steer);
		return -EINVAL;
	}
	if (c->admin_listen[0] != '\0') {
		struct sockaddr_in sa;

		if (kited_admin_listen_parse(c->admin_listen, &sa, err, errlen) != 0)
			return -EINVAL;
	}
	if (c->admin_advertise[0] != '\0') {
		struct sockaddr_in sa;

		if (addr_parse("admin-advertise", c->admin_advertise, &sa, err, errlen) != 0)
			return -EINVAL;
		if (sa.sin_addr.s_addr == 0) {
			snprintf(err, errlen, "admin-advertise: 0.0.0.0 is no address to reach");
			return -EINVAL;
		}
	}
	if ((c->admin_tls_cert[0] == '\0') != (c->admin_tls_key[0] == '\0')) {
		snprintf(err, errlen, "admin-tls-cert and admin-tls-key go together");
		return -EINVAL;
	}
	if (kited_ablate_parse(c->ablate) < 0) {
		snprintf(err, errlen,
			 "ablate: '%s' is not none or a comma-separated list (no spaces) from %s",
			 c->ablate, KITED_ABLATE_NAMES);
		return -EINVAL;
	}
	{
		struct kite_guard_cidrs cl;
		char msg[160];

		if (kite_guard_cidrs_parse(&cl, c->allow, msg, sizeof(msg)) != 0) {
			snprintf(err, errlen, "allow: %s", msg);
			return -EINVAL;
		}
		if (kite_guard_cidrs_parse(&cl, c->trusted, msg, sizeof(msg)) != 0) {
			snprintf(err, errlen, "trusted: %s", msg);
			return -EINVAL;
		}
	}
	if (kite_conf_choice(KITE_GUARD_AUTH_MODES, c->auth) < 0) {
		snprintf(err, errlen, "auth: '%s' is not off, optional or required", c->auth);
		return -EINVAL;
	}
	if (kite_conf_choice(KITE_GUARD_AUTH_MODES, c->auth) != KITE_GUARD_AUTH_OFF &&
	    c->tenants_file[0] == '\0') {
		snprintf(err, errlen, "auth = %s needs tenants-file", c->auth);
		return -EINVAL;
	}
	if (kited_ttl_jitter(c->ttl_jitter) < 0) {
		snprintf(err, errlen, "ttl-jitter: '%s' is not a percent from 0 to 50 (e.g. 10%%)",
			 c->ttl_jitter);
		return -EINVAL;
	}
	if (kite_conf_choice(KITED_TEXT_KEYS_MODES, c->text_keys) < 0) {
		snprintf(err, errlen, "text-keys: '%s' is not strict or memcached", c->text_keys);
		return -EINVAL;
	}
	if (kite_conf_choice(KITED_REPLY_MAC_MODES, c->reply_mac) < 0) {
		snprintf(err, errlen, "reply-mac: '%s' is not auto, neighbour or frame", c->reply_mac);
		return -EINVAL;
	}
	if (kited_neighbours_parse(c->neighbours, NULL, NULL, err, errlen) < 0)
		return -EINVAL;
	if (c->gateway != 0 && ((c->gateway & c->netmask) != (c->ip & c->netmask) ||
				c->gateway == c->ip)) {
		snprintf(err, errlen, "gateway: not another address inside ip/netmask");
		return -EINVAL;
	}
	if (kite_conf_choice(KITED_IDLE_MODES, c->idle) < 0) {
		snprintf(err, errlen, "idle: '%s' is not adaptive, shared or busy", c->idle);
		return -EINVAL;
	}
	if (kite_conf_choice(KITE_GUARD_OVER_MODES, c->over_rate) < 0) {
		snprintf(err, errlen, "over-rate: '%s' is not drop or busy", c->over_rate);
		return -EINVAL;
	}
	if (c->guard_sources & (c->guard_sources - 1)) {
		snprintf(err, errlen, "guard-sources %u is not a power of two", c->guard_sources);
		return -EINVAL;
	}
	if (c->port[0] == '\0') {
		snprintf(err, errlen, "port: empty");
		return -EINVAL;
	}
	if ((c->ip & c->netmask) == 0 || (~c->netmask & (~c->netmask + 1)) != 0) {
		snprintf(err, errlen, "ip/netmask: not a usable address and contiguous mask");
		return -EINVAL;
	}
	return validate_cluster(c, parts, err, errlen);
}

int
kited_admin_tokens_parse(const char *text, struct kited_admin_token *out, unsigned int max,
			 unsigned int *n, char *err, size_t errlen)
{
	unsigned int line = 0;
	const char *p = text;

	*n = 0;
	while (*p != '\0') {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char buf[512], tok[KITED_ADMIN_TOKEN_MAX + 2], role[64], extra[8];
		int k;

		line++;
		if (len >= sizeof(buf)) {
			snprintf(err, errlen, "line %u: too long", line);
			return -EINVAL;
		}
		memcpy(buf, p, len);
		buf[len] = '\0';
		p = end ? end + 1 : p + len;
		if (len > 0 && buf[len - 1] == '\r')
			buf[len - 1] = '\0';
		char *s = buf + strspn(buf, " \t");
		if (*s == '\0' || *s == '#')
			continue;
		k = sscanf(s, "%129s %63s %7s", tok, role, extra);
		if (k != 2) {
			snprintf(err, errlen, "line %u: want TOKEN ROLE (admin, read or tenant=NAME)", line);
			return -EINVAL;
		}
		if (strlen(tok) < 16 || strlen(tok) > KITED_ADMIN_TOKEN_MAX) {
			snprintf(err, errlen, "line %u: a token has 16 to %u characters", line,
				 KITED_ADMIN_TOKEN_MAX);
			return -EINVAL;
		}
		if (*n == max) {
			snprintf(err, errlen, "line %u: more than %u tokens", line, max);
			return -EINVAL;
		}
		memset(out[*n].tenant, 0, sizeof(out[*n].tenant));
		if (strcmp(role, "admin") == 0) {
			out[*n].role = KITED_ADMIN_ROLE_ADMIN;
		} else if (strcmp(role, "read") == 0) {
			out[*n].role = KITED_ADMIN_ROLE_READ;
		} else if (strncmp(role, "tenant=", 7) == 0 && role[7] != '\0' &&
			   strlen(role + 7) < KITED_ADMIN_TENANT_MAX) {
			out[*n].role = KITED_ADMIN_ROLE_TENANT;
			memcpy(out[*n].tenant, role + 7, strlen(role + 7));
		} else {
			snprintf(err, errlen,
				 "line %u: role '%s' is not admin, read or tenant=NAME (1 to %u "
				 "characters)",
				 line, role, KITED_ADMIN_TENANT_MAX - 1);
			return -EINVAL;
		}
		memcpy(out[*n].secret, tok, strlen(tok) + 1); /* at most KITED_ADMIN_TOKEN_MAX */
		(*n)++;
	}
	return 0;
}

/* IPV4:PORT for the option called name (port 1..65535). */
static int
addr_parse(const char *name, const char *s, struct sockaddr_in *sa, char *err, size_t errlen)
{
	char host[32];
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long port;

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	if (colon == NULL || (size_t)(colon - s) >= sizeof(host) || colon == s) {
		snprintf(err, errlen, "%s: '%s' is not IPV4:PORT", name, s);
		return -EINVAL;
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1 || colon[1] == '\0' || *end != '\0' ||
	    errno != 0 || port == 0 || port > 65535) {
		snprintf(err, errlen, "%s: '%s' is not IPV4:PORT (port 1-65535)", name, s);
		return -EINVAL;
	}
	sa->sin_port = htons((uint16_t)port);
	return 0;
}

int
kited_admin_listen_parse(const char *s, struct sockaddr_in *sa, char *err, size_t errlen)
{
	return addr_parse("admin-listen", s, sa, err, errlen);
}

int
kited_ablate_parse(const char *list)
{
	return (int)kite_conf_flags(KITED_ABLATE_NAMES, list);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
kited_neighbours_parse(const char *list, void (*fn)(uint32_t ip, const uint8_t mac[6], void *arg),
		       void *arg, char *err, size_t errlen)
{
	const char *p = list;
	int count = 0;

	while (*p != '\0') {
		char item[64], ipstr[32];
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		struct in_addr a;
		uint8_t mac[6];
		char *eq;

		while (len > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0 || len >= sizeof(item)) {
			snprintf(err, errlen, "neighbours: empty or overlong entry near '%.20s'", p);
			return -EINVAL;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		eq = strchr(item, '=');
		if (eq == NULL || (size_t)(eq - item) >= sizeof(ipstr)) {
			snprintf(err, errlen, "neighbours: '%s' is not IP=MAC", item);
			return -EINVAL;
		}
		memcpy(ipstr, item, (size_t)(eq - item));
		ipstr[eq - item] = '\0';
		if (inet_pton(AF_INET, ipstr, &a) != 1 || a.s_addr == 0) {
			snprintf(err, errlen, "neighbours: '%s' is not an IPv4 address", ipstr);
			return -EINVAL;
		}
		const char *m = eq + 1;
		for (int i = 0; i < 6; i++) {
			int hi = hexval(m[0]), lo = hi < 0 ? -1 : hexval(m[1]);

			if (hi < 0 || lo < 0 || (i < 5 && m[2] != ':') || (i == 5 && m[2] != '\0')) {
				snprintf(err, errlen, "neighbours: '%s' is not a MAC (aa:bb:cc:dd:ee:ff)",
					 eq + 1);
				return -EINVAL;
			}
			mac[i] = (uint8_t)(hi << 4 | lo);
			m += 3;
		}
		if ((mac[0] & 1) || (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) == 0) {
			snprintf(err, errlen, "neighbours: %s is not a unicast MAC", eq + 1);
			return -EINVAL;
		}
		if (++count > KITED_NEIGHBOURS_MAX) {
			snprintf(err, errlen, "neighbours: more than %d entries", KITED_NEIGHBOURS_MAX);
			return -EINVAL;
		}
		if (fn != NULL)
			fn(ntohl(a.s_addr), mac, arg);
		p += end != NULL ? (size_t)(end - p) + 1 : strlen(p);
	}
	return count;
}

void
kited_config_usage(FILE *f, const char *prog)
{
	fprintf(f,
		"Usage: %s [EAL options] -- [kite options]\n"
		"\n"
		"Kite cache node: memcached binary protocol over UDP on DPDK.\n"
		"\n"
		"Kite options (every one also a key in the --config file):\n"
		"  -h, --help             this text\n"
		"      --describe-config  every option with its default and range\n"
		"      --config FILE      read options from FILE (key = value; INI sections ok)\n"
		"      --profile NAME     driver profile NAME.conf (af_packet, memif, tap, null, mlx5,\n"
		"                         ice, i40e, ixgbe, virtio), from $KITE_PROFILE_DIR, else\n"
		"                         %s (a config file may name it too:\n"
		"                         profile = NAME)\n"
		"      --print-config     print the effective configuration and exit\n"
		"      --version          print kited's and DPDK's versions and exit\n",
		prog, from_build_tree() ? KITE_PROFILE_SRC_DIR : KITE_PROFILE_INSTALL_DIR);
	for (size_t i = 0; i < N_OPTS; i++)
		fprintf(f, "      --%-18s %s (default %s)\n", opts[i].key, opts[i].help,
			opts[i].def[0] ? opts[i].def : "none");
	fprintf(f, "\nOptions are applied defaults -> profile -> file -> command line.\n"
		   "Example, one worker on af_packet over interface veth1 (up, no IP address;\n"
		   "README.rst sets it up in namespace kite-demo), no hugepages:\n"
		   "  %s -l 0 --no-huge -m 512 --no-pci "
		   "--vdev=net_af_packet0,iface=veth1,framesz=32768,blocksz=32768 -- "
		   "--profile af_packet --ip 198.18.0.6 --netmask 255.255.255.252\n",
		prog);
}

void
kited_config_describe(FILE *f)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		fprintf(f, "%s\n  type: %s\n  default: %s\n", opts[i].key,
			kite_conf_type_name(opts[i].type),
			opts[i].def[0] ? opts[i].def : "(none)");
		if (opts[i].type == KITE_CONF_U32 || opts[i].type == KITE_CONF_SIZE)
			fprintf(f, "  range: %.0f..%.0f\n", opts[i].min, opts[i].max);
		fprintf(f, "  %s\n\n", opts[i].help);
	}
}

void
kited_config_dump(FILE *f, const struct kited_config *c)
{
	char buf[KITED_STR_MAX];

	for (size_t i = 0; i < N_OPTS; i++) {
		kite_conf_format(&opts[i], c, buf, sizeof(buf));
		fprintf(f, "%s = %s\n", opts[i].key, buf);
	}
}

enum kited_parse
kited_config_parse_args(struct kited_config *c, int argc, char **argv, FILE *out, char *err,
			size_t errlen)
{
	const char *prog = argc > 0 ? argv[0] : "kited";
	bool print = false;

	kited_config_defaults(c);
	/*
	 * A driver profile first, then the file, whatever their places; flags
	 * override both. The profile is --profile's, else the one the file
	 * names (profile = NAME).
	 */
	const char *profile = NULL, *file = NULL;
	char file_profile[80];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--profile") == 0 && i + 1 < argc)
			profile = argv[++i];
		else if (strncmp(a, "--profile=", 10) == 0)
			profile = a + 10;
		else if (strcmp(a, "--config") == 0 && i + 1 < argc)
			file = argv[++i];
		else if (strncmp(a, "--config=", 9) == 0)
			file = a + 9;
	}
	if (profile == NULL && file != NULL) {
		if (kited_config_file_profile(file, file_profile, sizeof(file_profile), err, errlen) !=
		    0)
			return KITED_PARSE_ERROR;
		if (file_profile[0] != '\0')
			profile = file_profile;
	}
	if (profile != NULL && kited_config_load_profile(c, profile, err, errlen) != 0)
		return KITED_PARSE_ERROR;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--config") == 0) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "--config needs a file name");
				return KITED_PARSE_ERROR;
			}
			if (kited_config_load(c, argv[i + 1], err, errlen) != 0)
				return KITED_PARSE_ERROR;
			i++;
		} else if (strncmp(a, "--config=", 9) == 0) {
			if (kited_config_load(c, a + 9, err, errlen) != 0)
				return KITED_PARSE_ERROR;
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		char key[64];
		const char *val;
		const char *eq;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			kited_config_usage(out, prog);
			return KITED_PARSE_EXIT;
		}
		if (strcmp(a, "--describe-config") == 0) {
			kited_config_describe(out);
			return KITED_PARSE_EXIT;
		}
		if (strcmp(a, "--print-config") == 0) {
			print = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
			return KITED_PARSE_ERROR;
		}
		a += 2;
		eq = strchr(a, '=');
		if (eq != NULL) {
			if ((size_t)(eq - a) >= sizeof(key)) {
				snprintf(err, errlen, "option name too long");
				return KITED_PARSE_ERROR;
			}
			memcpy(key, a, (size_t)(eq - a));
			key[eq - a] = '\0';
			val = eq + 1;
		} else {
			if (strlen(a) >= sizeof(key)) {
				snprintf(err, errlen, "option name too long");
				return KITED_PARSE_ERROR;
			}
			strcpy(key, a);
			if (i + 1 >= argc) {
				snprintf(err, errlen, "--%s needs a value", key);
				return KITED_PARSE_ERROR;
			}
			val = argv[++i];
		}
		if (strcmp(key, "config") == 0 || strcmp(key, "profile") == 0)
			continue;
		if (kited_config_set(c, key, val, err, errlen) != 0)
			return KITED_PARSE_ERROR;
	}
	if (kited_config_validate(c, err, errlen) != 0)
		return KITED_PARSE_ERROR;
	if (print) {
		kited_config_dump(out, c);
		return KITED_PARSE_EXIT;
	}
	return KITED_PARSE_RUN;
}
