/* SPDX-License-Identifier: BSD-3-Clause */
/* kited's option table: defaults, ranges, files, precedence, help. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "kite_conf.h"
#include "kite_steer.h"

static char err[512];

static enum kited_parse
parse(struct kited_config *c, int argc, const char **argv)
{
	FILE *out = fopen("/dev/null", "w");
	enum kited_parse r = kited_config_parse_args(c, argc, (char **)argv, out, err, sizeof(err));
	fclose(out);
	return r;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
test_invalid_values(void **state)
{
	struct kited_config c;

	(void)state;
	kited_config_defaults(&c);
	assert_int_equal(kited_config_set(&c, "nosuch", "1", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown option"));
	assert_int_equal(kited_config_set(&c, "workers", "0", err, sizeof(err)), -EINVAL);
	assert_int_equal(kited_config_set(&c, "workers", "65", err, sizeof(err)), -EINVAL);
	assert_int_equal(kited_config_set(&c, "workers", "2x", err, sizeof(err)), -EINVAL);
	assert_int_equal(kited_config_set(&c, "workers", "-1", err, sizeof(err)), -EINVAL);
	assert_int_equal(kited_config_set(&c, "memory", "12Q", err, sizeof(err)), -EINVAL);
	assert_int_equal(kited_config_set(&c, "memory", "99999999999999T", err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(kited_config_set(&c, "ip", "300.1.1.1", err, sizeof(err)), -EINVAL);
	assert_int_equal(kited_config_set(&c, "max-item-size", "2M", err, sizeof(err)), -EINVAL);
	assert_int_equal(kited_config_set(&c, "udp-checksum", "maybe", err, sizeof(err)), -EINVAL);
	assert_int_equal(c.workers, 1); /* failed sets change nothing */
	assert_true(c.udp_checksum);
}

static void
test_defaults_valid(void **state)
{
	struct kited_config c;

	(void)state;
	kited_config_defaults(&c);
	assert_int_equal(kited_config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(c.udp_port, 11211);
	assert_int_equal(c.workers, 1);
	assert_int_equal(c.memory, 64u << 20);
	assert_int_equal(c.max_item_size, 1u << 20);
	assert_int_equal(c.ip, 0xc6120002u); /* 198.18.0.2 */
	assert_string_equal(c.steer, "auto");
	assert_string_equal(c.idle, "adaptive");
	assert_int_equal(c.idle_spin_us, 200);
	assert_int_equal(c.idle_sleep_max_us, 1000);
	/* The idle policy is one of three; the longest adaptive sleep is at least the first (8 us). */
	assert_int_equal(kited_config_set(&c, "idle", "spin", err, sizeof(err)), 0);
	assert_int_equal(kited_config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "idle: 'spin' is not adaptive, shared or busy"));
	assert_int_equal(kited_config_set(&c, "idle", "shared", err, sizeof(err)), 0);
	assert_int_equal(kited_config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(kited_config_set(&c, "idle-sleep-max-us", "7", err, sizeof(err)), -EINVAL);
	/* admin-advertise: an address others reach, so never 0.0.0.0. */
	assert_int_equal(kited_config_set(&c, "admin-advertise", "198.19.0.11:11280", err,
					  sizeof(err)), 0);
	assert_int_equal(kited_config_validate(&c, err, sizeof(err)), 0);
	assert_int_equal(kited_config_set(&c, "admin-advertise", "0.0.0.0:11280", err, sizeof(err)),
			 0);
	assert_int_equal(kited_config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "admin-advertise: 0.0.0.0 is no address to reach"));
	assert_int_equal(kited_config_set(&c, "admin-advertise", "198.19.0.11", err, sizeof(err)), 0);
	assert_int_equal(kited_config_validate(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "admin-advertise: '198.19.0.11' is not IPV4:PORT"));
	assert_int_equal(kited_config_set(&c, "admin-advertise", "", err, sizeof(err)), 0);
	assert_string_equal(c.ablate, "none");
	assert_true(c.udp_checksum);
	assert_int_equal(kited_config_set(&c, "udp-checksum", "off", err, sizeof(err)), 0);
	assert_false(c.udp_checksum);
	assert_int_equal(kited_config_set(&c, "udp-checksum", "yes", err, sizeof(err)), 0);
	assert_true(c.udp_checksum);
}

