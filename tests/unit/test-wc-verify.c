// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Damage is found and named: a flipped bit in a stored page (verify and
 * fill), a truncated pack, a lost idx (rebuilt from the pack), a damaged
 * manifest.
 */
#include <dirent.h>
#include <fcntl.h>

#include "wc-unit.h"

/* Enough pages for the read engine's verifier thread (io_uring path). */
#define N 2000u

static enum wc_page_kind gen(void *userdata, uint64_t i, void *page)
{
	wu_page(11, i, page);
	return WC_PAGE_DATA;
}

struct lines {
	int n;
	char last[768];
};

static void collect(void *userdata, const char *line)
{
	struct lines *l = userdata;

	l->n++;
	snprintf(l->last, sizeof(l->last), "%s", line);
}

/* The only pack of the store, by name. */
static void pack_path(const char *dir, const char *ext, char *out, size_t len)
{
	char d[512];
	struct dirent *de;
	DIR *dp;

	snprintf(d, sizeof(d), "%s/packs", dir);
	dp = opendir(d);
	WU_REQUIRE(dp, "opendir %s: %m", d);
	out[0] = '\0';
	while ((de = readdir(dp)))
		if (!strncmp(de->d_name, "pack-", 5) && strstr(de->d_name, ".pack"))
			snprintf(out, len, "%s/%.13s.%s", d, de->d_name, ext);
	closedir(dp);
	WU_REQUIRE(out[0], "no pack in %s", d);
}

static void flip(const char *path, off_t off)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	uint8_t c;

	WU_REQUIRE(fd >= 0 && pread(fd, &c, 1, off) == 1, "read %s: %m", path);
	c ^= 0x04;
	WU_REQUIRE(pwrite(fd, &c, 1, off) == 1, "write %s: %m", path);
	close(fd);
}

static int verify(const char *dir, const char *id, struct lines *l, struct wc_verify_report *rep)
{
	struct wc_store *s = wu_open(dir, false);
	int r;

	memset(l, 0, sizeof(*l));
	memset(rep, 0, sizeof(*rep));
	r = wc_store_verify(s, id, collect, l, rep);
	wc_store_close(s);
	return r;
}

int main(void)
{
	const char *dir = wu_store_dir();
	char id[WC_ID_LEN + 1], pack[600], idx[600], want[128];
	struct wc_verify_report rep;
	struct lines l;
	struct wc_store *s = wu_open(dir, false);
	int r;

	wu_ingest(s, 0x200000, N, gen, NULL, id);
	wc_store_close(s);
	pack_path(dir, "pack", pack, sizeof(pack));
	pack_path(dir, "idx", idx, sizeof(idx));

	r = verify(dir, NULL, &l, &rep);
	WU_CHECK(r == 0 && l.n == 0 && rep.pages_checked == N, "clean store: %d, %d lines", r, l.n);

	/* Flip a bit in the 8th stored page = page 7 of the area. */
	flip(pack, 7 * WC_PAGE_SIZE + 100);
	r = verify(dir, id, &l, &rep);
	snprintf(want, sizeof(want), "snapshot %s area 0 (area) page 7 at 0x%x", id, 0x200000 + 7 * 4096);
	WU_CHECK(r == -EBADMSG && rep.pages_bad == 1 && l.n == 1, "flipped bit: %d, %" PRIu64 " bad, %d lines",
		 r, rep.pages_bad, l.n);
	WU_CHECK(strstr(l.last, want) && strstr(l.last, "does not match"), "line: %s", l.last);

	/* Filling stops with -EBADMSG naming snapshot, area, page, address,
	 * through io_uring (verifier thread) and through pread. */
	for (int no_uring = 0; no_uring < 2; no_uring++) {
		struct wc_snapshot *snap;
		struct wc_source *src;
		uint8_t *mem = aligned_alloc(WC_PAGE_SIZE, (size_t)N * WC_PAGE_SIZE);

		s = wu_open(dir, no_uring);
		WU_REQUIRE(mem && wc_snapshot_open(s, id, &snap) == 0, "open");
		WU_REQUIRE(wc_store_source_new(s, &src) == 0, "source");
		memset(mem, 0, (size_t)N * WC_PAGE_SIZE);
		err_clear();
		r = wc_snapshot_fill_area(snap, src, 0, mem);
		WU_CHECK(r == -EBADMSG, "fill of a damaged page (no_uring %d): %d", no_uring, r);
		WU_CHECK(err_detail() && strstr(err_detail(), want), "detail: %s",
			 err_detail() ? err_detail() : "(none)");
		wc_source_free(src);
		wc_snapshot_close(snap);
		wc_store_close(s);
		free(mem);
	}
	flip(pack, 7 * WC_PAGE_SIZE + 100);	/* repair */

	/* Lost idx: rebuilt from the pack when the store is opened. */
	WU_REQUIRE(unlink(idx) == 0, "unlink %s: %m", idx);
	r = verify(dir, NULL, &l, &rep);
	WU_CHECK(r == 0 && rep.pages_checked == N, "after idx loss: %d (%s)", r, l.last);
	WU_CHECK(access(idx, F_OK) == 0, "idx not rebuilt on disk");

	/* Damaged idx (a record in the middle): rebuilt too. */
	flip(idx, 32 + 5 * 32 + 3);
	r = verify(dir, NULL, &l, &rep);
	WU_CHECK(r == 0, "after idx damage: %d (%s)", r, l.last);

	/* Truncated pack: the last pages are reported, not used. */
	WU_REQUIRE(truncate(pack, (off_t)(N - 2) * WC_PAGE_SIZE) == 0, "truncate: %m");
	r = verify(dir, id, &l, &rep);
	WU_CHECK(r == -EBADMSG && rep.pages_bad + rep.pages_missing == 2 && l.n == 2,
		 "truncated pack: %d, %" PRIu64 " bad %" PRIu64 " missing, %d lines", r, rep.pages_bad,
		 rep.pages_missing, l.n);

	/* A damaged manifest is reported by verify of everything. */
	{
		char path[512];
		int fd;

		snprintf(path, sizeof(path), "%s/snapshots/%s.snap", dir, id);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		WU_REQUIRE(fd >= 0 && ftruncate(fd, 40) == 0, "truncate manifest: %m");
		close(fd);
		r = verify(dir, NULL, &l, &rep);
		WU_CHECK(r == -EBADMSG && rep.manifests_bad == 1 && strstr(l.last, id),
			 "damaged manifest: %d, %s", r, l.last);
	}
	return wu_exit("wc-verify");
}
