// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Writes the seed corpus of the fuzz targets:
 *
 *   fuzz-gen-corpus OUT_DIR     (writes into OUT_DIR/manifest/ and OUT_DIR/index/)
 *
 * Valid files come from a real store (a few small snapshots of different
 * shapes ingested into a temp dir), the variants from manifest-craft.h and
 * from damaging the idx files. Names follow fuzz-replay's convention: ok-*
 * must be accepted, bad-* refused, any-* only must not crash.
 * Regenerate with: ninja -C BUILD fuzz-corpus
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/err.h"
#include "common/util.h"
#include "manifest-craft.h"
#include "store-test.h"

static const char *out;

static void put(const char *sub, const char *name, const void *buf, size_t len)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s/%s", out, sub, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ST_REQUIRE(fd >= 0 && write_full(fd, buf, len) == 0, "write %s", path);
	close(fd);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

int main(int argc, char **argv)
{
	static const struct st_spec specs[] = {
		/* one small area, all kinds */
		{ .seed = 1, .nr_areas = 1, .nr_pages = 8, .pct_zero = 20, .pct_absent = 20 },
		/* three areas with shared pages */
		{ .seed = 2, .pool_seed = 9, .nr_areas = 3, .nr_pages = 5, .pool_pages = 2,
		  .pct_shared = 50, .pct_zero = 10 },
		/* an area of nothing but zero and absent pages */
		{ .seed = 3, .nr_areas = 1, .nr_pages = 6, .pct_zero = 50, .pct_absent = 50 },
		/* no areas at all */
		{ .seed = 4, .nr_areas = 0, .nr_pages = 0 },
		/* a bigger one (its idx has a few hundred records) */
		{ .seed = 5, .pool_seed = 9, .nr_areas = 2, .nr_pages = 160, .pool_pages = 16,
		  .pct_shared = 30, .pct_zero = 10, .pct_absent = 5 },
	};
	char ids[sizeof(specs) / sizeof(specs[0])][WC_ID_LEN + 1];
	struct wc_store *store;
	char *dir, path[4096], name[128];
	char **idx;
	size_t nr_idx;
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: fuzz-gen-corpus OUT_DIR\n");
		return 2;
	}
	out = argv[1];
	snprintf(path, sizeof(path), "%s/manifest", out);
	ST_REQUIRE(mkdir_p(path, 0755) == 0, "mkdir %s", path);
	snprintf(path, sizeof(path), "%s/index", out);
	ST_REQUIRE(mkdir_p(path, 0755) == 0, "mkdir %s", path);

	dir = st_tmpdir("corpus");
	ST_REQUIRE(dir, "tmpdir");
	r = wc_store_open(dir, WC_OPEN_CREATE, NULL, &store);
	ST_REQUIRE(r == 0, "store: %s", err_str(r));
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		r = st_ingest(store, &specs[i], ids[i]);
		ST_REQUIRE(r == 0, "ingest %zu: %s", i, err_str(r));
	}
	wc_store_close(store);

	/* Manifests: each valid one, and every defect of the second one
	 * (it has several areas, so all mutations apply). */
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		char *buf;
		size_t len;

		snprintf(path, sizeof(path), "%s/snapshots/%s.snap", dir, ids[i]);
		ST_REQUIRE(read_file(path, &buf, &len) == 0, "read %s", path);
		snprintf(name, sizeof(name), "ok-snap-%zu", i);
		put("manifest", name, buf, len);
		if (i == 1)
			for (int m = 0; m < ST_MUT_COUNT; m++) {
				uint8_t *bad;
				size_t bad_len;

				r = st_manifest_mutate((uint8_t *)buf, len, m, 77 + m, &bad, &bad_len);
				ST_REQUIRE(r == 0, "mutate %s: %d", st_mut_name(m), r);
				/* id-other only fails against a file name */
				snprintf(name, sizeof(name), "%s-%s",
					 st_mut_must_fail(m) ? "bad" : "any", st_mut_name(m));
				put("manifest", name, bad, bad_len);
				free(bad);
			}
		free(buf);
	}

	/* Index files: the real ones, and damaged variants of the first. */
	ST_REQUIRE(st_list_files(dir, "packs", ".idx", &idx, &nr_idx) == 0 && nr_idx > 0, "idx");
	for (size_t i = 0; i < nr_idx; i++) {
		char *buf;
		size_t len;
		uint32_t pack_id;
		uint8_t *v;

		ST_REQUIRE(read_file(idx[i], &buf, &len) == 0, "read %s", idx[i]);
		ST_REQUIRE(len >= 32 + 3 * 32, "idx %s is too short (%zu)", idx[i], len);
		snprintf(name, sizeof(name), "ok-idx-%zu", i);
		put("index", name, buf, len);
		if (i > 0) {
			free(buf);
			continue;
		}
		memcpy(&pack_id, buf + 16, 4);
		v = malloc(len + 64);
		ST_REQUIRE(v, "malloc");

		/* a torn tail: a partial record after the valid ones */
		memcpy(v, buf, len);
		memset(v + len, 0xa5, 17);
		put("index", "ok-idx-torn-partial", v, len + 17);
		/* an invalid whole last record: also a torn tail */
		memcpy(v, buf, len);
		v[len - 5] ^= 0x40;
		put("index", "ok-idx-torn-last", v, len);
		/* a header not completely written yet */
		put("index", "ok-idx-hdr-partial", buf, 20);
		/* header only */
		put("index", "ok-idx-hdr-only", buf, 32);
		/* damaged header */
		memcpy(v, buf, len);
		v[2] ^= 1;
		put("index", "bad-idx-magic", v, len);
		memcpy(v, buf, len);
		put_u32(v + 8, 2);
		put("index", "bad-idx-version", v, len);
		memcpy(v, buf, len);
		put_u32(v + 12, 16);
		put("index", "bad-idx-rec-size", v, len);
		memcpy(v, buf, len);
		v[24] ^= 0x80;
		put("index", "bad-idx-hdr-check", v, len);
		/* a damaged record followed by valid ones */
		memcpy(v, buf, len);
		v[32 + 32 + 7] ^= 0x10;
		put("index", "bad-idx-mid-record", v, len);
		/* a record with a valid check whose page is absurd */
		memcpy(v, buf, len);
		{
			uint8_t *rec = v + 32;
			uint64_t check;

			put_u32(rec + 16, 0xfffffff0u);
			check = XXH3_64bits_withSeed(rec, 24, pack_id);
			memcpy(rec + 24, &check, 8);
		}
		put("index", "bad-idx-page-huge", v, len);
		/* reserved field set, valid check */
		memcpy(v, buf, len);
		{
			uint8_t *rec = v + 64;
			uint64_t check;

			put_u32(rec + 20, 1);
			check = XXH3_64bits_withSeed(rec, 24, pack_id);
			memcpy(rec + 24, &check, 8);
		}
		put("index", "bad-idx-reserved", v, len);
		free(v);
		free(buf);
	}
	st_free_list(idx, nr_idx);
	printf("corpus written to %s\n", out);
	return 0;
}