static void
test_sizes(void **state)
{
	struct kited_config c;

	(void)state;
	kited_config_defaults(&c);
	assert_int_equal(kited_config_set(&c, "memory", "3G", err, sizeof(err)), 0);
	assert_int_equal(c.memory, 3ull << 30);
	assert_int_equal(kited_config_set(&c, "memory", "512MiB", err, sizeof(err)), 0);
	assert_int_equal(c.memory, 512ull << 20);
	assert_int_equal(kited_config_set(&c, "memory", "1048576", err, sizeof(err)), 0);
	assert_int_equal(c.memory, 1048576);
	assert_int_equal(kited_config_set(&c, "max-item-size", "4k", err, sizeof(err)), 0);
	assert_int_equal(c.max_item_size, 4096);
}

static void
test_precedence(void **state)
{
	struct kited_config c;
	char path[] = "/tmp/kite_cfg_XXXXXX";
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	write_file(path, "# comment\n[node]\nworkers = 2\n; other comment\nudp-port=12000\n"
			 "memory = 128M\n");
	const char *argv[] = { "kited", "--udp-port", "13000", "--config", path };
	assert_int_equal(parse(&c, 5, argv), KITED_PARSE_RUN);
	assert_int_equal(c.workers, 2);       /* from the file */
	assert_int_equal(c.udp_port, 13000);  /* the command line wins, wherever --config is */
	assert_int_equal(c.memory, 128u << 20);

	write_file(path, "workers = many\n");
	const char *argv2[] = { "kited", "--config", path };
	assert_int_equal(parse(&c, 3, argv2), KITED_PARSE_ERROR);
	assert_non_null(strstr(err, ":1:"));
	write_file(path, "just words\n");
	assert_int_equal(parse(&c, 3, argv2), KITED_PARSE_ERROR);
	unlink(path);
	assert_int_equal(parse(&c, 3, argv2), KITED_PARSE_ERROR);
}

static void
test_args(void **state)
{
	struct kited_config c;

	(void)state;
	const char *a1[] = { "kited", "--workers=3", "--steer", "handoff", "--ip", "198.18.5.6" };
	assert_int_equal(parse(&c, 6, a1), KITED_PARSE_RUN);
	assert_int_equal(c.workers, 3);
	assert_string_equal(c.steer, "handoff");
	const char *a2[] = { "kited", "--workers" };
	assert_int_equal(parse(&c, 2, a2), KITED_PARSE_ERROR);
	const char *a3[] = { "kited", "stray" };
	assert_int_equal(parse(&c, 2, a3), KITED_PARSE_ERROR);
	const char *a4[] = { "kited", "--steer", "magic" };
	assert_int_equal(parse(&c, 3, a4), KITED_PARSE_ERROR);
	const char *a5[] = { "kited", "--help" };
	assert_int_equal(parse(&c, 2, a5), KITED_PARSE_EXIT);
	const char *a6[] = { "kited", "--describe-config" };
	assert_int_equal(parse(&c, 2, a6), KITED_PARSE_EXIT);
	const char *a7[] = { "kited", "--ablate", "bulk,txbatch" };
	assert_int_equal(parse(&c, 3, a7), KITED_PARSE_RUN);
	assert_string_equal(c.ablate, "bulk,txbatch");
	const char *a8[] = { "kited", "--ablate", "bulk,turbo" };
	assert_int_equal(parse(&c, 3, a8), KITED_PARSE_ERROR);
	assert_non_null(strstr(err, "ablate"));
}

static void
test_cross_checks(void **state)
{
	struct kited_config c;

	(void)state;
	const char *a1[] = { "kited", "--memory", "1M", "--workers", "4", "--partitions", "8" };
	assert_int_equal(parse(&c, 7, a1), KITED_PARSE_ERROR);
	assert_non_null(strstr(err, "64 KiB"));
	const char *a2[] = { "kited", "--udp-port", "65500", "--partitions", "64" };
	assert_int_equal(parse(&c, 5, a2), KITED_PARSE_ERROR);
	const char *a3[] = { "kited", "--handoff-ring", "1000" };
	assert_int_equal(parse(&c, 3, a3), KITED_PARSE_ERROR);
	const char *a4[] = { "kited", "--netmask", "255.0.255.0" };
	assert_int_equal(parse(&c, 3, a4), KITED_PARSE_ERROR);
	const char *a5[] = { "kited", "--memory", "2M", "--max-item-size", "1M" };
	assert_int_equal(parse(&c, 5, a5), KITED_PARSE_ERROR);
	const char *a6[] = { "kited", "--workers", "8", "--partitions", "129", "--memory", "1G" };
	assert_int_equal(parse(&c, 7, a6), KITED_PARSE_ERROR);
	assert_non_null(strstr(err, "1024"));
	/* ttl-jitter: N% or N, 0..50; text-keys: strict or memcached. */
	assert_int_equal(kited_ttl_jitter("10%"), 10);
	assert_int_equal(kited_ttl_jitter("0"), 0);
	assert_int_equal(kited_ttl_jitter("50"), 50);
	assert_int_equal(kited_ttl_jitter("51%"), -1);
	assert_int_equal(kited_ttl_jitter("10%x"), -1);
	assert_int_equal(kited_ttl_jitter("%"), -1);
	assert_int_equal(kited_ttl_jitter("-5"), -1);
	const char *a7[] = { "kited", "--ttl-jitter", "80%" };
	assert_int_equal(parse(&c, 3, a7), KITED_PARSE_ERROR);
	assert_non_null(strstr(err, "ttl-jitter"));
	const char *a8[] = { "kited", "--text-keys", "loose" };
	assert_int_equal(parse(&c, 3, a8), KITED_PARSE_ERROR);
	const char *a9[] = { "kited", "--ttl-jitter", "10%", "--text-keys", "memcached" };
	assert_int_equal(parse(&c, 5, a9), KITED_PARSE_RUN);
}

