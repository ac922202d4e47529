/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lib/cluster: the map as a function of the member list. Balance per unit
 * of weight, movement on a join and on a leave, determinism, zones,
 * weights, the hash chain and bad input. The balance and movement figures
 * of every size are printed (docs/cluster.rst quotes them).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "kite_cluster.h"
#include "kite_cluster_record.h"

#define V KITE_CLUSTER_DEFAULT_VBUCKETS

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static void
member(struct kite_cluster_member *mb, const char *id, uint32_t weight, const char *zone)
{
	memset(mb, 0, sizeof(*mb));
	snprintf(mb->id, sizeof(mb->id), "%s", id);
	snprintf(mb->zone, sizeof(mb->zone), "%s", zone);
	mb->weight = weight;
	mb->partitions = 4;
	mb->base_port = 11211;
	mb->state = KITE_CLUSTER_ACTIVE;
}

/* n members node-<salt>-<i>, weights 100..400 (1x to 4x). */
static void
members(struct kite_cluster_member *mb, unsigned int n, unsigned int salt)
{
	for (unsigned int i = 0; i < n; i++) {
		char id[32];

		snprintf(id, sizeof(id), "node-%u-%u", salt, i);
		member(&mb[i], id, 100 + rnd(301), "");
	}
}

/* Largest vbuckets-per-weight of a member over the average. */
static double
imbalance(const struct kite_cluster_map *m)
{
	uint32_t cnt[KITE_CLUSTER_MAX_MEMBERS];
	double wsum = 0, worst = 0;

	kite_cluster_owned(m, cnt);
	for (unsigned int i = 0; i < m->n_members; i++)
		wsum += m->members[i].weight;
	for (unsigned int i = 0; i < m->n_members; i++) {
		double r = cnt[i] / (m->vbuckets * m->members[i].weight / wsum);

		if (r > worst)
			worst = r;
	}
	return worst;
}

/* Owner of each vbucket by member id, to compare maps with other members. */
static const char *
owner_id(const struct kite_cluster_map *m, uint32_t v)
{
	return m->members[kite_cluster_owner(m, v)].id;
}

static const unsigned int sizes[] = { 3, 4, 5, 8, 12, 16, 24, 32, 48, 64 };

static void
test_balance(void **state)
{
	(void)state;
	printf("# balance: max/avg vbuckets per unit of weight, %u vbuckets, weights 1x-4x\n", V);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct kite_cluster_member mb[64];
		struct kite_cluster_map m;
		struct timespec t0, t1;

		members(mb, sizes[s], (unsigned int)s);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(kite_cluster_map_build(&m, mb, sizes[s], V, 2, 1), 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double bal = imbalance(&m);
		printf("#   %2u members: %.3f (built in %.0f ms)\n", sizes[s], bal,
		       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
		assert_true(bal <= 1.05);
		kite_cluster_map_free(&m);
	}
}

/*
 * Join: at most 1.1 x the newcomer's fair share moves (plus a few), and
 * what moves goes to the newcomer but for a few. Leave: at most 1.1 x the
 * leaver's share moves; moves between survivors are counted and bounded.
 */
static void
test_movement(void **state)
{
	(void)state;
	printf("# movement (vbuckets moved / fair share; moved elsewhere than to or from the node)\n");
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		unsigned int n = sizes[s];
		struct kite_cluster_member mb[65];
		struct kite_cluster_map before, joined, left;
		double wsum = 0;
		uint32_t moved = 0, elsewhere = 0, lmoved = 0, lbetween = 0;

		members(mb, n + 1, 100 + (unsigned int)s);
		for (unsigned int i = 0; i <= n; i++)
			wsum += mb[i].weight;
		assert_int_equal(kite_cluster_map_build(&before, mb, n, V, 1, 1), 0);
		assert_int_equal(kite_cluster_map_build(&joined, mb, n + 1, V, 1, 2), 0);
		/* A member in the middle of the list leaves. */
		struct kite_cluster_member rest[64];
		unsigned int gone = n / 2, k = 0;
		for (unsigned int i = 0; i < n; i++)
			if (i != gone)
				rest[k++] = mb[i];
		assert_int_equal(kite_cluster_map_build(&left, rest, n - 1, V, 1, 3), 0);

		for (uint32_t v = 0; v < V; v++) {
			const char *a = owner_id(&before, v), *b = owner_id(&joined, v);
			const char *c = owner_id(&left, v);

			if (strcmp(a, b) != 0) {
				moved++;
				if (strcmp(b, mb[n].id) != 0)
					elsewhere++;
			}
			if (strcmp(a, c) != 0) {
				lmoved++;
				if (strcmp(a, mb[gone].id) != 0)
					lbetween++;
			}
		}
		double fair = V * mb[n].weight / wsum;
		double share = V * mb[gone].weight / (wsum - mb[n].weight);
		printf("#   %2u members: join %.3f (%u elsewhere), leave %.3f (%u between survivors)\n",
		       n, moved / fair, elsewhere, lmoved / share, lbetween);
		assert_true(moved <= 1.1 * fair + 16);
		assert_true(elsewhere <= 0.05 * fair + 16);
		assert_true(lmoved <= 1.1 * share + 16);
		assert_true(lbetween <= 0.05 * share + 16);
		kite_cluster_map_free(&before);
		kite_cluster_map_free(&joined);
		kite_cluster_map_free(&left);
	}
}

