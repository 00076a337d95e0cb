// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Test helper for the rfork end-to-end tests: make a snapshot of mixed,
 * deterministic content in a store, and check a snapshot against it.
 *
 *   rf-snaptool make  STORE MIB GEN     prints the new snapshot's id
 *   rf-snaptool check STORE ID MIB GEN  fill every area, compare, verify
 *   rf-snaptool list  STORE             snapshot ids, one a line
 *
 * Content of generation GEN: three areas (a heap of MIB MiB, a small named
 * stack, a sparse mapping). Heap pages: 1/8 zero, 1/16 absent, 1/8 from a
 * pool of 64 repeated pages, the rest unique; a page whose index is a
 * multiple of 20 also depends on GEN (about 5% of the data pages), so two
 * generations are ~95% similar.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/err.h"
#include "common/util.h"
#include "warmcache.h"

struct area_spec {
	uint64_t start;
	uint64_t nr_pages;
	const char *name;
};

static void spec(uint64_t mib, struct area_spec a[3])
{
	a[0] = (struct area_spec){ 0x555500000000ull, mib << 8, "[heap]" };
	a[1] = (struct area_spec){ 0x7ffd00000000ull, 33, "[stack]" };
	a[2] = (struct area_spec){ 0x7f0000000000ull, 4096, NULL };
}

/* Returns the kind; fills @p (4 KiB) for zero and data pages. */
static uint8_t page_of(unsigned a, uint64_t i, unsigned gen, uint8_t *p)
{
	uint64_t x;

	if (a == 2 && i % 64)
		return WC_PAGE_ABSENT;		/* sparse: one page in 64 present */
	if (i % 16 == 5)
		return WC_PAGE_ABSENT;
	if (i % 8 == 3) {
		memset(p, 0, WC_PAGE_SIZE);
		return WC_PAGE_ZERO;
	}
	if (i % 8 == 6)
		x = 1000 + (i / 8) % 64;
	else
		x = ((uint64_t)a << 48) ^ (i * 0x9e3779b97f4a7c15ull) ^ (i % 20 == 0 ? gen * 0xabcdefull : 0);
	x |= 1;
	for (size_t k = 0; k < WC_PAGE_SIZE / 8; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		((uint64_t *)p)[k] = x;
	}
	return WC_PAGE_DATA;
}

static int make(const char *dir, uint64_t mib, unsigned gen)
{
	struct area_spec as[3];
	struct wc_store *store;
	struct wc_sink *sink;
	char id[WC_ID_LEN + 1];
	uint8_t *buf, kinds[256];
	int r;

	spec(mib, as);
	buf = malloc(256 * WC_PAGE_SIZE);
	r = wc_store_open(dir, WC_OPEN_CREATE, NULL, &store);
	if (r < 0) {
		fprintf(stderr, "store %s: %s\n", dir, err_str(r));
		return 1;
	}
	r = wc_store_sink_new(store, &sink);
	for (unsigned a = 0; a < 3 && r >= 0; a++) {
		struct wc_area_desc d = { .start = as[a].start, .nr_pages = as[a].nr_pages,
					  .prot = 3, .name = as[a].name };

		r = sink->ops->begin_area(sink, &d);
		for (uint64_t off = 0; off < as[a].nr_pages && r >= 0; off += 256) {
			size_t n = MIN(as[a].nr_pages - off, 256);

			for (size_t i = 0; i < n; i++)
				kinds[i] = page_of(a, off + i, gen, buf + i * WC_PAGE_SIZE);
			r = sink->ops->put_pages(sink, buf, kinds, n);
		}
	}
	if (r >= 0)
		r = sink->ops->put_blob(sink, "engine.image", "rfork-test-image", 16);
	if (r >= 0)
		r = sink->ops->put_label(sink, "rfork-test-gen", gen == 1 ? "1" : "n");
	if (r >= 0)
		r = sink->ops->commit(sink, id);
	if (r < 0) {
		fprintf(stderr, "making snapshot: %s\n", err_str(r));
		return 1;
	}
	wc_sink_free(sink);
	wc_store_close(store);
	free(buf);
	printf("%s\n", id);
	return 0;
}

