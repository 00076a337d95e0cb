// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Damaged stores: every kind of damage is found, reported precisely
 * (snapshot, area, page) and confined to what it touches.
 *
 *  - a flipped bit in a stored page
 *  - a truncated pack (cut mid-page), a deleted pack
 *  - truncated, garbage and subtly wrong manifests (manifest-craft.h)
 *  - missing, torn and damaged .idx files (rebuilt from the packs, as
 *    docs/store.md documents)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "manifest-craft.h"
#include "store-test.h"

static char *base;

static char *new_store(const char *tag)
{
	struct wc_store *store;
	char *dir;
	int r;

	ST_REQUIRE(asprintf(&dir, "%s/%s", base, tag) > 0, "asprintf");
	r = wc_store_open(dir, WC_OPEN_CREATE, NULL, &store);
	ST_REQUIRE(r == 0, "create %s: %s", dir, err_str(r));
	wc_store_close(store);
	return dir;
}

static struct wc_store *open_store(const char *dir)
{
	struct wc_store *store;
	int r;

	r = wc_store_open(dir, 0, NULL, &store);
	ST_REQUIRE(r == 0, "open %s: %s", dir, err_str(r));
	return store;
}

static void ingest(const char *dir, const struct st_spec *s, char id[WC_ID_LEN + 1])
{
	struct wc_store *store = open_store(dir);
	int r;

	r = st_ingest(store, s, id);
	ST_REQUIRE(r == 0, "ingest: %s", err_str(r));
	wc_store_close(store);
}

static struct st_spec unique_spec(uint64_t seed, uint32_t nr_areas, uint32_t nr_pages)
{
	/* No shared pool: the snapshots of a case share no page. */
	return (struct st_spec){ .seed = seed, .nr_areas = nr_areas, .nr_pages = nr_pages,
				 .pct_zero = 10, .pct_absent = 5 };
}

static int check(const char *dir, const char *id, char *why, size_t len)
{
	struct wc_store *store = open_store(dir);
	int r = st_check_snapshot(store, NULL, id, why, len);

	wc_store_close(store);
	return r;
}

struct lines {
	char buf[8192];
	size_t len;
	unsigned nr;
};

static void collect(void *ud, const char *line)
{
	struct lines *l = ud;
	int n = snprintf(l->buf + l->len, sizeof(l->buf) - l->len, "%s\n", line);

	if (n > 0 && l->len + n < sizeof(l->buf))
		l->len += n;
	l->nr++;
}

static int verify(const char *dir, const char *id, struct lines *lines,
		  struct wc_verify_report *rep)
{
	struct wc_store *store = open_store(dir);
	int r;

	memset(lines, 0, sizeof(*lines));
	memset(rep, 0, sizeof(*rep));
	r = wc_store_verify(store, id, collect, lines, rep);
	wc_store_close(store);
	return r;
}

/* Where page content @page sits in the packs of @dir: path and offset. */
static int find_page(const char *dir, const void *page, char **ret_path, off_t *ret_off)
{
	char **packs;
	size_t nr;
	int found = -ENOENT;

	ST_REQUIRE(st_list_files(dir, "packs", ".pack", &packs, &nr) == 0, "list packs");
	for (size_t i = 0; i < nr && found < 0; i++) {
		char *buf;
		size_t len;

		if (read_file(packs[i], &buf, &len) < 0)
			continue;
		for (size_t off = 0; off + WC_PAGE_SIZE <= len; off += WC_PAGE_SIZE)
			if (memcmp(buf + off, page, WC_PAGE_SIZE) == 0) {
				*ret_path = strdup(packs[i]);
				*ret_off = off;
				found = 0;
				break;
			}
		free(buf);
	}
	st_free_list(packs, nr);
	return found;
}

static void flip_bit(const char *path, off_t off, unsigned bit)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	uint8_t b;

	ST_REQUIRE(fd >= 0 && pread(fd, &b, 1, off) == 1, "read %s", path);
	b ^= 1u << bit;
	ST_REQUIRE(pwrite(fd, &b, 1, off) == 1, "write %s", path);
	close(fd);
}

