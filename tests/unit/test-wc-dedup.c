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
	wc_store_close(s);
	return wu_exit("wc-dedup");
}