static void
collect(uint32_t ip, const uint8_t mac[6], void *arg)
{
	uint32_t *out = arg;

	out[0]++;
	out[1] = ip;
	out[2] = mac[5];
}

/* Where replies go: reply-mac, gateway (inside ip/netmask), static neighbours. */
static void
test_neighbour_options(void **state)
{
	struct kited_config c;
	uint32_t got[3] = { 0 };

	(void)state;
	const char *ok[] = { "kited", "--ip", "10.0.0.2", "--netmask", "255.255.255.0",
			     "--gateway", "10.0.0.1", "--reply-mac", "neighbour", "--neighbours",
			     "10.0.0.9=02:00:00:00:00:09, 10.0.0.10=02:aB:cd:EF:00:0a" };
	assert_int_equal(parse(&c, 11, ok), KITED_PARSE_RUN);
	assert_int_equal(kited_neighbours_parse(c.neighbours, collect, got, err, sizeof(err)), 2);
	assert_int_equal(got[0], 2);
	assert_int_equal(got[1], 0x0a00000a);
	assert_int_equal(got[2], 0x0a);
	static const char *const bad[][2] = {
		{ "--gateway", "10.0.1.1" },	     /* outside ip/netmask */
		{ "--gateway", "10.0.0.2" },	     /* the node itself */
		{ "--reply-mac", "source" },	     /* not a mode */
		{ "--neighbours", "10.0.0.9" },	     /* no MAC */
		{ "--neighbours", "10.0.0.9=02:00:00:00:00" }, /* short MAC */
		{ "--neighbours", "10.0.0.9=01:00:5e:00:00:01" }, /* multicast */
		{ "--neighbours", "10.0.0.x=02:00:00:00:00:01" }, /* not an address */
		{ "--neighbours", "10.0.0.9=02:00:00:00:00:01,," }, /* empty entry */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *a[] = { "kited", "--ip", "10.0.0.2", "--netmask", "255.255.255.0",
				    bad[i][0], bad[i][1] };
		assert_int_equal(parse(&c, 7, a), KITED_PARSE_ERROR);
		assert_non_null(strstr(err, bad[i][0] + 2));
	}
	assert_int_equal(kited_neighbours_parse("", NULL, NULL, err, sizeof(err)), 0);
}

