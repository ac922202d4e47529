/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "kite_steer.h"

enum opt_type { T_STR, T_U32, T_SIZE, T_IPV4, T_BOOL };

struct opt {
	const char *key;
	enum opt_type type;
	size_t off;
	const char *def;
	uint64_t min;
	uint64_t max;
	const char *help;
};

static const struct opt opts[] = {
#define KITED_OPT(key, type, field, def, min, max, help)                                           \
	{ key, T_##type, offsetof(struct kited_config, field), def, (uint64_t)(min), (uint64_t)(max), \
	  help },
	KITED_OPTIONS(KITED_OPT)
#undef KITED_OPT
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static const struct opt *
find(const char *key)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (strcmp(opts[i].key, key) == 0)
			return &opts[i];
	return NULL;
}

/* Parse a byte count with an optional K/M/G/T suffix (powers of 1024). */
static int
parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case 'K':
		shift = 10;
		end++;
		break;
	case 'M':
		shift = 20;
		end++;
		break;
	case 'G':
		shift = 30;
		end++;
		break;
	case 'T':
		shift = 40;
		end++;
		break;
	default:
		break;
	}
	/* Accept "M", "MB" and "MiB" alike. */
	if (shift && toupper((unsigned char)*end) == 'I')
		end++;
	if (toupper((unsigned char)*end) == 'B')
		end++;
	if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

int
kited_config_set(struct kited_config *c, const char *key, const char *value, char *err,
		 size_t errlen)
{
	const struct opt *o = find(key);
	void *field;
	uint64_t v = 0;
	char *end;

	if (o == NULL) {
		snprintf(err, errlen, "unknown option '%s' (see --describe-config)", key);
		return -EINVAL;
	}
	field = (char *)c + o->off;
	switch (o->type) {
	case T_STR:
		if (strlen(value) >= KITED_STR_MAX) {
			snprintf(err, errlen, "%s: value longer than %d bytes", key,
				 KITED_STR_MAX - 1);
			return -EINVAL;
		}
		strcpy(field, value);
		return 0;
	case T_IPV4: {
		struct in_addr a;
		if (inet_pton(AF_INET, value, &a) != 1) {
			snprintf(err, errlen, "%s: '%s' is not a dotted IPv4 address", key, value);
			return -EINVAL;
		}
		*(uint32_t *)field = ntohl(a.s_addr);
		return 0;
	}
	case T_BOOL:
		if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0 ||
		    strcmp(value, "yes") == 0 || strcmp(value, "on") == 0) {
			*(bool *)field = true;
		} else if (strcmp(value, "0") == 0 || strcmp(value, "false") == 0 ||
			   strcmp(value, "no") == 0 || strcmp(value, "off") == 0) {
			*(bool *)field = false;
		} else {
			snprintf(err, errlen, "%s: '%s' is not a boolean", key, value);
			return -EINVAL;
		}
		return 0;
	case T_U32:
		if (!isdigit((unsigned char)*value)) {
			snprintf(err, errlen, "%s: '%s' is not a number", key, value);
			return -EINVAL;
		}
		errno = 0;
		v = strtoull(value, &end, 10);
		if (errno != 0 || *end != '\0') {
			snprintf(err, errlen, "%s: '%s' is not a number", key, value);
			return -EINVAL;
		}
		break;
	case T_SIZE:
		if (parse_size(value, &v) != 0) {
			snprintf(err, errlen, "%s: '%s' is not a size (bytes, or with K/M/G/T)",
				 key, value);
			return -EINVAL;
		}
		break;
	}
	if (v < o->min || v > o->max) {
		snprintf(err, errlen, "%s: %" PRIu64 " is outside %" PRIu64 "..%" PRIu64, key, v,
			 o->min, o->max);
		return -EINVAL;
	}
	if (o->type == T_U32)
		*(uint32_t *)field = (uint32_t)v;
	else
		*(uint64_t *)field = v;
	return 0;
}