/*
 * A joining member owns nothing: where it would, the owner of the map
 * without it stays owner and the joiner is listed second (its replica, to
 * be filled); once active it owns those vbuckets.
 */
static void
test_joining(void **state)
{
	struct kite_cluster_member mb[4];
	struct kite_cluster_map without, joining, active;
	unsigned int would = 0, second = 0, same_owner = 0;

	(void)state;
	members(mb, 4, 11);
	assert_int_equal(kite_cluster_map_build(&without, mb, 3, V, 2, 1), 0);
	assert_int_equal(kite_cluster_map_build(&active, mb, 4, V, 2, 3), 0);
	mb[3].state = KITE_CLUSTER_JOINING;
	assert_int_equal(kite_cluster_map_build(&joining, mb, 4, V, 2, 2), 0);
	int j = kite_cluster_find(&joining, mb[3].id);
	assert_true(j >= 0);
	for (uint32_t v = 0; v < V; v++) {
		const uint8_t *lj = kite_cluster_nodes(&joining, v), *la = kite_cluster_nodes(&active, v);

		assert_int_not_equal(lj[0], j);
		if (la[0] == j) {
			would++;
			second += lj[1] == j;
		}
		same_owner += strcmp(joining.members[lj[0]].id, without.members[kite_cluster_owner(
									 &without, v)].id) == 0;
	}
	/* It would own about a quarter; it is second in each of those lists. */
	assert_true(would > V / 5 && would < V / 3);
	assert_int_equal(second, would);
	/* The owners stay those of the map without it (bounded loads move a few). */
	assert_true(same_owner >= V * 99 / 100);
	/* Every member joining (a new cluster): the lists stay. */
	for (int i = 0; i < 4; i++)
		mb[i].state = KITE_CLUSTER_JOINING;
	struct kite_cluster_map all;
	assert_int_equal(kite_cluster_map_build(&all, mb, 4, V, 2, 4), 0);
	assert_memory_equal(all.nodes, active.nodes, (size_t)V * 2);
	kite_cluster_map_free(&all);
	kite_cluster_map_free(&without);
	kite_cluster_map_free(&joining);
	kite_cluster_map_free(&active);
}

