// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Writes the seed corpus of fuzz-rf-wire (tests/fuzz/corpus/rf-wire/): a handshake
 * opening, a whole valid push (areas, a batch with every page kind, its
 * pages, a blob in two chunks, a label, COMMIT), a push whose page does
 * not match its key, an unkeyed lazy push (rfork --lazy) with and
 * without its flag, and the same with a RUNS batch (valid; in a keyed
 * push; longer than its area). Run by hand when the wire format changes:
 *   build/tests/remote/rf-fuzz-seeds tests/fuzz/corpus/rf-wire
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rfork/transfer.h"

static uint8_t buf[8 << 20];
static size_t len;

static uint8_t *rec(uint16_t type, size_t payload)
{
	uint8_t *p = buf + len;

	rf_put_u32(p, RF_FRAME_HDR + payload);
	rf_put_u16(p + 4, type);
	rf_put_u16(p + 6, 0);
	len += RF_REC_HDR + RF_FRAME_HDR + payload;
	return p + 8;
}

/* The AREA record of every seed: a [heap] of @nr_pages pages at 0x400000,
 * rw-, with the map flags @map_flags. */
static void heap_area(uint64_t nr_pages, uint32_t map_flags)
{
	uint8_t *p = rec(RF_MSG_AREA, 28 + 6);

	rf_put_u64(p, 0x400000);
	rf_put_u64(p + 8, nr_pages);
	rf_put_u32(p + 16, 3);
	rf_put_u32(p + 20, map_flags);
	rf_put_u16(p + 24, 1);
	rf_put_u16(p + 26, 6);
	memcpy(p + 28, "[heap]", 6);
}

/* A 3-byte engine image in one BLOB, then the COMMIT of a push of one
 * area in @batches batches of @pages pages in all. */
static void image_and_commit(uint64_t batches, uint64_t pages)
{
	uint8_t *p = rec(RF_MSG_BLOB, 18 + 12 + 3);

	rf_put_u64(p, 3);
	rf_put_u64(p + 8, 0);
	rf_put_u16(p + 16, 12);
	memcpy(p + 18, "engine.image", 12);
	memcpy(p + 30, "abc", 3);
	p = rec(RF_MSG_COMMIT, 24);
	rf_put_u64(p, 1);
	rf_put_u64(p + 8, batches);
	rf_put_u64(p + 16, pages);
}

static void save(const char *dir, const char *name)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wbe");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	len = 0;
}

/* A push; @lazy: with RF_PUSH_LAZY and an anonymous private area, whose
 * lacking pages then need no PAGES frame. */
