/* SPDX-License-Identifier: BSD-3-Clause */

/*
 * One cache partition: an rte_hash index over a circular item log, with a
 * CLOCK hand at the log's tail (design in kite_store.h).
 *
 * Invariants the code relies on:
 *  - the index holds exactly the items with ITEM_LIVE set, each under its
 *    64-bit key hash, with the item's address as data;
 *  - records between tail and head are contiguous, 8-byte aligned and never
 *    cross the region's end (a filler pads to the end instead);
 *  - the free gap always runs from head to tail, so it directly precedes
 *    the item under the hand, which is what makes moving that item to the
 *    head a single memmove even when source and destination overlap.
 *
 * Only kite_store_create() allocates or logs; every other function is
 * data-path code.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <rte_byteorder.h>
#include <sodium.h>

#include <rte_common.h>
#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_prefetch.h>

#include "kite_store.h"
#include "kite_store_priv.h"

/* DPDK's build passes the logtype name per library; ours may not yet. */
#ifndef RTE_LOG_DEFAULT_LOGTYPE
#define RTE_LOG_DEFAULT_LOGTYPE kite.store
#endif
RTE_LOG_REGISTER_DEFAULT(kite_store_logtype, NOTICE);
#define STORE_LOG(level, fmt, ...)                                                                 \
	rte_log(RTE_LOG_##level, kite_store_logtype, "kite_store: " fmt "\n", ##__VA_ARGS__)

/* Smallest accepted region; below this a single large key could not fit. */
#define STORE_MIN_MEM 4096u
/* Default index size: one entry per this many bytes of log. */
#define STORE_BYTES_PER_ENTRY 128u
#define STORE_MIN_ENTRIES     1024u
/* rte_hash's own structures besides its tables, in DPDK memory. */
#define STORE_INDEX_FIXED 2048u
/* rte_hash refuses fewer entries than one bucket holds. */
#define STORE_INDEX_MIN 8u
/* max_item_size 0 means memcached's default item size limit (-I 1m). */
#define STORE_DEFAULT_MAX_ITEM (1024u * 1024u)
/*
 * rte_hash names its free-slot ring "HT_<name>" and a ring name holds at
 * most RTE_RING_NAMESIZE - 1 = 28 characters: longer names would be
 * silently truncated and could collide.
 */
#define STORE_NAME_MAX 25
/* Longest decimal of a uint64_t. */
#define DEC_MAX 20

/*
 * The index key already is a strong keyed hash, so rte_hash's signature is
 * a cheap fold of it. All index calls pass it precomputed (the *_with_hash
 * variants), which skips an indirect call per operation; rte_hash itself
 * only calls this from its hash-less API, kept consistent for that case.
 */
static inline hash_sig_t
fold(uint64_t h)
{
	return (hash_sig_t)(h ^ (h >> 32));
}

static uint32_t
fold_hash_func(const void *key, uint32_t key_len, uint32_t init_val)
{
	uint64_t h;

	RTE_SET_USED(key_len);
	memcpy(&h, key, sizeof(h));
	return fold(h) ^ init_val;
}

static inline uint8_t *
item_key(struct item *it)
{
	return it->data;
}

static inline uint8_t *
item_value(struct item *it)
{
	return it->data + it->keylen;
}

/*
 * Keys of up to 64 bytes (the usual ones) are compared inline, 8 bytes at
 * a time: a call to libc's memcmp cost as much as the compare itself on a
 * 16-byte key (its share of a batched SET's profile was 22 %).
 */
static inline bool
bytes_eq(const uint8_t *a, const uint8_t *b, uint16_t n)
{
	uint64_t x, y;

	if (n > 64)
		return memcmp(a, b, n) == 0;
	for (; n >= 8; a += 8, b += 8, n -= 8) {
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		if (x != y)
			return false;
	}
	for (; n > 0; n--)
		if (*a++ != *b++)
			return false;
	return true;
}

static inline bool
key_eq(const struct item *it, const void *key, uint16_t keylen)
{
	return it->keylen == keylen && bytes_eq(it->data, key, keylen);
}

static void siphash_iv(const uint8_t seed[16], uint64_t iv[4]);

/* rte_hash's compare of two index keys (8-byte hashes): one load each, no memcmp call. */
static int
index_key_cmp(const void *a, const void *b, size_t len __rte_unused)
{
	uint64_t x, y;

	memcpy(&x, a, sizeof(x));
	memcpy(&y, b, sizeof(y));
	return x != y;
}

static inline bool
is_expired(const struct kite_store *s, const struct item *it)
{
	return it->exptime != 0 && it->exptime <= s->now;
}

static inline bool
is_flushed(const struct kite_store *s, const struct item *it)
{
	return it->epoch != s->epoch;
}

static inline uint64_t
next_cas(struct kite_store *s)
{
	return (++s->cas_seq << 16) | s->id;
}

/*
 * The CAS of a new item: the one given (a replica keeps its owner's), and
 * the partition's own later ones stay larger; else the partition's next.
 */
static inline uint64_t
take_cas(struct kite_store *s, uint64_t given)
{
	if (given == 0)
		return next_cas(s);
	if ((given >> 16) > s->cas_seq)
		s->cas_seq = given >> 16;
	return given;
}

static inline void
fill_view(struct item *it, struct kite_store_view *v)
{
	v->value = item_value(it);
	v->vallen = it->vallen;
	v->flags = it->flags;
	v->cas = it->cas;
	v->exptime = it->exptime;
	v->marks = it->iflags & (ITEM_STALE | ITEM_WIN | ITEM_FETCHED); /* the same bits */
}

static inline void
advance_tail(struct kite_store *s, uint32_t total)
{
	s->tail += total;
	s->tail_off += total;
	if (s->tail_off == s->size)
		s->tail_off = 0;
}

static inline void
advance_head(struct kite_store *s, uint64_t total)
{
	s->head += total;
	s->head_off += total;
	if (s->head_off == s->size)
		s->head_off = 0;
}

static inline struct item *
index_get(const struct kite_store *s, uint64_t hash)
{
	void *data;

	if (rte_hash_lookup_with_hash_data(s->index, &hash, fold(hash), &data) < 0)
		return NULL;
	return data;
}

/* A tenant's bytes: items of the current flush epoch only (a flush zeroed the counts). */
static inline void
tenant_add(struct kite_store *s, const struct item *it, int64_t bytes)
{
	if (it->tenant != 0 && it->epoch == s->epoch)
		s->tenant_bytes[it->tenant] += (uint64_t)bytes;
}

/* Take a live item out of the index; its record becomes garbage in the log. */
static void
unlink_item(struct kite_store *s, struct item *it)
{
	rte_hash_del_key_with_hash(s->index, &it->hash, fold(it->hash));
	it->iflags &= ~ITEM_LIVE;
	s->st.curr_items--;
	s->st.bytes -= it->total;
	tenant_add(s, it, -(int64_t)it->total);
}

/* Unlink an item found expired or flushed by a lookup (memcached's do_item_get). */
static void
unlink_stale(struct kite_store *s, struct item *it)
{
	if (is_flushed(s, it)) {
		s->st.get_flushed++;
	} else {
		s->st.get_expired++;
		if (!(it->iflags & ITEM_FETCHED))
			s->st.expired_unfetched++;
	}
	unlink_item(s, it);
}

/*
 * Look a key up with lazy expiry. Returns the live, matching item or NULL.
 * *slot receives what the index holds for the hash afterwards: the item,
 * another key's item sharing the hash, or NULL; a store replaces it.
 */
static struct item *
find(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash, struct item **slot)
{
	struct item *it = index_get(s, hash);

	*slot = it;
	if (it == NULL || !key_eq(it, key, keylen))
		return NULL;
	if (is_flushed(s, it) || is_expired(s, it)) {
		unlink_stale(s, it);
		*slot = NULL;
		return NULL;
	}
	return it;
}

/* Pad the log from the head to the region's end; the head wraps to 0. */
static void
write_filler(struct kite_store *s)
{
	struct item *f = (struct item *)(s->log + s->head_off);
	uint64_t len = s->size - s->head_off;

	/* Only the first 8 bytes: a filler may be that short. */
	f->total = (uint32_t)len;
	f->keylen = 0;
	f->iflags = ITEM_FILLER;
	f->tenant = 0;
	advance_head(s, len);
}

/*
 * Move the item under the hand to the head. The free gap runs from head to
 * tail, i.e. it ends exactly where this item starts, so the destination
 * lies in gap + item and memmove copes with any overlap. Only when the gap
 * wraps past the region's end can the item not fit before the end; the
 * gap's piece up to the end then becomes a filler and the item goes to 0.
 * Returns the new address.
 */
static struct item *
move_to_head(struct kite_store *s, struct item *it)
{
	uint32_t total = it->total;
	struct item *n;

	if (s->head_off + total > s->size)
		write_filler(s);
	n = (struct item *)(s->log + s->head_off);
	if (n != it)
		memmove(n, it, total);
	advance_head(s, total);
	advance_tail(s, total);
	/* The key is present, so this only rewrites its data: no -ENOSPC. */
	if (rte_hash_add_key_with_hash_data(s->index, &n->hash, fold(n->hash), n) < 0) {
		rte_hash_del_key_with_hash(s->index, &n->hash, fold(n->hash));
		n->iflags &= ~ITEM_LIVE;
		s->st.curr_items--;
		s->st.bytes -= total;
		tenant_add(s, n, -(int64_t)total);
		s->st.evictions++;
		return NULL;
	}
	return n;
}

/*
 * One step of the CLOCK hand at the tail. *moved counts bytes given a
 * second chance during this allocation: once it reaches the log's size the
 * hand has been all the way round and from then on only evicts, which
 * bounds an allocation to two passes. keep/pin: see make_room().
 * @return 0, or -ENOMEM when only the pinned item is left to move and the
 * budget is spent.
 */
static int
hand_step(struct kite_store *s, uint64_t *moved, struct item **keep, bool pin)
{
	struct item *it = (struct item *)(s->log + s->tail_off);
	bool kept = keep != NULL && it == *keep;

	if (!(it->iflags & ITEM_LIVE)) {
		advance_tail(s, it->total);
		return 0;
	}
	if (kept && pin) {
		if (*moved >= s->size)
			return -ENOMEM;
		*moved += it->total;
		*keep = move_to_head(s, it);
		return *keep == NULL ? -ENOMEM : 0;
	}
	if (is_flushed(s, it) || is_expired(s, it)) {
		if (!is_flushed(s, it) && !(it->iflags & ITEM_FETCHED))
			s->st.expired_unfetched++;
		s->st.reclaimed++;
	} else if ((it->iflags & ITEM_REF) && *moved < s->size) {
		it->iflags &= ~ITEM_REF;
		*moved += it->total;
		s->st.reinserted++;
		it = move_to_head(s, it);
		if (kept)
			*keep = it;
		return 0;
	} else {
		s->st.evictions++;
		if (!(it->iflags & ITEM_FETCHED))
			s->st.evicted_unfetched++;
	}
	if (kept)
		*keep = NULL;
	unlink_item(s, it);
	advance_tail(s, it->total);
	return 0;
}

/*
 * Make need bytes free and contiguous at the head. keep, if not NULL,
 * points to an item the caller still uses: if the hand moves it the
 * pointer follows; if it is dropped the pointer becomes NULL. With pin the
 * hand never drops it (APPEND still has to read the old value); the caller
 * has checked that both fit in the region.
 */
static int
make_room(struct kite_store *s, uint64_t need, struct item **keep, bool pin)
{
	uint64_t moved = 0;

	for (;;) {
		uint64_t used = s->head - s->tail;
		uint64_t contig;

		/* An empty log may restart anywhere: use all of it. */
		if (used == 0)
			s->head_off = s->tail_off = 0;
		contig = s->size - s->head_off;
		if (need <= contig) {
			if (s->size - used >= need)
				return 0;
		} else if (s->size - used >= contig + need) {
			/* The gap wraps and its part from 0 is large enough. */
			write_filler(s);
			continue;
		}
		if (used == 0 || hand_step(s, &moved, keep, pin) < 0)
			return -ENOMEM;
	}
}

/*
 * Reserve a record at the head and fill the fixed part of its header.
 * The item is not linked yet (iflags 0), so the hand treats it as garbage
 * if it is abandoned. Returns NULL when it cannot fit.
 */
static struct item *
alloc_item(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash, uint32_t vallen,
	   struct item **keep, bool pin)
{
	uint64_t total = kite_store__item_size(keylen, vallen);
	struct item *it;

	if (total > s->size)
		return NULL;
	if (pin && total + (*keep)->total > s->size)
		return NULL;
	if (make_room(s, total, keep, pin) < 0)
		return NULL;
	it = (struct item *)(s->log + s->head_off);
	advance_head(s, total);
	it->total = (uint32_t)total;
	it->keylen = keylen;
	it->iflags = 0;
	it->tenant = 0;
	it->vallen = vallen;
	it->epoch = s->epoch;
	it->hash = hash;
	if (keylen != 0)
		memcpy(item_key(it), key, keylen);
	return it;
}

/*
 * Evict the oldest live item for index space, never going past the new,
 * not yet linked item nit. @return false when nothing is left to evict.
 */
static bool
evict_for_index(struct kite_store *s, const struct item *nit)
{
	for (;;) {
		struct item *it = (struct item *)(s->log + s->tail_off);

		if (it == nit)
			return false;
		if (it->iflags & ITEM_LIVE) {
			if (is_flushed(s, it) || is_expired(s, it)) {
				if (!is_flushed(s, it) && !(it->iflags & ITEM_FETCHED))
					s->st.expired_unfetched++;
				s->st.reclaimed++;
			} else {
				s->st.evictions++;
				s->st.index_full++;
				if (!(it->iflags & ITEM_FETCHED))
					s->st.evicted_unfetched++;
			}
			unlink_item(s, it);
			advance_tail(s, it->total);
			return true;
		}
		advance_tail(s, it->total);
	}
}

/*
 * Link a freshly written item, replacing slot (the index's current item
 * for the hash, or NULL). Gives the item its CAS (take_cas()).
 */
static enum kite_store_result
link_item(struct kite_store *s, struct item *it, struct item *slot, uint64_t cas)
{
	int ret;

	it->cas = take_cas(s, cas);
	ret = rte_hash_add_key_with_hash_data(s->index, &it->hash, fold(it->hash), it);
	/* Cuckoo displacement failed: free index slots from the tail. */
	while (ret == -ENOSPC && evict_for_index(s, it))
		ret = rte_hash_add_key_with_hash_data(s->index, &it->hash, fold(it->hash), it);
	if (ret < 0) {
		s->st.store_no_memory++;
		return KITE_STORE_NO_MEMORY;
	}
	it->iflags = ITEM_LIVE;
	if (slot != NULL) {
		/* Its index entry now points at it; only the log record dies. */
		slot->iflags &= ~ITEM_LIVE;
		s->st.curr_items--;
		s->st.bytes -= slot->total;
		tenant_add(s, slot, -(int64_t)slot->total);
	}
	s->st.curr_items++;
	s->st.bytes += it->total;
	tenant_add(s, it, it->total);
	s->st.total_items++;
	return KITE_STORE_OK;
}

/* Decimal of v into buf (DEC_MAX bytes, not terminated); returns its length. */
static uint32_t
u64_dec(char *buf, uint64_t v)
{
	char tmp[DEC_MAX];
	uint32_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

/* C-locale isspace(), as strtoull() and memcached's xisspace() see it. */
static inline bool
is_space(uint8_t c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/*
 * Parse a stored value the way memcached 1.6's safe_strtoull() parses the
 * item data (which memcached follows with "\r\n"): optional leading
 * whitespace, an optional sign, at least one decimal digit, no overflow,
 * then the end of the value, a whitespace or a NUL byte. Like strtoull a
 * '-' negates modulo 2^64, and like safe_strtoull only results that are
 * negative as int64 are rejected, so "-0" parses as 0.
 */
static bool
parse_u64(const uint8_t *p, uint32_t len, uint64_t *out)
{
	const uint8_t *end = p + len, *digits;
	bool neg = false;
	uint64_t v = 0;

	while (p < end && is_space(*p))
		p++;
	if (p < end && (*p == '+' || *p == '-')) {
		neg = *p == '-';
		p++;
	}
	digits = p;
	while (p < end && *p >= '0' && *p <= '9') {
		uint64_t d = (uint64_t)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		p++;
	}
	if (p == digits)
		return false;
	if (p < end && !is_space(*p) && *p != '\0')
		return false;
	if (neg) {
		v = -v;
		if ((int64_t)v < 0)
			return false;
	}
	*out = v;
	return true;
}

/* The index capacity a partition gets: as asked, or one entry per 128 bytes of log. */
static uint64_t
index_entries(const struct kite_store_params *p)
{
	if (p->index_entries != 0)
		return p->index_entries;
	return RTE_MIN(RTE_MAX(p->mem_bytes / STORE_BYTES_PER_ENTRY, (uint64_t)STORE_MIN_ENTRIES),
		       (uint64_t)RTE_HASH_ENTRIES_MAX);
}

uint64_t
kite_store_footprint(const struct kite_store_params *p)
{
	if (p == NULL)
		return 0;
	const uint64_t n = index_entries(p);

	/*
	 * rte_hash (22.11) with 8-byte keys and no lcore cache: 64-byte
	 * buckets of 8 slots for the capacity rounded up to a power of two, a
	 * 16-byte key-store entry per slot and one more, a ring of 4-byte slot
	 * numbers for a power of two above the capacity, and its own headers.
	 * tests/unit/test_store.c holds this to what is really allocated.
	 */
	return p->mem_bytes + rte_align64pow2(n) * 8 + (n + 1) * 16 + rte_align64pow2(n + 1) * 4 +
	       STORE_INDEX_FIXED + sizeof(struct kite_store) + RTE_CACHE_LINE_SIZE;
}

struct kite_store *
kite_store_create(const struct kite_store_params *p)
{
	struct rte_hash_parameters hp = { 0 };
	struct kite_store *s = NULL;
	uint64_t entries;

	if (p == NULL || p->name == NULL || p->name[0] == '\0') {
		rte_errno = EINVAL;
		return NULL;
	}
	if (strlen(p->name) > STORE_NAME_MAX) {
		rte_errno = ENAMETOOLONG;
		return NULL;
	}
	if (p->mem_bytes < STORE_MIN_MEM) {
		STORE_LOG(ERR, "%s: mem_bytes %" PRIu64 " below %u", p->name, p->mem_bytes,
			  STORE_MIN_MEM);
		rte_errno = EINVAL;
		return NULL;
	}
	/* An item's length must fit the 32-bit header field. */
	if (p->max_item_size > UINT32_MAX - sizeof(struct item) - UINT16_MAX - ITEM_ALIGN) {
		STORE_LOG(ERR, "%s: max_item_size %u too large", p->name, p->max_item_size);
		rte_errno = EINVAL;
		return NULL;
	}
	if (p->index_entries != 0 &&
	    (p->index_entries < STORE_INDEX_MIN || p->index_entries > RTE_HASH_ENTRIES_MAX)) {
		STORE_LOG(ERR, "%s: index_entries %u out of range", p->name, p->index_entries);
		rte_errno = EINVAL;
		return NULL;
	}
	if (sodium_init() < 0) {
		rte_errno = ENOTSUP;
		return NULL;
	}

	s = rte_zmalloc_socket("kite_store", sizeof(*s), RTE_CACHE_LINE_SIZE, p->socket_id);
	if (s == NULL) {
		rte_errno = ENOMEM;
		goto fail;
	}
	s->log = rte_zmalloc_socket("kite_store_log", p->mem_bytes, RTE_CACHE_LINE_SIZE,
				    p->socket_id);
	if (s->log == NULL) {
		STORE_LOG(ERR, "%s: cannot allocate %" PRIu64 " bytes on socket %d", p->name,
			  p->mem_bytes, p->socket_id);
		rte_errno = ENOMEM;
		goto fail;
	}

	entries = index_entries(p);
	hp.name = p->name;
	hp.entries = (uint32_t)entries;
	hp.key_len = sizeof(uint64_t);
	hp.hash_func = fold_hash_func;
	hp.hash_func_init_val = 0;
	hp.socket_id = p->socket_id;
	/* One owning lcore: no concurrency flags, no extendable buckets. */
	hp.extra_flag = 0;
	s->index = rte_hash_create(&hp);
	if (s->index == NULL) {
		/* rte_errno from rte_hash_create (EEXIST for a duplicate name). */
		int err = rte_errno;

		STORE_LOG(ERR, "%s: rte_hash_create(%" PRIu64 " entries): %s", p->name, entries,
			  rte_strerror(err));
		rte_errno = err;
		goto fail;
	}
	/* kited is one process: a compare function's address is valid wherever the index is used. */
	rte_hash_set_cmp_func(s->index, index_key_cmp);

	s->size = RTE_ALIGN_FLOOR(p->mem_bytes, (uint64_t)ITEM_ALIGN);
	s->max_item_size = p->max_item_size != 0 ? p->max_item_size : STORE_DEFAULT_MAX_ITEM;
	s->id = p->id;
	s->cas_seq = p->cas_seed & ((UINT64_C(1) << 48) - 1);
	s->no_prefetch = p->no_prefetch;
	s->now = (uint32_t)time(NULL);
	if (p->seed != NULL)
		memcpy(s->seed, p->seed, sizeof(s->seed));
	else
		randombytes_buf(s->seed, sizeof(s->seed));
	siphash_iv(s->seed, s->sip_iv);
	s->st.limit_maxbytes = p->mem_bytes;
	return s;

fail:
	if (s != NULL) {
		rte_free(s->log);
		rte_free(s);
	}
	return NULL;
}

void
kite_store_free(struct kite_store *s)
{
	if (s == NULL)
		return;
	rte_hash_free(s->index);
	rte_free(s->log);
	sodium_memzero(s->seed, sizeof(s->seed));
	rte_free(s);
}

/* Every current item invisible from now: a new epoch, and no tenant holds anything of it. */
static void
flush_now(struct kite_store *s)
{
	s->epoch++;
	s->flush_time = 0;
	memset(s->tenant_bytes, 0, sizeof(s->tenant_bytes));
}

void
kite_store_set_time(struct kite_store *s, uint32_t now)
{
	s->now = now;
	/*
	 * A delayed flush takes effect at the first tick at or after its
	 * time: everything stored until now is flushed by starting a new
	 * epoch, which is exact where comparing store times would also hide
	 * items stored during the flush's own second.
	 */
	if (s->flush_time != 0 && now >= s->flush_time)
		flush_now(s);
}

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static inline void
sipround(uint64_t *v0, uint64_t *v1, uint64_t *v2, uint64_t *v3)
{
	*v0 += *v1;
	*v1 = ROTL64(*v1, 13);
	*v1 ^= *v0;
	*v0 = ROTL64(*v0, 32);
	*v2 += *v3;
	*v3 = ROTL64(*v3, 16);
	*v3 ^= *v2;
	*v0 += *v3;
	*v3 = ROTL64(*v3, 21);
	*v3 ^= *v0;
	*v2 += *v1;
	*v1 = ROTL64(*v1, 17);
	*v1 ^= *v2;
	*v2 = ROTL64(*v2, 32);
}

static inline uint64_t
siphash(const uint8_t seed[16], const void *key, size_t len, int c, int d)
{
	const uint8_t *p = key;
	uint64_t iv[4], m, b = (uint64_t)len << 56;
	uint64_t v0, v1, v2, v3;
	size_t i;

	siphash_iv(seed, iv);
	v0 = iv[0];
	v1 = iv[1];
	v2 = iv[2];
	v3 = iv[3];
	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&m, p + i, 8);
		m = rte_le_to_cpu_64(m);
		v3 ^= m;
		for (int r = 0; r < c; r++)
			sipround(&v0, &v1, &v2, &v3);
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= b;
	for (int r = 0; r < c; r++)
		sipround(&v0, &v1, &v2, &v3);
	v0 ^= b;
	v2 ^= 0xff;
	for (int r = 0; r < d; r++)
		sipround(&v0, &v1, &v2, &v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t
kite_store__siphash(const uint8_t seed[16], const void *key, size_t len, int c, int d)
{
	return siphash(seed, key, len, c, d);
}

/* SipHash's state after the seed (its first four lines). */
static void
siphash_iv(const uint8_t seed[16], uint64_t iv[4])
{
	uint64_t k0, k1;

	memcpy(&k0, seed, 8);
	memcpy(&k1, seed + 8, 8);
	k0 = rte_le_to_cpu_64(k0);
	k1 = rte_le_to_cpu_64(k1);
	iv[0] = k0 ^ UINT64_C(0x736f6d6570736575);
	iv[1] = k1 ^ UINT64_C(0x646f72616e646f6d);
	iv[2] = k0 ^ UINT64_C(0x6c7967656e657261);
	iv[3] = k1 ^ UINT64_C(0x7465646279746573);
}

/*
 * SipHash-1-3 (as Rust's and Python's hash tables use): still keyed, so
 * flooding needs the secret seed, at about half the rounds of libsodium's
 * SipHash-2-4, which was 5% of a GET in kited's profile. This is siphash()
 * with its rounds fixed and unrolled, the seed's state computed once
 * (kite_store.sip_iv) and the tail read without a loop: the general form
 * kept its round counts in loops. tests/unit/test_store.c checks it
 * against siphash(1, 3) at every length, and siphash(2, 4) against
 * libsodium's SipHash-2-4.
 */
uint64_t
kite_store_hash(const struct kite_store *s, const void *key, uint16_t keylen)
{
	const uint8_t *p = key;
	const uint8_t *end = p + (keylen & ~7u);
	uint64_t v0 = s->sip_iv[0], v1 = s->sip_iv[1], v2 = s->sip_iv[2], v3 = s->sip_iv[3];
	uint64_t m, b = (uint64_t)keylen << 56;

	for (; p != end; p += 8) {
		memcpy(&m, p, 8);
		m = rte_le_to_cpu_64(m);
		v3 ^= m;
		sipround(&v0, &v1, &v2, &v3);
		v0 ^= m;
	}
	switch (keylen & 7) {
	case 7:
		b |= (uint64_t)p[6] << 48;
		/* fall through */
	case 6:
		b |= (uint64_t)p[5] << 40;
		/* fall through */
	case 5:
		b |= (uint64_t)p[4] << 32;
		/* fall through */
	case 4:
		b |= (uint64_t)p[3] << 24;
		/* fall through */
	case 3:
		b |= (uint64_t)p[2] << 16;
		/* fall through */
	case 2:
		b |= (uint64_t)p[1] << 8;
		/* fall through */
	case 1:
		b |= (uint64_t)p[0];
		break;
	default:
		break;
	}
	v3 ^= b;
	sipround(&v0, &v1, &v2, &v3);
	v0 ^= b;
	v2 ^= 0xff;
	sipround(&v0, &v1, &v2, &v3);
	sipround(&v0, &v1, &v2, &v3);
	sipround(&v0, &v1, &v2, &v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* A read: the view (the fetched bit as it was), and with bump the CLOCK and fetched bits set. */
static inline enum kite_store_result
read_item(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
	  struct kite_store_view *v, bool bump)
{
	struct item *slot;
	struct item *it = find(s, key, keylen, hash, &slot);

	if (it == NULL) {
		s->st.get_misses++;
		return KITE_STORE_NOT_FOUND;
	}
	fill_view(it, v);
	/* Do not dirty the line when the bits are already set. */
	if (bump && (it->iflags & (ITEM_REF | ITEM_FETCHED)) != (ITEM_REF | ITEM_FETCHED))
		it->iflags |= ITEM_REF | ITEM_FETCHED;
	s->st.get_hits++;
	return KITE_STORE_OK;
}

enum kite_store_result
kite_store_get(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
	       struct kite_store_view *v)
{
	return read_item(s, key, keylen, hash, v, true);
}

enum kite_store_result
kite_store_peek(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
		struct kite_store_view *v)
{
	return read_item(s, key, keylen, hash, v, false);
}

/*
 * One rte_hash bulk lookup of up to RTE_HASH_LOOKUP_BULK_MAX index keys:
 * data[i] is their item where bit i of the result is set. Then the lines
 * of each item found that the caller reads first: the header and the key
 * (items are 8-byte aligned, so the key often begins or ends on the
 * header's next line) and the line after the key's last, where a value of
 * up to 64 bytes ends (the reply copies it; its length is not known
 * before the header arrives).
 */
static uint64_t
index_bulk(const struct kite_store *s, const uint64_t *hashes, const uint16_t *keylens,
	   unsigned int m, void **data)
{
	const void *kp[RTE_HASH_LOOKUP_BULK_MAX];
	hash_sig_t sig[RTE_HASH_LOOKUP_BULK_MAX];
	uint64_t hits = 0;

	for (unsigned int i = 0; i < m; i++) {
		kp[i] = &hashes[i];
		sig[i] = fold(hashes[i]);
	}
	if (rte_hash_lookup_with_hash_bulk_data(s->index, kp, sig, m, &hits, data) < 0)
		return 0;
	for (unsigned int i = 0; i < m && !s->no_prefetch; i++)
		if (hits & (1ULL << i)) {
			const uint8_t *kend = (const uint8_t *)data[i] + sizeof(struct item) +
					      keylens[i] - 1;

			rte_prefetch0(data[i]);
			rte_prefetch0(kend);
			rte_prefetch0(kend + RTE_CACHE_LINE_SIZE);
		}
	return hits;
}

void
kite_store_prefetch_bulk(const struct kite_store *s, const uint64_t *hashes,
			 const uint16_t *keylens, unsigned int n)
{
	void *data[RTE_HASH_LOOKUP_BULK_MAX];

	if (s->no_prefetch)
		return;
	while (n > 0) {
		unsigned int m = RTE_MIN(n, (unsigned int)RTE_HASH_LOOKUP_BULK_MAX);

		index_bulk(s, hashes, keylens, m, data);
		hashes += m;
		keylens += m;
		n -= m;
	}
}

void
kite_store_get_bulk(struct kite_store *s, const uint8_t *const *keys, const uint16_t *keylens,
		    const uint64_t *hashes, unsigned int n, struct kite_store_view *views,
		    uint8_t *results)
{
	void *data[RTE_HASH_LOOKUP_BULK_MAX];

	/* More than one lookup's worth is served in chunks rather than refused. */
	while (n > 0) {
		unsigned int m = RTE_MIN(n, (unsigned int)RTE_HASH_LOOKUP_BULK_MAX);
		uint64_t hits = index_bulk(s, hashes, keylens, m, data);
		unsigned int i;

		for (i = 0; i < m; i++) {
			struct item *it = (hits & (1ULL << i)) ? data[i] : NULL;

			/*
			 * A duplicate key earlier in the batch may have unlinked
			 * this item as expired: hence the LIVE test.
			 */
			if (it == NULL || !(it->iflags & ITEM_LIVE) ||
			    !key_eq(it, keys[i], keylens[i])) {
				s->st.get_misses++;
				results[i] = KITE_STORE_NOT_FOUND;
				continue;
			}
			if (is_flushed(s, it) || is_expired(s, it)) {
				unlink_stale(s, it);
				s->st.get_misses++;
				results[i] = KITE_STORE_NOT_FOUND;
				continue;
			}
			fill_view(it, &views[i]); /* the fetched bit as it was */
			if ((it->iflags & (ITEM_REF | ITEM_FETCHED)) != (ITEM_REF | ITEM_FETCHED))
				it->iflags |= ITEM_REF | ITEM_FETCHED;
			s->st.get_hits++;
			results[i] = KITE_STORE_OK;
		}
		keys += m;
		keylens += m;
		hashes += m;
		views += m;
		results += m;
		n -= m;
	}
}

enum kite_store_result
kite_store_touch(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
		 uint32_t exptime, bool fetch, struct kite_store_view *v)
{
	struct item *slot;
	struct item *it = find(s, key, keylen, hash, &slot);

	if (it == NULL) {
		s->st.touch_misses++;
		return KITE_STORE_NOT_FOUND;
	}
	it->exptime = exptime;
	if (fetch)
		it->iflags |= ITEM_REF | ITEM_FETCHED;
	s->st.touch_hits++;
	fill_view(it, v);
	return KITE_STORE_OK;
}

/*
 * APPEND/PREPEND without a copy in the log: a value whose record's padding
 * takes the new bytes, or the record at the log head (the item written
 * last: the second and later of a run of APPENDs to one key), grows where
 * it is. Otherwise the whole value is written again at the head, and the
 * old record is garbage until the hand passes; a value built with n
 * APPENDs in a row then costs its size once or twice in the log, not n
 * times. Returns false when the item cannot grow where it is (*oldp may
 * have moved: the hand follows it).
 */
static bool
grow_in_place(struct kite_store *s, struct item **oldp, uint32_t newlen)
{
	struct item *old = *oldp;
	const uint64_t total = kite_store__item_size(old->keylen, newlen);
	const uint64_t grow = total - old->total;

	if (grow == 0)
		return true;
	if ((uint8_t *)old + old->total != s->log + s->head_off || grow > s->size - s->head_off ||
	    total > s->size)
		return false;
	/* Free space right behind it, without a wrap (a filler would end the run). */
	if (make_room(s, grow, oldp, true) < 0)
		return false;
	old = *oldp;
	if (old == NULL || (uint8_t *)old + old->total != s->log + s->head_off ||
	    grow > s->size - s->head_off)
		return false; /* the hand moved something to the head meanwhile */
	advance_head(s, grow);
	old->total = (uint32_t)total;
	s->st.bytes += grow;
	tenant_add(s, old, (int64_t)grow);
	return true;
}

/* Would the writer's tenant go past its share, old (replaced, when its own) given back? */
static bool
over_share(struct kite_store *s, uint8_t tag, const struct item *old, uint16_t keylen,
	   uint32_t vallen)
{
	uint64_t have, freed = 0;

	if (tag == 0 || s->tenant_cap[tag] == 0)
		return false;
	have = s->tenant_bytes[tag];
	if (old != NULL && old->tenant == tag && old->epoch == s->epoch)
		freed = old->total;
	if (have - freed + kite_store__item_size(keylen, vallen) <= s->tenant_cap[tag])
		return false;
	s->st.over_share++;
	return true;
}

enum kite_store_result
kite_store_store(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
		 const struct kite_store_write *w, uint64_t *cas_out)
{
	struct item *slot, *old, *it;
	const enum kite_store_mode mode = w->mode;
	uint32_t oldlen = 0, newlen = w->vallen, flags = w->flags, exptime = w->exptime;
	uint8_t marks = 0; /* an invalidating store's: stale, and the old win token */
	bool pin = false;
	enum kite_store_result ret;

	if (w->vallen > s->max_item_size) {
		s->st.store_too_large++;
		ret = KITE_STORE_TOO_LARGE;
		goto fail_set;
	}
	old = find(s, key, keylen, hash, &slot);

	switch (mode) {
	case KITE_STORE_SET:
	case KITE_STORE_ADD:
	case KITE_STORE_REPLACE:
		/* memcached's binary protocol turns all three into CAS with a cas. */
		if (w->cas != 0) {
			if (old == NULL) {
				s->st.cas_misses++;
				return KITE_STORE_NOT_FOUND;
			}
			if (old->cas != w->cas) {
				/*
				 * meta ms I: a writer holding an older version still
				 * stores, but stale, keeping the item's expiry and win
				 * token: a late fill never looks fresh.
				 */
				if (!w->invalidate || w->cas > old->cas || mode == KITE_STORE_ADD) {
					s->st.cas_badval++;
					return KITE_STORE_EXISTS;
				}
				marks = ITEM_STALE | (old->iflags & ITEM_WIN);
				exptime = old->exptime;
			}
			s->st.cas_hits++;
		} else if (mode == KITE_STORE_ADD && old != NULL) {
			/* A failed ADD still counts as a use, as in memcached. */
			old->iflags |= ITEM_REF;
			return KITE_STORE_EXISTS;
		} else if (mode == KITE_STORE_REPLACE && old == NULL) {
			return KITE_STORE_NOT_FOUND;
		}
		break;
	case KITE_STORE_APPEND:
	case KITE_STORE_PREPEND:
		if (old == NULL)
			return KITE_STORE_NOT_STORED;
		if (w->cas != 0 && old->cas != w->cas)
			return KITE_STORE_EXISTS;
		/* memcached answers NOT_STORED (not E2BIG) when the sum is too large. */
		if ((uint64_t)old->vallen + w->vallen > s->max_item_size) {
			s->st.store_too_large++;
			return KITE_STORE_NOT_STORED;
		}
		oldlen = old->vallen;
		newlen = oldlen + w->vallen;
		flags = old->flags;
		exptime = old->exptime;
		if (over_share(s, w->tenant, old, keylen, newlen))
			return KITE_STORE_NO_MEMORY;
		if (grow_in_place(s, &old, newlen)) {
			uint8_t *v = item_value(old);

			if (mode == KITE_STORE_APPEND) {
				if (w->vallen != 0)
					memcpy(v + oldlen, w->value, w->vallen);
			} else if (w->vallen != 0) {
				memmove(v + w->vallen, v, oldlen);
				memcpy(v, w->value, w->vallen);
			}
			old->vallen = newlen;
			/* As a new record would be: a new CAS, no marks, not referenced yet. */
			old->cas = take_cas(s, w->set_cas);
			old->iflags = ITEM_LIVE;
			s->st.total_items++;
			s->st.appends_in_place++;
			*cas_out = old->cas;
			return KITE_STORE_OK;
		}
		if (old == NULL)
			return KITE_STORE_NOT_STORED; /* cannot happen: pinned */
		/* The old value is read after the allocation: keep it alive. */
		slot = old;
		pin = true;
		break;
	default:
		return KITE_STORE_INVALID;
	}

	if (!pin && over_share(s, w->tenant, old, keylen, newlen)) {
		ret = KITE_STORE_NO_MEMORY;
		goto fail_set;
	}
	it = alloc_item(s, key, keylen, hash, newlen, &slot, pin);
	if (it == NULL) {
		s->st.store_no_memory++;
		ret = KITE_STORE_NO_MEMORY;
		goto fail_set;
	}
	it->flags = flags;
	it->exptime = exptime;
	/* APPEND/PREPEND keep the item's tenant; a store gives it the writer's. */
	it->tenant = pin ? slot->tenant : w->tenant;
	if (mode == KITE_STORE_APPEND) {
		memcpy(item_value(it), item_value(slot), oldlen);
		if (w->vallen != 0)
			memcpy(item_value(it) + oldlen, w->value, w->vallen);
	} else if (mode == KITE_STORE_PREPEND) {
		if (w->vallen != 0)
			memcpy(item_value(it), w->value, w->vallen);
		memcpy(item_value(it) + w->vallen, item_value(slot), oldlen);
	} else if (w->vallen != 0) {
		memcpy(item_value(it), w->value, w->vallen);
	}
	ret = link_item(s, it, slot, w->set_cas);
	if (ret != KITE_STORE_OK)
		goto fail_set;
	it->iflags |= marks;
	*cas_out = it->cas;
	return KITE_STORE_OK;

fail_set:
	/*
	 * memcached drops the old value when a SET cannot be stored, so a
	 * client never reads data it tried to overwrite.
	 */
	if (mode == KITE_STORE_SET) {
		old = find(s, key, keylen, hash, &slot);
		if (old != NULL)
			unlink_item(s, old);
	}
	return ret;
}

/* The live item of a key, if its CAS is `cas` (any with 0): OK (*itp), NOT_FOUND or EXISTS. */
static enum kite_store_result
find_version(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash, uint64_t cas,
	     struct item **itp)
{
	struct item *slot;

	*itp = find(s, key, keylen, hash, &slot);
	if (*itp == NULL)
		return KITE_STORE_NOT_FOUND;
	if (cas != 0 && cas != (*itp)->cas)
		return KITE_STORE_EXISTS;
	return KITE_STORE_OK;
}

bool
kite_store_drop_older(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
		      uint64_t cas_max)
{
	struct item *it;

	if (find_version(s, key, keylen, hash, 0, &it) != KITE_STORE_OK || it->cas > cas_max)
		return false;
	unlink_item(s, it);
	return true;
}

uint64_t
kite_store_cas_mark(const struct kite_store *s)
{
	uint64_t seq = __atomic_load_n(&s->cas_seq, __ATOMIC_RELAXED);

	return seq == 0 ? 0 : seq << 16 | 0xffff;
}

enum kite_store_result
kite_store_delete(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
		  uint64_t cas)
{
	struct item *it;
	enum kite_store_result r = find_version(s, key, keylen, hash, cas, &it);

	if (r == KITE_STORE_NOT_FOUND)
		s->st.delete_misses++;
	if (r != KITE_STORE_OK)
		return r;
	unlink_item(s, it);
	s->st.delete_hits++;
	return KITE_STORE_OK;
}

enum kite_store_result
kite_store_delta(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
		 const struct kite_store_arith *a, uint64_t *value_out, uint64_t *cas_out)
{
	struct item *slot, *it;
	struct item *old = find(s, key, keylen, hash, &slot);
	char dec[DEC_MAX];
	uint32_t flags, len, exptime;
	uint64_t v;
	enum kite_store_result ret;

	if (old == NULL) {
		/* memcached creates even when a cas was given. */
		if (!a->create) {
			if (a->incr)
				s->st.incr_misses++;
			else
				s->st.decr_misses++;
			return KITE_STORE_NOT_FOUND;
		}
		v = a->initial;
		flags = 0;
		exptime = a->exptime;
	} else {
		if (a->cas != 0 && a->cas != old->cas)
			return KITE_STORE_EXISTS;
		if (!parse_u64(item_value(old), old->vallen, &v))
			return KITE_STORE_NON_NUMERIC;
		if (a->incr) {
			v += a->delta;
			s->st.incr_hits++;
		} else {
			v = a->delta > v ? 0 : v - a->delta;
			s->st.decr_hits++;
		}
		len = u64_dec(dec, v);
		if (len <= old->vallen) {
			/* Rewrite in place, space-padded to the old length, as memcached. */
			memcpy(item_value(old), dec, len);
			memset(item_value(old) + len, ' ', old->vallen - len);
			old->cas = next_cas(s);
			/*
			 * A new value: no longer stale, its win token back, not
			 * fetched yet (as the new item memcached makes when it
			 * cannot rewrite in place).
			 */
			old->iflags = (uint8_t)((old->iflags | ITEM_REF) &
						~(ITEM_STALE | ITEM_WIN | ITEM_FETCHED));
			*value_out = v;
			*cas_out = old->cas;
			return KITE_STORE_OK;
		}
		flags = old->flags;
		exptime = old->exptime;
	}

	len = u64_dec(dec, v);
	it = alloc_item(s, key, keylen, hash, len, &slot, false);
	if (it == NULL) {
		s->st.store_no_memory++;
		return KITE_STORE_NO_MEMORY;
	}
	it->flags = flags;
	it->exptime = exptime;
	it->tenant = old != NULL && slot != NULL ? slot->tenant : a->tenant;
	memcpy(item_value(it), dec, len);
	ret = link_item(s, it, slot, 0);
	if (ret != KITE_STORE_OK)
		return ret;
	*value_out = v;
	*cas_out = it->cas;
	return KITE_STORE_OK;
}

enum kite_store_result
kite_store_mark_stale(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
		      uint64_t cas, const uint32_t *exptime, uint64_t *cas_out)
{
	struct item *it;
	enum kite_store_result r = find_version(s, key, keylen, hash, cas, &it);

	if (r != KITE_STORE_OK)
		return r;
	/* A new version, stale, and its win token back in (the next reader wins it). */
	it->iflags = (uint8_t)((it->iflags | ITEM_STALE) & ~ITEM_WIN);
	it->cas = take_cas(s, 0);
	if (exptime != NULL)
		it->exptime = *exptime;
	if (cas_out != NULL)
		*cas_out = it->cas;
	return KITE_STORE_OK;
}

enum kite_store_result
kite_store_claim_win(struct kite_store *s, const void *key, uint16_t keylen, uint64_t hash,
		     bool fetch, struct kite_store_view *v)
{
	struct item *slot;
	struct item *it = find(s, key, keylen, hash, &slot);

	if (it == NULL)
		return KITE_STORE_NOT_FOUND;
	fill_view(it, v);
	if (fetch)
		it->iflags |= ITEM_REF | ITEM_FETCHED;
	if (it->iflags & ITEM_WIN)
		return KITE_STORE_EXISTS;
	it->iflags |= ITEM_WIN;
	return KITE_STORE_OK;
}

void
kite_store_flush(struct kite_store *s, uint32_t when)
{
	/* A new flush replaces a pending delayed one, as in memcached. */
	if (when == 0 || when <= s->now) {
		flush_now(s);
	} else {
		s->flush_time = when;
	}
}

/* The log offset of position pos, for tail <= pos <= head (records are contiguous from the tail).
 */
static inline uint64_t
pos_off(const struct kite_store *s, uint64_t pos)
{
	uint64_t off = s->tail_off + (pos - s->tail);

	return off >= s->size ? off - s->size : off;
}

void
kite_store_iter_begin(const struct kite_store *s, struct kite_store_cursor *c)
{
	c->pos = s->tail;
	c->end = s->head;
}

unsigned int
kite_store_iter_next(struct kite_store *s, struct kite_store_cursor *c, unsigned int max_records,
		     kite_store_iter_fn fn, void *arg)
{
	struct kite_store_item one;
	unsigned int visited = 0;

	/*
	 * The hand went past the cursor: what it skipped was released or
	 * moved to the head, so the walk resumes at the tail and runs on to
	 * the head of now, which covers every moved item.
	 */
	if (c->pos < s->tail) {
		c->pos = s->tail;
		c->end = s->head;
	}
	while (max_records-- > 0 && c->pos < c->end) {
		struct item *it = (struct item *)(s->log + pos_off(s, c->pos));

		c->pos += it->total;
		if (!(it->iflags & ITEM_LIVE) || is_flushed(s, it) || is_expired(s, it))
			continue;
		one.key = item_key(it);
		one.keylen = it->keylen;
		fill_view(it, &one.v);
		visited++;
		if (fn(arg, &one) != 0)
			break;
	}
	return visited;
}

const void *
kite_store_log_mem(const struct kite_store *s, size_t *len)
{
	*len = (size_t)s->size;
	return s->log;
}

void
kite_store_stats_get(const struct kite_store *s, struct kite_store_stats *st)
{
	*st = s->st;
}

#define STAT_NAME(field, name, help) name,
#define STAT_HELP(field, name, help) help,
const char *const kite_store_stats_names[] = { KITE_STORE_STATS(STAT_NAME) };
const char *const kite_store_stats_help[] = { KITE_STORE_STATS(STAT_HELP) };

static const char *const result_names[KITE_STORE_RESULT_MAX] = {
	[KITE_STORE_OK] = "ok",
	[KITE_STORE_NOT_FOUND] = "not_found",
	[KITE_STORE_EXISTS] = "exists",
	[KITE_STORE_NOT_STORED] = "not_stored",
	[KITE_STORE_TOO_LARGE] = "too_large",
	[KITE_STORE_NO_MEMORY] = "no_memory",
	[KITE_STORE_NON_NUMERIC] = "non_numeric",
	[KITE_STORE_INVALID] = "invalid",
};

const char *
kite_store_result_name(enum kite_store_result r)
{
	if ((unsigned int)r >= KITE_STORE_RESULT_MAX)
		return "unknown";
	return result_names[r];
}

uint64_t
kite_store__log_used(const struct kite_store *s)
{
	return s->head - s->tail;
}

int
kite_store__check(const struct kite_store *s)
{
	uint64_t pos = s->tail, off = s->tail_off, live = 0, bytes = 0;
	uint64_t tb[KITE_STORE_TENANT_TAGS] = { 0 };

	if (s->head - s->tail > s->size || s->head < s->tail)
		return -__LINE__;
	if (s->tail_off >= s->size || s->head_off >= s->size)
		return -__LINE__;
	if (s->tail_off % ITEM_ALIGN != 0 || s->head_off % ITEM_ALIGN != 0)
		return -__LINE__;
	while (pos != s->head) {
		const struct item *it = (const struct item *)(s->log + off);

		if (it->total < ITEM_ALIGN || it->total % ITEM_ALIGN != 0 ||
		    off + it->total > s->size || pos + it->total > s->head)
			return -__LINE__;
		if (it->iflags & ITEM_FILLER) {
			if (off + it->total != s->size)
				return -__LINE__;
		} else if (it->total != kite_store__item_size(it->keylen, it->vallen)) {
			return -__LINE__;
		} else if (it->iflags & ITEM_LIVE) {
			if (index_get(s, it->hash) != it)
				return -__LINE__;
			if (it->cas == 0 || (it->cas >> 16) > s->cas_seq)
				return -__LINE__;
			live++;
			bytes += it->total;
			if (it->tenant != 0 && it->epoch == s->epoch)
				tb[it->tenant] += it->total;
		}
		pos += it->total;
		off += it->total;
		if (off == s->size)
			off = 0;
	}
	if (off != s->head_off)
		return -__LINE__;
	if (live != s->st.curr_items || bytes != s->st.bytes)
		return -__LINE__;
	if ((uint64_t)rte_hash_count(s->index) != live)
		return -__LINE__;
	if (memcmp(tb, s->tenant_bytes, sizeof(tb)) != 0)
		return -__LINE__;
	return 0;
}

void
kite_store_set_share(struct kite_store *s, uint8_t tag, uint64_t bytes)
{
	if (s != NULL && tag != 0)
		s->tenant_cap[tag] = bytes;
}

uint64_t
kite_store_tenant_bytes(const struct kite_store *s, uint8_t tag)
{
	return s != NULL ? s->tenant_bytes[tag] : 0;
}