static int check(const char *dir, const char *id, uint64_t mib, unsigned gen)
{
	struct area_spec as[3];
	struct wc_store *store;
	struct wc_snapshot *snap;
	struct wc_source *src;
	struct wc_verify_report rep = {};
	uint8_t want[WC_PAGE_SIZE];
	const void *blob;
	size_t blob_len;
	int r, bad = 0;

	spec(mib, as);
	r = wc_store_open(dir, WC_OPEN_RDONLY, NULL, &store);
	if (r >= 0)
		r = wc_snapshot_open(store, id, &snap);
	if (r >= 0)
		r = wc_store_source_new(store, &src);
	if (r < 0) {
		fprintf(stderr, "snapshot %s in %s: %s\n", id, dir, err_str(r));
		return 1;
	}
	if (wc_snapshot_nr_areas(snap) != 3) {
		fprintf(stderr, "snapshot %s: %zu areas, want 3\n", id, wc_snapshot_nr_areas(snap));
		return 1;
	}
	for (unsigned a = 0; a < 3; a++) {
		const struct wc_area *ar = wc_snapshot_area(snap, a);
		size_t len = as[a].nr_pages * WC_PAGE_SIZE;
		uint8_t *mem;

		if (ar->start != as[a].start || ar->nr_pages != as[a].nr_pages ||
		    strcmp(ar->name ? ar->name : "", as[a].name ? as[a].name : "")) {
			fprintf(stderr, "area %u: header differs\n", a);
			return 1;
		}
		mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			return 1;
		r = wc_snapshot_fill_area(snap, src, a, mem);
		if (r < 0) {
			fprintf(stderr, "filling area %u: %s\n", a, err_str(r));
			return 1;
		}
		for (uint64_t i = 0; i < as[a].nr_pages; i++) {
			uint8_t kind = page_of(a, i, gen, want);

			if (ar->kinds[i] != kind ||
			    (kind != WC_PAGE_ABSENT && memcmp(mem + i * WC_PAGE_SIZE, want, WC_PAGE_SIZE))) {
				if (bad++ < 5)
					fprintf(stderr, "area %u page %llu: kind %u want %u, content %s\n",
						a, (unsigned long long)i, ar->kinds[i], kind,
						kind == WC_PAGE_ABSENT ? "-" : "differs");
			}
		}
		munmap(mem, len);
	}
	if (wc_snapshot_blob(snap, "engine.image", &blob, &blob_len) < 0 || blob_len != 16 ||
	    memcmp(blob, "rfork-test-image", 16)) {
		fprintf(stderr, "blob engine.image missing or different\n");
		bad++;
	}
	if (!wc_snapshot_label(snap, "rfork-test-gen") ||
	    strcmp(wc_snapshot_label(snap, "rfork-test-gen"), gen == 1 ? "1" : "n")) {
		fprintf(stderr, "label rfork-test-gen missing or different\n");
		bad++;
	}
	r = wc_store_verify(store, wc_snapshot_id(snap), NULL, NULL, &rep);
	if (r < 0) {
		fprintf(stderr, "verify: %s (%llu bad, %llu missing)\n", err_str(r),
			(unsigned long long)rep.pages_bad, (unsigned long long)rep.pages_missing);
		bad++;
	}
	wc_source_free(src);
	wc_snapshot_close(snap);
	wc_store_close(store);
	if (bad) {
		fprintf(stderr, "snapshot %s: %d differences\n", id, bad);
		return 1;
	}
	return 0;
}

static int list(const char *dir)
{
	struct wc_store *store;
	char **ids;
	size_t nr;
	int r;

	r = wc_store_open(dir, WC_OPEN_CREATE, NULL, &store);
	if (r >= 0)
		r = wc_store_list(store, &ids, &nr);
	if (r < 0) {
		fprintf(stderr, "store %s: %s\n", dir, err_str(r));
		return 1;
	}
	for (size_t i = 0; i < nr; i++)
		printf("%s\n", ids[i]);
	wc_id_list_free(ids, nr);
	wc_store_close(store);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t mib, gen;

	if (argc == 3 && !strcmp(argv[1], "list"))
		return list(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "make") && !parse_u64(argv[3], 10, &mib) &&
	    !parse_u64(argv[4], 10, &gen))
		return make(argv[2], mib, gen);
	if (argc == 6 && !strcmp(argv[1], "check") && !parse_u64(argv[4], 10, &mib) &&
	    !parse_u64(argv[5], 10, &gen))
		return check(argv[2], argv[3], mib, gen);
	fprintf(stderr, "usage: rf-snaptool make STORE MIB GEN | check STORE ID MIB GEN | list STORE\n");
	return 2;
}