static void push(bool bad_page, bool lazy)
{
	static const uint8_t known[WC_PAGE_SIZE] = { 1, 2, 3 };	/* fuzz-wire's store holds it */
	uint8_t page[WC_PAGE_SIZE], *p;
	struct wc_key k1, k2;

	memset(page, 0x42, sizeof(page));
	rf_page_key(page, &k1);
	rf_page_key(known, &k2);
	rf_put_u32(rec(RF_MSG_PUSH, 4), (bad_page ? 0 : RF_PUSH_RESTORE) |
				       (lazy ? RF_PUSH_RESTORE | RF_PUSH_LAZY : 0));
	heap_area(5, lazy ? 0x22 : 0);
	/* kinds: data, zero, absent, data (held by the receiver), data (dup) */
	p = rec(RF_MSG_KEYS, 8 + 5 + 3 * 16);
	rf_put_u32(p, 0);
	rf_put_u32(p + 4, 5);
	memcpy(p + 8, (uint8_t[]){ 2, 1, 0, 2, 2 }, 5);
	rf_put_key(p + 13, &k1);
	rf_put_key(p + 29, &k2);
	rf_put_key(p + 45, &k1);
	if (bad_page)
		page[9] ^= 1;
	if (!lazy) {
		p = rec(RF_MSG_PAGES, 8 + WC_PAGE_SIZE);
		rf_put_u32(p, 0);
		rf_put_u32(p + 4, 1);
		memcpy(p + 8, page, WC_PAGE_SIZE);
	}
	p = rec(RF_MSG_AREA, 26);
	rf_put_u64(p, 0x7f0000000000);
	rf_put_u64(p + 8, 0);
	rf_put_u32(p + 16, 0);
	rf_put_u32(p + 20, 0);
	rf_put_u16(p + 24, 0);
	for (int c = 0; c < 2; c++) {
		p = rec(RF_MSG_BLOB, 18 + 12 + 3);
		rf_put_u64(p, 6);
		rf_put_u64(p + 8, 3 * c);
		rf_put_u16(p + 16, 12);
		memcpy(p + 18, "engine.image", 12);
		memcpy(p + 30, c ? "def" : "abc", 3);
	}
	p = rec(RF_MSG_LABEL, 2 + 6 + 2 + 4);
	rf_put_u16(p, 6);
	memcpy(p + 2, "origin", 6);
	rf_put_u16(p + 8, 4);
	memcpy(p + 10, "seed", 4);
	p = rec(RF_MSG_COMMIT, 24);
	rf_put_u64(p, 2);
	rf_put_u64(p + 8, 1);
	rf_put_u64(p + 16, 5);
}

/* An rfork --lazy push (RF_PUSH_UNKEYED with @unkeyed, else the flag
 * missing and the push refused): a lazy area announced by kind alone
 * (RF_KIND_LAZY, no keys, no LACKS, no PAGES). */
static void push_unkeyed(bool unkeyed)
{
	uint8_t *p;

	rf_put_u32(rec(RF_MSG_PUSH, 4), RF_PUSH_RESTORE | RF_PUSH_LAZY |
				       (unkeyed ? RF_PUSH_UNKEYED : 0));
	heap_area(5, 0x22);
	p = rec(RF_MSG_KEYS, 8 + 5);
	rf_put_u32(p, 0);
	rf_put_u32(p + 4, 5);
	memcpy(p + 8, (uint8_t[]){ RF_KIND_LAZY, 1, 0, RF_KIND_LAZY, RF_KIND_LAZY }, 5);
	image_and_commit(1, 5);
}

/* An unkeyed lazy push whose area is announced by a KEYS batch of 5 pages
 * and a RUNS batch of 4100 more (@flags: the PUSH flags; @extra: pages
 * the RUNS claims beyond the area's end). */
static void push_runs(uint32_t flags, uint32_t extra)
{
	static const uint32_t runs[][2] = {
		{ 2048, RF_KIND_LAZY }, { 2000, WC_PAGE_ABSENT }, { 40, WC_PAGE_ZERO },
		{ 12, RF_KIND_LAZY },
	};
	uint8_t *p;

	rf_put_u32(rec(RF_MSG_PUSH, 4), flags);
	heap_area(5 + 4100, 0x22);
	p = rec(RF_MSG_KEYS, 8 + 5);
	rf_put_u32(p, 0);
	rf_put_u32(p + 4, 5);
	memcpy(p + 8, (uint8_t[]){ 0, 1, 0, 0, 1 }, 5);
	p = rec(RF_MSG_RUNS, 8 + 4 * RF_RUN_BYTES);
	rf_put_u32(p, 1);
	rf_put_u32(p + 4, 4);
	for (int i = 0; i < 4; i++) {
		rf_put_u32(p + 8 + RF_RUN_BYTES * i, runs[i][0] + (i == 3 ? extra : 0));
		rf_put_u32(p + 12 + RF_RUN_BYTES * i, runs[i][1]);
	}
	image_and_commit(2, 5 + 4100);
}