static void
test_cluster_options(void **state)
{
	struct kited_config c;
	static const struct {
		int argc;
		const char *argv[12];
		const char *why; /* NULL: valid */
	} cases[] = {
		{ 1, { "kited" }, NULL },
		{ 3, { "kited", "--cluster", "gossip" }, "cluster: 'gossip'" },
		{ 3, { "kited", "--cluster", "etcd" }, "node-id: required" },
		{ 5, { "kited", "--cluster", "etcd", "--node-id", "n1" }, NULL },
		{ 5, { "kited", "--cluster", "static", "--node-id", "n1" }, "members-file: required" },
		{ 7, { "kited", "--cluster", "static", "--node-id", "n1", "--members-file", "/m" }, NULL },
		{ 5, { "kited", "--cluster", "etcd", "--node-id", "a/b" }, "node-id/zone" },
		{ 5, { "kited", "--cluster", "etcd", "--node-id", "a b" }, "node-id/zone" },
		{ 7, { "kited", "--cluster", "etcd", "--node-id", "n1", "--partitions", "3" },
		  "power of two dividing vbuckets" },
		{ 7, { "kited", "--cluster", "etcd", "--node-id", "n1", "--vbuckets", "3000" },
		  "vbuckets: 3000" },
		{ 7, { "kited", "--cluster", "etcd", "--node-id", "n1", "--fencing", "loose" },
		  "fencing: 'loose'" },
		{ 7, { "kited", "--cluster", "etcd", "--node-id", "n1", "--etcd", "" }, "etcd: required" },
		{ 3, { "kited", "--cluster-name", "a/b" }, "cluster-name" },
		{ 3, { "kited", "--partitions", "3" }, NULL }, /* cluster none: any count */
		{ 3, { "kited", "--lease-ttl", "0" }, "lease-ttl" },
		{ 3, { "kited", "--copies", "5" }, "copies" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		enum kited_parse r = parse(&c, cases[i].argc, (const char **)cases[i].argv);
		if (cases[i].why == NULL) {
			if (r != KITED_PARSE_RUN)
				fail_msg("case %zu: refused: %s", i, err);
		} else if (r != KITED_PARSE_ERROR || strstr(err, cases[i].why) == NULL) {
			fail_msg("case %zu: want an error with '%s', got %d '%s'", i, cases[i].why, r,
				 err);
		}
	}
	kited_config_defaults(&c);
	assert_string_equal(c.cluster, "none");
	assert_int_equal(c.vbuckets, 65536);
	assert_int_equal(c.lease_ttl, 2);
	assert_string_equal(c.fencing, "strict");
}

static void
test_describe_lists_every_option(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	kited_config_describe(f);
	fclose(f);
	const char *keys[] = { "port", "ip", "netmask", "udp-port", "workers", "partitions",
			       "memory", "max-item-size", "idle-sleep-us", "stats-interval" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_non_null(strstr(buf, keys[i]));
	assert_non_null(strstr(buf, "range: 1..64"));
	free(buf);
}

static void
test_profiles(void **state)
{
	struct kited_config c;
	char dir[] = "/tmp/kite_prof_XXXXXX";
	char path[64];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fast.conf", dir);
	write_file(path, "idle-sleep-us = 0\nburst = 64\nudp-port = 12000\n");
	setenv("KITE_PROFILE_DIR", dir, 1);
	/* Profile, then file-less flags: the flag wins over the profile. */
	const char *a1[] = { "kited", "--udp-port", "13000", "--profile", "fast" };
	assert_int_equal(parse(&c, 5, a1), KITED_PARSE_RUN);
	assert_int_equal(c.idle_sleep_us, 0);
	assert_int_equal(c.burst, 64);
	assert_int_equal(c.udp_port, 13000);
	const char *a2[] = { "kited", "--profile", "nosuch" };
	assert_int_equal(parse(&c, 3, a2), KITED_PARSE_ERROR);
	assert_non_null(strstr(err, "not found"));
	const char *a3[] = { "kited", "--profile=../etc/passwd" };
	assert_int_equal(parse(&c, 2, a3), KITED_PARSE_ERROR);
	/* A config file may name the profile; it applies before the file, flags after. */
	char conf[80];
	snprintf(conf, sizeof(conf), "%s/node.conf", dir);
	write_file(conf, "[node]\nprofile = fast\nburst = 16\n");
	const char *a4[] = { "kited", "--config", conf, "--udp-port", "14000" };
	assert_int_equal(parse(&c, 5, a4), KITED_PARSE_RUN);
	assert_int_equal(c.idle_sleep_us, 0);
	assert_int_equal(c.burst, 16);
	assert_int_equal(c.udp_port, 14000);
	/* --profile wins over the file's profile. */
	snprintf(path, sizeof(path), "%s/slow.conf", dir);
	write_file(path, "idle-sleep-us = 500\n");
	const char *a5[] = { "kited", "--config", conf, "--profile", "slow" };
	assert_int_equal(parse(&c, 5, a5), KITED_PARSE_RUN);
	assert_int_equal(c.idle_sleep_us, 500);
	assert_int_equal(c.burst, 16);
	unlink(path);
	write_file(conf, "profile = nosuch\n");
	const char *a6[] = { "kited", "--config", conf };
	assert_int_equal(parse(&c, 3, a6), KITED_PARSE_ERROR);
	assert_non_null(strstr(err, "profile 'nosuch' not found"));
	unlink(conf);
	snprintf(path, sizeof(path), "%s/fast.conf", dir);
	unlink(path);
	rmdir(dir);
	unsetenv("KITE_PROFILE_DIR");
	/* Every shipped profile loads and validates. */
	const char *shipped[] = { "af_packet", "memif", "tap", "null", "mlx5",
				  "ice",       "i40e",  "ixgbe", "virtio" };
	for (size_t i = 0; i < sizeof(shipped) / sizeof(shipped[0]); i++) {
		const char *a[] = { "kited", "--profile", shipped[i] };
		assert_int_equal(parse(&c, 3, a), KITED_PARSE_RUN);
	}
}

static void
test_ablate_parse(void **state)
{
	(void)state;
	assert_int_equal(kited_ablate_parse(""), 0);
	assert_int_equal(kited_ablate_parse("none"), 0);
	assert_int_equal(kited_ablate_parse("bulk"), KITED_ABLATE_BULK);
	assert_int_equal(kited_ablate_parse("txbatch,prefetch"),
			 KITED_ABLATE_TXBATCH | KITED_ABLATE_PREFETCH);
	assert_int_equal(kited_ablate_parse("bulk,prefetch,inplace,txbatch"), 15);
	assert_int_equal(kited_ablate_parse("bulk,"), -1);
	assert_int_equal(kited_ablate_parse(",bulk"), -1);
	assert_int_equal(kited_ablate_parse("bulk,,inplace"), -1);
	assert_int_equal(kited_ablate_parse("bulky"), -1);
	assert_int_equal(kited_ablate_parse("bul"), -1);
	assert_int_equal(kited_ablate_parse("none,bulk"), -1);
}

/* The steer option's names are lib/steer's, in its enum's order. */
static void
test_steer_names(void **state)
{
	char names[] = KITED_STEER_MODES;
	int i = 0;

	(void)state;
	for (char *n = strtok(names, ","); n != NULL; n = strtok(NULL, ","), i++) {
		assert_int_equal(kite_steer_mode_parse(n), i);
		assert_int_equal(kite_conf_choice(KITED_STEER_MODES, n), i);
	}
	assert_int_equal(i, KITE_STEER_HANDOFF + 1);
}

/* admin-token-file: the three roles, comments, and each way a line is wrong. */
static void
test_admin_tokens(void **state)
{
	struct kited_admin_token t[3];
	unsigned int n = 99;
	(void)state;

	assert_int_equal(kited_admin_tokens_parse("# ops\n\n"
						  "0123456789abcdef admin\n"
						  "  reader-token-0000 read\r\n"
						  "tenant-token-0000 tenant=shop\n",
						  t, 3, &n, err, sizeof(err)),
			 0);
	assert_int_equal(n, 3);
	assert_string_equal(t[0].secret, "0123456789abcdef");
	assert_int_equal(t[0].role, KITED_ADMIN_ROLE_ADMIN);
	assert_int_equal(t[1].role, KITED_ADMIN_ROLE_READ);
	assert_string_equal(t[1].secret, "reader-token-0000");
	assert_int_equal(t[2].role, KITED_ADMIN_ROLE_TENANT);
	assert_string_equal(t[2].tenant, "shop");
	assert_int_equal(kited_admin_tokens_parse("", t, 3, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);

	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "short admin\n", "16 to 128" },
		{ "0123456789abcdef\n", "want TOKEN ROLE" },
		{ "0123456789abcdef admin extra\n", "want TOKEN ROLE" },
		{ "0123456789abcdef root\n", "is not admin, read or tenant=NAME" },
		{ "0123456789abcdef tenant=\n", "is not admin, read or tenant=NAME" },
		{ "0123456789abcdef tenant=0123456789abcdef0123456789abcdef\n",
		  "is not admin, read or tenant=NAME" },
		{ "a123456789abcdef admin\nb123456789abcdef admin\nc123456789abcdef admin\n"
		  "d123456789abcdef admin\n",
		  "line 4: more than 3 tokens" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(kited_admin_tokens_parse(bad[i].text, t, 3, &n, err, sizeof(err)),
				 -EINVAL);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("'%s': error '%s' lacks '%s'", bad[i].text, err, bad[i].why);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid_values), cmocka_unit_test(test_defaults_valid),
		cmocka_unit_test(test_sizes),	       cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_args),	       cmocka_unit_test(test_cross_checks),
		cmocka_unit_test(test_cluster_options),
		cmocka_unit_test(test_neighbour_options),
		cmocka_unit_test(test_describe_lists_every_option),
		cmocka_unit_test(test_profiles),
		cmocka_unit_test(test_ablate_parse),
		cmocka_unit_test(test_steer_names),
		cmocka_unit_test(test_admin_tokens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