/* Any input order gives the same map, byte for byte. */
static void
test_determinism(void **state)
{
	struct kite_cluster_member mb[16], shuffled[16];
	struct kite_cluster_map a, b;

	(void)state;
	members(mb, 16, 7);
	mb[3].state = KITE_CLUSTER_JOINING;
	mb[5].state = KITE_CLUSTER_LEAVING;
	snprintf(mb[2].zone, sizeof(mb[2].zone), "z1");
	memcpy(shuffled, mb, sizeof(mb));
	for (unsigned int i = 15; i > 0; i--) {
		unsigned int j = rnd(i + 1);
		struct kite_cluster_member t = shuffled[i];

		shuffled[i] = shuffled[j];
		shuffled[j] = t;
	}
	assert_int_equal(kite_cluster_map_build(&a, mb, 16, V, 3, 9), 0);
	assert_int_equal(kite_cluster_map_build(&b, shuffled, 16, V, 3, 9), 0);
	assert_int_equal(a.epoch, 9);
	assert_int_equal(b.epoch, 9);
	assert_memory_equal(a.nodes, b.nodes, (size_t)V * 3);
	for (unsigned int i = 0; i < 16; i++)
		assert_string_equal(a.members[i].id, b.members[i].id);
	/* And a fixed fingerprint: placement is part of the protocol. */
	uint64_t fp = XXH64(a.nodes, (size_t)V * 3, 0);
	printf("# fingerprint of the 16-member map: %016llx\n", (unsigned long long)fp);
	kite_cluster_map_free(&a);
	kite_cluster_map_free(&b);
}

/* A fixed small map whose owners are pinned: a change of placement is a protocol change. */
static void
test_pinned(void **state)
{
	struct kite_cluster_member mb[3];
	struct kite_cluster_map m;
	uint32_t cnt[3];

	(void)state;
	member(&mb[0], "a", 100, "");
	member(&mb[1], "b", 100, "");
	member(&mb[2], "c", 200, "");
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, 1024, 1, 1), 0);
	kite_cluster_owned(&m, cnt);
	assert_int_equal(cnt[0] + cnt[1] + cnt[2], 1024);
	/* c has twice the weight: about half the vbuckets. */
	assert_true(cnt[2] >= 490 && cnt[2] <= 535);
	assert_true(cnt[0] >= 245 && cnt[0] <= 268);
	assert_int_equal(XXH64(m.nodes, 1024, 0) != 0, 1);
	kite_cluster_map_free(&m);
}

static void
test_zones(void **state)
{
	struct kite_cluster_member mb[9];
	struct kite_cluster_map m;
	static const char *const zones[] = { "a", "b", "c" };

	(void)state;
	for (unsigned int i = 0; i < 9; i++) {
		char id[16];

		snprintf(id, sizeof(id), "n%u", i);
		member(&mb[i], id, 100, zones[i % 3]);
	}
	assert_int_equal(kite_cluster_map_build(&m, mb, 9, V, 3, 1), 0);
	for (uint32_t v = 0; v < V; v++) {
		const uint8_t *l = kite_cluster_nodes(&m, v);

		/* Three zones, three copies: one in each. */
		assert_string_not_equal(m.members[l[0]].zone, m.members[l[1]].zone);
		assert_string_not_equal(m.members[l[0]].zone, m.members[l[2]].zone);
		assert_string_not_equal(m.members[l[1]].zone, m.members[l[2]].zone);
	}
	kite_cluster_map_free(&m);

	/* Two zones, three copies: the third copy is in a zone already used, never a repeat node. */
	for (unsigned int i = 0; i < 9; i++)
		snprintf(mb[i].zone, sizeof(mb[i].zone), "%s", zones[i % 2]);
	assert_int_equal(kite_cluster_map_build(&m, mb, 9, V, 3, 1), 0);
	for (uint32_t v = 0; v < V; v++) {
		const uint8_t *l = kite_cluster_nodes(&m, v);

		assert_string_not_equal(m.members[l[0]].zone, m.members[l[1]].zone);
		assert_int_not_equal(l[2], l[0]);
		assert_int_not_equal(l[2], l[1]);
		assert_int_not_equal(l[2], KITE_CLUSTER_NONE);
	}
	kite_cluster_map_free(&m);

	/* Fewer members than copies: the list is padded with NONE. */
	assert_int_equal(kite_cluster_map_build(&m, mb, 2, 1024, 4, 1), 0);
	for (uint32_t v = 0; v < 1024; v++) {
		const uint8_t *l = kite_cluster_nodes(&m, v);

		assert_int_not_equal(l[0], l[1]);
		assert_int_equal(l[2], KITE_CLUSTER_NONE);
		assert_int_equal(l[3], KITE_CLUSTER_NONE);
	}
	kite_cluster_map_free(&m);
}

