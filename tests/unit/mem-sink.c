// SPDX-License-Identifier: GPL-2.0-or-later
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "mem-sink.h"

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;

	for (size_t i = 0; i < WC_PAGE_SIZE / 8; i++)
		if (q[i])
			return false;
	return true;
}

static struct mem_sink *of(struct wc_sink *sink)
{
	return (struct mem_sink *)sink;
}

static int ms_begin_area(struct wc_sink *sink, const struct wc_area_desc *desc)
{
	struct mem_sink *s = of(sink);
	struct mem_area *na, *a;

	if (s->committed || !desc->nr_pages || (desc->start & (WC_PAGE_SIZE - 1)))
		return -EINVAL;
	/* The previous area must be complete. */
	if (s->nr_areas && s->areas[s->nr_areas - 1].filled != s->areas[s->nr_areas - 1].desc.nr_pages)
		return -EPROTO;
	if (desc->nr_pages > (1ull << 26))
		return -E2BIG;
	na = realloc(s->areas, (s->nr_areas + 1) * sizeof(*na));
	if (!na)
		return -ENOMEM;
	s->areas = na;
	a = &s->areas[s->nr_areas];
	memset(a, 0, sizeof(*a));
	a->desc = *desc;
	a->desc.name = desc->name ? strdup(desc->name) : NULL;
	a->kinds = calloc(desc->nr_pages, 1);
	a->data = calloc(desc->nr_pages, WC_PAGE_SIZE);
	if (!a->kinds || !a->data) {
		free(a->kinds);
		free(a->data);
		free((char *)a->desc.name);
		return -ENOMEM;
	}
	s->nr_areas++;
	return 0;
}

static int ms_put_pages(struct wc_sink *sink, const void *buf, const uint8_t *kinds,
			size_t nr_pages)
{
	struct mem_sink *s = of(sink);
	struct mem_area *a;

	if (s->committed || !s->nr_areas)
		return -EPROTO;
	a = &s->areas[s->nr_areas - 1];
	if (nr_pages > a->desc.nr_pages - a->filled)
		return -EPROTO;
	s->put_calls++;
	for (size_t i = 0; i < nr_pages; i++) {
		const uint8_t *page = (const uint8_t *)buf + i * WC_PAGE_SIZE;
		uint64_t idx = a->filled + i;

		if (kinds && kinds[i] == WC_PAGE_ABSENT) {
			a->kinds[idx] = WC_PAGE_ABSENT;
			continue;
		}
		if (page_is_zero(page)) {
			a->kinds[idx] = WC_PAGE_ZERO;
			continue;
		}
		a->kinds[idx] = WC_PAGE_DATA;
		memcpy(a->data + idx * WC_PAGE_SIZE, page, WC_PAGE_SIZE);
	}
	a->filled += nr_pages;
	return 0;
}

static int ms_put_blob(struct wc_sink *sink, const char *name, const void *data, size_t len)
{
	struct mem_sink *s = of(sink);
	struct mem_blob *nb;
	void *copy;

	if (s->committed)
		return -EPROTO;
	copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, data, len);
	for (size_t i = 0; i < s->nr_blobs; i++) {
		if (strcmp(s->blobs[i].name, name) == 0) {
			free(s->blobs[i].data);
			s->blobs[i].data = copy;
			s->blobs[i].len = len;
			return 0;
		}
	}
	nb = realloc(s->blobs, (s->nr_blobs + 1) * sizeof(*nb));
	if (!nb) {
		free(copy);
		return -ENOMEM;
	}
	s->blobs = nb;
	s->blobs[s->nr_blobs++] = (struct mem_blob){ strdup(name), copy, len };
	return 0;
}

static int ms_put_label(struct wc_sink *sink, const char *key, const char *value)
{
	struct mem_sink *s = of(sink);

	if (s->committed)
		return -EPROTO;
	if (s->nr_labels >= 32)
		return -E2BIG;
	s->labels[s->nr_labels][0] = strdup(key);
	s->labels[s->nr_labels][1] = strdup(value);
	s->nr_labels++;
	return 0;
}

static int ms_commit(struct wc_sink *sink, char ret_id[WC_ID_LEN + 1])
{
	struct mem_sink *s = of(sink);
	XXH3_state_t *st;
	uint64_t h;

	if (s->committed)
		return -EPROTO;
	if (s->nr_areas && s->areas[s->nr_areas - 1].filled != s->areas[s->nr_areas - 1].desc.nr_pages)
		return -EPROTO;
	st = XXH3_createState();
	if (!st)
		return -ENOMEM;
	XXH3_64bits_reset(st);
	for (size_t i = 0; i < s->nr_areas; i++) {
		XXH3_64bits_update(st, &s->areas[i].desc.start, 8);
		XXH3_64bits_update(st, s->areas[i].kinds, s->areas[i].desc.nr_pages);
	}
	for (size_t i = 0; i < s->nr_blobs; i++)
		XXH3_64bits_update(st, s->blobs[i].data, s->blobs[i].len);
	h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	snprintf(s->id, sizeof(s->id), "%016llx", (unsigned long long)h);
	memcpy(ret_id, s->id, sizeof(s->id));
	s->committed = true;
	return 0;
}

static void ms_free(struct wc_sink *sink)
{
	struct mem_sink *s = of(sink);

	for (size_t i = 0; i < s->nr_areas; i++) {
		free(s->areas[i].kinds);
		free(s->areas[i].data);
		free((char *)s->areas[i].desc.name);
	}
	free(s->areas);
	for (size_t i = 0; i < s->nr_blobs; i++) {
		free(s->blobs[i].name);
		free(s->blobs[i].data);
	}
	free(s->blobs);
	for (size_t i = 0; i < s->nr_labels; i++) {
		free(s->labels[i][0]);
		free(s->labels[i][1]);
	}
	free(s);
}

static const struct wc_sink_ops mem_sink_ops = {
	.begin_area = ms_begin_area,
	.put_pages = ms_put_pages,
	.put_blob = ms_put_blob,
	.put_label = ms_put_label,
	.commit = ms_commit,
	.free = ms_free,
};

struct mem_sink *mem_sink_new(void)
{
	struct mem_sink *s = calloc(1, sizeof(*s));

	if (s)
		s->sink.ops = &mem_sink_ops;
	return s;
}

const struct mem_blob *mem_sink_blob(const struct mem_sink *s, const char *name)
{
	for (size_t i = 0; i < s->nr_blobs; i++)
		if (strcmp(s->blobs[i].name, name) == 0)
			return &s->blobs[i];
	return NULL;
}

const char *mem_sink_label(const struct mem_sink *s, const char *key)
{
	for (size_t i = 0; i < s->nr_labels; i++)
		if (strcmp(s->labels[i][0], key) == 0)
			return s->labels[i][1];
	return NULL;
}
