// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * gc: a removed snapshot's pages are reclaimed, shared pages stay, the
 * remaining snapshot reads back exactly, also through handles whose index
 * predates the gc; an abandoned ingest's pages are garbage; a damaged
 * manifest stops gc before it deletes anything.
 */
#include <fcntl.h>

#include "wc-unit.h"

#define NA 3000u
#define NB 1000u

static enum wc_page_kind gen_a(void *userdata, uint64_t i, void *page)
{
	wu_page(1, i, page);
	return WC_PAGE_DATA;
}

/* Half of B is A's first pages, half its own. */
static enum wc_page_kind gen_b(void *userdata, uint64_t i, void *page)
{
	if (i < NB / 2)
		wu_page(1, i, page);
	else
		wu_page(2, i, page);
	return WC_PAGE_DATA;
}

static void check_b(struct wc_store *s, const char *id, const char *what)
{
	struct wc_snapshot *snap;
	struct wc_source *src;
	uint8_t *mem = aligned_alloc(WC_PAGE_SIZE, (size_t)NB * WC_PAGE_SIZE);
	static uint8_t want[WC_PAGE_SIZE];
	uint64_t bad = 0;
	int r;

	WU_REQUIRE(mem, "oom");
	memset(mem, 0, (size_t)NB * WC_PAGE_SIZE);
	r = wc_snapshot_open(s, id, &snap);
	WU_REQUIRE(r == 0, "%s: open: %s", what, err_str(r));
	r = wc_store_source_new(s, &src);
	WU_REQUIRE(r == 0, "source: %s", err_str(r));
	r = wc_snapshot_fill_area(snap, src, 0, mem);
	WU_CHECK(r == 0, "%s: fill: %s", what, err_str(r));
	for (uint64_t i = 0; i < NB; i++) {
		gen_b(NULL, i, want);
		bad += memcmp(mem + i * WC_PAGE_SIZE, want, WC_PAGE_SIZE) != 0;
	}
	WU_CHECK(bad == 0, "%s: %" PRIu64 " pages differ", what, bad);
	wc_source_free(src);
	wc_snapshot_close(snap);
	free(mem);
}

int main(void)
{
	const char *dir = wu_store_dir();
	char a[WC_ID_LEN + 1], b[WC_ID_LEN + 1];
	struct wc_store *s = wu_open(dir, false), *s_old, *s_mid;
	struct wc_gc_stats st;
	struct wc_verify_report rep;
	uint64_t before, after;
	int r;

	wu_ingest(s, 0x10000, NA, gen_a, NULL, a);
	wu_ingest(s, 0x10000, NB, gen_b, NULL, b);
	/* An ingest abandoned before commit: 200 pages of garbage. */
	{
		struct wc_sink *sink;
		struct wc_area_desc d = { .start = 0, .nr_pages = 200 };
		static uint8_t page[WC_PAGE_SIZE];

		r = wc_store_sink_new(s, &sink);
		WU_REQUIRE(r == 0, "sink: %s", err_str(r));
		WU_REQUIRE(sink->ops->begin_area(sink, &d) == 0, "begin_area");
		for (uint64_t i = 0; i < 200; i++) {
			wu_page(3, i, page);
			WU_REQUIRE(sink->ops->put_pages(sink, page, NULL, 1) == 0, "put_pages");
		}
		wc_sink_free(sink);
	}
	before = wu_pack_bytes(s);
	WU_CHECK(before == (uint64_t)(NA + NB / 2 + 200) * WC_PAGE_SIZE, "before gc: %" PRIu64, before);

	/* gc with nothing removed keeps every snapshot's pages. */
	s_old = wu_open(dir, false);
	check_b(s_old, b, "before gc");		/* s_old now holds the old pack open */
	s_mid = wu_open(dir, false);		/* index loaded, no pack opened */

	r = wc_store_remove(s, a);
	WU_REQUIRE(r == 0, "remove: %s", err_str(r));

	/* A damaged manifest: gc refuses, deletes nothing. */
	{
		char path[512];
		int fd;

		snprintf(path, sizeof(path), "%s/snapshots/00000000deadbeef.snap", dir);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		WU_REQUIRE(fd >= 0, "create %s: %m", path);
		WU_REQUIRE(write(fd, "garbage", 7) == 7, "write");
		close(fd);
		r = wc_store_gc(s, &st);
		WU_CHECK(r == -EBADMSG, "gc with a damaged manifest: %d", r);
		WU_CHECK(err_detail() && strstr(err_detail(), "00000000deadbeef"), "detail: %s",
			 err_detail() ? err_detail() : "(none)");
		WU_CHECK(wu_pack_bytes(s) == before, "gc deleted despite a damaged manifest");
		unlink(path);
	}

	r = wc_store_gc(s, &st);
	WU_REQUIRE(r == 0, "gc: %s", err_str(r));
	after = wu_pack_bytes(s);
	WU_CHECK(after == (uint64_t)NB * WC_PAGE_SIZE, "after gc: %" PRIu64 " bytes, want %u pages",
		 after, NB);
	WU_CHECK(st.pages_live == NB && st.bytes_before == before && st.bytes_after == after,
		 "stats: live %" PRIu64 " before %" PRIu64 " after %" PRIu64, st.pages_live,
		 st.bytes_before, st.bytes_after);
	WU_CHECK(st.pages_freed == NA + NB / 2 + 200 - NB, "pages_freed %" PRIu64, st.pages_freed);

	check_b(s, b, "after gc");
	check_b(s_old, b, "old handle, pack open before gc");
	check_b(s_mid, b, "old handle, pack opened after gc");
	r = wc_store_verify(s, NULL, NULL, NULL, &rep);
	WU_CHECK(r == 0 && rep.pages_checked == NB, "verify after gc: %s", err_str(r));

	/* A second gc finds nothing to do. */
	r = wc_store_gc(s, &st);
	WU_CHECK(r == 0 && st.bytes_after == after && st.pages_freed == 0, "second gc");
	/* Ingesting after gc dedups against the new pack only. */
	{
		char c[WC_ID_LEN + 1];

		wu_ingest(s_mid, 0x10000, NB, gen_b, NULL, c);
		WU_CHECK(wu_pack_bytes(s) == after, "re-ingest of B after gc stored pages again");
		wu_ingest(s_old, 0x10000, NA, gen_a, NULL, c);
		WU_CHECK(wu_pack_bytes(s) == after + (uint64_t)(NA - NB / 2) * WC_PAGE_SIZE,
			 "re-ingest of A after gc: %" PRIu64, wu_pack_bytes(s));
		r = wc_store_verify(s, NULL, NULL, NULL, &rep);
		WU_CHECK(r == 0, "verify: %s", err_str(r));
	}
	wc_store_close(s_old);
	wc_store_close(s_mid);
	wc_store_close(s);
	return wu_exit("wc-gc");
}