static void
test_states(void **state)
{
	struct kite_cluster_member mb[4];
	struct kite_cluster_map m;
	uint32_t cnt[4];

	(void)state;
	members(mb, 4, 11);
	mb[1].state = KITE_CLUSTER_LEAVING;
	mb[2].state = KITE_CLUSTER_JOINING;
	assert_int_equal(kite_cluster_map_build(&m, mb, 4, 4096, 2, 1), 0);
	kite_cluster_owned(&m, cnt);
	int leaver = kite_cluster_find(&m, mb[1].id), joiner = kite_cluster_find(&m, mb[2].id);
	assert_true(leaver >= 0 && joiner >= 0);
	assert_int_equal(cnt[leaver], 0);
	assert_int_equal(cnt[joiner], 0); /* listed second until it turns active */
	unsigned int second = 0;
	for (uint32_t v = 0; v < 4096; v++) {
		assert_int_not_equal(kite_cluster_nodes(&m, v)[1], leaver);
		second += kite_cluster_nodes(&m, v)[1] == joiner;
	}
	assert_true(second > 4096 / 4);
	kite_cluster_map_free(&m);

	assert_string_equal(kite_cluster_state_name(KITE_CLUSTER_JOINING), "joining");
	assert_null(kite_cluster_state_name(KITE_CLUSTER_STATE_MAX));
	assert_int_equal(kite_cluster_state_parse("leaving"), KITE_CLUSTER_LEAVING);
	assert_int_equal(kite_cluster_state_parse("gone"), -1);
	assert_int_equal(kite_cluster_find(&m, "x"), -1);
}

/* vbucket = XXH64 mod V, and vbucket mod P = XXH64 mod P: one hash, two levels. */
static void
test_hash_chain(void **state)
{
	(void)state;
	for (unsigned int i = 0; i < 10000; i++) {
		char key[32];
		int len = snprintf(key, sizeof(key), "key:%u", i);
		uint64_t h = XXH64(key, (size_t)len, 0);
		uint32_t vb = kite_cluster_vbucket(key, (uint16_t)len, V);

		assert_int_equal(vb, h % V);
		assert_int_equal(vb % 16, h % 16);
	}
	assert_int_equal(kite_cluster_vbucket("k", 1, 0), 0);
}

static void
test_invalid(void **state)
{
	struct kite_cluster_member mb[3];
	struct kite_cluster_map m;

	(void)state;
	members(mb, 3, 13);
	assert_int_equal(kite_cluster_map_build(&m, mb, 0, V, 1, 1), -EINVAL);
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, 3000, 1, 1), -EINVAL);
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, 512, 1, 1), -EINVAL);
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, 1u << 21, 1, 1), -EINVAL);
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, V, 0, 1), -EINVAL);
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, V, 5, 1), -EINVAL);
	mb[1].weight = 0;
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, V, 1, 1), -EINVAL);
	mb[1].weight = KITE_CLUSTER_MAX_WEIGHT + 1;
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, V, 1, 1), -EINVAL);
	mb[1].weight = 100;
	mb[1].partitions = 3;
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, V, 1, 1), -EINVAL);
	mb[1].partitions = 2048; /* does not divide 1024 vbuckets */
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, 1024, 1, 1), -EINVAL);
	mb[1].partitions = 4;
	snprintf(mb[1].id, sizeof(mb[1].id), "a/b");
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, V, 1, 1), -EINVAL);
	mb[1].id[0] = '\0';
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, V, 1, 1), -EINVAL);
	snprintf(mb[1].id, sizeof(mb[1].id), "%s", mb[0].id); /* duplicate */
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, V, 1, 1), -EINVAL);
	snprintf(mb[1].id, sizeof(mb[1].id), "ok");
	mb[1].state = KITE_CLUSTER_STATE_MAX;
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, V, 1, 1), -EINVAL);
	/* Nobody may own: every member leaving. */
	for (unsigned int i = 0; i < 3; i++)
		mb[i].state = KITE_CLUSTER_LEAVING;
	assert_int_equal(kite_cluster_map_build(&m, mb, 3, V, 1, 1), -EINVAL);
	assert_null(m.nodes);
	assert_null(m.members);
}