void
kited_config_defaults(struct kited_config *c)
{
	char err[128];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < N_OPTS; i++)
		/* The defaults are in range by construction; test_config checks it. */
		(void)kited_config_set(c, opts[i].key, opts[i].def, err, sizeof(err));
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
kited_config_load_profile(struct kited_config *c, const char *name, char *err, size_t errlen)
{
	const char *env = getenv("KITE_PROFILE_DIR");
	const char *dirs[] = { env, KITE_PROFILE_SRC_DIR, KITE_PROFILE_INSTALL_DIR };
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
	snprintf(err, errlen, "profile '%s' not found in $KITE_PROFILE_DIR, %s or %s", name,
		 KITE_PROFILE_SRC_DIR, KITE_PROFILE_INSTALL_DIR);
	return -ENOENT;
}

int
kited_config_validate(const struct kited_config *c, char *err, size_t errlen)
{
	uint64_t parts = (uint64_t)c->workers * c->partitions;

	/* The topology reply and the steering tables hold at most 1024 partitions. */
	if (parts > 1024) {
		snprintf(err, errlen, "workers x partitions = %" PRIu64 " exceeds 1024", parts);
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
	if (kite_steer_mode_parse(c->steer) < 0) {
		snprintf(err, errlen, "steer: '%s' is not auto, flow, rss or handoff", c->steer);
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
	return 0;
}

static const char *
type_name(enum opt_type t)
{
	switch (t) {
	case T_STR:
		return "string";
	case T_U32:
		return "integer";
	case T_SIZE:
		return "bytes";
	case T_IPV4:
		return "IPv4";
	case T_BOOL:
		return "boolean";
	}
	return "?";
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
		"      --profile NAME     driver profile drivers-config/NAME.conf (af_packet, memif,\n"
		"                         tap, null, mlx5, ice, i40e, ixgbe, virtio)\n"
		"      --print-config     print the effective configuration and exit\n",
		prog);
	for (size_t i = 0; i < N_OPTS; i++)
		fprintf(f, "      --%-18s %s (default %s)\n", opts[i].key, opts[i].help,
			opts[i].def[0] ? opts[i].def : "none");
	fprintf(f, "\nOptions are applied defaults -> profile -> file -> command line.\n"
		   "Example: %s --vdev=net_af_packet0,iface=veth0 --no-huge -- "
		   "--port net_af_packet0 --ip 198.18.0.2\n",
		prog);
}

void
kited_config_describe(FILE *f)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		fprintf(f, "%s\n  type: %s\n  default: %s\n", opts[i].key, type_name(opts[i].type),
			opts[i].def[0] ? opts[i].def : "(none)");
		if (opts[i].type == T_U32 || opts[i].type == T_SIZE)
			fprintf(f, "  range: %" PRIu64 "..%" PRIu64 "\n", opts[i].min, opts[i].max);
		fprintf(f, "  %s\n\n", opts[i].help);
	}
}

void
kited_config_dump(FILE *f, const struct kited_config *c)
{
	for (size_t i = 0; i < N_OPTS; i++) {
		const void *field = (const char *)c + opts[i].off;
		struct in_addr a;
		char buf[INET_ADDRSTRLEN];

		switch (opts[i].type) {
		case T_STR:
			fprintf(f, "%s = %s\n", opts[i].key, (const char *)field);
			break;
		case T_U32:
			fprintf(f, "%s = %u\n", opts[i].key, *(const uint32_t *)field);
			break;
		case T_SIZE:
			fprintf(f, "%s = %" PRIu64 "\n", opts[i].key, *(const uint64_t *)field);
			break;
		case T_IPV4:
			a.s_addr = htonl(*(const uint32_t *)field);
			fprintf(f, "%s = %s\n", opts[i].key,
				inet_ntop(AF_INET, &a, buf, sizeof(buf)));
			break;
		case T_BOOL:
			fprintf(f, "%s = %s\n", opts[i].key,
				*(const bool *)field ? "true" : "false");
			break;
		}
	}
}

enum kited_parse
kited_config_parse_args(struct kited_config *c, int argc, char **argv, FILE *out, char *err,
			size_t errlen)
{
	const char *prog = argc > 0 ? argv[0] : "kited";
	bool print = false;

	kited_config_defaults(c);
	/* A driver profile first, then the file, whatever their places; flags override both. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *name = NULL;

		if (strcmp(a, "--profile") == 0 && i + 1 < argc)
			name = argv[++i];
		else if (strncmp(a, "--profile=", 10) == 0)
			name = a + 10;
		if (name != NULL && kited_config_load_profile(c, name, err, errlen) != 0)
			return KITED_PARSE_ERROR;
	}
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