/* The detail of a failed fill must name the snapshot, the area and the
 * page: its id, the area index or name, and the page index or address. */
static bool names_page(const char *s, const char *id, const struct st_spec *spec,
		       uint32_t a, uint64_t j)
{
	char area_name[32], idx[32], addr[32], area_idx[32];

	snprintf(area_name, sizeof(area_name), "st-area-%u", a);
	snprintf(area_idx, sizeof(area_idx), "area %u", a);
	snprintf(idx, sizeof(idx), "page %" PRIu64, j);
	snprintf(addr, sizeof(addr), "%" PRIx64, st_area_start(spec, a) + j * WC_PAGE_SIZE);
	return strstr(s, id) && (strstr(s, area_name) || strstr(s, area_idx)) &&
	       (strstr(s, idx) || strstr(s, addr));
}

static void case_flipped_bit(void)
{
	char *dir = new_store("flip");
	struct st_spec sx = unique_spec(0xf1, 2, 48), sy = unique_spec(0xf2, 1, 48);
	char x[WC_ID_LEN + 1], y[WC_ID_LEN + 1], why[512], *pack, *out;
	uint8_t page[WC_PAGE_SIZE];
	struct wc_verify_report rep;
	struct lines lines;
	uint32_t a = 1;
	uint64_t j = 7;
	off_t off;
	int r;

	ingest(dir, &sx, x);
	ingest(dir, &sy, y);
	while (st_page_kind(&sx, a, j) != WC_PAGE_DATA)
		j++;
	st_page_fill(&sx, a, j, page);
	ST_REQUIRE(find_page(dir, page, &pack, &off) == 0, "flip: page not found in the packs");
	flip_bit(pack, off + 1000, 3);

	/* fill: -EBADMSG naming snapshot, area, page */
	r = check(dir, x, why, sizeof(why));
	ST_CHECK(r == -EBADMSG, "flip: fill of %s returned %d (%s), expected -EBADMSG", x, r, why);
	ST_CHECK(r != -EBADMSG || names_page(why, x, &sx, a, j),
		 "flip: detail does not name snapshot %s area %u page %" PRIu64 ": %s", x, a, j, why);
	r = check(dir, y, why, sizeof(why));
	ST_CHECK(r == 0, "flip: untouched snapshot %s: %s", y, why);

	/* verify: exactly that page, named */
	r = verify(dir, NULL, &lines, &rep);
	ST_CHECK(r == -EBADMSG, "flip: verify returned %d", r);
	ST_CHECK(rep.pages_bad == 1 && rep.pages_missing == 0,
		 "flip: verify found %" PRIu64 " bad, %" PRIu64 " missing pages, expected 1 bad",
		 rep.pages_bad, rep.pages_missing);
	ST_CHECK(names_page(lines.buf, x, &sx, a, j), "flip: verify report does not name the page:\n%s",
		 lines.buf);
	ST_CHECK(!strstr(lines.buf, y), "flip: verify blames the intact snapshot %s:\n%s", y, lines.buf);
	r = verify(dir, y, &lines, &rep);
	ST_CHECK(r == 0 && rep.pages_checked > 0, "flip: verify %s returned %d after %" PRIu64 " pages",
		 y, r, rep.pages_checked);

	r = st_cli(dir, &out, "verify", NULL);
	ST_CHECK(r != 0 && r < 128, "flip: warmfork verify exited %d", r);
	ST_CHECK(names_page(out, x, &sx, a, j), "flip: warmfork verify does not name the page:\n%s", out);
	free(out);
	r = st_cli(dir, &out, "verify", y, NULL);
	ST_CHECK(r == 0, "flip: warmfork verify %s exited %d:\n%s", y, r, out);
	free(out);

	/* The source refuses the page too. */
	{
		struct wc_store *store = open_store(dir);
		struct wc_source *src;
		struct wc_page_req req;
		uint8_t dst[WC_PAGE_SIZE];

		wc_key_of(page, &req.key);
		req.dst = dst;
		ST_REQUIRE(wc_store_source_new(store, &src) == 0, "source");
		r = src->ops->read_pages(src, &req, 1);
		ST_CHECK(r == -EBADMSG, "flip: read_pages of the damaged page returned %d", r);
		wc_source_free(src);
		wc_store_close(store);
	}
	/* And mapped in place (a post-copy restore's check): refused, while
	 * an intact page is mapped where its content is. */
	{
		struct wc_store *store = open_store(dir);
		uint8_t other[WC_PAGE_SIZE];
		struct wc_mapped *m = NULL;
		const uint8_t *ptr = NULL;
		struct wc_key keys[2];
		uint64_t k = 0;

		wc_key_of(page, &keys[1]);
		while (st_page_kind(&sy, 0, k) != WC_PAGE_DATA)
			k++;
		st_page_fill(&sy, 0, k, other);
		wc_key_of(other, &keys[0]);
		r = wc_store_map_keys(store, keys, 2, (const uint8_t *[2]){}, &m);
		ST_CHECK(r == -EBADMSG && !m, "flip: map_keys of the damaged page returned %d", r);
		r = wc_store_map_keys(store, keys, 1, &ptr, &m);
		ST_CHECK(r == 0 && ptr && memcmp(ptr, other, WC_PAGE_SIZE) == 0,
			 "flip: map_keys of an intact page returned %d, or the wrong bytes", r);
		wc_mapped_free(m);
		wc_store_close(store);
	}
	free(pack);
	free(dir);
}

