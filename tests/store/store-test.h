/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef WF_TESTS_STORE_TEST_H
#define WF_TESTS_STORE_TEST_H

/*
 * Helpers shared by the store's robustness tests (tests/store/).
 *
 * Snapshots are generated deterministically from a struct st_spec, which is
 * stored in the snapshot itself as the label ST_SPEC_LABEL. A checker can
 * therefore open any snapshot it finds in a store, regenerate what it must
 * contain and compare it page by page, without sharing state with the
 * process that ingested it (which may have been killed).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "warmcache.h"

#define ST_SPEC_LABEL	"st.spec"
#define ST_BLOB_NAME	"st.blob"

extern int st_failures;

#define ST_CHECK(cond, ...) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);	\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		st_failures++;						\
	}								\
} while (0)

/* Abort the test (exit 1) when a setup step fails. */
#define ST_REQUIRE(cond, ...) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "FAIL (fatal) %s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		exit(1);						\
	}								\
} while (0)

/*
 * Page j of area a is, by a hash of (seed, a, j):
 *   absent  (pct_absent %), zero (pct_zero %),
 *   shared  (pct_shared %): one of pool_pages pages derived from pool_seed,
 *           so snapshots with the same pool_seed share them,
 *   unique  (the rest): derived from seed, a and j.
 */
struct st_spec {
	uint64_t seed;
	uint64_t pool_seed;
	uint32_t nr_areas;
	uint32_t nr_pages;		/* per area */
	uint32_t pool_pages;
	uint32_t pct_absent;
	uint32_t pct_zero;
	uint32_t pct_shared;
};

uint64_t st_mix64(uint64_t x);
/* A small seeded PRNG for test decisions. */
uint64_t st_rand(uint64_t *state);

void st_spec_format(const struct st_spec *spec, char *buf, size_t len);
int st_spec_parse(const char *s, struct st_spec *ret);

/* Kind of page j of area a, and its content (WC_PAGE_SIZE bytes; zero for
 * absent and zero pages). */
enum wc_page_kind st_page_kind(const struct st_spec *spec, uint32_t a, uint64_t j);
void st_page_fill(const struct st_spec *spec, uint32_t a, uint64_t j, void *page);
/* Raw generator: page @idx of stream @stream (never all zero). */
void st_gen_page(uint64_t stream, uint64_t idx, void *page);
uint64_t st_area_start(const struct st_spec *spec, uint32_t a);

/* Number of distinct data pages the spec contains, and their keys appended
 * to @keys (grown with realloc) when @keys is not NULL. */
int st_spec_keys(const struct st_spec *spec, struct wc_key **keys, size_t *nr);

/* When set, st_ingest() counts its steps here (one before the labels, one
 * per put_pages batch, one before commit, one after): a parent sharing
 * the counter can kill an ingesting child at a chosen point of progress,
 * whatever the load of the machine. */
extern volatile uint64_t *st_progress;
#define ST_STEPS_PER_AREA(nr_pages) (((nr_pages) + 63) / 64)

/* Ingest @spec as a snapshot. -errno from the first failing step; err_str()
 * holds the detail. */
int st_ingest(struct wc_store *store, const struct st_spec *spec, char ret_id[WC_ID_LEN + 1]);

/*
 * Open snapshot @id, regenerate it from its label and compare it: area
 * layout, page kinds, blob, and the content of every page filled through
 * @src (a fresh store source if NULL).
 * Returns 0 if it matches, -errno if opening or filling failed, 1 on a
 * mismatch; @why (may be NULL) receives a one-line reason.
 */
int st_check_snapshot(struct wc_store *store, struct wc_source *src, const char *id,
		      char *why, size_t why_len);

/* Check every listed snapshot; returns the number that failed, prints each. */
int st_check_all(struct wc_store *store, const char *ctx, size_t *ret_nr);

/* The distinct data keys of every listed snapshot (sorted, unique). */
int st_live_keys(struct wc_store *store, struct wc_key **ret, size_t *ret_nr);

/*
 * What gc must leave (docs/store.md, warmcache/gc.c): a pack with no live
 * page is deleted, one with fewer live pages than half its pages is
 * rewritten, others are kept. So afterwards the packs hold at most twice
 * the live bytes, and at least the live bytes. That bound only holds when
 * no page is stored twice: when writers raced (@racing_writers), two packs
 * may each hold the same live pages and each be kept, so it is not
 * checked. With ST_GC_STRICT=1 in the environment, gc must leave exactly
 * the live pages (no garbage, no duplicate) in every case.
 * Counts failures in st_failures; returns true if the strict bound holds.
 */
bool st_gc_bound_check(const char *ctx, const struct wc_store_stats *after, size_t nr_live,
		       bool racing_writers);
bool st_gc_strict(void);

/* A fresh temporary directory, removed at exit unless ST_KEEP is set. */
char *st_tmpdir(const char *tag);
int st_rm_rf(const char *path);

/* Sum of st_blocks*512 and of st_size of every file under @dir. */
int st_du(const char *dir, uint64_t *ret_alloc_bytes, uint64_t *ret_size_bytes);

/* Run the warmfork CLI (path from $WARMFORK_BIN) with --store @store and
 * @args (NULL-terminated). Its stdout+stderr go to *ret_out (may be NULL;
 * free() it). Returns the exit status, 128+sig if killed, -errno. */
int st_cli(const char *store, char **ret_out, const char *arg0, ...) __attribute__((sentinel));

/* Paths of the files in DIR/@sub whose name ends with @suffix, sorted. */
int st_list_files(const char *dir, const char *sub, const char *suffix,
		  char ***ret, size_t *ret_nr);
void st_free_list(char **v, size_t nr);

uint64_t st_now_us(void);

#endif
