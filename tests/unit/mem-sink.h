/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef TEST_MEM_SINK_H
#define TEST_MEM_SINK_H

/*
 * An in-memory wc_sink (test double): keeps every area with its page kinds
 * and the content of its present pages, the blobs and labels. Zero pages
 * are classified as WC_PAGE_ZERO as the store's sink does. commit() makes
 * the id from a hash of what was put, so it is stable for equal input.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "warmcache.h"

struct mem_area {
	struct wc_area_desc desc;	/* desc.name is a copy (may be NULL) */
	uint8_t *kinds;			/* nr_pages */
	uint8_t *data;			/* nr_pages * WC_PAGE_SIZE; DATA pages only meaningful */
	uint64_t filled;		/* pages put so far */
};

struct mem_blob {
	char *name;
	void *data;
	size_t len;
};

struct mem_sink {
	struct wc_sink sink;
	struct mem_area *areas;
	size_t nr_areas;
	struct mem_blob *blobs;
	size_t nr_blobs;
	char *labels[32][2];
	size_t nr_labels;
	bool committed;
	unsigned put_calls;
	char id[WC_ID_LEN + 1];
};

struct mem_sink *mem_sink_new(void);
/* The sink is freed through sink->ops->free (wc_sink_free). */
const struct mem_blob *mem_sink_blob(const struct mem_sink *s, const char *name);
const char *mem_sink_label(const struct mem_sink *s, const char *key);

#endif