static void case_truncated_pack(void)
{
	char *dir = new_store("trunc");
	struct st_spec sx = unique_spec(0x71, 1, 64), sy = unique_spec(0x72, 1, 64);
	char x[WC_ID_LEN + 1], y[WC_ID_LEN + 1], why[512], *out;
	struct wc_verify_report rep;
	struct lines lines;
	char **packs;
	size_t nr;
	struct stat stb;
	int r;

	ingest(dir, &sx, x);
	ingest(dir, &sy, y);
	ST_REQUIRE(st_list_files(dir, "packs", ".pack", &packs, &nr) == 0 && nr == 1,
		   "trunc: expected one pack, found %zu", nr);
	/* y's pages were appended last: cut three and a half of them. */
	ST_REQUIRE(stat(packs[0], &stb) == 0, "stat");
	ST_REQUIRE(truncate(packs[0], stb.st_size - 3 * WC_PAGE_SIZE - 2048) == 0, "truncate");

	r = check(dir, x, why, sizeof(why));
	ST_CHECK(r == 0, "trunc: snapshot %s before the cut: %s", x, why);
	r = check(dir, y, why, sizeof(why));
	ST_CHECK(r == -EBADMSG || r == -EIO, "trunc: fill of %s returned %d (%s)", y, r, why);
	ST_CHECK(r >= 0 || strstr(why, y), "trunc: detail does not name %s: %s", y, why);
	r = verify(dir, NULL, &lines, &rep);
	ST_CHECK(r == -EBADMSG && rep.pages_bad + rep.pages_missing >= 3,
		 "trunc: verify returned %d, %" PRIu64 " bad %" PRIu64 " missing", r, rep.pages_bad,
		 rep.pages_missing);
	ST_CHECK(strstr(lines.buf, y) && !strstr(lines.buf, x),
		 "trunc: verify report should name %s only:\n%s", y, lines.buf);
	r = st_cli(dir, &out, "verify", NULL);
	ST_CHECK(r != 0 && r < 128 && strstr(out, y), "trunc: warmfork verify exited %d:\n%s", r, out);
	free(out);

	/* Recovery: drop the damaged snapshot, gc, and ingest it again. */
	r = st_cli(dir, &out, "rm", y, NULL);
	ST_CHECK(r == 0, "trunc: warmfork rm exited %d:\n%s", r, out);
	free(out);
	r = st_cli(dir, &out, "gc", NULL);
	ST_CHECK(r == 0, "trunc: warmfork gc exited %d:\n%s", r, out);
	free(out);
	r = verify(dir, NULL, &lines, &rep);
	ST_CHECK(r == 0, "trunc: verify after rm+gc returned %d:\n%s", r, lines.buf);
	ingest(dir, &sy, y);
	r = check(dir, y, why, sizeof(why));
	ST_CHECK(r == 0, "trunc: re-ingested snapshot %s: %s", y, why);
	r = check(dir, x, why, sizeof(why));
	ST_CHECK(r == 0, "trunc: snapshot %s after recovery: %s", x, why);
	st_free_list(packs, nr);
	free(dir);
}

