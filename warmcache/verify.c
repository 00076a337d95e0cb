// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * verify: rehash every page a snapshot (or every snapshot) lists, and
 * report each problem once per snapshot; and the per-snapshot usage figures
 * (unique vs shared pages) behind "warmfork inspect".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/util.h"
#include "wc-internal.h"

#define VERIFY_BATCH	16384u		/* pages per read batch: 64 MiB */

struct bad_page {
	struct wc_key key;
	enum wc_read_problem what;
	uint32_t pack_id, page;
	int err;
};

struct verify_ctx {
	const struct wc_page_req *reqs;
	struct wc_index bad_set;	/* key -> .page = index into bad[] */
	struct bad_page *bad;
	size_t nr_bad, cap_bad;
};

static int verify_problem(void *userdata, size_t req, enum wc_read_problem what, uint32_t pack_id,
			  uint32_t page, int err)
{
	struct verify_ctx *v = userdata;
	const struct wc_key *key = &v->reqs[req].key;
	int r;

	if (wc_keyset_has(&v->bad_set, key))
		return 0;
	if (v->nr_bad == v->cap_bad) {
		size_t ncap = v->cap_bad ? v->cap_bad * 2 : 64;
		struct bad_page *n = realloc(v->bad, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		v->bad = n;
		v->cap_bad = ncap;
	}
	r = wc_index_put(&v->bad_set, key, 1, (uint32_t)v->nr_bad);
	if (r < 0)
		return r;
	v->bad[v->nr_bad++] = (struct bad_page){ *key, what, pack_id, page, err };
	return 0;
}

static void emit(void (*cb)(void *, const char *), void *userdata, const char *fmt, ...)
	_printf_(3, 4);
static void emit(void (*cb)(void *, const char *), void *userdata, const char *fmt, ...)
{
	char line[768];
	va_list ap;

	if (!cb)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cb(userdata, line);
}

static void report_snapshot(const struct wc_snapshot *snap, struct verify_ctx *v,
			    void (*cb)(void *, const char *), void *userdata)
{
	_cleanup_free_ uint64_t *count = NULL;
	_cleanup_free_ uint8_t *done = NULL;

	if (!v->nr_bad)
		return;
	count = calloc(v->nr_bad, sizeof(*count));
	done = calloc(v->nr_bad, 1);
	if (!count || !done) {
		emit(cb, userdata, "snapshot %s: out of memory while reporting", wc_snapshot_id(snap));
		return;
	}
	for (size_t a = 0; a < wc_snapshot_nr_areas(snap); a++) {
		const struct wc_area *area = wc_snapshot_area(snap, a);

		for (uint64_t k = 0; k < area->nr_data; k++) {
			const struct wc_ient *e = wc_index_get(&v->bad_set, &area->keys[k]);

			if (e)
				count[e->page]++;
		}
	}
	for (size_t a = 0; a < wc_snapshot_nr_areas(snap); a++) {
		const struct wc_area *area = wc_snapshot_area(snap, a);
		uint64_t k = 0;

		for (uint64_t i = 0; i < area->nr_pages; i++) {
			const struct wc_ient *e;
			const struct bad_page *b;
			char hex[33], more[64] = "";
			const char *what;

			if (area->kinds[i] != WC_PAGE_DATA)
				continue;
			e = wc_index_get(&v->bad_set, &area->keys[k++]);
			if (!e || done[e->page])
				continue;
			done[e->page] = 1;
			b = &v->bad[e->page];
			wc_key_hex(&b->key, hex);
			if (count[e->page] > 1)
				snprintf(more, sizeof(more), " (+%" PRIu64 " more places in this snapshot)",
					 count[e->page] - 1);
			what = b->what == WC_READ_MISSING ? "page missing from the store" :
			       b->what == WC_READ_BAD ? "content does not match its key" :
			       "page unreadable";
			if (b->what == WC_READ_MISSING)
				emit(cb, userdata, "snapshot %s area %zu (%s) page %" PRIu64 " at 0x%" PRIx64
				     ": %s [key %s]%s", wc_snapshot_id(snap), a, area->name, i,
				     area->start + i * WC_PAGE_SIZE, what, hex, more);
			else
				emit(cb, userdata, "snapshot %s area %zu (%s) page %" PRIu64 " at 0x%" PRIx64
				     ": %s [key %s, pack-%08" PRIx32 " page %" PRIu32 "]%s",
				     wc_snapshot_id(snap), a, area->name, i,
				     area->start + i * WC_PAGE_SIZE, what, hex, b->pack_id, b->page, more);
		}
	}
}

int wc_store_verify(struct wc_store *s, const char *id,
		    void (*cb)(void *userdata, const char *line), void *userdata,
		    struct wc_verify_report *ret_report)
{
	struct wc_verify_report rep = {};
	struct verify_ctx v = {};
	struct wc_index all = {};
	struct wc_snapshot **snaps = NULL;
	struct wc_page_req *reqs = NULL;
	struct wc_key *keys = NULL;
	uint8_t *scratch = NULL;
	char **ids = NULL;
	size_t nr_ids = 0, nr_keys = 0, cap_keys = 0;
	int r;

	r = wc_store_refresh(s, false);
	if (r < 0)
		return r;
	if (id) {
		char full[WC_ID_LEN + 1];

		r = wc_store_resolve(s, id, full);
		if (r < 0)
			return r;
		ids = calloc(1, sizeof(*ids));
		if (!ids || !(ids[0] = strdup(full))) {
			free(ids);
			return -ENOMEM;
		}
		nr_ids = 1;
	} else {
		r = wc_store_list(s, &ids, &nr_ids);
		if (r < 0)
			return r;
	}
	snaps = calloc(nr_ids ? nr_ids : 1, sizeof(*snaps));
	if (!snaps) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nr_ids; i++) {
		err_clear();
		r = wc_snapshot_load(s, ids[i], &snaps[i]);
		if (r == -ENOENT && !id)
			continue;	/* removed meanwhile */
		if (r == -ENOMEM)
			goto out;
		if (r < 0) {
			rep.manifests_bad++;
			emit(cb, userdata, "%s", err_str(r));
			snaps[i] = NULL;
			continue;
		}
		for (size_t a = 0; a < wc_snapshot_nr_areas(snaps[i]); a++) {
			const struct wc_area *area = wc_snapshot_area(snaps[i], a);

			for (uint64_t k = 0; k < area->nr_data; k++) {
				r = wc_keyset_add(&all, &area->keys[k]);
				if (r < 0)
					goto out;
				if (r == 0)
					continue;
				if (nr_keys == cap_keys) {
					size_t ncap = cap_keys ? cap_keys * 2 : 4096;
					struct wc_key *n = realloc(keys, ncap * sizeof(*n));

					if (!n) {
						r = -ENOMEM;
						goto out;
					}
					keys = n;
					cap_keys = ncap;
				}
				keys[nr_keys++] = area->keys[k];
			}
		}
	}

	scratch = aligned_alloc(WC_PAGE_SIZE, (size_t)VERIFY_BATCH * WC_PAGE_SIZE);
	reqs = malloc(VERIFY_BATCH * sizeof(*reqs));
	if (!scratch || !reqs) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t done = 0; done < nr_keys; ) {
		size_t n = MIN((size_t)VERIFY_BATCH, nr_keys - done);

		for (size_t i = 0; i < n; i++) {
			reqs[i].key = keys[done + i];
			reqs[i].dst = scratch + i * WC_PAGE_SIZE;
		}
		v.reqs = reqs;
		r = wc_store_read(s, reqs, n, verify_problem, &v);
		if (r < 0)
			goto out;
		done += n;
	}
	rep.pages_checked = nr_keys;
	for (size_t i = 0; i < v.nr_bad; i++) {
		if (v.bad[i].what == WC_READ_MISSING)
			rep.pages_missing++;
		else
			rep.pages_bad++;
	}
	for (size_t i = 0; i < nr_ids; i++)
		if (snaps[i])
			report_snapshot(snaps[i], &v, cb, userdata);
	r = rep.pages_bad || rep.pages_missing || rep.manifests_bad ? -EBADMSG : 0;
	if (ret_report)
		*ret_report = rep;
