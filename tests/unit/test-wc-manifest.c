// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Manifest and idx parsing: a stored manifest parses back; every truncation
 * and sampled bit flips are refused with -EBADMSG; a manifest under another
 * snapshot's name is refused; idx torn tails are ignored, damage flagged.
 * The fuzz entry points take the same paths.
 */
#include <fcntl.h>

#include "fuzz-api.h"
#include "wc-internal.h"
#include "wc-unit.h"

static enum wc_page_kind gen(void *userdata, uint64_t i, void *page)
{
	if (i % 3 == 1) {
		memset(page, 0, WC_PAGE_SIZE);
		return WC_PAGE_ZERO;
	}
	if (i % 3 == 2)
		return WC_PAGE_ABSENT;
	wu_page(21, i, page);
	return WC_PAGE_DATA;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *buf;

	WU_REQUIRE(fd >= 0 && fstat(fd, &st) == 0, "open %s: %m", path);
	buf = malloc((size_t)st.st_size + 1);
	WU_REQUIRE(buf && read(fd, buf, (size_t)st.st_size) == st.st_size, "read %s", path);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static int count_cb(void *userdata, const struct wc_key *key, uint32_t page)
{
	(*(uint64_t *)userdata)++;
	return 0;
}

int main(void)
{
	const char *dir = wu_store_dir();
	char id[WC_ID_LEN + 1], path[512];
	struct wc_snapshot *snap;
	struct wc_store *s = wu_open(dir, false);
	size_t len;
	uint8_t *buf;
	int r, bad;

	wu_ingest(s, 0x7000000, 90, gen, NULL, id);
	snprintf(path, sizeof(path), "%s/snapshots/%s.snap", dir, id);
	buf = slurp(path, &len);

	r = wc_snapshot_parse(buf, len, &snap);
	WU_REQUIRE(r == 0, "parse: %s", err_str(r));
	{
		const struct wc_area *a = wc_snapshot_area(snap, 0);

		WU_CHECK(!strcmp(wc_snapshot_id(snap), id) && wc_snapshot_nr_areas(snap) == 1 &&
			 a->start == 0x7000000 && a->nr_pages == 90 && a->nr_data == 30 &&
			 a->kinds[0] == WC_PAGE_DATA && a->kinds[1] == WC_PAGE_ZERO &&
			 a->kinds[2] == WC_PAGE_ABSENT && wc_snapshot_area(snap, 1) == NULL,
			 "parsed fields");
		WU_CHECK(wc_snapshot_created_ns(snap) > 1600000000ull * 1000000000ull, "created_ns");
	}
	wc_snapshot_close(snap);
	WU_CHECK(wc_fuzz_manifest(buf, len) == 0, "fuzz entry refuses a good manifest");

	/* Every truncation is refused. */
	bad = 0;
	for (size_t l = 0; l < len; l++) {
		r = wc_snapshot_parse(buf, l, &snap);
		if (r != -EBADMSG) {
			bad++;
			if (r == 0)
				wc_snapshot_close(snap);
		}
		if (wc_fuzz_manifest(buf, l) != -EBADMSG)
			bad++;
	}
	WU_CHECK(bad == 0, "%d truncations not refused", bad);

	/* Every bit of the header, and a sample of the payload, flipped. */
	bad = 0;
	for (size_t bit = 0; bit < len * 8; bit += bit < 256 ? 1 : 37) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		r = wc_snapshot_parse(buf, len, &snap);
		if (r != -EBADMSG) {
			bad++;
			if (r == 0)
				wc_snapshot_close(snap);
		}
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	WU_CHECK(bad == 0, "%d bit flips not refused", bad);

	/* Trailing bytes are refused too. */
	{
		uint8_t *longer = malloc(len + 1);

		WU_REQUIRE(longer, "oom");
		memcpy(longer, buf, len);
		longer[len] = 0;
		WU_CHECK(wc_snapshot_parse(longer, len + 1, &snap) == -EBADMSG, "trailing byte accepted");
		free(longer);
	}

	/* The manifest of one id under another id's name. */
	{
		char other[512];
		int fd;

		snprintf(other, sizeof(other), "%s/snapshots/0123456789abcdef.snap", dir);
		fd = open(other, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		WU_REQUIRE(fd >= 0 && write(fd, buf, len) == (ssize_t)len, "write: %m");
		close(fd);
		r = wc_snapshot_open(s, "0123456789abcdef", &snap);
		WU_CHECK(r == -EBADMSG, "renamed manifest accepted: %d", r);
		unlink(other);
	}
	free(buf);

	/* idx: clean, torn tail, damaged middle. */
	{
		struct wc_idx_parse_result res;
		char ipath[600];
		uint64_t n = 0;
		uint8_t *ib, *torn;
		size_t ilen;

		/* The store's only pack: find it through a key lookup. */
		WU_REQUIRE(s->nr_packs == 1, "%zu packs", s->nr_packs);
		snprintf(ipath, sizeof(ipath), "%s/packs/pack-%08x.idx", dir, s->packs[0].id);
		ib = slurp(ipath, &ilen);
		WU_CHECK(ilen == WC_IDX_HDR_SIZE + 30 * WC_IDX_REC_SIZE, "idx size %zu", ilen);
		r = wc_idx_parse(ib, ilen, 0, s->packs[0].id, 1000, count_cb, &n, &res);
		WU_CHECK(r == 0 && n == 30 && !res.damaged && res.consumed == ilen, "idx parse");
		WU_CHECK(wc_fuzz_index(ib, ilen) == 0, "fuzz entry refuses a good idx");

		/* A partial record and a garbage record at the end: torn tail. */
		torn = malloc(ilen + 50);
		WU_REQUIRE(torn, "oom");
		memcpy(torn, ib, ilen);
		memset(torn + ilen, 0x77, 50);
		n = 0;
		r = wc_idx_parse(torn, ilen + 50, 0, s->packs[0].id, 1000, count_cb, &n, &res);
		WU_CHECK(r == 0 && n == 30 && !res.damaged && res.consumed == ilen, "torn tail");
		WU_CHECK(wc_fuzz_index(torn, ilen + 50) == 0, "fuzz: torn tail");

		/* A bad record followed by good ones: damaged, the rest kept. */
		ib[WC_IDX_HDR_SIZE + 4 * WC_IDX_REC_SIZE + 1] ^= 1;
		n = 0;
		r = wc_idx_parse(ib, ilen, 0, s->packs[0].id, 1000, count_cb, &n, &res);
		WU_CHECK(r == 0 && n == 29 && res.damaged, "damaged middle: n=%" PRIu64, n);
		WU_CHECK(wc_fuzz_index(ib, ilen) == -EBADMSG, "fuzz: damaged middle");
		/* Records beyond the pack, and another pack's id. */
		ib[WC_IDX_HDR_SIZE + 4 * WC_IDX_REC_SIZE + 1] ^= 1;
		n = 0;
		r = wc_idx_parse(ib, ilen, 0, s->packs[0].id, 10, count_cb, &n, &res);
		WU_CHECK(r == 0 && n == 10, "max_page not enforced: %" PRIu64, n);
		r = wc_idx_parse(ib, ilen, 0, s->packs[0].id + 1, 1000, count_cb, &n, &res);
		WU_CHECK(r == -EBADMSG, "idx of another pack accepted");
		/* Incremental: from a record boundary. */
		n = 0;
		r = wc_idx_parse(ib + WC_IDX_HDR_SIZE + 10 * WC_IDX_REC_SIZE,
				 ilen - WC_IDX_HDR_SIZE - 10 * WC_IDX_REC_SIZE,
				 WC_IDX_HDR_SIZE + 10 * WC_IDX_REC_SIZE, s->packs[0].id, 1000,
				 count_cb, &n, &res);
		WU_CHECK(r == 0 && n == 20 && res.consumed == ilen, "incremental parse");
		free(torn);
		free(ib);
	}
	wc_store_close(s);
	return wu_exit("wc-manifest");
}
