// SPDX-License-Identifier: GPL-2.0-or-later
/* In-memory page store: the remote-fork tests' double (memstore.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rfork/transfer.h"
#include "memstore.h"

struct mem_store *mem_store_new(void)
{
	struct mem_store *ms = calloc(1, sizeof(*ms));

	if (!ms)
		return NULL;
	ms->cap = 1 << 10;
	ms->keys = calloc(ms->cap, sizeof(*ms->keys));
	ms->pages = calloc(ms->cap, sizeof(*ms->pages));
	if (!ms->keys || !ms->pages) {
		mem_store_free(ms);
		return NULL;
	}
	return ms;
}

static void snap_clear(struct mem_snap *s)
{
	for (size_t a = 0; a < s->nr_areas; a++) {
		free(s->areas[a].name);
		free(s->areas[a].kinds);
		free(s->areas[a].keys);
	}
	free(s->areas);
	for (size_t i = 0; i < s->nr_blobs; i++) {
		free(s->blob_names[i]);
		free(s->blobs[i]);
	}
	for (size_t i = 0; i < s->nr_labels; i++) {
		free(s->label_keys[i]);
		free(s->label_values[i]);
	}
	memset(s, 0, sizeof(*s));
}

void mem_store_free(struct mem_store *ms)
{
	if (!ms)
		return;
	for (size_t i = 0; i < ms->cap && ms->pages; i++)
		free(ms->pages[i]);
	for (size_t i = 0; i < ms->nr_snaps; i++)
		snap_clear(&ms->snaps[i]);
	free(ms->keys);
	free(ms->pages);
	free(ms);
}

static size_t slot_of(const struct mem_store *ms, const struct wc_key *k)
{
	size_t h = (size_t)(k->lo ^ (k->hi * 0x9e3779b97f4a7c15ull)) & (ms->cap - 1);

	while (ms->pages[h] && !wc_key_eq(&ms->keys[h], k))
		h = (h + 1) & (ms->cap - 1);
	return h;
}

static int grow(struct mem_store *ms)
{
	struct mem_store n = *ms;

	n.cap = ms->cap * 2;
	n.keys = calloc(n.cap, sizeof(*n.keys));
	n.pages = calloc(n.cap, sizeof(*n.pages));
	if (!n.keys || !n.pages) {
		free(n.keys);
		free(n.pages);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ms->cap; i++) {
		if (ms->pages[i]) {
			size_t h = slot_of(&n, &ms->keys[i]);

			n.keys[h] = ms->keys[i];
			n.pages[h] = ms->pages[i];
		}
	}
	free(ms->keys);
	free(ms->pages);
	ms->keys = n.keys;
	ms->pages = n.pages;
	ms->cap = n.cap;
	return 0;
}

int mem_store_add(struct mem_store *ms, const struct wc_key *k, const void *page)
{
	size_t h;

	if ((ms->nr + 1) * 2 > ms->cap && grow(ms) < 0)
		return -ENOMEM;
	h = slot_of(ms, k);
	if (ms->pages[h])
		return 0;
	ms->pages[h] = malloc(WC_PAGE_SIZE);
	if (!ms->pages[h])
		return -ENOMEM;
	memcpy(ms->pages[h], page, WC_PAGE_SIZE);
	ms->keys[h] = *k;
	ms->nr++;
	return 0;
}

const uint8_t *mem_store_get(const struct mem_store *ms, const struct wc_key *k)
{
	return ms->pages[slot_of(ms, k)];
}

/* ---------------------------------------------------------------- source */

struct mem_source {
	struct wc_source src;
	struct mem_store *ms;
};

static int msrc_lacks(struct wc_source *src, const struct wc_key *keys, size_t nr, uint8_t *ret)
{
	struct mem_store *ms = ((struct mem_source *)src)->ms;
	int n = 0;

	memset(ret, 0, (nr + 7) / 8);
	for (size_t i = 0; i < nr; i++)
		if (!mem_store_get(ms, &keys[i])) {
			ret[i / 8] |= 1u << (i % 8);
			n++;
		}
	return n;
}