static void
test_member_json(void **state)
{
	struct kite_cluster_member mb, back;
	char buf[512], err[160];
	int n;

	(void)state;
	member(&mb, "node-1", 250, "rack-a");
	mb.ip = 0xc6120b0b; /* 198.18.11.11 */
	mb.base_port = 11300;
	mb.partitions = 8;
	mb.state = KITE_CLUSTER_JOINING;
	n = kite_cluster_member_to_json(&mb, buf, sizeof(buf));
	assert_true(n > 0);
	assert_string_equal(buf, "{\"id\":\"node-1\",\"ip\":\"198.18.11.11\",\"partitions\":8,"
				 "\"port\":11300,\"state\":\"joining\",\"weight\":250,"
				 "\"zone\":\"rack-a\"}");
	assert_int_equal(kite_cluster_member_from_json(buf, (size_t)n, &back, err, sizeof(err)), 0);
	assert_memory_equal(&mb, &back, sizeof(mb));
	assert_int_equal(kite_cluster_member_to_json(&mb, buf, 20), -ENOSPC);
	/* With an admin endpoint, the record names it. */
	mb.admin_ip = 0xc613000b; /* 198.19.0.11 */
	mb.admin_port = 11280;
	n = kite_cluster_member_to_json(&mb, buf, sizeof(buf));
	assert_true(n > 0);
	assert_non_null(strstr(buf, "{\"admin\":\"198.19.0.11:11280\",\"id\""));
	assert_int_equal(kite_cluster_member_from_json(buf, (size_t)n, &back, err, sizeof(err)), 0);
	assert_memory_equal(&mb, &back, sizeof(mb));

	/* Defaults, unknown fields ignored. */
	const char *min = "{\"id\":\"x\",\"ip\":\"10.0.0.1\",\"port\":1,\"future\":[1,2]}";
	assert_int_equal(kite_cluster_member_from_json(min, strlen(min), &back, err, sizeof(err)),
			 0);
	assert_int_equal(back.partitions, 4);
	assert_int_equal(back.weight, 100);
	assert_int_equal(back.state, KITE_CLUSTER_ACTIVE);
	assert_string_equal(back.zone, "");
	assert_int_equal(back.admin_port, 0);

	static const struct {
		const char *json, *why;
	} bad[] = {
		{ "", "not JSON" },
		{ "[1]", "not a JSON object" },
		{ "{\"ip\":\"10.0.0.1\",\"port\":1}", "id: missing" },
		{ "{\"id\":\"x\",\"ip\":\"10.0.0.256\",\"port\":1}", "not an IPv4" },
		{ "{\"id\":\"x\",\"ip\":\"10.0.0.1\",\"port\":0}", "port: 0 is outside" },
		{ "{\"id\":\"x\",\"ip\":\"10.0.0.1\",\"port\":\"1\"}", "port: not an integer" },
		{ "{\"id\":\"x\",\"ip\":\"10.0.0.1\",\"port\":1,\"partitions\":3}", "power of two" },
		{ "{\"id\":\"x\",\"ip\":\"10.0.0.1\",\"port\":65535,\"partitions\":2}", "passes 65535" },
		{ "{\"id\":\"x\",\"ip\":\"10.0.0.1\",\"port\":1,\"weight\":0}", "weight: 0" },
		{ "{\"id\":\"x\",\"ip\":\"10.0.0.1\",\"port\":1,\"state\":\"gone\"}", "state" },
		{ "{\"id\":\"a b\",\"ip\":\"10.0.0.1\",\"port\":1}", "id: 'a b'" },
		{ "{\"id\":\"x\",\"id\":\"y\",\"ip\":\"10.0.0.1\",\"port\":1}", "duplicate" },
		{ "{\"id\":\"x\\u0000y\",\"ip\":\"10.0.0.1\",\"port\":1}", "NUL" },
		{ "{\"id\":\"x\",\"ip\":\"10.0.0.1\",\"port\":1,\"admin\":\"10.0.0.1\"}",
		  "admin: '10.0.0.1' is not IPV4:PORT" },
		{ "{\"id\":\"x\",\"ip\":\"10.0.0.1\",\"port\":1,\"admin\":\"10.0.0.1:0\"}",
		  "admin: '10.0.0.1:0'" },
		{ "{\"id\":\"x\",\"ip\":\"10.0.0.1\",\"port\":1,\"admin\":7}", "admin: not a string" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(kite_cluster_member_from_json(bad[i].json, strlen(bad[i].json), &back,
							       err, sizeof(err)),
				 -EINVAL);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("%s: error '%s' lacks '%s'", bad[i].json, err, bad[i].why);
	}
}

static void
test_config_json(void **state)
{
	struct kite_cluster_config c = { 65536, 2, 1796150000 }, back;
	char buf[128], err[160];
	int n;

	(void)state;
	n = kite_cluster_config_to_json(&c, buf, sizeof(buf));
	assert_string_equal(buf, "{\"copies\":2,\"generation\":1796150000,\"vbuckets\":65536}");
	assert_int_equal(kite_cluster_config_from_json(buf, (size_t)n, &back, err, sizeof(err)), 0);
	assert_memory_equal(&c, &back, sizeof(c));
	const char *bad1 = "{\"vbuckets\":1000,\"generation\":1}";
	assert_int_equal(kite_cluster_config_from_json(bad1, strlen(bad1), &back, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "vbuckets: 1000 is not a power of two"));
	const char *bad2 = "{\"vbuckets\":1024}";
	assert_int_equal(kite_cluster_config_from_json(bad2, strlen(bad2), &back, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "generation: missing"));
}

static void
test_static_file(void **state)
{
	static struct kite_cluster_static st;
	char err[160];
	const char *good = "# three nodes\n"
			   "epoch = 7\n"
			   "vbuckets = 4096   # small\n"
			   "copies=2\n"
			   "\n"
			   "member n1 198.18.0.11:11211\n"
			   "member n2 198.18.0.12:11211 partitions=8 weight=200 zone=b\r\n"
			   "  member\tn3 198.18.0.13:12000 zone=c admin=198.19.0.13:11280";

	(void)state;
	assert_int_equal(kite_cluster_static_parse(good, strlen(good), &st, err, sizeof(err)), 0);
	assert_int_equal(st.epoch, 7);
	assert_int_equal(st.config.vbuckets, 4096);
	assert_int_equal(st.config.copies, 2);
	assert_int_equal(st.n_members, 3);
	assert_string_equal(st.members[1].id, "n2");
	assert_int_equal(st.members[1].ip, 0xc612000c);
	assert_int_equal(st.members[1].partitions, 8);
	assert_int_equal(st.members[1].weight, 200);
	assert_string_equal(st.members[1].zone, "b");
	assert_int_equal(st.members[2].base_port, 12000);
	assert_int_equal(st.members[0].partitions, 4);
	assert_int_equal(st.members[0].admin_port, 0);
	assert_int_equal(st.members[2].admin_ip, 0xc613000d);
	assert_int_equal(st.members[2].admin_port, 11280);

	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "member a 1.2.3.4:1\n", "no 'epoch = N'" },
		{ "epoch = 1\n", "no 'member'" },
		{ "epoch = 0\nmember a 1.2.3.4:1\n", "line 1: epoch" },
		{ "epoch = 1\nvbuckets = 1000\nmember a 1.2.3.4:1\n", "vbuckets: 1000" },
		{ "epoch = 1\nmember a 1.2.3.4\n", "line 2: '1.2.3.4' is not IP:PORT" },
		{ "epoch = 1\nmember a 1.2.3:1\n", "not an IPv4" },
		{ "epoch = 1\nmember a 1.2.3.4:70000\n", "port '70000'" },
		{ "epoch = 1\nmember a 1.2.3.4:1 weight=0\n", "weight '0'" },
		{ "epoch = 1\nmember a 1.2.3.4:1 partitions=6\n", "partitions '6'" },
		{ "epoch = 1\nmember a 1.2.3.4:1 colour=red\n", "unknown field 'colour'" },
		{ "epoch = 1\nmember a 1.2.3.4:1 admin=1.2.3.4\n", "admin '1.2.3.4' is not IPV4:PORT" },
		{ "epoch = 1\nmember a 1.2.3.4:1 admin=1.2.3.4:99999\n", "admin '1.2.3.4:99999'" },
		{ "epoch = 1\nmember a 1.2.3.4:1\nmember a 1.2.3.5:1\n", "member 'a' twice" },
		{ "epoch = 1\nnodes = 3\n", "unknown key 'nodes'" },
		{ "epoch = 1\nhello\n", "line 2: expected" },
		{ "epoch = 1\nvbuckets = 1024\nmember a 1.2.3.4:1 partitions=2048\n",
		  "do not divide" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(kite_cluster_static_parse(bad[i].text, strlen(bad[i].text), &st, err,
							   sizeof(err)),
				 -EINVAL);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("%s: error '%s' lacks '%s'", bad[i].text, err, bad[i].why);
	}
	/* A NUL inside a line is refused, not cut. */
	const char nul[] = "epoch = 1\nmember a\0 1.2.3.4:1\n";
	assert_int_equal(kite_cluster_static_parse(nul, sizeof(nul) - 1, &st, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "NUL"));
}

