// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Sink -> store -> source round trip: several areas of mixed pages (unique,
 * repeated, zero, absent) come back byte for byte through wc_snapshot_fill,
 * wc_snapshot_fill_area and read_pages, with io_uring and with the pread
 * baseline; zero and absent pages are never written to.
 */
#include <sys/mman.h>
#include <sys/wait.h>

#include "wc-unit.h"

#define NR_AREAS	3
static const uint64_t area_pages[NR_AREAS] = { 1, 777, 3000 };

/* Kind and content of page i of area a. */
static enum wc_page_kind page_of(int a, uint64_t i, void *page)
{
	uint64_t h = wu_mix64((uint64_t)a << 40 | i);

	switch (h % 8) {
	case 0:
		return WC_PAGE_ABSENT;
	case 1:
		memset(page, 0, WC_PAGE_SIZE);
		return WC_PAGE_ZERO;
	case 2:
	case 3:
		wu_page(99, h % 5, page);	/* one of 5 repeated pages */
		return WC_PAGE_DATA;
	default:
		wu_page((uint64_t)a, i, page);
		return WC_PAGE_DATA;
	}
}

static void ingest(struct wc_store *s, char id[WC_ID_LEN + 1])
{
	uint8_t *buf = aligned_alloc(WC_PAGE_SIZE, 100 * WC_PAGE_SIZE);
	uint8_t kinds[100];
	struct wc_sink *sink;
	int r;

	WU_REQUIRE(buf, "oom");
	r = wc_store_sink_new(s, &sink);
	WU_REQUIRE(r == 0, "sink_new: %s", err_str(r));
	r = sink->ops->put_label(sink, "k", "v1");
	WU_CHECK(r == 0, "put_label: %s", err_str(r));
	r = sink->ops->put_label(sink, "k", "v2");	/* replaces */
	WU_CHECK(r == 0, "put_label: %s", err_str(r));
	r = sink->ops->put_blob(sink, "engine.image", "abc", 3);
	WU_CHECK(r == 0, "put_blob: %s", err_str(r));
	for (int a = 0; a < NR_AREAS; a++) {
		struct wc_area_desc d = { .start = 0x400000ull * (a + 1), .nr_pages = area_pages[a],
					  .prot = 1 + a, .flags = 10 + a,
					  .name = a == 1 ? NULL : "named" };

		r = sink->ops->begin_area(sink, &d);
		WU_REQUIRE(r == 0, "begin_area: %s", err_str(r));
		/* Uneven batches, to cross every boundary. */
		for (uint64_t done = 0, step = 1; done < area_pages[a]; step = step * 2 % 97 + 1) {
			size_t n = area_pages[a] - done < step ? (size_t)(area_pages[a] - done) : step;

			for (size_t i = 0; i < n; i++) {
				enum wc_page_kind k = page_of(a, done + i, buf + i * WC_PAGE_SIZE);

				kinds[i] = k == WC_PAGE_ABSENT ? WC_PAGE_ABSENT : WC_PAGE_DATA;
				if (k == WC_PAGE_ABSENT)	/* bytes must be ignored */
					memset(buf + i * WC_PAGE_SIZE, 0x5a, WC_PAGE_SIZE);
			}
			r = sink->ops->put_pages(sink, buf, kinds, n);
			WU_REQUIRE(r == 0, "put_pages: %s", err_str(r));
			done += n;
		}
	}
	/* An area must get exactly its pages. */
	{
		struct wc_area_desc d = { .start = 0x10000000, .nr_pages = 2 };

		r = sink->ops->begin_area(sink, &d);
		WU_REQUIRE(r == 0, "begin_area: %s", err_str(r));
		r = sink->ops->put_pages(sink, buf, NULL, 3);
		WU_CHECK(r == -EINVAL, "3 pages into a 2-page area: %d", r);
		r = sink->ops->put_pages(sink, NULL, (const uint8_t[]){ 0, 0 }, 2);
		WU_CHECK(r == 0, "all-absent pages without a buffer: %s", err_str(r));
	}
	r = sink->ops->commit(sink, id);
	WU_REQUIRE(r == 0, "commit: %s", err_str(r));
	wc_sink_free(sink);
	free(buf);
}