static int msrc_read(struct wc_source *src, const struct wc_page_req *reqs, size_t nr)
{
	struct mem_store *ms = ((struct mem_source *)src)->ms;

	for (size_t i = 0; i < nr; i++) {
		const uint8_t *p = mem_store_get(ms, &reqs[i].key);

		if (!p)
			return -ENOENT;
		memcpy(reqs[i].dst, p, WC_PAGE_SIZE);
	}
	return 0;
}

static void msrc_free(struct wc_source *src)
{
	free(src);
}

static const struct wc_source_ops msrc_ops = {
	.lacks = msrc_lacks,
	.read_pages = msrc_read,
	.free = msrc_free,
};

int mem_source_new(struct mem_store *ms, struct wc_source **ret)
{
	struct mem_source *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->src.ops = &msrc_ops;
	s->ms = ms;
	*ret = &s->src;
	return 0;
}

/* ------------------------------------------------------------------ sink */

struct mem_sink {
	struct wc_sink sink;
	struct mem_store *ms;
	struct mem_snap snap;
	/* pages received, added to the store only on commit */
	struct mem_store *pending;
	uint64_t nr_data_cur;
};

#define to_msink(x) ((struct mem_sink *)(x))

static int msink_begin_area(struct wc_sink *sink, const struct wc_area_desc *d)
{
	struct mem_sink *s = to_msink(sink);
	struct mem_area *a;

	if (s->snap.nr_areas && s->snap.areas[s->snap.nr_areas - 1].got !=
	    s->snap.areas[s->snap.nr_areas - 1].desc.nr_pages)
		return -EINVAL;
	if (d->nr_pages > (1u << 24))
		return -EFBIG;		/* a test double: keep it small */
	a = realloc(s->snap.areas, (s->snap.nr_areas + 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	s->snap.areas = a;
	a = &a[s->snap.nr_areas++];
	memset(a, 0, sizeof(*a));
	a->desc = *d;
	a->name = d->name ? strdup(d->name) : NULL;
	a->desc.name = a->name;
	a->kinds = calloc(d->nr_pages + 1, 1);
	a->keys = calloc(d->nr_pages + 1, sizeof(*a->keys));
	if (!a->kinds || !a->keys)
		return -ENOMEM;
	return 0;
}

static int msink_put_pages(struct wc_sink *sink, const void *buf, const uint8_t *kinds, size_t nr)
{
	struct mem_sink *s = to_msink(sink);
	struct mem_area *a;

	if (!s->snap.nr_areas)
		return -EINVAL;
	a = &s->snap.areas[s->snap.nr_areas - 1];
	if (nr > a->desc.nr_pages - a->got)
		return -EINVAL;
	for (size_t i = 0; i < nr; i++) {
		/* @buf may be NULL when every page is absent (wc_sink_ops). */
		const uint8_t *p = buf ? (const uint8_t *)buf + i * WC_PAGE_SIZE : NULL;
		uint64_t idx = a->got++;

		if (kinds && kinds[i] == WC_PAGE_ABSENT) {
			a->kinds[idx] = WC_PAGE_ABSENT;
		} else if (!p) {
			return -EINVAL;
		} else if (rf_page_is_zero(p)) {
			a->kinds[idx] = WC_PAGE_ZERO;
		} else {
			int r;

			a->kinds[idx] = WC_PAGE_DATA;
			rf_page_key(p, &a->keys[idx]);
			r = mem_store_add(s->pending, &a->keys[idx], p);
			if (r < 0)
				return r;
			s->ms->pages_put++;
		}
	}
	return 0;
}

/* Pages by key alone: every data key must be held (committed or pending),
 * else -ENOENT before anything is recorded, as the store's sink does. */
static int msink_put_keys(struct wc_sink *sink, const uint8_t *kinds, const struct wc_key *keys,
			  size_t nr)
{
	struct mem_sink *s = to_msink(sink);
	struct mem_area *a;
	size_t j = 0;

	if (!s->snap.nr_areas || !kinds)
		return -EINVAL;
	a = &s->snap.areas[s->snap.nr_areas - 1];
	if (nr > a->desc.nr_pages - a->got)
		return -EINVAL;
	for (size_t i = 0; i < nr; i++) {
		if (kinds[i] > WC_PAGE_DATA)
			return -EINVAL;
		if (kinds[i] != WC_PAGE_DATA)
			continue;
		if (!mem_store_get(s->ms, &keys[j]) && !mem_store_get(s->pending, &keys[j]))
			return -ENOENT;
		j++;
	}
	j = 0;
	for (size_t i = 0; i < nr; i++) {
		uint64_t idx = a->got++;

		a->kinds[idx] = kinds[i];
		if (kinds[i] == WC_PAGE_DATA) {
			a->keys[idx] = keys[j++];
			s->ms->keys_put++;
		}
	}
	return 0;
}

static int msink_put_blob(struct wc_sink *sink, const char *name, const void *data, size_t len)
{
	struct mem_sink *s = to_msink(sink);
	size_t i = s->snap.nr_blobs;

	if (i >= 8)
		return -E2BIG;
	s->snap.blob_names[i] = strdup(name);
	s->snap.blobs[i] = malloc(len + 1);
	if (!s->snap.blob_names[i] || !s->snap.blobs[i])
		return -ENOMEM;
	memcpy(s->snap.blobs[i], data, len);
	s->snap.blob_lens[i] = len;
	s->snap.nr_blobs++;
	return 0;
}

static int msink_put_label(struct wc_sink *sink, const char *key, const char *value)
{
	struct mem_sink *s = to_msink(sink);
	size_t i = s->snap.nr_labels;

	if (i >= 8)
		return -E2BIG;
	s->snap.label_keys[i] = strdup(key);
	s->snap.label_values[i] = strdup(value);
	s->snap.nr_labels++;
	return 0;
}

static int msink_commit(struct wc_sink *sink, char ret_id[WC_ID_LEN + 1])
{
	struct mem_sink *s = to_msink(sink);
	struct mem_store *ms = s->ms;

	if (ms->fail_commit)
		return ms->fail_commit;
	if (ms->nr_snaps >= 8)
		return -ENOSPC;
	for (size_t a = 0; a < s->snap.nr_areas; a++)
		if (s->snap.areas[a].got != s->snap.areas[a].desc.nr_pages)
			return -EINVAL;
	for (size_t i = 0; i < s->pending->cap; i++)
		if (s->pending->pages[i] && mem_store_add(ms, &s->pending->keys[i], s->pending->pages[i]) < 0)
			return -ENOMEM;
	snprintf(s->snap.id, sizeof(s->snap.id), "%016llx", 0xabc000ull + ms->nr_snaps);
	ms->snaps[ms->nr_snaps++] = s->snap;
	memset(&s->snap, 0, sizeof(s->snap));
	memcpy(ret_id, ms->snaps[ms->nr_snaps - 1].id, WC_ID_LEN + 1);
	return 0;
}

static void msink_free(struct wc_sink *sink)
{
	struct mem_sink *s = to_msink(sink);

	snap_clear(&s->snap);
	mem_store_free(s->pending);
	free(s);
}

static const struct wc_sink_ops msink_ops = {
	.begin_area = msink_begin_area,
	.put_pages = msink_put_pages,
	.put_blob = msink_put_blob,
	.put_label = msink_put_label,
	.commit = msink_commit,
	.free = msink_free,
};

static const struct wc_sink_ops msink_keys_ops = {
	.begin_area = msink_begin_area,
	.put_pages = msink_put_pages,
	.put_blob = msink_put_blob,
	.put_label = msink_put_label,
	.commit = msink_commit,
	.free = msink_free,
	.put_keys = msink_put_keys,
};

int mem_sink_new(struct mem_store *ms, struct wc_sink **ret)
{
	struct mem_sink *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->sink.ops = ms->put_keys ? &msink_keys_ops : &msink_ops;
	s->ms = ms;
	s->pending = mem_store_new();
	if (!s->pending) {
		free(s);
		return -ENOMEM;
	}
	*ret = &s->sink;
	return 0;
}

const uint8_t *mem_snap_page(const struct mem_store *ms, const struct mem_snap *snap, size_t a,
			     uint64_t i, uint8_t *ret_kind)
{
	const struct mem_area *ar = &snap->areas[a];

	*ret_kind = ar->kinds[i];
	if (ar->kinds[i] != WC_PAGE_DATA)
		return NULL;
	return mem_store_get(ms, &ar->keys[i]);
}