out:
	if (snaps)
		for (size_t i = 0; i < nr_ids; i++)
			wc_snapshot_close(snaps[i]);
	free(snaps);
	wc_id_list_free(ids, nr_ids);
	wc_index_fini(&all);
	wc_index_fini(&v.bad_set);
	free(v.bad);
	free(keys);
	free(reqs);
	free(scratch);
	return r;
}

int wc_store_snapshot_usage(struct wc_store *s, const struct wc_snapshot *snap,
			    struct wc_snapshot_usage *ret)
{
	struct wc_snapshot_usage u = {};
	struct wc_index mine = {};
	char **ids = NULL;
	size_t nr = 0;
	int r;

	for (size_t a = 0; a < wc_snapshot_nr_areas(snap); a++) {
		const struct wc_area *area = wc_snapshot_area(snap, a);

		u.pages_total += area->nr_pages;
		for (uint64_t i = 0; i < area->nr_pages; i++) {
			if (area->kinds[i] == WC_PAGE_ABSENT)
				u.pages_absent++;
			else if (area->kinds[i] == WC_PAGE_ZERO)
				u.pages_zero++;
		}
		u.pages_data += area->nr_data;
		for (uint64_t k = 0; k < area->nr_data; k++) {
			r = wc_index_put(&mine, &area->keys[k], 1, 0);
			if (r < 0)
				goto out;
		}
	}
	u.distinct_data = mine.nr;
	if (s) {
		r = wc_store_list(s, &ids, &nr);
		if (r < 0)
			goto out;
		for (size_t i = 0; i < nr; i++) {
			struct wc_snapshot *other;

			if (strcmp(ids[i], wc_snapshot_id(snap)) == 0)
				continue;
			r = wc_snapshot_load(s, ids[i], &other);
			if (r == -ENOENT)
				continue;
			if (r < 0)
				goto out;
			for (size_t a = 0; a < wc_snapshot_nr_areas(other); a++) {
				const struct wc_area *area = wc_snapshot_area(other, a);

				for (uint64_t k = 0; k < area->nr_data; k++) {
					struct wc_ient *e = wc_index_lookup(&mine, &area->keys[k]);

					if (e && !e->page) {
						e->page = 1;	/* shared */
						u.shared_pages++;
					}
				}
			}
			wc_snapshot_close(other);
		}
	}
	u.unique_pages = u.distinct_data - u.shared_pages;
	*ret = u;
	r = 0;
out:
	wc_id_list_free(ids, nr);
	wc_index_fini(&mine);
	return r;
}