static void check(struct wc_store *s, const char *id, bool per_area)
{
	struct wc_snapshot *snap;
	struct wc_source *src;
	struct wc_fill_target t[NR_AREAS];
	uint8_t *mem[NR_AREAS], *want;
	const void *blob;
	size_t blen;
	int r;

	want = aligned_alloc(WC_PAGE_SIZE, WC_PAGE_SIZE);
	WU_REQUIRE(want, "oom");
	r = wc_snapshot_open(s, id, &snap);
	WU_REQUIRE(r == 0, "open %s: %s", id, err_str(r));
	WU_CHECK(!strcmp(wc_snapshot_id(snap), id), "id %s", wc_snapshot_id(snap));
	WU_CHECK(wc_snapshot_nr_areas(snap) == NR_AREAS + 1, "%zu areas", wc_snapshot_nr_areas(snap));
	WU_CHECK(wc_snapshot_label(snap, "k") && !strcmp(wc_snapshot_label(snap, "k"), "v2"),
		 "label k");
	WU_CHECK(wc_snapshot_label(snap, "nope") == NULL, "label nope");
	r = wc_snapshot_blob(snap, "engine.image", &blob, &blen);
	WU_CHECK(r == 0 && blen == 3 && !memcmp(blob, "abc", 3), "blob");
	WU_CHECK(wc_snapshot_blob(snap, "nope", &blob, &blen) == -ENOENT, "blob nope");
	r = wc_store_source_new(s, &src);
	WU_REQUIRE(r == 0, "source_new: %s", err_str(r));

	for (int a = 0; a < NR_AREAS; a++) {
		const struct wc_area *ar = wc_snapshot_area(snap, (size_t)a);

		WU_CHECK(ar->start == 0x400000ull * (a + 1) && ar->nr_pages == area_pages[a] &&
			 ar->prot == (uint32_t)(1 + a) && ar->flags == (uint32_t)(10 + a),
			 "area %d header", a);
		WU_CHECK(!strcmp(ar->name, a == 1 ? "" : "named"), "area %d name \"%s\"", a, ar->name);
		mem[a] = mmap(NULL, area_pages[a] * WC_PAGE_SIZE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		WU_REQUIRE(mem[a] != MAP_FAILED, "mmap");
		/* Poison: fill must not touch zero and absent pages. */
		memset(mem[a], 0xaa, area_pages[a] * WC_PAGE_SIZE);
		t[a].area_idx = (size_t)a;
		t[a].dst = mem[a];
	}
	if (per_area) {
		for (int a = 0; a < NR_AREAS; a++) {
			r = wc_snapshot_fill_area(snap, src, (size_t)a, mem[a]);
			WU_CHECK(r == 0, "fill_area %d: %s", a, err_str(r));
		}
	} else {
		r = wc_snapshot_fill(snap, src, t, NR_AREAS);
		WU_CHECK(r == 0, "fill: %s", err_str(r));
	}
	for (int a = 0; a < NR_AREAS; a++) {
		const struct wc_area *ar = wc_snapshot_area(snap, (size_t)a);
		uint64_t bad = 0, k = 0;

		for (uint64_t i = 0; i < area_pages[a]; i++) {
			enum wc_page_kind kind = page_of(a, i, want);
			const uint8_t *got = mem[a] + i * WC_PAGE_SIZE;

			if (ar->kinds[i] != (kind == WC_PAGE_ABSENT ? WC_PAGE_ABSENT : kind))
				bad++;
			if (kind == WC_PAGE_DATA) {
				struct wc_key key;

				wc_key_of(want, &key);
				if (!wc_key_eq(&key, &ar->keys[k++]) || memcmp(got, want, WC_PAGE_SIZE))
					bad++;
			} else if (got[0] != 0xaa || got[WC_PAGE_SIZE - 1] != 0xaa) {
				bad++;
			}
		}
		WU_CHECK(bad == 0 && k == ar->nr_data, "area %d: %" PRIu64 " bad pages", a, bad);
		munmap(mem[a], area_pages[a] * WC_PAGE_SIZE);
	}

	/* read_pages straight: the same key twice, into two places. */
	{
		const struct wc_area *ar = wc_snapshot_area(snap, 2);
		uint8_t *two = aligned_alloc(WC_PAGE_SIZE, 2 * WC_PAGE_SIZE);
		struct wc_page_req reqs[2] = { { ar->keys[0], two }, { ar->keys[0], two + WC_PAGE_SIZE } };
		struct wc_key k0, k1;

		WU_REQUIRE(two, "oom");
		r = src->ops->read_pages(src, reqs, 2);
		WU_CHECK(r == 0, "read_pages: %s", err_str(r));
		wc_key_of(two, &k0);
		wc_key_of(two + WC_PAGE_SIZE, &k1);
		WU_CHECK(wc_key_eq(&k0, &ar->keys[0]) && wc_key_eq(&k1, &ar->keys[0]), "read_pages content");
		free(two);
	}
	wc_source_free(src);
	wc_snapshot_close(snap);
	free(want);
}

int main(void)
{
	const char *dir = wu_store_dir();
	char id[WC_ID_LEN + 1];
	struct wc_store *s;

	s = wu_open(dir, false);
	ingest(s, id);
	check(s, id, false);
	check(s, id, true);
	printf("io_uring in use: %s\n", wc_store_uses_uring(s) ? "yes" : "no (pread)");
	/* One handle on both sides of a fork, both reading at once: the
	 * child must not use the parent's rings. */
	{
		pid_t pid = fork();
		int status;

		WU_REQUIRE(pid >= 0, "fork: %m");
		if (pid == 0) {
			check(s, id, false);
			check(s, id, true);
			_exit(wu_failures ? 1 : 0);
		}
		check(s, id, false);
		check(s, id, true);
		WU_REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid: %m");
		WU_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child read failed: 0x%x", status);
	}
	wc_store_close(s);

	/* io_uring without the helper thread. */
	{
		struct wc_store_opts o = { .sz = sizeof(o), .no_threads = true };
		int r = wc_store_open(dir, 0, &o, &s);

		WU_REQUIRE(r == 0, "open: %s", err_str(r));
		check(s, id, false);
		wc_store_close(s);
	}

	/* A second handle (fresh index from disk), baseline path. */
	s = wu_open(dir, true);
	WU_CHECK(!wc_store_uses_uring(s), "no_uring ignored");
	check(s, id, false);
	/* Prefix lookup. */
	{
		struct wc_snapshot *snap;
		char pfx[7];
		int r;

		memcpy(pfx, id, 6);
		pfx[6] = '\0';
		r = wc_snapshot_open(s, pfx, &snap);
		WU_CHECK(r == 0 && !strcmp(wc_snapshot_id(snap), id), "prefix open: %s", err_str(r));
		if (r == 0)
			wc_snapshot_close(snap);
		r = wc_snapshot_open(s, "0123456789abcdef", &snap);
		WU_CHECK(r == -ENOENT || !strcmp(id, "0123456789abcdef"), "unknown id: %d", r);
	}
	wc_store_close(s);
	return wu_exit("wc-roundtrip");
}
