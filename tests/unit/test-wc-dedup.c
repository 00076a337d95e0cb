// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Deduplication: within one snapshot, across snapshots of one handle, and
 * across handles (index loaded from disk). Pack bytes are the measure.
 */
#include "wc-unit.h"

struct gen {
	uint64_t stream;	/* unique pages come from this stream */
	unsigned pct_shared;	/* % of pages from the shared stream 0 */
};

static enum wc_page_kind gen_page(void *userdata, uint64_t i, void *page)
{
	struct gen *g = userdata;

	if (wu_mix64(i * 31 + 7) % 100 < g->pct_shared)
		wu_page(0, i, page);
	else
		wu_page(g->stream, i, page);
	return WC_PAGE_DATA;
}

static enum wc_page_kind same_page(void *userdata, uint64_t i, void *page)
{
	wu_page(5, 5, page);
	return WC_PAGE_DATA;
}

int main(void)
{
	const char *dir = wu_store_dir();
	char id[WC_ID_LEN + 1];
	struct wc_store *s;
	const uint64_t n = 2000, page = WC_PAGE_SIZE;
	uint64_t b0, b1, b2, b3;

	s = wu_open(dir, false);
	b0 = wu_pack_bytes(s);
	WU_CHECK(b0 == 0, "empty store has %" PRIu64 " pack bytes", b0);

	/* 2000 copies of one page: stored once. */
	wu_ingest(s, 0x100000, n, same_page, NULL, id);
	b1 = wu_pack_bytes(s);
	WU_CHECK(b1 == page, "one distinct page took %" PRIu64 " bytes", b1);

	/* A 90%-shared pair: the second adds only its 10%. */
	struct gen g1 = { 1, 90 }, g2 = { 2, 90 };
	uint64_t shared = 0;

	for (uint64_t i = 0; i < n; i++)
		shared += wu_mix64(i * 31 + 7) % 100 < 90;
	wu_ingest(s, 0x100000, n, gen_page, &g1, id);
	b2 = wu_pack_bytes(s);
	WU_CHECK(b2 - b1 == n * page, "first snapshot: %" PRIu64 " bytes for %" PRIu64 " pages",
		 b2 - b1, n);
	wu_ingest(s, 0x100000, n, gen_page, &g2, id);
	b3 = wu_pack_bytes(s);
	WU_CHECK(b3 - b2 == (n - shared) * page, "second snapshot added %" PRIu64 " bytes, want %" PRIu64,
		 b3 - b2, (n - shared) * page);
	wc_store_close(s);

	/* A new handle loads the index from the idx files: nothing new. */
	s = wu_open(dir, true);
	wu_ingest(s, 0x100000, n, gen_page, &g2, id);
	WU_CHECK(wu_pack_bytes(s) == b3, "re-ingest from a new handle grew the store");
	{
		struct wc_store_stats st;

		WU_CHECK(wc_store_stats(s, &st) == 0 && st.nr_snapshots == 4 &&
			 st.nr_pages == 1 + n + (n - shared), "stats: %" PRIu64 " snapshots %" PRIu64 " pages",
			 st.nr_snapshots, st.nr_pages);
	}

	/* A snapshot made from keys alone (the network receiver's case):
	 * no page is stored again and it reads back like the original. */
	{
		struct wc_area_desc d = { .start = 0x100000, .nr_pages = 6 };
		struct wc_sink *sink;
		struct wc_key keys[3], unknown;
		const uint8_t kinds[6] = { WC_PAGE_DATA, WC_PAGE_ZERO, WC_PAGE_DATA,
					   WC_PAGE_ABSENT, WC_PAGE_DATA, WC_PAGE_ZERO };
		static uint8_t pg[WC_PAGE_SIZE];
		uint8_t *mem = aligned_alloc(WC_PAGE_SIZE, 6 * WC_PAGE_SIZE);
		struct wc_snapshot *snap;
		struct wc_source *src;
		char kid[WC_ID_LEN + 1];
		int r;

		WU_REQUIRE(mem, "oom");
		for (int i = 0; i < 3; i++) {
			wu_page(1, (uint64_t)i * 7 + 1, pg);	/* stream 1: in the store */
			if (wu_mix64((uint64_t)(i * 7 + 1) * 31 + 7) % 100 < 90)
				wu_page(0, (uint64_t)i * 7 + 1, pg);
			wc_key_of(pg, &keys[i]);
		}
		wu_page(77, 77, pg);
		wc_key_of(pg, &unknown);
		r = wc_store_sink_new(s, &sink);
		WU_REQUIRE(r == 0 && sink->ops->put_keys, "sink: %s", err_str(r));
		WU_REQUIRE(sink->ops->begin_area(sink, &d) == 0, "begin_area");
		r = sink->ops->put_keys(sink, kinds, (const struct wc_key[]){ keys[0], unknown, keys[2] }, 6);
		WU_CHECK(r == -ENOENT, "put_keys with a key the store lacks: %d", r);
		r = sink->ops->put_keys(sink, kinds, keys, 4);
		WU_CHECK(r == 0, "put_keys: %s", err_str(r));
		r = sink->ops->put_keys(sink, kinds + 4, keys + 2, 2);
		WU_CHECK(r == 0, "put_keys: %s", err_str(r));
		r = sink->ops->commit(sink, kid);
		WU_REQUIRE(r == 0, "commit: %s", err_str(r));
		wc_sink_free(sink);
		WU_CHECK(wu_pack_bytes(s) == b3, "put_keys stored pages");

		r = wc_snapshot_open(s, kid, &snap);
		WU_REQUIRE(r == 0, "open: %s", err_str(r));
		WU_REQUIRE(wc_store_source_new(s, &src) == 0, "source");
		memset(mem, 0, 6 * WC_PAGE_SIZE);
		r = wc_snapshot_fill_area(snap, src, 0, mem);
		WU_CHECK(r == 0, "fill: %s", err_str(r));
		for (int i = 0, k = 0; i < 6; i++) {
			struct wc_key got;

			WU_CHECK(wc_snapshot_area(snap, 0)->kinds[i] == kinds[i], "kind %d", i);
			if (kinds[i] != WC_PAGE_DATA) {
				WU_CHECK(wc_page_is_zero(mem + i * WC_PAGE_SIZE), "page %d not zero", i);
				continue;
			}
			wc_key_of(mem + i * WC_PAGE_SIZE, &got);
			WU_CHECK(wc_key_eq(&got, &keys[k]), "page %d content", i);
			k++;
		}
		wc_source_free(src);
		wc_snapshot_close(snap);
		free(mem);
	}
	wc_store_close(s);
	return wu_exit("wc-dedup");
}
