// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The in-memory key index (an open-addressing hash table) and the parser of
 * .idx files, the append-only logs it is loaded from. The idx layout is
 * drawn in wc-internal.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/compiler.h"
#include "wc-internal.h"

/* ------------------------------------------------------------ hash table */

void wc_index_fini(struct wc_index *idx)
{
	free(idx->ents);
	idx->ents = NULL;
	idx->cap = idx->nr = 0;
}

void wc_index_reset(struct wc_index *idx)
{
	if (idx->ents)
		memset(idx->ents, 0, idx->cap * sizeof(*idx->ents));
	idx->nr = 0;
}

/* Keys are uniformly distributed hashes: the low bits are the bucket.
 * Keep in sync with wc_index_prefetch(). */
static inline size_t bucket_of(const struct wc_key *key, size_t cap)
{
	return (size_t)(key->lo ^ (key->hi >> 7)) & (cap - 1);
}

static int index_grow(struct wc_index *idx)
{
	size_t ncap = idx->cap ? idx->cap * 2 : 1024;
	struct wc_ient *n;

	if (ncap > SIZE_MAX / sizeof(*n))
		return -ENOMEM;
	n = calloc(ncap, sizeof(*n));
	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < idx->cap; i++) {
		const struct wc_ient *e = &idx->ents[i];
		size_t b;

		if (!e->pack)
			continue;
		for (b = bucket_of(&e->key, ncap); n[b].pack; b = (b + 1) & (ncap - 1))
			;
		n[b] = *e;
	}
	free(idx->ents);
	idx->ents = n;
	idx->cap = ncap;
	return 0;
}

int wc_index_put(struct wc_index *idx, const struct wc_key *key, uint32_t pack, uint32_t page)
{
	size_t b;

	/* Load factor at most 5/8. */
	if ((idx->nr + 1) * 8 > idx->cap * 5) {
		int r = index_grow(idx);

		if (r < 0)
			return r;
	}
	for (b = bucket_of(key, idx->cap); idx->ents[b].pack; b = (b + 1) & (idx->cap - 1))
		if (wc_key_eq(&idx->ents[b].key, key))
			return 0;
	idx->ents[b].key = *key;
	idx->ents[b].pack = pack;
	idx->ents[b].page = page;
	idx->nr++;
	return 1;
}

const struct wc_ient *wc_index_get(const struct wc_index *idx, const struct wc_key *key)
{
	if (!idx->cap)
		return NULL;
	for (size_t b = bucket_of(key, idx->cap); idx->ents[b].pack; b = (b + 1) & (idx->cap - 1))
		if (wc_key_eq(&idx->ents[b].key, key))
			return &idx->ents[b];
	return NULL;
}

struct wc_ient *wc_index_lookup(struct wc_index *idx, const struct wc_key *key)
{
	return (struct wc_ient *)wc_index_get(idx, key);
}

/* ------------------------------------------------------------ idx format */

static uint64_t hdr_check(const struct wc_idx_hdr *hdr)
{
	return XXH3_64bits(hdr, offsetof(struct wc_idx_hdr, check));
}

static uint64_t rec_check(const struct wc_idx_rec *rec, uint32_t pack_id)
{
	return XXH3_64bits_withSeed(rec, offsetof(struct wc_idx_rec, check), pack_id);
}

void wc_idx_hdr_init(struct wc_idx_hdr *hdr, uint32_t pack_id)
{
	memset(hdr, 0, sizeof(*hdr));
	memcpy(hdr->magic, WC_IDX_MAGIC, sizeof(hdr->magic));
	hdr->version = WC_IDX_VERSION;
	hdr->rec_size = WC_IDX_REC_SIZE;
	hdr->pack_id = pack_id;
	hdr->check = hdr_check(hdr);
}

void wc_idx_rec_init(struct wc_idx_rec *rec, uint32_t pack_id, const struct wc_key *key,
		     uint32_t page)
{
	rec->key_lo = key->lo;
	rec->key_hi = key->hi;
	rec->page = page;
	rec->reserved = 0;
	rec->check = rec_check(rec, pack_id);
}

int wc_idx_parse(const uint8_t *buf, size_t len, uint64_t off, uint32_t pack_id,
		 uint64_t max_page, wc_idx_rec_cb cb, void *userdata,
		 struct wc_idx_parse_result *ret)
{
	struct wc_idx_parse_result res = { .consumed = off };
	bool pending_bad = false;
	size_t pos = 0;

	if (off == 0) {
		struct wc_idx_hdr hdr;

		if (len < WC_IDX_HDR_SIZE) {
			/* A header not yet (completely) written: nothing to read. */
			*ret = res;
			return 0;
		}
		memcpy(&hdr, buf, sizeof(hdr));
		if (memcmp(hdr.magic, WC_IDX_MAGIC, sizeof(hdr.magic)) != 0 ||
		    hdr.version != WC_IDX_VERSION || hdr.rec_size != WC_IDX_REC_SIZE ||
		    hdr.check != hdr_check(&hdr) || (pack_id && hdr.pack_id != pack_id)) {
			res.damaged = true;
			*ret = res;
			return -EBADMSG;
		}
		pack_id = hdr.pack_id;
		pos = WC_IDX_HDR_SIZE;
		res.consumed = WC_IDX_HDR_SIZE;
	} else if ((off - WC_IDX_HDR_SIZE) % WC_IDX_REC_SIZE) {
		*ret = res;
		return -EINVAL;
	}

	for (; len - pos >= WC_IDX_REC_SIZE; pos += WC_IDX_REC_SIZE) {
		struct wc_idx_rec rec;
		struct wc_key key;
		int r;

		memcpy(&rec, buf + pos, sizeof(rec));
		if (rec.check != rec_check(&rec, pack_id) || rec.reserved != 0 ||
		    rec.page >= max_page) {
			/* Invalid: torn tail if nothing valid follows. */
			pending_bad = true;
			continue;
		}
		if (pending_bad)
			res.damaged = true;
		pending_bad = false;
		if (res.nr_valid >= WC_IDX_MAX_RECORDS) {
			res.damaged = true;
			break;
		}
		key.lo = rec.key_lo;
		key.hi = rec.key_hi;
		if (cb) {
			r = cb(userdata, &key, rec.page);
			if (r < 0) {
				*ret = res;
				return r;
			}
		}
		res.nr_valid++;
		/* @buf starts at file offset @off (pos includes the header). */
		res.consumed = off + pos + WC_IDX_REC_SIZE;
	}
	*ret = res;
	return 0;
}