/* A pack and its idx deleted: every page of the snapshot is missing. */
static void case_missing_pack(void)
{
	char *dir = new_store("nopack");
	struct st_spec sx = unique_spec(0x51, 2, 24);
	char x[WC_ID_LEN + 1], why[512], *out;
	struct wc_verify_report rep;
	struct lines lines;
	char **files;
	size_t nr, nr_keys;
	int r;

	ingest(dir, &sx, x);
	ST_REQUIRE(st_spec_keys(&sx, NULL, &nr_keys) == 0, "keys");
	ST_REQUIRE(st_list_files(dir, "packs", "", &files, &nr) == 0 && nr == 2,
		   "nopack: expected a pack and its idx, found %zu files", nr);
	for (size_t i = 0; i < nr; i++)
		ST_REQUIRE(unlink(files[i]) == 0, "unlink %s", files[i]);
	st_free_list(files, nr);

	r = check(dir, x, why, sizeof(why));
	ST_CHECK(r == -EBADMSG && strstr(why, x), "nopack: fill returned %d (%s)", r, why);
	r = verify(dir, NULL, &lines, &rep);
	ST_CHECK(r == -EBADMSG && rep.pages_missing == nr_keys && rep.pages_bad == 0,
		 "nopack: verify returned %d, %" PRIu64 " missing (expected %zu), %" PRIu64 " bad",
		 r, rep.pages_missing, nr_keys, rep.pages_bad);
	ST_CHECK(strstr(lines.buf, x), "nopack: verify does not name %s:\n%s", x, lines.buf);
	r = st_cli(dir, &out, "verify", x, NULL);
	ST_CHECK(r != 0 && r < 128 && strstr(out, x), "nopack: warmfork verify exited %d:\n%s", r, out);
	free(out);
	/* Nothing to reclaim, nothing to break: gc and a new ingest work. */
	r = st_cli(dir, &out, "gc", NULL);
	ST_CHECK(r == 0, "nopack: warmfork gc exited %d:\n%s", r, out);
	free(out);
	{
		struct st_spec sy = unique_spec(0x52, 1, 24);
		char y[WC_ID_LEN + 1];

		ingest(dir, &sy, y);
		r = check(dir, y, why, sizeof(why));
		ST_CHECK(r == 0, "nopack: new snapshot %s: %s", y, why);
	}
	free(dir);
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ST_REQUIRE(fd >= 0 && write_full(fd, buf, len) == 0, "write %s", path);
	close(fd);
}

