/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef RF_TEST_MEMSTORE_H
#define RF_TEST_MEMSTORE_H

/*
 * An in-memory page store for the remote-fork tests: a wc_source over its
 * pages and a wc_sink that records a snapshot (areas with kinds and keys,
 * blobs, labels) and adds its pages to the store on commit. Test double
 * only: not thread safe, no persistence.
 */

#include "warmcache.h"

struct mem_area {
	struct wc_area_desc desc;
	char *name;
	uint8_t *kinds;
	struct wc_key *keys;		/* per page (data pages only) */
	uint64_t got;			/* pages received */
};

struct mem_snap {
	char id[WC_ID_LEN + 1];
	struct mem_area *areas;
	size_t nr_areas;
	char *blob_names[8];
	void *blobs[8];
	size_t blob_lens[8];
	size_t nr_blobs;
	char *label_keys[8], *label_values[8];
	size_t nr_labels;
};

struct mem_store {
	/* open hash of pages */
	struct wc_key *keys;
	uint8_t **pages;
	size_t cap, nr;
	struct mem_snap snaps[8];
	size_t nr_snaps;
	uint64_t pages_put;		/* put_pages calls' data pages seen (for stats) */
	int fail_commit;		/* if set, commit fails with this -errno */
	bool put_keys;			/* sinks offer put_keys */
	uint64_t keys_put;		/* data pages recorded by put_keys */
};

struct mem_store *mem_store_new(void);
void mem_store_free(struct mem_store *ms);
int mem_store_add(struct mem_store *ms, const struct wc_key *k, const void *page);
const uint8_t *mem_store_get(const struct mem_store *ms, const struct wc_key *k);

int mem_source_new(struct mem_store *ms, struct wc_source **ret);
int mem_sink_new(struct mem_store *ms, struct wc_sink **ret);

/* Content of page @i of area @a of @snap: NULL for zero/absent. */
const uint8_t *mem_snap_page(const struct mem_store *ms, const struct mem_snap *snap, size_t a,
			     uint64_t i, uint8_t *ret_kind);

#endif
