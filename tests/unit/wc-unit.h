/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WC_UNIT_H
#define WC_UNIT_H

/*
 * Helpers for the store's unit tests (test-wc-*.c): a scratch store in a
 * temporary directory, deterministic page contents, assertions that count
 * failures. Header-only: each test is one program.
 */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "warmcache.h"

static int wu_failures;

#define WU_CHECK(cond, ...) do {						\
	if (!(cond)) {								\
		fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);	\
		fprintf(stderr, __VA_ARGS__);					\
		fputc('\n', stderr);						\
		wu_failures++;							\
	}									\
} while (0)

#define WU_REQUIRE(cond, ...) do {						\
	if (!(cond)) {								\
		fprintf(stderr, "FAIL (fatal) %s:%d: %s: ", __FILE__, __LINE__, #cond); \
		fprintf(stderr, __VA_ARGS__);					\
		fputc('\n', stderr);						\
		exit(1);							\
	}									\
} while (0)

static inline uint64_t wu_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* A page determined by (stream, idx), never all zero. */
static inline void wu_page(uint64_t stream, uint64_t idx, void *page)
{
	uint64_t *p = page, s = wu_mix64(stream * 0x9e3779b97f4a7c15ull + idx + 1);

	for (size_t i = 0; i < WC_PAGE_SIZE / 8; i++)
		p[i] = s = wu_mix64(s + i);
	p[0] |= 1;
}

static char wu_dir[256];

static int wu_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void wu_cleanup(void)
{
	if (wu_dir[0])
		nftw(wu_dir, wu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh temporary directory (removed at exit); returns "<tmp>/store". */
static inline const char *wu_store_dir(void)
{
	static char store[300];
	const char *tmp = getenv("TMPDIR");

	snprintf(wu_dir, sizeof(wu_dir), "%s/wc-unit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	WU_REQUIRE(mkdtemp(wu_dir), "mkdtemp: %m");
	atexit(wu_cleanup);
	snprintf(store, sizeof(store), "%s/store", wu_dir);
	return store;
}

static inline struct wc_store *wu_open(const char *dir, bool no_uring)
{
	struct wc_store_opts opts = { .sz = sizeof(opts), .no_uring = no_uring };
	struct wc_store *s;
	int r = wc_store_open(dir, WC_OPEN_CREATE, &opts, &s);

	WU_REQUIRE(r == 0, "wc_store_open(%s): %s", dir, err_str(r));
	return s;
}

/* One area of @nr pages given by @page_of(i, buf) -> kind; commit. */
typedef enum wc_page_kind (*wu_page_fn)(void *userdata, uint64_t i, void *page);

static inline void wu_ingest(struct wc_store *s, uint64_t start, uint64_t nr, wu_page_fn fn,
			     void *userdata, char id[WC_ID_LEN + 1])
{
	struct wc_area_desc d = { .start = start, .nr_pages = nr, .prot = 3, .name = "area" };
	struct wc_sink *sink;
	uint8_t *buf = aligned_alloc(WC_PAGE_SIZE, 64 * WC_PAGE_SIZE);
	uint8_t kinds[64];
	int r;

	WU_REQUIRE(buf, "oom");
	r = wc_store_sink_new(s, &sink);
	WU_REQUIRE(r == 0, "sink_new: %s", err_str(r));
	r = sink->ops->begin_area(sink, &d);
	WU_REQUIRE(r == 0, "begin_area: %s", err_str(r));
	for (uint64_t done = 0; done < nr; ) {
		size_t n = nr - done < 64 ? (size_t)(nr - done) : 64;

		for (size_t i = 0; i < n; i++) {
			enum wc_page_kind k = fn(userdata, done + i, buf + i * WC_PAGE_SIZE);

			if (k == WC_PAGE_ZERO)
				memset(buf + i * WC_PAGE_SIZE, 0, WC_PAGE_SIZE);
			kinds[i] = k == WC_PAGE_ABSENT ? WC_PAGE_ABSENT : WC_PAGE_DATA;
		}
		r = sink->ops->put_pages(sink, buf, kinds, n);
		WU_REQUIRE(r == 0, "put_pages: %s", err_str(r));
		done += n;
	}
	r = sink->ops->commit(sink, id);
	WU_REQUIRE(r == 0, "commit: %s", err_str(r));
	wc_sink_free(sink);
	free(buf);
}

static inline uint64_t wu_pack_bytes(struct wc_store *s)
{
	struct wc_store_stats st;
	int r = wc_store_stats(s, &st);

	WU_REQUIRE(r == 0, "stats: %s", err_str(r));
	return st.pack_bytes;
}

static inline int wu_exit(const char *name)
{
	if (wu_failures) {
		fprintf(stderr, "%s: %d failure(s)\n", name, wu_failures);
		return 1;
	}
	printf("%s: ok\n", name);
	return 0;
}

#endif
