/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: any bytes as a member record, a configuration record
 * (both JSON from etcd) and a static members file. Each parser either
 * refuses with a message or gives a record that passes the checks and
 * survives a round trip through its encoder; an accepted static file
 * builds a map; a decoded CLUSTER_MAP reply builds a map that encodes
 * back to the same members.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kite_cluster.h"
#include "kite_cluster_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kite_cluster_static st;
	struct kite_cluster_member mb, back;
	struct kite_cluster_config c, cback;
	char err[256], buf[512];
	int n;

	err[0] = '\0';
	if (kite_cluster_member_from_json((const char *)data, size, &mb, err, sizeof(err)) == 0) {
		if (kite_cluster_member_check(&mb) != 0)
			abort();
		n = kite_cluster_member_to_json(&mb, buf, sizeof(buf));
		if (n <= 0 || kite_cluster_member_from_json(buf, (size_t)n, &back, err,
							    sizeof(err)) != 0 ||
		    memcmp(&mb, &back, sizeof(mb)) != 0)
			abort();
	} else if (err[0] == '\0') {
		abort();
	}
	err[0] = '\0';
	if (kite_cluster_config_from_json((const char *)data, size, &c, err, sizeof(err)) == 0) {
		n = kite_cluster_config_to_json(&c, buf, sizeof(buf));
		if (n <= 0 || kite_cluster_config_from_json(buf, (size_t)n, &cback, err,
							    sizeof(err)) != 0 ||
		    memcmp(&c, &cback, sizeof(c)) != 0)
			abort();
	} else if (err[0] == '\0') {
		abort();
	}
	/* A CLUSTER_MAP reply, as libkite receives it. */
	static struct kite_cluster_msg msg;
	if (kite_cluster_msg_decode(data, size, &msg) == 0 && msg.vbuckets <= 4096) {
		struct kite_cluster_map m;
		static uint8_t wire[KITE_CLUSTER_MSG_MAX];
		static struct kite_cluster_msg again;

		if (kite_cluster_map_build(&m, msg.members, msg.n_members, msg.vbuckets, msg.copies,
					   msg.epoch) == 0) {
			n = kite_cluster_msg_encode(&m, wire, sizeof(wire));
			if (n <= 0 || kite_cluster_msg_decode(wire, (size_t)n, &again) != 0 ||
			    again.n_members != m.n_members || again.epoch != msg.epoch ||
			    memcmp(again.members, m.members, sizeof(m.members[0]) * m.n_members) != 0)
				abort();
			kite_cluster_map_free(&m);
		}
	}
	err[0] = '\0';
	if (kite_cluster_static_parse((const char *)data, size, &st, err, sizeof(err)) == 0) {
		struct kite_cluster_map m;

		/* Small maps only: the fuzzer's time is for the parser. */
		if (st.config.vbuckets <= 4096 &&
		    kite_cluster_map_build(&m, st.members, st.n_members, st.config.vbuckets,
					   st.config.copies, st.epoch) == 0) {
			for (uint32_t v = 0; v < m.vbuckets; v++)
				if (kite_cluster_owner(&m, v) >= m.n_members)
					abort();
			kite_cluster_map_free(&m);
		}
	} else if (err[0] == '\0') {
		abort();
	}
	return 0;
}
