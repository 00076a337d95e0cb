// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Filling memory from a snapshot: the requests of every data page of the
 * target areas go to the source as one batch (so each distinct key is read
 * once across all areas); zero and absent pages are not touched.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h"
#include "common/err.h"
#include "wc-internal.h"

struct fill_ctx {
	const struct wc_snapshot *snap;
	const struct wc_fill_target *targets;
	size_t nr;
	const size_t *first_req;	/* per target: index of its first request */
	size_t base;			/* index of the current slice's first request */
};

/* Requests per call into the source: bounds the read engine's memory
 * (about 100 bytes per request) for huge snapshots. A key repeated across
 * slices is read once per slice. */
#define FILL_SLICE	(1u << 20)

/* The page index, within its area, of request @req. */
static void locate(const struct fill_ctx *f, size_t req, size_t *ret_t, uint64_t *ret_page)
{
	size_t t = 0;
	uint64_t ordinal, page = 0;
	const struct wc_area *a;

	while (t + 1 < f->nr && f->first_req[t + 1] <= req)
		t++;
	a = wc_snapshot_area(f->snap, f->targets[t].area_idx);
	ordinal = req - f->first_req[t];
	for (uint64_t i = 0; i < a->nr_pages; i++) {
		if (a->kinds[i] != WC_PAGE_DATA)
			continue;
		if (ordinal-- == 0) {
			page = i;
			break;
		}
	}
	*ret_t = t;
	*ret_page = page;
}

static int fill_problem(void *userdata, size_t req, enum wc_read_problem what, uint32_t pack_id,
			uint32_t pack_page, int err)
{
	const struct fill_ctx *f = userdata;
	const struct wc_area *a;
	uint64_t page;
	size_t t;

	locate(f, f->base + req, &t, &page);
	a = wc_snapshot_area(f->snap, f->targets[t].area_idx);
	switch (what) {
	case WC_READ_MISSING:
		return err_set(EBADMSG, "snapshot %s area %zu (%s) page %" PRIu64 " at 0x%" PRIx64
			       ": page is missing from the store", wc_snapshot_id(f->snap),
			       f->targets[t].area_idx, a->name, page, a->start + page * WC_PAGE_SIZE);
	case WC_READ_BAD:
		return err_set(EBADMSG, "snapshot %s area %zu (%s) page %" PRIu64 " at 0x%" PRIx64
			       ": content does not match its key (pack-%08" PRIx32 " page %" PRIu32 ")",
			       wc_snapshot_id(f->snap), f->targets[t].area_idx, a->name, page,
			       a->start + page * WC_PAGE_SIZE, pack_id, pack_page);
	default:
		return err_set(err ? err : EIO, "snapshot %s area %zu (%s) page %" PRIu64 " at 0x%" PRIx64
			       ": unreadable (pack-%08" PRIx32 " page %" PRIu32 "): %s",
			       wc_snapshot_id(f->snap), f->targets[t].area_idx, a->name, page,
			       a->start + page * WC_PAGE_SIZE, pack_id, pack_page,
			       strerror(err ? -err : EIO));
	}
}

static int cmp_range(const void *x, const void *y)
{
	const uintptr_t *a = x, *b = y;

	return a[0] < b[0] ? -1 : a[0] > b[0];
}

static int fill(struct wc_snapshot *snap, struct wc_source *src,
		const struct wc_fill_target *targets, size_t nr, int uffd)
{
	_cleanup_free_ struct wc_page_req *reqs = NULL;
	_cleanup_free_ size_t *first_req = NULL;
	_cleanup_free_ uintptr_t (*ranges)[2] = NULL;
	struct wc_uffd_dst u = { uffd, NULL, 0 };
	struct fill_ctx f = { snap, targets, nr, NULL };
	size_t total = 0, n = 0;
	int r;

	if (!src || (nr && !targets))
		return -EINVAL;
	for (size_t t = 0; t < nr; t++) {
		const struct wc_area *a = wc_snapshot_area(snap, targets[t].area_idx);

		if (!a || (!targets[t].dst && a->nr_data))
			return err_set(EINVAL, "snapshot %s: no area %zu", wc_snapshot_id(snap),
				       targets[t].area_idx);
		total += a->nr_data;
	}
	if (total == 0)
		return 0;
	if (uffd >= 0) {
		if (!wc_source_is_store(src))
			return err_set(EOPNOTSUPP, "snapshot %s: placing pages by userfaultfd "
				       "needs a store source", wc_snapshot_id(snap));
		ranges = malloc((nr ? nr : 1) * sizeof(*ranges));
		if (!ranges)
			return -ENOMEM;
		for (size_t t = 0; t < nr; t++) {
			const struct wc_area *a = wc_snapshot_area(snap, targets[t].area_idx);
			uintptr_t start = (uintptr_t)targets[t].dst;

			if (!targets[t].uffd || !a->nr_data)
				continue;
			ranges[u.nr][0] = start;
			ranges[u.nr][1] = start + a->nr_pages * WC_PAGE_SIZE;
			u.nr++;
		}
		qsort(ranges, u.nr, sizeof(*ranges), cmp_range);
		for (size_t i = 1; i < u.nr; i++)
			if (ranges[i][0] < ranges[i - 1][1])
				return err_set(EINVAL, "snapshot %s: fill targets overlap",
					       wc_snapshot_id(snap));
		u.ranges = (const uintptr_t (*)[2])ranges;
	}
	reqs = malloc(total * sizeof(*reqs));
	first_req = malloc((nr ? nr : 1) * sizeof(*first_req));
	if (!reqs || !first_req)
		return -ENOMEM;
	for (size_t t = 0; t < nr; t++) {
		const struct wc_area *a = wc_snapshot_area(snap, targets[t].area_idx);
		uint8_t *dst = targets[t].dst;
		uint64_t j = 0;

		first_req[t] = n;
		for (uint64_t i = 0; i < a->nr_pages; i++) {
			if (a->kinds[i] != WC_PAGE_DATA)
				continue;
			reqs[n].key = a->keys[j++];
			reqs[n].dst = dst + i * WC_PAGE_SIZE;
			n++;
		}
	}
	f.first_req = first_req;
	for (f.base = 0; f.base < n; f.base += FILL_SLICE) {
		size_t len = MIN((size_t)FILL_SLICE, n - f.base);

		if (uffd >= 0) {
			r = wc_store_read_uffd(wc_source_store(src), reqs + f.base, len, fill_problem,
					       &f, &u);
			if (r < 0)
				return r;
		} else if (wc_source_is_store(src)) {
			r = wc_store_read(wc_source_store(src), reqs + f.base, len, fill_problem, &f);
			if (r < 0)
				return r;
		} else {
			r = src->ops->read_pages(src, reqs + f.base, len);
			if (r < 0)
				return err_wrap(r, "snapshot %s", wc_snapshot_id(snap));
		}
	}
	return 0;
}

int wc_snapshot_fill(struct wc_snapshot *snap, struct wc_source *src,
		     const struct wc_fill_target *targets, size_t nr)
{
	return fill(snap, src, targets, nr, -1);
}

int wc_snapshot_fill_uffd(struct wc_snapshot *snap, struct wc_source *src,
			  const struct wc_fill_target *targets, size_t nr, int uffd)
{
	return fill(snap, src, targets, nr, uffd);
}

int wc_snapshot_fill_area(struct wc_snapshot *snap, struct wc_source *src, size_t idx, void *dst)
{
	struct wc_fill_target t = { idx, dst, false };

	return wc_snapshot_fill(snap, src, &t, 1);
}