static void
test_msg(void **state)
{
	static struct kite_cluster_msg msg;
	struct kite_cluster_member mb[5];
	struct kite_cluster_map m, back;
	uint8_t buf[KITE_CLUSTER_MSG_MAX];
	int n;

	(void)state;
	members(mb, 5, 21);
	snprintf(mb[1].zone, sizeof(mb[1].zone), "zone-b");
	mb[2].state = KITE_CLUSTER_LEAVING;
	mb[3].ip = 0xc612000d;
	assert_int_equal(kite_cluster_map_build(&m, mb, 5, 4096, 2, 0x123456789aULL), 0);
	m.replicas = 1;
	n = kite_cluster_msg_encode(&m, buf, sizeof(buf));
	assert_true(n > 20);
	assert_int_equal(buf[0], KITE_CLUSTER_MSG_VERSION);
	assert_int_equal(kite_cluster_msg_decode(buf, (size_t)n, &msg), 0);
	assert_int_equal(msg.epoch, 0x123456789aULL);
	assert_int_equal(msg.vbuckets, 4096);
	assert_int_equal(msg.copies, 2);
	assert_int_equal(msg.replicas, 1);
	assert_int_equal(msg.n_members, 5);
	/* The client's map is the node's map. */
	assert_int_equal(kite_cluster_map_build(&back, msg.members, msg.n_members, msg.vbuckets,
						msg.copies, msg.epoch), 0);
	assert_memory_equal(m.nodes, back.nodes, 4096 * 2);
	assert_memory_equal(m.members, back.members, sizeof(mb));
	kite_cluster_map_free(&back);

	/* Every truncation, and trailing bytes, are refused. */
	for (int cut = 0; cut < n; cut++)
		assert_int_equal(kite_cluster_msg_decode(buf, (size_t)cut, &msg), -EINVAL);
	buf[n] = 0;
	assert_int_equal(kite_cluster_msg_decode(buf, (size_t)n + 1, &msg), -EINVAL);
	buf[0] = 2;
	assert_int_equal(kite_cluster_msg_decode(buf, (size_t)n, &msg), -EINVAL);
	buf[0] = KITE_CLUSTER_MSG_VERSION;
	buf[1] = 0; /* copies */
	assert_int_equal(kite_cluster_msg_decode(buf, (size_t)n, &msg), -EINVAL);
	buf[1] = 2;
	buf[16] = 2; /* replicas: not below copies */
	assert_int_equal(kite_cluster_msg_decode(buf, (size_t)n, &msg), -EINVAL);
	buf[16] = 1;
	assert_int_equal(kite_cluster_msg_decode(buf, (size_t)n, &msg), 0);
	assert_int_equal(kite_cluster_msg_encode(&m, buf, 30), -ENOSPC);
	kite_cluster_map_free(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_chain),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_member_json),
		cmocka_unit_test(test_config_json),
		cmocka_unit_test(test_static_file),
		cmocka_unit_test(test_msg),
		cmocka_unit_test(test_joining),
		cmocka_unit_test(test_pinned),
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_zones),
		cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_balance),
		cmocka_unit_test(test_movement),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
