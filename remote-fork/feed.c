// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Replay a stored snapshot into a sink ("push a snapshot"): areas in order,
 * their pages in chunks of RF_BATCH_MAX_PAGES read through a wc_source
 * (verified against their keys by the source), then blobs and labels.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h"
#include "common/err.h"
#include "rfork/transfer.h"

/* Blobs the engine attaches to a snapshot (engine design, issue 3). The
 * store has no way to list a snapshot's blobs, so the names are known here. */
static const char *const known_blobs[] = { "engine.image" };

int rf_snapshot_feed(struct wc_snapshot *snap, struct wc_source *src, struct wc_sink *sink)
{
	_cleanup_free_ uint8_t *buf = NULL;
	_cleanup_free_ struct wc_page_req *reqs = NULL;
	size_t nr_areas = wc_snapshot_nr_areas(snap);
	int r;

	buf = malloc((size_t)RF_BATCH_MAX_PAGES * WC_PAGE_SIZE);
	reqs = calloc(RF_BATCH_MAX_PAGES, sizeof(*reqs));
	if (!buf || !reqs)
		return -ENOMEM;

	for (size_t a = 0; a < nr_areas; a++) {
		const struct wc_area *area = wc_snapshot_area(snap, a);
		struct wc_area_desc desc = {
			.start = area->start,
			.nr_pages = area->nr_pages,
			.prot = area->prot,
			.flags = area->flags,
			.name = area->name && *area->name ? area->name : NULL,
		};
		uint64_t d = 0;

		r = sink->ops->begin_area(sink, &desc);
		if (r < 0)
			return r;
		for (uint64_t off = 0; off < area->nr_pages; off += RF_BATCH_MAX_PAGES) {
			size_t n = MIN(area->nr_pages - off, (uint64_t)RF_BATCH_MAX_PAGES), nr_reqs = 0;
			const uint8_t *kinds = area->kinds + off;

			for (size_t i = 0; i < n; i++) {
				uint8_t *dst = buf + i * WC_PAGE_SIZE;

				if (kinds[i] == WC_PAGE_DATA) {
					if (d >= area->nr_data)
						return err_set(EBADMSG, "snapshot %s area %zu: more data "
							       "pages than keys", wc_snapshot_id(snap), a);
					reqs[nr_reqs].key = area->keys[d++];
					reqs[nr_reqs++].dst = dst;
				} else if (kinds[i] == WC_PAGE_ZERO) {
					memset(dst, 0, WC_PAGE_SIZE);
				}
			}
			if (nr_reqs) {
				r = src->ops->read_pages(src, reqs, nr_reqs);
				if (r < 0)
					return r;
			}
			r = sink->ops->put_pages(sink, buf, kinds, n);
			if (r < 0)
				return r;
		}
	}

	for (size_t i = 0; i < ARRAY_SIZE(known_blobs); i++) {
		const void *data;
		size_t len;

		r = wc_snapshot_blob(snap, known_blobs[i], &data, &len);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		r = sink->ops->put_blob(sink, known_blobs[i], data, len);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < wc_snapshot_nr_labels(snap); i++) {
		const char *key, *value;

		r = wc_snapshot_label_at(snap, i, &key, &value);
		if (r < 0)
			return r;
		r = sink->ops->put_label(sink, key, value);
		if (r < 0)
			return r;
	}
	return 0;
}