static void case_manifests(void)
{
	char *dir = new_store("manifest");
	struct st_spec sx = unique_spec(0x31, 2, 16), sy = unique_spec(0x32, 1, 16);
	char x[WC_ID_LEN + 1], y[WC_ID_LEN + 1], why[512], path[4096], *orig;
	size_t orig_len;
	unsigned rejected_optional = 0;

	ingest(dir, &sx, x);
	ingest(dir, &sy, y);
	snprintf(path, sizeof(path), "%s/snapshots/%s.snap", dir, x);
	ST_REQUIRE(read_file(path, &orig, &orig_len) == 0, "read %s", path);

	/* The pristine file parses from memory too. */
	{
		struct wc_snapshot *snap;
		int r = wc_snapshot_parse(orig, orig_len, &snap);

		ST_CHECK(r == 0, "manifest: wc_snapshot_parse of a valid manifest: %s", err_str(r));
		if (r == 0) {
			ST_CHECK(strcmp(wc_snapshot_id(snap), x) == 0, "manifest: parsed id %s",
				 wc_snapshot_id(snap));
			wc_snapshot_close(snap);
		}
	}

	for (int m = 0; m < ST_MUT_COUNT; m++) {
		struct wc_store *store;
		struct wc_snapshot *snap;
		uint8_t *bad;
		size_t bad_len;
		char **ids;
		size_t nr;
		int r, rp;

		r = st_manifest_mutate((const uint8_t *)orig, orig_len, m, 0x1234 + m, &bad, &bad_len);
		ST_REQUIRE(r == 0, "manifest: mutation %s: %d", st_mut_name(m), r);
		write_bytes(path, bad, bad_len);

		store = open_store(dir);
		r = wc_snapshot_open(store, x, &snap);
		if (r == 0)
			wc_snapshot_close(snap);
		rp = wc_snapshot_parse(bad, bad_len, &snap);
		if (rp == 0)
			wc_snapshot_close(snap);
		if (st_mut_must_fail(m)) {
			ST_CHECK(r == -EBADMSG, "manifest %s: wc_snapshot_open returned %d, expected -EBADMSG",
				 st_mut_name(m), r);
			ST_CHECK(rp == -EBADMSG, "manifest %s: wc_snapshot_parse returned %d, expected -EBADMSG",
				 st_mut_name(m), rp);
		} else if (m == ST_MUT_ID_OTHER) {
			/* A manifest under another snapshot's name. */
			ST_CHECK(r == -EBADMSG, "manifest %s: wc_snapshot_open returned %d, expected -EBADMSG",
				 st_mut_name(m), r);
		} else {
			printf("manifest %s: open %d, parse %d\n", st_mut_name(m), r, rp);
			ST_CHECK(r == 0 || r == -EBADMSG, "manifest %s: open returned %d", st_mut_name(m), r);
			if (r < 0)
				rejected_optional++;
		}
		/* The other snapshot is untouched; the damaged one is still
		 * listed (it is not silently dropped) and verify names it. */
		ST_CHECK(wc_store_list(store, &ids, &nr) == 0 && nr == 2,
			 "manifest %s: %zu snapshots listed", st_mut_name(m), nr);
		wc_id_list_free(ids, nr);
		r = st_check_snapshot(store, NULL, y, why, sizeof(why));
		ST_CHECK(r == 0, "manifest %s: intact snapshot %s: %s", st_mut_name(m), y, why);
		wc_store_close(store);
		if (st_mut_must_fail(m) && m % 4 == 0) {
			/* (the CLI on a sample of them: each run costs a fork) */
			char *out;

			r = st_cli(dir, &out, "verify", NULL);
			ST_CHECK(r != 0 && r < 128 && strstr(out, x),
				 "manifest %s: warmfork verify exited %d:\n%s", st_mut_name(m), r, out);
			free(out);
			r = st_cli(dir, &out, "ls", NULL);
			ST_CHECK(strstr(out, y), "manifest %s: warmfork ls lost %s:\n%s",
				 st_mut_name(m), y, out);
			free(out);
		}
		free(bad);
	}
	printf("manifest: %u of the policy-dependent defects rejected\n", rejected_optional);
	write_bytes(path, orig, orig_len);
	{
		char why2[512];
		int r = check(dir, x, why2, sizeof(why2));

		ST_CHECK(r == 0, "manifest: restored manifest %s: %s", x, why2);
	}
	free(orig);
	free(dir);
}