int main(int argc, char **argv)
{
	uint8_t *p;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	p = rec(RF_MSG_HELLO, 8 + RF_NONCE_BYTES);
	rf_put_u32(p, RF_MAGIC);
	rf_put_u16(p + 4, RF_VERSION);
	memset(p + 8, 7, RF_NONCE_BYTES);
	p = rec(RF_MSG_AUTH, RF_PROOF_BYTES);
	memset(p, 9, RF_PROOF_BYTES);
	p = rec(RF_MSG_ERROR, 6 + 4);
	rf_put_u32(p, 71);
	rf_put_u16(p + 4, 4);
	memcpy(p + 6, "oops", 4);
	save(argv[1], "any-handshake");
	push(false, false);
	save(argv[1], "ok-push");
	push(false, true);
	save(argv[1], "ok-push-lazy");
	push(true, false);
	save(argv[1], "bad-page-mismatch");
	push_unkeyed(true);
	save(argv[1], "ok-push-unkeyed");
	push_unkeyed(false);
	save(argv[1], "bad-lazy-kind-keyed");
	push_runs(RF_PUSH_RESTORE | RF_PUSH_LAZY | RF_PUSH_UNKEYED, 0);
	save(argv[1], "ok-push-runs");
	push_runs(RF_PUSH_RESTORE | RF_PUSH_LAZY, 0);
	save(argv[1], "bad-runs-keyed");
	push_runs(RF_PUSH_RESTORE | RF_PUSH_LAZY | RF_PUSH_UNKEYED, 1);
	save(argv[1], "bad-runs-beyond-area");
	p = rec(RF_MSG_LACKS, 8 + 1);
	rf_put_u32(p, 0);
	rf_put_u32(p + 4, 5);
	p[8] = 0x11;
	p = rec(RF_MSG_COMMITTED, WC_ID_LEN);
	memcpy(p, "0123456789abcdef", WC_ID_LEN);
	p = rec(RF_MSG_RESTORED, 12 + 2 + 9 + 2 + 9);
	rf_put_u32(p, 4242);
	rf_put_u32(p + 4, 77);
	rf_put_u32(p + 8, RF_RESTORED_NEW_PIDNS);
	rf_put_u16(p + 12, 9);
	memcpy(p + 14, "/x/id.out", 9);
	rf_put_u16(p + 23, 9);
	memcpy(p + 25, "/x/id.err", 9);
	p = rec(RF_MSG_OUTPUT, 1 + 6);
	p[0] = 1;
	memcpy(p + 1, "hello\n", 6);
	p = rec(RF_MSG_OUTPUT, 1);
	p[0] = 2;
	rf_put_u32(rec(RF_MSG_EXIT, 4), 143);
	rf_put_u32(rec(RF_MSG_SIGNAL, 4), 15);
	p = rec(RF_MSG_PAGE_REQ, 8);
	rf_put_u32(p, 3);
	rf_put_u32(p + 4, 32);
	p = rec(RF_MSG_LAZY_PAGES, 4 + 4 + WC_PAGE_SIZE);
	rf_put_u32(p, 1);
	rf_put_u32(p + 4, 7);
	memset(p + 8, 0x42, WC_PAGE_SIZE);
	p = rec(RF_MSG_LAZY_ZERO, 4 + 8);
	rf_put_u32(p, 2);
	rf_put_u32(p + 4, 3);
	rf_put_u32(p + 8, 4);
	p = rec(RF_MSG_RUNS, 8 + 2 * RF_RUN_BYTES);
	rf_put_u32(p, 4);
	rf_put_u32(p + 4, 2);
	rf_put_u32(p + 8, 100);
	rf_put_u32(p + 12, RF_KIND_LAZY);
	rf_put_u32(p + 16, 7);
	rf_put_u32(p + 20, WC_PAGE_ABSENT);
	rf_put_u32(rec(RF_MSG_LAZY_END, 4), 9);
	rf_put_u32(rec(RF_MSG_LAZY_DONE, 4), 9);
	save(argv[1], "any-replies");
	return 0;
}
