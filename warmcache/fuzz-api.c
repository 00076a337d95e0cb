// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <string.h>

#include "common/err.h"
#include "fuzz-api.h"
#include "wc-internal.h"

int wc_fuzz_manifest(const uint8_t *data, size_t len)
{
	struct wc_snapshot *snap;
	const void *blob;
	size_t blen;
	uint64_t sum = 0;
	int r;

	r = wc_snapshot_parse(data, len, &snap);
	if (r < 0)
		return r;
	/* Touch everything a consumer would: a bound not checked by the
	 * parser shows up here under ASan. */
	sum += wc_snapshot_created_ns(snap) + strlen(wc_snapshot_id(snap));
	for (size_t a = 0; a < wc_snapshot_nr_areas(snap); a++) {
		const struct wc_area *area = wc_snapshot_area(snap, a);
		uint64_t k = 0;

		sum += strlen(area->name) + area->start + area->prot + area->flags;
		for (uint64_t i = 0; i < area->nr_pages; i++)
			if (area->kinds[i] == WC_PAGE_DATA)
				sum += area->keys[k++].lo;
		if (k != area->nr_data)
			r = -EFAULT;	/* would be a parser bug */
	}
	if (wc_snapshot_blob(snap, "engine.image", &blob, &blen) == 0 && blen)
		sum += ((const uint8_t *)blob)[blen - 1];
	if (wc_snapshot_label(snap, "x"))
		sum++;
	for (size_t i = 0; i < wc_snapshot_nr_labels(snap); i++) {
		const char *k, *v;

		if (wc_snapshot_label_at(snap, i, &k, &v) == 0)
			sum += strlen(k) + strlen(v);
	}
	wc_snapshot_close(snap);
	__asm__ volatile("" : : "r"(sum));
	return r;
}

struct fuzz_idx {
	struct wc_index index;
};

static int fuzz_insert(void *userdata, const struct wc_key *key, uint32_t page)
{
	struct fuzz_idx *f = userdata;
	int r = wc_index_put(&f->index, key, 1, page);

	return r < 0 ? r : 0;
}

int wc_fuzz_index(const uint8_t *data, size_t len)
{
	struct fuzz_idx f = {};
	struct wc_idx_parse_result res, step;
	uint64_t off;
	int r;

	/* Whole file, as at open. */
	r = wc_idx_parse(data, len, 0, 0, WC_PACK_MAX_PAGES, fuzz_insert, &f, &res);
	if (r < 0)
		goto out;
	/* Then as a reader refreshing after each append: from the header,
	 * records arriving in uneven pieces. */
	wc_index_reset(&f.index);
	r = wc_idx_parse(data, len < WC_IDX_HDR_SIZE ? len : WC_IDX_HDR_SIZE, 0, 0,
			 WC_PACK_MAX_PAGES, fuzz_insert, &f, &step);
	if (r < 0)
		goto out;
	off = step.consumed;
	for (size_t cut = off, n = 1; off >= WC_IDX_HDR_SIZE && cut < len; n = n * 3 + 1) {
		uint32_t pack_id;

		cut = cut + n > len ? len : cut + n;
		memcpy(&pack_id, data + 16, sizeof(pack_id));
		r = wc_idx_parse(data + off, cut - off, off, pack_id, WC_PACK_MAX_PAGES, fuzz_insert,
				 &f, &step);
		if (r < 0)
			goto out;
		off = step.consumed;
	}
	r = res.damaged ? -EBADMSG : 0;
out:
	wc_index_fini(&f.index);
	return r;
}
