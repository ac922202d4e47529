/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The workload's read-only description: parsed from the options once, then
 * shared by every generator. Nothing here runs per request.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kite_proto.h"

#include "bench.h"
#include "kite_guard.h"
#include "workload.h"

#define VAL_MIN 8 /* version and checksum */
#define VAL_MAX (1u << 20)

static const char *const op_names[OP_MAX] = { "get", "set", "delete", "incr" };

const char *
op_name(enum bench_op op)
{
	return (unsigned int)op < OP_MAX ? op_names[op] : "?";
}

static int
parse_u32(const char *s, char **end, uint32_t *out)
{
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, end, 10);
	if (errno != 0 || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* "32", "uniform:16-1024" or "mix:32@90,1024@10". */
static int
parse_values(struct workload *w, const char *s, char *err, size_t errlen)
{
	char *end;
	uint64_t wsum = 0, acc = 0;
	uint32_t weights[VAL_MIX_MAX];

	if (strncmp(s, "uniform:", 8) == 0) {
		w->vdist = VAL_UNIFORM;
		if (parse_u32(s + 8, &end, &w->vmin) != 0 || *end != '-' ||
		    parse_u32(end + 1, &end, &w->vmax) != 0 || *end != '\0' || w->vmin > w->vmax)
			goto bad;
	} else if (strncmp(s, "mix:", 4) == 0) {
		const char *p = s + 4;

		w->vdist = VAL_MIX;
		w->nmix = 0;
		w->vmin = UINT32_MAX;
		w->vmax = 0;
		while (*p != '\0') {
			uint32_t size, weight;

			if (w->nmix == VAL_MIX_MAX || parse_u32(p, &end, &size) != 0 ||
			    *end != '@' || parse_u32(end + 1, &end, &weight) != 0 || weight == 0)
				goto bad;
			w->mix_size[w->nmix] = size;
			weights[w->nmix++] = weight;
			wsum += weight;
			w->vmin = size < w->vmin ? size : w->vmin;
			w->vmax = size > w->vmax ? size : w->vmax;
			if (*end == ',')
				end++;
			else if (*end != '\0')
				goto bad;
			p = end;
		}
		if (w->nmix == 0)
			goto bad;
		for (unsigned int i = 0; i < w->nmix; i++) {
			acc += weights[i];
			w->mix_cum[i] = (uint32_t)((acc * UINT32_MAX) / wsum);
		}
		w->mix_cum[w->nmix - 1] = UINT32_MAX;
	} else {
		w->vdist = VAL_FIXED;
		if (parse_u32(s, &end, &w->vmin) != 0 || *end != '\0')
			goto bad;
		w->vmax = w->vmin;
	}
	if (w->vmin < VAL_MIN || w->vmax > VAL_MAX) {
		snprintf(err, errlen,
			 "--value-size: sizes must be in %u..%u (values carry an "
			 "8-byte version and checksum)",
			 VAL_MIN, VAL_MAX);
		return -EINVAL;
	}
	return 0;
bad:
	snprintf(err, errlen, "--value-size: '%s' is not N, uniform:MIN-MAX or mix:SIZE@WEIGHT,...",
		 s);
	return -EINVAL;
}

/* "get:90,set:10". */
static int
parse_mix(struct workload *w, const char *s, char *err, size_t errlen)
{
	uint32_t weight[OP_MAX] = { 0 };
	uint64_t sum = 0, acc = 0;
	const char *p = s;

	while (*p != '\0') {
		const char *colon = strchr(p, ':');
		char *end;
		unsigned int op;

		if (colon == NULL)
			goto bad;
		for (op = 0; op < OP_MAX; op++)
			if (strlen(op_names[op]) == (size_t)(colon - p) &&
			    strncmp(p, op_names[op], (size_t)(colon - p)) == 0)
				break;
		if (op == OP_MAX || parse_u32(colon + 1, &end, &weight[op]) != 0)
			goto bad;
		sum += weight[op];
		if (*end == ',')
			end++;
		else if (*end != '\0')
			goto bad;
		p = end;
	}
	if (sum == 0)
		goto bad;
	for (unsigned int op = 0; op < OP_MAX; op++) {
		acc += weight[op];
		w->op_used[op] = weight[op] > 0;
		w->op_cum[op] = (uint32_t)((acc * UINT32_MAX) / sum);
	}
	/* A draw of UINT32_MAX must land on the last used operation. */
	for (int op = OP_MAX - 1; op >= 0; op--) {
		if (w->op_used[op]) {
			w->op_cum[op] = UINT32_MAX;
			break;
		}
	}
	return 0;
bad:
	snprintf(err, errlen, "--mix: '%s' is not OP:WEIGHT,... with OP in get, set, delete, incr",
		 s);
	return -EINVAL;
}

static uint64_t
gcd(uint64_t a, uint64_t b)
{
	while (b != 0) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/*
 * Rejection-inversion sampling for Zipf (W. Hörmann, G. Derflinger, "Rejection-
 * inversion to generate variates from monotone discrete distributions", 1996):
 * O(1) set-up for any key count and any exponent > 0, including 1.
 */
static int
zipf_init(struct workload *w)
{
	const double n = (double)w->keys;

	w->z_hx1 = zipf_hint(w->theta, 1.5) - 1.0;
	w->z_hn = zipf_hint(w->theta, n + 0.5);
	w->z_s = 2.0 - zipf_hint_inv(w->theta, zipf_hint(w->theta, 2.5) - zipf_h(w->theta, 2.0));
	/*
	 * Scatter ranks over the key space so the hottest keys do not all
	 * share a partition: rank r -> r * perm_mul mod keys, a bijection when
	 * perm_mul and keys are coprime.
	 */
	w->perm_mul = UINT64_C(2654435761) % w->keys;
	if (w->perm_mul == 0)
		w->perm_mul = 1;
	while (gcd(w->perm_mul, w->keys) != 1)
		w->perm_mul++;
	return 0;
}

/* Decimal digits of v. */
static uint32_t
digits(uint32_t v)
{
	uint32_t d = 1;

	while (v >= 10) {
		v /= 10;
		d++;
	}
	return d;
}

static uint32_t
req_bytes(const struct workload *w, enum bench_op op, uint32_t vlen)
{
	if (w->text) {
		/* "get K\r\n", "delete K\r\n", "set K FFFFFFFFFF 0 N\r\n<value>\r\n" (flags: 10 digits). */
		switch (op) {
		case OP_SET:
			return 4 + w->key_size + 1 + 10 + 3 + digits(vlen) + 2 + vlen + 2;
		case OP_DELETE:
			return 7 + w->key_size + 2;
		default:
			return 4 + w->key_size + 2;
		}
	}
	switch (op) {
	case OP_SET:
		return KITE_BIN_HDR_LEN + 8 + w->key_size + vlen;
	case OP_INCR:
		return KITE_BIN_HDR_LEN + 20 + w->key_size;
	default:
		return KITE_BIN_HDR_LEN + w->key_size;
	}
}

uint32_t
workload_req_bytes(const struct workload *w, enum bench_op op, uint32_t vlen)
{
	return req_bytes(w, op, vlen);
}

int
workload_init(struct workload *w, const struct bench_options *o, uint64_t tsc_hz, char *err,
	      size_t errlen)
{
	uint32_t max_res = 0;
	uint32_t budget;

	memset(w, 0, sizeof(*w));
	w->keys = o->keys;
	w->key_size = o->key_size;
	w->batch = o->batch;
	w->partitions = o->partitions;
	w->base_port = (uint16_t)o->udp_port;
	w->echo = o->echo;
	w->tsc_hz = tsc_hz;
	if (strcmp(o->protocol, "text") == 0) {
		w->text = true;
	} else if (strcmp(o->protocol, "binary") != 0) {
		snprintf(err, errlen, "--protocol: '%s' is not binary or text", o->protocol);
		return -EINVAL;
	}
	if (w->text && (o->echo || strcmp(o->mode, "libkite") == 0)) {
		snprintf(err, errlen, "--protocol text is for the dpdk, socket and pcap modes");
		return -EINVAL;
	}
	w->hdr = KITE_FRAME_HDR_LEN;
	if (strcmp(o->guard, "cookie") == 0 || strcmp(o->guard, "mac") == 0) {
		w->guard = o->guard[0] == 'c' ? 1 : 2;
		w->hdr += KITE_GUARD_ENV_HEAD + KITE_GUARD_COOKIE_LEN +
			  (w->guard == 2 ? KITE_GUARD_AUTH_LEN : 0);
		if (w->guard == 2) {
			uint8_t secret[KITE_GUARD_SECRET_LEN];

			if (o->tenant == 0 ||
			    kite_guard_secret_parse(o->tenant_secret, strlen(o->tenant_secret),
						    secret) != 0) {
				snprintf(err, errlen, "--guard mac needs --tenant ID and --tenant-secret "
					 "(64 hex digits)");
				return -EINVAL;
			}
			w->tenant = o->tenant;
			kite_guard_mac_key(w->mac_key, secret);
		}
	} else if (strcmp(o->guard, "off") != 0) {
		snprintf(err, errlen, "--guard: '%s' is not off, cookie or mac", o->guard);
		return -EINVAL;
	}
	/* libkite speaks the envelope itself; echo replies are the requests. */
	if (w->guard != 0 && (o->echo || strcmp(o->mode, "libkite") == 0)) {
		snprintf(err, errlen, "--guard is for the dpdk, socket and pcap modes (libkite "
			 "sends its own envelope; echo has no node)");
		return -EINVAL;
	}
	w->timeout_tsc = (uint64_t)o->timeout_ms * tsc_hz / 1000;

	if ((uint64_t)o->udp_port + o->partitions - 1 > 65535) {
		snprintf(err, errlen, "--udp-port + --partitions runs past port 65535");
		return -EINVAL;
	}
	if (o->partitions > BENCH_MAX_DESTS) {
		snprintf(err, errlen, "--partitions above %u", BENCH_MAX_DESTS);
		return -EINVAL;
	}
	/* One destination per partition port of --server; --cluster replaces them (route.c). */
	w->ndest = o->partitions;
	for (uint32_t p = 0; p < o->partitions; p++) {
		w->dest[p].ip = o->server;
		w->dest[p].port = (uint16_t)(o->udp_port + p);
	}
	/* The key index is written in hex after a one-letter prefix. */
	if (w->keys > (UINT64_C(1) << (4 * (w->key_size - 1 > 15 ? 15 : w->key_size - 1)))) {
		snprintf(err, errlen, "--key-size %u cannot number %" PRIu64 " keys", w->key_size,
			 w->keys);
		return -EINVAL;
	}
	if (parse_values(w, o->value_size, err, errlen) != 0)
		return -EINVAL;
	if (parse_mix(w, o->mix, err, errlen) != 0)
		return -EINVAL;
	if (strcmp(o->dist, "uniform") == 0) {
		w->zipf = false;
	} else if (strncmp(o->dist, "zipf:", 5) == 0) {
		char *end;
		w->theta = strtod(o->dist + 5, &end);
		if (*end != '\0' || !(w->theta > 0.0) || w->theta > 10.0) {
			snprintf(err, errlen, "--dist: zipf exponent must be in (0, 10]");
			return -EINVAL;
		}
		w->zipf = true;
		zipf_init(w);
	} else {
		snprintf(err, errlen, "--dist: '%s' is not uniform or zipf:THETA", o->dist);
		return -EINVAL;
	}

	/* The largest request and response the mix can produce. */
	for (unsigned int op = 0; op < OP_MAX; op++) {
		uint32_t r;
		/* Preload SETs whatever the mix says. */
		if (!w->op_used[op] && op != OP_SET)
			continue;
		r = req_bytes(w, (enum bench_op)op, w->vmax);
		if (r > w->max_req)
			w->max_req = r;
	}
	if (w->text && w->op_used[OP_INCR]) {
		snprintf(err, errlen, "--protocol text has no incr in its mix");
		return -EINVAL;
	}
	if (w->echo) {
		max_res = w->max_req;
	} else if (w->text) {
		/* "VALUE K FFFFFFFFFF N\r\n<value>\r\nEND\r\n", or an error line. */
		max_res = 6 + w->key_size + 1 + 10 + 1 + 10 + 2 + w->vmax + 2 + 5;
		if (max_res < 64)
			max_res = 64;
	} else {
		/* GET hit: flags + value; errors carry a short message; INCR 8 bytes. */
		max_res = KITE_BIN_HDR_LEN + 4 + w->vmax;
		if (max_res < KITE_BIN_HDR_LEN + 64)
			max_res = KITE_BIN_HDR_LEN + 64;
	}
	budget = o->mtu - 20 - 8;
	w->req_budget = budget;
	w->max_dgram = w->max_req + w->hdr > budget ? w->max_req + w->hdr : budget;
	if (w->max_dgram > BENCH_UDP_MAX) {
		snprintf(err, errlen, "a SET of a %u-byte value does not fit one UDP datagram",
			 w->vmax);
		return -EINVAL;
	}
	w->reply_stride = budget - KITE_FRAME_HDR_LEN;
	w->reply_cap = w->batch * max_res;
	/*
	 * A response that fits a datagram never straddles two, so a message
	 * may waste almost half of each datagram: one per response at worst,
	 * plus the datagrams a straddling response fills.
	 */
	w->reply_dgrams = w->batch + (w->reply_cap + w->reply_stride - 1) / w->reply_stride + 1;
	if (w->reply_dgrams > KITE_MAX_REPLY_DGRAMS)
		w->reply_dgrams = KITE_MAX_REPLY_DGRAMS;
	return 0;
}

void
workload_describe(const struct workload *w, const struct bench_options *o, FILE *f)
{
	fprintf(f,
		"workload: %" PRIu64 " keys of %u B, values %s B, mix %s, %s, %u req/datagram, "
		"%s, %s\n",
		w->keys, w->key_size, o->value_size, o->mix, o->dist, w->batch,
		strcmp(o->mode, "libkite") == 0 ? "routed by libkite"
		: w->cluster	       ? "routed by the cluster map"
		: w->partitions > 1 ? "port per partition"
				    : "single port",
		o->rate > 0 ? "open loop" : "closed loop");
}
