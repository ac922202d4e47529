/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef KITE_CONF_H
#define KITE_CONF_H

/**
 * @file
 * Typed option tables: each program declares its options once (key, type,
 * field, default, range, help) and this module parses values into the
 * fields, applies defaults and names types, with one set of rules and
 * messages for kited's config and kite-bench's flags. No DPDK.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Value types. */
enum kite_conf_type {
	KITE_CONF_STR,  /**< char[len] */
	KITE_CONF_U32,  /**< uint32_t, decimal (or 0x hex) */
	KITE_CONF_U64,  /**< uint64_t, decimal (or 0x hex) */
	KITE_CONF_SIZE, /**< uint64_t bytes with an optional K/M/G/T (KiB, MB...) suffix */
	KITE_CONF_NUM,  /**< double */
	KITE_CONF_IPV4, /**< uint32_t, host order, from dotted quad */
	KITE_CONF_BOOL, /**< bool: 1/0, true/false, yes/no, on/off */
};

/** One option of a table. */
struct kite_conf_opt {
	const char *key;
	enum kite_conf_type type;
	size_t off; /**< offset of the field in the options struct */
	size_t len; /**< size of the field (STR: the buffer) */
	const char *def;
	double min; /**< numeric types: inclusive range */
	double max;
	const char *help;
};

/** The option named key, or NULL. */
const struct kite_conf_opt *kite_conf_find(const struct kite_conf_opt *t, size_t n,
					   const char *key);

/**
 * Parse value into o's field of obj. Messages start with prefix and the
 * key ("--workers: ..."). @return 0, or -EINVAL with the field unchanged.
 */
int kite_conf_set(const struct kite_conf_opt *o, void *obj, const char *value,
		  const char *prefix, char *err, size_t errlen);

/**
 * Write o's value in obj as text into buf (the form kite_conf_set reads
 * back: decimal, dotted quad, true/false, %.17g for numbers).
 */
void kite_conf_format(const struct kite_conf_opt *o, const void *obj, char *buf, size_t len);

/** Zero obj (size bytes) and apply every default of the table. */
void kite_conf_defaults(const struct kite_conf_opt *t, size_t n, void *obj, size_t size);

/** Parse a boolean. @return 0 or -EINVAL. */
int kite_conf_parse_bool(const char *v, bool *out);

/**
 * The position of value in a comma-separated list of choices
 * ("auto,flow,rss,handoff"). @return 0.., or -1 when it is none of them.
 */
int kite_conf_choice(const char *choices, const char *value);

/**
 * A set of choices as bits: "a,c" from "a,b,c" is 0b101; "none" and "" are
 * 0. No spaces, no empty or unknown element, no "none" among others.
 * @return the bits, or -1.
 */
long kite_conf_flags(const char *choices, const char *list);

/** "string", "integer", "bytes", "number", "IPv4" or "boolean". */
const char *kite_conf_type_name(enum kite_conf_type t);

#endif /* KITE_CONF_H */