static void case_index(void)
{
	char *dir = new_store("idx");
	struct st_spec sx = unique_spec(0x41, 1, 64), sy = unique_spec(0x42, 2, 32);
	char x[WC_ID_LEN + 1], y[WC_ID_LEN + 1], why[512];
	struct wc_verify_report rep;
	struct lines lines;
	char **idx;
	size_t nr;
	int r;

	ingest(dir, &sx, x);
	ingest(dir, &sy, y);
	ST_REQUIRE(st_list_files(dir, "packs", ".idx", &idx, &nr) == 0 && nr >= 1, "list idx");

	/* 0. Missing, store opened read-only: rebuilt in memory only. */
	for (size_t i = 0; i < nr; i++)
		ST_REQUIRE(unlink(idx[i]) == 0, "unlink %s", idx[i]);
	{
		struct wc_store *ro;

		r = wc_store_open(dir, WC_OPEN_RDONLY, NULL, &ro);
		ST_REQUIRE(r == 0, "open read-only: %s", err_str(r));
		r = st_check_snapshot(ro, NULL, x, why, sizeof(why));
		ST_CHECK(r == 0, "idx missing, read-only: snapshot %s: %s", x, why);
		wc_store_close(ro);
		for (size_t i = 0; i < nr; i++)
			ST_CHECK(access(idx[i], F_OK) < 0, "idx missing: a read-only handle wrote %s", idx[i]);
	}

	/* 1. Missing: rebuilt from the packs (docs/store.md). */
	r = check(dir, x, why, sizeof(why));
	ST_CHECK(r == 0, "idx missing: snapshot %s: %s", x, why);
	r = check(dir, y, why, sizeof(why));
	ST_CHECK(r == 0, "idx missing: snapshot %s: %s", y, why);
	r = verify(dir, NULL, &lines, &rep);
	ST_CHECK(r == 0, "idx missing: verify returned %d:\n%s", r, lines.buf);
	for (size_t i = 0; i < nr; i++)
		ST_CHECK(access(idx[i], F_OK) == 0, "idx missing: %s was not rebuilt", idx[i]);

	/* 2. Torn tail (a crash while appending a record): ignored. */
	{
		int fd = open(idx[0], O_WRONLY | O_APPEND | O_CLOEXEC);
		char junk[20];

		memset(junk, 0xa7, sizeof(junk));
		ST_REQUIRE(fd >= 0 && write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk),
			   "append %s", idx[0]);
		close(fd);
	}
	r = check(dir, x, why, sizeof(why));
	ST_CHECK(r == 0, "idx torn: snapshot %s: %s", x, why);
	r = verify(dir, NULL, &lines, &rep);
	ST_CHECK(r == 0, "idx torn: verify returned %d:\n%s", r, lines.buf);
	/* A later ingest appends after the valid records. */
	{
		struct st_spec sz = unique_spec(0x43, 1, 16);
		char z[WC_ID_LEN + 1];

		ingest(dir, &sz, z);
		r = check(dir, z, why, sizeof(why));
		ST_CHECK(r == 0, "idx torn: snapshot ingested after the tear %s: %s", z, why);
	}

	/* 3. A damaged record in the middle: rebuilt, nothing lost. */
	flip_bit(idx[0], 32 + 32 * 5 + 3, 1);
	r = check(dir, x, why, sizeof(why));
	ST_CHECK(r == 0, "idx damaged: snapshot %s: %s", x, why);
	r = check(dir, y, why, sizeof(why));
	ST_CHECK(r == 0, "idx damaged: snapshot %s: %s", y, why);
	r = verify(dir, NULL, &lines, &rep);
	ST_CHECK(r == 0, "idx damaged: verify returned %d:\n%s", r, lines.buf);

	/* 4. Garbage header. */
	{
		char junk[32];

		memset(junk, 0x3c, sizeof(junk));
		write_bytes(idx[0], junk, sizeof(junk));
	}
	r = check(dir, x, why, sizeof(why));
	ST_CHECK(r == 0, "idx garbage: snapshot %s: %s", x, why);
	r = verify(dir, NULL, &lines, &rep);
	ST_CHECK(r == 0, "idx garbage: verify returned %d:\n%s", r, lines.buf);
	st_free_list(idx, nr);
	free(dir);
}

int main(void)
{
	base = st_tmpdir("corrupt");
	ST_REQUIRE(base, "tmpdir");

	/* line-buffered: the progress shows even when a timeout kills us */
	setvbuf(stdout, NULL, _IOLBF, 0);
	case_flipped_bit();
	printf("flipped bit: %d failures so far\n", st_failures);
	case_truncated_pack();
	printf("truncated pack: %d failures so far\n", st_failures);
	case_missing_pack();
	printf("missing pack: %d failures so far\n", st_failures);
	case_manifests();
	printf("manifests: %d failures so far\n", st_failures);
	case_index();
	printf("index: %d failures so far\n", st_failures);

	if (st_failures) {
		printf("FAILED: %d check(s)\n", st_failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
